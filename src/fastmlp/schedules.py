"""Learning-rate schedules: what the rate is for the next epoch and whether the schedule ends
training. The rate inside an epoch is applied by the C optimizer step ("invscaling" decays per
update there); "plateau" and "adaptive" act between epochs, on the monitored score."""
import numpy as np

MAX_HALVINGS = 5
# "adaptive" (scikit-learn's rule): the rate is divided by ADAPTIVE_FACTOR, and training stops
# at a trigger that finds the rate already at or below ADAPTIVE_MIN_RATE
ADAPTIVE_FACTOR = 5.0
ADAPTIVE_MIN_RATE = 1e-6


class LearningRateSchedule:
    """learning_rate = "constant", "invscaling" (lr0 / t^power_t, t = update count),
    "plateau": halve the rate when the monitored score (lower is better) has not improved by
    `tol` for `n_iter_no_change` epochs; stop at the fifth halving. The rate is never halved
    more than five times (partial_fit, which cannot stop, keeps the last one).
    "adaptive", scikit-learn's schedule, for solver="sgd" only (any other solver keeps the
    rate constant, as scikit-learn's adam does): once more than `n_iter_no_change` epochs in a
    row have not improved on the best score by `tol`, divide the rate by 5, or stop training
    when it is already at most 1e-6. n_iter_no_change may be numpy.inf: never."""

    def __init__(self, kind, learning_rate_init, tol, n_iter_no_change, solver="sgd"):
        self.kind = "constant" if kind == "adaptive" and solver != "sgd" else kind
        self.learning_rate = float(learning_rate_init)
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.best = np.inf
        self.epochs_without_improvement = 0
        self.halvings = 0

    @property
    def c_schedule(self):
        """The schedule the C step applies within an epoch."""
        return "invscaling" if self.kind == "invscaling" else "constant"

    @property
    def acts_between_epochs(self):
        """Whether epoch_ends watches the monitored score and decides when training stops
        (then the loop's own n_iter_no_change rule gives way to it)."""
        return self.kind in ("plateau", "adaptive")

    def epoch_ends(self, monitored):
        """Record this epoch's monitored value (lower is better); True when training must stop."""
        if not self.acts_between_epochs:
            return False
        if self.kind == "plateau" and self.halvings >= MAX_HALVINGS:
            return True  # the schedule is over; partial_fit goes on at the last rate
        if monitored < self.best - self.tol:
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        self.best = min(self.best, monitored)
        if self.kind == "adaptive":
            if self.epochs_without_improvement <= self.n_iter_no_change:
                return False
            self.epochs_without_improvement = 0
            if self.learning_rate <= ADAPTIVE_MIN_RATE:
                return True
            self.learning_rate /= ADAPTIVE_FACTOR
            return False
        if self.epochs_without_improvement >= self.n_iter_no_change:
            self.learning_rate /= 2.0
            self.halvings += 1
            self.epochs_without_improvement = 0
            return self.halvings >= MAX_HALVINGS
        return False
