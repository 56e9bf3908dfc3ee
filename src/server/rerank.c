/*
** rerank.c: POST /v1/rerank in the shape llama.cpp's server and Jina/Cohere
** clients use: {model, query, documents, top_n, return_documents} in,
** {model, results: [{index, relevance_score[, document]}], usage} out, best
** first. Documents may be strings or {"text": ...} objects (Jina/Cohere).
** The scores are the cross-encoder's raw logits, as llama.cpp returns them.
*/
#include "server/srv_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct rr_item {
    int index;
    float score;
} rr_item;

static int by_score(const void *a, const void *b)
{
    const rr_item *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

typedef struct rr_req {
    json_t *root;
    const char *model, *query;
    size_t query_len;
    const char **docs;
    size_t *lens;
    int n, top_n;
    bool return_documents;
} rr_req;

static int parse(srv_req *r, rr_req *q, srv_error *e)
{
    const srv_limits *lim = &r->s->o.lim;
    memset(q, 0, sizeof *q);
    if (srv_parse_body(r->body.data, r->body.len, lim, &q->root, e))
        return -1;
    json_t *m = json_object_get(q->root, "model");
    if (m && !json_is_null(m) && !json_is_string(m))
        return srv_fail(e, 400, "model", "model: expected a string");
    q->model = json_string_value(m);
    json_t *qu = json_object_get(q->root, "query");
    if (!json_is_string(qu))
        return srv_fail(e, 400, "query", "query: required, a string");
    q->query = json_string_value(qu);
    q->query_len = json_string_length(qu);
    json_t *d = json_object_get(q->root, "documents");
    if (!json_is_array(d) || json_array_size(d) == 0)
        return srv_fail(e, 400, "documents", "documents: required, a non-empty array");
    size_t n = json_array_size(d);
    if (n > (size_t)lim->max_inputs)
        return srv_fail(e, 400, "documents", "documents: %zu documents; the limit is %d", n,
                        lim->max_inputs);
    q->docs = cn_arena_alloc(&r->arena, sizeof *q->docs * n);
    q->lens = cn_arena_alloc(&r->arena, sizeof *q->lens * n);
    if (!q->docs || !q->lens)
        return srv_fail(e, 413, "documents", "documents: too large");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(d, i);
        if (json_is_object(s))
            s = json_object_get(s, "text");
        if (!json_is_string(s))
            return srv_fail(e, 400, "documents", "documents[%zu]: expected a string or "
                            "{\"text\": string}", i);
        q->docs[i] = json_string_value(s);
        q->lens[i] = json_string_length(s);
    }
    q->n = (int)n;
    q->top_n = q->n;
    json_t *t = json_object_get(q->root, "top_n");
    if (t && !json_is_null(t)) {
        if (!json_is_integer(t) || json_integer_value(t) < 1)
            return srv_fail(e, 400, "top_n", "top_n: expected a positive integer");
        q->top_n = (int)CN_MIN(json_integer_value(t), (json_int_t)q->n);
    }
    json_t *rd = json_object_get(q->root, "return_documents");
    if (rd && !json_is_null(rd) && !json_is_boolean(rd))
        return srv_fail(e, 400, "return_documents", "return_documents: expected true or false");
    q->return_documents = json_is_true(rd);
    return 0;
}

/* The results array, best first, top_n of them; NULL when out of memory. */
static json_t *results(const rr_req *q, const float *scores)
{
    rr_item *it = cn_malloc_array((size_t)q->n, sizeof *it);
    json_t *arr = json_array();
    bool ok = it && arr;
    for (int i = 0; ok && i < q->n; i++)
        it[i] = (rr_item){i, scores[i]};
    if (ok)
        qsort(it, (size_t)q->n, sizeof *it, by_score);
    for (int i = 0; ok && i < q->top_n; i++) {
        json_t *o = json_object();
        ok = o && !json_object_set_new(o, "index", json_integer(it[i].index)) &&
             !json_object_set_new(o, "relevance_score", json_real(it[i].score));
        if (ok && q->return_documents) {
            json_t *doc = json_object();
            ok = doc && !json_object_set_new(o, "document", doc) &&
                 !json_object_set_new(doc, "text",
                                      json_stringn(q->docs[it[i].index], q->lens[it[i].index]));
        }
        if (!o || json_array_append_new(arr, o))
            ok = false;
    }
    free(it);
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int srv_rerank(srv_req *r)
{
    srv *s = r->s;
    rr_req q;
    srv_error e;
    if (parse(r, &q, &e)) {
        json_decref(q.root);
        return srv_reply_error(r, &e);
    }
    srv_worker *w = &s->rerank;
    int ret;
    if (!w->kind) {
        json_decref(q.root);
        return srv_reply_errorf(r, 400, "model", "this server has no reranker (start it with "
                                "--rerank-model FILE)");
    }
    if (q.model && *q.model && strcmp(q.model, s->rerank_name) &&
        !(!strncmp(q.model, s->rerank_name, strlen(s->rerank_name)) &&
          !strcmp(q.model + strlen(s->rerank_name), ":latest"))) {
        srv_fail(&e, 404, "model", "model '%.100s' is not this server's reranker (%s)", q.model,
                 s->rerank_name);
        e.code = "model_not_found";
        json_decref(q.root);
        return srv_reply_error(r, &e);
    }
    srv_job j;
    srv_job_init(&j, JOB_RERANK);
    j.query = q.query;
    j.query_len = q.query_len;
    j.texts = q.docs;
    j.lens = q.lens;
    j.n_texts = q.n;
    j.vecs = cn_malloc_array((size_t)q.n, sizeof *j.vecs);
    j.truncated = cn_calloc((size_t)q.n, sizeof(bool));
    if (!j.vecs || !j.truncated) {
        ret = srv_reply_errorf(r, 500, NULL, "out of memory");
    } else if (srv_job_submit(w, &j)) {
        ret = srv_reply_busy(r, w);
    } else if (!srv_job_wait(w, &j, r)) {
        ret = MHD_NO; /* the client went away */
    } else if (j.rc) {
        ret = srv_reply_errorf(r, j.rc == CN_ELIMIT ? 413 : 500, "documents", "%s", j.err.msg);
    } else {
        json_t *res = results(&q, j.vecs);
        long long tokens = 0; /* usage: the query once per pair, plus each document */
        int qt = tok_encode(w->v, q.query, q.query_len, false, false, NULL, 0, NULL);
        for (int i = 0; i < q.n; i++) {
            int k = tok_encode(w->v, q.docs[i], q.lens[i], false, false, NULL, 0, NULL);
            tokens += CN_MIN((long long)CN_MAX(qt, 0) + CN_MAX(k, 0) + 4, (long long)w->n_ctx);
        }
        json_t *o = json_object();
        if (!res || !o) {
            json_decref(res);
            json_decref(o);
            ret = srv_reply_errorf(r, 500, NULL, "out of memory building the rerank reply");
        } else {
            json_object_set_new(o, "model", json_string(w->name));
            json_object_set_new(o, "object", json_string("list"));
            json_object_set_new(o, "results", res);
            json_t *u = json_object();
            json_object_set_new(u, "prompt_tokens", json_integer(tokens));
            json_object_set_new(u, "total_tokens", json_integer(tokens));
            json_object_set_new(o, "usage", u);
            srv_req_tokens(r, (int)CN_MIN(tokens, 1 << 30));
            ret = srv_reply_json(r, 200, o);
        }
    }
    free(j.vecs);
    free(j.truncated);
    srv_job_free(&j);
    json_decref(q.root);
    return ret;
}
