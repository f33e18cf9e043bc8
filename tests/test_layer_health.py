"""Layer health, counted in C while training runs (csrc/health.c), against a numpy oracle that
replays the epoch batch by batch: per hidden layer the saturated (tanh, sigmoid) or dead (relu)
fraction of its units over the epoch's examples and their mean activation g(a) before dropout,
per weight layer the norms of the epoch's last update. And: the same bits on 1 and 2 threads,
and training's result the same bits with health counted or not."""
import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import MLPClassifier, _core
from fastmlp._health import health_record, new_health
from fastmlp.diagnostics import SATURATED_EXAMPLES, SATURATION_MARGIN

GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z):
    """csrc/rng.h's fastmlp_mix64 on uint64 arrays (numpy arrays wrap around, as C does)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def keep_mask(seed, t, rows, units, p):
    """The dropout mask (rows, units) of update t: unit j of batch row r kept, as rng.h draws it."""
    with np.errstate(over="ignore"):
        h = _mix64(np.array([seed], dtype=np.uint64) + np.uint64(GOLDEN))
        h = _mix64(h ^ np.uint64(t))
        stream = _mix64(h ^ (np.arange(rows, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)))
        numbers = _mix64(stream[:, None]
                         + (np.arange(units, dtype=np.uint64)[None, :] + np.uint64(1))
                         * np.uint64(GOLDEN))
    threshold = p * 2.0**32
    threshold = 0xFFFFFFFF if threshold >= 4294967295.0 else int(threshold)
    return (numbers >> np.uint64(32)) >= np.uint64(threshold)


def _activate(a, activation):
    if activation == "relu":
        return np.maximum(a, 0)
    if activation == "tanh":
        return np.tanh(a)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-a))
    return a


def batch_units(model, Xb):
    """Each hidden layer's g(a) (B, units) before dropout, in training mode, as the next update
    (model._n_updates + 1) computes it from the model's current weights, in float64."""
    spec = model._fitted_spec
    h, outputs = np.asarray(Xb.toarray() if sp.issparse(Xb) else Xb, dtype=np.float64), []
    if model._x_shift is not None:
        h = (h - model._x_shift) * model._x_scale
    for l, (W, b) in enumerate(zip(model.coefs_[:-1], model.intercepts_[:-1])):
        a = h @ W.astype(np.float64)
        if spec["batch_norm"]:
            norm = model.batchnorm_[l]
            a = ((a - a.mean(axis=0)) / np.sqrt(a.var(axis=0) + 1e-5) * norm["gamma"]
                 + norm["beta"])
        else:
            a = a + b
        g = _activate(a, spec["activation"])
        outputs.append(g)
        p = spec["dropout"][l]
        if p > 0:
            scale = np.asarray(1 / (1 - p), dtype=model._params.dtype)
            g = np.where(keep_mask(model._seed, model._n_updates + 1, *g.shape, p), g * scale, 0)
        h = g
    return outputs


def near_bound(g, activation):
    """Per unit, the examples counted: near a bound (tanh, sigmoid) or active (relu)."""
    if activation == "relu":
        return (g > 0).sum(axis=0)
    if activation == "tanh":
        return (np.abs(g) >= 1 - SATURATION_MARGIN).sum(axis=0)
    if activation == "sigmoid":
        return ((g <= SATURATION_MARGIN) | (g >= 1 - SATURATION_MARGIN)).sum(axis=0)
    return np.zeros(g.shape[1], dtype=np.int64)


def oracle_epoch(model, X, y, batch_size):
    """The health record of an epoch of `model` (fitted, shuffle off) over (X, y), replayed one
    batch at a time on it: a partial_fit per batch takes the same update as the epoch's batch,
    and before it the numpy forward pass gives the units' outputs and the C gradient check the
    batch's gradient."""
    activation = model._fitted_spec["activation"]
    n = X.shape[0]
    counts = sums = None
    for start in range(0, n, batch_size):
        Xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        outputs = batch_units(model, Xb)
        c = [near_bound(g, activation) for g in outputs]
        s = [g.sum(axis=0) for g in outputs]
        counts = c if counts is None else [x + z for x, z in zip(counts, c)]
        sums = s if sums is None else [x + z for x, z in zip(sums, s)]
        _, grads = model._batch_gradient(Xb, yb, seed=model._seed, t=model._n_updates + 1)
        before = [W.astype(np.float64) for W in model.coefs_]
        with warnings.catch_warnings():  # the last batch is the smaller
            warnings.filterwarnings("ignore", "batch_size", UserWarning)
            model.partial_fit(Xb, yb)
    return _record(model, counts, sums, grads, before, n, activation)


def _record(model, counts, sums, grads, before, n, activation):
    record = []
    offsets = model._layout["w_offset"]
    for l, W in enumerate(model.coefs_):
        G = grads[offsets[l]:offsets[l] + W.size].astype(np.float64)
        after = W.astype(np.float64)
        layer = {"saturated": None, "dead": None, "mean_activation": None,
                 "grad_norm": np.linalg.norm(G), "weight_norm": np.linalg.norm(after),
                 "update_ratio": np.linalg.norm(after - before[l]) / np.linalg.norm(before[l])}
        if l < len(counts):
            layer["mean_activation"] = sums[l].sum() / (n * counts[l].size)
            if activation == "relu":
                layer["dead"] = float(np.mean(counts[l] == 0))
            elif activation in ("tanh", "sigmoid"):
                layer["saturated"] = float(np.mean(counts[l] / n >= SATURATED_EXAMPLES))
        record.append(layer)
    return record


def sabotaged(model):
    """Units in every state: each hidden layer's units get weights (or batch-norm gains) from
    0.3 to 10 times as large, and its first two a bias (shift) of -50, which saturates or kills
    them on every example."""
    for l in range(len(model.coefs_) - 1):
        ramp = np.geomspace(0.3, 10, model.coefs_[l].shape[1]).astype(model._params.dtype)
        if model._fitted_spec["batch_norm"]:
            model.batchnorm_[l]["gamma"][:] *= ramp
            model.batchnorm_[l]["beta"][:2] = -50
        else:
            model.coefs_[l][...] *= ramp
            model.intercepts_[l][:2] = -50
    return model


def assert_records_match(got, expected, dtype):
    rtol = 2e-4 if dtype == np.float32 else 1e-9
    assert len(got) == len(expected)
    for layer, (g, e) in enumerate(zip(got, expected)):
        assert set(g) == set(e), layer
        for key in ("saturated", "dead"):
            assert g[key] == e[key], (layer, key, g[key], e[key])
        for key in ("mean_activation", "grad_norm", "weight_norm", "update_ratio"):
            if e[key] is None:
                assert g[key] is None, (layer, key)
            else:
                assert g[key] == pytest.approx(e[key], rel=rtol, abs=1e-6 if dtype == np.float32
                                               else 1e-12), (layer, key)


def data(n=90, d=6, scale=3.0, seed=0):
    """Inputs large enough that some tanh and sigmoid units saturate and some relu ones die."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) * scale
    X[:, 0] += 4.0
    return X, (X[:, 1] + X[:, 2] > 0).astype(int) + (X[:, 3] > 1)


OPTIONS = {
    "sgd momentum": dict(solver="sgd", momentum=0.9, learning_rate_init=0.05),
    # fused: the measured update's gradient is recomputed (csrc/step.c, health_gradient)
    "sgd momentum, not nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False,
                                       learning_rate_init=0.05, alpha=0.01),
    "adam, dropout": dict(solver="adam", learning_rate_init=0.01, dropout=[0.3, 0.5]),
    "nesterov, batch norm": dict(solver="sgd", nesterovs_momentum=True, batch_norm=True,
                                 learning_rate_init=0.05, alpha=0.01),
    "rmsprop, batch norm, dropout": dict(solver="rmsprop", batch_norm=True, dropout=0.2,
                                         learning_rate_init=0.01),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("options", list(OPTIONS))
def test_an_epochs_health_matches_the_numpy_oracle(options, activation, dtype, quiet):
    X, y = data()
    params = dict(hidden_layer_sizes=(9, 7), activation=activation, batch_size=20,
                  normalize=None, shuffle=False, dtype=dtype, random_state=0, n_threads=1,
                  max_iter=1, **OPTIONS[options])
    model = sabotaged(MLPClassifier(**params).fit(X, y))
    replay = copy.deepcopy(model)
    model.partial_fit(X, y)
    expected = oracle_epoch(replay, X, y, 20)
    assert np.array_equal(model._params, replay._params)  # the replay took the same updates
    assert_records_match(model.history_[-1]["health"], expected, dtype)


# Big enough that a batch of 50 is cut into two parts (the first layer forward by W's columns,
# the second by W's rows: csrc/batch.c), as in test_dropout's thread test
WIDE = dict(hidden_layer_sizes=(333, 67), batch_size=50)


def wide_data(n=100, d=40):
    rng = np.random.RandomState(3)
    X = rng.randn(n, d) * 2
    return X, rng.randint(0, 3, n)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("options", [dict(activation="relu", dropout=0.4),
                                     dict(activation="relu", nesterovs_momentum=False),  # fused
                                     dict(activation="tanh", batch_norm=True, solver="adam"),
                                     dict(activation="sigmoid", dropout=[0.5, 0.2],
                                          batch_norm=True)])
def test_two_parts_on_one_and_two_threads_bitwise_and_as_the_oracle(options, sparse, quiet):
    X, y = wide_data()
    if sparse:
        X[np.abs(X) < 1.5] = 0
        X = sp.csr_matrix(X)
    params = dict(solver="sgd", learning_rate_init=0.05, normalize=None, shuffle=False,
                  random_state=0, max_iter=1)
    params.update(WIDE, **options)
    assert _core.work_parts(40 * 333 + 333 * 67 + 67 * 3, 50, 2) == 2
    fits = []
    for n_threads in (1, 2):
        model = sabotaged(MLPClassifier(n_threads=n_threads, **params).fit(X, y))
        replay = copy.deepcopy(model) if n_threads == 2 else None
        model.partial_fit(X, y)
        fits.append(model)
    assert np.array_equal(fits[0]._params, fits[1]._params)
    assert healths(fits[0]) == healths(fits[1])  # every float bitwise
    expected = oracle_epoch(replay, X, y, 50)
    assert_records_match(fits[1].history_[-1]["health"], expected, np.float32)


def _epoch_by_core(model, X, y, health, n_threads):
    """One epoch of a fitted model's copy straight through _core.train_epoch; returns the
    parameters, the optimizer state and the batch losses it left."""
    from fastmlp.optim import hyperparameters
    X = model._validate_X(X, reset=False)
    Y = model._encode_targets(y, first=False)
    n = X.shape[0]
    B = model._batch_size(n)
    parts = model._work_parts(B)
    params, state = model._params.copy(), model._state.copy()
    grads = np.zeros(model._layout["n_trainable"], dtype=params.dtype)
    workspace = np.zeros(model._net().workspace_size(B, parts, params.dtype, sp.issparse(X)),
                         dtype=params.dtype)
    batch_loss = np.zeros(_core.epoch_batches(n, B, model.batch_norm))
    hyper = hyperparameters(model, model.learning_rate_init, "constant", params.dtype)
    _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state, workspace,
                      batch_loss, Y, None, np.arange(n, dtype=np.int64), B, model._seed,
                      model._n_updates, parts, n_threads, 0, health)
    return params, state, batch_loss


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("options", [dict(solver="sgd", nesterovs_momentum=False),  # fused
                                     dict(solver="sgd", dropout=0.3, batch_norm=True),
                                     dict(solver="adam", dropout=0.3, alpha=0.01)])
def test_training_gives_the_same_bits_with_health_counted_or_not(options, sparse, quiet):
    X, y = wide_data()
    if sparse:
        X[np.abs(X) < 1.5] = 0
        X = sp.csr_matrix(X)
    model = MLPClassifier(random_state=0, max_iter=1, n_threads=2, **WIDE, **options).fit(X, y)
    health = new_health(model._net(), model._work_parts(50))
    off = _epoch_by_core(model, X, y, None, 2)
    on = _epoch_by_core(model, X, y, health, 2)
    for a, b in zip(off, on):
        assert np.array_equal(a, b)
    assert np.all(health.norms > 0) and health.count.sum() > 0


def healths(model):
    return [record["health"] for record in model.history_]


def test_records_one_per_epoch_reset_by_fit_extended_by_partial_fit(quiet):
    X, y = data()
    model = MLPClassifier((5,), activation="tanh", max_iter=4, random_state=0,
                          n_threads=1).fit(X, y)
    assert len(healths(model)) == model.n_iter_ == 4
    for record in healths(model):
        assert [layer["saturated"] is None for layer in record] == [False, True]
        assert all(layer["dead"] is None for layer in record)
        assert record[1]["mean_activation"] is None
        assert all(layer["grad_norm"] > 0 and layer["weight_norm"] > 0
                   and 0 < layer["update_ratio"] < 1 for layer in record)
    model.partial_fit(X, y)
    assert len(healths(model)) == 5 and healths(model)[-1] is not None
    model.set_params(max_iter=2).fit(X, y)
    assert len(healths(model)) == 2


def test_health_record_of_an_untouched_accumulator():
    """What the bridge reads when nothing was counted: zero norms give a zero ratio, and a
    layer whose units never fired (relu) reads as all dead."""
    model = MLPClassifier((4,), random_state=0, max_iter=1, n_threads=1)
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    health = new_health(model._net(), 1)
    record = health_record(health, "relu", 10)
    assert record[0] == {"saturated": None, "dead": 1.0, "mean_activation": 0.0,
                         "grad_norm": 0.0, "weight_norm": 0.0, "update_ratio": 0.0}
    with pytest.raises(ValueError, match="another net or parts"):
        _epoch_by_core(model, X, y, new_health(model._net(), 3), 1)


@pytest.mark.parametrize("options", [dict(solver="sgd", momentum=0.9,  # the fused velocity
                                          nesterovs_momentum=False),
                                     dict(solver="adam", dropout=0.3, activation="tanh")])
def test_an_epoch_cut_into_time_bounded_stretches_counts_as_one_call(options, monkeypatch,
                                                                     quiet):
    """Every stretch adds its counts and overwrites the norms with its last update's: an
    epoch of many short calls on 1, 2, 1, ... threads gives the bits of one call per epoch."""
    from fastmlp.threads import ThreadChoice
    X, y = wide_data(n=300)
    params = dict(random_state=0, max_iter=2, learning_rate_init=0.01, **WIDE, **options)
    whole = MLPClassifier(n_threads=1, **params).fit(X, y)
    counts = iter([1, 2] * 100)
    monkeypatch.setattr(ThreadChoice, "stretch", lambda self: (next(counts), 1e-9))
    cut = MLPClassifier(n_threads=2, **params).fit(X, y)
    assert np.array_equal(whole._params, cut._params)
    assert healths(whole) == healths(cut) and all(r is not None for r in healths(cut))


def test_only_the_call_that_trains_the_last_batch_of_its_rows_measures_the_norms(quiet):
    """Each call is given the rest of the epoch's rows (training.Stretches): a call its time
    limit stops first adds its unit counts and leaves the norms as they were, and the call that
    trains the last batch writes them, as one call over the whole epoch would. So the measured
    update's cost (fused momentum recomputes its gradient) is paid once per epoch."""
    from fastmlp.optim import hyperparameters
    X, y = wide_data(n=300)
    model = MLPClassifier(random_state=0, max_iter=1, n_threads=2, solver="sgd",
                          nesterovs_momentum=False, **WIDE).fit(X, y)
    Xv, Y = model._validate_X(X, reset=False), model._encode_targets(y, first=False)
    B, n = 50, len(X)
    parts = model._work_parts(B)
    hyper = hyperparameters(model, model.learning_rate_init, "constant", model._params.dtype)
    order = np.arange(n, dtype=np.int64)

    def epoch(pieces):
        params, state = model._params.copy(), model._state.copy()
        grads = np.zeros(model._layout["n_trainable"], dtype=params.dtype)
        workspace = np.zeros(model._net().workspace_size(B, parts, params.dtype),
                             dtype=params.dtype)
        health, t, first, norms = new_health(model._net(), parts), model._n_updates, 0, []
        for limit in pieces:  # a tiny limit stops a call after its second batch
            batch_loss = np.zeros(_core.epoch_batches(n - first * B, B, False))
            t_before = t
            t = _core.train_epoch(model._net(), hyper, model._input(Xv), params, grads, state,
                                  workspace, batch_loss, Y, None, order[first * B:], B,
                                  model._seed, t, parts, 2, limit, health)
            first += t - t_before
            norms.append(health.norms.copy())
        assert first == n // B
        return params, health, norms

    whole_params, whole, _ = epoch([0])
    cut_params, cut, norms = epoch([1e-9, 1e-9, 0])
    assert np.array_equal(whole_params, cut_params)
    assert not np.any(norms[0]) and not np.any(norms[1])  # batches 0-1, 2-3: not the last
    assert np.all(norms[2] > 0) and np.array_equal(norms[2], whole.norms)
    assert np.array_equal(cut.count, whole.count) and np.array_equal(cut.sum, whole.sum)
