"""The cost of layer health (csrc/health.c): epochs of the bench configurations trained by
_core.train_epoch with the health accumulator and without it, in this process.

    python bench/layer_health.py CONFIG MODE [EPOCHS [THREADS [ROWS]]]

CONFIG: 784-100-10 (batch 200), 784-256-256-10 (batch 64), 784-1024-1024-10 (batch 256);
MODE: on or off. ROWS (10000) random rows, float32, SGD with momentum 0.9, THREADS threads (2) sharing
the batches' parts (as many as on 2 cores, whatever THREADS: the same work). Prints the
median wall and CPU seconds of EPOCHS epochs (after one warm-up epoch). Run the modes in
alternating processes. On a loaded machine the CPU seconds of one thread are the steadier
figure: two threads spin at barriers while a partner is descheduled, which counts as CPU time
too (and `perf stat -e instructions` needs a PMU, which a VM may not have)."""
import os
import sys
import warnings

import numpy as np

from fastmlp import MLPClassifier
from fastmlp._health import new_health

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CONFIGS = {"784-100-10": ((100,), 200), "784-256-256-10": ((256, 256), 64),
           "784-1024-1024-10": ((1024, 1024), 256)}


def main(config, mode, epochs=5, threads=2, rows=10000):
    hidden, batch_size = CONFIGS[config]
    rng = np.random.RandomState(0)
    X = rng.rand(rows, 784).astype(np.float32)
    y = rng.randint(0, 10, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier(hidden, solver="sgd", momentum=0.9, learning_rate_init=0.01,
                              batch_size=batch_size, max_iter=1, random_state=0,
                              n_threads=2).fit(X[:batch_size], y[:batch_size])
    Xc = model._validate_X(X, reset=False)
    Y = model._encode_targets(y, first=False)
    health = new_health(model._net(), model._work_parts(batch_size)) if mode == "on" else None
    wall, cpu, _ = common.train_epoch_seconds(model, Xc, Y, batch_size, epochs, threads, health)
    print(f"{config} {mode} threads {threads} wall {wall:.5f} cpu {cpu:.5f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
