"""partial_fit's short path: a later call on inputs of the usual kind (an ndarray X of the
model's dtype, an ndarray y) skips scikit-learn's general validation and the parameter
validation of values it validated last (network.py `_validate_params_once`, inputs.py
`_known_inputs`). It must train bitwise as the full path does, and refuse what the full path
refuses, leaving the model as it was."""
import copy
import pickle

import numpy as np
import pytest
from test_fuzz import changed, fingerprint

from fastmlp import MLPClassifier, MLPRegressor, Network, fitting, inputs


def blocks(n_blocks, rows=24, d=5, seed=0, task="classification"):
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n_blocks):
        X = rng.randn(rows, d).astype(np.float32)
        if task == "classification":
            y = np.array(["ant", "bee", "cat"])[rng.randint(0, 3, rows)]
        elif task == "regression":
            y = rng.randn(rows)
        else:
            y = rng.randn(rows, 2)
        out.append((X, y))
    return out


@pytest.fixture
def full_path(monkeypatch):
    """A switch that sends every call through scikit-learn's validation."""
    def full(on):
        if on:
            monkeypatch.setattr(inputs.Inputs, "_known_inputs", lambda self, X, y, dtype: None)
        else:
            monkeypatch.undo()
    return full


@pytest.mark.parametrize("cls, task, extra", [
    (MLPClassifier, "classification", {"classes": ["ant", "bee", "cat"]}),
    (MLPRegressor, "regression", {}),
    (Network, "multioutput", {}),
])
def test_the_short_and_the_full_path_train_bitwise_alike(cls, task, extra, full_path):
    data = blocks(5, task=task)
    models = []
    for full in (False, True):
        model = cls((7,), n_threads=1, random_state=0, batch_size=10)
        for call, (X, y) in enumerate(data):
            full_path(full)
            weight = np.linspace(0.5, 1.5, len(X)) if call == 3 else None
            model.partial_fit(X, y, sample_weight=weight, **(extra if call % 2 == 0 else {}))
            full_path(False)
            if call == 2:
                model.set_params(learning_rate_init=0.003, alpha=1e-3)
        models.append(model)
    short, full = models
    assert changed(fingerprint(short), fingerprint(full)) == {"history_"}  # its timings
    untimed = [[{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")}
                for r in m.history_] for m in models]
    assert untimed[0] == untimed[1]
    assert short._model == full._model
    for model in models:
        assert model.loss_curve_ == [r["train_loss"] for r in model.history_]
        assert [r["epoch"] for r in model.history_] == list(range(1, len(data) + 1))
    np.testing.assert_array_equal(short.predict(data[0][0]), full.predict(data[0][0]))


def test_the_short_path_is_taken_and_skips_sklearn_validation(monkeypatch):
    data = blocks(3)
    model = MLPClassifier((7,), n_threads=1, random_state=0)
    model.partial_fit(*data[0], classes=["ant", "bee", "cat"])
    calls = []
    real_validate = fitting.validate_data
    monkeypatch.setattr(fitting, "validate_data",
                        lambda *a, **k: calls.append("data") or real_validate(*a, **k))
    real_params = Network._validate_params
    monkeypatch.setattr(Network, "_validate_params",
                        lambda self: calls.append("params") or real_params(self))
    model.partial_fit(*data[1])
    model.partial_fit(*data[2], classes=np.array(["ant", "bee", "cat"]))
    assert calls == []
    model.set_params(momentum=0.5)  # a new value is validated, once
    model.partial_fit(*data[1])
    model.partial_fit(*data[2])
    assert calls == ["params"]
    model.partial_fit(data[1][0].tolist(), data[1][1])  # a list: the full validation
    assert calls == ["params", "data"]


def bad_calls(X, y):
    nan = X.copy()
    nan[3, 1] = np.nan
    inf = X.copy()
    inf[0, 0] = np.inf
    return [
        ((nan, y), {}, "NaN"),
        ((inf, y), {}, "infinity"),
        ((X[:, :4].copy(), y), {}, "features"),
        ((X, y[:-1]), {}, "inconsistent numbers of samples"),
        ((X, np.where(y == "ant", "dog", y)), {}, "dog"),
        ((X, y), {"classes": ["ant", "bee"]}, "differs from the classes"),
        ((X[:0], y[:0]), {}, "0 sample"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_bad_input_is_refused_as_by_the_full_path_and_changes_nothing(case, full_path):
    data = blocks(2)
    errors = []
    for full in (False, True):
        model = MLPClassifier((7,), n_threads=1, random_state=0)
        model.partial_fit(*data[0], classes=["ant", "bee", "cat"])
        model.partial_fit(*data[1])
        args, kwargs, words = bad_calls(*data[1])[case]
        before = fingerprint(model)
        full_path(full)
        with pytest.raises(ValueError, match=words) as error:
            model.partial_fit(*args, **kwargs)
        full_path(False)
        assert changed(before, fingerprint(model)) == set()
        errors.append(str(error.value))
        model.partial_fit(*data[0])  # and it trains on
    assert errors[0] == errors[1]


def test_a_regressor_refuses_a_nonfinite_target_on_the_short_path():
    data = blocks(2, task="regression")
    model = MLPRegressor((7,), n_threads=1, random_state=0).partial_fit(*data[0])
    X, y = data[1]
    y = y.copy()
    y[5] = np.inf
    before = fingerprint(model)
    with pytest.raises(ValueError, match="infinity"):
        model.partial_fit(X, y)
    assert changed(before, fingerprint(model)) == set()


def test_parameters_set_since_the_last_call_are_validated():
    data = blocks(2)
    model = MLPClassifier((7,), n_threads=1, random_state=0)
    model.partial_fit(*data[0], classes=["ant", "bee", "cat"])
    for name, bad in [("learning_rate_init", -1.0), ("momentum", 2.0), ("solver", "newton"),
                      ("n_threads", 0)]:
        good = getattr(model, name)
        model.set_params(**{name: bad})
        before = fingerprint(model)
        with pytest.raises(ValueError, match=name):
            model.partial_fit(*data[1])
        assert changed(before, fingerprint(model)) == set()
        model.set_params(**{name: good})
    # a list changed in place is checked by the architecture's own validation, every call
    sizes = [7]
    model.set_params(hidden_layer_sizes=sizes)
    model.partial_fit(*data[1])
    sizes[0] = 0
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        model.partial_fit(*data[1])


def test_copies_draw_from_generators_of_their_own():
    """The shuffling generator goes on in place (its state is put back on failure), so no two
    estimators may hold the same one: copy.copy, deepcopy and pickling each get their own."""
    data = blocks(3)
    model = MLPClassifier((7,), n_threads=1, random_state=0)
    model.partial_fit(*data[0], classes=["ant", "bee", "cat"])
    copies = [copy.copy(model), copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    assert all(c._rng is not model._rng for c in copies)
    for other in copies:
        other.partial_fit(*data[1])
        other.partial_fit(*data[2])
    model.partial_fit(*data[1])
    model.partial_fit(*data[2])
    for other in copies:
        assert other._model == model._model


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_the_c_trainer_flags_a_non_finite_input_row(bad):
    """train_epoch's finite[1]: every gathered row finite once standardized, which a NaN or an
    infinity anywhere in the rows trained never is."""
    from fastmlp import _core, optim
    data = blocks(1, rows=40)
    model = MLPClassifier((6,), n_threads=1, random_state=0).partial_fit(
        *data[0], classes=["ant", "bee", "cat"])
    X = data[0][0].copy()
    if bad is not None:
        X[37, 2] = bad  # in the last batch
    params, state = model._params.copy(), model._state.copy()
    grads = np.zeros(model._layout["n_trainable"], dtype=np.float32)
    workspace = np.zeros(model._net().workspace_size(10, 1, np.float32), dtype=np.float32)
    finite = np.full(2, 7, dtype=np.intc)
    _core.train_epoch(model._net(), optim.hyperparameters(model, 0.01, "constant"),
                      model._input(X), params, grads, state, workspace, np.zeros(4),
                      model._encode_targets(data[0][1]), None, np.arange(40, dtype=np.int64),
                      10, 1, 0, 1, 1, 0, None, None, None, finite)
    assert finite[1] == (bad is None)


def test_a_refused_call_never_began_training_in_a_callbacks_sight():
    """With callbacks, a later call is validated before training begins (no short path that
    would be run again), so a NaN in X never reaches on_train_begin."""
    class Seen:
        def __init__(self):
            self.calls = []

        def on_train_begin(self, estimator):
            self.calls.append("begin")

    seen = Seen()
    data = blocks(2)
    model = MLPClassifier((7,), n_threads=1, random_state=0, callbacks=[seen])
    model.partial_fit(*data[0], classes=["ant", "bee", "cat"])
    X = data[1][0].copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(X, data[1][1])
    assert seen.calls == ["begin"]


def test_the_generators_rollback_state_gives_the_same_draws_as_get_state():
    """_fit keeps the shuffling generator's state as the bytes of its MT19937 state (checked
    against get_state once per process): putting them back must give the very draws that
    set_state(get_state()) gives, past a regeneration of the key."""
    assert fitting._mt19937_state_size() == 624 * 4 + 4  # numpy's layout, as checked
    rng = np.random.RandomState(7)
    rng.permutation(500)
    saved, reference = fitting._generator_state(rng), rng.get_state()
    drawn = rng.permutation(2000)  # more than 624 words: the key is regenerated
    fitting._set_generator_state(rng, saved)
    assert np.array_equal(rng.permutation(2000), drawn)
    fitting._set_generator_state(rng, saved)
    after = rng.get_state()
    assert after[2] == reference[2] and np.array_equal(after[1], reference[1])


def test_the_blas_limit_sets_one_thread_and_restores_the_counts():
    """blas_single_threaded, around training: every BLAS library runs one thread inside, and
    its own count comes back after, also inside a user's threadpoolctl limit, which keeps
    working after ours (OpenBLAS's controlling thread is given back)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastmlp._config import blas_single_threaded

    def counts():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = counts()
    with blas_single_threaded():
        assert all(n == 1 for n in counts())
    assert counts() == before
    with threadpool_limits(limits=2, user_api="blas"):
        limited = counts()
        with blas_single_threaded():
            assert all(n == 1 for n in counts())
        assert counts() == limited
    assert counts() == before
    with threadpool_limits(limits=1, user_api="blas"):
        assert all(n == 1 for n in counts())
    assert counts() == before


def test_a_models_layer_views_are_views_of_its_buffer():
    """Model makes coefs, intercepts and batchnorm at their first reading: views of params,
    the same objects at every reading."""
    X, y = blocks(1)[0]
    model = MLPClassifier((4,), batch_norm=True, max_iter=2, random_state=0).fit(X, y)._model
    assert model.coefs is model.coefs and model.intercepts is model.intercepts
    for view in model.coefs + model.intercepts + [v for layer in model.batchnorm
                                                  for v in layer.values()]:
        assert np.shares_memory(view, model.params)
    model.coefs[0][0, 0] = 123.0
    assert model.params[model.layout["w_offset"][0]] == 123.0


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("classes", [[0, 1], [-3, 4, 7, 10**6], [5]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_bridges_one_hot_encodes_as_label_binarizer(label_dtype, classes, dtype):
    """_core.one_hot, a later partial_fit's encoding of integer labels, gives LabelBinarizer's
    matrix bit for bit (binary: one column, the second class 1), in the model dtype."""
    from sklearn.preprocessing import LabelBinarizer

    from fastmlp import _core, targets
    classes = np.asarray(classes, dtype=label_dtype)
    y = np.random.default_rng(0).choice(classes, size=37).astype(label_dtype)
    binarizer = LabelBinarizer().fit(classes)
    Y = _core.one_hot(y, classes, binarizer.y_type_ == "binary", dtype)
    expected = binarizer.transform(y).astype(dtype)
    assert Y.dtype == dtype and Y.flags.c_contiguous and Y.shape == expected.shape
    assert np.array_equal(Y, expected)
    assert np.array_equal(targets.read_labels(y, binarizer, dtype, kind_needed=False)[2],
                          targets.encode_labels(y, "multiclass", binarizer, dtype))


def test_the_bridges_one_hot_declines_what_numpy_must_encode():
    """None (numpy's general path then encodes or refuses) for a label outside the classes,
    labels of another dtype than the classes, other dtypes, strided labels."""
    from fastmlp import _core
    classes = np.array([1, 2, 3])
    assert _core.one_hot(np.array([1, 4]), classes, False, np.float32) is None
    assert _core.one_hot(np.array([0, 1]), classes, False, np.float32) is None
    assert _core.one_hot(np.array([1, 2], dtype=np.int32), classes, False, np.float32) is None
    assert _core.one_hot(np.array([1, 2], dtype=np.uint8), classes.astype(np.uint8), False,
                         np.float32) is None
    assert _core.one_hot(np.array(["a"]), np.array(["a"]), True, np.float32) is None
    assert _core.one_hot(np.arange(1, 4).repeat(2)[::2], classes, False, np.float32) is None
    assert _core.one_hot(classes, classes, False, np.float16) is None
    model = MLPClassifier((4,), n_threads=1, random_state=0)
    model.partial_fit([[0.0], [1.0]], [1, 2], classes=classes)
    with pytest.raises(ValueError, match="not among the classes"):
        model.partial_fit([[0.0], [1.0]], [1, 4])


def test_the_bridges_total_adds_in_order():
    """_core.total, an epoch's summed batch losses, adds left to right from 0.0 (the order that
    makes it the same for any thread count), float64 C-ordered arrays only."""
    import functools
    import operator

    from fastmlp import _core
    values = np.array([1e16, 1.0, -1e16, 0.25, 3.0])
    assert _core.total(values) == functools.reduce(operator.add, values.tolist(), 0.0) == 3.25
    assert _core.total(np.zeros(0)) == 0.0
    with pytest.raises(ValueError):
        _core.total(np.ones(4)[::2])
