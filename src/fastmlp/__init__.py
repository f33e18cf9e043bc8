"""Multi-layer perceptrons on the CPU, with C/OpenMP kernels behind scikit-learn estimators.

`MLPClassifier` and `MLPRegressor` take the parameters of scikit-learn's estimators of the same
names, and more (dropout, batch normalization, more optimizers and schedules, float32 or
float64); `Network` learns its task from the targets. `save` and `load` keep a fitted model
in a file of arrays and JSON, `check_gradients` checks the backward pass against finite
differences and `show_config` prints what this build runs with. The user guide and the API
reference are in the repository's docs/ folder.
"""
__version__ = "0.1.0"

from ._config import show_config
from .autoencoder import Autoencoder
from .diagnostics import check_gradients, overfit_check
from .estimators import MLPClassifier, MLPRegressor
from .export import to_onnx
from .network import Network
from .persistence import load, save
from .plotting import LayerHealthDisplay, TrainingCurveDisplay
from . import callbacks  # noqa: E402  (fastmlp.callbacks: ProgressBar, Checkpoint, ...)

__all__ = ["Network", "MLPClassifier", "MLPRegressor", "check_gradients", "show_config", "save",
           "load", "__version__",
           "overfit_check", "TrainingCurveDisplay", "LayerHealthDisplay", "to_onnx",
           "Autoencoder"]
