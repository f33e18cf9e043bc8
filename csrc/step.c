/* step.c: the optimizer's phase of a batch, and layer health's part of it. The trainable part
 * of the flat buffer is cut into fixed chunks of FASTMLP_STEP_CHUNK elements (chunk_range),
 * each stepped by the part whose dW slab holds its start (context_init's chunk_part), a few
 * at a time (step_chunks): first the L2 term's sums of squares, side by side (chunk_sums),
 * then each chunk's step (step_chunk: optim_step, or momentum_finish on the weights whose
 * velocity the backward GEMMs updated), with the call's first update copying it from the
 * source buffers (take_chunk) and its last checking it is finite (chunk_not_finite). Chunks
 * are fixed by the buffer, never by the threads, so the step's bits do not depend on them.
 * Layer health (health.c) hooks in here: the forward's counts (health_slab, which batch.c
 * calls), the measured update's recomputed gradient (health_gradient) and its sums per chunk. */

#include "train.h"

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

/* The step of params[lo, hi), a piece of chunk `chunk` without fused weights, as step t, from
 * its gradient g (hi - lo,) (grads' share, or a block of a layer stepped in backward), by
 * thread tid (whose scratch it uses), in the call's last update (last) or in the one layer
 * health measures (measured, then the call's last too), whose sums it adds to row `norms` of
 * chunk_norms. Two parts may step pieces of one chunk in the same phase (layer_step_part): the
 * flag is an atomic write, and each part then keeps its own row of sums (health_init). */
static void FN(step_piece)(FN(context) *c, int64_t chunk, int64_t norms, int tid, int64_t t,
                           int64_t lo, int64_t hi, const real *g, int last, int measured)
{
    const fastmlp_net *net = c->net;
    real *before = measured ? c->before + (int64_t)tid * c->scratch : NULL;
    FN(take_chunk)(c, t, lo, hi);
    if (before) memcpy(before, c->params + lo, (size_t)(hi - lo) * sizeof(real));
    FN(optim_step_from)(c->params, g, c->state, c->opt, t, net->n_weights, net->n_trainable, lo,
                        hi);
    if (last && FN(chunk_not_finite)(c, lo, hi)) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
        c->chunk_bad[chunk] = 1;
    }
    if (before)
        FN(health_update)(c->chunk_norms + norms * 4 * net->n_layers, c->params, before, g,
                          c->opt->alpha, net, lo, hi, hi, hi);
}

/* step_chunk of chunk `chunk` = params[lo, hi) by thread tid (whose scratch it uses), in the
 * call's last update (last) or in the one layer health measures, the epoch's last (measured,
 * which is then the call's last too): the weights before it are copied while the chunk is in
 * cache. */
static void FN(health_step_chunk)(FN(context) *c, int64_t chunk, int tid, int64_t t,
                                  int64_t lo, int64_t hi, int last, int measured)
{
    int64_t a, b;
    FN(fused_part)(c, lo, hi, &a, &b);
    if (a == b) {  /* no fused weights: the plain step of grads' share */
        FN(step_piece)(c, chunk, chunk, tid, t, lo, hi, c->grads + lo, last, measured);
        return;
    }
    FN(take_chunk)(c, t, lo, hi);
    if (!measured) {
        FN(step_chunk)(c, t, lo, hi, last);
        if (last) c->chunk_bad[chunk] |= FN(chunk_not_finite)(c, lo, hi);
        return;
    }
    /* this thread's scratch: the chunk's weights before the step, and its data-term gradient
     * (hi - lo,) taken before the step adds the decay to a fused velocity: grads, and on the
     * fused weights v itself at momentum 0; at momentum > 0 health_gradient summed theirs */
    real *before = c->before + (int64_t)tid * c->scratch;
    real *gradient = before + FASTMLP_STEP_CHUNK;
    const size_t size = sizeof(real);
    const int recomputed = FN(health_recomputes_gradient)(c);
    memcpy(gradient, c->grads + lo, (size_t)(a - lo) * size);
    if (!recomputed) memcpy(gradient + (a - lo), c->state + a, (size_t)(b - a) * size);
    memcpy(gradient + (b - lo), c->grads + b, (size_t)(hi - b) * size);
    memcpy(before, c->params + lo, (size_t)(hi - lo) * size);
    FN(step_chunk)(c, t, lo, hi, last);
    /* the chunk's sums, zero from health_init but for what health_gradient added */
    FN(health_update)(c->chunk_norms + chunk * 4 * c->net->n_layers, c->params, before, gradient,
                      c->opt->alpha, c->net, lo, hi, recomputed ? a : b, b);
    c->chunk_bad[chunk] |= FN(chunk_not_finite)(c, lo, hi);
}

/* [x, return): from x up to hi, the rest of the weights of a layer stepped in backward
 * (*in_backward = 1), or what lies before the next such layer (0) */
static int64_t FN(stepped_run)(const FN(context) *c, int64_t x, int64_t hi, int *in_backward)
{
    int64_t next = hi;
    *in_backward = 0;
    for (int l = 0; l < c->net->n_layers; l++) {
        if (!c->stepped[l]) continue;
        const int64_t w0 = c->net->w_offset[l];
        const int64_t w1 = w0 + (int64_t)c->net->units[l] * c->net->units[l + 1];
        if (x >= w0 && x < w1) {
            *in_backward = 1;
            return w1 < hi ? w1 : hi;
        }
        if (w0 > x && w0 < next) next = w0;
    }
    return next;
}

/* health_step_chunk of chunks[0, n) (n <= FASTMLP_SUM_CHAINS) by thread tid, after their sums
 * of squares into sumsq[chunk] (chunk_sums): a few chunks at a time, so that the sums run side
 * by side and the steps find the weights in cache. Where weights are stepped in backward,
 * their sums came before backward (part_chunks) and only the chunks' other pieces are left. */
static void FN(step_chunks)(FN(context) *c, const int64_t *chunks, int n, int tid, int64_t t,
                            int last, int measured, double *sumsq)
{
    double sums[FASTMLP_SUM_CHAINS];
    if (!c->stepped) FN(chunk_sums)(c, t, chunks, n, sums);
    for (int j = 0; j < n; j++) {
        int64_t lo, hi;
        FN(chunk_range)(c, chunks[j], &lo, &hi);
        if (!c->stepped) {
            sumsq[chunks[j]] = sums[j];
            FN(health_step_chunk)(c, chunks[j], tid, t, lo, hi, last, measured);
            continue;
        }
        int in_backward;
        for (int64_t x = lo, y; x < hi; x = y) {
            y = FN(stepped_run)(c, x, hi, &in_backward);
            if (!in_backward) FN(health_step_chunk)(c, chunks[j], tid, t, x, y, last, measured);
        }
    }
}

/* The optimizer chunks of part `part` (chunk_part), FASTMLP_SUM_CHAINS at a time: stepped
 * (step_chunks) in update t, or (steps = 0) only their sums of squares into sumsq */
static void FN(part_chunks)(FN(context) *c, int part, int tid, int64_t t, int last, int measured,
                            double *sumsq, int steps)
{
    int64_t group[FASTMLP_SUM_CHAINS];
    double sums[FASTMLP_SUM_CHAINS];
    int n = 0;
    for (int64_t chunk = 0; chunk <= c->n_chunks; chunk++) {
        if (chunk < c->n_chunks && c->chunk_part[chunk] != part) continue;
        if (chunk < c->n_chunks) group[n++] = chunk;
        if (!(n == FASTMLP_SUM_CHAINS || (chunk == c->n_chunks && n))) continue;
        if (steps) FN(step_chunks)(c, group, n, tid, t, last, measured, sumsq);
        else {
            FN(chunk_sums)(c, t, group, n, sums);
            for (int j = 0; j < n; j++) sumsq[group[j]] = sums[j];
        }
        n = 0;
    }
}

/* ---- Weights stepped in backward ----------------------------------------------------------
 * Stored whole, dW would make a fit hold the parameters, the state, a gradient's worth and the
 * workspace. Instead each layer whose dW the tiles compute by rows of W (train.h's
 * fastmlp_layer_steps: every solver, SGD momentum where every dense layer can be, else it
 * fuses) is stepped in backward, once dJ/dh of the layer below has read W: each part
 * computes a block of dW's rows into its scratch and steps those weights at once, while the
 * block is in cache (layer_step_part). The step is the same elementwise update on the same
 * gradient, each of dW's elements summed over the batch in order whatever rows are computed
 * beside it, so the bits are those of the stored gradient's step; the L2 term's sums of
 * squares are taken before backward steps anything (part_chunks in the loss phase). */

/* Rows of dW a part computes and steps at a time: the tiles' block (FASTMLP_TILE_BLOCK_ROWS,
 * the rows that go through every panel of delta before the next rows) where it is at most
 * 512 KB, still in L2 when the step reads it; whole tiles. A smaller block streams all of
 * packed delta through the cache once more per block: blocks of 128 KB (30 rows of
 * 784-1024-1024-10) read 2.5x the delta of blocks of 96 rows. */
static int FN(gradient_block_rows)(int n_out)
{
    enum { R = FASTMLP_TILE_ROWS, BYTES = 512 * 1024 };
    const int64_t rows = BYTES / ((int64_t)n_out * (int64_t)sizeof(real)) / R * R;
    return rows < R ? R : rows > FASTMLP_TILE_BLOCK_ROWS ? FASTMLP_TILE_BLOCK_ROWS : (int)rows;
}

/* The reals of each part's scratch for a block of dW's rows, for the layers stepped in
 * backward under the tiles `kind` (0 where none is): the largest such layer's block, the last
 * block of a share taking up to FASTMLP_TILE_ROWS - 1 rows more rather than leave fewer than a
 * tile, and no block more rows than the layer has */
static int64_t FN(gradient_block)(const fastmlp_net *net, const fastmlp_optim *opt, int parts,
                                  int sparse, int kind)
{
    int64_t block = 0;
    for (int l = 0; l < net->n_layers; l++) {
        if (!fastmlp_layer_steps(net, opt, sparse, parts, kind, l)) continue;
        const int n_out = net->units[l + 1];
        const int64_t rows = FN(gradient_block_rows)(n_out) + FASTMLP_TILE_ROWS;
        const int64_t need = (rows < net->units[l] ? rows : net->units[l]) * n_out;
        if (need > block) block = need;
    }
    return fastmlp_align(block);
}

int64_t FN(gradient_scratch)(const fastmlp_net *net, const fastmlp_optim *opt, int n_parts,
                             int sparse)
{
    const int P = n_parts > 0 ? n_parts : 1;
    return P * FN(gradient_block)(net, opt, P, sparse, fastmlp_tiles_enabled());
}

/* train_epoch's layers stepped in backward (stepped, or NULL where none is) and each part's
 * scratch for a block of dW's rows */
static int FN(stepped_init)(FN(context) *c, int sparse)
{
    const int L = c->net->n_layers;
    c->block = FN(gradient_block)(c->net, c->opt, c->parts, sparse, c->tiles);
    if (!c->block) return FASTMLP_OK;
    c->stepped = (int *)calloc((size_t)L, sizeof(int));
    c->blocks = (real *)malloc((size_t)(c->parts * c->block) * sizeof(real));
    if (!c->stepped || !c->blocks) return FASTMLP_ENOMEM;
    for (int l = 0; l < L; l++)
        c->stepped[l] = fastmlp_layer_steps(c->net, c->opt, sparse, c->parts, c->tiles, l);
    return FASTMLP_OK;
}

/* Layer l's dW and step by part `part` (thread tid), in update t: inp = H[l] (B, n_in) and
 * delta (B, n_out) complete, and nothing left to read W. The part's share of W's rows
 * (fastmlp_layer_share), a block of them at a time into its scratch, each block's weights
 * stepped piece by piece (a piece ends where an optimizer chunk does). */
static void FN(layer_step_part)(FN(context) *c, int part, int tid, int l, const real *inp,
                                const real *delta, int B, int64_t t, int last, int measured)
{
    const int n_in = c->net->units[l], n_out = c->net->units[l + 1];
    const int64_t w0 = c->net->w_offset[l], S = FASTMLP_STEP_CHUNK;
    int64_t e0, e1, r0, r1;
    fastmlp_layer_share(c->net, l, part, c->parts, &e0, &e1, &r0, &r1);
    if (e0 >= e1) return;
    real *packed = c->v.packed[part], *g = c->blocks + (int64_t)part * c->block;
    FN(dense_pack)(packed, delta, n_out, B, n_out);
    const int64_t rows = FN(gradient_block_rows)(n_out);
    for (int64_t a = r0, b; a < r1; a = b) {
        b = r1 - a < rows + FASTMLP_TILE_ROWS ? r1 : a + rows;
        /* g (b - a, n_out) = dW's rows [a, b), weights [base, end) */
        FN(dense_gradient_rows_tiled)(g, inp, packed, B, n_in, n_out, (int)a, (int)b, 0);
        const int64_t base = w0 + a * n_out, end = w0 + b * n_out;
        for (int64_t lo = base, hi; lo < end; lo = hi) {
            hi = fastmlp_clamp((lo / S + 1) * S, lo, end);
            /* where the chunk reaches past the share, another part may step the rest of it
             * in this phase, of this layer or of the one beside it in the buffer (backward
             * steps two layers in one phase: forward_backward): the part's own row of sums */
            const int64_t chunk = lo / S;
            const int shared = chunk * S < e0 || (chunk + 1) * S > e1;
            FN(step_piece)(c, chunk, shared ? c->n_chunks + part : chunk, tid, t, lo, hi,
                           g + (lo - base), last, measured);
        }
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
    /* a row of sums per chunk, and one per part for the chunks two parts step in backward */
    c->chunk_norms = (double *)calloc((size_t)((c->n_chunks + c->parts) * 4 * c->net->n_layers),
                                      sizeof(double));
    return c->before && c->chunk_norms ? FASTMLP_OK : FASTMLP_ENOMEM;
}

/* The chunks' sums into health->norms, in chunk order, then the parts' rows (step_piece),
 * after a call that trained the epoch's last batch (measured); other calls leave them */
static void FN(health_finish)(FN(context) *c, int measured)
{
    if (!c->health || !measured) return;
    const int n = 4 * c->net->n_layers;
    for (int i = 0; i < n; i++) c->health->norms[i] = 0;
    for (int64_t row = 0; row < c->n_chunks + c->parts; row++)
        for (int i = 0; i < n; i++) c->health->norms[i] += c->chunk_norms[row * n + i];
}
