"""Batch normalization (shared/API.md) on every hidden pre-activation: mini-batch mean and biased
variance in training with the full gradient through them, running averages (momentum 0.1,
unbiased variance) at prediction, gamma/beta trained but not penalized, no hidden bias; and the
lecture's exact alternative, recompute_batchnorm_statistics."""
import numpy as np
import pytest
import scipy.sparse as sp
from reference import activation_forward, output_forward, output_loss
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

from fastmlp import MLPClassifier, MLPRegressor, check_gradients

EPS = 1e-5


def batchnorm_forward(a, gamma, beta, mean=None, var=None):
    """The numpy oracle. Training mode (mean, var None): the batch's mean and biased variance;
    prediction mode: the given (running) statistics. Returns (z, batch mean, unbiased var)."""
    batch_mean, batch_var = a.mean(axis=0), a.var(axis=0)
    unbiased = a.var(axis=0, ddof=1)
    if mean is None:
        mean, var = batch_mean, batch_var
    return (a - mean) / np.sqrt(var + EPS) * gamma + beta, batch_mean, unbiased


def network_forward_bn(model, X, training):
    """Outputs before the output function, and each hidden layer's batch statistics."""
    h, stats = X, []
    for W, bn in zip(model.coefs_[:-1], model.batchnorm_):
        a = h @ W  # no bias under batch norm
        if training:
            z, mean, unbiased = batchnorm_forward(a, bn["gamma"], bn["beta"])
        else:
            z, mean, unbiased = batchnorm_forward(a, bn["gamma"], bn["beta"],
                                                  bn["running_mean"], bn["running_var"])
        stats.append((mean, unbiased))
        h, _ = activation_forward(z, model.activation)
    return h @ model.coefs_[-1] + model.intercepts_[-1], stats


def fitted(activation="tanh", hidden=(7, 5), n=60, seed=0, **kw):
    rng = np.random.RandomState(seed)
    X, y = rng.randn(n, 4), rng.randint(0, 3, n)
    options = dict(hidden_layer_sizes=hidden, activation=activation, batch_norm=True,
                   normalize=None, dtype=np.float64, max_iter=5, random_state=0, n_threads=1)
    model = MLPClassifier(**{**options, **kw}).fit(X, y)
    # gamma, beta and the running statistics away from their starting values
    for bn in model.batchnorm_:
        for name, low, high in (("gamma", 0.5, 1.5), ("beta", -0.5, 0.5),
                                ("running_mean", -0.3, 0.3), ("running_var", 0.5, 2.0)):
            bn[name][...] = rng.uniform(low, high, bn[name].shape)
    return model, X, y


def test_prediction_uses_the_running_statistics(quiet):
    model, X, _ = fitted()
    logits, _ = network_forward_bn(model, X, training=False)
    np.testing.assert_allclose(model.predict_proba(X), output_forward(logits, "softmax"),
                               rtol=1e-12, atol=1e-14)
    # and prediction is per row: a row's output does not depend on the rest of the batch
    np.testing.assert_allclose(model.predict_proba(X[:1]), model.predict_proba(X)[:1],
                               rtol=1e-12)


def test_training_uses_the_batch_statistics(quiet):
    model, X, y = fitted(alpha=0.01)
    Y = np.eye(3)[y]
    penalty = 0.5 * model.alpha * sum((W ** 2).sum() for W in model.coefs_)
    loss, _ = model._batch_gradient(X, y)
    train_logits, _ = network_forward_bn(model, X, training=True)
    predict_logits, _ = network_forward_bn(model, X, training=False)
    expected = output_loss(train_logits, Y, "softmax")[0] + penalty
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    # the two modes really differ here, as they should
    assert abs(output_loss(predict_logits, Y, "softmax")[0] + penalty - loss) > 1e-3


def test_running_statistics_move_by_momentum_with_the_unbiased_variance(quiet):
    """One update on one batch: running = 0.9 running + 0.1 batch, with the batch's unbiased
    variance, for every layer (the second layer seeing the first in training mode)."""
    model, X, y = fitted(batch_size=60)
    before = [{k: v.copy() for k, v in bn.items()} for bn in model.batchnorm_]
    _, stats = network_forward_bn(model, X, training=True)  # with the weights before the step
    model.partial_fit(X, y)
    for bn, old, (mean, unbiased) in zip(model.batchnorm_, before, stats):
        np.testing.assert_allclose(bn["running_mean"], 0.9 * old["running_mean"] + 0.1 * mean,
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(bn["running_var"], 0.9 * old["running_var"] + 0.1 * unbiased,
                                   rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("options", [{}, dict(dropout=[0.3, 0.5]), dict(weighted=True)])
def test_gradients_through_batch_norm(activation, options, quiet):
    """Finite differences of the training-mode loss: the gradient flows through the batch mean
    and variance (gamma, beta and every weight below them), with dropout and sample weights."""
    options = dict(options)
    weighted = options.pop("weighted", False)
    model, X, y = fitted(activation, n=24, alpha=0.01, **options)
    weights = np.random.RandomState(1).uniform(0.2, 2, len(y)) if weighted else None
    error, errors = check_gradients(model, X, y, sample_weight=weights, seed=3, t=2)
    assert error < 1e-5
    # the hidden biases get no gradient: beta plays their part
    lay = model._layout
    _, grads = model._batch_gradient(X, y, weights)
    for l, n in enumerate(lay["units"][1:-1]):
        assert not np.any(grads[lay["b_offset"][l]:][:n])


def test_gamma_and_beta_are_not_penalized(quiet):
    model, X, y = fitted(alpha=0.0)
    _, without = model._batch_gradient(X, y)
    model.set_params(alpha=3.0)
    _, with_l2 = model._batch_gradient(X, y)
    lay = model._layout
    n_weights = lay["n_weights"]
    np.testing.assert_allclose(with_l2[:n_weights] - without[:n_weights],
                               3.0 * model._params[:n_weights], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(with_l2[n_weights:], without[n_weights:])


@pytest.mark.parametrize("solver", ["sgd", "adam", "adagrad", "rmsprop"])
def test_every_solver_trains_gamma_and_beta_and_no_hidden_bias(solver, quiet):
    rng = np.random.RandomState(2)
    X, y = rng.randn(80, 5), rng.randint(0, 3, 80)
    model = MLPClassifier(hidden_layer_sizes=(6, 4), batch_norm=True, solver=solver,
                          learning_rate_init=0.05, max_iter=5, batch_size=20, random_state=0,
                          n_threads=1).fit(X, y)
    for b, bn in zip(model.intercepts_[:-1], model.batchnorm_):
        assert not np.any(b)
        assert np.all(bn["gamma"] != 1) and np.all(bn["beta"] != 0)
        assert np.all(bn["running_var"] > 0)
    assert np.any(model.intercepts_[-1])  # the output layer keeps its bias


def test_batchnorm_attributes_are_views(quiet):
    model, X, _ = fitted()
    assert len(model.batchnorm_) == 2
    for bn, n in zip(model.batchnorm_, (7, 5)):
        assert set(bn) == {"gamma", "beta", "running_mean", "running_var"}
        for array in bn.values():
            assert array.shape == (n,) and np.shares_memory(array, model._params)
    before = model.predict_proba(X)
    model.batchnorm_[1]["beta"][...] += 1.0
    assert not np.allclose(before, model.predict_proba(X))
    assert not hasattr(MLPClassifier().fit(X, np.arange(len(X)) % 2), "batchnorm_")


def population_oracle(model, X):
    """The exact population statistics, layer by layer, the layers below in inference mode with
    their new statistics: what recompute_batchnorm_statistics promises."""
    h, stats = X, []
    for W, bn in zip(model.coefs_[:-1], model.batchnorm_):
        a = h @ W
        mean, var = a.mean(axis=0), a.var(axis=0, ddof=1)
        stats.append((mean, var))
        h, _ = activation_forward((a - mean) / np.sqrt(var + EPS) * bn["gamma"] + bn["beta"],
                                  model.activation)
    return stats


@pytest.mark.parametrize("n", [2, 129, 300])  # one chunk of rows, a chunk and one row, several
def test_recompute_batchnorm_statistics_gives_the_population_statistics(n, quiet,
                                                                          gemm_path):
    model, X, _ = fitted(n=300)
    X = np.random.RandomState(5).randn(n, 4) * 2 + 1
    trained = model._params[:model._layout["mean_offset"][0]].copy()
    assert model.recompute_batchnorm_statistics(X) is model
    for bn, (mean, var) in zip(model.batchnorm_, population_oracle(model, X)):
        np.testing.assert_allclose(bn["running_mean"], mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(bn["running_var"], var, rtol=1e-10)
    # weights, biases, gamma and beta stay as they were
    np.testing.assert_array_equal(model._params[:model._layout["mean_offset"][0]], trained)


def test_recompute_batchnorm_statistics_any_threads_sparse_and_float32(quiet):
    rng = np.random.RandomState(6)
    X = rng.randn(500, 6) * (rng.rand(500, 6) < 0.4)
    y = rng.randint(0, 2, 500)
    results = []
    for n_threads, data in ((1, X), (2, X), (2, sp.csr_matrix(X))):
        model = MLPClassifier(hidden_layer_sizes=(9, 8), batch_norm=True, max_iter=2,
                              random_state=0, n_threads=n_threads).fit(X, y)
        results.append(model.recompute_batchnorm_statistics(data)._params.copy())
    assert np.array_equal(results[0], results[1])  # the same bits on 1 and 2 threads
    np.testing.assert_allclose(results[2], results[0], rtol=1e-5, atol=1e-6)
    X_std = (X - model._x_shift) * model._x_scale
    for bn, (mean, var) in zip(model.batchnorm_, population_oracle(model, X_std)):
        np.testing.assert_allclose(bn["running_mean"], mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn["running_var"], var, rtol=1e-4)


def test_recompute_batchnorm_statistics_refuses_bad_calls(quiet):
    model, X, y = fitted()
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.recompute_batchnorm_statistics(X[:1])
    with pytest.raises(ValueError, match="features"):
        model.recompute_batchnorm_statistics(X[:, :3])
    plain = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                          n_threads=1).fit(X, y)
    with pytest.raises(ValueError, match="batch_norm=True"):
        plain.recompute_batchnorm_statistics(X)
    with pytest.raises(NotFittedError):
        MLPClassifier(batch_norm=True).recompute_batchnorm_statistics(X)


def test_digits_with_batch_norm():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(128, 128), batch_norm=True, random_state=0,
                        n_threads=1).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.97
    assert clf.recompute_batchnorm_statistics(X_train).score(X_test, y_test) >= 0.97


def test_a_last_batch_of_one_row_joins_the_batch_before(quiet):
    """Batch statistics of one row are meaningless (variance 0, xhat 0), so with batch norm a
    trailing single row trains in the batch before it: 201 rows in batches of 50 make 4 updates
    (50, 50, 50, 51), not 5. Without batch norm the single row is a batch of its own."""
    rng = np.random.RandomState(7)
    X, y = rng.randn(201, 3), rng.randn(201)
    kw = dict(hidden_layer_sizes=(5,), batch_size=50, max_iter=1, random_state=0, n_threads=1)
    assert MLPRegressor(batch_norm=True, **kw).fit(X, y)._n_updates == 4
    assert MLPRegressor(**kw).fit(X, y)._n_updates == 5


@pytest.mark.parametrize("fit", [
    lambda X, y: MLPRegressor(batch_norm=True, batch_size=1).fit(X, y),
    lambda X, y: MLPRegressor(batch_norm=True).fit(X[:1], y[:1]),
    lambda X, y: MLPRegressor(batch_norm=True).partial_fit(X[:1], y[:1]),
    lambda X, y: MLPRegressor(batch_norm=True, early_stopping=True,
                              validation_fraction=0.5).fit(X[:2], y[:2]),
])
def test_batch_norm_with_one_row_per_batch_is_refused_before_training(fit):
    rng = np.random.RandomState(8)
    X, y = rng.randn(10, 3), rng.randn(10)
    with pytest.raises(ValueError, match="batch_norm needs at least 2"):
        fit(X, y)


def test_refused_partial_fit_leaves_the_model_as_it_was(quiet):
    rng = np.random.RandomState(9)
    X, y = rng.randn(10, 3), rng.randn(10)
    model = MLPRegressor(hidden_layer_sizes=(4,), batch_norm=True, max_iter=2, random_state=0,
                         n_threads=1).fit(X, y)
    params, t, updates = model._params.copy(), model.t_, model._n_updates
    with pytest.raises(ValueError, match="batch_norm needs at least 2"):
        model.partial_fit(X[:1], y[:1])
    np.testing.assert_array_equal(model._params, params)
    assert model.t_ == t and model._n_updates == updates
