/*
** kern_tiles.h: what the quantized tiles of kern_avx2_quant.c (AVX2) and
** kern_avx512_quant.c (AVX-512 + VNNI) share: loads, prefetch, the
** expansion of 32-blocks, the K-quant scale unpacking, the reductions and
** the float finish that keep K-quant products bit-identical to quant.c's,
** and the tile driver. Only
** for files built with at least -mavx2 -mfma -mf16c (see kern_avx2.h).
*/
#ifndef CN_KERN_TILES_H
#define CN_KERN_TILES_H

#include "engine/kern_avx2.h"

#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define MAX_TILE 8 /* rows x tokens of one tile */
#ifndef PF_TILES
#define PF_TILES 1 /* prefetch distance, in tiles */
#endif

static inline __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline __m128i load128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* Ask for the block of weights a tile will read next: here, the same
** block of the rows after the tile's. Weights stream from memory, and the
** hardware prefetcher stops at every 4 KiB page; without this, generation
** waits on memory at a third of its bandwidth. (A prefetch never faults,
** so the rows past the matrix's end are harmless.) */
INLINE void prefetch_block(const char *p, size_t len)
{
#pragma GCC unroll 8
    for (size_t o = 0; o < len; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T0);
    _mm_prefetch(p + len - 1, _MM_HINT_T0);
}

/* ---- legacy blocks of 32 (Q8_0, Q4_0, Q5_0): each weight block expands
** to 32 signed int8 and a float scale. */

/* 0xFF in byte i where bit i of the 32-bit word is set. */
static inline __m256i bytes_from_bits(const uint8_t b[4])
{
    uint32_t bits;
    memcpy(&bits, b, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                    _mm256_setr_epi64x(0, 0x0101010101010101ll,
                                                       0x0202020202020202ll,
                                                       0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

INLINE __m256i expand32(uint32_t type, const char *blk, float *d)
{
    if (type == GGML_Q8_0) {
        const block_q8_0 *x = (const block_q8_0 *)blk;
        *d = h2f(x->d);
        return load256(x->qs);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (type == GGML_Q4_0) {
        const block_q4_0 *x = (const block_q4_0 *)blk;
        *d = h2f(x->d);
        __m128i q = load128(x->qs); /* elements j (low nibbles) and j + 16 (high) */
        __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
    }
    const block_q5_0 *x = (const block_q5_0 *)blk;
    *d = h2f(x->d);
    __m128i q = load128(x->qs);
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
    v = _mm256_or_si256(v, _mm256_and_si256(bytes_from_bits(x->qh), _mm256_set1_epi8(0x10)));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(16));
}

/* ---- K-quants ---- */

/* Lanes p = r * T + t of the result: the sum of the 8 int32 lanes of v[p]. */
static inline __m256i reduce8(const __m256i v[8])
{
    __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20),
                            _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* The same for 8 vectors of 4 int32. */
static inline __m256i reduce8_128(const __m128i v[8])
{
    __m128i a = _mm_hadd_epi32(v[0], v[1]), b = _mm_hadd_epi32(v[2], v[3]);
    __m128i c = _mm_hadd_epi32(v[4], v[5]), d = _mm_hadd_epi32(v[6], v[7]);
    return _mm256_set_m128i(_mm_hadd_epi32(c, d), _mm_hadd_epi32(a, b));
}

/* The 6-bit scales and mins of Q4_K/Q5_K (see scale_min_k4 in quant.c),
** as 8 scale bytes then 8 min bytes. */
static inline void k4_scales(const uint8_t s[K_SCALE_SIZE], uint8_t out[16])
{
    uint32_t u[4];
    memcpy(u, s, K_SCALE_SIZE);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
    u[3] = ((u[2] >> 4) & low4) | (((u[1] >> 6) & low2) << 4); /* mins 4..7 */
    uint32_t mins = u[1] & low6;                                /* mins 0..3 */
    u[1] = (u[2] & low4) | (((u[0] >> 6) & low2) << 4);        /* scales 4..7 */
    u[2] = mins;
    u[0] &= low6; /* scales 0..3 */
    memcpy(out, u, 16);
}

/* One Q4_K/Q5_K super-block's header for a tile row: d, dmin, where its
** quants (and Q5_K's high bits) are, the eight mins as int16 in *mins;
** returns the eight scales as int16. */
INLINE __m128i k4_row(uint32_t type, const char *blk, float *d, float *dmin, const uint8_t **qs,
                      const uint8_t **qh, __m128i *mins)
{
    uint8_t s[16];
    if (type == GGML_Q4_K) {
        const block_q4_K *x = (const block_q4_K *)blk;
        k4_scales(x->scales, s);
        *d = h2f(x->d), *dmin = h2f(x->dmin), *qs = x->qs, *qh = NULL;
    } else {
        const block_q5_K *x = (const block_q5_K *)blk;
        k4_scales(x->scales, s);
        *d = h2f(x->d), *dmin = h2f(x->dmin), *qs = x->qs, *qh = x->qh;
    }
    *mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(s + 8)));
    return _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)s));
}

/* Per tile pair (r, t), lane r * T + t: sum += dall * isum - dmin * summs,
** the reference's float expressions (no fused multiply-add: the file is C17,
** where GCC does not contract). For Q6_K, dmin is NULL. The products
** dw[r] * dy[t] are made in vectors (lane p takes row p / T and token
** p % T; lanes past R * T repeat pair 0 and are never stored): each is one
** rounded multiply, as in the reference. */
INLINE __m256 k_finish(const int R, const int T, __m256 sum, const __m256i isum,
                       const __m256i summs, const float *dw, const float *dmw, const float *dy)
{
#define K_R(p) ((p) < R * T ? (p) / T : 0)
#define K_T(p) ((p) < R * T ? (p) % T : 0)
    const __m256i ri = _mm256_setr_epi32(K_R(0), K_R(1), K_R(2), K_R(3), K_R(4), K_R(5), K_R(6),
                                         K_R(7));
    const __m256i ti = _mm256_setr_epi32(K_T(0), K_T(1), K_T(2), K_T(3), K_T(4), K_T(5), K_T(6),
                                         K_T(7));
#undef K_R
#undef K_T
    __m256 dyv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(dy)), ti);
    __m256 da = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(dw)), ri),
                              dyv);
    __m256 f = _mm256_mul_ps(da, _mm256_cvtepi32_ps(isum));
    if (dmw) {
        __m256 dm = _mm256_mul_ps(
            _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(dmw)), ri), dyv);
        f = _mm256_sub_ps(f, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(summs)));
    }
    return _mm256_add_ps(sum, f);
}

INLINE void k_store(const int R, const int T, __m256 sum, float *out, size_t os)
{
    float s[8];
    _mm256_storeu_ps(s, sum);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            out[t * os + r] = s[r * T + t];
}

typedef void (*tile_fn)(int nb, const char *w, size_t ws, const char *a, size_t as, float *out,
                        size_t os);

/* The tile shapes of one kernel (call(R, T) is its body) and their table,
** indexed by log2 rows and log2 tokens; t44 is the 4 x 4 tile or NULL. */
#define TILE_FN(name, call, R, T)                                                                  \
    static void name##_##R##x##T(int nb, const char *w, size_t ws, const char *a, size_t as,       \
                                 float *out, size_t os)                                            \
    {                                                                                              \
        call(R, T);                                                                                \
    }
#define TILES(name, call, t44)                                                                     \
    TILE_FN(name, call, 1, 1)                                                                      \
    TILE_FN(name, call, 2, 1)                                                                      \
    TILE_FN(name, call, 4, 1)                                                                      \
    TILE_FN(name, call, 1, 2)                                                                      \
    TILE_FN(name, call, 2, 2)                                                                      \
    TILE_FN(name, call, 4, 2)                                                                      \
    TILE_FN(name, call, 1, 4)                                                                      \
    TILE_FN(name, call, 2, 4)                                                                      \
    static const tile_fn name[3][3] = {{name##_1x1, name##_1x2, name##_1x4},                       \
                                       {name##_2x1, name##_2x2, name##_2x4},                       \
                                       {name##_4x1, name##_4x2, t44}};

/* Cover nr rows x nt tokens with tiles: 4 x 4 (where the table has one) or
** 2 x 4 where there are four tokens, 4 x 2 or 4 x 1 for fewer (generation),
** smaller ones for the remainders. */
static inline void drive(const tile_fn tiles[3][3], int nb, const char *w, size_t ws, int nr,
                  const char *a, size_t as, int nt, float *out, size_t os)
{
    for (int t = 0; t < nt;) {
        int lt = nt - t >= 4 ? 2 : nt - t >= 2 ? 1 : 0;
        for (int r = 0; r < nr;) {
            int lr = nr - r >= 4 && tiles[2][lt] ? 2 : nr - r >= 2 ? 1 : 0;
            tiles[lr][lt](nb, w + (size_t)r * ws, ws, a + (size_t)t * as, as,
                          out + (size_t)t * os + r, os);
            r += 1 << lr;
        }
        t += 1 << lt;
    }
}

#endif
