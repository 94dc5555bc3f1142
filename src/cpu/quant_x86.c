/*
 * quant_x86.c - AVX-512 VNNI kernels for the quantized weight types of
 * core/quant.h (q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k; q8_0's kernel is
 * in matmul_x86.c): integer-dot matrix-vector products on quantized
 * activations (lk_mv_qdot_x86) and block dequantization for the packed f32
 * GEMM (lk_dequant_block_x86). Compiled only when the target has AVX-512
 * F/BW/VL/VNNI (LK_CPU_X86_512); quant_dot.c holds the portable kernels,
 * which state the forms computed here.
 *
 * Matrix-vector: the weights' small unsigned codes u (0..15, 0..31 or 0..63)
 * are spread one per byte in registers and multiplied with the int8
 * activations by vpdpbusd (u8 x s8, four products summed per dword lane).
 * A lane's sum never leaves one scale's span (a block of 32 = 8 lanes, or a
 * q6_k sub-block of 16 = 4 lanes), so converting lanes to float and one FMA
 * with the lane's combined scale (weight scale x activation scale) gives the
 * row's dot product after a final horizontal sum. Offsets:
 *   q4_0/q5_0 (u - 8 / u - 16): in the integers, the dpbusd accumulator
 *     starts at -sum(Q)/8 lanes per block (from lk_q8_act.c, exact);
 *   q4_1/q5_1 mins, q4_k/q5_k mins, q6_k's -32: in float, against the
 *     per-block / per-16 sums of x~ (lk_q8_act.s32 / s16).
 * Each kernel works on 2 rows of W at a time so the activation side (loads,
 * inserts, scale spreading) is shared, with 1-row tails.
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#if defined(LK_CPU_X86_512)

#include <immintrin.h>
#include <string.h>

#define LK_AI static inline __attribute__((always_inline))

/* Software prefetch distance (bytes ahead in each W row) of the 2-row loops;
 * 0 disables. Far ahead because a DRAM-resident W needs many lines in
 * flight per core and the hardware prefetchers keep too few: on the Xeon
 * dev VM, 7B-shape q4_k decode read 16 GB/s of weights with 512 B and
 * 23 GB/s (about the 2-thread streaming-read probe) with 8 KiB; for rows
 * shorter than that it runs into the next rows of the same stream, which
 * the loop reads next anyway. Measurements: dev/cpu/README.md (q4k.c). */
#ifndef LK_MVQ_PF
#define LK_MVQ_PF 8192
#endif
LK_AI void pf2(const uint8_t *a, const uint8_t *b) {
#if LK_MVQ_PF > 0
    _mm_prefetch((const char *)a + LK_MVQ_PF, _MM_HINT_T0);
    _mm_prefetch((const char *)b + LK_MVQ_PF, _MM_HINT_T0);
    _mm_prefetch((const char *)a + LK_MVQ_PF + 64, _MM_HINT_T0);
    _mm_prefetch((const char *)b + LK_MVQ_PF + 64, _MM_HINT_T0);
#else
    (void)a;
    (void)b;
#endif
}

LK_AI float hsum128(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
LK_AI float hsum256q(__m256 v) { return hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }


/* ------------------------------------------------ legacy (32 per block) */


/* Codes u of blocks b0, b1 as 64 bytes in element order [b0 0..31 | b1 0..31]. */
LK_AI __m512i leg_codes2(leg_layout L, const uint8_t *b0, const uint8_t *b1) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + L.qs))),
                                              _mm_loadu_si128((const __m128i *)(b1 + L.qs)), 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
    z = _mm512_and_si512(z, _mm512_set1_epi8(0x0f)); /* [lo b0, lo b1, hi b0, hi b1] */
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
    if (L.five) {
        const __mmask64 k = _cvtu64_mask64((uint64_t)lk_ld32(b0 + L.qh) | (uint64_t)lk_ld32(b1 + L.qh) << 32);
        z = _mm512_mask_add_epi8(z, k, z, _mm512_set1_epi8(16));
    }
    return z;
}

/* Activation side of blocks ib, ib+1: the 64 int8, the dpbusd start (offset
 * correction of q4_0/q5_0, else 0) and [d_ib x8 | d_ib+1 x8]. */
typedef struct leg_x2 {
    __m512i q, init;
    __m512 d;
} leg_x2;

LK_AI leg_x2 leg_xside2(leg_layout L, const lk_q8_act *x, int64_t ib) {
    leg_x2 a;
    a.q = _mm512_load_si512((const void *)(x->q + 32 * ib));
    if (L.has_m) {
        a.init = _mm512_setzero_si512();
    } else {
        /* c = -16 sum(Q): -sum(Q) per lane (q4_0, offset 8 over 8 lanes) or -2 sum(Q) (q5_0) */
        const __m512i c = _mm512_inserti64x4(_mm512_set1_epi32(x->c[ib]), _mm256_set1_epi32(x->c[ib + 1]), 1);
        a.init = _mm512_srai_epi32(c, L.five ? 3 : 4);
    }
    a.d = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(x->d[ib])),
                                              _mm256_castps_pd(_mm256_set1_ps(x->d[ib + 1])), 1));
    return a;
}

/* One row's blocks b0 = block ib, b1 = ib+1 against the activation side. */
LK_AI void leg_row2(leg_layout L, const uint8_t *b0, const uint8_t *b1, const leg_x2 *a,
                    const lk_q8_act *x, int64_t ib, __m512 *acc, __m128 *accm) {
    const __m512i pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i s = _mm512_dpbusd_epi32(a->init, leg_codes2(L, b0, b1), a->q);
    uint64_t dm = (uint64_t)lk_ld16(b0) | (uint64_t)lk_ld16(b1) << 16;
    if (L.has_m) dm |= (uint64_t)lk_ld16(b0 + 2) << 32 | (uint64_t)lk_ld16(b1 + 2) << 48;
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)dm)); /* [d0, d1, m0, m1] */
    const __m512 dw = _mm512_permutexvar_ps(pair_idx, _mm512_castps128_ps512(f));
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, a->d), *acc);
    if (L.has_m) {
        const __m128 xs = _mm_castpd_ps(_mm_load_sd((const double *)(x->s32 + ib))); /* [S0, S1, 0, 0] */
        *accm = _mm_fmadd_ps(_mm_movehl_ps(f, f), xs, *accm);
    }
}

/* Last block ib of a row with an odd block count (256-bit). */
LK_AI float leg_row1(leg_layout L, const uint8_t *b0, const lk_q8_act *x, int64_t ib) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(b0 + L.qs));
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    z = _mm256_and_si256(z, _mm256_set1_epi8(0x0f));
    if (L.five) z = _mm256_mask_add_epi8(z, _cvtu32_mask32(lk_ld32(b0 + L.qh)), z, _mm256_set1_epi8(16));
    const __m256i init = L.has_m ? _mm256_setzero_si256()
                                 : _mm256_set1_epi32(x->c[ib] / (L.five ? 8 : 16));
    const __m256i s = _mm256_dpbusd_epi32(init, z, _mm256_load_si256((const __m256i *)(x->q + 32 * ib)));
    float r = hsum256q(_mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(_cvtsh_ss(lk_ld16(b0)) * x->d[ib])));
    if (L.has_m) r += _cvtsh_ss(lk_ld16(b0 + 2)) * x->s32[ib];
    return r;
}

/* Activation side of blocks ib..ib+3 (128 values): lo = the first 16
 * values of each block, hi = the last 16 ([b0 | b1 | b2 | b3], 16 bytes
 * each), so the codes of 4 blocks need no shuffle: one 16-byte qs per block
 * gives low nibbles = elements 0..15, high nibbles = 16..31. A block's sum
 * lands in dword lanes 4k..4k+3 of both dpbusd; init carries the q4_0/q5_0
 * offset (-8 sum(Q) or -16 sum(Q) over the block's 4 lanes, from c =
 * -16 sum(Q)); d = each block's activation scale on its 4 lanes. */
typedef struct leg_x4 {
    __m512i lo, hi, init;
    __m512 d;
} leg_x4;

LK_AI __m512i spread4_idx(void) { return _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0); }

LK_AI leg_x4 leg_xside4(leg_layout L, const lk_q8_act *x, int64_t ib) {
    leg_x4 a;
    const __m512i A = _mm512_load_si512((const void *)(x->q + 32 * ib));
    const __m512i B = _mm512_load_si512((const void *)(x->q + 32 * ib + 64));
    a.lo = _mm512_shuffle_i64x2(A, B, _MM_SHUFFLE(2, 0, 2, 0));
    a.hi = _mm512_shuffle_i64x2(A, B, _MM_SHUFFLE(3, 1, 3, 1));
    a.d = _mm512_permutexvar_ps(spread4_idx(), _mm512_castps128_ps512(_mm_loadu_ps(x->d + ib)));
    if (L.has_m) {
        a.init = _mm512_setzero_si512();
    } else {
        const __m512i c = _mm512_permutexvar_epi32(spread4_idx(),
                                                   _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(x->c + ib))));
        a.init = _mm512_srai_epi32(c, L.five ? 2 : 3);
    }
    return a;
}

/* One row's blocks b, b + L.bytes, .. (4 blocks from b) against leg_xside4. */
LK_AI void leg_row4(leg_layout L, const uint8_t *b, const leg_x4 *a, const lk_q8_act *x, int64_t ib,
                    __m512 *acc, __m128 *accm) {
    const size_t bs = L.bytes;
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(b + L.qs)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(b + bs + L.qs)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(b + 2 * bs + L.qs)), 2);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(b + 3 * bs + L.qs)), 3);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i ulo = _mm512_and_si512(z, m4), uhi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
    if (L.five) {
        const uint64_t h0 = lk_ld32(b + L.qh), h1 = lk_ld32(b + bs + L.qh), h2 = lk_ld32(b + 2 * bs + L.qh),
                       h3 = lk_ld32(b + 3 * bs + L.qh);
        const uint64_t klo = (h0 & 0xffff) | (h1 & 0xffff) << 16 | (h2 & 0xffff) << 32 | (h3 & 0xffff) << 48;
        const uint64_t khi = (h0 >> 16) | (h1 >> 16) << 16 | (h2 >> 16) << 32 | (h3 >> 16) << 48;
        ulo = _mm512_mask_add_epi8(ulo, _cvtu64_mask64(klo), ulo, _mm512_set1_epi8(16));
        uhi = _mm512_mask_add_epi8(uhi, _cvtu64_mask64(khi), uhi, _mm512_set1_epi8(16));
    }
    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a->init, ulo, a->lo), uhi, a->hi);
    const uint64_t dd = (uint64_t)lk_ld16(b) | (uint64_t)lk_ld16(b + bs) << 16 | (uint64_t)lk_ld16(b + 2 * bs) << 32 |
                        (uint64_t)lk_ld16(b + 3 * bs) << 48;
    const __m512 dw = _mm512_permutexvar_ps(spread4_idx(),
                                            _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)dd))));
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, a->d), *acc);
    if (L.has_m) {
        const uint64_t mm = (uint64_t)lk_ld16(b + 2) | (uint64_t)lk_ld16(b + bs + 2) << 16 |
                            (uint64_t)lk_ld16(b + 2 * bs + 2) << 32 | (uint64_t)lk_ld16(b + 3 * bs + 2) << 48;
        *accm = _mm_fmadd_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)mm)), _mm_loadu_ps(x->s32 + ib), *accm);
    }
}

LK_AI void mv_legacy(lk_dtype t, float *y, const uint8_t *w, const lk_q8_act *x, int64_t in,
                     int64_t r0, int64_t r1) {
    const leg_layout L = leg_of(t);
    const int64_t nb = in / 32;
    const size_t rb = (size_t)nb * L.bytes;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        const uint8_t *w0 = w + (size_t)r * rb, *w1 = w0 + rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        __m128 m0 = _mm_setzero_ps(), m1 = m0;
        int64_t ib = 0;
        for (; ib + 4 <= nb; ib += 4) {
            pf2(w0 + ib * L.bytes, w1 + ib * L.bytes);
            const leg_x4 xs = leg_xside4(L, x, ib);
            leg_row4(L, w0 + ib * L.bytes, &xs, x, ib, &a0, &m0);
            leg_row4(L, w1 + ib * L.bytes, &xs, x, ib, &a1, &m1);
        }
        for (; ib + 2 <= nb; ib += 2) {
            const leg_x2 xs = leg_xside2(L, x, ib);
            leg_row2(L, w0 + ib * L.bytes, w0 + (ib + 1) * L.bytes, &xs, x, ib, &a0, &m0);
            leg_row2(L, w1 + ib * L.bytes, w1 + (ib + 1) * L.bytes, &xs, x, ib, &a1, &m1);
        }
        float t0 = 0.0f, t1 = 0.0f;
        if (ib < nb) {
            t0 = leg_row1(L, w0 + ib * L.bytes, x, ib);
            t1 = leg_row1(L, w1 + ib * L.bytes, x, ib);
        }
        y[r] = _mm512_reduce_add_ps(a0) + hsum128(m0) + t0;
        y[r + 1] = _mm512_reduce_add_ps(a1) + hsum128(m1) + t1;
    }
    for (; r < r1; r++) {
        const uint8_t *w0 = w + (size_t)r * rb;
        __m512 a0 = _mm512_setzero_ps();
        __m128 m0 = _mm_setzero_ps();
        int64_t ib = 0;
        for (; ib + 4 <= nb; ib += 4) {
            const leg_x4 xs = leg_xside4(L, x, ib);
            leg_row4(L, w0 + ib * L.bytes, &xs, x, ib, &a0, &m0);
        }
        for (; ib + 2 <= nb; ib += 2) {
            const leg_x2 xs = leg_xside2(L, x, ib);
            leg_row2(L, w0 + ib * L.bytes, w0 + (ib + 1) * L.bytes, &xs, x, ib, &a0, &m0);
        }
        float t0 = ib < nb ? leg_row1(L, w0 + ib * L.bytes, x, ib) : 0.0f;
        y[r] = _mm512_reduce_add_ps(a0) + hsum128(m0) + t0;
    }
}

/* ------------------------------------------------ q4_k / q5_k */

/* The 8 6-bit scales and 8 mins of a 12-byte q4_k/q5_k scales array as two
 * u64 of 8 bytes (layout in core/quant.h): with the array as u32 a | b | c,
 *   sc 0..3 = a & 63, m 0..3 = b & 63,
 *   sc 4..7 = (c & 15) | (a >> 6) << 4, m 4..7 = (c >> 4) | (b >> 6) << 4, bytewise. */
LK_AI void k_scales(const uint8_t *sc12, uint64_t *sc, uint64_t *m) {
    const uint32_t a = lk_ld32(sc12), b = lk_ld32(sc12 + 4), c = lk_ld32(sc12 + 8);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
    *sc = (uint64_t)sc_lo | (uint64_t)sc_hi << 32;
    *m = (uint64_t)m_lo | (uint64_t)m_hi << 32;
}

/* Activation side of super-block ib, in the order the q4_k codes come out
 * of a 64-byte load of qs: X[0] = x 0..31 | 64..95 (sub-blocks 0 | 2),
 * X[1] = 1 | 3, X[2] = 4 | 6, X[3] = 5 | 7; d/s32: the 8 sub-blocks' d and
 * sum of x~ in lanes 0..7 (8..15 zero). */
typedef struct k_x {
    __m512i X[4];
    __m512 d, s32;
} k_x;

LK_AI k_x k_xside(const lk_q8_act *x, int64_t ib) {
    k_x a;
    const int8_t *q = x->q + 256 * ib;
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const int8_t *p = q + 128 * (i >> 1) + 32 * (i & 1);
        a.X[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)p)),
                                    _mm256_load_si256((const __m256i *)(p + 64)), 1);
    }
    a.d = _mm512_maskz_loadu_ps(0xff, x->d + 8 * ib);
    a.s32 = _mm512_maskz_loadu_ps(0xff, x->s32 + 8 * ib);
    return a;
}

/* One q4_k (qh NULL) or q5_k super-block of one row. */
LK_AI void k45_row(uint16_t dh, uint16_t dminh, const uint8_t *sc12, const uint8_t *qs,
                   const uint8_t *qh, const k_x *a, __m512 *acc, __m512 *accm) {
    /* lanes 0-7 <- sub-block pair element 0, lanes 8-15 <- element 1 */
    const __m512i idx[4] = {
        _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
        _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4),
        _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5)};
    uint64_t sc, m;
    k_scales(sc12, &sc, &m);
    const __m512 scf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    const __m512 mf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m)));
    const __m512 c = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(dh)), scf), a->d);
    *accm = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(dminh)), mf), a->s32, *accm);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i u[4];
    #pragma GCC unroll 4
    for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(qs + 64 * h));
        u[2 * h] = _mm512_and_si512(v, m4);
        u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    if (qh) {
        /* bit s of qh[l] is bit 4 of sub-block s's element l */
        const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const int s0 = 4 * (i >> 1) + (i & 1); /* sub-blocks s0 | s0 + 2 */
            const __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << s0)),
                                                   _mm256_set1_epi8((char)(1 << (s0 + 2))), 1);
            u[i] = _mm512_mask_add_epi8(u[i], _mm512_test_epi8_mask(H, sel), u[i], _mm512_set1_epi8(16));
        }
    }
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[i], a->X[i]);
        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx[i], c), *acc);
    }
}

LK_AI void k45_row_at(lk_dtype t, const uint8_t *blk, const k_x *a, __m512 *acc, __m512 *accm) {
    if (t == LK_DTYPE_Q4_K) {
        const lk_block_q4_k *b = (const lk_block_q4_k *)blk;
        k45_row(b->d, b->dmin, b->scales, b->qs, NULL, a, acc, accm);
    } else {
        const lk_block_q5_k *b = (const lk_block_q5_k *)blk;
        k45_row(b->d, b->dmin, b->scales, b->qs, b->qh, a, acc, accm);
    }
}

LK_AI void mv_k45(lk_dtype t, float *y, const uint8_t *w, const lk_q8_act *x, int64_t in,
                  int64_t r0, int64_t r1) {
    const int64_t nsb = in / 256;
    const size_t bs = t == LK_DTYPE_Q4_K ? sizeof(lk_block_q4_k) : sizeof(lk_block_q5_k);
    const size_t rb = (size_t)nsb * bs;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        const uint8_t *w0 = w + (size_t)r * rb, *w1 = w0 + rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, m0 = a0, m1 = a0;
        for (int64_t ib = 0; ib < nsb; ib++) {
            pf2(w0 + ib * bs, w1 + ib * bs);
            pf2(w0 + ib * bs + 128, w1 + ib * bs + 128);
            const k_x xs = k_xside(x, ib);
            k45_row_at(t, w0 + ib * bs, &xs, &a0, &m0);
            k45_row_at(t, w1 + ib * bs, &xs, &a1, &m1);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, m0));
        y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, m1));
    }
    for (; r < r1; r++) {
        const uint8_t *w0 = w + (size_t)r * rb;
        __m512 a0 = _mm512_setzero_ps(), m0 = a0;
        for (int64_t ib = 0; ib < nsb; ib++) {
            const k_x xs = k_xside(x, ib);
            k45_row_at(t, w0 + ib * bs, &xs, &a0, &m0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, m0));
    }
}

/* ------------------------------------------------ q6_k */

/* Activation side of a q6_k super-block: 4 x 64 int8 in element order, the
 * d of each 32-block spread over its two 16-sub-blocks (16 lanes), and the
 * 16 sums of x~ over the sub-blocks. */
typedef struct q6_x {
    __m512i X[4];
    __m512 d, s16;
} q6_x;

LK_AI q6_x q6_xside(const lk_q8_act *x, int64_t ib) {
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    q6_x a;
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) a.X[i] = _mm512_load_si512((const void *)(x->q + 256 * ib + 64 * i));
    a.d = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(x->d + 8 * ib)));
    a.s16 = _mm512_loadu_ps(x->s16 + 16 * ib);
    return a;
}

/* One q6_k super-block of one row. Codes: for half h (elements 128h..),
 * the 64 bytes ql[64h..] give low nibbles = elements 0..63 and high nibbles
 * = 64..127 of the half; qh[32h + l] holds bits 4-5 of elements l, l+32,
 * l+64, l+96 at bit pairs 0, 2, 4, 6. Bits 4-5 are moved into place with
 * per-half 16-bit shifts and a 0x30 mask (a word shift moves no wanted bit
 * across the byte boundary: the mask keeps bits 4-5 of each byte, which came
 * from bits 0-5 of the same byte for shifts of at most 4). */
LK_AI void q6_row(const lk_block_q6_k *b, const q6_x *a, __m512 *acc, __m512 *acco) {
    const __m512i idx[4] = {
        _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
        _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4),
        _mm512_set_epi32(11, 11, 11, 11, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8),
        _mm512_set_epi32(15, 15, 15, 15, 14, 14, 14, 14, 13, 13, 13, 13, 12, 12, 12, 12)};
    /* element pairs (0..31 | 32..63): bits at 0 | 2 -> shift left 4 | 2;
     * (64..95 | 96..127): bits at 4 | 6 -> shift right 0 | 2 */
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512 ds = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b->d)),
                                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->scales))));
    const __m512 c = _mm512_mul_ps(ds, a->d);
    *acco = _mm512_fnmadd_ps(_mm512_mul_ps(ds, _mm512_set1_ps(32.0f)), a->s16, *acco);
    #pragma GCC unroll 4
    for (int h = 0; h < 2; h++) {
        const __m512i L = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
        const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
        const __m512i u0 = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_sllv_epi16(H, shl), m30));
        const __m512i u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                           _mm512_and_si512(_mm512_srlv_epi16(H, shr), m30));
        const __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u0, a->X[2 * h]);
        const __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u1, a->X[2 * h + 1]);
        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_permutexvar_ps(idx[2 * h], c), *acc);
        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_permutexvar_ps(idx[2 * h + 1], c), *acc);
    }
}

static void mv_q6_k(float *y, const lk_block_q6_k *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1) {
    const int64_t nsb = in / 256;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        const lk_block_q6_k *w0 = w + r * nsb, *w1 = w0 + nsb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, o0 = a0, o1 = a0;
        for (int64_t ib = 0; ib < nsb; ib++) {
            pf2((const uint8_t *)(w0 + ib), (const uint8_t *)(w1 + ib));
            pf2((const uint8_t *)(w0 + ib) + 128, (const uint8_t *)(w1 + ib) + 128);
            const q6_x xs = q6_xside(x, ib);
            q6_row(w0 + ib, &xs, &a0, &o0);
            q6_row(w1 + ib, &xs, &a1, &o1);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, o0));
        y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, o1));
    }
    for (; r < r1; r++) {
        const lk_block_q6_k *w0 = w + r * nsb;
        __m512 a0 = _mm512_setzero_ps(), o0 = a0;
        for (int64_t ib = 0; ib < nsb; ib++) {
            const q6_x xs = q6_xside(x, ib);
            q6_row(w0 + ib, &xs, &a0, &o0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, o0));
    }
}

void lk_mv_qdot_x86(lk_dtype t, float *y, const void *w, const lk_q8_act *x, int64_t in,
                    int64_t r0, int64_t r1) {
    switch (t) {
    case LK_DTYPE_Q8_0: lk_mv_q8_x86(y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q4_0: mv_legacy(LK_DTYPE_Q4_0, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q4_1: mv_legacy(LK_DTYPE_Q4_1, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q5_0: mv_legacy(LK_DTYPE_Q5_0, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q5_1: mv_legacy(LK_DTYPE_Q5_1, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q4_K: mv_k45(LK_DTYPE_Q4_K, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q5_K: mv_k45(LK_DTYPE_Q5_K, y, w, x, in, r0, r1); break;
    case LK_DTYPE_Q6_K: mv_q6_k(y, w, x, in, r0, r1); break;
    default: break;
    }
}

/* ------------------------------------------------ dequantization */

/* 16 codes (bytes) widened to f32. */
LK_AI __m512 u8x16_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

/* Same arithmetic as core/quant.c per element (scale products first, then
 * one multiply and one add/subtract, never fused). */
void lk_dequant_block_x86(lk_dtype t, const void *blk, float *dst) {
    const uint8_t *p = blk;
    const __m128i m4 = _mm_set1_epi8(0x0f);
    switch (t) {
    case LK_DTYPE_Q8_0: {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(lk_ld16(p)));
        #pragma GCC unroll 4
        for (int h = 0; h < 2; h++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(p + 2 + 16 * h));
            _mm512_storeu_ps(dst + 16 * h, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
        }
        break;
    }
    case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1: {
        const leg_layout L = leg_of(t);
        const __m128i v = _mm_loadu_si128((const __m128i *)(p + L.qs));
        __m512i q[2] = {_mm512_cvtepu8_epi32(_mm_and_si128(v, m4)),
                        _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m4))};
        const uint32_t qh = L.five ? lk_ld32(p + L.qh) : 0;
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(lk_ld16(p)));
        const __m512 m = _mm512_set1_ps(L.has_m ? _cvtsh_ss(lk_ld16(p + 2)) : 0.0f);
        const int off = L.has_m ? 0 : L.five ? 16 : 8;
        #pragma GCC unroll 4
        for (int h = 0; h < 2; h++) {
            if (L.five)
                q[h] = _mm512_mask_add_epi32(q[h], (__mmask16)(qh >> (16 * h)), q[h], _mm512_set1_epi32(16));
            __m512 f = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(q[h], _mm512_set1_epi32(off))));
            if (L.has_m) f = _mm512_add_ps(f, m);
            _mm512_storeu_ps(dst + 16 * h, f);
        }
        break;
    }
    case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: {
        const int q5 = t == LK_DTYPE_Q5_K;
        const lk_block_q4_k *b4 = blk;
        const lk_block_q5_k *b5 = blk;
        const uint8_t *qs = q5 ? b5->qs : b4->qs, *qh = q5 ? b5->qh : NULL;
        const float d = _cvtsh_ss(lk_ld16(p)), dmin = _cvtsh_ss(lk_ld16(p + 2));
        for (int s = 0; s < 8; s++) {
            uint8_t sc, mn;
            lk_quant_k_scale_min(p + 4, s, &sc, &mn);
            const __m512 ds = _mm512_set1_ps(d * (float)sc), dm = _mm512_set1_ps(dmin * (float)mn);
            #pragma GCC unroll 4
            for (int h = 0; h < 2; h++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(qs + 32 * (s >> 1) + 16 * h));
                __m128i u = _mm_and_si128(_mm_srl_epi16(v, _mm_cvtsi32_si128(4 * (s & 1))), m4);
                if (qh) {
                    const __m128i hb = _mm_loadu_si128((const __m128i *)(qh + 16 * h));
                    u = _mm_or_si128(u, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(hb, _mm_cvtsi32_si128(s)),
                                                                     _mm_set1_epi8(1)), 4));
                }
                _mm512_storeu_ps(dst + 32 * s + 16 * h, _mm512_sub_ps(_mm512_mul_ps(ds, u8x16_ps(u)), dm));
            }
        }
        break;
    }
    case LK_DTYPE_Q6_K: {
        const lk_block_q6_k *b = blk;
        const float d = _cvtsh_ss(b->d);
        for (int s = 0; s < 16; s++) {
            const int h = s >> 3, j = (s >> 1) & 3, l = 16 * (s & 1);
            const __m128i lo = _mm_loadu_si128((const __m128i *)(b->ql + 64 * h + 32 * (j & 1) + l));
            const __m128i hi = _mm_loadu_si128((const __m128i *)(b->qh + 32 * h + l));
            const __m128i u = _mm_or_si128(
                _mm_and_si128(_mm_srl_epi16(lo, _mm_cvtsi32_si128(j >= 2 ? 4 : 0)), m4),
                _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(hi, _mm_cvtsi32_si128(2 * j)), _mm_set1_epi8(3)), 4));
            const __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(u), _mm512_set1_epi32(32));
            _mm512_storeu_ps(dst + 16 * s,
                             _mm512_mul_ps(_mm512_set1_ps(d * (float)b->scales[s]), _mm512_cvtepi32_ps(q)));
        }
        break;
    }
    default: break;
    }
}

#endif /* LK_CPU_X86_512 */
