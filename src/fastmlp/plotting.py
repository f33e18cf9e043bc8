"""Pictures of a training run, in scikit-learn's Display convention: `from_estimator` (or
`from_history`) gathers the data and draws it, `plot(ax=...)` draws it again on any axes and
keeps the artists (`ax_`, `figure_`, the lines) for the caller to restyle. matplotlib is an
optional dependency (``pip install fastmlp[plot]``), imported by `plot` only."""
import numpy as np
from sklearn.utils.validation import check_is_fitted

# what LayerHealthDisplay can draw from a record's "health", and how each panel is labelled
HEALTH_METRICS = {
    "saturated": "saturated units (fraction)",
    "dead": "dead units (fraction)",
    "mean_activation": "mean activation",
    "grad_norm": "gradient norm",
    "weight_norm": "weight norm",
    "update_ratio": "update norm / weight norm",
}
# spread over orders of magnitude, and fading towards the lower layers: drawn on a log scale
LOG_METRICS = ("grad_norm", "weight_norm", "update_ratio")
FRACTION_METRICS = ("saturated", "dead")  # drawn on [0, 1] whatever their values


def _pyplot(what):
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(f"{what} needs matplotlib: pip install fastmlp[plot] (or "
                          "pip install matplotlib)") from error
    return plt


def _records(history, required):
    """The epoch records as a list of dicts, checked for the keys the Display reads."""
    records = list(history)
    if not records:
        raise ValueError("the history has no epoch records: fit the estimator first")
    for k, record in enumerate(records):
        if not isinstance(record, dict):
            raise TypeError(f"an epoch record must be a dict, got {type(record).__name__} at "
                            f"position {k}")
        missing = [key for key in required if key not in record]
        if missing:
            raise ValueError(f"epoch record {k} has no {', '.join(map(repr, missing))} (it has "
                             f"{sorted(record)})")
    return records


def _history_of(estimator, what):
    check_is_fitted(estimator)
    history = getattr(estimator, "history_", None)
    if history is None:
        raise ValueError(f"{what} reads the epoch records in estimator.history_, which "
                         f"{type(estimator).__name__} does not have")
    return history


def _values(records, key):
    """One float per record (nan where the record holds None), or None when none has one."""
    values = [record.get(key) for record in records]
    if all(value is None for value in values):
        return None
    return np.array([np.nan if value is None else float(value) for value in values])


class TrainingCurveDisplay:
    """The training and validation loss and the validation score against the epoch.

    The score is drawn on a second y axis (on the right). The epoch whose weights the model
    holds at the end (`best_epoch`) and every change of the learning rate are marked by
    vertical lines. Build it with `from_estimator` or `from_history`, which draw it; `plot`
    draws it again.

    Parameters
    ----------
    epochs : array-like of int
        The epochs, 1-based.
    train_loss : array-like of float
        The training loss of each epoch.
    valid_loss, valid_score : array-like of float, default=None
        The validation loss and score of each epoch (nan where there is none), or None.
    learning_rate : array-like of float, default=None
        The rate in effect at each epoch's start.
    best_epoch : int, default=None
        The epoch to mark as the best.
    name : str, default=None
        A name for the legend's title.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The axes of the losses.
    score_ax_ : matplotlib Axes or None
        The twin axes of the validation score.
    figure_ : matplotlib Figure
        The figure.
    train_line_, valid_line_, score_line_ : matplotlib Line2D or None
        The curves (None for what the history does not have).
    best_epoch_line_ : matplotlib Line2D or None
        The vertical line at the best epoch.
    best_epoch_marker_ : matplotlib Line2D or None
        A dot at the best epoch on the validation score's curve (else the validation loss's,
        else the training loss's).
    learning_rate_lines_ : list of matplotlib Line2D
        One vertical line per change of the learning rate, at the first epoch of the new rate.
    learning_rate_changes_ : list of (int, float, float)
        Those changes as (epoch, previous rate, new rate).

    See Also
    --------
    LayerHealthDisplay : Saturation, dead units and gradient norms per layer.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from fastmlp import TrainingCurveDisplay
    >>> records = [{"epoch": e, "train_loss": 1 / e, "valid_loss": 1.2 / e + 0.01 * e,
    ...             "valid_score": 0.5 + 0.04 * e, "learning_rate": 0.01 if e < 6 else 0.005}
    ...            for e in range(1, 11)]
    >>> display = TrainingCurveDisplay.from_history(records)
    >>> display.best_epoch, display.learning_rate_changes_
    (10, [(6, 0.01, 0.005)])
    >>> display.train_line_.get_ydata()[:2].tolist()
    [1.0, 0.5]
    """

    def __init__(self, *, epochs, train_loss, valid_loss=None, valid_score=None,
                 learning_rate=None, best_epoch=None, name=None):
        self.epochs = np.asarray(epochs)
        self.train_loss = np.asarray(train_loss, dtype=np.float64)
        self.valid_loss = None if valid_loss is None else np.asarray(valid_loss, np.float64)
        self.valid_score = None if valid_score is None else np.asarray(valid_score, np.float64)
        self.learning_rate = (None if learning_rate is None
                              else np.asarray(learning_rate, dtype=np.float64))
        self.best_epoch = best_epoch
        self.name = name

    @classmethod
    def from_history(cls, history, *, best_epoch=None, ax=None, name=None):
        """Draw the curves of a list of epoch records.

        The records need not come from an estimator: any list of dicts in the structure of
        ``history_`` will do (a run recorded by hand, one loaded from a file).

        Parameters
        ----------
        history : list-like of dict
            One record per epoch, oldest first, with ``"epoch"`` and ``"train_loss"`` and
            optionally ``"valid_loss"``, ``"valid_score"`` (None where there is no validation
            set) and ``"learning_rate"``: the records of ``estimator.history_``.
        best_epoch : int, default=None
            The epoch to mark; None marks the epoch of the best validation score, else of the
            lowest validation loss, else of the lowest training loss.
        ax : matplotlib Axes, default=None
            Where to draw; None makes a new figure.
        name : str, default=None
            A name for the legend's title.

        Returns
        -------
        display : TrainingCurveDisplay

        Raises
        ------
        ValueError
            If the history is empty or a record lacks ``"epoch"`` or ``"train_loss"``.
        TypeError
            If a record is not a dict.

        See Also
        --------
        TrainingCurveDisplay.from_estimator : The curves of a fitted estimator's ``history_``.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from fastmlp import TrainingCurveDisplay
        >>> records = [{"epoch": e, "train_loss": 2.0 / e} for e in range(1, 5)]
        >>> display = TrainingCurveDisplay.from_history(records)
        >>> display.best_epoch, display.score_ax_ is None
        (4, True)
        """
        records = _records(history, ("epoch", "train_loss"))
        epochs = np.array([int(record["epoch"]) for record in records])
        train_loss = _values(records, "train_loss")
        valid_loss, valid_score = _values(records, "valid_loss"), _values(records, "valid_score")
        if best_epoch is None:
            if valid_score is not None:
                best_epoch = int(epochs[np.nanargmax(valid_score)])
            else:
                best_epoch = int(epochs[np.nanargmin(
                    valid_loss if valid_loss is not None else train_loss)])
        display = cls(epochs=epochs, train_loss=train_loss, valid_loss=valid_loss,
                      valid_score=valid_score, learning_rate=_values(records, "learning_rate"),
                      best_epoch=best_epoch, name=name)
        return display.plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None):
        """Draw the curves of a fitted estimator's ``history_``.

        The best epoch marked is the estimator's ``best_epoch_`` (the epoch whose weights
        early stopping restored) when it has one.

        Parameters
        ----------
        estimator : fitted Network, MLPClassifier or MLPRegressor
            The estimator.
        ax : matplotlib Axes, default=None
            Where to draw; None makes a new figure.
        name : str, default=None
            A name for the legend's title; None uses the estimator's class name.

        Returns
        -------
        display : TrainingCurveDisplay

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If it has no ``history_``.

        See Also
        --------
        TrainingCurveDisplay.from_history : The curves of any list of epoch records.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from fastmlp import MLPClassifier, TrainingCurveDisplay
        >>> X, y = load_digits(return_X_y=True)
        >>> model = MLPClassifier((16,), early_stopping=True, random_state=0).fit(X, y)
        >>> display = TrainingCurveDisplay.from_estimator(model)
        >>> display.best_epoch == model.best_epoch_
        True
        """
        history = _history_of(estimator, "TrainingCurveDisplay.from_estimator")
        return cls.from_history(history, best_epoch=getattr(estimator, "best_epoch_", None),
                                ax=ax, name=type(estimator).__name__ if name is None else name)

    def plot(self, ax=None, *, name=None):
        """Draw the curves.

        Each call draws them again, on `ax` or on a new figure, and points ``ax_``,
        ``figure_`` and the lines at the new artists.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw the losses (the score goes on its twin); None makes a new figure.
        name : str, default=None
            A name for the legend's title; None keeps the display's.

        Returns
        -------
        TrainingCurveDisplay
            Itself, with ``ax_``, ``figure_`` and the lines set.

        See Also
        --------
        TrainingCurveDisplay.from_history : Build the display from records and draw it.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from fastmlp import TrainingCurveDisplay
        >>> display = TrainingCurveDisplay(epochs=[1, 2, 3], train_loss=[1.0, 0.6, 0.5])
        >>> figure, ax = plt.subplots()
        >>> display.plot(ax=ax).ax_ is ax
        True
        """
        plt = _pyplot("TrainingCurveDisplay.plot")
        if ax is None:
            _, ax = plt.subplots()
        name = self.name if name is None else name
        self.train_line_ = ax.plot(self.epochs, self.train_loss, label="training loss")[0]
        self.valid_line_ = None
        if self.valid_loss is not None:
            self.valid_line_ = ax.plot(self.epochs, self.valid_loss,
                                       label="validation loss")[0]
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        self.score_ax_ = self.score_line_ = None
        if self.valid_score is not None:
            self.score_ax_ = ax.twinx()
            # the losses take the colour cycle's first two; the score the third
            self.score_line_ = self.score_ax_.plot(self.epochs, self.valid_score, color="C2",
                                                   label="validation score")[0]
            self.score_ax_.set_ylabel("validation score")
        self.best_epoch_line_ = self.best_epoch_marker_ = None
        if self.best_epoch is not None:
            self.best_epoch_line_ = ax.axvline(self.best_epoch, color="0.3", linestyle="--",
                                               linewidth=1,
                                               label=f"best epoch ({self.best_epoch})")
            # a dot on the curve that chose it: the score, else the validation loss, else the
            # training loss
            chosen = next(line for line in (self.score_line_, self.valid_line_,
                                            self.train_line_) if line is not None)
            at = np.flatnonzero(self.epochs == self.best_epoch)
            if at.size:
                self.best_epoch_marker_ = chosen.axes.plot(
                    self.best_epoch, chosen.get_ydata()[at[0]], marker="o", linestyle="none",
                    color=chosen.get_color(), label="_nolegend_")[0]
        self.learning_rate_changes_, self.learning_rate_lines_ = [], []
        if self.learning_rate is not None:
            rate = self.learning_rate
            changed = np.isfinite(rate[1:]) & np.isfinite(rate[:-1]) & (rate[1:] != rate[:-1])
            for k in np.flatnonzero(changed) + 1:
                change = (int(self.epochs[k]), float(rate[k - 1]), float(rate[k]))
                self.learning_rate_changes_.append(change)
                first = not self.learning_rate_lines_
                self.learning_rate_lines_.append(ax.axvline(
                    change[0], color="C3", linestyle=":", linewidth=1,
                    label="learning rate change" if first else "_nolegend_"))
                # along the line, above the legend and below where a score ends: the rate
                # changes late, when the losses are low and the score high
                ax.annotate(f"lr {change[2]:.3g}", (change[0], 0.72),
                            xycoords=("data", "axes fraction"), xytext=(-2, 0),
                            textcoords="offset points", rotation=90, ha="right",
                            va="bottom", color="C3", fontsize="small")
        handles = [artist for artist in (self.train_line_, self.valid_line_, self.score_line_,
                                         self.best_epoch_line_) if artist is not None]
        handles += self.learning_rate_lines_[:1]
        # "best" would not see the score's twin axes; the middle is where a training run's
        # curves are not (the losses fall to the bottom, the score rises to the top)
        ax.legend(handles=handles, title=name, loc="center")
        self.ax_, self.figure_ = ax, ax.figure
        return self


class LayerHealthDisplay:
    """The health of every layer over the epochs: one panel per measure, one line per layer.

    By default the measures are the saturated and dead fractions of the layer's units and the
    norm of its weights' gradient. They come from each epoch record's ``"health"``: a list with one dict per weight
    layer (layer l computes the pre-activation of layer l's units from ``coefs_[l - 1]``;
    the last is the output layer), with ``"saturated"`` (the fraction of its tanh or sigmoid
    units whose output is within 0.02 of a bound on at least 95% of the epoch's examples),
    ``"dead"`` (the fraction of its relu units that are zero on every example of the epoch),
    ``"mean_activation"``, ``"grad_norm"``, ``"weight_norm"`` and ``"update_ratio"`` (for
    the epoch's last update: the norms of its gradient, of the weights after it, and of the
    update over the weights' norm before it); None where a measure does not apply
    (the output layer's units, a relu layer's saturation). A measure that applies to no layer
    gets no panel. Norms are drawn on a log scale, where the lecture's "gradients fading from
    the top layer to the bottom" show as lines spread apart.

    Parameters
    ----------
    epochs : array-like of int
        The epochs, 1-based.
    values : dict
        Per measure, an array (n_epochs, n_layers), nan where the measure does not apply.
    name : str, default=None
        A name for the figure's title.

    Attributes
    ----------
    axes_ : dict of matplotlib Axes
        The panel of each measure drawn.
    lines_ : dict of list of matplotlib Line2D
        Per measure drawn, one line per layer it applies to (``line.layer`` is the layer).
    figure_ : matplotlib Figure
        The figure.

    See Also
    --------
    TrainingCurveDisplay : The losses and the validation score.
    overfit_check : The same measures at initialization, as findings.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from fastmlp import LayerHealthDisplay
    >>> def health(e):
    ...     hidden = {"saturated": None, "dead": 0.1 * e, "mean_activation": 0.5,
    ...               "grad_norm": 1.0 / e, "weight_norm": 5.0, "update_ratio": 1e-3}
    ...     output = dict(hidden, dead=None, mean_activation=None)
    ...     return [hidden, output]
    >>> records = [{"epoch": e, "train_loss": 1.0 / e, "health": health(e)}
    ...            for e in range(1, 6)]
    >>> display = LayerHealthDisplay.from_history(records)
    >>> sorted(display.axes_)
    ['dead', 'grad_norm']
    >>> [line.layer for line in display.lines_["grad_norm"]]
    [1, 2]
    """

    def __init__(self, *, epochs, values, name=None):
        self.epochs = np.asarray(epochs)
        self.values = values
        self.name = name

    @classmethod
    def from_history(cls, history, *, metrics=("saturated", "dead", "grad_norm"), ax=None,
                     name=None):
        """Draw the layer health of a list of epoch records.

        The records need not come from an estimator: any list of dicts with ``"epoch"`` and
        ``"health"`` in the structure described for the class will do.

        Parameters
        ----------
        history : list-like of dict
            One record per epoch, oldest first, each with ``"epoch"`` and ``"health"`` (see
            the class description).
        metrics : sequence of str, default=("saturated", "dead", "grad_norm")
            The measures to draw, among ``"saturated"``, ``"dead"``, ``"mean_activation"``,
            ``"grad_norm"``, ``"weight_norm"`` and ``"update_ratio"``.
        ax : sequence of matplotlib Axes, default=None
            One per measure drawn (those that apply to some layer); None makes a new figure.
        name : str, default=None
            A name for the figure's title.

        Returns
        -------
        display : LayerHealthDisplay

        Raises
        ------
        ValueError
            If the history is empty, a record lacks ``"epoch"`` or ``"health"``, the records
            have different numbers of layers, or a measure is unknown or applies to no layer.

        See Also
        --------
        LayerHealthDisplay.from_estimator : The layer health in a fitted estimator's ``history_``.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from fastmlp import LayerHealthDisplay
        >>> layer = {"saturated": 0.0, "dead": None, "grad_norm": 0.5}
        >>> records = [{"epoch": e, "health": [layer, dict(layer, saturated=None)]}
        ...            for e in (1, 2, 3)]
        >>> display = LayerHealthDisplay.from_history(records)
        >>> list(display.axes_), len(display.lines_["saturated"])
        (['saturated', 'grad_norm'], 1)
        """
        unknown = [metric for metric in metrics if metric not in HEALTH_METRICS]
        if unknown or not metrics:
            raise ValueError(f"metrics must be some of {list(HEALTH_METRICS)}, got "
                             f"{list(metrics)}")
        records = _records(history, ("epoch", "health"))
        uncounted = [k for k, record in enumerate(records) if record["health"] is None]
        if uncounted:
            raise ValueError(f"epoch record {uncounted[0]} has health None: layer health is "
                             "counted by the epochs of solver='sgd', 'adam', 'rmsprop' and "
                             "'adagrad', not by 'lbfgs', and fastmlp.save does not keep it")
        n_layers = len(records[0]["health"])
        if any(len(record["health"]) != n_layers for record in records):
            raise ValueError("every record's health must have the same number of layers, got "
                             f"{sorted({len(record['health']) for record in records})}")
        values = {}
        for metric in metrics:
            table = np.array([[np.nan if layer.get(metric) is None else float(layer[metric])
                               for layer in record["health"]] for record in records])
            if not np.isnan(table).all():
                values[metric] = table
        if not values:
            raise ValueError(f"none of {list(metrics)} applies to any layer of these records")
        display = cls(epochs=[int(record["epoch"]) for record in records], values=values,
                      name=name)
        return display.plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, metrics=("saturated", "dead", "grad_norm"), ax=None,
                       name=None):
        """Draw the layer health recorded in a fitted estimator's ``history_``.

        The records' ``"health"`` is filled by the C side while it trains, one dict per
        weight layer and epoch.

        Parameters
        ----------
        estimator : fitted Network, MLPClassifier or MLPRegressor
            The estimator.
        metrics : sequence of str, default=("saturated", "dead", "grad_norm")
            The measures to draw (see `from_history`).
        ax : sequence of matplotlib Axes, default=None
            One per measure drawn; None makes a new figure.
        name : str, default=None
            A name for the figure's title; None uses the estimator's class name.

        Returns
        -------
        display : LayerHealthDisplay

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If it has no ``history_``, or its records hold no ``"health"``.

        See Also
        --------
        LayerHealthDisplay.from_history : The layer health of any list of epoch records.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from fastmlp import LayerHealthDisplay, MLPClassifier
        >>> X, y = load_digits(return_X_y=True)
        >>> model = MLPClassifier((16, 8), random_state=0).fit(X, y)
        >>> display = LayerHealthDisplay.from_estimator(model)
        >>> [line.layer for line in display.lines_["grad_norm"]]
        [1, 2, 3]
        """
        history = _history_of(estimator, "LayerHealthDisplay.from_estimator")
        return cls.from_history(history, metrics=metrics, ax=ax,
                                name=type(estimator).__name__ if name is None else name)

    def plot(self, ax=None, *, name=None):
        """Draw the panels.

        Each call draws them again, on `ax` or on a new figure, and points ``axes_``,
        ``lines_`` and ``figure_`` at the new artists.

        Parameters
        ----------
        ax : sequence of matplotlib Axes, default=None
            One per measure, in the order of ``values``; None makes a new figure with the
            panels side by side.
        name : str, default=None
            A name for the figure's title; None keeps the display's.

        Returns
        -------
        LayerHealthDisplay
            Itself, with ``axes_``, ``lines_`` and ``figure_`` set.

        Raises
        ------
        ValueError
            If `ax` does not hold one Axes per measure.

        See Also
        --------
        LayerHealthDisplay.from_history : Build the display from records and draw it.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from fastmlp import LayerHealthDisplay
        >>> display = LayerHealthDisplay(epochs=[1, 2], values={"grad_norm": np.ones((2, 3))})
        >>> len(display.plot().lines_["grad_norm"])
        3
        """
        plt = _pyplot("LayerHealthDisplay.plot")
        metrics = list(self.values)
        if ax is None:
            _, ax = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6),
                                 squeeze=False, layout="constrained")
        axes = list(np.ravel(ax))
        if len(axes) != len(metrics):
            raise ValueError(f"ax must hold one Axes per measure drawn ({len(metrics)}: "
                             f"{metrics}), got {len(axes)}")
        self.axes_, self.lines_ = {}, {}
        for panel, metric in zip(axes, metrics):
            table = self.values[metric]
            lines = []
            for l in range(table.shape[1]):
                if np.isnan(table[:, l]).all():
                    continue  # this measure does not apply to this layer
                # a layer keeps its colour in every panel
                line = panel.plot(self.epochs, table[:, l], color=f"C{l}",
                                  label=f"layer {l + 1}")[0]
                line.layer = l + 1
                lines.append(line)
            if metric in LOG_METRICS and np.nanmin(table) > 0:
                panel.set_yscale("log")
            elif metric in FRACTION_METRICS:
                panel.set_ylim(-0.02, 1.02)
            panel.set_xlabel("epoch")
            panel.set_ylabel(HEALTH_METRICS[metric])
            panel.legend(fontsize="small")
            self.axes_[metric], self.lines_[metric] = panel, lines
        figure = axes[0].figure
        name = self.name if name is None else name
        if name is not None:
            figure.suptitle(name)
        self.figure_ = figure
        return self
