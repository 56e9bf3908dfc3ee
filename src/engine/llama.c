/*
** llama.c: the decoder forward pass for the llama family (Llama 2/3/3.x,
** TinyLlama, Mistral, SmolLM2) and qwen2 (q/k/v biases, NeoX rotary).
** Reads top to bottom like the maths; numerics follow llama.cpp where the
** order of operations changes results (rotary angles, double sums).
*/
#include "engine/engine_int.h"

#include <math.h>
#include <string.h>

/* cos/sin of every rotary pair for positions n_past..n_past+n-1.
** The angle is advanced by repeated multiplication in float, as llama.cpp
** does, so both engines round the same way. */
static void rope_cache(eng_model *m, int n, int n_past)
{
    const eng_hparams *hp = &m->hp;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    for (int t = 0; t < n; t++) {
        float theta = (float)(n_past + t);
        float *cs = m->rope_cs + (size_t)t * hp->n_rot;
        for (int i = 0; i < hp->n_rot / 2; i++) {
            float ff = m->rope_freqs ? m->rope_freqs[i] : 1.0f;
            float th = hp->rope_freq_scale * (theta / ff);
            cs[2 * i] = cosf(th);
            cs[2 * i + 1] = sinf(th);
            theta *= theta_scale;
        }
    }
}

/* Rotate the first n_rot dimensions of each head of vec (n_heads heads). */
static void rope_apply(const eng_model *m, float *vec, int n_heads, const float *cs)
{
    const eng_hparams *hp = &m->hp;
    int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = vec + (size_t)h * hp->head_dim;
        for (int i = 0; i < half; i++) {
            /* normal: adjacent pairs; NeoX: element i with element i + n_rot/2 */
            int a = hp->rope_type == ENG_ROPE_NEOX ? i : 2 * i;
            int b = hp->rope_type == ENG_ROPE_NEOX ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

/* The cache holds, per layer and KV head, its positions one after another
** ([layer][kv head][position][head_dim]): attention reads a head's keys
** and values as one sequential stream, which the hardware prefetcher
** follows (interleaved heads made every row a stride away, and the
** reads waited on memory). */
static size_t kv_index(const eng_model *m, int layer, int kh, int pos)
{
    return (((size_t)layer * m->hp.n_head_kv + (size_t)kh) * m->n_ctx + (size_t)pos) *
           m->hp.head_dim;
}

typedef struct attn_job {
    eng_model *m;
    int layer, n, n_past;
} attn_job;

/* One (run of positions, KV head) pair per task: the query heads of the
** group at up to kern_attn_positions consecutive positions together
** (scores over every earlier position, softmax, weighted sum of values:
** kern_table.attn_cached), so each key and value read from the cache
** serves them all. The queries are copied side by side for the kernel,
** and its outputs back. */
static void attention(void *ctx, int ith, int nth)
{
    attn_job *j = ctx;
    eng_model *m = j->m;
    const eng_hparams *hp = &m->hp;
    const kern_table *k = kern_get();
    int hd = hp->head_dim, nq = hp->n_head * hd;
    int group = hp->n_head / hp->n_head_kv, run = CN_MIN(kern_attn_positions(group), j->n);
    float scale = 1.0f / sqrtf((float)hd);
    float *work = m->scores + (size_t)ith * kern_attn_thread_work(group, m->n_ctx, hd);
    float *qb = work + kern_attn_cached_work(group * run, m->n_ctx, hd);
    float *ob = qb + (size_t)group * run * hd;
    size_t esize = m->kv_f16 ? 2 : 4, row = (size_t)group * hd * sizeof(float);
    int n_runs = (j->n + run - 1) / run;

    for (int task = ith; task < n_runs * hp->n_head_kv; task += nth) {
        int t0 = task / hp->n_head_kv * run, kh = task % hp->n_head_kv;
        int np = CN_MIN(run, j->n - t0);
        size_t off = kv_index(m, j->layer, kh, 0) * esize;
        for (int i = 0; i < np; i++)
            memcpy(qb + (size_t)i * group * hd,
                   m->q + (size_t)(t0 + i) * nq + (size_t)kh * group * hd, row);
        k->attn_cached(qb, (size_t)hd, group * np, group, (const char *)m->k_cache + off,
                       (const char *)m->v_cache + off, (size_t)hd, j->n_past + t0 + np, hd,
                       m->kv_f16, scale, ob, (size_t)hd, work);
        for (int i = 0; i < np; i++)
            memcpy(m->att + (size_t)(t0 + i) * nq + (size_t)kh * group * hd,
                   ob + (size_t)i * group * hd, row);
    }
}

/* Token t's keys and values into the cache at position n_past + t. */
static void store_kv(eng_model *m, int layer, int t, int n_past)
{
    int hd = m->hp.head_dim, nkv = m->hp.n_head_kv * hd;
    for (int kh = 0; kh < m->hp.n_head_kv; kh++) {
        size_t dst = kv_index(m, layer, kh, n_past + t), src = (size_t)t * nkv + (size_t)kh * hd;
        if (m->kv_f16) {
            uint16_t *kc = (uint16_t *)m->k_cache + dst, *vc = (uint16_t *)m->v_cache + dst;
            for (int i = 0; i < hd; i++) {
                kc[i] = cn_fp32_to_fp16(m->k[src + i]);
                vc[i] = cn_fp32_to_fp16(m->v[src + i]);
            }
        } else {
            memcpy((float *)m->k_cache + dst, m->k + src, (size_t)hd * sizeof(float));
            memcpy((float *)m->v_cache + dst, m->v + src, (size_t)hd * sizeof(float));
        }
    }
}

/* The per-token steps between the matrix products, spread over the pool
** for a prompt (one token runs them on the calling thread: waking the pool
** would cost more than the work). */
enum { ST_NORM_ATTN, ST_ROPE_KV, ST_NORM_FFN, ST_SILU };

typedef struct step_job {
    eng_model *m;
    int step, layer, n, n_past;
} step_job;

static void step_run(void *ctx, int ith, int nth)
{
    step_job *j = ctx;
    eng_model *m = j->m;
    const eng_hparams *hp = &m->hp;
    const eng_layer *L = &m->layers[j->layer];
    int D = hp->n_embd, nq = hp->n_head * hp->head_dim, nkv = hp->n_head_kv * hp->head_dim;
    if (j->step == ST_SILU) { /* contiguous ranges, a multiple of 16 long */
        size_t total = (size_t)j->n * (size_t)hp->n_ff;
        size_t per = (total / (size_t)nth + 15) / 16 * 16;
        size_t a = CN_MIN(total, per * (size_t)ith), b = CN_MIN(total, a + per);
        if (b > a)
            kern_get()->silu_mul(m->hb + a, m->hb2 + a, (int)(b - a));
        return;
    }
    for (int t = ith; t < j->n; t += nth) {
        size_t x = (size_t)t * D;
        if (j->step == ST_NORM_ATTN) {
            kern_rmsnorm(m->xb + x, m->x + x, L->attn_norm, D, hp->rms_eps);
        } else if (j->step == ST_NORM_FFN) {
            kern_rmsnorm(m->xb + x, m->x + x, L->ffn_norm, D, hp->rms_eps);
        } else {
            const float *cs = m->rope_cs + (size_t)t * hp->n_rot;
            rope_apply(m, m->q + (size_t)t * nq, hp->n_head, cs);
            rope_apply(m, m->k + (size_t)t * nkv, hp->n_head_kv, cs);
            store_kv(m, j->layer, t, j->n_past);
        }
    }
}

static void steps(eng_model *m, int step, int layer, int n, int n_past)
{
    step_job j = {m, step, layer, n, n_past};
    if (n == 1)
        step_run(&j, 0, 1);
    else
        cn_pool_run(m->pool, step_run, &j);
}

static void add_bias(float *y, const float *b, int n_tok, int dim)
{
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++)
            y[(size_t)t * dim + i] += b[i];
}

static void add_into(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

int llama_forward(eng_model *m, const int32_t *tokens, int n, int n_past, bool want_logits,
                  float *all_logits)
{
    const eng_hparams *hp = &m->hp;
    const kern_table *k = kern_get();
    int D = hp->n_embd, nq = hp->n_head * hp->head_dim, nkv = hp->n_head_kv * hp->head_dim;
    size_t emb_row = gguf_row_size(m->tok_embd->type, D);

    // token embeddings
    for (int t = 0; t < n; t++)
        k->to_float[m->tok_embd->type]((const char *)m->tok_embd->data + (size_t)tokens[t] * emb_row,
                                       m->x + (size_t)t * D, D);
    rope_cache(m, n, n_past);

    for (int l = 0; l < hp->n_layer; l++) {
        const eng_layer *L = &m->layers[l];

        // attention rmsnorm
        steps(m, ST_NORM_ATTN, l, n, n_past);
        // q, k, v for every token of the chunk
        kern_matmul_group(m->pool, 3, (float *[]){m->q, m->k, m->v},
                          (const gguf_tensor *[]){L->wq, L->wk, L->wv}, m->xb, n, m->act);
        if (L->bq) {
            add_bias(m->q, L->bq, n, nq);
            add_bias(m->k, L->bk, n, nkv);
            add_bias(m->v, L->bv, n, nkv);
        }
        // rotary position embedding of q and k; keys and values join the
        // cache; causal attention over it
        steps(m, ST_ROPE_KV, l, n, n_past);
        attn_job aj = {m, l, n, n_past};
        cn_pool_run(m->pool, attention, &aj);
        // output projection and residual
        kern_matmul(m->pool, m->xb, L->wo, m->att, n, m->act);
        add_into(m->x, m->xb, (size_t)n * D);

        // feed-forward: rmsnorm, SwiGLU, residual
        steps(m, ST_NORM_FFN, l, n, n_past);
        kern_matmul_group(m->pool, 2, (float *[]){m->hb, m->hb2},
                          (const gguf_tensor *[]){L->w_gate, L->w_up}, m->xb, n, m->act);
        steps(m, ST_SILU, l, n, n_past);
        kern_matmul(m->pool, m->xb, L->w_down, m->hb, n, m->act);
        add_into(m->x, m->xb, (size_t)n * D);
    }

    // final norm and the vocabulary projection: for every token (checking
    // drafted tokens), or for the last one only
    if (all_logits) {
        for (int t = 0; t < n; t++)
            kern_rmsnorm(m->xb + (size_t)t * D, m->x + (size_t)t * D, m->output_norm, D,
                         hp->rms_eps);
        kern_matmul(m->pool, all_logits, m->output, m->xb, n, m->act);
    } else if (want_logits) {
        kern_rmsnorm(m->xb, m->x + (size_t)(n - 1) * D, m->output_norm, D, hp->rms_eps);
        kern_matmul(m->pool, m->logits, m->output, m->xb, 1, m->act);
    }
    return CN_OK;
}
