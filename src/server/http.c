/*
** http.c: the daemon. libmicrohttpd runs one thread per connection, so a
** handler may block (waiting for its model's worker) without holding up
** anyone else. Each request goes through the same gate, in this order:
** header size, Host (loopback binds only answer to loopback names: no DNS
** rebinding), Origin (CORS: the server's own origin, or the configured
** one), route, API key, body size. Then its handler runs with the whole
** body in hand (uploads are streamed to disk instead). When MHD says the
** request is over, one access-log line goes to stderr.
**
** The route table below is the index of the API; `cairn serve --help`
** prints it.
*/
#include "server/srv_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const srv_route routes[] = {
    {"GET", "/v1/models", srv_openai_models, ROUTE_MODEL, "OpenAI: models"},
    {"GET", "/v1/models/", srv_openai_model, ROUTE_PREFIX | ROUTE_MODEL, "OpenAI: one model"},
    {"POST", "/v1/chat/completions", srv_openai_chat, ROUTE_MODEL, "OpenAI: chat (SSE with stream)"},
    {"POST", "/v1/completions", srv_openai_completions, ROUTE_MODEL, "OpenAI: text completion"},
    {"POST", "/v1/embeddings", srv_openai_embeddings, ROUTE_MODEL, "OpenAI: embeddings"},
    {"POST", "/v1/rerank", srv_rerank, 0, "rerank documents (llama.cpp, Jina, Cohere shape)"},
    {"GET", "/api/tags", srv_ollama_tags, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: models"},
    {"POST", "/api/chat", srv_ollama_chat, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: chat (NDJSON stream)"},
    {"POST", "/api/generate", srv_ollama_generate, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: generate"},
    {"POST", "/api/embed", srv_ollama_embed, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: embeddings"},
    {"POST", "/api/embeddings", srv_ollama_embed, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: one embedding (older API)"},
    {"POST", "/api/show", srv_ollama_show, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: model details"},
    {"GET", "/api/version", srv_ollama_version, ROUTE_OLLAMA, "Ollama: version"},
    {"GET", "/api/ps", srv_ollama_ps, ROUTE_OLLAMA | ROUTE_MODEL, "Ollama: loaded models"},
    {"GET", "/api/status", srv_status, ROUTE_MODEL, "service level, models, library (doctor)"},
    {"GET", "/api/watch", srv_watch_get, 0, "watched folders: state, files settling, progress"},
    {"POST", "/api/watch", srv_watch_change, 0, "{add: DIR} or {remove: DIR} (loopback server only)"},
    {"GET", "/api/library/documents", srv_lib_docs, 0, "list documents"},
    {"POST", "/api/library/documents", srv_lib_upload, ROUTE_UPLOAD | ROUTE_MODEL,
     "upload documents (multipart/form-data), NDJSON progress"},
    {"DELETE", "/api/library/documents/", srv_lib_remove, ROUTE_PREFIX, "remove document ID"},
    {"POST", "/api/library/search", srv_lib_search, ROUTE_MODEL, "search passages"},
    {"POST", "/api/library/ask", srv_lib_ask, ROUTE_MODEL, "grounded answer with citations (SSE with stream)"},
    {"POST", "/api/remote/preview", srv_remote_preview, ROUTE_MODEL,
     "what a question to an allowed remote would send (the UI's consent dialog)"},
    {"POST", "/api/library/summarize", srv_lib_summarize, ROUTE_MODEL,
     "summary of a document, sentences with pages (NDJSON progress)"},
    {"POST", "/api/library/extract", srv_lib_extract, ROUTE_MODEL,
     "a schema's fields from documents, each cited (NDJSON)"},
    {"GET", "/api/models", srv_models_list, ROUTE_MODEL, "installed and available models, fit, machine"},
    {"POST", "/api/models/pull", srv_models_pull, 0, "download and install a model, NDJSON progress"},
    {"POST", "/api/models/use", srv_models_use, 0, "make an installed model the active one"},
    {"DELETE", "/api/models/", srv_models_remove, ROUTE_PREFIX | ROUTE_MODEL, "remove an installed model"},
    {"POST", "/api/updates", srv_updates_set, 0, "{schedule: off|daily|weekly}: model updates (loopback server only)"},
};

void srv_print_routes(FILE *f)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(routes); i++)
        fprintf(f, "  %-6s %s%-*s %s\n", routes[i].method, routes[i].path,
                (int)(28 - strlen(routes[i].path)),
                routes[i].flags & ROUTE_PREFIX ? "{id}" : "", routes[i].help);
    fprintf(f, "  GET    /                            the web UI\n");
}

void srv_opts_default(srv_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8377;
    o->lim = (srv_limits){
        .max_body = 1 << 20,
        .max_upload = (size_t)256 << 20,
        .max_headers = 16 << 10,
        .max_depth = 32,
        .max_messages = 512,
        .max_tokens = 4096,
        .default_tokens = 512,
        .max_inputs = 512,
        .max_stop = 4,
        .queue = 8,
        .max_connections = 512,
        .max_per_address = 32,
    };
}

/* One answer for the server and the model downloader (base/host.c). */
bool srv_host_is_loopback(const char *host) { return cn_host_is_loopback(host); }

/* ---- responses ------------------------------------------------------------ */

static void common_headers(srv_req *r, struct MHD_Response *resp, const char *type)
{
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->origin_ok) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin_ok);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
}

static int queue(srv_req *r, int status, struct MHD_Response *resp)
{
    r->status = status;
    int ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int reply_bytes(srv_req *r, int status, const char *type, const void *data, size_t len,
                       enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!resp)
        return MHD_NO;
    common_headers(r, resp, type);
    return queue(r, status, resp);
}

/* JSON with a Retry-After header when retry_after > 0. */
static int reply_json_retry(srv_req *r, int status, json_t *j, int retry_after)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
                : NULL;
    json_decref(j);
    if (!s)
        return reply_bytes(r, 500, "application/json",
                           "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}",
                           62, MHD_RESPMEM_PERSISTENT);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), s,
                                                                MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    common_headers(r, resp, "application/json");
    if (retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    return queue(r, status, resp);
}

int srv_reply_json(srv_req *r, int status, json_t *j) { return reply_json_retry(r, status, j, 0); }

int srv_reply_error(srv_req *r, const srv_error *e)
{
    json_t *o = json_object();
    if (r->route && (r->route->flags & ROUTE_OLLAMA)) {
        json_object_set_new(o, "error", json_string(e->msg));
    } else {
        json_t *err = json_object();
        json_object_set_new(err, "message", json_string(e->msg));
        json_object_set_new(err, "type", json_string(e->type ? e->type : "invalid_request_error"));
        json_object_set_new(err, "param", e->param[0] ? json_string(e->param) : json_null());
        json_object_set_new(err, "code", e->code ? json_string(e->code) : json_null());
        json_object_set_new(o, "error", err);
    }
    return reply_json_retry(r, e->status, o, e->retry_after);
}

int srv_reply_errorf(srv_req *r, int status, const char *param, const char *fmt, ...)
{
    srv_error e;
    srv_fail(&e, status, param, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return srv_reply_error(r, &e);
}

int srv_reply_busy(srv_req *r, srv_worker *w)
{
    srv_error e;
    srv_fail(&e, 429, NULL, "the %s queue is full (%d waiting); retry shortly", w->name, w->cap);
    e.code = "queue_full";
    json_t *o = json_object(), *err = json_object();
    bool ollama = r->route && (r->route->flags & ROUTE_OLLAMA);
    if (ollama) {
        json_object_set_new(o, "error", json_string(e.msg));
    } else {
        json_object_set_new(err, "message", json_string(e.msg));
        json_object_set_new(err, "type", json_string(e.type));
        json_object_set_new(err, "param", json_null());
        json_object_set_new(err, "code", json_string(e.code));
        json_object_set_new(o, "error", err);
    }
    if (ollama)
        json_decref(err);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(s ? strlen(s) : 0, s ? s : (char *)"", MHD_RESPMEM_MUST_FREE);
    common_headers(r, resp, "application/json");
    char ra[16];
    snprintf(ra, sizeof ra, "%d", srv_worker_retry_after(w));
    MHD_add_response_header(resp, "Retry-After", ra);
    return queue(r, 429, resp);
}

int srv_reply_stream(srv_req *r, const char *content_type, MHD_ContentReaderCallback fn,
                     void *cls, MHD_ContentReaderFreeCallback done)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, fn, cls,
                                                                  done);
    if (!resp) {
        done(cls);
        return MHD_NO;
    }
    common_headers(r, resp, content_type);
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return queue(r, 200, resp);
}

bool srv_client_gone(srv_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void srv_req_tokens(srv_req *r, int n) { r->tokens += n; }

/* ---- the web UI ------------------------------------------------------------ */

static const srv_asset *find_asset(const char *path)
{
    if (!strcmp(path, "/"))
        path = "/index.html";
    for (int i = 0; i < srv_n_assets; i++)
        if (!strcmp(srv_assets[i].path, path))
            return &srv_assets[i];
    return NULL;
}

static int reply_asset(srv_req *r, const srv_asset *a)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    common_headers(r, resp, a->type);
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                            "frame-ancestors 'none'");
    return queue(r, 200, resp);
}

/* ---- the gate ---------------------------------------------------------------- */

typedef struct hdr_sum {
    size_t bytes;
} hdr_sum;

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    hdr_sum *h = cls;
    h->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* The host part of a Host header ("127.0.0.1:8377" -> "127.0.0.1"). */
static void host_only(const char *h, char *out, size_t cap)
{
    size_t n;
    if (h[0] == '[') {
        const char *e = strchr(h, ']');
        n = e ? (size_t)(e - h + 1) : strlen(h);
    } else {
        const char *c = strchr(h, ':');
        n = c ? (size_t)(c - h) : strlen(h);
    }
    snprintf(out, cap, "%.*s", (int)CN_MIN(n, cap - 1), h);
}

static bool key_matches(const char *given, const char *key)
{
    size_t a = strlen(given), b = strlen(key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned)(unsigned char)key[i] ^ (unsigned)(unsigned char)(i < a ? given[i] : 0);
    return diff == 0;
}

/* Checks done once the headers are in. Returns 0, or -1 with e filled. */
static int gate(srv_req *r, srv_error *e)
{
    srv *s = r->s;
    hdr_sum h = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header_size, &h);
    if (h.bytes > s->o.lim.max_headers)
        return srv_fail(e, 431, NULL, "request headers are %zu bytes; the limit is %zu", h.bytes,
                        s->o.lim.max_headers);
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    if (s->loopback && host) {
        char name[300];
        host_only(host, name, sizeof name);
        if (!srv_host_is_loopback(name))
            return srv_fail(e, 403, NULL, "Host '%.100s' is not a loopback name; this server "
                            "only answers to 127.0.0.1, localhost and [::1]", name);
    }
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (origin) {
        char own[400];
        snprintf(own, sizeof own, "http://%.300s", host ? host : "");
        const char *cors = s->o.cors_origin;
        if (!strcmp(origin, own) || !strcmp(origin, s->origin_a) || !strcmp(origin, s->origin_b))
            r->origin_ok = origin;
        else if (cors && (!strcmp(cors, "*") || !strcmp(cors, origin)))
            r->origin_ok = origin;
        else
            return srv_fail(e, 403, NULL, "cross-origin request from '%.100s' refused (allow it "
                            "with --cors-origin)", origin);
    }
    return 0;
}

static int preflight(srv_req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (r->origin_ok) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin_ok);
        MHD_add_response_header(resp, "Vary", "Origin");
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return queue(r, 204, resp);
}

static const srv_route *find_route(const char *method, const char *path, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < CN_ARRAY_LEN(routes); i++) {
        const srv_route *rt = &routes[i];
        bool match = rt->flags & ROUTE_PREFIX
                         ? !strncmp(path, rt->path, strlen(rt->path)) && path[strlen(rt->path)]
                         : !strcmp(path, rt->path);
        if (!match)
            continue;
        *path_known = true;
        if (!strcmp(method, rt->method))
            return rt;
    }
    return NULL;
}

static bool authorized(srv_req *r)
{
    const char *key = r->s->o.api_key;
    if (!key || !*key)
        return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    return key_matches(h + 7, key);
}

/* First call for a request: the headers are in, no body yet. Returns MHD_YES
** to go on reading the body, or the result of queueing a response. */
static int begin(srv_req *r, const char *version)
{
    (void)version;
    srv_error e;
    if (gate(r, &e))
        return srv_reply_error(r, &e);
    if (!strcmp(r->method, "OPTIONS"))
        return preflight(r);
    bool known;
    r->route = find_route(r->method, r->path, &known);
    if (!r->route) {
        if ((!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"))) {
            const srv_asset *a = find_asset(r->path);
            if (a)
                return reply_asset(r, a);
        }
        if (known)
            return srv_reply_errorf(r, 405, NULL, "method %s is not allowed on %s", r->method,
                                    r->path);
        return srv_reply_errorf(r, 404, NULL, "no route %s %s", r->method, r->path);
    }
    if (!authorized(r)) {
        srv_fail(&e, 401, NULL, "missing or wrong API key: send 'Authorization: Bearer KEY'");
        e.code = "invalid_api_key";
        return srv_reply_error(r, &e);
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    size_t limit = r->route->flags & ROUTE_UPLOAD ? r->s->o.lim.max_upload + 65536
                                                  : r->s->o.lim.max_body;
    r->limit = limit; /* counted as the body arrives too: chunked bodies have no length */
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > limit)
            return srv_reply_errorf(r, 413, NULL, "request body is %s bytes; the limit is %zu",
                                    cl, limit);
    }
    if (r->route->flags & ROUTE_UPLOAD) {
        if (srv_upload_begin(r, &e))
            return srv_reply_error(r, &e);
    }
    cn_buf_init(&r->body, r->s->o.lim.max_body);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv *s = cls;
    srv_req *r = *con_cls;
    if (!r) {
        r = cn_calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->s = s;
        r->conn = conn;
        r->t0 = cn_now();
        cn_arena_init(&r->arena, (size_t)64 << 20);
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        if (strlen(url) >= sizeof r->path)
            return srv_reply_errorf(r, 414, NULL, "request path longer than %zu bytes",
                                    sizeof r->path - 1);
        int ret = begin(r, version);
        if (r->status) /* a response is queued: the body (if any) is discarded */
            r->has_early = true;
        return (enum MHD_Result)ret;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->has_early || r->status)
            return MHD_YES; /* discarding */
        r->received += n;
        if (r->received > r->limit) {
            srv_fail(&r->early, 413, NULL, "request body is over the limit of %zu bytes%s",
                     r->limit, r->up ? " (--max-upload, plus 64 KiB for the form)" : "");
            r->has_early = true;
            srv_upload_free(r); /* what was written so far is deleted now */
            return MHD_YES;
        }
        if (r->up) {
            if (srv_upload_data(r, upload_data, n, &r->early))
                r->has_early = true;
        } else if (cn_buf_append(&r->body, upload_data, n)) {
            srv_fail(&r->early, 413, NULL, "request body is over the limit of %zu bytes",
                     s->o.lim.max_body);
            r->has_early = true;
        }
        return MHD_YES;
    }
    if (r->status)
        return MHD_YES; /* already answered */
    if (r->has_early)
        return (enum MHD_Result)srv_reply_error(r, &r->early);
    if (r->route->flags & ROUTE_MODEL) {
        srv_gate_enter(&s->model_gate); /* waits while the model is being switched */
        r->gated = true;
    }
    return (enum MHD_Result)r->route->fn(r);
}

/* The path as the access log shows it: MHD has decoded %XX, so a path may
** hold newlines or spaces that would forge log lines or fields; those bytes
** (and backslash) are written as \xNN. */
static void log_path(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < cap; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = 0;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *s = cls;
    (void)conn;
    srv_req *r = *con_cls;
    if (!r)
        return;
    if (!s->o.quiet) {
        static const char *const why[] = {"ok", "error", "timeout", "shutdown", "read-error",
                                          "client-abort"};
        char path[sizeof r->path * 4];
        log_path(r->path, path, sizeof path);
        pthread_mutex_lock(&s->log_mu);
        fprintf(stderr, "cairn serve: method=%s path=%s status=%d ms=%.0f tokens=%d%s%s\n",
                r->method, path, r->status, (cn_now() - r->t0) * 1000, r->tokens,
                toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? " end=" : "",
                toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && (unsigned)toe < 6 ? why[toe] : "");
        pthread_mutex_unlock(&s->log_mu);
    }
    srv_upload_free(r);
    if (r->gated)
        srv_gate_leave(&s->model_gate);
    cn_buf_free(&r->body);
    cn_arena_free(&r->arena);
    free(r);
    *con_cls = NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

/* The API's name of a model: its installed name, else the file name less
** ".gguf". */
static void model_name(const char *path, const char *given, char *out, size_t cap)
{
    if (given && *given) {
        snprintf(out, cap, "%s", given);
        return;
    }
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcasecmp(b + n - 5, ".gguf"))
        n -= 5;
    snprintf(out, cap, "%.*s", (int)CN_MIN(n, cap - 1), b);
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   bool *v6, cn_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char h[256];
    snprintf(h, sizeof h, "%s", host);
    if (h[0] == '[' && h[strlen(h) - 1] == ']') { /* [::1] */
        memmove(h, h + 1, strlen(h));
        h[strlen(h) - 1] = 0;
    }
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    int rc = getaddrinfo(h, p, &hints, &res);
    if (rc != 0 || !res)
        return cn_fail(err, CN_EINVAL, "--host %s: cannot resolve: %s", host, gai_strerror(rc));
    /* prefer IPv4 for "localhost" */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    *v6 = pick->ai_family == AF_INET6;
    freeaddrinfo(res);
    return CN_OK;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    srv *s = cls;
    if (s->o.quiet)
        return;
    pthread_mutex_lock(&s->log_mu);
    fprintf(stderr, "cairn serve: ");
    vfprintf(stderr, fmt, ap);
    pthread_mutex_unlock(&s->log_mu);
}

/* Scanned pages `cairn add` queued are read here, in the background, a few
** at a time with the writer taken, so that uploads between batches go on. */
#define SRV_OCR_BATCH 8
static void *ocr_main(void *arg)
{
    srv *s = arg;
    int total = 0;
    while (!atomic_load(&s->stopping)) {
        srv_error e;
        lib *l = srv_lib_acquire_writer(s, -1, &e);
        if (!l)
            break;
        lib_ocr_stats st;
        cn_err err = {0};
        int n = lib_ocr_some(l, NULL, s->o.threads, SRV_OCR_BATCH, &s->stopping, NULL, NULL, &st,
                             &err);
        srv_lib_release(s, l, n > 0);
        if (n < 0)
            fprintf(stderr, "cairn serve: OCR of queued scanned pages: %s\n", err.msg);
        if (n <= 0)
            break;
        total += n;
    }
    if (total)
        fprintf(stderr, "cairn serve: %d scanned page%s read by OCR\n", total,
                total == 1 ? "" : "s");
    atomic_fetch_sub(&s->n_background, 1);
    return NULL;
}

static void start_ocr(srv *s)
{
    store_ocr_counts c;
    cn_err err = {0};
    if (!s->libs[0] || store_ocr_count(lib_store(s->libs[0]), 0, &c, &err) || c.pending == 0)
        return;
    fprintf(stderr, "cairn serve: %lld scanned page%s wait for OCR: reading them in the "
                    "background\n",
            (long long)c.pending, c.pending == 1 ? "" : "s");
    pthread_t th;
    atomic_fetch_add(&s->n_background, 1);
    if (pthread_create(&th, NULL, ocr_main, s) != 0)
        atomic_fetch_sub(&s->n_background, 1);
    else
        pthread_detach(th);
}

int srv_run(const srv_opts *o, cn_err *err)
{
    srv *s = cn_calloc(1, sizeof *s);
    if (!s)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    s->o = *o;
    s->loopback = srv_host_is_loopback(o->host);
    if (!s->loopback && (!o->api_key || !*o->api_key)) {
        free(s);
        return cn_fail(err, CN_EINVAL, "--host %s is not a loopback address: anyone on the "
                       "network could use it, so an API key is required (--api-key KEY or "
                       "CAIRN_API_KEY)", o->host);
    }
    if (o->cors_origin && !strcmp(o->cors_origin, "*") && (!o->api_key || !*o->api_key)) {
        free(s); /* any web page could drive the server: refused, as above */
        return cn_fail(err, CN_EINVAL, "--cors-origin '*' without an API key would let any web "
                       "page upload, delete and download through this server: set an API key, "
                       "or name the one origin to allow");
    }
    pthread_mutex_init(&s->lib_mu, NULL);
    pthread_cond_init(&s->lib_cv, NULL);
    pthread_mutex_init(&s->log_mu, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    srv_gate_init(&s->model_gate);
    pthread_mutex_init(&s->change_mu, NULL);
    atomic_init(&s->n_background, 0);
    atomic_init(&s->pulling, 0);

    /* SIGINT/SIGTERM are taken by sigwait below: block them in every thread */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = cn_data_dir(s->home, sizeof s->home, o->home, err);
    eng_opts eo = {.n_threads = o->threads, .n_ctx = o->n_ctx};
    if (!rc && o->chat_model) {
        model_name(o->chat_model, o->chat_name, s->chat_name, sizeof s->chat_name);
        rc = srv_worker_open(&s->chat, JOB_GENERATE, o->chat_model, &eo, o->lim.queue, err);
        if (!rc && o->draft_model)
            rc = srv_worker_draft(&s->chat, o->draft_model, err);
        s->chat.name = s->chat_name;
        snprintf(s->chat_path, sizeof s->chat_path, "%s", o->chat_model);
        s->chat.path = s->chat_path;
    }
    s->eo = eo; /* for a model loaded later (first run) or switched */
    if (!rc && o->embed_model) {
        eng_opts ee = {.n_threads = o->threads};
        model_name(o->embed_model, o->embed_name, s->embed_name, sizeof s->embed_name);
        snprintf(s->embed_path, sizeof s->embed_path, "%s", o->embed_model);
        s->o.embed_model = s->embed_path;
        rc = srv_worker_open(&s->embed, JOB_EMBED, s->embed_path, &ee, o->lim.queue, err);
        s->embed.name = s->embed_name;
    }
    if (!rc && o->rerank_model) {
        eng_opts er = {.n_threads = o->threads};
        model_name(o->rerank_model, o->rerank_name, s->rerank_name, sizeof s->rerank_name);
        rc = srv_worker_open(&s->rerank, JOB_RERANK, o->rerank_model, &er, o->lim.queue, err);
        s->rerank.name = s->rerank_name;
    }
    /* the library must open (a damaged one is reported now, not per request) */
    if (!rc)
        rc = srv_lib_open_all(s, err);
    struct sockaddr_storage ss;
    socklen_t sl;
    bool v6 = false;
    if (!rc)
        rc = resolve(o->host, o->port, &ss, &sl, &v6, err);
    if (!rc) {
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
        s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->lim.max_connections,
                                /* beyond loopback one address cannot hold every connection
                                ** open (slow or idle clients: each holds a thread) */
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                (unsigned)(s->loopback ? 0 : o->lim.max_per_address),
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                (size_t)(o->lim.max_headers * 2 + 16384),
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                                MHD_OPTION_THREAD_STACK_SIZE, (size_t)2 << 20, MHD_OPTION_END);
        if (!s->d)
            rc = cn_fail(err, CN_EIO, "cannot listen on %s port %d: %s", o->host, o->port,
                         errno ? strerror(errno) : "address in use or not available");
    }
    if (!rc) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        s->port = di ? di->port : o->port;
        snprintf(s->origin_a, sizeof s->origin_a, "http://127.0.0.1:%d", s->port);
        snprintf(s->origin_b, sizeof s->origin_b, "http://localhost:%d", s->port);
        bool br = strchr(o->host, ':') && o->host[0] != '[';
        fprintf(stderr, "cairn serve: listening on http://%s%s%s:%d/ (web UI and API)\n",
                br ? "[" : "", o->host, br ? "]" : "", s->port);
        fprintf(stderr, "cairn serve: chat model %s, embedding model %s, library %s\n",
                o->chat_model ? s->chat_name : "(none)", o->embed_model ? s->embed_name : "(none)",
                s->libs[0] ? lib_home(s->libs[0]) : "?");
        if (!s->loopback)
            fprintf(stderr, "cairn serve: bound to a non-loopback address: every request needs "
                            "'Authorization: Bearer <key>'\n");
        else if (o->api_key && *o->api_key)
            fprintf(stderr, "cairn serve: API key set: API requests need 'Authorization: Bearer "
                            "<key>'\n");
        if (o->port_file) {
            FILE *f = fopen(o->port_file, "w");
            if (f) {
                fprintf(f, "%d\n", s->port);
                fclose(f);
            }
        }
        start_ocr(s);
        srv_watch_start(s);
        srv_updates_start(s);
        int sig;
        sigwait(&set, &sig);
        fprintf(stderr, "cairn serve: %s, shutting down\n", sig == SIGINT ? "interrupted"
                                                                          : "terminated");
        atomic_store(&s->stopping, true);
        __atomic_store_n(&s->update_cancel, 1, __ATOMIC_RELAXED); /* read by the update thread */
        MHD_stop_daemon(s->d);
        /* an upload whose client left may still be ingesting, a pull still
        ** stopping: they finish */
        while (atomic_load(&s->n_background) > 0)
            usleep(20000);
    }
    srv_worker_close(&s->chat);
    srv_worker_close(&s->embed);
    srv_worker_close(&s->rerank);
    srv_lib_close_all(s);
    pthread_mutex_destroy(&s->lib_mu);
    pthread_cond_destroy(&s->lib_cv);
    pthread_mutex_destroy(&s->log_mu);
    srv_watch_free(s);
    pthread_mutex_destroy(&s->watch_mu);
    srv_gate_destroy(&s->model_gate);
    pthread_mutex_destroy(&s->change_mu);
    free(s);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return rc;
}
