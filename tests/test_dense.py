"""The C forward and backward passes against the numpy oracles of tests/reference.py, and
against finite differences (the lecture's gradient check)."""
import numpy as np
import pytest
from conftest import make_targets
from reference import network_forward, network_loss_and_gradients, standardize

from fastmlp import MLPClassifier, MLPRegressor, Network, check_gradients

ACTIVATIONS = ["relu", "tanh", "sigmoid", "identity"]
TASKS = ["multiclass", "binary", "multilabel", "regression", "multioutput"]


def fitted(kind, activation, dtype=np.float64, alpha=0.1, hidden=(6, 5), normalize=None, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(9, 4)
    y, output = make_targets(kind, 9, rng)
    model = Network(hidden_layer_sizes=hidden, activation=activation, alpha=alpha, max_iter=1,
                    dtype=dtype, normalize=normalize, random_state=seed)
    model.partial_fit(X, y, classes=np.unique(y) if kind in ("multiclass", "binary") else None)
    # weights away from the initial ones, biases nonzero: nothing hides behind a zero
    for W, b in zip(model.coefs_, model.intercepts_):
        W[...] = rng.uniform(-1, 1, W.shape)
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    assert model.out_activation_ == output
    return model, X, y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", TASKS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_finite_differences(kind, activation, seed, gemm_path_widest):
    model, X, y = fitted(kind, activation, seed=seed)
    max_error, errors = check_gradients(model, X, y, eps=1e-6)
    assert errors.size == model._layout["n_trainable"]
    assert max_error < 1e-6, f"largest relative error {max_error:.2e}"


@pytest.mark.parametrize("kind", TASKS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_numpy_backward(kind, activation, gemm_path):
    model, X, y = fitted(kind, activation)
    Y = model._encode_targets(y, first=False).astype(np.float64)
    loss, grads = model._batch_gradient(X, y)
    ref_loss, dcoefs, dintercepts = network_loss_and_gradients(
        X, Y, model.coefs_, model.intercepts_, activation, model.out_activation_, model.alpha)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    lay = model._layout
    for l, (dW, db) in enumerate(zip(dcoefs, dintercepts)):
        got_W = grads[lay["w_offset"][l]:][:dW.size].reshape(dW.shape)
        got_b = grads[lay["b_offset"][l]:][:db.size]
        np.testing.assert_allclose(got_W, dW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_b, db, rtol=1e-10, atol=1e-12)


def test_weighted_gradient_is_weighted_mean():
    model, X, y = fitted("multiclass", "tanh")
    w = np.arange(1, 10, dtype=np.float64)
    Y = model._encode_targets(y, first=False).astype(np.float64)
    loss, _ = model._batch_gradient(X, y, sample_weight=w)
    ref_loss, _, _ = network_loss_and_gradients(X, Y, model.coefs_, model.intercepts_, "tanh",
                                                "softmax", model.alpha, sample_weight=w)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert check_gradients(model, X, y, sample_weight=w)[0] < 1e-6


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("kind", TASKS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_numpy(kind, activation, dtype, rtol):
    model, X, y = fitted(kind, activation, dtype=dtype)
    coefs = [W.astype(np.float64) for W in model.coefs_]
    intercepts = [b.astype(np.float64) for b in model.intercepts_]
    expected = network_forward(X, coefs, intercepts, activation, model.out_activation_)
    out = model._forward(model._validate_X(X, reset=False))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("n_rows", [1, 127, 128, 129, 300, 1000, 1025])
def test_forward_any_number_of_rows_and_threads(n_rows, gemm_path):
    """Prediction splits rows into chunks of one size (at most 512 rows: 1025 rows make 342,
    342 and 341; from 257 rows on at least two: 300 rows make 150 and 150) across threads;
    every split gives the same bits."""
    model, _, _ = fitted("multiclass", "relu")
    X = np.random.RandomState(1).randn(n_rows, 4)
    expected = network_forward(X, model.coefs_, model.intercepts_, "relu", "softmax")
    outputs = []
    for n_threads in (1, 2, 3):
        model.set_params(n_threads=n_threads)
        outputs.append(model.predict_proba(X))
        np.testing.assert_allclose(outputs[-1], expected, rtol=1e-12, atol=1e-14)
    assert all(np.array_equal(outputs[0], out) for out in outputs[1:])


# Layer widths whose last panel of W's columns (64 float32 or 32 float64 columns a panel) takes
# every shape the register tiles have: 0 to 4 full vectors, with or without half a vector, at 16
# and at 8 lanes; 100 and 130 add whole panels before it.
PANEL_WIDTHS = [1, 4, 5, 8, 9, 12, 13, 16, 20, 24, 25, 29, 32, 40, 41, 56, 57, 64, 100, 130]


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("width", PANEL_WIDTHS)
def test_prediction_any_layer_width(width, dtype, rtol, gemm_path):
    """A hidden and an output layer `width` units wide against the numpy oracle. 289 rows are
    three blocks of 96 and one row, which the last tile covers by moving back over rows already
    done; the hidden layer fuses relu into the tile, the output layer (identity) does not."""
    rng = np.random.RandomState(width)
    X = rng.randn(289, 11)
    Y = rng.randn(289, width)
    model = Network(hidden_layer_sizes=(width,), activation="relu", max_iter=1, dtype=dtype,
                    normalize=None, random_state=0)
    model.partial_fit(X, Y)
    for W, b in zip(model.coefs_, model.intercepts_):
        W[...] = rng.uniform(-1, 1, W.shape)
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    coefs = [W.astype(np.float64) for W in model.coefs_]
    intercepts = [b.astype(np.float64) for b in model.intercepts_]
    expected = network_forward(X, coefs, intercepts, "relu", "identity")
    out = model._forward(model._validate_X(X, reset=False))
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_normalize_auto_equals_standardizing_by_hand(quiet):
    rng = np.random.RandomState(2)
    X = np.column_stack([rng.randn(40) * 5 + 3,          # real-valued
                         rng.randint(0, 2, 40),          # binary: left alone
                         np.full(40, 7.0),               # constant: only centered
                         rng.rand(40) * 100])
    y = rng.randint(0, 3, 40)
    auto = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, normalize="auto", dtype=np.float64,
                         random_state=0, tol=0).fit(X, y)
    by_hand = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, normalize=None, dtype=np.float64,
                            random_state=0, tol=0).fit(standardize(X), y)
    for W1, W2 in zip(auto.coefs_, by_hand.coefs_):
        np.testing.assert_allclose(W1, W2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(auto.predict_proba(X), by_hand.predict_proba(standardize(X)),
                               rtol=1e-10, atol=1e-12)
    # statistics come from the first fit and are reused by partial_fit and predict
    before = auto._x_shift.copy()
    auto.partial_fit(X * 10, y)
    np.testing.assert_array_equal(auto._x_shift, before)


def test_regressor_forward_is_identity_output(quiet):
    rng = np.random.RandomState(3)
    X, y = rng.randn(30, 3), rng.randn(30)
    model = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, dtype=np.float64, normalize=None,
                         random_state=0, tol=0).fit(X, y)
    expected = network_forward(X, model.coefs_, model.intercepts_, "relu", "identity")
    np.testing.assert_allclose(model.predict(X), expected.ravel(), rtol=1e-12)
