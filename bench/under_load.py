"""Training throughput of the default thread count against n_threads=1, with and without a
CPU hog: a busy-loop process that keeps one core taken for the whole measurement.

    python bench/under_load.py                  # 3 rounds, both configurations, hog and none
    python bench/under_load.py --rounds 5 --configs 784-256-256-10 --no-pin
    python bench/under_load.py --task predict --predict-rows 1000   # predict_proba instead
    python bench/under_load.py --worker '{"hidden": [256, 256], "threads": 1, ...}'

Each measurement is its own process (the worker mode of this script): it makes the data (fixed
seed), fits once untimed for one epoch (imports, allocation, page faults), then times a fresh
`fit` of --epochs epochs from scratch, so the thread choice starts cold, as a user's first fit
does: the first epoch counts. The two contenders (n_threads=None, the default, and
n_threads=1) alternate within each round, in an order that flips from round to round; the
report gives the median samples/s of each over the rounds, the ratio default / one thread
(1.0: as fast; under 0.9: the default loses more than 10%), each round's ratio and the least
of them, the median ratio of the training passes alone ("training only": the epochs' seconds
in history_, without the validation, standardization and allocation before them), and
--json keeps each fit's epochs (thread count and samples/s of each: how soon the thread
choice reacted). The hog is pinned to the last core the benchmark may use (--no-pin:
the kernel places it). Before each round, with no hog yet, the driver waits (up to
--wait-near seconds) until the first two cores share a cache, as bench/run.py does: on this
virtual machine the vCPUs move between physical cores, and on cores that share no cache two
threads run up to half as fast while one thread does not change (bench/README.md), which made
idle rounds of the same build range from 0.90 to 1.46. The checkout's src/ (or --src) goes on
PYTHONPATH, so an in-place build is enough.

--task predict times predict_proba instead: the worker fits one epoch untimed, then calls
predict_proba on --predict-rows rows for about --predict-seconds, and reports rows/s (the
thread count of a prediction is CoresLeft's, threads.py: no timing, no probes).

Figures depend on everything else the machine runs: bench/README.md says how they were taken.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import common

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
HOG = "while True:\n    pass\n"


def worker(spec):
    """One fit, timed; prints {"samples_per_s": ...} as JSON."""
    import warnings

    import numpy as np

    from fastmlp import MLPClassifier

    rng = np.random.default_rng(0)
    n, d = spec["n"], spec["features"]
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = (X[:, :10] @ rng.standard_normal((10, 10))).argmax(axis=1)

    def fit(epochs):
        model = MLPClassifier(hidden_layer_sizes=spec["hidden"], max_iter=epochs,
                              n_iter_no_change=epochs + 1, batch_size=spec["batch_size"],
                              random_state=0, n_threads=spec["threads"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unconverged fit's ConvergenceWarning
            started = time.perf_counter()
            model.fit(X, y)
            return time.perf_counter() - started, model

    if spec.get("task") == "predict":
        _, model = fit(1)
        rows = X[:spec["predict_rows"]]
        model.predict_proba(rows)  # page faults, the first window
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < spec["predict_seconds"]:
            model.predict_proba(rows)
            calls += 1
        seconds = time.perf_counter() - started
        print(json.dumps({"samples_per_s": len(rows) * calls / seconds, "seconds": seconds,
                          "training_seconds": None, "epochs": None}))
        return
    fit(1)
    import gc
    gc.collect()
    seconds, model = fit(spec["epochs"])
    epochs = [[r["threads"], round(r["samples_per_s"])] for r in model.history_]
    training = sum(r["seconds"] for r in model.history_)  # the epochs' own, without the setup
    print(json.dumps({"samples_per_s": n * spec["epochs"] / seconds, "seconds": seconds,
                      "training_seconds": training, "epochs": epochs}))


def measure(spec, timeout, src):
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the worker for {spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_hog(pin):
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    if pin:
        os.sched_setaffinity(hog.pid, {max(os.sched_getaffinity(0))})
    time.sleep(0.5)  # let the scheduler see it busy before the contender starts
    return hog


def wait_near(placement, seconds):
    """Wait up to `seconds` for the first two cores to share a cache; the round trip in ns."""
    started = time.perf_counter()
    ns = placement.round_trip_ns()
    while ns is not None and ns >= common.NEAR_NS and time.perf_counter() - started < seconds:
        time.sleep(1.0)
        ns = placement.round_trip_ns()
    return ns


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="784-256-256-10,784-100-10",
                        help="comma-separated layer sizes, input first, 10 outputs last")
    parser.add_argument("--n", type=int, default=20000, help="training rows")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per fit")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--conditions", default="idle,hog", help="idle, hog or both")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="let the kernel place the hog (by default: pinned to the last core)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per measurement")
    parser.add_argument("--wait-near", type=float, default=60,
                        help="seconds to wait before each round for a near placement (0: none)")
    parser.add_argument("--json", help="write every measurement to this file")
    parser.add_argument("--src", default=SRC, help="the fastmlp source tree (built in place) "
                        "to measure; a copy keeps a long run safe from edits")
    parser.add_argument("--task", choices=["train", "predict"], default="train")
    parser.add_argument("--predict-rows", type=int, default=1000,
                        help="rows per predict_proba call (--task predict)")
    parser.add_argument("--predict-seconds", type=float, default=2.0,
                        help="seconds of predict_proba calls per measurement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    results = []
    placement = common.Placement(os.path.join(HERE, "results"))
    print(f"{'config':<16} {'condition':<9} {'default/s':>11} {'1 thread/s':>11} "
          f"{'ratio':>6}  rounds (ratio each)")
    for config in args.configs.split(","):
        sizes = [int(s) for s in config.split("-")]
        for condition in args.conditions.split(","):
            rates, epochs = {"default": [], "one": []}, {"default": [], "one": []}
            training = {"default": [], "one": []}  # seconds of the epochs alone
            round_trips = []
            for round_ in range(args.rounds):
                round_trips.append(wait_near(placement, args.wait_near))
                hog = start_hog(args.pin) if condition == "hog" else None
                try:
                    order = ["default", "one"] if round_ % 2 == 0 else ["one", "default"]
                    for name in order:
                        spec = {"hidden": sizes[1:-1], "features": sizes[0], "n": args.n,
                                "epochs": args.epochs, "batch_size": args.batch_size,
                                "threads": None if name == "default" else 1,
                                "task": args.task, "predict_rows": args.predict_rows,
                                "predict_seconds": args.predict_seconds}
                        measured = measure(spec, args.timeout, args.src)
                        rates[name].append(measured["samples_per_s"])
                        training[name].append(measured["training_seconds"])
                        epochs[name].append(measured["epochs"])
                finally:
                    if hog is not None:
                        hog.kill()
                        hog.wait()
            each = [d / o for d, o in zip(rates["default"], rates["one"])]
            default, one = statistics.median(rates["default"]), statistics.median(rates["one"])
            trained = [o / d for d, o in zip(training["default"], training["one"])
                       if d is not None]
            only = f"  training only {statistics.median(trained):.2f}" if trained else ""
            print(f"{config:<16} {condition:<9} {default:>11,.0f} {one:>11,.0f} "
                  f"{default / one:>6.2f}  {' '.join(f'{r:.2f}' for r in each)}  "
                  f"least {min(each):.2f}{only}", flush=True)
            results.append({"config": config, "condition": condition, "rates": rates,
                            "training_seconds": training, "training_ratios": trained,
                            "epochs": epochs, "ratio_of_medians": default / one,
                            "ratios": each, "core_round_trip_ns": round_trips})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "load_average": os.getloadavg(),
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
