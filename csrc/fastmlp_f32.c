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
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#include "rng.h"

#define real float
#define FASTMLP_REAL_IS_FLOAT 1  /* picks the vector intrinsics of tiles.c */
#define FN(name) name##_f32
#include "dense.c"
#include "tiles.c"
#include "batchnorm.c"
#include "loss.c"
#include "optim.c"
#include "input.c"
#include "corruption.c"
#include "tied.c"
#include "health.c"
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
static int fastmlp_tiles_on = FASTMLP_TILES_OFF;

int fastmlp_tiles_available(void)
{
#ifdef FASTMLP_TILES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return FASTMLP_TILES_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FASTMLP_TILES_AVX2;
#endif
    return FASTMLP_TILES_OFF;
}

int fastmlp_fma_full_width(void)
{
    static int known = -1;
    if (known < 0) {
#ifdef FASTMLP_TILES
        __builtin_cpu_init();
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        __cpuid(1, eax, ebx, ecx, edx);
        /* the family: base 15 plus the extended family, as AMD counts it */
        const unsigned family = ((eax >> 8) & 0xf) == 0xf ? 0xf + ((eax >> 20) & 0xff)
                                                          : (eax >> 8) & 0xf;
        known = __builtin_cpu_is("amd") && family >= 26;
#else
        known = 0;
#endif
    }
    return known;
}

int fastmlp_tiles_enabled(void)
{
    return fastmlp_tiles_on;
}

int fastmlp_set_tiles(int kind)
{
    const int before = fastmlp_tiles_on, best = fastmlp_tiles_available();
    fastmlp_tiles_on = kind <= FASTMLP_TILES_OFF ? FASTMLP_TILES_OFF : kind < best ? kind : best;
    return before;
}
