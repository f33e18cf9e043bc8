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
