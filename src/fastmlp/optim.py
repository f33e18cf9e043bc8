"""Optimizer hyperparameters and state buffers.

The update rules themselves are one fused C pass over the flat parameter buffer (csrc/optim.c);
this module turns an estimator's parameters into what that pass reads, and owns the state
buffers, which have the trainable part's layout (shared/API.md gives every formula)."""
import numpy as np

from . import _core

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


def state_slots(solver):
    """The rows of n_trainable values `solver`'s state holds: adam's m and v (2), sgd's
    velocity or adagrad's and rmsprop's sums of squares (1), nothing for L-BFGS, whose
    curvature pairs live within one fit."""
    return 0 if solver == "lbfgs" else _core.state_slots(solver)


def new_state(n_trainable, dtype, solver):
    """Zeroed optimizer state (state_slots(solver), n_trainable), flat: the velocity, the
    accumulated squares, or Adam's m then v. Its pages become resident as the step first
    writes them (np.zeros maps zero pages), so a fit holds what its solver touches."""
    return np.zeros(state_slots(solver) * n_trainable, dtype=dtype)


def state_values(state, n_trainable, solver):
    """`state` cut to the values `solver` uses: a state of (2, n_trainable) from before the
    state was sized by its solver (file format version 2 and older, or a pickle) keeps only
    its first row for a one-row solver. Values past them were never read."""
    size = state_slots(solver) * n_trainable
    return state if state.size == size else state[:size].copy()


# dtype -> (its smallest normal number, its largest), as Python floats
_LIMITS = {}


def check_representable(estimator, dtype):
    """Raise ValueError for a hyperparameter that the C step, which rounds it to the model's
    dtype, would not see as given: a positive value below the dtype's smallest normal number
    (epsilon=1e-300 is 0 in float32, and the step 0 / (0 + 0) made NaN parameters) or above
    its largest (infinite). The averaging rates beta_1, beta_2 and rho need no check: the
    step uses 1 - beta, rounded from double, which is never below 2**-53."""
    limits = _LIMITS.get(dtype)
    if limits is None:  # np.finfo's lookup: most of the 16 us a partial_fit spent here
        info = np.finfo(dtype)
        limits = _LIMITS[dtype] = float(info.tiny), float(info.max)
    smallest, largest = limits  # compared as Python floats: no cast
    values = {"learning_rate_init": estimator.learning_rate_init, "alpha": estimator.alpha}
    if estimator.solver != "sgd" and estimator.epsilon is not None:
        values["epsilon"] = estimator.epsilon
    for name, value in values.items():
        if value != 0 and not smallest <= value <= largest:
            wider = np.finfo(np.float64)
            hint = " (or dtype=numpy.float64)" if wider.tiny <= value <= wider.max else ""
            dtype = np.dtype(dtype)
            raise ValueError(f"{name}={value!r} cannot be represented in {dtype.name}, the "
                             f"model's dtype: a positive {dtype.name} is in [{smallest:.8g}, "
                             f"{largest:.8g}]; use a value in that range{hint}")


# scipy's L-BFGS-B keeps this many (s, y) pairs by default (its maxcor), which fastmlp leaves
LBFGS_PAIRS = 10


def fit_copies(solver, gradient, itemsize, best_epoch):
    """How many parameter buffers' worth of memory a fit holds at its peak besides the C
    workspace, in the model's dtype of `itemsize` bytes: what check_memory refuses a model by.

    A stochastic solver: the parameters, the state's rows (state_slots), what training
    holds of the gradient (`gradient`, as a share of the parameters: the C side's
    Net.stored_gradient and Net.gradient_scratch over the layout's size), and with early
    stopping (`best_epoch`) the best epoch's parameters. The gradient buffer's pages that
    training never writes never become resident: the weights' where the backward GEMMs add
    the gradient straight into the velocity (plain SGD momentum, csrc/train.h's fused
    momentum), and those of every layer the tiles step in backward (csrc/step.c), whose
    gradient lives a block of dW's rows at a time in each work part's scratch (at most
    ~0.5 MB a part). The biases' gradient is always stored.

    L-BFGS: the parameters and the gradient, and about 2 * LBFGS_PAIRS + 18 float64 vectors:
    L-BFGS-B's work array (2 * LBFGS_PAIRS + 5 of them), its integer work, bounds and copies
    of the iterate and gradient, fastmlp's float64 start point and (float32 models) float64
    gradient. This says 78 for float32; a float32 fit of 784-1024-1024-10 peaked at 75.5
    parameter buffers beyond its workspace with scipy 1.17, from its 15th iteration on."""
    if solver == "lbfgs":
        return 2 + (2 * LBFGS_PAIRS + 17 + (itemsize != 8)) * 8 / itemsize
    return 1 + state_slots(solver) + gradient + bool(best_epoch)
