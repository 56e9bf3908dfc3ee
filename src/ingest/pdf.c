/*
** pdf.c: PDF text with MuPDF, page by page; images too (PNG, JPEG, TIFF
** frames...), as documents whose pages are all for OCR, and pages rendered
** in grey for OCR (ingest_render).
**
** Each call makes its own fz_context (with an allocator that counts and caps
** what MuPDF holds) and drops it before returning, so no MuPDF state is
** shared between calls and calls on different threads need no locks. Every
** MuPDF call sits inside fz_try/fz_catch; MuPDF's exceptions become cn_err
** here and nowhere above. Functions named mu_* call MuPDF and may throw:
** they are only called inside an fz_try.
**
** For each page: MuPDF's structured text (blocks of lines of characters) ->
** lines of clean UTF-8 -> blocks put in reading order (columns found by
** their gutters, else top to bottom) -> kept in one list for the document.
** When every page is read, lines that repeat at the top or bottom of many
** pages (ignoring digits: running headers, page numbers) are dropped, and
** each page's text is composed: lines of a block joined with spaces,
** line-end hyphenation undone when the next line starts lower-case, blocks
** and visible paragraph ends separated by "\n\n".
*/
#include "ingest/zip.h"

#include <math.h>
#include <mupdf/fitz.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Stop reading pages after this many fail to load in a row. */
#define PDF_MAX_BAD_RUN 50

/* ---- the document's lines ---------------------------------------------- */

typedef struct pline {
    float x0, y0, x1, y1; /* the line's box */
    float bx0, bx1;       /* its block's left and right edges */
    float size;           /* font size of its first character */
    size_t off;           /* text in st->text */
    uint32_t len;
    int block;  /* block number within the page, in reading order */
    bool drop;  /* a running header or footer */
    bool band;  /* near the top or bottom edge, among the first/last 3 lines */
    bool outer; /* in the band and the page's top-most or bottom-most line */
} pline;

typedef struct ppage {
    size_t first, n; /* lines st->lines[first .. first+n) */
    float top, bottom;
    bool failed;
    bool images; /* has image blocks */
} ppage;

typedef struct pdf_state {
    ingest_doc *d;
    const char *name;
    const unsigned char *data;
    size_t len;
    const ingest_opts *o;
    cn_buf text;  /* all line texts, back to back */
    cn_buf lines; /* pline[] */
    ppage *pages;
    int n_pages;
    int n_bad;   /* pages that failed to load */
    int n_empty; /* pages without text */
    size_t n_chars, n_fffd;
    char first_warning[160];
    int n_warnings;
    bool repaired;        /* MuPDF warned that it repaired the file */
    char page_error[160]; /* why the first unreadable page failed */
    int n_blank;          /* pages with neither text nor images */
    char title[512];
    fz_document *doc;
    int needs_password;
    int count;
    bool oom; /* our own buffers ran out */
    const char *magic; /* "application/pdf", "image/png", ... */
    const char *label; /* "PDF" or "image", for messages */
} pdf_state;

static void on_warning(void *user, const char *msg)
{
    /* only repairs are worth a note; MuPDF's other warnings (a bad link,
    ** an unknown font flag) say nothing about the text */
    pdf_state *st = user;
    st->n_warnings++;
    if (!st->repaired && (strstr(msg, "repair") || strstr(msg, "broken"))) {
        st->repaired = true;
        snprintf(st->first_warning, sizeof st->first_warning, "%s", msg);
    }
}

static void on_error(void *user, const char *msg)
{
    (void)user;
    (void)msg; /* the caught message is reported by the caller */
}

/* ---- one page ---------------------------------------------------------- */

typedef struct tblock {
    fz_rect r;
    fz_stext_block *b;
    int order; /* content order */
    int col;   /* column, or -1 for a block across a gutter */
    int lines; /* number of lines */
} tblock;

static bool is_ws_cp(int c)
{
    return c == ' ' || c == '\t' || c == 0xA0 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == '\n' || c == '\r';
}

/* Append the text of one stext line to st->text as clean UTF-8; whitespace
** runs become one space, control and private-use characters go. */
static int line_text(pdf_state *st, fz_stext_line *ln, size_t *off, uint32_t *len)
{
    size_t start = st->text.len;
    bool space = false;
    for (fz_stext_char *ch = ln->first_char; ch; ch = ch->next) {
        int c = ch->c;
        if (is_ws_cp(c)) {
            space = st->text.len > start;
            continue;
        }
        if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0) || (c >= 0xE000 && c <= 0xF8FF) ||
            c == 0xFEFF || c == 0x200B || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            continue;
        if (c == 0xAD && ch->next) /* soft hyphen inside a line */
            continue;
        if (space && cn_buf_append(&st->text, " ", 1) != CN_OK)
            return CN_ENOMEM;
        space = false;
        st->n_chars++;
        st->n_fffd += c == 0xFFFD;
        if (ingest_put_cp(&st->text, c) != CN_OK)
            return CN_ENOMEM;
    }
    *off = start;
    *len = (uint32_t)(st->text.len - start);
    return CN_OK;
}

static int cmp_y(const void *a, const void *b)
{
    const tblock *x = a, *y = b;
    float dy = x->r.y0 - y->r.y0;
    if (dy < -2 || dy > 2)
        return dy < 0 ? -1 : 1;
    if (x->r.x0 != y->r.x0)
        return x->r.x0 < y->r.x0 ? -1 : 1;
    return x->order - y->order;
}

static int cmp_x0(const void *a, const void *b)
{
    const tblock *x = a, *y = b;
    return x->r.x0 < y->r.x0 ? -1 : x->r.x0 > y->r.x0 ? 1 : x->order - y->order;
}

/* Reading order (cmp for the final sort): by band between blocks that cross
** a gutter, then by column, then top to bottom. */
typedef struct oblock {
    tblock t;
    int band;
} oblock;

static int cmp_order(const void *a, const void *b)
{
    const oblock *x = a, *y = b;
    if (x->band != y->band)
        return x->band - y->band;
    if (x->t.col != y->t.col)
        return x->t.col - y->t.col;
    return cmp_y(&x->t, &y->t);
}

/*
** Put the page's text blocks in reading order. Columns are found by their
** gutters: x ranges that no block of ordinary width covers, between blocks
** that on both sides reach down at least 40 % of the text's height and hold
** at least a fifth of its lines, on a page where at most a third of the
** lines are in blocks wider than 55 % of the text. Blocks
** wider than a gutter split the page into bands (a title above two columns,
** a figure across them), read in turn; in a band, columns are read left to
** right, each top to bottom. Without gutters, blocks are read top to bottom,
** left to right on a shared line.
*/
static void reading_order(tblock *b, int n, oblock *out)
{
    float lo = 1e30f, hi = -1e30f, top = 1e30f, bot = -1e30f;
    for (int i = 0; i < n; i++) {
        lo = CN_MIN(lo, b[i].r.x0), hi = CN_MAX(hi, b[i].r.x1);
        top = CN_MIN(top, b[i].r.y0), bot = CN_MAX(bot, b[i].r.y1);
    }
    float width = hi - lo, height = bot - top;
    int total_lines = 0, wide_lines = 0;
    for (int i = 0; i < n; i++) {
        total_lines += b[i].lines;
        wide_lines += b[i].r.x1 - b[i].r.x0 >= 0.55f * width ? b[i].lines : 0;
    }
    /* gutters: sweep the narrow blocks by x0 */
    float gut[8][2];
    int ng = 0;
    if (n >= 2 && n <= 2000 && width > 0) { /* (quadratic: not on pages of dust) */
        tblock *s = malloc((size_t)n * sizeof *s);
        int k = 0;
        if (s) {
            for (int i = 0; i < n; i++)
                if (b[i].r.x1 - b[i].r.x0 < 0.55f * width)
                    s[k++] = b[i];
            qsort(s, (size_t)k, sizeof *s, cmp_x0);
            float reach = k ? s[0].r.x1 : 0;
            for (int i = 1; i < k && ng < 8; i++) {
                if (s[i].r.x0 > reach + 6) {
                    /* a gap from reach to s[i].x0: check both sides are columns */
                    float l_top = 1e30f, l_bot = -1e30f, r_top = 1e30f, r_bot = -1e30f;
                    int l_lines = 0, r_lines = 0;
                    for (int j = 0; j < k; j++) {
                        if (s[j].r.x1 <= reach + 0.01f) {
                            l_top = CN_MIN(l_top, s[j].r.y0), l_bot = CN_MAX(l_bot, s[j].r.y1);
                            l_lines += s[j].lines;
                        } else if (s[j].r.x0 >= s[i].r.x0 - 0.01f) {
                            r_top = CN_MIN(r_top, s[j].r.y0), r_bot = CN_MAX(r_bot, s[j].r.y1);
                            r_lines += s[j].lines;
                        }
                    }
                    /* both sides tall and holding a fair share of the lines, and
                    ** not many lines across the gap (a right-aligned header
                    ** over a page of full-width text is not a column) */
                    if (l_bot - l_top >= 0.4f * height && r_bot - r_top >= 0.4f * height &&
                        l_lines * 5 >= total_lines && r_lines * 5 >= total_lines &&
                        wide_lines * 3 <= total_lines) {
                        gut[ng][0] = reach;
                        gut[ng][1] = s[i].r.x0;
                        ng++;
                    }
                }
                reach = CN_MAX(reach, s[i].r.x1);
            }
            free(s);
        }
    }
    for (int i = 0; i < n; i++) {
        int col = 0;
        for (int g = 0; g < ng; g++) {
            if (b[i].r.x0 >= gut[g][1] - 0.01f)
                col = g + 1;
            else if (b[i].r.x1 > gut[g][0] + 0.01f && b[i].r.x0 < gut[g][1] - 0.01f &&
                     b[i].r.x0 < gut[g][0] - 0.01f)
                col = -1; /* crosses the gutter */
        }
        b[i].col = ng ? col : 0;
    }
    /* bands: a block crossing a gutter closes the band above it */
    for (int i = 0; i < n; i++) {
        out[i].t = b[i];
        out[i].band = 0;
    }
    if (ng) {
        for (int i = 0; i < n; i++) {
            if (b[i].col != -1)
                continue;
            for (int j = 0; j < n; j++) {
                if (j == i)
                    continue;
                float cy = (b[j].r.y0 + b[j].r.y1) / 2;
                if (cy > b[i].r.y1 || (b[j].col == -1 && cmp_y(&b[j], &b[i]) > 0))
                    out[j].band += 2;
            }
            out[i].band += 1;
        }
    }
    qsort(out, (size_t)n, sizeof *out, cmp_order);
}

/* Read one page into st (may throw). */
static void mu_read_page(fz_context *ctx, pdf_state *st, int pno, fz_page **pagep,
                         fz_stext_page **tpp, tblock **tbp, oblock **obp)
{
    ppage *pp = &st->pages[pno];
    pp->first = st->lines.len / sizeof(pline);
    *pagep = fz_load_page(ctx, st->doc, pno);
    fz_rect mb = fz_bound_page(ctx, *pagep);
    pp->top = mb.y0;
    pp->bottom = mb.y1;
    /* images are kept as references (not decoded) to tell scans from blank pages */
    fz_stext_options opts = {.flags = FZ_STEXT_MEDIABOX_CLIP | FZ_STEXT_PRESERVE_IMAGES};
    *tpp = fz_new_stext_page_from_page(ctx, *pagep, &opts);
    int nb = 0;
    for (fz_stext_block *b = (*tpp)->first_block; b; b = b->next) {
        nb += b->type == FZ_STEXT_BLOCK_TEXT;
        pp->images |= b->type == FZ_STEXT_BLOCK_IMAGE;
    }
    if (nb == 0)
        return;
    *tbp = fz_malloc(ctx, (size_t)nb * sizeof **tbp);
    *obp = fz_malloc(ctx, (size_t)nb * sizeof **obp);
    int k = 0;
    for (fz_stext_block *b = (*tpp)->first_block; b; b = b->next) {
        if (b->type != FZ_STEXT_BLOCK_TEXT)
            continue;
        (*tbp)[k] = (tblock){.r = b->bbox, .b = b, .order = k};
        for (fz_stext_line *ln = b->u.t.first_line; ln; ln = ln->next)
            (*tbp)[k].lines++;
        k++;
    }
    reading_order(*tbp, nb, *obp);
    for (int i = 0; i < nb; i++) {
        fz_stext_block *b = (*obp)[i].t.b;
        for (fz_stext_line *ln = b->u.t.first_line; ln; ln = ln->next) {
            pline pl = {.x0 = ln->bbox.x0,
                        .y0 = ln->bbox.y0,
                        .x1 = ln->bbox.x1,
                        .y1 = ln->bbox.y1,
                        .bx0 = b->bbox.x0,
                        .bx1 = b->bbox.x1,
                        .size = ln->first_char ? ln->first_char->size : 0,
                        .block = i};
            if (line_text(st, ln, &pl.off, &pl.len) != CN_OK) {
                st->oom = true;
                return;
            }
            if (pl.len == 0)
                continue;
            if (cn_buf_append(&st->lines, &pl, sizeof pl) != CN_OK) {
                st->oom = true;
                return;
            }
        }
    }
}

static int read_page(fz_context *ctx, pdf_state *st, int pno)
{
    fz_page *page = NULL;
    fz_stext_page *tp = NULL;
    tblock *tb = NULL;
    oblock *ob = NULL;
    volatile int rc = CN_OK; /* set in fz_catch, after the longjmp */
    fz_var(page);
    fz_var(tp);
    fz_var(tb);
    fz_var(ob);
    size_t text_mark = st->text.len, line_mark = st->lines.len;
    fz_try(ctx)
    {
        mu_read_page(ctx, st, pno, &page, &tp, &tb, &ob);
    }
    fz_always(ctx)
    {
        fz_free(ctx, tb);
        fz_free(ctx, ob);
        fz_drop_stext_page(ctx, tp);
        fz_drop_page(ctx, page);
    }
    fz_catch(ctx)
    {
        /* a page that cannot be read keeps its number, without text */
        st->text.len = text_mark;
        st->lines.len = line_mark;
        st->pages[pno].failed = true;
        rc = fz_caught(ctx) == FZ_ERROR_MEMORY ? CN_ENOMEM : CN_EFORMAT;
        if (!st->page_error[0])
            snprintf(st->page_error, sizeof st->page_error, "%s", fz_caught_message(ctx));
    }
    st->pages[pno].n = st->lines.len / sizeof(pline) - st->pages[pno].first;
    return rc;
}

/* ---- running headers and footers --------------------------------------- */

/* Hash of a line with digits masked, case folded (ASCII) and spaces dropped. */
static uint64_t line_key(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ')
            continue;
        if (c >= '0' && c <= '9')
            c = '#';
        else if (c >= 'A' && c <= 'Z')
            c += 32;
        h = (h ^ c) * 1099511628211ull;
    }
    return h ? h : 1;
}

/* The number a line starts or ends with (a page number in a running
** header: "12 Chapter 2. Getting Started", "2.2. The GUI 13"), or -1 each. */
static void edge_numbers(const char *s, size_t n, long *lead, long *trail)
{
    *lead = *trail = -1;
    size_t i = 0;
    while (i < n && i < 7 && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i > 0 && i < 7 && (i == n || s[i] == ' '))
        *lead = strtol(s, NULL, 10);
    size_t j = n;
    while (j > 0 && n - j < 6 && s[j - 1] >= '0' && s[j - 1] <= '9')
        j--;
    if (j < n && n - j < 6 && (j == 0 || s[j - 1] == ' '))
        *trail = strtol(s + j, NULL, 10);
}

/* Printed page numbers: when, on many pages, an edge line starts or ends
** with the page's index minus one fixed offset (front matter shifts it),
** every edge line that does so is a running header or footer, even if its
** words change from chapter to chapter. */
static void drop_numbered(pdf_state *st)
{
    pline *L = (pline *)st->lines.data;
    int np = st->n_pages;
    /* only the outermost lines: a heading "2 Storage" on page 2 stays */
    for (int p = 0; p < np; p++) {
        float lo = 1e30f, hi = -1e30f;
        for (size_t i = 0; i < st->pages[p].n; i++) {
            const pline *l = &L[st->pages[p].first + i];
            lo = CN_MIN(lo, l->y0), hi = CN_MAX(hi, l->y1);
        }
        for (size_t i = 0; i < st->pages[p].n; i++) {
            pline *l = &L[st->pages[p].first + i];
            l->outer = l->band && (l->y0 <= lo + 2 || l->y1 >= hi - 2);
        }
    }
    int *hist = calloc((size_t)(2 * np + 1), sizeof *hist);
    int *last = calloc((size_t)(2 * np + 1), sizeof *last);
    if (!hist || !last)
        goto out;
    for (int p = 0; p < np; p++) {
        for (size_t i = 0; i < st->pages[p].n; i++) {
            pline *l = &L[st->pages[p].first + i];
            if (!l->outer)
                continue;
            long v[2];
            edge_numbers(st->text.data + l->off, l->len, &v[0], &v[1]);
            for (int k = 0; k < 2; k++) {
                long diff = (long)p + 1 - v[k];
                if (v[k] < 0 || diff < -np || diff > np || last[diff + np] == p + 1)
                    continue;
                last[diff + np] = p + 1;
                hist[diff + np]++;
            }
        }
    }
    int best = 0;
    for (int k = 1; k < 2 * np + 1; k++)
        if (hist[k] > hist[best])
            best = k;
    if (hist[best] < 3 || hist[best] * 10 < np * 3)
        goto out;
    long diff = best - np;
    for (int p = 0; p < np; p++) {
        for (size_t i = 0; i < st->pages[p].n; i++) {
            pline *l = &L[st->pages[p].first + i];
            long v[2];
            if (!l->outer)
                continue;
            edge_numbers(st->text.data + l->off, l->len, &v[0], &v[1]);
            if (v[0] == p + 1 - diff || v[1] == p + 1 - diff)
                l->drop = true;
        }
        /* the rest of that header: edge lines on the same baseline */
        for (size_t i = 0; i < st->pages[p].n; i++) {
            pline *l = &L[st->pages[p].first + i];
            for (size_t j = 0; l->band && !l->drop && j < st->pages[p].n; j++) {
                const pline *m = &L[st->pages[p].first + j];
                if (m->drop && m->band && fabsf(m->y1 - l->y1) < 2 && fabsf(m->y0 - l->y0) < 2)
                    l->drop = true;
            }
        }
    }
out:
    free(hist);
    free(last);
}

typedef struct kcount {
    uint64_t key;
    int count, last_page;
} kcount;

/* Mark lines that repeat at the top or bottom of at least 3 pages and 5 % of
** them (digits ignored), then lines carrying the printed page number; only
** the first and last 3 lines of a page, in its top or bottom tenth, are
** candidates: the 3 top-most and bottom-most lines, in the outer 15 % of
** the page height. */
static void drop_running(pdf_state *st)
{
    pline *L = (pline *)st->lines.data;
    int np = st->n_pages;
    if (np < 3 || !L)
        return;
    size_t cap = 64;
    while (cap < (size_t)np * 16)
        cap *= 2;
    kcount *tab = calloc(cap, sizeof *tab);
    size_t used = 0;
    if (!tab)
        return;
    for (int pass = 0; pass < 2; pass++) {
        for (int p = 0; p < np; p++) {
            ppage *pg = &st->pages[p];
            float h = pg->bottom - pg->top;
            for (size_t i = 0; i < pg->n; i++) {
                pline *l = &L[pg->first + i];
                if (pass == 0) {
                    bool top = l->y1 <= pg->top + 0.15f * h,
                         bottom = l->y0 >= pg->bottom - 0.15f * h;
                    l->band = (top || bottom) && l->len <= 160;
                    /* among the 3 top-most or bottom-most lines, by position
                    ** (a right-aligned header may come late in reading
                    ** order); by reading order on pages of many lines */
                    bool edge = i < 3 || i + 3 >= pg->n;
                    if (l->band && pg->n <= 1000) {
                        int above = 0, below = 0;
                        for (size_t j = 0; j < pg->n; j++) {
                            above += L[pg->first + j].y1 < l->y0;
                            below += L[pg->first + j].y0 > l->y1;
                        }
                        edge = above < 3 || below < 3;
                    }
                    l->band = l->band && edge;
                }
                if (!l->band)
                    continue;
                uint64_t k = line_key(st->text.data + l->off, l->len);
                /* top and bottom lines are counted apart */
                k ^= l->y1 <= pg->top + 0.15f * h ? 0x9E3779B97F4A7C15ull : 0;
                size_t j = k & (cap - 1);
                while (tab[j].key && tab[j].key != k)
                    j = (j + 1) & (cap - 1);
                if (pass == 0) {
                    if (!tab[j].key && 2 * ++used > cap) {
                        l->band = false; /* table half full: a page of tiny lines */
                        continue;
                    }
                    tab[j].key = k;
                    if (tab[j].last_page != p + 1) {
                        tab[j].count++;
                        tab[j].last_page = p + 1;
                    }
                } else if (tab[j].count >= 3 && tab[j].count * 20 >= np) {
                    l->drop = true;
                }
            }
        }
    }
    free(tab);
    drop_numbered(st);
}

/* ---- composing page text ------------------------------------------------ */

/* The last code point of s[0..n), and where it starts. */
static int32_t last_cp(const char *s, size_t n, size_t *at)
{
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return -1;
    i--;
    int32_t cp;
    ingest_utf8_next((const unsigned char *)s + i, n - i, &cp);
    *at = i;
    return cp;
}

static bool ends_sentence(int32_t c)
{
    return c == '.' || c == '!' || c == '?' || c == ':' || c == 0x3002 || c == 0xFF01 ||
           c == 0xFF1F;
}

static bool cjk(int32_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0xFF00 && c <= 0xFFEF) || (c >= 0x20000 && c <= 0x2FFFF);
}

static int compose_page(pdf_state *st, int p, cn_buf *out)
{
    ppage *pg = &st->pages[p];
    pline *L = (pline *)st->lines.data;
    const pline *prev = NULL;
    out->len = 0;
    int rc = CN_OK;
    for (size_t i = 0; i < pg->n && rc == CN_OK; i++) {
        const pline *l = &L[pg->first + i];
        if (l->drop)
            continue;
        const char *t = st->text.data + l->off;
        size_t tl = l->len;
        if (prev) {
            const char *pt = st->text.data + prev->off;
            size_t at = 0;
            int32_t pc = last_cp(pt, prev->len, &at);
            bool para = l->block != prev->block;
            float bw = prev->bx1 - prev->bx0, lh = prev->y1 - prev->y0;
            if (!para && ends_sentence(pc) && prev->x1 < prev->bx1 - 0.15f * bw)
                para = true; /* a short last line: the paragraph ended */
            if (!para && prev->size > 0 &&
                (l->size > prev->size * 1.15f || l->size < prev->size / 1.15f))
                para = true; /* a heading and its text in one block */
            if (!para && lh > 0 && l->y0 - prev->y1 > 0.8f * lh && l->y0 > prev->y0)
                para = true; /* a blank line's worth of space */
            int32_t nc;
            ingest_utf8_next((const unsigned char *)t, tl, &nc);
            if (para) {
                rc = cn_buf_append(out, "\n\n", 2);
            } else if ((pc == '-' || pc == 0xAD || pc == 0x2010) && at > 0) {
                size_t at2;
                int32_t before = last_cp(pt, at, &at2);
                bool letter = ingest_is_lower(before) || ingest_is_upper(before);
                if (pc == 0xAD || (letter && ingest_is_lower(nc)))
                    out->len -= prev->len - at; /* "infor-" + "mation" */
                /* else "Jean-" + "Pierre": keep the hyphen, no space */
            } else if (!(cjk(pc) && cjk(nc))) {
                rc = cn_buf_append(out, " ", 1); /* CJK lines join without a space */
            }
        }
        if (rc == CN_OK)
            rc = cn_buf_append(out, t, tl);
        prev = l;
    }
    return rc;
}

/* ---- the document ------------------------------------------------------- */

static void mu_open(fz_context *ctx, pdf_state *st)
{
    fz_register_document_handlers(ctx);
    fz_stream *stm = fz_open_memory(ctx, st->data, st->len);
    fz_try(ctx)
    {
        st->doc = fz_open_document_with_stream(ctx, st->magic, stm);
    }
    fz_always(ctx)
    {
        fz_drop_stream(ctx, stm);
    }
    fz_catch(ctx)
    {
        fz_rethrow(ctx);
    }
    st->needs_password = fz_needs_password(ctx, st->doc);
    if (st->needs_password && fz_authenticate_password(ctx, st->doc, ""))
        st->needs_password = 0;
    if (st->needs_password)
        return;
    st->count = fz_count_pages(ctx, st->doc);
    int n = fz_lookup_metadata(ctx, st->doc, FZ_META_INFO_TITLE, st->title, sizeof st->title);
    if (n < 0)
        st->title[0] = 0;
}

/* A metadata title worth showing: not empty, not a file name or a
** placeholder. */
static bool useful_title(const char *t)
{
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' '))
        n--;
    if (n == 0 || n > 300)
        return false;
    static const char *const junk[] = {
        "untitled", "title", "document", "microsoft word", "powerpoint presentation", "slide 1"};
    for (size_t i = 0; i < CN_ARRAY_LEN(junk); i++)
        if (strncasecmp(t, junk[i], strlen(junk[i])) == 0 && n <= strlen(junk[i]) + 2)
            return false;
    static const char *const exts[] = {".dvi", ".doc",  ".docx", ".tex", ".pdf",
                                       ".ps",  ".indd", ".qxd",  ".odt", ".rtf"};
    for (size_t i = 0; i < CN_ARRAY_LEN(exts); i++) {
        size_t l = strlen(exts[i]);
        if (n > l && strncasecmp(t + n - l, exts[i], l) == 0)
            return false;
    }
    return cn_utf8_valid_prefix(t, n) > 0;
}

static int finish(pdf_state *st, cn_err *err)
{
    ingest_doc *d = st->d;
    const char *name = st->name;
    drop_running(st);
    d->pages = cn_arena_alloc(&d->arena, (size_t)st->n_pages * sizeof *d->pages);
    if (!d->pages)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    cn_buf page;
    cn_buf_init(&page, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    size_t total = 0;
    int n_garbage = 0;
    d->scanned = cn_arena_alloc(&d->arena, (size_t)st->n_pages * sizeof *d->scanned);
    if (!d->scanned)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    for (int p = 0; p < st->n_pages; p++) {
        if (compose_page(st, p, &page) != CN_OK) {
            cn_buf_free(&page);
            return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
        }
        /* a text layer of mostly unmapped glyphs (U+FFFD) is no text: the
        ** page is read like a scan, by OCR */
        size_t chars = 0, bad = 0;
        for (size_t i = 0; i < page.len;) {
            int32_t cp;
            i += (size_t)ingest_utf8_next((const unsigned char *)page.data + i, page.len - i, &cp);
            chars += cp > ' ';
            bad += cp == 0xFFFD;
        }
        bool garbage = chars && bad * 2 > chars;
        if (garbage) {
            page.len = 0;
            n_garbage++;
        }
        char *t = cn_arena_strndup(&d->arena, page.data ? page.data : "", page.len);
        if (!t) {
            cn_buf_free(&page);
            return cn_fail(err, CN_ENOMEM, "%s: text larger than %d MB", name,
                           INGEST_MAX_TEXT_TOTAL_MB);
        }
        d->pages[p] = (ingest_page){.number = p + 1, .text = t, .len = page.len};
        total += page.len;
        bool scan = !st->pages[p].failed && page.len == 0 &&
                    (st->pages[p].images || garbage);
        if (scan)
            d->scanned[d->n_scanned++] = p + 1;
        else if (page.len == 0 && !st->pages[p].failed)
            st->n_blank++;
    }
    cn_buf_free(&page);
    d->n_pages = st->n_pages;
    if (total == 0 && d->n_scanned == 0) {
        if (st->n_bad == st->n_pages)
            return cn_fail(err, CN_EFORMAT, "%s: damaged %s: no page could be read (%s)", name,
                           st->label, st->page_error);
        return cn_fail(err, CN_EFORMAT, "%s: no text and no scanned pages (blank pages only)",
                       name);
    }
    if (st->n_fffd * 10 > st->n_chars && n_garbage < d->n_pages)
        ingest_note(d, "%zu of %zu characters have no Unicode mapping", st->n_fffd, st->n_chars);
    if (d->n_scanned)
        ingest_note(d, "%d of %d pages have no text layer%s: their text comes from OCR",
                    d->n_scanned, st->n_pages, n_garbage ? " (or only unmapped glyphs)" : "");
    if (st->n_bad)
        ingest_note(d, "%d of %d pages could not be read", st->n_bad, st->n_pages);
    if (st->repaired)
        ingest_note(d, "damaged %s repaired by MuPDF (%s)", st->label, st->first_warning);
    if (st->repaired && st->n_blank)
        ingest_note(d, "%d of %d pages have no text after the repair", st->n_blank, st->n_pages);
    if (useful_title(st->title) && ingest_set_title(d, st->title, strlen(st->title)) != CN_OK)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    return CN_OK;
}

enum { DOC_PDF, DOC_IMAGE };

/* The MuPDF type of an image file, from its first bytes. */
static const char *image_magic(const unsigned char *s, size_t n)
{
    if (n >= 4 && memcmp(s, "\x89PNG", 4) == 0)
        return "image/png";
    if (n >= 3 && memcmp(s, "\xFF\xD8\xFF", 3) == 0)
        return "image/jpeg";
    if (n >= 4 && (memcmp(s, "II*\0", 4) == 0 || memcmp(s, "MM\0*", 4) == 0))
        return "image/tiff";
    if (n >= 4 && memcmp(s, "GIF8", 4) == 0)
        return "image/gif";
    return "image/bmp";
}

static int read_doc(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                    const ingest_opts *o, int type, cn_err *err)
{
    ingest_mu_mem mem;
    fz_context *ctx = ingest_mu_new(&mem, o->max_mupdf_bytes);
    if (!ctx)
        return cn_fail(err, CN_ENOMEM, "%s: cannot start MuPDF (out of memory)", name);
    pdf_state *st = calloc(1, sizeof *st);
    if (!st) {
        fz_drop_context(ctx);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    }
    st->d = d;
    st->name = name;
    st->data = data;
    st->len = len;
    st->o = o;
    st->magic = type == DOC_IMAGE ? image_magic(data, len) : "application/pdf";
    st->label = type == DOC_IMAGE ? "image" : "PDF";
    cn_buf_init(&st->text, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    cn_buf_init(&st->lines, (size_t)INGEST_MAX_TEXT_TOTAL_MB << 20);
    fz_set_warning_callback(ctx, on_warning, st);
    fz_set_error_callback(ctx, on_error, st);

    int rc = CN_OK;
    fz_try(ctx)
    {
        mu_open(ctx, st);
    }
    fz_catch(ctx)
    {
        if (fz_caught(ctx) == FZ_ERROR_MEMORY)
            rc = cn_fail(err, CN_ENOMEM, "%s: needs more than %zu MB of memory to open", name,
                         o->max_mupdf_bytes >> 20);
        else
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged %s: %s", name, st->label,
                         fz_caught_message(ctx));
    }
    if (rc == CN_OK && st->needs_password)
        rc = cn_fail(err, CN_EUNSUPPORTED, "%s: password protected", name);
    if (rc == CN_OK && st->count <= 0)
        rc = cn_fail(err, CN_EFORMAT, "%s: damaged %s: no pages", name, st->label);
    if (rc == CN_OK && st->count > o->max_pages)
        rc = cn_fail(err, CN_ELIMIT, "%s: declares %d pages, more than the limit of %d", name,
                     st->count, o->max_pages);
    if (rc == CN_OK) {
        st->n_pages = st->count;
        st->pages = calloc((size_t)st->n_pages, sizeof *st->pages);
        if (!st->pages)
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    }
    /* an image's frames are all pictures: read at OCR time, not now (a
    ** 10,000-page TIFF is counted, not decoded) */
    for (int p = 0; rc == CN_OK && type == DOC_IMAGE && p < st->n_pages; p++)
        st->pages[p] = (ppage){.first = 0, .n = 0, .images = true};
    if (rc == CN_OK && type == DOC_IMAGE) {
        /* but the first frame's header is read now: a broken file fails here */
        fz_page *volatile pg = NULL;
        fz_try(ctx)
        {
            pg = fz_load_page(ctx, st->doc, 0);
            fz_rect r = fz_bound_page(ctx, pg);
            if (!(r.x1 - r.x0 > 0) || !(r.y1 - r.y0 > 0))
                fz_throw(ctx, FZ_ERROR_GENERIC, "an empty image");
        }
        fz_always(ctx)
        {
            fz_drop_page(ctx, pg);
        }
        fz_catch(ctx)
        {
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged image: %s", name, fz_caught_message(ctx));
        }
    }
    int bad_run = 0;
    for (int p = 0; rc == CN_OK && type != DOC_IMAGE && p < st->n_pages; p++) {
        int r = read_page(ctx, st, p);
        if (st->oom) {
            rc = cn_fail(err, CN_ENOMEM, "%s: text larger than %d MB", name,
                         INGEST_MAX_TEXT_TOTAL_MB);
            break;
        }
        if (r == CN_ENOMEM) {
            rc = cn_fail(err, CN_ENOMEM, "%s: page %d needs more than %zu MB of memory", name,
                         p + 1, o->max_mupdf_bytes >> 20);
            break;
        }
        if (r != CN_OK) {
            st->n_bad++;
            if (++bad_run >= PDF_MAX_BAD_RUN && p + 1 < st->n_pages) {
                /* the rest is most likely missing too: do not try millions */
                ingest_note(d, "stopped after %d unreadable pages in a row", bad_run);
                st->n_bad += st->n_pages - (p + 1);
                for (int q = p + 1; q < st->n_pages; q++) {
                    st->pages[q].failed = true;
                    st->pages[q].first = st->lines.len / sizeof(pline);
                }
                break;
            }
        } else {
            bad_run = 0;
        }
    }
    if (rc == CN_OK)
        rc = finish(st, err);
    d->paged = true;

    fz_try(ctx)
    {
        fz_drop_document(ctx, st->doc);
    }
    fz_catch(ctx)
    { /* nothing more to do: the context goes next */
    }
    fz_drop_context(ctx);
    cn_buf_free(&st->text);
    cn_buf_free(&st->lines);
    free(st->pages);
    free(st);
    return rc;
}

int ingest_pdf(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err)
{
    return read_doc(d, name, data, len, o, DOC_PDF, err);
}

int ingest_image(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                 const ingest_opts *o, cn_err *err)
{
    return read_doc(d, name, data, len, o, DOC_IMAGE, err);
}

/* ---- rendering pages for OCR --------------------------------------------- */

static void mu_render(fz_context *ctx, const unsigned char *data, size_t len, const char *magic,
                      int page, int dpi, ingest_pixmap *out, int *count)
{
    fz_document *volatile doc = NULL;
    fz_page *volatile pg = NULL;
    fz_pixmap *volatile pix = NULL;
    fz_stream *volatile stm = NULL;
    fz_var(doc);
    fz_var(pg);
    fz_var(pix);
    fz_var(stm);
    fz_try(ctx)
    {
        fz_register_document_handlers(ctx);
        stm = fz_open_memory(ctx, data, len);
        doc = fz_open_document_with_stream(ctx, magic, stm);
        if (fz_needs_password(ctx, doc) && !fz_authenticate_password(ctx, doc, ""))
            fz_throw(ctx, FZ_ERROR_GENERIC, "password protected");
        *count = fz_count_pages(ctx, doc);
        if (page >= 1 && page <= *count) {
            pg = fz_load_page(ctx, doc, page - 1);
            fz_rect r = fz_bound_page(ctx, pg);
            double wpt = r.x1 - r.x0, hpt = r.y1 - r.y0;
            double px = wpt * dpi / 72.0 * (hpt * dpi / 72.0);
            int res = dpi;
            if (px > INGEST_MAX_RENDER_PIXELS)
                res = (int)(dpi * sqrt(INGEST_MAX_RENDER_PIXELS / px));
            if (res < 1)
                res = 1;
            fz_matrix m = fz_scale(res / 72.0f, res / 72.0f);
            pix = fz_new_pixmap_from_page(ctx, pg, m, fz_device_gray(ctx), 0);
            int w = fz_pixmap_width(ctx, pix), h = fz_pixmap_height(ctx, pix);
            size_t stride = (size_t)fz_pixmap_stride(ctx, pix);
            out->grey = malloc(stride * (size_t)h + 1);
            if (!out->grey)
                fz_throw(ctx, FZ_ERROR_MEMORY, "out of memory");
            memcpy(out->grey, fz_pixmap_samples(ctx, pix), stride * (size_t)h);
            out->w = w;
            out->h = h;
            out->stride = (int)stride;
            out->dpi = res;
        }
    }
    fz_always(ctx)
    {
        fz_drop_pixmap(ctx, pix);
        fz_drop_page(ctx, pg);
        fz_drop_document(ctx, doc);
        fz_drop_stream(ctx, stm);
    }
    fz_catch(ctx)
    {
        fz_rethrow(ctx);
    }
}

int ingest_render(const char *path, int page, int dpi, ingest_pixmap *out, cn_err *err)
{
    memset(out, 0, sizeof *out);
    char *data;
    size_t len;
    int rc = cn_read_file(path, (size_t)INGEST_MAX_PDF_MB << 20, &data, &len, err);
    if (rc != CN_OK)
        return rc;
    rc = ingest_render_memory(path, data, len, page, dpi, out, err);
    free(data);
    return rc;
}

int ingest_render_memory(const char *path, const void *data, size_t len, int page, int dpi,
                         ingest_pixmap *out, cn_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = CN_OK;
    const unsigned char *u = (const unsigned char *)data;
    int kind = ingest_kind_of(path, u, CN_MIN(len, (size_t)4096));
    if (kind != INGEST_KIND_PDF && kind != INGEST_KIND_IMAGE)
        return cn_fail(err, CN_EFORMAT, "%s: page %d: not a PDF or an image any more", path, page);
    ingest_mu_mem mem;
    fz_context *ctx = ingest_mu_new(&mem, (size_t)1 << 30);
    if (!ctx)
        return cn_fail(err, CN_ENOMEM, "%s: cannot start MuPDF (out of memory)", path);
    fz_set_warning_callback(ctx, on_error, NULL);
    fz_set_error_callback(ctx, on_error, NULL);
    int count = 0;
    fz_try(ctx)
    {
        mu_render(ctx, u, len, kind == INGEST_KIND_PDF ? "application/pdf" : image_magic(u, len),
                  page, dpi, out, &count);
    }
    fz_catch(ctx)
    {
        rc = fz_caught(ctx) == FZ_ERROR_MEMORY
                 ? cn_fail(err, CN_ENOMEM, "%s: page %d needs more than 1024 MB to render", path,
                           page)
                 : cn_fail(err, CN_EFORMAT, "%s: page %d: %s", path, page,
                           fz_caught_message(ctx));
    }
    fz_drop_context(ctx);
    if (rc == CN_OK && !out->grey)
        rc = cn_fail(err, CN_ENOTFOUND, "%s: page %d: no such page (%d pages)", path, page, count);
    if (rc != CN_OK)
        ingest_pixmap_free(out);
    return rc;
}

void ingest_pixmap_free(ingest_pixmap *p)
{
    free(p->grey);
    memset(p, 0, sizeof *p);
}
