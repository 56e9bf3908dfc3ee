/*
** model.c: open a GGUF decoder model. Reads hyper-parameters from metadata
** (never hard-coded), checks every tensor's presence, type and shape, and
** allocates every buffer the forward pass will need, once.
*/
#include "engine/engine_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const supported_arch[] = {"llama", "qwen2"};

/* Read "{arch}.{suffix}" as an integer in [lo, hi]; def < lo means required. */
static int get_int(const gguf_file *g, const char *arch, const char *suffix, int64_t def,
                   int64_t lo, int64_t hi, int *out, cn_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    int rc = gguf_get_i64(g, key, &v, err);
    if (rc == CN_ENOTFOUND && def >= lo) {
        v = def;
    } else if (rc) {
        return rc;
    }
    if (v < lo || v > hi)
        return cn_fail(err, CN_EFORMAT, "%s: metadata %s = %" PRId64 " is out of range [%" PRId64
                       ", %" PRId64 "]", g->path, key, v, lo, hi);
    *out = (int)v;
    return CN_OK;
}

static int get_float(const gguf_file *g, const char *arch, const char *suffix, float def,
                     float *out, cn_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(g, key, out, err);
    if (rc == CN_ENOTFOUND) {
        *out = def;
        return CN_OK;
    }
    return rc;
}

static int read_hparams(const gguf_file *g, eng_hparams *hp, cn_err *err)
{
    gguf_str s;
    int rc = gguf_get_str(g, "general.architecture", &s, err);
    if (rc)
        return rc;
    bool ok = false;
    for (size_t i = 0; i < CN_ARRAY_LEN(supported_arch); i++)
        ok |= gguf_str_eq(s, supported_arch[i]);
    if (!ok)
        return cn_fail(err, CN_EUNSUPPORTED,
                       "%s: architecture '%.*s' is not supported (supported: llama, qwen2)",
                       g->path, (int)CN_MIN(s.len, 64), s.ptr);
    snprintf(hp->arch, sizeof hp->arch, "%.*s", (int)s.len, s.ptr);
    const char *a = hp->arch;
    if ((rc = get_int(g, a, "context_length", -1, 1, 1 << 24, &hp->n_ctx_train, err)) ||
        (rc = get_int(g, a, "embedding_length", -1, 1, 1 << 16, &hp->n_embd, err)) ||
        (rc = get_int(g, a, "block_count", -1, 1, 1024, &hp->n_layer, err)) ||
        (rc = get_int(g, a, "feed_forward_length", -1, 1, 1 << 18, &hp->n_ff, err)) ||
        (rc = get_int(g, a, "attention.head_count", -1, 1, 1024, &hp->n_head, err)) ||
        (rc = get_int(g, a, "attention.head_count_kv", hp->n_head, 1, hp->n_head, &hp->n_head_kv,
                      err)))
        return rc;
    int def_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : -1;
    char kl[128];
    snprintf(kl, sizeof kl, "%s.attention.key_length", a);
    if (def_hd < 0 && !gguf_find(g, kl))
        return cn_fail(err, CN_EFORMAT, "%s: embedding length %d is not a multiple of the %d "
                       "attention heads, and %s is not given", g->path, hp->n_embd, hp->n_head, kl);
    int vdim;
    if (hp->n_head % hp->n_head_kv != 0)
        return cn_fail(err, CN_EFORMAT, "%s: %d attention heads cannot be grouped over %d KV heads",
                       g->path, hp->n_head, hp->n_head_kv);
    if ((rc = get_int(g, a, "attention.key_length", def_hd, 2, 1 << 12, &hp->head_dim, err)) ||
        (rc = get_int(g, a, "attention.value_length", hp->head_dim, 1, 1 << 12, &vdim, err)))
        return rc;
    if (vdim != hp->head_dim)
        return cn_fail(err, CN_EUNSUPPORTED, "%s: key length %d differs from value length %d",
                       g->path, hp->head_dim, vdim);
    if ((rc = get_int(g, a, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &hp->n_rot,
                      err)))
        return rc;
    if (hp->n_rot % 2)
        return cn_fail(err, CN_EFORMAT, "%s: rope.dimension_count %d is odd", g->path, hp->n_rot);
    if ((rc = get_float(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err)) ||
        (rc = get_float(g, a, "rope.freq_base", 10000.0f, &hp->rope_base, err)))
        return rc;
    if (!(hp->rms_eps > 0 && hp->rms_eps < 1) || !(hp->rope_base > 1 && hp->rope_base < 1e12f))
        return cn_fail(err, CN_EFORMAT, "%s: rms epsilon %g or rope base %g out of range", g->path,
                       hp->rms_eps, hp->rope_base);

    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (gguf_get_str(g, key, &s, NULL) == CN_OK && !gguf_str_eq(s, "none")) {
        if (!gguf_str_eq(s, "linear"))
            return cn_fail(err, CN_EUNSUPPORTED, "%s: rope scaling '%.*s' is not supported yet",
                           g->path, (int)CN_MIN(s.len, 32), s.ptr);
        float factor;
        if ((rc = get_float(g, a, "rope.scaling.factor", 1.0f, &factor, err)))
            return rc;
        if (!(factor >= 1 && factor <= 1024))
            return cn_fail(err, CN_EFORMAT, "%s: rope scaling factor %g out of range", g->path,
                           factor);
        hp->rope_freq_scale = 1.0f / factor;
    }
    /* llama uses interleaved pairs; qwen2 (like GPT-NeoX) rotates halves */
    hp->rope_type = strcmp(a, "qwen2") == 0 ? ENG_ROPE_NEOX : ENG_ROPE_NORM;
    return CN_OK;
}

/* Find a tensor and check its type and shape (ne1 = 0: must be 1-D). */
static int want(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1, bool optional,
                const gguf_tensor **out, cn_err *err)
{
    const gguf_tensor *t = gguf_find_tensor(g, name);
    *out = t;
    if (!t) {
        if (optional)
            return CN_OK;
        return cn_fail(err, CN_EFORMAT, "%s: missing tensor '%s'", g->path, name);
    }
    bool shape_ok = ne1 ? (t->n_dims <= 2 && t->ne[0] == ne0 && t->ne[1] == ne1)
                        : (t->n_elem == ne0 && t->ne[0] == ne0);
    if (!shape_ok)
        return cn_fail(err, CN_EFORMAT,
                       "%s: tensor '%s' has shape [%" PRId64 ", %" PRId64 "], expected [%" PRId64
                       ", %" PRId64 "]",
                       g->path, name, t->ne[0], t->ne[1], ne0, ne1 ? ne1 : 1);
    if (!kern_supports(t->type))
        return cn_fail(err, CN_EUNSUPPORTED, "%s: tensor '%s' has type %s, which Cairn cannot "
                       "compute with yet", g->path, name, gguf_ttype_name(t->type));
    return CN_OK;
}

/* A small vector tensor copied to float (norms, biases, rope factors). */
static int want_vec(const gguf_file *g, const char *name, int64_t n, bool optional, float **out,
                    cn_err *err)
{
    const gguf_tensor *t;
    *out = NULL;
    int rc = want(g, name, n, 0, optional, &t, err);
    if (rc || !t)
        return rc;
    if (gguf_ttype_block(t->type) != 1)
        return cn_fail(err, CN_EFORMAT, "%s: tensor '%s' should be F32 or F16, not %s", g->path,
                       name, gguf_ttype_name(t->type));
    *out = cn_malloc((size_t)n * sizeof(float));
    if (!*out)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", g->path);
    kern_get()->to_float[t->type](t->data, *out, n);
    return CN_OK;
}

static int load_tensors(eng_model *m, cn_err *err)
{
    const gguf_file *g = m->g;
    eng_hparams *hp = &m->hp;
    int rc;
    const gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
    if (!t)
        return cn_fail(err, CN_EFORMAT, "%s: missing tensor 'token_embd.weight'", g->path);
    if (t->n_dims != 2 || t->ne[1] > (1 << 22))
        return cn_fail(err, CN_EFORMAT, "%s: tensor 'token_embd.weight' is not a 2-D vocabulary "
                       "table", g->path);
    hp->n_vocab = (int)t->ne[1];
    int nq = hp->n_head * hp->head_dim, nkv = hp->n_head_kv * hp->head_dim;
    if ((rc = want(g, "token_embd.weight", hp->n_embd, hp->n_vocab, false, &m->tok_embd, err)) ||
        (rc = want(g, "output.weight", hp->n_embd, hp->n_vocab, true, &m->output, err)) ||
        (rc = want_vec(g, "output_norm.weight", hp->n_embd, false, &m->output_norm, err)) ||
        (rc = want_vec(g, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freqs, err)))
        return rc;
    hp->tied_output = m->output == NULL;
    if (!m->output)
        m->output = m->tok_embd;
    hp->has_rope_freqs = m->rope_freqs != NULL;

    m->layers = cn_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", g->path);
    for (int i = 0; i < hp->n_layer; i++) {
        eng_layer *L = &m->layers[i];
        char n[12][64];
        static const char *const parts[12] = {
            "attn_norm.weight", "ffn_norm.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias",
            "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
            "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
        for (int k = 0; k < 12; k++)
            snprintf(n[k], sizeof n[k], "blk.%d.%s", i, parts[k]);
        if ((rc = want_vec(g, n[0], hp->n_embd, false, &L->attn_norm, err)) ||
            (rc = want_vec(g, n[1], hp->n_embd, false, &L->ffn_norm, err)) ||
            (rc = want_vec(g, n[2], nq, true, &L->bq, err)) ||
            (rc = want_vec(g, n[3], nkv, true, &L->bk, err)) ||
            (rc = want_vec(g, n[4], nkv, true, &L->bv, err)) ||
            (rc = want(g, n[5], hp->n_embd, nq, false, &L->wq, err)) ||
            (rc = want(g, n[6], hp->n_embd, nkv, false, &L->wk, err)) ||
            (rc = want(g, n[7], hp->n_embd, nkv, false, &L->wv, err)) ||
            (rc = want(g, n[8], nq, hp->n_embd, false, &L->wo, err)) ||
            (rc = want(g, n[9], hp->n_embd, hp->n_ff, false, &L->w_gate, err)) ||
            (rc = want(g, n[10], hp->n_embd, hp->n_ff, false, &L->w_up, err)) ||
            (rc = want(g, n[11], hp->n_ff, hp->n_embd, false, &L->w_down, err)))
            return rc;
        if (L->bq || L->bk || L->bv) {
            if (!(L->bq && L->bk && L->bv))
                return cn_fail(err, CN_EFORMAT, "%s: layer %d has only some of the q/k/v biases",
                               g->path, i);
            hp->has_qkv_bias = true;
        }
    }
    return CN_OK;
}

static void *alloc_f(size_t n, bool *fail)
{
    void *p = cn_calloc(n, sizeof(float));
    if (!p)
        *fail = true;
    return p;
}

static int alloc_buffers(eng_model *m, cn_err *err)
{
    const eng_hparams *hp = &m->hp;
    size_t nb = (size_t)m->n_batch;
    size_t nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    bool fail = false;
    size_t kv_elems = (size_t)hp->n_layer * m->n_ctx * nkv;
    size_t kv_bytes = kv_elems * (m->kv_f16 ? 2 : 4);
    m->k_cache = cn_calloc(kv_bytes, 1);
    m->v_cache = cn_calloc(kv_bytes, 1);
    if (!m->k_cache || !m->v_cache)
        return cn_fail(err, CN_ENOMEM, "%s: cannot allocate a %d-token KV cache (%.1f MiB)",
                       m->g->path, m->n_ctx, 2.0 * kv_bytes / (1 << 20));
    size_t wide = CN_MAX(nq, (size_t)hp->n_embd);
    m->x = alloc_f(nb * hp->n_embd, &fail);
    m->xb = alloc_f(nb * wide, &fail);
    m->q = alloc_f(nb * nq, &fail);
    m->k = alloc_f(nb * nkv, &fail);
    m->v = alloc_f(nb * nkv, &fail);
    m->att = alloc_f(nb * nq, &fail);
    m->hb = alloc_f(nb * hp->n_ff, &fail);
    m->hb2 = alloc_f(nb * hp->n_ff, &fail);
    m->rope_cs = alloc_f(nb * hp->n_rot, &fail);
    m->scores = alloc_f((size_t)m->n_threads * kern_attn_thread_work(hp->n_head / hp->n_head_kv,
                                                                      m->n_ctx, hp->head_dim),
                        &fail);
    m->logits = alloc_f((size_t)hp->n_vocab, &fail);
    m->cached = cn_calloc((size_t)m->n_ctx, sizeof *m->cached);
    fail |= !m->cached;
    /* activation scratch: the widest input of any matrix, in F32 as a bound */
    size_t act = 0;
    const gguf_tensor *ws[] = {m->output, m->layers[0].wq, m->layers[0].wo,
                               m->layers[0].w_gate, m->layers[0].w_down};
    for (int l = 0; l < hp->n_layer; l++) {
        const eng_layer *L = &m->layers[l];
        const gguf_tensor *lw[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < CN_ARRAY_LEN(lw); i++)
            act = CN_MAX(act, kern_act_bytes(lw[i]->type, (int)lw[i]->ne[0], (int)nb));
    }
    for (size_t i = 0; i < CN_ARRAY_LEN(ws); i++)
        act = CN_MAX(act, kern_act_bytes(ws[i]->type, (int)ws[i]->ne[0], (int)nb));
    m->act = cn_calloc(act, 1);
    if (fail || !m->act)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory for activation buffers", m->g->path);
    return CN_OK;
}

/* ---- the weights, copied at load ---- */

typedef struct copy_job {
    kern_repack_fn repack; /* NULL: copied as they are */
    const gguf_tensor *src;
    void *dst;
    _Atomic int next; /* chunks of 64 rows, claimed one at a time */
} copy_job;

static void copy_rows(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    copy_job *j = ctx;
    const int n = (int)j->src->ne[0], nr = (int)j->src->ne[1];
    const size_t ws = gguf_row_size(j->src->type, n);
    for (;;) {
        int r0 = 64 * atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (r0 >= nr)
            return;
        int r1 = CN_MIN(nr, r0 + 64);
        if (j->repack)
            j->repack(j->src->data, ws, n, r0, r1, j->dst);
        else
            memcpy((char *)j->dst + (size_t)r0 * ws, (const char *)j->src->data + (size_t)r0 * ws,
                   (size_t)(r1 - r0) * ws);
    }
}

/* Give the file's pages of [p, p + n) back (whole pages inside it only):
** the copy is what is read from now on. A tied output matrix is also the
** token table, whose rows are then read again a page at a time. */
static void release_pages(const void *p, size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) / (uintptr_t)ps * (uintptr_t)ps;
    uintptr_t e = ((uintptr_t)p + n) / (uintptr_t)ps * (uintptr_t)ps;
    if (e <= a)
        return;
    madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Copy every weight matrix out of the file's mapping into memory of 2 MiB
** pages (where the system allows: transparent huge pages, "madvise" mode
** included), on the pool, and point the layer at the copy; types the
** kernels repack (kern_repack_type) take their layout on the way.
** Generation streams every weight once per token, and with 4 KiB pages a
** TLB miss every 4 KiB held each stream back: the 1B Q8_0 shape generated
** 19 % faster from the copy than from 4 KiB pages (interleaved runs, two
** threads). The copy takes the place of the file's pages (same size). */
static int copy_weights(eng_model *m, bool locked, cn_err *err)
{
    const kern_table *k = kern_get();
    int n_slots = 1 + 7 * m->hp.n_layer;
    const gguf_tensor ***slots = cn_calloc((size_t)n_slots, sizeof *slots);
    m->copies = cn_calloc((size_t)n_slots, sizeof *m->copies);
    m->copy_mem = cn_calloc((size_t)n_slots, sizeof *m->copy_mem);
    if (!slots || !m->copies || !m->copy_mem) {
        free(slots);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", m->g->path);
    }
    slots[0] = &m->output;
    for (int l = 0; l < m->hp.n_layer; l++) {
        eng_layer *L = &m->layers[l];
        const gguf_tensor **ls[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                                    &L->w_down};
        memcpy(slots + 1 + 7 * l, ls, sizeof ls);
    }
    int rc = CN_OK;
    for (int i = 0; !rc && i < n_slots; i++) {
        const gguf_tensor *t = *slots[i];
        const size_t size = (size_t)t->size;
        void *mem = NULL;
        const size_t huge = (size_t)2 << 20; /* small matrices: no page of their own */
        if (posix_memalign(&mem, size >= huge ? huge : 64, size) != 0) {
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory for '%s' (%.1f MiB)", m->g->path,
                         t->name, size / 1048576.0);
            break;
        }
        madvise(mem, size, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
        uint32_t rt = kern_repack_type(t->type, t->ne[0], t->ne[1]);
        copy_job j = {.repack = rt ? k->repack[t->type] : NULL, .src = t, .dst = mem};
        atomic_init(&j.next, 0);
        cn_pool_run(m->pool, copy_rows, &j);
        int c = m->n_copies++;
        m->copy_mem[c] = mem;
        m->copies[c] = *t;
        m->copies[c].type = rt ? rt : t->type;
        m->copies[c].data = mem;
        *slots[i] = &m->copies[c];
        if (locked && mlock(mem, size) != 0)
            rc = cn_fail(err, CN_EIO, "%s: cannot lock '%s' (%.1f MiB) in memory: %s (the "
                         "limit is `ulimit -l`)", m->g->path, t->name, size / 1048576.0,
                         strerror(errno));
        release_pages(t->data, size);
    }
    free(slots);
    return rc;
}

/* --mlock: the copies are locked as they are made (copy_weights); what is
** left in the mapping and read on every token is the token table, unless
** the output matrix shares it (then its rows are read a few a token, from
** the page cache). */
static int lock_token_table(eng_model *m, bool locked, cn_err *err)
{
    if (!locked || m->hp.tied_output)
        return CN_OK;
    const gguf_tensor *t = m->tok_embd;
    if (mlock(t->data, (size_t)t->size) != 0)
        return cn_fail(err, CN_EIO, "%s: cannot lock the token table (%.1f MiB) in memory: %s "
                       "(the limit is `ulimit -l`)", m->g->path, t->size / 1048576.0,
                       strerror(errno));
    return CN_OK;
}

int eng_model_open(eng_model **out, const char *path, const eng_opts *opts, cn_err *err)
{
    *out = NULL;
    eng_opts o = opts ? *opts : (eng_opts){0};
    eng_model *m = cn_calloc(1, sizeof *m);
    if (!m)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    kern_init();
    int rc = gguf_open(&m->g, path, err);
    if (!rc)
        rc = read_hparams(m->g, &m->hp, err);
    if (!rc)
        rc = load_tensors(m, err);
    if (rc) {
        eng_model_close(m);
        return rc;
    }
    if (o.n_ctx < 0 || o.n_batch < 0 || o.n_threads < 0) {
        eng_model_close(m);
        return cn_fail(err, CN_EINVAL, "negative context, batch or thread count");
    }
    m->n_ctx = o.n_ctx ? o.n_ctx : CN_MIN(m->hp.n_ctx_train, 4096);
    /* longer than the training context is allowed, as in llama.cpp: quality
    ** degrades but nothing breaks; the CLI warns (eng_model_n_ctx vs hparams) */
    if (m->n_ctx > (1 << 22)) {
        eng_model_close(m);
        return cn_fail(err, CN_EINVAL, "context %d is too large (at most %d)", o.n_ctx, 1 << 22);
    }
    m->n_batch = CN_MIN(o.n_batch ? o.n_batch : 256, m->n_ctx);
    m->n_threads = o.n_threads ? o.n_threads : cn_physical_cores();
    m->kv_f16 = !o.kv_f32;
    if ((rc = cn_pool_new(&m->pool, m->n_threads, err)) || (rc = copy_weights(m, o.mlock, err)) ||
        (rc = lock_token_table(m, o.mlock, err)) || (rc = alloc_buffers(m, err))) {
        eng_model_close(m);
        return rc;
    }
    *out = m;
    return CN_OK;
}

void eng_model_close(eng_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (int i = 0; i < m->hp.n_layer; i++) {
            eng_layer *L = &m->layers[i];
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->rope_freqs);
    free(m->k_cache);
    free(m->v_cache);
    void *bufs[] = {m->x, m->xb, m->q, m->k, m->v, m->att, m->hb, m->hb2, m->rope_cs,
                    m->scores, m->act, m->logits, m->cached};
    for (size_t i = 0; i < CN_ARRAY_LEN(bufs); i++)
        free(bufs[i]);
    cn_pool_free(m->pool);
    for (int i = 0; i < m->n_copies; i++)
        free(m->copy_mem[i]);
    free(m->copies);
    free(m->copy_mem);
    gguf_close(m->g);
    free(m);
}

const eng_hparams *eng_model_hparams(const eng_model *m) { return &m->hp; }
const gguf_file *eng_model_gguf(const eng_model *m) { return m->g; }
int eng_model_n_ctx(const eng_model *m) { return m->n_ctx; }
int eng_model_n_threads(const eng_model *m) { return m->n_threads; }
const float *eng_model_logits(const eng_model *m) { return m->logits; }

int eng_decode(eng_model *m, const int32_t *tokens, int n, int n_past, cn_err *err)
{
    if (n <= 0)
        return cn_fail(err, CN_EINVAL, "nothing to decode");
    if (n_past < 0 || n_past > m->n_ctx || n > m->n_ctx - n_past)
        return cn_fail(err, CN_ELIMIT, "context is full: %d tokens in a %d-token context "
                       "(use a larger --ctx)", n_past + n, m->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return cn_fail(err, CN_EINVAL, "token id %d is outside the vocabulary (%d)",
                           (int)tokens[i], m->hp.n_vocab);
    m->n_cached = CN_MIN(m->n_cached, n_past);
    for (int i = 0; i < n; i += m->n_batch) {
        int nc = CN_MIN(m->n_batch, n - i);
        int rc = llama_forward(m, tokens + i, nc, n_past + i, i + nc == n, NULL);
        if (rc)
            return cn_fail(err, rc, "forward pass failed");
    }
    memcpy(m->cached + n_past, tokens, (size_t)n * sizeof *tokens);
    m->n_cached = n_past + n;
    return CN_OK;
}

int eng_decode_all(eng_model *m, const int32_t *tokens, int n, int n_past, float *logits,
                   cn_err *err)
{
    if (n <= 0 || n > ENG_SPEC_MAX + 1 || n > m->n_batch)
        return cn_fail(err, CN_EINVAL, "%d tokens to check at once (1 to %d)", n,
                       CN_MIN(ENG_SPEC_MAX + 1, m->n_batch));
    if (n_past < 0 || n > m->n_ctx - n_past)
        return cn_fail(err, CN_ELIMIT, "context is full: %d tokens in a %d-token context",
                       n_past + n, m->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return cn_fail(err, CN_EINVAL, "token id %d is outside the vocabulary (%d)",
                           (int)tokens[i], m->hp.n_vocab);
    m->n_cached = CN_MIN(m->n_cached, n_past);
    int rc = llama_forward(m, tokens, n, n_past, true, logits);
    if (rc)
        return cn_fail(err, rc, "forward pass failed");
    memcpy(m->cached + n_past, tokens, (size_t)n * sizeof *tokens);
    m->n_cached = n_past + n;
    return CN_OK;
}

void eng_model_reset(eng_model *m) { m->n_cached = 0; }

struct eng_kv_snap {
    int n;          /* positions */
    size_t bytes;   /* of k and v */
    int32_t *tokens;
    char *k, *v;    /* per layer and KV head, n rows of head_dim */
};

/* The cache's (layer, KV head) blocks: n_ctx rows each; a snapshot keeps
** the first n rows of every block, back to back. */
static void kv_copy(const eng_model *m, int n, char *dst_k, char *dst_v, const char *src_k,
                    const char *src_v, bool save)
{
    const size_t row = (size_t)m->hp.head_dim * (m->kv_f16 ? 2 : 4);
    const int blocks = m->hp.n_layer * m->hp.n_head_kv;
    for (int b = 0; b < blocks; b++) {
        size_t cache = (size_t)b * (size_t)m->n_ctx * row, snap = (size_t)b * (size_t)n * row;
        if (save) {
            memcpy(dst_k + snap, src_k + cache, (size_t)n * row);
            memcpy(dst_v + snap, src_v + cache, (size_t)n * row);
        } else {
            memcpy(dst_k + cache, src_k + snap, (size_t)n * row);
            memcpy(dst_v + cache, src_v + snap, (size_t)n * row);
        }
    }
}

int eng_kv_save(const eng_model *m, eng_kv_snap **out, cn_err *err)
{
    *out = NULL;
    if (m->n_cached <= 0)
        return CN_OK;
    const int n = m->n_cached;
    eng_kv_snap *s = cn_calloc(1, sizeof *s);
    size_t half = (size_t)m->hp.n_layer * m->hp.n_head_kv * (size_t)n * m->hp.head_dim *
                  (m->kv_f16 ? 2 : 4);
    if (s) {
        s->n = n;
        s->bytes = 2 * half;
        s->tokens = cn_malloc((size_t)n * sizeof *s->tokens);
        s->k = cn_malloc(half);
        s->v = cn_malloc(half);
    }
    if (!s || !s->tokens || !s->k || !s->v) {
        eng_kv_snap_free(s);
        return cn_fail(err, CN_ENOMEM, "out of memory keeping a %d-token conversation", n);
    }
    memcpy(s->tokens, m->cached, (size_t)n * sizeof *s->tokens);
    kv_copy(m, n, s->k, s->v, m->k_cache, m->v_cache, true);
    *out = s;
    return CN_OK;
}

void eng_kv_restore(eng_model *m, const eng_kv_snap *s)
{
    kv_copy(m, s->n, m->k_cache, m->v_cache, s->k, s->v, false);
    memcpy(m->cached, s->tokens, (size_t)s->n * sizeof *s->tokens);
    m->n_cached = s->n;
}

void eng_kv_snap_free(eng_kv_snap *s)
{
    if (!s)
        return;
    free(s->tokens);
    free(s->k);
    free(s->v);
    free(s);
}

size_t eng_kv_snap_bytes(const eng_kv_snap *s) { return s ? s->bytes : 0; }

const int32_t *eng_kv_tokens(const eng_model *m, const eng_kv_snap *s, int *n)
{
    *n = s ? s->n : m->n_cached;
    return s ? s->tokens : m->cached;
}
