"""Early stopping: a stratified held-out split, one validation score per epoch, a stop exactly
n_iter_no_change epochs after the last improvement (the lecture's look-ahead), and the best
epoch's parameters restored bit for bit.

A spy on the C epoch records the parameters after every epoch and the rows it trained on, so
the tests compare against what each epoch really produced."""
import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor

rng = np.random.RandomState(0)
X = rng.randn(80, 5)
Y = np.where(X[:, 0] + 0.5 * rng.randn(80) > 0.6, 1, 0)  # imbalanced: about 1 in 4 are 1
Y3 = np.digitize(X[:, 1] + 0.3 * rng.randn(80), [-0.5, 0.7])
Y_REG = X[:, 0] - X[:, 1] * X[:, 2] + 0.1 * rng.randn(80)


def held_out(epochs, n):
    rows = {tuple(trained) for _, trained in epochs}
    assert len(rows) == 1  # the same split every epoch
    return np.setdiff1d(np.arange(n), epochs[0][1])


def score_with(model, params, X_val, y_val):
    """The score of `model` as it was with `params` (the whole buffer)."""
    other = copy.deepcopy(model)
    other._params[...] = params
    if isinstance(model, MLPRegressor):
        return r2_score(y_val, other.predict(X_val))
    return accuracy_score(y_val, other.predict(X_val))


def stop_oracle(scores, tol, patience):
    """(epoch of the best score, epoch training stops at), 1-based: a score improves when it
    beats the best so far by more than tol; the best is the highest (the first, on ties)."""
    best, waited = -np.inf, 0
    for epoch, score in enumerate(scores, start=1):
        waited = 0 if score > best + tol else waited + 1
        best = max(best, score)
        if waited == patience:
            return int(np.argmax(scores[:epoch])) + 1, epoch
    return int(np.argmax(scores)) + 1, None


@pytest.mark.parametrize("y, fraction", [(Y, 0.25), (Y3, 0.2), (Y, 0.1)])
def test_classifier_split_is_stratified(epochs, y, fraction, quiet):
    clf = MLPClassifier(hidden_layer_sizes=(4,), early_stopping=True, max_iter=2,
                        validation_fraction=fraction, random_state=0, n_threads=1).fit(X, y)
    held = held_out(epochs, len(X))
    assert len(held) == int(np.ceil(fraction * len(X)))
    classes, counts = np.unique(y, return_counts=True)
    held_counts = np.array([np.sum(y[held] == c) for c in classes])
    # each class keeps its share to within one row (train_test_split's stratified rounding)
    assert np.all(np.abs(held_counts - counts * len(held) / len(X)) < 1)
    assert held_counts.sum() == len(held) and np.all(held_counts > 0)
    assert len(clf.validation_scores_) == 2


def test_regressor_split_holds_out_the_fraction(epochs, quiet):
    MLPRegressor(hidden_layer_sizes=(4,), early_stopping=True, max_iter=2,
                 validation_fraction=0.3, random_state=0, n_threads=1).fit(X, Y_REG)
    assert len(held_out(epochs, len(X))) == 24


CASES = {
    "classifier": (MLPClassifier, Y3, dict(tol=0.0)),
    "classifier with tol": (MLPClassifier, Y3, dict(tol=0.06)),
    # R^2 in float64, as the test computes it
    "regressor": (MLPRegressor, Y_REG, dict(tol=1e-3, solver="sgd", dtype=np.float64)),
    # small gains do not reset the look-ahead, yet the best epoch is the highest score
    "regressor with tol": (MLPRegressor, Y_REG, dict(tol=0.02, solver="sgd", dtype=np.float64)),
    "batch norm and dropout": (MLPClassifier, Y, dict(tol=0.0, batch_norm=True, dropout=0.2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stops_after_look_ahead_and_restores_best_epoch(epochs, case):
    cls, y, params = CASES[case]
    kw = dict(hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.25,
              n_iter_no_change=4, max_iter=300, batch_size=16, learning_rate_init=0.01,
              random_state=1, n_threads=1)
    kw.update(params)
    model = cls(**kw).fit(X, y)
    scores = model.validation_scores_
    assert len(scores) == len(epochs) == model.n_iter_ == len(model.loss_curve_)
    # every epoch's score is the score of that epoch's parameters on the held-out rows
    held = held_out(epochs, len(X))
    for score, (params_after, _) in zip(scores, epochs):
        assert score == pytest.approx(score_with(model, params_after, X[held], y[held]),
                                      abs=1e-12)
    best, stop = stop_oracle(scores, kw["tol"], kw["n_iter_no_change"])
    assert stop == model.n_iter_ < kw["max_iter"]
    assert model.best_validation_score_ == scores[best - 1] == max(scores)
    assert model.best_loss_ is None
    # the best epoch's whole buffer (running statistics included), bit for bit
    np.testing.assert_array_equal(model._params, epochs[best - 1][0])
    assert np.shares_memory(model.coefs_[0], model._params)
    assert score_with(model, model._params, X[held], y[held]) == model.best_validation_score_
    # the same seed stopped at the best epoch lands on the same parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached, mostly
        again = cls(**dict(kw, max_iter=best)).fit(X, y)
    np.testing.assert_array_equal(again._params, model._params)


def test_stops_exactly_look_ahead_after_best_with_zero_tol(epochs):
    """tol=0: the stop is n_iter_no_change epochs after the (first) best epoch."""
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, tol=0.0,
                        n_iter_no_change=6, validation_fraction=0.3, learning_rate_init=0.01,
                        max_iter=300, random_state=2, n_threads=1).fit(X, Y3)
    best = int(np.argmax(clf.validation_scores_)) + 1
    assert best > 1 and clf.n_iter_ == best + 6
    assert max(clf.validation_scores_[best:]) <= clf.validation_scores_[best - 1]
    np.testing.assert_array_equal(clf._params, epochs[best - 1][0])


def test_without_early_stopping_nothing_is_held_out(epochs, quiet):
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                        n_threads=1).fit(X, Y)
    assert len(epochs[0][1]) == len(X)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    np.testing.assert_array_equal(clf._params, epochs[-1][0])  # the last epoch's, as trained
