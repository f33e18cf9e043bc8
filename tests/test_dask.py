"""fastmlp on Dask: random_search on a LocalCluster of worker processes (same results as the
local search, a worker killed mid-search), threads inside workers, and dask-ml's Incremental."""
import os
import signal
import threading
import time

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import make_classification

from fastmlp import MLPClassifier
from fastmlp.model_selection import HiddenLayerSizes, random_search
from fastmlp.network import available_cores

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
from distributed.utils import get_mp_context  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# what the workers import to run this module's tasks, ~3 s of CPU in each worker process:
# distributed's own preload list (it and numpy, pandas), then what the searches, the search
# command's pipeline and the Hyperband probe unpickle
WORKER_IMPORTS = ["distributed", "numpy", "pandas", "sklearn.model_selection",
                  "sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing",
                  "sklearn.linear_model", "fastmlp", "fastmlp.model_selection",
                  "dask_ml.model_selection"]


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, on the loopback interface, no dashboard.

    Their nannies start them from a fork server that has imported WORKER_IMPORTS once, so the
    two workers and the one the kill test has restarted skip the imports (the forked processes
    are still processes of their own, with the nanny's environment: the fork server starts
    inside the first nanny's start, after it has set distributed.nanny.pre-spawn-environ).
    distributed sets the fork server's preload list once, in the first get_mp_context() call
    for "forkserver"; the list set after that call is the one the server starts with."""
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context().set_forkserver_preload(WORKER_IMPORTS)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client


def small_search(n_samples=300, n_iter=6, **kwargs):
    X, y = make_classification(n_samples=n_samples, n_features=10, n_informative=6,
                               random_state=0)
    space = {"hidden_layer_sizes": HiddenLayerSizes(units=[8, 16, 24], depth=[1, 2]),
             "learning_rate_init": loguniform(1e-3, 3e-2), "alpha": loguniform(1e-6, 1e-2)}
    return random_search(MLPClassifier(max_iter=40, random_state=0), X, y,
                         param_distributions=space, n_iter=n_iter, cv=2, random_state=0,
                         **kwargs)


@pytest.fixture(scope="module")
def local():
    """The reference: the same search in this process, on joblib's default backend."""
    return small_search(n_jobs=1)


def assert_same_search(a, b):
    assert a.best_params_ == b.best_params_
    np.testing.assert_array_equal(a.cv_results_["mean_test_score"],
                                  b.cv_results_["mean_test_score"])
    assert a.best_score_ == b.best_score_


def test_search_on_the_cluster_equals_the_local_search(client, local):
    reports = []
    on_dask = small_search(client=client, callback=lambda results, done, total:
                           reports.append((done, total, len(results["params"]))))
    assert_same_search(on_dask, local)
    # one batch per two trials (two worker threads), each report holding all trials so far
    assert reports == [(2, 6, 2), (4, 6, 4), (6, 6, 6)]
    assert on_dask.best_estimator_.early_stopping


def test_search_by_scheduler_address(client):
    # other data than the other tests: when the search broadcast X and y under keys made
    # from their content, a second client in this process sending the same key while the
    # first released it could make distributed 2026.8 lose it (the search then waited forever)
    assert_same_search(small_search(280, 2, client=client.scheduler.address),
                       small_search(280, 2, n_jobs=1))


def _threads():
    return MLPClassifier()._threads()


_both_running = threading.Barrier(2)
_both_counted = threading.Barrier(2)


def _threads_with_another_task():
    # a worker in this process (processes=False) sees this module's barrier
    _both_running.wait(timeout=30)
    threads = MLPClassifier()._threads()
    # neither task ends before both have counted: on a loaded machine one thread can stay
    # descheduled past its partner's whole task, which would then no longer be running
    _both_counted.wait(timeout=30)
    return threads


def test_processes_cluster_workers_use_their_thread(client):
    assert client.run(lambda: os.environ.get("OMP_NUM_THREADS")) == {a: "1" for a in
                                                                     client.nthreads()}
    assert client.submit(_threads).result() == 1


def test_search_command_on_the_cluster(client, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from fastmlp.__main__ import main

    X, y = make_classification(n_samples=120, n_features=4, random_state=3)
    table = pd.DataFrame(X, columns=list("abcd")).assign(label=np.where(y, "yes", "no"))
    table.to_csv(tmp_path / "data.csv", index=False)
    argv = ["search", str(tmp_path / "data.csv"), "--target", "label", "--n-iter", "2",
            "--cv", "2", "--max-iter", "3", "--random-state", "0"]
    assert main(argv + ["--scheduler", client.scheduler.address]) == 0
    on_dask = capsys.readouterr().out
    assert f"on {client.scheduler.address}" in on_dask and "trial 2/2: score" in on_dask
    assert main(argv + ["--n-jobs", "1"]) == 0
    local = capsys.readouterr().out
    # the same trials and the same best, wherever they ran
    assert on_dask.splitlines()[1:] == local.splitlines()[1:]


def _holders_of_scattered_arrays(client):
    """The workers that hold arrays joblib scattered (X, y, the folds' indices)."""
    return {address for key, where in client.who_has().items()
            if str(key).startswith("ndarray-") for address in where}


def test_a_worker_killed_mid_search(client, local):
    """The scheduler reruns the dead worker's fits elsewhere, and a batch whose data died with
    it runs again with its data sent again: same result. The busy worker that holds the
    batch's data is the one killed where there is one, so the data is lost as often as not
    (the other worker may have fetched a copy)."""
    pids = client.run(os.getpid)
    killed = {}

    def kill_when_busy():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            busy = [address for address, tasks in client.processing().items()
                    if tasks and address in pids]
            if busy:
                holders = _holders_of_scattered_arrays(client)
                address = next((a for a in busy if a in holders), busy[0])
                os.kill(pids[address], signal.SIGKILL)
                killed[address] = address in holders
                return
            time.sleep(0.005)

    def after_batch(results, done, total):
        if done == 2:  # kill during the next batch
            threading.Thread(target=kill_when_busy, daemon=True).start()

    result = small_search(client=client, callback=after_batch)
    assert killed, "no worker was busy to be killed"
    assert_same_search(result, local)
    # the nanny restarts the worker, under a new address, so later tests have two again
    client.wait_for_workers(2, timeout=30)


def test_a_batch_whose_work_was_lost_runs_again():
    """A lost batch (KilledWorker, FutureCancelledError) runs again up to `retries` times and
    adds nothing to the results before it succeeds; past them the error reaches the caller."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    from fastmlp.model_selection import BatchedRandomizedSearchCV

    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    estimator = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    space = {"alpha": loguniform(1e-5, 1e-1)}

    def search(failures, retries):
        left = list(failures)
        calls = []

        class Flaky(BatchedRandomizedSearchCV):
            def _run_search(self, evaluate_candidates):
                def evaluate(candidates):
                    calls.append(len(candidates))
                    if left:
                        raise left.pop(0)
                    return evaluate_candidates(candidates)
                super()._run_search(evaluate)

        fitted = Flaky(estimator, space, n_iter=4, cv=2, random_state=0, batch_size=2,
                       retries=retries).fit(X, y)
        return fitted, calls

    reference, calls = search([], retries=0)
    assert calls == [2, 2]
    killed = KilledWorker("fit-1", None, 3)
    cancelled = FutureCancelledError("fit-2", "lost dependencies")
    flaky, calls = search([killed, cancelled], retries=2)
    assert calls == [2, 2, 2, 2]  # the first batch three times
    assert flaky.cv_results_["params"] == reference.cv_results_["params"]
    np.testing.assert_array_equal(flaky.cv_results_["mean_test_score"],
                                  reference.cv_results_["mean_test_score"])
    with pytest.raises(FutureCancelledError):
        search([cancelled, cancelled], retries=1)


def test_threads_in_workers():
    """A worker's tasks share its threads: one task alone trains on threads_per_worker threads
    (Dask's nanny sets OMP_NUM_THREADS=1, which would leave it one), two at once one each."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert client.submit(_threads).result() == min(2, available_cores())
        both = client.gather([client.submit(_threads_with_another_task, pure=False)
                              for _ in range(2)])
        assert both == [1, 1]


def test_dask_ml_incremental_partial_fit_on_blocks():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = make_classification(n_samples=400, n_features=8, random_state=0)
    model = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, n_threads=1)
    incremental = wrappers.Incremental(model, shuffle_blocks=False)
    with dask.config.set(scheduler="synchronous"):  # in this process, whatever client exists
        incremental.fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100),
                        classes=[0, 1])
    assert not hasattr(model, "coefs_")  # Incremental trained a copy
    # the same as partial_fit on each block in order
    by_hand = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, n_threads=1)
    for start in range(0, 400, 100):
        by_hand.partial_fit(X[start:start + 100], y[start:start + 100], classes=[0, 1])
    trained = incremental.estimator_
    assert trained.n_iter_ == by_hand.n_iter_ == 4
    np.testing.assert_array_equal(trained.predict_proba(X), by_hand.predict_proba(X))
    with dask.config.set(scheduler="synchronous"):
        predicted = incremental.predict(da.from_array(X, chunks=100)).compute()
    np.testing.assert_array_equal(predicted, by_hand.predict(X))


def _hyperband_works(client):
    """Whether dask-ml's HyperbandSearchCV runs at all with this dask: on dask 2026.8 it fails
    for every estimator, scikit-learn's SGDClassifier included, inside dask.compute."""
    from dask_ml.model_selection import HyperbandSearchCV
    from sklearn.linear_model import SGDClassifier

    import dask.array as da

    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    try:
        HyperbandSearchCV(SGDClassifier(), {"alpha": loguniform(1e-5, 1e-1)}, max_iter=3,
                          random_state=0).fit(da.from_array(X, chunks=50),
                                              da.from_array(y, chunks=50), classes=[0, 1])
    except RuntimeError as error:
        return str(error)
    return None


def test_dask_ml_hyperband_search(client):
    pytest.importorskip("dask_ml")
    import dask
    import dask.array as da
    from dask_ml.model_selection import HyperbandSearchCV

    broken = _hyperband_works(client)
    if broken:
        pytest.skip(f"dask-ml's HyperbandSearchCV is broken upstream with dask "
                    f"{dask.__version__} for every estimator (scikit-learn's SGDClassifier "
                    f"too): {broken}")
    X, y = make_classification(n_samples=400, n_features=8, random_state=0)
    search = HyperbandSearchCV(MLPClassifier(hidden_layer_sizes=(8,), random_state=0),
                               {"learning_rate_init": loguniform(1e-3, 1e-1)}, max_iter=9,
                               random_state=0)
    search.fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100), classes=[0, 1])
    assert 0.5 < search.best_score_ <= 1
    assert search.best_estimator_.n_iter_ >= 1

