"""Autoencoder: a Network trained to reconstruct its input, as a scikit-learn transformer.

The network is the encoder (``hidden_layer_sizes``), then the decoder mirroring it, then an
output layer as wide as the input. It trains on the C engine of every Network: the
reconstruction target handed to the C side is X itself (validated once, in the model dtype
and C order, so no copy of X is made), and the denoising autoencoder's noise is drawn in C on
the gathered input rows of each batch (csrc/corruption.c) while the target rows are gathered
clean from X."""
from numbers import Real

import numpy as np
from scipy.special import expit
from sklearn import config_context, get_config
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (_check_feature_names, _check_sample_weight,
                                      check_array, check_is_fitted, validate_data)

from . import _core
from .model import nonfinite_outputs
from ._config import blas_single_threaded
from .network import Network

_NEVER = available_if(lambda self: False)  # Network's supervised methods an Autoencoder lacks


class Autoencoder(TransformerMixin, Network):
    r"""An autoencoder (optionally denoising) trained in C, as a scikit-learn transformer.

    The network maps x to a code :math:`c(x)` through the encoder, whose layers are
    ``hidden_layer_sizes``, and back through a decoder that mirrors the encoder (so
    ``hidden_layer_sizes=(256, 64)`` is the network d-256-64-256-d), and it is trained to
    make its output :math:`\hat x` reconstruct x. ``transform`` gives the code layer,
    ``inverse_transform`` decodes codes, ``score`` is minus the reconstruction error. It
    trains on the same C engine, optimizers and schedules as `MLPClassifier`, in float32 or
    float64, bitwise the same for any thread count.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_encoder_layers,) or int, default=(100,)
        The units of the encoder's layers, from the input side; the last is the code
        layer. The decoder's hidden layers are these in reverse, without the code layer.

    activation : {"relu", "tanh", "sigmoid", "identity"}, default="relu"
        The unit of every hidden layer, encoder and decoder, and so of the code.

    output : {"auto", "sigmoid", "linear"}, default="auto"
        The output units and the reconstruction loss: "sigmoid" with the binary
        cross-entropy :math:`-\sum_j x_j \log \hat x_j + (1 - x_j) \log(1 - \hat x_j)`
        (for inputs in [0, 1], such as pixel intensities; x need not be binary), or
        "linear" with the squared error :math:`\frac{1}{2d} \sum_j (\hat x_j - x_j)^2`.
        "auto" chooses "sigmoid" when every value of the X of the first fit is in [0, 1],
        else "linear".

    corruption : {"mask", "gaussian"} or None, default=None
        The denoising autoencoder's noise on the input (never on the target, which is the
        clean x): "mask" sets each input value to 0 with probability ``corruption_level``
        (masking noise), "gaussian" adds noise of standard deviation ``corruption_level``,
        in the units of X. A fresh draw for every mini-batch, keyed by ``random_state``,
        the update count and the row, as the dropout masks are: the same for any thread
        count. None trains a plain autoencoder. The noise applies to the raw values, before
        the input standardization of ``normalize``.

    corruption_level : float, default=0.25
        The fraction of inputs masked ("mask", in [0, 1)) or the noise's standard deviation
        ("gaussian", >= 0). Ignored without ``corruption``.

    tied_weights : bool, default=False
        Whether each decoder weight matrix is the transpose of the encoder matrix it mirrors
        (for d-256-64-256-d, :math:`W_3 = W_0^T` and :math:`W_2 = W_1^T`): one shared matrix,
        trained by the sum of both its gradients and penalized once by ``alpha``, which
        halves the weights to learn. The biases stay separate. ``coefs_`` still lists every
        layer's matrix, the decoder's as an exact copy of the transpose; writing into one
        copy breaks the tie (``fastmlp.save`` then refuses the model). Part of the
        architecture: ``warm_start`` keeps the weights only while it is unchanged.

    solver : {"adam", "sgd", "adagrad", "rmsprop"}, default="adam"
        The optimizer, as in `MLPClassifier`.

    learning_rate_init : float, default=0.001
        The initial learning rate.

    learning_rate : {"constant", "invscaling", "plateau"}, default="constant"
        The learning-rate schedule, as in `MLPClassifier`.

    power_t : float, default=0.5
        The exponent of "invscaling".

    momentum : float, default=0.9
        The momentum of "sgd".

    nesterovs_momentum : bool, default=False
        Whether "sgd" uses Nesterov's momentum.

    beta_1 : float, default=0.9
        Adam's decay of the first moment.

    beta_2 : float, default=0.999
        Adam's decay of the second moment.

    rho : float, default=0.99
        RMSprop's decay.

    epsilon : float or None, default=None
        The numerical-stability term of adagrad, rmsprop and adam; None is 1e-8.

    alpha : float, default=0.0001
        The L2 penalty on the weights.

    batch_size : int or "auto", default="auto"
        Rows per mini-batch; "auto" is ``min(200, n_samples)``.

    max_iter : int, default=200
        The most epochs of ``fit``.

    shuffle : bool, default=True
        Whether to shuffle the rows every epoch (in blocks of consecutive rows for X in a
        mapped file, as MLPClassifier's ``shuffle`` says).

    random_state : int, RandomState instance or None, default=None
        Initialization, shuffling, validation split and the corruption noise.

    tol : float, default=1e-4
        The improvement of the loss (or validation score) that counts as progress.

    n_iter_no_change : int, default=10
        Epochs without progress before ``fit`` stops.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the rows and stop when the R^2 of
        their reconstruction stops improving.

    validation_fraction : float, default=0.1
        The share of rows held out by ``early_stopping``.

    dropout : float or array-like of shape (2 * n_encoder_layers - 1,), default=0.0
        The dropout rate of every hidden layer, or one per hidden layer of the whole
        network (encoder, then decoder).

    batch_norm : bool, default=False
        Whether every hidden layer has batch normalization.

    normalize : "auto" or None, default="auto"
        "auto" standardizes the network's input per column with the statistics of the
        first fit (binary columns are left as they are); the target stays the raw X.

    dtype : {numpy.float32, numpy.float64}, default=numpy.float32
        The precision of the parameters and computations.

    n_threads : int or None, default=None
        The most threads; None is every core available. The result does not depend on it.

    verbose : bool or int, default=False
        Whether to print one line per epoch.

    warm_start : bool, default=False
        Whether ``fit`` continues from the current weights when the architecture is the
        same.

    Attributes
    ----------
    out_activation_ : {"logistic", "identity"}
        The output units chosen ("logistic" is the sigmoid).

    n_components_ : int
        The width of the code layer, the number of columns ``transform`` gives.

    loss_ : float
        The training loss of the last epoch (L2 term included).

    loss_curve_ : list of float
        The training loss of every epoch.

    coefs_ : list of ndarray
        The weight matrices of every layer, encoder, decoder and output, as views.

    intercepts_ : list of ndarray
        The biases of every layer, as views.

    n_iter_ : int
        Epochs run.

    t_ : int
        Training samples seen (rows of X, an epoch adding every row), as in
        scikit-learn's MLP.

    n_features_in_ : int
        The number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The names of the features seen during ``fit``, when X had string column names.

    See Also
    --------
    MLPClassifier : Takes ``pretrain="autoencoder"`` or ``"denoising"``, which pre-trains
        its hidden layers greedily as autoencoders of this class.
    sklearn.decomposition.PCA : The linear counterpart of a linear autoencoder's code.
    save : Writes a fitted autoencoder to a file that ``load`` reads back.

    Notes
    -----
    The loss of a mini-batch (``loss_``, ``loss_curve_``) is the mean over its rows of the
    reconstruction loss of ``output`` (the cross-entropy summed over the input's columns,
    or the squared error averaged over them), plus :math:`\frac{\alpha}{2} \sum_l \lVert W_l \rVert_F^2`
    over the distinct weight matrices: with ``tied_weights`` a shared matrix counts once.
    Without it the encoder and decoder weights are separate parameters. The denoising
    autoencoder (Vincent et al.) learns to undo the corruption: it sees the corrupted
    :math:`\tilde x` and is scored against the clean x.

    References
    ----------
    Bengio, Y., Lamblin, P., Popovici, D. and Larochelle, H. "Greedy layer-wise training of
    deep networks." NIPS, 2007.

    Vincent, P., Larochelle, H., Bengio, Y. and Manzagol, P.-A. "Extracting and composing
    robust features with denoising autoencoders." ICML, 2008.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastmlp import Autoencoder
    >>> X = load_digits().data / 16
    >>> ae = Autoencoder(hidden_layer_sizes=(32,), corruption="mask", corruption_level=0.2,
    ...                  max_iter=20, random_state=0).fit(X)
    >>> ae.out_activation_
    'logistic'
    >>> ae.transform(X).shape
    (1797, 32)
    >>> ae.inverse_transform(ae.transform(X)).shape
    (1797, 64)
    """

    _task = "regression"  # real-valued targets: the input itself
    # Network's training reads these; an autoencoder has no classes, its own score and no
    # callbacks (they are not its parameters)
    class_weight = scoring = callbacks = None

    _parameter_constraints = {
        **{name: constraint for name, constraint in Network._parameter_constraints.items()
           if name not in ("pretrain", "pretrain_epochs", "max_fun", "class_weight", "scoring",
                           "callbacks", "solver")},
        "solver": [StrOptions({"sgd", "adagrad", "rmsprop", "adam"})],
        "output": [StrOptions({"auto", "sigmoid", "linear"})],
        "corruption": [StrOptions({"mask", "gaussian"}), None],
        "corruption_level": [Interval(Real, 0, None, closed="left")],
        "tied_weights": ["boolean"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, output="auto",
                 corruption=None, corruption_level=0.25, tied_weights=False, solver="adam",
                 learning_rate_init=0.001, learning_rate="constant", power_t=0.5, momentum=0.9,
                 nesterovs_momentum=False, beta_1=0.9, beta_2=0.999, rho=0.99, epsilon=None,
                 alpha=0.0001, batch_size="auto", max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
                 dropout=0.0, batch_norm=False, normalize="auto", dtype=np.float32,
                 n_threads=None, verbose=False, warm_start=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output = output
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.tied_weights = tied_weights
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
        tags.input_tags.sparse = False  # the target is X itself, read as dense rows
        tags.target_tags.required = False
        tags.target_tags.multi_output = False
        tags.classifier_tags = None
        tags.regressor_tags = None
        tags.transformer_tags = TransformerTags()
        try:  # transform gives codes in the model dtype, whatever the input's
            tags.transformer_tags.preserves_dtype = [np.dtype(self.dtype).name]
        except TypeError:
            pass  # a bad dtype is refused by fit, with its message
        return tags

    # Network's supervised methods, which a transformer does not have
    predict = _NEVER(Network.predict)
    predict_proba = _NEVER(Network.predict_proba)

    # ---------------------------------------------------------------- the network

    def _encoder_sizes(self):
        return Network._hidden_sizes(self)

    def _hidden_sizes(self):
        encoder = self._encoder_sizes()
        return encoder + encoder[-2::-1]

    def _tied_pairs(self):
        """With tied_weights, weight layer i of the encoder and its mirror L - 1 - i."""
        n_encoder = len(self._encoder_sizes())
        return [(i, 2 * n_encoder - 1 - i) for i in range(n_encoder)] if self.tied_weights \
            else []

    def _same_architecture(self):
        return (super()._same_architecture()
                and len(self._model.layout.get("tied", ())) == len(self._tied_pairs()))

    def _check_corruption(self):
        if self.corruption == "mask" and not self.corruption_level < 1:
            raise ValueError("corruption='mask' needs corruption_level in [0, 1) (the fraction "
                             f"of inputs set to 0), got {self.corruption_level!r}")

    def _noisy(self, net):
        """The C net with this autoencoder's noise on its training input rows: a training
        matter, read at every fit like the learning rate."""
        net.set_corruption(self.corruption, float(self.corruption_level)
                           if self.corruption else 0.0)
        return net

    def _net(self):
        return self._noisy(super()._net())

    def _targets(self, X, y, task, first, classes, dtype):
        # the target is X itself, which Autoencoder.fit made dense, C-ordered and of the
        # model dtype: handed to the C side as it is, no copy
        Y = X if isinstance(X, np.ndarray) and X.dtype == dtype and X.flags.c_contiguous \
            else np.ascontiguousarray(X, dtype=dtype)
        in_unit_interval = Y.shape[0] > 0 and Y.min() >= 0 and Y.max() <= 1
        if not first:
            out_activation = self._model.out_activation
        elif self.output == "sigmoid" or (self.output == "auto" and in_unit_interval):
            out_activation = "logistic"
        else:
            out_activation = "identity"
        if out_activation == "logistic" and Y.shape[0] and not in_unit_interval:
            raise ValueError("output='sigmoid' reconstructs values in [0, 1] (its loss is the "
                             f"binary cross-entropy); X has values in [{Y.min()}, {Y.max()}]: "
                             "scale X into [0, 1] or use output='linear'")
        return y, Y, None, out_activation, False, None

    def _epochs(self, run, *args, **kwargs):
        self._noisy(run.model.net)
        return super()._epochs(run, *args, **kwargs)

    # ---------------------------------------------------------------- fitting

    def _reconstruction_input(self, X):
        """X as the C side reads it (dense, the model dtype, C order): the one conversion, so
        that the validation inside Network's fit finds nothing left to copy."""
        return check_array(X, accept_sparse=False, dtype=self._model_dtype(), order="C",
                           input_name="X")

    def _fit_reconstruction(self, X, sample_weight, incremental):
        self._check_corruption()
        X_c = self._reconstruction_input(X)
        # the row count of X is the only thing Network's target validation looks at
        placeholder = np.zeros(X_c.shape[0], dtype=np.int8)
        # Network's validation sees the converted array, which has no column names: the
        # names of X are checked and recorded here instead
        continuing = incremental and hasattr(self, "_params")
        if continuing:
            _check_feature_names(self, X, reset=False)
        names = self.__dict__.pop("feature_names_in_", None)
        try:
            with config_context(assume_finite=True):  # check_array checked the values
                self._fit(X_c, placeholder, sample_weight, incremental=incremental)
        finally:
            if names is not None:
                self.feature_names_in_ = names
        if not continuing:
            _check_feature_names(self, X, reset=True)
        units = self._layout["units"]  # d, the encoder, the decoder's hidden layers, d
        self.n_components_ = int(units[(len(units) - 1) // 2])
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Train the autoencoder to reconstruct X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training rows (dense); with ``output="sigmoid"`` in [0, 1].
        y : None
            Ignored, present for the scikit-learn API.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the reconstruction loss.

        Returns
        -------
        self : Autoencoder
            The fitted autoencoder.

        Raises
        ------
        ValueError
            When X is not finite, or outside [0, 1] with ``output="sigmoid"``.
        TypeError
            When X is sparse.
        """
        return self._fit_reconstruction(X, sample_weight, incremental=False)

    def partial_fit(self, X, y=None, sample_weight=None):
        """One epoch over X, keeping the optimizer state between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows of this call.
        y : None
            Ignored, present for the scikit-learn API.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the reconstruction loss.

        Returns
        -------
        self : Autoencoder
            The autoencoder, trained one more epoch.
        """
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        with config_context(skip_parameter_validation=True):
            return self._fit_reconstruction(X, sample_weight, incremental=True)

    # ---------------------------------------------------------------- codes

    def _sub_net(self, first, last, output):
        """A C view of weight layers [first, last) of the fitted network, reading the same
        flat buffer; its last layer is an output layer of the units `output`."""
        lay, spec = self._layout, self._fitted_spec
        hidden = slice(first, last - 1)
        empty = np.zeros(0, np.int64)
        bn = spec["batch_norm"]
        return _core.Net(
            lay["units"][first:last + 1], spec["activation"], output,
            np.zeros(last - first - 1), bn, lay["w_offset"][first:last],
            lay["b_offset"][first:last], lay["gamma_offset"][hidden] if bn else empty,
            lay["beta_offset"][hidden] if bn else empty,
            lay["mean_offset"][hidden] if bn else empty,
            lay["var_offset"][hidden] if bn else empty, lay["n_weights"], lay["n_trainable"])

    def _code_epilogue(self, A):
        """The code layer's batch norm (with its running statistics) and activation, in place
        on its pre-activation A, which the encoder's C forward leaves as an output layer's."""
        k = len(self._encoder_sizes()) - 1  # the code layer's index among the hidden layers
        if self._fitted_spec["batch_norm"]:
            bn = self.batchnorm_[k]
            A *= bn["gamma"] / np.sqrt(bn["running_var"] + 1e-5)
            A += bn["beta"] - bn["running_mean"] * bn["gamma"] / np.sqrt(bn["running_var"] + 1e-5)
        g = self._fitted_spec["activation"]
        if g == "relu":
            np.maximum(A, 0, out=A)
        elif g == "tanh":
            np.tanh(A, out=A)
        elif g == "sigmoid":
            expit(A, out=A)  # 1 / (1 + exp(-A)) without overflow warnings
        return A

    def _run(self, net, data, n, n_out):
        """The outputs (n, n_out) of the C view `net` for the n rows of the _core.Input data."""
        out = np.empty((n, n_out), dtype=self._params.dtype)
        finite = True
        if (n_threads := self._threads_for(n)) > 1:
            with blas_single_threaded():
                finite = _core.predict(net, data, self._params, out, n_threads)
        elif n:
            finite = _core.predict(net, data, self._params, out, 1)
        if not finite:
            raise nonfinite_outputs(out)
        return out

    def transform(self, X):
        """The code layer of the encoder for every row of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to encode.

        Returns
        -------
        codes : ndarray of shape (n_samples, `n_components_`)
            The code layer's outputs, in the model dtype.
        """
        check_is_fitted(self, "_params")
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=self._model_dtype(),
                          order="C")
        k = len(self._encoder_sizes())
        # the encoder's last layer runs as an output layer (its pre-activation): the code
        # layer's batch norm and unit follow in numpy, on n_components_ columns
        codes = self._run(self._sub_net(0, k, "identity"), self._input(X), X.shape[0],
                          self.n_components_)
        return self._code_epilogue(codes)

    def inverse_transform(self, X):
        """Decode codes back into the input space.

        Parameters
        ----------
        X : array-like of shape (n_samples, `n_components_`)
            Codes, such as ``transform`` gives.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, `n_features_in_`)
            The decoder's outputs (in [0, 1] with the sigmoid output).
        """
        check_is_fitted(self, "_params")
        codes = check_array(X, dtype=self._params.dtype, order="C")
        if codes.shape[1] != self.n_components_:
            raise ValueError(f"X has {codes.shape[1]} columns; codes of this autoencoder have "
                             f"n_components_={self.n_components_}")
        k = len(self._encoder_sizes())
        L = len(self._layout["units"]) - 1
        return self._run(self._sub_net(k, L, self.out_activation_), _core.Input(codes),
                         codes.shape[0], self.n_features_in_)

    def reconstruction_error(self, X, sample_weight=None):
        """The mean reconstruction loss of the rows of X, per input value.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to reconstruct.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the mean.

        Returns
        -------
        error : float
            The mean over rows and columns of the binary cross-entropy (sigmoid output) or
            of the squared error (linear output) between the reconstruction and X.
        """
        check_is_fitted(self, "_params")
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=self._model_dtype(),
                          order="C")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        R = self._forward(X).astype(np.float64)
        X = X.astype(np.float64, copy=False)
        if self.out_activation_ == "logistic":
            tiny = np.finfo(self._params.dtype).tiny
            per_value = -(X * np.log(np.maximum(R, tiny))
                          + (1 - X) * np.log(np.maximum(1 - R, tiny)))
        else:
            per_value = (R - X) ** 2
        return float(np.average(per_value.mean(axis=1), weights=sample_weight))

    def score(self, X, y=None, sample_weight=None):
        """Return minus the reconstruction error of X: greater is better, 0 is perfect.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to reconstruct.
        y : None
            Ignored, present for the scikit-learn API.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the mean.

        Returns
        -------
        score : float
            ``-reconstruction_error(X, sample_weight)``, so that model selection, which
            maximizes scores, picks the best reconstruction.
        """
        return -self.reconstruction_error(X, sample_weight)
