"""MLPClassifier and MLPRegressor: a Network whose task is fixed, with scikit-learn's scores."""
from sklearn.base import ClassifierMixin, RegressorMixin

from .network import Network


class MLPClassifier(ClassifierMixin, Network):
    """Classification: softmax outputs with cross-entropy for several classes, one logistic
    output for two, one logistic output per label for a multilabel indicator matrix.
    `score` is the accuracy."""

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
        return ClassifierMixin.score(self, X, y, sample_weight=sample_weight)


class MLPRegressor(RegressorMixin, Network):
    """Regression: identity outputs with squared error, one per target column. `score` is R^2."""

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = None  # Network's: this one only regresses
        return tags

    def score(self, X, y, sample_weight=None):
        return RegressorMixin.score(self, X, y, sample_weight=sample_weight)
