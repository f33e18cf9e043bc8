"""Bad input gets a clear error, and never leaves a fitted model half-changed."""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fastmlp import MLPClassifier, MLPRegressor, Network

rng = np.random.RandomState(0)
X_OK, Y_OK = rng.randn(20, 3), rng.randint(0, 2, 20)


def bad_X(kind):
    X = X_OK.copy()
    if kind == "nan":
        X[3, 1] = np.nan
    elif kind == "inf":
        X[0, 0] = np.inf
    return X


@pytest.mark.parametrize("X, y, match", [
    (bad_X("nan"), Y_OK, "NaN"),
    (bad_X("inf"), Y_OK, "infinity"),
    (np.empty((0, 3)), np.empty(0), "0 sample"),
    (X_OK[:, 0], Y_OK, "2D array"),
    (X_OK[:, :, None], Y_OK, "dim"),
    (X_OK, Y_OK[:-1], "inconsistent numbers of samples"),
    (X_OK, rng.randn(20), "class labels"),
    (np.full((20, 3), "a"), Y_OK, "convert"),
])
def test_bad_fit_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(max_iter=2).fit(X, y)


@pytest.mark.parametrize("params, match", [
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": (10, 2.5)}, "hidden_layer_sizes"),
    ({"activation": "softplus"}, "activation"),
    ({"solver": "newton-cg"}, "solver"),
    ({"learning_rate_init": 0}, "learning_rate_init"),
    ({"learning_rate_init": -1}, "learning_rate_init"),
    ({"alpha": -0.1}, "alpha"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_iter": 0}, "max_iter"),
    ({"momentum": 1.5}, "momentum"),
    ({"dtype": np.int32}, "dtype"),
    ({"dtype": "float16"}, "dtype"),
    ({"n_threads": 0}, "n_threads"),
    ({"normalize": "minmax"}, "normalize"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": [0.1, 0.2]}, "dropout"),
])
def test_bad_hyperparameters(params, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**{"max_iter": 2, **params}).fit(X_OK, Y_OK)


def test_predict_before_fit():
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(MLPClassifier(), method)(X_OK)
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X_OK)


@pytest.mark.parametrize("X, error, match", [
    (X_OK[:, :2], ValueError, "features"),
    (bad_X("nan"), ValueError, "NaN"),
    (X_OK[0], ValueError, "2D array"),
])
def test_bad_predict_input(X, error, match, quiet):
    clf = MLPClassifier(max_iter=2, random_state=0).fit(X_OK, Y_OK)
    with pytest.raises(error, match=match):
        clf.predict(X)


@pytest.mark.parametrize("value, match", [(np.nan, "NaN"), (np.inf, "infinity"),
                                          (-np.inf, "infinity")])
# one thread; one chunk whose last row only a tile moved back over the rows before covers;
# chunks shared by threads
@pytest.mark.parametrize("n_rows", [1, 289, 600])
@pytest.mark.parametrize("normalize, batch_norm", [(None, False), ("auto", False), (None, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_rows_are_refused_on_the_fast_path(value, match, n_rows, normalize,
                                                      batch_norm, dtype, quiet, gemm_path):
    """A C-ordered float32 or float64 array skips scikit-learn's validation; the C side then
    checks the first layer's pre-activations, which any NaN or inf input spoils, even where
    relu would map it to 0 (the weights of that feature are all made negative here)."""
    X = np.abs(rng.randn(600, 3)).astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                        normalize=normalize, batch_norm=batch_norm,
                        n_threads=2).fit(X, rng.randint(0, 3, 600))
    clf.coefs_[0][1] = -np.abs(clf.coefs_[0][1]) - 1
    X = X[:n_rows].astype(dtype)
    X[-1, 1] = value
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(ValueError, match=match):
            method(X)


@pytest.mark.parametrize("n_rows", [1, 300])
@pytest.mark.parametrize("normalize, batch_norm", [(None, False), ("auto", False), (None, True)])
def test_float64_rows_for_a_float32_model_take_the_fast_path_with_the_full_paths_result(
        n_rows, normalize, batch_norm, quiet):
    """C-ordered float64 rows go straight to the C side (no validate_data) and give the bits
    of the full path (here: the same rows in Fortran order), as float64; a float64 value that
    float32 cannot hold still gets the full path's error, and a NaN beside it the NaN one."""
    X = rng.randn(300, 3) * 100
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                        normalize=normalize, batch_norm=batch_norm).fit(X, rng.randint(0, 3, 300))
    assert clf._params.dtype == np.float32
    rows = np.ascontiguousarray(X[:n_rows])
    fast = clf.predict_proba(rows)
    full = clf.predict_proba(np.asfortranarray(rows))
    assert fast.dtype == full.dtype == np.float64
    np.testing.assert_array_equal(fast, full)
    np.testing.assert_array_equal(clf.predict(rows), clf.predict(np.asfortranarray(rows)))
    rows[-1, 0] = 1e300
    with pytest.raises(ValueError, match="too large for dtype\\('float32'\\)"):
        clf.predict(rows)
    rows[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(rows)


def test_finite_input_that_overflows_is_refused_as_an_overflow(quiet):
    """Finite values whose products overflow fail the C-side check; the full validation then
    finds X finite, and the outputs, not finite, are refused with a ValueError that names the
    overflow (not "Input X contains infinity", and not inf or NaN predictions returned)."""
    clf = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                       normalize=None).fit(X_OK.astype(np.float32), rng.randn(20))
    clf.coefs_[0][:, 0] = 1.0  # three times 3e38 overflows
    X = np.full((2, 3), 3e38, dtype=np.float32)
    with pytest.raises(ValueError, match="outputs are not finite for 2 of the 2 rows of X: "
                                         "the inputs times this model's weights overflow"):
        clf.predict(X)
    assert clf._forward(X, check_finite=True) is None  # the C-side check did fail


def test_failed_fit_leaves_model_unchanged(quiet):
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X_OK, Y_OK)
    params = clf._params.copy()
    state = dict(clf.__dict__)
    clf.set_params(warm_start=True)
    with pytest.raises(ValueError):
        clf.fit(np.c_[X_OK, X_OK], Y_OK)  # wrong width for a warm start
    with pytest.raises(ValueError):
        clf.partial_fit(X_OK, np.where(Y_OK == 1, 5, 0))  # a label never declared
    with pytest.raises(ValueError):
        clf.set_params(warm_start=False, early_stopping=True, validation_fraction=0.5)
        clf.fit(X_OK[:3], Y_OK[:3])  # too few samples to hold some out per class
    assert np.array_equal(clf._params, params)
    assert clf.coefs_[0].base is not None and np.shares_memory(clf.coefs_[0], clf._params)
    assert clf.n_iter_ == state["n_iter_"] and clf.loss_curve_ == state["loss_curve_"]


def test_partial_fit_needs_classes_first():
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X_OK, Y_OK)


def test_partial_fit_rejects_new_output_count(quiet):
    reg = MLPRegressor(max_iter=2).fit(X_OK, rng.randn(20))
    with pytest.raises(ValueError, match="outputs"):
        reg.partial_fit(X_OK, rng.randn(20, 2))


def test_network_rejects_multiclass_multioutput():
    with pytest.raises(ValueError, match="class labels"):
        Network(max_iter=2).fit(X_OK, rng.randint(0, 3, (20, 2)))


def _result_or_error(method, X):
    try:
        return method(X)
    except (ValueError, TypeError) as error:
        return type(error), str(error)


@pytest.mark.parametrize("normalize, batch_norm", [(None, False), ("auto", False), (None, True)])
def test_a_list_of_rows_takes_the_fast_path_with_the_full_paths_result(normalize, batch_norm,
                                                                       quiet):
    """A list of rows of Python floats (one sample from a request) skips validate_data: the
    same bits as the full path's (the same rows as a tuple of tuples, which the fast path does
    not take), float64 values; every other list gives what the full path gives: a result for
    ints, and scikit-learn's own error for NaN, strings, ragged or 1-d rows."""
    X = rng.randn(300, 3) * 100 + 1000
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                        normalize=normalize, batch_norm=batch_norm).fit(X, rng.randint(0, 3, 300))
    rows = X[:4].tolist()
    for method in (clf.predict, clf.predict_proba, clf.predict_log_proba):
        fast, full = method(rows), method(tuple(map(tuple, rows)))
        assert fast.dtype == full.dtype
        np.testing.assert_array_equal(fast, full)
    assert clf.predict_proba(rows).dtype == np.float64
    cases = [[[1, 2, 3]], [[1.0, float("nan"), 3.0]], [["a", "b", "c"]], [[1.0, 2.0], [3.0]],
             [1.0, 2.0, 3.0], [[1.0, 2.0]], [[1e300, 0.0, 0.0]], [[True, False, True]]]
    for case in cases:
        fast = _result_or_error(clf.predict_proba, case)
        full = _result_or_error(clf.predict_proba, tuple(case))
        if isinstance(full, np.ndarray):
            np.testing.assert_array_equal(fast, full)
        else:
            assert fast == full, case


@pytest.mark.parametrize("two_outputs", [False, True])
def test_r2_of_predictions_whose_squares_overflow_is_finite(two_outputs, quiet):
    """Found by the fuzzer: a regressor trained on targets of 1e30 predicted values of ~1e155,
    whose squared residuals overflow float64, and score gave -inf. R^2 is the same for y and
    the predictions scaled by one factor: the score is r2_score's on them scaled, finite and
    very negative where R^2 is within float64; an ordinary score is r2_score's own, bit for
    bit."""
    from sklearn.metrics import r2_score

    X = rng.randn(40, 3)
    y = X @ rng.randn(3, 2 if two_outputs else 1)
    y = y if two_outputs else y.ravel()
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0,
                       dtype=np.float64).fit(X, y)
    assert reg.score(X, y) == r2_score(y, reg.predict(X))
    reg.coefs_[-1][:] *= 1e160
    reg.intercepts_[-1][:] += 1e160
    predicted = reg.predict(X)
    assert np.isfinite(predicted).all() and np.abs(predicted).max() > 1e155
    huge = y * 1e30  # R^2 ~ -(1e160 / 1e30)^2, within float64
    with np.errstate(over="ignore"):
        assert not np.isfinite(r2_score(huge, predicted))
    score = reg.score(X, huge)
    top = max(np.abs(huge).max(), np.abs(predicted).max())
    assert np.isfinite(score) and score < -1e200
    assert score == r2_score(huge / top, predicted / top)
    weights = np.arange(40.0)
    assert reg.score(X, huge, sample_weight=weights) == r2_score(huge / top, predicted / top,
                                                                 sample_weight=weights)
    # an R^2 below float64's range (targets of 1: ~ -1e320) stays -inf, what it rounds to
    assert reg.score(X, y) == -np.inf
