/*
** kern.c: the kernel table and the reference (scalar) kernels the forward
** pass is written in. The per-type dot products and conversions come from
** quant.c; faster twins (kern_avx2.c) replace table entries in kern_init().
*/
#include "engine/engine_int.h"
#include "engine/quant.h"

#include <cpuid.h>
#include <math.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static kern_table table, scalar, avx2, avx512;
static bool have_avx2, have_avx512;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void f32_to_f32(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }

size_t kern_attn_work(int hd, int n_kv)
{
    size_t padded = ((size_t)n_kv + 7) / 8 * 8;
    return padded * ((size_t)hd + 4); /* transposed keys, four rows of scores */
}

size_t kern_attn_cached_work(int n_q, int n, int hd)
{
    /* scores and the rounded query of each, then a block of 32 widened rows */
    return (size_t)n_q * ((size_t)n + (size_t)hd) + 32 * (size_t)hd;
}

void kern_alibi(float *sc, int n_kv, int i, float slope)
{
    /* as ggml adds it: slope times the mask entry -|i - j|, in float */
    for (int j = 0; j < n_kv; j++)
        sc[j] += slope * (float)-abs(i - j);
}

/* Reference attention: scores, softmax, weighted sum, one query at a time. */
static void attn_ref(const float *q, size_t qs, int n_q, const float *k, const float *v,
                     size_t kvs, int n_kv, int hd, float scale, float alibi, float *out, size_t os,
                     float *work)
{
    float *sc = work;
    for (int i = 0; i < n_q; i++) {
        const float *qi = q + (size_t)i * qs;
        for (int j = 0; j < n_kv; j++) {
            const float *kj = k + (size_t)j * kvs;
            float dot = 0;
            for (int d = 0; d < hd; d++)
                dot += qi[d] * kj[d];
            sc[j] = dot * scale;
        }
        if (alibi != 0)
            kern_alibi(sc, n_kv, i, alibi);
        kern_softmax(sc, n_kv);
        float *o = out + (size_t)i * os;
        for (int d = 0; d < hd; d++)
            o[d] = 0;
        for (int j = 0; j < n_kv; j++) {
            const float *vj = v + (size_t)j * kvs;
            for (int d = 0; d < hd; d++)
                o[d] += sc[j] * vj[d];
        }
    }
}

/* Reference causal attention of one query over n cached positions. With an
** F16 cache the query and the probabilities are rounded to F16 before their
** dot products, exactly where llama.cpp rounds them; sums in float, in
** order, as ggml's scalar path. */
static void attn_cached_one(const float *q, const void *kc, const void *vc, size_t kvs, int n,
                            int hd, bool f16, float scale, float *out, float *work)
{
    float *sc = work, *qr = work + n;
    for (int d = 0; d < hd; d++)
        qr[d] = f16 ? cn_fp16_to_fp32(cn_fp32_to_fp16(q[d])) : q[d];
    for (int p = 0; p < n; p++) {
        float s = 0;
        if (f16) {
            const uint16_t *k = (const uint16_t *)kc + (size_t)p * kvs;
            for (int d = 0; d < hd; d++)
                s += cn_fp16_to_fp32(k[d]) * qr[d];
        } else {
            const float *k = (const float *)kc + (size_t)p * kvs;
            for (int d = 0; d < hd; d++)
                s += k[d] * qr[d];
        }
        sc[p] = s * scale;
    }
    kern_softmax(sc, n);
    if (f16)
        for (int p = 0; p < n; p++)
            sc[p] = cn_fp16_to_fp32(cn_fp32_to_fp16(sc[p]));
    for (int d = 0; d < hd; d++)
        out[d] = 0;
    for (int p = 0; p < n; p++) {
        if (f16) {
            const uint16_t *v = (const uint16_t *)vc + (size_t)p * kvs;
            for (int d = 0; d < hd; d++)
                out[d] += sc[p] * cn_fp16_to_fp32(v[d]);
        } else {
            const float *v = (const float *)vc + (size_t)p * kvs;
            for (int d = 0; d < hd; d++)
                out[d] += sc[p] * v[d];
        }
    }
}

static void attn_cached_ref(const float *q, size_t qs, int n_q, int per, const void *kc,
                            const void *vc, size_t kvs, int n, int hd, bool f16, float scale,
                            float *out, size_t os, float *work)
{
    for (int g = 0; g < n_q; g++)
        attn_cached_one(q + (size_t)g * qs, kc, vc, kvs, kern_attn_len(n, n_q, per, g), hd, f16,
                        scale, out + (size_t)g * os, work);
}

static void init_scalar(kern_table *k)
{
    k->name = "scalar";
    k->attn = attn_ref;
    k->attn_cached = attn_cached_ref;
    k->gelu = kern_gelu_ref;
    k->silu_mul = kern_silu_mul;
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        const quant_traits *q = quant_get(t);
        if (!q)
            continue;
        k->dot[t] = q->vec_dot;
        k->to_float[t] = q->to_float;
        k->act_type[t] = q->vec_dot_type;
        const quant_traits *a = quant_get(q->vec_dot_type);
        k->act_from_float[t] = q->vec_dot_type == GGML_F32 || !a ? NULL : a->from_float;
    }
    k->to_float[GGML_F32] = f32_to_f32;
}

/* CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports has no "f16c"). */
static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

static const kern_table *variant(const char *name)
{
    if (!strcmp(name, "scalar"))
        return &scalar;
    if (!strcmp(name, "avx2"))
        return have_avx2 ? &avx2 : NULL;
    if (!strcmp(name, "avx512"))
        return have_avx512 ? &avx512 : NULL;
    return NULL;
}

static void init_once(void)
{
    init_scalar(&scalar);
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    /* the prompt products use 512-bit integer work and vpdpwssd */
    have_avx512 = have_avx2 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vnni");
    if (have_avx2) {
        avx2 = scalar;
        kern_avx2_install(&avx2);
    }
    if (have_avx512) {
        avx512 = avx2;
        kern_avx512_install(&avx512);
        kern_avx512_attn_install(&avx512);
        kern_avx512_panel_install(&avx512);
    }
    /* the best this CPU has, or the level CAIRN_KERNELS names (benchmarks
    ** and tests compare them; a level the CPU lacks is not taken) */
    const char *force = getenv("CAIRN_KERNELS");
    const kern_table *t = variant(force && *force ? force : "avx512");
    table = t ? *t : have_avx512 ? avx512 : have_avx2 ? avx2 : scalar;
}

const kern_table *kern_variant(const char *name)
{
    kern_init();
    return variant(name);
}

void kern_init(void) { pthread_once(&once, init_once); }

const kern_table *kern_get(void)
{
    kern_init();
    return &table;
}

const char *eng_kernels(void) { return kern_get()->name; }

const kern_table *kern_scalar(void)
{
    kern_init();
    return &scalar;
}

bool kern_supports(uint32_t type)
{
    const kern_table *k = kern_get();
    if (type >= GGML_TYPE_COUNT || !k->dot[type] || !k->to_float[type])
        return false;
    return k->act_type[type] == GGML_F32 || k->act_from_float[type] != NULL;
}

size_t kern_row_size(uint32_t type, int64_t n)
{
    static const uint32_t file_type[] = {[KERN_Q8_0_R16 - GGML_TYPE_COUNT] = GGML_Q8_0,
                                         [KERN_Q4_K_R16 - GGML_TYPE_COUNT] = GGML_Q4_K};
    return gguf_row_size(type >= GGML_TYPE_COUNT ? file_type[type - GGML_TYPE_COUNT] : type, n);
}

uint32_t kern_repack_type(uint32_t type, int64_t n, int64_t nr)
{
    const kern_table *k = kern_get();
    if (type >= GGML_TYPE_COUNT || !k->repack[type])
        return 0;
    const char *env = getenv("CAIRN_REPACK"); /* 0: the file's layout, for comparisons */
    if (env && !strcmp(env, "0"))
        return 0;
    /* whole panels of 16 rows, and blocks in pairs */
    if (nr % 16 || (type == GGML_Q8_0 && n % (2 * QK8_0)))
        return 0;
    return k->repack_type[type];
}

size_t kern_act_bytes(uint32_t wtype, int n_cols, int n_tok)
{
    uint32_t a = kern_get()->act_type[wtype];
    size_t bytes = gguf_row_size(a, n_cols) * (size_t)n_tok;
    if (a == GGML_Q8_0) /* the block sums of the panel products, after the rows */
        bytes = (bytes + 3) / 4 * 4 + (size_t)n_tok * (size_t)(n_cols / QK8_0) * sizeof(int32_t);
    return bytes;
}

void kern_act_sums(const void *a, size_t as, int n, int nt, int32_t *asum)
{
    for (int t = 0; t < nt; t++) {
        const block_q8_0 *y = (const block_q8_0 *)((const char *)a + (size_t)t * as);
        for (int b = 0; b < n / QK8_0; b++) {
            int32_t s = 0;
            for (int i = 0; i < QK8_0; i++)
                s += y[b].qs[i];
            asum[(size_t)t * (size_t)(n / QK8_0) + (size_t)b] = s;
        }
    }
}

/* One weight matrix of a product group. */
typedef struct matmul_one {
    float *out;
    const char *w;
    size_t w_row;
    int n_rows;
    int chunk_rows, n_chunks; /* the matrix's rows in chunks claimed one at a time */
    kern_dot_fn dot;
    kern_gemm_fn gemm;
    kern_pgemm_fn pgemm; /* set when the product takes the packed panels */
} matmul_one;

typedef struct matmul_job {
    matmul_one mat[KERN_MAX_GROUP];
    int n_mat;
    const void *act;        /* activations in the weights' partner format */
    size_t act_row;
    int n_tok, n_cols;
    kern_from_float_fn from_float;
    const float *x;
    void *scratch;
    int32_t *asum; /* block sums of Q8_0 activations for the panels, or NULL */
    _Atomic int next_chunk; /* over every chunk of every matrix */
} matmul_job;

static void convert_rows(void *ctx, int ith, int nth)
{
    matmul_job *j = ctx;
    for (int t = ith; t < j->n_tok; t += nth) {
        char *row = (char *)j->scratch + (size_t)t * j->act_row;
        j->from_float(j->x + (size_t)t * j->n_cols, row, j->n_cols);
        if (j->asum)
            kern_act_sums(row, j->act_row, j->n_cols, 1,
                          j->asum + (size_t)t * (size_t)(j->n_cols / QK8_0));
    }
}

/* Tokens per pass: their activations stay in L2 while the thread's weight
** rows go by in chunks small enough for L1, each chunk serving every token
** of the pass before the next is loaded. */
#define TILE_TOKENS 48
#define CHUNK_ROWS 16

static void matmul_range(const matmul_job *j, const matmul_one *m, int r0, int r1)
{
    if (m->pgemm) {
        m->pgemm(j->n_cols, m->w + (size_t)r0 * m->w_row, m->w_row, r1 - r0, j->act, j->act_row,
                 j->asum, j->n_tok, m->out + r0, (size_t)m->n_rows);
        return;
    }
    if (m->gemm) {
        for (int t0 = 0; t0 < j->n_tok; t0 += TILE_TOKENS) {
            int nt = CN_MIN(TILE_TOKENS, j->n_tok - t0);
            for (int r = r0; r < r1; r += CHUNK_ROWS)
                m->gemm(j->n_cols, m->w + (size_t)r * m->w_row, m->w_row,
                        CN_MIN(CHUNK_ROWS, r1 - r), (const char *)j->act + (size_t)t0 * j->act_row,
                        j->act_row, nt, m->out + (size_t)t0 * m->n_rows + r, (size_t)m->n_rows);
        }
        return;
    }
    for (int r = r0; r < r1; r++) {
        const void *row = m->w + (size_t)r * m->w_row;
        for (int t = 0; t < j->n_tok; t++)
            m->dot(j->n_cols, &m->out[(size_t)t * m->n_rows + r], row,
                   (const char *)j->act + (size_t)t * j->act_row);
    }
}

/* Threads claim chunks of rows (contiguous, a multiple of four: the height
** of the generation tiles) from a shared counter until none are left. Each
** chunk streams its weights once and serves every token; a thread that is
** late (descheduled by another program, or on a slower core) simply claims
** fewer chunks instead of holding everyone up at the end of the product. */
static void matmul_rows(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    matmul_job *j = ctx;
    for (;;) {
        int c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed), i = 0;
        while (i < j->n_mat && c >= j->mat[i].n_chunks)
            c -= j->mat[i++].n_chunks;
        if (i == j->n_mat)
            return;
        const matmul_one *m = &j->mat[i];
        int r0 = c * m->chunk_rows;
        matmul_range(j, m, r0, CN_MIN(m->n_rows, r0 + m->chunk_rows));
    }
}

/* Rows per chunk: about four chunks per thread for generation (large,
** sequential reads); for prompts at most 64 rows, whose weights stay in L2
** while every pass of tokens goes by (whole panels of 16 for the packed
** products). */
static int chunk_rows(int n_rows, int n_tok, int nth, bool panels)
{
    int rows = (n_rows + 4 * nth - 1) / (4 * nth);
    if (n_tok > 1)
        rows = CN_MIN(rows, 64);
    rows = CN_MAX(rows, 16);
    return panels ? (rows + 15) / 16 * 16 : (rows + 3) / 4 * 4;
}

void kern_matmul_group(cn_pool *pool, int n_mat, float *const *out, const gguf_tensor *const *w,
                       const float *x, int n_tok, void *scratch)
{
    const kern_table *k = kern_get();
    uint32_t act_type = k->act_type[w[0]->type];
    bool same = n_mat <= KERN_MAX_GROUP;
    for (int i = 1; i < n_mat; i++)
        same &= k->act_type[w[i]->type] == act_type && w[i]->ne[0] == w[0]->ne[0];
    if (!same) { /* one conversion cannot serve them all */
        for (int i = 0; i < n_mat; i++)
            kern_matmul_group(pool, 1, &out[i], &w[i], x, n_tok, scratch);
        return;
    }
    matmul_job j = {
        .n_mat = n_mat, .n_tok = n_tok, .n_cols = (int)w[0]->ne[0], .x = x, .scratch = scratch,
        .from_float = k->act_from_float[w[0]->type],
    };
    bool q8_sums = false;
    for (int i = 0; i < n_mat; i++) {
        uint32_t type = w[i]->type;
        kern_pgemm_fn pg = n_tok >= KERN_PANEL_TOKENS || type >= GGML_TYPE_COUNT ? k->pgemm[type]
                                                                                 : NULL;
        int n_rows = (int)w[i]->ne[1], rows = chunk_rows(n_rows, n_tok, cn_pool_size(pool), pg);
        j.mat[i] = (matmul_one){
            .out = out[i], .w = w[i]->data, .w_row = kern_row_size(type, w[i]->ne[0]),
            .n_rows = n_rows, .chunk_rows = rows, .n_chunks = (n_rows + rows - 1) / rows,
            .dot = k->dot[w[i]->type], .gemm = k->gemm[w[i]->type], .pgemm = pg,
        };
        q8_sums |= pg && act_type == GGML_Q8_0;
    }
    atomic_init(&j.next_chunk, 0);
    j.act_row = gguf_row_size(act_type, j.n_cols);
    if (q8_sums) /* after the rows, as kern_act_bytes counts them */
        j.asum = (int32_t *)((char *)scratch + ((size_t)n_tok * j.act_row + 3) / 4 * 4);
    if (!j.from_float) {
        j.act = x;
    } else {
        if (n_tok == 1) /* a microsecond of work: not worth waking the pool */
            convert_rows(&j, 0, 1);
        else
            cn_pool_run(pool, convert_rows, &j);
        j.act = scratch;
    }
    cn_pool_run(pool, matmul_rows, &j);
}

void kern_matmul(cn_pool *pool, float *out, const gguf_tensor *w, const float *x, int n_tok,
                 void *scratch)
{
    kern_matmul_group(pool, 1, &out, &w, x, n_tok, scratch);
}

/* Squares in float summed in double, as llama.cpp does: quantized
** activations amplify one-ulp differences into whole quantization steps,
** so matching the reference's rounding here matters. */
void kern_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void kern_softmax(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void kern_silu_mul(float *g, const float *u, int n)
{
    for (int i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ggml normalises with sums in double and the variance of the centred values. */
void kern_layernorm(float *out, const float *x, const float *w, const float *b, int n, float eps)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    float mean = (float)(sum / n);
    double sum2 = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i] - mean;
        out[i] = v;
        sum2 += (double)(v * v);
    }
    float scale = 1.0f / sqrtf((float)(sum2 / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = out[i] * scale * w[i] + b[i];
}

/* ggml evaluates GELU (tanh approximation) once per F16 value into a table and
** looks inputs up after rounding them to F16; the embeddings of llama.cpp are
** made that way, so ours are too. */
static uint16_t gelu_table[(1 << 16) + 2]; /* padded: SIMD gathers read 4 bytes */
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static float gelu_ref(float x)
{
    const float a = 0.044715f, s2pi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + tanhf(s2pi * x * (1.0f + a * x * x)));
}

static void gelu_init(void)
{
    for (uint32_t i = 0; i < (1u << 16); i++)
        gelu_table[i] = cn_fp32_to_fp16(gelu_ref(cn_fp16_to_fp32((uint16_t)i)));
}

const uint16_t *kern_gelu_table(void)
{
    pthread_once(&gelu_once, gelu_init);
    return gelu_table;
}

void kern_gelu_ref(float *x, int n)
{
    pthread_once(&gelu_once, gelu_init);
    for (int i = 0; i < n; i++) {
        if (x[i] <= -10.0f)
            x[i] = 0.0f;
        else if (x[i] < 10.0f)
            x[i] = cn_fp16_to_fp32(gelu_table[cn_fp32_to_fp16(x[i])]);
    }
}

void kern_gelu(float *x, int n) { kern_get()->gelu(x, n); }

float eng_dot(int n, const float *a, const float *b)
{
    float s;
    kern_get()->dot[GGML_F32](n, &s, a, b);
    return s;
}
