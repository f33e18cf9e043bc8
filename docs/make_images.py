"""Make the user guide's pictures of a training run, docs/images/training_curve.png and
docs/images/layer_health.png, from a real fit on scikit-learn's digits.

    PYTHONPATH=src python docs/make_images.py

The run goes epoch by epoch so that it can record what the pictures show, in the structure of
`history_` records and of their "health" key: plain SGD (no optimizer state, so a
warm-started one-epoch fit continues training exactly) whose rate is halved when the
validation loss has not improved by 2% for 3 epochs; layer health measured on the training rows
after every epoch (fastmlp.diagnostics._layer_health, in numpy)."""
import os
import tempfile
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fastmlp import LayerHealthDisplay, MLPClassifier, TrainingCurveDisplay  # noqa: E402
from fastmlp.diagnostics import _layer_health  # noqa: E402

IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")
EPOCHS, PATIENCE = 40, 3


def digits_records():
    X, y = load_digits(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.25,
                                                          random_state=0, stratify=y)
    # float64: log_loss wants probabilities that sum to 1 to float64 precision
    model = MLPClassifier((64, 32), solver="sgd", momentum=0.0, learning_rate_init=0.2,
                          max_iter=1, warm_start=True, random_state=0, dtype=np.float64,
                          n_threads=1)
    records, previous = [], None
    rate, best, waited = 0.2, float("inf"), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch per fit, on purpose
        for epoch in range(1, EPOCHS + 1):
            model.set_params(learning_rate_init=rate).fit(X_train, y_train)
            valid_loss = log_loss(y_valid, model.predict_proba(X_valid), labels=model.classes_)
            health, _ = _layer_health(model, X_train, X_train, y_train, previous)
            previous = [W.copy() for W in model.coefs_]
            records.append({"epoch": epoch, "train_loss": model.loss_, "valid_loss": valid_loss,
                            "valid_score": model.score(X_valid, y_valid),
                            "learning_rate": rate, "health": health})
            improved = valid_loss < 0.98 * best
            best, waited = min(best, valid_loss), 0 if improved else waited + 1
            if waited == PATIENCE:
                rate, waited = rate / 2, 0
    return records


def save(figure, name):
    """Write the PNG atomically: a temporary file in the same folder, then os.replace."""
    os.makedirs(IMAGES, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=IMAGES)
    try:
        with os.fdopen(handle, "wb") as file:
            figure.savefig(file, format="png", dpi=100)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; an image is for everyone
        os.replace(temporary, os.path.join(IMAGES, name))
    except BaseException:
        os.unlink(temporary)
        raise
    print(os.path.join(IMAGES, name))


def main():
    records = digits_records()
    figure, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    TrainingCurveDisplay.from_history(records, ax=ax, name="digits, 64-32 relu, SGD")
    save(figure, "training_curve.png")
    display = LayerHealthDisplay.from_history(records,
                                              metrics=("dead", "grad_norm", "update_ratio"),
                                              name="digits, 64-32 relu, SGD: layer health")
    save(display.figure_, "layer_health.png")


if __name__ == "__main__":
    main()
