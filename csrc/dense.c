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
#ifdef _OPENMP
#pragma omp atomic
#endif
    fastmlp_blas_calls++;  /* a test's count: one add beside a BLAS call */
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
