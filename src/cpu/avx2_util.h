/*
 * avx2_util.h - small helpers shared by the AVX2 kernels of the CPU backend
 * (matmul_avx2.c, quant_avx2.c); include only where LK_CPU_X86_256 holds.
 */
#ifndef LK_CPU_AVX2_UTIL_H
#define LK_CPU_AVX2_UTIL_H

#include <immintrin.h>

/* Sum of the 8 lanes of v. */
static inline __attribute__((always_inline)) float lk_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
