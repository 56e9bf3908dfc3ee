/*
** quant.h: tensor element types and their scalar reference kernels.
**
** Internal header of the engine module (tests and tools/ may include it).
** Every quantized type is a run of fixed-size blocks laid out byte for byte
** as ggml (llama.cpp b4747) lays them out, so a tensor in a GGUF file is used
** in place. For each type there is:
**
**   quant_dequantize_row_T      blocks -> floats
**   quant_quantize_row_T_ref    floats -> blocks, the same algorithm as ggml's
**                               quantize_row_T_ref, so our files match theirs
**   quant_vec_dot_T_A           dot product of a row of weights of type T with
**                               a row of activations of type A (ggml's
**                               "vec_dot_type"), integer parts summed exactly
**
** and quant_get(type) gathers them in one table. Everything works on rows
** whose length n is a multiple of the type's block size (asserted: callers
** check shapes when a model opens). fp16 fields are stored as uint16_t and
** read with cn_fp16_to_fp32().
**
** Start reading at the block structs, then quant_get() at the end of quant.c.
*/
#ifndef CN_QUANT_H
#define CN_QUANT_H

#include <assert.h>
#include <stdint.h>

#include "gguf/gguf.h"

/* ---- block layouts (ggml-common.h) ------------------------------------- */

#define QK4_0 32
typedef struct {
    uint16_t d;            /* scale: x = (q - 8) * d */
    uint8_t qs[QK4_0 / 2]; /* element j in the low nibble of qs[j], j+16 in the high */
} block_q4_0;
static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");

#define QK4_1 32
typedef struct {
    uint16_t d;            /* scale */
    uint16_t m;            /* minimum: x = q * d + m */
    uint8_t qs[QK4_1 / 2]; /* nibbles as in q4_0 */
} block_q4_1;
static_assert(sizeof(block_q4_1) == 2 * 2 + QK4_1 / 2, "block_q4_1 size");

#define QK5_0 32
typedef struct {
    uint16_t d;            /* scale: x = (q - 16) * d */
    uint8_t qh[4];         /* fifth bit of element j is bit j of this little-endian word */
    uint8_t qs[QK5_0 / 2]; /* low four bits, nibbles as in q4_0 */
} block_q5_0;
static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");

#define QK5_1 32
typedef struct {
    uint16_t d;            /* scale */
    uint16_t m;            /* minimum: x = q * d + m */
    uint8_t qh[4];         /* fifth bits as in q5_0 */
    uint8_t qs[QK5_1 / 2]; /* low four bits as in q5_0 */
} block_q5_1;
static_assert(sizeof(block_q5_1) == 2 * 2 + 4 + QK5_1 / 2, "block_q5_1 size");

#define QK8_0 32
typedef struct {
    uint16_t d;        /* scale: x = q * d */
    int8_t qs[QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");

#define QK8_1 32
typedef struct {
    uint16_t d;        /* scale: x = q * d */
    uint16_t s;        /* d * sum(qs), so q4_1/q5_1 dots can add the min term once */
    int8_t qs[QK8_1];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 2 * 2 + QK8_1, "block_q8_1 size");

/* K-quants: super-blocks of 256 elements split into sub-blocks of 16 or 32,
** each with a small integer scale (and min) that multiplies the fp16 d
** (and dmin) of the super-block. */
#define QK_K 256
#define K_SCALE_SIZE 12

/* 2.625 bits per weight. 16 sub-blocks of 16:
** x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q in 0..3. */
typedef struct {
    uint8_t scales[QK_K / 16]; /* low nibble scale, high nibble min */
    uint8_t qs[QK_K / 4];      /* 2-bit quants, four per byte */
    uint16_t d;                /* super-block scale for the scales */
    uint16_t dmin;             /* super-block scale for the mins */
} block_q2_K;
static_assert(sizeof(block_q2_K) == 2 * 2 + QK_K / 16 + QK_K / 4, "block_q2_K size");

/* 3.4375 bits per weight. 16 sub-blocks of 16 with signed 6-bit scales:
** x = d * (sc - 32) * (q - 4), q in 0..7 from two low bits in qs and the
** high bit in hmask. */
typedef struct {
    uint8_t hmask[QK_K / 8]; /* high bit of each quant */
    uint8_t qs[QK_K / 4];    /* low two bits, four per byte */
    uint8_t scales[12];      /* 16 scales of 6 bits, packed */
    uint16_t d;              /* super-block scale */
} block_q3_K;
static_assert(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");

/* 4.5 bits per weight. 8 sub-blocks of 32 with 6-bit scales and mins:
** x = d * sc * q - dmin * m, q in 0..15. */
typedef struct {
    uint16_t d;                    /* super-block scale for the scales */
    uint16_t dmin;                 /* super-block scale for the mins */
    uint8_t scales[K_SCALE_SIZE];  /* 8 scales and 8 mins of 6 bits, packed */
    uint8_t qs[QK_K / 2];          /* 4-bit quants */
} block_q4_K;
static_assert(sizeof(block_q4_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");

/* 5.5 bits per weight. As q4_K with a fifth bit per quant in qh. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];  /* packed as in q4_K */
    uint8_t qh[QK_K / 8];          /* fifth bits */
    uint8_t qs[QK_K / 2];          /* low four bits */
} block_q5_K;
static_assert(sizeof(block_q5_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");

/* 6.5625 bits per weight. 16 sub-blocks of 16 with signed 8-bit scales:
** x = d * sc * (q - 32), q in 0..63. */
typedef struct {
    uint8_t ql[QK_K / 2];     /* low four bits */
    uint8_t qh[QK_K / 4];     /* high two bits */
    int8_t scales[QK_K / 16];
    uint16_t d;               /* super-block scale */
} block_q6_K;
static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");

/* Activations for K-quant dot products (never stored in files). */
typedef struct {
    float d;                   /* scale: x = q * d (full float, not fp16) */
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];  /* sum of each group of 16 qs, for the min terms */
} block_q8_K;
static_assert(sizeof(block_q8_K) == sizeof(float) + QK_K + QK_K / 16 * sizeof(int16_t),
              "block_q8_K size");

/* ---- the traits table -------------------------------------------------- */

/* Convert n elements (a multiple of the block size) to floats. */
typedef void (*quant_to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantize n floats (a multiple of the block size) into blocks. */
typedef void (*quant_from_float_fn)(const float *src, void *dst, int64_t n);
/* *s = dot product of n elements: w holds weights of the row's type, a holds
** activations of its vec_dot_type. */
typedef void (*quant_vec_dot_fn)(int n, float *s, const void *w, const void *a);

typedef struct quant_traits {
    const char *name;            /* "Q4_K", as gguf_ttype_name() */
    int block_size;              /* elements per block */
    int type_size;               /* bytes per block */
    uint32_t vec_dot_type;       /* type activations are converted to for vec_dot */
    quant_to_float_fn to_float;
    quant_from_float_fn from_float; /* NULL if we cannot produce this type */
    quant_vec_dot_fn vec_dot;       /* NULL if this type is never a weight */
} quant_traits;

/*
** The reference (scalar) traits of tensor type `type` (enum gguf_ttype), or
** NULL if this build cannot compute with it. The table is the list of
** supported types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
** Q2_K..Q6_K and Q8_K.
*/
const quant_traits *quant_get(uint32_t type);

/* ---- dequantize: n elements of blocks -> floats ------------------------ */

void quant_dequantize_row_f32(const void *src, float *dst, int64_t n);
void quant_dequantize_row_f16(const void *src, float *dst, int64_t n);
void quant_dequantize_row_bf16(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q8_1(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q2_K(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q3_K(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q4_K(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q5_K(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q6_K(const void *src, float *dst, int64_t n);
void quant_dequantize_row_q8_K(const void *src, float *dst, int64_t n);

/* ---- quantize: n floats -> blocks --------------------------------------
** Same arithmetic as ggml's quantize_row_*_ref, so the bytes match what
** llama.cpp's quantizer writes without an importance matrix. Inputs must be
** finite. */

void quant_quantize_row_f32_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_f16_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_bf16_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q4_0_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q4_1_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q5_0_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q5_1_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q8_0_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q8_1_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q2_K_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q3_K_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q4_K_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q5_K_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q6_K_ref(const float *src, void *dst, int64_t n);
void quant_quantize_row_q8_K_ref(const float *src, void *dst, int64_t n);

/* ---- dot products: weights of one type . activations of its vec_dot_type
** Float rows are summed in double like ggml's scalar path; quantized rows
** sum each block's integer products exactly in int32, then scale. */

void quant_vec_dot_f32(int n, float *s, const void *w, const void *a);
void quant_vec_dot_f16(int n, float *s, const void *w, const void *a);
void quant_vec_dot_bf16(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q4_0_q8_0(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q4_1_q8_1(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q5_0_q8_0(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q5_1_q8_1(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q8_0_q8_0(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q2_K_q8_K(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q3_K_q8_K(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q4_K_q8_K(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q5_K_q8_K(int n, float *s, const void *w, const void *a);
void quant_vec_dot_q6_K_q8_K(int n, float *s, const void *w, const void *a);

#endif
