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


@pytest.fixture(params=["tiles", "blas"])
def gemm_path(request):
    """Forward products by csrc/tiles.c's register tiles (where the CPU has AVX-512: training's
    forward pass, and prediction of _core.PREDICT_THREADED_ROWS = 257 rows or more) or by BLAS."""
    if request.param == "tiles" and not _core.tiles_available():
        pytest.skip("the register tiles need an x86-64 CPU with AVX-512F and AVX-512VL")
    before = _core.set_tiles(request.param == "tiles")
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
