/*
** constrain.c: decoding under a grammar (issue 16): at each step the tokens
** whose bytes would leave the grammar get no chance (their logits become
** -inf), and an end-of-generation token is allowed only where the grammar's
** sentence is complete. See engine.h, eng_gen_opts.grammar.
**
** The mask is computed by asking the matcher about every token's bytes, the
** simple way; tokens are visited grouped by their first byte, and a first
** byte the grammar refuses rules out its whole group at once.
*/
#include "engine/engine_int.h"
#include "grammar/grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct eng_constraint {
    const tok_vocab *v;
    gr_matcher *m;
    int n_vocab;
    char **piece; /* each token's bytes (NULL: a control token, never allowed) */
    int *len;
    bool *eog;
    int32_t *order;     /* token ids sorted by first byte */
    int first[257];     /* order[first[b] .. first[b+1]) start with byte b */
};

void eng_constraint_free(eng_constraint *c)
{
    if (!c)
        return;
    gr_matcher_free(c->m);
    for (int i = 0; c->piece && i < c->n_vocab; i++)
        free(c->piece[i]);
    free(c->piece);
    free(c->len);
    free(c->eog);
    free(c->order);
    free(c);
}

int eng_constraint_new(const gr_grammar *g, const tok_vocab *v, eng_constraint **out, cn_err *err)
{
    *out = NULL;
    eng_constraint *c = calloc(1, sizeof *c);
    if (!c)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    c->v = v;
    c->n_vocab = tok_n_vocab(v);
    int n = c->n_vocab;
    c->piece = calloc((size_t)n, sizeof *c->piece);
    c->len = calloc((size_t)n, sizeof *c->len);
    c->eog = calloc((size_t)n, sizeof *c->eog);
    c->order = malloc((size_t)n * sizeof *c->order);
    int rc = !c->piece || !c->len || !c->eog || !c->order ? cn_fail(err, CN_ENOMEM, "out of memory")
                                                           : gr_matcher_new(g, &c->m, err);
    int count[257] = {0};
    for (int id = 0; !rc && id < n; id++) {
        c->eog[id] = tok_is_eog(v, id);
        char buf[512];
        int k = tok_piece(v, id, false, buf, (int)sizeof buf);
        if (k <= 0 || k > (int)sizeof buf || c->eog[id])
            continue; /* control tokens and the end: no text */
        if (!(c->piece[id] = malloc((size_t)k)))
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
        else {
            memcpy(c->piece[id], buf, (size_t)k);
            c->len[id] = k;
            count[(unsigned char)buf[0]]++;
        }
    }
    if (!rc) {
        /* counting sort by first byte; textless tokens (256) last */
        for (int id = 0; id < n; id++)
            if (!c->piece[id])
                count[256]++;
        c->first[0] = 0;
        for (int b = 0; b < 256; b++)
            c->first[b + 1] = c->first[b] + count[b];
        int pos[257];
        memcpy(pos, c->first, sizeof pos);
        pos[256] = c->first[256];
        for (int id = 0; id < n; id++)
            c->order[pos[c->piece[id] ? (unsigned char)c->piece[id][0] : 256]++] = id;
    }
    if (rc) {
        eng_constraint_free(c);
        return rc;
    }
    *out = c;
    return CN_OK;
}

int eng_constraint_mask(eng_constraint *c, const float *logits, float *out)
{
    int allowed = 0;
    for (int i = 0; i < c->n_vocab; i++)
        out[i] = -INFINITY;
    for (int b = 0; b < 256; b++) {
        if (c->first[b] == c->first[b + 1])
            continue;
        char lead = (char)b;
        if (!gr_allows(c->m, &lead, 1))
            continue; /* the whole group starts with a refused byte */
        for (int k = c->first[b]; k < c->first[b + 1]; k++) {
            int32_t id = c->order[k];
            if (gr_allows(c->m, c->piece[id], (size_t)c->len[id])) {
                out[id] = logits[id];
                allowed++;
            }
        }
    }
    if (gr_complete(c->m))
        for (int id = 0; id < c->n_vocab; id++)
            if (c->eog[id]) {
                out[id] = logits[id];
                allowed++;
            }
    return allowed;
}

bool eng_constraint_accept(eng_constraint *c, int32_t id)
{
    if (id < 0 || id >= c->n_vocab)
        return false;
    if (c->eog[id])
        return gr_complete(c->m);
    return c->piece[id] && gr_accept(c->m, c->piece[id], (size_t)c->len[id]);
}

bool eng_constraint_finished(const eng_constraint *c) { return gr_finished(c->m); }
