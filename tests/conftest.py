import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastmlp import _core


@pytest.fixture
def quiet():
    """Short fits in tests stop at max_iter on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _products_by(request, path):
    if path == "tiles" and not _core.tiles_available():
        pytest.skip("the register tiles need an x86-64 CPU with AVX-512F/VL or AVX2 and FMA")
    if path == "avx2" and not (_core.tiles_available("avx2") and _core.tiles_available("avx512")):
        pytest.skip("the AVX2 tiles beside the AVX-512 ones need a CPU with AVX-512 (elsewhere "
                    "'tiles' runs them)")
    return _core.set_tiles({"tiles": True, "avx2": "avx2", "blas": False}[path])


@pytest.fixture(params=["tiles", "avx2", "blas"])
def gemm_path(request):
    """The dense layers' products by csrc/tiles.c's register tiles, the widest the CPU runs
    (AVX-512 or AVX2: training's products, and prediction of _core.PREDICT_THREADED_ROWS = 257
    rows or more), by the AVX2 tiles forced on a CPU that has AVX-512 too, or by BLAS."""
    before = _products_by(request, request.param)
    yield request.param
    _core.set_tiles(before)


@pytest.fixture(params=["tiles", "blas"])
def gemm_path_widest(request):
    """gemm_path without the forced AVX2 tiles, for slow checks (finite differences) where the
    AVX2 tiles' gradients are already checked bitwise against the AVX-512 ones
    (tests/test_tiles.py) and exactly against the numpy oracle (test_dense.py)."""
    before = _products_by(request, request.param)
    yield request.param
    _core.set_tiles(before)


def make_targets(kind, n, rng):
    """Targets of each task the estimators handle, and the output units they imply."""
    if kind in ("multiclass", "binary"):
        n_classes = 3 if kind == "multiclass" else 2
        y = rng.randint(0, n_classes, n)
        y[:n_classes] = np.arange(n_classes)  # every class present
        return y, "softmax" if kind == "multiclass" else "logistic"
    if kind == "multilabel":
        Y = rng.randint(0, 2, (n, 3))
        Y[0], Y[1] = 0, 1  # every label has both values
        return Y, "logistic"
    if kind == "regression":
        return rng.randn(n), "identity"
    return rng.randn(n, 2), "identity"  # multi-output regression


@pytest.fixture
def epochs(monkeypatch):
    """After each C training call: (a copy of the whole parameter buffer, the rows it was
    handed). Test modules that need another view of the calls define their own `epochs`."""
    import fastmlp.network

    seen = []
    original = _core.train_epoch

    def spy(net, hyper, data, params, grads, state, workspace, batch_loss, Y, sample_weight,
            order, *rest):
        result = original(net, hyper, data, params, grads, state, workspace, batch_loss, Y,
                          sample_weight, order, *rest)
        seen.append((np.array(params, copy=True), np.sort(np.array(order, copy=True))))
        return result

    monkeypatch.setattr(fastmlp.network._core, "train_epoch", spy)
    return seen
