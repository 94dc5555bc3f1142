/*
 * sample_bench.c - one loki_sampler_sample at a vocabulary size: the mean of
 * 20 samples of the same pseudo-random logits (an LCG, values in [0, 10)),
 * default parameters (temp .8, top-p .95, min-p .05) with the given top-k.
 * Prints the time and the sum of the sampled ids (the same sum before and
 * after a change = the same tokens). docs/RESULTS.md, "Sampling with a large
 * vocabulary".
 *   make sample_bench && ./sample_bench 262144 40
 */
#include "loki.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int V = argc > 1 ? atoi(argv[1]) : 32000, top_k = argc > 2 ? atoi(argv[2]) : 40;
    float *l = malloc(sizeof(float) * (size_t)(V > 0 ? V : 1));
    if (V <= 0 || !l) return fprintf(stderr, "usage: sample_bench N_VOCAB [TOP_K]\n"), 2;
    unsigned s = 1;
    for (int i = 0; i < V; i++) s = s * 1103515245u + 12345u, l[i] = (float)((s >> 8) & 0xffff) / 6553.6f;
    loki_sampler_params p = loki_sampler_default_params();
    p.seed = 3, p.top_k = top_k;
    loki_sampler *sm = NULL;
    loki_error e = {0};
    if (loki_sampler_init(&p, V, &sm, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    long acc = 0;
    const double t0 = now();
    for (int r = 0; r < 20; r++) acc += loki_sampler_sample(sm, l);
    printf("V=%d top_k %d: %.2f ms per sample (ids summed: %ld)\n", V, top_k, (now() - t0) / 20 * 1e3, acc);
    loki_sampler_free(sm);
    free(l);
    return 0;
}
