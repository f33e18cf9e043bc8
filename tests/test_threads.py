"""Training in stretches bounded in time, each on the thread count that fastmlp/threads.py
chooses: the bits never depend on the cut, the counts or which thread claims which part
(csrc/train.h, csrc/team.h), and the choice reacts within an epoch. No timings are asserted: the choice is
driven by made-up rates, and the C time limit by one so small that every call stops as early
as it can."""
import collections
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, _core
from fastmlp import threads as threads_module
from fastmlp._health import new_health
from fastmlp.threads import (ALONE_SECONDS, CLEAR_MARGIN, PRIOR_SECONDS, PROBE_EVERY,
                             PROBE_EVERY_MAX, PROBE_SECONDS, STRETCH_SECONDS, TAKEN_SHARE,
                             WINDOW_SECONDS, CoreUse, ThreadChoice)

TINY = 1e-9  # a time limit every batch overruns: a call trains the fewest batches it can


def _epoch_calls(model, X, Y, order, batch_size, stretches, dtype, parts=2, sample_weight=None,
                 health=False):
    """One epoch through the bridge as consecutive calls, the i-th on stretches[i] =
    (threads, max_seconds), cycling; returns (params, state, batch_loss, batches per call),
    and with health the counts and norms of layer health."""
    params = model._params.copy()
    n_trainable = model._layout["n_trainable"]
    state = np.zeros(2 * n_trainable, dtype=dtype)
    grads = np.zeros(n_trainable, dtype=dtype)
    workspace = np.zeros(model._net().workspace_size(batch_size, parts, dtype, sp.issparse(X)),
                         dtype=dtype)
    hyper = fastmlp.optim.hyperparameters(model, 0.01, "constant")
    n_batches = _core.epoch_batches(len(order), batch_size, model.batch_norm)
    batch_loss = np.zeros(n_batches)
    accumulator = new_health(model._net(), parts) if health else None
    first, t, calls = 0, 0, []
    while first < n_batches:
        threads, seconds = stretches[len(calls) % len(stretches)]
        before = t
        t = _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state,
                              workspace, batch_loss[first:], Y, sample_weight,
                              order[first * batch_size:], batch_size, 7, t, parts, threads,
                              seconds, accumulator)
        calls.append(t - before)
        first += t - before
    assert t == n_batches
    if health:
        return params, state, batch_loss, calls, accumulator.count.copy(), accumulator.norms.copy()
    return params, state, batch_loss, calls


@pytest.mark.parametrize("extra", [{"solver": "sgd", "momentum": 0.9},
                                   {"batch_norm": True, "dropout": 0.2},
                                   {"solver": "adam", "alpha": 0.1}])
def test_stretches_cut_by_time_give_the_bits_of_one_call_on_any_thread_count(extra, quiet):
    """A time limit stops a call one batch after the batch that decides it (the last step must
    know it is the last: SGD momentum leaves the plain velocity between calls), so a tiny
    limit trains two batches per call; calls alternating 1, 2 and 3 threads give the bits of
    one unbounded call. 421 rows in batches of 60: 7 batches, the last of one row joining
    the one before under batch norm."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(421, 30).astype(np.float32), rng.randint(0, 4, 421)
    model = MLPClassifier(hidden_layer_sizes=(50, 40), max_iter=1, random_state=0,
                          batch_size=60, n_threads=1, **extra).partial_fit(X, y,
                                                                            classes=range(4))
    Y = model._encode_targets(y, first=False)
    order = rng.permutation(len(X)).astype(np.int64)
    whole = _epoch_calls(model, X, Y, order, 60, [(1, 0.0)], np.float32)
    assert whole[3] == [_core.epoch_batches(421, 60, model.batch_norm)]
    cut = _epoch_calls(model, X, Y, order, 60, [(2, TINY), (1, TINY), (3, TINY)], np.float32)
    assert cut[3][:-1] == [2] * (len(cut[3]) - 1) and cut[3][-1] in (1, 2)
    for a, b in zip(whole[:3], cut[:3]):
        assert np.array_equal(a, b)
    assert not np.array_equal(whole[0], model._params)


def _claims_data(sparse, n=421, seed=0):
    rng = np.random.RandomState(seed)
    X, y = rng.randn(n, 30).astype(np.float32), rng.randint(0, 4, n)
    if sparse:
        X[np.abs(X) < 1.0] = 0
        X = sp.csr_matrix(X)
    return X, y, rng.rand(n).astype(np.float32) + 0.5, rng.permutation(n).astype(np.int64)


def _claims_model(X, y, extra, hidden=(50, 40)):
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=1, random_state=0, batch_size=60,
                         n_threads=1, **extra).partial_fit(X, y, classes=range(4))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("extra", [{"batch_norm": True, "dropout": 0.2},
                                   {"solver": "sgd", "momentum": 0.9, "dropout": 0.3},
                                   {"solver": "adam", "activation": "tanh"}])
def test_whichever_thread_claims_a_part_the_bits_are_the_parts(extra, sparse, quiet):
    """The parts of a batch, not the threads that claim them, fix the bits: 2 or 3 parts on 1,
    2 or 3 threads, with sample weights and layer health counted, in one call and in calls cut
    by a tiny time limit on changing thread counts, give one result (parameters, optimizer
    state, batch losses, health's counts and norms). Batches of 16 rows cut the layers of 50
    and 40 units by columns (two parts: the first layer by W's rows), so a phase reads every
    part's work; batches of 60 cut them by rows, so a part reads only its own."""
    X, y, weight, order = _claims_data(sparse)
    model = _claims_model(X, y, extra)
    Y = model._encode_targets(y, first=False)
    for batch_size in (16, 60):
        for parts in (2, 3):
            runs = [_epoch_calls(model, X, Y, order, batch_size, stretches, np.float32, parts,
                                 weight, health=True)
                    for stretches in ([(1, 0.0)], [(parts, 0.0)], [(2, 0.0)],
                                      [(parts, TINY), (1, TINY), (2, TINY)])]
            assert len(runs[-1][3]) > 1  # the last one trained in several calls
            for run in runs[1:]:
                for a, b in zip(runs[0][:3] + runs[0][4:], run[:3] + run[4:]):
                    assert np.array_equal(a, b)
            assert np.all(runs[0][5] > 0)  # health measured the call's last update


@pytest.mark.parametrize("hidden", [(50, 40, 30), (50, 40, 30, 20)])
@pytest.mark.parametrize("extra", [{"solver": "adam", "alpha": 1e-3},
                                   {"solver": "sgd", "momentum": 0.9, "batch_norm": True}])
def test_layers_stepped_in_one_phase_the_bits_are_the_parts(hidden, extra, quiet):
    """Backward steps a layer's weights in the phase of the layer below's products, two layers'
    in its last phase, and gives a step a phase of its own where the layer below rewrites its
    delta (3 or more hidden layers): whichever thread claims the parts, one result, health's
    norms included (an optimizer chunk across two layers' shares keeps each part's sums)."""
    X, y, weight, order = _claims_data(False)
    model = _claims_model(X, y, extra, hidden)
    Y = model._encode_targets(y, first=False)
    for parts in (2, 3):
        runs = [_epoch_calls(model, X, Y, order, 16, stretches, np.float32, parts, weight,
                             health=True)
                for stretches in ([(1, 0.0)], [(parts, 0.0)], [(parts, TINY), (1, TINY)])]
        for run in runs[1:]:
            for a, b in zip(runs[0][:3] + runs[0][4:], run[:3] + run[4:]):
                assert np.array_equal(a, b)
        assert np.all(runs[0][5] > 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_a_batch_gradient_is_the_same_on_any_thread_count(sparse):
    """L-BFGS's gradient of the whole batch (batch norm and dropout in training mode) by 3
    parts on 1, 2 or 3 threads."""
    X, y, weight, _ = _claims_data(sparse, n=200)
    model = _claims_model(X, y, {"batch_norm": True, "dropout": 0.2})
    Y = model._encode_targets(y, first=False)
    results = []
    for threads in (1, 2, 3):
        grads = np.zeros(model._layout["n_trainable"], dtype=np.float32)
        workspace = np.zeros(model._net().workspace_size(200, 3, np.float32, sparse),
                             dtype=np.float32)
        loss = _core.batch_gradient(model._net(), model._input(X), model._params.copy(), grads,
                                    workspace, Y, weight, np.arange(200, dtype=np.int64), 0.01,
                                    5, 3, 3, threads)
        results.append((loss, grads))
    for loss, grads in results[1:]:
        assert loss == results[0][0] and np.array_equal(grads, results[0][1])
    assert np.any(results[0][1] != 0)


def test_two_threads_beside_a_busy_core_give_the_bits_of_one(quiet):
    """With a CPU-bound process on one core, the kernel takes the threads off their cores at
    any point of a batch: parts change hands between phases, and late threads skip phases
    already handed out; the bits stay those of one thread. (No timing is asserted: the
    benchmark bench/under_load.py measures the speed.)"""
    X, y, weight, order = _claims_data(False, n=1200, seed=3)
    model = _claims_model(X, y, {"solver": "sgd", "momentum": 0.9, "batch_norm": True})
    Y = model._encode_targets(y, first=False)
    alone = _epoch_calls(model, X, Y, order, 16, [(1, 0.0)], np.float32, 2, weight, True)
    kwargs = dict(hidden_layer_sizes=(64, 48), max_iter=3, random_state=0, batch_size=32)
    one = MLPClassifier(n_threads=1, **kwargs).fit(X, y)
    hog = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"])
    try:
        if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(hog.pid, {max(os.sched_getaffinity(0))})
        busy = [_epoch_calls(model, X, Y, order, 16, stretches, np.float32, 2, weight, True)
                for stretches in ([(2, 0.0)], [(2, TINY)])]
        default = MLPClassifier(n_threads=2, **kwargs).fit(X, y)
    finally:
        hog.kill()
        hog.wait()
    for run in busy:
        for a, b in zip(alone[:3] + alone[4:], run[:3] + run[4:]):
            assert np.array_equal(a, b)
    assert np.array_equal(one._params, default._params)
    assert one.loss_curve_ == default.loss_curve_


def _stress(epochs=3, seed=0):
    """Many short calls on random thread counts (more threads than cores among them) and part
    counts, each stopped by the time limit after two batches: every call starts and ends a
    team, and threads that the kernel takes off their cores arrive late. Prints, for each part
    count, whether every epoch gave the bits of one call on one thread."""
    rng = np.random.RandomState(seed)
    X, y, weight, order = _claims_data(False, n=900, seed=seed)
    model = _claims_model(X, y, {"solver": "sgd", "momentum": 0.9, "dropout": 0.2})
    Y = model._encode_targets(y, first=False)
    same = {}
    for parts in (2, 3, 4):
        reference = _epoch_calls(model, X, Y, order, 16, [(1, 0.0)], np.float32, parts, weight)
        same[str(parts)] = True
        for _ in range(epochs):
            stretches = [(int(rng.randint(1, 5)), TINY) for _ in range(40)]
            cut = _epoch_calls(model, X, Y, order, 16, stretches, np.float32, parts, weight)
            assert len(cut[3]) > 20
            same[str(parts)] &= all(np.array_equal(a, b) for a, b in zip(reference[:3], cut[:3]))
    print(json.dumps(same))


def test_many_short_stretches_on_changing_thread_counts_never_hang():
    """Deadlock and race hunting: _stress in its own process, so a hang fails the test (the
    time limit is generous: the run takes about a second) instead of stopping the suite."""
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"2": True, "3": True, "4": True}


def test_a_time_limit_never_trains_fewer_than_one_batch():
    """An epoch of one batch trains whole whatever the limit; without a limit (0) a call
    trains every batch it is given."""
    rng = np.random.RandomState(1)
    X, y = rng.randn(50, 8).astype(np.float32), rng.randint(0, 2, 50)
    model = MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, random_state=0, batch_size=50,
                          n_threads=1).partial_fit(X, y, classes=[0, 1])
    Y = model._encode_targets(y, first=False)
    order = np.arange(50, dtype=np.int64)
    assert _epoch_calls(model, X, Y, order, 50, [(1, TINY)], np.float32, parts=1)[3] == [1]
    assert _epoch_calls(model, X, Y, order, 10, [(1, 0.0)], np.float32, parts=1)[3] == [5]


def test_fit_trains_in_bounded_stretches_with_the_bits_of_one_thread(monkeypatch, quiet):
    """The estimator bounds every call in time (Ctrl-C, progress and callbacks wait at most a
    stretch), and a fit whose stretches switch thread counts gives the bits of n_threads=1."""
    rng = np.random.RandomState(2)
    X, y = rng.randn(600, 64), rng.randint(0, 5, 600)
    limits = []
    original = _core.train_epoch

    def spy(*args):
        limits.append(args[16])  # max_seconds, before the layer health accumulator
        return original(*args)

    monkeypatch.setattr(fastmlp.network._core, "train_epoch", spy)
    kwargs = dict(hidden_layer_sizes=(100, 80), max_iter=3, random_state=0, batch_size=200)
    one = MLPClassifier(n_threads=1, **kwargs).fit(X, y)
    assert limits and all(0 < limit <= 0.5 for limit in limits)
    # every stretch two batches at most, on 1, 2, 1, 2, ... threads
    counts = iter([1, 2] * 100)
    monkeypatch.setattr(ThreadChoice, "stretch", lambda self: (next(counts), TINY))
    switching = MLPClassifier(n_threads=2, **kwargs).fit(X, y)
    assert switching._work_parts(200) == 2  # two parts: both counts really share the work
    assert np.array_equal(one._params, switching._params)
    assert one.loss_curve_ == switching.loss_curve_


class _Machine:
    """Runs ThreadChoice's stretches against made-up seconds per row for each thread count:
    a stretch trains as many rows as fit in its time limit. Without `core_use` the rates
    alone decide."""

    def __init__(self, per_row, core_use=None):
        self.choice = ThreadChoice(2, core_use=core_use)
        self.per_row = dict(per_row)

    def __call__(self):
        threads, seconds = self.choice.stretch()
        rows = max(1, round(seconds / self.per_row[threads]))
        self.choice.record(rows, threads, rows * self.per_row[threads])
        return threads, seconds

    def run(self, n):
        return [self()[0] for _ in range(n)]


def test_the_second_stretch_probes_and_a_busy_core_is_left_within_an_epoch():
    """The warm-up stretch's rate means nothing (page faults); the second stretch probes one
    thread, the third times two threads again, and the faster takes over; the change is
    checked by a probe at once, and on one thread the probes never thin out (only they can see
    the load go away)."""
    machine = _Machine({1: 1e-5, 2: 3e-5})  # one thread 3x faster: a busy second core
    assert machine() == (2, PROBE_SECONDS)
    assert machine() == (1, PROBE_SECONDS)
    assert machine() == (2, STRETCH_SECONDS)
    assert machine.choice.best == 1
    assert machine() == (2, PROBE_SECONDS)  # the change checked at once
    assert machine() == (1, STRETCH_SECONDS)
    assert machine.choice.best == 1
    # a probe, the verdict's stretch, then PROBE_EVERY stretches on the count in use
    counts = machine.run(3 * (PROBE_EVERY + 2) + 1)
    probes = [i for i, threads in enumerate(counts) if threads == 2]
    assert probes == [PROBE_EVERY, 2 * PROBE_EVERY + 2, 3 * PROBE_EVERY + 4]
    # the load goes away: the next probe finds two threads faster, and they stay
    machine.per_row[2] = 0.5e-5
    counts = machine.run(PROBE_EVERY + 6)
    switched = counts.index(2)
    assert machine.choice.best == 2
    # the probe, the verdict's stretch on one thread, the change checked by a probe of one
    assert counts[switched:switched + 4] == [2, 1, 1, 2]
    assert machine.run(PROBE_EVERY) == [2] * PROBE_EVERY


def test_probes_thin_out_while_they_confirm_all_threads():
    """Each probe that finds one thread clearly slower doubles the gap to the next, up to
    PROBE_EVERY_MAX stretches; a close call puts it back to PROBE_EVERY."""
    machine = _Machine({1: 1.8e-5, 2: 1e-5})
    counts = machine.run(400)
    probes = [i for i, threads in enumerate(counts) if threads == 1]
    gaps = np.diff(probes).tolist()
    assert probes[0] == 1 and machine.choice.best == 2
    # a probe, the verdict's stretch, then 16, 32, 64, 64, ... stretches on two threads
    assert gaps[:3] == [2 * PROBE_EVERY + 2, 4 * PROBE_EVERY + 2, PROBE_EVERY_MAX + 2]
    assert set(gaps[3:]) == {PROBE_EVERY_MAX + 2}
    machine.per_row[1] = 1.1e-5  # one thread only 10% slower: the probes come often again
    counts = machine.run(2 * PROBE_EVERY_MAX + 3 * PROBE_EVERY)
    gaps = np.diff([i for i, threads in enumerate(counts) if threads == 1]).tolist()
    assert gaps[-2:] == [PROBE_EVERY + 2, PROBE_EVERY + 2]


def test_a_slowdown_of_the_count_in_use_brings_the_probe_forward():
    """Between thinned-out probes, the count in use running much slower (the median of its
    latest stretches, so one slow stretch is noise) makes the next stretch probe."""
    machine = _Machine({1: 1.8e-5, 2: 1e-5})
    machine.run(100)
    choice = machine.choice
    assert choice.best == 2 and choice.next_probe > choice.stretches + 2
    machine.per_row[2] = 4e-5
    machine()  # one slow stretch: the median of three is still fast
    assert choice.next_probe > choice.stretches
    machine()  # two: the median is slow
    assert choice.stretch()[0] == 1
    machine.run(2)
    assert choice.best == 1


class _Cores:
    """A made-up CoreUse of 2 cores: `taken` is what the next window reports (None: the window
    is not complete)."""

    def __init__(self):
        self.cores, self.next = [0, 1], None

    def taken(self):
        return self.next


def test_a_core_taken_by_another_process_gives_fewer_threads_at_once():
    """Two threads as fast as one beside a busy core: the rates alone could not tell them
    apart, the other process's CPU time does. The choice goes to one thread as soon as a
    window shows the core taken, two threads must beat it by CLEAR_MARGIN to take over while
    the core stays taken, and when it is free again the next stretch probes two threads."""
    cores = _Cores()
    machine = _Machine({1: 1e-5, 2: 0.95e-5}, core_use=cores)
    machine.run(PROBE_EVERY + 3)
    assert machine.choice.best == 2 and not machine.choice.crowded
    cores.next = 1  # a busy loop on the second core
    machine()
    assert machine.choice.best == 1 and machine.choice.crowded
    cores.next = None  # windows not complete: the state holds
    counts = machine.run(4 * (PROBE_EVERY + 2))
    assert machine.choice.best == 1
    assert counts.count(2) == 4  # probes every PROBE_EVERY stretches; 5% faster is not enough
    machine.per_row[2] = 1e-5 / (1.1 * CLEAR_MARGIN)  # the other process idles on its core
    machine.run(PROBE_EVERY + 2)
    assert machine.choice.best == 2
    cores.next = 0  # it left: the crowding ends, and the choice goes on from the rates
    machine.per_row[2] = 0.95e-5
    machine()
    assert not machine.choice.crowded and machine.choice.fewer == 1
    assert machine.choice.best == 2


def test_beside_a_taken_core_probes_that_lose_thin_out_and_its_release_probes_at_once():
    """A busy loop on the second core from the start: one thread, and the probes of two
    threads that find them slower thin out as those of all threads winning do (each cost ~20
    ms of training beside the loop); two threads only 5% faster keep them every PROBE_EVERY,
    two threads clearly faster (the loop yields its core) take over within PROBE_EVERY_MAX
    stretches, and the core's release probes two threads at the next stretch."""
    cores = _Cores()
    cores.next = 1
    machine = _Machine({1: 1e-5, 2: 1.5e-5}, core_use=cores)
    assert machine.choice.crowded and machine.choice.best == 1
    counts = machine.run(400)
    probes = [i for i, threads in enumerate(counts) if threads == 2]
    gaps = np.diff(probes).tolist()
    assert probes[0] == PROBE_EVERY and machine.choice.best == 1
    assert gaps[:3] == [2 * PROBE_EVERY + 2, 4 * PROBE_EVERY + 2, PROBE_EVERY_MAX + 2]
    assert set(gaps[3:]) == {PROBE_EVERY_MAX + 2}
    machine.per_row[2] = 0.95e-5  # 5% faster: not enough to take over, but no confirmation
    counts = machine.run(PROBE_EVERY_MAX + 4 * (PROBE_EVERY + 2))
    gaps = np.diff([i for i, threads in enumerate(counts) if threads == 2]).tolist()
    assert machine.choice.best == 1 and gaps[-2:] == [PROBE_EVERY + 2, PROBE_EVERY + 2]
    machine.per_row[2] = 1.5e-5
    machine.run(200)  # thinned out again
    assert machine.choice.next_probe - machine.choice.stretches > PROBE_EVERY
    machine.per_row[2] = 1e-5 / (1.1 * CLEAR_MARGIN)  # the loop yields its core to us
    counts = machine.run(PROBE_EVERY_MAX + 2)
    assert machine.choice.best == 2 and machine.choice.crowded
    machine.per_row[2] = 1.5e-5
    machine.run(4 * (PROBE_EVERY + 2))
    assert machine.choice.best == 1  # two threads slower again: back to the core left
    machine.run(100)
    cores.next = 0  # the loop ended: the next stretch probes two threads
    machine.per_row[2] = 0.5e-5
    machine()
    assert not machine.choice.crowded and machine.choice.stretch()[0] == 2
    machine.run(PROBE_EVERY + 2)
    assert machine.choice.best == 2


def test_core_use_counts_the_others_cpu_time_over_windows(monkeypatch):
    """taken() compares the busy time of our cores with our own CPU time, once a window has
    passed: 0.5 s of a window of 1 s on two cores busy besides our 1 s is half a core, a
    core taken (TAKEN_SHARE)."""
    use = CoreUse.here()
    if use is None:
        pytest.skip("no /proc/stat: the rates alone decide (not Linux)")
    later = 11.0 + 2 * WINDOW_SECONDS
    readings = iter([(10.0, 100.0, 5.0), (11.0, 101.5, 6.0),
                     (later, 101.5 + 2 * WINDOW_SECONDS, 6.0 + 2 * WINDOW_SECONDS)])
    monkeypatch.setattr(use, "_read", lambda: next(readings))
    clock = iter([10.0 + WINDOW_SECONDS / 2, 11.0, later])
    monkeypatch.setattr(threads_module.time, "monotonic", lambda: next(clock))
    use.last = use._read()
    assert use.taken() is None  # half a window
    assert use.taken() == 1     # 1.5 busy - 1.0 ours = 0.5 of a core over 1 s
    assert use.taken() == 0     # only our own time


class _Proc:
    """Made-up /proc/stat and getrusage readings on a made-up clock (threads.py's): `run`
    passes time with this process busy on `ours` cores and other processes on `others`. The
    process's readings start with one taken at its import, now."""

    def __init__(self, monkeypatch, cores=(0, 1)):
        self.now, self.own, self.reads = 100.0, 0.0, 0
        self.busy = {f"cpu{c}": 0.0 for c in cores}  # ticks, as /proc/stat counts them
        self.tick = os.sysconf("SC_CLK_TCK")
        monkeypatch.setattr(threads_module, "time", self)  # its one use: time.monotonic()
        monkeypatch.setattr(threads_module, "_stat", self.stat)
        monkeypatch.setattr(threads_module, "_readings", collections.deque([self.stat()],
                                                                           maxlen=8))

    def monotonic(self):
        return self.now

    def stat(self):
        self.reads += 1
        return self.now, dict(self.busy), self.own

    def run(self, seconds, ours, others):
        self.now += seconds
        self.own += ours * seconds
        for line in self.busy:
            self.busy[line] += (ours + others) * seconds * self.tick / len(self.busy)


def test_a_core_taken_before_the_fit_sends_its_first_stretch_to_fewer_threads(monkeypatch):
    """A busy loop on the second core while the data loaded (our process on the first): the
    window since the import decides the first stretch, which runs on the core left, instead
    of two threads beside the loop until a window within the fit is complete."""
    proc = _Proc(monkeypatch)
    proc.run(1.0, ours=1, others=1)
    choice = ThreadChoice(2, core_use=CoreUse([0, 1]))
    assert choice.crowded and choice.stretch() == (1, PROBE_SECONDS)


def test_an_idle_or_a_stale_window_before_the_fit_keeps_all_threads(monkeypatch):
    """Our own CPU time on both cores (a BLAS pool, another fit in a thread of ours) is not
    the others'; and a window older than PRIOR_SECONDS is not read at all: a loop that ran for
    its first 3 s and stopped PRIOR_SECONDS - 1 s ago would count as a core taken over it."""
    proc = _Proc(monkeypatch)
    proc.run(1.0, ours=2, others=0.05)
    choice = ThreadChoice(2, core_use=CoreUse([0, 1]))
    assert not choice.crowded and choice.stretch() == (2, PROBE_SECONDS)
    proc = _Proc(monkeypatch)
    proc.run(3.0, ours=1, others=1)
    proc.run(PRIOR_SECONDS - 1, ours=1, others=0)
    assert 3.0 / (PRIOR_SECONDS + 2) >= TAKEN_SHARE
    choice = ThreadChoice(2, core_use=CoreUse([0, 1]))
    assert not choice.crowded and choice.stretch() == (2, PROBE_SECONDS)
    assert choice.core_use.last[0] == proc.now  # the window starts now


def test_a_window_begun_before_the_fit_completes_within_it(monkeypatch):
    """Imported 0.6 of a window before the fit: the window goes on from the import's reading,
    so the warm-up stretch that ends it (the loop at half a core beside our two threads) sends
    the next stretch to one thread."""
    proc = _Proc(monkeypatch)
    proc.run(0.6 * WINDOW_SECONDS, ours=1, others=1)
    choice = ThreadChoice(2, core_use=CoreUse([0, 1]))
    assert not choice.crowded and choice.stretch() == (2, PROBE_SECONDS)
    proc.run(0.6 * WINDOW_SECONDS, ours=1.5, others=0.5)
    choice.record(100, 2, 0.6 * WINDOW_SECONDS)
    assert choice.crowded and choice.stretch()[0] == 1


def test_a_later_call_starts_from_the_window_up_to_it_reading_once_a_window(monkeypatch):
    """partial_fit calls in quick succession read /proc/stat once a window, not once a call;
    a call after a pause in which a loop took the second core starts on the core left."""
    proc = _Proc(monkeypatch)
    choice = ThreadChoice(2, core_use=CoreUse([0, 1]))
    reads = proc.reads
    for _ in range(round(WINDOW_SECONDS / 0.01) - 1):
        choice.begin()
        threads, _ = choice.stretch()
        proc.run(0.01, ours=threads, others=0)
        choice.record(50, threads, 0.01)
    assert proc.reads == reads and not choice.crowded
    proc.run(1.0, ours=1, others=1)
    choice.begin()
    assert proc.reads == reads + 1
    assert choice.crowded and choice.stretch()[0] == 1


def test_fit_starts_on_the_cores_left_and_a_refit_sees_them_free(monkeypatch, quiet):
    """Through the estimator: other processes on all our cores but one while the data loaded,
    so the fit's first stretch runs one thread; the refit of the same work (its thread choice
    goes on) after they left starts by probing all threads. The made-up clock moves on by each
    stretch's limit, with our stretch's threads and the other processes busy."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2 or threads_module.resource is None:
        pytest.skip("needs /proc and 2 cores")
    rng = np.random.RandomState(2)
    X, y = rng.randn(600, 64), rng.randint(0, 5, 600)
    model = MLPClassifier(hidden_layer_sizes=(100, 80), max_iter=2, random_state=0,
                          batch_size=200, n_threads=2)
    assert model._work_parts(200, {"n_weights": 64 * 100 + 100 * 80 + 80 * 5}) == 2
    proc = _Proc(monkeypatch, cores)
    others = len(cores) - 1
    first_threads = []  # of each fit's first stretch
    original = _core.train_epoch

    def spy(*args):
        if len(first_threads) < fits:
            first_threads.append(args[15])
        proc.run(args[16], ours=args[15], others=others)
        return original(*args)

    monkeypatch.setattr(fastmlp.network._core, "train_epoch", spy)
    proc.run(1.0, ours=1, others=others)
    fits = 1
    model.fit(X, y)
    assert first_threads == [1]
    others = 0
    proc.run(1.0, ours=1, others=0)
    fits = 2
    model.fit(X, y)
    assert first_threads == [1, 2]


def test_core_use_sees_a_busy_process_on_our_cores():
    """A busy loop pinned to one of our cores takes it, whatever else the machine runs (the
    others' share only grows with more load)."""
    use = CoreUse.here()
    if use is None or len(use.cores) < 2:
        pytest.skip("needs /proc/stat and 2 cores")
    # the loop says when it runs: its interpreter's start (slow under the sanitizer build's
    # preloaded runtime) is not the loop, and a window over it once read 0 cores taken
    hog = subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
                           stdout=subprocess.PIPE)
    try:
        os.sched_setaffinity(hog.pid, {use.cores[-1]})
        hog.stdout.readline()
        taken = None
        use.taken()  # start a window with the hog running
        while taken is None:
            taken = use.taken()
    finally:
        hog.kill()
        hog.wait()
    assert taken >= 1


def test_one_thread_has_nothing_to_choose():
    choice = ThreadChoice(1)
    for _ in range(20):
        assert choice.stretch() == (1, ALONE_SECONDS)
        choice.record(100, 1, 0.01)


def test_every_stretch_limit_stays_short():
    """loop-level reactions (Ctrl-C, progress, callbacks) wait for the end of a stretch."""
    assert max(PROBE_SECONDS, STRETCH_SECONDS, ALONE_SECONDS) <= 0.5
    assert threads_module.SLOWDOWN > threads_module.SWITCH_MARGIN > 1


if __name__ == "__main__":
    _stress()


def test_predictions_use_the_cores_other_processes_leave(monkeypatch):
    """CoresLeft (predict's thread count): all threads on an idle machine, one beside a busy
    loop on the second core within a window of it, all again once the loop has stopped; the
    window is read once per WINDOW_SECONDS however many predictions ask."""
    proc = _Proc(monkeypatch)
    cores_left = threads_module.CoresLeft(core_use=CoreUse([0, 1]))
    proc.run(1.0, ours=1, others=0)
    assert cores_left(2) == 2
    proc.run(1.0, ours=1, others=1)
    assert cores_left(2) == 1 and cores_left(4) == 1  # n_threads=4 on 2 cores: 1 left too
    reads = proc.reads
    for _ in range(10):  # 10 calls within a window: its verdict, no reading
        proc.run(WINDOW_SECONDS / 20, ours=1, others=1)
        assert cores_left(2) == 1
    assert proc.reads == reads
    proc.run(1.0, ours=1, others=0)
    assert cores_left(2) == 2 and proc.reads == reads + 1
    assert cores_left(1) == 1


def test_a_prediction_never_waits_for_another_reading_the_window(monkeypatch):
    """While one call reads the window (its lock held), another takes the latest verdict at
    once; where /proc cannot be read, every call may use all its threads."""
    proc = _Proc(monkeypatch)
    cores_left = threads_module.CoresLeft(core_use=CoreUse([0, 1]))
    proc.run(1.0, ours=1, others=1)
    assert cores_left(2) == 1
    proc.run(1.0, ours=1, others=0)  # the core is free again, but the window is being read
    with cores_left._lock:
        reads = proc.reads
        assert cores_left(2) == 1 and proc.reads == reads
    assert cores_left(2) == 2
    assert threads_module.CoresLeft(core_use=None)(2) == 2


def test_predict_beside_a_busy_core_runs_on_the_core_left(monkeypatch):
    """A model's predictions of 257 rows and more ask CoresLeft (one thread beside the loop,
    the same bits as two), fewer rows run on one thread without asking."""
    X = np.random.RandomState(0).rand(600, 20).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    model = MLPClassifier(hidden_layer_sizes=(30,), max_iter=2, random_state=0, n_threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    proc = _Proc(monkeypatch)  # the clock and /proc/stat made up from here on
    monkeypatch.setattr(threads_module, "cores_left",
                        threads_module.CoresLeft(core_use=CoreUse([0, 1])))
    proc.run(1.0, ours=1, others=0)
    assert model._threads_for(600) == 2
    two = model.predict_proba(X)
    proc.run(1.0, ours=1, others=1)
    assert model._threads_for(600) == 1 and model._threads_for(256) == 1
    np.testing.assert_array_equal(model.predict_proba(X), two)
