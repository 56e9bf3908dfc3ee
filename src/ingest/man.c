/*
** man.c: manual pages (roff with the man macros, and the common mdoc ones),
** plain or gzip-compressed as /usr/share/man ships them.
**
** Not a roff interpreter: it knows what the macros of man(7) mean for the
** text and nothing of layout. .SH and .SS (mdoc .Sh, .Ss) are headings of
** level 1 and 2, so a passage cites "OPTIONS › Exit status"; .TH gives the
** title "ls(1)"; .PP, .TP, .IP and blank lines end paragraphs (a .TP's tag
** line starts the next one); .B, .I, .BR ... keep their words (the
** alternating ones without spaces between, as roff joins them); .nf/.fi and
** .EX/.EE keep lines; tbl tables (.TS/.TE) become rows of " | "-joined
** cells; macro definitions, ignored blocks, conditionals and number
** registers are left out. Escapes: fonts and sizes vanish, \- \(em \(bu
** \[u00E9] \e \& \c and the usual named glyphs become their characters.
*/
#include "ingest/ingest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ---- gzip --------------------------------------------------------------- */

/* Inflate a gzip file into out, at most max bytes. */
static int gunzip(const char *name, const unsigned char *data, size_t len, size_t max,
                  cn_buf *out, cn_err *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)CN_MIN(len, (size_t)UINT32_MAX);
    unsigned char chunk[65536];
    int zr = Z_OK, rc = CN_OK;
    while (zr != Z_STREAM_END) {
        zs.next_out = chunk;
        zs.avail_out = sizeof chunk;
        zr = inflate(&zs, Z_NO_FLUSH);
        size_t got = sizeof chunk - zs.avail_out;
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged gzip data (%s)", name,
                         zs.msg ? zs.msg : zr == Z_BUF_ERROR ? "truncated" : "bad data");
            break;
        }
        if (got > max - out->len) {
            rc = cn_fail(err, CN_ELIMIT, "%s: expands to more than %zu MB (the limit for text files)",
                         name, max >> 20);
            break;
        }
        if (cn_buf_append(out, chunk, got) != CN_OK) {
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
            break;
        }
        if (zr == Z_OK && got == 0 && zs.avail_in == 0) {
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged gzip data (truncated)", name);
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

/* ---- escapes ------------------------------------------------------------ */

static const struct {
    const char *name;
    const char *utf8;
} glyphs[] = {
    {"em", "\xE2\x80\x94"}, {"en", "\xE2\x80\x93"}, {"hy", "-"},   {"bu", "\xE2\x80\xA2"},
    {"aq", "'"},            {"dq", "\""},           {"lq", "\xE2\x80\x9C"},
    {"rq", "\xE2\x80\x9D"}, {"oq", "\xE2\x80\x98"}, {"cq", "\xE2\x80\x99"},
    {"co", "\xC2\xA9"},     {"rg", "\xC2\xAE"},     {"tm", "\xE2\x84\xA2"},
    {"mu", "\xC3\x97"},     {"di", "\xC3\xB7"},     {"+-", "\xC2\xB1"},
    {"<=", "\xE2\x89\xA4"}, {">=", "\xE2\x89\xA5"}, {"!=", "\xE2\x89\xA0"},
    {"->", "\xE2\x86\x92"}, {"<-", "\xE2\x86\x90"}, {"de", "\xC2\xB0"},
    {"ti", "~"},            {"ha", "^"},            {"rs", "\\"},
    {"ga", "`"},            {"aa", "\xC2\xB4"},     {"sl", "/"},
    {"ba", "|"},            {"or", "|"},            {"lh", "\xE2\x98\x9C"},
    {"rh", "\xE2\x98\x9E"}, {"fm", "\xE2\x80\xB2"}, {"sc", "\xC2\xA7"},
    {"R", "\xC2\xAE"},      {"Tm", "\xE2\x84\xA2"}, {"ss", "\xC3\x9F"},
    {"ae", "\xC3\xA6"},     {"oe", "\xC5\x93"},     {"'e", "\xC3\xA9"},
    {"`e", "\xC3\xA8"},     {":u", "\xC3\xBC"},     {":o", "\xC3\xB6"},
    {":a", "\xC3\xA4"},     {"Eu", "\xE2\x82\xAC"}, {"eu", "\xE2\x82\xAC"},
};

static void put_glyph(cn_buf *o, const char *nm, size_t n)
{
    if (n >= 5 && nm[0] == 'u') { /* \[u00E9] */
        long cp = 0;
        size_t i = 1;
        for (; i < n && i < 7; i++) {
            char c = nm[i];
            int v = c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
            if (v < 0)
                break;
            cp = cp * 16 + v;
        }
        if (i == n) {
            ingest_put_cp(o, (int32_t)cp);
            return;
        }
    }
    for (size_t i = 0; i < CN_ARRAY_LEN(glyphs); i++)
        if (strlen(glyphs[i].name) == n && memcmp(glyphs[i].name, nm, n) == 0) {
            cn_buf_append(o, glyphs[i].utf8, strlen(glyphs[i].utf8));
            return;
        }
}

/* Skip an escape's argument: (xx, [name], 'delimited', or one character.
** Returns the position after it and the name in *nm, *nn. */
static size_t esc_arg(const char *s, size_t i, size_t n, const char **nm, size_t *nn)
{
    *nm = s + i;
    *nn = 0;
    if (i >= n)
        return i;
    if (s[i] == '(') {
        *nm = s + i + 1;
        *nn = CN_MIN((size_t)2, n - i - 1);
        return i + 1 + *nn;
    }
    if (s[i] == '[') {
        const char *e = memchr(s + i, ']', n - i);
        size_t end = e ? (size_t)(e - s) : n;
        *nm = s + i + 1;
        *nn = end - i - 1;
        return e ? end + 1 : n;
    }
    if (s[i] == '\'') {
        const char *e = memchr(s + i + 1, '\'', n - i - 1);
        size_t end = e ? (size_t)(e - s) : n;
        *nm = s + i + 1;
        *nn = end - i - 1;
        return e ? end + 1 : n;
    }
    *nn = 1;
    return i + 1;
}

/* Text of one input line (no trailing newline) with escapes resolved. */
static void text_of(const char *s, size_t n, cn_buf *o)
{
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c != '\\') {
            size_t j = i;
            while (j < n && s[j] != '\\')
                j++;
            cn_buf_append(o, s + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= n)
            break;
        char e = s[i + 1];
        i += 2;
        const char *nm;
        size_t nn;
        switch (e) {
        case '"':
        case '#':
            return; /* a comment to the end of the line */
        case '-':
        case '_':
            cn_buf_append(o, "-", 1);
            break;
        case 'e':
        case '\\':
            cn_buf_append(o, "\\", 1);
            break;
        case '~':
        case ' ':
        case '0':
            cn_buf_append(o, " ", 1);
            break;
        case '.':
            cn_buf_append(o, ".", 1);
            break;
        case '\'':
            cn_buf_append(o, "\xC2\xB4", 2);
            break;
        case '`':
            cn_buf_append(o, "`", 1);
            break;
        case '(':
        case '[':
            i = esc_arg(s, i - 1, n, &nm, &nn);
            put_glyph(o, nm, nn);
            break;
        case '*': /* strings: a few known ones */
            i = esc_arg(s, i, n, &nm, &nn);
            if (nn == 1 && nm[0] == 'R')
                cn_buf_append(o, "\xC2\xAE", 2);
            else if (nn == 2 && (memcmp(nm, "lq", 2) == 0 || memcmp(nm, "rq", 2) == 0))
                cn_buf_append(o, "\"", 1);
            else if (nn == 2 && memcmp(nm, "Tm", 2) == 0)
                cn_buf_append(o, "\xE2\x84\xA2", 3);
            break;
        case 'f':
        case 'F':
        case 'n':
        case 'g':
        case 'k':
        case 'm':
        case 'M':
        case 'V':
        case 'Y':
            i = esc_arg(s, i, n, &nm, &nn); /* fonts, registers, colours: nothing */
            break;
        case 's': /* size: \s+2 \s-1 \s0 \s(12 \s[12] */
            if (i < n && (s[i] == '+' || s[i] == '-'))
                i++;
            if (i < n && (s[i] == '(' || s[i] == '[' || s[i] == '\''))
                i = esc_arg(s, i, n, &nm, &nn);
            else
                for (int digits = 0; i < n && s[i] >= '0' && s[i] <= '9' && digits < 2; digits++)
                    i++;
            break;
        case 'h':
        case 'v':
        case 'w':
        case 'o':
        case 'b':
        case 'l':
        case 'L':
        case 'x':
        case 'D':
        case 'N':
        case 'X':
        case 'Z':
        case 'A':
        case 'B':
        case 'R':
        case 'S':
        case 'H':
        case 'C':
            i = esc_arg(s, i, n, &nm, &nn);
            if (e == 'C')
                put_glyph(o, nm, nn);
            break;
        default: /* \& \c \| \^ \% \: \} \{ \) and others: nothing */
            break;
        }
    }
}

/* ---- lines -------------------------------------------------------------- */

typedef struct man {
    ingest_builder *b;
    cn_buf para, tmp;
    int heading; /* level of the paragraph being gathered, 0 for body */
    bool nofill;
    char title[256];
} man;

static void end_para(man *m)
{
    if (m->heading)
        ib_heading(m->b, m->heading, m->para.data, m->para.len);
    else
        ib_para(m->b, m->para.data, m->para.len);
    m->para.len = 0;
    m->heading = 0;
}

static void add_text(man *m, const char *s, size_t n)
{
    m->tmp.len = 0;
    text_of(s, n, &m->tmp);
    if (!m->tmp.len)
        return;
    if (m->para.len)
        cn_buf_append(&m->para, m->nofill ? "\n" : " ", 1);
    cn_buf_append(&m->para, m->tmp.data, m->tmp.len);
}

/* Split a macro line's arguments (quotes group words) and append them,
** joined by a space, or with no space for the alternating-font macros. */
static void add_args(man *m, const char *s, size_t n, bool join)
{
    cn_buf words;
    cn_buf_init(&words, n + 16);
    size_t i = 0;
    bool first = true;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= n)
            break;
        size_t st, en;
        if (s[i] == '"') {
            st = ++i;
            while (i < n && !(s[i] == '"' && (i + 1 >= n || s[i + 1] != '"')))
                i++;
            en = i;
            if (i < n)
                i++;
        } else {
            st = i;
            while (i < n && s[i] != ' ' && s[i] != '\t')
                i++;
            en = i;
        }
        if (!first && !join)
            cn_buf_append(&words, " ", 1);
        cn_buf_append(&words, s + st, en - st);
        first = false;
    }
    add_text(m, words.data ? words.data : "", words.len);
    cn_buf_free(&words);
}

static bool is(const char *mac, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(mac, lit, n) == 0;
}

int ingest_man(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err)
{
    cn_buf raw, clean;
    cn_buf_init(&raw, o->max_text_bytes);
    cn_buf_init(&clean, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    int rc = CN_OK;
    if (len >= 2 && data[0] == 0x1F && data[1] == 0x8B) {
        rc = gunzip(name, data, len, o->max_text_bytes, &raw, err);
        data = (const unsigned char *)raw.data;
        len = raw.len;
    }
    if (rc == CN_OK)
        rc = ingest_decode_text(d, name, data ? data : (const unsigned char *)"", len, &clean, err);
    cn_buf_free(&raw);
    if (rc != CN_OK) {
        cn_buf_free(&clean);
        return rc;
    }
    ingest_builder b;
    ib_init(&b, d, name, o->text_page_words, o->max_pages);
    man m = {.b = &b};
    cn_buf_init(&m.para, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    cn_buf_init(&m.tmp, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    const char *s = clean.data ? clean.data : "";
    size_t n = clean.len, i = 0;
    int skip_until_dots = 0; /* inside .de/.ig: skip to ".." */
    int table = 0;           /* 1: tbl options/format lines, 2: rows */
    bool next_is_tag = false, title_next = false;
    while (i < n && b.rc == CN_OK) {
        const char *e = memchr(s + i, '\n', n - i);
        size_t ln = e ? (size_t)(e - (s + i)) : n - i;
        const char *L = s + i;
        i += ln + 1;
        if (skip_until_dots) {
            if (ln >= 2 && L[0] == '.' && L[1] == '.')
                skip_until_dots = 0;
            continue;
        }
        bool ctl = ln && (L[0] == '.' || L[0] == '\'');
        if (table && !(ctl && ln >= 3 && memcmp(L + 1, "TE", 2) == 0)) {
            if (table == 1) {
                /* options and format lines; the last format line ends in '.' */
                size_t t = ln;
                while (t && (L[t - 1] == ' ' || L[t - 1] == '\t'))
                    t--;
                if (t && L[t - 1] == '.')
                    table = 2;
                continue;
            }
            if (ctl || (ln == 1 && (L[0] == '_' || L[0] == '=')))
                continue;
            cn_buf row;
            cn_buf_init(&row, ln * 2 + 16);
            for (size_t k = 0; k < ln; k++) {
                if (L[k] == '\t')
                    cn_buf_append(&row, " | ", 3);
                else
                    cn_buf_append(&row, L + k, 1);
            }
            end_para(&m);
            add_text(&m, row.data ? row.data : "", row.len);
            end_para(&m);
            cn_buf_free(&row);
            continue;
        }
        if (!ctl) {
            if (ln == 0 && !m.nofill) {
                end_para(&m);
                continue;
            }
            add_text(&m, L, ln);
            if (next_is_tag) { /* .TP's tag is a line of its own */
                cn_buf_append(&m.para, "\n", 1);
                next_is_tag = false;
            }
            if (title_next) { /* .SH with its title on the next line */
                m.heading = title_next;
                end_para(&m);
                title_next = false;
            }
            continue;
        }
        /* a request or macro: name, then arguments */
        size_t k = 1;
        while (k < ln && (L[k] == ' ' || L[k] == '\t'))
            k++;
        size_t ms = k;
        while (k < ln && L[k] != ' ' && L[k] != '\t')
            k++;
        const char *mac = L + ms;
        size_t mn = k - ms;
        const char *args = L + k;
        size_t an = ln - k;
        while (an && (*args == ' ' || *args == '\t'))
            args++, an--;
        if (mn == 0 || (mn >= 1 && mac[0] == '\\' && mn >= 2 && mac[1] == '"'))
            continue; /* "." alone or a comment */
        if (is(mac, mn, "SH") || is(mac, mn, "Sh") || is(mac, mn, "SS") || is(mac, mn, "Ss")) {
            end_para(&m);
            int level = (mac[1] == 'H' || mac[1] == 'h') ? 1 : 2;
            if (an) {
                m.heading = level;
                add_args(&m, args, an, false);
                end_para(&m);
            } else {
                title_next = level;
            }
            m.nofill = false;
        } else if (is(mac, mn, "TH") || is(mac, mn, "Dt")) {
            /* .TH LS 1 "date" ...: the title "LS(1)" */
            char t1[128] = "", t2[32] = "", line[256];
            snprintf(line, sizeof line, "%.*s", (int)CN_MIN(an, sizeof line - 1), args);
            if (sscanf(line, "%127s %31s", t1, t2) >= 1) {
                for (char *q = t1; *q; q++)
                    if (*q == '"')
                        memmove(q, q + 1, strlen(q));
                for (char *q = t2; *q; q++)
                    if (*q == '"')
                        memmove(q, q + 1, strlen(q));
                snprintf(m.title, sizeof m.title, t2[0] ? "%s(%s)" : "%s", t1, t2);
            }
        } else if (is(mac, mn, "PP") || is(mac, mn, "LP") || is(mac, mn, "P") ||
                   is(mac, mn, "Pp") || is(mac, mn, "sp") || is(mac, mn, "HP") ||
                   is(mac, mn, "Lp")) {
            end_para(&m);
        } else if (is(mac, mn, "TP") || is(mac, mn, "TQ")) {
            end_para(&m);
            next_is_tag = true;
        } else if (is(mac, mn, "IP") || is(mac, mn, "It")) {
            end_para(&m);
            if (an) {
                add_args(&m, args, an, false);
                cn_buf_append(&m.para, " ", 1);
            }
        } else if (is(mac, mn, "br")) {
            if (m.para.len)
                cn_buf_append(&m.para, "\n", 1);
        } else if (is(mac, mn, "nf") || is(mac, mn, "EX") || is(mac, mn, "Bd")) {
            end_para(&m);
            m.nofill = true;
        } else if (is(mac, mn, "fi") || is(mac, mn, "EE") || is(mac, mn, "Ed")) {
            end_para(&m);
            m.nofill = false;
        } else if (is(mac, mn, "B") || is(mac, mn, "I") || is(mac, mn, "SM") ||
                   is(mac, mn, "SB") || is(mac, mn, "UR") || is(mac, mn, "MT") ||
                   is(mac, mn, "Nm") || is(mac, mn, "Nd") || is(mac, mn, "Ar") ||
                   is(mac, mn, "Pa") || is(mac, mn, "Em") || is(mac, mn, "Sy") ||
                   is(mac, mn, "Cm") || is(mac, mn, "Ev") || is(mac, mn, "Xr") ||
                   is(mac, mn, "Li") || is(mac, mn, "Va") || is(mac, mn, "Ic") ||
                   is(mac, mn, "Dq") || is(mac, mn, "Ql") || is(mac, mn, "Sq") ||
                   is(mac, mn, "Op") || is(mac, mn, "Fl") || is(mac, mn, "D1") ||
                   is(mac, mn, "Dl") || is(mac, mn, "Fn") || is(mac, mn, "Ft")) {
            if (an) {
                if (is(mac, mn, "Fl")) {
                    m.tmp.len = 0;
                    cn_buf cat;
                    cn_buf_init(&cat, an + 4);
                    cn_buf_append(&cat, "-", 1);
                    cn_buf_append(&cat, args, an);
                    add_args(&m, cat.data, cat.len, false);
                    cn_buf_free(&cat);
                } else {
                    add_args(&m, args, an, false);
                }
                if (next_is_tag) {
                    cn_buf_append(&m.para, "\n", 1);
                    next_is_tag = false;
                }
            }
        } else if (mn == 2 && (mac[0] == 'B' || mac[0] == 'I' || mac[0] == 'R') &&
                   (mac[1] == 'B' || mac[1] == 'I' || mac[1] == 'R')) {
            add_args(&m, args, an, true); /* .BR ls (1) -> "ls(1)" */
            if (next_is_tag) {
                cn_buf_append(&m.para, "\n", 1);
                next_is_tag = false;
            }
        } else if (is(mac, mn, "de") || is(mac, mn, "de1") || is(mac, mn, "ig") ||
                   is(mac, mn, "am")) {
            skip_until_dots = 1;
        } else if (is(mac, mn, "TS")) {
            end_para(&m);
            table = 1;
        } else if (is(mac, mn, "TE")) {
            table = 0;
        }
        /* everything else (.RS .RE .in .ft .ds .nr .if .ie .el .so .ne .ad
        ** .na .hy .nh .ta .ti .UE .ME .PD ...): no text of its own */
    }
    end_para(&m);
    cn_buf_free(&m.para);
    cn_buf_free(&m.tmp);
    cn_buf_free(&clean);
    rc = ib_finish(&b, err);
    if (rc == CN_OK && m.title[0] && ingest_set_title(d, m.title, strlen(m.title)) != CN_OK)
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    return rc;
}
