/* predict.c: the network in inference mode, over fixed chunks of rows: prediction, and the
 * exact batch-norm population statistics after training.
 *
 * Threads: each thread carries its chunks of rows through every layer (no barrier), with the
 * register tiles (dense.c) or single-threaded BLAS; the chunks are fixed by the row count, never
 * by the thread count, so every bit of the result is the same however many threads run. */

#ifndef FASTMLP_PREDICT_ONCE
#define FASTMLP_PREDICT_ONCE

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
#endif /* FASTMLP_PREDICT_ONCE */

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
    int *nonfinite;         /* predict's: set to 1 when an output, or with check_input a
                             * first-layer pre-activation, is not finite; NULL: no check */
    int check_input;        /* check the first layer's pre-activations (see predict) */
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
 * population statistics need. gathered is (R, n_features) when dense X is standardized or not
 * readable in place (input_direct), order (R,).
 * Returns the last layer's result (rows, units[n_run]). */
static real *FN(infer_chunk)(real *out, real *scratch, real *gathered, int64_t *order,
                             const FN(inference) *in_, int64_t i0, int rows, int n_run,
                             int pre_only)
{
    const fastmlp_net *net = in_->net;
    const FN(fastmlp_input) *X = in_->X;
    const int L = net->n_layers, *u = net->units, n_features = u[0];
    const int64_t R = in_->chunk_rows;
    const int tiled = in_->packed && rows >= FASTMLP_TILE_ROWS;  /* some layer by the tiles */
    const real *in = NULL;
    real *dst = NULL;
    if (gathered) {
        for (int r = 0; r < rows; r++)
            FN(input_gather_row)(gathered + (int64_t)r * n_features, X, i0 + r, n_features);
        in = gathered;
    } else if (X->dense) {
        in = FN(input_row)(X, i0);
        /* the tiles prefetch their own rows */
        if (rows >= FASTMLP_WARM_MIN_ROWS && !(tiled && in_->packed_offset[0] >= 0))
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
        const int check = l == 0 && X->dense && in_->check_input;
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
        } else if (tiled && in_->packed_offset[l] >= 0) {
            const int relu = !bn && act == FASTMLP_RELU;
            const int64_t after = l == 0 && !gathered ? in_->n - (i0 + rows) : 0;
            bad = FN(dense_forward_tiled)(dst, n_out, in, n_in,
                                          in_->packed + in_->packed_offset[l], 0,
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
    c->nonfinite = NULL; c->check_input = 0; c->packed = NULL; c->packed_offset = NULL; c->n = n;
    /* chunks of one size, at most FASTMLP_PREDICT_ROWS rows: a short last chunk left its
     * thread idle at the end when the threads took equal runs of chunks (20000 rows were 39
     * chunks of 512 and one of 32, so one of 2 threads had 5% less to do). From
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
        /* layer l's panels at packed + packed_offset[l], or -1 where BLAS runs it (a sparse
         * first layer, a product the tiles do not run: fastmlp_tiles_run) */
        const int kind = fastmlp_tiles_enabled();
        int64_t total = 0;
        c->packed_offset = (int64_t *)malloc((size_t)L * sizeof(int64_t));
        if (!c->packed_offset) return FASTMLP_ENOMEM;
        for (int l = 0; l < L; l++) {
            const int tiled = (l > 0 || X->dense) && fastmlp_tiles_run(kind, u[l + 1]);
            c->packed_offset[l] = tiled ? total : -1;
            if (tiled) total += FN(dense_packed_size)(u[l], u[l + 1]);
        }
        if (total == 0) {  /* no layer by the tiles: BLAS runs them all */
            free(c->packed_offset);
            c->packed_offset = NULL;
            return FASTMLP_OK;
        }
        c->packed = (real *)malloc((size_t)total * sizeof(real));
        if (!c->packed) return FASTMLP_ENOMEM;
        for (int l = 0; l < L; l++)
            if (c->packed_offset[l] >= 0)
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
    const int n_features = c->net->units[0];
    const int gather = c->X->dense && (c->X->shift || !FN(input_direct)(c->X, n_features));
    s->scratch = (real *)malloc((size_t)(2 * R * c->max_hidden) * sizeof(real));
    s->gathered = gather ? (real *)malloc((size_t)(R * n_features) * sizeof(real)) : NULL;
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
 * chunks of c->chunk_rows taken one at a time by up to n_threads threads, each with its own
 * scratch.
 * The chunks are fixed by n alone, so every GEMM call, and every bit of what the bodies write
 * per chunk, is the same whatever the thread count. */
typedef void (*FN(chunk_body))(void *ctx, FN(chunk_scratch) *s, const FN(inference) *c,
                               int64_t chunk, int64_t i0, int rows);

/* body on chunk `chunk` of the n rows: rows [chunk * R, ...), the last chunk shorter */
static inline void FN(run_chunk)(const FN(inference) *c, FN(chunk_scratch) *s, int64_t n,
                                 int64_t chunk, FN(chunk_body) body, void *ctx)
{
    const int64_t R = c->chunk_rows, i0 = chunk * R;
    body(ctx, s, c, chunk, i0, (int)(n - i0 < R ? n - i0 : R));
}

static int FN(over_chunks)(const FN(inference) *c, int64_t n, int n_threads, FN(chunk_body) body,
                           void *ctx)
{
    const int64_t R = c->chunk_rows, n_chunks = (n + R - 1) / R;
    int threads = n_threads > 0 ? n_threads : 1, status = FASTMLP_OK;
    if (threads > n_chunks) threads = n_chunks > 0 ? (int)n_chunks : 1;
    if (threads == 1) {
        /* no parallel region: libgomp's region of one thread still made two futex calls
         * (strace: 2 per call), about a tenth of a one-row predict's C work */
        FN(chunk_scratch) s;
        if (FN(chunk_scratch_init)(&s, c) == FASTMLP_OK)
            for (int64_t chunk = 0; chunk < n_chunks; chunk++)
                FN(run_chunk)(c, &s, n, chunk, body, ctx);
        else
            status = FASTMLP_ENOMEM;
        FN(chunk_scratch_free)(&s);
        return status;
    }
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
        /* each thread takes the next chunk as it is free: with another process busy on one core,
         * a thread that waits for its turn there leaves its chunks to the others instead of
         * holding up the end (equal runs of chunks would) */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t chunk = 0; chunk < n_chunks; chunk++)
            if (ok) FN(run_chunk)(c, &s, n, chunk, body, ctx);
        FN(chunk_scratch_free)(&s);
    }
    return status;
}

/* predict's chunk: the whole network, then the output units, then whether they are all
 * finite. Finite rows can still overflow past the first layer (relu and identity units are
 * unbounded: 1e19 times a weight of 1e19 is inf in float32), and an inf then makes NaN (inf - inf,
 * 0 * inf) or an inf output; the check reads the (rows, k) outputs just written, still in cache:
 * k values per row against the forward pass's sum of n_in * n_out products per row. */
static void FN(predict_chunk)(void *out, FN(chunk_scratch) *s, const FN(inference) *c,
                              int64_t chunk, int64_t i0, int rows)
{
    (void)chunk;
    const int L = c->net->n_layers, k = c->net->units[L];
    real *dst = (real *)out + i0 * k;
    FN(infer_chunk)(dst, s->scratch, s->gathered, s->order, c, i0, rows, L, 0);
    FN(output_forward)(dst, rows, k, c->net->output);
    int bad = 0;
    for (int64_t i = 0; i < (int64_t)rows * k; i++) bad |= !isfinite(dst[i]);
    if (bad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
        *c->nonfinite = 1;
    }
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
    c.nonfinite = &nonfinite;
    c.check_input = check_finite;
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
