/*
** worker.c: one thread per loaded model. The worker owns the model and its
** KV cache (consecutive chat turns reuse the cached prefix) and takes jobs
** from a bounded FIFO queue; a full queue is the caller's 429. A job whose
** client went away is taken off the queue at once, or stopped at its next
** token if it is running, so the next job starts within a token's time.
*/
#include "server/srv_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

size_t srv_answer_limit = (size_t)16 << 20;

void srv_job_init(srv_job *j, int kind)
{
    memset(j, 0, sizeof *j);
    j->kind = kind;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    cn_buf_init(&j->text, srv_answer_limit);
    atomic_init(&j->cancel, false);
}

void srv_job_free(srv_job *j)
{
    free(j->ids);
    cn_buf_free(&j->text);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
}

/* Text from the engine: checked for citations if asked, appended, announced. */
static int on_token(void *ctx, int32_t id, const char *text, size_t len)
{
    srv_job *j = ctx;
    (void)id;
    pthread_mutex_lock(&j->mu);
    int rc = j->use_cite ? rag_cite_feed(&j->cite, text, len, &j->text)
                         : cn_buf_append(&j->text, text, len);
    if (rc)
        j->overflow = true; /* the text would be cut: stop, and say so (run_job) */
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return rc || atomic_load(&j->cancel) ? 1 : 0;
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    int k = 0;
    while (k < na && k < nb && a[k] == b[k])
        k++;
    return k;
}

/* Before a prompt: the web UI and API clients interleave conversations, and
** each would otherwise evaluate its whole history again after another's
** turn. A prompt that leaves what the cache holds keeps a copy of it (if it
** is more than a few tokens); a prompt that continues a kept conversation
** further than the cache's own gets it back. At most SRV_KV_KEEP copies and
** SRV_KV_BYTES, the least recently used dropped first. Failing to keep one
** only costs time. */
static void switch_conversation(srv_worker *w, const int32_t *ids, int n)
{
    int nc;
    const int32_t *ct = eng_kv_tokens(w->m, NULL, &nc);
    int cur = common_prefix(ct, nc, ids, n), best = -1, best_keep = cur + 16;
    for (int i = 0; i < w->n_kv; i++) {
        int ns;
        const int32_t *st = eng_kv_tokens(w->m, w->kv[i], &ns);
        int k = common_prefix(st, ns, ids, n);
        if (k >= best_keep)
            best = i, best_keep = k;
    }
    eng_kv_snap *back = NULL;
    if (best >= 0) {
        back = w->kv[best];
        memmove(w->kv + best, w->kv + best + 1, sizeof *w->kv * (size_t)(w->n_kv - best - 1));
        w->n_kv--;
    }
    cn_err err = {0};
    eng_kv_snap *mine = NULL;
    if (nc - cur >= 32 && eng_kv_save(w->m, &mine, &err) == CN_OK && mine) {
        if (w->n_kv == SRV_KV_KEEP)
            eng_kv_snap_free(w->kv[--w->n_kv]);
        memmove(w->kv + 1, w->kv, sizeof *w->kv * (size_t)w->n_kv);
        w->kv[0] = mine;
        w->n_kv++;
        size_t total = 0;
        for (int i = 0; i < w->n_kv; i++) {
            total += eng_kv_snap_bytes(w->kv[i]);
            if (total > SRV_KV_BYTES) {
                for (int k = i; k < w->n_kv; k++)
                    eng_kv_snap_free(w->kv[k]);
                w->n_kv = i;
                break;
            }
        }
    }
    if (back) {
        eng_kv_restore(w->m, back);
        eng_kv_snap_free(back);
    }
}

static void run_job(srv_worker *w, srv_job *j)
{
    cn_err err = {0};
    int rc;
    if (j->kind == JOB_GENERATE) {
        switch_conversation(w, j->ids, j->n_ids);
        if (w->draft) { /* the same answer, in fewer passes when the drafts hold */
            j->go.draft = w->draft;
            j->go.draft_max = ENG_DRAFT_MAX_DEFAULT;
        }
        rc = eng_generate(w->m, w->v, j->ids, j->n_ids, &j->go, on_token, j, &j->st, &err);
        if (rc)
            eng_model_reset(w->m); /* the cache may hold half a prompt */
        pthread_mutex_lock(&j->mu);
        if (j->use_cite && rag_cite_flush(&j->cite, &j->text))
            j->overflow = true;
        if (j->overflow) {
            /* an error, never an answer cut short in silence */
            rc = cn_fail(&err, CN_ELIMIT, "the answer grew past this server's limit of %zu "
                         "bytes and was stopped there", srv_answer_limit);
            j->st.stop = ENG_STOP_LENGTH;
            eng_model_reset(w->m);
        }
        pthread_mutex_unlock(&j->mu);
    } else if (j->kind == JOB_RERANK) {
        double t0 = cn_now();
        rc = eng_rerank_texts(w->enc, w->v, j->query, j->query_len, j->texts, j->lens,
                              j->n_texts, j->vecs, j->truncated, &err);
        j->st.t_prompt = cn_now() - t0;
    } else {
        double t0 = cn_now();
        rc = eng_embed_texts(w->enc, w->v, j->texts, j->lens, j->n_texts, j->vecs, j->truncated,
                             &err);
        j->st.t_prompt = cn_now() - t0;
    }
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->err = err;
    j->running = false;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- the gate (srv_int.h) ---------------------------------------------------------- */

void srv_gate_init(srv_gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

void srv_gate_destroy(srv_gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

void srv_gate_enter(srv_gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->closed || g->closing) /* a switch waiting goes first: it is not starved */
        pthread_cond_wait(&g->cv, &g->mu);
    g->inside++;
    pthread_mutex_unlock(&g->mu);
}

void srv_gate_enter_more(srv_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->inside++;
    pthread_mutex_unlock(&g->mu);
}

void srv_gate_leave(srv_gate *g)
{
    pthread_mutex_lock(&g->mu);
    if (--g->inside == 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int srv_gate_close(srv_gate *g)
{
    pthread_mutex_lock(&g->mu);
    int was = g->inside;
    g->closing++;
    while (g->closed || g->inside > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    g->closing--;
    g->closed = true;
    pthread_mutex_unlock(&g->mu);
    return was;
}

void srv_gate_open(srv_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->closed = false;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->len == 0)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        srv_job *j = w->q[w->head];
        w->head = (w->head + 1) % w->cap;
        w->len--;
        pthread_mutex_lock(&j->mu);
        j->queued = false;
        j->running = true;
        j->t_start = cn_now();
        pthread_mutex_unlock(&j->mu);
        pthread_mutex_unlock(&w->mu);
        run_job(w, j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The chat template family of m's metadata (ChatML when unknown). */
static const char *chat_family(const eng_model *m)
{
    gguf_str t = {0};
    gguf_get_str(eng_model_gguf(m), "tokenizer.chat_template", &t, NULL);
    const char *f = tok_chat_family(t.ptr, (size_t)t.len, eng_model_hparams(m)->arch);
    return strcmp(f, "unknown") ? f : "chatml";
}

/* A language model worker's model, draft, tokenizer and kept conversations. */
static void free_model(srv_worker *w)
{
    for (int i = 0; i < w->n_kv; i++)
        eng_kv_snap_free(w->kv[i]);
    w->n_kv = 0;
    eng_model_close(w->draft);
    eng_model_close(w->m);
    tok_close(w->v);
    w->draft = w->m = NULL;
    w->v = NULL;
}

int srv_worker_open(srv_worker *w, int kind, const char *path, const eng_opts *eo, int queue,
                    cn_err *err)
{
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->path = path;
    int rc;
    if (kind == JOB_GENERATE) {
        rc = eng_model_open(&w->m, path, eo, err);
        if (!rc)
            rc = tok_open(&w->v, eng_model_gguf(w->m), err);
        if (!rc) {
            w->family = chat_family(w->m);
            w->n_ctx = eng_model_n_ctx(w->m);
        }
    } else {
        rc = eng_encoder_open(&w->enc, path, eo, err);
        if (!rc)
            rc = eng_encoder_expect(w->enc, kind == JOB_RERANK, err);
        if (!rc)
            rc = tok_open(&w->v, eng_encoder_gguf(w->enc), err);
        if (!rc) {
            w->n_ctx = eng_encoder_n_ctx(w->enc);
            w->dim = eng_encoder_dim(w->enc);
        }
    }
    w->cap = CN_MAX(queue, 1); /* waiting jobs; the running one has left the queue */
    w->q = rc ? NULL : cn_calloc((size_t)w->cap, sizeof *w->q);
    if (!rc && !w->q)
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    if (!rc) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->th, NULL, worker_main, w) != 0)
            rc = cn_fail(err, CN_ENOMEM, "cannot start a worker thread");
        else
            w->started = true;
    }
    if (rc) {
        srv_worker_close(w);
        w->kind = 0;
    }
    return rc;
}

int srv_worker_draft(srv_worker *w, const char *path, cn_err *err)
{
    snprintf(w->draft_path, sizeof w->draft_path, "%s", path);
    return eng_draft_open(&w->draft, path, w->m, w->v, err);
}

int srv_worker_reload(srv_worker *w, const char *path, const eng_opts *eo, char *note,
                      size_t note_cap, cn_err *err)
{
    note[0] = '\0';
    if (w->kind != JOB_GENERATE)
        return cn_fail(err, CN_EINVAL, "only the language model is switched in place");
    eng_model *m = NULL, *draft = NULL;
    tok_vocab *v = NULL;
    int rc = eng_model_open(&m, path, eo, err);
    if (!rc)
        rc = tok_open(&v, eng_model_gguf(m), err);
    if (rc) {
        tok_close(v);
        eng_model_close(m);
        return rc;
    }
    if (w->draft) {
        cn_err de = {0};
        if (eng_draft_open(&draft, w->draft_path, m, v, &de))
            snprintf(note, note_cap, "the draft model is dropped: %s", de.msg);
    }
    /* the gate is closed and every job has left: nobody reads these now */
    pthread_mutex_lock(&w->mu);
    free_model(w); /* with the conversations of the old model's cache */
    w->m = m;
    w->v = v;
    w->draft = draft;
    w->family = chat_family(m);
    w->n_ctx = eng_model_n_ctx(m);
    pthread_mutex_unlock(&w->mu);
    return CN_OK;
}

void srv_worker_close(srv_worker *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        w->started = false;
    }
    free(w->q);
    free_model(w);
    eng_encoder_close(w->enc);
    w->q = NULL;
    w->enc = NULL;
}

int srv_job_submit(srv_worker *w, srv_job *j)
{
    pthread_mutex_lock(&w->mu);
    if (w->len >= w->cap || w->stop) {
        pthread_mutex_unlock(&w->mu);
        return CN_ELIMIT;
    }
    j->queued = true;
    j->t_queued = cn_now();
    w->q[(w->head + w->len) % w->cap] = j;
    w->len++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return CN_OK;
}

void srv_job_cancel(srv_worker *w, srv_job *j)
{
    atomic_store(&j->cancel, true);
    pthread_mutex_lock(&w->mu);
    if (j->queued) {
        /* take it out, keeping the others in order */
        int k = 0;
        for (int i = 0; i < w->len; i++) {
            srv_job *x = w->q[(w->head + i) % w->cap];
            if (x != j)
                w->q[(w->head + k++) % w->cap] = x;
        }
        w->len = k;
        j->queued = false;
        pthread_mutex_lock(&j->mu);
        j->done = true;
        j->rc = CN_ELIMIT;
        j->st.stop = ENG_STOP_CANCEL;
        pthread_mutex_unlock(&j->mu);
    } else {
        /* never submitted: nobody else will set done */
        pthread_mutex_lock(&j->mu);
        if (!j->running)
            j->done = true;
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
}

void srv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms % 1000 * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(cv, mu, &ts);
}

bool srv_job_wait(srv_worker *w, srv_job *j, srv_req *r)
{
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        srv_cond_wait_ms(&j->cv, &j->mu, 100);
        if (!j->done && r && srv_client_gone(r)) {
            pthread_mutex_unlock(&j->mu);
            srv_job_cancel(w, j);
            return false;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return true;
}

int srv_worker_queued(srv_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->len;
    pthread_mutex_unlock(&w->mu);
    return n;
}

json_t *srv_worker_json(srv_worker *w)
{
    struct stat sb = {0};
    stat(w->path, &sb);
    json_t *m = json_object();
    json_object_set_new(m, "name", json_string(w->name));
    json_object_set_new(m, "role", json_string(w->kind == JOB_GENERATE ? "chat"
                                                   : w->kind == JOB_RERANK ? "rerank"
                                                                           : "embedding"));
    json_object_set_new(m, "path", json_string(w->path));
    json_object_set_new(m, "size", json_integer((json_int_t)sb.st_size));
    json_object_set_new(m, "context", json_integer(w->n_ctx));
    json_object_set_new(m, "queued", json_integer(srv_worker_queued(w)));
    return m;
}

int srv_worker_retry_after(srv_worker *w) { return CN_MAX(1, srv_worker_queued(w)); }
