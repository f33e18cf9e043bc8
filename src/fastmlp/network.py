"""The Network estimator: validation, the layout of the flat parameter buffer, fit/partial_fit/
predict. The numeric work is in C (fastmlp._core); Python sees only epoch boundaries.

A layer is the lecture's pre-activation a = h W + b followed by g(a). All parameters live in one
buffer per model (see `parameter_layout`); `coefs_`, `intercepts_` and `batchnorm_` are views."""
import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn import config_context, get_config
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import ClassifierTags, RegressorTags, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                      validate_data)
from threadpoolctl import ThreadpoolController

from . import _core
from .optim import hyperparameters, new_state
from .schedules import LearningRateSchedule
from .threads import ThreadChoice

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# what pickling and fastmlp.save leave out: views and C handles that _point_views rebuilds from
# _params, scratch buffers, and the thread count measured on this machine
NOT_PERSISTED = ("coefs_", "intercepts_", "batchnorm_", "_x_shift", "_x_scale", "_c_net",
                 "_grads", "_workspace", "_thread_choice")
_BLAS = None


def _blas_single_threaded():
    """BLAS capped at one thread while our OpenMP threads run it on their own slabs: two thread
    pools spinning on the same cores slow each other down (shared/DESIGN.md, Threads)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parameter_layout(units, batch_norm, n_normalized):
    """Where every block sits in the flat buffer, in this order:
    W_0 .. W_{L-1} (the L2-penalized part) | b_0 .. b_{L-1} | gamma_l, beta_l of each hidden layer
    (the trainable part ends here) | running mean_l, var_l | input shift, scale (n_normalized each).
    units: (n_features, hidden..., n_outputs). Returns a dict of offset arrays and sizes."""
    units = [int(n) for n in units]
    hidden = units[1:-1] if batch_norm else []
    sizes = [("w", [n_in * n_out for n_in, n_out in zip(units, units[1:])]),
             ("b", units[1:]), ("gamma", hidden), ("beta", hidden),  # trainable up to here
             ("mean", hidden), ("var", hidden)]
    layout, at = {}, 0
    for name, block in sizes:
        layout[name + "_offset"] = np.cumsum([at] + block[:-1], dtype=np.int64)[:len(block)]
        at += sum(block)
        if name == "w":
            layout["n_weights"] = at
        elif name == "beta":
            layout["n_trainable"] = at
    return dict(layout, units=np.asarray(units, np.int64), shift_offset=at,
                n_normalized=n_normalized, size=at + 2 * n_normalized)


def _column_statistics(X, sample_weight=None, dtype=None):
    """Per-column mean, population std (ddof=0) and whether every value is 0 or 1, in float64,
    in chunks of rows so that no temporary the size of X is made (sparse X stays sparse), of X
    as the model reads it: rounded to `dtype` (X's own when None) first.
    With sample_weight (n,) these are the weighted statistics, rows of weight 0 ignored: the
    same as for the data with each row repeated w times (frequency weights)."""
    n, d = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = w.sum()
    if sp.issparse(X):
        X = X.tocsc().astype(dtype or X.dtype, copy=False)
        mean = np.asarray(X.T @ w, dtype=np.float64) / total
        sq = np.asarray(X.multiply(X).T @ w, dtype=np.float64) / total
        std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        binary = np.ones(d, dtype=bool)
        values = X.data
        bad = (values != 0) & (values != 1) & (w[X.indices] > 0)  # CSC: indices are rows
        binary[np.repeat(np.arange(d), np.diff(X.indptr))[bad]] = False
        return mean, std, binary
    mean = np.zeros(d)
    # ~0.5M values (4 MB in float64) per chunk: the chunk's float64 copy, its centered copy and
    # the masks stay near 10 MB, within the 10% of X that fit may add (60000 x 784 float32 is
    # 188 MB), and the chunks are still long enough for numpy to run at full speed
    step = max(1, (1 << 19) // max(d, 1))
    for start in range(0, n, step):
        # C-ordered, whatever X's order: a product's sums run in an order set by the layout
        chunk = np.ascontiguousarray(X[start:start + step], dtype=dtype or X.dtype)
        mean += w[start:start + step] @ chunk.astype(np.float64, copy=False)
    mean /= total
    sq = np.zeros(d)
    binary = np.ones(d, dtype=bool)
    for start in range(0, n, step):
        chunk = np.ascontiguousarray(X[start:start + step], dtype=dtype or X.dtype)
        w_chunk = w[start:start + step]
        centered = chunk - mean
        sq += np.einsum("ij,ij,i->j", centered, centered, w_chunk)
        binary &= ((chunk == 0) | (chunk == 1) | (w_chunk[:, None] == 0)).all(axis=0)
    return mean, np.sqrt(sq / total), binary


class Network(BaseEstimator):
    """A multi-layer perceptron trained by mini-batch gradient descent in C.

    Its task follows the targets of the first fit: class labels (binary, multiclass or a
    multilabel indicator matrix) train softmax or logistic outputs with cross-entropy and give
    `predict_proba`; real-valued targets train identity outputs with squared error.
    MLPClassifier and MLPRegressor fix the task. Parameters and attributes: shared/API.md.
    """

    _task = None  # "classification", "regression", or None: decided by the targets

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "relu", "tanh", "sigmoid"})],
        "solver": [StrOptions({"sgd", "adam", "adagrad", "rmsprop"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"constant", "invscaling", "plateau"})],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "rho": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "batch_norm": ["boolean"],
        "normalize": [StrOptions({"auto"}), None],
        "dtype": "no_validation",  # checked by _model_dtype: numpy float32 or float64
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 learning_rate_init=0.001, learning_rate="constant", power_t=0.5, momentum=0.9,
                 nesterovs_momentum=False, beta_1=0.9, beta_2=0.999, rho=0.99, epsilon=None,
                 alpha=0.0001, batch_size="auto", max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
                 dropout=0.0, batch_norm=False, normalize="auto", dtype=np.float32,
                 n_threads=None, verbose=False, warm_start=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.rho = rho
        self.epsilon = epsilon
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.normalize = normalize
        self.dtype = dtype
        self.n_threads = n_threads
        self.verbose = verbose
        self.warm_start = warm_start

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR/CSC: the first layer multiplies sparse x dense in C
        tags.target_tags.required = True
        # several outputs: continuous columns (regression) or a multilabel indicator matrix
        tags.target_tags.multi_output = True
        # Network itself does either task, as the targets of its first fit say
        tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=True)
        tags.regressor_tags = RegressorTags()
        return tags

    # ---------------------------------------------------------------- validation helpers

    def _model_dtype(self):
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {self.dtype!r}")
        return dtype

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError("hidden_layer_sizes must be positive integers, got "
                             f"{self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _dropout_rates(self, n_hidden):
        rates = np.atleast_1d(np.asarray(self.dropout, dtype=np.float64))
        if rates.ndim != 1 or (rates.size != 1 and rates.size != n_hidden):
            raise ValueError(f"dropout must be a float or one rate per hidden layer "
                             f"({n_hidden}), got {self.dropout!r}")
        if not np.all((rates >= 0) & (rates < 1)):
            raise ValueError(f"dropout rates must be in [0, 1), got {self.dropout!r}")
        return np.broadcast_to(rates, (n_hidden,)).copy()

    def _threads(self):
        if self.n_threads is not None:
            return int(self.n_threads)
        return max(1, min(_core.max_threads(), available_cores()))

    def _validate_X(self, X, reset):
        X = validate_data(self, X, reset=reset, accept_sparse=["csr", "csc"],
                          dtype=self._input_dtypes(), order=None, copy=False)
        return _as_c_input(X, self._model_dtype())

    def _input_dtypes(self):
        """float32 and float64 X are read as they are (the C side converts rows as it gathers
        them, in any memory order); other dtypes become the model's"""
        model = self._model_dtype()
        return (model, np.float64 if model == np.float32 else np.float32)

    # ---------------------------------------------------------------- targets

    def _targets_task(self, y):
        if self._task is not None:
            return self._task
        kind = type_of_target(y)
        return "regression" if kind in ("continuous", "continuous-multioutput") else "classification"

    def _encode_targets(self, y, first, classes=None):
        """Y (n, n_outputs) in the model dtype; on the first fit also the output layout."""
        dtype = self._model_dtype()
        if self._fitted_task == "regression":
            Y = np.asarray(y, dtype=dtype)
            if first:
                self._y_1d = Y.ndim == 1
            Y = Y.reshape(len(Y), -1)
            if first:
                self.out_activation_ = "identity"
            elif Y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {Y.shape[1]} outputs; the model was fitted with "
                                 f"{self.n_outputs_}")
            return np.ascontiguousarray(Y)
        if getattr(y, "ndim", 1) == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # one column of labels, not a multilabel matrix
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"Unknown label type: {kind!r}. Classification needs class labels "
                             "(binary or multiclass) or a multilabel indicator matrix as y")
        if first:
            binarizer = LabelBinarizer()
            if kind == "multilabel-indicator":
                # the binarizer learns the label columns from the matrix itself
                if classes is not None and len(classes) != y.shape[1]:
                    raise ValueError(f"classes has {len(classes)} labels but the multilabel y "
                                     f"has {y.shape[1]} columns")
                binarizer.fit(y)
            else:
                binarizer.fit(unique_labels(y) if classes is None else classes)
            if len(binarizer.classes_) < 2:
                raise ValueError("y has only one class: a classifier needs samples of at least "
                                 f"2 classes, got {binarizer.classes_.tolist()}")
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
            multilabel = binarizer.y_type_ == "multilabel-indicator"
            self.out_activation_ = "softmax" if binarizer.y_type_ == "multiclass" else "logistic"
            if multilabel:
                self.out_activation_ = "logistic"
        else:
            unseen = np.setdiff1d(unique_labels(y), self.classes_) \
                if kind != "multilabel-indicator" else []
            if len(unseen):
                raise ValueError(f"y has labels {np.asarray(unseen).tolist()} not among the "
                                 f"classes seen at the first fit, {self.classes_.tolist()}")
        return np.ascontiguousarray(self._label_binarizer.transform(y), dtype=dtype)

    # ---------------------------------------------------------------- parameters

    def _initialize(self, n_features, n_outputs, X, sample_weight, rng):
        dtype = self._model_dtype()
        hidden = self._hidden_sizes()
        units = [n_features] + hidden + [n_outputs]
        n_normalized = n_features if self.normalize == "auto" else 0
        layout = parameter_layout(units, self.batch_norm, n_normalized)
        params = np.zeros(layout["size"], dtype=dtype)
        for l in range(len(units) - 1):
            # Glorot uniform: U(-b, b), b = sqrt(6 / (n_in + n_out)); biases start at 0
            bound = np.sqrt(6.0 / (units[l] + units[l + 1]))
            start = layout["w_offset"][l]
            params[start:start + units[l] * units[l + 1]] = rng.uniform(
                -bound, bound, units[l] * units[l + 1])
        for l in range(len(layout["gamma_offset"])):
            params[layout["gamma_offset"][l]:][:units[l + 1]] = 1
            params[layout["var_offset"][l]:][:units[l + 1]] = 1
        if n_normalized:
            mean, std, binary = _column_statistics(X, sample_weight, dtype)
            shift = np.where(binary, 0.0, mean)
            # a constant column is only centered; binary columns stay as they are
            scale = np.where(binary | (std == 0), 1.0, 1.0 / np.where(std == 0, 1.0, std))
            start = layout["shift_offset"]
            params[start:start + n_features] = shift
            params[start + n_features:start + 2 * n_features] = scale
        self._layout = layout
        self._params = params
        self._fitted_spec = self._spec()
        self._point_views()
        self._seed = int(rng.randint(0, 2**31 - 1)) * 2**32 + int(rng.randint(0, 2**31 - 1))
        self.n_layers_ = len(units)
        self.n_outputs_ = n_outputs
        self.t_ = 0
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.best_loss_ = np.inf

    def _spec(self):
        """The hyperparameters the C network is built from."""
        return {"activation": self.activation, "batch_norm": bool(self.batch_norm),
                "dropout": self._dropout_rates(len(self._hidden_sizes())).tolist()}

    def _point_views(self):
        """coefs_, intercepts_, batchnorm_ and the input normalization as views of _params."""
        lay, p = self._layout, self._params
        units = lay["units"]
        self.coefs_, self.intercepts_ = [], []
        for l in range(len(units) - 1):
            n_in, n_out = units[l], units[l + 1]
            self.coefs_.append(p[lay["w_offset"][l]:][:n_in * n_out].reshape(n_in, n_out))
            self.intercepts_.append(p[lay["b_offset"][l]:][:n_out])
        if self._fitted_spec["batch_norm"]:
            self.batchnorm_ = [
                {name: p[lay[key][l]:][:units[l + 1]]
                 for name, key in (("gamma", "gamma_offset"), ("beta", "beta_offset"),
                                   ("running_mean", "mean_offset"), ("running_var", "var_offset"))}
                for l in range(len(units) - 2)]
        n = lay["n_normalized"]
        start = lay["shift_offset"]
        self._x_shift = p[start:start + n] if n else None
        self._x_scale = p[start + n:start + 2 * n] if n else None
        self._c_net = None
        self._grads = self._workspace = None

    def _net(self):
        """The C view of the architecture as last fitted, built once (not pickled): a
        hyperparameter changed after fit applies from the next fit on, as in scikit-learn."""
        if getattr(self, "_c_net", None) is None:
            lay, spec = self._layout, self._fitted_spec
            self._c_net = _core.Net(
                lay["units"], spec["activation"], self.out_activation_, spec["dropout"],
                spec["batch_norm"], lay["w_offset"], lay["b_offset"], lay["gamma_offset"],
                lay["beta_offset"], lay["mean_offset"], lay["var_offset"], lay["n_weights"],
                lay["n_trainable"])
        return self._c_net

    def _buffers(self, batch_size, parts, sparse):
        """Gradient and workspace buffers, allocated once per fit and reused across calls."""
        dtype = self._params.dtype
        n_train = self._layout["n_trainable"]
        size = self._net().workspace_size(batch_size, parts, dtype, sparse)
        if getattr(self, "_grads", None) is None or self._grads.size != n_train:
            self._grads = np.zeros(n_train, dtype=dtype)
        if getattr(self, "_workspace", None) is None or self._workspace.size < size:
            self._workspace = np.zeros(size, dtype=dtype)
        return self._grads, self._workspace

    def _input(self, X):
        return _core.Input(X, self._x_shift, self._x_scale, self._params.dtype)

    def _work_parts(self, batch_size):
        """The slabs a training batch's products are cut into: they, never the thread count,
        fix the bits of the result (csrc/train.c), so training and the gradient check agree."""
        return _core.work_parts(self._layout["n_weights"], batch_size, available_cores())

    # ---------------------------------------------------------------- fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train from the start (or from the current weights with warm_start=True)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), keeping the optimizer state between calls. Classifiers need
        `classes` on the first call (all labels that will ever be seen)."""
        # what _fit_context does, except that it skips validation on a fitted model's
        # partial_fit: a bad value set since then would train (a negative rate climbs the loss)
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        with config_context(skip_parameter_validation=True):
            return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        """Validate, then train; on any error the estimator is left exactly as it was."""
        snapshot = dict(self.__dict__)
        in_place = [a.copy() for a in (getattr(self, "_params", None),
                                        getattr(self, "_state", None)) if a is not None]
        try:
            return self._fit_unsafe(X, y, sample_weight, incremental, classes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            for saved, name in zip(in_place, ("_params", "_state")):
                getattr(self, name)[...] = saved  # in place: the views stay views
            raise

    def _fit_unsafe(self, X, y, sample_weight, incremental, classes):
        fitted = hasattr(self, "_params")
        # warm_start keeps the weights only while the architecture is the same
        first = (not fitted or not (incremental or self.warm_start)
                 or (not incremental and not self._same_architecture()))
        self._model_dtype()
        hidden = self._hidden_sizes()
        self._dropout_rates(len(hidden))
        X, y = validate_data(self, X, y, reset=first, accept_sparse=["csr", "csc"],
                             dtype=self._input_dtypes(), order=None, copy=False,
                             multi_output=True, y_numeric=self._task == "regression")
        X = _as_c_input(X, self._model_dtype())
        n_samples = X.shape[0]
        if first:
            task = self._targets_task(y)
            # a classifier must hear of every label up front (a multilabel y names its labels
            # by column); Network, which learns its task from the first targets, takes the
            # labels of the first call as its classes
            if incremental and self._task == "classification" and classes is None \
                    and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit: "
                                 "every label that will ever be seen")
        elif self._fitted_task == "classification" and incremental and classes is not None \
                and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={list(classes)} differs from the classes of the first "
                             f"call, {self.classes_.tolist()}")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=self._model_dtype(),
                                                 ensure_non_negative=True)
            if not np.any(sample_weight > 0):
                raise ValueError("sample_weight must have at least one positive weight")
            sample_weight = np.ascontiguousarray(sample_weight)
        batch_size = self._batch_size(n_samples)
        # batch statistics of one row are meaningless (variance 0): refuse batches of one; a
        # trailing batch of one row is merged into the batch before it by train_epoch (C)
        if self.batch_norm and batch_size < 2:
            raise ValueError("batch_norm needs at least 2 samples per mini-batch (batch_size "
                             f"and the number of samples), got {batch_size}")

        if first:
            self._fitted_task = task
            Y = self._encode_targets(y, first=True, classes=classes)
            self._rng = check_random_state(self.random_state)
            self._initialize(X.shape[1], Y.shape[1], X, sample_weight, self._rng)
            self._state = None
        else:
            Y = self._encode_targets(y, first=False)
        if incremental and getattr(self, "_state", None) is not None:
            state = self._state
        else:
            state = new_state(self._layout["n_trainable"], self._params.dtype)
        if not incremental:
            self.n_iter_ = 0
            self.loss_curve_ = []
            self.best_loss_ = np.inf
            self.t_ = 0
        self._train(X, Y, sample_weight, state, batch_size,
                    max_iter=1 if incremental else self.max_iter, incremental=incremental)
        self._state = state
        return self

    def _same_architecture(self):
        """Whether the fitted parameters fit the current hyperparameters' architecture."""
        lay = self._layout
        return (list(lay["units"][1:-1]) == self._hidden_sizes()
                and self._fitted_spec["batch_norm"] == bool(self.batch_norm)
                and (lay["n_normalized"] > 0) == (self.normalize == "auto")
                and self._params.dtype == self._model_dtype())

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size {self.batch_size} is larger than the number of samples "
                          f"({n_samples}); using {n_samples}", UserWarning)
        return min(int(self.batch_size), n_samples)

    def _train(self, X, Y, sample_weight, state, batch_size, max_iter, incremental):
        """The epoch loop: C trains each epoch; Python scores, schedules and stops."""
        if self._spec() != self._fitted_spec:
            self._fitted_spec = self._spec()
            self._c_net = None
        n_threads = self._threads()
        if n_threads > 1 and not _core.openmp_enabled():
            _warn_no_openmp()
        validation = None
        rows = np.arange(X.shape[0], dtype=np.int64)
        if self.early_stopping and not incremental:
            rows, validation = self._validation_split(X, Y)
            if self.batch_norm and len(rows) < 2:
                raise ValueError("batch_norm needs at least 2 training samples once "
                                 f"early_stopping has held out validation_fraction="
                                 f"{self.validation_fraction}; {len(rows)} remain")
        best_params = None
        n = len(rows)
        schedule = LearningRateSchedule(self.learning_rate, self.learning_rate_init, self.tol,
                                        self.n_iter_no_change)
        if incremental and getattr(self, "_schedule", None) is not None:
            schedule = self._schedule
            if getattr(self, "validation_scores_", None) is not None:
                # it watched validation scores in fit; partial_fit watches the training loss
                schedule.best, schedule.epochs_without_improvement = np.inf, 0
        self.validation_scores_ = [] if validation is not None else None
        self.best_validation_score_ = -np.inf if validation is not None else None
        # the slabs a batch's work is cut into fix the bits of the result; the threads that
        # share them out are chosen by timing stretches of epochs (fastmlp/threads.py), kept
        # across fits and partial_fit calls while the work per epoch is alike
        parts = self._work_parts(batch_size)
        grads, workspace = self._buffers(batch_size, parts, sp.issparse(X))
        net, data = self._net(), self._input(X)
        work = (n_threads, batch_size, n, tuple(self._layout["units"]), sp.issparse(X))
        if getattr(self, "_thread_choice", (None,))[0] != work:
            self._thread_choice = (work, ThreadChoice(min(parts, n_threads)))
        thread_choice = self._thread_choice[1]
        n_batches = _core.epoch_batches(n, batch_size, self.batch_norm)
        batch_loss = np.zeros(n_batches)  # J_b * |b| of each batch, summed alike
        epochs_without_improvement = 0
        converged = False
        with _blas_single_threaded():
            for _ in range(max_iter):
                order = rows[self._rng.permutation(n)] if self.shuffle else rows
                hyper = hyperparameters(self, schedule.learning_rate, schedule.c_schedule)
                batch_loss[:] = 0
                stretches = []
                first = 0
                while first < n_batches:
                    # consecutive stretches of the epoch's batches, each on its thread count and
                    # bounded in time (fastmlp/threads.py); C says how many batches it trained
                    threads, seconds = thread_choice.stretch()
                    started, t_before = time.perf_counter(), self.t_
                    self.t_ = _core.train_epoch(
                        net, hyper, data, self._params, grads, state, workspace,
                        batch_loss[first:], Y, sample_weight, order[first * batch_size:],
                        batch_size, self._seed, self.t_, parts, threads, seconds)
                    last = first + self.t_ - t_before
                    trained = (n if last == n_batches else last * batch_size) - first * batch_size
                    stretches.append((trained, threads, time.perf_counter() - started))
                    thread_choice.record(*stretches[-1])
                    first = last
                loss = float(batch_loss.sum()) / n
                self.n_iter_ += 1
                self.loss_ = loss
                self.loss_curve_.append(loss)
                if self.verbose:
                    seconds = sum(stretch[2] for stretch in stretches)
                    threads = max({s[1] for s in stretches},  # the count that trained most rows
                                  key=lambda k: sum(s[0] for s in stretches if s[1] == k))
                    print(f"Epoch {self.n_iter_}: loss {loss:.8f}, {seconds:.3f} s, "
                          f"{n / max(seconds, 1e-12):,.0f} samples/s, {threads} threads")
                if not np.isfinite(loss):
                    raise ValueError("training diverged (the loss is not finite): lower "
                                     "learning_rate_init, or standardize the inputs")
                if validation is not None:
                    score = self._validation_score(*validation)
                    self.validation_scores_.append(score)
                    if self.verbose:
                        print(f"Validation score: {score:.6f}")
                    improved = score > self.best_validation_score_ + self.tol
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best_params = self._params.copy()
                    monitored = -score
                else:
                    # None after a fit with early stopping, which tracked validation scores
                    best_loss = np.inf if self.best_loss_ is None else self.best_loss_
                    improved = loss < best_loss - self.tol
                    self.best_loss_ = min(best_loss, loss)
                    monitored = loss
                if incremental:
                    # one epoch per call, as in scikit-learn: plateau may halve the rate for the
                    # next call; whether to go on is the caller's choice
                    if self.learning_rate == "plateau":
                        schedule.epoch_ends(monitored)
                    continue
                epochs_without_improvement = 0 if improved else epochs_without_improvement + 1
                if self.learning_rate == "plateau":
                    if schedule.epoch_ends(monitored):
                        converged = True
                        break
                elif epochs_without_improvement >= self.n_iter_no_change:
                    converged = True
                    break
        self._schedule = schedule
        if best_params is not None:
            self._params[...] = best_params  # in place: the views stay views
        if validation is not None:
            self.best_loss_ = None
        if not incremental and not converged:
            warnings.warn(f"Stochastic optimizer: maximum iterations ({max_iter}) reached and "
                          "the optimization hasn't converged yet.", ConvergenceWarning)

    def _validation_split(self, X, Y):
        """Training rows (sorted indices, so X is never copied) and the held-out (X, Y)."""
        n = X.shape[0]
        stratify = None
        if self._fitted_task == "classification" and self.out_activation_ == "softmax":
            stratify = Y.argmax(axis=1)
        elif self._fitted_task == "classification" and Y.shape[1] == 1:
            stratify = Y[:, 0]
        try:
            train, held_out = train_test_split(np.arange(n, dtype=np.int64),
                                               test_size=self.validation_fraction,
                                               random_state=self._rng, stratify=stratify)
        except ValueError as error:
            raise ValueError(f"early_stopping could not hold out validation_fraction="
                             f"{self.validation_fraction} of {n} samples: {error}") from None
        held_out.sort()
        return np.sort(train), (_as_c_input(X[held_out], self._model_dtype()), Y[held_out])

    def _validation_score(self, Xv, Yv):
        out = self._forward(Xv)
        if self._fitted_task == "regression":
            return r2_score(Yv, out)
        if self.out_activation_ == "softmax":
            return accuracy_score(Yv.argmax(axis=1), out.argmax(axis=1))
        return accuracy_score(Yv > 0.5, out > 0.5)

    # ---------------------------------------------------------------- prediction

    def _forward(self, X, check_finite=False):
        """The network's outputs (n, n_outputs) for validated rows X; with check_finite (X a
        dense array whose finiteness is not yet known), None when some row is not finite."""
        out = np.empty((X.shape[0], self.n_outputs_), dtype=self._params.dtype)
        if X.shape[0] == 0:
            return out
        # up to 256 rows, one thread: waking others costs more than they save (and asking how
        # many cores there are costs a system call, a tenth of a one-row prediction)
        if X.shape[0] >= _core.PREDICT_THREADED_ROWS and (n_threads := self._threads()) > 1:
            with _blas_single_threaded():
                ok = _core.predict(self._net(), self._input(X), self._params, out, n_threads,
                                   check_finite)
        else:
            ok = _core.predict(self._net(), self._input(X), self._params, out, 1, check_finite)
        return out if ok else None

    def _outputs(self, X):
        """The network's outputs for X as the user gave it, validated as scikit-learn does."""
        if not hasattr(self, "_params"):
            check_is_fitted(self, "_params")
        if (type(X) is np.ndarray and X.dtype == self._params.dtype and X.ndim == 2
                and X.flags.c_contiguous and 0 < X.shape[0] and X.shape[1] == self.n_features_in_
                and not hasattr(self, "feature_names_in_")):
            # Already what the C side reads: validate_data would only confirm it, at ~80 us,
            # three times the forward pass of one row. Finiteness is checked in C on the first
            # layer's pre-activations; a row that fails (a NaN or inf, or finite values that
            # overflow) sends X down the full path, which tells which.
            out = self._forward(X, check_finite=True)
            if out is not None:
                return out
        return self._forward(self._validate_X(X, reset=False))

    def predict(self, X):
        """Class labels (classification) or predicted values (regression) for X."""
        out = self._outputs(X)
        if self._fitted_task == "regression":
            return out.ravel() if self._y_1d else out
        return self._label_binarizer.inverse_transform(out)

    @available_if(lambda self: (getattr(self, "_fitted_task", None) or self._task)
                  != "regression")
    def predict_proba(self, X):
        """Class probabilities (n, n_classes); a multilabel model gives each label's."""
        out = self._outputs(X)
        if self._fitted_task != "classification":
            raise AttributeError("predict_proba is only available after fitting on class labels")
        if self.out_activation_ == "logistic" and len(self.classes_) == 2 \
                and self._label_binarizer.y_type_ == "binary":
            return np.hstack([1 - out, out])
        return out

    def score(self, X, y, sample_weight=None):
        """Accuracy for classification, R^2 for regression."""
        check_is_fitted(self, "_params")
        if self._fitted_task == "regression":
            return r2_score(y, self.predict(X), sample_weight=sample_weight)
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def recompute_batchnorm_statistics(self, X):
        """Replace every batch-norm layer's running_mean and running_var by the exact mean and
        unbiased variance of its pre-activation over all rows of X (the training set, say),
        the lecture's alternative to running averages: one pass over X per layer, layer l
        seeing the layers below in inference mode with their statistics already replaced.
        Weights, gamma and beta are unchanged. Returns self."""
        check_is_fitted(self, "_params")
        if not self._fitted_spec["batch_norm"]:
            raise ValueError("recompute_batchnorm_statistics needs a model fitted with "
                             "batch_norm=True; this one has no batch normalization")
        X = self._validate_X(X, reset=False)
        if X.shape[0] < 2:
            raise ValueError("recompute_batchnorm_statistics needs at least 2 samples (the "
                             f"variance is unbiased), got {X.shape[0]}")
        n_threads = self._threads()
        with _blas_single_threaded():
            _core.batchnorm_population(self._net(), self._input(X), self._params, X.shape[0],
                                       n_threads)
        return self

    # ---------------------------------------------------------------- diagnostics

    def _batch_gradient(self, X, y, sample_weight=None, seed=None, t=1):
        """(J, dJ/dparams of the trainable part) on one batch of all rows of (X, y), in
        training mode: the C backward pass, for gradient checking (fastmlp.check_gradients)."""
        check_is_fitted(self, "_params")
        X = self._validate_X(X, reset=False)
        Y = self._encode_targets(y, first=False)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(
                _check_sample_weight(sample_weight, X, dtype=self._params.dtype))
        n = X.shape[0]
        grads = np.zeros(self._layout["n_trainable"], dtype=self._params.dtype)
        parts = self._work_parts(n)
        workspace = np.zeros(self._net().workspace_size(n, parts, self._params.dtype,
                                                        sp.issparse(X)), dtype=self._params.dtype)
        loss = _core.batch_gradient(self._net(), self._input(X), self._params, grads, workspace, Y,
                                    sample_weight, np.arange(n, dtype=np.int64), self.alpha,
                                    self._seed if seed is None else seed, t, parts, 1)
        return loss, grads

    # ---------------------------------------------------------------- pickling

    def __getstate__(self):
        # a copy: object.__getstate__ hands back the live __dict__, which must keep its views
        state = dict(super().__getstate__())
        # views and C handles are rebuilt from _params and _layout on load
        for name in NOT_PERSISTED:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_params" in state:
            self._point_views()


def _as_c_input(X, dtype):
    """X as the C side reads it for a model of `dtype`: dense float32 or float64 in any memory
    order (as validated), or CSR. float64 values a float32 model reads must be finite once
    rounded, as on the converted copy that scikit-learn's validation would check: max and min
    are reductions, they make no copy of X."""
    if not sp.issparse(X):
        if X.dtype == np.float64 and dtype == np.float32 and X.size and not (
                X.max() <= _FLOAT32_MAX and X.min() >= -_FLOAT32_MAX):
            raise ValueError("Input X contains infinity or a value too large for "
                             "dtype('float32').")
        return X
    X = X.tocsr()
    if not X.data.flags.c_contiguous:
        X.data = np.ascontiguousarray(X.data)
    return X


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_warned_no_openmp = False


def _warn_no_openmp():
    global _warned_no_openmp
    if not _warned_no_openmp:
        _warned_no_openmp = True
        warnings.warn("fastmlp was built without OpenMP: training and prediction run on one "
                      "thread (see fastmlp.show_config())", RuntimeWarning)
