"""fastmlp beside scikit-learn's MLP on the same data: the same parameters and defaults, the
same errors and warnings, and scores within 0.02 at the same settings.

"The same settings" includes the L2 term. fastmlp's J is the mean loss plus
(alpha / 2) * sum W^2 (shared/API.md); scikit-learn divides its penalty by the batch's sample
count, so its alpha equals fastmlp's times the rows of a batch: all training rows for lbfgs,
batch_size for the stochastic solvers (`sklearn_alpha`)."""
import inspect
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import fastmlp

# scikit-learn's MLP multiplies with BLAS: one thread, as fastmlp's n_threads=1 (on a busy
# 2-core machine two BLAS threads made each of its digits fits 20 times slower)
pytestmark = pytest.mark.usefixtures("single_threaded_blas")


@pytest.fixture
def single_threaded_blas():
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield

PAIRS = {"classifier": (fastmlp.MLPClassifier, sk.MLPClassifier),
         "regressor": (fastmlp.MLPRegressor, sk.MLPRegressor)}
_DATA = {}


def dataset(name):
    """Standardized train / test splits (scikit-learn's MLP does not scale its inputs; fastmlp's
    normalize="auto" leaves standardized columns as they are); diabetes' target standardized."""
    if name not in _DATA:
        if name == "digits":
            X, y = load_digits(return_X_y=True)
        elif name == "breast_cancer":
            X, y = load_breast_cancer(return_X_y=True)
        else:
            X, y = load_diabetes(return_X_y=True)
            y = (y - y.mean()) / y.std()
        X = StandardScaler().fit_transform(X)
        _DATA[name] = train_test_split(X, y, test_size=0.3, random_state=0)
    return _DATA[name]


def sklearn_alpha(params, n_train):
    rows = n_train if params.get("solver", "adam") == "lbfgs" else min(200, n_train)
    return params.get("alpha", 1e-4) * rows


def both(kind, **params):
    """(fastmlp estimator, scikit-learn estimator) with the same settings."""
    ours, theirs = PAIRS[kind]
    return ours(n_threads=1, **params), theirs(**params)


# each parameter value of issue 15 on data where both converge within a few seconds
SCORED = [
    ("digits", dict(solver="lbfgs", activation="logistic", max_iter=25, alpha=1e-3)),
    ("digits", dict(solver="lbfgs", activation="relu", max_iter=25, alpha=1e-3)),
    ("digits", dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1,
                    max_iter=30)),
    ("digits", dict(solver="sgd", nesterovs_momentum=False, learning_rate_init=0.1,
                    max_iter=30)),
    ("digits", dict(solver="adam", learning_rate_init=0.01, max_iter=30,
                    n_iter_no_change=np.inf)),
    ("breast_cancer", dict(solver="lbfgs", activation="tanh", max_iter=100, alpha=1e-2)),
    ("breast_cancer", dict(solver="lbfgs", activation="logistic", max_fun=50, alpha=1e-2)),
    ("breast_cancer", dict(solver="sgd", activation="logistic", learning_rate="adaptive",
                           learning_rate_init=0.1, max_iter=60)),
    ("breast_cancer", dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05,
                           max_iter=60)),
    ("breast_cancer", dict(solver="adam", early_stopping=True, learning_rate_init=0.01,
                           max_iter=60)),
    ("diabetes", dict(solver="lbfgs", max_iter=30, alpha=1e-2)),
    ("diabetes", dict(solver="lbfgs", activation="identity", max_iter=50)),
    ("diabetes", dict(solver="adam", learning_rate_init=0.01, max_iter=40, alpha=0.1)),
    ("diabetes", dict(solver="sgd", activation="logistic", learning_rate="adaptive",
                      learning_rate_init=0.05, max_iter=100, alpha=1e-2)),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name, params", SCORED,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}"
                              for n, p in SCORED])
def test_scores_within_0_02_of_scikit_learn(name, params):
    X_train, X_test, y_train, y_test = dataset(name)
    kind = "regressor" if name == "diabetes" else "classifier"
    ours, theirs = both(kind, hidden_layer_sizes=(32,), random_state=0, **params)
    theirs.set_params(alpha=sklearn_alpha(params, len(X_train)))
    ours.fit(X_train, y_train)
    theirs.fit(X_train, y_train)
    assert abs(ours.score(X_test, y_test) - theirs.score(X_test, y_test)) <= 0.02
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_poisson_loss_beside_scikit_learn():
    X_train, X_test, _, _ = dataset("diabetes")

    def counts(X, seed):
        return np.random.RandomState(seed).poisson(np.exp(0.8 * X[:, 0] - 0.6 * X[:, 2]))

    params = dict(loss="poisson", solver="lbfgs", hidden_layer_sizes=(16,), max_iter=40,
                  alpha=0.1, random_state=0)
    ours, theirs = both("regressor", **params)
    theirs.set_params(alpha=sklearn_alpha(params, len(X_train)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X_train, counts(X_train, 0))
        theirs.fit(X_train, counts(X_train, 0))
    score = ours.score(X_test, counts(X_test, 1))
    assert score > 0.3
    assert abs(score - theirs.score(X_test, counts(X_test, 1))) <= 0.02
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert np.all(ours.predict(X_test) > 0)
    # scikit-learn documents y >= 0 without checking it (its deviance turns NaN); fastmlp says so
    with pytest.raises(ValueError, match="loss='poisson' needs targets y >= 0"):
        fastmlp.MLPRegressor(loss="poisson").fit(X_train, counts(X_train, 0) - 1.0)


def test_poisson_gradient_by_finite_differences():
    rng = np.random.RandomState(1)
    X, counts = rng.randn(30, 4), rng.poisson(2.0, size=(30, 2)).astype(float)
    counts[:5] = 0  # y log y is 0 at y = 0
    model = fastmlp.MLPRegressor((5,), loss="poisson", activation="logistic", max_iter=2,
                                 dtype=np.float64, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, counts)
    assert fastmlp.check_gradients(model, X, counts)[0] < 1e-6
    weights = rng.rand(30)
    assert fastmlp.check_gradients(model, X, counts, sample_weight=weights)[0] < 1e-6


def test_poisson_loss_is_scikit_learns_half_deviance():
    rng = np.random.RandomState(2)
    X, counts = rng.randn(40, 3), rng.poisson(1.5, size=40).astype(float)
    model = fastmlp.MLPRegressor((4,), loss="poisson", alpha=0.0, max_iter=2, dtype=np.float64,
                                 random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, counts)
    from sklearn.neural_network._base import LOSS_FUNCTIONS
    expected = LOSS_FUNCTIONS["poisson"](counts[:, None], model.predict(X)[:, None])
    assert model._batch_gradient(X, counts)[0] == pytest.approx(expected, rel=1e-10)


def test_logistic_is_the_sigmoid_unit():
    X_train, _, y_train, _ = dataset("breast_cancer")
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        logistic = fastmlp.MLPClassifier(activation="logistic", **kw).fit(X_train, y_train)
        sigmoid = fastmlp.MLPClassifier(activation="sigmoid", **kw).fit(X_train, y_train)
    np.testing.assert_array_equal(logistic._params, sigmoid._params)
    # scikit-learn's forward pass with fastmlp's weights gives fastmlp's probabilities
    theirs = sk.MLPClassifier(activation="logistic")
    theirs.coefs_, theirs.intercepts_ = logistic.coefs_, logistic.intercepts_
    theirs.n_layers_, theirs.out_activation_ = logistic.n_layers_, logistic.out_activation_
    inputs = ((X_train - logistic._x_shift) * logistic._x_scale).astype(np.float32)
    np.testing.assert_allclose(theirs._forward_pass_fast(inputs, check_input=False).ravel(),
                               logistic.predict_proba(X_train)[:, 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_every_scikit_learn_parameter_with_its_default(kind):
    ours, theirs = (inspect.signature(cls).parameters for cls in PAIRS[kind])
    assert set(theirs) <= set(ours)
    differ = {name for name in theirs if ours[name].default != theirs[name].default}
    # epsilon=None is each solver's own default: 1e-8 for adam, scikit-learn's value
    assert differ == {"epsilon"}
    assert fastmlp.optim.DEFAULT_EPSILON["adam"] == theirs["epsilon"].default


@pytest.mark.parametrize("kind, params", [
    ("classifier", {"activation": "softmax"}),
    ("classifier", {"solver": "newton-cg"}),
    ("classifier", {"learning_rate": "cyclic"}),
    ("classifier", {"n_iter_no_change": 0}),
    ("classifier", {"n_iter_no_change": 2.5}),
    ("classifier", {"max_fun": 0}),
    ("classifier", {"nesterovs_momentum": "yes"}),
    ("regressor", {"loss": "absolute_error"}),
])
def test_same_parameter_errors(kind, params):
    X, y = dataset("breast_cancer")[0][:40], dataset("breast_cancer")[2][:40]
    name = next(iter(params))
    for estimator in both(kind, **params):
        with pytest.raises(InvalidParameterError,
                           match=f"The '{name}' parameter of {type(estimator).__name__} must be"):
            estimator.fit(X, y)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_same_convergence_warnings(kind):
    X_train, _, y_train, _ = dataset("breast_cancer" if kind == "classifier" else "diabetes")
    X_train, y_train = X_train[:100], y_train[:100]
    for params in (dict(solver="lbfgs", max_iter=3), dict(solver="sgd", max_iter=3),
                   dict(solver="lbfgs", max_fun=3, max_iter=100)):
        messages = []
        for estimator in both(kind, hidden_layer_sizes=(4,), random_state=0, **params):
            with pytest.warns(ConvergenceWarning) as record:
                estimator.fit(X_train, y_train)
            # a warm start that ends at max_iter warns again
            estimator.set_params(warm_start=True)
            with pytest.warns(ConvergenceWarning):
                estimator.fit(X_train, y_train)
            messages.append(str(record[0].message))
        if "max_fun" not in params:
            assert messages[0] == messages[1]
        else:  # the status and scipy's text agree; the iteration count may not
            assert all("(status=1)" in m and "TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT" in m
                       for m in messages)


def test_same_error_when_the_validation_set_is_too_small():
    # 9 rows: validation_fraction=0.1 holds out one
    X, y = dataset("diabetes")[0][:9], dataset("diabetes")[2][:9]
    for estimator in both("regressor", early_stopping=True, validation_fraction=0.1):
        with pytest.raises(ValueError, match="The validation set is too small. Increase "
                                             "'validation_fraction' or the size of your dataset"):
            estimator.fit(X, y)


def test_partial_fit_is_for_stochastic_solvers_only():
    for estimator in both("classifier", solver="lbfgs"):
        assert not hasattr(estimator, "partial_fit")
    # scikit-learn's MLPRegressor forgets to call its solver check (available_if gets the
    # method, always true), so its partial_fit runs a whole L-BFGS fit; fastmlp's refuses
    assert not hasattr(fastmlp.MLPRegressor(solver="lbfgs"), "partial_fit")
    for kind in PAIRS:
        for estimator in both(kind, solver="sgd"):
            assert hasattr(estimator, "partial_fit")
    # scikit-learn refuses partial_fit with early_stopping=True (a ValueError, since its issue
    # 25693, whose reporter expected it to work); fastmlp trains the epoch on the rows given,
    # without a validation set, as a partial_fit after such a fit does in test_schedules.py
    X, y = dataset("breast_cancer")[0][:50], dataset("breast_cancer")[2][:50]
    model = fastmlp.MLPClassifier(early_stopping=True, n_threads=1).partial_fit(X, y, [0, 1])
    assert model.n_iter_ == 1 and model.validation_scores_ is None


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_predict_log_proba_and_fitted_attributes(solver):
    pd = pytest.importorskip("pandas")
    X_train, X_test, y_train, _ = dataset("digits")
    columns = [f"pixel{i}" for i in range(X_train.shape[1])]
    frame = pd.DataFrame(X_train[:300], columns=columns)
    for estimator in both("classifier", hidden_layer_sizes=(8,), solver=solver, max_iter=5,
                          random_state=0):
        estimator.fit(frame, y_train[:300])
        proba = estimator.predict_proba(pd.DataFrame(X_test[:20], columns=columns))
        log_proba = estimator.predict_log_proba(pd.DataFrame(X_test[:20], columns=columns))
        np.testing.assert_allclose(log_proba, np.log(proba), rtol=1e-6)
        assert log_proba.shape == (20, 10)
        assert list(estimator.feature_names_in_) == columns
        assert estimator.n_features_in_ == 64 and list(estimator.classes_) == list(range(10))
        assert estimator.n_iter_ == 5 and estimator.out_activation_ == "softmax"
        if solver != "lbfgs":
            # (scikit-learn's lbfgs sets none of these; fastmlp's does, see test_lbfgs.py)
            assert len(estimator.loss_curve_) == 5
            assert estimator.best_loss_ == min(estimator.loss_curve_)
            assert estimator.validation_scores_ is None
            assert estimator.best_validation_score_ is None


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_attributes():
    X_train, _, y_train, _ = dataset("breast_cancer")
    for estimator in both("classifier", early_stopping=True, max_iter=8, random_state=0,
                          n_iter_no_change=np.inf):
        estimator.fit(X_train, y_train)
        assert estimator.best_loss_ is None and estimator.n_iter_ == 8
        assert len(estimator.validation_scores_) == 8
        assert estimator.best_validation_score_ == max(estimator.validation_scores_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_class_is_accepted_by_fit_and_partial_fit():
    X = dataset("breast_cancer")[0][:40]
    for solver in ("adam", "lbfgs"):
        for estimator in both("classifier", solver=solver, max_iter=5, random_state=0):
            np.testing.assert_array_equal(estimator.fit(X, np.full(40, "only")).predict(X),
                                          np.full(40, "only"))
    # partial_fit with classes that y does not all show, and with a single class
    for classes in ([0, 1], [0]):
        for estimator in both("classifier", random_state=0):
            estimator.partial_fit(X, np.zeros(40, dtype=int), classes=classes)
            assert list(estimator.classes_) == classes
    # one class has probability 1: one column, as classes_ has (scikit-learn gives two)
    ours = fastmlp.MLPClassifier(max_iter=5, n_threads=1).fit(X, np.zeros(40, dtype=int))
    np.testing.assert_array_equal(ours.predict_proba(X[:3]), np.ones((3, 1)))
    np.testing.assert_array_equal(ours.predict_log_proba(X[:3]), np.zeros((3, 1)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_multilabel_early_stopping_splits_without_stratifying():
    """scikit-learn stratifies only single-output targets; a multilabel y is split plainly,
    in both, and trains."""
    X = dataset("breast_cancer")[0][:120]
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0.5, X[:, 2] < 0]).astype(int)
    for estimator in both("classifier", early_stopping=True, max_iter=5, random_state=0):
        estimator.fit(X, Y)
        assert estimator.predict(X).shape == Y.shape and len(estimator.validation_scores_) == 5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind, params", [
    ("classifier", dict(activation="logistic")),
    ("classifier", dict(solver="sgd", learning_rate="adaptive")),
    ("classifier", dict(n_iter_no_change=np.inf)),
    ("classifier", dict(solver="lbfgs", max_fun=100)),
    ("regressor", dict(loss="poisson")),
])
def test_new_parameter_values_survive_save_and_load(tmp_path, kind, params):
    X = dataset("breast_cancer")[0][:60]
    y = (X[:, 0] > 0).astype(int) if kind == "classifier" else np.abs(X[:, 0])
    model = PAIRS[kind][0](max_iter=3, random_state=0, n_threads=1, **params).fit(X, y)
    fastmlp.save(model, tmp_path / "model")
    loaded = fastmlp.load(tmp_path / "model")
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if params.get("solver") != "lbfgs":  # the schedule carries on where it was
        loaded.partial_fit(X, y)
        model.partial_fit(X, y)
        np.testing.assert_array_equal(loaded._params, model._params)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_validation_fraction_zero_is_refused_only_by_early_stopping():
    X, y = dataset("breast_cancer")[0][:40], dataset("breast_cancer")[2][:40]
    for estimator in both("classifier", validation_fraction=0.0, max_iter=2):
        estimator.fit(X, y)
        estimator.set_params(early_stopping=True)
        with pytest.raises(ValueError, match="test_size=0.0 should be"):
            estimator.fit(X, y)


def test_regressor_partial_fit_takes_sample_weight_third_as_scikit_learn():
    X, y = dataset("diabetes")[0][:60], dataset("diabetes")[2][:60]
    weights = np.r_[np.ones(30), np.zeros(30)]
    kw = dict(hidden_layer_sizes=(4,), random_state=0, shuffle=False, batch_size=60)
    by_position = fastmlp.MLPRegressor(n_threads=1, **kw).partial_fit(X, y, weights)
    by_name = fastmlp.MLPRegressor(n_threads=1, **kw).partial_fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(by_position._params, by_name._params)
    assert list(inspect.signature(fastmlp.MLPRegressor.partial_fit).parameters) == \
        list(inspect.signature(sk.MLPRegressor.partial_fit).parameters)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_with_string_labels():
    """scikit-learn 1.9's issue 33760 (fixed there): string labels with early stopping."""
    X = dataset("breast_cancer")[0][:120]
    y = np.array(["low", "mid", "high"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)]
    for estimator in both("classifier", early_stopping=True, max_iter=5, random_state=0):
        estimator.fit(X, y)
        assert set(estimator.predict(X)) <= {"low", "mid", "high"}
        assert all(0 <= s <= 1 for s in estimator.validation_scores_)


# the steps of test_t_counts_samples_seen_as_scikit_learn: (method, rows, parameters set first)
T_STEPS = [("fit", 60, {}), ("fit", 60, dict(warm_start=True)), ("partial_fit", 45, {}),
           ("partial_fit", 7, {}), ("fit", 50, {}), ("fit", 60, dict(warm_start=False)),
           ("partial_fit", 60, {}), ("fit", 60, dict(early_stopping=True)),
           ("fit", 60, dict(warm_start=True)), ("fit", 33, dict(solver="lbfgs")),
           ("fit", 60, dict(warm_start=False)), ("fit", 60, dict(solver="sgd"))]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_t_counts_samples_seen_as_scikit_learn(kind):
    """t_ is scikit-learn's: the training rows of every epoch (after the early-stopping split),
    carried on by partial_fit and by warm-started fits, 0 after lbfgs, back to 0 on a fit that
    starts over. n_iter_no_change=inf makes both run max_iter epochs."""
    X, _, y, _ = dataset("breast_cancer" if kind == "classifier" else "diabetes")
    pair = both(kind, hidden_layer_sizes=(4,), max_iter=3, n_iter_no_change=np.inf,
                random_state=0)
    for method, n, params in T_STEPS:
        seen = []
        for estimator in pair:
            estimator.set_params(**params)
            kwargs = {"classes": [0, 1]} if method == "partial_fit" and kind == "classifier" \
                else {}
            getattr(estimator, method)(X[:n], y[:n], **kwargs)
            # (scikit-learn's n_iter_ is 1 after every partial_fit, fastmlp's counts on)
            seen.append((estimator.t_, estimator.n_iter_ if method == "fit" else None))
        assert seen[0] == seen[1], (method, n, params)
        ours = pair[0]
        assert isinstance(ours.t_, int) and ours._n_updates <= ours.t_


@pytest.mark.parametrize("labels", [[0, 1], ["no", "yes"], [3, 7, 9], ["a", "b", "c", "d"],
                                    [-1, 2], [5]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predicted_labels_are_label_binarizers(labels, dtype):
    """predict's labels (targets.decode, which skips LabelBinarizer.inverse_transform's checks
    for binary and multiclass) are what inverse_transform gives: ties go to the first class,
    an output of exactly the threshold is negative, and one class or multilabel outputs take
    inverse_transform itself."""
    from sklearn.preprocessing import LabelBinarizer

    from fastmlp import targets

    binarizer = LabelBinarizer().fit(labels)
    width = 1 if len(labels) <= 2 else len(labels)
    rows = np.random.RandomState(0).rand(200, width)
    rows[:20] = 0.5  # all tied, and on the binary threshold
    rows[20:40, -1] = rows[20:40, 0] = rows[20:40].max(axis=1)  # first and last tied
    rows[40:45] = np.nextafter(0.5, 1)  # just above the threshold
    out = rows.astype(dtype)
    decoded = targets.decode(out, binarizer, y_1d=True)
    expected = binarizer.inverse_transform(out)
    assert decoded.dtype == expected.dtype
    np.testing.assert_array_equal(decoded, expected)
    multilabel = LabelBinarizer().fit(np.array([[0, 1, 1], [1, 0, 0]]))
    np.testing.assert_array_equal(targets.decode(out[:, :1].repeat(3, axis=1), multilabel, False),
                                  multilabel.inverse_transform(out[:, :1].repeat(3, axis=1)))


def test_predict_gives_scikit_learns_labels_for_every_kind_of_target():
    """The labels of a fitted model, one row or many, through the fast path of decode."""
    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16
    for target in (y[:300], y[:300] % 2, np.where(y[:300] % 2, "odd", "even")):
        model = fastmlp.MLPClassifier(hidden_layer_sizes=(16,), max_iter=20,
                                      random_state=0).fit(X, target)
        binarizer = model._model.binarizer
        outputs = model._model.forward(np.ascontiguousarray(X, dtype=model._params.dtype), 1,
                                       False)
        np.testing.assert_array_equal(model.predict(X), binarizer.inverse_transform(outputs))
        assert model.predict(X[:1])[0] == binarizer.inverse_transform(outputs[:1])[0]
