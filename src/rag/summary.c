/*
** summary.c: what summaries need from the text side. A summary is a list
** of sentences, each with the pages it came from. A model's sentences are
** traced back to their pages by the content words they share with the text
** it read (rag_attribute): the model is never trusted to cite pages itself,
** so a summary's page numbers are as right for a 1B model as for a large
** one. Without a model, the extractive summary picks the sentences most
** central to the document (rag_central): scored against the document's
** centroid, the classic centroid method, chosen with a redundancy penalty
** (maximal marginal relevance), so three sentences say three things.
*/
#include "rag/rag_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TERMS = 64 };

void rag_sents_free(rag_sents *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i].text);
    free(s->v);
    *s = (rag_sents){0};
}

int rag_sents_add(rag_sents *s, const char *text, size_t len, const rag_span *spans, int n_spans)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        rag_sent *v = cn_realloc_array(s->v, (size_t)cap, sizeof *v);
        if (!v)
            return CN_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    rag_sent *t = &s->v[s->n];
    *t = (rag_sent){.text = cn_malloc(len + 1)};
    if (!t->text)
        return CN_ENOMEM;
    memcpy(t->text, text, len);
    t->text[len] = 0;
    t->n_spans = CN_MIN(n_spans, RAG_SPANS);
    if (t->n_spans > 0)
        memcpy(t->spans, spans, sizeof *spans * (size_t)t->n_spans);
    s->n++;
    return CN_OK;
}

typedef struct cut_ctx {
    bool prose_only;
    const rag_span *spans;
    int n_spans;
    rag_sents *out;
    cn_buf tmp;
} cut_ctx;

static int add_sentence(void *ctx, const char *p, const rag_unit_span *u)
{
    cut_ctx *c = ctx;
    c->tmp.len = 0;
    const char *s = p + u->body;
    size_t n = u->len - (u->body - u->off);
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        bool sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        if (sp) {
            space = c->tmp.len > 0;
            continue;
        }
        if (space && cn_buf_append(&c->tmp, " ", 1))
            return CN_ENOMEM;
        space = false;
        if (cn_buf_append(&c->tmp, s + i, 1))
            return CN_ENOMEM;
    }
    if (c->tmp.len == 0)
        return CN_OK;
    if (c->prose_only) {
        int words = 1;
        for (size_t i = 0; i < c->tmp.len; i++)
            words += c->tmp.data[i] == ' ';
        char last = c->tmp.data[c->tmp.len - 1];
        bool whole = strchr(".!?\"", last) != NULL;
        /* a heading, a caption, a fragment, or a run-on table: not a sentence */
        if (!whole || words < 6 || words > 80)
            return CN_OK;
    }
    return rag_sents_add(c->out, c->tmp.data, c->tmp.len, c->spans, c->n_spans);
}

int rag_sentences(const char *text, size_t len, bool prose_only, const rag_span *spans,
                  int n_spans, rag_sents *out)
{
    cut_ctx c = {prose_only, spans, n_spans, out, {0}};
    cn_buf_init(&c.tmp, (size_t)1 << 24);
    int rc = rag_split_units(text, len, add_sentence, &c);
    cn_buf_free(&c.tmp);
    return rc;
}

/* Add span x to s's spans, merged with those it touches; false if full. */
static bool add_span(rag_sent *s, rag_span x)
{
    for (int i = 0; i < s->n_spans; i++) {
        rag_span *y = &s->spans[i];
        if (x.first <= y->last + 1 && y->first <= x.last + 1) {
            y->first = CN_MIN(y->first, x.first);
            y->last = CN_MAX(y->last, x.last);
            return true;
        }
    }
    if (s->n_spans == RAG_SPANS)
        return false;
    int i = s->n_spans++;
    while (i > 0 && s->spans[i - 1].first > x.first) { /* kept in page order */
        s->spans[i] = s->spans[i - 1];
        i--;
    }
    s->spans[i] = x;
    return true;
}

void rag_attribute(rag_sent *s, const rag_sents *src, rag_span fallback)
{
    rag_term t[MAX_TERMS];
    int nt = rag_terms_of(s->text, strlen(s->text), t, MAX_TERMS);
    int best = 0;
    int *held = src->n ? cn_malloc_array((size_t)src->n, sizeof *held) : NULL;
    for (int i = 0; held && i < src->n; i++) {
        held[i] = nt ? rag_terms_held(src->v[i].text, strlen(src->v[i].text), t, nt) : 0;
        best = CN_MAX(best, held[i]);
    }
    s->n_spans = 0;
    if (best >= 2) {
        /* nearly as good: at least four fifths of the best source's words */
        for (int i = 0; i < src->n; i++)
            if (held[i] * 5 >= best * 4)
                for (int k = 0; k < src->v[i].n_spans; k++)
                    if (!add_span(s, src->v[i].spans[k]))
                        break;
    }
    if (s->n_spans == 0)
        add_span(s, fallback);
    free(held);
}

int rag_format_spans(const rag_sent *s, cn_buf *out)
{
    bool many = s->n_spans > 1 || (s->n_spans == 1 && s->spans[0].first != s->spans[0].last);
    int rc = cn_buf_printf(out, "%s", many ? "pp. " : "p. ");
    for (int i = 0; i < s->n_spans && !rc; i++) {
        const rag_span *x = &s->spans[i];
        rc = x->first == x->last ? cn_buf_printf(out, "%s%d", i ? ", " : "", x->first)
                                 : cn_buf_printf(out, "%s%d-%d", i ? ", " : "", x->first, x->last);
    }
    return rc;
}

/* ---- the extractive summary ---------------------------------------------- */

/* Document frequency of each term, in an open-addressed table. */
typedef struct term_slot {
    rag_term t;
    int df;
    bool used;
} term_slot;

typedef struct term_table {
    term_slot *v;
    size_t mask;
} term_table;

static size_t term_hash(const rag_term *t)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < t->n; i++)
        h = (h ^ (unsigned char)t->w[i]) * 1099511628211ull;
    return (size_t)h;
}

static term_slot *term_find(term_table *tt, const rag_term *t)
{
    size_t i = term_hash(t) & tt->mask;
    while (tt->v[i].used && !(tt->v[i].t.n == t->n && !memcmp(tt->v[i].t.w, t->w, t->n)))
        i = (i + 1) & tt->mask;
    return &tt->v[i];
}

typedef struct cand {
    int id[MAX_TERMS]; /* its terms, as slots of the table */
    int nt;
    double score, red; /* red: the largest share of its terms a chosen one holds */
    bool chosen;
} cand;

static int by_index(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int rag_central(const rag_sents *s, int want, int *chosen)
{
    int n = s->n;
    want = CN_MIN(want, n);
    if (want <= 0)
        return 0;
    cand *c = cn_calloc((size_t)n, sizeof *c);
    size_t slots = 1024;
    while (slots < (size_t)n * MAX_TERMS)
        slots *= 2;
    term_table tt = {cn_calloc(slots, sizeof *tt.v), slots - 1};
    unsigned char *mark = cn_calloc(slots, 1);
    if (!c || !tt.v || !mark) {
        free(c);
        free(tt.v);
        free(mark);
        return CN_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        rag_term t[MAX_TERMS];
        c[i].nt = rag_terms_of(s->v[i].text, strlen(s->v[i].text), t, MAX_TERMS);
        for (int k = 0; k < c[i].nt; k++) {
            term_slot *e = term_find(&tt, &t[k]);
            if (!e->used)
                *e = (term_slot){.t = t[k], .used = true};
            e->df++;
            c[i].id[k] = (int)(e - tt.v);
        }
    }
    /* the centroid weight of a term: how often the document uses it times
    ** how rare it is; a term in nearly every sentence says little, one in
    ** a single sentence is not what the document is about */
    double top = 0;
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int k = 0; k < c[i].nt; k++) {
            int df = tt.v[c[i].id[k]].df;
            if (df > 1)
                sum += df * log((double)n / df + 1.0);
        }
        c[i].score = c[i].nt ? sum / sqrt((double)c[i].nt + 4.0) : 0;
        top = CN_MAX(top, c[i].score);
    }
    int k = 0;
    while (k < want) {
        int bi = -1;
        double bv = -1e30;
        for (int i = 0; i < n; i++) {
            double v = (top > 0 ? c[i].score / top : 0) - 0.7 * c[i].red;
            if (!c[i].chosen && v > bv) {
                bv = v;
                bi = i;
            }
        }
        if (bi < 0)
            break;
        c[bi].chosen = true;
        chosen[k++] = bi;
        for (int a = 0; a < c[bi].nt; a++)
            mark[c[bi].id[a]] = 1;
        for (int i = 0; i < n; i++) {
            int same = 0;
            for (int a = 0; a < c[i].nt; a++)
                same += mark[c[i].id[a]];
            if (c[i].nt)
                c[i].red = CN_MAX(c[i].red, (double)same / c[i].nt);
        }
        for (int a = 0; a < c[bi].nt; a++)
            mark[c[bi].id[a]] = 0;
    }
    qsort(chosen, (size_t)k, sizeof *chosen, by_index);
    free(c);
    free(tt.v);
    free(mark);
    return k;
}
