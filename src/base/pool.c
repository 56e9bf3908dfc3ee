/*
** pool.c: a persistent thread pool with a spin-then-sleep handoff.
**
** A decode step runs a few hundred short parallel sections (one per matrix
** product), each a few tens of microseconds long. Waking sleeping threads
** through the kernel costs about as much as the work, so a thread that has
** finished waits by spinning on an atomic counter for a while (long enough
** to span the gap between two sections of one step) before it sleeps on a
** futex. Runs are numbered by a generation counter: a worker never runs the
** same job twice or misses one.
**
** Memory order: the caller publishes fn/ctx, then bumps `generation` with
** release order; a worker that sees the new generation (acquire) sees the
** job. Workers finish with a release decrement of `pending`, which the
** caller reads with acquire, so everything a worker wrote is visible after
** cn_pool_run returns. Sleepers are counted so that the common case (no one
** asleep) makes no system call; the sequentially consistent order of
** "count myself asleep, then re-check the word" against "change the word,
** then read the count" guarantees one side sees the other.
*/
#include "base/base.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

/* Spin iterations before sleeping: a pause is about 20 ns on current x86
** cores (measured on Zen), so about 150 us, many times the gap between the
** matrix products of one token, short enough not to hog a shared machine. */
#define SPIN_ROUNDS 8000

struct cn_pool {
    int n;                       /* threads including the caller */
    pthread_t *threads;          /* n - 1 workers */
    _Atomic uint32_t generation; /* bumped for every run (and to quit) */
    _Atomic uint32_t pending;    /* workers still busy in this run */
    _Atomic int sleepers;        /* workers asleep on generation */
    _Atomic int caller_asleep;   /* the caller asleep on pending */
    _Atomic bool quit;
    cn_pool_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    cn_pool *p;
    int ith;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Sleep while *word == expected (it may return early: callers re-check). */
static void word_wait(_Atomic uint32_t *word, uint32_t expected)
{
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)word, (void)expected;
    usleep(50);
#endif
}

static void word_wake(_Atomic uint32_t *word)
{
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* Wait until *word != old: spin first, then sleep, counting ourselves in
** *asleep while asleep. Returns the new value (acquire). */
static uint32_t wait_change(_Atomic uint32_t *word, uint32_t old, _Atomic int *asleep)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint32_t v = atomic_load_explicit(word, memory_order_acquire);
        if (v != old)
            return v;
        cpu_relax();
    }
    for (;;) {
        atomic_fetch_add(asleep, 1);
        uint32_t v = atomic_load(word);
        if (v == old)
            word_wait(word, old);
        atomic_fetch_sub(asleep, 1);
        v = atomic_load_explicit(word, memory_order_acquire);
        if (v != old)
            return v;
    }
}

static void *worker(void *arg)
{
    worker_arg *w = arg;
    cn_pool *p = w->p;
    int ith = w->ith;
    free(w);
    uint32_t seen = 0;
    for (;;) {
        seen = wait_change(&p->generation, seen, &p->sleepers);
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            return NULL;
        p->fn(p->ctx, ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && /* seq_cst: before reading caller_asleep */
            atomic_load(&p->caller_asleep))
            word_wake(&p->pending);
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
    p->threads = cn_calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        p->n = 1;
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
    atomic_store_explicit(&p->quit, true, memory_order_release);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    word_wake(&p->generation);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i - 1], NULL);
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
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, (uint32_t)(p->n - 1), memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: ordered before reading sleepers */
    if (atomic_load(&p->sleepers))
        word_wake(&p->generation);

    fn(ctx, 0, p->n);

    uint32_t left = atomic_load_explicit(&p->pending, memory_order_acquire);
    while (left)
        left = wait_change(&p->pending, left, &p->caller_asleep);
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
