/*
** ingest.c: the front door of the module. ingest_file() checks what the path
** is (a regular file, readable, not empty, within the size limit for its
** type), ingest_kind_of() decides the type from the content and the name,
** and the reader for that type (pdf.c, text.c, html.c) fills the document.
** Shared helpers for the readers live here too: UTF-8 decoding and repair,
** cutting text into pages, notes and titles.
*/
#include "ingest/ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

/* ---- small helpers ---------------------------------------------------- */

void ingest_opts_resolve(const ingest_opts *in, ingest_opts *out)
{
    ingest_opts z = {0};
    *out = in ? *in : z;
    if (!out->max_text_bytes)
        out->max_text_bytes = (size_t)INGEST_MAX_TEXT_MB << 20;
    if (!out->max_pdf_bytes)
        out->max_pdf_bytes = (size_t)INGEST_MAX_PDF_MB << 20;
    if (out->max_pages <= 0)
        out->max_pages = INGEST_MAX_PAGES;
    if (!out->max_mupdf_bytes)
        out->max_mupdf_bytes = (size_t)1 << 30;
    if (out->text_page_words <= 0)
        out->text_page_words = INGEST_TEXT_PAGE_WORDS;
    if (!out->max_zip_bytes)
        out->max_zip_bytes = (size_t)INGEST_MAX_ZIP_MB << 20;
    if (!out->max_unzipped_bytes)
        out->max_unzipped_bytes = (size_t)INGEST_MAX_UNZIPPED_MB << 20;
    if (out->max_zip_entries <= 0)
        out->max_zip_entries = INGEST_MAX_ZIP_ENTRIES;
}

void ingest_note(ingest_doc *d, const char *fmt, ...)
{
    size_t used = strlen(d->notes);
    size_t room = sizeof d->notes - used;
    if (used && room > 2) {
        memcpy(d->notes + used, "; ", 3);
        used += 2;
        room -= 2;
    }
    if (room <= 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->notes + used, room, fmt, ap);
    va_end(ap);
    /* vsnprintf may have cut a UTF-8 sequence in two */
    size_t n = strlen(d->notes);
    d->notes[cn_utf8_valid_prefix(d->notes, n)] = 0;
}

const char *ingest_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The extension of a file name, lower-cased into buf ("" if none). */
static const char *extension(const char *path, char *buf, size_t cap)
{
    const char *base = ingest_basename(path);
    const char *dot = strrchr(base, '.');
    buf[0] = 0;
    if (!dot || dot == base || strlen(dot + 1) >= cap)
        return buf;
    size_t i = 0;
    for (const char *p = dot + 1; *p; p++)
        buf[i++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    buf[i] = 0;
    return buf;
}

int ingest_utf8_next(const unsigned char *s, size_t n, int32_t *cp)
{
    size_t len = cn_utf8_valid_prefix((const char *)s, CN_MIN(n, (size_t)4));
    int l = cn_utf8_seq_len(s[0]);
    if (l == 0 || (size_t)l > len) {
        *cp = -1;
        return 1;
    }
    if (l == 1)
        *cp = s[0];
    else if (l == 2)
        *cp = (s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    else if (l == 3)
        *cp = (s[0] & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    else
        *cp = (s[0] & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return l;
}

int ingest_put_cp(cn_buf *b, int32_t cp)
{
    unsigned char u[4];
    int n;
    if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return cn_buf_append(b, u, (size_t)n);
}

bool ingest_is_lower(int32_t cp)
{
    return cp >= 0 && cp <= 0x10FFFF && utf8proc_category(cp) == UTF8PROC_CATEGORY_LL;
}

bool ingest_is_upper(int32_t cp)
{
    if (cp < 0 || cp > 0x10FFFF)
        return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT;
}

/* ---- decoding text files ---------------------------------------------- */

static int put_clean(cn_buf *b, int32_t cp, int *pending_cr)
{
    /* CR LF and lone CR become LF */
    if (cp == '\r') {
        *pending_cr = 1;
        return cn_buf_append(b, "\n", 1);
    }
    if (cp == '\n' && *pending_cr) {
        *pending_cr = 0;
        return CN_OK;
    }
    *pending_cr = 0;
    if (cp == '\t' || cp == '\n' || cp == '\f')
        return cn_buf_append(b, &(char){(char)cp}, 1);
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFEFF)
        return CN_OK; /* control characters and stray BOMs carry no text */
    if (cp == 0x2028 || cp == 0x2029 || cp == 0x85)
        return cn_buf_append(b, "\n", 1);
    return ingest_put_cp(b, cp);
}

int ingest_decode_text(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                       cn_buf *out, cn_err *err)
{
    int cr = 0, rc = CN_OK;
    size_t bad = 0;
    if (len >= 2 &&
        ((data[0] == 0xFF && data[1] == 0xFE) || (data[0] == 0xFE && data[1] == 0xFF))) {
        int le = data[0] == 0xFF;
        size_t i = 2;
        while (i + 1 < len && rc == CN_OK) {
            uint32_t u = le ? (uint32_t)(data[i] | data[i + 1] << 8)
                            : (uint32_t)(data[i] << 8 | data[i + 1]);
            i += 2;
            int32_t cp = (int32_t)u;
            if (u >= 0xD800 && u <= 0xDBFF && i + 1 < len) {
                uint32_t v = le ? (uint32_t)(data[i] | data[i + 1] << 8)
                                : (uint32_t)(data[i] << 8 | data[i + 1]);
                if (v >= 0xDC00 && v <= 0xDFFF) {
                    cp = (int32_t)(0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00));
                    i += 2;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                bad++;
                cp = 0xFFFD;
            }
            rc = put_clean(out, cp, &cr);
        }
        if (i < len)
            bad++; /* an odd trailing byte */
        ingest_note(d, "converted from UTF-16%s", le ? "LE" : "BE");
    } else {
        size_t i = 0;
        if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
            i = 3;
        int in_bad = 0;
        while (i < len && rc == CN_OK) {
            /* fast path: a run of plain ASCII */
            if (data[i] >= 0x20 && data[i] < 0x7F) {
                size_t j = i;
                while (j < len && data[j] >= 0x20 && data[j] < 0x7F)
                    j++;
                rc = cn_buf_append(out, data + i, j - i);
                cr = 0;
                in_bad = 0;
                i = j;
                continue;
            }
            int32_t cp;
            int l = ingest_utf8_next(data + i, len - i, &cp);
            i += (size_t)l;
            if (cp < 0) {
                if (!in_bad) { /* one U+FFFD per run of invalid bytes */
                    bad++;
                    rc = ingest_put_cp(out, 0xFFFD);
                }
                in_bad = 1;
                cr = 0;
                continue;
            }
            in_bad = 0;
            rc = put_clean(out, cp, &cr);
        }
    }
    if (rc != CN_OK)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory decoding the text", name);
    if (bad)
        ingest_note(d, "invalid %s repaired (%zu place%s)",
                    data[0] == 0xFF || data[0] == 0xFE ? "UTF-16" : "UTF-8", bad,
                    bad == 1 ? "" : "s");
    return CN_OK;
}

/* ---- pages ------------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Copy s[0..n) into the arena with blank-line runs reduced to "\n\n",
** trailing spaces of lines dropped, and the whole trimmed. */
static int add_page(ingest_doc *d, cn_buf *pages, const char *s, size_t n, cn_err *err,
                    const char *name)
{
    while (n && is_space(*s))
        s++, n--;
    while (n && is_space(s[n - 1]))
        n--;
    char *t = cn_arena_alloc(&d->arena, n + 1);
    if (!t)
        return cn_fail(err, CN_ENOMEM, "%s: text too large (more than %d MB)", name,
                       INGEST_MAX_TEXT_TOTAL_MB);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\n') {
            /* count the newlines of this run of whitespace */
            size_t j = i, nl = 0;
            while (j < n && is_space(s[j]))
                nl += s[j++] == '\n';
            while (o && (t[o - 1] == ' ' || t[o - 1] == '\t'))
                o--;
            if (nl >= 2) {
                t[o++] = '\n';
                t[o++] = '\n';
                i = j;
            } else {
                t[o++] = '\n';
                i++;
            }
            continue;
        }
        t[o++] = s[i++];
    }
    t[o] = 0;
    ingest_page pg = {.number = 0, .text = t, .len = o};
    if (cn_buf_append(pages, &pg, sizeof pg) != CN_OK)
        return cn_fail(err, CN_ENOMEM, "%s: too many pages", name);
    return CN_OK;
}

int ingest_set_pages(ingest_doc *d, const char *name, const char *text, size_t len, int page_words,
                     cn_err *err)
{
    cn_buf pages;
    cn_buf_init(&pages, (size_t)1 << 30);
    int rc = CN_OK;
    size_t start = 0;
    while (start < len && rc == CN_OK) {
        /* find the end of this page: a form feed, or page_words words */
        size_t i = start, words = 0, last_para = 0, last_line = 0, last_space = 0;
        bool in_word = false;
        for (; i < len && text[i] != '\f'; i++) {
            char c = text[i];
            if (is_space(c)) {
                if (in_word && ++words >= (size_t)page_words)
                    break;
                in_word = false;
                if (c == '\n') {
                    if (i > start && text[i - 1] == '\n')
                        last_para = i;
                    else
                        last_line = i;
                } else {
                    last_space = i;
                }
            } else {
                in_word = true;
            }
        }
        size_t end = i, next = i;
        if (i < len && text[i] == '\f') {
            next = i + 1;
        } else if (i < len) {
            /* too many words: cut at a paragraph break in the second half of
            ** the page, else a line break, else a space */
            size_t half = start + (i - start) / 2;
            size_t cut = last_para > half ? last_para : last_line > half ? last_line : last_space;
            if (cut <= start)
                cut = i;
            end = next = cut;
        }
        rc = add_page(d, &pages, text + start, end - start, err, name);
        start = next;
    }
    if (rc != CN_OK) {
        cn_buf_free(&pages);
        return rc;
    }
    /* drop empty pages (form feeds in a row), keep at least one */
    ingest_page *pg = (ingest_page *)pages.data;
    size_t n = pages.len / sizeof *pg, k = 0;
    for (size_t i = 0; i < n; i++)
        if (pg[i].len)
            pg[k++] = pg[i];
    if (k == 0 && n > 0)
        k = 1;
    d->pages = cn_arena_alloc(&d->arena, (k ? k : 1) * sizeof *d->pages);
    if (!d->pages) {
        cn_buf_free(&pages);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    }
    for (size_t i = 0; i < k; i++) {
        d->pages[i] = pg[i];
        d->pages[i].number = (int)i + 1;
    }
    d->n_pages = (int)k;
    cn_buf_free(&pages);
    return CN_OK;
}

int ingest_set_title(ingest_doc *d, const char *s, size_t n)
{
    while (n && (is_space(*s) || *s == '\f'))
        s++, n--;
    while (n && (is_space(s[n - 1]) || s[n - 1] == '\f'))
        n--;
    if (n > 200) {
        n = 200;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    n = cn_utf8_valid_prefix(s, n);
    char *t = cn_arena_strndup(&d->arena, s, n);
    if (!t)
        return CN_ENOMEM;
    /* one line, single spaces */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (is_space(c) || c == '\f') {
            if (o && t[o - 1] != ' ')
                t[o++] = ' ';
        } else {
            t[o++] = c;
        }
    }
    t[o] = 0;
    d->title = t;
    return CN_OK;
}

/* ---- sniffing --------------------------------------------------------- */

static bool starts_with_ci(const unsigned char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && strncasecmp((const char *)s, lit, l) == 0;
}

/* Does head look like HTML? Skips a BOM, whitespace and comments. */
static bool looks_html(const unsigned char *s, size_t n)
{
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        s += 3, n -= 3;
    for (int k = 0; k < 16; k++) {
        while (n && is_space((char)*s))
            s++, n--;
        if (starts_with_ci(s, n, "<!--")) {
            const unsigned char *e = memmem(s, n, "-->", 3);
            if (!e)
                return false;
            n -= (size_t)(e + 3 - s);
            s = e + 3;
            continue;
        }
        if (starts_with_ci(s, n, "<?xml")) {
            const unsigned char *e = memchr(s, '>', n);
            if (!e)
                return false;
            n -= (size_t)(e + 1 - s);
            s = e + 1;
            continue;
        }
        break;
    }
    return starts_with_ci(s, n, "<!doctype html") || starts_with_ci(s, n, "<html") ||
           starts_with_ci(s, n, "<head") || starts_with_ci(s, n, "<body") ||
           starts_with_ci(s, n, "<meta") || starts_with_ci(s, n, "<title");
}

/* Where %PDF- starts in the first 1024 bytes, or -1 (MuPDF also skips junk
** before the header, as Acrobat does). */
static long pdf_header_at(const unsigned char *s, size_t n)
{
    const unsigned char *p = memmem(s, CN_MIN(n, (size_t)1024), "%PDF-", 5);
    return p ? (long)(p - s) : -1;
}

/* Is head text (not binary)? UTF-16 with a BOM counts as text. */
static bool looks_text(const unsigned char *s, size_t n)
{
    if (n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
        return true;
    size_t ctl = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0)
            return false;
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' &&
            s[i] != 0x1B)
            ctl++;
    }
    /* invalid UTF-8 is repaired, but mostly-invalid bytes are not text */
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = ingest_utf8_next(s + i, n - i, &cp);
        if (cp < 0 && n - i >= 4)
            bad++;
        i += (size_t)l;
    }
    return ctl * 50 <= n + 100 && bad * 10 <= n;
}

const char *ingest_describe(const unsigned char *s, size_t n)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *what;
    } magics[] = {
        {"PK\x03\x04", 4, "a ZIP archive"},
        {"\x89PNG", 4, "a PNG image"},
        {"\xFF\xD8\xFF", 3, "a JPEG image"},
        {"GIF8", 4, "a GIF image"},
        {"%!PS", 4, "PostScript"},
        {"{\\rtf", 5, "RTF"},
        {"\xD0\xCF\x11\xE0", 4, "an old Microsoft Office file (.doc, .xls, .ppt)"},
        {"\x1F\x8B", 2, "gzip-compressed data"},
        {"\x7F"
         "ELF",
         4, "an executable"},
        {"GGUF", 4, "a GGUF model"},
        {"SQLite format 3", 15, "an SQLite database"},
        {"II*\0", 4, "a TIFF image"},
        {"MM\0*", 4, "a TIFF image"},
    };
    if (n == 0)
        return "empty";
    for (size_t i = 0; i < CN_ARRAY_LEN(magics); i++)
        if (n >= magics[i].len && memcmp(s, magics[i].magic, magics[i].len) == 0)
            return magics[i].what;
    if (pdf_header_at(s, n) >= 0)
        return "PDF";
    if (looks_html(s, n))
        return "HTML";
    if (looks_text(s, n))
        return "text";
    return "binary data";
}

/* The mimetype an OpenDocument or EPUB file stores first, uncompressed, or
** "" (ZIP local header: name at 30, data after it, method at 8, size at 18). */
static void zip_mimetype(const unsigned char *s, size_t n, char *out, size_t cap)
{
    out[0] = 0;
    if (n < 38 || memcmp(s + 30, "mimetype", 8) != 0 || s[8] != 0 || s[9] != 0)
        return;
    size_t name_len = (size_t)(s[26] | s[27] << 8), extra = (size_t)(s[28] | s[29] << 8);
    size_t size = (size_t)s[18] | (size_t)s[19] << 8 | (size_t)s[20] << 16 | (size_t)s[21] << 24;
    size_t at = 30 + name_len + extra;
    if (name_len != 8 || size >= cap || at + size > n)
        return;
    memcpy(out, s + at, size);
    out[size] = 0;
}

/* A man page section as extension: "1", "3pm", "8x", "1ssl". */
static bool man_ext(const char *ext)
{
    if (ext[0] < '1' || ext[0] > '9' || strlen(ext) > 6)
        return false;
    for (const char *p = ext + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* Does head read like roff (a man page)? Its first lines are requests,
** comments or macros: .TH, .\" ..., '\" t, .Dd. */
static bool looks_roff(const unsigned char *s, size_t n)
{
    for (int lines = 0; n && lines < 40; lines++) {
        while (n && (*s == '\n' || *s == ' '))
            s++, n--;
        if (!n)
            return false;
        if (starts_with_ci(s, n, ".TH ") || starts_with_ci(s, n, ".Dd") ||
            starts_with_ci(s, n, ".SH "))
            return true;
        if (!(starts_with_ci(s, n, ".\\\"") || starts_with_ci(s, n, "'\\\"") ||
              starts_with_ci(s, n, ".\\#") || starts_with_ci(s, n, ".ds ") ||
              starts_with_ci(s, n, ".de ") || starts_with_ci(s, n, ".if ") ||
              starts_with_ci(s, n, ".nr ") || starts_with_ci(s, n, ".ie ") ||
              starts_with_ci(s, n, ".el ") || starts_with_ci(s, n, ".so ") ||
              starts_with_ci(s, n, "..") || starts_with_ci(s, n, ".\n") ||
              starts_with_ci(s, n, ".rm ") || starts_with_ci(s, n, ".tr ") ||
              starts_with_ci(s, n, ".nh") || starts_with_ci(s, n, ".ad") ||
              starts_with_ci(s, n, ".\t") || (n >= 2 && s[0] == '.' && s[1] == '\n')))
            return false;
        const unsigned char *e = memchr(s, '\n', n);
        if (!e)
            return false;
        n -= (size_t)(e - s);
        s = e;
    }
    return false;
}

bool ingest_known_name(const char *path)
{
    static const char *const known[] = {
        "pdf",  "txt",  "text", "rst",  "org",  "adoc", "asciidoc", "md",  "markdown", "mdown",
        "mkd",  "mkdn", "html", "htm",  "xhtml", "docx", "docm",    "dotx", "dotm",    "pptx",
        "pptm", "ppsx", "potx", "odt",  "ott",  "odp",  "otp",      "epub", "rtf",     "man",
        "png",  "jpg",  "jpeg", "tif",  "tiff", "gif",  "bmp"};
    char ext[16];
    extension(path, ext, sizeof ext);
    for (size_t i = 0; i < CN_ARRAY_LEN(known); i++)
        if (strcmp(ext, known[i]) == 0)
            return true;
    if (man_ext(ext))
        return true;
    const char *base = ingest_basename(path);
    size_t bl = strlen(base);
    if (strcmp(ext, "gz") == 0 && bl > 3) {
        char inner[256], iext[16];
        snprintf(inner, sizeof inner, "%.*s", (int)(bl - 3), base);
        return man_ext(extension(inner, iext, sizeof iext));
    }
    return false;
}

int ingest_kind_of(const char *path, const unsigned char *head, size_t n)
{
    char ext[16];
    extension(path, ext, sizeof ext);
    if (pdf_header_at(head, n) >= 0)
        return INGEST_KIND_PDF;
    if (strcmp(ext, "pdf") == 0)
        return CN_EFORMAT; /* named .pdf, but not a PDF: say so, never guess */
    if ((n >= 4 && (memcmp(head, "\x89PNG", 4) == 0 || memcmp(head, "II*\0", 4) == 0 ||
                    memcmp(head, "MM\0*", 4) == 0 || memcmp(head, "GIF8", 4) == 0)) ||
        (n >= 3 && memcmp(head, "\xFF\xD8\xFF", 3) == 0) ||
        (n >= 2 && memcmp(head, "BM", 2) == 0 && (strcmp(ext, "bmp") == 0)))
        return INGEST_KIND_IMAGE; /* a scan or a photo of a page: OCR reads it */
    if (n >= 5 && memcmp(head, "{\\rtf", 5) == 0)
        return INGEST_KIND_RTF; /* whatever the name says (Word saves RTF as .doc) */
    if (n >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) {
        char mt[128];
        zip_mimetype(head, n, mt, sizeof mt);
        if (strcmp(mt, "application/epub+zip") == 0)
            return INGEST_KIND_EPUB;
        if (strncmp(mt, "application/vnd.oasis.opendocument.", 35) == 0)
            return strncmp(mt + 35, "presentation", 12) == 0 ? INGEST_KIND_ODP : INGEST_KIND_ODT;
        static const struct {
            const char *ext;
            int kind;
        } zips[] = {
            {"docx", INGEST_KIND_DOCX}, {"docm", INGEST_KIND_DOCX}, {"dotx", INGEST_KIND_DOCX},
            {"dotm", INGEST_KIND_DOCX}, {"pptx", INGEST_KIND_PPTX}, {"pptm", INGEST_KIND_PPTX},
            {"ppsx", INGEST_KIND_PPTX}, {"potx", INGEST_KIND_PPTX}, {"odt", INGEST_KIND_ODT},
            {"ott", INGEST_KIND_ODT},   {"odp", INGEST_KIND_ODP},   {"otp", INGEST_KIND_ODP},
            {"epub", INGEST_KIND_EPUB},
        };
        for (size_t i = 0; !mt[0] && i < CN_ARRAY_LEN(zips); i++)
            if (strcmp(ext, zips[i].ext) == 0)
                return zips[i].kind;
        return CN_EUNSUPPORTED; /* a plain ZIP, a spreadsheet, a JAR ... */
    }
    if (n >= 2 && head[0] == 0x1F && head[1] == 0x8B) {
        /* a gzip'd man page: "ls.1.gz" */
        const char *base = ingest_basename(path);
        size_t bl = strlen(base);
        if (bl > 3 && strcmp(base + bl - 3, ".gz") == 0) {
            char inner[256];
            snprintf(inner, sizeof inner, "%.*s", (int)(bl - 3), base);
            char iext[16];
            if (man_ext(extension(inner, iext, sizeof iext)))
                return INGEST_KIND_MAN;
        }
        return CN_EUNSUPPORTED;
    }
    if (!looks_text(head, n))
        return CN_EUNSUPPORTED;
    if (man_ext(ext) || strcmp(ext, "man") == 0 || (!ext[0] && looks_roff(head, n)))
        return looks_roff(head, n) ? INGEST_KIND_MAN : INGEST_KIND_TEXT;
    static const struct {
        const char *ext;
        int kind;
    } exts[] = {
        {"txt", INGEST_KIND_TEXT},       {"text", INGEST_KIND_TEXT},
        {"rst", INGEST_KIND_TEXT},       {"org", INGEST_KIND_TEXT},
        {"adoc", INGEST_KIND_TEXT},      {"asciidoc", INGEST_KIND_TEXT},
        {"md", INGEST_KIND_MARKDOWN},    {"markdown", INGEST_KIND_MARKDOWN},
        {"mdown", INGEST_KIND_MARKDOWN}, {"mkd", INGEST_KIND_MARKDOWN},
        {"mkdn", INGEST_KIND_MARKDOWN},  {"html", INGEST_KIND_HTML},
        {"htm", INGEST_KIND_HTML},       {"xhtml", INGEST_KIND_HTML},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(exts); i++)
        if (strcmp(ext, exts[i].ext) == 0)
            return exts[i].kind;
    if (ext[0])
        return CN_EUNSUPPORTED;
    /* no extension (README, NOTES): text, or HTML when it starts like it */
    return looks_html(head, n) ? INGEST_KIND_HTML : INGEST_KIND_TEXT;
}

/* ---- entry points ----------------------------------------------------- */

static const char *const kind_names[] = {"",    "pdf",  "text", "markdown", "html", "docx", "odt",
                                         "pptx", "odp", "epub", "rtf",      "man",  "image"};

/* An OLE compound file (old Office, or a new one encrypted with a password,
** which Office wraps in OLE around an "EncryptedPackage" stream). */
static bool ole_encrypted(const unsigned char *s, size_t n)
{
    static const char u16[] = "E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";
    return n >= 8 && memcmp(s, "\xD0\xCF\x11\xE0", 4) == 0 && memmem(s, n, u16, sizeof u16 - 1);
}

static int kind_error(const char *name, int kind, const unsigned char *head, size_t n, cn_err *err)
{
    const char *what = ingest_describe(head, n);
    if (kind == CN_EFORMAT)
        return cn_fail(err, CN_EFORMAT, "%s: not a PDF (the content is %s)", name, what);
    char ext[16];
    extension(name, ext, sizeof ext);
    if (ext[0])
        return cn_fail(err, CN_EUNSUPPORTED, "%s: unsupported file type (.%s, %s)", name, ext,
                       what);
    return cn_fail(err, CN_EUNSUPPORTED, "%s: unsupported file type (%s)", name, what);
}

static size_t limit_for(int kind, const ingest_opts *o)
{
    switch (kind) {
    case INGEST_KIND_PDF:
    case INGEST_KIND_IMAGE:
    case INGEST_KIND_RTF: /* RTF holds its pictures as hex: large files are normal */
        return o->max_pdf_bytes;
    case INGEST_KIND_DOCX:
    case INGEST_KIND_ODT:
    case INGEST_KIND_PPTX:
    case INGEST_KIND_ODP:
    case INGEST_KIND_EPUB:
        return o->max_zip_bytes;
    default:
        return o->max_text_bytes;
    }
}

static const char *limit_name(int kind)
{
    switch (kind) {
    case INGEST_KIND_PDF:
        return "PDF";
    case INGEST_KIND_RTF:
        return "RTF";
    case INGEST_KIND_IMAGE:
        return "image";
    case INGEST_KIND_TEXT:
    case INGEST_KIND_MARKDOWN:
    case INGEST_KIND_HTML:
    case INGEST_KIND_MAN:
        return "text";
    default:
        return "office and EPUB";
    }
}

static int too_large(const char *name, int kind, const ingest_opts *o, cn_err *err)
{
    size_t lim = limit_for(kind, o);
    if (lim >= (1u << 20))
        return cn_fail(err, CN_ELIMIT, "%s: larger than %zu MB (the limit for %s files)", name,
                       lim >> 20, limit_name(kind));
    return cn_fail(err, CN_ELIMIT, "%s: larger than %zu bytes (the limit for %s files)", name, lim,
                   limit_name(kind));
}

int ingest_memory(const char *name, const void *data, size_t len, const ingest_opts *opts,
                  ingest_doc *out, cn_err *err)
{
    memset(out, 0, sizeof *out);
    ingest_opts o;
    ingest_opts_resolve(opts, &o);
    if (len == 0)
        return cn_fail(err, CN_EFORMAT, "%s: empty file", name);
    const unsigned char *s = data;
    int kind = ingest_kind_of(name, s, CN_MIN(len, (size_t)4096));
    if (kind < 0 && ole_encrypted(s, len))
        return cn_fail(err, CN_EUNSUPPORTED, "%s: password protected (an encrypted Office file)",
                       name);
    if (kind < 0)
        return kind_error(name, kind, s, CN_MIN(len, (size_t)4096), err);
    if (len > limit_for(kind, &o))
        return too_large(name, kind, &o, err);

    cn_arena_init(&out->arena, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    out->kind = kind_names[kind];
    int rc;
    switch (kind) {
    case INGEST_KIND_PDF:
        rc = ingest_pdf(out, name, s, len, &o, err);
        break;
    case INGEST_KIND_MARKDOWN:
        rc = ingest_markdown(out, name, s, len, &o, err);
        break;
    case INGEST_KIND_HTML:
        rc = ingest_html(out, name, s, len, &o, err);
        break;
    case INGEST_KIND_DOCX:
    case INGEST_KIND_PPTX:
        rc = ingest_office(out, kind, name, s, len, &o, err);
        break;
    case INGEST_KIND_ODT:
    case INGEST_KIND_ODP:
        rc = ingest_odf(out, kind, name, s, len, &o, err);
        break;
    case INGEST_KIND_EPUB:
        rc = ingest_epub(out, name, s, len, &o, err);
        break;
    case INGEST_KIND_RTF:
        rc = ingest_rtf(out, name, s, len, &o, err);
        break;
    case INGEST_KIND_MAN:
        rc = ingest_man(out, name, s, len, &o, err);
        break;
    case INGEST_KIND_IMAGE:
        rc = ingest_image(out, name, s, len, &o, err);
        break;
    default:
        rc = ingest_text(out, name, s, len, &o, err);
        break;
    }
    if (rc == CN_OK && (!out->title || !out->title[0])) {
        const char *base = ingest_basename(name);
        if (ingest_set_title(out, base, strlen(base)) != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    }
    if (rc == CN_OK) {
        /* a text file with nothing but whitespace */
        size_t total = 0;
        for (int i = 0; i < out->n_pages; i++)
            total += out->pages[i].len;
        if (total == 0 && out->n_scanned == 0 && kind != INGEST_KIND_PDF &&
            kind != INGEST_KIND_EPUB)
            rc = cn_fail(err, CN_EFORMAT, "%s: no text (only whitespace%s)", name,
                         kind == INGEST_KIND_TEXT || kind == INGEST_KIND_MARKDOWN
                             ? ""
                             : ", markup or pictures");
    }
    if (rc != CN_OK) {
        cn_arena_free(&out->arena);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int ingest_file_opts(const char *path, const ingest_opts *opts, ingest_doc *out, cn_err *err)
{
    memset(out, 0, sizeof *out);
    ingest_opts o;
    ingest_opts_resolve(opts, &o);
    /* O_NONBLOCK so that opening a FIFO does not wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        if (e == ENOENT)
            return cn_fail(err, CN_ENOTFOUND, "%s: no such file", path);
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            return cn_fail(err, CN_EINVAL, "%s: not a regular file", path);
        return cn_fail(err, CN_EIO, "%s: cannot read: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cn_fail(err, CN_EIO, "%s: cannot read: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cn_fail(err, CN_EINVAL, "%s: not a regular file%s", path,
                       S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    if (st.st_size == 0) {
        close(fd);
        return cn_fail(err, CN_EFORMAT, "%s: empty file", path);
    }
    /* the head decides the type, and the type the size limit */
    unsigned char head[4096];
    ssize_t hn = pread(fd, head, sizeof head, 0);
    if (hn < 0) {
        int e = errno;
        close(fd);
        return cn_fail(err, CN_EIO, "%s: cannot read: %s", path, strerror(e));
    }
    int kind = ingest_kind_of(path, head, (size_t)hn);
    bool ole = hn >= 4 && memcmp(head, "\xD0\xCF\x11\xE0", 4) == 0;
    if (kind < 0 && !ole) {
        close(fd);
        return kind_error(path, kind, head, (size_t)hn, err);
    }
    /* an OLE file is read whole to tell an encrypted .docx from an old .doc */
    if ((uint64_t)st.st_size > (ole ? o.max_zip_bytes : limit_for(kind, &o))) {
        close(fd);
        return too_large(path, kind, &o, err);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return cn_fail(err, CN_EIO, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0)
            break; /* the file shrank while we read it: take what is there */
        got += (size_t)r;
    }
    close(fd);
    int rc = ingest_memory(path, buf, got, &o, out, err);
    free(buf);
    return rc;
}

int ingest_file(const char *path, ingest_doc *out, cn_err *err)
{
    return ingest_file_opts(path, NULL, out, err);
}

void ingest_doc_free(ingest_doc *d)
{
    if (!d)
        return;
    cn_arena_free(&d->arena);
    memset(d, 0, sizeof *d);
}
