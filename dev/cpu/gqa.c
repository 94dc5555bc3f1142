/*
 * gqa.c - the dense decode step of one attention layer (issue 11 item 2):
 * where the time of the grouped (GQA) and MHA dense kernels goes on an
 * AVX-512 CPU, and register-blocked variants of the AVX-512 score and
 * weighted-sum kernels.
 *
 *   make gqa && ./gqa [S [Hkv [G [passes [rounds [inner]]]]]]   (default 65536 8 4 5 3 1)
 * inner: steps per thread start, for cache-resident sizes (S = 1024: 2 MiB
 * of K + V per thread, L2-resident on a 2.5 MiB L2).
 *
 * The layer is what `loki bench attention -ctk f16 -ctv f16` builds: Hkv KV
 * heads of S f16 key rows and S f16 value rows of D = 128 (each head's rows
 * contiguous, the regions 2 MiB aligned and hugepage-advised like
 * lk_alloc_aligned), G query rows per KV head. Two threads take KV heads
 * kh = ith, ith + 2, ... as run.c's decode_worker does, and each runs a copy
 * of run.c's dense_decode (blocks of 256 keys, online softmax) with the
 * kernel pair of the variant:
 *   engine  lk_scores_rows / lk_weighted_rows_t of src/attn/kv.c (AVX-512)
 *   avx2    the same entry points of kv_avx2.c, built with -mno-avx512f
 *   new     the register-blocked AVX-512 kernels below (knobs: -DPFK=bytes
 *           key prefetch distance, -DPFV=bytes value prefetch distance,
 *           -DWB=value rows per block of the weighted sum, -DKR=keys per
 *           tile of the scores)
 *   fused   the new kernels with the max kept by the score tiles and the
 *           exps of each 16 value rows computed just before their weighted
 *           sum (under the value loads), out rescaled in place (the
 *           prototype of lk_dense_block; D = 128, G = 4, S a multiple of 256)
 *   engf    run.c's dense_decode over kv.c's lk_dense_block
 *   read    the same bytes in the same order, summed, no arithmetic (the
 *           roof), with the new kernels' prefetch
 * and with any 7th argument also new-sc (new scores, values only read),
 * new-wt (keys only read, new weighted sums) and none (no bytes read: the
 * driver's own time). The driver's max and exps: -DDRV=0 run.c's loops as
 * of 4db5b18 (scalar max, 8-lane exp), 1 (default) vectorised max, 16-lane
 * exp. ("engine" is the kv.c of the tree: after the kernels moved there it
 * equals "new".)
 * Before timing, each variant's output is compared with the engine's
 * (max |diff|). Rounds interleave the variants; GB/s = K + V bytes per step
 * over the median of `passes` steps.
 */

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "attn/attn.h"
#include "attn/kv_simd.h"
#include "core/tensor.h"
#include "cpu/simd512.h"

#ifndef PFK
#define PFK 4096
#endif
#ifndef PFV
#define PFV 4096
#endif
#ifndef WB
#define WB 16
#endif
#ifndef KR
#define KR 4
#endif

/* kv_avx2.c built without AVX-512: the AVX2 kernels (and the exp both use) */
void lk_scores_rows_avx2(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                         int32_t ldo);
void lk_weighted_rows_t_avx2(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                             const lk_rows *V);
float lk_exp_shift_avx2(float *x, int32_t n, float m);

enum { D = 128, BLK = 256 };

#define LK_AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

LK_AI __m512 ld16(const uint8_t *row, int c) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * c))); }

LK_AI void pf_bytes(const uint8_t *p, size_t n) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* scores: MR query rows x 4 keys, 4*MR accumulators; each 16-value chunk of
 * a key widened once for all MR rows */
LK_AI void stile(const lk_rows *K, int32_t s0, int32_t s1, const float *Q, int ldq, const int MR, float scale,
                 float *out, int32_t ldo, const int pf) {
    int32_t s = s0;
    for (; s + 4 <= s1; s += 4) {
        const uint8_t *r0 = lk_row(K, s), *r1 = r0 + K->stride, *r2 = r1 + K->stride, *r3 = r2 + K->stride;
        if (pf && PFK) pf_bytes(r0 + PFK, 4 * K->stride);
        __m512 a[4][4];
        UNROLL for (int m = 0; m < MR; m++) UNROLL for (int i = 0; i < 4; i++) a[m][i] = _mm512_setzero_ps();
        UNROLL for (int c = 0; c < D; c += 16) {
            const __m512 k0 = ld16(r0, c), k1 = ld16(r1, c), k2 = ld16(r2, c), k3 = ld16(r3, c);
            UNROLL for (int m = 0; m < MR; m++) {
                const __m512 q = _mm512_loadu_ps(Q + (size_t)m * ldq + c);
                a[m][0] = _mm512_fmadd_ps(k0, q, a[m][0]);
                a[m][1] = _mm512_fmadd_ps(k1, q, a[m][1]);
                a[m][2] = _mm512_fmadd_ps(k2, q, a[m][2]);
                a[m][3] = _mm512_fmadd_ps(k3, q, a[m][3]);
            }
        }
        UNROLL for (int m = 0; m < MR; m++)
            _mm_storeu_ps(out + (size_t)m * ldo + s, _mm_mul_ps(lk_hsum4_512(a[m][0], a[m][1], a[m][2], a[m][3]), _mm_set1_ps(scale)));
    }
    for (; s < s1; s++)
        for (int m = 0; m < MR; m++) {
            __m512 a = _mm512_setzero_ps();
            for (int c = 0; c < D; c += 16) a = _mm512_fmadd_ps(ld16(lk_row(K, s), c), _mm512_loadu_ps(Q + (size_t)m * ldq + c), a);
            out[(size_t)m * ldo + s] = _mm512_reduce_add_ps(a) * scale;
        }
}

static void scores_new(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                       int32_t ldo) {
    for (int32_t b0 = 0; b0 < S; b0 += 64) {
        const int32_t b1 = LK_MIN(S, b0 + 64);
        int m = 0, pf = 1;
        for (; m + 4 <= M; m += 4, pf = 0) stile(K, b0, b1, Q + (size_t)m * ldq, ldq, 4, scale, out + (size_t)m * ldo, ldo, pf);
        if (M - m >= 2) stile(K, b0, b1, Q + (size_t)m * ldq, ldq, 2, scale, out + (size_t)m * ldo, ldo, pf), m += 2, pf = 0;
        if (m < M) stile(K, b0, b1, Q + (size_t)m * ldq, ldq, 1, scale, out + (size_t)m * ldo, ldo, pf);
    }
}

/* weighted sums: MR rows x NV 16-column vectors of out over value rows
 * [j0, j1) */
LK_AI void wtile(float *out, int ldo, const float *w, int ldw, const int MR, int32_t j0, int32_t j1, const lk_rows *V,
                 int c0, const int NV, const int pf) {
    __m512 o[4][8];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int v = 0; v < NV; v++) o[m][v] = _mm512_loadu_ps(out + (size_t)m * ldo + c0 + 16 * v);
    for (int32_t j = j0; j < j1; j++) {
        const uint8_t *row = lk_row(V, j);
        if (pf && PFV) pf_bytes(row + PFV, V->stride);
        __m512 x[8];
        UNROLL for (int v = 0; v < NV; v++) x[v] = ld16(row, c0 + 16 * v);
        UNROLL for (int m = 0; m < MR; m++) {
            const __m512 wm = _mm512_set1_ps(w[(size_t)m * ldw + j]);
            UNROLL for (int v = 0; v < NV; v++) o[m][v] = _mm512_fmadd_ps(wm, x[v], o[m][v]);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int v = 0; v < NV; v++) _mm512_storeu_ps(out + (size_t)m * ldo + c0 + 16 * v, o[m][v]);
}

static void weighted_new(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                         const lk_rows *V) {
    (void)pos;
    for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo, 0, sizeof(float) * D);
    for (int32_t b0 = 0; b0 < n; b0 += WB) {
        const int32_t b1 = LK_MIN(n, b0 + WB);
        int m = 0, pf = 1;
        for (; m + 4 <= M; m += 4, pf = 0) {
            wtile(out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 4, b0, b1, V, 0, 4, pf);
            wtile(out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 4, b0, b1, V, 64, 4, 0);
        }
        if (M - m >= 2) {
            wtile(out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 2, b0, b1, V, 0, 8, pf);
            m += 2, pf = 0;
        }
        if (m < M) wtile(out + (size_t)m * ldo, ldo, w + (size_t)m * ldw, ldw, 1, b0, b1, V, 0, 8, pf);
    }
}


/* fused: scores + block max in one pass over the keys; the exps of each
 * 16-row value block computed in the weighted-sum pass (under the value
 * loads), out rescaled in place (no tmp) */
LK_AI __m128 stile_max(const lk_rows *K, int32_t s0, int32_t s1, const float *Q, int ldq, float scale, float *out,
                       int32_t ldo, __m128 mxv[4]) {
    for (int32_t s = s0; s < s1; s += 4) {
        const uint8_t *r0 = lk_row(K, s), *r1 = r0 + K->stride, *r2 = r1 + K->stride, *r3 = r2 + K->stride;
        if (PFK) pf_bytes(r0 + PFK, 4 * K->stride);
        __m512 a[4][4];
        UNROLL for (int m = 0; m < 4; m++) UNROLL for (int i = 0; i < 4; i++) a[m][i] = _mm512_setzero_ps();
        UNROLL for (int c = 0; c < D; c += 16) {
            const __m512 k0 = ld16(r0, c), k1 = ld16(r1, c), k2 = ld16(r2, c), k3 = ld16(r3, c);
            UNROLL for (int m = 0; m < 4; m++) {
                const __m512 q = _mm512_loadu_ps(Q + (size_t)m * ldq + c);
                a[m][0] = _mm512_fmadd_ps(k0, q, a[m][0]);
                a[m][1] = _mm512_fmadd_ps(k1, q, a[m][1]);
                a[m][2] = _mm512_fmadd_ps(k2, q, a[m][2]);
                a[m][3] = _mm512_fmadd_ps(k3, q, a[m][3]);
            }
        }
        UNROLL for (int m = 0; m < 4; m++) {
            __m128 r = _mm_mul_ps(lk_hsum4_512(a[m][0], a[m][1], a[m][2], a[m][3]), _mm_set1_ps(scale));
            mxv[m] = _mm_max_ps(mxv[m], r);
            _mm_storeu_ps(out + (size_t)m * ldo + s, r);
        }
    }
    return mxv[0];
}
static void dense_fused(const lk_rows *K0, const lk_rows *V0, const float *q, int rows, int32_t nk, float *out,
                        float *S) {
    float mx[4], l[4];
    const float scale = 1.0f / sqrtf((float)D);
    for (int r = 0; r < 4; r++) mx[r] = -FLT_MAX, l[r] = 0.0f;
    memset(out, 0, sizeof(float) * 4 * D);
    __m512 lsum[4];
    for (int r = 0; r < 4; r++) lsum[r] = _mm512_setzero_ps();
    for (int32_t b0 = 0; b0 < nk; b0 += BLK) {
        const int32_t nb = BLK; /* nk multiple of BLK in this prototype */
        lk_rows k = *K0, v = *V0;
        k.p = lk_row(K0, b0), v.p = lk_row(V0, b0);
        __m128 mxv[4];
        for (int r = 0; r < 4; r++) mxv[r] = _mm_set1_ps(-FLT_MAX);
        for (int32_t s0 = 0; s0 < nb; s0 += 64) stile_max(&k, s0, s0 + 64, q, D, scale, S, nb, mxv);
        __m512 mv[4];
        for (int r = 0; r < 4; r++) {
            __m128 x = mxv[r];
            x = _mm_max_ps(x, _mm_movehl_ps(x, x));
            x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
            const float m = fmaxf(mx[r], _mm_cvtss_f32(x));
            if (m > mx[r]) {
                const float c = expf(mx[r] - m);
                lsum[r] = _mm512_mul_ps(lsum[r], _mm512_set1_ps(c));
                for (int i = 0; i < D; i++) out[(size_t)r * D + i] *= c;
                mx[r] = m;
            }
            mv[r] = _mm512_set1_ps(mx[r]);
        }
        for (int32_t j0 = 0; j0 < nb; j0 += WB) {
            for (int r = 0; r < 4; r++)
                for (int32_t j = j0; j < j0 + WB; j += 16) {
                    const __m512 e = lk_exp512_flush64(_mm512_sub_ps(_mm512_loadu_ps(S + (size_t)r * nb + j), mv[r]));
                    lsum[r] = _mm512_add_ps(lsum[r], e);
                    _mm512_storeu_ps(S + (size_t)r * nb + j, e);
                }
            wtile(out, D, S, nb, 4, j0, j0 + WB, &v, 0, 4, 1);
            wtile(out, D, S, nb, 4, j0, j0 + WB, &v, 64, 4, 0);
        }
    }
    for (int r = 0; r < 4; r++) {
        l[r] = _mm512_reduce_add_ps(lsum[r]);
        for (int i = 0; i < D; i++) out[(size_t)r * D + i] /= l[r];
    }
}

/* the roof: every byte of the block read once, in the same order */
static void scores_read(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                        int32_t ldo) {
    __m512i a = _mm512_setzero_si512(), b = a;
    for (int32_t s = 0; s < S; s++) {
        const uint8_t *r = lk_row(K, s);
        if (PFK && (s & 3) == 0) pf_bytes(r + PFK, 4 * K->stride);
        for (size_t o = 0; o < K->stride; o += 128)
            a = _mm512_add_epi32(a, _mm512_loadu_si512(r + o)), b = _mm512_add_epi32(b, _mm512_loadu_si512(r + o + 64));
    }
    const float bit = (float)(_mm512_reduce_add_epi32(_mm512_add_epi32(a, b)) & 1);
    for (int m = 0; m < M; m++)
        for (int32_t s = 0; s < S; s++) out[(size_t)m * ldo + s] = bit - 1e-3f * (float)s;
}

static void weighted_read(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                          const lk_rows *V) {
    __m512i a = _mm512_setzero_si512(), b = a;
    for (int32_t j = 0; j < n; j++) {
        const uint8_t *r = lk_row(V, j);
        if (PFV) pf_bytes(r + PFV, V->stride);
        for (size_t o = 0; o < V->stride; o += 128)
            a = _mm512_add_epi32(a, _mm512_loadu_si512(r + o)), b = _mm512_add_epi32(b, _mm512_loadu_si512(r + o + 64));
    }
    for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo, 0, sizeof(float) * D);
    out[0] += (float)(_mm512_reduce_add_epi32(_mm512_add_epi32(a, b)) & 1);
}

/* nothing read: the driver's own time (max, exps, rescaling) */
static void scores_none(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                        int32_t ldo) {
    for (int m = 0; m < M; m++)
        for (int32_t s = 0; s < S; s++) out[(size_t)m * ldo + s] = -1e-3f * (float)s;
}

static void weighted_none(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                          const lk_rows *V) {
    for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo, 0, sizeof(float) * D);
}

typedef void (*scores_fn)(const lk_rows *, int32_t, const float *, int, int, float, float *, int32_t);
typedef void (*weighted_fn)(float *, int, const float *, int, int, const int32_t *, int32_t, const lk_rows *);

typedef struct variant {
    const char *name;
    scores_fn sc;
    weighted_fn wt;
} variant;

#ifndef DRV
#define DRV 1
#endif

/* max of x[0..n): 4 x 8 lanes of GCC vector extensions (the scalar loop is
 * one dependent compare per key) */
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32)));
static float vmax(const float *x, int32_t n, float m) {
    int32_t j = 0;
    if (n >= 32) {
        v8f a[4];
        for (int i = 0; i < 4; i++) memcpy(&a[i], x + 8 * i, sizeof a[i]);
        for (j = 32; j + 32 <= n; j += 32)
            for (int i = 0; i < 4; i++) {
                v8f y;
                memcpy(&y, x + j + 8 * i, sizeof y);
                v8i gt = y > a[i];
                a[i] = (v8f)((gt & (v8i)y) | (~gt & (v8i)a[i]));
            }
        for (int i = 0; i < 4; i++)
            for (int l = 0; l < 8; l++) m = a[i][l] > m ? a[i][l] : m;
    }
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}


static float exp_shift16(float *x, int32_t n, float m) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    for (int32_t i = 0; i < n; i += 16) {
        const __mmask16 t = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(t, lk_exp512_flush64(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + i), mv)));
        _mm512_mask_storeu_ps(x + i, t, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

/* run.c's dense_decode for d = D, no window */
static void dense(const variant *vr, const lk_rows *K0, const lk_rows *V0, const float *q, int rows, int32_t nk,
                  float *out, float *S) {
    if (!vr->sc && !vr->wt) { dense_fused(K0, V0, q, rows, nk, out, S); return; }
    if (!vr->sc) { /* run.c's dense_decode over lk_dense_block (kv.c) */
        float mx[64], l[64];
        for (int r = 0; r < rows; r++) mx[r] = -FLT_MAX, l[r] = 0.0f;
        memset(out, 0, sizeof(float) * (size_t)rows * D);
        for (int32_t b0 = 0; b0 < nk; b0 += BLK) {
            lk_rows k = *K0, v = *V0;
            k.p = lk_row(K0, b0), v.p = lk_row(V0, b0);
            lk_dense_block(&k, &v, LK_MIN(BLK, nk - b0), q, D, rows, 1.0f / sqrtf((float)D), S, mx, l, out, D);
        }
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < D; i++) out[(size_t)r * D + i] /= l[r];
        return;
    }
    float tmp[4096], mx[64], l[64];
    const float scale = 1.0f / sqrtf((float)D);
    for (int r = 0; r < rows; r++) mx[r] = -FLT_MAX, l[r] = 0.0f;
    for (int32_t b0 = 0; b0 < nk; b0 += BLK) {
        const int32_t nb = LK_MIN(BLK, nk - b0);
        lk_rows k = *K0, v = *V0;
        k.p = lk_row(K0, b0), v.p = lk_row(V0, b0);
        vr->sc(&k, nb, q, D, rows, scale, S, nb);
        for (int r = 0; r < rows; r++) {
            float *x = S + (size_t)r * nb, m = mx[r];
            if (DRV) m = vmax(x, nb, m);
            else for (int32_t j = 0; j < nb; j++) m = x[j] > m ? x[j] : m;
            const float c = b0 ? expf(mx[r] - m) : 0.0f;
            l[r] = l[r] * c + (DRV ? exp_shift16(x, nb, m) : lk_exp_shift_avx2(x, nb, m));
            mx[r] = m;
            if (b0)
                for (int i = 0; i < D; i++) out[(size_t)r * D + i] *= c;
        }
        vr->wt(b0 ? tmp : out, D, S, nb, rows, NULL, nb, &v);
        if (b0)
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < D; i++) out[(size_t)r * D + i] += tmp[(size_t)r * D + i];
    }
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < D; i++) out[(size_t)r * D + i] /= l[r];
}

typedef struct job {
    const variant *vr;
    uint8_t *K, *V;
    const float *Q;
    float *out, *S;
    int32_t S_, Hkv, G, ith, inner;
} job;

static void *worker(void *arg) {
    job *j = arg;
    for (int it = 0; it < j->inner; it++)
    for (int kh = j->ith; kh < j->Hkv; kh += 2) {
        lk_rows K = {j->K + (size_t)kh * j->S_ * 2 * D, 2 * D, D, LOKI_KV_F16, false};
        lk_rows V = {j->V + (size_t)kh * j->S_ * 2 * D, 2 * D, D, LOKI_KV_F16, false};
        dense(j->vr, &K, &V, j->Q + (size_t)kh * j->G * D, j->G, j->S_, j->out + (size_t)kh * j->G * D, j->S);
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* one timed step per thread start, or `inner` of them (argv[6]: cache-resident
 * sizes without the thread start-up) */
static double step(const variant *vr, uint8_t *K, uint8_t *V, const float *Q, float *out, float *Sb[2], int32_t S,
                   int Hkv, int G, int inner) {
    pthread_t th[2];
    job jb[2];
    double t0 = now();
    for (int i = 0; i < 2; i++) {
        jb[i] = (job){vr, K, V, Q, out, Sb[i], S, Hkv, G, i, inner};
        pthread_create(&th[i], NULL, worker, &jb[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    return now() - t0;
}

static void *huge_alloc(size_t n) {
    size_t sz = (n + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    void *p = NULL;
    if (posix_memalign(&p, 2u << 20, sz)) return NULL;
    madvise(p, sz, MADV_HUGEPAGE);
    memset(p, 0, sz);
    return p;
}

static int cmpd(const void *a, const void *b) { return *(const double *)a < *(const double *)b ? -1 : 1; }

int main(int argc, char **argv) {
    const int32_t S = argc > 1 ? atoi(argv[1]) : 65536;
    const int Hkv = argc > 2 ? atoi(argv[2]) : 8, G = argc > 3 ? atoi(argv[3]) : 4;
    const int P = argc > 4 ? atoi(argv[4]) : 5, R = argc > 5 ? atoi(argv[5]) : 3;
    const int inner = argc > 6 ? atoi(argv[6]) : 1;
    const size_t bytes = (size_t)Hkv * S * 2 * D;
    uint8_t *K = huge_alloc(bytes), *V = huge_alloc(bytes);
    float *Q = malloc(sizeof(float) * Hkv * G * D), *out = malloc(sizeof(float) * Hkv * G * D),
          *ref = malloc(sizeof(float) * Hkv * G * D), *Sb[2] = {malloc(sizeof(float) * G * BLK * 2), malloc(sizeof(float) * G * BLK * 2)};
    if (!K || !V || !Q || !out || !ref || !Sb[0] || !Sb[1]) return 1;
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < bytes / 2; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const float u = (float)(x >> 40) / 16777216.0f * 2.0f - 1.0f;
        ((uint16_t *)K)[i] = lk_f32_to_f16(1.7f * u), ((uint16_t *)V)[i] = lk_f32_to_f16(u);
    }
    for (int i = 0; i < Hkv * G * D; i++) Q[i] = 1.7f * (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    const variant vs[] = {{"engine", lk_scores_rows, lk_weighted_rows_t},
                          {"avx2", lk_scores_rows_avx2, lk_weighted_rows_t_avx2},
                          {"new", scores_new, weighted_new},
                          {"engf", NULL, weighted_none},
                          {"fused", NULL, NULL},
                          {"read", scores_read, weighted_read},
                          {"new-sc", scores_new, weighted_read},
                          {"new-wt", scores_read, weighted_new},
                          {"none", scores_none, weighted_none}};
    const int NVAR = argc > 7 ? 9 : 6;
    step(&vs[0], K, V, Q, ref, Sb, S, Hkv, G, inner);
    printf("S %d Hkv %d G %d: %.1f MB per step; PFK %d PFV %d WB %d\n", S, Hkv, G, 2e-6 * bytes, PFK, PFV, WB);
    for (int v = 1; v < 5; v++) {
        step(&vs[v], K, V, Q, out, Sb, S, Hkv, G, inner);
        double md = 0, mr = 0;
        for (int i = 0; i < Hkv * G * D; i++) md = fmax(md, fabs(out[i] - ref[i])), mr = fmax(mr, fabs(ref[i]));
        printf("  %-6s max |diff| vs engine %.3g (max |ref| %.3g)\n", vs[v].name, md, mr);
    }
    for (int r = 0; r < R; r++) {
        printf("round %d:", r);
        for (int v = 0; v < NVAR; v++) {
            double t[64];
            for (int p = 0; p < P && p < 64; p++) t[p] = step(&vs[v], K, V, Q, out, Sb, S, Hkv, G, inner);
            qsort(t, (size_t)LK_MIN(P, 64), sizeof *t, cmpd);
            const double med = t[LK_MIN(P, 64) / 2];
            printf("  %s %.2f ms %.1f GB/s", vs[v].name, 1e3 * med, 2.0 * bytes * inner / med / 1e9);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
