"""The Network estimator and its two task-fixed subclasses, end to end."""
import numpy as np
import pytest
import scipy.sparse
from conftest import make_targets
from reference import network_loss_and_gradients
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, Network, _core


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def test_digits_default_parameters(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.97
    assert clf.n_iter_ == len(clf.loss_curve_) < clf.max_iter  # stopped on tol, not max_iter
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_overfits_50_random_examples(activation):
    """The lecture's sanity check: enough capacity classifies 50 random examples perfectly."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(50, 20), rng.randint(0, 5, 50)
    clf = MLPClassifier(hidden_layer_sizes=(100,), activation=activation, alpha=0,
                        learning_rate_init=0.01, max_iter=1000, tol=0, n_iter_no_change=1000,
                        random_state=0)
    with pytest.warns(Warning):  # max_iter reached: it never stops on tol=0
        clf.fit(X, y)
    assert clf.score(X, y) == 1.0


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
def test_classification_tasks(kind, quiet):
    rng = np.random.RandomState(1)
    X = rng.randn(60, 5)
    y, output = make_targets(kind, 60, rng)
    clf = MLPClassifier(hidden_layer_sizes=(30,), max_iter=300, learning_rate_init=0.01,
                        random_state=0).fit(X, y)
    assert clf.out_activation_ == output
    proba = clf.predict_proba(X)
    pred = clf.predict(X)
    assert pred.shape == np.asarray(y).shape
    if kind == "multilabel":
        assert proba.shape == y.shape
        np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    else:
        assert proba.shape == (60, len(np.unique(y)))
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.8  # it learns the training data


def test_labels_of_any_type(quiet):
    rng = np.random.RandomState(2)
    X = rng.randn(40, 3)
    labels = np.array(["cat", "dog", "fish"], dtype=object)[rng.randint(0, 3, 40)]
    clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=20, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "fish"]
    assert set(clf.predict(X)) <= {"cat", "dog", "fish"}
    binary = np.where(rng.rand(40) > 0.5, "yes", "no")
    clf.fit(X, binary)
    assert clf.predict_proba(X).shape == (40, 2) and clf.n_outputs_ == 1


@pytest.mark.parametrize("multioutput", [False, True])
def test_regression(multioutput, quiet):
    rng = np.random.RandomState(3)
    X = rng.randn(200, 4)
    y = X @ rng.randn(4, 2) if multioutput else np.sin(X[:, 0]) + X[:, 1]
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=500, learning_rate_init=0.01,
                       random_state=0).fit(X, y)
    assert reg.out_activation_ == "identity"
    assert reg.predict(X).shape == y.shape
    assert reg.score(X, y) > 0.9
    assert not hasattr(reg, "predict_proba")


def test_network_task_follows_targets(quiet):
    rng = np.random.RandomState(4)
    X = rng.randn(30, 3)
    net = Network(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    net.fit(X, rng.randint(0, 3, 30))
    assert net.out_activation_ == "softmax" and hasattr(net, "predict_proba")
    net.fit(X, rng.randn(30))
    assert net.out_activation_ == "identity" and not hasattr(net, "predict_proba")
    assert isinstance(net.score(X, rng.randn(30)), float)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_the_precision(dtype, digits, quiet):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, dtype=dtype,
                        random_state=0).fit(X_train, y_train)
    assert clf._params.dtype == dtype
    assert all(W.dtype == dtype for W in clf.coefs_)
    # the model's precision, unless the input is float64: then float64, as scikit-learn's
    assert clf.predict_proba(X_test.astype(dtype)).dtype == dtype
    assert clf.predict_proba(X_test).dtype == np.float64
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, dtype=dtype,
                       random_state=0).fit(X_train, X_train[:, 20])
    assert reg.predict(X_test.astype(dtype)).dtype == dtype
    assert reg.predict(X_test).dtype == np.float64


def test_float32_regressors_pass_the_multioutput_check(quiet):
    """scikit-learn's check wants float64 predictions of float64 input."""
    from sklearn.utils.estimator_checks import check_regressor_multioutput
    for cls in (MLPRegressor, Network):
        check_regressor_multioutput(cls.__name__, cls(hidden_layer_sizes=(16,), max_iter=100,
                                                      learning_rate_init=0.01, random_state=0,
                                                      n_threads=1))


def test_random_state_makes_fits_bitwise_repeatable(digits, quiet):
    X_train, _, y_train, _ = digits
    fits = [MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=7)
            .fit(X_train, y_train) for _ in range(2)]
    assert np.array_equal(fits[0]._params, fits[1]._params)
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    other = MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=8)
    assert not np.array_equal(other.fit(X_train, y_train)._params, fits[0]._params)


def test_threads_give_the_same_bits(digits, quiet, gemm_path):
    """The work of a batch is cut into slabs by its size and the machine's cores, never by
    n_threads: a last batch of 147 rows (1347 = 6 * 200 + 147) once split 73/74 on two threads
    and 147 on one, and BLAS, which picks its kernel by shape, summed differently."""
    X_train, _, y_train, _ = digits
    hidden = (200, 100)
    n_weights = 64 * 200 + 200 * 100 + 100 * 10
    assert len(X_train) % 200 == 147
    fits = [MLPClassifier(hidden_layer_sizes=hidden, max_iter=5, random_state=0,
                          n_threads=n).fit(X_train, y_train) for n in (1, 2)]
    assert fits[1]._layout["n_weights"] == n_weights
    assert np.array_equal(fits[0]._params, fits[1]._params)
    assert fits[0].loss_curve_ == fits[1].loss_curve_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hidden", [(64, 32), (120, 110)])
def test_train_epoch_bits_depend_on_parts_not_threads(dtype, hidden, gemm_path):
    """Driving the bridge directly, so the test holds on a one-core machine too: 2 parts on
    1, 2 or 3 threads, switching count within the epoch, give the same bits. (64, 32) runs
    forward by rows; (120, 110), wider than the batch and each no wider than its input, by
    W's rows in both hidden layers, with the two partial products summed."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(347, 130), rng.randint(0, 4, 347)
    model = MLPClassifier(hidden_layer_sizes=hidden, max_iter=1, random_state=0, dtype=dtype,
                          n_threads=1, batch_size=100).partial_fit(X, y, classes=range(4))
    X = X.astype(dtype)
    Y = model._encode_targets(y, first=False)
    order = rng.permutation(len(X)).astype(np.int64)
    results = []
    for threads in (1, 2, 3):
        params = model._params.copy()
        state = np.zeros(2 * model._layout["n_trainable"], dtype=dtype)
        grads = np.zeros(model._layout["n_trainable"], dtype=dtype)
        workspace = np.zeros(model._net().workspace_size(100, 2, dtype), dtype=dtype)
        hyper = fastmlp.optim.hyperparameters(model, 0.01, "constant")
        batch_loss = np.zeros(4)
        # the epoch as two calls, the second on another thread count, as a probe runs it
        t = _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state,
                              workspace, batch_loss[:1], Y, None, order[:100], 100, 7, 0, 2,
                              threads)
        t = _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state,
                              workspace, batch_loss[1:], Y, None, order[100:], 100, 7, t, 2,
                              4 - threads)
        assert t == 4
        results.append((params, batch_loss))
    assert all(np.array_equal(results[0][0], p) and np.array_equal(results[0][1], loss)
               for p, loss in results[1:])
    assert not np.array_equal(results[0][0], model._params)
    assert np.all(results[0][1] > 0)


def test_train_epoch_refuses_a_workspace_too_small():
    """The C side lays its buffers out in the workspace, one pack scratch per part where the
    tiles run: the bridge checks the size against the batch and the part count it is given."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 30), rng.randint(0, 3, 40)
    model = MLPClassifier(hidden_layer_sizes=(50,), max_iter=1, random_state=0, batch_size=20,
                          n_threads=1).partial_fit(X, y, classes=range(3))
    net, dtype = model._net(), model._params.dtype
    one, two = net.workspace_size(20, 1, dtype), net.workspace_size(20, 2, dtype)
    assert two > one if _core.tiles_available() else two == one
    n_trainable = model._layout["n_trainable"]
    for parts, size in ((1, one - 1), (2, two - 1)):
        with pytest.raises(ValueError, match="workspace holds"):
            _core.train_epoch(net, fastmlp.optim.hyperparameters(model, 0.01, "constant"),
                              model._input(X.astype(dtype)), model._params.copy(),
                              np.zeros(n_trainable, dtype), np.zeros(2 * n_trainable, dtype),
                              np.zeros(size, dtype), np.zeros(2),
                              model._encode_targets(y, first=False), None,
                              np.arange(40, dtype=np.int64), 20, 7, 0, parts, 1)


@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("nesterov", [False, True])
def test_an_epoch_in_stretches_gives_the_bits_of_one_call(alpha, nesterov):
    """The thread-count probe runs an epoch as two calls; SGD momentum keeps its velocity
    pre-scaled between the batches of one call (csrc/train.c), so a call boundary must give
    the same bits as no boundary, with and without the L2 term."""
    rng = np.random.RandomState(1)
    X, y = rng.rand(230, 20).astype(np.float32), rng.randint(0, 3, 230)
    model = MLPClassifier(hidden_layer_sizes=(40, 30), max_iter=1, random_state=0,
                          solver="sgd", momentum=0.9, nesterovs_momentum=nesterov, alpha=alpha,
                          n_threads=1, batch_size=20).partial_fit(X, y, classes=range(3))
    Y = model._encode_targets(y, first=False)
    order = rng.permutation(230).astype(np.int64)
    hyper = fastmlp.optim.hyperparameters(model, 0.05, "constant")
    velocity = rng.randn(2 * model._layout["n_trainable"]).astype(np.float32)  # a warm start
    results = []
    for cuts in ([0, 230], [0, 40, 230], [0, 20, 120, 140, 230]):
        params, state = model._params.copy(), velocity.copy()
        grads = np.zeros(model._layout["n_trainable"], dtype=np.float32)
        workspace = np.zeros(model._net().workspace_size(20, 1, np.float32), dtype=np.float32)
        batch_loss = np.zeros(12)
        t = 0
        for a, b in zip(cuts[:-1], cuts[1:]):
            t = _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state,
                                  workspace, batch_loss[a // 20:], Y, None, order[a:b], 20, 7,
                                  t, 1, 1)
        assert t == 12
        results.append((params, state, batch_loss))
    assert not np.array_equal(results[0][1], velocity)
    for params, state, batch_loss in results[1:]:
        assert np.array_equal(params, results[0][0])
        assert np.array_equal(state, results[0][1])
        assert np.array_equal(batch_loss, results[0][2])


@pytest.mark.parametrize("hidden, extra", [
    ((40, 70), {}),                                      # dW by columns; dH by W's rows
    ((18, 17), {"dropout": 0.2}),                        # forward by W's rows, on 2 parts
    ((18, 17), {"batch_norm": True}),
    ((8,), {"solver": "adam", "alpha": 0.1}),            # dH by rows: the step waits
    ((40, 70), {"batch_norm": True, "dropout": 0.2}),    # gamma, beta stepped after their use
    ((40,), {"sparse": True, "alpha": 0.1}),             # sparse input: dW by columns
])
def test_every_parameter_is_stepped_once_however_the_batch_is_cut(hidden, extra, gemm_path):
    """The optimizer's chunks go to the thread that computed their dW slab (csrc/workspace.c), and
    the slabs follow the parts: cutting a batch into 1, 2, 3 or 5 parts moves them about and
    may only change the rounding, never which parameters move or by how much. The shapes
    cover dW cut by rows and by columns, dJ/dh cut by rows and by W's rows, forward cut by
    W's rows (layers no wider than their input but wider than the batch), batch norm,
    dropout, Adam's two moments, L2 in the loss and a sparse first layer."""
    extra = dict(extra)
    sparse = extra.pop("sparse", False)
    rng = np.random.RandomState(0)
    X, y = rng.rand(61, 20), rng.randint(0, 4, 61)
    if sparse:
        X = scipy.sparse.csr_matrix(np.where(X > 0.7, X, 0.0))
    model = MLPClassifier(hidden_layer_sizes=hidden, max_iter=1, random_state=0,
                          dtype=np.float64, n_threads=1, batch_size=16, momentum=0.9,
                          **extra).partial_fit(X, y, classes=range(4))
    Y = model._encode_targets(y, first=False)
    order = rng.permutation(61).astype(np.int64)
    hyper = fastmlp.optim.hyperparameters(model, 0.05, "constant")
    results = []
    for parts in (1, 2, 3, 5):
        params = model._params.copy()
        state = np.zeros(2 * model._layout["n_trainable"])
        grads = np.zeros(model._layout["n_trainable"])
        workspace = np.zeros(model._net().workspace_size(16, parts, np.float64))
        batch_loss = np.zeros(4)
        for epoch_t in (0, 4):  # two epochs, so momentum and Adam's moments carry over
            _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state,
                              workspace, batch_loss, Y, None, order, 16, 7, epoch_t, parts, 2)
        results.append((params, state, batch_loss))
    n_weights = model._layout["n_weights"]  # (hidden layers under batch norm have no bias)
    assert np.all(results[0][0][:n_weights] != model._params[:n_weights])
    for params, state, batch_loss in results[1:]:
        np.testing.assert_allclose(params, results[0][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state, results[0][1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batch_loss, results[0][2], rtol=1e-10)


@pytest.mark.parametrize("hidden", [(40, 70), (9,)])
def test_momentum_epoch_matches_the_gradient_oracle(hidden, gemm_path):
    """SGD momentum adds each batch's gradient straight into the velocity within the dW product
    (csrc/batch.c). Two batches against v = momentum * v + g, p -= lr * v, with g from the numpy
    oracle at each batch's parameters. 20 inputs make the first layer's dW 20 rows by columns:
    on the tiles, three tiles and a fourth moved back over rows already done, which must not
    add their gradient twice."""
    rng = np.random.RandomState(3)
    X, y = rng.randn(60, 20), rng.randint(0, 4, 60)
    model = MLPClassifier(hidden_layer_sizes=hidden, max_iter=1, random_state=0,
                          dtype=np.float64, n_threads=1, batch_size=30, solver="sgd",
                          momentum=0.9, nesterovs_momentum=False,
                          alpha=0.0, normalize=None).partial_fit(X, y, classes=range(4))
    lay, n_trainable = model._layout, model._layout["n_trainable"]
    Y = model._encode_targets(y, first=False).astype(np.float64)
    hyper = fastmlp.optim.hyperparameters(model, 0.05, "constant")
    params = model._params.copy()
    expected, velocity = params.copy(), np.zeros(n_trainable)
    units = lay["units"]
    for rows in (slice(0, 30), slice(30, 60)):
        coefs = [expected[lay["w_offset"][l]:][:units[l] * units[l + 1]]
                 .reshape(units[l], units[l + 1]) for l in range(len(units) - 1)]
        intercepts = [expected[lay["b_offset"][l]:][:units[l + 1]] for l in range(len(units) - 1)]
        _, dcoefs, dintercepts = network_loss_and_gradients(
            X[rows], Y[rows], coefs, intercepts, "relu", "softmax", 0.0)
        g = np.zeros(n_trainable)
        for l, (dW, db) in enumerate(zip(dcoefs, dintercepts)):
            g[lay["w_offset"][l]:][:dW.size] = dW.ravel()
            g[lay["b_offset"][l]:][:db.size] = db
        velocity = 0.9 * velocity + g
        expected[:n_trainable] -= 0.05 * velocity
    state = np.zeros(2 * n_trainable)
    grads = np.zeros(n_trainable)
    workspace = np.zeros(model._net().workspace_size(30, 2, np.float64))
    _core.train_epoch(model._net(), hyper, model._input(X), params, grads, state, workspace,
                      np.zeros(2), Y, None, np.arange(60, dtype=np.int64), 30, 7, 0, 2, 1)
    np.testing.assert_allclose(params, expected, rtol=1e-10, atol=1e-13)


def test_small_batches_are_not_cut():
    """Below ~4 MFLOP of work per part, a second thread costs more in barriers than it saves."""
    assert _core.work_parts(300, 50, 2) == 1
    assert _core.work_parts(10**6, 256, 2) == 2
    assert _core.work_parts(10**6, 256, 16) == 16
    assert _core.work_parts(10**6, 256, 1) == 1


def test_glorot_initialization():
    rng = np.random.RandomState(5)
    X, y = rng.randn(10, 300), rng.randint(0, 2, 10)
    clf = MLPClassifier(hidden_layer_sizes=(200,), max_iter=1, learning_rate_init=1e-12,
                        random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    bound = np.sqrt(6 / (300 + 200))
    W = clf.coefs_[0]
    assert W.min() >= -bound and W.max() <= bound
    assert W.min() < -0.95 * bound and W.max() > 0.95 * bound  # uniform over the whole range
    assert np.all(np.abs(clf.intercepts_[0]) < 1e-9)


def test_coefs_are_views_on_one_buffer(digits, quiet):
    X_train, X_test, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(20,), max_iter=3, random_state=0)
    clf.fit(X_train, y_train)
    for array in clf.coefs_ + clf.intercepts_:
        assert np.shares_memory(array, clf._params)
    before = clf.predict_proba(X_test)
    clf.coefs_[1][...] = 0
    clf.intercepts_[1][...] = np.arange(10)
    after = clf.predict_proba(X_test)
    expected = np.exp(np.arange(10)) / np.exp(np.arange(10)).sum()
    np.testing.assert_allclose(after, np.tile(expected, (len(X_test), 1)), rtol=1e-5)
    assert not np.allclose(before, after)
    # a warm-started fit starts from the written values
    clf.set_params(warm_start=True, max_iter=1)
    clf.fit(X_train, y_train)
    assert np.abs(clf.coefs_[1]).max() < 0.1


def test_tol_stopping_on_training_loss(digits):
    X_train, _, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(20,), tol=10.0, n_iter_no_change=3, random_state=0)
    clf.fit(X_train, y_train)
    # the first epoch improves on an infinite best; none after it improves by 10
    assert clf.n_iter_ == 1 + 3


def test_reaching_max_iter_warns(digits):
    from sklearn.exceptions import ConvergenceWarning

    X_train, _, y_train, _ = digits
    with pytest.warns(ConvergenceWarning):
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X_train, y_train)


def test_partial_fit_continues(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(50,), random_state=0)
    clf.partial_fit(X_train, y_train, classes=np.arange(10))
    first = clf.score(X_test, y_test)
    for _ in range(10):
        clf.partial_fit(X_train, y_train)
    assert clf.n_iter_ == 11 and clf._n_updates == 11 * int(np.ceil(len(X_train) / 200))
    assert clf.t_ == 11 * len(X_train)
    assert clf.score(X_test, y_test) > first


def test_verbose_prints_one_line_per_epoch(digits, capsys, quiet):
    X_train, _, y_train, _ = digits
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, verbose=True,
                  random_state=0).fit(X_train, y_train)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3: train loss ") and "samples/s" in lines[0]
    assert "lr 0.001" in lines[0] and "valid" not in lines[0] and "thread" not in lines[0]


def test_fit_does_not_copy_a_ready_array(monkeypatch, quiet):
    """A float32 C-contiguous X (the model's dtype) reaches the C side as it is."""
    seen = []
    original = fastmlp._core.Input

    def spy(X, *args):
        seen.append(X)
        return original(X, *args)

    monkeypatch.setattr(fastmlp.network._core, "Input", spy)
    rng = np.random.RandomState(6)
    X, y = rng.randn(50, 4).astype(np.float32), rng.randint(0, 2, 50)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, y)
    clf.predict(X)
    assert seen and all(array is X for array in seen)


def test_show_config(capsys):
    fastmlp.show_config()
    out = capsys.readouterr().out
    assert "fastmlp" in out and "OpenMP" in out and "BLAS" in out and "float64" in out
    assert ("register tiles" in out) == _core.tiles_available()


@pytest.mark.skipif(not _core.tiles_available("avx2"), reason="needs the AVX2 tiles")
def test_show_config_names_what_the_avx2_tiles_leave_to_blas(capsys):
    before = _core.set_tiles("avx2")
    try:
        fastmlp.show_config()
    finally:
        _core.set_tiles(before)
    out = capsys.readouterr().out
    assert f"register tiles (avx2) up to {_core.TILE_AVX2_MAX_COLS} columns wide" in out
