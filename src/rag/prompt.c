/*
** prompt.c: the whole grounded prompt for a chat model, tokens and all. The
** CLI's `ask` and the server's "cairn-library" model both call this, so a
** question gets the same prompt whichever face it came through.
*/
#include "rag/rag.h"

#include <stdlib.h>
#include <string.h>

typedef struct tok_counter {
    const tok_vocab *v;
    int32_t *buf;
    int cap;
} tok_counter;

static int count_tokens(void *ctx, const char *s, size_t n)
{
    tok_counter *c = ctx;
    int k = tok_encode(c->v, s, n, false, false, c->buf, c->cap, NULL);
    return k < 0 ? (int)(n / 2 + 1) : k;
}

int rag_answer_reserve(int n_ctx) { return CN_MIN(512, n_ctx / 4); }

/* src[0..n) trimmed by o (or whole) into *out, its texts in bufs; the
** tokens of each before and after in before[], after[]. */
static int trimmed_sources(const char *question, const rag_source *src, int n,
                           const rag_trim_opts *o, tok_counter *tc, cn_buf *bufs,
                           rag_source *out, int *before, int *after)
{
    int rc = CN_OK;
    if (o && o->budget > 0)
        rc = rag_trim(question, src, n, o, count_tokens, tc, bufs, before, after);
    for (int i = 0; i < n && rc == CN_OK; i++) {
        out[i] = src[i];
        if (o && o->budget > 0)
            out[i].text = bufs[i].data;
        else
            before[i] = after[i] =
                src[i].text ? count_tokens(tc, src[i].text, strlen(src[i].text)) : 0;
    }
    return rc;
}

int rag_prompt_tokens(const tok_vocab *v, const char *family, int n_ctx, const char *question,
                      const rag_source *src, int n, const rag_trim_opts *trim, int32_t **ids,
                      int *n_ids, rag_prompt_info *info, cn_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    *info = (rag_prompt_info){0};
    if (n_ctx < 32)
        return cn_fail(err, CN_ELIMIT, "a %d-token context is too small for a grounded answer",
                       n_ctx);
    tok_counter tc = {v, cn_malloc(sizeof(int32_t) * (size_t)n_ctx * 4), n_ctx * 4};
    /* the passages as the model will read them: trimmed to the question */
    cn_buf *bufs = cn_malloc_array((size_t)CN_MAX(n, 1), sizeof *bufs);
    rag_source *ts = cn_malloc_array((size_t)CN_MAX(n, 1), sizeof *ts);
    int *tokens = cn_malloc_array((size_t)CN_MAX(n, 1) * 2, sizeof *tokens);
    if (!tc.buf || !bufs || !ts || !tokens) {
        free(tc.buf);
        free(bufs);
        free(ts);
        free(tokens);
        return cn_fail(err, CN_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        cn_buf_init(&bufs[i], (size_t)64 << 20);
    if (trimmed_sources(question, src, n, trim, &tc, bufs, ts, tokens, tokens + n)) {
        for (int i = 0; i < n; i++)
            cn_buf_free(&bufs[i]);
        free(tc.buf);
        free(bufs);
        free(ts);
        free(tokens);
        return cn_fail(err, CN_ENOMEM, "out of memory trimming the passages");
    }
    cn_buf user, prompt;
    cn_buf_init(&user, (size_t)64 << 20);
    cn_buf_init(&prompt, (size_t)64 << 20);
    int sys = count_tokens(&tc, rag_system_prompt, strlen(rag_system_prompt));
    int budget = n_ctx - rag_answer_reserve(n_ctx) - sys - 64;
    int rc = rag_build_user(question, ts, n, budget, count_tokens, &tc, &user, err);
    if (rc >= 0) {
        info->n_used = rc;
        for (int i = 0; i < rc; i++) {
            info->passage_tokens += tokens[i];
            info->passage_kept += tokens[n + i];
            info->n_trimmed += tokens[n + i] < tokens[i];
        }
        rc = rc == 0 ? cn_fail(err, CN_ELIMIT, "not even one passage fits the model's "
                               "%d-token context (use a larger --ctx or a model with more)",
                               n_ctx)
                     : CN_OK;
    }
    if (!rc) {
        tok_chat_msg msgs[2] = {{"system", rag_system_prompt}, {"user", user.data}};
        rc = tok_chat_render(family, msgs, 2, true, &prompt, err);
    }
    if (!rc) {
        int k = tok_encode(v, prompt.data, prompt.len, true, true, tc.buf, tc.cap, err);
        rc = k < 0 ? k : k > n_ctx - 16 ? cn_fail(err, CN_ELIMIT, "prompt too long") : CN_OK;
        *n_ids = k < 0 ? 0 : k;
    }
    cn_buf_free(&user);
    cn_buf_free(&prompt);
    for (int i = 0; i < n; i++)
        cn_buf_free(&bufs[i]);
    free(bufs);
    free(ts);
    free(tokens);
    if (rc) {
        free(tc.buf);
        *n_ids = 0;
        return rc;
    }
    *ids = tc.buf;
    return CN_OK;
}
