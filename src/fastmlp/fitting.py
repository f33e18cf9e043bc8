"""A call of fit or partial_fit, from the user's data to the model swapped in: `Fitting` is a
part of Network (fastmlp/network.py), the step of the data's path between the inputs
(fastmlp/inputs.py) and the published model (fastmlp/publication.py).

_fit runs the call and rolls it back whole on any error (the estimator's attributes are only
reassigned, and the random generator's state is put back), so a failed call leaves the
estimator bitwise as it was; _train validates the data and the targets, makes the model a run
trains (fastmlp/run_start.py) and hands it to L-BFGS (fastmlp/lbfgs.py) or to _epochs, which
builds the epoch loop's pieces (fastmlp/training.py: stretches, stopping, schedules, threads,
progress, history) and runs it."""
import warnings
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp
from sklearn import config_context, get_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import check_scoring
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import validate_data

from . import _core, row_order, targets, training
from ._config import blas_single_threaded
from ._health import new_health
from .inputs import _as_c_input, _input_dtypes
from .lbfgs import fit_lbfgs
from .optim import check_representable
from .threads import ThreadChoice


class Fitting:
    """Network's fit and partial_fit calls behind their public methods (a mixin: it reads the
    estimator's hyperparameters and the parts of the other mixins)."""

    def _fit(self, X, y, sample_weight, incremental, classes=None, validation=None):
        """Validate, train a new model, swap it in. The estimator's attributes are only
        reassigned, never changed in place, so on any error putting the previous ones back
        leaves it exactly as it was; Ctrl-C keeps the epochs trained (training.Interrupt)."""
        before = dict(self.__dict__)
        # a call that goes on draws from the fitted generator itself, which no other estimator
        # holds (__setstate__): a copy would cost more than a small partial_fit's whole
        # Python side. Its state is put back on failure
        rng = before.get("_rng")
        rng_state = None if rng is None else _generator_state(rng)
        validated = False
        while True:
            try:
                with training.Interrupt() as interrupt:
                    run = self._train(X, y, sample_weight, incremental, classes, validation,
                                      interrupt, validated)
                if run.interrupted and not run.records:
                    raise KeyboardInterrupt
                break
            except BaseException as error:
                self.__dict__.clear()
                self.__dict__.update(before)
                if rng is not None:
                    _set_generator_state(rng, rng_state)
                if validated or not isinstance(error, training.UncheckedInputs):
                    raise
                validated = True  # X held a NaN or inf: validation says where
        self._commit(run)
        if run.interrupted:
            held = (f"epoch {run.best_epoch}'s weights (the best)" if run.best_epoch else
                    "the weights after its last finished mini-batch")
            warnings.warn(f"training was interrupted (Ctrl-C) after {len(run.records)} "
                          f"complete epoch(s) of this call; the model holds {held}",
                          UserWarning)
            raise KeyboardInterrupt
        return self

    def _train(self, X, y, sample_weight, incremental, classes, validation, interrupt,
               validated=False):
        """Validate, then train a model in a training.Run. A later partial_fit's usual inputs
        skip scikit-learn's validation (_known_inputs) unless `validated`: the C side then
        checks the rows of X as it gathers them (training.UncheckedInputs)."""
        fitted = "_model" in self.__dict__
        # warm_start keeps the weights only while the architecture is the same
        first = (not fitted or not (incremental or self.warm_start)
                 or (not incremental and not self._same_architecture()))
        # a partial_fit goes on in the fitted model's dtype, whatever dtype says since (as the
        # architecture: hyperparameters changed after fit apply from the next fit on)
        dtype = self._model_dtype() if first else self._model.params.dtype
        hidden = self._hidden_sizes()
        self._dropout_rates(len(hidden))
        # (not with callbacks: a call run again must not have begun training in their sight)
        known = None if first or validated or not incremental or self.callbacks \
            else self._known_inputs(X, y, dtype)
        if incremental and (known is None or self.class_weight is not None) \
                and not get_config()["skip_parameter_validation"]:
            # partial_fit's _fit_context (fit has its own): scikit-learn's functions called
            # from here on skip their validation. Not on the short path, which calls none
            # (compute_sample_weight only with class weights), and where entering the
            # context cost a tenth of the Python side
            with config_context(skip_parameter_validation=True):
                return self._train(X, y, sample_weight, incremental, classes, validation,
                                   interrupt, validated)
        if known is None:
            X, y = validate_data(self, X, y, reset=first, accept_sparse=["csr", "csc"],
                                 dtype=_input_dtypes(dtype), order=None, copy=False,
                                 multi_output=True,
                                 y_numeric=self._task == "regression")
            X = _as_c_input(X, dtype)
        else:
            X, y = known
        n_samples, sparse = X.shape[0], sp.issparse(X)
        check_representable(self, dtype)  # before anything is trained or allocated
        task = (self._task or targets.task_of(y)) if first else self._fitted_task
        if first and incremental and self._task == "classification" and classes is None \
                and type_of_target(y) != "multilabel-indicator":
            # a classifier must hear of every label up front (a multilabel y names its labels
            # by column); Network, which learns its task from the first targets, takes the
            # labels of the first call as its classes
            raise ValueError("classes must be passed on the first call to partial_fit: "
                             "every label that will ever be seen")
        if not first and task == "classification" and incremental and classes is not None \
                and not _same_labels(classes, self.classes_):
            raise ValueError(f"classes={list(classes)} differs from the classes of the first "
                             f"call, {self.classes_.tolist()}")
        if task == "regression" and self.class_weight is not None:
            raise ValueError("class_weight applies to class labels; this model regresses")

        y, Y, binarizer, out_activation, y_1d, kind = self._targets(X, y, task, first, classes,
                                                                    dtype)
        sample_weight = self._sample_weight(sample_weight, X, y, kind, incremental, dtype)
        # L-BFGS takes one batch of every row
        batch_size = n_samples if self.solver == "lbfgs" else self._batch_size(n_samples)
        # batch statistics of one row are meaningless (variance 0): refuse batches of one; a
        # trailing batch of one row is merged into the batch before it by train_epoch (C)
        if self.batch_norm and batch_size < 2:
            raise ValueError("batch_norm needs at least 2 samples per mini-batch (batch_size "
                             f"and the number of samples), got {batch_size}")
        validation = self._validation_set(validation, binarizer, kind, incremental, dtype)
        scorer = self._scorer(validation is not None or self.early_stopping and not incremental)

        model, state, pending, rng, seed, parts = self._model_to_train(
            first, incremental, X, Y, sample_weight, hidden, batch_size, dtype, sparse,
            out_activation, binarizer, y_1d)

        rows = np.arange(n_samples, dtype=np.int64)
        if self.early_stopping and not incremental and validation is None \
                and self.solver != "lbfgs":  # a full-batch solver has no epochs to stop
            rows, validation = self._validation_split(X, Y, y, sample_weight, model, rng)
        if self.batch_norm and len(rows) < 2:
            raise ValueError("batch_norm needs at least 2 training samples once "
                             f"early_stopping has held out validation_fraction="
                             f"{self.validation_fraction}; {len(rows)} remain")
        if validation is not None and len(validation[1]) < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        if validation is not None and validation[2] is not None \
                and not np.any(validation[2] > 0):
            # a weighted mean over no weight: the validation loss and score are undefined
            raise ValueError("every sample weight of the validation set is 0 (the rows "
                             "early_stopping held out, or X_val's, weighted by sample_weight and "
                             "class_weight), so its loss and score are undefined: give some of "
                             "its rows a positive weight")
        resumed = incremental and not first
        # the update count goes on only where the optimizer state does (partial_fit); the
        # samples seen, scikit-learn's t_, through warm starts too, as its t_ does
        goes_on = resumed and self._optimizer_goes_on(incremental)
        prior = (self.__dict__.get("history_") or []) if resumed else []
        run = training.Run(model, state, self._n_updates if goes_on else 0, rng,
                           self._new_schedule(resumed), seed,
                           self.best_loss_ if resumed else None, first, prior,
                           validation is not None, pending,
                           samples=0 if first else self.t_)
        # the history's first epoch of the optimizer whose updates run.t counts (a new one
        # after set_params(solver=...) starts its count at 0 while the history goes on)
        run.state_since = self.__dict__.get("_state_since", 0) if goes_on else len(prior)
        run.inputs_checked = known is None
        if self.solver == "lbfgs":
            with blas_single_threaded():
                # (its one batch is of all rows)
                fit_lbfgs(self, run, X, Y, sample_weight, self._threads(), parts)
        else:
            self._epochs(run, X, Y, sample_weight, batch_size, parts, rows, validation, scorer,
                         incremental, interrupt)
        return run

    def _epochs(self, run, X, Y, sample_weight, batch_size, parts, rows, validation, scorer,
                incremental, interrupt):
        """Build the loop's pieces (fastmlp/training.py) and run it; `parts`: the slabs of
        each batch's products (_work_parts)."""
        n_threads = self._threads()
        if n_threads > 1 and not _core.openmp_enabled():
            _warn_no_openmp()
        model, sparse = run.model, sp.issparse(X)
        # the slabs a batch's work is cut into fix the bits of the result; the threads that
        # share them out are chosen by timing stretches of epochs (fastmlp/threads.py), kept
        # across fits and partial_fit calls while the work per epoch is alike
        grads, workspace = self._buffers(model, batch_size, parts, sparse)
        units = tuple(model.layout["units"].tolist())  # ints: compared at every call
        work = (n_threads, batch_size, len(rows), units, sparse)
        if getattr(self, "_thread_choice", (None,))[0] != work:
            self._thread_choice = (work, ThreadChoice(min(parts, n_threads)))
        else:
            self._thread_choice[1].begin()
        # the layer health's counters, kept across calls for the same layers and parts
        health_key = (units, parts)
        if getattr(self, "_health", (None,))[0] != health_key:
            self._health = (health_key, new_health(model.net, parts))
        stretches = training.Stretches(self, model.input(X), Y, sample_weight, batch_size,
                                       parts, grads, workspace, self._thread_choice[1],
                                       model.spec["batch_norm"], self._health[1])
        watched = validation is not None and self.early_stopping and not incremental
        monitor = ("valid_loss" if scorer == "loss" else "valid_score") if watched \
            else "train_loss"
        # plateau and adaptive decide when to stop (adaptive only with sgd); otherwise the
        # look-ahead of n_iter_no_change epochs does
        schedule_stops = run.schedule.acts_between_epochs
        restore = watched
        # Ctrl-C within an epoch keeps the batches trained (fit); partial_fit's one epoch is
        # then dropped whole, as a fit interrupted within its first epoch is (_fit)
        listeners = [training.Records(),
                     training.EarlyStopping(monitor, self.tol, self.n_iter_no_change, restore,
                                            decides=not incremental and not schedule_stops),
                     training.Schedule(monitor, decides=not incremental and schedule_stops)]
        if self.callbacks:
            listeners.append(training.Callbacks(self, self.callbacks, self._published))
        if self.verbose:
            listeners.append(training.Verbose(int(self.verbose),
                                              None if incremental else self.max_iter))
        evaluation = training.Evaluation(self, validation, scorer, self.alpha, self._published)
        # BLAS capped at one thread only where the C trainer calls it (products too small for
        # the tiles), or a validation set is predicted: the cap cost a tenth of a small
        # partial_fit's Python side
        capped = validation is not None or model.net.training_uses_blas(
            len(rows), batch_size, parts, sparse, self.solver, self.momentum,
            self.nesterovs_momentum)
        with blas_single_threaded() if capped else nullcontext():
            training.run_epochs(run, stretches, evaluation, listeners,
                                1 if incremental else self.max_iter,
                                row_order.shuffling_for(X, self.shuffle), rows,
                                interrupt)
        if not incremental and not run.stopped and not run.interrupted:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning)

    def _scorer(self, needed):
        """What the validation score is: None (the estimator's score), "loss", or a scorer."""
        if not needed or self.scoring is None or self.scoring == "loss":
            return self.scoring
        return check_scoring(self, scoring=self.scoring)


def _same_labels(classes, fitted):
    """Whether partial_fit's `classes` are the fitted classes_ (sorted and distinct, as
    unique_labels makes them). dask-ml's Incremental passes them on every call: the same
    array is compared in one pass before unique_labels sorts any other."""
    given = np.asarray(classes) if isinstance(classes, (list, np.ndarray)) else None
    if given is not None and given.dtype == fitted.dtype and given.shape == fitted.shape \
            and given.dtype.kind in targets.LABEL_KINDS and np.array_equal(given, fitted):
        return True
    return np.array_equal(unique_labels(classes), fitted)


def _generator_state(rng):
    """The state of a RandomState, to put back with _set_generator_state: the bytes of its
    MT19937 state (its 624 key words and position) where their layout was checked in this
    process (_mt19937_state_size), else get_state(), which copies the key word by word in
    Python (~27 us, a fifth of a small partial_fit's Python side)."""
    bits = getattr(rng, "_bit_generator", None)
    size = _mt19937_state_size() if type(bits) is np.random.MT19937 else 0
    if not size:
        return rng.get_state()
    return _core.generator_state(bits.capsule, size)


def _set_generator_state(rng, state):
    """Put back the state _generator_state took."""
    if type(state) is bytes:
        _core.set_generator_state(rng._bit_generator.capsule, state)
    else:
        rng.set_state(state)


_MT19937_STATE = []


def _mt19937_state_size():
    """The bytes of MT19937's state struct (numpy's mt19937_state: uint32 key[624], int pos)
    that its bit generator's state pointer leads to, or 0 where this numpy lays it out
    otherwise: checked once, against get_state() and by a restore that must give the same
    draws."""
    if not _MT19937_STATE:
        size = 624 * 4 + np.dtype(np.intc).itemsize
        try:
            probe = np.random.RandomState(12345)
            probe.random_sample(700)  # a position within the key, past a regeneration
            key, pos = probe.get_state()[1:3]
            capsule = probe._bit_generator.capsule
            raw = _core.generator_state(capsule, size)
            expected = np.asarray(key, dtype=np.uint32).tobytes() + \
                np.asarray(pos, dtype=np.intc).tobytes()
            drawn = probe.random_sample(1000)
            _core.set_generator_state(capsule, raw)
            ok = raw == expected and np.array_equal(probe.random_sample(1000), drawn)
        except (AttributeError, TypeError, ValueError):
            ok = False
        _MT19937_STATE.append(size if ok else 0)
    return _MT19937_STATE[0]


_warned_no_openmp = False


def _warn_no_openmp():
    global _warned_no_openmp
    if not _warned_no_openmp:
        _warned_no_openmp = True
        warnings.warn("fastmlp was built without OpenMP: training and prediction run on one "
                      "thread (see fastmlp.show_config())", RuntimeWarning)
