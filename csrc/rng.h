/* rng.h: counter-based random numbers. A number is a pure function of its key, so a dropout mask
 * is the same whichever thread draws it and in whatever order, and backward can redraw the mask
 * forward used instead of storing it. The mixer is splitmix64's finalizer (Steele et al. 2014). */
#ifndef FASTMLP_RNG_H
#define FASTMLP_RNG_H
#include <math.h>
#include <stdint.h>

static inline uint64_t fastmlp_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The stream of one (seed, update, row): unit j's number is fastmlp_mix64(stream + j * golden). */
static inline uint64_t fastmlp_row_stream(uint64_t seed, int64_t t, int64_t row)
{
    uint64_t h = fastmlp_mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = fastmlp_mix64(h ^ (uint64_t)t);
    return fastmlp_mix64(h ^ ((uint64_t)row * 0xd1b54a32d192ed03ULL));
}

/* keep(unit j) = its top 32 bits are >= threshold = p * 2^32, so P(keep) = 1 - p (to 2^-32). */
static inline uint32_t fastmlp_drop_threshold(double p)
{
    double t = p * 4294967296.0;
    return t >= 4294967295.0 ? 0xffffffffU : (uint32_t)t;
}

static inline int fastmlp_keep(uint64_t stream, int j, uint32_t threshold)
{
    return (uint32_t)(fastmlp_mix64(stream + (uint64_t)(j + 1) * 0x9e3779b97f4a7c15ULL) >> 32)
           >= threshold;
}

/* A standard normal number for unit j of a stream, by Box-Muller from the two halves of its
 * 64 bits: u1 in (0, 1] from the top 32 bits (never 0, so the log is finite), u2 from the rest. */
static inline double fastmlp_normal(uint64_t stream, int j)
{
    const uint64_t bits = fastmlp_mix64(stream + (uint64_t)(j + 1) * 0x9e3779b97f4a7c15ULL);
    const double u1 = ((double)(bits >> 32) + 1.0) / 4294967296.0;
    const double u2 = (double)(bits & 0xffffffffULL) / 4294967296.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Corruption draws its own streams: key (seed ^ this, t, row), so that its numbers are not
 * those of the dropout masks of the first hidden layer, keyed by (seed, t, row). */
#define FASTMLP_CORRUPTION_SALT 0x5851f42d4c957f2dULL

#endif
