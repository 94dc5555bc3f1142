/*
 * kernels.c - the building blocks of attention on the CPU: scores of a few
 * query rows against many keys, weighted sums of value rows, dot products.
 * AVX-512 where the compiler targets it, GCC vector extensions (any SIMD)
 * otherwise. The top-k selection is in topk.c.
 */
#include "attn/attn.h"

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

/* Four vectors of running maxima: the scalar loop is one dependent
 * compare per element (a quarter of the dense decode's time outside its
 * kernels, dev/cpu/README.md), this one a compare and a blend per 8. The
 * blend keeps the running value where x is not greater (NaN included), as
 * the scalar loop does. */
typedef int32_t lk_v8i __attribute__((vector_size(32)));
float lk_max(const float *x, int32_t n, float m) {
    int32_t i = 0;
    if (n >= 32) {
        lk_v8 a[4]; /* from m, not x: a NaN never enters a lane */
        for (int v = 0; v < 4; v++)
            for (int l = 0; l < 8; l++) a[v][l] = m;
        for (; i + 32 <= n; i += 32)
            for (int v = 0; v < 4; v++) {
                lk_v8 y;
                memcpy(&y, x + i + 8 * v, sizeof y);
                const lk_v8i gt = y > a[v];
                a[v] = (lk_v8)((gt & (lk_v8i)y) | (~gt & (lk_v8i)a[v]));
            }
        for (int v = 0; v < 4; v++)
            for (int l = 0; l < 8; l++) m = a[v][l] > m ? a[v][l] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
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
