/* dense.c: a dense layer, h_out = g(h_in W + b), as a forward/backward pair, plus the GEMM
 * wrapper and the elementwise activation pair that the GEMMs' epilogues are made of.
 * Included by fastmlp_f32.c / fastmlp_f64.c with `real` and FN() defined. */

static FN(fastmlp_gemm_t) FN(blas_gemm) = 0;
static FN(fastmlp_gemv_t) FN(blas_gemv) = 0;

void FN(fastmlp_set_blas)(FN(fastmlp_gemm_t) gemm, FN(fastmlp_gemv_t) gemv)
{
    FN(blas_gemm) = gemm;
    FN(blas_gemv) = gemv;
}

void FN(gemm)(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
              const real *B, int ldb, real beta, real *C, int ldc)
{
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the same transpose flags
     * with the operands swapped. */
    char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  /* BLAS leaves C alone when K = 0; the product is still beta * C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] *= beta;
        return;
    }
    if (M == 1 && !trans_a && !trans_b) {
        /* c (N,) = B^T a: column-major, B is the (N, K) matrix with leading dimension ldb. A
         * GEMM of one row packs all of B first: measured 314 us for one row of 784-1024-1024-10,
         * where streaming the 7.4 MB of weights once is ~100 us. */
        char no = 'N';
        int one = 1;
        FN(blas_gemv)(&no, &N, &K, &alpha, (real *)B, &ldb, (real *)A, &one, &beta, C, &one);
        return;
    }
    FN(blas_gemm)(&tb, &ta, &N, &M, &K, &alpha, (real *)B, &ldb, (real *)A, &lda, &beta, C, &ldc);
}

FASTMLP_VECTOR_CLONES
void FN(activation_forward)(real *h, int ld, const real *scale, const real *shift, int rows,
                            int n, int col0, int activation, double p, uint64_t seed, int64_t t,
                            int row0)
{
    /* h (rows, n), row stride ld. One row at a time so each row is read once from cache for
     * all three steps. */
    const uint32_t threshold = fastmlp_drop_threshold(p);
    const real keep_scale = p > 0 ? (real)(1.0 / (1.0 - p)) : (real)1;
    for (int r = 0; r < rows; r++) {
        real *row = h + (int64_t)r * ld;
        if (scale)
            for (int j = 0; j < n; j++) row[j] = row[j] * scale[j] + shift[j];
        else if (shift)
            for (int j = 0; j < n; j++) row[j] += shift[j];
        switch (activation) {
        case FASTMLP_RELU:
            for (int j = 0; j < n; j++) row[j] = row[j] > 0 ? row[j] : (real)0;
            break;
        case FASTMLP_TANH:
            for (int j = 0; j < n; j++) row[j] = tanh(row[j]);
            break;
        case FASTMLP_SIGMOID:  /* exp(-x) may overflow to inf for x << 0, giving exactly 0 */
            for (int j = 0; j < n; j++) row[j] = (real)1 / ((real)1 + exp(-row[j]));
            break;
        default:
            break;
        }
        if (p > 0) {
            uint64_t stream = fastmlp_row_stream(seed, t, (int64_t)row0 + r);
            for (int j = 0; j < n; j++)
                row[j] = fastmlp_keep(stream, col0 + j, threshold) ? row[j] * keep_scale : (real)0;
        }
    }
}

/* g'(.) from the activation's output y = g(a) */
static inline real FN(derivative)(real y, int activation)
{
    switch (activation) {
    case FASTMLP_RELU: return y > 0 ? (real)1 : (real)0;
    case FASTMLP_TANH: return (real)1 - y * y;
    case FASTMLP_SIGMOID: return y * ((real)1 - y);
    default: return (real)1;
    }
}

FASTMLP_VECTOR_CLONES
void FN(activation_backward)(real *dh, const real *h, int ld, int rows, int n, int col0,
                             int activation, double p, uint64_t seed, int64_t t, int row0)
{
    /* dh, h (rows, n), row stride ld. With dropout, a kept unit's saved output is
     * g(a) / (1 - p). */
    if (p > 0) {
        const uint32_t threshold = fastmlp_drop_threshold(p);
        const real keep_scale = (real)(1.0 / (1.0 - p)), keep_prob = (real)(1.0 - p);
        for (int r = 0; r < rows; r++) {
            real *drow = dh + (int64_t)r * ld;
            const real *hrow = h + (int64_t)r * ld;
            uint64_t stream = fastmlp_row_stream(seed, t, (int64_t)row0 + r);
            for (int j = 0; j < n; j++)
                drow[j] = fastmlp_keep(stream, col0 + j, threshold)
                    ? drow[j] * keep_scale * FN(derivative)(hrow[j] * keep_prob, activation)
                    : (real)0;
        }
        return;
    }
    if (activation == FASTMLP_IDENTITY) return;
    /* one branch-free loop per activation so the compiler vectorizes it */
    for (int r = 0; r < rows; r++) {
        real *d = dh + (int64_t)r * ld;
        const real *y = h + (int64_t)r * ld;
        switch (activation) {
        case FASTMLP_RELU:
            for (int j = 0; j < n; j++) d[j] = y[j] > 0 ? d[j] : (real)0;
            break;
        case FASTMLP_TANH:
            for (int j = 0; j < n; j++) d[j] *= (real)1 - y[j] * y[j];
            break;
        case FASTMLP_SIGMOID:
            for (int j = 0; j < n; j++) d[j] *= y[j] * ((real)1 - y[j]);
            break;
        }
    }
}

void FN(dense_forward)(real *out, const real *inp, int ld_in, const real *W, const real *b,
                       int rows, int n_in, int n_out, int col0, int col1, int activation,
                       double p, uint64_t seed, int64_t t, int row0)
{
    /* inp (rows, n_in) stride ld_in, W (n_in, n_out), b (n_out,) or NULL, out (rows, n_out):
     * the columns [col0, col1) of out, from the same columns of W */
    if (col1 <= col0) return;
    FN(gemm)(0, 0, rows, col1 - col0, n_in, (real)1, inp, ld_in, W + col0, n_out, (real)0,
             out + col0, n_out);
    FN(activation_forward)(out + col0, n_out, NULL, b ? b + col0 : NULL, rows, col1 - col0,
                           col0, activation, p, seed, t, row0);
}

/* ---- register tiles: a layer's products without BLAS ------------------------------------ */
/* Why not BLAS: OpenBLAS packs the rows of X for every GEMM call before its kernel reads them,
 * and prediction streams X from DRAM once, so that packing (plus the pass that warmed the rows
 * for it) was a tenth of a bulk predict_proba of 784-100-10. Here each 6-row tile reads its
 * inputs straight from where they lie, broadcast one at a time against 4 vectors of a packed
 * row of W, with the next tile's rows prefetched meanwhile; the bias and relu go in before the
 * first store. Measured on one core (AMD EPYC, 20000 rows in 500-row calls, float32): 784 ->
 * 100 at 102-105 GFLOP/s against OpenBLAS's 85; 784 -> 256 113 against 98; 1024 -> 1024 112
 * against 101. The same kernel runs training's three products (train.c: forward_part,
 * backward_params_part, backward_input_part), packing per batch what they multiply by:
 * 256 x 784 by 784 x 512 with that packing 114 GFLOP/s against 104, 256 x 512 by 512 x 1024 113
 * against 95 (in cache). OpenBLAS runs its SkylakeX kernels on this Zen 4 core; why they fall
 * short of the tiles was not studied. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTMLP_TILES 1
#include <immintrin.h>

#define FASTMLP_TILE_TARGET __attribute__((target("avx512f,avx512vl,fma")))
#if FASTMLP_REAL_IS_FLOAT
#define LANES 16
typedef __m512 vreal;   /* a full vector: 16 lanes */
typedef __m256 hreal;   /* half a vector, for a panel's last few columns */
#define v_load _mm512_loadu_ps
#define v_maskz_load(m, p) _mm512_maskz_loadu_ps((__mmask16)(m), (p))
#define v_store _mm512_storeu_ps
#define v_mask_store(p, m, v) _mm512_mask_storeu_ps((p), (__mmask16)(m), (v))
#define v_set1 _mm512_set1_ps
#define v_fma _mm512_fmadd_ps
#define v_max _mm512_max_ps
#define v_zero _mm512_setzero_ps
#define v_nonfinite(v) _mm512_cmp_ps_mask(_mm512_sub_ps((v), (v)), _mm512_setzero_ps(), _CMP_NEQ_UQ)
#define h_load _mm256_loadu_ps
#define h_maskz_load(m, p) _mm256_maskz_loadu_ps((__mmask8)(m), (p))
#define h_mask_store(p, m, v) _mm256_mask_storeu_ps((p), (__mmask8)(m), (v))
#define h_set1 _mm256_set1_ps
#define h_fma _mm256_fmadd_ps
#define h_max _mm256_max_ps
#define h_zero _mm256_setzero_ps
#define h_nonfinite(v) _mm256_cmp_ps_mask(_mm256_sub_ps((v), (v)), _mm256_setzero_ps(), _CMP_NEQ_UQ)
#else
#define LANES 8
typedef __m512d vreal;
typedef __m256d hreal;
#define v_load _mm512_loadu_pd
#define v_maskz_load(m, p) _mm512_maskz_loadu_pd((__mmask8)(m), (p))
#define v_store _mm512_storeu_pd
#define v_mask_store(p, m, v) _mm512_mask_storeu_pd((p), (__mmask8)(m), (v))
#define v_set1 _mm512_set1_pd
#define v_fma _mm512_fmadd_pd
#define v_max _mm512_max_pd
#define v_zero _mm512_setzero_pd
#define v_nonfinite(v) _mm512_cmp_pd_mask(_mm512_sub_pd((v), (v)), _mm512_setzero_pd(), _CMP_NEQ_UQ)
#define h_load _mm256_loadu_pd
#define h_maskz_load(m, p) _mm256_maskz_loadu_pd((__mmask8)(m), (p))
#define h_mask_store(p, m, v) _mm256_mask_storeu_pd((p), (__mmask8)(m), (v))
#define h_set1 _mm256_set1_pd
#define h_fma _mm256_fmadd_pd
#define h_max _mm256_max_pd
#define h_zero _mm256_setzero_pd
#define h_nonfinite(v) _mm256_cmp_pd_mask(_mm256_sub_pd((v), (v)), _mm256_setzero_pd(), _CMP_NEQ_UQ)
#endif
#define PANEL_COLS (FASTMLP_TILE_VECTORS * LANES)

/* A panel of `width` <= PANEL_COLS columns is `full` full vectors plus `half` (0 or 1) half
 * vectors wide: a remainder of up to LANES / 2 columns takes half a vector, which costs half an
 * FMA of a full one on CPUs that split 512-bit operations (784-100-10's 4 last columns). */
static void FN(panel_shape)(int width, int *full, int *half)
{
    const int rem = width % LANES;
    *full = width / LANES + (rem > LANES / 2);
    *half = rem > 0 && rem <= LANES / 2;
}

static int FN(panel_padded)(int width)
{
    int full, half;
    FN(panel_shape)(width, &full, &half);
    return full * LANES + half * (LANES / 2);
}

int64_t FN(dense_packed_size)(int K, int n_out)
{
    int64_t size = 0;
    for (int c0 = 0; c0 < n_out; c0 += PANEL_COLS)
        size += (int64_t)K * FN(panel_padded)(n_out - c0 < PANEL_COLS ? n_out - c0 : PANEL_COLS);
    return size;
}

void FN(dense_pack)(real *packed, const real *W, int ldw, int K, int n_out)
{
    for (int c0 = 0; c0 < n_out; c0 += PANEL_COLS) {
        const int width = n_out - c0 < PANEL_COLS ? n_out - c0 : PANEL_COLS;
        const int padded = FN(panel_padded)(width);
        for (int k = 0; k < K; k++, packed += padded) {
            const real *row = W + (int64_t)k * ldw + c0;
            int j = 0;
            for (; j < width; j++) packed[j] = row[j];
            for (; j < padded; j++) packed[j] = 0;
        }
    }
}

void FN(dense_pack_transposed)(real *packed, const real *W, int ldw, int K, int n)
{
    /* the operand (K, n) whose element (k, j) is W[j * ldw + k]: W's rows become columns. By
     * blocks of one cache line of k: each line of a W row is read once, whole, and its values
     * go to LINE packed rows, whose lines stay in L1 while the panel's j run through them.
     * Reading one k of 64 rows at a time instead touched 64 lines 4 KB apart (784-1024-1024-10)
     * that share an L1 set: 8% of training time against 2.5% for BLAS's own copy. */
    enum { LINE = 64 / (int)sizeof(real) };
    for (int c0 = 0; c0 < n; c0 += PANEL_COLS) {
        const int width = n - c0 < PANEL_COLS ? n - c0 : PANEL_COLS;
        const int padded = FN(panel_padded)(width);
        const real *rows = W + (int64_t)c0 * ldw;
        for (int k0 = 0; k0 < K; k0 += LINE) {
            const int kn = K - k0 < LINE ? K - k0 : LINE;
            real *dst = packed + (int64_t)k0 * padded;
            for (int j = 0; j < width; j++) {
                const real *src = rows + (int64_t)j * ldw + k0;
                for (int i = 0; i < kn; i++) dst[(int64_t)i * padded + j] = src[i];
            }
            for (int i = 0; i < kn; i++)
                for (int j = width; j < padded; j++) dst[(int64_t)i * padded + j] = 0;
        }
        packed += (int64_t)K * padded;
    }
}

/* What one tile computes: rows [skip, FASTMLP_TILE_ROWS) of out (row stride ldo) = the same rows
 * of x times a panel of `width` columns, x's element (r, k) at x[r * x_row + k * x_k]: rows of
 * a layer's input (x_k = 1) in forward, columns of it (x_row = 1) for dW. The sums start from
 * bias (or 0), or from out itself when accumulating. Rows below skip are computed, not stored:
 * they overlap a tile before. next: rows to prefetch (forward only), or NULL. */
typedef struct {
    real *out;
    int ldo;
    const real *x;
    int64_t x_row, x_k;
    const real *panel;
    int K;
    const real *bias;
    int width, relu, accumulate, check, skip;
    const real *next;
} FN(tile_job);

/* One tile of a panel `full` full vectors and `half` half vectors wide (panel_shape), constants
 * once inlined into panel_tile's cases, so the accumulators live in registers: 6 rows x 4
 * vectors = 24 of the 32. */
static inline __attribute__((always_inline)) FASTMLP_TILE_TARGET int FN(tile)(
    const FN(tile_job) *job, const int full, const int half)
{
    enum { R = FASTMLP_TILE_ROWS };
    const int padded = full * LANES + half * (LANES / 2), K = job->K, ldo = job->ldo;
    const int64_t x_row = job->x_row, x_k = job->x_k;
    const real *x = job->x, *next = job->next, *bias = job->bias;
    real *out = job->out;
    /* the last vector holds `last` columns; lanes beyond them are neither loaded nor stored */
    const int last = job->width - (full - 1 + half) * LANES;
    const unsigned last_mask = last >= LANES ? (1u << LANES) - 1 : (1u << last) - 1;
    vreal acc[R][FASTMLP_TILE_VECTORS];
    hreal acc_half[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const real *from = job->accumulate ? out + (int64_t)r * ldo : bias;
#pragma GCC unroll 4
        for (int v = 0; v < full; v++)
            acc[r][v] = !from ? v_zero()
                      : v == full - 1 && !half ? v_maskz_load(last_mask, from + v * LANES)
                      : v_load(from + v * LANES);
        acc_half[r] = half && from ? h_maskz_load(last_mask, from + full * LANES) : h_zero();
    }
    for (int k = 0; k < K; k++) {
        if (next && k % LANES == 0)  /* one cache line of each next row per line of these */
#pragma GCC unroll 6
            for (int r = 0; r < R; r++)
                _mm_prefetch((const char *)(next + r * x_row + k), _MM_HINT_T0);
        const real *wk = job->panel + (int64_t)k * padded;
        vreal w[FASTMLP_TILE_VECTORS];
        hreal w_half = h_zero();
#pragma GCC unroll 4
        for (int v = 0; v < full; v++) w[v] = v_load(wk + v * LANES);
        if (half) w_half = h_load(wk + full * LANES);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const real xk = x[r * x_row + k * x_k];
            const vreal xv = v_set1(xk);
#pragma GCC unroll 4
            for (int v = 0; v < full; v++) acc[r][v] = v_fma(xv, w[v], acc[r][v]);
            if (half) acc_half[r] = h_fma(h_set1(xk), w_half, acc_half[r]);
        }
    }
    unsigned bad = 0;
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        if (r < job->skip) continue;
        real *o = out + (int64_t)r * ldo;
        if (job->check) bad |= full ? v_nonfinite(acc[r][0]) : h_nonfinite(acc_half[r]);
#pragma GCC unroll 4
        for (int v = 0; v < full; v++) {
            /* max(a, 0) gives 0 for a NaN a, as activation_forward's a > 0 ? a : 0 does */
            const vreal h = job->relu ? v_max(acc[r][v], v_zero()) : acc[r][v];
            if (v == full - 1 && !half) v_mask_store(o + v * LANES, last_mask, h);
            else v_store(o + v * LANES, h);
        }
        if (half)
            h_mask_store(o + full * LANES, last_mask, job->relu ? h_max(acc_half[r], h_zero())
                                                                : acc_half[r]);
    }
    return bad != 0;
}

static FASTMLP_TILE_TARGET int FN(panel_tile)(const FN(tile_job) *job)
{
    int full, half;
    FN(panel_shape)(job->width, &full, &half);
    switch (full * 2 + half) {
    case 8: return FN(tile)(job, 4, 0);
    case 7: return FN(tile)(job, 3, 1);
    case 6: return FN(tile)(job, 3, 0);
    case 5: return FN(tile)(job, 2, 1);
    case 4: return FN(tile)(job, 2, 0);
    case 3: return FN(tile)(job, 1, 1);
    case 2: return FN(tile)(job, 1, 0);
    default: return FN(tile)(job, 0, 1);
    }
}

/* out (rows, n_out) (+)= x (rows, K) @ the packed W (+ b), x's element (r, k) at
 * x[r * x_row + k * x_k], rows >= FASTMLP_TILE_ROWS. Blocks of FASTMLP_TILE_BLOCK_ROWS rows;
 * in each, every panel in turn (W's panel streams from L2 while the block's inputs stay there
 * too), tile by tile. A block that does not end on a whole tile ends with a tile moved back
 * over rows already done, which stores only its new rows: no tile of fewer rows is needed. */
static int FN(tiles)(real *out, int ldo, const real *x, int64_t x_row, int64_t x_k,
                     const real *packed, const real *b, int rows, int K, int n_out, int relu,
                     int accumulate, int64_t rows_after, int check)
{
    enum { R = FASTMLP_TILE_ROWS };
    int bad = 0;
    for (int b0 = 0; b0 < rows; b0 += FASTMLP_TILE_BLOCK_ROWS) {
        const int b1 = rows - b0 < FASTMLP_TILE_BLOCK_ROWS ? rows : b0 + FASTMLP_TILE_BLOCK_ROWS;
        const real *panel = packed;
        for (int c0 = 0; c0 < n_out; c0 += PANEL_COLS) {
            const int width = n_out - c0 < PANEL_COLS ? n_out - c0 : PANEL_COLS;
            for (int r0 = b0; r0 < b1; r0 += R) {
                const int top = r0 + R <= b1 ? r0 : b1 - R;
                FN(tile_job) job = {
                    out + (int64_t)top * ldo + c0, ldo, x + top * x_row, x_row, x_k, panel, K,
                    b ? b + c0 : NULL, width, relu, accumulate, check && c0 == 0, r0 - top,
                    /* the first panel's pass reads a layer's rows from memory: fetch the
                     * next tile's */
                    x_k == 1 && c0 == 0 && (int64_t)top + 2 * R <= rows + rows_after
                        ? x + (top + R) * x_row : NULL};
                bad |= FN(panel_tile)(&job);
            }
            panel += (int64_t)K * FN(panel_padded)(width);
        }
    }
    return bad;
}

int FN(dense_forward_tiled)(real *out, int ldo, const real *in, int ld_in, const real *packed,
                            const real *b, int rows, int K, int n_out, int relu, int64_t rows_after,
                            int check)
{
    return FN(tiles)(out, ldo, in, ld_in, 1, packed, b, rows, K, n_out, relu, 0, rows_after,
                     check);
}

void FN(dense_backward_input_tiled)(real *dinp, const real *delta, const real *packed_WT,
                                    int rows, int n_in, int n_out, int col0, int col1)
{
    FN(tiles)(dinp + col0, n_in, delta, n_out, 1, packed_WT, NULL, rows, n_out, col1 - col0, 0,
              0, 0, 0);
}

void FN(dense_backward_params_tiled)(real *dW, const real *inp, const real *packed_delta,
                                     int B, int n_in, int n_out, int lo, int hi, int by_inputs,
                                     int accumulate)
{
    /* dW's rows lo..hi are inputs lo..hi: columns of inp (B, n_in), hence x_row = 1 */
    if (by_inputs)
        FN(tiles)(dW + (int64_t)lo * n_out, n_out, inp + lo, 1, n_in, packed_delta, NULL, hi - lo,
                  B, n_out, 0, accumulate, 0, 0);
    else
        FN(tiles)(dW + lo, n_out, inp, 1, n_in, packed_delta, NULL, n_in, B, hi - lo, 0,
                  accumulate, 0, 0);
}
#endif /* FASTMLP_TILES */

void FN(dense_backward_params)(real *dW, const real *inp, const real *delta,
                               int B, int n_in, int n_out, int lo, int hi, int by_inputs,
                               real beta)
{
    /* inp (B, n_in), delta (B, n_out), dW (n_in, n_out) */
    if (hi <= lo) return;
    if (by_inputs)
        FN(gemm)(1, 0, hi - lo, n_out, B, (real)1, inp + lo, n_in, delta, n_out,
                 beta, dW + (int64_t)lo * n_out, n_out);
    else
        FN(gemm)(1, 0, n_in, hi - lo, B, (real)1, inp, n_in, delta + lo, n_out,
                 beta, dW + lo, n_out);
}

FASTMLP_VECTOR_CLONES
void FN(bias_backward)(real *db, const real *delta, int B, int n_out, int lo, int hi)
{
    /* db[lo:hi] = column sums of delta (B, n_out); rows outer so the inner loop is contiguous */
    for (int j = lo; j < hi; j++) db[j] = 0;
    for (int r = 0; r < B; r++) {
        const real *drow = delta + (int64_t)r * n_out;
        for (int j = lo; j < hi; j++) db[j] += drow[j];
    }
}

void FN(dense_backward_input)(real *dinp, const real *delta, const real *W, const real *h_in,
                              int rows, int n_in, int n_out, int col0, int col1, int activation,
                              double p, uint64_t seed, int64_t t, int row0)
{
    /* delta (rows, n_out), W (n_in, n_out), dinp and h_in (rows, n_in): the columns
     * [col0, col1) of dinp, from the rows [col0, col1) of W */
    if (col1 <= col0) return;
    FN(gemm)(0, 1, rows, col1 - col0, n_out, (real)1, delta, n_out, W + (int64_t)col0 * n_out,
             n_out, (real)0, dinp + col0, n_in);
    if (h_in)
        FN(activation_backward)(dinp + col0, h_in + col0, n_in, rows, col1 - col0, col0,
                                activation, p, seed, t, row0);
}

void FN(sparse_dense_forward)(real *out, const FN(fastmlp_input) *X, const int64_t *order,
                              const real *W, const real *b, const real *shift_W,
                              int rows, int n_in, int n_out, int activation,
                              double p, uint64_t seed, int64_t t, int row0)
{
    /* out (rows, n_out): row r = sum over the nonzeros (j, v) of X row order[r] of
     * v * scale[j] * W[j, :]. The bias and centering terms go in through the epilogue's shift. */
    (void)n_in;
    for (int r = 0; r < rows; r++) {
        real *orow = out + (int64_t)r * n_out;
        const int64_t i = order[r];
        for (int c = 0; c < n_out; c++) orow[c] = 0;
        for (int64_t k = X->indptr[i]; k < X->indptr[i + 1]; k++) {
            const int j = X->indices[k];
            const real v = X->scale ? X->data[k] * X->scale[j] : X->data[k];
            const real *wrow = W + (int64_t)j * n_out;
            for (int c = 0; c < n_out; c++) orow[c] += v * wrow[c];
        }
        if (shift_W)
            for (int c = 0; c < n_out; c++) orow[c] += shift_W[c];
    }
    FN(activation_forward)(out, n_out, NULL, b, rows, n_out, 0, activation, p, seed, t, row0);
}

void FN(sparse_dense_backward_params)(real *dW, const FN(fastmlp_input) *X, const int64_t *order,
                                      const real *delta, const real *delta_colsum,
                                      int B, int n_in, int n_out, int lo, int hi)
{
    /* dW (n_in, n_out): this call owns columns [lo, hi), so threads never write the same memory */
    for (int j = 0; j < n_in; j++)
        for (int c = lo; c < hi; c++) dW[(int64_t)j * n_out + c] = 0;
    for (int r = 0; r < B; r++) {
        const int64_t i = order[r];
        const real *drow = delta + (int64_t)r * n_out;
        for (int64_t k = X->indptr[i]; k < X->indptr[i + 1]; k++) {
            const int j = X->indices[k];
            const real v = X->scale ? X->data[k] * X->scale[j] : X->data[k];
            real *wrow = dW + (int64_t)j * n_out;
            for (int c = lo; c < hi; c++) wrow[c] += v * drow[c];
        }
    }
    if (X->shift)
        for (int j = 0; j < n_in; j++) {
            const real s = X->shift[j] * (X->scale ? X->scale[j] : (real)1);
            if (s == 0) continue;
            real *wrow = dW + (int64_t)j * n_out;
            for (int c = lo; c < hi; c++) wrow[c] -= s * delta_colsum[c];
        }
}
