"""MLPClassifier and MLPRegressor: a Network whose task is fixed, with scikit-learn's scores."""
from sklearn.base import ClassifierMixin, RegressorMixin

from .network import Network


class MLPClassifier(ClassifierMixin, Network):
    """Classification: softmax outputs with cross-entropy for several classes, one logistic
    output for two, one logistic output per label for a multilabel indicator matrix.
    `score` is the accuracy."""

    _task = "classification"

    def score(self, X, y, sample_weight=None):
        return ClassifierMixin.score(self, X, y, sample_weight=sample_weight)


class MLPRegressor(RegressorMixin, Network):
    """Regression: identity outputs with squared error, one per target column. `score` is R^2."""

    _task = "regression"

    def score(self, X, y, sample_weight=None):
        return RegressorMixin.score(self, X, y, sample_weight=sample_weight)
