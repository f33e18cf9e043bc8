"""Training time per epoch: the plain network against dropout=0.5 and against batch_norm=True.

float32, MNIST-shaped random data (n x 784, 10 classes), 2 threads. Each (config, contender)
runs in its own subprocess, so one contender's allocations, caches and thread pools never touch
another's. A worker fits 1 + repeats epochs and reports the median of the last `repeats` epoch
times as the estimator measures them (the C train_epoch call only; the first epoch is warm-up).

    python bench/regularizers.py            # all configs, prints a table and slowdown ratios
    python bench/regularizers.py --config 784-256-256-10
"""
import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
import warnings

import numpy as np

CONFIGS = [  # (name, hidden layers, batch size, rows)
    ("784-100-10", (100,), 200, 20000),
    ("784-256-256-10", (256, 256), 64, 20000),
    ("784-1024-1024-10", (1024, 1024), 256, 5000),  # fewer rows: 20000 takes minutes here
]
CONTENDERS = {"plain": {}, "dropout=0.5": {"dropout": 0.5}, "batch_norm": {"batch_norm": True}}


def worker(config, contender, repeats, threads):
    from fastmlp import MLPClassifier
    _, hidden, batch_size, n = next(c for c in CONFIGS if c[0] == config)
    rng = np.random.RandomState(0)
    X = rng.rand(n, 784).astype(np.float32)
    y = rng.randint(0, 10, n)
    model = MLPClassifier(hidden_layer_sizes=hidden, batch_size=batch_size,
                          max_iter=1 + repeats, tol=0.0, n_iter_no_change=10 ** 6,
                          random_state=0, n_threads=threads, verbose=True,
                          **CONTENDERS[contender])
    log = io.StringIO()
    # verbose lines carry each epoch's time; max_iter is reached on purpose
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    seconds = [float(s) for s in re.findall(r"Epoch \d+: loss [^,]+, ([0-9.]+) s", log.getvalue())]
    return {"config": config, "contender": contender, "rows": n,
            "epoch_seconds": seconds[1:], "median": float(np.median(seconds[1:]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", choices=[c[0] for c in CONFIGS], action="append",
                        help="run only this config (repeatable); default all")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "CONTENDER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats, args.threads)))
        return
    print(f"seconds per training epoch, float32, {args.threads} threads, median of "
          f"{args.repeats} epochs (after one warm-up epoch), each in its own process")
    print(f"{'config':18s} {'batch':>5s} {'rows':>6s} " + " ".join(f"{c:>12s}" for c in CONTENDERS)
          + "   dropout/plain  batchnorm/plain")
    for name, _, batch_size, n in CONFIGS:
        if args.config and name not in args.config:
            continue
        medians = {}
        for contender in CONTENDERS:
            out = subprocess.run([sys.executable, __file__, "--worker", name, contender,
                                  "--repeats", str(args.repeats), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            medians[contender] = json.loads(out.strip().splitlines()[-1])["median"]
        print(f"{name:18s} {batch_size:5d} {n:6d} "
              + " ".join(f"{medians[c]:12.4f}" for c in CONTENDERS)
              + f"   {medians['dropout=0.5'] / medians['plain']:13.2f}"
              f"  {medians['batch_norm'] / medians['plain']:15.2f}", flush=True)


if __name__ == "__main__":
    main()
