/*
 * bench.c - `loki bench decode`: prompt-processing and decode throughput in
 * the manner of llama-bench (-p tokens in one batch from an empty cache;
 * -n tokens one at a time from an empty cache), weight bytes read per second
 * during decode, and peak resident memory. One JSON object on stdout.
 */
#include "cli/args.h"
#include "cli/attn_args.h"
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/common.h"
#include "engine/engine.h"
#include "format/gguf.h"
#include "model/random.h"
#include "calib/pca.h"
#include "cuda/lk_cuda.h"

typedef struct bench_opts {
    const char *model, *random, *dtype, *tokenizer;
    int32_t n_ctx, n_threads, n_prompt, n_gen, reps;
    int32_t n_depth; /* -d: tokens already in the cache when decoding starts */
    int32_t batch;   /* -b: sequences decoded together */
    bool no_graphs;  /* --no-graphs: launch every kernel (CUDA) */
    const char *fused; /* --fused: which Loki steps run as one kernel (CUDA) */
    loki_cuda_fused fused_mode; /* parsed --fused */
    int32_t wpf_mib;   /* --weight-prefetch: MiB of weights a decode product prefetches (CUDA) */
    cli_attn_args attn; /* --attn ..., -ctk/-ctv, --device */
} bench_opts;

/* Decode steps timed op by op after the timed ones (CUDA: the split of a
 * step into weights / attention / other in the JSON). */
#define BENCH_SPLIT_STEPS 8

#define BENCH_DTYPES "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k"

/* Any dtype loki reads, by its lower-case name. */
static loki_status parse_dtype(const char *s, lk_dtype *dt) {
    for (int t = 0; t < 64; t++)
        if (lk_dtype_valid(t) && !strcmp(s, lk_dtype_name((lk_dtype)t))) {
            *dt = (lk_dtype)t;
            return LOKI_OK;
        }
    return LOKI_ERR_ARG;
}

/* Build a random-weight model from a preset name or a config.json path. */
static loki_model *open_random(const bench_opts *o) {
    lk_hparams hp;
    lk_dtype dt;
    loki_error err = {0};
    if (parse_dtype(o->dtype, &dt)) {
        fprintf(stderr, "loki bench: --dtype must be one of " BENCH_DTYPES ", got '%s'\n", o->dtype);
        return NULL;
    }
    loki_status st = lk_hparams_from_shape(o->random, &hp, &err);
    loki_model *m = st ? NULL : calloc(1, sizeof(*m));
    if (!st && !m) st = lk_fail(&err, LOKI_ERR_NOMEM, "out of memory");
    if (!st) st = lk_model_init_random(m, &hp, dt, 1234, &err);
    if (st) {
        fprintf(stderr, "loki bench: --random-weights %s: %s\n", o->random, err.msg);
        loki_model_close(m);
        return NULL;
    }
    return m;
}

/* Bytes a decode step reads from the weights: every layer matrix, the norms
 * and the output head (the embedding table contributes one row). */
static int64_t decode_weight_bytes(const loki_model *m) {
    int64_t b = (int64_t)m->output.nbytes + (int64_t)m->out_norm.nbytes;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const lk_layer *L = &m->layers[l];
        const lk_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                                 &L->bv, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < LK_ARRAY_LEN(ts); i++)
            if (ts[i]->data) b += (int64_t)ts[i]->nbytes;
    }
    return b;
}

/* A PCA of identity bases (eigenvalues 1/(1+j)) for random-weight models:
 * the speed of a method does not depend on its basis, and random weights
 * have no calibration. */
static loki_pca *synthetic_pca(const loki_model *m) {
    const lk_hparams *hp = &m->hp;
    const int L = hp->n_layer, H = hp->n_head_kv, D = hp->head_dim;
    loki_pca *p = NULL;
    loki_error err = {0};
    if (lk_pca_init(&p, L, H, D, &err)) {
        fprintf(stderr, "loki bench: %s\n", err.msg);
        return NULL;
    }
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int64_t lh = 0; lh < (int64_t)L * H; lh++)
            for (int j = 0; j < D; j++) {
                p->components[b][(lh * D + j) * D + j] = 1.0f;
                p->eigenvalues[b][lh * D + j] = 1.0f / (1.0f + (float)j);
            }
    return p;
}

/* The GPU's read bandwidth (GB/s) for the JSON, 0 when unavailable. */
static double gpu_read_bw(void) {
    lk_cuda *cu = NULL;
    loki_error err = {0};
    double gbs = 0.0;
    if (lk_cuda_init(&cu, 0, &err) || lk_cuda_read_bw(cu, (size_t)2 << 30, 20, &gbs, &err)) gbs = 0.0;
    lk_cuda_free(cu);
    return gbs;
}

/* Fill sequences 0..B-1 with depth tokens each (not timed). */
static loki_status fill_depth(loki_context *ctx, const int32_t *toks, int32_t depth, int32_t B, loki_error *err) {
    for (int32_t s = 0; s < B; s++) {
        loki_status st = loki_context_set_seq(ctx, s, err);
        if (st) return st;
        loki_context_reset(ctx);
        if (depth > 0 && (st = loki_eval(ctx, toks, depth, false, err))) return st;
    }
    return loki_context_set_seq(ctx, 0, err);
}

static int run_decode_bench(const bench_opts *o, loki_model *m) {
    loki_model_info info;
    loki_model_get_info(m, &info);
    loki_context_params cp = loki_context_default_params();
    const int32_t B = o->batch;
    cp.n_ctx = o->n_ctx > 0 ? o->n_ctx : LK_MAX(o->n_prompt, o->n_depth + o->n_gen + BENCH_SPLIT_STEPS) + 1;
    cp.n_threads = o->n_threads;
    cp.n_batch = LK_MAX(LK_MAX(o->n_prompt, LK_MIN(o->n_depth, 4096)), B);
    cp.n_seq = B;
    cp.no_cuda_graphs = o->no_graphs;
    cp.cuda_fused = o->fused_mode;
    cp.cuda_weight_prefetch_mib = o->wpf_mib;
    int rc = 0;
    loki_pca *pca = NULL, *synth = NULL;
    loki_attn_params ap;
    cli_attn_args a = o->attn;
    const bool needs_pca = a.method && (!strcmp(a.method, "loki") || !strcmp(a.method, "pcaattn"));
    /* random weights, also as a GGUF of `convert --random-weights`: identity bases */
    const bool random = o->random || (m->gguf && lk_gguf_find(m->gguf, "loki.random_weights.shape"));
    if (random && needs_pca && !a.pca) {
        if (!(synth = synthetic_pca(m))) return 1;
        a.pca_given = synth;
    }
    if ((rc = cli_attn_params("bench", &a, NULL, m, &ap, &pca)) ||
        (rc = cli_cache_types("bench", a.ctk, a.ctv, &cp.type_k, &cp.type_v)) ||
        (rc = cli_device("bench", a.device, &cp.device))) {
        loki_pca_free(synth);
        return rc;
    }
    loki_context *ctx = cli_context_init("bench", m, &cp, &ap, &rc);
    if (!ctx) {
        loki_pca_free(pca), loki_pca_free(synth);
        return rc;
    }
    rc = 1;
    loki_error err = {0};
    const loki_device dev = loki_context_device(ctx, NULL);
    const int32_t n_toks = LK_MAX(o->n_prompt, o->n_depth + o->n_gen) + B;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)n_toks);
    double *pp = calloc((size_t)o->reps, sizeof(double)), *tg = calloc((size_t)o->reps, sizeof(double));
    if (!toks || !pp || !tg) goto done;
    uint64_t s = 42;
    for (int32_t i = 0; i < n_toks; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)info.n_vocab);
    }
    /* rep -1 is a warm-up (page faults of the mapping, caches, thread start, graph capture) */
    for (int r = -1; r < o->reps; r++) {
        if (o->n_prompt > 0) {
            loki_context_reset(ctx);
            double t0 = lk_time_s();
            if (loki_eval(ctx, toks, o->n_prompt, false, &err)) goto eval_fail;
            if (r >= 0) pp[r] = o->n_prompt / (lk_time_s() - t0);
        }
        if (o->n_gen > 0) {
            /* decode at depth: -d tokens in each sequence's cache first (not timed) */
            if (fill_depth(ctx, toks, o->n_depth, B, &err)) goto eval_fail;
            double t0 = lk_time_s();
            for (int32_t i = 0; i < o->n_gen; i++)
                if (B > 1 ? loki_decode_batch(ctx, &toks[o->n_depth + i], B, &err)
                          : loki_eval(ctx, &toks[o->n_depth + i], 1, false, &err))
                    goto eval_fail;
            if (r >= 0) tg[r] = (double)o->n_gen * B / (lk_time_s() - t0);
        }
    }
    /* the GPU step's split: a few more steps launched kernel by kernel with
     * events between the ops (graphs off), right after the timed ones */
    double split[LK_PROF_N] = {0};
    int n_split = 0;
    if (dev == LOKI_DEVICE_CUDA && o->n_gen > 0) {
        lk_backend_cuda_set_graphs(ctx->be, false);
        if (lk_backend_cuda_profile(ctx->be, true, &err)) goto eval_fail;
        for (; n_split < BENCH_SPLIT_STEPS && loki_context_pos(ctx) + 1 < loki_context_n_ctx(ctx); n_split++)
            if (B > 1 ? loki_decode_batch(ctx, &toks[o->n_depth + o->n_gen], B, &err)
                      : loki_eval(ctx, &toks[o->n_depth + o->n_gen], 1, false, &err))
                goto eval_fail;
        lk_backend_cuda_profile_ms(ctx->be, split);
        for (int i = 0; i < LK_PROF_N; i++) split[i] /= LK_MAX(n_split, 1);
    }
    double pp_m, pp_s, tg_m, tg_s;
    cli_mean_std(pp, o->reps, &pp_m, &pp_s);
    cli_mean_std(tg, o->reps, &tg_m, &tg_s);
    const int64_t wb = decode_weight_bytes(m);
    const double steps_per_s = tg_m / B, bw = dev == LOKI_DEVICE_CUDA ? gpu_read_bw() : 0.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char date[32], desc[160];
    cli_utc_date(date, sizeof date);
    cli_attn_describe(&ap, desc, sizeof desc);
    printf("{\"bench\": \"decode\", \"model\": \"%s\", \"format\": \"%s\", \"n_params\": %lld, "
           "\"device\": \"%s\", \"cuda_graphs\": %s, \"cuda_fused\": \"%s\", "
           "\"weight_prefetch_mib\": %d, \"attn\": \"%s\", \"batch\": %d, "
           "\"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"reps\": %d, "
           "\"prefill_tokens_per_s\": %.2f, \"prefill_tokens_per_s_std\": %.2f, "
           "\"decode_tokens_per_s\": %.2f, \"decode_tokens_per_s_std\": %.2f, \"decode_ms_per_step\": %.4f, "
           "\"decode_weight_bytes_per_token\": %lld, \"decode_weight_gb_per_s\": %.3f, \"device_read_gb_per_s\": %.1f, "
           "\"split_steps\": %d, \"split_ms_per_step\": {\"weights\": %.4f, \"attention\": %.4f, \"other\": %.4f}, "
           "\"n_ctx\": %d, \"cache_type_k\": \"%s\", \"cache_type_v\": \"%s\", \"kv_cache_bytes\": %lld, "
           "\"peak_rss_bytes\": %lld, \"date\": \"%s\"}\n",
           o->random ? o->random : o->model, info.format, (long long)info.n_params,
           dev == LOKI_DEVICE_CUDA ? "cuda" : "cpu", dev == LOKI_DEVICE_CUDA && !o->no_graphs ? "true" : "false",
           cli_fused_name(o->fused_mode), dev == LOKI_DEVICE_CUDA ? o->wpf_mib : 0, desc,
           B, ctx->n_threads, o->n_prompt, o->n_gen, o->n_depth, o->reps, pp_m, pp_s, tg_m, tg_s,
           steps_per_s > 0 ? 1e3 / steps_per_s : 0.0, (long long)wb, steps_per_s * (double)wb / 1e9, bw, n_split,
           split[LK_PROF_WEIGHTS], split[LK_PROF_ATTENTION], split[LK_PROF_OTHER], loki_context_n_ctx(ctx), dev == LOKI_DEVICE_CUDA ? "bf16" : loki_kv_type_name(cp.type_k),
           dev == LOKI_DEVICE_CUDA ? "bf16" : loki_kv_type_name(cp.type_v), (long long)loki_context_kv_bytes(ctx),
           (long long)ru.ru_maxrss * 1024, date);
    fprintf(stderr, "loki bench: %s, %s: prefill %.1f ± %.1f tokens/s, decode %.1f ± %.1f tokens/s (%.2f GB/s of weights)\n",
            dev == LOKI_DEVICE_CUDA ? "cuda" : "cpu", desc, pp_m, pp_s, tg_m, tg_s, steps_per_s * (double)wb / 1e9);
    fprintf(stderr, "loki bench: KV cache %d tokens x %d sequences: %.1f MiB; peak RSS %.1f MiB\n",
            loki_context_n_ctx(ctx), B, loki_context_kv_bytes(ctx) / 1048576.0, ru.ru_maxrss / 1024.0);
    rc = 0;
    goto done;
eval_fail:
    fprintf(stderr, "loki bench: %s\n", err.msg);
done:
    free(toks);
    free(pp);
    free(tg);
    loki_context_free(ctx);
    loki_pca_free(pca);
    loki_pca_free(synth);
    return rc;
}

int cli_bench(int argc, char **argv) {
    bench_opts o = {.dtype = "q8_0", .n_prompt = 512, .n_gen = 128, .reps = 3, .batch = 1};
    cli_attn_args_init(&o.attn);
    enum { N_BASE = 14 };
    cli_opt opts[N_BASE + CLI_ATTN_N_OPTS] = {
        {"-m", "--model", CLI_STR, &o.model, "MODEL", "model file or directory"},
        {NULL, "--random-weights", CLI_STR, &o.random, "SHAPE", "llama2-7b, llama3-8b or a config.json: random weights"},
        {NULL, "--dtype", CLI_STR, &o.dtype, "T", "weight dtype of --random-weights: " BENCH_DTYPES " (default q8_0)"},
        {"-c", "--ctx-size", CLI_INT, &o.n_ctx, "N", "context length (default: enough for -p and -n)"},
        {"-t", "--threads", CLI_INT, &o.n_threads, "N", "compute threads (default: all CPUs)"},
        {"-p", "--n-prompt", CLI_INT, &o.n_prompt, "N", "prompt tokens processed in one batch (default 512)"},
        {"-n", "--n-gen", CLI_INT, &o.n_gen, "N", "tokens decoded one at a time (default 128)"},
        {"-d", "--n-depth", CLI_INT, &o.n_depth, "N", "decode after N tokens already in the cache (default 0)"},
        {"-r", "--reps", CLI_INT, &o.reps, "N", "repetitions after one warm-up (default 3)"},
        {NULL, "--tokenizer", CLI_STR, &o.tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"},
        {"-b", "--batch", CLI_INT, &o.batch, "B", "sequences decoded together, each at depth -d (default 1; B > 1: "
                                                  "CUDA)"},
        {NULL, "--no-graphs", CLI_FLAG, &o.no_graphs, NULL, "CUDA: launch every kernel instead of replaying graphs"},
        {NULL, "--fused", CLI_STR, &o.fused, "MODE", CLI_FUSED_HELP},
        {NULL, "--weight-prefetch", CLI_INT, &o.wpf_mib, "MIB",
         "CUDA: MiB of weights each decode product asks L2 for while the kernel before it ends (default 0: none)"},
    };
    const int n_opts = N_BASE + cli_attn_opts(&o.attn, opts + N_BASE);
    const cli_spec spec = {"bench", "loki bench decode (-m MODEL | --random-weights SHAPE) [options]",
                           "Measure prompt processing and decode speed; prints one JSON object.\n"
                           "Attention options as in `loki run` (--attn loki with --random-weights, or -m a GGUF of\n"
                           "`loki convert --random-weights`, and no --pca uses identity bases: speed does not depend\n"
                           "on the basis).\n"
                           "`loki bench attention --help`: one decode step of attention, dense vs loki, on the CPU\n"
                           "or with --device cuda on the GPU (`loki bench attention --device cuda --help`).",
                           opts, n_opts, 1};
    if (argc > 1 && !strcmp(argv[1], "attention")) return cli_bench_attention(argc - 1, argv + 1);
    const char *pos[1] = {NULL};
    int npos = 0;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (npos != 1 || strcmp(pos[0], "decode") != 0) {
        fprintf(stderr, "loki bench: expected a benchmark name: decode or attention (see loki bench --help)\n");
        return 2;
    }
    if (!o.model == !o.random) {
        fprintf(stderr, "loki bench: give exactly one of -m MODEL or --random-weights SHAPE\n");
        return 2;
    }
    if (o.n_prompt < 0 || o.n_gen < 0 || o.n_depth < 0 || o.reps < 1 || o.n_ctx < 0 || o.n_threads < 0 ||
        o.batch < 1) {
        fprintf(stderr, "loki bench: -p, -n, -d, -c and -t must be >= 0, -r and -b >= 1\n");
        return 2;
    }
    if (cli_fused("bench", o.fused, &o.fused_mode)) return 2;
    if (o.wpf_mib < 0 || o.wpf_mib > LOKI_MAX_WEIGHT_PREFETCH_MIB) {
        fprintf(stderr, "loki bench: --weight-prefetch must be in 0..%d (MiB), got %d\n", LOKI_MAX_WEIGHT_PREFETCH_MIB,
                o.wpf_mib);
        return 2;
    }
    loki_model *m = o.random ? open_random(&o) : cli_open_model("bench", o.model, o.tokenizer);
    if (!m) return 1;
    rc = run_decode_bench(&o, m);
    loki_model_close(m);
    return rc;
}
