"""solver="lbfgs": full-batch L-BFGS-B over the C loss and gradient (fastmlp/lbfgs.py)."""
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, Network
from fastmlp.lbfgs import FullBatchObjective

rng = np.random.RandomState(0)
X = rng.randn(80, 5)
Y_CLASS = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
Y_REG = X[:, 0] - 0.5 * X[:, 2] ** 2
SMALL = dict(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, n_threads=1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_objective_is_the_c_batch_gradient_over_every_row():
    """One call: the trainable part of the buffer takes the iterate; J and dJ/dp are the
    C pass over all rows (the gradient check's pass), float64 for scipy in either dtype."""
    for dtype in (np.float64, np.float32):
        est = MLPRegressor(dtype=dtype, max_iter=1, **SMALL).fit(X, Y_REG)
        objective = FullBatchObjective(est, est._model, est._seed,
                                       est._validate_X(X, reset=False),
                                       est._encode_targets(Y_REG, first=False), None, 1,
                                       est._work_parts(len(X)))
        x = est._params[:est._layout["n_trainable"]].astype(np.float64) * 0.5
        loss, grad = objective(x)
        assert grad.dtype == np.float64
        np.testing.assert_array_equal(est._params[:x.size], x.astype(dtype))
        expected_loss, expected_grad = est._batch_gradient(X, Y_REG)
        assert loss == pytest.approx(expected_loss, rel=1e-12)
        np.testing.assert_array_equal(grad, expected_grad.astype(np.float64))


def test_gradient_the_solver_sees_matches_finite_differences():
    est = MLPClassifier(dtype=np.float64, max_iter=2, activation="tanh", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_CLASS)
    objective = FullBatchObjective(est, est._model, est._seed, est._validate_X(X, reset=False),
                                   est._encode_targets(Y_CLASS, first=False), None, 1,
                                   est._work_parts(len(X)))
    x0 = est._params[:est._layout["n_trainable"]].copy()
    error = scipy.optimize.check_grad(lambda x: objective(x)[0],
                                      lambda x: objective(x)[1].copy(), x0)
    assert error < 1e-6 * max(1.0, np.linalg.norm(objective(x0)[1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_converges_and_sets_scikit_learn_attributes(dtype):
    est = MLPClassifier(dtype=dtype, max_iter=500, tol=1e-6, **SMALL).fit(X, Y_CLASS)
    assert est.score(X, Y_CLASS) > 0.95
    assert 0 < est.n_iter_ < 500 and len(est.loss_curve_) == est.n_iter_
    # L-BFGS-B's iterates never climb: each accepted step lowers J
    assert np.all(np.diff(est.loss_curve_) <= 1e-7)
    assert est.loss_ == pytest.approx(est.loss_curve_[-1], rel=1e-6)
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est._params.dtype == dtype
    # the final parameters are the ones whose loss is loss_
    assert est._batch_gradient(X, Y_CLASS)[0] == pytest.approx(est.loss_, rel=1e-5)


def test_max_iter_and_max_fun_end_with_scikit_learns_convergence_warning():
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 3 iteration"
                                                r"\(s\) \(status=1\)") as record:
        est = MLPRegressor(max_iter=3, **SMALL).fit(X, Y_REG)
    assert "Increase the number of iterations" in str(record[0].message)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    with pytest.warns(ConvergenceWarning, match="status=1"):
        MLPRegressor(max_fun=4, **SMALL).fit(X, Y_REG)
    # warm starts are fits like any other
    est.set_params(warm_start=True)
    with pytest.warns(ConvergenceWarning, match="after 3 iteration"):
        est.fit(X, Y_REG)


def test_max_fun_bounds_the_function_calls(monkeypatch):
    calls = []
    original = FullBatchObjective.__call__

    def counting(self, x):
        calls.append(1)
        return original(self, x)

    monkeypatch.setattr(FullBatchObjective, "__call__", counting)
    with pytest.warns(ConvergenceWarning):
        MLPRegressor(max_fun=7, max_iter=1000, **SMALL).fit(X, Y_REG)
    # L-BFGS-B checks the budget after each iteration: the last line search may overrun it
    assert 7 <= len(calls) <= 7 + 20


def test_warm_start_continues_from_the_fitted_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPRegressor(max_iter=5, warm_start=True, **SMALL).fit(X, Y_REG)
        first = est.loss_
        est.fit(X, Y_REG)
    assert est.loss_curve_[0] < first  # the second fit starts where the first stopped


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_results_do_not_depend_on_the_thread_count():
    fits = [MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", random_state=0, max_iter=20,
                          n_threads=n).fit(X, Y_CLASS) for n in (1, 2)]
    np.testing.assert_array_equal(fits[0]._params, fits[1]._params)


def test_sample_weight_and_sparse_input():
    weights = rng.rand(len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = MLPRegressor(dtype=np.float64, max_iter=20, **SMALL).fit(X, Y_REG, weights)
        sparse = MLPRegressor(dtype=np.float64, max_iter=20, **SMALL).fit(sp.csr_matrix(X), Y_REG,
                                                                           weights)
    np.testing.assert_allclose(dense.predict(X), sparse.predict(X), rtol=1e-8, atol=1e-10)
    # zero weights: those rows do not count
    zero = np.r_[np.ones(40), np.zeros(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPRegressor(dtype=np.float64, max_iter=20, **SMALL).fit(X, Y_REG, zero)
        b = MLPRegressor(dtype=np.float64, max_iter=20, normalize=None, **SMALL)
    b.set_params(normalize="auto")
    a_loss = a._batch_gradient(X[:40], Y_REG[:40])[0]
    assert a_loss == pytest.approx(a._batch_gradient(X, Y_REG, zero)[0], rel=1e-12)


def test_batch_norm_ends_with_the_population_statistics():
    est = MLPRegressor(batch_norm=True, dtype=np.float64, max_iter=30, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    stats = [(bn["running_mean"].copy(), bn["running_var"].copy()) for bn in est.batchnorm_]
    est.recompute_batchnorm_statistics(X)
    for (mean, var), bn in zip(stats, est.batchnorm_):
        np.testing.assert_allclose(mean, bn["running_mean"], rtol=1e-12)
        np.testing.assert_allclose(var, bn["running_var"], rtol=1e-12)


def test_refusals_leave_the_model_unchanged():
    with pytest.raises(ValueError, match="cannot drop units"):
        MLPRegressor(dropout=0.2, **SMALL).fit(X, Y_REG)
    est = MLPRegressor(max_iter=2, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    # partial_fit is for the stochastic solvers only, as in scikit-learn
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
        est.partial_fit(X, Y_REG)
    assert str(error.value.__cause__) == ("partial_fit is only available for stochastic "
                                          "optimizers. lbfgs is not stochastic.")
    est.set_params(solver="adam")
    assert hasattr(est, "partial_fit")


def test_divergence_raises_scikit_learns_error_and_keeps_the_old_model():
    est = MLPRegressor(max_iter=3, dtype=np.float32, normalize=None, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    before = est._params.copy()
    # unscaled inputs of 1e20: float32 gradients overflow (scikit-learn 1.9 ends this fit
    # with loss_ = nan and no error; the loss is part of the check here)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        est.fit(X * 1e20, Y_REG * 1e20)
    np.testing.assert_array_equal(est._params, before)


def test_verbose_prints_each_iteration(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPRegressor(max_iter=3, verbose=True, **SMALL).fit(X, Y_REG)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Iteration")]
    assert len(lines) == 3 and lines[0].startswith("Iteration 1, loss = ")


def test_network_and_pickle():
    import pickle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = Network(max_iter=30, **SMALL).fit(X, Y_CLASS)
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(clone.predict_proba(X), net.predict_proba(X))
    assert fastmlp.MLPClassifier(solver="lbfgs").max_fun == 15000


def test_early_stopping_does_not_apply_to_the_full_batch_solver():
    """As in scikit-learn: every row trains, no validation set is held out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        held = MLPClassifier(early_stopping=True, max_iter=10, **SMALL).fit(X, Y_CLASS)
        plain = MLPClassifier(max_iter=10, **SMALL).fit(X, Y_CLASS)
    np.testing.assert_array_equal(held._params, plain._params)
    assert held.validation_scores_ is None and held.best_validation_score_ is None
