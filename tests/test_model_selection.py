"""The estimators inside scikit-learn's machinery: clone, pipelines, searches in parallel, and
the thread count when joblib runs several fits at once."""
import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import (GridSearchCV, RandomizedSearchCV, cross_val_score,
                                     cross_validate)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier, MLPRegressor, Network
from fastmlp.network import available_cores

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def classification(n=150, seed=0):
    return make_classification(n_samples=n, n_features=8, n_informative=5, n_classes=3,
                               random_state=seed)


def threads_used(estimator, X, y):
    """A 'score' that reports how many threads the estimator trains with in this process."""
    return estimator._threads()


def test_clone_keeps_params_and_drops_fitted_state():
    X, y = classification()
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), dropout=[0.1, 0.2], dtype=np.float64,
                        max_iter=3, random_state=0).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "coefs_") and not hasattr(copy, "_params")
    # fitting the clone does not touch the original, and gives the same model
    before = clf._params.copy()
    copy.fit(X, y)
    np.testing.assert_array_equal(clf._params, before)
    np.testing.assert_array_equal(copy._params, clf._params)


@pytest.mark.parametrize("cls", [Network, MLPClassifier])
def test_pipeline_with_scaler(cls):
    X, y = classification()
    pipe = make_pipeline(StandardScaler(), cls(hidden_layer_sizes=(16,), max_iter=50,
                                               learning_rate_init=0.01, random_state=0,
                                               normalize=None, n_threads=1))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.8
    assert pipe.predict_proba(X).shape == (len(X), 3)


def test_pipeline_sparse_one_hot_into_the_network():
    """OneHotEncoder hands the network a sparse matrix of {0, 1} columns."""
    rng = np.random.RandomState(0)
    colours = rng.choice(["red", "green", "blue"], 200)
    sizes = rng.choice(["S", "M", "L", "XL"], 200)
    X = np.column_stack([colours, sizes])
    y = (colours == "red") ^ (sizes == "XL")
    pipe = make_pipeline(OneHotEncoder(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=200,
                                                        learning_rate_init=0.02,
                                                        random_state=0, n_threads=1))
    pipe.fit(X, y)
    assert pipe.score(X, y) == 1.0


def test_column_transformer_on_a_dataframe():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    df = pd.DataFrame({"city": rng.choice(["a", "b", "c"], 120), "x": rng.normal(size=120)})
    y = df["x"] * 2 + (df["city"] == "b")
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]),
                                                 remainder="passthrough"),
                         MLPRegressor(hidden_layer_sizes=(16,), max_iter=300,
                                      learning_rate_init=0.01, random_state=0, n_threads=1))
    pipe.fit(df, y)
    assert pipe.score(df, y) > 0.9


def test_grid_search_in_two_processes_equals_one_and_limits_threads():
    X, y = classification()
    grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}
    scoring = {"accuracy": "accuracy", "threads": threads_used}

    def search(n_jobs):
        return GridSearchCV(MLPClassifier(max_iter=20, random_state=0), grid, cv=3,
                            scoring=scoring, refit="accuracy", n_jobs=n_jobs).fit(X, y)

    # in this process on one thread: two spinning OpenMP threads on a busy 2-core machine
    # make tiny fits slow, and training is bitwise the same for any thread count
    with threadpool_limits(limits=1, user_api="openmp"):
        one = search(1)
    two = search(2)
    # the models are deterministic given random_state, wherever they are trained
    np.testing.assert_array_equal(one.cv_results_["mean_test_accuracy"],
                                  two.cv_results_["mean_test_accuracy"])
    assert one.best_params_ == two.best_params_
    np.testing.assert_array_equal(one.best_estimator_.predict_proba(X),
                                  two.best_estimator_.predict_proba(X))
    # n_threads=None follows OpenMP's limit, which joblib's worker processes set to their
    # share of the cores: two fits at once never run more threads than there are cores
    threads = two.cv_results_["mean_test_threads"]
    assert np.all(threads * 2 <= max(2, available_cores())), threads
    assert np.all(one.cv_results_["mean_test_threads"] == 1)


def test_randomized_search_in_two_processes():
    X, y = make_regression(n_samples=120, n_features=6, noise=1.0, random_state=0)
    search = RandomizedSearchCV(
        MLPRegressor(hidden_layer_sizes=(16,), max_iter=60, random_state=0),
        {"learning_rate_init": loguniform(1e-3, 3e-2), "solver": ["adam", "rmsprop"]},
        n_iter=4, cv=3, random_state=0, n_jobs=2, scoring={"r2": "r2", "threads": threads_used},
        refit="r2").fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(search.cv_results_["mean_test_threads"] * 2 <= max(2, available_cores()))
    assert search.best_estimator_.score(X, y) == pytest.approx(search.score(X, y))


def test_cross_validate_returns_picklable_fitted_models():
    """Fitted estimators travel back from the worker processes (pickled) and still predict."""
    X, y = classification()
    result = cross_validate(MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
                            X, y, cv=3, n_jobs=2, return_estimator=True)
    local = cross_val_score(MLPClassifier(hidden_layer_sizes=(8,), max_iter=30,
                                          random_state=0), X, y, cv=3, n_jobs=1)
    np.testing.assert_array_equal(result["test_score"], local)
    for est in result["estimator"]:
        assert est.coefs_[0].base is not None  # views into _params again after unpickling
        est.coefs_[0][...] = 0
        assert np.all(est._params[:est.coefs_[0].size] == 0)


def test_threadpool_limits_caps_the_default_thread_count():
    """Inside threadpoolctl's limit (what joblib and users use against nested parallelism),
    n_threads=None trains on that many threads; an explicit n_threads still rules."""
    with threadpool_limits(limits=1, user_api="openmp"):
        assert Network()._threads() == 1
        assert Network(n_threads=2)._threads() == 2
    assert Network()._threads() >= 1


def test_default_search_space_follows_the_lecture():
    from fastmlp.model_selection import HiddenLayerSizes, default_search_space

    space = default_search_space()
    rng = np.random.RandomState(0)
    rates = space["learning_rate_init"].rvs(2000, random_state=rng)
    # log-uniform: as many draws in each decade's half on the log scale
    assert rates.min() >= 1e-3 and rates.max() <= 1e-2
    assert abs(np.mean(np.log10(rates) < -2.5) - 0.5) < 0.05
    alphas = space["alpha"].rvs(2000, random_state=rng)
    assert alphas.min() >= 1e-6 and alphas.max() <= 1e-2
    assert abs(np.mean(np.log10(alphas) < -4) - 0.5) < 0.05
    dropout = space["dropout"].rvs(500, random_state=rng)
    assert dropout.min() >= 0 and dropout.max() <= 0.5
    sizes = space["hidden_layer_sizes"].rvs(300, random_state=rng)
    assert {len(s) for s in sizes} == {1, 2, 3}
    assert all(len(set(s)) == 1 and 100 <= s[0] <= 1000 for s in sizes)
    assert isinstance(space["hidden_layer_sizes"], HiddenLayerSizes)
    assert default_search_space() is not space  # a fresh dict to change
    assert HiddenLayerSizes(units=[4, 6], depth=2).rvs(random_state=0) in [(4, 4), (6, 6)]
    with pytest.raises(ValueError, match="at least 1"):
        HiddenLayerSizes(units=0, depth=1).rvs()


def test_random_search_early_stops_every_trial_and_reports_progress():
    from fastmlp.model_selection import HiddenLayerSizes, random_search

    X, y = classification(200)
    reports = []
    search = random_search(
        MLPClassifier(max_iter=200, random_state=0, n_threads=1), X, y,
        param_distributions={"hidden_layer_sizes": HiddenLayerSizes(units=[4, 8], depth=1),
                             "learning_rate_init": loguniform(1e-3, 1e-1)},
        n_iter=3, cv=2, random_state=0, return_train_score=True,
        callback=lambda results, done, total: reports.append((done, total)))
    assert reports == [(1, 3), (2, 3), (3, 3)]  # one trial at a time on one job
    assert len(search.cv_results_["params"]) == 3 and "mean_train_score" in search.cv_results_
    best = search.best_estimator_
    assert best.early_stopping and best.n_iter_ < 200
    # the same trials as scikit-learn's own RandomizedSearchCV
    plain = RandomizedSearchCV(MLPClassifier(max_iter=200, random_state=0, n_threads=1,
                                             early_stopping=True),
                               search.param_distributions, n_iter=3, cv=2,
                               random_state=0).fit(X, y)
    assert plain.best_params_ == search.best_params_
    np.testing.assert_array_equal(plain.cv_results_["mean_test_score"],
                                  search.cv_results_["mean_test_score"])


def test_random_search_of_a_pipeline_with_the_default_space():
    from fastmlp.model_selection import random_search

    X, y = make_regression(n_samples=60, n_features=4, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPRegressor(max_iter=3, n_threads=1, random_state=0))
    search = random_search(pipe, X, y, n_iter=1, cv=2, random_state=0, refit=False)
    assert set(search.best_params_) == {"mlpregressor__hidden_layer_sizes",
                                        "mlpregressor__learning_rate_init",
                                        "mlpregressor__alpha", "mlpregressor__dropout"}
    with pytest.raises(TypeError, match="fastmlp estimator"):
        random_search(StandardScaler(), X, y)


@pytest.mark.parametrize("extension", ["csv", "parquet"])
def test_search_command_on_a_file(tmp_path, capsys, extension):
    pd = pytest.importorskip("pandas")
    if extension == "parquet":
        pytest.importorskip("pyarrow")
    from fastmlp.__main__ import main

    rng = np.random.RandomState(0)
    table = pd.DataFrame({"x": rng.normal(size=80), "size": rng.choice(["S", "M", "L"], 80)})
    table["y"] = table["x"] * 2 + (table["size"] == "L")
    path = tmp_path / f"data.{extension}"
    table.to_csv(path, index=False) if extension == "csv" else table.to_parquet(path)
    assert main(["search", str(path), "--target", "y", "--n-iter", "2", "--cv", "2",
                 "--max-iter", "3", "--random-state", "0", "--n-jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "regression (R^2) of 'y'" in out
    assert "trial 1/2: score" in out and "trial 2/2: score" in out
    assert "best score:" in out and "best parameters: alpha=" in out
    assert "hidden_layer_sizes=(" in out


def test_search_command_errors(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from fastmlp.__main__ import main

    path = tmp_path / "data.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}).to_csv(path, index=False)
    for argv, message in ((["--target", "z"], "'z' is not a column"),
                          (["--target", "y", "--cv", "1"], "--cv at least 2")):
        with pytest.raises(SystemExit):
            main(["search", str(path)] + argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", str(tmp_path / "data.xlsx"), "--target", "y"])
    assert "expected a .csv or .parquet file" in capsys.readouterr().err
