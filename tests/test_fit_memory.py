"""What a fit holds in memory, pinned by the buffers it allocates and writes, never by timing
or by the resident size (bench/partial_fit.py --only memory measures that): the optimizer
state holds the rows its solver uses, SGD without Nesterov's momentum stores no weight
gradient, and the estimate
that refuses a model too large for memory counts the same buffers."""
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


# parameter buffers' worth a fit holds besides its workspace (optim.fit_copies): the
# parameters, the state's rows, the gradient (none for sgd without Nesterov's momentum), the
# best epoch's copy
@pytest.mark.parametrize("kw, copies", [
    (dict(solver="sgd", momentum=0.0), 2),
    (dict(solver="sgd", momentum=0.9, nesterovs_momentum=False), 2),
    (dict(solver="sgd", momentum=0.9), 3),  # Nesterov: the gradient is stored
    (dict(solver="adagrad"), 3),
    (dict(solver="adam"), 4),
    (dict(solver="adam", early_stopping=True), 5),
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
    assert options["copies"] == copies
    batch = len(X) if kw["solver"] == "lbfgs" else KW["batch_size"]
    assert workspace == model._net().workspace_size(batch, model._work_parts(batch), dtype)
    if kw["solver"] != "lbfgs":  # the workspace is held from the fit on
        assert model._workspace.size >= workspace
        model.partial_fit(X, Y)
        assert seen[1][0][2] == 0 and seen[1][1]["copies"] == copies - bool(
            kw.get("early_stopping"))


def test_a_tied_autoencoder_stores_its_gradient():
    """Tied copies sum their gradients before any step, so no fusion: one gradient counted."""
    ae = Autoencoder((4, 2), tied_weights=True, solver="sgd", momentum=0.0, max_iter=1,
                     random_state=0, n_threads=1)
    assert ae._fit_copies(np.float32, sparse=False, incremental=False) == 3
    ae.set_params(tied_weights=False)
    assert ae._fit_copies(np.float32, sparse=False, incremental=False) == 2
    assert ae._fit_copies(np.float32, sparse=True, incremental=False) == 3


def test_a_model_is_refused_by_the_estimate_before_anything_is_allocated(monkeypatch):
    """With 1 byte less than the estimate available, fit raises MemoryError naming the sizes;
    with the estimate, it trains."""
    monkeypatch.setattr(fastmlp.model, "_CHECKED_BYTES", 0)
    model = MLPClassifier(solver="adam", **KW)
    size = fastmlp.network.parameter_layout([4, 7, 5, 3], False, 4)["size"]
    workspace = model.fit(X, Y)._net().workspace_size(16, model._work_parts(16), np.float32)
    needed = (4 * size + workspace) * 4
    monkeypatch.setattr(fastmlp.model, "_available_memory", lambda: needed - 1)
    fresh = MLPClassifier(solver="adam", **KW)
    with pytest.raises(MemoryError, match=rf"{size:,} parameters .* needs about"):
        fresh.fit(X, Y)
    assert not hasattr(fresh, "n_iter_")
    monkeypatch.setattr(fastmlp.model, "_available_memory", lambda: needed)
    assert MLPClassifier(solver="adam", **KW).fit(X, Y).n_iter_ == 3
