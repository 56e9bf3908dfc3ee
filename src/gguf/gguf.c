/*
** gguf.c: the GGUF reader. Start at gguf_open_buffer(): header, key/value
** metadata, tensor table, alignment, data section, in file order.
**
** The file is hostile until checked: every read goes through the cursor
** functions below, which refuse to pass the end of the file, and every count
** is compared with the bytes that remain before anything is allocated for
** it, so a lying count fails fast instead of allocating gigabytes.
*/
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- type tables ------------------------------------------------------ */

static const struct {
    const char *name;
    int size; /* bytes of a scalar, 0 for string/array */
} vtypes[GGUF_T_COUNT] = {
    [GGUF_T_UINT8] = {"u8", 1},      [GGUF_T_INT8] = {"i8", 1},
    [GGUF_T_UINT16] = {"u16", 2},    [GGUF_T_INT16] = {"i16", 2},
    [GGUF_T_UINT32] = {"u32", 4},    [GGUF_T_INT32] = {"i32", 4},
    [GGUF_T_FLOAT32] = {"f32", 4},   [GGUF_T_BOOL] = {"bool", 1},
    [GGUF_T_STRING] = {"string", 0}, [GGUF_T_ARRAY] = {"array", 0},
    [GGUF_T_UINT64] = {"u64", 8},    [GGUF_T_INT64] = {"i64", 8},
    [GGUF_T_FLOAT64] = {"f64", 8},
};

/* Block layouts of ggml's tensor types: elements per block, bytes per block. */
static const struct {
    const char *name;
    int block, size;
} ttypes[GGML_TYPE_COUNT] = {
    [GGML_F32] = {"F32", 1, 4},          [GGML_F16] = {"F16", 1, 2},
    [GGML_Q4_0] = {"Q4_0", 32, 18},      [GGML_Q4_1] = {"Q4_1", 32, 20},
    [GGML_Q5_0] = {"Q5_0", 32, 22},      [GGML_Q5_1] = {"Q5_1", 32, 24},
    [GGML_Q8_0] = {"Q8_0", 32, 34},      [GGML_Q8_1] = {"Q8_1", 32, 36},
    [GGML_Q2_K] = {"Q2_K", 256, 84},     [GGML_Q3_K] = {"Q3_K", 256, 110},
    [GGML_Q4_K] = {"Q4_K", 256, 144},    [GGML_Q5_K] = {"Q5_K", 256, 176},
    [GGML_Q6_K] = {"Q6_K", 256, 210},    [GGML_Q8_K] = {"Q8_K", 256, 292},
    [GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [GGML_IQ4_NL] = {"IQ4_NL", 32, 18},  [GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [GGML_IQ2_S] = {"IQ2_S", 256, 82},   [GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GGML_I8] = {"I8", 1, 1},            [GGML_I16] = {"I16", 1, 2},
    [GGML_I32] = {"I32", 1, 4},          [GGML_I64] = {"I64", 1, 8},
    [GGML_F64] = {"F64", 1, 8},          [GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [GGML_BF16] = {"BF16", 1, 2},        [GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [GGML_TQ2_0] = {"TQ2_0", 256, 66},
};

const char *gguf_vtype_name(uint32_t t) { return t < GGUF_T_COUNT ? vtypes[t].name : "unknown"; }
const char *gguf_ttype_name(uint32_t t) { return t < GGML_TYPE_COUNT ? ttypes[t].name : NULL; }
int gguf_ttype_block(uint32_t t) { return t < GGML_TYPE_COUNT ? ttypes[t].block : 0; }
int gguf_ttype_size(uint32_t t) { return t < GGML_TYPE_COUNT ? ttypes[t].size : 0; }

size_t gguf_row_size(uint32_t t, int64_t n)
{
    int b = gguf_ttype_block(t);
    return b ? (size_t)(n / b) * (size_t)gguf_ttype_size(t) : 0;
}

/* ---- cursor ----------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    uint64_t pos, size;
    const char *path;
    cn_err *err;
    cn_arena *arena;
} cursor;

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static int need(cursor *c, uint64_t n, const char *what)
{
    if (n > remaining(c))
        return cn_fail(c->err, CN_EFORMAT,
                       "%s: truncated file: %s needs %" PRIu64 " bytes at offset %" PRIu64
                       " but only %" PRIu64 " remain",
                       c->path, what, n, c->pos, remaining(c));
    return CN_OK;
}

static int rd(cursor *c, void *dst, uint64_t n, const char *what)
{
    int rc = need(c, n, what);
    if (rc)
        return rc;
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return CN_OK;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static int rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

static int rd_str(cursor *c, gguf_str *s, const char *what)
{
    uint64_t len;
    int rc = rd_u64(c, &len, what);
    if (rc)
        return rc;
    if (len > remaining(c))
        return cn_fail(c->err, CN_EFORMAT,
                       "%s: %s has length %" PRIu64 " but only %" PRIu64 " bytes remain", c->path,
                       what, len, remaining(c));
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return CN_OK;
}

/* A name (key or tensor name): non-empty, bounded, copied NUL-terminated. */
static int rd_name(cursor *c, const char **out, const char *what)
{
    gguf_str s;
    int rc = rd_str(c, &s, what);
    if (rc)
        return rc;
    if (s.len == 0 || s.len > GGUF_MAX_NAME)
        return cn_fail(c->err, CN_EFORMAT, "%s: %s at offset %" PRIu64 " has bad length %" PRIu64,
                       c->path, what, c->pos - s.len, s.len);
    if (memchr(s.ptr, 0, s.len))
        return cn_fail(c->err, CN_EFORMAT, "%s: %s at offset %" PRIu64 " contains a NUL byte",
                       c->path, what, c->pos - s.len);
    char *p = cn_arena_strndup(c->arena, s.ptr, s.len);
    if (!p)
        return cn_fail(c->err, CN_ENOMEM, "%s: out of memory reading %s", c->path, what);
    *out = p;
    return CN_OK;
}

/* ---- metadata values -------------------------------------------------- */

static int rd_value(cursor *c, uint32_t type, gguf_value *v, int depth, const char *key);

static int rd_array(cursor *c, gguf_value *v, int depth, const char *key)
{
    uint32_t et;
    uint64_t n;
    int rc;
    if ((rc = rd_u32(c, &et, "array type")) || (rc = rd_u64(c, &n, "array length")))
        return rc;
    if (et >= GGUF_T_COUNT)
        return cn_fail(c->err, CN_EFORMAT, "%s: key '%s': array element type %u is unknown",
                       c->path, key, et);
    if (depth >= GGUF_MAX_DEPTH)
        return cn_fail(c->err, CN_EFORMAT, "%s: key '%s': arrays nested deeper than %d", c->path,
                       key, GGUF_MAX_DEPTH);
    v->arr.type = et;
    v->arr.n = n;
    v->arr.data = NULL;
    v->arr.strs = NULL;
    v->arr.vals = NULL;
    /* smallest encoding of one element: the count can't exceed what remains */
    uint64_t min_elem = vtypes[et].size ? (uint64_t)vtypes[et].size : et == GGUF_T_STRING ? 8 : 12;
    if (n > remaining(c) / min_elem)
        return cn_fail(c->err, CN_EFORMAT,
                       "%s: key '%s': array of %" PRIu64 " %s elements does not fit in the %" PRIu64
                       " bytes that remain",
                       c->path, key, n, vtypes[et].name, remaining(c));
    if (vtypes[et].size) {
        v->arr.data = c->p + c->pos;
        c->pos += n * min_elem;
        if (et == GGUF_T_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (((const uint8_t *)v->arr.data)[i] > 1)
                    return cn_fail(c->err, CN_EFORMAT, "%s: key '%s': bool element %" PRIu64
                                   " has value %u", c->path, key, i,
                                   ((const uint8_t *)v->arr.data)[i]);
        return CN_OK;
    }
    if (et == GGUF_T_STRING) {
        v->arr.strs = cn_arena_alloc(c->arena, (size_t)(n * sizeof(gguf_str)));
        if (!v->arr.strs)
            return cn_fail(c->err, CN_ENOMEM, "%s: key '%s': out of memory for %" PRIu64 " strings",
                           c->path, key, n);
        for (uint64_t i = 0; i < n; i++)
            if ((rc = rd_str(c, &v->arr.strs[i], key)))
                return rc;
        return CN_OK;
    }
    v->arr.vals = cn_arena_alloc(c->arena, (size_t)(n * sizeof(gguf_value)));
    if (!v->arr.vals)
        return cn_fail(c->err, CN_ENOMEM, "%s: key '%s': out of memory for %" PRIu64 " arrays",
                       c->path, key, n);
    for (uint64_t i = 0; i < n; i++) {
        v->arr.vals[i].type = GGUF_T_ARRAY;
        if ((rc = rd_array(c, &v->arr.vals[i], depth + 1, key)))
            return rc;
    }
    return CN_OK;
}

static int rd_value(cursor *c, uint32_t type, gguf_value *v, int depth, const char *key)
{
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } x;
    int rc;
    v->type = type;
    switch (type) {
    case GGUF_T_STRING: return rd_str(c, &v->str, key);
    case GGUF_T_ARRAY: return rd_array(c, v, depth, key);
    default: break;
    }
    if (type >= GGUF_T_COUNT)
        return cn_fail(c->err, CN_EFORMAT, "%s: key '%s' has unknown value type %u", c->path, key,
                       type);
    if ((rc = rd(c, &x, (uint64_t)vtypes[type].size, key)))
        return rc;
    switch (type) {
    case GGUF_T_UINT8: v->u64 = x.u8; break;
    case GGUF_T_INT8: v->i64 = x.i8; break;
    case GGUF_T_UINT16: v->u64 = x.u16; break;
    case GGUF_T_INT16: v->i64 = x.i16; break;
    case GGUF_T_UINT32: v->u64 = x.u32; break;
    case GGUF_T_INT32: v->i64 = x.i32; break;
    case GGUF_T_FLOAT32: v->f64 = x.f32; break;
    case GGUF_T_UINT64: v->u64 = x.u64; break;
    case GGUF_T_INT64: v->i64 = x.i64; break;
    case GGUF_T_FLOAT64: v->f64 = x.f64; break;
    case GGUF_T_BOOL:
        if (x.u8 > 1)
            return cn_fail(c->err, CN_EFORMAT, "%s: key '%s': bool has value %u", c->path, key,
                           x.u8);
        v->u64 = x.u8;
        break;
    }
    return CN_OK;
}

/* ---- sorted indices for lookup and duplicate detection ---------------- */

typedef struct name_ref {
    const char *name;
    int64_t idx;
} name_ref;

static int cmp_name_ref(const void *a, const void *b)
{
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

/* Build a sorted index; fail on a duplicate name (a file that names the same
** key or tensor twice is ambiguous, and llama.cpp rejects it too). */
static int build_index(gguf_file *f, int tensors, cn_err *err)
{
    int64_t n = tensors ? f->n_tensors : f->n_kv;
    name_ref *idx = cn_arena_alloc(&f->arena, (size_t)n * sizeof *idx);
    if (!idx)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", f->path);
    for (int64_t i = 0; i < n; i++)
        idx[i] = (name_ref){tensors ? f->tensors[i].name : f->kv[i].key, i};
    qsort(idx, (size_t)n, sizeof *idx, cmp_name_ref);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(idx[i - 1].name, idx[i].name) == 0)
            return cn_fail(err, CN_EFORMAT, "%s: duplicate %s '%s'", f->path,
                           tensors ? "tensor" : "key", idx[i].name);
    if (tensors)
        f->tensor_sorted = idx;
    else
        f->kv_sorted = idx;
    return CN_OK;
}

static int64_t lookup(const gguf_file *f, const char *name, int tensors)
{
    const name_ref *idx = tensors ? f->tensor_sorted : f->kv_sorted;
    int64_t lo = 0, hi = (tensors ? f->n_tensors : f->n_kv) - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(idx[mid].name, name);
        if (c == 0)
            return idx[mid].idx;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    int64_t i = lookup(f, key, 0);
    return i < 0 ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    int64_t i = lookup(f, name, 1);
    return i < 0 ? NULL : &f->tensors[i];
}

/* ---- the parse -------------------------------------------------------- */

static int parse_tensor_info(cursor *c, gguf_file *f, gguf_tensor *t, int64_t idx)
{
    int rc;
    uint32_t nd, type;
    char what[64];
    snprintf(what, sizeof what, "name of tensor %" PRId64, idx);
    if ((rc = rd_name(c, &t->name, what)) || (rc = rd_u32(c, &nd, "tensor dimension count")))
        return rc;
    if (nd < 1 || nd > 4)
        return cn_fail(c->err, CN_EFORMAT, "%s: tensor '%s' has %u dimensions (1 to 4 allowed)",
                       f->path, t->name, nd);
    t->n_dims = (int)nd;
    t->n_elem = 1;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if ((rc = rd_u64(c, &ne, "tensor dimension")))
            return rc;
        /* 2^40 elements per dimension and 2^42 in all: far beyond any model,
        ** small enough that sizes cannot overflow 64 bits */
        if (ne == 0 || ne > (1ull << 40) || ne > (1ull << 42) / (uint64_t)t->n_elem)
            return cn_fail(c->err, CN_EFORMAT,
                           "%s: tensor '%s' has absurd dimension %u = %" PRIu64, f->path, t->name,
                           d, ne);
        t->ne[d] = (int64_t)ne;
        t->n_elem *= (int64_t)ne;
    }
    if ((rc = rd_u32(c, &type, "tensor type")) || (rc = rd_u64(c, &t->offset, "tensor offset")))
        return rc;
    if (!gguf_ttype_name(type))
        return cn_fail(c->err, CN_EFORMAT, "%s: tensor '%s' has unknown type %u", f->path, t->name,
                       type);
    t->type = type;
    if (t->ne[0] % gguf_ttype_block(type) != 0)
        return cn_fail(c->err, CN_EFORMAT,
                       "%s: tensor '%s': row length %" PRId64 " is not a multiple of the %s "
                       "block size %d",
                       f->path, t->name, t->ne[0], gguf_ttype_name(type), gguf_ttype_block(type));
    t->size = gguf_row_size(type, t->ne[0]) * (uint64_t)(t->n_elem / t->ne[0]);
    return CN_OK;
}

static int parse(gguf_file *f, cn_err *err)
{
    cursor c = {f->map, 0, f->file_size, f->path, err, &f->arena};
    char magic[4];
    uint64_t n_tensors, n_kv;
    int rc;

    if (f->file_size < 4 || memcmp(f->map, "GGUF", 4) != 0) {
        char shown[5] = {0};
        for (int i = 0; i < 4 && (uint64_t)i < f->file_size; i++)
            shown[i] = (f->map[i] >= 32 && f->map[i] < 127) ? (char)f->map[i] : '?';
        return cn_fail(err, CN_EFORMAT, "%s: not a GGUF file (magic '%s')", f->path, shown);
    }
    if ((rc = rd(&c, magic, 4, "magic")) || (rc = rd_u32(&c, &f->version, "version")))
        return rc;
    if (f->version == 1)
        return cn_fail(err, CN_EUNSUPPORTED, "%s: GGUF version 1 is not supported (convert the "
                       "file with a newer llama.cpp)", f->path);
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xFFFF) == 0)
            return cn_fail(err, CN_EUNSUPPORTED, "%s: big-endian GGUF files are not supported",
                           f->path);
        return cn_fail(err, CN_EUNSUPPORTED, "%s: unknown GGUF version %u", f->path, f->version);
    }
    if ((rc = rd_u64(&c, &n_tensors, "tensor count")) || (rc = rd_u64(&c, &n_kv, "key count")))
        return rc;
    /* a key takes at least 13 bytes (length, one char, type, one-byte value),
    ** a tensor entry at least 33 */
    if (n_kv > GGUF_MAX_KV || n_kv > remaining(&c) / 13)
        return cn_fail(err, CN_EFORMAT, "%s: absurd key count %" PRIu64 " for a %" PRIu64
                       "-byte file", f->path, n_kv, f->file_size);
    if (n_tensors > GGUF_MAX_TENSORS || n_tensors > remaining(&c) / 33)
        return cn_fail(err, CN_EFORMAT, "%s: absurd tensor count %" PRIu64 " for a %" PRIu64
                       "-byte file", f->path, n_tensors, f->file_size);
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    f->kv = cn_arena_alloc(&f->arena, (size_t)n_kv * sizeof *f->kv);
    f->tensors = cn_arena_alloc(&f->arena, (size_t)n_tensors * sizeof *f->tensors);
    if (!f->kv || !f->tensors)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory for the metadata index", f->path);

    for (int64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        uint32_t type;
        char what[64];
        snprintf(what, sizeof what, "key %" PRId64, i);
        if ((rc = rd_name(&c, &kv->key, what)) || (rc = rd_u32(&c, &type, "value type")))
            return rc;
        if ((rc = rd_value(&c, type, &kv->val, 0, kv->key)))
            return rc;
    }
    if ((rc = build_index(f, 0, err)))
        return rc;

    f->alignment = 32;
    const gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        int64_t a;
        if ((rc = gguf_get_i64(f, "general.alignment", &a, err)))
            return rc;
        if (a <= 0 || a > (1 << 20) || (a & (a - 1)) != 0)
            return cn_fail(err, CN_EFORMAT, "%s: general.alignment = %" PRId64
                           " is not a power of two up to 1 MiB", f->path, a);
        f->alignment = (uint64_t)a;
    }

    for (int64_t i = 0; i < f->n_tensors; i++)
        if ((rc = parse_tensor_info(&c, f, &f->tensors[i], i)))
            return rc;
    if ((rc = build_index(f, 1, err)))
        return rc;

    f->data_offset = (c.pos + f->alignment - 1) / f->alignment * f->alignment;
    uint64_t data_size = f->data_offset <= f->file_size ? f->file_size - f->data_offset : 0;
    if (f->n_tensors > 0 && f->data_offset > f->file_size)
        return cn_fail(err, CN_EFORMAT, "%s: truncated file: data section would start at %" PRIu64
                       " past the end (%" PRIu64 " bytes)", f->path, f->data_offset, f->file_size);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0)
            return cn_fail(err, CN_EFORMAT, "%s: tensor '%s' offset %" PRIu64
                           " is not aligned to %" PRIu64, f->path, t->name, t->offset,
                           f->alignment);
        if (t->offset > data_size || t->size > data_size - t->offset)
            return cn_fail(err, CN_EFORMAT, "%s: tensor '%s' extends past end of file (offset %"
                           PRIu64 ", size %" PRIu64 ", data section %" PRIu64 " bytes)",
                           f->path, t->name, t->offset, t->size, data_size);
        t->data = f->map + f->data_offset + t->offset;
    }
    return CN_OK;
}

static int open_common(gguf_file *f, cn_err *err)
{
    /* the index never needs more than a few times the metadata it describes */
    cn_arena_init(&f->arena, (size_t)CN_MIN(f->file_size, (uint64_t)1 << 34) * 4 + (1 << 20));
    int rc = parse(f, err);
    if (rc)
        return rc;
    return CN_OK;
}

int gguf_open_buffer(gguf_file **out, const void *buf, size_t len, const char *name, cn_err *err)
{
    *out = NULL;
    gguf_file *f = cn_calloc(1, sizeof *f);
    if (!f)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", name);
    f->path = name;
    f->map = buf;
    f->file_size = len;
    int rc = open_common(f, err);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return CN_OK;
}

int gguf_open(gguf_file **out, const char *path, cn_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cn_fail(err, errno == ENOENT ? CN_ENOTFOUND : CN_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cn_fail(err, CN_EIO, "%s: not a regular file", path);
    }
    gguf_file *f = cn_calloc(1, sizeof *f);
    char *path_copy = strdup(path);
    if (!f || !path_copy) {
        free(f);
        free(path_copy);
        close(fd);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    }
    f->path = path_copy;
    f->owns_map = true;
    f->file_size = (uint64_t)st.st_size;
    if (f->file_size == 0) {
        close(fd);
        cn_fail(err, CN_EFORMAT, "%s: empty file, not a GGUF model", path);
        gguf_close(f);
        return CN_EFORMAT;
    }
    void *m = mmap(NULL, (size_t)f->file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        cn_fail(err, CN_EIO, "%s: cannot map file: %s", path, strerror(errno));
        gguf_close(f);
        return CN_EIO;
    }
    f->map = m;
    int rc = open_common(f, err);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return CN_OK;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    if (f->owns_map) {
        if (f->map)
            munmap((void *)f->map, (size_t)f->file_size);
        free((char *)f->path);
    }
    cn_arena_free(&f->arena);
    free(f);
}

/* ---- getters ---------------------------------------------------------- */

static bool is_int(uint32_t t)
{
    return t <= GGUF_T_INT32 || t == GGUF_T_UINT64 || t == GGUF_T_INT64 || t == GGUF_T_BOOL;
}

static bool is_signed(uint32_t t)
{
    return t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 || t == GGUF_T_INT64;
}

static int find_typed(const gguf_file *f, const char *key, const gguf_kv **kv, cn_err *err)
{
    *kv = gguf_find(f, key);
    if (!*kv)
        return cn_fail(err, CN_ENOTFOUND, "%s: missing metadata key '%s'", f->path, key);
    return CN_OK;
}

static int wrong_type(const gguf_file *f, const gguf_kv *kv, const char *want, cn_err *err)
{
    return cn_fail(err, CN_EFORMAT, "%s: metadata key '%s' is %s, expected %s", f->path, kv->key,
                   gguf_vtype_name(kv->val.type), want);
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, cn_err *err)
{
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err);
    if (rc)
        return rc;
    if (!is_int(kv->val.type))
        return wrong_type(f, kv, "an integer", err);
    if (!is_signed(kv->val.type) && kv->val.u64 > INT64_MAX)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '%s' = %" PRIu64 " is out of range",
                       f->path, key, kv->val.u64);
    *out = kv->val.i64;
    return CN_OK;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, cn_err *err)
{
    int64_t v;
    int rc = gguf_get_i64(f, key, &v, err);
    if (rc)
        return rc;
    if (v < 0 || v > UINT32_MAX)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '%s' = %" PRId64 " is out of range",
                       f->path, key, v);
    *out = (uint32_t)v;
    return CN_OK;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, cn_err *err)
{
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err);
    if (rc)
        return rc;
    if (kv->val.type != GGUF_T_FLOAT32 && kv->val.type != GGUF_T_FLOAT64)
        return wrong_type(f, kv, "a float", err);
    *out = (float)kv->val.f64;
    return CN_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, cn_err *err)
{
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err);
    if (rc)
        return rc;
    if (kv->val.type != GGUF_T_BOOL)
        return wrong_type(f, kv, "a bool", err);
    *out = kv->val.u64 != 0;
    return CN_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, cn_err *err)
{
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err);
    if (rc)
        return rc;
    if (kv->val.type != GGUF_T_STRING)
        return wrong_type(f, kv, "a string", err);
    *out = kv->val.str;
    return CN_OK;
}

int gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type, const gguf_value **out,
                 cn_err *err)
{
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err);
    if (rc)
        return rc;
    if (kv->val.type != GGUF_T_ARRAY)
        return wrong_type(f, kv, "an array", err);
    if (elem_type != GGUF_T_COUNT && kv->val.arr.type != elem_type)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '%s' is an array of %s, expected %s",
                       f->path, key, gguf_vtype_name(kv->val.arr.type),
                       gguf_vtype_name(elem_type));
    *out = &kv->val;
    return CN_OK;
}

/* A float from the file as an integer: NaN is 0, the rest saturates. */
static int64_t float_to_i64(double v)
{
    if (!(v == v))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v;
}

int64_t gguf_arr_i64(const gguf_value *a, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)a->arr.data + i * (uint64_t)vtypes[a->arr.type].size;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } x;
    memcpy(&x, p, (size_t)vtypes[a->arr.type].size);
    switch (a->arr.type) {
    case GGUF_T_UINT8: case GGUF_T_BOOL: return x.u8;
    case GGUF_T_INT8: return x.i8;
    case GGUF_T_UINT16: return x.u16;
    case GGUF_T_INT16: return x.i16;
    case GGUF_T_UINT32: return x.u32;
    case GGUF_T_INT32: return x.i32;
    case GGUF_T_UINT64: return (int64_t)x.u64;
    case GGUF_T_INT64: return x.i64;
    case GGUF_T_FLOAT32: return float_to_i64(x.f32);
    case GGUF_T_FLOAT64: return float_to_i64(x.f64);
    }
    return 0;
}

double gguf_arr_f64(const gguf_value *a, uint64_t i)
{
    if (a->arr.type == GGUF_T_FLOAT32) {
        float v;
        memcpy(&v, (const uint8_t *)a->arr.data + i * 4, 4);
        return v;
    }
    if (a->arr.type == GGUF_T_FLOAT64) {
        double v;
        memcpy(&v, (const uint8_t *)a->arr.data + i * 8, 8);
        return v;
    }
    return (double)gguf_arr_i64(a, i);
}

bool gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}
