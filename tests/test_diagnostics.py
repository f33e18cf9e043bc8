"""overfit_check (the lecture's "overfit 50 examples" check, with its list of what to investigate
when a network does not learn) and check_gradients on a sample of parameters. Each test
sabotages a model one way and checks that the report names that cause; a healthy model passes."""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from fastmlp import MLPClassifier, MLPRegressor, Network, check_gradients, overfit_check
from fastmlp.diagnostics import REPORTED_FRACTION, OverfitReport, _layer_outputs

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)


def warm_model(hidden, activation="relu", **params):
    """A fitted model with warm_start=True: a later fit starts from its weights, which a test
    may then sabotage in place."""
    model = MLPClassifier(hidden, activation=activation, warm_start=True, max_iter=1,
                          random_state=0, n_threads=1, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_DIGITS[:200], Y_DIGITS[:200])


def test_a_healthy_classifier_passes_and_is_left_unchanged():
    model = MLPClassifier((32,), learning_rate_init=0.01, random_state=0, n_threads=1)
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=200)
    assert isinstance(report, OverfitReport)
    assert report.passed and report.fitted and report.findings == []
    assert 1 <= report.epochs < 200 and report.epochs == len(report.loss_curve)
    assert report.training_score == 1.0 and report.final_loss == report.loss_curve[-1]
    assert report.n_samples == 50 and len(report.initial_health) == 2
    hidden, output = report.initial_health
    assert hidden["dead"] == 0.0 and hidden["saturated"] is None and hidden["grad_norm"] > 0
    assert output["dead"] is None and output["mean_activation"] is None
    text = str(report)
    assert text.startswith("overfit_check on 50 examples: PASSED, fitted in")
    assert "No findings" in text
    assert not hasattr(model, "coefs_")  # a clone trained, not the estimator


def test_a_healthy_regressor_passes_at_99_percent_of_the_variance():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    y = np.sin(X).sum(axis=1)
    model = MLPRegressor((32,), learning_rate_init=0.01, random_state=0, n_threads=1)
    report = overfit_check(model, X, y, n_samples=40, random_state=1, max_epochs=400)
    assert report.passed and report.findings == []
    assert report.training_score >= 0.99
    assert "variance explained" in str(report)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_huge_initial_weights_are_named_as_saturated_units(activation):
    model = warm_model((16,), activation)
    model.coefs_[0][...] *= 100  # the weights warm_start will start from
    before = model.coefs_[0].copy()
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=30)
    assert "saturated_units" in report.causes
    finding = report.findings[report.causes.index("saturated_units")]
    assert finding.data["layers"][1] >= 0.75
    assert report.initial_health[0]["saturated"] == finding.data["layers"][1]
    assert f"layer 1: {finding.data['layers'][1]:.0%}" in finding.fact
    assert "Glorot" in finding.remedy
    assert np.array_equal(model.coefs_[0], before)  # the estimator is not changed


def test_a_zeroed_layer_is_named_as_dead_units_and_zero_gradients():
    model = warm_model((16, 16))
    model.coefs_[1][...] = 0
    model.intercepts_[1][...] = 0
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=30)
    assert not report.passed
    assert report.causes[:2] == ["dead_units", "zero_gradients"]
    dead, zero = report.findings[:2]
    assert dead.data["layers"] == {2: 1.0}
    # a zero pre-activation passes no gradient through the relu: nothing below it learns; the
    # weights above it read inputs that are zero on every example, which are not counted
    assert zero.data["layers"] == {0: 1.0, 1: 1.0}
    assert report.initial_health[2]["zero_gradients"] == 0.0
    assert "coefs_[0]: 100%; coefs_[1]: 100%" in zero.fact


def test_unscaled_columns_are_named_only_without_normalization():
    X = X_DIGITS.copy()
    X[:, 20] *= 1000.0
    X[:, 43] *= 0.001
    model = MLPClassifier((16,), normalize=None, learning_rate_init=0.01, random_state=0,
                          n_threads=1)
    report = overfit_check(model, X, Y_DIGITS, random_state=0, max_epochs=30)
    assert "unscaled_inputs" in report.causes
    finding = report.findings[report.causes.index("unscaled_inputs")]
    assert (finding.data["widest"], finding.data["narrowest"]) == (20, 43)
    assert finding.data["ratio"] > 1e5 and "normalize='auto'" in finding.remedy
    standardized = overfit_check(model.set_params(normalize="auto"), X, Y_DIGITS,
                                 random_state=0, max_epochs=200)
    assert standardized.passed and standardized.findings == []


def test_a_learning_rate_of_10_is_named_and_a_tenth_of_it_fits():
    model = MLPClassifier((16,), solver="sgd", learning_rate_init=10.0, random_state=0,
                          n_threads=1)
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=100)
    assert not report.passed
    assert report.causes == ["learning_rate_too_large"]
    finding = report.findings[0]
    assert finding.data["retry_rate"] == 1.0
    assert finding.data["retry_epochs"] is not None
    assert "diverged" in finding.fact and "at a tenth of the rate (1) it fits in" in finding.fact


def test_a_broken_gradient_is_named_even_when_the_fit_succeeds(monkeypatch):
    right = Network._batch_gradient

    def wrong(self, *args, **kwargs):
        loss, gradient = right(self, *args, **kwargs)
        return loss, gradient * 1.5  # a backward pass off by half

    monkeypatch.setattr(Network, "_batch_gradient", wrong)
    model = MLPClassifier((8,), learning_rate_init=0.01, random_state=0, n_threads=1)
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=200)
    assert report.fitted and not report.passed  # the C training itself was not broken
    assert report.causes == ["wrong_gradients"]
    finding = report.findings[0]
    assert 0.15 < finding.data["max_error"] < 0.25  # |1.5 g - g| / (2.5 |g|) = 0.2
    assert "FAILED" in str(report)


def test_one_hidden_unit_for_ten_classes_is_named_too_little_capacity():
    model = MLPClassifier((1,), activation="tanh", learning_rate_init=0.1, random_state=0,
                          n_threads=1)
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=200)
    assert not report.fitted and report.epochs == 200
    assert report.causes == ["too_little_capacity"]
    assert report.findings[0].data["hidden_layer_sizes"] == [1]
    assert "more hidden units" in report.findings[0].remedy


def test_a_loss_still_falling_at_the_end_of_the_budget_is_named_not_converged():
    model = MLPClassifier((16,), solver="sgd", momentum=0.0, learning_rate_init=1e-3,
                          random_state=0, n_threads=1)
    report = overfit_check(model, X_DIGITS, Y_DIGITS, random_state=0, max_epochs=20)
    assert report.causes == ["not_converged"] and report.epochs == 20


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
def test_the_hidden_outputs_match_the_c_forward_pass(activation):
    """The numpy forward pass that measures the hidden layers at initialization, finished by
    the output layer, gives the C prediction."""
    model = MLPClassifier((12, 7), activation=activation, max_iter=3, random_state=0,
                          n_threads=1, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_DIGITS[:100], Y_DIGITS[:100])
    h = _layer_outputs(model, X_DIGITS[100:150])
    assert [a.shape[1] for a in h] == [64, 12, 7]
    logits = h[-1] @ model.coefs_[-1] + model.intercepts_[-1]
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, model.predict_proba(X_DIGITS[100:150]), atol=1e-10)


def test_the_hidden_outputs_with_batch_norm_match_the_c_training_loss():
    """With batch norm the hidden outputs are those of training mode (batch statistics): the
    numpy forward pass finished by softmax cross-entropy gives the C training loss."""
    model = MLPClassifier((12, 7), batch_norm=True, alpha=0.0, max_iter=3, random_state=0,
                          n_threads=1, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_DIGITS[:100], Y_DIGITS[:100])
    rows, labels = X_DIGITS[100:150], Y_DIGITS[100:150]
    logits = _layer_outputs(model, rows)[-1] @ model.coefs_[-1] + model.intercepts_[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_proba = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss, _ = model._batch_gradient(rows, labels)
    np.testing.assert_allclose(-log_proba[np.arange(50), labels].mean(), loss, rtol=1e-10)


def test_check_gradients_on_a_sample_of_parameters():
    rng = np.random.RandomState(0)
    X, y = rng.randn(15, 3), rng.randint(0, 3, 15)
    model = MLPClassifier((4,), activation="tanh", dtype=np.float64, max_iter=1,
                          random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    full_max, full = check_gradients(model, X, y)
    some = np.array([0, 5, full.size - 1])
    sample_max, sample = check_gradients(model, X, y, indices=some)
    np.testing.assert_array_equal(sample, full[some])
    assert sample_max <= full_max < 1e-6
    with pytest.raises(ValueError, match="positions in the trainable part"):
        check_gradients(model, X, y, indices=[full.size])


def test_bad_arguments_are_refused_clearly():
    model = MLPClassifier((4,))
    with pytest.raises(TypeError, match="fastmlp estimator"):
        overfit_check(LogisticRegression(), X_DIGITS, Y_DIGITS)
    with pytest.raises(ValueError, match="more than the 30 rows"):
        overfit_check(model, X_DIGITS[:30], Y_DIGITS[:30])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            overfit_check(model, X_DIGITS, Y_DIGITS, n_samples=bad)
    with pytest.raises(ValueError, match="max_epochs must be a positive integer"):
        overfit_check(model, X_DIGITS, Y_DIGITS, max_epochs=0)
    with pytest.raises(ValueError, match="constant"):
        overfit_check(MLPRegressor((4,)), X_DIGITS[:60], np.ones(60))


@pytest.mark.parametrize("case", ["sparse", "dataframe", "batch_norm", "float64", "multilabel",
                                  "large batch"])
def test_healthy_models_pass_on_every_kind_of_input(case):
    X, y = X_DIGITS, Y_DIGITS
    params = dict(learning_rate_init=0.01, random_state=0, n_threads=1)
    if case == "sparse":
        X = sp.csr_matrix(X)
    elif case == "dataframe":
        X = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    elif case == "batch_norm":
        params["batch_norm"] = True
    elif case == "float64":
        params["dtype"] = np.float64
    elif case == "multilabel":
        y = np.column_stack([y % 2, y >= 5, y == 0]).astype(int)
    else:
        params["batch_size"] = 500  # more than the 50 rows: no warning every epoch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = overfit_check(MLPClassifier((32,), **params), X, y, random_state=0,
                               max_epochs=300)
    assert report.passed and report.findings == [], str(report)
    if case == "batch_norm":
        assert report.initial_health[0]["dead"] < REPORTED_FRACTION


def test_a_regressor_whose_rate_diverges_is_named_and_a_tenth_of_it_fits():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    y = np.sin(X).sum(axis=1)
    model = MLPRegressor((32,), solver="sgd", learning_rate_init=1.0, random_state=0,
                         n_threads=1)
    report = overfit_check(model, X, y, n_samples=40, random_state=1, max_epochs=400)
    assert report.causes == ["learning_rate_too_large"] and not report.passed
    assert report.findings[0].data["retry_epochs"] is not None
    assert "variance explained" in str(report)
