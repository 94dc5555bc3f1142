/*
 * bench_attn_cuda.c - `loki bench attention --device cuda`: the time of one
 * decode step of attention (one layer, all heads, B sequences of S cached
 * tokens each) with the GPU kernels (src/cuda/lk_cuda.h), for dense
 * attention and the sparse methods, over a grid of shapes. One JSON line per
 * measurement on stdout, a readable line on stderr.
 *
 * Keys are synthetic and drawn in their PCA basis (identity axes, variance of
 * component j = exp(-j/decay)), as in the CPU benchmark (bench_attn.c), so
 * loki's d leading components carry what they would in a real cache.
 *
 * What keeps the numbers honest:
 *  - the H200's L2 (60 MB) must never hold the data: a cache smaller than
 *    1 GiB is built C = ceil(1 GiB / size) times (C caches and C attention
 *    states) and the steps rotate over the copies, so each step reads cold
 *    memory;
 *  - the total time is a CUDA graph of the C steps replayed `reps` times
 *    (no launch gaps), per step = graph time / (C * reps), the median of 3;
 *  - the stage split (score / select / attend) comes from events around the
 *    stages of 20 separate steps (median of each), each step enqueued behind
 *    a kernel that keeps the GPU busy (so the events time the kernels, not
 *    the host launching the first one), so it is a share of the step, not
 *    part of the total;
 *  - bytes follow what the kernels must read (step_bytes; bf16), and the
 *    achieved GB/s is compared with the measured read bandwidth.
 */
#include "cli/args.h"
#include "cli/bench_attn_cuda.h"
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/budget.h"
#include "calib/pca.h"
#include "core/common.h"
#include "cuda/lk_cuda.h"

#define GIB 1073741824.0
#define N_RUNS 3       /* graph timings, median */
#define STAGE_STEPS 20 /* steps timed stage by stage, median */
#define STAGE_SPIN_US 200 /* GPU busy time ahead of each of them (lk_cuda_spin) */
#define MAX_COPIES 4096

typedef enum gqa_mode { GQA_NONE, GQA_SHARED, GQA_MAX } gqa_mode;
static const char *const gqa_names[] = {"none", "shared", "max"};

typedef struct bc_opts {
    const char *s_list, *b_list, *hkv_list, *kfdf, *methods, *gqa, *device, *fused_s;
    int32_t H, D, reps, device_id, splits, pdl, fused_c;
    loki_cuda_fused fused; /* parsed --fused */
    float decay, mem_gib;
    bool paper;
    /* parsed lists */
    int32_t S[BATTN_MAX_LIST], B[BATTN_MAX_LIST], Hkv[BATTN_MAX_LIST];
    int nS, nB, nHkv, npair, nm;
    float kf[BATTN_MAX_LIST], df[BATTN_MAX_LIST];
    loki_attn_method meth[BATTN_MAX_LIST];
    unsigned gqa_mask; /* bit (1 << gqa_mode) per mode to run when Hkv < H */
} bc_opts;

/* One (B, H, Hkv, D, S) point and the kf:df pairs it runs. */
typedef struct shape {
    int32_t B, H, Hkv, D, S;
    const float *kf, *df;
    int npair;
    const char *setting; /* "grid" or "paper" */
} shape;

/* One measurement of a shape. Parameters a method ignores are 0 so that
 * equal variants compare equal (kf for dense and pcaattn, df for the
 * methods without a PCA, whose d is D). */
typedef struct variant {
    loki_attn_method method;
    float kf, df;
    gqa_mode gqa;
    int32_t d; /* split dim of the cache it needs (D without a PCA) */
} variant;

typedef struct bench {
    const bc_opts *o;
    lk_cuda *cu;
    double read_bw; /* GB/s */
    char date[32];
    float sigma[256]; /* key standard deviation of component j (D <= 256) */
} bench;

static bool uses_pca(loki_attn_method m) { return m == LOKI_ATTN_LOKI || m == LOKI_ATTN_PCAATTN; }
static bool uses_kf(loki_attn_method m) { return m == LOKI_ATTN_EXACT_TOPK || m == LOKI_ATTN_LOKI || m == LOKI_ATTN_H2O; }

static double median(double *x, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: n <= 20 */
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t = x[j];
            x[j] = x[j - 1], x[j - 1] = t;
        }
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* x at 6 significant digits, so JSON prints 0.1f as 0.1 (not 0.100000001)
 * and times without noise digits. */
static double tidy(double x) {
    char b[32];
    snprintf(b, sizeof b, "%.6g", x);
    return strtod(b, NULL);
}

static loki_attn_params variant_params(const variant *v, const loki_pca *pca) {
    loki_attn_params p = loki_attn_default_params();
    p.method = v->method;
    if (uses_kf(v->method)) p.kf = v->kf;
    if (uses_pca(v->method)) p.df = v->df, p.d = v->d, p.pca = pca; /* d: the cache's split, a multiple of 8 */
    p.gqa_shared = v->gqa != GQA_NONE;
    p.gqa_max = v->gqa == GQA_MAX;
    return p;
}

/* The variants of a shape, dense first (the others report their speedup
 * over it, and it shares the plain layout with exact-topk and h2o). */
static int enum_variants(const bc_opts *o, const shape *sh, variant *out, int cap) {
    int n = 0;
    const int G = sh->H / sh->Hkv;
    for (int pass = 0; pass < 2; pass++)
        for (int m = 0; m < o->nm; m++) {
            loki_attn_method meth = o->meth[m];
            if ((meth == LOKI_ATTN_DENSE) != (pass == 0)) continue;
            for (int i = 0; i < sh->npair; i++)
                for (int g = GQA_NONE; g <= GQA_MAX; g++) {
                    variant v = {meth, uses_kf(meth) ? sh->kf[i] : 0, uses_pca(meth) ? sh->df[i] : 0, GQA_NONE, sh->D};
                    /* a per-KV-head selection exists for the selecting methods
                     * of GQA shapes (else one variant, gqa none); h2o ranks by
                     * its accumulators, so its max is its shared */
                    if (G > 1 && uses_kf(meth)) {
                        if (!(o->gqa_mask >> g & 1)) continue;
                        v.gqa = meth == LOKI_ATTN_H2O && g == GQA_MAX ? GQA_SHARED : (gqa_mode)g;
                    }
                    loki_attn_params p = variant_params(&v, NULL);
                    p.d = 0; /* the split as the library computes it from df */
                    lk_gpu_split_dims(&p, 1, 1, sh->D, &v.d);
                    /* df matters only through d (rounded up to a multiple of
                     * 8): the first df giving a d stands for the others */
                    bool dup = false;
                    for (int j = 0; j < n && !dup; j++)
                        dup = out[j].method == v.method && out[j].kf == v.kf && out[j].gqa == v.gqa && out[j].d == v.d;
                    if (!dup && n < cap) out[n++] = v;
                }
        }
    return n;
}

/* KV bytes one decode step reads (bf16: 2 bytes), per KV head and sequence,
 * as the GPU kernels read them: G = H/Hkv query heads per KV head, stacked
 * (read once per group) by dense and pcaattn, and u selections per KV head
 * (G, or 1 with a shared selection):
 *   dense       2·S·D           K and V once
 *   exact-topk  S·D + u·k·D     all of K for exact scores, then the selected
 *                               values (per-query-head selections: the attend
 *                               stage takes the exact scores from the score
 *                               stage); shared selections: + k·D for the keys
 *   loki        S·d + u·k·(2D−d) k_lo of every token, then the rest of the
 *                               selected keys and their values (per-query-head:
 *                               the score stage's q[:d]·k[:d] is reused);
 *                               shared selections: S·d + k·2D
 *   pcaattn     S·d + S·D       low-rank scores and every value
 *   h2o         u·k·2D          the kept keys and values (its f32
 *                               accumulators, 5 bytes a token, not counted)
 * k = lk_attn_budget (<= S); h2o is timed in steady state, where it has
 * evicted all but k. The selection lists (positions, slots and reused
 * scores, 12 bytes an entry) are not counted; groups over 8 heads
 * are read more than once by the kernels, so there the GB/s is a floor. */
static double step_bytes(const shape *sh, const variant *v, int32_t k) {
    const double S = sh->S, D = sh->D, d = v->d, G = sh->H / sh->Hkv, u = v->gqa == GQA_NONE ? G : 1;
    double e = 0;
    switch (v->method) {
    case LOKI_ATTN_DENSE: e = 2 * S * D; break;
    case LOKI_ATTN_EXACT_TOPK: e = S * D + u * k * (v->gqa == GQA_NONE ? D : 2 * D); break;
    case LOKI_ATTN_LOKI: e = S * d + u * k * (v->gqa == GQA_NONE ? 2 * D - d : 2 * D); break;
    case LOKI_ATTN_PCAATTN: e = S * d + S * D; break;
    case LOKI_ATTN_H2O: e = u * k * 2 * D; break;
    }
    return 2.0 * e * sh->Hkv * sh->B;
}

static void free_caches(lk_gpu_kv **kv, int C) {
    for (int c = 0; c < C; c++)
        if (kv[c]) lk_gpu_kv_free(kv[c]), kv[c] = NULL;
}

/* C caches of B sequences of S tokens split at d, copy c filled from seed c
 * (the same data for every d, so every method sees the same keys). */
static loki_status build_caches(bench *bn, const shape *sh, int32_t d, int C, lk_gpu_kv **kv, loki_error *err) {
    const int32_t pps = (sh->S + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    int32_t ds[256]; /* (Hkv): Hkv <= H <= 256 */
    for (int h = 0; h < sh->Hkv; h++) ds[h] = d;
    loki_status st = LOKI_OK;
    for (int c = 0; c < C && !st; c++) {
        st = lk_gpu_kv_init(bn->cu, &kv[c], 1, sh->Hkv, sh->D, ds, sh->B * pps, sh->B, pps, err);
        for (int32_t b = 0; b < sh->B && !st; b++)
            if (!(st = lk_gpu_kv_reserve(kv[c], b, sh->S, err)) &&
                !(st = lk_gpu_kv_fill_synthetic(kv[c], 0, b, sh->S, bn->sigma, 1000 + (uint64_t)c, err)))
                st = lk_gpu_kv_set_len(kv[c], b, sh->S, err);
    }
    if (!st) st = lk_cuda_sync(bn->cu, err);
    if (st) free_caches(kv, C);
    return st;
}

typedef struct result {
    double us, runs[N_RUNS], stage_us[3];
    int n_split; /* the attend stage's splits per row; 0: the fused kernel ran */
    /* the fused kernel's phases (lk_gpu_attn_fused_phases), medians over the
     * timed steps; phase_blocks 0: it did not run */
    double phase_us[4], phase_kcyc[4], phase_max[4], span_us;
    int64_t phase_blocks;
} result;

/* Time one variant over the C caches: a graph of C steps, then the stages. */
static loki_status time_variant(bench *bn, const shape *sh, const variant *v, lk_gpu_kv **kv, int C,
                                const loki_pca *pca, const float *q, float *out, result *r, loki_error *err) {
    const bc_opts *o = bn->o;
    loki_attn_params p = variant_params(v, pca);
    lk_gpu_attn **a = calloc((size_t)C, sizeof *a);
    lk_cuda_graph *g = NULL;
    double stage[3][STAGE_STEPS], phase[13][STAGE_STEPS]; /* us[4], kcycles[4], span, max_us[4] */
    int n_phase = 0;
    float ms = 0, sm[3];
    loki_status st = a ? LOKI_OK : lk_fail(err, LOKI_ERR_NOMEM, "out of memory");
    for (int c = 0; c < C && !st; c++) st = lk_gpu_attn_init(&a[c], kv[c], sh->H, sh->B, &p, err);
    if (st) goto done;
    for (int c = 0; c < C; c++)
        lk_gpu_attn_set_splits(a[c], o->splits), lk_gpu_attn_set_pdl(a[c], o->pdl != 0),
            lk_gpu_attn_set_fused(a[c], o->fused), lk_gpu_attn_set_fused_blocks(a[c], o->fused_c);
    /* the capture must be ended whatever happens inside it, or the stream
     * stays in capture mode; the first error is the one reported */
    if ((st = lk_cuda_capture_begin(bn->cu, err))) goto done;
    for (int c = 0; c < C && !st; c++) {
        lk_gpu_attn_set_timing(a[c], false); /* no event records inside the graph */
        st = lk_gpu_attn_decode(a[c], 0, sh->B, q, out, err);
    }
    loki_error e2 = {0};
    loki_status st2 = lk_cuda_capture_end(bn->cu, &g, st ? &e2 : err);
    if (st || (st = st2)) goto done;
    /* warm-up: the graph's first launch uploads it; h2o reaches its steady
     * state (evicted down to its budget) here, the state a decoder is in */
    if ((st = lk_cuda_graph_run(bn->cu, g, LK_MAX(3, o->reps / 5), &ms, err))) goto done;
    for (int i = 0; i < N_RUNS; i++) {
        if ((st = lk_cuda_graph_run(bn->cu, g, o->reps, &ms, err))) goto done;
        r->runs[i] = ms * 1e3 / ((double)C * o->reps);
    }
    double tmp[N_RUNS];
    memcpy(tmp, r->runs, sizeof tmp);
    r->us = median(tmp, N_RUNS);
    for (int c = 0; c < C; c++) lk_gpu_attn_set_timing(a[c], true);
    for (int i = 0; i < STAGE_STEPS; i++) {
        lk_gpu_attn *ai = a[i % C]; /* rotate: cold caches as in the graph */
        /* the step is enqueued while the GPU spins, so the first stage's
         * events do not time the host's launch of its kernel */
        if ((st = lk_cuda_spin(bn->cu, STAGE_SPIN_US, err)) || (st = lk_gpu_attn_decode(ai, 0, sh->B, q, out, err)) ||
            (st = lk_gpu_attn_stage_ms(ai, sm, err)))
            goto done;
        for (int j = 0; j < 3; j++) stage[j][i] = sm[j] * 1e3;
        if (lk_gpu_attn_splits(ai) == 0) { /* the fused kernel: where its time went */
            lk_fused_phases ph;
            loki_error pe = {0};
            if (lk_gpu_attn_fused_phases(ai, &ph, &pe)) { /* a report lost, not the variant */
                fprintf(stderr, "loki bench attention: no phase report: %s\n", pe.msg);
                continue;
            }
            for (int j = 0; j < 4; j++)
                phase[j][n_phase] = ph.us[j], phase[4 + j][n_phase] = ph.kcycles[j], phase[9 + j][n_phase] = ph.max_us[j];
            phase[8][n_phase++] = ph.span_us;
            r->phase_blocks = ph.blocks;
        }
    }
    for (int j = 0; j < 3; j++) r->stage_us[j] = median(stage[j], STAGE_STEPS);
    if (n_phase > 0) {
        for (int j = 0; j < 4; j++)
            r->phase_us[j] = median(phase[j], n_phase), r->phase_kcyc[j] = median(phase[4 + j], n_phase),
            r->phase_max[j] = median(phase[9 + j], n_phase);
        r->span_us = median(phase[8], n_phase);
    } else {
        r->phase_blocks = 0;
    }
    r->n_split = lk_gpu_attn_splits(a[0]);
    st = lk_cuda_sync(bn->cu, err);
done:
    if (g) lk_cuda_graph_free(g);
    for (int c = 0; a && c < C; c++)
        if (a[c]) lk_gpu_attn_free(a[c]);
    free(a);
    return st;
}

/* One JSON line on stdout and a summary on stderr. dense_us <= 0: no dense. */
static void report(const bench *bn, const shape *sh, const variant *v, const result *r, int C, double dense_us) {
    const bc_opts *o = bn->o;
    loki_attn_params p = variant_params(v, NULL);
    const int32_t k = uses_kf(v->method) ? lk_attn_budget(&p, sh->S) : sh->S; /* dense, pcaattn: all */
    const double bytes = step_bytes(sh, v, k), gbs = bytes / (r->us * 1e-6) / 1e9;
    const char *name = loki_attn_method_name(v->method);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bench", "attention");
    cJSON_AddStringToObject(j, "device", "cuda");
    cJSON_AddStringToObject(j, "gpu", lk_cuda_describe(bn->cu));
    cJSON_AddStringToObject(j, "date", bn->date);
    cJSON_AddStringToObject(j, "setting", sh->setting);
    cJSON_AddStringToObject(j, "method", name);
    cJSON_AddStringToObject(j, "gqa", gqa_names[v->gqa]);
    cJSON_AddNumberToObject(j, "B", sh->B);
    cJSON_AddNumberToObject(j, "heads", sh->H);
    cJSON_AddNumberToObject(j, "kv_heads", sh->Hkv);
    cJSON_AddNumberToObject(j, "head_dim", sh->D);
    cJSON_AddNumberToObject(j, "S", sh->S);
    if (uses_kf(v->method)) cJSON_AddNumberToObject(j, "kf", tidy(v->kf));
    if (uses_pca(v->method)) cJSON_AddNumberToObject(j, "df", tidy(v->df));
    cJSON_AddNumberToObject(j, "d", v->d);
    cJSON_AddNumberToObject(j, "k", k);
    cJSON_AddNumberToObject(j, "us", tidy(r->us));
    cJSON *runs = cJSON_AddArrayToObject(j, "us_runs");
    for (int i = 0; i < N_RUNS; i++) cJSON_AddItemToArray(runs, cJSON_CreateNumber(tidy(r->runs[i])));
    static const char *const stage_keys[3] = {"score_us", "select_us", "attend_us"};
    for (int s = v->method == LOKI_ATTN_DENSE ? 2 : 0; s < 3; s++) /* dense only attends */
        cJSON_AddNumberToObject(j, stage_keys[s], tidy(r->stage_us[s]));
    cJSON_AddNumberToObject(j, "n_split", r->n_split);
    if (r->phase_blocks > 0) { /* the fused kernel's phases, mean over its blocks */
        static const char *const ph_keys[4] = {"score", "select", "attend", "merge"};
        cJSON *pu = cJSON_AddObjectToObject(j, "fused_phase_us"), *pc = cJSON_AddObjectToObject(j, "fused_phase_kcycles");
        cJSON *pm = cJSON_AddObjectToObject(j, "fused_phase_max_us"); /* the longest block's */
        for (int p = 0; p < 4; p++)
            cJSON_AddNumberToObject(pu, ph_keys[p], tidy(r->phase_us[p])),
                cJSON_AddNumberToObject(pc, ph_keys[p], tidy(r->phase_kcyc[p])),
                cJSON_AddNumberToObject(pm, ph_keys[p], tidy(r->phase_max[p]));
        cJSON_AddNumberToObject(j, "fused_span_us", tidy(r->span_us));
        cJSON_AddNumberToObject(j, "fused_blocks", (double)r->phase_blocks);
    }
    if (o->splits > 0) cJSON_AddNumberToObject(j, "splits_forced", o->splits);
    cJSON_AddBoolToObject(j, "pdl", o->pdl != 0);
    cJSON_AddStringToObject(j, "fused", cli_fused_name(o->fused));
    if (o->fused_c > 0) cJSON_AddNumberToObject(j, "fused_blocks_forced", o->fused_c);
    cJSON_AddNumberToObject(j, "bytes", bytes);
    cJSON_AddNumberToObject(j, "gb_per_s", tidy(gbs));
    cJSON_AddNumberToObject(j, "read_bw_gb_per_s", tidy(bn->read_bw));
    cJSON_AddNumberToObject(j, "bw_frac", tidy(gbs / bn->read_bw));
    if (dense_us > 0) cJSON_AddNumberToObject(j, "speedup_vs_dense", tidy(dense_us / r->us));
    cJSON_AddNumberToObject(j, "copies", C);
    cJSON_AddNumberToObject(j, "reps", o->reps);
    cJSON_AddNumberToObject(j, "decay", tidy(o->decay));
    char *s = cJSON_PrintUnformatted(j);
    if (s) printf("%s\n", s);
    fflush(stdout); /* a later failure keeps the lines measured so far */
    cJSON_free(s);
    cJSON_Delete(j);

    char what[96] = "";
    if (uses_kf(v->method)) snprintf(what, sizeof what, " kf=%g", v->kf);
    if (uses_pca(v->method)) snprintf(what + strlen(what), sizeof what - strlen(what), " df=%g d=%d", v->df, v->d);
    if (v->gqa != GQA_NONE) snprintf(what + strlen(what), sizeof what - strlen(what), " gqa=%s", gqa_names[v->gqa]);
    fprintf(stderr, "loki bench attention: B=%-2d H=%d/%-2d S=%-6d %-10s%-36s %9.1f us", sh->B, sh->H, sh->Hkv, sh->S,
            name, what, r->us);
    if (v->method != LOKI_ATTN_DENSE)
        fprintf(stderr, " (score %.1f select %.1f attend %.1f)", r->stage_us[0], r->stage_us[1], r->stage_us[2]);
    if (r->phase_blocks > 0)
        fprintf(stderr, " [fused, %lld blocks: score %.1f select %.1f attend %.1f (max %.1f) merge %.1f, span %.1f]",
                (long long)r->phase_blocks, r->phase_us[0], r->phase_us[1], r->phase_us[2], r->phase_max[2],
                r->phase_us[3], r->span_us);
    fprintf(stderr, " %7.1f GB/s = %3.0f%% of read bw", gbs, 100 * gbs / bn->read_bw);
    if (dense_us > 0 && v->method != LOKI_ATTN_DENSE) fprintf(stderr, "  %.2fx vs dense", dense_us / r->us);
    fputc('\n', stderr);
}

/* Every variant of one shape, cache layout by cache layout. Returns 0, or 1
 * after printing the error. Shapes or layouts that do not fit are skipped
 * with a note. */
static int run_shape(bench *bn, const shape *sh) {
    const bc_opts *o = bn->o;
    const int32_t pps = (sh->S + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    const double size = (double)sh->B * pps * LK_GPU_PAGE * sh->Hkv * 2 * sh->D * 2; /* one copy, bytes */
    if (size > o->mem_gib * GIB) {
        fprintf(stderr, "loki bench attention: B=%d Hkv=%d S=%d skipped: its KV cache is %.1f GiB, over --dev-mem-gib %g\n",
                sh->B, sh->Hkv, sh->S, size / GIB, o->mem_gib);
        return 0;
    }
    const int C = size < GIB ? (int)LK_MIN(ceil(GIB / size), MAX_COPIES) : 1;
    variant v[BATTN_MAX_LIST * BATTN_MAX_LIST * 3];
    const int nv = enum_variants(o, sh, v, (int)LK_ARRAY_LEN(v));
    bool done[LK_ARRAY_LEN(v)] = {0};
    lk_gpu_kv **kv = calloc((size_t)C, sizeof *kv);
    loki_pca *pca = NULL;
    float *q = NULL, *out = NULL, *qh = NULL;
    double dense_us = 0;
    loki_error err = {0};
    const size_t nq = (size_t)sh->B * sh->H * sh->D;
    int rc = 1;
    if (!kv || !(qh = malloc(nq * sizeof(float)))) {
        fprintf(stderr, "loki bench attention: out of memory\n");
        goto done;
    }
    /* queries (B, H, D) in the keys' basis, component j ~ sigma[j] */
    for (size_t i = 0; i < nq; i++) qh[i] = 1.7320508f * bn->sigma[i % sh->D] * battn_hash_uniform(~(uint64_t)i);
    if (lk_pca_init(&pca, 1, sh->Hkv, sh->D, &err) || lk_cuda_alloc(bn->cu, (void **)&q, nq * 4, "queries", &err) ||
        lk_cuda_alloc(bn->cu, (void **)&out, nq * 4, "outputs", &err) || lk_cuda_upload(bn->cu, q, qh, nq * 4, &err))
        goto fail;
    battn_identity_pca(pca, o->decay);
    for (int i = 0; i < nv; i++) {
        if (done[i]) continue;
        loki_status st = build_caches(bn, sh, v[i].d, C, kv, &err);
        if (st == LOKI_ERR_NOMEM)
            fprintf(stderr, "loki bench attention: B=%d Hkv=%d S=%d d=%d skipped: %s\n", sh->B, sh->Hkv, sh->S, v[i].d,
                    err.msg);
        else if (st)
            goto fail;
        for (int j = i; j < nv; j++) {
            if (done[j] || v[j].d != v[i].d) continue;
            done[j] = true;
            if (st) continue; /* the layout did not fit */
            result r = {0};
            loki_status sv = time_variant(bn, sh, &v[j], kv, C, pca, q, out, &r, &err);
            if (sv == LOKI_ERR_NOMEM) {
                fprintf(stderr, "loki bench attention: B=%d Hkv=%d S=%d %s skipped: %s\n", sh->B, sh->Hkv, sh->S,
                        loki_attn_method_name(v[j].method), err.msg);
                continue;
            }
            if (sv) {
                free_caches(kv, C);
                goto fail;
            }
            if (v[j].method == LOKI_ATTN_DENSE) dense_us = r.us;
            report(bn, sh, &v[j], &r, C, dense_us);
        }
        free_caches(kv, C);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loki bench attention: %s\n", err.msg);
done:
    if (q) lk_cuda_dealloc(bn->cu, q);
    if (out) lk_cuda_dealloc(bn->cu, out);
    loki_pca_free(pca);
    free(qh);
    free(kv);
    return rc;
}

static int run(const bc_opts *o) {
    bench bn = {.o = o};
    loki_error err = {0};
    int rc = 1;
    for (int j = 0; j < o->D; j++) bn.sigma[j] = sqrtf(expf(-(float)j / o->decay));
    cli_utc_date(bn.date, sizeof bn.date);
    bn.date[10] = '\0'; /* YYYY-MM-DD */
    if (lk_cuda_init(&bn.cu, o->device_id, &err) || lk_cuda_read_bw(bn.cu, (size_t)4 << 30, 20, &bn.read_bw, &err)) {
        fprintf(stderr, "loki bench attention: %s\n", err.msg);
        goto done;
    }
    fprintf(stderr, "loki bench attention: %s, read bandwidth %.0f GB/s\n", lk_cuda_describe(bn.cu), bn.read_bw);
    for (int ib = 0; ib < o->nB; ib++)
        for (int ih = 0; ih < o->nHkv; ih++)
            for (int is = 0; is < o->nS; is++) {
                shape sh = {o->B[ib], o->H, o->Hkv[ih], o->D, o->S[is], o->kf, o->df, o->npair, "grid"};
                if (run_shape(&bn, &sh)) goto done;
            }
    if (o->paper) { /* Loki paper, Llama-2-7B-like attention: B=16, 32/32 heads, S=3072, kf=df=0.25 */
        static const float quarter = 0.25f;
        shape sh = {16, 32, 32, o->D, 3072, &quarter, &quarter, 1, "paper"};
        if (run_shape(&bn, &sh)) goto done;
    }
    rc = 0;
done:
    if (bn.cu) lk_cuda_free(bn.cu);
    return rc;
}

/* Parse "kf:df,kf:df" into o->kf, o->df; false on a malformed list. */
static bool parse_kfdf(const char *s, bc_opts *o) {
    o->npair = 0;
    while (*s) {
        char *end;
        float kf = strtof(s, &end);
        if (end == s || *end != ':' || o->npair == BATTN_MAX_LIST) return false;
        s = end + 1;
        float df = strtof(s, &end);
        if (end == s || (*end && *end != ',') || !(kf > 0 && kf <= 1) || !(df > 0 && df <= 1)) return false;
        o->kf[o->npair] = kf, o->df[o->npair++] = df;
        s = *end ? end + 1 : end;
    }
    return o->npair > 0;
}

/* Check and parse the list options; prints the first problem. */
static bool parse_lists(bc_opts *o) {
    const char *bad = NULL, *got = NULL; /* the problem, the value given */
    if ((o->nS = battn_parse_int_list(o->s_list, o->S, BATTN_MAX_LIST)) <= 0)
        bad = "--S: a list of up to 16 positive token counts", got = o->s_list;
    else if ((o->nB = battn_parse_int_list(o->b_list, o->B, BATTN_MAX_LIST)) <= 0)
        bad = "--B: a list of up to 16 positive batch sizes", got = o->b_list;
    else if ((o->nHkv = battn_parse_int_list(o->hkv_list, o->Hkv, BATTN_MAX_LIST)) <= 0)
        bad = "--kv-heads: a list of up to 16 positive head counts", got = o->hkv_list;
    else if (!parse_kfdf(o->kfdf, o))
        bad = "--kfdf: a list of up to 16 kf:df pairs, each in (0, 1], e.g. 0.25:0.25,0.125:0.5", got = o->kfdf;
    if (!bad && (o->H <= 0 || o->H > 256)) bad = "--heads: 1..256 query heads";
    for (int i = 0; !bad && i < o->nHkv; i++)
        if (o->H % o->Hkv[i] || o->H / o->Hkv[i] > 16)
            bad = "--kv-heads: each must divide --heads, with at most 16 query heads per KV head";
    if (!bad && (o->D < 8 || o->D > 256 || o->D % 8)) bad = "--head-dim: a multiple of 8 up to 256";
    if (!bad && (o->splits < 0 || o->splits > 256)) bad = "--splits: 0 (automatic) to 256";
    if (!bad && o->pdl != 0 && o->pdl != 1) bad = "--pdl: 0 or 1";
    if (!bad && (o->fused_c < 0 || o->fused_c > 16)) bad = "--fused-blocks: 0 (automatic) to 16";
    if (!bad && (o->reps < 1 || !(o->decay > 0) || !(o->mem_gib > 0) || o->device_id < 0))
        bad = "-r, --decay and --dev-mem-gib must be > 0, --device-id >= 0";
    if (!bad) {
        static const char *const modes[] = {"none", "shared", "max", "all"};
        static const unsigned masks[] = {1u << GQA_NONE, 1u << GQA_SHARED, 1u << GQA_MAX, 7u};
        o->gqa_mask = 0;
        for (int i = 0; i < 4; i++)
            if (!strcmp(o->gqa, modes[i])) o->gqa_mask = masks[i];
        if (!o->gqa_mask) bad = "--gqa: none, shared, max or all", got = o->gqa;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", o->methods);
    o->nm = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); !bad && t; t = strtok_r(NULL, ",", &save)) {
        int m = loki_attn_method_parse(t);
        if (m < 0 || o->nm == BATTN_MAX_LIST)
            bad = "--methods: a list of dense, exact-topk, loki, pcaattn, h2o", got = o->methods;
        else o->meth[o->nm++] = (loki_attn_method)m;
    }
    if (!bad && !o->nm) bad = "--methods: a list of dense, exact-topk, loki, pcaattn, h2o", got = o->methods;
    if (bad) fprintf(stderr, "loki bench attention: %s%s%s%s\n", bad, got ? " (got '" : "", got ? got : "", got ? "')" : "");
    return !bad;
}

int cli_bench_attention_cuda(int argc, char **argv) {
    bc_opts o = {.s_list = "4096,16384,32768,65536,131072", .b_list = "1,16", .hkv_list = "32,8",
                 .kfdf = "0.25:0.25,0.125:0.25,0.125:0.5", .methods = "dense,loki", .gqa = "all", .H = 32, .D = 128,
                 .reps = 50, .decay = 24.0f, .mem_gib = 100.0f, .pdl = 1};
    const cli_opt opts[] = {
        {NULL, "--device", CLI_STR, &o.device, "cuda", "cuda: this benchmark (cpu: the CPU one, other options)"},
        {NULL, "--S", CLI_STR, &o.s_list, "LIST", "cached tokens per sequence (default 4096,16384,32768,65536,131072)"},
        {NULL, "--B", CLI_STR, &o.b_list, "LIST", "sequences in the batch (default 1,16)"},
        {NULL, "--heads", CLI_INT, &o.H, "N", "query heads (default 32)"},
        {NULL, "--kv-heads", CLI_STR, &o.hkv_list, "LIST", "KV heads, each dividing --heads (default 32,8)"},
        {NULL, "--head-dim", CLI_INT, &o.D, "N", "head dimension, a multiple of 8 up to 256 (default 128)"},
        {NULL, "--kfdf", CLI_STR, &o.kfdf, "LIST", "kf:df pairs (default 0.25:0.25,0.125:0.25,0.125:0.5)"},
        {NULL, "--methods", CLI_STR, &o.methods, "LIST", "dense,exact-topk,loki,pcaattn,h2o (default dense,loki)"},
        {NULL, "--gqa", CLI_STR, &o.gqa, "MODE",
         "when kv-heads < heads, select per query head (none), per KV head (shared, max) or all (default)"},
        {NULL, "--paper", CLI_FLAG, &o.paper, "", "also the paper's setting: B=16, 32/32 heads, S=3072, kf=df=0.25"},
        {NULL, "--decay", CLI_FLOAT, &o.decay, "T", "key variance of component j is exp(-j/T) (default 24)"},
        {"-r", "--reps", CLI_INT, &o.reps, "N", "graph replays per timing; median of 3 timings (default 50)"},
        {NULL, "--device-id", CLI_INT, &o.device_id, "N", "GPU index (default 0)"},
        {NULL, "--splits", CLI_INT, &o.splits, "N", "force N KV splits per row in the attend stage (default 0: automatic)"},
        {NULL, "--pdl", CLI_INT, &o.pdl, "0|1",
         "programmatic dependent launch between a step's kernels (default 1; sm_90 and later)"},
        {NULL, "--fused", CLI_STR, &o.fused_s, "MODE", CLI_FUSED_HELP},
        {NULL, "--fused-blocks", CLI_INT, &o.fused_c, "N",
         "force the fused kernel's blocks per row (rounded up to a power of two the rows allow), whatever its "
         "waves; default 0: automatic"},
        {NULL, "--dev-mem-gib", CLI_FLOAT, &o.mem_gib, "G", "skip shapes whose KV cache exceeds G GiB (default 100)"},
    };
    const cli_spec spec = {"bench attention", "loki bench attention --device cuda [options]",
                           "Time one decode step of attention (one layer, B sequences of S synthetic tokens) with\n"
                           "the GPU kernels for each shape and method; JSON lines on stdout, a summary on stderr.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    int rc = cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!parse_lists(&o) || cli_fused("bench attention", o.fused_s, &o.fused)) return 2;
    return run(&o);
}
