"""partial_fit at C speed, and fit and partial_fit in memory: the Python overhead of a
partial_fit call as a share of its C work, and the peak memory of fit and partial_fit as
multiples of the parameters' bytes.

    python bench/partial_fit.py                             # all three parts, this checkout
    python bench/partial_fit.py --src /other/checkout/src   # alternate with another build
    python bench/partial_fit.py --only overhead --rounds 7
    python bench/partial_fit.py --only memory --memory-hidden 2048,2048
    python bench/partial_fit.py --only memory --memory-hidden 2048,2048 --memory-cores 16
    python bench/partial_fit.py --only memory --memory-hidden 2048,2048 --memory-solvers sgd,adam
    python bench/partial_fit.py --only callgrind --rows 256  # instruction counts (valgrind)

Overhead: for each configuration (784-1024-1024-10 and 784-256-256-10 by default) and block
size (256, 1024 and 4096 rows), a child process fits an MLPClassifier by partial_fit on
float32 blocks (10 classes, batch_size="auto", n_threads=1 unless --threads), warms up, then
times `--calls` calls. The C work of a call is the time spent inside
`fastmlp._core.train_epoch` (wrapped with a timer, ~1 us); the overhead is the call's time
less that. Each child reports the median over its calls of overhead / C work; the builds
given by --src alternate round by round, and the table shows the median over rounds.

Memory: one child per (solver, call): it makes the data (2000 x 784 float32) and then, with
the peak resident set size reset (Linux: /proc/self/clear_refs, read back as VmHWM), runs a
fit of 2 epochs (L-BFGS: iterations) on a fresh estimator, or a second partial_fit after a
first one. Reported: the peak above the resident size before the call, in multiples of the
parameters' bytes and of the parameters' and the C workspace's (the batch's activations and
each work part's packing scratch), and what fastmlp's accounting says the call holds
(fastmlp.optim.fit_copies, the estimate that refuses a model too large for memory): a fit,
the parameters, the state rows its solver uses (adam 2, the others 1), the gradient where one
is stored (none for SGD without Nesterov's momentum, whose backward GEMMs add it into the
velocity; layer health recomputes the measured update's gradient instead, a block of rows at
a time into each work part's scratch of some 32 rows of the widest layer, not counted), plus
the workspace; a partial_fit, the new
buffers of parameters and state it writes while the published ones stay readable (its
gradient and workspace are the first call's). --memory-cores N cuts the batches into the work
parts of a machine of N cores (fastmlp.network.available_cores patched in the child; the fit
still runs on one thread): the parts, not the threads, size the workspace. The workspace is
allocated whole but only what a call writes is resident, and a few MB of the
initialization's temporaries stay with the C allocator, so a small model's peak can sit a
little off the accounting.

Callgrind: one partial_fit call under `valgrind --tool=callgrind` (instruction counts, which
the machine's load does not change): the whole call, and the C trainer's part of it
(train_epoch_f32 inclusive); the profile is dumped at each os.getppid() the child calls
around the measured call.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

SOLVERS = {"sgd": dict(solver="sgd", momentum=0.0),
           "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
           "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
           "adagrad": dict(solver="adagrad"),
           "adam": dict(solver="adam"),
           "lbfgs": dict(solver="lbfgs")}


def blocks(rows, n, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, 784), dtype=np.float32), rng.integers(0, 10, rows))
            for _ in range(n)]


def overhead_worker(spec):
    import time
    import warnings

    import numpy as np

    import fastmlp._core
    from fastmlp import MLPClassifier

    warnings.simplefilter("ignore")
    data = blocks(spec["rows"], 4)
    model = MLPClassifier(tuple(spec["hidden"]), n_threads=spec["threads"], random_state=0)
    model.partial_fit(*data[0], classes=np.arange(10))
    inner, c_seconds = fastmlp._core.train_epoch, [0.0]

    def timed(*args):
        started = time.perf_counter()
        try:
            return inner(*args)
        finally:
            c_seconds[0] += time.perf_counter() - started

    fastmlp._core.train_epoch = timed
    shares, totals, c_work = [], [], []
    for call in range(3 + spec["calls"]):
        c_seconds[0] = 0.0
        started = time.perf_counter()
        model.partial_fit(*data[call % len(data)])
        total = time.perf_counter() - started
        if call >= 3:  # warm-up: page faults of the first buffers, the thread choice
            shares.append((total - c_seconds[0]) / c_seconds[0])
            totals.append(total)
            c_work.append(c_seconds[0])
    print(json.dumps({"share": statistics.median(shares),
                      "total_ms": 1e3 * statistics.median(totals),
                      "c_ms": 1e3 * statistics.median(c_work)}))


def memory_worker(spec):
    import warnings

    import numpy as np
    import scipy.sparse as sp

    from fastmlp import MLPClassifier, optim

    warnings.simplefilter("ignore")
    if spec.get("cores"):
        import fastmlp.network
        fastmlp.network.available_cores = lambda: spec["cores"]
    X, y = blocks(2000, 1)[0]
    model = MLPClassifier(tuple(spec["hidden"]), n_threads=1, random_state=0, max_iter=2,
                          **SOLVERS[spec["solver"]])
    if spec["call"] == "partial_fit":
        model.partial_fit(X, y, classes=np.arange(10))
    common.reset_peak()
    before = common.status_mb("VmRSS")
    if spec["call"] == "fit":
        model.fit(X, y)
    else:
        model.partial_fit(X, y)
    peak = common.status_mb("VmHWM") - before
    params_mb = model._params.nbytes / 2**20
    batch = len(X) if model.solver == "lbfgs" else min(200, len(X))
    parts = model._work_parts(batch)
    workspace_mb = model._net().workspace_size(batch, parts, model._params.dtype,
                                               sp.issparse(X)) * model._params.itemsize / 2**20
    accounted = None  # a build from before fit_copies (--src) has no accounting to show
    if spec["call"] == "fit" and hasattr(model, "_fit_copies"):
        try:
            copies = model._fit_copies(model._net(), model._layout, parts, model._params.dtype,
                                       sp.issparse(X), False)
        except TypeError:  # a build from before Net.stored_gradient (--src)
            copies = model._fit_copies(model._params.dtype, sp.issparse(X), False)
        accounted = copies + workspace_mb / params_mb
    elif hasattr(optim, "state_slots"):
        # the new parameters and state: the published ones were resident before the call
        accounted = 1 + optim.state_slots(model.solver)
    if spec["call"] == "partial_fit":
        workspace_mb = 0.0  # the first call's
    print(json.dumps({"peak": peak / params_mb, "accounted": accounted,
                      "params_mb": params_mb, "workspace_mb": workspace_mb}))


def callgrind_worker(spec):
    import warnings

    import numpy as np

    from fastmlp import MLPClassifier

    warnings.simplefilter("ignore")
    data = blocks(spec["rows"], 2)
    model = MLPClassifier(tuple(spec["hidden"]), n_threads=1, random_state=0)
    model.partial_fit(*data[0], classes=np.arange(10))
    model.partial_fit(*data[1])
    os.getppid()  # dump: everything up to here
    model.partial_fit(*data[0])
    os.getppid()  # dump: the measured call


def run_child(src, mode, spec, prefix=()):
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([*prefix, sys.executable, os.path.abspath(__file__), "--worker", mode,
                          json.dumps(spec)], env=env, capture_output=True, text=True,
                         timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) if mode != "callgrind" else None


def callgrind_counts(src, spec):
    """(instructions of the whole call, of train_epoch_f32 within it)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "cg.out")
        run_child(src, "callgrind", spec, prefix=(
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={base}",
            "--dump-before=getppid", "--dump-instr=no"))
        dumps = sorted(glob.glob(base + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        measured = dumps[1]  # dump 1: up to the first getppid; dump 2: the measured call
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                               measured], capture_output=True, text=True).stdout
        total = c_work = None
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            if "PROGRAM TOTALS" in line:
                total = int(words[0].replace(",", ""))
            elif "train_epoch_f32" in line and c_work is None:
                c_work = int(words[0].replace(",", ""))
        return total, c_work or 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", action="append",
                        help="a fastmlp source tree built in place (repeat to alternate "
                             "builds); default: this checkout's src/")
    parser.add_argument("--only", choices=["overhead", "memory", "callgrind"], action="append")
    parser.add_argument("--configs", default="1024,1024;256,256",
                        help="hidden layer sizes per configuration, ';' between them")
    parser.add_argument("--rows", default="256,1024,4096", help="block sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-hidden", default="4096,4096")
    parser.add_argument("--memory-solvers", default=",".join(SOLVERS),
                        help="the solvers whose memory is measured, ',' between them")
    parser.add_argument("--memory-cores", type=int, default=None,
                        help="size the work parts as on this many cores (default: this machine's)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, spec = args.worker
        {"overhead": overhead_worker, "memory": memory_worker,
         "callgrind": callgrind_worker}[mode](json.loads(spec))
        return
    srcs = args.src or [os.path.join(os.path.dirname(HERE), "src")]
    parts = args.only or ["overhead", "memory", "callgrind"]
    configs = [[int(h) for h in c.split(",")] for c in args.configs.split(";")]
    rows = [int(r) for r in args.rows.split(",")]
    name = lambda hidden: "-".join(map(str, [784, *hidden, 10]))  # noqa: E731
    if "overhead" in parts:
        print(f"## partial_fit: Python overhead / C work (n_threads={args.threads}, medians of "
              f"{args.calls} calls per process, median of {args.rounds} alternating rounds)\n")
        results = {}
        for round_ in range(args.rounds):
            for hidden in configs:
                for n in rows:
                    order = srcs if round_ % 2 == 0 else srcs[::-1]
                    for src in order:
                        spec = {"hidden": hidden, "rows": n, "calls": args.calls,
                                "threads": args.threads}
                        results.setdefault((src, name(hidden), n), []).append(
                            run_child(src, "overhead", spec))
        print("| build | network | rows | call ms | C ms | overhead / C |\n"
              "|---|---|---|---|---|---|")
        for (src, net, n), runs in results.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"| {src} | {net} | {n} | {med['total_ms']:.2f} | {med['c_ms']:.2f} | "
                  f"{100 * med['share']:.1f}% |")
        print()
    if "memory" in parts:
        hidden = [int(h) for h in args.memory_hidden.split(",")]
        cores = f", work parts of {args.memory_cores} cores" if args.memory_cores else ""
        print(f"## Peak memory above the data, in multiples of the parameters "
              f"({name(hidden)}, float32, 2000 x 784 rows{cores})\n")
        print("| build | solver | call | peak / params | peak / (params + workspace) | "
              "accounted / params | params, new workspace |\n|---|---|---|---|---|---|---|")
        for solver in args.memory_solvers.split(","):
            for call in ("fit",) if solver == "lbfgs" else ("fit", "partial_fit"):
                for src in srcs:
                    r = run_child(src, "memory", {"hidden": hidden, "solver": solver,
                                                  "call": call, "cores": args.memory_cores})
                    ratio = r["workspace_mb"] / r["params_mb"]
                    accounted = "-" if r["accounted"] is None else f"{r['accounted']:.2f}x"
                    print(f"| {src} | {solver} | {call} | {r['peak']:.2f}x | "
                          f"{r['peak'] / (1 + ratio):.2f}x | {accounted} | "
                          f"{r['params_mb']:.0f} MB, {r['workspace_mb']:.1f} MB |")
        print()
    if "callgrind" in parts:
        print("## One partial_fit call under callgrind (instructions; n_threads=1)\n")
        print("| build | network | rows | whole call | C trainer | overhead / C |\n"
              "|---|---|---|---|---|---|")
        for hidden in configs:
            for n in rows:
                for src in srcs:
                    total, c_work = callgrind_counts(src, {"hidden": hidden, "rows": n})
                    print(f"| {src} | {name(hidden)} | {n} | {total:,} | {c_work:,} | "
                          f"{100 * (total - c_work) / c_work:.1f}% |")


if __name__ == "__main__":
    main()
