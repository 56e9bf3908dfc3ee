/*
** epub.c: EPUB 2 and 3 books, read as what they are: a ZIP (zip.c) of XHTML
** chapters in the order of the package's spine, each through the HTML
** reader (html.c), so <h1>..<h6> become the heading path a passage cites.
**
** META-INF/container.xml names the package document (.opf); its manifest
** maps ids to files and its spine orders them. Real books bend the rules:
** spine entries that point into a chapter ("ch1.xhtml#s2") are the chapter
** once; an empty spine falls back to the manifest's XHTML in its order; a
** missing chapter is noted and skipped. Each chapter starts a page, and a
** long one is cut into pages of a text file's length. Books whose chapters
** are encrypted (DRM: META-INF/encryption.xml lists them) are refused;
** obfuscated fonts alone do not matter.
*/
#include "ingest/zip.h"

#include <stdio.h>
#include <string.h>

#define EPUB_MAX_CHAPTERS 10000

typedef struct chapter {
    char path[512];
} chapter;

/* Is path (a chapter) listed as encrypted in META-INF/encryption.xml,
** with anything but font obfuscation? */
static bool encrypted(fz_xml *enc, const char *path)
{
    for (fz_xml *n = enc; n; n = zip_xml_next(n, enc, true)) {
        if (!zip_is(n, "EncryptedData"))
            continue;
        fz_xml *m = zip_child(n, "EncryptionMethod");
        const char *alg = m ? fz_xml_att(m, "Algorithm") : NULL;
        if (alg && (strstr(alg, "obfuscation") || strstr(alg, "embedding")))
            continue; /* fonts mangled so they cannot be reused; the text is clear */
        fz_xml *cd = zip_child(n, "CipherData");
        fz_xml *cr = zip_child(cd, "CipherReference");
        const char *uri = cr ? fz_xml_att(cr, "URI") : NULL;
        if (uri && strcmp(uri, path) == 0)
            return true;
    }
    return false;
}

static bool seen(const chapter *ch, int n, const char *path)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ch[i].path, path) == 0)
            return true;
    return false;
}

/* The manifest href of id, or NULL. */
static const char *href_of(fz_xml *manifest, const char *id, const char **type)
{
    for (fz_xml *it = fz_xml_down(manifest); it; it = fz_xml_next(it)) {
        const char *iid = zip_is(it, "item") ? fz_xml_att(it, "id") : NULL;
        if (iid && strcmp(iid, id) == 0) {
            *type = fz_xml_att(it, "media-type");
            return fz_xml_att(it, "href");
        }
    }
    return NULL;
}

static bool xhtml_type(const char *t)
{
    return t && (strcmp(t, "application/xhtml+xml") == 0 || strcmp(t, "text/html") == 0);
}

/* Add href (relative to the package document opf) to the chapters, once. */
static void add_chapter(chapter *ch, int *n, const char *opf, const char *href)
{
    char rel[512], path[512];
    snprintf(rel, sizeof rel, "%s", href);
    char *hash = strchr(rel, '#');
    if (hash)
        *hash = 0;
    /* %20 and friends in hrefs name files with spaces */
    size_t o = 0;
    for (size_t i = 0; rel[i]; i++) {
        unsigned v;
        if (rel[i] == '%' && sscanf(rel + i + 1, "%2x", &v) == 1 && rel[i + 1] && rel[i + 2]) {
            rel[o++] = (char)v;
            i += 2;
        } else {
            rel[o++] = rel[i];
        }
    }
    rel[o] = 0;
    if (!rel[0] || *n >= EPUB_MAX_CHAPTERS || zip_resolve(opf, rel, path, sizeof path) != CN_OK)
        return;
    if (!seen(ch, *n, path))
        snprintf(ch[(*n)++].path, sizeof ch->path, "%s", path);
}

int ingest_epub(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err)
{
    zip_reader z;
    int rc = zip_open(&z, name, data, len, o, err);
    if (rc != CN_OK)
        return rc;
    fz_xml *cont = NULL, *opf = NULL, *enc = NULL;
    char opf_path[512] = "";
    chapter *ch = NULL;
    int n_ch = 0;
    if (!zip_has(&z, "META-INF/container.xml"))
        rc = cn_fail(err, CN_EFORMAT, "%s: damaged EPUB: no META-INF/container.xml", name);
    else
        rc = zip_xml(&z, "META-INF/container.xml", &cont, err);
    if (rc == CN_OK) {
        fz_xml *rf = NULL;
        for (fz_xml *n = cont; n && !rf; n = zip_xml_next(n, cont, true))
            if (zip_is(n, "rootfile") && fz_xml_att(n, "full-path"))
                rf = n;
        if (rf)
            snprintf(opf_path, sizeof opf_path, "%s", fz_xml_att(rf, "full-path"));
        if (!opf_path[0] || !zip_has(&z, opf_path))
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged EPUB: no package document (%s)", name,
                         opf_path[0] ? opf_path : "container.xml names none");
    }
    if (rc == CN_OK)
        rc = zip_xml(&z, opf_path, &opf, err);
    fz_xml *manifest = rc == CN_OK ? zip_child(opf, "manifest") : NULL;
    fz_xml *spine = rc == CN_OK ? zip_child(opf, "spine") : NULL;
    if (rc == CN_OK && !manifest)
        rc = cn_fail(err, CN_EFORMAT, "%s: damaged EPUB: the package has no manifest", name);
    if (rc == CN_OK && !(ch = cn_calloc(EPUB_MAX_CHAPTERS, sizeof *ch)))
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    if (rc == CN_OK) {
        for (fz_xml *ir = spine ? fz_xml_down(spine) : NULL; ir; ir = fz_xml_next(ir)) {
            const char *id = zip_is(ir, "itemref") ? fz_xml_att(ir, "idref") : NULL;
            const char *type = NULL, *href = id ? href_of(manifest, id, &type) : NULL;
            if (href && (!type || xhtml_type(type)))
                add_chapter(ch, &n_ch, opf_path, href);
        }
        if (n_ch == 0) /* no usable spine: the manifest's documents in order */
            for (fz_xml *it = fz_xml_down(manifest); it; it = fz_xml_next(it))
                if (zip_is(it, "item") && xhtml_type(fz_xml_att(it, "media-type")) &&
                    fz_xml_att(it, "href") &&
                    !(fz_xml_att(it, "properties") && strstr(fz_xml_att(it, "properties"), "nav")))
                    add_chapter(ch, &n_ch, opf_path, fz_xml_att(it, "href"));
        if (n_ch == 0)
            rc = cn_fail(err, CN_EFORMAT, "%s: an EPUB without chapters", name);
    }
    cn_err e2 = {0};
    if (rc == CN_OK && zip_has(&z, "META-INF/encryption.xml") &&
        zip_xml(&z, "META-INF/encryption.xml", &enc, &e2) == CN_OK)
        for (int i = 0; i < n_ch; i++)
            if (encrypted(enc, ch[i].path)) {
                rc = cn_fail(err, CN_EUNSUPPORTED,
                             "%s: protected by DRM (its chapters are encrypted)", name);
                break;
            }
    if (rc == CN_OK) {
        ingest_builder b;
        ib_init(&b, d, name, o->text_page_words, o->max_pages);
        cn_buf raw, clean;
        cn_buf_init(&raw, o->max_unzipped_bytes);
        cn_buf_init(&clean, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
        int missing = 0, bad = 0;
        for (int i = 0; i < n_ch && rc == CN_OK && b.rc == CN_OK; i++) {
            if (!zip_has(&z, ch[i].path)) {
                missing++;
                continue;
            }
            rc = zip_read(&z, ch[i].path, &raw, err);
            if (rc != CN_OK)
                break;
            clean.len = 0;
            rc = ingest_decode_text(d, name, (const unsigned char *)(raw.data ? raw.data : ""),
                                    raw.len, &clean, err);
            if (rc == CN_OK && cn_buf_append(&clean, "", 0) != CN_OK)
                rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
            if (rc != CN_OK)
                break;
            if (i)
                ib_page(&b); /* each chapter starts a page */
            cn_err ce = {0};
            if (ingest_html_build(&b, name, clean.data, clean.len, NULL, &ce) != CN_OK) {
                if (ce.code == CN_ENOMEM) {
                    rc = cn_fail(err, CN_ENOMEM, "%s", ce.msg);
                    break;
                }
                bad++; /* a chapter the HTML reader refuses (nested too deep): skipped */
            }
        }
        cn_buf_free(&raw);
        cn_buf_free(&clean);
        if (rc == CN_OK)
            rc = ib_finish(&b, err);
        else
            ib_free(&b);
        if (rc == CN_OK && missing)
            ingest_note(d, "%d of %d chapters missing from the file", missing, n_ch);
        if (rc == CN_OK && bad)
            ingest_note(d, "%d chapters could not be read", bad);
    }
    if (rc == CN_OK) {
        fz_xml *meta = zip_child(opf, "metadata");
        fz_xml *t = zip_child(meta, "title");
        cn_buf tb;
        cn_buf_init(&tb, 4096);
        if (t)
            zip_text(t, &tb);
        if (tb.len && ingest_set_title(d, tb.data, tb.len) != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
        cn_buf_free(&tb);
    }
    free(ch);
    zip_close(&z);
    return rc;
}
