/*
** cmd_embed.c: `cairn embed -m FILE [--json] TEXT...` prints one sentence
** vector per text (texts from stdin, one per line, when none are given);
** `--bench` measures chunks/s on 256-token chunks.
*/
#include "cli/cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: cairn embed -m FILE [options] [TEXT...]\n\n"
    "Print one embedding vector per TEXT (or per line of stdin when no TEXT is given):\n"
    "space-separated floats on one line, L2-normalised. Texts longer than the model's\n"
    "context are truncated, with a note on stderr.\n\n"
    "  -m, --model FILE   a BERT-family embedding model (all-MiniLM, bge-small, ...):\n"
    "                     a GGUF file or an installed name (default: the active one)\n"
    "  -t, --threads N    worker threads (default: physical cores)\n"
    "  -b, --batch N      tokens per packed batch (default 2048)\n"
    "      --json         {\"dim\": D, \"data\": [{\"index\", \"tokens\", \"truncated\",\n"
    "                     \"embedding\"}]}\n"
    "      --bench        time 64 chunks of 256 tokens (median of 5) and print chunks/s\n";

static int bench(eng_encoder *e, const char *model, int threads, bool json)
{
    enum { N_CHUNK = 64, CHUNK = 256, RUNS = 5 };
    int n_ctx = eng_encoder_n_ctx(e), dim = eng_encoder_dim(e);
    int len = CN_MIN(CHUNK, n_ctx);
    int32_t *ids = cn_malloc(sizeof(int32_t) * N_CHUNK * CHUNK);
    const int32_t *ptr[N_CHUNK];
    int lens[N_CHUNK];
    float *out = cn_malloc(sizeof(float) * N_CHUNK * (size_t)dim);
    uint64_t x = 12345;
    /* ids from the ordinary part of a BERT vocabulary ([unused] and specials sit below 1000) */
    for (int c = 0; c < N_CHUNK; c++) {
        for (int i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[c * CHUNK + i] = 1000 + (int32_t)((x >> 33) % 20000);
        }
        ptr[c] = ids + c * CHUNK;
        lens[c] = len;
    }
    cn_err err = {0};
    double packed[RUNS], single[RUNS];
    eng_encoder_embed(e, ptr, lens, 8, out, &err); /* warm the page cache */
    for (int r = 0; r < RUNS; r++) {
        double t0 = cn_now();
        eng_encoder_embed(e, ptr, lens, N_CHUNK, out, &err);
        packed[r] = N_CHUNK / (cn_now() - t0);
        t0 = cn_now();
        for (int c = 0; c < N_CHUNK; c++)
            eng_encoder_embed(e, &ptr[c], &lens[c], 1, out, &err);
        single[r] = N_CHUNK / (cn_now() - t0);
    }
    /* medians */
    for (int i = 0; i < RUNS; i++)
        for (int k = i + 1; k < RUNS; k++) {
            if (packed[k] < packed[i]) {
                double t = packed[i];
                packed[i] = packed[k];
                packed[k] = t;
            }
            if (single[k] < single[i]) {
                double t = single[i];
                single[i] = single[k];
                single[k] = t;
            }
        }
    if (json)
        printf("{\"model\": \"%s\", \"threads\": %d, \"chunk_tokens\": %d, \"chunks\": %d, "
               "\"chunks_per_s\": %.2f, \"chunks_per_s_one_per_batch\": %.2f}\n",
               model, threads, len, N_CHUNK, packed[RUNS / 2], single[RUNS / 2]);
    else
        printf("%s: %d threads, %d chunks of %d tokens: %.2f chunks/s packed, %.2f chunks/s "
               "one per batch (median of %d)\n",
               model, threads, N_CHUNK, len, packed[RUNS / 2], single[RUNS / 2], RUNS);
    free(ids);
    free(out);
    return 0;
}

int cmd_embed(int argc, char **argv)
{
    const char *model = NULL;
    bool json = false, do_bench = false;
    eng_opts o = {0};
    char **texts = cn_calloc((size_t)argc, sizeof *texts);
    int n_texts = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            model = argv[++i];
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && i + 1 < argc) {
            if (!cli_int(argv[++i], 1, 512, &v)) {
                free(texts);
                return cli_usage("embed", "-t %s: expected 1 to 512", argv[i]);
            }
            o.n_threads = (int)v;
        } else if ((!strcmp(a, "-b") || !strcmp(a, "--batch")) && i + 1 < argc) {
            if (!cli_int(argv[++i], 1, 1 << 16, &v)) {
                free(texts);
                return cli_usage("embed", "-b %s: expected 1 to 65536", argv[i]);
            }
            o.n_batch = (int)v;
        } else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--bench"))
            do_bench = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s", help);
            free(texts);
            return 0;
        } else if (a[0] == '-' && a[1] && strcmp(a, "--")) {
            free(texts);
            return cli_usage("embed", "unknown option or missing value: '%s'", a);
        } else
            texts[n_texts++] = !strcmp(a, "--") && i + 1 < argc ? argv[++i] : argv[i];
    }
    char model_buf[4096];
    int mrc = cli_model_path("embed", model, "embed", model_buf, sizeof model_buf, &model);
    if (mrc) {
        free(texts);
        return mrc;
    }
    cn_err err = {0};
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    int rc = eng_encoder_open(&e, model, &o, &err);
    if (!rc)
        rc = tok_open(&v, eng_encoder_gguf(e), &err);
    if (rc) {
        free(texts);
        eng_encoder_close(e);
        return cli_error(&err);
    }
    if (do_bench) {
        bench(e, model, o.n_threads ? o.n_threads : cn_physical_cores(), json);
        tok_close(v);
        eng_encoder_close(e);
        free(texts);
        return 0;
    }
    // texts from stdin, one per line, when none were given
    char *line = NULL, **owned = NULL;
    size_t cap = 0;
    int n_owned = 0;
    if (n_texts == 0) {
        ssize_t len;
        int room = 0;
        while ((len = getline(&line, &cap, stdin)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = 0;
            if (n_owned == room) {
                room = room ? room * 2 : 64;
                owned = cn_realloc_array(owned, (size_t)room, sizeof *owned);
            }
            owned[n_owned++] = strdup(line);
        }
        free(texts);
        texts = owned;
        n_texts = n_owned;
    }
    int dim = eng_encoder_dim(e);
    size_t *lens = cn_calloc((size_t)n_texts + 1, sizeof *lens);
    bool *cut = cn_calloc((size_t)n_texts + 1, sizeof *cut);
    float *vecs = cn_malloc(sizeof(float) * ((size_t)n_texts + 1) * (size_t)dim);
    for (int i = 0; i < n_texts; i++)
        lens[i] = strlen(texts[i]);
    rc = n_texts ? eng_embed_texts(e, v, (const char *const *)texts, lens, n_texts, vecs, cut, &err)
                 : CN_OK;
    if (rc == CN_OK) {
        for (int i = 0; i < n_texts; i++)
            if (cut[i])
                fprintf(stderr, "cairn: text %d was truncated to the model's %d tokens\n", i + 1,
                        eng_encoder_n_ctx(e));
        if (json) {
            json_t *root = json_object(), *data = json_array();
            json_object_set_new(root, "model", json_string(model));
            json_object_set_new(root, "dim", json_integer(dim));
            for (int i = 0; i < n_texts; i++) {
                json_t *item = json_object(), *arr = json_array();
                for (int d = 0; d < dim; d++)
                    json_array_append_new(arr, json_real(vecs[(size_t)i * dim + d]));
                json_object_set_new(item, "index", json_integer(i));
                json_object_set_new(item, "truncated", json_boolean(cut[i]));
                json_object_set_new(item, "embedding", arr);
                json_array_append_new(data, item);
            }
            json_object_set_new(root, "data", data);
            char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(root);
        } else {
            for (int i = 0; i < n_texts; i++) {
                for (int d = 0; d < dim; d++)
                    printf("%s%.7g", d ? " " : "", vecs[(size_t)i * dim + d]);
                printf("\n");
            }
        }
    }
    for (int i = 0; i < n_owned; i++)
        free(owned[i]);
    if (!owned)
        free(texts);
    else
        free(owned);
    free(line);
    free(lens);
    free(cut);
    free(vecs);
    tok_close(v);
    eng_encoder_close(e);
    return rc ? cli_error(&err) : 0;
}
