"""Targets <-> output units: class labels through scikit-learn's LabelBinarizer, real values as
they are, and class weights turned into per-sample weights (the C loss already weights each
sample, so a class weight costs nothing per batch)."""
import numpy as np
from sklearn.metrics import r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from . import _core

REGRESSION_KINDS = ("continuous", "continuous-multioutput")
# the dtype kinds whose 1-d arrays are class labels whatever their values (booleans, integers,
# strings): type_of_target tells binary from multiclass by the number of distinct values only
LABEL_KINDS = "biuU"


def task_of(y):
    """"regression" for real-valued targets, else "classification"."""
    return "regression" if type_of_target(y) in REGRESSION_KINDS else "classification"


def label_kind(y):
    """y as the binarizer reads it (one column of labels made 1-d) and its kind."""
    if getattr(y, "ndim", 1) == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)  # one column of labels, not a multilabel matrix
    if type(y) is np.ndarray and y.ndim == 1 and y.size and y.dtype.kind in LABEL_KINDS:
        # what type_of_target answers for a 1-d array of booleans, integers or strings, at a
        # tenth of its cost (a partial_fit's whole Python side is ~0.2 ms)
        return y, "multiclass" if len(np.unique(y)) > 2 else "binary"
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass", "multilabel-indicator"):
        raise ValueError(f"Unknown label type: {kind!r}. Classification needs class labels "
                         "(binary or multiclass) or a multilabel indicator matrix as y")
    return y, kind


def fit_binarizer(y, kind, classes=None):
    """The LabelBinarizer of a first fit and the output activation it implies."""
    binarizer = LabelBinarizer()
    if kind == "multilabel-indicator":
        # the binarizer learns the label columns from the matrix itself
        if classes is not None and len(classes) != y.shape[1]:
            raise ValueError(f"classes has {len(classes)} labels but the multilabel y has "
                             f"{y.shape[1]} columns")
        binarizer.fit(y)
    else:
        binarizer.fit(unique_labels(y) if classes is None else classes)
    # one class is accepted, as scikit-learn does: its single logistic output learns the
    # all-zero target of LabelBinarizer, and predict gives that class
    return binarizer, "softmax" if binarizer.y_type_ == "multiclass" else "logistic"


def encode_labels(y, kind, binarizer, dtype):
    """Y (n, n_outputs) in `dtype`; labels never seen at the first fit are refused."""
    if kind != "multilabel-indicator":
        classes = binarizer.classes_
        column = _label_columns(y, classes)
        if column is not None:
            return _one_hot(column, binarizer, dtype)
        unseen = np.setdiff1d(unique_labels(y), classes)
        if len(unseen):
            raise ValueError(f"y has labels {np.asarray(unseen).tolist()} not among the "
                             f"classes seen at the first fit, {classes.tolist()}")
    return np.ascontiguousarray(binarizer.transform(y), dtype=dtype)


def read_labels(y, binarizer, dtype, kind_needed=True):
    """(y as the binarizer reads it, its kind, Y) for the fitted `binarizer`: label_kind and
    encode_labels in one, which for a 1-d array of known labels reads the kind from their
    columns (two or fewer distinct: binary), without type_of_target. kind_needed=False (no
    class weights to compute from it): that kind is None."""
    if type(y) is np.ndarray and y.ndim == 1 and y.size and y.dtype.kind in LABEL_KINDS \
            and binarizer.y_type_ != "multilabel-indicator":
        if not kind_needed:  # integer labels: one call of the bridge, where it applies
            Y = _core.one_hot(y, binarizer.classes_, binarizer.y_type_ == "binary", dtype)
            if Y is not None:
                return y, None, Y
        column = _label_columns(y, binarizer.classes_)
        if column is not None:
            kind = None
            if kind_needed:
                present = np.count_nonzero(np.bincount(column,
                                                       minlength=len(binarizer.classes_)))
                kind = "multiclass" if present > 2 else "binary"
            return y, kind, _one_hot(column, binarizer, dtype)
    y, kind = label_kind(y)
    return y, kind, encode_labels(y, kind, binarizer, dtype)


def _label_columns(y, classes):
    """Each label's column in the sorted classes_ by one binary search (what
    LabelBinarizer.transform gives at a tenth of its cost), or None when some label is not
    among the classes or cannot be ordered against them."""
    try:  # the arrays' own methods: numpy's functions add a Python call each
        column = classes.searchsorted(y)
        known = (classes.take(column, mode="clip") == y).all()
    except (TypeError, ValueError):
        return None
    return column if known else None


def _one_hot(column, binarizer, dtype):
    """Y (n, n_outputs) in `dtype` of the labels' columns, as LabelBinarizer encodes them."""
    if binarizer.y_type_ == "binary":
        return np.ascontiguousarray((column == 1).astype(dtype).reshape(-1, 1))
    Y = np.zeros((len(column), len(binarizer.classes_)), dtype=dtype)
    Y[np.arange(len(column)), column] = 1
    return Y


def encode_values(y, dtype, n_outputs=None):
    """(Y (n, n_outputs) in `dtype`, whether y was 1-d) for real-valued targets."""
    Y = np.asarray(y, dtype=dtype)
    y_1d = Y.ndim == 1
    Y = Y.reshape(len(Y), -1)
    if n_outputs is not None and Y.shape[1] != n_outputs:
        raise ValueError(f"y has {Y.shape[1]} outputs; the model was fitted with {n_outputs}")
    return np.ascontiguousarray(Y), y_1d


def class_sample_weight(class_weight, y, kind, incremental):
    """Per-sample weights (n,) float64 from `class_weight`, as scikit-learn's classifiers
    define it: None, "balanced" (n_samples / (n_classes * count of the class)) or a dict
    {label: weight}; a multilabel y takes "balanced" per label or a list of one dict per
    label, whose weights multiply. None when there is nothing to weight."""
    if class_weight is None:
        return None
    if incremental and class_weight == "balanced":
        # SGDClassifier's refusal: one block's class counts are not the data's
        raise ValueError("class_weight='balanced' is not supported for partial_fit: one call's "
                         "class counts are not those of the data. Compute the weights once "
                         "with sklearn.utils.class_weight.compute_class_weight('balanced', "
                         "classes=classes, y=y) on a large enough sample of the targets and "
                         "pass them as class_weight={label: weight}")
    if kind == "multilabel-indicator" and isinstance(class_weight, dict):
        raise ValueError("a multilabel y takes class_weight='balanced' (per label) or a list "
                         "of one dict {0: weight, 1: weight} per label column, got a dict")
    if kind != "multilabel-indicator" and isinstance(class_weight, list):
        raise ValueError("class_weight as a list of dicts is for multilabel y (one dict per "
                         "label column); for class labels pass one dict {label: weight}")
    return compute_sample_weight(class_weight, y)


def decode(out, binarizer, y_1d):
    """Predictions from the network's outputs: labels (classification) or values."""
    if binarizer is None:
        return out.ravel() if y_1d else out
    classes = binarizer.classes_
    if not binarizer.sparse_input_:
        # LabelBinarizer.inverse_transform's labels without its input checks, which cost
        # ~40 us a call, four times the forward pass of one row of 784-100-10: out is the
        # network's own (n, n_outputs) array. Multiclass: the class of the first largest
        # output; binary: the positive class where the one logistic output is above the
        # binarizer's threshold, compared in out's dtype as inverse_transform compares it.
        if binarizer.y_type_ == "multiclass":
            return classes[out.argmax(axis=1)]
        if binarizer.y_type_ == "binary" and len(classes) == 2:
            threshold = (binarizer.pos_label + binarizer.neg_label) / 2.0
            return classes[(out[:, 0] > threshold).astype(np.intp)]
    return binarizer.inverse_transform(out)  # one class, multilabel, a sparse multilabel y


def probabilities(out, binarizer, out_activation):
    """Class probabilities (n, n_classes) from the outputs; a multilabel model's per label."""
    if len(binarizer.classes_) == 1:
        return np.ones((len(out), 1), dtype=out.dtype)  # the one class, for certain
    if out_activation == "logistic" and binarizer.y_type_ == "binary":
        return np.hstack([1 - out, out])
    return out


def r2(y, predicted, sample_weight=None):
    """scikit-learn's r2_score, and where its sums of squares overflowed float64 the same R^2
    computed again without the overflow: finite predictions of 1e154 and more (a model trained
    on huge targets, found by the fuzzer) made the residuals' sum inf and the score -inf.
    R^2 is the same for y and the predictions scaled by one positive factor, so scaled by their
    largest magnitude r2_score computes it again. y that is not finite keeps r2_score's own
    verdict, and an R^2 below float64's range stays -inf, what it rounds to."""
    score = r2_score(y, predicted, sample_weight=sample_weight)
    if np.isfinite(score):
        return score
    y = np.asarray(y, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if not (np.isfinite(y).all() and np.isfinite(predicted).all()):
        return score
    top = max(np.abs(y).max(initial=0.0), np.abs(predicted).max(initial=0.0))
    if not top > 0:
        return score
    return r2_score(y / top, predicted / top, sample_weight=sample_weight)
