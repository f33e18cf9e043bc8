"""Optimizer hyperparameters and state buffers.

The update rules themselves are one fused C pass over the flat parameter buffer (csrc/optim.c);
this module turns an estimator's parameters into what that pass reads, and owns the state
buffers, which have the trainable part's layout (shared/API.md gives every formula)."""
import numpy as np

# epsilon=None means the solver's own default
DEFAULT_EPSILON = {"adam": 1e-8, "rmsprop": 1e-8, "adagrad": 1e-10, "sgd": 0.0}


def hyperparameters(estimator, learning_rate, schedule, dtype=None):
    """The dict that fastmlp._core.train_epoch turns into a fastmlp_optim struct, for a model
    of `dtype` (the fitted model's when None)."""
    check_representable(estimator, estimator._params.dtype if dtype is None else dtype)
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


def check_representable(estimator, dtype):
    """Raise ValueError for a hyperparameter that the C step, which rounds it to the model's
    dtype, would not see as given: a positive value below the dtype's smallest normal number
    (epsilon=1e-300 is 0 in float32, and the step 0 / (0 + 0) made NaN parameters) or above
    its largest (infinite). The averaging rates beta_1, beta_2 and rho need no check: the
    step uses 1 - beta, rounded from double, which is never below 2**-53."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    smallest, largest = float(info.tiny), float(info.max)  # compared as Python floats: no cast
    values = {"learning_rate_init": estimator.learning_rate_init, "alpha": estimator.alpha}
    if estimator.solver != "sgd" and estimator.epsilon is not None:
        values["epsilon"] = estimator.epsilon
    for name, value in values.items():
        if value != 0 and not smallest <= value <= largest:
            wider = np.finfo(np.float64)
            hint = " (or dtype=numpy.float64)" if wider.tiny <= value <= wider.max else ""
            raise ValueError(f"{name}={value!r} cannot be represented in {dtype.name}, the "
                             f"model's dtype: a positive {dtype.name} is in [{smallest:.8g}, "
                             f"{largest:.8g}]; use a value in that range{hint}")
