/*
** chunk.c: pages to passages.
**
** The text of all pages is read as one stream of words (runs of
** non-whitespace; long runs, such as CJK text without spaces or URLs, are
** cut into pieces at code point boundaries). Each word knows what kind of
** boundary comes before it: a paragraph ("\n\n"), a sentence (the previous
** word ends in . ! ? or a CJK full stop and this one does not start
** lower-case), or just a space. Words fill a window up to max_tokens; the
** passage ends at the last paragraph boundary in the window's second half,
** else the last sentence boundary there, else after the last word that fits.
** The next passage starts about overlap_pct % of max_tokens back, at a
** sentence start when one is near. Only the window is held in memory, so a
** long document costs no more than its passages.
*/
#include "ingest/ingest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { BRK_WORD = 0, BRK_SENT = 1, BRK_PARA = 2 };

typedef struct cword {
    int page;    /* index into d->pages */
    size_t s, e; /* byte range in that page's text */
    int brk;     /* boundary before this word */
    int tok;
} cword;

typedef struct heading {
    int page;
    size_t off;
    const char *text;
    const char *path; /* "1 Intro › 1.2 Scope" for the file's own headings, else "" */
} heading;

typedef struct chunker {
    const ingest_doc *d;
    int max_tok;
    int (*count)(void *, const char *, size_t);
    void *ctx;
    /* scanner */
    int page;
    size_t off;
    bool prev_ends_sentence;
    bool started;
    int piece_brk;    /* boundary before the next piece of a cut word */
    size_t piece_end; /* end of the current run when cutting it into pieces */
    int failed;       /* count_tokens returned a negative value */
} chunker;

static bool is_cjk(int32_t c)
{
    return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FFFF);
}

static bool is_cjk_stop(int32_t c)
{
    return c == 0x3002 || c == 0xFF01 || c == 0xFF1F;
}

int chunk_estimate_tokens(void *ctx, const char *str, size_t n)
{
    (void)ctx;
    const unsigned char *s = (const unsigned char *)str;
    int tokens = 0;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                run++;
                continue;
            }
            if (run)
                tokens += 1 + (int)((run - 1) / 6), run = 0;
            if (c > ' ')
                tokens++;
            continue;
        }
        int32_t cp;
        int l = ingest_utf8_next(s + i, n - i, &cp);
        i += (size_t)l;
        if (cp >= 0 && !is_cjk(cp)) {
            utf8proc_category_t cat = utf8proc_category(cp);
            if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO) {
                run += (size_t)l; /* letters, marks, digits */
                continue;
            }
            if (cat == UTF8PROC_CATEGORY_ZS) {
                if (run)
                    tokens += 1 + (int)((run - 1) / 6), run = 0;
                continue;
            }
        }
        if (run)
            tokens += 1 + (int)((run - 1) / 6), run = 0;
        tokens++; /* CJK character, punctuation, symbol, invalid byte */
    }
    if (run)
        tokens += 1 + (int)((run - 1) / 6);
    return tokens;
}

static bool ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f';
}

/* Does the word s[0..n) end a sentence? (. ! ? … then closing marks) */
static bool ends_sentence(const char *s, size_t n)
{
    while (n) {
        unsigned char c = (unsigned char)s[n - 1];
        if (c == ')' || c == ']' || c == '"' || c == '\'' || c == '*' || c == '_') {
            n--;
            continue;
        }
        if (c >= 0x80) {
            size_t i = n - 1;
            while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
                i--;
            int32_t cp;
            ingest_utf8_next((const unsigned char *)s + i, n - i, &cp);
            if (cp == 0x201D || cp == 0x2019 || cp == 0xBB || cp == 0x300D || cp == 0x300F) {
                n = i;
                continue;
            }
            return cp == 0x2026 || is_cjk_stop(cp);
        }
        return c == '.' || c == '!' || c == '?';
    }
    return false;
}

/* Cut a piece of at most max_bytes (>= one code point) from s[0..n),
** ending early after a CJK full stop; sets *stop when it did. */
static size_t piece_len(const char *s, size_t n, size_t max_bytes, bool *stop)
{
    size_t i = 0;
    *stop = false;
    while (i < n) {
        int32_t cp;
        int l = ingest_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (i && i + (size_t)l > max_bytes)
            break;
        i += (size_t)l;
        if (is_cjk_stop(cp) || cp == 0xFF0C || cp == 0x3001) {
            *stop = is_cjk_stop(cp);
            break;
        }
    }
    return i;
}

static int count_tokens(chunker *c, const char *s, size_t n)
{
    int t = c->count(c->ctx, s, n);
    if (t < 0) {
        c->failed = 1;
        return 0;
    }
    return t;
}

/* The next word (or piece of one); false at the end of the document. */
static bool next_word(chunker *c, cword *w)
{
    const ingest_doc *d = c->d;
    int brk = BRK_WORD;
    if (c->piece_end) {
        /* continuing a long run */
        brk = c->piece_brk;
    } else {
        for (;;) {
            if (c->page >= d->n_pages)
                return false;
            const ingest_page *pg = &d->pages[c->page];
            size_t nl = 0;
            while (c->off < pg->len && ws(pg->text[c->off]))
                nl += pg->text[c->off++] == '\n';
            if (c->off < pg->len) {
                if (nl >= 2)
                    brk = BRK_PARA;
                break;
            }
            c->page++;
            c->off = 0;
        }
        const ingest_page *pg = &d->pages[c->page];
        size_t e = c->off;
        while (e < pg->len && !ws(pg->text[e]))
            e++;
        c->piece_end = e;
        if (brk != BRK_PARA && c->prev_ends_sentence) {
            int32_t cp;
            ingest_utf8_next((const unsigned char *)pg->text + c->off, e - c->off, &cp);
            if (!ingest_is_lower(cp))
                brk = BRK_SENT;
        }
        if (!c->started)
            brk = BRK_PARA;
        c->started = true;
    }
    const ingest_page *pg = &d->pages[c->page];
    const char *s = pg->text + c->off;
    size_t n = c->piece_end - c->off;
    bool stop = false;
    size_t l = n;
    if (n > 48)
        l = piece_len(s, n, 48, &stop);
    else
        for (size_t i = 0; i < n;) { /* CJK full stops end a piece even in short runs */
            int32_t cp;
            i += (size_t)ingest_utf8_next((const unsigned char *)s + i, n - i, &cp);
            if (is_cjk_stop(cp) && i < n) {
                l = i;
                stop = true;
                break;
            }
        }
    int tok = count_tokens(c, s, l);
    while (tok > c->max_tok && l > 1) {
        /* a piece worth more than a passage: halve it at a code point */
        size_t h = l / 2;
        while (h > 0 && ((unsigned char)s[h] & 0xC0) == 0x80)
            h--;
        if (h == 0)
            h = (size_t)CN_MAX(1, cn_utf8_seq_len((unsigned char)s[0]));
        if (h >= l)
            break;
        l = h;
        stop = false;
        tok = count_tokens(c, s, l);
    }
    *w = (cword){.page = c->page, .s = c->off, .e = c->off + l, .brk = brk, .tok = tok};
    c->off += l;
    if (c->off >= c->piece_end) {
        c->piece_end = 0;
        c->prev_ends_sentence = ends_sentence(s, l);
    } else {
        c->piece_brk = stop ? BRK_SENT : BRK_WORD;
        c->prev_ends_sentence = stop;
    }
    return true;
}

/* ---- headings ----------------------------------------------------------- */

/* A paragraph that reads like a heading: one short line, no final
** punctuation, not starting lower-case, with a letter in it. */
static bool heading_like(const char *s, size_t n)
{
    if (n < 2 || n > 120 || memchr(s, '\n', n))
        return false;
    int32_t first;
    ingest_utf8_next((const unsigned char *)s, n, &first);
    if (ingest_is_lower(first))
        return false;
    char last = s[n - 1];
    if (strchr(".,;:!?", last))
        return false;
    int words = 1;
    bool letter = false;
    for (size_t i = 0; i < n; i++) {
        words += s[i] == ' ';
        unsigned char c = (unsigned char)s[i];
        letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0xC0;
    }
    return letter && words <= 14;
}

static int find_headings(cn_arena *a, const ingest_doc *d, heading **out, size_t *n_out)
{
    cn_buf hb;
    cn_buf_init(&hb, (size_t)1 << 30);
    for (int p = 0; p < d->n_pages; p++) {
        const ingest_page *pg = &d->pages[p];
        size_t i = 0;
        while (i < pg->len) {
            const char *q = memmem(pg->text + i, pg->len - i, "\n\n", 2);
            size_t e = q ? (size_t)(q - pg->text) : pg->len;
            size_t s = i;
            while (s < e && ws(pg->text[s]))
                s++;
            size_t t = e;
            while (t > s && ws(pg->text[t - 1]))
                t--;
            if (t > s && heading_like(pg->text + s, t - s)) {
                char *txt = cn_arena_strndup(a, pg->text + s, t - s);
                heading h = {p, s, txt, ""};
                if (!txt || cn_buf_append(&hb, &h, sizeof h) != CN_OK) {
                    cn_buf_free(&hb);
                    return CN_ENOMEM;
                }
            }
            i = q ? e + 2 : pg->len;
        }
    }
    *n_out = hb.len / sizeof(heading);
    *out = NULL;
    if (*n_out) {
        *out = cn_arena_alloc(a, hb.len);
        if (!*out) {
            cn_buf_free(&hb);
            return CN_ENOMEM;
        }
        memcpy(*out, hb.data, hb.len);
    }
    cn_buf_free(&hb);
    return CN_OK;
}

/* The file's own headings, each with its path: the headings above it, one
** per level, joined by " › " (at most CHUNK_PATH_MAX bytes, the deepest
** levels kept whole). */
#define CHUNK_PATH_MAX 400
static int file_headings(cn_arena *a, const ingest_doc *d, heading **out, size_t *n_out)
{
    size_t n = (size_t)d->n_headings;
    heading *hs = cn_arena_alloc(a, n * sizeof *hs);
    if (!hs)
        return CN_ENOMEM;
    const char *stack[INGEST_MAX_LEVEL + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        const ingest_heading *h = &d->headings[i];
        int lv = h->level < 1 ? 1 : h->level > INGEST_MAX_LEVEL ? INGEST_MAX_LEVEL : h->level;
        stack[lv] = h->text;
        for (int k = lv + 1; k <= INGEST_MAX_LEVEL; k++)
            stack[k] = NULL;
        /* from the deepest level up while it fits */
        size_t len = 0;
        int top = lv;
        for (int k = lv; k >= 1; k--) {
            if (!stack[k])
                continue;
            size_t add = strlen(stack[k]) + (len ? 5 : 0); /* " › " is 5 bytes */
            if (len && len + add > CHUNK_PATH_MAX)
                break;
            len += add;
            top = k;
        }
        char *p = cn_arena_alloc(a, len + 1);
        if (!p)
            return CN_ENOMEM;
        size_t o = 0;
        for (int k = top; k <= lv; k++) {
            if (!stack[k])
                continue;
            if (o) {
                memcpy(p + o, " \xe2\x80\xba ", 5);
                o += 5;
            }
            size_t l = strlen(stack[k]);
            memcpy(p + o, stack[k], l);
            o += l;
        }
        p[o] = 0;
        for (char *c = p; *c; c++)
            if (*c == '\t' || *c == '\n')
                *c = ' '; /* the locator's own separators */
        hs[i] = (heading){h->page - 1, h->off, h->text, p};
    }
    *out = hs;
    *n_out = n;
    return CN_OK;
}

void ingest_locator_at(const char *loc, long off, size_t len, char *out, size_t cap)
{
    out[0] = 0;
    if (!loc || !*loc || cap == 0)
        return;
    long quarter = (long)(len / 4);
    bool whole = off < 0;
    for (const char *p = loc; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *tab = memchr(p, '\t', n);
        long at = strtol(p, NULL, 10);
        if (tab) {
            bool take = whole ? at <= quarter
                              : at <= off;
            if (!take)
                break;
            size_t pl = n - (size_t)(tab + 1 - p);
            snprintf(out, cap, "%.*s", (int)pl, tab + 1);
            if (whole && at > 0)
                break; /* the first heading inside the first quarter wins */
        }
        p += n + (nl ? 1 : 0);
    }
}

/* The last heading at or before (page, off), or NULL. */
static const heading *heading_at(const heading *hs, size_t n, int page, size_t off)
{
    size_t lo = 0, hi = n; /* first heading after the point */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (hs[mid].page < page || (hs[mid].page == page && hs[mid].off <= off))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? &hs[lo - 1] : NULL;
}

/* ---- passages ----------------------------------------------------------- */

/* Byte offset in a passage starting at w0 of position (page, off). */
static size_t rel_offset(const ingest_doc *d, const cword *w0, int page, size_t off)
{
    if (page == w0->page)
        return off - w0->s;
    size_t r = d->pages[w0->page].len - w0->s + 1;
    for (int q = w0->page + 1; q < page; q++)
        r += d->pages[q].len + 1;
    return r + off;
}

/* The locator lines of a passage from w0 to w1 (see ingest_passage): the
** path in effect at its start, then each heading that starts inside it. */
static const char *locator_of(cn_arena *a, const ingest_doc *d, const heading *hs, size_t n_hs,
                              const heading *at_start, const cword *w0, const cword *w1)
{
    cn_buf b;
    cn_buf_init(&b, (size_t)1 << 20);
    if (at_start && at_start->path[0])
        cn_buf_printf(&b, "0\t%s", at_start->path);
    size_t i = at_start ? (size_t)(at_start - hs) + 1 : 0;
    for (; i < n_hs; i++) {
        const heading *h = &hs[i];
        if (h->page > w1->page || (h->page == w1->page && h->off >= w1->e))
            break;
        if (h->page < w0->page || (h->page == w0->page && h->off < w0->s))
            continue;
        cn_buf_printf(&b, "%s%zu\t%s", b.len ? "\n" : "", rel_offset(d, w0, h->page, h->off),
                      h->path);
    }
    const char *s = cn_arena_strndup(a, b.data ? b.data : "", b.len);
    cn_buf_free(&b);
    return s;
}

static int emit(cn_arena *a, const ingest_doc *d, const cword *w0, const cword *w1,
                const heading *h, const char *loc, cn_buf *out)
{
    ingest_passage p = {.page_start = w0->page + 1,
                        .page_end = w1->page + 1,
                        .off_start = w0->s,
                        .off_end = w1->e,
                        .heading = h ? h->text : "",
                        .locator = loc};
    if (!loc)
        return CN_ENOMEM;
    size_t len = 0;
    if (w0->page == w1->page) {
        len = w1->e - w0->s;
    } else {
        len = d->pages[w0->page].len - w0->s + w1->e;
        for (int q = w0->page + 1; q < w1->page; q++)
            len += d->pages[q].len + 1;
        len += 1;
    }
    char *t = cn_arena_alloc(a, len + 1);
    if (!t)
        return CN_ENOMEM;
    if (w0->page == w1->page) {
        memcpy(t, d->pages[w0->page].text + w0->s, len);
    } else {
        size_t o = 0, l0 = d->pages[w0->page].len - w0->s;
        memcpy(t, d->pages[w0->page].text + w0->s, l0);
        o = l0;
        for (int q = w0->page + 1; q < w1->page; q++) {
            t[o++] = '\n';
            memcpy(t + o, d->pages[q].text, d->pages[q].len);
            o += d->pages[q].len;
        }
        t[o++] = '\n';
        memcpy(t + o, d->pages[w1->page].text, w1->e);
    }
    t[len] = 0;
    p.text = t;
    p.len = len;
    return cn_buf_append(out, &p, sizeof p);
}

int chunk_split(cn_arena *a, const ingest_doc *d, const chunk_opts *o, ingest_passage **out,
                cn_err *err)
{
    chunk_opts opt = o ? *o : (chunk_opts){0};
    if (opt.max_tokens == 0)
        opt.max_tokens = CHUNK_DEFAULT_TOKENS;
    if (opt.overlap_pct == 0)
        opt.overlap_pct = CHUNK_DEFAULT_OVERLAP;
    if (opt.overlap_pct == CHUNK_NO_OVERLAP)
        opt.overlap_pct = 0;
    if (opt.max_tokens < 1 || opt.max_tokens > CHUNK_MAX_TOKENS)
        return cn_fail(err, CN_EINVAL, "chunk: max_tokens %d outside 1..%d", opt.max_tokens,
                       CHUNK_MAX_TOKENS);
    if (opt.overlap_pct < 0 || opt.overlap_pct > 50)
        return cn_fail(err, CN_EINVAL, "chunk: overlap_pct %d outside 0..50", opt.overlap_pct);
    *out = NULL;

    chunker c = {.d = d,
                 .max_tok = opt.max_tokens,
                 .count = opt.count_tokens ? opt.count_tokens : chunk_estimate_tokens,
                 .ctx = opt.ctx};
    heading *hs = NULL;
    size_t n_hs = 0;
    bool own = d->n_headings > 0 && d->headings;
    if ((own ? file_headings(a, d, &hs, &n_hs) : find_headings(a, d, &hs, &n_hs)) != CN_OK)
        return cn_fail(err, CN_ENOMEM, "chunk: out of memory");

    cn_buf res;
    cn_buf_init(&res, (size_t)1 << 31);
    size_t cap = 1024, n = 0;
    cword *W = malloc(cap * sizeof *W);
    if (!W)
        return cn_fail(err, CN_ENOMEM, "chunk: out of memory");
    cword pending = {0};
    bool have_pending = false, eof = false;
    long sum = 0;
    int rc = CN_OK;
    const int max = opt.max_tokens, T = opt.max_tokens * opt.overlap_pct / 100;

    for (;;) {
        /* fill the window */
        while (!eof) {
            cword w;
            if (have_pending) {
                w = pending;
            } else if (!next_word(&c, &w)) {
                eof = true;
                break;
            }
            if (n > 0 && sum + w.tok > max) {
                pending = w;
                have_pending = true;
                break;
            }
            have_pending = false;
            if (n == cap) {
                cword *nw = cn_realloc_array(W, cap * 2, sizeof *W);
                if (!nw) {
                    rc = CN_ENOMEM;
                    goto done;
                }
                W = nw;
                cap *= 2;
            }
            W[n++] = w;
            sum += w.tok;
        }
        if (c.failed) {
            rc = CN_EINVAL;
            goto done;
        }
        if (n == 0)
            break;
        /* where to end this passage */
        size_t cut = n;
        bool last = eof && !have_pending;
        if (!last) {
            long pre = 0;
            size_t best_para = 0, best_sent = 0;
            for (size_t k = 1; k <= n; k++) {
                pre += W[k - 1].tok;
                int b = k < n ? W[k].brk : pending.brk;
                if (2 * pre < max)
                    continue;
                if (b == BRK_PARA)
                    best_para = k;
                if (b >= BRK_SENT)
                    best_sent = k;
            }
            cut = best_para ? best_para : best_sent ? best_sent : n;
        }
        /* heading: the last one at or before the passage start */
        const heading *h = heading_at(hs, n_hs, W[0].page, W[0].s);
        const char *loc =
            own ? locator_of(a, d, hs, n_hs, h, &W[0], &W[cut - 1]) : "";
        if (emit(a, d, &W[0], &W[cut - 1], h, loc, &res) != CN_OK) {
            rc = CN_ENOMEM;
            goto done;
        }
        if (last && cut == n)
            break;
        /* overlap: step back up to T tokens, to a sentence start if one is
        ** at least half as far back */
        size_t k = cut;
        long ov = 0;
        while (k > 1 && ov + W[k - 1].tok <= T)
            ov += W[--k].tok;
        long ov2 = ov;
        for (size_t j = k; j < cut; j++) {
            if (W[j].brk >= BRK_SENT && 2 * ov2 >= T) {
                k = j;
                break;
            }
            ov2 -= W[j].tok;
        }
        /* make sure the next passage reaches past this one */
        long rest = 0;
        for (size_t j = k; j < n; j++)
            rest += W[j].tok;
        while (cut == n && have_pending && k < cut && rest + pending.tok > max)
            rest -= W[k++].tok;
        memmove(W, W + k, (n - k) * sizeof *W);
        n -= k;
        sum = rest;
    }
done:
    free(W);
    if (rc == CN_EINVAL) {
        cn_buf_free(&res);
        return cn_fail(err, CN_EINVAL, "chunk: count_tokens failed");
    }
    if (rc != CN_OK) {
        cn_buf_free(&res);
        return cn_fail(err, CN_ENOMEM, "chunk: out of memory");
    }
    size_t np = res.len / sizeof(ingest_passage);
    if (np > (size_t)INT32_MAX) {
        cn_buf_free(&res);
        return cn_fail(err, CN_ELIMIT, "chunk: too many passages");
    }
    if (np) {
        *out = cn_arena_alloc(a, res.len);
        if (!*out) {
            cn_buf_free(&res);
            return cn_fail(err, CN_ENOMEM, "chunk: out of memory");
        }
        memcpy(*out, res.data, res.len);
    }
    cn_buf_free(&res);
    return (int)np;
}
