"""How many threads train each stretch of an epoch, chosen by timing them.

Training's result does not depend on its thread count (csrc/train.c cuts every batch's work
into slabs fixed by the problem, and threads only share the slabs out), so the count is free to
change between batches, and only the speed can tell which is right. It is not the same on every
machine or at every moment: on an idle 2-core machine two threads train 784-1024-1024-10 nearly
twice as fast as one, while with another process busy on the second core a thread waiting at a
barrier for a descheduled partner made 784-256-256-10 three to ten times slower than one thread
alone, and when the hypervisor moved the two vCPUs onto cores that share no cache, two threads
trained it at 55k samples/s against one thread's 63k (all measured here).

So a probe runs an eighth of an epoch's batches on the count not in use, and the faster per row
is kept. The first probe is the last eighth of the warm-up epoch, whose first batches fault the
buffers in (their rate means nothing) but whose tail runs warm. A probe costs: the slower count
runs an eighth of an epoch (784-1024-1024-10 on one thread: ~10% of that epoch). So while all
threads keep winning clearly, the probes thin out (every 8, 16, 32, then 64 epochs), and the
count in use is watched instead: an epoch that runs it much slower per row than its best since
the last verdict (another process took a core, the vCPUs moved apart) brings the next probe
forward to the next epoch. With fewer threads in use, a probe every 8 epochs is the only way to see the load
go away, so those do not thin out.

A verdict that changes the count is checked by a probe in the very next epoch. One epoch can be
far off: seconds after the data was made, the second epoch of 784-100-10 ran 2-3x slower than the
rest on two threads (measured here; not after a 3 s pause, so probably the kernel merging the
data's pages into huge pages), and the verdict it gave kept one thread for eight epochs at half
the speed."""

PROBE_EVERY = 8        # epochs between probes: at first, after a change, and on fewer threads
PROBE_EVERY_MAX = 64   # while the probes keep confirming all threads, the gap doubles up to this
CLEAR_MARGIN = 1.25    # a probe confirms all threads when the other count is this much slower
SLOWDOWN = 1.3         # the count in use this much slower per row than its best since the
                       # last verdict: the next epoch probes (epoch-to-epoch noise: a few %)


class ThreadChoice:
    """The thread counts of one model's epochs: `plan()` before an epoch, then `record()`
    with the seconds each stretch of the plan took."""

    def __init__(self, most):
        self.most = max(1, int(most))
        self.best = self.most
        self.seconds_per_row = {}  # thread count -> latest measured seconds per trained row
        self.epochs = 0
        self.interval = PROBE_EVERY
        self.next_probe = 0        # the epoch that probes next (the warm-up one, at its tail)
        self.probe_epoch = None    # the latest probe, whose verdict waits for both rates
        self.reference = None      # seconds per row of the count in use, its best since the
                                   # latest verdict

    def _other(self):
        return 1 if self.best == self.most else self.most

    def plan(self, n_batches):
        """[(batches, threads), ...]: consecutive stretches that make up the next epoch."""
        if self.most == 1 or self.epochs < self.next_probe:
            return [(n_batches, self.best)]
        head = max(1, n_batches // 8)
        if self.epochs == 0:
            # warm-up: the probe is its tail; an epoch of one batch has none and probes next
            if head >= n_batches:
                return [(n_batches, self.best)]
            return [(n_batches - head, self.best), (head, self._other())]
        if head >= n_batches:
            return [(n_batches, self._other())]
        return [(head, self._other()), (n_batches - head, self.best)]

    def record(self, stretches):
        """stretches: [(rows, threads, seconds), ...] of the epoch just run by the plan."""
        epoch = self.epochs
        self.epochs += 1
        timed = stretches[1:] if epoch == 0 else stretches  # page faults are not a rate
        probed = any(threads != self.best for _, threads, _ in timed)
        for rows, threads, seconds in timed:
            if rows > 0:
                self.seconds_per_row[threads] = seconds / rows
        if probed:
            self.probe_epoch = epoch
            self.next_probe = epoch + self.interval
        if self.probe_epoch is not None and len(self.seconds_per_row) > 1:
            self._verdict()
        elif not probed and self.reference is not None and self.best in self.seconds_per_row:
            now = self.seconds_per_row[self.best]
            if now > SLOWDOWN * self.reference:
                self.next_probe = self.epochs
            self.reference = min(self.reference, now)  # its best since the verdict

    def _verdict(self):
        """Both rates known since the latest probe: keep the faster, and space the probes."""
        previous = self.best
        self.best = min(self.seconds_per_row, key=self.seconds_per_row.get)
        other = self._other()
        confirmed = (self.best == previous == self.most and self.seconds_per_row[other]
                     >= CLEAR_MARGIN * self.seconds_per_row[self.best])
        self.interval = min(2 * self.interval, PROBE_EVERY_MAX) if confirmed else PROBE_EVERY
        # a change is checked at once (the module's docstring says why)
        self.next_probe = (self.epochs if self.best != previous
                           else max(self.probe_epoch + self.interval, self.epochs))
        self.reference = self.seconds_per_row[self.best]
        self.probe_epoch = None
