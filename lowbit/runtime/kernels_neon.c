/* NEON kernels (aarch64): bit-serial conv over 2 output channels per 128-bit vector; CNT counts
 * bits per byte and UADALP folds them into 16-bit lanes (the caller keeps the number of steps
 * below 4096, so a lane never exceeds 16 * 4096). */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "lowbit_internal.h"

#define PX 4

static inline __attribute__((always_inline)) void block(const lb_conv *c, int oy, int ox0, int npx,
                                                        int ob, const int A, const int W) {
    uint16x8_t acc[PX][4][4];
    int64_t sumx[PX] = {0};
    for (int p = 0; p < PX; p++)
        for (int i = 0; i < A; i++)
            for (int j = 0; j < W; j++) acc[p][i][j] = vdupq_n_u16(0);
    const int kk = c->kh * c->kw, words = c->words;
    const uint64_t *in = c->in;
    const uint64_t *wbase = (const uint64_t *)c->packed + (long)ob * kk * words * W * 2;
    for (int t = 0; t < kk; t++) {
        const uint64_t *ap[PX];
        int iy = oy * c->sh - c->ph + t / c->kw;
        for (int p = 0; p < PX; p++) {
            int ix = (ox0 + p) * c->sw - c->pw + t % c->kw;
            ap[p] = (p < npx && iy >= 0 && iy < c->h && ix >= 0 && ix < c->w)
                        ? in + ((long)(iy * c->w + ix) * A) * words : c->zeros;
        }
        const uint64_t *wp = wbase + (long)t * words * W * 2;
        for (int wd = 0; wd < words; wd++) {
            uint8x16_t wv[4];
            for (int j = 0; j < W; j++) wv[j] = vreinterpretq_u8_u64(vld1q_u64(wp + (wd * W + j) * 2));
            for (int p = 0; p < PX; p++)
                for (int i = 0; i < A; i++) {
                    uint64_t aw = ap[p][i * words + wd];
                    uint8x16_t a = vreinterpretq_u8_u64(vdupq_n_u64(aw));
                    if (W == 1 && c->binary) sumx[p] += (int64_t)__builtin_popcountll(aw) << i;
                    for (int j = 0; j < W; j++)
                        acc[p][i][j] = vpadalq_u8(acc[p][i][j], vcntq_u8(vandq_u8(a, wv[j])));
                }
        }
    }
    for (int p = 0; p < npx; p++) {
        int64_t total[2] = {0, 0};
        for (int i = 0; i < A; i++)
            for (int j = 0; j < W; j++) {
                uint64x2_t n = vpaddlq_u32(vpaddlq_u16(acc[p][i][j]));
                for (int l = 0; l < 2; l++) {
                    int64_t v = (int64_t)vgetq_lane_u64(n, 0);
                    if (l) v = (int64_t)vgetq_lane_u64(n, 1);
                    if (W == 1 && c->binary) total[l] += v << (i + 1);
                    else if (j == W - 1 && W > 1) total[l] -= v << (i + j);
                    else total[l] += v << (i + j);
                }
            }
        for (int l = 0; l < 2 && ob * 2 + l < c->oc; l++)
            lb_store(c, (long)oy * c->ow + ox0 + p, ob * 2 + l,
                     (W == 1 && c->binary) ? total[l] - sumx[p] : total[l]);
    }
}

#define ROWS(A, W)                                                                             \
    static void rows_##A##_##W(const lb_conv *c) {                                             \
        int blocks = (c->oc + 1) / 2;                                                          \
        for (int oy = 0; oy < c->oh; oy++)                                                     \
            for (int ob = 0; ob < blocks; ob++)                                                \
                for (int ox = 0; ox < c->ow; ox += PX)                                         \
                    block(c, oy, ox, c->ow - ox < PX ? c->ow - ox : PX, ob, A, W);             \
    }
ROWS(1, 1) ROWS(1, 2) ROWS(1, 3) ROWS(1, 4) ROWS(2, 1) ROWS(2, 2) ROWS(2, 3) ROWS(2, 4)
ROWS(3, 1) ROWS(3, 2) ROWS(3, 3) ROWS(3, 4) ROWS(4, 1) ROWS(4, 2) ROWS(4, 3) ROWS(4, 4)

void lb_conv_bitserial_neon(const lb_conv *c) {
    static void (*const table[4][4])(const lb_conv *) = {
        {rows_1_1, rows_1_2, rows_1_3, rows_1_4}, {rows_2_1, rows_2_2, rows_2_3, rows_2_4},
        {rows_3_1, rows_3_2, rows_3_3, rows_3_4}, {rows_4_1, rows_4_2, rows_4_3, rows_4_4}};
    table[c->abits - 1][c->wbits - 1](c);
}
#endif
