"""How many threads train each stretch of an epoch, chosen by timing them.

Training's result does not depend on its thread count (csrc/batch.c cuts every batch's work
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
vCPUs moved apart) brings the next probe forward to the next stretch. With fewer threads chosen
by the rates alone, a probe every 8 stretches (~0.4 s) is the only way to see the load go away,
so those do not thin out (beside a core taken they do: below). A verdict that changes the count
is checked by a probe right after it: one stretch can be far off (the kernel merging the data's
pages into huge pages slowed a few epochs' worth of batches 2-3x here, seconds after the data
was made).

Rates are noisy on a shared machine (one stretch was 30% off the next here), so what other
processes take of this process's cores is watched besides (CoreUse: their CPU time on those
cores over windows of WINDOW_SECONDS, from /proc/stat, less this process's own). A core they
keep at least TAKEN_SHARE busy counts as taken. When a core that all threads need is taken,
the choice goes to the cores left at once, without waiting for a probe, and all threads must
then beat that count CLEAR_MARGIN per row to take over again: with a busy loop on the other
core of a 2-core machine, two threads ran at 0.63-1.16 of one thread's rate round by round, a
margin the rates alone cannot settle in a few stretches, while one thread on the free core
always runs at its full rate. When the core is free again, the next stretch probes all
threads. So while the core stays taken, probes that find all threads no faster than the cores
left thin out as above: the window, not they, sees the core freed, and each cost ~20 ms beside
a busy loop (784-100-10, quiet: the probe's epoch 15-20 ms longer than the others, the stretch
after it 10-20% slower), 4-5% of training at one every 8 stretches. All threads matching or
beating the cores left (the other process yields its core: niced, or idle now and then) keep
the probes every 8 stretches. On the idle machine the others' share stayed under 0.07 of a
core here.

A window takes WINDOW_SECONDS, and a fit's first one began with the fit, so beside a busy loop
its first ~0.25 s ran two threads (784-256-256-10: 9-11k of a 3-epoch fit's 60k rows, at
0.8-0.9 of one thread's rate; 784-100-10: 23-30k, most of its first epoch, at 0.85-1.06). Every
reading is therefore kept for the whole process (one is taken when fastmlp is imported), and a
fit's window starts at the latest one at least WINDOW_SECONDS and at most PRIOR_SECONDS old
(the imports, loading the data, the fit before): the first stretch already runs on the core
left. That window holds work of our own (the Python that loaded the data, a BLAS pool, another
fit in a thread of ours), which getrusage counts as ours; on the idle machine the fits' choices
stayed those of a window begun with the fit. A window older than PRIOR_SECONDS is not read: it
dilutes a process that just started, or remembers one that has ended. Quiet A/B of 5 rounds
beside a busy loop (bench/results/fw-under-load.md, default / n_threads=1): every fit's first
stretch ran one thread; the training passes' ratio went from 0.96 to 0.99 on 784-256-256-10 and
from 0.92 to 0.94 on 784-100-10, the whole fit's from 0.92 to 0.98 and from 1.07 to 0.86, the
latter set by what precedes training (0.08-0.29 s with the loop running, beside ~0.4 s of
training: the default's own loss, its input standardization slowed by a spinning BLAS thread,
since run on one: bench/results/load-under-load.md); idle, 1.73 / 1.51 before, 1.79 / 1.38
after.

Two signals were measured and left out: the tasks runnable at the start (/proc/stat's
procs_running) counted our own pool's threads, still spinning from the call before, as other
processes, and our threads' waits for a core (/proc/self/task/*/schedstat) include the wake-up
latency of an idle virtual CPU, enough on 784-100-10's short phases to look like a core taken;
with either, idle 2-thread fits ran on one thread. Where there is no /proc (not Linux), the
rates alone decide.

Stretches also bound how long training runs without returning to Python (Ctrl-C, progress,
callbacks between stretches), whatever an epoch's length: C decides one batch ahead whether
the next batch is the stretch's last, so a stretch is at least two batches and ends at most one
batch past its limit."""

import collections
import os
import statistics
import threading
import time

try:
    import resource
except ImportError:  # not Unix: the rates alone decide
    resource = None

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
WINDOW_SECONDS = 0.2    # CoreUse's window: /proc/stat counts in 10 ms ticks per core, so a
                        # window of 0.2 s on 2 cores reads the others' share to +-0.05 core
PRIOR_SECONDS = 5.0     # the longest window a fit's first decision reads, from before the fit:
                        # a longer one dilutes a process that just started
TAKEN_SHARE = 0.4       # a core taken this share of the time counts as taken: beside two of
                        # our threads a busy loop gets only about half of its core


def _stat():
    """(wall, {"cpuN": busy ticks}, this process's CPU time in seconds) now, or None where
    /proc/stat or getrusage cannot be read. Busy: all but idle and iowait of user nice system
    idle iowait irq softirq steal (steal: another virtual machine had the core)."""
    if resource is None:
        return None
    busy = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break  # the per-core lines come first; the rest (intr: long) is not read
                fields = line.split()
                if fields[0] != "cpu":  # "cpu" alone: the sum over all cores
                    ticks = [int(v) for v in fields[1:9]]
                    busy[fields[0]] = sum(ticks) - ticks[3] - ticks[4]
    except (OSError, ValueError, IndexError):
        return None
    own = resource.getrusage(resource.RUSAGE_SELF)  # every thread's, living or ended
    return time.monotonic(), busy, own.ru_utime + own.ru_stime


# this process's latest readings, in the order taken: one when fastmlp is imported, then every
# CoreUse window's end, so that a fit's first decision can read a window that began before it
# (the imports, loading the data, the time since the fit before), whichever model read them
_readings = collections.deque([r for r in [_stat()] if r is not None], maxlen=8)


class CoreUse:
    """How many of this process's cores other processes take: their CPU time on those cores
    over the latest window, from /proc/stat's per-core counters less this process's own CPU
    time (getrusage, every thread's: our other fits, a BLAS pool and the Python around count
    as ours). Beside two of our threads a busy loop gets about half of its core, beside one
    thread the whole core. `taken()` is None while the window is short. A fit's first window
    starts before the fit where this process read /proc/stat lately (`begin`), so that its
    first stretch can already go to the cores left."""

    def __init__(self, cores):
        self.cores = sorted(cores)
        self.tick = os.sysconf("SC_CLK_TCK")
        self.lines = {f"cpu{c}" for c in self.cores}  # /proc/stat's lines of our cores
        self.last = None
        self.begin()

    @classmethod
    def here(cls):
        """A CoreUse of this process's cores, or None where /proc/stat cannot be read."""
        if resource is None:
            return None
        try:
            cores = os.sched_getaffinity(0)
            use = cls(cores)
        except (AttributeError, OSError, ValueError):
            return None
        return use if use.last is not None else None

    def begin(self):
        """A fit starts. A window younger than WINDOW_SECONDS goes on (a partial_fit's calls
        read /proc/stat once a window, as the stretches do); otherwise the window starts at
        the latest reading of this process (at import, or any model's window) that is at least
        WINDOW_SECONDS old, so that the first `taken()` is complete at once, or else at its
        oldest younger one. A reading older than PRIOR_SECONDS is stale: a window of minutes
        dilutes a process that just started; with none fresh, the window starts now."""
        now = time.monotonic()
        if self.last is not None and now - self.last[0] < WINDOW_SECONDS:
            return
        fresh = [r for r in list(_readings) if now - r[0] <= PRIOR_SECONDS]
        complete = [r for r in fresh if now - r[0] >= WINDOW_SECONDS]
        start = max(complete, key=lambda r: r[0]) if complete else \
            min(fresh, key=lambda r: r[0], default=None)
        self.last = self._read() if start is None else self._ours(start)

    def _ours(self, reading):
        """(wall, busy CPU time of our cores, our CPU time) in seconds of a reading."""
        wall, busy, own = reading
        return wall, sum(busy.get(line, 0) for line in self.lines) / self.tick, own

    def _read(self):
        """A reading now, kept for the next fit's first window too; None where none."""
        reading = _stat()
        if reading is None:
            return None
        _readings.append(reading)
        return self._ours(reading)

    def taken(self):
        """Cores other processes took over the window that just ended, or None (too short)."""
        now = time.monotonic()
        if self.last is None or now - self.last[0] < WINDOW_SECONDS:
            return None
        reading = self._read()
        if reading is None:
            self.last = None
            return None
        wall, busy, own = (a - b for a, b in zip(reading, self.last))
        self.last = reading
        others = max(0.0, busy - own) / wall  # in cores
        return int(others + 1 - TAKEN_SHARE)


class ThreadChoice:
    """The thread counts of one model's training: `stretch()` says the thread count and the
    time limit of the next stretch of batches, `record()` takes what it trained and how long
    that took. `core_use`: what watches the other processes (a CoreUse, None for the rates
    alone, or "here" for this process's cores where /proc can tell)."""

    def __init__(self, most, core_use="here"):
        self.most = max(1, int(most))
        self.core_use = (CoreUse.here() if core_use == "here" else core_use) \
            if self.most > 1 else None
        self.best = self.most
        self.fewer = 1             # the count probed against all threads
        self.crowded = False       # other processes take a core that all threads need
        self.probed = None         # seconds per row of the latest probe, until its verdict
        self.recent = []           # seconds per row of the count in use's latest stretches
        self.stretches = 0         # stretches recorded
        self.interval = PROBE_EVERY
        self.next_probe = 1        # the stretch that probes next (the first one after warm-up)
        self.reference = None      # the count in use's rate, its best since the latest verdict
        self._watch_cores()        # a window that began before the fit decides its first stretch

    def begin(self):
        """A later fit or partial_fit call with this choice starts: a stale window starts again
        (CoreUse.begin), and one complete by now decides the call's first stretch."""
        if self.core_use is not None:
            self.core_use.begin()
            self._watch_cores()

    def _other(self):
        return self.fewer if self.best == self.most else self.most

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
        if self.most == 1:
            return
        if stretch > 0 and rows > 0:  # the warm-up's page faults are not a rate
            self._rate(seconds / rows, threads)
        self._watch_cores()

    def _rate(self, rate, threads):
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
        # all threads take over from fewer on a crowded machine only by a clear margin
        margin = CLEAR_MARGIN if self.crowded and previous != self.most else SWITCH_MARGIN
        if probed * margin < now:
            self._switch(self._other(), probed)
            self.next_probe = self.stretches  # a change is checked at once (see the docstring)
            return
        # a probe confirms the count in use when all threads lose clearly, or when fewer are
        # in use because other processes take a core and all threads do not even match them:
        # the core's release is seen by CoreUse, which probes at once (_watch_cores)
        confirmed = probed >= CLEAR_MARGIN * now if previous == self.most else \
            self.crowded and probed >= now
        self.interval = min(2 * self.interval, PROBE_EVERY_MAX) if confirmed else PROBE_EVERY
        self.next_probe = self.stretches + self.interval
        self.reference = now

    def _switch(self, threads, rate=None):
        self.best, self.probed, self.interval = threads, None, PROBE_EVERY
        self.recent = [] if rate is None else [rate]
        self.reference = rate

    def _crowd(self, free):
        """Other processes leave `free` of our cores: fewer threads than all, at once."""
        self.crowded, self.fewer = True, max(1, min(self.most - 1, free))
        if self.best == self.most:
            self._switch(self.fewer)
            self.next_probe = self.stretches + PROBE_EVERY

    def _watch_cores(self):
        """React to other processes taking a core that all threads need, or leaving it."""
        taken = None if self.core_use is None else self.core_use.taken()
        if taken is None:
            return
        free = len(self.core_use.cores) - taken
        if free < self.most and not self.crowded:
            self._crowd(free)
        elif free >= self.most and self.crowded:
            self.crowded, self.fewer = False, 1
            if self.best != self.most and self.probed is None:
                self.next_probe = self.stretches  # all threads may run again: probe them now


class CoresLeft:
    """The threads a call too short to time (a prediction) may use: `most`, or the cores that
    other processes leave this process where they take some (CoreUse's verdict). The window is
    read at most once per WINDOW_SECONDS, by whichever call finds it complete; a call that
    finds another reading it takes the latest verdict without waiting, so predictions never
    wait for each other. A window that has gone stale (no call for PRIOR_SECONDS) starts
    again from this process's latest reading, as a fit's does (CoreUse.begin).

    Beside a busy loop on the other core of this 2-core machine, predict_proba of 784-100-10
    on 1000 rows took 5-12 ms on two threads against 2 ms on one: a thread that has claimed a
    chunk of rows and then waits for the busy core holds up the call's end."""

    def __init__(self, core_use="here"):
        self._lock = threading.Lock()
        self._core_use = core_use   # "here": made on first use, for this process's cores
        self._taken = 0             # the latest verdict: cores other processes take

    def __call__(self, most):
        if most <= 1:
            return most
        if self._lock.acquire(blocking=False):
            try:
                if self._core_use == "here":
                    self._core_use = CoreUse.here()
                if self._core_use is not None:
                    self._core_use.begin()
                    taken = self._core_use.taken()
                    if taken is not None:
                        self._taken = taken
            finally:
                self._lock.release()
        if self._core_use is None or self._core_use == "here":
            return most
        return max(1, min(most, len(self._core_use.cores) - self._taken))


# the predictions' verdict, shared by every model of this process
cores_left = CoresLeft()
