/*
** build.c: paragraphs and headings to pages (see ingest_int.h).
**
** The readers of structured formats (Word, OpenDocument, RTF, man pages)
** know where paragraphs and headings are; this file turns that stream into
** the module's pages: clean UTF-8, paragraphs separated by "\n\n", and each
** heading recorded at the byte where its paragraph starts, so chunk.c can
** give every passage the heading path it falls under.
*/
#include "ingest/ingest_int.h"

#include <stdio.h>
#include <string.h>

void ib_init(ingest_builder *b, ingest_doc *d, const char *name, int page_words, int max_pages)
{
    memset(b, 0, sizeof *b);
    b->d = d;
    b->name = name;
    b->page_words = page_words;
    b->max_pages = max_pages > 0 ? max_pages : INGEST_MAX_PAGES;
    size_t cap = (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20;
    cn_buf_init(&b->page, cap);
    cn_buf_init(&b->pages, cap);
    cn_buf_init(&b->heads, cap);
    cn_buf_init(&b->tmp, cap);
}

void ib_free(ingest_builder *b)
{
    cn_buf_free(&b->page);
    cn_buf_free(&b->pages);
    cn_buf_free(&b->heads);
    cn_buf_free(&b->tmp);
}

static void fail(ingest_builder *b, int rc, const char *why)
{
    if (b->rc == CN_OK) {
        b->rc = rc;
        snprintf(b->why, sizeof b->why, "%s", why);
    }
}

/* Clean s[0..n) into b->tmp (see ingest_int.h); counts its words. */
static size_t clean(ingest_builder *b, const char *s, size_t n)
{
    cn_buf *t = &b->tmp;
    t->len = 0;
    size_t words = 0;
    bool space = false, line_start = true, in_word = false;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && b->rc == CN_OK;) {
        int32_t cp;
        int l = ingest_utf8_next(u + i, n - i, &cp);
        i += (size_t)l;
        if (cp == '\n' || cp == 0x2028 || cp == 0x2029 || cp == '\f' || cp == '\v') {
            while (b->keep_spaces && t->len && (t->data[t->len - 1] == ' ' ||
                                                t->data[t->len - 1] == '\t'))
                t->len--; /* no trailing spaces */
            if (!line_start) {
                if (cn_buf_append(t, "\n", 1) != CN_OK)
                    fail(b, CN_ENOMEM, "text too large");
                line_start = true;
            }
            space = false;
            in_word = false;
            continue;
        }
        if (b->keep_spaces && (cp == ' ' || cp == '\t')) {
            if (cn_buf_append(t, &(char){(char)cp}, 1) != CN_OK)
                fail(b, CN_ENOMEM, "text too large");
            in_word = false;
            continue;
        }
        if (cp == ' ' || cp == '\t' || cp == '\r' || cp == 0xA0 || cp == 0x3000) {
            space = !line_start;
            in_word = false;
            continue;
        }
        if (cp >= 0 && (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFEFF ||
                        cp == 0xAD || cp == 0x200B))
            continue; /* controls, stray BOMs, soft hyphens, zero-width spaces */
        if (space && cn_buf_append(t, " ", 1) != CN_OK)
            fail(b, CN_ENOMEM, "text too large");
        space = false;
        line_start = false;
        if (!in_word)
            words++;
        in_word = true;
        if (ingest_put_cp(t, cp < 0 ? 0xFFFD : cp) != CN_OK)
            fail(b, CN_ENOMEM, "text too large");
    }
    while (t->len && (t->data[t->len - 1] == '\n' || t->data[t->len - 1] == ' ' ||
                      t->data[t->len - 1] == '\t'))
        t->len--;
    size_t lead = 0; /* and none leading the paragraph */
    while (lead < t->len && (t->data[lead] == ' ' || t->data[lead] == '\t'))
        lead++;
    if (lead) {
        memmove(t->data, t->data + lead, t->len - lead);
        t->len -= lead;
    }
    return words;
}

/* Close the current page (even if empty when keep_empty or forced). */
static void close_page(ingest_builder *b, bool force)
{
    if (b->rc != CN_OK || (b->page.len == 0 && !force && !b->keep_empty))
        return;
    if ((int)(b->pages.len / sizeof(ingest_page)) >= b->max_pages) {
        fail(b, CN_ELIMIT, "");
        return;
    }
    char *t = cn_arena_strndup(&b->d->arena, b->page.data ? b->page.data : "", b->page.len);
    ingest_page pg = {.number = (int)(b->pages.len / sizeof pg) + 1, .text = t, .len = b->page.len};
    if (!t || cn_buf_append(&b->pages, &pg, sizeof pg) != CN_OK)
        fail(b, CN_ENOMEM, "text too large");
    b->page.len = 0;
    b->words = 0;
}

/* Append the cleaned paragraph in b->tmp to the page; returns its offset. */
static size_t put(ingest_builder *b, size_t words)
{
    if (b->page_words > 0 && b->words >= (size_t)b->page_words)
        close_page(b, false);
    size_t off = b->page.len ? b->page.len + 2 : 0;
    if ((b->page.len && cn_buf_append(&b->page, "\n\n", 2) != CN_OK) ||
        cn_buf_append(&b->page, b->tmp.data, b->tmp.len) != CN_OK)
        fail(b, CN_ENOMEM, "text too large");
    b->words += words;
    return off;
}

void ib_para(ingest_builder *b, const char *s, size_t n)
{
    if (b->rc != CN_OK)
        return;
    size_t w = clean(b, s, n);
    if (b->tmp.len)
        put(b, w);
}

void ib_heading(ingest_builder *b, int level, const char *s, size_t n)
{
    if (b->rc != CN_OK)
        return;
    size_t w = clean(b, s, n);
    if (!b->tmp.len)
        return;
    /* a heading is one line */
    for (size_t i = 0; i < b->tmp.len; i++)
        if (b->tmp.data[i] == '\n')
            b->tmp.data[i] = ' ';
    size_t off = put(b, w);
    if (b->rc != CN_OK)
        return;
    size_t hn = CN_MIN(b->tmp.len, (size_t)200);
    hn = cn_utf8_valid_prefix(b->tmp.data, hn);
    ingest_heading h = {.page = (int)(b->pages.len / sizeof(ingest_page)) + 1,
                        .off = off,
                        .level = level < 1 ? 1 : level > INGEST_MAX_LEVEL ? INGEST_MAX_LEVEL : level,
                        .text = cn_arena_strndup(&b->d->arena, b->tmp.data, hn)};
    if (!h.text || cn_buf_append(&b->heads, &h, sizeof h) != CN_OK)
        fail(b, CN_ENOMEM, "text too large");
}

void ib_flush(ingest_builder *b, int level, cn_buf *para, cn_buf *notes)
{
    if (level > 0)
        ib_heading(b, level, para->data, para->len);
    else
        ib_para(b, para->data, para->len);
    para->len = 0;
    if (notes && notes->len) {
        ib_para(b, notes->data, notes->len);
        notes->len = 0;
    }
}

void ib_cell(cn_buf *row, cn_buf *cell)
{
    for (size_t i = 0; i < cell->len; i++)
        if (cell->data[i] == '\n')
            cell->data[i] = ' ';
    if (row->len)
        cn_buf_append(row, " | ", 3);
    if (cell->len)
        cn_buf_append(row, cell->data, cell->len);
}

void ib_row(ingest_builder *b, const char *s, size_t n)
{
    for (;;) {
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n && s[n - 1] == '|')
            n--;
        else
            break;
    }
    ib_para(b, s, n);
}

void ib_page(ingest_builder *b)
{
    close_page(b, b->keep_empty);
}

int ib_finish(ingest_builder *b, cn_err *err)
{
    ingest_doc *d = b->d;
    if (b->page.len || b->keep_empty || b->pages.len == 0)
        close_page(b, true);
    int rc = b->rc;
    if (rc == CN_ELIMIT)
        rc = cn_fail(err, CN_ELIMIT, "%s: more than %d pages (the limit)", b->name, b->max_pages);
    else if (rc != CN_OK)
        rc = cn_fail(err, rc, "%s: %s (more than %d MB)", b->name, b->why,
                     INGEST_MAX_TEXT_TOTAL_MB);
    if (rc == CN_OK) {
        size_t np = b->pages.len / sizeof(ingest_page), nh = b->heads.len / sizeof(ingest_heading);
        d->pages = cn_arena_alloc(&d->arena, np * sizeof *d->pages);
        d->headings = nh ? cn_arena_alloc(&d->arena, nh * sizeof *d->headings) : NULL;
        if (!d->pages || (nh && !d->headings)) {
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", b->name);
        } else {
            memcpy(d->pages, b->pages.data, np * sizeof *d->pages);
            if (nh)
                memcpy(d->headings, b->heads.data, nh * sizeof *d->headings);
            d->n_pages = (int)np;
            d->n_headings = (int)nh;
        }
    }
    ib_free(b);
    return rc;
}
