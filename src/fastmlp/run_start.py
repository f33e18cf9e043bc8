"""What a fit or partial_fit trains: a new model, or new buffers that go on from the
published one, with the optimizer state, the learning-rate schedule and the scratch buffers
the run needs, and the memory all that takes, checked before anything is allocated.

The second step of the data's path: after the inputs and targets are validated
(fastmlp/inputs.py), `RunStart` (a part of `Network`, fastmlp/network.py) makes what
fastmlp/training.py trains; fastmlp/publication.py makes the result the estimator's."""
import numpy as np
from sklearn.utils import check_random_state

from .model import c_net, check_memory, new_model, parameter_layout
from .optim import fit_copies, new_state, state_values
from .schedules import LearningRateSchedule


class RunStart:
    """Network's model, state and buffers for a run (a mixin: it reads the estimator's
    hyperparameters and its fitted model)."""

    def _model_to_train(self, first, incremental, X, Y, sample_weight, hidden, batch_size,
                        dtype, sparse, out_activation, binarizer, y_1d):
        """(model, state, pending, rng, seed, parts) of a run (training.Run): on a `first`
        call, a new model initialized from validated X (n, n_features) and Y (n, n_outputs)
        and zeroed state; otherwise new buffers that the first update fills from the fitted
        model (which keeps serving), `pending` (_continued). `parts`: the slabs of each
        batch's products (_work_parts). Raises MemoryError before allocating a run that
        cannot fit in memory (model.check_memory)."""
        if first:
            rng = check_random_state(self.random_state)
            if rng is self.random_state:
                rng = _copy_generator(rng)  # the caller's moves on only on success
            elif self.random_state is None:
                # numpy's global generator: the model gets one of its own, seeded from it, or
                # everyone's draws would move the model's (a failed fit's split among them)
                rng = np.random.RandomState(rng.randint(np.iinfo(np.int32).max))
            units = [X.shape[1]] + hidden + [Y.shape[1]]
            layout = parameter_layout(units, self.batch_norm,
                                      X.shape[1] if self.normalize == "auto" else 0,
                                      self._tied_pairs())
            net = c_net(layout, self._spec(), out_activation)
            parts = self._work_parts(batch_size, layout)
            check_memory(layout, dtype,
                         self._workspace_need(net, batch_size, parts, dtype, sparse),
                         copies=self._fit_copies(net, layout, parts, dtype, sparse, incremental))
            model = new_model(layout, self._spec(), out_activation, binarizer, y_1d, dtype, X,
                              sample_weight, rng)
            pretrained = self.__dict__.get("_pretrained")
            if pretrained is not None:
                pretrained.apply(model)  # the hidden layers pre-trained (pretraining.py)
            seed = int(rng.randint(0, 2**31 - 1)) * 2**32 + int(rng.randint(0, 2**31 - 1))
            state, pending = new_state(model.layout["n_trainable"], dtype, self.solver), None
        else:
            rng, seed, old = self._rng, self._seed, self._model  # _fit restores its state
            # the published parameters and state are resident already: the new ones are not
            parts = self._work_parts(batch_size, old.layout)
            check_memory(old.layout, dtype,
                         self._workspace_need(old.net, batch_size, parts, dtype, sparse),
                         copies=self._fit_copies(old.net, old.layout, parts, dtype, sparse,
                                                 incremental))
            model, state, pending = self._continued(old, incremental)
        return model, state, pending, rng, seed, parts

    def _continued(self, old, incremental):
        """(model, state, pending) for a run that goes on from the published model `old`
        (training.Run): the stochastic solvers' first update reads old's parameters and
        state and writes new buffers (csrc/step.c, take_chunk), so nothing is copied beforehand but the
        values past the trainable part; L-BFGS trains a copy. The state goes on in
        partial_fit and starts at zero in a warm-started fit."""
        spec = self._spec(old)  # the fitted architecture goes on
        published = self.__dict__.get("_state") if self._optimizer_goes_on(incremental) \
            else None
        trainable, dtype = old.layout["n_trainable"], old.params.dtype
        if self.solver == "lbfgs":
            return old.with_params(old.params.copy(), spec), new_state(
                trainable, dtype, self.solver), None
        params = np.empty_like(old.params)
        params[trainable:] = old.params[trainable:]
        target = old.with_params(params, spec)
        # what the run reads until its first update: old itself where the spec is old's
        reading = old if target.net is old.net else target.with_params(old.params)
        if published is None:
            state = new_state(trainable, dtype, self.solver)
            return reading, state, (target, state)
        published = state_values(published, trainable, self.solver)  # an older pickle's
        return reading, published, (target, np.empty_like(published))

    def _workspace_need(self, net, batch_size, parts, dtype, sparse):
        """Reals of C workspace a run allocates for X (sparse or not): none where the
        estimator's is large enough (_buffers reuses it; L-BFGS makes its own, for all rows)."""
        size = net.workspace_size(batch_size, parts, dtype, sparse)
        held = self.__dict__.get("_workspace") if self.solver != "lbfgs" else None
        return 0 if held is not None and held.dtype == dtype and held.size >= size else size

    def _fit_copies(self, net, layout, parts, dtype, sparse, incremental):
        """Parameter buffers' worth of memory a fit or partial_fit of `net` (of `layout`, its
        batches cut into `parts`) holds at its peak besides the workspace (optim.fit_copies),
        for check_memory: the gradient's part, what training stores of it and the work
        parts' blocks of it where weights are stepped in backward."""
        solver = (self.solver, self.momentum, self.nesterovs_momentum)
        gradient = net.stored_gradient(parts, sparse, *solver) \
            + net.gradient_scratch(parts, dtype, sparse, *solver)
        return fit_copies(self.solver, gradient / int(layout["size"]), np.dtype(dtype).itemsize,
                          best_epoch=bool(self.early_stopping) and not incremental)

    def _optimizer_goes_on(self, incremental):
        """Whether a call goes on with the fitted optimizer, its state and update count: a
        partial_fit with the solver that made the state. One changed by set_params since
        starts afresh, as a new optimizer: the state would mean another thing to it (adam's
        first moment is no sum of squares for adagrad, whose step would take its root)."""
        return incremental and self.__dict__.get("_state_solver", self.solver) == self.solver

    def _new_schedule(self, resumed):
        schedule = self.__dict__.get("_schedule") if resumed else None
        if schedule is None:
            return LearningRateSchedule(self.learning_rate, self.learning_rate_init, self.tol,
                                        self.n_iter_no_change, self.solver)
        # copy.copy's result (a new object holding the same attributes) at a quarter of its
        # cost, which goes through __reduce_ex__
        schedule, published = object.__new__(type(schedule)), schedule
        schedule.__dict__.update(published.__dict__)
        if self.__dict__.get("validation_scores_") is not None:
            # it watched validation scores in fit; partial_fit watches the training loss
            schedule.best, schedule.epochs_without_improvement = np.inf, 0
        return schedule

    def _buffers(self, model, batch_size, parts, sparse):
        """Gradient and workspace buffers, allocated once and reused across calls."""
        dtype = model.params.dtype
        n_train = model.layout["n_trainable"]
        size = model.net.workspace_size(batch_size, parts, dtype, sparse)
        grads, workspace = self.__dict__.get("_grads"), self.__dict__.get("_workspace")
        if grads is None or grads.size != n_train or grads.dtype != dtype:
            grads = self._grads = np.zeros(n_train, dtype=dtype)
        if workspace is None or workspace.size < size or workspace.dtype != dtype:
            workspace = self._workspace = np.zeros(size, dtype=dtype)
        return grads, workspace


def _copy_generator(rng):
    """A RandomState in the same state (deepcopy takes ~50x as long)."""
    copy_ = np.random.RandomState()
    copy_.set_state(rng.get_state())
    return copy_
