/*
** kern_avx512.c: causal attention over the KV cache with 512-bit vectors,
** for CPUs with AVX-512 (kern.c installs it with the prompt products of
** kern_avx512_quant.c). The work of kern_avx2.c's attn_cached_body in half
** the instructions: a 64-wide head is four zmm instead of eight ymm, so
** each key's dot product and each value's multiply-add take half as many
** steps. Heads whose width is not a multiple of 16 keep the AVX2 kernel.
** The sums run in the same order, per lane, as the AVX2 kernel's; the test
** compares both with the scalar reference.
*/
#include "engine/kern_avx2.h"

#include <string.h>

#define INLINE_Z static inline __attribute__((always_inline))

static void (*attn_fallback)(const float *q, size_t qs, int n_q, const void *kc, const void *vc,
                             size_t kvs, int n, int hd, bool f16, float scale, float *out,
                             size_t os, float *work);

/* og[d0 .. d0 + 16 nz) += sum over j < cnt of p[j] * rows[j][d0 ..]. */
INLINE_Z void zpv_rows(const float *p, int cnt, const float *const rows[8], float *og, int d0,
                       const int nz)
{
    __m512 acc[4];
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++)
        acc[m] = m < nz ? _mm512_loadu_ps(og + d0 + 16 * m) : _mm512_setzero_ps();
    for (int j = 0; j < cnt; j++) {
        __m512 pv = _mm512_set1_ps(p[j]);
#pragma GCC unroll 4
        for (int m = 0; m < nz; m++)
            acc[m] = _mm512_fmadd_ps(pv, _mm512_loadu_ps(rows[j] + d0 + 16 * m), acc[m]);
    }
#pragma GCC unroll 4
    for (int m = 0; m < nz; m++)
        _mm512_storeu_ps(og + d0 + 16 * m, acc[m]);
}

INLINE_Z void zattn_body(const float *q, size_t qs, int n_q, const void *kc, const void *vc,
                         size_t kvs, int n, int hd, bool f16, float scale, float *out, size_t os,
                         float *work)
{
    float *sc = work, *qr = work + (size_t)n_q * n, *blk = qr + (size_t)n_q * hd;
    const float *rows[8];
    for (int g = 0; g < n_q; g++) {
        const float *qg = q + (size_t)g * qs;
        float *qrg = qr + (size_t)g * hd;
        for (int i = 0; i < hd; i += 16) {
            __m512 v = _mm512_loadu_ps(qg + i);
            if (f16) /* the reference multiplies F16 keys by an F16-rounded query */
                v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
            _mm512_storeu_ps(qrg + i, v);
        }
    }
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int p = 0; p < n; p += 8) {
        int cnt = CN_MIN(8, n - p);
        kern_rows8(kc, kvs, p, cnt, hd, f16, blk, rows);
        for (int g = 0; g < n_q; g++) {
            const float *qrg = qr + (size_t)g * hd;
            float *scg = sc + (size_t)g * n;
            __m512 acc[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                acc[j] = _mm512_setzero_ps();
            for (int d = 0; d < hd; d += 16) {
                __m512 qv = _mm512_loadu_ps(qrg + d);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    if (j < cnt)
                        acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(rows[j] + d), qv, acc[j]);
            }
            /* fold each zmm's halves, then eight sums at once */
            __m256 h[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                h[j] = _mm256_add_ps(_mm512_castps512_ps256(acc[j]),
                                     _mm256_castpd_ps(_mm512_extractf64x4_pd(
                                         _mm512_castps_pd(acc[j]), 1)));
            __m256 s8 = _mm256_mul_ps(fold8(h), vscale);
            if (cnt == 8) {
                _mm256_storeu_ps(scg + p, s8);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, s8);
                memcpy(scg + p, tmp, sizeof(float) * (size_t)cnt);
            }
        }
    }
    for (int g = 0; g < n_q; g++)
        kern_attn_probs_avx2(sc + (size_t)g * n, n, f16);
    for (int g = 0; g < n_q; g++)
        memset(out + (size_t)g * os, 0, sizeof(float) * (size_t)hd);
    for (int p = 0; p < n; p += 8) {
        int cnt = CN_MIN(8, n - p);
        kern_rows8(vc, kvs, p, cnt, hd, f16, blk, rows);
        for (int g = 0; g < n_q; g++) {
            const float *scg = sc + (size_t)g * n + p;
            float *og = out + (size_t)g * os;
            int d0 = 0;
            for (; d0 + 64 <= hd; d0 += 64)
                zpv_rows(scg, cnt, rows, og, d0, 4);
            if (d0 < hd)
                zpv_rows(scg, cnt, rows, og, d0, (hd - d0) / 16);
        }
    }
}

static void attn_cached_avx512(const float *q, size_t qs, int n_q, const void *kc, const void *vc,
                               size_t kvs, int n, int hd, bool f16, float scale, float *out,
                               size_t os, float *work)
{
    if (hd % 16) {
        attn_fallback(q, qs, n_q, kc, vc, kvs, n, hd, f16, scale, out, os, work);
        return;
    }
    if (f16)
        zattn_body(q, qs, n_q, kc, vc, kvs, n, hd, true, scale, out, os, work);
    else
        zattn_body(q, qs, n_q, kc, vc, kvs, n, hd, false, scale, out, os, work);
}

void kern_avx512_attn_install(kern_table *k)
{
    attn_fallback = k->attn_cached;
    k->attn_cached = attn_cached_avx512;
}
