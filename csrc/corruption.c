/* corruption.c: the noise of a denoising autoencoder (Vincent et al. 2008), on the input rows
 * of a training batch as gather_rows (batch.c) leaves them: standardized, x = (v - shift) * scale.
 * The noise is defined on the raw value v, so the masking noise's 0 is the user's 0 whatever
 * the standardization, and the Gaussian noise's std is in the units of X:
 *   mask:     v -> 0 with probability level      x -> -shift * scale
 *   gaussian: v -> v + level * z, z ~ N(0, 1)    x -> x + level * z * scale
 * Only the input is corrupted: the reconstruction target is gathered from the clean rows.
 * One row (n,) per call; no backward pair, since nothing upstream of the input is trained. */

void FN(corrupt_row)(real *x, const real *shift, const real *scale, int n, int kind,
                     double level, uint64_t seed, int64_t t, int64_t row)
{
    const uint64_t stream = fastmlp_row_stream(seed ^ FASTMLP_CORRUPTION_SALT, t, row);
    if (kind == FASTMLP_CORRUPT_MASK) {
        const uint32_t threshold = fastmlp_drop_threshold(level);
        for (int j = 0; j < n; j++)
            if (!fastmlp_keep(stream, j, threshold))
                x[j] = shift ? -shift[j] * (scale ? scale[j] : (real)1) : (real)0;
    } else if (kind == FASTMLP_CORRUPT_GAUSSIAN) {
        for (int j = 0; j < n; j++)
            x[j] += (real)(level * fastmlp_normal(stream, j)) * (scale ? scale[j] : (real)1);
    }
}
