/* AVX-512 kernels (x86-64): bit-serial conv with VPOPCNTQ over 8 output channels per vector,
 * int8 conv with VNNI (VPDPBUSD, u8 x s8 -> s32), bit-packing with VPTESTMB. Chosen at load time
 * when the CPU has them (lb_avx512_available); the portable kernels run otherwise. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq,avx512vnni,popcnt")
#include <immintrin.h>
#include <string.h>

#include "epilogue_x86.h"

int lb_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni");
}

void lb_bitpack_avx512(const uint8_t *codes, uint64_t *planes, long pixels, int c, int bits, int words) {
    for (long p = 0; p < pixels; p++) {
        const uint8_t *x = codes + p * c;
        for (int wd = 0; wd < words; wd++) {
            int n = c - wd * 64 < 64 ? c - wd * 64 : 64;
            __mmask64 k = n == 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
            __m512i v = _mm512_maskz_loadu_epi8(k, x + wd * 64);
            for (int j = 0; j < bits; j++)
                planes[(p * bits + j) * words + wd] = _mm512_test_epi8_mask(v, _mm512_set1_epi8((char)(1 << j)));
        }
    }
}

/* Requantize 8 accumulators (int64 lanes) of output channels o0..o0+7 of one pixel. */
static inline void store8(const lb_conv *c, long pixel, int o0, __m512i acc) {
    int n = c->oc - o0 < 8 ? c->oc - o0 : 8;
    __mmask8 k = (__mmask8)((1u << n) - 1);
    long at = pixel * c->oc + o0;
    for (int e = 0; e < c->n_epi; e++) {
        const lb_epilogue *ep = &c->epi[e];
        if (ep->raw) {
            __m512i bias = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, ep->bias + o0));
            _mm512_mask_cvtepi64_storeu_epi32((int32_t *)ep->out + at, k, _mm512_add_epi64(acc, bias));
            continue;
        }
        __m512i m = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, ep->m + o0));
        __m512i v = _mm512_add_epi64(_mm512_mullo_epi64(acc, m),
                                     _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, ep->b + o0)));
        if (c->residual) {
            __m128i raw = _mm_maskz_loadu_epi8((__mmask16)k, (const uint8_t *)c->residual + at);
            __m512i r = c->residual_signed ? _mm512_cvtepi8_epi64(raw) : _mm512_cvtepu8_epi64(raw);
            __m512i mr = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, ep->mr + o0));
            v = _mm512_add_epi64(v, _mm512_mullo_epi64(r, mr));
        }
        __m512i q = _mm512_sra_epi64(v, _mm_cvtsi32_si128(ep->shift));
        q = _mm512_max_epi64(q, _mm512_set1_epi64(ep->qmin));
        q = _mm512_min_epi64(q, _mm512_set1_epi64(ep->qmax));
        _mm512_mask_cvtepi64_storeu_epi8((uint8_t *)ep->out + at, k, q);
    }
}

/* Output pixels per block: as many as the 32 vector registers hold accumulators for
 * (PX * A * W accumulators + W weight vectors + 1 broadcast). */
#define PIXELS(A, W) ((A) * (W) <= 2 ? 8 : (A) * (W) <= 4 ? 4 : (A) * (W) <= 8 ? 3 : 1)
#define MAX_PX 8

/* One block: px pixels x 8 output channels, A activation planes x W weight planes. A and W are
 * compile-time constants in each instantiation, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void bitserial_block(const lb_conv *c, int oy, int ox0,
                                                                    int npx, int ob, const int A, const int W) {
    const int PX = PIXELS(A, W);
    __m512i acc[MAX_PX][4][4];
    int64_t sumx[MAX_PX] = {0};
    for (int p = 0; p < PX; p++)
        for (int i = 0; i < A; i++)
            for (int j = 0; j < W; j++) acc[p][i][j] = _mm512_setzero_si512();
    const int words = c->words, pixel_words = A * words;
    const uint64_t *in = c->in;
    const uint64_t *wp = (const uint64_t *)c->packed + (long)ob * c->kh * c->kw * words * W * 8;
    /* A block whose every tap is inside the image (most of them) addresses its pixels from one
     * pointer per pixel and row; border blocks point missing taps at a zero pixel. */
    const int x0 = ox0 * c->sw - c->pw;
    const int interior_x = npx == PX && x0 >= 0 && (ox0 + PX - 1) * c->sw - c->pw + c->kw <= c->w;
    for (int ky = 0; ky < c->kh; ky++) {
        int iy = oy * c->sh - c->ph + ky;
        int row_ok = iy >= 0 && iy < c->h;
        const uint64_t *row = in + (long)iy * c->w * pixel_words;
        if (row_ok && interior_x) {
            const uint64_t *base[MAX_PX];
            for (int p = 0; p < PX; p++) base[p] = row + (long)(x0 + p * c->sw) * pixel_words;
            for (int kx = 0; kx < c->kw; kx++, wp += words * W * 8) {
                const long koff = (long)kx * pixel_words;
                for (int wd = 0; wd < words; wd++) {
                    __m512i wv[4];
                    for (int j = 0; j < W; j++) wv[j] = _mm512_load_si512((const void *)(wp + (wd * W + j) * 8));
                    for (int p = 0; p < PX; p++)
                        for (int i = 0; i < A; i++) {
                            uint64_t aw = base[p][koff + i * words + wd];
                            __m512i a = _mm512_set1_epi64((long long)aw);
                            if (W == 1 && c->binary) sumx[p] += (int64_t)__builtin_popcountll(aw) << i;
                            for (int j = 0; j < W; j++)
                                acc[p][i][j] = _mm512_add_epi64(acc[p][i][j],
                                                                _mm512_popcnt_epi64(_mm512_and_si512(a, wv[j])));
                        }
                }
            }
            continue;
        }
        for (int kx = 0; kx < c->kw; kx++, wp += words * W * 8) {
            const uint64_t *ap[MAX_PX];
            for (int p = 0; p < PX; p++) {
                int ix = (ox0 + p) * c->sw - c->pw + kx;
                ap[p] = (row_ok && p < npx && ix >= 0 && ix < c->w) ? row + (long)ix * pixel_words : c->zeros;
            }
            for (int wd = 0; wd < words; wd++) {
                __m512i wv[4];
                for (int j = 0; j < W; j++) wv[j] = _mm512_load_si512((const void *)(wp + (wd * W + j) * 8));
                for (int p = 0; p < PX; p++)
                    for (int i = 0; i < A; i++) {
                        uint64_t aw = ap[p][i * words + wd];
                        __m512i a = _mm512_set1_epi64((long long)aw);
                        if (W == 1 && c->binary) sumx[p] += (int64_t)__builtin_popcountll(aw) << i;
                        for (int j = 0; j < W; j++)
                            acc[p][i][j] = _mm512_add_epi64(acc[p][i][j],
                                                            _mm512_popcnt_epi64(_mm512_and_si512(a, wv[j])));
                    }
            }
        }
    }
    for (int p = 0; p < PX; p++) { /* constant bounds: the accumulators stay in registers */
        if (p >= npx) break;
        __m512i total = _mm512_setzero_si512();
        for (int i = 0; i < A; i++)
            for (int j = 0; j < W; j++) {
                if (W == 1 && c->binary) {
                    total = _mm512_add_epi64(total, _mm512_slli_epi64(acc[p][i][j], i + 1));
                } else {
                    __m512i term = _mm512_slli_epi64(acc[p][i][j], i + j);
                    total = (j == W - 1 && W > 1) ? _mm512_sub_epi64(total, term) : _mm512_add_epi64(total, term);
                }
            }
        if (W == 1 && c->binary) total = _mm512_sub_epi64(total, _mm512_set1_epi64(sumx[p]));
        store8(c, (long)oy * c->ow + ox0 + p, ob * 8, total);
    }
}

#define BITSERIAL_ROWS(A, W)                                                                   \
    static void bitserial_##A##_##W(const lb_conv *c) {                                        \
        const int px = PIXELS(A, W), blocks = (c->oc + 7) / 8;                                 \
        for (int oy = 0; oy < c->oh; oy++)                                                     \
            for (int ob = 0; ob < blocks; ob++)                                                \
                for (int ox = 0; ox < c->ow; ox += px)                                         \
                    bitserial_block(c, oy, ox, c->ow - ox < px ? c->ow - ox : px, ob, A, W);   \
    }
BITSERIAL_ROWS(1, 1) BITSERIAL_ROWS(1, 2) BITSERIAL_ROWS(1, 3) BITSERIAL_ROWS(1, 4)
BITSERIAL_ROWS(2, 1) BITSERIAL_ROWS(2, 2) BITSERIAL_ROWS(2, 3) BITSERIAL_ROWS(2, 4)
BITSERIAL_ROWS(3, 1) BITSERIAL_ROWS(3, 2) BITSERIAL_ROWS(3, 3) BITSERIAL_ROWS(3, 4)
BITSERIAL_ROWS(4, 1) BITSERIAL_ROWS(4, 2) BITSERIAL_ROWS(4, 3) BITSERIAL_ROWS(4, 4)

void lb_conv_bitserial_avx512(const lb_conv *c) {
    static void (*const table[4][4])(const lb_conv *) = {
        {bitserial_1_1, bitserial_1_2, bitserial_1_3, bitserial_1_4},
        {bitserial_2_1, bitserial_2_2, bitserial_2_3, bitserial_2_4},
        {bitserial_3_1, bitserial_3_2, bitserial_3_3, bitserial_3_4},
        {bitserial_4_1, bitserial_4_2, bitserial_4_3, bitserial_4_4}};
    table[c->abits - 1][c->wbits - 1](c);
}

/* int8 with VNNI (VPDPBUSD: 4 u8 x s8 products into each int32 lane), without im2col: for each
 * kernel row ky, an output pixel reads kw*C contiguous input bytes, taken 4 at a time (row4
 * groups; the weights are zero past kw*C). A conv with padding, or whose kernel rows end in a
 * partial group of 4, reads a zero-bordered copy of its input (int8_padded: borders and 4 bytes
 * of slack zeroed once at load, interior copied per run), so no pixel needs a border check and
 * no read leaves a buffer. Blocks of P pixels x Q vectors of 16 output channels keep their
 * accumulators in registers; a last partial block repeats its first pixel. */
static inline __attribute__((always_inline)) void int8_block(const lb_conv *c, const uint8_t *src, long row_bytes,
                                                             int oy, int ox0, int npx, int v0, const int P,
                                                             const int Q) {
    const int row4 = c->int8_row4;
    const long step = (long)c->sw * c->c; /* bytes from one output pixel's input to the next */
    __m512i acc[LB_INT8_MAX_PX][4]; /* fixed sizes: arrays sized by P, Q would be VLAs in memory */
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++) acc[p][q] = _mm512_setzero_si512();
    long off[LB_INT8_MAX_PX];
    for (int p = 0; p < P; p++) off[p] = (long)(ox0 + (p < npx ? p : 0)) * step;
    const int8_t *wbase = (const int8_t *)c->packed + (long)v0 * c->kh * row4 * 64;
    for (int ky = 0; ky < c->kh; ky++) {
        const uint8_t *row = src + ((long)oy * c->sh + ky) * row_bytes;
        const int8_t *wk = wbase + (long)ky * row4 * 64;
        for (int j = 0; j < row4; j++) {
            __m512i w[4];
            for (int q = 0; q < Q; q++) w[q] = _mm512_load_si512((const void *)(wk + ((long)q * c->kh * row4 + j) * 64));
            for (int p = 0; p < P; p++) {
                int32_t four;
                memcpy(&four, row + off[p] + 4 * j, 4);
                const __m512i a = _mm512_set1_epi32(four);
                for (int q = 0; q < Q; q++) acc[p][q] = _mm512_dpbusd_epi32(acc[p][q], a, w[q]);
            }
        }
    }
    for (int p = 0; p < P; p++) /* constant bounds: the accumulators stay in registers */
        for (int q = 0; q < Q; q++) {
            const int o0 = (v0 + q) * 16;
            if (p < npx && o0 < c->oc) lb_store16(c, (long)oy * c->ow + ox0 + p, o0, acc[p][q]);
        }
}

#define INT8_SPAN(P, Q)                                                                                    \
    static void int8_span_##P##_##Q(const lb_conv *c, const uint8_t *src, long row_bytes, int oy, int v0) { \
        for (int ox = 0; ox < c->ow; ox += P)                                                              \
            int8_block(c, src, row_bytes, oy, ox, c->ow - ox < P ? c->ow - ox : P, v0, P, Q);              \
    }
INT8_SPAN(12, 1) INT8_SPAN(8, 2) INT8_SPAN(5, 3) INT8_SPAN(4, 4)

void lb_conv_int8_avx512(const lb_conv *c) {
    static void (*const spans[4])(const lb_conv *, const uint8_t *, long, int, int) = {
        int8_span_12_1, int8_span_8_2, int8_span_5_3, int8_span_4_4};
    const int vectors = (c->oc + 15) / 16;
    const uint8_t *src = c->in;
    long row_bytes = (long)c->w * c->c;
    if (c->int8_padded) { /* the interior of the zero-bordered copy */
        const long padded_row = (long)(c->w + 2 * c->pw) * c->c;
        for (int y = 0; y < c->h; y++)
            memcpy(c->int8_padded + (y + c->ph) * padded_row + (long)c->pw * c->c, src + y * row_bytes, row_bytes);
        src = c->int8_padded;
        row_bytes = padded_row;
    }
    for (int oy = 0; oy < c->oh; oy++) {
        lb_pool_row_begin(c, oy);
        for (int v = 0; v < vectors;) {
            int q = vectors - v >= 4 ? 4 : vectors - v;
            spans[q - 1](c, src, row_bytes, oy, v);
            v += q;
        }
        lb_pool_row_end(c, oy);
    }
}

/* Fused max pool (lb_pool): point this conv row's accumulators at its ring slot. */
void lb_pool_row_begin(const lb_conv *c, int oy) {
    lb_pool *pool = c->pool;
    if (!pool) return;
    if (oy == 0) pool->next_row = 0;
    pool->shift = ((long)(oy % pool->kh) - oy) * c->ow;
}

/* Emit every pooled row whose window ends at conv row oy (or is clipped there). */
void lb_pool_row_end(const lb_conv *c, int oy) {
    lb_pool *pool = c->pool;
    if (!pool) return;
    for (; pool->next_row < pool->oh; pool->next_row++) {
        const int py = pool->next_row, y0 = py * pool->sh - pool->ph;
        const int first = y0 < 0 ? 0 : y0, last = y0 + pool->kh - 1 < c->oh - 1 ? y0 + pool->kh - 1 : c->oh - 1;
        if (last > oy) break;
        const int32_t *rows[LB_POOL_MAX_K]; /* the window's conv rows in the ring */
        const int nrows = last - first + 1;
        for (int r = 0; r < nrows; r++) rows[r] = pool->ring + (long)((first + r) % pool->kh) * c->ow * c->oc;
        for (int px = 0; px < pool->ow; px++) {
            const int x0 = px * pool->sw - pool->pw;
            const int left = x0 < 0 ? 0 : x0, right = x0 + pool->kw - 1 < c->ow - 1 ? x0 + pool->kw - 1 : c->ow - 1;
            for (int o0 = 0; o0 < c->oc; o0 += 16) {
                const int n = c->oc - o0 < 16 ? c->oc - o0 : 16;
                const __mmask16 k = (__mmask16)((1u << n) - 1);
                __m512i hi, lo;
                if (nrows == 2 && right == left + 1) { /* a whole 2x2 window (YOLO's pools) */
                    const int32_t *a = rows[0] + (long)left * c->oc + o0, *b = rows[1] + (long)left * c->oc + o0;
                    const __m512i v0 = _mm512_maskz_loadu_epi32(k, a), v1 = _mm512_maskz_loadu_epi32(k, a + c->oc);
                    const __m512i v2 = _mm512_maskz_loadu_epi32(k, b), v3 = _mm512_maskz_loadu_epi32(k, b + c->oc);
                    hi = _mm512_max_epi32(_mm512_max_epi32(v0, v1), _mm512_max_epi32(v2, v3));
                    lo = _mm512_min_epi32(_mm512_min_epi32(v0, v1), _mm512_min_epi32(v2, v3));
                } else {
                    hi = _mm512_set1_epi32(INT32_MIN), lo = _mm512_set1_epi32(INT32_MAX);
                    for (int r = 0; r < nrows; r++)
                        for (int x = left; x <= right; x++) {
                            const __m512i v = _mm512_maskz_loadu_epi32(k, rows[r] + (long)x * c->oc + o0);
                            hi = _mm512_max_epi32(hi, v);
                            lo = _mm512_min_epi32(lo, v);
                        }
                }
                lb_store16(&pool->view, (long)py * pool->ow + px, o0,
                           _mm512_mask_blend_epi32(pool->neg[o0 / 16], hi, lo));
            }
        }
    }
}
#endif
