/*
 * avx2_util.h - small helpers shared by the kernels of the CPU backend that
 * use AVX2 (+F16C) instructions: the AVX2 kernels (matmul_avx2.c,
 * quant_avx2.c, gemm_q8_avx2.c) and the weight unpacking of both integer
 * GEMMs (gemm_q8_pack.h, also in the AVX-512 build). Include only where
 * LK_CPU_X86_256 or LK_CPU_X86_512 holds.
 *
 * The code helpers spread a block's small unsigned weight codes one per byte
 * of a ymm in the element order of the activations (core/quant.h layouts).
 */
#ifndef LK_CPU_AVX2_UTIL_H
#define LK_CPU_AVX2_UTIL_H

#include "cpu/cpu_internal.h"

#include <immintrin.h>

#ifndef LK_AI
#define LK_AI static inline __attribute__((always_inline))
#endif

/* Software prefetch for the matrix-vector kernels, which walk a group of R
 * consecutive rows (one contiguous range of R * rb bytes) a block column at a
 * time: step ib reads R blocks of `bs` bytes spread over the group. When rows
 * are short (a few hundred bytes: the 576..1536-wide matrices of SmolLM2 and
 * Gemma 3, and their 49k..262k-row output matrices) each row is too short a
 * stream for the hardware prefetchers, which ran Gemma 3's q8_0 output matrix
 * at 4-5 GB/s per core against 10-13 with this (dev/cpu/README.md). So the
 * group is prefetched as the one linear range it is, R * bs bytes per step,
 * LK_MV_PF_AHEAD bytes ahead. For long rows (7B shapes) the addresses run
 * ahead into the group's own later rows: useless but harmless (measured). */
#ifndef LK_MV_PF_AHEAD
#define LK_MV_PF_AHEAD 2048
#endif
LK_AI void lk_mv_prefetch(const uint8_t *group, size_t step_bytes, int64_t ib) {
#if LK_MV_PF_AHEAD > 0
    const char *p = (const char *)group + step_bytes * (size_t)ib + LK_MV_PF_AHEAD;
    for (size_t o = 0; o < step_bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
#else
    (void)group, (void)step_bytes, (void)ib;
#endif
}

/* Sum of the 8 lanes of v. */
LK_AI float lk_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 bits of h as 32 bytes: byte e = 0x10 where bit e of h is set, else 0
 * (the 5th bit of code e). Byte e takes byte e / 8 of h (vpshufb within
 * each 128-bit lane, each of which holds all 4 bytes), tests bit e % 8. */
LK_AI __m256i lk_bits_to_0x10(uint32_t h) {
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                         3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sel), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

/* Codes (0..15 or 0..31) of one legacy block (q4_0, q4_1, q5_0, q5_1) in
 * element order: low nibbles of the 16 qs bytes are elements 0..15, high
 * nibbles 16..31 (the GGUF order), plus the qh bits as 16. */
LK_AI __m256i lk_leg_codes(leg_layout L, const uint8_t *blk) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(blk + L.qs));
    __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
    if (L.five) u = _mm256_or_si256(u, lk_bits_to_0x10(lk_ld32(blk + L.qh)));
    return u;
}

/* Codes of sub-blocks 2j (*lo) and 2j + 1 (*hi) of a q4_k (five = 0) or
 * q5_k super-block, in element order: qs32 = its qs bytes 32j..32j+31
 * (low nibble: sub-block 2j, high: 2j + 1), H = its 32 qh bytes (bit s of
 * qh[l]: bit 4 of element l of sub-block s; unused for q4_k). Bit s goes to
 * bit 4 by a 16-bit shift of 4 - s (or s - 4) and the 0x10 mask, which
 * keeps only a bit that stayed inside its byte. */
LK_AI void lk_k45_codes(int five, const uint8_t *qs32, __m256i H, int j, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m10 = _mm256_set1_epi8(0x10);
    const __m256i v = _mm256_loadu_si256((const __m256i *)qs32);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (five) {
        const int s0 = 2 * j, s1 = 2 * j + 1;
        const __m256i h0 = s0 <= 4 ? _mm256_slli_epi16(H, 4 - s0) : _mm256_srli_epi16(H, s0 - 4);
        const __m256i h1 = s1 <= 4 ? _mm256_slli_epi16(H, 4 - s1) : _mm256_srli_epi16(H, s1 - 4);
        *lo = _mm256_or_si256(*lo, _mm256_and_si256(h0, m10));
        *hi = _mm256_or_si256(*hi, _mm256_and_si256(h1, m10));
    }
}

/* Codes (0..63) of half h of a q6_k super-block: u[g] = elements
 * 128 h + 32 g + l (l = 0..31) from ql = its ql bytes 64h.. and qh = its qh
 * bytes 32h... With 32-byte loads L0 = ql[0..], L1 = ql[32..], H = qh[0..]:
 *   g = 0: L0 & 15 | (H bits 0-1) << 4    g = 1: L1 & 15 | (H bits 2-3) << 2
 *   g = 2: L0 >> 4 | (H bits 4-5)         g = 3: L1 >> 4 | (H bits 6-7) >> 2
 * moved into bits 4-5 with 16-bit shifts and a 0x30 mask (the mask keeps
 * only bits that stayed inside their byte). */
LK_AI void lk_q6_codes(const uint8_t *ql, const uint8_t *qh, __m256i u[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i L0 = _mm256_loadu_si256((const __m256i *)ql);
    const __m256i L1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i H = _mm256_loadu_si256((const __m256i *)qh);
    u[0] = _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), m30));
    u[1] = _mm256_or_si256(_mm256_and_si256(L1, m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), m30));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4), _mm256_and_si256(H, m30));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(H, 2), m30));
}

#endif
