"""An epoch's layer health: what csrc/health.c counted while train_epoch ran (a `_core.Health`),
turned into the records' structure, one dict per weight layer (LayerHealthDisplay draws it).
It is always counted: it costs under 2% of an epoch (docs/user_guide.rst, "Layer health",
which documents each measure for users)."""
import math

import numpy as np

from . import _core


def new_health(net, n_parts):
    """A Health for `net`'s layers cut into n_parts parts, with diagnostics' saturation margin."""
    return _core.Health(net, n_parts, _diagnostics_constants()[0])


def health_record(health, units, activation, n_examples):
    """The list of per-layer dicts of one epoch of n_examples rows, layer l fed by coefs_[l]:
    "saturated" (tanh, sigmoid), the fraction of its units whose output g(a), before dropout,
    was within SATURATION_MARGIN of a bound on at least SATURATED_EXAMPLES of the epoch's
    examples; "dead" (relu), the fraction that were 0 on every example; "mean_activation", the
    mean g(a) over units and examples (each None where it does not apply, and on the output
    layer); for the epoch's last update, "grad_norm" ||dJ_b/dW + alpha W|| on its batch b,
    "weight_norm" ||W|| after it, "update_ratio" ||W_after - W_before|| / ||W_before||.

    units: the layout's units (n_features, hidden..., n_outputs); activation: the hidden
    layers' activation name. The parts' rows are summed in part order."""
    saturated_examples = _diagnostics_constants()[1]
    # one part (one thread) is read in place; the parts' rows are added in part order (a
    # reduction over the first axis adds row after row)
    if health.count.shape[0] == 1:
        count, total = health.count[0], health.sum[0]
    else:
        count, total = health.count.sum(axis=0), health.sum.sum(axis=0)
    # the conditions over every hidden unit at once, counted per layer
    if n_examples <= 0:
        counted = None
    elif activation == "relu":
        counted = count == 0
    elif activation in ("tanh", "sigmoid", "logistic"):
        counted = count / n_examples >= saturated_examples
    else:
        counted = None
    records = []
    start = 0
    last = len(units) - 2  # the output layer's index
    for l, (g2, before2, after2, update2) in enumerate(health.norms[:len(units) - 1].tolist()):
        record = {"saturated": None, "dead": None, "mean_activation": None,
                  "grad_norm": math.sqrt(g2), "weight_norm": math.sqrt(after2),
                  "update_ratio": math.sqrt(update2) / math.sqrt(before2) if before2 > 0
                  else (0.0 if update2 == 0 else float("inf"))}
        n = int(units[l + 1])
        if l < last and n_examples > 0:
            record["mean_activation"] = float(total[start:start + n].sum() / (n * n_examples))
            if counted is not None:
                # a fraction of units as np.mean of the condition gives it: count / n
                record["dead" if activation == "relu" else "saturated"] = \
                    np.count_nonzero(counted[start:start + n]) / n
        start += n
        records.append(record)
    return records


_CONSTANTS = []


def _diagnostics_constants():
    """(SATURATION_MARGIN, SATURATED_EXAMPLES) of fastmlp.diagnostics, imported once (it
    imports network, which imports this module)."""
    if not _CONSTANTS:
        from .diagnostics import SATURATED_EXAMPLES, SATURATION_MARGIN
        _CONSTANTS.extend((SATURATION_MARGIN, SATURATED_EXAMPLES))
    return _CONSTANTS
