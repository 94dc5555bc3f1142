/*
 * gemm_q8_pack.h - the weight side of the integer prompt GEMMs
 * (gemm_q8_x86.c, AVX-512 VNNI; gemm_q8_avx2.c, AVX2): W's stored blocks
 * unpacked to one byte per weight code, with the scale and offset of each
 * group, for a panel of LK_QG_NR output columns x kc inputs. AVX2 + F16C
 * instructions only (both builds have them: the packing is a small share of
 * the GEMM's time); include only where LK_CPU_X86_512 or LK_CPU_X86_256
 * holds. Each GEMM then interleaves the codes for its dot instruction
 * (4 inputs of a column per dword).
 *
 * Per group of G inputs (lk_qg_group: 32; 16 for q6_k) and column,
 * w~ = s u + m, u the byte written for the weight:
 *   q8_0:        s = d; LK_QG_Q8_U8: u = q + 128 unsigned, m = -128 d (the
 *                unsigned side of vpdpbusd); LK_QG_Q8_S8: u = q as stored
 *                (signed), m = 0 (AVX2's |w| / sign trick, gemm_q8_avx2.c);
 *   q4_0 / q5_0: s = d, m = -8 d / -16 d;   q4_1 / q5_1: s = d, m = min;
 *   q4_k / q5_k: s = d sc, m = -dmin mn;    q6_k: s = d sc, m = -32 s.
 * Every other code is unsigned: 0..15, 0..31 or 0..63.
 */
#ifndef LK_CPU_GEMM_Q8_PACK_H
#define LK_CPU_GEMM_Q8_PACK_H

#include "cpu/avx2_util.h"
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#include <string.h>

/* How q8_0's codes are written (see the header). */
enum { LK_QG_Q8_U8 = 0, LK_QG_Q8_S8 = 1 };

/* Inputs per scale group of type t. */
static inline int lk_qg_group(lk_dtype t) { return t == LK_DTYPE_Q6_K ? 16 : 32; }

/* Codes of one block of type t at p into u (its elements, in order), the
 * scales and offsets of its groups into s[g * LK_QG_NR], m[g * LK_QG_NR]
 * (g = 0, or 0..7 / 0..15 for the 256-element k-quant blocks). */
LK_AI void lk_qg_block(lk_dtype t, int q8_mode, const uint8_t *p, uint8_t *u, float *s, float *m) {
    switch (t) {
    case LK_DTYPE_Q8_0: {
        const float d = _cvtsh_ss(lk_ld16(p));
        __m256i q = _mm256_loadu_si256((const __m256i *)(p + 2));
        if (q8_mode == LK_QG_Q8_U8) q = _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
        _mm256_storeu_si256((__m256i *)u, q);
        s[0] = d;
        m[0] = q8_mode == LK_QG_Q8_U8 ? -128.0f * d : 0.0f;
        break;
    }
    case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1: {
        const leg_layout L = leg_of(t);
        _mm256_storeu_si256((__m256i *)u, lk_leg_codes(L, p));
        const float d = _cvtsh_ss(lk_ld16(p));
        s[0] = d;
        m[0] = L.has_m ? _cvtsh_ss(lk_ld16(p + 2)) : (L.five ? -16.0f : -8.0f) * d;
        break;
    }
    case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: {
        const int q5 = t == LK_DTYPE_Q5_K;
        const lk_block_q4_k *b4 = (const lk_block_q4_k *)p;
        const lk_block_q5_k *b5 = (const lk_block_q5_k *)p;
        const uint8_t *qs = q5 ? b5->qs : b4->qs, *sc12 = q5 ? b5->scales : b4->scales;
        const float d = _cvtsh_ss(lk_ld16(p)), dmin = _cvtsh_ss(lk_ld16(p + 2));
        const __m256i H = q5 ? _mm256_loadu_si256((const __m256i *)b5->qh) : _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i lo, hi;
            lk_k45_codes(q5, qs + 32 * j, H, j, &lo, &hi);
            _mm256_storeu_si256((__m256i *)(u + 64 * j), lo);
            _mm256_storeu_si256((__m256i *)(u + 64 * j + 32), hi);
        }
        for (int g = 0; g < 8; g++) {
            uint8_t sc, mn;
            lk_quant_k_scale_min(sc12, g, &sc, &mn);
            s[g * LK_QG_NR] = d * (float)sc;
            m[g * LK_QG_NR] = -(dmin * (float)mn);
        }
        break;
    }
    case LK_DTYPE_Q6_K: {
        const lk_block_q6_k *b = (const lk_block_q6_k *)p;
        const float d = _cvtsh_ss(b->d);
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i c[4];
            lk_q6_codes(b->ql + 64 * h, b->qh + 32 * h, c);
            #pragma GCC unroll 4
            for (int g = 0; g < 4; g++) _mm256_storeu_si256((__m256i *)(u + 128 * h + 32 * g), c[g]);
        }
        for (int g = 0; g < 16; g++) {
            const float sg = d * (float)b->scales[g];
            s[g * LK_QG_NR] = sg;
            m[g * LK_QG_NR] = -32.0f * sg;
        }
        break;
    }
    default: break;
    }
}

/* Unpack columns [j0, j0 + nj) x inputs [k0, k0 + kc) of W (type with
 * lk_mv_has_qdot; k0, kc whole blocks, kc <= LK_QG_KC): column j's codes
 * into tmp + j LK_QG_KC (kc bytes, then zeros up to a multiple of 64), its
 * scales and offsets into column j of s, m (kc/G, LK_QG_NR) f32. Columns
 * nj..LK_QG_NR-1 get codes 0 and s = m = 0 (they add 0 to unused lanes).
 * tmp: (LK_QG_NR, LK_QG_KC) u8. */
static inline void lk_qg_unpack(const lk_tensor *w, int q8_mode, int64_t j0, int nj, int64_t k0, int64_t kc,
                                uint8_t *tmp, float *s, float *m) {
    const lk_dtype t = w->dtype;
    const int64_t in = w->ne[0], kc64 = (kc + 63) & ~(int64_t)63;
    const int be = lk_dtype_block_elems(t), G = lk_qg_group(t);
    const size_t rb = lk_dtype_row_bytes(t, in), bb = lk_dtype_block_bytes(t);
    for (int j = 0; j < LK_QG_NR; j++) {
        uint8_t *u = tmp + (size_t)j * LK_QG_KC;
        if (j >= nj) {
            memset(u, 0, (size_t)kc64);
            for (int64_t g = 0; g < kc / G; g++) s[g * LK_QG_NR + j] = m[g * LK_QG_NR + j] = 0.0f;
            continue;
        }
        const uint8_t *row = (const uint8_t *)w->data + (size_t)(j0 + j) * rb + (size_t)(k0 / be) * bb;
        for (int64_t k = 0; k < kc; k += be) {
            const int64_t g = k / G;
            lk_qg_block(t, q8_mode, row + (size_t)(k / be) * bb, u + k, s + g * LK_QG_NR + j, m + g * LK_QG_NR + j);
        }
        if (kc64 > kc) memset(u + kc, 0, (size_t)(kc64 - kc));
    }
}

#endif /* LK_CPU_GEMM_Q8_PACK_H */
