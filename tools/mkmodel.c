/*
** mkmodel: write a GGUF decoder model with random weights, for tests and
** benchmarks. Any llama or qwen2 shape (named presets for the real models we
** benchmark) or a BERT / jina-bert-v2 encoder, any of F32/F16/Q8_0/Q4_0/Q4_K/Q6_K or a Q4_K_M-like mix, with the
** tokenizer metadata copied from another GGUF. Weights are normal(0, 0.02)
** from a seeded generator (each row has its own stream, so the file is the
** same whatever the thread count); norm weights are 1.
**
**   mkmodel --shape llama32-1b --type q4_k_m --tokenizer tiny-llama.gguf -o m.gguf
*/
#include "gguf/gguf.h"
#include "engine/quant.h"

#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct shape {
    const char *name, *arch;
    int n_embd, n_layer, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base;
    bool tied, bias, rope_freqs;
} shape;

static const shape presets[] = {
    {"llama32-1b", "llama", 2048, 16, 8192, 32, 8, 128256, 131072, 500000, true, false, true},
    {"llama32-3b", "llama", 3072, 28, 8192, 24, 8, 128256, 131072, 500000, true, false, true},
    {"llama31-8b", "llama", 4096, 32, 14336, 32, 8, 128256, 131072, 500000, false, false, true},
    {"qwen25-05b", "qwen2", 896, 24, 4864, 14, 2, 151936, 32768, 1000000, true, true, false},
    {"qwen25-15b", "qwen2", 1536, 28, 8960, 12, 2, 151936, 32768, 1000000, true, true, false},
    {"tinyllama", "llama", 2048, 22, 5632, 32, 4, 32000, 2048, 10000, false, false, false},
    {"tiny", "llama", 128, 2, 384, 4, 2, 0, 8192, 500000, true, false, true},
    {"minilm", "bert", 384, 6, 1536, 12, 12, 30522, 512, 0, false, true, false},
    {"bge-small", "bert", 384, 12, 1536, 12, 12, 30522, 512, 0, false, true, false},
    {"bge-base", "bert", 768, 12, 3072, 12, 12, 30522, 512, 0, false, true, false},
    /* jina-reranker-v1-tiny-en's shape (its vocabulary comes with --tokenizer) */
    {"jina-tiny", "jina-bert-v2", 384, 4, 1536, 12, 12, 0, 8192, 0, false, true, false},
};

typedef struct opts {
    shape s;
    const char *type, *tokenizer, *out;
    uint64_t seed;
    int threads;
    bool vocab_only; /* the tokenizer alone, no tensors: tokenizer tests need nothing more */
    bool rerank;     /* BERT: a classification head (cls.*) and rank pooling */
    const char *pair_format; /* BERT reranker: cairn.rerank.pair_format, or NULL */
    bool qk_norm;    /* jina-bert-v2: attn_q_norm, attn_k_norm and attn_norm_2 */
    const char *pre; /* tokenizer.ggml.pre to write instead of the copied one, or NULL */
} opts;

/* ---- random numbers ---------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

typedef struct rng {
    uint64_t s;
} rng;

static double uniform(rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    return ((mix(r->s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static void fill_normal(rng *r, float *x, int64_t n, float sd)
{
    for (int64_t i = 0; i < n; i += 2) {
        double u = uniform(r), v = uniform(r);
        double m = sqrt(-2 * log(u));
        x[i] = (float)(sd * m * cos(2 * M_PI * v));
        if (i + 1 < n)
            x[i + 1] = (float)(sd * m * sin(2 * M_PI * v));
    }
}

/* ---- tensor plan -------------------------------------------------------- */

typedef struct tensor_plan {
    char name[64];
    uint32_t type;
    int64_t ne[2];
    int n_dims;
    enum { FILL_RANDOM, FILL_ONES, FILL_ZERO, FILL_ROPE } fill;
} tensor_plan;

static uint32_t parse_type(const char *t)
{
    static const struct {
        const char *name;
        uint32_t type;
    } types[] = {{"f32", GGML_F32}, {"f16", GGML_F16}, {"bf16", GGML_BF16}, {"q8_0", GGML_Q8_0},
                 {"q4_0", GGML_Q4_0}, {"q4_1", GGML_Q4_1}, {"q5_0", GGML_Q5_0},
                 {"q5_1", GGML_Q5_1}, {"q4_k", GGML_Q4_K}, {"q5_k", GGML_Q5_K},
                 {"q6_k", GGML_Q6_K}, {"q4_k_m", GGML_Q4_K}};
    for (size_t i = 0; i < CN_ARRAY_LEN(types); i++)
        if (!strcmp(types[i].name, t))
            return types[i].type;
    return UINT32_MAX;
}

/* llama.cpp's Q4_K_M gives some layers' attn_v and ffn_down more bits */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* A row length that does not fit the type's blocks falls back to a type
** that does (llama.cpp does the same for odd shapes). */
static uint32_t fit(uint32_t type, int64_t ne0)
{
    if (ne0 % gguf_ttype_block(type) == 0)
        return type;
    if (ne0 % 32 == 0 && (type == GGML_Q4_K || type == GGML_Q5_K || type == GGML_Q6_K))
        return type == GGML_Q4_K ? GGML_Q5_0 : type == GGML_Q5_K ? GGML_Q5_1 : GGML_Q8_0;
    return GGML_F16;
}

/* BERT encoder (all-MiniLM / bge): post-LayerNorm blocks with biases; the
** position and token-type tables stay F32 as converted files have them. */
static int plan_bert(const opts *o, tensor_plan *p)
{
    const shape *s = &o->s;
    uint32_t base = parse_type(o->type);
    int n = 0, D = s->n_embd;
#define B(ty, a, b, f, ...)                                                                        \
    do {                                                                                           \
        tensor_plan *t_ = &p[n++];                                                                 \
        snprintf(t_->name, sizeof t_->name, __VA_ARGS__);                                          \
        t_->ne[0] = (a);                                                                           \
        t_->ne[1] = (b);                                                                           \
        t_->n_dims = (b) > 1 ? 2 : 1;                                                              \
        t_->type = t_->n_dims == 1 ? GGML_F32 : fit(ty, a);                                        \
        t_->fill = (f);                                                                            \
    } while (0)
    bool jina = !strcmp(s->arch, "jina-bert-v2");
    B(base, D, s->n_vocab, FILL_RANDOM, "token_embd.weight");
    B(GGML_F32, D, 2, FILL_RANDOM, "token_types.weight");
    if (!jina) /* jina-bert-v2 has ALiBi instead */
        B(GGML_F32, D, s->n_ctx, FILL_RANDOM, "position_embd.weight");
    B(GGML_F32, D, 1, FILL_ONES, "token_embd_norm.weight");
    B(GGML_F32, D, 1, FILL_ZERO, "token_embd_norm.bias");
    for (int i = 0; i < s->n_layer; i++) {
        static const char *const mats[] = {"attn_q", "attn_k", "attn_v", "attn_output"};
        for (int k = 0; k < 4; k++) {
            B(base, D, D, FILL_RANDOM, "blk.%d.%s.weight", i, mats[k]);
            B(GGML_F32, D, 1, FILL_RANDOM, "blk.%d.%s.bias", i, mats[k]);
            if (jina && o->qk_norm && k < 2) {
                B(GGML_F32, D, 1, FILL_ONES, "blk.%d.%s_norm.weight", i, mats[k]);
                B(GGML_F32, D, 1, FILL_RANDOM, "blk.%d.%s_norm.bias", i, mats[k]);
            }
        }
        B(GGML_F32, D, 1, FILL_ONES, "blk.%d.attn_output_norm.weight", i);
        B(GGML_F32, D, 1, FILL_ZERO, "blk.%d.attn_output_norm.bias", i);
        if (jina && o->qk_norm) {
            B(GGML_F32, D, 1, FILL_ONES, "blk.%d.attn_norm_2.weight", i);
            B(GGML_F32, D, 1, FILL_RANDOM, "blk.%d.attn_norm_2.bias", i);
        }
        B(base, D, s->n_ff, FILL_RANDOM, "blk.%d.ffn_up.weight", i);
        if (jina) /* the gated feed-forward: no bias on up or gate */
            B(base, D, s->n_ff, FILL_RANDOM, "blk.%d.ffn_gate.weight", i);
        else
            B(GGML_F32, s->n_ff, 1, FILL_RANDOM, "blk.%d.ffn_up.bias", i);
        B(base, s->n_ff, D, FILL_RANDOM, "blk.%d.ffn_down.weight", i);
        B(GGML_F32, D, 1, FILL_RANDOM, "blk.%d.ffn_down.bias", i);
        B(GGML_F32, D, 1, FILL_ONES, "blk.%d.layer_output_norm.weight", i);
        B(GGML_F32, D, 1, FILL_ZERO, "blk.%d.layer_output_norm.bias", i);
    }
    if (o->rerank && jina) {
        /* jina-reranker-v1: one logit, cls.weight [D, 1] as converted from
        ** the classifier's [1, D] (two dimensions), and no cls.output */
        B(GGML_F32, D, 1, FILL_RANDOM, "cls.weight");
        p[n - 1].n_dims = 2;
        B(GGML_F32, 1, 1, FILL_RANDOM, "cls.bias");
    } else if (o->rerank) { /* llama.cpp's classification head for rank pooling */
        B(base, D, D, FILL_RANDOM, "cls.weight");
        B(GGML_F32, D, 1, FILL_RANDOM, "cls.bias");
        B(GGML_F32, D, 1, FILL_RANDOM, "cls.output.weight");
        B(GGML_F32, 1, 1, FILL_RANDOM, "cls.output.bias");
    }
#undef B
    return n;
}

static int plan(const opts *o, tensor_plan *p)
{
    const shape *s = &o->s;
    uint32_t base = parse_type(o->type);
    bool mixk = !strcmp(o->type, "q4_k_m");
    int n = 0, hd = s->n_embd / s->n_head;
#define ADD(nm, ty, a, b, f)                                                                       \
    do {                                                                                           \
        tensor_plan *t_ = &p[n++];                                                                 \
        snprintf(t_->name, sizeof t_->name, "%s", nm);                                             \
        t_->ne[0] = (a);                                                                           \
        t_->ne[1] = (b);                                                                           \
        t_->n_dims = (b) > 1 ? 2 : 1;                                                              \
        t_->type = t_->n_dims == 1 ? GGML_F32 : fit(ty, a);                                        \
        t_->fill = (f);                                                                            \
    } while (0)
    if (!strcmp(s->arch, "bert") || !strcmp(s->arch, "jina-bert-v2"))
        return plan_bert(o, p);
    /* llama.cpp's Q4_K_M gives the output matrix Q6_K, and with a tied
    ** output that matrix is the embedding table */
    ADD("token_embd.weight", mixk && s->tied ? GGML_Q6_K : base, s->n_embd, s->n_vocab,
        FILL_RANDOM);
    ADD("output_norm.weight", GGML_F32, s->n_embd, 1, FILL_ONES);
    if (!s->tied)
        ADD("output.weight", mixk ? GGML_Q6_K : base, s->n_embd, s->n_vocab, FILL_RANDOM);
    if (s->rope_freqs)
        ADD("rope_freqs.weight", GGML_F32, hd / 2, 1, FILL_ROPE);
    for (int i = 0; i < s->n_layer; i++) {
        char nm[64];
        uint32_t more = mixk && more_bits(i, s->n_layer) ? GGML_Q6_K : base;
#define L(part, ty, a, b, f)                                                                       \
    do {                                                                                           \
        snprintf(nm, sizeof nm, "blk.%d.%s", i, part);                                             \
        ADD(nm, ty, a, b, f);                                                                      \
    } while (0)
        L("attn_norm.weight", GGML_F32, s->n_embd, 1, FILL_ONES);
        L("attn_q.weight", base, s->n_embd, s->n_head * hd, FILL_RANDOM);
        L("attn_k.weight", base, s->n_embd, s->n_head_kv * hd, FILL_RANDOM);
        L("attn_v.weight", more, s->n_embd, s->n_head_kv * hd, FILL_RANDOM);
        if (s->bias) {
            L("attn_q.bias", GGML_F32, s->n_head * hd, 1, FILL_RANDOM);
            L("attn_k.bias", GGML_F32, s->n_head_kv * hd, 1, FILL_RANDOM);
            L("attn_v.bias", GGML_F32, s->n_head_kv * hd, 1, FILL_RANDOM);
        }
        L("attn_output.weight", base, s->n_head * hd, s->n_embd, FILL_RANDOM);
        L("ffn_norm.weight", GGML_F32, s->n_embd, 1, FILL_ONES);
        L("ffn_gate.weight", base, s->n_embd, s->n_ff, FILL_RANDOM);
        L("ffn_up.weight", base, s->n_embd, s->n_ff, FILL_RANDOM);
        L("ffn_down.weight", more, s->n_ff, s->n_embd, FILL_RANDOM);
#undef L
    }
#undef ADD
    return n;
}

/* Llama 3.1+ long-context rope factors (factor 32, low 1, high 4, original 8192). */
static void rope_factors(const shape *s, float *f, int n)
{
    int n_rot = s->n_embd / s->n_head;
    for (int i = 0; i < n; i++) {
        double freq = pow(s->rope_base, -2.0 * i / n_rot), wavelen = 2 * M_PI / freq;
        double lo = 8192 / 1.0, hi = 8192 / 4.0;
        if (wavelen < hi)
            f[i] = 1;
        else if (wavelen > lo)
            f[i] = 32;
        else {
            double smooth = (8192 / wavelen - 1) / (4 - 1);
            f[i] = (float)(1 / ((1 - smooth) / 32 + smooth));
        }
    }
}

typedef struct fill_job {
    const tensor_plan *t;
    int index;
    uint64_t seed;
    int64_t row0, n_rows;
    char *out;
    float *scratch; /* (threads, ne0) */
} fill_job;

static void fill_rows(void *ctx, int ith, int nth)
{
    fill_job *j = ctx;
    const tensor_plan *t = j->t;
    float *x = j->scratch + (size_t)ith * t->ne[0];
    size_t row_bytes = gguf_row_size(t->type, t->ne[0]);
    const quant_traits *q = quant_get(t->type);
    for (int64_t r = ith; r < j->n_rows; r += nth) {
        rng g = {mix(j->seed ^ mix((uint64_t)j->index << 32 ^ (uint64_t)(j->row0 + r)))};
        fill_normal(&g, x, t->ne[0], 0.02f);
        q->from_float(x, j->out + (size_t)r * row_bytes, t->ne[0]);
    }
}

static int write_model(const opts *o, cn_err *err)
{
    const shape *s = &o->s;
    gguf_file *tokf = NULL;
    int rc = gguf_open(&tokf, o->tokenizer, err);
    if (rc)
        return rc;
    gguf_writer *w;
    gguf_writer_new(&w, err);
    char key[128];
    const char *a = s->arch;
    bool jina = !strcmp(a, "jina-bert-v2"), bert = jina || !strcmp(a, "bert");
    gguf_w_str(w, "general.architecture", a);
    gguf_w_str(w, "general.name", s->name);
#define KU(suffix, v)                                                                              \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s.%s", a, suffix);                                             \
        gguf_w_u32(w, key, (uint32_t)(v));                                                         \
    } while (0)
    KU("context_length", s->n_ctx);
    KU("embedding_length", s->n_embd);
    KU("block_count", s->n_layer);
    KU("feed_forward_length", s->n_ff);
    KU("attention.head_count", s->n_head);
    KU("attention.head_count_kv", s->n_head_kv);
    if (bert) {
        /* llama.cpp b4747's converter writes no pooling type for a
        ** jina-bert-v2 reranker (it is run with --pooling rank) */
        if (!(jina && o->rerank))
            KU("pooling_type", o->rerank ? 4 : 1);
        if (o->rerank && o->pair_format)
            gguf_w_str(w, "cairn.rerank.pair_format", o->pair_format);
        snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", a);
        gguf_w_f32(w, key, 1e-12f);
        snprintf(key, sizeof key, "%s.attention.causal", a);
        gguf_w_bool(w, key, false);
    } else {
        KU("rope.dimension_count", s->n_embd / s->n_head);
        KU("vocab_size", s->n_vocab);
        snprintf(key, sizeof key, "%s.rope.freq_base", a);
        gguf_w_f32(w, key, s->rope_base);
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
        gguf_w_f32(w, key, s->bias ? 1e-6f : 1e-5f);
    }
#undef KU
    gguf_w_u32(w, "general.quantization_version", 2);
    bool has_sep = false;
    for (int64_t i = 0; i < tokf->n_kv; i++) {
        const char *k = tokf->kv[i].key;
        if (strncmp(k, "tokenizer.", 10))
            continue;
        if (jina && (!strcmp(k, "tokenizer.ggml.token_type_count") ||
                     !strcmp(k, "tokenizer.ggml.add_bos_token") ||
                     !strcmp(k, "tokenizer.ggml.add_eos_token")))
            continue; /* written below */
        if (o->pre && !strcmp(k, "tokenizer.ggml.pre"))
            continue;
        has_sep |= !strcmp(k, "tokenizer.ggml.seperator_token_id");
        gguf_w_copy(w, &tokf->kv[i]);
    }
    if (o->pre)
        gguf_w_str(w, "tokenizer.ggml.pre", o->pre);
    if (jina) {
        /* what the converter writes for a RoBERTa-tokenizer jina-bert-v2
        ** (jina-reranker-v1): two token types, BOS and EOS added, and the
        ** separator is the EOS (</s>) */
        gguf_w_u32(w, "tokenizer.ggml.token_type_count", 2);
        gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
        gguf_w_bool(w, "tokenizer.ggml.add_eos_token", true);
        uint32_t eos;
        if (!has_sep && !gguf_get_u32(tokf, "tokenizer.ggml.eos_token_id", &eos, err))
            gguf_w_u32(w, "tokenizer.ggml.seperator_token_id", eos);
    }

    int max_t = 16 + 24 * s->n_layer; // the most any layer plans (jina-bert-v2 with --qk-norm: 22)
    tensor_plan *p = cn_calloc((size_t)max_t, sizeof *p);
    int n = o->vocab_only ? 0 : plan(o, p);
    uint64_t total = 0;
    int64_t max_ne0 = 0;
    size_t max_row = 0;
    for (int i = 0; i < n; i++) {
        gguf_w_tensor(w, p[i].name, p[i].type, p[i].n_dims, p[i].ne);
        total += gguf_row_size(p[i].type, p[i].ne[0]) * (uint64_t)p[i].ne[1];
        max_ne0 = CN_MAX(max_ne0, p[i].ne[0]);
        max_row = CN_MAX(max_row, gguf_row_size(p[i].type, p[i].ne[0]));
    }
    if ((rc = gguf_writer_begin(w, o->out, err)))
        goto done;
    cn_pool *pool;
    if ((rc = cn_pool_new(&pool, o->threads, err)))
        goto done;
    const int64_t chunk_rows = 1024;
    float *scratch = cn_malloc(sizeof(float) * (size_t)o->threads * (size_t)max_ne0);
    char *buf = cn_malloc(CN_MAX((size_t)chunk_rows * max_row, (size_t)max_ne0 * 4));
    uint64_t done_bytes = 0;
    for (int i = 0; i < n && !rc; i++) {
        tensor_plan *t = &p[i];
        size_t row_bytes = gguf_row_size(t->type, t->ne[0]);
        if (t->fill != FILL_RANDOM && t->n_dims == 1) {
            float *v = (float *)buf;
            for (int64_t k = 0; k < t->ne[0]; k++)
                v[k] = t->fill == FILL_ZERO ? 0.0f : 1.0f;
            if (t->fill == FILL_ROPE)
                rope_factors(s, v, (int)t->ne[0]);
            rc = gguf_writer_data(w, v, (size_t)t->ne[0] * 4, err);
            continue;
        }
        for (int64_t r0 = 0; r0 < t->ne[1] && !rc; r0 += chunk_rows) {
            fill_job j = {t, i, o->seed, r0, CN_MIN(chunk_rows, t->ne[1] - r0), buf, scratch};
            cn_pool_run(pool, fill_rows, &j);
            rc = gguf_writer_data(w, buf, (size_t)j.n_rows * row_bytes, err);
            done_bytes += (size_t)j.n_rows * row_bytes;
        }
        if (isatty(2))
            fprintf(stderr, "\rmkmodel: %3.0f%% %-40s", 100.0 * done_bytes / total, t->name);
    }
    if (isatty(2))
        fprintf(stderr, "\n");
    free(scratch);
    free(buf);
    cn_pool_free(pool);
    if (!rc)
        rc = gguf_writer_finish(w, err);
    if (!rc)
        fprintf(stderr, "mkmodel: wrote %s: %s, %d tensors, %.1f MB of weights\n", o->out, s->name,
                n, total / 1e6);
done:
    free(p);
    gguf_writer_free(w);
    gguf_close(tokf);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mkmodel [--shape NAME] [shape options] --type TYPE --tokenizer FILE -o OUT\n\n"
            "  --shape NAME       preset: llama32-1b llama32-3b llama31-8b qwen25-05b qwen25-15b\n"
            "                     tinyllama tiny (default), BERT encoders minilm bge-small\n"
            "                     bge-base, and jina-tiny (jina-bert-v2, jina-reranker-v1's shape)\n"
            "  --arch llama|qwen2|bert|jina-bert-v2 --n-embd N --n-layer N --n-ff N --n-head N --n-head-kv N\n"
            "  --ctx N --rope-base F --tied|--untied --bias|--no-bias --rope-freqs|--no-rope-freqs\n"
            "  --type T           f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k q4_k_m\n"
            "  --tokenizer FILE   copy tokenizer.* metadata (and the vocabulary size) from FILE\n"
            "  --seed S           random seed (default 1)\n"
            "  --vocab-only       write the tokenizer metadata alone, no tensors (like\n"
            "                     llama.cpp's ggml-vocab-*.gguf files)\n"
            "  --rerank           BERT shapes: add a classification head (cls.*) and rank\n"
            "                     pooling, i.e. a cross-encoder (reranker); jina-bert-v2:\n"
            "                     jina-reranker-v1's one-logit head, no pooling key\n"
            "  --qk-norm          jina-bert-v2: LayerNorms on q and k, and attn_norm_2\n"
            "  --pre NAME         write tokenizer.ggml.pre = NAME (e.g. jina-v1-en)\n"
            "  --pair-format F    with --rerank: write cairn.rerank.pair_format = F\n"
            "  -t N               threads (default 2)\n");
}

int main(int argc, char **argv)
{
    opts o = {.type = "f32", .seed = 1, .threads = 2};
    for (size_t k = 0; k < CN_ARRAY_LEN(presets); k++)
        if (!strcmp(presets[k].name, "tiny")) /* the default, as the usage says */
            o.s = presets[k];
    enum { SHAPE = 256, ARCH, EMBD, LAYER, FF, HEAD, HEAD_KV, CTX, ROPE_BASE, TYPE, TOKENIZER,
           SEED, VOCAB_ONLY, RERANK, PAIR_FORMAT, QK_NORM, PRE, TIED, UNTIED, BIAS, NO_BIAS, ROPE_FREQS, NO_ROPE_FREQS };
    static const struct option longs[] = {
        {"shape", required_argument, NULL, SHAPE}, {"arch", required_argument, NULL, ARCH},
        {"n-embd", required_argument, NULL, EMBD}, {"n-layer", required_argument, NULL, LAYER},
        {"n-ff", required_argument, NULL, FF}, {"n-head", required_argument, NULL, HEAD},
        {"n-head-kv", required_argument, NULL, HEAD_KV}, {"ctx", required_argument, NULL, CTX},
        {"rope-base", required_argument, NULL, ROPE_BASE}, {"type", required_argument, NULL, TYPE},
        {"tokenizer", required_argument, NULL, TOKENIZER}, {"seed", required_argument, NULL, SEED},
        {"vocab-only", no_argument, NULL, VOCAB_ONLY}, {"tied", no_argument, NULL, TIED}, {"untied", no_argument, NULL, UNTIED},
        {"bias", no_argument, NULL, BIAS}, {"no-bias", no_argument, NULL, NO_BIAS},
        {"rope-freqs", no_argument, NULL, ROPE_FREQS},
        {"no-rope-freqs", no_argument, NULL, NO_ROPE_FREQS},
        {"rerank", no_argument, NULL, RERANK}, {"pair-format", required_argument, NULL, PAIR_FORMAT},
        {"qk-norm", no_argument, NULL, QK_NORM}, {"pre", required_argument, NULL, PRE},
        {0}};
    int c;
    while ((c = getopt_long(argc, argv, "t:o:", longs, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case SHAPE: {
            size_t k = 0;
            while (k < CN_ARRAY_LEN(presets) && strcmp(presets[k].name, v))
                k++;
            if (k == CN_ARRAY_LEN(presets)) {
                fprintf(stderr, "mkmodel: unknown shape '%s'\n", v);
                return 2;
            }
            o.s = presets[k];
            break;
        }
        case ARCH:
            o.s.arch = !strcmp(v, "qwen2")          ? "qwen2"
                       : !strcmp(v, "bert")         ? "bert"
                       : !strcmp(v, "jina-bert-v2") ? "jina-bert-v2"
                                                    : "llama";
            break;
        case EMBD: o.s.n_embd = atoi(v); break;
        case LAYER: o.s.n_layer = atoi(v); break;
        case FF: o.s.n_ff = atoi(v); break;
        case HEAD: o.s.n_head = atoi(v); break;
        case HEAD_KV: o.s.n_head_kv = atoi(v); break;
        case CTX: o.s.n_ctx = atoi(v); break;
        case ROPE_BASE: o.s.rope_base = (float)atof(v); break;
        case TYPE: o.type = v; break;
        case TOKENIZER: o.tokenizer = v; break;
        case SEED: o.seed = strtoull(v, NULL, 10); break;
        case 't': o.threads = atoi(v); break;
        case 'o': o.out = v; break;
        case VOCAB_ONLY: o.vocab_only = true; break;
        case RERANK: o.rerank = true; break;
        case PAIR_FORMAT: o.pair_format = v; break;
        case QK_NORM: o.qk_norm = true; break;
        case PRE: o.pre = v; break;
        case TIED: case UNTIED: o.s.tied = c == TIED; break;
        case BIAS: case NO_BIAS: o.s.bias = c == BIAS; break;
        case ROPE_FREQS: case NO_ROPE_FREQS: o.s.rope_freqs = c == ROPE_FREQS; break;
        default: usage(); return 2;
        }
    }
    if (optind < argc) {
        usage();
        return 2;
    }
    if (!o.out || !o.tokenizer || parse_type(o.type) == UINT32_MAX ||
        (o.rerank && strcmp(o.s.arch, "bert") && strcmp(o.s.arch, "jina-bert-v2")) ||
        (o.qk_norm && strcmp(o.s.arch, "jina-bert-v2"))) {
        usage();
        return 2;
    }
    shape *s = &o.s;
    cn_err err = {0};
    gguf_file *tf;
    if (gguf_open(&tf, o.tokenizer, &err)) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        return 1;
    }
    const gguf_value *toks;
    if (gguf_get_arr(tf, "tokenizer.ggml.tokens", GGUF_T_STRING, &toks, &err)) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        gguf_close(tf);
        return 1;
    }
    if (s->n_vocab < (int)toks->arr.n)
        s->n_vocab = (int)toks->arr.n; /* real files pad the table past the tokenizer */
    gguf_close(tf);
    if (s->n_embd <= 0 || s->n_layer <= 0 || s->n_ff <= 0 || s->n_head <= 0 ||
        s->n_head_kv <= 0 || s->n_embd % s->n_head || s->n_head % s->n_head_kv ||
        s->n_embd > 65536 || s->n_ff > 262144 || s->n_layer > 512 || o.threads < 1 ||
        o.threads > 64) {
        fprintf(stderr, "mkmodel: inconsistent shape\n");
        return 2;
    }
    if (write_model(&o, &err)) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        return 1;
    }
    return 0;
}
