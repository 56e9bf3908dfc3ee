/*
** search.c: keyword search over the passages (FTS5, bm25).
**
** The user's words never reach FTS5 as query syntax. The query is cut into
** words by the index's own tokenizer ("cairn", tokenize.c, reached through
** the fts5_api), so a query word is exactly what the passages were indexed
** under (stemmed in each language of the library: its alternatives); each word's original spelling then goes into the MATCH expression
** as a quoted string. Operators and punctuation -- "NEAR(", "AND (", a lone
** '"', "col:x*", '^', '-' -- are separators or plain words, never syntax.
**
** Which words count:
**   - common English stop words are left out (unless nothing else is left);
**   - words that occur in no passage are left out (a typo or a question word
**     should not make the all-words tier empty);
**   - the any-word tier also leaves out words found in more than half of the
**     passages: bm25 gives them no weight (FTS5 floors their IDF at 1e-6),
**     so they would only add passages matching nothing else, and scoring
**     every passage of a big library is what makes a search slow.
**
** Ranking, in two tiers:
**   1. passages holding every word (AND), best bm25 first;
**   2. then, to fill k, passages holding any word (OR), best bm25 first.
** A question in natural language rarely has all its words in the passage
** that answers it, so AND alone often finds nothing, and OR alone ranks a
** passage that repeats one rare word above one that holds them all. The
** score is -bm25 over the same words in both tiers, so it is comparable
** across them.
**
** Document titles: a question often names its document ("in Octave", "zsh's
** ...") while the page that answers never repeats it. A passage whose
** document title (else file name) holds a query word gets its score times
** TITLE_BOOST, and the hits are sorted again within their tier. The titles
** are cut by the same tokenizer as the query, so they compare as stems.
** Only the hits found are boosted: the caller asks for a pool larger than it
** shows (lib_search: 4k) for this to reorder anything.
*/
#include "store/store_int.h"

#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_TERMS 32
#define MAX_QUERY_BYTES 4096
#define MAX_TOKEN 128
#define MAX_ALTS 8 /* stems of one word in the library's languages */
#define TITLE_BOOST 1.5
#define PAGE_POOL 20   /* pages whose score supports their passages */
#define PAGE_WEIGHT 1.0 /* a page's -bm25 counts this much in its passages' scores */
#define MAX_TITLE_TOKENS 64
#define MAX_TITLE_BYTES 512

typedef struct term {
    const char *p; /* the word as the user wrote it, in the query */
    size_t len;
    /* the word as the index knows it (folded, stemmed): tok[0], and its
    ** stems in the library's other languages */
    char tok[MAX_ALTS][MAX_TOKEN];
    int tok_len[MAX_ALTS], n_tok;
    int64_t df; /* passages holding it (the sum over its stems: at most
                   that many) */
} term;

typedef struct split_ctx {
    const char *query;
    term *t;
    int n, max;
    bool skipping; /* the current word was not kept: skip its alternatives */
} split_ctx;

static const char *const stop_words[] = {
    "a",     "about", "an",    "and",   "are",  "as",   "at",    "be",    "been",  "but",
    "by",    "can",   "could", "did",   "do",   "does", "for",   "from",  "had",   "has",
    "have",  "how",   "i",     "if",    "in",   "into", "is",    "it",    "its",   "me",
    "my",    "no",    "not",   "of",    "on",   "or",   "our",   "should","so",    "than",
    "that",  "the",   "their", "them",  "then", "there","these", "they",  "this",  "those",
    "to",    "was",   "we",    "were",  "what", "when", "where", "which", "who",   "whom",
    "why",   "will",  "with",  "would", "you",  "your",
};

bool store_is_stop_word(const char *w, size_t len)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(stop_words); i++)
        if (strlen(stop_words[i]) == len && strncasecmp(stop_words[i], w, len) == 0)
            return true;
    return false;
}

static bool is_stop_word(const term *t) { return store_is_stop_word(t->p, t->len); }

/* ---- the index's tokenizer --------------------------------------------- */

/* Create an instance of the index's tokenizer and the vocabulary view of the
** index, once per store. */
static int search_init(store *s, cn_err *err)
{
    if (s->fts_tokenizer)
        return CN_OK;
    fts5_api *api = store_fts5_api(s->db);
    void *ud = NULL;
    if (!api || api->xFindTokenizer(api, STORE_TOKENIZER, &ud, &s->fts_tok) != SQLITE_OK ||
        s->fts_tok.xCreate(ud, NULL, 0, &s->fts_tokenizer) != SQLITE_OK) {
        s->fts_tokenizer = NULL;
        return cn_fail(err, CN_EUNSUPPORTED, "%s: the FTS5 tokenizer \"%s\" is not available",
                       s->path, STORE_TOKENIZER);
    }
    /* temp: lives in this connection only, nothing is written to the file. */
    int rc = sqlite3_exec(s->db,
                          "CREATE VIRTUAL TABLE IF NOT EXISTS temp.store_vocab"
                          " USING fts5vocab(main, passages_fts, 'row')",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        store_search_release(s);
        return store_fail(s, rc, "preparing keyword search", err);
    }
    return CN_OK;
}

void store_search_release(store *s)
{
    if (s->fts_tokenizer)
        s->fts_tok.xDelete(s->fts_tokenizer);
    s->fts_tokenizer = NULL;
}

static int on_token(void *ctx, int tflags, const char *tok, int n_tok, int start, int end)
{
    split_ctx *c = ctx;
    bool alt = tflags & FTS5_TOKEN_COLOCATED;
    if (alt && c->skipping)
        return SQLITE_OK;
    if (n_tok <= 0 || n_tok > MAX_TOKEN || end <= start) {
        c->skipping = !alt;
        return SQLITE_OK;
    }
    if (alt) { /* another language's stem of the last word */
        if (c->n == 0)
            return SQLITE_OK;
        term *t = &c->t[c->n - 1];
        if (t->n_tok < MAX_ALTS) {
            memcpy(t->tok[t->n_tok], tok, (size_t)n_tok);
            t->tok_len[t->n_tok++] = n_tok;
        }
        return SQLITE_OK;
    }
    c->skipping = true;
    for (int i = 0; i < c->n; i++)
        if (c->t[i].tok_len[0] == n_tok && memcmp(c->t[i].tok[0], tok, (size_t)n_tok) == 0)
            return SQLITE_OK; /* "printer printers": one word */
    if (c->n == c->max)
        return SQLITE_DONE; /* enough words */
    c->skipping = false;
    term *t = &c->t[c->n++];
    t->p = c->query + start;
    t->len = (size_t)(end - start);
    memcpy(t->tok[0], tok, (size_t)n_tok);
    t->tok_len[0] = n_tok;
    t->n_tok = 1;
    t->df = 0;
    return SQLITE_OK;
}

/* ---- document frequencies ---------------------------------------------- */

/* The languages of the library's pages, which queries are stemmed in. */
static int read_langs(store *s, cn_err *err)
{
    sqlite3_stmt *st = store_stmt(s, Q_LANGS, err);
    if (!st)
        return err ? err->code : CN_EIO;
    unsigned mask = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *code = (const char *)sqlite3_column_text(st, 0);
        int l = code ? store_lang_of_code(code, (size_t)sqlite3_column_bytes(st, 0)) : -1;
        if (l >= 0)
            mask |= 1u << l;
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return store_fail(s, src, "reading the library's languages", err);
    if (s->query_langs)
        s->query_langs->mask = mask;
    return CN_OK;
}

/* The passage count and the library's languages, read again only when the
** database changed. */
static int passage_count(store *s, int64_t *n, cn_err *err)
{
    int64_t dv = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        dv = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    int64_t changes = sqlite3_total_changes64(s->db);
    if (s->n_rows_valid && dv == s->n_rows_data_version && changes == s->n_rows_changes) {
        *n = s->n_rows;
        return CN_OK;
    }
    if (!(st = store_stmt(s, Q_PASSAGE_COUNT, err)))
        return err ? err->code : CN_EIO;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (src != SQLITE_ROW)
        return store_fail(s, src, "counting passages", err);
    int rc = read_langs(s, err);
    if (rc != CN_OK)
        return rc;
    s->n_rows = *n;
    s->n_rows_data_version = dv;
    s->n_rows_changes = changes;
    s->n_rows_valid = dv >= 0;
    return CN_OK;
}

static int lookup_df(store *s, term *t, cn_err *err)
{
    t->df = 0;
    for (int i = 0; i < t->n_tok; i++) {
        sqlite3_stmt *st = store_stmt(s, Q_VOCAB_DF, err);
        if (!st)
            return err ? err->code : CN_EIO;
        sqlite3_bind_text(st, 1, t->tok[i], t->tok_len[i], SQLITE_STATIC);
        int src = sqlite3_step(st);
        t->df += src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            return store_fail(s, src, "keyword search", err);
    }
    return CN_OK;
}

/* ---- running the query ------------------------------------------------- */

/* "w1" op "w2" op ... into b, each word as the user spelled it. */
static int build_query(cn_buf *b, term *const *t, int n, const char *op)
{
    b->len = 0;
    int rc = CN_OK;
    for (int i = 0; i < n && rc == CN_OK; i++) {
        if (i)
            rc = cn_buf_printf(b, " %s ", op);
        rc = rc == CN_OK ? cn_buf_append(b, "\"", 1) : rc;
        for (size_t j = 0; j < t[i]->len && rc == CN_OK; j++) /* a '"' is doubled */
            rc = cn_buf_append(b, t[i]->p[j] == '"' ? "\"\"" : t[i]->p + j,
                               t[i]->p[j] == '"' ? 2 : 1);
        rc = rc == CN_OK ? cn_buf_append(b, "\"", 1) : rc;
    }
    return rc; /* cn_buf keeps data NUL-terminated */
}

/* Run one MATCH and append hits not yet in hits[0..*n), up to k. */
static int run_match(store *s, const char *match, int limit, int k, bool all_terms, cn_arena *a,
                     store_hit *hits, int *n, cn_err *err)
{
    sqlite3_stmt *st = store_stmt(s, Q_SEARCH, err);
    if (!st)
        return err ? err->code : CN_EIO;
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    int src = SQLITE_DONE;
    bool oom = false;
    while (*n < k && !oom && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        bool seen = false;
        for (int j = 0; j < *n && !seen; j++)
            seen = hits[j].passage_id == id;
        if (seen)
            continue;
        store_hit *h = &hits[*n];
        memset(h, 0, sizeof *h);
        h->passage_id = id;
        store_col_hit(st, a, h, &oom);
        h->score = -sqlite3_column_double(st, 8);
        h->all_terms = all_terms;
        if (!oom)
            (*n)++;
    }
    sqlite3_reset(st);
    if (oom)
        return cn_fail(err, CN_ENOMEM, "%s: keyword search: arena full", s->path);
    if (*n < k && src != SQLITE_DONE)
        return store_fail(s, src, "keyword search", err);
    return CN_OK;
}

/* ---- how much of the question the library holds -------------------------- */

/* bm25's idf of a word in n_rows passages; a word the library does not hold
** at all weighs most: it is what the question is about and no page has it. */
static double idf(int64_t df, int64_t n_rows)
{
    double n = (double)CN_MAX(n_rows, df);
    return log(1.0 + (n - (double)df + 0.5) / ((double)df + 0.5));
}

/* The query's words no passage holds, into qi->missing. */
static void list_missing(term *const *t, int n, store_query_info *qi)
{
    size_t used = 0, cap = sizeof qi->missing;
    qi->missing[0] = 0;
    for (int i = 0; i < n; i++) {
        if (t[i]->df != 0)
            continue;
        size_t need = (used ? 2 : 0) + t[i]->len;
        if (used + need + 1 > cap)
            break;
        used += (size_t)snprintf(qi->missing + used, cap - used, "%s%.*s", used ? ", " : "",
                                 (int)t[i]->len, t[i]->p);
    }
}

/* qi: the idf-weighted share of the query's content words no passage holds,
** and which they are. */
static void absent_words(term *const *t, int n_terms, int64_t n_rows, store_query_info *qi)
{
    double total = 0, absent = 0;
    for (int i = 0; i < n_terms; i++) {
        total += idf(t[i]->df, n_rows);
        absent += t[i]->df == 0 ? idf(0, n_rows) : 0;
    }
    qi->n_words = n_terms;
    qi->absent = total > 0 ? absent / total : 0;
    list_missing(t, n_terms, qi);
}

/* ---- document titles --------------------------------------------------- */

typedef struct title_toks {
    char tok[MAX_TITLE_TOKENS][MAX_TOKEN];
    int len[MAX_TITLE_TOKENS], n;
} title_toks;

static int on_title_token(void *ctx, int tflags, const char *tok, int n_tok, int start, int end)
{
    (void)tflags, (void)start, (void)end;
    title_toks *t = ctx;
    if (t->n == MAX_TITLE_TOKENS)
        return SQLITE_DONE;
    if (n_tok > 0 && n_tok <= MAX_TOKEN) {
        memcpy(t->tok[t->n], tok, (size_t)n_tok);
        t->len[t->n++] = n_tok;
    }
    return SQLITE_OK;
}

/* Does the title of hit h (else its file name without directory and
** extension) hold one of the query's words, in any of their stems? */
static int title_matches(store *s, const store_hit *h, term *const *t, int n, title_toks *tt,
                         bool *match)
{
    *match = false;
    const char *title = h->title;
    size_t len = title ? strlen(title) : 0;
    if (!len && h->path) {
        const char *slash = strrchr(h->path, '/'), *dot;
        title = slash ? slash + 1 : h->path;
        dot = strrchr(title, '.');
        len = dot && dot > title ? (size_t)(dot - title) : strlen(title);
    }
    if (!len)
        return SQLITE_OK;
    tt->n = 0;
    int src = s->fts_tok.xTokenize(s->fts_tokenizer, tt, FTS5_TOKENIZE_QUERY, title,
                                   (int)CN_MIN(len, (size_t)MAX_TITLE_BYTES), on_title_token);
    if (src != SQLITE_OK && src != SQLITE_DONE)
        return src;
    for (int i = 0; i < n && !*match; i++)
        for (int a = 0; a < t[i]->n_tok && !*match; a++)
            for (int j = 0; j < tt->n && !*match; j++)
                *match = tt->len[j] == t[i]->tok_len[a] &&
                         memcmp(tt->tok[j], t[i]->tok[a], (size_t)tt->len[j]) == 0;
    return SQLITE_OK;
}

static int by_tier_then_score(const void *pa, const void *pb)
{
    const store_hit *a = pa, *b = pb;
    if (a->all_terms != b->all_terms)
        return a->all_terms ? -1 : 1;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->passage_id < b->passage_id ? -1 : a->passage_id > b->passage_id;
}

/* Boost the hits whose document is named in the query (not sorted again). */
static int boost_titles(store *s, term *const *t, int n_terms, store_hit *hits, int n, cn_err *err)
{
    title_toks *tt = cn_malloc(sizeof *tt); /* 8 KiB: not on a server worker's stack */
    if (!tt)
        return cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
    int64_t seen_doc = 0;
    bool seen_match = false;
    int src = SQLITE_OK;
    for (int i = 0; i < n && src == SQLITE_OK; i++) {
        bool match = seen_match;
        if (i == 0 || hits[i].doc_id != seen_doc) { /* hits of one document often follow */
            src = title_matches(s, &hits[i], t, n_terms, tt, &match);
            seen_doc = hits[i].doc_id;
            seen_match = match;
        }
        if (match)
            hits[i].score *= TITLE_BOOST;
    }
    free(tt);
    if (src != SQLITE_OK)
        return store_fail(s, src, "reading a document title", err);
    return CN_OK;
}

/* ---- pages that support their passages ----------------------------------- */

typedef struct page_hit {
    int64_t doc_id;
    int number;
    double score; /* -bm25 of the whole page */
} page_hit;

/* Within each tier, the best passage of each page first, then the others in
** the same order: five passages of one page would fill a page of results
** (and an answer's sources) with one place in the document. */
static bool one_per_page_first(store_hit *c, int n)
{
    if (n < 2)
        return true;
    store_hit *out = cn_malloc_array((size_t)n, sizeof *out);
    bool *rep = cn_calloc((size_t)n, sizeof *rep);
    if (!out || !rep) {
        free(out);
        free(rep);
        return false;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i && !rep[i]; j++)
            rep[i] = !rep[j] && c[j].doc_id == c[i].doc_id && c[j].page_start == c[i].page_start;
    int m = 0;
    for (int start = 0; start < n;) { /* one tier: c[start..end) */
        int end = start;
        while (end < n && c[end].all_terms == c[start].all_terms)
            end++;
        for (int pass = 0; pass < 2; pass++)
            for (int i = start; i < end; i++)
                if (rep[i] == (pass == 1))
                    out[m++] = c[i];
        start = end;
    }
    memcpy(c, out, sizeof *c * (size_t)n);
    free(out);
    free(rep);
    return true;
}

/* The best PAGE_POOL pages for match, best first. */
static int search_pages(store *s, const char *match, page_hit *ph, int *n, cn_err *err)
{
    *n = 0;
    sqlite3_stmt *st = store_stmt(s, Q_PAGE_SEARCH, err);
    if (!st)
        return err ? err->code : CN_EIO;
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, PAGE_POOL);
    int src = SQLITE_DONE;
    while (*n < PAGE_POOL && (src = sqlite3_step(st)) == SQLITE_ROW)
        ph[(*n)++] = (page_hit){sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1),
                                -sqlite3_column_double(st, 2)};
    sqlite3_reset(st);
    if (*n < PAGE_POOL && src != SQLITE_DONE)
        return store_fail(s, src, "keyword search of pages", err);
    return CN_OK;
}

/*
** Let the best pages support their passages: each candidate's score becomes
** its own plus PAGE_WEIGHT times the best score of a page it is on (among
** the PAGE_POOL best pages for match); not sorted again. (Adding
** the best passage of each top page no candidate is on changed nothing on
** bench/qa and doubled a search's time: not done.)
*/
static int support_with_pages(store *s, const char *match, store_hit *c, int n, cn_err *err)
{
    page_hit ph[PAGE_POOL];
    int n_ph = 0;
    int rc = search_pages(s, match, ph, &n_ph, err);
    if (rc != CN_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        double best = 0;
        for (int j = 0; j < n_ph; j++)
            if (ph[j].doc_id == c[i].doc_id && c[i].page_start <= ph[j].number &&
                ph[j].number <= c[i].page_end)
                best = CN_MAX(best, ph[j].score);
        c[i].score += PAGE_WEIGHT * best;
    }
    return CN_OK;
}

int store_search_keyword(store *s, const char *query, int k, cn_arena *a, store_hit *hits, int *n,
                         store_query_info *qi, cn_err *err)
{
    if (n)
        *n = 0;
    if (qi)
        *qi = (store_query_info){0, 0, ""};
    if (!query || k <= 0)
        return 0;
    int rc = search_init(s, err);
    if (rc != CN_OK)
        return rc;

    /* The library's languages first: the tokenizer stems the query in each. */
    int64_t n_rows = 0;
    if ((rc = passage_count(s, &n_rows, err)) != CN_OK)
        return rc;

    /* Words, as the index cuts them. */
    term words[MAX_TERMS];
    split_ctx c = {query, words, 0, MAX_TERMS, false};
    int len = (int)strnlen(query, MAX_QUERY_BYTES);
    int src = s->fts_tok.xTokenize(s->fts_tokenizer, &c, FTS5_TOKENIZE_QUERY, query, len, on_token);
    if (src != SQLITE_OK && src != SQLITE_DONE)
        return store_fail(s, src, "reading the query", err);

    /* Content words, then those present in the library. */
    term *content[MAX_TERMS], *and_t[MAX_TERMS], *or_t[MAX_TERMS];
    int n_content = 0, n_and = 0, n_or = 0;
    for (int i = 0; i < c.n; i++)
        if (!is_stop_word(&words[i]))
            content[n_content++] = &words[i];
    if (n_content == 0)
        for (int i = 0; i < c.n; i++)
            content[n_content++] = &words[i];
    for (int i = 0; i < n_content; i++) {
        if ((rc = lookup_df(s, content[i], err)) != CN_OK)
            return rc;
        if (content[i]->df == 0)
            continue;
        and_t[n_and++] = content[i];
        if (content[i]->df * 2 <= n_rows)
            or_t[n_or++] = content[i];
    }
    if (n_and == 0) { /* no word of the query is in the library */
        if (qi)
            absent_words(content, n_content, n_rows, qi);
        return 0;
    }

    int got = 0;
    cn_buf q;
    cn_buf_init(&q, 1 << 16);
    if (build_query(&q, and_t, n_and, "AND") != CN_OK)
        rc = cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
    else
        rc = run_match(s, q.data, k, k, true, a, hits, &got, err);
    if (rc == CN_OK && got < k && n_or > 0 && n_and > 1) {
        if (build_query(&q, or_t, n_or, "OR") != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
        else /* the AND hits may be among the OR hits: ask for enough to skip them */
            rc = run_match(s, q.data, k + got, k, false, a, hits, &got, err);
    }
    /* the pages, for the OR words (AND's if there are none); then titles */
    if (rc == CN_OK && got > 0) {
        if (n_or > 0 ? build_query(&q, or_t, n_or, "OR") : build_query(&q, and_t, n_and, "OR"))
            rc = cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
        if (rc == CN_OK)
            rc = support_with_pages(s, q.data, hits, got, err);
        if (rc == CN_OK)
            rc = boost_titles(s, content, n_content, hits, got, err);
        if (rc == CN_OK) {
            qsort(hits, (size_t)got, sizeof *hits, by_tier_then_score);
            if (!one_per_page_first(hits, got))
                rc = cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
        }
    }
    cn_buf_free(&q);
    if (rc == CN_OK && qi) /* after lookup_df: every content word has its df */
        absent_words(content, n_content, n_rows, qi);
    if (rc != CN_OK)
        return rc;
    if (n)
        *n = got;
    return got;
}
