/* batch.c: one batch's pass, forward, loss and backward (forward_backward), and its pieces:
 * gather_rows copies one part's rows of the batch into the workspace; forward_part,
 * backward_params_part and backward_input_part run one part's slab of a layer's three products
 * by the register tiles (tiles.c) or by BLAS (dense.c); forward_by_inputs cuts a hidden layer's
 * forward by W's rows on two parts. Shapes: H[l] (B, units[l]), W and dW (n_in, n_out), delta
 * (B, n_out). Threads: every thread of the call walks through the pass's phases and claims
 * parts in each (FASTMLP_EACH_PART); how each product is cut is train.h's rules. */

#include "train.h"

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

/* A layer stepped in backward whose step waits for the next phase (forward_backward): its
 * dW and step, and its bias's gradient, by part `part`. */
typedef struct {
    int l;              /* the layer, or -1: none waiting */
    const real *delta;  /* its delta (B, n_out), which the phase must not rewrite */
} FN(waiting_step);

static void FN(run_waiting_step)(FN(context) *c, const FN(waiting_step) *s, int part, int tid,
                                 int B, int64_t t, int last, int measured)
{
    if (s->l < 0) return;
    const fastmlp_net *net = c->net;
    const int l = s->l, n_out = net->units[l + 1];
    FN(layer_step_part)(c, part, tid, l, c->v.H[l], s->delta, B, t, last, measured);
    if (!(l < net->n_layers - 1 && net->batch_norm)) {
        int64_t lo, hi;
        fastmlp_slab(n_out, part, c->parts, &lo, &hi);
        FN(bias_backward)(c->grads + net->b_offset[l], s->delta, B, n_out, (int)lo, (int)hi);
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
                                   fastmlp_worker *w, int rows_ready, int measured, int last)
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
    /* the output units and their loss; H[L] becomes the output delta. Where backward steps
     * weights, the L2 term's sums of squares of the weights before it (the batch's parity's) */
    FASTMLP_EACH_PART(team, w, part, after) {
        fastmlp_slab(B, part, P, &r0, &r1);
        for (int64_t r = r0; r < r1; r++)
            c->row_loss[r] = FN(output_loss)(v->H[L] + r * k, v->Y + r * k,
                                             c->sample_weight ? v->W + r : NULL, 1, k,
                                             net->output, inv_sum_w);
        if (c->stepped)
            FN(part_chunks)(c, part, w->tid, t, 0, 0,
                            c->chunk_sumsq + ((t - c->first_step) & 1) * c->n_chunks, 0);
    }

    /* backward, from the output layer down: every phase reads all rows of delta, or the
     * column sums of a phase before. A layer stepped in backward leaves its dW and step to a
     * phase after dJ/dh of the layer below, which reads W: the next phase, the layer below's
     * own (784-256-256-10: 3 phases a batch, not 5), unless that phase rewrites the delta the
     * step reads (a net of 3 or more hidden layers), where the step takes a phase of its own.
     * A step's weights are no operand of the layer below's products, and a part runs the two
     * in turn, each with the part's scratch to itself. */
    real *delta = v->H[L];
    int next = 0;
    FN(waiting_step) waiting = {-1, NULL};
    for (int l = L - 1; l >= 0; l--) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        const int bn = hidden && net->batch_norm;
        const int stepped = c->stepped && c->stepped[l];
        real *dW = c->grads + net->w_offset[l], *db = c->grads + net->b_offset[l];
        if (waiting.l >= 0 && !bn && l > 0 && waiting.delta == v->D[next]) {
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL)
                FN(run_waiting_step)(c, &waiting, part, w->tid, B, t, last, measured);
            waiting.l = -1;
        }
        if (bn) {
            /* delta is dJ/dz for z = gamma * xhat + beta; make it dJ/da */
            real *dgamma = c->grads + net->gamma_offset[l], *dbeta = c->grads + net->beta_offset[l];
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                FN(run_waiting_step)(c, &waiting, part, w->tid, B, t, last, measured);
                fastmlp_slab(n_out, part, P, &lo, &hi);
                FN(batchnorm_backward_params)(dgamma, dbeta, delta, v->xhat[l], B, n_out,
                                              (int)lo, (int)hi);
                for (int64_t j = lo; j < hi; j++) db[j] = 0;  /* no trainable bias under batch norm */
            }
            waiting.l = -1;
            FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                fastmlp_slab(B, part, P, &r0, &r1);
                FN(batchnorm_backward)(delta + r0 * n_out, v->xhat[l] + r0 * n_out,
                                       weights + net->gamma_offset[l], v->bn_inv_std[l],
                                       dgamma, dbeta, B, (int)(r1 - r0), n_out);
            }
        }
        /* dW, db and (l > 0) dJ/dh of the layer below, part by part, where the layer is not
         * stepped in backward; a stepped one's dJ/dh (l > 0) */
        if (!stepped || l > 0) FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
            FN(run_waiting_step)(c, &waiting, part, w->tid, B, t, last, measured);
            if (l == 0 && sparse) {  /* never stepped in backward */
                fastmlp_slab(n_out, part, P, &lo, &hi);
                real *colsum = bn ? v->colsum : db;
                FN(bias_backward)(colsum, delta, B, n_out, (int)lo, (int)hi);
                FN(sparse_dense_backward_params)(dW, X, order, delta, colsum, B, n_in, n_out,
                                                 (int)lo, (int)hi);
            } else if (!stepped) {
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
        if (!stepped || l > 0) waiting.l = -1;
        if (stepped) {
            const FN(waiting_step) mine = {l, delta};
            if (l > 0) {
                waiting = mine;
            } else {  /* the first layer: with the one above, if it waits, the last phase */
                FASTMLP_EACH_PART(team, w, part, FASTMLP_AFTER_ALL) {
                    FN(run_waiting_step)(c, &waiting, part, w->tid, B, t, last, measured);
                    FN(run_waiting_step)(c, &mine, part, w->tid, B, t, last, measured);
                }
                waiting.l = -1;
            }
        }
        if (l > 0) {
            delta = v->D[next];
            next ^= 1;
        }
    }
    return inv_sum_w;
}
