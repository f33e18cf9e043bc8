"""MLPClassifier and MLPRegressor: a Network whose task is fixed, with scikit-learn's scores.

The class docstrings share their parameter descriptions (`_PARAMETERS`), written once below and
joined with each task's own sections."""
import inspect

from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if

from .network import Network

# The constructor parameters both estimators share, in the signature's order. Each class adds
# its own (MLPRegressor's `loss`, MLPClassifier's `class_weight`) where its signature has them.
_PARAMETERS = r"""
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        The number of units of each hidden layer, from the input side: ``(256, 128)`` is two
        hidden layers. An int is one hidden layer of that many units.

    activation : {"relu", "tanh", "logistic", "sigmoid", "identity"}, default="relu"
        The unit :math:`g` of every hidden layer, applied to the pre-activation
        :math:`a = hW + b`:

        - "relu": :math:`g(a) = \max(0, a)`;
        - "tanh": :math:`g(a) = \tanh(a)`;
        - "logistic" or "sigmoid" (the same unit by two names):
          :math:`g(a) = 1 / (1 + e^{-a})`;
        - "identity": :math:`g(a) = a` (the network is then linear).

        The derivatives used by backpropagation are computed from the unit's output
        :math:`h = g(a)`: relu :math:`h > 0`, tanh :math:`1 - h^2`, sigmoid :math:`h(1 - h)`.

    solver : {"adam", "sgd", "adagrad", "rmsprop", "lbfgs"}, default="adam"
        The optimizer. With ``g`` the gradient of the mini-batch objective (see Notes),
        ``lr`` the current learning rate and every state starting at zero:

        - "sgd": ``v = momentum * v + g``; with Nesterov momentum
          ``p -= lr * (g + momentum * v)``, else ``p -= lr * v`` (``momentum=0`` is plain
          stochastic gradient descent);
        - "adagrad": ``s += g * g``; ``p -= lr * g / (sqrt(s) + epsilon)``;
        - "rmsprop": ``s = rho * s + (1 - rho) * g * g``;
          ``p -= lr * g / (sqrt(s) + epsilon)``;
        - "adam": ``m = beta_1 * m + (1 - beta_1) * g``;
          ``v = beta_2 * v + (1 - beta_2) * g * g``;
          ``p -= lr * (m / (1 - beta_1**t)) / (sqrt(v / (1 - beta_2**t)) + epsilon)``,
          ``t`` the update count;
        - "lbfgs": full-batch L-BFGS (scipy.optimize's L-BFGS-B) on the loss and gradient
          over all rows, each computed by one pass of the C forward and backward kernels;
          it runs at most ``max_iter`` iterations and ``max_fun`` loss evaluations and
          stops when the largest gradient component is at most ``tol``. It suits small
          data sets. ``batch_size``, ``shuffle``, ``learning_rate``,
          ``learning_rate_init``, ``power_t``, the momentum and moment parameters,
          ``epsilon``, ``n_iter_no_change``, ``early_stopping`` and
          ``validation_fraction`` do not apply to it (every row trains, as in
          scikit-learn); it refuses ``dropout`` above 0 and ``partial_fit``.

        Every update is one fused pass over the model's single parameter buffer.

    learning_rate_init : float, default=0.001
        The learning rate ``lr`` the stochastic solvers start from.

    learning_rate : {"constant", "invscaling", "adaptive", "plateau"}, default="constant"
        How the learning rate changes during training:

        - "constant": ``lr = learning_rate_init`` throughout;
        - "invscaling": ``lr = learning_rate_init / t**power_t``, ``t`` the update count,
          applied at every update, for every stochastic solver;
        - "adaptive": scikit-learn's rule, for ``solver="sgd"`` (the other solvers keep
          the rate constant, as scikit-learn's adam does): once more than
          ``n_iter_no_change`` epochs in a row have not improved on the best monitored
          value by more than ``tol``, the rate is divided by 5, or training stops when it
          is already at most 1e-6;
        - "plateau": the lecture's rule: the rate is halved when the monitored quantity has
          not improved by ``tol`` for ``n_iter_no_change`` epochs, and training stops once it
          has been halved 5 times.

        The monitored quantity is the one early stopping watches (``scoring`` on the
        validation set when there is one), else the training loss.

    power_t : float, default=0.5
        The exponent of ``learning_rate="invscaling"``.

    momentum : float, default=0.9
        The momentum of ``solver="sgd"``, in [0, 1].

    nesterovs_momentum : bool, default=True
        Whether ``solver="sgd"`` uses Nesterov's momentum (see ``solver``).

    beta_1 : float, default=0.9
        The decay of Adam's first-moment estimate ``m``, in [0, 1).

    beta_2 : float, default=0.999
        The decay of Adam's second-moment estimate ``v``, in [0, 1).

    rho : float, default=0.99
        The decay of RMSprop's average of squared gradients ``s``, in [0, 1).

    epsilon : float, default=None
        The term that keeps the adaptive solvers' division finite. None is the solver's
        own default: 1e-8 for "adam" and "rmsprop", 1e-10 for "adagrad".

    alpha : float, default=0.0001
        The strength of the L2 penalty (weight decay): each mini-batch objective adds
        ``(alpha / 2) * sum of squared weights`` to the batch's mean loss, so a weight's
        gradient gains ``alpha * W``. Biases and batch normalization's ``gamma`` and
        ``beta`` are not penalized. scikit-learn divides the term by the batch's rows:
        its ``alpha`` is fastmlp's times ``batch_size`` (times ``n_samples`` for
        "lbfgs").

    batch_size : int or "auto", default="auto"
        The number of rows of each mini-batch; "auto" is ``min(200, n_samples)``. A value
        larger than the number of rows is clipped to it, with a warning. "lbfgs" takes all
        rows as one batch.

    max_iter : int, default=200
        The most epochs (passes over the training rows) a ``fit`` runs; for "lbfgs", the
        most iterations. A ``fit`` that reaches it (warm starts included) issues a
        ``ConvergenceWarning``; ``partial_fit`` runs one epoch and never does.

    shuffle : bool, default=True
        Whether the rows are visited in a fresh random order every epoch: a uniform
        permutation, or for X in a mapped file (a ``numpy.memmap``) blocks of about 16 MiB
        of consecutive rows in a random order, the rows of each block in a random order (see
        "Out-of-core data" in the user guide).

    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split of early stopping, the shuffling
        and the dropout masks. An int makes ``fit`` reproducible, bit for bit, whatever the
        number of threads.

    tol : float, default=1e-4
        The improvement that counts: the monitored quantity must beat its best by more
        than ``tol`` for an epoch to count as progress. For "lbfgs", the gradient
        tolerance: it stops when no gradient component exceeds ``tol`` in absolute value
        (or when an iteration lowers the objective by a relative amount below scipy's
        default ``ftol``).

    n_iter_no_change : int or numpy.inf, default=10
        The lecture's look-ahead: training stops after this many epochs in a row without
        progress (see ``tol``); scikit-learn's stops after one more. "adaptive" divides the
        rate after more than this many, as scikit-learn's does. ``numpy.inf`` never stops
        early, so training runs ``max_iter`` epochs.

    early_stopping : bool, default=False
        Whether ``fit`` holds out ``validation_fraction`` of the training rows (a split
        stratified by class for binary and multiclass labels, not for multilabel y) and
        stops when the validation score (see ``scoring``) has not improved for
        ``n_iter_no_change`` epochs; ``X_val`` and ``y_val`` given to ``fit`` are watched
        instead of a held-out share. At the end the weights of the best validation epoch
        are restored. Without it training stops on the training loss. ``partial_fit``
        trains its epoch on every row given, without a validation set; "lbfgs" ignores it.

    validation_fraction : float, default=0.1
        The share of the training rows held out by ``early_stopping``, in [0, 1), as in
        scikit-learn; early stopping needs a validation set of at least 2 rows.

    dropout : float or array-like of shape (n_layers - 2,), default=0.0
        The probability of dropping each hidden unit during training, one value for every
        hidden layer or one per hidden layer, each in [0, 1). A fresh mask is drawn for
        every row and every update, and a kept unit is scaled by ``1 / (1 - p)``, so
        prediction uses the whole network unscaled.

    batch_norm : bool, default=False
        Whether every hidden layer normalizes its pre-activation ``a``: during training by
        the mini-batch's mean and biased variance,
        ``(a - mean) / sqrt(var + 1e-5) * gamma + beta``, updating running averages
        ``running = 0.9 * running + 0.1 * batch`` (the variance unbiased); at prediction by
        the running averages. Such layers have no trainable bias (``beta`` plays its role).

    normalize : "auto" or None, default="auto"
        "auto" standardizes every real-valued input column, ``(x - mean) / std``, with the
        mean and population standard deviation of the data the first ``fit`` saw (a
        constant column is only centered); columns whose training values are all 0 or 1
        are left as they are. The statistics are applied as rows are read, so ``X`` is
        never copied, and ``coefs_[0]`` applies to the standardized inputs. None turns it
        off.

    dtype : numpy.float32 or numpy.float64, default=numpy.float32
        The precision of the parameters and of every computation. Predictions and
        probabilities come in this dtype, whatever the input's (scikit-learn's follow the
        input's dtype).

    n_threads : int or None, default=None
        The most threads training and prediction use; None is every core available to the
        process. The result does not depend on it. Training times stretches of about 50 ms
        on fewer threads now and then and keeps the faster count, and it drops to the cores
        left free as soon as other processes keep one of its cores busy (``history_`` says
        the threads of each epoch).

    verbose : bool or int, default=False
        Whether to print one line per epoch with its training loss, seconds, samples per
        second and threads, followed by the validation score when there is a validation
        set; "lbfgs" prints the loss of every iteration.

    warm_start : bool, default=False
        Whether ``fit`` starts from the current weights (with a fresh optimizer state)
        when the architecture is unchanged, instead of from a new initialization. The
        labels of a warm-started classifier's ``y`` must be among the classes of its
        first fit (all of them or a subset).

    max_fun : int, default=15000
        The most loss and gradient evaluations of ``solver="lbfgs"``; reaching it issues a
        ``ConvergenceWarning``.
"""

# what both have after the task's own parameters; {score} names the estimator's score
_PARAMETERS_TRAINING = r"""
    scoring : str, callable or None, default=None
        What early stopping and the "plateau" and "adaptive" schedules watch on the
        validation set: "loss" (the validation loss, lower is better), the name of a
        scikit-learn scorer (such as "neg_log_loss") or a callable
        ``scorer(estimator, X, y)``; None is the estimator's ``score``, {score}.

    callbacks : list of objects or None, default=None
        Objects told about training as it runs, each with any of the methods
        ``on_train_begin(estimator)``, ``on_epoch_end(estimator, record)`` (``record`` is
        the epoch's entry of ``history_``; returning True stops training as early
        stopping would) and ``on_train_end(estimator)``. They are cloned and pickled with
        the estimator. Ready-made ones are in ``fastmlp.callbacks``.

    pretrain : {"autoencoder", "denoising"} or None, default=None
        Greedy layer-wise pre-training before ``fit`` trains the network (Bengio et al.,
        2007): hidden layer 1 is trained as a one-layer `Autoencoder` of the rows of X and
        of ``fit``'s ``X_unlabeled``, hidden layer l as an autoencoder of the codes of
        layer l - 1, each for ``pretrain_epochs`` epochs with this estimator's optimizer
        (a stochastic one: not "lbfgs"); then the whole network is fine-tuned from those
        weights with the supervised loss. "denoising" trains each layer as a denoising
        autoencoder, its input (only) masked by noise that zeroes 25% of the values
        (Vincent et al., 2008). Rows of a classifier's y marked -1 (scikit-learn's
        convention for unlabeled rows) and ``X_unlabeled`` take part in pre-training
        only, never in the supervised loss; without ``pretrain``, -1 is an ordinary class
        label. Only ``fit`` pre-trains (not ``partial_fit``, nor a ``warm_start`` fit that
        keeps the weights).

    pretrain_epochs : int, default=20
        The epochs of pre-training of each hidden layer.
"""

# MLPRegressor's own parameter, documented where its signature has it: after activation
_LOSS = r"""    loss : {"squared_error", "poisson"}, default="squared_error"
        The per-sample loss and its output units: "squared_error" is
        ``0.5 * sum_j (f_j - y_j)**2 / n_outputs`` on identity outputs; "poisson" is half
        the Poisson deviance, ``sum_j (y_j log(y_j / f_j) - y_j + f_j)``, on exponential
        outputs ``f = exp(a)``, as scikit-learn's, for counts and other targets
        ``y >= 0`` (checked: a negative target raises a ``ValueError``). It is
        keyword-only: scikit-learn's MLPRegressor takes it as its first positional
        parameter, fastmlp keeps ``hidden_layer_sizes`` first.
"""
# MLPClassifier's and Network's own parameter, after max_fun in their signatures
_CLASS_WEIGHT = r"""
    class_weight : dict, list of dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``: a dict
        ``{label: weight}``, or "balanced", which weighs class c by
        ``n_samples / (n_classes * count(c))`` as scikit-learn's classifiers do. A
        multilabel y takes "balanced" per label or a list of one dict per label.
        ``partial_fit`` refuses "balanced", whose weights would change with every call.
"""

_REGRESSOR_PARAMETERS = _PARAMETERS.replace("\n    solver : ", "\n" + _LOSS + "\n    solver : ", 1)

_ATTRIBUTES = r"""
    loss_ : float
        The training loss of the last epoch (the mean of its mini-batch objectives, L2
        term included, weighted by the batches' rows); for "lbfgs", the objective over
        all rows at the end.

    best_loss_ : float or None
        The lowest training loss of any epoch (for "lbfgs", of any iteration); None after
        a ``fit`` with ``early_stopping`` by a stochastic solver, where
        ``best_validation_score_`` takes its place.

    loss_curve_ : list of float
        The training loss of every epoch (for "lbfgs", after every iteration), oldest
        first.

    validation_scores_ : list of float or None
        The validation score of every epoch when there is a validation set, else None
        (always None for "lbfgs" and after ``partial_fit``).

    best_validation_score_ : float or None
        The best of ``validation_scores_``, or None.

    validation_loss_curve_ : list of float or None
        The validation loss of every epoch when there is a validation set, else None.

    history_ : list-like of dict
        One record per epoch, oldest first, with at least ``epoch`` (1-based),
        ``train_loss``, ``valid_loss`` and ``valid_score`` (None without a validation
        set), ``learning_rate`` (the rate at the epoch's start), ``seconds``,
        ``samples_per_s`` and ``threads``. ``history_.to_frame()`` gives a pandas
        DataFrame.

    best_epoch_ : int or None
        With early stopping, the (1-based) epoch whose weights the model holds after
        ``fit``.

    t_ : int
        The number of training samples seen by the solver during fitting, as in
        scikit-learn: each epoch adds its training rows (those left after the
        early-stopping split), over ``partial_fit`` calls and warm-started fits since
        the weights were initialized; "lbfgs" adds none (0 after an "lbfgs" fit from
        scratch). The ``t`` of Adam's bias correction and of "invscaling" is the number
        of optimizer updates (mini-batches) instead, which goes on over ``partial_fit``
        calls and starts again at each ``fit``.

    n_iter_ : int
        The number of epochs (for "lbfgs", iterations) run by the last ``fit``, or
        counted over ``partial_fit`` calls.

    coefs_ : list of ndarray
        ``coefs_[i]`` is the weight matrix of layer i, of shape (n_in, n_out). It is a
        view onto the model's parameters: writing into it in place changes the model.

    intercepts_ : list of ndarray
        ``intercepts_[i]`` is the bias of layer i, of shape (n_out,), also a view.

    batchnorm_ : list of dict
        With ``batch_norm=True``, one dict per hidden layer with the arrays ``gamma``,
        ``beta``, ``running_mean`` and ``running_var`` (views as well).

    n_features_in_ : int
        The number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The names of the features seen during ``fit``, when ``X`` had string column names.

    n_layers_ : int
        The number of layers, input and output included.

    n_outputs_ : int
        The number of output units.

    pretrain_loss_ : list of float
        With ``pretrain``, the last pre-training loss of each hidden layer's autoencoder
        (see `Autoencoder`'s ``loss_``); absent after a ``fit`` without pre-training.
"""

_NOTES = r"""
    For a mini-batch :math:`B` with sample weights :math:`w_t` (1 without
    ``sample_weight``), training minimizes

    .. math::

        J = \frac{\sum_{t \in B} w_t \, \ell(f(x_t), y_t)}{\sum_{t \in B} w_t}
            + \frac{\alpha}{2} \sum_l \lVert W_l \rVert_F^2

    by backpropagation: each layer is the pre-activation :math:`a = hW + b` followed by
    :math:`g(a)`, the output layer's units are fused with their loss, and whole epochs
    run in C without returning to Python, with the GIL released. ``solver="lbfgs"``
    minimizes the same :math:`J` with :math:`B` all training rows, one C pass per
    evaluation.

    Weights start from Glorot's uniform distribution :math:`U(-b, b)`,
    :math:`b = \sqrt{6 / (n_{in} + n_{out})}`, for every activation, and biases at 0
    (scikit-learn uses :math:`\sqrt{2 / (n_{in} + n_{out})}` for "logistic" and draws
    the biases from the same distribution).
"""

_REFERENCES = r"""
    Glorot, X. and Bengio, Y. "Understanding the difficulty of training deep feedforward
    neural networks." AISTATS, 2010.

    Kingma, D. P. and Ba, J. "Adam: A method for stochastic optimization." ICLR, 2015.

    Srivastava, N., Hinton, G., Krizhevsky, A., Sutskever, I. and Salakhutdinov, R.
    "Dropout: a simple way to prevent neural networks from overfitting." JMLR 15, 2014.

    Ioffe, S. and Szegedy, C. "Batch normalization: accelerating deep network training by
    reducing internal covariate shift." ICML, 2015.

    Bergstra, J. and Bengio, Y. "Random search for hyper-parameter optimization." JMLR 13,
    2012.
"""


class MLPClassifier(ClassifierMixin, Network):
    _task = "classification"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        # one label per output column is binary (multilabel); several multiclass columns
        # (multiclass-multioutput) are not supported
        tags.target_tags.multi_output = False
        tags.regressor_tags = None  # Network's: this one only classifies
        return tags

    def score(self, X, y, sample_weight=None):
        """Return the accuracy of ``predict(X)`` against ``y``.

        For a multilabel model this is the subset accuracy: a row counts only when every one
        of its labels is right.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Their true labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the mean.

        Returns
        -------
        score : float
            The (weighted) share of rows predicted right.

        See Also
        --------
        sklearn.metrics.accuracy_score : The metric computed.

        Examples
        --------
        >>> from fastmlp import MLPClassifier
        >>> X, y = [[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1]
        >>> clf = MLPClassifier(learning_rate_init=0.05, max_iter=300, random_state=0)
        >>> clf.fit(X, y).score(X, y)
        1.0
        """
        return ClassifierMixin.score(self, X, y, sample_weight=sample_weight)


MLPClassifier.__doc__ = r"""Multi-layer perceptron classifier, trained by C kernels.

    Softmax outputs with cross-entropy for several classes, one logistic output for two
    classes, and one logistic output per label for a multilabel indicator matrix. Training
    and prediction run in C on every core, bitwise the same for any number of threads. The
    parameters, attributes and behaviour are scikit-learn's ``MLPClassifier``'s, with the
    additions described here (the user guide lists the differences).

    Parameters
    ----------""" + _PARAMETERS + _CLASS_WEIGHT \
    + _PARAMETERS_TRAINING.replace("{score}", "the accuracy") + r"""
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for a multilabel model, the label columns).
""" + _ATTRIBUTES + r"""
    out_activation_ : {"softmax", "logistic"}
        The output units: "softmax" for several classes, "logistic" for two classes and
        for multilabel y.

    See Also
    --------
    MLPRegressor : The same network with identity outputs, for regression.
    Network : The estimator that learns its task from the targets of the first fit.
    check_gradients : Finite-difference check of the backward pass.
    sklearn.neural_network.MLPClassifier : The classifier of scikit-learn, which this one
        can replace.

    Notes
    -----""" + _NOTES + r"""
    The per-sample loss :math:`\ell` is the cross-entropy :math:`-\log f_y(x)` of the
    softmax outputs for several classes, and the binary cross-entropy summed over the
    logistic outputs for two classes or several labels.

    References
    ----------""" + _REFERENCES + r"""
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import train_test_split
    >>> from fastmlp import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y,
    ...                                                     random_state=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01,
    ...                     max_iter=300, random_state=0).fit(X_train, y_train)
    >>> clf.out_activation_, [W.shape for W in clf.coefs_]
    ('softmax', [(4, 32), (32, 3)])
    >>> clf.predict_proba(X_test[:2]).shape
    (2, 3)
    >>> clf.score(X_test, y_test) > 0.9
    True
    """


class MLPRegressor(RegressorMixin, Network):
    _task = "regression"
    _parameter_constraints = {**Network._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
                 **params):
        super().__init__(hidden_layer_sizes, activation, **params)
        self.loss = loss

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch over (X, y), keeping the optimizer state between calls.

        The first call initializes the model as ``fit`` would (the input standardization of
        ``normalize="auto"`` comes from its rows); later calls go on from the current
        weights and optimizer state, with the learning-rate schedule where the last call
        left it. Every row given trains: ``early_stopping`` does not apply, and no
        ``ConvergenceWarning`` is issued. A regressor has no classes: ``sample_weight`` is
        the third parameter, as in scikit-learn's ``MLPRegressor``, so a weight vector
        passed by position is never taken for labels. The method is there for the
        stochastic solvers only: with ``solver="lbfgs"`` it does not exist
        (``hasattr(estimator, "partial_fit")`` is False).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The training rows of this call.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their targets, with as many outputs as the first call's.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the rows in the epoch's mini-batch objectives.

        Returns
        -------
        self : MLPRegressor
            The estimator, trained one more epoch.

        Raises
        ------
        ValueError
            If the data or a parameter is invalid, ``y`` has another number of outputs
            than the first call's, or ``loss="poisson"`` meets a negative target. The
            estimator is then left as it was.

        See Also
        --------
        MLPRegressor.fit : Train from the start (or from the current weights with
            ``warm_start=True``) for up to ``max_iter`` epochs.

        Examples
        --------
        >>> from fastmlp import MLPRegressor
        >>> X, y = [[0.0], [0.5], [1.0], [1.5]], [0.0, 1.0, 2.0, 3.0]
        >>> reg = MLPRegressor(hidden_layer_sizes=(8,), random_state=0)
        >>> for _ in range(3):
        ...     reg = reg.partial_fit(X, y)
        >>> reg.n_iter_, reg.t_  # three epochs of the 4 rows
        (3, 12)
        """
        return super().partial_fit(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = None  # Network's: this one only regresses
        return tags

    def score(self, X, y, sample_weight=None):
        """Return the coefficient of determination R^2 of ``predict(X)`` against ``y``.

        R^2 is ``1 - sum (y - y_pred)^2 / sum (y - mean(y))^2``: 1 for a perfect prediction,
        0 for one that always predicts the mean, and lower for worse. Several target columns
        are averaged uniformly.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their true values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        score : float
            R^2 of the predictions.

        See Also
        --------
        sklearn.metrics.r2_score : The metric computed.

        Examples
        --------
        >>> from fastmlp import MLPRegressor
        >>> X, y = [[0.0], [0.5], [1.0], [1.5]], [0.0, 1.0, 2.0, 3.0]
        >>> reg = MLPRegressor(learning_rate_init=0.05, max_iter=500, random_state=0)
        >>> reg.fit(X, y).score(X, y) > 0.9
        True
        """
        return Network.score(self, X, y, sample_weight=sample_weight)  # R^2: targets.r2


MLPRegressor.__doc__ = r"""Multi-layer perceptron regressor, trained by C kernels.

    Identity outputs with squared error, one per target column, or exponential outputs
    with the Poisson deviance. Training and prediction run in C on every core, bitwise the
    same for any number of threads. The parameters, attributes and behaviour are
    scikit-learn's ``MLPRegressor``'s, with the additions described here (the user guide
    lists the differences).

    Parameters
    ----------""" + _REGRESSOR_PARAMETERS + _PARAMETERS_TRAINING.replace("{score}", "R^2") + r"""
    Attributes
    ----------""" + _ATTRIBUTES + r"""
    out_activation_ : str
        The output units: "identity" (squared error) or "exp" (Poisson).

    See Also
    --------
    MLPClassifier : The same network with softmax or logistic outputs, for classification.
    Network : The estimator that learns its task from the targets of the first fit.
    check_gradients : Finite-difference check of the backward pass.
    sklearn.neural_network.MLPRegressor : The regressor of scikit-learn, which this one
        can replace.

    Notes
    -----""" + _NOTES + r"""
    With ``loss="squared_error"`` the per-sample loss :math:`\ell` is
    :math:`\frac{1}{2 k} \sum_{j=1}^{k} (f_j(x) - y_j)^2` over the :math:`k` outputs;
    with ``loss="poisson"`` it is
    :math:`\sum_{j=1}^{k} \left(y_j \log \frac{y_j}{f_j(x)} - y_j + f_j(x)\right)`,
    :math:`f_j = e^{a_j}` (the term :math:`y_j \log y_j` is 0 at :math:`y_j = 0`).

    References
    ----------""" + _REFERENCES + r"""
    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.model_selection import train_test_split
    >>> from fastmlp import MLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> y = y / y.std()
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01,
    ...                    max_iter=500, random_state=0).fit(X_train, y_train)
    >>> reg.predict(X_test[:3]).shape
    (3,)
    >>> reg.score(X_test, y_test) > 0.9
    True
    """


def _with_loss(network_init):
    """Network's signature with `loss` among the keywords and without `class_weight` (class
    labels only): scikit-learn reads an estimator's parameters from its __init__ signature,
    and this keeps the one list of the others in Network. (`loss` is keyword-only:
    scikit-learn's MLPRegressor takes it as its first positional parameter, fastmlp keeps
    hidden_layer_sizes first for every estimator.)"""
    signature = inspect.signature(network_init)
    parameters = [p for p in signature.parameters.values() if p.name != "class_weight"]
    keywords = next(i for i, p in enumerate(parameters) if p.kind is p.KEYWORD_ONLY)
    loss = inspect.Parameter("loss", inspect.Parameter.KEYWORD_ONLY, default="squared_error")
    return signature.replace(parameters=parameters[:keywords] + [loss] + parameters[keywords:])


MLPRegressor.__init__.__signature__ = _with_loss(Network.__init__)


# Network's docstring, assembled here from the same texts as the estimators' (network.py cannot
# import this module: estimators.py imports Network)
Network.__doc__ = r"""Multi-layer perceptron for classification or regression, as the targets say.

    The targets of the first ``fit`` (or ``partial_fit``) decide the task, as
    scikit-learn's ``type_of_target`` classifies them: class labels (binary or multiclass,
    integers included, or a multilabel indicator matrix) train softmax outputs with
    cross-entropy for several classes and logistic outputs with binary cross-entropy for
    two classes or per label, and give ``predict_proba``; real-valued targets
    ("continuous" or "continuous-multioutput") train identity outputs with squared error.
    Later ``partial_fit`` calls, and a ``fit`` with ``warm_start=True`` that keeps the
    architecture, keep the task; any other ``fit`` decides it again. ``MLPClassifier`` and
    ``MLPRegressor`` are this estimator with the task fixed, and scikit-learn's scores and
    tags for it.

    Parameters
    ----------""" + _PARAMETERS + _CLASS_WEIGHT.replace(
    "\n        ``partial_fit`` refuses",
    "\n        Only for class labels: a model that regresses raises a ``ValueError`` when it is"
    "\n        set. ``partial_fit`` refuses", 1) + _PARAMETERS_TRAINING.replace(
    "{score}", "the accuracy for class labels and R^2 for real values") + r"""
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for a multilabel model, the label columns); only when the
        model classifies.
""" + _ATTRIBUTES + r"""
    out_activation_ : {"softmax", "logistic", "identity"}
        The output units: "softmax" for several classes, "logistic" for two classes and
        for multilabel y, "identity" for real-valued targets.

    See Also
    --------
    MLPClassifier : The same network, always a classifier.
    MLPRegressor : The same network, always a regressor (with a Poisson loss as well).
    save : Write a fitted model to a file; ``load`` reads it back.

    Notes
    -----""" + _NOTES + r"""
    The per-sample loss :math:`\ell` is the cross-entropy :math:`-\log f_y(x)` of the
    softmax outputs for several classes, the binary cross-entropy summed over the logistic
    outputs for two classes or several labels, and
    :math:`\frac{1}{2 k} \sum_{j=1}^{k} (f_j(x) - y_j)^2` over the :math:`k` outputs of a
    regression.

    References
    ----------""" + _REFERENCES + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import Network
    >>> X = np.array([[0.0], [0.2], [0.8], [1.0]])
    >>> clf = Network((8,), learning_rate_init=0.05, max_iter=300, random_state=0)
    >>> clf.fit(X, ["no", "no", "yes", "yes"]).predict(X).tolist()
    ['no', 'no', 'yes', 'yes']
    >>> clf.out_activation_, clf.predict_proba(X[:1]).shape
    ('logistic', (1, 2))
    >>> reg = Network((8,), learning_rate_init=0.05, max_iter=300, random_state=0)
    >>> reg.fit(X, [0.0, 0.4, 1.6, 2.0]).out_activation_, reg.predict(X).shape
    ('identity', (4,))
    """
