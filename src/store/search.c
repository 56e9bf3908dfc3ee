/*
** search.c: keyword search over the passages (FTS5, bm25).
**
** The user's words never reach FTS5 as query syntax. The query is cut into
** words exactly where the unicode61 tokenizer would cut them (a word is a run
** of letters, digits, private-use characters and combining marks; everything
** else -- spaces, punctuation, symbols, quotes, parentheses, '*', ':' -- is a
** separator), and every word becomes a quoted FTS5 string. "NEAR(", "AND (",
** a lone '"' or "col:x*" are therefore just words or nothing at all.
**
** Ranking, in two tiers:
**   1. every content word present (the words joined by AND), best bm25 first;
**   2. then, to fill k, passages holding any of them (OR), best bm25 first.
** A question in natural language ("how do I reset the printer?") rarely has
** all its words in the passage that answers it, so AND alone often finds
** nothing, and OR alone ranks a passage that repeats one rare word above one
** that holds them all. The score is -bm25 of the same phrases in both tiers,
** so it is comparable across them; common English stop words are left out
** of both (they would make tier 1 miss and tier 2 match everything), unless
** the query has nothing else.
*/
#include "store/store_int.h"

#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#define MAX_TERMS 32
#define MAX_QUERY_BYTES 4096

typedef struct term {
    const char *p;
    size_t len;
} term;

static const char *const stop_words[] = {
    "a",     "about", "an",    "and",   "are",  "as",   "at",    "be",    "been",  "but",
    "by",    "can",   "could", "did",   "do",   "does", "for",   "from",  "had",   "has",
    "have",  "how",   "i",     "if",    "in",   "into", "is",    "it",    "its",   "me",
    "my",    "no",    "not",   "of",    "on",   "or",   "our",   "should","so",    "than",
    "that",  "the",   "their", "them",  "then", "there","these", "they",  "this",  "those",
    "to",    "was",   "we",    "were",  "what", "when", "where", "which", "who",   "whom",
    "why",   "will",  "with",  "would", "you",  "your",
};

static bool is_stop_word(const term *t)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(stop_words); i++)
        if (strlen(stop_words[i]) == t->len && strncasecmp(stop_words[i], t->p, t->len) == 0)
            return true;
    return false;
}

/* 1: starts or continues a word; 2: only continues one (combining mark);
** 0: separator. */
static int char_class(utf8proc_int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_CO:
        return 1;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return 2;
    default:
        return 0;
    }
}

/* Cut q into at most max distinct words (ASCII case ignored for duplicates). */
static int split_terms(const char *q, term *out, int max)
{
    size_t len = strnlen(q, MAX_QUERY_BYTES), i = 0;
    int n = 0;
    const char *start = NULL;
    bool has_base = false;
    while (i <= len && n < max) {
        utf8proc_int32_t c = 0;
        utf8proc_ssize_t k = 0;
        int cls = 0;
        if (i < len) {
            k = utf8proc_iterate((const utf8proc_uint8_t *)q + i, (utf8proc_ssize_t)(len - i), &c);
            if (k <= 0)
                k = 1; /* invalid byte: a separator */
            else
                cls = char_class(c);
        }
        if (cls == 1 || (cls == 2 && start)) {
            if (!start)
                start = q + i, has_base = false;
            has_base |= cls == 1;
        } else if (start) {
            term t = {start, (size_t)(q + i - start)};
            bool dup = false;
            for (int j = 0; j < n && !dup; j++)
                dup = out[j].len == t.len && strncasecmp(out[j].p, t.p, t.len) == 0;
            if (has_base && !dup)
                out[n++] = t;
            start = NULL;
        }
        if (i == len)
            break;
        i += (size_t)k;
    }
    return n;
}

/* "w1" op "w2" op ... into buf; words hold no '"' (a separator). */
static int build_query(cn_buf *b, const term *t, int n, const char *op)
{
    int rc = CN_OK;
    for (int i = 0; i < n && rc == CN_OK; i++) {
        if (i)
            rc = cn_buf_printf(b, " %s ", op);
        if (rc == CN_OK)
            rc = cn_buf_printf(b, "\"%.*s\"", (int)t[i].len, t[i].p);
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
        h->doc_id = sqlite3_column_int64(st, 1);
        h->path = store_col_str(st, 2, a, NULL, &oom);
        h->title = store_col_str(st, 3, a, NULL, &oom);
        h->page_start = sqlite3_column_int(st, 4);
        h->page_end = sqlite3_column_int(st, 5);
        h->heading = store_col_str(st, 6, a, NULL, &oom);
        h->text = store_col_str(st, 7, a, &h->len, &oom);
        h->score = -sqlite3_column_double(st, 8);
        h->all_terms = all_terms;
        if (!oom)
            (*n)++;
    }
    if (oom)
        src = SQLITE_DONE;
    sqlite3_reset(st);
    if (oom)
        return cn_fail(err, CN_ENOMEM, "%s: keyword search: arena full", s->path);
    if (*n < k && src != SQLITE_DONE)
        return store_fail(s, src, "keyword search", err);
    return CN_OK;
}

int store_search_keyword(store *s, const char *query, int k, cn_arena *a, store_hit *hits, int *n,
                         cn_err *err)
{
    int got = 0;
    if (n)
        *n = 0;
    if (!query || k <= 0)
        return 0;
    term all[MAX_TERMS], content[MAX_TERMS];
    int n_all = split_terms(query, all, MAX_TERMS), n_content = 0;
    for (int i = 0; i < n_all; i++)
        if (!is_stop_word(&all[i]))
            content[n_content++] = all[i];
    if (n_content == 0) {
        memcpy(content, all, sizeof all[0] * (size_t)n_all);
        n_content = n_all;
    }
    if (n_content == 0)
        return 0;

    cn_buf q;
    cn_buf_init(&q, 1 << 16);
    int rc = build_query(&q, content, n_content, "AND");
    if (rc == CN_OK)
        rc = run_match(s, q.data, k, k, true, a, hits, &got, err);
    else
        rc = cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
    if (rc == CN_OK && got < k && n_content > 1) {
        q.len = 0;
        if (build_query(&q, content, n_content, "OR") != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: keyword search: out of memory", s->path);
        else /* the AND hits are among the OR hits: ask for enough to skip them */
            rc = run_match(s, q.data, k + got, k, false, a, hits, &got, err);
    }
    cn_buf_free(&q);
    if (rc != CN_OK)
        return rc;
    if (n)
        *n = got;
    return got;
}
