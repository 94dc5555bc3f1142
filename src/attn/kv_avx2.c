/*
 * kv_avx2.c - kernels over typed KV rows (f32, f16, bf16, q8_0; attn.h
 * describes the row formats) for CPUs with AVX2 + FMA + F16C but no
 * AVX-512 (AMD Zen 2/3, Intel Haswell .. Alder Lake): scores of query rows
 * against key rows, dot / axpy with single rows, widening, weighted sums of
 * value rows, and a vectorised exp for the softmax. kv.c dispatches here
 * (kv_simd.h) unless the rows say portable.
 *
 * Rows are widened to f32 8 values at a time in registers: f16 by vcvtph2ps,
 * bf16 by zero-extending to 32 bits and shifting left 16, q8_0 by int8 ->
 * int32 -> f32 times the block's fp16 scale (the same single product the
 * portable decode computes, so widened values are bit-identical to
 * lk_row_decode's). A row tail of n % 8 values goes through a small stack
 * buffer decoded element by element.
 *
 * Register blocking, the point of this file: with 16 ymm registers a tile
 * of up to 4 query rows x 2 keys (scores: 8 accumulators) or 4 query rows x
 * 16 output columns (weighted sums: 8 accumulators) keeps every widened key
 * or value chunk in a register for all query rows of a GQA group, so each
 * stored byte is loaded once per group and the arithmetic (6 loads per 8
 * FMAs) stays below what two Zen 3 cores need to keep up with DRAM. Keys
 * and values are walked in blocks of LK_KV2_BLOCK rows so that a group of
 * more than 4 query rows re-reads a block from L1/L2, not from DRAM (value
 * rows in blocks of LK_KV2_WBLOCK, see there).
 */
#include "attn/kv_simd.h"

#include <math.h>
#include <string.h>

#include "core/tensor.h"

#if defined(LK_KV_AVX2) || defined(LK_EXP_AVX2)
#include <immintrin.h>
#define LK_AI static inline __attribute__((always_inline))
/* the loops over the rows (m < MR) and vectors (v < NV) of a tile must be
 * unrolled for its accumulators to live in registers (gcc 12 keeps them in
 * a stack array otherwise: a load and a store per FMA, 3x slower) */
#define LK_UNROLL _Pragma("GCC unroll 8")
#endif

#if defined(LK_KV_AVX2)

/* Rows per block (see above): 64 rows of D = 128 f16 are 16 KiB, half of
 * Zen 3's L1d. */
#ifndef LK_KV2_BLOCK
#define LK_KV2_BLOCK 64
#endif

/* Value rows per block of the weighted sums: the block is walked once per
 * 16-column tile, so a short block keeps the walk close to sequential (a
 * few consecutive rows, then the next few) while the accumulators are
 * loaded and stored once per tile and block; 8 rows measured 10-30% faster
 * than 64 for dense decode at 64k, 4 the same as 8 (dev/cpu/README.md). */
#ifndef LK_KV2_WBLOCK
#define LK_KV2_WBLOCK 8
#endif

/* Software prefetch of value rows in the weighted sums (dev/cpu/README.md
 * has the measurements): 0 none; 1 the next block's rows, all at the start
 * of a block; 2 row j + LK_KV2_BLOCK during the first column tile of row j
 * (spread over the block's pass). The weighted sum walks a block column
 * tile by column tile, so its first tile touches one line per row: a
 * strided pattern the hardware prefetcher does not cover. */
#ifndef LK_KV2_PF
#define LK_KV2_PF 2
#endif

LK_AI void prefetch_rows(const lk_rows *V, const int32_t *pos, int32_t j0, int32_t j1) {
    for (int32_t j = j0; j < j1; j++) {
        const uint8_t *p = lk_row(V, pos ? pos[j] : j);
        for (size_t o = 0; o < V->stride; o += 64) _mm_prefetch((const char *)p + o, _MM_HINT_T0);
    }
}

/* Value c (any position) of a row of type T with nb q8_0 blocks, as float:
 * exactly lk_row_decode's value. */
static float elem(loki_kv_type T, const uint8_t *row, int c, int nb) {
    uint16_t h;
    switch (T) {
    case LOKI_KV_F16: memcpy(&h, row + 2 * c, 2); return lk_f16_to_f32(h);
    case LOKI_KV_BF16: {
        memcpy(&h, row + 2 * c, 2);
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case LOKI_KV_Q8_0:
        memcpy(&h, row + 2 * (c / 32), 2);
        return lk_f16_to_f32(h) * (float)((const int8_t *)row)[2 * nb + c];
    default: {
        float f;
        memcpy(&f, row + 4 * c, 4);
        return f;
    }
    }
}

/* Values c .. c+7 of a row (c + 8 <= n, c a multiple of 8 so a q8_0 chunk
 * never straddles two blocks), widened. */
LK_AI __m256 ld8(const loki_kv_type T, const uint8_t *row, int c, int nb) {
    switch (T) {
    case LOKI_KV_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * c)));
    case LOKI_KV_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * c))), 16));
    case LOKI_KV_Q8_0: {
        __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + 2 * nb + c))));
        uint16_t h;
        memcpy(&h, row + 2 * (c / 32), 2);
        return _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16((short)h)), x);
    }
    default: return _mm256_loadu_ps((const float *)(row + 4 * c));
    }
}

/* Values c .. n-1 (fewer than 8) of a row, zero-padded to 8 lanes. */
static __m256 ld_tail(loki_kv_type T, const uint8_t *row, int c, int n, int nb) {
    float t[8] = {0};
    for (int i = c; i < n; i++) t[i - c] = elem(T, row, i, nb);
    return _mm256_loadu_ps(t);
}

/* Lane mask of the first `left` (< 8) lanes for maskload / maskstore. */
LK_AI __m256i lane_mask(int left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

LK_AI float hsum(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* [Σa, Σb, Σc, Σd] of four vectors, shuffles shared. */
LK_AI __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d); /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    __m256 x = _mm256_hadd_ps(ab, cd);                          /* a0123 b0123 c0123 d0123 | a4567 ... */
    return _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
}

/* Scores of MR (1..4) query rows Q (row stride ldq, n = K->n values) against
 * keys s0 .. s1-1: out[m*ldo + s] = scale · Q[m] · K[s]. Keys two at a time:
 * each 8-value chunk of a key is widened once and multiplied into the MR
 * accumulators of its rows (8 accumulators for MR = 4). */
LK_AI void scores_tile(const loki_kv_type T, const lk_rows *K, int32_t s0, int32_t s1, const float *Q, int ldq,
                       const int MR, float scale, float *out, int32_t ldo) {
    const int n = K->n, nb = (n + 31) / 32, n8 = n & ~7;
    const __m256i tm = lane_mask(n - n8);
    int32_t s = s0;
    /* one query row (MHA, Loki's low-rank scan): four keys at a time, for
     * four independent FMA chains (two would wait on the FMA latency) */
    for (; MR == 1 && s + 4 <= s1; s += 4) {
        const uint8_t *r0 = lk_row(K, s), *r1 = lk_row(K, s + 1), *r2 = lk_row(K, s + 2), *r3 = lk_row(K, s + 3);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < n8; c += 8) {
            const __m256 q = _mm256_loadu_ps(Q + c);
            a0 = _mm256_fmadd_ps(ld8(T, r0, c, nb), q, a0);
            a1 = _mm256_fmadd_ps(ld8(T, r1, c, nb), q, a1);
            a2 = _mm256_fmadd_ps(ld8(T, r2, c, nb), q, a2);
            a3 = _mm256_fmadd_ps(ld8(T, r3, c, nb), q, a3);
        }
        if (n8 < n) {
            const __m256 q = _mm256_maskload_ps(Q + n8, tm);
            a0 = _mm256_fmadd_ps(ld_tail(T, r0, n8, n, nb), q, a0);
            a1 = _mm256_fmadd_ps(ld_tail(T, r1, n8, n, nb), q, a1);
            a2 = _mm256_fmadd_ps(ld_tail(T, r2, n8, n, nb), q, a2);
            a3 = _mm256_fmadd_ps(ld_tail(T, r3, n8, n, nb), q, a3);
        }
        _mm_storeu_ps(out + s, _mm_mul_ps(hsum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
    }
    for (; s + 2 <= s1; s += 2) {
        const uint8_t *r0 = lk_row(K, s), *r1 = lk_row(K, s + 1);
        __m256 a0[4], a1[4];
        LK_UNROLL
        for (int m = 0; m < MR; m++) a0[m] = a1[m] = _mm256_setzero_ps();
        for (int c = 0; c < n8; c += 8) {
            const __m256 k0 = ld8(T, r0, c, nb), k1 = ld8(T, r1, c, nb);
            LK_UNROLL
            for (int m = 0; m < MR; m++) {
                const __m256 q = _mm256_loadu_ps(Q + (size_t)m * ldq + c);
                a0[m] = _mm256_fmadd_ps(k0, q, a0[m]);
                a1[m] = _mm256_fmadd_ps(k1, q, a1[m]);
            }
        }
        if (n8 < n) {
            const __m256 k0 = ld_tail(T, r0, n8, n, nb), k1 = ld_tail(T, r1, n8, n, nb);
            LK_UNROLL
            for (int m = 0; m < MR; m++) {
                const __m256 q = _mm256_maskload_ps(Q + (size_t)m * ldq + n8, tm);
                a0[m] = _mm256_fmadd_ps(k0, q, a0[m]);
                a1[m] = _mm256_fmadd_ps(k1, q, a1[m]);
            }
        }
        if (MR == 4) { /* 8 sums in two shared-shuffle reductions */
            __m128 x0 = hsum4(a0[0], a1[0], a0[1], a1[1]), x1 = hsum4(a0[2], a1[2], a0[3], a1[3]);
            float t[8];
            _mm_storeu_ps(t, _mm_mul_ps(x0, _mm_set1_ps(scale)));
            _mm_storeu_ps(t + 4, _mm_mul_ps(x1, _mm_set1_ps(scale)));
            LK_UNROLL
            for (int m = 0; m < 4; m++) out[(size_t)m * ldo + s] = t[2 * m], out[(size_t)m * ldo + s + 1] = t[2 * m + 1];
        } else {
            LK_UNROLL
            for (int m = 0; m < MR; m++)
                out[(size_t)m * ldo + s] = hsum(a0[m]) * scale, out[(size_t)m * ldo + s + 1] = hsum(a1[m]) * scale;
        }
    }
    for (; s < s1; s++) {
        const uint8_t *r0 = lk_row(K, s);
        __m256 a0[4];
        LK_UNROLL
        for (int m = 0; m < MR; m++) a0[m] = _mm256_setzero_ps();
        for (int c = 0; c < n8; c += 8) {
            const __m256 k0 = ld8(T, r0, c, nb);
            LK_UNROLL
            for (int m = 0; m < MR; m++) a0[m] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(Q + (size_t)m * ldq + c), a0[m]);
        }
        if (n8 < n) {
            const __m256 k0 = ld_tail(T, r0, n8, n, nb);
            LK_UNROLL
            for (int m = 0; m < MR; m++)
                a0[m] = _mm256_fmadd_ps(k0, _mm256_maskload_ps(Q + (size_t)m * ldq + n8, tm), a0[m]);
        }
        LK_UNROLL
        for (int m = 0; m < MR; m++) out[(size_t)m * ldo + s] = hsum(a0[m]) * scale;
    }
}

/* All M query rows against keys 0 .. S-1: blocks of LK_KV2_BLOCK keys, in
 * each block the rows in tiles of 4 (then 2, 1), so the keys come from DRAM
 * once and from L1 for the further tiles of a group of more than 4. */
LK_AI void scores_t(const loki_kv_type T, const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale,
                    float *out, int32_t ldo) {
    for (int32_t b0 = 0; b0 < S; b0 += LK_KV2_BLOCK) {
        const int32_t b1 = LK_MIN(S, b0 + LK_KV2_BLOCK);
        int m = 0;
        for (; m + 4 <= M; m += 4)
            scores_tile(T, K, b0, b1, Q + (size_t)m * ldq, ldq, 4, scale, out + (size_t)m * ldo, ldo);
        if (M - m >= 2) {
            scores_tile(T, K, b0, b1, Q + (size_t)m * ldq, ldq, 2, scale, out + (size_t)m * ldo, ldo);
            m += 2;
        }
        if (m < M) scores_tile(T, K, b0, b1, Q + (size_t)m * ldq, ldq, 1, scale, out + (size_t)m * ldo, ldo);
    }
}

/* out[m][c0 .. c0+8·NV) += Σ_j w[m][j] · V[pos[j]][c0 ..] for m < MR (1..4),
 * j in [j0, j1) (pos NULL: row j): MR x NV (NV <= 2) accumulators; each
 * value chunk is widened once for all MR rows. c0 + 8·NV <= D. */
LK_AI void wtile(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, const int MR, const int32_t *pos,
                 int32_t j0, int32_t j1, const lk_rows *V, int c0, const int NV, int32_t pf_end) {
    const int nb = (V->n + 31) / 32;
    __m256 o[4][2];
    LK_UNROLL
    for (int m = 0; m < MR; m++)
        LK_UNROLL
        for (int v = 0; v < NV; v++) o[m][v] = _mm256_loadu_ps(out + (size_t)m * ldo + c0 + 8 * v);
    for (int32_t j = j0; j < j1; j++) {
        const uint8_t *row = lk_row(V, pos ? pos[j] : j);
        if (LK_KV2_PF == 2 && j + LK_KV2_BLOCK < pf_end) prefetch_rows(V, pos, j + LK_KV2_BLOCK, j + LK_KV2_BLOCK + 1);
        __m256 x[2];
        LK_UNROLL
        for (int v = 0; v < NV; v++) x[v] = ld8(T, row, c0 + 8 * v, nb);
        LK_UNROLL
        for (int m = 0; m < MR; m++) {
            const __m256 wm = _mm256_broadcast_ss(w + (size_t)m * ldw + j);
            LK_UNROLL
            for (int v = 0; v < NV; v++) o[m][v] = _mm256_fmadd_ps(wm, x[v], o[m][v]);
        }
    }
    LK_UNROLL
    for (int m = 0; m < MR; m++)
        LK_UNROLL
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(out + (size_t)m * ldo + c0 + 8 * v, o[m][v]);
}

/* The same for the last D % 8 columns (masked, one lane group). */
static void wtail(loki_kv_type T, float *out, int ldo, const float *w, int ldw, int MR, const int32_t *pos,
                  int32_t j0, int32_t j1, const lk_rows *V, int c0) {
    const int D = V->n, nb = (D + 31) / 32;
    const __m256i tm = lane_mask(D - c0);
    LK_UNROLL
    for (int m = 0; m < MR; m++) {
        __m256 o = _mm256_maskload_ps(out + (size_t)m * ldo + c0, tm);
        for (int32_t j = j0; j < j1; j++)
            o = _mm256_fmadd_ps(_mm256_broadcast_ss(w + (size_t)m * ldw + j), ld_tail(T, lk_row(V, pos ? pos[j] : j), c0, D, nb),
                                o);
        _mm256_maskstore_ps(out + (size_t)m * ldo + c0, tm, o);
    }
}

/* Rows m0 .. m0+MR-1 over value rows [j0, j1), all D columns. */
LK_AI void wrows(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, const int MR, const int32_t *pos,
                 int32_t j0, int32_t j1, const lk_rows *V, int32_t pf_end) {
    const int D = V->n;
    int c0 = 0;
    if (c0 + 16 <= D) wtile(T, out, ldo, w, ldw, MR, pos, j0, j1, V, c0, 2, pf_end), c0 += 16;
    for (; c0 + 16 <= D; c0 += 16) wtile(T, out, ldo, w, ldw, MR, pos, j0, j1, V, c0, 2, 0);
    if (c0 + 8 <= D) wtile(T, out, ldo, w, ldw, MR, pos, j0, j1, V, c0, 1, c0 ? 0 : pf_end), c0 += 8;
    if (c0 < D) wtail(T, out, ldo, w, ldw, MR, pos, j0, j1, V, c0);
}

LK_AI void weighted_t(const loki_kv_type T, float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos,
                      int32_t n, const lk_rows *V) {
    for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo, 0, sizeof(float) * (size_t)V->n);
    for (int32_t b0 = 0; b0 < n; b0 += LK_KV2_WBLOCK) {
        const int32_t b1 = LK_MIN(n, b0 + LK_KV2_WBLOCK);
        if (LK_KV2_PF == 1) prefetch_rows(V, pos, b1, LK_MIN(n, b1 + LK_KV2_BLOCK));
        /* only the block's first tile of rows prefetches (variant 2) */
        int32_t pf = LK_KV2_PF == 2 ? n : 0;
        int m = 0;
        for (; m + 4 <= M; m += 4, pf = 0)
            wrows(T, out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 4, pos, b0, b1, V, pf);
        if (M - m >= 2) {
            wrows(T, out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 2, pos, b0, b1, V, pf);
            m += 2, pf = 0;
        }
        if (m < M) wrows(T, out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 1, pos, b0, b1, V, pf);
    }
}

/* y (n) += w · row: one row, chunks of 8 then a masked tail. */
LK_AI void axpy_t(const loki_kv_type T, float *y, float w, const uint8_t *row, int n) {
    const int nb = (n + 31) / 32, n8 = n & ~7;
    const __m256 wv = _mm256_set1_ps(w);
    for (int c = 0; c < n8; c += 8) _mm256_storeu_ps(y + c, _mm256_fmadd_ps(wv, ld8(T, row, c, nb), _mm256_loadu_ps(y + c)));
    if (n8 < n) {
        const __m256i tm = lane_mask(n - n8);
        _mm256_maskstore_ps(y + n8, tm,
                            _mm256_fmadd_ps(wv, ld_tail(T, row, n8, n, nb), _mm256_maskload_ps(y + n8, tm)));
    }
}

/* ------------------------------------------------- the entry points */

#define LK_KV2_DISPATCH(t, CALL)                                                                                 \
    switch (t) {                                                                                                 \
    case LOKI_KV_F16: CALL(LOKI_KV_F16); break;                                                                  \
    case LOKI_KV_BF16: CALL(LOKI_KV_BF16); break;                                                                \
    case LOKI_KV_Q8_0: CALL(LOKI_KV_Q8_0); break;                                                                \
    default: CALL(LOKI_KV_F32); break;                                                                           \
    }

void lk_row_widen_avx2(loki_kv_type t, const void *src, float *y, int n) {
    const int nb = (n + 31) / 32, n8 = n & ~7;
#define WIDEN(T)                                                                                                 \
    for (int c = 0; c < n8; c += 8) _mm256_storeu_ps(y + c, ld8(T, src, c, nb));                                 \
    for (int c = n8; c < n; c++) y[c] = elem(T, src, c, nb);
    LK_KV2_DISPATCH(t, WIDEN)
#undef WIDEN
}

float lk_dot_row_avx2(const lk_rows *r, int32_t s, const float *q) {
    float x = 0.0f;
    lk_rows one = *r; /* row s as row 0, so the tile writes x */
    one.p = lk_row(r, s);
#define DOT(T) scores_tile(T, &one, 0, 1, q, 0, 1, 1.0f, &x, 0)
    LK_KV2_DISPATCH(r->t, DOT)
#undef DOT
    return x;
}

void lk_axpy_row_avx2(float *y, float w, const lk_rows *r, int32_t s) {
    const uint8_t *row = lk_row(r, s);
#define AXPY(T) axpy_t(T, y, w, row, r->n)
    LK_KV2_DISPATCH(r->t, AXPY)
#undef AXPY
}

void lk_scores_rows_avx2(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                         int32_t ldo) {
#define SCORES(T) scores_t(T, K, S, Q, ldq, M, scale, out, ldo)
    LK_KV2_DISPATCH(K->t, SCORES)
#undef SCORES
}

void lk_weighted_rows_t_avx2(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                             const lk_rows *V) {
#define WEIGHTED(T) weighted_t(T, out, ldo, w, ldw, M, pos, n, V)
    LK_KV2_DISPATCH(V->t, WEIGHTED)
#undef WEIGHTED
}
#endif /* LK_KV_AVX2 */

#if defined(LK_EXP_AVX2)
/* exp(x) for 8 lanes, 0 below LK_EXP_FLUSH: x = k·ln2 + r with |r| <=
 * ln2/2 (ln2 in two parts so that k·ln2 is exact to ~2^-40), e^r by its
 * Taylor polynomial of degree 7 (relative error < 2e-9 on that range, below
 * float rounding), 2^k by building the exponent bits.
 * Why the flush: softmax weights are exp(x - max) <= 1 and sum to >= 1;
 * a weight below e^-64 (~2^-92) changes no float sum, but weights near
 * the bottom of the float range make products with the values subnormal,
 * and every FMA that produces a subnormal takes a microcode assist (~100
 * cycles on Zen 3): with random keys most weights of a long context are
 * that small, and the weighted sum ran at a third of its speed. */
#define LK_EXP_FLUSH -64.0f
/* (unused in AVX-512 builds, whose 16-lane exp gives its values) */
LK_AI __attribute__((unused)) __m256 exp8(__m256 x) {
    const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(LK_EXP_FLUSH), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LK_EXP_FLUSH)), _mm256_set1_ps(88.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), x); /* ln2 high part (exact product) */
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187e-06f), r);  /* ln2 low part */
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

#if defined(__AVX512F__)
#include "cpu/simd512.h"

/* For AVX-512 builds the exps go 16 lanes at a time (half the instructions
 * per score of the dense decode's softmax): lk_exp512_flush64 has exp8's
 * clamp, reduction and polynomial, and vscalefps multiplies by 2^k exactly
 * as exp8's exponent bits do (k >= -93 after the clamp: no subnormal
 * results), so the values are exp8's. */
float lk_exp_shift_avx2(float *x, int32_t n, float m) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    for (int32_t i = 0; i < n; i += 16) { /* the tail masked: its lanes add 0 */
        const __mmask16 t = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(t, lk_exp512_flush64(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + i), mv)));
        _mm512_mask_storeu_ps(x + i, t, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}
#else
float lk_exp_shift_avx2(float *x, int32_t n, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    float sum = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    if (i < n) { /* the tail through a zero-padded buffer: lanes past n add exp(-m - ...) nowhere */
        float t[8] = {0};
        memcpy(t, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_storeu_ps(t, exp8(_mm256_sub_ps(_mm256_loadu_ps(t), mv)));
        for (int32_t j = i; j < n; j++) sum += x[j] = t[j - i];
    }
    return sum;
}
#endif
#endif
