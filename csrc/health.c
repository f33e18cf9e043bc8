/* health.c: the lecture's layer health, counted by train_epoch while the data is in cache.
 *
 * health_forward runs on each slab of a hidden layer's output right after its epilogue wrote
 * it (batch.c), per unit: the examples on which it is near a bound (tanh, sigmoid) or active
 * (relu), and the sum of its outputs. health_update runs on each optimizer chunk of the
 * epoch's last update, per weight layer: the sums of squares of the gradient, of the weights
 * before and after, and of the update (the gradient's by health_gradient_sum, which step.c
 * also calls in backward where fused momentum stores no gradient). They write only their
 * caller's slots (a part's row of counts, a chunk's row of sums), which the caller reduces in
 * part or chunk order: the result does not depend on the thread count. */

FASTMLP_VECTOR_CLONES
void FN(health_forward)(int64_t *count, double *sum, real *h, int ld, int rows, int n, int col0,
                        int activation, double margin, double p, uint64_t seed, int64_t t,
                        int row0)
{
    /* h (rows, n), row stride ld: units [col0, col0 + n) of the layer; count, sum (n,). The
     * epilogue ran without dropout, so health sees g(a) of every unit; the dropout follows. */
    const real high = (real)(1.0 - margin), low = (real)margin;
    for (int r = 0; r < rows; r++) {
        const real *row = h + (int64_t)r * ld;
        switch (activation) {  /* one branch-free loop per activation: they vectorize */
        case FASTMLP_RELU:
            for (int j = 0; j < n; j++) count[j] += row[j] > 0;
            break;
        case FASTMLP_TANH:
            for (int j = 0; j < n; j++) count[j] += fabs(row[j]) >= high;
            break;
        case FASTMLP_SIGMOID:
            for (int j = 0; j < n; j++) count[j] += (row[j] <= low) | (row[j] >= high);
            break;
        default:
            break;
        }
        for (int j = 0; j < n; j++) sum[j] += (double)row[j];
    }
    if (p > 0)
        FN(activation_forward)(h, ld, NULL, NULL, rows, n, col0, FASTMLP_IDENTITY, p, seed, t,
                               row0);
}

FASTMLP_VECTOR_CLONES
double FN(health_gradient_sum)(const real *g, const real *w, double alpha, int64_t n)
{
    /* ||g + alpha * w||^2 over n weights, g the data term's gradient (what the step adds the
     * L2 term to). Eight partial sums in a fixed order: they vectorize, where one sum is a
     * chain of dependent adds. */
    enum { SUMS = 8 };
    const real decay = (real)alpha;
    double gg[SUMS] = {0};
    for (int64_t i0 = 0; i0 < n; i0 += SUMS) {
        const int m = n - i0 < SUMS ? (int)(n - i0) : SUMS;
        for (int k = 0; k < m; k++) {
            const real gi = g[i0 + k] + decay * w[i0 + k];
            gg[k] += (double)gi * gi;
        }
    }
    double sum = 0;
    for (int k = 0; k < SUMS; k++) sum += gg[k];
    return sum;
}

FASTMLP_VECTOR_CLONES
void FN(health_update)(double *sums, const real *params, const real *before, const real *grads,
                       double alpha, const fastmlp_net *net, int64_t lo, int64_t hi,
                       int64_t summed_lo, int64_t summed_hi)
{
    /* params[lo, hi) after the step, before (hi - lo,) the same before it, grads (hi - lo,)
     * the data term's gradient outside [summed_lo, summed_hi), whose gradient sums
     * health_gradient_sum added before (step.c, under fused momentum); sums (n_layers, 4) +=
     * per weight layer, over its weights in [lo, hi): ||g||^2 with g = grads + alpha * W (what
     * the step used), ||W_before||^2, ||W_after||^2, ||W_after - W_before||^2. Eight partial
     * sums per measure, as health_gradient_sum's. */
    enum { SUMS = 8 };
    for (int l = 0; l < net->n_layers; l++) {
        const int64_t w0 = net->w_offset[l];
        const int64_t w1 = w0 + (int64_t)net->units[l] * net->units[l + 1];
        const int64_t a = w0 > lo ? w0 : lo, b = w1 < hi ? w1 : hi;
        if (a >= b) continue;
        double *s = sums + 4 * l;
        /* the gradient's sums outside [summed_lo, summed_hi): below it, then above it */
        const int64_t below = b < summed_lo ? b : summed_lo, above = a > summed_hi ? a : summed_hi;
        if (a < below) s[0] += FN(health_gradient_sum)(grads + (a - lo), before + (a - lo), alpha,
                                                       below - a);
        if (above < b) s[0] += FN(health_gradient_sum)(grads + (above - lo),
                                                       before + (above - lo), alpha, b - above);
        double ww0[SUMS] = {0}, ww1[SUMS] = {0}, dd[SUMS] = {0};
        for (int64_t i0 = a; i0 < b; i0 += SUMS) {
            const int n = b - i0 < SUMS ? (int)(b - i0) : SUMS;
            for (int k = 0; k < n; k++) {
                const int64_t i = i0 + k;
                const real w = before[i - lo], d = params[i] - w;
                ww0[k] += (double)w * w;
                ww1[k] += (double)params[i] * params[i];
                dd[k] += (double)d * d;
            }
        }
        for (int k = 0; k < SUMS; k++) {
            s[1] += ww0[k]; s[2] += ww1[k]; s[3] += dd[k];
        }
    }
}
