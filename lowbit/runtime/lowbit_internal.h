/* Shared between the loader/executor (lowbit.c) and the SIMD kernel files. */
#ifndef LOWBIT_INTERNAL_H
#define LOWBIT_INTERNAL_H

#include "lowbit.h"

enum { DT_U8 = 0, DT_I8 = 1, DT_I32 = 2, DT_PLANES = 3, DT_F32 = 4 };
enum { OP_BITPACK = 1, OP_CONV = 2, OP_MAXPOOL = 3, OP_AVGPOOL = 4 };
#define LB_MAX_EPILOGUES 4

typedef struct {
    int raw, shift, qmin, qmax;
    const int32_t *m, *b, *mr; /* per output channel (avgpool: one value) */
    const int32_t *bias;       /* raw epilogue */
    void *out;                 /* output tensor data */
    int out_signed;
    /* x86 kernels: per 16 output channels, int64 M, B, Mr of the even then the odd channels
     * (48 values; zero past the last channel) */
    int64_t *wide;
} lb_epilogue;

struct lb_pool;

typedef struct {
    int h, w, c;        /* input */
    int oh, ow, oc;     /* output */
    int kh, kw, sh, sw, ph, pw, groups;
    int abits, wbits, binary, words; /* bit-serial: planes and 64-bit words per pixel */
    int in_signed;
    const void *in;
    const void *residual; int residual_signed;
    int n_epi;
    lb_epilogue epi[LB_MAX_EPILOGUES];
    /* weights: artifact layout, and the kernel family's repacked copy */
    const void *weight;
    void *packed; int lanes;
    int int8_row4;     /* x86 int8: 4-byte groups per kernel row (kw*C rounded up) */
    uint8_t *int8_padded; /* x86 int8 with padding or partial groups: the input with zero borders
                           * (ph rows, pw columns) and 4 zero bytes of slack, or NULL */
    const uint64_t *zeros; /* a zero pixel (planes) or zero row for padding */
    /* table-lookup kernels (kernels_x86_lut.c): the input codes (what bit-packing reads), weights
     * in lookup layout, a zero pixel of tables, the tables of kh input rows (built from the codes
     * as the conv reaches them; shared scratch), the subtables that build them, groups of 6
     * channels, lookups per byte flush, byte flushes per 16-bit flush */
    const uint8_t *lut_codes, *lut_weight, *lut_zero;
    uint8_t *lut_ring;
    const uint8_t (*lut_sub)[64][64];
    int lut_groups, lut_flush8, lut_flush16;
    struct lb_pool *pool; /* a max pool fused into this conv (x86 kernels using lb_store16), or NULL */
} lb_conv;

/* A max pool fused into the conv before it, for the x86 kernels that store through lb_store16
 * (table lookup, int8 VNNI). Requantization is monotonic in the accumulator, so the pool of the
 * codes is the requantization of the pooled accumulators (the max, or the min where M < 0): the
 * conv's int32 accumulators go to a ring of its last kh output rows, and each pooled row, once
 * its last conv row is done, is requantized once, straight into the pool's outputs. The conv's
 * own outputs and the pool node are skipped: 4x fewer epilogues and output bytes at 2x2/2. */
typedef struct lb_pool {
    int kh, kw, sh, sw, ph, pw, oh, ow; /* the pool and its output size */
    int32_t *ring;                      /* kh rows x conv ow x oc accumulators */
    long shift;                         /* conv pixel -> ring pixel, for the current row */
    int next_row;                       /* the next pooled row to emit */
    uint16_t *neg;                      /* per 16 output channels: the lanes whose M < 0 */
    lb_conv view;                       /* the conv's epilogues, writing the pool's outputs */
} lb_pool;

/* The epilogue of one accumulator (scalar form; SIMD kernels have their own with the same
 * arithmetic): v = acc*M + res*Mr + B; q = clamp(v >> shift, qmin, qmax). */
static inline void lb_store(const lb_conv *c, long pixel, int o, int64_t acc) {
    for (int e = 0; e < c->n_epi; e++) {
        const lb_epilogue *ep = &c->epi[e];
        long at = pixel * c->oc + o;
        if (ep->raw) {
            ((int32_t *)ep->out)[at] = (int32_t)(acc + ep->bias[o]);
            continue;
        }
        int64_t v = acc * (int64_t)ep->m[o] + (int64_t)ep->b[o];
        if (c->residual) {
            int64_t r = c->residual_signed ? ((const int8_t *)c->residual)[at]
                                           : ((const uint8_t *)c->residual)[at];
            v += r * (int64_t)ep->mr[o];
        }
        int64_t q = v >> ep->shift;
        if (q < ep->qmin) q = ep->qmin;
        if (q > ep->qmax) q = ep->qmax;
        if (ep->out_signed) ((int8_t *)ep->out)[at] = (int8_t)q;
        else ((uint8_t *)ep->out)[at] = (uint8_t)q;
    }
}

/* Portable kernels (any C99 compiler). */
void lb_bitpack_portable(const uint8_t *codes, uint64_t *planes, long pixels, int c, int bits, int words);
void lb_conv_bitserial_portable(const lb_conv *c);
void lb_conv_int8_portable(const lb_conv *c);

#if defined(__x86_64__)
int lb_avx512_available(void);
void lb_pool_row_begin(const lb_conv *c, int oy);
void lb_pool_row_end(const lb_conv *c, int oy);
#define LB_POOL_MAX_K 16 /* pool window height fused at most */
void lb_bitpack_avx512(const uint8_t *codes, uint64_t *planes, long pixels, int c, int bits, int words);
void lb_conv_bitserial_avx512(const lb_conv *c);
void lb_conv_int8_avx512(const lb_conv *c);
int lb_lut_available(void);
int lb_lut_lanes(int wbits);
void lb_lut_subtables(uint8_t sub[2][64][64]);
void lb_lutpack_avx512(const uint8_t *codes, uint8_t *tables, long pixels, int c, int bits,
                       const uint8_t sub[2][64][64]);
void lb_lut_pack_weights(const uint64_t *src, uint8_t *dst, int oc, int kk, int c, int wbits);
void lb_conv_lut_avx512(const lb_conv *c);
#define LB_SIMD_LANES 8
#define LB_SIMD_INT8_LANES 16
#define LB_INT8_MAX_PX 12
#elif defined(__aarch64__)
void lb_conv_bitserial_neon(const lb_conv *c);
#define LB_SIMD_LANES 2
#endif

#endif
