/*
** office.c: Word (.docx) and PowerPoint (.pptx) files, Office Open XML.
**
** Both are ZIP archives of XML parts (zip.c). Which one a file is comes from
** its parts, not its name: word/document.xml or ppt/presentation.xml.
**
** Word: the body's paragraphs in order. A paragraph is a heading when its
** style (word/styles.xml, followed through basedOn) or the paragraph itself
** has an outline level, or the style is named "heading N". Tables become one
** line per row, cells joined by " | "; list items start with "- ";
** footnotes and endnotes follow the paragraph that cites them, as "[n] ...";
** deleted text of tracked changes and field codes are left out, and headers
** and footers (separate parts) are never read. Word records where its last
** layout broke pages (<w:lastRenderedPageBreak/>) and hard page breaks: when
** the file has any, pages are those; otherwise the text is cut into pages of
** a length like a text file's, and the heading path is the locator.
**
** PowerPoint: slide by slide in the presentation's order, one page each (an
** empty slide keeps its number): the title placeholder is the page's
** heading, then the other shapes' paragraphs, tables by rows, then the
** speaker notes.
*/
#include "ingest/zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Tables and content controls may nest; beyond this depth their content
** is skipped with a note (Word itself stops far earlier). */
#define OFFICE_MAX_DEPTH 32

typedef struct style {
    const char *id, *based_on;
    int level; /* 1..9, 0: not a heading, -1: not known (look at based_on) */
    bool list; /* numbering in the style */
    bool title;
} style;

typedef struct note {
    const char *id;
    char *text;
} note;

typedef struct docx {
    zip_reader *z;
    ingest_doc *d;
    ingest_builder *b;
    const char *name;
    style *styles;
    int n_styles;
    note *notes; /* footnotes then endnotes */
    int n_notes, n_footnotes, cap_notes;
    int note_no;
    size_t keep; /* bytes of x->para that are a list mark, not text */
    bool paged;
    int deep; /* content skipped for depth */
    cn_buf para, cell, row, pending_notes;
    char title[256];
    cn_arena tmp;
} docx;

/* ---- styles ------------------------------------------------------------- */

static int parse_level(const char *v)
{
    if (!v || v[0] < '0' || v[0] > '9' || v[1])
        return 0;
    int l = v[0] - '0' + 1;
    return l <= INGEST_MAX_LEVEL ? l : 0; /* outlineLvl 9 is body text */
}

static int cmp_style(const void *a, const void *b)
{
    return strcmp(((const style *)a)->id, ((const style *)b)->id);
}

static int cmp_note(const void *a, const void *b)
{
    return strcmp(((const note *)a)->id, ((const note *)b)->id);
}

static void load_styles(docx *x, cn_err *err)
{
    fz_xml *root;
    if (!zip_has(x->z, "word/styles.xml"))
        return;
    cn_err e2 = {0};
    if (zip_xml(x->z, "word/styles.xml", &root, &e2) != CN_OK) {
        ingest_note(x->d, "styles unreadable, headings guessed from none (%s)", e2.msg);
        (void)err;
        return;
    }
    int n = 0;
    for (fz_xml *s = fz_xml_down(root); s; s = fz_xml_next(s))
        n += zip_is(s, "style");
    x->styles = cn_arena_alloc(&x->tmp, (size_t)(n ? n : 1) * sizeof *x->styles);
    if (!x->styles)
        return;
    for (fz_xml *s = fz_xml_down(root); s; s = fz_xml_next(s)) {
        if (!zip_is(s, "style") || !fz_xml_att(s, "w:styleId"))
            continue;
        style st = {.id = fz_xml_att(s, "w:styleId"), .level = -1};
        fz_xml *c = zip_child(s, "basedOn");
        st.based_on = c ? fz_xml_att(c, "w:val") : NULL;
        fz_xml *ppr = zip_child(s, "pPr");
        fz_xml *ol = zip_child(ppr, "outlineLvl");
        if (ol)
            st.level = parse_level(fz_xml_att(ol, "w:val"));
        st.list = zip_child(ppr, "numPr") != NULL;
        fz_xml *nm = zip_child(s, "name");
        const char *name = nm ? fz_xml_att(nm, "w:val") : NULL;
        if (name && st.level < 0 && strncasecmp(name, "heading ", 8) == 0 && name[8] >= '1' &&
            name[8] <= '9' && !name[9])
            st.level = name[8] - '0';
        if (name && strcasecmp(name, "title") == 0) {
            st.title = true;
            st.level = 0;
        }
        x->styles[x->n_styles++] = st;
    }
    /* sorted by id: a hostile file may hold many thousands */
    qsort(x->styles, (size_t)x->n_styles, sizeof *x->styles, cmp_style);
}

static const style *find_style(docx *x, const char *id)
{
    if (!id || !x->n_styles)
        return NULL;
    style key = {.id = id};
    return bsearch(&key, x->styles, (size_t)x->n_styles, sizeof key, cmp_style);
}

/* The heading level of a style, following basedOn (with a bound, as a
** hostile file may loop). */
static int style_level(docx *x, const style *s)
{
    for (int hops = 0; s && hops < 16; hops++) {
        if (s->level >= 0)
            return s->level;
        s = find_style(x, s->based_on);
    }
    return 0;
}

/* ---- notes -------------------------------------------------------------- */

static void load_notes(docx *x, const char *part, const char *tag)
{
    fz_xml *root;
    cn_err e2 = {0};
    if (!zip_has(x->z, part))
        return;
    if (zip_xml(x->z, part, &root, &e2) != CN_OK) {
        ingest_note(x->d, "%s unreadable (%s)", part, e2.msg);
        return;
    }
    cn_buf t;
    cn_buf_init(&t, (size_t)64 << 20);
    for (fz_xml *n = fz_xml_down(root); n; n = fz_xml_next(n)) {
        const char *id = fz_xml_att(n, "w:id");
        const char *type = fz_xml_att(n, "w:type");
        if (!zip_is(n, tag) || !id || (type && strcmp(type, "normal") != 0))
            continue; /* separators and continuation notices */
        t.len = 0;
        for (fz_xml *c = n; c; c = zip_xml_next(c, n, true)) {
            if (zip_is(c, "p") && t.len && cn_buf_append(&t, " ", 1) != CN_OK)
                break;
            const char *s = fz_xml_text(c);
            if (s && zip_is(fz_xml_up(c), "t") && cn_buf_append(&t, s, strlen(s)) != CN_OK)
                break;
        }
        if (x->n_notes == x->cap_notes) {
            int cap = x->cap_notes ? x->cap_notes * 2 : 64;
            note *nn = cn_realloc_array(x->notes, (size_t)cap, sizeof *nn);
            if (!nn)
                break;
            x->notes = nn;
            x->cap_notes = cap;
        }
        x->notes[x->n_notes++] = (note){id, cn_arena_strndup(&x->tmp, t.data ? t.data : "", t.len)};
    }
    cn_buf_free(&t);
    /* sorted by id within this part (footnotes, then endnotes) */
    int first = strcmp(tag, "footnote") == 0 ? 0 : x->n_footnotes;
    if (x->n_notes > first)
        qsort(x->notes + first, (size_t)(x->n_notes - first), sizeof *x->notes, cmp_note);
}

static const note *find_note(docx *x, const char *id, bool endnote)
{
    int lo = endnote ? x->n_footnotes : 0, hi = endnote ? x->n_notes : x->n_footnotes;
    if (!id || hi <= lo)
        return NULL;
    note key = {.id = id};
    return bsearch(&key, x->notes + lo, (size_t)(hi - lo), sizeof key, cmp_note);
}

/* ---- the body ----------------------------------------------------------- */

static void flush_para(docx *x, int level)
{
    ib_flush(x->b, level, &x->para, &x->pending_notes);
}

/* A page breaks inside a paragraph: its text so far ends the page (a list
** item's "- " alone stays for the part after the break). */
static void page_break(docx *x, int level)
{
    if (x->para.len > x->keep) {
        flush_para(x, level);
        x->keep = 0;
    }
    ib_page(x->b);
}

/* The text of paragraph p into out. With breaks, page breaks flush the
** text so far as a paragraph and start a page (body paragraphs only). */
static void para_text(docx *x, fz_xml *p, cn_buf *out, bool breaks, int level)
{
    for (fz_xml *n = fz_xml_down(p) ? fz_xml_down(p) : NULL; n;) {
        bool descend = true;
        const char *t = fz_xml_text(n);
        if (t) {
            fz_xml *up = fz_xml_up(n);
            if (zip_is(up, "t"))
                cn_buf_append(out, t, strlen(t));
        } else if (zip_is(n, "del") || zip_is(n, "instrText") || zip_is(n, "pPr") ||
                   zip_is(n, "rPr") || zip_is(n, "delText") || zip_is(n, "drawing") ||
                   zip_is(n, "pict") || zip_is(n, "object")) {
            descend = false;
        } else if (zip_is(n, "tab") || zip_is(n, "ptab")) {
            cn_buf_append(out, "\t", 1);
        } else if (zip_is(n, "noBreakHyphen")) {
            cn_buf_append(out, "-", 1);
        } else if (zip_is(n, "br") || zip_is(n, "cr")) {
            const char *type = fz_xml_att(n, "w:type");
            if (breaks && type && strcmp(type, "page") == 0) {
                page_break(x, level);
            } else {
                cn_buf_append(out, "\n", 1);
            }
        } else if (zip_is(n, "lastRenderedPageBreak") && breaks) {
            page_break(x, level);
        } else if (zip_is(n, "footnoteReference") || zip_is(n, "endnoteReference")) {
            const note *nt = find_note(x, fz_xml_att(n, "w:id"), zip_is(n, "endnoteReference"));
            if (nt) {
                char mark[32];
                int k = ++x->note_no;
                snprintf(mark, sizeof mark, "[%d]", k);
                cn_buf_append(out, mark, strlen(mark));
                if (breaks) {
                    if (x->pending_notes.len)
                        cn_buf_append(&x->pending_notes, "\n", 1);
                    cn_buf_printf(&x->pending_notes, "[%d] %s", k, nt->text ? nt->text : "");
                }
            }
        }
        n = zip_xml_next(n, p, descend);
    }
}

static void table(docx *x, fz_xml *tbl, cn_buf *out, int depth);

/* A cell's paragraphs joined by spaces, nested tables inline. */
static void cell_text(docx *x, fz_xml *tc, cn_buf *out, int depth)
{
    for (fz_xml *c = fz_xml_down(tc); c; c = fz_xml_next(c)) {
        size_t before = out->len;
        if (zip_is(c, "p")) {
            if (before)
                cn_buf_append(out, " ", 1);
            para_text(x, c, out, false, 0);
        } else if (zip_is(c, "tbl")) {
            if (before)
                cn_buf_append(out, " ", 1);
            table(x, c, out, depth + 1);
        } else if (zip_is(c, "sdt") || zip_is(c, "sdtContent") || zip_is(c, "customXml")) {
            if (depth < OFFICE_MAX_DEPTH)
                cell_text(x, c, out, depth + 1);
            else
                x->deep++;
        }
    }
}

/* Rows as lines of cells joined by " | ", into out (a cell, for a nested
** table) or, when out is NULL, as paragraphs of the page. */
static void table(docx *x, fz_xml *tbl, cn_buf *out, int depth)
{
    if (depth > OFFICE_MAX_DEPTH) {
        x->deep++;
        return;
    }
    cn_buf row;
    cn_buf_init(&row, (size_t)64 << 20);
    for (fz_xml *tr = fz_xml_down(tbl); tr; tr = fz_xml_next(tr)) {
        if (!zip_is(tr, "tr"))
            continue;
        row.len = 0;
        for (fz_xml *tc = fz_xml_down(tr); tc; tc = fz_xml_next(tc)) {
            if (!zip_is(tc, "tc"))
                continue;
            cn_buf cell;
            cn_buf_init(&cell, (size_t)64 << 20);
            cell_text(x, tc, &cell, depth);
            ib_cell(&row, &cell);
            cn_buf_free(&cell);
        }
        if (out) {
            if (out->len)
                cn_buf_append(out, "; ", 2);
            cn_buf_append(out, row.data ? row.data : "", row.len);
        } else {
            ib_row(x->b, row.data, row.len);
            if (x->pending_notes.len) {
                ib_para(x->b, x->pending_notes.data, x->pending_notes.len);
                x->pending_notes.len = 0;
            }
        }
    }
    cn_buf_free(&row);
}

static void paragraph(docx *x, fz_xml *p)
{
    fz_xml *ppr = zip_child(p, "pPr");
    fz_xml *ps = zip_child(ppr, "pStyle");
    const style *st = find_style(x, ps ? fz_xml_att(ps, "w:val") : NULL);
    int level = style_level(x, st);
    fz_xml *ol = zip_child(ppr, "outlineLvl");
    if (ol)
        level = parse_level(fz_xml_att(ol, "w:val"));
    bool list = zip_child(ppr, "numPr") != NULL || (st && st->list);
    x->para.len = 0;
    if (list && level == 0)
        cn_buf_append(&x->para, "- ", 2);
    size_t start = x->para.len;
    x->keep = start;
    para_text(x, p, &x->para, true, level);
    if (st && st->title && !x->title[0] && x->para.len > start)
        snprintf(x->title, sizeof x->title, "%.*s", (int)CN_MIN(x->para.len - start, 255),
                 x->para.data + start);
    if (x->para.len == start)
        x->para.len = 0; /* an empty list item */
    flush_para(x, level);
}

static void body(docx *x, fz_xml *parent, int depth)
{
    if (depth > OFFICE_MAX_DEPTH) {
        x->deep++;
        return;
    }
    for (fz_xml *c = fz_xml_down(parent); c; c = fz_xml_next(c)) {
        if (zip_is(c, "p"))
            paragraph(x, c);
        else if (zip_is(c, "tbl"))
            table(x, c, NULL, depth);
        else if (zip_is(c, "sdt") || zip_is(c, "sdtContent") || zip_is(c, "customXml") ||
                 zip_is(c, "ins") || zip_is(c, "smartTag") || zip_is(c, "txbxContent"))
            body(x, c, depth + 1);
    }
}

/* Any <w:lastRenderedPageBreak/> or hard page break in the body? */
static bool has_page_breaks(fz_xml *root)
{
    for (fz_xml *n = root; n; n = zip_xml_next(n, root, true)) {
        if (zip_is(n, "lastRenderedPageBreak"))
            return true;
        if (zip_is(n, "br") && fz_xml_att(n, "w:type") && strcmp(fz_xml_att(n, "w:type"), "page") == 0)
            return true;
    }
    return false;
}

/* dc:title of docProps/core.xml, if any. */
static void core_title(zip_reader *z, char *out, size_t cap)
{
    fz_xml *root;
    cn_err e2 = {0};
    if (!zip_has(z, "docProps/core.xml") || zip_xml(z, "docProps/core.xml", &root, &e2) != CN_OK)
        return;
    fz_xml *t = zip_child(root, "title");
    if (!t)
        return;
    cn_buf b;
    cn_buf_init(&b, cap);
    zip_text(t, &b);
    snprintf(out, cap, "%.*s", (int)CN_MIN(b.len, cap - 1), b.data ? b.data : "");
    cn_buf_free(&b);
}

static int read_docx(zip_reader *z, ingest_doc *d, const char *name, const ingest_opts *o,
                     cn_err *err)
{
    docx x = {.z = z, .d = d, .name = name};
    cn_arena_init(&x.tmp, (size_t)256 << 20);
    cn_buf_init(&x.para, (size_t)64 << 20);
    cn_buf_init(&x.pending_notes, (size_t)64 << 20);
    fz_xml *root;
    int rc = zip_xml(z, "word/document.xml", &root, err);
    ingest_builder b;
    if (rc == CN_OK) {
        load_styles(&x, err);
        load_notes(&x, "word/footnotes.xml", "footnote");
        x.n_footnotes = x.n_notes;
        load_notes(&x, "word/endnotes.xml", "endnote");
        x.paged = has_page_breaks(root);
        ib_init(&b, d, name, x.paged ? 0 : o->text_page_words, o->max_pages);
        x.b = &b;
        fz_xml *bd = zip_child(root, "body");
        if (!bd)
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged Word document: no <w:body>", name);
        else
            body(&x, bd, 0);
        rc = rc == CN_OK ? ib_finish(&b, err) : (ib_free(&b), rc);
    }
    if (rc == CN_OK) {
        d->paged = x.paged;
        if (x.deep)
            ingest_note(d, "content nested more than %d deep skipped (%d places)",
                        OFFICE_MAX_DEPTH, x.deep);
        char title[256] = "";
        core_title(z, title, sizeof title);
        const char *t = title[0] ? title : x.title;
        if (t[0] && ingest_set_title(d, t, strlen(t)) != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    }
    free(x.notes);
    cn_buf_free(&x.para);
    cn_buf_free(&x.pending_notes);
    cn_arena_free(&x.tmp);
    return rc;
}

/* ---- PowerPoint --------------------------------------------------------- */

/* The target of relationship id in the .rels of part ("" if none). */
/* The relationships of part (its _rels/NAME.rels), parsed, or NULL. */
static fz_xml *rels_of(zip_reader *z, const char *part)
{
    const char *slash = strrchr(part, '/');
    char rels[1024];
    int dir = slash ? (int)(slash - part + 1) : 0;
    if (snprintf(rels, sizeof rels, "%.*s_rels/%s.rels", dir, part, part + dir) >= (int)sizeof rels)
        return NULL;
    fz_xml *root;
    cn_err e2 = {0};
    if (!zip_has(z, rels) || zip_xml(z, rels, &root, &e2) != CN_OK)
        return NULL;
    return root;
}

/* The target of relationship id (or of the first of type_suffix) among
** part's relationships root, resolved against part; "" if none. */
static void rel_target(fz_xml *root, const char *part, const char *id, const char *type_suffix,
                       char *out, size_t cap)
{
    out[0] = 0;
    for (fz_xml *r = root ? fz_xml_down(root) : NULL; r; r = fz_xml_next(r)) {
        const char *rid = fz_xml_att(r, "Id"), *tg = fz_xml_att(r, "Target");
        const char *ty = fz_xml_att(r, "Type"), *mode = fz_xml_att(r, "TargetMode");
        if (!zip_is(r, "Relationship") || !tg || (mode && strcmp(mode, "External") == 0))
            continue;
        bool match = id ? (rid && strcmp(rid, id) == 0)
                        : (ty && strlen(ty) >= strlen(type_suffix) &&
                           strcmp(ty + strlen(ty) - strlen(type_suffix), type_suffix) == 0);
        if (match) {
            if (zip_resolve(part, tg, out, cap) != CN_OK)
                out[0] = 0;
            return;
        }
    }
}

/* The text of one DrawingML paragraph (a:p) into t. */
static void a_para(fz_xml *p, cn_buf *t)
{
    for (fz_xml *c = p; c; c = zip_xml_next(c, p, true)) {
        const char *s = fz_xml_text(c);
        if (s && zip_is(fz_xml_up(c), "t"))
            cn_buf_append(t, s, strlen(s));
        else if (zip_is(c, "br"))
            cn_buf_append(t, "\n", 1);
    }
}

/* The paragraphs of a shape (or notes), each one paragraph of the page
** (headings at level when level > 0); tables as one line per row. */
static void shape_text(ingest_builder *b, fz_xml *sp, int level, cn_buf *t)
{
    for (fz_xml *n = sp; n;) {
        bool descend = true;
        if (zip_is(n, "p")) {
            t->len = 0;
            a_para(n, t);
            if (level)
                ib_heading(b, level, t->data, t->len);
            else
                ib_para(b, t->data, t->len);
            descend = false;
        } else if (zip_is(n, "tbl")) {
            for (fz_xml *tr = fz_xml_down(n); tr; tr = fz_xml_next(tr)) {
                if (!zip_is(tr, "tr"))
                    continue;
                t->len = 0;
                for (fz_xml *tc = fz_xml_down(tr); tc; tc = fz_xml_next(tc)) {
                    if (!zip_is(tc, "tc"))
                        continue;
                    if (t->len)
                        cn_buf_append(t, " | ", 3);
                    size_t at = t->len;
                    for (fz_xml *p = tc; p; p = zip_xml_next(p, tc, !zip_is(p, "p")))
                        if (zip_is(p, "p")) {
                            if (t->len > at)
                                cn_buf_append(t, " ", 1);
                            a_para(p, t);
                        }
                    for (size_t i = at; i < t->len; i++)
                        if (t->data[i] == '\n')
                            t->data[i] = ' ';
                }
                ib_row(b, t->data, t->len);
            }
            descend = false;
        }
        n = zip_xml_next(n, sp, descend);
    }
}

/* The placeholder type of a shape ("title", "ctrTitle", "sldNum", ...) or "". */
static const char *ph_type(fz_xml *sp)
{
    fz_xml *nv = zip_child(sp, "nvSpPr");
    fz_xml *ph = zip_child(zip_child(nv, "nvPr"), "ph");
    const char *t = ph ? fz_xml_att(ph, "type") : NULL;
    return ph ? (t ? t : "body") : "";
}

static void slide(zip_reader *z, ingest_builder *b, const char *part, cn_buf *t)
{
    fz_xml *root;
    cn_err e2 = {0};
    if (zip_xml(z, part, &root, &e2) != CN_OK) {
        ingest_note(b->d, "a slide could not be read (%s)", e2.msg);
        return;
    }
    fz_xml *tree = zip_child(zip_child(root, "cSld"), "spTree");
    /* the title first, whatever its place in the shape tree */
    for (fz_xml *sp = tree; sp; sp = zip_xml_next(sp, tree, true)) {
        const char *ty = zip_is(sp, "sp") ? ph_type(sp) : "";
        if (strcmp(ty, "title") == 0 || strcmp(ty, "ctrTitle") == 0)
            shape_text(b, sp, 1, t);
    }
    for (fz_xml *sp = tree; sp;) {
        bool descend = true;
        if (zip_is(sp, "sp") || zip_is(sp, "graphicFrame")) {
            const char *ty = zip_is(sp, "sp") ? ph_type(sp) : "";
            if (strcmp(ty, "title") && strcmp(ty, "ctrTitle") && strcmp(ty, "sldNum") &&
                strcmp(ty, "dt") && strcmp(ty, "ftr"))
                shape_text(b, sp, 0, t);
            descend = false;
        }
        sp = zip_xml_next(sp, tree, descend);
    }
    char notes[1024];
    rel_target(rels_of(z, part), part, NULL, "/notesSlide", notes, sizeof notes);
    fz_xml *nroot;
    if (notes[0] && zip_has(z, notes) && zip_xml(z, notes, &nroot, &e2) == CN_OK) {
        fz_xml *nt = zip_child(zip_child(nroot, "cSld"), "spTree");
        for (fz_xml *sp = nt; sp;) {
            bool descend = true;
            if (zip_is(sp, "sp")) {
                const char *ty = ph_type(sp);
                if (strcmp(ty, "body") == 0)
                    shape_text(b, sp, 0, t);
                descend = false;
            }
            sp = zip_xml_next(sp, nt, descend);
        }
    }
}

static int read_pptx(zip_reader *z, ingest_doc *d, const char *name, const ingest_opts *o,
                     cn_err *err)
{
    fz_xml *root;
    int rc = zip_xml(z, "ppt/presentation.xml", &root, err);
    if (rc != CN_OK)
        return rc;
    ingest_builder b;
    ib_init(&b, d, name, 0, o->max_pages);
    b.keep_empty = true;
    cn_buf t;
    cn_buf_init(&t, (size_t)64 << 20);
    int n = 0;
    fz_xml *prels = rels_of(z, "ppt/presentation.xml"); /* parsed once for every slide */
    for (fz_xml *s = fz_xml_down(zip_child(root, "sldIdLst")); s; s = fz_xml_next(s)) {
        const char *rid = zip_is(s, "sldId") ? fz_xml_att(s, "r:id") : NULL;
        char part[1024];
        if (!rid)
            continue;
        rel_target(prels, "ppt/presentation.xml", rid, NULL, part, sizeof part);
        if (n++)
            ib_page(&b);
        size_t mark = zip_mark(z);
        if (part[0] && zip_has(z, part))
            slide(z, &b, part, &t);
        else
            ingest_note(d, "slide %d is missing from the file", n);
        zip_release(z, mark); /* the slide's parts are done */
        if (b.rc != CN_OK)
            break;
    }
    cn_buf_free(&t);
    if (n == 0) {
        ib_free(&b);
        return cn_fail(err, CN_EFORMAT, "%s: a presentation without slides", name);
    }
    rc = ib_finish(&b, err);
    if (rc == CN_OK) {
        d->paged = true;
        char title[256] = "";
        core_title(z, title, sizeof title);
        if (title[0] && ingest_set_title(d, title, strlen(title)) != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    }
    return rc;
}

int ingest_office(ingest_doc *d, int kind, const char *name, const unsigned char *data,
                  size_t len, const ingest_opts *o, cn_err *err)
{
    (void)kind;
    zip_reader z;
    int rc = zip_open(&z, name, data, len, o, err);
    if (rc != CN_OK)
        return rc;
    bool macros = zip_has(&z, "word/vbaProject.bin") || zip_has(&z, "ppt/vbaProject.bin");
    if (macros)
        ingest_note(d, "macros ignored (never run)");
    if (zip_has(&z, "word/document.xml")) {
        d->kind = "docx";
        rc = read_docx(&z, d, name, o, err);
    } else if (zip_has(&z, "ppt/presentation.xml")) {
        d->kind = "pptx";
        rc = read_pptx(&z, d, name, o, err);
    } else if (zip_has(&z, "xl/workbook.xml")) {
        rc = cn_fail(err, CN_EUNSUPPORTED, "%s: an Excel workbook (not supported)", name);
    } else {
        rc = cn_fail(err, CN_EFORMAT,
                     "%s: not a Word or PowerPoint file (a ZIP archive without "
                     "word/document.xml or ppt/presentation.xml)",
                     name);
    }
    size_t total = 0;
    for (int i = 0; rc == CN_OK && i < d->n_pages; i++)
        total += d->pages[i].len;
    if (rc == CN_OK && macros && total == 0)
        rc = cn_fail(err, CN_EFORMAT, "%s: no text (a file of macros only; macros are never run)",
                     name);
    zip_close(&z);
    return rc;
}
