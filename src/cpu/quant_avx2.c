/*
 * quant_avx2.c - AVX2 integer-dot matrix-vector kernels for the quantized
 * types of core/quant.h (q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k; q8_0's
 * kernel is lk_mv_q8_avx2 in matmul_avx2.c), for machines without AVX-512
 * VNNI. Compiled only under LK_CPU_X86_256; quant_dot.c holds the portable
 * kernels (the reference: it states the forms computed) and quant_x86.c the
 * AVX-512 ones.
 *
 * The weights' small unsigned codes u (0..15, 0..31 or 0..63) are spread
 * one per byte in a ymm in the element order of the activations, so the
 * block's 32 int8 activations Q load as they are stored. vpmaddubsw (u8 x
 * s8, adjacent pairs summed to int16) then vpmaddwd by 1 (pairs to int32)
 * give 8 int32 lanes per 32 elements; every step is exact: a pair is at
 * most 2 * 63 * 128 = 16128 < 2^15 (no saturation; this is why the codes
 * stay unsigned and offsets are applied separately), a lane at most 2^16,
 * so the int -> float conversion is exact too. A lane never spans two
 * scales (a block of 32 = 8 lanes, a q6_k sub-block of 16 = 4 lanes), so
 * one FMA with the lane's combined scale (weight scale x activation scale)
 * per 32 elements and a horizontal sum per row give the dot product.
 * Offsets, as in quant_x86.c:
 *   q4_0 / q5_0 (u - 8 / u - 16): in the integers, adding -sum(Q) / -2 sum(Q)
 *     to each of the block's 8 lanes (from lk_q8_act.c = -16 sum(Q), exact);
 *   q4_1 / q5_1 mins, q4_k / q5_k mins, q6_k's -32: in float, against the
 *     per-block / per-16 sums of x~ (lk_q8_act.s32 / s16).
 * Each kernel runs 2 rows of W at a time (legacy types: 4), sharing the activation side
 * (loads, offsets, scale vectors), with a 1-row tail; the row loops are
 * inlined with the row count as a constant (arrays of vectors are unrolled
 * by #pragma GCC unroll so they stay in registers).
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#if defined(LK_CPU_X86_256)

#include <immintrin.h>
#include "cpu/avx2_util.h"
#include <string.h>

/* sum over lane pairs of u * Q as 8 int32 lanes: lane i = elements 4i..4i+3. */
LK_AI __m256i dot_u8s8(__m256i u, __m256i q) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
}

/* ------------------------------------------------ legacy (32 per block) */

/* y[0..nr) = W~ . x~ for the nr (1..4) rows starting at w (row stride rb),
 * nb blocks. 4 rows share the activation side (its load, offset and scale
 * are a third of a 2-row iteration's instructions). */
LK_AI void leg_rows(leg_layout L, int nr, float *y, const uint8_t *w, size_t rb, const lk_q8_act *x,
                    int64_t nb) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float accm[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t ib = 0; ib < nb; ib++) {
        lk_mv_prefetch(w, (size_t)nr * L.bytes, ib);
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->q + 32 * ib));
        /* c = -16 sum(Q), a multiple of 16: per lane -sum(Q) (q4_0: 8 lanes x
         * -sum = -8 sum(Q)) or -2 sum(Q) (q5_0), by exact arithmetic shifts */
        const __m256i off = _mm256_srai_epi32(_mm256_set1_epi32(x->c[ib]), L.five ? 3 : 4);
        const float xd = x->d[ib];
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const uint8_t *blk = w + (size_t)i * rb + (size_t)ib * L.bytes;
            __m256i s = dot_u8s8(lk_leg_codes(L, blk), q);
            if (!L.has_m) s = _mm256_add_epi32(s, off);
            const __m256 sc = _mm256_set1_ps(_cvtsh_ss(lk_ld16(blk)) * xd);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[i]);
            if (L.has_m) accm[i] += _cvtsh_ss(lk_ld16(blk + 2)) * x->s32[ib];
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) y[i] = lk_hsum8(acc[i]) + accm[i];
}

LK_AI void mv_legacy(lk_dtype t, float *y, const uint8_t *w, const lk_q8_act *x, int64_t in, int64_t r0,
                     int64_t r1) {
    const leg_layout L = leg_of(t);
    const int64_t nb = in / 32;
    const size_t rb = (size_t)nb * L.bytes;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) leg_rows(L, 4, y + r, w + (size_t)r * rb, rb, x, nb);
    for (; r < r1; r++) leg_rows(L, 1, y + r, w + (size_t)r * rb, rb, x, nb);
}

/* ------------------------------------------------ q4_k / q5_k */

/* The 8 6-bit scales and 8 mins of a 12-byte q4_k/q5_k scales array as 8
 * bytes each (layout in core/quant.h, lk_quant_k_scale_min): with the array
 * as u32 a | b | c, bytewise
 *   sc 0..3 = a & 63, m 0..3 = b & 63,
 *   sc 4..7 = (c & 15) | (a >> 6) << 4, m 4..7 = (c >> 4) | (b >> 6) << 4. */
LK_AI void k_scales(const uint8_t *sc12, uint64_t *sc, uint64_t *m) {
    const uint32_t a = lk_ld32(sc12), b = lk_ld32(sc12 + 4), c = lk_ld32(sc12 + 8);
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
    *sc = (uint64_t)(a & 0x3f3f3f3fu) | (uint64_t)sc_hi << 32;
    *m = (uint64_t)(b & 0x3f3f3f3fu) | (uint64_t)m_hi << 32;
}

LK_AI __m256 u8x8_ps(uint64_t v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)v))); }

/* One q4_k (five = 0) or q5_k super-block (at blk) of a row against the
 * activations of super-block ib. Sub-block s (32 elements, one x block):
 * nibble s & 1 of qs[32 (s / 2) + l], so one 32-byte load of qs gives
 * sub-blocks 2j (low nibbles) and 2j + 1 (high) in element order; bit s of
 * qh[l] is bit 4 of element l of sub-block s. Float part per sub-block:
 * (d sc_s d_x) sum(u Q) - (dmin m_s) S_s, the latter for all 8 at once. */
LK_AI void k45_block(int five, const uint8_t *blk, const lk_q8_act *x, int64_t ib, __m256 *acc) {
    const size_t qs_off = five ? 48 : 16;
    uint64_t sc, m;
    k_scales(blk + 4, &sc, &m);
    const __m256 xd = _mm256_loadu_ps(x->d + 8 * ib);
    const __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(lk_ld16(blk))), u8x8_ps(sc)), xd);
    const __m256 dm = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(lk_ld16(blk + 2))), u8x8_ps(m));
    *acc = _mm256_fnmadd_ps(dm, _mm256_loadu_ps(x->s32 + 8 * ib), *acc);
    const __m256i H = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
    const int8_t *Q = x->q + 256 * ib;
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m256i u0, u1;
        lk_k45_codes(five, blk + qs_off + 32 * j, H, j, &u0, &u1);
        const __m256i p0 = dot_u8s8(u0, _mm256_loadu_si256((const __m256i *)(Q + 64 * j)));
        const __m256i p1 = dot_u8s8(u1, _mm256_loadu_si256((const __m256i *)(Q + 64 * j + 32)));
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_permutevar8x32_ps(c, _mm256_set1_epi32(2 * j)), *acc);
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_permutevar8x32_ps(c, _mm256_set1_epi32(2 * j + 1)),
                               *acc);
    }
}

LK_AI void mv_k45(int five, float *y, const uint8_t *w, const lk_q8_act *x, int64_t in, int64_t r0,
                  int64_t r1) {
    const int64_t nsb = in / 256;
    const size_t bs = five ? sizeof(lk_block_q5_k) : sizeof(lk_block_q4_k), rb = (size_t)nsb * bs;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        const uint8_t *w0 = w + (size_t)r * rb, *w1 = w0 + rb;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t ib = 0; ib < nsb; ib++) {
            lk_mv_prefetch(w0, 2 * bs, ib);
            k45_block(five, w0 + (size_t)ib * bs, x, ib, &a0);
            k45_block(five, w1 + (size_t)ib * bs, x, ib, &a1);
        }
        y[r] = lk_hsum8(a0);
        y[r + 1] = lk_hsum8(a1);
    }
    if (r < r1) {
        const uint8_t *w0 = w + (size_t)r * rb;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t ib = 0; ib < nsb; ib++) k45_block(five, w0 + (size_t)ib * bs, x, ib, &a0);
        y[r] = lk_hsum8(a0);
    }
}

/* ------------------------------------------------ q6_k */

/* One q6_k super-block (ql at 0, qh at 128, int8 scales at 192, d at 208)
 * of a row against super-block ib of x. xd2: the d of x's 8 blocks, each
 * repeated for its two 16-sub-blocks (lo: sub-blocks 0..7, hi: 8..15).
 * Codes of each half by lk_q6_codes (avx2_util.h). A 32-group's 8 lanes are
 * sub-block 2G (lanes 0-3) and 2G + 1 (4-7): one FMA with
 * [c_2G x4 | c_2G+1 x4], c_s = d sc_s d_x; the -32 against S_s in float. */
LK_AI void q6_block(const uint8_t *blk, __m256 xd_lo, __m256 xd_hi, const lk_q8_act *x, int64_t ib,
                    __m256 *acc) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(lk_ld16(blk + 208)));
    const __m128i sc = _mm_loadu_si128((const __m128i *)(blk + 192));
    const __m256 ds_lo = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
    const __m256 ds_hi = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))));
    const __m256 m32 = _mm256_set1_ps(32.0f);
    *acc = _mm256_fnmadd_ps(_mm256_mul_ps(ds_lo, m32), _mm256_loadu_ps(x->s16 + 16 * ib), *acc);
    *acc = _mm256_fnmadd_ps(_mm256_mul_ps(ds_hi, m32), _mm256_loadu_ps(x->s16 + 16 * ib + 8), *acc);
    const __m256 c[2] = {_mm256_mul_ps(ds_lo, xd_lo), _mm256_mul_ps(ds_hi, xd_hi)};
    const int8_t *Q = x->q + 256 * ib;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i u[4];
        lk_q6_codes(blk + 64 * h, blk + 128 + 32 * h, u);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const int G = 4 * h + g; /* 32-group of the super-block: sub-blocks 2G, 2G + 1 */
            const __m256i p = dot_u8s8(u[g], _mm256_loadu_si256((const __m256i *)(Q + 32 * G)));
            const int k = (2 * G) & 7;
            const __m256 cg = _mm256_permutevar8x32_ps(c[G >> 2], _mm256_setr_epi32(k, k, k, k, k + 1, k + 1, k + 1, k + 1));
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), cg, *acc);
        }
    }
}

static void mv_q6_k(float *y, const uint8_t *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1) {
    const int64_t nsb = in / 256;
    const size_t bs = sizeof(lk_block_q6_k), rb = (size_t)nsb * bs;
    const __m256i dup_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), dup_hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        const uint8_t *w0 = w + (size_t)r * rb, *w1 = w0 + rb;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t ib = 0; ib < nsb; ib++) {
            lk_mv_prefetch(w0, 2 * bs, ib);
            const __m256 xd = _mm256_loadu_ps(x->d + 8 * ib);
            const __m256 lo = _mm256_permutevar8x32_ps(xd, dup_lo), hi = _mm256_permutevar8x32_ps(xd, dup_hi);
            q6_block(w0 + (size_t)ib * bs, lo, hi, x, ib, &a0);
            q6_block(w1 + (size_t)ib * bs, lo, hi, x, ib, &a1);
        }
        y[r] = lk_hsum8(a0);
        y[r + 1] = lk_hsum8(a1);
    }
    if (r < r1) {
        const uint8_t *w0 = w + (size_t)r * rb;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t ib = 0; ib < nsb; ib++) {
            const __m256 xd = _mm256_loadu_ps(x->d + 8 * ib);
            q6_block(w0 + (size_t)ib * bs, _mm256_permutevar8x32_ps(xd, dup_lo), _mm256_permutevar8x32_ps(xd, dup_hi),
                     x, ib, &a0);
        }
        y[r] = lk_hsum8(a0);
    }
}

/* Contract of lk_mv_qdot_scalar: y[r] = W~[r] . x~ for r in [r0, r1), W of a
 * type with lk_mv_has_qdot (rows of lk_dtype_row_bytes(t, in) bytes, in a
 * multiple of the block), x quantized (in); integer sums exact, results
 * within f32 rounding of the portable kernels (summation order differs).
 * Other types leave y untouched. */
void lk_mv_qdot_avx2(lk_dtype t, float *y, const void *w, const lk_q8_act *x, int64_t in, int64_t r0,
                     int64_t r1) {
    switch (t) {
    case LK_DTYPE_Q8_0: lk_mv_q8_avx2(y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q4_0: mv_legacy(LK_DTYPE_Q4_0, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q4_1: mv_legacy(LK_DTYPE_Q4_1, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q5_0: mv_legacy(LK_DTYPE_Q5_0, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q5_1: mv_legacy(LK_DTYPE_Q5_1, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q4_K: mv_k45(0, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q5_K: mv_k45(1, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q6_K: mv_q6_k(y, w, x, in, r0, r1); break;
    default: break;
    }
}

#endif /* LK_CPU_X86_256 */
