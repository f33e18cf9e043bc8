/* input.c: rows of a dense X as the model reads them, for training's batches (batch.c) and
 * prediction's chunks (predict.c).
 *
 * X arrives as the caller holds it: float32 or float64 whatever the model's type, C- or
 * Fortran-ordered, or a strided view, or a memory map. Converting it whole first would copy all
 * of X (a float32 model's predict on 2,000,000 x 100 float64 held 800 MB more than X), so each
 * row is converted as it is gathered into the batch or chunk buffer, which the kernels then
 * read. The value is rounded to the model's type first and then standardized in that type, the
 * same operations, in the same type, as on a converted copy of X: the bits do not depend on
 * how X is stored. */

/* Whether the kernels can read X's rows where they are: the model's type, C-contiguous. */
static inline int FN(input_direct)(const FN(fastmlp_input) *X, int n_features)
{
    const int type = FASTMLP_REAL_IS_FLOAT ? FASTMLP_FLOAT32 : FASTMLP_FLOAT64;
    return X->dense && X->dense_type == type && X->col_stride == (int64_t)sizeof(real)
           && X->row_stride == (int64_t)n_features * (int64_t)sizeof(real);
}

/* Row i of X in place, for input_direct X only. */
static inline const real *FN(input_row)(const FN(fastmlp_input) *X, int64_t i)
{
    return (const real *)((const char *)X->dense + i * X->row_stride);
}

/* dst (n_features,) = row i of dense X in the model's type, standardized when X->shift, in one
 * pass: the value rounded to the model's type, then (value - shift) * scale in that type, the
 * same two roundings as a converted copy standardized after. The source values are read with
 * memcpy: a view of a byte buffer may leave them unaligned. Cloned for the vector widths
 * (FASTMLP_VECTOR_CLONES): the baseline build's 128-bit loop and a second pass for the
 * standardization were a sixth of 784-100-10's gather. */
static FASTMLP_VECTOR_CLONES void FN(input_gather_row)(real *dst, const FN(fastmlp_input) *X,
                                                        int64_t i, int n_features)
{
    const char *row = (const char *)X->dense + i * X->row_stride;
    const int64_t step = X->col_stride;
    const real *shift = X->shift, *scale = X->scale;
    /* the same loop four times, with the stride a constant (contiguous rows), which the
     * compiler vectorizes, or X's, and with or without the standardization */
#define FASTMLP_CONVERT(type, stride)                                                      \
    if (shift) {                                                                           \
        for (int j = 0; j < n_features; j++) {                                             \
            type value;                                                                    \
            memcpy(&value, row + (int64_t)j * (stride), sizeof value);                     \
            dst[j] = ((real)value - shift[j]) * scale[j];                                  \
        }                                                                                  \
    } else {                                                                               \
        for (int j = 0; j < n_features; j++) {                                             \
            type value;                                                                    \
            memcpy(&value, row + (int64_t)j * (stride), sizeof value);                     \
            dst[j] = (real)value;                                                          \
        }                                                                                  \
    }
    if (X->dense_type == FASTMLP_FLOAT64) {
        if (step == (int64_t)sizeof(double)) { FASTMLP_CONVERT(double, sizeof(double)) }
        else { FASTMLP_CONVERT(double, step) }
    } else {
        if (step == (int64_t)sizeof(float)) { FASTMLP_CONVERT(float, sizeof(float)) }
        else { FASTMLP_CONVERT(float, step) }
    }
#undef FASTMLP_CONVERT
}

/* Row i of dense X on its way into the cache, for a gather that reads it a few rows later:
 * training's batches take X's rows in a random order, so each row starts with a miss to DRAM
 * that the prefetchers cannot foresee (784-100-10, one thread: the gather was a quarter of an
 * epoch). Rows whose values lie apart (a strided view) are left to the gather. */
static inline void FN(input_prefetch_row)(const FN(fastmlp_input) *X, int64_t i, int n_features)
{
    const int64_t size = X->dense_type == FASTMLP_FLOAT64 ? 8 : 4;
    if (X->col_stride != size) return;
    const char *row = (const char *)X->dense + i * X->row_stride;
    /* into L2 (prefetcht1), not L1: gathering 20000 random rows of 784 floats, one core,
     * alternating runs, took 3.5-4.5 ms against 7.1-8.5 with prefetcht0, whose lines each
     * hold one of L1's few miss buffers until they arrive; the copy then loads from L2 */
    for (int64_t at = 0; at < n_features * size; at += 64) __builtin_prefetch(row + at, 0, 2);
}
