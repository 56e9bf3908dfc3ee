/*
** text.c: plain text and Markdown. Both are decoded by ingest_decode_text()
** (UTF-16 converted, invalid UTF-8 repaired and counted) and cut into pages
** by ingest_set_pages(). Markdown is parsed by libcmark and written back
** as prose: heading marks, emphasis, link targets, code fences, table rules
** and front matter go; the text of every element stays. The title is the
** front matter's title:, else the first heading.
*/
#include "ingest/ingest_int.h"

#include <cmark.h>
#include <string.h>

int ingest_text(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err)
{
    cn_buf t;
    cn_buf_init(&t, len * 3 + 16);
    int rc = ingest_decode_text(d, name, data, len, &t, err);
    if (rc == CN_OK)
        rc = ingest_set_pages(d, name, t.data ? t.data : "", t.len, o->text_page_words, err);
    cn_buf_free(&t);
    return rc;
}

/* ---- Markdown ---------------------------------------------------------
** libcmark (CommonMark's reference parser) builds the document tree, so
** nested lists, fences, setext headings, HTML blocks and escapes follow the
** spec; this file only walks the tree and writes the text: a heading as its
** own paragraph (the chunker takes short lines between blank lines as
** headings), paragraphs and code blocks separated by blank lines, link and
** image targets dropped (their text kept), HTML tags dropped. CommonMark has
** no tables or front matter: a YAML header is read here first (its title:
** is the document's title), and a paragraph's table rows lose their outer
** pipes and their |---| rules. */

/* End out with a newline (nl = 1) or a blank line (nl = 2), unless empty. */
static int md_sep(cn_buf *out, int nl)
{
    int have = 0;
    while (have < (int)out->len && have < nl && out->data[out->len - 1 - have] == '\n')
        have++;
    if (out->len == 0)
        return CN_OK;
    return nl > have ? cn_buf_append(out, "\n\n", (size_t)(nl - have)) : CN_OK;
}

/* A pipe-table delimiter row: only | - : and blanks, with a '-' and a '|'. */
static bool md_table_rule(const char *s, size_t n)
{
    bool dash = false, pipe = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-')
            dash = true;
        else if (s[i] == '|')
            pipe = true;
        else if (s[i] != ':' && s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return dash && pipe;
}

/* Rewrite the lines of out[start..] that are pipe-table rows: rules go,
** rows lose their outer pipes. */
static void md_table_rows(cn_buf *out, size_t start)
{
    char *s = out->data;
    size_t r = start, w = start;
    while (s && r < out->len) {
        char *nl = memchr(s + r, '\n', out->len - r);
        size_t e = nl ? (size_t)(nl - s) : out->len, a = r, b = e;
        size_t next = nl ? e + 1 : e;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (b > a && s[a] == '|' && md_table_rule(s + a, b - a)) {
            r = next; /* a rule: dropped with its newline */
            continue;
        }
        if (b > a && s[a] == '|') {
            a++;
            if (b > a && s[b - 1] == '|')
                b--;
            while (a < b && (s[a] == ' ' || s[a] == '\t'))
                a++;
            while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
                b--;
        } else {
            a = r;
            b = e;
        }
        memmove(s + w, s + a, b - a);
        w += b - a;
        if (nl)
            s[w++] = '\n';
        r = next;
    }
    out->len = w;
    if (s)
        s[w] = 0;
}

/* Text of an HTML block with its tags taken out. */
static int md_strip_tags(cn_buf *out, const char *s, size_t n)
{
    int rc = CN_OK;
    for (size_t i = 0; i < n && rc == CN_OK;) {
        if (s[i] == '<') {
            const char *gt = memchr(s + i, '>', n - i);
            if (gt) {
                i = (size_t)(gt - s) + 1;
                rc = cn_buf_append(out, " ", 1);
                continue;
            }
        }
        const char *lt = memchr(s + i + 1, '<', n - i - 1);
        size_t e = lt ? (size_t)(lt - s) : n;
        rc = cn_buf_append(out, s + i, e - i);
        i = e;
    }
    return rc;
}

/* Append a literal string of the tree (NULL for none). */
static int md_put(cn_buf *out, const char *lit)
{
    return lit ? cn_buf_append(out, lit, strlen(lit)) : CN_OK;
}

typedef struct md_head {
    int level;
    char *text; /* in d->arena */
} md_head;

/* Walk the tree of body and write its text into out; the first heading
** becomes the title unless one is set; every heading goes into heads. */
static int md_render(ingest_doc *d, const char *body, size_t n, bool have_title, cn_buf *out,
                     cn_buf *heads)
{
    cmark_node *doc = cmark_parse_document(body, n, CMARK_OPT_DEFAULT);
    if (!doc)
        return CN_ENOMEM;
    cmark_iter *it = cmark_iter_new(doc);
    int rc = it ? CN_OK : CN_ENOMEM;
    size_t start = 0; /* where the current heading or paragraph began */
    cmark_event_type ev;
    while (rc == CN_OK && it && (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
        cmark_node *node = cmark_iter_get_node(it);
        bool enter = ev == CMARK_EVENT_ENTER;
        switch (cmark_node_get_type(node)) {
        case CMARK_NODE_HEADING:
            if (enter) {
                rc = md_sep(out, 2);
                start = out->len;
            } else {
                if (!have_title && out->len > start) {
                    rc = ingest_set_title(d, out->data + start, out->len - start);
                    have_title = rc == CN_OK && d->title[0];
                }
                size_t hl = out->len - start;
                if (rc == CN_OK && hl && hl <= 200 && !memchr(out->data + start, '\n', hl)) {
                    md_head h = {cmark_node_get_heading_level(node),
                                 cn_arena_strndup(&d->arena, out->data + start, hl)};
                    if (!h.text || cn_buf_append(heads, &h, sizeof h) != CN_OK)
                        rc = CN_ENOMEM;
                }
                if (rc == CN_OK)
                    rc = md_sep(out, 2);
            }
            break;
        case CMARK_NODE_PARAGRAPH:
            if (enter) {
                start = out->len;
            } else {
                md_table_rows(out, start);
                cmark_node *item = cmark_node_parent(node);
                cmark_node *list = item ? cmark_node_parent(item) : NULL;
                bool tight = cmark_node_get_type(item) == CMARK_NODE_ITEM && list &&
                             cmark_node_get_list_tight(list);
                rc = md_sep(out, tight ? 1 : 2);
            }
            break;
        case CMARK_NODE_ITEM:
            if (enter)
                rc = md_sep(out, 1);
            break;
        case CMARK_NODE_CODE_BLOCK:
            rc = md_sep(out, 2);
            if (rc == CN_OK)
                rc = md_put(out, cmark_node_get_literal(node));
            if (rc == CN_OK)
                rc = md_sep(out, 2);
            break;
        case CMARK_NODE_HTML_BLOCK: {
            const char *lit = cmark_node_get_literal(node);
            rc = md_sep(out, 2);
            if (rc == CN_OK && lit)
                rc = md_strip_tags(out, lit, strlen(lit));
            if (rc == CN_OK)
                rc = md_sep(out, 2);
            break;
        }
        case CMARK_NODE_THEMATIC_BREAK:
            rc = md_sep(out, 2);
            break;
        case CMARK_NODE_TEXT:
        case CMARK_NODE_CODE:
            rc = md_put(out, cmark_node_get_literal(node));
            break;
        case CMARK_NODE_SOFTBREAK:
        case CMARK_NODE_LINEBREAK:
            rc = cn_buf_append(out, "\n", 1);
            break;
        case CMARK_NODE_HTML_INLINE:
            rc = cn_buf_append(out, " ", 1); /* a tag: its words are text nodes */
            break;
        default: /* emphasis, links, images, quotes, lists: their children speak */
            break;
        }
    }
    cmark_iter_free(it);
    cmark_node_free(doc);
    return rc;
}

/* Find each heading, in order, at the start of a paragraph of the pages
** (the text ingest_set_pages made of md_render's), and record it there. */
static int md_place_headings(ingest_doc *d, const md_head *h, size_t n)
{
    if (!n)
        return CN_OK;
    d->headings = cn_arena_alloc(&d->arena, n * sizeof *d->headings);
    if (!d->headings)
        return CN_ENOMEM;
    int p = 0;
    size_t off = 0, k = 0;
    for (size_t i = 0; i < n && p < d->n_pages; i++) {
        size_t hl = strlen(h[i].text);
        int p0 = p;
        size_t off0 = off;
        bool found = false;
        for (; p < d->n_pages; p++, off = 0) {
            const ingest_page *pg = &d->pages[p];
            const char *at = NULL;
            for (size_t from = off; from < pg->len;) {
                const char *f = memmem(pg->text + from, pg->len - from, h[i].text, hl);
                if (!f)
                    break;
                size_t o = (size_t)(f - pg->text);
                if ((o == 0 || (o >= 2 && f[-1] == '\n' && f[-2] == '\n')) &&
                    (o + hl == pg->len || f[hl] == '\n')) {
                    at = f;
                    break;
                }
                from = o + 1;
            }
            if (at) {
                off = (size_t)(at - pg->text);
                d->headings[k++] = (ingest_heading){p + 1, off, h[i].level, h[i].text};
                off += hl;
                found = true;
                break;
            }
        }
        if (!found) { /* not in the text as a paragraph of its own: skip it */
            p = p0;
            off = off0;
        }
    }
    d->n_headings = (int)k;
    return CN_OK;
}

/* The value of "title:" in YAML front matter, unquoted. */
static bool front_title(const char *s, size_t n, size_t *ts, size_t *tn)
{
    if (n < 6 || strncmp(s, "title:", 6) != 0)
        return false;
    size_t i = 6, e = n;
    while (i < e && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    if (e - i >= 2 && (s[i] == '"' || s[i] == '\'') && s[e - 1] == s[i])
        i++, e--;
    *ts = i;
    *tn = e - i;
    return e > i;
}

int ingest_markdown(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                    const ingest_opts *o, cn_err *err)
{
    cn_buf t, out;
    cn_buf_init(&t, len * 3 + 16);
    cn_buf_init(&out, len * 3 + 16);
    int rc = ingest_decode_text(d, name, data, len, &t, err);
    if (rc != CN_OK)
        goto done;
    const char *s = t.data ? t.data : "";
    size_t n = t.len, i = 0;
    bool have_title = false;

    /* YAML front matter: "---" on the first line, closed by "---" or "..." */
    if (n >= 4 && strncmp(s, "---\n", 4) == 0) {
        size_t j = 4;
        while (j < n) {
            const char *nl = memchr(s + j, '\n', n - j);
            size_t e = nl ? (size_t)(nl - s) : n;
            size_t ts, tn;
            if ((e - j == 3 && (strncmp(s + j, "---", 3) == 0 || strncmp(s + j, "...", 3) == 0))) {
                i = nl ? e + 1 : e;
                break;
            }
            if (!have_title && front_title(s + j, e - j, &ts, &tn)) {
                if (ingest_set_title(d, s + j + ts, tn) != CN_OK)
                    goto nomem;
                have_title = true;
            }
            j = nl ? e + 1 : n;
        }
        if (i == 0) /* never closed: not front matter */
            have_title = false, d->title = NULL;
    }

    cn_buf heads;
    cn_buf_init(&heads, (size_t)64 << 20);
    int r = md_render(d, s + i, n - i, have_title, &out, &heads);
    if (r == CN_OK)
        rc = ingest_set_pages(d, name, out.data ? out.data : "", out.len, o->text_page_words,
                              err);
    if (r == CN_OK && rc == CN_OK)
        r = md_place_headings(d, (const md_head *)heads.data, heads.len / sizeof(md_head));
    cn_buf_free(&heads);
    if (r != CN_OK)
        goto nomem;
    goto done;
nomem:
    rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
done:
    cn_buf_free(&t);
    cn_buf_free(&out);
    return rc;
}
