/*
** cmd_chat.c: `cairn chat -m FILE` is an interactive conversation in the
** model's chat format. The whole conversation is re-rendered each turn; the
** engine evaluates only what its KV cache does not already hold. When the
** history outgrows the context, the oldest turns are dropped (the system
** prompt stays). Ctrl-C stops a reply; Ctrl-D or /exit leaves.
*/
#include "cli/cli.h"
#include "grammar/grammar.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TURNS 4096

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct reply {
    cn_buf text;
} reply;

static int stream_reply(void *ctx, int32_t id, const char *text, size_t len)
{
    reply *r = ctx;
    (void)id;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    cn_buf_append(&r->text, text, len);
    return interrupted ? 1 : 0;
}

static const char help[] =
    "usage: cairn chat -m FILE [--system TEXT] [options]\n\n"
    "Talk with a model in its chat format (read from the file's chat template; ChatML\n"
    "when unknown). Type a message and press Enter. Ctrl-C stops a reply, Ctrl-D or\n"
    "/exit leaves, /reset starts a new conversation.\n\n"
    "  -s, --system TEXT     system prompt\n";

/* Render msgs[first..n) (plus the system prompt) and tokenize. */
static int build_prompt(const char *family, const tok_vocab *v, const tok_chat_msg *msgs, int n,
                        int first, int32_t *ids, int cap, cn_err *err)
{
    cn_buf b;
    cn_buf_init(&b, (size_t)256 << 20);
    tok_chat_msg *sel = cn_malloc((size_t)(n + 1) * sizeof *sel);
    if (!sel)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int k = 0;
    if (n > 0 && !strcmp(msgs[0].role, "system"))
        sel[k++] = msgs[0];
    for (int i = CN_MAX(first, k); i < n; i++)
        sel[k++] = msgs[i];
    int rc = tok_chat_render(family, sel, k, true, &b, err);
    int n_ids = rc ? rc : tok_encode(v, b.data ? b.data : "", b.len, true, true, ids, cap, err);
    free(sel);
    cn_buf_free(&b);
    return n_ids;
}

int cmd_chat(int argc, char **argv)
{
    cli_run_args a;
    cli_run_defaults(&a);
    a.n_predict = 1024;
    const char *system = NULL;
    static const struct option longs[] = {
        CLI_RUN_LONGOPTS, {"system", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("chat", argc, argv, ":" CLI_RUN_SHORTOPTS "s:h", longs)) != -1) {
        int r = cli_run_option("chat", &a, c, optarg);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        if (c == 's')
            system = optarg;
        else if (c == 'h') {
            printf("%s\n%s", help, cli_run_help);
            return 0;
        } else
            return 2;
    }
    if (optind < argc)
        return cli_usage("chat", "unexpected argument '%s' (the chat reads its input from the "
                                 "terminal)", argv[optind]);
    char model_buf[4096];
    int mrc = cli_model_path("chat", a.home, a.model, "chat", model_buf, sizeof model_buf, &a.model);
    if (mrc)
        return mrc;

    cn_err err = {0};
    eng_model *m;
    tok_vocab *v;
    int32_t *ids;
    int n_ids;
    if (cli_open_and_tokenize(&a, "", 0, false, &m, &v, &ids, &n_ids, &err))
        return cli_error(&err);
    free(ids);
    eng_model *dm = NULL;
    if (cli_open_draft(a.home, a.draft, m, v, &dm, &err)) {
        tok_close(v);
        eng_model_close(m);
        return cli_error(&err);
    }
    int n_ctx = eng_model_n_ctx(m);
    ids = cn_malloc_array((size_t)n_ctx * 4, sizeof *ids);
    tok_chat_msg *msgs = cn_calloc(MAX_TURNS, sizeof *msgs);
    if (!ids || !msgs) {
        free(ids);
        free(msgs);
        tok_close(v);
        eng_model_close(dm);
        eng_model_close(m);
        cn_fail(&err, CN_ENOMEM, "out of memory for a %d-token context", n_ctx);
        return cli_error(&err);
    }
    gguf_str tmpl = {0};
    gguf_get_str(eng_model_gguf(m), "tokenizer.chat_template", &tmpl, NULL);
    const char *family = tok_chat_family(tmpl.ptr, (size_t)tmpl.len, eng_model_hparams(m)->arch);
    if (!strcmp(family, "unknown"))
        fprintf(stderr, "cairn: the model's chat template is not one Cairn knows; using ChatML\n");
    fprintf(stderr, "chat format %s, context %d tokens. Ctrl-C stops a reply, Ctrl-D leaves.\n",
            family, n_ctx);

    int n_msgs = 0, first = 0;
    if (system)
        msgs[n_msgs++] = (tok_chat_msg){"system", system}; /* argv: not freed */
    first = n_msgs;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    /* every reply under the schema or grammar, when one is given */
    gr_grammar *gram = NULL;
    if (cli_run_grammar(&a, &gram, &err)) {
        free(ids);
        free(msgs);
        tok_close(v);
        eng_model_close(dm);
        eng_model_close(m);
        return cli_error(&err);
    }
    eng_gen_opts go = {.n_predict = a.n_predict, .sampler = a.sampler, .stop = a.stop,
                       .n_stop = a.n_stop, .ignore_eos = a.ignore_eos, .lookup = a.lookup,
                       .draft = dm, .draft_max = a.draft_max, .grammar = gram};
    char *line = NULL;
    size_t line_cap = 0;
    int rc = CN_OK;
    bool tty = isatty(0);
    for (;;) {
        if (tty) {
            printf("> ");
            fflush(stdout);
        }
        interrupted = 0;
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) {
            if (interrupted && !feof(stdin)) {
                clearerr(stdin);
                printf("\n");
                continue;
            }
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/reset")) {
            for (int i = system ? 1 : 0; i < n_msgs; i++)
                free((char *)msgs[i].content);
            n_msgs = first = system ? 1 : 0;
            eng_model_reset(m);
            continue;
        }
        if (n_msgs + 2 > MAX_TURNS) {
            fprintf(stderr, "cairn: conversation too long; use /reset\n");
            continue;
        }
        char *copy = strdup(line);
        if (!copy) {
            cn_fail(&err, CN_ENOMEM, "out of memory for a %zd-byte message", len);
            cli_error(&err);
            continue;
        }
        msgs[n_msgs++] = (tok_chat_msg){"user", copy};
        // drop the oldest turns until the prompt leaves room for a reply
        int reserve = CN_MIN(go.n_predict, n_ctx / 4), n = 0;
        for (;;) {
            n = build_prompt(family, v, msgs, n_msgs, first, ids, n_ctx * 4, &err);
            if (n < 0 || n + reserve <= n_ctx || first >= n_msgs - 1)
                break;
            first += 2; /* drop the oldest user + assistant pair */
        }
        if (n < 0 || n + reserve > n_ctx) {
            if (n >= 0)
                cn_fail(&err, CN_ELIMIT, "this message alone does not fit the %d-token context",
                        n_ctx);
            cli_error(&err);
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        reply r;
        cn_buf_init(&r.text, (size_t)64 << 20);
        eng_gen_stats st;
        rc = eng_generate(m, v, ids, n, &go, stream_reply, &r, &st, &err);
        printf("\n");
        if (rc) {
            cli_error(&err);
            cn_buf_free(&r.text);
            free((char *)msgs[--n_msgs].content);
            eng_model_reset(m);
            continue;
        }
        if (st.stop == ENG_STOP_CANCEL)
            fprintf(stderr, "[stopped]\n");
        /* the reply joins the history even when stopped early */
        char *reply_text = r.text.data ? r.text.data : strdup("");
        if (!reply_text) {
            cn_fail(&err, CN_ENOMEM, "out of memory keeping the reply");
            cli_error(&err);
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        msgs[n_msgs++] = (tok_chat_msg){"assistant", reply_text};
    }
    for (int i = system ? 1 : 0; i < n_msgs; i++)
        free((char *)msgs[i].content);
    free(msgs);
    free(line);
    free(ids);
    gr_free(gram);
    tok_close(v);
    eng_model_close(dm);
    eng_model_close(m);
    return 0;
}
