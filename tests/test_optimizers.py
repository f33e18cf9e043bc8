"""Every solver step for step against a numpy implementation of its shared/API.md formula (the
formulas PyTorch uses), with and without the L2 term, under each learning-rate schedule; and
the optimizer state across partial_fit and warm-started fit.

The C step sees the gradient of the full batch (batch_size = n, shuffle=False), so each epoch is
one update and the data gradient before it can be taken from the same C backward pass
(Network._batch_gradient, with alpha=0: the oracle adds the L2 term itself, on weights only)."""
import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

rng = np.random.RandomState(0)
X = rng.randn(24, 3)
Y = rng.randint(0, 3, 24)
Y[:3] = [0, 1, 2]
CLASSES = np.arange(3)

SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", momentum=0.9),
    "nesterov": dict(solver="sgd", momentum=0.8, nesterovs_momentum=True),
    "adagrad": dict(solver="adagrad"),
    "adagrad epsilon": dict(solver="adagrad", epsilon=1e-2),
    "rmsprop": dict(solver="rmsprop", rho=0.9),
    "adam": dict(solver="adam", beta_1=0.8, beta_2=0.95),
    "adam epsilon": dict(solver="adam", epsilon=1e-3),
    # 1 - 1e-9 rounds to 1 in float32: the step must still average with weight 1e-9
    # (without bias correction its first steps are lr / sqrt(1e-9): a small rate keeps them
    # within float32's reach of the float64 oracle)
    "rmsprop rho near 1": dict(solver="rmsprop", rho=1 - 1e-9, learning_rate_init=1e-4),
    "adam betas near 1": dict(solver="adam", beta_1=1 - 1e-9, beta_2=1 - 1e-9),
}
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


class NumpyOptimizer:
    """shared/API.md's update rules over the trainable part of the flat buffer, in float64.
    p (n_trainable,); the first n_weights entries are weights, the only ones L2 applies to."""

    def __init__(self, p, n_weights, solver, learning_rate_init=0.01, learning_rate="constant",
                 power_t=0.5, momentum=0.9, nesterovs_momentum=False, beta_1=0.9,
                 beta_2=0.999, rho=0.99, epsilon=None, alpha=0.0):
        self.p = p.astype(np.float64)
        self.decay = np.zeros_like(self.p)
        self.decay[:n_weights] = alpha
        self.solver, self.lr0, self.schedule, self.power_t = (solver, learning_rate_init,
                                                              learning_rate, power_t)
        self.momentum, self.nesterov = momentum, nesterovs_momentum
        self.b1, self.b2, self.rho = beta_1, beta_2, rho
        self.eps = {"adam": 1e-8, "rmsprop": 1e-8, "adagrad": 1e-10}.get(solver, 0.0) \
            if epsilon is None else epsilon
        self.s0 = np.zeros_like(self.p)  # velocity / sum of squares / adam's m
        self.s1 = np.zeros_like(self.p)  # adam's v
        self.t = 0

    def step(self, data_gradient):
        self.t += 1
        t, p = self.t, self.p
        lr = self.lr0 / t ** self.power_t if self.schedule == "invscaling" else self.lr0
        g = data_gradient.astype(np.float64) + self.decay * p
        if self.solver == "sgd":
            self.s0 = self.momentum * self.s0 + g
            p -= lr * (g + self.momentum * self.s0) if self.nesterov else lr * self.s0
        elif self.solver == "adagrad":
            self.s0 += g * g
            p -= lr * g / (np.sqrt(self.s0) + self.eps)
        elif self.solver == "rmsprop":
            self.s0 = self.rho * self.s0 + (1 - self.rho) * g * g
            p -= lr * g / (np.sqrt(self.s0) + self.eps)
        else:
            self.s0 = self.b1 * self.s0 + (1 - self.b1) * g
            self.s1 = self.b2 * self.s1 + (1 - self.b2) * g * g
            m_hat = self.s0 / (1 - self.b1 ** t)
            v_hat = self.s1 / (1 - self.b2 ** t)
            p -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


def data_gradient(model, X_batch, y_batch):
    """dJ/dparams without the L2 term, at the model's current parameters."""
    alpha = model.alpha
    model.alpha = 0.0
    try:
        return model._batch_gradient(X_batch, y_batch)[1].astype(np.float64)
    finally:
        model.alpha = alpha


def trainable(model):
    return model._params[:model._layout["n_trainable"]].astype(np.float64)


def assert_close(actual, expected, dtype):
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def started(dtype, **params):
    """A fitted model, then a warm start: from here its next fit starts a fresh optimizer."""
    model = MLPClassifier(hidden_layer_sizes=(5, 4), activation="tanh", batch_size=len(X),
                          shuffle=False, random_state=0, dtype=dtype, n_threads=1, max_iter=1,
                          **params)
    model.fit(X, Y)
    model.set_params(warm_start=True)
    return model


def oracle_for(model):
    """The oracle with the model's hyperparameters, starting at its parameters."""
    keys = ("solver", "learning_rate_init", "learning_rate", "power_t", "momentum",
            "nesterovs_momentum", "beta_1", "beta_2", "rho", "epsilon", "alpha")
    hyper = {k: v for k, v in model.get_params().items() if k in keys}
    return NumpyOptimizer(trainable(model), model._layout["n_weights"], **hyper)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_steps_match_numpy_formula(name, alpha, schedule, dtype):
    """Step 1 by a warm-started fit (fresh state, t = 1), steps 2..5 by partial_fit (state kept,
    t counting on): parameters and state agree with the oracle after every step."""
    params = dict(dict(alpha=alpha, learning_rate=schedule, learning_rate_init=0.05,
                       power_t=0.7), **SOLVERS[name])
    model = started(dtype, **params)
    oracle = oracle_for(model)
    for step in range(5):
        oracle.step(data_gradient(model, X, Y))
        if step == 0:
            model.fit(X, Y)
        else:
            model.partial_fit(X, Y)
        assert model._n_updates == step + 1
        assert model.t_ == len(X) * (step + 2)  # the samples of started()'s fit counted too
        assert_close(trainable(model), oracle.p, dtype)
        n = len(oracle.p)
        assert_close(model._state[:n], oracle.s0, dtype)
        if name.startswith("adam"):
            assert_close(model._state[n:], oracle.s1, dtype)
    assert not np.allclose(oracle.p, oracle_for(started(dtype, **params)).p)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_l2_never_touches_biases_gamma_beta(name):
    """With batch norm the trainable part holds weights, biases, gamma and beta; a huge alpha
    changes the weights' steps and no other entry's."""
    steps = {}
    for alpha in (0.0, 50.0):
        model = started(np.float64, batch_norm=True, alpha=0.0, **SOLVERS[name])
        model.set_params(alpha=alpha)
        before = trainable(model)
        gradient = data_gradient(model, X, Y)
        model.fit(X, Y)
        steps[alpha] = (trainable(model) - before, gradient)
    n_weights = model._layout["n_weights"]
    assert model._layout["n_trainable"] > n_weights + 2 * 9  # biases, gamma, beta of 5 + 4
    np.testing.assert_array_equal(steps[0.0][1], steps[50.0][1])  # the same start
    np.testing.assert_array_equal(steps[0.0][0][n_weights:], steps[50.0][0][n_weights:])
    assert np.all(steps[0.0][0][:n_weights] != steps[50.0][0][:n_weights])


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_t_counts_updates_within_an_epoch(name):
    """Three mini-batches per epoch are three updates: invscaling's rate and adam's bias
    correction see t = 1, 2, 3, then 4, 5, 6 in the next epoch."""
    params = dict(SOLVERS[name], learning_rate="invscaling", learning_rate_init=0.05,
                  alpha=0.01)
    model = started(np.float64, **params)
    model.set_params(batch_size=8)
    oracle = oracle_for(model)
    snapshot = trainable(model)
    for epoch in range(2):
        for b in range(3):
            rows = slice(8 * b, 8 * b + 8)
            # the gradient at the oracle's parameters, which the model's follow to 1e-12
            model._params[:len(snapshot)] = oracle.p
            oracle_gradient = data_gradient(model, X[rows], Y[rows])
            oracle.step(oracle_gradient)
        model._params[:len(snapshot)] = snapshot
        if epoch == 0:
            model.fit(X, Y)
        else:
            model.partial_fit(X, Y)
        snapshot = trainable(model)
        assert model._n_updates == 3 * (epoch + 1) and model.t_ == len(X) * (epoch + 2)
        np.testing.assert_allclose(snapshot, oracle.p, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_agrees_with_torch_optim(name):
    """The same gradients fed to torch.optim give the same parameters (weight_decay on the
    weights' parameter group only)."""
    torch = pytest.importorskip("torch")
    spec = SOLVERS[name]
    lr, alpha = spec.get("learning_rate_init", 0.05), 0.2
    model = started(np.float64, **dict(dict(alpha=alpha, learning_rate_init=lr), **spec))
    n_weights = model._layout["n_weights"]
    p = torch.tensor(trainable(model))
    weights = p[:n_weights].clone().requires_grad_(True)
    rest = p[n_weights:].clone().requires_grad_(True)
    groups = [{"params": [weights], "weight_decay": alpha}, {"params": [rest], "weight_decay": 0}]
    solver = spec["solver"]
    if solver == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=spec["momentum"],
                              nesterov=model.nesterovs_momentum and spec["momentum"] > 0)
    elif solver == "adagrad":
        opt = torch.optim.Adagrad(groups, lr=lr, eps=spec.get("epsilon", 1e-10))
    elif solver == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=lr, alpha=spec["rho"], eps=1e-8)
    else:
        betas = (spec.get("beta_1", 0.9), spec.get("beta_2", 0.999))
        opt = torch.optim.Adam(groups, lr=lr, betas=betas, eps=spec.get("epsilon", 1e-8))
    for step in range(4):
        g = torch.tensor(data_gradient(model, X, Y))
        weights.grad, rest.grad = g[:n_weights].clone(), g[n_weights:].clone()
        opt.step()
        model.fit(X, Y) if step == 0 else model.partial_fit(X, Y)
        expected = torch.cat([weights.detach(), rest.detach()]).numpy()
        np.testing.assert_allclose(trainable(model), expected, rtol=1e-12, atol=1e-12)


def test_partial_fit_keeps_state_warm_start_refreshes_it():
    """Two models at the same weights: a warm-started fit resets adam's moments and t, a
    partial_fit continues them, so their next steps differ; the reset one equals a step from
    scratch (the oracle's first step)."""
    params = dict(solver="adam", learning_rate_init=0.05)
    a = started(np.float64, **params)
    for _ in range(3):
        a.partial_fit(X, Y)
    state, t = a._state.copy(), a._n_updates
    assert t == 4 and np.any(state != 0)
    b = started(np.float64, **params)
    b._params[...] = a._params
    oracle = oracle_for(b)
    oracle.step(data_gradient(b, X, Y))
    b.fit(X, Y)  # warm_start: these weights, a fresh state
    assert b._n_updates == 1 and b.t_ == 2 * len(X)  # a fresh t; the samples go on
    np.testing.assert_allclose(trainable(b), oracle.p, rtol=1e-12, atol=1e-12)
    a.partial_fit(X, Y)  # continues: t = 5, moments carried
    assert a._n_updates == 5
    assert not np.allclose(trainable(a), trainable(b))


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_three_partial_fits_equal_fit_three_epochs(name, cls):
    y = Y if cls is MLPClassifier else X[:, 0] - X[:, 1] ** 2
    kw = dict(hidden_layer_sizes=(6,), batch_size=len(X), shuffle=False, random_state=3,
              n_threads=1, learning_rate="invscaling", **SOLVERS[name])
    fitted = cls(max_iter=3, **kw).fit(X, y)
    inc = cls(**kw)
    for _ in range(3):
        if cls is MLPClassifier:
            inc.partial_fit(X, y, classes=CLASSES)
        else:
            inc.partial_fit(X, y)
    np.testing.assert_array_equal(inc._params, fitted._params)
    np.testing.assert_array_equal(inc._state, fitted._state)
    assert inc._n_updates == fitted._n_updates == 3 and inc.n_iter_ == fitted.n_iter_ == 3
    assert inc.t_ == fitted.t_ == 3 * len(X)
    assert inc.loss_curve_ == fitted.loss_curve_


@pytest.mark.parametrize("solver", ["adam", "rmsprop", "adagrad"])
def test_a_value_the_dtype_cannot_hold_is_refused_and_double_trains(solver):
    """epsilon=1e-300 is 0 in float32: a zero gradient (a constant column's weights) stepped
    by 0 / (0 + 0) made NaN parameters while loss_ stayed finite. float32 refuses it, naming
    the parameter, the dtype and the range; float64 holds it and trains to finite weights."""
    Xc = np.column_stack([X, np.ones(len(X))])  # standardized to 0: its weights get 0 gradients
    kw = dict(hidden_layer_sizes=(5,), solver=solver, epsilon=1e-300, max_iter=3,
              random_state=0, n_threads=1)
    model = MLPClassifier(**kw)
    with pytest.raises(ValueError, match=r"epsilon=1e-300 cannot be represented in float32.*"
                                         r"\[1.1754944e-38, 3.4028235e\+38\]"):
        model.fit(Xc, Y)
    assert not hasattr(model, "_params")
    model = MLPClassifier(dtype=np.float64, **kw).fit(Xc, Y)
    assert np.isfinite(model._params).all() and np.isfinite(model.loss_)


@pytest.mark.parametrize("params, message", [
    (dict(learning_rate_init=1e39), "learning_rate_init=1e\\+39"),
    (dict(learning_rate_init=1e-50), "learning_rate_init=1e-50"),
    (dict(alpha=1e-50), "alpha=1e-50"),
    (dict(solver="adam", epsilon=1e39), "epsilon=1e\\+39"),
])
def test_values_that_round_to_zero_or_infinity_are_refused_by_partial_fit_too(params, message):
    model = MLPClassifier(hidden_layer_sizes=(3,), random_state=0, n_threads=1)
    model.partial_fit(X, Y, classes=CLASSES)
    before = model._params.copy(), model._state.copy(), model.t_, model._n_updates
    model.set_params(**params)
    with pytest.raises(ValueError, match=message + " cannot be represented in float32"):
        model.partial_fit(X, Y)
    np.testing.assert_array_equal(model._params, before[0])
    np.testing.assert_array_equal(model._state, before[1])
    assert (model.t_, model._n_updates) == before[2:]
    model.set_params(dtype=np.float64, warm_start=True).fit(X, Y)  # float64 holds them all
    assert np.isfinite(model._params).all()


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_l2_term_of_the_loss_sums_each_chunk_in_order(name, sparse, dtype):
    """The batch loss's L2 term is alpha / 2 times the squared weights summed by the optimizer's
    chunks (8192 of the flat buffer, FASTMLP_STEP_CHUNK), each in index order from 0, and the
    chunks in order: the bits of a sum taken chunk by chunk, however the step runs the chunks'
    sums side by side (step.c, chunk_sums). Layers of 40 x 300, 300 x 90 and 90 x 3 put chunk
    boundaries inside layers; a sparse first layer takes the plain step beside fused momentum.
    Two copies of one model, with alpha and without, train on the same batch from the same
    weights, so their data terms are the same bits; 256 rows make the loss's scaling exact."""
    import copy

    import scipy.sparse

    rows = np.random.RandomState(1)
    X_batch, y_batch = rows.randn(256, 40), rows.randint(0, 3, 256)
    if sparse:
        X_batch = scipy.sparse.csr_matrix(np.where(X_batch > 0.5, X_batch, 0.0))
    alpha = 1e-3
    model = MLPClassifier(hidden_layer_sizes=(300, 90), batch_size=256, shuffle=False,
                          random_state=0, dtype=dtype, n_threads=2, alpha=alpha,
                          **SOLVERS[name])
    model.partial_fit(X_batch, y_batch, classes=CLASSES)
    with_l2, without = copy.deepcopy(model), copy.deepcopy(model)
    without.set_params(alpha=0.0)
    squares = model._params[:model._layout["n_weights"]].astype(np.float64) ** 2
    sumsq = 0.0
    for lo in range(0, len(squares), 8192):
        sumsq += np.add.accumulate(squares[lo:lo + 8192])[-1]  # in order, not pairwise
    with_l2.partial_fit(X_batch, y_batch)
    without.partial_fit(X_batch, y_batch)
    assert with_l2.loss_ == without.loss_ + 0.5 * alpha * sumsq
