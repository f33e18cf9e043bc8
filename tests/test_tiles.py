"""The register tiles' kinds (csrc/tiles.c): AVX-512 and AVX2 read the same packed panels and sum
every product in the same order, so they give the same bits on the products both run; the AVX2
tiles leave products wider than _core.TILE_AVX2_MAX_COLS to BLAS (fastmlp_tiles_run in
csrc/fastmlp.h); _core.set_tiles picks a kind."""
import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor, _core

both = pytest.mark.skipif(not (_core.tiles_available("avx512") and _core.tiles_available("avx2")),
                          reason="needs a CPU with AVX-512 (and so AVX2) for both kinds")


@both
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# (150, 33): dJ/dh's transposed packing (in-register 16 x 16 blocks under AVX-512, a loop of
# copies under AVX2) crosses a panel of 64 columns and ends in partial blocks both ways
@pytest.mark.parametrize("hidden", [(37, 21), (150, 33)])
def test_avx2_and_avx512_tiles_give_the_same_bits(dtype, hidden, quiet):
    rng = np.random.RandomState(0)
    X = rng.rand(400, 30).astype(dtype)
    y = rng.randint(0, 3, 400)
    results = []
    for kind in ("avx512", "avx2"):
        before = _core.set_tiles(kind)
        try:
            assert _core.tiles_in_use() == kind
            model = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", batch_size=64,
                                  max_iter=2, dtype=dtype, n_threads=2, random_state=0).fit(X, y)
            results.append(model.coefs_ + model.intercepts_ + [model.predict_proba(X)])
        finally:
            _core.set_tiles(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _regressor_fit(kind, X, y, hidden, threads):
    before = _core.set_tiles(kind)
    try:
        model = MLPRegressor(hidden_layer_sizes=hidden, solver="sgd", batch_size=64, max_iter=2,
                             n_threads=threads, random_state=0).fit(X, y)
        # 300 rows: at least _core.PREDICT_THREADED_ROWS, so prediction packs for the tiles too
        return model.coefs_ + model.intercepts_ + [model.predict(X)]
    finally:
        _core.set_tiles(before)


@both
def test_avx2_tiles_leave_wide_products_to_blas(quiet):
    """Every product of this net is wider than the AVX2 tiles take (300 inputs, units and
    outputs): under the AVX2 kind, training and prediction are BLAS's, bit for bit."""
    wide = _core.TILE_AVX2_MAX_COLS + 44
    rng = np.random.RandomState(0)
    X = rng.rand(300, wide).astype(np.float32)
    y = X @ rng.rand(wide, wide).astype(np.float32) / wide
    by_avx2 = _regressor_fit("avx2", X, y, (wide,), 2)
    by_blas = _regressor_fit(False, X, y, (wide,), 2)
    by_avx512 = _regressor_fit("avx512", X, y, (wide,), 2)
    for a, b in zip(by_avx2, by_blas):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(by_avx2, by_avx512))


@both
def test_avx2_tiles_beside_blas_keep_bits_across_threads(quiet):
    """A net whose narrow products run on the AVX2 tiles and wide ones on BLAS trains to the
    same bits on one thread and on two."""
    wide = _core.TILE_AVX2_MAX_COLS + 44
    rng = np.random.RandomState(1)
    X = rng.rand(300, 40).astype(np.float32)
    y = X[:, :3] @ rng.rand(3, 2).astype(np.float32)
    one, two = (_regressor_fit("avx2", X, y, (wide, 30), threads) for threads in (1, 2))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_set_tiles_returns_what_it_takes_back():
    before = _core.set_tiles(False)
    try:
        assert _core.tiles_in_use() is False
        assert _core.set_tiles(True) is False
        assert _core.tiles_in_use() == ("avx512" if _core.tiles_available("avx512") else
                                        "avx2" if _core.tiles_available("avx2") else False)
    finally:
        _core.set_tiles(before)
    assert _core.tiles_in_use() == before


@pytest.mark.parametrize("kind", ["sse", 1, "AVX2"])
def test_set_tiles_rejects_unknown_kinds(kind):
    before = _core.tiles_in_use()
    with pytest.raises(ValueError, match="set_tiles takes"):
        _core.set_tiles(kind)
    assert _core.tiles_in_use() == before
    with pytest.raises(ValueError, match="kind must be one of"):
        _core.tiles_available("sse")


@pytest.mark.skipif(not _core.tiles_available(), reason="needs the register tiles")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_adding_into_the_velocity_match_blas(dtype, quiet):
    """SGD momentum adds dW into the velocity by tiles that take few rows a block where a
    row of dW is wide (tiles.c, accumulating_block: 520 float64 or 1040 float32 units leave
    fewer than 24 rows, and the 40 inputs end on a tile moved back over rows done): training
    by the tiles follows training by BLAS to rounding."""
    rng = np.random.RandomState(0)
    X = rng.rand(200, 40).astype(dtype)
    y = rng.randint(0, 3, 200)
    width = 520 if dtype == np.float64 else 1040
    results = []
    for kind in (True, False):
        before = _core.set_tiles(kind)
        try:
            model = MLPClassifier(hidden_layer_sizes=(width,), solver="sgd", momentum=0.9,
                                  nesterovs_momentum=False, batch_size=50, max_iter=2,
                                  dtype=dtype, n_threads=2, random_state=0).fit(X, y)
            results.append(model.coefs_ + model.intercepts_)
        finally:
            _core.set_tiles(before)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
