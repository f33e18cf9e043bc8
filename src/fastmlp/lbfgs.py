"""solver="lbfgs": full-batch L-BFGS (scipy.optimize's L-BFGS-B) on the C loss and gradient.

One evaluation of the objective is one C pass over every training row (forward, fused output
loss, backward: csrc/train.c's batch_gradient, its products cut into parts that the threads
share), so there is no per-layer Python. The calls are alike, so each is an "epoch" of one
batch to the thread choice that training uses (fastmlp/threads.py): on a busy machine fewer
threads can be faster, and only timing tells. Python only moves scipy's float64 iterate into the
model's parameter buffer and hands the gradient back. The objective is fastmlp's J over all
rows, the (weighted) mean loss plus (alpha / 2) * sum of squared weights (shared/API.md)."""
import time

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.utils.optimize import _check_optimize_result

from . import _core
from .threads import ThreadChoice
from .training import HEALTH_KEY, NON_FINITE, RECORD_KEYS


class FullBatchObjective:
    """J(p) and dJ/dp over all rows of (X, Y) for scipy, p the trainable part of the model's
    parameter buffer (weights, biases, batch-norm gamma and beta).

    scipy iterates in float64. A float64 model reads each iterate straight into its buffer and
    returns its own gradient buffer (L-BFGS-B copies what it keeps); a float32 model casts the
    iterate into its buffer and returns one float64 vector that the float32 gradient is copied
    into: one copy in and one out per call, nothing the size of X."""

    def __init__(self, estimator, model, seed, X, Y, sample_weight, n_threads, parts):
        self.params = model.params
        n_trainable = int(model.layout["n_trainable"])
        self.trainable = self.params[:n_trainable]
        n, dtype = X.shape[0], self.params.dtype
        self.net = model.net
        self.data = model.input(X)
        self.Y, self.sample_weight = Y, sample_weight
        self.rows = np.arange(n, dtype=np.int64)
        self.alpha, self.seed = float(estimator.alpha), seed
        # the parts fix the bits of the result; the threads only share them out (csrc/train.h)
        self.parts = parts
        self.thread_choice = ThreadChoice(min(self.parts, n_threads))
        self.grads = np.zeros(n_trainable, dtype=dtype)
        self.workspace = np.zeros(self.net.workspace_size(n, self.parts, dtype, sp.issparse(X)),
                                  dtype=dtype)
        self.grad64 = self.grads if dtype == np.float64 else np.zeros(n_trainable)

    def __call__(self, x):
        self.trainable[...] = x
        threads, _ = self.thread_choice.stretch()  # one call is one stretch, whatever its length
        started = time.perf_counter()
        loss = _core.batch_gradient(self.net, self.data, self.params, self.grads, self.workspace,
                                    self.Y, self.sample_weight, self.rows, self.alpha, self.seed,
                                    1, self.parts, threads)
        self.thread_choice.record(len(self.rows), threads, time.perf_counter() - started)
        if self.grad64 is not self.grads:
            self.grad64[...] = self.grads
        return loss, self.grad64


def fit_lbfgs(estimator, run, X, Y, sample_weight, n_threads, parts):
    """Minimize J over all rows from the run's model (training.Run: the model no predict sees
    until the estimator swaps it in), as scikit-learn's solver="lbfgs" does: at most max_iter
    iterations and max_fun evaluations, gtol = tol; a ConvergenceWarning with scikit-learn's
    text when a limit ends it. Each iteration is one record of the run's history (its loss is
    J after the iteration), so n_iter_, loss_, loss_curve_ and best_loss_ read as
    scikit-learn's; there is no validation set (early_stopping does not apply to a
    full-batch solver). With batch_norm, the running statistics become the population
    statistics of X at the end, the statistics every iteration normalized with."""
    model = run.model
    if np.any(np.asarray(model.spec["dropout"]) > 0):
        raise ValueError("solver='lbfgs' minimizes one deterministic objective and cannot "
                         "drop units: set dropout=0.0 or choose a stochastic solver (sgd, adam, "
                         "adagrad, rmsprop)")
    if model.spec["batch_norm"] and X.shape[0] < 2:
        raise ValueError(f"batch_norm needs at least 2 samples, got {X.shape[0]}")
    objective = FullBatchObjective(estimator, model, run.seed, X, Y, sample_weight, n_threads,
                                   parts)
    started = [time.perf_counter()]

    # verbose prints here: scipy's own iprint printing is gone since scipy 1.15 (and
    # scikit-learn's lbfgs prints nothing with verbose=True, its issue 10236)
    def record(intermediate_result):
        now = time.perf_counter()
        seconds, started[0] = now - started[0], now
        run.records.append(dict(zip(RECORD_KEYS, (
            len(run.records) + 1, float(intermediate_result.fun), None, None, 0.0, seconds,
            X.shape[0] / max(seconds, 1e-12), objective.thread_choice.best)),
            **{HEALTH_KEY: None}))  # layer health is counted by the epochs' C loop only
        if estimator.verbose:
            print(f"Iteration {len(run.records)}, loss = {run.records[-1]['train_loss']:.8f}")

    result = scipy.optimize.minimize(
        objective, objective.trainable.astype(np.float64), method="L-BFGS-B", jac=True,
        callback=record,
        options={"maxfun": estimator.max_fun, "maxiter": estimator.max_iter,
                 "gtol": estimator.tol})
    if not (np.isfinite(result.x).all() and np.isfinite(result.fun)):
        raise ValueError(NON_FINITE)
    objective.trainable[...] = result.x
    _check_optimize_result("lbfgs", result, estimator.max_iter)
    if not run.records:
        # max_fun ended it before a first iteration: one record of the parameters returned
        run.records.append(dict(zip(RECORD_KEYS, (
            len(run.records) + 1, float(result.fun), None, None, 0.0, 0.0, 0.0,
            objective.thread_choice.best)), **{HEALTH_KEY: None}))
    run.best_loss = min(r["train_loss"] for r in run.records)
    run.stopped = True
    if model.spec["batch_norm"]:
        _core.batchnorm_population(objective.net, objective.data, objective.params, X.shape[0],
                                   objective.thread_choice.best)
