"""Peak memory of fit and predict on a float64 X for a float32 model, above X itself.

    python bench/input_memory.py                       # 2,000,000 x 100 float64 (1.6 GB)
    python bench/input_memory.py --n 200000 --order F  # smaller, Fortran-ordered
    python bench/input_memory.py --src /path/to/other/checkout/src   # another build, to compare

Each measurement is its own process: it fills X in place (no temporary of X's size), notes its
resident set size, then runs one `fit` epoch (or a fit on 2000 rows and a `predict` of all of
X) and reports the peak resident set size above that baseline (Linux: the peak is reset through
/proc/self/clear_refs, then read as VmHWM), in MB and as a share of X's size. A copy of X in
float32 would add half of X's size.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402


def worker(spec):
    import warnings

    import numpy as np

    from fastmlp import MLPClassifier

    n, d = spec["n"], spec["features"]
    X = np.empty((n, d), dtype=np.float64, order=spec["order"])
    rng = np.random.default_rng(0)
    for start in range(0, n, 100_000):
        X[start:start + 100_000] = rng.standard_normal((min(100_000, n - start), d))
    y = (X[:, 0] > 0).astype(np.int64)
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=1, batch_size=200,
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec["what"] == "predict":
            model.fit(X[:2000], y[:2000])
        common.reset_peak()
        baseline = common.status_mb("VmRSS")
        if spec["what"] == "fit":
            model.fit(X, y)
        else:
            model.predict(X)
    print(json.dumps({"x_mb": X.nbytes / 2**20, "baseline_mb": baseline,
                      "above_mb": common.status_mb("VmHWM") - baseline}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--order", choices=["C", "F"], default="C")
    parser.add_argument("--src", default=os.path.join(os.path.dirname(HERE), "src"),
                        help="the fastmlp source tree (built in place) to measure")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    env = dict(os.environ, PYTHONPATH=args.src)
    for what in ("fit", "predict"):
        spec = {"n": args.n, "features": args.features, "order": args.order, "what": what}
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the {what} worker failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{what:<8} X {result['x_mb']:,.0f} MB ({args.order}-ordered float64), peak "
              f"{result['above_mb']:,.0f} MB above it = {result['above_mb'] / result['x_mb']:.1%}"
              f" of X", flush=True)


if __name__ == "__main__":
    main()
