/*
** generate.c: the generation loop. Evaluate the part of the prompt the KV
** cache does not already hold, then sample, stream and stop. Text reaches
** the callback only once it is valid UTF-8 and cannot be the start of a
** stop string.
*/
#include "engine/engine_int.h"

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

    // reuse the cached prefix; always evaluate at least the last prompt token
    int keep = 0;
    while (keep < m->n_cached && keep < n_prompt - 1 && m->cached[keep] == prompt[keep])
        keep++;
    double t0 = cn_now();
    int rc = eng_decode(m, prompt + keep, n_prompt - keep, keep, err);
    if (rc)
        return rc;
    st->n_prompt_eval = n_prompt - keep;
    st->t_prompt = cn_now() - t0;

    eng_sampler *s;
    if ((rc = eng_sampler_new(&s, m->hp.n_vocab, &o->sampler, err)))
        return rc;
    for (int i = 0; i < n_prompt; i++)
        eng_sampler_accept(s, prompt[i]);

    static _Thread_local out_state os; /* 4 kB: kept off the stack, one per thread */
    os.n_held = 0;
    os.o = o;
    tok_stream ts;
    tok_stream_init(&ts);
    char piece[1024];
    int n_past = n_prompt;
    t0 = cn_now();
    st->stop = ENG_STOP_LENGTH;
    for (int i = 0; i < o->n_predict; i++) {
        int32_t id = eng_sample(s, m->logits);
        eng_sampler_accept(s, id);
        st->n_gen++;
        bool eog = tok_is_eog(v, id) && !o->ignore_eos;
        int n = eog ? 0 : tok_stream_push(&ts, v, id, o->render_special, piece, sizeof piece);
        if (n < 0)
            n = 0; /* a piece too long to render: skip its text, keep the token */
        size_t emit = 0;
        bool hit = push_text(&os, piece, (size_t)n, &emit);
        if (cb(ctx, id, os.held, emit)) {
            st->stop = ENG_STOP_CANCEL;
            break;
        }
        drop_emitted(&os, emit);
        if (hit) {
            st->stop = ENG_STOP_STRING;
            os.n_held = 0;
            break;
        }
        if (eog) {
            st->stop = ENG_STOP_EOG;
            break;
        }
        if (i + 1 == o->n_predict)
            break;
        if (n_past >= m->n_ctx) {
            st->stop = ENG_STOP_CONTEXT;
            break;
        }
        if ((rc = eng_decode(m, &id, 1, n_past, err)))
            break;
        n_past++;
    }
    st->t_gen = cn_now() - t0;
    // whatever is still held back (a partial stop string, a cut UTF-8 tail) is output now
    if (rc == CN_OK && st->stop != ENG_STOP_STRING && st->stop != ENG_STOP_CANCEL) {
        int n = tok_stream_flush(&ts, piece, sizeof piece);
        size_t emit;
        if (n > 0)
            push_text(&os, piece, (size_t)n, &emit);
        if (os.n_held)
            cb(ctx, -1, os.held, os.n_held);
    }
    eng_sampler_free(s);
    return rc;
}
