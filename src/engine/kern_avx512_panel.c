/*
** kern_avx512_panel.c: prompt products (many tokens at once) on packed
** panels of weights, for CPUs with AVX-512BW/DQ/VL and VNNI.
**
** The tiles of kern_avx512_quant.c take the weights where they lie: one
** row's block is a vector, every (row, token) pair a vector of partial sums
** that must be reduced across its lanes, and the float scaling of legacy
** blocks costs as much as their integer product. Here sixteen rows are
** first copied into a panel (once per product, not per token): each 32-bit
** lane of a vector is one row, holding four consecutive unsigned quants, so
** one vpdpbusd with four activation bytes broadcast from memory adds 64
** products straight into the sixteen rows' sums. No reduction, and the
** scales of sixteen rows are one vector. Packing reads each weight once
** and serves every token of the prompt.
**
** K-quants keep the reference's integers (sub-block sums times their
** integer scales, the min or offset term from the activations' bsums) and
** its float expressions in the same order, so their products stay
** bit-identical to quant.c's. Legacy blocks (Q8_0, Q4_0, Q5_0) are scaled
** per block in float, as ggml's SIMD code does, so they differ from the
** scalar sums by float rounding only.
*/
#include "engine/kern_tiles.h"

#define PANEL_ROWS 16
#define PANEL_K 4096 /* weights of a row packed at a time: a panel stays in L2 */
#define TOKS 8       /* tokens per pass over the panel: their sums fill the registers */

/* ---- panel layouts: lane r of every vector is row r of the panel ---- */

/* A legacy block of 32: quants offset to unsigned (q[g] holds elements
** 4g .. 4g + 3), the scale, and the offset (128, 8 or 16) that comes off
** again as off * sum(a). */
typedef struct {
    __m512i q[8];
    __m512 d;
} pblock32;

/* A Q4_K/Q5_K super-block: the quants of sub-block j (32 elements), the
** sub-block scales and mins (each min twice, as an int16 pair, for the
** vpdpwssd against a pair of bsums), d and dmin. */
typedef struct {
    __m512i q[8][8];
    __m512i sc[8];
    __m512i mn[8];
    __m512 d, dmin;
} pblock_k4;

/* A Q6_K super-block: 16 sub-blocks of 16 (quants 0..63, offset 32), their
** signed scales, the scales again as int16 pairs for the offset term, d. */
typedef struct {
    __m512i q[16][4];
    __m512i sc[16];
    __m512i sp[8];
    __m512 d;
} pblock_k6;

typedef union {
    pblock32 b32[2][PANEL_K / 32]; /* legacy blocks go 32 rows (two panels) at a time */
    pblock_k4 k4[PANEL_K / QK_K];
    pblock_k6 k6[PANEL_K / QK_K];
} panel;

/* ---- packing ---- */

/* Byte offsets of the panel's rows from the first; rows past nr repeat the
** last (their sums are computed and never stored). */
static inline __m512i row_offsets(int nr, size_t ws)
{
    int32_t o[PANEL_ROWS];
    for (int r = 0; r < PANEL_ROWS; r++)
        o[r] = (int32_t)((size_t)CN_MIN(r, nr - 1) * ws);
    return _mm512_loadu_si512(o);
}

/* The 32-bit word at byte p + o[r] of each row. */
static inline __m512i gather(__m512i o, const void *p) { return _mm512_i32gather_epi32(o, p, 1); }

/* The 32 bytes at p of each of the 16 rows (ws bytes apart; rows past nr
** repeat the last), as 8 vectors: lane r of t[g] is the g-th 32-bit word of
** row r. Loads and three rounds of shuffles (an 8 x 8 transpose of words
** in each 256-bit half, rows r and r + 8 side by side): much cheaper than
** eight gathers. */
static inline void rows32(const char *p, size_t ws, int nr, __m512i t[8])
{
    __m512i a[8], u[8];
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_inserti64x4(
            _mm512_castsi256_si512(load256(p + (size_t)CN_MIN(i, nr - 1) * ws)),
            load256(p + (size_t)CN_MIN(i + 8, nr - 1) * ws), 1);
    for (int k = 0; k < 4; k++) { /* per 128-bit lane: words of rows 2k, 2k + 1 interleaved */
        u[2 * k] = _mm512_unpacklo_epi32(a[2 * k], a[2 * k + 1]);
        u[2 * k + 1] = _mm512_unpackhi_epi32(a[2 * k], a[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) { /* word m (lane 0) and m + 4 (lane 1) of four rows */
        a[4 * k + 0] = _mm512_unpacklo_epi64(u[4 * k], u[4 * k + 2]);
        a[4 * k + 1] = _mm512_unpackhi_epi64(u[4 * k], u[4 * k + 2]);
        a[4 * k + 2] = _mm512_unpacklo_epi64(u[4 * k + 1], u[4 * k + 3]);
        a[4 * k + 3] = _mm512_unpackhi_epi64(u[4 * k + 1], u[4 * k + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    for (int m = 0; m < 4; m++) { /* rows 0-3, 4-7, 8-11, 12-15 */
        t[m] = _mm512_permutex2var_epi64(a[m], lo, a[4 + m]);
        t[m + 4] = _mm512_permutex2var_epi64(a[m], hi, a[4 + m]);
    }
}

/* F16 scales in the low (hi = 0) or high half of the word at byte p + o[r],
** to float (reading the word that ends with the scale never reads past the
** block). */
static inline __m512 gather_f16(__m512i o, const void *p, int hi)
{
    __m512i h = gather(o, p);
    h = hi ? _mm512_srli_epi32(h, 16) : _mm512_and_si512(h, _mm512_set1_epi32(0xFFFF));
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
}

/* Four bits b0..b3 (low bits of each lane) to bit 4 of each byte. */
static inline __m512i bits_to_bytes(__m512i b)
{
    b = _mm512_and_si512(b, _mm512_set1_epi32(0xF));
    b = _mm512_mullo_epi32(b, _mm512_set1_epi32(0x00204081)); /* bit k to bit 8k + k */
    return _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x01010101)), 4);
}

static void pack32(uint32_t type, const char *w, size_t ws, int nr, int nb, pblock32 *p)
{
    const __m512i o = row_offsets(nr, ws), m4 = _mm512_set1_epi8(0x0F);
    for (int b = 0; b < nb; b++, p++) {
        if (type == GGML_Q8_0) {
            const char *blk = w + (size_t)b * sizeof(block_q8_0);
            p->d = gather_f16(o, blk, 0);
            rows32(blk + 2, ws, nr, p->q);
            for (int g = 0; g < 8; g++)
                p->q[g] = _mm512_xor_si512(p->q[g], _mm512_set1_epi8((char)0x80));
        } else if (type == GGML_Q4_0) {
            const char *blk = w + (size_t)b * sizeof(block_q4_0);
            p->d = gather_f16(o, blk, 0);
            for (int g = 0; g < 4; g++) {
                __m512i v = gather(o, blk + 2 + 4 * g);
                p->q[g] = _mm512_and_si512(v, m4);
                p->q[g + 4] = _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
            }
        } else {
            const char *blk = w + (size_t)b * sizeof(block_q5_0);
            p->d = gather_f16(o, blk, 0);
            __m512i h = gather(o, blk + 2);
            for (int g = 0; g < 4; g++) {
                __m512i v = gather(o, blk + 6 + 4 * g);
                p->q[g] = _mm512_or_si512(_mm512_and_si512(v, m4),
                                          bits_to_bytes(_mm512_srli_epi32(h, 4 * g)));
                p->q[g + 4] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 4), m4),
                                              bits_to_bytes(_mm512_srli_epi32(h, 16 + 4 * g)));
            }
        }
    }
}

static void pack_k4(uint32_t type, const char *w, size_t ws, int nr, int nb, pblock_k4 *p)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i one = _mm512_set1_epi8(1);
    const size_t bsize = type == GGML_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
    const size_t qs_off = type == GGML_Q4_K ? offsetof(block_q4_K, qs) : offsetof(block_q5_K, qs);
    for (int b = 0; b < nb; b++, p++) {
        const char *blk = w + (size_t)b * bsize;
        /* the header of the 16 rows: d and dmin, then the 12 scale bytes as
        ** words u0, u1, u2, unpacked as k4_scales does, a row per lane */
        __m512i hd[8];
        rows32(blk, ws, nr, hd);
        const __m512i u0 = hd[1], u1 = hd[2], u2 = hd[3];
        const __m512i low6 = _mm512_set1_epi32(63), low4 = _mm512_set1_epi32(15);
        const __m512i low2 = _mm512_set1_epi32(3);
        for (int j = 0; j < 4; j++) {
            const int k = 8 * j;
            p->sc[j] = _mm512_and_si512(_mm512_srli_epi32(u0, k), low6);
            __m512i m = _mm512_and_si512(_mm512_srli_epi32(u1, k), low6);
            p->mn[j] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
            p->sc[j + 4] = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi32(u2, k), low4),
                _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, k + 6), low2), 4));
            m = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi32(u2, k + 4), low4),
                _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, k + 6), low2), 4));
            p->mn[j + 4] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
        }
        p->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(
            _mm512_and_si512(hd[0], _mm512_set1_epi32(0xFFFF))));
        p->dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(hd[0], 16)));
        for (int c = 0; c < 4; c++) {
            __m512i v[8];
            rows32(blk + qs_off + 32 * c, ws, nr, v);
            for (int g = 0; g < 8; g++) {
                p->q[2 * c][g] = _mm512_and_si512(v[g], m4);
                p->q[2 * c + 1][g] = _mm512_and_si512(_mm512_srli_epi32(v[g], 4), m4);
            }
        }
        __m512i hv[8];
        if (type == GGML_Q5_K)
            rows32(blk + offsetof(block_q5_K, qh), ws, nr, hv);
        if (type == GGML_Q5_K)
            for (int g = 0; g < 8; g++) {
                __m512i h = hv[g];
                for (int j = 0; j < 8; j++)
                    p->q[j][g] = _mm512_or_si512(
                        p->q[j][g],
                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, j), one), 4));
            }
    }
}

static void pack_k6(const char *w, size_t ws, int nr, int nb, pblock_k6 *p)
{
    const __m512i o = row_offsets(nr, ws), m4 = _mm512_set1_epi8(0x0F);
    const __m512i m2 = _mm512_set1_epi8(3);
    for (int b = 0; b < nb; b++, p++) {
        const char *blk = w + (size_t)b * sizeof(block_q6_K);
        /* the 16 signed scales, a row per lane: words 4..7 of the 32 bytes
        ** that end with them (the block's last 32 bytes before d) */
        __m512i sw[8];
        rows32(blk + offsetof(block_q6_K, scales) - 16, ws, nr, sw);
        for (int s = 0; s < 16; s++)
            p->sc[s] = _mm512_srai_epi32(_mm512_slli_epi32(sw[4 + s / 4], 24 - 8 * (s % 4)), 24);
        for (int i = 0; i < 8; i++)
            p->sp[i] = _mm512_or_si512(_mm512_and_si512(p->sc[2 * i], _mm512_set1_epi32(0xFFFF)),
                                       _mm512_slli_epi32(p->sc[2 * i + 1], 16));
        p->d = gather_f16(o, blk + offsetof(block_q6_K, d) - 2, 1);
        /* element 128h + 32k + l: see unpack_q6_K in quant.c */
        for (int h = 0; h < 2; h++) {
            __m512i l2[2][8], h8[8];
            rows32(blk + 64 * h, ws, nr, l2[0]);
            rows32(blk + 64 * h + 32, ws, nr, l2[1]);
            rows32(blk + offsetof(block_q6_K, qh) + 32 * h, ws, nr, h8);
            for (int k = 0; k < 4; k++)
                for (int dw = 0; dw < 8; dw++) {
                    __m512i lo = l2[k & 1][dw], hi = h8[dw];
                    lo = _mm512_and_si512(k < 2 ? lo : _mm512_srli_epi32(lo, 4), m4);
                    hi = _mm512_and_si512(_mm512_srli_epi32(hi, 2 * k), m2);
                    int e = 32 * k + 4 * dw; /* element within the half */
                    p->q[8 * h + e / 16][e % 16 / 4] =
                        _mm512_or_si512(lo, _mm512_slli_epi32(hi, 4));
                }
        }
    }
}

/* ---- products: T tokens (a compile-time constant) over a packed panel ---- */

static inline __m512i bcast(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* acc + q . (the four bytes at p, in every lane): vpdpbusd with its
** broadcast taken from memory by the instruction itself ({1to16}), one
** instruction where the intrinsics give two (GCC does not fold the
** broadcast into vpdpbusd). */
static inline __m512i dp_bcast(__m512i acc, __m512i q, const void *p)
{
#ifdef CN_PANEL_INTRINSICS
    return _mm512_dpbusd_epi32(acc, q, bcast(p));
#else
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(q), "m"(*(const int32_t *)p));
    return acc;
#endif
}

INLINE void load_acc(const int T, __m512 *acc, bool first, const float *out, size_t os,
                     __mmask16 m)
{
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, out + t * os);
}

INLINE void store_acc(const int T, const __m512 *acc, float *out, size_t os, __mmask16 m)
{
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(out + t * os, m, acc[t]);
}

/* One K-quant sub-block of 4 G weights (G = 8 for Q4_K/Q5_K, 4 for Q6_K)
** whose quants are q[0 .. G) and activations start at byte off of each
** token's block: isum[t] += sc * (q . a), in int32 as the reference. */
INLINE void sub_block(const int T, const int G, const __m512i *q, __m512i sc,
                      const block_q8_K *const *y, int off, __m512i *isum)
{
    __m512i s[TOKS];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        s[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            s[t] = dp_bcast(s[t], q[g], y[t]->qs + off + 4 * g);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s[t], sc));
}

/* Legacy blocks over H (1 or 2, a constant) panels of 16 rows, T tokens
** (at most TOKS, or TOKS2 with two panels); asum[t * nbt + b] is the sum of
** token t's block b. With two panels each activation broadcast feeds two
** vpdpbusd, and 2 T chains of sums hide the instruction's latency; with
** one, the broadcast is the instruction's own memory operand. */
#define TOKS2 6
/* Block b of a panel: packed per product (pblock32), or stored repacked at
** load (st: KERN_Q8_0_R16, blocks in 1088-byte pairs, scales in F16). */
#define R16_PAIR 1088
INLINE __m512i blk_q(const void *p, const bool st, int b, int g)
{
    if (!st)
        return ((const pblock32 *)p)[b].q[g];
    return _mm512_load_si512((const char *)p + (size_t)(b / 2) * R16_PAIR + 64 + 512 * (b % 2) +
                             64 * g);
}

INLINE __m512 blk_d(const void *p, const bool st, int b)
{
    if (!st)
        return ((const pblock32 *)p)[b].d;
    return _mm512_cvtph_ps(_mm256_load_si256(
        (const __m256i *)((const char *)p + (size_t)(b / 2) * R16_PAIR + 32 * (b % 2))));
}

INLINE void run32(const int T, const int H, const bool st, int off, const void *const p[2],
                  int nb, const char *a, size_t as, const int32_t *asum, size_t nbt, bool first,
                  float *out, size_t os, const __mmask16 m[2])
{
    __m512 acc[2][TOKS];
#pragma GCC unroll 2
    for (int h = 0; h < H; h++)
        load_acc(T, acc[h], first, out + h * PANEL_ROWS, os, m[h]);
    for (int b = 0; b < nb; b++) {
        __m512i s[2][TOKS];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            s[0][t] = s[1][t] = _mm512_set1_epi32(-off * asum[t * nbt + b]);
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const __m512i q0 = blk_q(p[0], st, b, g), q1 = blk_q(p[H - 1], st, b, g);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const int8_t *y = ((const block_q8_0 *)(a + t * as) + b)->qs + 4 * g;
                if (H == 1) {
                    s[0][t] = dp_bcast(s[0][t], q0, y);
                } else {
                    const __m512i v = bcast(y);
                    s[0][t] = _mm512_dpbusd_epi32(s[0][t], q0, v);
                    s[1][t] = _mm512_dpbusd_epi32(s[1][t], q1, v);
                }
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const __m512 dy = _mm512_set1_ps(h2f(((const block_q8_0 *)(a + t * as) + b)->d));
#pragma GCC unroll 2
            for (int h = 0; h < H; h++)
                acc[h][t] = _mm512_fmadd_ps(_mm512_mul_ps(blk_d(p[h], st, b), dy),
                                            _mm512_cvtepi32_ps(s[h][t]), acc[h][t]);
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < H; h++)
        store_acc(T, acc[h], out + h * PANEL_ROWS, os, m[h]);
}

/* Super-block b of each of T tokens' activation rows (as bytes apart). */
INLINE void blocks_at(const int T, const char *a, size_t as, int b, const block_q8_K **y)
{
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        y[t] = (const block_q8_K *)(a + t * as) + b;
}

/* Sub-block j's scale (min: mn, as an int16 pair) of 16 rows from the
** words u0, u1, u2 of their 12 scale bytes, a row per lane, as
** k4_scales unpacks them (j a constant). */
INLINE __m512i k4_sc(__m512i u0, __m512i u1, __m512i u2, int j, bool mn)
{
    const __m512i low6 = _mm512_set1_epi32(63), low4 = _mm512_set1_epi32(15);
    const __m512i low2 = _mm512_set1_epi32(3);
    const int k = 8 * (j % 4);
    __m512i v;
    if (j < 4)
        v = _mm512_and_si512(_mm512_srli_epi32(mn ? u1 : u0, k), low6);
    else
        v = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi32(u2, k + (mn ? 4 : 0)), low4),
            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(mn ? u1 : u0, k + 6), low2), 4));
    return mn ? _mm512_or_si512(v, _mm512_slli_epi32(v, 16)) : v;
}

/* Q4_K, Q5_K: the reference's isum, summs and float finish (dot_k4_block),
** over a panel packed per product (pblock_k4) or, st, a Q4_K panel
** repacked at load (KERN_Q4_K_R16: per super-block, 2304 bytes: d and dmin
** of the 16 rows in F16, the scale words u0, u1, u2, then the quants' 32
** words, a row per lane; the nibbles are split here). */
#define K4_SB 2304
INLINE void run_k4(const int T, const bool st, const void *pp, int nb, const char *a, size_t as,
                   bool first, float *out, size_t os, __mmask16 m)
{
    const pblock_k4 *p = pp;
    const char *sp = pp;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[TOKS];
    load_acc(T, acc, first, out, os, m);
    for (int b = 0; b < nb; b++, p++, sp += K4_SB) {
        const block_q8_K *y[TOKS];
        __m512i isum[TOKS], u0, u1, u2;
        __m512 d, dmin;
        if (st) {
            d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)sp));
            dmin = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sp + 32)));
            u0 = _mm512_load_si512(sp + 64);
            u1 = _mm512_load_si512(sp + 128);
            u2 = _mm512_load_si512(sp + 192);
        } else {
            d = p->d, dmin = p->dmin;
            u0 = u1 = u2 = _mm512_setzero_si512();
        }
        blocks_at(T, a, as, b, y);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            if (!st) {
                sub_block(T, 8, p->q[j], p->sc[j], y, 32 * j, isum);
                continue;
            }
            __m512i q[8];
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m512i v = _mm512_load_si512(sp + 256 + 64 * (8 * (j / 2) + g));
                q[g] = _mm512_and_si512(j % 2 ? _mm512_srli_epi32(v, 4) : v, m4);
            }
            sub_block(T, 8, q, k4_sc(u0, u1, u2, j, false), y, 32 * j, isum);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512i summs = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                summs = _mm512_dpwssd_epi32(summs, st ? k4_sc(u0, u1, u2, j, true) : p->mn[j],
                                            bcast(y[t]->bsums + 2 * j));
            const __m512 dy = _mm512_set1_ps(y[t]->d);
            __m512 f = _mm512_mul_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum[t]));
            f = _mm512_sub_ps(f, _mm512_mul_ps(_mm512_mul_ps(dmin, dy),
                                               _mm512_cvtepi32_ps(summs)));
            acc[t] = _mm512_add_ps(acc[t], f);
        }
    }
    store_acc(T, acc, out, os, m);
}

/* Q6_K: sum(sc * q . a) - 32 * sum(sc * bsums), then d * dy * isum. */
INLINE void run_k6(const int T, const pblock_k6 *p, int nb, const char *a, size_t as, bool first,
                   float *out, size_t os, __mmask16 m)
{
    __m512 acc[TOKS];
    load_acc(T, acc, first, out, os, m);
    for (int b = 0; b < nb; b++, p++) {
        const block_q8_K *y[TOKS];
        __m512i isum[TOKS];
        blocks_at(T, a, as, b, y);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512i o = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                o = _mm512_dpwssd_epi32(o, p->sp[i], bcast(y[t]->bsums + 2 * i));
            isum[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(o, 5));
        }
        for (int s = 0; s < 16; s++)
            sub_block(T, 4, p->q[s], p->sc[s], y, 16 * s, isum);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 f = _mm512_mul_ps(_mm512_mul_ps(p->d, _mm512_set1_ps(y[t]->d)),
                                     _mm512_cvtepi32_ps(isum[t]));
            acc[t] = _mm512_add_ps(acc[t], f);
        }
    }
    store_acc(T, acc, out, os, m);
}

/* One kernel for each token count 1..8, so that the sums stay in registers. */
#define BY_TOKENS(T, call)                                                                         \
    switch (T) {                                                                                   \
    case 1: call(1); break;                                                                        \
    case 2: call(2); break;                                                                        \
    case 3: call(3); break;                                                                        \
    case 4: call(4); break;                                                                        \
    case 5: call(5); break;                                                                        \
    case 6: call(6); break;                                                                        \
    case 7: call(7); break;                                                                        \
    default: call(8); break;                                                                       \
    }

#define BY_TOKENS6(T, call)                                                                        \
    switch (T) {                                                                                   \
    case 1: call(1); break;                                                                        \
    case 2: call(2); break;                                                                        \
    case 3: call(3); break;                                                                        \
    case 4: call(4); break;                                                                        \
    case 5: call(5); break;                                                                        \
    default: call(6); break;                                                                       \
    }

static _Thread_local panel pan __attribute__((aligned(64))); /* a thread's packed panel */

/* One pass of run32 over the next nt tokens (at most TOKS, or TOKS2 with two
** panels), with the token count and panel count as constants. */
INLINE void run32_by(const bool st, int halves, int nt, int off, const void *const lp[2], int nb,
                     const char *ab, size_t as, const int32_t *sb, size_t nbt, bool first,
                     float *o, size_t os, const __mmask16 m[2])
{
#define R1(T) run32(T, 1, st, off, lp, nb, ab, as, sb, nbt, first, o, os, m)
#define R2(T) run32(T, 2, st, off, lp, nb, ab, as, sb, nbt, first, o, os, m)
    if (halves == 2) {
        BY_TOKENS6(nt, R2)
    } else {
        BY_TOKENS(nt, R1)
    }
#undef R1
#undef R2
}

/* out[t * os + r] = row r of w . token t of a, for r < nr, t < nt: panels
** of 16 rows (legacy blocks: 32, two panels) and PANEL_K weights, each
** packed once and used by every token. */
static void pgemm(uint32_t type, int n, const void *w, size_t ws, int nr, const void *a,
                  size_t as, const int32_t *asum, int nt, float *out, size_t os)
{
    const bool k4 = type == GGML_Q4_K || type == GGML_Q5_K, k6 = type == GGML_Q6_K;
    const bool legacy = !k4 && !k6;
    const int qk = legacy ? 32 : QK_K, step = legacy ? 2 * PANEL_ROWS : PANEL_ROWS;
    const size_t bsize = gguf_row_size(type, qk);
    const int off = type == GGML_Q8_0 ? 128 : type == GGML_Q4_0 ? 8 : 16;
    const size_t nbt = (size_t)(n / 32);
    const void *const lp[2] = {pan.b32[0], pan.b32[1]};
    for (int r0 = 0; r0 < nr; r0 += step) {
        const int rows = CN_MIN(step, nr - r0), halves = rows > PANEL_ROWS ? 2 : 1;
        __mmask16 m[2];
        for (int h = 0; h < 2; h++) {
            int in = CN_MAX(0, CN_MIN(PANEL_ROWS, rows - h * PANEL_ROWS));
            m[h] = (__mmask16)((1u << in) - 1);
        }
        const char *wr = (const char *)w + (size_t)r0 * ws;
        for (int k0 = 0; k0 < n; k0 += PANEL_K) {
            const int nb = CN_MIN(PANEL_K, n - k0) / qk, b0 = k0 / qk;
            const bool first = k0 == 0;
            if (k4)
                pack_k4(type, wr + b0 * bsize, ws, rows, nb, pan.k4);
            else if (k6)
                pack_k6(wr + b0 * bsize, ws, rows, nb, pan.k6);
            else
                for (int h = 0; h < halves; h++)
                    pack32(type, wr + (size_t)(h * PANEL_ROWS) * ws + b0 * bsize, ws,
                           CN_MIN(PANEL_ROWS, rows - h * PANEL_ROWS), nb, pan.b32[h]);
            const int toks = halves == 2 ? TOKS2 : TOKS;
            for (int t0 = 0; t0 < nt; t0 += toks) {
                const char *at = (const char *)a + (size_t)t0 * as;
                float *o = out + (size_t)t0 * os + r0;
                if (k4) {
                    const char *ab = at + (size_t)b0 * sizeof(block_q8_K);
#define K4(T) run_k4(T, false, pan.k4, nb, ab, as, first, o, os, m[0])
                    BY_TOKENS(nt - t0, K4)
#undef K4
                } else if (k6) {
                    const char *ab = at + (size_t)b0 * sizeof(block_q8_K);
#define K6(T) run_k6(T, pan.k6, nb, ab, as, first, o, os, m[0])
                    BY_TOKENS(nt - t0, K6)
#undef K6
                } else {
                    const char *ab = at + (size_t)b0 * sizeof(block_q8_0);
                    const int32_t *sb = asum + (size_t)t0 * nbt + b0;
                    run32_by(false, halves, nt - t0, off, lp, nb, ab, as, sb, nbt, first, o, os, m);
                }
            }
        }
    }
}

/* The same over Q8_0 matrices repacked at load (KERN_Q8_0_R16, nr a
** multiple of 16): nothing to pack, so it serves every product, one token
** (generation) as well as many. Two panels at a time where there are two. */
static void pgemm_q8_0_r16(int n, const void *w, size_t ws, int nr, const void *a, size_t as,
                           const int32_t *asum, int nt, float *out, size_t os)
{
    const size_t nbt = (size_t)(n / 32), panel_bytes = PANEL_ROWS * ws;
    const __mmask16 m[2] = {0xFFFF, 0xFFFF};
    /* one token: a panel at a time, its blocks one stream of memory (two
    ** streams were 7 % slower on one core); more: two, as pgemm */
    const int step = nt == 1 ? PANEL_ROWS : 2 * PANEL_ROWS;
    for (int r0 = 0; r0 < nr; r0 += step) {
        const int halves = step == PANEL_ROWS || nr - r0 <= PANEL_ROWS ? 1 : 2;
        const char *wr = (const char *)w + (size_t)r0 * ws;
        for (int k0 = 0; k0 < n; k0 += PANEL_K) {
            const int nb = CN_MIN(PANEL_K, n - k0) / 32, b0 = k0 / 32;
            const char *pb = wr + (size_t)(b0 / 2) * R16_PAIR;
            const void *const lp[2] = {pb, pb + panel_bytes};
            const bool first = k0 == 0;
            const int toks = halves == 2 ? TOKS2 : TOKS;
            for (int t0 = 0; t0 < nt; t0 += toks) {
                const char *ab = (const char *)a + (size_t)t0 * as + (size_t)b0 * sizeof(block_q8_0);
                const int32_t *sb = asum + (size_t)t0 * nbt + b0;
                float *o = out + (size_t)t0 * os + r0;
                run32_by(true, halves, nt - t0, 128, lp, nb, ab, as, sb, nbt, first, o, os, m);
            }
        }
    }
}

/* The same over Q4_K matrices repacked at load (KERN_Q4_K_R16), a panel of
** 16 rows at a time. */
/* Super-blocks [0, nb) of a KERN_Q4_K_R16 panel at sp into pblock_k4s: for
** prompts, whose every pass of tokens would otherwise split the nibbles
** and unpack the scales again. */
static void unpack_k4_r16(const char *sp, int nb, pblock_k4 *p)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int b = 0; b < nb; b++, p++, sp += K4_SB) {
        p->d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)sp));
        p->dmin = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sp + 32)));
        const __m512i u0 = _mm512_load_si512(sp + 64), u1 = _mm512_load_si512(sp + 128);
        const __m512i u2 = _mm512_load_si512(sp + 192);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            p->sc[j] = k4_sc(u0, u1, u2, j, false);
            p->mn[j] = k4_sc(u0, u1, u2, j, true);
        }
        for (int c = 0; c < 4; c++)
            for (int g = 0; g < 8; g++) {
                __m512i v = _mm512_load_si512(sp + 256 + 64 * (8 * c + g));
                p->q[2 * c][g] = _mm512_and_si512(v, m4);
                p->q[2 * c + 1][g] = _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
            }
    }
}

/* The same over Q4_K matrices repacked at load (KERN_Q4_K_R16), a panel of
** 16 rows at a time: read in place for a few tokens, unpacked once per
** panel for prompts. */
static void pgemm_q4_K_r16(int n, const void *w, size_t ws, int nr, const void *a, size_t as,
                           const int32_t *asum, int nt, float *out, size_t os)
{
    (void)asum;
    for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
        const char *wr = (const char *)w + (size_t)r0 * ws;
        for (int k0 = 0; k0 < n; k0 += PANEL_K) {
            const int nb = CN_MIN(PANEL_K, n - k0) / QK_K, b0 = k0 / QK_K;
            const char *pb = wr + (size_t)b0 * K4_SB;
            const bool first = k0 == 0, many = nt >= KERN_PANEL_TOKENS;
            if (many)
                unpack_k4_r16(pb, nb, pan.k4);
            for (int t0 = 0; t0 < nt; t0 += TOKS) {
                const char *ab = (const char *)a + (size_t)t0 * as + (size_t)b0 * sizeof(block_q8_K);
                float *o = out + (size_t)t0 * os + r0;
#define K4S(T) run_k4(T, !many, many ? (const void *)pan.k4 : pb, nb, ab, as, first, o, os, 0xFFFF)
                BY_TOKENS(nt - t0, K4S)
#undef K4S
            }
        }
    }
}

/* Rows [r0, r1) of a Q4_K matrix into KERN_Q4_K_R16 (run_k4): each
** super-block of the 16 rows read as pack_k4 reads it (rows32: loads and a
** transpose of 32-bit words), its words stored a row per lane. */
static void repack_q4_K_r16(const void *w, size_t ws, int n, int r0, int r1, void *dst)
{
    for (int p = r0; p < r1; p += PANEL_ROWS) {
        char *o = (char *)dst + (size_t)p * ws;
        const char *wp = (const char *)w + (size_t)p * ws;
        for (int b = 0; b < n / QK_K; b++, o += K4_SB) {
            const char *blk = wp + (size_t)b * sizeof(block_q4_K);
            __m512i v[8];
            rows32(blk, ws, PANEL_ROWS, v); /* d|dmin, then the 3 scale words */
            _mm256_storeu_si256((__m256i *)o,
                                _mm512_cvtepi32_epi16(_mm512_and_si512(v[0], _mm512_set1_epi32(0xFFFF))));
            _mm256_storeu_si256((__m256i *)(o + 32), _mm512_cvtepi32_epi16(_mm512_srli_epi32(v[0], 16)));
            for (int i = 0; i < 3; i++)
                _mm512_storeu_si512(o + 64 + 64 * i, v[1 + i]);
            for (int c = 0; c < 4; c++) {
                rows32(blk + offsetof(block_q4_K, qs) + 32 * c, ws, PANEL_ROWS, v);
                for (int g = 0; g < 8; g++)
                    _mm512_storeu_si512(o + 256 + 64 * (8 * c + g), v[g]);
            }
        }
    }
}

/* Rows [r0, r1) of a Q8_0 matrix into KERN_Q8_0_R16 (engine_int.h): the
** scales a row at a time, the quants as pack32 reads them (rows32). */
static void repack_q8_0_r16(const void *w, size_t ws, int n, int r0, int r1, void *dst)
{
    const int nb = n / QK8_0;
    for (int p = r0; p < r1; p += PANEL_ROWS) {
        char *o = (char *)dst + (size_t)p * ws;
        const char *wp = (const char *)w + (size_t)p * ws;
        for (int b = 0; b < nb; b += 2, o += R16_PAIR)
            for (int h = 0; h < 2; h++) {
                const char *blk = wp + (size_t)(b + h) * sizeof(block_q8_0);
                uint16_t *d = (uint16_t *)(void *)(o + 32 * h);
                for (int r = 0; r < PANEL_ROWS; r++)
                    memcpy(&d[r], blk + (size_t)r * ws, 2);
                __m512i v[8];
                rows32(blk + offsetof(block_q8_0, qs), ws, PANEL_ROWS, v);
                for (int g = 0; g < 8; g++)
                    _mm512_storeu_si512(o + 64 + 512 * h + 64 * g,
                                        _mm512_xor_si512(v[g], _mm512_set1_epi8((char)0x80)));
            }
    }
}

#define PGEMM(type)                                                                                \
    static void pgemm_##type(int n, const void *w, size_t ws, int nr, const void *a, size_t as,    \
                             const int32_t *asum, int nt, float *out, size_t os)                   \
    {                                                                                              \
        pgemm(GGML_##type, n, w, ws, nr, a, as, asum, nt, out, os);                                \
    }

PGEMM(Q8_0)
PGEMM(Q4_0)
PGEMM(Q5_0)
PGEMM(Q4_K)
PGEMM(Q5_K)
PGEMM(Q6_K)

void kern_avx512_panel_install(kern_table *k)
{
    k->pgemm[GGML_Q8_0] = pgemm_Q8_0;
    k->pgemm[GGML_Q4_0] = pgemm_Q4_0;
    k->pgemm[GGML_Q5_0] = pgemm_Q5_0;
    k->pgemm[GGML_Q4_K] = pgemm_Q4_K;
    k->pgemm[GGML_Q5_K] = pgemm_Q5_K;
    k->pgemm[GGML_Q6_K] = pgemm_Q6_K;
    k->repack_type[GGML_Q8_0] = KERN_Q8_0_R16;
    k->repack[GGML_Q8_0] = repack_q8_0_r16;
    k->pgemm[KERN_Q8_0_R16] = pgemm_q8_0_r16;
    k->act_type[KERN_Q8_0_R16] = GGML_Q8_0;
    k->act_from_float[KERN_Q8_0_R16] = k->act_from_float[GGML_Q8_0];
    k->repack_type[GGML_Q4_K] = KERN_Q4_K_R16;
    k->repack[GGML_Q4_K] = repack_q4_K_r16;
    k->pgemm[KERN_Q4_K_R16] = pgemm_q4_K_r16;
    k->act_type[KERN_Q4_K_R16] = GGML_Q8_K;
    k->act_from_float[KERN_Q4_K_R16] = k->act_from_float[GGML_Q4_K];
}
