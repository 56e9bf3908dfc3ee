/*
** search.c: exact vector ranking and reciprocal rank fusion.
*/
#include "search/search.h"
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

/* A min-heap of the k best hits so far: the root is the weakest kept. */
static bool worse(const search_hit *a, const search_hit *b)
{
    return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void sift_down(search_hit *h, int n, int i)
{
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && worse(&h[c + 1], &h[c]))
            c++;
        if (!worse(&h[c], &h[i]))
            return;
        search_hit t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

static int cmp_best_first(const void *a, const void *b)
{
    const search_hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int search_vector(const float *matrix, int64_t n, int dim, const int64_t *ids, const float *q,
                  int k, search_hit *hits)
{
    if (k <= 0 || n <= 0)
        return 0;
    int kept = 0;
    for (int64_t i = 0; i < n; i++) {
        search_hit h = {ids[i], eng_dot(dim, matrix + (size_t)i * dim, q)};
        if (kept < k) {
            hits[kept++] = h;
            if (kept == k) /* heapify once full */
                for (int j = k / 2 - 1; j >= 0; j--)
                    sift_down(hits, k, j);
        } else if (worse(&hits[0], &h)) {
            hits[0] = h;
            sift_down(hits, k, 0);
        }
    }
    qsort(hits, (size_t)kept, sizeof *hits, cmp_best_first);
    return kept;
}

int search_fuse_rrf(const search_hit *a, int na, const search_hit *b, int nb, int k_rrf, int k,
                    search_hit *out)
{
    int n = 0;
    search_hit *all = cn_malloc(sizeof *all * (size_t)(na + nb));
    if (!all)
        return 0;
    for (int i = 0; i < na; i++)
        all[n++] = (search_hit){a[i].id, 1.0f / (float)(k_rrf + i + 1)};
    for (int i = 0; i < nb; i++) {
        float s = 1.0f / (float)(k_rrf + i + 1);
        int j = 0;
        while (j < n && all[j].id != b[i].id)
            j++;
        if (j < n)
            all[j].score += s;
        else
            all[n++] = (search_hit){b[i].id, s};
    }
    qsort(all, (size_t)n, sizeof *all, cmp_best_first);
    int m = n < k ? n : k;
    memcpy(out, all, sizeof *out * (size_t)m);
    free(all);
    return m;
}
