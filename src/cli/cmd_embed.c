/*
** cmd_embed.c: `cairn embed -m FILE [--json] TEXT...` prints one sentence
** vector per text (texts from stdin, one per line, when none are given);
** `--bench` measures chunks/s on 256-token chunks.
*/
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: cairn embed -m FILE [options] [TEXT...]\n\n"
    "Print one embedding vector per TEXT (or per line of stdin when no TEXT is given):\n"
    "space-separated floats on one line, L2-normalised. Texts longer than the model's\n"
    "context are truncated, with a note on stderr. Texts are embedded 64 at a time, so\n"
    "stdin may be any length. A TEXT that starts with '-' goes after `--`.\n\n"
    "  -m, --model FILE   a BERT-family embedding model (all-MiniLM, bge-small, ...):\n"
    "                     a GGUF file or an installed name (default: the active one)\n"
    "      --home DIR     data directory where installed models are looked up\n"
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

/* Texts come from the command line or from stdin, one per line; either way
** they are embedded and printed BATCH at a time, so memory stays bounded
** however long stdin is. */
enum { BATCH = 64 };
#define MAX_LINE ((size_t)16 << 20) /* the tokenizer takes no more; the model sees far less */

typedef struct text_src {
    char **argv; /* operands, or NULL: read stdin */
    int argc, next;
    long line_no;
    char *line;
    size_t cap;
} text_src;

/* Fill texts[0..*n) with up to BATCH texts (pointers into src or malloc'd
** copies in owned[]). Returns CN_OK (with *n == 0 at the end) or an error. */
static int next_batch(text_src *src, char *texts[BATCH], char *owned[BATCH], int *n, cn_err *err)
{
    *n = 0;
    if (src->argv) {
        while (*n < BATCH && src->next < src->argc)
            texts[(*n)++] = src->argv[src->next++];
        return CN_OK;
    }
    while (*n < BATCH) {
        errno = 0;
        ssize_t len = getline(&src->line, &src->cap, stdin);
        if (len < 0) {
            if (ferror(stdin) || errno == ENOMEM)
                return cn_fail(err, errno == ENOMEM ? CN_ENOMEM : CN_EIO,
                               "stdin: cannot read line %ld: %s", src->line_no + 1,
                               strerror(errno ? errno : EIO));
            break;
        }
        src->line_no++;
        if ((size_t)len > MAX_LINE)
            return cn_fail(err, CN_ELIMIT, "stdin: line %ld is longer than %zu MiB",
                           src->line_no, MAX_LINE >> 20);
        while (len > 0 && (src->line[len - 1] == '\n' || src->line[len - 1] == '\r'))
            src->line[--len] = 0;
        owned[*n] = strdup(src->line);
        if (!owned[*n])
            return cn_fail(err, CN_ENOMEM, "stdin: out of memory at line %ld", src->line_no);
        texts[*n] = owned[*n];
        (*n)++;
    }
    return CN_OK;
}

/* Print one vector, as text or as one item of the JSON "data" array. */
static int print_vector(const float *vec, int dim, long index, bool truncated, bool json)
{
    if (!json) {
        for (int d = 0; d < dim; d++)
            printf("%s%.7g", d ? " " : "", vec[d]);
        printf("\n");
        return CN_OK;
    }
    json_t *item = json_object(), *arr = json_array();
    if (!item || !arr) {
        json_decref(item);
        json_decref(arr);
        return CN_ENOMEM;
    }
    for (int d = 0; d < dim; d++)
        json_array_append_new(arr, json_real(vec[d]));
    json_object_set_new(item, "index", json_integer(index));
    json_object_set_new(item, "truncated", json_boolean(truncated));
    json_object_set_new(item, "embedding", arr);
    char *s = json_dumps(item, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    json_decref(item);
    if (!s)
        return CN_ENOMEM;
    printf("%s%s", index ? "," : "", s);
    free(s);
    return CN_OK;
}

int cmd_embed(int argc, char **argv)
{
    const char *model = NULL, *home = NULL;
    bool json = false, do_bench = false;
    eng_opts o = {0};
    enum { OPT_BENCH = CLI_OPT_FIRST_FREE };
    static const struct option longs[] = {
        {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'}, {"home", required_argument, NULL, CLI_OPT_HOME},
        {"json", no_argument, NULL, CLI_OPT_JSON}, {"bench", no_argument, NULL, OPT_BENCH},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("embed", argc, argv, ":m:t:b:h", longs)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case CLI_OPT_HOME: home = optarg; break;
        case CLI_OPT_JSON: json = true; break;
        case OPT_BENCH: do_bench = true; break;
        case 't':
        case 'b':
            if (cli_encoder_option("embed", &o, c, optarg) != 1)
                return 2;
            break;
        case 'h': printf("%s", help); return 0;
        default: return 2;
        }
    }
    char model_buf[4096];
    int mrc = cli_model_path("embed", home, model, "embed", model_buf, sizeof model_buf, &model);
    if (mrc)
        return mrc;
    cn_err err = {0};
    eng_encoder *e = NULL;
    tok_vocab *tv = NULL;
    int rc = cli_open_encoder(model, &o, false, &e, &tv, &err);
    if (rc)
        return cli_error(&err);
    if (do_bench) {
        bench(e, model, o.n_threads ? o.n_threads : cn_physical_cores(), json);
        tok_close(tv);
        eng_encoder_close(e);
        return 0;
    }
    int dim = eng_encoder_dim(e);
    text_src src = {.argv = optind < argc ? argv + optind : NULL, .argc = argc - optind};
    char *texts[BATCH], *owned[BATCH];
    size_t lens[BATCH];
    bool cut[BATCH];
    float *vecs = cn_malloc_array((size_t)BATCH * (size_t)dim, sizeof *vecs);
    if (!vecs)
        rc = cn_fail(&err, CN_ENOMEM, "out of memory for %d vectors of %d", BATCH, dim);
    if (json && !rc) {
        json_t *m = json_string(model);
        char *ms = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
        printf("{\"model\":%s,\"dim\":%d,\"data\":[", ms ? ms : "\"\"", dim);
        free(ms);
        json_decref(m);
    }
    long done = 0;
    while (!rc) {
        int n = 0;
        memset(owned, 0, sizeof owned);
        rc = next_batch(&src, texts, owned, &n, &err);
        for (int i = 0; i < n; i++)
            lens[i] = strlen(texts[i]);
        if (!rc && n)
            rc = eng_embed_texts(e, tv, (const char *const *)texts, lens, n, vecs, cut, &err);
        for (int i = 0; !rc && i < n; i++) {
            if (cut[i])
                fprintf(stderr, "cairn: text %ld was truncated to the model's %d tokens\n",
                        done + i + 1, eng_encoder_n_ctx(e));
            if (print_vector(vecs + (size_t)i * dim, dim, done + i, cut[i], json))
                rc = cn_fail(&err, CN_ENOMEM, "out of memory printing vector %ld", done + i + 1);
        }
        for (int i = 0; i < BATCH; i++)
            free(owned[i]);
        if (!n)
            break;
        done += n;
    }
    if (json && !rc)
        printf("]}\n"); /* left open on failure: no consumer mistakes it for complete */
    fflush(stdout);
    free(src.line);
    free(vecs);
    tok_close(tv);
    eng_encoder_close(e);
    return rc ? cli_error(&err) : 0;
}
