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

#include <math.h>
#include <string.h>

#define INLINE_Z static inline __attribute__((always_inline))

static void (*attn_fallback)(const float *q, size_t qs, int n_q, int per, const void *kc,
                             const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                             float *out, size_t os, float *work);

/* Keys and values are widened 32 rows at a time (four kern_rows8 blocks):
** a query's output sums then stay in registers across 32 rows. */
#define ZROWS 32
/* From this many queries on (a prompt's runs of positions), the queries go
** across the lanes (zattn_lanes). */
#define ZLANES 16

/* og[i][d0 .. d0 + 16 nz) += sum over j < cnt of p[i][j] * rows[j][d0 ..],
** for nq (a constant, 1 to 4) queries at once: each value row loaded once
** serves them all, and their 4 nq independent sums keep the FMA units busy
** (a single query's four sums would wait on each other's latency). Each
** sum takes the rows in order, as the reference adds them. */
INLINE_Z void zpv_rows(const int nq, const float *const p[4], size_t ps, int cnt,
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
            __m512 pv = _mm512_set1_ps(p[i][(size_t)j * ps]);
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
INLINE_Z void zpv_head(const int nq, const float *const p[4], size_t ps, int cnt,
                       const float *const rows[ZROWS], float *const og[4], int hd)
{
    int d0 = 0;
    for (; d0 + 64 <= hd; d0 += 64)
        zpv_rows(nq, p, ps, cnt, rows, og, d0, 4);
    if (d0 < hd)
        zpv_rows(nq, p, ps, cnt, rows, og, d0, (hd - d0) / 16);
}

/* Value rows p .. p + cnt (rows[]) into the outputs of nq queries: query i
** sees len[i] positions, its probabilities are sc[i * qs + j * ps] for
** position j, its output out + i * os. Queries that see as many of these
** rows (the heads of one position) go four at a time. */
INLINE_Z void zpv_queries(int nq, const int *len, const float *sc, size_t qs, size_t ps, int p,
                          int cnt, const float *const rows[ZROWS], float *out, size_t os, int hd)
{
    for (int i = 0; i < nq;) {
        int c = CN_MIN(cnt, len[i] - p), k = 1;
        while (k < 4 && i + k < nq && CN_MIN(cnt, len[i + k] - p) == c)
            k++;
        if (c > 0) {
            const float *pp[4];
            float *og[4];
            for (int x = 0; x < 4; x++) {
                int ix = i + CN_MIN(x, k - 1);
                pp[x] = sc + (size_t)ix * qs + (size_t)p * ps;
                og[x] = out + (size_t)ix * os;
            }
            if (k == 4)
                zpv_head(4, pp, ps, c, rows, og, hd);
            else
                for (int x = 0; x < k; x++)
                    zpv_head(1, pp + x, ps, c, rows, og + x, hd);
        }
        i += k;
    }
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
    int len[ZLANES]; /* fewer come here: zattn_prompt takes ZLANES or more */
    for (int g = 0; g < n_q; g++)
        len[g] = kern_attn_len(n, n_q, per, g);
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
        zpv_queries(n_q, len, sc, (size_t)n, 1, p, cnt, rows, out, os, hd);
    }
}

/* e^x, 16 lanes (kern_avx2.c's exp_ps in 512 bits: the same constants). */
static inline __m512 zexp(__m512 x)
{
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)),
                                  23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* Up to 16 queries of a prompt with the queries across the lanes: their
** rounded values transposed once (qt[d] holds dimension d of the 16), so
** that each key element broadcast meets 16 queries in one multiply-add and
** a key's 16 scores come out as one vector, with no sums across lanes; the
** softmax runs down the keys, 16 queries at a time. Lane i is query g0 + i
** (nq of them, seeing len[i] positions). sc holds n * 16 floats, qt hd * 16,
** blk ZROWS * hd. */
INLINE_Z void zattn_lanes(const float *q, size_t qs, int nq, const int len[16], const void *kc,
                          const void *vc, size_t kvs, int hd, bool f16, float scale, float *out,
                          size_t os, float *sc, float *qt, float *blk)
{
    int nmax = 0;
    for (int i = 0; i < nq; i++)
        nmax = CN_MAX(nmax, len[i]);
    for (int d = 0; d < hd; d++)
        for (int i = 0; i < 16; i++) {
            float v = i < nq ? q[(size_t)i * qs + d] : 0.0f;
            qt[(size_t)d * 16 + i] = f16 ? _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)) : v;
        }
    __m512i lenv = _mm512_set1_epi32(0);
    for (int i = 0; i < nq; i++)
        lenv = _mm512_mask_set1_epi32(lenv, (__mmask16)(1u << i), len[i]);
    const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    const float *rows[ZROWS];
    __m512 mx = ninf;
    for (int p = 0; p < nmax; p += ZROWS) {
        int cnt = CN_MIN(ZROWS, nmax - p);
        zrows(kc, kvs, p, cnt, hd, f16, blk, rows);
        for (int b = 0; b < cnt; b += 8) {
            __m512 acc[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                acc[j] = _mm512_setzero_ps();
            const int c8 = CN_MIN(8, cnt - b);
            for (int d = 0; d < hd; d++) {
                __m512 qv = _mm512_loadu_ps(qt + (size_t)d * 16);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    if (j < c8)
                        acc[j] = _mm512_fmadd_ps(qv, _mm512_set1_ps(rows[b + j][d]), acc[j]);
            }
            for (int j = 0; j < c8; j++) {
                int pos = p + b + j;
                /* positions after a query's own are not scores of it */
                __mmask16 live = _mm512_cmpgt_epi32_mask(lenv, _mm512_set1_epi32(pos));
                __m512 s = _mm512_mask_mov_ps(ninf, live, _mm512_mul_ps(acc[j], vscale));
                mx = _mm512_max_ps(mx, s);
                _mm512_storeu_ps(sc + (size_t)pos * 16, s);
            }
        }
    }
    /* softmax down the keys; lanes without a query have max -inf and are
    ** never used */
    mx = _mm512_mask_mov_ps(_mm512_setzero_ps(), _mm512_cmp_ps_mask(mx, ninf, _CMP_NEQ_OQ), mx);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < nmax; j++) {
        __m512 e = zexp(_mm512_sub_ps(_mm512_loadu_ps(sc + (size_t)j * 16), mx));
        e = _mm512_mask_mov_ps(_mm512_setzero_ps(),
                               _mm512_cmpgt_epi32_mask(lenv, _mm512_set1_epi32(j)), e);
        sum = _mm512_add_ps(sum, e);
        _mm512_storeu_ps(sc + (size_t)j * 16, e);
    }
    __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f),
                               _mm512_mask_mov_ps(_mm512_set1_ps(1.0f),
                                                  _mm512_cmp_ps_mask(sum, _mm512_setzero_ps(),
                                                                     _CMP_GT_OQ),
                                                  sum));
    for (int j = 0; j < nmax; j++) {
        __m512 pr = _mm512_mul_ps(_mm512_loadu_ps(sc + (size_t)j * 16), inv);
        if (f16) /* rounded as the reference multiplies them */
            pr = _mm512_cvtph_ps(_mm512_cvtps_ph(pr, _MM_FROUND_TO_NEAREST_INT));
        _mm512_storeu_ps(sc + (size_t)j * 16, pr);
    }
    for (int i = 0; i < nq; i++)
        memset(out + (size_t)i * os, 0, sizeof(float) * (size_t)hd);
    for (int p = 0; p < nmax; p += ZROWS) {
        int cnt = CN_MIN(ZROWS, nmax - p);
        zrows(vc, kvs, p, cnt, hd, f16, blk, rows);
        zpv_queries(nq, len, sc, 1, 16, p, cnt, rows, out, os, hd);
    }
}

/* Many queries (a prompt's runs of positions): 16 at a time across lanes. */
INLINE_Z void zattn_prompt(const float *q, size_t qs, int n_q, int per, const void *kc,
                           const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                           float *out, size_t os, float *work)
{
    float *sc = work, *qt = sc + (size_t)n * 16, *blk = qt + (size_t)hd * 16;
    for (int g0 = 0; g0 < n_q; g0 += 16) {
        int nq = CN_MIN(16, n_q - g0), len[16] = {0};
        for (int i = 0; i < nq; i++)
            len[i] = kern_attn_len(n, n_q, per, g0 + i);
        zattn_lanes(q + (size_t)g0 * qs, qs, nq, len, kc, vc, kvs, hd, f16, scale,
                    out + (size_t)g0 * os, os, sc, qt, blk);
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
    if (n_q >= ZLANES && f16)
        zattn_prompt(q, qs, n_q, per, kc, vc, kvs, n, hd, true, scale, out, os, work);
    else if (n_q >= ZLANES)
        zattn_prompt(q, qs, n_q, per, kc, vc, kvs, n, hd, false, scale, out, os, work);
    else if (f16)
        zattn_body(q, qs, n_q, per, kc, vc, kvs, n, hd, true, scale, out, os, work);
    else
        zattn_body(q, qs, n_q, per, kc, vc, kvs, n, hd, false, scale, out, os, work);
}

void kern_avx512_attn_install(kern_table *k)
{
    attn_fallback = k->attn_cached;
    k->attn_cached = attn_cached_avx512;
}
