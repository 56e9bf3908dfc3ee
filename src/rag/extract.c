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
** and the best one comes first, whichever passage it is in.
*/
#include "rag/rag.h"
#include "store/store.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_UNITS = 1024, MAX_Q_TERMS = 64, MAX_U_TERMS = 64 };

/* Words that are never the point of a match: keyword search's stop words,
** and a few more that say nothing about which sentence answers. */
static bool stop_word(const char *w, size_t n)
{
    static const char *const more[] = {"also", "any",  "all",  "some", "being", "use",
                                       "used", "using", "more", "most", "many",  "much",
                                       "may",  "must", "one",  "get",  "way"};
    if (store_is_stop_word(w, n))
        return true;
    for (size_t i = 0; i < CN_ARRAY_LEN(more); i++)
        if (strlen(more[i]) == n && !strncmp(more[i], w, n))
            return true;
    return false;
}

typedef struct term {
    char w[24];
    unsigned char n;
} term;

/* Strip common English inflections so that forms of one word compare equal;
** crude on purpose (the keyword index does the real stemming), and never
** below three letters. */
static size_t crude_stem(char *w, size_t n)
{
    static const char *const suf[] = {"ations", "ation", "ings", "ing", "ions", "ion", "ies",
                                       "ied",   "ers",  "er",  "ed",  "es",  "ly",  "s"};
    for (size_t i = 0; i < CN_ARRAY_LEN(suf); i++) {
        size_t k = strlen(suf[i]);
        if (n > k + 2 && !memcmp(w + n - k, suf[i], k)) {
            n -= k;
            break;
        }
    }
    /* "cancell(ing)" ~ "cancel", "stopp(ed)" ~ "stop" */
    if (n > 3 && w[n - 1] == w[n - 2] && !strchr("aeiouls", w[n - 1]))
        n--;
    if (n > 3 && w[n - 1] == 'l' && w[n - 2] == 'l')
        n--;
    if (n > 3 && w[n - 1] == 'e')
        n--;
    w[n] = 0;
    return n;
}

/* The distinct content terms of s[0..len): lower-cased, stemmed, at least
** three characters (UTF-8 letters count as letters). */
static int terms_of(const char *s, size_t len, term *t, int max)
{
    int k = 0;
    size_t i = 0;
    while (i < len && k < max) {
        while (i < len && !isalnum((unsigned char)s[i]) && !((unsigned char)s[i] & 0x80))
            i++;
        size_t st = i;
        while (i < len && (isalnum((unsigned char)s[i]) || ((unsigned char)s[i] & 0x80)))
            i++;
        size_t n = i - st;
        if (n < 3 || n >= sizeof t[0].w)
            continue;
        char w[sizeof t[0].w];
        for (size_t j = 0; j < n; j++)
            w[j] = (char)tolower((unsigned char)s[st + j]);
        w[n] = 0;
        if (stop_word(w, n))
            continue;
        n = crude_stem(w, n);
        bool seen = false;
        for (int j = 0; j < k && !seen; j++)
            seen = t[j].n == n && !memcmp(t[j].w, w, n);
        if (!seen) {
            memcpy(t[k].w, w, n + 1);
            t[k].n = (unsigned char)n;
            k++;
        }
    }
    return k;
}

typedef struct unit {
    int src;         /* index of its passage */
    size_t off, len; /* the cleaned text, in the units' buffer */
    double score;
    int order;
    term t[MAX_U_TERMS];
    int nt;
} unit;

/* A line that is a list item: a bullet or "1." / "2)" / "(a)" first.
** Returns the length of the marker (with its spaces), 0 if none. */
static size_t list_marker(const char *s, size_t n)
{
    size_t i = 0;
    if (n >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && s[1] == ' ')
        i = 2;
    else if (n >= 4 && !memcmp(s, "\xE2\x80\xA2", 3)) /* • */
        i = 3;
    else {
        while (i < n && i < 4 && isdigit((unsigned char)s[i]))
            i++;
        if (!(i > 0 && i < n && (s[i] == '.' || s[i] == ')') && i + 1 < n && s[i + 1] == ' '))
            return 0;
        i++;
    }
    while (i < n && s[i] == ' ')
        i++;
    return i;
}

/* A table row: cells separated by '|' or by tabs. */
static bool table_row(const char *s, size_t n)
{
    int bars = 0, tabs = 0;
    for (size_t i = 0; i < n; i++)
        bars += s[i] == '|', tabs += s[i] == '\t';
    return bars >= 2 || tabs >= 2;
}

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

/* Is the '.' at s[i] the end of a sentence (and not "e.g." or "Fig.")? */
static bool sentence_end(const char *s, size_t i, size_t n)
{
    if (i + 1 < n && !isspace((unsigned char)s[i + 1]))
        return false;
    if (s[i] != '.')
        return true;
    size_t w = i;
    while (w > 0 && isalpha((unsigned char)s[w - 1]))
        w--;
    static const char *const abbr[] = {"e.g", "i.e", "etc", "vs", "cf", "Fig", "fig", "No",
                                       "Dr", "Mr", "Mrs", "Sec", "sec", "approx", "resp"};
    size_t wl = i - w;
    if (wl == 1)
        return false; /* an initial, or the "g" of "e.g." */
    for (size_t k = 0; k < CN_ARRAY_LEN(abbr); k++)
        if (strlen(abbr[k]) == wl && !memcmp(s + w, abbr[k], wl))
            return false;
    return true;
}

typedef struct units {
    unit *u;
    int n;
    cn_buf text;
} units;

/* Add s[0..n) of passage src as a unit if it reads as one on its own. */
static int add_unit(units *us, int src, const char *s, size_t n, bool item)
{
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
    *u = (unit){.src = src, .off = off, .len = len, .order = us->n};
    u->nt = terms_of(t, len, u->t, MAX_U_TERMS);
    us->n++;
    return CN_OK;
}

/* Cut one passage into units: list items and table rows line by line, the
** rest into sentences (a blank line also ends one). */
static int split_passage(units *us, int src, const char *p)
{
    size_t n = strlen(p), i = 0, start = 0;
    int rc = CN_OK;
    while (i <= n && rc == CN_OK) {
        /* at a line start: a list item or a table row is a unit of its own */
        if (i < n && (i == 0 || p[i - 1] == '\n')) {
            size_t e = i;
            while (e < n && p[e] != '\n')
                e++;
            size_t m = list_marker(p + i, e - i);
            if (m || table_row(p + i, e - i)) {
                if (i > start)
                    rc = add_unit(us, src, p + start, i - start, false);
                if (rc == CN_OK)
                    rc = add_unit(us, src, p + i + m, e - i - m, true);
                i = start = e < n ? e + 1 : n + 1;
                continue;
            }
        }
        if (i == n || (p[i] == '\n' && i + 1 < n && p[i + 1] == '\n') ||
            ((p[i] == '.' || p[i] == '!' || p[i] == '?') && sentence_end(p, i, n))) {
            size_t e = i < n && p[i] != '\n' ? i + 1 : i;
            if (e > start)
                rc = add_unit(us, src, p + start, e - start, false);
            start = i = e + (e == i);
            continue;
        }
        i++;
    }
    return rc;
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
    term q[MAX_Q_TERMS];
    int nq = terms_of(question, strlen(question), q, MAX_Q_TERMS);
    units us = {.u = cn_malloc_array(MAX_UNITS, sizeof(unit))};
    cn_buf_init(&us.text, (size_t)64 << 20);
    int rc = us.u ? CN_OK : CN_ENOMEM;
    for (int i = 0; i < n && rc == CN_OK; i++)
        rc = split_passage(&us, i, src[i].text ? src[i].text : "");
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
