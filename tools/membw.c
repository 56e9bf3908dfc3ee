/*
** membw: the machine's memory bandwidth, STREAM-style, for the engine
** benchmark. Generating a token reads every weight once, so the read
** bandwidth divided by the bytes of weights is the ceiling on tokens per
** second; bench/engine.sh reports generation as a share of it.
**
**   membw [-t THREADS] [-m MIB] [--json]
**
** Two kernels over arrays much larger than any cache, each thread on its own
** contiguous part, best of several passes (as STREAM reports):
**   read:  sum of a[i]               (bytes: |a|)
**   triad: a[i] = b[i] + s * c[i]    (bytes: |a| + |b| + |c|; writes count)
*/
#include "base/base.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

typedef struct bw_job {
    const uint64_t *a;
    double *x, *y, *z;
    size_t n;          /* elements per array */
    int kind;          /* 0 read, 1 triad */
    uint64_t sink[64]; /* per-thread sums, so the reads are not optimized away */
} bw_job;

static void run(void *ctx, int ith, int nth)
{
    bw_job *j = ctx;
    size_t per = (j->n / nth) & ~(size_t)7, i0 = per * (size_t)ith;
    size_t i1 = ith == nth - 1 ? j->n & ~(size_t)7 : i0 + per;
    if (j->kind == 0) {
#if defined(__x86_64__)
        __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t i = i0; i < i1; i += 8) {
            s0 = _mm_add_epi64(s0, _mm_load_si128((const __m128i *)(j->a + i)));
            s1 = _mm_add_epi64(s1, _mm_load_si128((const __m128i *)(j->a + i + 2)));
            s2 = _mm_add_epi64(s2, _mm_load_si128((const __m128i *)(j->a + i + 4)));
            s3 = _mm_add_epi64(s3, _mm_load_si128((const __m128i *)(j->a + i + 6)));
        }
        uint64_t out[2];
        _mm_storeu_si128((__m128i *)out,
                         _mm_add_epi64(_mm_add_epi64(s0, s1), _mm_add_epi64(s2, s3)));
        j->sink[ith % 64] = out[0] + out[1];
#else
        uint64_t s = 0;
        for (size_t i = i0; i < i1; i++)
            s += j->a[i];
        j->sink[ith % 64] = s;
#endif
    } else {
        for (size_t i = i0; i < i1; i++)
            j->x[i] = j->y[i] + 3.0 * j->z[i];
    }
}

int main(int argc, char **argv)
{
    int threads = 1, mib = 1024;
    bool json = false;
    static const struct option longs[] = {{"json", no_argument, NULL, 'j'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "t:m:", longs, NULL)) != -1) {
        switch (c) {
        case 't': threads = atoi(optarg); break;
        case 'm': mib = atoi(optarg); break;
        case 'j': json = true; break;
        default: fprintf(stderr, "usage: membw [-t THREADS] [-m MIB] [--json]\n"); return 2;
        }
    }
    if (threads < 1 || threads > 64 || mib < 64) {
        fprintf(stderr, "membw: threads 1 to 64, at least 64 MiB\n");
        return 2;
    }
    size_t bytes = (size_t)mib << 20, n = bytes / 8;
    uint64_t *a = aligned_alloc(64, bytes);
    double *x = aligned_alloc(64, bytes / 2), *y = aligned_alloc(64, bytes / 2),
           *z = aligned_alloc(64, bytes / 2);
    cn_pool *pool;
    cn_err err = {0};
    if (!a || !x || !y || !z || cn_pool_new(&pool, threads, &err)) {
        fprintf(stderr, "membw: %s\n", err.msg[0] ? err.msg : "out of memory");
        return 1;
    }
    /* touch everything first (page faults are not bandwidth) */
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    for (size_t i = 0; i < n / 2; i++)
        x[i] = 0, y[i] = 1, z[i] = 2;
    bw_job j = {.a = a, .x = x, .y = y, .z = z};
    double best[2] = {0, 0};
    for (int kind = 0; kind < 2; kind++) {
        j.kind = kind;
        j.n = kind == 0 ? n : n / 2;
        double moved = kind == 0 ? (double)bytes : 3.0 * (bytes / 2);
        for (int rep = 0; rep < 5; rep++) {
            double t0 = cn_now();
            cn_pool_run(pool, run, &j);
            double gbs = moved / (cn_now() - t0) / 1e9;
            best[kind] = gbs > best[kind] ? gbs : best[kind];
        }
    }
    if (json)
        printf("{\"threads\":%d,\"read_gbs\":%.2f,\"triad_gbs\":%.2f}\n", threads, best[0], best[1]);
    else
        printf("memory bandwidth, %d thread%s: read %.1f GB/s, triad %.1f GB/s (sink %llu)\n",
               threads, threads > 1 ? "s" : "", best[0], best[1],
               (unsigned long long)(j.sink[0] & 1));
    cn_pool_free(pool);
    free(a), free(x), free(y), free(z);
    return 0;
}
