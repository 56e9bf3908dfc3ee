/*
** docgen.h: small documents of every structured format, built in memory for
** the tests (and by tools/mkdocs.c for the fuzzers' seeds and the ingest
** benchmark). Each holds the same story: a title, "1 Installing" with
** "1.1 Disk space" under it (a footnote, a list, a table), then on the next
** page "2 Maintenance" with German, Japanese and Hebrew text -- and things
** that must NOT come out (a header, a tracked deletion, a field code),
** spelled DOCGEN_HIDDEN so a test can check none leaked.
*/
#ifndef CN_TEST_DOCGEN_H
#define CN_TEST_DOCGEN_H

#include "ingest/ingest.h"
#include "zipw.h"

#include <stdio.h>

#define DOCGEN_HIDDEN "LEAKEDTEXT"

static const char docgen_w_ns[] =
    "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\" "
    "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"";

/* A Word file; paged: with <w:lastRenderedPageBreak/> before "2 Maintenance". */
static inline size_t docgen_docx(char **out, bool paged)
{
    zipw z;
    zipw_init(&z);
    zipw_add(&z, "[Content_Types].xml",
             "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/"
             "2006/content-types\"><Override PartName=\"/word/document.xml\" ContentType=\"application/"
             "vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>");
    char styles[2048];
    snprintf(styles, sizeof styles,
             "<?xml version=\"1.0\"?><w:styles %s>"
             "<w:style w:type=\"paragraph\" w:styleId=\"Title\"><w:name w:val=\"Title\"/></w:style>"
             "<w:style w:type=\"paragraph\" w:styleId=\"Heading1\"><w:name w:val=\"heading 1\"/>"
             "</w:style>"
             "<w:style w:type=\"paragraph\" w:styleId=\"berschrift2\"><w:name w:val=\"Titre 2\"/>"
             "<w:basedOn w:val=\"Normal\"/><w:pPr><w:outlineLvl w:val=\"1\"/></w:pPr></w:style>"
             "<w:style w:type=\"paragraph\" w:styleId=\"Loop\"><w:basedOn w:val=\"Loop\"/>"
             "</w:style></w:styles>",
             docgen_w_ns);
    zipw_add(&z, "word/styles.xml", styles);
    char notes[1024];
    snprintf(notes, sizeof notes,
             "<?xml version=\"1.0\"?><w:footnotes %s>"
             "<w:footnote w:type=\"separator\" w:id=\"-1\"><w:p><w:r><w:separator/></w:r></w:p>"
             "</w:footnote><w:footnote w:id=\"1\"><w:p><w:r><w:t>Measured on version 2.3.</w:t>"
             "</w:r></w:p></w:footnote></w:footnotes>",
             docgen_w_ns);
    zipw_add(&z, "word/footnotes.xml", notes);
    zipw_add(&z, "word/header1.xml",
             "<w:hdr xmlns:w=\"x\"><w:p><w:r><w:t>" DOCGEN_HIDDEN " header</w:t></w:r></w:p></w:hdr>");
    char doc[8192];
    snprintf(
        doc, sizeof doc,
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document %s><w:body>"
        "<w:p><w:pPr><w:pStyle w:val=\"Title\"/></w:pPr><w:r><w:t>Plant Safety Manual</w:t></w:r></w:p>"
        "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>1 Installing</w:t></w:r></w:p>"
        "<w:p><w:r><w:t xml:space=\"preserve\">Read this before you </w:t></w:r><w:r><w:t>start.</w:t></w:r>"
        "<w:del><w:r><w:delText>" DOCGEN_HIDDEN " deleted</w:delText></w:r></w:del></w:p>"
        "<w:p><w:pPr><w:pStyle w:val=\"berschrift2\"/></w:pPr><w:r><w:t>1.1 Disk space</w:t></w:r></w:p>"
        "<w:p><w:r><w:t>The pump controller needs 40 MB of free disk space.</w:t></w:r>"
        "<w:r><w:footnoteReference w:id=\"1\"/></w:r></w:p>"
        "<w:p><w:pPr><w:numPr><w:ilvl w:val=\"0\"/><w:numId w:val=\"1\"/></w:numPr></w:pPr>"
        "<w:r><w:t>Close valve V-101</w:t></w:r></w:p>"
        "<w:p><w:pPr><w:numPr><w:ilvl w:val=\"0\"/><w:numId w:val=\"1\"/></w:numPr></w:pPr>"
        "<w:r><w:t>Open the</w:t><w:tab/><w:t>drain</w:t></w:r></w:p>"
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Valve</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>"
        "Pressure</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:p><w:r><w:t>V-101</w:t></w:r>"
        "</w:p></w:tc><w:tc><w:p><w:r><w:t>12 bar</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        "<w:p><w:r><w:fldChar w:fldCharType=\"begin\"/></w:r><w:r><w:instrText>HYPERLINK "
        "\"" DOCGEN_HIDDEN "\"</w:instrText></w:r><w:r><w:t>See the website.</w:t></w:r></w:p>"
        "<w:p><w:pPr><w:pStyle w:val=\"Loop\"/></w:pPr><w:r>%s<w:t>x</w:t></w:r></w:p>"
        "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>2 Maintenance</w:t></w:r></w:p>"
        "<w:p><w:r><w:t>\xC3\x9C" "berpr\xC3\xBC" "fen Sie die Dichtungen \xE2\x80\x94 "
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87\xE6\x9B\xB8</w:t></w:r></w:p>"
        "<w:p><w:r><w:t>\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\xD7\x95\xD7\x9C\xD7\x9D</w:t>"
        "</w:r></w:p>"
        "<w:sectPr/></w:body></w:document>",
        docgen_w_ns, paged ? "<w:lastRenderedPageBreak/>" : "");
    zipw_add(&z, "word/document.xml", doc);
    zipw_add(&z, "docProps/core.xml",
             "<?xml version=\"1.0\"?><cp:coreProperties xmlns:cp=\"c\" xmlns:dc=\"d\">"
             "<dc:title>Plant Safety Manual</dc:title></cp:coreProperties>");
    return zipw_finish(&z, out);
}

/* An OpenDocument text; paged: with a soft page break before "2 Maintenance". */
static inline size_t docgen_odt(char **out, bool paged)
{
    zipw z;
    zipw_init(&z);
    zipw_add_ex(&z, "mimetype", "application/vnd.oasis.opendocument.text", 39, false, 0);
    zipw_add(&z, "META-INF/manifest.xml",
             "<manifest:manifest xmlns:manifest=\"m\"><manifest:file-entry "
             "manifest:full-path=\"content.xml\"/></manifest:manifest>");
    char doc[8192];
    snprintf(
        doc, sizeof doc,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content "
        "xmlns:office=\"o\" xmlns:text=\"t\" xmlns:table=\"tb\"><office:body><office:text>"
        "<text:tracked-changes><text:changed-region><text:deletion><text:p>" DOCGEN_HIDDEN
        "</text:p></text:deletion></text:changed-region></text:tracked-changes>"
        "<text:table-of-content><text:index-body><text:p>1 Installing ..... 1</text:p>"
        "</text:index-body></text:table-of-content>"
        "<text:h text:outline-level=\"1\">1 Installing</text:h>"
        "<text:p>Read this before you<text:s/>start.<office:annotation><text:p>" DOCGEN_HIDDEN
        "</text:p></office:annotation></text:p>"
        "<text:h text:outline-level=\"2\">1.1 Disk space</text:h>"
        "<text:p>The pump controller needs 40 MB of free disk space.<text:note><text:note-citation>"
        "1</text:note-citation><text:note-body><text:p>Measured on version 2.3.</text:p>"
        "</text:note-body></text:note></text:p>"
        "<text:list><text:list-item><text:p>Close valve V-101</text:p></text:list-item>"
        "<text:list-item><text:p>Open the<text:tab/>drain</text:p></text:list-item></text:list>"
        "<table:table><table:table-row><table:table-cell><text:p>Valve</text:p></table:table-cell>"
        "<table:table-cell><text:p>Pressure</text:p></table:table-cell></table:table-row>"
        "<table:table-row><table:table-cell><text:p>V-101</text:p></table:table-cell>"
        "<table:table-cell><text:p>12 bar</text:p></table:table-cell></table:table-row>"
        "</table:table>%s"
        "<text:h text:outline-level=\"1\">2 Maintenance</text:h>"
        "<text:p>\xC3\x9C" "berpr\xC3\xBC" "fen Sie die Dichtungen \xE2\x80\x94 "
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87\xE6\x9B\xB8</text:p>"
        "<text:p>\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\xD7\x95\xD7\x9C\xD7\x9D</text:p>"
        "</office:text></office:body></office:document-content>",
        paged ? "<text:soft-page-break/>" : "");
    zipw_add(&z, "content.xml", doc);
    zipw_add(&z, "meta.xml",
             "<office:document-meta xmlns:office=\"o\" xmlns:dc=\"d\"><office:meta>"
             "<dc:title>Plant Safety Manual</dc:title></office:meta></office:document-meta>");
    return zipw_finish(&z, out);
}

/* A PowerPoint file of three slides (the second empty), with notes. */
static inline size_t docgen_pptx(char **out)
{
    zipw z;
    zipw_init(&z);
    zipw_add(&z, "ppt/presentation.xml",
             "<p:presentation xmlns:p=\"p\" xmlns:r=\"r\"><p:sldIdLst>"
             "<p:sldId id=\"256\" r:id=\"rId3\"/><p:sldId id=\"257\" r:id=\"rId2\"/>"
             "<p:sldId id=\"258\" r:id=\"rId4\"/></p:sldIdLst></p:presentation>");
    zipw_add(&z, "ppt/_rels/presentation.xml.rels",
             "<Relationships xmlns=\"x\"><Relationship Id=\"rId2\" Type=\"t/slide\" "
             "Target=\"slides/slide2.xml\"/><Relationship Id=\"rId3\" Type=\"t/slide\" "
             "Target=\"/ppt/slides/slide1.xml\"/><Relationship Id=\"rId4\" Type=\"t/slide\" "
             "Target=\"slides/../slides/slide3.xml\"/></Relationships>");
    zipw_add(&z, "ppt/slides/slide1.xml",
             "<p:sld xmlns:p=\"p\" xmlns:a=\"a\"><p:cSld><p:spTree>"
             "<p:sp><p:nvSpPr><p:nvPr><p:ph type=\"body\"/></p:nvPr></p:nvSpPr><p:txBody>"
             "<a:p><a:r><a:t>Quarterly pump failures fell by half.</a:t></a:r></a:p></p:txBody></p:sp>"
             "<p:sp><p:nvSpPr><p:nvPr><p:ph type=\"title\"/></p:nvPr></p:nvSpPr><p:txBody>"
             "<a:p><a:r><a:t>Results</a:t></a:r></a:p></p:txBody></p:sp>"
             "<p:sp><p:nvSpPr><p:nvPr><p:ph type=\"sldNum\"/></p:nvPr></p:nvSpPr><p:txBody>"
             "<a:p><a:r><a:t>" DOCGEN_HIDDEN "</a:t></a:r></a:p></p:txBody></p:sp>"
             "</p:spTree></p:cSld></p:sld>");
    zipw_add(&z, "ppt/slides/_rels/slide1.xml.rels",
             "<Relationships xmlns=\"x\"><Relationship Id=\"rId1\" Type=\"http://x/notesSlide\" "
             "Target=\"../notesSlides/notesSlide1.xml\"/></Relationships>");
    zipw_add(&z, "ppt/notesSlides/notesSlide1.xml",
             "<p:notes xmlns:p=\"p\" xmlns:a=\"a\"><p:cSld><p:spTree><p:sp><p:nvSpPr><p:nvPr>"
             "<p:ph type=\"body\"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>Mention the new "
             "seals.</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>");
    zipw_add(&z, "ppt/slides/slide2.xml",
             "<p:sld xmlns:p=\"p\"><p:cSld><p:spTree/></p:cSld></p:sld>");
    zipw_add(&z, "ppt/slides/slide3.xml",
             "<p:sld xmlns:p=\"p\" xmlns:a=\"a\"><p:cSld><p:spTree><p:graphicFrame><a:graphic>"
             "<a:graphicData><a:tbl><a:tr><a:tc><a:txBody><a:p><a:r><a:t>Site</a:t></a:r></a:p>"
             "</a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>Failures</a:t></a:r></a:p>"
             "</a:txBody></a:tc></a:tr><a:tr><a:tc><a:txBody><a:p><a:r><a:t>Lyon</a:t></a:r>"
             "</a:p></a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>7</a:t></a:r></a:p>"
             "</a:txBody></a:tc></a:tr></a:tbl></a:graphicData></a:graphic></p:graphicFrame>"
             "</p:spTree></p:cSld></p:sld>");
    return zipw_finish(&z, out);
}

/* An OpenDocument presentation of two slides, with notes. */
static inline size_t docgen_odp(char **out)
{
    zipw z;
    zipw_init(&z);
    zipw_add_ex(&z, "mimetype", "application/vnd.oasis.opendocument.presentation", 47, false, 0);
    zipw_add(&z, "content.xml",
             "<office:document-content xmlns:office=\"o\" xmlns:draw=\"d\" xmlns:text=\"t\" "
             "xmlns:presentation=\"p\"><office:body><office:presentation>"
             "<draw:page><draw:frame presentation:class=\"outline\"><draw:text-box><text:p>"
             "Quarterly pump failures fell by half.</text:p></draw:text-box></draw:frame>"
             "<draw:frame presentation:class=\"title\"><draw:text-box><text:p>Results</text:p>"
             "</draw:text-box></draw:frame><draw:frame presentation:class=\"page-number\">"
             "<draw:text-box><text:p>" DOCGEN_HIDDEN "</text:p></draw:text-box></draw:frame>"
             "<presentation:notes><draw:frame presentation:class=\"notes\"><draw:text-box>"
             "<text:p>Mention the new seals.</text:p></draw:text-box></draw:frame>"
             "</presentation:notes></draw:page>"
             "<draw:page><draw:frame presentation:class=\"title\"><draw:text-box><text:p>Next "
             "steps</text:p></draw:text-box></draw:frame></draw:page>"
             "</office:presentation></office:body></office:document-content>");
    return zipw_finish(&z, out);
}

/* An EPUB 2 of two chapters with an NCX table of contents. */
static inline size_t docgen_epub(char **out)
{
    zipw z;
    zipw_init(&z);
    zipw_add_ex(&z, "mimetype", "application/epub+zip", 20, false, 0);
    zipw_add(&z, "META-INF/container.xml",
             "<?xml version=\"1.0\"?><container version=\"1.0\" xmlns=\"urn:oasis:names:tc:"
             "opendocument:xmlns:container\"><rootfiles><rootfile full-path=\"OEBPS/content.opf\" "
             "media-type=\"application/oebps-package+xml\"/></rootfiles></container>");
    zipw_add(&z, "OEBPS/content.opf",
             "<?xml version=\"1.0\"?><package xmlns=\"http://www.idpf.org/2007/opf\" version=\"2.0\" "
             "unique-identifier=\"id\"><metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\">"
             "<dc:title>Plant Safety Manual</dc:title><dc:identifier id=\"id\">x</dc:identifier>"
             "</metadata><manifest><item id=\"c1\" href=\"c1.xhtml\" media-type=\"application/"
             "xhtml+xml\"/><item id=\"c2\" href=\"c2.xhtml\" media-type=\"application/xhtml+xml\"/>"
             "<item id=\"ncx\" href=\"toc.ncx\" media-type=\"application/x-dtbncx+xml\"/>"
             "</manifest><spine toc=\"ncx\"><itemref idref=\"c1\"/><itemref idref=\"c2\"/></spine>"
             "</package>");
    zipw_add(&z, "OEBPS/toc.ncx",
             "<?xml version=\"1.0\"?><ncx xmlns=\"http://www.daisy.org/z3986/2005/ncx/\" "
             "version=\"2005-1\"><navMap><navPoint id=\"n1\"><navLabel><text>1 Installing</text>"
             "</navLabel><content src=\"c1.xhtml\"/></navPoint><navPoint id=\"n2\"><navLabel>"
             "<text>2 Maintenance</text></navLabel><content src=\"c2.xhtml\"/></navPoint></navMap>"
             "</ncx>");
    zipw_add(&z, "OEBPS/c1.xhtml",
             "<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>c1"
             "</title></head><body><h1>1 Installing</h1><p>The pump controller needs 40 MB of "
             "free disk space.</p></body></html>");
    zipw_add(&z, "OEBPS/c2.xhtml",
             "<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>c2"
             "</title></head><body><h1>2 Maintenance</h1><p>Check the seals every month.</p>"
             "</body></html>");
    return zipw_finish(&z, out);
}

/* RTF with a style sheet naming heading styles, a table, \u escapes with
** fallbacks, \'hh in code page 1252, a footnote, and groups to skip. */
static const char docgen_rtf[] =
    "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss\\fcharset0 Arial;}"
    "{\\f1\\fcharset204 Times Cyr;}}"
    "{\\colortbl;\\red255\\green0\\blue0;}"
    "{\\stylesheet{\\s0 Normal;}{\\s1\\outlinelevel0 heading 1;}{\\s2 heading 2;}}"
    "{\\info{\\title Plant Safety Manual}{\\author " DOCGEN_HIDDEN "}}"
    "{\\header " DOCGEN_HIDDEN " header\\par}"
    "\\pard\\s1 1 Installing\\par"
    "\\pard Read this before you start.\\par"
    "\\pard\\s2 1.1 Disk space\\par"
    "\\pard The pump controller needs 40 MB of free disk space."
    "{\\footnote Measured on version 2.3.}\\par"
    "{\\*\\unknowndest " DOCGEN_HIDDEN "}{\\pict\\pngblip 89504e47" DOCGEN_HIDDEN "}"
    "\\trowd\\cellx1000\\cellx2000\\pard\\intbl Valve\\cell Pressure\\cell\\row"
    "\\trowd\\cellx1000\\cellx2000\\pard\\intbl V-101\\cell 12 bar\\cell\\row"
    "\\pard\\page\\pard\\s1 2 Maintenance\\par"
    "\\pard \\u220?berpr\\'fcfen Sie die Dichtungen \\emdash  caf\\'e9 "
    "{\\f1 \\'cf\\'f0\\'e8\\'e2\\'e5\\'f2}"
    "\\uc2\\u26085??\\u26412??\\par"
    "\\pard\\uc1 \\u-10179?\\u-8704? done\\par}";

/* A man page with the usual macros and escapes. */
static const char docgen_man[] =
    ".\\\" a comment " DOCGEN_HIDDEN "\n"
    ".TH PUMPCTL 8 \"2026-12-01\" \"pumpctl 2.3\" \"System Manager's Manual\"\n"
    ".de XX\n" DOCGEN_HIDDEN " macro body\n..\n"
    ".SH NAME\npumpctl \\- control the plant\\(aqs \\s-1pumps\\s0\n"
    ".SH SYNOPSIS\n.B pumpctl\n[\\fB\\-v\\fR]\n.I valve\n"
    ".SH OPTIONS\n.TP\n.BR \\-d \", \" \\-\\-drain\nOpen the drain before\nstopping.\n"
    ".TP\n\\fB\\-p\\fR \\fIbar\\fR\nSet the pressure limit.\n"
    ".SS Exit status\nZero on success\\(em non-zero otherwise.\n"
    ".SH FILES\n.nf\n/etc/pumpctl.conf\n/var/lib/pumpctl\n.fi\n"
    ".TS\ntab(\\t);\nl l.\nValve\tPressure\nV-101\t12 bar\n.TE\n"
    ".SH SEE ALSO\n.BR systemctl (1)\n";

/* The heading path cited for needle: in the first passage holding it, the
** path in effect where it stands, with small passages and with large ones
** (both must agree). Static storage. */
static inline const char *docgen_locator_of(const ingest_doc *d, const char *needle, cn_arena *a)
{
    static char out[2][512];
    for (int big = 0; big <= 1; big++) {
        ingest_passage *ps;
        chunk_opts co = {.max_tokens = big ? 256 : 12, .overlap_pct = CHUNK_NO_OVERLAP};
        cn_err err = {0};
        int n = chunk_split(a, d, &co, &ps, &err);
        snprintf(out[big], sizeof out[big], "(not found)");
        for (int i = 0; i < n; i++) {
            const char *at = strstr(ps[i].text, needle);
            if (at) {
                ingest_locator_at(ps[i].locator, at - ps[i].text, ps[i].len, out[big], 512);
                break;
            }
        }
    }
    if (strcmp(out[0], out[1]) != 0)
        return "(small and large passages disagree)";
    return out[0];
}

#endif
