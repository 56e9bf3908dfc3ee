/*
** progress.c: background work (an upload's ingest, a model's download)
** streamed to its client as one JSON object per line.
*/
#include "server/srv_int.h"

#include <string.h>

srv_bg *srv_bg_new(srv *s)
{
    srv_bg *g = cn_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->s = s;
    g->refs = 2;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    cn_buf_init(&g->out, (size_t)16 << 20);
    return g;
}

void srv_bg_unref(srv_bg *g)
{
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left)
        return;
    for (int i = 0; i < g->n; i++)
        free(g->paths[i]);
    mdl_catalog_free(g->cat);
    json_decref(g->schema);
    cn_buf_free(&g->out);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

void srv_bg_line(srv_bg *g, json_t *o)
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
void srv_bg_finish(srv_bg *g, json_t *fin)
{
    srv *s = g->s;
    bool gated = g->gated;
    srv_bg_line(g, fin);
    pthread_mutex_lock(&g->mu);
    g->done = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    srv_bg_unref(g);
    if (gated)
        srv_gate_leave(&s->model_gate);
    atomic_fetch_sub(&s->n_background, 1);
}

static ssize_t bg_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    srv_bg *g = cls;
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
    srv_bg *g = cls;
    __atomic_store_n(&g->cancel, 1, __ATOMIC_RELAXED); /* read by the download thread */
    srv_bg_unref(g);
}

/* Start fn(g) in a thread and stream its lines. */
int srv_bg_start(srv_req *r, srv_bg *g, void *(*fn)(void *))
{
    pthread_t th;
    if (r->gated) { /* the thread uses the model after the request has left */
        srv_gate_enter_more(&r->s->model_gate);
        g->gated = true;
    }
    atomic_fetch_add(&r->s->n_background, 1);
    if (pthread_create(&th, NULL, fn, g) != 0) {
        atomic_fetch_sub(&r->s->n_background, 1);
        g->refs = 1;
        if (g->gated)
            srv_gate_leave(&r->s->model_gate);
        srv_bg_unref(g);
        return srv_reply_errorf(r, 500, NULL, "cannot start a thread");
    }
    pthread_detach(th);
    return srv_reply_stream(r, "application/x-ndjson", bg_read, g, bg_done);
}
