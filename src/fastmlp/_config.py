"""fastmlp.show_config(): what this build of fastmlp runs with."""
from threadpoolctl import threadpool_info

from . import _core
from .network import available_cores


def show_config():
    """Print version, precisions, OpenMP, threads and the BLAS in use."""
    from . import __version__

    lines = [
        f"fastmlp {__version__}",
        "precision: float32 (default), float64",
        f"OpenMP: {'on' if _core.openmp_enabled() else 'off (single-threaded build)'}",
        "products: " + (f"fastmlp's register tiles ({_core.tiles_in_use()}), BLAS for small ones"
                        if _core.tiles_in_use() else "BLAS (no AVX-512 or AVX2 tiles in use)"),
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
