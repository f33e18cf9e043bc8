"""PyTorch with torch.compile on the whole train step (forward, loss, backward, SGD step)."""
from torch_ import Trainer as _Eager
from torch_ import version  # noqa: F401


class Trainer(_Eager):
    compile = True


def trainer(hidden, batch, X, y, threads):
    return Trainer(hidden, batch, X, y, threads)
