/* batchnorm.c: batch normalization of a hidden layer's pre-activation, forward/backward pair.
 * Training normalizes with the mini-batch's own mean and biased variance and backpropagates
 * through them; the statistics are column reductions over the whole batch, so the training loop
 * calls the *_stats / *_params halves on column slabs and the rest on row slabs. */

void FN(batchnorm_stats)(real *mean, real *inv_std, real *running_mean, real *running_var,
                         const real *a, int B, int n, int lo, int hi)
{
    /* a (B, n); mean, inv_std and the running statistics (n,), columns [lo, hi) */
    for (int j = lo; j < hi; j++) { mean[j] = 0; inv_std[j] = 0; }
    for (int r = 0; r < B; r++) {
        const real *row = a + (int64_t)r * n;
        for (int j = lo; j < hi; j++) mean[j] += row[j];
    }
    for (int j = lo; j < hi; j++) mean[j] /= (real)B;
    /* two passes, not E[a^2] - E[a]^2, which cancels catastrophically in float32 */
    for (int r = 0; r < B; r++) {
        const real *row = a + (int64_t)r * n;
        for (int j = lo; j < hi; j++) {
            const real d = row[j] - mean[j];
            inv_std[j] += d * d;
        }
    }
    const real unbias = B > 1 ? (real)B / (real)(B - 1) : (real)1;
    const real m = (real)FASTMLP_BN_MOMENTUM;
    for (int j = lo; j < hi; j++) {
        const real var = inv_std[j] / (real)B;
        if (running_mean) {
            running_mean[j] = ((real)1 - m) * running_mean[j] + m * mean[j];
            running_var[j] = ((real)1 - m) * running_var[j] + m * var * unbias;
        }
        inv_std[j] = (real)1 / sqrt(var + (real)FASTMLP_BN_EPS);
    }
}

void FN(batchnorm_forward)(real *h, real *xhat, const real *mean, const real *inv_std,
                           const real *gamma, const real *beta, int rows, int n, int activation,
                           double p, uint64_t seed, int64_t t, int row0)
{
    /* h holds a (rows, n) on entry and g(gamma * xhat + beta) (dropped out) on return;
     * xhat (rows, n) is kept for backward. Row by row, so the epilogue finds the row in cache. */
    for (int r = 0; r < rows; r++) {
        real *hrow = h + (int64_t)r * n, *xrow = xhat + (int64_t)r * n;
        for (int j = 0; j < n; j++) {
            xrow[j] = (hrow[j] - mean[j]) * inv_std[j];
            hrow[j] = xrow[j];
        }
        FN(activation_forward)(hrow, n, gamma, beta, 1, n, 0, activation, p, seed, t, row0 + r);
    }
}

void FN(batchnorm_backward_params)(real *dgamma, real *dbeta, const real *dz, const real *xhat,
                                   int B, int n, int lo, int hi)
{
    /* dz, xhat (B, n); dgamma, dbeta (n,), columns [lo, hi) */
    for (int j = lo; j < hi; j++) { dgamma[j] = 0; dbeta[j] = 0; }
    for (int r = 0; r < B; r++) {
        const real *drow = dz + (int64_t)r * n, *xrow = xhat + (int64_t)r * n;
        for (int j = lo; j < hi; j++) {
            dgamma[j] += drow[j] * xrow[j];
            dbeta[j] += drow[j];
        }
    }
}

void FN(batchnorm_backward)(real *dz, const real *xhat, const real *gamma, const real *inv_std,
                            const real *dgamma, const real *dbeta, int B, int rows, int n)
{
    /* dz, xhat (rows, n): a slab of the batch of B rows. dJ/dxhat = gamma dz; through
     * xhat = (a - mean) * inv_std with mean and var of the batch, dJ/da is
     * inv_std / B * (B dxhat - sum dxhat - xhat sum(dxhat xhat)). */
    const real inv_B = (real)1 / (real)B;
    for (int r = 0; r < rows; r++) {
        real *drow = dz + (int64_t)r * n;
        const real *xrow = xhat + (int64_t)r * n;
        for (int j = 0; j < n; j++)
            drow[j] = gamma[j] * inv_std[j] * inv_B
                      * ((real)B * drow[j] - dbeta[j] - xrow[j] * dgamma[j]);
    }
}
