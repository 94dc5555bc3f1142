/*
 * gemm_q8_x86.c - integer prompt GEMM (n > LK_MV_MAX_N rows of x) for the
 * weight types with integer-dot kernels (lk_mv_has_qdot: q8_0, q4_0, q4_1,
 * q5_0, q5_1, q4_k, q5_k, q6_k), AVX-512 VNNI. Compiled only with
 * LK_CPU_X86_512; the portable path (matmul.c) keeps the f32 GEMM.
 *
 * x (n, in) is quantized once per call to int8 blocks of 32 (lk_q8_act rows,
 * the decode path's quantizer). W is read as stored, one panel of
 * LK_QG_NR = 16 output columns x LK_QG_KC inputs at a time, and unpacked
 * into (gemm_q8_pack.h, shared with the AVX2 GEMM)
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

#include "cpu/gemm_q8_pack.h"

#include <immintrin.h>
#include <string.h>

/* Unpack columns [j0, j0 + nj) x inputs [k0, k0 + kc) of W (k0, kc whole
 * blocks) into the panel: codes (kc64/4, 16, 4), s and m (kc/G, 16); columns
 * nj..15 get code 0 and s = m = 0. tmp: (16, LK_QG_KC) bytes. */
static void pack_qpanel(const lk_tensor *w, int64_t j0, int nj, int64_t k0, int64_t kc, uint8_t *codes,
                        float *s, float *m, uint8_t *tmp) {
    const int64_t kc64 = (kc + 63) & ~(int64_t)63;
    lk_qg_unpack(w, LK_QG_Q8_U8, j0, nj, k0, kc, tmp, s, m);
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
    const int G = lk_qg_group(w->dtype);
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
