"""Training time per epoch: the plain network against dropout=0.5 and batch_norm=True, and what
the epoch loop's pieces cost: a validation set of the user's (X_val), scoring="loss", and a
progress callback.

float32, MNIST-shaped random data (n x 784, 10 classes), 2 threads. Each (config, contender)
runs in its own subprocess, so one contender's allocations, caches and thread pools never touch
another's. A worker fits 1 + repeats epochs and reports, over the last `repeats` epochs (the
first is warm-up), the median training seconds per epoch as history_ records them (the C
train_epoch calls only) and the median wall seconds per epoch between two epoch ends, which
adds everything the loop does between the calls: the records, the listeners, the validation
pass and the callbacks. The loop's cost is wall / train - 1; with a validation set it includes
the validation forward pass, which is reported on its own line (predict of X_val, timed).

    python bench/regularizers.py            # all configs, one row per contender
    python bench/regularizers.py --config 784-256-256-10
"""
import argparse
import contextlib
import io
import json
import subprocess
import sys
import warnings

import numpy as np

CONFIGS = [  # (name, hidden layers, batch size, rows)
    ("784-100-10", (100,), 200, 20000),
    ("784-256-256-10", (256, 256), 64, 60000),  # the rows issue 16 sizes its target on
    ("784-1024-1024-10", (1024, 1024), 256, 5000),  # fewer rows: 20000 takes minutes here
]
CONTENDERS = {"plain": {}, "dropout=0.5": {"dropout": 0.5}, "batch_norm": {"batch_norm": True},
              "X_val": {"validation": True},
              "X_val, scoring=loss": {"validation": True, "scoring": "loss"},
              "progress": {"progress": True}}
VALIDATION_ROWS = 0.1  # X_val has a tenth of the training rows


def worker(config, contender, repeats, threads):
    import time

    from fastmlp import MLPClassifier
    from fastmlp.callbacks import ProgressBar
    _, hidden, batch_size, n = next(c for c in CONFIGS if c[0] == config)
    rng = np.random.RandomState(0)
    X = rng.rand(n, 784).astype(np.float32)
    y = rng.randint(0, 10, n)
    options = dict(CONTENDERS[contender])
    fit_kw, callbacks = {}, []
    if options.pop("validation", False):
        n_val = int(VALIDATION_ROWS * n)
        fit_kw = {"X_val": rng.rand(n_val, 784).astype(np.float32),
                  "y_val": rng.randint(0, 10, n_val)}
    if options.pop("progress", False):
        callbacks.append(ProgressBar(use_tqdm=False, file=io.StringIO()))

    ends = []

    class EpochEnds:  # the wall time at each epoch's end, the last of the listeners
        def on_epoch_end(self, estimator, record):
            ends.append(time.perf_counter())

    model = MLPClassifier(hidden_layer_sizes=hidden, batch_size=batch_size,
                          max_iter=1 + repeats, tol=0.0, n_iter_no_change=10 ** 6,
                          random_state=0, n_threads=threads,
                          callbacks=callbacks + [EpochEnds()], **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter is reached on purpose
        model.fit(X, y, **fit_kw)
    train = [r["seconds"] for r in model.history_][1:]
    wall = list(np.diff(ends))
    result = {"config": config, "contender": contender, "rows": n, "train_seconds": train,
              "wall_seconds": wall, "median": float(np.median(train)),
              "wall_median": float(np.median(wall))}
    if fit_kw:
        started = time.perf_counter()
        for _ in range(3):
            model.predict_proba(fit_kw["X_val"])
        result["validation_pass"] = (time.perf_counter() - started) / 3
    return result


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
    print(f"seconds per epoch, float32, {args.threads} threads, median of {args.repeats} epochs "
          "(after one warm-up epoch), each contender in its own process: training (the C calls) "
          "and wall (epoch end to epoch end, the loop's pieces included)")
    print(f"{'config':18s} {'contender':22s} {'train s':>9s} {'wall s':>9s} {'loop cost':>10s}"
          f" {'valid pass s':>13s} {'vs plain':>9s}")
    for name, _, batch_size, n in CONFIGS:
        if args.config and name not in args.config:
            continue
        plain = None
        for contender in CONTENDERS:
            out = subprocess.run([sys.executable, __file__, "--worker", name, contender,
                                  "--repeats", str(args.repeats), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            plain = r["median"] if plain is None else plain
            valid = r.get("validation_pass")
            # the loop's own cost: wall time beyond the C calls, less the validation pass
            loop = (r["wall_median"] - r["median"] - (valid or 0.0)) / r["median"]
            print(f"{name:18s} {contender:22s} {r['median']:9.4f} {r['wall_median']:9.4f} "
                  f"{100 * loop:9.2f}% {'' if valid is None else f'{valid:13.4f}':>13s} "
                  f"{r['median'] / plain:9.2f}", flush=True)


if __name__ == "__main__":
    main()
