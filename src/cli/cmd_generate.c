/*
** cmd_generate.c: `cairn generate` streams a continuation of a prompt, and
** `cairn logits` writes the last prompt position's logits (the hook the
** correctness checks against llama.cpp use).
*/
#include "cli/cli.h"
#include "grammar/grammar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prompt options of generate and logits. */
typedef struct prompt_args {
    const char *text; /* -p, --prompt TEXT */
    const char *file; /* -f, --file FILE */
    bool no_bos;      /* --no-bos */
} prompt_args;

/* The prompt options' short letters and long entries. */
#define PROMPT_SHORTOPTS "p:f:"
enum { OPT_NO_BOS = CLI_OPT_FIRST_FREE, OPT_IDS, OPT_SPECIAL };
#define PROMPT_LONGOPTS                                                                            \
    {"prompt", required_argument, NULL, 'p'}, {"file", required_argument, NULL, 'f'},            \
        {"no-bos", no_argument, NULL, OPT_NO_BOS}

/* Returns true if opt was a prompt option. */
static bool prompt_option(prompt_args *p, int opt, const char *v)
{
    if (opt == 'p')
        p->text = v;
    else if (opt == 'f')
        p->file = v;
    else if (opt == OPT_NO_BOS)
        p->no_bos = true;
    else
        return false;
    return true;
}

/* Read -p TEXT or -f FILE into a malloc'd string. */
static int load_prompt(const prompt_args *p, char **out, size_t *len, cn_err *err)
{
    if (p->file)
        return cn_read_file(p->file, (size_t)64 << 20, out, len, err);
    *len = strlen(p->text);
    *out = strdup(p->text);
    return *out ? CN_OK : cn_fail(err, CN_ENOMEM, "out of memory");
}

/* Open model + tokenizer and tokenize the prompt with BOS per metadata and
** special-token text parsed, as llama.cpp's tools do. */
int cli_open_and_tokenize(const cli_run_args *a, const char *text, size_t len, bool add_bos,
                          eng_model **m, tok_vocab **v, int32_t **ids, int *n_ids, cn_err *err)
{
    *m = NULL;
    *v = NULL;
    *ids = NULL;
    int rc = eng_model_open(m, a->model, &a->opts, err);
    if (!rc)
        rc = tok_open(v, eng_model_gguf(*m), err);
    if (!rc) {
        int cap = (int)CN_MIN(len + 16, (size_t)1 << 26);
        *ids = cn_malloc((size_t)cap * sizeof **ids);
        if (!*ids)
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
        else {
            int n = tok_encode(*v, text, len, add_bos, true, *ids, cap, err);
            if (n > cap)
                rc = cn_fail(err, CN_ELIMIT, "prompt tokenizes to more than %d tokens", cap);
            else if (n < 0)
                rc = n;
            else
                *n_ids = n;
        }
    }
    if (rc) {
        free(*ids);
        tok_close(*v);
        eng_model_close(*m);
        *ids = NULL;
        *v = NULL;
        *m = NULL;
    }
    return rc;
}

/* Read the prompt p and open a->model and its tokenizer with it tokenized
** (cli_open_and_tokenize, BOS unless --no-bos). */
static int open_with_prompt(const cli_run_args *a, const prompt_args *p, eng_model **m,
                            tok_vocab **v, int32_t **ids, int *n_ids, cn_err *err)
{
    char *text;
    size_t len;
    int rc = load_prompt(p, &text, &len, err);
    if (rc)
        return rc;
    rc = cli_open_and_tokenize(a, text, len, !p->no_bos, m, v, ids, n_ids, err);
    free(text);
    return rc;
}

typedef struct gen_out {
    bool ids;
    int n;
} gen_out;

static int print_token(void *ctx, int32_t id, const char *text, size_t len)
{
    gen_out *g = ctx;
    if (g->ids) {
        if (id >= 0)
            printf("%s%d", g->n++ ? " " : "", (int)id);
    } else {
        fwrite(text, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

static const char generate_help[] =
    "usage: cairn generate -m FILE (-p TEXT | -f FILE) [options]\n\n"
    "Continue the prompt with the model, streaming text as it is produced. Statistics\n"
    "(prompt and generation tokens and speed) go to stderr at the end.\n\n"
    "  -p, --prompt TEXT     the prompt (special-token text like <|eot_id|> is parsed)\n"
    "  -f, --file FILE       read the prompt from FILE\n"
    "      --no-bos          do not add the BOS token the model asks for\n"
    "      --ids             print generated token ids instead of text\n"
    "      --special         print control tokens' text\n";

int cmd_generate(int argc, char **argv)
{
    cli_run_args a;
    cli_run_defaults(&a);
    prompt_args pa = {0};
    bool special = false;
    gen_out go = {0};
    static const struct option longs[] = {
        CLI_RUN_LONGOPTS, PROMPT_LONGOPTS, {"ids", no_argument, NULL, OPT_IDS},
        {"special", no_argument, NULL, OPT_SPECIAL}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("generate", argc, argv, ":" CLI_RUN_SHORTOPTS PROMPT_SHORTOPTS "h",
                           longs)) != -1) {
        int r = cli_run_option("generate", &a, c, optarg);
        if (r == 2)
            return 2;
        if (r == 1 || prompt_option(&pa, c, optarg))
            continue;
        if (c == OPT_IDS)
            go.ids = true;
        else if (c == OPT_SPECIAL)
            special = true;
        else if (c == 'h') {
            printf("%s\n%s", generate_help, cli_run_help);
            return 0;
        } else
            return 2;
    }
    if (optind < argc)
        return cli_usage("generate", "unexpected argument '%s' (the prompt goes after -p)",
                         argv[optind]);
    char model_buf[4096];
    int mrc = cli_model_path("generate", a.home, a.model, "chat", model_buf, sizeof model_buf, &a.model);
    if (mrc)
        return mrc;
    if (!pa.text == !pa.file)
        return cli_usage("generate", "give the prompt with -p TEXT or -f FILE (one of them)");

    cn_err err = {0};
    eng_model *m;
    tok_vocab *v;
    int32_t *ids;
    int n_ids;
    int rc = open_with_prompt(&a, &pa, &m, &v, &ids, &n_ids, &err);
    if (rc)
        return cli_error(&err);
    eng_model *dm = NULL;
    if ((rc = cli_open_draft(a.home, a.draft, m, v, &dm, &err))) {
        free(ids);
        tok_close(v);
        eng_model_close(m);
        return cli_error(&err);
    }
    gr_grammar *gram = NULL;
    if ((rc = cli_run_grammar(&a, &gram, &err))) {
        free(ids);
        tok_close(v);
        eng_model_close(dm);
        eng_model_close(m);
        return cli_error(&err);
    }
    eng_gen_opts go_opts = {
        .n_predict = a.n_predict, .sampler = a.sampler, .stop = a.stop, .n_stop = a.n_stop,
        .ignore_eos = a.ignore_eos, .render_special = special, .lookup = a.lookup,
        .draft = dm, .draft_max = a.draft_max, .grammar = gram,
    };
    eng_gen_stats st;
    if (n_ids == 0) {
        rc = cn_fail(&err, CN_EINVAL, "the prompt is empty (and the model adds no BOS token)");
    } else {
        rc = eng_generate(m, v, ids, n_ids, &go_opts, print_token, &go, &st, &err);
        printf("\n");
        fflush(stdout);
    }
    if (rc == CN_OK) {
        fprintf(stderr, "prompt: %d tokens, %.1f t/s | generated: %d tokens, %.1f t/s | "
                        "threads %d, context %d\n",
                st.n_prompt, st.t_prompt > 0 ? st.n_prompt_eval / st.t_prompt : 0.0, st.n_gen,
                st.t_gen > 0 ? st.n_gen / st.t_gen : 0.0, eng_model_n_threads(m),
                eng_model_n_ctx(m));
        if (st.n_drafted > st.n_model_drafted)
            fprintf(stderr, "lookup: %d of %d drafted tokens kept\n",
                    st.n_accepted - st.n_model_accepted, st.n_drafted - st.n_model_drafted);
        if (dm)
            fprintf(stderr, "draft model: %d of %d drafted tokens kept, %.2f s in the draft "
                            "model\n",
                    st.n_model_accepted, st.n_model_drafted, st.t_draft);
        if (st.n_drafted || dm)
            fprintf(stderr, "speculative: %d forward passes for %d tokens\n", st.n_passes,
                    st.n_gen);
        if (gram)
            fprintf(stderr, "grammar: %d of %d tokens needed the whole mask (%.1f ms each)\n",
                    st.n_masked, st.n_gen, st.n_masked ? st.t_mask * 1000 / st.n_masked : 0.0);
        if (st.stop == ENG_STOP_CONTEXT)
            fprintf(stderr, "cairn: stopped: the %d-token context is full (use a larger --ctx)\n",
                    eng_model_n_ctx(m));
        if (gram && st.stop == ENG_STOP_LENGTH)
            fprintf(stderr, "cairn: stopped at -n %d tokens before the grammar's text was "
                            "complete\n",
                    a.n_predict);
    }
    gr_free(gram);
    free(ids);
    tok_close(v);
    eng_model_close(dm);
    eng_model_close(m);
    return rc ? cli_error(&err) : 0;
}

static const char logits_help[] =
    "usage: cairn logits -m FILE (-p TEXT | -f FILE) -o OUT.f32 [--kv-type f32|f16]\n\n"
    "Evaluate the prompt in one batch (BOS per the model's metadata, special-token text\n"
    "parsed) and write the n_vocab logits of the last position to OUT.f32 as\n"
    "little-endian float32. The KV cache is F32 here unless --kv-type says otherwise.\n"
    "Also accepts -t, -c and -b.\n";

int cmd_logits(int argc, char **argv)
{
    cli_run_args a;
    cli_run_defaults(&a);
    prompt_args pa = {0};
    const char *out = NULL;
    static const struct option longs[] = {CLI_RUN_LONGOPTS, PROMPT_LONGOPTS,
                                          {"output", required_argument, NULL, 'o'},
                                          {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("logits", argc, argv, ":" CLI_RUN_SHORTOPTS PROMPT_SHORTOPTS "o:h",
                           longs)) != -1) {
        int r = cli_run_option("logits", &a, c, optarg);
        if (r == 2)
            return 2;
        if (r == 1 || prompt_option(&pa, c, optarg))
            continue;
        if (c == 'o')
            out = optarg;
        else if (c == 'h') {
            printf("%s", logits_help);
            return 0;
        } else
            return 2;
    }
    if (optind < argc)
        return cli_usage("logits", "unexpected argument '%s'", argv[optind]);
    if (!a.model || !out || !pa.text == !pa.file)
        return cli_usage("logits", "need -m FILE, -o OUT.f32 and one of -p TEXT / -f FILE");
    if (a.grammar_file || a.schema_file || a.json_output)
        return cli_usage("logits", "--schema, --json-output and --grammar shape generated text; "
                                   "logits generates none");
    if (!a.kv_set)
        a.opts.kv_f32 = true;
    cn_err err = {0};
    eng_model *m;
    tok_vocab *v;
    int32_t *ids;
    int n_ids;
    int rc = open_with_prompt(&a, &pa, &m, &v, &ids, &n_ids, &err);
    if (rc)
        return cli_error(&err);
    if (n_ids == 0)
        rc = cn_fail(&err, CN_EINVAL, "the prompt is empty");
    else
        rc = eng_decode(m, ids, n_ids, 0, &err);
    if (rc == CN_OK) {
        FILE *f = fopen(out, "wb");
        int n_vocab = eng_model_hparams(m)->n_vocab;
        if (!f || fwrite(eng_model_logits(m), sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab)
            rc = cn_fail(&err, CN_EIO, "%s: cannot write: %s", out, strerror(errno));
        if (f && fclose(f) != 0 && rc == CN_OK)
            rc = cn_fail(&err, CN_EIO, "%s: cannot write: %s", out, strerror(errno));
        if (rc == CN_OK)
            fprintf(stderr, "%d prompt tokens, %d logits written to %s\n", n_ids, n_vocab, out);
    }
    free(ids);
    tok_close(v);
    eng_model_close(m);
    return rc ? cli_error(&err) : 0;
}
