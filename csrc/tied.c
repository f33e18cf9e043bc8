/* tied.c: tied weights, W_b = W_a^T (an autoencoder's decoder matrix b mirrors encoder matrix a).
 *
 * The flat buffer keeps both copies in their slots, so every kernel reads the decoder's W_b as
 * it reads an untied one. The backward pass leaves each copy's own gradient, dW_a (n, m) and
 * dW_b (m, n); the gradient with respect to the shared matrix is G = dW_a + dW_b^T, and this
 * writes G into dW_a and G^T into dW_b before the optimizer step. Every optimizer is elementwise,
 * so two copies that start as each other's transpose, with transposed state, take bitwise
 * transposed steps: they stay exact copies without a copy pass. Each element of G is one add,
 * so how the rows are cut into parts never changes a bit.
 *
 * The rows: the encoder rows of every pair stacked, pair p's n_p rows after the rows of the
 * pairs before it (tied_rows counts them). */

int64_t FN(tied_rows)(const fastmlp_net *net)
{
    int64_t rows = 0;
    for (int p = 0; p < net->n_tied; p++) rows += net->units[net->tied[2 * p]];
    return rows;
}

FASTMLP_VECTOR_CLONES
void FN(tie_gradients)(real *grads, double *row_sumsq, const real *params,
                       const fastmlp_net *net, int part, int n_parts)
{
    /* grads, params (n_trainable,) of the flat layout; row_sumsq (tied_rows,) gets, per row i
     * of W_a, sum_j W_a[i, j]^2: the decoder copy's squares, which the caller takes out of
     * the L2 term so that a shared matrix is penalized once (the copies hold the same values,
     * and W_a's row is read contiguously where W_b's column is strided) */
    int64_t lo, hi, first = 0;
    const int64_t rows = FN(tied_rows)(net);
    lo = rows * part / n_parts;
    hi = rows * (part + 1) / n_parts;
    for (int p = 0; p < net->n_tied; p++) {
        const int a = net->tied[2 * p], b = net->tied[2 * p + 1];
        const int n = net->units[a], m = net->units[a + 1];  /* W_a (n, m), W_b (m, n) */
        const int64_t i0 = lo > first ? lo - first : 0, i1 = hi - first < n ? hi - first : n;
        real *dA = grads + net->w_offset[a], *dB = grads + net->w_offset[b];
        const real *A = params + net->w_offset[a];
        for (int64_t i = i0; i < i1; i++) {
            for (int64_t j = 0; j < m; j++) {
                const real g = dA[i * m + j] + dB[j * n + i];
                dA[i * m + j] = g;
                dB[j * n + i] = g;
            }
            /* eight partial sums in a fixed order: they vectorize, one sum is a chain of adds */
            double sums[8] = {0};
            const real *row = A + i * m;
            for (int64_t j0 = 0; j0 < m; j0 += 8)
                for (int k = 0; k < 8 && j0 + k < m; k++)
                    sums[k] += (double)row[j0 + k] * row[j0 + k];
            row_sumsq[first + i] = ((sums[0] + sums[1]) + (sums[2] + sums[3]))
                                   + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
        }
        first += n;
    }
}
