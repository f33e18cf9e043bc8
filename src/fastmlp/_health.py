"""An epoch's layer health: what csrc/health.c counted while train_epoch ran (a `_core.Health`),
turned into the records' structure, one dict per weight layer (LayerHealthDisplay draws it).
It is always counted: it costs under 2% of an epoch (docs/user_guide.rst, "Layer health",
which documents each measure for users)."""
from . import _core


def new_health(net, n_parts):
    """A Health for `net`'s layers cut into n_parts parts, with diagnostics' saturation margin."""
    return _core.Health(net, n_parts, _diagnostics_constants()[0])


def health_record(health, activation, n_examples):
    """The list of per-layer dicts of one epoch of n_examples rows, layer l fed by coefs_[l]:
    "saturated" (tanh, sigmoid), the fraction of its units whose output g(a), before dropout,
    was within SATURATION_MARGIN of a bound on at least SATURATED_EXAMPLES of the epoch's
    examples; "dead" (relu), the fraction that were 0 on every example; "mean_activation", the
    mean g(a) over units and examples (each None where it does not apply, and on the output
    layer); for the epoch's last update, "grad_norm" ||dJ_b/dW + alpha W|| on its batch b,
    "weight_norm" ||W|| after it, "update_ratio" ||W_after - W_before|| / ||W_before||.

    activation: the hidden layers' activation name. One call of the bridge (Health.records)
    adds the parts' rows in part order and builds the dicts."""
    if n_examples <= 0:
        counting = 0
    elif activation == "relu":
        counting = 1  # the units never active
    elif activation in ("tanh", "sigmoid", "logistic"):
        counting = 2  # the units near a bound on SATURATED_EXAMPLES of the examples
    else:
        counting = 0
    return health.records(counting, _diagnostics_constants()[1], n_examples)


_CONSTANTS = []


def _diagnostics_constants():
    """(SATURATION_MARGIN, SATURATED_EXAMPLES) of fastmlp.diagnostics, imported once (it
    imports network, which imports this module)."""
    if not _CONSTANTS:
        from .diagnostics import SATURATED_EXAMPLES, SATURATION_MARGIN
        _CONSTANTS.extend((SATURATION_MARGIN, SATURATED_EXAMPLES))
    return _CONSTANTS
