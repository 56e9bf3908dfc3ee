/*
** spm.c: the SentencePiece-style tokenizer of tokenizer.ggml.model "llama",
** as llama.cpp's llm_tokenizer_spm does it.
**
** The text (spaces already "▁") is cut into UTF-8 characters by their lead
** byte alone, so any byte string works. Then, repeatedly, the adjacent pair
** whose concatenation is the vocab token with the highest score is merged
** (ties: leftmost first). A piece left at the end that is not a token is
** written as byte tokens, <0xNN> for each of its bytes.
*/
#include "tok/tok_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct sym {
    int32_t prev, next;
    uint32_t start, n;
} sym;

typedef struct spm_work {
    const tok_vocab *v;
    const char *text;
    sym *syms;
    tok_bigram_heap heap;
} spm_work;

/* Queue the pair (left, right) if together they spell a token. */
static int try_pair(spm_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return CN_OK;
    const sym *l = &w->syms[left], *r = &w->syms[right];
    int32_t id = tok_lookup(w->v, w->text + l->start, l->n + r->n);
    if (id < 0)
        return CN_OK;
    return tok_bigram_push(&w->heap, (tok_bigram){w->v->score[id], left, right, l->n + r->n});
}

int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *ids, cn_err *err)
{
    if (len == 0)
        return CN_OK;
    spm_work w = {v, text, cn_calloc(len, sizeof(sym)), {0}};
    int rc = w.syms ? CN_OK : CN_ENOMEM;
    int32_t n = 0;
    for (size_t at = 0; !rc && at < len; n++) {
        size_t k = CN_MIN(tok_utf8_len((unsigned char)text[at]), len - at);
        w.syms[n] = (sym){n - 1, at + k == len ? -1 : n + 1, (uint32_t)at, (uint32_t)k};
        at += k;
    }
    for (int32_t i = 1; !rc && i < n; i++)
        rc = try_pair(&w, i - 1, i);
    tok_bigram g;
    while (!rc && tok_bigram_pop(&w.heap, &g)) {
        sym *l = &w.syms[g.left], *r = &w.syms[g.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != g.size)
            continue; /* one side was merged since */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w.syms[r->next].prev = g.left;
        rc = try_pair(&w, l->prev, g.left);
        if (!rc)
            rc = try_pair(&w, g.left, l->next);
    }
    for (int32_t i = 0; !rc && n > 0 && i != -1; i = w.syms[i].next) {
        const sym *s = &w.syms[i];
        int32_t id = tok_lookup(v, text + s->start, s->n);
        if (id >= 0) {
            rc = tok_ids_push(ids, id);
            continue;
        }
        /* byte fallback; llama.cpp throws when a vocab has no token for a
        ** byte, we use the unknown token, or drop the byte if there is none */
        for (uint32_t j = 0; !rc && j < s->n; j++) {
            id = tok_spm_byte_token(v, (unsigned char)text[s->start + j]);
            if (id < 0)
                id = v->unk;
            if (id >= 0)
                rc = tok_ids_push(ids, id);
        }
    }
    free(w.syms);
    free(w.heap.v);
    if (rc)
        return cn_fail(err, rc, "tokenizer: out of memory for %zu bytes of text", len);
    return CN_OK;
}
