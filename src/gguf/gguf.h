/*
** gguf.h: the GGUF file format (versions 2 and 3), read-only.
**
** gguf_open() memory-maps a file, checks every count, length, offset,
** dimension and type against the file size and sane limits, and builds an
** index of the metadata and the tensor table. Tensors are views into the
** mapping: nothing is copied. All pointers handed out stay valid until
** gguf_close().
**
** A module of its own (prefix gguf_) on the layer just above base: it knows
** nothing of models, and both the tokenizers (src/tok) and the engine
** (src/engine) read files through it, so neither depends on the other for
** it.
*/
#ifndef CN_GGUF_H
#define CN_GGUF_H

#include "base/base.h"

/* Metadata value types, as numbered in the file. */
enum gguf_vtype {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12,
    GGUF_T_COUNT
};

/* Tensor element types (ggml's numbering, which the file uses). */
enum gguf_ttype {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3,
    GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8, GGML_Q8_1 = 9,
    GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14,
    GGML_Q8_K = 15, GGML_IQ2_XXS = 16, GGML_IQ2_XS = 17, GGML_IQ3_XXS = 18,
    GGML_IQ1_S = 19, GGML_IQ4_NL = 20, GGML_IQ3_S = 21, GGML_IQ2_S = 22, GGML_IQ4_XS = 23,
    GGML_I8 = 24, GGML_I16 = 25, GGML_I32 = 26, GGML_I64 = 27, GGML_F64 = 28,
    GGML_IQ1_M = 29, GGML_BF16 = 30, GGML_TQ1_0 = 34, GGML_TQ2_0 = 35,
    GGML_TYPE_COUNT = 40
};

/* A string inside the mapping: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

/* A metadata value. Scalars are widened; arrays point into the mapping
** (scalar elements, possibly unaligned: read them with the gguf_arr_* helpers)
** or into index arrays built at open (strings, nested arrays). */
typedef struct gguf_value gguf_value;
struct gguf_value {
    uint32_t type; /* enum gguf_vtype */
    union {
        uint64_t u64; /* UINT8/16/32/64, BOOL (0/1) */
        int64_t i64;  /* INT8/16/32/64 */
        double f64;   /* FLOAT32/64 */
        gguf_str str;
        struct {
            uint32_t type;     /* element type */
            uint64_t n;        /* element count */
            const void *data;  /* scalar elements, packed, in the mapping */
            gguf_str *strs;    /* when type == STRING: n strings */
            gguf_value *vals;  /* when type == ARRAY: n nested arrays */
        } arr;
    };
};

typedef struct gguf_kv {
    const char *key; /* NUL-terminated copy */
    gguf_value val;
} gguf_kv;

typedef struct gguf_tensor {
    const char *name;  /* NUL-terminated copy */
    uint32_t type;     /* enum gguf_ttype */
    int n_dims;        /* 1..4 */
    int64_t ne[4];     /* elements per dimension, ne[0] fastest; unused dims are 1 */
    int64_t n_elem;
    uint64_t offset;   /* from the start of the data section */
    uint64_t size;     /* bytes */
    const void *data;  /* view into the mapping */
} gguf_tensor;

typedef struct gguf_file {
    const char *path;
    uint32_t version;
    uint64_t file_size;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    gguf_tensor *tensors;
    /* private */
    const uint8_t *map;
    bool owns_map;          /* map and path were allocated by gguf_open */
    struct name_ref *kv_sorted;     /* keys sorted, for lookup */
    struct name_ref *tensor_sorted; /* tensor names sorted */
    cn_arena arena;
} gguf_file;

/* Limits applied to hostile files. */
#define GGUF_MAX_KV 1000000
#define GGUF_MAX_TENSORS 1000000
#define GGUF_MAX_NAME 1024
#define GGUF_MAX_DEPTH 8

/* Open and index path. On failure returns a CN_E* code and an error naming
** the file, the field and the problem; *out is then NULL. */
int gguf_open(gguf_file **out, const char *path, cn_err *err);
/* Parse an in-memory image (used by the fuzzer; buf must outlive the file). */
int gguf_open_buffer(gguf_file **out, const void *buf, size_t len, const char *name, cn_err *err);
void gguf_close(gguf_file *f);

/* Lookup by key; NULL if absent. */
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
/* Lookup by tensor name; NULL if absent. */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: return CN_OK, CN_ENOTFOUND (absent) or CN_EFORMAT (present
** with a type that does not convert; err says which key and type). Integer
** getters accept any integer type whose value fits; floats accept both float
** types. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, cn_err *err);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, cn_err *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, cn_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, cn_err *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, cn_err *err);
/* An array with elements of type elem_type (GGUF_T_COUNT accepts any). */
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type, const gguf_value **out,
                 cn_err *err);

/* Element i of a scalar array, converted. Caller ensures i < n. */
int64_t gguf_arr_i64(const gguf_value *arr, uint64_t i);
double gguf_arr_f64(const gguf_value *arr, uint64_t i);

/* Does s equal the C string c? */
bool gguf_str_eq(gguf_str s, const char *c);

/* Names and layout of types. */
const char *gguf_vtype_name(uint32_t t);
const char *gguf_ttype_name(uint32_t t);  /* "Q4_K", or NULL if unknown */
int gguf_ttype_block(uint32_t t);         /* elements per block, 0 if unknown */
int gguf_ttype_size(uint32_t t);          /* bytes per block, 0 if unknown */
/* Bytes for one row of n elements of type t (n a multiple of the block). */
size_t gguf_row_size(uint32_t t, int64_t n);


/* ---- writing (gguf_write.c) ---------------------------------------------
** For tools and tests: declare metadata and tensors, then stream the
** tensor data in declaration order. Always writes GGUF v3, alignment 32
** (or general.alignment if set first as a u32). */
typedef struct gguf_writer gguf_writer;

int gguf_writer_new(gguf_writer **out, cn_err *err);
void gguf_writer_free(gguf_writer *w);
int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_w_f32(gguf_writer *w, const char *key, float v);
int gguf_w_bool(gguf_writer *w, const char *key, bool v);
int gguf_w_str(gguf_writer *w, const char *key, const char *s);
/* An array of n scalars of elem_type, packed as in the file. */
int gguf_w_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
int gguf_w_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n);
/* Copy a key and its value (any type, nested arrays too) from another file. */
int gguf_w_copy(gguf_writer *w, const gguf_kv *kv);
/* Declare a tensor; its bytes come later through gguf_writer_data. */
int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne);
/* Write header, metadata and tensor table to path; then the caller appends
** each tensor's bytes, in order, with gguf_writer_data (any number of calls
** per tensor), and finishes with gguf_writer_finish. */
int gguf_writer_begin(gguf_writer *w, const char *path, cn_err *err);
int gguf_writer_data(gguf_writer *w, const void *data, size_t len, cn_err *err);
int gguf_writer_finish(gguf_writer *w, cn_err *err);

#endif
