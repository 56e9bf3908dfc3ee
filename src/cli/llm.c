/*
** llm.c: a language model opened for one command, in the shape the library
** asks for (lib_llm): `summarize` and `extract` call it once per step.
*/
#include "cli/cli.h"
#include "grammar/grammar.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int llm_count(void *ctx, const char *s, size_t n)
{
    cli_llm *c = ctx;
    int k = tok_encode(c->v, s, n, false, false, c->ids, c->cap, NULL);
    return k < 0 ? (int)(n / 2 + 1) : k;
}

typedef struct reply {
    cn_buf *out;
    void (*text)(void *tctx, const char *s, size_t n);
    void *tctx;
} reply;

static int on_token(void *ctx, int32_t id, const char *text, size_t len)
{
    reply *r = ctx;
    (void)id;
    if (cn_buf_append(r->out, text, len))
        return -1;
    if (r->text)
        r->text(r->tctx, text, len);
    return 0;
}

static int llm_chat(void *ctx, const char *system, const char *user, int max_tokens,
                    const struct gr_grammar *grammar,
                    void (*text)(void *tctx, const char *s, size_t n), void *tctx, cn_buf *out,
                    cn_err *err)
{
    cli_llm *c = ctx;
    tok_chat_msg msgs[2] = {{"system", system}, {"user", user}};
    cn_buf prompt;
    cn_buf_init(&prompt, (size_t)64 << 20);
    int rc = tok_chat_render(c->family, msgs, 2, true, &prompt, err);
    int k = 0;
    if (!rc) {
        k = tok_encode(c->v, prompt.data, prompt.len, true, true, c->ids, c->cap, err);
        rc = k < 0 ? k : CN_OK;
    }
    cn_buf_free(&prompt);
    if (rc)
        return rc;
    int room = c->api.n_ctx - k;
    if (room < 16)
        return cn_fail(err, CN_ELIMIT, "the prompt (%d tokens) fills the model's %d-token context",
                       k, c->api.n_ctx);
    eng_gen_opts go = {.n_predict = CN_MIN(max_tokens, room), .sampler = eng_sampler_defaults(),
                       .grammar = grammar};
    /* the most likely words, a little pushed away from repeating themselves
    ** (a small model's greedy summary loops otherwise) */
    go.sampler.temp = 0;
    go.sampler.repeat_penalty = 1.1f;
    reply r = {out, text, tctx};
    eng_gen_stats st;
    return eng_generate(c->m, c->v, c->ids, k, &go, on_token, &r, &st, err);
}

int cli_llm_open(cli_llm *c, const char *path, int threads, cn_err *err)
{
    memset(c, 0, sizeof *c);
    eng_opts eo = {.n_threads = threads};
    int rc = eng_model_open(&c->m, path, &eo, err);
    if (!rc)
        rc = tok_open(&c->v, eng_model_gguf(c->m), err);
    if (rc) {
        cli_llm_close(c);
        return rc;
    }
    gguf_str tmpl = {0};
    gguf_get_str(eng_model_gguf(c->m), "tokenizer.chat_template", &tmpl, NULL);
    c->family = tok_chat_family(tmpl.ptr, (size_t)tmpl.len, eng_model_hparams(c->m)->arch);
    c->api.n_ctx = eng_model_n_ctx(c->m);
    c->cap = c->api.n_ctx * 4 + 64;
    c->ids = cn_malloc_array((size_t)c->cap, sizeof *c->ids);
    if (!c->ids) {
        cli_llm_close(c);
        return cn_fail(err, CN_ENOMEM, "out of memory");
    }
    /* stored partial summaries are the model's: known by its file's name,
    ** size and time (hashing gigabytes for a key would cost seconds) */
    struct stat st;
    const char *base = strrchr(path, '/');
    stat(path, &st);
    snprintf(c->name, sizeof c->name, "%s:%lld:%lld", base ? base + 1 : path,
             (long long)st.st_size, (long long)st.st_mtime);
    c->api.name = c->name;
    c->api.count = llm_count;
    c->api.chat = llm_chat;
    c->api.ctx = c;
    return CN_OK;
}

void cli_llm_close(cli_llm *c)
{
    free(c->ids);
    tok_close(c->v);
    eng_model_close(c->m);
    memset(c, 0, sizeof *c);
}
