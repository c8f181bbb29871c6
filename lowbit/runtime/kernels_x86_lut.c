/* AVX-512 table-lookup kernels (x86-64 with VBMI): the low-bit conv as T-MAC-style lookups.
 *
 * Why not popcount here: on a CPU with VNNI, int8 does 64 multiply-accumulates per VPDPBUSD,
 * while AND + VPOPCNTQ + ADD over bit-planes does 2-bit x 2-bit at about 43 per instruction.
 * A lookup does better: for each input pixel and group of 6 channels, a 64-byte table holds
 * sum_c a_c * bit_c(e) for every 6-bit pattern e; one VPERMB then looks up 64 weight patterns at
 * once (one byte per (output channel, weight plane)), i.e. 6 channels x 64 lanes per instruction,
 * and a VPADDB accumulates them in bytes. Every F lookups (before a byte can overflow) a
 * VPMADDUBSW weighs the planes (1, 2, .., -2^(W-1)) and folds the bytes into 16-bit lanes; those
 * spill into 32 bits before they could overflow. Exact integer arithmetic throughout.
 *
 * Layouts (runtime only; the artifact keeps packing layout 1):
 * - activation tables: (H*W, G = ceil(C/6), 64) bytes; channels past C count as zero;
 * - weights: (ceil(O/OPV), KH*KW, G, 64) bytes, lane = (o % OPV) * LW + j, byte = bit j of the
 *   weights of channels 6g..6g+5 (bit c for channel 6g+c), with LW lanes per output channel
 *   (1 for binary weights, 2 for 2-bit, 4 for 3 and 4-bit; the unused fourth lane of 3-bit
 *   weights is zero) and OPV = 64 / LW output channels per vector. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,bmi2")
#include <immintrin.h>
#include <string.h>

#include "epilogue_x86.h"

int lb_lut_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2");
}

int lb_lut_lanes(int wbits) { return wbits == 1 ? 1 : wbits == 2 ? 2 : 4; }

/* sub[0][v][e] = S_v(e & 7), sub[1][v][e] = S_v(e >> 3), where v holds three 2-bit codes
 * (v & 3, v >> 2 & 3, v >> 4) and S_v(k) = sum of the codes whose bit is set in k. */
void lb_lut_subtables(uint8_t sub[2][64][64]) {
    for (int v = 0; v < 64; v++)
        for (int e = 0; e < 64; e++) {
            int lo = 0, hi = 0;
            for (int c = 0; c < 3; c++) {
                int code = (v >> (2 * c)) & 3;
                if ((e >> c) & 1) lo += code;
                if ((e >> (3 + c)) & 1) hi += code;
            }
            sub[0][v][e] = (uint8_t)lo;
            sub[1][v][e] = (uint8_t)hi;
        }
}

/* One table of six 2-bit codes packed as 12 bits (pext of six bytes). */
static inline __m512i table2(const uint8_t sub[2][64][64], uint64_t v12) {
    return _mm512_add_epi8(_mm512_load_si512((const void *)sub[0][v12 & 63]),
                           _mm512_load_si512((const void *)sub[1][v12 >> 6]));
}

/* Codes (pixels, C), one byte each -> tables (pixels, G, 64). Codes keep their low `bits`
 * bits, as bit-packing does. Codes of 3-4 bits are a low 2-bit half plus 4 x a high half.
 * Six codes are read as one 8-byte word (bytes past a partial last group cleared): directly
 * while the word lies within `room` bytes, else with a masked load of just the group's codes. */
static inline __attribute__((always_inline)) void lutpack_pixel(const uint8_t *x, long room, uint8_t *out,
                                                                int c, int bits, const uint8_t sub[2][64][64]) {
    const int groups = (c + 5) / 6;
    const uint64_t six = 0x030303030303ull;
    const uint64_t lo_mask = bits == 1 ? 0x010101010101ull : six;
    const uint64_t hi_mask = bits == 3 ? 0x010101010101ull : six;
    for (int g = 0; g < groups; g++, out += 64) {
        const int n = c - 6 * g < 6 ? c - 6 * g : 6;
        uint64_t raw;
        if (6 * g + 8 <= room) {
            memcpy(&raw, x + 6 * g, 8);
            if (n < 6) raw = _bzhi_u64(raw, 8 * n);
        } else {
            raw = (uint64_t)_mm_cvtsi128_si64(_mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1), x + 6 * g));
        }
        __m512i t = table2(sub, _pext_u64(raw & lo_mask, six));
        if (bits > 2) {
            __m512i h = table2(sub, _pext_u64((raw >> 2) & hi_mask, six));
            /* h <= 18, so shifting 16-bit lanes left by 2 moves no bit across a byte */
            t = _mm512_add_epi8(t, _mm512_slli_epi16(h, 2));
        }
        _mm512_store_si512((void *)out, t);
    }
}

void lb_lutpack_avx512(const uint8_t *codes, uint8_t *tables, long pixels, int c, int bits,
                       const uint8_t sub[2][64][64]) {
    const int groups = (c + 5) / 6;
    for (long p = 0; p < pixels; p++) {
        /* bytes past the group are masked off or cleared, so they may be the next pixel's */
        long room = p + 1 < pixels ? 2L * c : c;
        if (bits <= 2)
            lutpack_pixel(codes + p * c, room, tables + p * groups * 64, c, bits <= 1 ? 1 : 2, sub);
        else
            lutpack_pixel(codes + p * c, room, tables + p * groups * 64, c, bits, sub);
    }
}

/* Weights of one bit-serial conv (packing layout 1, (O, KK, W, words) uint64) -> lookup layout. */
void lb_lut_pack_weights(const uint64_t *src, uint8_t *dst, int oc, int kk, int c, int wbits) {
    const int groups = (c + 5) / 6, words = (c + 63) / 64, lw = lb_lut_lanes(wbits), opv = 64 / lw;
    for (int o = 0; o < oc; o++)
        for (int t = 0; t < kk; t++)
            for (int g = 0; g < groups; g++)
                for (int j = 0; j < wbits; j++) {
                    const uint64_t *plane = src + (((long)o * kk + t) * wbits + j) * words;
                    int byte = 0;
                    for (int k = 0; k < 6 && 6 * g + k < c; k++) {
                        int ch = 6 * g + k;
                        byte |= (int)((plane[ch / 64] >> (ch % 64)) & 1) << k;
                    }
                    dst[(((long)(o / opv) * kk + t) * groups + g) * 64 + (o % opv) * lw + j] = (uint8_t)byte;
                }
}

/* int32 sums of one vector of accumulators: OPV output channels. */
static inline void add32(int32_t *sum, __m512i v, int first) {
    if (!first) v = _mm512_add_epi32(v, _mm512_load_si512((const void *)sum));
    _mm512_store_si512((void *)sum, v);
}

/* int32 sums of one vector of 16-bit accumulators (32 of them; 3-4 bit weights: two per output
 * channel) added to (or, first, stored in) sum. */
static inline void widen32(__m512i acc16, int32_t *sum, int first, const int W) {
    if (W == 1 || W == 2) {
        add32(sum, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc16)), first);
        add32(sum + 16, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc16, 1)), first);
    } else {
        add32(sum, _mm512_madd_epi16(acc16, _mm512_set1_epi16(1)), first);
    }
}

#define MAX_P 8
#define MAX_Q 4

/* Pieces of lut_block (macros over its locals rather than functions: with functions GCC
 * allocated the accumulators of the wide layers worse).
 * LUT_BEGIN8(n): before n lookups into fresh byte accumulators, spill the 16-bit ones into the
 * int32 sums if n more could overflow them. */
#define LUT_BEGIN8(n)                                                                             \
    do {                                                                                          \
        if (since16 + (n) > l16) {                                                                \
            for (int p = 0; p < P; p++)                                                           \
                for (int q = 0; q < Q; q++)                                                       \
                    for (int h = 0; h < halves; h++) {                                            \
                        widen32(acc16[p][q][h], sum[p][q] + 32 * h, !spilled, W);                 \
                        acc16[p][q][h] = _mm512_setzero_si512();                                  \
                    }                                                                             \
            spilled = 1;                                                                          \
            since16 = 0;                                                                          \
        }                                                                                         \
        since16 += (n);                                                                           \
        for (int p = 0; p < P; p++)                                                               \
            for (int q = 0; q < Q; q++) acc8[p][q] = _mm512_setzero_si512();                      \
    } while (0)
/* LUT_POINTERS(t): tp[p], the tables of tap t for each pixel (a zero one outside the image);
 * wt[q], the weights of tap t for each vector. */
#define LUT_POINTERS(t)                                                                           \
    const uint8_t *tp[MAX_P], *wt[MAX_Q];                                                         \
    do {                                                                                          \
        const uint8_t *row = rows[(t) / c->kw];                                                   \
        for (int p = 0; p < P; p++) {                                                             \
            int ix = (ox0 + p) * c->sw - c->pw + (t) % c->kw;                                     \
            tp[p] = (row && p < npx && ix >= 0 && ix < c->w) ? row + (long)ix * groups * 64 : c->lut_zero; \
        }                                                                                         \
        for (int q = 0; q < Q; q++) wt[q] = wbase[q] + (long)(t) * groups * 64;                   \
    } while (0)
/* LUT_LOOKUPS(g0, g1): the lookups of channel groups g0..g1 into the byte accumulators. */
#define LUT_LOOKUPS(g0, g1)                                                                       \
    for (int g = (g0); g < (g1); g++) {                                                           \
        __m512i wv[MAX_Q];                                                                        \
        for (int q = 0; q < Q; q++) wv[q] = _mm512_load_si512((const void *)(wt[q] + g * 64));    \
        for (int p = 0; p < P; p++) {                                                             \
            __m512i table = _mm512_load_si512((const void *)(tp[p] + g * 64));                    \
            if (W == 1) sumx[p] += tp[p][g * 64 + 63];                                            \
            for (int q = 0; q < Q; q++)                                                           \
                acc8[p][q] = _mm512_add_epi8(acc8[p][q], _mm512_permutexvar_epi8(wv[q], table));  \
        }                                                                                         \
    }
/* LUT_FLUSH8(): byte accumulators into the 16-bit ones, weighing the planes (binary: widened). */
#define LUT_FLUSH8()                                                                              \
    for (int p = 0; p < P; p++)                                                                   \
        for (int q = 0; q < Q; q++) {                                                             \
            if (W == 1) {                                                                         \
                acc16[p][q][0] = _mm512_add_epi16(acc16[p][q][0],                                 \
                                                  _mm512_cvtepu8_epi16(_mm512_castsi512_si256(acc8[p][q]))); \
                acc16[p][q][1] = _mm512_add_epi16(acc16[p][q][1],                                 \
                                                  _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(acc8[p][q], 1))); \
            } else {                                                                              \
                acc16[p][q][0] = _mm512_add_epi16(acc16[p][q][0], _mm512_maddubs_epi16(acc8[p][q], coef)); \
            }                                                                                     \
        }

/* One block: P output pixels of row oy from ox0 (npx real) x Q weight vectors from vector vb;
 * rows[ky]: the tables of input row oy*sh - ph + ky (NULL outside the image).
 * The byte accumulators live in registers; the 16-bit ones, touched once per byte flush, and
 * the int32 sums, once per 16-bit flush, live in memory. */
static inline __attribute__((always_inline)) void lut_block(const lb_conv *c, const uint8_t *const *rows, int oy,
                                                            int ox0, int npx, int vb, const int P, const int Q,
                                                            const int W) {
    const int groups = c->lut_groups, kk = c->kh * c->kw;
    const int opv = 64 / lb_lut_lanes(W), halves = W == 1 ? 2 : 1;
    __m512i acc16[MAX_P][MAX_Q][2];
    int32_t sum[MAX_P][MAX_Q][64] __attribute__((aligned(64)));
    int64_t sumx[MAX_P] = {0};
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++) acc16[p][q][0] = acc16[p][q][1] = _mm512_setzero_si512();
    /* plane weights per pair of byte lanes (VPMADDUBSW) */
    const __m512i coef = W == 2 ? _mm512_set1_epi16((short)(1 | (0xFE << 8)))                     /* 1, -2 */
                         : W == 3 ? _mm512_set1_epi32((int)(1 | 2 << 8 | 0xFC << 16))             /* 1, 2, -4, 0 */
                         : W == 4 ? _mm512_set1_epi32((int)(1 | 2 << 8 | 4 << 16 | 0xF8u << 24)) /* 1, 2, 4, -8 */
                                  : _mm512_setzero_si512();
    const uint8_t *wbase[MAX_Q];
    for (int q = 0; q < Q; q++) wbase[q] = c->lut_weight + (long)(vb + q) * kk * groups * 64;
    /* chunks of at most f8 lookups: a tap's groups split evenly, or several whole taps when a
     * tap has few groups (narrow inputs); 16-bit flush after l16 lookups. Two loop nests built
     * from the LUT_* pieces above: one general nest costs the wide layers 3-8%. */
    const int chunks = (groups + c->lut_flush8 - 1) / c->lut_flush8;
    const int taps = chunks == 1 ? c->lut_flush8 / groups : 1;
    const int l16 = c->lut_flush8 * c->lut_flush16;
    int since16 = 0, spilled = 0;
    __m512i acc8[MAX_P][MAX_Q];
    for (int t = 0; t < kk && taps == 1; t++) {
        LUT_POINTERS(t);
        for (int k = 0; k < chunks; k++) {
            const int g0 = groups * k / chunks, g1 = groups * (k + 1) / chunks;
            LUT_BEGIN8(g1 - g0);
            LUT_LOOKUPS(g0, g1);
            LUT_FLUSH8();
        }
    }
    for (int t0 = 0; t0 < kk && taps > 1; t0 += taps) {
        const int t1 = t0 + taps < kk ? t0 + taps : kk;
        LUT_BEGIN8((t1 - t0) * groups);
        for (int t = t0; t < t1; t++) {
            LUT_POINTERS(t);
            LUT_LOOKUPS(0, groups);
        }
        LUT_FLUSH8();
    }
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++)
            for (int h = 0; h < halves; h++) widen32(acc16[p][q][h], sum[p][q] + 32 * h, !spilled, W);
    for (int p = 0; p < npx; p++) {
        long pixel = (long)oy * c->ow + ox0 + p;
        for (int q = 0; q < Q; q++) {
            int o0 = (vb + q) * opv;
            for (int k = 0; k < opv && o0 + k < c->oc; k += 16) {
                __m512i acc = _mm512_load_si512((const void *)(sum[p][q] + k));
                if (W == 1) /* binary weights: w = 2b - 1 */
                    acc = _mm512_sub_epi32(_mm512_slli_epi32(acc, 1), _mm512_set1_epi32((int)sumx[p]));
                lb_store16(c, pixel, o0 + k, acc);
            }
        }
    }
}

#define LUT_SPAN(P, Q, W)                                                                         \
    static void lut_span_##P##_##Q##_##W(const lb_conv *c, const uint8_t *const *rows, int oy, int vb) { \
        for (int ox = 0; ox < c->ow; ox += P)                                                     \
            lut_block(c, rows, oy, ox, c->ow - ox < P ? c->ow - ox : P, vb, P, Q, W);             \
    }
#define LUT_W(W) LUT_SPAN(4, 4, W) LUT_SPAN(6, 3, W) LUT_SPAN(8, 2, W) LUT_SPAN(8, 1, W)
LUT_W(1) LUT_W(2) LUT_W(3) LUT_W(4)

/* Output row by output row: the tables of the kh input rows it reads are built into the ring
 * (slot iy % kh; kh consecutive rows never share a slot) unless already there, then every block
 * of output pixels x weight vectors. */
void lb_conv_lut_avx512(const lb_conv *c) {
    typedef void (*span_fn)(const lb_conv *, const uint8_t *const *, int, int);
    static const span_fn spans[4][MAX_Q] = {
        {lut_span_8_1_1, lut_span_8_2_1, lut_span_6_3_1, lut_span_4_4_1},
        {lut_span_8_1_2, lut_span_8_2_2, lut_span_6_3_2, lut_span_4_4_2},
        {lut_span_8_1_3, lut_span_8_2_3, lut_span_6_3_3, lut_span_4_4_3},
        {lut_span_8_1_4, lut_span_8_2_4, lut_span_6_3_4, lut_span_4_4_4}};
    const int opv = 64 / lb_lut_lanes(c->wbits), vectors = (c->oc + opv - 1) / opv;
    const long row_bytes = (long)c->w * c->lut_groups * 64;
    int slot_row[c->kh];
    const uint8_t *rows[c->kh];
    for (int s = 0; s < c->kh; s++) slot_row[s] = -1;
    for (int oy = 0; oy < c->oh; oy++) {
        for (int ky = 0; ky < c->kh; ky++) {
            int iy = oy * c->sh - c->ph + ky;
            rows[ky] = NULL;
            if (iy < 0 || iy >= c->h) continue;
            int slot = iy % c->kh;
            if (slot_row[slot] != iy) {
                lb_lutpack_avx512(c->lut_codes + (long)iy * c->w * c->c, c->lut_ring + slot * row_bytes, c->w,
                                  c->c, c->abits, c->lut_sub);
                slot_row[slot] = iy;
            }
            rows[ky] = c->lut_ring + slot * row_bytes;
        }
        lb_pool_row_begin(c, oy);
        for (int vb = 0; vb < vectors;) {
            int q = vectors - vb >= MAX_Q ? MAX_Q : vectors - vb;
            spans[c->wbits - 1][q - 1](c, rows, oy, vb);
            vb += q;
        }
        lb_pool_row_end(c, oy);
    }
}
#endif
