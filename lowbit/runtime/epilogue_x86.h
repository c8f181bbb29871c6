/* The AVX-512 epilogue shared by the x86-64 kernel files (included after their target pragma):
 * requantize 16 int32 accumulators of one pixel, output channels o0..o0+15 (fewer at the end),
 * with the arithmetic of lb_store: v = acc*M + res*Mr + B (int64), q = clamp(v >> shift). */
#ifndef LOWBIT_EPILOGUE_X86_H
#define LOWBIT_EPILOGUE_X86_H
#include <immintrin.h>

#include "lowbit_internal.h"

/* VPMULDQ multiplies the low (sign-extended) 32 bits of each 64-bit lane: the even int32 lanes
 * of acc as they are, the odd ones after a shift; the constants come in that order (wide). Both
 * factors are int32, so each product is the exact int64 one. */
static inline __attribute__((always_inline)) void lb_store16(const lb_conv *c, long pixel, int o0, __m512i acc) {
    const int n = c->oc - o0 < 16 ? c->oc - o0 : 16;
    const __mmask16 k = (__mmask16)((1u << n) - 1);
    const long at = pixel * c->oc + o0;
    if (c->pool) { /* pooled later (lb_pool_row_end) */
        _mm512_mask_storeu_epi32(c->pool->ring + (pixel + c->pool->shift) * c->oc + o0, k, acc);
        return;
    }
    const __m512i a_even = acc, a_odd = _mm512_srli_epi64(acc, 32);
    __m512i r_even = _mm512_setzero_si512(), r_odd = r_even;
    if (c->residual) {
        const __m128i split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        __m128i raw = _mm_shuffle_epi8(_mm_maskz_loadu_epi8(k, (const uint8_t *)c->residual + at), split);
        r_even = c->residual_signed ? _mm512_cvtepi8_epi64(raw) : _mm512_cvtepu8_epi64(raw);
        raw = _mm_srli_si128(raw, 8);
        r_odd = c->residual_signed ? _mm512_cvtepi8_epi64(raw) : _mm512_cvtepu8_epi64(raw);
    }
    for (int e = 0; e < c->n_epi; e++) {
        const lb_epilogue *ep = &c->epi[e];
        if (ep->raw) {
            __m512i bias = _mm512_maskz_loadu_epi32(k, ep->bias + o0);
            _mm512_mask_storeu_epi32((int32_t *)ep->out + at, k, _mm512_add_epi32(acc, bias));
            continue;
        }
        const int64_t *w = ep->wide + (long)(o0 / 16) * 48;
        __m512i v_even = _mm512_add_epi64(_mm512_mul_epi32(a_even, _mm512_load_si512((const void *)w)),
                                          _mm512_load_si512((const void *)(w + 16)));
        __m512i v_odd = _mm512_add_epi64(_mm512_mul_epi32(a_odd, _mm512_load_si512((const void *)(w + 8))),
                                         _mm512_load_si512((const void *)(w + 24)));
        if (c->residual) {
            v_even = _mm512_add_epi64(v_even, _mm512_mul_epi32(r_even, _mm512_load_si512((const void *)(w + 32))));
            v_odd = _mm512_add_epi64(v_odd, _mm512_mul_epi32(r_odd, _mm512_load_si512((const void *)(w + 40))));
        }
        const __m128i shift = _mm_cvtsi32_si128(ep->shift);
        const __m512i lo = _mm512_set1_epi64(ep->qmin), hi = _mm512_set1_epi64(ep->qmax);
        const __m512i q_even = _mm512_min_epi64(_mm512_max_epi64(_mm512_sra_epi64(v_even, shift), lo), hi);
        const __m512i q_odd = _mm512_min_epi64(_mm512_max_epi64(_mm512_sra_epi64(v_odd, shift), lo), hi);
        /* the low byte of each lane, even and odd channels interleaved back into order */
        const __m128i bytes = _mm_unpacklo_epi8(_mm512_cvtepi64_epi8(q_even), _mm512_cvtepi64_epi8(q_odd));
        _mm_mask_storeu_epi8((uint8_t *)ep->out + at, k, bytes);
    }
}
#endif
