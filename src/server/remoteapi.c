/*
** remoteapi.c: grounded answers from a model elsewhere, through the server
** (issue 17). A request reaches a remote only when it names it -- model
** "remote:NAME" -- and the server was started with --allow-remote NAME:
** both are the user's consent. The passages are this server's (its search,
** or the ones the client chose after seeing them: "cairn_passages", the
** web UI's dialog); the remote's answer streams through the same job
** machinery as a local model's, fed by a thread of its own, with its
** citations checked against the passages sent. Every call is in the audit
** log.
*/
#include "server/srv_int.h"
#include "remote/remote.h"

#include <stdlib.h>
#include <string.h>

int srv_remote_pick(srv *s, const char *model, rmt_endpoint *ep, srv_error *e)
{
    if (!model || strncmp(model, "remote:", 7))
        return 0;
    const char *name = model + 7;
    bool allowed = false;
    for (int i = 0; i < s->o.n_allow_remote && !allowed; i++)
        allowed = !strcmp(s->o.allow_remote[i], name);
    if (!allowed)
        return srv_fail(e, 403, "model", "remote %.64s is not allowed here: nothing is sent "
                        "elsewhere unless the server was started with --allow-remote %.64s",
                        name, name);
    cn_err err = {0};
    if (rmt_get(name, ep, &err))
        return srv_fail(e, 404, "model", "%s", err.msg);
    return 1;
}

/* The question and the passages as they may leave: the settings' redact
** patterns applied (copies in r's arena: src keeps the originals, which the
** client sees). -1 with e filled: nothing may be sent. */
static int redacted(srv_req *r, const char *q, const rag_source *src, int n, const char **rq,
                    rag_source *out, int *count, srv_error *e)
{
    rmt_redactor *red = NULL;
    cn_err err = {0};
    if (rmt_redactor_load(&red, &err))
        return srv_fail(e, 500, NULL, "%s", err.msg);
    *count = 0;
    int k, rc = 0;
    for (int i = -1; i < n && !rc; i++) {
        char *t = rmt_redact(red, i < 0 ? q : src[i].text, &k);
        char *a = t ? cn_arena_strndup(&r->arena, t, strlen(t)) : NULL;
        free(t);
        if (!a) {
            rc = srv_fail(e, 500, NULL, "redacting: out of memory; nothing sent");
            break;
        }
        *count += k;
        if (i < 0) {
            *rq = a;
        } else {
            out[i] = src[i];
            out[i].text = a;
        }
    }
    rmt_redactor_free(red);
    return rc;
}

/* ---- the thread that plays the worker ------------------------------------------ */

typedef struct remote_run {
    srv *s;
    rmt_endpoint ep;
    char *body;
    size_t len;
    srv_job *j;
    json_t *pages; /* for the audit log: doc, page, bytes of each passage sent */
} remote_run;

static int on_text(void *ctx, const char *t, size_t n)
{
    srv_job *j = ctx;
    pthread_mutex_lock(&j->mu);
    bool stop = atomic_load(&j->cancel);
    if (!t) { /* asked whether the answer is still wanted */
        pthread_mutex_unlock(&j->mu);
        return stop;
    }
    if (!stop && rag_cite_feed(&j->cite, t, n, &j->text))
        j->overflow = stop = true;
    j->st.n_gen++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static void *remote_thread(void *arg)
{
    remote_run *rr = arg;
    srv_job *j = rr->j;
    cn_err err = {0};
    rmt_result res;
    double t0 = cn_now();
    int rc = rmt_chat(&rr->ep, rr->body, rr->len, on_text, j, &res, &err);
    cn_err aerr = {0};
    if (rmt_audit_call(rr->s->home, &rr->ep, "serve", json_incref(rr->pages), &res,
                       rc && rc != CN_ECANCELED ? err.msg : NULL, &aerr))
        fprintf(stderr, "cairn serve: the remote audit log: %s\n", aerr.msg);
    pthread_mutex_lock(&j->mu);
    rag_cite_flush(&j->cite, &j->text);
    if (j->overflow && !rc)
        rc = cn_fail(&err, CN_ELIMIT, "the answer grew past this server's limit");
    j->rc = rc == CN_ECANCELED ? CN_OK : rc;
    j->err = err;
    j->st.stop = rc == CN_ECANCELED ? ENG_STOP_CANCEL
                 : !strcmp(res.finish, "length") ? ENG_STOP_LENGTH : ENG_STOP_EOG;
    j->st.t_gen = cn_now() - t0;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    json_decref(rr->pages);
    free(rr->body);
    free(rr);
    return NULL;
}

/* The passages the client chose (ids from /api/remote/preview), into *src. */
static int chosen_passages(srv_req *r, json_t *ids, rag_source **src, int *n, srv_error *e)
{
    size_t k = json_array_size(ids);
    if (!json_is_array(ids) || k == 0 || k > 16)
        return srv_fail(e, 400, "cairn_passages", "cairn_passages: 1 to 16 passage ids");
    int64_t want[16];
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return srv_fail(e, 400, "cairn_passages", "cairn_passages: passage ids (integers)");
        want[i] = json_integer_value(v);
    }
    lib *l = srv_lib_acquire(r->s, e);
    if (!l)
        return -1;
    store_hit hits[16];
    cn_err err = {0};
    int rc = store_get_passages(lib_store(l), want, (int)k, &r->arena, hits, &err);
    srv_lib_release(r->s, l, false);
    if (rc)
        return srv_fail(e, 500, NULL, "reading passages: %s", err.msg);
    rag_source *s = cn_arena_alloc(&r->arena, sizeof *s * k);
    if (!s)
        return srv_fail(e, 500, NULL, "out of memory");
    for (size_t i = 0; i < k; i++) {
        if (!hits[i].text)
            return srv_fail(e, 400, "cairn_passages", "passage %lld is not in the library "
                            "(removed since?)", (long long)want[i]);
        s[i] = (rag_source){hits[i].path, hits[i].title, hits[i].page_start, hits[i].page_end,
                            hits[i].text, hits[i].locator, hits[i].ocr};
    }
    *src = s;
    *n = (int)k;
    return 0;
}

int srv_remote_begin(srv_req *r, const rmt_endpoint *ep, const char *question,
                     const srv_gen_req *req, srv_job *j, rag_source **src_out, int *n_src,
                     pthread_t *th, srv_error *e)
{
    rag_source *src = NULL;
    int n = 0;
    json_t *chosen = json_object_get(req->root, "cairn_passages");
    if (!question || !*question)
        return srv_fail(e, 400, "messages", "no question: the last user message is empty");
    if (chosen) {
        if (chosen_passages(r, chosen, &src, &n, e))
            return -1;
    } else {
        lib_search_info info;
        if (srv_search_sources(r, question, &src, &n, &info, NULL, e))
            return -1;
        if (lib_not_found(n, &info) || !src) { /* nothing to ask about: nothing sent */
            lib_not_found_text(&info, &j->text);
            j->done = true;
            return 0;
        }
    }
    rag_source *sent = cn_arena_alloc(&r->arena, sizeof *sent * (size_t)n);
    const char *rq;
    int n_red;
    if (!sent)
        return srv_fail(e, 500, NULL, "out of memory");
    if (redacted(r, question, src, n, &rq, sent, &n_red, e))
        return -1;
    cn_buf user;
    cn_buf_init(&user, (size_t)16 << 20);
    cn_err err = {0};
    int used = rag_build_user(rq, sent, n, 6000, NULL, NULL, &user, &err);
    if (used <= 0) {
        cn_buf_free(&user);
        return srv_fail(e, 400, "messages", "the passages do not fit a request");
    }
    remote_run *rr = cn_calloc(1, sizeof *rr);
    if (!rr) {
        cn_buf_free(&user);
        return srv_fail(e, 500, NULL, "out of memory");
    }
    rr->s = r->s;
    rr->ep = *ep;
    rr->j = j;
    rr->body = rmt_body(ep, rag_system_prompt, user.data, req->max_tokens, &rr->len);
    cn_buf_free(&user);
    rr->pages = json_array();
    for (int i = 0; i < used; i++) {
        const char *b = strrchr(src[i].path, '/');
        json_array_append_new(rr->pages, json_pack("{s:s, s:i, s:I}", "doc", b ? b + 1 : src[i].path,
                                                   "page", src[i].page_start, "bytes",
                                                   (json_int_t)strlen(sent[i].text)));
    }
    j->use_cite = true;
    rag_cite_init(&j->cite, used, j->used);
    if (!rr->body || pthread_create(th, NULL, remote_thread, rr) != 0) {
        json_decref(rr->pages);
        free(rr->body);
        free(rr);
        return srv_fail(e, 500, NULL, "cannot start the remote request");
    }
    *src_out = src;
    *n_src = used;
    return 0;
}

/* ---- what would be sent: the web UI's consent dialog ------------------------------- */

int srv_remote_preview(srv_req *r)
{
    json_error_t je;
    json_t *o = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    const char *q = json_string_value(json_object_get(o, "question"));
    const char *name = json_string_value(json_object_get(o, "remote"));
    srv_error e;
    rmt_endpoint ep;
    char model[96];
    snprintf(model, sizeof model, "remote:%s", name ? name : "");
    int ret;
    if (!q || !name) {
        ret = srv_reply_errorf(r, 400, NULL, "expected {\"question\": ..., \"remote\": NAME}");
    } else if (srv_remote_pick(r->s, model, &ep, &e) != 1) {
        ret = srv_reply_error(r, &e);
    } else {
        rag_source *src;
        lib_result *res;
        int n;
        lib_search_info info;
        rag_source sent[16];
        const char *rq = q;
        int n_red = 0;
        if (srv_search_sources(r, q, &src, &n, &info, &res, &e) ||
            redacted(r, q, src, CN_MIN(n, 16), &rq, sent, &n_red, &e)) {
            ret = srv_reply_error(r, &e);
        } else {
            json_t *ps = json_array();
            bool nf = lib_not_found(n, &info);
            for (int i = 0; i < n && !nf; i++) {
                const char *b = strrchr(src[i].path, '/');
                json_array_append_new(ps, json_pack("{s:I, s:i, s:s, s:i, s:I, s:s}", "id",
                                                    (json_int_t)res[i].passage_id, "n", i + 1,
                                                    "doc", b ? b + 1 : src[i].path, "page",
                                                    src[i].page_start, "bytes",
                                                    (json_int_t)strlen(sent[i].text), "text",
                                                    sent[i].text));
            }
            /* the question and passages as they would leave: redacted */
            ret = srv_reply_json(r, 200, json_pack("{s:{s:s, s:s, s:s}, s:s, s:o, s:b, s:i}",
                                                   "remote", "name", ep.name, "url", ep.base_url,
                                                   "model", ep.model, "question", rq, "passages",
                                                   ps, "not_found", nf, "redacted", n_red));
        }
    }
    json_decref(o);
    return ret;
}
