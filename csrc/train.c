/* train.c: whole epochs of mini-batch training, a gradient for checking, and prediction.
 *
 * Threads: OpenMP owns the cores and every thread runs the register tiles (dense.c), or
 * single-threaded BLAS where they do not run, on its own slab (the bridge caps BLAS at one
 * thread around these calls, so two pools never fight):
 *   forward and dJ/dh:   parts of the batch's rows  (rows are independent until the loss),
 *                        of W's columns, or (forward on two parts) of W's rows, then summed
 *   dW:                  parts of W's rows or columns, whichever dimension is larger
 *   db, batch-norm sums: slabs of columns           (a reduction over rows per column)
 *   optimizer step:      fixed chunks of the flat buffer
 * so no two threads ever write the same memory, and every reduction runs in an order that does
 * not depend on the thread count: training is bitwise the same with 1 or n threads. The GEMMs
 * are cut into n_parts slabs fixed by the caller (fastmlp_work_parts), never by the thread
 * count, because BLAS does not promise the same bits for a slab of a product as for the whole:
 * OpenBLAS picks its kernels by shape, and measured here a row or column split at a random point
 * changed some bits of 25-75% of products. (Fixed small blocks, 32 rows, would do it too, but
 * every GEMM call packs the whole of W again: 8 packings of a 1024 x 1024 W per 256-row batch.) */

#ifndef FASTMLP_TRAIN_ONCE
#define FASTMLP_TRAIN_ONCE
#ifdef _OPENMP
#define FASTMLP_BARRIER _Pragma("omp barrier")
#else
#define FASTMLP_BARRIER
#endif
#define FASTMLP_STEP_CHUNK 8192   /* elements per optimizer chunk: a few L2-sized streams */
#define FASTMLP_PREDICT_ROWS 512  /* rows per prediction chunk: every GEMM call packs W again, so
                                  * chunks long enough to amortize it (128 rows: 784-1024-1024-10
                                  * at 174 GFLOP/s; 512: 185, on 2 threads here) */

/* Reads one byte per cache line of [p, p + bytes), so that the rows a GEMM is about to pack
 * come from cache, not DRAM: BLAS's packing reads them with little overlap of DRAM latency,
 * while this loop streams at ~32 GB/s per core. On 512 x 784 float32 chunks of a 63 MB X, the
 * first layer's GEMM ran at 86 GFLOP/s per core with X from DRAM, 94 with X in cache, 89 after
 * this pass; predict of 784-100-10 on one thread went from 82 to 86 GFLOP/s (on two threads,
 * which share the DRAM bandwidth, ~+0.7%). */
#define FASTMLP_WARM_MIN_ROWS 64  /* below this a chunk's rows cost too little to matter */
static inline void fastmlp_warm(const void *p, int64_t bytes)
{
    const unsigned char *c = (const unsigned char *)p;
    unsigned char any = 0;
    for (int64_t i = 0; i < bytes; i += 64) any |= c[i];
    volatile unsigned char keep = any;  /* the loads must happen */
    (void)keep;
}
static inline void fastmlp_slab(int64_t n, int tid, int nt, int64_t *lo, int64_t *hi)
{
    *lo = n * tid / nt;
    *hi = n * (tid + 1) / nt;
}
/* dW (n_in, n_out) is cut by its rows (inputs) when it has at least as many rows as columns,
 * else by its columns: the backward pass and the optimizer's chunk owners both follow this. */
static inline int fastmlp_dw_by_inputs(int n_in, int n_out) { return n_in >= n_out; }
/* The rows of batch `batch` of an epoch of n rows in n_batches batches: batch_size each, the
 * last takes the rest (with batch norm, a trailing row besides) */
static inline int fastmlp_batch_rows(int64_t n, int batch_size, int64_t batch, int64_t n_batches)
{
    return (int)(batch == n_batches - 1 ? n - batch * batch_size : batch_size);
}
static inline int64_t fastmlp_align(int64_t n) { return (n + 15) & ~(int64_t)15; }
static inline int64_t fastmlp_clamp(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}
static inline int fastmlp_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
static inline int fastmlp_thread_count(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
#endif /* FASTMLP_TRAIN_ONCE */

/* Views into the workspace: for a batch of at most Bmax rows, the gathered input, targets and
 * weights, every layer's output H[l] (B, units[l]) (H[0] is the gathered input), the batch-norm
 * caches, and two delta buffers that backward alternates between. */
typedef struct {
    int Bmax;
    real *Y, *W, *shift_W, *colsum;
    real **H, **xhat, **bn_mean, **bn_inv_std;
    real *D[2];
    /* (parts,) each part's scratch for what its tiled products multiply by (a slab of W, of
     * delta or of W's transpose, as dense_pack lays them out), one product at a time; laid out
     * where the CPU can run the tiles */
    real **packed;
} FN(views);

/* The reals a part's pack scratch needs: all of W (forward by rows) or a slab of it, delta
 * (Bmax, units[l + 1]) for dW or a slab of it, or W's transpose or a slab of it for dJ/dh, for
 * the largest layer; a sparse first layer runs its own loops. 0 where the tiles cannot run. */
static int64_t FN(pack_size)(const fastmlp_net *net, int Bmax, int sparse)
{
    int64_t most = 0;
#ifdef FASTMLP_TILES
    if (!fastmlp_tiles_available()) return 0;
    for (int l = sparse ? 1 : 0; l < net->n_layers; l++) {
        const int n_in = net->units[l], n_out = net->units[l + 1];
        const int64_t sizes[3] = {FN(dense_packed_size)(n_in, n_out),
                                  FN(dense_packed_size)(Bmax, n_out),
                                  FN(dense_packed_size)(n_out, n_in)};
        for (int i = 0; i < 3; i++) most = sizes[i] > most ? sizes[i] : most;
    }
#else
    (void)net; (void)Bmax; (void)sparse;
#endif
    return most;
}

/* Lay the views out from `base` (or only count when base is NULL); returns the size in reals. */
static int64_t FN(lay_out)(FN(views) *v, real *base, const fastmlp_net *net, int Bmax,
                           int sparse, int parts)
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
    const int64_t pack = FN(pack_size)(net, Bmax, sparse);
    if (pack > 0)
        for (int part = 0; part < parts; part++) FASTMLP_TAKE(v->packed[part], pack);
#undef FASTMLP_TAKE
    if (base) v->Bmax = Bmax;
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
                       n_parts > 0 ? n_parts : 1);
}

/* Everything one batch step needs; shared by the threads of the parallel region. */
typedef struct {
    const fastmlp_net *net;
    const fastmlp_optim *opt;
    real *params, *grads, *state;
    const FN(fastmlp_input) *X;
    const real *Y, *sample_weight;
    FN(views) v;
    int update_running;     /* 1 in training: batch norm updates its running statistics */
    uint64_t seed;
    double *row_loss;       /* (Bmax,) each row's weighted loss, summed in row order */
    double *chunk_sumsq;    /* (n_chunks,) each optimizer chunk's sum of squared weights */
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
    /* v.packed where the tiles run, else NULL (then BLAS) */
    real **packed;
} FN(context);

/* Views, row-loss and chunk buffers for one call: small tables, once per call, never per batch. */
static int FN(context_init)(FN(context) *c, real *workspace, const fastmlp_net *net, int Bmax,
                            int sparse)
{
    const int L = net->n_layers;
    c->v.H = (real **)calloc((size_t)(4 * L + 1 + c->parts), sizeof(real *));
    c->row_loss = (double *)malloc((size_t)Bmax * sizeof(double));
    c->n_chunks = (net->n_trainable + FASTMLP_STEP_CHUNK - 1) / FASTMLP_STEP_CHUNK;
    c->chunk_sumsq = (double *)malloc((size_t)(c->n_chunks + 1) * sizeof(double));
    c->chunk_part = (int *)malloc((size_t)(c->n_chunks + 1) * sizeof(int));
    if (!c->v.H || !c->row_loss || !c->chunk_sumsq || !c->chunk_part) return FASTMLP_ENOMEM;
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
    FN(lay_out)(&c->v, workspace, net, Bmax, sparse, c->parts);
    /* lay_out gave the parts scratch only where the tiles can run */
    if (fastmlp_tiles_enabled() && c->v.packed[0]) c->packed = c->v.packed;
    return FASTMLP_OK;
}

static void FN(context_free)(FN(context) *c)
{
    free(c->v.H);
    free(c->row_loss);
    free(c->chunk_sumsq);
    free(c->chunk_part);
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

/* The optimizer step of params[lo, hi), as step t: momentum_finish on the weights whose
 * velocity the GEMMs updated (last: the call's last batch), optim_step on the rest. Returns
 * the weights' sum of squares. */
static double FN(step_chunk)(FN(context) *c, int64_t t, int64_t lo, int64_t hi, int last)
{
    const fastmlp_net *net = c->net;
    int64_t a, b;
    FN(fused_part)(c, lo, hi, &a, &b);
    double sumsq = 0;
    if (lo < a)
        sumsq += FN(optim_step)(c->params, c->grads, c->state, c->opt, t, net->n_weights,
                                net->n_trainable, lo, a);
    if (a < b) sumsq += FN(momentum_finish)(c->params, c->state, c->opt, t, a, b, last);
    if (b < hi)
        sumsq += FN(optim_step)(c->params, c->grads, c->state, c->opt, t, net->n_weights,
                                net->n_trainable, b, hi);
    return sumsq;
}

/* The rows order[0, B) of this thread's parts into the batch buffers: standardized inputs,
 * targets, weights. */
static void FN(gather_rows)(FN(context) *c, const int64_t *order, int B, int tid, int nt)
{
    const FN(fastmlp_input) *X = c->X;
    const int k = c->net->units[c->net->n_layers], n_features = c->net->units[0];
    const int sparse = X->dense == NULL, P = c->parts;
    FN(views) *v = &c->v;
    int64_t r0, r1;
    for (int part = tid; part < P; part += nt) {
        fastmlp_slab(B, part, P, &r0, &r1);
        for (int64_t r = r0; r < r1; r++) {
            const int64_t i = order[r];
            if (!sparse) {
                const real *src = X->dense + i * n_features;
                real *dst = v->H[0] + r * n_features;
                if (X->shift)
                    for (int j = 0; j < n_features; j++) dst[j] = (src[j] - X->shift[j]) * X->scale[j];
                else
                    memcpy(dst, src, (size_t)n_features * sizeof(real));
            }
            memcpy(v->Y + r * k, c->Y + i * k, (size_t)k * sizeof(real));
            if (c->sample_weight) v->W[r] = c->sample_weight[i];
        }
    }
}

/* dense_forward of one part's slab: by the register tiles from the part's own packed copy of
 * the weights it reads where the context has one, else by BLAS. A copy per batch costs little:
 * each packed weight serves every row of the slab (rows >= FASTMLP_TILE_ROWS), and BLAS packs
 * the weights per call too, besides the rows. The epilogue the tiles leave (dropout, tanh,
 * sigmoid) follows with the same dropout keys as dense_forward's. */
static void FN(forward_part)(FN(context) *c, int part, real *out, const real *inp, int ld_in,
                             const real *W, const real *b, int rows, int n_in, int n_out,
                             int col0, int col1, int activation, double p, int64_t t, int row0)
{
#ifdef FASTMLP_TILES
    if (c->packed && rows >= FASTMLP_TILE_ROWS && col1 > col0) {
        const int n = col1 - col0, relu = activation == FASTMLP_RELU;
        FN(dense_pack)(c->packed[part], W + col0, n_out, n_in, n);
        FN(dense_forward_tiled)(out + col0, n_out, inp, ld_in, c->packed[part],
                                b ? b + col0 : NULL, rows, n_in, n, relu, 0, 0);
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
    if (c->packed && (by_inputs ? hi - lo : n_in) >= FASTMLP_TILE_ROWS && hi > lo) {
        if (by_inputs) FN(dense_pack)(c->packed[part], delta, n_out, B, n_out);
        else FN(dense_pack)(c->packed[part], delta + lo, n_out, B, hi - lo);
        FN(dense_backward_params_tiled)(dW, inp, c->packed[part], B, n_in, n_out, lo, hi,
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
    if (c->packed && rows >= FASTMLP_TILE_ROWS && col1 > col0) {
        FN(dense_pack_transposed)(c->packed[part], W + (int64_t)col0 * n_out, n_out, n_out,
                                  col1 - col0);
        FN(dense_backward_input_tiled)(dinp, delta, c->packed[part], rows, n_in, n_out, col0,
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
 * and after a barrier each part sums the two for its slab of batch rows and runs the epilogue
 * on them while they are in cache. The point is where W's lines live: backward (dW by inputs)
 * and the optimizer's step already cut W by these rows, so a forward cut by columns reads half
 * of each core's weights from the other core, which rewrites them every batch.
 * 784-256-256-10, batch 64, near placement, medians of 4-5 alternating pairs in three runs:
 * +2.3%, +4.4% and +4.8% (110-111k -> 114-116k samples/s), with one more barrier and a
 * (B, n_out) sum per layer; 784-1024-1024-10 +1.6% (noise).
 * Two parts only: with P parts the sum reads P partial products per row, and past a few
 * parts that costs more than the weights it keeps in place (not measured beyond two cores). */
static void FN(forward_by_inputs)(FN(context) *c, int l, int B, const real *W, const real *b,
                                  int activation, double p, int64_t t, int tid, int nt)
{
    FN(views) *v = &c->v;
    const int n_in = c->net->units[l], n_out = c->net->units[l + 1];
    int64_t lo, hi;
    for (int part = tid; part < 2; part += nt) {
        fastmlp_slab(n_in, part, 2, &lo, &hi);
        FN(forward_part)(c, part, part == 0 ? v->H[l + 1] : v->D[0], v->H[l] + lo, n_in,
                         W + lo * n_out, NULL, B, (int)(hi - lo), n_out, 0, n_out,
                         FASTMLP_IDENTITY, 0.0, t, 0);
    }
    FASTMLP_BARRIER
    for (int part = tid; part < 2; part += nt) {
        fastmlp_slab(B, part, 2, &lo, &hi);
        real *out = v->H[l + 1] + lo * n_out;
        const real *other = v->D[0] + lo * n_out;
        for (int64_t i = 0; i < (hi - lo) * n_out; i++) out[i] += other[i];
        FN(activation_forward)(out, n_out, NULL, b, (int)(hi - lo), n_out, 0, activation, p,
                               c->seed, t, (int)lo);
    }
}

/* Forward, loss and backward of one batch, rows order[0, B), by thread tid of nt. Leaves the
 * gradient of the data term in c->grads and each row's weighted loss in c->row_loss; returns
 * 1 / sum of the batch's weights. Every thread must call it (it holds barriers). rows_ready:
 * gather_rows has run for this batch and a barrier has passed since (train_epoch gathers the
 * next batch before the optimizer's barrier, which saves a barrier per batch where the first
 * layer is cut by columns: 784-1024-1024-10 +2%).
 *
 * The BLAS calls work on c->parts slabs (of rows, or of W's rows or columns), thread tid taking
 * parts tid, tid + nt, ...: the slabs, and so every GEMM's shape, depend on the problem and never
 * on nt. That is what makes training bitwise the same for any thread count: BLAS picks its
 * kernel (and with it the order of its sums) by the shape of the call. A thread keeps the same
 * row slabs in every layer, so layers without batch norm need no barrier between them. Our own
 * loops (bias and batch-norm sums, per column over all rows) split by thread: their order of
 * summation does not depend on the split. */
static double FN(forward_backward)(FN(context) *c, const int64_t *order, int B, int64_t t,
                                   int tid, int nt, int rows_ready)
{
    const fastmlp_net *net = c->net;
    const FN(fastmlp_input) *X = c->X;
    const int L = net->n_layers, *u = net->units, k = u[L], n_features = u[0];
    const int sparse = X->dense == NULL, P = c->parts;
    const uint64_t seed = c->seed;
    FN(views) *v = &c->v;
    int64_t r0, r1, lo, hi;

    if (!rows_ready) FN(gather_rows)(c, order, B, tid, nt);
    double sum_w = B;
    if (c->sample_weight) {
        sum_w = 0;
        for (int r = 0; r < B; r++) sum_w += c->sample_weight[order[r]];
    }
    const double inv_sum_w = sum_w > 0 ? 1.0 / sum_w : 0.0;  /* an all-zero-weight batch: no-op */

    if (sparse && X->shift) {
        /* centering of a sparse first layer, as a bias: shift_W = -(shift * scale) @ W_0 */
        const real *W0 = c->params + net->w_offset[0];
        fastmlp_slab(u[1], tid, nt, &lo, &hi);
        for (int64_t col = lo; col < hi; col++) v->shift_W[col] = 0;
        for (int j = 0; j < n_features; j++) {
            const real s = X->shift[j] * (X->scale ? X->scale[j] : (real)1);
            if (s == 0) continue;
            for (int64_t col = lo; col < hi; col++) v->shift_W[col] -= s * W0[(int64_t)j * u[1] + col];
        }
        FASTMLP_BARRIER
    }

    /* forward, layer by layer. A layer whose width exceeds the batch is cut by columns: every
     * thread multiplies all rows by its columns of W, so each packs only its share of W instead
     * of all of it (the bigger operand) -- or, on two parts where backward cuts W by rows, by
     * those rows (forward_by_inputs); a layer with fewer units than rows is cut by rows, and
     * a thread keeps its rows from layer to layer. Either way the cut depends on the shapes, not
     * on the threads. Rows written by other threads need a barrier before they are read. */
    int written_by_columns = 0;
    for (int l = 0; l < L; l++) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        const int bn = hidden && net->batch_norm;
        const double p = hidden && net->dropout ? net->dropout[l] : 0.0;
        const int act = hidden ? net->activation : FASTMLP_IDENTITY;
        const real *W = c->params + net->w_offset[l];
        const real *b = bn ? NULL : c->params + net->b_offset[l];
        /* with batch norm the epilogue waits for the batch statistics */
        const int act_now = bn ? FASTMLP_IDENTITY : act;
        const double p_now = bn ? 0.0 : p;
        const int by_columns = P > 1 && n_out > B && !(l == 0 && sparse);
        const int by_inputs = by_columns && P == 2 && hidden && fastmlp_dw_by_inputs(n_in, n_out);
        /* the first layer's rows were gathered, and synchronized, before the call */
        if ((by_columns && !(l == 0 && rows_ready)) || written_by_columns) { FASTMLP_BARRIER }
        if (by_inputs) FN(forward_by_inputs)(c, l, B, W, b, act_now, p_now, t, tid, nt);
        else for (int part = tid; part < P; part += nt) {
            if (by_columns) {
                fastmlp_slab(n_out, part, P, &lo, &hi);
                FN(forward_part)(c, part, v->H[l + 1], v->H[l], n_in, W, b, B, n_in, n_out,
                                 (int)lo, (int)hi, act_now, p_now, t, 0);
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
        }
        written_by_columns = by_columns && !by_inputs;
        if (bn) {
            FASTMLP_BARRIER
            fastmlp_slab(n_out, tid, nt, &lo, &hi);
            FN(batchnorm_stats)(v->bn_mean[l], v->bn_inv_std[l],
                                c->update_running ? c->params + net->mean_offset[l] : NULL,
                                c->update_running ? c->params + net->var_offset[l] : NULL,
                                v->H[l + 1], B, n_out, (int)lo, (int)hi);
            FASTMLP_BARRIER
            for (int part = tid; part < P; part += nt) {
                fastmlp_slab(B, part, P, &r0, &r1);
                FN(batchnorm_forward)(v->H[l + 1] + r0 * n_out, v->xhat[l] + r0 * n_out,
                                      v->bn_mean[l], v->bn_inv_std[l],
                                      c->params + net->gamma_offset[l],
                                      c->params + net->beta_offset[l],
                                      (int)(r1 - r0), n_out, act, p, seed, t, (int)r0);
            }
            written_by_columns = 0;  /* batch norm's epilogue went by rows */
        }
    }
    if (written_by_columns) { FASTMLP_BARRIER }
    /* the output units and their loss; H[L] becomes the output delta */
    for (int part = tid; part < P; part += nt) {
        fastmlp_slab(B, part, P, &r0, &r1);
        for (int64_t r = r0; r < r1; r++)
            c->row_loss[r] = FN(output_loss)(v->H[L] + r * k, v->Y + r * k,
                                             c->sample_weight ? v->W + r : NULL, 1, k,
                                             net->output, inv_sum_w);
    }
    FASTMLP_BARRIER

    /* backward, from the output layer down */
    real *delta = v->H[L];
    int next = 0;
    for (int l = L - 1; l >= 0; l--) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        const int bn = hidden && net->batch_norm;
        real *dW = c->grads + net->w_offset[l], *db = c->grads + net->b_offset[l];
        if (bn) {
            /* delta is dJ/dz for z = gamma * xhat + beta; make it dJ/da */
            real *dgamma = c->grads + net->gamma_offset[l], *dbeta = c->grads + net->beta_offset[l];
            fastmlp_slab(n_out, tid, nt, &lo, &hi);
            FN(batchnorm_backward_params)(dgamma, dbeta, delta, v->xhat[l], B, n_out, (int)lo, (int)hi);
            for (int64_t j = lo; j < hi; j++) db[j] = 0;  /* no trainable bias under batch norm */
            FASTMLP_BARRIER
            for (int part = tid; part < P; part += nt) {
                fastmlp_slab(B, part, P, &r0, &r1);
                FN(batchnorm_backward)(delta + r0 * n_out, v->xhat[l] + r0 * n_out,
                                       c->params + net->gamma_offset[l], v->bn_inv_std[l],
                                       dgamma, dbeta, B, (int)(r1 - r0), n_out);
            }
            FASTMLP_BARRIER
        }
        if (l == 0 && sparse) {
            fastmlp_slab(n_out, tid, nt, &lo, &hi);
            real *colsum = bn ? v->colsum : db;
            FN(bias_backward)(colsum, delta, B, n_out, (int)lo, (int)hi);
            FN(sparse_dense_backward_params)(dW, X, order, delta, colsum, B, n_in, n_out,
                                             (int)lo, (int)hi);
        } else {
            const int by_inputs = fastmlp_dw_by_inputs(n_in, n_out);
            const int into_velocity = c->fused_hi > c->fused_lo;
            real *target = into_velocity ? c->state + net->w_offset[l] : dW;
            const real beta = into_velocity ? (real)1 : (real)0;
            for (int part = tid; part < P; part += nt) {
                fastmlp_slab(by_inputs ? n_in : n_out, part, P, &lo, &hi);
                FN(backward_params_part)(c, part, target, v->H[l], delta, B, n_in, n_out,
                                         (int)lo, (int)hi, by_inputs, beta);
            }
            if (!bn) {
                fastmlp_slab(n_out, tid, nt, &lo, &hi);
                FN(bias_backward)(db, delta, B, n_out, (int)lo, (int)hi);
            }
        }
        if (l > 0) {
            /* dJ/dh of the layer below, times its activation's derivative (and dropout mask) */
            const double p_below = net->dropout ? net->dropout[l - 1] : 0.0;
            const int by_columns = P > 1 && n_in > B;  /* as in forward: W is the bigger operand */
            for (int part = tid; part < P; part += nt) {
                if (by_columns) {
                    fastmlp_slab(n_in, part, P, &lo, &hi);
                    FN(backward_input_part)(c, part, v->D[next], delta,
                                            c->params + net->w_offset[l], v->H[l], B, n_in,
                                            n_out, (int)lo, (int)hi, net->activation, p_below,
                                            t, 0);
                    continue;
                }
                fastmlp_slab(B, part, P, &r0, &r1);
                FN(backward_input_part)(c, part, v->D[next] + r0 * n_in, delta + r0 * n_out,
                                        c->params + net->w_offset[l], v->H[l] + r0 * n_in,
                                        (int)(r1 - r0), n_in, n_out, 0, n_in, net->activation,
                                        p_below, t, (int)r0);
            }
            delta = v->D[next];
            next ^= 1;
        }
        FASTMLP_BARRIER
    }
    return inv_sum_w;
}

int FN(train_epoch)(real *params, real *grads, real *state, real *workspace, double *batch_loss,
                    int64_t *t, const FN(fastmlp_input) *X, const real *Y,
                    const real *sample_weight, const int64_t *order, int64_t n, int batch_size,
                    const fastmlp_net *net, const fastmlp_optim *opt, uint64_t seed,
                    int n_parts, int n_threads)
{
    FN(context) c = {0};
    c.net = net; c.opt = opt; c.params = params; c.grads = grads; c.state = state;
    c.X = X; c.Y = Y; c.sample_weight = sample_weight; c.update_running = 1; c.seed = seed;
    c.parts = n_parts > 0 ? n_parts : 1;
    if (FN(context_init)(&c, workspace, net, FN(max_batch)(net, batch_size), X->dense == NULL)
        != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    if (opt->solver == FASTMLP_SGD && !opt->nesterov) {
        /* a sparse first layer's dW comes from our own loop, not a GEMM: its weights (first in
         * the flat buffer) keep the plain step */
        const int sparse = X->dense == NULL;
        if (!sparse || net->w_offset[0] == 0) {
            c.fused_lo = sparse ? (int64_t)net->units[0] * net->units[1] : 0;
            c.fused_hi = net->n_weights;
        }
    }
    const int64_t n_batches = fastmlp_epoch_batches(n, batch_size, net->batch_norm);
    const int64_t t0 = *t;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads < c.parts ? (n_threads > 0 ? n_threads : 1) : c.parts)
#endif
    {
        const int tid = fastmlp_thread_id(), nt = fastmlp_thread_count();
        double data_loss = 0;
        /* v := momentum * v on the fused weights, each chunk by its owner; the first GEMM to
         * add to it comes after the barriers of the first batch's forward pass */
        for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) {
            if (c.chunk_part[chunk] % nt != tid) continue;
            int64_t lo, hi, a, b;
            FN(chunk_range)(&c, chunk, &lo, &hi);
            FN(fused_part)(&c, lo, hi, &a, &b);
            for (int64_t i = a; i < b; i++) state[i] *= (real)opt->momentum;
        }
        if (n_batches > 0)
            FN(gather_rows)(&c, order, fastmlp_batch_rows(n, batch_size, 0, n_batches), tid, nt);
        FASTMLP_BARRIER
        for (int64_t batch = 0; batch < n_batches; batch++) {
            const int64_t b0 = batch * batch_size;
            const int B = fastmlp_batch_rows(n, batch_size, batch, n_batches);
            const int64_t b1 = b0 + B;
            const int64_t step = t0 + batch + 1;
            const double inv_sum_w = FN(forward_backward)(&c, order + b0, B, step, tid, nt, 1);
            if (tid == 0) {  /* read before the barrier below: the next batch rewrites row_loss */
                data_loss = 0;
                for (int r = 0; r < B; r++) data_loss += c.row_loss[r];
                data_loss *= inv_sum_w;
            }
            for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) {
                if (c.chunk_part[chunk] % nt != tid) continue;  /* parts go tid, tid + nt, ... */
                int64_t lo, hi;
                FN(chunk_range)(&c, chunk, &lo, &hi);
                c.chunk_sumsq[chunk] = FN(step_chunk)(&c, step, lo, hi,
                                                      batch == n_batches - 1);
            }
            /* the next batch's rows, behind this barrier: its forward needs none of its own */
            if (batch + 1 < n_batches)
                FN(gather_rows)(&c, order + b1,
                                fastmlp_batch_rows(n, batch_size, batch + 1, n_batches), tid, nt);
            FASTMLP_BARRIER
            if (tid == 0) {
                double sumsq = 0;
                for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) sumsq += c.chunk_sumsq[chunk];
                batch_loss[batch] = (data_loss + 0.5 * opt->alpha * sumsq) * B;
            }
        }
    }
    *t = t0 + n_batches;
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
        const double inv = FN(forward_backward)(&c, order, B, t, fastmlp_thread_id(),
                                                fastmlp_thread_count(), 0);
        if (fastmlp_thread_id() == 0) inv_sum_w = inv;
    }
    double data_loss = 0, sumsq = 0;
    for (int r = 0; r < B; r++) data_loss += c.row_loss[r];
    for (int64_t i = 0; i < net->n_weights; i++) {
        sumsq += (double)params[i] * params[i];
        grads[i] += (real)alpha * params[i];
    }
    *loss = data_loss * inv_sum_w + 0.5 * alpha * sumsq;
    FN(context_free)(&c);
    return FASTMLP_OK;
}

/* Batch norm at prediction is the affine map z = a * s + c per unit, s = gamma / sqrt(running_var
 * + eps), c = beta - running_mean * s: a bias-like epilogue after the GEMM. affine holds, for each
 * hidden layer l in turn, s (units[l + 1],) then c (units[l + 1],).
 * Folding s into the weights instead (W' = W * s, b' = c) was measured on 784-256-256-10, 20000
 * rows, float32: no difference beyond noise (CPU-time ratio fold/epilogue 0.99-1.09 on 1 thread,
 * 1.00 on 2), because the epilogue's extra multiply is 1 / n_in of the GEMM's work while
 * folding copies every weight on every call, which dominates small predictions. So: epilogue. */
static void FN(batchnorm_affine)(real *affine, const real *params, const fastmlp_net *net)
{
    const int *u = net->units;
    real *s = affine;
    for (int l = 0; l < net->n_layers - 1; l++) {
        const real *gamma = params + net->gamma_offset[l], *beta = params + net->beta_offset[l];
        const real *rm = params + net->mean_offset[l], *rv = params + net->var_offset[l];
        real *cst = s + u[l + 1];
        for (int j = 0; j < u[l + 1]; j++) {
            s[j] = gamma[j] / sqrt(rv[j] + (real)FASTMLP_BN_EPS);
            cst[j] = beta[j] - rm[j] * s[j];
        }
        s += 2 * u[l + 1];
    }
}

/* What the inference-mode forward of a chunk of rows needs besides the rows themselves. */
typedef struct {
    const fastmlp_net *net;
    const FN(fastmlp_input) *X;
    const real *params;
    real *affine;           /* batchnorm_affine's table, or NULL without batch norm */
    int *nonfinite;         /* set to 1 when a first-layer pre-activation is not finite; NULL:
                             * no check (see predict) */
    const real *shift_W;    /* (units[1],) centering of a sparse first layer, or NULL */
    real *packed;           /* every dense layer's W as dense_pack leaves it, or NULL: BLAS */
    int64_t *packed_offset; /* (n_layers,) where layer l's panels start in packed */
    int64_t n;              /* rows of X */
    int max_hidden;
    /* rows per chunk: n cut into equal chunks of at most FASTMLP_PREDICT_ROWS (inference_init),
     * so n when fewer: one-row prediction allocates a few KB of scratch, not the MBs of a full
     * chunk (on every call an mmap, page faults and a munmap: 80% of a one-row predict_proba's
     * time) */
    int64_t chunk_rows;
} FN(inference);

/* infer_chunk: the rows [i0, i0 + rows) of X through weight layers [0, n_run) in inference mode
 * (no dropout, batch norm by its affine table). The output layer writes into out (rows, k);
 * hidden layers alternate between the two (R, max_hidden) halves of scratch. With pre_only the
 * last layer run stops at its pre-activation a = h W (a batch-norm layer, so no bias), which
 * population statistics need. gathered is (R, n_features) when dense X is standardized, order (R,).
 * Returns the last layer's result (rows, units[n_run]). */
static real *FN(infer_chunk)(real *out, real *scratch, real *gathered, int64_t *order,
                             const FN(inference) *in_, int64_t i0, int rows, int n_run,
                             int pre_only)
{
    const fastmlp_net *net = in_->net;
    const FN(fastmlp_input) *X = in_->X;
    const int L = net->n_layers, *u = net->units, n_features = u[0];
    const int64_t R = in_->chunk_rows;
    const int tiled = in_->packed && rows >= FASTMLP_TILE_ROWS;
    const real *in = NULL;
    real *dst = NULL;
    if (gathered) {
        for (int r = 0; r < rows; r++) {
            const real *src = X->dense + (i0 + r) * n_features;
            for (int j = 0; j < n_features; j++)
                gathered[(int64_t)r * n_features + j] = (src[j] - X->shift[j]) * X->scale[j];
        }
        in = gathered;
    } else if (X->dense) {
        in = X->dense + i0 * n_features;
        if (rows >= FASTMLP_WARM_MIN_ROWS && !tiled)  /* the tiles prefetch their own rows */
            fastmlp_warm(in, (int64_t)rows * n_features * (int64_t)sizeof(real));
    }
    for (int r = 0; r < rows; r++) order[r] = i0 + r;
    const real *bn_affine = in_->affine;
    for (int l = 0; l < n_run; l++) {
        const int n_in = u[l], n_out = u[l + 1], hidden = l < L - 1;
        const int bn = hidden && net->batch_norm, last_pre = pre_only && l == n_run - 1;
        const int act = hidden ? net->activation : FASTMLP_IDENTITY;
        const real *W = in_->params + net->w_offset[l];
        const real *b = bn ? NULL : in_->params + net->b_offset[l];
        const int check = l == 0 && X->dense && in_->nonfinite;
        dst = hidden ? scratch + (int64_t)(l % 2) * R * in_->max_hidden : out;
        /* done: what is left of the epilogue after the product; 0: bias and activation, 1:
         * the activation, 2: nothing. bad: a row's first pre-activation is not finite (one
         * unit per row tells: a NaN or inf input spoils them all) */
        int done = 0, bad = 0;
        if (l == 0 && !X->dense) {
            FN(sparse_dense_forward)(dst, X, order, W, b, in_->shift_W, rows, n_in, n_out,
                                     bn ? FASTMLP_IDENTITY : act, 0.0, 0, 0, 0);
            done = 2;
#ifdef FASTMLP_TILES
        } else if (tiled) {
            const int relu = !bn && act == FASTMLP_RELU;
            const int64_t after = l == 0 && !gathered ? in_->n - (i0 + rows) : 0;
            bad = FN(dense_forward_tiled)(dst, n_out, in, n_in,
                                          in_->packed + in_->packed_offset[l],
                                          bn ? NULL : b, rows, n_in, n_out, relu, after, check);
            done = relu || (!bn && act == FASTMLP_IDENTITY) ? 2 : 1;
#endif
        } else if (bn || check) {  /* the pre-activation; the epilogue follows */
            FN(gemm)(0, 0, rows, n_out, n_in, (real)1, in, n_in, W, n_out, (real)0, dst, n_out);
            if (check)
                for (int r = 0; r < rows; r++) bad |= !isfinite(dst[(int64_t)r * n_out]);
        } else {
            FN(dense_forward)(dst, in, n_in, W, b, rows, n_in, n_out, 0, n_out, act, 0.0, 0, 0, 0);
            done = 2;
        }
        if (bad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            *in_->nonfinite = 1;
        }
        if (bn && !last_pre)
            FN(activation_forward)(dst, n_out, bn_affine, bn_affine + n_out, rows, n_out, 0, act,
                                   0.0, 0, 0, 0);
        else if (!bn && done < 2)
            FN(activation_forward)(dst, n_out, NULL, done ? NULL : b, rows, n_out, 0, act, 0.0, 0,
                                   0, 0);
        if (bn) bn_affine += 2 * n_out;
        in = dst;
    }
    return dst;
}

/* The inference context of predict and batchnorm_population: the affine table and the
 * sparse centering term, allocated once per call. */
static int FN(inference_init)(FN(inference) *c, const FN(fastmlp_input) *X, int64_t n,
                              const real *params, const fastmlp_net *net)
{
    const int L = net->n_layers, *u = net->units, n_features = u[0];
    int hidden_total = 0;
    c->net = net; c->X = X; c->params = params; c->affine = NULL; c->shift_W = NULL;
    c->nonfinite = NULL; c->packed = NULL; c->packed_offset = NULL; c->n = n;
    /* chunks of one size, at most FASTMLP_PREDICT_ROWS rows: the threads take equal runs of
     * chunks (schedule(static)), and a short last chunk left its thread idle at the end (20000
     * rows were 39 chunks of 512 and one of 32, so one of 2 threads had 5% less to do). From
     * FASTMLP_PREDICT_THREADED_ROWS on, two chunks at least, so that two threads share them */
    int64_t n_chunks = (n + FASTMLP_PREDICT_ROWS - 1) / FASTMLP_PREDICT_ROWS;
    if (n >= FASTMLP_PREDICT_THREADED_ROWS && n_chunks < 2) n_chunks = 2;
    c->chunk_rows = n > 0 ? (n + n_chunks - 1) / n_chunks : FASTMLP_PREDICT_ROWS;
    c->max_hidden = 1;
    for (int l = 1; l < L; l++) {
        c->max_hidden = u[l] > c->max_hidden ? u[l] : c->max_hidden;
        hidden_total += u[l];
    }
    if (net->batch_norm) {
        real *affine = (real *)malloc((size_t)(2 * hidden_total) * sizeof(real));
        if (!affine) return FASTMLP_ENOMEM;
        FN(batchnorm_affine)(affine, params, net);
        c->affine = affine;
    }
    if (!X->dense && X->shift) {
        real *shift_W = (real *)calloc((size_t)u[1], sizeof(real));
        if (!shift_W) return FASTMLP_ENOMEM;
        const real *W0 = params + net->w_offset[0];
        for (int j = 0; j < n_features; j++) {
            const real s = X->shift[j] * (X->scale ? X->scale[j] : (real)1);
            for (int col = 0; col < u[1]; col++) shift_W[col] -= s * W0[(int64_t)j * u[1] + col];
        }
        c->shift_W = shift_W;
    }
#ifdef FASTMLP_TILES
    if (fastmlp_tiles_enabled() && n >= FASTMLP_PREDICT_THREADED_ROWS) {
        /* layer l's panels at packed + packed_offset[l]; a sparse first layer has none */
        int64_t total = 0;
        c->packed_offset = (int64_t *)malloc((size_t)L * sizeof(int64_t));
        if (!c->packed_offset) return FASTMLP_ENOMEM;
        for (int l = 0; l < L; l++) {
            c->packed_offset[l] = total;
            if (l > 0 || X->dense) total += FN(dense_packed_size)(u[l], u[l + 1]);
        }
        c->packed = (real *)malloc((size_t)total * sizeof(real));
        if (!c->packed) return FASTMLP_ENOMEM;
        for (int l = X->dense ? 0 : 1; l < L; l++)
            FN(dense_pack)(c->packed + c->packed_offset[l], params + net->w_offset[l],
                           u[l + 1], u[l], u[l + 1]);
    }
#endif
    return FASTMLP_OK;
}

static void FN(inference_free)(FN(inference) *c)
{
    free(c->packed);
    free(c->packed_offset);
    free(c->affine);
    free((void *)c->shift_W);
}

/* Per-thread scratch of infer_chunk: two (R, max_hidden) activation buffers, the gathered
 * standardized rows when needed, and the row indices. */
typedef struct { real *scratch, *gathered; int64_t *order; } FN(chunk_scratch);

static int FN(chunk_scratch_init)(FN(chunk_scratch) *s, const FN(inference) *c)
{
    const int64_t R = c->chunk_rows;
    const int gather = c->X->dense && c->X->shift;
    s->scratch = (real *)malloc((size_t)(2 * R * c->max_hidden) * sizeof(real));
    s->gathered = gather ? (real *)malloc((size_t)(R * c->net->units[0]) * sizeof(real)) : NULL;
    s->order = (int64_t *)malloc((size_t)R * sizeof(int64_t));
    return s->scratch && s->order && (s->gathered || !gather) ? FASTMLP_OK : FASTMLP_ENOMEM;
}

static void FN(chunk_scratch_free)(FN(chunk_scratch) *s)
{
    free(s->scratch);
    free(s->gathered);
    free(s->order);
}

/* Runs body(ctx, scratch, c, i0, rows) on every chunk of rows [i0, i0 + rows) of the n rows,
 * chunks of c->chunk_rows shared out over up to n_threads threads, each with its own scratch.
 * The chunks are fixed by n alone, so every GEMM call, and every bit of what the bodies write
 * per chunk, is the same whatever the thread count. */
typedef void (*FN(chunk_body))(void *ctx, FN(chunk_scratch) *s, const FN(inference) *c,
                               int64_t chunk, int64_t i0, int rows);

static int FN(over_chunks)(const FN(inference) *c, int64_t n, int n_threads, FN(chunk_body) body,
                           void *ctx)
{
    const int64_t R = c->chunk_rows, n_chunks = (n + R - 1) / R;
    int threads = n_threads > 0 ? n_threads : 1, status = FASTMLP_OK;
    if (threads > n_chunks) threads = n_chunks > 0 ? (int)n_chunks : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        FN(chunk_scratch) s;
        const int ok = FN(chunk_scratch_init)(&s, c) == FASTMLP_OK;
        if (!ok) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            status = FASTMLP_ENOMEM;
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t chunk = 0; chunk < n_chunks; chunk++) {
            if (!ok) continue;
            const int64_t i0 = chunk * R;
            body(ctx, &s, c, chunk, i0, (int)(n - i0 < R ? n - i0 : R));
        }
        FN(chunk_scratch_free)(&s);
    }
    return status;
}

/* predict's chunk: the whole network, then the output units */
static void FN(predict_chunk)(void *out, FN(chunk_scratch) *s, const FN(inference) *c,
                              int64_t chunk, int64_t i0, int rows)
{
    (void)chunk;
    const int L = c->net->n_layers, k = c->net->units[L];
    real *dst = (real *)out + i0 * k;
    FN(infer_chunk)(dst, s->scratch, s->gathered, s->order, c, i0, rows, L, 0);
    FN(output_forward)(dst, rows, k, c->net->output);
}

int FN(predict)(real *out, const FN(fastmlp_input) *X, int64_t n, const real *params,
                const fastmlp_net *net, int n_threads, int check_finite)
{
    /* out (n, n_outputs). Each thread carries its chunk of rows through every layer, so no
     * barrier is needed and the activations stay in cache. The finiteness check reads one
     * value per row of what the GEMM wrote anyway: scanning X beforehand instead (numpy's
     * X.sum()) took 2.5 ms of a 22 ms predict_proba of 20000 x 784 rows, on one thread. */
    FN(inference) c;
    int nonfinite = 0;
    int status = FN(inference_init)(&c, X, n, params, net);
    if (check_finite) c.nonfinite = &nonfinite;
    if (status == FASTMLP_OK)
        status = FN(over_chunks)(&c, n, n_threads, FN(predict_chunk), out);
    FN(inference_free)(&c);
    return status == FASTMLP_OK && nonfinite ? FASTMLP_ENONFINITE : status;
}

/* batchnorm_population's chunk: the pre-activation of one batch-norm layer, reduced to the
 * chunk's mean and sum of squared deviations per unit */
typedef struct { double *chunk_stats; int layer, max_hidden; } FN(population);

static void FN(population_chunk)(void *ctx, FN(chunk_scratch) *s, const FN(inference) *c,
                                 int64_t chunk, int64_t i0, int rows)
{
    const FN(population) *pop = (const FN(population) *)ctx;
    const int l = pop->layer, n_out = c->net->units[l + 1];
    const real *a = FN(infer_chunk)(NULL, s->scratch, s->gathered, s->order, c, i0, rows,
                                    l + 1, 1);
    double *mean = pop->chunk_stats + chunk * 2 * pop->max_hidden, *m2 = mean + pop->max_hidden;
    for (int j = 0; j < n_out; j++) { mean[j] = 0; m2[j] = 0; }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n_out; j++) mean[j] += a[(int64_t)r * n_out + j];
    for (int j = 0; j < n_out; j++) mean[j] /= rows;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n_out; j++) {
            const double d = a[(int64_t)r * n_out + j] - mean[j];
            m2[j] += d * d;
        }
}

int FN(batchnorm_population)(real *params, const FN(fastmlp_input) *X, int64_t n,
                             const fastmlp_net *net, int n_threads)
{
    /* Layer by layer: layer l's pre-activations come from the layers below in inference mode
     * with their statistics already replaced, so the whole network ends up normalized by the
     * statistics of what it computes at prediction. Each fixed chunk of rows reduces to its
     * own mean and sum of squared deviations (two passes over the chunk, in double); the
     * chunks then merge in chunk order (Chan et al.'s pairwise update), so the result does not
     * depend on the thread count and never suffers E[a^2] - E[a]^2 cancellation. */
    const int L = net->n_layers, *u = net->units;
    int max_hidden = 1;
    for (int l = 1; l < L; l++) max_hidden = u[l] > max_hidden ? u[l] : max_hidden;
    FN(inference) c;
    int status = FN(inference_init)(&c, X, n, params, net);
    const int64_t R = c.chunk_rows, n_chunks = (n + R - 1) / R;
    /* per chunk: mean (max_hidden,) then sum of squared deviations (max_hidden,) */
    double *chunk_stats = (double *)malloc((size_t)(n_chunks * 2 * max_hidden) * sizeof(double));
    if (status != FASTMLP_OK || !chunk_stats) {
        FN(inference_free)(&c);
        free(chunk_stats);
        return FASTMLP_ENOMEM;
    }
    for (int l = 0; l < L - 1 && status == FASTMLP_OK; l++) {
        const int n_out = u[l + 1];
        FN(population) pop = {chunk_stats, l, max_hidden};
        status = FN(over_chunks)(&c, n, n_threads, FN(population_chunk), &pop);
        if (status != FASTMLP_OK) break;
        /* merge the chunks in order into the first chunk's slots */
        double *mean = chunk_stats, *m2 = chunk_stats + max_hidden;
        int64_t count = n < R ? n : R;
        for (int64_t chunk = 1; chunk < n_chunks; chunk++) {
            const double *cm = chunk_stats + chunk * 2 * max_hidden, *c2 = cm + max_hidden;
            const int64_t rows = n - chunk * R < R ? n - chunk * R : R, total = count + rows;
            for (int j = 0; j < n_out; j++) {
                const double d = cm[j] - mean[j];
                mean[j] += d * (double)rows / (double)total;
                m2[j] += c2[j] + d * d * (double)count * (double)rows / (double)total;
            }
            count = total;
        }
        real *rm = params + net->mean_offset[l], *rv = params + net->var_offset[l];
        for (int j = 0; j < n_out; j++) {
            rm[j] = (real)mean[j];
            rv[j] = (real)(m2[j] / (double)(n - 1));  /* unbiased, as the running average is */
        }
        FN(batchnorm_affine)(c.affine, params, net);  /* the layers above see layer l's */
    }
    FN(inference_free)(&c);
    free(chunk_stats);
    return status;
}
