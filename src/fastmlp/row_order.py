"""The order an epoch visits the training rows in.

Rows in memory are visited in a uniform random permutation. Rows read from a file mapped into
memory (a `numpy.memmap`, `numpy.load(..., mmap_mode="r")`, or a view of either) are visited
block by block: the training rows are cut into blocks of consecutive rows, about `BLOCK_BYTES`
of X each, the blocks come in a random order and the rows inside each block in a random order.
A uniform permutation over a file larger than the page cache makes nearly every row a random
disk read; with blocks, each block's pages are read once per epoch (a few MB of consecutive
file) and stay cached while its rows are trained, and every row is still visited exactly once
per epoch, each in a random batch of its block's rows. Both orders are drawn from the run's
seeded generator alone, so a fit stays reproducible and independent of the thread count."""
import mmap

import numpy as np
import scipy.sparse as sp

# 16 MiB: 83,886 rows of 50 float32 features, 20,971 of 200, 5,349 of 784. Large enough that a
# block is read as long runs of consecutive pages and that each block holds many batches;
# small enough that dozens of blocks sit in a page cache of a few hundred MB, and that a
# data set of a few GB still has hundreds of blocks to shuffle.
BLOCK_BYTES = 16 << 20


class BlockShuffle:
    """Shuffle blocks of `block_rows` consecutive training rows, then the rows in each."""

    def __init__(self, block_rows):
        self.block_rows = int(block_rows)

    def order(self, rng, rows):
        """`rows` (the training rows, ascending int64 indices into X) in block order: one
        permutation of the blocks, then one of each block's rows, in the blocks' new order."""
        size = self.block_rows
        starts = np.arange(0, len(rows), size)
        order = np.empty_like(rows)
        at = 0
        for start in starts[rng.permutation(len(starts))]:
            block = rows[start:start + size]
            order[at:at + len(block)] = block[rng.permutation(len(block))]
            at += len(block)
        return order

    def __repr__(self):
        return f"BlockShuffle(block_rows={self.block_rows})"


def epoch_order(rng, rows, shuffle):
    """The rows of one epoch in the order training visits them. `shuffle`: False (as given),
    True (a uniform permutation, one draw from rng), or a BlockShuffle (`shuffling_for`)."""
    if isinstance(shuffle, BlockShuffle):
        return shuffle.order(rng, rows)
    return rows[rng.permutation(len(rows))] if shuffle else rows


def shuffling_for(X, shuffle):
    """The epoch loop's `shuffle` for the validated X and the estimator's `shuffle`: block
    shuffling where X's rows are read from a mapped file, else `shuffle` as it is."""
    if not shuffle or sp.issparse(X) or not maps_a_file(X):
        return shuffle
    row_bytes = max(1, X.shape[1] * X.itemsize)
    return BlockShuffle(max(1, BLOCK_BYTES // row_bytes))


def maps_a_file(X):
    """Whether X's memory is a file mapped into memory: X, or an array X is a view of, was made
    on an `mmap.mmap` (np.memmap's own base is one, and so np.load's mmap_mode arrays'; an
    np.frombuffer array reaches it through a memoryview). An array copied from a memmap
    (`memmap.astype`, fancy indexing) is in memory, even where its type is still np.memmap."""
    base = X
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return False
