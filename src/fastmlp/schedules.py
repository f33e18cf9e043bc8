"""Learning-rate schedules: what the rate is for the next epoch and whether the schedule ends
training. The rate inside an epoch is applied by the C optimizer step ("invscaling" decays per
update there); "plateau" acts between epochs, on the monitored score."""
import numpy as np

MAX_HALVINGS = 5


class LearningRateSchedule:
    """learning_rate = "constant", "invscaling" (lr0 / t^power_t, t = update count) or
    "plateau": halve the rate when the monitored score (lower is better) has not improved by
    `tol` for `n_iter_no_change` epochs; stop at the fifth halving. The rate is never halved
    more than five times (partial_fit, which cannot stop, keeps the last one)."""

    def __init__(self, kind, learning_rate_init, tol, n_iter_no_change):
        self.kind = kind
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

    def epoch_ends(self, monitored):
        """Record this epoch's monitored value (lower is better); True when training must stop."""
        if self.kind != "plateau":
            return False
        if self.halvings >= MAX_HALVINGS:
            return True  # the schedule is over; partial_fit goes on at the last rate
        if monitored < self.best - self.tol:
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        self.best = min(self.best, monitored)
        if self.epochs_without_improvement >= self.n_iter_no_change:
            self.learning_rate /= 2.0
            self.halvings += 1
            self.epochs_without_improvement = 0
            return self.halvings >= MAX_HALVINGS
        return False
