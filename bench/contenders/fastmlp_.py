"""fastmlp: the estimator exactly as a user calls it (fit with warm_start for more epochs)."""
import contextlib
import io
import re
import warnings

import numpy as np


def _estimator(hidden, batch, threads, max_iter=1):
    from fastmlp import MLPClassifier
    return MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.01,
                         momentum=0.9, nesterovs_momentum=False, alpha=0.0, batch_size=batch,
                         max_iter=max_iter, tol=0.0, n_iter_no_change=10**6, shuffle=True,
                         early_stopping=False, normalize=None, n_threads=threads,
                         random_state=0, warm_start=True)


class Trainer:
    def __init__(self, hidden, batch, X, y, threads):
        import fastmlp
        self.version = fastmlp.__version__
        self.clf = _estimator(hidden, batch, threads)
        self.X, self.y = X, y
        self.samples_per_epoch = X.shape[0]
        self.c_epoch_seconds = []

    def run(self, k):
        # warm_start keeps the weights; tol=0 and a huge n_iter_no_change: exactly k epochs.
        # verbose prints the seconds C spent in each epoch, which separates the epoch loop
        # from the per-fit Python work (validation of X and y, target encoding, set-up).
        self.clf.set_params(max_iter=k, verbose=True)
        log = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):
            warnings.simplefilter("ignore")  # ConvergenceWarning: stopping at max_iter is meant
            self.clf.fit(self.X, self.y)
        self.c_epoch_seconds += [float(s) for s in re.findall(r"loss [^,]+, ([0-9.]+) s", log.getvalue())]

    def extra(self):
        return {"c_epoch_seconds": float(np.median(self.c_epoch_seconds[1:] or self.c_epoch_seconds)),
                "final_loss": float(self.clf.loss_)}


def trainer(hidden, batch, X, y, threads):
    return Trainer(hidden, batch, X, y, threads)


def model_with(layers, threads):
    """A fitted MLPClassifier whose weights are `layers`: fit one epoch on a few rows holding
    every class, then write the weights into coefs_/intercepts_ (views onto the model)."""
    from common import N_FEATURES, N_CLASSES
    hidden = tuple(W.shape[1] for W, _ in layers[:-1])
    clf = _estimator(hidden, 10, threads)
    X = np.zeros((N_CLASSES, N_FEATURES), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, np.arange(N_CLASSES))
    for i, (W, b) in enumerate(layers):
        clf.coefs_[i][...] = W
        clf.intercepts_[i][...] = b
    return clf


def predictor(layers, threads):
    return model_with(layers, threads).predict_proba


def version():
    import fastmlp
    return fastmlp.__version__
