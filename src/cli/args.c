/*
** args.c: the options shared by the commands that run a model (generate,
** chat, logits), parsed in one place so every command spells them alike.
*/
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_run_defaults(cli_run_args *a)
{
    memset(a, 0, sizeof *a);
    a->n_predict = 256;
    a->sampler = eng_sampler_defaults();
    a->sampler.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}

const char cli_run_help[] =
    "model options:\n"
    "  -m, --model FILE      GGUF file or installed model name (default: the active\n"
    "                        chat model, see `cairn models`)\n"
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
    "      --ignore-eos      keep going past end-of-generation tokens\n";

/* Returns 1 if argv[*i] was one of ours (advancing *i past its value),
** 0 if not, 2 (after printing) for a bad value. */
int cli_run_option(const char *cmd, cli_run_args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    double d;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!v) {                                                                                  \
            cli_usage(cmd, "option %s needs a value", o);                                          \
            return 2;                                                                              \
        }                                                                                          \
        (*i)++;                                                                                    \
    } while (0)
#define BAD(what)                                                                                  \
    do {                                                                                           \
        cli_usage(cmd, "%s %s: expected %s", o, v, what);                                          \
        return 2;                                                                                  \
    } while (0)

    if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
        NEED_VALUE();
        a->model = v;
    } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
        NEED_VALUE();
        if (!cli_int(v, 1, 512, &n))
            BAD("an integer from 1 to 512");
        a->opts.n_threads = (int)n;
    } else if (!strcmp(o, "-c") || !strcmp(o, "--ctx")) {
        NEED_VALUE();
        if (!cli_int(v, 16, 1 << 24, &n))
            BAD("an integer from 16");
        a->opts.n_ctx = (int)n;
    } else if (!strcmp(o, "-b") || !strcmp(o, "--batch")) {
        NEED_VALUE();
        if (!cli_int(v, 1, 1 << 16, &n))
            BAD("an integer from 1 to 65536");
        a->opts.n_batch = (int)n;
    } else if (!strcmp(o, "--mlock")) {
        a->opts.mlock = true;
    } else if (!strcmp(o, "--kv-type")) {
        NEED_VALUE();
        if (strcmp(v, "f16") && strcmp(v, "f32"))
            BAD("f16 or f32");
        a->opts.kv_f32 = !strcmp(v, "f32");
        a->kv_set = true;
    } else if (!strcmp(o, "-n") || !strcmp(o, "--n-predict")) {
        NEED_VALUE();
        if (!cli_int(v, 0, 1 << 24, &n))
            BAD("a non-negative integer");
        a->n_predict = (int)n;
    } else if (!strcmp(o, "--temp")) {
        NEED_VALUE();
        if (!cli_float(v, 0, 100, &d))
            BAD("a number from 0 to 100");
        a->sampler.temp = (float)d;
    } else if (!strcmp(o, "--top-k")) {
        NEED_VALUE();
        if (!cli_int(v, 0, 1 << 24, &n))
            BAD("a non-negative integer");
        a->sampler.top_k = (int)n;
    } else if (!strcmp(o, "--top-p")) {
        NEED_VALUE();
        if (!cli_float(v, 1e-6, 1, &d))
            BAD("a number in (0, 1]");
        a->sampler.top_p = (float)d;
    } else if (!strcmp(o, "--min-p")) {
        NEED_VALUE();
        if (!cli_float(v, 0, 1, &d))
            BAD("a number in [0, 1]");
        a->sampler.min_p = (float)d;
    } else if (!strcmp(o, "--repeat-penalty")) {
        NEED_VALUE();
        if (!cli_float(v, 0.01, 100, &d))
            BAD("a number from 0.01 to 100");
        a->sampler.repeat_penalty = (float)d;
    } else if (!strcmp(o, "--repeat-last-n")) {
        NEED_VALUE();
        if (!cli_int(v, 0, 1 << 20, &n))
            BAD("a non-negative integer");
        a->sampler.repeat_last_n = (int)n;
    } else if (!strcmp(o, "--seed")) {
        NEED_VALUE();
        unsigned long long s;
        char *end;
        s = strtoull(v, &end, 10);
        if (!*v || *end)
            BAD("a non-negative integer");
        a->sampler.seed = s;
    } else if (!strcmp(o, "--stop")) {
        NEED_VALUE();
        if (a->n_stop >= CLI_MAX_STOP)
            BAD("at most 8 stop strings");
        if (!*v)
            BAD("a non-empty string");
        a->stop[a->n_stop++] = v;
    } else if (!strcmp(o, "--ignore-eos")) {
        a->ignore_eos = true;
    } else {
        return 0;
    }
    return 1;
#undef NEED_VALUE
#undef BAD
}
