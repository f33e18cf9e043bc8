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
#include "train.h"
#include "workspace.c"
#include "step.c"
#include "batch.c"
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

int64_t fastmlp_blas_calls = 0;

/* Whether one batch of B rows sends a product to BLAS: forward_backward's products, slab by
 * slab, cut as it cuts them (batch.c, train.h), each (M rows, N columns, K terms) tested as gemm and
 * the *_part functions test it. */
static int fastmlp_batch_uses_blas(const fastmlp_net *net, const fastmlp_optim *opt, int B,
                                   int P, int sparse, int kind)
{
    const int L = net->n_layers, *u = net->units;
    int64_t lo, hi;
    for (int l = 0; l < L; l++) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        if (l == 0 && sparse) continue;  /* its own loops, and no dJ/dh below it */
        for (int part = 0; part < P; part++) {
            /* forward: by W's rows (two parts), its columns, or the batch's rows */
            if (fastmlp_forward_by_inputs(P, n_in, n_out, B, hidden, 0)) {
                fastmlp_slab(n_in, part, 2, &lo, &hi);
                if (fastmlp_to_blas(kind, B, n_out, hi - lo, n_out)) return 1;
            } else if (fastmlp_forward_by_columns(P, n_out, B, 0)) {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                if (fastmlp_to_blas(kind, B, hi - lo, n_in, n_out)) return 1;
            } else {
                fastmlp_slab(B, part, P, &lo, &hi);
                if (fastmlp_to_blas(kind, hi - lo, n_out, n_in, n_out)) return 1;
            }
            /* dW (n_in, n_out) by its rows or its columns, unless stepped in backward (whose
             * rows the tiles take) */
            if (fastmlp_layer_steps(net, opt, sparse, P, kind, l)) {
                /* tiled */
            } else if (fastmlp_dw_by_inputs(n_in, n_out)) {
                fastmlp_slab(n_in, part, P, &lo, &hi);
                if (fastmlp_to_blas(kind, hi - lo, n_out, B, n_out)) return 1;
            } else {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                if (fastmlp_to_blas(kind, n_in, hi - lo, B, n_out)) return 1;
            }
            if (l == 0) continue;
            /* dJ/dh (B, n_in) of the layer below, by its columns or the batch's rows */
            if (fastmlp_backward_input_by_columns(P, n_in, B)) {
                fastmlp_slab(n_in, part, P, &lo, &hi);
                if (fastmlp_to_blas(kind, B, hi - lo, n_out, n_in)) return 1;
            } else {
                fastmlp_slab(B, part, P, &lo, &hi);
                if (fastmlp_to_blas(kind, hi - lo, n_in, n_out, n_in)) return 1;
            }
        }
    }
    return 0;
}

int64_t fastmlp_stored_gradient(const fastmlp_net *net, const fastmlp_optim *opt, int n_parts,
                                int sparse)
{
    const int P = n_parts > 0 ? n_parts : 1;
    int64_t lo, hi, stored = net->n_trainable;
    fastmlp_fused_range(net, opt, sparse, P, fastmlp_tiles_on, &lo, &hi);
    stored -= hi - lo;
    for (int l = 0; l < net->n_layers; l++)
        if (fastmlp_layer_steps(net, opt, sparse, P, fastmlp_tiles_on, l))
            stored -= (int64_t)net->units[l] * net->units[l + 1];
    return stored;
}

int fastmlp_training_uses_blas(const fastmlp_net *net, const fastmlp_optim *opt, int64_t n,
                               int batch_size, int n_parts, int sparse)
{
    /* layer health's recomputed gradient under fused momentum is a BLAS product (once an epoch,
     * but then inside the OpenMP threads) */
    const int P = n_parts > 0 ? n_parts : 1, kind = fastmlp_tiles_on;
    if (fastmlp_fuses_momentum(net, opt, sparse, P, kind) && opt->momentum != 0) return 1;
    /* every batch has batch_size rows but the last (fastmlp_batch_rows) */
    const int64_t n_batches = fastmlp_epoch_batches(n, batch_size, net->batch_norm);
    if (n_batches <= 0) return 0;
    const int first = fastmlp_batch_rows(n, batch_size, 0, n_batches);
    const int last = fastmlp_batch_rows(n, batch_size, n_batches - 1, n_batches);
    return fastmlp_batch_uses_blas(net, opt, first, P, sparse, kind)
           || (last != first && fastmlp_batch_uses_blas(net, opt, last, P, sparse, kind));
}
