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

/* Offsets of the fp16 scale fields in a block of each quantized type. */
static void scale_fields(uint32_t type, int off[2], int *n_off)
{
    *n_off = 1;
    off[0] = 0;
    if (type == GGML_Q4_K || type == GGML_Q5_K)
        *n_off = 2, off[1] = 2; /* d, dmin */
    else if (type == GGML_Q6_K)
        off[0] = (int)offsetof(block_q6_K, d);
}

/*
** Weights for a differential test, rows x n of `type`. mode 0: quantized
** from normal-ish floats; mode 1: random bytes (every quant and sub-block
** scale value, including the extremes: 6-bit scales of 63, Q6_K scales of
** -128) with finite random fp16 scales over a wide range; rows alternate
** the magnitude of their scales (1e-4 to 1e3).
*/
static char *make_weights(uint32_t type, int n, int rows, int mode)
{
    const quant_traits *qt = quant_get(type);
    size_t wrow = gguf_row_size(type, n);
    char *w = malloc(wrow * (size_t)rows);
    if (mode == 0 || qt->block_size == 1) {
        float *wf = malloc(sizeof(float) * (size_t)n);
        for (int r = 0; r < rows; r++) {
            float mag = r % 3 == 0 ? 1.0f : r % 3 == 1 ? 1e-3f : 50.0f;
            for (int i = 0; i < n; i++)
                wf[i] = frand() * mag;
            qt->from_float(wf, w + (size_t)r * wrow, n);
        }
        free(wf);
        return w;
    }
    for (size_t i = 0; i < wrow * (size_t)rows; i++)
        w[i] = (char)(frand() * 128);
    int off[2], n_off;
    scale_fields(type, off, &n_off);
    size_t nblk = wrow * (size_t)rows / (size_t)qt->type_size;
    for (size_t b = 0; b < nblk; b++)
        for (int k = 0; k < n_off; k++) {
            float mag = (b / (nblk / (size_t)rows)) % 2 ? 1e3f : 1e-4f;
            uint16_t h = cn_fp32_to_fp16(frand() * mag);
            memcpy(w + b * (size_t)qt->type_size + off[k], &h, 2);
        }
    return w;
}

/* Activations rows x n: mode 0 uniform; mode 1 with zero blocks, single
** outliers and tiny values, where a quantizer's rounding is tested hardest. */
static float *make_acts(int n, int toks, int mode)
{
    float *x = malloc(sizeof(float) * (size_t)n * toks);
    for (int i = 0; i < n * toks; i++)
        x[i] = frand() * 3;
    if (mode == 1)
        for (int t = 0; t < toks; t++) {
            float *xt = x + (size_t)t * n;
            if (t % 3 == 0)
                memset(xt, 0, sizeof(float) * (size_t)CN_MIN(n, 256)); /* a zero block */
            if (t % 3 == 1)
                xt[n / 2] = -1e4f; /* an outlier: everything else rounds to small steps */
            if (t % 3 == 2)
                for (int i = 0; i < n; i++)
                    xt[i] *= 1e-20f;
        }
    return x;
}

/* Dot products and tiles for one weight type: every (row, token) of a
** rows x toks product through the active gemm and dot, against the scalar
** reference on the reference's own activation format. rel_tol 0 demands
** bit-identical results. */
static void check_type_mode(const kern_table *k, uint32_t type, int n, int rows, int toks,
                            double rel_tol, int mode)
{
    const kern_table *s = kern_scalar();
    size_t wrow = gguf_row_size(type, n);
    char *w = make_weights(type, n, rows, mode);
    float *x = make_acts(n, toks, mode);
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
    /* the packed panels, where the level has them (asum: Q8_0 block sums) */
    float *ptile = calloc((size_t)rows * toks, sizeof(float));
    int32_t *asum = malloc(sizeof(int32_t) * (size_t)toks * (size_t)(n / 32 + 1));
    if (k->pgemm[type]) {
        if (k->act_type[type] == GGML_Q8_0)
            kern_act_sums(ak, arow_k, n, toks, asum);
        k->pgemm[type](n, w, wrow, rows, ak, arow_k, asum, toks, ptile, (size_t)rows);
    }
    /* the layout repacked at load, where the level has one and the shape
    ** takes it (whole panels of 16 rows, blocks in pairs): every product
    ** goes through it, one token as well as many */
    float *rtile = NULL;
    uint32_t rt = k->repack[type] ? k->repack_type[type] : 0;
    if (rt && rows % 16 == 0 && n % 64 == 0) { /* Q8_0: blocks in pairs */
        void *rw = NULL;
        EXPECT_EQ_INT(posix_memalign(&rw, 64, wrow * (size_t)rows), 0);
        for (int r0 = 0; r0 < rows; r0 += 16) /* in pieces, as the load's threads do */
            k->repack[type](w, wrow, n, r0, r0 + 16, rw);
        if (k->act_type[rt] == GGML_Q8_0)
            kern_act_sums(ak, arow_k, n, toks, asum);
        rtile = calloc((size_t)rows * toks, sizeof(float));
        k->pgemm[rt](n, rw, wrow, rows, ak, arow_k, asum, toks, rtile, (size_t)rows);
        free(rw);
    }
    int bad = 0;
    double worst = 0;
    for (int t = 0; t < toks; t++)
        for (int r = 0; r < rows; r++) {
            float ref, fast, mag;
            s->dot[type](n, &ref, w + (size_t)r * wrow, as + (size_t)t * arow_s);
            k->dot[type](n, &fast, w + (size_t)r * wrow, ak + (size_t)t * arow_k);
            /* the tolerance scales with the size of the terms: |w| . |x| */
            float *wr = malloc(sizeof(float) * (size_t)n);
            quant_get(type)->to_float(w + (size_t)r * wrow, wr, n);
            double norm = 0;
            for (int i = 0; i < n; i++)
                norm += fabs(wr[i] * x[(size_t)t * n + i]);
            free(wr);
            mag = (float)norm;
            double tol = rel_tol * mag;
            double e1 = fabs(fast - ref), e2 = k->gemm[type] ? fabs(tile[(size_t)t * rows + r] - ref) : 0;
            double e3 = k->pgemm[type] ? fabs(ptile[(size_t)t * rows + r] - ref) : 0;
            double e4 = rtile ? fabs(rtile[(size_t)t * rows + r] - ref) : 0;
            if (e1 > tol || e2 > tol || e3 > tol || e4 > tol || isnan(fast) != isnan(ref)) {
                bad++;
                worst = fmax(worst, fmax(fmax(e1, e2), fmax(e3, e4)) / (mag > 0 ? mag : 1));
            }
        }
    if (bad)
        test_fail_at(__FILE__, __LINE__, "%s %s n=%d mode %d: %d of %d products differ from the "
                     "reference (worst %g of |w|.|x|)", k->name, gguf_ttype_name(type), n, mode, bad,
                     rows * toks, worst);
    free(w);
    free(x);
    free(ak);
    free(as);
    free(tile);
    free(ptile);
    free(rtile);
    free(asum);
}

/* Every SIMD level this CPU has (AVX2; AVX-512 + VNNI where present), not
** only the one the engine picks. */
static void check_type(uint32_t type, int n, int rows, int toks, double rel_tol)
{
    static const char *levels[] = {"avx2", "avx512"};
    for (size_t i = 0; i < CN_ARRAY_LEN(levels); i++) {
        const kern_table *k = kern_variant(levels[i]);
        if (!k)
            continue;
        check_type_mode(k, type, n, rows, toks, rel_tol, 0);
        if (quant_get(type)->block_size > 1)
            check_type_mode(k, type, n, rows, toks, rel_tol, 1);
    }
}

TEST(kern_simd_matches_reference_products)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    /* odd row/token counts exercise every tile remainder; float results are
    ** within rel_tol of the sum of |w * x| (the scale of rounding error) */
    check_type(GGML_F32, 72, 5, 13, 1e-6);
    check_type(GGML_F32, 75, 3, 2, 1e-6);
    check_type(GGML_F16, 136, 7, 15, 1e-6);
    check_type(GGML_F16, 20, 3, 7, 1e-6); /* width not a multiple of 8 */
    check_type(GGML_BF16, 264, 5, 9, 1e-6);
    check_type(GGML_BF16, 13, 2, 3, 1e-6);
    /* quantized activations may round differently by one step (the SIMD
    ** Q8_0 quantizer rounds half to even, as ggml's does): one step of 1/127
    ** on one element, under 1e-2 of |w|.|x| */
    check_type(GGML_Q8_0, 96, 5, 11, 1e-2);
    check_type(GGML_Q8_0, 32, 1, 1, 1e-2);
    check_type(GGML_Q4_0, 160, 7, 9, 1e-2);
    check_type(GGML_Q5_0, 224, 9, 6, 1e-2);
    /* the packed panels: partial panels of rows, token groups and chunks of
    ** weights (4096 per pass) */
    check_type(GGML_Q8_0, 4096 + 96, 19, 11, 1e-2);
    check_type(GGML_Q4_0, 160, 33, 17, 1e-2);
    check_type(GGML_Q5_0, 4096 + 64, 17, 9, 1e-2);
    /* Q8_0 repacked at load (AVX-512): one token a panel at a time, more
    ** two panels at a time, an odd panel left over, two chunks of weights */
    check_type(GGML_Q8_0, 64, 16, 1, 1e-2);
    check_type(GGML_Q8_0, 4096 + 128, 48, 1, 1e-2);
    check_type(GGML_Q8_0, 4096 + 128, 48, 5, 1e-2);
    check_type(GGML_Q8_0, 192, 32, 19, 1e-2);
}

/* K-quants are exact: same integers, same float expressions in the same
** order, so every product must equal the reference bit for bit. */
TEST(kern_simd_k_quants_are_bit_exact)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    static const uint32_t types[] = {GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
    for (size_t i = 0; i < CN_ARRAY_LEN(types); i++) {
        check_type(types[i], 256, 1, 1, 0);
        check_type(types[i], 768, 7, 11, 0);  /* remainders of every tile shape */
        check_type(types[i], 512, 9, 5, 0);
        check_type(types[i], 256, 4, 2, 0);
        check_type(types[i], 4096 + 512, 21, 13, 0); /* packed panels, two chunks */
        check_type(types[i], 256, 16, 8, 0);
        /* repacked at load (Q4_K): one token, a verify batch, a prompt */
        check_type(types[i], 4096 + 256, 32, 1, 0);
        check_type(types[i], 512, 16, 5, 0);
        check_type(types[i], 768, 48, 19, 0);
    }
}

/* The AVX-512 level exists exactly where CPUID says it can run, is the
** engine's choice there, and brings its own prompt products (so the checks
** above ran two sets of tiles). */
TEST(kern_avx512_level_follows_the_cpu)
{
    __builtin_cpu_init();
    bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni");
    const kern_table *z = kern_variant("avx512"), *a = kern_variant("avx2");
    EXPECT_EQ_INT(z != NULL, cpu);
    if (z && a && !getenv("CAIRN_KERNELS")) {
        EXPECT_STR(kern_get()->name, "avx512");
        EXPECT(z->gemm[GGML_Q4_K] != a->gemm[GGML_Q4_K]);
        EXPECT(z->gemm[GGML_Q6_K] != a->gemm[GGML_Q6_K]);
        EXPECT(z->dot[GGML_Q4_K] == a->dot[GGML_Q4_K]); /* generation keeps the AVX2 dots */
        EXPECT(z->attn_cached != a->attn_cached);
    }
    EXPECT(kern_variant("avx9") == NULL);
}

TEST(kern_simd_q8_K_quantizer_is_exact)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    const int n = 1024;
    for (int mode = 0; mode < 2; mode++) {
        float *x = make_acts(n, 3, mode);
        x[7] = 1.5f * 2; /* ties of magnitude: the first one found sets the sign */
        x[9] = -3.0f;
        block_q8_K a[12], b[12];
        kern_get()->act_from_float[GGML_Q4_K](x, a, 3 * n);
        quant_quantize_row_q8_K_ref(x, b, 3 * n);
        EXPECT(memcmp(a, b, sizeof a) == 0);
        free(x);
    }
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
        /* without and with an ALiBi slope (jina-bert-v2): the SIMD path adds
        ** the bias where the reference does, and the bias is not a no-op */
        float *o0 = calloc(stride * nq, sizeof(float));
        for (int a = 0; a < 2; a++) {
            float alibi = a ? 0.35f : 0.0f;
            kern_scalar()->attn(q, stride, nq, kk, v, stride, nkv, hd, 0.17f, alibi, o1, stride,
                                work);
            kern_get()->attn(q, stride, nq, kk, v, stride, nkv, hd, 0.17f, alibi, o2, stride,
                             work);
            double md = 0, moved = 0;
            for (int i = 0; i < nq; i++)
                for (int d = 0; d < hd; d++) {
                    size_t at = (size_t)i * stride + d;
                    md = fmax(md, fabs(o1[at] - o2[at]));
                    moved = fmax(moved, fabs(o1[at] - o0[at]));
                }
            if (md > 1e-5)
                test_fail_at(__FILE__, __LINE__, "attention hd %d, %d x %d, alibi %g: max diff %g",
                             hd, nq, nkv, alibi, md);
            if (a && nkv > 1 && moved < 1e-3)
                test_fail_at(__FILE__, __LINE__, "attention hd %d: ALiBi %g changed nothing (%g)",
                             hd, alibi, moved);
            memcpy(o0, o1, sizeof(float) * stride * nq);
        }
        free(o0);
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
    /* BF16 rounding, bit for bit: ties both ways, a NaN, infinities */
    uint32_t bits[24] = {0x3F808000, 0x3F818000, 0x7FC00001, 0x7F800000, 0xFF800000, 0x80000000,
                         0x7F7FFFFF, 0x00008000};
    for (int i = 8; i < 24; i++)
        bits[i] = (uint32_t)(frand() * 2147483647.0) * 2u + (uint32_t)i;
    float in[24], out[24];
    memcpy(in, bits, sizeof in);
    kern_get()->act_from_float[GGML_BF16](in, out, 24);
    for (int i = 0; i < 24; i++) {
        float want = cn_bf16_to_fp32(cn_fp32_to_bf16(in[i]));
        if (memcmp(&want, &out[i], 4))
            test_fail_at(__FILE__, __LINE__, "bf16 of 0x%08x: got %g, want %g", bits[i], out[i],
                         want);
    }
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

/* SiLU-gated products against the reference: the vector exp is within a few
** ulps of expf, so each result is within 1e-6 relative (or 1e-30 absolute,
** for results that underflow towards 0). */
TEST(kern_simd_silu_matches_reference)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    enum { N = 203 }; /* a tail past the last full vector */
    float g[N], u[N], ref[N];
    for (int i = 0; i < N; i++) {
        g[i] = ref[i] = frand() * 30; /* both tails of the sigmoid */
        u[i] = frand() * 4;
    }
    g[0] = ref[0] = -100.0f, g[1] = ref[1] = 100.0f, g[2] = ref[2] = 0.0f;
    kern_silu_mul(ref, u, N);
    kern_get()->silu_mul(g, u, N);
    for (int i = 0; i < N; i++)
        if (fabsf(g[i] - ref[i]) > 1e-6f * fabsf(ref[i]) + 1e-30f)
            test_fail_at(__FILE__, __LINE__, "silu[%d]: %g vs %g", i, g[i], ref[i]);
}

/* Decoder attention over an F16 or F32 cache against the reference. F32:
** sums in another order, within 1e-5 of values in [-1, 1]. F16: the
** probabilities are rounded to F16 after a softmax that differs in the last
** bit, which may move one of them by an F16 step (2^-11 relative): 2e-3.
** Shapes are (head width, positions, queries, queries per position): with
** several positions, each query sees the cache up to its own position, as
** the reference does query by query. */
TEST(kern_simd_cached_attention_matches_reference)
{
    if (!have_simd())
        SKIP("no SIMD kernels on this CPU");
    int shapes[][4] = {{64, 1, 1, 1},   {64, 7, 4, 4},   {64, 8, 1, 1},    {64, 33, 4, 4},
                       {128, 17, 2, 2}, {80, 9, 3, 3},   {24, 5, 1, 1},    {64, 70, 8, 8},
                       {64, 40, 12, 4}, {64, 9, 9, 1},   {80, 19, 6, 2},   {64, 100, 64, 4},
                       {24, 11, 10, 5},  {64, 50, 21, 7},  {128, 40, 32, 4},  {64, 16, 16, 1},
                       {80, 30, 18, 2},  {64, 300, 64, 4}};
    for (size_t c = 0; c < CN_ARRAY_LEN(shapes); c++)
        for (int f16 = 0; f16 < 2; f16++) {
            int hd = shapes[c][0], n = shapes[c][1], nq = shapes[c][2], per = shapes[c][3];
            size_t kvs = (size_t)hd * 3; /* heads interleaved as in the cache */
            size_t qs = (size_t)hd + 8;  /* and queries a little apart */
            float *q = malloc(sizeof(float) * qs * nq), *kf = malloc(sizeof(float) * kvs * n);
            float *vf = malloc(sizeof(float) * kvs * n);
            uint16_t *kh = malloc(2 * kvs * n), *vh = malloc(2 * kvs * n);
            for (size_t d = 0; d < qs * nq; d++)
                q[d] = frand() * 3;
            for (size_t i = 0; i < kvs * n; i++) {
                kf[i] = frand() * 2;
                vf[i] = frand();
                kh[i] = cn_fp32_to_fp16(kf[i]);
                vh[i] = cn_fp32_to_fp16(vf[i]);
            }
            const void *kk = f16 ? (const void *)kh : kf, *vv = f16 ? (const void *)vh : vf;
            float *o1 = calloc(qs * nq, sizeof(float)), *o2 = calloc(qs * nq, sizeof(float));
            float *work = malloc(sizeof(float) * kern_attn_cached_work(nq, n, hd));
            kern_scalar()->attn_cached(q, qs, nq, per, kk, vv, kvs, n, hd, f16, 0.125f, o1, qs,
                                       work);
            /* the reference itself: query g alone over the positions it sees */
            for (int g = 0; g < nq; g++) {
                float one[128];
                int ng = kern_attn_len(n, nq, per, g);
                EXPECT_EQ_INT(ng, n - (nq / per - 1 - g / per));
                kern_scalar()->attn_cached(q + (size_t)g * qs, qs, 1, 1, kk, vv, kvs, ng, hd, f16,
                                           0.125f, one, qs, work);
                EXPECT(memcmp(one, o1 + (size_t)g * qs, sizeof(float) * (size_t)hd) == 0);
            }
            static const char *levels[] = {"avx2", "avx512"}; /* each one this CPU has */
            for (size_t l = 0; l < CN_ARRAY_LEN(levels); l++) {
                const kern_table *k = kern_variant(levels[l]);
                if (!k)
                    continue;
                memset(o2, 0, sizeof(float) * qs * nq);
                k->attn_cached(q, qs, nq, per, kk, vv, kvs, n, hd, f16, 0.125f, o2, qs, work);
                double md = 0;
                for (int g = 0; g < nq; g++)
                    for (int d = 0; d < hd; d++)
                        md = fmax(md, fabs(o1[(size_t)g * qs + d] - o2[(size_t)g * qs + d]));
                if (md > (f16 ? 2e-3 : 1e-5))
                    test_fail_at(__FILE__, __LINE__, "%s: hd %d, n %d, %d queries, %s: max diff %g",
                                 k->name, hd, n, nq, f16 ? "f16" : "f32", md);
                /* the gaps between output rows are not written */
                for (int g = 0; g < nq; g++)
                    for (size_t d = (size_t)hd; d < qs; d++)
                        EXPECT(o2[(size_t)g * qs + d] == 0);
            }
            free(q), free(kf), free(vf), free(kh), free(vh), free(work), free(o1), free(o2);
        }
}
