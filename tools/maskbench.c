/*
** maskbench.c: what a grammar's token mask costs per step (issue 16).
**
**   maskbench VOCAB.gguf SCHEMA.json JSON-TEXT
**
** Tokenizes JSON-TEXT (a document the schema accepts) with the vocabulary of
** VOCAB.gguf, then walks it token by token under the schema, timing the mask
** of the whole vocabulary at each step ($THREADS threads, default 2). Prints
** ms per mask (mean, median, p90, max).
** bench/grammar.sh sets this against a decode step of the 1B shape.
*/
#include "engine/engine.h"
#include "grammar/grammar.h"
#include "tok/tok.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: maskbench VOCAB.gguf SCHEMA.json JSON-TEXT\n");
        return 2;
    }
    cn_err err = {0};
    gguf_file *gf;
    tok_vocab *v;
    if (gguf_open(&gf, argv[1], &err) || tok_open(&v, gf, &err)) {
        fprintf(stderr, "maskbench: %s\n", err.msg);
        return 1;
    }
    char *schema;
    size_t len;
    gr_grammar *g;
    eng_constraint *c;
    cn_pool *pool = NULL;
    const char *t = getenv("THREADS");
    int threads = t && atoi(t) > 0 ? atoi(t) : 2;
    if (cn_read_file(argv[2], 1 << 20, &schema, &len, &err) ||
        gr_from_schema(schema, len, &g, &err) || cn_pool_new(&pool, threads, &err) || eng_constraint_new(g, v, pool, &c, &err)) {
        fprintf(stderr, "maskbench: %s\n", err.msg);
        return 1;
    }
    int n_vocab = tok_n_vocab(v);
    static int32_t ids[4096];
    int n = tok_encode(v, argv[3], strlen(argv[3]), false, false, ids, 4096, &err);
    float *logits = calloc((size_t)n_vocab, sizeof *logits), *out = malloc((size_t)n_vocab * 4);
    double *ms = calloc((size_t)n + 1, sizeof *ms);
    int steps = 0, allowed_sum = 0;
    for (int i = 0; i < n; i++) {
        double t0 = cn_now();
        int a = eng_constraint_mask(c, logits, out);
        ms[steps++] = (cn_now() - t0) * 1e3;
        allowed_sum += a;
        if (isinf(out[ids[i]])) {
            fprintf(stderr, "maskbench: token %d of the text is refused by the schema\n", i);
            return 1;
        }
        eng_constraint_accept(c, ids[i]);
    }
    double total = 0;
    for (int i = 0; i < steps; i++)
        total += ms[i];
    qsort(ms, (size_t)steps, sizeof *ms, cmp);
    printf("vocabulary %d tokens, %d steps: mask mean %.3f ms, p50 %.3f ms, p90 %.3f ms, max "
           "%.3f ms (%.0f tokens allowed on average)\n",
           n_vocab, steps, steps ? total / steps : 0.0, ms[steps / 2], ms[steps * 9 / 10],
           ms[steps - 1], steps ? (double)allowed_sum / steps : 0.0);
    eng_constraint_free(c);
    cn_pool_free(pool);
    gr_free(g);
    free(schema);
    free(logits), free(out), free(ms);
    tok_close(v);
    gguf_close(gf);
    return 0;
}
