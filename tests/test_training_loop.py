"""The epoch loop (fastmlp/training.py) and what plugs into it: history_, a validation set of
the user's, scoring, class weights, callbacks, verbose output, Ctrl-C."""
import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score, get_scorer
from sklearn.utils.class_weight import compute_sample_weight

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, training
from fastmlp.callbacks import Checkpoint, LearningRateLogger, ProgressBar

rng = np.random.RandomState(0)
X = rng.randn(120, 5)
Y = np.where(X[:, 0] + 0.5 * rng.randn(120) > 0.6, 1, 0)  # imbalanced: about 1 in 4 are 1
Y3 = np.digitize(X[:, 1] + 0.3 * rng.randn(120), [-0.5, 0.7])
X_VAL = rng.randn(40, 5)
Y3_VAL = np.digitize(X_VAL[:, 1], [-0.5, 0.7])
KW = dict(hidden_layer_sizes=(8,), random_state=0, n_threads=1, learning_rate_init=0.01)


class StopAt:
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, estimator, record):
        return record["epoch"] == self.epoch


class Spy:
    """Records what a callback sees."""

    def on_train_begin(self, estimator):
        self.calls = ["begin"]

    def on_epoch_end(self, estimator, record):
        self.calls.append(record["epoch"])
        self.n_iter = estimator.n_iter_
        self.history = list(estimator.history_)
        self.proba = estimator.predict_proba(X[:3])

    def on_train_end(self, estimator):
        self.calls.append("end")


# ---------------------------------------------------------------- history_


def numeric(history):
    """The records as a file keeps them: the numeric keys (fastmlp.save drops the health)."""
    return [{key: record[key] for key in training.RECORD_KEYS} for record in history]


def test_history_records_every_epoch(quiet):
    clf = MLPClassifier(max_iter=4, **KW).fit(X, Y3, X_val=X_VAL, y_val=Y3_VAL)
    history = clf.history_
    assert len(history) == clf.n_iter_ == 4
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert set(history[-1]) == set(training.RECORD_KEYS) | {training.HEALTH_KEY}
    assert [len(r["health"]) for r in history] == [len(clf.coefs_)] * 4
    assert clf.loss_curve_ == [r["train_loss"] for r in history]
    assert clf.validation_loss_curve_ == [r["valid_loss"] for r in history]
    assert clf.validation_scores_ == [r["valid_score"] for r in history]
    assert all(r["learning_rate"] == 0.01 and r["threads"] == 1 and r["seconds"] > 0
               and r["samples_per_s"] > 0 for r in history)
    frame = history.to_frame()
    assert list(frame.columns) == training.RECORD_KEYS + ["health"] and len(frame) == 4
    assert frame["health"].tolist() == [r["health"] for r in history]
    # partial_fit goes on counting; the loss curve is a new list, not the old one grown
    curve = clf.loss_curve_
    clf.partial_fit(X, Y3)
    assert [r["epoch"] for r in clf.history_] == [1, 2, 3, 4, 5] and len(curve) == 4
    assert clf.history_[-1]["valid_loss"] is None and clf.n_iter_ == 5


def test_without_validation_the_record_has_none(quiet):
    clf = MLPClassifier(max_iter=2, **KW).fit(X, Y)
    assert clf.history_[0]["valid_loss"] is None and clf.history_[0]["valid_score"] is None
    assert clf.validation_loss_curve_ is None and clf.best_epoch_ is None


def test_validation_loss_is_the_objective_on_the_validation_set(quiet):
    reg = MLPRegressor(max_iter=3, alpha=0.01, dtype=np.float64, **KW)
    reg.fit(X, X[:, 0], X_val=X_VAL, y_val=X_VAL[:, 0])
    residual = reg.predict(X_VAL) - X_VAL[:, 0]
    penalty = 0.5 * 0.01 * sum((W ** 2).sum() for W in reg.coefs_)
    assert reg.history_[-1]["valid_loss"] == pytest.approx(0.5 * np.mean(residual ** 2)
                                                           + penalty, rel=1e-12)


# ---------------------------------------------------------------- validation set and scoring


def test_early_stopping_watches_the_given_validation_set(epochs, quiet):
    clf = MLPClassifier(max_iter=300, early_stopping=True, n_iter_no_change=3, tol=0.0, **KW)
    clf.fit(X, Y3, X_val=X_VAL, y_val=Y3_VAL)
    assert all(len(rows) == len(X) for _, rows in epochs)  # nothing held out of X
    best = int(np.argmax(clf.validation_scores_)) + 1
    assert clf.best_epoch_ == best and clf.n_iter_ == best + 3
    np.testing.assert_array_equal(clf._params, epochs[best - 1][0])
    assert clf.score(X_VAL, Y3_VAL) == clf.best_validation_score_


def test_scoring_loss_stops_after_look_ahead_and_restores_that_epoch(epochs, quiet):
    clf = MLPClassifier(max_iter=400, early_stopping=True, scoring="loss", n_iter_no_change=4,
                        tol=0.0, validation_fraction=0.25, **dict(KW, learning_rate_init=0.05))
    clf.fit(X, Y3)
    losses = clf.validation_loss_curve_
    best = int(np.argmin(losses)) + 1
    assert clf.n_iter_ == best + 4 < 400 and clf.best_epoch_ == best
    assert min(losses[best:]) >= losses[best - 1]
    np.testing.assert_array_equal(clf._params, epochs[best - 1][0])  # bit for bit
    assert clf.validation_scores_ == [-loss for loss in losses]
    assert clf.best_validation_score_ == -losses[best - 1]


@pytest.mark.parametrize("scoring", ["f1_macro", get_scorer("f1_macro")])
def test_a_scorer_gives_the_validation_scores(scoring, epochs, quiet):
    clf = MLPClassifier(max_iter=3, scoring=scoring, **KW)
    clf.fit(X, Y3, X_val=X_VAL, y_val=Y3_VAL)
    for score, (params, _) in zip(clf.validation_scores_, epochs):
        clf._params[...] = params
        assert score == f1_score(Y3_VAL, clf.predict(X_VAL), average="macro")


def test_plateau_watches_the_validation_loss(quiet):
    clf = MLPClassifier(max_iter=300, early_stopping=True, scoring="loss", tol=0.0,
                        learning_rate="plateau", n_iter_no_change=2,
                        **dict(KW, learning_rate_init=0.2))
    clf.fit(X, Y3, X_val=X_VAL, y_val=Y3_VAL)
    rates = [r["learning_rate"] for r in clf.history_]
    assert rates[0] == 0.2 and min(rates) < 0.2
    # the rate halves n_iter_no_change epochs after the validation loss last improved
    first_halving = rates.index(0.1)
    losses = clf.validation_loss_curve_[:first_halving]
    assert int(np.argmin(losses)) == first_halving - 3


def test_validation_set_refusals():
    with pytest.raises(ValueError, match="X_val and y_val"):
        MLPClassifier(**KW).fit(X, Y, X_val=X_VAL)
    with pytest.raises(ValueError, match="features"):
        MLPClassifier(**KW).fit(X, Y, X_val=X_VAL[:, :3], y_val=Y3_VAL)
    with pytest.raises(ValueError, match="not among the classes"):
        MLPClassifier(**KW).fit(X, Y, X_val=X_VAL, y_val=Y3_VAL)
    with pytest.raises(ValueError, match="scoring"):
        MLPClassifier(scoring="no such scorer", **KW).fit(X, Y, X_val=X_VAL, y_val=Y3_VAL % 2)


# ---------------------------------------------------------------- class weights


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_balanced_class_weight_is_balanced_sample_weight(solver, quiet):
    kw = dict(KW, max_iter=3, solver=solver)
    weighted = MLPClassifier(class_weight="balanced", **kw).fit(X, Y3)
    explicit = MLPClassifier(**kw).fit(X, Y3, sample_weight=compute_sample_weight("balanced", Y3))
    np.testing.assert_array_equal(weighted._params, explicit._params)
    assert weighted.loss_curve_ == explicit.loss_curve_


def test_class_weight_dict_multiplies_sample_weight(quiet):
    weights = rng.rand(len(X)) + 0.5
    kw = dict(KW, max_iter=2)
    a = MLPClassifier(class_weight={0: 1.0, 1: 3.0, 2: 0.5}, **kw).fit(X, Y3,
                                                                     sample_weight=weights)
    combined = weights * np.array([1.0, 3.0, 0.5])[Y3]
    b = MLPClassifier(**kw).fit(X, Y3, sample_weight=combined)
    np.testing.assert_array_equal(a._params, b._params)
    # partial_fit takes a dict, as SGDClassifier does
    c = MLPClassifier(class_weight={0: 1.0, 1: 3.0, 2: 0.5}, **kw)
    c.partial_fit(X, Y3, classes=[0, 1, 2])
    d = MLPClassifier(**kw).partial_fit(X, Y3, classes=[0, 1, 2],
                                        sample_weight=np.array([1.0, 3.0, 0.5])[Y3])
    np.testing.assert_array_equal(c._params, d._params)


def test_class_weight_multilabel(quiet):
    Y2 = np.column_stack([Y, Y3 == 2]).astype(int)
    kw = dict(KW, max_iter=2)
    balanced = MLPClassifier(class_weight="balanced", **kw).fit(X, Y2)
    explicit = MLPClassifier(**kw).fit(X, Y2, sample_weight=compute_sample_weight("balanced",
                                                                                  Y2))
    np.testing.assert_array_equal(balanced._params, explicit._params)
    per_label = [{0: 1.0, 1: 2.0}, {0: 1.0, 1: 4.0}]
    listed = MLPClassifier(class_weight=per_label, **kw).fit(X, Y2)
    explicit = MLPClassifier(**kw).fit(X, Y2, sample_weight=compute_sample_weight(per_label, Y2))
    np.testing.assert_array_equal(listed._params, explicit._params)
    with pytest.raises(ValueError, match="multilabel y takes"):
        MLPClassifier(class_weight={0: 1.0, 1: 2.0}, **kw).fit(X, Y2)


def test_class_weight_refusals():
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        MLPClassifier(class_weight="balanced", **KW).partial_fit(X, Y, classes=[0, 1])
    with pytest.raises(ValueError, match="class labels"):
        MLPRegressor(class_weight="balanced", **KW).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="heavy", **KW).fit(X, Y)


# ---------------------------------------------------------------- callbacks


def test_callbacks_see_the_model_in_training(quiet):
    spy = Spy()
    clf = MLPClassifier(max_iter=3, callbacks=[spy], **KW).fit(X, Y)
    assert spy.calls == ["begin", 1, 2, 3, "end"]
    assert spy.n_iter == 3 and spy.history == list(clf.history_)
    np.testing.assert_array_equal(spy.proba, clf.predict_proba(X[:3]))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_callback_stops_training_at_its_epoch(early_stopping, epochs):
    clf = MLPClassifier(max_iter=100, callbacks=[StopAt(5)], early_stopping=early_stopping,
                        tol=0.0, n_iter_no_change=100, **KW)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopped, not max_iter
        clf.fit(X, Y3)
    assert clf.n_iter_ == len(clf.history_) == len(epochs) == 5
    kept = clf.best_epoch_ if early_stopping else 5
    np.testing.assert_array_equal(clf._params, epochs[kept - 1][0])


def test_callbacks_are_cloned_pickled_and_saved(tmp_path, quiet):
    logger = LearningRateLogger()
    clf = MLPClassifier(max_iter=3, callbacks=[logger, ProgressBar(use_tqdm=False),
                                               Checkpoint(tmp_path / "best.fmlp")], **KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, Y, X_val=X_VAL, y_val=Y3_VAL % 2)
    assert logger.learning_rates_ == [0.01] * 3
    copy = clone(clf)
    assert [type(c) for c in copy.callbacks] == [type(c) for c in clf.callbacks]
    assert copy.callbacks[0] is not logger
    for other in (pickle.loads(pickle.dumps(clf)), via_file(clf, tmp_path)):
        assert [repr(c) for c in other.callbacks] == [repr(c) for c in clf.callbacks]
        assert numeric(other.history_) == numeric(clf.history_)
        assert other.validation_loss_curve_ == clf.validation_loss_curve_
        np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    # a callback of the user's own cannot go into a file of arrays and JSON
    clf.set_params(callbacks=[StopAt(2)])
    with pytest.raises(TypeError, match="own callbacks"):
        fastmlp.save(clf, tmp_path / "other.fmlp")


def via_file(model, tmp_path):
    fastmlp.save(model, tmp_path / "model.fmlp")
    return fastmlp.load(tmp_path / "model.fmlp")


@pytest.mark.parametrize("monitor", [None, "valid_score", "train_loss"])
def test_checkpoint_writes_the_best_epoch(monitor, tmp_path, epochs, quiet):
    path = tmp_path / "best.fmlp"
    checkpoint = Checkpoint(path, monitor=monitor)
    clf = MLPClassifier(max_iter=8, callbacks=[checkpoint], **dict(KW, learning_rate_init=0.1))
    clf.fit(X, Y3, X_val=X_VAL, y_val=Y3_VAL)
    key = monitor or "valid_loss"
    values = [r[key] for r in clf.history_]
    best = (int(np.argmax(values)) if key == "valid_score" else int(np.argmin(values))) + 1
    assert checkpoint.best_epoch_ == best and checkpoint.best_ == values[best - 1]
    saved = fastmlp.load(path)
    assert saved.n_iter_ == best and numeric(saved.history_) == numeric(clf.history_[:best])
    np.testing.assert_array_equal(saved._params, epochs[best - 1][0])


def test_progress_bar_plain_lines_and_tqdm(monkeypatch, quiet):
    out = io.StringIO()
    MLPClassifier(max_iter=2, callbacks=[ProgressBar(use_tqdm=False, file=out)], **KW).fit(X, Y)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2: train loss")
    pytest.importorskip("tqdm")
    bar = io.StringIO()
    MLPClassifier(max_iter=2, callbacks=[ProgressBar(use_tqdm=True, file=bar)], **KW).fit(X, Y)
    assert "2/2" in bar.getvalue() and "train_loss" in bar.getvalue()
    # within a long epoch: progress at stretch boundaries (here every C call, every 0 s; a
    # call trains at least two batches, fastmlp/threads.py)
    monkeypatch.setattr(fastmlp.threads, "ALONE_SECONDS", 1e-9)
    out = io.StringIO()
    MLPClassifier(max_iter=1, batch_size=40, callbacks=[ProgressBar(use_tqdm=False, every=0.0,
                                                                    file=out)], **KW).fit(X, Y)
    assert out.getvalue().splitlines()[:2] == ["Epoch 1: 67% (80/120 rows)",
                                               "Epoch 1: 100% (120/120 rows)"]


def test_verbose_two_adds_threads(capsys, quiet):
    MLPClassifier(max_iter=2, verbose=2, **KW).fit(X, Y3, X_val=X_VAL, y_val=Y3_VAL)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "valid loss" in lines[0] and "valid score" in lines[0]
    assert lines[0].endswith("1 thread")


# ---------------------------------------------------------------- Ctrl-C and failures


@pytest.fixture(autouse=True)
def ctrl_c_reaches_python():
    """Python's own SIGINT handler for each test, as in a terminal. A shell starts background
    jobs with SIGINT ignored, and Python then keeps it ignored: a suite run with `&` saw
    os.kill(SIGINT) do nothing ("DID NOT RAISE KeyboardInterrupt"), as it should, since fit
    leaves a user's own SIGINT disposition alone (training.Interrupt)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class CtrlCAt:
    """Sends SIGINT at the stretch end where `when(estimator, rows_done)` first holds."""

    def __init__(self, when):
        self.when, self.sent = when, False

    def on_stretch_end(self, estimator, rows_done, n_rows):
        if not self.sent and self.when(estimator, rows_done):
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_within_an_epoch_keeps_its_finished_batches(monkeypatch, epochs):
    # two batches per C call: the least a time-bounded call trains (fastmlp/threads.py)
    monkeypatch.setattr(fastmlp.threads, "ALONE_SECONDS", 1e-9)
    ctrl_c = CtrlCAt(lambda estimator, rows: len(estimator.history_) == 2 and rows == 80)
    clf = MLPClassifier(max_iter=50, batch_size=20, callbacks=[ctrl_c], **KW)
    with pytest.warns(UserWarning, match="last finished mini-batch"), \
            pytest.raises(KeyboardInterrupt):
        clf.fit(X, Y)
    # the history holds the complete epochs; the parameters, the state and t_ are those
    # after the 4th of epoch 3's 6 batches, with nothing copied to go back to
    assert clf.n_iter_ == len(clf.history_) == len(clf.loss_curve_) == 2
    assert len(epochs) == 2 * 3 + 2
    np.testing.assert_array_equal(clf._params, epochs[7][0])
    # the updates made, and the samples of the complete epochs (scikit-learn's t_)
    assert clf._n_updates == 2 * 6 + 4 and clf.t_ == 2 * len(X)
    assert clf.predict(X).shape == Y.shape
    # and it trains on from there: the same bits as the same 16 updates, then one epoch,
    # trained without the interrupt
    resumed = clf.partial_fit(X, Y)
    assert resumed.n_iter_ == 3 and resumed._n_updates == 16 + 6 and resumed.t_ == 3 * len(X)
    assert np.isfinite(resumed._params).all()


def test_ctrl_c_in_the_first_epoch_or_in_partial_fit_changes_nothing(monkeypatch, quiet):
    """No epoch of the call completed: the estimator is bitwise as before the call."""
    monkeypatch.setattr(fastmlp.threads, "ALONE_SECONDS", 1e-9)
    ctrl_c = CtrlCAt(lambda estimator, rows: rows == 40)
    fresh = MLPClassifier(max_iter=5, batch_size=20, callbacks=[ctrl_c], **KW)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, Y)
    assert not hasattr(fresh, "n_iter_") and not hasattr(fresh, "_params")
    clf = MLPClassifier(max_iter=2, batch_size=20, **KW).fit(X, Y)
    params, state, t = clf._params, clf._state.copy(), clf.t_
    kept = params.copy()
    clf.set_params(callbacks=[CtrlCAt(lambda estimator, rows: rows == 40)])
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, Y)
    assert clf._params is params and clf.t_ == t and clf.n_iter_ == 2
    np.testing.assert_array_equal(params, kept)  # the published buffer was only read
    np.testing.assert_array_equal(clf._state, state)


def test_ctrl_c_after_a_diverged_batch_raises_and_keeps_the_model(monkeypatch, quiet):
    """The interrupted epoch's batches are checked as a finished epoch is: a non-finite
    parameter after them refuses the call, and the estimator stays as it was."""
    monkeypatch.setattr(fastmlp.threads, "ALONE_SECONDS", 1e-9)
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.01,
                       batch_size=20, max_iter=1, random_state=0, n_threads=1).fit(X, X[:, 0])
    params = reg._params.copy()
    reg.set_params(learning_rate_init=1e35, warm_start=True, max_iter=3,
                   callbacks=[CtrlCAt(lambda estimator, rows: rows == 40)])
    with pytest.raises(ValueError, match="diverged"):
        reg.fit(X * 1e5, X[:, 0] * 1e5)
    np.testing.assert_array_equal(reg._params, params)
    assert reg.n_iter_ == 1


def test_sigint_mid_fit_in_a_subprocess_leaves_a_usable_model():
    script = textwrap.dedent("""
        import signal
        # as in a terminal, whatever the suite inherited (ctrl_c_reaches_python)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import numpy as np
        from fastmlp import MLPClassifier
        rng = np.random.RandomState(0)
        X = rng.randn(3000, 20).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)

        class Ready:
            def on_epoch_end(self, estimator, record):
                if record["epoch"] == 2:
                    print("ready", flush=True)

        clf = MLPClassifier((64, 64), max_iter=10000, tol=0, n_iter_no_change=10**6,
                            random_state=0, n_threads=1, callbacks=[Ready()])
        try:
            clf.fit(X, y)
        except KeyboardInterrupt:
            proba = clf.predict_proba(X[:50])
            assert np.allclose(proba.sum(axis=1), 1) and np.isfinite(clf._params).all()
            print("interrupted", clf.n_iter_, len(clf.history_), len(clf.loss_curve_),
                  flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    word, n_iter, n_history, n_curve = out.split()
    assert word == "interrupted" and int(n_iter) == int(n_history) == int(n_curve) >= 2
    assert "training was interrupted" in err


def test_an_infinite_look_ahead_trains_to_max_iter():
    """n_iter_no_change=numpy.inf (scikit-learn's value for never stopping on tol)."""
    from sklearn import config_context
    clf = MLPClassifier(max_iter=4, n_iter_no_change=np.inf, tol=1e9, early_stopping=True,
                        **KW)
    with config_context(skip_parameter_validation=True), \
            pytest.warns(ConvergenceWarning):
        clf.fit(X, Y3)
    assert clf.n_iter_ == 4 and clf.best_epoch_ is not None
