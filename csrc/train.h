/* train.h: the rules that training's files (workspace.c, step.c, batch.c, train.c) and
 * fastmlp_training_uses_blas share: how a batch's work is cut into parts, which products the
 * register tiles take, the optimizer's chunk, the pack scratch's guard. They do not depend on
 * `real`, so each translation unit holds them once (FASTMLP_TRAIN_ONCE), whichever file
 * includes them first; fastmlp_tiles_take calls tiles.c's fastmlp_tiles_run, so they come
 * after tiles.c.
 *
 * Threads: OpenMP owns the cores and every thread runs the register tiles (dense.c), or
 * single-threaded BLAS where they do not run, on the slabs of the parts it claims (network.py
 * caps BLAS at one thread around the calls that send it any product, fastmlp_training_uses_blas,
 * so two pools never fight):
 *   forward and dJ/dh:   parts of the batch's rows  (rows are independent until the loss),
 *                        of W's columns, or (forward on two parts) of W's rows, then summed
 *   dW:                  parts of W's rows or columns, whichever dimension is larger
 *   db, batch-norm sums: slabs of columns           (a reduction over rows per column)
 *   optimizer step:      fixed chunks of the flat buffer
 * so no two parts ever write the same memory, and every reduction runs in an order that does
 * not depend on the thread count or on which thread runs a part: training is bitwise the same with 1 or n threads. The GEMMs
 * are cut into n_parts slabs fixed by the caller (fastmlp_work_parts), never by the thread
 * count, because BLAS does not promise the same bits for a slab of a product as for the whole:
 * OpenBLAS picks its kernels by shape, and measured here a row or column split at a random point
 * changed some bits of 25-75% of products. (Fixed small blocks, 32 rows, would do it too, but
 * every GEMM call packs the whole of W again: 8 packings of a 1024 x 1024 W per 256-row batch.) */

#ifndef FASTMLP_TRAIN_ONCE
#define FASTMLP_TRAIN_ONCE
#include "team.h"

#define FASTMLP_STEP_CHUNK 8192   /* elements per optimizer chunk: a few L2-sized streams */

static inline int64_t fastmlp_align(int64_t n) { return (n + 15) & ~(int64_t)15; }
static inline int64_t fastmlp_clamp(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}
/* [lo, hi): slab `part` of `parts` of n */
static inline void fastmlp_slab(int64_t n, int part, int parts, int64_t *lo, int64_t *hi)
{
    *lo = n * part / parts;
    *hi = n * (part + 1) / parts;
}
/* dW (n_in, n_out) is cut by its rows (inputs) when it has at least as many rows as columns,
 * else by its columns: the backward pass and the optimizer's chunk owners both follow this. */
static inline int fastmlp_dw_by_inputs(int n_in, int n_out) { return n_in >= n_out; }
/* the widest of the slabs fastmlp_slab cuts n into */
static inline int64_t fastmlp_slab_most(int64_t n, int parts) { return (n + parts - 1) / parts; }
/* The rows of batch `batch` of an epoch of n rows in n_batches batches: batch_size each, the
 * last takes the rest (with batch norm, a trailing row besides) */
static inline int fastmlp_batch_rows(int64_t n, int batch_size, int64_t batch, int64_t n_batches)
{
    return (int)(batch == n_batches - 1 ? n - batch * batch_size : batch_size);
}
/* Whether the register tiles take a product of M output rows (a slab of the batch's rows, or
 * of dW's rows) and N columns of a result `width` columns wide (the whole product's, whatever
 * the slab) under the tiles `kind`: a product too small for a tile, or one the AVX2 tiles leave
 * to BLAS (fastmlp_tiles_run), goes to BLAS. The one rule of the trainer's products
 * (forward_part, backward_params_part, backward_input_part) and of fastmlp_training_uses_blas;
 * pack_size applies it to dW's widest slab, and fastmlp_tiles_run with its own bounds on the
 * rows to forward's and dJ/dh's cuts. */
static inline int fastmlp_tiles_take(int kind, int64_t M, int64_t N, int width)
{
#ifdef FASTMLP_TILES
    return fastmlp_tiles_run(kind, width) && M >= FASTMLP_TILE_ROWS && N > 0;
#else
    (void)kind; (void)M; (void)N; (void)width;
    return 0;
#endif
}
/* Part `part`'s share of layer l's weights where train_epoch steps them in backward (step.c's
 * layer_step_part): dW's rows [*r0, *r1), an even slab of W's rows (as the other solvers'
 * dW is cut by inputs), which are params[*e0, *e1). An optimizer chunk may lie across two
 * shares, of one layer or of two that backward steps in one phase: step.c gives its flag and
 * health sums one writer anyway. */
static inline void fastmlp_layer_share(const fastmlp_net *net, int l, int part, int parts,
                                       int64_t *e0, int64_t *e1, int64_t *r0, int64_t *r1)
{
    const int n_out = net->units[l + 1];
    fastmlp_slab(net->units[l], part, parts, r0, r1);
    *e0 = net->w_offset[l] + *r0 * n_out;
    *e1 = net->w_offset[l] + *r1 * n_out;
}
/* Whether layer l can be stepped in backward: a dense layer (a sparse first layer's dW is our
 * own loop) whose every part's rows of dW the tiles `kind` take */
static inline int fastmlp_layer_can_step(const fastmlp_net *net, int sparse, int parts,
                                         int kind, int l)
{
    if (l == 0 && sparse) return 0;
    const int n_out = net->units[l + 1];
    for (int part = 0; part < parts; part++) {
        int64_t e0, e1, r0, r1;
        fastmlp_layer_share(net, l, part, parts, &e0, &e1, &r0, &r1);
        if (e0 < e1 && !fastmlp_tiles_take(kind, r1 - r0, n_out, n_out)) return 0;
    }
    return 1;
}
/* Whether train_epoch adds SGD's dW straight into the velocity (its fused momentum, below its
 * call): plain SGD or momentum, Nesterov only at momentum 0 (the same bits as plain SGD), no
 * tied copies (they need their own gradients summed before any step), a sparse first layer
 * (whose dW is our own loop) only first in the flat buffer, where the rest can be fused --
 * and some dense layer that cannot be stepped in backward (BLAS's, or rows too few for a
 * tile): where every one can, stepping them there (fastmlp_layer_steps) is faster, since the
 * GEMM then writes a block of the gradient in cache instead of reading and writing the
 * velocity, and the step reads the velocity once (784-1024-1024-10, SGD momentum, 2 threads,
 * quiet, 6 alternating rounds: epochs -4.1%, every round faster). At momentum > 0 layer
 * health then recomputes the measured update's gradient by BLAS (health_gradient), which
 * fastmlp_training_uses_blas counts. */
static inline int fastmlp_fuses_momentum(const fastmlp_net *net, const fastmlp_optim *opt,
                                         int sparse, int parts, int kind)
{
    if (!(opt->solver == FASTMLP_SGD && (!opt->nesterov || opt->momentum == 0)
          && !net->n_tied && (!sparse || net->w_offset[0] == 0)))
        return 0;
    for (int l = sparse ? 1 : 0; l < net->n_layers; l++)
        if (!fastmlp_layer_can_step(net, sparse, parts, kind, l)) return 1;
    return 0;
}
/* [*lo, *hi): the weights whose velocity the backward GEMMs update under fused momentum (all
 * the dense layers' but a sparse first layer's, whose dW comes from our own loop, not a GEMM:
 * it keeps the plain step), or an empty range where train_epoch does not fuse */
static inline void fastmlp_fused_range(const fastmlp_net *net, const fastmlp_optim *opt,
                                       int sparse, int parts, int kind, int64_t *lo,
                                       int64_t *hi)
{
    *lo = *hi = 0;
    if (!fastmlp_fuses_momentum(net, opt, sparse, parts, kind)) return;
    *lo = sparse ? (int64_t)net->units[0] * net->units[1] : 0;
    *hi = net->n_weights;
}
/* Whether train_epoch steps layer l's weights in backward: a solver of its own (not L-BFGS)
 * that it does not fuse, no tied copies (they need their gradients summed before any step),
 * and a layer that can be stepped there */
static inline int fastmlp_layer_steps(const fastmlp_net *net, const fastmlp_optim *opt,
                                      int sparse, int parts, int kind, int l)
{
    return opt->solver >= 0 && !net->n_tied
           && !fastmlp_fuses_momentum(net, opt, sparse, parts, kind)
           && fastmlp_layer_can_step(net, sparse, parts, kind, l);
}
/* gemm (dense.c) calls BLAS for a product (M, N) with K terms, of a result `width` wide, that
 * is not empty and that the tiles do not take */
static inline int fastmlp_to_blas(int kind, int64_t M, int64_t N, int64_t K, int width)
{
    return M > 0 && N > 0 && K > 0 && !fastmlp_tiles_take(kind, M, N, width);
}
/* How forward_backward cuts a layer (n_in, n_out) of a batch of B rows over P parts. Forward:
 * by W's columns where the layer is wider than the batch (each part packs only its share of W,
 * the bigger operand), except a sparse first layer; on two parts, of a hidden layer whose dW is
 * cut by inputs, by W's rows instead (forward_by_inputs). dJ/dh of the layer below: by W's
 * rows (dJ/dh's columns) where there are more of them than batch rows. Otherwise by the
 * batch's rows. */
static inline int fastmlp_forward_by_columns(int P, int n_out, int B, int sparse_first)
{
    return P > 1 && n_out > B && !sparse_first;
}
static inline int fastmlp_forward_by_inputs(int P, int n_in, int n_out, int B, int hidden,
                                            int sparse_first)
{
    return fastmlp_forward_by_columns(P, n_out, B, sparse_first) && P == 2 && hidden
           && fastmlp_dw_by_inputs(n_in, n_out);
}
static inline int fastmlp_backward_input_by_columns(int P, int n_in, int B)
{
    return P > 1 && n_in > B;
}
/* Under AddressSanitizer each part's pack scratch is followed by a guard that context_init
 * poisons, so that a packing of more than pack_size counts stops the sanitizer run before it
 * reaches the next part's scratch: the packings write a panel's rows in order, or (the
 * transposed one) by blocks of 16 rows, so none steps over 16 rows of the widest panel (64
 * columns). Other builds have no guard. */
#if defined(__SANITIZE_ADDRESS__)
#define FASTMLP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FASTMLP_ASAN 1
#endif
#endif
#ifdef FASTMLP_ASAN
#include <sanitizer/asan_interface.h>
#define FASTMLP_PACK_GUARD 1024
#else
#define FASTMLP_PACK_GUARD 0
#endif
#endif /* FASTMLP_TRAIN_ONCE */
