"""fastmlp.show_config(): what this build of fastmlp runs with."""
from threadpoolctl import threadpool_info

from . import _core
from .network import available_cores


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
        "products: " + ("fastmlp's register tiles (AVX-512), BLAS for small ones"
                        if _core.tiles_available() else "BLAS (no AVX-512 tiles on this CPU)"),
        f"threads: {min(_core.max_threads(), available_cores())} by default "
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
