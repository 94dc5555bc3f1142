/*
 * bench_attn.c - `loki bench attention`: the time of one decode step of
 * attention (one layer, all heads) over S cached tokens, for dense attention
 * and the sparse methods, with the kernels the engine runs (src/attn). Keys
 * are synthetic, drawn in their PCA basis with variances decaying like
 * exp(-j/decay) (decay 24 puts Rank@90 near 55 of 128, the range the paper
 * reports for real models), so loki reads its first d components as it would
 * in a real cache. Reports time, KV bytes read and GB/s; one JSON object.
 */
#include "cli/args.h"
#include "cli/bench_attn_cuda.h"
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "calib/pca.h"
#include "core/common.h"

#define MAX_LIST BATTN_MAX_LIST

typedef struct battn_opts {
    const char *s_list, *methods, *device, *ctk, *ctv;
    int32_t H, Hkv, D, n_threads, reps;
    float kf, df, decay, bw;
    bool gqa_shared, portable;
    loki_kv_type tk, tv;
} battn_opts;

/* Parse "a,b,c" of positive integers; returns the count or -1. */
int battn_parse_int_list(const char *s, int32_t *out, int cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > (1L << 24) || n == cap || (*end && *end != ',')) return -1;
        out[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

/* Uniform in [-1, 1) from a counter (splitmix64), so any layout of the
 * cache holds the same keys. */
float battn_hash_uniform(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (float)((double)(x >> 11) / 4503599627370496.0 - 1.0);
}

/* Fill the cache (n_ctx tokens) in its current split layout: key component j
 * has standard deviation sqrt(lambda_j); values uniform. */
static void fill_cache(lk_kv_cache *kv, const float *sigma) {
    const int D = kv->head_dim;
    float *row = malloc(sizeof(float) * (size_t)kv->n_head_kv * D * 2);
    if (!row) return;
    float *vrow = row + (size_t)kv->n_head_kv * D;
    for (int32_t s = 0; s < kv->n_ctx; s++) {
        for (int h = 0; h < kv->n_head_kv; h++)
            for (int j = 0; j < D; j++) {
                uint64_t c = (((uint64_t)s * kv->n_head_kv + h) * D + j) * 2;
                row[h * D + j] = 1.7320508f * sigma[j] * battn_hash_uniform(c);
                vrow[h * D + j] = battn_hash_uniform(c + 1);
            }
        lk_kv_store(kv, 0, s, row, vrow, 1);
    }
    free(row);
}

/* The cache already holds keys in the PCA basis: identity axes, eigenvalue
 * j = exp(-j/decay) (the keys' variances). pca comes zeroed (lk_pca_init). */
void battn_identity_pca(loki_pca *pca, float decay) {
    const int D = pca->head_dim;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < pca->n_layer; l++)
            for (int h = 0; h < pca->n_head_kv; h++) {
                float *C = (float *)lk_pca_components(pca, b, l, h), *e = (float *)lk_pca_eigenvalues(pca, b, l, h);
                for (int j = 0; j < D; j++) {
                    e[j] = expf(-(float)j / decay);
                    C[j * D + j] = 1.0f;
                }
            }
}

typedef struct battn_result {
    double ms, ms_sd, bytes;
} battn_result;

/* Time one decode step at each S for one method. */
static int bench_method(const battn_opts *o, const loki_attn_params *p, lk_kv_cache *kv, const float *sigma,
                        lk_cpu *cpu, const float *q, float *out, const int32_t *S, int nS, battn_result *res) {
    lk_hparams hp = {.n_layer = 1, .n_head = o->H, .n_head_kv = o->Hkv, .head_dim = o->D};
    lk_attn *a = NULL;
    loki_error err = {0};
    int rc = 1;
    double *t = calloc((size_t)o->reps, sizeof(double));
    if (!t || lk_attn_init(&a, &hp, p, kv->n_ctx, 1, lk_pool_size(lk_cpu_pool(cpu)), kv, &err)) {
        fprintf(stderr, "loki bench attention: %s\n", t ? err.msg : "out of memory");
        goto done;
    }
    fill_cache(kv, sigma);
    for (int i = 0; i < nS; i++) {
        lk_attn_stats st;
        for (int r = -1; r < o->reps; r++) { /* r = -1: warm-up */
            lk_attn_reset(a);
            double t0 = lk_time_s();
            lk_attn_run(a, lk_cpu_pool(cpu), kv, 0, q, out, 1, S[i] - 1);
            if (r >= 0) t[r] = (lk_time_s() - t0) * 1e3;
        }
        lk_attn_get_stats(a, 0, &st);
        cli_mean_std(t, o->reps, &res[i].ms, &res[i].ms_sd);
        res[i].bytes = st.bytes_read;
    }
    rc = 0;
done:
    free(t);
    lk_attn_free(a);
    return rc;
}

static int run(const battn_opts *o, const int32_t *S, int nS, const char **meth, int nm) {
    int32_t n_ctx = 0, D = o->D;
    for (int i = 0; i < nS; i++) n_ctx = LK_MAX(n_ctx, S[i]);
    lk_kv_cache kv = {0};
    loki_pca *pca = NULL;
    lk_cpu *cpu = NULL;
    loki_error err = {0};
    float *q = NULL, *out = NULL, *sigma = NULL;
    battn_result *res = calloc((size_t)nm * nS, sizeof *res);
    int rc = 1;
    if (!res || lk_kv_init(&kv, 1, o->Hkv, D, n_ctx, o->tk, o->tv, &err) ||
        !(q = lk_alloc_aligned((size_t)o->H * D * 4, &err)) || !(out = lk_alloc_aligned((size_t)o->H * D * 4, &err)) ||
        !(sigma = malloc(sizeof(float) * (size_t)D)) || lk_pca_init(&pca, 1, o->Hkv, D, &err) ||
        lk_cpu_init(&cpu, o->n_threads > 0 ? o->n_threads : lk_n_cpus(), 1, (int64_t)o->H * D, &err)) {
        fprintf(stderr, "loki bench attention: %s\n", err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    kv.portable = o->portable; /* --portable: the C paths beside the SIMD kernels */
    battn_identity_pca(pca, o->decay);
    for (int j = 0; j < D; j++) sigma[j] = sqrtf(expf(-(float)j / o->decay));
    for (int h = 0; h < o->H; h++)
        for (int j = 0; j < D; j++) q[h * D + j] = 1.7320508f * sigma[j] * battn_hash_uniform(~(uint64_t)(h * D + j));
    for (int m = 0; m < nm; m++) {
        loki_attn_params p = loki_attn_default_params();
        p.method = (loki_attn_method)loki_attn_method_parse(meth[m]);
        p.kf = o->kf;
        p.df = o->df;
        p.pca = pca;
        p.gqa_shared = o->gqa_shared;
        if (bench_method(o, &p, &kv, sigma, cpu, q, out, S, nS, res + (size_t)m * nS)) goto done;
    }
    char date[32];
    cli_utc_date(date, sizeof date);
    printf("{\"bench\": \"attention\", \"cache_type_k\": \"%s\", \"cache_type_v\": \"%s\", "
           "\"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, \"kf\": %g, \"df\": %g, "
           "\"decay\": %g, \"gqa_shared\": %s, \"threads\": %d, \"reps\": %d, \"date\": \"%s\", \"results\": [",
           loki_kv_type_name(kv.tk), loki_kv_type_name(kv.tv), o->H, o->Hkv, D, o->kf, o->df, o->decay, o->gqa_shared ? "true" : "false",
           lk_pool_size(lk_cpu_pool(cpu)), o->reps, date);
    for (int m = 0; m < nm; m++)
        for (int i = 0; i < nS; i++) {
            const battn_result *r = &res[(size_t)m * nS + i], *dn = &res[i];
            double gbs = r->bytes / (r->ms * 1e-3) / 1e9;
            printf("%s\n  {\"method\": \"%s\", \"S\": %d, \"ms\": %.4f, \"ms_std\": %.4f, \"bytes\": %.0f, "
                   "\"gb_per_s\": %.2f",
                   m || i ? "," : "", meth[m], S[i], r->ms, r->ms_sd, r->bytes, gbs);
            if (!strcmp(meth[0], "dense")) printf(", \"speedup_vs_dense\": %.3f", dn->ms / r->ms);
            if (o->bw > 0) printf(", \"limit_ms\": %.4f", r->bytes / (o->bw * 1e9) * 1e3);
            printf("}");
            fprintf(stderr, "loki bench attention: %-10s S=%-6d %8.3f ± %.3f ms  %7.1f MB  %6.1f GB/s%s", meth[m],
                    S[i], r->ms, r->ms_sd, r->bytes / 1e6, gbs, "");
            if (!strcmp(meth[0], "dense")) fprintf(stderr, "  %.2fx vs dense", dn->ms / r->ms);
            fputc('\n', stderr);
        }
    printf("\n]}\n");
    rc = 0;
done:
    lk_cpu_free(cpu);
    loki_pca_free(pca);
    lk_kv_free(&kv);
    lk_free_aligned(q);
    lk_free_aligned(out);
    free(sigma);
    free(res);
    return rc;
}

/* The value of --device (NULL when absent), found before parsing because
 * the GPU path has its own option table (bench_attn_cuda.c). A missing
 * value is left to cli_parse to report. */
static const char *find_device(int argc, char **argv) {
    const char *dev = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) dev = argv[++i];
        else if (!strncmp(argv[i], "--device=", 9)) dev = argv[i] + 9;
    }
    return dev;
}

int cli_bench_attention(int argc, char **argv) {
    const char *dev = find_device(argc, argv);
    if (dev && !strcmp(dev, "cuda")) return cli_bench_attention_cuda(argc, argv);
    if (dev && strcmp(dev, "cpu")) {
        fprintf(stderr, "loki bench attention: --device must be cpu or cuda, got '%s'\n", dev);
        return 2;
    }
    battn_opts o = {.s_list = "4096,16384,65536", .methods = "dense,loki", .H = 32, .Hkv = 32, .D = 128,
                    .reps = 10, .kf = 0.125f, .df = 0.25f, .decay = 24.0f};
    const cli_opt opts[] = {
        {NULL, "--S", CLI_STR, &o.s_list, "LIST", "cached tokens, comma-separated (default 4096,16384,65536)"},
        {NULL, "--methods", CLI_STR, &o.methods, "LIST", "dense,exact-topk,loki,pcaattn,h2o (default dense,loki)"},
        {NULL, "--heads", CLI_INT, &o.H, "N", "query heads (default 32, Llama-2-7B)"},
        {NULL, "--kv-heads", CLI_INT, &o.Hkv, "N", "KV heads (default 32)"},
        {NULL, "--head-dim", CLI_INT, &o.D, "N", "head dimension (default 128)"},
        {NULL, "--kf", CLI_FLOAT, &o.kf, "F", "selected fraction of tokens (default 0.125)"},
        {NULL, "--df", CLI_FLOAT, &o.df, "F", "low-rank fraction of head_dim (default 0.25)"},
        {NULL, "--decay", CLI_FLOAT, &o.decay, "T", "key variance of component j is exp(-j/T) (default 24)"},
        {NULL, "--gqa-shared", CLI_FLAG, &o.gqa_shared, "", "one selection per KV head"},
        {NULL, "--bw", CLI_FLOAT, &o.bw, "GB/s", "memory bandwidth: also report the time reading the bytes at it takes"},
        {"-t", "--threads", CLI_INT, &o.n_threads, "N", "compute threads (default: all CPUs)"},
        {"-r", "--reps", CLI_INT, &o.reps, "N", "timed repetitions after one warm-up (default 10)"},
        {"-ctk", "--cache-type-k", CLI_STR, &o.ctk, "T", CLI_CACHE_TYPE_HELP},
        {"-ctv", "--cache-type-v", CLI_STR, &o.ctv, "T", CLI_CACHE_TYPE_HELP},
        {NULL, "--portable", CLI_FLAG, &o.portable, "", "the portable C kernels instead of the SIMD ones"},
        {NULL, "--device", CLI_STR, &o.device, "cpu|cuda",
         "cpu (default) or cuda: the GPU kernels, options in `--device cuda --help`"},
    };
    const cli_spec spec = {"bench attention", "loki bench attention [options]",
                           "Time one decode step of attention (one layer) over S cached synthetic keys\n"
                           "for each method; prints one JSON object, a summary on stderr.\n"
                           "`--device cuda` runs the GPU kernels instead (its options: --device cuda --help).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    int rc = cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (cli_cache_types("bench attention", o.ctk, o.ctv, &o.tk, &o.tv)) return 2;
    int32_t S[MAX_LIST];
    int nS = battn_parse_int_list(o.s_list, S, MAX_LIST);
    if (nS <= 0) {
        fprintf(stderr, "loki bench attention: --S must be a comma-separated list of 1..%d positive integers, got '%s'\n",
                MAX_LIST, o.s_list);
        return 2;
    }
    if (o.gqa_shared && o.Hkv > 0 && o.H / o.Hkv > LK_ATTN_MAX_GROUP) {
        fprintf(stderr, "loki bench attention: --gqa-shared supports up to %d query heads per KV head\n", LK_ATTN_MAX_GROUP);
        return 2;
    }
    if (o.H <= 0 || o.Hkv <= 0 || o.D <= 0 || o.H % o.Hkv || o.reps < 1 || o.n_threads < 0 || o.decay <= 0) {
        fprintf(stderr, "loki bench attention: --heads must be a positive multiple of --kv-heads, --head-dim, -r and "
                        "--decay > 0, -t >= 0\n");
        return 2;
    }
    char buf[256];
    const char *meth[MAX_LIST];
    int nm = 0;
    snprintf(buf, sizeof buf, "%s", o.methods);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (loki_attn_method_parse(tok) < 0 || nm == MAX_LIST) {
            fprintf(stderr, "loki bench attention: --methods: unknown method '%s'\n", tok);
            return 2;
        }
        meth[nm++] = tok;
    }
    if (!nm || !(o.kf > 0 && o.kf <= 1) || !(o.df > 0 && o.df <= 1)) {
        fprintf(stderr, "loki bench attention: --methods must name at least one method; --kf and --df in (0, 1]\n");
        return 2;
    }
    return run(&o, S, nS, meth, nm);
}
