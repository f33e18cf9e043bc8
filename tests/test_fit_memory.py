"""What a fit holds in memory, pinned by the buffers it allocates and writes, never by timing
or by the resident size (bench/partial_fit.py --only memory measures that): the optimizer
state holds the rows its solver uses, SGD without Nesterov's momentum stores no weight
gradient, nor do the other solvers where the tiles step the weights in backward, and the
estimate that refuses a model too large for memory counts the same buffers."""
import numpy as np
import pytest

import fastmlp.model
import fastmlp.network
import fastmlp.run_start
from fastmlp import Autoencoder, MLPClassifier, optim

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

rng = np.random.RandomState(0)
X = rng.randn(60, 4)
Y = rng.randint(0, 3, 60)
KW = dict(hidden_layer_sizes=(7, 5), max_iter=3, batch_size=16, random_state=0, n_threads=1)


@pytest.mark.parametrize("solver, rows", [("sgd", 1), ("adagrad", 1), ("rmsprop", 1),
                                          ("adam", 2), ("lbfgs", 0)])
def test_the_state_holds_the_rows_its_solver_uses(solver, rows):
    model = MLPClassifier(solver=solver, **KW).fit(X, Y)
    n = model._layout["n_trainable"]
    assert optim.state_slots(solver) == rows
    assert model._state.shape == (rows * n,) and model._state.dtype == model._params.dtype
    if solver != "lbfgs":  # and goes on so through partial_fit
        model.partial_fit(X, Y)
        assert model._state.shape == (rows * n,)


@pytest.mark.parametrize("nesterov", [False, True])
def test_plain_sgd_never_writes_a_weight_gradient(nesterov):
    """At momentum 0 the backward GEMMs add each gradient into the velocity (csrc/batch.c):
    the gradient buffer's weight part stays as np.zeros made it (its pages never resident),
    through fit and partial_fit, and Nesterov's update is the same bits as the plain one."""
    model = MLPClassifier(solver="sgd", momentum=0.0, nesterovs_momentum=nesterov,
                          alpha=1e-3, **KW).fit(X, Y)
    model.partial_fit(X, Y)
    n_weights = model._layout["n_weights"]
    assert not np.any(model._grads[:n_weights])
    assert np.any(model._grads[n_weights:])  # the biases' gradient is stored
    assert all(r["health"][0]["grad_norm"] > 0 for r in model.history_)
    other = MLPClassifier(solver="sgd", momentum=0.0, nesterovs_momentum=not nesterov,
                          alpha=1e-3, **KW).fit(X, Y)
    other.partial_fit(X, Y)
    np.testing.assert_array_equal(model._params, other._params)
    np.testing.assert_array_equal(model._state, other._state)
    assert [r["health"] for r in model.history_] == [r["health"] for r in other.history_]


def test_sgd_momentum_never_writes_a_weight_gradient_either():
    """At momentum > 0 (not Nesterov) the backward GEMMs add each gradient into the velocity
    too, and layer health recomputes the measured update's gradient a block of rows at a time
    (csrc/step.c, health_gradient) instead of keeping a copy of the velocity in the gradient
    buffer: its weight part stays as np.zeros made it, and the fit holds the parameters, the
    velocity and the workspace. That grad_norm is still the norm of the update's gradient,
    test_layer_health's oracle checks; here, that it is measured."""
    model = MLPClassifier(solver="sgd", momentum=0.9, nesterovs_momentum=False, alpha=1e-3,
                          **KW).fit(X, Y)
    model.partial_fit(X, Y)
    n_weights = model._layout["n_weights"]
    assert not np.any(model._grads[:n_weights])
    assert np.any(model._grads[n_weights:])  # the biases' gradient is stored
    assert all(layer["grad_norm"] > 0 for r in model.history_ for layer in r["health"])


SOLVERS = {"sgd": dict(solver="sgd", momentum=0.0),
           "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
           "nesterov": dict(solver="sgd", momentum=0.9),
           "adagrad": dict(solver="adagrad"), "rmsprop": dict(solver="rmsprop"),
           "adam": dict(solver="adam")}


def _stored_gradient(model, sparse=False, scratch=False):
    """What the C side says training stores of the gradient (Net.stored_gradient), and with
    `scratch` the work parts' blocks of it besides (Net.gradient_scratch)."""
    parts = model._work_parts(model.batch_size)
    solver = (model.solver, model.momentum, model.nesterovs_momentum)
    stored = model._net().stored_gradient(parts, sparse, *solver)
    if not scratch:
        return stored
    return stored + model._net().gradient_scratch(parts, model._params.dtype, sparse, *solver)


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("hidden, batch_norm, sparse", [
    ((7, 5), False, False),      # dW of 4 and 5 rows: too few for a tile, on BLAS
    ((40, 24), False, False),    # every layer's rows to the tiles
    ((40, 24), True, False),     # and batch norm's gamma and beta
    ((40, 24), False, True),     # a sparse first layer: its own loop
    ((700, 12), False, False),   # a layer of three optimizer chunks, and one row split by two
])
def test_training_writes_the_gradient_it_says_it_stores(gemm_path, solver, hidden, batch_norm,
                                                        sparse):
    """The oracle of the estimate's gradient term: partial_fit over a gradient buffer of NaN
    writes exactly Net.stored_gradient of its elements, and the others are never read (the
    model stays finite). Under the tiles every layer whose dW rows they take is stepped in
    backward (csrc/step.c), for every solver where all of them are; else SGD momentum without
    Nesterov adds dW into the velocity; the biases' gradient is always stored."""
    import scipy.sparse as sp
    rng = np.random.RandomState(1)
    Xd = rng.randn(90, 30)
    Xd[np.abs(Xd) < 0.5] = 0
    Xs = sp.csr_matrix(Xd) if sparse else Xd
    y = rng.randint(0, 3, 90)
    model = MLPClassifier(hidden_layer_sizes=hidden, batch_norm=batch_norm, batch_size=30,
                          max_iter=2, random_state=0, **SOLVERS[solver]).fit(Xs, y)
    layout = model._layout
    model._grads[:] = np.nan
    model.partial_fit(Xs, y)
    written = int(np.count_nonzero(~np.isnan(model._grads)))
    stored = _stored_gradient(model, sparse)
    assert written == stored
    n_trainable = layout["n_trainable"]
    scratch = _stored_gradient(model, sparse, scratch=True) - stored
    assert np.all(np.isfinite(model._params))
    n_weights = layout["n_weights"]
    assert not np.isnan(model._grads[n_weights:n_trainable]).any()  # biases, gamma, beta
    # the AVX2 tiles leave products wider than 256 columns to BLAS
    kind = fastmlp._core.tiles_in_use()
    tiled = kind and hidden != (7, 5) and (kind == "avx512" or max(hidden) <= 256)
    if tiled:
        # every dense layer stepped in backward, whatever the solver: the biases' gradient is
        # stored (and a sparse first layer's), and the blocks of the rest are the scratch
        assert stored == n_trainable - n_weights + (30 * hidden[0] if sparse else 0)
        assert scratch > 0
    elif not kind:
        # BLAS: fused momentum for plain SGD, the whole gradient for the others
        assert scratch == 0
        assert (stored == n_trainable) == (solver not in ("sgd", "momentum"))
    elif hidden == (7, 5):
        # on the tiles, but dW of the first and last layers has too few rows: SGD fuses, the
        # others step the middle layer in backward
        assert (scratch > 0) == (solver not in ("sgd", "momentum"))


def test_weights_stepped_in_backward_train_the_same_bits_on_any_thread_count(gemm_path,
                                                                            monkeypatch):
    """The shares of dW's rows that the two work parts step in backward are fixed by the
    chunks, not by the threads: on 1 thread or 2 the parameters, the state and the losses are
    the same bits, for SGD momentum, Nesterov's and adam, with L2 decay (whose sums of squares
    are taken before backward steps any weight) and a first layer (70 -> 150) whose dW the
    other cut would split by columns."""
    monkeypatch.setattr(fastmlp.network, "available_cores", lambda: 2)
    rng = np.random.RandomState(2)
    Xd = rng.randn(240, 70)
    y = rng.randint(0, 4, 240)
    for solver in ("momentum", "nesterov", "adam"):
        fits = [MLPClassifier(hidden_layer_sizes=(150, 40), batch_size=120, max_iter=2,
                              alpha=1e-3, random_state=0, n_threads=threads,
                              **SOLVERS[solver]).fit(Xd, y) for threads in (1, 2)]
        assert fits[0]._work_parts(120) == 2
        np.testing.assert_array_equal(fits[0]._params, fits[1]._params)
        np.testing.assert_array_equal(fits[0]._state, fits[1]._state)
        assert fits[0].loss_curve_ == fits[1].loss_curve_


# parameter buffers' worth a fit holds besides its workspace (optim.fit_copies): the
# parameters, the state's rows, the part of the gradient training stores (on this small
# network, some: test_training_writes_the_gradient_it_says_it_stores), the best epoch's copy
@pytest.mark.parametrize("kw, copies", [
    (dict(solver="sgd", momentum=0.0), 2),
    (dict(solver="sgd", momentum=0.9, nesterovs_momentum=False), 2),
    (dict(solver="sgd", momentum=0.9), 2),  # Nesterov
    (dict(solver="adagrad"), 2),
    (dict(solver="adam"), 3),
    (dict(solver="adam", early_stopping=True), 4),
    # L-BFGS: params, gradient, and 38 float64 vectors (2 float32 buffers each), scipy's most
    (dict(solver="lbfgs"), 2 + 38 * 2),
])
def test_the_memory_estimate_counts_the_buffers_a_fit_holds(kw, copies, monkeypatch):
    seen = []
    real = fastmlp.run_start.check_memory
    monkeypatch.setattr(fastmlp.run_start, "check_memory",
                        lambda *a, **k: seen.append((a, k)) or real(*a, **k))
    model = MLPClassifier(**dict(KW, **kw)).fit(X, Y)
    (layout, dtype, workspace), options = seen[0]
    if kw["solver"] != "lbfgs":
        copies += _stored_gradient(model, scratch=True) / layout["size"]
    assert options["copies"] == pytest.approx(copies, rel=1e-12)
    batch = len(X) if kw["solver"] == "lbfgs" else KW["batch_size"]
    assert workspace == model._net().workspace_size(batch, model._work_parts(batch), dtype)
    if kw["solver"] != "lbfgs":  # the workspace is held from the fit on
        assert model._workspace.size >= workspace
        model.partial_fit(X, Y)
        assert seen[1][0][2] == 0
        assert seen[1][1]["copies"] == pytest.approx(copies - bool(kw.get("early_stopping")),
                                                     rel=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_tied_autoencoder_stores_its_gradient(solver):
    """Tied copies sum their gradients before any step, so neither fusion nor a step in
    backward: the whole gradient is stored, and counted; untied, the weights' is not."""
    rng = np.random.RandomState(0)
    Xa = rng.randn(64, 48)
    for tied in (True, False):
        ae = Autoencoder((32, 16), tied_weights=tied, solver=solver, momentum=0.0, max_iter=1,
                         batch_size=32, random_state=0).fit(Xa)
        layout, parts = ae._layout, ae._work_parts(32)
        stored = ae._net().stored_gradient(parts, False, solver, 0.0, True)
        scratch = ae._net().gradient_scratch(parts, np.float32, False, solver, 0.0, True)
        copies = ae._fit_copies(ae._net(), layout, parts, np.float32, False, False)
        assert copies == 1 + optim.state_slots(solver) + (stored + scratch) / layout["size"]
        assert scratch == 0 if tied or not fastmlp._core.tiles_in_use() else scratch > 0
        if tied:
            assert stored == layout["n_trainable"]
        elif fastmlp._core.tiles_in_use() == "avx512":
            assert stored == layout["n_trainable"] - layout["n_weights"]


def test_a_model_is_refused_by_the_estimate_before_anything_is_allocated(monkeypatch):
    """With 1 byte less than the estimate available, fit raises MemoryError naming the sizes;
    with the estimate, it trains."""
    monkeypatch.setattr(fastmlp.model, "_CHECKED_BYTES", 0)
    model = MLPClassifier(solver="adam", **KW)
    size = fastmlp.network.parameter_layout([4, 7, 5, 3], False, 4)["size"]
    workspace = model.fit(X, Y)._net().workspace_size(16, model._work_parts(16), np.float32)
    # the parameters, adam's two moments and the part of the gradient training stores
    copies = model._fit_copies(model._net(), model._layout, model._work_parts(16), np.float32,
                               False, False)
    assert copies > 3
    needed = (copies * size + workspace) * 4
    monkeypatch.setattr(fastmlp.model, "_available_memory", lambda: needed - 1)
    fresh = MLPClassifier(solver="adam", **KW)
    with pytest.raises(MemoryError, match=rf"{size:,} parameters .* needs about"):
        fresh.fit(X, Y)
    assert not hasattr(fresh, "n_iter_")
    monkeypatch.setattr(fastmlp.model, "_available_memory", lambda: needed)
    assert MLPClassifier(solver="adam", **KW).fit(X, Y).n_iter_ == 3
