"""The lecture's checks on an implementation: gradients against finite differences."""
import numpy as np


def check_gradients(estimator, X, y, sample_weight=None, eps=1e-6, seed=0, t=1, floor=1e-3):
    """Compare the C backward pass with central finite differences of the C forward pass.

    For each trainable parameter p: (J(p + eps) - J(p - eps)) / (2 eps) against dJ/dp, on one
    batch made of all rows of (X, y), in training mode (batch statistics; dropout with the fixed
    mask keyed by (seed, t)). J includes the L2 term. Needs a fitted float64 estimator (float32
    cannot resolve eps = 1e-6). Returns the largest relative error
    abs(analytic - numeric) / max(abs(analytic) + abs(numeric), floor) and the array of all of
    them, in the flat buffer's layout. The floor is there because J itself carries float64 rounding
    of about 1e-16 abs(J), so central differences resolve a gradient only to ~1e-10 absolute at
    eps = 1e-6: a component much smaller than `floor` is judged on its absolute error.
    """
    params = estimator._params
    if params.dtype != np.float64:
        raise ValueError("check_gradients needs a model with dtype=numpy.float64, got "
                         f"{params.dtype}")
    _, analytic = estimator._batch_gradient(X, y, sample_weight, seed=seed, t=t)
    numeric = np.empty_like(analytic)
    for i in range(analytic.size):
        saved = params[i]
        params[i] = saved + eps
        plus, _ = estimator._batch_gradient(X, y, sample_weight, seed=seed, t=t)
        params[i] = saved - eps
        minus, _ = estimator._batch_gradient(X, y, sample_weight, seed=seed, t=t)
        params[i] = saved
        numeric[i] = (plus - minus) / (2 * eps)
    errors = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)
    return float(errors.max()), errors
