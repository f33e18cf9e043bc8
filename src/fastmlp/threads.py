"""How many threads an epoch runs on, chosen by measuring epochs.

An epoch's result does not depend on its thread count (csrc/train.c: every reduction runs in an
order fixed by the data, not by the threads), so the count is free to change between epochs and
only the speed can tell which is right. It is not the same on every machine or at every moment:
on an idle 2-core machine two threads train 784-1024-1024-10 nearly twice as fast as one, while
with another process busy on the second core a thread that waits at a barrier for a descheduled
partner made 784-256-256-10 three to ten times slower than one thread alone (measured here).
So the fit times its epochs on `n_threads` threads and on one, keeps the faster, and checks the
other again now and then, since the load on a shared machine comes and goes."""
import time

# epochs between two re-checks of the count not in use
RECHECK_EVERY = 16


class ThreadChoice:
    """The thread count for each epoch of one model: `threads()` before an epoch, `record()`
    after it. With `most` == 1 there is nothing to choose."""

    def __init__(self, most):
        self.most = max(1, int(most))
        self.seconds_per_sample = {}  # thread count -> latest measured epoch seconds per row
        self.epochs = 0
        self._started = None
        self._current = self.most

    def threads(self):
        """The count for the next epoch: `most` first (the first epoch pays warm-up, so it is
        not measured), then one, then `most`; afterwards the faster, and the other again every
        RECHECK_EVERY epochs."""
        if self.most == 1:
            self._current = 1
        elif self.epochs < 3:
            self._current = (self.most, 1, self.most)[self.epochs]
        else:
            best = min(self.seconds_per_sample, key=self.seconds_per_sample.get)
            other = 1 if best == self.most else self.most
            self._current = other if self.epochs % RECHECK_EVERY == 0 else best
        self._started = time.perf_counter()
        return self._current

    def record(self, n_rows):
        """The epoch just run on `threads()` threads has trained `n_rows` rows."""
        seconds = time.perf_counter() - self._started
        if self.epochs > 0 and n_rows > 0:
            self.seconds_per_sample[self._current] = seconds / n_rows
        self.epochs += 1
        return seconds
