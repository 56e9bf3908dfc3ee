/*
** kern_avx2_quant.c: AVX2 twins of the quantized matrix products and of the
** activation quantizers (Q8_0, Q8_K). Built with -mavx2 -mfma -mf16c, like
** every kern_avx2*.c file; installed by kern_avx2_install() only on CPUs
** that have them. The references are in quant.c; tests/unit/test_kern.c
** checks every kernel here against them.
**
** One shape serves both uses: a tile of R weight rows x T tokens
** (R * T <= 8) whose sums stay in registers, so each weight block unpacked
** serves T tokens and each activation block loaded serves R rows. A dot
** product (generation: one token) is the 4 x 1 or 1 x 1 tile; a prompt runs
** 2 x 4 tiles. R and T are constants in each instantiation: the tile
** functions are always inlined and their loops unrolled.
**
** K-quants are exact: the integer sum of each super-block is the
** reference's integer, and the float work per super-block is the
** reference's expressions in the reference's order, so the results are
** bit-identical to quant.c's. The legacy 32-blocks (Q8_0, Q4_0, Q5_0)
** accumulate in float vectors, as ggml's AVX2 code does, and differ from the
** scalar sum by float rounding only.
*/
#include "engine/kern_tiles.h"

/* ---- activations: Q8_0 and Q8_K ------------------------------------------ */

/* 32 floats times mul, rounded half to even, to 32 int8 (saturating). */
static inline __m256i round_pack32(const float *x, __m256 mul)
{
    __m256i q[4];
    for (int j = 0; j < 4; j++)
        q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), mul));
    /* the packs interleave 128-bit lanes; the permute puts them back in order */
    __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    return _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float amax_of(const float *x, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8)
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    return _mm_cvtss_f32(m4);
}

/* ggml's AVX2 Q8_0 quantizer: scale 127/max, round half to even (the
** reference rounds halves away from zero: a rare one-step difference). */
static void quantize_q8_0(const float *x, void *vy, int64_t n)
{
    block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = amax_of(x, QK8_0);
        y[b].d = cn_fp32_to_fp16(amax / 127.f);
        __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        _mm256_storeu_si256((__m256i *)y[b].qs, round_pack32(x, mul));
    }
}

/* Q8_K exactly as the reference: the first element of largest magnitude
** maps to -127, rounding half to even (as nearest_int does), sums of 16. */
static void quantize_q8_K(const float *x, void *vy, int64_t n)
{
    block_q8_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = amax_of(x, QK_K);
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        int i = 0;
        while (x[i] != amax && x[i] != -amax)
            i++;
        const float iscale = -127.f / x[i];
        const __m256 mul = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 32)
            _mm256_storeu_si256((__m256i *)(y[b].qs + j), round_pack32(x + j, mul));
        /* sums of 16: bias to unsigned, sum absolute differences from 0 */
        const __m128i bias = _mm_set1_epi8(-128);
        for (int g = 0; g < QK_K / 16; g++) {
            __m128i s = _mm_sad_epu8(_mm_xor_si128(load128(y[b].qs + 16 * g), bias),
                                     _mm_setzero_si128());
            y[b].bsums[g] = (int16_t)(_mm_cvtsi128_si32(s) + _mm_extract_epi16(s, 4) - 16 * 128);
        }
        y[b].d = 1 / iscale;
    }
}

/* ---- legacy blocks of 32 with Q8_0 activations: Q8_0, Q4_0, Q5_0 ----------
** Each weight block expands to 32 signed int8 and a float scale. */

INLINE void tile32(uint32_t type, size_t bsize, const int R, const int T, int nb, const char *w,
                   size_t ws, const char *a, size_t as, float *out, size_t os)
{
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++) {
        __m256i q[4], aq[4];
        float d[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (b % 2 == 0)
                prefetch_block(w + (r + PF_TILES * R) * ws + b * bsize, 2 * bsize);
            q[r] = expand32(type, w + r * ws + b * bsize, &d[r]);
            aq[r] = _mm256_sign_epi8(q[r], q[r]);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const block_q8_0 *y = (const block_q8_0 *)(a + t * as) + b;
            __m256i qy = load256(y->qs);
            float dy = h2f(y->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256i p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(qy, q[r])), ones);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(d[r] * dy), _mm256_cvtepi32_ps(p),
                                            acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            out[t * os + r] = hsum(acc[r][t]);
}

/* ---- K-quants with Q8_K activations --------------------------------------- */

/* pshufb masks: int16 lane j of a 128-bit lane broadcast to all its lanes */
static const uint8_t bcast16_mask[8][32] __attribute__((aligned(32))) = {
#define M(j) {2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, \
              2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, \
              2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1}
    M(0), M(1), M(2), M(3), M(4), M(5), M(6), M(7),
#undef M
};

/* pshufb masks for Q6_K: int8 scales 2g (8 times) then 2g + 1 (8 times) */
static const uint8_t q6_scale_mask[8][16] __attribute__((aligned(16))) = {
#define M(g) {2*g, 2*g, 2*g, 2*g, 2*g, 2*g, 2*g, 2*g, 2*g+1, 2*g+1, 2*g+1, 2*g+1, 2*g+1, \
              2*g+1, 2*g+1, 2*g+1}
    M(0), M(1), M(2), M(3), M(4), M(5), M(6), M(7),
#undef M
};

/* Q4_K and Q5_K (type says which): sub-block s of 32 is the low (s even) or
** high nibbles of qs[32 (s / 2) ..], plus bit s of qh[] for Q5_K. */
INLINE void tile_k4(uint32_t type, const int R, const int T, int nb, const char *w, size_t ws,
                    const char *a, size_t as, float *out, size_t os)
{
    const size_t bsize = type == GGML_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 sum = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *qs[4], *qh[4];
        __m256i s2[4]; /* the eight scales as int16, in both 128-bit lanes */
        __m128i mins[4];
        float dw[4] = {0}, dmw[4] = {0}, dy[4] = {0}; /* k_finish loads all 4 */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const char *blk = w + r * ws + b * bsize;
            prefetch_block(blk + PF_TILES * R * ws, bsize);
            __m128i s16 = k4_row(type, blk, &dw[r], &dmw[r], &qs[r], &qh[r], &mins[r]);
            s2[r] = _mm256_broadcastsi128_si256(s16);
        }
        __m256i acc[MAX_TILE];
        __m128i ms[MAX_TILE];
        for (int p = 0; p < MAX_TILE; p++) {
            acc[p] = _mm256_setzero_si256();
            ms[p] = _mm_setzero_si128();
        }
        const block_q8_K *y[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            y[t] = (const block_q8_K *)(a + t * as) + b;
            dy[t] = y[t]->d;
            /* the min term: mins . (sums of 32 activations) */
            __m128i bs = _mm_hadd_epi16(load128(y[t]->bsums), load128(y[t]->bsums + 8));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                ms[r * T + t] = _mm_madd_epi16(mins[r], bs);
        }
        for (int c = 0; c < 4; c++) {
            __m256i lo[4], hi[4], scl[4], sch[4];
            __m256i alo0 = load256(y[0]->qs + 64 * c), ahi0 = load256(y[0]->qs + 64 * c + 32);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* broadcast here, not once per block: 16 vectors would not stay in registers */
                scl[r] = _mm256_shuffle_epi8(s2[r], load256(bcast16_mask[2 * c]));
                sch[r] = _mm256_shuffle_epi8(s2[r], load256(bcast16_mask[2 * c + 1]));
                __m256i q = load256(qs[r] + 32 * c);
                lo[r] = _mm256_and_si256(q, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (type == GGML_Q5_K) {
                    /* bits 2c and 2c+1 of each qh byte, moved to bit 4 */
                    __m256i h = _mm256_srli_epi16(load256(qh[r]), 2 * c);
                    lo[r] = _mm256_or_si256(lo[r],
                                            _mm256_slli_epi16(_mm256_and_si256(h, one), 4));
                    hi[r] = _mm256_or_si256(
                        hi[r], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 1), one), 4));
                }
                if (T == 1) {
                    /* one token: use each row at once, so only its four
                    ** vectors are live and the accumulators stay in registers */
                    __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], alo0), scl[r]);
                    __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], ahi0), sch[r]);
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_add_epi32(pl, ph));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T && T > 1; t++) {
                __m256i alo = load256(y[t]->qs + 64 * c), ahi = load256(y[t]->qs + 64 * c + 32);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], alo), scl[r]);
                    __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], ahi), sch[r]);
                    acc[r * T + t] = _mm256_add_epi32(acc[r * T + t], _mm256_add_epi32(pl, ph));
                }
            }
        }
        sum = k_finish(R, T, sum, reduce8(acc), reduce8_128(ms), dw, dmw, dy);
    }
    k_store(R, T, sum, out, os);
}

/* Q6_K: in half h, group k (32 elements, sub-blocks 8h + 2k and 8h + 2k + 1)
** takes low bits from ql[64h + 32 (k & 1)] (low nibbles for k < 2) and high
** bits from qh[32h] >> 2k. The quants are used unsigned (0..63); the offset
** of 32 comes back as 32 * sum(scale * bsum) per super-block. */
INLINE void tile_q6_K(const int R, const int T, int nb, const char *w, size_t ws, const char *a,
                      size_t as, float *out, size_t os)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    __m256 sum = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const block_q6_K *x[4];
        __m128i s8[4];
        float dw[4] = {0}, dy[4] = {0};
        const block_q8_K *y[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            x[r] = (const block_q6_K *)(w + r * ws) + b;
            prefetch_block((const char *)x[r] + PF_TILES * R * ws, sizeof(block_q6_K));
            s8[r] = load128(x[r]->scales);
            dw[r] = h2f(x[r]->d);
        }
        __m256i acc[MAX_TILE], off[MAX_TILE];
        for (int p = 0; p < MAX_TILE; p++)
            acc[p] = off[p] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            y[t] = (const block_q8_K *)(a + t * as) + b;
            dy[t] = y[t]->d;
            /* the offset: 32 * sum(scale * bsum) */
            __m256i bs = load256(y[t]->bsums);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                off[r * T + t] = _mm256_slli_epi32(
                    _mm256_madd_epi16(_mm256_cvtepi8_epi16(s8[r]), bs), 5);
        }
        for (int g = 0; g < 8; g++) {
            const int h = g / 4, k = g % 4;
            __m256i q[4], sc[4], ay0 = load256(y[0]->qs + 32 * g);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256i l = load256(x[r]->ql + 64 * h + 32 * (k & 1));
                if (k >= 2)
                    l = _mm256_srli_epi16(l, 4);
                __m256i hb = _mm256_srli_epi16(load256(x[r]->qh + 32 * h), 2 * k);
                q[r] = _mm256_or_si256(_mm256_and_si256(l, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
                sc[r] = _mm256_cvtepi8_epi16(
                    _mm_shuffle_epi8(s8[r], load128(q6_scale_mask[g])));
                if (T == 1) /* as in tile_k4: use the row at once */
                    acc[r] = _mm256_add_epi32(
                        acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], ay0), sc[r]));
            }
#pragma GCC unroll 4
            for (int t = 0; t < T && T > 1; t++) {
                __m256i ay = load256(y[t]->qs + 32 * g);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[r * T + t] = _mm256_add_epi32(
                        acc[r * T + t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], ay), sc[r]));
            }
        }
        __m256i isum = _mm256_sub_epi32(reduce8(acc), reduce8(off));
        sum = k_finish(R, T, sum, isum, _mm256_setzero_si256(), dw, NULL, dy);
    }
    k_store(R, T, sum, out, os);
}

/* ---- instantiations and the tile driver ----------------------------------- */

#define Q8_0_CALL(R, T) tile32(GGML_Q8_0, sizeof(block_q8_0), R, T, nb, w, ws, a, as, out, os)
#define Q4_0_CALL(R, T) tile32(GGML_Q4_0, sizeof(block_q4_0), R, T, nb, w, ws, a, as, out, os)
#define Q5_0_CALL(R, T) tile32(GGML_Q5_0, sizeof(block_q5_0), R, T, nb, w, ws, a, as, out, os)
#define Q4_K_CALL(R, T) tile_k4(GGML_Q4_K, R, T, nb, w, ws, a, as, out, os)
#define Q5_K_CALL(R, T) tile_k4(GGML_Q5_K, R, T, nb, w, ws, a, as, out, os)
#define Q6_K_CALL(R, T) tile_q6_K(R, T, nb, w, ws, a, as, out, os)

TILES(tiles_q8_0, Q8_0_CALL, NULL)
TILES(tiles_q4_0, Q4_0_CALL, NULL)
TILES(tiles_q5_0, Q5_0_CALL, NULL)
TILES(tiles_q4_K, Q4_K_CALL, NULL)
TILES(tiles_q5_K, Q5_K_CALL, NULL)
TILES(tiles_q6_K, Q6_K_CALL, NULL)

#define KERNELS(type, tiles, qk)                                                                   \
    static void gemm_##type(int n, const void *w, size_t ws, int nr, const void *a, size_t as,     \
                            int nt, float *out, size_t os)                                         \
    {                                                                                              \
        drive(tiles, n / (qk), w, ws, nr, a, as, nt, out, os);                                     \
    }                                                                                              \
    static void dot_##type(int n, float *s, const void *w, const void *a)                          \
    {                                                                                              \
        tiles[0][0](n / (qk), w, 0, a, 0, s, 0);                                                   \
    }

KERNELS(q8_0, tiles_q8_0, QK8_0)
KERNELS(q4_0, tiles_q4_0, QK4_0)
KERNELS(q5_0, tiles_q5_0, QK5_0)
KERNELS(q4_K, tiles_q4_K, QK_K)
KERNELS(q5_K, tiles_q5_K, QK_K)
KERNELS(q6_K, tiles_q6_K, QK_K)

void kern_avx2_quant_install(kern_table *k)
{
    static const struct {
        uint32_t type;
        kern_dot_fn dot;
        kern_gemm_fn gemm;
    } q[] = {
        {GGML_Q8_0, dot_q8_0, gemm_q8_0}, {GGML_Q4_0, dot_q4_0, gemm_q4_0},
        {GGML_Q5_0, dot_q5_0, gemm_q5_0}, {GGML_Q4_K, dot_q4_K, gemm_q4_K},
        {GGML_Q5_K, dot_q5_K, gemm_q5_K}, {GGML_Q6_K, dot_q6_K, gemm_q6_K},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(q); i++) {
        k->dot[q[i].type] = q[i].dot;
        k->gemm[q[i].type] = q[i].gemm;
        k->act_from_float[q[i].type] =
            k->act_type[q[i].type] == GGML_Q8_K ? quantize_q8_K : quantize_q8_0;
    }
}
