"""Hyperparameter search as the lecture recommends: random search over distributions of likely
values (log-uniform for the learning rate and the weight decay), with the number of epochs left to
early stopping in every trial; on this machine's cores or on a Dask cluster."""
import sys
from numbers import Integral

import numpy as np
from scipy.stats import loguniform, randint, uniform
from sklearn.base import clone
from sklearn.model_selection import ParameterSampler, RandomizedSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state, indexable

from .network import Network

__all__ = ["random_search", "default_search_space", "HiddenLayerSizes",
           "BatchedRandomizedSearchCV"]


class HiddenLayerSizes:
    """A distribution over ``hidden_layer_sizes``: a depth, then that many layers of one width.

    Draws the number of hidden layers from ``depth`` and the units per layer from ``units``
    (every hidden layer of a draw has the same width), so that scikit-learn's searches can
    sample the architecture like any other hyperparameter.

    Parameters
    ----------
    units : scipy.stats distribution, list of int or int, default=randint(100, 1001)
        Units per hidden layer (integers 100 to 1000, as in the lecture's example); a list
        is drawn from uniformly.
    depth : scipy.stats distribution, list of int or int, default=randint(1, 4)
        Number of hidden layers (1 to 3).

    See Also
    --------
    default_search_space : The space this is part of.

    Examples
    --------
    >>> from scipy.stats import randint
    >>> from fastmlp.model_selection import HiddenLayerSizes
    >>> HiddenLayerSizes(units=randint(10, 20), depth=2).rvs(random_state=0)
    (15, 15)
    """

    def __init__(self, units=None, depth=None):
        self.units = randint(100, 1001) if units is None else units
        self.depth = randint(1, 4) if depth is None else depth

    def rvs(self, size=None, random_state=None):
        """Draw layer sizes, as a scipy.stats distribution's ``rvs`` does.

        Parameters
        ----------
        size : int or tuple of int, optional
            How many draws; None draws one.
        random_state : int, RandomState instance or None, default=None
            The generator, as scikit-learn's ``check_random_state`` takes it.

        Returns
        -------
        sizes : tuple of int or list of tuple of int
            One draw (the units of each hidden layer), or a list of ``size`` draws.
        """
        rng = check_random_state(random_state)
        if size is not None:
            return [self.rvs(random_state=rng) for _ in range(int(np.prod(size)))]
        depth = _draw(self.depth, rng)
        width = _draw(self.units, rng)
        if depth < 1 or width < 1:
            raise ValueError(f"HiddenLayerSizes drew depth {depth} and {width} units per layer; "
                             "both must be at least 1")
        return (width,) * depth

    def __repr__(self):
        return f"HiddenLayerSizes(units={_describe(self.units)}, depth={_describe(self.depth)})"


def _draw(distribution, rng):
    """An int from a distribution (anything with rvs), a list of choices, or an int."""
    if hasattr(distribution, "rvs"):
        return int(distribution.rvs(random_state=rng))
    if isinstance(distribution, Integral):
        return int(distribution)
    choices = list(distribution)
    return int(choices[rng.randint(len(choices))])


def _describe(distribution):
    if not hasattr(distribution, "rvs"):
        return repr(distribution)
    frozen = getattr(distribution, "dist", None)
    return f"{frozen.name}{distribution.args}" if frozen is not None else repr(distribution)


def default_search_space():
    """The lecture's default search space for a fastmlp estimator, as scipy distributions.

    Random search samples each hyperparameter independently from a distribution of likely
    values; the learning rate and the weight decay vary over orders of magnitude, so they are
    log-uniform. The number of epochs is not searched: every trial of :func:`random_search`
    stops early on its validation score.

    Returns
    -------
    dict
        ``hidden_layer_sizes``: :class:`HiddenLayerSizes` (1 to 3 layers of 100 to 1000
        units); ``learning_rate_init``: log-uniform on [1e-3, 1e-2]; ``alpha`` (L2 weight
        decay): log-uniform on [1e-6, 1e-2]; ``dropout``: uniform on [0, 0.5]. A new dict on
        every call: change it freely.

    See Also
    --------
    random_search : Search this space.

    Examples
    --------
    >>> from fastmlp.model_selection import default_search_space
    >>> sorted(default_search_space())
    ['alpha', 'dropout', 'hidden_layer_sizes', 'learning_rate_init']
    """
    return {"hidden_layer_sizes": HiddenLayerSizes(),
            "learning_rate_init": loguniform(1e-3, 1e-2),
            "alpha": loguniform(1e-6, 1e-2),
            "dropout": uniform(0.0, 0.5)}


class BatchedRandomizedSearchCV(RandomizedSearchCV):
    """RandomizedSearchCV of scikit-learn, run in batches of candidates with a report after each.

    The candidates are those RandomizedSearchCV draws (the same ``random_state`` gives the
    same ones and the same results); they are evaluated ``batch_size`` at a time (each batch's
    fits all in parallel), and ``callback(results, n_done, n_candidates)`` is called after each
    batch with the ``cv_results_`` so far. :func:`random_search` builds one; the other
    parameters are RandomizedSearchCV's.

    Parameters
    ----------
    estimator : estimator object
        The estimator each candidate is a clone of.
    param_distributions : dict or list of dict
        Parameter names to distributions (with an ``rvs`` method) or lists to sample from.
    n_iter : int, default=10
        The number of candidates drawn.
    scoring : str, callable, list, tuple, dict or None, default=None
        How each candidate is scored; None is the estimator's ``score``.
    n_jobs : int, default=None
        Fits run in parallel, as joblib's ``n_jobs``.
    refit : bool, str or callable, default=True
        Refit the best candidate on all the data.
    cv : int, cross-validation generator or iterable, default=None
        The cross-validation splits.
    verbose : int, default=0
        RandomizedSearchCV's verbosity.
    pre_dispatch : int or str, default="2*n_jobs"
        How many fits joblib dispatches ahead.
    random_state : int, RandomState instance or None, default=None
        Draws the candidates.
    error_score : "raise" or float, default=np.nan
        The score of a fit that fails.
    return_train_score : bool, default=False
        Also score each candidate on its training folds.
    batch_size : int, optional
        Candidates per batch; by default all at once.
    callback : callable, optional
        Called in this process after each batch (never pickled with the search).
    retries : int, default=0
        How many times to run a batch again when its fits were lost with a Dask worker (a
        worker that dies takes with it the data joblib scattered to it, and the fits that
        needed that data are cancelled). A batch that fails adds nothing to the results, so
        running it again gives the results it would have given.

    See Also
    --------
    random_search : The lecture's random search with this class.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import make_regression
    >>> from fastmlp import MLPRegressor
    >>> from fastmlp.model_selection import BatchedRandomizedSearchCV
    >>> X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    >>> search = BatchedRandomizedSearchCV(
    ...     MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
    ...     {"alpha": loguniform(1e-5, 1e-1)}, n_iter=4, cv=2, random_state=0, batch_size=2,
    ...     callback=lambda results, done, total: print(f"{done}/{total} trials"))
    >>> search = search.fit(X, y)
    2/4 trials
    4/4 trials
    """

    def __init__(self, estimator, param_distributions, *, n_iter=10, scoring=None, n_jobs=None,
                 refit=True, cv=None, verbose=0, pre_dispatch="2*n_jobs", random_state=None,
                 error_score=np.nan, return_train_score=False, batch_size=None, callback=None,
                 retries=0):
        super().__init__(estimator, param_distributions, n_iter=n_iter, scoring=scoring,
                         n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
                         pre_dispatch=pre_dispatch, random_state=random_state,
                         error_score=error_score, return_train_score=return_train_score)
        self.batch_size = batch_size
        self.callback = callback
        self.retries = retries

    def __getstate__(self):
        # scikit-learn sends the search along with every fit (as its caller), to Dask workers
        # too; the callback, which may hold the client or a lock, stays in this process
        return dict(super().__getstate__(), callback=None)

    def _run_search(self, evaluate_candidates):
        candidates = list(ParameterSampler(self.param_distributions, self.n_iter,
                                           random_state=self.random_state))
        step = max(1, int(self.batch_size or len(candidates)))
        lost = _lost_work_errors()
        for start in range(0, len(candidates), step):
            for attempt in range(int(self.retries) + 1):
                try:
                    # evaluate_candidates accumulates: the results hold every batch so far
                    results = evaluate_candidates(candidates[start:start + step])
                    break
                except lost:
                    if attempt == self.retries:
                        raise
            if self.callback is not None:
                self.callback(results, min(start + step, len(candidates)), len(candidates))


def _lost_work_errors():
    """The errors of fits lost with a Dask worker (none without distributed)."""
    if "distributed" not in sys.modules:
        return ()
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    return (KilledWorker, FutureCancelledError)


def _network_step(estimator):
    """The parameter prefix of the fastmlp estimator in estimator ("" or "step__")."""
    if isinstance(estimator, Network):
        return ""
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[-1][1], Network):
        return estimator.steps[-1][0] + "__"
    raise TypeError("random_search needs a fastmlp estimator (Network, MLPClassifier, "
                    "MLPRegressor) or a Pipeline ending in one; got "
                    f"{type(estimator).__name__}")


def random_search(estimator, X, y, *, param_distributions=None, n_iter=20, cv=3, scoring=None,
                  client=None, n_jobs=None, random_state=None, refit=True, callback=None,
                  **search_params):
    """Random search over hyperparameters with early stopping in every trial, locally or on Dask.

    Runs scikit-learn's RandomizedSearchCV, as the lecture recommends: each trial samples every
    hyperparameter independently (by default from :func:`default_search_space`), trains with
    ``early_stopping=True`` so that the number of epochs is found on the trial's own held-out
    ``validation_fraction`` (``max_iter`` is only the upper bound), and is scored by
    cross-validation. Given a Dask ``client`` the fits run on that cluster through joblib's
    "dask" backend; otherwise on the local cores with ``n_jobs`` processes.

    Each fit uses the threads it is given (see :func:`fastmlp._config.default_threads`): in a
    Dask worker its share of the worker's ``threads_per_worker``, in one of ``n_jobs`` local
    processes its share of the cores, so the search never runs more threads than cores.
    Training is deterministic given the estimator's ``random_state``, so the search finds the
    same results wherever it runs, and a Dask worker lost mid-search only delays it: the
    scheduler reruns its fits elsewhere, and a batch whose data was lost with the worker
    runs again (up to 3 times), its data sent again. joblib sends X and y to one worker per
    batch, and the others fetch them from it.

    Parameters
    ----------
    estimator : Network, MLPClassifier, MLPRegressor, or Pipeline ending in one
        The model to tune (cloned, never changed).
    X : array-like of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets.
    param_distributions : dict, optional
        Hyperparameter name to a scipy.stats distribution (anything with ``rvs``) or a list;
        names are the estimator's (a Pipeline's fastmlp step is prefixed for you when the
        default space is used). Default: :func:`default_search_space`.
    n_iter : int, default=20
        Number of trials (sampled configurations).
    cv : int or cross-validation generator, default=3
        As in scikit-learn.
    scoring : str or callable, optional
        As in scikit-learn; by default the estimator's ``score``.
    client : distributed.Client or str, optional
        A Dask client, or the address of a scheduler ("tcp://host:8786") to connect to for
        the search (and disconnect from after it).
    n_jobs : int, optional
        Local processes (without client); with a client every worker thread is used.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampling of the trials.
    refit : bool, default=True
        Refit the best configuration on all of X (in this process).
    callback : callable, optional
        ``callback(results, n_done, n_iter)`` after each batch of trials (one batch per
        parallel slot), with the ``cv_results_`` so far: to report progress.
    **search_params
        Other parameters of RandomizedSearchCV (``return_train_score``, ``error_score``,
        ``verbose``, ...).

    Returns
    -------
    BatchedRandomizedSearchCV
        The fitted search, a RandomizedSearchCV: ``best_params_``, ``best_score_``,
        ``best_estimator_`` (with refit), ``cv_results_``.

    Raises
    ------
    TypeError
        When estimator is not a fastmlp estimator or a Pipeline ending in one.
    ValueError
        As RandomizedSearchCV raises for bad parameters or data.

    See Also
    --------
    default_search_space : The lecture's default distributions.
    sklearn.model_selection.RandomizedSearchCV : What runs the search.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import make_classification
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.model_selection import HiddenLayerSizes, random_search
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> space = {"hidden_layer_sizes": HiddenLayerSizes(units=8, depth=1),
    ...          "learning_rate_init": loguniform(1e-3, 1e-1)}
    >>> search = random_search(MLPClassifier(max_iter=30, random_state=0), X, y,
    ...                        param_distributions=space, n_iter=3, cv=2, random_state=0)
    >>> sorted(search.best_params_)
    ['hidden_layer_sizes', 'learning_rate_init']
    >>> bool(0.5 < search.best_score_ <= 1)
    True
    """
    prefix = _network_step(estimator)
    if param_distributions is None:
        param_distributions = {prefix + name: value
                               for name, value in default_search_space().items()}
    estimator = clone(estimator).set_params(**{prefix + "early_stopping": True})
    if client is None:
        from joblib import effective_n_jobs

        search = BatchedRandomizedSearchCV(
            estimator, param_distributions, n_iter=n_iter, scoring=scoring, n_jobs=n_jobs,
            refit=refit, cv=cv, random_state=random_state, callback=callback,
            batch_size=effective_n_jobs(n_jobs), **search_params)
        return search.fit(X, y)

    from distributed import Client
    from joblib import parallel_config

    own_client = isinstance(client, str)
    if own_client:
        client = Client(client, set_as_default=False)
    try:
        slots = sum(client.nthreads().values())
        if slots < 1:
            raise ValueError(f"the Dask cluster at {client.scheduler.address} has no workers")
        search = BatchedRandomizedSearchCV(
            estimator, param_distributions, n_iter=n_iter, scoring=scoring, n_jobs=-1,
            refit=refit, cv=cv, random_state=random_state, callback=callback,
            batch_size=slots, retries=3, **search_params)
        # No scatter=[X, y]: joblib's once-per-search broadcast does not keep a copy on every
        # worker (distributed's active memory manager drops the spare replicas within seconds,
        # measured on 2026.8), and a batch that lost the one worker still holding them failed
        # on every retry, which reused the lost keys. Without it joblib scatters X and y with
        # each batch (each Parallel call) under fresh keys, so a retried batch sends them again.
        X, y = indexable(X, y)
        with parallel_config(backend="dask", client=client):
            return search.fit(X, y)
    finally:
        if own_client:
            client.close()
