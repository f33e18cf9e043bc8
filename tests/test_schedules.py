"""Learning-rate schedules: "plateau" (the lecture's rule: halve the rate when the monitored
score has not improved by tol for n_iter_no_change epochs, stop at the fifth halving) and
"invscaling"; the per-update arithmetic of both is checked step for step in test_optimizers."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.schedules import LearningRateSchedule

rng = np.random.RandomState(0)
X = rng.randn(60, 4)
Y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
Y_REG = X[:, 0] - 0.5 * X[:, 2]


@pytest.fixture
def epochs(monkeypatch):
    """What the C side was asked to do each epoch: a list of (learning rate, C schedule)."""
    seen = []
    original = fastmlp._core.train_epoch

    def spy(net, hyper, *args):
        seen.append((hyper["learning_rate"], hyper["schedule"]))
        return original(net, hyper, *args)

    monkeypatch.setattr(fastmlp.network._core, "train_epoch", spy)
    return seen


def plateau_oracle(monitored, lr0, tol, patience):
    """The rate each epoch trains with, and the epoch (1-based) after which training stops
    (None: it never stops), for monitored values where lower is better."""
    rates, lr, best, waited, halvings = [], lr0, np.inf, 0, 0
    for epoch, value in enumerate(monitored, start=1):
        rates.append(lr)
        waited = 0 if value < best - tol else waited + 1
        best = min(best, value)
        if waited == patience:
            lr, waited, halvings = lr / 2, 0, halvings + 1
            if halvings == 5:
                return rates, epoch
    return rates, None


def test_schedule_halves_after_patience_and_stops_at_fifth_halving():
    schedule = LearningRateSchedule("plateau", 0.1, tol=0.1, n_iter_no_change=2)
    values = [1.0, 0.95, 0.5, 0.45, 0.41, 0.3, 0.29]
    rates, stops = [], []
    for value in values:
        stops.append(schedule.epoch_ends(value))
        rates.append(schedule.learning_rate)
    # 0.95 and 0.45 do not beat the best by 0.1; 0.41 beats 0.45 but not the best 0.5 by 0.1
    assert rates == [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    assert not any(stops)
    for _ in range(7):  # nothing improves: a halving every second epoch
        stops.append(schedule.epoch_ends(1.0))
    assert schedule.halvings == 5 and schedule.learning_rate == 0.1 / 32
    assert stops[-1] and not any(stops[:-1])
    # never halved again, whatever comes next
    assert schedule.epoch_ends(1.0) and schedule.epoch_ends(1.0)
    assert schedule.learning_rate == 0.1 / 32


@pytest.mark.parametrize("kind", ["constant", "invscaling"])
def test_other_schedules_never_stop_training(kind):
    schedule = LearningRateSchedule(kind, 0.1, tol=0.0, n_iter_no_change=1)
    assert not any(schedule.epoch_ends(1.0) for _ in range(20))
    assert schedule.learning_rate == 0.1


def test_plateau_on_training_loss_without_improvement(epochs):
    """With a tol no epoch can meet, only the first improves (on an infinite best): halvings
    after epochs 3, 5, 7, 9 and 11, where training stops."""
    clf = MLPClassifier(hidden_layer_sizes=(5,), learning_rate="plateau", tol=1e9,
                        n_iter_no_change=2, learning_rate_init=0.01, max_iter=100,
                        random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # it stops, not max_iter
        clf.fit(X, Y)
    assert clf.n_iter_ == 11
    rates = [lr for lr, _ in epochs]
    assert rates == [0.01] * 3 + [0.005] * 2 + [0.0025] * 2 + [0.00125] * 2 + [0.000625] * 2
    assert all(c_schedule == "constant" for _, c_schedule in epochs)
    assert clf._schedule.learning_rate == 0.01 / 32
    # the constant schedule stops on the same patience without halving anything
    constant = MLPClassifier(hidden_layer_sizes=(5,), tol=1e9, n_iter_no_change=2,
                             learning_rate_init=0.01, random_state=0, n_threads=1).fit(X, Y)
    assert constant.n_iter_ == 1 + 2


@pytest.mark.parametrize("cls, y", [(MLPClassifier, Y), (MLPRegressor, Y_REG)])
def test_plateau_monitors_training_loss(epochs, cls, y):
    model = cls(hidden_layer_sizes=(8,), learning_rate="plateau", solver="sgd",
                learning_rate_init=0.05, tol=1e-3, n_iter_no_change=3, max_iter=400,
                batch_size=20, random_state=0, n_threads=1).fit(X, y)
    rates, stop = plateau_oracle(model.loss_curve_, 0.05, 1e-3, 3)
    assert stop == model.n_iter_ < 400
    assert [lr for lr, _ in epochs] == rates
    assert model.best_loss_ == min(model.loss_curve_)


def test_plateau_monitors_validation_score_with_early_stopping(epochs):
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate="plateau", early_stopping=True,
                        validation_fraction=0.3, learning_rate_init=0.02, tol=0.0,
                        n_iter_no_change=2, max_iter=400, random_state=0, n_threads=1)
    clf.fit(X, Y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_
    rates, stop = plateau_oracle([-s for s in scores], 0.02, 0.0, 2)
    assert stop == clf.n_iter_
    assert [lr for lr, _ in epochs] == rates
    # the training loss, which it does not watch, would have halved elsewhere
    assert plateau_oracle(clf.loss_curve_, 0.02, 0.0, 2)[0] != rates
    assert clf.best_validation_score_ == max(scores)


def test_partial_fit_carries_the_plateau_schedule(epochs):
    """partial_fit feeds each epoch's training loss to the kept schedule: it halves across
    calls, never more than five times, and never stops the caller."""
    clf = MLPClassifier(hidden_layer_sizes=(5,), learning_rate="plateau", tol=1e9,
                        n_iter_no_change=1, learning_rate_init=0.01, random_state=0,
                        n_threads=1)
    for _ in range(8):
        clf.partial_fit(X, Y, classes=[0, 1])
    assert [lr for lr, _ in epochs] == [0.01 * 0.5 ** k for k in (0, 0, 1, 2, 3, 4, 5, 5)]
    assert clf.n_iter_ == 8 and clf.best_loss_ == min(clf.loss_curve_)


def test_partial_fit_after_early_stopping_watches_training_loss(epochs):
    """fit watched (negated) validation scores; the schedule partial_fit continues compares
    training losses with training losses."""
    clf = MLPClassifier(hidden_layer_sizes=(5,), learning_rate="plateau", early_stopping=True,
                        n_iter_no_change=50, max_iter=3, learning_rate_init=0.01,
                        random_state=0, n_threads=1)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, Y)
    assert clf.best_loss_ is None
    epochs.clear()
    assert clf._schedule.best < 0  # minus the best validation accuracy
    clf.partial_fit(X, Y)
    # a loss compared with minus an accuracy would never improve, and would halve the rate
    assert clf._schedule.best == clf.best_loss_ == clf.loss_curve_[-1] > 0
    assert clf._schedule.halvings == 0 and clf._schedule.epochs_without_improvement == 0
    clf.partial_fit(X, Y)
    assert clf.best_loss_ == min(clf.loss_curve_[-2:])


@pytest.mark.parametrize("kind", ["constant", "invscaling", "plateau"])
def test_three_partial_fits_equal_fit_with_each_schedule(kind, quiet):
    # plateau halves after epochs 2 and 3 (tol=1e9: only the first epoch improves); the others
    # would stop at epoch 2 on the same patience, so they get more of it
    kw = dict(hidden_layer_sizes=(6,), learning_rate=kind, tol=1e9,
              n_iter_no_change=1 if kind == "plateau" else 10, batch_size=len(X),
              shuffle=False, random_state=0, n_threads=1, learning_rate_init=0.05)
    fitted = MLPClassifier(max_iter=3, **kw).fit(X, Y)
    inc = MLPClassifier(**kw)
    for _ in range(3):
        inc.partial_fit(X, Y, classes=[0, 1])
    np.testing.assert_array_equal(inc._params, fitted._params)
    assert inc.loss_curve_ == fitted.loss_curve_
    assert inc._schedule.learning_rate == fitted._schedule.learning_rate \
        == (0.05 / 4 if kind == "plateau" else 0.05)


def test_invscaling_hands_the_initial_rate_to_the_per_update_decay(epochs, quiet):
    """The rate decays per update inside the C step (lr0 / t^power_t); between epochs it stays
    lr0 and only t moves on."""
    clf = MLPClassifier(hidden_layer_sizes=(5,), learning_rate="invscaling", power_t=0.25,
                        learning_rate_init=0.2, solver="sgd", momentum=0.0, batch_size=20,
                        max_iter=3, shuffle=False, random_state=0, n_threads=1,
                        dtype=np.float64, alpha=0.0)
    clf.fit(X, Y)
    assert epochs == [(0.2, "invscaling")] * 3 and clf._n_updates == 9
    # one more update of plain SGD: the step is exactly lr0 / 10^0.25 times the gradient
    X1, Y1 = X[:20], Y[:20]
    before = clf._params.copy()
    gradient = clf._batch_gradient(X1, Y1)[1]
    clf.set_params(batch_size=20)
    clf.partial_fit(X1, Y1)
    n = len(gradient)
    np.testing.assert_allclose(before[:n] - clf._params[:n], 0.2 / 10 ** 0.25 * gradient,
                               rtol=1e-12, atol=1e-15)


def adaptive_oracle(monitored, lr0, tol, patience):
    """scikit-learn's "adaptive" rule (its SGDOptimizer.trigger_stopping and the MLP's
    no-improvement count): the rate of each epoch and the epoch after which training stops."""
    rates, lr, best, waited = [], lr0, np.inf, 0
    for epoch, value in enumerate(monitored, start=1):
        rates.append(lr)
        waited = 0 if value < best - tol else waited + 1
        best = min(best, value)
        if waited > patience:
            waited = 0
            if lr <= 1e-6:
                return rates, epoch
            lr /= 5
    return rates, None


def test_adaptive_divides_by_five_after_more_than_patience_epochs_then_stops_at_1e_6():
    schedule = LearningRateSchedule("adaptive", 1e-3, tol=0.0, n_iter_no_change=2)
    values = [1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.7]
    rates, stops = [], []
    for value in values:
        stops.append(schedule.epoch_ends(value))
        rates.append(schedule.learning_rate)
    assert rates == pytest.approx([1e-3] * 3 + [2e-4] * 4 + [4e-5])
    assert not any(stops)
    # 4e-5 -> 8e-6 -> 1.6e-6 -> 3.2e-7, then the next trigger finds it below 1e-6 and stops
    stops = [schedule.epoch_ends(1.0) for _ in range(12)]
    assert schedule.learning_rate == pytest.approx(3.2e-7)
    assert stops == [False] * 11 + [True]


def test_adaptive_is_for_sgd_and_keeps_other_solvers_constant():
    for solver in ("adam", "adagrad", "rmsprop"):
        schedule = LearningRateSchedule("adaptive", 0.1, 0.0, 1, solver)
        assert schedule.kind == "constant" and not schedule.acts_between_epochs
    assert LearningRateSchedule("adaptive", 0.1, 0.0, 1, "sgd").acts_between_epochs


def test_n_iter_no_change_inf_never_adapts_or_stops():
    for kind in ("adaptive", "plateau"):
        schedule = LearningRateSchedule(kind, 0.1, tol=1e9, n_iter_no_change=np.inf)
        assert not any(schedule.epoch_ends(1.0) for _ in range(50))
        assert schedule.learning_rate == 0.1


@pytest.mark.parametrize("early_stopping", [False, True])
def test_adaptive_fit_follows_scikit_learns_rule(epochs, early_stopping):
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", learning_rate="adaptive",
                        learning_rate_init=0.05, tol=1e-3, n_iter_no_change=2, max_iter=300,
                        early_stopping=early_stopping, validation_fraction=0.3,
                        random_state=0, n_threads=1).fit(X, Y)
    monitored = ([-s for s in clf.validation_scores_] if early_stopping else clf.loss_curve_)
    rates, stop = adaptive_oracle(monitored, 0.05, 1e-3, 2)
    assert [lr for lr, _ in epochs] == pytest.approx(rates)
    assert stop == clf.n_iter_ < 300  # it ran the rate down below 1e-6 and stopped
    assert min(rates) <= 1e-6


def test_adaptive_with_adam_stops_on_the_usual_patience(epochs):
    clf = MLPClassifier(hidden_layer_sizes=(5,), learning_rate="adaptive", tol=1e9,
                        n_iter_no_change=2, learning_rate_init=0.01, random_state=0,
                        n_threads=1).fit(X, Y)
    assert clf.n_iter_ == 3 and {lr for lr, _ in epochs} == {0.01}


def test_n_iter_no_change_inf_trains_max_iter_epochs():
    clf = MLPClassifier(hidden_layer_sizes=(5,), tol=1e9, n_iter_no_change=np.inf,
                        max_iter=7, random_state=0, n_threads=1)
    with pytest.warns(ConvergenceWarning, match=r"Stochastic Optimizer: Maximum iterations "
                                                r"\(7\) reached"):
        clf.fit(X, Y)
    assert clf.n_iter_ == 7


def test_partial_fit_carries_the_adaptive_schedule(epochs):
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", learning_rate="adaptive",
                        tol=1e9, n_iter_no_change=1, learning_rate_init=0.01, random_state=0,
                        n_threads=1)
    for _ in range(7):
        clf.partial_fit(X, Y, classes=[0, 1])
    # only the first epoch improves on an infinite best; then every second epoch divides
    assert [lr for lr, _ in epochs] == pytest.approx(
        [0.01 / 5 ** k for k in (0, 0, 0, 1, 1, 2, 2)])
