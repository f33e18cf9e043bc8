"""The lecture's checks on an implementation and a model: gradients against finite differences
(`check_gradients`), and the small experiment to run before the full one, "make sure your code
can overfit 50 examples", with the list of what to investigate when it cannot (`overfit_check`)."""
import copy
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.utils import check_random_state, resample
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array

from .model import tied_partners
from .network import Network

# A tanh or sigmoid unit is saturated when its output is within SATURATION_MARGIN of a bound
# (±1; 0 or 1) on at least SATURATED_EXAMPLES of the examples: its derivative there is below
# 0.04 (tanh) or 0.02 (sigmoid), so it passes almost no gradient to the layers below.
SATURATION_MARGIN = 0.02
SATURATED_EXAMPLES = 0.95
# a layer is reported when at least this fraction of its units (or of its weights' gradient
# entries) is saturated, dead or exactly zero: a few such units are normal, this many are not
REPORTED_FRACTION = 0.1
# regression "fits" when the squared error left is at most this fraction of the targets' own
# variation: sum (f - y)^2 <= FIT_RESIDUAL * sum (y - mean y)^2, pooled over the outputs
FIT_RESIDUAL = 0.01
# inputs "of wildly different scales": the largest column std over the smallest non-zero one
SCALE_RATIO = 100.0
# the loss oscillates when at least OSCILLATING_EPOCHS of the epochs end RISE above the epoch
# before; it plateaus when the last quarter of the epochs made under PLATEAU of its whole fall
RISE, OSCILLATING_EPOCHS, PLATEAU = 0.1, 0.2, 0.05
# gradients disagree when at least two checked parameters have a relative error above this
# (a relu kink crossed by eps can make one parameter disagree on a correct implementation)
GRADIENT_TOLERANCE = 1e-3
GRADIENTS_CHECKED_PER_BLOCK = 12
# fastmlp has no public "initialize, don't train": one epoch at this rate leaves every
# non-zero weight as it was (a step of 1e-38 times the update direction, which is unit-sized
# for adam, adagrad and rmsprop and the gradient for sgd, is far below half an ulp of it);
# parameters at exactly zero, such as the initial biases, move to about +-1e-38
FROZEN_RATE = float(np.finfo(np.float32).tiny)


def check_gradients(estimator, X, y, sample_weight=None, eps=1e-6, seed=0, t=1, floor=1e-3,
                    indices=None):
    """Compare the C backward pass with central finite differences of the C forward pass.

    For each trainable parameter p: ``(J(p + eps) - J(p - eps)) / (2 eps)`` against dJ/dp, on
    one batch made of all rows of (X, y), in training mode (batch statistics; dropout with the
    fixed mask keyed by (seed, t)). J includes the L2 term. The relative error of a parameter is
    ``|analytic - numeric| / max(|analytic| + |numeric|, floor)``. The floor is there because J
    itself carries float64 rounding of about ``1e-16 abs(J)``, so central differences resolve a
    gradient only to ~1e-10 absolute at eps = 1e-6: a component much smaller than `floor` is
    judged on its absolute error. A weight that an Autoencoder with ``tied_weights`` shares
    between an encoder matrix and its decoder transpose is one parameter: both copies move by
    eps together, and each copy's dJ/dp is the shared weight's.

    Parameters
    ----------
    estimator : Network, MLPClassifier, MLPRegressor or Autoencoder
        A fitted estimator with ``dtype=numpy.float64`` (float32 cannot resolve eps = 1e-6).
    X : array-like or sparse matrix of shape (n_samples, n_features)
        The batch's inputs.
    y : array-like
        The batch's targets, as `fit` takes them.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the batch's examples.
    eps : float, default=1e-6
        The finite-difference step.
    seed, t : int, default=0 and 1
        The key of the dropout mask, so that every evaluation sees the same mask.
    floor : float, default=1e-3
        The smallest denominator of the relative error.
    indices : array-like of int, default=None
        Positions in the trainable part of the flat parameter buffer to check (two loss
        evaluations each); None checks every trainable parameter.

    Returns
    -------
    max_error : float
        The largest relative error.
    errors : ndarray of shape (n_trainable,) or (len(indices),)
        Every checked parameter's relative error, in the flat buffer's layout (or in the order
        of `indices`).

    Raises
    ------
    ValueError
        If the estimator's dtype is not float64, or an index is outside the trainable part.

    See Also
    --------
    overfit_check : The lecture's other sanity check, which runs this on a sample.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPRegressor, check_gradients
    >>> X, y = np.random.RandomState(0).randn(20, 3), np.random.RandomState(1).randn(20)
    >>> model = MLPRegressor((5,), activation="tanh", dtype=np.float64, max_iter=1,
    ...                      random_state=0).partial_fit(X, y)
    >>> max_error, errors = check_gradients(model, X, y)
    >>> bool(max_error < 1e-6), errors.shape
    (True, (26,))
    """
    params = estimator._params
    if params.dtype != np.float64:
        raise ValueError("check_gradients needs a model with dtype=numpy.float64, got "
                         f"{params.dtype}")
    _, analytic = estimator._batch_gradient(X, y, sample_weight, seed=seed, t=t)
    if indices is None:
        indices = np.arange(analytic.size)
    else:
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= analytic.size):
            raise ValueError(f"indices must be positions in the trainable part, 0 to "
                             f"{analytic.size - 1}; got values from {indices.min()} to "
                             f"{indices.max()}")
    analytic = analytic[indices]
    numeric = np.empty_like(analytic)
    # a tied weight (an Autoencoder's tied_weights) is one parameter in two copies: both move
    partners = tied_partners(estimator._layout)
    for k, i in enumerate(indices):
        i = [i, partners[i]] if partners[i] != i else i
        saved = params[i]
        params[i] = saved + eps
        plus, _ = estimator._batch_gradient(X, y, sample_weight, seed=seed, t=t)
        params[i] = saved - eps
        minus, _ = estimator._batch_gradient(X, y, sample_weight, seed=seed, t=t)
        params[i] = saved
        numeric[k] = (plus - minus) / (2 * eps)
    errors = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)
    return float(errors.max(initial=0.0)), errors


class Finding:
    """One thing `overfit_check` measured, with the lecture's remedy.

    ``str(finding)`` gives the cause, the fact and the remedy as the report prints them.

    Parameters
    ----------
    cause, fact, remedy : str
        See Attributes.
    **data
        The measurement as numbers: `data`.

    Attributes
    ----------
    cause : str
        What went wrong, one of ``"saturated_units"``, ``"dead_units"``, ``"zero_gradients"``,
        ``"unscaled_inputs"``, ``"learning_rate_too_large"``, ``"wrong_gradients"``,
        ``"too_little_capacity"`` and ``"not_converged"``.
    fact : str
        The measurement, in words.
    remedy : str
        What to do about it.
    data : dict
        The measurement as numbers (per-layer fractions, column indices, epochs, ...).

    See Also
    --------
    overfit_check : What makes the findings.

    Examples
    --------
    >>> from fastmlp.diagnostics import Finding
    >>> print(Finding("dead_units", "layer 1: 40% of its 10 relu units are zero.",
    ...               "Initialize the weights small and random.", layers={1: 0.4}))
    [dead_units] layer 1: 40% of its 10 relu units are zero.
        Remedy: Initialize the weights small and random.
    """

    def __init__(self, cause, fact, remedy, **data):
        self.cause, self.fact, self.remedy, self.data = cause, fact, remedy, data

    def __repr__(self):
        return f"Finding({self.cause!r}, {self.fact!r})"

    def __str__(self):
        return f"[{self.cause}] {self.fact}\n    Remedy: {self.remedy}"


class OverfitReport:
    """What `overfit_check` found; ``print(report)`` gives it as a short text.

    The text's first line says whether the check passed, in how many epochs, at which loss
    and training score; a numbered line per finding follows, with its remedy.

    Parameters
    ----------
    fitted : bool
        Whether the examples were fitted.
    epochs : int
        The epochs trained.
    final_loss, training_score : float
        The last epoch's loss, and the training score at the end.
    loss_curve : list of float
        The loss of each epoch.
    findings : list of Finding
        The causes found.
    initial_health : list of dict
        The measures per weight layer at initialization.
    n_samples : int
        The number of examples.
    task : {"classification", "regression"}
        What the training score is: an accuracy, or the fraction of variation explained.

    Attributes
    ----------
    passed : bool
        Whether the examples were fitted and the gradients agreed with finite differences.
    fitted : bool
        Whether the examples were fitted (training accuracy 1.0, or for regression a squared
        error at most 1% of the targets' variation).
    epochs : int
        The epochs trained: those it took to fit, or the whole budget.
    final_loss : float
        The training loss of the last epoch.
    training_score : float
        The training accuracy at the end, or for regression the fraction of the targets'
        variation explained, ``1 - sum (f - y)^2 / sum (y - mean y)^2``.
    loss_curve : list of float
        The training loss of each epoch.
    findings : list of Finding
        The measured causes, with remedies; empty for a healthy model.
    initial_health : list of dict
        Per weight layer at initialization: ``"saturated"`` and ``"dead"`` (fractions of the
        layer's units, None where they do not apply, as on the output layer),
        ``"mean_activation"``, ``"grad_norm"``, ``"weight_norm"``, ``"update_ratio"`` (None:
        no update yet) and ``"zero_gradients"`` (the fraction of the layer's weights whose
        gradient is exactly zero, among those whose input is not zero on every example): the
        structure of a history record's ``"health"``, which LayerHealthDisplay draws.
    n_samples : int
        The number of examples.

    See Also
    --------
    overfit_check : What makes the report.

    Examples
    --------
    >>> from fastmlp.diagnostics import OverfitReport
    >>> report = OverfitReport(fitted=True, epochs=12, final_loss=0.05, training_score=1.0,
    ...                        loss_curve=[2.3, 0.05], findings=[], initial_health=[],
    ...                        n_samples=50, task="classification")
    >>> print(report)
    overfit_check on 50 examples: PASSED, fitted in 12 epochs (final loss 0.05, training accuracy 1.000)
    No findings: the model can learn; go on to the full experiment.
    """

    def __init__(self, *, fitted, epochs, final_loss, training_score, loss_curve, findings,
                 initial_health, n_samples, task):
        self.fitted, self.epochs, self.final_loss = fitted, epochs, final_loss
        self.training_score, self.loss_curve = training_score, loss_curve
        self.findings, self.initial_health = findings, initial_health
        self.n_samples, self._task = n_samples, task
        self.passed = fitted and "wrong_gradients" not in self.causes

    @property
    def causes(self):
        """The findings' causes, in the order found."""
        return [finding.cause for finding in self.findings]

    def __repr__(self):
        return (f"OverfitReport(passed={self.passed}, epochs={self.epochs}, "
                f"causes={self.causes})")

    def __str__(self):
        score = "training accuracy" if self._task == "classification" else "variance explained"
        verdict = (f"fitted in {self.epochs} epochs" if self.fitted
                   else f"not fitted in {self.epochs} epochs")
        lines = [f"overfit_check on {self.n_samples} examples: "
                 f"{'PASSED' if self.passed else 'FAILED'}, {verdict} (final loss "
                 f"{self.final_loss:.4g}, {score} {self.training_score:.3f})"]
        lines += [f"{k}. {finding}" for k, finding in enumerate(self.findings, 1)]
        if not self.findings:
            lines.append("No findings: the model can learn; go on to the full experiment.")
        return "\n".join(lines)


def overfit_check(estimator, X, y, n_samples=50, random_state=None, *, max_epochs=1000):
    """Check that a model can overfit a few examples, and say why when it cannot.

    The lecture's small experiment before the full one: train a copy of `estimator` on
    `n_samples` random examples of (X, y) with regularization off (``dropout=0``,
    ``alpha=0``, ``early_stopping=False``) until it fits them, or for at most `max_epochs`
    epochs. A classifier fits them at training accuracy 1.0; a regressor when the squared error
    left is at most 1% of the targets' variation, ``sum (f - y)^2 <= 0.01 sum (y - mean y)^2``
    over all outputs (an R^2 of 0.99). The copy starts where ``estimator.fit`` would: from the
    estimator's weights when it is fitted with ``warm_start=True`` (and the same
    architecture), else from a fresh initialization by its `random_state`. Its other
    hyperparameters (solver, learning rate, batch size, architecture) are the estimator's.

    Then it measures what the lecture tells to investigate, and reports each cause found:

    - ``saturated_units`` / ``dead_units``: at initialization, the fraction of a hidden
      layer's tanh or sigmoid units whose output is within 0.02 of a bound for at least 95% of
      the examples, or of its relu units that are zero on every example (reported from 10%).
    - ``zero_gradients``: weights whose gradient (the C backward pass, at initialization) is
      exactly zero, among those whose input is not zero on every example (from 10% of a layer).
    - ``unscaled_inputs``: with ``normalize=None``, input columns whose standard deviations
      differ by more than a factor 100.
    - ``wrong_gradients``: a sample of the parameters (12 per block of the flat buffer) checked
      by `check_gradients` on a float64 copy disagrees with finite differences (a relative
      error above 1e-3 on at least two). This runs whether or not the fit succeeds:
      backpropagation is bug resistant, and a model can learn with some wrong gradients.
    - ``learning_rate_too_large``: the fit fails and the loss diverged, ended above where it
      started, or rose by more than 10% in at least a fifth of the epochs; the check trains
      again at a tenth of the rate and says whether that fits.
    - ``too_little_capacity``: the fit fails with none of the causes above and the loss
      plateaued (the last quarter of the epochs made under 5% of its whole fall).
    - ``not_converged``: the fit fails with none of the causes above and the loss was still
      falling when the budget ran out.

    Parameters
    ----------
    estimator : Network, MLPClassifier or MLPRegressor
        The model to check; it is not changed.
    X : array-like or sparse matrix of shape (n_rows, n_features)
        The data set (a DataFrame too).
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Its targets.
    n_samples : int, default=50
        The number of random rows to overfit.
    random_state : int, RandomState instance or None, default=None
        Picks the rows. The copy's initialization follows the estimator's own `random_state`.
    max_epochs : int, default=1000
        The epoch budget (per run: the retry at a tenth of the rate has its own).

    Returns
    -------
    OverfitReport
        ``passed``, ``epochs``, ``final_loss``, ``findings`` and the measurements.

    Raises
    ------
    TypeError
        If `estimator` is not a fastmlp estimator.
    ValueError
        If `n_samples` or `max_epochs` is not a positive integer, X has fewer rows than
        `n_samples`, or the data are not what `estimator.fit` takes.

    See Also
    --------
    check_gradients : The gradient check on every parameter.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastmlp import MLPClassifier, overfit_check
    >>> X, y = load_digits(return_X_y=True)
    >>> model = MLPClassifier((64,), learning_rate_init=0.01, random_state=0)
    >>> report = overfit_check(model, X, y, random_state=0)
    >>> report.passed, report.findings
    (True, [])
    >>> tiny = MLPClassifier((1,), activation="tanh", learning_rate_init=0.01, random_state=0)
    >>> report = overfit_check(tiny, X, y, random_state=0, max_epochs=300)
    >>> report.passed, report.causes
    (False, ['too_little_capacity'])
    """
    if not isinstance(estimator, Network):
        raise TypeError("overfit_check needs a fastmlp estimator (Network, MLPClassifier or "
                        f"MLPRegressor), got {type(estimator).__name__}")
    for name, value in (("n_samples", n_samples), ("max_epochs", max_epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n_rows = X.shape[0] if hasattr(X, "shape") else len(X)
    if n_rows < n_samples:
        raise ValueError(f"n_samples={n_samples} is more than the {n_rows} rows of X")
    regression = (estimator._task == "regression" or estimator._task is None
                  and type_of_target(y) in ("continuous", "continuous-multioutput"))
    task = "regression" if regression else "classification"
    classes = None
    if not regression and type_of_target(y) != "multilabel-indicator":
        classes = unique_labels(y)  # the copy's outputs are the whole problem's classes
    Xs, ys = resample(X, y, replace=False, n_samples=n_samples,
                      random_state=check_random_state(random_state))
    rows = check_array(Xs, accept_sparse=["csr", "csc"], dtype=np.float64)
    rows = rows.toarray() if sp.issparse(rows) else rows
    fits, score = _fit_criterion(task, Xs, ys)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one-epoch fits stop on purpose
        start = _initialized(estimator, Xs, ys, classes)
        health, inputs = _layer_health(start, rows, Xs, ys)
        findings = _initialization_findings(start, health, inputs, rows)
        rate = estimator.learning_rate_init
        model, losses, epochs, error = _train(start, Xs, ys, rate, fits, max_epochs)
        findings += _gradient_findings(start, Xs, ys, classes, random_state)
        findings += _learning_rate_findings(start, Xs, ys, fits, max_epochs, losses, error,
                                            rate)
        fitted = epochs is not None
        if not fitted and not findings:
            findings.append(_plateau_finding(start, losses))
    return OverfitReport(fitted=fitted, epochs=epochs if fitted else len(losses),
                         final_loss=losses[-1] if losses else float("nan"),
                         training_score=score(model), loss_curve=losses, findings=findings,
                         initial_health=health, n_samples=n_samples, task=task)


def _fit_criterion(task, Xs, ys):
    """(fits(model), score(model)): whether a model fits the examples, and its training score
    (accuracy, or the fraction of the targets' variation explained)."""
    if task == "classification":
        def score(model):
            return float(accuracy_score(ys, model.predict(Xs)))
        return (lambda model: score(model) == 1.0), score
    Y = np.asarray(ys, dtype=np.float64).reshape(len(ys), -1)
    total = float(((Y - Y.mean(axis=0)) ** 2).sum())
    if total == 0:
        raise ValueError("the targets of the chosen rows are constant: there is nothing to fit")

    def score(model):
        residual = np.asarray(model.predict(Xs), dtype=np.float64).reshape(Y.shape) - Y
        return 1.0 - float((residual ** 2).sum()) / total
    return (lambda model: score(model) >= 1.0 - FIT_RESIDUAL), score


def _initialized(estimator, Xs, ys, classes):
    """A copy of the estimator, regularization off, holding the weights its `fit` would start
    from and fitted in the sense of fastmlp (so its gradient can be asked for): one epoch at
    FROZEN_RATE, which initializes a fresh copy (partial_fit, knowing every class) or takes a
    warm-started one's weights without moving them."""
    warm = estimator.warm_start and hasattr(estimator, "_params")
    model = copy.deepcopy(estimator) if warm else clone(estimator)
    off = {"dropout": 0.0, "alpha": 0.0, "early_stopping": False, "verbose": False,
           "warm_start": True, "max_iter": 1, "learning_rate_init": FROZEN_RATE}
    if "callbacks" in model.get_params():
        off["callbacks"] = None  # a user's checkpoint or progress bar has no business here
    if model.batch_size != "auto" and model.batch_size > len(ys):
        off["batch_size"] = len(ys)  # what fit would use, without its warning every epoch
    model.set_params(**off)
    if warm:
        # a warm start keeps the weights (fit makes new ones if the architecture has changed)
        return model.fit(Xs, ys)
    return model.partial_fit(Xs, ys, **({} if classes is None else {"classes": classes}))


def _layer_outputs(model, rows):
    """The input each weight layer reads on the float64 rows (n, n_features): the standardized
    inputs, then every hidden layer's output, in training mode (batch statistics) with no
    dropout, as the check trains. fastmlp's forward pass runs in C and hands back only the
    output layer; the check needs the hidden layers' outputs once, on n_samples rows, at
    initialization: a few small products in numpy here, a diagnostic that never feeds training
    or prediction (tests/reference.py is the oracle the C forward pass is tested against).
    Until the C side fills the history records' "health", the tests and docs/make_images.py
    also measure it with this, after each epoch of a small run."""
    h = rows
    if model._x_shift is not None:
        h = (h - model._x_shift) * model._x_scale
    outputs = [h]
    activation = model._fitted_spec["activation"]
    for l, (W, b) in enumerate(zip(model.coefs_[:-1], model.intercepts_[:-1])):
        a = h @ W + b
        if model._fitted_spec["batch_norm"]:
            norm = model.batchnorm_[l]
            a = (a - a.mean(axis=0)) / np.sqrt(a.var(axis=0) + 1e-5) * norm["gamma"] + norm["beta"]
        if activation == "relu":
            h = np.maximum(a, 0.0)
        elif activation == "tanh":
            h = np.tanh(a)
        elif activation in ("sigmoid", "logistic"):
            h = expit(a)
        else:
            h = a
        outputs.append(h)
    return outputs


def _layer_health(model, rows, Xs, ys, previous=None):
    """Per weight layer, the measures of a history record's "health" (see LayerHealthDisplay):
    the saturated and dead fractions of the units it feeds (None on the output layer, and
    where the activation has no such state), their mean activation, the gradient's and the
    weights' norms, the update ratio ||W - W_previous|| / ||W_previous|| (None without
    `previous`, the coefs_ before the update), and "zero_gradients": the fraction of
    exactly-zero gradient entries among the weights whose input is not zero on every example.
    Also returns the layers' inputs (see _layer_outputs)."""
    inputs = _layer_outputs(model, rows)
    _, grads = model._batch_gradient(Xs, ys)
    activation = model._fitted_spec["activation"]
    offsets = model._layout["w_offset"]
    health = []
    for l, W in enumerate(model.coefs_):
        G = grads[offsets[l]:offsets[l] + W.size].reshape(W.shape)
        live = np.any(inputs[l] != 0, axis=0)  # input units not zero on every example
        record = {"saturated": None, "dead": None, "mean_activation": None,
                  "grad_norm": float(np.linalg.norm(G)),
                  "weight_norm": float(np.linalg.norm(W)), "update_ratio": None,
                  "zero_gradients": float((G[live] == 0).mean()) if live.any() else 0.0}
        if previous is not None:
            record["update_ratio"] = float(np.linalg.norm(W - previous[l])
                                           / max(np.linalg.norm(previous[l]), 1e-300))
        if l + 1 < len(model.coefs_):
            h = inputs[l + 1]
            record["mean_activation"] = float(h.mean())
            if activation == "relu":
                record["dead"] = float((h <= 0).all(axis=0).mean())
            elif activation == "tanh":
                near = np.abs(h) >= 1 - SATURATION_MARGIN
                record["saturated"] = float((near.mean(axis=0) >= SATURATED_EXAMPLES).mean())
            elif activation in ("sigmoid", "logistic"):
                near = (h <= SATURATION_MARGIN) | (h >= 1 - SATURATION_MARGIN)
                record["saturated"] = float((near.mean(axis=0) >= SATURATED_EXAMPLES).mean())
        health.append(record)
    return health, inputs


def _percent(fraction):
    return f"{100 * fraction:.0f}%"


def _initialization_findings(model, health, inputs, rows):
    """Saturated or dead units, exactly-zero gradients, unscaled inputs."""
    findings = []
    activation = model._fitted_spec["activation"]
    units = model._layout["units"]
    saturated = {l + 1: r["saturated"] for l, r in enumerate(health)
                 if r["saturated"] is not None and r["saturated"] >= REPORTED_FRACTION}
    if saturated:
        bounds = "-1 or 1" if activation == "tanh" else "0 or 1"
        fact = "; ".join(f"layer {l}: {_percent(f)} of its {units[l]} {activation} units"
                         for l, f in saturated.items())
        findings.append(Finding(
            "saturated_units",
            f"{fact} are saturated at initialization (output within {SATURATION_MARGIN} of "
            f"{bounds} on at least {_percent(SATURATED_EXAMPLES)} of the examples), so almost "
            "no gradient passes through them.",
            "Initialize the weights small and random (Glorot uniform, as fit does: "
            "U(-b, b), b = sqrt(6 / (n_in + n_out))) so that no unit starts saturated, and "
            "standardize the inputs (normalize='auto').",
            layers=saturated))
    dead = {l + 1: r["dead"] for l, r in enumerate(health)
            if r["dead"] is not None and r["dead"] >= REPORTED_FRACTION}
    if dead:
        fact = "; ".join(f"layer {l}: {_percent(f)} of its {units[l]} relu units"
                         for l, f in dead.items())
        findings.append(Finding(
            "dead_units",
            f"{fact} are zero on every example at initialization: their gradient is exactly "
            "zero and they never recover.",
            "Initialize the weights small and random with biases at 0 (as fit does), and "
            "standardize the inputs (normalize='auto').",
            layers=dead))
    zero = {l: r["zero_gradients"] for l, r in enumerate(health)
            if r["zero_gradients"] >= REPORTED_FRACTION}
    if zero:
        fact = "; ".join(f"coefs_[{l}]: {_percent(f)}" for l, f in zero.items())
        findings.append(Finding(
            "zero_gradients",
            f"Weights whose gradient is exactly zero at initialization (among those whose "
            f"input is not zero on every example): {fact}. No optimization happens on them.",
            "Check the initialization: weights small and random, no layer set to a constant; "
            "saturated or dead units below or above a layer stop its gradient.",
            layers=zero))
    if model._x_shift is None:
        std = rows.std(axis=0)
        varying = np.flatnonzero(std > 0)
        if varying.size >= 2:
            widest, narrowest = varying[np.argmax(std[varying])], varying[np.argmin(std[varying])]
            ratio = std[widest] / std[narrowest]
            if ratio > SCALE_RATIO:
                findings.append(Finding(
                    "unscaled_inputs",
                    f"normalize=None and the input columns' standard deviations differ by a "
                    f"factor {ratio:.3g} (column {widest}: {std[widest]:.3g}, column "
                    f"{narrowest}: {std[narrowest]:.3g}), which makes stochastic gradient "
                    "descent unstable.",
                    "Normalize the inputs: normalize='auto' (the default) standardizes every "
                    "real-valued column, or put a StandardScaler before the model.",
                    ratio=float(ratio), widest=int(widest), narrowest=int(narrowest)))
    return findings


def _train(start, Xs, ys, rate, fits, max_epochs):
    """Train a copy of `start` at `rate` until it fits or `max_epochs` run out, one epoch per
    call: the first a warm-started fit (the initial weights, a fresh optimizer state), the
    others partial_fit (which keeps it). Returns (model, losses, epochs to fit or None, the
    error that stopped training or None)."""
    model = copy.deepcopy(start).set_params(learning_rate_init=rate)
    losses = []
    for epoch in range(1, max_epochs + 1):
        try:
            if epoch == 1:
                model.fit(Xs, ys)
            else:
                model.partial_fit(Xs, ys)
        except ValueError as error:
            # the inputs passed once already (the initializing epoch): this is the loss
            return model, losses, None, str(error)
        losses.append(float(model.loss_))
        if fits(model):
            return model, losses, epoch, None
    return model, losses, None, None


def _gradient_findings(start, Xs, ys, classes, random_state):
    """`check_gradients` on a float64 copy of the initial model, on a sample of parameters:
    GRADIENTS_CHECKED_PER_BLOCK from each block (every W_l, b_l, gamma_l, beta_l)."""
    if start._params.dtype == np.float64:
        exact = start
    else:
        # the same outputs as `start`, whose classes a warm start may have taken from its fit
        exact = _initialized(clone(start).set_params(dtype=np.float64), Xs, ys,
                             None if classes is None else start.classes_)
        exact._params[...] = start._params  # same layout: same architecture and normalize
    lay = start._layout
    units = lay["units"]
    blocks = [(lay["w_offset"][l], units[l] * units[l + 1]) for l in range(len(units) - 1)]
    blocks += [(lay["b_offset"][l], units[l + 1]) for l in range(len(units) - 1)]
    for name in ("gamma_offset", "beta_offset"):
        blocks += [(at, units[l + 1]) for l, at in enumerate(lay[name])]
    rng = check_random_state(random_state)
    indices = np.concatenate([
        at + rng.choice(size, min(size, GRADIENTS_CHECKED_PER_BLOCK), replace=False)
        for at, size in blocks])
    _, errors = check_gradients(exact, Xs, ys, indices=indices)
    wrong = indices[errors > GRADIENT_TOLERANCE]
    if len(wrong) < 2:
        return []
    return [Finding(
        "wrong_gradients",
        f"{len(wrong)} of {len(indices)} parameters checked have a gradient that disagrees "
        f"with finite differences of the loss (largest relative error {errors.max():.3g}, "
        f"tolerance {GRADIENT_TOLERANCE:g}; check_gradients on a float64 copy).",
        "Fix the gradient implementation (the backward pass) until check_gradients agrees "
        "on every parameter; a model can seem to learn with wrong gradients.",
        indices=wrong.tolist(), max_error=float(errors.max()))]


def _loss_trouble(losses, error):
    """Why the loss says the rate is too large, in words, or None."""
    if error is not None:
        return f"training stopped at epoch {len(losses) + 1}: {error}"
    if len(losses) < 4:
        return None
    curve = np.asarray(losses)
    if curve[-(len(curve) // 4):].min() > curve[0]:
        return f"the loss rose from {curve[0]:.4g} to {curve[-1]:.4g}"
    rises = np.mean(curve[1:] > curve[:-1] * (1 + RISE))
    if rises >= OSCILLATING_EPOCHS:
        return (f"the loss oscillates: it rose by more than {_percent(RISE)} in "
                f"{_percent(rises)} of the epochs")
    return None


def _learning_rate_findings(start, Xs, ys, fits, max_epochs, losses, error, rate):
    """A loss that diverged, rose or oscillated: the rate is too large. The check trains again
    from the same weights at a tenth of the rate and says whether that fits."""
    trouble = _loss_trouble(losses, error)
    if trouble is None:
        return []
    _, _, epochs, _ = _train(start, Xs, ys, rate / 10, fits, max_epochs)
    retried = (f"at a tenth of the rate ({rate / 10:g}) it fits in {epochs} epochs"
               if epochs is not None else
               f"at a tenth of the rate ({rate / 10:g}) it does not fit either")
    return [Finding(
        "learning_rate_too_large",
        f"At learning_rate_init={rate:g}, {trouble}; {retried}.",
        "Use a smaller learning rate: try rates a factor 10 apart and keep the largest whose "
        "loss falls steadily.",
        retry_rate=rate / 10, retry_epochs=epochs)]


def _plateau_finding(start, losses):
    """A failed fit with no other cause: a plateau says capacity, a falling loss the budget."""
    curve = np.asarray(losses)
    quarter = curve[-(len(curve) // 4 + 1):]
    # the last quarter's share of all the progress made: a slow rate makes steady progress
    # (about a quarter of it), a model without the capacity stalls after its early progress
    overall = curve[0] - curve[-1]
    improvement = (quarter[0] - quarter[-1]) / overall if overall > 0 else 0.0
    hidden = [int(n) for n in start._layout["units"][1:-1]]
    if improvement < PLATEAU:
        return Finding(
            "too_little_capacity",
            f"The loss plateaued at {curve[-1]:.4g} (the last quarter of {len(curve)} epochs "
            f"made {100 * improvement:.2g}% of its fall from {curve[0]:.4g}) with healthy "
            f"gradients: hidden layers {tuple(hidden)} for {int(start._layout['units'][-1])} "
            "outputs cannot fit the examples.",
            "Give the network more capacity: more hidden units, or more layers.",
            improvement=float(improvement), hidden_layer_sizes=hidden)
    return Finding(
        "not_converged",
        f"The loss was still falling after {len(curve)} epochs, at {curve[-1]:.4g} from "
        f"{curve[0]:.4g} (the last quarter made {100 * improvement:.2g}% of that fall).",
        "Train longer (max_epochs) or at a larger learning rate.",
        improvement=float(improvement))
