"""How many threads train each stretch of an epoch, chosen by timing them.

Training's result does not depend on its thread count (csrc/train.c cuts every batch's work
into slabs fixed by the problem, and threads only share the slabs out), so the count is free to
change between batches, and only the speed can tell which is right. It is not the same on every
machine or at every moment: on an idle 2-core machine two threads train 784-1024-1024-10 nearly
twice as fast as one, while with another process busy on the second core two threads waiting
for each other at every barrier trained 784-256-256-10 at a third of one thread's speed, and
when the hypervisor moved the two vCPUs onto cores that share no cache, two threads trained it
at 55k samples/s against one thread's 63k (all measured here).

So training runs in stretches of about STRETCH_SECONDS, each bounded in time by the C side
(train_epoch's max_seconds: it stops after the batch that ends near the limit), and the choice
reacts within an epoch, not after it: a probe is a stretch of PROBE_SECONDS on the count not in
use, and the next stretch on the count in use gives the rate to compare it with; the faster per
row is kept. Probes are bounded in time, so one on a count many times slower costs at most
PROBE_SECONDS. The first stretch of a choice warms up (its first batches fault the buffers in:
its rate means nothing) and the second probes, so a busy core is seen in the first ~0.1 s of
training. While all threads keep winning clearly, the probes thin out (every 8, 16, 32, then 64
stretches: at most 3 s apart), and the count in use is watched instead: a stretch that runs it
much slower per row than its best since the last verdict (another process took a core, the
vCPUs moved apart) brings the next probe forward to the next stretch. With fewer threads in use,
a probe every 8 stretches (~0.4 s) is the only way to see the load go away, so those do not thin
out. A verdict that changes the count is checked by a probe right after it: one stretch can be
far off (the kernel merging the data's pages into huge pages slowed a few epochs' worth of
batches 2-3x here, seconds after the data was made).

Stretches also bound how long training runs without returning to Python (Ctrl-C, progress,
callbacks between stretches), whatever an epoch's length: C decides one batch ahead whether
the next batch is the stretch's last, so a stretch is at least two batches and ends at most one
batch past its limit."""

import statistics

STRETCH_SECONDS = 0.05  # a stretch on the count in use
PROBE_SECONDS = 0.02    # a probe, and the warm-up stretch
ALONE_SECONDS = 0.25    # a stretch where there is no choice to make (one thread): only the
                        # return to Python bounds it
PROBE_EVERY = 8         # stretches from a verdict to the next probe: at first, after a change,
                        # and on fewer threads
PROBE_EVERY_MAX = 64    # while the probes keep confirming all threads, the gap doubles up to this
CLEAR_MARGIN = 1.25     # a probe confirms all threads when the other count is this much slower
SWITCH_MARGIN = 1.05    # the other count must be this much faster per row to take over
SLOWDOWN = 1.3          # the count in use this much slower per row than its best since the
                        # last verdict: the next stretch probes
RECENT = 3              # the count in use's rate: the median of its latest stretches (on a
                        # loaded machine one stretch's rate was 30% off the next one's here)


class ThreadChoice:
    """The thread counts of one model's training: `stretch()` says the thread count and the
    time limit of the next stretch of batches, `record()` takes what it trained and how long
    that took."""

    def __init__(self, most):
        self.most = max(1, int(most))
        self.best = self.most
        self.probed = None         # seconds per row of the latest probe, until its verdict
        self.recent = []           # seconds per row of the count in use's latest stretches
        self.stretches = 0         # stretches recorded
        self.interval = PROBE_EVERY
        self.next_probe = 1        # the stretch that probes next (the first one after warm-up)
        self.reference = None      # the count in use's rate, its best since the latest verdict

    def _other(self):
        return 1 if self.best == self.most else self.most

    def stretch(self):
        """(threads, seconds): the thread count and the time limit of the next stretch."""
        if self.most == 1:
            return 1, ALONE_SECONDS
        if self.stretches == 0:
            return self.best, PROBE_SECONDS
        if self.stretches >= self.next_probe and self.probed is None:
            return self._other(), PROBE_SECONDS
        return self.best, STRETCH_SECONDS

    def record(self, rows, threads, seconds):
        """The stretch just run: `rows` trained on `threads` threads in `seconds`."""
        stretch = self.stretches
        self.stretches += 1
        if stretch == 0 or rows <= 0 or self.most == 1:
            return  # the warm-up's page faults are not a rate
        rate = seconds / rows
        if threads != self.best:
            self.probed = rate  # the verdict, after the next stretch, schedules the next probe
            return
        self.recent = (self.recent + [rate])[-RECENT:]
        now = statistics.median(self.recent)
        if self.probed is not None:
            self._verdict(now)
        elif self.reference is not None:
            if now > SLOWDOWN * self.reference:
                self.next_probe = self.stretches
            self.reference = min(self.reference, now)  # its best since the verdict
        else:
            self.reference = now

    def _verdict(self, now):
        """The probe's rate against the count in use's, with the stretch just after the probe:
        keep the faster, and space the probes."""
        previous, probed = self.best, self.probed
        self.probed = None
        if probed * SWITCH_MARGIN < now:
            self.best = self._other()
            self.recent = [probed]
            self.reference = probed
            self.interval = PROBE_EVERY
            self.next_probe = self.stretches  # a change is checked at once (see the docstring)
            return
        confirmed = previous == self.most and probed >= CLEAR_MARGIN * now
        self.interval = min(2 * self.interval, PROBE_EVERY_MAX) if confirmed else PROBE_EVERY
        self.next_probe = self.stretches + self.interval
        self.reference = now
