"""What users feed the estimators: sparse matrices, pandas DataFrames, sample weights."""
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score

from fastmlp import MLPClassifier, MLPRegressor, Network

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

DTYPES = [np.float32, np.float64]
# float32 kernels sum in other orders on the sparse path, so a few epochs drift a little
RTOL = {np.float32: 2e-4, np.float64: 1e-9}


def sparse_problem(n=120, d=30, density=0.2, seed=0, binary_cols=5):
    """A sparse design with real-valued columns and some {0, 1} columns, and labels that
    depend on it."""
    rng = np.random.RandomState(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.normal(2.0, 3.0, k))
    X = X.tolil()
    for j in range(binary_cols):
        X[:, j] = (rng.rand(n, 1) < 0.3).astype(float)
    X = X.tocsr()
    y = (np.asarray(X @ rng.normal(size=d)).ravel() > 0).astype(int)
    return X, y


def model(cls=MLPClassifier, **kw):
    # one thread: results are bitwise the same for any count (csrc/train.h), and tiny problems
    # on a busy 2-core machine run far slower with two spinning OpenMP threads
    params = dict(hidden_layer_sizes=(12, 7), max_iter=5, batch_size=32, random_state=3,
                  learning_rate_init=0.01, n_threads=1)
    params.update(kw)
    return cls(**params)


# ---------------------------------------------------------------- sparse X


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", ["auto", None])
@pytest.mark.parametrize("fmt, n_threads", [("csr", 1), ("csc", 1), ("csr", 2)])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
# sgd with momentum: the dense layers' GEMMs add their gradient into the velocity, while a
# sparse first layer's gradient comes from our own loop and takes the plain step
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_sparse_training_and_prediction_equal_dense(dtype, normalize, fmt, n_threads, cls,
                                                     solver):
    X, y = sparse_problem()
    if cls is MLPRegressor:
        y = np.asarray(X.sum(axis=1)).ravel()
    X = X.asformat(fmt)
    kw = dict(dtype=dtype, normalize=normalize, n_threads=n_threads, solver=solver,
              momentum=0.9, nesterovs_momentum=False, alpha=1e-3)
    dense = model(cls, **kw).fit(X.toarray(), y)
    sparse = model(cls, **kw).fit(X, y)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=rtol)
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    # the same fitted model predicts the same from sparse and dense rows
    out_sparse = sparse.predict_proba(X) if cls is MLPClassifier else sparse.predict(X)
    out_dense = sparse.predict_proba(X.toarray()) if cls is MLPClassifier else \
        sparse.predict(X.toarray())
    assert out_sparse.dtype == np.result_type(dtype, X.dtype)  # float64 input: float64 out
    np.testing.assert_allclose(out_sparse, out_dense, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("normalize", ["auto", None])
def test_sparse_prediction_of_many_rows_equals_dense(normalize, gemm_path):
    """From 257 rows on, prediction runs its dense layers on the register tiles (where the CPU
    has them) while a sparse first layer keeps its own loop; rows in chunks across 2 threads."""
    X, y = sparse_problem(n=600)
    clf = model(dtype=np.float64, normalize=normalize, n_threads=2).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), clf.predict_proba(X.toarray()),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_normalization_statistics_equal_dense(dtype):
    X, y = sparse_problem()
    dense = model(dtype=dtype, max_iter=1).fit(X.toarray(), y)
    sparse = model(dtype=dtype, max_iter=1).fit(X, y)
    np.testing.assert_allclose(sparse._x_shift, dense._x_shift, rtol=1e-6)
    np.testing.assert_allclose(sparse._x_scale, dense._x_scale, rtol=1e-6)
    # the {0, 1} columns are left as they are
    assert np.all(sparse._x_shift[:5] == 0) and np.all(sparse._x_scale[:5] == 1)
    Xd = X.toarray()
    np.testing.assert_allclose(dense._x_shift[5:], Xd[:, 5:].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(1 / dense._x_scale[5:], Xd[:, 5:].std(axis=0), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_standardization_has_the_same_bits_on_any_blas_thread_count(dtype, monkeypatch):
    """The columns' statistics run BLAS on one thread (its sums w @ chunk split over
    OpenBLAS's threads gave other bits on 5000 x 100, and its idle threads spun between the
    chunks), so a fit's standardization is the same whatever BLAS's thread count."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastmlp import model as model_module

    rng = np.random.RandomState(0)
    X = (rng.standard_normal((5000, 100)) * rng.uniform(0.1, 10, 100)).astype(dtype)
    y, weight = rng.randint(0, 3, 5000), rng.uniform(0, 3, 5000)
    counts = []
    statistics = model_module._dense_column_statistics

    def spied(*args):
        counts.append([lib["num_threads"] for lib in threadpool_info()
                       if lib["user_api"] == "blas"])
        return statistics(*args)

    monkeypatch.setattr(model_module, "_dense_column_statistics", spied)
    fits = []
    for limit in (1, 2):
        with threadpool_limits(limits=limit, user_api="blas"):
            fits.append(model(dtype=dtype, max_iter=1).fit(X, y, sample_weight=weight))
    assert counts and all(n == 1 for each in counts for n in each)
    for name in ("_x_shift", "_x_scale"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name))


def test_sparse_partial_fit_equals_dense():
    X, y = sparse_problem()
    dense, sparse = model(dtype=np.float64), model(dtype=np.float64)
    for _ in range(3):
        dense.partial_fit(X.toarray(), y, classes=[0, 1])
        sparse.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X.toarray()),
                               rtol=1e-9)


def test_sparse_is_never_densified(monkeypatch):
    """Neither fit nor predict makes a dense copy: any densifying call fails, and the memory
    numpy allocates stays far below the size of the dense matrix."""
    n, d = 2000, 20_000  # dense float32: 160 MB

    def guard(method):
        def densify(self, *args, **kwargs):
            # scipy's sparse matrices also serve elsewhere (the label binarizer): only X counts
            assert self.shape[1] != d, "X was densified"
            return method(self, *args, **kwargs)
        return densify

    for cls in (sp._compressed._cs_matrix, sp._base._spbase):
        for name in ("toarray", "todense"):
            monkeypatch.setattr(cls, name, guard(getattr(cls, name)))
    rng = np.random.RandomState(0)
    X = sp.random(n, d, density=5e-4, format="csr", dtype=np.float32, random_state=rng)
    y = rng.randint(0, 3, n)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0, n_threads=1)
    tracemalloc.start()
    try:
        clf.fit(X, y)
        proba = clf.predict_proba(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert proba.shape == (n, 3)
    dense_bytes = n * d * 4
    assert peak < dense_bytes / 20, f"peak {peak / 1e6:.1f} MB, dense X {dense_bytes / 1e6:.0f} MB"


def test_sparse_int64_indices_and_int_values():
    X, y = sparse_problem()
    X64 = X.copy()
    X64.indices = X64.indices.astype(np.int64)
    X64.indptr = X64.indptr.astype(np.int64)
    a = model(dtype=np.float64).fit(X, y)
    b = model(dtype=np.float64).fit(X64, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X64))
    Xi = sp.csr_matrix((np.round(X.data).astype(np.int32), X.indices, X.indptr), shape=X.shape)
    c = model(dtype=np.float64).fit(Xi, y)
    d = model(dtype=np.float64).fit(Xi.astype(np.float64), y)
    np.testing.assert_array_equal(c.predict_proba(Xi), d.predict_proba(Xi))


# ---------------------------------------------------------------- pandas


def frame(n=60, seed=0):
    rng = np.random.RandomState(seed)
    df = pd.DataFrame({"age": rng.randint(18, 90, n), "height": rng.normal(170, 10, n),
                       "smoker": rng.randint(0, 2, n).astype(np.int8),
                       "weight": rng.normal(70, 12, n).astype(np.float32)})
    y = pd.Series(np.where(df["height"] + rng.normal(0, 5, n) > 170, "tall", "short"),
                  name="label")
    return df, y


@pytest.mark.parametrize("cls", [Network, MLPClassifier])
def test_dataframe_feature_names_kept_and_checked(cls):
    df, y = frame()
    clf = model(cls, dtype=np.float64).fit(df, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["age", "height", "smoker", "weight"])
    assert clf.n_features_in_ == 4
    assert set(clf.classes_) == {"short", "tall"}
    # the same numbers as the plain array
    ref = model(cls, dtype=np.float64).fit(df.to_numpy(np.float64), y.to_numpy())
    np.testing.assert_allclose(clf.predict_proba(df), ref.predict_proba(df.to_numpy()),
                               rtol=1e-12)
    assert not hasattr(ref, "feature_names_in_")
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df[["height", "age", "smoker", "weight"]])
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.rename(columns={"age": "years"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(df.to_numpy())


def test_dataframe_regression_and_partial_fit():
    df, _ = frame()
    y = df["height"] * 0.5 - df["weight"]
    reg = model(MLPRegressor).fit(df, y)
    assert reg.predict(df).shape == (len(df),)
    inc = model(MLPRegressor)
    inc.partial_fit(df, y)
    inc.partial_fit(df, y)
    np.testing.assert_array_equal(inc.feature_names_in_, df.columns)
    with pytest.raises(ValueError, match="feature names"):
        inc.partial_fit(df[df.columns[::-1]], y)


# ---------------------------------------------------------------- sample_weight


def dense_problem(n=40, d=6, seed=0, regression=False):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 4, d) + rng.normal(0, 3, d)
    if regression:
        return X, X @ rng.normal(size=d) + rng.normal(0, 0.1, n)
    return X, rng.randint(0, 3, n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_integer_weights_equal_repeated_rows_full_batch(dtype, cls, solver):
    X, y = dense_problem(regression=cls is MLPRegressor)
    w = np.random.RandomState(1).randint(0, 4, len(y))
    kw = dict(dtype=dtype, solver=solver, batch_size="auto", max_iter=15)  # n <= 200: one batch
    weighted = model(cls, **kw).fit(X, y, sample_weight=w)
    repeated = model(cls, **kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    tol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=tol)
    np.testing.assert_allclose(weighted._params, repeated._params, rtol=tol, atol=tol)
    # and zero weights drop the rows, whatever they hold
    dropped = model(cls, **kw).fit(X[w > 0], y[w > 0], sample_weight=w[w > 0])
    np.testing.assert_allclose(weighted._params, dropped._params, rtol=tol, atol=tol)


def test_zero_weight_rows_are_ignored_in_minibatch_partial_fit():
    """In mini-batches a row of weight 0 still takes a place in its batch, so dropping it
    would change the batches: instead, garbage in the zero-weight rows must change nothing."""
    X, y = dense_problem()
    w = np.ones(len(y))
    w[::3] = 0
    garbage = X.copy()
    garbage[::3] = np.random.RandomState(5).normal(0, 1e3, garbage[::3].shape)
    y_garbage = y.copy()
    y_garbage[::3] = (y[::3] + 1) % 3
    kw = dict(dtype=np.float64, normalize=None, batch_size=8)
    a, b = model(**kw), model(**kw)
    for _ in range(3):
        a.partial_fit(X, y, classes=[0, 1, 2], sample_weight=w)
        b.partial_fit(garbage, y_garbage, classes=[0, 1, 2], sample_weight=w)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_scale_invariant(dtype):
    """The batch loss is sum w_t loss_t / sum w_t: scaling every weight changes nothing."""
    X, y = dense_problem()
    w = np.random.RandomState(2).uniform(0.1, 2, len(y))
    a = model(dtype=dtype).fit(X, y, sample_weight=w)
    b = model(dtype=dtype).fit(X, y, sample_weight=8 * w)  # a power of two: exact in floats
    np.testing.assert_array_equal(a._params, b._params)
    c = model(dtype=dtype).fit(X, y, sample_weight=np.ones(len(y)))
    d = model(dtype=dtype).fit(X, y)
    np.testing.assert_allclose(c._params, d._params, rtol=1e-5, atol=1e-6)


def _numpy_objective(clf, X, y, w):
    """J = sum_t w_t loss_t / sum_t w_t + alpha/2 * sum W^2 for softmax + cross-entropy, from
    the model's own parameters (normalize=None), with a relu hidden stack."""
    h = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ W + b, 0)
    a = h @ clf.coefs_[-1] + clf.intercepts_[-1]
    a = a - a.max(axis=1, keepdims=True)
    log_p = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(len(y)), np.searchsorted(clf.classes_, y)]
    penalty = 0.5 * clf.alpha * sum((W ** 2).sum() for W in clf.coefs_)
    return (w * loss).sum() / w.sum() + penalty


def test_weighted_batch_objective_matches_numpy():
    X, y = dense_problem()
    w = np.random.RandomState(3).uniform(0, 3, len(y))
    clf = model(dtype=np.float64, normalize=None, alpha=0.01).fit(X, y)
    J, _ = clf._batch_gradient(X, y, sample_weight=w)
    np.testing.assert_allclose(J, _numpy_objective(clf, X, y, w), rtol=1e-10)


@pytest.mark.parametrize("cls", [Network, MLPClassifier, MLPRegressor])
def test_score_with_sample_weight(cls):
    X, y = dense_problem(regression=cls is MLPRegressor)
    w = np.random.RandomState(4).uniform(0, 2, len(y))
    est = model(cls).fit(X, y)
    metric = r2_score if cls is MLPRegressor else accuracy_score
    assert est.score(X, y, sample_weight=w) == pytest.approx(
        metric(y, est.predict(X), sample_weight=w))
    assert est.score(X, y, sample_weight=w) != pytest.approx(est.score(X, y))


@pytest.mark.parametrize("bad, message", [
    (-np.ones(40), "Negative values"),
    (np.zeros(40), "non-zero"),
    (np.ones(39), r"\(40,\)"),
])
def test_bad_sample_weight(bad, message):
    X, y = dense_problem()
    clf = model()
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, sample_weight=bad)
    assert not hasattr(clf, "coefs_")


def test_sample_weight_in_partial_fit_equals_repeated_rows():
    X, y = dense_problem()
    w = np.random.RandomState(6).randint(1, 3, len(y))
    kw = dict(dtype=np.float64, batch_size="auto")  # one batch
    a, b = model(**kw), model(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(4):
            a.partial_fit(X, y, classes=[0, 1, 2], sample_weight=w)
            b.partial_fit(np.repeat(X, w, axis=0), np.repeat(y, w), classes=[0, 1, 2])
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-9, atol=1e-12)
