/*
** openai.c: generation for every dialect (OpenAI chat and completions,
** Ollama chat and generate share one path: srv_generate), the OpenAI
** endpoints, and the grounded "cairn-library" model.
**
** A streamed answer is pulled by MHD from gen_read(): it waits for new text
** from the worker (checking every 100 ms that the client is still there),
** and formats it as the dialect wants: server-sent events ending with
** "data: [DONE]" for OpenAI, one JSON object per line for Ollama.
*/
#include "server/srv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- models ------------------------------------------------------------------ */

static bool same_model(const char *given, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(given, name, n) && (!given[n] || !strcmp(given + n, ":latest"));
}

int srv_pick_model(srv *s, const char *name, bool embedding, srv_worker **w, bool *library,
                   srv_error *e)
{
    *w = NULL;
    *library = false;
    bool has_chat = s->chat.kind != 0, has_embed = s->embed.kind != 0;
    if (!name || !*name) {
        if (embedding ? !has_embed : !has_chat)
            return srv_fail(e, 400, "model", "model: required (this server has no default %s "
                            "model)", embedding ? "embedding" : "language");
        *w = embedding ? &s->embed : &s->chat;
        return 0;
    }
    if (same_model(name, SRV_LIBRARY_MODEL)) {
        if (embedding)
            return srv_fail(e, 400, "model", "model: '%s' answers questions; for embeddings use "
                            "%s", SRV_LIBRARY_MODEL, has_embed ? s->embed_name : "an embedding "
                            "model (start the server with --embed-model)");
        *library = true;
        *w = has_chat ? &s->chat : NULL;
        return 0;
    }
    if (has_chat && same_model(name, s->chat_name)) {
        if (embedding)
            return srv_fail(e, 400, "model", "model: '%s' is a language model, not an embedding "
                            "model", name);
        *w = &s->chat;
        return 0;
    }
    if (has_embed && same_model(name, s->embed_name)) {
        if (!embedding)
            return srv_fail(e, 400, "model", "model: '%s' is an embedding model; it cannot "
                            "write text", name);
        *w = &s->embed;
        return 0;
    }
    srv_fail(e, 404, "model", "model '%.100s' does not exist; this server has %s%s%s%s%s", name,
             has_chat ? s->chat_name : "", has_chat ? ", " : "", has_embed ? s->embed_name : "",
             has_embed ? ", " : "", SRV_LIBRARY_MODEL);
    e->code = "model_not_found";
    return -1;
}

static json_t *model_object(const char *id, const char *path)
{
    struct stat st;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("model"));
    json_object_set_new(o, "created", json_integer(path && stat(path, &st) == 0
                                                       ? (json_int_t)st.st_mtime
                                                       : (json_int_t)time(NULL)));
    json_object_set_new(o, "owned_by", json_string("cairn"));
    return o;
}

int srv_openai_models(srv_req *r)
{
    srv *s = r->s;
    json_t *o = json_object(), *data = json_array();
    json_object_set_new(o, "object", json_string("list"));
    if (s->chat.kind)
        json_array_append_new(data, model_object(s->chat_name, s->chat.path));
    if (s->embed.kind)
        json_array_append_new(data, model_object(s->embed_name, s->embed.path));
    json_array_append_new(data, model_object(SRV_LIBRARY_MODEL, NULL));
    json_object_set_new(o, "data", data);
    return srv_reply_json(r, 200, o);
}

int srv_openai_model(srv_req *r)
{
    srv *s = r->s;
    const char *id = r->path + strlen("/v1/models/");
    if (s->chat.kind && !strcmp(id, s->chat_name))
        return srv_reply_json(r, 200, model_object(s->chat_name, s->chat.path));
    if (s->embed.kind && !strcmp(id, s->embed_name))
        return srv_reply_json(r, 200, model_object(s->embed_name, s->embed.path));
    if (!strcmp(id, SRV_LIBRARY_MODEL))
        return srv_reply_json(r, 200, model_object(SRV_LIBRARY_MODEL, NULL));
    srv_error e;
    srv_fail(&e, 404, "model", "model '%.100s' does not exist", id);
    e.code = "model_not_found";
    return srv_reply_error(r, &e);
}

/* ---- prompts ------------------------------------------------------------------- */

static uint64_t random_seed(void)
{
    static atomic_uint_fast64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull);
    return x;
}

/* Tokenize text for w into j (add BOS as the vocab says, special-token text
** parsed), check it fits the context, and set the generation options. */
static int tokenize_into(srv_worker *w, const srv_gen_req *req, const char *text, size_t len,
                         bool add_bos, srv_job *j, srv_error *e)
{
    int cap = w->n_ctx;
    j->ids = cn_malloc(sizeof *j->ids * (size_t)cap);
    if (!j->ids)
        return srv_fail(e, 500, NULL, "out of memory");
    cn_err err = {0};
    int n = tok_encode(w->v, text, len, add_bos, true, j->ids, cap, &err);
    if (n < 0)
        return srv_fail(e, n == CN_ELIMIT ? 413 : 400, NULL, "%s", err.msg);
    if (n == 0)
        return srv_fail(e, 400, "messages", "the prompt is empty");
    if (n > cap - 1) {
        srv_fail(e, 400, "messages", "the prompt is %d tokens; this model's context holds %d", n,
                 w->n_ctx);
        e->code = "context_length_exceeded";
        return -1;
    }
    j->n_ids = n;
    j->go.n_predict = CN_MIN(req->max_tokens, w->n_ctx - n);
    j->go.sampler = eng_sampler_defaults();
    if (req->temperature >= 0)
        j->go.sampler.temp = (float)req->temperature;
    if (req->top_p > 0)
        j->go.sampler.top_p = (float)req->top_p;
    if (req->top_k > 0)
        j->go.sampler.top_k = req->top_k;
    j->go.sampler.seed = req->has_seed ? req->seed : random_seed();
    for (int i = 0; i < req->n_stop && i < (int)CN_ARRAY_LEN(j->stop); i++)
        j->stop[j->go.n_stop++] = req->stop[i];
    j->go.stop = j->stop;
    j->go.grammar = req->grammar; /* freed with req, after the job */
    return 0;
}

int srv_prepare_chat(srv_worker *w, const srv_gen_req *req, srv_job *j, srv_error *e)
{
    cn_buf b;
    cn_buf_init(&b, (size_t)32 << 20);
    cn_err err = {0};
    if (tok_chat_render(w->family, req->msgs, req->n_msgs, true, &b, &err)) {
        cn_buf_free(&b);
        return srv_fail(e, 400, "messages", "%s", err.msg);
    }
    int rc = tokenize_into(w, req, b.data ? b.data : "", b.len, true, j, e);
    cn_buf_free(&b);
    return rc;
}

int srv_prepare_prompt(srv_worker *w, const srv_gen_req *req, const char *text, bool add_bos,
                       srv_job *j, srv_error *e)
{
    return tokenize_into(w, req, text, strlen(text), add_bos, j, e);
}

/* ---- the grounded model --------------------------------------------------------- */

json_t *srv_citations_json(const rag_source *src, int n, const bool *used)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const char *b = strrchr(src[i].path, '/');
        json_t *c = json_object();
        json_object_set_new(c, "n", json_integer(i + 1));
        json_object_set_new(c, "doc", json_string(b ? b + 1 : src[i].path));
        json_object_set_new(c, "title", src[i].title ? json_string(src[i].title) : json_null());
        json_object_set_new(c, "path", json_string(src[i].path));
        json_object_set_new(c, "page", json_integer(src[i].page_start));
        json_object_set_new(c, "locator",
                            src[i].locator ? json_string(src[i].locator) : json_null());
        json_object_set_new(c, "ocr", json_boolean(src[i].ocr));
        json_object_set_new(c, "cited", json_boolean(used && used[i]));
        json_object_set_new(c, "text", json_string(src[i].text));
        json_array_append_new(arr, c);
    }
    return arr;
}

int srv_search_sources(srv_req *r, const char *question, rag_source **src_out, int *n_src,
                       lib_search_info *info, lib_result **res_out, srv_error *e)
{
    srv *s = r->s;
    *src_out = NULL;
    *n_src = 0;
    if (!question || !*question)
        return srv_fail(e, 400, "messages", "no question: the last user message is empty");
    lib *l = srv_lib_acquire(s, e);
    if (!l)
        return -1;
    enum { K = 4 };
    /* K or, with a reranker, more */
    lib_result *res = cn_arena_alloc(&r->arena, sizeof *res * SRV_RERANK_CANDIDATES);
    cn_err err = {0};
    /* with a reranker, the best K of more candidates */
    lib_search_opts so = {.k = s->rerank.kind ? SRV_RERANK_CANDIDATES : K,
                          .embed_model = s->o.embed_model, .threads = s->o.threads};
    int n = res ? lib_search(l, question, &so, &r->arena, res, info, &err)
                : cn_fail(&err, CN_ENOMEM, "out of memory");
    srv_lib_release(s, l, false); /* the results' strings live in r->arena */
    if (n > 0) {
        int rr = srv_rerank_results(r, question, res, n, &info->mode, e);
        if (rr)
            return rr > 0 ? srv_fail(e, 499, NULL, "the client went away") : -1;
        n = CN_MIN(n, K);
    }
    if (n < 0)
        return srv_fail(e, 500, NULL, "library search failed: %s", err.msg);
    rag_source *src = n > 0 ? cn_arena_alloc(&r->arena, sizeof *src * (size_t)n) : NULL;
    for (int i = 0; i < n && src; i++) {
        /* strings of the results live in r->arena; the passage text is copied
        ** since it is what the citations show */
        src[i] = (rag_source){res[i].path, res[i].title, res[i].page,
                              res[i].page, res[i].text, res[i].locator, res[i].ocr};
    }
    *src_out = src;
    *n_src = src ? n : 0;
    if (res_out)
        *res_out = res;
    return 0;
}

int srv_grounded(srv_req *r, const char *question, const srv_gen_req *req, srv_job *j,
                 rag_source **src_out, int *n_src, srv_error *e)
{
    srv *s = r->s;
    rag_source *src;
    int n;
    lib_search_info info;
    cn_err err = {0};
    *src_out = NULL;
    *n_src = 0;
    if (srv_search_sources(r, question, &src, &n, &info, NULL, e))
        return -1;
    srv_worker *w = &s->chat;
    /* an answer in a shape (response_format, Ollama's format) is the
    ** model's, under the grammar; the texts that stand in for it otherwise
    ** (not found, extractive) are not of that shape: said as errors, never
    ** handed to a client that will parse them */
    if (req->grammar && !w->kind)
        return srv_fail(e, 400, req->grammar_param,
                        "%s: an answer in a JSON shape needs a language model; none is loaded "
                        "(without one the library answers with quoted sentences)",
                        req->grammar_param);
    if (lib_not_found(n, &info) || !src) {
        lib_not_found_text(&info, &j->text);
        if (req->grammar) { /* src lives in the request's arena */
            int rc = srv_fail(e, 422, NULL, "%s", j->text.data ? j->text.data : "not found");
            cn_buf_free(&j->text);
            return rc;
        }
        j->done = true;
        return 0;
    }
    if (!w->kind) { /* no language model: the best sentences, quoted */
        int k = rag_extract(question, src, n, 3, &j->text, j->used);
        if (k <= 0)
            cn_buf_printf(&j->text, "The best passages do not contain sentences that match the "
                                    "question; see the sources.");
        j->done = true;
        *src_out = src;
        *n_src = n;
        return 0;
    }
    /* the passages trimmed to the question as `cairn ask` does by default:
    ** a shorter prompt is a sooner first token */
    rag_trim_opts trim = rag_trim_defaults();
    rag_prompt_info pi;
    int rc = rag_prompt_tokens(w->v, w->family, w->n_ctx, question, src, n, &trim, &j->ids,
                               &j->n_ids, &pi, &err);
    int n_used = pi.n_used;
    if (rc)
        return srv_fail(e, rc == CN_ELIMIT ? 400 : 500, NULL, "%s", err.msg);
    j->go.n_predict = CN_MIN(req->max_tokens, rag_answer_reserve(w->n_ctx));
    j->go.n_predict = CN_MIN(j->go.n_predict, w->n_ctx - j->n_ids);
    j->go.sampler = eng_sampler_defaults();
    j->go.sampler.temp = req->temperature >= 0 ? (float)req->temperature : 0;
    j->go.sampler.seed = req->has_seed ? req->seed : random_seed();
    j->go.lookup = RAG_LOOKUP; /* the same answer, in fewer passes */
    for (int i = 0; i < req->n_stop && i < (int)CN_ARRAY_LEN(j->stop); i++)
        j->stop[j->go.n_stop++] = req->stop[i];
    j->go.stop = j->stop;
    /* JSON asked for: the grammar shapes it, and [n] inside it may be an
    ** array, not a citation (as `cairn ask --schema`) */
    j->go.grammar = req->grammar; /* freed with req, after the job */
    j->use_cite = !req->grammar;
    rag_cite_init(&j->cite, n_used, j->used);
    *src_out = src;
    *n_src = n_used;
    return 0;
}

const char *srv_finish_reason(const srv_job *j)
{
    switch (j->st.stop) {
    case ENG_STOP_LENGTH:
    case ENG_STOP_CONTEXT: return "length";
    case ENG_STOP_CANCEL: return "cancelled";
    default: return "stop";
    }
}

/* ---- one generation, streamed or whole --------------------------------------------- */

typedef struct gen_stream {
    srv_req *r;
    srv_gen_req req;
    int dialect;
    srv_job job;
    srv_worker *w;       /* NULL when the answer was ready at once */
    size_t sent;         /* bytes of job.text already formatted */
    int phase;           /* 0 first chunk, 1 text, 2 ended */
    cn_buf out;          /* formatted bytes not yet handed to MHD */
    size_t out_off;
    char id[48], model[128];
    long created;
    rag_source *src;
    int n_src;
    bool library;
    bool remote;         /* a thread (remoteapi.c) feeds the job from a remote */
    bool joined;
    pthread_t th;
} gen_stream;

/* Wait for the remote's thread (it stops at the next piece once cancel is set). */
static void remote_join(gen_stream *g, bool cancel)
{
    if (!g->remote || g->joined)
        return;
    if (cancel)
        atomic_store(&g->job.cancel, true);
    pthread_join(g->th, NULL);
    g->joined = true;
}

static void gen_free(gen_stream *g)
{
    remote_join(g, true);
    if (g->w && !g->job.done)
        srv_job_cancel(g->w, &g->job);
    srv_job_free(&g->job);
    srv_gen_req_free(&g->req);
    cn_buf_free(&g->out);
    free(g);
}

static bool is_ollama(const gen_stream *g)
{
    return g->dialect == DIALECT_OLLAMA_CHAT || g->dialect == DIALECT_OLLAMA_GENERATE;
}

static bool is_chat(const gen_stream *g)
{
    return g->dialect == DIALECT_OPENAI_CHAT || g->dialect == DIALECT_OLLAMA_CHAT;
}

static void rfc3339_now(char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%09ldZ", ts.tv_nsec);
}

static json_t *usage_json(const srv_job *j)
{
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(j->st.n_prompt));
    json_object_set_new(u, "completion_tokens", json_integer(j->st.n_gen));
    json_object_set_new(u, "total_tokens", json_integer(j->st.n_prompt + j->st.n_gen));
    return u;
}

/* Ollama's final fields: durations in nanoseconds, counts. */
static void ollama_stats(json_t *o, const gen_stream *g)
{
    const srv_job *j = &g->job;
    double total = cn_now() - g->r->t0;
    json_object_set_new(o, "done_reason", json_string(srv_finish_reason(j)));
    json_object_set_new(o, "total_duration", json_integer((json_int_t)(total * 1e9)));
    json_object_set_new(o, "load_duration", json_integer(0));
    json_object_set_new(o, "prompt_eval_count", json_integer(j->st.n_prompt));
    json_object_set_new(o, "prompt_eval_duration", json_integer((json_int_t)(j->st.t_prompt * 1e9)));
    json_object_set_new(o, "eval_count", json_integer(j->st.n_gen));
    json_object_set_new(o, "eval_duration", json_integer((json_int_t)(j->st.t_gen * 1e9)));
}

/* One response object (a chunk when streaming, the whole answer when not):
** text is the delta or the whole text; final adds finish reason, usage and
** citations. */
static json_t *make_object(gen_stream *g, const char *text, size_t len, bool first, bool final,
                           bool streaming)
{
    json_t *o = json_object();
    json_t *t = json_stringn(text, len);
    if (!t)
        t = json_string("");
    if (is_ollama(g)) {
        char ts[64];
        rfc3339_now(ts, sizeof ts);
        json_object_set_new(o, "model", json_string(g->model));
        json_object_set_new(o, "created_at", json_string(ts));
        if (is_chat(g)) {
            json_t *m = json_object();
            json_object_set_new(m, "role", json_string("assistant"));
            json_object_set_new(m, "content", t);
            json_object_set_new(o, "message", m);
        } else {
            json_object_set_new(o, "response", t);
        }
        json_object_set_new(o, "done", json_boolean(final));
        if (final)
            ollama_stats(o, g);
    } else {
        json_object_set_new(o, "id", json_string(g->id));
        json_object_set_new(o, "object",
                            json_string(is_chat(g) ? streaming ? "chat.completion.chunk"
                                                               : "chat.completion"
                                                   : "text_completion"));
        json_object_set_new(o, "created", json_integer(g->created));
        json_object_set_new(o, "model", json_string(g->model));
        json_object_set_new(o, "system_fingerprint", json_string("cairn-" SRV_VERSION));
        json_t *c = json_object(), *choices = json_array();
        json_object_set_new(c, "index", json_integer(0));
        if (is_chat(g)) {
            json_t *m = json_object();
            if (!streaming || first)
                json_object_set_new(m, "role", json_string("assistant"));
            if (!streaming || len || first)
                json_object_set_new(m, "content", t);
            else
                json_decref(t);
            if (!streaming)
                json_object_set_new(m, "refusal", json_null());
            json_object_set_new(c, streaming ? "delta" : "message", m);
        } else {
            json_object_set_new(c, "text", t);
        }
        json_object_set_new(c, "logprobs", json_null());
        json_object_set_new(c, "finish_reason",
                            final ? json_string(srv_finish_reason(&g->job)) : json_null());
        json_array_append_new(choices, c);
        json_object_set_new(o, "choices", choices);
        if (final && (!streaming || !g->req.include_usage))
            json_object_set_new(o, "usage", usage_json(&g->job));
    }
    /* a grounded answer's passages: in the first chunk, before the model
    ** has read them (none cited yet), and in the last with what it cited */
    if ((final || (first && streaming)) && g->library)
        json_object_set_new(o, "citations",
                            srv_citations_json(g->src, g->n_src, final ? g->job.used : NULL));
    return o;
}

static void emit(gen_stream *g, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return;
    if (is_ollama(g))
        cn_buf_printf(&g->out, "%s\n", s);
    else
        cn_buf_printf(&g->out, "data: %s\n\n", s);
    free(s);
}

static void emit_error(gen_stream *g, const char *msg)
{
    json_t *o = json_object();
    if (is_ollama(g)) {
        json_object_set_new(o, "error", json_string(msg));
    } else {
        json_t *e = json_object();
        json_object_set_new(e, "message", json_string(msg));
        json_object_set_new(e, "type", json_string("server_error"));
        json_object_set_new(e, "param", json_null());
        json_object_set_new(e, "code", json_null());
        json_object_set_new(o, "error", e);
    }
    emit(g, o);
}

/* Format what is new since the last call. Called with the job's lock held. */
static void format_new(gen_stream *g)
{
    srv_job *j = &g->job;
    size_t avail = j->text.len - g->sent;
    if (g->phase == 0 && ((!is_ollama(g) && is_chat(g)) || g->library)) {
        /* at once: the role (OpenAI chat), and a grounded answer's sources */
        emit(g, make_object(g, "", 0, true, false, true));
        g->phase = 1;
    }
    g->phase = CN_MAX(g->phase, 1);
    if (avail) {
        emit(g, make_object(g, j->text.data + g->sent, avail, false, false, true));
        g->sent += avail;
    }
    if (j->done) {
        if (j->rc && j->st.stop != ENG_STOP_CANCEL) {
            emit_error(g, j->err.msg[0] ? j->err.msg : cn_strerror(j->rc));
        } else {
            emit(g, make_object(g, "", 0, false, true, true));
            if (!is_ollama(g) && g->req.include_usage) {
                json_t *o = json_object();
                json_object_set_new(o, "id", json_string(g->id));
                json_object_set_new(o, "object", json_string(is_chat(g) ? "chat.completion.chunk"
                                                                        : "text_completion"));
                json_object_set_new(o, "created", json_integer(g->created));
                json_object_set_new(o, "model", json_string(g->model));
                json_object_set_new(o, "choices", json_array());
                json_object_set_new(o, "usage", usage_json(j));
                emit(g, o);
            }
        }
        if (!is_ollama(g))
            cn_buf_printf(&g->out, "data: [DONE]\n\n");
        g->phase = 2;
        g->r->tokens = j->st.n_prompt + j->st.n_gen;
    }
}

static ssize_t gen_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    gen_stream *g = cls;
    (void)pos;
    for (;;) {
        if (g->out_off < g->out.len) {
            size_t n = CN_MIN(max, g->out.len - g->out_off);
            memcpy(buf, g->out.data + g->out_off, n);
            g->out_off += n;
            if (g->out_off == g->out.len)
                g->out.len = g->out_off = 0;
            return (ssize_t)n;
        }
        if (g->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        srv_job *j = &g->job;
        pthread_mutex_lock(&j->mu);
        while (!j->done && j->text.len == g->sent && g->phase != 0) {
            srv_cond_wait_ms(&j->cv, &j->mu, 100);
            if (!j->done && j->text.len == g->sent && srv_client_gone(g->r)) {
                pthread_mutex_unlock(&j->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR; /* gen_done cancels the job */
            }
        }
        format_new(g);
        pthread_mutex_unlock(&j->mu);
    }
}

static void gen_done(void *cls) { gen_free(cls); }

/* The whole answer as one JSON response. */
static int reply_whole(gen_stream *g)
{
    srv_req *r = g->r;
    srv_job *j = &g->job;
    remote_join(g, false);
    if (g->w && !srv_job_wait(g->w, j, r)) {
        gen_free(g);
        return MHD_NO; /* the client is gone: close */
    }
    r->tokens = j->st.n_prompt + j->st.n_gen;
    int ret;
    if (j->rc) {
        ret = srv_reply_errorf(r, 500, NULL, "generation failed: %s",
                               j->err.msg[0] ? j->err.msg : cn_strerror(j->rc));
    } else {
        json_t *o = make_object(g, j->text.data ? j->text.data : "", j->text.len, true, true,
                                false);
        ret = srv_reply_json(r, 200, o);
    }
    gen_free(g);
    return ret;
}

/* The question of a grounded chat: the last user message. */
static const char *last_user(const srv_gen_req *req)
{
    for (int i = req->n_msgs - 1; i >= 0; i--)
        if (!strcmp(req->msgs[i].role, "user"))
            return req->msgs[i].content;
    return NULL;
}

int srv_generate(srv_req *r, srv_gen_req *req, int dialect)
{
    srv *s = r->s;
    srv_error e;
    srv_worker *w = NULL;
    bool library = false;
    rmt_endpoint ep;
    int remote = srv_remote_pick(s, req->model, &ep, &e);
    if (remote < 0 || (!remote && srv_pick_model(s, req->model, false, &w, &library, &e))) {
        srv_gen_req_free(req);
        return srv_reply_error(r, &e);
    }
    gen_stream *g = cn_calloc(1, sizeof *g);
    if (!g) {
        srv_gen_req_free(req);
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    }
    g->r = r;
    g->req = *req;
    g->dialect = dialect;
    g->library = library;
    g->created = (long)time(NULL);
    cn_buf_init(&g->out, (size_t)64 << 20);
    srv_job_init(&g->job, JOB_GENERATE);
    snprintf(g->model, sizeof g->model, "%s%s", remote ? "remote:" : "",
             remote ? ep.name : library ? SRV_LIBRARY_MODEL : w->name);
    if (dialect == DIALECT_OLLAMA_CHAT || dialect == DIALECT_OLLAMA_GENERATE)
        snprintf(g->model + strlen(g->model), sizeof g->model - strlen(g->model), ":latest");
    uint64_t rid = random_seed();
    snprintf(g->id, sizeof g->id, "%s-%016llx", is_chat(g) ? "chatcmpl" : "cmpl",
             (unsigned long long)rid);
    int rc;
    bool chat = is_chat(g);
    if (remote && g->req.grammar) {
        /* the remote writes freely: its answer could not be held to the
        ** schema here, and shape is not what the consent covered */
        rc = srv_fail(&e, 400, g->req.grammar_param,
                      "%s: a remote model's answer cannot be held to a JSON shape; ask a local "
                      "model for that",
                      g->req.grammar_param);
    } else if (remote) {
        /* the library's passages (or those the client chose), answered elsewhere */
        g->library = true;
        rc = srv_remote_begin(r, &ep, chat ? last_user(&g->req) : g->req.prompt, &g->req,
                              &g->job, &g->src, &g->n_src, &g->th, &e);
        g->remote = rc == 0 && !g->job.done;
        g->joined = !g->remote;
        g->w = NULL;
    } else if (library) {
        rc = srv_grounded(r, chat ? last_user(&g->req) : g->req.prompt, &g->req, &g->job, &g->src,
                          &g->n_src, &e);
        g->w = g->job.done ? NULL : w;
    } else if (chat) {
        rc = srv_prepare_chat(w, &g->req, &g->job, &e);
        g->w = w;
    } else if (dialect == DIALECT_OLLAMA_GENERATE && !g->req.raw) {
        /* Ollama's generate applies the model's template to system + prompt */
        tok_chat_msg m[2] = {{"system", g->req.system}, {"user", g->req.prompt}};
        srv_gen_req tmp = g->req;
        tmp.msgs = g->req.system ? m : m + 1;
        tmp.n_msgs = g->req.system ? 2 : 1;
        rc = srv_prepare_chat(w, &tmp, &g->job, &e);
        g->w = w;
    } else {
        rc = srv_prepare_prompt(w, &g->req, g->req.prompt, dialect != DIALECT_OLLAMA_GENERATE,
                                &g->job, &e);
        g->w = w;
    }
    if (rc) {
        gen_free(g);
        return srv_reply_error(r, &e);
    }
    if (g->w && srv_job_submit(g->w, &g->job)) {
        srv_worker *busy = g->w;
        g->w = NULL; /* never queued */
        gen_free(g);
        return srv_reply_busy(r, busy);
    }
    if (!g->req.stream)
        return reply_whole(g);
    return srv_reply_stream(r, is_ollama(g) ? "application/x-ndjson" : "text/event-stream",
                            gen_read, g, gen_done);
}

int srv_generate_route(srv_req *r, int dialect)
{
    bool chat = dialect == DIALECT_OPENAI_CHAT || dialect == DIALECT_OLLAMA_CHAT;
    int api = dialect == DIALECT_OPENAI_CHAT || dialect == DIALECT_OPENAI_COMPLETION
                  ? SRV_API_OPENAI
                  : SRV_API_OLLAMA;
    srv_gen_req req;
    srv_error e;
    int rc = chat ? srv_parse_chat(r->body.data, r->body.len, api, &r->s->o.lim, &r->arena, &req, &e)
                  : srv_parse_completion(r->body.data, r->body.len, api, &r->s->o.lim, &r->arena,
                                         &req, &e);
    if (rc) {
        srv_gen_req_free(&req);
        return srv_reply_error(r, &e);
    }
    return srv_generate(r, &req, dialect);
}

int srv_openai_chat(srv_req *r) { return srv_generate_route(r, DIALECT_OPENAI_CHAT); }
int srv_openai_completions(srv_req *r) { return srv_generate_route(r, DIALECT_OPENAI_COMPLETION); }

/* ---- embeddings ------------------------------------------------------------------ */

int srv_embed_run(srv_req *r, const srv_embed_req *req, float **vecs, bool **cut, int *tokens,
                  srv_worker **wout, srv_error *e)
{
    srv_worker *w;
    bool library;
    *vecs = NULL;
    *cut = NULL;
    if (srv_pick_model(r->s, req->model, true, &w, &library, e))
        return -1;
    *wout = w;
    srv_job j;
    srv_job_init(&j, JOB_EMBED);
    j.texts = req->inputs;
    j.lens = req->lens;
    j.n_texts = req->n_inputs;
    j.vecs = cn_malloc(sizeof(float) * (size_t)w->dim * (size_t)req->n_inputs);
    j.truncated = cn_calloc((size_t)req->n_inputs, sizeof(bool));
    int rc = 0;
    if (!j.vecs || !j.truncated) {
        rc = srv_fail(e, 500, NULL, "out of memory");
    } else if (srv_job_submit(w, &j)) {
        rc = -2;
    } else if (!srv_job_wait(w, &j, r)) {
        rc = -3;
    } else if (j.rc) {
        rc = srv_fail(e, j.rc == CN_ELIMIT ? 413 : 500, "input", "%s", j.err.msg);
    }
    if (rc == 0) {
        *vecs = j.vecs;
        *cut = j.truncated;
        long long t = 0; /* usage: the tokens each input was embedded with */
        for (int i = 0; i < req->n_inputs; i++) {
            int k = tok_encode(w->v, req->inputs[i], req->lens[i], true, false, NULL, 0, NULL);
            t += k < 0 ? 0 : CN_MIN(k, w->n_ctx);
        }
        *tokens = (int)CN_MIN(t, (long long)1 << 30);
    } else {
        free(j.vecs);
        free(j.truncated);
    }
    srv_job_free(&j);
    return rc;
}

int srv_embed_request(srv_req *r, int api, srv_embed_req *req, float **vecs, bool **cut,
                      int *tokens, srv_worker **w, int *ret)
{
    srv_error e;
    *w = NULL;
    *tokens = 0;
    int rc = srv_parse_embed(r->body.data, r->body.len, api, &r->s->o.lim, &r->arena, req, &e)
                 ? -1
                 : srv_embed_run(r, req, vecs, cut, tokens, w, &e);
    if (rc == 0)
        return 0;
    srv_embed_req_free(req);
    *ret = rc == -1 ? srv_reply_error(r, &e) : rc == -2 ? srv_reply_busy(r, *w) : MHD_NO;
    return -1;
}

void *(*srv_alloc)(size_t n) = cn_malloc;

json_t *srv_embedding_data(const float *vecs, int n, int dim, bool base64)
{
    json_t *data = json_array();
    char *b64 = base64 ? srv_alloc(4 * ((size_t)dim * 4 + 2) / 3 + 8) : NULL;
    if (!data || (base64 && !b64)) {
        json_decref(data);
        free(b64);
        return NULL;
    }
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        json_t *item = json_object(), *emb;
        const float *v = vecs + (size_t)i * dim;
        if (base64) {
            srv_base64(v, sizeof(float) * (size_t)dim, b64); /* little-endian float32, as OpenAI */
            emb = json_string(b64);
        } else {
            emb = json_array();
            for (int d = 0; d < dim && emb; d++)
                if (json_array_append_new(emb, json_real(v[d])))
                    ok = false;
        }
        ok = ok && item && emb && !json_object_set_new(item, "object", json_string("embedding")) &&
             !json_object_set_new(item, "index", json_integer(i)) &&
             !json_object_set_new(item, "embedding", json_incref(emb));
        json_decref(emb);
        if (!item || json_array_append_new(data, item))
            ok = false;
    }
    free(b64);
    if (!ok) {
        json_decref(data);
        return NULL;
    }
    return data;
}

int srv_openai_embeddings(srv_req *r)
{
    srv_embed_req req;
    float *vecs;
    bool *cut;
    int tokens, ret;
    srv_worker *w;
    if (srv_embed_request(r, SRV_API_OPENAI, &req, &vecs, &cut, &tokens, &w, &ret))
        return ret;
    json_t *data = srv_embedding_data(vecs, req.n_inputs, w->dim, req.base64);
    if (!data) { /* never a reply in another shape than the one asked for */
        free(vecs);
        free(cut);
        srv_embed_req_free(&req);
        return srv_reply_errorf(r, 500, NULL, "out of memory building the embeddings reply");
    }
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    json_object_set_new(o, "model", json_string(w->name));
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(tokens));
    json_object_set_new(u, "total_tokens", json_integer(tokens));
    json_object_set_new(o, "usage", u);
    r->tokens = tokens;
    free(vecs);
    free(cut);
    srv_embed_req_free(&req);
    return srv_reply_json(r, 200, o);
}
