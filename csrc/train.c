/* train.c: whole epochs of mini-batch training, and a gradient for checking (inference: predict.c).
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
/* Whether train_epoch adds SGD's dW straight into the velocity (its fused momentum, below its
 * call): plain SGD or momentum, Nesterov only at momentum 0 (the same bits as plain SGD), no
 * tied copies (they need their own gradients summed before any step), and a sparse first
 * layer (whose dW is our own loop) only first in the flat buffer, where the rest can be fused.
 * At momentum > 0 layer health then recomputes the measured update's gradient by BLAS
 * (health_gradient), which fastmlp_training_uses_blas counts. */
static inline int fastmlp_fuses_momentum(const fastmlp_net *net, const fastmlp_optim *opt,
                                         int sparse)
{
    return opt->solver == FASTMLP_SGD && (!opt->nesterov || opt->momentum == 0)
           && !net->n_tied && (!sparse || net->w_offset[0] == 0);
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
static inline int64_t fastmlp_align(int64_t n) { return (n + 15) & ~(int64_t)15; }
static inline int64_t fastmlp_clamp(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
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

/* Views into the workspace: for a batch of at most Bmax rows, the gathered input, targets and
 * weights, every layer's output H[l] (B, units[l]) (H[0] is the gathered input), the batch-norm
 * caches, and two delta buffers that backward alternates between. */
typedef struct {
    int Bmax;
    real *Y, *W, *shift_W, *colsum;
    real **H, **xhat, **bn_mean, **bn_inv_std;
    real *D[2];
    /* (parts,) each part's scratch of `pack` reals (pack_size) for what its tiled products
     * multiply by (a slab of W, of delta or of W's transpose, as dense_pack lays them out), one
     * product at a time; none under FASTMLP_TILES_OFF */
    real **packed;
    int64_t pack;
} FN(views);

/* The reals one part's pack scratch needs under the tiles `kind` (FASTMLP_TILES_OFF: none, as
 * where the build has no tiles): the most any part packs for one product, over every layer,
 * the three products and the cut forward_backward makes for a batch of B <= Bmax rows (which
 * the last batch of an epoch makes any B). A slab of n over P parts is at most
 * fastmlp_slab_most(n, P) wide, and dense_packed_size grows with both its arguments, so the
 * widest slab bounds the others with their panel padding. Per layer (n_in, n_out):
 *   forward:  nothing where the tiles read W in place (tiles_in_place); cut by columns (P > 1,
 *             n_out > B): W's (n_in, slab of n_out), or on two parts by W's rows
 *             (forward_by_inputs) its (slab of n_in, n_out); cut by rows (n_out <= B): all of W
 *   dW:       delta's (B, n_out) when cut by inputs, its (B, slab of n_out) by outputs
 *   dJ/dh:    W's transpose (n_out, slab of n_in) when cut by columns (P > 1, n_in > B), all of
 *             it (n_out, n_in) when cut by rows
 * each only where the tiles run it: a product fastmlp_tiles_run gives them (by its result's
 * width: n_out, n_out, n_in), on a slab of at least FASTMLP_TILE_ROWS rows (of the batch, or
 * of dW). A sparse first layer runs its own loops. On more than one part, a part packs a
 * whole matrix only where the batch is cut by rows: then the matrix is no wider than the batch. */
static int64_t FN(pack_size)(const fastmlp_net *net, int Bmax, int sparse, int parts, int kind)
{
    int64_t most = 0;
#ifdef FASTMLP_TILES
    if (kind == FASTMLP_TILES_OFF) return 0;
    const int P = parts, R = FASTMLP_TILE_ROWS;
    /* some batch is cut by rows with a slab of >= R rows; by columns with >= R rows */
    const int rows_tiled = fastmlp_slab_most(Bmax, P) >= R, columns_tiled = P > 1 && Bmax >= R;
#define FASTMLP_NEEDS(size) do { const int64_t s_ = (size); if (s_ > most) most = s_; } while (0)
    for (int l = 0; l < net->n_layers; l++) {
        const int n_in = net->units[l], n_out = net->units[l + 1];
        const int hidden = l < net->n_layers - 1, by_inputs = fastmlp_dw_by_inputs(n_in, n_out);
        if (l == 0 && sparse) continue;  /* and it has no dJ/dh below it */
        if (fastmlp_tiles_run(kind, n_out) && !FN(tiles_in_place)(kind, n_out)) {
            /* by columns for a batch of R <= B < n_out rows */
            if (columns_tiled && n_out > R) {
                if (P == 2 && hidden && by_inputs)
                    FASTMLP_NEEDS(FN(dense_packed_size)((int)fastmlp_slab_most(n_in, 2), n_out));
                else
                    FASTMLP_NEEDS(FN(dense_packed_size)(n_in, (int)fastmlp_slab_most(n_out, P)));
            }
            if (rows_tiled && (P == 1 || n_out <= Bmax))
                FASTMLP_NEEDS(FN(dense_packed_size)(n_in, n_out));
        }
        /* dW's widest slab: (slab of n_in, n_out) cut by inputs, (n_in, slab of n_out) else */
        const int64_t dw_rows = by_inputs ? fastmlp_slab_most(n_in, P) : n_in;
        const int dw_cols = by_inputs ? n_out : (int)fastmlp_slab_most(n_out, P);
        if (fastmlp_tiles_take(kind, dw_rows, dw_cols, n_out))
            FASTMLP_NEEDS(FN(dense_packed_size)(Bmax, dw_cols));
        if (l == 0 || !fastmlp_tiles_run(kind, n_in)) continue;
        if (columns_tiled && n_in > R)
            FASTMLP_NEEDS(FN(dense_packed_size)(n_out, (int)fastmlp_slab_most(n_in, P)));
        if (rows_tiled && (P == 1 || n_in <= Bmax))
            FASTMLP_NEEDS(FN(dense_packed_size)(n_out, n_in));
    }
#undef FASTMLP_NEEDS
#else
    (void)net; (void)Bmax; (void)sparse; (void)parts; (void)kind;
#endif
    return most;
}

/* Lay the views out from `base` (or only count when base is NULL); returns the size in reals. */
static int64_t FN(lay_out)(FN(views) *v, real *base, const fastmlp_net *net, int Bmax,
                           int sparse, int parts, int tiles)
{
    const int L = net->n_layers;
    const int *u = net->units;
    int64_t at = 0;
    int max_hidden = 1;
    for (int l = 1; l < L; l++) max_hidden = u[l] > max_hidden ? u[l] : max_hidden;
#define FASTMLP_TAKE(ptr, count) do { if (base) (ptr) = base + at; at += fastmlp_align(count); } while (0)
    if (sparse) { if (base) v->H[0] = NULL; }
    else FASTMLP_TAKE(v->H[0], (int64_t)Bmax * u[0]);
    for (int l = 1; l <= L; l++) FASTMLP_TAKE(v->H[l], (int64_t)Bmax * u[l]);
    FASTMLP_TAKE(v->Y, (int64_t)Bmax * u[L]);
    FASTMLP_TAKE(v->W, Bmax);
    FASTMLP_TAKE(v->shift_W, u[1]);
    FASTMLP_TAKE(v->colsum, u[1]);
    FASTMLP_TAKE(v->D[0], (int64_t)Bmax * max_hidden);
    FASTMLP_TAKE(v->D[1], (int64_t)Bmax * max_hidden);
    if (net->batch_norm)
        for (int l = 0; l < L - 1; l++) {
            FASTMLP_TAKE(v->xhat[l], (int64_t)Bmax * u[l + 1]);
            FASTMLP_TAKE(v->bn_mean[l], u[l + 1]);
            FASTMLP_TAKE(v->bn_inv_std[l], u[l + 1]);
        }
    const int64_t pack = FN(pack_size)(net, Bmax, sparse, parts, tiles);
    if (pack > 0)
        for (int part = 0; part < parts; part++)
            FASTMLP_TAKE(v->packed[part], pack + FASTMLP_PACK_GUARD);
#undef FASTMLP_TAKE
    if (base) {
        v->Bmax = Bmax;
        v->pack = pack;
    }
    return at;
}

/* Batch-norm needs >= 2 rows per batch: a last batch of one row joins the one before it. */
static int FN(max_batch)(const fastmlp_net *net, int batch_size)
{
    return batch_size + (net->batch_norm ? 1 : 0);
}

int64_t FN(workspace_size)(const fastmlp_net *net, int batch_size, int n_parts, int sparse)
{
    return FN(lay_out)(NULL, NULL, net, FN(max_batch)(net, batch_size), sparse,
                       n_parts > 0 ? n_parts : 1, fastmlp_tiles_enabled());
}

/* Everything one batch step needs; shared by the threads of the parallel region. */
typedef struct {
    const fastmlp_net *net;
    const fastmlp_optim *opt;
    real *params, *grads, *state;
    /* The buffers the call's first update reads instead of params and state, or NULL (it runs
     * in place): a partial_fit or warm start trains into new buffers while the published ones
     * stay as they are, without copying them first. That update (t == first_step) reads them
     * in its forward and backward passes and steps from them into params and state, each
     * optimizer chunk copied as it is stepped (take_chunk), so the copy costs no pass over
     * memory of its own. params' non-trainable tail (running statistics, standardization)
     * must already hold its values: batch norm updates the running statistics in place. */
    const real *src_params, *src_state;
    int64_t first_step;
    int *chunk_bad;         /* (n_chunks,) after the call's last update: a value not finite */
    int input_bad;          /* a gathered input value (standardized) was not finite */
    const FN(fastmlp_input) *X;
    const real *Y, *sample_weight;
    FN(views) v;
    int update_running;     /* 1 in training: batch norm updates its running statistics */
    uint64_t seed;
    double *row_loss;       /* (Bmax,) each row's weighted loss, summed in row order */
    /* (2, n_chunks) each optimizer chunk's sum of squared weights, and (2,) the data term of
     * the batch loss, for batches of even and odd index: a batch's loss is summed by the next
     * batch's step (train_epoch) */
    double *chunk_sumsq, data_loss[2];
    int *chunk_part;        /* (n_chunks,) the part whose dW slab holds the chunk's start */
    int64_t n_chunks;
    int parts;              /* slabs each batch's GEMMs are cut into (forward_backward) */
    /* SGD momentum (not Nesterov) over params[fused_lo, fused_hi), the dense layers' weights
     * (0, 0 otherwise): the backward GEMM adds the gradient straight into the velocity, which
     * the step before left times the momentum, so v = momentum * v + dJ/dW costs no pass of
     * its own and the gradient is never stored. A pass at the start of each call scales v,
     * and the call's last step does not, so between calls the state is the plain velocity.
     * Measured on 784-256-256-10 (1 thread): the step's passes were ~5% of training, and
     * letting BLAS scale v instead (beta = momentum) cost more than it saved. */
    int64_t fused_lo, fused_hi;
    /* the tiles' kind for the whole call, as it was when the call began (its workspace was
     * sized for the kind then): FASTMLP_TILES_OFF sends every product to BLAS */
    int tiles;
    fastmlp_team team;      /* the parts' claims, for the call's threads */
    /* layer health (health.c), or NULL; health_init sets the rest: each part's scratch of
     * `scratch` reals, in the measured update (the last batch of the call's rows) its
     * recomputed gradient (health_gradient) and then, per thread, a chunk's weights before the
     * step and its gradient; and each chunk's sums for that update (n_chunks, n_layers, 4) */
    fastmlp_health *health;
    real *before;
    int64_t scratch;
    double *chunk_norms;
    /* (2, tied_rows), by batch parity: tie_gradients' squares of the decoder copies, or NULL */
    double *tied_sumsq;
} FN(context);

/* Poison (or, at the call's end, unpoison) the guard behind each part's pack scratch. */
static void FN(pack_guards)(FN(context) *c, int poison)
{
#ifdef FASTMLP_ASAN
    if (!c->v.packed || !c->v.packed[0]) return;  /* no scratch laid out */
    const size_t bytes = (size_t)(fastmlp_align(c->v.pack + FASTMLP_PACK_GUARD) - c->v.pack)
                         * sizeof(real);
    for (int part = 0; part < c->parts; part++) {
        if (poison) ASAN_POISON_MEMORY_REGION(c->v.packed[part] + c->v.pack, bytes);
        else ASAN_UNPOISON_MEMORY_REGION(c->v.packed[part] + c->v.pack, bytes);
    }
#else
    (void)c; (void)poison;
#endif
}

/* Views, row-loss and chunk buffers for one call: small tables, once per call, never per batch. */
static int FN(context_init)(FN(context) *c, real *workspace, const fastmlp_net *net, int Bmax,
                            int sparse)
{
    const int L = net->n_layers;
    c->v.H = (real **)calloc((size_t)(4 * L + 1 + c->parts), sizeof(real *));
    c->row_loss = (double *)malloc((size_t)Bmax * sizeof(double));
    c->n_chunks = (net->n_trainable + FASTMLP_STEP_CHUNK - 1) / FASTMLP_STEP_CHUNK;
    c->chunk_sumsq = (double *)malloc((size_t)(2 * c->n_chunks + 1) * sizeof(double));
    c->chunk_part = (int *)malloc((size_t)(c->n_chunks + 1) * sizeof(int));
    c->chunk_bad = (int *)calloc((size_t)(c->n_chunks + 1), sizeof(int));
    if (!c->v.H || !c->row_loss || !c->chunk_sumsq || !c->chunk_part || !c->chunk_bad ||
        !fastmlp_team_init(&c->team, c->parts))
        return FASTMLP_ENOMEM;
    if (net->n_tied) {
        c->tied_sumsq = (double *)malloc((size_t)(2 * FN(tied_rows)(net)) * sizeof(double));
        if (!c->tied_sumsq) return FASTMLP_ENOMEM;
    }
    /* The thread that computed a slab of dW rows steps those parameters while the gradient is
     * still in its cache, instead of whichever thread a fixed split of the buffer gives: the
     * step's result is the same either way, only the memory traffic between cores changes. */
    for (int64_t chunk = 0; chunk < c->n_chunks; chunk++) {
        const int64_t i0 = chunk * FASTMLP_STEP_CHUNK;
        int part = (int)(chunk % c->parts);
        for (int l = 0; l < L; l++) {
            const int n_in = net->units[l], n_out = net->units[l + 1];
            const int64_t rel = i0 - net->w_offset[l];
            if (rel < 0 || rel >= (int64_t)n_in * n_out || !fastmlp_dw_by_inputs(n_in, n_out))
                continue;
            const int64_t row = rel / n_out;
            for (int p = 0; p < c->parts; p++) {
                int64_t lo, hi;
                fastmlp_slab(n_in, p, c->parts, &lo, &hi);
                if (row >= lo && row < hi) part = p;
            }
        }
        c->chunk_part[chunk] = part;
    }
    c->v.xhat = c->v.H + L + 1;
    c->v.bn_mean = c->v.xhat + L;
    c->v.bn_inv_std = c->v.bn_mean + L;
    c->v.packed = c->v.bn_inv_std + L;
    c->tiles = fastmlp_tiles_enabled();
    FN(lay_out)(&c->v, workspace, net, Bmax, sparse, c->parts, c->tiles);
    FN(pack_guards)(c, 1);
    return FASTMLP_OK;
}

static void FN(context_free)(FN(context) *c)
{
    FN(pack_guards)(c, 0);
    free(c->before);
    free(c->chunk_norms);
    free(c->v.H);
    free(c->row_loss);
    free(c->chunk_sumsq);
    free(c->chunk_part);
    free(c->tied_sumsq);
    free(c->team.memory);
    free(c->chunk_bad);
}

/* The optimizer's chunk: params[lo, hi), FASTMLP_STEP_CHUNK of the flat buffer's trainable part */
static void FN(chunk_range)(const FN(context) *c, int64_t chunk, int64_t *lo, int64_t *hi)
{
    *lo = chunk * FASTMLP_STEP_CHUNK;
    *hi = fastmlp_clamp(*lo + FASTMLP_STEP_CHUNK, *lo, c->net->n_trainable);
}

/* [*a, *b): the part of params[lo, hi) whose velocity the backward GEMMs update */
static void FN(fused_part)(const FN(context) *c, int64_t lo, int64_t hi, int64_t *a, int64_t *b)
{
    *a = fastmlp_clamp(c->fused_lo, lo, hi);
    *b = fastmlp_clamp(c->fused_hi, *a, hi);
}

/* The parameters forward and backward read in update t: the source buffer's in the call's
 * first (when it has one), params afterwards. */
static inline const real *FN(weights_of)(const FN(context) *c, int64_t t)
{
    return c->src_params && t == c->first_step ? c->src_params : c->params;
}

/* The optimizer step of params[lo, hi), as step t: momentum_finish on the weights whose
 * velocity the GEMMs updated (last: the call's last batch), optim_step on the rest. */
static void FN(step_chunk)(FN(context) *c, int64_t t, int64_t lo, int64_t hi, int last)
{
    const fastmlp_net *net = c->net;
    int64_t a, b;
    FN(fused_part)(c, lo, hi, &a, &b);
    if (lo < a)
        FN(optim_step)(c->params, c->grads, c->state, c->opt, t, net->n_weights,
                       net->n_trainable, lo, a);
    if (a < b) FN(momentum_finish)(c->params, c->state, c->opt, t, a, b, last);
    if (b < hi)
        FN(optim_step)(c->params, c->grads, c->state, c->opt, t, net->n_weights,
                       net->n_trainable, b, hi);
}

/* out[j] = the squares of chunk chunks[j]'s weights before update t summed, the L2 term of
 * the batch's loss (0 without decay), for n <= FASTMLP_SUM_CHAINS chunks: each piece that
 * step_chunk steps apart ([lo, a) and [b, hi) within the weights, the fused [a, b)) summed in
 * order from 0, as one loop over it sums it, and the pieces added in that order, so the bits
 * are those of a sum taken piece by piece, while sums_of_squares runs the pieces side by side. */
static void FN(chunk_sums)(const FN(context) *c, int64_t t, const int64_t *chunks, int n,
                           double *out)
{
    enum { K = FASTMLP_SUM_CHAINS };
    int64_t lo[3 * K], hi[3 * K];
    double sums[3 * K];
    int owner[3 * K], m = 0;
    const int64_t n_weights = c->net->n_weights;
    for (int j = 0; j < n; j++) {
        out[j] = 0;
        if ((real)c->opt->alpha == 0) continue;  /* as the steps round alpha */
        int64_t clo, chi, a, b;
        FN(chunk_range)(c, chunks[j], &clo, &chi);
        FN(fused_part)(c, clo, chi, &a, &b);
        if (clo < a) lo[m] = clo, hi[m] = fastmlp_clamp(n_weights, clo, a), owner[m++] = j;
        if (a < b) lo[m] = a, hi[m] = b, owner[m++] = j;
        if (b < chi) lo[m] = b, hi[m] = fastmlp_clamp(n_weights, b, chi), owner[m++] = j;
    }
    const real *weights = FN(weights_of)(c, t);  /* what the step reads (take_chunk) */
    for (int k = 0; k < m; k += K)
        FN(sums_of_squares)(weights, lo + k, hi + k, m - k < K ? m - k : K, sums + k);
    for (int k = 0; k < m; k++) out[owner[k]] += sums[k];
}

/* Layer health of the slab h (rows, n) of hidden layer l's units [col0, col0 + n) that part
 * just produced, before its dropout (which health_forward then applies): with health on, the
 * forward epilogues run without dropout. */
static void FN(health_slab)(FN(context) *c, int part, int l, real *h, int ld, int rows, int n,
                            int col0, int64_t t, int row0)
{
    fastmlp_health *health = c->health;
    if (!health) return;
    int64_t at = (int64_t)part * health->hidden_units + col0;
    for (int below = 1; below <= l; below++) at += c->net->units[below];
    FN(health_forward)(health->count + at, health->sum + at, h, ld, rows, n, col0,
                       c->net->activation, health->margin,
                       c->net->dropout ? c->net->dropout[l] : 0.0, c->seed, t, row0);
}

/* Under fused SGD momentum the gradient is never stored: the GEMM adds it into the velocity u
 * that the step before left (v = u + g), and u is gone by the step. For the update layer
 * health measures (the epoch's last, which train_epoch knows before it starts) backward
 * recomputes g = H^T delta of each layer (health_gradient) while its input H and delta are
 * in the workspace (the deltas of layers above may be overwritten by the step), a block of
 * rows at a time into the part's scratch, and adds each chunk's ||g + alpha W||^2 to the
 * chunk's sums: one dW product per epoch (it was 0.9% of an epoch of 784-100-10 in 50
 * batches) instead of a copy of u in grads, which made those pages resident (the fit held the
 * parameters, the velocity, a gradient's worth and the workspace; now the gradient's worth is
 * gone). The product rounds differently from the GEMM that added g to u, so grad_norm may
 * differ from ||v - u + alpha W|| at float rounding; training's bits do not depend on it. At
 * momentum 0, u is 0 and v the gradient itself: the step reads it. */
static int FN(health_recomputes_gradient)(const FN(context) *c)
{
    return c->health && c->fused_hi > c->fused_lo && c->opt->momentum != 0;
}

/* Rows of dW that health_gradient's products take at least (BLAS packs all of delta for each
 * product, so few rows would cost that packing again and again), as whole optimizer chunks:
 * blocks of this many chunks of layer (n_in, n_out), each needing a scratch of
 * chunks * FASTMLP_STEP_CHUNK + 2 * n_out reals (the rows that hold its partial first and
 * last rows) */
static int64_t FN(health_block_chunks)(int n_out)
{
    enum { ROWS = 32 };
    const int64_t chunks = ((int64_t)ROWS * n_out + FASTMLP_STEP_CHUNK - 1) / FASTMLP_STEP_CHUNK;
    return chunks > 1 ? chunks : 1;
}

/* The first weight of layer [w0, w1) at or after x that starts an optimizer chunk's share of
 * the layer (w0, a multiple of FASTMLP_STEP_CHUNK inside it, or w1) */
static int64_t FN(chunk_share_at)(int64_t x, int64_t w0, int64_t w1)
{
    if (x <= w0) return w0;
    const int64_t next = (x + FASTMLP_STEP_CHUNK - 1) / FASTMLP_STEP_CHUNK * FASTMLP_STEP_CHUNK;
    return next < w1 ? next : w1;
}

/* health_gradient of layer l by part `part` (backward's phase for the layer: inp = H[l]
 * (B, n_in) and delta (B, n_out) complete, W (n_in, n_out) the weights before the step): the
 * chunks' shares of the layer that start in the part's slab of W's rows, as dW's rows cut by
 * inputs, so one part sums each share, in a fixed order whatever thread runs the part. */
static void FN(health_gradient)(FN(context) *c, int part, int l, const real *inp,
                                const real *delta, const real *W, int B)
{
    const fastmlp_net *net = c->net;
    const int n_in = net->units[l], n_out = net->units[l + 1];
    const int64_t w0 = net->w_offset[l], w1 = w0 + (int64_t)n_in * n_out, S = FASTMLP_STEP_CHUNK;
    const int64_t block = FN(health_block_chunks)(n_out);
    real *g = c->before + (int64_t)part * c->scratch;
    int64_t lo, hi;
    fastmlp_slab(n_in, part, c->parts, &lo, &hi);
    const int64_t end = FN(chunk_share_at)(w0 + hi * n_out, w0, w1);
    for (int64_t s0 = FN(chunk_share_at)(w0 + lo * n_out, w0, w1), s1; s0 < end; s0 = s1) {
        s1 = fastmlp_clamp((s0 / S + block) * S, s0, end);
        /* g (rows, n_out) = dW's rows [r0, r0 + rows), which hold weights [s0, s1) */
        const int64_t r0 = (s0 - w0) / n_out, rows = (s1 - w0 + n_out - 1) / n_out - r0;
        FN(gemm)(1, 0, (int)rows, n_out, B, (real)1, inp + r0, n_in, delta, n_out, (real)0, g,
                 n_out);
        for (int64_t a = s0, b; a < s1; a = b) {
            b = fastmlp_clamp((a / S + 1) * S, a, s1);
            c->chunk_norms[(a / S * net->n_layers + l) * 4] +=
                FN(health_gradient_sum)(g + (a - w0 - r0 * n_out), W + (a - w0),
                                        c->opt->alpha, b - a);
        }
    }
}

/* Update first_step of a call with source buffers: params[lo, hi) and the state of the chunk
 * := the source's, while the chunk's step is about to read them (a cache-resident copy, not a
 * pass over memory). The velocity of the fused weights is not copied: the call's scaling pass
 * already wrote momentum * the source's into state, and the backward GEMMs added to it. */
static void FN(take_chunk)(FN(context) *c, int64_t t, int64_t lo, int64_t hi)
{
    if (t != c->first_step) return;
    const size_t size = sizeof(real);
    if (c->src_params) memcpy(c->params + lo, c->src_params + lo, (size_t)(hi - lo) * size);
    if (!c->src_state) return;
    const int64_t n = c->net->n_trainable;
    int64_t a, b;
    FN(fused_part)(c, lo, hi, &a, &b);
    memcpy(c->state + lo, c->src_state + lo, (size_t)(a - lo) * size);
    memcpy(c->state + b, c->src_state + b, (size_t)(hi - b) * size);
    if (fastmlp_state_slots(c->opt->solver) == 2)
        memcpy(c->state + n + lo, c->src_state + n + lo, (size_t)(hi - lo) * size);
}

/* Whether x[0, n) holds a NaN or an infinity: x - x is 0 for every finite x, NaN otherwise,
 * and an OR of the misses vectorizes without reassociating a floating-point sum. */
FASTMLP_VECTOR_CLONES
static int FN(any_not_finite)(const real *x, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad |= !(x[i] - x[i] == 0);
    return bad;
}

/* After the call's last update of chunk [lo, hi), while it is in cache: whether its
 * parameters or the state the solver uses (both halves for adam, the first otherwise) are not
 * all finite. A diverged update leaves NaN or inf there for good (a NaN weight stays NaN), so
 * the last update's values tell whether the call diverged. */
static int FN(chunk_not_finite)(const FN(context) *c, int64_t lo, int64_t hi)
{
    const int64_t n = c->net->n_trainable;
    return FN(any_not_finite)(c->params + lo, hi - lo)
           | FN(any_not_finite)(c->state + lo, hi - lo)
           | (fastmlp_state_slots(c->opt->solver) == 2
              && FN(any_not_finite)(c->state + n + lo, hi - lo));
}

/* step_chunk of chunk `chunk` = params[lo, hi) by thread tid (whose scratch it uses), in the
 * call's last update (last) or in the one layer health measures, the epoch's last (measured,
 * which is then the call's last too): the weights before it are copied while the chunk is in
 * cache. */
static void FN(health_step_chunk)(FN(context) *c, int64_t chunk, int tid, int64_t t,
                                  int64_t lo, int64_t hi, int last, int measured)
{
    FN(take_chunk)(c, t, lo, hi);
    if (!measured) {
        FN(step_chunk)(c, t, lo, hi, last);
        if (last) c->chunk_bad[chunk] = FN(chunk_not_finite)(c, lo, hi);
        return;
    }
    /* this thread's scratch: the chunk's weights before the step, and its data-term gradient
     * (hi - lo,) taken before the step adds the decay to a fused velocity: grads, and on the
     * fused weights v itself at momentum 0; at momentum > 0 health_gradient summed theirs */
    real *before = c->before + (int64_t)tid * c->scratch;
    real *gradient = before + FASTMLP_STEP_CHUNK;
    const size_t size = sizeof(real);
    int64_t a, b;
    FN(fused_part)(c, lo, hi, &a, &b);
    const int recomputed = FN(health_recomputes_gradient)(c);
    memcpy(gradient, c->grads + lo, (size_t)(a - lo) * size);
    if (!recomputed) memcpy(gradient + (a - lo), c->state + a, (size_t)(b - a) * size);
    memcpy(gradient + (b - lo), c->grads + b, (size_t)(hi - b) * size);
    memcpy(before, c->params + lo, (size_t)(hi - lo) * size);
    FN(step_chunk)(c, t, lo, hi, last);
    /* the chunk's sums, zero from health_init but for what health_gradient added */
    FN(health_update)(c->chunk_norms + chunk * 4 * c->net->n_layers, c->params, before, gradient,
                      c->opt->alpha, c->net, lo, hi, recomputed ? a : b, b);
    c->chunk_bad[chunk] = FN(chunk_not_finite)(c, lo, hi);
}

/* health_step_chunk of chunks[0, n) (n <= FASTMLP_SUM_CHAINS) by thread tid, after their sums
 * of squares into sumsq[chunk] (chunk_sums): a few chunks at a time, so that the sums run side
 * by side and the steps find the weights in cache. */
static void FN(step_chunks)(FN(context) *c, const int64_t *chunks, int n, int tid, int64_t t,
                            int last, int measured, double *sumsq)
{
    double sums[FASTMLP_SUM_CHAINS];
    FN(chunk_sums)(c, t, chunks, n, sums);
    for (int j = 0; j < n; j++) {
        int64_t lo, hi;
        sumsq[chunks[j]] = sums[j];
        FN(chunk_range)(c, chunks[j], &lo, &hi);
        FN(health_step_chunk)(c, chunks[j], tid, t, lo, hi, last, measured);
    }
}

/* train_epoch's health: each part's scratch (a copy of a chunk's weights and of its gradient,
 * or health_gradient's block of rows), and each chunk's sums, zero */
static int FN(health_init)(FN(context) *c, fastmlp_health *health)
{
    c->health = health;
    if (!health) return FASTMLP_OK;
    c->scratch = 2 * FASTMLP_STEP_CHUNK;
    if (FN(health_recomputes_gradient)(c))
        for (int l = 0; l < c->net->n_layers; l++) {
            const int n_out = c->net->units[l + 1];
            const int64_t need = FN(health_block_chunks)(n_out) * FASTMLP_STEP_CHUNK + 2 * n_out;
            if (need > c->scratch) c->scratch = need;
        }
    c->scratch = fastmlp_align(c->scratch);
    c->before = (real *)malloc((size_t)(c->parts * c->scratch) * sizeof(real));
    c->chunk_norms = (double *)calloc((size_t)(c->n_chunks * 4 * c->net->n_layers),
                                      sizeof(double));
    return c->before && c->chunk_norms ? FASTMLP_OK : FASTMLP_ENOMEM;
}

/* The chunks' sums into health->norms, in chunk order, after a call that trained the epoch's
 * last batch (measured); other calls leave them */
static void FN(health_finish)(FN(context) *c, int measured)
{
    if (!c->health || !measured) return;
    const int n = 4 * c->net->n_layers;
    for (int i = 0; i < n; i++) c->health->norms[i] = 0;
    for (int64_t chunk = 0; chunk < c->n_chunks; chunk++)
        for (int i = 0; i < n; i++) c->health->norms[i] += c->chunk_norms[chunk * n + i];
}

/* Row i of X (dense) and of the targets on their way into the cache, for gather_rows */
static inline void FN(prefetch_row)(const FN(context) *c, int64_t i)
{
    const int k = c->net->units[c->net->n_layers];
    if (c->X->dense) FN(input_prefetch_row)(c->X, i, c->net->units[0]);
    __builtin_prefetch(c->Y + i * k, 0, 3);
    __builtin_prefetch(c->Y + i * k + k - 1, 0, 3);
}

/* The rows of part `part` of the batch order[0, B) into the batch buffers: standardized inputs
 * (corrupted, for a denoising autoencoder, by the noise of update t), targets, weights. A
 * dense row that is not finite once standardized sets input_bad: a NaN or inf in X stays one
 * ((inf - shift) * scale is inf or NaN), so a caller that has not checked X need not scan it
 * (the row is in cache here; a finite value that overflows only sends it to its own check). */
static void FN(gather_rows)(FN(context) *c, const int64_t *order, int B, int64_t t, int part)
{
    const FN(fastmlp_input) *X = c->X;
    const int k = c->net->units[c->net->n_layers], n_features = c->net->units[0];
    const int sparse = X->dense == NULL;
    FN(views) *v = &c->v;
    int64_t r0, r1;
    int bad = 0;
    fastmlp_slab(B, part, c->parts, &r0, &r1);
    /* rows prefetched ahead of the one gathered, a DRAM latency or so: X's and Y's (each a
     * miss of its own in a random order: the targets' 40-byte copies of 784-100-10 were 5% of
     * an epoch) */
    enum { AHEAD = 4 };
    for (int64_t r = r0; r < r1 && r < r0 + AHEAD; r++) FN(prefetch_row)(c, order[r]);
    for (int64_t r = r0; r < r1; r++) {
        const int64_t i = order[r];
        if (r + AHEAD < r1) FN(prefetch_row)(c, order[r + AHEAD]);
        if (!sparse) {
            FN(input_gather_row)(v->H[0] + r * n_features, X, i, n_features);
            bad |= FN(any_not_finite)(v->H[0] + r * n_features, n_features);
            if (c->net->corruption)
                FN(corrupt_row)(v->H[0] + r * n_features, X->shift, X->scale, n_features,
                                c->net->corruption, c->net->corruption_level, c->seed, t, r);
        }
        memcpy(v->Y + r * k, c->Y + i * k, (size_t)k * sizeof(real));
        if (c->sample_weight) v->W[r] = c->sample_weight[i];
    }
    if (bad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
        c->input_bad = 1;
    }
}

/* dense_forward of one part's slab: by the register tiles where the context has pack scratch,
 * from W where it lies when its rows are near enough (tiles_in_place), else from the part's
 * own packed copy of the weights it reads; by BLAS otherwise. A copy per batch costs little:
 * each packed weight serves every row of the slab (rows >= FASTMLP_TILE_ROWS), and BLAS packs
 * the weights per call too, besides the rows. The epilogue the tiles leave (dropout, tanh,
 * sigmoid) follows with the same dropout keys as dense_forward's. */
static void FN(forward_part)(FN(context) *c, int part, real *out, const real *inp, int ld_in,
                             const real *W, const real *b, int rows, int n_in, int n_out,
                             int col0, int col1, int activation, double p, int64_t t, int row0)
{
#ifdef FASTMLP_TILES
    if (fastmlp_tiles_take(c->tiles, rows, col1 - col0, n_out)) {
        const int n = col1 - col0, relu = activation == FASTMLP_RELU;
        const int ld = FN(tiles_in_place)(c->tiles, n_out) ? n_out : 0;
        if (!ld) FN(dense_pack)(c->v.packed[part], W + col0, n_out, n_in, n);
        FN(dense_forward_tiled)(out + col0, n_out, inp, ld_in, ld ? W + col0 : c->v.packed[part],
                                ld, b ? b + col0 : NULL, rows, n_in, n, relu, 0, 0);
        if (p > 0 || !(relu || activation == FASTMLP_IDENTITY))
            FN(activation_forward)(out + col0, n_out, NULL, NULL, rows, n, col0,
                                   relu ? FASTMLP_IDENTITY : activation, p, c->seed, t, row0);
        return;
    }
#endif
    FN(dense_forward)(out, inp, ld_in, W, b, rows, n_in, n_out, col0, col1, activation, p,
                      c->seed, t, row0);
}

/* dense_backward_params of one part's slab of dW: by the register tiles from the part's packed
 * copy of delta (all its columns when dW is cut by inputs, the slab's columns otherwise) where
 * the context has one, else by BLAS. */
static void FN(backward_params_part)(FN(context) *c, int part, real *dW, const real *inp,
                                     const real *delta, int B, int n_in, int n_out, int lo,
                                     int hi, int by_inputs, real beta)
{
#ifdef FASTMLP_TILES
    /* dW's slab is (hi - lo, n_out) cut by inputs, (n_in, hi - lo) by outputs */
    if (by_inputs ? fastmlp_tiles_take(c->tiles, hi - lo, n_out, n_out)
                  : fastmlp_tiles_take(c->tiles, n_in, hi - lo, n_out)) {
        real *packed = c->v.packed[part];
        if (by_inputs) FN(dense_pack)(packed, delta, n_out, B, n_out);
        else FN(dense_pack)(packed, delta + lo, n_out, B, hi - lo);
        FN(dense_backward_params_tiled)(dW, inp, packed, B, n_in, n_out, lo, hi,
                                        by_inputs, beta != 0);
        return;
    }
#endif
    FN(dense_backward_params)(dW, inp, delta, B, n_in, n_out, lo, hi, by_inputs, beta);
}

/* dense_backward_input of one part's slab: by the register tiles from the part's packed
 * transpose of W's rows [col0, col1) where the context has one, else by BLAS (which packs that
 * transpose per call too). */
static void FN(backward_input_part)(FN(context) *c, int part, real *dinp, const real *delta,
                                    const real *W, const real *h_in, int rows, int n_in,
                                    int n_out, int col0, int col1, int activation, double p,
                                    int64_t t, int row0)
{
#ifdef FASTMLP_TILES
    if (fastmlp_tiles_take(c->tiles, rows, col1 - col0, n_in)) {
        FN(dense_pack_transposed)(c->v.packed[part], W + (int64_t)col0 * n_out, n_out, n_out,
                                  col1 - col0);
        FN(dense_backward_input_tiled)(dinp, delta, c->v.packed[part], rows, n_in, n_out, col0,
                                       col1);
        if (h_in)
            FN(activation_backward)(dinp + col0, h_in + col0, n_in, rows, col1 - col0, col0,
                                    activation, p, c->seed, t, row0);
        return;
    }
#endif
    FN(dense_backward_input)(dinp, delta, W, h_in, rows, n_in, n_out, col0, col1, activation, p,
                             c->seed, t, row0);
}

/* Forward of hidden layer l cut by W's rows, for two parts: part q multiplies the columns of
 * H[l] that meet its slab of W's rows, q = 0 into H[l + 1] and q = 1 into D[0] (backward's
 * buffer, free during forward; it is (Bmax, widest hidden layer), hence hidden layers only),
 * and in the next phase (after both) each part sums the two for its slab of batch rows and
 * runs the epilogue on them while they are in cache. The point is where W's lines live: backward (dW by inputs)
 * and the optimizer's step already cut W by these rows, so a forward cut by columns reads half
 * of each core's weights from the other core, which rewrites them every batch.
 * 784-256-256-10, batch 64, near placement, medians of 4-5 alternating pairs in three runs:
 * +2.3%, +4.4% and +4.8% (110-111k -> 114-116k samples/s), with one more phase and a
 * (B, n_out) sum per layer; 784-1024-1024-10 +1.6% (noise).
 * Two parts only: with P parts the sum reads P partial products per row, and past a few
 * parts that costs more than the weights it keeps in place (not measured beyond two cores). */
static void FN(forward_by_inputs)(FN(context) *c, int l, int B, const real *W, const real *b,
                                  int activation, double p, int64_t t, fastmlp_worker *w,
                                  int after)
{
    FN(views) *v = &c->v;
    const int n_in = c->net->units[l], n_out = c->net->units[l + 1];
    int64_t lo, hi;
    FASTMLP_EACH_PART(&c->team, w, part, after) {
        fastmlp_slab(n_in, part, 2, &lo, &hi);
        FN(forward_part)(c, part, part == 0 ? v->H[l + 1] : v->D[0], v->H[l] + lo, n_in,
                         W + lo * n_out, NULL, B, (int)(hi - lo), n_out, 0, n_out,
                         FASTMLP_IDENTITY, 0.0, t, 0);
    }
    FASTMLP_EACH_PART(&c->team, w, part, FASTMLP_AFTER_ALL) {
        fastmlp_slab(B, part, 2, &lo, &hi);
        real *out = v->H[l + 1] + lo * n_out;
        const real *other = v->D[0] + lo * n_out;
        for (int64_t i = 0; i < (hi - lo) * n_out; i++) out[i] += other[i];
        FN(activation_forward)(out, n_out, NULL, b, (int)(hi - lo), n_out, 0, activation, p,
                               c->seed, t, (int)lo);
        if (!c->net->batch_norm)
            FN(health_slab)(c, part, l, out, n_out, (int)(hi - lo), n_out, 0, t, (int)lo);
    }
}

/* Forward, loss and backward of one batch, rows order[0, B), by worker w. Leaves the gradient
 * of the data term in c->grads and each row's weighted loss in c->row_loss; returns 1 / sum of
 * the batch's weights. Every thread of the call walks through its phases (see
 * FASTMLP_EACH_PART). rows_ready: gather_rows has run for this batch, and the worker has waited
 * for it (train_epoch gathers the next batch in the optimizer's phase, which saves a phase per
 * batch where the first layer is cut by columns: 784-1024-1024-10 +2%). measured: the update
 * layer health measures, whose gradient fused momentum recomputes (health_gradient).
 *
 * The BLAS calls work on c->parts slabs (of rows, or of W's rows or columns), whichever thread
 * claims them: the slabs, and so every GEMM's shape, depend on the problem and never on the
 * threads. That is what makes training bitwise the same for any thread count: BLAS picks its
 * kernel (and with it the order of its sums) by the shape of the call. A part keeps the same
 * row slabs in every layer, so a layer cut by rows after one cut by rows waits only for its own
 * part's rows (FASTMLP_AFTER_OWN); anything that reads other parts' work waits for all of them.
 * Our own loops (bias and batch-norm sums, per column over all rows) take a slab of columns per
 * part: a column's sum does not depend on the slab. */
static double FN(forward_backward)(FN(context) *c, const int64_t *order, int B, int64_t t,
                                   fastmlp_worker *w, int rows_ready, int measured)
{
    const fastmlp_net *net = c->net;
    const FN(fastmlp_input) *X = c->X;
    const int L = net->n_layers, *u = net->units, k = u[L], n_features = u[0];
    const int sparse = X->dense == NULL, P = c->parts;
    const uint64_t seed = c->seed;
    fastmlp_team *team = &c->team;
    FN(views) *v = &c->v;
    int64_t r0, r1, lo, hi;
    const real *weights = FN(weights_of)(c, t);  /* W, b, gamma, beta of this update */

    if (!rows_ready)
        FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) FN(gather_rows)(c, order, B, t, part);
    double sum_w = B;
    if (c->sample_weight) {
        sum_w = 0;
        for (int r = 0; r < B; r++) sum_w += c->sample_weight[order[r]];
    }
    const double inv_sum_w = sum_w > 0 ? 1.0 / sum_w : 0.0;  /* an all-zero-weight batch: no-op */

    /* Where a layer's phase reads what other parts wrote: the gathered rows where the first
     * layer is cut by columns and they were not gathered before the call (rows_ready), and
     * anything after a layer cut by columns */
    int after = FASTMLP_AFTER_OWN;
    if (sparse && X->shift) {
        /* centering of a sparse first layer, as a bias: shift_W = -(shift * scale) @ W_0 */
        const real *W0 = weights + net->w_offset[0];
        FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_OWN) {
            fastmlp_slab(u[1], part, P, &lo, &hi);
            for (int64_t col = lo; col < hi; col++) v->shift_W[col] = 0;
            for (int j = 0; j < n_features; j++) {
                const real s = X->shift[j] * (X->scale ? X->scale[j] : (real)1);
                if (s == 0) continue;
                for (int64_t col = lo; col < hi; col++)
                    v->shift_W[col] -= s * W0[(int64_t)j * u[1] + col];
            }
        }
        after = FASTMLP_AFTER_ALL;
    }

    /* forward, layer by layer. A layer whose width exceeds the batch is cut by columns: every
     * part multiplies all rows by its columns of W, so each packs only its share of W instead
     * of all of it (the bigger operand) -- or, on two parts where backward cuts W by rows, by
     * those rows (forward_by_inputs); a layer with fewer units than rows is cut by rows, and
     * a part keeps its rows from layer to layer. Either way the cut depends on the shapes, not
     * on the threads. */
    for (int l = 0; l < L; l++) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        const int bn = hidden && net->batch_norm;
        const double p = hidden && net->dropout ? net->dropout[l] : 0.0;
        const int act = hidden ? net->activation : FASTMLP_IDENTITY;
        const real *W = weights + net->w_offset[l];
        const real *b = bn ? NULL : weights + net->b_offset[l];
        /* with batch norm the epilogue waits for the batch statistics */
        const int act_now = bn ? FASTMLP_IDENTITY : act;
        const double p_now = bn || c->health ? 0.0 : p;  /* health_slab drops out */
        const int by_columns = fastmlp_forward_by_columns(P, n_out, B, l == 0 && sparse);
        const int by_inputs = fastmlp_forward_by_inputs(P, n_in, n_out, B, hidden,
                                                        l == 0 && sparse);
        /* the first layer's rows were gathered, and waited for, before the call */
        if (by_columns && !(l == 0 && rows_ready)) after = FASTMLP_AFTER_ALL;
        if (by_inputs) FN(forward_by_inputs)(c, l, B, W, b, act_now, p_now, t, w, after);
        else FASTMLP_EACH_PART(team, w, part, after) {
            if (by_columns) {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                FN(forward_part)(c, part, v->H[l + 1], v->H[l], n_in, W, b, B, n_in, n_out,
                                 (int)lo, (int)hi, act_now, p_now, t, 0);
                if (hidden && !bn)
                    FN(health_slab)(c, part, l, v->H[l + 1] + lo, n_out, B, (int)(hi - lo),
                                    (int)lo, t, 0);
                continue;
            }
            fastmlp_slab(B, part, P, &r0, &r1);
            const int rows = (int)(r1 - r0);
            real *out = v->H[l + 1] + r0 * n_out;
            if (l == 0 && sparse)
                FN(sparse_dense_forward)(out, X, order + r0, W, b, X->shift ? v->shift_W : NULL,
                                         rows, n_in, n_out, act_now, p_now, seed, t, (int)r0);
            else
                FN(forward_part)(c, part, out, v->H[l] + r0 * n_in, n_in, W, b, rows, n_in,
                                 n_out, 0, n_out, act_now, p_now, t, (int)r0);
            if (hidden && !bn) FN(health_slab)(c, part, l, out, n_out, rows, n_out, 0, t, (int)r0);
        }
        /* forward_by_inputs ends by rows */
        after = by_columns && !by_inputs ? FASTMLP_AFTER_ALL : FASTMLP_AFTER_OWN;
        if (bn) {
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                FN(batchnorm_stats)(v->bn_mean[l], v->bn_inv_std[l],
                                    c->update_running ? c->params + net->mean_offset[l] : NULL,
                                    c->update_running ? c->params + net->var_offset[l] : NULL,
                                    v->H[l + 1], B, n_out, (int)lo, (int)hi);
            }
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                fastmlp_slab(B, part, P, &r0, &r1);
                FN(batchnorm_forward)(v->H[l + 1] + r0 * n_out, v->xhat[l] + r0 * n_out,
                                      v->bn_mean[l], v->bn_inv_std[l],
                                      weights + net->gamma_offset[l],
                                      weights + net->beta_offset[l],
                                      (int)(r1 - r0), n_out, act, c->health ? 0.0 : p, seed, t,
                                      (int)r0);
                FN(health_slab)(c, part, l, v->H[l + 1] + r0 * n_out, n_out, (int)(r1 - r0),
                                n_out, 0, t, (int)r0);
            }
            after = FASTMLP_AFTER_OWN;  /* batch norm's epilogue went by rows */
        }
    }
    /* the output units and their loss; H[L] becomes the output delta */
    FASTMLP_EACH_PART(team, w, part, after) {
        fastmlp_slab(B, part, P, &r0, &r1);
        for (int64_t r = r0; r < r1; r++)
            c->row_loss[r] = FN(output_loss)(v->H[L] + r * k, v->Y + r * k,
                                             c->sample_weight ? v->W + r : NULL, 1, k,
                                             net->output, inv_sum_w);
    }

    /* backward, from the output layer down: every phase reads all rows of delta, or the
     * column sums of a phase before */
    real *delta = v->H[L];
    int next = 0;
    for (int l = L - 1; l >= 0; l--) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        const int bn = hidden && net->batch_norm;
        real *dW = c->grads + net->w_offset[l], *db = c->grads + net->b_offset[l];
        if (bn) {
            /* delta is dJ/dz for z = gamma * xhat + beta; make it dJ/da */
            real *dgamma = c->grads + net->gamma_offset[l], *dbeta = c->grads + net->beta_offset[l];
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                FN(batchnorm_backward_params)(dgamma, dbeta, delta, v->xhat[l], B, n_out,
                                              (int)lo, (int)hi);
                for (int64_t j = lo; j < hi; j++) db[j] = 0;  /* no trainable bias under batch norm */
            }
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                fastmlp_slab(B, part, P, &r0, &r1);
                FN(batchnorm_backward)(delta + r0 * n_out, v->xhat[l] + r0 * n_out,
                                       weights + net->gamma_offset[l], v->bn_inv_std[l],
                                       dgamma, dbeta, B, (int)(r1 - r0), n_out);
            }
        }
        /* dW, db and (l > 0) dJ/dh of the layer below, part by part */
        FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
            if (l == 0 && sparse) {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                real *colsum = bn ? v->colsum : db;
                FN(bias_backward)(colsum, delta, B, n_out, (int)lo, (int)hi);
                FN(sparse_dense_backward_params)(dW, X, order, delta, colsum, B, n_in, n_out,
                                                 (int)lo, (int)hi);
            } else {
                const int by_inputs = fastmlp_dw_by_inputs(n_in, n_out);
                const int into_velocity = c->fused_hi > c->fused_lo;
                real *target = into_velocity ? c->state + net->w_offset[l] : dW;
                const real beta = into_velocity ? (real)1 : (real)0;
                fastmlp_slab(by_inputs ? n_in : n_out, part, P, &lo, &hi);
                FN(backward_params_part)(c, part, target, v->H[l], delta, B, n_in, n_out,
                                         (int)lo, (int)hi, by_inputs, beta);
                if (measured && FN(health_recomputes_gradient)(c))
                    FN(health_gradient)(c, part, l, v->H[l], delta, weights + net->w_offset[l], B);
                if (!bn) {
                    fastmlp_slab(n_out, part, P, &lo, &hi);
                    FN(bias_backward)(db, delta, B, n_out, (int)lo, (int)hi);
                }
            }
            if (l == 0) continue;
            /* dJ/dh of the layer below, times its activation's derivative (and dropout mask) */
            const double p_below = net->dropout ? net->dropout[l - 1] : 0.0;
            /* as in forward: W is the bigger operand */
            const int by_columns = fastmlp_backward_input_by_columns(P, n_in, B);
            if (by_columns) {
                fastmlp_slab(n_in, part, P, &lo, &hi);
                FN(backward_input_part)(c, part, v->D[next], delta, weights + net->w_offset[l],
                                        v->H[l], B, n_in, n_out, (int)lo, (int)hi,
                                        net->activation, p_below, t, 0);
                continue;
            }
            fastmlp_slab(B, part, P, &r0, &r1);
            FN(backward_input_part)(c, part, v->D[next] + r0 * n_in, delta + r0 * n_out,
                                    weights + net->w_offset[l], v->H[l] + r0 * n_in,
                                    (int)(r1 - r0), n_in, n_out, 0, n_in, net->activation,
                                    p_below, t, (int)r0);
        }
        if (l > 0) {
            delta = v->D[next];
            next ^= 1;
        }
    }
    return inv_sum_w;
}

/* tie_gradients' squares of the decoder copies for `batch`: two sets, by the batch's parity,
 * as chunk_sumsq, since a batch's loss is summed during the next batch's step */
static double *FN(tied_squares)(const FN(context) *c, int64_t batch)
{
    return c->tied_sumsq + (batch & 1) * FN(tied_rows)(c->net);
}

/* batch_loss[batch] = J_b * |b| of a batch whose step is done: its data term and its chunks'
 * sums of squares, in chunk order */
static void FN(batch_loss)(const FN(context) *c, double *batch_loss, int64_t batch, int64_t n,
                           int batch_size, int64_t n_batches)
{
    const double *chunk_sumsq = c->chunk_sumsq + (batch & 1) * c->n_chunks;
    double sumsq = 0;
    for (int64_t chunk = 0; chunk < c->n_chunks; chunk++) sumsq += chunk_sumsq[chunk];
    if (c->net->n_tied) {  /* a shared matrix is penalized once */
        const double *tied = FN(tied_squares)(c, batch);
        for (int64_t r = 0; r < FN(tied_rows)(c->net); r++) sumsq -= tied[r];
    }
    batch_loss[batch] = (c->data_loss[batch & 1] + 0.5 * c->opt->alpha * sumsq) *
                        fastmlp_batch_rows(n, batch_size, batch, n_batches);
}

int FN(train_epoch)(real *params, real *grads, real *state, real *workspace, double *batch_loss,
                    int64_t *t, const FN(fastmlp_input) *X, const real *Y,
                    const real *sample_weight, const int64_t *order, int64_t n, int batch_size,
                    const fastmlp_net *net, const fastmlp_optim *opt, uint64_t seed,
                    int n_parts, int n_threads, double max_seconds, fastmlp_health *health,
                    const real *src_params, const real *src_state, int *all_finite)
{
    FN(context) c = {0};
    c.net = net; c.opt = opt; c.params = params; c.grads = grads; c.state = state;
    c.src_params = src_params == params ? NULL : src_params;
    c.src_state = src_state == state ? NULL : src_state;
    c.X = X; c.Y = Y; c.sample_weight = sample_weight; c.update_running = 1; c.seed = seed;
    c.parts = n_parts > 0 ? n_parts : 1;
    if (FN(context_init)(&c, workspace, net, FN(max_batch)(net, batch_size), X->dense == NULL)
        != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    /* tied copies need their own gradients summed before any step: no fusion for them.
     * Nesterov at momentum 0 is plain SGD, the same bits (p -= lr * (g + 0 * v) and v = g
     * after the call's last step, either way): fused too, so it stores no gradient. */
    if (fastmlp_fuses_momentum(net, opt, X->dense == NULL)) {
        /* a sparse first layer's dW comes from our own loop, not a GEMM: its weights (first in
         * the flat buffer) keep the plain step */
        c.fused_lo = X->dense == NULL ? (int64_t)net->units[0] * net->units[1] : 0;
        c.fused_hi = net->n_weights;
    }
    const int64_t n_batches = fastmlp_epoch_batches(n, batch_size, net->batch_norm);
    const int64_t t0 = *t;
    c.first_step = t0 + 1;
    if (FN(health_init)(&c, health) != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    const double started = fastmlp_seconds();
    /* the call's last batch: the epoch's, or (max_seconds > 0) the one that ends near the time
     * limit, which part 0 of a batch's step sets one batch ahead: the last batch's step must
     * know it is the last (momentum_finish leaves the plain velocity). Every thread reads it
     * only after waiting for the step before: it changes at most once, from n_batches - 1 to
     * the batch after the one that set it, so each thread reads the same batch count and the
     * same is_last. Layer health measures only the epoch's last batch, n_batches - 1 of the
     * rows left (an epoch is often many calls of ~50 ms, training.Stretches): what the
     * measured update costs, the gradient health_gradient recomputes included, is paid once
     * per epoch, not once per call. */
    int64_t last = n_batches - 1;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads < c.parts ? (n_threads > 0 ? n_threads : 1) : c.parts)
#endif
    {
        fastmlp_worker w = fastmlp_worker_here();
        /* v := momentum * v on the fused weights (v of the source state, if any), each chunk
         * by its part; the first GEMM to add to it comes after every part of this phase. And
         * the first batch's rows. */
        const real *velocity = c.src_state ? c.src_state : state;
        FASTMLP_EACH_PART(&c.team, &w, part, FASTMLP_AFTER_ALL) {
            for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) {
                if (c.chunk_part[chunk] != part) continue;
                int64_t lo, hi, a, b;
                FN(chunk_range)(&c, chunk, &lo, &hi);
                FN(fused_part)(&c, lo, hi, &a, &b);
                for (int64_t i = a; i < b; i++) state[i] = velocity[i] * (real)opt->momentum;
            }
            if (n_batches > 0)
                FN(gather_rows)(&c, order, fastmlp_batch_rows(n, batch_size, 0, n_batches),
                                t0 + 1, part);
        }
        for (int64_t batch = 0;; batch++) {
            /* the step before (or the scaling pass) done: the weights, this batch's rows and
             * whether this batch is the last */
            fastmlp_wait_all(&c.team, &w);
            const int64_t last_now = fastmlp_read(&last);
            if (batch > last_now) break;
            const int is_last = batch == last_now;
            const int measured = c.health && batch == n_batches - 1;  /* then is_last too */
            const int64_t b0 = batch * batch_size;
            const int B = fastmlp_batch_rows(n, batch_size, batch, n_batches);
            const int64_t b1 = b0 + B;
            const int64_t step = t0 + batch + 1;
            double *sumsq = c.chunk_sumsq + (batch & 1) * c.n_chunks;
            const double inv_sum_w = FN(forward_backward)(&c, order + b0, B, step, &w, 1,
                                                          measured);
            if (net->n_tied)  /* a chunk's step reads the gradients other parts tie */
                FASTMLP_EACH_PART(&c.team, &w, part, FASTMLP_AFTER_ALL)
                    FN(tie_gradients)(grads, FN(tied_squares)(&c, batch),
                                      FN(weights_of)(&c, step), net, part, c.parts);
            /* the step, each chunk by the part whose dW slab holds it, and the next batch's
             * rows, behind it: the next forward needs none of its own */
            FASTMLP_EACH_PART(&c.team, &w, part, FASTMLP_AFTER_ALL) {
                int64_t group[FASTMLP_SUM_CHAINS];
                int n_group = 0;
                for (int64_t chunk = 0; chunk <= c.n_chunks; chunk++) {
                    if (chunk < c.n_chunks && c.chunk_part[chunk] != part) continue;
                    if (chunk < c.n_chunks) group[n_group++] = chunk;
                    if (n_group == FASTMLP_SUM_CHAINS || (chunk == c.n_chunks && n_group)) {
                        FN(step_chunks)(&c, group, n_group, w.tid, step, is_last, measured,
                                        sumsq);
                        n_group = 0;
                    }
                }
                if (!is_last)
                    FN(gather_rows)(&c, order + b1,
                                    fastmlp_batch_rows(n, batch_size, batch + 1, n_batches),
                                    step + 1, part);
                if (part != 0) continue;
                /* this batch's data term (the next batch's loss phase rewrites row_loss), the
                 * batch before's loss (all its steps are done), and the time limit */
                double data_loss = 0;
                for (int r = 0; r < B; r++) data_loss += c.row_loss[r];
                c.data_loss[batch & 1] = data_loss * inv_sum_w;
                if (batch > 0) FN(batch_loss)(&c, batch_loss, batch - 1, n, batch_size, n_batches);
                if (!is_last && max_seconds > 0) {
                    /* stop after the next batch if it would end past the limit, at this rate */
                    const double elapsed = fastmlp_seconds() - started;
                    if (elapsed * (batch + 2) / (batch + 1) >= max_seconds)
                        fastmlp_write(&last, batch + 1);
                }
            }
        }
    }
    if (last >= 0) FN(batch_loss)(&c, batch_loss, last, n, batch_size, n_batches);
    *t = t0 + last + 1;
    if (all_finite) {
        int bad = 0;
        for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) bad |= c.chunk_bad[chunk];
        all_finite[0] = !bad;
        all_finite[1] = !c.input_bad;
    }
    FN(health_finish)(&c, n_batches > 0 && last == n_batches - 1);
    FN(context_free)(&c);
    return FASTMLP_OK;
}

int FN(batch_gradient)(real *grads, double *loss, real *params, real *workspace,
                       const FN(fastmlp_input) *X, const real *Y, const real *sample_weight,
                       const int64_t *order, int B, const fastmlp_net *net, double alpha,
                       uint64_t seed, int64_t t, int n_parts, int n_threads)
{
    FN(context) c = {0};
    c.net = net; c.params = params; c.grads = grads; c.X = X; c.Y = Y;
    c.sample_weight = sample_weight; c.update_running = 0; c.seed = seed;
    c.parts = n_parts > 0 ? n_parts : 1;
    if (FN(context_init)(&c, workspace, net, B, X->dense == NULL) != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    double inv_sum_w = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads < c.parts ? (n_threads > 0 ? n_threads : 1) : c.parts)
#endif
    {
        fastmlp_worker w = fastmlp_worker_here();
        const double inv = FN(forward_backward)(&c, order, B, t, &w, 0, 0);
        if (w.tid == 0) inv_sum_w = inv;  /* every thread computes the same */
    }
    double data_loss = 0, sumsq = 0;
    for (int r = 0; r < B; r++) data_loss += c.row_loss[r];
    if (net->n_tied) {  /* both copies get the shared gradient (and below its L2 term) */
        FN(tie_gradients)(grads, c.tied_sumsq, params, net, 0, 1);
        for (int64_t r = 0; r < FN(tied_rows)(net); r++) sumsq -= c.tied_sumsq[r];
    }
    for (int64_t i = 0; i < net->n_weights; i++) {
        sumsq += (double)params[i] * params[i];
        grads[i] += (real)alpha * params[i];
    }
    *loss = data_loss * inv_sum_w + 0.5 * alpha * sumsq;
    FN(context_free)(&c);
    return FASTMLP_OK;
}
