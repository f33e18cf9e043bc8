"""Training on rows read from a file (fastmlp/row_order.py): a memmap's epochs visit blocks of
consecutive rows in a random order and the rows of each block in a random order; arrays in
memory keep the uniform permutation. bench/out_of_core.py shows it on a file twice the memory
the process may use."""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification

from fastmlp import MLPClassifier, MLPRegressor, row_order, training
from fastmlp.row_order import BlockShuffle, epoch_order, maps_a_file, shuffling_for

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def blocks_of(order, rows, block_rows):
    """The order cut into its blocks, each as (first position in rows, length); fails unless
    every block is a run of consecutive training rows of a block's length."""
    position = np.empty(rows.max() + 1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    positions = position[order]
    blocks, at = [], 0
    while at < len(order):
        start = positions[at] - positions[at] % block_rows
        length = min(block_rows, len(rows) - start)
        block = np.sort(positions[at:at + length])
        np.testing.assert_array_equal(block, np.arange(start, start + length))
        blocks.append((int(start), length))
        at += length
    return blocks


@pytest.mark.parametrize("n, block_rows", [(1000, 64), (1000, 100), (5, 2), (7, 10)])
def test_block_order_visits_every_row_once_in_shuffled_blocks(n, block_rows):
    rng = np.random.RandomState(0)
    rows = np.sort(rng.choice(3 * n, n, replace=False)).astype(np.int64)  # held-out gaps
    shuffle = BlockShuffle(block_rows)
    order = epoch_order(np.random.RandomState(1), rows, shuffle)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), rows)  # every row exactly once
    blocks = blocks_of(order, rows, block_rows)
    assert sorted(blocks) == [(s, min(block_rows, n - s)) for s in range(0, n, block_rows)]
    # reproducible from the generator alone; another seed, another order
    np.testing.assert_array_equal(epoch_order(np.random.RandomState(1), rows, shuffle), order)
    assert not np.array_equal(epoch_order(np.random.RandomState(2), rows, shuffle), order)
    assert not np.array_equal(order, rows)
    if n // block_rows >= 4:
        # the blocks' order is shuffled, and the rows inside each block
        assert [s for s, _ in blocks] != sorted(s for s, _ in blocks)
        first_start, first_length = blocks[0]
        assert not np.array_equal(order[:first_length],
                                  rows[first_start:first_start + first_length])


def test_rows_in_memory_keep_the_uniform_permutation():
    """The order of an array in memory is the one draw it always was: fits are bitwise
    unchanged."""
    rows = np.arange(50, dtype=np.int64) * 2
    X = np.zeros((100, 3))
    assert shuffling_for(X, True) is True and shuffling_for(X, False) is False
    assert shuffling_for(sp.csr_matrix(X), True) is True
    rng, replay = np.random.RandomState(4), np.random.RandomState(4)
    np.testing.assert_array_equal(epoch_order(rng, rows, True),
                                  rows[replay.permutation(len(rows))])
    assert rng.randint(1 << 30) == replay.randint(1 << 30)  # and nothing more was drawn
    assert epoch_order(rng, rows, False) is rows


def test_which_arrays_map_a_file(tmp_path):
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32,
                                  shape=(100, 5))
    X[:] = 1
    X.flush()
    loaded = np.load(tmp_path / "X.npy", mmap_mode="r")
    for on_disk in (X, loaded, X[10:], X.T, np.asarray(X), X[::2]):
        assert maps_a_file(on_disk)
    for in_memory in (np.array(X), X.astype(np.float64), X[[1, 2, 3]], X + 1):
        assert not maps_a_file(in_memory)
    shuffle = shuffling_for(loaded, True)
    assert isinstance(shuffle, BlockShuffle)
    assert shuffle.block_rows == row_order.BLOCK_BYTES // (5 * 4)
    assert shuffling_for(loaded, False) is False


@pytest.fixture
def orders(monkeypatch):
    """Each epoch's order and the `shuffle` it was drawn for, as the epoch loop sees them."""
    seen = []

    def spy(rng, rows, shuffle):
        order = epoch_order(rng, rows, shuffle)
        seen.append((rows, shuffle, order))
        return order

    monkeypatch.setattr(training, "epoch_order", spy)
    return seen


def on_disk(path, X):
    """X written to a .npy file, and that file mapped read-only, as a user would open it."""
    np.save(path, X)
    return np.load(path, mmap_mode="r")


@pytest.fixture
def data(tmp_path, monkeypatch):
    # 4 KiB blocks: 51 rows of 20 float32 features, 40 blocks of the 2,000 rows
    monkeypatch.setattr(row_order, "BLOCK_BYTES", 4096)
    X, y = make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=0)
    X = X.astype(np.float32)
    return X, y, on_disk(tmp_path / "X.npy", X)


def small(**kwargs):
    return MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, batch_size=64, random_state=0,
                         n_threads=1, **kwargs)


def test_fit_on_a_memmap_trains_in_shuffled_blocks(data, orders):
    X, y, X_map = data
    model = small().fit(X_map, y)
    block_rows = 4096 // (20 * 4)
    assert len(orders) == 3
    for rows, shuffle, order in orders:
        assert isinstance(shuffle, BlockShuffle) and shuffle.block_rows == block_rows
        np.testing.assert_array_equal(rows, np.arange(2000))
        assert len(blocks_of(order, rows, block_rows)) == -(-2000 // block_rows)
        assert not np.array_equal(order, rows)
    assert not np.array_equal(orders[0][2], orders[1][2])  # a fresh order every epoch
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    # reproducible, the same on two threads, and the same as training on the rows in memory
    # in the same block order: the file's rows are read as they are
    first = [order for _, _, order in orders]
    again = small().fit(X_map, y)
    for (_, _, order), order_before in zip(orders[3:], first):
        np.testing.assert_array_equal(order, order_before)
    two_threads = small().set_params(n_threads=2).fit(X_map, y)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(row_order, "maps_a_file", lambda X: True)
        in_memory = small().fit(X, y)
    for other in (again, two_threads, in_memory):
        for a, b in zip(other.coefs_ + other.intercepts_, model.coefs_ + model.intercepts_):
            np.testing.assert_array_equal(a, b)


def test_fit_on_an_array_in_memory_is_shuffled_uniformly(data, orders):
    X, y, _ = data
    small().fit(X, y)
    assert [shuffle for _, shuffle, _ in orders] == [True] * 3


def test_a_memmap_without_shuffle_equals_the_rows_in_memory(data, orders):
    X, y, X_map = data
    model = small(shuffle=False).fit(X_map, y)
    reference = small(shuffle=False).fit(X, y)
    assert all(shuffle is False for _, shuffle, _ in orders)
    np.testing.assert_array_equal(model.predict_proba(X_map), reference.predict_proba(X))


def test_early_stopping_on_a_memmap_shuffles_the_training_rows_in_blocks(data, orders):
    X, y, X_map = data
    model = small(early_stopping=True, validation_fraction=0.2).fit(X_map, y)
    block_rows = 4096 // (20 * 4)
    for rows, shuffle, order in orders:
        assert len(rows) == 1600 and np.all(np.diff(rows) > 0)
        blocks_of(order, rows, block_rows)
    assert model.history_[0]["valid_score"] is not None


def test_partial_fit_and_a_regressor_on_a_memmap(data, orders, tmp_path):
    X, y, X_map = data
    model = small()
    for start in range(0, 2000, 500):  # blocks of the file, as dask-ml's Incremental hands them
        model.partial_fit(X_map[start:start + 500], y[start:start + 500], classes=[0, 1])
    assert all(isinstance(shuffle, BlockShuffle) for _, shuffle, _ in orders)
    target = on_disk(tmp_path / "y.npy", X[:, :2] @ np.ones((2, 2), dtype=np.float32))
    regressor = MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0,
                             n_threads=1).fit(X_map, target)
    assert regressor.predict(X_map).shape == (2000, 2)
