/*
** kern_avx512_quant.c: the quantized matrix products for prompts (many
** tokens at once) on CPUs with AVX-512BW, AVX512-DQ and AVX512-VNNI. Built with those flags
** on top of kern_avx2*.c's; installed by kern.c only where CPUID has them,
** over the AVX2 table (whose dot products still serve generation, which
** waits on memory, not arithmetic).
**
** Where the AVX2 tile spends three instructions on 32 weights (maddubs,
** madd by the sub-block scales, add), this one spends two on 64: one zmm
** holds two 32-weight sub-blocks, side by side as they lie in the
** activation block, maddubs makes the int16 pair sums and vpdpwssd
** multiplies them by the sub-blocks' scales and accumulates in one go.
** The integer sums are the reference's integers, and the float finish is
** kern_tiles.h's, so the results stay bit-identical to quant.c's (the
** tests compare them).
*/
#include "engine/kern_tiles.h"

static inline __m512i load512(const void *p) { return _mm512_loadu_si512(p); }

/* The 32-byte vector in both halves of a zmm. */
static inline __m512i both_halves(const void *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* vpermw indices: int16 lane i of the result takes lane 2c (first half) or
** 2c + 1 (second half) of the source, for chunk c = 0..3. */
static const int16_t pair_idx[4][32] __attribute__((aligned(64))) = {
#define H(j) j, j, j, j, j, j, j, j, j, j, j, j, j, j, j, j
    {H(0), H(1)}, {H(2), H(3)}, {H(4), H(5)}, {H(6), H(7)},
#undef H
};

/* For Q6_K: 16 scales of 16 weights; chunk p covers scales 4p .. 4p + 3,
** eight int16 lanes each (a maddubs pair lane covers two weights). */
static const int16_t quad_idx[4][32] __attribute__((aligned(64))) = {
#define Q(j) j, j, j, j, j, j, j, j, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, \
             j + 2, j + 2, j + 2, j + 2, j + 2, j + 2, j + 2, j + 2, j + 3, j + 3, j + 3, j + 3, \
             j + 3, j + 3, j + 3, j + 3
    {Q(0)}, {Q(4)}, {Q(8)}, {Q(12)},
#undef Q
};

/* Up to 16 (row, token) pairs: the 4 x 4 tile fits the 32 zmm registers
** (16 sums, 4 weight and 4 scale vectors, the activations). */
#define ZMAX_TILE 16

/* Fold each zmm's two halves, then kern_tiles.h's reduce8. */
INLINE __m256i zreduce8(const __m512i v[8])
{
    __m256i h[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        h[i] = _mm256_add_epi32(_mm512_castsi512_si256(v[i]), _mm512_extracti64x4_epi64(v[i], 1));
    return reduce8(h);
}

/* The float finish of a super-block and the final store (kern_tiles.h)
** take 8 pairs; a 4 x 4 tile is two 2 x 4 halves, rows 0-1 and 2-3, whose
** pairs are acc[0..7] and acc[8..15]. */
#define ZFINISH(isum, mins, isum2, mins2, dmw, dmw2)                                                    \
    do {                                                                                           \
        if (R * T <= 8) {                                                                          \
            sum = k_finish(R, T, sum, isum, mins, dw, dmw, dy);                                    \
        } else {                                                                                   \
            sum = k_finish(2, T, sum, isum, mins, dw, dmw, dy);                                    \
            sum2 = k_finish(2, T, sum2, isum2, mins2, dw + 2, dmw2, dy);                          \
        }                                                                                          \
    } while (0)
#define ZSTORE()                                                                                   \
    do {                                                                                           \
        if (R * T <= 8) {                                                                          \
            k_store(R, T, sum, out, os);                                                           \
        } else {                                                                                   \
            k_store(2, T, sum, out, os);                                                           \
            k_store(2, T, sum2, out + 2, os);                                                      \
        }                                                                                          \
    } while (0)

/* Q4_K and Q5_K. Chunk c (64 weights) is sub-blocks 2c and 2c + 1: the low
** and high nibbles of qs[32c ..] (and bits 2c, 2c + 1 of qh[] for Q5_K),
** which a variable shift of a doubled 32-byte load puts in the two halves. */
INLINE void ztile_k4(uint32_t type, const int R, const int T, int nb, const char *w, size_t ws,
                     const char *a, size_t as, float *out, size_t os)
{
    const size_t bsize = type == GGML_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
    const __m512i m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    /* int16 shift counts: 0 in the first half, 4 in the second */
    const __m512i nib = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    __m256 sum = _mm256_setzero_ps(), sum2 = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *qs[4], *qh[4];
        __m512i s16[4]; /* the eight scales as int16 (lanes 0..7) */
        __m128i mins[4];
        float dw[8] = {0}, dmw[8] = {0}, dy[8] = {0}; /* k_finish loads 4 from dw + 2 */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const char *blk = w + r * ws + b * bsize;
            prefetch_block(blk + PF_TILES * R * ws, bsize);
            s16[r] = _mm512_castsi128_si512(
                k4_row(type, blk, &dw[r], &dmw[r], &qs[r], &qh[r], &mins[r]));
        }
        __m512i acc[ZMAX_TILE];
        for (int p = 0; p < ZMAX_TILE; p++)
            acc[p] = _mm512_setzero_si512();
        const block_q8_K *y[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            y[t] = (const block_q8_K *)(a + t * as) + b;
            dy[t] = y[t]->d;
        }
        for (int c = 0; c < 4; c++) {
            __m512i q[4], sc[4];
            const __m512i idx = load512(pair_idx[c]);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                sc[r] = _mm512_permutexvar_epi16(idx, s16[r]);
                q[r] = _mm512_and_si512(_mm512_srlv_epi16(both_halves(qs[r] + 32 * c), nib), m4);
                if (type == GGML_Q5_K) {
                    /* bit 2c (first half) or 2c + 1 (second) of each qh byte, to bit 4 */
                    const __m512i hs = _mm512_add_epi16(
                        _mm512_set1_epi16((short)(2 * c)),
                        _mm512_srli_epi16(nib, 2)); /* 2c, 2c + 1 */
                    __m512i h = _mm512_and_si512(_mm512_srlv_epi16(both_halves(qh[r]), hs), one);
                    q[r] = _mm512_or_si512(q[r], _mm512_slli_epi16(h, 4));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m512i ay = load512(y[t]->qs + 64 * c);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[r * T + t] = _mm512_dpwssd_epi32(
                        acc[r * T + t], _mm512_maddubs_epi16(q[r], ay), sc[r]);
            }
        }
        /* the min term: mins . (sums of 32 activations), after the loop so
        ** that it holds no registers there */
        __m128i ms[ZMAX_TILE];
        for (int p = 0; p < ZMAX_TILE; p++)
            ms[p] = _mm_setzero_si128();
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            __m128i bs = _mm_hadd_epi16(load128(y[t]->bsums), load128(y[t]->bsums + 8));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                ms[r * T + t] = _mm_madd_epi16(mins[r], bs);
        }
        ZFINISH(zreduce8(acc), reduce8_128(ms), zreduce8(acc + 8), reduce8_128(ms + 8), dmw,
                dmw + 2);
    }
    ZSTORE();
}

/* Q6_K. Chunk p (64 weights, groups 2p and 2p + 1 of tile_q6_K in
** kern_avx2_quant.c) takes its low bits from the 64 bytes at
** ql[64 (p / 2)] (high nibbles for odd p) and its high bits from
** qh[32 (p / 2)] >> 4 (p % 2) (+ 2 in the second half). Quants are used
** unsigned; the offset of 32 returns as 32 * sum(scale * bsum). */
INLINE void ztile_q6_K(const int R, const int T, int nb, const char *w, size_t ws, const char *a,
                       size_t as, float *out, size_t os)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
    const __m512i two = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m256 sum = _mm256_setzero_ps(), sum2 = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const block_q6_K *x[4];
        __m128i s8[4];
        __m512i s16[4];
        float dw[8] = {0}, dy[8] = {0};
        const block_q8_K *y[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            x[r] = (const block_q6_K *)(w + r * ws) + b;
            prefetch_block((const char *)x[r] + PF_TILES * R * ws, sizeof(block_q6_K));
            s8[r] = load128(x[r]->scales);
            s16[r] = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(s8[r]));
            dw[r] = h2f(x[r]->d);
        }
        __m512i acc[ZMAX_TILE];
        __m256i off[ZMAX_TILE];
        for (int p = 0; p < ZMAX_TILE; p++) {
            acc[p] = _mm512_setzero_si512();
            off[p] = _mm256_setzero_si256();
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            y[t] = (const block_q8_K *)(a + t * as) + b;
            dy[t] = y[t]->d;
            __m256i bs = load256(y[t]->bsums);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                off[r * T + t] = _mm256_slli_epi32(
                    _mm256_madd_epi16(_mm256_cvtepi8_epi16(s8[r]), bs), 5);
        }
        for (int p = 0; p < 4; p++) {
            const int h = p / 2, hi = p % 2;
            __m512i q[4], sc[4];
            const __m512i idx = load512(quad_idx[p]);
            const __m512i hshift = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * hi)), two);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i l = load512(x[r]->ql + 64 * h);
                if (hi)
                    l = _mm512_srli_epi16(l, 4);
                __m512i hb = _mm512_srlv_epi16(both_halves(x[r]->qh + 32 * h), hshift);
                q[r] = _mm512_or_si512(_mm512_and_si512(l, m4),
                                       _mm512_slli_epi16(_mm512_and_si512(hb, m2), 4));
                sc[r] = _mm512_permutexvar_epi16(idx, s16[r]);
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m512i ay = load512(y[t]->qs + 64 * p);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[r * T + t] = _mm512_dpwssd_epi32(
                        acc[r * T + t], _mm512_maddubs_epi16(q[r], ay), sc[r]);
            }
        }
        const __m256i z = _mm256_setzero_si256();
        ZFINISH(_mm256_sub_epi32(zreduce8(acc), reduce8(off)), z,
                _mm256_sub_epi32(zreduce8(acc + 8), reduce8(off + 8)), z, NULL, NULL);
    }
    ZSTORE();
}

/* A legacy block's weights as unsigned bytes w + off (off 128 for Q8_0:
** w ^ 0x80; the stored quants themselves for Q4_0, off 8, and Q5_0, off
** 16, whose fifth bits a mask register places in one instruction). */
INLINE __m256i zexpand32u(uint32_t type, const char *blk, float *d)
{
    if (type == GGML_Q8_0) {
        const block_q8_0 *x = (const block_q8_0 *)blk;
        *d = h2f(x->d);
        return _mm256_xor_si256(load256(x->qs), _mm256_set1_epi8((char)0x80));
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (type == GGML_Q4_0) {
        const block_q4_0 *x = (const block_q4_0 *)blk;
        *d = h2f(x->d);
        __m128i q = load128(x->qs);
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
    }
    const block_q5_0 *x = (const block_q5_0 *)blk;
    *d = h2f(x->d);
    __m128i q = load128(x->qs);
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
    return _mm256_or_si256(v, _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(0x10)));
}

/* Legacy 32-blocks (Q8_0, Q4_0, Q5_0) with Q8_0 activations, two blocks
** per zmm. vpdpbusd multiplies unsigned by signed bytes, so the weights
** go in as w + off (zexpand32u) and off * sum(a), made once per token and
** block pair, comes off again: the integer sums are exact. Each half then
** takes its own scale dw * dy in a float accumulator, as ggml's AVX2 code
** and tile32 do, so results differ from the scalar sum by float rounding
** only. An odd last block fills the low half alone (zeros above add 0). */
INLINE void ztile32(uint32_t type, size_t bsize, const int R, const int T, int nb, const char *w,
                    size_t ws, const char *a, size_t as, float *out, size_t os)
{
    __m512 acc[ZMAX_TILE];
    for (int p = 0; p < ZMAX_TILE; p++)
        acc[p] = _mm512_setzero_ps();
    const __m512i off = _mm512_set1_epi8(type == GGML_Q8_0 ? (char)0x80
                                         : type == GGML_Q4_0 ? 8 : 16);
    for (int b = 0; b < nb; b += 2) {
        const bool two = b + 1 < nb;
        __m512i u[4];
        __m512 dw[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const char *blk = w + r * ws + b * bsize;
            if (b % 4 == 0)
                prefetch_block(blk + PF_TILES * R * ws, 4 * bsize);
            float d0, d1 = 0;
            __m256i lo = zexpand32u(type, blk, &d0);
            __m256i hi = two ? zexpand32u(type, blk + bsize, &d1) : _mm256_setzero_si256();
            u[r] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            dw[r] = _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_0 *y = (const block_q8_0 *)(a + t * as) + b;
            __m512i ay = _mm512_castsi256_si512(load256(y[0].qs));
            ay = _mm512_inserti64x4(ay, two ? load256(y[1].qs) : _mm256_setzero_si256(), 1);
            __m512 dy = _mm512_insertf32x8(_mm512_set1_ps(h2f(y[0].d)),
                                           _mm256_set1_ps(two ? h2f(y[1].d) : 0.0f), 1);
            __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, ay);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], ay),
                                             corr);
                acc[r * T + t] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], dy), _mm512_cvtepi32_ps(p),
                                                 acc[r * T + t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            out[t * os + r] = _mm512_reduce_add_ps(acc[r * T + t]);
}

/* kern_tiles.h's shapes, and the 4 x 4 tile the 32 zmm registers allow */
#define ZTILES(name, call)                                                                         \
    TILE_FN(name, call, 4, 4)                                                                      \
    TILES(name, call, name##_4x4)

#define Q8_0_CALL(R, T) ztile32(GGML_Q8_0, sizeof(block_q8_0), R, T, nb, w, ws, a, as, out, os)
#define Q4_0_CALL(R, T) ztile32(GGML_Q4_0, sizeof(block_q4_0), R, T, nb, w, ws, a, as, out, os)
#define Q5_0_CALL(R, T) ztile32(GGML_Q5_0, sizeof(block_q5_0), R, T, nb, w, ws, a, as, out, os)
#define Q4_K_CALL(R, T) ztile_k4(GGML_Q4_K, R, T, nb, w, ws, a, as, out, os)
#define Q5_K_CALL(R, T) ztile_k4(GGML_Q5_K, R, T, nb, w, ws, a, as, out, os)
#define Q6_K_CALL(R, T) ztile_q6_K(R, T, nb, w, ws, a, as, out, os)

ZTILES(ztiles_q8_0, Q8_0_CALL)
ZTILES(ztiles_q4_0, Q4_0_CALL)
ZTILES(ztiles_q5_0, Q5_0_CALL)
ZTILES(ztiles_q4_K, Q4_K_CALL)
ZTILES(ztiles_q5_K, Q5_K_CALL)
ZTILES(ztiles_q6_K, Q6_K_CALL)

#define ZGEMM(type, qk)                                                                            \
    static void gemm_##type(int n, const void *w, size_t ws, int nr, const void *a, size_t as,     \
                            int nt, float *out, size_t os)                                         \
    {                                                                                              \
        drive(ztiles_##type, n / (qk), w, ws, nr, a, as, nt, out, os);                             \
    }

ZGEMM(q8_0, QK8_0)
ZGEMM(q4_0, QK4_0)
ZGEMM(q5_0, QK5_0)
ZGEMM(q4_K, QK_K)
ZGEMM(q5_K, QK_K)
ZGEMM(q6_K, QK_K)

void kern_avx512_install(kern_table *k)
{
    k->name = "avx512";
    k->gemm[GGML_Q8_0] = gemm_q8_0;
    k->gemm[GGML_Q4_0] = gemm_q4_0;
    k->gemm[GGML_Q5_0] = gemm_q5_0;
    k->gemm[GGML_Q4_K] = gemm_q4_K;
    k->gemm[GGML_Q5_K] = gemm_q5_K;
    k->gemm[GGML_Q6_K] = gemm_q6_K;
}
