/*
** odf.c: OpenDocument text (.odt) and presentations (.odp).
**
** Both are ZIP archives whose "mimetype" entry says which they are, with the
** text in content.xml and the title in meta.xml. Text: <text:h> headings
** (text:outline-level), paragraphs, list items ("- "), tables by rows
** (" | " between cells), sections and text frames in reading order; notes
** follow their paragraph as "[n] ..."; annotations, tracked deletions and
** tables of contents (a copy of the headings) are left out. LibreOffice
** records where its layout broke pages (<text:soft-page-break/>): when the
** file has any, pages are those, else the text is cut to a length and the
** heading path is the locator. Presentations: one page per <draw:page>, the
** title frame as the page's heading, then the other frames, then the notes.
*/
#include "ingest/zip.h"

#include <stdio.h>
#include <string.h>

#define ODF_MAX_DEPTH 32

typedef struct odf {
    zip_reader *z;
    ingest_doc *d;
    ingest_builder *b;
    cn_buf para, notes;
    int note_no;
    int deep;
} odf;

static int att_int(fz_xml *x, const char *att, int dflt)
{
    const char *v = fz_xml_att(x, att);
    if (!v || *v < '0' || *v > '9')
        return dflt;
    long n = 0;
    for (; *v >= '0' && *v <= '9' && n < 100000; v++)
        n = n * 10 + (*v - '0');
    return (int)n;
}

static void flush(odf *x, int level)
{
    ib_flush(x->b, level, &x->para, &x->notes);
}

/* The text of a paragraph or heading into out; with breaks, a soft page
** break flushes what came before and starts a page. */
static void para_text(odf *x, fz_xml *p, cn_buf *out, bool breaks, int level)
{
    for (fz_xml *n = fz_xml_down(p); n;) {
        bool descend = true;
        const char *t = fz_xml_text(n);
        if (t) {
            cn_buf_append(out, t, strlen(t));
        } else if (zip_is(n, "s")) {
            int c = att_int(n, "text:c", 1);
            for (int i = 0; i < c && i < 64; i++)
                cn_buf_append(out, " ", 1);
        } else if (zip_is(n, "tab")) {
            cn_buf_append(out, "\t", 1);
        } else if (zip_is(n, "line-break")) {
            cn_buf_append(out, "\n", 1);
        } else if (zip_is(n, "soft-page-break")) {
            if (breaks) {
                flush(x, level);
                ib_page(x->b);
            }
        } else if (zip_is(n, "note")) {
            char mark[32];
            int k = ++x->note_no;
            snprintf(mark, sizeof mark, "[%d]", k);
            cn_buf_append(out, mark, strlen(mark));
            fz_xml *body = zip_child(n, "note-body");
            if (body) {
                if (x->notes.len)
                    cn_buf_append(&x->notes, "\n", 1);
                cn_buf_printf(&x->notes, "[%d] ", k);
                size_t at = x->notes.len;
                for (fz_xml *q = body; q; q = zip_xml_next(q, body, true)) {
                    if (zip_is(q, "p") && x->notes.len > at)
                        cn_buf_append(&x->notes, " ", 1);
                    const char *s = fz_xml_text(q);
                    if (s)
                        cn_buf_append(&x->notes, s, strlen(s));
                }
            }
            descend = false;
        } else if (zip_is(n, "annotation") || zip_is(n, "annotation-end") ||
                   zip_is(n, "tracked-changes")) {
            descend = false;
        }
        n = zip_xml_next(n, p, descend);
    }
}

static void block(odf *x, fz_xml *parent, int depth, int list);

static void table(odf *x, fz_xml *tbl, int depth)
{
    cn_buf row, cell;
    cn_buf_init(&row, (size_t)64 << 20);
    cn_buf_init(&cell, (size_t)64 << 20);
    for (fz_xml *r = tbl; r; r = zip_xml_next(r, tbl, !zip_is(r, "table-row"))) {
        if (!zip_is(r, "table-row"))
            continue;
        row.len = 0;
        for (fz_xml *c = fz_xml_down(r); c; c = fz_xml_next(c)) {
            if (!zip_is(c, "table-cell"))
                continue;
            cell.len = 0;
            for (fz_xml *p = c; p; p = zip_xml_next(p, c, !(zip_is(p, "p") || zip_is(p, "h")))) {
                if (!zip_is(p, "p") && !zip_is(p, "h"))
                    continue;
                if (cell.len)
                    cn_buf_append(&cell, " ", 1);
                para_text(x, p, &cell, false, 0);
            }
            ib_cell(&row, &cell);
        }
        ib_row(x->b, row.data, row.len);
        if (x->notes.len) {
            ib_para(x->b, x->notes.data, x->notes.len);
            x->notes.len = 0;
        }
    }
    cn_buf_free(&row);
    cn_buf_free(&cell);
    (void)depth;
}

/* Block-level content of parent: paragraphs, headings, lists, tables,
** sections, frames. list > 0 inside a list item (its first paragraph gets
** the "- "). */
static void block(odf *x, fz_xml *parent, int depth, int list)
{
    if (depth > ODF_MAX_DEPTH) {
        x->deep++;
        return;
    }
    bool first = true;
    for (fz_xml *c = fz_xml_down(parent); c; c = fz_xml_next(c)) {
        if (zip_is(c, "h") || zip_is(c, "p")) {
            int level = zip_is(c, "h") ? att_int(c, "text:outline-level", 1) : 0;
            x->para.len = 0;
            if (list && first && level == 0)
                cn_buf_append(&x->para, "- ", 2);
            first = false;
            size_t start = x->para.len;
            para_text(x, c, &x->para, true, level);
            if (x->para.len == start)
                x->para.len = 0;
            flush(x, level);
            /* frames anchored in the paragraph hold text of their own */
            for (fz_xml *f = c; f; f = zip_xml_next(f, c, !zip_is(f, "text-box")))
                if (zip_is(f, "text-box"))
                    block(x, f, depth + 1, 0);
        } else if (zip_is(c, "list")) {
            block(x, c, depth + 1, 1);
        } else if (zip_is(c, "list-item") || zip_is(c, "list-header")) {
            block(x, c, depth + 1, list);
        } else if (zip_is(c, "table")) {
            table(x, c, depth);
        } else if (zip_is(c, "soft-page-break")) {
            ib_page(x->b);
        } else if (zip_is(c, "table-of-content") || zip_is(c, "tracked-changes")) {
            continue; /* a copy of the headings; deleted text */
        } else if (zip_is(c, "section") || zip_is(c, "frame") || zip_is(c, "text-box") ||
                   zip_is(c, "custom-shape") || zip_is(c, "g")) {
            block(x, c, depth + 1, 0);
        }
    }
}

static const char *frame_class(fz_xml *f)
{
    const char *c = fz_xml_att(f, "presentation:class");
    return c ? c : "";
}

static void slides(odf *x, fz_xml *pres)
{
    int n = 0;
    for (fz_xml *pg = fz_xml_down(pres); pg; pg = fz_xml_next(pg)) {
        if (!zip_is(pg, "page"))
            continue;
        if (n++)
            ib_page(x->b);
        for (fz_xml *f = fz_xml_down(pg); f; f = fz_xml_next(f)) {
            const char *cl = frame_class(f);
            if (strcmp(cl, "title") == 0) {
                x->para.len = 0;
                for (fz_xml *p = f; p; p = zip_xml_next(p, f, !zip_is(p, "p")))
                    if (zip_is(p, "p")) {
                        if (x->para.len)
                            cn_buf_append(&x->para, " ", 1);
                        para_text(x, p, &x->para, false, 0);
                    }
                flush(x, 1);
            }
        }
        for (fz_xml *f = fz_xml_down(pg); f; f = fz_xml_next(f)) {
            const char *cl = frame_class(f);
            if (strcmp(cl, "title") == 0 || strcmp(cl, "page-number") == 0 ||
                strcmp(cl, "footer") == 0 || strcmp(cl, "date-time") == 0)
                continue;
            if (zip_is(f, "frame") || zip_is(f, "custom-shape") || zip_is(f, "g") ||
                zip_is(f, "rect"))
                block(x, f, 1, 0);
            else if (zip_is(f, "notes"))
                for (fz_xml *nf = fz_xml_down(f); nf; nf = fz_xml_next(nf))
                    if (strcmp(frame_class(nf), "notes") == 0)
                        block(x, nf, 1, 0);
        }
        if (x->b->rc != CN_OK)
            break;
    }
}

static bool has_soft_breaks(fz_xml *root)
{
    for (fz_xml *n = root; n; n = zip_xml_next(n, root, true))
        if (zip_is(n, "soft-page-break"))
            return true;
    return false;
}

int ingest_odf(ingest_doc *d, int kind, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err)
{
    zip_reader z;
    int rc = zip_open(&z, name, data, len, o, err);
    if (rc != CN_OK)
        return rc;
    cn_buf mt;
    cn_buf_init(&mt, 256);
    fz_xml *root = NULL, *man = NULL;
    if (zip_has(&z, "mimetype") && zip_read(&z, "mimetype", &mt, err) == CN_OK) {
        const char *pre = "application/vnd.oasis.opendocument.";
        size_t pl = strlen(pre);
        if (mt.len > pl && memcmp(mt.data, pre, pl) == 0) {
            const char *sub = mt.data + pl;
            size_t sl = mt.len - pl;
            if ((sl == 4 && memcmp(sub, "text", 4) == 0) ||
                (sl == 13 && memcmp(sub, "text-template", 13) == 0))
                kind = INGEST_KIND_ODT;
            else if ((sl == 12 && memcmp(sub, "presentation", 12) == 0) ||
                     (sl == 21 && memcmp(sub, "presentation-template", 21) == 0))
                kind = INGEST_KIND_ODP;
            else
                rc = cn_fail(err, CN_EUNSUPPORTED, "%s: an OpenDocument %.*s (not supported)",
                             name, (int)CN_MIN(sl, (size_t)40), sub);
        }
    }
    cn_buf_free(&mt);
    if (rc == CN_OK && zip_has(&z, "META-INF/manifest.xml") &&
        zip_xml(&z, "META-INF/manifest.xml", &man, err) == CN_OK) {
        for (fz_xml *n = man; n; n = zip_xml_next(n, man, true))
            if (zip_is(n, "encryption-data")) {
                rc = cn_fail(err, CN_EUNSUPPORTED, "%s: password protected", name);
                break;
            }
    }
    if (rc == CN_OK && !zip_has(&z, "content.xml"))
        rc = cn_fail(err, CN_EFORMAT,
                     "%s: not an OpenDocument file (a ZIP archive without content.xml)", name);
    if (rc == CN_OK)
        rc = zip_xml(&z, "content.xml", &root, err);
    odf x = {.z = &z, .d = d};
    cn_buf_init(&x.para, (size_t)64 << 20);
    cn_buf_init(&x.notes, (size_t)64 << 20);
    if (rc == CN_OK) {
        fz_xml *body = zip_child(root, "body");
        fz_xml *text = zip_child(body, "text"), *pres = zip_child(body, "presentation");
        ingest_builder b;
        bool paged = kind == INGEST_KIND_ODP || has_soft_breaks(root);
        ib_init(&b, d, name, paged ? 0 : o->text_page_words, o->max_pages);
        x.b = &b;
        if (kind == INGEST_KIND_ODP && pres) {
            b.keep_empty = true;
            d->kind = "odp";
            slides(&x, pres);
        } else if (text) {
            d->kind = "odt";
            block(&x, text, 0, 0);
        } else {
            b.rc = CN_EFORMAT;
            snprintf(b.why, sizeof b.why, "no text or presentation body in content.xml");
        }
        if (b.rc == CN_EFORMAT) {
            rc = cn_fail(err, CN_EFORMAT, "%s: %s", name, b.why);
            ib_free(&b);
        } else {
            rc = ib_finish(&b, err);
        }
        d->paged = paged;
    }
    if (rc == CN_OK && x.deep)
        ingest_note(d, "content nested more than %d deep skipped (%d places)", ODF_MAX_DEPTH,
                    x.deep);
    fz_xml *meta;
    cn_err e2 = {0};
    if (rc == CN_OK && zip_has(&z, "meta.xml") && zip_xml(&z, "meta.xml", &meta, &e2) == CN_OK) {
        fz_xml *t = zip_child(zip_child(meta, "meta"), "title");
        cn_buf tb;
        cn_buf_init(&tb, 1024);
        if (t)
            zip_text(t, &tb);
        if (tb.len && ingest_set_title(d, tb.data, tb.len) != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
        cn_buf_free(&tb);
    }
    cn_buf_free(&x.para);
    cn_buf_free(&x.notes);
    zip_close(&z);
    return rc;
}
