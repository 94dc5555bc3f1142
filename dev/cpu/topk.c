/*
 * topk.c - time lk_topk (src/attn/kernels.c, compiled in as the engine
 * builds it) on rows shaped like a Loki decode step: n approximate scores
 * with a normal-like spread, k = kf * n, with and without a candidate list.
 *   make topk && ./topk [n [kf [reps]]]      (default 65536 0.125 400)
 * Prints the median µs per call over 5 timings and a checksum of the picks,
 * so two builds can be compared on the same rows.
 */
#include "attn/attn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 65536;
    const double kf = argc > 2 ? atof(argv[2]) : 0.125;
    const int reps = argc > 3 ? atoi(argv[3]) : 400, k = (int)(kf * n);
    enum { ROWS = 8 };
    float *x = malloc(sizeof(float) * (size_t)n * ROWS), *work = malloc(sizeof(float) * 2 * (size_t)n);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n), *cand = malloc(sizeof(int32_t) * (size_t)n);
    if (!x || !work || !idx || !cand || n < 2 || k < 1 || k > n || reps < 1) {
        fprintf(stderr, "usage: topk [n >= 2 [kf in (0, 1] [reps]]]\n");
        return 1;
    }
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)n * ROWS; i++) { /* sum of 4 uniforms: roughly normal, distinct values */
        float v = 0;
        for (int j = 0; j < 4; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            v += (float)(s >> 40) / (float)(1u << 24);
        }
        x[i] = v - 2.0f;
    }
    for (int i = 0; i < n; i++) cand[i] = i; /* a candidate list (as after forced tokens) */
    for (int with_cand = 0; with_cand < 2; with_cand++) {
        double t[5];
        long sum = 0;
        for (int r = 0; r < 5; r++) {
            const double t0 = now_us();
            for (int i = 0; i < reps; i++) {
                lk_topk(x + (size_t)(i % ROWS) * n, with_cand ? cand : NULL, n, k, idx, work);
                sum += idx[i % k];
            }
            t[r] = (now_us() - t0) / reps;
        }
        qsort(t, 5, sizeof t[0], cmp_d);
        printf("topk n=%d k=%d cand=%d: %.1f us/call (min %.1f, max %.1f), checksum %ld\n", n, k, with_cand, t[2], t[0],
               t[4], sum);
    }
    free(x), free(work), free(idx), free(cand);
    return 0;
}
