"""X is read as the caller holds it: float32 or float64 whatever the model's dtype, C- or
Fortran-ordered, strided views, memory maps. The C side converts each row as it gathers it
(csrc/input.c), so fit and predict never copy X, and the bits are those of a model given the
C-contiguous copy in its own dtype."""
import tracemalloc

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor

RNG = np.random.RandomState(0)
X = RNG.randn(613, 12) * 3 + 1
Y = RNG.randint(0, 3, 613)


def _layouts(X):
    """X stored five ways, none of them C-contiguous float32 except the first."""
    doubled = np.repeat(X, 2, axis=0)
    return {"float32 C": X.astype(np.float32), "float64 C": X,
            "float64 Fortran": np.asfortranarray(X),
            "float32 Fortran": np.asfortranarray(X, dtype=np.float32),
            "float64 every other row, Fortran": np.asfortranarray(doubled)[::2],
            "float64 every other column": np.repeat(X, 2, axis=1)[:, ::2]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [{"normalize": "auto"}, {"normalize": None},
                                   {"batch_norm": True, "early_stopping": True}])
def test_any_layout_gives_the_bits_of_the_c_copy_in_the_model_dtype(dtype, extra, quiet):
    """613 rows: prediction runs in threaded chunks (>= 257 rows) that gather every row;
    early stopping's held-out rows come from the strided X too."""
    kwargs = dict(hidden_layer_sizes=(20,), max_iter=3, random_state=0, dtype=dtype,
                  batch_size=100, n_threads=2, **extra)
    references = {}  # by storage dtype: the fitted bits, the probabilities, the population bits
    for name, stored in _layouts(X).items():
        if stored.dtype not in references:
            # float32 storage: the values are float32's, so the reference is their exact copy
            values = stored.astype(np.float64) if stored.dtype == np.float32 else X
            copy = np.ascontiguousarray(values, dtype=dtype)
            reference = MLPClassifier(**kwargs).fit(copy, Y)
            fitted, proba = reference._params.copy(), reference.predict_proba(copy)
            if extra.get("batch_norm"):
                reference.recompute_batchnorm_statistics(copy)
            references[stored.dtype] = fitted, proba, reference._params
        fitted, proba, population = references[stored.dtype]
        model = MLPClassifier(**kwargs).fit(stored, Y)
        assert np.array_equal(model._params, fitted), name
        assert np.array_equal(model.predict_proba(stored), proba), name
        if extra.get("batch_norm"):
            model.recompute_batchnorm_statistics(stored)
            assert np.array_equal(model._params, population), name


def test_partial_fit_and_score_on_a_fortran_float64_view(quiet):
    model = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, n_threads=1)
    reference = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, n_threads=1)
    target = X[:, 0] - X[:, 1]
    view = np.asfortranarray(X)[5:400]
    for _ in range(2):
        model.partial_fit(view, target[5:400])
        reference.partial_fit(np.ascontiguousarray(view, dtype=np.float32), target[5:400])
    assert np.array_equal(model._params, reference._params)
    assert model.score(view, target[5:400]) == reference.score(
        np.ascontiguousarray(view, dtype=np.float32), target[5:400])


def test_float64_values_beyond_float32_are_refused_by_a_float32_model(quiet):
    """A float64 X for a float32 model must be finite once rounded, as a converted copy would
    have to be: fit and predict say so instead of training on inf."""
    big = X.copy()
    big[3, 4] = 1e39
    with pytest.raises(ValueError, match="too large for dtype\\('float32'\\)"):
        MLPClassifier(max_iter=1, n_threads=1).fit(big, Y)
    model = MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, n_threads=1).fit(X, Y)
    with pytest.raises(ValueError, match="too large for dtype\\('float32'\\)"):
        model.predict(np.asfortranarray(big))
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, dtype=np.float64,
                  n_threads=1).fit(big, Y)  # a float64 model reads it as it is


def test_a_memory_map_trains_and_predicts_without_a_copy(tmp_path, quiet):
    """No array of X's size, nor of its float32 half, is ever allocated: numpy reports its
    allocations to tracemalloc, and the peak stays well under a float32 copy's size (the
    standardization's statistics go in chunks of ~0.5M values, 4 MB)."""
    n, d = 120_000, 64
    path = tmp_path / "X.f64"
    X_map = np.memmap(path, dtype=np.float64, mode="w+", shape=(n, d), order="F")
    rng = np.random.RandomState(1)
    for start in range(0, n, 20_000):
        X_map[start:start + 20_000] = rng.randn(20_000, d)
    X_map.flush()
    X_map = np.memmap(path, dtype=np.float64, mode="r", shape=(n, d), order="F")
    y = (np.asarray(X_map[:, 0]) > 0).astype(int)
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, batch_size=500, random_state=0,
                          n_threads=1)
    float32_copy = n * d * 4
    tracemalloc.start()
    try:
        model.fit(X_map, y)
        fit_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        predicted = model.predict(X_map)
        predict_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fit_peak < 0.4 * float32_copy
    assert predict_peak < 0.4 * float32_copy
    assert predicted.shape == (n,) and model.score(X_map[:2000], y[:2000]) > 0.6
