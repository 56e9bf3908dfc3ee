/*
** units.c: passages cut into units (sentences of prose, list items, table
** rows) and the content terms of a text, for the extractive answer and for
** passage trimming alike (rag_int.h).
*/
#include "rag/rag_int.h"
#include "store/store.h"

#include <ctype.h>
#include <string.h>

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

static bool word_byte(unsigned char c) { return isalnum(c) || (c & 0x80); }

/* The next content term of s[*i..len) into t (stemmed); false at the end.
** UTF-8 letters count as letters; words of under three or of 24 and more
** bytes are passed over. */
static bool next_term(const char *s, size_t len, size_t *i, rag_term *t)
{
    while (*i < len) {
        while (*i < len && !word_byte((unsigned char)s[*i]))
            (*i)++;
        size_t st = *i;
        while (*i < len && word_byte((unsigned char)s[*i]))
            (*i)++;
        size_t n = *i - st;
        if (n < 3 || n >= sizeof t->w)
            continue;
        for (size_t j = 0; j < n; j++)
            t->w[j] = (char)tolower((unsigned char)s[st + j]);
        t->w[n] = 0;
        if (stop_word(t->w, n))
            continue;
        t->n = (unsigned char)crude_stem(t->w, n);
        return true;
    }
    return false;
}

static bool same_term(const rag_term *a, const rag_term *b)
{
    return a->n == b->n && !memcmp(a->w, b->w, a->n);
}

int rag_terms_of(const char *s, size_t len, rag_term *t, int max)
{
    int k = 0;
    size_t i = 0;
    rag_term w;
    while (k < max && next_term(s, len, &i, &w)) {
        bool seen = false;
        for (int j = 0; j < k && !seen; j++)
            seen = same_term(&t[j], &w);
        if (!seen)
            t[k++] = w;
    }
    return k;
}

int rag_terms_held(const char *s, size_t len, const rag_term *q, int nq)
{
    bool held[64] = {0};
    int k = 0;
    nq = CN_MIN(nq, (int)CN_ARRAY_LEN(held));
    size_t i = 0;
    rag_term w;
    while (k < nq && next_term(s, len, &i, &w))
        for (int a = 0; a < nq; a++)
            if (!held[a] && same_term(&q[a], &w)) {
                held[a] = true;
                k++;
            }
    return k;
}

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

int rag_split_units(const char *p, size_t n, rag_unit_fn fn, void *ctx)
{
    size_t i = 0, start = 0;
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
                    rc = fn(ctx, p, &(rag_unit_span){start, i - start, start, false});
                if (rc == CN_OK)
                    rc = fn(ctx, p, &(rag_unit_span){i, e - i, i + m, true});
                i = start = e < n ? e + 1 : n + 1;
                continue;
            }
        }
        if (i == n || (p[i] == '\n' && i + 1 < n && p[i + 1] == '\n') ||
            ((p[i] == '.' || p[i] == '!' || p[i] == '?') && sentence_end(p, i, n))) {
            size_t e = i < n && p[i] != '\n' ? i + 1 : i;
            if (e > start)
                rc = fn(ctx, p, &(rag_unit_span){start, e - start, start, false});
            start = i = e + (e == i);
            continue;
        }
        i++;
    }
    return rc;
}
