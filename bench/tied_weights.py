"""The cost of tied weights (csrc/tied.c): epochs of an MNIST-shaped autoencoder trained by
_core.train_epoch with tied_weights=True and False, in this process.

    python bench/tied_weights.py MODE [SOLVER [EPOCHS [THREADS [ROWS]]]]

MODE: tied or untied; SOLVER: adam (default) or sgd (momentum 0.9: the untied network fuses its
velocity update into the backward GEMMs, which the tied one cannot). The network is
784-256-64-256-784 (batch 200, ROWS (10000) random rows in [0, 1], float32, sigmoid output),
THREADS threads (1) sharing the batches' parts (as many as on 2 cores, whatever THREADS: the
same work). Prints the median wall and CPU seconds of EPOCHS (5) epochs after one warm-up
epoch. Run the modes in alternating processes; under valgrind --tool=callgrind pass EPOCHS 1
and compare the instruction counts."""
import os
import sys
import warnings

import numpy as np

from fastmlp import Autoencoder
from fastmlp._health import new_health

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main(mode, solver="adam", epochs=5, threads=1, rows=10000):
    batch_size = 200
    rng = np.random.RandomState(0)
    X = rng.rand(rows, 784).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Autoencoder((256, 64), solver=solver, momentum=0.9, learning_rate_init=0.01,
                            tied_weights=mode == "tied", batch_size=batch_size, max_iter=1,
                            random_state=0, n_threads=2).fit(X[:batch_size])
    health = new_health(model._net(), model._work_parts(batch_size))  # as fit counts it
    wall, cpu, parts = common.train_epoch_seconds(model, X, X, batch_size, epochs, threads,
                                                  health)
    print(f"784-256-64-256-784 {mode} {solver} threads {threads} parts {parts} "
          f"wall {wall:.5f} cpu {cpu:.5f}")


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3]), *(int(a) for a in sys.argv[3:]))
