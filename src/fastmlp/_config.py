"""fastmlp.show_config(): what this build of fastmlp runs with; default_threads(): how many
threads an estimator with n_threads=None uses; the cores this process may use, and BLAS kept
to one thread while ours run."""
import os
import sys

import threadpoolctl
from threadpoolctl import OpenBLASController, ThreadpoolController, threadpool_info

from . import _core


# each thread has its own scratch memory, so the count is bounded well below the bridge's int
MAX_THREADS = 1024
_BLAS = None
# the count of this thread's limits that hold OpenBLAS's controlling thread (threadpoolctl 3.x)
_OWNERSHIP = getattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP", None)


def available_cores():
    """The cores this process may run on (its CPU affinity; all of them off Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_single_threaded():
    """BLAS capped at one thread while our OpenMP threads run it on their own slabs: two thread
    pools spinning on the same cores slow each other down (docs: C design, threads). A context
    manager that sets each BLAS library not at one thread already to one, then back."""
    global _BLAS
    if _BLAS is None:
        # the BLAS libraries only (not OpenMP's, which our threads are)
        _BLAS = ThreadpoolController().select(user_api="blas")
    if _OWNERSHIP is None and hasattr(OpenBLASController, "clear_controlling_thread"):
        return _BLAS.limit(limits=1, user_api="blas")  # a threadpoolctl unlike 3.x's
    return _OneBlasThread(_BLAS.lib_controllers)


class _OneBlasThread:
    """What threadpoolctl's limit(limits=1, user_api="blas") does, at about half its cost
    (its limit() first builds the info dict of every library: 29 -> 12-18 us warm, with
    numpy's and scipy's OpenBLAS loaded): read each library's count, set the ones above 1 to
    1, restore those. Through threadpoolctl's controllers, so that OpenBLAS's process-wide pool keeps
    one controlling Python thread, held while any limit of this thread is in force."""

    __slots__ = ("libraries", "restore")

    def __init__(self, libraries):
        self.libraries, self.restore = libraries, []

    def __enter__(self):
        for library in self.libraries:
            threads = library.get_num_threads()
            if threads is not None and threads != 1:
                library.set_num_threads(1)
                self.restore.append((library, threads))
        if _OWNERSHIP is not None:
            _OWNERSHIP.increment()
        return self

    def __exit__(self, *exc):
        for library, threads in self.restore:
            library.set_num_threads(threads)
        if _OWNERSHIP is not None:
            _OWNERSHIP.decrement()
        return False


def _products_line(kind):
    """What runs a dense layer's products under the tiles `kind` (_core.tiles_in_use())."""
    if not kind:
        return "BLAS (no AVX-512 or AVX2 tiles in use)"
    if kind == "avx2":  # csrc/fastmlp.h, fastmlp_tiles_run
        return (f"fastmlp's register tiles (avx2) up to {_core.TILE_AVX2_MAX_COLS} columns wide, "
                "BLAS for small and wider ones")
    return f"fastmlp's register tiles ({kind}), BLAS for small ones"


def show_config():
    """Print what this build of fastmlp runs with.

    One line each for the version, the precisions, whether the kernels were built with
    OpenMP, whether the dense products run on fastmlp's AVX-512 register tiles or on BLAS,
    the default thread count, and every BLAS library loaded in the process with its own
    thread count. ``python -m fastmlp config`` prints the same. Include it in a bug report.

    See Also
    --------
    MLPClassifier : Its ``n_threads`` parameter caps the threads of one estimator.

    Examples
    --------
    >>> import fastmlp
    >>> fastmlp.show_config()  # doctest: +ELLIPSIS
    fastmlp ...
    precision: float32 (default), float64
    OpenMP: ...
    products: ...
    threads: ... by default ...
    BLAS: ...
    """
    from . import __version__
    lines = [
        f"fastmlp {__version__}",
        "precision: float32 (default), float64",
        f"OpenMP: {'on' if _core.openmp_enabled() else 'off (single-threaded build)'}",
        "products: " + _products_line(_core.tiles_in_use()),
        f"threads: {default_threads()} by default "
        f"(OpenMP max {_core.max_threads()}, {available_cores()} cores available); "
        "set n_threads= on an estimator",
    ]
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    for lib in blas:
        lines.append(f"BLAS: {lib.get('internal_api')} {lib.get('version')} "
                     f"({lib.get('threading_layer', '?')} threading, "
                     f"{lib.get('num_threads')} threads) at {lib.get('filepath')}")
    if not blas:
        lines.append("BLAS: not loaded yet")
    print("\n".join(lines))


def default_threads():
    """The number of threads an estimator with ``n_threads=None`` trains and predicts with.

    Never more than the cores this process may run on (its CPU affinity), and:

    - inside a Dask worker, the worker's share of its own threads: ``nthreads`` (the
      ``threads_per_worker`` it was started with) divided by the tasks it is running at the
      moment, at least 1. Dask's nanny sets ``OMP_NUM_THREADS=1`` in its workers, which would
      leave a worker started with 4 threads training one model on one; and 4 tasks at once on
      such a worker each train on one thread, so the worker never runs more threads than it
      was given;
    - elsewhere, OpenMP's limit for this process: ``OMP_NUM_THREADS``, or the limit that
      threadpoolctl sets (``threadpool_limits(limits=n, user_api="openmp")``, which joblib's
      loky workers use to give each of ``n_jobs`` processes its share of the cores, so a
      scikit-learn search with ``n_jobs`` does not oversubscribe them either).

    An explicit ``n_threads`` on the estimator overrides all of this.

    Returns
    -------
    int
        At least 1.

    See Also
    --------
    show_config : The build, and the default thread count in this process.

    Examples
    --------
    >>> from threadpoolctl import threadpool_limits
    >>> from fastmlp._config import default_threads
    >>> with threadpool_limits(limits=1, user_api="openmp"):
    ...     default_threads()
    1
    """
    share = _dask_worker_share()
    limit = share if share is not None else _core.max_threads()
    return max(1, min(limit, available_cores()))


def _dask_worker_share():
    """Threads of the Dask worker running this task over the tasks it runs now; None outside
    a worker (and without ever importing distributed)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        state = get_worker().state
    except ValueError:  # not in a worker's task
        return None
    return state.nthreads // max(1, state.executing_count)
