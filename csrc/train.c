/* train.c: whole epochs of mini-batch training (train_epoch), and a gradient for checking
 * (batch_gradient); inference: predict.c. Along the data's path: workspace.c lays out the
 * call's workspace and context, batch.c runs each batch's forward and backward pass, step.c
 * the optimizer's step, chunk by chunk; train_epoch drives the batches (per batch: the pass,
 * the tied copies' gradients, then the step with the next batch's rows gathered behind it and
 * the loss of the batch before summed). How the threads share the work: train.h. */

#include "train.h"

/* tie_gradients' squares of the decoder copies for `batch`: two sets, by the batch's parity,
 * as chunk_sumsq, since a batch's loss is summed during the next batch's step */
static double *FN(tied_squares)(const FN(context) *c, int64_t batch)
{
    return c->tied_sumsq + (batch & 1) * FN(tied_rows)(c->net);
}

/* batch_loss[batch] = J_b * |b| of a batch whose step is done: its data term and its chunks'
 * sums of squares, in chunk order */
static void FN(batch_loss)(const FN(context) *c, double *batch_loss, int64_t batch, int64_t n,
                           int batch_size, int64_t n_batches)
{
    const double *chunk_sumsq = c->chunk_sumsq + (batch & 1) * c->n_chunks;
    double sumsq = 0;
    for (int64_t chunk = 0; chunk < c->n_chunks; chunk++) sumsq += chunk_sumsq[chunk];
    if (c->net->n_tied) {  /* a shared matrix is penalized once */
        const double *tied = FN(tied_squares)(c, batch);
        for (int64_t r = 0; r < FN(tied_rows)(c->net); r++) sumsq -= tied[r];
    }
    batch_loss[batch] = (c->data_loss[batch & 1] + 0.5 * c->opt->alpha * sumsq) *
                        fastmlp_batch_rows(n, batch_size, batch, n_batches);
}

int FN(train_epoch)(real *params, real *grads, real *state, real *workspace, double *batch_loss,
                    int64_t *t, const FN(fastmlp_input) *X, const real *Y,
                    const real *sample_weight, const int64_t *order, int64_t n, int batch_size,
                    const fastmlp_net *net, const fastmlp_optim *opt, uint64_t seed,
                    int n_parts, int n_threads, double max_seconds, fastmlp_health *health,
                    const real *src_params, const real *src_state, int *all_finite)
{
    FN(context) c = {0};
    c.net = net; c.opt = opt; c.params = params; c.grads = grads; c.state = state;
    c.src_params = src_params == params ? NULL : src_params;
    c.src_state = src_state == state ? NULL : src_state;
    c.X = X; c.Y = Y; c.sample_weight = sample_weight; c.update_running = 1; c.seed = seed;
    c.parts = n_parts > 0 ? n_parts : 1;
    if (FN(context_init)(&c, workspace, net, FN(max_batch)(net, batch_size), X->dense == NULL)
        != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    /* Where the step goes (train.h): into backward for every layer the tiles take whole
     * (stepped_init), or, where some layer cannot be, plain SGD's momentum fused into the
     * backward GEMMs (fused_range; Nesterov at momentum 0 is plain SGD, the same bits:
     * p -= lr * (g + 0 * v) and v = g after the call's last step, either way); tied copies
     * need their own gradients summed before any step: neither for them. */
    fastmlp_fused_range(net, opt, X->dense == NULL, c.parts, c.tiles, &c.fused_lo, &c.fused_hi);
    const int64_t n_batches = fastmlp_epoch_batches(n, batch_size, net->batch_norm);
    if (FN(stepped_init)(&c, X->dense == NULL) != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    const int64_t t0 = *t;
    c.first_step = t0 + 1;
    if (FN(health_init)(&c, health) != FASTMLP_OK) {
        FN(context_free)(&c);
        return FASTMLP_ENOMEM;
    }
    const double started = fastmlp_seconds();
    /* the call's last batch: the epoch's, or (max_seconds > 0) the one that ends near the time
     * limit, which part 0 of a batch's step sets one batch ahead: the last batch's step must
     * know it is the last (momentum_finish leaves the plain velocity). Every thread reads it
     * only after waiting for the step before: it changes at most once, from n_batches - 1 to
     * the batch after the one that set it, so each thread reads the same batch count and the
     * same is_last. Layer health measures only the epoch's last batch, n_batches - 1 of the
     * rows left (an epoch is often many calls of ~50 ms, training.Stretches): what the
     * measured update costs, the gradient health_gradient recomputes included, is paid once
     * per epoch, not once per call. */
    int64_t last = n_batches - 1;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads < c.parts ? (n_threads > 0 ? n_threads : 1) : c.parts)
#endif
    {
        fastmlp_worker w = fastmlp_worker_here();
        /* v := momentum * v on the fused weights (v of the source state, if any), each chunk
         * by its part; the first GEMM to add to it comes after every part of this phase. And
         * the first batch's rows. */
        const real *velocity = c.src_state ? c.src_state : state;
        FASTMLP_EACH_PART(&c.team, &w, part, FASTMLP_AFTER_ALL) {
            for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) {
                if (c.chunk_part[chunk] != part) continue;
                int64_t lo, hi, a, b;
                FN(chunk_range)(&c, chunk, &lo, &hi);
                FN(fused_part)(&c, lo, hi, &a, &b);
                for (int64_t i = a; i < b; i++) state[i] = velocity[i] * (real)opt->momentum;
            }
            if (n_batches > 0)
                FN(gather_rows)(&c, order, fastmlp_batch_rows(n, batch_size, 0, n_batches),
                                t0 + 1, part);
        }
        for (int64_t batch = 0;; batch++) {
            /* the step before (or the scaling pass) done: the weights, this batch's rows and
             * whether this batch is the last */
            fastmlp_wait_all(&c.team, &w);
            const int64_t last_now = fastmlp_read(&last);
            if (batch > last_now) break;
            const int is_last = batch == last_now;
            const int measured = c.health && batch == n_batches - 1;  /* then is_last too */
            const int64_t b0 = batch * batch_size;
            const int B = fastmlp_batch_rows(n, batch_size, batch, n_batches);
            const int64_t b1 = b0 + B;
            const int64_t step = t0 + batch + 1;
            double *sumsq = c.chunk_sumsq + (batch & 1) * c.n_chunks;
            const double inv_sum_w = FN(forward_backward)(&c, order + b0, B, step, &w, 1,
                                                          measured, is_last);
            if (net->n_tied)  /* a chunk's step reads the gradients other parts tie */
                FASTMLP_EACH_PART(&c.team, &w, part, FASTMLP_AFTER_ALL)
                    FN(tie_gradients)(grads, FN(tied_squares)(&c, batch),
                                      FN(weights_of)(&c, step), net, part, c.parts);
            /* the step, each chunk by the part whose dW slab holds it, and the next batch's
             * rows, behind it: the next forward needs none of its own */
            FASTMLP_EACH_PART(&c.team, &w, part, FASTMLP_AFTER_ALL) {
                FN(part_chunks)(&c, part, w.tid, step, is_last, measured, sumsq, 1);
                if (!is_last)
                    FN(gather_rows)(&c, order + b1,
                                    fastmlp_batch_rows(n, batch_size, batch + 1, n_batches),
                                    step + 1, part);
                if (part != 0) continue;
                /* this batch's data term (the next batch's loss phase rewrites row_loss), the
                 * batch before's loss (all its steps are done), and the time limit */
                double data_loss = 0;
                for (int r = 0; r < B; r++) data_loss += c.row_loss[r];
                c.data_loss[batch & 1] = data_loss * inv_sum_w;
                if (batch > 0) FN(batch_loss)(&c, batch_loss, batch - 1, n, batch_size, n_batches);
                if (!is_last && max_seconds > 0) {
                    /* stop after the next batch if it would end past the limit, at this rate */
                    const double elapsed = fastmlp_seconds() - started;
                    if (elapsed * (batch + 2) / (batch + 1) >= max_seconds)
                        fastmlp_write(&last, batch + 1);
                }
            }
        }
    }
    if (last >= 0) FN(batch_loss)(&c, batch_loss, last, n, batch_size, n_batches);
    *t = t0 + last + 1;
    if (all_finite) {
        int bad = 0;
        for (int64_t chunk = 0; chunk < c.n_chunks; chunk++) bad |= c.chunk_bad[chunk];
        all_finite[0] = !bad;
        all_finite[1] = !c.input_bad;
    }
    FN(health_finish)(&c, n_batches > 0 && last == n_batches - 1);
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
        fastmlp_worker w = fastmlp_worker_here();
        const double inv = FN(forward_backward)(&c, order, B, t, &w, 0, 0, 0);
        if (w.tid == 0) inv_sum_w = inv;  /* every thread computes the same */
    }
    double data_loss = 0, sumsq = 0;
    for (int r = 0; r < B; r++) data_loss += c.row_loss[r];
    if (net->n_tied) {  /* both copies get the shared gradient (and below its L2 term) */
        FN(tie_gradients)(grads, c.tied_sumsq, params, net, 0, 1);
        for (int64_t r = 0; r < FN(tied_rows)(net); r++) sumsq -= c.tied_sumsq[r];
    }
    for (int64_t i = 0; i < net->n_weights; i++) {
        sumsq += (double)params[i] * params[i];
        grads[i] += (real)alpha * params[i];
    }
    *loss = data_loss * inv_sum_w + 0.5 * alpha * sumsq;
    FN(context_free)(&c);
    return FASTMLP_OK;
}
