/*
 * gather.c - Loki's gather of the selected rows in a decode step (issue 11
 * item 2): how fast the exact attend over the k selected rows (key rest +
 * value) runs against plain reads of the same rows and of as many
 * contiguous bytes.
 *
 *   make gather && ./gather [S [kf [rounds [pf [work]]]]]   (default 65536 0.125 15 16 0)
 *
 * The layer is what `loki bench attention -ctk f16 -ctv f16 --df .25`
 * builds: 32 KV heads of S f16 keys split d = 32 / 96 (k_lo rows, then k_hi
 * rows, one region per head) and S f16 values of D = 128, 2 MiB aligned
 * and hugepage-advised; per head k = kf·S positions picked at random (about
 * what the bench's random queries select), ascending as lk_topk writes them.
 * Two threads take heads ith, ith + 2, ...; a step is all 32 heads. Variants:
 *   engine   lk_gather_attend of src/attn/kv.c (one query row)
 *   onepass  run.c's attend_one_pass of main (lk_dot_row + expf + lk_axpy_row
 *            per row, prefetch 16 rows ahead)
 *   read     the selected rows' lines (and low-rank scores) loaded and xor-ed, no arithmetic,
 *            prefetch `pf` rows ahead into L1 (the roof of this pattern)
 *   read-t2  the same with the prefetch into L2 only (_MM_HINT_T2)
 *   read-np  the same without software prefetch
 *   read-w   read with `work` rounds of 4 dependent FMAs per row (5th argument)
 *   read-c   read with the attend's arithmetic per row (a dot, an axpy), no softmax
 *   read-il, readc-il  read and read-c over an interleaved layout (a token's
 *            key rest and value adjacent: 448 contiguous bytes)
 *   stream   as many bytes read contiguously (k rows' worth per head)
 * Rounds interleave the variants; the median step time of each is printed
 * with its GB/s (k · (192 + 256) bytes per head).
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
#include "core/tensor.h"

enum { H = 32, D = 128, DLO = 32, DHI = 96, NTH = 2, NV = 10 };
static const char *names[NV] = {"engine", "onepass", "read", "read-t2", "read-np", "read-w", "read-c", "stream", "read-il", "readc-il"};

typedef struct layer {
    int32_t S, k;
    uint8_t *K, *V; /* per head: K (S, 32) f16 then (S, 96) f16; V (S, 128) f16 */
    uint8_t *IL;    /* per head: (S, 96 + 128) f16, key rest and value of a token adjacent */
    int32_t *sel;   /* (H, k) */
    float *lo;      /* (H, S) low-rank scores */
    float *q;       /* (H, D) */
    float *out;     /* (H, D) */
    int pf;
    int work; /* dependent FMA rounds (4 FMAs each) per row in the read variants */
} layer;

typedef struct job {
    layer *L;
    int ith, variant;
    double sink;
} job;

static size_t khead(const layer *L) { return (size_t)L->S * 2 * D; }
static size_t vhead(const layer *L) { return (size_t)L->S * 2 * D; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *alloc_huge(size_t sz) {
    void *p = NULL;
    if (posix_memalign(&p, 1 << 21, sz)) return NULL;
    madvise(p, sz, MADV_HUGEPAGE);
    return p;
}

/* One head, variant onepass (run.c's attend_one_pass without weights). */
static void onepass(const layer *L, const lk_rows *hi, const lk_rows *v, const float *lo, const float *q, float *out,
                    const int32_t *sel, float scale) {
    float m = -FLT_MAX, l = 0.0f;
    memset(out, 0, sizeof(float) * D);
    for (int32_t j = 0; j < L->k; j++) {
        if (j + 16 < L->k) {
            int32_t sp = sel[j + 16];
            for (size_t o = 0; o < hi->stride; o += 64) __builtin_prefetch(lk_row(hi, sp) + o);
            for (size_t o = 0; o < v->stride; o += 64) __builtin_prefetch(lk_row(v, sp) + o);
        }
        float sc = lo[sel[j]] + lk_dot_row(hi, sel[j], q + DLO) * scale;
        if (sc > m) {
            float c = expf(m - sc);
            for (int i = 0; i < D; i++) out[i] *= c;
            l *= c;
            m = sc;
        }
        float w = expf(sc - m);
        l += w;
        lk_axpy_row(out, w, v, sel[j]);
    }
    for (int i = 0; i < D; i++) out[i] /= l;
}

/* Lines of the selected rows, xor-ed (hint: 0 T0, 2 T2, -1 no prefetch). */
static double read_rows(const layer *L, const uint8_t *hi, const uint8_t *v, const float *lo, const int32_t *sel, int hint, int work, size_t st) {
    __m512i acc = _mm512_setzero_si512();
    __m512 f0 = _mm512_set1_ps(1e-3f), f1 = f0, f2 = f0, f3 = f0;
    const int pf = L->pf;
    for (int32_t j = 0; j < L->k; j++) {
        if (hint >= 0 && j + pf < L->k) {
            const uint8_t *a = hi + (size_t)sel[j + pf] * (st ? st : 192), *b = v + (size_t)sel[j + pf] * (st ? st : 256);
            if (hint == 0) {
                for (int o = 0; o < 192; o += 64) _mm_prefetch((const char *)a + o, _MM_HINT_T0);
                for (int o = 0; o < 256; o += 64) _mm_prefetch((const char *)b + o, _MM_HINT_T0);
            } else {
                for (int o = 0; o < 192; o += 64) _mm_prefetch((const char *)a + o, _MM_HINT_T2);
                for (int o = 0; o < 256; o += 64) _mm_prefetch((const char *)b + o, _MM_HINT_T2);
            }
        }
        const uint8_t *a = hi + (size_t)sel[j] * (st ? st : 192), *b = v + (size_t)sel[j] * (st ? st : 256);
        f3 = _mm512_add_ps(f3, _mm512_set1_ps(lo[sel[j]]));
        for (int o = 0; o < 192; o += 64) acc = _mm512_xor_si512(acc, _mm512_loadu_si512(a + o));
        for (int o = 0; o < 256; o += 64) acc = _mm512_xor_si512(acc, _mm512_loadu_si512(b + o));
        for (int i = 0; i < work; i++) {
            f0 = _mm512_fmadd_ps(f0, f1, f2), f1 = _mm512_fmadd_ps(f1, f2, f3), f2 = _mm512_fmadd_ps(f2, f3, f0);
            f3 = _mm512_fmadd_ps(f3, f0, f1);
        }
    }
    return (double)_mm512_reduce_add_epi32(acc) + _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)));
}

/* Read with the arithmetic of the attend but no softmax: per row the dot
 * of its key rest with q (f16 widened) and out += w · value, w a function
 * of the dot (one dependency per row, as the engine's weights). */
static double read_compute(const layer *L, const uint8_t *hi, const uint8_t *v, const float *lo, const float *q,
                           const int32_t *sel, size_t st) {
    __m512 o[8];
    for (int i = 0; i < 8; i++) o[i] = _mm512_setzero_ps();
    const int pf = L->pf;
    for (int32_t j = 0; j < L->k; j++) {
        if (j + pf < L->k) {
            const uint8_t *a = hi + (size_t)sel[j + pf] * (st ? st : 192), *b = v + (size_t)sel[j + pf] * (st ? st : 256);
            for (int x = 0; x < 192; x += 64) _mm_prefetch((const char *)a + x, _MM_HINT_T0);
            for (int x = 0; x < 256; x += 64) _mm_prefetch((const char *)b + x, _MM_HINT_T0);
        }
        const uint8_t *a = hi + (size_t)sel[j] * (st ? st : 192), *b = v + (size_t)sel[j] * (st ? st : 256);
        __m512 d = _mm512_setzero_ps();
        if (L->work) { /* whole-line loads, halves widened from the register */
            for (int c = 0; c < DHI; c += 32) {
                const __m512i x = _mm512_loadu_si512(a + 2 * c);
                d = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(x)), _mm512_loadu_ps(q + DLO + c), d);
                d = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(x, 1)), _mm512_loadu_ps(q + DLO + c + 16), d);
            }
            const __m512 w = _mm512_set1_ps(_mm512_reduce_add_ps(d) * 1e-3f + lo[sel[j]]);
            for (int i = 0; i < 8; i += 2) {
                const __m512i x = _mm512_loadu_si512(b + 32 * i);
                o[i] = _mm512_fmadd_ps(w, _mm512_cvtph_ps(_mm512_castsi512_si256(x)), o[i]);
                o[i + 1] = _mm512_fmadd_ps(w, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(x, 1)), o[i + 1]);
            }
            continue;
        }
        for (int c = 0; c < DHI; c += 16)
            d = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + 2 * c))), _mm512_loadu_ps(q + DLO + c), d);
        const __m512 w = _mm512_set1_ps(_mm512_reduce_add_ps(d) * 1e-3f + lo[sel[j]]);
        for (int i = 0; i < 8; i++)
            o[i] = _mm512_fmadd_ps(w, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 32 * i))), o[i]);
    }
    for (int i = 1; i < 8; i++) o[0] = _mm512_add_ps(o[0], o[i]);
    return (double)_mm512_reduce_add_ps(o[0]);
}

static void *worker(void *arg) {
    job *jb = arg;
    layer *L = jb->L;
    const float scale = 1.0f / sqrtf((float)D);
    double sink = 0;
    for (int h = jb->ith; h < H; h += NTH) {
        const uint8_t *K = L->K + (size_t)h * khead(L), *V = L->V + (size_t)h * vhead(L);
        const lk_rows hi = {K + (size_t)L->S * 2 * DLO, 2 * DHI, DHI, LOKI_KV_F16, false};
        const lk_rows v = {V, 2 * D, D, LOKI_KV_F16, false};
        const int32_t *sel = L->sel + (size_t)h * L->k;
        const float *q = L->q + (size_t)h * D, *lo = L->lo + (size_t)h * L->S;
        float *out = L->out + (size_t)h * D;
        /* the low-rank scores of the head were just written by the score
         * pass in the engine: in L2 when the gather starts */
        __m512 t = _mm512_setzero_ps();
        for (int32_t s = 0; s < L->S; s += 16) t = _mm512_add_ps(t, _mm512_loadu_ps(lo + s));
        sink += _mm512_reduce_add_ps(t);
        switch (jb->variant) {
        case 0: lk_gather_attend(&hi, &v, sel, L->k, lo, 0, q + DLO, D, 1, scale, out, D); break;
        case 1: onepass(L, &hi, &v, lo, q, out, sel, scale); break;
        case 2: sink += read_rows(L, hi.p, V, lo, sel, 0, 0, 0); break;
        case 3: sink += read_rows(L, hi.p, V, lo, sel, 2, 0, 0); break;
        case 4: sink += read_rows(L, hi.p, V, lo, sel, -1, 0, 0); break;
        case 5: sink += read_rows(L, hi.p, V, lo, sel, 0, L->work, 0); break;
        case 6: sink += read_compute(L, hi.p, V, lo, q, sel, 0); break;
        case 8: {
            const uint8_t *il = L->IL + (size_t)h * L->S * 448;
            sink += read_rows(L, il, il + 192, lo, sel, 0, 0, 448);
            break;
        }
        case 9: {
            const uint8_t *il = L->IL + (size_t)h * L->S * 448;
            sink += read_compute(L, il, il + 192, lo, q, sel, 448);
            break;
        }
        case 7: { /* stream: k · 448 bytes from the head's V region (and on into the K) */
            __m512i acc = _mm512_setzero_si512();
            const size_t bytes = (size_t)L->k * 448;
            for (size_t o = 0; o < bytes; o += 64) {
                if (o % 4096 == 0) _mm_prefetch((const char *)V + o + 4096, _MM_HINT_T0);
                acc = _mm512_xor_si512(acc, _mm512_loadu_si512(V + o));
            }
            sink += (double)_mm512_reduce_add_epi32(acc);
        }
        }
    }
    jb->sink = sink;
    return NULL;
}

static double step(layer *L, int variant) {
    pthread_t th[NTH];
    job jb[NTH];
    double t0 = now();
    for (int i = 0; i < NTH; i++) {
        jb[i] = (job){L, i, variant, 0};
        pthread_create(&th[i], NULL, worker, &jb[i]);
    }
    for (int i = 0; i < NTH; i++) pthread_join(th[i], NULL);
    return now() - t0;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    layer L = {.S = argc > 1 ? atoi(argv[1]) : 65536};
    const double kf = argc > 2 ? atof(argv[2]) : 0.125;
    const int rounds = argc > 3 ? atoi(argv[3]) : 15;
    L.pf = argc > 4 ? atoi(argv[4]) : 16;
    L.work = argc > 5 ? atoi(argv[5]) : 0;
    L.k = (int32_t)(kf * L.S);
    L.K = alloc_huge((size_t)H * khead(&L));
    L.V = alloc_huge((size_t)H * vhead(&L));
    L.IL = alloc_huge((size_t)H * L.S * 448);
    if (L.IL) memset(L.IL, 1, (size_t)H * L.S * 448);
    L.sel = malloc(sizeof(int32_t) * (size_t)H * L.k);
    L.lo = malloc(sizeof(float) * (size_t)H * L.S);
    L.q = malloc(sizeof(float) * H * D);
    L.out = malloc(sizeof(float) * H * D);
    float *ref = malloc(sizeof(float) * H * D), *work = malloc(sizeof(float) * 2 * (size_t)L.S);
    if (!L.K || !L.V || !L.sel || !L.lo || !L.q || !L.out || !ref || !work) return 1;
    srand(1);
    for (size_t i = 0; i < (size_t)H * khead(&L) / 2; i++)
        ((uint16_t *)L.K)[i] = lk_f32_to_f16((float)rand() / RAND_MAX - 0.5f);
    for (size_t i = 0; i < (size_t)H * vhead(&L) / 2; i++)
        ((uint16_t *)L.V)[i] = lk_f32_to_f16((float)rand() / RAND_MAX - 0.5f);
    for (size_t i = 0; i < (size_t)H * L.S; i++) L.lo[i] = (float)rand() / RAND_MAX;
    for (int i = 0; i < H * D; i++) L.q[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int h = 0; h < H; h++) lk_topk(L.lo + (size_t)h * L.S, NULL, L.S, L.k, L.sel + (size_t)h * L.k, work);
    step(&L, 1);
    memcpy(ref, L.out, sizeof(float) * H * D);
    step(&L, 0);
    double md = 0;
    for (int i = 0; i < H * D; i++) md = fmax(md, fabs(L.out[i] - ref[i]));
    printf("S %d k %d pf %d: engine vs onepass max |diff| %.2e\n", L.S, L.k, L.pf, md);
    double *t = malloc(sizeof(double) * NV * rounds);
    for (int r = 0; r < rounds; r++)
        for (int v = 0; v < NV; v++) t[v * rounds + r] = step(&L, v);
    const double bytes = (double)H * L.k * 448;
    for (int v = 0; v < NV; v++) {
        qsort(t + v * rounds, rounds, sizeof(double), cmpd);
        const double med = t[v * rounds + rounds / 2];
        printf("%-8s %7.3f ms (min %7.3f)  %5.1f GB/s\n", names[v], 1e3 * med, 1e3 * t[v * rounds], bytes / med / 1e9);
    }
    return 0;
}
