/*
** args.c: the options shared by the commands that run a model (generate,
** chat, logits), parsed in one place so every command spells them alike.
*/
#include "cli/cli.h"
#include "models/models.h"
#include "tok/tok.h"
#include "grammar/grammar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_run_defaults(cli_run_args *a)
{
    memset(a, 0, sizeof *a);
    a->n_predict = 256;
    a->draft_max = ENG_DRAFT_MAX_DEFAULT;
    a->sampler = eng_sampler_defaults();
    a->sampler.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}

const char cli_run_help[] =
    "model options:\n"
    "  -m, --model FILE      GGUF file or installed model name (default: the active\n"
    "                        chat model, see `cairn models`)\n"
    "      --home DIR        data directory where installed models are looked up\n"
    "                        (default $CAIRN_HOME, else ~/.local/share/cairn)\n"
    "  -t, --threads N       worker threads (default: physical cores)\n"
    "  -c, --ctx N           context length in tokens (default: min(model, 4096))\n"
    "  -b, --batch N         prompt tokens per forward pass (default 256)\n"
    "      --kv-type T       KV cache precision: f16 (default) or f32\n"
    "      --mlock           lock the model's weights in memory\n"
    "sampling options:\n"
    "  -n, --n-predict N     tokens to generate (default 256)\n"
    "      --temp T          temperature; 0 = greedy (default 0.8)\n"
    "      --top-k K         keep the K most likely tokens; 0 = off (default 40)\n"
    "      --top-p P         nucleus sampling threshold (default 0.95)\n"
    "      --min-p P         drop tokens below P x the best one's probability (default 0.05)\n"
    "      --repeat-penalty R  penalize recent tokens (default 1.0 = off)\n"
    "      --repeat-last-n N   window for the penalty (default 64)\n"
    "      --seed S          random seed; the same seed gives the same output\n"
    "      --stop TEXT       stop when TEXT is generated (repeatable, up to 8)\n"
    "      --ignore-eos      keep going past end-of-generation tokens\n"
    "      --lookup K        speculative decoding: where the text repeats earlier\n"
    "                        words, check the K tokens that followed them in one pass\n"
    "                        (1-8; the same output, greedy or sampled with the same\n"
    "                        seed; default 0 = off)\n"
    "      --draft FILE      speculative decoding with a draft model: a smaller model\n"
    "                        with the same vocabulary (a GGUF file or installed name)\n"
    "                        proposes tokens while it is sure, checked in one pass;\n"
    "                        the same output as without it\n"
    "      --draft-max N     tokens the draft model proposes at most (1-8, default 4)\n"
    "output constraints (the model can only write what these accept):\n"
    "      --schema FILE     JSON that validates against this JSON Schema (the subset\n"
    "                        of README's \"Structured output\"; a keyword Cairn cannot\n"
    "                        honour is refused by name)\n"
    "      --json-output     any JSON object\n"
    "      --grammar FILE    text of this GBNF grammar (llama.cpp's notation)\n";

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    opterr = 0; /* the messages below name the command and point to --help */
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    const char *spelled = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    if (c == ':')
        cli_usage(cmd, "option %s needs a value", spelled);
    else if (!strncmp(spelled, "--", 2))
        cli_usage(cmd, "unknown option or unexpected value: '%s'", spelled);
    else
        cli_usage(cmd, "unknown option '-%c'", optopt > 32 && optopt < 127 ? optopt : '?');
    return '?';
}

/* Returns 1 if opt was one of ours, 0 if not, 2 (after printing) for a bad
** value. */
int cli_run_option(const char *cmd, cli_run_args *a, int opt, const char *v)
{
    long n;
    double d;
#define BAD(o, what)                                                                               \
    do {                                                                                           \
        cli_usage(cmd, "%s %s: expected %s", o, v, what);                                          \
        return 2;                                                                                  \
    } while (0)

    switch (opt) {
    case 'm':
        a->model = v;
        break;
    case CLI_OPT_HOME:
        a->home = v;
        break;
    case 't':
        if (!cli_int(v, 1, 512, &n))
            BAD("--threads", "an integer from 1 to 512");
        a->opts.n_threads = (int)n;
        break;
    case 'c':
        if (!cli_int(v, 16, 1 << 24, &n))
            BAD("--ctx", "an integer from 16");
        a->opts.n_ctx = (int)n;
        break;
    case 'b':
        if (!cli_int(v, 1, 1 << 16, &n))
            BAD("--batch", "an integer from 1 to 65536");
        a->opts.n_batch = (int)n;
        break;
    case CLI_OPT_MLOCK:
        a->opts.mlock = true;
        break;
    case CLI_OPT_KV_TYPE:
        if (strcmp(v, "f16") && strcmp(v, "f32"))
            BAD("--kv-type", "f16 or f32");
        a->opts.kv_f32 = !strcmp(v, "f32");
        a->kv_set = true;
        break;
    case 'n':
        if (!cli_int(v, 0, 1 << 24, &n))
            BAD("--n-predict", "a non-negative integer");
        a->n_predict = (int)n;
        break;
    case CLI_OPT_TEMP:
        if (!cli_float(v, 0, 100, &d))
            BAD("--temp", "a number from 0 to 100");
        a->sampler.temp = (float)d;
        break;
    case CLI_OPT_TOP_K:
        if (!cli_int(v, 0, 1 << 24, &n))
            BAD("--top-k", "a non-negative integer");
        a->sampler.top_k = (int)n;
        break;
    case CLI_OPT_TOP_P:
        if (!cli_float(v, 1e-6, 1, &d))
            BAD("--top-p", "a number in (0, 1]");
        a->sampler.top_p = (float)d;
        break;
    case CLI_OPT_MIN_P:
        if (!cli_float(v, 0, 1, &d))
            BAD("--min-p", "a number in [0, 1]");
        a->sampler.min_p = (float)d;
        break;
    case CLI_OPT_REPEAT_PENALTY:
        if (!cli_float(v, 0.01, 100, &d))
            BAD("--repeat-penalty", "a number from 0.01 to 100");
        a->sampler.repeat_penalty = (float)d;
        break;
    case CLI_OPT_REPEAT_LAST_N:
        if (!cli_int(v, 0, 1 << 20, &n))
            BAD("--repeat-last-n", "a non-negative integer");
        a->sampler.repeat_last_n = (int)n;
        break;
    case CLI_OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-' || errno)
            BAD("--seed", "a non-negative integer");
        a->sampler.seed = s;
        break;
    }
    case CLI_OPT_LOOKUP:
        if (!cli_int(v, 0, 8, &n))
            BAD("--lookup", "an integer from 0 to 8");
        a->lookup = (int)n;
        break;
    case CLI_OPT_DRAFT:
        a->draft = v;
        break;
    case CLI_OPT_GRAMMAR:
        a->grammar_file = v;
        break;
    case CLI_OPT_SCHEMA:
        a->schema_file = v;
        break;
    case CLI_OPT_JSON_OUTPUT:
        a->json_output = true;
        break;
    case CLI_OPT_DRAFT_MAX:
        if (!cli_int(v, 1, 8, &n))
            BAD("--draft-max", "an integer from 1 to 8");
        a->draft_max = (int)n;
        break;
    case CLI_OPT_STOP:
        if (a->n_stop >= CLI_MAX_STOP)
            BAD("--stop", "at most 8 stop strings");
        if (!*v)
            BAD("--stop", "a non-empty string");
        a->stop[a->n_stop++] = v;
        break;
    case CLI_OPT_IGNORE_EOS:
        a->ignore_eos = true;
        break;
    default:
        return 0;
    }
    return 1;
#undef BAD
}

int cli_encoder_option(const char *cmd, eng_opts *o, int opt, const char *v)
{
    long n;
    if (opt == 't') {
        if (!cli_int(v, 1, 512, &n))
            return cli_usage(cmd, "-t %s: expected 1 to 512", v);
        o->n_threads = (int)n;
    } else if (opt == 'b') {
        if (!cli_int(v, 1, 1 << 16, &n))
            return cli_usage(cmd, "-b %s: expected 1 to 65536", v);
        o->n_batch = (int)n;
    } else {
        return 0;
    }
    return 1;
}

int cli_open_encoder(const char *path, const eng_opts *o, bool reranker, eng_encoder **e,
                     tok_vocab **v, cn_err *err)
{
    *e = NULL;
    *v = NULL;
    int rc = eng_encoder_open(e, path, o, err);
    if (!rc)
        rc = eng_encoder_expect(*e, reranker, err);
    if (!rc)
        rc = tok_open(v, eng_encoder_gguf(*e), err);
    if (rc) {
        eng_encoder_close(*e);
        *e = NULL;
    }
    return rc;
}

int cli_open_draft(const char *home_opt, const char *name, const eng_model *m, const tok_vocab *v,
                   eng_model **d, cn_err *err)
{
    *d = NULL;
    if (!name)
        return CN_OK;
    char home[4096], path[4096];
    int rc = cn_data_dir(home, sizeof home, home_opt, err);
    if (!rc)
        rc = mdl_resolve(home, name, path, sizeof path, err);
    if (rc)
        return rc;
    return eng_draft_open(d, path, m, v, err);
}

int cli_run_grammar(const cli_run_args *a, gr_grammar **out, cn_err *err)
{
    *out = NULL;
    int given = (a->grammar_file != NULL) + (a->schema_file != NULL) + a->json_output;
    if (given > 1)
        return cn_fail(err, CN_EINVAL, "--grammar, --schema and --json-output: choose one");
    if (!given)
        return CN_OK;
    if (a->json_output) {
        static const char obj[] = "{\"type\": \"object\"}";
        return gr_from_schema(obj, sizeof obj - 1, out, err);
    }
    const char *path = a->grammar_file ? a->grammar_file : a->schema_file;
    char *text;
    size_t len;
    int rc = cn_read_file(path, (size_t)4 << 20, &text, &len, err);
    if (rc)
        return rc;
    rc = a->grammar_file ? gr_parse(text, out, err) : gr_from_schema(text, len, out, err);
    free(text);
    if (rc) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rc = cn_fail(err, rc, "%s: %s", path, msg);
    }
    return rc;
}
