/*
** html.c: HTML to text with gumbo, the HTML5 parser MuPDF already links
** (libgumbo), for .html files and for the chapters of an EPUB (epub.c).
** The tree is walked without recursion; text nodes are kept
** (gumbo has decoded the entities), whitespace is collapsed as a browser
** would, except inside <pre>; block elements become paragraph breaks, <br>
** and list items line breaks; scripts, styles, templates, <svg>, <canvas>,
** <iframe> and everything in <head> but <title> are dropped. <h1>..<h6>
** are headings of levels 1..6 (ingest_builder), so passages get heading
** paths. The title is <title>, else the first <h1>.
**
** gumbo frees its tree recursively (destroy_node), so a document nested
** hundreds of thousands of elements deep would overflow the stack; such
** input is refused before parsing (nesting_estimate).
*/
#include "ingest/ingest_int.h"

#include <gumbo.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTML_MAX_DEPTH 10000

/* Elements whose end tag may be left out: they do not nest when unclosed. */
static bool auto_closed(const char *t, size_t n)
{
    static const char *const names[] = {
        "p",     "li",     "dt",    "dd",       "tr",     "td",   "th",    "option",  "optgroup",
        "thead", "tbody",  "tfoot", "colgroup", "rb",     "rt",   "rp",    "caption", "area",
        "base",  "br",     "col",   "embed",    "hr",     "img",  "input", "link",    "meta",
        "param", "source", "track", "wbr",      "keygen", "html", "head",  "body"};
    for (size_t i = 0; i < CN_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == n && strncasecmp(t, names[i], n) == 0)
            return true;
    return false;
}

/* An upper bound, roughly, on how deep the element tree will be: open tags
** minus close tags, leaving out elements that close themselves. */
static size_t nesting_estimate(const char *s, size_t n)
{
    size_t depth = 0, max = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '<')
            continue;
        bool close = s[i + 1] == '/';
        size_t j = i + 1 + close, k = j;
        while (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
                         (s[k] >= '0' && s[k] <= '9')))
            k++;
        if (k == j || (s[j] >= '0' && s[j] <= '9') || auto_closed(s + j, k - j))
            continue;
        if (close) {
            if (depth)
                depth--;
            continue;
        }
        const char *gt = memchr(s + k, '>', n - k);
        if (gt && gt > s + k && gt[-1] == '/')
            continue; /* <x/> */
        if (++depth > max)
            max = depth;
    }
    return max;
}

static bool skipped(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_TEMPLATE:
    case GUMBO_TAG_SVG:
    case GUMBO_TAG_CANVAS:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_HEAD:
    case GUMBO_TAG_SELECT:
        return true;
    default:
        return false;
    }
}

/* 2: paragraph break around it; 1: line break; 0: inline. */
static int breaks(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_P:
    case GUMBO_TAG_DIV:
    case GUMBO_TAG_H1:
    case GUMBO_TAG_H2:
    case GUMBO_TAG_H3:
    case GUMBO_TAG_H4:
    case GUMBO_TAG_H5:
    case GUMBO_TAG_H6:
    case GUMBO_TAG_SECTION:
    case GUMBO_TAG_ARTICLE:
    case GUMBO_TAG_ASIDE:
    case GUMBO_TAG_HEADER:
    case GUMBO_TAG_FOOTER:
    case GUMBO_TAG_NAV:
    case GUMBO_TAG_MAIN:
    case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_PRE:
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_UL:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_DL:
    case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_FIGCAPTION:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_FIELDSET:
    case GUMBO_TAG_DETAILS:
    case GUMBO_TAG_SUMMARY:
    case GUMBO_TAG_CAPTION:
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_CENTER:
        return 2;
    case GUMBO_TAG_BR:
    case GUMBO_TAG_LI:
    case GUMBO_TAG_TR:
    case GUMBO_TAG_DT:
    case GUMBO_TAG_DD:
        return 1;
    default:
        return 0;
    }
}

typedef struct html_out {
    cn_buf *b;
    int pending; /* break owed before the next text: 0, 1 (" " or "\n"), 2 ("\n\n") */
    bool space;  /* a space is owed before the next text */
    int pre;     /* inside <pre> */
} html_out;

static int owe(html_out *o, int brk)
{
    if (brk > o->pending)
        o->pending = brk;
    return CN_OK;
}

/* Pay the break or space owed before new text. */
static int flush_owed(html_out *o)
{
    int rc = CN_OK;
    if (o->b->len) {
        if (o->pending == 2)
            rc = cn_buf_append(o->b, "\n\n", 2);
        else if (o->pending == 1)
            rc = cn_buf_append(o->b, "\n", 1);
        else if (o->space)
            rc = cn_buf_append(o->b, " ", 1);
    }
    o->pending = 0;
    o->space = false;
    return rc;
}

static int put_text(html_out *o, const char *s, size_t n)
{
    int rc = CN_OK;
    if (o->pre) { /* preformatted: as it is */
        if (n && (rc = flush_owed(o)) == CN_OK)
            rc = cn_buf_append(o->b, s, n);
        return rc;
    }
    for (size_t i = 0; i < n && rc == CN_OK;) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            o->space = true;
            i++;
            continue;
        }
        rc = flush_owed(o);
        size_t k = i;
        while (k < n && s[k] != ' ' && s[k] != '\t' && s[k] != '\n' && s[k] != '\r' && s[k] != '\f')
            k++;
        if (rc == CN_OK)
            rc = cn_buf_append(o->b, s + i, k - i);
        i = k;
    }
    return rc;
}

/* Text of an element's subtree (for <title>, <h1>), into b. */
static int subtree_text(cn_buf *b, const GumboNode *n)
{
    html_out o = {.b = b};
    const GumboNode *stack[256];
    unsigned idx[256];
    int sp = 0;
    stack[0] = n;
    idx[0] = 0;
    int rc = CN_OK;
    while (sp >= 0 && rc == CN_OK) {
        const GumboNode *x = stack[sp];
        if (x->type == GUMBO_NODE_TEXT || x->type == GUMBO_NODE_WHITESPACE ||
            x->type == GUMBO_NODE_CDATA) {
            rc = put_text(&o, x->v.text.text, strlen(x->v.text.text));
            sp--;
            continue;
        }
        if (x->type != GUMBO_NODE_ELEMENT || idx[sp] >= x->v.element.children.length || sp == 255) {
            sp--;
            continue;
        }
        const GumboNode *c = x->v.element.children.data[idx[sp]++];
        stack[++sp] = c;
        idx[sp] = 0;
    }
    return rc;
}

static int heading_level(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_H1: return 1;
    case GUMBO_TAG_H2: return 2;
    case GUMBO_TAG_H3: return 3;
    case GUMBO_TAG_H4: return 4;
    case GUMBO_TAG_H5: return 5;
    case GUMBO_TAG_H6: return 6;
    default: return 0;
    }
}

/* Hand the paragraph gathered in o->b to the builder (a heading when level). */
static void emit(html_out *o, ingest_builder *b, int level)
{
    if (level)
        ib_heading(b, level, o->b->data, o->b->len);
    else
        ib_para(b, o->b->data, o->b->len);
    o->b->len = 0;
    o->pending = 0;
    o->space = false;
}

int ingest_html_build(ingest_builder *b, const char *name, const char *text, size_t len,
                      cn_buf *title, cn_err *err)
{
    if (nesting_estimate(text, len) > HTML_MAX_DEPTH)
        return cn_fail(err, CN_EFORMAT, "%s: HTML nested more than %d elements deep", name,
                       HTML_MAX_DEPTH);
    GumboOutput *g = gumbo_parse_with_options(&kGumboDefaultOptions, text, len);
    if (!g)
        return cn_fail(err, CN_EFORMAT, "%s: the HTML parser failed", name);
    cn_buf out;
    cn_buf_init(&out, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    html_out ho = {.b = &out};
    GumboNode **stack = NULL;
    unsigned *idx = NULL;
    size_t cap = 0;
    long sp = 0;
    const GumboNode *h1 = NULL, *titlenode = NULL;
    int r = CN_OK, in_heading = 0;

    cap = 64;
    stack = cn_malloc(cap * sizeof *stack);
    idx = cn_malloc(cap * sizeof *idx);
    if (!stack || !idx)
        r = CN_ENOMEM;
    else {
        stack[0] = g->root;
        idx[0] = 0;
    }
    while (r == CN_OK && sp >= 0) {
        GumboNode *x = stack[sp];
        if (x->type == GUMBO_NODE_TEXT || x->type == GUMBO_NODE_WHITESPACE ||
            x->type == GUMBO_NODE_CDATA) {
            /* a paragraph break owed: the paragraph so far is done */
            if (ho.pending == 2 && out.len && !in_heading &&
                (x->type != GUMBO_NODE_WHITESPACE || ho.pre))
                emit(&ho, b, 0);
            r = put_text(&ho, x->v.text.text, strlen(x->v.text.text));
            sp--;
            continue;
        }
        if (x->type != GUMBO_NODE_ELEMENT && x->type != GUMBO_NODE_DOCUMENT &&
            x->type != GUMBO_NODE_TEMPLATE) {
            sp--;
            continue;
        }
        const GumboVector *kids =
            x->type == GUMBO_NODE_DOCUMENT ? &x->v.document.children : &x->v.element.children;
        GumboTag tag = x->type == GUMBO_NODE_DOCUMENT ? GUMBO_TAG_UNKNOWN : x->v.element.tag;
        if (idx[sp] == 0) { /* entering */
            if (tag == GUMBO_TAG_HEAD || tag == GUMBO_TAG_TITLE) {
                /* find <title> inside head without emitting anything */
                if (tag == GUMBO_TAG_TITLE && !titlenode)
                    titlenode = x;
                for (unsigned i = 0; tag == GUMBO_TAG_HEAD && i < kids->length; i++) {
                    const GumboNode *c = kids->data[i];
                    if (c->type == GUMBO_NODE_ELEMENT && c->v.element.tag == GUMBO_TAG_TITLE &&
                        !titlenode)
                        titlenode = c;
                }
                sp--;
                continue;
            }
            if (skipped(tag)) {
                sp--;
                continue;
            }
            if (tag == GUMBO_TAG_H1 && !h1)
                h1 = x;
            if (heading_level(tag) && !in_heading) {
                if (out.len)
                    emit(&ho, b, 0);
                in_heading = heading_level(tag);
            }
            if (tag == GUMBO_TAG_PRE)
                ho.pre++;
            owe(&ho, breaks(tag));
            if (tag == GUMBO_TAG_TD || tag == GUMBO_TAG_TH)
                ho.space = true;
        }
        if (idx[sp] >= kids->length) { /* leaving */
            if (tag == GUMBO_TAG_PRE)
                ho.pre--;
            if (heading_level(tag) && in_heading == heading_level(tag)) {
                emit(&ho, b, in_heading);
                in_heading = 0;
            }
            owe(&ho, breaks(tag) == 2 ? 2 : 0);
            if (tag == GUMBO_TAG_TD || tag == GUMBO_TAG_TH)
                ho.space = true;
            sp--;
            continue;
        }
        GumboNode *c = kids->data[idx[sp]++];
        if ((size_t)sp + 1 >= cap) {
            size_t nc = cap * 2;
            GumboNode **ns = cn_realloc_array(stack, nc, sizeof *stack);
            if (ns)
                stack = ns;
            unsigned *ni = ns ? cn_realloc_array(idx, nc, sizeof *idx) : NULL;
            if (!ns || !ni) {
                r = CN_ENOMEM;
                break;
            }
            idx = ni;
            cap = nc;
        }
        stack[++sp] = c;
        idx[sp] = 0;
    }
    if (r == CN_OK && out.len)
        emit(&ho, b, in_heading);
    free(stack);
    free(idx);
    if (r == CN_OK && title && (titlenode || h1))
        r = subtree_text(title, titlenode ? titlenode : h1);
    if (r == CN_OK && title && title->len == 0 && h1 && titlenode)
        r = subtree_text(title, h1);
    gumbo_destroy_output(&kGumboDefaultOptions, g);
    cn_buf_free(&out);
    if (r != CN_OK)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    return CN_OK;
}

int ingest_html(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err)
{
    cn_buf t, title;
    cn_buf_init(&t, len * 3 + 16);
    cn_buf_init(&title, 4096);
    int rc = ingest_decode_text(d, name, data, len, &t, err);
    if (rc == CN_OK && !t.data && cn_buf_append(&t, "", 0) != CN_OK)
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    if (rc == CN_OK) {
        ingest_builder b;
        ib_init(&b, d, name, o->text_page_words, o->max_pages);
        b.keep_spaces = true;
        rc = ingest_html_build(&b, name, t.data, t.len, &title, err);
        if (rc == CN_OK)
            rc = ib_finish(&b, err);
        else
            ib_free(&b);
    }
    if (rc == CN_OK && title.len && ingest_set_title(d, title.data, title.len) != CN_OK)
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    cn_buf_free(&t);
    cn_buf_free(&title);
    return rc;
}
