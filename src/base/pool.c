/*
** pool.c: a persistent thread pool. Workers sleep on a condition variable
** between runs; each run is identified by a generation counter so a worker
** never runs the same job twice or misses one.
*/
#include "base/base.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cn_pool {
    int n;                 /* threads including the caller */
    pthread_t *threads;    /* n - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    uint64_t generation;   /* bumped for every run */
    int pending;           /* workers still busy in this run */
    bool quit;
    cn_pool_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    cn_pool *p;
    int ith;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    cn_pool *p = w->p;
    int ith = w->ith;
    free(w);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->start, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        cn_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);

        fn(ctx, ith, p->n);

        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

int cn_pool_new(cn_pool **out, int n_threads, cn_err *err)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 512)
        return cn_fail(err, CN_EINVAL, "thread count %d is out of range (1 to 512)", n_threads);
    cn_pool *p = cn_calloc(1, sizeof *p);
    if (!p)
        return cn_fail(err, CN_ENOMEM, "out of memory creating the thread pool");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = cn_calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        cn_pool_free(p);
        return cn_fail(err, CN_ENOMEM, "out of memory creating the thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *w = malloc(sizeof *w);
        if (w)
            *w = (worker_arg){p, i};
        int rc = w ? pthread_create(&p->threads[i - 1], NULL, worker, w) : -1;
        if (rc != 0) {
            free(w);
            p->n = i; /* only join the threads that exist */
            cn_pool_free(p);
            return cn_fail(err, CN_ENOMEM, "cannot start thread %d: %s", i,
                           rc > 0 ? strerror(rc) : "out of memory");
        }
    }
    *out = p;
    return CN_OK;
}

void cn_pool_free(cn_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int cn_pool_size(const cn_pool *p) { return p ? p->n : 1; }

void cn_pool_run(cn_pool *p, cn_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);

    fn(ctx, 0, p->n);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int cn_physical_cores(void)
{
    /* count distinct (physical id, core id) pairs in /proc/cpuinfo */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int pairs[1024][2], n = 0, phys = 0;
    char line[256];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1)
                phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int seen = 0;
                for (int i = 0; i < n; i++)
                    if (pairs[i][0] == phys && pairs[i][1] == v)
                        seen = 1;
                if (!seen && n < 1024) {
                    pairs[n][0] = phys;
                    pairs[n][1] = v;
                    n++;
                }
            }
        }
        fclose(f);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = online > 0 ? (int)online : 1;
    return n;
}
