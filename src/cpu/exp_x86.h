/*
 * exp_x86.h - the core of the AVX-512 exp used by the CPU's SwiGLU
 * (matmul_x86.c) and the attention softmax (attn/kv_avx2.c): one
 * polynomial, so the two agree and a fix lands in both. Include only where
 * __AVX512F__ is defined.
 */
#ifndef LK_CPU_EXP_X86_H
#define LK_CPU_EXP_X86_H

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

#endif
