/*
 * kernels.c - the building blocks of attention on the CPU: scores of a few
 * query rows against many keys, weighted sums of value rows, dot products,
 * top-k by partial selection. AVX-512 where the compiler targets it, GCC
 * vector extensions (any SIMD) otherwise. Selection is a radix select on the
 * scores' orderable bits (at most three histogram passes, the later ones
 * over the boundary digit's keys only): O(n) whatever the order, no
 * data-dependent branches in the passes over all n.
 */
#include "attn/attn.h"

#include <float.h>
#include <math.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* Eight lanes of floats: GCC/Clang vector extensions, so the compiler emits
 * AVX/NEON without intrinsics or -ffast-math. */
typedef float lk_v8 __attribute__((vector_size(32), aligned(4)));

float lk_dot(const float *a, const float *b, int n) {
    lk_v8 acc0 = {0}, acc1 = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        lk_v8 a0, b0, a1, b1;
        memcpy(&a0, a + i, sizeof a0);
        memcpy(&b0, b + i, sizeof b0);
        memcpy(&a1, a + i + 8, sizeof a1);
        memcpy(&b1, b + i + 8, sizeof b1);
        acc0 += a0 * b0;
        acc1 += a1 * b1;
    }
    acc0 += acc1;
    float s = 0.0f;
    for (int j = 0; j < 8; j++) s += acc0[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

#if defined(__AVX512F__)
/* [Σ a0, Σ a1, Σ a2, Σ a3]: four horizontal sums sharing their shuffles. */
static inline __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512d p0 = _mm512_castps_pd(t0), p1 = _mm512_castps_pd(t1);
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p0, p1)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p1))); /* per 128-bit lane: a0..a3 */
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Σ over nv vectors of key · query */
static inline __m512 dot16(const float *k, const float *q, int nv) {
    __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(k), _mm512_loadu_ps(q));
    for (int v = 1; v < nv; v++) acc = _mm512_fmadd_ps(_mm512_loadu_ps(k + 16 * v), _mm512_loadu_ps(q + 16 * v), acc);
    return acc;
}
#endif

void lk_scores(const float *K, int32_t S, int d, const float *Q, int ldq, int M, float scale, float *out,
               int32_t ldo) {
    int32_t s0 = 0;
#if defined(__AVX512F__)
    if (d % 16 == 0) { /* four keys at a time, reduced together */
        const int nv = d / 16;
        const __m128 sc = _mm_set1_ps(scale);
        for (; s0 + 4 <= S; s0 += 4) {
            const float *k0 = K + (size_t)s0 * d;
            for (int m = 0; m < M; m++) {
                const float *qm = Q + (size_t)m * ldq;
                __m128 r = hsum4(dot16(k0, qm, nv), dot16(k0 + d, qm, nv), dot16(k0 + 2 * d, qm, nv),
                                 dot16(k0 + 3 * d, qm, nv));
                _mm_storeu_ps(out + (size_t)m * ldo + s0, _mm_mul_ps(r, sc));
            }
        }
    }
#endif
    for (int32_t s = s0; s < S; s++)
        for (int m = 0; m < M; m++) out[(size_t)m * ldo + s] = lk_dot(Q + (size_t)m * ldq, K + (size_t)s * d, d) * scale;
}

typedef float lk_v16 __attribute__((vector_size(64), aligned(4)));

void lk_axpy(float *y, float w, const float *x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        lk_v16 xv, yv;
        memcpy(&xv, x + i, sizeof xv);
        memcpy(&yv, y + i, sizeof yv);
        yv += w * xv;
        memcpy(y + i, &yv, sizeof yv);
    }
    for (; i < n; i++) y[i] += w * x[i];
}

/* Rows m < M (M <= 2) of out[:, c0 .. c0+16*NV) = W · V[pos] over n value
 * rows. Always inlined with constant M and NV, so the 16*NV*M outputs live
 * in registers while the value rows stream by. */
static inline __attribute__((always_inline)) void weighted_block(float *out, int ldo, const float *w, int ldw,
                                                                 const int M, const int32_t *pos, int32_t n,
                                                                 const float *V, int D, int c0, const int NV) {
    lk_v16 o0[8] = {{0}}, o1[8] = {{0}};
    for (int32_t j = 0; j < n; j++) {
        const float *vs = V + (size_t)(pos ? pos[j] : j) * D + c0;
        const float w0 = w[j], w1 = M > 1 ? w[(size_t)ldw + j] : 0.0f;
        for (int c = 0; c < NV; c++) {
            lk_v16 v;
            memcpy(&v, vs + 16 * c, sizeof v);
            o0[c] += w0 * v;
            if (M > 1) o1[c] += w1 * v;
        }
    }
    for (int c = 0; c < NV; c++) {
        memcpy(out + c0 + 16 * c, &o0[c], sizeof o0[c]);
        if (M > 1) memcpy(out + (size_t)ldo + c0 + 16 * c, &o1[c], sizeof o1[c]);
    }
}

/* One chunk of up to 8 vectors of 16 columns for 1 or 2 rows. */
static void weighted_chunk(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                           const float *V, int D, int c0, int nv) {
#define LK_WB(m, v) weighted_block(out, ldo, w, ldw, m, pos, n, V, D, c0, v)
    if (M == 1) {
        switch (nv) {
        case 8: LK_WB(1, 8); return;
        case 4: LK_WB(1, 4); return;
        case 2: LK_WB(1, 2); return;
        default: for (int c = 0; c < nv; c++) LK_WB(1, 1), c0 += 16; return;
        }
    }
    switch (nv) {
    case 8: LK_WB(2, 8); return;
    case 4: LK_WB(2, 4); return;
    case 2: LK_WB(2, 2); return;
    default: for (int c = 0; c < nv; c++) LK_WB(2, 1), c0 += 16; return;
    }
#undef LK_WB
}

void lk_weighted_rows(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                      const float *V, int D) {
    for (int m0 = 0; m0 < M; m0 += 2) {
        const int mb = LK_MIN(2, M - m0);
        float *ob = out + (size_t)m0 * ldo;
        const float *wb = w + (size_t)m0 * ldw;
        int c0 = 0;
        for (; c0 + 16 <= D; c0 += 128) {
            int nv = LK_MIN(8, (D - c0) / 16);
            weighted_chunk(ob, ldo, wb, ldw, mb, pos, n, V, D, c0, nv);
            if (nv < 8) {
                c0 += 16 * nv;
                break;
            }
        }
        if (c0 > D) c0 = D;
        for (int m = 0; m < mb; m++) { /* a tail of D not a multiple of 16 */
            for (int i = c0; i < D; i++) ob[(size_t)m * ldo + i] = 0.0f;
            for (int32_t j = 0; j < n && c0 < D; j++) {
                const float *vs = V + (size_t)(pos ? pos[j] : j) * D;
                for (int i = c0; i < D; i++) ob[(size_t)m * ldo + i] += wb[(size_t)m * ldw + j] * vs[i];
            }
        }
    }
}

/* Selection key as an unsigned integer ordered like the values: larger
 * values give larger keys, -0 and +0 the same key, NaN ranks below every
 * number (as -FLT_MAX), so a NaN score is never chosen over a real one and
 * k indices are always written. */
static inline uint32_t topk_key(float v) {
    float f = (v == v ? v : -FLT_MAX) + 0.0f; /* + 0: -0 becomes +0 */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u); /* negative: all bits flipped; else the sign bit */
}

/* Radix-select digits: 11, 11 and 10 bits from the top. */
static const int topk_shift[3] = {21, 10, 0}, topk_bits[3] = {11, 11, 10};

/* The top k of the m keys key[i] (0 < k < m), as a prefix class: on return
 * every key with key >> *sh > *prefix is in, and of the keys with
 * key >> *sh == *prefix (the class, live[0..] in index order) the first
 * *need >= 1 are. A radix
 * select (histograms of the digit over the keys still undecided, four
 * interleaved so runs of equal digits do not wait on one counter), the
 * undecided keys' indices compacted into live (m) between passes. */
static void topk_threshold(const uint32_t *key, int32_t m, int32_t k, int32_t *live, uint32_t *prefix, int *sh,
                           int32_t *need) {
    uint32_t hist[4][2048];
    int32_t nlive = m; /* pass 0 reads every key; later ones the live list */
    uint32_t pre = 0;
    int s = 32;
    for (int pass = 0; pass < 3 && nlive > k; pass++) {
        const int shift = topk_shift[pass], nb = 1 << topk_bits[pass];
        const uint32_t mask = (uint32_t)nb - 1;
        memset(hist, 0, sizeof hist);
        int32_t j = 0;
        if (pass == 0) {
            for (; j + 4 <= m; j += 4) {
                hist[0][key[j] >> 21]++, hist[1][key[j + 1] >> 21]++;
                hist[2][key[j + 2] >> 21]++, hist[3][key[j + 3] >> 21]++;
            }
            for (; j < m; j++) hist[0][key[j] >> 21]++;
        } else {
            for (; j + 4 <= nlive; j += 4) {
                hist[0][(key[live[j]] >> shift) & mask]++, hist[1][(key[live[j + 1]] >> shift) & mask]++;
                hist[2][(key[live[j + 2]] >> shift) & mask]++, hist[3][(key[live[j + 3]] >> shift) & mask]++;
            }
            for (; j < nlive; j++) hist[0][(key[live[j]] >> shift) & mask]++;
        }
        int d = nb - 1;
        for (;; d--) { /* the digit where the count from the top reaches k */
            const int32_t c = (int32_t)(hist[0][d] + hist[1][d] + hist[2][d] + hist[3][d]);
            if (c >= k) {
                nlive = c;
                break;
            }
            k -= c;
        }
        pre = pass == 0 ? (uint32_t)d : pre << topk_bits[pass] | (uint32_t)d;
        s = shift;
        /* keep the indices of the keys in the boundary digit (in order) */
        int32_t o = 0;
        if (pass == 0) {
            for (int32_t i = 0; i < m; i++) live[o] = i, o += (key[i] >> 21) == (uint32_t)d;
        } else { /* exactly nlive of the previous list match: stop at the last */
            for (int32_t i = 0; o < nlive; i++) {
                const int32_t t = live[i];
                live[o] = t, o += ((key[t] >> shift) & mask) == (uint32_t)d;
            }
        }
    }
    *prefix = pre, *sh = s, *need = k;
}

void lk_topk(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work) {
    if (k <= 0) return;
    if (k >= n) {
        for (int32_t i = 0; i < n; i++) idx[i] = cand ? cand[i] : i;
        return;
    }
    uint32_t *key = (uint32_t *)work;         /* (n) keys in candidate order */
    int32_t *live = (int32_t *)(work + n);    /* (n) the undecided keys' indices, then the picks */
    for (int32_t i = 0; i < n; i++) key[i] = topk_key(x[cand ? cand[i] : i]);
    uint32_t prefix = 0;
    int sh = 0;
    int32_t need = 0;
    topk_threshold(key, n, k, live, &prefix, &sh, &need); /* k < n: at least one pass, sh < 32 */
    /* every key above the prefix class, and the class members up to the
     * need-th (ties to the lower index), in candidate order; branch-free,
     * written to live (n entries) and copied out */
    const int32_t cut = live[need - 1];
    int32_t o = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint32_t kp = key[i] >> sh;
        live[o] = cand ? cand[i] : i;
        o += (kp > prefix) | ((kp == prefix) & (i <= cut));
    }
    memcpy(idx, live, (size_t)k * sizeof *idx);
}
