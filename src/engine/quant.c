/*
** quant.c: scalar reference kernels for every tensor type we compute with.
**
** Read in this order: the small helpers, then for each type its dequantizer
** (which documents the layout better than any comment), its quantizer and
** its dot product; the traits table at the end ties them together.
**
** Compatibility: block layouts are ggml's byte for byte, and the quantizers
** follow ggml's quantize_row_*_ref operation for operation (same float
** expressions, same rounding helpers: roundf where ggml uses roundf,
** nearest_int where it uses nearest_int), so a file we write is the file
** llama.cpp would write. The dot products compute the same sums but group
** the float work per block; see the note above the K-quant dots.
**
** These functions are the readable reference. Faster twins (kern_avx2.c) are
** tested against them.
*/
#include "engine/quant.h"

#include <math.h>
#include <string.h>

#include "base/base.h"

/* fp16 fields are read as native uint16_t and qh words assembled byte by
** byte; the files are little-endian and so is every machine we target. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "quant.c assumes a little-endian machine (GGUF tensors are little-endian)"
#endif

/* ggml treats a group whose largest magnitude is below this as all zeros. */
#define GROUP_MAX_EPS 1e-15f

static inline float fp16(uint16_t h) { return cn_fp16_to_fp32(h); }

static inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/*
** Round to nearest, ties to even, for |f| <= 2^22 - 1: adding 1.5 * 2^23
** leaves the rounded integer in the low mantissa bits. ggml rounds the
** K-quants this way (and the legacy types with roundf, ties away from zero);
** the two differ on exact halves, so each quantizer uses the one ggml uses.
*/
static inline int nearest_int(float f)
{
    assert(fabsf(f) <= 4194303.f);
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The element of largest magnitude, sign kept (the first of equal ones),
** 0 if all are zero; its fabsf is the amax ggml tracks beside it. */
static float max_by_magnitude(const float *x, int n)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* The 32-bit little-endian word of q5_0/q5_1's high bits. */
static inline uint32_t load_le32(const uint8_t b[4])
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* ======================================================================== */
/* Float types                                                              */
/* ======================================================================== */

/* Copy n floats (F32 "dequantizes" to itself). */
void quant_dequantize_row_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* Widen n IEEE halves to floats (exact). */
void quant_dequantize_row_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = cn_fp16_to_fp32(x[i]);
}

/* Widen n bfloat16 values to floats (exact). */
void quant_dequantize_row_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = cn_bf16_to_fp32(x[i]);
}

/* Copy n floats. */
void quant_quantize_row_f32_ref(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* Round n floats to IEEE halves, to nearest even (overflow gives inf). */
void quant_quantize_row_f16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = cn_fp32_to_fp16(src[i]);
}

/* Round n floats to bfloat16, to nearest even (NaN stays a quiet NaN). */
void quant_quantize_row_bf16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = cn_fp32_to_bf16(src[i]);
}

/* Float dots form each product in float and sum in double, as ggml's scalar
** ggml_vec_dot_f32/f16/bf16 do (their ggml_float is a double). */

/* *s = sum of w[i] * a[i] over n floats. */
void quant_vec_dot_f32(int n, float *s, const void *w, const void *a)
{
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

/* *s = sum of w[i] * a[i] over n halves (activations already rounded to fp16). */
void quant_vec_dot_f16(int n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w, *y = a;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)(cn_fp16_to_fp32(x[i]) * cn_fp16_to_fp32(y[i]));
    *s = (float)sum;
}

/* *s = sum of w[i] * a[i] over n bfloat16 values. */
void quant_vec_dot_bf16(int n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w, *y = a;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)(cn_bf16_to_fp32(x[i]) * cn_bf16_to_fp32(y[i]));
    *s = (float)sum;
}

/* ======================================================================== */
/* Blocks of 32: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1                          */
/*                                                                          */
/* In the 4- and 5-bit types byte j holds element j in its low nibble and   */
/* element j + 16 in its high nibble, so a block splits into two halves.    */
/* ======================================================================== */

/* x = (q - 8) * d */
void quant_dequantize_row_q4_0(const void *src, float *dst, int64_t n)
{
    assert(n % QK4_0 == 0);
    const block_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = fp16(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* x = q * d + m */
void quant_dequantize_row_q4_1(const void *src, float *dst, int64_t n)
{
    assert(n % QK4_1 == 0);
    const block_q4_1 *x = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = fp16(x[i].d), m = fp16(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (x[i].qs[j] & 0x0F) * d + m;
            dst[j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* x = (q - 16) * d, the fifth bit of element j being bit j of qh. */
void quant_dequantize_row_q5_0(const void *src, float *dst, int64_t n)
{
    assert(n % QK5_0 == 0);
    const block_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = fp16(x[i].d);
        const uint32_t qh = load_le32(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + QK5_0 / 2)) & 1) << 4;
            dst[j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            dst[j + QK5_0 / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

/* x = q * d + m, q of five bits as in q5_0. */
void quant_dequantize_row_q5_1(const void *src, float *dst, int64_t n)
{
    assert(n % QK5_1 == 0);
    const block_q5_1 *x = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = fp16(x[i].d), m = fp16(x[i].m);
        const uint32_t qh = load_le32(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + QK5_1 / 2)) & 1) << 4;
            dst[j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
            dst[j + QK5_1 / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

/* x = q * d */
void quant_dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    assert(n % QK8_0 == 0);
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = fp16(x[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[j] = x[i].qs[j] * d;
    }
}

/* x = q * d (the s field is a cache for dot products and is not read). */
void quant_dequantize_row_q8_1(const void *src, float *dst, int64_t n)
{
    assert(n % QK8_1 == 0);
    const block_q8_1 *x = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        const float d = fp16(x[i].d);
        for (int j = 0; j < QK8_1; j++)
            dst[j] = x[i].qs[j] * d;
    }
}

/*
** Symmetric 4-bit: the element of largest magnitude (sign kept) maps to
** q = 0, so d = max / -8 and the other end of the range clamps at q = 15.
** Truncation of x/d + 8.5 is ggml's rounding; d is rounded to fp16 only
** when stored, the quants are computed with the exact float d.
*/
void quant_quantize_row_q4_0_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK4_0 == 0);
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        const float d = max_by_magnitude(src, QK4_0) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = cn_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int q0 = CN_MIN(15, (int)(src[j] * id + 8.5f));
            const int q1 = CN_MIN(15, (int)(src[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Asymmetric 4-bit: min maps to q = 0 and max to q = 15. */
void quant_quantize_row_q4_1_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK4_1 == 0);
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float min = src[0], max = src[0];
        for (int j = 1; j < QK4_1; j++) {
            if (src[j] < min)
                min = src[j];
            if (src[j] > max)
                max = src[j];
        }
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = cn_fp32_to_fp16(d);
        y[i].m = cn_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = CN_MIN(15, (int)((src[j] - min) * id + 0.5f));
            const int q1 = CN_MIN(15, (int)((src[j + QK4_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Symmetric 5-bit, as q4_0 with d = max / -16 and q clamped at 31. */
void quant_quantize_row_q5_0_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK5_0 == 0);
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        const float d = max_by_magnitude(src, QK5_0) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = cn_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = CN_MIN(31, (int)(src[j] * id + 16.5f));
            const int q1 = CN_MIN(31, (int)(src[j + QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | (q1 & 0x0F) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK5_0 / 2);
        }
        for (int b = 0; b < 4; b++)
            y[i].qh[b] = (uint8_t)(qh >> (8 * b));
    }
}

/* Asymmetric 5-bit, as q4_1 with 31 steps. */
void quant_quantize_row_q5_1_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK5_1 == 0);
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float min = src[0], max = src[0];
        for (int j = 1; j < QK5_1; j++) {
            if (src[j] < min)
                min = src[j];
            if (src[j] > max)
                max = src[j];
        }
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = cn_fp32_to_fp16(d);
        y[i].m = cn_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            /* ggml does not clamp here; (max - min) * id + 0.5 stays below 32,
            ** so the clamp only guards against rounding surprises. */
            const int q0 = CN_MIN(31, (int)((src[j] - min) * id + 0.5f));
            const int q1 = CN_MIN(31, (int)((src[j + QK5_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | (q1 & 0x0F) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK5_1 / 2);
        }
        for (int b = 0; b < 4; b++)
            y[i].qh[b] = (uint8_t)(qh >> (8 * b));
    }
}

/* The quants of one block of 32 for q8_0 and q8_1: d = amax / 127 (returned
** as a float), q = roundf(x / d). */
static_assert(QK8_0 == QK8_1, "q8_0 and q8_1 blocks are the same size");
static float quantize_q8_block(const float *x, int8_t qs[QK8_0])
{
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++)
        amax = CN_MAX(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK8_0; j++)
        qs[j] = (int8_t)roundf(x[j] * id);
    return d;
}

/* Symmetric 8-bit: d = amax / 127, q = roundf(x / d). */
void quant_quantize_row_q8_0_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK8_0 == 0);
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0)
        y[i].d = cn_fp32_to_fp16(quantize_q8_block(src, y[i].qs));
}

/* As q8_0, and s = d * sum(q) (with the float d) for the q4_1/q5_1 dots. */
void quant_quantize_row_q8_1_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK8_1 == 0);
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        const float d = quantize_q8_block(src, y[i].qs);
        y[i].d = cn_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++)
            sum += y[i].qs[j];
        y[i].s = cn_fp32_to_fp16(sum * d);
    }
}

/* The legacy dots: one exact int32 sum per block, then the block's scales.
** The float expressions are ggml's, in ggml's order. */

/* *s = w . a for q4_0 weights and q8_0 activations. */
void quant_vec_dot_q4_0_q8_0(int n, float *s, const void *w, const void *a)
{
    assert(n % QK8_0 == 0);
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK8_0 / 2];
        }
        sum += sumi * fp16(x[i].d) * fp16(y[i].d);
    }
    *s = sum;
}

/* *s = w . a for q4_1 weights and q8_1 activations: the min m of each block
** multiplies the whole activation block, whose sum y.s carries. */
void quant_vec_dot_q4_1_q8_1(int n, float *s, const void *w, const void *a)
{
    assert(n % QK8_1 == 0);
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK8_1 / 2];
        }
        sum += (fp16(x[i].d) * fp16(y[i].d)) * sumi + fp16(x[i].m) * fp16(y[i].s);
    }
    *s = sum;
}

/* *s = w . a for q5_0 weights and q8_0 activations. */
void quant_vec_dot_q5_0_q8_0(int n, float *s, const void *w, const void *a)
{
    assert(n % QK8_0 == 0);
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK8_0; i++) {
        const uint32_t qh = load_le32(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + QK8_0 / 2)) & 1) << 4;
            sumi += (((x[i].qs[j] & 0x0F) | h0) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + QK8_0 / 2];
        }
        sum += (fp16(x[i].d) * fp16(y[i].d)) * sumi;
    }
    *s = sum;
}

/* *s = w . a for q5_1 weights and q8_1 activations. */
void quant_vec_dot_q5_1_q8_1(int n, float *s, const void *w, const void *a)
{
    assert(n % QK8_1 == 0);
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK8_1; i++) {
        const uint32_t qh = load_le32(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + QK8_1 / 2)) & 1) << 4;
            sumi += ((x[i].qs[j] & 0x0F) | h0) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + QK8_1 / 2];
        }
        sum += (fp16(x[i].d) * fp16(y[i].d)) * sumi + fp16(x[i].m) * fp16(y[i].s);
    }
    *s = sum;
}

/* *s = w . a for q8_0 weights and q8_0 activations. */
void quant_vec_dot_q8_0_q8_0(int n, float *s, const void *w, const void *a)
{
    assert(n % QK8_0 == 0);
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += sumi * (fp16(x[i].d) * fp16(y[i].d));
    }
    *s = sum;
}

/* ======================================================================== */
/* K-quants: super-blocks of QK_K = 256                                     */
/*                                                                          */
/* Each type has an unpack_* helper that spreads one block's quants into    */
/* q[256] in element order (and its sub-block scales into plain arrays).    */
/* The dequantizers and the dots both go through it, so the bit layout is   */
/* written down once per type.                                              */
/* ======================================================================== */

/*
** Q2_K layout: the 256 elements are two halves of 128. In half h, byte
** qs[32h + l] holds four 2-bit quants, bits 2j..2j+1 belonging to element
** 128h + 32j + l. Sub-block s (16 elements) has scale scales[s] & 15 and
** min scales[s] >> 4.
*/
static void unpack_q2_K(const block_q2_K *b, uint8_t q[QK_K])
{
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * j + l] = (b->qs[32 * h + l] >> (2 * j)) & 3;
}

/*
** Q3_K layout: the two low bits are packed as in Q2_K; the high bit of
** element 128h + 32j + l is bit 4h + j of hmask[l]. A set bit means q is
** used as is, a clear bit subtracts 4: quants span -4..3.
** The sixteen 6-bit scales: the low four bits of scale s sit in the low
** nibble of scales[s] for s < 8 and in the high nibble of scales[s - 8]
** otherwise; the high two bits sit in scales[8 + s % 4] at bit 2 * (s / 4).
** Scales are stored offset by 32.
*/
static void unpack_q3_K_scales(const uint8_t scales[12], int sc[QK_K / 16])
{
    for (int s = 0; s < QK_K / 16; s++) {
        const int lo = s < 8 ? scales[s] & 0x0F : scales[s - 8] >> 4;
        const int hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = (lo | hi << 4) - 32;
    }
}

static void unpack_q3_K(const block_q3_K *b, int8_t q[QK_K], int sc[QK_K / 16])
{
    for (int h = 0; h < 2; h++) {
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 32; l++) {
                const int lo = (b->qs[32 * h + l] >> (2 * j)) & 3;
                const int hi = (b->hmask[l] >> (4 * h + j)) & 1;
                q[128 * h + 32 * j + l] = (int8_t)(lo - (hi ? 0 : 4));
            }
        }
    }
    unpack_q3_K_scales(b->scales, sc);
}

/*
** The 6-bit scales and mins of Q4_K and Q5_K (ggml's get_scale_min_k4): for
** sub-blocks 0..3 the scale is scales[j] & 63 and the min scales[j + 4] & 63;
** for 4..7 the low four bits come from the nibbles of scales[j + 4] (scale
** low, min high) and the top two bits from the spare top bits of scales[j - 4]
** (scale) and scales[j] (min).
*/
static void scale_min_k4(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0F) | (scales[j - 4] >> 6) << 4);
        *m = (uint8_t)((scales[j + 4] >> 4) | (scales[j] >> 6) << 4);
    }
}

/* Q4_K layout: four chunks of 64 elements; in chunk c, byte qs[32c + l] holds
** element 64c + l in its low nibble and 64c + 32 + l in its high nibble.
** Sub-block s (32 elements) is thus the low or high nibbles of one chunk. */
static void unpack_q4_K(const uint8_t qs[QK_K / 2], uint8_t q[QK_K])
{
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = qs[32 * c + l] & 0x0F;
            q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
    }
}

/* Q5_K layout: the low four bits as in Q4_K; the fifth bit of element
** 32s + l (sub-block s) is bit s of qh[l]. */
static void unpack_q5_K(const block_q5_K *b, uint8_t q[QK_K])
{
    unpack_q4_K(b->qs, q);
    for (int s = 0; s < QK_K / 32; s++)
        for (int l = 0; l < 32; l++)
            q[32 * s + l] |= (uint8_t)(((b->qh[l] >> s) & 1) << 4);
}

/*
** Q6_K layout: two halves of 128. In half h, element 128h + 32k + l (k = 0..3)
** takes its low four bits from ql[64h + l] (k = 0: low nibble, k = 2: high)
** or ql[64h + 32 + l] (k = 1: low, k = 3: high), and its top two bits from
** bits 2k..2k+1 of qh[32h + l]. Quants are stored offset by 32.
*/
static void unpack_q6_K(const block_q6_K *b, int8_t q[QK_K])
{
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int k = 0; k < 4; k++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t byte = ql[32 * (k & 1) + l];
                const int lo = k < 2 ? byte & 0x0F : byte >> 4;
                const int hi = (qh[l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = (int8_t)((lo | hi << 4) - 32);
            }
        }
    }
}

/* ---- dequantize -------------------------------------------------------- */

/* x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), s = sub-block of 16. */
void quant_dequantize_row_q2_K(const void *src, float *dst, int64_t n)
{
    assert(n % QK_K == 0);
    const block_q2_K *x = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);
        unpack_q2_K(&x[i], q);
        for (int s = 0; s < QK_K / 16; s++) {
            const float dl = d * (x[i].scales[s] & 0x0F);
            const float ml = dmin * (x[i].scales[s] >> 4);
            for (int l = 0; l < 16; l++)
                dst[16 * s + l] = dl * q[16 * s + l] - ml;
        }
    }
}

/* x = d * (scale - 32) * q, q in -4..3, s = sub-block of 16. */
void quant_dequantize_row_q3_K(const void *src, float *dst, int64_t n)
{
    assert(n % QK_K == 0);
    const block_q3_K *x = src;
    int8_t q[QK_K];
    int sc[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = fp16(x[i].d);
        unpack_q3_K(&x[i], q, sc);
        for (int s = 0; s < QK_K / 16; s++) {
            const float dl = d * sc[s];
            for (int l = 0; l < 16; l++)
                dst[16 * s + l] = dl * q[16 * s + l];
        }
    }
}

/* One block of Q4_K or Q5_K from its unpacked quants:
** x = d * sc * q - dmin * m, sub-blocks of 32. (dst is restrict: without
** it the float stores might alias the byte array q, and the loop would not
** vectorize.) */
static void dequantize_k4_block(const uint8_t q[QK_K], const uint8_t scales[K_SCALE_SIZE],
                                uint16_t d16, uint16_t dmin16, float *restrict dst)
{
    const float d = fp16(d16), dmin = fp16(dmin16);
    for (int s = 0; s < QK_K / 32; s++) {
        uint8_t sc, m;
        scale_min_k4(s, scales, &sc, &m);
        const float dl = d * sc, ml = dmin * m;
        for (int l = 0; l < 32; l++)
            dst[32 * s + l] = dl * q[32 * s + l] - ml;
    }
}

/* x = d * sc * q - dmin * m, sub-blocks of 32. */
void quant_dequantize_row_q4_K(const void *src, float *dst, int64_t n)
{
    assert(n % QK_K == 0);
    const block_q4_K *x = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        unpack_q4_K(x[i].qs, q);
        dequantize_k4_block(q, x[i].scales, x[i].d, x[i].dmin, dst);
    }
}

/* x = d * sc * q - dmin * m, q of five bits, sub-blocks of 32. */
void quant_dequantize_row_q5_K(const void *src, float *dst, int64_t n)
{
    assert(n % QK_K == 0);
    const block_q5_K *x = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        unpack_q5_K(&x[i], q);
        dequantize_k4_block(q, x[i].scales, x[i].d, x[i].dmin, dst);
    }
}

/* x = d * scales[s] * q, q in -32..31, s = sub-block of 16. */
void quant_dequantize_row_q6_K(const void *src, float *dst, int64_t n)
{
    assert(n % QK_K == 0);
    const block_q6_K *x = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = fp16(x[i].d);
        unpack_q6_K(&x[i], q);
        for (int s = 0; s < QK_K / 16; s++)
            for (int l = 0; l < 16; l++)
                dst[16 * s + l] = d * x[i].scales[s] * q[16 * s + l];
    }
}

/* x = d * q (d is a float). */
void quant_dequantize_row_q8_K(const void *src, float *dst, int64_t n)
{
    assert(n % QK_K == 0);
    const block_q8_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++)
            dst[j] = x[i].d * x[i].qs[j];
}

/* ---- scale search (ggml's make_qx_quants, make_q3_quants, make_qkx2_quants) */

/*
** Symmetric quants L[i] in 0..2*nmax-1 (stored offset by nmax) and the scale
** that best fits x[i] ~ scale * (L[i] - nmax) in the least-squares sense
** weighted by x[i]^2. Starts from the scale that maps the largest magnitude
** to -nmax and tries 18 nearby ones. This is ggml's make_qx_quants with
** rmse_type 1 and no importance weights, the only form the _ref quantizers use.
*/
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    const float max = max_by_magnitude(x, n);
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        /* sumlx^2 / suml2 is the weighted fit gained; compare without dividing */
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/*
** Q3_K's variant: start as make_qx_quants, then move single quants while that
** improves the weighted fit (at most 5 sweeps). L[i] in 0..2*nmax-1.
*/
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    const float max = max_by_magnitude(x, n);
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
** Asymmetric quants L[i] in 0..nmax with x[i] ~ scale * L[i] - *the_min,
** fitted by weighted least squares for scale and min together. Tries the
** iscales (nmax + rmin + rdelta * k) / (max - min), k = 0..nstep, and keeps
** the one with the smallest weighted error (absolute if use_mad, else
** squared). The min is never positive: a sub-block of positive values keeps
** zero as its floor. Returns the scale; *the_min is stored negated (>= 0).
*/
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        /* normal equations of min_{scale, min} sum w (scale * l + min - x)^2 */
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Pack the sub-block scale and min (both 0..63) of Q4_K/Q5_K sub-block j:
** the inverse of scale_min_k4(). Bytes must start zeroed. */
static void pack_scale_min_k4(int j, uint8_t *scales, uint8_t ls, uint8_t lm)
{
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0x0F) | (lm & 0x0F) << 4);
        scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        scales[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ---- quantize ---------------------------------------------------------- */

/*
** Q2_K: fit each sub-block of 16 with make_qkx2_quants (weights |x|, absolute
** error), quantize the sixteen scales and mins to 4 bits against the largest
** of each, then requantize the elements with the rounded scales.
*/
void quant_quantize_row_q2_K_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK_K == 0);
    block_q2_K *y = dst;
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;

    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max_scale = 0, max_min = 0; /* the min is subtracted, so scales are >= 0 */
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(src[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }

        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = cn_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = cn_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = cn_fp32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = cn_fp32_to_fp16(0.f);
        }

        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16(y[i].d) * (y[i].scales[j] & 0x0F);
            if (!d)
                continue; /* keep the quants of the first fit */
            const float dm = fp16(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)clamp_int(nearest_int((src[16 * j + l] + dm) / d), 0, 3);
        }

        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * h + l] =
                    (uint8_t)(L[128 * h + l] | L[128 * h + l + 32] << 2 |
                              L[128 * h + l + 64] << 4 | L[128 * h + l + 96] << 6);
    }
}

/*
** Q3_K: fit each sub-block of 16 symmetrically with make_q3_quants, quantize
** the sixteen scales to signed 6 bits against the largest magnitude (which
** maps to -32), then requantize the elements with the rounded scales.
*/
void quant_quantize_row_q3_K_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK_K == 0);
    block_q3_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        for (int j = 0; j < QK_K / 16; j++)
            scales[j] = make_q3_quants(16, 4, src + 16 * j, L + 16 * j);
        const float max_scale = max_by_magnitude(scales, QK_K / 16);

        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = clamp_int(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0x0F);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0x0F) << 4);
                y[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = cn_fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = cn_fp32_to_fp16(0.f);
        }

        int sc[QK_K / 16];
        unpack_q3_K_scales(y[i].scales, sc);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16(y[i].d) * sc[j];
            if (!d)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] =
                    (int8_t)(clamp_int(nearest_int(src[16 * j + l] / d), -4, 3) + 4);
        }

        /* the high bit of element 32k + l goes to bit k of hmask[l] */
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int j = 0; j < QK_K; j++) {
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                L[j] -= 4;
            }
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * h + l] =
                    (uint8_t)(L[128 * h + l] | L[128 * h + l + 32] << 2 |
                              L[128 * h + l + 64] << 4 | L[128 * h + l + 96] << 6);
    }
}

/*
** The part Q4_K and Q5_K share: fit each sub-block of 32 with make_qkx2_quants
** (weights sqrt(mean x^2) + |x|), quantize scales and mins to 6 bits against
** the largest of each, and requantize the elements to 0..nmax with the
** rounded values. Fills y_d, y_dmin, y_scales and L.
*/
static void quantize_k4_common(const float *x, int nmax, float rmin, float rdelta, int nstep,
                               uint16_t *y_d, uint16_t *y_dmin, uint8_t y_scales[K_SCALE_SIZE],
                               uint8_t L[QK_K])
{
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;

    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, rdelta, nstep, false);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(y_scales, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        /* ggml narrows to uint8_t before clamping; values are 0..63 in practice */
        const uint8_t ls = (uint8_t)CN_MIN(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        const uint8_t lm = (uint8_t)CN_MIN(63, (uint8_t)nearest_int(inv_min * mins[j]));
        pack_scale_min_k4(j, y_scales, ls, lm);
    }
    *y_d = cn_fp32_to_fp16(max_scale / 63.f);
    *y_dmin = cn_fp32_to_fp16(max_min / 63.f);

    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        scale_min_k4(j, y_scales, &sc, &m);
        const float d = fp16(*y_d) * sc;
        if (!d)
            continue;
        const float dm = fp16(*y_dmin) * m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clamp_int(nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

/* The low four bits of L[256] as Q4_K lays them out: the inverse of
** unpack_q4_K() (Q5_K's fifth bits are masked off here). */
static void pack_q4_K(const uint8_t L[QK_K], uint8_t qs[QK_K / 2])
{
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 0x0F) | (L[64 * c + 32 + l] & 0x0F) << 4);
}

/* Q4_K: 4-bit quants with 6-bit scales and mins per sub-block of 32. */
void quant_quantize_row_q4_K_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK_K == 0);
    block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        quantize_k4_common(src, 15, -1.f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q4_K(L, y[i].qs);
    }
}

/* Q5_K: as Q4_K with 5-bit quants, the fifth bits going to qh. */
void quant_quantize_row_q5_K_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK_K == 0);
    block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        quantize_k4_common(src, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int s = 0; s < QK_K / 32; s++)
            for (int l = 0; l < 32; l++)
                y[i].qh[l] |= (uint8_t)((L[32 * s + l] >> 4) << s);
        pack_q4_K(L, y[i].qs);
    }
}

/*
** Q6_K: fit each sub-block of 16 symmetrically with make_qx_quants, quantize
** the scales to signed 8 bits against the largest magnitude (which maps to
** -128), then requantize the elements to -32..31 with the rounded scales.
*/
void quant_quantize_row_q6_K_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK_K == 0);
    block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        for (int s = 0; s < QK_K / 16; s++)
            scales[s] = make_qx_quants(16, 32, src + 16 * s, L + 16 * s);
        const float max_scale = max_by_magnitude(scales, QK_K / 16);
        if (fabsf(max_scale) < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }

        const float iscale = -128.f / max_scale;
        y[i].d = cn_fp32_to_fp16(1 / iscale);
        for (int s = 0; s < QK_K / 16; s++)
            y[i].scales[s] = (int8_t)CN_MIN(127, nearest_int(iscale * scales[s]));

        for (int s = 0; s < QK_K / 16; s++) {
            const float d = fp16(y[i].d) * y[i].scales[s];
            if (!d)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * s + l] = (int8_t)(clamp_int(nearest_int(src[16 * s + l] / d), -32, 31) + 32);
        }

        /* the inverse of unpack_q6_K */
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0x0F) | (Lh[l + 64] & 0x0F) << 4);
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0F) | (Lh[l + 96] & 0x0F) << 4);
                qh[l] = (uint8_t)((Lh[l] >> 4) | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 |
                                  (Lh[l + 96] >> 4) << 6);
            }
        }
    }
}

/*
** Q8_K, the activation format of the K-quant dots: the largest magnitude
** (sign kept) maps to -127, d = 1 / iscale stays a float, and bsums holds the
** sum of each run of 16 quants so the dots can apply the mins per sub-block
** without touching the quants.
*/
void quant_quantize_row_q8_K_ref(const float *src, void *dst, int64_t n)
{
    assert(n % QK_K == 0);
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        const float max = max_by_magnitude(src, QK_K);
        if (!max) {
            /* ggml leaves bsums unwritten here; zero them so the block is defined */
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++)
            y[i].qs[j] = (int8_t)CN_MIN(127, nearest_int(iscale * src[j]));
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- dot products with Q8_K activations --------------------------------
**
** Per super-block: an exact int32 sum of scale * sum(q * a) over the
** sub-blocks, times d * a.d, minus the min term dmin * a.d * sum(m * bsums).
** ggml's scalar code computes the same integers but spreads them over eight
** float accumulators, so results agree with it to float rounding, not bit for
** bit (its SIMD paths differ from its scalar path in the same way).
** Largest |int32| reached: Q6_K, 16 sub-blocks * 128 * 16 * 32 * 127 < 2^28.
*/

/* *s = w . a for q2_K weights and q8_K activations. */
void quant_vec_dot_q2_K_q8_K(int n, float *s, const void *w, const void *a)
{
    assert(n % QK_K == 0);
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    uint8_t q[QK_K];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        unpack_q2_K(&x[i], q);
        int isum = 0, summs = 0;
        for (int sb = 0; sb < QK_K / 16; sb++) {
            int sumi = 0;
            for (int l = 0; l < 16; l++)
                sumi += q[16 * sb + l] * y[i].qs[16 * sb + l];
            isum += (x[i].scales[sb] & 0x0F) * sumi;
            summs += (x[i].scales[sb] >> 4) * y[i].bsums[sb];
        }
        const float dall = y[i].d * fp16(x[i].d);
        const float dmin = y[i].d * fp16(x[i].dmin);
        sum += dall * isum - dmin * summs;
    }
    *s = sum;
}

/* *s = w . a for q3_K weights and q8_K activations. */
void quant_vec_dot_q3_K_q8_K(int n, float *s, const void *w, const void *a)
{
    assert(n % QK_K == 0);
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    int8_t q[QK_K];
    int sc[QK_K / 16];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        unpack_q3_K(&x[i], q, sc);
        int isum = 0;
        for (int sb = 0; sb < QK_K / 16; sb++) {
            int sumi = 0;
            for (int l = 0; l < 16; l++)
                sumi += q[16 * sb + l] * y[i].qs[16 * sb + l];
            isum += sc[sb] * sumi;
        }
        sum += fp16(x[i].d) * y[i].d * isum;
    }
    *s = sum;
}

/* One super-block of Q4_K or Q5_K from its unpacked quants, times one
** block of activations: d * a.d * sum(sc * q . a) - dmin * a.d * sum(m * bsums). */
static float dot_k4_block(const uint8_t q[QK_K], const uint8_t scales[K_SCALE_SIZE], uint16_t d16,
                          uint16_t dmin16, const block_q8_K *y)
{
    int isum = 0, summs = 0;
    for (int sb = 0; sb < QK_K / 32; sb++) {
        uint8_t sc, m;
        scale_min_k4(sb, scales, &sc, &m);
        int sumi = 0;
        for (int l = 0; l < 32; l++)
            sumi += q[32 * sb + l] * y->qs[32 * sb + l];
        isum += sc * sumi;
        summs += m * (y->bsums[2 * sb] + y->bsums[2 * sb + 1]);
    }
    const float d = fp16(d16) * y->d;
    const float dmin = fp16(dmin16) * y->d;
    return d * isum - dmin * summs;
}

/* *s = w . a for q4_K weights and q8_K activations. */
void quant_vec_dot_q4_K_q8_K(int n, float *s, const void *w, const void *a)
{
    assert(n % QK_K == 0);
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    uint8_t q[QK_K];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        unpack_q4_K(x[i].qs, q);
        sum += dot_k4_block(q, x[i].scales, x[i].d, x[i].dmin, &y[i]);
    }
    *s = sum;
}

/* *s = w . a for q5_K weights and q8_K activations. */
void quant_vec_dot_q5_K_q8_K(int n, float *s, const void *w, const void *a)
{
    assert(n % QK_K == 0);
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    uint8_t q[QK_K];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        unpack_q5_K(&x[i], q);
        sum += dot_k4_block(q, x[i].scales, x[i].d, x[i].dmin, &y[i]);
    }
    *s = sum;
}

/* *s = w . a for q6_K weights and q8_K activations. */
void quant_vec_dot_q6_K_q8_K(int n, float *s, const void *w, const void *a)
{
    assert(n % QK_K == 0);
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    int8_t q[QK_K];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        unpack_q6_K(&x[i], q);
        int isum = 0;
        for (int sb = 0; sb < QK_K / 16; sb++) {
            int sumi = 0;
            for (int l = 0; l < 16; l++)
                sumi += q[16 * sb + l] * y[i].qs[16 * sb + l];
            isum += x[i].scales[sb] * sumi;
        }
        sum += fp16(x[i].d) * y[i].d * isum;
    }
    *s = sum;
}

/* ======================================================================== */
/* The traits table                                                         */
/* ======================================================================== */

#define QUANT_TYPE_LIMIT GGML_TYPE_COUNT

/* One row per supported type; rows left empty (name NULL) are unsupported.
** Q8_1 and Q8_K exist only as activations, so they have no vec_dot (and
** their vec_dot_type is unused). */
static const quant_traits traits[QUANT_TYPE_LIMIT] = {
    [GGML_F32] = {"F32", 1, sizeof(float), GGML_F32, quant_dequantize_row_f32,
                  quant_quantize_row_f32_ref, quant_vec_dot_f32},
    [GGML_F16] = {"F16", 1, sizeof(uint16_t), GGML_F16, quant_dequantize_row_f16,
                  quant_quantize_row_f16_ref, quant_vec_dot_f16},
    [GGML_BF16] = {"BF16", 1, sizeof(uint16_t), GGML_BF16, quant_dequantize_row_bf16,
                   quant_quantize_row_bf16_ref, quant_vec_dot_bf16},
    [GGML_Q4_0] = {"Q4_0", QK4_0, sizeof(block_q4_0), GGML_Q8_0, quant_dequantize_row_q4_0,
                   quant_quantize_row_q4_0_ref, quant_vec_dot_q4_0_q8_0},
    [GGML_Q4_1] = {"Q4_1", QK4_1, sizeof(block_q4_1), GGML_Q8_1, quant_dequantize_row_q4_1,
                   quant_quantize_row_q4_1_ref, quant_vec_dot_q4_1_q8_1},
    [GGML_Q5_0] = {"Q5_0", QK5_0, sizeof(block_q5_0), GGML_Q8_0, quant_dequantize_row_q5_0,
                   quant_quantize_row_q5_0_ref, quant_vec_dot_q5_0_q8_0},
    [GGML_Q5_1] = {"Q5_1", QK5_1, sizeof(block_q5_1), GGML_Q8_1, quant_dequantize_row_q5_1,
                   quant_quantize_row_q5_1_ref, quant_vec_dot_q5_1_q8_1},
    [GGML_Q8_0] = {"Q8_0", QK8_0, sizeof(block_q8_0), GGML_Q8_0, quant_dequantize_row_q8_0,
                   quant_quantize_row_q8_0_ref, quant_vec_dot_q8_0_q8_0},
    [GGML_Q8_1] = {"Q8_1", QK8_1, sizeof(block_q8_1), GGML_Q8_1, quant_dequantize_row_q8_1,
                   quant_quantize_row_q8_1_ref, NULL},
    [GGML_Q2_K] = {"Q2_K", QK_K, sizeof(block_q2_K), GGML_Q8_K, quant_dequantize_row_q2_K,
                   quant_quantize_row_q2_K_ref, quant_vec_dot_q2_K_q8_K},
    [GGML_Q3_K] = {"Q3_K", QK_K, sizeof(block_q3_K), GGML_Q8_K, quant_dequantize_row_q3_K,
                   quant_quantize_row_q3_K_ref, quant_vec_dot_q3_K_q8_K},
    [GGML_Q4_K] = {"Q4_K", QK_K, sizeof(block_q4_K), GGML_Q8_K, quant_dequantize_row_q4_K,
                   quant_quantize_row_q4_K_ref, quant_vec_dot_q4_K_q8_K},
    [GGML_Q5_K] = {"Q5_K", QK_K, sizeof(block_q5_K), GGML_Q8_K, quant_dequantize_row_q5_K,
                   quant_quantize_row_q5_K_ref, quant_vec_dot_q5_K_q8_K},
    [GGML_Q6_K] = {"Q6_K", QK_K, sizeof(block_q6_K), GGML_Q8_K, quant_dequantize_row_q6_K,
                   quant_quantize_row_q6_K_ref, quant_vec_dot_q6_K_q8_K},
    [GGML_Q8_K] = {"Q8_K", QK_K, sizeof(block_q8_K), GGML_Q8_K, quant_dequantize_row_q8_K,
                   quant_quantize_row_q8_K_ref, NULL},
};

const quant_traits *quant_get(uint32_t type)
{
    if (type >= QUANT_TYPE_LIMIT || !traits[type].name)
        return NULL;
    return &traits[type];
}
