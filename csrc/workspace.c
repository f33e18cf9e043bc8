/* workspace.c: the workspace one training call runs in, and the call's context (train.c's
 * train_epoch and batch_gradient make them). The workspace is the caller's one buffer of
 * workspace_size reals, laid out (lay_out) as views for a batch of at most Bmax rows: the
 * gathered rows, every layer's output, the batch-norm caches, two delta buffers, and each
 * part's pack scratch for the register tiles (pack_size). The context holds those views and
 * the call's small tables (row losses, the optimizer chunks' owners and sums), made once per
 * call by context_init, never per batch, and shared by all the call's threads. */

#include "train.h"

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
        /* a layer whose weights are stepped in backward (train.h, fastmlp_layer_steps) packs all of
         * delta for its rows of dW, whichever way the dW of other solvers is cut */
        if (fastmlp_tiles_run(kind, n_out)) FASTMLP_NEEDS(FN(dense_packed_size)(Bmax, n_out));
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
    /* SGD momentum (not Nesterov) over params[fused_lo, fused_hi), the dense layers' weights,
     * where some layer cannot be stepped in backward (train.h's fastmlp_fuses_momentum; 0, 0
     * otherwise): the backward GEMM adds the gradient straight into the velocity, which
     * the step before left times the momentum, so v = momentum * v + dJ/dW costs no pass of
     * its own and the gradient is never stored. A pass at the start of each call scales v,
     * and the call's last step does not, so between calls the state is the plain velocity.
     * Measured on 784-256-256-10 (1 thread): the step's passes were ~5% of training, and
     * letting BLAS scale v instead (beta = momentum) cost more than it saved. */
    int64_t fused_lo, fused_hi;
    /* Weights stepped in backward, where the solver does not fuse (train.h's
     * fastmlp_layer_steps): stepped[l] for each weight layer whose dW the tiles compute by
     * rows of W. Its step runs right after a block of those rows is computed, from
     * the part's `blocks` scratch ((parts, block) reals), so the fit never stores that layer's
     * gradient: it holds the parameters, the solver's state and the workspace (step.c,
     * step_layer_part). NULL where no layer is. */
    int *stepped;
    real *blocks;
    int64_t block;
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
    free(c->stepped);
    free(c->blocks);
}
