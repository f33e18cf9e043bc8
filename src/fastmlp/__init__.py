"""fastmlp: multi-layer perceptrons on the CPU, with C/OpenMP kernels behind a scikit-learn
estimator. The public names are those of shared/API.md."""
__version__ = "0.1.0"

from ._config import show_config
from .diagnostics import check_gradients
from .estimators import MLPClassifier, MLPRegressor
from .network import Network
from .persistence import load, save
from . import callbacks  # noqa: E402  (fastmlp.callbacks: ProgressBar, Checkpoint, ...)

__all__ = ["Network", "MLPClassifier", "MLPRegressor", "check_gradients", "show_config", "save",
           "load", "__version__"]
