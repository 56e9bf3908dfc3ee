/*
** base.c: errors, allocation helpers, arena, byte buffer, file reading,
** UTF-8 helpers and half-precision conversion.
*/
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cn_fail(cn_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *cn_strerror(int code)
{
    switch (code) {
    case CN_OK: return "success";
    case CN_ENOMEM: return "out of memory";
    case CN_EIO: return "i/o error";
    case CN_EFORMAT: return "bad format";
    case CN_ENOTFOUND: return "not found";
    case CN_EVERIFY: return "verification failed";
    case CN_EUNSUPPORTED: return "unsupported";
    case CN_EINVAL: return "invalid argument";
    case CN_ELIMIT: return "limit reached";
    case CN_ECANCELED: return "cancelled";
    }
    return "unknown error";
}

void *cn_malloc(size_t n) { return malloc(n ? n : 1); }

void *cn_malloc_array(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    return malloc(n ? n : 1);
}

void *cn_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL; /* checked here, not left to the allocator (ASan aborts on it) */
    return calloc(count ? count : 1, size ? size : 1);
}

void *cn_realloc_array(void *p, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    return realloc(p, n ? n : 1);
}

/* ---- arena ------------------------------------------------------------ */

struct cn_arena_block {
    cn_arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void cn_arena_init(cn_arena *a, size_t max_bytes)
{
    a->head = NULL;
    a->used_total = 0;
    a->max_bytes = max_bytes;
}

void *cn_arena_alloc(cn_arena *a, size_t n)
{
    /* Round up to 16 without wrapping: a size within 15 of SIZE_MAX (a
    ** hostile length plus one, say) would round to 0 and "succeed". */
    if (n > SIZE_MAX - 15)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    cn_arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t sz = n > 65536 ? n : 65536;
        if (sz > a->max_bytes || a->used_total > a->max_bytes - sz || sz > SIZE_MAX - sizeof *b)
            return NULL;
        b = malloc(sizeof *b + sz);
        if (!b)
            return NULL;
        b->size = sz;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->used_total += sz;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *cn_arena_strndup(cn_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = cn_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void cn_arena_free(cn_arena *a)
{
    cn_arena_block *b = a->head;
    while (b) {
        cn_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

/* ---- byte buffer ------------------------------------------------------ */

void cn_buf_init(cn_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->alloc = 0;
    b->max = max;
}

int cn_buf_append(cn_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return CN_ENOMEM;
    if (b->len + n + 1 > b->alloc) {
        size_t na = b->alloc ? b->alloc : 64;
        while (na < b->len + n + 1)
            na *= 2;
        char *d = realloc(b->data, na);
        if (!d)
            return CN_ENOMEM;
        b->data = d;
        b->alloc = na;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return CN_OK;
}

int cn_buf_printf(cn_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CN_EINVAL;
    if ((size_t)n < sizeof tmp)
        return cn_buf_append(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return CN_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = cn_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void cn_buf_free(cn_buf *b)
{
    free(b->data);
    cn_buf_init(b, b->max);
}

/* ---- files ------------------------------------------------------------ */

int cn_read_file(const char *path, size_t max, char **out, size_t *out_len, cn_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_fail(err, errno == ENOENT ? CN_ENOTFOUND : CN_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    cn_buf b;
    cn_buf_init(&b, max);
    char chunk[65536];
    size_t n;
    int rc = CN_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (cn_buf_append(&b, chunk, n) != CN_OK) {
            rc = cn_fail(err, CN_ENOMEM, "%s: file larger than %zu bytes", path, max);
            break;
        }
    }
    if (rc == CN_OK && ferror(f))
        rc = cn_fail(err, CN_EIO, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    if (rc != CN_OK) {
        cn_buf_free(&b);
        return rc;
    }
    if (!b.data && cn_buf_append(&b, "", 0) != CN_OK)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    *out = b.data;
    if (out_len)
        *out_len = b.len;
    return CN_OK;
}

/* ---- UTF-8 ------------------------------------------------------------ */

int cn_utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* Validity follows RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF. */
static int utf8_valid_at(const unsigned char *s, size_t n)
{
    int len = cn_utf8_seq_len(s[0]);
    if (len == 0 || (size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (len == 3) {
        if (s[0] == 0xE0 && s[1] < 0xA0)
            return 0;
        if (s[0] == 0xED && s[1] >= 0xA0)
            return 0;
    } else if (len == 4) {
        if (s[0] == 0xF0 && s[1] < 0x90)
            return 0;
        if (s[0] == 0xF4 && s[1] >= 0x90)
            return 0;
    }
    return len;
}

size_t cn_utf8_valid_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        int len = utf8_valid_at(s + i, n - i);
        if (!len)
            break;
        i += (size_t)len;
    }
    return i;
}

/* ---- time ------------------------------------------------------------- */

double cn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- half precision --------------------------------------------------- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float cn_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    if (exp == 0x1F) /* inf or nan */
        return u2f(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return u2f(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t cn_fp32_to_fp16(float f)
{
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7FFFFFFF;
    if (a >= 0x7F800000) /* inf or nan */
        return (uint16_t)(sign | 0x7C00 | (a > 0x7F800000 ? 0x200 : 0));
    if (a >= 0x477FF000) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7C00);
    if (a < 0x38800000) {
        /* result is subnormal or zero: scale so the unit is 2^-24 and round */
        float v = u2f(a) * 16777216.0f; /* exact: multiply by 2^24 */
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1)))
            m++;
        return (uint16_t)(sign | m);
    }
    /* normal: drop 13 mantissa bits with round-to-nearest-even */
    uint32_t r = a + 0xFFF + ((a >> 13) & 1);
    r -= (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

float cn_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t cn_fp32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000) /* nan: keep it quiet */
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
