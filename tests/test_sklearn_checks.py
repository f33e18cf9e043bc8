"""scikit-learn's estimator check suite, in the default float32 and in float64."""
import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp import MLPClassifier, MLPRegressor, Network

# One thread: results do not depend on the count, and two spinning OpenMP threads make these
# tiny fits slow on a busy machine. 100 epochs at lr 0.01 reach the accuracy / R^2 the checks
# ask for without poor_score tags.
SMALL = dict(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, random_state=0,
             n_threads=1)
# check_sample_weight_equivalence_* compares fits with weights and with repeated rows at
# rtol=1e-7, which float32 sums taken in other orders cannot meet (the float64 run passes
# them; tests/test_inputs.py checks the weights in float32 at float32 tolerances)
FLOAT32_CANNOT = "float32 sums in another order: rtol=1e-7 is below float32's resolution"
FLOAT32_EXPECTED = {"check_sample_weight_equivalence_on_dense_data": FLOAT32_CANNOT,
                    "check_sample_weight_equivalence_on_sparse_data": FLOAT32_CANNOT}


# the checks fit tiny, noisy data sets for max_iter epochs: stopping there is expected
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([Network(**SMALL), MLPClassifier(**SMALL), MLPRegressor(**SMALL)],
                         expected_failed_checks=lambda estimator: FLOAT32_EXPECTED)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([Network(dtype=np.float64, **SMALL),
                          MLPClassifier(dtype=np.float64, **SMALL),
                          MLPRegressor(dtype=np.float64, **SMALL)])
def test_sklearn_compatible_estimator_float64(estimator, check):
    check(estimator)


# full-batch L-BFGS: deterministic, so weighted and repeated rows agree to 1e-7 in float64
LBFGS = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=100, random_state=0,
             dtype=np.float64, n_threads=1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([MLPClassifier(**LBFGS), MLPRegressor(**LBFGS)])
def test_sklearn_compatible_estimator_lbfgs(estimator, check):
    check(estimator)


def test_tags_say_what_each_estimator_supports():
    net, clf, reg = (est.__sklearn_tags__() for est in (Network(), MLPClassifier(),
                                                        MLPRegressor()))
    for tags in (net, clf, reg):
        assert tags.input_tags.sparse and not tags.input_tags.allow_nan
        assert not tags.input_tags.positive_only and not tags.target_tags.positive_only
        assert tags.target_tags.required and tags.target_tags.single_output
        assert not tags.non_deterministic  # given random_state
    # Network does either task, as its first targets say
    assert net.estimator_type is None
    assert net.classifier_tags.multi_class and net.classifier_tags.multi_label
    assert net.regressor_tags is not None and net.target_tags.multi_output
    # a classifier: several classes, several binary labels, not several multiclass columns
    assert clf.estimator_type == "classifier" and clf.regressor_tags is None
    assert clf.classifier_tags.multi_class and clf.classifier_tags.multi_label
    assert not clf.target_tags.multi_output
    assert reg.estimator_type == "regressor" and reg.classifier_tags is None
    assert reg.target_tags.multi_output


def test_multiclass_multioutput_targets_are_refused_clearly():
    X = np.random.RandomState(0).normal(size=(20, 3))
    y = np.column_stack([np.arange(20) % 3, np.arange(20) % 4])
    for est in (Network(**SMALL), MLPClassifier(**SMALL)):
        with pytest.raises(ValueError, match="Unknown label type: 'multiclass-multioutput'"):
            est.fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_partial_fit_classes_network_takes_first_labels_classifier_requires_them():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 3)), np.array(["a", "b", "c"])[np.arange(30) % 3]
    net = Network(**SMALL).partial_fit(X, y)
    np.testing.assert_array_equal(net.classes_, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"labels \['d'\] not among the classes"):
        net.partial_fit(X[:2], ["a", "d"])
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(**SMALL).partial_fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_multilabel_targets_keep_their_columns():
    rng = np.random.RandomState(0)
    X, Y = rng.normal(size=(40, 3)), (rng.rand(40, 4) < 0.5).astype(int)
    clf = MLPClassifier(**SMALL).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 4
    assert clf.predict(X).shape == (40, 4) and clf.predict_proba(X).shape == (40, 4)
    with pytest.raises(ValueError, match="classes has 3 labels but the multilabel y has 4"):
        MLPClassifier(**SMALL).partial_fit(X, Y, classes=[0, 1, 2])
    inc = MLPClassifier(**SMALL).partial_fit(X, Y, classes=[0, 1, 2, 3])
    assert inc.predict(X).shape == (40, 4)
