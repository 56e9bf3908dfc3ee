/*
** docsapi.c: whole-document work for the web UI and API clients, streamed
** as NDJSON (progress.c): a document's summary (lib_summarize) and fields
** extracted from documents with citations (lib_extract). Both run in a
** thread of their own with a library handle of their own (they take
** minutes; the handles of the pool serve searches meanwhile), and speak to
** the language model through its worker's queue like any other request,
** so a chat and a summary take turns on the model and neither blocks the
** other for long.
*/
#include "server/srv_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the chat model as lib_llm, through its worker ------------------------ */

typedef struct srv_llm {
    srv *s;
    srv_bg *g;       /* its client leaving (g->cancel) stops the job */
    lib_llm api;
    int32_t *ids;    /* for counting */
    int cap;
    char name[512];
} srv_llm;

static int sl_count(void *ctx, const char *s, size_t n)
{
    srv_llm *c = ctx;
    int k = tok_encode(c->s->chat.v, s, n, false, false, c->ids, c->cap, NULL);
    return k < 0 ? (int)(n / 2 + 1) : k;
}

static int sl_chat(void *ctx, const char *system, const char *user, int max_tokens,
                   const struct gr_grammar *grammar,
                   void (*text)(void *tctx, const char *s, size_t n), void *tctx, cn_buf *out,
                   cn_err *err)
{
    srv_llm *c = ctx;
    srv_worker *w = &c->s->chat;
    tok_chat_msg msgs[2] = {{"system", system}, {"user", user}};
    srv_gen_req req = {.msgs = msgs, .n_msgs = 2, .max_tokens = max_tokens, .temperature = 0,
                       .has_seed = true};
    srv_job j;
    srv_job_init(&j, JOB_GENERATE);
    srv_error e = {0};
    int rc = CN_OK;
    if (srv_prepare_chat(w, &req, &j, &e)) {
        rc = cn_fail(err, CN_ELIMIT, "%s", e.msg);
        goto done;
    }
    j.go.grammar = grammar;
    j.go.sampler.temp = 0;
    j.go.sampler.repeat_penalty = 1.1f; /* see cli/llm.c: a small model loops otherwise */
    /* wait for a place in the queue rather than fail: a summary is a batch job */
    while (srv_job_submit(w, &j) == CN_ELIMIT) {
        if (c->g->cancel || atomic_load(&c->s->stopping)) {
            rc = cn_fail(err, CN_ECANCELED, "cancelled");
            goto done;
        }
        usleep(200 * 1000);
    }
    size_t seen = 0;
    pthread_mutex_lock(&j.mu);
    while (!j.done) {
        srv_cond_wait_ms(&j.cv, &j.mu, 100);
        if (text && j.text.len > seen) {
            text(tctx, j.text.data + seen, j.text.len - seen);
            seen = j.text.len;
        }
        if (!j.done && (c->g->cancel || atomic_load(&c->s->stopping))) {
            pthread_mutex_unlock(&j.mu);
            srv_job_cancel(w, &j);
            rc = cn_fail(err, CN_ECANCELED, "cancelled");
            goto done;
        }
    }
    pthread_mutex_unlock(&j.mu);
    if (text && j.text.len > seen)
        text(tctx, j.text.data + seen, j.text.len - seen);
    if (j.rc)
        rc = cn_fail(err, j.rc, "%s", j.err.msg);
    else if (cn_buf_append(out, j.text.data ? j.text.data : "", j.text.len))
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
done:
    srv_job_free(&j);
    return rc;
}

static int sl_init(srv_llm *c, srv *s, srv_bg *g)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->g = g;
    c->cap = s->chat.n_ctx * 4 + 64;
    c->ids = cn_malloc_array((size_t)c->cap, sizeof *c->ids);
    if (!c->ids)
        return CN_ENOMEM;
    struct stat st = {0};
    stat(s->chat.path, &st);
    const char *base = strrchr(s->chat.path, '/');
    /* the same key as the CLI's (cli/llm.c): a summary begun in one is
    ** taken up by the other */
    snprintf(c->name, sizeof c->name, "%s:%lld:%lld", base ? base + 1 : s->chat.path,
             (long long)st.st_size, (long long)st.st_mtime);
    c->api = (lib_llm){c->name, s->chat.n_ctx, sl_count, sl_chat, c};
    return CN_OK;
}

/* ---- summaries ------------------------------------------------------------------ */

static void on_sum(void *ctx, const lib_sum_event *ev)
{
    srv_bg *g = ctx;
    if (ev->kind == LIB_SUM_STEP)
        srv_bg_line(g, json_pack("{s:s, s:i, s:i, s:i, s:[ii], s:b, s:f}", "event", "step", "done",
                                 ev->done, "total", ev->total, "level", ev->level, "pages",
                                 ev->first, ev->last, "cached", ev->cached, "eta_s", ev->eta_s));
    else
        srv_bg_line(g, json_pack("{s:s, s:s%}", "event", "text", "text", ev->text, ev->len));
}

static void *summarize_thread(void *arg)
{
    srv_bg *g = arg;
    srv *s = g->s;
    cn_err err = {0};
    lib *l = NULL;
    srv_llm m = {0};
    bool model = s->chat.kind == JOB_GENERATE && !g->extractive;
    lib_summary out = {0};
    int rc = lib_open(&l, s->home, &err);
    if (!rc && model && sl_init(&m, s, g))
        rc = cn_fail(&err, CN_ENOMEM, "out of memory");
    if (!rc)
        rc = lib_summarize(l, g->ids[0], g->length, model ? &m.api : NULL, on_sum, g, &out, &err);
    json_t *fin;
    if (rc) {
        fin = json_pack("{s:s, s:s}", "event", "error", "error", err.msg);
    } else {
        fin = lib_summary_json(&out);
        json_object_set_new(fin, "event", json_string("summary"));
        json_object_set_new(fin, "model", model ? json_string(s->chat_name) : json_null());
    }
    lib_summary_free(&out);
    free(m.ids);
    lib_close(l);
    srv_bg_finish(g, fin);
    return NULL;
}

/* The request body as a JSON object, or NULL after replying 400. */
static json_t *body_object(srv_req *r, int *reply)
{
    json_error_t je;
    json_t *o = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        *reply = srv_reply_errorf(r, 400, NULL, "the body must be a JSON object%s%s",
                                  je.text[0] ? ": " : "", je.text);
        return NULL;
    }
    return o;
}

int srv_lib_summarize(srv_req *r)
{
    int reply;
    json_t *o = body_object(r, &reply);
    if (!o)
        return reply;
    json_t *d = json_object_get(o, "document"), *len = json_object_get(o, "length");
    json_t *ex = json_object_get(o, "extractive");
    int length = len ? lib_sum_length_of(json_is_string(len) ? json_string_value(len) : "") : 1;
    if (!json_is_integer(d) || json_integer_value(d) <= 0)
        reply = srv_reply_errorf(r, 400, "document", "document: expected a document id");
    else if (length < 0)
        reply = srv_reply_errorf(r, 400, "length", "length: expected short, medium or long");
    else if (ex && !json_is_boolean(ex))
        reply = srv_reply_errorf(r, 400, "extractive", "extractive: expected true or false");
    else
        reply = -1;
    if (reply >= 0) {
        json_decref(o);
        return reply;
    }
    srv_bg *g = srv_bg_new(r->s);
    if (!g) {
        json_decref(o);
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    }
    g->ids[0] = json_integer_value(d);
    g->n_ids = 1;
    g->length = length;
    g->extractive = json_is_true(ex);
    json_decref(o);
    return srv_bg_start(r, g, summarize_thread);
}

/* ---- extraction ------------------------------------------------------------------ */

static void on_field(void *ctx, const char *doc, const char *field, int done, int total)
{
    srv_bg_line(ctx, json_pack("{s:s, s:s, s:s, s:i, s:i}", "event", "field", "document", doc,
                               "field", field, "done", done, "total", total));
}

static void *extract_thread(void *arg)
{
    srv_bg *g = arg;
    srv *s = g->s;
    cn_err err = {0};
    lib *l = NULL;
    srv_llm m = {0};
    int rc = lib_open(&l, s->home, &err);
    if (!rc && sl_init(&m, s, g))
        rc = cn_fail(&err, CN_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; !rc && i < g->n_ids && !g->cancel; i++) {
        json_t *res = NULL;
        cn_err e = {0};
        /* one document that fails does not stop the others: its line says why */
        if (lib_extract(l, g->ids[i], g->schema, 0, &m.api, on_field, g, &res, &e) == CN_OK) {
            json_object_set_new(res, "event", json_string("result"));
            json_object_set_new(res, "id", json_integer(g->ids[i]));
            srv_bg_line(g, res);
            n++;
        } else if (e.code == CN_ECANCELED) {
            rc = e.code;
            err = e;
        } else {
            srv_bg_line(g, json_pack("{s:s, s:I, s:s}", "event", "error", "id",
                                     (json_int_t)g->ids[i], "error", e.msg));
        }
    }
    json_t *fin = rc ? json_pack("{s:s, s:s}", "event", "error", "error", err.msg)
                     : json_pack("{s:s, s:i, s:s}", "event", "done", "results", n, "model",
                                 s->chat_name);
    free(m.ids);
    lib_close(l);
    srv_bg_finish(g, fin);
    return NULL;
}

int srv_lib_extract(srv_req *r)
{
    int reply;
    json_t *o = body_object(r, &reply);
    if (!o)
        return reply;
    if (r->s->chat.kind != JOB_GENERATE) {
        json_decref(o);
        return srv_reply_errorf(r, 409, NULL, "extraction needs a language model, and this "
                                              "server has none (`cairn models pull` one)");
    }
    json_t *docs = json_object_get(o, "documents"), *schema = json_object_get(o, "schema");
    size_t i;
    json_t *d;
    bool ids_ok = json_is_array(docs) && json_array_size(docs) > 0 &&
                  json_array_size(docs) <= CN_ARRAY_LEN(((srv_bg *)0)->ids);
    json_array_foreach(docs, i, d) ids_ok = ids_ok && json_is_integer(d) && json_integer_value(d) > 0;
    if (!ids_ok) {
        json_decref(o);
        return srv_reply_errorf(r, 400, "documents", "documents: expected 1 to %zu document ids",
                                CN_ARRAY_LEN(((srv_bg *)0)->ids));
    }
    char *text = json_is_object(schema) ? json_dumps(schema, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                        : NULL;
    cn_err err = {0};
    json_t *checked = NULL;
    if (!text || lib_extract_check(text, strlen(text), &checked, &err)) {
        free(text);
        json_decref(o);
        return srv_reply_errorf(r, 400, "schema", "%s", text ? err.msg : "schema: expected an object");
    }
    free(text);
    srv_bg *g = srv_bg_new(r->s);
    if (!g) {
        json_decref(checked);
        json_decref(o);
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    }
    json_array_foreach(docs, i, d) g->ids[g->n_ids++] = json_integer_value(d);
    g->schema = checked;
    json_decref(o);
    return srv_bg_start(r, g, extract_thread);
}
