/*
** extract.c: the extractive answer, what every user gets before a language
** model is installed. The passages are cut into units a reader can take on
** their own: whole sentences of prose, and list items and table rows as
** units of their own (a manual's "- jobid - id of the job" must not run into
** the next line). Headings, numbering, Markdown anchors ("{#job-status}")
** and bullets are stripped; a short line that ends without a full stop and
** is neither a list item nor a table row (a heading, a caption) is never
** offered as an answer. Units are scored by the question's terms they hold,
** each weighted by how rare it is among all units (a word every passage
** has says little) and compared by a crude stem ("cancelling" ~ "cancel"),
** and the best one comes first, whichever passage it is in. The cutting
** and the terms are units.c's, shared with passage trimming (trim.c).
*/
#include "rag/rag_int.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_UNITS = 1024, MAX_Q_TERMS = 64, MAX_U_TERMS = 64 };

typedef struct unit {
    int src;         /* index of its passage */
    size_t off, len; /* the cleaned text, in the units' buffer */
    double score;
    int order;
    rag_term t[MAX_U_TERMS];
    int nt;
} unit;

/* Append s[0..n) to b cleaned: "{#anchor}" dropped, a leading section
** number ("3.2.1 ") dropped, whitespace runs as one space. */
static int clean_into(cn_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    size_t j = i;
    while (j < n && (isdigit((unsigned char)s[j]) || s[j] == '.'))
        j++;
    int dots = 0;
    for (size_t k = i; k < j; k++)
        dots += s[k] == '.';
    /* "3.2.1 Title" and "4. Title" lose their number; "3.5 bar" keeps it */
    if (j > i && j < n && s[j] == ' ' && isdigit((unsigned char)s[i]) &&
        (dots >= 2 || (dots == 1 && s[j - 1] == '.')))
        i = j + 1;
    bool space = false;
    int rc = CN_OK;
    for (; i < n && rc == CN_OK; i++) {
        if (s[i] == '{' && i + 1 < n && s[i + 1] == '#') {
            const char *close = memchr(s + i, '}', n - i);
            if (close) {
                i = (size_t)(close - s);
                continue;
            }
        }
        if (isspace((unsigned char)s[i])) {
            space = true;
            continue;
        }
        if (space && b->len && b->data[b->len - 1] != ' ')
            rc = cn_buf_append(b, " ", 1);
        space = false;
        if (rc == CN_OK)
            rc = cn_buf_append(b, s + i, 1);
    }
    while (b->len && b->data[b->len - 1] == ' ')
        b->len--;
    return rc;
}

typedef struct units {
    unit *u;
    int n;
    int src; /* the passage being cut */
    cn_buf text;
} units;

/* Add unit sp of passage us->src as a unit if it reads as one on its own. */
static int add_unit(void *ctx, const char *p, const rag_unit_span *sp)
{
    units *us = ctx;
    const char *s = p + sp->body;
    size_t n = sp->len - (sp->body - sp->off);
    bool item = sp->item;
    if (us->n == MAX_UNITS)
        return CN_OK;
    size_t off = us->text.len;
    int rc = clean_into(&us->text, s, n);
    if (rc)
        return rc;
    size_t len = us->text.len - off;
    const char *t = us->text.data + off;
    int words = 0;
    for (size_t i = 0; i < len; i++)
        words += (i == 0 || t[i - 1] == ' ') && t[i] != ' ';
    bool whole = len && strchr(".!?:;)\"", t[len - 1]);
    /* without a full stop, a short single line is a heading or a caption;
    ** a long run is content set without punctuation (a reference card's
    ** rows, joined by the PDF reader) and stays */
    bool heading = !whole && !item && !memchr(s, '\n', n) && words < 12;
    if (len < 20 || words < 4 || heading) {
        us->text.len = off; /* a heading or a fragment: not an answer */
        return CN_OK;
    }
    unit *u = &us->u[us->n];
    *u = (unit){.src = us->src, .off = off, .len = len, .order = us->n};
    u->nt = rag_terms_of(t, len, u->t, MAX_U_TERMS);
    us->n++;
    return CN_OK;
}

static int by_score(const void *a, const void *b)
{
    const unit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->order - y->order;
}

int rag_extract(const char *question, const rag_source *src, int n, int max_sentences,
                cn_buf *out, bool *used)
{
    rag_term q[MAX_Q_TERMS];
    int nq = rag_terms_of(question, strlen(question), q, MAX_Q_TERMS);
    units us = {.u = cn_malloc_array(MAX_UNITS, sizeof(unit))};
    cn_buf_init(&us.text, (size_t)64 << 20);
    int rc = us.u ? CN_OK : CN_ENOMEM;
    for (int i = 0; i < n && rc == CN_OK; i++) {
        const char *p = src[i].text ? src[i].text : "";
        us.src = i;
        rc = rag_split_units(p, strlen(p), add_unit, &us);
    }
    /* weight of each question term: log(1 + units / units holding it) */
    double wq[MAX_Q_TERMS], total = 0;
    for (int a = 0; a < nq && rc == CN_OK; a++) {
        int df = 0;
        for (int k = 0; k < us.n; k++)
            for (int b = 0; b < us.u[k].nt; b++)
                if (us.u[k].t[b].n == q[a].n && !memcmp(us.u[k].t[b].w, q[a].w, q[a].n)) {
                    df++;
                    break;
                }
        wq[a] = df ? log(1.0 + (double)us.n / df) : 0;
        total += df ? wq[a] : log(1.0 + (double)us.n + 1); /* absent terms still count */
    }
    for (int k = 0; k < us.n && rc == CN_OK; k++) {
        unit *u = &us.u[k];
        double s = 0;
        for (int a = 0; a < nq; a++)
            for (int b = 0; b < u->nt; b++)
                if (u->t[b].n == q[a].n && !memcmp(u->t[b].w, q[a].w, q[a].n)) {
                    s += wq[a];
                    break;
                }
        /* the share of the question's weight it holds; earlier passages
        ** (ranked higher) win ties, and a long unit pays a little */
        u->score = total > 0 ? s / total - 0.005 * u->src - 0.0001 * (double)(u->len / 40) : 0;
        if (s == 0)
            u->score = 0;
    }
    if (rc == CN_OK)
        qsort(us.u, (size_t)us.n, sizeof *us.u, by_score);
    int k = 0;
    for (int i = 0; rc == CN_OK && i < us.n && k < max_sentences && us.u[i].score > 0; i++) {
        const unit *u = &us.u[i];
        bool repeat = false; /* overlapping passages hold the same sentence */
        for (int j = 0; j < i && !repeat; j++)
            repeat = us.u[j].score > 0 && us.u[j].len == u->len &&
                     !memcmp(us.text.data + us.u[j].off, us.text.data + u->off, u->len);
        if (repeat)
            continue;
        rc = cn_buf_printf(out, "%s%.*s [%d]", k ? " " : "", (int)u->len, us.text.data + u->off,
                           u->src + 1);
        used[u->src] = true;
        k++;
    }
    free(us.u);
    cn_buf_free(&us.text);
    return rc ? rc : k;
}

/* ---- the passages of one document for a query (extract) ------------------ */

typedef struct ranked {
    int i;
    double score;
} ranked;

static int by_rank(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->i - y->i;
}

int rag_rank(const char *query, const char *const *texts, int n, int k, int *best)
{
    rag_term q[MAX_Q_TERMS];
    int nq = rag_terms_of(query, strlen(query), q, MAX_Q_TERMS);
    ranked *r = cn_malloc_array((size_t)CN_MAX(n, 1), sizeof *r);
    int *df = cn_calloc((size_t)CN_MAX(nq, 1), sizeof *df);
    unsigned char *held = cn_calloc((size_t)CN_MAX(n, 1) * (size_t)CN_MAX(nq, 1), 1);
    if (!r || !df || !held) {
        free(r);
        free(df);
        free(held);
        return CN_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        for (int a = 0; a < nq; a++)
            if (rag_terms_held(texts[i], strlen(texts[i]), &q[a], 1)) {
                held[(size_t)i * (size_t)nq + (size_t)a] = 1;
                df[a]++;
            }
    int m = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int a = 0; a < nq; a++)
            if (held[(size_t)i * (size_t)nq + (size_t)a])
                s += log(1.0 + (double)n / df[a]); /* rarer in the document, more telling */
        if (s > 0)
            r[m++] = (ranked){i, s};
    }
    qsort(r, (size_t)m, sizeof *r, by_rank);
    m = CN_MIN(m, k);
    for (int i = 0; i < m; i++)
        best[i] = r[i].i;
    free(r);
    free(df);
    free(held);
    return m;
}
