/*
 * gemm_q8_x86.c - integer prompt GEMM (n > LK_MV_MAX_N rows of x) for the
 * weight types with integer-dot kernels (lk_mv_has_qdot: q8_0, q4_0, q4_1,
 * q5_0, q5_1, q4_k, q5_k, q6_k), AVX-512 VNNI. Compiled only with
 * LK_CPU_X86_512; the portable path (matmul.c) keeps the f32 GEMM.
 *
 * x (n, in) is quantized once per call to int8 blocks of 32 (lk_q8_act rows,
 * the decode path's quantizer). W is read as stored, one panel of
 * LK_QG_NR = 16 output columns x LK_QG_KC inputs at a time, and unpacked
 * into
 *   codes (KC/4, 16, 4) u8: the unsigned code u of each weight, 4 consecutive
 *         inputs of one column per dword, so one zmm holds 4 inputs x 16
 *         columns and vpdpbusd against a broadcast dword of x (4 inputs of
 *         one row) adds those 4 products to each column's lane;
 *   s, m  (KC/G, 16) f32: per group of G inputs (G = 32; 16 for q6_k) and
 *         column, w~ = s u + m (q8_0: u = q + 128, m = -128 d; q4_0 / q5_0:
 *         m = -8 d / -16 d; q4_1 / q5_1: s = d, m = min; q4_k / q5_k: s = d
 *         sc, m = -dmin mn; q6_k: s = d sc, m = -32 s).
 * The micro-kernel keeps LK_QG_MR rows x 16 columns: per group it sums
 * u Q exactly in int32 lanes (|sum| <= 255 * 128 * 32 < 2^24, so the
 * conversion to f32 is exact), then acc += cvt(sum) (s d_x) + m S_x with
 * d_x the row's block scale and S_x the sum of x~ over the group
 * (lk_q8_act d, s32/s16). So y = W~ . x~ up to f32 rounding, as in the
 * matrix-vector kernels (matmul.c states the error bound of x~).
 * Instruction count per group of 32 and row: 8 vpdpbusd (512 MACs) + 4,
 * against 32 FMAs for the same MACs in the f32 GEMM.
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#if defined(LK_CPU_X86_512)

#include <immintrin.h>
#include <string.h>

#define LK_AI static inline __attribute__((always_inline))


/* Inputs per scale group of type t. */
static int qg_group(lk_dtype t) { return t == LK_DTYPE_Q6_K ? 16 : 32; }

/* Codes of one block of type t at p into u (its elements, in order), the
 * scales and offsets of its groups into s[g * LK_QG_NR], m[g * LK_QG_NR]. */
LK_AI void block_codes(lk_dtype t, const uint8_t *p, uint8_t *u, float *s, float *m) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    switch (t) {
    case LK_DTYPE_Q8_0: {
        const float d = _cvtsh_ss(lk_ld16(p));
        _mm256_storeu_si256((__m256i *)u, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 2)),
                                                           _mm256_set1_epi8((char)0x80)));
        s[0] = d;
        m[0] = -128.0f * d;
        break;
    }
    case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1: {
        const int has_m = t == LK_DTYPE_Q4_1 || t == LK_DTYPE_Q5_1;
        const int five = t == LK_DTYPE_Q5_0 || t == LK_DTYPE_Q5_1;
        const int qh = has_m ? 4 : 2, qs = qh + (five ? 4 : 0);
        const __m128i v = _mm_loadu_si128((const __m128i *)(p + qs));
        __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
        z = _mm256_and_si256(z, m4); /* low nibbles = elements 0..15, high = 16..31 */
        if (five) z = _mm256_mask_add_epi8(z, _cvtu32_mask32(lk_ld32(p + qh)), z, _mm256_set1_epi8(16));
        _mm256_storeu_si256((__m256i *)u, z);
        const float d = _cvtsh_ss(lk_ld16(p));
        s[0] = d;
        m[0] = has_m ? _cvtsh_ss(lk_ld16(p + 2)) : (five ? -16.0f : -8.0f) * d;
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
            /* qs[32 j + l]: low nibble = element l of sub-block 2j, high = of 2j + 1 */
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (q5) {
                const __m256i sixteen = _mm256_set1_epi8(16);
                lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(H, _mm256_set1_epi8((char)(1 << (2 * j)))), lo, sixteen);
                hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(H, _mm256_set1_epi8((char)(1 << (2 * j + 1)))), hi, sixteen);
            }
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
            const __m256i H = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            #pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                /* element 128 h + 32 j + l: nibble (j >= 2) of ql[64 h + 32 (j & 1) + l],
                 * bits 2j..2j+1 of qh[32 h + l] as bits 4-5 (16-bit shifts: the
                 * masks keep only bits that stayed in their byte) */
                const __m256i L = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (j & 1)));
                const __m256i nib = _mm256_and_si256(j >= 2 ? _mm256_srli_epi16(L, 4) : L, m4);
                const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2 * j), _mm256_set1_epi8(3)), 4);
                _mm256_storeu_si256((__m256i *)(u + 128 * h + 32 * j), _mm256_or_si256(nib, hb));
            }
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

/* Unpack columns [j0, j0 + nj) x inputs [k0, k0 + kc) of W (k0, kc whole
 * blocks) into the panel: codes (kc64/4, 16, 4), s and m (kc/G, 16); columns
 * nj..15 get code 0 and s = m = 0. tmp: (16, LK_QG_KC) bytes. */
static void pack_qpanel(const lk_tensor *w, int64_t j0, int nj, int64_t k0, int64_t kc, uint8_t *codes,
                        float *s, float *m, uint8_t *tmp) {
    const lk_dtype t = w->dtype;
    const int64_t in = w->ne[0], kc64 = (kc + 63) & ~(int64_t)63;
    const int be = lk_dtype_block_elems(t), G = qg_group(t);
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
            block_codes(t, row + (size_t)(k / be) * bb, u + k, s + g * LK_QG_NR + j, m + g * LK_QG_NR + j);
        }
        if (kc64 > kc) memset(u + kc, 0, (size_t)(kc64 - kc));
    }
    /* (16 columns, kc64/4 dwords) -> (kc64/4 dwords, 16 columns) */
    for (int64_t k = 0; k < kc64; k += 64)
        lk_transpose16_x86((const float *)(tmp + k), LK_QG_KC / 4, (float *)(codes + k * LK_QG_NR), LK_QG_NR);
}

/* y (mr, 16) (+)= x~ (mr rows from xr, inputs [k0, k0 + kc)) . W~ panel.
 * G is the group size (32 or 16); mr and G are compile-time constants in
 * each inlined copy, so the accumulators stay in registers. */
LK_AI void qukernel(int mr, int G, int64_t kc, const lk_q8_act *xr, int64_t in, int64_t k0,
                    const uint8_t *codes, const float *ps, const float *pm, float *y, int64_t ldy,
                    __mmask16 mask, int accumulate) {
    const int8_t *q[LK_QG_MR];
    const float *dx[LK_QG_MR], *sx[LK_QG_MR];
    __m512 acc[LK_QG_MR];
    #pragma GCC unroll 16
    for (int i = 0; i < LK_QG_MR; i++) {
        if (i < mr) {
            const lk_q8_act a = lk_q8_act_row(xr, i, in);
            q[i] = a.q + k0;
            dx[i] = a.d + k0 / 32;
            sx[i] = G == 32 ? a.s32 + k0 / 32 : a.s16 + k0 / 16;
            acc[i] = _mm512_setzero_ps();
        }
    }
    for (int64_t g = 0; g < kc / G; g++) {
        __m512i is[LK_QG_MR];
        #pragma GCC unroll 16
        for (int i = 0; i < LK_QG_MR; i++)
            if (i < mr) is[i] = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int kk = 0; kk < G / 4; kk++) {
            const __m512i wv = _mm512_load_si512((const void *)(codes + (g * (G / 4) + kk) * 64));
            #pragma GCC unroll 16
            for (int i = 0; i < LK_QG_MR; i++) {
                if (i < mr) {
                    int32_t xv;
                    memcpy(&xv, q[i] + g * G + 4 * kk, 4);
                    is[i] = _mm512_dpbusd_epi32(is[i], wv, _mm512_set1_epi32(xv));
                }
            }
        }
        const __m512 sv = _mm512_load_ps(ps + g * LK_QG_NR), mv = _mm512_load_ps(pm + g * LK_QG_NR);
        #pragma GCC unroll 16
        for (int i = 0; i < LK_QG_MR; i++) {
            if (i < mr) {
                const float d = G == 32 ? dx[i][g] : dx[i][g >> 1];
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[i]), _mm512_mul_ps(sv, _mm512_set1_ps(d)), acc[i]);
                acc[i] = _mm512_fmadd_ps(mv, _mm512_set1_ps(sx[i][g]), acc[i]);
            }
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < LK_QG_MR; i++) {
        if (i < mr) {
            float *yi = y + i * ldy;
            if (accumulate) acc[i] = _mm512_add_ps(acc[i], _mm512_maskz_loadu_ps(mask, yi));
            _mm512_mask_storeu_ps(yi, mask, acc[i]);
        }
    }
}

/* Every row of x over one packed panel: full LK_QG_MR tiles, then the tail. */
LK_AI void panel_rows(int G, int n, int64_t kc, const lk_q8_act *x, int64_t in, int64_t k0,
                      const uint8_t *codes, const float *ps, const float *pm, float *y, int64_t out,
                      __mmask16 mask, int accumulate) {
    int i = 0;
    for (; i + LK_QG_MR <= n; i += LK_QG_MR) {
        const lk_q8_act xr = lk_q8_act_row(x, i, in);
        qukernel(LK_QG_MR, G, kc, &xr, in, k0, codes, ps, pm, y + (size_t)i * out, out, mask, accumulate);
    }
    if (i == n) return;
    const lk_q8_act xr = lk_q8_act_row(x, i, in);
    float *yi = y + (size_t)i * out;
    switch (n - i) {
#define LK_QUK(M) case M: qukernel(M, G, kc, &xr, in, k0, codes, ps, pm, yi, out, mask, accumulate); break;
    LK_QUK(1) LK_QUK(2) LK_QUK(3) LK_QUK(4) LK_QUK(5) LK_QUK(6) LK_QUK(7)
#if LK_QG_MR > 8
    LK_QUK(8) LK_QUK(9) LK_QUK(10) LK_QUK(11)
#endif
#if LK_QG_MR > 12
    LK_QUK(12) LK_QUK(13)
#endif
#undef LK_QUK
    default: break;
    }
}

void lk_gemm_q8_x86(float *y, const lk_q8_act *x, const lk_tensor *w, int n, int ith, int nth,
                    float *scratch) {
    const int64_t in = w->ne[0], out = w->ne[1];
    const int64_t npanel = (out + LK_QG_NR - 1) / LK_QG_NR;
    const int G = qg_group(w->dtype);
    int64_t p0, p1;
    lk_split(npanel, 1, ith, nth, &p0, &p1);
    /* scratch: codes (KC/4, 16, 4) | s (KC/16, 16) | m (KC/16, 16) | tmp (16, KC) bytes */
    uint8_t *codes = (uint8_t *)scratch;
    float *ps = scratch + LK_QG_KC * LK_QG_NR / 4;
    float *pm = ps + LK_QG_KC;
    uint8_t *tmp = (uint8_t *)(pm + LK_QG_KC);
    for (int64_t p = p0; p < p1; p++) {
        const int64_t j0 = p * LK_QG_NR;
        const int nj = (int)LK_MIN((int64_t)LK_QG_NR, out - j0);
        const __mmask16 mask = (__mmask16)(nj >= 16 ? 0xFFFF : (1u << nj) - 1);
        for (int64_t k0 = 0; k0 < in; k0 += LK_QG_KC) {
            const int64_t kc = LK_MIN((int64_t)LK_QG_KC, in - k0);
            pack_qpanel(w, j0, nj, k0, kc, codes, ps, pm, tmp);
            if (G == 32) panel_rows(32, n, kc, x, in, k0, codes, ps, pm, y + j0, out, mask, k0 > 0);
            else panel_rows(16, n, kc, x, in, k0, codes, ps, pm, y + j0, out, mask, k0 > 0);
        }
    }
}

#endif /* LK_CPU_X86_512 */
