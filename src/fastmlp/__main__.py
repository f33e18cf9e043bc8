"""python -m fastmlp demo: train on scikit-learn's digits beside scikit-learn's MLPClassifier."""
import argparse
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from .benchmark import __doc__ as about, add_arguments, run_from_args

        bench_parser = argparse.ArgumentParser(prog="python -m fastmlp bench", description=about,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(bench_parser)
        return run_from_args(bench_parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m fastmlp")
    parser.add_argument("command", choices=["demo", "config", "bench"],
                        help="demo: train on digits beside scikit-learn; config: show the build; "
                             "bench: throughput against the CPU's FMA peak and installed peers")
    args = parser.parse_args(argv)
    if args.command == "config":
        from . import show_config

        show_config()
        return 0
    return demo()


if __name__ == "__main__":
    sys.exit(main())
