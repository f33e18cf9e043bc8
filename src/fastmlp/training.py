"""The epoch loop and its listeners.

`run_epochs` is the whole loop: for each epoch, the C stretches (`Stretches.epoch`), then the
epoch's record (`Evaluation.record`), then the listeners in a fixed order: history, early
stopping, schedule, the user's callbacks, progress (the thread choice learns from every
stretch, inside `Stretches.epoch`, so a busy core is seen within an epoch). A listener's
`epoch_end(record)` returning True ends training; Ctrl-C ends it the same way at the next
stretch boundary (`Interrupt`). The loop trains `Run.model`, a model no predict sees until the
estimator swaps it in, so stopping anywhere leaves the fitted model as it was."""
import _signal  # signal's functions without its enum wrapping: a tenth of a partial_fit's
import signal   # Python side went to wrapping and unwrapping the handler
import math
import threading
import time

import numpy as np
from scipy.special import xlogy

from . import _core
from ._health import health_record, new_health
from .optim import hyperparameters
from .row_order import epoch_order

# scikit-learn's words for a diverged model, first in fastmlp's message so that a script
# matching them still does
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
              "values and need to be preprocessed.")


class History(list):
    """The training history: one dict per epoch, oldest first, with `epoch` (1-based),
    `train_loss`, `valid_loss` and `valid_score` (None without a validation set),
    `learning_rate` (in effect at the epoch's start), `seconds` and `samples_per_s` (of the
    training passes), `threads` (the most used), and `health`: the epoch's layer health, one
    dict per weight layer (fastmlp/_health.py), or None where it was not counted (lbfgs, a
    model loaded from a file). A list, so `history_[-1]["train_loss"]` and
    `[r["valid_loss"] for r in history_]` work."""

    def to_frame(self):
        """The history as a pandas DataFrame, one row per epoch (needs pandas); the `health`
        column holds each epoch's list of per-layer dicts."""
        import pandas as pd
        return pd.DataFrame(list(self), columns=RECORD_KEYS + [HEALTH_KEY])


# the records' numeric keys: the columns fastmlp.save stores in history.npy
RECORD_KEYS = ["epoch", "train_loss", "valid_loss", "valid_score", "learning_rate", "seconds",
               "samples_per_s", "threads"]
# and the one that is not: the per-layer health list, which files do not keep
HEALTH_KEY = "health"


class Run:
    """What one fit or partial_fit call trains and produces: the model in training and its
    optimizer `state`, the update count `t` (the t of the formulas, which the C step counts
    on), the training rows seen `samples` (scikit-learn's t_: the rows of each complete
    epoch), the shuffling generator, the `schedule`, the `records` of this call's epochs
    after the `prior` ones (partial_fit), `best_epoch` (1-based, when early stopping restored
    it) and `best_loss` / `best_score` as scikit-learn's attributes say them.

    `pending`: None, or the (model, state) that the first update writes while it reads
    `model` and `state`, which are then the published ones (a partial_fit, a warm start):
    until that update the run reads the published parameters, never copied, and after it the
    run's model and state are the new ones. Only the new buffers' values past the trainable
    part (running statistics, standardization) are filled in beforehand."""

    def __init__(self, model, state, t, rng, schedule, seed, best_loss, first, prior,
                 validated, pending=None, samples=0):
        self.model, self.state, self.t, self.rng, self.schedule = model, state, t, rng, schedule
        self.samples = samples
        self.seed, self.first, self.prior, self.validated = seed, first, prior, validated
        self.pending = pending
        self.state_since = 0  # the index in prior + records of the state's first epoch
        # False: X was not scanned for NaN and inf (a partial_fit's short path); the C side
        # then reports a row that is not finite, and the call is made again, validated
        self.inputs_checked = True
        self.records = []
        self.best_epoch = None
        self.best_loss = best_loss
        self.best_score = None
        self.stopped = False      # a listener or a converged criterion ended the loop
        self.interrupted = False  # Ctrl-C ended it


def run_epochs(run, stretches, evaluation, listeners, max_iter, shuffle, rows, interrupt):
    """Train up to max_iter epochs of `rows`; the run says how it ended."""
    for listener in listeners:
        listener.begin(run)
    for _ in range(max_iter):
        order = epoch_order(run.rng, rows, shuffle)
        learning_rate = run.schedule.learning_rate
        trained = stretches.epoch(run, order, learning_rate, interrupt, listeners)
        if trained is None:  # Ctrl-C within the epoch: its finished batches stay trained
            run.interrupted = True
            break
        run.samples += len(order)
        record = evaluation.record(run, trained, learning_rate)
        if any([listener.epoch_end(run, record) for listener in listeners]):
            run.stopped = True
            break
        if interrupt.raised:
            run.interrupted = True
            break
    for listener in listeners:
        listener.end(run)


class Stretches:
    """An epoch as consecutive calls of the C trainer, each a stretch of batches on the thread
    count the choice gives and bounded in time by the C side (fastmlp/threads.py): so Ctrl-C,
    progress displays and the thread choice are served within a long epoch."""

    def __init__(self, estimator, data, Y, sample_weight, batch_size, parts, grads, workspace,
                 thread_choice, batch_norm, health=None):
        self.estimator, self.data, self.Y, self.sample_weight = estimator, data, Y, sample_weight
        self.batch_size, self.parts = batch_size, parts
        self.grads, self.workspace = grads, workspace
        self.thread_choice, self.batch_norm = thread_choice, batch_norm
        self.stretches = []  # (rows, threads, seconds) of the epoch's stretches
        # the layer health the C side counts (a Health for the net and parts), or None: made
        # for the first epoch's net
        self.health = health
        # set by each C call: its last update's values are finite, its input rows were
        self.finite = np.ones(2, dtype=np.intc)

    def epoch(self, run, order, learning_rate, interrupt, listeners):
        """Train one epoch over `order`: (mean loss J over it, seconds, threads, rows, layer
        health record), or None when Ctrl-C came first (the parameters are then those after
        the last finished batch). Raises ValueError when the parameters or the optimizer
        state are not finite after the epoch (or the interrupted part of it).

        Layer health: one accumulator for the epoch, zeroed at its start. Every stretch adds
        its batches' unit counts; each is given the rest of the epoch's rows, and the one that
        trains the last of them writes the norms of the epoch's last update (the C side
        measures that update only, so what measuring costs is paid once per epoch)."""
        n, size = len(order), self.batch_size
        n_batches = _core.epoch_batches(n, size, self.batch_norm)
        batch_loss = np.zeros(n_batches)  # J_b * |b| of each batch, summed alike
        hyper = hyperparameters(self.estimator, learning_rate, run.schedule.c_schedule,
                                run.model.params.dtype)
        model = run.model if run.pending is None else run.pending[0]
        if self.health is None:
            self.health = new_health(model.net, self.parts)
        self.health.reset()
        self.stretches = []
        first = 0
        while first < n_batches:
            threads, limit = self.thread_choice.stretch()
            started, t_before = time.perf_counter(), run.t
            source, source_state, state = None, None, run.state
            if run.pending is not None:  # the run's first update reads the published buffers
                source, state = run.model.params, run.pending[1]
                source_state = None if state is run.state else run.state
            # C trains from batch `first` until the time limit (or the epoch's end) and says
            # how far it went by the update count; the last batch takes the rows left over
            run.t = _core.train_epoch(
                model.net, hyper, self.data, model.params, self.grads, state,
                self.workspace, batch_loss[first:], self.Y, self.sample_weight,
                order[first * size:], size, run.seed, run.t, self.parts, threads, limit,
                self.health, source, source_state, self.finite)
            run.model, run.state, run.pending = model, state, None
            if not (run.inputs_checked or self.finite[1]):
                raise UncheckedInputs
            took = time.perf_counter() - started
            last = first + run.t - t_before
            rows_done = n if last == n_batches else last * size
            self.stretches.append((rows_done - first * size, threads, took))
            self.thread_choice.record(*self.stretches[-1])
            first = last
            for listener in listeners:
                listener.stretch_end(run, rows_done, n)
            if interrupt.raised and first < n_batches:
                self._check_finite(model, batch_loss[:first])
                return None
        self._check_finite(model, ())
        if len(self.stretches) == 1:  # a short epoch (a partial_fit's block): one stretch
            _, threads, seconds = self.stretches[0]
        else:
            seconds = sum(s for _, _, s in self.stretches)
            # the count that trained most of the epoch's rows
            threads = max({t for _, t, _ in self.stretches},
                          key=lambda k: sum(r for r, t, _ in self.stretches if t == k))
        health = health_record(self.health, model.spec["activation"], n)
        return _core.total(batch_loss) / n, seconds, threads, n, health

    def _check_finite(self, model, losses):
        """Refuse a diverged model: C checked the trainable parameters and the optimizer
        state after the last update (a velocity or second moment that overflowed makes the
        next update non-finite, this fit's or a later partial_fit's); the running statistics
        past them, and the losses of an interrupted epoch's batches, are checked here."""
        tail = model.params[model.layout["n_trainable"]:] if self.batch_norm else ()
        if not (self.finite[0] and (not len(tail) or np.isfinite(tail).all())
                and (not len(losses) or np.isfinite(losses).all())):
            raise diverged()


class UncheckedInputs(Exception):
    """An input row that no validation had checked was not finite (Stretches.epoch): the call
    is rolled back and run again through scikit-learn's validation, which says what is wrong."""


def diverged():
    """The error of a fit or partial_fit whose loss, parameters or state left the finite."""
    return ValueError(f"{NON_FINITE} Training diverged (the loss or the parameters are not "
                      "finite): lower learning_rate_init, or standardize the inputs")


class Evaluation:
    """The epoch's record: training loss, and on a validation set its loss (the objective J
    in inference mode) and score; refuses a diverged model."""

    def __init__(self, estimator, validation, scorer, alpha, publish):
        self.estimator, self.validation, self.scorer = estimator, validation, scorer
        self.alpha, self.publish = alpha, publish

    def record(self, run, trained, learning_rate):
        loss, seconds, threads, n, health = trained
        if not math.isfinite(loss):  # the parameters and state: Stretches checked them
            raise diverged()
        record = {"epoch": len(run.prior) + len(run.records) + 1, "train_loss": loss,
                  "valid_loss": None,
                  "valid_score": None, "learning_rate": float(learning_rate),
                  "seconds": seconds, "samples_per_s": n / max(seconds, 1e-12),
                  "threads": int(threads), HEALTH_KEY: health}
        if self.validation is not None:
            record["valid_loss"], record["valid_score"] = self._validate(run)
        return record

    def _validate(self, run):
        X, Y, weight, y = self.validation
        model = run.model
        out = model.forward(X, self.estimator._threads_for(X.shape[0]))
        loss = validation_loss(out, Y, weight, model, self.alpha)
        if self.scorer == "loss":
            return loss, -loss
        if self.scorer is None:
            return loss, self.estimator._default_score(out, Y, weight, model)
        with self.publish(run):  # the scorer calls the estimator's predict
            return loss, float(self.scorer(self.estimator, X, y, **(
                {} if weight is None else {"sample_weight": weight})))


def validation_loss(out, Y, weight, model, alpha):
    """The objective J of shared/API.md on (out, Y): the weighted mean per-sample loss plus
    (alpha / 2) * the sum of squared weights, in float64."""
    out, Y = out.astype(np.float64, copy=False), Y.astype(np.float64, copy=False)
    tiny = np.finfo(model.params.dtype).tiny
    if model.out_activation == "softmax":
        per_sample = -np.log(np.maximum((out * Y).sum(axis=1), tiny))
    elif model.out_activation == "logistic":
        per_sample = -(Y * np.log(np.maximum(out, tiny))
                       + (1 - Y) * np.log(np.maximum(1 - out, tiny))).sum(axis=1)
    elif model.out_activation == "exp":
        # the half Poisson deviance y log(y / f) - y + f of csrc/loss.c, summed over outputs
        per_sample = (xlogy(Y, Y) - Y * np.log(np.maximum(out, tiny)) - Y + out).sum(axis=1)
    else:
        per_sample = 0.5 * ((out - Y) ** 2).sum(axis=1) / Y.shape[1]
    weights = model.params[:model.layout["n_weights"]]
    penalty = 0.5 * alpha * float(np.dot(weights, weights)) if alpha else 0.0
    return float(np.average(per_sample, weights=weight)) + penalty


class Listener:
    """A piece of the loop: every method is optional."""

    def begin(self, run):
        pass

    def stretch_end(self, run, rows_done, n_rows):
        pass

    def epoch_end(self, run, record):
        return False

    def end(self, run):
        pass


class Records(Listener):
    """Keeps the records of the completed epochs. Nothing else is kept: Ctrl-C within an
    epoch leaves the parameters, the state and `t` of its last finished batch, which a later
    call goes on from, as from any other batch."""

    def epoch_end(self, run, record):
        run.records.append(record)
        return False


class EarlyStopping(Listener):
    """The lecture's look-ahead: stop once the monitored value (lower is better: the
    validation score negated, or the validation loss, or without validation the training
    loss) has not improved by `tol` for `patience` epochs; with `restore`, the best epoch's
    parameters (the first best, on ties) are put back at the end, however the loop ended."""

    def __init__(self, monitor, tol, patience, restore, decides):
        self.monitor, self.tol, self.patience = monitor, tol, patience
        self.restore, self.decides = restore, decides
        self.waited = 0
        self.best_params = None
        self.best_t = None

    def begin(self, run):
        self.best = np.inf if self.monitor != "train_loss" or run.best_loss is None \
            else run.best_loss

    def epoch_end(self, run, record):
        value = monitored(record, self.monitor)
        self.waited = 0 if value < self.best - self.tol else self.waited + 1
        if value < self.best:
            self.best = value
            run.best_epoch = record["epoch"]
            if self.restore:
                if self.best_params is None:
                    self.best_params = np.empty_like(run.model.params)
                self.best_params[...] = run.model.params
        if self.monitor == "train_loss":
            run.best_loss = self.best
        else:
            run.best_score = max(r["valid_score"] for r in run.records)
        return self.decides and self.waited >= self.patience

    def end(self, run):
        if self.restore and self.best_params is not None:
            run.model.params[...] = self.best_params  # in place: the views stay views
        else:
            run.best_epoch = None


def monitored(record, monitor):
    """The record's value that early stopping and the schedules watch, lower is better."""
    if monitor == "valid_score":
        return -record["valid_score"]
    return record[monitor]


class Schedule(Listener):
    """The learning-rate schedule's turn between epochs ("plateau" halves the rate on the
    monitored value; fastmlp/schedules.py). It ends training only when it decides stopping."""

    def __init__(self, monitor, decides):
        self.monitor, self.decides = monitor, decides

    def epoch_end(self, run, record):
        return run.schedule.epoch_ends(monitored(record, self.monitor)) and self.decides


class Callbacks(Listener):
    """The user's callbacks, in their order; they see the estimator as it would be if
    training ended now (`publish`), and one returning True from on_epoch_end stops."""

    def __init__(self, estimator, callbacks, publish):
        self.estimator, self.callbacks, self.publish = estimator, list(callbacks), publish

    def _call(self, run, method, *args):
        results = []
        with self.publish(run):
            for callback in self.callbacks:
                hook = getattr(callback, method, None)
                if hook is not None:
                    results.append(bool(hook(self.estimator, *args)))
        return any(results)

    def begin(self, run):
        self._call(run, "on_train_begin")

    def stretch_end(self, run, rows_done, n_rows):
        if any(hasattr(c, "on_stretch_end") for c in self.callbacks):
            self._call(run, "on_stretch_end", rows_done, n_rows)

    def epoch_end(self, run, record):
        return self._call(run, "on_epoch_end", record)

    def end(self, run):
        self._call(run, "on_train_end")


class Verbose(Listener):
    """verbose >= 1: one line per epoch; verbose >= 2 adds the threads used."""

    def __init__(self, level, max_iter):
        self.level, self.max_iter = level, max_iter

    def epoch_end(self, run, record):
        print(epoch_line(record, self.max_iter, self.level >= 2), flush=True)
        return False


def epoch_line(record, max_iter=None, threads=False):
    """'Epoch 3/200: train loss 0.4213, valid loss 0.4410, valid score 0.8750, lr 0.001,
    0.52 s, 115,240 samples/s' (and ', 2 threads')."""
    total = f"/{max_iter}" if max_iter else ""
    parts = [f"Epoch {record['epoch']}{total}: train loss {record['train_loss']:.6g}"]
    if record["valid_loss"] is not None:
        parts.append(f"valid loss {record['valid_loss']:.6g}")
        parts.append(f"valid score {record['valid_score']:.6g}")
    parts.append(f"lr {record['learning_rate']:.3g}")
    parts.append(f"{record['seconds']:.2f} s")
    parts.append(f"{record['samples_per_s']:,.0f} samples/s")
    if threads:
        parts.append(f"{record['threads']} thread{'s' if record['threads'] > 1 else ''}")
    return ", ".join(parts)


class Interrupt:
    """Ctrl-C during training sets `raised` instead of raising KeyboardInterrupt at an
    arbitrary line, so the loop stops at the next stretch boundary with a consistent model.
    Only the main thread receives signals; elsewhere, or under a handler of the user's own,
    nothing is changed."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() \
                and _signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = _signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            _signal.signal(signal.SIGINT, self._previous)
        return False

