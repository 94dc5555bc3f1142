/*
 * kv_simd.h - the AVX2 + FMA + F16C kernels over typed KV rows (kv_avx2.c),
 * internal to src/attn: kv.c's entry points (attn.h) dispatch to them when
 * the build targets AVX2/FMA/F16C but not AVX-512 F/BW/VL (whose kernels in
 * kv.c take precedence), and the rows are not marked portable.
 * Every function has the contract of the attn.h entry point of the same
 * name without the _avx2 suffix; results may differ from the portable path
 * only by the order of float additions.
 */
#ifndef LK_KV_SIMD_H
#define LK_KV_SIMD_H

#include "attn/attn.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && \
    !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__))
#define LK_KV_AVX2 1
void lk_row_widen_avx2(loki_kv_type t, const void *src, float *y, int n);
float lk_dot_row_avx2(const lk_rows *r, int32_t s, const float *q);
void lk_axpy_row_avx2(float *y, float w, const lk_rows *r, int32_t s);
void lk_scores_rows_avx2(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                         int32_t ldo);
void lk_weighted_rows_t_avx2(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                             const lk_rows *V);
#endif

#if defined(__AVX2__) && defined(__FMA__)
#define LK_EXP_AVX2 1
/* x[i] = exp(x[i] - m) for i < n, 8 lanes at a time (16 where the build
 * has AVX-512 F); returns Σ x[i]. */
float lk_exp_shift_avx2(float *x, int32_t n, float m);
#endif

#endif
