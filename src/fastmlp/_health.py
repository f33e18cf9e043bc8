"""An epoch's layer health: what csrc/health.c counted while train_epoch ran (a `_core.Health`),
turned into the records' structure, one dict per weight layer (LayerHealthDisplay draws it).
It is always counted: it costs under 2% of an epoch (docs/user_guide.rst, "Layer health",
which documents each measure for users)."""
import numpy as np

from . import _core


def new_health(net, n_parts):
    """A Health for `net`'s layers cut into n_parts parts, with diagnostics' saturation margin."""
    from .diagnostics import SATURATION_MARGIN  # diagnostics imports network, which imports this
    return _core.Health(net, n_parts, SATURATION_MARGIN)


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
    from .diagnostics import SATURATED_EXAMPLES
    count, total = health.count[0].copy(), health.sum[0].copy()
    for part in range(1, health.count.shape[0]):
        count += health.count[part]
        total += health.sum[part]
    records = []
    start = 0
    for l in range(len(units) - 1):
        g2, before2, after2, update2 = (float(v) for v in health.norms[l])
        record = {"saturated": None, "dead": None, "mean_activation": None,
                  "grad_norm": float(np.sqrt(g2)), "weight_norm": float(np.sqrt(after2)),
                  "update_ratio": float(np.sqrt(update2) / np.sqrt(before2)) if before2 > 0
                  else (0.0 if update2 == 0 else float("inf"))}
        n = int(units[l + 1])
        if l + 1 < len(units) - 1 and n_examples > 0:
            layer_count = count[start:start + n]
            record["mean_activation"] = float(total[start:start + n].sum() / (n * n_examples))
            if activation == "relu":
                record["dead"] = float(np.mean(layer_count == 0))
            elif activation in ("tanh", "sigmoid", "logistic"):
                record["saturated"] = float(np.mean(layer_count / n_examples
                                                    >= SATURATED_EXAMPLES))
        start += n
        records.append(record)
    return records
