"""Each solver on scikit-learn's digits: test accuracy, epochs (n_iter_) and fit time, with and
without early stopping.

75/25 split (random_state=0), MLPClassifier defaults otherwise (hidden_layer_sizes=(100,),
learning_rate_init=0.001, batch_size=min(200, n), tol=1e-4, n_iter_no_change=10, max_iter=200),
random_state=0 for the model, one thread so the figures do not depend on the machine's load.

    python bench/optimizers_digits.py     (fastmlp installed, or PYTHONPATH=src after an in-place build)
"""
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastmlp import MLPClassifier

SOLVERS = {
    "sgd (momentum 0.9)": dict(solver="sgd"),
    "sgd + nesterov": dict(solver="sgd", nesterovs_momentum=True),
    "adagrad": dict(solver="adagrad"),
    "rmsprop": dict(solver="rmsprop"),
    "adam": dict(solver="adam"),
}


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"digits: {len(X_train)} train / {len(X_test)} test, n_threads=1\n")
    print(f"{'solver':<20} {'early_stopping':>14} {'test acc':>9} {'epochs':>7} "
          f"{'fit s':>7}  stopped by")
    for name, params in SOLVERS.items():
        for early_stopping in (False, True):
            clf = MLPClassifier(random_state=0, n_threads=1, early_stopping=early_stopping,
                                **params)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                started = time.perf_counter()
                clf.fit(X_train, y_train)
                seconds = time.perf_counter() - started
            hit_max = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            stopped = "max_iter" if hit_max else (
                "validation look-ahead" if early_stopping else "training loss tol")
            print(f"{name:<20} {str(early_stopping):>14} {clf.score(X_test, y_test):>9.4f} "
                  f"{clf.n_iter_:>7d} {seconds:>7.2f}  {stopped}")


if __name__ == "__main__":
    main()
