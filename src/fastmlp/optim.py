"""Optimizer hyperparameters and state buffers.

The update rules themselves are one fused C pass over the flat parameter buffer (csrc/optim.c);
this module turns an estimator's parameters into what that pass reads, and owns the state
buffers, which have the trainable part's layout (shared/API.md gives every formula)."""
import numpy as np

# epsilon=None means the solver's own default
DEFAULT_EPSILON = {"adam": 1e-8, "rmsprop": 1e-8, "adagrad": 1e-10, "sgd": 0.0}


def hyperparameters(estimator, learning_rate, schedule):
    """The dict that fastmlp._core.train_epoch turns into a fastmlp_optim struct."""
    solver = estimator.solver
    epsilon = estimator.epsilon
    return {
        "solver": solver,
        "schedule": schedule,
        "learning_rate": float(learning_rate),
        "power_t": float(estimator.power_t),
        "momentum": float(estimator.momentum) if solver == "sgd" else 0.0,
        "nesterov": int(bool(estimator.nesterovs_momentum)) if solver == "sgd" else 0,
        "beta_1": float(estimator.beta_1),
        "beta_2": float(estimator.beta_2),
        "rho": float(estimator.rho),
        "epsilon": float(DEFAULT_EPSILON[solver] if epsilon is None else epsilon),
        "alpha": float(estimator.alpha),
    }


def new_state(n_trainable, dtype):
    """Zeroed optimizer state (2, n_trainable): velocity / accumulated squares / Adam's m and v."""
    return np.zeros(2 * n_trainable, dtype=dtype)
