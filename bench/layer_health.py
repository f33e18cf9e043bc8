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
import sys
import time
import warnings

import numpy as np

from fastmlp import MLPClassifier, _core
from fastmlp._health import new_health
from fastmlp.network import _blas_single_threaded
from fastmlp.optim import hyperparameters

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
    n = Xc.shape[0]
    parts = model._work_parts(batch_size)
    net, data = model._net(), model._input(Xc)
    params, state = model._params, model._state
    grads = np.zeros(model._layout["n_trainable"], dtype=np.float32)
    workspace = np.zeros(net.workspace_size(batch_size, parts, np.float32, False),
                         dtype=np.float32)
    batch_loss = np.zeros(_core.epoch_batches(n, batch_size, False))
    hyper = hyperparameters(model, 0.01, "constant", params.dtype)
    health = new_health(net, parts) if mode == "on" else None
    seconds, cpu_seconds, t = [], [], model.t_
    with _blas_single_threaded():
        for epoch in range(epochs + 1):
            order = rng.permutation(n).astype(np.int64)
            started, cpu = time.perf_counter(), time.process_time()
            if health is not None:
                health.reset()
            t = _core.train_epoch(net, hyper, data, params, grads, state, workspace, batch_loss,
                                  Y, None, order, batch_size, model._seed, t, parts, threads, 0,
                                  health)
            if epoch:
                seconds.append(time.perf_counter() - started)
                cpu_seconds.append(time.process_time() - cpu)
    print(f"{config} {mode} threads {threads} wall {np.median(seconds):.5f} "
          f"cpu {np.median(cpu_seconds):.5f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
