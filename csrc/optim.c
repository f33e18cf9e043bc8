/* optim.c: every optimizer as one fused pass over a range of the flat parameter buffer:
 * the L2 term joins the gradient, the state is updated and the parameter stepped, all while
 * the four arrays stream through cache once. */

/* One branch-free loop per solver over params[lo, hi); decay is alpha on weights, 0 elsewhere.
 * The L2 term's sum of squares is not theirs: sums_of_squares, which step.c calls first.
 * The running averages are the lerp s += (1 - beta) * (x - s), with 1 - beta taken in double
 * before it is rounded to real: beta_2 or rho of 1 - 1e-9 rounds to 1 in float32, which made
 * (real)1 - beta 0, froze the averages at 0 and sent every step to lr * g / epsilon. */
FASTMLP_VECTOR_CLONES
static void FN(step_range)(real *p, const real *grad, real *s0, real *s1,
                           const fastmlp_optim *opt, real lr, real decay, int64_t t,
                           int64_t lo, int64_t hi)
{
    switch (opt->solver) {
    case FASTMLP_SGD: {
        const real mu = (real)opt->momentum;
        if (opt->nesterov)
            for (int64_t i = lo; i < hi; i++) {
                const real g = grad[i] + decay * p[i];
                s0[i] = mu * s0[i] + g;
                p[i] -= lr * (g + mu * s0[i]);
            }
        else
            for (int64_t i = lo; i < hi; i++) {
                const real g = grad[i] + decay * p[i];
                s0[i] = mu * s0[i] + g;
                p[i] -= lr * s0[i];
            }
        break;
    }
    case FASTMLP_ADAGRAD: {
        const real eps = (real)opt->epsilon;
        for (int64_t i = lo; i < hi; i++) {
            const real g = grad[i] + decay * p[i];
            s0[i] += g * g;
            p[i] -= lr * g / (sqrt(s0[i]) + eps);
        }
        break;
    }
    case FASTMLP_RMSPROP: {
        const real lerp = (real)(1.0 - opt->rho), eps = (real)opt->epsilon;
        for (int64_t i = lo; i < hi; i++) {
            const real g = grad[i] + decay * p[i];
            s0[i] += lerp * (g * g - s0[i]);
            p[i] -= lr * g / (sqrt(s0[i]) + eps);
        }
        break;
    }
    case FASTMLP_ADAM: {
        const real lerp1 = (real)(1.0 - opt->beta_1), lerp2 = (real)(1.0 - opt->beta_2);
        const real eps = (real)opt->epsilon;
        const real bias1 = (real)(1.0 - pow(opt->beta_1, (double)t));
        const real bias2 = (real)(1.0 - pow(opt->beta_2, (double)t));
        for (int64_t i = lo; i < hi; i++) {
            const real g = grad[i] + decay * p[i];
            s0[i] += lerp1 * (g - s0[i]);
            s1[i] += lerp2 * (g * g - s1[i]);
            p[i] -= lr * (s0[i] / bias1) / (sqrt(s1[i] / bias2) + eps);
        }
        break;
    }
    }
}

static double FN(step_rate)(const fastmlp_optim *opt, int64_t t)
{
    return opt->schedule == FASTMLP_LR_INVSCALING
               ? opt->learning_rate / pow((double)t, opt->power_t)
               : opt->learning_rate;
}

FASTMLP_VECTOR_CLONES
void FN(momentum_finish)(real *params, real *state, const fastmlp_optim *opt, int64_t t,
                         int64_t lo, int64_t hi, int last)
{
    /* v holds this batch's velocity; unless this is the call's last batch, it leaves
     * momentum * v for the next batch's GEMM to add its gradient to (beta = 1: no pass of
     * BLAS's own over its output). Two to four streams instead of optim_step's five. */
    const real lr = (real)FN(step_rate)(opt, t), decay = (real)opt->alpha;
    const real mu = (real)opt->momentum;
    real *p = params, *v = state;
    if (decay != 0 && last)
        for (int64_t i = lo; i < hi; i++) {
            v[i] += decay * p[i];
            p[i] -= lr * v[i];
        }
    else if (decay != 0)
        for (int64_t i = lo; i < hi; i++) {
            const real vi = v[i] + decay * p[i];
            p[i] -= lr * vi;
            v[i] = mu * vi;
        }
    else if (last)
        for (int64_t i = lo; i < hi; i++) p[i] -= lr * v[i];
    else
        for (int64_t i = lo; i < hi; i++) {
            p[i] -= lr * v[i];
            v[i] *= mu;
        }
}

void FN(optim_step_from)(real *params, const real *gradient, real *state,
                         const fastmlp_optim *opt, int64_t t, int64_t n_weights,
                         int64_t n_trainable, int64_t lo, int64_t hi)
{
    /* params (n_trainable,) of the flat layout, state (state slots, n_trainable), gradient
     * (hi - lo,): params[lo, hi)'s. The ranges start at lo, so no pointer leaves its array. */
    const double lr = FN(step_rate)(opt, t);
    real *p = params + lo, *s0 = state + lo;
    real *s1 = fastmlp_state_slots(opt->solver) == 2 ? state + n_trainable + lo : NULL;
    const int64_t mid = (hi < n_weights ? hi : (lo > n_weights ? lo : n_weights)) - lo;
    FN(step_range)(p, gradient, s0, s1, opt, (real)lr, (real)opt->alpha, t, 0, mid);
    FN(step_range)(p, gradient, s0, s1, opt, (real)lr, (real)0, t, mid, hi - lo);
}

void FN(optim_step)(real *params, const real *grads, real *state, const fastmlp_optim *opt,
                    int64_t t, int64_t n_weights, int64_t n_trainable, int64_t lo, int64_t hi)
{
    /* grads (n_trainable,) of the flat layout, as params */
    FN(optim_step_from)(params, grads + lo, state, opt, t, n_weights, n_trainable, lo, hi);
}

/* out[j] = the sum of (double)p[i]^2 over [lo[j], hi[j]), each added in order from 0, as a
 * loop over the range alone sums it (so the bits of the losses do not depend on how ranges
 * are grouped), for n <= FASTMLP_SUM_CHAINS ranges side by side. One chain's adds wait for
 * each other (4 cycles each, which made the squares of 784-1024-1024-10's weights 3.7% of an
 * epoch at alpha 1e-4, more than the step itself at alpha 0); FASTMLP_SUM_CHAINS chains
 * overlap their latencies. */
FASTMLP_VECTOR_CLONES
void FN(sums_of_squares)(const real *p, const int64_t *lo, const int64_t *hi, int n,
                         double *out)
{
    enum { K = FASTMLP_SUM_CHAINS };
    double s[K] = {0};
    const real *x[K];
    int64_t common = n > 0 ? hi[0] - lo[0] : 0;
    for (int j = 0; j < K; j++) {
        /* lanes past n repeat range 0, and are dropped */
        const int from = j < n ? j : 0;
        x[j] = p + lo[from];
        if (j < n && hi[j] - lo[j] < common) common = hi[j] - lo[j];
    }
    for (int64_t i = 0; i < common; i++)
#pragma GCC unroll 8
        for (int j = 0; j < K; j++) s[j] += (double)x[j][i] * x[j][i];
    for (int j = 0; j < n; j++) {
        for (int64_t i = lo[j] + common; i < hi[j]; i++) s[j] += (double)p[i] * p[i];
        out[j] = s[j];
    }
}
