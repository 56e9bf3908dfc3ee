/*
** libapi.c: the endpoints the web UI uses beyond the model APIs: the
** library (documents, upload, search, ask, status) and the model manager
** (list, pull with progress, use, remove: thin faces over src/models).
**
** Library handles: a store is used by one thread at a time, so the server
** keeps up to SRV_LIB_POOL handles, each its own SQLite connection, and
** lends them out; searches run side by side. A handle that wrote bumps a
** generation counter, and the others reload their vectors when they next
** see it changed.
**
** Uploads (multipart/form-data) are streamed to <home>/documents/ as they
** arrive, never held in memory, then ingested by a thread that reports
** progress to the client as one JSON object per line; a model download
** reports the same way.
*/
#include "server/srv_int.h"
#include "models/models.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int srv_lib_wait_ms = 10000;

/* The shared embedder's embed: a job on the embedding model's one worker,
** queued like an API request; a full queue is waited out (up to
** srv_lib_wait_ms), since an ingest's batch must not be dropped. */
static int embed_on_worker(void *ctx, const char *const *texts, const size_t *lens, int n,
                           float *vecs, cn_err *err)
{
    srv_worker *w = ctx;
    srv_job j;
    srv_job_init(&j, JOB_EMBED);
    j.texts = texts;
    j.lens = lens;
    j.n_texts = n;
    j.vecs = vecs;
    double until = cn_now() + srv_lib_wait_ms / 1000.0;
    int rc;
    while ((rc = srv_job_submit(w, &j)) == CN_ELIMIT && cn_now() < until)
        usleep(20000);
    if (rc) {
        rc = cn_fail(err, CN_ELIMIT, "the %s queue stayed full for %d s", w->name,
                     srv_lib_wait_ms / 1000);
    } else {
        srv_job_wait(w, &j, NULL);
        rc = j.rc;
        if (rc)
            *err = j.err;
    }
    srv_job_free(&j);
    return rc;
}

int srv_lib_open_all(srv *s, cn_err *err)
{
    if (s->embed.kind) {
        int rc = lib_embedder_init(&s->emb, s->o.embed_model, err);
        if (rc)
            return rc;
        s->emb.dim = s->embed.dim;
        s->emb.embed = embed_on_worker;
        s->emb.ctx = &s->embed;
        s->has_emb = true;
    }
    for (int k = 0; k <= SRV_LIB_POOL; k++) {
        lib **l = k < SRV_LIB_POOL ? &s->libs[k] : &s->writer;
        int rc = lib_open(l, s->o.home, err);
        if (rc)
            return rc;
        if (s->has_emb)
            lib_share_embedder(*l, &s->emb);
    }
    return CN_OK;
}

/* Wait on lib_cv (lib_mu held) until *ready, or until the deadline when
** wait_ms >= 0. Returns false on the deadline. */
static bool wait_for(srv *s, bool (*ready)(srv *), int wait_ms)
{
    double until = cn_now() + wait_ms / 1000.0;
    while (!ready(s)) {
        if (wait_ms < 0) {
            pthread_cond_wait(&s->lib_cv, &s->lib_mu);
            continue;
        }
        double left = until - cn_now();
        if (left <= 0)
            return false;
        srv_cond_wait_ms(&s->lib_cv, &s->lib_mu, (int)(left * 1000) + 1);
    }
    return true;
}

static bool reader_free(srv *s)
{
    for (int k = 0; k < SRV_LIB_POOL; k++)
        if (!s->lib_busy[k])
            return true;
    return false;
}

static bool writer_free(srv *s) { return !s->writer_busy; }

static void *busy_error(srv_error *e, const char *what)
{
    srv_fail(e, 503, NULL, "the library is busy (%s); retry shortly", what);
    e->code = "library_busy";
    e->retry_after = CN_MAX(1, srv_lib_wait_ms / 1000);
    return NULL;
}

lib *srv_lib_acquire(srv *s, srv_error *e)
{
    pthread_mutex_lock(&s->lib_mu);
    if (!wait_for(s, reader_free, srv_lib_wait_ms)) {
        pthread_mutex_unlock(&s->lib_mu);
        return busy_error(e, "every reading connection stayed in use");
    }
    int k = 0;
    while (s->lib_busy[k])
        k++;
    s->lib_busy[k] = true;
    pthread_mutex_unlock(&s->lib_mu);
    return s->libs[k];
}

lib *srv_lib_acquire_writer(srv *s, int wait_ms, srv_error *e)
{
    pthread_mutex_lock(&s->lib_mu);
    if (!wait_for(s, writer_free, wait_ms)) {
        pthread_mutex_unlock(&s->lib_mu);
        return busy_error(e, "another change, such as an upload being indexed, is being written");
    }
    s->writer_busy = true;
    pthread_mutex_unlock(&s->lib_mu);
    return s->writer;
}

void srv_lib_release(srv *s, lib *l, bool wrote)
{
    if (wrote)
        lib_reload_vectors(l); /* every handle's next search sees the change */
    pthread_mutex_lock(&s->lib_mu);
    if (l == s->writer)
        s->writer_busy = false;
    for (int k = 0; k < SRV_LIB_POOL; k++)
        if (s->libs[k] == l)
            s->lib_busy[k] = false;
    pthread_cond_broadcast(&s->lib_cv);
    pthread_mutex_unlock(&s->lib_mu);
}

void srv_lib_close_all(srv *s)
{
    for (int k = 0; k < SRV_LIB_POOL; k++) {
        lib_close(s->libs[k]);
        s->libs[k] = NULL;
    }
    lib_close(s->writer);
    s->writer = NULL;
    if (s->has_emb)
        lib_embedder_free(&s->emb);
    s->has_emb = false;
}

/* ---- documents ------------------------------------------------------------- */

static int doc_json(void *ctx, const store_doc_info *d)
{
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
    json_array_append_new(ctx, o);
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
    int rc = store_list(lib_store(l), doc_json, arr, &err);
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
        lib_result res[50];
        lib_search_info info;
        cn_err err = {0};
        lib_search_opts so = {.k = k ? (int)json_integer_value(k) : 5,
                              .embed_model = r->s->o.embed_model, .threads = r->s->o.threads};
        int n = lib_search(l, json_string_value(q), &so, &r->arena, res, &info, &err);
        json_t *o = json_object(), *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, lib_result_json(&res[i]));
        srv_lib_release(r->s, l, false);
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
              "Models, then restart the server)";
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

/* ---- uploads -------------------------------------------------------------------- */

#define MAX_UPLOAD_FILES 32

struct srv_upload {
    struct MHD_PostProcessor *pp;
    char dir[PATH_MAX];
    char names[MAX_UPLOAD_FILES][128];
    char tmp[MAX_UPLOAD_FILES][PATH_MAX];
    int n;
    FILE *f;
    size_t bytes;
    srv_error err;
    bool failed;
};

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    srv_req *r = cls;
    srv_upload *u = r->up;
    (void)kind;
    (void)key;
    (void)content_type;
    (void)transfer_encoding;
    if (!filename)
        return MHD_YES; /* a plain form field: nothing to keep */
    if (off == 0) {
        if (u->f) {
            int rc = fclose(u->f); /* the previous file's last bytes: a full disk shows here */
            u->f = NULL;
            if (rc != 0) {
                srv_fail(&u->err, 507, "file", "storing %s failed: %s", u->names[u->n - 1],
                         strerror(errno));
                return MHD_NO;
            }
        }
        if (u->n == MAX_UPLOAD_FILES) {
            srv_fail(&u->err, 400, "file", "at most %d files per upload", MAX_UPLOAD_FILES);
            return MHD_NO;
        }
        srv_safe_filename(filename, u->names[u->n], sizeof u->names[u->n]);
        snprintf(u->tmp[u->n], sizeof u->tmp[u->n], "%.3900s/.upload-%d-%p-%d", u->dir,
                 (int)getpid(), (void *)u, u->n);
        u->f = fopen(u->tmp[u->n], "wb");
        if (!u->f) {
            srv_fail(&u->err, 500, NULL, "cannot write %s: %s", u->tmp[u->n], strerror(errno));
            return MHD_NO;
        }
        u->n++;
        u->bytes = 0;
    }
    if (!u->f)
        return MHD_YES;
    u->bytes += size;
    if (u->bytes > r->s->o.lim.max_upload) {
        srv_fail(&u->err, 413, "file", "%s is larger than the upload limit of %zu bytes",
                 u->names[u->n - 1], r->s->o.lim.max_upload);
        return MHD_NO;
    }
    if (size && fwrite(data, 1, size, u->f) != size) {
        srv_fail(&u->err, 500, NULL, "writing the upload failed: %s", strerror(errno));
        return MHD_NO;
    }
    return MHD_YES;
}

int srv_upload_begin(srv_req *r, srv_error *e)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "multipart/form-data", 19))
        return srv_fail(e, 415, NULL, "upload documents as multipart/form-data (field 'file')");
    srv_upload *u = cn_calloc(1, sizeof *u);
    if (!u)
        return srv_fail(e, 500, NULL, "out of memory");
    r->up = u;
    snprintf(u->dir, sizeof u->dir, "%.4000s/" LIB_UPLOADS_DIR, r->s->home);
    cn_err err = {0};
    if (cn_mkdirs(u->dir, &err))
        return srv_fail(e, 500, NULL, "%s", err.msg);
    u->pp = MHD_create_post_processor(r->conn, 65536, on_part, r);
    if (!u->pp)
        return srv_fail(e, 400, NULL, "malformed multipart/form-data header (no boundary?)");
    return 0;
}

/* Close and delete the files of an upload not (yet) moved into place. */
static void discard_files(srv_upload *u)
{
    if (u->f)
        fclose(u->f);
    u->f = NULL;
    for (int i = 0; i < u->n; i++)
        if (u->tmp[i][0])
            unlink(u->tmp[i]);
    u->n = 0;
}

int srv_upload_data(srv_req *r, const char *data, size_t n, srv_error *e)
{
    srv_upload *u = r->up;
    if (u->failed)
        return -1;
    if (MHD_post_process(u->pp, data, n) != MHD_YES) {
        u->failed = true;
        discard_files(u); /* gone before the error is answered */
        if (u->err.status)
            *e = u->err;
        else
            srv_fail(e, 400, NULL, "malformed multipart/form-data body");
        return -1;
    }
    return 0;
}

void srv_upload_free(srv_req *r)
{
    srv_upload *u = r->up;
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    discard_files(u); /* not moved into place: an upload that failed */
    free(u);
    r->up = NULL;
}

/* ---- background work streamed as NDJSON ---------------------------------------------
** An upload's ingest and a model's download run in a thread of their own and
** report progress as one JSON object per line to the response, which MHD
** pulls from bg_read. If the client leaves, cancel is set (a download stops,
** keeping its data; an ingest finishes anyway) and the thread frees the run. */

typedef struct bg_run {
    srv *s;
    char *paths[32];           /* ingest: the files */
    int n;
    int not_stored;            /* ingest: uploaded files that could not be put in place */
    char name[128];            /* pull: the model */
    mdl_entry entry;           /* pull: the catalog entry (strings owned by cat) */
    mdl_catalog *cat;
    volatile int cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cn_buf out;
    size_t off;
    bool done;
    int refs; /* the thread and the response */
} bg_run;

static bg_run *bg_new(srv *s)
{
    bg_run *g = cn_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->s = s;
    g->refs = 2;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    cn_buf_init(&g->out, (size_t)16 << 20);
    return g;
}

static void bg_unref(bg_run *g)
{
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left)
        return;
    for (int i = 0; i < g->n; i++)
        free(g->paths[i]);
    mdl_catalog_free(g->cat);
    cn_buf_free(&g->out);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

static void put_line(bg_run *g, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    pthread_mutex_lock(&g->mu);
    if (s)
        cn_buf_printf(&g->out, "%s\n", s);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    free(s);
}

/* The thread's last words: the final line, then done. */
static void bg_finish(bg_run *g, json_t *fin)
{
    srv *s = g->s;
    put_line(g, fin);
    pthread_mutex_lock(&g->mu);
    g->done = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    bg_unref(g);
    atomic_fetch_sub(&s->n_background, 1);
}

static ssize_t bg_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    bg_run *g = cls;
    (void)pos;
    pthread_mutex_lock(&g->mu);
    while (g->off == g->out.len && !g->done)
        pthread_cond_wait(&g->cv, &g->mu);
    ssize_t n;
    if (g->off < g->out.len) {
        n = (ssize_t)CN_MIN(max, g->out.len - g->off);
        memcpy(buf, g->out.data + g->off, (size_t)n);
        g->off += (size_t)n;
    } else {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    }
    pthread_mutex_unlock(&g->mu);
    return n;
}

static void bg_done(void *cls)
{
    bg_run *g = cls;
    g->cancel = 1;
    bg_unref(g);
}

/* Start fn(g) in a thread and stream its lines. */
static int bg_start(srv_req *r, bg_run *g, void *(*fn)(void *))
{
    pthread_t th;
    atomic_fetch_add(&r->s->n_background, 1);
    if (pthread_create(&th, NULL, fn, g) != 0) {
        atomic_fetch_sub(&r->s->n_background, 1);
        g->refs = 1;
        bg_unref(g);
        return srv_reply_errorf(r, 500, NULL, "cannot start a thread");
    }
    pthread_detach(th);
    return srv_reply_stream(r, "application/x-ndjson", bg_read, g, bg_done);
}

static void on_ingest(void *ctx, const lib_event *ev)
{
    static const char *const outcomes[] = {"", "added", "updated", "unchanged", "failed",
                                           "pruned"};
    bg_run *g = ctx;
    json_t *o = json_object();
    if (ev->kind == LIB_EV_FILE) {
        const char *b = strrchr(ev->path, '/');
        json_object_set_new(o, "event", json_string("file"));
        json_object_set_new(o, "name", json_string(b ? b + 1 : ev->path));
        json_object_set_new(o, "outcome", json_string(ev->outcome > 0 && ev->outcome <= 5
                                                          ? outcomes[ev->outcome]
                                                          : "?"));
        json_object_set_new(o, "pages", json_integer(ev->pages));
        json_object_set_new(o, "passages", json_integer(ev->passages));
        json_object_set_new(o, "error", ev->error ? json_string(ev->error) : json_null());
        json_object_set_new(o, "files_done", json_integer(ev->files_done));
        json_object_set_new(o, "files_total", json_integer(ev->files_total));
    } else if (ev->kind == LIB_EV_EMBED) {
        json_object_set_new(o, "event", json_string("embed"));
        json_object_set_new(o, "done", json_integer(ev->embed_done));
        json_object_set_new(o, "total", json_integer(ev->embed_total));
        json_object_set_new(o, "eta_s", json_real(ev->eta_s));
    } else {
        json_object_set_new(o, "event", json_string("scan"));
        json_object_set_new(o, "files_total", json_integer(ev->files_total));
    }
    put_line(g, o);
}

static void *ingest_main(void *arg)
{
    bg_run *g = arg;
    srv *s = g->s;
    srv_error e;
    json_t *fin = json_object();
    json_object_set_new(fin, "event", json_string("done"));
    lib *l = srv_lib_acquire_writer(s, -1, &e); /* after any earlier upload; reads go on */
    if (!l) {
        json_object_set_new(fin, "error", json_string(e.msg));
    } else {
        lib_add_stats st = {0};
        cn_err err = {0};
        int rc = lib_add(l, (const char *const *)g->paths, g->n, false, on_ingest, g, &st, &err);
        int embedded = 0;
        if (!rc && s->o.embed_model) {
            embedded = lib_index(l, s->o.embed_model, s->o.threads, on_ingest, g, &err);
            rc = embedded < 0 ? embedded : 0;
        }
        srv_lib_release(s, l, true);
        json_object_set_new(fin, "added", json_integer(st.added));
        json_object_set_new(fin, "updated", json_integer(st.updated));
        json_object_set_new(fin, "unchanged", json_integer(st.unchanged));
        json_object_set_new(fin, "failed", json_integer(st.failed + g->not_stored));
        json_object_set_new(fin, "embedded", json_integer(CN_MAX(embedded, 0)));
        if (rc)
            json_object_set_new(fin, "error", json_string(err.msg));
    }
    bg_finish(g, fin);
    return NULL;
}

/* Move an upload into dir under its name, never over an existing file: a
** name taken already (an earlier upload, or one in this batch) becomes
** "name (2).ext", "name (3).ext", ... so both documents stay; name is set to
** the one used. rename(2) would replace silently; RENAME_NOREPLACE (or
** link(2) where the file system lacks it) fails instead, with no window
** between a check and the move. */
static int place_upload(const char *tmp, const char *dir, char name[128], char *final,
                        size_t cap)
{
    char stem[128], try[160];
    snprintf(stem, sizeof stem, "%s", name);
    const char *dot = strrchr(name, '.');
    size_t ext_at = dot && dot != name ? (size_t)(dot - name) : strlen(name);
    stem[ext_at] = 0;
    for (int k = 1; k < 1000; k++) {
        if (k == 1)
            snprintf(try, sizeof try, "%s", name);
        else
            snprintf(try, sizeof try, "%.100s (%d)%.20s", stem, k, name + ext_at);
        snprintf(final, cap, "%s/%s", dir, try);
        int rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            rc = link(tmp, final);
            if (rc == 0)
                unlink(tmp);
        }
        if (rc == 0) {
            snprintf(name, 128, "%.127s", try); /* fits: 100 + " (999)" + 20 */
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

int srv_lib_upload(srv_req *r)
{
    srv_upload *u = r->up;
    if (!u || u->n == 0)
        return srv_reply_errorf(r, 400, "file", "no file in the upload (send multipart/form-data "
                                "with a file field)");
    if (u->f) {
        int rc = fclose(u->f); /* the last buffered bytes are written now */
        u->f = NULL;
        if (rc != 0)
            return srv_reply_errorf(r, 507, "file", "storing %s failed: %s", u->names[u->n - 1],
                                    strerror(errno));
    }
    bg_run *g = bg_new(r->s);
    if (!g)
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    json_t *o = json_object(), *names = json_array(), *left_out = json_array();
    for (int i = 0; i < u->n; i++) {
        char final[PATH_MAX + 200];
        if (place_upload(u->tmp[i], u->dir, u->names[i], final, sizeof final) != 0) {
            /* the rest of the batch goes on; this one is reported, not dropped */
            json_array_append_new(left_out, json_pack("{s:s,s:s}", "name", u->names[i], "error",
                                                      errno == EEXIST
                                                          ? "too many files of this name"
                                                          : strerror(errno)));
            continue;
        }
        u->tmp[i][0] = 0;
        g->paths[g->n] = strdup(final);
        if (g->paths[g->n]) {
            g->n++;
            json_array_append_new(names, json_string(u->names[i]));
        }
    }
    g->not_stored = (int)json_array_size(left_out);
    json_object_set_new(o, "event", json_string("uploaded"));
    json_object_set_new(o, "files", names);
    json_object_set_new(o, "not_stored", left_out);
    put_line(g, o);
    return bg_start(r, g, ingest_main);
}

/* ---- the model manager (src/models) ----------------------------------------------- */

static const char *catalog_key(char *buf, size_t cap)
{
    return cn_config_get("catalog_key", buf, cap) && *buf ? buf : NULL;
}

static bool loaded_here(srv *s, const char *path)
{
    return (s->chat.kind && !strcmp(s->chat.path, path)) ||
           (s->embed.kind && !strcmp(s->embed.path, path));
}

int srv_models_list(srv_req *r)
{
    srv *s = r->s;
    cn_err err = {0};
    mdl_installed *ins = NULL;
    int n = 0;
    if (mdl_list(s->home, &ins, &n, &err))
        return srv_reply_errorf(r, 500, NULL, "%s", err.msg);
    char key[256];
    mdl_catalog *c = NULL;
    cn_err cerr = {0};
    mdl_catalog_load(s->home, catalog_key(key, sizeof key), &c, &cerr);
    mdl_hw hw;
    mdl_hw_detect(s->home, &hw);
    json_t *o = json_object(), *inst = json_array(), *avail = json_array(), *parts = json_array();
    for (int i = 0; i < n; i++) {
        json_t *m = json_pack("{s:s,s:s,s:s,s:I,s:b,s:b,s:b,s:b}", "name", ins[i].name, "role",
                              ins[i].role, "arch", ins[i].arch, "size", (json_int_t)ins[i].size,
                              "verified", ins[i].verified, "active", ins[i].active,
                              "rollback", ins[i].has_previous, "loaded",
                              loaded_here(s, ins[i].path));
        json_array_append_new(inst, m);
    }
    for (int i = 0; c && i < c->n; i++) {
        json_t *e = mdl_entry_json(&c->models[i], &hw);
        bool have = false;
        for (int k = 0; k < n; k++)
            have |= !strcmp(ins[k].name, c->models[i].name);
        json_object_set_new(e, "installed", json_boolean(have));
        json_array_append_new(avail, e);
    }
    mdl_partial part[16];
    int np = mdl_partials(s->home, part, 16);
    for (int i = 0; i < np; i++)
        json_array_append_new(parts, json_pack("{s:s,s:I,s:I}", "name", part[i].name, "done",
                                               (json_int_t)part[i].done, "size",
                                               (json_int_t)part[i].size));
    json_object_set_new(o, "installed", inst);
    json_object_set_new(o, "available", avail);
    json_object_set_new(o, "partial", parts);
    json_object_set_new(o, "catalog", c ? json_string(c->source) : json_null());
    if (!c)
        json_object_set_new(o, "catalog_error", json_string(cerr.msg));
    json_object_set_new(o, "machine",
                        json_pack("{s:I,s:I,s:I,s:i,s:s}", "ram_total", (json_int_t)hw.ram_total,
                                  "ram_avail", (json_int_t)hw.ram_avail, "disk_free",
                                  (json_int_t)hw.disk_free, "cores", hw.cores, "simd",
                                  hw.simd ? hw.simd : "none"));
    for (int k = 0; c && k < 2; k++) {
        const char *role = k ? "embed" : "chat";
        char why[256] = "";
        const mdl_entry *e = mdl_recommend(c, &hw, role, why, sizeof why);
        json_t *rec = json_object_get(o, "recommended");
        if (!rec)
            json_object_set_new(o, "recommended", rec = json_object());
        json_object_set_new(rec, role, e ? json_pack("{s:s,s:s}", "name", e->name, "why", why)
                                         : json_null());
    }
    free(ins);
    mdl_catalog_free(c);
    return srv_reply_json(r, 200, o);
}

/* The "name" field of a JSON body, or NULL after replying. */
static const char *body_name(srv_req *r, json_t **body, int *ret)
{
    srv_error e;
    if (srv_parse_body(r->body.data, r->body.len, &r->s->o.lim, body, &e)) {
        *ret = srv_reply_error(r, &e);
        return NULL;
    }
    json_t *n = json_object_get(*body, "name");
    if (!json_is_string(n) || !*json_string_value(n) || json_string_length(n) > 100) {
        json_decref(*body);
        *ret = srv_reply_errorf(r, 400, "name", "name: expected a model name");
        return NULL;
    }
    return json_string_value(n);
}

static void on_pull(void *ctx, const mdl_progress *p)
{
    bg_run *g = ctx;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:f,s:i}", "event", "progress", "model",
                          p->name ? p->name : g->name, "phase", p->phase, "done",
                          (json_int_t)p->done, "total", (json_int_t)p->total, "bytes_per_s",
                          p->bytes_per_s, "eta_s", p->eta_s, "parts", p->parts);
    if (p->note)
        json_object_set_new(o, "note", json_string(p->note));
    put_line(g, o);
}

static void *pull_main(void *arg)
{
    bg_run *g = arg;
    srv *s = g->s;
    cn_err err = {0};
    mdl_dl_opts o = {.fn = on_pull, .ctx = g, .name = g->name, .cancel = &g->cancel};
    int rc = mdl_pull(s->home, &g->entry, &o, &err);
    json_t *fin = json_pack("{s:s,s:s}", "event", rc ? "error" : "done", "model", g->name);
    if (rc)
        json_object_set_new(fin, "message", json_string(err.msg));
    mdl_installed m;
    if (!rc && mdl_get(s->home, g->name, &m, NULL) == CN_OK) {
        json_object_set_new(fin, "size", json_integer(m.size));
        json_object_set_new(fin, "active", json_boolean(m.active));
    }
    atomic_store(&s->pulling, 0);
    bg_finish(g, fin);
    return NULL;
}

int srv_models_pull(srv_req *r)
{
    srv *s = r->s;
    json_t *body;
    int ret;
    const char *name = body_name(r, &body, &ret);
    if (!name)
        return ret;
    char key[256];
    cn_err err = {0};
    bg_run *g = bg_new(s);
    if (!g) {
        json_decref(body);
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    }
    snprintf(g->name, sizeof g->name, "%s", name);
    json_decref(body);
    if (mdl_catalog_load(s->home, catalog_key(key, sizeof key), &g->cat, &err)) {
        g->refs = 1;
        bg_unref(g);
        return srv_reply_errorf(r, 500, NULL, "%s", err.msg);
    }
    const mdl_entry *e = mdl_catalog_find(g->cat, g->name);
    if (!e) {
        ret = srv_reply_errorf(r, 404, "name", "no model '%s' in the catalog", g->name);
        g->refs = 1;
        bg_unref(g);
        return ret;
    }
    g->entry = *e;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&s->pulling, &idle, 1)) {
        g->refs = 1;
        bg_unref(g);
        return srv_reply_errorf(r, 409, "name", "another model is downloading; one at a time");
    }
    return bg_start(r, g, pull_main);
}

int srv_models_use(srv_req *r)
{
    srv *s = r->s;
    json_t *body;
    int ret;
    const char *name = body_name(r, &body, &ret);
    if (!name)
        return ret;
    cn_err err = {0};
    mdl_installed m;
    int rc = mdl_get(s->home, name, &m, &err);
    if (!rc)
        rc = mdl_use(s->home, name, &err);
    if (rc) {
        ret = srv_reply_errorf(r, rc == CN_ENOTFOUND ? 404 : 500, "name", "%s", err.msg);
    } else {
        json_t *o = json_pack("{s:s,s:s,s:b,s:b}", "name", m.name, "role", m.role, "active", 1,
                              "loaded", loaded_here(s, m.path));
        if (!loaded_here(s, m.path))
            json_object_set_new(o, "note", json_string("the active model is loaded when cairn "
                                                       "serve starts: restart it to use this one"));
        ret = srv_reply_json(r, 200, o);
    }
    json_decref(body);
    return ret;
}

int srv_models_remove(srv_req *r)
{
    srv *s = r->s;
    const char *name = r->path + strlen("/api/models/");
    cn_err err = {0};
    mdl_installed m;
    int rc = mdl_get(s->home, name, &m, &err);
    if (rc == CN_OK && loaded_here(s, m.path))
        return srv_reply_errorf(r, 409, "name", "%s is loaded by this server; stop it first", name);
    rc = mdl_remove(s->home, name, &err); /* also a partial download only */
    if (rc)
        return srv_reply_errorf(r, rc == CN_ENOTFOUND ? 404 : rc == CN_EINVAL ? 400 : 500, "name",
                                "%s", err.msg);
    json_t *o = json_object();
    json_object_set_new(o, "removed", json_string(name));
    return srv_reply_json(r, 200, o);
}
