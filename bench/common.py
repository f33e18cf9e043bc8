"""Shared by the driver and the workers: the configurations, the data and the timing rules.

Kept free of any contender's import so that a worker loads only the library it measures."""
import gc
import importlib.util
import os
import subprocess
import time

import numpy as np

N_FEATURES = 784
N_CLASSES = 10
LEARNING_RATE = 0.01
MOMENTUM = 0.9


def _load_benchmark():
    """src/fastmlp/benchmark.py loaded by its path, not through the fastmlp package: its imports
    are the standard library's alone, so a worker measuring another library never loads
    fastmlp (nor its BLAS). The configurations, the flop counts and the FMA probe are those of
    `python -m fastmlp bench`."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src",
                        "fastmlp", "benchmark.py")
    spec = importlib.util.spec_from_file_location("_fastmlp_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()
# name -> (hidden layer sizes, mini-batch size), as issue 6 fixes them
TRAIN_CONFIGS = benchmark.STANDARD_CONFIGS


def units(hidden):
    """[784, *hidden, 10]: the width of every layer, input and output included."""
    return [N_FEATURES, *hidden, N_CLASSES]


def train_flops_per_sample(hidden):
    """2 per multiply-add of forward and dW of every layer, and of dJ/dh of all but the first."""
    return benchmark.train_flops_per_sample(units(hidden))


def predict_flops_per_sample(hidden):
    return benchmark.predict_flops_per_sample(units(hidden))


def mnist_like(n, seed=0):
    """(X, y): n x 784 float32 'pixels' in [0, 1) and 10 classes that a linear model can learn,
    so a training run can be sanity-checked by its loss. Made in float32 directly: no float64
    temporary, which matters for the memory benchmark."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, N_FEATURES), dtype=np.float32)
    teacher = np.random.default_rng(12345).standard_normal((N_FEATURES, N_CLASSES)).astype(np.float32)
    y = np.empty(n, dtype=np.int64)
    for start in range(0, n, 4096):  # in chunks: a temporary as large as X would raise peak RSS
        y[start:start + 4096] = ((X[start:start + 4096] - 0.5) @ teacher).argmax(axis=1)
    return X, y


def glorot_weights(hidden, seed=0):
    """[(W (n_in, n_out), b (n_out,)), ...] float32, Glorot uniform weights and small biases:
    the one set of weights every inference contender loads."""
    rng = np.random.default_rng(seed)
    u = units(hidden)
    layers = []
    for n_in, n_out in zip(u[:-1], u[1:]):
        bound = np.sqrt(6.0 / (n_in + n_out))
        W = rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)
        b = rng.uniform(-0.1, 0.1, n_out).astype(np.float32)
        layers.append((W, b))
    return layers


def thread_env(threads):
    """Environment that caps the thread pools a worker may load (OpenMP, OpenBLAS, MKL) at
    `threads`; it must be set before the libraries are imported. XLA has no such variable: the
    worker pins itself to `threads` cores instead (pin_cores), which bounds every pool alike."""
    env = dict(os.environ)
    t = str(threads)
    env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t,
               NUMEXPR_NUM_THREADS=t, VECLIB_MAXIMUM_THREADS=t)
    return env


def pin_cores(threads):
    """Restrict this process to the first `threads` of its cores (a no-op where it has no more),
    so that a library which sizes its pool from the machine still computes on `threads` cores."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: rely on the environment variables alone
        return
    if len(cores) > threads:
        os.sched_setaffinity(0, cores[:threads])


def collect_garbage():
    """A full garbage collection before a timed stretch, for every contender alike. Importing
    scikit-learn leaves ~110k objects that Python's collector has not yet moved to its oldest
    generation; its first full collection then takes ~60 ms here, and lands in whichever call
    crosses the threshold: a contender whose loop allocates Python objects (a fit's validation,
    an eager loop's tensors) would pay for the imports inside its timing. The collector stays on:
    garbage a contender makes while timed is its own."""
    gc.collect()


def time_epochs(run, first_epoch_seconds, min_seconds, max_epochs=20):
    """Per-epoch seconds of `run(k)` (k whole epochs), after the warm-up epoch already run.

    k is chosen from the warm-up epoch so that the timed stretch lasts about `min_seconds`
    (at least one epoch); each call of run(k) is timed as a whole and divided by k."""
    k = int(np.clip(np.ceil(min_seconds / max(first_epoch_seconds, 1e-6)), 1, max_epochs))
    collect_garbage()
    started = time.perf_counter()
    run(k)
    return (time.perf_counter() - started) / k, k


def status_mb(field):
    """VmRSS (resident now) or VmHWM (its peak) of this process, in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak():
    """Linux 4.0 on: writing 5 to clear_refs resets VmHWM to the current resident size."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_bytes():
    """Current resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def train_epoch_seconds(model, X, Y, batch_size, epochs, threads, health=None):
    """Median wall and CPU seconds of `epochs` epochs of the fitted `model`'s C trainer
    (_core.train_epoch at learning rate 0.01, float32) over X's rows in a
    fresh random order each, after one warm-up epoch; `health`, if given, is reset and
    counted each epoch as fit counts it. The parts are those of fit, whatever `threads`."""
    from fastmlp import _core
    from fastmlp._config import blas_single_threaded
    from fastmlp.optim import hyperparameters

    rng = np.random.RandomState(0)
    n = X.shape[0]
    parts = model._work_parts(batch_size)
    net, data = model._net(), model._input(X)
    params, state = model._params, model._state
    grads = np.zeros(model._layout["n_trainable"], dtype=np.float32)
    workspace = np.zeros(net.workspace_size(batch_size, parts, np.float32, False),
                         dtype=np.float32)
    batch_loss = np.zeros(_core.epoch_batches(n, batch_size, False))
    hyper = hyperparameters(model, 0.01, "constant", params.dtype)
    seconds, cpu_seconds, t = [], [], model._n_updates
    with blas_single_threaded():
        for epoch in range(epochs + 1):
            order = rng.permutation(n).astype(np.int64)
            started, cpu = time.perf_counter(), time.process_time()
            if health is not None:
                health.reset()
            t = _core.train_epoch(net, hyper, data, params, grads, state, workspace, batch_loss,
                                  Y, None, order, batch_size, model._seed, t, parts, threads, 0,
                                  health)
            if epoch:
                seconds.append(time.perf_counter() - started)
                cpu_seconds.append(time.process_time() - cpu)
    return float(np.median(seconds)), float(np.median(cpu_seconds)), parts


NEAR_NS = 150  # round trip between cores sharing an L3 here: 50-90 ns; not sharing: 300-370


class Placement:
    """bench/placement.c, built on first use with the C compiler fastmlp's build needs anyway:
    the round trip of a cache line between the first two cores, in ns (None: not measurable)."""

    def __init__(self, out):
        self.binary = os.path.join(out, "placement.tmp")
        try:
            os.makedirs(out, exist_ok=True)
            subprocess.run(["cc", "-O2", "-pthread", os.path.join(os.path.dirname(os.path.abspath(__file__)), "placement.c"), "-o",
                            self.binary], check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            self.binary = None

    def round_trip_ns(self):
        if self.binary is None:
            return None
        try:
            value = float(subprocess.run([self.binary], capture_output=True, text=True,
                                         timeout=30).stdout.strip())
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        return None if value != value else value  # NaN: a single core
