/*
** text.c: plain text and Markdown. Both are decoded by ingest_decode_text()
** (UTF-16 converted, invalid UTF-8 repaired and counted) and cut into pages
** by ingest_set_pages(). Markdown gets a light clean-up so that passages
** read as prose: heading marks, emphasis, link targets, code fences, table
** rules and front matter go; the text of every element stays. The title is
** the front matter's title:, else the first heading.
*/
#include "ingest/ingest_int.h"

#include <string.h>

int ingest_text(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err)
{
    cn_buf t;
    cn_buf_init(&t, len * 3 + 16);
    int rc = ingest_decode_text(d, name, data, len, &t, err);
    if (rc == CN_OK)
        rc = ingest_set_pages(d, name, t.data ? t.data : "", t.len, o->text_page_words, err);
    cn_buf_free(&t);
    return rc;
}

/* ---- Markdown --------------------------------------------------------- */

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* Leading spaces (up to max), returns how many were skipped. */
static size_t indent(const char *s, size_t n, size_t max)
{
    size_t i = 0;
    while (i < n && i < max && s[i] == ' ')
        i++;
    return i;
}

/* A thematic break: three or more of the same -, * or _ with optional spaces. */
static bool is_rule(const char *s, size_t n)
{
    size_t i = indent(s, n, 3);
    if (i >= n || (s[i] != '-' && s[i] != '*' && s[i] != '_'))
        return false;
    char c = s[i];
    int k = 0;
    for (; i < n; i++) {
        if (s[i] == c)
            k++;
        else if (s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return k >= 3;
}

/* A setext underline: a run of = or - (level 1 or 2), or 0. */
static int setext_level(const char *s, size_t n)
{
    size_t i = indent(s, n, 3);
    if (i >= n || (s[i] != '=' && s[i] != '-'))
        return 0;
    char c = s[i];
    while (i < n && s[i] == c)
        i++;
    if (!is_blank(s + i, n - i))
        return 0;
    return c == '=' ? 1 : 2;
}

/* An ATX heading "## Title ##": returns the level and the title's span. */
static int atx_heading(const char *s, size_t n, size_t *ts, size_t *tn)
{
    size_t i = indent(s, n, 3), lvl = 0;
    while (i < n && s[i] == '#')
        i++, lvl++;
    if (lvl == 0 || lvl > 6 || (i < n && s[i] != ' ' && s[i] != '\t'))
        return 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t e = n;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    size_t h = e;
    while (h > i && s[h - 1] == '#')
        h--;
    if (h == i || s[h - 1] == ' ' || s[h - 1] == '\t') /* closing run of # */
        e = h;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    *ts = i;
    *tn = e - i;
    return (int)lvl;
}

/* A fence line ``` or ~~~ (three or more), returns its character or 0. */
static char fence(const char *s, size_t n, size_t *run)
{
    size_t i = indent(s, n, 3);
    if (i + 3 > n || (s[i] != '`' && s[i] != '~'))
        return 0;
    char c = s[i];
    size_t k = 0;
    while (i < n && s[i] == c)
        i++, k++;
    if (k < 3)
        return 0;
    *run = k;
    return c;
}

/* A link reference definition "[label]: url". */
static bool is_link_def(const char *s, size_t n)
{
    size_t i = indent(s, n, 3);
    if (i >= n || s[i] != '[')
        return false;
    const char *e = memchr(s + i, ']', n - i);
    return e && (size_t)(e - s) + 1 < n && e[1] == ':' && e > s + i + 1;
}

/* A table delimiter row "| --- | :-: |". */
static bool is_table_rule(const char *s, size_t n)
{
    bool dash = false, pipe = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-')
            dash = true;
        else if (c == '|')
            pipe = true;
        else if (c != ':' && c != ' ' && c != '\t')
            return false;
    }
    return dash && pipe;
}

static int md_inline_depth(cn_buf *out, const char *s, size_t n, int depth);

/* After '[' at s[i]: the matching ']' (nesting counted), or n. */
static size_t close_bracket(const char *s, size_t n, size_t i)
{
    int level = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '\\') {
            j++;
            continue;
        }
        if (s[j] == '[')
            level++;
        else if (s[j] == ']' && --level == 0)
            return j;
    }
    return n;
}

static int md_inline_depth(cn_buf *out, const char *s, size_t n, int depth)
{
    int rc = CN_OK;
    size_t i = 0;
    while (i < n && rc == CN_OK) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && strchr("\\`*_{}[]()#+-.!|~<>", s[i + 1])) {
            rc = cn_buf_append(out, s + i + 1, 1);
            i += 2;
        } else if (c == '`') {
            /* a code span: the same number of backticks closes it */
            size_t k = i;
            while (k < n && s[k] == '`')
                k++;
            size_t run = k - i, j = k;
            const char *end = NULL;
            while (j < n) {
                const char *p = memchr(s + j, '`', n - j);
                if (!p)
                    break;
                size_t q = (size_t)(p - s), r = q;
                while (r < n && s[r] == '`')
                    r++;
                if (r - q == run) {
                    end = p;
                    break;
                }
                j = r;
            }
            if (end) {
                rc = cn_buf_append(out, s + k, (size_t)(end - (s + k)));
                i = (size_t)(end - s) + run;
            } else {
                rc = cn_buf_append(out, s + i, run);
                i = k;
            }
        } else if ((c == '[' || (c == '!' && i + 1 < n && s[i + 1] == '[')) && depth < 8) {
            size_t b = c == '!' ? i + 1 : i;
            size_t e = close_bracket(s, n, b);
            if (e < n && e + 1 < n && (s[e + 1] == '(' || s[e + 1] == '[')) {
                char closer = s[e + 1] == '(' ? ')' : ']';
                const char *t = memchr(s + e + 2, closer, n - e - 2);
                if (t) {
                    rc = md_inline_depth(out, s + b + 1, e - b - 1, depth + 1);
                    i = (size_t)(t - s) + 1;
                    continue;
                }
            }
            rc = cn_buf_append(out, s + i, b + 1 - i);
            i = b + 1;
        } else if (c == '<') {
            /* autolinks keep their target; inline HTML tags go */
            size_t j = i + 1;
            while (j < n && j - i < 512 && s[j] != '>' && s[j] != '<' && s[j] != ' ')
                j++;
            bool tag = j < n && j > i + 1 &&
                       ((s[i + 1] >= 'a' && s[i + 1] <= 'z') ||
                        (s[i + 1] >= 'A' && s[i + 1] <= 'Z') || s[i + 1] == '/' || s[i + 1] == '!');
            if (tag && s[j] == '>' &&
                (memmem(s + i, j - i, "://", 3) || memchr(s + i, '@', j - i))) {
                rc = cn_buf_append(out, s + i + 1, j - i - 1);
                i = j + 1;
            } else if (tag) {
                const char *gt = memchr(s + i, '>', CN_MIN(n - i, (size_t)1024));
                if (gt) {
                    i = (size_t)(gt - s) + 1;
                    rc = cn_buf_append(out, " ", 1);
                } else {
                    rc = cn_buf_append(out, "<", 1);
                    i++;
                }
            } else {
                rc = cn_buf_append(out, "<", 1);
                i++;
            }
        } else if (c == '*' || c == '_' || c == '~') {
            size_t k = i;
            while (k < n && s[k] == c)
                k++;
            unsigned char before = i ? (unsigned char)s[i - 1] : ' ';
            unsigned char after = k < n ? (unsigned char)s[k] : ' ';
            bool sp_before = before == ' ' || before == '\t';
            bool sp_after = after == ' ' || after == '\t';
            bool drop;
            if (c == '_') /* snake_case stays */
                drop = !(is_alnum(before) && is_alnum(after)) && !(sp_before && sp_after);
            else if (c == '~')
                drop = k - i == 2;
            else
                drop = !(sp_before && sp_after);
            if (!drop)
                rc = cn_buf_append(out, s + i, k - i);
            i = k;
        } else {
            size_t k = i + 1;
            while (k < n && !strchr("\\`[!<*_~", s[k]))
                k++;
            rc = cn_buf_append(out, s + i, k - i);
            i = k;
        }
    }
    return rc;
}

int ingest_md_inline(cn_buf *out, const char *s, size_t n)
{
    return md_inline_depth(out, s, n, 0);
}

/* The value of "title:" in YAML front matter, unquoted. */
static bool front_title(const char *s, size_t n, size_t *ts, size_t *tn)
{
    if (n < 6 || strncmp(s, "title:", 6) != 0)
        return false;
    size_t i = 6, e = n;
    while (i < e && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    if (e - i >= 2 && (s[i] == '"' || s[i] == '\'') && s[e - 1] == s[i])
        i++, e--;
    *ts = i;
    *tn = e - i;
    return e > i;
}

int ingest_markdown(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                    const ingest_opts *o, cn_err *err)
{
    cn_buf t, out;
    cn_buf_init(&t, len * 3 + 16);
    cn_buf_init(&out, len * 3 + 16);
    int rc = ingest_decode_text(d, name, data, len, &t, err);
    if (rc != CN_OK)
        goto done;
    const char *s = t.data ? t.data : "";
    size_t n = t.len, i = 0;
    bool have_title = false;

    /* YAML front matter: "---" on the first line, closed by "---" or "..." */
    if (n >= 4 && strncmp(s, "---\n", 4) == 0) {
        size_t j = 4;
        while (j < n) {
            const char *nl = memchr(s + j, '\n', n - j);
            size_t e = nl ? (size_t)(nl - s) : n;
            size_t ts, tn;
            if ((e - j == 3 && (strncmp(s + j, "---", 3) == 0 || strncmp(s + j, "...", 3) == 0))) {
                i = nl ? e + 1 : e;
                break;
            }
            if (!have_title && front_title(s + j, e - j, &ts, &tn)) {
                if (ingest_set_title(d, s + j + ts, tn) != CN_OK)
                    goto nomem;
                have_title = true;
            }
            j = nl ? e + 1 : n;
        }
        if (i == 0) /* never closed: not front matter */
            have_title = false, d->title = NULL;
    }

    char in_fence = 0;
    size_t fence_run = 0;
    int r = CN_OK;
    while (i < n && r == CN_OK) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        const char *line = s + i;
        size_t ll = e - i;
        size_t next = nl ? e + 1 : n;
        size_t run;
        char f = fence(line, ll, &run);
        if (in_fence) {
            if (f == in_fence && run >= fence_run &&
                is_blank(line + indent(line, ll, 3) + run, ll - indent(line, ll, 3) - run)) {
                in_fence = 0;
                r = cn_buf_append(&out, "\n\n", 2);
            } else {
                r = cn_buf_append(&out, line, ll);
                if (r == CN_OK)
                    r = cn_buf_append(&out, "\n", 1);
            }
            i = next;
            continue;
        }
        if (f) {
            in_fence = f;
            fence_run = run;
            r = cn_buf_append(&out, "\n\n", 2);
            i = next;
            continue;
        }
        /* block quotes: drop the markers */
        size_t q = indent(line, ll, 3);
        while (q < ll && line[q] == '>') {
            q++;
            if (q < ll && line[q] == ' ')
                q++;
            q += indent(line + q, ll - q, 3);
        }
        if (q && q <= ll && memchr(line, '>', q)) {
            line += q;
            ll -= q;
        }
        size_t ts, tn;
        int lvl = atx_heading(line, ll, &ts, &tn);
        int setext = 0;
        size_t next_e = 0;
        if (!lvl && !is_blank(line, ll) && next < n) {
            const char *nl2 = memchr(s + next, '\n', n - next);
            next_e = nl2 ? (size_t)(nl2 - s) : n;
            setext = setext_level(s + next, next_e - next);
            /* "---" under a list item or after nothing is a rule, not a heading */
            if (setext == 2 &&
                (line[indent(line, ll, 3)] == '-' || line[indent(line, ll, 3)] == '*'))
                setext = 0;
        }
        if (lvl || setext) {
            if (!lvl) {
                ts = indent(line, ll, 3);
                tn = ll - ts;
                while (tn && (line[ts + tn - 1] == ' ' || line[ts + tn - 1] == '\t'))
                    tn--;
            }
            size_t start = out.len;
            r = cn_buf_append(&out, "\n\n", 2);
            if (r == CN_OK)
                r = ingest_md_inline(&out, line + ts, tn);
            if (r == CN_OK && !have_title && out.len > start + 2) {
                if (ingest_set_title(d, out.data + start + 2, out.len - start - 2) != CN_OK)
                    goto nomem;
                have_title = d->title[0] != 0;
            }
            if (r == CN_OK)
                r = cn_buf_append(&out, "\n\n", 2);
            i = setext ? (next_e < n ? next_e + 1 : n) : next;
            continue;
        }
        if (is_table_rule(line, ll) && !is_rule(line, ll)) {
            i = next;
            continue;
        }
        if (is_rule(line, ll) || is_link_def(line, ll)) {
            r = cn_buf_append(&out, "\n", 1);
            i = next;
            continue;
        }
        /* table rows lose their outer pipes */
        size_t a = indent(line, ll, 3), b = ll;
        while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t'))
            b--;
        if (b > a && line[a] == '|') {
            a++;
            while (a < b && (line[a] == ' ' || line[a] == '\t'))
                a++;
            if (b > a && line[b - 1] == '|')
                b--;
            r = cn_buf_append(&out, line, indent(line, ll, 3));
            line += a;
            ll = b - a;
        }
        if (r == CN_OK)
            r = ingest_md_inline(&out, line, ll);
        if (r == CN_OK)
            r = cn_buf_append(&out, "\n", 1);
        i = next;
    }
    if (r != CN_OK)
        goto nomem;
    rc = ingest_set_pages(d, name, out.data ? out.data : "", out.len, o->text_page_words, err);
    goto done;
nomem:
    rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
done:
    cn_buf_free(&t);
    cn_buf_free(&out);
    return rc;
}
