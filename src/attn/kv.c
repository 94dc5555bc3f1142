/*
 * kv.c - the kernels that read the KV cache's typed rows (f32, f16, bf16,
 * q8_0; the cache itself is kv_cache.c) directly: scores of query rows
 * against key rows, dot products and axpy with single rows, weighted sums
 * of value rows, the fused dense decode block and the gathered attend of
 * selected rows (lk_gather_attend).
 *
 * Two paths for every type, chosen at run time by the rows' `portable` flag:
 *   SIMD (compiled when the target has AVX-512 F/BW/VL, i.e. -march=native
 *   on such a CPU, the same gate as src/cpu/quant_x86.c): rows widened to
 *   f32 in registers: f16 by F16C (vcvtph2ps), bf16 by a 16-bit shift, q8_0
 *   by int8 -> int32 -> f32 times the block scale; the bulk key scores of
 *   bf16 rows use AVX-512 BF16 (vdpbf16ps) where the target has it, with
 *   the query split into two bf16 parts (hi + lo) so that only the stored
 *   key is rounded (the query keeps ~16 bits);
 *   SIMD (AVX2 + FMA + F16C without AVX-512, e.g. AMD Zen 3): the same
 *   widening 8 values at a time, in kv_avx2.c (kv_simd.h), register-blocked
 *   over the query rows of a GQA group;
 *   portable C: each row decoded to floats (lk_row_decode), then the f32
 *   vector-extension kernels of kernels.c.
 * tests/test_attn.c checks both against a double-precision reference and
 * against each other.
 */
#include "attn/attn.h"
#include "attn/kv_simd.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LK_KV_X86 1
#include <immintrin.h>

#include "cpu/simd512.h"
#endif

/* ------------------------------------------------------ SIMD (x86) */

#if defined(LK_KV_X86)
#define LK_AI static inline __attribute__((always_inline))

/* Values c .. c+15 of a row of type T with n values (mask m for a tail),
 * widened to f32; q8_0's codes start after nb scales. */
LK_AI __m512 load16(const loki_kv_type T, const uint8_t *row, int c, int nb, __mmask16 m) {
    switch (T) {
    case LOKI_KV_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * c));
    case LOKI_KV_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * c)), 16));
    case LOKI_KV_Q8_0: {
        __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, row + 2 * nb + c)));
        uint16_t h;
        memcpy(&h, row + 2 * (c / 32), 2);
        return _mm512_mul_ps(x, _mm512_cvtph_ps(_mm256_set1_epi16((short)h)));
    }
    default: return _mm512_maskz_loadu_ps(m, row + 4 * c);
    }
}

LK_AI __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

/* Σ row · q as a vector (lanes to be summed). */
LK_AI __m512 dotv(const loki_kv_type T, const uint8_t *row, const float *q, int n) {
    const int nb = (n + 31) / 32;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= n; c += 32) {
        acc0 = _mm512_fmadd_ps(load16(T, row, c, nb, 0xFFFF), _mm512_loadu_ps(q + c), acc0);
        acc1 = _mm512_fmadd_ps(load16(T, row, c + 16, nb, 0xFFFF), _mm512_loadu_ps(q + c + 16), acc1);
    }
    for (; c < n; c += 16) {
        __mmask16 m = tail_mask(n - c);
        acc0 = _mm512_fmadd_ps(load16(T, row, c, nb, m), _mm512_maskz_loadu_ps(m, q + c), acc0);
    }
    return _mm512_add_ps(acc0, acc1);
}

/* Software prefetch distance of the streamed key and value rows, in bytes
 * ahead of the row being read (0: none). On the AVX-512 Xeon of
 * docs/RESULTS.md the hardware prefetchers keep too few lines in flight for
 * two cores to reach the DRAM bandwidth (as for the q4_k matvec,
 * dev/cpu/README.md): the dense decode step at 64k read 20-25% faster with
 * prefetch 2-16 KiB ahead than without (`make gqa` there). */
#ifndef LK_KV_PF
#define LK_KV_PF 4096
#endif

/* The loops over the rows and vectors of a tile must be unrolled for its
 * accumulators to stay in registers (gcc keeps them in a stack array
 * otherwise, a load and a store per FMA). */
#define LK_UNROLL _Pragma("GCC unroll 16")

/* Lines of the `bytes` bytes at p, into L1. Prefetches past the end of the
 * cache are harmless (they never fault). */
LK_AI void prefetch_bytes(const uint8_t *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* a[m][i] = the dot products of rows r[0..3] (n values of type T, nb
 * q8_0 blocks) with query rows m < MR (Q, ldq floats apart), in 16-lane
 * partial sums: each key chunk is widened once for all MR rows. */
LK_AI void dot4_rows(const loki_kv_type T, const uint8_t *const r[4], int n, const float *Q, int ldq, const int MR,
                     __m512 a[4][4]) {
    const int nb = (n + 31) / 32;
    LK_UNROLL
    for (int m = 0; m < MR; m++)
        LK_UNROLL
        for (int i = 0; i < 4; i++) a[m][i] = _mm512_setzero_ps();
    for (int c = 0; c < n; c += 16) {
        const __mmask16 mk = tail_mask(n - c);
        const __m512 k0 = load16(T, r[0], c, nb, mk), k1 = load16(T, r[1], c, nb, mk), k2 = load16(T, r[2], c, nb, mk),
                     k3 = load16(T, r[3], c, nb, mk);
        LK_UNROLL
        for (int m = 0; m < MR; m++) {
            const __m512 q = _mm512_maskz_loadu_ps(mk, Q + (size_t)m * ldq + c);
            a[m][0] = _mm512_fmadd_ps(k0, q, a[m][0]);
            a[m][1] = _mm512_fmadd_ps(k1, q, a[m][1]);
            a[m][2] = _mm512_fmadd_ps(k2, q, a[m][2]);
            a[m][3] = _mm512_fmadd_ps(k3, q, a[m][3]);
        }
    }
}

/* Scores of MR (1..4) query rows against keys s0 .. s1-1, four keys a time:
 * each 16-value chunk of a key is widened once and multiplied into the MR
 * rows' accumulators (4·MR zmm: 16 for MR = 4, enough independent FMA
 * chains for two FMA ports), so a GQA group of 4 costs one widening per
 * key chunk instead of four, and no widened copy goes through memory. pf:
 * prefetch the keys LK_KV_PF bytes ahead (the first tile over a block). */
LK_AI void scores_tile(const loki_kv_type T, const lk_rows *K, int32_t s0, int32_t s1, const float *Q, int ldq,
                       const int MR, float scale, float *out, int32_t ldo, bool pf, __m128 *mxv) {
    const int n = K->n;
    const __m128 sc = _mm_set1_ps(scale);
    int32_t s = s0;
    for (; s + 4 <= s1; s += 4) {
        const uint8_t *r0 = lk_row(K, s);
        const uint8_t *const rows[4] = {r0, r0 + K->stride, r0 + 2 * K->stride, r0 + 3 * K->stride};
        if (LK_KV_PF && pf) prefetch_bytes(r0 + LK_KV_PF, 4 * K->stride);
        __m512 a[4][4];
        dot4_rows(T, rows, n, Q, ldq, MR, a);
        LK_UNROLL
        for (int m = 0; m < MR; m++)
        {
            const __m128 r = _mm_mul_ps(lk_hsum4_512(a[m][0], a[m][1], a[m][2], a[m][3]), sc);
            if (mxv) mxv[m] = _mm_max_ps(mxv[m], r);
            _mm_storeu_ps(out + (size_t)m * ldo + s, r);
        }
    }
    for (; s < s1; s++)
        LK_UNROLL
        for (int m = 0; m < MR; m++) {
            const float r = _mm512_reduce_add_ps(dotv(T, lk_row(K, s), Q + (size_t)m * ldq, n)) * scale;
            if (mxv) mxv[m] = _mm_max_ps(mxv[m], _mm_set1_ps(r));
            out[(size_t)m * ldo + s] = r;
        }
}

/* Keys per block of scores_t: the block (16 KiB of f16 rows at D = 128)
 * stays in L1 for the further row tiles of a group of more than 4. */
enum { SCORE_BLOCK = 64 };

/* All M query rows against keys 0 .. S-1: blocks of SCORE_BLOCK keys, in
 * each block the rows in tiles of 4 (then 2, 1). */
LK_AI void scores_t(const loki_kv_type T, const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale,
                    float *out, int32_t ldo, __m128 *mxv) {
    for (int32_t b0 = 0; b0 < S; b0 += SCORE_BLOCK) {
        const int32_t b1 = LK_MIN(S, b0 + SCORE_BLOCK);
        int m = 0;
        bool pf = true;
        for (; m + 4 <= M; m += 4, pf = false)
            scores_tile(T, K, b0, b1, Q + (size_t)m * ldq, ldq, 4, scale, out + (size_t)m * ldo, ldo, pf, mxv ? mxv + m : NULL);
        if (M - m >= 2) {
            scores_tile(T, K, b0, b1, Q + (size_t)m * ldq, ldq, 2, scale, out + (size_t)m * ldo, ldo, pf, mxv ? mxv + m : NULL);
            m += 2, pf = false;
        }
        if (m < M) scores_tile(T, K, b0, b1, Q + (size_t)m * ldq, ldq, 1, scale, out + (size_t)m * ldo, ldo, pf, mxv ? mxv + m : NULL);
    }
}

#if defined(__AVX512BF16__)
/* bf16 keys by vdpbf16ps: q = hi + lo, both bf16 (padded with zeros to
 * whole 32-value chunks), two dot-product instructions per 32 values. */
enum { BF_MAXQ = 4096 }; /* bf16 values of hi + lo per call held on the stack */

LK_AI __m512 dotv_bf(const uint8_t *row, const __m512bh *qh, const __m512bh *ql, int n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int c = 0, j = 0;
    for (; c + 32 <= n; c += 32, j++) {
        __m512bh k = (__m512bh)_mm512_loadu_si512(row + 2 * c);
        acc0 = _mm512_dpbf16_ps(acc0, k, qh[j]);
        acc1 = _mm512_dpbf16_ps(acc1, k, ql[j]);
    }
    if (c < n) {
        __mmask32 m = (__mmask32)((1ull << (n - c)) - 1);
        __m512bh k = (__m512bh)_mm512_maskz_loadu_epi16(m, row + 2 * c);
        acc0 = _mm512_dpbf16_ps(acc0, k, qh[j]);
        acc1 = _mm512_dpbf16_ps(acc1, k, ql[j]);
    }
    return _mm512_add_ps(acc0, acc1);
}

/* false when the query does not fit the stack buffer (caller falls back) */
static bool scores_bf16_dp(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                           int32_t ldo) {
    const int n = K->n, nc = (n + 31) / 32;
    if ((size_t)M * nc * 64 > BF_MAXQ) return false;
    __m512bh qh[BF_MAXQ / 64], ql[BF_MAXQ / 64];
    for (int m = 0; m < M; m++)
        for (int j = 0; j < nc; j++) {
            const int c = 32 * j;
            __mmask16 m0 = tail_mask(n - c), m1 = n - c > 16 ? tail_mask(n - c - 16) : 0;
            __m512 a = _mm512_maskz_loadu_ps(m0, Q + (size_t)m * ldq + c);
            __m512 b = _mm512_maskz_loadu_ps(m1, Q + (size_t)m * ldq + c + 16);
            __m512bh h = _mm512_cvtne2ps_pbh(b, a); /* a in the low half */
            __m512 ah = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256((__m512i)h)), 16));
            __m512 bh = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64((__m512i)h, 1)), 16));
            qh[m * nc + j] = h;
            ql[m * nc + j] = _mm512_cvtne2ps_pbh(_mm512_sub_ps(b, bh), _mm512_sub_ps(a, ah));
        }
    const __m128 sc = _mm_set1_ps(scale);
    int32_t s = 0;
    for (; s + 4 <= S; s += 4) {
        const uint8_t *k0 = lk_row(K, s), *k1 = lk_row(K, s + 1), *k2 = lk_row(K, s + 2), *k3 = lk_row(K, s + 3);
        for (int m = 0; m < M; m++) {
            const __m512bh *h = qh + m * nc, *l = ql + m * nc;
            __m128 r = lk_hsum4_512(dotv_bf(k0, h, l, n), dotv_bf(k1, h, l, n), dotv_bf(k2, h, l, n), dotv_bf(k3, h, l, n));
            _mm_storeu_ps(out + (size_t)m * ldo + s, _mm_mul_ps(r, sc));
        }
    }
    for (; s < S; s++)
        for (int m = 0; m < M; m++)
            out[(size_t)m * ldo + s] = _mm512_reduce_add_ps(dotv_bf(lk_row(K, s), qh + m * nc, ql + m * nc, n)) * scale;
    return true;
}
#endif

/* out[m][c0 .. c0+16·NV) += Σ_j w[m][j] · V[pos[j]][c0 ..] for m < MR
 * (1..4), j in [j0, j1) (pos NULL: row j); the last vector masked by mk
 * (a tail of D). MR x NV accumulators (4 x 4 or 2 x 8: 16 zmm); each value
 * chunk is widened once for all MR rows. pf: prefetch the rows ahead (the
 * first tile of a block): LK_KV_PF bytes ahead for contiguous rows, pf_rows
 * rows ahead in pos for gathered ones. */
LK_AI void wtile(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, const int MR, const int32_t *pos,
                 int32_t j0, int32_t j1, int32_t n, const lk_rows *V, int c0, const int NV, __mmask16 mk, bool pf) {
    const int nb = (V->n + 31) / 32;
    const int32_t pf_rows = (int32_t)LK_MAX((size_t)1, (size_t)LK_KV_PF / V->stride);
    __m512 o[4][8];
    LK_UNROLL
    for (int m = 0; m < MR; m++)
        LK_UNROLL
        for (int v = 0; v < NV; v++)
            o[m][v] = _mm512_maskz_loadu_ps(v == NV - 1 ? mk : 0xFFFF, out + (size_t)m * ldo + c0 + 16 * v);
    for (int32_t j = j0; j < j1; j++) {
        const uint8_t *row = lk_row(V, pos ? pos[j] : j);
        if (LK_KV_PF && pf) {
            if (!pos) prefetch_bytes(row + LK_KV_PF, V->stride);
            else if (j + pf_rows < n) prefetch_bytes(lk_row(V, pos[j + pf_rows]), V->stride);
        }
        __m512 x[8];
        LK_UNROLL
        for (int v = 0; v < NV; v++) x[v] = load16(T, row, c0 + 16 * v, nb, v == NV - 1 ? mk : 0xFFFF);
        LK_UNROLL
        for (int m = 0; m < MR; m++) {
            const __m512 wm = _mm512_set1_ps(w[(size_t)m * ldw + j]);
            LK_UNROLL
            for (int v = 0; v < NV; v++) o[m][v] = _mm512_fmadd_ps(wm, x[v], o[m][v]);
        }
    }
    LK_UNROLL
    for (int m = 0; m < MR; m++)
        LK_UNROLL
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(out + (size_t)m * ldo + c0 + 16 * v, v == NV - 1 ? mk : 0xFFFF, o[m][v]);
}

/* Rows m0 .. m0+MR-1 over value rows [j0, j1), all D columns: tiles of NV
 * vectors, then single vectors, the last one masked. */
LK_AI void wrows(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, const int MR, const int32_t *pos,
                 int32_t j0, int32_t j1, int32_t n, const lk_rows *V, bool pf) {
    const int D = V->n, NV = MR > 2 ? 4 : 8;
    int c0 = 0;
    for (; c0 + 16 * NV <= D; c0 += 16 * NV, pf = false)
        wtile(T, out, ldo, w, ldw, MR, pos, j0, j1, n, V, c0, NV, 0xFFFF, pf);
    for (; c0 < D; c0 += 16, pf = false)
        wtile(T, out, ldo, w, ldw, MR, pos, j0, j1, n, V, c0, 1, tail_mask(D - c0), pf);
}

/* Value rows per block of the weighted sums: each block is walked once per
 * tile of columns and rows, so it must stay in L1 (16 rows of D = 128 f16
 * are 4 KiB), while the accumulators are loaded and stored once per tile
 * and block. */
enum { WEIGHT_BLOCK = 16 };

/* wrows over all M rows of weights, four at a time, then two, then one;
 * the first call prefetches the next rows. */
LK_AI void wrows_all(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos,
                     int32_t b0, int32_t b1, int32_t n, const lk_rows *V) {
    int m = 0;
    bool pf = true;
    for (; m + 4 <= M; m += 4, pf = false)
        wrows(T, out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 4, pos, b0, b1, n, V, pf);
    if (M - m >= 2) {
        wrows(T, out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 2, pos, b0, b1, n, V, pf);
        m += 2, pf = false;
    }
    if (m < M) wrows(T, out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 1, pos, b0, b1, n, V, pf);
}

LK_AI void weighted_t(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos,
                      int32_t n, const lk_rows *V) {
    for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo, 0, sizeof(float) * (size_t)V->n);
    for (int32_t b0 = 0; b0 < n; b0 += WEIGHT_BLOCK) {
        const int32_t b1 = LK_MIN(n, b0 + WEIGHT_BLOCK);
        wrows_all(T, out, ldo, w, ldw, M, pos, b0, b1, n, V);
    }
}

enum { DENSE_BLOCK_ROWS = 64 }; /* query rows of lk_dense_block */

/* Online softmax, a row's block done: the block's maximum is the largest of
 * the 4 lanes of mxv; when it exceeds *mx, out (D floats) and *l are rescaled
 * by exp(*mx - max) (what has been summed so far) and *mx raised to it. */
LK_AI void raise_max(__m128 mxv, float *mx, float *l, float *out, int D) {
    const __m128 x = _mm_max_ps(mxv, _mm_movehl_ps(mxv, mxv));
    const float mm = _mm_cvtss_f32(_mm_max_ss(x, _mm_shuffle_ps(x, x, 1)));
    if (mm > *mx) {
        const float c = expf(*mx - mm);
        const __m512 cv = _mm512_set1_ps(c);
        for (int i = 0; i < D; i += 16)
            _mm512_mask_storeu_ps(out + i, tail_mask(D - i), _mm512_mul_ps(cv, _mm512_maskz_loadu_ps(tail_mask(D - i), out + i)));
        *l *= c;
        *mx = mm;
    }
}

/* lk_dense_block (attn.h) for type T. */
LK_AI void dense_block_t(const loki_kv_type T, const lk_rows *K_, const lk_rows *V_, int32_t nb_, const float *Q,
                         int ldq, int M, float scale, float *S, float *mx, float *l, float *out, int ldo, const int DN,
                         const int NB) {
    const int32_t nb = NB ? NB : nb_; /* NB > 0: a constant block (the score rows at constant offsets) */
    /* DN > 0: contiguous f16 rows of DN values, constants (the loops over a
     * row unroll, the row addresses are shifts) */
    lk_rows Kc = *K_, Vc = *V_;
    if (DN) Kc.n = Vc.n = DN, Kc.stride = Vc.stride = 2 * (size_t)DN;
    const lk_rows *K = &Kc, *V = &Vc;
    const int D = V->n;
    __m128 mxv[DENSE_BLOCK_ROWS]; /* the block's maximum per row, kept by the score tiles */
    for (int m = 0; m < M; m++) mxv[m] = _mm_set1_ps(mx[m]);
    scores_t(T, K, nb, Q, ldq, M, scale, S, nb, mxv);
    for (int m = 0; m < M; m++) raise_max(mxv[m], &mx[m], &l[m], out + (size_t)m * ldo, D);
    __m512 mv[DENSE_BLOCK_ROWS], lacc[DENSE_BLOCK_ROWS];
    for (int m = 0; m < M; m++) mv[m] = _mm512_set1_ps(mx[m]), lacc[m] = _mm512_setzero_ps();
    for (int32_t j0 = 0; j0 < nb; j0 += WEIGHT_BLOCK) {
        const int32_t j1 = LK_MIN(nb, j0 + WEIGHT_BLOCK);
        for (int m = 0; m < M; m++) { /* exps of this chunk, under the value loads of the previous one */
            float *x = S + (size_t)m * nb;
            for (int32_t j = j0; j < j1; j += 16) {
                const __mmask16 t = tail_mask(j1 - j);
                const __m512 e = _mm512_maskz_mov_ps(t, lk_exp512_flush64(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + j), mv[m])));
                _mm512_mask_storeu_ps(x + j, t, e);
                lacc[m] = _mm512_add_ps(lacc[m], e);
            }
        }
        wrows_all(T, out, ldo, S, nb, M, NULL, j0, j1, nb, V);
    }
    for (int m = 0; m < M; m++) l[m] += _mm512_reduce_add_ps(lacc[m]);
}

/* Selected rows per block of gather_attend_t: their scores (M, GATHER_BLOCK)
 * stay in L1, and so do the block's gathered key rests and values (64 rows
 * of 192 + 256 B at D = 128, d = 32, f16) between the score pass and the
 * weighted sum. */
enum { GATHER_BLOCK = 64 };
/* Selected rows ahead whose key rest and value are prefetched (every line:
 * one line per row and the hardware fetching its neighbours was 1.5x
 * slower on the EPYC of docs/RESULTS.md, session 17) while a row is scored
 * (its value is read a block later, its key rest soon). 4 to 64 rows
 * measured alike there. */
#ifndef LK_GATHER_PF
#define LK_GATHER_PF 16
#endif

/* Scores of MR (1..4) query rows against the 4 gathered key rests rows[i]
 * = Khi row pos4[i], plus their low-rank parts lo[m·ldlo + pos4[i]]: into
 * S[m·GATHER_BLOCK + i] for the lanes in keep, the maxima into mxv[m]. */
LK_AI void gscores_tile(const loki_kv_type T, const lk_rows *Khi, const int32_t *pos4, const float *Q, int ldq,
                        const int MR, float scale, const float *lo, int ldlo, __mmask8 keep, float *S, __m128 *mxv) {
    const uint8_t *const rows[4] = {lk_row(Khi, pos4[0]), lk_row(Khi, pos4[1]), lk_row(Khi, pos4[2]),
                                    lk_row(Khi, pos4[3])};
    __m512 a[4][4];
    dot4_rows(T, rows, Khi->n, Q, ldq, MR, a);
    LK_UNROLL
    for (int m = 0; m < MR; m++) {
        const float *lm = lo + (size_t)m * ldlo;
        const __m128 lov = _mm_setr_ps(lm[pos4[0]], lm[pos4[1]], lm[pos4[2]], lm[pos4[3]]);
        const __m128 r = _mm_fmadd_ps(lk_hsum4_512(a[m][0], a[m][1], a[m][2], a[m][3]), _mm_set1_ps(scale), lov);
        mxv[m] = _mm_mask_max_ps(mxv[m], keep, mxv[m], r);
        _mm_mask_storeu_ps(S + (size_t)m * GATHER_BLOCK, keep, r);
    }
}

/* lk_gather_attend (attn.h) for type T: per block of GATHER_BLOCK selected
 * rows, scores of 4 gathered key rests x MR query rows in registers (as
 * scores_tile) plus the low-rank part looked up by position, the block
 * maximum, out rescaled, the exps, then out += exps · gathered values
 * (wrows_all over pos). */
LK_AI void gather_attend_t(const loki_kv_type T, const lk_rows *Khi, const lk_rows *V, const int32_t *pos, int32_t n,
                           const float *lo, int ldlo, const float *Q, int ldq, int M, float scale, float *out,
                           int ldo) {
    const int nh = Khi->n, D = V->n;
    float S[DENSE_BLOCK_ROWS * GATHER_BLOCK], mx[DENSE_BLOCK_ROWS], l[DENSE_BLOCK_ROWS];
    for (int m = 0; m < M; m++) {
        mx[m] = -FLT_MAX, l[m] = 0.0f;
        memset(out + (size_t)m * ldo, 0, sizeof(float) * (size_t)D);
    }
    for (int32_t b0 = 0; b0 < n; b0 += GATHER_BLOCK) {
        const int32_t nb = LK_MIN(GATHER_BLOCK, n - b0);
        const int32_t *p = pos + b0;
        __m128 mxv[DENSE_BLOCK_ROWS];
        for (int m = 0; m < M; m++) mxv[m] = _mm_set1_ps(-FLT_MAX);
        for (int32_t j = 0; j < nb; j += 4) {
            const int nj = LK_MIN(4, nb - j);
            for (int i = 0; i < 4 && b0 + j + i + LK_GATHER_PF < n; i++) { /* every line: see LK_GATHER_PF */
                const int32_t s = p[j + i + LK_GATHER_PF];
                if (nh) prefetch_bytes(lk_row(Khi, s), Khi->stride);
                prefetch_bytes(lk_row(V, s), V->stride);
            }
            /* rows past the block's end repeat its last row (their scores are not stored) */
            const int32_t j4[4] = {p[j], p[j + (nj > 1)], p[j + (nj > 2 ? 2 : 0)], p[j + (nj > 3 ? 3 : 0)]};
            const __mmask8 keep = (__mmask8)((1u << nj) - 1);
            int m = 0;
            for (; m + 4 <= M; m += 4)
                gscores_tile(T, Khi, j4, Q + (size_t)m * ldq, ldq, 4, scale, lo + (size_t)m * ldlo, ldlo, keep,
                             S + (size_t)m * GATHER_BLOCK + j, mxv + m);
            if (M - m >= 2) {
                gscores_tile(T, Khi, j4, Q + (size_t)m * ldq, ldq, 2, scale, lo + (size_t)m * ldlo, ldlo, keep,
                             S + (size_t)m * GATHER_BLOCK + j, mxv + m);
                m += 2;
            }
            if (m < M)
                gscores_tile(T, Khi, j4, Q + (size_t)m * ldq, ldq, 1, scale, lo + (size_t)m * ldlo, ldlo, keep,
                             S + (size_t)m * GATHER_BLOCK + j, mxv + m);
        }
        for (int m = 0; m < M; m++) {
            raise_max(mxv[m], &mx[m], &l[m], out + (size_t)m * ldo, D);
            const __m512 mv = _mm512_set1_ps(mx[m]);
            __m512 lacc = _mm512_setzero_ps();
            float *x_ = S + (size_t)m * GATHER_BLOCK;
            for (int32_t j = 0; j < nb; j += 16) {
                const __mmask16 t = tail_mask(nb - j);
                const __m512 e = _mm512_maskz_mov_ps(t, lk_exp512_flush64(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x_ + j), mv)));
                _mm512_mask_storeu_ps(x_ + j, t, e);
                lacc = _mm512_add_ps(lacc, e);
            }
            l[m] += _mm512_reduce_add_ps(lacc);
        }
        wrows_all(T, out, ldo, S, GATHER_BLOCK, M, p, 0, nb, n - b0, V);
    }
    for (int m = 0; m < M; m++) {
        const float inv = 1.0f / l[m];
        float *o = out + (size_t)m * ldo;
        for (int i = 0; i < D; i++) o[i] *= inv;
    }
}

LK_AI void axpy_t(const loki_kv_type T, float *y, float w, const uint8_t *row, int n) {
    const int nb = (n + 31) / 32;
    const __m512 wv = _mm512_set1_ps(w);
    for (int c = 0; c < n; c += 16) {
        __mmask16 m = tail_mask(n - c);
        _mm512_mask_storeu_ps(y + c, m, _mm512_fmadd_ps(wv, load16(T, row, c, nb, m), _mm512_maskz_loadu_ps(m, y + c)));
    }
}
#endif /* LK_KV_X86 */

/* ------------------------------------------------- the entry points */

void lk_row_widen(loki_kv_type t, bool portable, const void *src, float *y, int n) {
    (void)portable; /* unused when built without AVX-512 and AVX2 */
#if defined(LK_KV_X86)
    if (!portable && t != LOKI_KV_F32) {
        const int nb = (n + 31) / 32;
        for (int c = 0; c < n; c += 16) {
            __mmask16 m = tail_mask(n - c);
            __m512 x = t == LOKI_KV_F16    ? load16(LOKI_KV_F16, src, c, nb, m)
                       : t == LOKI_KV_BF16 ? load16(LOKI_KV_BF16, src, c, nb, m)
                                           : load16(LOKI_KV_Q8_0, src, c, nb, m);
            _mm512_mask_storeu_ps(y + c, m, x);
        }
        return;
    }
#elif defined(LK_KV_AVX2)
    if (!portable && t != LOKI_KV_F32) {
        lk_row_widen_avx2(t, src, y, n);
        return;
    }
#endif
    lk_row_decode(t, src, y, n);
}

enum { ROWBUF = 1024 }; /* longest row the portable path decodes on the stack */

float lk_dot_row(const lk_rows *r, int32_t s, const float *q) {
    const uint8_t *row = lk_row(r, s);
#if defined(LK_KV_X86)
    if (!r->portable) switch (r->t) {
        case LOKI_KV_F16: return _mm512_reduce_add_ps(dotv(LOKI_KV_F16, row, q, r->n));
        case LOKI_KV_BF16: return _mm512_reduce_add_ps(dotv(LOKI_KV_BF16, row, q, r->n));
        case LOKI_KV_Q8_0: return _mm512_reduce_add_ps(dotv(LOKI_KV_Q8_0, row, q, r->n));
        default: return _mm512_reduce_add_ps(dotv(LOKI_KV_F32, row, q, r->n));
        }
#elif defined(LK_KV_AVX2)
    if (!r->portable) return lk_dot_row_avx2(r, s, q);
#endif
    if (r->t == LOKI_KV_F32) return lk_dot(q, (const float *)row, r->n);
    float sbuf[ROWBUF], *buf = r->n <= ROWBUF ? sbuf : malloc(sizeof(float) * (size_t)r->n);
    if (!buf) return NAN;
    lk_row_decode(r->t, row, buf, r->n);
    float s_ = lk_dot(q, buf, r->n);
    if (buf != sbuf) free(buf);
    return s_;
}

void lk_axpy_row(float *y, float w, const lk_rows *r, int32_t s) {
    const uint8_t *row = lk_row(r, s);
#if defined(LK_KV_X86)
    if (!r->portable) switch (r->t) {
        case LOKI_KV_F16: axpy_t(LOKI_KV_F16, y, w, row, r->n); return;
        case LOKI_KV_BF16: axpy_t(LOKI_KV_BF16, y, w, row, r->n); return;
        case LOKI_KV_Q8_0: axpy_t(LOKI_KV_Q8_0, y, w, row, r->n); return;
        default: axpy_t(LOKI_KV_F32, y, w, row, r->n); return;
        }
#elif defined(LK_KV_AVX2)
    if (!r->portable) {
        lk_axpy_row_avx2(y, w, r, s);
        return;
    }
#endif
    if (r->t == LOKI_KV_F32) {
        lk_axpy(y, w, (const float *)row, r->n);
        return;
    }
    float sbuf[ROWBUF], *buf = r->n <= ROWBUF ? sbuf : malloc(sizeof(float) * (size_t)r->n);
    if (!buf) return;
    lk_row_decode(r->t, row, buf, r->n);
    lk_axpy(y, w, buf, r->n);
    if (buf != sbuf) free(buf);
}

void lk_scores_rows(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out, int32_t ldo) {
#if defined(LK_KV_X86)
    if (!K->portable) switch (K->t) {
        case LOKI_KV_F16: scores_t(LOKI_KV_F16, K, S, Q, ldq, M, scale, out, ldo, NULL); return;
        case LOKI_KV_BF16:
#if defined(__AVX512BF16__)
            if (scores_bf16_dp(K, S, Q, ldq, M, scale, out, ldo)) return;
#endif
            scores_t(LOKI_KV_BF16, K, S, Q, ldq, M, scale, out, ldo, NULL);
            return;
        case LOKI_KV_Q8_0: scores_t(LOKI_KV_Q8_0, K, S, Q, ldq, M, scale, out, ldo, NULL); return;
        default: scores_t(LOKI_KV_F32, K, S, Q, ldq, M, scale, out, ldo, NULL); return;
        }
#elif defined(LK_KV_AVX2)
    if (!K->portable) {
        lk_scores_rows_avx2(K, S, Q, ldq, M, scale, out, ldo);
        return;
    }
#endif
    if (K->t == LOKI_KV_F32 && K->stride == sizeof(float) * (size_t)K->n) {
        lk_scores((const float *)K->p, S, K->n, Q, ldq, M, scale, out, ldo);
        return;
    }
    for (int32_t s = 0; s < S; s++)
        for (int m = 0; m < M; m++) out[(size_t)m * ldo + s] = lk_dot_row(K, s, Q + (size_t)m * ldq) * scale;
}

void lk_weighted_rows_t(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                        const lk_rows *V) {
#if defined(LK_KV_X86)
    if (!V->portable) switch (V->t) {
        case LOKI_KV_F16: weighted_t(LOKI_KV_F16, out, ldo, w, ldw, M, pos, n, V); return;
        case LOKI_KV_BF16: weighted_t(LOKI_KV_BF16, out, ldo, w, ldw, M, pos, n, V); return;
        case LOKI_KV_Q8_0: weighted_t(LOKI_KV_Q8_0, out, ldo, w, ldw, M, pos, n, V); return;
        default: weighted_t(LOKI_KV_F32, out, ldo, w, ldw, M, pos, n, V); return;
        }
#elif defined(LK_KV_AVX2)
    if (!V->portable) {
        lk_weighted_rows_t_avx2(out, ldo, w, ldw, M, pos, n, V);
        return;
    }
#endif
    if (V->t == LOKI_KV_F32 && V->stride == sizeof(float) * (size_t)V->n) {
        lk_weighted_rows(out, ldo, w, ldw, M, pos, n, (const float *)V->p, V->n);
        return;
    }
    for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo, 0, sizeof(float) * (size_t)V->n);
    for (int32_t j = 0; j < n; j++)
        for (int m = 0; m < M; m++) lk_axpy_row(out + (size_t)m * ldo, w[(size_t)m * ldw + j], V, pos ? pos[j] : j);
}

bool lk_dense_block(const lk_rows *K, const lk_rows *V, int32_t nb, const float *Q, int ldq, int M, float scale,
                    float *S, float *mx, float *l, float *out, int ldo) {
#if defined(LK_KV_X86)
    if (K->portable || V->portable || K->t != V->t || M > DENSE_BLOCK_ROWS) return false;
    switch (K->t) {
    case LOKI_KV_F16:
        if (K->n == 128 && V->n == 128 && K->stride == 256 && V->stride == 256) { /* the common head dim */
            if (nb == 256) dense_block_t(LOKI_KV_F16, K, V, nb, Q, ldq, M, scale, S, mx, l, out, ldo, 128, 256);
            else dense_block_t(LOKI_KV_F16, K, V, nb, Q, ldq, M, scale, S, mx, l, out, ldo, 128, 0);
        } else
            dense_block_t(LOKI_KV_F16, K, V, nb, Q, ldq, M, scale, S, mx, l, out, ldo, 0, 0);
        return true;
    case LOKI_KV_BF16: dense_block_t(LOKI_KV_BF16, K, V, nb, Q, ldq, M, scale, S, mx, l, out, ldo, 0, 0); return true;
    case LOKI_KV_Q8_0: dense_block_t(LOKI_KV_Q8_0, K, V, nb, Q, ldq, M, scale, S, mx, l, out, ldo, 0, 0); return true;
    default: dense_block_t(LOKI_KV_F32, K, V, nb, Q, ldq, M, scale, S, mx, l, out, ldo, 0, 0); return true;
    }
#else
    (void)K, (void)V, (void)nb, (void)Q, (void)ldq, (void)M, (void)scale, (void)S, (void)mx, (void)l, (void)out, (void)ldo;
    return false;
#endif
}

bool lk_gather_attend(const lk_rows *Khi, const lk_rows *V, const int32_t *pos, int32_t n, const float *lo, int ldlo,
                      const float *Q, int ldq, int M, float scale, float *out, int ldo) {
#if defined(LK_KV_X86)
    if (Khi->portable || V->portable || Khi->t != V->t || M > DENSE_BLOCK_ROWS || n < 1) return false;
    switch (V->t) {
    case LOKI_KV_F16: gather_attend_t(LOKI_KV_F16, Khi, V, pos, n, lo, ldlo, Q, ldq, M, scale, out, ldo); return true;
    case LOKI_KV_BF16: gather_attend_t(LOKI_KV_BF16, Khi, V, pos, n, lo, ldlo, Q, ldq, M, scale, out, ldo); return true;
    case LOKI_KV_Q8_0: gather_attend_t(LOKI_KV_Q8_0, Khi, V, pos, n, lo, ldlo, Q, ldq, M, scale, out, ldo); return true;
    default: gather_attend_t(LOKI_KV_F32, Khi, V, pos, n, lo, ldlo, Q, ldq, M, scale, out, ldo); return true;
    }
#else
    (void)Khi, (void)V, (void)pos, (void)n, (void)lo, (void)ldlo, (void)Q, (void)ldq, (void)M, (void)scale, (void)out, (void)ldo;
    return false;
#endif
}
