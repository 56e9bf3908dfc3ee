/*
** index.c: the embedding phase and search. Vectors are computed in batches
** and committed per batch, so an interrupted index loses at most one batch
** and the next run continues where it stopped. Search loads the library's
** vectors for the model once per process.
*/
#include "library/lib_int.h"
#include "ingest/ingest.h"
#include "search/search.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int encoder_loads;

int lib_encoder_loads(void) { return atomic_load(&encoder_loads); }

static void vectors_unref(lib_vectors *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    free(v->ids);
    free(v->m);
    free(v);
}

void lib_drop_encoder(lib *l)
{
    tok_close(l->enc_tok);
    eng_encoder_close(l->enc);
    vectors_unref(l->vs);
    l->enc = NULL;
    l->enc_tok = NULL;
    l->vs = NULL;
    l->using_shared = false;
    l->enc_path[0] = 0;
}

int lib_model_name(const char *model_path, char *out, size_t cap, cn_err *err)
{
    char hash[STORE_HASH_HEX + 1];
    int rc = store_hash_file(model_path, hash, NULL, err);
    if (rc)
        return rc;
    const char *base = strrchr(model_path, '/');
    snprintf(out, cap, "%s:%.16s", base ? base + 1 : model_path, hash);
    return CN_OK;
}

int lib_embedder_init(lib_embedder *e, const char *path, cn_err *err)
{
    e->path = path;
    e->cur = NULL;
    int rc = lib_model_name(path, e->name, sizeof e->name, err);
    if (!rc)
        pthread_mutex_init(&e->mu, NULL);
    return rc;
}

void lib_embedder_free(lib_embedder *e)
{
    vectors_unref(e->cur);
    e->cur = NULL;
    pthread_mutex_destroy(&e->mu);
}

void lib_share_embedder(lib *l, lib_embedder *e)
{
    lib_drop_encoder(l);
    l->shared = e;
}

int lib_use_encoder(lib *l, const char *path, int threads, cn_err *err)
{
    if (l->shared && !strcmp(l->shared->path, path)) {
        if (!l->using_shared) {
            lib_drop_encoder(l);
            snprintf(l->enc_name, sizeof l->enc_name, "%s", l->shared->name);
            snprintf(l->enc_path, sizeof l->enc_path, "%s", path);
            l->using_shared = true;
        }
        return CN_OK;
    }
    if (l->enc && !strcmp(l->enc_path, path))
        return CN_OK;
    lib_drop_encoder(l);
    eng_opts o = {.n_threads = threads};
    int rc = lib_model_name(path, l->enc_name, sizeof l->enc_name, err);
    if (!rc)
        rc = eng_encoder_open(&l->enc, path, &o, err);
    if (!rc)
        rc = eng_encoder_expect(l->enc, false, err);
    if (!rc) {
        atomic_fetch_add(&encoder_loads, 1);
        rc = tok_open(&l->enc_tok, eng_encoder_gguf(l->enc), err);
    }
    if (rc) {
        lib_drop_encoder(l);
        return rc;
    }
    l->enc_ctx = eng_encoder_n_ctx(l->enc);
    snprintf(l->enc_path, sizeof l->enc_path, "%s", path);
    return CN_OK;
}

/* The model in use (after lib_use_encoder): dimensions, and embedding. */
static int enc_dim(const lib *l)
{
    return l->using_shared ? l->shared->dim : eng_encoder_dim(l->enc);
}

static int enc_embed(lib *l, const char *const *texts, const size_t *lens, int n, float *vecs,
                     cn_err *err)
{
    if (l->using_shared)
        return l->shared->embed(l->shared->ctx, texts, lens, n, vecs, err);
    return eng_embed_texts(l->enc, l->enc_tok, texts, lens, n, vecs, NULL, err);
}

#define INDEX_BATCH 32

int lib_index(lib *l, const char *model_path, int threads, lib_progress_fn fn, void *ctx,
              cn_err *err)
{
    int rc = lib_use_encoder(l, model_path, threads, err);
    if (rc)
        return rc;
    int64_t done = 0, total = 0;
    if ((rc = store_embedding_progress(l->st, l->enc_name, &done, &total, err)))
        return rc;
    int dim = enc_dim(l);
    float *vecs = cn_malloc(sizeof(float) * INDEX_BATCH * (size_t)dim);
    const char *texts[INDEX_BATCH];
    size_t lens[INDEX_BATCH];
    int64_t ids[INDEX_BATCH], after = 0;
    int embedded = 0;
    double t0 = cn_now();
    int64_t start_done = done;
    while (rc == CN_OK && vecs) {
        cn_arena a;
        cn_arena_init(&a, (size_t)1 << 28);
        store_passage ps[INDEX_BATCH];
        int n = 0;
        rc = store_passages_without_embedding(l->st, l->enc_name, after, INDEX_BATCH, &a, ps, &n,
                                              err);
        if (rc >= 0)
            rc = CN_OK;
        if (rc || n == 0) {
            cn_arena_free(&a);
            break;
        }
        for (int i = 0; i < n; i++) {
            texts[i] = ps[i].text;
            lens[i] = ps[i].len;
            ids[i] = ps[i].id;
        }
        after = ps[n - 1].id;
        rc = enc_embed(l, texts, lens, n, vecs, err);
        if (rc == CN_OK) {
            int put = store_put_embeddings(l->st, l->enc_name, dim, ids, vecs, n, true, err);
            rc = put < 0 ? put : CN_OK;
        }
        cn_arena_free(&a);
        embedded += n;
        done += n;
        if (fn) {
            double rate = (done - start_done) / (cn_now() - t0 + 1e-9);
            lib_event ev = {.kind = LIB_EV_EMBED, .embed_done = done, .embed_total = total,
                            .eta_s = rate > 0 ? (double)(total - done) / rate : -1};
            fn(ctx, &ev);
        }
    }
    free(vecs);
    lib_reload_vectors(l); /* the next search reloads */
    if (!vecs && rc == CN_OK)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    return rc ? rc : embedded;
}

static int read_vectors(lib *l, lib_vectors **out, cn_err *err)
{
    lib_vectors *v = cn_calloc(1, sizeof *v);
    if (!v)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int rc = store_load_embeddings(l->st, l->enc_name, &v->ids, &v->m, &v->n, &v->dim, err);
    if (rc) {
        free(v);
        return rc;
    }
    atomic_init(&v->refs, 1);
    *out = v;
    return CN_OK;
}

/* l->vs: this handle's vectors, or a reference to the shared snapshot
** (loaded by the first handle that needs it, once). */
static int load_vectors(lib *l, cn_err *err)
{
    if (!l->using_shared)
        return l->vs ? CN_OK : read_vectors(l, &l->vs, err);
    lib_embedder *e = l->shared;
    int rc = CN_OK;
    pthread_mutex_lock(&e->mu);
    if (!e->cur)
        rc = read_vectors(l, &e->cur, err);
    if (!rc && l->vs != e->cur) {
        vectors_unref(l->vs);
        l->vs = e->cur;
        atomic_fetch_add(&l->vs->refs, 1);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* Offset in text of the first word of the query (3+ letters, not a stop
** word such as "the" or "does") it contains, compared without regard to
** ASCII case; -1 if none. */
static long first_match(const char *text, const char *query)
{
    long best = -1;
    const char *q = query;
    while (*q) {
        while (*q && !isalnum((unsigned char)*q) && !((unsigned char)*q & 0x80))
            q++;
        const char *w = q;
        while (*q && (isalnum((unsigned char)*q) || ((unsigned char)*q & 0x80)))
            q++;
        size_t n = (size_t)(q - w);
        if (n < 3 || n > 64 || store_is_stop_word(w, n))
            continue;
        char word[65];
        memcpy(word, w, n);
        word[n] = 0;
        const char *hit = strcasestr(text, word);
        if (hit && (best < 0 || hit - text < best))
            best = hit - text;
    }
    return best;
}

/* A passage that spans pages is cited at the page where the query's words
** appear: the passage is its pages' text joined by newlines, starting inside
** the first page (found by its opening bytes), so page lengths give the
** boundaries. */
static int cited_page(lib *l, const store_hit *h, const char *query, cn_arena *a)
{
    if (h->page_end <= h->page_start)
        return h->page_start;
    long at = first_match(h->text, query);
    if (at < 0)
        return h->page_start;
    size_t pos = 0;
    for (int p = h->page_start; p < h->page_end; p++) {
        const char *t;
        size_t len;
        if (store_get_page(l->st, h->doc_id, p, a, &t, &len, NULL) != CN_OK)
            return h->page_start;
        size_t part = len;
        if (p == h->page_start) {
            size_t probe = CN_MIN(h->len, (size_t)48);
            const char *start = memmem(t, len, h->text, probe);
            if (!start)
                return h->page_start;
            part = len - (size_t)(start - t);
        }
        pos += part + 1; /* the joining newline */
        if ((size_t)at < pos)
            return p;
    }
    return h->page_end;
}

/* The heading path to cite: the one in effect where the query's words first
** appear in the passage, else the passage's own (ingest_locator_at). A
** path that opens with the document's title (a Markdown file's "# Title")
** loses it: the citation names the document already. */
static const char *cited_locator(const store_hit *h, const char *query, cn_arena *a)
{
    if (!h->locator || !h->locator[0])
        return NULL;
    char buf[512];
    ingest_locator_at(h->locator, first_match(h->text, query), h->len, buf, sizeof buf);
    const char *p = buf;
    size_t tl = h->title ? strlen(h->title) : 0;
    if (tl && strncmp(p, h->title, tl) == 0) {
        if (p[tl] == 0)
            p += tl;
        else if (strncmp(p + tl, " \xE2\x80\xBA ", 5) == 0)
            p += tl + 5;
    }
    return p[0] ? cn_arena_strndup(a, p, strlen(p)) : NULL;
}

int lib_search(lib *l, const char *query, const lib_search_opts *o, cn_arena *a, lib_result *out,
               lib_search_info *info, cn_err *err)
{
    int k = o && o->k > 0 ? o->k : 5, pool = CN_MAX(k * 4, 20);
    *info = (lib_search_info){"keyword", 0, 0, 0, ""};
    store_hit *kw = cn_arena_alloc(a, sizeof *kw * (size_t)pool);
    search_hit *kh = cn_arena_alloc(a, sizeof *kh * (size_t)pool);
    search_hit *vh = cn_arena_alloc(a, sizeof *vh * (size_t)pool);
    search_hit *fused = cn_arena_alloc(a, sizeof *fused * (size_t)pool);
    if (!kw || !kh || !vh || !fused)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int nk = 0, nv = 0;
    store_query_info qi;
    int rc = store_search_keyword(l->st, query, pool, a, kw, &nk, &qi, err);
    if (rc < 0)
        return rc;
    info->absent = (float)qi.absent;
    snprintf(info->missing, sizeof info->missing, "%s", qi.missing);
    for (int i = 0; i < nk; i++)
        kh[i] = (search_hit){kw[i].passage_id, (float)kw[i].score};
    info->n_keyword = nk;

    if (o && o->embed_model) {
        if ((rc = lib_use_encoder(l, o->embed_model, o->threads, err)) ||
            (rc = load_vectors(l, err)))
            return rc;
        const lib_vectors *v = l->vs;
        if (v->n > 0 && v->dim == enc_dim(l)) {
            float *q = cn_arena_alloc(a, sizeof(float) * (size_t)v->dim);
            size_t qlen = strlen(query);
            if (!q)
                return cn_fail(err, CN_ENOMEM, "out of memory");
            if ((rc = enc_embed(l, &query, &qlen, 1, q, err)))
                return rc;
            nv = search_vector(v->m, v->n, v->dim, v->ids, q, pool, vh);
            info->mode = "hybrid";
            info->best_cosine = nv > 0 ? vh[0].score : 0;
        }
    }
    int n;
    if (nv > 0) {
        n = search_fuse_rrf(kh, nk, vh, nv, 60, k, fused);
    } else {
        n = CN_MIN(nk, k);
        memcpy(fused, kh, sizeof *fused * (size_t)n);
    }
    // passage details for the winners (keyword hits already have them)
    int64_t *ids = cn_arena_alloc(a, sizeof *ids * (size_t)(n + 1));
    store_hit *hits = cn_arena_alloc(a, sizeof *hits * (size_t)(n + 1));
    if (!ids || !hits)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        ids[i] = fused[i].id;
    if (n > 0 && (rc = store_get_passages(l->st, ids, n, a, hits, err)) < 0)
        return rc;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!hits[i].text)
            continue; /* removed since the vectors were loaded */
        out[m++] = (lib_result){hits[i].passage_id, hits[i].doc_id, hits[i].path, hits[i].title,
                                hits[i].page_start, hits[i].page_end,
                                cited_page(l, &hits[i], query, a), hits[i].text,
                                nv > 0 ? fused[i].score : kw[i].score,
                                cited_locator(&hits[i], query, a), hits[i].ocr, hits[i].ocr_conf};
    }
    return m;
}

bool lib_not_found(int n, const lib_search_info *info)
{
    if (n <= 0)
        return true;
    if (strncmp(info->mode, "hybrid", 6) == 0) /* also "hybrid + rerank" */
        return info->n_keyword == 0 && info->best_cosine < LIB_MIN_COSINE;
    return info->n_keyword == 0 || info->absent >= LIB_MAX_ABSENT;
}

void lib_not_found_text(const lib_search_info *info, cn_buf *out)
{
    if (info->missing[0])
        cn_buf_printf(out, "Not found in your documents: no page mentions %s.", info->missing);
    else
        cn_buf_printf(out, "Nothing in your library matches this question.");
}

json_t *lib_result_json(const lib_result *r)
{
    const char *b = strrchr(r->path, '/');
    json_t *o = json_object();
    json_object_set_new(o, "doc", json_string(r->title ? r->title : b ? b + 1 : r->path));
    json_object_set_new(o, "doc_id", json_integer(r->doc_id));
    json_object_set_new(o, "path", json_string(r->path));
    json_object_set_new(o, "page", json_integer(r->page));
    json_object_set_new(o, "page_start", json_integer(r->page_start));
    json_object_set_new(o, "page_end", json_integer(r->page_end));
    json_object_set_new(o, "locator", r->locator ? json_string(r->locator) : json_null());
    json_object_set_new(o, "ocr", json_boolean(r->ocr));
    if (r->ocr)
        json_object_set_new(o, "ocr_confidence", json_real(r->ocr_conf));
    json_object_set_new(o, "score", json_real(r->score));
    json_object_set_new(o, "text", json_string(r->text));
    return o;
}

int lib_index_progress(lib *l, const char *model_path, int threads, int64_t *done,
                       int64_t *total, cn_err *err)
{
    int rc = lib_use_encoder(l, model_path, threads, err);
    return rc ? rc : store_embedding_progress(l->st, l->enc_name, done, total, err);
}

void lib_reload_vectors(lib *l)
{
    vectors_unref(l->vs);
    l->vs = NULL;
    if (l->shared) { /* the others let go of the old snapshot at their next search */
        pthread_mutex_lock(&l->shared->mu);
        vectors_unref(l->shared->cur);
        l->shared->cur = NULL;
        pthread_mutex_unlock(&l->shared->mu);
    }
}
