/*
** The active kernels (AVX2 on this machine) against the scalar references,
** on odd sizes, with stated tolerances. Skipped, not passed, when the CPU
** has no SIMD table (the two tables are then the same).
*/
#include "test.h"
#include "engine/engine_int.h"
#include "engine/quant.h"

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2 - 1);
}

static bool have_simd(void) { return kern_get() != kern_scalar() && strcmp(kern_get()->name, "scalar"); }

/* Dot products and tiles for one weight type: every (row, token) of a
** rows x toks product through the active gemm and dot, against the scalar
** reference on the reference's own activation format. */
static void check_type(uint32_t type, int n, int rows, int toks, double rel_tol)
{
    const kern_table *k = kern_get(), *s = kern_scalar();
    const quant_traits *qt = quant_get(type);
    size_t wrow = gguf_row_size(type, n);
    float *wf = malloc(sizeof(float) * (size_t)n * rows), *x = malloc(sizeof(float) * (size_t)n * toks);
    char *w = malloc(wrow * (size_t)rows);
    for (int i = 0; i < n * rows; i++)
        wf[i] = frand();
    for (int i = 0; i < n * toks; i++)
        x[i] = frand() * 3;
    for (int r = 0; r < rows; r++)
        qt->from_float(wf + (size_t)r * n, w + (size_t)r * wrow, n);
    size_t arow_k = gguf_row_size(k->act_type[type], n), arow_s = gguf_row_size(s->act_type[type], n);
    char *ak = malloc(arow_k * (size_t)toks), *as = malloc(arow_s * (size_t)toks);
    for (int t = 0; t < toks; t++) {
        if (k->act_from_float[type])
            k->act_from_float[type](x + (size_t)t * n, ak + (size_t)t * arow_k, n);
        else
            memcpy(ak + (size_t)t * arow_k, x + (size_t)t * n, arow_k);
        if (s->act_from_float[type])
            s->act_from_float[type](x + (size_t)t * n, as + (size_t)t * arow_s, n);
        else
            memcpy(as + (size_t)t * arow_s, x + (size_t)t * n, arow_s);
    }
    float *tile = calloc((size_t)rows * toks, sizeof(float));
    if (k->gemm[type])
        k->gemm[type](n, w, wrow, rows, ak, arow_k, toks, tile, (size_t)rows);
    int bad = 0;
    for (int t = 0; t < toks; t++)
        for (int r = 0; r < rows; r++) {
            float ref, fast;
            s->dot[type](n, &ref, w + (size_t)r * wrow, as + (size_t)t * arow_s);
            k->dot[type](n, &fast, w + (size_t)r * wrow, ak + (size_t)t * arow_k);
            double tol = rel_tol * sqrt((double)n) * 3;
            if (fabs(fast - ref) > tol || (k->gemm[type] && fabs(tile[(size_t)t * rows + r] - ref) > tol))
                bad++;
        }
    if (bad)
        test_fail_at(__FILE__, __LINE__, "%s: %d of %d products differ from the reference",
                     gguf_ttype_name(type), bad, rows * toks);
    free(wf);
    free(x);
    free(w);
    free(ak);
    free(as);
    free(tile);
}

TEST(kern_simd_matches_reference_products)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    /* odd row/token counts exercise every tile remainder */
    check_type(GGML_F32, 72, 5, 13, 1e-5);
    check_type(GGML_F32, 75, 3, 2, 1e-5);
    check_type(GGML_F16, 136, 7, 15, 1e-3);
    check_type(GGML_F16, 20, 3, 7, 1e-3); /* width not a multiple of 8 */
    /* quantized activations may round differently by one step (the SIMD
    ** quantizer rounds half to even, as ggml's does); the tolerance allows it */
    check_type(GGML_Q8_0, 96, 5, 11, 2e-2);
    check_type(GGML_Q8_0, 32, 1, 1, 2e-2);
}

TEST(kern_simd_q8_0_quantizer_is_ggml_avx2)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = frand() * 10;
    x[5] = 0.5f * 10 / 127 * 2; /* nothing special, a value near a step */
    block_q8_0 a[2], b[2];
    kern_get()->act_from_float[GGML_Q8_0](x, a, 64);
    quant_quantize_row_q8_0_ref(x, b, 64);
    int diff = 0;
    for (int k = 0; k < 2; k++) {
        EXPECT_EQ_INT(a[k].d, b[k].d);
        for (int i = 0; i < 32; i++) {
            int dd = a[k].qs[i] - b[k].qs[i];
            EXPECT(dd >= -1 && dd <= 1);
            diff += dd != 0;
        }
    }
    EXPECT(diff <= 2);
    /* all zeros stay zero */
    float z[32] = {0};
    kern_get()->act_from_float[GGML_Q8_0](z, a, 32);
    EXPECT_EQ_INT(a[0].d, 0);
    for (int i = 0; i < 32; i++)
        EXPECT_EQ_INT(a[0].qs[i], 0);
}

TEST(kern_simd_attention_matches_reference)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    int shapes[][3] = {{32, 9, 7}, {64, 33, 33}, {24, 5, 17}, {20, 6, 6}}; /* hd, n_q, n_kv */
    for (size_t c = 0; c < CN_ARRAY_LEN(shapes); c++) {
        int hd = shapes[c][0], nq = shapes[c][1], nkv = shapes[c][2];
        size_t stride = (size_t)hd * 3; /* rows interleaved like heads in a batch */
        float *q = malloc(sizeof(float) * stride * nq), *kk = malloc(sizeof(float) * stride * nkv);
        float *v = malloc(sizeof(float) * stride * nkv);
        for (size_t i = 0; i < stride * nq; i++)
            q[i] = frand() * 2;
        for (size_t i = 0; i < stride * nkv; i++) {
            kk[i] = frand() * 2;
            v[i] = frand();
        }
        float *o1 = calloc(stride * nq, sizeof(float)), *o2 = calloc(stride * nq, sizeof(float));
        float *work = malloc(sizeof(float) * kern_attn_work(hd, nkv));
        kern_scalar()->attn(q, stride, nq, kk, v, stride, nkv, hd, 0.17f, o1, stride, work);
        kern_get()->attn(q, stride, nq, kk, v, stride, nkv, hd, 0.17f, o2, stride, work);
        double md = 0;
        for (int i = 0; i < nq; i++)
            for (int d = 0; d < hd; d++)
                md = fmax(md, fabs(o1[(size_t)i * stride + d] - o2[(size_t)i * stride + d]));
        if (md > 1e-5)
            test_fail_at(__FILE__, __LINE__, "attention hd %d, %d x %d: max diff %g", hd, nq, nkv,
                         md);
        free(q);
        free(kk);
        free(v);
        free(o1);
        free(o2);
        free(work);
    }
}

TEST(kern_simd_f16_conversions)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    float x[37], a[37], b[37];
    uint16_t h[37];
    for (int i = 0; i < 37; i++) {
        x[i] = frand() * 1000;
        h[i] = cn_fp32_to_fp16(x[i]);
    }
    kern_get()->to_float[GGML_F16](h, a, 37);
    for (int i = 0; i < 37; i++)
        EXPECT_NEAR(a[i], cn_fp16_to_fp32(h[i]), 0);
    kern_get()->act_from_float[GGML_F16](x, b, 37);
    for (int i = 0; i < 37; i++)
        EXPECT_NEAR(b[i], cn_fp16_to_fp32(h[i]), 0);
}

TEST(kern_simd_gelu_matches_reference)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    float a[203], b[203];
    for (int i = 0; i < 203; i++)
        a[i] = b[i] = frand() * 14; /* beyond +-10 too */
    a[0] = b[0] = -10.0f;
    a[1] = b[1] = 10.0f;
    a[2] = b[2] = 65504.0f;
    kern_gelu_ref(a, 203);
    kern_get()->gelu(b, 203);
    for (int i = 0; i < 203; i++)
        if (a[i] != b[i])
            test_fail_at(__FILE__, __LINE__, "gelu[%d]: %g vs %g", i, a[i], b[i]);
}
