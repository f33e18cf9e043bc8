"""What fit and predict are handed, made what the C side reads: X validated as scikit-learn
validates it (but never copied: float32 and float64 rows in any memory order are converted as
the C side gathers them), the targets encoded as output units (fastmlp/targets.py), the sample
and class weights, and the validation set: early stopping's held-out rows, or the user's own.

`Inputs` is a part of `Network` (fastmlp/network.py), the first step of the data's path:
inputs, then training (fastmlp/training.py), then prediction (fastmlp/prediction.py)."""
import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import _check_sample_weight, validate_data

from . import targets

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# the float types the C side is built for: a model's, and those of X it reads as they are
C_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Inputs:
    """Network's validation of X, targets, weights and validation sets (a mixin: every method
    reads the estimator's hyperparameters and, after a fit, its model)."""

    def _validate_X(self, X, reset, dtype=None):
        dtype = self._model_dtype() if dtype is None else dtype
        X = validate_data(self, X, reset=reset, accept_sparse=["csr", "csc"],
                          dtype=_input_dtypes(dtype), order=None, copy=False)
        return _as_c_input(X, dtype)

    def _known_inputs(self, X, y, dtype):
        """(X, y) as validate_data(reset=False) would return them, but for the finiteness of
        X, for inputs of the usual kind on a fitted model whose checks are cheap to prove: X a
        C-ordered ndarray of the model's dtype with the fitted feature count (the model fitted
        without feature names), y an ndarray of as many rows, 1-d booleans, integers or
        strings (class labels), or finite real values (regression). Anything else gives None,
        and the caller runs scikit-learn's validation, which raises its errors. Each check is
        an attribute read or one reduction over y: validate_data costs a partial_fit of 256
        rows about 0.1 ms. X's values are checked by the C side as it gathers the rows
        (training.UncheckedInputs): scanning them here cost as much again."""
        if (type(X) is not np.ndarray or X.dtype != dtype or X.ndim != 2
                or not X.flags.c_contiguous or not 0 < X.shape[0] == len_or_none(y)
                or X.shape[1] != self.__dict__.get("n_features_in_")
                or "feature_names_in_" in self.__dict__):
            return None
        if self._fitted_task == "classification":
            if y.ndim != 1 or y.dtype.kind not in targets.LABEL_KINDS:
                return None
        elif not (y.ndim == 1 or y.ndim == 2 and y.shape[1]) or y.dtype.kind not in "biuf":
            return None
        if y.dtype.kind == "f" and not get_config()["assume_finite"]:
            # a sum is finite when every value is (an overflow only sends y to the full
            # check); scikit-learn's first pass is the same sum
            with np.errstate(over="ignore", invalid="ignore"):
                if not np.isfinite(y.sum()):
                    return None
        return X, y

    def _encode_targets(self, y, first=False):
        """Y (n, n_outputs) in the model dtype, encoded as the fitted model's targets (tests
        and diagnostics; `first` is the old signature's: fit encodes in fastmlp/targets.py)."""
        if first:
            raise ValueError("_encode_targets encodes for a fitted model only (first=False)")
        model = self._model
        if model.binarizer is None:
            return targets.encode_values(y, model.params.dtype, self.n_outputs_)[0]
        return targets.read_labels(y, model.binarizer, model.params.dtype)[2]

    def _targets(self, X, y, task, first, classes, dtype):
        """Targets -> output units: (y as the labels were read, Y (n, n_outputs) in `dtype`,
        the binarizer or None, the output activation, whether y was 1-d (regression), y's
        label kind or None). The Autoencoder's override makes Y the rows X themselves."""
        binarizer, y_1d, kind = None, False, None
        if task == "classification" and first:
            y, kind = targets.label_kind(y)
            binarizer, out_activation = targets.fit_binarizer(y, kind, classes)
            Y = targets.encode_labels(y, kind, binarizer, dtype)
        elif task == "classification":
            binarizer, out_activation = self._model.binarizer, self.out_activation_
            # the kind only serves the class weights (_sample_weight)
            y, kind, Y = targets.read_labels(y, binarizer, dtype,
                                             kind_needed=self.class_weight is not None)
        else:
            Y, y_1d = targets.encode_values(y, dtype, None if first else self.n_outputs_)
            poisson = getattr(self, "loss", "squared_error") == "poisson"
            if poisson and np.any(Y < 0):
                raise ValueError("loss='poisson' needs targets y >= 0 (counts, rates); y has "
                                 f"negative values, the least {Y.min()}")
            out_activation = "exp" if poisson else "identity"
            if not first:
                y_1d = self._model.y_1d
        return y, Y, binarizer, out_activation, y_1d, kind

    def _sample_weight(self, sample_weight, X, y, kind, incremental, dtype):
        """The per-sample weights: the user's times the class weights, in the model dtype."""
        class_weights = None
        if kind is not None:
            class_weights = targets.class_sample_weight(self.class_weight, y, kind,
                                                        incremental)
        if class_weights is not None:
            sample_weight = class_weights if sample_weight is None else \
                np.asarray(sample_weight, dtype=np.float64) * class_weights
        if sample_weight is None:
            return None
        sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype,
                                             ensure_non_negative=True)
        if not np.any(sample_weight > 0):
            raise ValueError("sample_weight must have at least one positive weight")
        return np.ascontiguousarray(sample_weight)

    def _validation_set(self, validation, binarizer, kind, incremental, dtype):
        """fit's (X_val, y_val, sample_weight_val) as the loop reads them: (X, Y, weights, y)."""
        if validation is None:
            return None
        X_val, y_val, weight = validation
        X_val, y_val = validate_data(self, X_val, y_val, reset=False,
                                     accept_sparse=["csr", "csc"], dtype=_input_dtypes(dtype),
                                     order=None, copy=False,
                                     multi_output=True, y_numeric=binarizer is None)
        if binarizer is None:
            Y_val = targets.encode_values(y_val, dtype, None)[0]
        else:
            y_val, _, Y_val = targets.read_labels(y_val, binarizer, dtype)
        if weight is not None:
            weight = _check_sample_weight(weight, X_val, dtype=np.float64,
                                          ensure_non_negative=True)
        if binarizer is not None:
            class_weights = targets.class_sample_weight(self.class_weight, y_val, kind,
                                                        incremental)
            if class_weights is not None:
                weight = class_weights if weight is None else weight * class_weights
        return _as_c_input(X_val, dtype), Y_val, weight, y_val

    def _validation_split(self, X, Y, y, sample_weight, model, rng):
        """Training rows (sorted indices, so X is never copied) and the held-out set."""
        n = X.shape[0]
        stratify = None
        if model.out_activation == "softmax":
            stratify = Y.argmax(axis=1)
        elif model.binarizer is not None and Y.shape[1] == 1:
            stratify = Y[:, 0]
        try:
            train, held_out = train_test_split(np.arange(n, dtype=np.int64),
                                               test_size=self.validation_fraction,
                                               random_state=rng, stratify=stratify)
        except ValueError as error:
            raise ValueError(f"early_stopping could not hold out validation_fraction="
                             f"{self.validation_fraction} of {n} samples: {error}") from None
        held_out.sort()
        weight = None if sample_weight is None else \
            sample_weight[held_out].astype(np.float64)
        return np.sort(train), (_as_c_input(X[held_out], model.params.dtype), Y[held_out], weight,
                                y[held_out])

    def _default_score(self, out, Y, weight, model):
        """The estimator's score from outputs: R^2 (regression) or accuracy."""
        if model.binarizer is None:
            return targets.r2(Y, out, weight)
        if model.out_activation == "softmax":
            return accuracy_score(Y.argmax(axis=1), out.argmax(axis=1), sample_weight=weight)
        return accuracy_score(Y > 0.5, out > 0.5, sample_weight=weight)


def len_or_none(y):
    """The rows of an ndarray y, else None."""
    return y.shape[0] if type(y) is np.ndarray and y.ndim else None


def _input_dtypes(dtype):
    """The dtypes validation leaves X in for a model of `dtype`: float32 and float64 X are read
    as they are (the C side converts rows as it gathers them, in any memory order); other
    dtypes become the model's."""
    return (dtype, np.float64 if dtype == np.float32 else np.float32)


def within_float32(X):
    """Whether every value of the float64 array X is finite once rounded to float32 (a NaN is
    not): max and min are reductions, they make no copy of X."""
    return X.size == 0 or bool(X.max() <= _FLOAT32_MAX and X.min() >= -_FLOAT32_MAX)


def _as_c_input(X, dtype):
    """X as the C side reads it for a model of `dtype`: dense float32 or float64 in any memory
    order (as validated), or CSR. float64 values a float32 model reads must be finite once
    rounded, as on the converted copy that scikit-learn's validation would check."""
    if not sp.issparse(X):
        if X.dtype == np.float64 and dtype == np.float32 and not within_float32(X):
            raise ValueError("Input X contains infinity or a value too large for "
                             "dtype('float32').")
        return X
    X = X.tocsr()
    if not X.data.flags.c_contiguous:
        X.data = np.ascontiguousarray(X.data)
    return X
