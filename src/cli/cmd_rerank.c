/*
** cmd_rerank.c: `cairn rerank -m MODEL [--json] QUERY DOC...` scores each
** document against the query with a cross-encoder, all pairs in packed
** batches: one raw score per document in input order, or, with --json, the
** shape RAG tools expect from a rerank API, best first.
*/
#include "cli/cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: cairn rerank -m MODEL [options] QUERY DOC...\n\n"
    "Score each DOC against QUERY with a reranker (a BERT cross-encoder with a\n"
    "classification head, e.g. an MS MARCO MiniLM cross-encoder in GGUF). Prints one\n"
    "raw score (a logit; higher is more relevant) per DOC, one per line, in input\n"
    "order. A pair longer than the model's context loses the end of the document\n"
    "(and of a long query, which keeps half), with a note on stderr. A QUERY or DOC\n"
    "that starts with '-' goes after `--`.\n\n"
    "  -m, --model FILE   the reranker: a GGUF file or an installed name\n"
    "      --home DIR     data directory where installed models are looked up\n"
    "  -t, --threads N    worker threads (default: physical cores)\n"
    "  -b, --batch N      tokens per packed batch (default 2048)\n"
    "      --pair-format bert|sep-sep\n"
    "                     override how the model joins a pair: bert is\n"
    "                     [CLS] q [SEP] d [SEP], document in segment 1 (the default\n"
    "                     unless the file says otherwise); sep-sep is llama.cpp's\n"
    "                     [CLS] q [SEP] [SEP] d [SEP], all in segment 0\n"
    "      --json         {\"model\", \"results\": [{\"index\", \"relevance_score\"}]},\n"
    "                     best first\n";

typedef struct ranked {
    int index;
    float score;
} ranked;

static int by_score(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

static int print_json(const char *model, const float *scores, int n)
{
    ranked *r = cn_malloc_array((size_t)n, sizeof *r);
    json_t *root = json_object(), *res = json_array();
    int rc = r && root && res ? 0 : 1;
    for (int i = 0; !rc && i < n; i++)
        r[i] = (ranked){i, scores[i]};
    if (!rc)
        qsort(r, (size_t)n, sizeof *r, by_score);
    for (int i = 0; !rc && i < n; i++) {
        json_t *it = json_object();
        rc |= !it || json_object_set_new(it, "index", json_integer(r[i].index)) ||
              json_object_set_new(it, "relevance_score", json_real(r[i].score)) ||
              json_array_append_new(res, it);
    }
    char *s = NULL;
    if (!rc) {
        json_object_set_new(root, "model", json_string(model));
        json_object_set(root, "results", res);
        s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    }
    if (s)
        printf("%s\n", s);
    else
        fprintf(stderr, "cairn: out of memory writing the results\n");
    free(s);
    free(r);
    json_decref(res);
    json_decref(root);
    return s ? 0 : 1;
}

int cmd_rerank(int argc, char **argv)
{
    const char *model = NULL, *home = NULL;
    bool json = false;
    int format = -1;
    eng_opts o = {0};
    enum { OPT_PAIR_FORMAT = CLI_OPT_FIRST_FREE };
    static const struct option longs[] = {
        {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'}, {"home", required_argument, NULL, CLI_OPT_HOME},
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"pair-format", required_argument, NULL, OPT_PAIR_FORMAT},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("rerank", argc, argv, ":m:t:b:h", longs)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case CLI_OPT_HOME: home = optarg; break;
        case CLI_OPT_JSON: json = true; break;
        case OPT_PAIR_FORMAT:
            if (!strcmp(optarg, "bert"))
                format = ENG_PAIR_BERT;
            else if (!strcmp(optarg, "sep-sep"))
                format = ENG_PAIR_SEP_SEP;
            else
                return cli_usage("rerank", "--pair-format %s: expected bert or sep-sep", optarg);
            break;
        case 't':
        case 'b':
            if (cli_encoder_option("rerank", &o, c, optarg) != 1)
                return 2;
            break;
        case 'h': printf("%s", help); return 0;
        default: return 2;
        }
    }
    if (!model)
        return cli_usage("rerank", "missing -m MODEL (a reranker GGUF file or installed name)");
    if (argc - optind < 2)
        return cli_usage("rerank", "expected a QUERY and at least one DOC");
    char model_buf[4096];
    int mrc = cli_model_path("rerank", home, model, "rerank", model_buf, sizeof model_buf, &model);
    if (mrc)
        return mrc;
    cn_err err = {0};
    eng_encoder *e = NULL;
    tok_vocab *tv = NULL;
    int rc = cli_open_encoder(model, &o, true, &e, &tv, &err);
    if (rc)
        return cli_error(&err);
    if (format >= 0)
        eng_encoder_set_pair_format(e, format);
    const char *query = argv[optind];
    int n = argc - optind - 1;
    const char *const *docs = (const char *const *)argv + optind + 1;
    size_t *lens = cn_malloc_array((size_t)n, sizeof *lens);
    float *scores = cn_malloc_array((size_t)n, sizeof *scores);
    bool *cut = cn_malloc_array((size_t)n, sizeof *cut);
    if (!lens || !scores || !cut)
        rc = cn_fail(&err, CN_ENOMEM, "out of memory for %d documents", n);
    for (int i = 0; !rc && i < n; i++)
        lens[i] = strlen(docs[i]);
    if (!rc)
        rc = eng_rerank_texts(e, tv, query, strlen(query), docs, lens, n, scores, cut, &err);
    for (int i = 0; !rc && i < n; i++)
        if (cut[i])
            fprintf(stderr, "cairn: the query and document %d were cut to fit the model's %d "
                    "tokens together\n", i + 1, eng_encoder_n_ctx(e));
    if (!rc) {
        if (json)
            rc = print_json(model, scores, n) ? CN_ENOMEM : CN_OK;
        else
            for (int i = 0; i < n; i++)
                printf("%.9g\n", scores[i]);
    }
    fflush(stdout);
    free(lens);
    free(scores);
    free(cut);
    tok_close(tv);
    eng_encoder_close(e);
    if (rc == CN_ENOMEM && !err.msg[0])
        return 1;
    return rc ? cli_error(&err) : 0;
}
