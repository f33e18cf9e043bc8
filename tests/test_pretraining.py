"""Greedy layer-wise pre-training: each hidden layer an autoencoder of the clean codes below,
the network fine-tuned from those weights, and unlabeled rows kept out of the supervised loss."""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from fastmlp import Autoencoder, MLPClassifier, MLPRegressor
from fastmlp.network import Network
from fastmlp.pretraining import DENOISING_MASK_FRACTION, pretrain_layers


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _data(n=60, d=8, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0, 1, (n, d))
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.5)
    return X, y


@pytest.fixture
def supervised_calls(monkeypatch):
    """Every (X, Y) that the supervised training of a network (not an autoencoder) is given,
    with the weights it starts from."""
    calls = []
    real = Network._epochs

    def spy(self, run, X, Y, *args, **kwargs):
        if not isinstance(self, Autoencoder):
            calls.append((np.array(X), np.array(Y), [W.copy() for W in run.model.coefs]))
        return real(self, run, X, Y, *args, **kwargs)

    monkeypatch.setattr(Network, "_epochs", spy)
    return calls


@pytest.fixture
def autoencoder_inputs(monkeypatch):
    """The rows every Autoencoder.fit is given, with the autoencoder."""
    calls = []
    real = Autoencoder.fit

    def spy(self, X, y=None, sample_weight=None):
        calls.append((self, np.array(X)))
        return real(self, X, y, sample_weight)

    monkeypatch.setattr(Autoencoder, "fit", spy)
    return calls


def test_unlabeled_rows_never_reach_the_supervised_loss(supervised_calls, autoencoder_inputs):
    X, y = _data()
    y_partial = y.copy()
    y_partial[::3] = -1
    extra = _data(20, seed=1)[0]
    clf = MLPClassifier((6,), pretrain="autoencoder", pretrain_epochs=2, max_iter=3,
                        random_state=0, n_threads=1).fit(X, y_partial, X_unlabeled=extra)
    labeled = y_partial != -1
    assert list(clf.classes_) == [0, 1, 2]
    (X_sup, Y_sup, _), = supervised_calls
    np.testing.assert_array_equal(X_sup, X[labeled])  # float64 X is read as it is
    np.testing.assert_array_equal(Y_sup.argmax(axis=1), y[labeled])
    # the pre-training saw every row: labeled, marked -1, and X_unlabeled
    (_, X_pre), = autoencoder_inputs
    np.testing.assert_array_equal(X_pre, np.vstack([X, extra]).astype(np.float32))


def test_fine_tuning_starts_from_the_pretrained_weights(supervised_calls):
    X, y = _data()
    clf = MLPClassifier((6, 4), pretrain="autoencoder", pretrain_epochs=2, max_iter=2,
                        random_state=0, n_threads=1)
    clf.fit(X, y)
    pretrained, autoencoders = pretrain_layers(clone(clf), X.astype(np.float32))
    (_, _, start), = supervised_calls
    for l, (W, _) in enumerate(pretrained.layers):
        np.testing.assert_array_equal(start[l], W)
    # the output layer from Glorot's initialization, as without pre-training
    plain = MLPClassifier((6, 4), max_iter=1, random_state=0).fit(X, y)
    assert start[2].shape == plain.coefs_[2].shape
    assert clf.pretrain_loss_ == [ae.loss_ for ae in autoencoders]
    assert len(clf.pretrain_loss_) == 2
    np.testing.assert_array_equal(clf._x_shift, autoencoders[0]._x_shift)


def test_denoising_corrupts_only_the_input_of_the_layer_being_trained(autoencoder_inputs):
    X, y = _data()
    MLPClassifier((6, 4), pretrain="denoising", pretrain_epochs=2, max_iter=2, random_state=0,
                  n_threads=1).fit(X, y)
    (first, X1), (second, X2) = autoencoder_inputs
    assert first.corruption == second.corruption == "mask"
    assert first.corruption_level == DENOISING_MASK_FRACTION
    np.testing.assert_array_equal(X1, X.astype(np.float32))
    # layer 2 learns from the clean codes of layer 1 (no noise in transform), and reads them
    # as they are (no standardization), as the fine-tuned network will
    np.testing.assert_array_equal(X2, first.transform(X))
    assert second.normalize is None and first.normalize == "auto"
    assert first.hidden_layer_sizes == (6,) and second.hidden_layer_sizes == (4,)


def test_pretraining_is_reproducible_and_differs_from_plain_training():
    X, y = _data()
    kwargs = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0, n_threads=1)
    a = MLPClassifier(pretrain="denoising", pretrain_epochs=2, **kwargs).fit(X, y)
    b = MLPClassifier(pretrain="denoising", pretrain_epochs=2, **kwargs).fit(X, y)
    plain = MLPClassifier(**kwargs).fit(X, y)
    np.testing.assert_array_equal(a._params, b._params)
    assert not np.array_equal(a._params, plain._params)


def test_regressor_pretrains_on_x_unlabeled(supervised_calls):
    X, _ = _data()
    target = X @ np.arange(X.shape[1])
    extra = _data(30, seed=2)[0]
    reg = MLPRegressor((5,), pretrain="autoencoder", pretrain_epochs=2, max_iter=3,
                       random_state=0, n_threads=1).fit(X, target, X_unlabeled=extra)
    (X_sup, _, _), = supervised_calls
    assert X_sup.shape == X.shape
    assert reg.predict(X).shape == (len(X),)


def test_without_pretraining_minus_one_is_a_class():
    X, y = _data()
    y = np.where(y == 0, -1, y)
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    assert -1 in clf.classes_


def test_bad_pretraining_input():
    X, y = _data()
    with pytest.raises(ValueError, match="X_unlabeled is only used by pre-training"):
        MLPClassifier((4,)).fit(X, y, X_unlabeled=X)
    with pytest.raises(ValueError, match="every row of y is -1"):
        MLPClassifier((4,), pretrain="autoencoder").fit(X, np.full(len(X), -1))
    with pytest.raises(ValueError, match="X_unlabeled has 3 features"):
        MLPClassifier((4,), pretrain="autoencoder").fit(X, y, X_unlabeled=X[:, :3])
    with pytest.raises(ValueError, match="pretrain"):
        MLPClassifier((4,), pretrain="rbm").fit(X, y)
    with pytest.raises(ValueError, match="pretrain_epochs"):
        MLPClassifier((4,), pretrain="autoencoder", pretrain_epochs=0).fit(X, y)
    with pytest.raises(ValueError, match="rows"):
        MLPClassifier((4,), pretrain="autoencoder").fit(X, y[:-1])
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    before = clf._params.copy()
    clf.set_params(pretrain="autoencoder")
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError):
        clf.fit(bad, y)
    np.testing.assert_array_equal(clf._params, before)
    assert not hasattr(clf, "pretrain_loss_")


def test_a_later_fit_without_pretraining_drops_pretrain_loss():
    X, y = _data()
    clf = MLPClassifier((4,), pretrain="autoencoder", pretrain_epochs=1, max_iter=1,
                        random_state=0).fit(X, y)
    assert len(clf.pretrain_loss_) == 1
    clf.set_params(pretrain=None).fit(X, y)
    assert not hasattr(clf, "pretrain_loss_")


def test_pretraining_keeps_the_validation_set_and_refuses_lbfgs():
    X, y = _data()
    clf = MLPClassifier((6,), pretrain="autoencoder", pretrain_epochs=2, max_iter=3,
                        random_state=0, n_threads=1)
    clf.fit(X[:40], y[:40], X_val=X[40:], y_val=y[40:], X_unlabeled=X[40:])
    assert len(clf.pretrain_loss_) == 1
    assert all(r["valid_loss"] is not None for r in clf.history_)
    with pytest.raises(ValueError, match="stochastic solver"):
        clone(clf).set_params(solver="lbfgs").fit(X, y)
