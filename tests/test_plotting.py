"""TrainingCurveDisplay and LayerHealthDisplay, drawn with the Agg backend: the tests check what
was drawn (the lines and their data, the labels, the markers), from the records of real fits
on digits built epoch by epoch in the structure of history_ (shared contract) and of its
"health" key."""
import io
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import log_loss

from fastmlp import LayerHealthDisplay, MLPClassifier, TrainingCurveDisplay
from fastmlp.diagnostics import _layer_health

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

X, Y = load_digits(return_X_y=True)
X_TRAIN, Y_TRAIN, X_VALID, Y_VALID = X[:300], Y[:300], X[1000:1200], Y[1000:1200]
HALVED_AT = (5, 9)  # the epochs that start at a halved rate


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def digits_run(activation="relu", n_epochs=12):
    """The records of a real run, epoch by epoch: plain SGD (no optimizer state, so a
    warm-started one-epoch fit continues training exactly) at a rate halved at HALVED_AT,
    with the validation loss and score and the layer health measured on the training rows."""
    # float64: log_loss wants probabilities that sum to 1 to float64 precision
    model = MLPClassifier((16, 8), activation=activation, solver="sgd", momentum=0.0,
                          learning_rate_init=0.2, max_iter=1, warm_start=True, random_state=0,
                          dtype=np.float64, n_threads=1)
    records, rate, previous = [], 0.2, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, n_epochs + 1):
            rate = rate / 2 if epoch in HALVED_AT else rate
            model.set_params(learning_rate_init=rate).fit(X_TRAIN, Y_TRAIN)
            health, _ = _layer_health(model, X_TRAIN, X_TRAIN, Y_TRAIN, previous)
            previous = [W.copy() for W in model.coefs_]
            records.append({
                "epoch": epoch, "train_loss": model.loss_,
                "valid_loss": log_loss(Y_VALID, model.predict_proba(X_VALID), labels=range(10)),
                "valid_score": model.score(X_VALID, Y_VALID), "learning_rate": rate,
                "seconds": 0.0, "samples_per_s": 0.0, "threads": 1, "health": health})
    return records


@pytest.fixture(scope="module")
def relu_run():
    return digits_run("relu")


def column(records, key):
    return [record[key] for record in records]


def test_training_curves_draw_the_losses_and_the_score_on_a_twin_axis(relu_run):
    display = TrainingCurveDisplay.from_history(relu_run)
    epochs = list(range(1, 13))
    np.testing.assert_array_equal(display.train_line_.get_xdata(), epochs)
    np.testing.assert_allclose(display.train_line_.get_ydata(), column(relu_run, "train_loss"))
    np.testing.assert_allclose(display.valid_line_.get_ydata(), column(relu_run, "valid_loss"))
    np.testing.assert_allclose(display.score_line_.get_ydata(),
                               column(relu_run, "valid_score"))
    assert display.train_line_.axes is display.ax_
    assert display.score_line_.axes is display.score_ax_ is not display.ax_
    assert display.score_ax_.get_shared_x_axes().joined(display.ax_, display.score_ax_)
    assert display.ax_.get_xlabel() == "epoch" and display.ax_.get_ylabel() == "loss"
    assert display.score_ax_.get_ylabel() == "validation score"
    assert display.figure_ is display.ax_.figure
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    best = int(np.argmax(column(relu_run, "valid_score"))) + 1
    assert legend == ["training loss", "validation loss", "validation score",
                      f"best epoch ({best})", "learning rate change"]


def test_the_best_epoch_and_every_learning_rate_change_are_marked(relu_run):
    display = TrainingCurveDisplay.from_history(relu_run, best_epoch=7)
    assert list(display.best_epoch_line_.get_xdata()) == [7, 7]
    assert display.best_epoch_line_.get_linestyle() == "--"
    marker = display.best_epoch_marker_
    assert marker.get_marker() == "o" and marker.axes is display.score_ax_
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (7, relu_run[6]["valid_score"])
    assert display.learning_rate_changes_ == [(5, 0.2, 0.1), (9, 0.1, 0.05)]
    assert [line.get_xdata()[0] for line in display.learning_rate_lines_] == list(HALVED_AT)
    notes = [text.get_text() for text in display.ax_.texts]
    assert notes == ["lr 0.1", "lr 0.05"]
    # by default the best epoch is that of the best validation score
    default = TrainingCurveDisplay.from_history(relu_run)
    assert default.best_epoch == int(np.argmax(column(relu_run, "valid_score"))) + 1


def test_a_history_without_validation_has_no_score_axis():
    model = MLPClassifier((16,), learning_rate_init=0.01, max_iter=15, random_state=0,
                          n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_TRAIN, Y_TRAIN)
    records = [{"epoch": e, "train_loss": loss, "valid_loss": None, "valid_score": None,
                "learning_rate": 0.01} for e, loss in enumerate(model.loss_curve_, 1)]
    display = TrainingCurveDisplay.from_history(records, name="no validation")
    np.testing.assert_allclose(display.train_line_.get_ydata(), model.loss_curve_)
    assert display.valid_line_ is None and display.score_line_ is None
    assert display.score_ax_ is None and len(display.figure_.axes) == 1
    assert display.learning_rate_changes_ == [] and display.learning_rate_lines_ == []
    assert display.best_epoch == int(np.argmin(model.loss_curve_)) + 1
    assert display.best_epoch_marker_.get_ydata()[0] == min(model.loss_curve_)
    assert display.best_epoch_marker_.axes is display.ax_
    assert display.ax_.get_legend().get_title().get_text() == "no validation"


def test_a_fit_with_early_stopping_draws_its_scores(relu_run):
    """Records built from a real fit's loss_curve_ and validation_scores_ (no valid_loss)."""
    model = MLPClassifier((16,), learning_rate_init=0.01, early_stopping=True, max_iter=20,
                          random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_TRAIN, Y_TRAIN)
    records = [{"epoch": e, "train_loss": loss, "valid_loss": None, "valid_score": score,
                "learning_rate": 0.01}
               for e, (loss, score) in enumerate(zip(model.loss_curve_,
                                                     model.validation_scores_), 1)]
    display = TrainingCurveDisplay.from_history(records)
    assert display.valid_line_ is None
    np.testing.assert_allclose(display.score_line_.get_ydata(), model.validation_scores_)
    assert display.best_epoch == int(np.argmax(model.validation_scores_)) + 1


def test_plot_draws_on_the_axes_given_and_again():
    records = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 6)]
    figure, (left, right) = plt.subplots(1, 2)
    display = TrainingCurveDisplay.from_history(records, ax=right)
    assert display.ax_ is right and display.figure_ is figure and not left.lines
    display.plot(ax=left, name="again")
    # the curve, the best epoch's line and its dot
    assert display.ax_ is left and len(left.lines) == 3
    assert display.ax_.get_legend().get_title().get_text() == "again"
    png = io.BytesIO()
    display.figure_.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")


def test_training_curves_from_a_fitted_estimators_history():
    model = MLPClassifier((16,), learning_rate_init=0.01, early_stopping=True, max_iter=20,
                          random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_TRAIN, Y_TRAIN)
    display = TrainingCurveDisplay.from_estimator(model)
    np.testing.assert_allclose(display.train_line_.get_ydata(), model.loss_curve_)
    np.testing.assert_allclose(display.valid_line_.get_ydata(), model.validation_loss_curve_)
    np.testing.assert_allclose(display.score_line_.get_ydata(), model.validation_scores_)
    assert display.best_epoch == model.best_epoch_
    assert display.ax_.get_legend().get_title().get_text() == "MLPClassifier"


def test_layer_health_from_a_real_fits_history():
    """What the C side counted while fitting is what the display draws."""
    model = MLPClassifier((16, 8), learning_rate_init=0.01, max_iter=5, random_state=0,
                          n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_TRAIN, Y_TRAIN)
    display = LayerHealthDisplay.from_estimator(model, metrics=("dead", "grad_norm",
                                                                "update_ratio"))
    assert list(display.axes_) == ["dead", "grad_norm", "update_ratio"]
    assert [line.layer for line in display.lines_["dead"]] == [1, 2]
    for metric in display.axes_:
        for line in display.lines_[metric]:
            expected = [record["health"][line.layer - 1][metric] for record in model.history_]
            np.testing.assert_allclose(line.get_ydata(), expected)
            np.testing.assert_array_equal(line.get_xdata(), range(1, 6))
    assert all(0 < y for line in display.lines_["grad_norm"] for y in line.get_ydata())
    assert display.figure_.get_suptitle() == "MLPClassifier"


def test_layer_health_of_an_lbfgs_fit_is_refused_clearly():
    model = MLPClassifier((8,), solver="lbfgs", max_iter=3, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_TRAIN, Y_TRAIN)
    assert all(record["health"] is None for record in model.history_)
    with pytest.raises(ValueError, match="health None.*not by 'lbfgs'"):
        LayerHealthDisplay.from_estimator(model)


def test_bad_histories_are_refused_clearly():
    with pytest.raises(ValueError, match="no epoch records"):
        TrainingCurveDisplay.from_history([])
    with pytest.raises(ValueError, match="epoch record 1 has no 'train_loss'"):
        TrainingCurveDisplay.from_history([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2}])
    with pytest.raises(TypeError, match="must be a dict"):
        TrainingCurveDisplay.from_history([1.0, 2.0])
    with pytest.raises(NotFittedError):
        TrainingCurveDisplay.from_estimator(MLPClassifier())
    with pytest.raises(NotFittedError):
        LayerHealthDisplay.from_estimator(MLPClassifier())


def test_layer_health_draws_dead_units_and_gradient_norms_per_layer(relu_run):
    display = LayerHealthDisplay.from_history(relu_run, name="relu")
    # relu units can be dead, not saturated: no saturation panel
    assert list(display.axes_) == ["dead", "grad_norm"]
    dead, norms = display.lines_["dead"], display.lines_["grad_norm"]
    assert [line.layer for line in dead] == [1, 2]  # the output layer's units are not relu
    assert [line.layer for line in norms] == [1, 2, 3]
    for line in dead + norms:
        metric = "dead" if line in dead else "grad_norm"
        expected = [record["health"][line.layer - 1][metric] for record in relu_run]
        np.testing.assert_allclose(line.get_ydata(), expected)
        np.testing.assert_array_equal(line.get_xdata(), range(1, 13))
        assert line.get_label() == f"layer {line.layer}"
        assert line.get_color() == f"C{line.layer - 1}"  # one colour per layer in every panel
    assert display.axes_["grad_norm"].get_yscale() == "log"
    assert display.axes_["dead"].get_yscale() == "linear"
    assert display.axes_["dead"].get_ylim() == (-0.02, 1.02)  # a fraction, whatever its values
    assert display.axes_["dead"].get_ylabel() == "dead units (fraction)"
    assert display.figure_.get_suptitle() == "relu"


def test_layer_health_draws_saturation_of_tanh_units_and_other_measures():
    records = digits_run("tanh", n_epochs=4)
    display = LayerHealthDisplay.from_history(
        records, metrics=("saturated", "dead", "update_ratio", "mean_activation"))
    assert list(display.axes_) == ["saturated", "update_ratio", "mean_activation"]
    saturated = display.lines_["saturated"]
    assert [line.layer for line in saturated] == [1, 2]
    np.testing.assert_allclose(saturated[0].get_ydata(),
                               [r["health"][0]["saturated"] for r in records])
    ratio = display.lines_["update_ratio"][0].get_ydata()
    # the first epoch has no update ratio (no weights before it), the others a positive one
    assert np.isnan(ratio[0]) and np.all(ratio[1:] > 0)


def test_layer_health_on_the_axes_given(relu_run):
    figure, axes = plt.subplots(2, 1)
    display = LayerHealthDisplay.from_history(relu_run, ax=axes)
    assert list(display.axes_.values()) == list(axes) and display.figure_ is figure
    with pytest.raises(ValueError, match="one Axes per measure drawn"):
        display.plot(ax=axes[:1])


def test_bad_health_records_are_refused_clearly(relu_run):
    with pytest.raises(ValueError, match="metrics must be some of"):
        LayerHealthDisplay.from_history(relu_run, metrics=("gradient",))
    with pytest.raises(ValueError, match="has no 'health'"):
        LayerHealthDisplay.from_history([{"epoch": 1, "train_loss": 1.0}])
    uneven = [relu_run[0], dict(relu_run[1], health=relu_run[1]["health"][:2])]
    with pytest.raises(ValueError, match="same number of layers"):
        LayerHealthDisplay.from_history(uneven)
    with pytest.raises(ValueError, match="applies to any layer"):
        LayerHealthDisplay.from_history(relu_run, metrics=("saturated",))
