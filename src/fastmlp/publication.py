"""A run's result made the estimator's: every fitted attribute from a training.Run, the
model last of all, in one assignment (what predictions in other threads read), so that a
predict racing a refit sees the old model or the new one, never a mix.

The step of the data's path after training (fastmlp/training.py) and before prediction
(fastmlp/prediction.py); `Publication` is a part of `Network` (fastmlp/network.py)."""
from contextlib import contextmanager

import numpy as np

from . import training


class Publication:
    """Network's commit of a finished run and the view of a running one that callbacks and
    scorers get (a mixin: it sets the estimator's fitted attributes)."""

    def _commit(self, run):
        """Make the run's model and history the estimator's: the model in one assignment."""
        self._publish(run)
        # the caller's generator moves on as if it had trained, unless Ctrl-C cut the fit
        # short: a retry then gives what an uninterrupted fit would have
        if run.first and not run.interrupted \
                and isinstance(self.random_state, np.random.RandomState):
            self.random_state.set_state(run.rng.get_state())

    def _publish(self, run):
        """Set every fitted attribute from the run, the model last of all."""
        model = run.model
        # one pass over the prior records' references, none over their values: a partial_fit
        # after many others copies two lists (the history and the loss curve), which it made
        history = training.History(run.prior)
        history.extend(run.records)
        self.history_ = history
        curve = self.__dict__.get("loss_curve_") if run.prior else None
        if type(curve) is not list or len(curve) != len(run.prior):
            curve = [r["train_loss"] for r in run.prior]
        self.loss_curve_ = curve + [r["train_loss"] for r in run.records]
        if run.validated:
            self.validation_scores_ = [r["valid_score"] for r in history]
            self.validation_loss_curve_ = [r["valid_loss"] for r in history]
            self.best_validation_score_ = run.best_score
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.validation_loss_curve_ = None
            self.best_loss_ = run.best_loss
        self.best_epoch_ = run.best_epoch
        self.n_iter_ = len(history)
        self.loss_ = history[-1]["train_loss"] if history else self.__dict__.get("loss_")
        self.t_, self._n_updates = run.samples, run.t
        self._state, self._rng, self._schedule, self._seed = run.state, run.rng, \
            run.schedule, run.seed
        self._state_solver = self.solver  # what the state means (_optimizer_goes_on)
        self._state_since = run.state_since  # the history's first epoch of that state
        units = model.layout["units"]
        self.n_layers_, self.n_outputs_ = len(units), int(units[-1])
        self.out_activation_ = model.out_activation
        if model.binarizer is None:
            self._fitted_task, self._y_1d = "regression", model.y_1d
            for name in ("classes_", "_label_binarizer"):
                self.__dict__.pop(name, None)
        else:
            self._fitted_task = "classification"
            self._label_binarizer, self.classes_ = model.binarizer, model.binarizer.classes_
            self.__dict__.pop("_y_1d", None)
        self._model = model

    @contextmanager
    def _published(self, run):
        """The estimator as if training ended now, for the user's callbacks and scorers; then
        back to the model that other threads' predictions use until the swap."""
        previous = self.__dict__.get("_model")
        self._publish(run)
        try:
            yield
        finally:
            if previous is None:
                del self._model
            else:
                self._model = previous
