/*
** trim.c: passages cut down to what the question is about before a model
** reads them. Prompt processing is the whole wait before an answer's first
** token, so every token of a passage that cannot bear on the question costs
** the user time. A passage is cut into the units of the extractive answer
** (rag_split_units: sentences, list items, table rows); the units that
** carry one of the question's terms come first, then the units around them
** (the sentence before often names what "it" is), then, as the budget
** allows, the rest nearest to them. What is kept stays in its order and
** its own words, and every cut shows as " … " so the model can tell that
** text is missing. The heading line, when the passage opens with one, is
** always kept: it says what the passage is about.
*/
#include "rag/rag_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char ellipsis[] = "\xE2\x80\xA6"; /* … */

rag_trim_opts rag_trim_defaults(void)
{
    return (rag_trim_opts){.budget = RAG_PASSAGE_TOKENS, .context = 1, .fill = true,
                           .no_match_pct = 50};
}

static int estimate(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    (void)s;
    return (int)(n / 4 + 1);
}

typedef struct tunit {
    size_t off, len;  /* the unit in the passage, white space around it out */
    int tokens;
    int score;        /* question terms it holds */
    int dist;         /* units to the nearest one holding a term */
    bool keep;
} tunit;

typedef struct tunits {
    tunit *u;
    int n, cap;
} tunits;

static int collect(void *ctx, const char *p, const rag_unit_span *sp)
{
    tunits *us = ctx;
    size_t a = sp->off, b = sp->off + sp->len;
    while (a < b && isspace((unsigned char)p[a]))
        a++;
    while (b > a && isspace((unsigned char)p[b - 1]))
        b--;
    if (a == b)
        return CN_OK;
    if (us->n == us->cap) {
        int cap = us->cap ? us->cap * 2 : 64;
        tunit *u = realloc(us->u, sizeof *u * (size_t)cap);
        if (!u)
            return CN_ENOMEM;
        us->u = u;
        us->cap = cap;
    }
    us->u[us->n++] = (tunit){.off = a, .len = b - a};
    return CN_OK;
}

/* A heading: one short line without a sentence's closing punctuation. */
static bool heading_like(const char *s, size_t n)
{
    if (memchr(s, '\n', n) || strchr(".!?:;", s[n - 1]))
        return false;
    int words = 0;
    for (size_t i = 0; i < n; i++)
        words += (i == 0 || isspace((unsigned char)s[i - 1])) && !isspace((unsigned char)s[i]);
    return words < 12;
}

/* The longest prefix of s[0..n) that counts at most budget tokens, cut
** between code points (and at a space when there is one near), so that a
** unit too long for any budget -- a 100 KB "sentence" -- still gives its
** opening words. */
static size_t fit_prefix(const char *s, size_t n, int budget, rag_count_fn count, void *ctx)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* largest m with count(s[0..m)) <= budget */
        size_t m = lo + (hi - lo + 1) / 2;
        while (m > lo && ((unsigned char)s[m] & 0xC0) == 0x80 && m < n)
            m--; /* never inside a code point */
        if (m == lo)
            break;
        if (count(ctx, s, m) <= budget)
            lo = m;
        else
            hi = m - 1;
    }
    while (lo < n && lo > 0 && ((unsigned char)s[lo] & 0xC0) == 0x80)
        lo--;
    size_t sp = lo;
    while (sp > lo / 2 && sp > 0 && !isspace((unsigned char)s[sp - 1]))
        sp--;
    if (sp > lo / 2 && sp > 0)
        lo = sp;
    while (lo > 0 && isspace((unsigned char)s[lo - 1]))
        lo--;
    return lo;
}

/* The kept units of p into out, in order, with " … " where text is left
** out; the unit at index partial (if >= 0) only its first plen bytes. */
static int emit(const char *p, const tunits *us, int partial, size_t plen, cn_buf *out)
{
    int rc = CN_OK, last = -1;
    for (int i = 0; i < us->n && rc == CN_OK; i++) {
        const tunit *u = &us->u[i];
        if (!u->keep)
            continue;
        if (last >= 0 && last == i - 1) /* the text between them, as written */
            rc = cn_buf_append(out, p + us->u[last].off + us->u[last].len,
                               u->off - us->u[last].off - us->u[last].len);
        else if (last >= 0)
            rc = cn_buf_printf(out, " %s ", ellipsis);
        else if (i > 0)
            rc = cn_buf_printf(out, "%s ", ellipsis);
        if (rc == CN_OK)
            rc = cn_buf_append(out, p + u->off, i == partial ? plen : u->len);
        if (rc == CN_OK && i == partial && plen < u->len)
            rc = cn_buf_printf(out, " %s", ellipsis);
        last = i;
    }
    if (rc == CN_OK && last >= 0 && last < us->n - 1 && last != partial)
        rc = cn_buf_printf(out, " %s", ellipsis);
    return rc;
}

/* A unit's place in the order units are taken in: those with the most
** question terms, then the nearest to them; earlier first among equals. */
typedef struct rank {
    int score, dist, i;
} rank;

static int by_rank(const void *a, const void *b)
{
    const rank *x = a, *y = b;
    if (x->score != y->score)
        return y->score - x->score;
    if (x->dist != y->dist)
        return x->dist - y->dist;
    return x->i - y->i;
}

int rag_trim_passage(const char *question, const char *p, size_t len, const rag_trim_opts *o,
                     int budget, rag_count_fn count, void *ctx, cn_buf *out)
{
    if (!count)
        count = estimate;
    size_t start = out->len;
    if (budget <= 0)
        return CN_OK;
    if (count(ctx, p, len) <= budget)
        return cn_buf_append(out, p, len);
    tunits us = {0};
    rank *order = NULL;
    int rc = rag_split_units(p, len, collect, &us);
    rag_term q[64];
    int nq = rag_terms_of(question, strlen(question), q, 64);
    int matched = 0, best = 0;
    for (int i = 0; i < us.n && rc == CN_OK; i++) {
        tunit *u = &us.u[i];
        u->tokens = count(ctx, p + u->off, u->len);
        u->score = rag_terms_held(p + u->off, u->len, q, nq);
        matched += u->score > 0;
        best = CN_MAX(best, u->score);
    }
    /* the units holding the most terms anchor the rest: the nearest to them
    ** come next (measured on bench/qa: a little better than any unit with
    ** a term, within a few questions) */
    int anchor = CN_MAX(1, best);
    /* distance to the nearest unit with a term: two sweeps; with none, the
    ** passage's own order (it was retrieved for a reason: its opening) */
    for (int i = 0, d = 1 << 29; i < us.n; i++)
        us.u[i].dist = d = matched ? (us.u[i].score >= anchor ? 0 : CN_MIN(d + 1, 1 << 29)) : i;
    for (int i = us.n - 1, d = 1 << 29; i >= 0 && matched; i--) {
        d = us.u[i].score >= anchor ? 0 : CN_MIN(d + 1, 1 << 29);
        us.u[i].dist = CN_MIN(us.u[i].dist, d);
    }
    order = us.n ? malloc(sizeof *order * (size_t)us.n) : NULL;
    if (us.n && !order)
        rc = CN_ENOMEM;
    int n_order = 0;
    for (int i = 0; i < us.n && rc == CN_OK; i++) /* the heading before all */
        order[n_order++] = (rank){i == 0 && heading_like(p + us.u[0].off, us.u[0].len)
                                      ? 1 << 20 : us.u[i].score,
                                  us.u[i].dist, i};
    if (n_order > 1)
        qsort(order, (size_t)n_order, sizeof *order, by_rank);
    /* a passage with no term of the question gets its opening, up to a
    ** share of the budget; one with terms, them and their context, and
    ** (with fill) whatever else the budget holds */
    int limit = matched || o->fill ? budget : CN_MAX(1, budget * o->no_match_pct / 100);
    int left = limit, partial = -1, kept = 0;
    size_t plen = 0;
    for (int k = 0; k < n_order && rc == CN_OK; k++) {
        tunit *u = &us.u[order[k].i];
        bool head = order[k].score == 1 << 20;
        if (matched && !o->fill && u->dist > o->context && !head)
            break;
        int cost = u->tokens + 2; /* and the joint or the " … " before it */
        if (cost <= left) {
            u->keep = true;
            left -= cost;
            kept++;
        } else if (kept == 0 || (!head && u->score > 0 && left > 16)) {
            /* too long for what is left: its opening, so that a passage
            ** is never dropped whole and a long matching unit still shows */
            plen = fit_prefix(p + u->off, u->len, left - 4, count, ctx);
            if (plen > 0) {
                u->keep = true;
                partial = order[k].i;
                kept++;
            }
            break;
        } else if (!o->fill && !matched)
            break; /* the opening only: no later unit in its place */
    }
    /* the joints counted on a guess: drop the last units taken until the
    ** whole counts within the budget (bounded: a few rounds, then cut) */
    for (int round = 0, k = n_order - 1; rc == CN_OK; round++) {
        out->len = start;
        rc = emit(p, &us, partial, plen, out);
        if (rc || out->len == start || count(ctx, out->data + start, out->len - start) <= budget)
            break;
        while (k >= 0 && !us.u[order[k].i].keep)
            k--;
        if (round >= 8 || k <= 0) {
            out->len = start + fit_prefix(out->data + start, out->len - start, budget, count, ctx);
            break;
        }
        us.u[order[k].i].keep = false;
        if (order[k].i == partial)
            partial = -1;
    }
    free(order);
    free(us.u);
    return rc;
}

int rag_trim(const char *question, const rag_source *src, int n, const rag_trim_opts *o,
             rag_count_fn count, void *ctx, cn_buf *out, int *before, int *after)
{
    if (!count)
        count = estimate;
    bool *whole = calloc((size_t)CN_MAX(n, 1), sizeof *whole);
    if (!whole)
        return CN_ENOMEM;
    for (int i = 0; i < n; i++)
        before[i] = src[i].text ? count(ctx, src[i].text, strlen(src[i].text)) : 0;
    /* each passage gets an equal share of the budget; one shorter than its
    ** share is kept whole and leaves the rest to the others */
    int left = o->budget, n_left = n, share = 0;
    for (bool changed = true; changed && n_left > 0 && o->budget > 0;) {
        changed = false;
        share = left / n_left;
        for (int i = 0; i < n; i++)
            if (!whole[i] && before[i] <= share) {
                whole[i] = changed = true;
                left -= before[i];
                n_left--;
            }
    }
    int rc = CN_OK;
    for (int i = 0; i < n && rc == CN_OK; i++) {
        const char *t = src[i].text ? src[i].text : "";
        out[i].len = 0;
        if (o->budget <= 0 || whole[i]) {
            rc = cn_buf_append(&out[i], t, strlen(t));
            after[i] = before[i];
            continue;
        }
        rc = rag_trim_passage(question, t, strlen(t), o, share, count, ctx, &out[i]);
        /* an empty buffer has no data: make it "" for the caller */
        if (rc == CN_OK)
            rc = cn_buf_append(&out[i], "", 0);
        after[i] = rc ? 0 : out[i].len ? count(ctx, out[i].data, out[i].len) : 0;
    }
    free(whole);
    return rc;
}
