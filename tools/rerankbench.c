/*
** rerankbench: reranker latency as search pays it -- one query against N
** passages scored in one packed run (eng_rerank_texts), timed in process so
** that loading the model is not counted. bench/rerank.sh feeds it passages of
** real documents.
**
**   rerankbench -m MODEL.gguf [-t THREADS] [-r RUNS] PAIRS.json
**
** PAIRS.json: {"query": "...", "documents": ["...", ...]}. Prints one line
** of JSON: pairs, tokens (all pairs, as laid out), the median, best and
** worst of RUNS timed runs (after one untimed warm-up) in milliseconds.
*/
#include "base/base.h"
#include "engine/engine.h"
#include "tok/tok.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int threads = 2, runs = 5, c;
    while ((c = getopt(argc, argv, "m:t:r:")) != -1) {
        if (c == 'm')
            model = optarg;
        else if (c == 't')
            threads = atoi(optarg);
        else if (c == 'r')
            runs = atoi(optarg);
        else
            return 2;
    }
    if (!model || optind + 1 != argc || threads < 1 || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: rerankbench -m MODEL.gguf [-t THREADS] [-r RUNS] PAIRS.json\n");
        return 2;
    }
    json_error_t je;
    json_t *in = json_load_file(argv[optind], 0, &je);
    json_t *docs = json_object_get(in, "documents");
    const char *q = json_string_value(json_object_get(in, "query"));
    int n = (int)json_array_size(docs);
    if (!q || n < 1) {
        fprintf(stderr, "rerankbench: %s: expected {\"query\": string, \"documents\": [string, "
                        "...]}\n", argv[optind]);
        return 1;
    }
    const char **texts = calloc((size_t)n, sizeof *texts);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    float *scores = calloc((size_t)n, sizeof *scores);
    double *ms = calloc((size_t)runs, sizeof *ms);
    for (int i = 0; i < n; i++) {
        texts[i] = json_string_value(json_array_get(docs, (size_t)i));
        if (!texts[i]) {
            fprintf(stderr, "rerankbench: documents[%d] is not a string\n", i);
            return 1;
        }
        lens[i] = strlen(texts[i]);
    }
    cn_err err = {0};
    eng_opts o = {.n_threads = threads};
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    int rc = eng_encoder_open(&e, model, &o, &err);
    if (!rc)
        rc = eng_encoder_expect(e, true, &err);
    if (!rc)
        rc = tok_open(&v, eng_encoder_gguf(e), &err);
    /* the tokens the packed run computes: every pair as laid out */
    long tokens = 0;
    int cap = e ? eng_encoder_n_ctx(e) : 0;
    int32_t *ids = calloc((size_t)(cap ? cap : 1), sizeof *ids);
    int32_t *types = calloc((size_t)(cap ? cap : 1), sizeof *types);
    for (int i = 0; !rc && i < n; i++) {
        int k = eng_rerank_pair(e, v, q, strlen(q), texts[i], lens[i], ids, types, NULL, &err);
        if (k < 0)
            rc = k;
        else
            tokens += k;
    }
    for (int r = -1; !rc && r < runs; r++) { /* run -1: warm-up, not timed */
        double t0 = cn_now();
        rc = eng_rerank_texts(e, v, q, strlen(q), texts, lens, n, scores, NULL, &err);
        if (r >= 0)
            ms[r] = 1e3 * (cn_now() - t0);
    }
    if (rc) {
        fprintf(stderr, "rerankbench: %s\n", err.msg);
        return 1;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    double med = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
    printf("{\"pairs\": %d, \"tokens\": %ld, \"threads\": %d, \"runs\": %d, \"median_ms\": %.1f, "
           "\"best_ms\": %.1f, \"worst_ms\": %.1f}\n",
           n, tokens, threads, runs, med, ms[0], ms[runs - 1]);
    free(ids);
    free(types);
    free(texts);
    free(lens);
    free(scores);
    free(ms);
    tok_close(v);
    eng_encoder_close(e);
    json_decref(in);
    return 0;
}
