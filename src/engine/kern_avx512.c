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

static void (*attn_fallback)(const float *q, size_t qs, int n_q, int per, const void *kc,
                             const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                             float *out, size_t os, float *work);

/* Keys and values are widened 32 rows at a time (four kern_rows8 blocks):
** a query's output sums then stay in registers across 32 rows. */
#define ZROWS 32

/* og[i][d0 .. d0 + 16 nz) += sum over j < cnt of p[i][j] * rows[j][d0 ..],
** for nq (a constant, 1 to 4) queries at once: each value row loaded once
** serves them all, and their 4 nq independent sums keep the FMA units busy
** (a single query's four sums would wait on each other's latency). Each
** sum takes the rows in order, as the reference adds them. */
INLINE_Z void zpv_rows(const int nq, const float *const p[4], int cnt,
                       const float *const rows[ZROWS], float *const og[4], int d0, const int nz)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < nq; i++)
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++)
            acc[i][m] = m < nz ? _mm512_loadu_ps(og[i] + d0 + 16 * m) : _mm512_setzero_ps();
    for (int j = 0; j < cnt; j++) {
        __m512 v[4];
#pragma GCC unroll 4
        for (int m = 0; m < nz; m++)
            v[m] = _mm512_loadu_ps(rows[j] + d0 + 16 * m);
#pragma GCC unroll 4
        for (int i = 0; i < nq; i++) {
            __m512 pv = _mm512_set1_ps(p[i][j]);
#pragma GCC unroll 4
            for (int m = 0; m < nz; m++)
                acc[i][m] = _mm512_fmadd_ps(pv, v[m], acc[i][m]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < nq; i++)
#pragma GCC unroll 4
        for (int m = 0; m < nz; m++)
            _mm512_storeu_ps(og[i] + d0 + 16 * m, acc[i][m]);
}

/* zpv_rows over a whole head (64 dimensions at a time, then the rest). */
INLINE_Z void zpv_head(const int nq, const float *const p[4], int cnt,
                       const float *const rows[ZROWS], float *const og[4], int hd)
{
    int d0 = 0;
    for (; d0 + 64 <= hd; d0 += 64)
        zpv_rows(nq, p, cnt, rows, og, d0, 4);
    if (d0 < hd)
        zpv_rows(nq, p, cnt, rows, og, d0, (hd - d0) / 16);
}

/* The scores of one query against keys rows[0 .. cnt) (cnt <= 8; a
** constant 8 in the common case, so that no lane test is left in the loop),
** scaled, into sc[0 .. cnt). */
INLINE_Z void zscores8(const float *qrg, const float *const rows[8], const int cnt, int hd,
                       __m256 vscale, float *sc)
{
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
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[j]), 1)));
    __m256 s8 = _mm256_mul_ps(fold8(h), vscale);
    if (cnt == 8) {
        _mm256_storeu_ps(sc, s8);
    } else {
        float tmp[8];
        _mm256_storeu_ps(tmp, s8);
        memcpy(sc, tmp, sizeof(float) * (size_t)cnt);
    }
}

/* Rows p .. p + cnt of the cache widened (F16) or pointed at (F32). */
INLINE_Z void zrows(const void *base, size_t kvs, int p, int cnt, int hd, bool f16, float *blk,
                    const float *rows[ZROWS])
{
    for (int b = 0; b < cnt; b += 8)
        kern_rows8(base, kvs, p + b, CN_MIN(8, cnt - b), hd, f16, blk + (size_t)b * hd, rows + b);
}

INLINE_Z void zattn_body(const float *q, size_t qs, int n_q, int per, const void *kc,
                         const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                         float *out, size_t os, float *work)
{
    float *sc = work, *qr = work + (size_t)n_q * n, *blk = qr + (size_t)n_q * hd;
    const float *rows[ZROWS];
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
    for (int p = 0; p < n; p += ZROWS) {
        int cnt = CN_MIN(ZROWS, n - p);
        zrows(kc, kvs, p, cnt, hd, f16, blk, rows);
        for (int g = 0; g < n_q; g++) {
            /* keys after the query's position are not needed */
            int c = CN_MIN(cnt, kern_attn_len(n, n_q, per, g) - p);
            const float *qrg = qr + (size_t)g * hd;
            float *scg = sc + (size_t)g * n + p;
            int b = 0;
            for (; b + 8 <= c; b += 8)
                zscores8(qrg, rows + b, 8, hd, vscale, scg + b);
            if (b < c)
                zscores8(qrg, rows + b, c - b, hd, vscale, scg + b);
        }
    }
    for (int g = 0; g < n_q; g++)
        kern_attn_probs_avx2(sc + (size_t)g * n, kern_attn_len(n, n_q, per, g), f16);
    for (int g = 0; g < n_q; g++)
        memset(out + (size_t)g * os, 0, sizeof(float) * (size_t)hd);
    for (int p = 0; p < n; p += ZROWS) {
        int cnt = CN_MIN(ZROWS, n - p);
        zrows(vc, kvs, p, cnt, hd, f16, blk, rows);
        /* queries four at a time where they see as many rows (the heads of
        ** one position), else one by one */
        for (int g = 0; g < n_q;) {
            int c = CN_MIN(cnt, kern_attn_len(n, n_q, per, g) - p);
            int nq = 1;
            while (nq < 4 && g + nq < n_q && kern_attn_len(n, n_q, per, g + nq) - p >= c &&
                   CN_MIN(cnt, kern_attn_len(n, n_q, per, g + nq) - p) == c)
                nq++;
            if (c > 0) {
                const float *pp[4];
                float *og[4];
                for (int i = 0; i < 4; i++) {
                    int gi = g + CN_MIN(i, nq - 1);
                    pp[i] = sc + (size_t)gi * n + p;
                    og[i] = out + (size_t)gi * os;
                }
                if (nq == 4)
                    zpv_head(4, pp, c, rows, og, hd);
                else
                    for (int i = 0; i < nq; i++)
                        zpv_head(1, pp + i, c, rows, og + i, hd);
            }
            g += nq;
        }
    }
}

static void attn_cached_avx512(const float *q, size_t qs, int n_q, int per, const void *kc,
                               const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                               float *out, size_t os, float *work)
{
    if (hd % 16) {
        attn_fallback(q, qs, n_q, per, kc, vc, kvs, n, hd, f16, scale, out, os, work);
        return;
    }
    if (f16)
        zattn_body(q, qs, n_q, per, kc, vc, kvs, n, hd, true, scale, out, os, work);
    else
        zattn_body(q, qs, n_q, per, kc, vc, kvs, n, hd, false, scale, out, os, work);
}

void kern_avx512_attn_install(kern_table *k)
{
    attn_fallback = k->attn_cached;
    k->attn_cached = attn_cached_avx512;
}
