"""Autoencoder: reconstruction gradients, the code layer, the denoising noise (only on the
input, the same for any thread count), and the scikit-learn transformer conventions."""
import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp
from fastmlp import Autoencoder, check_gradients
from fastmlp.network import available_cores

MASK64 = (1 << 64) - 1
SALT = 0x5851F42D4C957F2D  # FASTMLP_CORRUPTION_SALT, csrc/rng.h


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _data(n=40, d=6, seed=0):
    return np.random.RandomState(seed).uniform(0, 1, (n, d))


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _mask(seed, t, row, n, p):
    """csrc/rng.h's keep(j) for the corruption stream of (seed, t, row), in Python."""
    stream = _mix64(((seed ^ SALT) + 0x9E3779B97F4A7C15) & MASK64)
    stream = _mix64(stream ^ t)
    stream = _mix64(stream ^ ((row * 0xD1B54A32D192ED03) & MASK64))
    threshold = int(p * 4294967296.0)
    return np.array([(_mix64((stream + (j + 1) * 0x9E3779B97F4A7C15) & MASK64) >> 32)
                     >= threshold for j in range(n)])


def _g(name, a):
    return {"relu": lambda: np.maximum(a, 0), "tanh": lambda: np.tanh(a),
            "sigmoid": lambda: 1 / (1 + np.exp(-a)), "identity": lambda: a}[name]()


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("corruption", [None, "mask", "gaussian"])
def test_reconstruction_gradients_match_finite_differences(output, corruption):
    X = _data(12, 5)
    ae = Autoencoder((4, 3), activation="tanh", output=output, corruption=corruption,
                     corruption_level=0.3, dtype=np.float64, max_iter=2, alpha=1e-3,
                     random_state=0, n_threads=1).fit(X)
    worst, _ = check_gradients(ae, X, X)
    assert worst < 1e-6


def test_transform_and_inverse_transform_are_the_numpy_forward_pass():
    X = _data(30, 6)
    X[:, 0] = X[:, 0] > 0.5  # a binary column, which standardization leaves alone
    ae = Autoencoder((5, 3), activation="sigmoid", dtype=np.float64, max_iter=3,
                     random_state=0, n_threads=1).fit(X)
    assert ae.out_activation_ == "logistic" and ae.n_components_ == 3
    h = (X - ae._x_shift) * ae._x_scale
    for W, b in zip(ae.coefs_[:2], ae.intercepts_[:2]):
        h = _g("sigmoid", h @ W + b)
    np.testing.assert_allclose(ae.transform(X), h, rtol=1e-12, atol=1e-12)
    r = _g("sigmoid", h @ ae.coefs_[2] + ae.intercepts_[2])
    r = _g("sigmoid", r @ ae.coefs_[3] + ae.intercepts_[3])
    np.testing.assert_allclose(ae.inverse_transform(h), r, rtol=1e-12, atol=1e-12)
    error = -np.mean(X * np.log(r) + (1 - X) * np.log(1 - r))
    assert ae.score(X) == pytest.approx(-error, rel=1e-10)
    assert ae.reconstruction_error(X) == pytest.approx(error, rel=1e-10)


def test_linear_output_for_data_outside_the_unit_interval_and_its_score():
    X = _data(30, 4) * 3 - 1
    ae = Autoencoder((2,), activation="identity", max_iter=3, random_state=0,
                     dtype=np.float64).fit(X)
    assert ae.out_activation_ == "identity"
    R = ae.inverse_transform(ae.transform(X))
    assert ae.score(X) == pytest.approx(-np.mean((R - X) ** 2), rel=1e-10)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        Autoencoder((2,), output="sigmoid", max_iter=1).fit(X)


@pytest.mark.parametrize("normalize", ["auto", None])
def test_masking_noise_corrupts_the_input_only(normalize):
    """The loss of one batch is the numpy loss of the corrupted input against the CLEAN X:
    the C side masks exactly the values csrc/rng.h's keys give, on the raw values (a masked
    value is 0 before standardization), and never the target."""
    X = _data(16, 8, seed=1) + 0.5  # no zeros: a masked value is visible
    X /= X.max()
    p, t = 0.3, 5
    ae = Autoencoder((4,), activation="tanh", output="linear", corruption="mask",
                     corruption_level=p, normalize=normalize, alpha=0.0, dtype=np.float64,
                     max_iter=1, random_state=0, n_threads=1).fit(X)
    loss, _ = ae._batch_gradient(X, X, t=t)
    keep = np.array([_mask(ae._seed, t, r, X.shape[1], p) for r in range(len(X))])
    assert 0.15 < 1 - keep.mean() < 0.45

    def numpy_loss(inputs, target):
        h = inputs if normalize is None else (inputs - ae._x_shift) * ae._x_scale
        h = np.tanh(h @ ae.coefs_[0] + ae.intercepts_[0])
        out = h @ ae.coefs_[1] + ae.intercepts_[1]
        return np.mean(0.5 * np.mean((out - target) ** 2, axis=1))

    corrupted = np.where(keep, X, 0.0)
    assert loss == pytest.approx(numpy_loss(corrupted, X), rel=1e-12)
    assert loss != pytest.approx(numpy_loss(corrupted, corrupted), rel=1e-6)
    assert loss != pytest.approx(numpy_loss(X, X), rel=1e-6)
    # another update draws another mask
    assert ae._batch_gradient(X, X, t=t + 1)[0] != pytest.approx(loss, rel=1e-9)


def test_gaussian_noise_has_the_given_std_on_the_raw_values():
    """With identity units all the way, the loss's excess over the clean loss is the noise's
    variance through the network: with W = identity-like it is the noise variance itself."""
    X = _data(400, 3, seed=2)
    ae = Autoencoder((3,), activation="identity", output="linear", corruption="gaussian",
                     corruption_level=0.2, normalize=None, alpha=0.0, dtype=np.float64,
                     max_iter=1, random_state=0, n_threads=1, batch_size=400).fit(X)
    eye = np.eye(3)
    ae.coefs_[0][...] = eye
    ae.coefs_[1][...] = eye
    ae.intercepts_[0][...] = 0
    ae.intercepts_[1][...] = 0
    losses = [ae._batch_gradient(X, X, t=t)[0] for t in range(1, 6)]
    # 0.5 * mean over values of noise^2 = 0.5 * std^2 = 0.02
    assert np.mean(losses) == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("corruption", ["mask", "gaussian"])
def test_corruption_is_the_same_for_any_thread_count(corruption):
    X = _data(256, 64, seed=3)
    params = []
    for threads in (1, 2):
        ae = Autoencoder((256,), corruption=corruption, corruption_level=0.2, batch_size=64,
                         max_iter=2, random_state=7, n_threads=threads).fit(X)
        # two slabs per batch where there are two cores: the threads then share them out
        assert ae._work_parts(64) == min(2, available_cores())
        params.append(ae._params.copy())
    np.testing.assert_array_equal(params[0], params[1])
    again = Autoencoder((256,), corruption=corruption, corruption_level=0.2, batch_size=64,
                        max_iter=2, random_state=7, n_threads=1).fit(X)
    np.testing.assert_array_equal(again._params, params[0])
    other = Autoencoder((256,), corruption=corruption, corruption_level=0.2, batch_size=64,
                        max_iter=2, random_state=8, n_threads=1).fit(X)
    assert not np.array_equal(other._params, params[0])


def test_denoising_changes_training_and_plain_autoencoder_ignores_level():
    X = _data(64, 8)
    plain = Autoencoder((4,), max_iter=3, random_state=0).fit(X)
    ignored = Autoencoder((4,), corruption_level=0.9, max_iter=3, random_state=0).fit(X)
    noisy = Autoencoder((4,), corruption="mask", max_iter=3, random_state=0).fit(X)
    np.testing.assert_array_equal(plain._params, ignored._params)
    assert not np.array_equal(plain._params, noisy._params)


def test_the_target_is_x_itself_without_a_copy(monkeypatch):
    X = np.ascontiguousarray(_data(20, 5), dtype=np.float32)
    seen = []
    real = fastmlp._core.train_epoch

    def spy(net, hyper, data, params, grads, state, workspace, batch_loss, Y, *rest):
        seen.append(Y)
        return real(net, hyper, data, params, grads, state, workspace, batch_loss, Y, *rest)

    monkeypatch.setattr(fastmlp._core, "train_epoch", spy)
    Autoencoder((3,), max_iter=2, random_state=0).fit(X)
    assert seen and all(Y is X for Y in seen)


def test_transformer_conventions():
    X = _data(50, 6)
    ae = Autoencoder((4,), max_iter=3, random_state=0)
    assert clone(ae).get_params() == ae.get_params()
    assert ae.get_params()["corruption"] is None and "pretrain" not in ae.get_params()
    codes = ae.fit_transform(X)
    np.testing.assert_array_equal(codes, ae.transform(X))
    assert not hasattr(ae, "predict") and not hasattr(ae, "predict_proba")
    y = (X[:, 0] > 0.5).astype(int)
    pipe = make_pipeline(MinMaxScaler(), Autoencoder((4,), max_iter=5, random_state=0),
                         LogisticRegression()).fit(X, y)
    assert 0 <= pipe.score(X, y) <= 1
    assert ae.partial_fit(X).n_iter_ == 4


def test_feature_names_pickle_and_save(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_data(30, 4), columns=list("abcd"))
    ae = Autoencoder((3,), max_iter=2, random_state=0).fit(X)
    assert list(ae.feature_names_in_) == list("abcd")
    ae.partial_fit(X)
    with pytest.raises(ValueError, match="feature names"):
        ae.transform(X.rename(columns={"a": "z"}))
    back = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(back.transform(X), ae.transform(X))
    fastmlp.save(ae, tmp_path / "model")
    loaded = fastmlp.load(tmp_path / "model")
    assert list(loaded.feature_names_in_) == list("abcd")
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))
    with pytest.raises(ValueError, match="feature names"):
        loaded.transform(X.rename(columns={"a": "z"}))


def test_bad_input_is_refused_and_leaves_the_model_unchanged():
    X = _data(20, 4)
    ae = Autoencoder((3,), max_iter=2, random_state=0).fit(X)
    before = ae._params.copy()
    with pytest.raises(TypeError, match="[Ss]parse"):
        ae.fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="corruption_level"):
        Autoencoder((3,), corruption="mask", corruption_level=1.0).fit(X)
    with pytest.raises(ValueError):
        Autoencoder((3,), corruption="salt").fit(X)
    with pytest.raises(ValueError, match="n_components_=3"):
        ae.inverse_transform(np.zeros((2, 4)))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ae.partial_fit(bad)
    with pytest.raises(ValueError, match="features"):
        ae.partial_fit(X[:, :3])
    np.testing.assert_array_equal(ae._params, before)


# ---------------------------------------------------------------- tied weights


def _tied_copies_equal(ae):
    """Every decoder matrix bitwise the transpose of the encoder matrix it mirrors."""
    coefs = ae.coefs_
    return all(np.array_equal(coefs[len(coefs) - 1 - i], coefs[i].T)
               for i in range(len(coefs) // 2))


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("corruption", [None, "mask"])
def test_tied_reconstruction_gradients_match_finite_differences(output, corruption):
    X = _data(12, 5)
    ae = Autoencoder((4, 3), activation="tanh", output=output, corruption=corruption,
                     tied_weights=True, dtype=np.float64, max_iter=2, alpha=1e-2,
                     random_state=0, n_threads=1).fit(X)
    assert _tied_copies_equal(ae)
    # each shared weight is perturbed in both its copies: the gradient of the shared parameter
    worst, errors = check_gradients(ae, X, X)
    assert worst < 1e-6 and errors.size == ae._layout["n_trainable"]


def test_tied_gradient_is_the_sum_of_both_copies_and_the_penalty_counts_once():
    """Against the untied network on the same parameters: the tied gradient of W_a is
    dW_a + dW_b^T (one L2 term alpha W_a), and the loss's L2 term counts a shared matrix once:
    the tied network has half the weights to penalize and to learn."""
    X, alpha = _data(20, 6), 0.05
    tied = Autoencoder((5, 3), activation="tanh", tied_weights=True, alpha=alpha,
                       dtype=np.float64, max_iter=1, random_state=0, n_threads=1).fit(X)
    free = Autoencoder((5, 3), activation="tanh", alpha=alpha, dtype=np.float64, max_iter=1,
                       random_state=0, n_threads=1).fit(X)
    free._params[:] = tied._params
    loss_tied, g_tied = tied._batch_gradient(X, X)
    loss_free, g_free = free._batch_gradient(X, X)
    lay = tied._layout
    units = lay["units"]

    def block(g, l):
        return g[lay["w_offset"][l]:][:units[l] * units[l + 1]].reshape(units[l], units[l + 1])

    shared = 0.0
    for a, b in lay["tied"]:
        W_a = tied.coefs_[a]
        expected = block(g_free, a) + block(g_free, b).T - alpha * W_a
        np.testing.assert_allclose(block(g_tied, a), expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(block(g_tied, b), block(g_tied, a).T)
        shared += np.sum(W_a ** 2)
    assert loss_tied == pytest.approx(loss_free - alpha / 2 * shared, rel=1e-12)
    n_weights = sum(W.size for W in tied.coefs_)
    assert len(lay["tied"]) == 2 and sum(tied.coefs_[a].size for a, _ in lay["tied"]) \
        == n_weights // 2
    np.testing.assert_array_equal(g_tied[lay["b_offset"][0]:], g_free[lay["b_offset"][0]:])


@pytest.mark.parametrize("solver, extra", [
    ("sgd", {}), ("sgd", {"nesterovs_momentum": True}), ("sgd", {"momentum": 0.0}),
    ("adam", {}), ("adagrad", {}), ("rmsprop", {}),
    ("adam", {"batch_norm": True, "dropout": 0.2, "corruption": "gaussian"}),
    ("sgd", {"learning_rate": "invscaling", "early_stopping": True}),
])
def test_tied_copies_stay_transposes_after_fit_and_partial_fit(solver, extra):
    X = _data(50, 7)
    ae = Autoencoder((6, 4), tied_weights=True, solver=solver, learning_rate_init=0.01,
                     batch_size=16, max_iter=4, random_state=0, n_threads=1, **extra).fit(X)
    assert _tied_copies_equal(ae) and np.isfinite(ae.loss_)
    before = [W.copy() for W in ae.coefs_]
    ae.partial_fit(X)
    ae.partial_fit(X[:20])
    assert _tied_copies_equal(ae)
    # layer health sees the shared gradient and the same weights in both copies
    health = ae.history_[-1]["health"]
    for key in ("grad_norm", "weight_norm", "update_ratio"):
        assert health[0][key] == pytest.approx(health[3][key], rel=1e-5)
    assert not np.array_equal(before[0], ae.coefs_[0])  # it trained
    untied = Autoencoder((6, 4), solver=solver, learning_rate_init=0.01, batch_size=16,
                         max_iter=4, random_state=0, n_threads=1, **extra).fit(X)
    assert not _tied_copies_equal(untied)


def test_tied_starts_as_the_transpose_of_the_glorot_draw_and_trains_its_loss():
    X = _data(30, 6)
    ae = Autoencoder((4,), tied_weights=True, max_iter=1, learning_rate_init=1e-300,
                     batch_size=30, alpha=0.1, dtype=np.float64, random_state=0,
                     n_threads=1).fit(X)
    bound = np.sqrt(6 / (6 + 4))
    W = ae.coefs_[0]
    assert _tied_copies_equal(ae) and np.abs(W).max() <= bound and W.std() > bound / 3
    # the epoch's loss (one batch, the weights unmoved) penalizes the shared matrix once
    assert ae.loss_ == pytest.approx(ae._batch_gradient(X, X)[0], rel=1e-12)
    untied = Autoencoder((4,), alpha=0.1, dtype=np.float64, random_state=0)
    untied.set_params(**{k: v for k, v in ae.get_params().items() if k != "tied_weights"})
    untied.fit(X)
    untied._params[:] = ae._params
    assert untied._batch_gradient(X, X)[0] == pytest.approx(
        ae.loss_ + 0.05 * np.sum(W ** 2), rel=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_tied_loss_of_a_partial_fit_penalizes_the_published_weights_once(threads):
    # a partial_fit's first update reads the published buffers (the new ones are written only
    # by its step), so the tie's squares must come from those too
    X = _data(32, 6)
    ae = Autoencoder((4,), tied_weights=True, max_iter=2, learning_rate_init=1e-3,
                     batch_size=32, alpha=0.1, dtype=np.float64, random_state=0,
                     n_threads=threads).fit(X)
    expected = ae._batch_gradient(X, X)[0]
    ae.set_params(learning_rate_init=1e-300)
    ae.partial_fit(X)
    assert ae.loss_ == pytest.approx(expected, rel=1e-12)
    assert _tied_copies_equal(ae)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_tied_is_the_same_for_any_thread_count(solver):
    X = _data(256, 64, seed=3)
    params = []
    for threads in (1, 2):
        ae = Autoencoder((256,), tied_weights=True, solver=solver, batch_size=64, max_iter=2,
                         random_state=7, n_threads=threads).fit(X)
        assert ae._work_parts(64) == min(2, available_cores())
        params.append(ae._params.copy())
        assert _tied_copies_equal(ae)
    np.testing.assert_array_equal(params[0], params[1])


def test_tied_transform_is_the_numpy_forward_pass_and_the_tie_is_architecture():
    X = _data(30, 6)
    ae = Autoencoder((5, 3), activation="sigmoid", tied_weights=True, dtype=np.float64,
                     max_iter=3, random_state=0, n_threads=1).fit(X)
    h = (X - ae._x_shift) * ae._x_scale
    for W, b in zip(ae.coefs_[:2], ae.intercepts_[:2]):
        h = _g("sigmoid", h @ W + b)
    np.testing.assert_allclose(ae.transform(X), h, rtol=1e-12, atol=1e-12)
    r = _g("sigmoid", h @ ae.coefs_[1].T + ae.intercepts_[2])
    r = _g("sigmoid", r @ ae.coefs_[0].T + ae.intercepts_[3])
    np.testing.assert_allclose(ae.inverse_transform(h), r, rtol=1e-12, atol=1e-12)
    # partial_fit goes on with the fitted tie; warm_start keeps weights only while it holds
    ae.set_params(tied_weights=False)
    ae.partial_fit(X)
    assert len(ae._layout["tied"]) == 2 and _tied_copies_equal(ae)
    ae.set_params(warm_start=True, max_iter=1)
    ae.fit(X)
    assert len(ae._layout["tied"]) == 0 and ae.n_iter_ == 1


# ---------------------------------------------------------------- fastmlp.save / load


@pytest.mark.parametrize("params", [
    {},
    {"tied_weights": True, "corruption": "mask", "corruption_level": 0.3},
    {"tied_weights": True, "output": "linear", "batch_norm": True, "dropout": 0.1,
     "solver": "sgd", "dtype": np.float64},
    {"corruption": "gaussian", "corruption_level": 0.1, "early_stopping": True,
     "learning_rate": "plateau", "normalize": None},
])
def test_save_and_load_round_trip(params, tmp_path):
    X = _data(60, 8)
    ae = Autoencoder((5, 3), max_iter=3, batch_size=16, random_state=0, n_threads=1,
                     **params).fit(X)
    fastmlp.save(ae, tmp_path / "ae.fastmlp")
    back = fastmlp.load(tmp_path / "ae.fastmlp")
    assert type(back) is Autoencoder and back.get_params() == ae.get_params()
    assert back.n_components_ == 3 and back.out_activation_ == ae.out_activation_
    np.testing.assert_array_equal(back._layout["tied"], ae._layout["tied"])
    codes = ae.transform(X)
    np.testing.assert_array_equal(back.transform(X), codes)
    np.testing.assert_array_equal(back.inverse_transform(codes), ae.inverse_transform(codes))
    assert back.score(X) == ae.score(X)
    assert not np.shares_memory(back._params, ae._params)
    # partial_fit goes on exactly as the saved model would: state, generator, update count
    for model in (ae, back):
        model.partial_fit(X)
        model.partial_fit(X[:20])
    np.testing.assert_array_equal(back._params, ae._params)
    assert back.t_ == ae.t_ and back.loss_curve_ == ae.loss_curve_


def test_a_file_keeps_the_fitted_tie_whatever_tied_weights_says_since(tmp_path):
    X = _data(40, 6)
    ae = Autoencoder((4,), tied_weights=True, max_iter=2, random_state=0, n_threads=1).fit(X)
    ae.set_params(tied_weights=False)
    fastmlp.save(ae, tmp_path / "ae")
    back = fastmlp.load(tmp_path / "ae")
    assert back.tied_weights is False and back._layout["tied"].tolist() == [[0, 1]]
    back.partial_fit(X)
    assert _tied_copies_equal(back)
    # a write into one copy breaks the tie: save refuses what load would refuse
    ae.coefs_[1][0, 0] += 1
    with pytest.raises(ValueError, match="tied weights"):
        fastmlp.save(ae, tmp_path / "broken")


def _edited(path, target, meta=None, params=None):
    """A copy of the file with its metadata edited by meta(dict) or params.npy by params(a)."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    if meta is not None:
        data = json.loads(contents["metadata.json"])
        meta(data)
        contents["metadata.json"] = json.dumps(data).encode()
    if params is not None:
        array = np.load(io.BytesIO(contents["params.npy"])).copy()
        params(array)
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        contents["params.npy"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return target


def _first_decoder_weight(path):
    with zipfile.ZipFile(path) as archive:
        units = json.loads(archive.read("metadata.json"))["units"]
    return units[0] * units[1] + units[1] * units[2]  # W_2[0, 0], the copy of W_1[0, 0]


@pytest.mark.parametrize("meta, params, message", [
    (lambda m: m["autoencoder"].update(tied=[[0, 2], [1, 3]]), None, "autoencoder fields"),
    (lambda m: m["autoencoder"].update(tied=[[0, 3]]), None, "autoencoder fields"),
    (lambda m: m["autoencoder"].update(extra=1), None, "autoencoder fields"),
    (lambda m: m.pop("autoencoder"), None, "autoencoder fields"),
    (lambda m: m.update(units=[8, 5, 3, 5, 5]), None, "units"),
    (lambda m: m["attributes"].update(out_activation_="softmax"), None, "logistic outputs"),
    (lambda m: m["params"].update(corruption="mask", corruption_level=1.5), None,
     "corruption_level"),
    (lambda m: m["params"].update(tied_weights="yes"), None, "tied_weights"),
    (lambda m: m.update({"class": "MLPRegressor"}), None, "autoencoder fields|unknown hyper"),
    (None, "decoder", "not the transpose"),
    (None, lambda a: a.__setitem__(0, np.nan), "NaN or infinite"),
])
def test_a_damaged_autoencoder_file_is_a_value_error(meta, params, message, tmp_path):
    X = _data(40, 8)
    ae = Autoencoder((5, 3), tied_weights=True, max_iter=2, random_state=0, n_threads=1).fit(X)
    path = tmp_path / "good"
    fastmlp.save(ae, path)
    if params == "decoder":
        def params(array, at=_first_decoder_weight(path)):
            array[at] += 1
    with pytest.raises(ValueError, match=message):
        fastmlp.load(_edited(path, tmp_path / "bad", meta, params))
    data = path.read_bytes()
    for cut in (0, 30, len(data) // 2, len(data) - 1):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(ValueError):
            fastmlp.load(tmp_path / "cut")


# scikit-learn's estimator check suite, with no expected failures. float64 and one thread as in
# tests/test_sklearn_checks.py: the sample-weight equivalence checks compare at rtol=1e-7.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([Autoencoder(hidden_layer_sizes=(5,), max_iter=20, random_state=0,
                                      dtype=np.float64, n_threads=1)])
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


def test_codes_come_in_the_model_dtype():
    X = _data(20, 4)
    for dtype in (np.float32, np.float64):
        ae = Autoencoder((3,), max_iter=1, dtype=dtype, random_state=0).fit(X)
        assert ae.__sklearn_tags__().transformer_tags.preserves_dtype == [np.dtype(dtype).name]
        assert ae.transform(X).dtype == dtype
        assert ae.inverse_transform(ae.transform(X)).dtype == dtype
