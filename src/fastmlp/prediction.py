"""Prediction: a fitted Network's outputs for new rows, as labels, probabilities or values.

Every method reads the fitted model (fastmlp/model.py) once, then only that object: a refit in
another thread swaps a new model in with one assignment, so a prediction racing it sees the old
model or the new one, never a mix, and takes no lock. `Prediction` is a part of `Network`
(fastmlp/network.py), the last step of the data's path: inputs (fastmlp/inputs.py), training
(fastmlp/training.py), prediction."""
import numpy as np
from sklearn.metrics import accuracy_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from . import _core, inputs, targets, threads
from ._config import blas_single_threaded


class Prediction:
    """Network's predict, predict_proba, predict_log_proba, score and the batch-norm
    statistics' recomputation (a mixin: it reads the estimator's fitted model)."""

    def _threads_for(self, n_rows):
        # up to 256 rows, one thread: waking others costs more than they save (and asking how
        # many cores there are costs a system call, a tenth of a one-row prediction); from
        # there on no more than the cores other processes leave (threads.CoresLeft)
        if n_rows < _core.PREDICT_THREADED_ROWS:
            return 1
        return threads.cores_left(self._threads())

    def _forward(self, X, check_finite=False, model=None):
        """The outputs (n, n_outputs) of `model` (the fitted one by default) for validated rows
        X; with check_finite (X a dense array whose finiteness is not yet known), None when
        some row is not finite."""
        model = self._model if model is None else model
        n_threads = self._threads_for(X.shape[0])
        if n_threads > 1:
            with blas_single_threaded():
                return model.forward(X, n_threads, check_finite)
        return model.forward(X, 1, check_finite)

    def _outputs(self, X):
        """(the model, its outputs for X as the user gave it, validated as scikit-learn does).
        The model is read once: a refit in another thread swaps in a new one meanwhile."""
        model = self.__dict__.get("_model")
        if model is None:
            check_is_fitted(self, "_params")
        rows = _float_rows(X, model.params.dtype)
        if (rows is not None and rows.dtype in inputs.C_DTYPES and rows.ndim == 2
                and rows.flags.c_contiguous and 0 < rows.shape[0]
                and rows.shape[1] == model.n_features and "feature_names_in_" not in self.__dict__
                and (rows.dtype == np.float32 or model.params.dtype == np.float64
                     or inputs.within_float32(rows))):
            # Already what the C side reads (it reads float64 rows for a float32 model as the
            # full path leaves them): validate_data would only confirm it, at ~80 us, eight
            # times the forward pass of one row. Finiteness is checked in C on the first
            # layer's pre-activations and on the outputs; a row that fails (a NaN or inf, or
            # finite values that overflow) sends X down the full path, which tells which, as
            # does a float64 value that float32 cannot hold (within_float32: a NaN too).
            out = model.forward(rows, 1, True) if rows.shape[0] < _core.PREDICT_THREADED_ROWS \
                else self._forward(rows, check_finite=True, model=model)
            if out is not None:
                # float64 input (a list of Python floats too) gives float64 values, as on the
                # full path
                return model, (out if out.dtype == np.float64 or _is_float32(X)
                               else out.astype(np.float64))
        rows = self._validate_X(X, reset=False, dtype=model.params.dtype)
        if rows.shape[1] != model.n_features:  # a refit on other features meanwhile
            raise ValueError(f"X has {rows.shape[1]} features, but this model is fitted with "
                             f"{model.n_features}")
        out = self._forward(rows, model=model)
        # float64 input gives float64 values, as scikit-learn's estimators do
        if out.dtype != np.float64 and not _is_float32(X):
            out = out.astype(np.float64)
        return model, out

    def predict(self, X):
        """Predict class labels (classification) or values (regression) for X.

        Labels are the class of the largest softmax output, or, for logistic outputs, the
        positive class (each label of a multilabel model) where its probability exceeds 0.5.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict, with the features of the fit.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted labels (a multilabel model gives an indicator matrix), or the
            predicted values, of shape (n_samples,) when the fit's ``y`` was 1-d. Values are
            float32 when the model and X are both float32, else float64.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If X has another number of features than the fit's, a value that is not
            finite, or finite values so large that the network's outputs overflow.

        See Also
        --------
        predict_proba : The class probabilities.

        Examples
        --------
        >>> from fastmlp import MLPRegressor
        >>> X, y = [[0.0], [0.5], [1.0], [1.5]], [0.0, 1.0, 2.0, 3.0]
        >>> reg = MLPRegressor(learning_rate_init=0.05, max_iter=500, random_state=0)
        >>> reg.fit(X, y).predict([[0.25], [1.25]]).shape
        (2,)
        """
        model, out = self._outputs(X)
        return targets.decode(out, model.binarizer, model.y_1d)

    @available_if(lambda self: (getattr(self, "_fitted_task", None) or self._task)
                  != "regression")
    def predict_proba(self, X):
        r"""Predict the class probabilities of X.

        With softmax outputs (several classes) they are the outputs
        :math:`f_c = e^{a_c} / \sum_k e^{a_k}`; with one logistic output :math:`p`
        (two classes) the columns are :math:`1 - p` and :math:`p`; a multilabel model gives
        each label's probability, so its rows need not sum to 1. A model fitted on a single
        class gives probability 1 for it. A ``Network`` fitted on real values has no
        ``predict_proba``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict, with the features of the fit.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The probability of each class (each label) in the order of ``classes_``,
            float32 when the model and X are both float32, else float64.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If X has another number of features than the fit's, a value that is not
            finite, or finite values so large that the network's outputs overflow.

        See Also
        --------
        predict : The labels.
        predict_log_proba : The logarithm of these probabilities.

        Examples
        --------
        >>> from fastmlp import MLPClassifier
        >>> X, y = [[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1]
        >>> clf = MLPClassifier(learning_rate_init=0.05, max_iter=300, random_state=0)
        >>> proba = clf.fit(X, y).predict_proba(X)
        >>> proba.shape, bool(proba[0, 0] > 0.5), bool(proba[3, 1] > 0.5)
        ((4, 2), True, True)
        """
        model, out = self._outputs(X)
        if model.binarizer is None:
            raise AttributeError("predict_proba is only available after fitting on class labels")
        return targets.probabilities(out, model.binarizer, model.out_activation)

    @available_if(lambda self: (getattr(self, "_fitted_task", None) or self._task)
                  != "regression")
    def predict_log_proba(self, X):
        """Predict the natural logarithm of the class probabilities of X.

        It is ``numpy.log(predict_proba(X))``, as scikit-learn's: ``-inf`` where a
        probability underflowed to 0.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict, with the features of the fit.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            The log-probability of each class (each label) in the order of ``classes_``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If X has another number of features than the fit's, a value that is not
            finite, or finite values so large that the network's outputs overflow.

        See Also
        --------
        predict_proba : The probabilities themselves.

        Examples
        --------
        >>> import numpy as np
        >>> from fastmlp import MLPClassifier
        >>> X, y = [[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1]
        >>> clf = MLPClassifier(learning_rate_init=0.05, max_iter=300, random_state=0)
        >>> clf = clf.fit(X, y)
        >>> np.allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X))
        True
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def score(self, X, y, sample_weight=None):
        r"""Return the accuracy (classification) or R^2 (regression) of ``predict(X)``.

        Accuracy is the (weighted) share of rows predicted right; for a multilabel model a
        row counts only when every one of its labels is right. R^2 is
        :math:`1 - \sum (y - \hat y)^2 / \sum (y - \bar y)^2`, averaged uniformly over
        several target columns.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their true labels or values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        score : float
            The accuracy or R^2 of the predictions.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        See Also
        --------
        sklearn.metrics.accuracy_score : The classification score.
        sklearn.metrics.r2_score : The regression score.

        Examples
        --------
        >>> from fastmlp import Network
        >>> X, y = [[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1]
        >>> net = Network(learning_rate_init=0.05, max_iter=300, random_state=0)
        >>> net.fit(X, y).score(X, y)
        1.0
        """
        check_is_fitted(self, "_params")
        if self._fitted_task == "regression":
            return targets.r2(y, self.predict(X), sample_weight)
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def recompute_batchnorm_statistics(self, X):
        r"""Set the batch-norm statistics to the exact ones of X.

        Every batch-norm layer's ``running_mean`` and ``running_var`` become the exact mean
        and unbiased variance of its pre-activation over all rows of X (the training set,
        say), the lecture's alternative to running averages: one pass over X per layer,
        layer l seeing the layers below in inference mode (no dropout) with their
        statistics already replaced. Weights, ``gamma`` and ``beta`` are unchanged. Like a
        refit, it computes a new model (a copy of the parameters) and swaps it in whole, so a
        prediction running in another thread meanwhile sees the old statistics or the new,
        never a mix; views taken of ``coefs_`` or ``batchnorm_`` before the call stay on the
        old model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            At least 2 rows with the features of the fit.

        Returns
        -------
        self : object
            The estimator, with its new statistics.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If the model was fitted without ``batch_norm=True``, or X has fewer than 2 rows,
            another number of features than the fit's, or a value that is not finite.

        See Also
        --------
        batchnorm_ : The statistics, with ``gamma`` and ``beta``.

        Notes
        -----
        For the pre-activations :math:`a_1, \dots, a_n` of a unit over the :math:`n` rows
        of X, the statistics are :math:`\mu = \frac{1}{n} \sum_t a_t` and
        :math:`\sigma^2 = \frac{1}{n - 1} \sum_t (a_t - \mu)^2`; prediction then computes
        the unit's :math:`\gamma (a - \mu) / \sqrt{\sigma^2 + 10^{-5}} + \beta`.

        Examples
        --------
        >>> import numpy as np
        >>> from fastmlp import MLPClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.randn(40, 3), np.arange(40) % 2
        >>> clf = MLPClassifier((4,), batch_norm=True, normalize=None, max_iter=5,
        ...                     dtype=np.float64, random_state=0).fit(X, y)
        >>> clf = clf.recompute_batchnorm_statistics(X)
        >>> a = X @ clf.coefs_[0] + clf.intercepts_[0]
        >>> np.allclose(clf.batchnorm_[0]["running_var"], a.var(axis=0, ddof=1))
        True
        """
        check_is_fitted(self, "_params")
        model = self._model
        if not model.spec["batch_norm"]:
            raise ValueError("recompute_batchnorm_statistics needs a model fitted with "
                             "batch_norm=True; this one has no batch normalization")
        X = self._validate_X(X, reset=False, dtype=model.params.dtype)
        if X.shape[0] < 2:
            raise ValueError("recompute_batchnorm_statistics needs at least 2 samples (the "
                             f"variance is unbiased), got {X.shape[0]}")
        n_threads = self._threads_for(X.shape[0])
        new = model.with_params(model.params.copy())
        with blas_single_threaded():
            _core.batchnorm_population(new.net, new.input(X), new.params, X.shape[0],
                                       n_threads)
        self._model = new  # one assignment: readers see the old model or this one
        return self


def _float_rows(X, dtype):
    """The array the fast path of a model of `dtype` may read for X: X itself if it is an
    ndarray, or for a list of rows of Python floats (one sample from a request, where
    validate_data took ~250 us for a row of 784) the array validate_data would make of it:
    numpy's, in the model's dtype (scikit-learn converts a list to the first dtype it accepts).
    None for anything else, which the full path validates: other types, a list that numpy
    cannot make an array of, whose values are not all floats (ints, bools, strings), or that
    a float32 model cannot hold (within_float32: the full path converts and refuses it once,
    with its one overflow warning)."""
    if type(X) is np.ndarray:
        return X
    if type(X) is not list:
        return None
    try:
        rows = np.asarray(X)
    except (ValueError, TypeError):  # ragged rows: the full path's error
        return None
    if rows.dtype != np.float64 or (dtype == np.float32 and not inputs.within_float32(rows)):
        return None
    return rows.astype(dtype, copy=False)


def _is_float32(X):
    """Whether X (an array, sparse matrix or DataFrame) holds float32 values only."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and not hasattr(X, "dtype"):
        return len(dtypes) > 0 and all(d == np.float32 for d in dtypes)
    return getattr(X, "dtype", None) == np.float32
