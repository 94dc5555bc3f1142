/*
 * matmul_avx2.c - AVX2 (+FMA +F16C) kernels of the CPU backend for machines
 * without the AVX-512 set (Zen 1-3, Haswell .. Alder Lake): the activation
 * quantizer, the f32/f16/bf16 matrix-vector kernels and the q8_0 integer-dot
 * kernel. Compiled only under LK_CPU_X86_256 (cpu_internal.h); the other
 * quantized types are in quant_avx2.c, the portable references in matmul.c
 * and quant_dot.c, the AVX-512 counterparts in matmul_x86.c. The prompt
 * GEMM (n > LK_MV_MAX_N) of the quantized types is gemm_q8_avx2.c; that of
 * f32/f16/bf16, q2_k and q3_k stays on the portable OpenBLAS path in these
 * builds.
 *
 * Matrix-vector (decode): 4 rows at a time, so one load of x feeds 4
 * independent FMA chains (x is read once per 4 rows, and the 4 chains hide
 * the FMA latency), two 8-float steps per iteration (8 chains in all: Zen 3
 * and Intel cores issue 2 FMAs per cycle at a latency of 4-5).
 *   f32:  plain FMA;
 *   f16:  vcvtph2ps (exact widening) then FMA;
 *   bf16: zero-extend + shift left 16 (exact widening) then FMA;
 *   q8_0: int8 x int8 products widened to int16 (vpmovsxbw) and summed in
 *         pairs by vpmaddwd: exact for every byte value, see lk_mv_q8_avx2.
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#if defined(LK_CPU_X86_256)

#include <immintrin.h>
#include "cpu/avx2_util.h"
#include <string.h>

/* ------------------------------------------------------------ helpers */


LK_AI int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* ------------------------------------------------ q8_0 activations */

/* Contract of lk_q8_quantize_scalar (x: in floats, in % 32 == 0; a: room for
 * in / 32 blocks), bit-identical results: amax by max of |x| (order-free),
 * d = amax / 127 and id = 1 / d as scalars exactly as there, q = round half
 * to even of x * id (vcvtps2dq under the default MXCSR, like nearbyintf;
 * both give INT32_MIN out of range), clamped to [-127, 127] before both the
 * sums and the byte store, so the sums describe the stored bytes. */
void lk_q8_quantize_avx2(const float *x, lk_q8_act *a, int64_t in) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    /* vpackssdw/vpacksswb interleave the 128-bit lanes: dword k of the packed
     * bytes holds 4 values of vector k % 4, half k / 4; this puts them back */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < in / 32; b++) {
        const float *xb = x + 32 * b;
        __m256 v[4];
        __m256 am = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            am = _mm256_max_ps(am, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
            q[k] = _mm256_min_epi32(_mm256_max_epi32(q[k], lo), hi);
        }
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(a->q + 32 * b), _mm256_permutevar8x32_epi32(p, order));
        const int32_t s0 = hsum8i(_mm256_add_epi32(q[0], q[1])), s1 = hsum8i(_mm256_add_epi32(q[2], q[3]));
        a->d[b] = d;
        a->c[b] = -16 * (s0 + s1);
        a->s32[b] = d * (float)(s0 + s1);
        a->s16[2 * b] = d * (float)s0;
        a->s16[2 * b + 1] = d * (float)s1;
    }
}

/* ------------------------------------------------ float matrix-vector */

/* 8 consecutive elements k.. of a row of dtype dt (f32/f16/bf16) as f32. */
LK_AI __m256 load8(lk_dtype dt, const void *row, int64_t k) {
    if (dt == LK_DTYPE_F32) return _mm256_loadu_ps((const float *)row + k);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (dt == LK_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16 */
}

/* The last in % 8 elements from k0 of a row and of x, zero-padded to 8
 * (AVX2 has no byte-masked loads for 16-bit elements; a copy through the
 * stack costs nothing next to a row). */
LK_AI __m256 tail8(lk_dtype dt, const void *row, int64_t k0, int64_t in) {
    float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    lk_row_to_f32(dt, (const char *)row + (size_t)k0 * (dt == LK_DTYPE_F32 ? 4 : 2), t, in - k0);
    return _mm256_loadu_ps(t);
}

/* y[r] = W[r] . x for r in [r0, r1) of a f32/f16/bf16 W (rows of in
 * elements) and f32 x (in); any in >= 1. */
LK_AI void mv_float(lk_dtype dt, float *y, const void *w, const float *x, int64_t in, int64_t r0,
                    int64_t r1) {
    const size_t rb = lk_dtype_row_bytes(dt, in);
    const int64_t in16 = in & ~(int64_t)15, in8 = in & ~(int64_t)7;
    /* linear prefetch of each 4-row group (avx2_util.h) only for short rows:
     * on 8 KB bf16 rows (7B) it was slower than the hardware prefetchers alone */
    const size_t pf_step = rb <= 4096 ? (size_t)64 * (dt == LK_DTYPE_F32 ? 4 : 2) : 0;
    __m256 xt = _mm256_setzero_ps();
    if (in8 < in) {
        float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(t, x + in8, sizeof(float) * (size_t)(in - in8));
        xt = _mm256_loadu_ps(t);
    }
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const char *w0 = (const char *)w + (size_t)r * rb;
        const char *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int64_t k = 0;
        for (; k < in16; k += 16) {
            lk_mv_prefetch((const uint8_t *)w0, pf_step, k / 16);
            const __m256 xa = _mm256_loadu_ps(x + k), xb = _mm256_loadu_ps(x + k + 8);
            a0 = _mm256_fmadd_ps(load8(dt, w0, k), xa, a0);
            a1 = _mm256_fmadd_ps(load8(dt, w1, k), xa, a1);
            a2 = _mm256_fmadd_ps(load8(dt, w2, k), xa, a2);
            a3 = _mm256_fmadd_ps(load8(dt, w3, k), xa, a3);
            b0 = _mm256_fmadd_ps(load8(dt, w0, k + 8), xb, b0);
            b1 = _mm256_fmadd_ps(load8(dt, w1, k + 8), xb, b1);
            b2 = _mm256_fmadd_ps(load8(dt, w2, k + 8), xb, b2);
            b3 = _mm256_fmadd_ps(load8(dt, w3, k + 8), xb, b3);
        }
        if (k < in8) {
            const __m256 xa = _mm256_loadu_ps(x + k);
            a0 = _mm256_fmadd_ps(load8(dt, w0, k), xa, a0);
            a1 = _mm256_fmadd_ps(load8(dt, w1, k), xa, a1);
            a2 = _mm256_fmadd_ps(load8(dt, w2, k), xa, a2);
            a3 = _mm256_fmadd_ps(load8(dt, w3, k), xa, a3);
        }
        if (in8 < in) {
            b0 = _mm256_fmadd_ps(tail8(dt, w0, in8, in), xt, b0);
            b1 = _mm256_fmadd_ps(tail8(dt, w1, in8, in), xt, b1);
            b2 = _mm256_fmadd_ps(tail8(dt, w2, in8, in), xt, b2);
            b3 = _mm256_fmadd_ps(tail8(dt, w3, in8, in), xt, b3);
        }
        y[r] = lk_hsum8(_mm256_add_ps(a0, b0));
        y[r + 1] = lk_hsum8(_mm256_add_ps(a1, b1));
        y[r + 2] = lk_hsum8(_mm256_add_ps(a2, b2));
        y[r + 3] = lk_hsum8(_mm256_add_ps(a3, b3));
    }
    for (; r < r1; r++) {
        const char *w0 = (const char *)w + (size_t)r * rb;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0;
        int64_t k = 0;
        for (; k < in16; k += 16) {
            a0 = _mm256_fmadd_ps(load8(dt, w0, k), _mm256_loadu_ps(x + k), a0);
            b0 = _mm256_fmadd_ps(load8(dt, w0, k + 8), _mm256_loadu_ps(x + k + 8), b0);
        }
        if (k < in8) a0 = _mm256_fmadd_ps(load8(dt, w0, k), _mm256_loadu_ps(x + k), a0);
        if (in8 < in) b0 = _mm256_fmadd_ps(tail8(dt, w0, in8, in), xt, b0);
        y[r] = lk_hsum8(_mm256_add_ps(a0, b0));
    }
}

/* Contract of lk_mv_float_x86: y[r] = dot(W row r, x) for r in [r0, r1),
 * W (out, in) of dtype f32/f16/bf16, x (in) f32, any in >= 1; other dtypes
 * leave y untouched. One inlined copy per dtype, so the inner loops carry
 * no dtype branch. */
void lk_mv_float_avx2(lk_dtype dt, float *y, const void *w, const float *x, int64_t in, int64_t r0,
                      int64_t r1) {
    switch (dt) {
    case LK_DTYPE_F32: mv_float(LK_DTYPE_F32, y, w, x, in, r0, r1); break;
    case LK_DTYPE_F16: mv_float(LK_DTYPE_F16, y, w, x, in, r0, r1); break;
    case LK_DTYPE_BF16: mv_float(LK_DTYPE_BF16, y, w, x, in, r0, r1); break;
    default: break;
    }
}

/* ------------------------------------------------ q8_0 matrix-vector */

/* Contract of lk_mv_qdot_scalar for q8_0: y[r] = W~[r] . x~, rows r0..r1 of
 * 34-byte blocks, x quantized (in / 32 blocks) by lk_q8_quantize_*, whose
 * codes lie in [-127, 127].
 *
 * Both operands are signed, and vpmaddubsw takes one unsigned: the sign moves
 * from w to x, |w| times x * sign(w) (vpsignb). That is exact here: |w| <= 128
 * fits as unsigned (|-128| = 0x80), x * sign(w) fits in int8 because the
 * activation codes never hold -128, and a pair of products is at most
 * 2 * 128 * 127 = 32512 < 2^15, so the saturating int16 sum never saturates.
 * vpmaddwd by 1 then gives 8 int32 lanes per block (each <= 2^16: exact in
 * f32), converted and FMA'd with d_w d_x; one horizontal sum per row. */
LK_AI __m256i q8_dot(const uint8_t *blk, __m256i xq) {
    const __m256i wq = _mm256_loadu_si256((const __m256i *)(blk + 2));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq)),
                             _mm256_set1_epi16(1));
}

void lk_mv_q8_avx2(float *y, const void *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1) {
    const int64_t nb = in / 32;
    const size_t rb = (size_t)nb * sizeof(lk_block_q8_0);
#define LK_Q8_STEP(p, a)                                                                       \
    a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_dot((p) + 34 * ib, xq)),                         \
                        _mm256_set1_ps(_cvtsh_ss(lk_ld16((p) + 34 * ib)) * xd), a)
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p0 = (const uint8_t *)w + (size_t)r * rb, *p1 = p0 + rb, *p2 = p1 + rb, *p3 = p2 + rb;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t ib = 0; ib < nb; ib++) {
            lk_mv_prefetch(p0, 4 * sizeof(lk_block_q8_0), ib);
            const __m256i xq = _mm256_loadu_si256((const __m256i *)(x->q + 32 * ib));
            const float xd = x->d[ib];
            LK_Q8_STEP(p0, a0);
            LK_Q8_STEP(p1, a1);
            LK_Q8_STEP(p2, a2);
            LK_Q8_STEP(p3, a3);
        }
        y[r] = lk_hsum8(a0);
        y[r + 1] = lk_hsum8(a1);
        y[r + 2] = lk_hsum8(a2);
        y[r + 3] = lk_hsum8(a3);
    }
    for (; r < r1; r++) {
        const uint8_t *p0 = (const uint8_t *)w + (size_t)r * rb;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++) {
            lk_mv_prefetch(p0, sizeof(lk_block_q8_0), ib);
            const __m256i xq = _mm256_loadu_si256((const __m256i *)(x->q + 32 * ib));
            const float xd = x->d[ib];
            LK_Q8_STEP(p0, a0);
        }
        y[r] = lk_hsum8(a0);
    }
#undef LK_Q8_STEP
}

#endif /* LK_CPU_X86_256 */
