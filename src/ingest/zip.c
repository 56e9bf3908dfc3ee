/*
** zip.c: MuPDF contexts with capped memory, and ZIP archives of XML parts
** (Word, PowerPoint, OpenDocument) read within limits.
**
** A ZIP file is hostile until read: its entries may claim any size and
** expand to gigabytes from a few kilobytes, list a million entries, or hold
** XML nested a million deep. Every entry is read through a stream, counted
** against the document's unzipped budget (INGEST_MAX_UNZIPPED_MB), and
** parsed by MuPDF's XML parser, which is iterative (no stack to exhaust)
** and expands no entities beyond the five predefined ones and character
** references: a "billion laughs" stays a few literal "&lol;" strings.
** Walks over the tree are iterative too (zip_xml_next).
*/
#include "ingest/zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MuPDF's memory, counted and capped -------------------------------- */

typedef union mem_head {
    size_t size;
    max_align_t align;
} mem_head;

static void *mem_malloc(void *user, size_t n)
{
    ingest_mu_mem *m = user;
    if (n > m->max - m->used || n > SIZE_MAX - sizeof(mem_head))
        return NULL;
    mem_head *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->size = n;
    m->used += n;
    return h + 1;
}

static void mem_free(void *user, void *p)
{
    if (!p)
        return;
    ingest_mu_mem *m = user;
    mem_head *h = (mem_head *)p - 1;
    m->used -= h->size;
    free(h);
}

static void *mem_realloc(void *user, void *p, size_t n)
{
    if (!p)
        return mem_malloc(user, n);
    if (n == 0) {
        mem_free(user, p);
        return NULL;
    }
    ingest_mu_mem *m = user;
    mem_head *h = (mem_head *)p - 1;
    size_t old = h->size;
    if (n > old && (n - old > m->max - m->used || n > SIZE_MAX - sizeof(mem_head)))
        return NULL;
    mem_head *nh = realloc(h, sizeof *nh + n);
    if (!nh)
        return NULL;
    nh->size = n;
    m->used = m->used - old + n;
    return nh + 1;
}

fz_context *ingest_mu_new(ingest_mu_mem *m, size_t max)
{
    m->used = 0;
    m->max = max;
    m->alloc = (fz_alloc_context){m, mem_malloc, mem_realloc, mem_free};
    size_t store = CN_MIN(max / 4, (size_t)FZ_STORE_DEFAULT);
    return fz_new_context(&m->alloc, NULL, store);
}

/* ---- archives ----------------------------------------------------------- */

static void quiet(void *user, const char *msg)
{
    (void)user;
    (void)msg;
}

int zip_open(zip_reader *z, const char *name, const unsigned char *data, size_t len,
             const ingest_opts *o, cn_err *err)
{
    memset(z, 0, sizeof *z);
    cn_buf_init(&z->docs, (size_t)1 << 30);
    z->name = name;
    z->o = o;
    z->ctx = ingest_mu_new(&z->mem, o->max_mupdf_bytes);
    if (!z->ctx)
        return cn_fail(err, CN_ENOMEM, "%s: cannot start MuPDF (out of memory)", name);
    fz_set_warning_callback(z->ctx, quiet, NULL);
    fz_set_error_callback(z->ctx, quiet, NULL);
    fz_context *ctx = z->ctx;
    fz_stream *volatile stm = NULL;
    int rc = CN_OK;
    fz_try(ctx)
    {
        stm = fz_open_memory(ctx, data, len);
        z->arch = fz_open_archive_with_stream(ctx, stm);
        z->n_entries = fz_count_archive_entries(ctx, z->arch);
    }
    fz_always(ctx)
    {
        fz_drop_stream(ctx, stm);
    }
    fz_catch(ctx)
    {
        if (fz_caught(ctx) == FZ_ERROR_MEMORY)
            rc = cn_fail(err, CN_ELIMIT, "%s: its ZIP directory needs more than %zu MB of memory",
                         name, o->max_mupdf_bytes >> 20);
        else
            rc = cn_fail(err, CN_EFORMAT, "%s: damaged ZIP archive: %s", name,
                         fz_caught_message(ctx));
    }
    if (rc == CN_OK && z->n_entries > o->max_zip_entries)
        rc = cn_fail(err, CN_ELIMIT, "%s: a ZIP archive of %d entries, more than the limit of %d",
                     name, z->n_entries, o->max_zip_entries);
    if (rc != CN_OK)
        zip_close(z);
    return rc;
}

void zip_close(zip_reader *z)
{
    if (!z->ctx)
        return;
    fz_context *ctx = z->ctx;
    fz_xml **docs = (fz_xml **)z->docs.data;
    for (size_t i = 0; i < z->docs.len / sizeof *docs; i++)
        fz_drop_xml(ctx, docs[i]);
    cn_buf_free(&z->docs);
    fz_try(ctx)
    {
        fz_drop_archive(ctx, z->arch);
    }
    fz_catch(ctx)
    {
    }
    fz_drop_context(ctx);
    z->ctx = NULL;
    z->arch = NULL;
}

bool zip_has(zip_reader *z, const char *entry)
{
    fz_context *ctx = z->ctx;
    volatile int has = 0;
    fz_try(ctx)
    {
        has = fz_has_archive_entry(ctx, z->arch, entry);
    }
    fz_catch(ctx)
    {
        has = 0;
    }
    return has != 0;
}

int zip_read(zip_reader *z, const char *entry, cn_buf *out, cn_err *err)
{
    fz_context *ctx = z->ctx;
    fz_stream *volatile stm = NULL;
    volatile int rc = CN_OK;
    size_t budget = z->o->max_unzipped_bytes - z->unzipped;
    out->len = 0;
    fz_try(ctx)
    {
        stm = fz_open_archive_entry(ctx, z->arch, entry);
        unsigned char chunk[16384];
        for (;;) {
            size_t n = fz_read(ctx, stm, chunk, sizeof chunk);
            if (n == 0)
                break;
            if (n > budget - out->len) {
                rc = CN_ELIMIT;
                break;
            }
            if (cn_buf_append(out, chunk, n) != CN_OK) {
                rc = CN_ENOMEM;
                break;
            }
        }
    }
    fz_always(ctx)
    {
        fz_drop_stream(ctx, stm);
    }
    fz_catch(ctx)
    {
        rc = fz_caught(ctx) == FZ_ERROR_MEMORY ? CN_ENOMEM : CN_EFORMAT;
        if (rc == CN_EFORMAT)
            snprintf(z->why, sizeof z->why, "%s", fz_caught_message(ctx));
    }
    z->unzipped += out->len;
    if (rc == CN_ELIMIT)
        return cn_fail(err, CN_ELIMIT,
                       "%s: expands to more than %zu MB (the limit for what a ZIP archive's "
                       "entries may unpack to; a ZIP bomb?)",
                       z->name, z->o->max_unzipped_bytes >> 20);
    if (rc == CN_ENOMEM)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory reading %s", z->name, entry);
    if (rc != CN_OK)
        return cn_fail(err, CN_EFORMAT, "%s: damaged ZIP entry %s: %s", z->name, entry, z->why);
    return CN_OK;
}

int zip_xml(zip_reader *z, const char *entry, fz_xml **root, cn_err *err)
{
    *root = NULL;
    cn_buf b;
    cn_buf_init(&b, (size_t)INGEST_MAX_UNZIPPED_MB << 20);
    int rc = zip_read(z, entry, &b, err);
    if (rc != CN_OK) {
        cn_buf_free(&b);
        return rc;
    }
    fz_context *ctx = z->ctx;
    fz_buffer *volatile fb = NULL;
    fz_xml *volatile doc = NULL;
    fz_try(ctx)
    {
        fb = fz_new_buffer_from_copied_data(ctx, (const unsigned char *)(b.data ? b.data : ""),
                                            b.len);
        doc = fz_parse_xml(ctx, fb, 1);
    }
    fz_always(ctx)
    {
        fz_drop_buffer(ctx, fb);
    }
    fz_catch(ctx)
    {
        rc = fz_caught(ctx) == FZ_ERROR_MEMORY
                 ? cn_fail(err, CN_ENOMEM, "%s: %s needs more than %zu MB of memory to parse",
                           z->name, entry, z->o->max_mupdf_bytes >> 20)
                 : cn_fail(err, CN_EFORMAT, "%s: damaged XML in %s: %s", z->name, entry,
                           fz_caught_message(ctx));
    }
    cn_buf_free(&b);
    if (rc == CN_OK) {
        fz_xml *dp = doc;
        if (cn_buf_append(&z->docs, &dp, sizeof dp) != CN_OK) {
            fz_drop_xml(ctx, doc);
            return cn_fail(err, CN_ENOMEM, "%s: out of memory", z->name);
        }
        *root = fz_xml_root((fz_xml_doc *)doc);
        if (!*root)
            rc = cn_fail(err, CN_EFORMAT, "%s: %s is empty", z->name, entry);
    }
    return rc;
}

size_t zip_mark(zip_reader *z)
{
    return z->docs.len / sizeof(fz_xml *);
}

void zip_release(zip_reader *z, size_t mark)
{
    fz_xml **docs = (fz_xml **)z->docs.data;
    size_t n = z->docs.len / sizeof *docs;
    for (size_t i = mark; i < n; i++)
        fz_drop_xml(z->ctx, docs[i]);
    if (mark < n)
        z->docs.len = mark * sizeof *docs;
}

/* ---- walking ------------------------------------------------------------ */

fz_xml *zip_xml_next(fz_xml *x, fz_xml *top, bool descend)
{
    if (descend && !fz_xml_text(x) && fz_xml_down(x))
        return fz_xml_down(x);
    while (x && x != top) {
        if (fz_xml_next(x))
            return fz_xml_next(x);
        x = fz_xml_up(x);
    }
    return NULL;
}

bool zip_is(fz_xml *x, const char *tag)
{
    const char *t = fz_xml_tag(x);
    return t && strcmp(t, tag) == 0;
}

fz_xml *zip_child(fz_xml *x, const char *tag)
{
    for (fz_xml *c = x ? fz_xml_down(x) : NULL; c; c = fz_xml_next(c))
        if (zip_is(c, tag))
            return c;
    return NULL;
}

int zip_resolve(const char *base, const char *target, char *out, size_t cap)
{
    char tmp[1024];
    if (target[0] == '/') {
        if (snprintf(tmp, sizeof tmp, "%s", target + 1) >= (int)sizeof tmp)
            return CN_ELIMIT;
    } else {
        const char *slash = strrchr(base, '/');
        int dir = slash ? (int)(slash - base + 1) : 0;
        if (snprintf(tmp, sizeof tmp, "%.*s%s", dir, base, target) >= (int)sizeof tmp)
            return CN_ELIMIT;
    }
    /* fold "." and ".." segments */
    size_t o = 0;
    const char *p = tmp;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (o && out[o - 1] != '/')
                o--;
            if (o)
                o--;
            while (o && out[o - 1] != '/')
                o--;
        } else {
            if (o + n + 2 > cap)
                return CN_ELIMIT;
            memcpy(out + o, p, n);
            o += n;
            out[o++] = '/';
        }
        p += n + (e ? 1 : 0);
    }
    if (o)
        o--; /* the last '/' */
    out[o] = 0;
    return CN_OK;
}

void zip_text(fz_xml *x, cn_buf *out)
{
    fz_xml *top = x;
    for (fz_xml *n = x; n; n = zip_xml_next(n, top, true)) {
        const char *t = fz_xml_text(n);
        if (t && cn_buf_append(out, t, strlen(t)) != CN_OK)
            return;
    }
}
