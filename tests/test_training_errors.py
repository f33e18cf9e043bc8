"""Bad training hyperparameters and impossible validation splits: a ValueError that names the
parameter, raised before any epoch runs, leaving a fresh model unfitted and a fitted one as it
was, through fit, a warm-started fit and partial_fit alike."""
import numpy as np
import pytest

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, Network

rng = np.random.RandomState(0)
X = rng.randn(30, 3)
Y = rng.randint(0, 3, 30)
Y[:3] = [0, 1, 2]

BAD = [
    ({"solver": "newton-cg"}, "solver"),
    ({"solver": "Adam"}, "solver"),
    ({"learning_rate": "cyclic"}, "learning_rate"),
    ({"learning_rate": "cosine"}, "learning_rate"),
    ({"learning_rate_init": -0.01}, "learning_rate_init"),
    ({"learning_rate_init": 0.0}, "learning_rate_init"),
    ({"power_t": -0.5}, "power_t"),
    ({"momentum": -0.1}, "momentum"),
    ({"beta_1": -0.1}, "beta_1"),
    ({"beta_1": 1.0}, "beta_1"),
    ({"beta_2": 1.0}, "beta_2"),
    ({"rho": -0.5}, "rho"),
    ({"rho": 1.0}, "rho"),
    ({"epsilon": -1e-8}, "epsilon"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"alpha": -1e-4}, "alpha"),
    ({"tol": -1.0}, "tol"),
    ({"n_iter_no_change": 0}, "n_iter_no_change"),
    ({"n_iter_no_change": 2.5}, "n_iter_no_change"),
    ({"max_fun": 0}, "max_fun"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"validation_fraction": -0.2}, "validation_fraction"),
    ({"validation_fraction": 1.5}, "validation_fraction"),
    ({"early_stopping": "yes"}, "early_stopping"),
]


@pytest.fixture
def epochs(monkeypatch):
    """Counts the C epochs run."""
    seen = []
    original = fastmlp._core.train_epoch

    def spy(*args):
        seen.append(1)
        return original(*args)

    monkeypatch.setattr(fastmlp.network._core, "train_epoch", spy)
    return seen


def fitted_classifier():
    return MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0,
                         n_threads=1).fit(X, Y)


def assert_unchanged(model, before):
    params, attrs = before
    np.testing.assert_array_equal(model._params, params)
    assert model.n_iter_ == attrs["n_iter_"] and model.t_ == attrs["t_"]
    assert model.loss_curve_ == attrs["loss_curve_"]
    np.testing.assert_array_equal(model._state, attrs["_state"])
    assert np.shares_memory(model.coefs_[0], model._params)


def snapshot(model):
    return model._params.copy(), {k: (v.copy() if isinstance(v, np.ndarray) else
                                      list(v) if isinstance(v, list) else v)
                                   for k, v in vars(model).items()}


@pytest.mark.parametrize("params, name", BAD)
def test_bad_hyperparameter_fails_before_training(params, name, epochs):
    with pytest.raises(ValueError, match=name):
        MLPClassifier(**params).fit(X, Y)
    with pytest.raises(ValueError, match=name):
        MLPClassifier(**params).partial_fit(X, Y, classes=[0, 1, 2])
    assert epochs == []


@pytest.mark.parametrize("params, name", BAD)
@pytest.mark.parametrize("method", ["fit", "warm fit", "partial_fit"])
def test_bad_hyperparameter_leaves_fitted_model_unchanged(params, name, method, quiet):
    model = fitted_classifier()
    before = snapshot(model)
    model.set_params(warm_start=method == "warm fit", **params)
    with pytest.raises(ValueError, match=name):
        if method == "partial_fit":
            model.partial_fit(X, Y)
        else:
            model.fit(X, Y)
    assert_unchanged(model, before)


@pytest.mark.parametrize("cls, X_few, y_few, fraction", [
    # 1 held-out row cannot hold one of each of 3 classes
    (MLPClassifier, X[:5], np.array([0, 1, 2, 0, 1]), 0.1),
    # a class with one sample cannot be split between the two sets
    (MLPClassifier, X[:10], np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2]), 0.5),
    # nothing left to train on
    (MLPRegressor, X[:1], np.array([0.5]), 0.5),
    (Network, X[:1], np.array([0.5]), 0.3),
])
def test_too_few_samples_for_validation_split(cls, X_few, y_few, fraction, epochs):
    model = cls(early_stopping=True, validation_fraction=fraction, n_threads=1)
    with pytest.raises(ValueError, match="validation_fraction"):
        model.fit(X_few, y_few)
    assert epochs == []
    assert not hasattr(model, "coefs_") and not hasattr(model, "n_iter_")


def test_failed_split_leaves_fitted_model_unchanged(epochs, quiet):
    model = fitted_classifier()
    before = snapshot(model)
    n_epochs = len(epochs)
    for warm_start in (False, True):
        model.set_params(early_stopping=True, validation_fraction=0.1, warm_start=warm_start)
        with pytest.raises(ValueError, match="could not hold out"):
            model.fit(X[:5], [0, 1, 2, 0, 1])
        assert_unchanged(model, before)
    assert len(epochs) == n_epochs
    # partial_fit never holds anything out, so early_stopping does not apply to it
    model.partial_fit(X[:5], [0, 1, 2, 0, 1])
    assert model.n_iter_ == before[1]["n_iter_"] + 1
