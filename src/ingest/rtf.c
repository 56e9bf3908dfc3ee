/*
** rtf.c: Rich Text Format, read by a small careful scanner (no maintained C
** library extracts RTF's text).
**
** RTF is groups {...} of control words (\par, \u8364, \'e9) and text. The
** scanner keeps a stack of group states (skipping, the \uc count, the
** font), so that:
**   - destinations that hold no body text are skipped whole: \fonttbl
**     (read only for each font's \fcharset), \colortbl, \pict, \object,
**     headers and footers, field instructions, \* groups it does not know;
**   - \stylesheet is read for the names of styles ("heading 2") and their
**     \outlinelevel, so paragraphs in those styles become headings;
**   - \info's \title is the document's title;
**   - \uN is a code point (UTF-16 surrogate pairs joined), and the N
**     fallback characters after it (\ucN, default 1) are skipped;
**   - \'hh is a byte in the font's or the document's code page (\ansicpg,
**     \fcharset), decoded through iconv -- double-byte code pages (932,
**     936, 949, 950) included, since their bytes come in pairs;
**   - \bin N skips N bytes of binary data;
**   - table cells are joined by " | " and a row is a paragraph; \page is a
**     page break; footnotes follow their paragraph as "[n] ...".
** Groups nested deeper than RTF_MAX_DEPTH are read as skipped (a file of a
** million nested groups costs nothing but a counter).
*/
#include "ingest/ingest_int.h"

#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RTF_MAX_DEPTH 256
#define RTF_MAX_STYLES 4096
#define RTF_MAX_FONTS 4096

enum { DEST_BODY, DEST_SKIP, DEST_FONTTBL, DEST_STYLE, DEST_INFO, DEST_TITLE, DEST_FOOTNOTE };

typedef struct gstate {
    int dest;
    int uc;   /* fallback characters after \uN */
    int font; /* \fN, -1 none */
} gstate;

typedef struct rtf_style {
    int num;
    int level; /* 1..9, 0 none */
} rtf_style;

typedef struct rtf {
    ingest_doc *d;
    ingest_builder *b;
    const char *name;
    gstate stack[RTF_MAX_DEPTH];
    int depth;     /* entries used in stack */
    long overflow; /* groups open beyond RTF_MAX_DEPTH */
    long too_deep; /* times the depth limit was passed */
    gstate g;
    int skip_chars; /* fallback characters still to skip */
    int doc_cp;     /* \ansicpg */
    int fonts[RTF_MAX_FONTS]; /* code page per font number, 0 unknown */
    int cur_font_def;         /* font being defined in \fonttbl */
    rtf_style styles[RTF_MAX_STYLES];
    int n_styles;
    int style_depth; /* stack depth of the \stylesheet group, 0 none */
    int style_num;   /* style being defined in \stylesheet */
    int style_level; /* its \outlinelevel + 1 */
    cn_buf style_name;
    int par_style, par_level; /* current paragraph's \sN and \outlinelevel + 1 */
    bool in_table;
    int high_surrogate;
    cn_buf text;  /* current paragraph (or row) */
    cn_buf bytes; /* pending \'hh bytes */
    int bytes_cp;
    cn_buf title, notes, note;
    int note_no;
    iconv_t cd;
    int cd_cp;
    long bad_bytes;
} rtf;

/* ---- output ------------------------------------------------------------- */

static cn_buf *sink(rtf *r)
{
    switch (r->g.dest) {
    case DEST_BODY:
        return &r->text;
    case DEST_TITLE:
        return &r->title;
    case DEST_FOOTNOTE:
        return &r->note;
    case DEST_STYLE:
        return &r->style_name;
    default:
        return NULL;
    }
}

static int code_page(rtf *r)
{
    if (r->g.font >= 0 && r->g.font < RTF_MAX_FONTS && r->fonts[r->g.font])
        return r->fonts[r->g.font];
    return r->doc_cp ? r->doc_cp : 1252;
}

/* Decode the pending \'hh bytes into the sink. */
static void flush_bytes(rtf *r)
{
    if (!r->bytes.len)
        return;
    cn_buf *out = sink(r);
    int cp = r->bytes_cp;
    if (out && cp == 65001) {
        cn_buf_append(out, r->bytes.data, r->bytes.len);
    } else if (out) {
        if (r->cd == (iconv_t)-1 || r->cd_cp != cp) {
            if (r->cd != (iconv_t)-1)
                iconv_close(r->cd);
            char from[32];
            snprintf(from, sizeof from, cp == 10000 ? "MACINTOSH" : "CP%d", cp);
            r->cd = iconv_open("UTF-8", from);
            if (r->cd == (iconv_t)-1)
                r->cd = iconv_open("UTF-8", "CP1252");
            r->cd_cp = cp;
        }
        char *in = r->bytes.data;
        size_t inl = r->bytes.len;
        while (inl && r->cd != (iconv_t)-1) {
            char tmp[256], *o = tmp;
            size_t ol = sizeof tmp;
            size_t k = iconv(r->cd, &in, &inl, &o, &ol);
            cn_buf_append(out, tmp, (size_t)(o - tmp));
            if (k == (size_t)-1 && ol == sizeof tmp - (size_t)(o - tmp) && o == tmp) {
                /* an invalid or incomplete sequence: one U+FFFD per byte */
                cn_buf_append(out, "\xEF\xBF\xBD", 3);
                r->bad_bytes++;
                in++;
                inl--;
            }
        }
        iconv(r->cd, NULL, NULL, NULL, NULL);
    }
    r->bytes.len = 0;
}

static void put_cp(rtf *r, int32_t cp)
{
    flush_bytes(r);
    cn_buf *out = sink(r);
    if (out)
        ingest_put_cp(out, cp);
}

static void put_text(rtf *r, const char *s, size_t n)
{
    flush_bytes(r);
    cn_buf *out = sink(r);
    if (out)
        cn_buf_append(out, s, n);
}

static int style_level(rtf *r, int num)
{
    for (int i = 0; i < r->n_styles; i++)
        if (r->styles[i].num == num)
            return r->styles[i].level;
    return 0;
}

static void end_para(rtf *r)
{
    flush_bytes(r);
    ib_flush(r->b, r->par_level ? r->par_level : style_level(r, r->par_style), &r->text,
             &r->notes);
}

/* ---- groups ------------------------------------------------------------- */

static void open_group(rtf *r)
{
    flush_bytes(r);
    if (r->depth >= RTF_MAX_DEPTH || r->overflow) {
        r->too_deep += r->overflow == 0;
        r->overflow++;
        return;
    }
    if (r->g.dest == DEST_STYLE && r->depth == r->style_depth) {
        r->style_num = 0; /* a style entry: \s0 unless it says otherwise */
        r->style_level = 0;
        r->style_name.len = 0;
    }
    r->stack[r->depth++] = r->g;
}

static void close_group(rtf *r)
{
    flush_bytes(r);
    if (r->overflow) {
        r->overflow--;
        return;
    }
    if (r->depth == 0)
        return; /* an unbalanced '}' */
    int dest = r->g.dest;
    if (dest == DEST_FOOTNOTE && r->stack[r->depth - 1].dest != DEST_FOOTNOTE) {
        /* the footnote is over: its mark in the text, its words after the paragraph */
        char mark[32];
        snprintf(mark, sizeof mark, "[%d]", ++r->note_no);
        cn_buf_append(&r->text, mark, strlen(mark));
        if (r->notes.len)
            cn_buf_append(&r->notes, "\n", 1);
        cn_buf_append(&r->notes, mark, strlen(mark));
        cn_buf_append(&r->notes, " ", 1);
        cn_buf_append(&r->notes, r->note.data ? r->note.data : "", r->note.len);
        r->note.len = 0;
    }
    if (dest == DEST_STYLE && r->depth == r->style_depth + 1 && r->style_num >= 0) {
        /* one style definition ends: "heading 2;" names a level */
        const char *nm = r->style_name.data ? r->style_name.data : "";
        size_t n = r->style_name.len;
        while (n && (nm[n - 1] == ';' || nm[n - 1] == ' '))
            n--;
        while (n && *nm == ' ')
            nm++, n--;
        int level = r->style_level;
        if (!level && n == 9 && strncasecmp(nm, "heading ", 8) == 0 && nm[8] >= '1' &&
            nm[8] <= '9')
            level = nm[8] - '0';
        if (r->n_styles < RTF_MAX_STYLES)
            r->styles[r->n_styles++] = (rtf_style){r->style_num, level};
        r->style_num = -1;
        r->style_level = 0;
        r->style_name.len = 0;
    }
    if (r->depth == r->style_depth)
        r->style_depth = 0; /* the stylesheet is over */
    r->g = r->stack[--r->depth];
}

/* ---- control words ------------------------------------------------------ */

static bool word_is(const char *w, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

static bool skipped_dest(const char *w, size_t n)
{
    static const char *const skip[] = {
        "colortbl", "pict", "object", "header", "headerl", "headerr", "headerf", "footer",
        "footerl", "footerr", "footerf", "fldinst", "themedata", "colorschememapping",
        "datastore", "xmlnstbl", "listtable", "listoverridetable", "rsidtbl", "generator",
        "latentstyles", "pgdsctbl", "mmathPr", "bkmkstart", "bkmkend", "ftnsep", "ftnsepc",
        "aftnsep", "aftnsepc", "filetbl", "revtbl", "operator", "author", "company",
        "keywords", "comment", "doccomm", "subject", "category", "manager", "hlinkbase",
        "nonshppict", "shppict", "blipuid", "sp", "shpinst", "atnid", "atnauthor", "annotation",
        "userprops", "xe", "tc", "txe", "private", "passwordhash", "wgrffmtfilter", "docvar",
        "template", "buptim", "creatim", "printim", "revtim", "password"};
    for (size_t i = 0; i < CN_ARRAY_LEN(skip); i++)
        if (word_is(w, n, skip[i]))
            return true;
    return false;
}

static int charset_cp(long cs)
{
    switch (cs) {
    case 0: return 1252;
    case 77: return 10000;
    case 128: return 932;
    case 129: return 949;
    case 134: return 936;
    case 136: return 950;
    case 161: return 1253;
    case 162: return 1254;
    case 163: return 1258;
    case 177: return 1255;
    case 178: return 1256;
    case 186: return 1257;
    case 204: return 1251;
    case 222: return 874;
    case 238: return 1250;
    default: return 0;
    }
}

/* A control word w[0..n) with its parameter. ignorable: it followed \*. */
static void control(rtf *r, const char *w, size_t n, bool has_param, long param, bool ignorable,
                    bool first_in_group)
{
    if (r->skip_chars > 0) {
        r->skip_chars--; /* a control word counts as one fallback character */
        return;
    }
    if (word_is(w, n, "u") && has_param) {
        int32_t cp = (int32_t)(param < 0 ? param + 65536 : param);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            r->high_surrogate = cp;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF && r->high_surrogate) {
            put_cp(r, 0x10000 + ((r->high_surrogate - 0xD800) << 10) + (cp - 0xDC00));
            r->high_surrogate = 0;
        } else {
            r->high_surrogate = 0;
            put_cp(r, cp);
        }
        r->skip_chars = r->g.uc;
        return;
    }
    if (word_is(w, n, "uc") && has_param) {
        r->g.uc = param < 0 ? 0 : param > 16 ? 16 : (int)param;
        return;
    }
    if (r->g.dest == DEST_SKIP)
        return;
    /* destinations */
    if (first_in_group || ignorable) {
        if (word_is(w, n, "fonttbl")) {
            r->g.dest = DEST_FONTTBL;
            return;
        }
        if (word_is(w, n, "stylesheet") && r->g.dest == DEST_BODY && r->depth > 0) {
            r->g.dest = DEST_STYLE;
            r->style_depth = r->depth;
            r->style_num = -1;
            return;
        }
        if (word_is(w, n, "title") && r->g.dest == DEST_INFO) {
            r->g.dest = DEST_TITLE;
            return;
        }
        if (word_is(w, n, "info")) {
            r->g.dest = DEST_INFO; /* only its \title is read */
            return;
        }
        if (r->g.dest == DEST_INFO)
            return;
        if (word_is(w, n, "footnote")) {
            r->g.dest = DEST_FOOTNOTE;
            return;
        }
        if (skipped_dest(w, n) || ignorable) {
            r->g.dest = DEST_SKIP;
            return;
        }
    }
    if (r->g.dest == DEST_INFO)
        return;
    if (r->g.dest == DEST_FONTTBL) {
        if (word_is(w, n, "f") && has_param)
            r->cur_font_def = (int)param;
        else if (word_is(w, n, "fcharset") && has_param && r->cur_font_def >= 0 &&
                 r->cur_font_def < RTF_MAX_FONTS)
            r->fonts[r->cur_font_def] = charset_cp(param);
        else if (word_is(w, n, "cpg") && has_param && r->cur_font_def >= 0 &&
                 r->cur_font_def < RTF_MAX_FONTS)
            r->fonts[r->cur_font_def] = (int)param;
        return;
    }
    if (r->g.dest == DEST_STYLE) {
        if ((word_is(w, n, "s") || word_is(w, n, "cs") || word_is(w, n, "ds") ||
             word_is(w, n, "ts")) && has_param)
            r->style_num = word_is(w, n, "s") ? (int)param : -1;
        else if (word_is(w, n, "outlinelevel") && has_param && param >= 0 && param < 9)
            r->style_level = (int)param + 1;
        return;
    }
    if (word_is(w, n, "ansicpg") && has_param) {
        r->doc_cp = (int)param;
    } else if (word_is(w, n, "f") && has_param) {
        r->g.font = (int)param;
    } else if (word_is(w, n, "par") || word_is(w, n, "sect")) {
        if (r->g.dest == DEST_BODY && r->in_table)
            put_text(r, " ", 1);
        else if (r->g.dest == DEST_BODY)
            end_para(r);
        else
            put_text(r, " ", 1);
    } else if (word_is(w, n, "line")) {
        put_text(r, "\n", 1);
    } else if (word_is(w, n, "tab")) {
        put_text(r, "\t", 1);
    } else if (word_is(w, n, "cell") || word_is(w, n, "nestcell")) {
        put_text(r, " | ", 3);
    } else if (word_is(w, n, "row") || word_is(w, n, "nestrow")) {
        if (r->g.dest == DEST_BODY) {
            /* drop the last cell's " | " */
            while (r->text.len && (r->text.data[r->text.len - 1] == ' ' ||
                                   r->text.data[r->text.len - 1] == '|'))
                r->text.len--;
            end_para(r);
        }
    } else if (word_is(w, n, "intbl")) {
        r->in_table = true;
    } else if (word_is(w, n, "pard")) {
        r->in_table = false;
        r->par_style = 0;
        r->par_level = 0;
    } else if (word_is(w, n, "s") && has_param) {
        r->par_style = (int)param;
    } else if (word_is(w, n, "outlinelevel") && has_param) {
        r->par_level = param >= 0 && param < 9 ? (int)param + 1 : 0;
    } else if (word_is(w, n, "page")) {
        if (r->g.dest == DEST_BODY) {
            end_para(r);
            ib_page(r->b);
        }
    } else if (word_is(w, n, "emdash")) {
        put_cp(r, 0x2014);
    } else if (word_is(w, n, "endash")) {
        put_cp(r, 0x2013);
    } else if (word_is(w, n, "bullet")) {
        put_cp(r, 0x2022);
    } else if (word_is(w, n, "lquote")) {
        put_cp(r, 0x2018);
    } else if (word_is(w, n, "rquote")) {
        put_cp(r, 0x2019);
    } else if (word_is(w, n, "ldblquote")) {
        put_cp(r, 0x201C);
    } else if (word_is(w, n, "rdblquote")) {
        put_cp(r, 0x201D);
    }
}

int ingest_rtf(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err)
{
    rtf *r = calloc(1, sizeof *r);
    if (!r)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    ingest_builder b;
    ib_init(&b, d, name, o->text_page_words, o->max_pages);
    r->d = d;
    r->b = &b;
    r->name = name;
    r->g = (gstate){DEST_BODY, 1, -1};
    r->cur_font_def = -1;
    r->style_num = -1;
    r->cd = (iconv_t)-1;
    size_t cap = (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20;
    cn_buf_init(&r->text, cap);
    cn_buf_init(&r->bytes, cap);
    cn_buf_init(&r->title, 4096);
    cn_buf_init(&r->notes, cap);
    cn_buf_init(&r->note, cap);
    cn_buf_init(&r->style_name, 4096);

    bool first_in_group = false, star = false;
    size_t i = 0;
    while (i < len && b.rc == CN_OK) {
        unsigned char c = data[i];
        if (c == '{') {
            open_group(r);
            first_in_group = true;
            star = false;
            i++;
            continue;
        }
        if (c == '}') {
            close_group(r);
            first_in_group = false;
            star = false;
            i++;
            continue;
        }
        if (r->overflow) { /* inside groups too deep to keep: read as skipped */
            i += c == '\\' ? 2 : 1;
            continue;
        }
        if (c == '\\' && i + 1 < len) {
            unsigned char e = data[i + 1];
            if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
                size_t s = i + 1, k = s;
                while (k < len && k - s < 32 &&
                       ((data[k] >= 'a' && data[k] <= 'z') || (data[k] >= 'A' && data[k] <= 'Z')))
                    k++;
                size_t wn = k - s;
                bool neg = false, has = false;
                long param = 0;
                if (k < len && data[k] == '-')
                    neg = true, k++;
                while (k < len && data[k] >= '0' && data[k] <= '9') {
                    if (param < 100000000)
                        param = param * 10 + (data[k] - '0');
                    has = true;
                    k++;
                }
                if (neg)
                    param = -param;
                if (k < len && data[k] == ' ')
                    k++;
                const char *w = (const char *)data + s;
                if (word_is(w, wn, "bin") && has && param > 0) {
                    i = k + CN_MIN((size_t)param, len - k);
                    continue;
                }
                control(r, w, wn, has, param, star, first_in_group);
                first_in_group = false;
                star = false;
                i = k;
                continue;
            }
            i += 2;
            first_in_group = false;
            if (e == '*') {
                star = true;
                continue;
            }
            star = false;
            if (e == '\'') {
                int v = 0, ok = 0;
                for (int h = 0; h < 2 && i < len; h++, i++) {
                    unsigned char x = data[i];
                    int dv = x >= '0' && x <= '9' ? x - '0'
                             : (x | 32) >= 'a' && (x | 32) <= 'f' ? (x | 32) - 'a' + 10
                                                                  : -1;
                    if (dv < 0)
                        break;
                    v = v * 16 + dv;
                    ok++;
                }
                if (r->skip_chars > 0) {
                    r->skip_chars--;
                } else if (ok == 2 && sink(r)) {
                    int cp = code_page(r);
                    if (r->bytes.len && r->bytes_cp != cp)
                        flush_bytes(r);
                    r->bytes_cp = cp;
                    cn_buf_append(&r->bytes, &(char){(char)v}, 1);
                }
                continue;
            }
            if (r->skip_chars > 0) {
                r->skip_chars--;
                continue;
            }
            if (e == '\\' || e == '{' || e == '}')
                put_text(r, (const char *)&e, 1);
            else if (e == '~')
                put_cp(r, 0xA0);
            else if (e == '_')
                put_cp(r, 0x2011);
            else if (e == '\n' || e == '\r')
                control(r, "par", 3, false, 0, false, false);
            else if (e == '\t')
                put_text(r, "\t", 1);
            /* \- (optional hyphen), \: (index subentry) and others: nothing */
            continue;
        }
        first_in_group = false;
        star = false;
        if (c == '\r' || c == '\n') { /* line breaks in RTF source mean nothing */
            i++;
            continue;
        }
        if (r->skip_chars > 0) {
            r->skip_chars--;
            i++;
            continue;
        }
        if (r->g.dest == DEST_FONTTBL || r->g.dest == DEST_SKIP || r->g.dest == DEST_INFO) {
            i++;
            continue;
        }
        /* a run of plain text */
        size_t k = i;
        while (k < len && data[k] != '\\' && data[k] != '{' && data[k] != '}' && data[k] != '\r' &&
               data[k] != '\n')
            k++;
        if (k == i) { /* a backslash as the file's last byte */
            i++;
            continue;
        }
        if (data[i] >= 0x80) {
            /* 8-bit text outside \'hh: bytes of the code page too */
            for (size_t j = i; j < k; j++) {
                int cp = code_page(r);
                if (r->bytes.len && r->bytes_cp != cp)
                    flush_bytes(r);
                r->bytes_cp = cp;
                cn_buf_append(&r->bytes, (const char *)data + j, 1);
            }
        } else {
            size_t j = i;
            while (j < k && data[j] < 0x80)
                j++;
            put_text(r, (const char *)data + i, j - i);
            k = j;
        }
        i = k;
    }
    flush_bytes(r);
    if (r->text.len)
        end_para(r);
    int rc = ib_finish(&b, err);
    if (rc == CN_OK && r->title.len && ingest_set_title(d, r->title.data, r->title.len) != CN_OK)
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    if (rc == CN_OK && r->overflow == 0 && r->depth > 0)
        ingest_note(d, "%d unclosed group%s (truncated?)", r->depth, r->depth == 1 ? "" : "s");
    if (rc == CN_OK && r->too_deep)
        ingest_note(d, "groups nested more than %d deep skipped (%ld places)", RTF_MAX_DEPTH,
                    r->too_deep);
    if (rc == CN_OK && r->bad_bytes)
        ingest_note(d, "%ld bytes invalid in their code page, replaced", r->bad_bytes);
    if (r->cd != (iconv_t)-1)
        iconv_close(r->cd);
    cn_buf_free(&r->text);
    cn_buf_free(&r->bytes);
    cn_buf_free(&r->title);
    cn_buf_free(&r->notes);
    cn_buf_free(&r->note);
    cn_buf_free(&r->style_name);
    free(r);
    return rc;
}
