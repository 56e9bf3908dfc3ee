/*
** libpool.c: the server's library handles. A store is used by one thread at
** a time, so reads (listing, search, status, grounded answers) borrow one of
** SRV_LIB_POOL handles, each its own SQLite connection, and run side by
** side; writes (an upload's ingest, a removal) take the one writing handle
** (SQLite has one writer at a time, and in WAL mode readers never wait for
** it). Every wait has a deadline but an ingest's. All handles share the
** embedding worker's model and one snapshot of the library's vectors.
*/
#include "server/srv_int.h"

#include <stdio.h>
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

static int embedder_init(srv *s, cn_err *err)
{
    int rc = lib_embedder_init(&s->emb, s->o.embed_model, err);
    if (rc)
        return rc;
    s->emb.dim = s->embed.dim;
    s->emb.embed = embed_on_worker;
    s->emb.ctx = &s->embed;
    s->has_emb = true;
    return CN_OK;
}

int srv_lib_share_embedder(srv *s, cn_err *err)
{
    int rc = embedder_init(s, err);
    for (int k = 0; k <= SRV_LIB_POOL && !rc; k++)
        lib_share_embedder(k < SRV_LIB_POOL ? s->libs[k] : s->writer, &s->emb);
    return rc;
}

void srv_lib_acquire_all(srv *s)
{
    pthread_mutex_lock(&s->lib_mu);
    for (int k = 0; k < SRV_LIB_POOL; k++) {
        while (s->lib_busy[k])
            pthread_cond_wait(&s->lib_cv, &s->lib_mu);
        s->lib_busy[k] = true;
    }
    while (s->writer_busy)
        pthread_cond_wait(&s->lib_cv, &s->lib_mu);
    s->writer_busy = true;
    pthread_mutex_unlock(&s->lib_mu);
}

void srv_lib_release_all(srv *s)
{
    pthread_mutex_lock(&s->lib_mu);
    for (int k = 0; k < SRV_LIB_POOL; k++)
        s->lib_busy[k] = false;
    s->writer_busy = false;
    pthread_cond_broadcast(&s->lib_cv);
    pthread_mutex_unlock(&s->lib_mu);
}

int srv_lib_open_all(srv *s, cn_err *err)
{
    if (s->embed.kind) {
        int rc = embedder_init(s, err);
        if (rc)
            return rc;
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
