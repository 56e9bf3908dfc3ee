/*
** Unit tests for src/engine/quant.c: the block layouts (hand-built blocks
** whose values are worked out in the comments), the reference quantizers
** (known answers and round-trip error bounds on seeded random data) and the
** dot products (against dequantize-both-then-dot on odd block counts).
*/
#include "test.h"
#include "base/base.h"
#include "engine/quant.h"

#include <stddef.h>

/* ---- helpers ----------------------------------------------------------- */

/* xorshift64*: a fixed sequence for a fixed seed, on every platform. */
static uint64_t rng_next(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 0x2545F4914F6CDD1DULL;
}

static double rng_uniform(uint64_t *st) /* in (0, 1) */
{
    return ((double)(rng_next(st) >> 11) + 0.5) / 9007199254740992.0;
}

/* Gaussian samples (Box-Muller), the shape of real weights and activations. */
static void fill_gauss(float *x, int64_t n, uint64_t seed, float sigma)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int64_t i = 0; i < n; i++) {
        double u = rng_uniform(&st), v = rng_uniform(&st);
        x[i] = (float)(sigma * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
}

static float *dequant(uint32_t type, const void *src, int64_t n)
{
    float *out = malloc((size_t)n * sizeof(float));
    quant_get(type)->to_float(src, out, n);
    return out;
}

static size_t row_bytes(uint32_t type, int64_t n)
{
    const quant_traits *t = quant_get(type);
    return (size_t)(n / t->block_size) * (size_t)t->type_size;
}

/* ---- the traits table -------------------------------------------------- */

TEST(quant_traits_table)
{
    static const struct {
        uint32_t type;
        const char *name;
        int block, size;
        uint32_t dot_type;
        int has_dot;
    } want[] = {
        {GGML_F32, "F32", 1, 4, GGML_F32, 1},       {GGML_F16, "F16", 1, 2, GGML_F16, 1},
        {GGML_BF16, "BF16", 1, 2, GGML_BF16, 1},    {GGML_Q4_0, "Q4_0", 32, 18, GGML_Q8_0, 1},
        {GGML_Q4_1, "Q4_1", 32, 20, GGML_Q8_1, 1},  {GGML_Q5_0, "Q5_0", 32, 22, GGML_Q8_0, 1},
        {GGML_Q5_1, "Q5_1", 32, 24, GGML_Q8_1, 1},  {GGML_Q8_0, "Q8_0", 32, 34, GGML_Q8_0, 1},
        {GGML_Q8_1, "Q8_1", 32, 36, GGML_Q8_1, 0},  {GGML_Q2_K, "Q2_K", 256, 84, GGML_Q8_K, 1},
        {GGML_Q3_K, "Q3_K", 256, 110, GGML_Q8_K, 1}, {GGML_Q4_K, "Q4_K", 256, 144, GGML_Q8_K, 1},
        {GGML_Q5_K, "Q5_K", 256, 176, GGML_Q8_K, 1}, {GGML_Q6_K, "Q6_K", 256, 210, GGML_Q8_K, 1},
        {GGML_Q8_K, "Q8_K", 256, 292, GGML_Q8_K, 0},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(want); i++) {
        const quant_traits *t = quant_get(want[i].type);
        EXPECT(t != NULL);
        if (!t)
            continue;
        EXPECT_STR(t->name, want[i].name);
        EXPECT_EQ_INT(t->block_size, want[i].block);
        EXPECT_EQ_INT(t->type_size, want[i].size);
        EXPECT(t->to_float != NULL);
        EXPECT(t->from_float != NULL);
        EXPECT_EQ_INT(t->vec_dot != NULL, want[i].has_dot);
        if (want[i].has_dot)
            EXPECT_EQ_INT(t->vec_dot_type, want[i].dot_type);
    }
    /* i-quants, ternary and integer types are not computed with */
    EXPECT(quant_get(GGML_IQ2_XXS) == NULL);
    EXPECT(quant_get(GGML_IQ4_NL) == NULL);
    EXPECT(quant_get(GGML_TQ1_0) == NULL);
    EXPECT(quant_get(GGML_I32) == NULL);
    EXPECT(quant_get(4) == NULL); /* removed Q4_2 */
    EXPECT(quant_get(GGML_TYPE_COUNT) == NULL);
    EXPECT(quant_get(0xFFFFFFFFu) == NULL);
}

/* ---- hand-built blocks: float types ------------------------------------ */

TEST(quant_f16_hand)
{
    /* 0x3C00 = 1, 0xC000 = -2, 0x3800 = 0.5, 0x7BFF = 65504 (largest half),
    ** 0x0001 = 2^-24 (smallest subnormal), 0x8000 = -0 */
    const uint16_t h[6] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000};
    float f[6];
    quant_dequantize_row_f16(h, f, 6);
    EXPECT_EQ_INT(f[0] == 1.0f, 1);
    EXPECT_EQ_INT(f[1] == -2.0f, 1);
    EXPECT_EQ_INT(f[2] == 0.5f, 1);
    EXPECT_EQ_INT(f[3] == 65504.0f, 1);
    EXPECT_EQ_INT(f[4] == 0x1p-24f, 1);
    EXPECT(f[5] == 0.0f && signbit(f[5]));

    /* 1/3 rounds to 0x3555; 65520 is past the largest half and overflows */
    const float in[4] = {1.0f, 1.0f / 3.0f, -65504.0f, 65520.0f};
    uint16_t out[4];
    quant_quantize_row_f16_ref(in, out, 4);
    EXPECT_EQ_INT(out[0], 0x3C00);
    EXPECT_EQ_INT(out[1], 0x3555);
    EXPECT_EQ_INT(out[2], 0xFBFF);
    EXPECT_EQ_INT(out[3], 0x7C00);
}

TEST(quant_bf16_hand)
{
    /* bf16 is the top half of a float: 0x3F80 = 1, 0xC040 = -3, 0x4049 ~ 3.140625 */
    const uint16_t h[3] = {0x3F80, 0xC040, 0x4049};
    float f[3];
    quant_dequantize_row_bf16(h, f, 3);
    EXPECT(f[0] == 1.0f);
    EXPECT(f[1] == -3.0f);
    EXPECT(f[2] == 3.140625f);

    /* 1 + 2^-8 is halfway between 0x3F80 and 0x3F81: ties go to even (0x3F80);
    ** 1 + 3 * 2^-8 is halfway between 0x3F81 and 0x3F82: to even (0x3F82) */
    const float in[2] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
    uint16_t out[2];
    quant_quantize_row_bf16_ref(in, out, 2);
    EXPECT_EQ_INT(out[0], 0x3F80);
    EXPECT_EQ_INT(out[1], 0x3F82);
}

/* ---- hand-built blocks: blocks of 32 ----------------------------------- */

TEST(quant_q4_0_hand)
{
    /* d = 0.5 (fp16 0x3800); byte j = (15 - j) << 4 | j, so element j has
    ** q = j and element j + 16 has q = 15 - j; x = (q - 8) * 0.5 */
    block_q4_0 b = {.d = 0x3800};
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float f[32];
    quant_dequantize_row_q4_0(&b, f, 32);
    EXPECT_NEAR(f[0], -4.0, 0);  /* (0 - 8) * 0.5 */
    EXPECT_NEAR(f[8], 0.0, 0);   /* (8 - 8) * 0.5 */
    EXPECT_NEAR(f[15], 3.5, 0);  /* (15 - 8) * 0.5 */
    EXPECT_NEAR(f[16], 3.5, 0);  /* high nibble of byte 0: 15 */
    EXPECT_NEAR(f[31], -4.0, 0); /* high nibble of byte 15: 0 */
    for (int j = 0; j < 16; j++) {
        EXPECT_NEAR(f[j], (j - 8) * 0.5, 0);
        EXPECT_NEAR(f[j + 16], (7 - j) * 0.5, 0);
    }
}

TEST(quant_q4_1_hand)
{
    /* d = 0.5, m = -1 (0xBC00); nibbles as in q4_0_hand; x = q * 0.5 - 1 */
    block_q4_1 b = {.d = 0x3800, .m = 0xBC00};
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float f[32];
    quant_dequantize_row_q4_1(&b, f, 32);
    EXPECT_NEAR(f[0], -1.0, 0);
    EXPECT_NEAR(f[15], 6.5, 0);  /* 15 * 0.5 - 1 */
    EXPECT_NEAR(f[16], 6.5, 0);
    EXPECT_NEAR(f[31], -1.0, 0);
    EXPECT_NEAR(f[3], 0.5, 0);   /* 3 * 0.5 - 1 */
}

TEST(quant_q5_0_hand)
{
    /* d = 0.25 (0x3400). qh bytes 01 00 10 80 set bits 0, 20 and 31 of the
    ** little-endian word: the fifth bit of elements 0, 20 and 31.
    ** qs[15] = 0xF3: element 15 low bits 3, element 31 low bits 15.
    ** x = (q - 16) * 0.25 */
    block_q5_0 b = {.d = 0x3400, .qh = {0x01, 0x00, 0x10, 0x80}};
    b.qs[15] = 0xF3;
    float f[32];
    quant_dequantize_row_q5_0(&b, f, 32);
    EXPECT_NEAR(f[0], 0.0, 0);    /* 0 | 16 = 16 -> 0 */
    EXPECT_NEAR(f[1], -4.0, 0);   /* 0 -> -16 * 0.25 */
    EXPECT_NEAR(f[4], -4.0, 0);   /* bit 20 belongs to element 20, not 4 */
    EXPECT_NEAR(f[20], 0.0, 0);   /* 0 | 16 */
    EXPECT_NEAR(f[15], -3.25, 0); /* 3 - 16 = -13 */
    EXPECT_NEAR(f[16], -4.0, 0);
    EXPECT_NEAR(f[31], 3.75, 0);  /* 15 | 16 = 31 -> 15 * 0.25 */
}

TEST(quant_q5_1_hand)
{
    /* d = 0.5, m = 2 (0x4000). qs[0] = 0x21: element 0 low bits 1, element
    ** 16 low bits 2. qh bytes 00 02 01 00: bits 9 and 16, fifth bits of
    ** elements 9 and 16. x = q * 0.5 + 2 */
    block_q5_1 b = {.d = 0x3800, .m = 0x4000, .qh = {0x00, 0x02, 0x01, 0x00}};
    b.qs[0] = 0x21;
    float f[32];
    quant_dequantize_row_q5_1(&b, f, 32);
    EXPECT_NEAR(f[0], 2.5, 0);  /* 1 * 0.5 + 2 */
    EXPECT_NEAR(f[1], 2.0, 0);  /* 0 */
    EXPECT_NEAR(f[9], 10.0, 0); /* 16 * 0.5 + 2 */
    EXPECT_NEAR(f[16], 11.0, 0); /* (2 | 16) = 18 -> 9 + 2 */
    EXPECT_NEAR(f[17], 2.0, 0);
}

TEST(quant_q8_0_hand)
{
    /* d = 0.5; qs[j] = j - 16, but qs[30] = 127 and qs[31] = -128 */
    block_q8_0 b = {.d = 0x3800};
    for (int j = 0; j < 32; j++)
        b.qs[j] = (int8_t)(j - 16);
    b.qs[30] = 127;
    b.qs[31] = -128;
    float f[32];
    quant_dequantize_row_q8_0(&b, f, 32);
    for (int j = 0; j < 30; j++)
        EXPECT_NEAR(f[j], (j - 16) * 0.5, 0);
    EXPECT_NEAR(f[30], 63.5, 0);
    EXPECT_NEAR(f[31], -64.0, 0);
}

TEST(quant_q8_1_hand)
{
    /* d = -0.5 (0xB800); s is only for dot products and is ignored here */
    block_q8_1 b = {.d = 0xB800, .s = 0x1234};
    for (int j = 0; j < 32; j++)
        b.qs[j] = (int8_t)j;
    float f[32];
    quant_dequantize_row_q8_1(&b, f, 32);
    EXPECT_NEAR(f[0], 0.0, 0);
    EXPECT_NEAR(f[1], -0.5, 0);
    EXPECT_NEAR(f[31], -15.5, 0);
}

/* ---- hand-built blocks: K-quants --------------------------------------- */

TEST(quant_q8_K_hand)
{
    /* d is a plain float: x = 0.25 * (j - 128) */
    static block_q8_K b;
    b.d = 0.25f;
    for (int j = 0; j < QK_K; j++)
        b.qs[j] = (int8_t)(j - 128);
    float f[QK_K];
    quant_dequantize_row_q8_K(&b, f, QK_K);
    EXPECT_NEAR(f[0], -32.0, 0);
    EXPECT_NEAR(f[128], 0.0, 0);
    EXPECT_NEAR(f[255], 31.75, 0);
}

TEST(quant_q2_K_hand)
{
    /* d = 1 (0x3C00), dmin = 0.5 (0x3800). Element 128h + 32j + l takes bits
    ** 2j..2j+1 of qs[32h + l]; sub-block s = element / 16 has scale
    ** scales[s] & 15 and min scales[s] >> 4; x = 1 * sc * q - 0.5 * m. */
    block_q2_K b = {.d = 0x3C00, .dmin = 0x3800};
    b.scales[0] = 0x21;  /* sc 1, m 2 */
    b.scales[1] = 0x13;  /* sc 3, m 1 */
    b.scales[2] = 0x05;  /* sc 5, m 0 */
    b.scales[4] = 0x12;  /* sc 2, m 1 */
    b.scales[6] = 0x31;  /* sc 1, m 3 */
    b.scales[8] = 0xF7;  /* sc 7, m 15 */
    b.scales[15] = 0x10; /* sc 0, m 1 */
    b.qs[0] = 0xE4;      /* 11 10 01 00: elements 96, 64, 32, 0 get 3, 2, 1, 0 */
    b.qs[16] = 0x03;     /* element 16 gets 3 */
    b.qs[32] = 0x02;     /* element 128 gets 2 */
    b.qs[63] = 0xFF;
    float f[QK_K];
    quant_dequantize_row_q2_K(&b, f, QK_K);
    EXPECT_NEAR(f[0], -1.0, 0);   /* sub 0: 1*0 - 0.5*2 */
    EXPECT_NEAR(f[1], -1.0, 0);   /* qs[1] = 0 */
    EXPECT_NEAR(f[16], 8.5, 0);   /* sub 1: 3*3 - 0.5*1 */
    EXPECT_NEAR(f[32], 5.0, 0);   /* sub 2: 5*1 - 0 */
    EXPECT_NEAR(f[64], 3.5, 0);   /* sub 4: 2*2 - 0.5 */
    EXPECT_NEAR(f[96], 1.5, 0);   /* sub 6: 1*3 - 1.5 */
    EXPECT_NEAR(f[128], 6.5, 0);  /* sub 8: 7*2 - 7.5 */
    EXPECT_NEAR(f[255], -0.5, 0); /* sub 15: 0*3 - 0.5 */
    EXPECT_NEAR(f[48], 0.0, 0);   /* sub 3: all zero */
}

TEST(quant_q3_K_hand)
{
    /* d = 0.5. Scales (6 bits, offset 32): low nibble of scale s in
    ** scales[s] (s < 8) or the high nibble of scales[s - 8]; top two bits
    ** in scales[8 + s % 4] at bit 2 * (s / 4).
    **   scales[0] = 0x01, scales[8] bits 0-1 = 2: s0 = 1 | 2 << 4 = 33 -> +1
    **   scales[4] = 0x0F, scales[8] bits 2-3 = 3: s4 = 15 | 3 << 4 = 63 -> +31
    **   scales[1] high nibble 8, scales[9] bits 4-5 = 2: s9 = 8 | 32 = 40 -> +8
    **   everything else 0 -> -32 (s1, s2, s8, s15, ...)
    ** Element 128h + 32j + l: low two bits = bits 2j.. of qs[32h + l], high
    ** bit = bit 4h + j of hmask[l]; q = low - (high ? 0 : 4). */
    block_q3_K b = {.d = 0x3800};
    b.scales[0] = 0x01;
    b.scales[1] = 0x80;
    b.scales[4] = 0x0F;
    b.scales[8] = 0x02 | 3 << 2;
    b.scales[9] = 2 << 4;
    b.qs[0] = 0x13;    /* element 0 low 3, element 32 low 0, element 64 low 1 */
    b.hmask[0] = 0x05; /* bits 0 and 2: elements 0 and 64 keep their value */
    b.qs[48] = 0x01;   /* element 144 (h 1, j 0, l 16) low 1; hmask[16] bit 4 clear */
    b.qs[63] = 0xC0;   /* element 255 (h 1, j 3, l 31) low 3 */
    b.hmask[31] = 0x80; /* ... and its high bit set */
    float f[QK_K];
    quant_dequantize_row_q3_K(&b, f, QK_K);
    EXPECT_NEAR(f[0], 1.5, 0);     /* 0.5 * 1 * 3 */
    EXPECT_NEAR(f[1], -2.0, 0);    /* 0.5 * 1 * (0 - 4) */
    EXPECT_NEAR(f[32], 64.0, 0);   /* sub 2: 0.5 * -32 * (0 - 4) */
    EXPECT_NEAR(f[64], 15.5, 0);   /* sub 4: 0.5 * 31 * 1 */
    EXPECT_NEAR(f[144], -12.0, 0); /* sub 9: 0.5 * 8 * (1 - 4) */
    EXPECT_NEAR(f[255], -48.0, 0); /* sub 15: 0.5 * -32 * 3 */
}

/* Scales shared by the Q4_K and Q5_K hand tests. Sub-block j < 4: scale
** scales[j] & 63, min scales[j + 4] & 63. j >= 4: low bits from the nibbles
** of scales[j + 4], top bits from bits 6-7 of scales[j - 4] (scale) and
** scales[j] (min).
**   sub 0: sc 2, m 1            scales[0] = 2, scales[4] = 1
**   sub 1: sc 3, m 0            scales[1] = 3 | ..., scales[5] = 0 | ...
**   sub 5: sc 37 = 0b10_0101    low 5 in scales[9], top 2 in scales[1] bits 6-7
**          m  20 = 0b01_0100    low 4 in scales[9] high, top 1 in scales[5] bits 6-7
**   sub 7: sc 63, m 63          scales[11] = 0xFF, scales[3] and scales[7] bits 6-7 = 3
**   others 0 */
static void k4_hand_scales(uint8_t s[K_SCALE_SIZE])
{
    memset(s, 0, K_SCALE_SIZE);
    s[0] = 2;
    s[4] = 1;
    s[1] = 3 | 2 << 6;
    s[5] = 1 << 6;
    s[9] = 5 | 4 << 4;
    s[3] = 3 << 6;
    s[7] = 3 << 6;
    s[11] = 0xFF;
}

TEST(quant_q4_K_hand)
{
    /* d = 1, dmin = 0.5; element 64c + l is the low nibble of qs[32c + l],
    ** 64c + 32 + l the high nibble; x = 1 * sc * q - 0.5 * m */
    block_q4_K b = {.d = 0x3C00, .dmin = 0x3800};
    k4_hand_scales(b.scales);
    b.qs[0] = 0x37;   /* element 0: 7, element 32: 3 */
    b.qs[64] = 0xA0;  /* element 128: 0, element 160: 10 */
    b.qs[127] = 0xF0; /* element 255: 15 */
    float f[QK_K];
    quant_dequantize_row_q4_K(&b, f, QK_K);
    EXPECT_NEAR(f[0], 13.5, 0);    /* sub 0: 2*7 - 0.5*1 */
    EXPECT_NEAR(f[1], -0.5, 0);    /* sub 0: 2*0 - 0.5 */
    EXPECT_NEAR(f[32], 9.0, 0);    /* sub 1: 3*3 - 0 */
    EXPECT_NEAR(f[128], 0.0, 0);   /* sub 4: all zero */
    EXPECT_NEAR(f[160], 360.0, 0); /* sub 5: 37*10 - 0.5*20 */
    EXPECT_NEAR(f[255], 913.5, 0); /* sub 7: 63*15 - 0.5*63 */
}

TEST(quant_q5_K_hand)
{
    /* as q4_K_hand, plus fifth bits: element 32s + l uses bit s of qh[l] */
    block_q5_K b = {.d = 0x3C00, .dmin = 0x3800};
    k4_hand_scales(b.scales);
    b.qs[0] = 0x37;
    b.qs[64] = 0xA0;
    b.qs[127] = 0xF0;
    b.qh[0] = 0x20;  /* bit 5: element 160 */
    b.qh[1] = 0x02;  /* bit 1: element 33 */
    b.qh[31] = 0x80; /* bit 7: element 255 */
    float f[QK_K];
    quant_dequantize_row_q5_K(&b, f, QK_K);
    EXPECT_NEAR(f[0], 13.5, 0);     /* no fifth bit: as q4_K */
    EXPECT_NEAR(f[1], -0.5, 0);
    EXPECT_NEAR(f[33], 48.0, 0);    /* sub 1: 3 * (0 + 16) */
    EXPECT_NEAR(f[160], 952.0, 0);  /* sub 5: 37 * (10 + 16) - 10 */
    EXPECT_NEAR(f[255], 1921.5, 0); /* sub 7: 63 * (15 + 16) - 31.5 */
}

TEST(quant_q6_K_hand)
{
    /* d = 0.5; element 128h + 32k + l: low bits from ql[64h + l] (k 0 low
    ** nibble, k 2 high) or ql[64h + 32 + l] (k 1 low, k 3 high), top two bits
    ** from bits 2k.. of qh[32h + l]; q - 32 times scales[element / 16] */
    block_q6_K b = {.d = 0x3800};
    for (int s = 0; s < 16; s++)
        b.scales[s] = 1;
    b.scales[0] = 3;
    b.scales[5] = -2;
    b.scales[11] = -128;
    b.ql[0] = 0x05;   /* element 0 low bits 5 */
    b.qh[0] = 0x02;   /* element 0 top bits 2: q = 5 | 32 = 37 */
    b.ql[127] = 0x0F; /* element 191 (h 1, k 1, l 31) low 15 */
    b.qh[63] = 0x0C;  /* ... top 3: q = 63 */
    b.ql[96] = 0x90;  /* element 224 (h 1, k 3, l 0) low 9 */
    b.qh[32] = 0x40;  /* ... top 1: q = 25 */
    float f[QK_K];
    quant_dequantize_row_q6_K(&b, f, QK_K);
    EXPECT_NEAR(f[0], 7.5, 0);       /* 0.5 * 3 * (37 - 32) */
    EXPECT_NEAR(f[1], -48.0, 0);     /* 0.5 * 3 * (0 - 32) */
    EXPECT_NEAR(f[81], 32.0, 0);     /* sub 5: 0.5 * -2 * (0 - 32) */
    EXPECT_NEAR(f[191], -1984.0, 0); /* sub 11: 0.5 * -128 * (63 - 32) */
    EXPECT_NEAR(f[224], -3.5, 0);    /* sub 14: 0.5 * 1 * (25 - 32) */
}

/* ---- quantizers: known answers ----------------------------------------- */

TEST(quant_q4_0_known_answer)
{
    /* x[j] = j - 16: the largest magnitude is -16, so d = -16 / -8 = 2 and
    ** q = trunc(x / 2 + 8.5) = trunc(j / 2 + 0.5), clamped to 15 */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    block_q4_0 b;
    quant_quantize_row_q4_0_ref(x, &b, 32);
    EXPECT_EQ_INT(b.d, 0x4000);  /* 2.0 */
    EXPECT_EQ_INT(b.qs[0], 0x80); /* q(0) = 0, q(16) = 8 */
    EXPECT_EQ_INT(b.qs[1], 0x91); /* q(1) = trunc(1.0) = 1, q(17) = trunc(9.0) = 9 */
    EXPECT_EQ_INT(b.qs[15], 0xF8); /* q(15) = 8, q(31) = trunc(16) -> 15 */
    float f[32];
    quant_dequantize_row_q4_0(&b, f, 32);
    EXPECT_NEAR(f[0], -16.0, 0);
    EXPECT_NEAR(f[31], 14.0, 0); /* clamped: (15 - 8) * 2 */
}

TEST(quant_q4_1_known_answer)
{
    /* x[j] = j % 16 - 3: min -3, max 12, d = 15 / 15 = 1, q = j % 16 */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16 - 3);
    block_q4_1 b;
    quant_quantize_row_q4_1_ref(x, &b, 32);
    EXPECT_EQ_INT(b.d, 0x3C00);
    EXPECT_EQ_INT(b.m, 0xC200); /* -3 */
    for (int j = 0; j < 16; j++)
        EXPECT_EQ_INT(b.qs[j], j | j << 4);
}

TEST(quant_q8_0_known_answer)
{
    /* x[j] = j - 16: amax 16, d = 16/127 (fp16 0x3008 = 0.1259765625),
    ** q = roundf(x * 127/16) */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    block_q8_0 b;
    quant_quantize_row_q8_0_ref(x, &b, 32);
    EXPECT_EQ_INT(b.d, 0x3008);
    EXPECT_EQ_INT(b.qs[0], -127);
    EXPECT_EQ_INT(b.qs[16], 0);
    EXPECT_EQ_INT(b.qs[17], 8);   /* 7.9375 */
    EXPECT_EQ_INT(b.qs[20], 32);  /* 31.75 */
    EXPECT_EQ_INT(b.qs[31], 119); /* 119.06 */
}

TEST(quant_q8_K_known_answer)
{
    /* x[j] = j - 128: the extreme is -128, iscale = -127 / -128, d = 128/127 */
    static float x[QK_K];
    for (int j = 0; j < QK_K; j++)
        x[j] = (float)(j - 128);
    static block_q8_K b;
    quant_quantize_row_q8_K_ref(x, &b, QK_K);
    EXPECT_NEAR(b.d, 128.0 / 127.0, 1e-6);
    EXPECT_EQ_INT(b.qs[0], -127);
    EXPECT_EQ_INT(b.qs[128], 0);
    EXPECT_EQ_INT(b.qs[255], 126); /* 127 * 127/128 = 126.008 */
    /* bsums[0] = sum over j < 16 of round((j - 128) * 0.9921875) */
    int want = 0;
    for (int j = 0; j < 16; j++)
        want += (int)lrint((j - 128) * 0.9921875);
    EXPECT_EQ_INT(b.bsums[0], want);
}

/* ggml rounds the legacy types with roundf (ties away from zero) and the
** K-quants with nearest_int (ties to even); both are kept. With amax 127 the
** scale is exactly 1, so x = 2.5 is a tie. */
TEST(quant_rounding_ties)
{
    float x[QK_K] = {0};
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.5f;
    x[4] = 1.5f;

    x[0] = 127.0f; /* q8_0: d = 127 / 127 = 1 */
    block_q8_0 b0;
    quant_quantize_row_q8_0_ref(x, &b0, 32);
    EXPECT_EQ_INT(b0.d, 0x3C00);
    EXPECT_EQ_INT(b0.qs[1], 3);
    EXPECT_EQ_INT(b0.qs[2], -3);
    EXPECT_EQ_INT(b0.qs[3], 1);
    EXPECT_EQ_INT(b0.qs[4], 2);

    x[0] = -127.0f; /* q8_K: iscale = -127 / -127 = 1 */
    static block_q8_K bk;
    quant_quantize_row_q8_K_ref(x, &bk, QK_K);
    EXPECT(bk.d == 1.0f);
    EXPECT_EQ_INT(bk.qs[1], 2);
    EXPECT_EQ_INT(bk.qs[2], -2);
    EXPECT_EQ_INT(bk.qs[3], 0);
    EXPECT_EQ_INT(bk.qs[4], 2);
}

/* Q8_K's bsums must be the sums of its quants: the K-quant dots rely on it. */
TEST(quant_q8_K_bsums)
{
    enum { NB = 5 };
    static float x[NB * QK_K];
    static block_q8_K b[NB];
    fill_gauss(x, NB * QK_K, 11, 1.0f);
    for (int j = 0; j < QK_K; j++)
        x[2 * QK_K + j] = 0.0f; /* an all-zero block: d = 0, everything zero */
    quant_quantize_row_q8_K_ref(x, b, NB * QK_K);
    for (int i = 0; i < NB; i++) {
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += b[i].qs[16 * g + l];
            EXPECT_EQ_INT(b[i].bsums[g], sum);
        }
    }
    EXPECT(b[2].d == 0.0f);
    EXPECT_EQ_INT(b[2].bsums[7], 0);
}

/* Q8_1's s is d * sum(qs), rounded to fp16. */
TEST(quant_q8_1_sum_field)
{
    enum { NB = 7 };
    float x[NB * 32];
    block_q8_1 b[NB];
    fill_gauss(x, NB * 32, 12, 2.0f);
    quant_quantize_row_q8_1_ref(x, b, NB * 32);
    for (int i = 0; i < NB; i++) {
        int sum = 0;
        for (int j = 0; j < 32; j++)
            sum += b[i].qs[j];
        /* s was computed from the unrounded d: allow d's and s's fp16 rounding */
        double want = cn_fp16_to_fp32(b[i].d) * sum;
        EXPECT_NEAR(cn_fp16_to_fp32(b[i].s), want, fabs(want) * 2e-3 + 1e-6);
    }
}

/* ---- quantizers: round trips ------------------------------------------- */

/* Quantize n floats into a scratch row and dequantize into y; return the
** error's RMS relative to the data's RMS. */
static double roundtrip(uint32_t type, const float *x, int64_t n, float *y)
{
    const quant_traits *t = quant_get(type);
    void *q = malloc(row_bytes(type, n));
    t->from_float(x, q, n);
    t->to_float(q, y, n);
    free(q);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += (double)(y[i] - x[i]) * (y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    return sqrt(se / sx);
}

/* Largest |x| in each block of bs elements, for per-element error bounds. */
static float block_amax(const float *x, int bs, int64_t i)
{
    const float *b = x + (i / bs) * bs;
    float m = 0;
    for (int j = 0; j < bs; j++)
        m = fmaxf(m, fabsf(b[j]));
    return m;
}

/* the legacy 32-blocks: every element within a bound set by its block's range */
static void check_block32(uint32_t type, uint64_t seed)
{
    enum { N = 64 * 32 };
    static float x[N], y[N];
    fill_gauss(x, N, seed, 1.0f);
    double rel = roundtrip(type, x, N, y);
    int bad = 0;
    for (int i = 0; i < N && !bad; i++) {
        const float amax = block_amax(x, 32, i);
        float lo = x[i], hi = x[i];
        for (int j = (i / 32) * 32; j < (i / 32) * 32 + 32; j++) {
            lo = fminf(lo, x[j]);
            hi = fmaxf(hi, x[j]);
        }
        double bound;
        /* Symmetric types: the step is amax / 8 (q4_0) or amax / 16 (q5_0),
        ** the far end of the range clamps one step short (error <= 1 step).
        ** q8_0: half a step of amax / 127 plus d's fp16 rounding (127 * 2^-11).
        ** Asymmetric: half a step of range / 15 or range / 31, plus fp16
        ** rounding of d (15 or 31 steps of 2^-11) and of the min. */
        if (type == GGML_Q4_0)
            bound = amax / 8 * 1.01;
        else if (type == GGML_Q5_0)
            bound = amax / 16 * 1.01;
        else if (type == GGML_Q8_0)
            bound = amax / 127 * (0.5 + 127 * 0x1p-11) * 1.01;
        else if (type == GGML_Q4_1)
            bound = (hi - lo) / 15 * (0.5 + 15 * 0x1p-11) * 1.01 + fabsf(lo) * 0x1p-11;
        else /* GGML_Q5_1 */
            bound = (hi - lo) / 31 * (0.5 + 31 * 0x1p-11) * 1.01 + fabsf(lo) * 0x1p-11;
        if (fabsf(y[i] - x[i]) > bound) {
            test_fail_at(__FILE__, __LINE__, "%s element %d: %g -> %g, error above %g",
                         quant_get(type)->name, i, x[i], y[i], bound);
            bad = 1;
        }
    }
    /* and the overall error is what the bit width gives: relative RMS errors
    ** measured with these seeds are Q4_0 0.0848, Q4_1 0.0760, Q5_0 0.0416,
    ** Q5_1 0.0379, Q8_0 0.0056; the bounds leave about 10% */
    const double rel_max = type == GGML_Q4_0 ? 0.094 : type == GGML_Q4_1 ? 0.084
                         : type == GGML_Q5_0 ? 0.046 : type == GGML_Q5_1 ? 0.042 : 0.0062;
    if (!(rel < rel_max))
        test_fail_at(__FILE__, __LINE__, "%s: relative RMS error %.4f, want < %.4f",
                     quant_get(type)->name, rel, rel_max);
}

TEST(quant_roundtrip_q4_0) { check_block32(GGML_Q4_0, 100); }
TEST(quant_roundtrip_q4_1) { check_block32(GGML_Q4_1, 101); }
TEST(quant_roundtrip_q5_0) { check_block32(GGML_Q5_0, 102); }
TEST(quant_roundtrip_q5_1) { check_block32(GGML_Q5_1, 103); }
TEST(quant_roundtrip_q8_0) { check_block32(GGML_Q8_0, 104); }

TEST(quant_roundtrip_q8_1)
{
    enum { N = 64 * 32 };
    static float x[N], y[N];
    fill_gauss(x, N, 105, 3.0f);
    roundtrip(GGML_Q8_1, x, N, y);
    for (int i = 0; i < N; i++) {
        const double bound = block_amax(x, 32, i) / 127 * (0.5 + 127 * 0x1p-11) * 1.01;
        if (fabsf(y[i] - x[i]) > bound) {
            EXPECT_NEAR(y[i], x[i], bound);
            break;
        }
    }
}

TEST(quant_roundtrip_q8_K)
{
    /* d stays a float: only the half step of amax / 127 */
    enum { N = 8 * QK_K };
    static float x[N], y[N];
    fill_gauss(x, N, 106, 3.0f);
    roundtrip(GGML_Q8_K, x, N, y);
    for (int i = 0; i < N; i++) {
        const double bound = block_amax(x, QK_K, i) / 127 * 0.5 * 1.0001;
        if (fabsf(y[i] - x[i]) > bound) {
            EXPECT_NEAR(y[i], x[i], bound);
            break;
        }
    }
}

TEST(quant_roundtrip_float_types)
{
    enum { N = 1000 };
    static float x[N], y[N];
    fill_gauss(x, N, 107, 100.0f);
    EXPECT(roundtrip(GGML_F32, x, N, y) == 0.0);
    roundtrip(GGML_F16, x, N, y);
    for (int i = 0; i < N; i++)
        if (fabsf(y[i] - x[i]) > fabsf(x[i]) * 0x1p-11 + 0x1p-25) /* half an ulp */
            EXPECT_NEAR(y[i], x[i], fabsf(x[i]) * 0x1p-11);
    roundtrip(GGML_BF16, x, N, y);
    for (int i = 0; i < N; i++)
        if (fabsf(y[i] - x[i]) > fabsf(x[i]) * 0x1p-8)
            EXPECT_NEAR(y[i], x[i], fabsf(x[i]) * 0x1p-8);
}

/*
** K-quants on Gaussian data: the RMS error relative to the data's RMS, and
** the largest error relative to the super-block's amax. Measured with these
** seeds: Q2_K 0.2968 and amax/3.2, Q3_K 0.1488 and amax/6.0, Q4_K 0.0711 and
** amax/16.1, Q5_K 0.0355 and amax/27.6, Q6_K 0.0175 and amax/62.1. A layout
** bug gives errors near 1 and amax. The RMS bounds are tight (about 5%) on
** purpose: skipping make_qkx2_quants' search for a better scale and min
** still gives a working quantizer but raises Q2_K to 0.328, Q4_K to 0.078
** and Q5_K to 0.038, and these bounds catch that. (Smaller departures from
** ggml's algorithm are left to quant_quantizer_pins.)
*/
static void check_kquant(uint32_t type, double rel_max, double amax_div, uint64_t seed)
{
    enum { N = 16 * QK_K };
    static float x[N], y[N];
    fill_gauss(x, N, seed, 1.0f);
    const double rel = roundtrip(type, x, N, y);
    if (!(rel < rel_max))
        test_fail_at(__FILE__, __LINE__, "%s: relative RMS error %.4f, want < %.4f",
                     quant_get(type)->name, rel, rel_max);
    for (int i = 0; i < N; i++) {
        const double bound = block_amax(x, QK_K, i) / amax_div;
        if (fabsf(y[i] - x[i]) > bound) {
            test_fail_at(__FILE__, __LINE__, "%s element %d: %g -> %g, error above %g",
                         quant_get(type)->name, i, x[i], y[i], bound);
            break;
        }
    }
}

TEST(quant_roundtrip_q2_K) { check_kquant(GGML_Q2_K, 0.310, 2.6, 200); }
TEST(quant_roundtrip_q3_K) { check_kquant(GGML_Q3_K, 0.156, 5.0, 201); }
TEST(quant_roundtrip_q4_K) { check_kquant(GGML_Q4_K, 0.075, 13.0, 202); }
TEST(quant_roundtrip_q5_K) { check_kquant(GGML_Q5_K, 0.0372, 23.0, 203); }
TEST(quant_roundtrip_q6_K) { check_kquant(GGML_Q6_K, 0.0184, 50.0, 204); }

/*
** Regression pins: an FNV-1a hash of each quantizer's output for a fixed
** input. The input is made without libm (a sum of four uniforms, roughly
** Gaussian) so it is the same bytes everywhere; the quantizers use only
** IEEE arithmetic, sqrtf and roundf, and gave these hashes under gcc -O2,
** gcc -O1 with sanitizers and clang -O2. The hashes come from this
** implementation, not from llama.cpp: they catch any change to the
** quantizers' output (which would break byte compatibility with files
** llama.cpp writes), and must only be updated for a deliberate change.
** A pin alone would also have pinned a wrong quantizer, so beside each one
** the same output is checked for what it must be whatever the bytes: the
** dequantized row stays within the type's error bound of the input (RMS
** error relative to the input's RMS). A uniform quantizer with step d has
** RMS error d/sqrt(12); with d = block max / levels and this input's block
** maxima of 2-3 standard deviations that is about 0.005 for 8 bits (0.007
** with Q8_K's 256-wide blocks), doubling per bit less: the bounds sit ~1.5x
** above that. The element-wise bounds are in the quant_roundtrip_* tests,
** the llama.cpp-defined checks in quant_ggml_test_quantize_fns and the
** *_hand / *_known_answer tests above.
*/
static uint64_t fnv1a(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

TEST(quant_quantizer_pins)
{
    static const struct {
        uint32_t type;
        uint64_t hash;     /* the pin */
        double max_rel_rms; /* the independent bound */
    } pins[] = {
        {GGML_F16, 0xa44c9e0b80744801ULL, 4e-4},  {GGML_BF16, 0xd43a15a212293f8eULL, 3e-3},
        {GGML_Q4_0, 0x886cd75c38769710ULL, 0.12}, {GGML_Q4_1, 0x502d57561d118a3dULL, 0.10},
        {GGML_Q5_0, 0x8ae87a22fa0e44a4ULL, 0.06}, {GGML_Q5_1, 0x1edcea3d74d674f9ULL, 0.05},
        {GGML_Q8_0, 0x1aca6c8665570e7dULL, 8e-3}, {GGML_Q8_1, 0xe2bb227a50d465a6ULL, 8e-3},
        {GGML_Q2_K, 0xca3817dec3bf7c76ULL, 0.40}, {GGML_Q3_K, 0x8fdb09af8941dba3ULL, 0.20},
        {GGML_Q4_K, 0x9161e09fd5cc5fd5ULL, 0.10}, {GGML_Q5_K, 0xd54db5d637e3c47fULL, 0.05},
        {GGML_Q6_K, 0x3a05e4f10b171ad0ULL, 0.025}, {GGML_Q8_K, 0xc356921e55bf4257ULL, 1e-2},
    };
    enum { N = 8 * QK_K };
    static float x[N], y[N];
    static uint8_t q[N * sizeof(float)];
    for (size_t k = 0; k < CN_ARRAY_LEN(pins); k++) {
        uint64_t st = (400 + pins[k].type) * 0x9E3779B97F4A7C15ULL + 1;
        for (int i = 0; i < N; i++) {
            double v = 0;
            for (int r = 0; r < 4; r++)
                v += (double)((int64_t)(rng_next(&st) >> 40) - (1 << 23));
            x[i] = (float)(v * 0x1p-23);
        }
        const quant_traits *t = quant_get(pins[k].type);
        t->from_float(x, q, N);
        if (t->to_float) {
            t->to_float(q, y, N);
            double se = 0, sx = 0;
            for (int i = 0; i < N; i++) {
                se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                sx += (double)x[i] * x[i];
            }
            double rel = sqrt(se / sx);
            printf("     %-5s relative RMS error %.5f (bound %g)\n", t->name, rel,
                   pins[k].max_rel_rms);
            if (!(rel <= pins[k].max_rel_rms))
                test_fail_at(__FILE__, __LINE__, "%s: relative RMS error %g above %g", t->name,
                             rel, pins[k].max_rel_rms);
        } else {
            test_fail_at(__FILE__, __LINE__, "%s: no to_float to check the pin against", t->name);
        }
        const uint64_t h = fnv1a(q, row_bytes(pins[k].type, N));
        if (h != pins[k].hash)
            test_fail_at(__FILE__, __LINE__, "%s: output hash 0x%016llx, pinned 0x%016llx",
                         quant_get(pins[k].type)->name, (unsigned long long)h,
                         (unsigned long long)pins[k].hash);
    }
}

/*
** The acceptance check of ggml's own tests/test-quantize-fns.cpp, same data
** and thresholds: x[i] = 0.1 + 2 cos(i + offset) over 4096 elements;
** quantize-dequantize error sqrt(sum diff^2) / n below 0.002 (2-bit 0.0075,
** 3-bit 0.0040); dot product of quantized weights (offset 0) with quantized
** activations (offset 1) within n * 0.02 of the float dot (Q2_K: 0.04).
** Loose, but defined by ggml rather than by us.
*/
TEST(quant_ggml_test_quantize_fns)
{
    static const uint32_t types[] = {GGML_Q4_0, GGML_Q4_1, GGML_Q5_0, GGML_Q5_1,
                                     GGML_Q8_0, GGML_Q2_K, GGML_Q3_K, GGML_Q4_K,
                                     GGML_Q5_K, GGML_Q6_K};
    enum { N = 32 * 128 };
    static float x1[N], x2[N], y[N];
    static uint8_t q1[N * sizeof(float)], q2[N * sizeof(float)];
    double dot_ref = 0;
    for (int i = 0; i < N; i++) {
        x1[i] = 0.1f + 2 * cosf((float)i + 0.0f);
        x2[i] = 0.1f + 2 * cosf((float)i + 1.0f);
        dot_ref += (double)x1[i] * x2[i];
    }
    for (size_t k = 0; k < CN_ARRAY_LEN(types); k++) {
        const quant_traits *t = quant_get(types[k]);
        t->from_float(x1, q1, N);
        t->to_float(q1, y, N);
        double se = 0;
        for (int i = 0; i < N; i++)
            se += (double)(x1[i] - y[i]) * (x1[i] - y[i]);
        const double err = sqrt(se) / N;
        const double max_err = types[k] == GGML_Q2_K   ? 0.0075
                               : types[k] == GGML_Q3_K ? 0.0040
                                                       : 0.002;
        if (!(err < max_err))
            test_fail_at(__FILE__, __LINE__, "%s: total error %g, ggml allows %g", t->name, err,
                         max_err);

        quant_get(t->vec_dot_type)->from_float(x2, q2, N);
        float dot = NAN;
        t->vec_dot(N, &dot, q1, q2);
        const double dot_err = fabs(dot - dot_ref) / N;
        const double max_dot_err = types[k] == GGML_Q2_K ? 0.04 : 0.02;
        if (!(dot_err < max_dot_err))
            test_fail_at(__FILE__, __LINE__, "%s: dot error %g, ggml allows %g", t->name,
                         dot_err, max_dot_err);
    }
}

/* Zero rows take the d == 0 paths of every quantizer: all must give zeros. */
TEST(quant_zero_rows)
{
    static const uint32_t types[] = {GGML_F16,  GGML_BF16, GGML_Q4_0, GGML_Q4_1, GGML_Q5_0,
                                     GGML_Q5_1, GGML_Q8_0, GGML_Q8_1, GGML_Q2_K, GGML_Q3_K,
                                     GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_Q8_K};
    enum { N = 2 * QK_K };
    static float x[N], y[N];
    for (size_t k = 0; k < CN_ARRAY_LEN(types); k++) {
        for (int i = 0; i < N; i++)
            y[i] = 1.0f;
        roundtrip(types[k], x, N, y);
        int nonzero = 0;
        for (int i = 0; i < N; i++)
            nonzero += y[i] != 0.0f;
        if (nonzero)
            test_fail_at(__FILE__, __LINE__, "%s: %d nonzero values from a zero row",
                         quant_get(types[k])->name, nonzero);
    }
}

/* ---- dot products ------------------------------------------------------ */

/* fp16 scale fields of each block type, so random blocks get sane scales */
static const struct {
    uint32_t type;
    int n;
    size_t off[2];
} half_fields[] = {
    {GGML_Q4_0, 1, {offsetof(block_q4_0, d)}},
    {GGML_Q4_1, 2, {offsetof(block_q4_1, d), offsetof(block_q4_1, m)}},
    {GGML_Q5_0, 1, {offsetof(block_q5_0, d)}},
    {GGML_Q5_1, 2, {offsetof(block_q5_1, d), offsetof(block_q5_1, m)}},
    {GGML_Q8_0, 1, {offsetof(block_q8_0, d)}},
    {GGML_Q2_K, 2, {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)}},
    {GGML_Q3_K, 1, {offsetof(block_q3_K, d)}},
    {GGML_Q4_K, 2, {offsetof(block_q4_K, d), offsetof(block_q4_K, dmin)}},
    {GGML_Q5_K, 2, {offsetof(block_q5_K, d), offsetof(block_q5_K, dmin)}},
    {GGML_Q6_K, 1, {offsetof(block_q6_K, d)}},
};

/* Random bytes, then every fp16 scale set to +-[0.001, 0.01): blocks with
** bit patterns a quantizer would rarely produce (negative q6_K scales,
** -128, scales and mins of 63, ...). */
static void fill_random_blocks(uint32_t type, void *dst, int64_t n, uint64_t seed)
{
    const quant_traits *t = quant_get(type);
    uint64_t st = seed * 0x9E3779B97F4A7C15ULL + 7;
    uint8_t *p = dst;
    const size_t len = row_bytes(type, n);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(rng_next(&st) >> 56);
    for (size_t k = 0; k < CN_ARRAY_LEN(half_fields); k++) {
        if (half_fields[k].type != type)
            continue;
        for (size_t b = 0; b < len / (size_t)t->type_size; b++) {
            for (int f = 0; f < half_fields[k].n; f++) {
                float v = (float)(0.001 + 0.009 * rng_uniform(&st));
                if (rng_next(&st) & 1)
                    v = -v;
                const uint16_t h = cn_fp32_to_fp16(v);
                memcpy(p + b * (size_t)t->type_size + half_fields[k].off[f], &h, 2);
            }
        }
    }
}

/*
** vec_dot(w, a) against the float dot of the dequantized rows, in double.
** Both see the same quantized activations, so they differ by float rounding
** only; the tolerance is 1e-6 * sum |a_i| * max |w_i| (measured: at most
** 2e-8; one element off by one level of Q6_K in 7 blocks moves the dot by
** about 1.7e-5 of that scale). For the q8_1 pairs the
** kernel uses a.s (d * sum(q) rounded to fp16) where the reference uses
** the exact sum, so each block may further differ by |m| * sum |a_i| * 2^-10.
*/
static void check_dot(uint32_t type, int n, int random_blocks, uint64_t seed)
{
    const quant_traits *t = quant_get(type);
    const quant_traits *at = quant_get(t->vec_dot_type);
    float *x = malloc((size_t)n * sizeof(float));
    void *w = malloc(row_bytes(type, n));
    void *a = malloc(row_bytes(t->vec_dot_type, n));

    if (random_blocks) {
        fill_random_blocks(type, w, n, seed);
    } else {
        fill_gauss(x, n, seed, 0.5f);
        t->from_float(x, w, n);
    }
    fill_gauss(x, n, seed + 1000, 2.0f);
    at->from_float(x, a, n);

    float *wf = dequant(type, w, n), *af = dequant(t->vec_dot_type, a, n);
    double ref = 0, sum_a = 0, max_w = 0, extra = 0;
    for (int i = 0; i < n; i++) {
        ref += (double)wf[i] * af[i];
        sum_a += fabs(af[i]);
        max_w = fmax(max_w, fabs(wf[i]));
    }
    if (t->vec_dot_type == GGML_Q8_1) {
        for (int b = 0; b < n / 32; b++) {
            uint16_t m;
            memcpy(&m, (const uint8_t *)w + (size_t)b * (size_t)t->type_size + 2, 2); /* .m */
            double sa = 0;
            for (int j = 0; j < 32; j++)
                sa += fabs(af[32 * b + j]);
            extra += fabs(cn_fp16_to_fp32(m)) * sa * 0x1p-10;
        }
    }
    float got = NAN;
    t->vec_dot(n, &got, w, a);
    const double tol = 1e-6 * sum_a * max_w + extra + 1e-30;
    if (!(fabs(got - ref) <= tol))
        test_fail_at(__FILE__, __LINE__, "%s%s n=%d: dot %.9g, reference %.9g (tol %g)",
                     t->name, random_blocks ? " (random blocks)" : "", n, got, ref, tol);
    free(x);
    free(w);
    free(a);
    free(wf);
    free(af);
}

/* 1, 3 and 7 blocks, from quantized Gaussian weights and from random blocks */
static void check_dot_sizes(uint32_t type, uint64_t seed)
{
    const int bs = quant_get(type)->block_size;
    const int float_type = bs == 1;
    static const int blocks[] = {1, 3, 7};
    static const int float_lens[] = {1, 33, 257}; /* float types have no blocks */
    for (size_t k = 0; k < CN_ARRAY_LEN(blocks); k++) {
        const int n = float_type ? float_lens[k] : blocks[k] * bs;
        check_dot(type, n, 0, seed + k);
        if (!float_type)
            check_dot(type, n, 1, seed + 10 + k);
    }
}

TEST(quant_dot_f32) { check_dot_sizes(GGML_F32, 300); }
TEST(quant_dot_f16) { check_dot_sizes(GGML_F16, 301); }
TEST(quant_dot_bf16) { check_dot_sizes(GGML_BF16, 302); }
TEST(quant_dot_q4_0) { check_dot_sizes(GGML_Q4_0, 303); }
TEST(quant_dot_q4_1) { check_dot_sizes(GGML_Q4_1, 304); }
TEST(quant_dot_q5_0) { check_dot_sizes(GGML_Q5_0, 305); }
TEST(quant_dot_q5_1) { check_dot_sizes(GGML_Q5_1, 306); }
TEST(quant_dot_q8_0) { check_dot_sizes(GGML_Q8_0, 307); }
TEST(quant_dot_q2_K) { check_dot_sizes(GGML_Q2_K, 308); }
TEST(quant_dot_q3_K) { check_dot_sizes(GGML_Q3_K, 309); }
TEST(quant_dot_q4_K) { check_dot_sizes(GGML_Q4_K, 310); }
TEST(quant_dot_q5_K) { check_dot_sizes(GGML_Q5_K, 311); }
TEST(quant_dot_q6_K) { check_dot_sizes(GGML_Q6_K, 312); }

/* A hand-sized dot: one q4_0 block against one q8_0 block, summed by hand. */
TEST(quant_dot_q4_0_hand)
{
    /* weights: d = 0.5, every nibble 9 -> w = (9 - 8) * 0.5 = 0.5 everywhere;
    ** activations: d = 2, q[j] = j - 16 -> sum of q = -16, so
    ** dot = 0.5 * 2 * sum(q) * 1 = -16 */
    block_q4_0 w = {.d = 0x3800};
    memset(w.qs, 0x99, sizeof w.qs);
    block_q8_0 a = {.d = 0x4000};
    for (int j = 0; j < 32; j++)
        a.qs[j] = (int8_t)(j - 16);
    float s = 0;
    quant_vec_dot_q4_0_q8_0(32, &s, &w, &a);
    EXPECT_NEAR(s, -16.0, 0);
}
