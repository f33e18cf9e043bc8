/* tiles.c: a dense layer's products by fastmlp's own register tiles, without BLAS: forward
 * (out = x W + b, relu fused), dW = H^T delta and dJ/dh = delta W^T, each from an operand that
 * dense_pack / dense_pack_transposed laid out in panels. Included by fastmlp_f32.c /
 * fastmlp_f64.c with `real` and FN() defined, after dense.c; batch.c and prediction call it. */
/* Why not BLAS: OpenBLAS packs the rows of X for every GEMM call before its kernel reads them,
 * and prediction streams X from DRAM once, so that packing (plus the pass that warmed the rows
 * for it) was a tenth of a bulk predict_proba of 784-100-10. Here each 6-row tile reads its
 * inputs straight from where they lie, broadcast one at a time against 4 vectors of a packed
 * row of W, with the next tile's rows prefetched meanwhile; the bias and relu go in before the
 * first store. Measured on one core (AMD EPYC, 20000 rows in 500-row calls, float32): 784 ->
 * 100 at 102-105 GFLOP/s against OpenBLAS's 85; 784 -> 256 113 against 98; 1024 -> 1024 112
 * against 101. The same kernel runs training's three products (batch.c: forward_part,
 * backward_params_part, backward_input_part), packing per batch what they multiply by:
 * 256 x 784 by 784 x 512 with that packing 114 GFLOP/s against 104, 256 x 512 by 512 x 1024 113
 * against 95 (in cache). OpenBLAS runs its SkylakeX kernels on this Zen 4 core; why they fall
 * short of the tiles was not studied. On Zen 5 (one thread, thread CPU time, medians of 3
 * alternating processes on a loaded machine) training ran at 106 / 140 / 150 GFLOP/s against
 * BLAS's 68 / 80 / 97 on 784-100-10 / 784-256-256-10 / 784-1024-1024-10, and bulk prediction at
 * 184 / 226 / 210 against 92 / 104 / 108, of a 255 GFLOP/s FMA peak a core.
 *
 * CPUs without AVX-512 get the AVX2 tiles below, picked at load time. Against OpenBLAS held to
 * its AVX2 kernels (OPENBLAS_CORETYPE=Haswell; bench/tiles_vs_blas.py, the same runs): training
 * 217k / 71.5k / 8.4k samples/s against 222k / 66.0k / 10.1k, prediction 646k / 209k / 27.7k
 * rows/s against 597k / 197k / 29.4k: ahead on the two smaller configurations, 6-16% behind on
 * 1024-wide layers (on Zen 5); on Zen 4, whose 256-bit FMAs run at its full rate, 24-40% behind
 * on every layer 512 or more wide. So they run only products at most FASTMLP_TILE_AVX2_MAX_COLS
 * wide, BLAS the rest (fastmlp_tiles_run, csrc/fastmlp.h, gives the figures). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTMLP_TILES 1
#include <immintrin.h>

#define FASTMLP_TILE_TARGET __attribute__((target("avx512f,avx512vl,fma")))
#if FASTMLP_REAL_IS_FLOAT
#define LANES 16
typedef __m512 vreal;   /* a full vector: 16 lanes */
typedef __m256 hreal;   /* half a vector, for a panel's last few columns */
#define v_load _mm512_loadu_ps
#define v_maskz_load(m, p) _mm512_maskz_loadu_ps((__mmask16)(m), (p))
#define v_store _mm512_storeu_ps
#define v_mask_store(p, m, v) _mm512_mask_storeu_ps((p), (__mmask16)(m), (v))
#define v_set1 _mm512_set1_ps
#define v_fma _mm512_fmadd_ps
#define v_max _mm512_max_ps
#define v_zero _mm512_setzero_ps
#define v_nonfinite(v) _mm512_cmp_ps_mask(_mm512_sub_ps((v), (v)), _mm512_setzero_ps(), _CMP_NEQ_UQ)
#define h_load _mm256_loadu_ps
#define h_maskz_load(m, p) _mm256_maskz_loadu_ps((__mmask8)(m), (p))
#define h_mask_store(p, m, v) _mm256_mask_storeu_ps((p), (__mmask8)(m), (v))
#define h_set1 _mm256_set1_ps
#define h_fma _mm256_fmadd_ps
#define h_max _mm256_max_ps
#define h_zero _mm256_setzero_ps
#define h_nonfinite(v) _mm256_cmp_ps_mask(_mm256_sub_ps((v), (v)), _mm256_setzero_ps(), _CMP_NEQ_UQ)
#else
#define LANES 8
typedef __m512d vreal;
typedef __m256d hreal;
#define v_load _mm512_loadu_pd
#define v_maskz_load(m, p) _mm512_maskz_loadu_pd((__mmask8)(m), (p))
#define v_store _mm512_storeu_pd
#define v_mask_store(p, m, v) _mm512_mask_storeu_pd((p), (__mmask8)(m), (v))
#define v_set1 _mm512_set1_pd
#define v_fma _mm512_fmadd_pd
#define v_max _mm512_max_pd
#define v_zero _mm512_setzero_pd
#define v_nonfinite(v) _mm512_cmp_pd_mask(_mm512_sub_pd((v), (v)), _mm512_setzero_pd(), _CMP_NEQ_UQ)
#define h_load _mm256_loadu_pd
#define h_maskz_load(m, p) _mm256_maskz_loadu_pd((__mmask8)(m), (p))
#define h_mask_store(p, m, v) _mm256_mask_storeu_pd((p), (__mmask8)(m), (v))
#define h_set1 _mm256_set1_pd
#define h_fma _mm256_fmadd_pd
#define h_max _mm256_max_pd
#define h_zero _mm256_setzero_pd
#define h_nonfinite(v) _mm256_cmp_pd_mask(_mm256_sub_pd((v), (v)), _mm256_setzero_pd(), _CMP_NEQ_UQ)
#endif
#define PANEL_COLS (FASTMLP_TILE_VECTORS * LANES)

/* A panel of `width` <= PANEL_COLS columns is `full` full vectors plus `half` (0 or 1) half
 * vectors wide: a remainder of up to LANES / 2 columns takes half a vector, which costs half an
 * FMA of a full one on CPUs that split 512-bit operations (784-100-10's 4 last columns). */
static void FN(panel_shape)(int width, int *full, int *half)
{
    const int rem = width % LANES;
    *full = width / LANES + (rem > LANES / 2);
    *half = rem > 0 && rem <= LANES / 2;
}

static int FN(panel_padded)(int width)
{
    int full, half;
    FN(panel_shape)(width, &full, &half);
    return full * LANES + half * (LANES / 2);
}

int64_t FN(dense_packed_size)(int K, int n_out)
{
    int64_t size = 0;
    for (int c0 = 0; c0 < n_out; c0 += PANEL_COLS)
        size += (int64_t)K * FN(panel_padded)(n_out - c0 < PANEL_COLS ? n_out - c0 : PANEL_COLS);
    return size;
}

/* The first n lanes of a vector (none for n <= 0, all for n >= LANES), as a load or store mask */
static inline unsigned FN(lanes_mask)(int n)
{
    return n >= LANES ? (1u << LANES) - 1 : n > 0 ? (1u << n) - 1 : 0;
}

/* One panel's K rows, `width` columns each, into rows `padded` apart, by whole vectors: masked
 * loads that leave 0 past width, masked stores to padded, and the row AHEAD rows on prefetched
 * (rows ldw apart, which the prefetchers do not follow far). The scalar loop of dense_pack
 * compiled to 128-bit copies stalled on each of W's lines: forward's packing of
 * 784-1024-1024-10's two wide layers was 5% of an epoch. */
static FASTMLP_TILE_TARGET void FN(pack_panel_avx512)(real *packed, const real *W, int ldw, int K,
                                                     int width, int padded)
{
    enum { AHEAD = 8, NV = PANEL_COLS / LANES };
    const int nv = (padded + LANES - 1) / LANES;
    unsigned load_mask[NV], store_mask[NV];
    for (int v = 0; v < NV; v++) {
        load_mask[v] = FN(lanes_mask)(width - v * LANES);
        store_mask[v] = FN(lanes_mask)(padded - v * LANES);
    }
    for (int k = 0; k < K; k++, packed += padded) {
        const real *row = W + (int64_t)k * ldw;
        if (k + AHEAD < K)
            for (int v = 0; v < nv; v++)  /* a vector is a cache line, 64 bytes */
                _mm_prefetch((const char *)(row + (int64_t)AHEAD * ldw + v * LANES), _MM_HINT_T0);
        for (int v = 0; v < nv; v++)
            v_mask_store(packed + v * LANES, store_mask[v],
                         v_maskz_load(load_mask[v], row + v * LANES));
    }
}

void FN(dense_pack)(real *packed, const real *W, int ldw, int K, int n_out)
{
    const int avx512 = fastmlp_tiles_enabled() == FASTMLP_TILES_AVX512;
    for (int c0 = 0; c0 < n_out; c0 += PANEL_COLS) {
        const int width = n_out - c0 < PANEL_COLS ? n_out - c0 : PANEL_COLS;
        const int padded = FN(panel_padded)(width);
        if (avx512) {
            FN(pack_panel_avx512)(packed, W + c0, ldw, K, width, padded);
            packed += (int64_t)K * padded;
            continue;
        }
        for (int k = 0; k < K; k++, packed += padded) {
            const real *row = W + (int64_t)k * ldw + c0;
            int j = 0;
            for (; j < width; j++) packed[j] = row[j];
            for (; j < padded; j++) packed[j] = 0;
        }
    }
}

#if FASTMLP_REAL_IS_FLOAT
/* The 16 x 16 block rows[j][i] = W[(j0 + j) * ldw + k0 + i], i < kn, j < jn (zeros beyond),
 * written transposed: packed row k0 + i gets its 16 values at column j0, the first `store`
 * of them kept. Three rounds of shuffles (pairs, quads, 128-bit lanes twice), as in the
 * usual in-register 16 x 16 transpose: 64 shuffles for 256 values, where the scalar loop
 * below makes a store for each value. One core, warm caches: W^T of 256 x 256 in 3.2 us
 * instead of 17.6 (a third of 784-256-256-10's dJ/dh product went to it), of 1024 x 1024 in
 * 90 instead of 298. A copy: the same values, the same bits. */
static FASTMLP_TILE_TARGET void FN(transpose_block)(real *dst, int64_t padded, const real *src,
                                                   int ldw, int jn, int kn, int store)
{
    const __mmask16 kmask = (__mmask16)((1u << kn) - 1), smask = (__mmask16)((1u << store) - 1);
    __m512 r[16], t[16], u[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        r[j] = j < jn ? _mm512_maskz_loadu_ps(kmask, src + (int64_t)j * ldw) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {  /* per 128-bit lane: (a0 b0 a1 b1), (a2 b2 a3 b3) */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {  /* u[4i + m], lane L: column 4L + m of rows 4i..4i+3 */
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {  /* column 4L + m: lane L of u[m], u[4 + m], u[8 + m], u[12 + m] */
        const __m512 s0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
        const __m512 s1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
        const __m512 s2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
        const __m512 s3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
        const __m512 col[4] = {_mm512_shuffle_f32x4(s0, s2, 0x88), _mm512_shuffle_f32x4(s1, s3, 0x88),
                               _mm512_shuffle_f32x4(s0, s2, 0xDD), _mm512_shuffle_f32x4(s1, s3, 0xDD)};
#pragma GCC unroll 4
        for (int L = 0; L < 4; L++)
            if (4 * L + m < kn)
                _mm512_mask_storeu_ps(dst + (4 * L + m) * padded, smask, col[L]);
    }
}
#endif

void FN(dense_pack_transposed)(real *packed, const real *W, int ldw, int K, int n)
{
#if FASTMLP_REAL_IS_FLOAT
    if (fastmlp_tiles_enabled() == FASTMLP_TILES_AVX512) {
        for (int c0 = 0; c0 < n; c0 += PANEL_COLS) {
            const int width = n - c0 < PANEL_COLS ? n - c0 : PANEL_COLS;
            const int padded = FN(panel_padded)(width);
            const real *rows = W + (int64_t)c0 * ldw;
            /* 16 rows of W at a time, each read from start to end: 16 streams that the
             * prefetchers follow, where k outside j kept 64 rows in flight */
            for (int j0 = 0; j0 < padded; j0 += 16)
                for (int k0 = 0; k0 < K; k0 += 16) {
                    const int jn = width - j0 < 16 ? width - j0 : 16;
                    FN(transpose_block)(packed + (int64_t)k0 * padded + j0, padded,
                                        rows + (int64_t)j0 * ldw + k0, ldw, jn > 0 ? jn : 0,
                                        K - k0 < 16 ? K - k0 : 16,
                                        padded - j0 < 16 ? padded - j0 : 16);
                }
            packed += (int64_t)K * padded;
        }
        return;
    }
#endif
    /* the operand (K, n) whose element (k, j) is W[j * ldw + k]: W's rows become columns. By
     * blocks of one cache line of k: each line of a W row is read once, whole, and its values
     * go to LINE packed rows, whose lines stay in L1 while the panel's j run through them.
     * Reading one k of 64 rows at a time instead touched 64 lines 4 KB apart (784-1024-1024-10)
     * that share an L1 set: 8% of training time against 2.5% for BLAS's own copy. */
    enum { LINE = 64 / (int)sizeof(real) };
    for (int c0 = 0; c0 < n; c0 += PANEL_COLS) {
        const int width = n - c0 < PANEL_COLS ? n - c0 : PANEL_COLS;
        const int padded = FN(panel_padded)(width);
        const real *rows = W + (int64_t)c0 * ldw;
        for (int k0 = 0; k0 < K; k0 += LINE) {
            const int kn = K - k0 < LINE ? K - k0 : LINE;
            real *dst = packed + (int64_t)k0 * padded;
            for (int j = 0; j < width; j++) {
                const real *src = rows + (int64_t)j * ldw + k0;
                for (int i = 0; i < kn; i++) dst[(int64_t)i * padded + j] = src[i];
            }
            for (int i = 0; i < kn; i++)
                for (int j = width; j < padded; j++) dst[(int64_t)i * padded + j] = 0;
        }
        packed += (int64_t)K * padded;
    }
}

/* Whether the tiles of `kind` read W's panels where they lie, rows ld reals apart, instead of
 * a copy that dense_pack lays out. A panel's 64 columns of each of W's K rows are streamed from
 * L2 for every tile: rows 1 KB apart spread over a quarter of L2's sets, room for 1024 of them,
 * while rows 4 KB apart fall into a sixteenth and a panel of 784 rows no longer fits. Training,
 * forward products, paired epochs, one thread, loaded machine: 784-256-256-10 (1 KB) -4.7%
 * epoch time, 784-100-10 (400 B) no change, 784-1024-1024-10 (4 KB) +9.8%. dW's operand delta
 * read in place cost 2-4% on all three: it stays packed. */
static inline int FN(tiles_in_place)(int kind, int ld)
{
    /* the AVX2 tiles (not measured in place) read packed panels only */
    return kind == FASTMLP_TILES_AVX512 && (int64_t)ld * (int64_t)sizeof(real) <= 1024;
}

/* What one tile computes: rows [skip, FASTMLP_TILE_ROWS) of out (row stride ldo) = the same rows
 * of x times a panel of `width` columns, x's element (r, k) at x[r * x_row + k * x_k]: rows of
 * a layer's input (x_k = 1) in forward, columns of it (x_row = 1) for dW. The sums start from
 * bias (or 0), or from out itself when accumulating. Rows below skip are computed, not stored:
 * they overlap a tile before. next: rows to prefetch (forward only), or NULL. */
typedef struct {
    real *out;
    int ldo;
    const real *x;
    int64_t x_row, x_k;
    const real *panel;
    int K;
    int panel_ld;  /* the panel's row stride: 0 where dense_pack laid it out (its padded width);
                    * only the AVX-512 tiles read panels in place (tiles_in_place) */
    const real *bias;
    int width, relu, accumulate, check, skip;
    const real *next;
    real *next_out;
} FN(tile_job);

/* One tile of a panel `full` full vectors and `half` half vectors wide (panel_shape), constants
 * once inlined into panel_tile's cases, so the accumulators live in registers: 6 rows x 4
 * vectors = 24 of the 32. With `wide` (CPUs whose FMA units are 512 bits wide), a half vector
 * is computed as a full one whose upper lanes are never loaded from W (masked to 0) nor
 * stored: an FMA of half a vector costs those CPUs the same slot as a full one, and the half
 * one also needed its own broadcast of every input (a shuffle per row and k, which on Zen 5
 * stalled the half-vector tiles). Either way every lane's sum is the same, bit for bit. */
static inline __attribute__((always_inline)) FASTMLP_TILE_TARGET int FN(tile)(
    const FN(tile_job) *job, const int full, const int half, const int wide, const int direct)
{
    enum { R = FASTMLP_TILE_ROWS };
    const int padded = full * LANES + half * (LANES / 2), K = job->K, ldo = job->ldo;
    /* nv full-width accumulators a row, the last one half-loaded when widened; split: the
     * half vector in its own 256-bit accumulators */
    const int nv = full + (wide && half), split = half && !wide;
    const int64_t x_row = job->x_row, x_k = job->x_k;
    const real *x = job->x, *next = job->next, *bias = job->bias;
    real *out = job->out;
    /* the last vector holds `last` columns; lanes beyond them are neither loaded nor stored */
    const int last = job->width - (full - 1 + half) * LANES;
    const unsigned last_mask = FN(lanes_mask)(last);
    const unsigned half_mask = (1u << (LANES / 2)) - 1;
    /* a panel read where it lies has no zero padding: its last vector's lanes past the last
     * column are not loaded (zeros, as the padding), nor stored */
    const int64_t panel_ld = direct ? job->panel_ld : padded;
    const unsigned w_mask = direct ? last_mask : half_mask;  /* of a widened half, packed */
    vreal acc[R][FASTMLP_TILE_VECTORS];
    hreal acc_half[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const real *from = job->accumulate ? out + (int64_t)r * ldo : bias;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = !from ? v_zero()
                      : v == nv - 1 && !split ? v_maskz_load(last_mask, from + v * LANES)
                      : v_load(from + v * LANES);
        acc_half[r] = split && from ? h_maskz_load(last_mask, from + full * LANES) : h_zero();
    }
    /* the next tile's lines of out, a whole tile ahead: dW's sums start from the velocity
     * (4 MB a layer of 784-1024-1024-10, back from L3 or DRAM each batch), and the first FMAs
     * of a tile would wait for all of them */
    if (job->next_out)
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                __builtin_prefetch(job->next_out + (int64_t)r * ldo + v * LANES, 1, 3);
    for (int k = 0; k < K; k++) {
        if (next && k % LANES == 0)  /* one cache line of each next row per line of these */
#pragma GCC unroll 6
            for (int r = 0; r < R; r++)
                _mm_prefetch((const char *)(next + r * x_row + k), _MM_HINT_T0);
        const real *wk = job->panel + (int64_t)k * panel_ld;
        vreal w[FASTMLP_TILE_VECTORS];
        hreal w_half = h_zero();
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            w[v] = v == nv - 1 && !split && (half || direct) ? v_maskz_load(w_mask, wk + v * LANES)
                                                             : v_load(wk + v * LANES);
        if (split) w_half = direct ? h_maskz_load(last_mask, wk + full * LANES)
                                   : h_load(wk + full * LANES);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const real xk = x[r * x_row + k * x_k];
            const vreal xv = v_set1(xk);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[r][v] = v_fma(xv, w[v], acc[r][v]);
            if (split) acc_half[r] = h_fma(h_set1(xk), w_half, acc_half[r]);
        }
    }
    unsigned bad = 0;
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        if (r < job->skip) continue;
        real *o = out + (int64_t)r * ldo;
        if (job->check) bad |= nv ? v_nonfinite(acc[r][0]) : h_nonfinite(acc_half[r]);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            /* max(a, 0) gives 0 for a NaN a, as activation_forward's a > 0 ? a : 0 does */
            const vreal h = job->relu ? v_max(acc[r][v], v_zero()) : acc[r][v];
            if (v == nv - 1 && !split) v_mask_store(o + v * LANES, last_mask, h);
            else v_store(o + v * LANES, h);
        }
        if (split)
            h_mask_store(o + full * LANES, last_mask, job->relu ? h_max(acc_half[r], h_zero())
                                                                : acc_half[r]);
    }
    return bad != 0;
}

static inline __attribute__((always_inline)) FASTMLP_TILE_TARGET int FN(panel_tile_of)(
    const FN(tile_job) *job, const int wide, const int direct)
{
    int full, half;
    FN(panel_shape)(job->width, &full, &half);
    switch (full * 2 + half) {
    case 8: return FN(tile)(job, 4, 0, 0, direct);
    case 7: return wide ? FN(tile)(job, 3, 1, 1, direct) : FN(tile)(job, 3, 1, 0, direct);
    case 6: return FN(tile)(job, 3, 0, 0, direct);
    case 5: return wide ? FN(tile)(job, 2, 1, 1, direct) : FN(tile)(job, 2, 1, 0, direct);
    case 4: return FN(tile)(job, 2, 0, 0, direct);
    case 3: return wide ? FN(tile)(job, 1, 1, 1, direct) : FN(tile)(job, 1, 1, 0, direct);
    case 2: return FN(tile)(job, 1, 0, 0, direct);
    default: return wide ? FN(tile)(job, 0, 1, 1, direct) : FN(tile)(job, 0, 1, 0, direct);
    }
}

/* The stride of a panel in place is a constant of its own kernels: with it a variable in the
 * packed ones, forward's products ran ~5% slower (one core, in cache). */
static FASTMLP_TILE_TARGET int FN(panel_tile)(const FN(tile_job) *job, const int wide)
{
    return job->panel_ld ? FN(panel_tile_of)(job, wide, 1) : FN(panel_tile_of)(job, wide, 0);
}

/* ---- the same tiles for CPUs without AVX-512: 256-bit vectors, 16 registers ------------- */
/* A panel of W (laid out as above, PANEL_COLS columns, rows `padded` apart) goes through in
 * sub-panels of two 256-bit vectors: 6 rows x 2 vectors = 12 accumulators, 2 of W and one
 * broadcast, 15 of the 16 registers (the shape of BLIS's and OpenBLAS's Haswell kernels). The
 * panel layout, the row order of every sum (k ascending, one FMA per k from the same start)
 * and so every bit of the result are those of the AVX-512 tiles. */
#define FASTMLP_TILE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#if FASTMLP_REAL_IS_FLOAT
#define Y_LANES 8
typedef __m256 yreal;
#define y_load _mm256_loadu_ps
#define y_store _mm256_storeu_ps
#define y_set1 _mm256_set1_ps
#define y_fma _mm256_fmadd_ps
#define y_max _mm256_max_ps
#define y_zero _mm256_setzero_ps
/* lanes below `n` of a mask for maskload / maskstore */
#define y_mask(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define y_maskz_load(m, p) _mm256_maskload_ps((p), (m))
#define y_mask_store(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define y_nonfinite(v) _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps((v), (v)), \
                                                        _mm256_setzero_ps(), _CMP_NEQ_UQ))
#else
#define Y_LANES 4
typedef __m256d yreal;
#define y_load _mm256_loadu_pd
#define y_store _mm256_storeu_pd
#define y_set1 _mm256_set1_pd
#define y_fma _mm256_fmadd_pd
#define y_max _mm256_max_pd
#define y_zero _mm256_setzero_pd
#define y_mask(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define y_maskz_load(m, p) _mm256_maskload_pd((p), (m))
#define y_mask_store(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#define y_nonfinite(v) _mm256_movemask_pd(_mm256_cmp_pd(_mm256_sub_pd((v), (v)), \
                                                        _mm256_setzero_pd(), _CMP_NEQ_UQ))
#endif
#define SUB_COLS (2 * Y_LANES)

/* Columns [s0, s0 + nv * Y_LANES) of one tile job (the last vector holding `last` columns),
 * nv = 1 or 2 once inlined, over the stretch [k0, k1) of the sum: a first stretch starts from
 * the bias, zero or out (accumulating), a later one from the partial sums the one before
 * stored in out (a float stored and loaded back is unchanged: the same bits as one stretch);
 * relu and the check wait for the last. Rows below skip are never stored, so what they start
 * from does not matter. */
static inline __attribute__((always_inline)) FASTMLP_TILE_TARGET_AVX2 int FN(tile_avx2)(
    const FN(tile_job) *job, const int s0, const int nv, const int last, const int padded,
    const int k0, const int k1)
{
    enum { R = FASTMLP_TILE_ROWS };
    const int ldo = job->ldo, final = k1 == job->K;
    const int64_t x_row = job->x_row, x_k = job->x_k;
    const real *x = job->x, *next = s0 == 0 ? job->next : NULL;
    const real *bias = job->bias ? job->bias + s0 : NULL;
    real *out = job->out + s0;
    const __m256i last_mask = y_mask(last);
    yreal acc[R][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const real *from = job->accumulate || k0 > 0 ? out + (int64_t)r * ldo : bias;
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[r][v] = !from ? y_zero()
                      : v == nv - 1 ? y_maskz_load(last_mask, from + v * Y_LANES)
                      : y_load(from + v * Y_LANES);
    }
    const real *wk = job->panel + s0 + (int64_t)k0 * padded;
    for (int k = k0; k < k1; k++, wk += padded) {
        if (next && k % (64 / (int)sizeof(real)) == 0)  /* a line of each next row per line */
#pragma GCC unroll 6
            for (int r = 0; r < R; r++)
                _mm_prefetch((const char *)(next + r * x_row + k), _MM_HINT_T0);
        yreal w[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) w[v] = y_load(wk + v * Y_LANES);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const yreal xv = y_set1(x[r * x_row + k * x_k]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) acc[r][v] = y_fma(xv, w[v], acc[r][v]);
        }
    }
    int bad = 0;
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        if (r < job->skip) continue;
        real *o = out + (int64_t)r * ldo;
        if (final && job->check && s0 == 0) bad |= y_nonfinite(acc[r][0]);
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            const yreal h = final && job->relu ? y_max(acc[r][v], y_zero()) : acc[r][v];
            if (v == nv - 1) y_mask_store(o + v * Y_LANES, last_mask, h);
            else y_store(o + v * Y_LANES, h);
        }
    }
    return bad != 0;
}

/* The sum over k in stretches of FASTMLP_TILE_AVX2_K, each through every sub-panel: a tile's
 * inputs are read once per sub-panel, and over a whole K of 1024 the four reads of each input
 * row (rows 4 KB apart, in one L1 set) would come from L2; by stretches of 256 they can
 * stay in L1. Measured on one thread (AVX2 tiles forced on Zen 5, loaded machine, best of 3):
 * training 784-1024-1024-10 8.4k -> 9.0k samples/s, still below BLAS's 9.4-10.7k. */
#define FASTMLP_TILE_AVX2_K 256
static FASTMLP_TILE_TARGET_AVX2 int FN(panel_tile_avx2)(const FN(tile_job) *job)
{
    /* the panel's padded width is a whole number of 256-bit vectors (panel_shape) */
    const int padded = FN(panel_padded)(job->width);
    int bad = 0;
    for (int k0 = 0; k0 < job->K; k0 += FASTMLP_TILE_AVX2_K) {
        const int k1 = job->K - k0 < FASTMLP_TILE_AVX2_K ? job->K : k0 + FASTMLP_TILE_AVX2_K;
        for (int s0 = 0; s0 < job->width; s0 += SUB_COLS) {
            const int cols = job->width - s0 < SUB_COLS ? job->width - s0 : SUB_COLS;
            if (padded - s0 > Y_LANES)
                bad |= FN(tile_avx2)(job, s0, 2, cols - Y_LANES, padded, k0, k1);
            else
                bad |= FN(tile_avx2)(job, s0, 1, cols, padded, k0, k1);
        }
    }
    return bad;
}

/* Rows of a block when the AVX-512 tiles add to out (dW into the velocity): as many as keep the
 * block's slab of out within 96 KB, at most FASTMLP_TILE_BLOCK_ROWS. A block's rows go through
 * every panel before the next rows, so out is read and written a block's slab at a time: with
 * 96 rows of 4 KB (784-1024-1024-10) each panel's pass jumped across 384 KB of velocity that
 * was back from L3 or DRAM. Paired epochs, one thread, loaded machine, 784-1024-1024-10: 96 ->
 * 48 rows -1.8% epoch time, 48 -> 24 -3.4%, 24 -> 12 or 6 no change; 784-256-256-10 (rows of
 * 1 KB, 96 rows) at 24 rows: +0.8% (noise), so the rule goes by the slab's bytes. */
static int FN(accumulating_block)(int ldo)
{
    enum { R = FASTMLP_TILE_ROWS, SLAB = 96 * 1024 };
    const int64_t rows = SLAB / ((int64_t)ldo * (int64_t)sizeof(real)) / R * R;
    return rows < R ? R : rows > FASTMLP_TILE_BLOCK_ROWS ? FASTMLP_TILE_BLOCK_ROWS : (int)rows;
}

/* out (rows, n_out) (+)= x (rows, K) @ the packed W (+ b), x's element (r, k) at
 * x[r * x_row + k * x_k], rows >= FASTMLP_TILE_ROWS. Blocks of FASTMLP_TILE_BLOCK_ROWS rows
 * (fewer when accumulating: accumulating_block);
 * in each, every panel in turn (W's panel streams from L2 while the block's inputs stay there
 * too), tile by tile. A block that does not end on a whole tile ends with a tile moved back
 * over rows already done, which stores only its new rows: no tile of fewer rows is needed. */
static int FN(tiles)(real *out, int ldo, const real *x, int64_t x_row, int64_t x_k,
                     const real *packed, int ld_panel, const real *b, int rows, int K, int n_out,
                     int relu, int accumulate, int64_t rows_after, int check)
{
    enum { R = FASTMLP_TILE_ROWS };
    const int avx2 = fastmlp_tiles_enabled() == FASTMLP_TILES_AVX2;
    const int wide = fastmlp_fma_full_width();
    int bad = 0;
    /* the AVX2 tiles, which go through a panel in stretches of k, lost 4% with short blocks
     * (784-1024-1024-10, paired epochs): they keep FASTMLP_TILE_BLOCK_ROWS */
    const int block = accumulate && !avx2 ? FN(accumulating_block)(ldo) : FASTMLP_TILE_BLOCK_ROWS;
    for (int b0 = 0; b0 < rows; b0 += block) {
        const int b1 = rows - b0 < block ? rows : b0 + block;
        const real *panel = packed;
        for (int c0 = 0; c0 < n_out; c0 += PANEL_COLS) {
            const int width = n_out - c0 < PANEL_COLS ? n_out - c0 : PANEL_COLS;
            for (int r0 = b0; r0 < b1; r0 += R) {
                const int top = r0 + R <= b1 ? r0 : b1 - R;
                /* the tile after this one: the next rows of the panel, else the block's first
                 * rows of the next panel, else the next block's of the first panel */
                int next_top = r0 + R, next_c0 = c0;
                if (next_top >= b1) {
                    next_top = b0, next_c0 = c0 + PANEL_COLS;
                    if (next_c0 >= n_out) next_top = b1, next_c0 = 0;
                }
                if (next_top + R > rows) next_top = rows - R;
                FN(tile_job) job = {
                    out + (int64_t)top * ldo + c0, ldo, x + top * x_row, x_row, x_k, panel, K,
                    ld_panel, b ? b + c0 : NULL, width, relu, accumulate, check && c0 == 0, r0 - top,
                    /* the first panel's pass reads a layer's rows from memory: fetch the
                     * next tile's */
                    x_k == 1 && c0 == 0 && (int64_t)top + 2 * R <= rows + rows_after
                        ? x + (top + R) * x_row : NULL,
                    !accumulate || (next_top == top && next_c0 == c0) ? NULL
                        : out + (int64_t)next_top * ldo + next_c0};
                bad |= avx2 ? FN(panel_tile_avx2)(&job) : FN(panel_tile)(&job, wide);
            }
            panel += ld_panel ? PANEL_COLS : (int64_t)K * FN(panel_padded)(width);
        }
    }
    return bad;
}

int FN(dense_forward_tiled)(real *out, int ldo, const real *in, int ld_in, const real *packed,
                            int ld_packed, const real *b, int rows, int K, int n_out, int relu,
                            int64_t rows_after, int check)
{
    return FN(tiles)(out, ldo, in, ld_in, 1, packed, ld_packed, b, rows, K, n_out, relu, 0,
                     rows_after, check);
}

void FN(dense_backward_input_tiled)(real *dinp, const real *delta, const real *packed_WT,
                                    int rows, int n_in, int n_out, int col0, int col1)
{
    FN(tiles)(dinp + col0, n_in, delta, n_out, 1, packed_WT, 0, NULL, rows, n_out, col1 - col0,
              0, 0, 0, 0);
}

void FN(dense_gradient_rows_tiled)(real *g, const real *inp, const real *packed_delta, int B,
                                   int n_in, int n_out, int lo, int hi, int accumulate)
{
    /* dW's rows lo..hi are inputs lo..hi: columns of inp (B, n_in), hence x_row = 1 */
    FN(tiles)(g, n_out, inp + lo, 1, n_in, packed_delta, 0, NULL, hi - lo, B, n_out, 0,
              accumulate, 0, 0);
}

void FN(dense_backward_params_tiled)(real *dW, const real *inp, const real *packed_delta,
                                     int B, int n_in, int n_out, int lo, int hi, int by_inputs,
                                     int accumulate)
{
    if (by_inputs)
        FN(dense_gradient_rows_tiled)(dW + (int64_t)lo * n_out, inp, packed_delta, B, n_in,
                                      n_out, lo, hi, accumulate);
    else
        FN(tiles)(dW + lo, n_out, inp, 1, n_in, packed_delta, 0, NULL, n_in, B, hi - lo, 0,
                  accumulate, 0, 0);
}
#endif /* FASTMLP_TILES */
