"""The training workspace's pack scratch (csrc/workspace.c, pack_size): each work part gets what the
largest slab it packs needs, never a whole matrix per part where the batch's products are cut
by columns, so the workspace does not grow with the cores beyond those slabs; and the parts
train with the bits of one. Run under the sanitizer build (docs/development.rst), the
workspaces here are exactly as large as workspace_size says and each part's scratch is
followed by a poisoned guard, so a part that packed more than its scratch stops the run."""
from contextlib import contextmanager

import numpy as np
import pytest
import scipy.sparse as sp

import fastmlp
from fastmlp import MLPClassifier, _core
from fastmlp.model import c_net, parameter_layout

KINDS = [kind for kind in ("avx512", "avx2") if _core.tiles_available(kind)] + [False]


@contextmanager
def _tiles(kind):
    """Run under the tiles of `kind` (False: BLAS), as set_tiles takes it."""
    before = _core.set_tiles(kind)
    try:
        yield
    finally:
        _core.set_tiles(before)


def test_the_workspace_grows_with_the_parts_only_by_their_slabs():
    """784-2048-2048-10 in batches of 200, float32: one part packs the largest whole matrix
    (W_1, 2048 x 2048); 2, 4 or 16 parts each pack slabs of it, or all of a batch's delta
    (200 x 2048) where dW is cut by its rows, so together they hold at most twice one part's
    scratch, and the whole workspace on 16 parts stays below twice the parameters (it was
    16 scratches of all of W_1 each, 11.8 times the parameters, before)."""
    units = [784, 2048, 2048, 10]
    layout = parameter_layout(units, False, 0)
    net = c_net(layout, MLPClassifier(hidden_layer_sizes=(2048, 2048))._spec(), "softmax")
    size = {parts: net.workspace_size(200, parts, np.float32) for parts in (1, 2, 4, 16)}
    with _tiles(False):  # the activations and deltas alone: no part packs anything for BLAS
        activations = net.workspace_size(200, 16, np.float32)
    scratch = {parts: size[parts] - activations for parts in size}
    for parts in (2, 4, 16):
        assert scratch[parts] <= 2 * scratch[1]
        assert scratch[parts] / parts <= scratch[1]  # no part packs more than one part alone
    assert size[16] < 2 * layout["size"]
    if _core.tiles_available():
        assert scratch[1] >= 2048 * 2048  # one part packs all of W_1


def test_a_fit_on_16_cores_is_checked_for_the_workspace_its_parts_need(monkeypatch):
    """fit refuses a model by its buffers and its workspace as allocated (check_memory): on a
    machine of 16 cores, 784-2048-2048-10's 16 parts count well under twice the parameters."""
    seen = []

    def stop(layout, dtype, workspace, copies):  # before anything of the model is allocated
        seen.append((int(layout["size"]), int(workspace)))
        raise MemoryError("stopped by the test")

    monkeypatch.setattr(fastmlp.network, "available_cores", lambda: 16)
    monkeypatch.setattr(fastmlp.run_start, "check_memory", stop)
    X, y = np.zeros((400, 784), np.float32), np.arange(400) % 10
    model = MLPClassifier(hidden_layer_sizes=(2048, 2048), batch_size=200)
    with pytest.raises(MemoryError, match="stopped by the test"):
        model.fit(X, y)
    (size, workspace), = seen
    assert model._work_parts(200, parameter_layout([784, 2048, 2048, 10], False, 784)) == 16
    assert workspace < 2 * size


def _data(n=250, n_features=37, seed=0):
    rng = np.random.RandomState(seed)
    X, y = rng.randn(n, n_features), rng.randint(0, 3, n)
    return X, y, rng.rand(n) + 0.5, rng.permutation(n).astype(np.int64)


def _epoch(model, X, Y, weight, order, batch_size, parts, threads, dtype):
    """One epoch through the bridge on a workspace exactly as large as workspace_size says."""
    params = model._params.copy()
    n_trainable = model._layout["n_trainable"]
    state, grads = np.zeros(2 * n_trainable, dtype), np.zeros(n_trainable, dtype)
    workspace = np.zeros(model._net().workspace_size(batch_size, parts, dtype, sp.issparse(X)),
                         dtype)
    batch_loss = np.zeros(_core.epoch_batches(len(order), batch_size, model.batch_norm))
    t = _core.train_epoch(model._net(), fastmlp.optim.hyperparameters(model, 0.01, "constant"),
                          model._input(X), params, grads, state, workspace, batch_loss, Y,
                          weight, order, batch_size, 7, 0, parts, threads, 0.0, None)
    assert t == len(batch_loss)
    return params, state, batch_loss


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [{"solver": "sgd", "momentum": 0.9},
                                   {"solver": "adam", "batch_norm": True, "dropout": 0.2},
                                   {"solver": "adam", "sparse": True}])
def test_many_parts_train_in_their_scratch_with_the_bits_of_one(kind, dtype, extra, quiet):
    """Layers of 131 and 101 units (widths that leave panels and the last part's slab short),
    in an epoch of a batch of 150 rows, which cuts every product by rows, and one of 100,
    which cuts the hidden layers' by columns (on two parts the second layer's forward by W's
    rows); float64's 131-wide rows are too far apart for the AVX-512 tiles to read W in place,
    so they pack it. Every slab on up to 16 parts has the tiles' 6 rows at least. On 1, 3, 5
    or 16 parts and 1 or 3 threads the tiles give the bits of one part on one thread: each sum
    runs in the same order whatever the slab. Two parts sum a layer cut by W's rows from two
    products, and BLAS picks its kernels by the slab's shape: there the part count alone fixes
    the bits."""
    extra = dict(extra)
    sparse = extra.pop("sparse", False)
    X, y, weight, order = _data()
    if sparse:
        X[np.abs(X) < 1.0] = 0
        X = sp.csr_matrix(X)
    X, weight = X.astype(dtype), weight.astype(dtype)
    model = MLPClassifier(hidden_layer_sizes=(131, 101), max_iter=1, random_state=0,
                          batch_size=150, dtype=dtype, n_threads=1, **extra)
    model.partial_fit(X, y, classes=range(3))
    Y = model._encode_targets(y, first=False)
    with _tiles(kind):
        runs = {(parts, threads): _epoch(model, X, Y, weight, order, 150, parts, threads, dtype)
                for parts in (1, 2, 3, 5, 16) for threads in (1, 3)}
    for (parts, threads), run in runs.items():
        one = runs[(1, 1)] if kind and parts != 2 else runs[(parts, 1)]
        for a, b in zip(one, run):
            assert np.array_equal(a, b), (parts, threads)
    assert np.all(np.isfinite(runs[(16, 3)][0]))
