"""Callbacks: what runs between the epochs of `fit` and `partial_fit`.

An estimator's ``callbacks`` parameter is a list of objects with any of these methods, called
in list order after fastmlp's own steps of each epoch (history, early stopping, learning-rate
schedule, thread choice) and before the verbose output:

``on_train_begin(estimator)``
    Before the first epoch of a call.
``on_epoch_end(estimator, record)``
    After each epoch; ``record`` is the epoch's entry of ``estimator.history_`` (``epoch``,
    ``train_loss``, ``valid_loss``, ``valid_score``, ``learning_rate``, ``seconds``,
    ``samples_per_s``, ``threads``). Returning True stops training as early stopping would:
    the model keeps the best epoch's weights with ``early_stopping=True``, else the last.
``on_stretch_end(estimator, rows_done, n_rows)``
    Within an epoch, each time the C trainer returns (about every 0.25 s).
``on_train_end(estimator)``
    After the last epoch of a call, however it ended.

During these calls the estimator shows the model being trained: ``predict``, ``score``,
``coefs_``, ``history_``, ``n_iter_`` and :func:`fastmlp.save` see it as if training ended
now. Callbacks are cloned and pickled with the estimator, so keep their state picklable.
"""
import inspect
import os
import sys
import time

from .training import epoch_line


class ProgressBar:
    """Show training progress: a tqdm bar when tqdm is installed, else plain lines.

    The bar counts epochs and shows the latest losses; an epoch longer than about a second
    advances it within the epoch too. Without tqdm, one line per epoch, and within a long
    epoch a line about every `every` seconds.

    Parameters
    ----------
    use_tqdm : bool or None, default=None
        None uses tqdm when it can be imported; False always prints plain lines.
    every : float, default=1.0
        Seconds between progress updates within one epoch.
    file : file-like or None, default=None
        Where plain lines go (``sys.stdout`` when None).

    See Also
    --------
    LearningRateLogger : The rate in effect at each epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.callbacks import ProgressBar
    >>> X, y = np.random.RandomState(0).randn(40, 3), np.arange(40) % 2
    >>> clf = MLPClassifier((5,), max_iter=2, random_state=0,
    ...                     callbacks=[ProgressBar(use_tqdm=False)])
    >>> clf.fit(X, y)  # doctest: +ELLIPSIS
    Epoch 1/2: train loss ...
    Epoch 2/2: train loss ...
    MLPClassifier(...)
    """

    def __init__(self, use_tqdm=None, every=1.0, file=None):
        self.use_tqdm = use_tqdm
        self.every = every
        self.file = file

    def on_train_begin(self, estimator):
        """Open the tqdm bar (or get ready to print lines).

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.

        Raises
        ------
        ImportError
            With ``use_tqdm=True`` when tqdm is not installed.
        """
        self._bar = None
        self._epochs = 0
        self._epoch_started = self._shown = time.perf_counter()
        if self.use_tqdm is not False:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                if self.use_tqdm:
                    raise ImportError("ProgressBar(use_tqdm=True) needs tqdm: pip install "
                                      "tqdm") from None
            else:
                self._bar = tqdm(total=estimator.max_iter, unit="epoch", leave=True,
                                 file=self.file)

    def on_stretch_end(self, estimator, rows_done, n_rows):
        """Show the progress within a long epoch, at most every `every` seconds.

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.
        rows_done : int
            Rows of this epoch trained so far.
        n_rows : int
            Rows of the whole epoch.
        """
        now = time.perf_counter()
        if now - self._epoch_started < self.every or now - self._shown < self.every:
            return
        self._shown = now
        if self._bar is not None:
            self._bar.n = self._epochs + rows_done / n_rows
            self._bar.refresh()
        else:
            print(f"Epoch {self._epochs + 1}: {100 * rows_done / n_rows:.0f}% "
                  f"({rows_done:,}/{n_rows:,} rows)", file=self._out(), flush=True)

    def on_epoch_end(self, estimator, record):
        """Advance the bar by one epoch (or print the epoch's line).

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.
        record : dict
            The epoch's entry of ``estimator.history_``.
        """
        self._epochs += 1
        self._epoch_started = time.perf_counter()
        if self._bar is not None:
            self._bar.n = self._epochs
            postfix = {"train_loss": f"{record['train_loss']:.4g}"}
            if record["valid_loss"] is not None:
                postfix["valid_loss"] = f"{record['valid_loss']:.4g}"
            self._bar.set_postfix(postfix)
        else:
            print(epoch_line(record, estimator.max_iter), file=self._out(), flush=True)

    def on_train_end(self, estimator):
        """Close the bar.

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.
        """
        if self._bar is not None:
            self._bar.close()
        self._bar = None

    def _out(self):
        return sys.stdout if self.file is None else self.file

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_bar", None)  # a live display is not part of the callback
        return state

    def __repr__(self):
        return f"ProgressBar(use_tqdm={self.use_tqdm!r}, every={self.every!r})"


class Checkpoint:
    """Write the best model so far to `path` with :func:`fastmlp.save` (atomically).

    After every epoch the monitored value of the epoch's record is compared with the best one
    of this training call; a better one (strictly) writes the model, as the estimator holds it
    at that epoch, to a temporary file next to `path` that then replaces it.

    Parameters
    ----------
    path : str or path-like
        The file to write; each better epoch replaces it.
    monitor : {"valid_loss", "valid_score", "train_loss"} or None, default=None
        The history key to watch; None watches "valid_loss" when there is a validation set
        (``early_stopping=True`` or ``X_val``), else "train_loss". Losses are lower-is-better,
        the score higher-is-better.
    save_best_only : bool, default=True
        False writes the model after every epoch.

    Attributes
    ----------
    best_ : float or None
        The best monitored value seen in the latest training call.
    best_epoch_ : int or None
        The epoch (1-based, as in ``history_``) that wrote the file last.

    See Also
    --------
    fastmlp.save : Write a fitted model to a file.
    fastmlp.load : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastmlp
    >>> from fastmlp.callbacks import Checkpoint
    >>> X, y = np.random.RandomState(0).randn(40, 3), np.arange(40) % 2
    >>> path = os.path.join(tempfile.mkdtemp(), "best.fmlp")
    >>> clf = fastmlp.MLPClassifier((5,), max_iter=3, random_state=0,
    ...                             callbacks=[Checkpoint(path)]).fit(X, y)
    >>> fastmlp.load(path).n_iter_ == clf.callbacks[0].best_epoch_
    True
    """

    def __init__(self, path, monitor=None, save_best_only=True):
        self.path = path
        self.monitor = monitor
        self.save_best_only = save_best_only

    def on_train_begin(self, estimator):
        """Check `monitor` and forget the best value of an earlier call.

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.

        Raises
        ------
        ValueError
            When `monitor` is not one of its values.
        """
        if self.monitor not in (None, "valid_loss", "valid_score", "train_loss"):
            raise ValueError("Checkpoint monitor must be 'valid_loss', 'valid_score', "
                             f"'train_loss' or None, got {self.monitor!r}")
        self.best_ = None
        self.best_epoch_ = None

    def on_epoch_end(self, estimator, record):
        """Write the model when the monitored value is the best so far (or always).

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.
        record : dict
            The epoch's entry of ``estimator.history_``.

        Returns
        -------
        bool
            Always False: this callback never stops training.

        Raises
        ------
        ValueError
            When the monitored key is a validation one and there is no validation set.
        """
        monitor = self.monitor
        if monitor is None:
            monitor = "valid_loss" if record["valid_loss"] is not None else "train_loss"
        value = record[monitor]
        if value is None:
            raise ValueError(f"Checkpoint(monitor={monitor!r}) needs a validation set: "
                             "early_stopping=True or fit(..., X_val=, y_val=)")
        sign = -1 if monitor == "valid_score" else 1
        if self.save_best_only and self.best_ is not None \
                and not sign * value < sign * self.best_:
            return False
        from .persistence import save
        save(estimator, self.path)
        self.best_, self.best_epoch_ = value, record["epoch"]
        return False

    def __repr__(self):
        return (f"Checkpoint({os.fspath(self.path)!r}, monitor={self.monitor!r}, "
                f"save_best_only={self.save_best_only!r})")


class LearningRateLogger:
    """Keep the learning rate in effect at each epoch (the plateau schedule changes it).

    The rate of each epoch is its record's ``learning_rate``, the rate in effect at the
    epoch's start; with ``learning_rate="invscaling"`` it also falls within the epoch.

    Attributes
    ----------
    learning_rates_ : list of float
        One rate per epoch of the latest training call, oldest first.

    See Also
    --------
    ProgressBar : Show the progress of training.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPRegressor
    >>> from fastmlp.callbacks import LearningRateLogger
    >>> X = np.random.RandomState(0).randn(40, 3)
    >>> logger = LearningRateLogger()
    >>> reg = MLPRegressor((5,), max_iter=3, learning_rate_init=0.01, random_state=0,
    ...                    callbacks=[logger]).fit(X, X[:, 0])
    >>> reg.callbacks[0].learning_rates_
    [0.01, 0.01, 0.01]
    """

    def on_train_begin(self, estimator):
        """Start an empty list of rates.

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.
        """
        self.learning_rates_ = []

    def on_epoch_end(self, estimator, record):
        """Append the epoch's learning rate.

        Parameters
        ----------
        estimator : Network, MLPClassifier or MLPRegressor
            The estimator being trained.
        record : dict
            The epoch's entry of ``estimator.history_``.

        Returns
        -------
        bool
            Always False: this callback never stops training.
        """
        self.learning_rates_.append(record["learning_rate"])
        return False

    def __repr__(self):
        return "LearningRateLogger()"


SHIPPED = {cls.__name__: cls for cls in (ProgressBar, Checkpoint, LearningRateLogger)}


def to_config(callbacks):
    """fastmlp's own callbacks as JSON values ({"class": name, "params": {...}}) for
    fastmlp.save; None when there are none. Other callbacks cannot be stored in a file of
    arrays and JSON: a TypeError names them."""
    if callbacks is None:
        return None
    config = []
    for callback in callbacks:
        name = type(callback).__name__
        if SHIPPED.get(name) is not type(callback):
            raise TypeError(f"fastmlp.save stores fastmlp.callbacks' own callbacks only, got "
                            f"{callback!r}; pickle the estimator instead, or set "
                            "callbacks=None before saving")
        params = {key: getattr(callback, key) for key in _init_params(type(callback))}
        if "path" in params:
            params["path"] = str(params["path"])
        if params.get("file") is not None:
            raise TypeError("fastmlp.save cannot store a ProgressBar with a file: set "
                            "file=None before saving")
        config.append({"class": name, "params": params})
    return config


def from_config(config):
    """The callbacks to_config described."""
    if config is None:
        return None
    if not isinstance(config, list):
        raise ValueError(f"callbacks {config!r}: a list")
    callbacks = []
    for item in config:
        if not (isinstance(item, dict) and item.get("class") in SHIPPED
                and isinstance(item.get("params"), dict)
                and set(item["params"]) <= set(_init_params(SHIPPED[item["class"]]))):
            raise ValueError(f"callback {item!r}")
        callbacks.append(SHIPPED[item["class"]](**item["params"]))
    return callbacks


def _init_params(cls):
    if cls.__init__ is object.__init__:
        return []
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


__all__ = ["ProgressBar", "Checkpoint", "LearningRateLogger"]
