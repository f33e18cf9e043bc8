"""``python -m fastmlp bench``: training and prediction throughput measured against the machine.

The yardstick is the FMA peak of the CPU that runs the benchmark, not another library: a small C
probe of independent fused multiply-add chains, compiled at run time for the widest vector the
CPU has (AVX-512, else AVX2 with FMA, else scalar), measures the float32 and float64 peak on one
thread and on all of them. Every throughput is then a share of that peak, beside the ratio to
each installed peer (PyTorch, JAX, scikit-learn, onnxruntime), each measured in its own process
so that no library's thread pool or allocator touches the next one's figures.

Flops counted per trained sample: 2 per multiply-add of the forward product and of the weight
gradient of every layer, and of the input gradient dJ/dh of every layer but the first (nobody
needs dJ/dX). Per predicted row: 2 per multiply-add of the forward products.
"""
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings

N_FEATURES = 784
N_CLASSES = 10
# name -> (hidden layer sizes, mini-batch size)
STANDARD_CONFIGS = {
    "784-100-10": ((100,), 200),        # scikit-learn's default MLP shape and batch
    "784-256-256-10": ((256, 256), 64),
    "784-1024-1024-10": ((1024, 1024), 256),
}
TRAINERS = ["fastmlp", "torch", "jax", "sklearn"]
PREDICTORS = ["fastmlp", "torch", "onnxruntime"]
PEERS = ["torch", "jax", "sklearn", "onnxruntime"]
LABELS = {"fastmlp": "fastmlp", "torch": "PyTorch", "jax": "JAX (jit)",
          "sklearn": "scikit-learn", "onnxruntime": "onnxruntime"}

# The probe: CHAINS independent accumulators per thread, each acc = acc * m + a, so that the
# FMA units, not the 4-cycle latency of one chain, bound the rate (two FMA pipes of latency 4
# need 8 chains in flight; AVX-512's 32 registers take 16, AVX2's 16 take 12).
FMA_PROBE_SOURCE = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#define ISA "avx512"
#define CHAINS 16
typedef __m512 vf;
typedef __m512d vd;
#define F_LANES 16
#define F_SET _mm512_set1_ps
#define F_FMA _mm512_fmadd_ps
#define F_SUM(v) _mm512_reduce_add_ps(v)
#define D_SET _mm512_set1_pd
#define D_FMA _mm512_fmadd_pd
#define D_SUM(v) _mm512_reduce_add_pd(v)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ISA "avx2"
#define CHAINS 12
typedef __m256 vf;
typedef __m256d vd;
#define F_LANES 8
#define F_SET _mm256_set1_ps
#define F_FMA _mm256_fmadd_ps
static float F_SUM(__m256 v) { float x[8]; _mm256_storeu_ps(x, v); return x[0] + x[7]; }
#define D_SET _mm256_set1_pd
#define D_FMA _mm256_fmadd_pd
static double D_SUM(__m256d v) { double x[4]; _mm256_storeu_pd(x, v); return x[0] + x[3]; }
#else
#define ISA "scalar"
#define CHAINS 12
typedef float vf;
typedef double vd;
#define F_LANES 1
#define F_SET(x) (x)
#define F_FMA(a, b, c) ((a) * (b) + (c))
#define F_SUM(v) (v)
#define D_SET(x) (x)
#define D_FMA(a, b, c) ((a) * (b) + (c))
#define D_SUM(v) (v)
#endif
#define D_LANES (F_LANES > 1 ? F_LANES / 2 : 1)

typedef struct { long iters; int dbl; double sink, seconds; } job;

static double cpu_now(void)  /* this thread's CPU time: what other processes take is not in it */
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *run(void *arg)
{
    job *j = (job *)arg;
    const double start = cpu_now();
    double s = 0;
    if (!j->dbl) {
        vf acc[CHAINS], m = F_SET(0.9999999f), a = F_SET(1e-7f);
        for (int c = 0; c < CHAINS; c++) acc[c] = F_SET((float)c);
        for (long i = 0; i < j->iters; i++)
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++) acc[c] = F_FMA(acc[c], m, a);
        for (int c = 0; c < CHAINS; c++) s += F_SUM(acc[c]);
    } else {
        vd acc[CHAINS], m = D_SET(0.9999999), a = D_SET(1e-7);
        for (int c = 0; c < CHAINS; c++) acc[c] = D_SET((double)c);
        for (long i = 0; i < j->iters; i++)
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++) acc[c] = D_FMA(acc[c], m, a);
        for (int c = 0; c < CHAINS; c++) s += D_SUM(acc[c]);
    }
    j->sink = s;
    j->seconds = cpu_now() - start;
    return NULL;
}

/* GFLOP/s of `threads` threads running `iters` iterations each, all at once: the sum of each
 * thread's flops over its own CPU time, so time a thread spent descheduled (a shared machine)
 * does not count, while two threads sharing one core's FMA units (SMT) each run at half rate */
static double rate(int threads, long iters, int dbl, double *sink)
{
    pthread_t tid[256];
    job jobs[256];
    for (int t = 0; t < threads; t++) {
        jobs[t].iters = iters; jobs[t].dbl = dbl;
        if (t) pthread_create(&tid[t], NULL, run, &jobs[t]);
    }
    run(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    double total = 0;
    for (int t = 0; t < threads; t++) {
        *sink += jobs[t].sink;
        total += 2.0 * CHAINS * (dbl ? D_LANES : F_LANES) * (double)iters / jobs[t].seconds / 1e9;
    }
    return total;
}

int main(int argc, char **argv)
{
    /* probe THREADS SECONDS REPEATS: the best of REPEATS runs of about SECONDS each */
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    const double seconds = argc > 2 ? atof(argv[2]) : 0.2;
    const int repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    double sink = 0;
    long iters = 1000;
    for (;;) {  /* calibrate on one thread */
        const double start = cpu_now();
        rate(1, iters, 0, &sink);
        if (cpu_now() - start > seconds / 4 || iters > (1L << 40)) break;
        iters *= 2;
    }
    iters *= 4;
    double best[2][2] = {{0, 0}, {0, 0}};
    for (int r = 0; r < repeats; r++)
        for (int dbl = 0; dbl < 2; dbl++)
            for (int all = 0; all < 2; all++) {
                const double g = rate(all ? threads : 1, iters, dbl, &sink);
                if (g > best[dbl][all]) best[dbl][all] = g;
            }
    printf("{\"isa\": \"%s\", \"lanes_f32\": %d, \"chains\": %d, \"threads\": %d, "
           "\"f32_1\": %.3f, \"f32_all\": %.3f, \"f64_1\": %.3f, \"f64_all\": %.3f, "
           "\"sink\": %g}\n", ISA, F_LANES, CHAINS, threads, best[0][0], best[0][1], best[1][0],
           best[1][1], sink != sink ? 0.0 : 1.0);
    return 0;
}
"""


def available_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _compiler():
    """A C compiler command, or None."""
    for name in [os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc", "clang"]:
        if name and shutil.which(name.split()[0]):
            return name.split()
    return None


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_mhz():
    try:
        with open("/proc/cpuinfo") as f:
            return max(float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        return None


def estimated_fma_peak(threads):
    """The FMA peak from what the CPU says it is, without measuring: two FMA units of its widest
    vector per core at the clock /proc/cpuinfo reports (Linux). An estimate only: CPUs that
    split 512-bit FMAs in two (AMD Zen 4) or clock down under AVX-512 reach less."""
    flags, mhz = _cpu_flags(), _cpu_mhz()
    isa, lanes = ("avx512", 16) if "avx512f" in flags else \
        ("avx2", 8) if {"avx2", "fma"} <= flags else ("scalar", 1)
    per_cycle = 2 * 2 * lanes  # two units, 2 flops per multiply-add
    peak = {"isa": isa, "lanes_f32": lanes, "threads": threads, "measured": False,
            "note": "no C compiler: estimated from the CPU's flags and clock, not measured"}
    if mhz is None:
        peak.update(f32_1=None, f32_all=None, f64_1=None, f64_all=None)
        peak["note"] = "no C compiler and no clock reading: the FMA peak is unknown"
        return peak
    one = per_cycle * mhz / 1e3
    peak.update(f32_1=one, f32_all=one * threads, f64_1=one / 2, f64_all=one * threads / 2)
    return peak


def fma_peak(threads=None, seconds=0.2, repeats=5):
    """The CPU's fused multiply-add peak, measured by a C probe built at run time.

    Parameters
    ----------
    threads : int, default=None
        Threads of the "all" measurement; None means every core this process may use.
    seconds : float, default=0.2
        Length of one timed run of the probe.
    repeats : int, default=5
        Runs per measurement; the best counts (other work only ever slows a run down).

    Returns
    -------
    peak : dict
        ``f32_1``, ``f32_all``, ``f64_1``, ``f64_all`` (GFLOP/s on one thread and on
        ``threads``), ``isa`` ("avx512", "avx2" or "scalar": the vectors the probe was built
        for), ``measured`` (False when no compiler was found and the peak is an estimate from
        the CPU's flags and clock) and ``note``.

    Raises
    ------
    ValueError
        If threads, seconds or repeats is not positive.

    See Also
    --------
    bench : the benchmark that reports every rate as a share of this peak.

    Examples
    --------
    >>> from fastmlp.benchmark import fma_peak
    >>> peak = fma_peak(threads=1, seconds=0.01, repeats=1)
    >>> peak["f32_1"] > 0
    True
    """
    threads = available_cores() if threads is None else threads
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if not (seconds > 0 and isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"seconds and repeats must be positive, got {seconds!r} and {repeats!r}")
    cc = _compiler()
    if cc is None:
        return estimated_fma_peak(threads)
    with tempfile.TemporaryDirectory(prefix="fastmlp-fma-") as tmp:
        source, binary = os.path.join(tmp, "fma_peak.c"), os.path.join(tmp, "fma_peak")
        with open(source, "w") as f:
            f.write(FMA_PROBE_SOURCE)
        built = None
        # -march=native: the widest vectors this CPU has; plain -O2 where the compiler lacks it
        for flags in (["-O3", "-march=native"], ["-O3"]):
            try:
                subprocess.run(cc + flags + [source, "-o", binary, "-pthread"], check=True,
                               capture_output=True, timeout=120)
                built = flags
                break
            except (OSError, subprocess.SubprocessError):
                continue
        if built is None:
            return estimated_fma_peak(threads)
        done = subprocess.run([binary, str(threads), str(seconds), str(repeats)],
                              capture_output=True, text=True, timeout=60 + 8 * seconds * repeats)
    peak = json.loads(done.stdout)
    peak.pop("sink", None)
    peak.update(measured=True, note=f"C probe, {peak['chains']} independent FMA chains of "
                                    f"{peak['isa']} vectors per thread, timed by each thread's "
                                    f"CPU time, built with {' '.join(cc + built)}")
    return peak


def train_flops_per_sample(units):
    """Flops of one trained sample of an MLP with layer widths `units` (inputs first): 2 per
    multiply-add of every layer's forward product and weight gradient, and of every layer's
    input gradient but the first layer's."""
    weights = [a * b for a, b in zip(units[:-1], units[1:])]
    return 4 * sum(weights) + 2 * sum(weights[1:])


def predict_flops_per_sample(units):
    """Flops of one predicted row: 2 per multiply-add of the forward products."""
    return 2 * sum(a * b for a, b in zip(units[:-1], units[1:]))


# ------------------------------------------------------------------ the worker (its own process)

def _data(n, seed=0):
    """n x 784 float32 'pixels' in [0, 1) and 10 classes a linear teacher gives them."""
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.random((n, N_FEATURES), dtype=np.float32)
    teacher = np.random.default_rng(12345).standard_normal((N_FEATURES, N_CLASSES))
    y = ((X - 0.5) @ teacher.astype(np.float32)).argmax(axis=1).astype(np.int64)
    y[:N_CLASSES] = np.arange(N_CLASSES)  # every class present, even in tiny runs
    return X, y


def _glorot(units, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (n_in + n_out))
        layers.append((rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32),
                       rng.uniform(-0.1, 0.1, n_out).astype(np.float32)))
    return layers


def _fastmlp(hidden, batch, X, y, threads):
    """run(k): k more epochs of fit; predict: the fitted model's predict_proba."""
    import fastmlp
    clf = fastmlp.MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.01,
                                momentum=0.9, nesterovs_momentum=False, alpha=0.0,
                                batch_size=batch, max_iter=1, tol=0.0, n_iter_no_change=10**6,
                                normalize=None, n_threads=threads, random_state=0,
                                warm_start=True)

    def run(k):
        clf.set_params(max_iter=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: stopping at max_iter is meant
            clf.fit(X, y)
    return run, X.shape[0], lambda X: clf.predict_proba(X), fastmlp.__version__


def _sklearn(hidden, batch, X, y, threads):
    import sklearn
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
    clf = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.01,
                        momentum=0.9, nesterovs_momentum=False, alpha=0.0, batch_size=batch,
                        max_iter=1, tol=0.0, n_iter_no_change=10**6, random_state=0,
                        warm_start=True)

    def run(k):
        clf.set_params(max_iter=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
    return run, X.shape[0], None, sklearn.__version__


def _torch_model(units):
    import torch
    layers = []
    for i, (n_in, n_out) in enumerate(zip(units[:-1], units[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(units) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch(hidden, batch, X, y, threads):
    """Eager PyTorch: Linear/ReLU, SGD(momentum=0.9), cross-entropy over randperm batches."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _torch_model([N_FEATURES, *hidden, N_CLASSES])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def run(k):
        for _ in range(k):
            order = torch.randperm(Xt.shape[0])
            for start in range(0, Xt.shape[0], batch):
                rows = order[start:start + batch]
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(Xt[rows]), yt[rows]).backward()
                opt.step()

    def predict(X):
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(X)), dim=1).numpy()
    return run, X.shape[0], predict, torch.__version__


def _jax(hidden, batch, X, y, threads):
    """One jax.jit per epoch: a permutation, then lax.scan over equal batches (the n % batch
    rows left over are dropped and not credited)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    n_batches = X.shape[0] // batch
    units = [N_FEATURES, *hidden, N_CLASSES]
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in _glorot(units)]
    velocity = jax.tree_util.tree_map(jnp.zeros_like, params)

    def loss_fn(params, xb, yb):
        h = xb
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        logp = jax.nn.log_softmax(h @ params[-1][0] + params[-1][1])
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def epoch(params, velocity, X, y, key):
        order = jax.random.permutation(key, X.shape[0])[:n_batches * batch]

        def body(carry, rows):
            params, velocity = carry
            grads = jax.grad(loss_fn)(params, X[rows], y[rows])
            velocity = jax.tree_util.tree_map(lambda v, g: 0.9 * v + g, velocity, grads)
            params = jax.tree_util.tree_map(lambda p, v: p - 0.01 * v, params, velocity)
            return (params, velocity), None

        (params, velocity), _ = jax.lax.scan(body, (params, velocity),
                                             order.reshape(n_batches, batch))
        return params, velocity

    step = jax.jit(epoch, donate_argnums=(0, 1))
    state = {"params": params, "velocity": velocity, "key": jax.random.PRNGKey(1)}
    Xj, yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def run(k):
        for _ in range(k):
            state["key"], sub = jax.random.split(state["key"])
            state["params"], state["velocity"] = step(state["params"], state["velocity"], Xj, yj,
                                                      sub)
        jax.block_until_ready(state["params"])
    return run, n_batches * batch, None, jax.__version__


def _onnxruntime(hidden, threads):
    """predict: an ONNX graph (MatMul, Add, Relu ..., Softmax) of Glorot weights, sequential
    execution, every graph optimization."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    units = [N_FEATURES, *hidden, N_CLASSES]
    nodes, inits, name = [], [], "x"
    for i, (W, b) in enumerate(_glorot(units)):
        inits += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [name, f"W{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        name = f"a{i}"
        if i < len(units) - 2:
            nodes.append(helper.make_node("Relu", [name], [f"h{i}"]))
            name = f"h{i}"
    nodes.append(helper.make_node("Softmax", [name], ["proba"], axis=1))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", N_FEATURES])],
        [helper.make_tensor_value_info("proba", TensorProto.FLOAT, ["n", N_CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda X: session.run(None, {"x": X})[0], ort.__version__


def _timed(call, min_seconds, most=100):
    """Median seconds of call() over repeats lasting about min_seconds (at least 3)."""
    times = []
    deadline = time.perf_counter() + min_seconds
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < most):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(spec):
    """One contender on one configuration, in this process: training throughput (one untimed
    warm-up epoch, then whole epochs lasting about min_seconds) and bulk prediction (the median
    of repeated predict_proba calls over `rows` rows). Returns a dict of the rates."""
    import gc
    import numpy as np
    name, hidden, batch = spec["contender"], tuple(spec["hidden"]), spec["batch"]
    threads, out = spec["threads"], {}
    X, y = _data(spec["n"])
    rows, _ = _data(spec["rows"], seed=1)
    predict = None
    if name in TRAINERS:
        builder = {"fastmlp": _fastmlp, "torch": _torch, "jax": _jax, "sklearn": _sklearn}[name]
        run, samples, predict, out["version"] = builder(hidden, batch, X, y, threads)
        started = time.perf_counter()
        run(1)
        warm = time.perf_counter() - started
        k = int(np.clip(np.ceil(spec["min_seconds"] / max(warm, 1e-6)), 1, 20))
        gc.collect()
        started = time.perf_counter()
        run(k)
        out["train"] = {"samples_per_second": samples * k / (time.perf_counter() - started),
                        "epochs": k}
    if name == "onnxruntime":
        predict, out["version"] = _onnxruntime(hidden, threads)
    if predict is not None:
        P = predict(rows)
        if not np.allclose(P.sum(axis=1), 1, atol=1e-3):
            raise RuntimeError(f"{name}'s probabilities do not sum to 1")
        gc.collect()
        seconds = _timed(lambda: predict(rows), spec["min_seconds"])
        out["predict"] = {"rows_per_second": spec["rows"] / seconds}
    return out


def _worker_main():
    spec = json.loads(sys.argv[1])
    try:
        result = measure(spec)
    except ImportError as error:  # a peer that is not installed
        result = {"skipped": f"not installed: {error}"}
    except Exception as error:  # reported in the table, the other contenders still run
        result = {"error": f"{type(error).__name__}: {error}"}
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------ the driver

def _installed(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None and (
        name != "onnxruntime" or importlib.util.find_spec("onnx") is not None)


def _run_worker(spec, timeout):
    """measure(spec) in a fresh Python process, the thread pools capped at spec's threads."""
    import fastmlp
    t = str(spec["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t,
               NUMEXPR_NUM_THREADS=t, VECLIB_MAXIMUM_THREADS=t)
    # the fastmlp this process imported, wherever it lies (an install or a checkout's src/)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    code = "from fastmlp.benchmark import _worker_main; _worker_main()"
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"error": (done.stderr or done.stdout).strip()[-500:] or f"exit {done.returncode}"}
    return json.loads(lines[-1][len("RESULT "):])


class _Progress:
    """tqdm's bar when tqdm is installed, else one plain line per step (to stderr)."""

    def __init__(self, total):
        self.total, self.done = total, 0
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="run", file=sys.stderr)
        except ImportError:
            self.bar = None

    def step(self, text):
        self.done += 1
        if self.bar is not None:
            self.bar.set_description(text)
            self.bar.update(1)
        else:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _summarize(name, hidden, batch, records, peak, threads):
    """The medians over rounds of each contender's rates, with GFLOP/s, % of the FMA peak and
    the ratio of fastmlp's rate to the peer's."""
    units = [N_FEATURES, *hidden, N_CLASSES]
    flops = {"train": train_flops_per_sample(units), "predict": predict_flops_per_sample(units)}
    rate_key = {"train": "samples_per_second", "predict": "rows_per_second"}
    peak_all = peak.get("f32_all")
    config = {"name": name, "hidden": list(hidden), "batch": batch,
              "train_flops_per_sample": flops["train"],
              "predict_flops_per_sample": flops["predict"], "contenders": {}}
    for contender, results in records.items():
        entry = {"version": next((r["version"] for r in results if "version" in r), None)}
        for task in ("train", "predict"):
            rates = [r[task][rate_key[task]] for r in results if task in r]
            if not rates:
                continue
            rate = statistics.median(rates)
            gflops = rate * flops[task] / 1e9
            entry[task] = {rate_key[task]: rate, "rounds": rates, "gflops": gflops,
                           "pct_of_peak": 100 * gflops / peak_all if peak_all else None}
        problems = [r.get("error") or r.get("skipped") for r in results
                    if "error" in r or "skipped" in r]
        if problems:
            entry["error" if any("error" in r for r in results) else "skipped"] = problems[0]
        config["contenders"][contender] = entry
    ours = config["contenders"].get("fastmlp", {})
    for contender, entry in config["contenders"].items():
        for task in ("train", "predict"):
            if task in entry and task in ours and contender != "fastmlp":
                entry[task]["fastmlp_x"] = (ours[task][rate_key[task]]
                                            / entry[task][rate_key[task]])
    return config


def _print_config(config, out):
    rows = [("contender", "train samples/s", "GFLOP/s", "% peak", "fastmlp x",
             "predict rows/s", "GFLOP/s", "% peak", "fastmlp x")]
    for contender, entry in config["contenders"].items():
        cells = [LABELS.get(contender, contender)]
        for task, key in (("train", "samples_per_second"), ("predict", "rows_per_second")):
            r = entry.get(task)
            if r is None:
                cells += ["-"] * 4
                continue
            pct = r["pct_of_peak"]
            cells += [f"{r[key]:,.0f}", f"{r['gflops']:.1f}",
                      "-" if pct is None else f"{pct:.1f}%",
                      f"{r['fastmlp_x']:.2f}" if "fastmlp_x" in r else "-"]
        if "error" in entry or "skipped" in entry:
            cells.append(entry.get("error") or entry.get("skipped"))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(9)]
    print(f"\n{config['name']} (batch {config['batch']})", file=out)
    for r in rows:
        line = "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        print(line + ("  " + r[9][:70] if len(r) > 9 else ""), file=out)


def _write_json(path, data):
    """Atomically: a temporary file in the same folder, flushed and synced, then renamed."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def bench(configs=None, hidden=None, batch=None, peers=None, n=20000, rows=None, rounds=3,
          threads=None, min_seconds=1.0, json_path=None, timeout=900, out=None):
    """Measure fastmlp's training and prediction throughput against the machine's FMA peak and
    the peers installed beside it.

    Parameters
    ----------
    configs : list of str, default=None
        Standard configurations to run, out of ``STANDARD_CONFIGS`` ("784-100-10" batch 200,
        "784-256-256-10" batch 64, "784-1024-1024-10" batch 256); None means all three.
    hidden : tuple of int, default=None
        Hidden layer sizes of one more configuration (784 inputs, 10 classes).
    batch : int, default=None
        That configuration's mini-batch size (default 128).
    peers : list of str, default=None
        Peers to run among "torch", "jax", "sklearn", "onnxruntime"; None means those installed.
        Each runs in its own process; one not installed is reported as skipped.
    n : int, default=20000
        Training rows.
    rows : int, default=None
        Rows of bulk prediction (default: n).
    rounds : int, default=3
        Rounds; each runs every contender once per configuration, in an order that rotates.
        Rates are medians over rounds.
    threads : int, default=None
        Threads for every contender and for the peak's "all threads" figure; None: all cores.
    min_seconds : float, default=1.0
        Length of each timed stretch (whole epochs; repeated prediction calls).
    json_path : str, default=None
        Where to write the results as JSON (atomically), for comparison across machines.
    timeout : float, default=900
        Seconds before a contender's process is abandoned.
    out : file, default=None
        Where the tables go (default sys.stdout).

    Returns
    -------
    results : dict
        ``fma_peak`` (see `fma_peak`), ``machine``, ``settings`` and ``configs``: one dict per
        configuration with its flops per sample and, per contender, the median ``train``
        (``samples_per_second``) and ``predict`` (``rows_per_second``) rates with ``gflops``,
        ``pct_of_peak`` (of the float32 peak on ``threads``) and ``fastmlp_x`` (fastmlp's rate
        over the peer's).

    Raises
    ------
    ValueError
        If a configuration or peer is unknown, or a count is not positive.

    See Also
    --------
    fma_peak : the machine's FMA peak alone.

    Examples
    --------
    >>> from fastmlp.benchmark import bench
    >>> import io
    >>> r = bench(configs=[], hidden=(8,), batch=50, peers=[], n=200, rounds=1,
    ...           threads=1, min_seconds=0.01, out=io.StringIO())
    >>> r["configs"][0]["contenders"]["fastmlp"]["train"]["samples_per_second"] > 0
    True
    """
    out = sys.stdout if out is None else out
    configs = list(STANDARD_CONFIGS) if configs is None else list(configs)
    unknown = [c for c in configs if c not in STANDARD_CONFIGS]
    if unknown:
        raise ValueError(f"unknown configurations {unknown}; expected some of "
                         f"{list(STANDARD_CONFIGS)}")
    chosen = [(c, *STANDARD_CONFIGS[c]) for c in configs]
    if hidden is not None:
        hidden = tuple(hidden)
        batch = 128 if batch is None else batch
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be positive layer sizes, got {hidden!r}")
        chosen.append(("-".join(map(str, (N_FEATURES, *hidden, N_CLASSES))), hidden, batch))
    elif batch is not None:
        raise ValueError("batch is the batch size of the configuration given by hidden: give both")
    threads = available_cores() if threads is None else threads
    rows = n if rows is None else rows
    for label, value in (("n", n), ("rows", rows), ("rounds", rounds), ("threads", threads),
                         ("batch", batch or 1)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if not min_seconds > 0:
        raise ValueError(f"min_seconds must be positive, got {min_seconds!r}")
    if peers is None:
        peers = [p for p in PEERS if _installed(p)]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peers {unknown}; expected some of {PEERS}")
    if not chosen:
        raise ValueError("nothing to run: no standard configuration and no hidden given")
    contenders = ["fastmlp"] + list(peers)

    import fastmlp
    peak = fma_peak(threads, seconds=min(0.2, min_seconds), repeats=5 if min_seconds >= 1 else 3)
    all_f32 = "?" if peak["f32_all"] is None else f"{peak['f32_all']:.1f}"
    print(f"fastmlp {fastmlp.__version__} benchmark, {threads} threads, n = {n}, "
          f"{rounds} round(s)", file=out)
    print(f"FMA peak ({peak['isa']}, {'measured' if peak['measured'] else 'ESTIMATED'}): "
          f"float32 {all_f32} GFLOP/s on {threads} threads ({peak['f32_1'] or 0:.1f} on 1), "
          f"float64 {peak['f64_all'] or 0:.1f} ({peak['f64_1'] or 0:.1f}); {peak['note']}",
          file=out, flush=True)
    records = {c[0]: {name: [] for name in contenders} for c in chosen}
    progress = _Progress(rounds * len(chosen) * len(contenders))
    try:
        for r in range(rounds):
            for name, hid, bat in chosen:
                k = r % len(contenders)
                for contender in contenders[k:] + contenders[:k]:
                    spec = {"contender": contender, "hidden": list(hid), "batch": bat, "n": n,
                            "rows": rows, "threads": threads, "min_seconds": min_seconds}
                    records[name][contender].append(_run_worker(spec, timeout))
                    progress.step(f"round {r + 1} {name} {contender}")
    finally:
        progress.close()
    results = {
        "fma_peak": peak,
        "machine": {"cpu": cpu_model(), "cores": available_cores(), "platform": platform.platform(),
                    "python": platform.python_version(), "fastmlp": fastmlp.__version__,
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds")},
        "settings": {"threads": threads, "n": n, "rows": rows, "rounds": rounds,
                     "min_seconds": min_seconds, "peers": list(peers)},
        "configs": [_summarize(name, hid, bat, records[name], peak, threads)
                    for name, hid, bat in chosen]}
    print("\nfloat32; % peak = share of the float32 FMA peak on "
          f"{threads} threads; fastmlp x = fastmlp's rate over the contender's", file=out)
    for config in results["configs"]:
        _print_config(config, out)
    if json_path:
        _write_json(json_path, results)
        print(f"\nresults written to {json_path}", file=out)
    return results


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_arguments(parser):
    """The options of ``python -m fastmlp bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="a short run: n = 2000, one round, short timings (rough figures)")
    parser.add_argument("--n", type=int, default=None, help="training rows (default 20000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    parser.add_argument("--hidden", default=None,
                        help="one more configuration's hidden sizes, e.g. 512,512")
    parser.add_argument("--batch", type=int, default=None,
                        help="that configuration's batch size (default 128)")
    parser.add_argument("--configs", default=None,
                        help="comma list of standard configurations to run (default all three: "
                             f"{','.join(STANDARD_CONFIGS)}); 'none' for only --hidden's")
    parser.add_argument("--peers", default=None,
                        help=f"comma list out of {','.join(PEERS)}, or 'none' "
                             "(default: those installed)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the results here")


def run_from_args(args):
    """``python -m fastmlp bench`` with parsed options; returns the exit status."""
    def listed(text):
        return None if text is None else [] if text == "none" else \
            [t for t in text.split(",") if t]
    try:
        hidden = None if args.hidden is None else tuple(int(h) for h in args.hidden.split(","))
    except ValueError:
        raise SystemExit(f"--hidden takes comma-separated layer sizes, got {args.hidden!r}")
    n = args.n if args.n is not None else 2000 if args.quick else 20000
    rounds = args.rounds if args.rounds is not None else 1 if args.quick else 3
    try:
        bench(configs=listed(args.configs), hidden=hidden, batch=args.batch,
              peers=listed(args.peers), n=n, rounds=rounds, threads=args.threads,
              min_seconds=0.2 if args.quick else 1.0, json_path=args.json)
    except ValueError as error:
        raise SystemExit(f"python -m fastmlp bench: {error}")
    return 0
