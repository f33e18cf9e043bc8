"""Which trainings call BLAS (csrc/fastmlp.h, fastmlp_training_uses_blas): the products too
small for a register tile (a slab of fewer than 6 rows of the batch or of dW), or all of them
with the tiles off. The answer decides whether a fit or partial_fit caps BLAS at one thread
around the C trainer (fitting.py), so it must agree with what the trainer does: here against
the count of products the C side sent to BLAS, over shapes that take every cut of the batch's
products (by rows, by W's columns, on two parts by W's rows), layers narrower than a tile,
short last batches (one row: a GEMV), batch norm's merged trailing row and a sparse first
layer."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastmlp
import fastmlp.network
from fastmlp import MLPClassifier, _core

def _blas_calls_of_an_epoch(model, X, Y, batch_size, parts):
    """The products one epoch over every row of X sent to BLAS, on one thread."""
    dtype = model._params.dtype
    n_trainable = model._layout["n_trainable"]
    params, state = model._params.copy(), np.zeros(2 * n_trainable, dtype)
    grads = np.zeros(n_trainable, dtype)
    workspace = np.zeros(model._net().workspace_size(batch_size, parts, dtype, sp.issparse(X)),
                         dtype)
    n = X.shape[0]
    batch_loss = np.zeros(_core.epoch_batches(n, batch_size, model.batch_norm))
    before = _core.blas_calls()
    _core.train_epoch(model._net(), fastmlp.optim.hyperparameters(model, 0.01, "constant"),
                      model._input(X), params, grads, state, workspace, batch_loss, Y, None,
                      np.arange(n, dtype=np.int64), batch_size, 7, 0, parts, 1, 0.0, None)
    return _core.blas_calls() - before


# (hidden layers, rows, batch size): every product tiled on up to 2 parts; a hidden layer of 4
# units (its dW has 4 rows, the next layer's dJ/dh 4 columns); batches of 11 rows (5 a part on
# two) and of 6; a last batch of 1 row (and 2 under batch norm's merge); layers wider than the
# batch (cut by columns, and by W's rows on two parts)
SHAPES = [((40, 30), 120, 60), ((4,), 120, 60), ((40, 30), 121, 60), ((40, 30), 77, 11),
          ((40, 30), 66, 6), ((64, 48), 90, 30), ((64, 48), 90, 8)]


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_the_query_says_what_training_sends_to_blas(gemm_path, batch_norm, sparse, quiet):
    rng = np.random.RandomState(0)
    answers = set()
    for hidden, n, batch_size in SHAPES:
        X, y = rng.randn(n, 9), rng.randint(0, 3, n)
        if sparse:
            X[np.abs(X) < 0.8] = 0
            X = sp.csr_matrix(X)
        model = MLPClassifier(hidden_layer_sizes=hidden, batch_size=batch_size,
                              batch_norm=batch_norm, random_state=0, n_threads=1)
        model.partial_fit(X, y, classes=range(3))
        Y = model._encode_targets(y)
        for parts in (1, 2, 3, 7):
            says = model._net().training_uses_blas(n, batch_size, parts, sp.issparse(X))
            calls = _blas_calls_of_an_epoch(model, X, Y, batch_size, parts)
            assert says == (calls > 0), (hidden, n, batch_size, parts, calls)
            answers.add(says)
    # every product goes to BLAS without the tiles; with them, some shapes call BLAS, some not
    assert answers == ({True} if gemm_path == "blas" else {True, False})


def _capped_calls(monkeypatch):
    """The calls of fit and partial_fit that capped BLAS's threads around the C trainer."""
    entered = []

    def counted():
        entered.append(1)
        return fastmlp._config.blas_single_threaded()

    monkeypatch.setattr(fastmlp.fitting, "blas_single_threaded", counted)
    return entered


def test_blas_is_capped_only_around_training_that_calls_it(gemm_path, monkeypatch, quiet):
    """A partial_fit whose every product the tiles take leaves BLAS's threads alone; one whose
    blocks have a short last batch (5 rows of 245 in batches of 60) or that runs without the
    tiles caps them, and so does a fit with a validation set, which predicts through BLAS."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(240, 9), rng.randint(0, 3, 240)
    entered = _capped_calls(monkeypatch)
    tiles = gemm_path != "blas"
    model = MLPClassifier(hidden_layer_sizes=(40,), batch_size=60, random_state=0)
    model.partial_fit(X, y, classes=range(3))
    model.partial_fit(X, y)
    assert len(entered) == (0 if tiles else 2)
    model.partial_fit(np.vstack([X, X[:5]]), np.concatenate([y, y[:5]]))
    assert len(entered) == (1 if tiles else 3)
    MLPClassifier(hidden_layer_sizes=(40,), batch_size=60, random_state=0, max_iter=2,
                  early_stopping=True).fit(X, y)
    assert len(entered) == (2 if tiles else 4)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_fused_momentum_counts_layer_healths_gradient(gemm_path, momentum, monkeypatch, quiet):
    """SGD momentum (no Nesterov) is stepped in backward where every layer can be (9-40-30-3):
    no BLAS product under the tiles. Where one cannot, it is fused (csrc/train.h): 10-800-3 on
    two work parts, whose first layer's shares are 5 rows of dW each, too few for a tile
    (its dW, cut by columns for fusion, has all 10 rows); then at momentum > 0
    layer health recomputes the epoch's last gradient by BLAS (csrc/step.c, health_gradient):
    the query says so, and a partial_fit whose products the tiles all take calls BLAS; plain
    SGD does not."""
    monkeypatch.setattr(fastmlp.network, "available_cores", lambda: 2)
    rng = np.random.RandomState(0)
    for n_features, hidden, fused in ((9, (40, 30), False), (10, (800,), True)):
        X, y = rng.randn(300, n_features), rng.randint(0, 3, 300)
        model = MLPClassifier(hidden_layer_sizes=hidden, batch_size=150, solver="sgd",
                              momentum=momentum, nesterovs_momentum=False, random_state=0,
                              n_threads=1)
        model.partial_fit(X, y, classes=range(3))
        parts = model._work_parts(150)
        assert parts == (2 if fused else parts)
        says = model._net().training_uses_blas(300, 150, parts, False, "sgd", momentum, False)
        before = _core.blas_calls()
        model.partial_fit(X, y)
        calls = _core.blas_calls() - before
        recomputed = fused and momentum > 0
        kind = _core.tiles_in_use()  # the AVX2 tiles leave products over 256 wide to BLAS
        blas = not kind or (kind == "avx2" and max(hidden) > 256)
        assert says == (calls > 0) == (blas or recomputed), (hidden, calls)
        n_weights = model._layout["n_weights"]
        assert not np.any(model._grads[:n_weights])  # fused or stepped: never stored
