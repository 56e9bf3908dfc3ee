/*
** sample.c: choosing the next token from logits. The order of the steps is
** llama.cpp's default chain: repetition penalty, top-k, top-p, min-p,
** temperature, then a seeded draw. Temperature 0 is greedy.
*/
#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float logit;
    float p;
} cand;

struct eng_sampler {
    eng_sampler_opts o;
    int n_vocab;
    cand *c;           /* (n_vocab) candidates, reused every call */
    int32_t *recent;   /* ring of the last repeat_last_n accepted tokens */
    int n_recent, head;
    uint64_t rng[2];
};

eng_sampler_opts eng_sampler_defaults(void)
{
    return (eng_sampler_opts){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                              .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* xorshift128+: fast, and the same sequence for the same seed everywhere */
static double rng_uniform(eng_sampler *s)
{
    uint64_t a = s->rng[0], b = s->rng[1];
    s->rng[0] = b;
    a ^= a << 23;
    s->rng[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return (double)((s->rng[1] + b) >> 11) * (1.0 / 9007199254740992.0);
}

void eng_sampler_reset(eng_sampler *s)
{
    uint64_t x = s->o.seed;
    s->rng[0] = splitmix(&x);
    s->rng[1] = splitmix(&x);
    s->n_recent = s->head = 0;
}

int eng_sampler_new(eng_sampler **out, int n_vocab, const eng_sampler_opts *o, cn_err *err)
{
    *out = NULL;
    if (o->temp < 0 || o->top_k < 0 || !(o->top_p > 0 && o->top_p <= 1) || o->min_p < 0 ||
        o->min_p > 1 || !(o->repeat_penalty > 0) || o->repeat_last_n < 0)
        return cn_fail(err, CN_EINVAL, "sampling options out of range (temp >= 0, top-k >= 0, "
                       "0 < top-p <= 1, 0 <= min-p <= 1, repeat penalty > 0)");
    eng_sampler *s = cn_calloc(1, sizeof *s);
    if (!s)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    s->o = *o;
    s->n_vocab = n_vocab;
    s->c = cn_calloc((size_t)n_vocab, sizeof *s->c);
    s->recent = cn_calloc((size_t)o->repeat_last_n + 1, sizeof *s->recent);
    if (!s->c || !s->recent) {
        eng_sampler_free(s);
        return cn_fail(err, CN_ENOMEM, "out of memory");
    }
    eng_sampler_reset(s);
    *out = s;
    return CN_OK;
}

void eng_sampler_free(eng_sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->recent);
    free(s);
}

void eng_sampler_accept(eng_sampler *s, int32_t id)
{
    int cap = s->o.repeat_last_n;
    if (cap == 0)
        return;
    s->recent[s->head] = id;
    s->head = (s->head + 1) % cap;
    if (s->n_recent < cap)
        s->n_recent++;
}

int32_t eng_argmax(const float *logits, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* Move the k best candidates to the front, sorted (a heap would be faster
** for huge vocabularies; quickselect keeps it O(n) on average). */
static void select_top(cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        cand pivot = c[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_cand(&c[i], &pivot) < 0)
                i++;
            while (cmp_cand(&c[j], &pivot) > 0)
                j--;
            if (i <= j) {
                cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

int32_t eng_sample(eng_sampler *s, const float *logits)
{
    const eng_sampler_opts *o = &s->o;
    int n = s->n_vocab;
    cand *c = s->c;
    for (int i = 0; i < n; i++)
        c[i] = (cand){i, logits[i], 0};

    // repetition penalty (llama.cpp's rule: shrink positive logits, grow negative ones)
    if (o->repeat_penalty != 1.0f) {
        for (int r = 0; r < s->n_recent; r++) {
            int32_t id = s->recent[r];
            if (id < 0 || id >= n)
                continue;
            bool dup = false; /* penalize each token once however often it occurred */
            for (int q = 0; q < r; q++)
                dup |= s->recent[q] == id;
            if (dup)
                continue;
            float *l = &c[id].logit;
            *l = *l > 0 ? *l / o->repeat_penalty : *l * o->repeat_penalty;
        }
    }
    if (o->temp <= 0) {
        int32_t best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        return best;
    }

    // top-k, then sort what remains (top-p and min-p need the order)
    int k = o->top_k > 0 && o->top_k < n ? o->top_k : n;
    if (k < n)
        select_top(c, n, k);
    else
        qsort(c, (size_t)n, sizeof *c, cmp_cand);
    n = k;

    // probabilities at temperature 1 for top-p / min-p, as llama.cpp orders them
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += c[i].p = expf(c[i].logit - c[0].logit);
    if (o->top_p < 1.0f) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += c[i].p / sum;
            if (cum >= o->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (o->min_p > 0) {
        int keep = 1;
        while (keep < n && c[keep].p >= o->min_p * c[0].p)
            keep++;
        n = keep;
    }

    // temperature and the draw
    sum = 0;
    for (int i = 0; i < n; i++)
        sum += c[i].p = expf((c[i].logit - c[0].logit) / o->temp);
    double r = rng_uniform(s) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += c[i].p;
        if (r < acc)
            return c[i].id;
    }
    return c[n - 1].id;
}
