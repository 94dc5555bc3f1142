/*
 * lokistep.c - one Loki decode step of `loki bench attention` (f16 cache,
 * 32/32 heads, D = 128, kf .125, df .25, 2 threads), variants of the engine
 * alternated step by step in one process, so that this VM's drifting
 * memory bandwidth hits every variant alike. Variants are environment knobs
 * (LKG_*) that a tuning session adds to the engine for the time of its
 * measurements (getenv in the kernel; none are in the committed tree, so
 * there every variant is the same engine), given as arguments:
 *
 *   make lokistep && ./lokistep [S [steps [heads kv_heads shared]]] VAR=VALUE[,VAR=VALUE] ...
 *   (an argument "-" is the engine without knobs)
 * Prints the median and quartiles of each variant's step time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "calib/pca.h"
#include "core/common.h"
#include "cpu/cpu.h"

float battn_hash_uniform(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (float)((double)(x >> 11) / 4503599627370496.0 - 1.0);
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Set the knobs of spec "A=1,B=2" (after clearing every LKG_ knob). */
static void set_knobs(const char *spec) {
    static const char *all[] = {"LKG_OFF", "LKG_NOSCAN", "LKG_PFK", "LKG_PFV", "LKG_HINT", "LKG_NOWPF", "LKG_PF2", "LKG_A", "LKG_B"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) unsetenv(all[i]);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        setenv(tok, eq + 1, 1);
    }
}

int main(int argc, char **argv) {
    int ai = 1;
    const int32_t S = argc > ai && strchr(argv[ai], '=') == NULL && strcmp(argv[ai], "-") ? atoi(argv[ai++]) : 65536;
    const int steps = argc > ai && strchr(argv[ai], '=') == NULL && strcmp(argv[ai], "-") ? atoi(argv[ai++]) : 30;
    int H = 32, Hkv = 32, shared = 0;
    if (argc > ai + 2 && !strchr(argv[ai], '=') && strcmp(argv[ai], "-")) H = atoi(argv[ai++]), Hkv = atoi(argv[ai++]), shared = atoi(argv[ai++]);
    const int nv = argc - ai, D = 128;
    if (nv < 1) return fprintf(stderr, "usage: lokistep [S [steps [H Hkv shared]]] KNOBS...\n"), 1;
    loki_error err = {0};
    lk_kv_cache kv = {0};
    loki_pca *pca = NULL;
    lk_cpu *cpu = NULL;
    if (lk_kv_init(&kv, 1, Hkv, D, S, LOKI_KV_F16, LOKI_KV_F16, &err) || lk_pca_init(&pca, 1, Hkv, D, &err) ||
        lk_cpu_init(&cpu, 2, 1, (int64_t)H * D, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    float sigma[128], *q = lk_alloc_aligned((size_t)H * D * 4, &err), *out = lk_alloc_aligned((size_t)H * D * 4, &err);
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int h = 0; h < Hkv; h++) {
            float *C = (float *)lk_pca_components(pca, b, 0, h), *e = (float *)lk_pca_eigenvalues(pca, b, 0, h);
            for (int j = 0; j < D; j++) e[j] = expf(-(float)j / 24), C[j * D + j] = 1.0f;
        }
    for (int j = 0; j < D; j++) sigma[j] = sqrtf(expf(-(float)j / 24));
    for (int h = 0; h < H; h++)
        for (int j = 0; j < D; j++) q[h * D + j] = 1.7320508f * sigma[j] * battn_hash_uniform(~(uint64_t)(h * D + j));
    loki_attn_params p = loki_attn_default_params();
    p.method = LOKI_ATTN_LOKI, p.kf = 0.125f, p.df = 0.25f, p.pca = pca, p.gqa_shared = shared;
    lk_hparams hp = {.n_layer = 1, .n_head = H, .n_head_kv = Hkv, .head_dim = D};
    lk_attn *a = NULL;
    if (lk_attn_init(&a, &hp, &p, S, 1, 2, &kv, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    float *row = malloc(sizeof(float) * (size_t)Hkv * D * 2), *vrow = row + (size_t)Hkv * D;
    for (int32_t s = 0; s < S; s++) {
        for (int h = 0; h < Hkv; h++)
            for (int j = 0; j < D; j++) {
                uint64_t c = (((uint64_t)s * Hkv + h) * D + j) * 2;
                row[h * D + j] = 1.7320508f * sigma[j] * battn_hash_uniform(c);
                vrow[h * D + j] = battn_hash_uniform(c + 1);
            }
        lk_kv_store(&kv, 0, s, row, vrow, 1);
    }
    double *t = malloc(sizeof(double) * nv * steps);
    float *ref = malloc(sizeof(float) * H * D);
    for (int v = 0; v < nv; v++) { /* warm-up, and every variant's output against the first's */
        set_knobs(argv[ai + v]);
        lk_attn_run(a, lk_cpu_pool(cpu), &kv, 0, q, out, 1, S - 1);
        double md = 0;
        if (v == 0) memcpy(ref, out, sizeof(float) * H * D);
        for (int i = 0; i < H * D; i++) md = fmax(md, fabs(out[i] - ref[i]));
        printf("%-40s max |diff| vs first %.2e\n", argv[ai + v], md);
    }
    for (int r = 0; r < steps; r++)
        for (int v = 0; v < nv; v++) {
            set_knobs(argv[ai + v]);
            double t0 = lk_time_s();
            lk_attn_run(a, lk_cpu_pool(cpu), &kv, 0, q, out, 1, S - 1);
            t[v * steps + r] = (lk_time_s() - t0) * 1e3;
        }
    for (int v = 0; v < nv; v++) {
        double *x = t + v * steps;
        qsort(x, steps, sizeof(double), cmpd);
        printf("%-40s median %7.3f ms  (q1 %7.3f, q3 %7.3f, min %7.3f)\n", argv[ai + v], x[steps / 2], x[steps / 4],
               x[3 * steps / 4], x[0]);
    }
    return 0;
}
