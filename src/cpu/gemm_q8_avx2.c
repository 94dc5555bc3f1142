/*
 * gemm_q8_avx2.c - integer prompt GEMM (n > LK_MV_MAX_N rows of x) for the
 * weight types with integer-dot kernels (lk_mv_has_qdot: q8_0, q4_0, q4_1,
 * q5_0, q5_1, q4_k, q5_k, q6_k) on AVX2 + FMA + F16C machines without
 * AVX-512 (Zen 1-3, Haswell .. Alder Lake). Compiled only with
 * LK_CPU_X86_256; the AVX-512 VNNI counterpart is gemm_q8_x86.c (same
 * contract, same panels and weight unpacking: gemm_q8_pack.h), the portable
 * path (matmul.c) keeps the f32 GEMM.
 *
 * x (n, in) is quantized once per call to int8 blocks of 32 (lk_q8_act rows,
 * the decode path's quantizer). W is read as stored, one panel of
 * LK_QG_NR = 16 output columns x LK_QG_KC = 1024 inputs at a time (the
 * panels split across threads), unpacked into
 *   codes (KC/4, 16, 4) u8 (q8_0: s8): each weight's code (forms in
 *         gemm_q8_pack.h; q8_0's q as stored, signed), 4 consecutive inputs
 *         of one column per dword: a ymm holds 4 inputs x 8 columns;
 *   s, m  (KC/G, 16) f32: per group of G inputs (32; 16 for q6_k) and
 *         column, w~ = s u + m (m = 0 for q8_0);
 *   tmp   (16, KC) u8: the columns' codes before the 4-byte transpose.
 * Scratch: LK_QG_SCRATCH_FLOATS = 10 KC floats (40 KiB).
 *
 * Dot products without VNNI: vpmaddubsw (u8 x s8, adjacent pairs summed
 * with int16 saturation) against a broadcast dword of x (4 inputs of one
 * row), then vpmaddwd by 1 (pairs of int16 to int32): each int32 lane gets
 * the 4 products of its column. Exact, never saturating:
 *   - 4/5/6-bit codes u <= 15/31/63, |Q| <= 128: a vpmaddubsw pair is at
 *     most 2 * 63 * 128 = 16128, and QG_CHUNK consecutive pairs (8 for
 *     4-bit, 4 for 5-bit, 2 for 6-bit: at most 2 * chunk * umax * 128 =
 *     30720, 31744, 32256 < 2^15) are summed in int16 (vpaddw, exact)
 *     before one vpmaddwd: a 4-bit group of 32 inputs costs 8 vpmaddubsw
 *     + 8 vpaddw + 1 vpmaddwd per row and 8 columns;
 *   - q8_0: the weights q are signed, so vpmaddubsw(|q|, sign(Q, q)): |q| <=
 *     128 as u8 and Q sign(q) exact while |Q| <= 127, a pair at most
 *     2 * 128 * 127 = 32512 < 2^15; every pair goes through vpmaddwd. The
 *     quantizers write Q in [-127, 127] (|x / d| <= 127 up to rounding; a
 *     -128 needs a subnormal scale d, i.e. a block with amax < 1.5e-36,
 *     whose products then carry a weight below 2^-126).
 *   Each group's int32 sum is at most 32 * 128 * 128 = 2^19, so its f32
 *   conversion is exact too; then acc += cvt(sum) (s d_x) + m S_x (d_x the
 *   row's block scale, S_x the sum of x~ over the group: lk_q8_act d,
 *   s32/s16). y = W~ . x~ up to f32 rounding, as the AVX-512 kernel and
 *   lk_mv_qdot_scalar compute it.
 *
 * Micro-tiles, for 16 ymm registers (QG_NV, QG_MR; shared by every row of a
 * tile: one load of codes per kk step and column vector, and a product;
 * per row: one dword broadcast of x per kk step):
 *   4-bit codes: 3 rows x 16 columns: per row and 8 columns an f32
 *     accumulator and an int16 group sum (12) + 2 codes + x + product;
 *   5-bit, q6_k: 2 rows x 16 columns: per row and 8 columns an f32
 *     accumulator, an int32 group sum and an int16 chunk sum (12) + 4;
 *   q8_0: 5 rows x 8 columns, each half of the panel in turn: per row an
 *     f32 accumulator and an int32 sum (10) + codes, |codes|, x,
 *     sign(x, codes), product.
 * Measured on Zen 3 (dev-2c, one thread, n = 512, in x out 768 x 1536,
 * KC 512, best of 20 calls, two rounds, GFLOP/s): q4_0 146-148 with 3 x 16
 * against 142-145 with 6 x 8; q5_0 147-153 with 2 x 16 against 143-144
 * with 4 x 8; q6_k 112-115 either way; q8_0 105-108 with 5 x 8, 6 x 8 or
 * 2 x 16 (bound by its 2 multiplies per 32 products); OpenBLAS on
 * dequantized tiles (the previous path) about 62. Row tails: tiles of 4, 2
 * and 1 rows (each smaller than the full tile). The panel's codes (16 KiB)
 * stay in L1 while the tiles sweep every row of x over them.
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#if defined(LK_CPU_X86_256)

#include "cpu/avx2_util.h"
#include "cpu/gemm_q8_pack.h"

#include <immintrin.h>
#include <string.h>

/* Code width of type t's unpacked codes: 4, 5, 6 (unsigned) or 8 (q8_0, signed). */
static int qg_bits(lk_dtype t) {
    switch (t) {
    case LK_DTYPE_Q8_0: return 8;
    case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1: case LK_DTYPE_Q5_K: return 5;
    case LK_DTYPE_Q6_K: return 6;
    default: return 4;
    }
}

/* Per code width: kk steps (4 inputs each) whose vpmaddubsw results are
 * summed in int16 before vpmaddwd (the most that cannot overflow, see the
 * header); ymm column vectors per tile row (2: the whole 16-column panel,
 * 1: each 8-column half in turn); rows of the full tile (header). */
#define QG_CHUNK(bits) ((bits) == 4 ? 8 : (bits) == 5 ? 4 : (bits) == 6 ? 2 : 1)
#define QG_NV(bits) ((bits) == 8 ? 1 : 2)
#define QG_MR(bits) ((bits) == 8 ? 5 : (bits) == 4 ? 3 : 2)
#if LK_QG_MR < 5
#error "LK_QG_MR: the AVX2 tiles have up to 5 rows"
#endif

/* Keep v in a register here: an empty asm statement. In the fully unrolled
 * group, GCC otherwise reassociates each chain of integer adds into a tree,
 * computes a chunk's products first and spills them to the stack (measured
 * 4-23% slower by type, KC 1024, the header's 768 x 1536); rolled chunk
 * loops instead cost a register move per add (0-14% slower). */
#define QG_KEEP(v) __asm__("" : "+x"(v))

/* dst (8 vectors of 32 bytes, stride ldd bytes) = the 8 x 8 transpose of the
 * dwords of src (8 rows of stride lds bytes, 8 dwords each): vector c holds
 * dword c of every row. */
LK_AI void transpose8x8(const uint8_t *src, int64_t lds, uint8_t *dst, int64_t ldd) {
    __m256 r[8], t[8], u[8];
    #pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps((const float *)(src + i * lds));
    #pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    #pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);         /* dword 0 of 4 rows | dword 4 */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);     /* 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44); /* 2 | 6 */
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE); /* 3 | 7 */
    }
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        _mm256_store_ps((float *)(dst + ldd * c), _mm256_permute2f128_ps(u[c], u[c + 4], 0x20));
        _mm256_store_ps((float *)(dst + ldd * (c + 4)), _mm256_permute2f128_ps(u[c], u[c + 4], 0x31));
    }
}

/* y (mr, 8 nv) (+)= x~ (mr rows from xr, inputs [k0, k0 + kc)) . the 8 nv
 * panel columns starting at codes / ps / pm (whose rows keep the panel's
 * stride, 16 columns); only columns < nj are stored. bits, nv, mr:
 * compile-time constants in each inlined copy (the arrays of vectors then
 * live in registers). */
LK_AI void qtile(int mr, int nv, int bits, int64_t kc, const lk_q8_act *xr, int64_t in, int64_t k0,
                 const uint8_t *codes, const float *ps, const float *pm, float *y, int64_t ldy, int nj,
                 int accumulate) {
    const int G = bits == 6 ? 16 : 32, chunk = QG_CHUNK(bits);
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *q[LK_QG_MR];
    const float *dx[LK_QG_MR], *sx[LK_QG_MR];
    __m256 acc[LK_QG_MR][2];
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        const lk_q8_act a = lk_q8_act_row(xr, i, in);
        q[i] = a.q + k0;
        dx[i] = a.d + k0 / 32;
        sx[i] = G == 32 ? a.s32 + k0 / 32 : a.s16 + k0 / 16;
        #pragma GCC unroll 2
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
    }
    for (int64_t g = 0; g < kc / G; g++) {
        const uint8_t *cg = codes + g * G * LK_QG_NR; /* (G/4, 16, 4) */
        const int8_t *qg[LK_QG_MR];
        __m256i isum[LK_QG_MR][2];
        #pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            qg[i] = q[i] + g * G;
            #pragma GCC unroll 2
            for (int v = 0; v < nv; v++) isum[i][v] = _mm256_setzero_si256();
        }
        #pragma GCC unroll 8
        for (int c0 = 0; c0 < G / 4; c0 += chunk) {
            __m256i h[LK_QG_MR][2];
            #pragma GCC unroll 6
            for (int i = 0; i < mr; i++)
                #pragma GCC unroll 2
                for (int v = 0; v < nv; v++) h[i][v] = _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int kk = c0; kk < c0 + chunk; kk++) {
                __m256i wv[2], wu[2];
                #pragma GCC unroll 2
                for (int v = 0; v < nv; v++) {
                    wv[v] = _mm256_load_si256((const __m256i *)(cg + 4 * LK_QG_NR * kk + 32 * v));
                    wu[v] = bits == 8 ? _mm256_abs_epi8(wv[v]) : wv[v];
                }
                #pragma GCC unroll 6
                for (int i = 0; i < mr; i++) {
                    int32_t x4;
                    memcpy(&x4, qg[i] + 4 * kk, 4);
                    const __m256i xb = _mm256_set1_epi32(x4);
                    #pragma GCC unroll 2
                    for (int v = 0; v < nv; v++) {
                        const __m256i p = _mm256_maddubs_epi16(wu[v], bits == 8 ? _mm256_sign_epi8(xb, wv[v]) : xb);
                        if (bits == 8) {
                            isum[i][v] = _mm256_add_epi32(isum[i][v], _mm256_madd_epi16(p, ones));
                            QG_KEEP(isum[i][v]);
                        } else {
                            h[i][v] = _mm256_add_epi16(h[i][v], p);
                            QG_KEEP(h[i][v]);
                        }
                    }
                }
            }
            if (bits != 8) {
                #pragma GCC unroll 6
                for (int i = 0; i < mr; i++)
                    #pragma GCC unroll 2
                    for (int v = 0; v < nv; v++)
                        isum[i][v] = _mm256_add_epi32(isum[i][v], _mm256_madd_epi16(h[i][v], ones));
            }
        }
        #pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            const __m256 sv = _mm256_load_ps(ps + g * LK_QG_NR + 8 * v), mv = _mm256_load_ps(pm + g * LK_QG_NR + 8 * v);
            #pragma GCC unroll 6
            for (int i = 0; i < mr; i++) {
                const float d = G == 32 ? dx[i][g] : dx[i][g >> 1];
                acc[i][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][v]), _mm256_mul_ps(sv, _mm256_set1_ps(d)),
                                            acc[i][v]);
                if (bits != 8) acc[i][v] = _mm256_fmadd_ps(mv, _mm256_set1_ps(sx[i][g]), acc[i][v]);
            }
        }
    }
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        #pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            float *yv = y + i * ldy + 8 * v;
            const int cols = nj - 8 * v;
            if (cols >= 8) {
                if (accumulate) acc[i][v] = _mm256_add_ps(acc[i][v], _mm256_loadu_ps(yv));
                _mm256_storeu_ps(yv, acc[i][v]);
            } else if (cols > 0) {
                const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                if (accumulate) acc[i][v] = _mm256_add_ps(acc[i][v], _mm256_maskload_ps(yv, mask));
                _mm256_maskstore_ps(yv, mask, acc[i][v]);
            }
        }
}

/* Every row of x over the 8 nv columns of the packed panel at codes / ps /
 * pm: full tiles of QG_MR(bits) rows, then the remaining rows as tiles of
 * 4, 2 and 1 (each smaller than the full tile). */
LK_AI void panel_rows(int nv, int bits, int n, int64_t kc, const lk_q8_act *x, int64_t in, int64_t k0,
                      const uint8_t *codes, const float *ps, const float *pm, float *y, int64_t out, int nj,
                      int accumulate) {
    const int mr = QG_MR(bits);
    int i = 0;
    for (; i + mr <= n; i += mr) {
        const lk_q8_act xr = lk_q8_act_row(x, i, in);
        qtile(mr, nv, bits, kc, &xr, in, k0, codes, ps, pm, y + (size_t)i * out, out, nj, accumulate);
    }
    #pragma GCC unroll 3
    for (int t = 4; t >= 1; t /= 2) {
        if (t >= mr || n - i < t) continue;
        const lk_q8_act xr = lk_q8_act_row(x, i, in);
        qtile(t, nv, bits, kc, &xr, in, k0, codes, ps, pm, y + (size_t)i * out, out, nj, accumulate);
        i += t;
    }
}

/* The packed panel (nj valid columns) against every row of x: the whole
 * panel per tile (QG_NV 2), or each half of 8 columns in turn (QG_NV 1). */
LK_AI void panel_all(int bits, int n, int64_t kc, const lk_q8_act *x, int64_t in, int64_t k0, const uint8_t *codes,
                     const float *ps, const float *pm, float *y, int64_t out, int nj, int accumulate) {
    const int nv = QG_NV(bits);
    for (int h = 0; h < 2 / nv && 8 * h < nj; h++)
        panel_rows(nv, bits, n, kc, x, in, k0, codes + 32 * h, ps + 8 * h, pm + 8 * h, y + 8 * h, out, nj - 8 * h,
                   accumulate);
}

/* Integer GEMM share of thread ith: y (n, out) = W~ . x~ for this thread's
 * panels of LK_QG_NR output columns (the panels split across threads); w of
 * a type with lk_mv_has_qdot, x its n rows quantized (lk_q8_act_row layout,
 * `in` = w->ne[0], codes in [-127, 127]). scratch: LK_QG_SCRATCH_FLOATS
 * floats, 64-byte aligned. */
void lk_gemm_q8_avx2(float *y, const lk_q8_act *x, const lk_tensor *w, int n, int ith, int nth,
                     float *scratch) {
    const int64_t in = w->ne[0], out = w->ne[1];
    const int bits = qg_bits(w->dtype);
    int64_t p0, p1;
    lk_split((out + LK_QG_NR - 1) / LK_QG_NR, 1, ith, nth, &p0, &p1);
    /* scratch: codes (KC/4, 16, 4) | s (KC/16, 16) | m (KC/16, 16) | tmp (16, KC) bytes */
    uint8_t *codes = (uint8_t *)scratch;
    float *ps = scratch + LK_QG_KC * LK_QG_NR / 4, *pm = ps + LK_QG_KC * LK_QG_NR / 16;
    uint8_t *tmp = (uint8_t *)(pm + LK_QG_KC * LK_QG_NR / 16);
    for (int64_t p = p0; p < p1; p++) {
        const int64_t j0 = p * LK_QG_NR;
        const int nj = (int)LK_MIN((int64_t)LK_QG_NR, out - j0);
        for (int64_t k0 = 0; k0 < in; k0 += LK_QG_KC) {
            const int64_t kc = LK_MIN((int64_t)LK_QG_KC, in - k0);
            lk_qg_unpack(w, LK_QG_Q8_S8, j0, nj, k0, kc, tmp, ps, pm);
            /* (16 columns, kc/4 dwords) -> (kc/4 dwords, 16 columns), 8 x 8 at a time */
            for (int64_t k = 0; k < kc; k += 32)
                for (int h = 0; h < 2; h++)
                    transpose8x8(tmp + 8 * h * LK_QG_KC + k, LK_QG_KC, codes + k * LK_QG_NR + 32 * h, 4 * LK_QG_NR);
            float *yp = y + j0;
            const int accum = k0 > 0;
            switch (bits) {
            case 4: panel_all(4, n, kc, x, in, k0, codes, ps, pm, yp, out, nj, accum); break;
            case 5: panel_all(5, n, kc, x, in, k0, codes, ps, pm, yp, out, nj, accum); break;
            case 6: panel_all(6, n, kc, x, in, k0, codes, ps, pm, yp, out, nj, accum); break;
            default: panel_all(8, n, kc, x, in, k0, codes, ps, pm, yp, out, nj, accum); break;
            }
        }
    }
}

#endif /* LK_CPU_X86_256 */
