/*
 * simd512.h - AVX-512 pieces shared by the CPU kernels (and the dev/cpu
 * prototypes): the exp polynomial of the SwiGLU (matmul_x86.c) and of the
 * attention softmax (attn/kv_avx2.c), and the four-way horizontal sum of
 * the attention scores (attn/kv.c). One copy each, so a fix lands
 * everywhere. Include only where __AVX512F__ is defined.
 */
#ifndef LK_CPU_SIMD512_H
#define LK_CPU_SIMD512_H

#include <immintrin.h>

/* e^x = 2^k * p(r) for x the caller has clamped (|x| <= 104): k =
 * round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2] (ln 2 in two parts, the
 * high part's product with k exact), p the degree-7 Taylor polynomial of e^r
 * (truncation < 6e-9 relative). Returns p and sets *k; the caller applies
 * 2^k with vscalefps (exactly, without overflow checks). */
static inline __attribute__((always_inline)) __m512 lk_exp512_poly(__m512 x, __m512 *k) {
    *k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*k, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(*k, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
}

/* e^x on 16 lanes for softmax weights: 0 below e^-64 (no subnormal weights,
 * which would slow the weighted sums; the attention's exp8 on AVX2 flushes
 * the same), clamped at 88 above. */
static inline __attribute__((always_inline)) __m512 lk_exp512_flush64(__m512 x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-64.0f), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-64.0f)), _mm512_set1_ps(88.0f));
    __m512 k;
    const __m512 p = lk_exp512_poly(x, &k);
    return _mm512_maskz_scalef_ps(keep, p, k);
}

/* [Σ a0, Σ a1, Σ a2, Σ a3]: four horizontal sums sharing their shuffles. */
static inline __attribute__((always_inline)) __m128 lk_hsum4_512(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    const __m512d p0 = _mm512_castps_pd(t0), p1 = _mm512_castps_pd(t1);
    const __m512 u =
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p0, p1)), _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p1)));
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#endif
