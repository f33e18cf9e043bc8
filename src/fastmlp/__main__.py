"""python -m fastmlp demo: train on scikit-learn's digits beside scikit-learn's MLPClassifier;
python -m fastmlp search: the lecture's random search on a CSV or Parquet file."""
import argparse
import os
import sys
import time
import warnings


def demo():
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from . import MLPClassifier, show_config

    show_config()
    X, y = load_digits(return_X_y=True)  # shipped with scikit-learn: no download
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"\ndigits: {len(X_train)} training and {len(X_test)} test images of 8x8 pixels, "
          "10 classes; default parameters (100 relu units, adam, batch 200), random_state=0\n")
    rows = []
    for name, model in (("fastmlp", MLPClassifier(random_state=0)),
                        ("scikit-learn", SklearnMLP(random_state=0))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            started = time.perf_counter()
            model.fit(X_train, y_train)
            seconds = time.perf_counter() - started
        rows.append((name, model.score(X_test, y_test), model.n_iter_, seconds,
                     model.n_iter_ * len(X_train) / seconds))
    print(f"{'':14}{'test accuracy':>14}{'epochs':>8}{'fit time':>10}{'samples/s':>12}")
    for name, accuracy, epochs, seconds, rate in rows:
        print(f"{name:14}{accuracy:14.4f}{epochs:8d}{seconds:9.3f}s{rate:12,.0f}")
    print(f"\nfastmlp fit is {rows[1][3] / rows[0][3]:.1f}x faster than scikit-learn's here; "
          f"per trained sample {rows[0][4] / rows[1][4]:.1f}x.")
    return 0


SEARCH_ABOUT = """Random search over fastmlp's hyperparameters (the lecture's default space:
log-uniform learning rate and weight decay, units per layer, depth, dropout) with early stopping
in every trial, scored by cross-validation, on this machine or on a Dask cluster. The target
column picks the task: real values train an MLPRegressor, labels an MLPClassifier. The other
columns are the features: numbers as they are (fastmlp standardizes them), text and categories
one-hot encoded. Prints each trial as it finishes, then the best parameters and score."""


def read_table(path):
    """A pandas DataFrame from a .csv or .parquet (.pq) file."""
    import pandas as pd

    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        return pd.read_csv(path)
    if extension in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ValueError(f"{path}: expected a .csv or .parquet file")


def search(argv):
    """python -m fastmlp search DATA --target COLUMN [...]: returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fastmlp search", description=SEARCH_ABOUT)
    parser.add_argument("data", help="a .csv or .parquet file with a header row")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--n-iter", type=int, default=20, help="trials (default 20)")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds (default 3)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask scheduler's address (tcp://host:8786); default: this "
                             "machine's cores")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="local processes without --scheduler (default 1; -1: all cores)")
    parser.add_argument("--max-iter", type=int, default=200,
                        help="the most epochs of a trial; early stopping ends most sooner")
    parser.add_argument("--random-state", type=int, default=None,
                        help="seeds the trials and the models, for a repeatable search")
    args = parser.parse_args(argv)
    if args.n_iter < 1 or args.cv < 2:
        parser.error("--n-iter must be at least 1 and --cv at least 2")
    try:
        table = read_table(args.data)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if args.target not in table.columns:
        parser.error(f"--target {args.target!r} is not a column of {args.data}; its columns: "
                     f"{', '.join(map(str, table.columns))}")

    import numpy as np
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.utils.multiclass import type_of_target

    from . import MLPClassifier, MLPRegressor
    from .model_selection import random_search

    table = table.dropna(subset=[args.target])
    y = table[args.target].to_numpy()
    X = table.drop(columns=[args.target])
    regression = type_of_target(y) in ("continuous", "continuous-multioutput")
    model = (MLPRegressor if regression else MLPClassifier)(max_iter=args.max_iter,
                                                            random_state=args.random_state)
    categorical = make_column_selector(dtype_exclude="number")
    estimator = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), categorical),
                                remainder="passthrough"),
        model)
    print(f"{args.data}: {len(X)} rows, {X.shape[1]} feature columns; "
          f"{'regression (R^2)' if regression else 'classification (accuracy)'} of "
          f"{args.target!r}; {args.n_iter} trials, {args.cv}-fold cross-validation, on "
          f"{args.scheduler or 'this machine'}", flush=True)
    reported = 0

    def progress(results, done, total):
        nonlocal reported
        scores = results["mean_test_score"]
        for i in range(reported, done):
            params = {name.split("__")[-1]: value for name, value in results["params"][i].items()}
            print(f"trial {i + 1}/{total}: score {scores[i]:.4f} (best {np.nanmax(scores):.4f})  "
                  f"{_format(params)}", flush=True)
        reported = done

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = random_search(estimator, X, y, n_iter=args.n_iter, cv=args.cv,
                               client=args.scheduler, n_jobs=args.n_jobs,
                               random_state=args.random_state, refit=False, callback=progress)
    best = {name.split("__")[-1]: value for name, value in result.best_params_.items()}
    print(f"best score: {result.best_score_:.4f}")
    print(f"best parameters: {_format(best)}")
    return 0


def _format(params):
    return ", ".join(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in sorted(params.items()))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["search"]:
        return search(argv[1:])
    if argv[:1] == ["bench"]:
        from .benchmark import __doc__ as about, add_arguments, run_from_args

        bench_parser = argparse.ArgumentParser(prog="python -m fastmlp bench", description=about,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(bench_parser)
        return run_from_args(bench_parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m fastmlp")
    parser.add_argument("command", choices=["demo", "config", "bench", "search"],
                        help="demo: train on digits beside scikit-learn; config: show the build; "
                             "bench: throughput against the CPU's FMA peak and installed peers; "
                             "search: random search on a CSV or Parquet file (search --help)")
    args = parser.parse_args(argv)
    if args.command == "config":
        from . import show_config

        show_config()
        return 0
    return demo()


if __name__ == "__main__":
    sys.exit(main())
