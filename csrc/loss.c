/* loss.c: each output unit type fused with its loss. One pass over a row of output
 * pre-activations gives the loss and the delta that starts backpropagation. */

double FN(output_loss)(real *a, const real *Y, const real *sample_weight, int rows, int k,
                       int output, double inv_sum_w)
{
    /* a, Y (rows, k), sample_weight (rows,) or NULL. a becomes the delta dJ/da. */
    double total = 0;
    for (int r = 0; r < rows; r++) {
        real *arow = a + (int64_t)r * k;
        const real *yrow = Y + (int64_t)r * k;
        const double w = sample_weight ? (double)sample_weight[r] : 1.0;
        const real coef = (real)(w * inv_sum_w);
        double loss = 0;
        if (output == FASTMLP_OUT_SOFTMAX) {
            /* -sum_j y_j log softmax_j = lse * sum_j y_j - sum_j y_j a_j, with the max
             * subtracted inside the log-sum-exp only for numerical stability */
            real amax = arow[0];
            for (int j = 1; j < k; j++) amax = arow[j] > amax ? arow[j] : amax;
            real sum_exp = 0, sum_y = 0, dot = 0;
            for (int j = 0; j < k; j++) {
                sum_exp += exp(arow[j] - amax);
                sum_y += yrow[j];
                dot += yrow[j] * arow[j];
            }
            const real lse = amax + log(sum_exp);
            loss = (double)lse * sum_y - dot;
            for (int j = 0; j < k; j++)
                arow[j] = (exp(arow[j] - lse) * sum_y - yrow[j]) * coef;
        } else if (output == FASTMLP_OUT_LOGISTIC) {
            for (int j = 0; j < k; j++) {
                const real x = arow[j], y = yrow[j];
                const real e = exp(-fabs(x));  /* in (0, 1]: never overflows */
                /* -y log f - (1 - y) log(1 - f) = max(x, 0) - y x + log(1 + exp(-|x|)) */
                loss += (x > 0 ? x : (real)0) - y * x + log1p(e);
                const real f = x >= 0 ? (real)1 / ((real)1 + e) : e / ((real)1 + e);
                arow[j] = (f - y) * coef;
            }
        } else if (output == FASTMLP_OUT_EXP) {
            for (int j = 0; j < k; j++) {
                const real x = arow[j], y = yrow[j];
                const real f = exp(x);
                /* y log(y / f) - y + f with log f = x: no log of an underflowed f; the
                 * y log y term (0 at y = 0) makes a perfect fit cost 0, as scikit-learn's */
                loss += (y > 0 ? (double)y * log(y) : 0.0) - (double)y * x - y + f;
                arow[j] = (f - y) * coef;
            }
        } else {
            const real inv_k = (real)1 / (real)k;
            for (int j = 0; j < k; j++) {
                const real d = arow[j] - yrow[j];
                loss += 0.5 * (double)d * d;
                arow[j] = d * inv_k * coef;
            }
            loss /= k;
        }
        total += w * loss;
    }
    return total;
}

void FN(output_forward)(real *a, int rows, int k, int output)
{
    /* a (rows, k) in place */
    if (output == FASTMLP_OUT_SOFTMAX) {
        for (int r = 0; r < rows; r++) {
            real *arow = a + (int64_t)r * k;
            real amax = arow[0], sum = 0;
            for (int j = 1; j < k; j++) amax = arow[j] > amax ? arow[j] : amax;
            for (int j = 0; j < k; j++) { arow[j] = exp(arow[j] - amax); sum += arow[j]; }
            const real inv = (real)1 / sum;
            for (int j = 0; j < k; j++) arow[j] *= inv;
        }
    } else if (output == FASTMLP_OUT_LOGISTIC) {
        FN(activation_forward)(a, k, NULL, NULL, rows, k, 0, FASTMLP_SIGMOID, 0.0, 0, 0, 0);
    } else if (output == FASTMLP_OUT_EXP) {
        for (int64_t i = 0; i < (int64_t)rows * k; i++) a[i] = exp(a[i]);
    }
}
