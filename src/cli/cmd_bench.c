/*
** cmd_bench.c: `cairn bench` times prompt processing and generation on any
** GGUF decoder, the way llama.cpp's llama-bench does, so the two can be
** compared on the same file and machine:
**
**   pp: a prompt of P random tokens evaluated from an empty cache, in
**       batches of --batch tokens; t/s = P / time.
**   tg: N tokens decoded one at a time from an empty cache (no sampling);
**       t/s = N / time.
**
** Each test runs --reps times after a warm-up that touches every weight
** (page faults are not speed); the median is reported, with the spread.
*/
#include "cli/cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char bench_help[] =
    "usage: cairn bench -m FILE [-p 512] [-n 64] [-t N] [options]\n"
    "\n"
    "Measure how fast this machine runs a model: prompt processing (pp, the\n"
    "prompt evaluated in batches) and generation (tg, one token at a time),\n"
    "in tokens per second, median of several runs. Random tokens, no\n"
    "sampling: the figures compare directly with llama.cpp's llama-bench\n"
    "(`llama-bench -m FILE -p 512 -n 64 -t N`).\n"
    "\n"
    "  -m, --model FILE   GGUF model file (required)\n"
    "  -p, --prompt N     prompt tokens to process; 0 skips the test (default 512)\n"
    "  -n, --gen N        tokens to generate; 0 skips the test (default 64)\n"
    "  -t, --threads N    worker threads (default: physical cores)\n"
    "  -b, --batch N      prompt tokens per forward pass (default 512)\n"
    "  -r, --reps N       runs of each test; the median is reported (default 3)\n"
    "      --kv-type T    KV cache precision: f16 (default) or f32\n"
    "      --mlock        lock the weights in memory\n"
    "      --verify       also time checking k = 2, 4, 8 drafted tokens in one pass\n"
    "                     (speculative decoding) against decoding one token, at\n"
    "                     position 256\n"
    "      --json         print one JSON object instead of the table\n"
    "\n"
    "Set CAIRN_KERNELS=scalar, avx2 or avx512 to time a lower level of kernels\n"
    "than the best this CPU has.\n";

typedef struct bench_args {
    const char *model;
    int n_prompt, n_gen, reps;
    eng_opts opts;
    bool json, verify;
} bench_args;

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: n is a handful */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Tokens from a fixed generator, avoiding the lowest ids (often control
** tokens): what they are does not change the work. */
static void random_tokens(int32_t *ids, int n, int n_vocab, uint64_t *s)
{
    for (int i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)(256 + (*s >> 33) % (uint64_t)(n_vocab > 512 ? n_vocab - 256 : 1));
        if (ids[i] >= n_vocab)
            ids[i] = n_vocab - 1;
    }
}

static int time_pp(eng_model *m, const int32_t *ids, int n, double *secs, cn_err *err)
{
    eng_model_reset(m);
    double t0 = cn_now();
    int rc = eng_decode(m, ids, n, 0, err);
    *secs = cn_now() - t0;
    return rc;
}

static int time_tg(eng_model *m, const int32_t *ids, int n, double *secs, cn_err *err)
{
    eng_model_reset(m);
    double t0 = cn_now();
    for (int i = 0; i < n; i++) {
        int rc = eng_decode(m, &ids[i], 1, i, err);
        if (rc)
            return rc;
    }
    *secs = cn_now() - t0;
    return CN_OK;
}

/* Bytes of weights one generated token reads: every matrix, and the
** embedding table only when it doubles as the output matrix. */
static uint64_t bytes_per_token(const eng_model *m)
{
    const gguf_file *g = eng_model_gguf(m);
    bool tied = eng_model_hparams(m)->tied_output;
    uint64_t sum = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (t->n_dims < 2 || (!tied && !strcmp(t->name, "token_embd.weight")))
            continue;
        sum += t->size;
    }
    return sum;
}

/* Checking drafts: one pass over 1 + k tokens at position VERIFY_AT, with
** logits for each (k = 0: one token, as generation decodes). */
#define VERIFY_AT 256
static const int verify_k[] = {0, 2, 4, 8};

static int time_verify(eng_model *m, const int32_t *ids, int k, float *logits, double *secs,
                       cn_err *err)
{
    double t0 = cn_now();
    int rc = k == 0 ? eng_decode(m, ids, 1, VERIFY_AT, err)
                    : eng_decode_all(m, ids, k + 1, VERIFY_AT, logits, err);
    *secs = cn_now() - t0;
    return rc;
}

static int parse(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){.n_prompt = 512, .n_gen = 64, .reps = 3, .opts.n_batch = 512};
    static const struct option longs[] = {
        {"model", required_argument, NULL, 'm'}, {"prompt", required_argument, NULL, 'p'},
        {"gen", required_argument, NULL, 'n'}, {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'}, {"reps", required_argument, NULL, 'r'},
        {"kv-type", required_argument, NULL, CLI_OPT_KV_TYPE},
        {"mlock", no_argument, NULL, CLI_OPT_MLOCK}, {"json", no_argument, NULL, CLI_OPT_JSON},
        {"verify", no_argument, NULL, CLI_OPT_FIRST_FREE}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    long n;
    while ((c = cli_getopt("bench", argc, argv, ":m:p:n:t:b:r:h", longs)) != -1) {
        const char *v = optarg;
        bool ok = true;
        switch (c) {
        case 'h': fputs(bench_help, stdout); return -1;
        case CLI_OPT_JSON: a->json = true; break;
        case CLI_OPT_MLOCK: a->opts.mlock = true; break;
        case CLI_OPT_FIRST_FREE: a->verify = true; break;
        case 'm': a->model = v; break;
        case CLI_OPT_KV_TYPE:
            ok = !strcmp(v, "f16") || !strcmp(v, "f32");
            a->opts.kv_f32 = !strcmp(v, "f32");
            break;
        case 'p': ok = cli_int(v, 0, 1 << 16, &n) && ((a->n_prompt = (int)n), true); break;
        case 'n': ok = cli_int(v, 0, 1 << 16, &n) && ((a->n_gen = (int)n), true); break;
        case 't': ok = cli_int(v, 1, 512, &n) && ((a->opts.n_threads = (int)n), true); break;
        case 'b': ok = cli_int(v, 1, 1 << 16, &n) && ((a->opts.n_batch = (int)n), true); break;
        case 'r': ok = cli_int(v, 1, 100, &n) && ((a->reps = (int)n), true); break;
        default: return 2;
        }
        if (!ok)
            return c == CLI_OPT_KV_TYPE
                       ? cli_usage("bench", "--kv-type %s: expected f16 or f32", v)
                       : cli_usage("bench", "-%c %s: bad value (see the ranges in --help)", c, v);
    }
    if (optind < argc)
        return cli_usage("bench", "unexpected argument '%s'", argv[optind]);
    if (!a->model)
        return cli_usage("bench", "a model is required (-m FILE)");
    if (!a->n_prompt && !a->n_gen)
        return cli_usage("bench", "nothing to measure: -p and -n are both 0");
    a->opts.n_ctx = CN_MAX(CN_MAX(a->n_prompt, a->n_gen), a->verify ? VERIFY_AT : 0) + 16;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_args a;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    cn_err err = {0};
    eng_model *m;
    if ((rc = eng_model_open(&m, a.model, &a.opts, &err)))
        return cli_error(&err);
    int n_vocab = eng_model_hparams(m)->n_vocab;
    int n_ids = CN_MAX(CN_MAX(CN_MAX(a.n_prompt, a.n_gen), 8), a.verify ? VERIFY_AT + 9 : 0);
    int32_t *ids = cn_malloc((size_t)n_ids * sizeof *ids);
    double *pp = cn_calloc((size_t)a.reps, sizeof *pp), *tg = cn_calloc((size_t)a.reps, sizeof *tg);
    uint64_t seed = 42;
    double warm, pp_tps[100] = {0}, tg_tps[100] = {0}, ver_ms[4] = {0};
    float *vlogits = NULL;
    if (!ids || !pp || !tg) {
        rc = cn_fail(&err, CN_ENOMEM, "out of memory");
        goto done;
    }
    random_tokens(ids, n_ids, n_vocab, &seed);
    /* warm-up: fault in every page of weights, wake the threads */
    if ((rc = time_tg(m, ids, 2, &warm, &err)))
        goto done;
    for (int r = 0; r < a.reps && a.n_prompt; r++)
        if ((rc = time_pp(m, ids, a.n_prompt, &pp[r], &err)))
            goto done;
    for (int r = 0; r < a.reps && a.n_gen; r++)
        if ((rc = time_tg(m, ids, a.n_gen, &tg[r], &err)))
            goto done;

    if (a.verify)
        vlogits = cn_malloc(sizeof(float) * (size_t)n_vocab * (ENG_SPEC_MAX + 1));
    if (a.verify && !vlogits) {
        rc = cn_fail(&err, CN_ENOMEM, "out of memory");
        goto done;
    }
    if (a.verify) { /* the context up to VERIFY_AT once, then each check many times */
        eng_model_reset(m);
        if ((rc = eng_decode(m, ids, VERIFY_AT, 0, &err)))
            goto done;
        for (int i = 0; i < 4; i++) {
            double t[100];
            for (int r = 0; r < a.reps * 4; r++) /* short: more runs */
                if ((rc = time_verify(m, ids + VERIFY_AT, verify_k[i], vlogits, &t[r], &err)))
                    goto done;
            ver_ms[i] = median(t, a.reps * 4) * 1e3;
        }
    }
    for (int r = 0; r < a.reps; r++) {
        pp_tps[r] = pp[r] > 0 ? a.n_prompt / pp[r] : 0;
        tg_tps[r] = tg[r] > 0 ? a.n_gen / tg[r] : 0;
    }
    double pp_min = pp_tps[0], pp_max = pp_tps[0], tg_min = tg_tps[0], tg_max = tg_tps[0];
    for (int r = 1; r < a.reps; r++) {
        pp_min = CN_MIN(pp_min, pp_tps[r]), pp_max = CN_MAX(pp_max, pp_tps[r]);
        tg_min = CN_MIN(tg_min, tg_tps[r]), tg_max = CN_MAX(tg_max, tg_tps[r]);
    }
    double pp_med = median(pp_tps, a.reps), tg_med = median(tg_tps, a.reps);
    const gguf_file *g = eng_model_gguf(m);
    const char *kernels = eng_kernels();
    if (a.json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(a.model));
        json_object_set_new(o, "file_size", json_integer((json_int_t)g->file_size));
        json_object_set_new(o, "bytes_per_token", json_integer((json_int_t)bytes_per_token(m)));
        json_object_set_new(o, "threads", json_integer(eng_model_n_threads(m)));
        json_object_set_new(o, "batch", json_integer(CN_MIN(a.opts.n_batch, eng_model_n_ctx(m))));
        json_object_set_new(o, "kernels", json_string(kernels));
        json_object_set_new(o, "reps", json_integer(a.reps));
        json_object_set_new(o, "pp_tokens", json_integer(a.n_prompt));
        json_object_set_new(o, "pp_tps", json_real(a.n_prompt ? pp_med : 0));
        json_object_set_new(o, "tg_tokens", json_integer(a.n_gen));
        json_object_set_new(o, "tg_tps", json_real(a.n_gen ? tg_med : 0));
        if (a.verify) {
            json_t *v = json_object();
            for (int i = 0; i < 4; i++) {
                char key[8];
                snprintf(key, sizeof key, "%d", verify_k[i]);
                json_object_set_new(v, key, json_real(ver_ms[i]));
            }
            json_object_set_new(o, "verify_ms", v);
        }
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(5));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        char sz[32];
        printf("%-40s %10s %7s %8s %14s\n", "model", "size", "threads", "test", "t/s");
        const char *name = strrchr(a.model, '/') ? strrchr(a.model, '/') + 1 : a.model;
        if (a.n_prompt)
            printf("%-40s %10s %7d %5s%-3d %8.2f (%.2f-%.2f)\n", name, cli_size(g->file_size, sz),
                   eng_model_n_threads(m), "pp", a.n_prompt, pp_med, pp_min, pp_max);
        if (a.n_gen)
            printf("%-40s %10s %7d %5s%-3d %8.2f (%.2f-%.2f)\n", name, cli_size(g->file_size, sz),
                   eng_model_n_threads(m), "tg", a.n_gen, tg_med, tg_min, tg_max);
        for (int i = 1; i < 4 && a.verify; i++)
            printf("checking %d drafted tokens at position %d: %.2f ms, %.2fx one token (%.2f ms)\n",
                   verify_k[i], VERIFY_AT, ver_ms[i], ver_ms[i] / ver_ms[0], ver_ms[0]);
        printf("median of %d runs (min-max); %s kernels\n", a.reps, kernels);
    }
done:
    free(vlogits);
    free(ids);
    free(pp);
    free(tg);
    eng_model_close(m);
    return rc ? cli_error(&err) : 0;
}
