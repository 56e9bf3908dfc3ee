/*
** libapi.c: the library endpoints the web UI uses beyond the model APIs:
** documents (list, remove), search, ask and status. Uploads are in
** upload.c, the model manager's endpoints in modelapi.c, the handles they
** borrow in libpool.c.
*/
#include "server/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- documents ------------------------------------------------------------- */

typedef struct docs_ctx {
    json_t *arr;
    store *st;
} docs_ctx;

static int doc_json(void *ctx, const store_doc_info *d)
{
    docs_ctx *dc = ctx;
    json_t *o = json_object();
    const char *b = strrchr(d->path, '/');
    json_object_set_new(o, "id", json_integer(d->id));
    json_object_set_new(o, "name", json_string(b ? b + 1 : d->path));
    json_object_set_new(o, "path", json_string(d->path));
    json_object_set_new(o, "title", d->title ? json_string(d->title) : json_null());
    json_object_set_new(o, "kind", json_string(d->kind ? d->kind : ""));
    json_object_set_new(o, "size", json_integer(d->size));
    json_object_set_new(o, "pages", json_integer(d->n_pages));
    json_object_set_new(o, "passages", json_integer(d->n_passages));
    json_object_set_new(o, "status", json_string(d->failed ? "failed" : "indexed"));
    json_object_set_new(o, "error", d->failed && d->error ? json_string(d->error) : json_null());
    json_object_set_new(o, "indexed_at", json_integer(d->indexed_at));
    store_ocr_counts oc = {0};
    cn_err oe = {0};
    if (!d->failed && store_ocr_count(dc->st, d->id, &oc, &oe) == CN_OK &&
        (oc.done || oc.pending || oc.failed))
        json_object_set_new(o, "ocr", lib_ocr_counts_json(&oc));
    json_array_append_new(dc->arr, o);
    return 0;
}

int srv_lib_docs(srv_req *r)
{
    srv_error e;
    lib *l = srv_lib_acquire(r->s, &e);
    if (!l)
        return srv_reply_error(r, &e);
    json_t *arr = json_array();
    cn_err err = {0};
    docs_ctx dc = {arr, lib_store(l)};
    int rc = store_list(lib_store(l), doc_json, &dc, &err);
    srv_lib_release(r->s, l, false);
    if (rc) {
        json_decref(arr);
        return srv_reply_errorf(r, 500, NULL, "listing documents failed: %s", err.msg);
    }
    json_t *o = json_object();
    json_object_set_new(o, "documents", arr);
    return srv_reply_json(r, 200, o);
}

int srv_lib_remove(srv_req *r)
{
    const char *id_s = r->path + strlen("/api/library/documents/");
    char *end;
    errno = 0;
    long long id = strtoll(id_s, &end, 10);
    if (errno || *end || id <= 0)
        return srv_reply_errorf(r, 400, "id", "'%.40s' is not a document id", id_s);
    srv_error e;
    lib *l = srv_lib_acquire_writer(r->s, srv_lib_wait_ms, &e);
    if (!l)
        return srv_reply_error(r, &e);
    cn_err err = {0};
    bool deleted = false;
    int rc = lib_remove(l, id, NULL, &deleted, &err); /* an uploaded file goes with it */
    srv_lib_release(r->s, l, rc == CN_OK || deleted);
    if (rc == CN_ENOTFOUND)
        return srv_reply_errorf(r, 404, "id", "no document %lld in the library", id);
    if (rc)
        return srv_reply_errorf(r, 500, NULL, "%s", err.msg);
    json_t *o = json_object();
    json_object_set_new(o, "removed", json_integer(id));
    json_object_set_new(o, "file_deleted", json_boolean(deleted));
    return srv_reply_json(r, 200, o);
}

/* ---- search and ask --------------------------------------------------------------- */

typedef struct rr_item {
    float score;
    int index;
} rr_item;

static int by_score(const void *a, const void *b)
{
    const rr_item *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index); /* ties keep the search's order */
}

int srv_rerank_results(srv_req *r, const char *q, lib_result *res, int n, const char **mode,
                       srv_error *e)
{
    srv_worker *w = &r->s->rerank;
    if (!w->kind || n == 0)
        return 0;
    const char **texts = cn_arena_alloc(&r->arena, sizeof *texts * (size_t)n);
    size_t *lens = cn_arena_alloc(&r->arena, sizeof *lens * (size_t)n);
    rr_item *it = cn_arena_alloc(&r->arena, sizeof *it * (size_t)n);
    lib_result *tmp = cn_arena_alloc(&r->arena, sizeof *tmp * (size_t)n);
    if (!texts || !lens || !it || !tmp)
        return srv_fail(e, 500, NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        texts[i] = res[i].text;
        lens[i] = strlen(res[i].text);
    }
    srv_job j;
    srv_job_init(&j, JOB_RERANK);
    j.query = q;
    j.query_len = strlen(q);
    j.texts = texts;
    j.lens = lens;
    j.n_texts = n;
    j.vecs = cn_malloc_array((size_t)n, sizeof *j.vecs);
    j.truncated = cn_calloc((size_t)n, sizeof(bool));
    int ret = 0;
    if (!j.vecs || !j.truncated) {
        ret = srv_fail(e, 500, NULL, "out of memory");
    } else if (srv_job_submit(w, &j)) {
        ret = srv_fail(e, 429, NULL, "the %s queue is full (%d waiting); retry shortly", w->name,
                       w->cap);
    } else if (!srv_job_wait(w, &j, r)) {
        ret = 1; /* the client went away */
    } else if (j.rc) {
        ret = srv_fail(e, 500, NULL, "reranking failed: %s", j.err.msg);
    } else {
        for (int i = 0; i < n; i++)
            it[i] = (rr_item){j.vecs[i], i};
        qsort(it, (size_t)n, sizeof *it, by_score);
        for (int i = 0; i < n; i++) {
            tmp[i] = res[it[i].index];
            tmp[i].score = it[i].score;
        }
        memcpy(res, tmp, sizeof *res * (size_t)n);
        *mode = !strcmp(*mode, "hybrid") ? "hybrid + rerank" : "keyword + rerank";
    }
    free(j.vecs);
    free(j.truncated);
    srv_job_free(&j);
    return ret;
}

int srv_lib_search(srv_req *r)
{
    json_t *body;
    srv_error e;
    if (srv_parse_body(r->body.data, r->body.len, &r->s->o.lim, &body, &e))
        return srv_reply_error(r, &e);
    json_t *q = json_object_get(body, "query"), *k = json_object_get(body, "k");
    int ret;
    if (!json_is_string(q) || !*json_string_value(q)) {
        ret = srv_reply_errorf(r, 400, "query", "query: expected a non-empty string");
    } else if (k && (!json_is_integer(k) || json_integer_value(k) < 1 ||
                     json_integer_value(k) > 50)) {
        ret = srv_reply_errorf(r, 400, "k", "k: expected an integer from 1 to 50");
    } else {
        lib *l = srv_lib_acquire(r->s, &e);
        if (!l) {
            json_decref(body);
            return srv_reply_error(r, &e);
        }
        lib_result res[CN_MAX(50, SRV_RERANK_CANDIDATES)];
        lib_search_info info;
        cn_err err = {0};
        int want = k ? (int)json_integer_value(k) : 5;
        /* with a reranker, it picks the best of more candidates */
        lib_search_opts so = {.k = r->s->rerank.kind ? CN_MAX(want, SRV_RERANK_CANDIDATES) : want,
                              .embed_model = r->s->o.embed_model, .threads = r->s->o.threads};
        int n = lib_search(l, json_string_value(q), &so, &r->arena, res, &info, &err);
        srv_lib_release(r->s, l, false); /* the results' strings live in r->arena */
        int rr = n > 0 ? srv_rerank_results(r, json_string_value(q), res, n, &info.mode, &e) : 0;
        n = CN_MIN(n, want);
        json_t *o = json_object(), *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, lib_result_json(&res[i]));
        if (rr) {
            json_decref(o);
            json_decref(arr);
            json_decref(body);
            return rr > 0 ? MHD_NO : srv_reply_error(r, &e);
        }
        if (n < 0) {
            json_decref(o);
            json_decref(arr);
            ret = srv_reply_errorf(r, 500, NULL, "search failed: %s", err.msg);
        } else {
            json_object_set_new(o, "mode", json_string(info.mode));
            json_object_set_new(o, "results", arr);
            ret = srv_reply_json(r, 200, o);
        }
    }
    json_decref(body);
    return ret;
}

int srv_lib_ask(srv_req *r)
{
    json_t *body;
    srv_error e;
    if (srv_parse_body(r->body.data, r->body.len, &r->s->o.lim, &body, &e))
        return srv_reply_error(r, &e);
    json_t *q = json_object_get(body, "question"), *st = json_object_get(body, "stream");
    if (!json_is_string(q) || !*json_string_value(q)) {
        json_decref(body);
        return srv_reply_errorf(r, 400, "question", "question: expected a non-empty string");
    }
    if (st && !json_is_boolean(st)) {
        json_decref(body);
        return srv_reply_errorf(r, 400, "stream", "stream: expected a boolean");
    }
    /* the same path as the OpenAI chat with model "cairn-library" */
    srv_gen_req req = {.root = body, .model = SRV_LIBRARY_MODEL, .n_msgs = 1,
                       .max_tokens = r->s->o.lim.default_tokens, .temperature = -1, .top_p = -1,
                       .stream = json_is_true(st)};
    req.msgs = cn_arena_alloc(&r->arena, sizeof *req.msgs);
    if (!req.msgs) {
        json_decref(body);
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    }
    req.msgs[0] = (tok_chat_msg){"user", json_string_value(q)};
    return srv_generate(r, &req, DIALECT_OPENAI_CHAT);
}

/* ---- status ---------------------------------------------------------------------- */

int srv_status(srv_req *r)
{
    srv *s = r->s;
    srv_error e;
    lib *l = srv_lib_acquire(s, &e);
    if (!l)
        return srv_reply_error(r, &e);
    store_stats st = {0};
    cn_err err = {0};
    int64_t done = 0, total = 0;
    int rc = store_stats_get(lib_store(l), &st, &err);
    if (!rc && s->embed.kind)
        rc = lib_index_progress(l, s->o.embed_model, s->o.threads, &done, &total, &err);
    json_t *o = json_object(), *lb = json_object(), *models = json_array();
    json_object_set_new(o, "version", json_string(SRV_VERSION));
    json_object_set_new(lb, "home", json_string(lib_home(l)));
    json_object_set_new(lb, "encrypted", json_boolean(lib_encrypted(l, NULL)));
    srv_lib_release(s, l, false);
    if (rc) {
        json_decref(o);
        json_decref(lb);
        json_decref(models);
        return srv_reply_errorf(r, 500, NULL, "library status failed: %s", err.msg);
    }
    json_object_set_new(lb, "documents", json_integer(st.n_documents));
    json_object_set_new(lb, "failed", json_integer(st.n_failed));
    json_object_set_new(lb, "pages", json_integer(st.n_pages));
    json_object_set_new(lb, "passages", json_integer(st.n_passages));
    json_object_set_new(lb, "embedded_passages", json_integer(done));
    json_object_set_new(o, "library", lb);
    json_t *rem = json_array(); /* the remotes requests may name: the UI offers them */
    for (int i = 0; i < s->o.n_allow_remote; i++)
        json_array_append_new(rem, json_string(s->o.allow_remote[i]));
    json_object_set_new(o, "remotes", rem);
    json_object_set_new(o, "watch", srv_watch_json(s));
    json_object_set_new(o, "updates", srv_updates_json(s));
    const char *level, *why;
    char buf[256];
    if (s->chat.kind) {
        level = "answers";
        snprintf(buf, sizeof buf, "language model %s writes answers with citations%s",
                 s->chat_name, s->embed.kind ? "; hybrid search" : "; keyword search only (no "
                 "embedding model)");
        why = buf;
    } else if (s->embed.kind) {
        level = "hybrid";
        snprintf(buf, sizeof buf, "embedding model %s: hybrid search (%lld of %lld passages "
                 "have vectors); answers are quoted, no language model", s->embed_name,
                 (long long)done, (long long)total);
        why = buf;
    } else {
        level = "keyword";
        why = "no models: keyword search and quoted (extractive) answers; an embedding model "
              "adds hybrid search, a language model written answers (download them under "
              "Models: each is in use as soon as it lands)";
    }
    json_object_set_new(o, "level", json_string(level));
    json_object_set_new(o, "why", json_string(why));
    srv_worker *ws[2] = {&s->chat, &s->embed};
    for (int i = 0; i < 2; i++) {
        if (ws[i]->kind)
            json_array_append_new(models, srv_worker_json(ws[i]));
    }
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "cores", json_integer(cn_physical_cores()));
    return srv_reply_json(r, 200, o);
}
