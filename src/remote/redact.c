/*
** redact.c: patterns the user never wants sent (names, account numbers),
** as `redact = REGEX` lines in the settings file (PCRE2 syntax, UTF-8),
** replaced by "[redacted]" in the question and the passages before a
** remote sees them -- and before the preview shows them, so what is shown
** is what goes.
*/
#define PCRE2_CODE_UNIT_WIDTH 8
#include "remote/remote.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PATTERNS = 32 };

struct rmt_redactor {
    pcre2_code *re[MAX_PATTERNS];
    int n;
};

void rmt_redactor_free(rmt_redactor *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        pcre2_code_free(r->re[i]);
    free(r);
}

typedef struct loading {
    rmt_redactor *r;
    cn_err *err;
    int rc;
} loading;

static int add_pattern(void *ctx, const char *p)
{
    loading *ld = ctx;
    rmt_redactor *r = ld->r;
    if (!*p)
        return 0;
    char path[4096] = "the settings";
    cn_config_path(path, sizeof path);
    if (r->n == MAX_PATTERNS) {
        ld->rc = cn_fail(ld->err, CN_ELIMIT, "%s: more than %d redact patterns", path,
                         MAX_PATTERNS);
        return 1;
    }
    int code;
    PCRE2_SIZE at;
    r->re[r->n] = pcre2_compile((PCRE2_SPTR)p, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code,
                                &at, NULL);
    if (!r->re[r->n]) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        /* a pattern that does not compile must not silently let text through */
        ld->rc = cn_fail(ld->err, CN_EFORMAT, "%s: redact pattern '%s': %s at offset %zu "
                         "(nothing is sent until it is fixed)", path, p, (char *)msg, (size_t)at);
        return 1;
    }
    r->n++;
    return 0;
}

int rmt_redactor_load(rmt_redactor **out, cn_err *err)
{
    *out = NULL;
    rmt_redactor *r = cn_calloc(1, sizeof *r);
    if (!r)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    loading ld = {r, err, CN_OK};
    cn_config_each("redact", add_pattern, &ld);
    if (ld.rc) {
        rmt_redactor_free(r);
        return ld.rc;
    }
    *out = r;
    return CN_OK;
}

int rmt_redactor_count(const rmt_redactor *r) { return r ? r->n : 0; }

char *rmt_redact(const rmt_redactor *r, const char *in, int *count)
{
    *count = 0;
    size_t len = strlen(in);
    char *cur = cn_malloc(len + 1);
    if (!cur)
        return NULL;
    memcpy(cur, in, len + 1);
    for (int i = 0; r && i < r->n; i++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re[i], NULL);
        PCRE2_SIZE out_len = 0;
        /* first the size, then the text */
        int k = pcre2_substitute(r->re[i], (PCRE2_SPTR)cur, PCRE2_ZERO_TERMINATED, 0,
                                 PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
                                     PCRE2_SUBSTITUTE_LITERAL,
                                 md, NULL, (PCRE2_SPTR) "[redacted]", 10, NULL, &out_len);
        char *next = k >= 0 || k == PCRE2_ERROR_NOMEMORY ? cn_malloc(out_len + 1) : NULL;
        PCRE2_SIZE cap = out_len + 1;
        if (next)
            k = pcre2_substitute(r->re[i], (PCRE2_SPTR)cur, PCRE2_ZERO_TERMINATED, 0,
                                 PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_LITERAL, md, NULL,
                                 (PCRE2_SPTR) "[redacted]", 10, (PCRE2_UCHAR *)next, &cap);
        pcre2_match_data_free(md);
        free(cur);
        if (!next || k < 0) {
            free(next);
            return NULL; /* the caller sends nothing */
        }
        *count += k;
        cur = next;
    }
    return cur;
}
