/* fastmlp.h: the whole C API of fastmlp's kernels.
 *
 * Plain C99, no Python.h. Every kernel is written once over a `real` type and compiled twice:
 * fastmlp_f32.c and fastmlp_f64.c define `real` and the FN() suffix, then include the kernel
 * sources, so `dense_forward` exists as dense_forward_f32 and dense_forward_f64.
 *
 * Conventions (after llm.c): output arguments first, then inputs, then sizes. Matrices are
 * row-major and C-contiguous unless an `ld` (row stride) is given. Kernels trust their caller:
 * the Python bridge (fastmlp/_core.pyx) validates everything before it calls in.
 *
 * Names follow the lecture: layer l computes the pre-activation a = h W + b from the layer's
 * input h, then its output g(a). The flat parameter buffer holds, in this order: every W_l,
 * every b_l, every batch-norm gamma_l and beta_l (the trainable part), then the batch-norm
 * running means and variances. Gradients and optimizer state have the trainable part's layout.
 */
#ifndef FASTMLP_KERNEL_PASS
#ifndef FASTMLP_H
#define FASTMLP_H

#include <stdint.h>

/* FASTMLP_ENONFINITE: predict found an output that is not finite (finite rows that overflow on
 * their way through the layers), or, asked to check its input, a row whose first-layer
 * pre-activation is not finite (a NaN or inf in X, or finite values that overflow) */
enum { FASTMLP_OK = 0, FASTMLP_ENOMEM = -1, FASTMLP_ENONFINITE = -2 };

/* hidden-unit activations g */
enum { FASTMLP_IDENTITY = 0, FASTMLP_RELU = 1, FASTMLP_TANH = 2, FASTMLP_SIGMOID = 3 };
/* output units, each fused with its loss */
enum { FASTMLP_OUT_IDENTITY = 0,  /* squared error 0.5 * sum_j (f_j - y_j)^2 / n_outputs */
       FASTMLP_OUT_LOGISTIC = 1,  /* binary cross-entropy summed over outputs */
       FASTMLP_OUT_SOFTMAX = 2,   /* cross-entropy -sum_j y_j log f_j */
       FASTMLP_OUT_EXP = 3 };     /* f = exp(a), half Poisson deviance
                                   * sum_j y_j log(y_j / f_j) - y_j + f_j (y >= 0) */
enum { FASTMLP_SGD = 0, FASTMLP_ADAGRAD = 1, FASTMLP_RMSPROP = 2, FASTMLP_ADAM = 3 };
/* within an epoch the rate is either fixed or lr0 / t^power_t (t = update count) */
enum { FASTMLP_LR_CONSTANT = 0, FASTMLP_LR_INVSCALING = 1 };
/* noise on the gathered input rows of a denoising autoencoder (corruption.c) */
enum { FASTMLP_CORRUPT_NONE = 0, FASTMLP_CORRUPT_MASK = 1, FASTMLP_CORRUPT_GAUSSIAN = 2 };

/* The elementwise kernels (epilogues, derivatives, optimizer steps) are compiled for AVX-512,
 * AVX2 and baseline x86-64, the loader picking the widest the CPU has: the extension is built
 * for whatever x86-64 it lands on, so -march=native is not an option. The build turns off
 * floating-point contraction (setup.py), so every clone gives the same bits (checked: four
 * fits, baseline build against AVX-512 clones, bitwise equal). 784-256-256-10 trained +2.6%
 * and +3.9% faster (near placement, medians of 4-5 alternating pairs); 784-100-10 and
 * 784-1024-1024-10 within noise (+0.6%; -1%, +0.7%). Clones need the loader's ifunc: glibc. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) \
    && __GNUC__ >= 12
#define FASTMLP_VECTOR_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTMLP_VECTOR_CLONES
#endif

#define FASTMLP_BN_EPS 1e-5
#define FASTMLP_BN_MOMENTUM 0.1

/* How many parts the work of a training batch of B rows is worth cutting into, at most `most`
 * (the machine's cores): each part is a slab of the batch's GEMMs (batch.c), run by one thread.
 * A batch costs about 6 * n_weights * B flops and 2L+2 phases that wait for other parts' work;
 * below ~4 MFLOP a part (~100 us of one core) those waits and wake-ups eat the gain, and on a
 * loaded machine a part held by a descheduled thread makes a small fit many times slower (measured,
 * when threads still waited at barriers:
 * 784-32-10 at batch 32, 4.9 MFLOP a batch, ran no faster on 2 threads; digits' 64-100-10 at
 * batch 200, 8.9 MFLOP, 1.3x faster). The parts, not the threads that run them, fix the bits of
 * the result. */
#define FASTMLP_FLOPS_PER_PART 4e6
static inline int fastmlp_work_parts(int64_t n_weights, int64_t B, int most)
{
    const double flops = 6.0 * (double)n_weights * (double)B;
    const double useful = flops / FASTMLP_FLOPS_PER_PART;
    if (most < 1) most = 1;
    return useful < 1 ? 1 : useful < most ? (int)useful : most;
}

/* The batches of an epoch of n rows in batches of batch_size: the last takes the rest. Batch
 * statistics of one row are meaningless (variance 0), so with batch norm a trailing single row
 * joins the batch before it. train_epoch and the Python epoch loop (which cuts an epoch into
 * stretches of batches) both count by this. */
static inline int64_t fastmlp_epoch_batches(int64_t n, int64_t batch_size, int batch_norm)
{
    int64_t batches = (n + batch_size - 1) / batch_size;
    if (batch_norm && batches > 1 && n - (batches - 1) * batch_size == 1) batches--;
    return batches;
}

/* The rows of n_trainable values the solver's state holds: adam's m and v, one otherwise */
static inline int fastmlp_state_slots(int solver)
{
    return solver == FASTMLP_ADAM ? 2 : 1;
}

/* The architecture and where each parameter block sits in the flat buffer (type-agnostic). */
typedef struct {
    int n_layers;               /* weight layers: the hidden layers and the output layer */
    const int *units;           /* (n_layers + 1,): units[0] = n_features, units[n_layers] = n_outputs */
    int activation;             /* FASTMLP_IDENTITY .. FASTMLP_SIGMOID, for every hidden layer */
    int output;                 /* FASTMLP_OUT_* */
    const double *dropout;      /* (n_layers - 1,) drop probability of each hidden layer's units, or NULL */
    int batch_norm;             /* 1: batch norm on every hidden pre-activation (those layers use no b) */
    const int64_t *w_offset;    /* (n_layers,) W_l is (units[l], units[l + 1]) at params + w_offset[l] */
    const int64_t *b_offset;    /* (n_layers,) b_l is (units[l + 1],) */
    const int64_t *gamma_offset, *beta_offset;  /* (n_layers - 1,) when batch_norm, else NULL */
    const int64_t *mean_offset, *var_offset;    /* running statistics, (n_layers - 1,) or NULL */
    int64_t n_weights;          /* params[0, n_weights) are the weights: the only L2-penalized part */
    int64_t n_trainable;        /* params[0, n_trainable) are trained; running statistics follow */
    int corruption;             /* FASTMLP_CORRUPT_*: noise on the training input rows (dense X) */
    double corruption_level;    /* mask: the fraction of inputs zeroed; gaussian: the noise std */
    int n_tied;                 /* tied weight matrices (tied.c): pairs (a, b), W_b = W_a^T */
    const int *tied;            /* (n_tied, 2) the pairs, a < b, or NULL */
} fastmlp_net;

/* Optimizer hyperparameters (shared/API.md gives each update rule). */
typedef struct {
    int solver;                 /* FASTMLP_SGD (momentum, nesterov), _ADAGRAD, _RMSPROP, _ADAM */
    int schedule;               /* FASTMLP_LR_CONSTANT or FASTMLP_LR_INVSCALING */
    double learning_rate;       /* the rate (constant), or lr0 (invscaling) */
    double power_t;
    double momentum;            /* sgd */
    int nesterov;               /* sgd */
    double beta_1, beta_2;      /* adam */
    double rho;                 /* rmsprop */
    double epsilon;             /* adagrad, rmsprop, adam */
    double alpha;               /* L2: the step adds alpha * W to the weights' gradient */
} fastmlp_optim;

/* How a dense X stores its values: the model's type or the other one (input.c converts). */
enum { FASTMLP_FLOAT32 = 0, FASTMLP_FLOAT64 = 1 };

/* Layer health that train_epoch accumulates (health.c) when given one; the caller zeroes it at
 * an epoch's start and reads it at its end. An epoch may be several calls, each ending where
 * its time limit falls and each given the rest of the epoch's rows: the counts add up over
 * them, and the call that trains the last batch of its rows (the epoch's last update) writes
 * the norms; a call that stops before it leaves them. Hidden layer l's units sit at columns
 * [sum(units[1..l]), + units[l + 1]) of the per-part rows. */
typedef struct {
    int64_t *count;             /* (n_parts, hidden_units): per part and hidden unit, the examples
                                 * on which its output g(a), before dropout, was within margin of
                                 * a bound (tanh: |g| >= 1 - margin; sigmoid: g <= margin or
                                 * g >= 1 - margin) or above 0 (relu) */
    double *sum;                /* (n_parts, hidden_units): the sum of its outputs g(a) */
    int64_t hidden_units;       /* sum of units[1 .. n_layers - 1] */
    double margin;
    double *norms;              /* (n_layers, 4), overwritten by the call that trains the last
                                 * batch of its rows: over W_l, for that update, ||g||^2
                                 * (g = dJ/dW + alpha W, the batch's gradient the step used;
                                 * under fused momentum recomputed, to float rounding),
                                 * ||W before||^2, ||W after||^2, ||update||^2 */
} fastmlp_health;

/* Rows of a data set: dense, or CSR sparse (then only the first layer sees it as sparse).
 * A dense X may hold float32 or float64 whatever the model's type, in any memory order: value
 * (i, j) is at dense + i * row_stride + j * col_stride bytes, and rows are converted as they
 * are gathered (input.c). `shift` and `scale` standardize each column on the fly,
 * x' = (x - shift) * scale, as rows are gathered, so the caller's X is never copied. */
#define FASTMLP_INPUT_STRUCT(real) struct {                                                      \
    const void *dense;          /* (n, n_features) values of dense_type, or NULL when sparse */ \
    int dense_type;             /* FASTMLP_FLOAT32 or FASTMLP_FLOAT64 */                        \
    int64_t row_stride, col_stride;  /* bytes between rows, between columns */                 \
    const real *data;           /* CSR values, column indices and row pointers (n + 1,) */     \
    const int32_t *indices;                                                                     \
    const int64_t *indptr;                                                                      \
    const real *shift, *scale;  /* (n_features,) or NULL: no standardization */                \
}

#define FASTMLP_KERNEL_PASS
#define real float
#define FN(name) name##_f32
#include "fastmlp.h"
#undef real
#undef FN
#define real double
#define FN(name) name##_f64
#include "fastmlp.h"
#undef real
#undef FN
#undef FASTMLP_KERNEL_PASS

int fastmlp_openmp_enabled(void);
int fastmlp_max_threads(void);

/* The dense layers' products by our own register tiles (tiles.c) where the build has them
 * (x86-64, GCC or Clang) and the CPU runs AVX-512 (F and VL) or AVX2 with FMA; otherwise BLAS.
 * fastmlp_tiles_available: the widest kind this build and CPU can run (FASTMLP_TILES_OFF:
 * none); fastmlp_tiles_enabled: the kind in use. fastmlp_set_tiles(kind) picks one, the widest
 * where `kind` is more than the CPU has, FASTMLP_TILES_OFF sending every product back to BLAS
 * (tests and benchmarks compare them); it returns the kind before the call. Both kinds read the
 * same packed panels and give the same bits on the products both run (fastmlp_tiles_run). */
enum { FASTMLP_TILES_OFF = 0, FASTMLP_TILES_AVX2 = 1, FASTMLP_TILES_AVX512 = 2 };
int fastmlp_tiles_available(void);
int fastmlp_tiles_enabled(void);
int fastmlp_set_tiles(int kind);
/* Whether a product whose result is `cols` wide runs on the tiles of `kind`: the AVX-512 tiles
 * run every product, the AVX2 tiles only those at most FASTMLP_TILE_AVX2_MAX_COLS wide, the
 * rest going to BLAS. Measured on one Zen 4 core (AVX2 tiles forced; BLAS held to its AVX2
 * kernels, as on a CPU without AVX-512; bench/tiles_vs_blas.py, thread CPU time, medians of 3,
 * quiet machine), samples/s of training and rows/s of prediction, tiles against BLAS:
 * 784-100-10 +16% / -14%, 784-256-256-10 +17% / +6%, but 784-512-512-10 -28% / -31%,
 * 784-1024-10 -24% / -39%, 784-2048-10 -30% / -31%, 784-1024-1024-10 -31% / -24% (on Zen 5,
 * where 256-bit FMAs run at half the 512-bit rate: +8% / +6% on 784-256-256-10, -16% / -6% on
 * 784-1024-1024-10). With this rule, in a later run of the same kind: 784-512-512-10 +9% / +10%,
 * 784-1024-1024-10 -3% / -8%, 784-100-10 and 784-256-256-10 (all their products on the tiles,
 * as before) +0% / -3% and -0% / -7%: alike runs of these measures move by up to 15%. The rule
 * goes by the result's width, which the shapes fix, so training's bits stay the same for any
 * thread count. */
#define FASTMLP_TILE_AVX2_MAX_COLS 256
static inline int fastmlp_tiles_run(int kind, int cols)
{
    return kind == FASTMLP_TILES_AVX512 ||
           (kind == FASTMLP_TILES_AVX2 && cols <= FASTMLP_TILE_AVX2_MAX_COLS);
}
/* Whether train_epoch over n rows in batches of batch_size, cut into n_parts parts (sparse: X
 * is a sparse matrix), sends any product to BLAS under the tiles enabled now: where the tiles
 * are off, every product; otherwise those too small for a register tile, a slab of fewer than
 * FASTMLP_TILE_ROWS rows, or those the AVX2 tiles leave to BLAS (train.h's fastmlp_tiles_take),
 * and under fused SGD momentum (opt: its solver, momentum and nesterov are read) layer
 * health's recomputed gradient (train.h's fastmlp_fuses_momentum). The bridge caps BLAS at
 * one thread around training only where it does: the cap costs 12-18 us of Python a call
 * warm, more after the C work left the interpreter's caches cold (a small partial_fit's
 * Python side). */
int fastmlp_training_uses_blas(const fastmlp_net *net, const fastmlp_optim *opt, int64_t n,
                               int batch_size, int n_parts, int sparse);
/* The trainable parameters whose gradient train_epoch stores in its grads buffer (the rest of
 * it is never written, so its pages never become resident), for batches cut into n_parts parts
 * under the tiles enabled now (opt: its solver, momentum and nesterov are read): all of them
 * but the weights of fused momentum (train.h's fastmlp_fused_range) and of the layers stepped
 * in backward (fastmlp_layer_steps). */
int64_t fastmlp_stored_gradient(const fastmlp_net *net, const fastmlp_optim *opt, int n_parts,
                                int sparse);
/* The products gemm (dense.c) sent to BLAS in this process, both precisions: tests check
 * fastmlp_training_uses_blas against what training does. */
extern int64_t fastmlp_blas_calls;
/* Whether the CPU's FMA units are 512 bits wide, so that half a 512-bit vector costs as much as
 * a whole one (AMD family 26, Zen 5, on); Zen 4 (family 25) splits a 512-bit FMA in two halves.
 * The tiles compute a panel's last half vector as a whole one where this holds (tiles.c). */
int fastmlp_fma_full_width(void);

#define FASTMLP_SUM_CHAINS 8         /* ranges sums_of_squares adds side by side */
#define FASTMLP_TILE_ROWS 6          /* rows of one register tile */
#define FASTMLP_TILE_VECTORS 4       /* 512-bit vectors across a full panel of W's columns */
#define FASTMLP_TILE_BLOCK_ROWS 96   /* rows that go through every panel before the next rows:
                                      * their inputs stay in L2 (784 float32 inputs: 300 KB) */
/* Prediction of fewer rows runs on one OpenMP thread and leaves BLAS its own threads (prediction.py
 * asks _core for this number): there BLAS on two cores beat the tiles on one (64 rows of
 * 784-100-10 took 1.3x as long by tiles, 128 rows of 784-1024-1024-10 1.6x). From here on the
 * OpenMP threads own the cores, each with single-threaded BLAS or the tiles. */
#define FASTMLP_PREDICT_THREADED_ROWS 257

#endif /* FASTMLP_H */
#else  /* FASTMLP_KERNEL_PASS: the typed API, read once per `real` */

typedef FASTMLP_INPUT_STRUCT(real) FN(fastmlp_input);

/* BLAS GEMM in the Fortran convention that scipy.linalg.cython_blas exports (sgemm / dgemm). */
typedef void (*FN(fastmlp_gemm_t))(char *transa, char *transb, int *m, int *n, int *k,
                                   real *alpha, real *a, int *lda, real *b, int *ldb,
                                   real *beta, real *c, int *ldc);
/* and GEMV (sgemv / dgemv), for products of one row */
typedef void (*FN(fastmlp_gemv_t))(char *trans, int *m, int *n, real *alpha, real *a, int *lda,
                                   real *x, int *incx, real *beta, real *y, int *incy);
/* Set once at import by the bridge; every product below goes through them. */
void FN(fastmlp_set_blas)(FN(fastmlp_gemm_t) gemm, FN(fastmlp_gemv_t) gemv);

/* gemm: C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, all row-major with row
 * strides lda, ldb, ldc (the Fortran routine sees the transposes, so the operands swap).
 * One row times an untransposed B goes to GEMV, which streams B once instead of packing it. */
void FN(gemm)(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
              const real *B, int ldb, real beta, real *C, int ldc);

/* ---- dense.c: layers ---------------------------------------------------------------- */

/* activation_forward: the epilogue that follows each GEMM, in place on h (rows, n), row stride ld:
 *   h = g(h * scale + shift), then dropout: units dropped with probability p are zeroed and kept
 *   ones scaled by 1 / (1 - p). scale may be NULL (1); shift may be NULL (0). h may be a block of
 *   columns [col0, col0 + n) of a wider layer: the dropout mask of unit col0 + j of batch row
 *   row0 + r is keyed by (seed, t, row0 + r, col0 + j), whatever block computes it. */
void FN(activation_forward)(real *h, int ld, const real *scale, const real *shift, int rows,
                            int n, int col0, int activation, double p, uint64_t seed, int64_t t,
                            int row0);

/* activation_backward: delta = dh * g'(.) in place on dh (rows, n), with g' read from the saved
 *   output h (relu: h > 0, tanh: 1 - h^2, sigmoid: h (1 - h)); with dropout (p > 0) h is the
 *   output after the mask, so dropped units get 0 and kept ones the 1 / (1 - p) factor. dh and h
 *   have row stride ld and may be the block of columns [col0, col0 + n), as above. */
void FN(activation_backward)(real *dh, const real *h, int ld, int rows, int n, int col0,
                             int activation, double p, uint64_t seed, int64_t t, int row0);

/* dense_forward: out (rows, n_out) = g(inp (rows, n_in) @ W (n_in, n_out) + b) for one slab of
 *   rows, or only its columns [col0, col1), the activation (and dropout) fused in while the
 *   output is still in cache. inp has row stride ld_in. b may be NULL. */
void FN(dense_forward)(real *out, const real *inp, int ld_in, const real *W, const real *b,
                       int rows, int n_in, int n_out, int col0, int col1, int activation,
                       double p, uint64_t seed, int64_t t, int row0);

/* tiles.c, the register tiles: */

/* dense_packed_size / dense_pack: W (K, n_out), row stride ldw, copied into the panels
 *   dense_forward_tiled reads: for each run of FASTMLP_TILE_VECTORS * 64 bytes of columns, its K
 *   rows one after another, the last run's rows padded with zeros to whole (or half) 512-bit
 *   vectors. */
int64_t FN(dense_packed_size)(int K, int n_out);
void FN(dense_pack)(real *packed, const real *W, int ldw, int K, int n_out);

/* dense_forward_tiled: out (rows, n_out) = in (rows, K) @ W + b, then max(., 0) when relu,
 *   from W as dense_pack left it (ld_packed = 0) or, with the AVX-512 tiles, from W itself,
 *   row stride ld_packed (lanes past n_out are not read); out and in have row strides ldo and ld_in,
 *   b may be NULL, rows >= FASTMLP_TILE_ROWS. Each row's sums run over k in order, so a row's bits do not
 *   depend on the rows beside it. rows_after: rows of `in` past the last that exist, which it
 *   prefetches. With check, returns 1 when some row's first pre-activations (before relu) are
 *   not all finite. */
int FN(dense_forward_tiled)(real *out, int ldo, const real *in, int ld_in, const real *packed,
                            int ld_packed, const real *b, int rows, int K, int n_out, int relu,
                            int64_t rows_after, int check);

/* dense_pack_transposed: the transpose of W's n rows (row stride ldw, K columns) packed as
 *   dense_pack packs a (K, n) matrix. */
void FN(dense_pack_transposed)(real *packed, const real *W, int ldw, int K, int n);

/* dense_backward_input_tiled: the product of dense_backward_input (below), its columns
 *   [col0, col1) of dinp (rows, n_in) = delta (rows, n_out) @ W[col0:col1, :]^T, by the register
 *   tiles from W's rows [col0, col1) as dense_pack_transposed left them; rows >=
 *   FASTMLP_TILE_ROWS. */
void FN(dense_backward_input_tiled)(real *dinp, const real *delta, const real *packed_WT,
                                    int rows, int n_in, int n_out, int col0, int col1);

/* dense_backward_params_tiled: dense_backward_params (below) by the register tiles, from delta
 *   as dense_pack left it (all of its columns when by_inputs, else the columns [lo, hi)), beta
 *   0 or 1 (accumulate). The slab has at least FASTMLP_TILE_ROWS rows of dW. */
void FN(dense_backward_params_tiled)(real *dW, const real *inp, const real *packed_delta,
                                     int B, int n_in, int n_out, int lo, int hi, int by_inputs,
                                     int accumulate);

/* dense_gradient_rows_tiled: rows [lo, hi) of dW (n_in, n_out) = inp[:, lo:hi]^T @ delta into
 *   g (hi - lo, n_out), from delta as dense_pack left all its columns: the by_inputs product of
 *   dense_backward_params_tiled into a buffer of the slab's own, hi - lo >= FASTMLP_TILE_ROWS.
 *   Each of dW's elements sums over the batch in order, so its bits do not depend on the rows
 *   computed beside it. */
void FN(dense_gradient_rows_tiled)(real *g, const real *inp, const real *packed_delta, int B,
                                   int n_in, int n_out, int lo, int hi, int accumulate);

/* dense_backward_params: the parameter gradient of one layer over the whole batch, for a slab
 *   of it (threads take disjoint slabs, so they never write the same memory):
 *   dW[lo:hi, :] = beta * dW[lo:hi, :] + inp[:, lo:hi]^T @ delta   when by_inputs (W's rows)
 *   dW[:, lo:hi] = beta * dW[:, lo:hi] + inp^T @ delta[:, lo:hi]   otherwise (W's columns)
 *   inp (B, n_in), delta (B, n_out). beta is 0 for a plain gradient; SGD momentum passes its
 *   velocity, already times the momentum, as dW and beta = 1 (batch.c). */
void FN(dense_backward_params)(real *dW, const real *inp, const real *delta,
                               int B, int n_in, int n_out, int lo, int hi, int by_inputs,
                               real beta);
void FN(bias_backward)(real *db, const real *delta, int B, int n_out, int lo, int hi);

/* dense_backward_input: dinp (rows, n_in) = delta (rows, n_out) @ W^T for one slab of rows, or
 *   only dinp's columns [col0, col1), then (when h_in is not NULL) the previous layer's
 *   activation_backward fused in: dinp *= g'(h_in). */
void FN(dense_backward_input)(real *dinp, const real *delta, const real *W, const real *h_in,
                              int rows, int n_in, int n_out, int col0, int col1, int activation,
                              double p, uint64_t seed, int64_t t, int row0);

/* sparse_dense_forward: out (rows, n_out) = X[rows of `order`] @ (W * scale[:, None]) + b for a
 *   CSR X (the scale folds in at the nonzeros; the centering term is in `shift_W`, (n_out,), =
 *   -(shift * scale) @ W, or NULL), then the fused epilogue. */
void FN(sparse_dense_forward)(real *out, const FN(fastmlp_input) *X, const int64_t *order,
                              const real *W, const real *b, const real *shift_W,
                              int rows, int n_in, int n_out, int activation,
                              double p, uint64_t seed, int64_t t, int row0);

/* sparse_dense_backward_params: dW[:, lo:hi] = X'^T @ delta[:, lo:hi] for the B CSR rows
 *   `order` standardized on the fly: each nonzero times scale[col], and the centering as
 *   dW[j, lo:hi] -= shift[j] * scale[j] * delta_colsum[lo:hi] (delta_colsum (n_out,) = the column
 *   sums of delta, which bias_backward computes). */
void FN(sparse_dense_backward_params)(real *dW, const FN(fastmlp_input) *X, const int64_t *order,
                                      const real *delta, const real *delta_colsum,
                                      int B, int n_in, int n_out, int lo, int hi);

/* ---- corruption.c: the denoising autoencoder's noise ---------------------------------- */

/* corrupt_row: in place on one gathered, standardized input row x (n,) of batch row `row`, at
 *   update t, the noise of a denoising autoencoder applied to the raw value v the row came from,
 *   x = (v - shift) * scale (shift, scale (n,) or NULL): "mask" sets v to 0 with probability
 *   level, "gaussian" adds level * N(0, 1) to v. The draws are keyed by (seed, t, row, column)
 *   like dropout's (rng.h), so they do not depend on the thread count. */
void FN(corrupt_row)(real *x, const real *shift, const real *scale, int n, int kind,
                     double level, uint64_t seed, int64_t t, int64_t row);

/* ---- tied.c: tied weight matrices ----------------------------------------------------- */

/* tied_rows: the rows of every tied pair's W_a, stacked: what tie_gradients cuts into parts. */
int64_t FN(tied_rows)(const fastmlp_net *net);

/* tie_gradients: for the tied pairs (a, b) of net, W_b = W_a^T, part `part` of n_parts of the
 *   stacked rows of the W_a: G = dW_a + dW_b^T, the gradient with respect to the shared matrix,
 *   into both copies (dW_a = G, dW_b = G^T) of grads (n_trainable,); row_sumsq (tied_rows,) gets
 *   each W_a row's sum of squares as the decoder copy holds it, which the caller subtracts from
 *   the L2 term's sum so that a shared matrix counts once. Elementwise: the same bits whatever
 *   the parts. */
void FN(tie_gradients)(real *grads, double *row_sumsq, const real *params,
                       const fastmlp_net *net, int part, int n_parts);

/* ---- batchnorm.c ---------------------------------------------------------------------- */

/* batchnorm_stats: for columns [lo, hi) of the pre-activation a (B, n): the batch mean, and
 *   inv_std = 1 / sqrt(biased var + eps); when running_mean is not NULL also
 *   running = 0.9 * running + 0.1 * batch (the variance unbiased: * B / (B - 1)). */
void FN(batchnorm_stats)(real *mean, real *inv_std, real *running_mean, real *running_var,
                         const real *a, int B, int n, int lo, int hi);

/* batchnorm_forward: for one slab of rows of a (rows, n), in place:
 *   xhat = (a - mean) * inv_std (saved for backward), then the epilogue
 *   h = g(gamma * xhat + beta) with dropout. */
void FN(batchnorm_forward)(real *h, real *xhat, const real *mean, const real *inv_std,
                           const real *gamma, const real *beta, int rows, int n, int activation,
                           double p, uint64_t seed, int64_t t, int row0);

/* batchnorm_backward_params: for columns [lo, hi) of dz = dJ/d(gamma * xhat + beta) (B, n):
 *   dgamma = sum_rows dz * xhat, dbeta = sum_rows dz. */
void FN(batchnorm_backward_params)(real *dgamma, real *dbeta, const real *dz, const real *xhat,
                                   int B, int n, int lo, int hi);

/* batchnorm_backward: for one slab of rows, in place on dz (rows, n), the full gradient through
 *   the batch statistics: da = gamma * inv_std / B * (B dz - dbeta - xhat * dgamma). */
void FN(batchnorm_backward)(real *dz, const real *xhat, const real *gamma, const real *inv_std,
                            const real *dgamma, const real *dbeta, int B, int rows, int n);

/* ---- loss.c: output units fused with their loss ------------------------------------- */

/* output_loss: for one slab of rows, in place on the output pre-activations a (rows, k):
 *   writes delta = dJ/da = w_t / sum_w * dloss_t/da (softmax / logistic / exp with Poisson
 *   deviance: f - y; squared error: (f - y) / k) and returns sum_t w_t * loss_t over the slab
 *   (w_t = 1 without weights). Numerically stable: log-sum-exp for softmax, log1p(exp(-|a|))
 *   for logistic, the deviance from a itself (y log y - y a - y + exp(a)) for exp. */
double FN(output_loss)(real *a, const real *Y, const real *sample_weight, int rows, int k,
                       int output, double inv_sum_w);

/* output_forward: the output units at prediction, in place on a (rows, k): softmax,
 *   logistic, exp or identity. */
void FN(output_forward)(real *a, int rows, int k, int output);

/* ---- optim.c: one fused pass over the flat buffer ------------------------------------- */

/* optim_step: params[lo, hi) -= update(g), g = grads + alpha * params on [0, n_weights) only;
 *   state is (fastmlp_state_slots(solver), n_trainable): sgd uses state[0] as its velocity,
 *   adagrad and rmsprop as s, adam as m and state[1] as v. t is this update's count (1 for
 *   the first). The L2 term of the batch's loss sums the squares before (sums_of_squares). */
void FN(optim_step)(real *params, const real *grads, real *state, const fastmlp_optim *opt,
                    int64_t t, int64_t n_weights, int64_t n_trainable, int64_t lo, int64_t hi);
/* optim_step_from: optim_step with params[lo, hi)'s gradient in gradient (hi - lo,) of its own,
 *   not in a flat buffer (a layer's block of dW computed just before its step, step.c). */
void FN(optim_step_from)(real *params, const real *gradient, real *state,
                         const fastmlp_optim *opt, int64_t t, int64_t n_weights,
                         int64_t n_trainable, int64_t lo, int64_t hi);

/* momentum_finish: SGD momentum (not Nesterov) on params[lo, hi) of weights whose velocity the
 *   backward GEMM already updated, state[0] = (momentum * v) + dJ/dW: adds alpha * params to
 *   it and steps, params -= lr * state[0], the same update as optim_step's; then, unless last,
 *   leaves momentum * state[0] for the next batch's GEMM (see step.c). */
void FN(momentum_finish)(real *params, real *state, const fastmlp_optim *opt, int64_t t,
                         int64_t lo, int64_t hi, int last);

/* sums_of_squares: out[j] = sum of p[i]^2 over [lo[j], hi[j]) in double, each in index order
 *   from 0 (the bits of one loop over the range), n <= FASTMLP_SUM_CHAINS ranges at once. */
void FN(sums_of_squares)(const real *p, const int64_t *lo, const int64_t *hi, int n,
                         double *out);

/* ---- health.c: layer health, counted where train_epoch has the data in cache ---------- */

/* health_forward: for the slab h (rows, n), row stride ld, of a hidden layer's units
 *   [col0, col0 + n) that the forward epilogue just wrote without its dropout: count (n,) +=
 *   per unit the rows near a bound or active (fastmlp_health), sum (n,) += its outputs, row by
 *   row in order; then the dropout (p > 0) as activation_forward keys it. */
void FN(health_forward)(int64_t *count, double *sum, real *h, int ld, int rows, int n, int col0,
                        int activation, double margin, double p, uint64_t seed, int64_t t,
                        int row0);

/* health_gradient_sum: ||g + alpha * w||^2 of g, w (n,), summed in double. */
double FN(health_gradient_sum)(const real *g, const real *w, double alpha, int64_t n);
/* health_update: sums (n_layers, 4) += for each weight layer, over its weights in params[lo, hi)
 *   (after a step; before (hi - lo,) holds them before it, grads (hi - lo,) the data term's
 *   gradient, read outside [summed_lo, summed_hi), whose first sum the caller added itself):
 *   ||grads + alpha * before||^2, ||before||^2, ||params||^2, ||params - before||^2. */
void FN(health_update)(double *sums, const real *params, const real *before, const real *grads,
                       double alpha, const fastmlp_net *net, int64_t lo, int64_t hi,
                       int64_t summed_lo, int64_t summed_hi);

/* ---- train.c (workspace.c): whole epochs without returning to Python ------------------ */

/* workspace_size: how many reals train_epoch / batch_gradient need for batches of at most
 *   `batch_size` rows cut into n_parts parts (each part, where the register tiles run, has
 *   scratch for the largest slab its products pack: the size depends on the tiles enabled now,
 *   so ask again after fastmlp_set_tiles); a sparse X (sparse = 1) needs no dense
 *   (batch_size, n_features) gather buffer, which for wide sparse data would dwarf the rest. */
int64_t FN(workspace_size)(const fastmlp_net *net, int batch_size, int n_parts, int sparse);

/* gradient_scratch: the reals train_epoch allocates for each work part's block of dW's rows
 *   where it steps weights in backward (fastmlp_stored_gradient), all n_parts parts together,
 *   under the tiles enabled now; 0 where it steps none. */
int64_t FN(gradient_scratch)(const fastmlp_net *net, const fastmlp_optim *opt, int n_parts,
                             int sparse);

/* train_epoch: one pass over the rows `order` (n,) in mini-batches of batch_size (the last one
 *   smaller): gather, forward, fused output loss, backward, optimizer step, for each batch.
 *   X rows, Y (N, n_outputs) and sample_weight (N,) or NULL are indexed through order.
 *   *t counts updates (in/out). batch_loss (ceil(n / batch_size),) gets J_b * |b| of each
 *   batch b, J_b with its L2 term (a last batch of one row merged into the one before, under
 *   batch norm, leaves its entry alone). An epoch may run as several calls on consecutive
 *   stretches of `order`: the caller sums the entries, the same way however it cut them.
 *   Each batch's GEMMs are cut into n_parts slabs (fastmlp_work_parts) that n_threads threads
 *   share: the result depends on n_parts, never on n_threads, and dropout masks are keyed by
 *   (seed, t, row, unit). With max_seconds > 0 the call stops after the batch that ends about
 *   max_seconds after it began (at least one batch): *t - (*t before) batches were trained,
 *   and the caller goes on from the rows after them, as with a stretch it cut itself.
 *   health: NULL, or the layer health to add this call's batches to (health.c); the
 *   parameters come out the same bits either way.
 *   state and src_state are (fastmlp_state_slots(opt->solver), n_trainable).
 *   src_params (n_trainable,) and src_state: NULL (or params, state) to train
 *   in place, else what the call's first update reads instead of params and state: it writes
 *   its result into them without changing the sources, bitwise as a copy followed by an
 *   in-place call would (params' tail past n_trainable must hold its values already).
 *   all_finite: NULL, or (2,): [0] set to whether params[0, n_trainable) and the solver's
 *   state are all finite after the call's last update (checked while each chunk is in cache),
 *   [1] to whether every dense input row gathered was finite once standardized (a NaN or inf
 *   in X always makes it 0; finite values that overflow may). */
int FN(train_epoch)(real *params, real *grads, real *state, real *workspace, double *batch_loss,
                    int64_t *t, const FN(fastmlp_input) *X, const real *Y,
                    const real *sample_weight, const int64_t *order, int64_t n, int batch_size,
                    const fastmlp_net *net, const fastmlp_optim *opt, uint64_t seed,
                    int n_parts, int n_threads, double max_seconds,
                    fastmlp_health *health, const real *src_params, const real *src_state,
                    int *all_finite);

/* batch_gradient: J and grads = dJ/dparams (the L2 term alpha * W included) for one batch of
 *   rows `order` (B,) in training mode (batch statistics, dropout keyed by (seed, t)), without
 *   an update and without touching the running statistics. For gradient checking. n_parts and
 *   n_threads as in train_epoch. */
int FN(batch_gradient)(real *grads, double *loss, real *params, real *workspace,
                       const FN(fastmlp_input) *X, const real *Y, const real *sample_weight,
                       const int64_t *order, int B, const fastmlp_net *net, double alpha,
                       uint64_t seed, int64_t t, int n_parts, int n_threads);

/* predict: out (n, n_outputs) = the network's outputs (probabilities for softmax / logistic)
 *   for every row of X, in inference mode: no dropout, batch norm with its running statistics
 *   folded into a per-unit affine epilogue. Rows are split into chunks across threads.
 *   It returns FASTMLP_ENONFINITE, out still written, when an output is not finite (finite
 *   rows that overflow past the first layer), and with check_finite (dense X only) also when
 *   a row's first-layer pre-activation is not finite: any NaN or inf in a row makes all of them
 *   so (NaN and inf times any weight are not finite), so the caller need not scan X itself
 *   beforehand (a NaN input may vanish later: relu(NaN) and exp(-inf) are finite). */
int FN(predict)(real *out, const FN(fastmlp_input) *X, int64_t n, const real *params,
                const fastmlp_net *net, int n_threads, int check_finite);

/* batchnorm_population: the lecture's exact alternative to the running averages, after training:
 *   every batch-norm layer's running_mean / running_var (in params) become the mean and the
 *   unbiased variance of its pre-activation over all n rows of X, layer by layer (layer l sees
 *   the layers below in inference mode with their new statistics). n >= 2. Rows go in fixed
 *   chunks across threads and merge in chunk order: the same bits whatever n_threads. */
int FN(batchnorm_population)(real *params, const FN(fastmlp_input) *X, int64_t n,
                             const fastmlp_net *net, int n_threads);

#endif /* FASTMLP_KERNEL_PASS */
