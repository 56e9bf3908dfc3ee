/*
** test_formats.c: Word, PowerPoint, OpenDocument, EPUB, RTF and man pages
** (issue 14): what comes out of each (text, headings, pages, title), what
** must not (headers, deletions, field codes, skipped groups), the heading
** paths passages get as locators, and the hostile inputs: truncated and
** lying ZIPs, ZIP bombs, billion laughs, deep nesting, encrypted files.
*/
#include "docgen.h"
#include "ingest/ingest.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>

static int ingest_buf(const char *name, const void *data, size_t len, const ingest_opts *o,
                      ingest_doc *d, cn_err *err)
{
    return ingest_memory(name, data, len, o, d, err);
}

/* All pages joined by "\n\f\n", in a static buffer. */
static const char *all_text(const ingest_doc *d)
{
    static cn_buf b;
    cn_buf_free(&b);
    cn_buf_init(&b, (size_t)64 << 20);
    for (int i = 0; i < d->n_pages; i++) {
        if (i)
            cn_buf_append(&b, "\n\f\n", 3);
        cn_buf_append(&b, d->pages[i].text, d->pages[i].len);
    }
    cn_buf_append(&b, "", 1);
    return b.data;
}

static bool valid_pages(const ingest_doc *d)
{
    for (int i = 0; i < d->n_pages; i++)
        if (d->pages[i].number != i + 1 || strlen(d->pages[i].text) != d->pages[i].len ||
            cn_utf8_valid_prefix(d->pages[i].text, d->pages[i].len) != d->pages[i].len)
            return false;
    for (int i = 0; i < d->n_headings; i++) {
        const ingest_heading *h = &d->headings[i];
        if (h->page < 1 || h->page > d->n_pages || h->off >= d->pages[h->page - 1].len ||
            strncmp(d->pages[h->page - 1].text + h->off, h->text, strlen(h->text)) != 0)
            return false;
    }
    return true;
}

/* The common story of docgen.h, as every structured format must give it. */
static void expect_story(const ingest_doc *d, int pages, bool paged, bool tables)
{
    const char *t = all_text(d);
    EXPECT(valid_pages(d));
    EXPECT_STR(d->title, "Plant Safety Manual");
    EXPECT_CONTAINS(t, "Read this before you start.");
    EXPECT_CONTAINS(t, "The pump controller needs 40 MB of free disk space.[1]");
    EXPECT_CONTAINS(t, "[1] Measured on version 2.3.");
    EXPECT_CONTAINS(t, "\xC3\x9C" "berpr\xC3\xBC" "fen Sie die Dichtungen \xE2\x80\x94");
    if (tables) {
        EXPECT_CONTAINS(t, "Valve | Pressure\n\nV-101 | 12 bar");
        EXPECT_CONTAINS(t, "- Close valve V-101");
        EXPECT_CONTAINS(t, "- Open the drain");
        EXPECT_CONTAINS(t, "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D"); /* Hebrew, in logical order */
    }
    EXPECT(strstr(t, DOCGEN_HIDDEN) == NULL);
    EXPECT(strstr(t, "....") == NULL); /* no table of contents */
    EXPECT_EQ_INT(d->n_headings, 3);
    if (d->n_headings == 3) {
        EXPECT_STR(d->headings[0].text, "1 Installing");
        EXPECT_EQ_INT(d->headings[0].level, 1);
        EXPECT_STR(d->headings[1].text, "1.1 Disk space");
        EXPECT_EQ_INT(d->headings[1].level, 2);
        EXPECT_STR(d->headings[2].text, "2 Maintenance");
        EXPECT_EQ_INT(d->headings[2].level, 1);
        EXPECT_EQ_INT(d->headings[2].page, pages);
    }
    EXPECT_EQ_INT(d->n_pages, pages);
    EXPECT(d->paged == paged);
    cn_arena a;
    cn_arena_init(&a, (size_t)64 << 20);
    EXPECT_STR(docgen_locator_of(d, "40 MB", &a), "1 Installing \xE2\x80\xBA 1.1 Disk space");
    EXPECT_STR(docgen_locator_of(d, "Dichtungen", &a), "2 Maintenance");
    cn_arena_free(&a);
}

TEST(formats_docx_text_headings_pages_and_locators)
{
    for (int paged = 0; paged <= 1; paged++) {
        char *data;
        size_t n = docgen_docx(&data, paged);
        ingest_doc d;
        cn_err err = {0};
        int rc = ingest_buf("manual.docx", data, n, NULL, &d, &err);
        EXPECT_EQ_INT(rc, CN_OK);
        if (rc == CN_OK) {
            EXPECT_STR(d.kind, "docx");
            expect_story(&d, paged ? 2 : 1, paged, true);
            EXPECT_CONTAINS(all_text(&d), "See the website.");
            ingest_doc_free(&d);
        } else {
            fprintf(stderr, "%s\n", err.msg);
        }
        free(data);
    }
}

TEST(formats_odt_text_headings_pages_and_locators)
{
    for (int paged = 0; paged <= 1; paged++) {
        char *data;
        size_t n = docgen_odt(&data, paged);
        ingest_doc d;
        cn_err err = {0};
        /* content decides: an .odt named .docx is still read as one */
        int rc = ingest_buf(paged ? "manual.odt" : "manual.docx", data, n, NULL, &d, &err);
        EXPECT_EQ_INT(rc, CN_OK);
        if (rc == CN_OK) {
            EXPECT_STR(d.kind, "odt");
            expect_story(&d, paged ? 2 : 1, paged, true);
            ingest_doc_free(&d);
        } else {
            fprintf(stderr, "%s\n", err.msg);
        }
        free(data);
    }
}

TEST(formats_rtf_text_headings_and_code_pages)
{
    ingest_doc d;
    cn_err err = {0};
    /* RTF by content, whatever the name */
    int rc = ingest_buf("manual.doc", docgen_rtf, strlen(docgen_rtf), NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc != CN_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    EXPECT_STR(d.kind, "rtf");
    const char *t = all_text(&d);
    EXPECT_CONTAINS(t, "Valve | Pressure\n\nV-101 | 12 bar");
    EXPECT_CONTAINS(t, "caf\xC3\xA9"); /* \'e9 in cp1252 */
    EXPECT_CONTAINS(t, "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"); /* cp1251 font */
    EXPECT_CONTAINS(t, "\xE6\x97\xA5\xE6\x9C\xAC"); /* \uc2 skips two fallbacks */
    EXPECT_CONTAINS(t, "\xF0\x9F\x98\x80 done");  /* a surrogate pair: U+1F600 */
    EXPECT(strstr(t, "??") == NULL && strstr(t, "89504e47") == NULL);
    expect_story(&d, 2, false, false); /* \page breaks, but no layout recorded */
    ingest_doc_free(&d);
}

TEST(formats_man_sections_macros_and_escapes)
{
    ingest_doc d;
    cn_err err = {0};
    int rc = ingest_buf("pumpctl.8", docgen_man, strlen(docgen_man), NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc != CN_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    EXPECT_STR(d.kind, "man");
    EXPECT_STR(d.title, "PUMPCTL(8)");
    EXPECT(valid_pages(&d));
    const char *t = all_text(&d);
    EXPECT_CONTAINS(t, "pumpctl - control the plant's pumps");
    EXPECT_CONTAINS(t, "pumpctl [-v] valve");
    EXPECT_CONTAINS(t, "-d, --drain\nOpen the drain before stopping.");
    EXPECT_CONTAINS(t, "-p bar\nSet the pressure limit.");
    EXPECT_CONTAINS(t, "Zero on success\xE2\x80\x94 non-zero otherwise.");
    EXPECT_CONTAINS(t, "/etc/pumpctl.conf\n/var/lib/pumpctl");
    EXPECT_CONTAINS(t, "V-101 | 12 bar");
    EXPECT_CONTAINS(t, "systemctl(1)");
    EXPECT(strstr(t, DOCGEN_HIDDEN) == NULL);
    EXPECT_EQ_INT(d.n_headings, 6);
    cn_arena a;
    cn_arena_init(&a, (size_t)64 << 20);
    EXPECT_STR(docgen_locator_of(&d, "non-zero", &a), "OPTIONS \xE2\x80\xBA Exit status");
    EXPECT_STR(docgen_locator_of(&d, "pressure limit", &a), "OPTIONS");
    cn_arena_free(&a);
    ingest_doc_free(&d);

    /* gzip'd, as /usr/share/man ships them */
    uLongf cap = compressBound(strlen(docgen_man)) + 64;
    unsigned char *gz = malloc(cap);
    z_stream s;
    memset(&s, 0, sizeof s);
    deflateInit2(&s, 9, Z_DEFLATED, 16 + 15, 9, Z_DEFAULT_STRATEGY);
    s.next_in = (Bytef *)docgen_man;
    s.avail_in = (uInt)strlen(docgen_man);
    s.next_out = gz;
    s.avail_out = (uInt)cap;
    deflate(&s, Z_FINISH);
    size_t gn = cap - s.avail_out;
    deflateEnd(&s);
    rc = ingest_buf("pumpctl.8.gz", gz, gn, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK) {
        EXPECT_CONTAINS(all_text(&d), "Set the pressure limit.");
        ingest_doc_free(&d);
    }
    rc = ingest_buf("pumpctl.8.gz", gz, gn / 2, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "pumpctl.8.gz: damaged gzip data");
    rc = ingest_buf("archive.tar.gz", gz, gn, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_EUNSUPPORTED);
    free(gz);
    /* a text file named like a man page is still text */
    rc = ingest_buf("notes.1", "just some notes\n", 16, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK) {
        EXPECT_STR(d.kind, "text");
        ingest_doc_free(&d);
    }
}

TEST(formats_pptx_and_odp_slide_by_slide)
{
    for (int odp = 0; odp <= 1; odp++) {
        char *data;
        size_t n = odp ? docgen_odp(&data) : docgen_pptx(&data);
        ingest_doc d;
        cn_err err = {0};
        int rc = ingest_buf(odp ? "talk.odp" : "talk.pptx", data, n, NULL, &d, &err);
        EXPECT_EQ_INT(rc, CN_OK);
        if (rc != CN_OK) {
            fprintf(stderr, "%s\n", err.msg);
            free(data);
            continue;
        }
        EXPECT_STR(d.kind, odp ? "odp" : "pptx");
        EXPECT(valid_pages(&d));
        EXPECT(d.paged);
        EXPECT_EQ_INT(d.n_pages, odp ? 2 : 3);
        /* the title first, then the body, then the notes */
        EXPECT_STR(d.pages[0].text,
                   "Results\n\nQuarterly pump failures fell by half.\n\nMention the new seals.");
        if (!odp) {
            EXPECT_STR(d.pages[1].text, ""); /* an empty slide keeps its number */
            EXPECT_STR(d.pages[2].text, "Site | Failures\n\nLyon | 7");
        } else {
            EXPECT_STR(d.pages[1].text, "Next steps");
        }
        EXPECT(strstr(all_text(&d), DOCGEN_HIDDEN) == NULL);
        EXPECT(d.n_headings >= 1 && strcmp(d.headings[0].text, "Results") == 0);
        ingest_doc_free(&d);
        free(data);
    }
}

TEST(formats_epub_chapters_as_headings)
{
    char *data;
    size_t n = docgen_epub(&data);
    ingest_doc d;
    cn_err err = {0};
    int rc = ingest_buf("manual.epub", data, n, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK) {
        EXPECT_STR(d.kind, "epub");
        EXPECT_STR(d.title, "Plant Safety Manual");
        EXPECT(valid_pages(&d));
        EXPECT(d.n_pages >= 2);
        EXPECT_CONTAINS(all_text(&d), "The pump controller needs 40 MB of free disk space.");
        EXPECT_EQ_INT(d.n_headings, 2);
        cn_arena a;
        cn_arena_init(&a, (size_t)64 << 20);
        EXPECT_STR(docgen_locator_of(&d, "seals", &a), "2 Maintenance");
        EXPECT_STR(docgen_locator_of(&d, "40 MB", &a), "1 Installing");
        cn_arena_free(&a);
        ingest_doc_free(&d);
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    free(data);
}

/* ---- hostile and odd files ------------------------------------------------ */

TEST(formats_truncated_zips_fail_cleanly)
{
    char *data;
    size_t n = docgen_docx(&data, true);
    int ok = 0, failed = 0;
    for (size_t cut = 0; cut < n; cut += 1 + cut / 8) {
        ingest_doc d;
        cn_err err = {0};
        int rc = ingest_buf("cut.docx", data, cut, NULL, &d, &err);
        if (rc == CN_OK) {
            EXPECT(valid_pages(&d));
            ingest_doc_free(&d);
            ok++;
        } else {
            EXPECT_CONTAINS(err.msg, "cut.docx");
            failed++;
        }
    }
    EXPECT(failed > 0);
    free(data);
    (void)ok;
}

TEST(formats_zip_bomb_and_entry_limits)
{
    /* 64 MB of spaces in a paragraph deflate to ~64 KB */
    size_t big = (size_t)64 << 20;
    char *xml = malloc(big + 200);
    strcpy(xml, "<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>");
    size_t at = strlen(xml);
    memset(xml + at, ' ', big);
    strcpy(xml + at + big, "x</w:t></w:r></w:p></w:body></w:document>");
    zipw z;
    zipw_init(&z);
    zipw_add_ex(&z, "word/document.xml", xml, strlen(xml), true, 1000); /* and lies about it */
    char *data;
    size_t n = zipw_finish(&z, &data);
    free(xml);
    EXPECT(n < ((size_t)1 << 20));
    ingest_opts o = {.max_unzipped_bytes = (size_t)16 << 20};
    ingest_doc d;
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_buf("bomb.docx", data, n, &o, &d, &err), CN_ELIMIT);
    EXPECT_CONTAINS(err.msg, "bomb.docx: expands to more than 16 MB");
    free(data);

    zipw_init(&z);
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "f%d", i);
        zipw_add_ex(&z, name, "x", 1, false, 0);
    }
    n = zipw_finish(&z, &data);
    o = (ingest_opts){.max_zip_entries = 100};
    EXPECT_EQ_INT(ingest_buf("many.docx", data, n, &o, &d, &err), CN_ELIMIT);
    EXPECT_CONTAINS(err.msg, "many.docx: a ZIP archive of 300 entries, more than the limit of 100");
    free(data);
}

TEST(formats_xml_entities_and_deep_nesting)
{
    /* billion laughs: MuPDF's parser expands no declared entities */
    const char *laughs =
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
        "<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>&lol3; ok</w:t></w:r></w:p></w:body>"
        "</w:document>";
    zipw z;
    zipw_init(&z);
    zipw_add(&z, "word/document.xml", laughs);
    char *data;
    size_t n = zipw_finish(&z, &data);
    ingest_doc d;
    cn_err err = {0};
    int rc = ingest_buf("laughs.docx", data, n, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK) {
        EXPECT(d.pages[0].len < 100);
        ingest_doc_free(&d);
    }
    free(data);

    /* a million nested content controls, and a million nested ODF sections */
    for (int odf = 0; odf <= 1; odf++) {
        int depth = 1000000;
        const char *open = odf ? "<text:section>" : "<w:sdt><w:sdtContent>";
        const char *close = odf ? "</text:section>" : "</w:sdtContent></w:sdt>";
        cn_buf b;
        cn_buf_init(&b, (size_t)1 << 30);
        cn_buf_printf(&b, odf ? "<office:document-content><office:body><office:text>"
                                "<text:p>top</text:p>"
                              : "<w:document><w:body><w:p><w:r><w:t>top</w:t></w:r></w:p>");
        for (int i = 0; i < depth; i++)
            cn_buf_append(&b, open, strlen(open));
        for (int i = 0; i < depth; i++)
            cn_buf_append(&b, close, strlen(close));
        cn_buf_printf(&b, odf ? "</office:text></office:body></office:document-content>"
                              : "</w:body></w:document>");
        zipw_init(&z);
        if (odf)
            zipw_add_ex(&z, "mimetype", "application/vnd.oasis.opendocument.text", 39, false, 0);
        zipw_add_ex(&z, odf ? "content.xml" : "word/document.xml", b.data, b.len, true, 0);
        cn_buf_free(&b);
        n = zipw_finish(&z, &data);
        rc = ingest_buf(odf ? "deep.odt" : "deep.docx", data, n, NULL, &d, &err);
        EXPECT_EQ_INT(rc, CN_OK);
        if (rc == CN_OK) {
            EXPECT_STR(d.pages[0].text, "top");
            EXPECT_CONTAINS(d.notes, "nested more than 32 deep skipped");
            ingest_doc_free(&d);
        } else {
            fprintf(stderr, "%s\n", err.msg);
        }
        free(data);
    }

    /* an RTF of a million nested groups */
    size_t depth = 1000000;
    char *rtf = malloc(depth * 2 + 64);
    strcpy(rtf, "{\\rtf1 top\\par ");
    size_t k = strlen(rtf);
    memset(rtf + k, '{', depth);
    memset(rtf + k + depth, '}', depth);
    strcpy(rtf + k + 2 * depth, " end}");
    rc = ingest_buf("deep.rtf", rtf, strlen(rtf), NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK) {
        EXPECT_STR(d.pages[0].text, "top\n\nend");
        EXPECT_CONTAINS(d.notes, "groups nested more than 256 deep skipped");
        ingest_doc_free(&d);
    }
    free(rtf);
}

TEST(formats_odd_zips_say_what_they_are)
{
    ingest_doc d;
    cn_err err = {0};
    /* a ZIP that is not OOXML */
    zipw z;
    zipw_init(&z);
    zipw_add(&z, "readme.txt", "hello");
    char *data;
    size_t n = zipw_finish(&z, &data);
    EXPECT_EQ_INT(ingest_buf("x.docx", data, n, NULL, &d, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "x.docx: not a Word or PowerPoint file");
    EXPECT_EQ_INT(ingest_buf("x.zip", data, n, NULL, &d, &err), CN_EUNSUPPORTED);
    EXPECT_CONTAINS(err.msg, "x.zip: unsupported file type (.zip, a ZIP archive)");
    free(data);
    /* a spreadsheet */
    zipw_init(&z);
    zipw_add_ex(&z, "mimetype", "application/vnd.oasis.opendocument.spreadsheet", 46, false, 0);
    zipw_add(&z, "content.xml", "<x/>");
    n = zipw_finish(&z, &data);
    EXPECT_EQ_INT(ingest_buf("x.ods", data, n, NULL, &d, &err), CN_EUNSUPPORTED);
    free(data);
    /* an encrypted OpenDocument file */
    zipw_init(&z);
    zipw_add_ex(&z, "mimetype", "application/vnd.oasis.opendocument.text", 39, false, 0);
    zipw_add(&z, "META-INF/manifest.xml",
             "<manifest:manifest xmlns:manifest=\"m\"><manifest:file-entry manifest:full-path="
             "\"content.xml\"><manifest:encryption-data/></manifest:file-entry></manifest:manifest>");
    zipw_add_ex(&z, "content.xml", "\x01\x02garbage", 9, false, 0);
    n = zipw_finish(&z, &data);
    EXPECT_EQ_INT(ingest_buf("secret.odt", data, n, NULL, &d, &err), CN_EUNSUPPORTED);
    EXPECT_CONTAINS(err.msg, "secret.odt: password protected");
    free(data);
    /* an encrypted Word file is an OLE file holding an EncryptedPackage */
    unsigned char ole[2048] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
    const char u16[] = "E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";
    memcpy(ole + 1200, u16, sizeof u16 - 1);
    EXPECT_EQ_INT(ingest_buf("secret.docx", ole, sizeof ole, NULL, &d, &err), CN_EUNSUPPORTED);
    EXPECT_CONTAINS(err.msg, "secret.docx: password protected");
    memset(ole + 1200, 0, sizeof u16);
    EXPECT_EQ_INT(ingest_buf("old.doc", ole, sizeof ole, NULL, &d, &err), CN_EUNSUPPORTED);
    EXPECT_CONTAINS(err.msg, "an old Microsoft Office file");
    /* a Word file whose document part is not XML at all */
    zipw_init(&z);
    zipw_add(&z, "word/document.xml", "<w:document><w:body><w:p>unclosed");
    n = zipw_finish(&z, &data);
    int rc = ingest_buf("broken.docx", data, n, NULL, &d, &err);
    if (rc == CN_OK) {
        EXPECT(valid_pages(&d));
        ingest_doc_free(&d);
    } else {
        EXPECT_CONTAINS(err.msg, "broken.docx");
    }
    free(data);
    /* a macro-enabled file: the text is read, the macros never; macros only: said so */
    zipw_init(&z);
    zipw_add(&z, "word/document.xml",
             "<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>Quarterly figures</w:t></w:r>"
             "</w:p></w:body></w:document>");
    zipw_add_ex(&z, "word/vbaProject.bin", "\xD0\xCF\x11\xE0macro", 9, false, 0);
    n = zipw_finish(&z, &data);
    EXPECT_EQ_INT(ingest_buf("report.docm", data, n, NULL, &d, &err), CN_OK);
    EXPECT_CONTAINS(d.notes, "macros ignored (never run)");
    EXPECT_STR(d.pages[0].text, "Quarterly figures");
    ingest_doc_free(&d);
    free(data);
    zipw_init(&z);
    zipw_add(&z, "word/document.xml", "<w:document xmlns:w=\"w\"><w:body/></w:document>");
    zipw_add_ex(&z, "word/vbaProject.bin", "\xD0\xCF\x11\xE0macro", 9, false, 0);
    n = zipw_finish(&z, &data);
    EXPECT_EQ_INT(ingest_buf("macros.docm", data, n, NULL, &d, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "macros.docm: no text (a file of macros only");
    free(data);
    /* a presentation without slides */
    zipw_init(&z);
    zipw_add(&z, "ppt/presentation.xml", "<p:presentation xmlns:p=\"p\"/>");
    n = zipw_finish(&z, &data);
    EXPECT_EQ_INT(ingest_buf("empty.pptx", data, n, NULL, &d, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "empty.pptx: a presentation without slides");
    free(data);
}

TEST(formats_rtf_odd_inputs)
{
    ingest_doc d;
    cn_err err = {0};
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"{\\rtf1 unclosed group", "unclosed group"},
        {"{\\rtf1 a}}}}} b}", "a"},                          /* stray closing braces */
        {"{\\rtf1 \\bin5 \x01\x02}\x03{ x}", "x"},           /* binary data skipped whole */
        {"{\\rtf1 \\u65535\\u-1 \\'zz\\'4", "\xEF\xBF\xBF"}, /* odd escapes */
        {"{\\rtf1 \\uc0\\u233 t\\u\\par}", "\xC3\xA9t"},
        {"{\\rtf1\\ansicpg932 \\'93\\'fa\\'96\\'7b}", "\xE6\x97\xA5\xE6\x9C\xAC"}, /* Shift-JIS */
        {"{\\rtf1\\ansicpg99999 \\'e9}", "\xC3\xA9"}, /* an unknown code page: cp1252 */
        {"{\\rtf1 \\verylongcontrolwordthatgoesonandonandonandonandon7 z}", "z"},
        {"{\\rtf1 ends with a backslash\\", "ends with a backslash"}, /* once looped forever */
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(cases); i++) {
        int rc = ingest_buf("odd.rtf", cases[i].in, strlen(cases[i].in), NULL, &d, &err);
        if (rc != CN_OK) {
            test_fail_at(__FILE__, __LINE__, "case %zu: %s", i, err.msg);
            continue;
        }
        EXPECT(valid_pages(&d));
        EXPECT_CONTAINS(all_text(&d), cases[i].want);
        ingest_doc_free(&d);
    }
    EXPECT_EQ_INT(ingest_buf("empty.rtf", "{\\rtf1 {\\fonttbl x}}", 19, NULL, &d, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "empty.rtf: no text");
}

/* ---- through the library ---------------------------------------------------- */

#include "library/library.h"

/* A folder of every format: each is added, and a search cites the heading
** path (the locator) beside the page, in the results and their JSON. */
TEST(formats_library_adds_every_format_with_locators)
{
    char dir[600], home[600], path[700];
    snprintf(dir, sizeof dir, "%s/every-format", test_tmpdir());
    snprintf(home, sizeof home, "%s/h-formats", test_tmpdir());
    mkdir(dir, 0700);
    struct {
        const char *name;
        char *data;
        size_t n;
    } files[7];
    files[0].name = "manual.docx";
    files[0].n = docgen_docx(&files[0].data, true);
    files[1].name = "manual.odt";
    files[1].n = docgen_odt(&files[1].data, false);
    files[2].name = "talk.pptx";
    files[2].n = docgen_pptx(&files[2].data);
    files[3].name = "talk.odp";
    files[3].n = docgen_odp(&files[3].data);
    files[4].name = "manual.epub";
    files[4].n = docgen_epub(&files[4].data);
    files[5].name = "manual.rtf";
    files[5].data = strdup(docgen_rtf);
    files[5].n = strlen(docgen_rtf);
    files[6].name = "pumpctl.8";
    files[6].data = strdup(docgen_man);
    files[6].n = strlen(docgen_man);
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        FILE *f = fopen(path, "wb");
        fwrite(files[i].data, 1, files[i].n, f);
        fclose(f);
        free(files[i].data);
    }
    lib *l;
    cn_err err = {0};
    EXPECT_EQ_INT(lib_open(&l, home, &err), CN_OK);
    const char *paths[] = {dir};
    lib_add_stats st;
    EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
    EXPECT_EQ_INT(st.added, 7);
    EXPECT_EQ_INT(st.failed, 0);
    cn_arena a;
    cn_arena_init(&a, (size_t)16 << 20);
    lib_result res[10];
    lib_search_info info;
    lib_search_opts so = {.k = 10};
    int n = lib_search(l, "free disk space pump controller", &so, &a, res, &info, &err);
    EXPECT(n >= 4);
    int with_path = 0;
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(res[i].path, '/') + 1;
        if (strcmp(base, "manual.docx") == 0 || strcmp(base, "manual.odt") == 0 ||
            strcmp(base, "manual.rtf") == 0) {
            EXPECT_STR(res[i].locator ? res[i].locator : "(null)",
                       "1 Installing \xE2\x80\xBA 1.1 Disk space");
            json_t *j = lib_result_json(&res[i]);
            EXPECT_STR(json_string_value(json_object_get(j, "locator")),
                       "1 Installing \xE2\x80\xBA 1.1 Disk space");
            json_decref(j);
            with_path++;
        }
    }
    EXPECT_EQ_INT(with_path, 3);
    n = lib_search(l, "pressure limit", &so, &a, res, &info, &err);
    EXPECT(n >= 1 && res[0].locator && strcmp(res[0].locator, "OPTIONS") == 0);
    cn_arena_free(&a);
    lib_close(l);
}

TEST(formats_markdown_and_html_headings_are_locators)
{
    const char md[] = "# Pump manual\n\nIntro text.\n\n## Installing\n\nBolt it down.\n\n"
                      "### Disk space\n\nThe controller needs 40 MB.\n\n## Maintenance\n\n"
                      "Check the seals monthly.\n";
    const char html[] = "<html><body><h1>Pump manual</h1><p>Intro text.</p><h2>Installing</h2>"
                        "<p>Bolt it down.</p><h3>Disk space</h3><p>The controller needs 40 MB."
                        "</p><h2>Maintenance</h2><p>Check the seals monthly.</p></body></html>";
    for (int k = 0; k < 2; k++) {
        ingest_doc d;
        cn_err err = {0};
        int rc = k ? ingest_buf("m.html", html, sizeof html - 1, NULL, &d, &err)
                   : ingest_buf("m.md", md, sizeof md - 1, NULL, &d, &err);
        EXPECT_EQ_INT(rc, CN_OK);
        if (rc != CN_OK)
            continue;
        EXPECT(valid_pages(&d));
        EXPECT_EQ_INT(d.n_headings, 4);
        cn_arena a;
        cn_arena_init(&a, (size_t)16 << 20);
        EXPECT_STR(docgen_locator_of(&d, "40 MB", &a),
                   "Pump manual \xE2\x80\xBA Installing \xE2\x80\xBA Disk space");
        EXPECT_STR(docgen_locator_of(&d, "seals", &a), "Pump manual \xE2\x80\xBA Maintenance");
        cn_arena_free(&a);
        ingest_doc_free(&d);
    }
}

TEST(formats_locator_lines_pick_the_heading_in_effect)
{
    const char *loc = "0\t1 Intro\n40\t1 Intro \xE2\x80\xBA 1.1 Scope\n90\t2 Use";
    char out[64];
    ingest_locator_at(loc, 10, 200, out, sizeof out);
    EXPECT_STR(out, "1 Intro");
    ingest_locator_at(loc, 40, 200, out, sizeof out);
    EXPECT_STR(out, "1 Intro \xE2\x80\xBA 1.1 Scope");
    ingest_locator_at(loc, 150, 200, out, sizeof out);
    EXPECT_STR(out, "2 Use");
    /* the whole passage: its start, unless a heading starts in its first quarter */
    ingest_locator_at(loc, -1, 100, out, sizeof out);
    EXPECT_STR(out, "1 Intro");
    ingest_locator_at(loc, -1, 200, out, sizeof out);
    EXPECT_STR(out, "1 Intro \xE2\x80\xBA 1.1 Scope");
    ingest_locator_at("30\t2 Use", -1, 1000, out, sizeof out);
    EXPECT_STR(out, "2 Use");
    ingest_locator_at("300\t2 Use", 10, 1000, out, sizeof out);
    EXPECT_STR(out, "");
    ingest_locator_at("", 10, 1000, out, sizeof out);
    EXPECT_STR(out, "");
}
