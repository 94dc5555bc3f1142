/*
 * topk.c - time lk_topk (src/attn/topk.c, compiled in as the engine builds
 * it) against an older version (OLD, default main: its src/attn/kernels.c
 * with the symbols renamed old_*) on rows shaped like a Loki decode step: n
 * approximate scores with a normal-like spread, k = kf * n, with and without
 * a candidate list; first both are checked for the same picks in the same
 * order on rows built to stress the selection (ties, NaN/inf, sorted rows,
 * rows whose strided sample misleads, tiny and odd n).
 *   make topk [OLD=commit] && ./topk [n [kf [reps]]]   (default 65536 0.125 400)
 * Prints the median µs per call over 5 timings per version (interleaved)
 * and a checksum of the picks.
 */
#include "attn/attn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void old_topk(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work);

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* row kinds for the equality check */
static void fill(float *x, int n, int kind, uint64_t *s) {
    for (int i = 0; i < n; i++) {
        float v = 0;
        for (int j = 0; j < 4; j++) v += (float)rng(s) / (float)(1u << 31);
        x[i] = v - 2.0f;
        switch (kind) {
        case 1: x[i] = (float)(rng(s) % 7); break;                       /* heavy ties */
        case 2: x[i] = (float)i; break;                                   /* sorted up */
        case 3: x[i] = (float)-i; break;                                  /* sorted down */
        case 4: if (rng(s) % 10 == 0) x[i] = rng(s) % 2 ? NAN : (rng(s) % 2 ? INFINITY : -INFINITY); break;
        case 5: x[i] = (i % (n / 1024 > 0 ? n / 1024 : 1)) == (n / 2048) ? -5.0f : 5.0f + v; break; /* sample sees low */
        case 6: x[i] = (i % (n / 1024 > 0 ? n / 1024 : 1)) == (n / 2048) ? 5.0f + v : -5.0f; break; /* sample sees high */
        case 7: x[i] = 1.0f; break;                                       /* all equal */
        case 8: x[i] = rng(s) % 2 ? 0.0f : -0.0f; break;                  /* signed zeros */
        }
    }
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 65536;
    const double kf = argc > 2 ? atof(argv[2]) : 0.125;
    const int reps = argc > 3 ? atoi(argv[3]) : 400, k = (int)(kf * n);
    enum { ROWS = 8, CN = 70000 };
    float *x = malloc(sizeof(float) * (size_t)(n > CN ? n : CN) * ROWS), *work = malloc(sizeof(float) * 2 * CN * 2);
    int32_t *idx = malloc(sizeof(int32_t) * CN * 2), *idx2 = malloc(sizeof(int32_t) * CN * 2),
            *cand = malloc(sizeof(int32_t) * CN * 2);
    if (!x || !work || !idx || !cand || n < 2 || n > CN || k < 1 || k > n || reps < 1) {
        fprintf(stderr, "usage: topk [n in [2, %d] [kf in (0, 1] [reps]]]\n", CN);
        return 1;
    }
    uint64_t s = 12345;
    int bad = 0, checks = 0;
    const int ns[] = {1, 2, 15, 17, 100, 1000, 4095, 4096, 5000, 30011, 65536, CN};
    for (int a = 0; a < (int)(sizeof ns / sizeof ns[0]); a++)
        for (int kind = 0; kind < 9; kind++)
            for (int kc = 0; kc < 6; kc++) {
                const int nn = ns[a];
                const int kk = kc == 0 ? 1 : kc == 1 ? nn : kc == 2 ? nn / 8 + 1 : kc == 3 ? nn / 4 : kc == 4 ? nn - 1 : nn / 2;
                if (kk < 1) continue;
                fill(x, nn, kind, &s);
                for (int i = 0; i < nn; i++) cand[i] = 2 * i + (int)(rng(&s) % 2); /* ascending, over 2nn */
                float *xc = malloc(sizeof(float) * 2 * (size_t)nn + 4);
                for (int i = 0; i < 2 * nn + 1; i++) xc[i] = -1e30f;
                for (int i = 0; i < nn; i++) xc[cand[i]] = x[i];
                for (int c = 0; c < 2; c++) {
                    const float *xs = c ? xc : x;
                    old_topk(xs, c ? cand : NULL, nn, kk, idx, work);
                    lk_topk(xs, c ? cand : NULL, nn, kk, idx2, work);
                    int d = memcmp(idx, idx2, sizeof(int32_t) * kk) != 0;
                    lk_topk_portable(xs, c ? cand : NULL, nn, kk, idx2, work);
                    d |= (memcmp(idx, idx2, sizeof(int32_t) * kk) != 0) << 1;
                    if (d) fprintf(stderr, "DIFF n=%d k=%d kind=%d cand=%d (%s)\n", nn, kk, kind, c, d == 1 ? "simd" : d == 2 ? "portable" : "both");
                    bad += d != 0, checks++;
                }
                free(xc);
            }
    printf("equality: %d of %d cases differ from the old selection\n", bad, checks);

    for (size_t i = 0; i < (size_t)n * ROWS; i++) { /* sum of 4 uniforms: roughly normal, distinct values */
        float v = 0;
        for (int j = 0; j < 4; j++) v += (float)rng(&s) / (float)(1u << 31);
        x[i] = v - 2.0f;
    }
    for (int i = 0; i < n; i++) cand[i] = i; /* a candidate list (as after forced tokens) */
    for (int with_cand = 0; with_cand < 2; with_cand++) {
        double t[2][5];
        long sum[2] = {0, 0};
        for (int r = 0; r < 5; r++)
            for (int v = 0; v < 2; v++) {
                const double t0 = now_us();
                for (int i = 0; i < reps; i++) {
                    (v ? lk_topk : old_topk)(x + (size_t)(i % ROWS) * n, with_cand ? cand : NULL, n, k, idx, work);
                    sum[v] += idx[i % k];
                }
                t[v][r] = (now_us() - t0) / reps;
            }
        for (int v = 0; v < 2; v++) {
            qsort(t[v], 5, sizeof t[v][0], cmp_d);
            printf("%s n=%d k=%d cand=%d: %.1f us/call (min %.1f, max %.1f), checksum %ld\n", v ? "new" : "old", n, k,
                   with_cand, t[v][2], t[v][0], t[v][4], sum[v]);
        }
    }
    free(x), free(work), free(idx), free(idx2), free(cand);
    return bad != 0;
}
