"""fastmlp with prediction's register tiles turned off: every layer by BLAS, as before the tiles
(csrc/tiles.c, dense_forward_tiled). It sits beside fastmlp in the inference table so that each
run shows what the tiles are worth on the machine it ran on."""
import fastmlp_


def predictor(layers, threads):
    from fastmlp import _core
    _core.set_tiles(False)
    return fastmlp_.predictor(layers, threads)


def version():
    return fastmlp_.version()
