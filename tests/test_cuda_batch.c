/*
 * test_cuda_batch.c - decode steps on the GPU as the engine runs them:
 * replayed CUDA graphs against launching every kernel, and batched decoding
 * of several sequences against each sequence decoded alone (fixture-15m:
 * 8 layers, 6 query / 2 KV heads, head_dim 64).
 *
 *  - Graphs: two contexts, one replaying captured decode steps (the
 *    default) and one with no_cuda_graphs, decode the same greedy
 *    continuation of 150 tokens from a 20-token prompt, crossing several
 *    pages and length buckets (so steps are captured, replayed and the
 *    graph updated). Both launch the same kernels with the same shapes
 *    (the backend always runs the attention bucketed), so dense logits are
 *    bit-identical; for loki and the GQA-shared selection the select
 *    kernels append their picks in no fixed order, which changes the
 *    attend's summation order (f32 rounding, ~1e-7 relative per step);
 *    each step's keys and values are written from outputs that carry the
 *    earlier steps' differences, so they compound over the 150 steps
 *    (measured on the H200, 2026-12-03: 1.4e-5 loki, 2.0e-4 GQA-shared):
 *    GRAPH_TOL relative, and equal tokens.
 *  - Batches: 4 sequences with prompts of 7, 23, 64 and 90 tokens decode
 *    40 greedy steps together (loki_decode_batch) and alone (one context
 *    per sequence, one token at a time). Equal tokens, and logits within
 *    BATCH_TOL: the batch and the single step read the same weights and
 *    cache entries, but the attend stage splits each row differently for
 *    B = 4 than for B = 1 (split counts follow the batch), so partial sums
 *    are merged in another order (f32 rounding, ~1e-6 relative), and the
 *    matrix-vector kernels compute each row the same way.
 *  - Both again for Loki with loki_context_params.cuda_fused =
 *    LOKI_CUDA_FUSED_PER_HEAD: the fixture's grouped heads through the fused
 *    kernel (loki_fused.cu), whose blocks per row follow the batch too.
 *  - Dense again with cuda_weight_prefetch_mib set on the graph side (4 MiB)
 *    and on the batch side (64 MiB: every block of every product): the
 *    prefetch is a hint, so graphs vs eager stay bit-identical and batch vs
 *    alone within BATCH_TOL.
 *  - Errors: a batch larger than the context's sequences, a full sequence,
 *    several sequences on the CPU, and a context too large for the GPU.
 * Skips (77) without a GPU or without fixture-15m.
 */
#include "test.h"

#include "loki.h"
#include "calib/pca.h"
#include "engine/engine.h"

#define GRAPH_TOL 1e-3
#define BATCH_TOL 1e-3
#define NB 4

/* fused: which Loki steps run as the fused kernel (loki_cuda_fused; 0: the
 * default); wpf: MiB of weights each product prefetches (0: none) */
static loki_context *gpu_ctx(loki_model *m, int32_t n_seq, bool graphs, const loki_attn_params *p,
                             loki_cuda_fused fused, int32_t wpf, loki_error *err) {
    loki_context_params cp = loki_context_default_params();
    cp.cuda_fused = fused;
    cp.cuda_weight_prefetch_mib = wpf;
    cp.n_ctx = 256;
    cp.n_batch = 64;
    cp.n_seq = n_seq;
    cp.device = LOKI_DEVICE_CUDA;
    cp.no_cuda_graphs = !graphs;
    loki_context *ctx = NULL;
    if (loki_context_init(m, &cp, &ctx, err)) return NULL;
    if (p && loki_context_set_attn(ctx, p, err)) {
        loki_context_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Identity bases (the selection path does not need a calibrated one). */
static loki_pca *identity_pca(const loki_model *m, loki_error *err) {
    const lk_hparams *hp = &m->hp;
    loki_pca *p = NULL;
    if (lk_pca_init(&p, hp->n_layer, hp->n_head_kv, hp->head_dim, err)) return NULL;
    const int D = hp->head_dim;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int64_t lh = 0; lh < (int64_t)hp->n_layer * hp->n_head_kv; lh++)
            for (int j = 0; j < D; j++) {
                p->components[b][(lh * D + j) * D + j] = 1.0f;
                p->eigenvalues[b][lh * D + j] = 1.0f / (1.0f + j);
            }
    return p;
}

/* Greedy decode with graphs and without, step by step; the graphs' context
 * prefetches wpf MiB of weights a product (a hint: the same bits). */
static void check_graphs(loki_model *m, const char *name, const loki_attn_params *p, loki_cuda_fused fused,
                         int32_t wpf, const int32_t *prompt, int n, int V, bool exact) {
    loki_error err = {0};
    loki_context *g = gpu_ctx(m, 1, true, p, fused, wpf, &err),
                 *e = g ? gpu_ctx(m, 1, false, p, fused, 0, &err) : NULL;
    CHECKF(g && e, "%s: contexts: %s", name, err.msg);
    float *gl = malloc(sizeof(float) * (size_t)V);
    if (g && e && gl) {
        CHECK_OK(loki_eval(g, prompt, n, false, &err));
        CHECK_OK(loki_eval(e, prompt, n, false, &err));
        double worst = 0;
        int steps = 0, differ = 0;
        for (; steps < 150; steps++) {
            memcpy(gl, loki_get_logits(g, NULL), sizeof(float) * (size_t)V);
            const float *el = loki_get_logits(e, NULL);
            worst = fmax(worst, test_rel_maxdiff(gl, el, V));
            if (exact && memcmp(gl, el, sizeof(float) * (size_t)V)) differ++;
            int32_t tg = test_argmax(gl, V), te = test_argmax(el, V);
            if (tg != te) {
                CHECKF(0, "%s: step %d: graph token %d, eager token %d", name, steps, tg, te);
                break;
            }
            if (loki_eval(g, &tg, 1, false, &err) || loki_eval(e, &te, 1, false, &err)) {
                CHECKF(0, "%s: step %d: %s", name, steps, err.msg);
                break;
            }
        }
        CHECKF(worst <= GRAPH_TOL, "%s: graph vs eager logits %.3g > %g", name, worst, GRAPH_TOL);
        CHECKF(lk_backend_cuda_replays(g->be) >= steps / 2 && lk_backend_cuda_replays(e->be) == 0,
               "%s: %lld graph replays in %d steps", name, (long long)lk_backend_cuda_replays(g->be), steps);
        CHECKF(differ == 0, "%s: %d of %d steps not bit-identical", name, differ, steps);
        printf("%s: %d steps, graphs vs every kernel launched: worst %.3g%s\n", name, steps, worst,
               exact ? " (bit-identical)" : "");
    }
    free(gl);
    loki_context_free(g);
    loki_context_free(e);
}

/* NB sequences decoded together and alone. */
static void check_batch(loki_model *m, const char *name, const loki_attn_params *p, loki_cuda_fused fused, int32_t wpf,
                        const int32_t *text, int V) {
    static const int plen[NB] = {7, 23, 64, 90};
    loki_error err = {0};
    loki_context *bat = gpu_ctx(m, NB, true, p, fused, wpf, &err), *one[NB] = {0};
    CHECKF(bat != NULL, "%s: batch context: %s", name, err.msg);
    for (int s = 0; s < NB && bat; s++) {
        one[s] = gpu_ctx(m, 1, true, p, fused, 0, &err);
        CHECKF(one[s] != NULL, "%s: context %d: %s", name, s, err.msg);
    }
    float *bl = malloc(sizeof(float) * (size_t)NB * V);
    int32_t tok[NB];
    bool ok = bat && one[NB - 1] && bl;
    for (int s = 0; ok && s < NB; s++) { /* each prompt starts at its own offset of the text */
        ok = !loki_context_set_seq(bat, s, &err) && !loki_eval(bat, text + 10 * s, plen[s], false, &err) &&
             !loki_eval(one[s], text + 10 * s, plen[s], false, &err);
        CHECKF(ok, "%s: prompt %d: %s", name, s, err.msg);
        if (ok) tok[s] = test_argmax(loki_get_logits(one[s], NULL), V);
    }
    double worst = 0;
    int steps = 0;
    for (; ok && steps < 40; steps++) {
        int32_t rows = 0;
        if (loki_decode_batch(bat, tok, NB, &err)) {
            CHECKF(0, "%s: batch step %d: %s", name, steps, err.msg);
            break;
        }
        memcpy(bl, loki_get_logits(bat, &rows), sizeof(float) * (size_t)NB * V);
        CHECK(rows == NB);
        for (int s = 0; s < NB && ok; s++) {
            if (loki_eval(one[s], &tok[s], 1, false, &err)) {
                CHECKF(0, "%s: seq %d step %d: %s", name, s, steps, err.msg);
                ok = false;
                break;
            }
            const float *ol = loki_get_logits(one[s], NULL);
            worst = fmax(worst, test_rel_maxdiff(bl + (size_t)s * V, ol, V));
            int32_t tb = test_argmax(bl + (size_t)s * V, V), to = test_argmax(ol, V);
            CHECKF(tb == to, "%s: seq %d step %d: batch token %d, alone %d", name, s, steps, tb, to);
            if (tb != to) ok = false;
            tok[s] = to;
        }
    }
    for (int s = 0; bat && s < NB; s++) { /* positions advanced by prompt + steps */
        CHECK_OK(loki_context_set_seq(bat, s, &err));
        CHECKF(loki_context_pos(bat) == plen[s] + steps, "%s: seq %d at %d, want %d", name, s, loki_context_pos(bat),
               plen[s] + steps);
    }
    CHECKF(worst <= BATCH_TOL, "%s: batch vs alone logits %.3g > %g", name, worst, BATCH_TOL);
    printf("%s: %d sequences x %d steps, batch vs alone: worst %.3g, tokens equal\n", name, NB, steps, worst);
    free(bl);
    loki_context_free(bat);
    for (int s = 0; s < NB; s++) loki_context_free(one[s]);
}

static void check_errors(loki_model *m) {
    loki_error err = {0};
    loki_context *c = gpu_ctx(m, 2, true, NULL, LOKI_CUDA_FUSED_DEFAULT, 0, &err);
    CHECK(c != NULL);
    int32_t t[3] = {1, 2, 3};
    if (c) {
        CHECK(loki_decode_batch(c, t, 3, &err) == LOKI_ERR_ARG);
        CHECKF(strstr(err.msg, "holds 2") != NULL, "batch too large: %s", err.msg);
        CHECK(loki_context_set_seq(c, 2, &err) == LOKI_ERR_ARG);
        t[0] = -1;
        CHECK(loki_decode_batch(c, t, 2, &err) == LOKI_ERR_ARG);
        t[0] = 1;
        int32_t *fill = calloc(256, sizeof(int32_t));
        CHECK_OK(loki_eval(c, fill, 256, false, &err)); /* sequence 0 full */
        CHECK(loki_decode_batch(c, t, 2, &err) == LOKI_ERR_RANGE);
        CHECKF(strstr(err.msg, "sequence 0 is full") != NULL, "full sequence: %s", err.msg);
        free(fill);
    }
    loki_context_free(c);
    loki_context_params cp = loki_context_default_params();
    cp.n_seq = 2; /* several sequences need the GPU */
    c = NULL;
    CHECK(loki_context_init(m, &cp, &c, &err) == LOKI_ERR_UNSUPPORTED);
    CHECKF(strstr(err.msg, "--device cuda") != NULL, "CPU n_seq 2: %s", err.msg);
    loki_context_free(c);
    cp = loki_context_default_params();
    cp.device = LOKI_DEVICE_CUDA;
    cp.n_ctx = 1 << 30; /* a cache of ~3 TiB */
    c = NULL;
    loki_status st = loki_context_init(m, &cp, &c, &err);
    CHECKF(st == LOKI_ERR_NOMEM && strstr(err.msg, "GiB") != NULL, "huge context: %d %s", (int)st, err.msg);
    printf("too large: %s\n", err.msg);
    loki_context_free(c);
}

int main(void) {
    char *cfg = test_shared_or_skip("models/fixture-15m/config.json");
    free(cfg);
    char *dir = test_shared_path("models/fixture-15m");
    loki_error err = {0};
    loki_model *m = NULL;
    CHECK_OK(loki_model_open(dir, NULL, &m, &err));
    free(dir);
    if (!m) return test_finish();
    if (!loki_cuda_available()) {
        printf("SKIP: no usable GPU\n");
        loki_model_close(m);
        return g_test.failed ? test_finish() : 77;
    }
    const int V = m->hp.n_vocab;
    char *path = test_shared_path("data/wikitext2-test.raw");
    size_t len = 0;
    uint8_t *text = test_read_all(path, &len);
    free(path);
    int32_t ids[2048];
    int n = 0;
    if (text) CHECK_OK(loki_tokenize(m, (const char *)text, len < 4000 ? len : 4000, true, false, ids, 2048, &n, &err));
    free(text);
    CHECKF(n >= 130, "wikitext2-test.raw: only %d tokens", n);
    loki_pca *pca = identity_pca(m, &err);
    CHECK(pca != NULL);
    loki_attn_params dense = loki_attn_default_params(), loki = dense, shared = dense;
    loki.method = LOKI_ATTN_LOKI, loki.kf = 0.25f, loki.df = 0.25f, loki.pca = pca;
    shared = loki, shared.gqa_shared = true, shared.k_min = 16, shared.recent = 8, shared.sinks = 2;
    if (n >= 130 && pca) {
        const loki_cuda_fused def = LOKI_CUDA_FUSED_DEFAULT, ph = LOKI_CUDA_FUSED_PER_HEAD;
        check_graphs(m, "dense", &dense, def, 0, ids, 20, V, true);
        check_graphs(m, "loki kf .25 df .25", &loki, def, 0, ids, 20, V, false);
        check_graphs(m, "loki gqa-shared + budget", &shared, def, 0, ids, 20, V, false);
        /* the fixture's 3 query heads per KV head, each with its own
         * selection, through the fused kernel (loki_fused.cu) */
        check_graphs(m, "loki kf .25 df .25, fused per-head", &loki, ph, 0, ids, 20, V, false);
        /* weights prefetched into L2 before each product waits (graph side
         * only): the same bits as the eager steps without it */
        check_graphs(m, "dense, graphs with weight prefetch 4 MiB", &dense, def, 4, ids, 20, V, true);
        check_batch(m, "dense", &dense, def, 0, ids, V);
        check_batch(m, "loki kf .25 df .25", &loki, def, 0, ids, V);
        check_batch(m, "loki gqa-shared + budget", &shared, def, 0, ids, V);
        check_batch(m, "loki kf .25 df .25, fused per-head", &loki, ph, 0, ids, V);
        check_batch(m, "dense, batch with weight prefetch 64 MiB", &dense, def, 64, ids, V);
        check_errors(m);
    }
    loki_pca_free(pca);
    loki_model_close(m);
    return test_finish();
}
