/*
 * q4k.c - q4_k decode matvec variants on DRAM-streamed 7B-shaped weights
 * (dev/cpu only; issue 8's 60%-of-DRAM goal). Links the real backend, so
 * variant "engine" is exactly what `loki bench decode` runs per matmul.
 *
 *   make q4k && ./q4k [passes [rounds [hugepages [threads [small]]]]]
 *
 * Weights: 4 Llama-2-7B layers of q4_k matrices (wq wk wv wo 4096x4096,
 * w1 w3 4096->11008, w2 11008->4096; 455 MB, far above the 48 MB L3),
 * random blocks with finite scales, allocated 2 MiB aligned with
 * MADV_HUGEPAGE (as the random-weight model arena) unless hugepages = 0;
 * small = 1 makes every matrix the same L2-resident 2048x256 one (the
 * kernels' compute ceiling). One pass = every matrix once, x quantized once
 * per matrix as the engine does, rows split across the pool as in
 * matmul.c; per variant and round the median (min..max) GB/s of `passes`
 * passes; rounds interleave the variants so machine noise hits all alike.
 * Variants: A = the engine's row body (scalar scale decode), B = the block
 * header's scales decoded in a vector (hdr_scales); 2 or 4 rows per
 * iteration; software prefetch pfN bytes ahead in each row (pf2row: two
 * rows' bytes ahead), 3 lines per block (B2l: 2, B2t1: hint T1); read = the
 * same bytes in the same order with no arithmetic (the pattern's ceiling).
 * Each variant is checked against the engine before timing. */
#include "cpu/cpu.h"
#include "cpu/cpu_internal.h"
#include "core/quant.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LK_AI static inline __attribute__((always_inline))

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

/* ----------------------------------------------------------- kernels */

/* sc/m decode, k_xside: as in src/cpu/quant_x86.c */
LK_AI void k_scales(const uint8_t *sc12, uint64_t *sc, uint64_t *m) {
    const uint32_t a = lk_ld32(sc12), b = lk_ld32(sc12 + 4), c = lk_ld32(sc12 + 8);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
    *sc = (uint64_t)sc_lo | (uint64_t)sc_hi << 32;
    *m = (uint64_t)m_lo | (uint64_t)m_hi << 32;
}

typedef struct k_x {
    __m512i X[4];
    __m512 d, s32;
} k_x;

LK_AI k_x k_xside(const lk_q8_act *x, int64_t ib) {
    k_x a;
    const int8_t *q = x->q + 256 * ib;
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const int8_t *p = q + 128 * (i >> 1) + 32 * (i & 1);
        a.X[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)p)),
                                    _mm256_load_si256((const __m256i *)(p + 64)), 1);
    }
    a.d = _mm512_maskz_loadu_ps(0xff, x->d + 8 * ib);
    a.s32 = _mm512_maskz_loadu_ps(0xff, x->s32 + 8 * ib);
    return a;
}

/* Variant A: the engine's row body (scalar scale decode). */
LK_AI void rowA(const lk_block_q4_k *b, const k_x *a, __m512 *acc, __m512 *accm) {
    const __m512i idx[4] = {
        _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
        _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4),
        _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5)};
    uint64_t sc, m;
    k_scales(b->scales, &sc, &m);
    const __m512 scf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    const __m512 mf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m)));
    const __m512 c = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b->d)), scf), a->d);
    *accm = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b->dmin)), mf), a->s32, *accm);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i u[4];
    #pragma GCC unroll 4
    for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(b->qs + 64 * h));
        u[2 * h] = _mm512_and_si512(v, m4);
        u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[i], a->X[i]);
        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx[i], c), *acc);
    }
}

/* Variant B: the scales of the block header decoded in a vector: the 16
 * header bytes [d dmin | a | b | c] give V = [sc0..7 | m0..7] (bytes) with
 * two pshufb, a variable word shift and masks, widened to 16 floats and
 * multiplied by [d x8 | dmin x8]. */
LK_AI __m512 hdr_scales(const uint8_t *h) {
    const __m128i H = _mm_loadu_si128((const __m128i *)h);
    /* A = [a | c | b | c], B = [0 | a | 0 | b] */
    const __m128i A = _mm_shuffle_epi8(H, _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m128i B = _mm_shuffle_epi8(H, _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
    /* lanes 4..7: c & 15 | (a >> 6) << 4; lanes 12..15: c >> 4 | (b >> 6) << 4 */
    const __m128i lo = _mm_and_si128(_mm_srlv_epi16(A, _mm_setr_epi16(0, 0, 0, 0, 0, 0, 4, 4)), _mm_set1_epi8(0x0f));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(B, 2), _mm_set1_epi8(0x30));
    const __m128i V = _mm_mask_blend_epi8(0x0f0f, _mm_or_si128(lo, hi), _mm_and_si128(A, _mm_set1_epi8(0x3f)));
    const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(V));
    const __m256i dd = _mm256_permutexvar_epi16(_mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                                _mm256_castsi128_si256(H));
    return _mm512_mul_ps(f, _mm512_cvtph_ps(dd));
}

LK_AI void rowB(const lk_block_q4_k *b, const k_x *a, __m512 *acc, __m512 *accm) {
    const __m512i idx[4] = {
        _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
        _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4),
        _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5)};
    const __m512 P = hdr_scales((const uint8_t *)b); /* [d sc | dmin m] */
    const __m512 c = _mm512_mul_ps(P, a->d);          /* lanes 8..15: d of x = 0 */
    *accm = _mm512_fnmadd_ps(P, a->s32, *accm);       /* a->s32 in lanes 8..15 here */
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i u[4];
    #pragma GCC unroll 4
    for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(b->qs + 64 * h));
        u[2 * h] = _mm512_and_si512(v, m4);
        u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[i], a->X[i]);
        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx[i], c), *acc);
    }
}

LK_AI k_x k_xsideB(const lk_q8_act *x, int64_t ib) {
    k_x a = k_xside(x, ib);
    a.s32 = _mm512_castsi512_ps(_mm512_maskz_expandloadu_epi32(0xff00, x->s32 + 8 * ib));
    return a;
}

LK_AI void pf(const uint8_t *p, int dist) {
    _mm_prefetch((const char *)p + dist, _MM_HINT_T0);
    _mm_prefetch((const char *)p + dist + 64, _MM_HINT_T0);
    _mm_prefetch((const char *)p + dist + 128, _MM_HINT_T0);
}
LK_AI void pf2l(const uint8_t *p, int dist) {
    _mm_prefetch((const char *)p + dist, _MM_HINT_T0);
    _mm_prefetch((const char *)p + dist + 72, _MM_HINT_T0);
}
LK_AI void pft1(const uint8_t *p, int dist) {
    _mm_prefetch((const char *)p + dist, _MM_HINT_T1);
    _mm_prefetch((const char *)p + dist + 64, _MM_HINT_T1);
    _mm_prefetch((const char *)p + dist + 128, _MM_HINT_T1);
}

/* R rows at a time (R = 1, 2, 4); row body A or B; prefetch pfd bytes ahead
 * (0: none; 144 bytes a block => 3 lines per block and row). */
#define MV_VARIANT(NAME, R, ROW, XSIDE, PF)                                                                 \
    static void NAME(float *y, const lk_block_q4_k *w, const lk_q8_act *x, int64_t in, int64_t r0,     \
                     int64_t r1, int pfd) {                                                            \
        const int64_t nsb = in / 256;                                                                  \
        if (pfd < 0) pfd = (int)(-pfd * nsb * (int64_t)sizeof(lk_block_q4_k));                          \
        int64_t r = r0;                                                                                \
        for (; r + R <= r1; r += R) {                                                                  \
            __m512 acc[R], accm[R];                                                                    \
            _Pragma("GCC unroll 4") for (int k = 0; k < R; k++) acc[k] = accm[k] = _mm512_setzero_ps(); \
            for (int64_t ib = 0; ib < nsb; ib++) {                                                     \
                if (pfd) {                                                                             \
                    _Pragma("GCC unroll 4") for (int k = 0; k < R; k++)                                \
                        PF((const uint8_t *)(w + (r + k) * nsb + ib), pfd);                            \
                }                                                                                      \
                const k_x xs = XSIDE(x, ib);                                                           \
                _Pragma("GCC unroll 4") for (int k = 0; k < R; k++)                                    \
                    ROW(w + (r + k) * nsb + ib, &xs, &acc[k], &accm[k]);                               \
            }                                                                                          \
            _Pragma("GCC unroll 4") for (int k = 0; k < R; k++)                                        \
                y[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[k], accm[k]));                       \
        }                                                                                              \
        for (; r < r1; r++) {                                                                          \
            __m512 a0 = _mm512_setzero_ps(), m0 = a0;                                                  \
            for (int64_t ib = 0; ib < nsb; ib++) {                                                     \
                const k_x xs = XSIDE(x, ib);                                                           \
                ROW(w + r * nsb + ib, &xs, &a0, &m0);                                                  \
            }                                                                                          \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, m0));                                        \
        }                                                                                              \
    }

MV_VARIANT(mvA2, 2, rowA, k_xside, pf)
MV_VARIANT(mvB2, 2, rowB, k_xsideB, pf)
MV_VARIANT(mvB2l, 2, rowB, k_xsideB, pf2l)
MV_VARIANT(mvB2t1, 2, rowB, k_xsideB, pft1)
MV_VARIANT(mvB4, 4, rowB, k_xsideB, pf)

/* Read only: the same bytes in the same order as a 2-row kernel, summed. */
static void mv_read(float *y, const lk_block_q4_k *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1,
                    int pfd) {
    const int64_t nsb = in / 256;
    __m512i s = _mm512_setzero_si512();
    for (int64_t r = r0; r + 2 <= r1; r += 2)
        for (int64_t ib = 0; ib < nsb; ib++)
            for (int k = 0; k < 2; k++) {
                const uint8_t *b = (const uint8_t *)(w + (r + k) * nsb + ib);
                s = _mm512_add_epi32(s, _mm512_loadu_si512(b));
                s = _mm512_add_epi32(s, _mm512_loadu_si512(b + 64));
                s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(0xf, b + 128));
            }
    y[r0] = (float)_mm512_reduce_add_epi32(s);
}

/* ------------------------------------------------------------ driver */

typedef void (*mv_fn)(float *, const lk_block_q4_k *, const lk_q8_act *, int64_t, int64_t, int64_t, int);
typedef struct variant {
    const char *name;
    mv_fn fn; /* NULL: the engine's lk_mv_qdot_x86 */
    int pfd;
} variant;

typedef struct task {
    const variant *v;
    float *y;
    const lk_block_q4_k *w;
    const lk_q8_act *x;
    int64_t in, out;
} task;

static void run_task(void *arg, int ith, int nth) {
    const task *t = arg;
    int64_t r0, r1;
    lk_split(t->out, 4, ith, nth, &r0, &r1);
    if (t->v->fn) t->v->fn(t->y, t->w, t->x, t->in, r0, r1, t->v->pfd);
    else lk_mv_qdot_x86(LK_DTYPE_Q4_K, t->y, t->w, t->x, t->in, r0, r1);
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const int passes = argc > 1 ? atoi(argv[1]) : 5, rounds = argc > 2 ? atoi(argv[2]) : 3;
    const int huge = argc > 3 ? atoi(argv[3]) : 1;
    const int nthr = argc > 4 ? atoi(argv[4]) : 2;
    const int small = argc > 5 ? atoi(argv[5]) : 0; /* 1: every matrix is the same 2048x256 (L2-resident) */
    /* one layer: wq wk wv wo (4096x4096), w1 w3 (4096 -> 11008), w2 (11008 -> 4096) */
    enum { NL = 4, NM = 7 * NL };
    int64_t ins[NM], outs[NM];
    size_t offs[NM], total = 0;
    for (int i = 0; i < NM; i++) {
        int k = i % 7;
        ins[i] = small ? 2048 : k == 6 ? 11008 : 4096;
        outs[i] = small ? 256 : k == 4 || k == 5 ? 11008 : 4096;
        offs[i] = small ? 0 : total;
        total += (size_t)(ins[i] / 256) * outs[i] * sizeof(lk_block_q4_k);
    }
    const size_t hp = (size_t)2 << 20, sz = (total + (size_t)(200 << 20) + hp - 1) & ~(hp - 1);
    uint8_t *W = NULL;
    if (posix_memalign((void **)&W, hp, sz)) return 1;
    if (huge) madvise(W, sz, MADV_HUGEPAGE);
    else madvise(W, sz, MADV_NOHUGEPAGE);
    uint64_t s = 12345;
    for (size_t i = 0; i < sz / 8; i++) ((uint64_t *)W)[i] = rng(&s);
    for (size_t o = 0; o + sizeof(lk_block_q4_k) <= sz; o += sizeof(lk_block_q4_k)) { /* finite scales: d, dmin in [2^-10, 2^-9) */
        lk_block_q4_k *b = (lk_block_q4_k *)(W + o);
        b->d = (uint16_t)(0x1400 | (b->d & 0x3ff));
        b->dmin = (uint16_t)(0x1400 | (b->dmin & 0x3ff));
    }
    /* quantized x per matrix input size */
    float *xf = malloc(sizeof(float) * 11008);
    for (int i = 0; i < 11008; i++) xf[i] = (float)((int64_t)(rng(&s) >> 40) - (1 << 23)) / (1 << 23);
    lk_q8_act xq = {aligned_alloc(64, 11008), aligned_alloc(64, 4 * 512), aligned_alloc(64, 4 * 512),
                    aligned_alloc(64, 4 * 512), aligned_alloc(64, 4 * 1024)};
    memset(xq.d, 0, 4 * 512); memset(xq.s32, 0, 4 * 512);
    float *y = aligned_alloc(64, sizeof(float) * 11008), *yref = aligned_alloc(64, sizeof(float) * 11008);
    lk_pool *pool;
    lk_pool_init(&pool, nthr, NULL);
    const variant vs[] = {
        {"engine", NULL, 0},       {"read", mv_read, 0},
        {"A2 pf8192", mvA2, 8192}, {"A2 pf16k", mvA2, 16384}, {"A2 pf2row", mvA2, -2},
        {"B2 pf0", mvB2, 0},       {"B2 pf8192", mvB2, 8192}, {"B2 pf16k", mvB2, 16384},
        {"B2 pf2row", mvB2, -2},   {"B2l pf8192", mvB2l, 8192}, {"B2t1 pf8192", mvB2t1, 8192},
        {"B4 pf0", mvB4, 0},       {"B4 pf8192", mvB4, 8192}, {"B4 pf16k", mvB4, 16384},
    };
    const int nv = sizeof vs / sizeof *vs;
    /* correctness against the engine on matrix 4 (4096 -> 11008) */
    lk_q8_quantize_x86(xf, &xq, 4096);
    lk_mv_qdot_x86(LK_DTYPE_Q4_K, yref, (const void *)(W + offs[4]), &xq, 4096, 0, 11008); /* in the slack if small */
    for (int v = 2; v < nv; v++) {
        vs[v].fn(y, (const lk_block_q4_k *)(W + offs[4]), &xq, 4096, 0, 11008, vs[v].pfd);
        double e = 0, m = 0;
        for (int i = 0; i < 11008; i++) {
            e = fmax(e, fabs(y[i] - yref[i]));
            m = fmax(m, fabs(yref[i]));
        }
        if (e > 1e-5 * m) printf("%s: max |d| %g of %g\n", vs[v].name, e, m);
    }
    printf("%.0f MB of q4_k, %d threads, hugepages %d; GB/s median (min..max) of %d passes\n", total / 1e6, nthr,
           huge, passes);
    for (int i = 0; i < NM; i++) { /* warm-up pass (page faults, THP collapse) */
        lk_q8_quantize_x86(xf, &xq, ins[i]);
        task t = {&vs[0], y, (const lk_block_q4_k *)(W + offs[i]), &xq, ins[i], outs[i]};
        lk_pool_run(pool, run_task, &t);
    }
    double *gb = calloc((size_t)nv * rounds * passes, sizeof(double));
    for (int rd = 0; rd < rounds; rd++)
        for (int v = 0; v < nv; v++)
            for (int p = 0; p < passes; p++) {
                double t0 = lk_time_s();
                for (int i = 0; i < NM; i++) {
                    lk_q8_quantize_x86(xf, &xq, ins[i]);
                    task t = {&vs[v], y, (const lk_block_q4_k *)(W + offs[i]), &xq, ins[i], outs[i]};
                    lk_pool_run(pool, run_task, &t);
                }
                gb[((size_t)v * rounds + rd) * passes + p] = total / (lk_time_s() - t0) * 1e-9;
            }
    for (int v = 0; v < nv; v++) {
        printf("%-10s", vs[v].name);
        for (int rd = 0; rd < rounds; rd++) {
            double *g = gb + ((size_t)v * rounds + rd) * passes;
            qsort(g, passes, sizeof *g, cmpd);
            printf("  %5.1f (%4.1f..%4.1f)", g[passes / 2], g[0], g[passes - 1]);
        }
        printf("\n");
    }
    lk_pool_free(pool);
    return 0;
}
