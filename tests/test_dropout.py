"""Dropout (shared/API.md): a fresh mask per example and per update from a counter-based generator
keyed by (seed, update, row, unit), kept units scaled by 1 / (1 - p) in training, the whole
network unscaled at prediction; the same mask again on the delta in backward."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from reference import network_forward
from sklearn.model_selection import train_test_split

from fastmlp import MLPClassifier, MLPRegressor, _core, check_gradients


def masked_regressor(p, n_rows=200, n_hidden=500, hidden=1):
    """An identity-activation regressor fitted on X = I (n_rows, n_rows): then dJ/dW_0 = X^T delta_0
    is the first hidden layer's delta itself, row r of it being example r's, and
    delta_0[r, j] = mask[r, j] / (1 - p) * (output delta of r) * (W_1 path to unit j), zero exactly
    where unit j of example r was dropped. So the gradient shows the mask."""
    rng = np.random.RandomState(0)
    X, y = np.eye(n_rows), rng.randn(n_rows)
    model = MLPRegressor(hidden_layer_sizes=(n_hidden,) * hidden, activation="identity",
                         dropout=p, alpha=0.0, normalize=None, dtype=np.float64, max_iter=1,
                         random_state=0, n_threads=1)
    model.partial_fit(X, y)
    return model, X, y


def first_layer_mask(model, X, y, seed, t):
    _, grads = model._batch_gradient(X, y, seed=seed, t=t)
    W0 = model._layout["w_offset"][0]
    n_in, n_out = model.coefs_[0].shape
    return grads[W0:W0 + n_in * n_out].reshape(n_in, n_out) != 0, grads


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction_is_one_minus_p_and_every_row_has_its_own_mask(p):
    model, X, y = masked_regressor(p)
    mask, _ = first_layer_mask(model, X, y, seed=11, t=1)
    n = mask.size  # 100,000 independent draws: the kept fraction has std sqrt(p (1 - p) / n)
    assert abs(mask.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    # per unit too (200 draws each): no unit is always kept or always dropped
    per_unit = mask.mean(axis=0)
    assert abs(per_unit.mean() - (1 - p)) < 0.01 and 0 < per_unit.min() and per_unit.max() < 1
    # every example (row) has its own mask
    assert len({row.tobytes() for row in mask}) == mask.shape[0]


def test_masks_are_fresh_per_update_and_fixed_by_the_key():
    model, X, y = masked_regressor(0.5)
    first, _ = first_layer_mask(model, X, y, seed=3, t=7)
    again, _ = first_layer_mask(model, X, y, seed=3, t=7)
    next_update, _ = first_layer_mask(model, X, y, seed=3, t=8)
    other_seed, _ = first_layer_mask(model, X, y, seed=4, t=7)
    assert np.array_equal(first, again)
    # independent masks agree on about half the units
    for other in (next_update, other_seed):
        assert abs((first == other).mean() - 0.5) < 0.02


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_kept_units_are_scaled_by_one_over_keep_probability(p):
    """The C loss and delta equal a numpy forward/backward that applies the mask the gradient
    revealed, times 1 / (1 - p): the scaling is in both forward and backward."""
    model, X, y = masked_regressor(p, n_rows=50, n_hidden=40)
    mask, grads = first_layer_mask(model, X, y, seed=5, t=2)
    (W0, W1), (b0, b1) = model.coefs_, model.intercepts_
    h = (X @ W0 + b0) * mask / (1 - p)
    f = (h @ W1 + b1).ravel()
    loss, _ = model._batch_gradient(X, y, seed=5, t=2)
    np.testing.assert_allclose(loss, 0.5 * np.mean((f - y) ** 2), rtol=1e-12)
    delta_out = (f - y) / len(y)
    expected_dW0 = mask / (1 - p) * np.outer(delta_out, W1[:, 0])
    np.testing.assert_allclose(grads[:W0.size].reshape(W0.shape), expected_dW0, rtol=1e-10,
                               atol=1e-15)


def test_per_layer_rates_apply_to_their_own_layer():
    """dropout=[p_0, p_1]: with X = I, zeros in dJ/dW_0 come from layer 0's mask only."""
    for rates, expected_kept in (([0.0, 0.5], 1.0), ([0.5, 0.0], 0.5)):
        model, X, y = masked_regressor(rates, n_rows=100, n_hidden=200, hidden=2)
        mask, _ = first_layer_mask(model, X, y, seed=1, t=1)
        assert abs(mask.mean() - expected_kept) < 0.02


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
def test_gradients_through_dropout_with_a_fixed_mask(activation, quiet):
    rng = np.random.RandomState(1)
    X, y = rng.randn(24, 5), rng.randint(0, 3, 24)
    model = MLPClassifier(hidden_layer_sizes=(7, 6), activation=activation, dropout=[0.3, 0.5],
                          alpha=0.01, dtype=np.float64, max_iter=2, random_state=0,
                          n_threads=1).fit(X, y)
    error, _ = check_gradients(model, X, y, seed=9, t=4)
    assert error < 1e-5
    # the mask is really there: another update's mask gives another gradient
    assert not np.allclose(model._batch_gradient(X, y, seed=9, t=4)[1],
                           model._batch_gradient(X, y, seed=9, t=5)[1])


def test_prediction_uses_the_whole_network_without_masks(quiet):
    rng = np.random.RandomState(2)
    X, y = rng.randn(300, 6), rng.randint(0, 3, 300)
    model = MLPClassifier(hidden_layer_sizes=(20, 10), dropout=0.5, normalize=None,
                          dtype=np.float64, max_iter=3, random_state=0, n_threads=1).fit(X, y)
    first = model.predict_proba(X)
    np.testing.assert_array_equal(first, model.predict_proba(X))
    expected = network_forward(X, model.coefs_, model.intercepts_, "relu", "softmax")
    np.testing.assert_allclose(first, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_samples", [203, 201])  # last batch of 3 rows; of 1 row (merged)
@pytest.mark.parametrize("options", [dict(dropout=0.4), dict(batch_norm=True),
                                     dict(dropout=[0.5, 0.2], batch_norm=True)])
def test_training_is_bitwise_the_same_on_1_and_2_threads(options, n_samples, dtype, quiet):
    """Odd sizes on purpose: BLAS gives other bits for a split product, so this fails unless
    the GEMM slabs are the same whatever the thread count (csrc/train.h). Big enough that a
    batch of 50 is cut in two parts on a machine of 2 cores or more."""
    rng = np.random.RandomState(3)
    X, y = rng.randn(n_samples, 40), rng.randint(0, 3, n_samples)
    hidden = (333, 67)
    assert _core.work_parts(40 * 333 + 333 * 67 + 67 * 3, 50, 2) == 2
    fits = [MLPClassifier(hidden_layer_sizes=hidden, batch_size=50, max_iter=3, dtype=dtype,
                          random_state=0, n_threads=n, **options).fit(X, y) for n in (1, 2)]
    assert np.array_equal(fits[0]._params, fits[1]._params)
    assert fits[0].loss_curve_ == fits[1].loss_curve_


def test_digits_with_dropout():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(256,), dropout=0.3, random_state=0, n_threads=1)
    assert clf.fit(X_train, y_train).score(X_test, y_test) >= 0.97


@pytest.mark.parametrize("hidden, dropout", [
    ((5,), -0.1), ((5,), 1.0), ((5,), 1.5), ((5,), np.nan), ((5,), [0.1, 1.0]),
    ((5,), [0.1, 0.2]),            # two rates for one hidden layer
    ((5, 4), [0.1, 0.2, 0.3]),     # three rates for two
    ((5, 4), [[0.1, 0.2]]),        # not a flat list
    ((5,), "0.5"),
])
def test_bad_dropout_is_refused_before_training(hidden, dropout):
    rng = np.random.RandomState(4)
    X, y = rng.randn(20, 3), rng.randint(0, 2, 20)
    clf = MLPClassifier(hidden_layer_sizes=hidden, dropout=dropout, max_iter=1)
    with pytest.raises(ValueError, match="dropout"):
        clf.fit(X, y)
    assert not hasattr(clf, "coefs_")
