"""The register tiles' kinds against BLAS, on the CPU this runs on:
`python bench/tiles_vs_blas.py [--rounds 5] [--threads 1]`.

Paths: the AVX-512 tiles, the AVX2 tiles (forced with `_core.set_tiles("avx2")` on a CPU that
has AVX-512 too, with BLAS held to its AVX2 kernels, OpenBLAS's `OPENBLAS_CORETYPE=Haswell`, for
the products wider than the AVX2 tiles take: fastmlp_tiles_run in csrc/fastmlp.h), BLAS as it
runs here, and BLAS held to its AVX2 kernels: "avx2 tiles" and the last are what a CPU without
AVX-512 (most laptops) would choose between. --configs takes the standard names or any
"784-H1-...-10[@batch]" (batch 128 by default). Each (path, configuration, round) runs in its own process,
the paths alternating in an order that rotates every round; the figures are medians over rounds.

On one thread (the default) the time is the thread's CPU time (`time.thread_time`), which other
processes on a shared machine do not inflate the way they inflate wall time (they still share
caches and memory bandwidth); on more threads it is wall time. Training: SGD momentum, whole
epochs of n rows after a warm-up epoch; prediction: predict_proba of `--rows` rows.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402

PATHS = {"avx512 tiles": ("avx512", None), "avx2 tiles": ("avx2", "Haswell"),
         "BLAS": (False, None), "BLAS (AVX2 kernels)": (False, "Haswell")}


def config_shape(config):
    """(hidden layer sizes, batch size) of a standard configuration's name, or of any
    "784-H1-...-10" name (batch 128, or the one after "@": "784-512-512-10@64")."""
    if config in common.TRAIN_CONFIGS:
        return common.TRAIN_CONFIGS[config]
    name, _, batch = config.partition("@")
    try:
        units, batch = [int(u) for u in name.split("-")], int(batch or 128)
    except ValueError:
        units = []
    if len(units) < 3 or units[0] != 784 or units[-1] != 10:
        raise SystemExit(f"--configs: {config!r} is not 784-H1-...-10[@batch]")
    return tuple(units[1:-1]), batch


def measure(spec):
    """In this process: samples/s of training and rows/s of prediction on one path."""
    import time
    import warnings

    import numpy as np

    from fastmlp import MLPClassifier, _core
    if spec["tiles"] and not _core.tiles_available(spec["tiles"]):
        return {"skipped": f"no {spec['tiles']} tiles on this CPU"}
    _core.set_tiles(spec["tiles"])
    clock = time.thread_time if spec["threads"] == 1 else time.perf_counter
    hidden, batch = config_shape(spec["config"])
    X, y = common.mnist_like(spec["n"])
    clf = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.01,
                        momentum=0.9, nesterovs_momentum=False, alpha=0.0, batch_size=batch,
                        max_iter=1, tol=0.0, n_iter_no_change=10**6, normalize=None,
                        n_threads=spec["threads"], random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
        clf.set_params(max_iter=spec["epochs"])
        started = clock()
        clf.fit(X, y)
        train = spec["n"] * spec["epochs"] / (clock() - started)
    rows, _ = common.mnist_like(spec["rows"], seed=1)
    clf.predict_proba(rows)
    times = []
    for _ in range(5):
        started = clock()
        clf.predict_proba(rows)
        times.append(clock() - started)
    return {"train": train, "predict": spec["rows"] / float(np.median(times))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=4000, help="training rows")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs")
    p.add_argument("--rows", type=int, default=20000, help="rows of prediction")
    p.add_argument("--configs", default=",".join(common.TRAIN_CONFIGS))
    p.add_argument("--paths", default=",".join(PATHS), help="comma list out of " + ",".join(PATHS))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return
    paths = [name for name in args.paths.split(",") if name]
    configs = [c for c in args.configs.split(",") if c]
    for config in configs:
        config_shape(config)  # a bad name stops here, before any measurement
    results = {(c, name): [] for c in configs for name in paths}
    for r in range(args.rounds):
        for config in configs:
            for name in paths[r % len(paths):] + paths[:r % len(paths)]:
                tiles, coretype = PATHS[name]
                env = common.thread_env(args.threads)
                env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "src")]
                                                    + [x for x in [env.get("PYTHONPATH")] if x])
                if coretype:
                    env["OPENBLAS_CORETYPE"] = coretype
                spec = dict(config=config, tiles=tiles, threads=args.threads, n=args.n,
                            epochs=args.epochs, rows=args.rows)
                done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                      env=env, capture_output=True, text=True)
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                result = json.loads(line[-1][7:]) if line else {"error": done.stderr[-300:]}
                results[(config, name)].append(result)
                print(f"  round {r + 1} {config} {name}: {result}", file=sys.stderr, flush=True)
    clock = "thread CPU time" if args.threads == 1 else "wall time"
    print(f"\n{args.threads} thread(s), {clock}; medians of {args.rounds} alternating rounds; "
          "GFLOP/s at the flops of python -m fastmlp bench\n")
    print("| config | path | train samples/s | train GFLOP/s | predict rows/s | predict GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for config in configs:
        hidden, _ = config_shape(config)
        for name in paths:
            good = [x for x in results[(config, name)] if "train" in x]
            if not good:
                print(f"| {config} | {name} | {results[(config, name)][0]} | | | |")
                continue
            train = statistics.median(x["train"] for x in good)
            predict = statistics.median(x["predict"] for x in good)
            print(f"| {config} | {name} | {train:,.0f} | "
                  f"{train * common.train_flops_per_sample(hidden) / 1e9:.1f} | {predict:,.0f} | "
                  f"{predict * common.predict_flops_per_sample(hidden) / 1e9:.1f} |")


if __name__ == "__main__":
    main()
