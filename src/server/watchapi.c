/*
** watchapi.c: the server follows the library's watched folders (watch.h)
** in a thread of its own, and says how it goes:
**   GET  /api/watch   the folders, their state, files waiting to settle,
**                     what is being indexed, totals since the start
**   POST /api/watch   {"add": DIR} or {"remove": DIR}: only from this
**                     machine (a server bound to loopback), since it makes
**                     the server read folders of its own file system
** The thread writes with the server's one writer handle, a batch at a
** time, so uploads and other writes take turns with it.
*/
#include "server/srv_int.h"
#include "store/store.h"
#include "watch/watch.h"

#include <string.h>

/* A write embeds what it adds: it passes the models' gate first (a model
** arriving meanwhile is loaded between batches), then takes the writer. */
static lib *w_acquire(void *ctx, bool write, cn_err *err)
{
    srv *s = ctx;
    srv_error e;
    if (write)
        srv_gate_enter(&s->model_gate);
    lib *l = write ? srv_lib_acquire_writer(s, -1, &e) : srv_lib_acquire(s, &e);
    if (!l) {
        cn_fail(err, CN_ELIMIT, "%s", e.msg);
        if (write)
            srv_gate_leave(&s->model_gate);
    }
    return l;
}

static void w_release(void *ctx, lib *l, bool wrote)
{
    srv *s = ctx;
    bool writer = l == s->writer;
    srv_lib_release(s, l, wrote);
    if (writer)
        srv_gate_leave(&s->model_gate);
}

/* Scanned pages and vectors of what was added, as an upload has them. */
static void w_after(void *ctx, lib *l)
{
    srv *s = ctx;
    cn_err err = {0};
    lib_ocr_stats os;
    store_ocr_counts c;
    if (store_ocr_count(lib_store(l), 0, &c, &err) == CN_OK && c.pending &&
        lib_ocr_some(l, NULL, s->o.threads, 0, &s->stopping, NULL, NULL, &os, &err) < 0)
        fprintf(stderr, "cairn serve: watched folders: OCR: %s\n", err.msg);
    if (s->o.embed_model && lib_index(l, s->o.embed_model, s->o.threads, NULL, NULL, &err) < 0)
        fprintf(stderr, "cairn serve: watched folders: embedding: %s\n", err.msg);
}

static void w_file(void *ctx, const lib_event *ev)
{
    srv *s = ctx;
    if (ev->kind != LIB_EV_FILE || ev->outcome == LIB_UNCHANGED || s->o.quiet)
        return;
    pthread_mutex_lock(&s->log_mu);
    if (ev->outcome == LIB_FAILED)
        fprintf(stderr, "cairn serve: watched: failed %s\n", ev->error ? ev->error : ev->path);
    else
        fprintf(stderr, "cairn serve: watched: %s %s\n",
                ev->outcome == LIB_ADDED ? "added" : ev->outcome == LIB_PRUNED ? "removed"
                                                                               : "updated",
                ev->path);
    pthread_mutex_unlock(&s->log_mu);
}

static void w_status(void *ctx, json_t *status)
{
    srv *s = ctx;
    json_t *copy = json_deep_copy(status);
    pthread_mutex_lock(&s->watch_mu);
    json_decref(s->watch_status);
    s->watch_status = copy;
    pthread_mutex_unlock(&s->watch_mu);
}

static void *watch_main(void *arg)
{
    srv *s = arg;
    wat_host h = {.ctx = s, .acquire = w_acquire, .release = w_release, .after_add = w_after,
                  .on_file = w_file, .on_status = w_status};
    wat_opts o = {.settle_s = s->o.watch_settle};
    cn_err err = {0};
    if (wat_loop(&o, &h, &s->stopping, &err))
        fprintf(stderr, "cairn serve: watched folders are not followed: %s\n", err.msg);
    atomic_fetch_sub(&s->n_background, 1);
    return NULL;
}

void srv_watch_start(srv *s)
{
    if (s->o.no_watch)
        return;
    pthread_t th;
    atomic_fetch_add(&s->n_background, 1);
    if (pthread_create(&th, NULL, watch_main, s) != 0) {
        atomic_fetch_sub(&s->n_background, 1);
        fprintf(stderr, "cairn serve: cannot start following the watched folders\n");
    } else
        pthread_detach(th);
}

void srv_watch_free(srv *s)
{
    json_decref(s->watch_status);
    s->watch_status = NULL;
}

json_t *srv_watch_json(srv *s)
{
    pthread_mutex_lock(&s->watch_mu);
    json_t *o = s->watch_status ? json_deep_copy(s->watch_status) : NULL;
    pthread_mutex_unlock(&s->watch_mu);
    if (!o)
        o = json_pack("{s:[], s:i, s:i, s:s}", "folders", "watches", 0, "pending", 0, "activity",
                      s->o.no_watch ? "off" : "starting");
    if (s->o.no_watch)
        json_object_set_new(o, "activity", json_string("off"));
    return o;
}

int srv_watch_get(srv_req *r) { return srv_reply_json(r, 200, srv_watch_json(r->s)); }

int srv_watch_change(srv_req *r)
{
    srv *s = r->s;
    if (!s->loopback)
        return srv_reply_errorf(r, 403, NULL, "watched folders are changed only on the machine "
                                              "itself (`cairn watch add DIR`), not over the "
                                              "network");
    json_error_t je;
    json_t *o = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    const char *add = json_string_value(json_object_get(o, "add"));
    const char *rm = json_string_value(json_object_get(o, "remove"));
    if (!json_is_object(o) || (!add == !rm)) {
        json_decref(o);
        return srv_reply_errorf(r, 400, NULL, "expected {\"add\": DIR} or {\"remove\": DIR}");
    }
    srv_error e;
    lib *l = srv_lib_acquire_writer(s, srv_lib_wait_ms, &e);
    if (!l) {
        json_decref(o);
        return srv_reply_error(r, &e);
    }
    cn_err err = {0};
    char dir[PATH_MAX];
    bool already = false;
    int rc = add ? wat_follow(l, add, dir, sizeof dir, &already, &err)
                 : wat_unfollow(l, rm, dir, sizeof dir, &err);
    srv_lib_release(s, l, false);
    json_decref(o);
    if (rc)
        return srv_reply_errorf(r, rc == CN_ENOTFOUND ? 404 : 400, add ? "add" : "remove", "%s",
                                err.msg);
    return srv_reply_json(r, 200, json_pack("{s:s, s:s, s:b}", "path", dir, "action",
                                            add ? "add" : "remove", "already", already));
}
