/*
** kern_avx2.h: helpers shared by the files built with -mavx2 -mfma -mf16c
** (kern_avx2*.c). Never include it from a file built without those flags:
** the inline functions would not compile, or worse, would run on a CPU
** without AVX2.
*/
#ifndef CN_KERN_AVX2_H
#define CN_KERN_AVX2_H

#include "engine/engine_int.h"
#include "engine/quant.h"

#include <immintrin.h>

/* One F16 scale to float with the F16C instruction (exact, like the scalar
** cn_fp16_to_fp32, but no function call in the inner loop). */
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sum of the 32 products of two int8 blocks as 8 int32 lanes. */
static inline __m256i dot32_i8(__m256i x, __m256i y)
{
    __m256i ax = _mm256_sign_epi8(x, x), sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* The sums of v[0..7], as the eight lanes of one vector. */
static inline __m256 fold8(const __m256 v[8])
{
    __m256 a = _mm256_hadd_ps(v[0], v[1]), b = _mm256_hadd_ps(v[2], v[3]);
    __m256 c = _mm256_hadd_ps(v[4], v[5]), d = _mm256_hadd_ps(v[6], v[7]);
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

/* Eight key or value rows from p on, as floats: widened into blk (F16), or
** the cache rows themselves (F32). Row j is rows[j]. */
static inline __attribute__((always_inline)) void
kern_rows8(const void *base, size_t kvs, int p, int cnt, int hd, bool f16, float *blk,
           const float *rows[8])
{
    for (int j = 0; j < cnt; j++) {
        if (!f16) {
            rows[j] = (const float *)base + (size_t)(p + j) * kvs;
            continue;
        }
        const uint16_t *r = (const uint16_t *)base + (size_t)(p + j) * kvs;
        for (int d = 0; d < hd; d += 8)
            _mm256_storeu_ps(blk + (size_t)j * hd + d,
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + d))));
        rows[j] = blk + (size_t)j * hd;
    }
}

/* sc[0..n) = softmax(sc[0..n)) in place (kern_avx2.c). */
void kern_softmax_avx2(float *sc, int n);
/* Attention probabilities from scores: the softmax, then, over an F16
** cache, rounded to F16 as the reference multiplies them (kern_avx2.c). */
void kern_attn_probs_avx2(float *sc, int n, bool f16);

/* Quantized twins (kern_avx2_quant.c). */
void kern_avx2_quant_install(kern_table *k);

#endif
