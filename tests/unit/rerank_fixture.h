/*
** rerank_fixture.h: the comparison of Cairn's reranker scores with a
** llama.cpp b4747 fixture (tests/data/vectors/NAME/rerank.json: items of
** query, document, the pair's token ids and llama.cpp's score), shared by
** test_rerank.c (BERT) and test_jina.c (jina-bert-v2). Included by those
** two test files only.
*/
#ifndef CAIRN_TEST_RERANK_FIXTURE_H
#define CAIRN_TEST_RERANK_FIXTURE_H

#include "engine/engine.h"
#include "tok/tok.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct rr_report {
    int n, id_mismatch;
    double worst_abs, worst_rel; /* Cairn's packed scores against llama.cpp's */
    double worst_ids_path;       /* the fixture's own ids through the encoder */
    double spread;               /* how far one query's scores lie apart */
} rr_report;

/*
** Score every pair: its ids first (Cairn's pair layout must give llama.cpp's
** ids, all in segment 0), then each query's documents packed in one batch.
** Within a query, llama.cpp's order must hold wherever its scores differ by
** more than 1e-5 (checked here). With ids_path, each fixture pair's ids also
** go straight through eng_encoder_rerank.
*/
static inline void rr_compare(eng_encoder *e, tok_vocab *v, json_t *items, bool ids_path,
                              rr_report *r)
{
    *r = (rr_report){0};
    r->n = (int)json_array_size(items);
    int n_ctx = eng_encoder_n_ctx(e);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx * 2), *types = ids + n_ctx;
    int32_t *want = malloc(sizeof(int32_t) * (size_t)n_ctx);
    cn_err err = {0};
    for (int i0 = 0; i0 < r->n;) {
        const char *q = json_string_value(json_object_get(json_array_get(items, (size_t)i0), "query"));
        const char *docs[16];
        size_t lens[16];
        double ref[16];
        int m = 0;
        while (i0 + m < r->n && m < 16 &&
               !strcmp(q, json_string_value(json_object_get(json_array_get(items, (size_t)(i0 + m)),
                                                            "query")))) {
            json_t *it = json_array_get(items, (size_t)(i0 + m));
            docs[m] = json_string_value(json_object_get(it, "document"));
            lens[m] = strlen(docs[m]);
            ref[m] = json_real_value(json_object_get(it, "score"));
            json_t *jw = json_object_get(it, "ids");
            int rn = (int)CN_MIN(json_array_size(jw), (size_t)n_ctx);
            for (int k = 0; k < rn; k++)
                want[k] = (int32_t)json_integer_value(json_array_get(jw, (size_t)k));
            bool cut = true;
            int c = eng_rerank_pair(e, v, q, strlen(q), docs[m], lens[m], ids, types, &cut, &err);
            bool same = c == rn && !cut;
            for (int k = 0; same && k < c; k++)
                same = ids[k] == want[k] && types[k] == 0;
            r->id_mismatch += !same;
            if (ids_path) {
                float s1 = NAN;
                const int32_t *wp[1] = {want};
                EXPECT_EQ_INT(eng_encoder_rerank(e, wp, NULL, &rn, 1, &s1, &err), CN_OK);
                r->worst_ids_path = fmax(r->worst_ids_path, fabs(s1 - ref[m]));
            }
            m++;
        }
        float got[16];
        bool cut[16];
        EXPECT_EQ_INT(eng_rerank_texts(e, v, q, strlen(q), docs, lens, m, got, cut, &err), CN_OK);
        for (int k = 0; k < m; k++) {
            double d = fabs(got[k] - ref[k]);
            r->worst_abs = fmax(r->worst_abs, d);
            r->worst_rel = fmax(r->worst_rel, d / fabs(ref[k]));
            EXPECT(!cut[k]);
            for (int j = 0; j < m; j++)
                r->spread = fmax(r->spread, fabs(ref[k] - ref[j]));
        }
        for (int a = 0; a < m; a++)
            for (int b = 0; b < m; b++)
                if (ref[a] > ref[b] + 1e-5)
                    EXPECT(got[a] > got[b]);
        i0 += m;
    }
    free(ids);
    free(want);
}

#endif
