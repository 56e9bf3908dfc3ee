/*
** kern_avx2.c: AVX2 + FMA + F16C twins of the hot kernels. The only file
** built with -mavx2 -mfma -mf16c; kern_init() installs these entries only
** when the CPU has all three. Each kernel has its scalar reference in
** quant.c / kern.c and a differential test in tests/unit/test_kern.c.
**
** Matrix products come in two shapes: a dot product (one token: generation)
** and a tile kernel (many tokens: prompts and embedding batches) that keeps
** a few weight rows and several tokens in registers, so each weight load
** serves several tokens and each activation load several rows.
*/
#include "engine/kern_avx2.h"

#include <math.h>
#include <string.h>

#define INLINE_ATTN static inline __attribute__((always_inline))

/* ---- F32 weights --------------------------------------------------------- */

static void dot_f32(int n, float *s, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    float r = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        r += x[i] * y[i];
    *s = r;
}

/* ---- F16 weights ----------------------------------------------------------
** ggml rounds activations to F16 for F16 weights; we keep that rounding but
** store the rounded values as F32, so the inner loop converts only weights. */

static void act_f16_rounded(const float *x, void *y, int64_t n)
{
    float *out = y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        out[i] = cn_fp16_to_fp32(cn_fp32_to_fp16(x[i]));
}

static void to_float_f16(const void *x, float *y, int64_t n)
{
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++)
        y[i] = cn_fp16_to_fp32(h[i]);
}

static inline __m256 load_h(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static void dot_f16(int n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_h(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load_h(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load_h(x + i), _mm256_loadu_ps(y + i), acc0);
    float r = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        r += cn_fp16_to_fp32(x[i]) * y[i];
    *s = r;
}

/* 2 weight rows x 6 tokens per step: 12 accumulators, each weight vector
** converted once and used six times. */
static void gemm_f16(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int nt,
                     float *out, size_t os)
{
    if (n % 8) { /* odd widths: plain dot products */
        for (int t = 0; t < nt; t++)
            for (int r = 0; r < nr; r++)
                dot_f16(n, &out[(size_t)t * os + r], (const char *)w + r * ws,
                        (const char *)a + t * as);
        return;
    }
    int r = 0;
    for (; r + 2 <= nr; r += 2) {
        const uint16_t *w0 = (const uint16_t *)((const char *)w + r * ws);
        const uint16_t *w1 = (const uint16_t *)((const char *)w + (r + 1) * ws);
        int t = 0;
        for (; t + 6 <= nt; t += 6) {
            const float *y[6];
            for (int j = 0; j < 6; j++)
                y[j] = (const float *)((const char *)a + (size_t)(t + j) * as);
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c04 = c00,
                   c05 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00, c14 = c00, c15 = c00;
            for (int k = 0; k < n; k += 8) {
                __m256 a0 = load_h(w0 + k), a1 = load_h(w1 + k), b;
                b = _mm256_loadu_ps(y[0] + k);
                c00 = _mm256_fmadd_ps(a0, b, c00);
                c10 = _mm256_fmadd_ps(a1, b, c10);
                b = _mm256_loadu_ps(y[1] + k);
                c01 = _mm256_fmadd_ps(a0, b, c01);
                c11 = _mm256_fmadd_ps(a1, b, c11);
                b = _mm256_loadu_ps(y[2] + k);
                c02 = _mm256_fmadd_ps(a0, b, c02);
                c12 = _mm256_fmadd_ps(a1, b, c12);
                b = _mm256_loadu_ps(y[3] + k);
                c03 = _mm256_fmadd_ps(a0, b, c03);
                c13 = _mm256_fmadd_ps(a1, b, c13);
                b = _mm256_loadu_ps(y[4] + k);
                c04 = _mm256_fmadd_ps(a0, b, c04);
                c14 = _mm256_fmadd_ps(a1, b, c14);
                b = _mm256_loadu_ps(y[5] + k);
                c05 = _mm256_fmadd_ps(a0, b, c05);
                c15 = _mm256_fmadd_ps(a1, b, c15);
            }
            float *o = out + (size_t)t * os + r;
            o[0 * os] = hsum(c00), o[0 * os + 1] = hsum(c10);
            o[1 * os] = hsum(c01), o[1 * os + 1] = hsum(c11);
            o[2 * os] = hsum(c02), o[2 * os + 1] = hsum(c12);
            o[3 * os] = hsum(c03), o[3 * os + 1] = hsum(c13);
            o[4 * os] = hsum(c04), o[4 * os + 1] = hsum(c14);
            o[5 * os] = hsum(c05), o[5 * os + 1] = hsum(c15);
        }
        for (; t < nt; t++) {
            const char *y = (const char *)a + (size_t)t * as;
            dot_f16(n, &out[(size_t)t * os + r], w0, y);
            dot_f16(n, &out[(size_t)t * os + r + 1], w1, y);
        }
    }
    for (; r < nr; r++)
        for (int t = 0; t < nt; t++)
            dot_f16(n, &out[(size_t)t * os + r], (const char *)w + r * ws,
                    (const char *)a + (size_t)t * as);
}

/* ---- BF16 weights -----------------------------------------------------------
** As F16: activations rounded to BF16 (round to nearest even, NaN kept quiet,
** as cn_fp32_to_bf16) but kept as F32; a BF16 weight widens to F32 by a
** 16-bit shift. */

static void act_bf16_rounded(const float *x, void *y, int64_t n)
{
    float *out = y;
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7FFF);
    const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(half, lsb)), 16);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64)),
                               nan);
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(r, 16)));
    }
    for (; i < n; i++)
        out[i] = cn_bf16_to_fp32(cn_fp32_to_bf16(x[i]));
}

static inline __m256 load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static void dot_bf16(int n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), acc0);
    float r = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        r += cn_bf16_to_fp32(x[i]) * y[i];
    *s = r;
}

/* ---- attention -------------------------------------------------------------
** exp by range reduction to 2^n * e^r, |r| <= ln2/2, and a degree-6
** polynomial: within 2 ulp of expf over the softmax range. */
static inline __m256 exp_ps(__m256 x)
{
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                                  23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* g = g / (1 + exp(-g)) * u, eight at a time (exp_ps: within a few ulps of
** expf, as ggml's own vector SiLU is; test_kern.c compares it with the
** reference), the tail by the reference. */
static void silu_mul_avx2(float *g, const float *u, int n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(u + i)));
    }
    kern_silu_mul(g + i, u + i, n - i);
}

/* sc[0..n) = softmax(sc[0..n)) in place. */
void kern_softmax_avx2(float *sc, int n)
{
    /* the maximum, eight lanes at a time (maxps returns its second operand
    ** when the first is NaN: NaNs are passed over, as by the scalar loop) */
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int j0 = 0;
    for (; j0 + 8 <= n; j0 += 8)
        mv = _mm256_max_ps(_mm256_loadu_ps(sc + j0), mv);
    float lanes[8], m = -INFINITY;
    _mm256_storeu_ps(lanes, mv);
    for (int l = 0; l < 8; l++)
        m = lanes[l] > m ? lanes[l] : m;
    for (; j0 < n; j0++)
        m = sc[j0] > m ? sc[j0] : m;
    __m256 mx = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(sc + j), mx));
        _mm256_storeu_ps(sc + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum(sum);
    for (; j < n; j++) {
        sc[j] = expf(sc[j] - m);
        total += sc[j];
    }
    __m256 inv = _mm256_set1_ps(1.0f / total);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(sc + j, _mm256_mul_ps(_mm256_loadu_ps(sc + j), inv));
    for (; j < n; j++)
        sc[j] *= 1.0f / total;
}

void kern_attn_probs_avx2(float *sc, int n, bool f16)
{
    kern_softmax_avx2(sc, n);
    if (!f16)
        return;
    int p = 0;
    for (; p + 8 <= n; p += 8)
        _mm256_storeu_ps(sc + p, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(sc + p),
                                                                  _MM_FROUND_TO_NEAREST_INT)));
    for (; p < n; p++)
        sc[p] = _cvtsh_ss(_cvtss_sh(sc[p], _MM_FROUND_TO_NEAREST_INT));
}

/* out_r = P_r . V for nq (1 or 2) rows of probabilities p (stride np): each
** value vector loaded once serves both queries. */
static void probs_times_v(const float *p, size_t np, int nq, int n, const float *v, size_t kvs,
                          int hd, float *out, size_t os)
{
    for (int d0 = 0; d0 < hd; d0 += 32) {
        int nd = CN_MIN(32, hd - d0) / 8;
        __m256 a[2][4];
        for (int m8 = 0; m8 < 4; m8++)
            a[0][m8] = a[1][m8] = _mm256_setzero_ps();
        if (nq == 2 && nd == 4) {
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * kvs + d0;
                __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);
                __m256 v2 = _mm256_loadu_ps(vj + 16), v3 = _mm256_loadu_ps(vj + 24);
                __m256 p0 = _mm256_set1_ps(p[j]), p1 = _mm256_set1_ps(p[np + j]);
                a[0][0] = _mm256_fmadd_ps(p0, v0, a[0][0]);
                a[0][1] = _mm256_fmadd_ps(p0, v1, a[0][1]);
                a[0][2] = _mm256_fmadd_ps(p0, v2, a[0][2]);
                a[0][3] = _mm256_fmadd_ps(p0, v3, a[0][3]);
                a[1][0] = _mm256_fmadd_ps(p1, v0, a[1][0]);
                a[1][1] = _mm256_fmadd_ps(p1, v1, a[1][1]);
                a[1][2] = _mm256_fmadd_ps(p1, v2, a[1][2]);
                a[1][3] = _mm256_fmadd_ps(p1, v3, a[1][3]);
            }
        } else {
            for (int r = 0; r < nq; r++)
                for (int j = 0; j < n; j++) {
                    __m256 pj = _mm256_set1_ps(p[(size_t)r * np + j]);
                    const float *vj = v + (size_t)j * kvs + d0;
                    for (int m8 = 0; m8 < nd; m8++)
                        a[r][m8] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * m8), a[r][m8]);
                }
        }
        for (int r = 0; r < nq; r++)
            for (int m8 = 0; m8 < nd; m8++)
                _mm256_storeu_ps(out + (size_t)r * os + d0 + 8 * m8, a[r][m8]);
    }
}

/* Keys are transposed once per head so that eight scores come out of each
** run of FMAs with no horizontal sums; values are accumulated 32 dims at a
** time. Head sizes that are not a multiple of 8 take the reference path. */
static void attn_avx2(const float *q, size_t qs, int n_q, const float *k, const float *v,
                      size_t kvs, int n_kv, int hd, float scale, float alibi, float *out,
                      size_t os, float *work)
{
    if (hd % 8) {
        kern_scalar()->attn(q, qs, n_q, k, v, kvs, n_kv, hd, scale, alibi, out, os, work);
        return;
    }
    int np = (n_kv + 7) / 8 * 8;
    float *kt = work, *sc = work + (size_t)hd * np;
    for (int d = 0; d < hd; d++) {
        for (int j = 0; j < n_kv; j++)
            kt[(size_t)d * np + j] = k[(size_t)j * kvs + d];
        for (int j = n_kv; j < np; j++)
            kt[(size_t)d * np + j] = 0;
    }
    __m256 vscale = _mm256_set1_ps(scale);
    int i = 0;
    /* scores of four queries at once: each key vector loaded serves four */
    for (; i + 4 <= n_q; i += 4) {
        const float *q0 = q + (size_t)i * qs, *q1 = q0 + qs, *q2 = q1 + qs, *q3 = q2 + qs;
        float *s0 = sc, *s1 = sc + np, *s2 = sc + 2 * (size_t)np, *s3 = sc + 3 * (size_t)np;
        for (int jb = 0; jb < np; jb += 8) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < hd; d++) {
                __m256 kv = _mm256_loadu_ps(kt + (size_t)d * np + jb);
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(q0[d]), kv, a0);
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(q1[d]), kv, a1);
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(q2[d]), kv, a2);
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(q3[d]), kv, a3);
            }
            _mm256_storeu_ps(s0 + jb, _mm256_mul_ps(a0, vscale));
            _mm256_storeu_ps(s1 + jb, _mm256_mul_ps(a1, vscale));
            _mm256_storeu_ps(s2 + jb, _mm256_mul_ps(a2, vscale));
            _mm256_storeu_ps(s3 + jb, _mm256_mul_ps(a3, vscale));
        }
        for (int r = 0; r < 4; r++) {
            if (alibi != 0)
                kern_alibi(sc + (size_t)r * np, n_kv, i + r, alibi);
            kern_softmax_avx2(sc + (size_t)r * np, n_kv);
        }
        probs_times_v(sc, np, 2, n_kv, v, kvs, hd, out + (size_t)i * os, os);
        probs_times_v(sc + 2 * (size_t)np, np, 2, n_kv, v, kvs, hd, out + (size_t)(i + 2) * os, os);
    }
    for (; i < n_q; i++) {
        const float *qi = q + (size_t)i * qs;
        for (int jb = 0; jb < np; jb += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (int d = 0; d < hd; d++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(qi[d]),
                                      _mm256_loadu_ps(kt + (size_t)d * np + jb), acc);
            _mm256_storeu_ps(sc + jb, _mm256_mul_ps(acc, vscale));
        }
        if (alibi != 0)
            kern_alibi(sc, n_kv, i, alibi);
        kern_softmax_avx2(sc, n_kv);
        probs_times_v(sc, np, 1, n_kv, v, kvs, hd, out + (size_t)i * os, os);
    }
}

/* ---- causal attention over the KV cache (decoder) --------------------------
** The query heads that share a KV head, in one call: each block of eight
** key (then value) rows is read and widened from F16 once for all of them.
** Scores come eight keys at a time from eight accumulators folded by a tree
** of horizontal adds; the probabilities times the values accumulate up to
** 64 dimensions in registers. */


/* og[d0 .. d0 + 8 nv) += sum over j < cnt of p[j] * rows[j][d0 ..]: the
** sums in registers across the rows (nv is a constant where it matters:
** with a variable count the compiler keeps them in memory). */
INLINE_ATTN void pv_rows(const float *p, int cnt, const float *const rows[8], float *og, int d0,
                         const int nv)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int m8 = 0; m8 < 8; m8++)
        acc[m8] = m8 < nv ? _mm256_loadu_ps(og + d0 + 8 * m8) : _mm256_setzero_ps();
    for (int j = 0; j < cnt; j++) {
        __m256 pv = _mm256_set1_ps(p[j]);
    #pragma GCC unroll 8
    for (int m8 = 0; m8 < nv; m8++)
            acc[m8] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(rows[j] + d0 + 8 * m8), acc[m8]);
    }
#pragma GCC unroll 8
    for (int m8 = 0; m8 < nv; m8++)
        _mm256_storeu_ps(og + d0 + 8 * m8, acc[m8]);
}

INLINE_ATTN void attn_cached_body(const float *q, size_t qs, int n_q, int per, const void *kc,
                                  const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                                  float *out, size_t os, float *work)
{
    float *sc = work, *qr = work + (size_t)n_q * n, *blk = qr + (size_t)n_q * hd;
    const float *rows[8];
    for (int g = 0; g < n_q; g++) {
        const float *qg = q + (size_t)g * qs;
        float *qrg = qr + (size_t)g * hd;
        for (int i = 0; i < hd; i += 8) {
            __m256 v = _mm256_loadu_ps(qg + i);
            if (f16) /* the reference multiplies F16 keys by an F16-rounded query */
                v = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
            _mm256_storeu_ps(qrg + i, v);
        }
    }
    const __m256 vscale = _mm256_set1_ps(scale);
    /* scores: each block of eight keys widened once, for every query */
    for (int p = 0; p < n; p += 8) {
        int cnt = CN_MIN(8, n - p);
        kern_rows8(kc, kvs, p, cnt, hd, f16, blk, rows);
        for (int g = 0; g < n_q; g++) {
            const float *qrg = qr + (size_t)g * hd;
            float *scg = sc + (size_t)g * n;
            if (p >= kern_attn_len(n, n_q, per, g))
                continue; /* keys after the query's position */
            if (cnt == 8) {
                __m256 acc[8];
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    acc[j] = _mm256_setzero_ps();
                for (int d = 0; d < hd; d += 8) {
                    __m256 qv = _mm256_loadu_ps(qrg + d);
    #pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                        acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[j] + d), qv, acc[j]);
                }
                _mm256_storeu_ps(scg + p, _mm256_mul_ps(fold8(acc), vscale));
                continue;
            }
            for (int j = 0; j < cnt; j++) {
                __m256 acc = _mm256_setzero_ps();
                for (int d = 0; d < hd; d += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(rows[j] + d), _mm256_loadu_ps(qrg + d),
                                          acc);
                scg[p + j] = hsum(acc) * scale;
            }
        }
    }
    for (int g = 0; g < n_q; g++)
        kern_attn_probs_avx2(sc + (size_t)g * n, kern_attn_len(n, n_q, per, g), f16);
    /* probabilities times values, position by position in order (as the
    ** reference adds them), each block of eight rows widened once; up to 64
    ** dimensions of a query's sum stay in registers across the block */
    for (int g = 0; g < n_q; g++)
        memset(out + (size_t)g * os, 0, sizeof(float) * (size_t)hd);
    for (int p = 0; p < n; p += 8) {
        int cnt = CN_MIN(8, n - p);
        kern_rows8(vc, kvs, p, cnt, hd, f16, blk, rows);
        for (int g = 0; g < n_q; g++) {
            const float *scg = sc + (size_t)g * n + p;
            float *og = out + (size_t)g * os;
            int c = CN_MIN(cnt, kern_attn_len(n, n_q, per, g) - p), d0 = 0;
            if (c <= 0)
                continue;
            for (; d0 + 64 <= hd; d0 += 64)
                pv_rows(scg, c, rows, og, d0, 8);
            if (d0 < hd)
                pv_rows(scg, c, rows, og, d0, (hd - d0) / 8);
        }
    }
}

static void attn_cached_avx2(const float *q, size_t qs, int n_q, int per, const void *kc,
                             const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                             float *out, size_t os, float *work)
{
    if (hd % 8) {
        kern_scalar()->attn_cached(q, qs, n_q, per, kc, vc, kvs, n, hd, f16, scale, out, os,
                                   work);
        return;
    }
    /* two copies, so that the element type is a constant in each */
    if (f16)
        attn_cached_body(q, qs, n_q, per, kc, vc, kvs, n, hd, true, scale, out, os, work);
    else
        attn_cached_body(q, qs, n_q, per, kc, vc, kvs, n, hd, false, scale, out, os, work);
}

/* GELU by table, eight at a time: round to F16, gather, widen. */
static void gelu_avx2(float *x, int n)
{
    const uint16_t *tab = kern_gelu_table();
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256i h = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        __m256i g = _mm256_i32gather_epi32((const int *)tab, h, 2);
        g = _mm256_and_si256(g, _mm256_set1_epi32(0xFFFF));
        __m256i packed = _mm256_packus_epi32(g, g); /* lanes: 0-3 0-3 | 4-7 4-7 */
        packed = _mm256_permute4x64_epi64(packed, 0x08);
        __m256 r = _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
        r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(v, lo, _CMP_LE_OQ));
        r = _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, hi, _CMP_GE_OQ));
        _mm256_storeu_ps(x + i, r);
    }
    if (i < n)
        kern_gelu_ref(x + i, n - i);
}

void kern_avx2_install(kern_table *k)
{
    k->gelu = gelu_avx2;
    k->silu_mul = silu_mul_avx2;
    k->attn = attn_avx2;
    k->attn_cached = attn_cached_avx2;
    k->name = "avx2";
    k->dot[GGML_F32] = dot_f32;

    k->dot[GGML_F16] = dot_f16;
    k->gemm[GGML_F16] = gemm_f16;
    k->act_type[GGML_F16] = GGML_F32;
    k->act_from_float[GGML_F16] = act_f16_rounded;
    k->to_float[GGML_F16] = to_float_f16;

    k->dot[GGML_BF16] = dot_bf16;
    k->act_type[GGML_BF16] = GGML_F32;
    k->act_from_float[GGML_BF16] = act_bf16_rounded;

    kern_avx2_quant_install(k);
}
