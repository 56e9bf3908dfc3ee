/*
** bert.c: BERT-family sentence encoders (all-MiniLM, bge-small/base, ...)
** and cross-encoders (rerankers: the same encoder with a classification head
** on the [CLS] state, llama.cpp's "rank" pooling).
**
** Two architectures share the code. "bert": learned position embeddings,
** GELU feed-forward with biases. "jina-bert-v2" (Jina's embedding models and
** jina-reranker-v1): no position table but ALiBi, a bias -slope_h * |i - j|
** on every attention score (bidirectional, so in both directions); a gated
** feed-forward gelu(gate x) * (up x) with a bias on down only; optional
** LayerNorms on q and k and a second one after attention; and, for the
** reranker, a one-logit head.
** Texts are packed back to back into one batch of at most n_batch tokens;
** every matrix product runs over the whole batch, and attention stays within
** each text (block-diagonal), so no padding is computed.
*/
#include "engine/engine_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bert_layer {
    const gguf_tensor *wq, *wk, *wv, *wo, *w_up, *w_down;
    const gguf_tensor *w_gate;                         /* jina-bert-v2 only */
    float *bq, *bk, *bv, *bo, *b_up, *b_down;          /* owned; b_up NULL in jina-bert-v2 */
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;              /* attn_output_norm, layer_output_norm */
    /* jina-bert-v2, each optional (NULL): LayerNorms of q and of k, and
    ** attn_norm_2, applied to (attention block output + layer input) */
    float *qn_w, *qn_b, *kn_w, *kn_b, *ln_a2_w, *ln_a2_b;
} bert_layer;

struct eng_encoder {
    gguf_file *g;
    const char *arch;     /* "bert" or "jina-bert-v2": the metadata keys' prefix */
    bool jina;
    float *alibi;         /* jina-bert-v2: each head's ALiBi slope; owned */
    int n_embd, n_layer, n_head, head_dim, n_ff, n_ctx, n_vocab, n_types, pooling;
    float eps;
    int n_batch, n_threads;
    cn_pool *pool;
    const gguf_tensor *tok_embd, *pos_embd, *type_embd;
    float *emb_ln_w, *emb_ln_b;
    bert_layer *layers;
    /* classification head (rank pooling only): a = tanh(cls_w h + cls_b) over
    ** n_cls rows; score = out_w . a + out_b, or, with no cls.output (n_cls
    ** 1, jina-reranker-v1), a itself, as llama.cpp b4747 computes it */
    float *cls_w, *cls_b, *cls_out_w, cls_out_b; /* owned; cls_out_w may be NULL */
    int n_cls;
    int pair_format;                             /* ENG_PAIR_* */

    /* batch buffers (n_batch tokens) */
    float *x, *xb, *q, *k, *v, *att, *ff, *ff2, *scores, *row; /* ff2: jina's gate */
    void *act;
    int *seq_start, *seq_len;  /* packed sequences of the current batch */
};

static void *alloc_f(size_t n, bool *fail)
{
    void *p = cn_calloc(n, sizeof(float));
    *fail |= p == NULL;
    return p;
}

/* Find tensor name with shape [ne0, ne1] (ne1 == 0: a vector of ne0). */
static int get(eng_encoder *e, const char *name, int64_t ne0, int64_t ne1, const gguf_tensor **out,
               cn_err *err)
{
    const gguf_tensor *t = gguf_find_tensor(e->g, name);
    *out = t;
    if (!t)
        return cn_fail(err, CN_EFORMAT, "%s: missing tensor '%s'", e->g->path, name);
    bool ok = ne1 ? t->n_dims <= 2 && t->ne[0] == ne0 && t->ne[1] == ne1
                  : t->n_elem == ne0;
    if (!ok)
        return cn_fail(err, CN_EFORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                       e->g->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)ne0,
                       (long long)(ne1 ? ne1 : 1));
    if (!kern_supports(t->type))
        return cn_fail(err, CN_EUNSUPPORTED, "%s: tensor '%s' has type %s, which Cairn cannot "
                       "compute with yet", e->g->path, name, gguf_ttype_name(t->type));
    return CN_OK;
}

static int get_vec(eng_encoder *e, const char *name, int64_t n, float **out, cn_err *err)
{
    const gguf_tensor *t;
    int rc = get(e, name, n, 0, &t, err);
    if (rc)
        return rc;
    if (gguf_ttype_block(t->type) != 1)
        return cn_fail(err, CN_EFORMAT, "%s: tensor '%s' should be F32 or F16", e->g->path, name);
    *out = cn_malloc((size_t)n * sizeof(float));
    if (!*out)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    kern_get()->to_float[t->type](t->data, *out, n);
    return CN_OK;
}

static int u32_key(eng_encoder *e, const char *key, int lo, int hi, int def, int *out, cn_err *err)
{
    uint32_t v;
    int rc = gguf_get_u32(e->g, key, &v, err);
    if (rc == CN_ENOTFOUND && def >= 0)
        v = (uint32_t)def;
    else if (rc)
        return rc;
    if ((int64_t)v < lo || (int64_t)v > hi)
        return cn_fail(err, CN_EFORMAT, "%s: metadata %s = %u is out of range [%d, %d]",
                       e->g->path, key, v, lo, hi);
    *out = (int)v;
    return CN_OK;
}

/* A whole tensor as floats (any type the kernels read), owned by the caller. */
static int get_floats(eng_encoder *e, const char *name, int64_t ne0, int64_t ne1, float **out,
                      cn_err *err)
{
    const gguf_tensor *t;
    int rc = get(e, name, ne0, ne1, &t, err);
    if (rc)
        return rc;
    int64_t rows = ne1 ? ne1 : 1, cols = ne1 ? ne0 : t->n_elem;
    *out = cn_malloc_array((size_t)(rows * cols), sizeof(float));
    if (!*out)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    size_t row = gguf_row_size(t->type, cols);
    for (int64_t r = 0; r < rows; r++)
        kern_get()->to_float[t->type]((const char *)t->data + (size_t)r * row,
                                      *out + (size_t)(r * cols), cols);
    return CN_OK;
}

/* The classification head of a reranker, and the pair format: the key
** cairn.rerank.pair_format when the file has it, else the format BERT
** cross-encoders are trained with. */
static int load_head(eng_encoder *e, cn_err *err)
{
    int D = e->n_embd, rc;
    float *ob = NULL;
    /* BERT cross-encoders (RoBERTa-style head): a dense layer, then
    ** cls.output; jina-reranker-v1: one logit straight from cls */
    const gguf_tensor *c = gguf_find_tensor(e->g, "cls.weight");
    bool has_out = gguf_find_tensor(e->g, "cls.output.weight") != NULL;
    e->n_cls = c && c->n_dims == 2 && c->ne[1] == 1 && !has_out ? 1 : D;
    if ((rc = get_floats(e, "cls.weight", D, e->n_cls, &e->cls_w, err)) ||
        (rc = get_floats(e, "cls.bias", e->n_cls, 0, &e->cls_b, err)))
        return rc;
    if (e->n_cls == D) {
        if ((rc = get_floats(e, "cls.output.weight", D, 0, &e->cls_out_w, err)) ||
            (rc = get_floats(e, "cls.output.bias", 1, 0, &ob, err)))
            return rc;
        e->cls_out_b = ob[0];
        free(ob);
    }
    gguf_str f;
    rc = gguf_get_str(e->g, "cairn.rerank.pair_format", &f, err);
    /* BERT's own pair format by default; jina-reranker-v1 reads pairs as
    ** RoBERTa does, <s> q </s></s> d </s>, all in segment 0 */
    if (rc == CN_ENOTFOUND)
        e->pair_format = e->jina ? ENG_PAIR_SEP_SEP : ENG_PAIR_BERT;
    else if (rc)
        return rc;
    else if (gguf_str_eq(f, "bert"))
        e->pair_format = ENG_PAIR_BERT;
    else if (gguf_str_eq(f, "sep-sep"))
        e->pair_format = ENG_PAIR_SEP_SEP;
    else
        return cn_fail(err, CN_EFORMAT, "%s: metadata cairn.rerank.pair_format = '%.*s' is not "
                       "a pair format Cairn knows (bert, sep-sep)", e->g->path,
                       (int)CN_MIN(f.len, 64), f.ptr);
    return CN_OK;
}

/* "ARCH.suffix" for the file's architecture (bert.*, jina-bert-v2.*). */
static const char *akey(const eng_encoder *e, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", e->arch, suffix);
    return buf;
}

/* An optional vector: *out stays NULL when the file has no tensor name. */
static int opt_vec(eng_encoder *e, const char *name, int64_t n, float **out, cn_err *err)
{
    return gguf_find_tensor(e->g, name) ? get_vec(e, name, n, out, err) : CN_OK;
}

/* ggml's ALiBi slopes with llama.cpp's max bias 8 for jina-bert-v2: the
** first 2^floor(log2(n_head)) heads get m0^(h+1), the rest the odd powers
** of m1, the geometric series between them. */
static int alibi_slopes(eng_encoder *e, cn_err *err)
{
    const float max_bias = 8.0f;
    e->alibi = cn_malloc_array((size_t)e->n_head, sizeof(float));
    if (!e->alibi)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int n_log2 = 1;
    while (n_log2 * 2 <= e->n_head)
        n_log2 *= 2;
    float m0 = powf(2.0f, -max_bias / (float)n_log2);
    float m1 = powf(2.0f, -(max_bias / 2.0f) / (float)n_log2);
    for (int h = 0; h < e->n_head; h++)
        e->alibi[h] = h < n_log2 ? powf(m0, (float)(h + 1)) : powf(m1, (float)(2 * (h - n_log2) + 1));
    return CN_OK;
}

static int load_layer(eng_encoder *e, int i, cn_err *err)
{
    bert_layer *L = &e->layers[i];
    int D = e->n_embd, F = e->n_ff, rc;
    char n[64];
#define T(part, a, b, dst) (snprintf(n, sizeof n, "blk.%d.%s", i, part), get(e, n, a, b, dst, err))
#define V(part, len, dst) (snprintf(n, sizeof n, "blk.%d.%s", i, part), get_vec(e, n, len, dst, err))
#define O(part, len, dst) (snprintf(n, sizeof n, "blk.%d.%s", i, part), opt_vec(e, n, len, dst, err))
    if ((rc = T("attn_q.weight", D, D, &L->wq)) || (rc = T("attn_k.weight", D, D, &L->wk)) ||
        (rc = T("attn_v.weight", D, D, &L->wv)) || (rc = T("attn_output.weight", D, D, &L->wo)) ||
        (rc = T("ffn_up.weight", D, F, &L->w_up)) || (rc = T("ffn_down.weight", F, D, &L->w_down)) ||
        (rc = V("attn_q.bias", D, &L->bq)) || (rc = V("attn_k.bias", D, &L->bk)) ||
        (rc = V("attn_v.bias", D, &L->bv)) || (rc = V("attn_output.bias", D, &L->bo)) ||
        (rc = V("ffn_down.bias", D, &L->b_down)) ||
        (rc = V("attn_output_norm.weight", D, &L->ln1_w)) ||
        (rc = V("attn_output_norm.bias", D, &L->ln1_b)) ||
        (rc = V("layer_output_norm.weight", D, &L->ln2_w)) ||
        (rc = V("layer_output_norm.bias", D, &L->ln2_b)))
        return rc;
    if (!e->jina)
        rc = V("ffn_up.bias", F, &L->b_up);
    else if (!(rc = T("ffn_gate.weight", D, F, &L->w_gate)) &&
             !(rc = O("attn_q_norm.weight", D, &L->qn_w)) &&
             !(rc = O("attn_q_norm.bias", D, &L->qn_b)) &&
             !(rc = O("attn_k_norm.weight", D, &L->kn_w)) &&
             !(rc = O("attn_k_norm.bias", D, &L->kn_b)) &&
             !(rc = O("attn_norm_2.weight", D, &L->ln_a2_w)))
        rc = O("attn_norm_2.bias", D, &L->ln_a2_b);
#undef T
#undef V
#undef O
    if (rc)
        return rc;
    /* a norm is its weight and its bias: half of one is a broken file */
    if (!L->qn_w != !L->qn_b || !L->kn_w != !L->kn_b || !L->ln_a2_w != !L->ln_a2_b)
        return cn_fail(err, CN_EFORMAT, "%s: layer %d has a LayerNorm weight without its bias "
                       "(attn_q_norm, attn_k_norm or attn_norm_2)", e->g->path, i);
    return CN_OK;
}

static int load(eng_encoder *e, cn_err *err)
{
    gguf_str arch;
    char key[96];
    int rc = gguf_get_str(e->g, "general.architecture", &arch, err);
    if (rc)
        return rc;
    if (gguf_str_eq(arch, "bert"))
        e->arch = "bert";
    else if (gguf_str_eq(arch, "jina-bert-v2"))
        e->arch = "jina-bert-v2", e->jina = true;
    else
        return cn_fail(err, CN_EUNSUPPORTED, "%s: architecture '%.*s' is not an embedding model "
                       "or reranker Cairn supports (supported: bert, jina-bert-v2)", e->g->path,
                       (int)CN_MIN(arch.len, 64), arch.ptr);
    if ((rc = u32_key(e, akey(e, "embedding_length", key, sizeof key), 1, 1 << 14, -1, &e->n_embd, err)) ||
        (rc = u32_key(e, akey(e, "block_count", key, sizeof key), 1, 256, -1, &e->n_layer, err)) ||
        (rc = u32_key(e, akey(e, "attention.head_count", key, sizeof key), 1, 256, -1, &e->n_head, err)) ||
        (rc = u32_key(e, akey(e, "feed_forward_length", key, sizeof key), 1, 1 << 16, -1, &e->n_ff, err)) ||
        (rc = u32_key(e, akey(e, "context_length", key, sizeof key), 1, 1 << 16, -1, &e->n_ctx, err)))
        return rc;
    /* The pooling type. llama.cpp b4747's converter never writes 4 (rank):
    ** a jina-bert-v2 file with a classifier (cls.weight) and no pooling type,
    ** or pooling "none", is the reranker it was converted from, which
    ** llama.cpp runs with --pooling rank. */
    bool has_cls = gguf_find_tensor(e->g, "cls.weight") != NULL;
    int def = e->jina && has_cls ? ENG_POOL_RANK : ENG_POOL_MEAN;
    if ((rc = u32_key(e, akey(e, "pooling_type", key, sizeof key), 0, 4, def, &e->pooling, err)))
        return rc;
    if (e->pooling == ENG_POOL_NONE)
        e->pooling = def; /* a sentence embedding needs a pooled vector */
    if (e->pooling == 3)
        return cn_fail(err, CN_EUNSUPPORTED, "%s: pooling type 3 (last token) is not supported "
                       "for a %s model", e->g->path, e->arch);
    if (e->n_embd % e->n_head)
        return cn_fail(err, CN_EFORMAT, "%s: embedding length %d is not a multiple of %d heads",
                       e->g->path, e->n_embd, e->n_head);
    e->head_dim = e->n_embd / e->n_head;
    rc = gguf_get_f32(e->g, akey(e, "attention.layer_norm_epsilon", key, sizeof key), &e->eps, err);
    if (rc == CN_ENOTFOUND)
        e->eps = 1e-12f;
    else if (rc)
        return rc;
    if (!(e->eps > 0 && e->eps < 1))
        return cn_fail(err, CN_EFORMAT, "%s: layer norm epsilon %g out of range", e->g->path,
                       e->eps);
    const gguf_tensor *t = gguf_find_tensor(e->g, "token_embd.weight");
    if (!t || t->n_dims != 2 || t->ne[1] > (1 << 22))
        return cn_fail(err, CN_EFORMAT, "%s: missing or malformed tensor 'token_embd.weight'",
                       e->g->path);
    e->n_vocab = (int)t->ne[1];
    const gguf_tensor *tt = gguf_find_tensor(e->g, "token_types.weight");
    e->n_types = tt && tt->n_dims == 2 ? (int)CN_MIN(tt->ne[1], 16) : 1;
    int D = e->n_embd;
    if ((rc = get(e, "token_embd.weight", D, e->n_vocab, &e->tok_embd, err)) ||
        (rc = get(e, "token_types.weight", D, e->n_types, &e->type_embd, err)) ||
        (rc = get_vec(e, "token_embd_norm.weight", D, &e->emb_ln_w, err)) ||
        (rc = get_vec(e, "token_embd_norm.bias", D, &e->emb_ln_b, err)))
        return rc;
    /* positions: a learned table (bert) or ALiBi (jina-bert-v2) */
    if ((rc = e->jina ? alibi_slopes(e, err)
                      : get(e, "position_embd.weight", D, e->n_ctx, &e->pos_embd, err)))
        return rc;
    e->layers = cn_calloc((size_t)e->n_layer, sizeof *e->layers);
    if (!e->layers)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    for (int i = 0; i < e->n_layer; i++)
        if ((rc = load_layer(e, i, err)))
            return rc;
    return e->pooling == ENG_POOL_RANK ? load_head(e, err) : CN_OK;
}

static int alloc_buffers(eng_encoder *e, cn_err *err)
{
    size_t nb = (size_t)e->n_batch, D = (size_t)e->n_embd;
    bool fail = false;
    e->x = alloc_f(nb * D, &fail);
    e->xb = alloc_f(nb * D, &fail);
    e->q = alloc_f(nb * D, &fail);
    e->k = alloc_f(nb * D, &fail);
    e->v = alloc_f(nb * D, &fail);
    e->att = alloc_f(nb * D, &fail);
    e->ff = alloc_f(nb * (size_t)e->n_ff, &fail);
    if (e->jina)
        e->ff2 = alloc_f(nb * (size_t)e->n_ff, &fail);
    e->scores = alloc_f((size_t)e->n_threads * kern_attn_work(e->head_dim, e->n_ctx), &fail);
    e->row = alloc_f(D, &fail);
    e->seq_start = cn_calloc(nb, sizeof(int));
    e->seq_len = cn_calloc(nb, sizeof(int));
    size_t act = 0;
    for (int l = 0; l < e->n_layer; l++) {
        const bert_layer *L = &e->layers[l];
        const gguf_tensor *ws[] = {L->wq, L->wk, L->wv, L->wo, L->w_up, L->w_down, L->w_gate};
        for (size_t i = 0; i < CN_ARRAY_LEN(ws); i++)
            if (ws[i])
                act = CN_MAX(act, kern_act_bytes(ws[i]->type, (int)ws[i]->ne[0], (int)nb));
    }
    e->act = cn_calloc(act, 1);
    if (fail || !e->act || !e->seq_start || !e->seq_len)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory for a %d-token batch", e->g->path,
                       e->n_batch);
    return CN_OK;
}

int eng_encoder_open(eng_encoder **out, const char *path, const eng_opts *opts, cn_err *err)
{
    *out = NULL;
    eng_opts o = opts ? *opts : (eng_opts){0};
    eng_encoder *e = cn_calloc(1, sizeof *e);
    if (!e)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    kern_init();
    int rc = gguf_open(&e->g, path, err);
    if (!rc)
        rc = load(e, err);
    if (!rc) {
        /* a batch always holds at least one full-length sequence */
        e->n_batch = CN_MAX(o.n_batch ? o.n_batch : 2048, e->n_ctx);
        e->n_threads = o.n_threads > 0 ? o.n_threads : cn_physical_cores();
        rc = cn_pool_new(&e->pool, e->n_threads, err);
    }
    if (!rc)
        rc = alloc_buffers(e, err);
    if (rc) {
        eng_encoder_close(e);
        return rc;
    }
    *out = e;
    return CN_OK;
}

void eng_encoder_close(eng_encoder *e)
{
    if (!e)
        return;
    if (e->layers)
        for (int i = 0; i < e->n_layer; i++) {
            bert_layer *L = &e->layers[i];
            float *own[] = {L->bq, L->bk, L->bv, L->bo, L->b_up, L->b_down, L->ln1_w,
                            L->ln1_b, L->ln2_w, L->ln2_b, L->qn_w, L->qn_b, L->kn_w, L->kn_b,
                            L->ln_a2_w, L->ln_a2_b};
            for (size_t k = 0; k < CN_ARRAY_LEN(own); k++)
                free(own[k]);
        }
    free(e->layers);
    void *bufs[] = {e->cls_w, e->cls_b, e->cls_out_w, e->emb_ln_w, e->emb_ln_b, e->alibi, e->x,
                    e->xb, e->q, e->k, e->v, e->att, e->ff, e->ff2, e->scores, e->row, e->act,
                    e->seq_start, e->seq_len};
    for (size_t k = 0; k < CN_ARRAY_LEN(bufs); k++)
        free(bufs[k]);
    cn_pool_free(e->pool);
    gguf_close(e->g);
    free(e);
}

const gguf_file *eng_encoder_gguf(const eng_encoder *e) { return e->g; }
int eng_encoder_dim(const eng_encoder *e) { return e->n_embd; }
int eng_encoder_n_ctx(const eng_encoder *e) { return e->n_ctx; }
int eng_encoder_pooling(const eng_encoder *e) { return e->pooling; }
bool eng_encoder_is_reranker(const eng_encoder *e) { return e->pooling == ENG_POOL_RANK; }

int eng_encoder_expect(const eng_encoder *e, bool reranker, cn_err *err)
{
    if (eng_encoder_is_reranker(e) == reranker)
        return CN_OK;
    /* a cross-encoder's [CLS] vector is no sentence embedding, and an
    ** embedding model has no head to score a pair with */
    return reranker ? cn_fail(err, CN_EUNSUPPORTED,
                              "%s is not a reranker: it has no classification head "
                              "(%s.pooling_type 4 and cls.* tensors); an embedding model goes "
                              "to `cairn embed` or -e", e->g->path, e->arch)
                    : cn_fail(err, CN_EUNSUPPORTED,
                              "%s is a reranker (a cross-encoder), not an embedding model: give it "
                              "to `cairn rerank` or --rerank", e->g->path);
}
int eng_encoder_n_types(const eng_encoder *e) { return e->n_types; }
int eng_encoder_pair_format(const eng_encoder *e) { return e->pair_format; }
void eng_encoder_set_pair_format(eng_encoder *e, int format) { e->pair_format = format; }

typedef struct bert_attn_job {
    eng_encoder *e;
    int n_seq;
} bert_attn_job;

/* One task per (text, head): every query of the text against its keys. */
static void bert_attention(void *ctx, int ith, int nth)
{
    bert_attn_job *j = ctx;
    eng_encoder *e = j->e;
    const kern_table *k = kern_get();
    size_t D = (size_t)e->n_embd;
    int hd = e->head_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float *work = e->scores + (size_t)ith * kern_attn_work(hd, e->n_ctx);
    for (int task = ith; task < j->n_seq * e->n_head; task += nth) {
        int s = task / e->n_head, h = task % e->n_head;
        size_t off = (size_t)e->seq_start[s] * D + (size_t)h * hd;
        k->attn(e->q + off, D, e->seq_len[s], e->k + off, e->v + off, D, e->seq_len[s], hd, scale,
                e->alibi ? e->alibi[h] : 0.0f, e->att + off, D, work);
    }
}

static void add_bias_rows(float *y, const float *b, int n_tok, int dim)
{
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++)
            y[(size_t)t * dim + i] += b[i];
}

enum { OUT_POOLED, OUT_CLS_RAW, OUT_RANK };

/* Forward pass over n_seq packed sequences (n_tok tokens, token types from
** types, NULL: all 0). OUT_POOLED: pooled, normalised vectors to out;
** OUT_CLS_RAW: the [CLS] states as they are; OUT_RANK: one score each. */
static void forward(eng_encoder *e, const int32_t *const *ids, const int32_t *const *types,
                    int n_seq, int n_tok, int mode, float *out)
{
    const kern_table *k = kern_get();
    int D = e->n_embd;
    size_t tok_row = gguf_row_size(e->tok_embd->type, D);
    size_t pos_row = e->pos_embd ? gguf_row_size(e->pos_embd->type, D) : 0;
    size_t type_row = gguf_row_size(e->type_embd->type, D);

    // embeddings: token + position (bert; ALiBi instead in jina-bert-v2) + token type, LayerNorm
    for (int s = 0; s < n_seq; s++)
        for (int p = 0; p < e->seq_len[s]; p++) {
            float *x = e->x + (size_t)(e->seq_start[s] + p) * D;
            k->to_float[e->tok_embd->type]((const char *)e->tok_embd->data +
                                               (size_t)ids[s][p] * tok_row, x, D);
            if (e->pos_embd) {
                k->to_float[e->pos_embd->type]((const char *)e->pos_embd->data +
                                                   (size_t)p * pos_row, e->row, D);
                for (int i = 0; i < D; i++)
                    x[i] += e->row[i];
            }
            int ty = types ? types[s][p] : 0;
            k->to_float[e->type_embd->type]((const char *)e->type_embd->data +
                                                (size_t)ty * type_row, e->row, D);
            for (int i = 0; i < D; i++)
                x[i] += e->row[i];
            kern_layernorm(x, x, e->emb_ln_w, e->emb_ln_b, D, e->eps);
        }

    for (int l = 0; l < e->n_layer; l++) {
        const bert_layer *L = &e->layers[l];
        // self-attention within each text
        kern_matmul(e->pool, e->q, L->wq, e->x, n_tok, e->act);
        kern_matmul(e->pool, e->k, L->wk, e->x, n_tok, e->act);
        kern_matmul(e->pool, e->v, L->wv, e->x, n_tok, e->act);
        add_bias_rows(e->q, L->bq, n_tok, D);
        add_bias_rows(e->k, L->bk, n_tok, D);
        add_bias_rows(e->v, L->bv, n_tok, D);
        for (int t = 0; L->qn_w && t < n_tok; t++)
            kern_layernorm(e->q + (size_t)t * D, e->q + (size_t)t * D, L->qn_w, L->qn_b, D, e->eps);
        for (int t = 0; L->kn_w && t < n_tok; t++)
            kern_layernorm(e->k + (size_t)t * D, e->k + (size_t)t * D, L->kn_w, L->kn_b, D, e->eps);
        bert_attn_job aj = {e, n_seq};
        cn_pool_run(e->pool, bert_attention, &aj);
        // output projection, residual, post-LayerNorm
        kern_matmul(e->pool, e->xb, L->wo, e->att, n_tok, e->act);
        add_bias_rows(e->xb, L->bo, n_tok, D);
        for (int t = 0; t < n_tok; t++) {
            float *x = e->x + (size_t)t * D, *y = e->xb + (size_t)t * D;
            for (int i = 0; i < D; i++)
                y[i] += x[i];
            if (!L->ln_a2_w) {
                kern_layernorm(x, y, L->ln1_w, L->ln1_b, D, e->eps);
                continue;
            }
            // attn_norm_2: the layer input is added once more, and normalised again
            kern_layernorm(y, y, L->ln1_w, L->ln1_b, D, e->eps);
            for (int i = 0; i < D; i++)
                y[i] += x[i];
            kern_layernorm(x, y, L->ln_a2_w, L->ln_a2_b, D, e->eps);
        }
        float *ffo = e->ff; /* what goes into ffn_down */
        if (L->w_gate) {
            // gated feed-forward (jina-bert-v2): gelu(gate x) * (up x), no biases
            float *outs[2] = {e->ff, e->ff2};
            const gguf_tensor *ws[2] = {L->w_up, L->w_gate};
            kern_matmul_group(e->pool, 2, outs, ws, e->x, n_tok, e->act);
            size_t nf = (size_t)n_tok * (size_t)e->n_ff;
            kern_gelu(e->ff2, (int)nf);
            for (size_t i = 0; i < nf; i++)
                e->ff2[i] *= e->ff[i];
            ffo = e->ff2;
        } else {
            // feed-forward: up, GELU, down, residual, post-LayerNorm
            kern_matmul(e->pool, e->ff, L->w_up, e->x, n_tok, e->act);
            add_bias_rows(e->ff, L->b_up, n_tok, e->n_ff);
            kern_gelu(e->ff, n_tok * e->n_ff);
        }
        kern_matmul(e->pool, e->xb, L->w_down, ffo, n_tok, e->act);
        add_bias_rows(e->xb, L->b_down, n_tok, D);
        for (int t = 0; t < n_tok; t++) {
            float *x = e->x + (size_t)t * D, *y = e->xb + (size_t)t * D;
            for (int i = 0; i < D; i++)
                y[i] += x[i];
            kern_layernorm(x, y, L->ln2_w, L->ln2_b, D, e->eps);
        }
    }

    if (mode == OUT_CLS_RAW || mode == OUT_RANK) {
        for (int s = 0; s < n_seq; s++) {
            const float *h = e->x + (size_t)e->seq_start[s] * D;
            if (mode == OUT_CLS_RAW) {
                memcpy(out + (size_t)s * D, h, (size_t)D * sizeof(float));
                continue;
            }
            // the head is one small matrix-vector product per sequence
            double score = e->cls_out_b;
            for (int o = 0; o < e->n_cls; o++) {
                const float *w = e->cls_w + (size_t)o * D;
                float a = e->cls_b[o];
                for (int i = 0; i < D; i++)
                    a += w[i] * h[i];
                score += e->cls_out_w ? (double)e->cls_out_w[o] * tanhf(a) : (double)tanhf(a);
            }
            out[s] = (float)score;
        }
        return;
    }

    // pooling and L2 normalisation
    for (int s = 0; s < n_seq; s++) {
        float *o = out + (size_t)s * D;
        const float *first = e->x + (size_t)e->seq_start[s] * D;
        if (e->pooling == ENG_POOL_CLS || e->pooling == ENG_POOL_RANK) {
            memcpy(o, first, (size_t)D * sizeof(float));
        } else {
            float inv = 1.0f / (float)e->seq_len[s];
            for (int i = 0; i < D; i++)
                o[i] = 0;
            for (int p = 0; p < e->seq_len[s]; p++)
                for (int i = 0; i < D; i++)
                    o[i] += first[(size_t)p * D + i] * inv;
        }
        double ss = 0;
        for (int i = 0; i < D; i++)
            ss += (double)o[i] * o[i];
        float scale = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int i = 0; i < D; i++)
            o[i] *= scale;
    }
}

/* Check, pack as many whole sequences as fit into each batch, run. */
static int run(eng_encoder *e, const int32_t *const *ids, const int32_t *const *types,
               const int *lens, int n, int mode, float *out, cn_err *err)
{
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > e->n_ctx)
            return cn_fail(err, CN_EINVAL, "text %d has %d tokens; the model takes 1 to %d", i,
                           lens[i], e->n_ctx);
        for (int p = 0; p < lens[i]; p++)
            if (ids[i][p] < 0 || ids[i][p] >= e->n_vocab)
                return cn_fail(err, CN_EINVAL, "token id %d is outside the vocabulary (%d)",
                               (int)ids[i][p], e->n_vocab);
        for (int p = 0; types && p < lens[i]; p++)
            if (types[i][p] < 0 || types[i][p] >= e->n_types)
                return cn_fail(err, CN_EINVAL, "token type %d is outside the model's %d types",
                               (int)types[i][p], e->n_types);
    }
    size_t stride = mode == OUT_RANK ? 1 : (size_t)e->n_embd;
    // pack as many whole texts as fit into each batch
    int i = 0;
    while (i < n) {
        int n_seq = 0, n_tok = 0;
        while (i + n_seq < n && n_tok + lens[i + n_seq] <= e->n_batch) {
            e->seq_start[n_seq] = n_tok;
            e->seq_len[n_seq] = lens[i + n_seq];
            n_tok += lens[i + n_seq];
            n_seq++;
        }
        forward(e, ids + i, types ? types + i : NULL, n_seq, n_tok, mode, out + (size_t)i * stride);
        i += n_seq;
    }
    return CN_OK;
}

int eng_encoder_embed(eng_encoder *e, const int32_t *const *ids, const int *lens, int n,
                      float *out, cn_err *err)
{
    return run(e, ids, NULL, lens, n, OUT_POOLED, out, err);
}

int eng_encoder_rerank(eng_encoder *e, const int32_t *const *ids, const int32_t *const *types,
                       const int *lens, int n, float *scores, cn_err *err)
{
    if (e->pooling != ENG_POOL_RANK)
        return cn_fail(err, CN_EUNSUPPORTED, "%s: not a reranker (no classification head: "
                       "%s.pooling_type is not 4 (rank) and there are no cls.* tensors)",
                       e->g->path, e->arch);
    return run(e, ids, types, lens, n, OUT_RANK, scores, err);
}

int eng_encoder_cls_states(eng_encoder *e, const int32_t *const *ids,
                           const int32_t *const *types, const int *lens, int n, float *out,
                           cn_err *err)
{
    return run(e, ids, types, lens, n, OUT_CLS_RAW, out, err);
}
