"""The fitted model stays whole: a predict racing a refit reads one model, a failed call
changes nothing (not the model, the history or the random generator), a returned model has
finite parameters, tiny column scales train, and a model too large for memory is refused
before it is allocated."""
import threading
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor

rng = np.random.RandomState(0)
X = rng.randn(200, 10)
Y = rng.randint(0, 3, 200)


def test_predict_racing_a_refit_reads_one_model(quiet):
    """set_params(hidden_layer_sizes=...) + fit in one thread while another predicts: every
    prediction comes from one whole model (valid probabilities, never a crash)."""
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, n_threads=1,
                        random_state=0).fit(X, Y)
    done, failures = threading.Event(), []

    def refit():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i in range(40):
                    clf.set_params(hidden_layer_sizes=[(16,), (64, 8), (3,), (128,)][i % 4])
                    clf.fit(X, Y)
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            done.set()

    worker = threading.Thread(target=refit)
    worker.start()
    predictions = 0
    while not done.is_set() or predictions < 10:
        for rows in (X[:1], X[:40], np.tile(X, (2, 1))):  # one row, one chunk, threaded size
            proba = clf.predict_proba(rows)
            assert proba.shape == (len(rows), 3) and np.isfinite(proba).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
            assert np.isin(clf.predict(rows), [0, 1, 2]).all()
            predictions += 1
    worker.join()
    assert not failures and predictions >= 10


# one epoch of one batch: its loss, measured before the update, is finite; the update is not
DIVERGES = dict(hidden_layer_sizes=(50,), solver="sgd", learning_rate_init=1e35, max_iter=1,
                random_state=0, n_threads=1)


def diverging_problem():
    X_big = np.random.RandomState(1).randn(100, 4) * 1e5
    return X_big, X_big[:, 0] * 3.0


def test_divergence_in_the_last_update_is_refused():
    X_big, y_big = diverging_problem()
    reg = MLPRegressor(**DIVERGES)
    with pytest.raises(ValueError, match="diverged"):
        reg.fit(X_big, y_big)
    assert not hasattr(reg, "n_iter_") and not hasattr(reg, "_params")
    with pytest.raises(ValueError, match="diverged"):
        reg.partial_fit(X_big, y_big)
    assert not hasattr(reg, "n_iter_")


def test_a_failed_partial_fit_changes_nothing():
    X_big, y_big = X[:, :4] * 1e25, X[:, 0] * 1e25  # far outside the first call's scale
    reg = MLPRegressor(**dict(DIVERGES, learning_rate_init=0.01)).partial_fit(X[:, :4], X[:, 0])
    params, state, curve = reg._params.copy(), reg._state.copy(), reg.loss_curve_
    history, t = list(reg.history_), reg.t_
    for _ in range(2):
        with pytest.raises(ValueError, match="diverged"):
            reg.partial_fit(X_big, y_big)
        np.testing.assert_array_equal(reg._params, params)
        np.testing.assert_array_equal(reg._state, state)
        assert reg.loss_curve_ is curve and len(curve) == 1 and list(reg.history_) == history
        assert reg.t_ == t
    reg.partial_fit(X[:, :4], X[:, 0])  # trains on from the finite weights
    assert np.isfinite(reg._params).all() and reg.n_iter_ == 2


def test_a_failed_fit_leaves_the_random_generator_where_it_was(quiet):
    X_big, y_big = diverging_problem()
    generator = np.random.RandomState(5)
    reg = MLPRegressor(**dict(DIVERGES, random_state=generator))
    with pytest.raises(ValueError, match="diverged"):
        reg.fit(X_big, y_big)
    # the retry (here on data that trains) equals a fit that never failed
    retried = reg.set_params(learning_rate_init=0.01, max_iter=3).fit(X, X[:, 0])
    fresh = MLPRegressor(**dict(DIVERGES, learning_rate_init=0.01, max_iter=3,
                                random_state=np.random.RandomState(5))).fit(X, X[:, 0])
    np.testing.assert_array_equal(retried._params, fresh._params)
    # and a fit that succeeds moves the caller's generator on, as scikit-learn's do
    assert generator.get_state()[2] == fresh.random_state.get_state()[2]


def test_a_float32_column_of_tiny_values_trains(quiet):
    """{0, 1e-40} in float32: its std (5e-41) has no float32 inverse; it is only centered."""
    X32 = np.column_stack([rng.randn(60), np.where(rng.rand(60) > 0.5, 1e-40, 0.0),
                           rng.randn(60) * 1e30]).astype(np.float32)
    y = (X32[:, 0] > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, learning_rate_init=0.05,
                        random_state=0).fit(X32, y)
    assert clf._x_scale[1] == 1 and clf._x_shift[1] == pytest.approx(X32[:, 1].mean(), rel=1e-5)
    assert clf._x_scale[2] == pytest.approx(1 / X32[:, 2].std(dtype=np.float64), rel=1e-6)
    assert np.isfinite(clf._params).all() and clf.score(X32, y) > 0.9


def test_glorot_weights_are_drawn_in_chunks_of_the_same_stream(monkeypatch, quiet):
    kw = dict(hidden_layer_sizes=(30, 20), max_iter=1, random_state=0, n_threads=1,
              learning_rate_init=1e-12)
    whole = MLPClassifier(**kw).partial_fit(X, Y, classes=[0, 1, 2])
    monkeypatch.setattr(fastmlp.model, "_DRAW_CHUNK", 7)
    chunked = MLPClassifier(**kw).partial_fit(X, Y, classes=[0, 1, 2])
    np.testing.assert_array_equal(whole._params, chunked._params)
    reference = np.random.RandomState(0).uniform(-np.sqrt(6 / 40), np.sqrt(6 / 40), 300)
    np.testing.assert_allclose(whole.coefs_[0].ravel(), reference.astype(np.float32),
                               atol=1e-9)


def test_a_model_too_large_for_memory_is_refused_before_allocating():
    clf = MLPClassifier(hidden_layer_sizes=(300_000, 300_000), max_iter=1)
    with pytest.raises(MemoryError, match=r"GiB"):
        clf.fit(X, Y)
    assert not hasattr(clf, "n_iter_")


def _bridge_epoch(model, X, Y, params, state, threads, source=None, source_state=None,
                  finite=None, calls=2):
    """One epoch of the fitted `model`'s net through _core.train_epoch in `calls` calls (the
    first one given the sources), with layer health on, as the epoch loop runs it."""
    from fastmlp import _core, optim
    from fastmlp._health import new_health

    dtype = model._params.dtype
    n_trainable = model._layout["n_trainable"]
    grads = np.zeros(n_trainable, dtype=dtype)
    workspace = np.zeros(model._net().workspace_size(40, 2, dtype), dtype=dtype)
    hyper = optim.hyperparameters(model, 0.01, "constant")
    batch_loss, t = np.zeros(5), 3
    cut = 40 * (5 // calls)
    for first, last in ((0, cut), (cut, len(X))) if calls == 2 else ((0, len(X)),):
        t = _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state,
                              workspace, batch_loss[first // 40:], Y, None,
                              np.arange(first, last, dtype=np.int64), 40, 11, t, 2, threads,
                              0, new_health(model._net(), 2), source if first == 0 else None,
                              source_state if first == 0 else None, finite)
    return batch_loss


@pytest.mark.parametrize("solver", ["adam", "momentum", "rmsprop"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_the_first_update_reads_the_sources_and_writes_new_buffers(solver, batch_norm):
    """train_epoch given source buffers gives the bits of a copy trained in place, on 1 and 2
    threads, and never writes the sources: the published model stays as it was while the
    first update of a partial_fit reads it (csrc/step.c, take_chunk)."""
    X2, Y2 = rng.randn(200, 10), rng.randint(0, 3, 200)
    kw = dict(solver="sgd", momentum=0.9, nesterovs_momentum=False) if solver == "momentum" \
        else dict(solver=solver)
    model = MLPClassifier((70, 30), max_iter=1, batch_size=40, batch_norm=batch_norm,
                          random_state=0, n_threads=1, **kw).fit(X2, Y2)
    X32, Y32 = X2.astype(np.float32), model._encode_targets(Y2)
    source, source_state = model._params, model._state
    kept, kept_state = source.copy(), source_state.copy()
    assert np.any(source_state != 0)
    copied, copied_state = source.copy(), source_state.copy()
    losses = _bridge_epoch(model, X32, Y32, copied, copied_state, 1)
    n_trainable = model._layout["n_trainable"]
    for threads in (1, 2):
        params = np.full_like(source, np.nan)
        params[n_trainable:] = source[n_trainable:]  # the caller fills the tail in
        state = np.full_like(source_state, np.nan)
        finite = np.zeros(2, dtype=np.intc)
        new_losses = _bridge_epoch(model, X32, Y32, params, state, threads, source,
                                   source_state, finite)
        np.testing.assert_array_equal(params, copied)
        np.testing.assert_array_equal(state, copied_state)
        np.testing.assert_array_equal(new_losses, losses)
        np.testing.assert_array_equal(source, kept)
        np.testing.assert_array_equal(source_state, kept_state)
        assert finite[0] == 1 and finite[1] == 1


def test_the_c_trainer_flags_a_non_finite_parameter_or_state():
    """The finiteness of the trainable parameters and the solver's state after the call's
    last update is checked in C, chunk by chunk as the step leaves it in cache."""
    X2, Y2 = rng.randn(200, 10), rng.randint(0, 3, 200)
    model = MLPClassifier((30,), max_iter=1, batch_size=40, random_state=0,
                          n_threads=1).fit(X2, Y2)
    X32, Y32 = X2.astype(np.float32), model._encode_targets(Y2)
    n_trainable = model._layout["n_trainable"]
    for where in (None, "weight", "bias", "m", "v"):
        params, state = model._params.copy(), model._state.copy()
        at = {"weight": 5, "bias": n_trainable - 1}.get(where)
        if at is not None:
            params[at] = np.inf
        elif where is not None:
            state[(0 if where == "m" else n_trainable) + 7] = np.nan
        finite = np.full(2, 7, dtype=np.intc)
        _bridge_epoch(model, X32, Y32, params, state, 1, finite=finite, calls=1)
        assert finite[0] == (where is None) and finite[1] == 1, where


@pytest.mark.parametrize("kw", [dict(), dict(solver="sgd", nesterovs_momentum=False),
                                dict(batch_norm=True, dropout=0.2), dict(solver="adagrad")])
def test_partial_fit_and_warm_start_never_write_the_published_model(kw, quiet):
    clf = MLPClassifier((20, 10), max_iter=2, random_state=0, n_threads=1, **kw).fit(X, Y)
    for call in ("partial_fit", "warm_start"):
        model, params, state = clf._model, clf._params, clf._state
        kept, kept_state = params.copy(), state.copy()
        if call == "partial_fit":
            clf.partial_fit(X, Y)
        else:
            clf.set_params(warm_start=True).fit(X, Y)
        assert clf._model is not model and clf._params is not params
        np.testing.assert_array_equal(params, kept)
        np.testing.assert_array_equal(state, kept_state)
        assert np.isfinite(clf._params).all() and not np.array_equal(clf._params, kept)
