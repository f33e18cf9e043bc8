"""ONNX export: onnxruntime's outputs against predict / predict_proba for every output kind,
activation, batch norm, dropout, standardization and precision, and in a Pipeline through
skl2onnx."""
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fastmlp import MLPClassifier, MLPRegressor, Network, to_onnx
from fastmlp.export import folded_layers, register_skl2onnx

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ACTIVATIONS = sorted(Network._parameter_constraints["activation"][0].options)
# float32: the fold rounds each weight once, and onnxruntime sums in another order
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})


def features(n=120, d=6, seed=0):
    """Columns of every kind normalize="auto" meets: offset and scaled reals, a binary column
    (left as it is) and a constant one (only centered)."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 20, d) + rng.uniform(-50, 50, d)
    X[:, 1] = rng.randint(0, 2, n)
    X[:, 2] = 7.0
    return X


def halves(v):
    return v > np.median(v)


def fit(cls, X, y, dtype=np.float32, **params):
    params = dict(dict(hidden_layer_sizes=(12, 7), max_iter=8, learning_rate_init=0.01,
                       random_state=0, n_threads=1), **params)
    return cls(dtype=dtype, **params).fit(X, y)


def with_batchnorm_statistics(model, seed=0):
    """Running statistics and gamma, beta far from (0, 1, 1, 0), written into the model's
    views: a fold that skipped any of them fails. Returns the model."""
    rng = np.random.RandomState(seed)
    for bn in model.batchnorm_:
        n = len(bn["gamma"])
        bn["running_mean"][...] = rng.normal(0, 2, n)
        bn["running_var"][...] = rng.uniform(0.2, 5, n)
        bn["gamma"][...] = rng.uniform(0.5, 2, n)
        bn["beta"][...] = rng.normal(0, 1, n)
    return model


def check_classifier(clf, X):
    dtype = clf.coefs_[0].dtype.type
    label, probabilities = run(to_onnx(clf), X.astype(dtype))
    assert probabilities.dtype == dtype
    np.testing.assert_allclose(probabilities, clf.predict_proba(X), **TOLERANCE[dtype])
    expected = clf.predict(X)
    assert label.shape == expected.shape
    np.testing.assert_array_equal(label, expected)
    return label, probabilities


def check_regressor(reg, X):
    dtype = reg.coefs_[0].dtype.type
    values, = run(to_onnx(reg), X.astype(dtype))
    expected = reg.predict(X)
    assert values.dtype == dtype and values.shape == expected.shape
    # relative to the outputs' scale: a value near 0 carries the rounding of its terms
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(values, expected, rtol=tolerance["rtol"],
                               atol=tolerance["rtol"] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalize", ["auto", None])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_multiclass_standardization_batch_norm_dropout(dtype, normalize, batch_norm):
    X = features()
    y = np.digitize(X[:, 0] + X[:, 3] / 5, np.quantile(X[:, 0] + X[:, 3] / 5, [0.33, 0.66]))
    if normalize is None:
        X = StandardScaler().fit_transform(X)
    clf = fit(MLPClassifier, X, y, dtype, normalize=normalize, batch_norm=batch_norm,
              dropout=[0.2, 0.1])
    check_classifier(with_batchnorm_statistics(clf) if batch_norm else clf, X)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation(activation):
    X, y = make_classification(n_samples=100, n_features=5, n_informative=4, n_redundant=0,
                               n_classes=3, random_state=1)
    check_classifier(fit(MLPClassifier, X * 4 + 3, y, activation=activation), X * 4 + 3)
    Xr, yr = make_regression(n_samples=80, n_features=4, random_state=1)
    reg = fit(MLPRegressor, Xr, yr, activation=activation, batch_norm=True)
    check_regressor(with_batchnorm_statistics(reg), Xr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels", [np.array([3, 8]), np.array(["spam", "ham"]),
                                    np.array([False, True])])
def test_binary_labels_and_two_probability_columns(dtype, labels):
    X = features(seed=2)
    y = labels[(X[:, 0] > np.median(X[:, 0])).astype(int)]
    clf = fit(MLPClassifier, X, y, dtype)
    assert clf.out_activation_ == "logistic"
    label, probabilities = check_classifier(clf, X)
    assert probabilities.shape == (len(X), 2)
    assert set(label.tolist()) <= set(labels.tolist())


def test_string_labels_multiclass():
    X = features(seed=3)
    y = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], np.quantile(X[:, 0], [0.3, 0.6]))]
    label, _ = check_classifier(with_batchnorm_statistics(fit(MLPClassifier, X, y,
                                                              batch_norm=True)), X)
    assert label.dtype == object and set(label) <= {"low", "mid", "high"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multilabel_gives_a_label_matrix(dtype):
    X, Y = make_multilabel_classification(n_samples=100, n_features=6, n_classes=4,
                                          random_state=0)
    clf = with_batchnorm_statistics(fit(MLPClassifier, X, Y, dtype, batch_norm=True))
    label, probabilities = check_classifier(clf, X)
    assert label.shape == Y.shape and probabilities.shape == Y.shape
    assert set(np.unique(label)) <= {0, 1}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_regression_single_and_multi_output(dtype, n_targets):
    X, y = make_regression(n_samples=100, n_features=5, n_targets=n_targets, random_state=0)
    X = X * 10 + 100
    check_regressor(fit(MLPRegressor, X, y, dtype, dropout=0.1), X)


def test_regression_on_a_single_target_column_keeps_the_column():
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    reg = fit(MLPRegressor, X, y.reshape(-1, 1))
    assert reg.predict(X).shape == (60, 1)
    check_regressor(reg, X)


def test_poisson_regression_exp_output():
    X, y = make_regression(n_samples=80, n_features=4, random_state=0)
    reg = fit(MLPRegressor, X, np.exp(y / 100), loss="poisson")
    assert reg.out_activation_ == "exp"
    check_regressor(reg, X)


def test_network_of_either_task():
    X = features(seed=4)
    check_classifier(fit(Network, X, halves(X[:, 0]).astype(int) + 2 * halves(X[:, 3])), X)
    check_regressor(fit(Network, X, X[:, 0] * 0.1 - X[:, 4] * 0.2), X)


def test_folded_layers_are_exact_in_float64():
    """The fold is algebra, not an approximation: a float64 identity network with batch norm
    and standardization equals the folded affine maps to rounding."""
    X = features(seed=5)
    reg = with_batchnorm_statistics(fit(MLPRegressor, X, X[:, 0] - X[:, 3], np.float64,
                                        activation="identity", batch_norm=True))
    h = X
    for W, b in folded_layers(reg):
        h = h @ W + b
    np.testing.assert_allclose(h.ravel(), reg.predict(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("option", [True, "columns"])
def test_zipmap(option):
    X = features(seed=6)
    y = np.array(["a", "b", "c"])[np.digitize(X[:, 0], np.quantile(X[:, 0], [0.3, 0.6]))]
    clf = fit(MLPClassifier, X, y)
    onx = to_onnx(clf, zipmap=option)
    outputs = run(onx, X.astype(np.float32))
    np.testing.assert_array_equal(outputs[0], clf.predict(X))
    expected = clf.predict_proba(X)
    if option is True:
        assert [o.name for o in onx.graph.output] == ["output_label", "output_probability"]
        got = np.array([[row[c] for c in clf.classes_] for row in outputs[1]])
    else:
        got = np.column_stack(outputs[1:])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_outputs_named_as_skl2onnx_classifiers_and_opset():
    X = features(seed=7)
    clf = fit(MLPClassifier, X, halves(X[:, 0]))
    onx = to_onnx(clf, target_opset=17)
    assert [i.name for i in onx.graph.input] == ["X"]
    assert [o.name for o in onx.graph.output] == ["label", "probabilities"]
    # skl2onnx writes the lowest opset its nodes need, up to target_opset
    assert {op.domain: op.version for op in onx.opset_import}[""] <= 17
    # no trace of training-only parts in the graph
    assert {n.op_type for n in onx.graph.node} <= {"MatMul", "Add", "Relu", "Sigmoid", "Sub",
                                                  "Concat", "Greater", "Cast", "Reshape",
                                                  "Gather"}
    reg = fit(MLPRegressor, X, X[:, 0])
    assert [o.name for o in to_onnx(reg).graph.output] == ["variable"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pipeline_with_column_transformer_by_skl2onnx(dtype):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    n = 150
    df = pd.DataFrame({"age": rng.uniform(18, 90, n).astype(np.float32),
                       "income": rng.lognormal(10, 1, n).astype(np.float32),
                       "city": rng.choice(["paris", "lyon", "nice"], n)})
    y = np.where((df["age"] > 50) ^ (df["city"] == "nice"), "yes", "no")
    pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                             ("cat", OneHotEncoder(), ["city"])])
    pipe = make_pipeline(pre, MLPClassifier(hidden_layer_sizes=(10,), max_iter=20,
                                            random_state=0, dtype=dtype, batch_norm=True,
                                            n_threads=1)).fit(df, y)
    register_skl2onnx()
    onx = skl2onnx.to_onnx(pipe, df[:1], options={MLPClassifier: {"zipmap": False}})
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {c: df[c].to_numpy().reshape(-1, 1) for c in df.columns}
    label, probabilities = session.run(None, feeds)
    np.testing.assert_array_equal(label, pipe.predict(df))
    # the scaler runs in float32 in both; a float64 model then computes in double in both
    np.testing.assert_allclose(probabilities, pipe.predict_proba(df), rtol=1e-5, atol=1e-6)


def test_skl2onnx_to_onnx_with_default_zipmap_and_a_regressor_pipeline():
    register_skl2onnx()
    X = features(seed=8).astype(np.float32)
    clf = fit(MLPClassifier, X, halves(X[:, 0]))
    onx = skl2onnx.to_onnx(clf, X[:1])
    label, probabilities = ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    np.testing.assert_array_equal(label, clf.predict(X))
    np.testing.assert_allclose([[p[False], p[True]] for p in probabilities],
                               clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    pipe = make_pipeline(StandardScaler(), fit(MLPRegressor, X, X[:, 0]).set_params())
    pipe.fit(X, X[:, 0] * 2)
    values, = ort.InferenceSession(skl2onnx.to_onnx(pipe, X[:1]).SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, {"X": X})
    np.testing.assert_allclose(values, pipe.predict(X), rtol=1e-5, atol=1e-5)


def test_errors():
    X = features(seed=9)
    with pytest.raises(NotFittedError):
        to_onnx(MLPClassifier())
    with pytest.raises(TypeError, match="fastmlp's estimators"):
        to_onnx(LogisticRegression().fit(X, halves(X[:, 0])))
    reg = fit(MLPRegressor, X, X[:, 0])
    with pytest.raises(ValueError, match="zipmap applies to classifiers"):
        to_onnx(reg, zipmap=True)
    with pytest.raises(ValueError, match="zipmap must be"):
        to_onnx(fit(MLPClassifier, X, halves(X[:, 0])), zipmap="yes")


def test_zipmap_multilabel_keys_the_label_columns():
    X, Y = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3,
                                          random_state=0)
    clf = fit(MLPClassifier, X, Y)
    label, probabilities = run(to_onnx(clf, zipmap=True), X.astype(np.float32))
    np.testing.assert_array_equal(label, clf.predict(X))
    np.testing.assert_allclose([[row[j] for j in range(3)] for row in probabilities],
                               clf.predict_proba(X), rtol=1e-5, atol=1e-6)
