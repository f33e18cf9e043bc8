"""How many threads train each stretch of an epoch, chosen by timing them.

Training's result does not depend on its thread count (csrc/train.c cuts every batch's work
into slabs fixed by the problem, and threads only share the slabs out), so the count is free to
change between batches, and only the speed can tell which is right. It is not the same on every
machine or at every moment: on an idle 2-core machine two threads train 784-1024-1024-10 nearly
twice as fast as one, while with another process busy on the second core a thread waiting at a
barrier for a descheduled partner made 784-256-256-10 three to ten times slower than one thread
alone (measured here). So now and then a probe runs the first eighth of an epoch's batches on
the count not in use; the faster per row is kept."""
import time

# epochs between two probes; epoch 0 warms up (first touch of the buffers), epoch 1 probes
PROBE_EVERY = 8


class ThreadChoice:
    """The thread counts of one model's epochs: `plan()` before an epoch, then `record()`
    with the seconds each stretch of the plan took."""

    def __init__(self, most):
        self.most = max(1, int(most))
        self.best = self.most
        self.seconds_per_row = {}  # thread count -> latest measured seconds per trained row
        self.epochs = 0

    def plan(self, n_batches):
        """[(batches, threads), ...]: consecutive stretches that make up the next epoch.
        On a probe epoch the first eighth (at least one batch) runs on the count not in use;
        an epoch of one batch probes whole."""
        probe = self.most > 1 and self.epochs % PROBE_EVERY == 1
        if not probe:
            return [(n_batches, self.best)]
        other = 1 if self.best == self.most else self.most
        head = max(1, n_batches // 8)
        if head >= n_batches:
            return [(n_batches, other)]
        return [(head, other), (n_batches - head, self.best)]

    def record(self, stretches):
        """stretches: [(rows, threads, seconds), ...] of the epoch just run by the plan."""
        if self.epochs > 0:  # the warm-up epoch measures page faults, not threads
            for rows, threads, seconds in stretches:
                if rows > 0:
                    self.seconds_per_row[threads] = seconds / rows
            if len(self.seconds_per_row) > 1:
                self.best = min(self.seconds_per_row, key=self.seconds_per_row.get)
        self.epochs += 1
