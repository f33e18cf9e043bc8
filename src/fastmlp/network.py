"""The Network estimator: its parameters, and fit / partial_fit.

The data's path runs through the estimator's parts, one file each. fastmlp/inputs.py
validates X, the targets (which become output units in fastmlp/targets.py), the weights and
the validation set; fastmlp/fitting.py runs the call (rolled back whole if it fails) and
hands the run's epochs to fastmlp/training.py; fastmlp/run_start.py makes the model a run
trains (fastmlp/model.py), new or going on from the fitted one, and no predict sees it until
fastmlp/publication.py swaps it in with one assignment at the end. So a failed call leaves the estimator as it was, and a predict
(fastmlp/prediction.py) racing a refit in another thread reads the old model or the new one,
never a mix. The numeric work is in C (fastmlp._core)."""
import operator
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from . import _core, inputs
from ._config import MAX_THREADS, available_cores, default_threads
from .fitting import Fitting
from .inputs import Inputs
from .model import Model, parameter_layout  # noqa: F401 (parameter_layout: persistence's)
from .prediction import Prediction
from .publication import Publication
from .run_start import RunStart, _copy_generator

# what pickling and fastmlp.save leave out: scratch buffers and counters, the thread count
# measured on this machine, and the parameter values partial_fit validated last
# (_validate_params_once)
NOT_PERSISTED = ("_grads", "_workspace", "_thread_choice", "_health", "_validated_parameters")


def _model_part(name, attribute, doc):
    """A fitted attribute read from the current model (one attribute read, then its part)."""
    def read(self):
        model = self.__dict__.get("_model")
        if model is None:
            raise AttributeError(f"{type(self).__name__} is not fitted: it has no {attribute}")
        return getattr(model, name)
    return property(read, doc=doc)


class Network(Inputs, Fitting, RunStart, Publication, Prediction, BaseEstimator):
    """A multi-layer perceptron trained by mini-batch gradient descent in C.

    Its task follows the targets of the first fit. The docstring users read, with every
    parameter and attribute, is assembled in estimators.py from the texts the estimators share.
    """

    _task = None  # "classification", "regression", or None: decided by the targets

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "relu", "tanh", "sigmoid", "logistic"})],
        "solver": [StrOptions({"sgd", "adam", "adagrad", "rmsprop", "lbfgs"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"constant", "invscaling", "plateau", "adaptive"})],
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
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "batch_norm": ["boolean"],
        "normalize": [StrOptions({"auto"}), None],
        "dtype": "no_validation",  # checked by _model_dtype: numpy float32 or float64
        "n_threads": [Interval(Integral, 1, MAX_THREADS, closed="both"), None],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
        "scoring": [str, callable, None],
        "callbacks": [list, None],
        # greedy layer-wise pre-training of the hidden layers as autoencoders (pretraining.py)
        "pretrain": [StrOptions({"autoencoder", "denoising"}), None],
        "pretrain_epochs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 learning_rate_init=0.001, learning_rate="constant", power_t=0.5, momentum=0.9,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, rho=0.99, epsilon=None,
                 alpha=0.0001, batch_size="auto", max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
                 dropout=0.0, batch_norm=False, normalize="auto", dtype=np.float32,
                 n_threads=None, verbose=False, warm_start=False, max_fun=15000,
                 class_weight=None, scoring=None, callbacks=None, pretrain=None,
                 pretrain_epochs=20):
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
        self.max_fun = max_fun
        self.class_weight = class_weight
        self.scoring = scoring
        self.callbacks = callbacks
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs

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
        if dtype not in inputs.C_DTYPES:
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {self.dtype!r}")
        return dtype

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if type(sizes) is tuple and all(type(s) is int and 0 < s < 2**31 for s in sizes):
            return list(sizes)  # the usual tuple of ints, without abc's isinstance checks
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or isinstance(s, bool) or not 0 < s < 2**31
               for s in sizes):
            raise ValueError("hidden_layer_sizes must be integers in [1, 2**31 - 1], got "
                             f"{self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _dropout_rates(self, n_hidden):
        """One dropout rate per hidden layer, a list of floats (ValueError when invalid)."""
        if type(self.dropout) in (float, int) and 0 <= self.dropout < 1:
            return [float(self.dropout)] * n_hidden  # the usual one rate, at a tenth
        rates = np.atleast_1d(np.asarray(self.dropout, dtype=np.float64))
        if rates.ndim != 1 or (rates.size != 1 and rates.size != n_hidden):
            raise ValueError(f"dropout must be a float or one rate per hidden layer "
                             f"({n_hidden}), got {self.dropout!r}")
        if not np.all((rates >= 0) & (rates < 1)):
            raise ValueError(f"dropout rates must be in [0, 1), got {self.dropout!r}")
        return np.broadcast_to(rates, (n_hidden,)).tolist()

    def _threads(self):
        if self.n_threads is not None:
            # predict reads n_threads without fit's validation: a value set since the fit
            # must not reach the bridge's int
            if not (isinstance(self.n_threads, Integral) and 1 <= self.n_threads <= MAX_THREADS):
                raise ValueError(f"n_threads must be an integer in [1, {MAX_THREADS}] or None, "
                                 f"got {self.n_threads!r}")
            return int(self.n_threads)
        return default_threads()

    # ---------------------------------------------------------------- the fitted model

    coefs_ = _model_part("coefs", "coefs_",
                           "The weight matrices, one (n_in, n_out) view of the buffer per layer.")
    intercepts_ = _model_part("intercepts", "intercepts_",
                                "The biases, one (n_out,) view of the buffer per layer.")
    _params = _model_part("params", "_params", "The flat parameter buffer.")
    _layout = _model_part("layout", "_layout", "Where each block sits in the parameter buffer.")
    _x_shift = _model_part("x_shift", "_x_shift", "The input standardization's shift.")
    _x_scale = _model_part("x_scale", "_x_scale", "The input standardization's scale.")
    _fitted_spec = _model_part("spec", "_fitted_spec", "The architecture as fitted.")

    @property
    def batchnorm_(self):
        """One dict per hidden layer of views: gamma, beta, running_mean, running_var."""
        model = self.__dict__.get("_model")
        if model is None or model.batchnorm is None:
            raise AttributeError("batchnorm_ exists after fitting with batch_norm=True")
        return model.batchnorm

    def _net(self):
        return self._model.net

    def _input(self, X):
        return self._model.input(X)

    def _adopt(self, layout, params, spec):
        """Install the model of these parts with the fitted target attributes already set on
        the estimator (fastmlp.load builds a model this way)."""
        regression = self._fitted_task == "regression"
        self._model = Model(layout, params, spec, self.out_activation_,
                            None if regression else self._label_binarizer,
                            bool(getattr(self, "_y_1d", False)) if regression else False)

    def _work_parts(self, batch_size, layout=None):
        """The slabs a training batch's products are cut into: they, never the thread count,
        fix the bits of the result (csrc/train.h), so training and the gradient check agree.
        layout: the run's model's while training (the fitted one's when None)."""
        layout = self._model.layout if layout is None else layout
        return _core.work_parts(layout["n_weights"], batch_size, available_cores())

    # ---------------------------------------------------------------- fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None,
            X_unlabeled=None):
        """Train from the start (or from the current weights with warm_start=True).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels, a multilabel indicator matrix, or real-valued targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Each mini-batch loss is the weighted mean; `class_weight` multiplies in.
        X_val, y_val : array-like, default=None
            A validation set of your own: each epoch's record in `history_` then has its
            `valid_loss` (the objective J in inference mode) and `valid_score` (as `scoring`
            says), and with early_stopping=True training watches it instead of holding out
            validation_fraction of X.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation rows.
        X_unlabeled : array-like of shape (n_unlabeled, n_features), default=None
            Rows without labels, which take part in the pre-training of `pretrain` only
            (as do the rows of a classifier's y marked -1), never in the supervised loss.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError
            Invalid input or hyperparameters, or training diverged; the estimator is then
            left exactly as it was before the call.
        KeyboardInterrupt
            Ctrl-C: training stops at the next stretch boundary (within about a second),
            keeps the weights after the last finished mini-batch (the best epoch's with early
            stopping), warns, and re-raises, so a script stops while a notebook keeps the
            model. ``history_`` and ``n_iter_`` count the complete epochs, ``t_`` every
            update made; a fit stopped within its first epoch changes nothing.

        See Also
        --------
        partial_fit : One epoch more, keeping the optimizer state.
        fastmlp.callbacks : What can run between epochs.

        Examples
        --------
        >>> import numpy as np
        >>> from fastmlp import MLPClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.randn(60, 4), np.arange(60) % 3
        >>> clf = MLPClassifier((8,), max_iter=5, early_stopping=True, scoring="loss",
        ...                     random_state=0).fit(X[:40], y[:40], X_val=X[40:], y_val=y[40:])
        >>> len(clf.history_) == clf.n_iter_ and clf.history_[-1]["valid_loss"] > 0
        True
        """
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val go together: pass both or neither")
        if sample_weight_val is not None and X_val is None:
            raise ValueError("sample_weight_val needs X_val and y_val")
        validation = None if X_val is None else (X_val, y_val, sample_weight_val)
        if self.pretrain is not None or X_unlabeled is not None:
            from .pretraining import fit_pretrained  # unlabeled rows, pre-training
            return fit_pretrained(self, X, y, sample_weight, X_unlabeled, validation)
        self._fit(X, y, sample_weight, incremental=False, validation=validation)
        self.__dict__.pop("pretrain_loss_", None)  # an earlier fit's, if it pre-trained
        return self

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch over (X, y), keeping the optimizer state between calls.

        The first call initializes the model as ``fit`` would (the input standardization of
        ``normalize="auto"`` comes from its rows, and the targets decide the task); later
        calls go on from the current weights and optimizer state, with the learning-rate
        schedule where the last call left it, in the dtype of the first call. Every row given
        trains: ``early_stopping`` does not apply, and no ``ConvergenceWarning`` is issued.
        The method is there for the stochastic solvers only: with ``solver="lbfgs"`` it does
        not exist (``hasattr(estimator, "partial_fit")`` is False).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The training rows of this call.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their class labels, multilabel indicator matrix or real-valued targets.
        classes : array-like of shape (n_classes,), default=None
            Every class label that will ever be seen. ``MLPClassifier`` needs it on the
            first call (unless ``y`` is a multilabel indicator matrix, which names its
            labels by column); ``Network`` then takes the labels of the first call's ``y``.
            On later calls it may be omitted, and if given must be the same labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the rows in the epoch's mini-batch objectives;
            ``class_weight`` multiplies in (a dict or list of dicts only: "balanced" is
            refused here).

        Returns
        -------
        self : object
            The estimator, trained one more epoch.

        Raises
        ------
        ValueError
            If the data or a parameter is invalid, ``classes`` is missing on a classifier's
            first call or differs from the first call's, ``y`` has labels outside the
            classes or another number of outputs than the first call's, or
            ``class_weight="balanced"``. The estimator is then left as it was.

        See Also
        --------
        fit : Train from the start for up to ``max_iter`` epochs.

        Examples
        --------
        >>> from fastmlp import MLPClassifier
        >>> X, y = [[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1]
        >>> clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
        >>> clf = clf.partial_fit(X[:2], y[:2], classes=[0, 1])
        >>> clf = clf.partial_fit(X[2:], y[2:])
        >>> clf.n_iter_, clf.classes_.tolist()
        (2, [0, 1])
        """
        # what _fit_context does, except that it skips validation on a fitted model's
        # partial_fit (a bad value set since then would train: a negative rate climbs the
        # loss), and that the nested validation is skipped by _train where any can happen
        if not get_config()["skip_parameter_validation"]:
            self._validate_params_once()
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _validate_params_once(self):
        """scikit-learn's parameter validation (~0.1 ms, half a small partial_fit's Python
        side), skipped while every parameter is the very object it validated last: its
        checks read a value's type and, for the immutable numbers and strings, its value, so
        the same objects pass again; a value set since (set_params, an assignment) is
        validated. The objects are held, so none is freed and another given its id."""
        names = _parameter_names(type(self))
        values = tuple(map(self.__dict__.get, names))
        validated = self.__dict__.get("_validated_parameters")
        if validated is not None and len(validated) == len(values) \
                and all(map(operator.is_, validated, values)):
            return
        self._validate_params()
        self._validated_parameters = values

    def _check_solver(self):
        """partial_fit is there for the stochastic solvers only, as in scikit-learn."""
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def _same_architecture(self):
        """Whether the fitted parameters fit the current hyperparameters' architecture."""
        model = self._model
        return (list(model.layout["units"][1:-1]) == self._hidden_sizes()
                and model.spec["batch_norm"] == bool(self.batch_norm)
                and (model.layout["n_normalized"] > 0) == (self.normalize == "auto")
                and model.params.dtype == self._model_dtype())

    def _tied_pairs(self):
        """Weight layers (a, b) whose matrices are one, W_b = W_a^T (the Autoencoder's
        tied_weights): none in a Network."""
        return ()

    def _spec(self, fitted=None):
        """The hyperparameters the C network is built from; to go on training the `fitted`
        Model (partial_fit), its batch norm, which its layout holds, and dropout rates for
        its hidden layers, whatever batch_norm and hidden_layer_sizes say since."""
        if fitted is None:
            batch_norm, n_hidden = bool(self.batch_norm), len(self._hidden_sizes())
        else:
            batch_norm, n_hidden = fitted.spec["batch_norm"], len(fitted.layout["units"]) - 2
        return {"activation": self.activation, "batch_norm": batch_norm,
                "dropout": self._dropout_rates(n_hidden)}

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size {self.batch_size} is larger than the number of samples "
                          f"({n_samples}); using {n_samples}", UserWarning)
        return min(int(self.batch_size), n_samples)

    # ---------------------------------------------------------------- diagnostics

    def _batch_gradient(self, X, y, sample_weight=None, seed=None, t=1):
        """(J, dJ/dparams of the trainable part) on one batch of all rows of (X, y), in
        training mode: the C backward pass, for gradient checking (fastmlp.check_gradients)."""
        check_is_fitted(self, "_params")
        model = self._model
        dtype = model.params.dtype
        X = self._validate_X(X, reset=False, dtype=dtype)
        Y = self._encode_targets(y)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(
                _check_sample_weight(sample_weight, X, dtype=dtype))
        n = X.shape[0]
        grads = np.zeros(model.layout["n_trainable"], dtype=dtype)
        parts = self._work_parts(n)
        workspace = np.zeros(model.net.workspace_size(n, parts, dtype, sp.issparse(X)),
                             dtype=dtype)
        loss = _core.batch_gradient(model.net, model.input(X), model.params, grads, workspace, Y,
                                    sample_weight, np.arange(n, dtype=np.int64), self.alpha,
                                    self._seed if seed is None else seed, t, parts, 1)
        return loss, grads

    # ---------------------------------------------------------------- pickling

    def __getstate__(self):
        # a copy: object.__getstate__ hands back the live __dict__; the model pickles its own
        # parts (model.py), its C view and its views rebuilt on load
        state = dict(super().__getstate__())
        for name in NOT_PERSISTED:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        # an estimator pickled before t_ took scikit-learn's meaning (the samples seen) kept
        # the update count in t_ and had no _n_updates: the updates go on from that count,
        # and t_ keeps it, the least number of samples that many updates saw
        if "_model" in state and "_n_updates" not in state:
            state = dict(state, _n_updates=int(state.get("t_", 0)))
        # the shuffling generator is the estimator's own: a call goes on drawing from it and
        # puts its state back on failure (_fit), so a copy (copy.copy, which passes the
        # state through here, or a state dict handed over) must not draw from the same one
        rng = state.get("_rng")
        if isinstance(rng, np.random.RandomState):
            state = dict(state, _rng=_copy_generator(rng))
        super().__setstate__(state)



_PARAMETER_NAMES = {}


def _parameter_names(cls):
    """The estimator class's parameter names, as get_params reads them (inspect's signature of
    __init__ takes ~40 us: read once per class)."""
    names = _PARAMETER_NAMES.get(cls)
    if names is None:
        names = _PARAMETER_NAMES[cls] = tuple(cls._get_param_names())
    return names
