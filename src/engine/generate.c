/*
** generate.c: the generation loop. Evaluate the part of the prompt the KV
** cache does not already hold, then sample, stream and stop. Text reaches
** the callback only once it is valid UTF-8 and cannot be the start of a
** stop string.
*/
#include "engine/engine_int.h"
#include "grammar/grammar.h"

bool eng_grammar_lazy = true;

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_MAX 4096 /* bytes of text held back while a stop string may be forming */

typedef struct out_state {
    char held[HOLD_MAX];
    size_t n_held;
    const eng_gen_opts *o;
} out_state;

/* Length of the longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t partial_stop(const out_state *os, const char *s, size_t n)
{
    size_t best = 0;
    for (int k = 0; k < os->o->n_stop; k++) {
        size_t sl = strlen(os->o->stop[k]);
        for (size_t l = CN_MIN(n, sl - 1); l > best; l--)
            if (memcmp(s + n - l, os->o->stop[k], l) == 0) {
                best = l;
                break;
            }
    }
    return best;
}

/* Append text; report how much of held[] may be emitted (*emit) and whether
** a stop string completed (then held[0..*emit) is the text before it). */
static bool push_text(out_state *os, const char *text, size_t len, size_t *emit)
{
    if (len > HOLD_MAX - os->n_held) { /* cannot happen with sane stop strings; flush first */
        *emit = os->n_held;
        return false;
    }
    memcpy(os->held + os->n_held, text, len);
    os->n_held += len;
    for (int k = 0; k < os->o->n_stop; k++) {
        const char *hit = memmem(os->held, os->n_held, os->o->stop[k], strlen(os->o->stop[k]));
        if (hit) {
            *emit = (size_t)(hit - os->held);
            return true;
        }
    }
    *emit = os->n_held - partial_stop(os, os->held, os->n_held);
    return false;
}

static void drop_emitted(out_state *os, size_t n)
{
    memmove(os->held, os->held + n, os->n_held - n);
    os->n_held -= n;
}

/* Prompt lookup: the longest n-gram (3 tokens down to 2: a single token
** recurs too often to predict much) that ends the history h[0..n) and
** also occurs earlier; the tokens that followed that earlier occurrence
** (the latest one), at most max, go to draft. Returns their count. */
static int lookup_draft(const int32_t *h, int n, int max, int32_t *draft)
{
    for (int g = CN_MIN(3, n - 1); g >= 2; g--) {
        const int32_t *tail = h + n - g;
        for (int j = n - g - 1; j >= 0; j--) {
            if (memcmp(h + j, tail, sizeof *h * (size_t)g) != 0)
                continue;
            int k = CN_MIN(max, n - (j + g));
            memcpy(draft, h + j + g, sizeof *h * (size_t)k);
            if (k > 0)
                return k;
        }
    }
    return 0;
}

/* How many of t[0..n) the model's cache already holds, at most n - 1: the
** last token is always evaluated again, for the logits after it. */
static int cached_prefix(const eng_model *m, const int32_t *t, int n)
{
    int keep = 0;
    while (keep < m->n_cached && keep < n - 1 && m->cached[keep] == t[keep])
        keep++;
    return keep;
}

/* The probability of the largest logit (softmax at temperature 1); its
** index goes to *best. */
static float top_prob(const float *logits, int n, int32_t *best)
{
    *best = eng_argmax(logits, n);
    float mx = logits[*best];
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += expf(logits[i] - mx);
    return (float)(1.0 / sum);
}

/* Draft with the draft model d: bring its cache up to the history h[0..n)
** (it decodes what it has not seen: the whole prompt the first time, then
** the tokens kept since), then propose its top token, one pass each, while
** it is at least ENG_DRAFT_P_MIN sure, up to max tokens. Its drafts are
** certain (greedy), which the acceptance rule of eng_generate requires. */
static int model_draft(eng_model *d, const int32_t *h, int n, int max, int32_t *draft, int *nd,
                       cn_err *err)
{
    *nd = 0;
    if (max <= 0 || n + max > d->n_ctx)
        return CN_OK; /* the draft model's context is full: plain decoding from here */
    int keep = cached_prefix(d, h, n);
    int rc = eng_decode(d, h + keep, n - keep, keep, err);
    for (int k = 0; rc == CN_OK && k < max; k++) {
        int32_t t;
        if (top_prob(d->logits, d->hp.n_vocab, &t) < ENG_DRAFT_P_MIN)
            break;
        draft[(*nd)++] = t;
        if (k + 1 < max)
            rc = eng_decode(d, &t, 1, n + k, err);
    }
    return rc;
}

typedef struct gen_run {
    const tok_vocab *v;
    const eng_gen_opts *o;
    eng_on_token cb;
    void *ctx;
    eng_gen_stats *st;
    tok_stream ts;
    out_state *os;
    char piece[1024];
} gen_run;

/* A chosen token: accounted, rendered, passed on. Returns true when the
** answer ends with it (cancelled, stop string, end of generation). */
static bool emit_token(gen_run *g, eng_sampler *s, int32_t id)
{
    eng_sampler_accept(s, id);
    g->st->n_gen++;
    bool eog = tok_is_eog(g->v, id) && !g->o->ignore_eos;
    int n = eog ? 0 : tok_stream_push(&g->ts, g->v, id, g->o->render_special, g->piece,
                                      sizeof g->piece);
    if (n < 0)
        n = 0; /* a piece too long to render: skip its text, keep the token */
    size_t emit = 0;
    bool hit = push_text(g->os, g->piece, (size_t)n, &emit);
    if (g->cb(g->ctx, id, g->os->held, emit)) {
        g->st->stop = ENG_STOP_CANCEL;
        return true;
    }
    drop_emitted(g->os, emit);
    if (hit) {
        g->st->stop = ENG_STOP_STRING;
        g->os->n_held = 0;
        return true;
    }
    if (eog) {
        g->st->stop = ENG_STOP_EOG;
        return true;
    }
    return false;
}

int eng_generate(eng_model *m, const tok_vocab *v, const int32_t *prompt, int n_prompt,
                 const eng_gen_opts *o, eng_on_token cb, void *ctx, eng_gen_stats *st,
                 cn_err *err)
{
    memset(st, 0, sizeof *st);
    st->n_prompt = n_prompt;
    if (n_prompt <= 0)
        return cn_fail(err, CN_EINVAL, "the prompt is empty");
    if (n_prompt > m->n_ctx)
        return cn_fail(err, CN_ELIMIT, "the prompt is %d tokens but the context holds %d "
                       "(use a larger --ctx, up to %d)", n_prompt, m->n_ctx, m->hp.n_ctx_train);
    for (int k = 0; k < o->n_stop; k++)
        if (!o->stop[k][0] || strlen(o->stop[k]) >= HOLD_MAX / 2)
            return cn_fail(err, CN_EINVAL, "stop strings must be 1 to %d bytes", HOLD_MAX / 2 - 1);
    if (o->draft == m) /* one KV cache cannot hold two texts */
        return cn_fail(err, CN_EINVAL, "the draft model must be opened on its own");
    if (o->draft && o->draft->hp.n_vocab != m->hp.n_vocab)
        return cn_fail(err, CN_EINVAL, "the draft model's vocabulary has %d tokens, the model's "
                       "%d: they must be the same", o->draft->hp.n_vocab, m->hp.n_vocab);

    // reuse the cached prefix; always evaluate at least the last prompt token
    int keep = cached_prefix(m, prompt, n_prompt);
    double t0 = cn_now();
    int rc = eng_decode(m, prompt + keep, n_prompt - keep, keep, err);
    if (rc)
        return rc;
    st->n_prompt_eval = n_prompt - keep;
    st->t_prompt = cn_now() - t0;

    /* under a grammar, each token is drawn from the tokens it allows: no
    ** drafts (they would be checked against the free distribution) */
    eng_constraint *con = NULL;
    float *masked = NULL;
    if (o->grammar) {
        if ((rc = eng_constraint_new(o->grammar, v, m->pool, &con, err)))
            return rc;
        if (!(masked = cn_malloc(sizeof *masked * (size_t)m->hp.n_vocab))) {
            eng_constraint_free(con);
            return cn_fail(err, CN_ENOMEM, "out of memory");
        }
    }
    int lookup = con ? 0 : CN_MIN(CN_MIN(o->lookup, ENG_SPEC_MAX), m->n_batch - 1);
    int draft_max = o->draft && !con ? CN_MIN(CN_MIN(o->draft_max, ENG_SPEC_MAX), m->n_batch - 1) : 0;
    int spec_max = CN_MAX(lookup, draft_max);
    int32_t *hist = NULL;
    float *plogits = NULL;
    eng_sampler *s;
    if ((rc = eng_sampler_new(&s, m->hp.n_vocab, &o->sampler, err))) {
        eng_constraint_free(con);
        free(masked);
        return rc;
    }
    if (spec_max > 0) {
        hist = cn_malloc(sizeof *hist * ((size_t)n_prompt + (size_t)CN_MAX(o->n_predict, 0) + 1));
        plogits = cn_malloc(sizeof *plogits * (size_t)m->hp.n_vocab * (size_t)(spec_max + 1));
        if (!hist || !plogits) {
            free(hist), free(plogits);
            eng_sampler_free(s);
            return cn_fail(err, CN_ENOMEM, "out of memory");
        }
        memcpy(hist, prompt, sizeof *hist * (size_t)n_prompt);
    }
    for (int i = 0; i < n_prompt; i++)
        eng_sampler_accept(s, prompt[i]);

    static _Thread_local out_state os; /* 4 kB: kept off the stack, one per thread */
    os.n_held = 0;
    os.o = o;
    gen_run g = {.v = v, .o = o, .cb = cb, .ctx = ctx, .st = st, .os = &os};
    tok_stream_init(&g.ts);
    int n_past = n_prompt, n_hist = n_prompt, draft_len = lookup;
    const float *logits = m->logits; /* the distribution of the next token */
    int32_t drawn = -1;              /* the next token, when a verification drew it */
    t0 = cn_now();
    st->stop = ENG_STOP_LENGTH;
    bool done = o->n_predict <= 0;
    while (!done) {
        const float *use = logits;
        if (con) {
            /* near the end of the budget, close: each token must bring the
            ** end of the grammar's text nearer (by at least one character),
            ** so it ends within the tokens left rather than being cut */
            int left = o->n_predict - st->n_gen;
            bool closing = left <= 0 || (size_t)left <= eng_constraint_distance(con) + 8;
            /* the token the free distribution draws, when the grammar allows
            ** it, is kept: for greedy decoding it is the masked argmax, and
            ** for sampling, keeping an allowed draw and drawing again from
            ** the masked distribution otherwise gives each allowed token
            ** p(t) / p(allowed), as masking first would (llama.cpp does the
            ** same; with top-k/top-p the truncation sees the free logits).
            ** The mask, the costly part, is then needed only on a miss. */
            if (!closing && eng_grammar_lazy) {
                int32_t t = eng_sample(s, logits);
                if (eng_constraint_allows(con, t))
                    drawn = t;
            }
            if (drawn < 0) {
                double tm = cn_now();
                int n_allowed = eng_constraint_mask(con, logits, masked);
                st->t_mask += cn_now() - tm;
                st->n_masked++;
                if (n_allowed == 0) {
                    rc = cn_fail(err, CN_EINVAL, "the grammar allows no token of this "
                                 "vocabulary here (after %d tokens)", st->n_gen);
                    break;
                }
                use = masked;
                if (closing)
                    drawn = eng_constraint_closer(con, masked);
            }
        }
        int32_t id = drawn >= 0 ? drawn : eng_sample(s, use);
        drawn = -1;
        if (hist)
            hist[n_hist++] = id;
        /* the mask allowed id, so the matcher takes it; it can refuse only
        ** where a hostile grammar passes the matcher's work limit, and then
        ** nothing it did not check is written */
        if (con && !eng_constraint_accept(con, id)) {
            rc = cn_fail(err, CN_ELIMIT, "the grammar is too costly to follow here (after %d "
                         "tokens): a repetition of a rule that may match nothing?",
                         st->n_gen);
            break;
        }
        if (emit_token(&g, s, id) || st->n_gen >= o->n_predict)
            break;
        if (con && eng_constraint_finished(con)) {
            st->stop = ENG_STOP_EOG; /* the grammar's sentence is whole */
            break;
        }
        if (n_past >= m->n_ctx) {
            st->stop = ENG_STOP_CONTEXT;
            break;
        }
        /* tokens that may follow, by prompt lookup; none may run past the
        ** answer's budget or the context */
        int32_t batch[ENG_SPEC_MAX + 1] = {id};
        int room = CN_MIN(o->n_predict - st->n_gen, m->n_ctx - n_past - 1);
        int nd = lookup > 0 ? lookup_draft(hist, n_hist, CN_MIN(draft_len, room), batch + 1) : 0;
        bool by_model = false;
        if (nd == 0 && draft_max > 0) {
            double t1 = cn_now();
            rc = model_draft(o->draft, hist, n_hist, CN_MIN(draft_max, room), batch + 1, &nd, err);
            st->t_draft += cn_now() - t1;
            if (rc)
                break;
            by_model = nd > 0;
            st->n_model_drafted += nd;
        }
        st->n_passes++;
        if (nd == 0) {
            if ((rc = eng_decode(m, &id, 1, n_past, err)))
                break;
            n_past++;
            logits = m->logits;
            continue;
        }
        if ((rc = eng_decode_all(m, batch, nd + 1, n_past, plogits, err)))
            break;
        st->n_drafted += nd;
        n_past++;
        logits = plogits;
        /* keep the drafted tokens the model chooses itself: one draw per
        ** position, as plain decoding makes, so the tokens (and, sampling,
        ** the random stream) are plain decoding's; a draw that is not the
        ** draft is the next token (drawing again would favour the draft) */
        int kept = 0;
        for (int d = 0; d < nd && !done; d++) {
            int32_t y = eng_sample(s, logits);
            if (y != batch[d + 1]) {
                drawn = y;
                break;
            }
            kept++;
            st->n_accepted++;
            st->n_model_accepted += by_model;
            hist[n_hist++] = batch[d + 1];
            done = emit_token(&g, s, batch[d + 1]) || st->n_gen >= o->n_predict;
            n_past++;
            logits = plogits + (size_t)(d + 1) * m->hp.n_vocab;
        }
        m->n_cached = n_past; /* the cache past the kept tokens holds rejected ones */
        /* longer drafts while they are kept, shorter when they are not: a
        ** pass over many rejected tokens costs more than one token's */
        if (by_model)
            continue; /* the draft model's own certainty sets its length */
        if (kept == nd)
            draft_len = CN_MIN(lookup, 2 * draft_len);
        else if (kept == 0)
            draft_len = CN_MAX(1, draft_len / 2);
    }
    st->t_gen = cn_now() - t0;
    eng_constraint_free(con);
    free(masked);
    free(hist);
    free(plogits);
    // whatever is still held back (a partial stop string, a cut UTF-8 tail) is output now
    if (rc == CN_OK && st->stop != ENG_STOP_STRING && st->stop != ENG_STOP_CANCEL) {
        int n = tok_stream_flush(&g.ts, g.piece, sizeof g.piece);
        size_t emit;
        if (n > 0)
            push_text(&os, g.piece, (size_t)n, &emit);
        if (os.n_held)
            cb(ctx, -1, os.held, os.n_held);
    }
    eng_sampler_free(s);
    return rc;
}

int eng_draft_open(eng_model **d, const char *path, const eng_model *m, const tok_vocab *v,
                   cn_err *err)
{
    eng_opts o = {.n_ctx = m->n_ctx, .n_threads = m->n_threads};
    tok_vocab *dv = NULL;
    int rc = eng_model_open(d, path, &o, err);
    if (!rc)
        rc = tok_open(&dv, eng_model_gguf(*d), err);
    if (!rc && tok_n_vocab(dv) != tok_n_vocab(v))
        rc = cn_fail(err, CN_EINVAL, "%s: a draft model needs the model's vocabulary: it has %d "
                     "tokens, the model %d", path, tok_n_vocab(dv), tok_n_vocab(v));
    for (int32_t id = 0; !rc && id < tok_n_vocab(v); id++) {
        size_t l1, l2;
        const char *t1 = tok_text(v, id, &l1), *t2 = tok_text(dv, id, &l2);
        if (l1 != l2 || memcmp(t1, t2, l1))
            rc = cn_fail(err, CN_EINVAL, "%s: a draft model needs the model's vocabulary: token "
                         "%d is '%.*s' there, '%.*s' in the model", path, (int)id,
                         (int)CN_MIN(l2, 40), t2, (int)CN_MIN(l1, 40), t1);
    }
    tok_close(dv);
    if (rc) {
        eng_model_close(*d);
        *d = NULL;
    }
    return rc;
}
