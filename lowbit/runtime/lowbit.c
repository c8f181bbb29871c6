/* Loader, graph executor and portable kernels of the low-bit runtime (see lowbit.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit_internal.h"

#define HEADER_SIZE 48
#define TENSOR_SIZE 36
#define MAX_IO 8
#define MAX_CONSTS 16
#define MAX_PARAMS 64

typedef struct {
    int dtype, is_const, ndim, bits;
    uint32_t dims[4];
    uint64_t offset, nbytes;
    void *data;
} lb_tensor;

typedef struct {
    int op, n_in, n_out, n_const, n_params;
    uint16_t in[MAX_IO], out[MAX_IO], cst[MAX_CONSTS];
    int32_t params[MAX_PARAMS];
    lb_conv conv; /* OP_CONV, OP_AVGPOOL (epilogues) */
    int pooled_by;  /* OP_MAXPOOL: 1 + the conv it may be fused into (conv.pool), else 0 */
    int pooled_now; /* OP_CONV: this run's kernel did the fused pool */
    double ms;    /* last run, when profiling */
} lb_node;

struct lb_model {
    uint8_t *blob;
    size_t size;
    uint32_t n_tensors, n_nodes, input, output;
    lb_tensor *tensors;
    lb_node *nodes;
    uint64_t *zeros;
    uint8_t *lut_zero;          /* a zero pixel of tables */
    uint8_t (*lut_sub)[64][64]; /* lb_lut_subtables */
    uint8_t *lut_ring;          /* the table rows of the conv running (the largest any needs) */
    size_t lut_ring_bytes;
    unsigned available;         /* kernel families this CPU runs (bits of FAMILY_*) */
    int family, profile;        /* the family in use */
};

/* Kernel families, best last: the loader picks the best the CPU has; lb_use_kernels changes it. */
enum { FAMILY_PORTABLE, FAMILY_NEON, FAMILY_AVX512, FAMILY_AVX512_LUT, FAMILY_COUNT };
static const char *const FAMILY_NAMES[FAMILY_COUNT] = {"portable", "neon", "avx512", "avx512-lut"};

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
/* Every buffer of the runtime: zeroed, 64-byte aligned, exactly n bytes (at least 1). No kernel
 * reads past the end of a buffer (each handles its last partial word or group explicitly);
 * tests/lowbit run every kernel family under AddressSanitizer, which sees these exact sizes. */
static void *xalloc(size_t n) {
    void *p = NULL;
    if (!n) n = 1;
    if (posix_memalign(&p, 64, n)) return NULL;
    memset(p, 0, n);
    return p;
}

static size_t tensor_bytes(const lb_tensor *t) {
    size_t n = (size_t)t->dims[0] * t->dims[1] * t->dims[2];
    switch (t->dtype) {
    case DT_U8: case DT_I8: return n;
    case DT_I32: return 4 * n;
    case DT_PLANES: return (size_t)t->dims[0] * t->dims[1] * t->bits * ((t->dims[2] + 63) / 64) * 8;
    default: return 0;
    }
}

/* ---- portable kernels ---------------------------------------------------------------- */

void lb_bitpack_portable(const uint8_t *codes, uint64_t *planes, long pixels, int c, int bits, int words) {
    for (long p = 0; p < pixels; p++) {
        const uint8_t *x = codes + p * c;
        for (int j = 0; j < bits; j++)
            for (int wd = 0; wd < words; wd++) {
                uint64_t word = 0;
                int n = c - wd * 64 < 64 ? c - wd * 64 : 64;
                for (int k = 0; k < n; k++) word |= (uint64_t)((x[wd * 64 + k] >> j) & 1) << k;
                planes[(p * bits + j) * words + wd] = word;
            }
    }
}

void lb_conv_bitserial_portable(const lb_conv *c) {
    const uint64_t *in = c->in, *weight = c->weight;
    int kk = c->kh * c->kw, A = c->abits, W = c->wbits, words = c->words;
    for (int oy = 0; oy < c->oh; oy++)
        for (int ox = 0; ox < c->ow; ox++) {
            long pixel = (long)oy * c->ow + ox;
            for (int o = 0; o < c->oc; o++) {
                int64_t acc = 0, sumx = 0;
                for (int t = 0; t < kk; t++) {
                    int iy = oy * c->sh - c->ph + t / c->kw, ix = ox * c->sw - c->pw + t % c->kw;
                    if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                    const uint64_t *a = in + ((long)(iy * c->w + ix) * A) * words;
                    const uint64_t *wt = weight + (((long)o * kk + t) * W) * words;
                    for (int i = 0; i < A; i++)
                        for (int wd = 0; wd < words; wd++) {
                            uint64_t av = a[i * words + wd];
                            if (c->binary) sumx += (int64_t)__builtin_popcountll(av) << i;
                            for (int j = 0; j < W; j++) {
                                int64_t n = __builtin_popcountll(av & wt[j * words + wd]);
                                if (c->binary) acc += (n << i) * 2;
                                else if (j == W - 1 && W > 1) acc -= n << (i + j);
                                else acc += n << (i + j);
                            }
                        }
                }
                lb_store(c, pixel, o, c->binary ? acc - sumx : acc);
            }
        }
}

void lb_conv_int8_portable(const lb_conv *c) {
    const int8_t *weight = c->weight;
    int cg = c->c / c->groups, og = c->oc / c->groups;
    for (int oy = 0; oy < c->oh; oy++)
        for (int ox = 0; ox < c->ow; ox++) {
            long pixel = (long)oy * c->ow + ox;
            for (int o = 0; o < c->oc; o++) {
                int g = o / og;
                int32_t acc = 0;
                for (int ky = 0; ky < c->kh; ky++) {
                    int iy = oy * c->sh - c->ph + ky;
                    if (iy < 0 || iy >= c->h) continue;
                    for (int kx = 0; kx < c->kw; kx++) {
                        int ix = ox * c->sw - c->pw + kx;
                        if (ix < 0 || ix >= c->w) continue;
                        const int8_t *wt = weight + (((long)o * c->kh + ky) * c->kw + kx) * cg;
                        long base = (long)(iy * c->w + ix) * c->c + (long)g * cg;
                        if (c->in_signed) {
                            const int8_t *x = (const int8_t *)c->in + base;
                            for (int ci = 0; ci < cg; ci++) acc += (int32_t)x[ci] * wt[ci];
                        } else {
                            const uint8_t *x = (const uint8_t *)c->in + base;
                            for (int ci = 0; ci < cg; ci++) acc += (int32_t)x[ci] * wt[ci];
                        }
                    }
                }
                lb_store(c, pixel, o, acc);
            }
        }
}

/* Max pool on codes; the channel loop is innermost and contiguous (NHWC), so it vectorizes. */
#define MAXPOOL_BODY(T, LOWEST)                                                                 \
    for (int oy = 0; oy < oh; oy++)                                                             \
        for (int ox = 0; ox < ow; ox++) {                                                       \
            T *o = (T *)out->data + ((long)oy * ow + ox) * ch;                                  \
            for (int c = 0; c < ch; c++) o[c] = LOWEST;                                         \
            for (int ky = 0; ky < kh; ky++) {                                                   \
                int iy = oy * sh - ph + ky;                                                     \
                if (iy < 0 || iy >= h) continue;                                                \
                for (int kx = 0; kx < kw; kx++) {                                               \
                    int ix = ox * sw - pw + kx;                                                 \
                    if (ix < 0 || ix >= w) continue;                                            \
                    const T *x = (const T *)in->data + ((long)iy * w + ix) * ch;                \
                    for (int c = 0; c < ch; c++) o[c] = x[c] > o[c] ? x[c] : o[c];              \
                }                                                                               \
            }                                                                                   \
        }

static void maxpool(const lb_tensor *in, lb_tensor *out, const int32_t *p) {
    int kh = p[0], kw = p[1], sh = p[2], sw = p[3], ph = p[4], pw = p[5];
    int h = in->dims[0], w = in->dims[1], ch = in->dims[2], oh = out->dims[0], ow = out->dims[1];
    if (in->dtype == DT_I8) {
        MAXPOOL_BODY(int8_t, -128)
    } else {
        MAXPOOL_BODY(uint8_t, 0)
    }
}

static void avgpool(const lb_tensor *in, const lb_conv *c) {
    int hw = in->dims[0] * in->dims[1], ch = in->dims[2];
    int sgn = in->dtype == DT_I8;
    for (int k = 0; k < ch; k++) {
        int64_t sum = 0;
        for (int p = 0; p < hw; p++)
            sum += sgn ? ((const int8_t *)in->data)[(long)p * ch + k] : ((const uint8_t *)in->data)[(long)p * ch + k];
        for (int e = 0; e < c->n_epi; e++) {
            const lb_epilogue *ep = &c->epi[e];
            int64_t q = (sum * (int64_t)ep->m[0] + ep->b[0]) >> ep->shift;
            if (q < ep->qmin) q = ep->qmin;
            if (q > ep->qmax) q = ep->qmax;
            if (ep->out_signed) ((int8_t *)ep->out)[k] = (int8_t)q;
            else ((uint8_t *)ep->out)[k] = (uint8_t)q;
        }
    }
}

/* ---- loading ----------------------------------------------------------------------- */

static int check_const(lb_model *m, int id, int dtype, size_t nbytes, const char *what, int node,
                       char *err, size_t errlen) {
    lb_tensor *t = &m->tensors[id];
    if (!t->is_const || t->dtype != dtype || t->nbytes != nbytes)
        return fail(err, errlen, "node %d: %s has the wrong type or size (%llu bytes, want %zu)",
                    node, what, (unsigned long long)t->nbytes, nbytes);
    return 0;
}

/* Repack weights into the kernel family's blocked layout: [oc/lanes][tap][word][plane][lanes]
 * (bit-serial) or [oc/32][k/4][32][4] (int8, AVX-512 VNNI). */
static int prepare_conv(lb_model *m, lb_node *n, int index, char *err, size_t errlen) {
    lb_conv *c = &n->conv;
    const int32_t *p = n->params;
    lb_tensor *in = &m->tensors[n->in[0]], *out0 = &m->tensors[n->out[0]];
    c->kh = p[0]; c->kw = p[1]; c->sh = p[2]; c->sw = p[3]; c->ph = p[4]; c->pw = p[5];
    c->groups = p[6]; c->c = p[7]; c->oc = p[8]; c->wbits = p[9]; c->binary = p[10];
    int bitserial = p[11];
    c->h = in->dims[0]; c->w = in->dims[1];
    c->oh = out0->dims[0]; c->ow = out0->dims[1];
    if (c->kh < 1 || c->kw < 1 || c->sh < 1 || c->sw < 1 || c->groups < 1 || c->oc < 1 ||
        c->c % c->groups || c->oc % c->groups || c->ph < 0 || c->pw < 0 ||
        (int)in->dims[2] != c->c || (int)out0->dims[2] != c->oc ||
        c->oh != (c->h + 2 * c->ph - c->kh) / c->sh + 1 || c->ow != (c->w + 2 * c->pw - c->kw) / c->sw + 1)
        return fail(err, errlen, "node %d: conv shapes do not agree", index);
    c->in = in->data;
    c->in_signed = in->dtype == DT_I8;
    long kk = (long)c->kh * c->kw;
    if (bitserial) {
        if (in->dtype != DT_PLANES || c->groups != 1 || c->wbits < 1 || c->wbits > 4 || in->bits < 1 || in->bits > 4)
            return fail(err, errlen, "node %d: bit-serial conv needs 1-4 bit planes", index);
        c->abits = in->bits;
        c->words = (c->c + 63) / 64;
        if (check_const(m, n->cst[0], DT_PLANES, (size_t)c->oc * kk * c->wbits * c->words * 8,
                        "weight planes", index, err, errlen))
            return -1;
    } else {
        if (in->dtype != DT_U8 && in->dtype != DT_I8)
            return fail(err, errlen, "node %d: int8 conv reads byte codes", index);
        if (c->wbits < 1 || c->wbits > 8)
            return fail(err, errlen, "node %d: weight bits %d out of range", index, c->wbits);
        if (check_const(m, n->cst[0], DT_I8, (size_t)c->oc * kk * (c->c / c->groups), "weights",
                        index, err, errlen))
            return -1;
    }
    c->weight = m->tensors[n->cst[0]].data;
    c->zeros = m->zeros;
    c->residual = n->n_in > 1 ? m->tensors[n->in[1]].data : NULL;
    if (n->n_in > 1) {
        lb_tensor *r = &m->tensors[n->in[1]];
        if ((r->dtype != DT_U8 && r->dtype != DT_I8) || r->dims[0] != out0->dims[0] ||
            r->dims[1] != out0->dims[1] || r->dims[2] != out0->dims[2])
            return fail(err, errlen, "node %d: residual shape differs from the output", index);
        c->residual_signed = r->dtype == DT_I8;
    }
    /* weights for the SIMD kernels */
#if defined(__x86_64__) || defined(__aarch64__)
    if (bitserial) {
        int lanes = LB_SIMD_LANES;
        long blocks = (c->oc + lanes - 1) / lanes;
        const uint64_t *src = c->weight;
        uint64_t *dst = xalloc((size_t)blocks * kk * c->words * c->wbits * lanes * 8);
        if (!dst) return fail(err, errlen, "out of memory");
        for (int o = 0; o < c->oc; o++)
            for (long t = 0; t < kk; t++)
                for (int wd = 0; wd < c->words; wd++)
                    for (int j = 0; j < c->wbits; j++)
                        dst[((((long)(o / lanes) * kk + t) * c->words + wd) * c->wbits + j) * lanes + o % lanes] =
                            src[(((long)o * kk + t) * c->wbits + j) * c->words + wd];
        c->packed = dst;
        c->lanes = lanes;
    }
#endif
#if defined(__x86_64__)
    if (bitserial && (m->available & (1u << FAMILY_AVX512_LUT))) {
        int groups = (c->c + 5) / 6, opv = 64 / lb_lut_lanes(c->wbits);
        uint8_t *dst = xalloc((size_t)(c->oc + opv - 1) / opv * kk * groups * 64);
        if (!dst) return fail(err, errlen, "out of memory");
        lb_lut_pack_weights(c->weight, dst, c->oc, (int)kk, c->c, c->wbits);
        c->lut_weight = dst;
        /* the codes that the bit-packing node producing this conv's planes reads */
        for (int i = index - 1; i >= 0 && !c->lut_codes; i--)
            if (m->nodes[i].op == OP_BITPACK && m->nodes[i].out[0] == n->in[0])
                c->lut_codes = m->tensors[m->nodes[i].in[0]].data;
        if (!c->lut_codes) return fail(err, errlen, "node %d: bit-serial conv without a bit-packing node", index);
        c->lut_zero = m->lut_zero;
        c->lut_sub = (const uint8_t(*)[64][64])m->lut_sub;
        c->lut_groups = groups;
        size_t ring = (size_t)c->kh * c->w * groups * 64;
        if (ring > m->lut_ring_bytes) m->lut_ring_bytes = ring;
        /* a table entry is at most 6 * (2^A - 1); bytes hold 255; 16-bit lanes 32767 over a
         * byte flush weighed by the planes' coefficients (at most 1, 2, 4, 8 for W = 1..4) */
        int tmax = 6 * ((1 << c->abits) - 1), coef = c->wbits == 1 ? 1 : 1 << (c->wbits - 1);
        c->lut_flush8 = 255 / tmax;
        c->lut_flush16 = 32767 / (c->lut_flush8 * tmax * coef);
    }
#endif
#if defined(__x86_64__)
    if (!bitserial && c->groups == 1) {
        /* [oc/16][kh][row4][16][4]: kernel row ky's kw*C weights, zero-padded to row4 groups of 4 */
        const int row4 = (c->kw * c->c + 3) / 4;
        const long vectors = (c->oc + 15) / 16;
        const int8_t *src = c->weight;
        int8_t *dst = xalloc((size_t)vectors * c->kh * row4 * 64);
        if (!dst) return fail(err, errlen, "out of memory");
        for (int o = 0; o < c->oc; o++)
            for (int ky = 0; ky < c->kh; ky++)
                for (int q = 0; q < c->kw * c->c; q++)
                    dst[((((long)(o / 16) * c->kh + ky) * row4 + q / 4) * 16 + o % 16) * 4 + q % 4] =
                        src[((long)o * c->kh + ky) * c->kw * c->c + q];
        c->packed = dst;
        c->int8_row4 = row4;
        if (c->ph || c->pw || (c->kw * c->c) % 4) { /* see lb_conv_int8_avx512 */
            c->int8_padded = xalloc((size_t)(c->h + 2 * c->ph) * (c->w + 2 * c->pw) * c->c + 4);
            if (!c->int8_padded) return fail(err, errlen, "out of memory");
        }
    }
#endif
    return 0;
}

static int prepare_epilogues(lb_model *m, lb_node *n, int index, int first_epi_param, int first_const,
                             int channels, char *err, size_t errlen) {
    lb_conv *c = &n->conv;
    c->n_epi = n->params[first_epi_param];
    if (c->n_epi < 1 || c->n_epi > LB_MAX_EPILOGUES || c->n_epi != n->n_out ||
        first_epi_param + 1 + 4 * c->n_epi != n->n_params)
        return fail(err, errlen, "node %d: bad epilogue count", index);
    int k = first_const, residual = n->op == OP_CONV && n->n_in > 1;
    for (int e = 0; e < c->n_epi; e++) {
        lb_epilogue *ep = &c->epi[e];
        const int32_t *q = &n->params[first_epi_param + 1 + 4 * e];
        ep->raw = q[0]; ep->shift = q[1]; ep->qmin = q[2]; ep->qmax = q[3];
        lb_tensor *out = &m->tensors[n->out[e]];
        ep->out = out->data;
        ep->out_signed = out->dtype == DT_I8;
        if (ep->raw) {
            if (out->dtype != DT_I32 || k + 2 > n->n_const ||
                check_const(m, n->cst[k], DT_I32, (size_t)channels * 4, "bias", index, err, errlen))
                return fail(err, errlen, "node %d: bad raw output", index);
            ep->bias = m->tensors[n->cst[k]].data;
            k += 2; /* bias, output_scale (host only) */
            continue;
        }
        if (ep->shift < 0 || ep->shift > 62 || ep->qmin > ep->qmax ||
            (out->dtype == DT_U8 && (ep->qmin < 0 || ep->qmax > 255)) ||
            (out->dtype == DT_I8 && (ep->qmin < -128 || ep->qmax > 127)) ||
            (out->dtype != DT_U8 && out->dtype != DT_I8))
            return fail(err, errlen, "node %d: bad requantization", index);
        int need = residual ? 3 : 2;
        if (k + need > n->n_const) return fail(err, errlen, "node %d: missing constants", index);
        if (check_const(m, n->cst[k], DT_I32, (size_t)channels * 4, "multiplier", index, err, errlen) ||
            check_const(m, n->cst[k + 1], DT_I32, (size_t)channels * 4, "offset", index, err, errlen))
            return -1;
        ep->m = m->tensors[n->cst[k]].data;
        ep->b = m->tensors[n->cst[k + 1]].data;
        if (residual) {
            if (check_const(m, n->cst[k + 2], DT_I32, (size_t)channels * 4, "residual multiplier",
                            index, err, errlen))
                return -1;
            ep->mr = m->tensors[n->cst[k + 2]].data;
        }
        k += need;
#if defined(__x86_64__)
        if (n->op == OP_CONV) {
            long blocks = (channels + 15) / 16;
            ep->wide = xalloc((size_t)blocks * 48 * 8);
            if (!ep->wide) return fail(err, errlen, "out of memory");
            for (int o = 0; o < channels; o++) {
                int64_t *w = ep->wide + (long)(o / 16) * 48 + (o % 2) * 8 + (o % 16) / 2;
                w[0] = ep->m[o];
                w[16] = ep->b[o];
                w[32] = residual ? ep->mr[o] : 0;
            }
        }
#endif
    }
    if (k != n->n_const) return fail(err, errlen, "node %d: unexpected constants", index);
    return 0;
}

#if defined(__x86_64__)
/* The max pool node reading epilogue e of conv node i, when it is that output's only reader
 * (and the output is not the model's), else -1. */
static int sole_pool_reader(const lb_model *m, uint32_t i, int e) {
    const lb_node *n = &m->nodes[i];
    int found = -1;
    if (n->conv.epi[e].raw || n->out[e] == m->output) return -1;
    for (uint32_t j = i + 1; j < m->n_nodes; j++)
        for (int k = 0; k < m->nodes[j].n_in; k++)
            if (m->nodes[j].in[k] == n->out[e]) {
                if (found >= 0 || m->nodes[j].op != OP_MAXPOOL || k != 0) return -1;
                found = (int)j;
            }
    return found;
}

/* Fuse the max pools that alone read every output of conv node i (lb_pool), when they pool
 * alike and every channel's multipliers agree in sign. Returns -1 when out of memory. */
static int fuse_pool(lb_model *m, uint32_t i) {
    lb_node *n = &m->nodes[i];
    lb_conv *c = &n->conv;
    if (n->op != OP_CONV || c->residual) return 0;
    int pools[LB_MAX_EPILOGUES];

    for (int e = 0; e < c->n_epi; e++) {
        pools[e] = sole_pool_reader(m, i, e);
        if (pools[e] < 0 || memcmp(m->nodes[pools[e]].params, m->nodes[pools[0]].params, 6 * sizeof(int32_t)))
            return 0;
    }
    for (int o = 0; o < c->oc; o++)
        for (int e = 1; e < c->n_epi; e++)
            if ((int64_t)c->epi[0].m[o] * c->epi[e].m[o] < 0) return 0;
    const lb_node *p = &m->nodes[pools[0]];
    const lb_tensor *pooled = &m->tensors[p->out[0]];
    if (p->params[0] > LB_POOL_MAX_K) return 0;
    lb_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return -1;
    c->pool = pool; /* freed with the conv from here on */
    pool->kh = p->params[0]; pool->kw = p->params[1]; pool->sh = p->params[2]; pool->sw = p->params[3];
    pool->ph = p->params[4]; pool->pw = p->params[5];
    pool->oh = (int)pooled->dims[0]; pool->ow = (int)pooled->dims[1];
    pool->ring = xalloc((size_t)pool->kh * c->ow * c->oc * 4);
    pool->neg = xalloc((size_t)(c->oc + 15) / 16 * sizeof(uint16_t));
    if (!pool->ring || !pool->neg) return -1;
    for (int o = 0; o < c->oc; o++)
        for (int e = 0; e < c->n_epi; e++)
            if (c->epi[e].m[o] < 0) pool->neg[o / 16] |= (uint16_t)(1u << (o % 16));
    pool->view = *c;
    pool->view.pool = NULL;
    for (int e = 0; e < c->n_epi; e++) {
        pool->view.epi[e].out = m->tensors[m->nodes[pools[e]].out[0]].data;
        m->nodes[pools[e]].pooled_by = (int)i + 1;
    }
    return 0;
}
#endif

static int parse(lb_model *m, char *err, size_t errlen) {
    const uint8_t *b = m->blob;
    if (m->size < HEADER_SIZE || memcmp(b, "FFLOWBIT", 8))
        return fail(err, errlen, "not a FleetForge low-bit model (bad magic)");
    uint32_t format = rd32(b + 8), layout = rd32(b + 12);
    if (format != LB_FORMAT_VERSION || layout != LB_PACKING_LAYOUT)
        return fail(err, errlen, "artifact format %u/layout %u; this runtime reads %d/%d (recompile the model)",
                    format, layout, LB_FORMAT_VERSION, LB_PACKING_LAYOUT);
    m->n_tensors = rd32(b + 16); m->n_nodes = rd32(b + 20);
    uint32_t meta_len = rd32(b + 24), graph_len = rd32(b + 28);
    m->input = rd32(b + 32); m->output = rd32(b + 36);
    uint64_t data_offset = rd64(b + 40);
    size_t cursor = HEADER_SIZE + (meta_len + 7) / 8 * 8;
    if (m->n_tensors > 65535 || m->n_nodes > 65535 || cursor + (uint64_t)m->n_tensors * TENSOR_SIZE > m->size ||
        data_offset > m->size || m->input >= m->n_tensors || m->output >= m->n_tensors)
        return fail(err, errlen, "corrupted low-bit model (header)");
    m->tensors = calloc(m->n_tensors, sizeof(lb_tensor));
    m->nodes = calloc(m->n_nodes ? m->n_nodes : 1, sizeof(lb_node));
    if (!m->tensors || !m->nodes) return fail(err, errlen, "out of memory");
    size_t max_pixel = 64, max_tables = 64;
    for (uint32_t i = 0; i < m->n_tensors; i++, cursor += TENSOR_SIZE) {
        lb_tensor *t = &m->tensors[i];
        const uint8_t *r = b + cursor;
        t->dtype = r[0]; t->is_const = r[1]; t->ndim = r[2]; t->bits = r[3];
        for (int d = 0; d < 4; d++) t->dims[d] = rd32(r + 4 + 4 * d);
        t->offset = rd64(r + 20); t->nbytes = rd64(r + 28);
        if (t->is_const) {
            if (t->offset + t->nbytes > m->size - data_offset || t->offset % 8)
                return fail(err, errlen, "corrupted low-bit model (constant %u out of range)", i);
            t->data = m->blob + data_offset + t->offset;
        } else {
            if (t->dtype > DT_PLANES || (uint64_t)t->dims[0] * t->dims[1] * t->dims[2] > (1u << 28) ||
                (t->dtype == DT_PLANES && (t->bits < 1 || t->bits > 8)))
                return fail(err, errlen, "corrupted low-bit model (tensor %u)", i);
            t->data = xalloc(tensor_bytes(t));
            if (!t->data) return fail(err, errlen, "out of memory");
            size_t tables = (size_t)(t->dims[2] + 5) / 6 * 64;
            if (t->dtype == DT_PLANES && tables > max_tables) max_tables = tables;
            size_t pixel = (size_t)8 * t->dims[2] + 512; /* >= one pixel of any tensor, as planes */
            if (pixel > max_pixel) max_pixel = pixel;
        }
    }
    m->zeros = xalloc(max_pixel);
    m->lut_zero = xalloc(max_tables);
    if (!m->zeros || !m->lut_zero) return fail(err, errlen, "out of memory");
    cursor = (cursor + 7) / 8 * 8;
    size_t graph_end = cursor + graph_len;
    if (graph_end > data_offset) return fail(err, errlen, "corrupted low-bit model (graph)");
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        if (cursor + 5 > graph_end) return fail(err, errlen, "corrupted low-bit model (node %u)", i);
        n->op = b[cursor]; n->n_in = b[cursor + 1]; n->n_out = b[cursor + 2];
        n->n_const = b[cursor + 3]; n->n_params = b[cursor + 4];
        cursor += 5;
        if (n->n_in < 1 || n->n_in > MAX_IO || n->n_out < 1 || n->n_out > MAX_IO ||
            n->n_const > MAX_CONSTS || n->n_params > MAX_PARAMS ||
            cursor + 2 * (n->n_in + n->n_out + n->n_const) + 4 * n->n_params > graph_end)
            return fail(err, errlen, "corrupted low-bit model (node %u)", i);
        uint16_t *lists[3] = {n->in, n->out, n->cst};
        int counts[3] = {n->n_in, n->n_out, n->n_const};
        for (int l = 0; l < 3; l++)
            for (int k = 0; k < counts[l]; k++, cursor += 2) {
                memcpy(&lists[l][k], b + cursor, 2);
                if (lists[l][k] >= m->n_tensors || (m->tensors[lists[l][k]].is_const != (l == 2)))
                    return fail(err, errlen, "corrupted low-bit model (node %u references tensor %u)", i, lists[l][k]);
            }
        for (int k = 0; k < n->n_params; k++, cursor += 4) memcpy(&n->params[k], b + cursor, 4);
        lb_tensor *in = &m->tensors[n->in[0]], *out = &m->tensors[n->out[0]];
        switch (n->op) {
        case OP_BITPACK:
            if (n->n_params != 1 || in->dtype != DT_U8 || out->dtype != DT_PLANES || out->bits != n->params[0] ||
                memcmp(in->dims, out->dims, sizeof in->dims))
                return fail(err, errlen, "node %u: bad bitpack", i);
            break;
        case OP_CONV:
            if (n->n_params < 13 || n->n_const < 1) return fail(err, errlen, "node %u: bad conv", i);
            if (prepare_conv(m, n, i, err, errlen) ||
                prepare_epilogues(m, n, i, 12, 1, n->conv.oc, err, errlen))
                return -1;
            for (int e = 0; e < n->n_out; e++)
                if (memcmp(m->tensors[n->out[e]].dims, out->dims, sizeof out->dims))
                    return fail(err, errlen, "node %u: conv outputs differ in shape", i);
            break;
        case OP_MAXPOOL:
            if (n->n_params != 6 || in->dtype != out->dtype || (in->dtype != DT_U8 && in->dtype != DT_I8) ||
                in->dims[2] != out->dims[2] || n->params[0] < 1 || n->params[1] < 1 || n->params[2] < 1 || n->params[3] < 1)
                return fail(err, errlen, "node %u: bad max pool", i);
            break;
        case OP_AVGPOOL:
            if (n->n_params < 1 || (in->dtype != DT_U8 && in->dtype != DT_I8) || out->dims[0] != 1 ||
                out->dims[1] != 1 || out->dims[2] != in->dims[2])
                return fail(err, errlen, "node %u: bad average pool", i);
            if (prepare_epilogues(m, n, i, 0, 0, 1, err, errlen)) return -1;
            break;
        default:
            return fail(err, errlen, "node %u: unknown operator %d (a newer compiler?)", i, n->op);
        }
    }
    if (m->lut_ring_bytes) {
        m->lut_ring = xalloc(m->lut_ring_bytes);
        if (!m->lut_ring) return fail(err, errlen, "out of memory");
        for (uint32_t i = 0; i < m->n_nodes; i++) m->nodes[i].conv.lut_ring = m->lut_ring;
    }
    lb_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
    if (in->is_const || (in->dtype != DT_U8 && in->dtype != DT_I8) || out->is_const || out->dtype != DT_I32)
        return fail(err, errlen, "corrupted low-bit model (input/output)");
#if defined(__x86_64__)
    for (uint32_t i = 0; i < m->n_nodes; i++)
        if (fuse_pool(m, i)) return fail(err, errlen, "out of memory");
#endif
    return 0;
}

lb_model *lb_load(const uint8_t *blob, size_t size, char *err, size_t errlen) {
    lb_model *m = calloc(1, sizeof *m);
    if (!m) { fail(err, errlen, "out of memory"); return NULL; }
    m->blob = xalloc(size);
    if (!m->blob) { fail(err, errlen, "out of memory"); free(m); return NULL; }
    memcpy(m->blob, blob, size);
    m->size = size;
    m->available = 1u << FAMILY_PORTABLE;
#if defined(__x86_64__)
    if (lb_avx512_available()) m->available |= 1u << FAMILY_AVX512;
    if (lb_avx512_available() && lb_lut_available()) {
        m->available |= 1u << FAMILY_AVX512_LUT;
        m->lut_sub = xalloc(sizeof(uint8_t[2][64][64]));
        if (!m->lut_sub) { fail(err, errlen, "out of memory"); lb_free(m); return NULL; }
        lb_lut_subtables(m->lut_sub);
    }
#elif defined(__aarch64__)
    m->available |= 1u << FAMILY_NEON;
#endif
    for (int f = 0; f < FAMILY_COUNT; f++)
        if (m->available & (1u << f)) m->family = f;
    if (parse(m, err, errlen)) { lb_free(m); return NULL; }
    return m;
}

void lb_free(lb_model *m) {
    if (!m) return;
    if (m->tensors)
        for (uint32_t i = 0; i < m->n_tensors; i++)
            if (!m->tensors[i].is_const) free(m->tensors[i].data);
    if (m->nodes)
        for (uint32_t i = 0; i < m->n_nodes; i++) {
            free(m->nodes[i].conv.packed);
            free(m->nodes[i].conv.int8_padded);
            if (m->nodes[i].conv.pool) {
                free(m->nodes[i].conv.pool->ring);
                free(m->nodes[i].conv.pool->neg);
                free(m->nodes[i].conv.pool);
            }
            for (int e = 0; e < LB_MAX_EPILOGUES; e++) free(m->nodes[i].conv.epi[e].wide);
            free((void *)m->nodes[i].conv.lut_weight);
        }
    free(m->tensors); free(m->nodes); free(m->zeros); free(m->lut_zero); free(m->lut_sub); free(m->lut_ring);
    free(m->blob); free(m);
}

size_t lb_input_bytes(const lb_model *m) { return tensor_bytes(&m->tensors[m->input]); }
size_t lb_output_count(const lb_model *m) { return tensor_bytes(&m->tensors[m->output]) / 4; }
int lb_use_kernels(lb_model *m, const char *family) {
    for (int f = 0; f < FAMILY_COUNT; f++)
        if (!strcmp(family, FAMILY_NAMES[f]) && (m->available & (1u << f))) {
            m->family = f;
            return 0;
        }
    return -1;
}
const char *lb_kernel_families(const lb_model *m, size_t index) {
    for (int f = 0; f < FAMILY_COUNT; f++)
        if ((m->available & (1u << f)) && index-- == 0) return FAMILY_NAMES[f];
    return NULL;
}
void lb_profile(lb_model *m, int enable) { m->profile = enable; }
size_t lb_node_count(const lb_model *m) { return m->n_nodes; }
double lb_node_ms(const lb_model *m, size_t i, int *op) {
    if (i >= m->n_nodes) return -1;
    if (op) *op = m->nodes[i].op;
    return m->nodes[i].ms;
}
/* Profiles count this thread's CPU time: on a shared machine, wall time would charge each node
 * with whatever else ran meanwhile. */
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

const char *lb_kernels(const lb_model *m) { return FAMILY_NAMES[m->family]; }

int lb_run(lb_model *m, const uint8_t *input, int32_t *output) {
    lb_tensor *in = &m->tensors[m->input];
    memcpy(in->data, input, tensor_bytes(in));
    const int family = m->family;
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        lb_tensor *src = &m->tensors[n->in[0]], *dst = &m->tensors[n->out[0]];
        double start = m->profile ? now_ms() : 0;
        switch (n->op) {
        case OP_BITPACK: {
            long pixels = (long)src->dims[0] * src->dims[1];
            int words = (src->dims[2] + 63) / 64;
#if defined(__x86_64__)
            if (family == FAMILY_AVX512_LUT) break; /* the table-lookup convs read the codes */
            if (family == FAMILY_AVX512) { lb_bitpack_avx512(src->data, dst->data, pixels, src->dims[2], dst->bits, words); break; }
#endif
            lb_bitpack_portable(src->data, dst->data, pixels, src->dims[2], dst->bits, words);
            break;
        }
        case OP_CONV: {
            lb_conv *c = &n->conv;
            int bitserial = n->params[11];
#if defined(__x86_64__)
            n->pooled_now = 0;
            if (family == FAMILY_AVX512_LUT && bitserial) {
                lb_conv_lut_avx512(c);
                n->pooled_now = c->pool != NULL;
                break;
            }
            if (family >= FAMILY_AVX512 && bitserial) { lb_conv_bitserial_avx512(c); break; }
            if (family >= FAMILY_AVX512 && c->packed && !c->in_signed) {
                lb_conv_int8_avx512(c);
                n->pooled_now = c->pool != NULL;
                break;
            }
#elif defined(__aarch64__)
            if (family == FAMILY_NEON && bitserial && (long)c->kh * c->kw * c->words < 4096) { lb_conv_bitserial_neon(c); break; }
#endif
            if (bitserial) lb_conv_bitserial_portable(c);
            else lb_conv_int8_portable(c);
            break;
        }
        case OP_MAXPOOL:
            if (!n->pooled_by || !m->nodes[n->pooled_by - 1].pooled_now) maxpool(src, dst, n->params);
            break;
        case OP_AVGPOOL: avgpool(src, &n->conv); break;
        }
        if (m->profile) n->ms = now_ms() - start;
    }
    lb_tensor *out = &m->tensors[m->output];
    memcpy(output, out->data, tensor_bytes(out));
    return 0;
}
