"""MLPClassifier and MLPRegressor: a Network whose task is fixed, with scikit-learn's scores."""
import inspect

from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if

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
    """Regression, one output per target column: identity outputs with squared error
    (loss="squared_error"), or exponential outputs f = exp(a) with the half Poisson deviance
    y log(y / f) - y + f for targets y >= 0 (loss="poisson", scikit-learn's). `score` is R^2."""

    _task = "regression"
    _parameter_constraints = {**Network._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
                 **params):
        super().__init__(hidden_layer_sizes, activation, **params)
        self.loss = loss

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), keeping the optimizer state between calls. A regressor has
        no classes: sample_weight is the third parameter, as in scikit-learn's MLPRegressor,
        so a weight vector passed by position is never taken for labels."""
        return super().partial_fit(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = None  # Network's: this one only regresses
        return tags

    def score(self, X, y, sample_weight=None):
        return RegressorMixin.score(self, X, y, sample_weight=sample_weight)


def _with_loss(network_init):
    """Network's signature with `loss` among the keywords: scikit-learn reads an estimator's
    parameters from its __init__ signature, and this keeps the one list of the others in
    Network. (`loss` is keyword-only: scikit-learn's MLPRegressor takes it as its first
    positional parameter, fastmlp keeps hidden_layer_sizes first for every estimator.)"""
    signature = inspect.signature(network_init)
    parameters = list(signature.parameters.values())
    keywords = next(i for i, p in enumerate(parameters) if p.kind is p.KEYWORD_ONLY)
    loss = inspect.Parameter("loss", inspect.Parameter.KEYWORD_ONLY, default="squared_error")
    return signature.replace(parameters=parameters[:keywords] + [loss] + parameters[keywords:])


MLPRegressor.__init__.__signature__ = _with_loss(Network.__init__)
