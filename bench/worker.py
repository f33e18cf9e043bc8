"""One measurement in a fresh process: `python bench/worker.py '<json spec>'` prints one JSON line.

The driver (run.py) starts one worker per contender and measurement, so no library's thread pool
(spinning after its work) or allocator state leaks into the next contender's numbers. The thread
caps are in the environment the driver passes; the worker also pins itself to that many cores."""
import importlib
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "contenders"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import common  # noqa: E402


def contender(name):
    return importlib.import_module(name + "_")


def gemm(spec):
    """numpy's float32 GEMM rate on 2048^3 (2 * 2048^3 flops per product): the ceiling."""
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(spec["threads"])
    size = spec.get("size", 2048)
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    c = np.empty_like(a)
    for _ in range(2):
        np.matmul(a, b, out=c)
    times = []
    deadline = time.perf_counter() + spec.get("min_seconds", 2.0)
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
        started = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - started)
    # the best product, not the median: the ceiling is what the hardware can do, and other work
    # on the machine only ever slows a product down
    seconds = float(np.min(times))
    blas = [f"{lib.get('internal_api')} {lib.get('version')}" for lib in threadpool_info()
            if lib.get("user_api") == "blas"]
    return {"gflops": 2 * size**3 / seconds / 1e9, "seconds": seconds,
            "median_gflops": 2 * size**3 / float(np.median(times)) / 1e9, "blas": blas,
            "version": np.__version__}


def train(spec):
    hidden, batch = common.TRAIN_CONFIGS[spec["config"]]
    X, y = common.mnist_like(spec["n"])
    module = contender(spec["contender"])
    started = time.perf_counter()
    trainer = module.trainer(hidden, batch, X, y, spec["threads"])
    built = time.perf_counter()
    trainer.run(1)  # compile, allocate, fault pages in: never timed for anyone
    warm = time.perf_counter() - built
    epoch_seconds, k = common.time_epochs(trainer.run, warm, spec["min_seconds"])
    out = {"epoch_seconds": epoch_seconds, "epochs_timed": k, "warmup_seconds": warm,
           "setup_seconds": built - started,
           "samples_per_epoch": trainer.samples_per_epoch,
           "samples_per_second": trainer.samples_per_epoch / epoch_seconds,
           "version": trainer.version}
    if hasattr(trainer, "extra"):
        out.update(trainer.extra())
    return out


def reference_proba(layers, X):
    h = X.astype(np.float64)
    for W, b in layers[:-1]:
        h = np.maximum(h @ W + b, 0)
    z = h @ layers[-1][0] + layers[-1][1]
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def export(spec):
    """ONNX files from the torch model holding each configuration's weights."""
    module = contender("torch")
    for name in spec["configs"]:
        hidden, _ = common.TRAIN_CONFIGS[name]
        module.export_onnx(common.glorot_weights(hidden), os.path.join(spec["dir"], name + ".onnx"))
    return {"version": module.version()}


def predict(spec):
    """Bulk predict_proba over `rows` rows (threads: spec threads) and the latency of one row
    (a (1, 784) float32 C-contiguous array; one thread for the contenders that take a count)."""
    hidden, _ = common.TRAIN_CONFIGS[spec["config"]]
    layers = common.glorot_weights(hidden)
    X, _ = common.mnist_like(spec["rows"], seed=1)
    name = spec["contender"]
    module = contender(name)
    extra_args = (os.path.join(spec["dir"], spec["config"] + ".onnx"),) if name == "onnxruntime" else ()

    bulk = module.predictor(layers, spec["threads"], *extra_args)
    counted = ThreadsCounted.install() if name.startswith("fastmlp") else None
    P = bulk(X)
    error = float(np.abs(P[:200] - reference_proba(layers, X[:200])).max())
    times = []
    common.collect_garbage()
    deadline = time.perf_counter() + spec["min_seconds"]
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 100):
        started = time.perf_counter()
        bulk(X)
        times.append(time.perf_counter() - started)
    bulk_seconds = float(np.median(times))
    # how many bulk calls ran on each thread count: a rate near one thread's says whether
    # prediction's core-use verdict (threads.CoresLeft) chose one thread, or the cores were slow
    bulk_threads = None if counted is None else counted.calls_by_threads()

    if name == "torch":
        import torch
        torch.set_num_threads(1)
    one = bulk if name == "fastmlp" else module.predictor(layers, 1, *extra_args)
    row = np.ascontiguousarray(X[:1])
    for _ in range(200):
        one(row)
    latencies = np.empty(spec["calls"])
    common.collect_garbage()
    clock = time.perf_counter_ns
    for i in range(spec["calls"]):
        started = clock()
        one(row)
        latencies[i] = clock() - started
    return {"bulk_seconds": bulk_seconds, "rows_per_second": spec["rows"] / bulk_seconds,
            "latency_us": float(np.median(latencies)) / 1e3,
            "latency_p90_us": float(np.percentile(latencies, 90)) / 1e3,
            "max_abs_error": error, "bulk_calls_by_threads": bulk_threads,
            "version": module.version()}


class ThreadsCounted:
    """fastmlp.threads.cores_left, counting the thread counts it gives the bulk calls (the
    prediction module reads it by that name on every call of 256 rows or more)."""

    def __init__(self, inner):
        self.inner, self.counts = inner, {}

    @classmethod
    def install(cls):
        from fastmlp import threads
        counted = cls(threads.cores_left)
        threads.cores_left = counted
        return counted

    def __call__(self, most):
        n = self.inner(most)
        self.counts[n] = self.counts.get(n, 0) + 1
        return n

    def calls_by_threads(self):
        """{threads: calls} since the last reading (the first call, the warm-up, included)."""
        counts, self.counts = {str(k): v for k, v in sorted(self.counts.items())}, {}
        return counts


def memory(spec):
    """RSS before X exists, after, and the process peak after one epoch of fit."""
    hidden, batch = common.TRAIN_CONFIGS[spec["config"]]
    name = spec["contender"]
    module = contender(name.split(":")[0])
    module.version()  # the library's import (and its BLAS) lands before the first reading
    if name.startswith("sklearn"):
        import sklearn.neural_network  # noqa: F401
    before = common.rss_bytes()
    X, y = common.mnist_like(spec["n"])
    after_x = common.rss_bytes()
    peak_before_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if name == "fastmlp:normalize=auto":
        clf = module._estimator(hidden, batch, spec["threads"]).set_params(normalize="auto")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
    else:
        module.trainer(hidden, batch, X, y, spec["threads"]).run(1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss_before": before, "rss_after_x": after_x, "peak_before_fit": peak_before_fit,
            "peak": peak, "x_bytes": X.nbytes, "growth_bytes": peak - after_x,
            "growth_pct_of_x": 100.0 * (peak - after_x) / X.nbytes, "version": module.version()}


TASKS = {"gemm": gemm, "train": train, "export": export, "predict": predict, "memory": memory}


def main():
    spec = json.loads(sys.argv[1])
    common.pin_cores(spec.get("threads", 2))
    load_start = os.getloadavg()[0]
    try:
        result = TASKS[spec["task"]](spec)
    except ImportError as error:  # an optional contender that is not installed
        result = {"skipped": f"not installed: {error}"}
    # 1-minute load averages around the measurement: above the thread count means other work
    # competed for the cores, and the figure is to be trusted less
    result["load"] = [load_start, os.getloadavg()[0]]
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
