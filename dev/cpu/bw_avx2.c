/*
 * bw_avx2.c - streaming-read DRAM bandwidth with AVX2 loads, for machines
 * without AVX-512 where bench.c does not build (its bw kernel uses
 * _mm512_*). Same method as `./bench bw`: a 1 GiB buffer, each of T threads
 * sums its contiguous slice with 4 independent 256-bit accumulators (enough
 * loads in flight to saturate a Zen 3 core), best of R passes.
 *   cc -O2 -march=native -pthread -o bw_avx2 bw_avx2.c && ./bw_avx2 [threads] [passes]
 * Prints GB/s (1e9 bytes per second) of every pass and the best.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BYTES = 1 << 30 };

typedef struct slice {
    const float *p;
    size_t n; /* floats, a multiple of 32 */
    float sum;
} slice;

static void *reader(void *arg) {
    slice *s = arg;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < s->n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(s->p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(s->p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(s->p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(s->p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    s->sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    const int T = argc > 1 ? atoi(argv[1]) : 2, R = argc > 2 ? atoi(argv[2]) : 5;
    float *buf = aligned_alloc(64, BYTES);
    if (!buf || T < 1 || T > 64) return 1;
    memset(buf, 0, BYTES); /* fault the pages in before timing */
    const size_t nf = BYTES / 4, per = nf / T / 32 * 32;
    double best = 0;
    float chk = 0;
    for (int r = 0; r < R; r++) {
        pthread_t th[64];
        slice sl[64];
        double t0 = now();
        for (int i = 0; i < T; i++) {
            sl[i] = (slice){buf + i * per, per, 0};
            pthread_create(&th[i], NULL, reader, &sl[i]);
        }
        for (int i = 0; i < T; i++) pthread_join(th[i], NULL), chk += sl[i].sum;
        double gbs = (double)per * T * 4 / (now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
        printf("pass %d: %.1f GB/s\n", r, gbs);
    }
    printf("threads %d best %.1f GB/s (check %g)\n", T, best, chk);
    free(buf);
    return 0;
}
