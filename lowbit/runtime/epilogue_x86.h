/* The AVX-512 epilogue shared by the x86-64 kernel files (included after their target pragma):
 * requantize 16 int32 accumulators of one pixel, output channels o0..o0+15 (fewer at the end),
 * with the arithmetic of lb_store: v = acc*M + res*Mr + B (int64), q = clamp(v >> shift). */
#ifndef LOWBIT_EPILOGUE_X86_H
#define LOWBIT_EPILOGUE_X86_H
#include <immintrin.h>

#include "lowbit_internal.h"

/* int64 lanes of the 16 int32 values at p (masked): low and high 8 */
static inline __m512i lo64(const int32_t *p, __mmask16 k) {
    return _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32((__mmask8)k, p));
}
static inline __m512i hi64(const int32_t *p, __mmask16 k) {
    return _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32((__mmask8)(k >> 8), p + 8));
}

static inline __attribute__((always_inline)) void lb_store16(const lb_conv *c, long pixel, int o0, __m512i acc) {
    const int n = c->oc - o0 < 16 ? c->oc - o0 : 16;
    const __mmask16 k = (__mmask16)((1u << n) - 1);
    const long at = pixel * c->oc + o0;
    const __m512i a_lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc));
    const __m512i a_hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1));
    __m512i r_lo = _mm512_setzero_si512(), r_hi = r_lo;
    if (c->residual) {
        __m128i raw = _mm_maskz_loadu_epi8(k, (const uint8_t *)c->residual + at);
        __m512i r = c->residual_signed ? _mm512_cvtepi8_epi32(raw) : _mm512_cvtepu8_epi32(raw);
        r_lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(r));
        r_hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(r, 1));
    }
    for (int e = 0; e < c->n_epi; e++) {
        const lb_epilogue *ep = &c->epi[e];
        if (ep->raw) {
            __m512i bias = _mm512_maskz_loadu_epi32(k, ep->bias + o0);
            _mm512_mask_storeu_epi32((int32_t *)ep->out + at, k, _mm512_add_epi32(acc, bias));
            continue;
        }
        /* both factors are sign-extended int32, so VPMULDQ's product is the exact int64 one */
        __m512i v_lo = _mm512_add_epi64(_mm512_mul_epi32(a_lo, lo64(ep->m + o0, k)), lo64(ep->b + o0, k));
        __m512i v_hi = _mm512_add_epi64(_mm512_mul_epi32(a_hi, hi64(ep->m + o0, k)), hi64(ep->b + o0, k));
        if (c->residual) {
            v_lo = _mm512_add_epi64(v_lo, _mm512_mul_epi32(r_lo, lo64(ep->mr + o0, k)));
            v_hi = _mm512_add_epi64(v_hi, _mm512_mul_epi32(r_hi, hi64(ep->mr + o0, k)));
        }
        const __m128i shift = _mm_cvtsi32_si128(ep->shift);
        /* int64 -> int32 with saturation, then the clamp (qmin, qmax are within int8/uint8) */
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtsepi64_epi32(_mm512_sra_epi64(v_lo, shift))),
                                       _mm512_cvtsepi64_epi32(_mm512_sra_epi64(v_hi, shift)), 1);
        q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(ep->qmin)), _mm512_set1_epi32(ep->qmax));
        _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)ep->out + at, k, q);
    }
}
#endif
