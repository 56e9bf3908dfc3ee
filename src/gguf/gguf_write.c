/*
** gguf_write.c: a small GGUF v3 writer for tools/mkmodel and the tests.
** Metadata is serialized into a buffer as it is declared; tensor data is
** streamed to the file afterwards so that multi-gigabyte models never sit in
** memory whole.
*/
#include "gguf/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct w_tensor {
    uint64_t size, offset;
} w_tensor;

struct gguf_writer {
    cn_buf kv, ti;          /* serialized metadata and tensor infos */
    uint64_t n_kv, n_tensors;
    w_tensor *tensors;
    uint64_t data_size;     /* running offset in the data section */
    uint32_t alignment;
    FILE *f;
    char *path;
    uint64_t cur, cur_written; /* tensor being streamed, bytes of it so far */
    int failed;
};

int gguf_writer_new(gguf_writer **out, cn_err *err)
{
    gguf_writer *w = cn_calloc(1, sizeof *w);
    if (!w)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    cn_buf_init(&w->kv, (size_t)1 << 32);
    cn_buf_init(&w->ti, (size_t)1 << 32);
    w->alignment = 32;
    *out = w;
    return CN_OK;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    cn_buf_free(&w->kv);
    cn_buf_free(&w->ti);
    free(w->tensors);
    free(w->path);
    free(w);
}

static int put(cn_buf *b, const void *p, size_t n) { return cn_buf_append(b, p, n); }

static int put_u32(cn_buf *b, uint32_t v) { return put(b, &v, 4); }
static int put_u64(cn_buf *b, uint64_t v) { return put(b, &v, 8); }

static int put_str(cn_buf *b, const char *s, uint64_t len)
{
    int rc = put_u64(b, len);
    return rc ? rc : put(b, s, (size_t)len);
}

static int key_head(gguf_writer *w, const char *key, uint32_t type)
{
    w->n_kv++;
    int rc = put_str(&w->kv, key, strlen(key));
    return rc ? rc : put_u32(&w->kv, type);
}

int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v)
{
    if (!strcmp(key, "general.alignment"))
        w->alignment = v;
    int rc = key_head(w, key, GGUF_T_UINT32);
    return rc ? rc : put_u32(&w->kv, v);
}

int gguf_w_i32(gguf_writer *w, const char *key, int32_t v)
{
    int rc = key_head(w, key, GGUF_T_INT32);
    return rc ? rc : put(&w->kv, &v, 4);
}

int gguf_w_f32(gguf_writer *w, const char *key, float v)
{
    int rc = key_head(w, key, GGUF_T_FLOAT32);
    return rc ? rc : put(&w->kv, &v, 4);
}

int gguf_w_bool(gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    int rc = key_head(w, key, GGUF_T_BOOL);
    return rc ? rc : put(&w->kv, &b, 1);
}

int gguf_w_str(gguf_writer *w, const char *key, const char *s)
{
    int rc = key_head(w, key, GGUF_T_STRING);
    return rc ? rc : put_str(&w->kv, s, strlen(s));
}

static int elem_size(uint32_t t)
{
    static const int sizes[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GGUF_T_COUNT ? sizes[t] : 0;
}

int gguf_w_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n)
{
    if (!elem_size(elem_type))
        return CN_EINVAL;
    int rc = key_head(w, key, GGUF_T_ARRAY);
    rc = rc ? rc : put_u32(&w->kv, elem_type);
    rc = rc ? rc : put_u64(&w->kv, n);
    return rc ? rc : put(&w->kv, data, (size_t)(n * (uint64_t)elem_size(elem_type)));
}

int gguf_w_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n)
{
    int rc = key_head(w, key, GGUF_T_ARRAY);
    rc = rc ? rc : put_u32(&w->kv, GGUF_T_STRING);
    rc = rc ? rc : put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = put_str(&w->kv, strs[i].ptr, strs[i].len);
    return rc;
}

static int put_value(cn_buf *b, const gguf_value *v);

static int put_array_body(cn_buf *b, const gguf_value *v)
{
    int rc = put_u32(b, v->arr.type);
    rc = rc ? rc : put_u64(b, v->arr.n);
    if (rc)
        return rc;
    if (v->arr.type == GGUF_T_STRING) {
        for (uint64_t i = 0; i < v->arr.n && !rc; i++)
            rc = put_str(b, v->arr.strs[i].ptr, v->arr.strs[i].len);
        return rc;
    }
    if (v->arr.type == GGUF_T_ARRAY) {
        for (uint64_t i = 0; i < v->arr.n && !rc; i++)
            rc = put_array_body(b, &v->arr.vals[i]);
        return rc;
    }
    return put(b, v->arr.data, (size_t)(v->arr.n * (uint64_t)elem_size(v->arr.type)));
}

static int put_value(cn_buf *b, const gguf_value *v)
{
    union {
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        float f32;
        uint64_t u64;
        double f64;
    } x;
    switch (v->type) {
    case GGUF_T_STRING: return put_str(b, v->str.ptr, v->str.len);
    case GGUF_T_ARRAY: return put_array_body(b, v);
    case GGUF_T_FLOAT32: x.f32 = (float)v->f64; break;
    case GGUF_T_FLOAT64: x.f64 = v->f64; break;
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: x.u8 = (uint8_t)v->u64; break;
    case GGUF_T_UINT16: case GGUF_T_INT16: x.u16 = (uint16_t)v->u64; break;
    case GGUF_T_UINT32: case GGUF_T_INT32: x.u32 = (uint32_t)v->u64; break;
    default: x.u64 = v->u64; break;
    }
    return put(b, &x, (size_t)elem_size(v->type));
}

int gguf_w_copy(gguf_writer *w, const gguf_kv *kv)
{
    int rc = key_head(w, kv->key, kv->val.type);
    return rc ? rc : put_value(&w->kv, &kv->val);
}

int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne)
{
    if (n_dims < 1 || n_dims > 4 || !gguf_ttype_block(type) || ne[0] % gguf_ttype_block(type))
        return CN_EINVAL;
    w_tensor *t = cn_realloc_array(w->tensors, (size_t)w->n_tensors + 1, sizeof *t);
    if (!t)
        return CN_ENOMEM;
    w->tensors = t;
    uint64_t rows = 1;
    for (int d = 1; d < n_dims; d++)
        rows *= (uint64_t)ne[d];
    t[w->n_tensors].size = gguf_row_size(type, ne[0]) * rows;
    t[w->n_tensors].offset = w->data_size;
    w->data_size += (t[w->n_tensors].size + w->alignment - 1) / w->alignment * w->alignment;
    w->n_tensors++;
    int rc = put_str(&w->ti, name, strlen(name));
    rc = rc ? rc : put_u32(&w->ti, (uint32_t)n_dims);
    for (int d = 0; d < n_dims && !rc; d++)
        rc = put_u64(&w->ti, (uint64_t)ne[d]);
    rc = rc ? rc : put_u32(&w->ti, type);
    return rc ? rc : put_u64(&w->ti, t[w->n_tensors - 1].offset);
}

static int wfail(gguf_writer *w, cn_err *err)
{
    w->failed = 1;
    return cn_fail(err, CN_EIO, "%s: write failed: %s", w->path, strerror(errno));
}

static int pad(gguf_writer *w, uint64_t pos, cn_err *err)
{
    static const char zeros[64];
    uint64_t n = (w->alignment - pos % w->alignment) % w->alignment;
    while (n > 0) {
        size_t k = (size_t)CN_MIN(n, sizeof zeros);
        if (fwrite(zeros, 1, k, w->f) != k)
            return wfail(w, err);
        n -= k;
    }
    return CN_OK;
}

int gguf_writer_begin(gguf_writer *w, const char *path, cn_err *err)
{
    if (w->kv.len == 0 && w->n_kv)
        return cn_fail(err, CN_ENOMEM, "metadata too large");
    w->path = strdup(path);
    w->f = fopen(path, "wb");
    if (!w->f || !w->path)
        return cn_fail(err, CN_EIO, "%s: cannot create: %s", path, strerror(errno));
    uint32_t version = 3;
    if (fwrite("GGUF", 1, 4, w->f) != 4 || fwrite(&version, 4, 1, w->f) != 1 ||
        fwrite(&w->n_tensors, 8, 1, w->f) != 1 || fwrite(&w->n_kv, 8, 1, w->f) != 1 ||
        fwrite(w->kv.data ? w->kv.data : "", 1, w->kv.len, w->f) != w->kv.len ||
        fwrite(w->ti.data ? w->ti.data : "", 1, w->ti.len, w->f) != w->ti.len)
        return wfail(w, err);
    return pad(w, 24 + w->kv.len + w->ti.len, err);
}

int gguf_writer_data(gguf_writer *w, const void *data, size_t len, cn_err *err)
{
    while (len > 0) {
        if (w->cur >= w->n_tensors)
            return cn_fail(err, CN_EINVAL, "%s: more tensor data than declared", w->path);
        w_tensor *t = &w->tensors[w->cur];
        size_t k = (size_t)CN_MIN((uint64_t)len, t->size - w->cur_written);
        if (fwrite(data, 1, k, w->f) != k)
            return wfail(w, err);
        data = (const char *)data + k;
        len -= k;
        w->cur_written += k;
        if (w->cur_written == t->size) {
            int rc = pad(w, t->size, err);
            if (rc)
                return rc;
            w->cur++;
            w->cur_written = 0;
        }
    }
    return CN_OK;
}

int gguf_writer_finish(gguf_writer *w, cn_err *err)
{
    if (w->cur != w->n_tensors)
        return cn_fail(err, CN_EINVAL, "%s: only %llu of %llu tensors were written", w->path,
                       (unsigned long long)w->cur, (unsigned long long)w->n_tensors);
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0 || w->failed)
        return cn_fail(err, CN_EIO, "%s: write failed: %s", w->path, strerror(errno));
    return CN_OK;
}
