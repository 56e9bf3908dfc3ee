/*
** search.h: ranking passages. Vector search is exact cosine similarity over
** a contiguous matrix of L2-normalised passage vectors; hybrid search fuses
** the keyword and vector rankings with reciprocal rank fusion.
*/
#ifndef CN_SEARCH_H
#define CN_SEARCH_H

#include "base/base.h"

typedef struct search_hit {
    int64_t id;   /* passage id */
    float score;  /* higher is better; meaning depends on the ranking */
} search_hit;

/* The k rows of matrix (n rows of dim floats, row i is passage ids[i]) most
** similar to q, best first, into hits; returns how many (min(k, n)). Rows and
** q are L2-normalised, so the dot product is the cosine. */
int search_vector(const float *matrix, int64_t n, int dim, const int64_t *ids, const float *q,
                  int k, search_hit *hits);

/* Reciprocal rank fusion of two rankings (best first): each passage scores
** the sum over the lists it appears in of 1 / (k_rrf + rank), rank from 1.
** Writes the best k into out (sorted, ties by id); returns how many. */
int search_fuse_rrf(const search_hit *a, int na, const search_hit *b, int nb, int k_rrf, int k,
                    search_hit *out);

#endif
