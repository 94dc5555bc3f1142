/*
 * test_topk.c - lk_topk (src/attn/topk.c), the select stage of the sparse
 * methods on the CPU, against a sort: the k largest by the documented
 * order (NaN ranks as -FLT_MAX, -0 equals +0, ties to the lower index), in
 * candidate order; the vector path (AVX-512 or AVX2 where the build has
 * one) and the portable one must give the same picks in the same order.
 * Rows: random, many exact ties, all equal, NaN/inf mixed in, signed
 * zeros, sorted either way, strided patterns that make the threshold's
 * sample see only low or only high scores (the bracket misses and is
 * widened), lengths around the vector widths and the sampling threshold;
 * k = 1, 2, n/8, n/4, n - 1, n; with and without a candidate list.
 * (test_attn checks the selection inside attention: forced sinks and
 * recent tokens, k_min, GQA-shared rows.)
 */
#include "attn/attn.h"
#include "test.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double v; /* the score's rank value */
    int32_t i;
} ranked;

static int by_rank(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1; /* larger first */
    return (x->i > y->i) - (x->i < y->i);            /* ties: lower index first */
}

/* The expected picks: positions in candidate order (cand NULL: 0..n-1). */
static void reference(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *out, ranked *r,
                      uint8_t *in) {
    for (int32_t i = 0; i < n; i++) {
        const float v = x[cand ? cand[i] : i];
        r[i].v = isnan(v) ? -FLT_MAX : (double)v; /* -0 == +0 as doubles */
        r[i].i = i;
    }
    qsort(r, (size_t)n, sizeof *r, by_rank);
    memset(in, 0, (size_t)n);
    for (int32_t j = 0; j < k; j++) in[r[j].i] = 1;
    for (int32_t i = 0, o = 0; i < n; i++)
        if (in[i]) out[o++] = cand ? cand[i] : i;
}

enum { NMAX = 65536 + 21 };

typedef struct {
    float *x;       /* (2 NMAX) scores by position */
    int32_t *cand;  /* (NMAX) */
    float *work;    /* (2 NMAX) */
    int32_t *got, *port, *want;
    ranked *r;
    uint8_t *in;
    int failures;
} bufs;

/* One row: every k of the list, with and without candidates. */
static void check_row(bufs *b, const char *what, int32_t n, uint64_t *seed) {
    const int32_t ks[] = {1, 2, n / 8, n / 4, n - 1, n};
    /* candidates: ascending positions over 2n with gaps (as after eviction);
     * the scores moved to them, the gaps filled with high values that must
     * never be picked */
    float *xc = b->x + NMAX;
    for (int32_t i = 0; i < 2 * n + 2 && i < NMAX; i++) xc[i] = 1e30f;
    int32_t c = 0;
    for (int32_t i = 0; i < n; i++) b->cand[i] = c, c += 1 + (int32_t)(test_rand32(seed) % 2);
    for (int32_t withc = 0; withc < 2; withc++) {
        if (withc && c > NMAX) continue;
        if (withc)
            for (int32_t i = n - 1; i >= 0; i--) xc[b->cand[i]] = b->x[i];
        const float *xs = withc ? xc : b->x;
        const int32_t *cp = withc ? b->cand : NULL;
        for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
            const int32_t k = ks[t];
            if (k < 1 || k > n || (t > 0 && k == ks[t - 1])) continue; /* k <= n: the contract */
            reference(xs, cp, n, k, b->want, b->r, b->in);
            for (int32_t j = 0; j < k + 1; j++) b->got[j] = b->port[j] = -7; /* nothing written past k */
            lk_topk(xs, cp, n, k, b->got, b->work);
            lk_topk_portable(xs, cp, n, k, b->port, b->work);
            const int ok = !memcmp(b->got, b->want, sizeof(int32_t) * (size_t)k) && b->got[k] == -7;
            const int same = !memcmp(b->got, b->port, sizeof(int32_t) * (size_t)(k + 1));
            CHECKF(ok, "topk %s n=%d k=%d cand=%d: picks differ from the sort", what, n, k, withc);
            CHECKF(same, "topk %s n=%d k=%d cand=%d: SIMD and portable differ", what, n, k, withc);
            b->failures += !ok || !same;
        }
    }
}

int main(void) {
    bufs b = {0};
    b.x = test_xmalloc(sizeof(float) * 2 * NMAX);
    b.cand = test_xmalloc(sizeof(int32_t) * NMAX);
    b.work = test_xmalloc(sizeof(float) * 2 * NMAX);
    b.got = test_xmalloc(sizeof(int32_t) * (NMAX + 1));
    b.port = test_xmalloc(sizeof(int32_t) * (NMAX + 1));
    b.want = test_xmalloc(sizeof(int32_t) * NMAX);
    b.r = test_xmalloc(sizeof(ranked) * NMAX);
    b.in = test_xmalloc(NMAX);
    uint64_t seed = 2024;
    const int32_t ns[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000, 4095, 4096, 4097, 8192, 12345, 65536 + 21};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        const int32_t n = ns[a];
        float *x = b.x;
        test_fill_random(x, (size_t)n, -3, 3, &seed);
        check_row(&b, "random", n, &seed);
        for (int32_t i = 0; i < n; i++) x[i] = (float)(test_rand32(&seed) % 5); /* many exact ties */
        check_row(&b, "ties", n, &seed);
        for (int32_t i = 0; i < n; i++) x[i] = 0.5f;
        check_row(&b, "all equal", n, &seed);
        test_fill_random(x, (size_t)n, -3, 3, &seed);
        for (int32_t i = 0; i < n; i++) {
            const uint32_t u = test_rand32(&seed) % 16;
            x[i] = u == 0 ? NAN : u == 1 ? -NAN : u == 2 ? INFINITY : u == 3 ? -INFINITY : u == 4 ? -FLT_MAX : x[i];
        }
        check_row(&b, "nan/inf", n, &seed);
        for (int32_t i = 0; i < n; i++) x[i] = test_rand32(&seed) % 3 ? NAN : (float)(i % 4); /* mostly NaN */
        check_row(&b, "mostly nan", n, &seed);
        for (int32_t i = 0; i < n; i++) x[i] = test_rand32(&seed) % 2 ? 0.0f : -0.0f;
        check_row(&b, "signed zeros", n, &seed);
        for (int32_t i = 0; i < n; i++) x[i] = (float)i;
        check_row(&b, "ascending", n, &seed);
        for (int32_t i = 0; i < n; i++) x[i] = (float)(n - i) * 1e-3f;
        check_row(&b, "descending", n, &seed);
    }
    /* strided rows: every P-th score (offset o) differs from the rest, so a
     * sample taken at a stride of P sees only those; for some offset it is
     * the threshold's sample, whichever positions it takes */
    for (int32_t n = 8192; n <= 16384; n *= 2)
        for (int32_t o = 0; o < 8; o++)
            for (int low = 0; low < 2; low++) {
                const int32_t P = n / 1024 > 8 ? 8 : n / 1024;
                test_fill_random(b.x, (size_t)n, 1, 2, &seed);
                for (int32_t i = 0; i < n; i++)
                    if (i % P == o % P) b.x[i] = low ? -5.0f - b.x[i] : 5.0f + b.x[i];
                check_row(&b, low ? "strided low" : "strided high", n, &seed);
            }
    CHECKF(b.failures == 0, "%d topk cases failed", b.failures);
    free(b.x), free(b.cand), free(b.work), free(b.got), free(b.port), free(b.want), free(b.r), free(b.in);
    return test_finish();
}
