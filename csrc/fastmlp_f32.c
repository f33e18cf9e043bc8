/* fastmlp_f32.c: every kernel compiled with real = float. The kernel sources are written once over
 * `real` and FN() (see fastmlp.h); fastmlp_f64.c compiles the same sources for the other type. */
#include <math.h>
#include <tgmath.h>   /* exp, tanh, sqrt, ... pick the float version from their argument */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fastmlp.h"
#include "rng.h"

#define real float
#define FASTMLP_REAL_IS_FLOAT 1  /* picks the vector intrinsics of dense.c's tiles */
#define FN(name) name##_f32
#include "dense.c"
#include "batchnorm.c"
#include "loss.c"
#include "optim.c"
#include "input.c"
#include "train.c"
#include "predict.c"

/* The type-independent part of the API, defined once, here. */
int fastmlp_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fastmlp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Off until the bridge turns it on at import; on only where the tiles can run. */
static int fastmlp_tiles_on = 0;

int fastmlp_tiles_available(void)
{
#ifdef FASTMLP_TILES
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int fastmlp_tiles_enabled(void)
{
    return fastmlp_tiles_on;
}

int fastmlp_set_tiles(int enabled)
{
    const int before = fastmlp_tiles_on;
    fastmlp_tiles_on = enabled && fastmlp_tiles_available();
    return before;
}
