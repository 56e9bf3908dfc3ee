/*
** rag.c: prompt assembly, citation checking and extractive answers.
*/
#include "rag/rag.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char rag_system_prompt[] =
    "You answer questions using only the numbered passages the user gives you. "
    "Cite the passages you use as [1], [2], ... right after the statement they support. "
    "If the passages do not contain the answer, say plainly that the documents do not say, "
    "and do not guess. Be concise.";

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int rag_format_source(const rag_source *s, int i, cn_buf *out)
{
    int rc = s->page_end > s->page_start
                 ? cn_buf_printf(out, "[%d] %s, pp. %d-%d", i + 1, base_name(s->path),
                                 s->page_start, s->page_end)
                 : cn_buf_printf(out, "[%d] %s, p. %d", i + 1, base_name(s->path), s->page_start);
    if (rc == CN_OK && s->ocr)
        rc = cn_buf_printf(out, " (OCR)");
    if (rc == CN_OK && s->locator && s->locator[0])
        rc = cn_buf_printf(out, ", %s", s->locator);
    return rc;
}

static int estimate(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    (void)s;
    return (int)(n / 4 + 1);
}

int rag_build_user(const char *question, const rag_source *src, int n, int budget,
                   rag_count_fn count, void *ctx, cn_buf *out, cn_err *err)
{
    if (!count)
        count = estimate;
    int used_tokens = count(ctx, question, strlen(question)) + 32; /* question and framing */
    int used = 0;
    cn_buf part;
    cn_buf_init(&part, (size_t)1 << 24);
    int rc = cn_buf_printf(out, "Passages:\n\n");
    for (int i = 0; i < n && rc == CN_OK; i++) {
        part.len = 0;
        rc = rag_format_source(&src[i], i, &part);
        rc = rc ? rc : cn_buf_printf(&part, "\n%s\n\n", src[i].text);
        if (rc)
            break;
        int t = count(ctx, part.data, part.len);
        if (used_tokens + t > budget)
            break; /* the rest would not fit: fewer passages, and the caller says so */
        used_tokens += t;
        rc = cn_buf_append(out, part.data, part.len);
        used++;
    }
    rc = rc ? rc : cn_buf_printf(out, "Question: %s\n", question);
    cn_buf_free(&part);
    if (rc)
        return cn_fail(err, CN_ENOMEM, "the prompt is too large");
    return used;
}

/* ---- citations ------------------------------------------------------------ */

void rag_cite_init(rag_cite_filter *f, int n_sources, bool *used)
{
    memset(f, 0, sizeof *f);
    f->n_sources = n_sources;
    f->used = used;
}

/* Is held[0..n) a citation in progress: "[", digits, ", " and digits? */
static bool may_be_citation(const char *s, int n)
{
    if (n == 0 || s[0] != '[')
        return false;
    for (int i = 1; i < n; i++)
        if (!isdigit((unsigned char)s[i]) && s[i] != ',' && s[i] != ' ')
            return false;
    return true;
}

/* A complete "[...]" in held: keep it if every number names a passage. */
static int decide(rag_cite_filter *f, cn_buf *out)
{
    int nums[8], k = 0;
    bool ok = true;
    const char *p = f->held + 1;
    while (*p && *p != ']') {
        if (isdigit((unsigned char)*p)) {
            long v = strtol(p, (char **)&p, 10);
            if (k < 8)
                nums[k++] = (int)CN_MIN(v, 1 << 20);
        } else
            p++;
    }
    if (k == 0) /* "[]" or "[, ]": not a citation, plain text */
        return cn_buf_append(out, f->held, (size_t)f->n_held);
    for (int i = 0; i < k; i++)
        if (nums[i] < 1 || nums[i] > f->n_sources) {
            ok = false;
            if (f->n_invalid < 16)
                f->invalid[f->n_invalid] = nums[i];
            f->n_invalid++;
        }
    if (!ok)
        return CN_OK; /* dropped */
    for (int i = 0; i < k; i++)
        f->used[nums[i] - 1] = true;
    return cn_buf_append(out, f->held, (size_t)f->n_held);
}

int rag_cite_feed(rag_cite_filter *f, const char *text, size_t len, cn_buf *out)
{
    int rc = CN_OK;
    for (size_t i = 0; i < len && rc == CN_OK; i++) {
        char c = text[i];
        if (f->n_held == 0) {
            if (c == '[')
                f->held[f->n_held++] = c;
            else
                rc = cn_buf_append(out, &c, 1);
            continue;
        }
        if (c == ']') {
            f->held[f->n_held++] = c;
            f->held[f->n_held] = 0;
            rc = decide(f, out);
            f->n_held = 0;
            continue;
        }
        f->held[f->n_held++] = c;
        if (!may_be_citation(f->held, f->n_held) || f->n_held >= (int)sizeof f->held - 2) {
            /* not a citation after all: release all but a new '[' */
            bool reopen = c == '[';
            rc = cn_buf_append(out, f->held, (size_t)(f->n_held - reopen));
            f->n_held = 0;
            if (reopen)
                f->held[f->n_held++] = '[';
        }
    }
    return rc;
}

int rag_cite_flush(rag_cite_filter *f, cn_buf *out)
{
    int rc = f->n_held ? cn_buf_append(out, f->held, (size_t)f->n_held) : CN_OK;
    f->n_held = 0;
    return rc;
}
