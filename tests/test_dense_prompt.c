/*
 * test_dense_prompt.c - `--dense-prompt` (loki_attn_params.dense_prompt) on
 * the CPU: a prompt block attends densely over the method's cache layout
 * (keys rotated into the PCA basis and split at d), the decode steps after
 * it select; the combinations that need every row's attention weights are
 * refused.
 *
 * Model: random f32 weights of a small Llama shape (model/random.c), an f32
 * KV cache, and a PCA basis of Householder reflections C = I - 2 u uᵀ per
 * (layer, KV head) (orthogonal, so q·k = (Cq)·(Ck) exactly in real
 * arithmetic). Tolerances: the dense prompt over rotated keys differs from
 * the plain dense prompt by f32 rounding only (the rotation's D-term dot
 * products): max |Δ logits| <= 1e-4 · max |logits| (measured ~1e-7 of it);
 * the method's own prompt and its decode step must differ from dense by
 * more than 20 times that bound, so the checks cannot pass by the method
 * being dense.
 */
#include "test.h"

#include "calib/pca.h"
#include "core/tensor.h"
#include "eval/eval.h"
#include "model/model.h"
#include "model/random.h"

#define NP 48 /* prompt tokens */
#define DP_TOL 1e-4

/* A basis of reflections I - 2uuᵀ (u a fixed pseudo-random unit vector per
 * layer and head), eigenvalues descending, both bases alike. */
static loki_pca *householder_pca(const lk_hparams *hp) {
    loki_error err = {0};
    loki_pca *pca = NULL;
    const int L = hp->n_layer, Hkv = hp->n_head_kv, D = hp->head_dim;
    test_need(lk_pca_init(&pca, L, Hkv, D, &err), &err, "pca");
    uint32_t s = 12345u;
    double u[256];
    for (int b = 0; b < 2; b++)
        for (int lh = 0; lh < L * Hkv; lh++) {
            double nn = 0.0;
            for (int i = 0; i < D; i++) {
                s = s * 1664525u + 1013904223u;
                u[i] = (double)(s >> 8) / (double)(1u << 24) - 0.5;
                nn += u[i] * u[i];
            }
            for (int i = 0; i < D; i++) u[i] /= sqrt(nn);
            float *C = pca->components[b] + (size_t)lh * D * D;
            for (int i = 0; i < D; i++) {
                for (int j = 0; j < D; j++) C[i * D + j] = (float)((i == j) - 2.0 * u[i] * u[j]);
                pca->eigenvalues[b][(size_t)lh * D + i] = (float)(D - i);
            }
        }
    return pca;
}

/* All NP rows of the prompt's logits, then one decode step's: (NP + 1, V). */
static float *run(loki_model *m, const loki_attn_params *p, const int32_t *toks, loki_error *err) {
    const int V = m->hp.n_vocab;
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = NP + 8;
    cp.n_threads = 2;
    cp.type_k = cp.type_v = LOKI_KV_F32;
    loki_context *ctx = NULL;
    float *out = NULL;
    if (loki_context_init(m, &cp, &ctx, err)) return NULL;
    if (loki_context_set_attn(ctx, p, err)) goto fail;
    out = test_xmalloc(sizeof(float) * (size_t)(NP + 1) * V);
    if (loki_eval(ctx, toks, NP, true, err)) goto fail;
    memcpy(out, loki_get_logits(ctx, NULL), sizeof(float) * (size_t)NP * V);
    if (loki_eval(ctx, toks + NP, 1, false, err)) goto fail;
    memcpy(out + (size_t)NP * V, loki_get_logits(ctx, NULL), sizeof(float) * (size_t)V);
    loki_context_free(ctx);
    return out;
fail:
    free(out);
    loki_context_free(ctx);
    return NULL;
}

static double max_abs(const float *a, size_t n) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)a[i]));
    return mx;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)a[i] - (double)b[i]));
    return mx;
}

int main(void) {
    lk_hparams hp;
    test_small_llama(&hp, 2, 4, 2, 512, 128);
    loki_error err = {0};
    loki_model *m = calloc(1, sizeof(*m));
    if (!m) test_need(LOKI_ERR_NOMEM, &err, "model struct");
    test_need(lk_model_init_random(m, &hp, LK_DTYPE_F32, 11, &err), &err, "random model");
    loki_pca *pca = householder_pca(&hp);
    const int V = hp.n_vocab;
    int32_t toks[NP + 1];
    for (int i = 0; i <= NP; i++) toks[i] = (i * 97 + 13) % V;

    loki_attn_params dense = loki_attn_default_params(), meth = loki_attn_default_params();
    meth.method = LOKI_ATTN_LOKI, meth.kf = 0.125f, meth.df = 0.25f, meth.pca = pca;
    loki_attn_params dp = meth;
    dp.dense_prompt = true;
    float *ld = run(m, &dense, toks, &err);
    CHECKF(ld != NULL, "dense: %s", err.msg);
    float *lm = run(m, &meth, toks, &err);
    CHECKF(lm != NULL, "loki: %s", err.msg);
    float *lp = run(m, &dp, toks, &err);
    CHECKF(lp != NULL, "loki --dense-prompt: %s", err.msg);
    if (ld && lm && lp) {
        const size_t np = (size_t)NP * V;
        const double scale = max_abs(ld, np), tol = DP_TOL * scale;
        const double d_dp = max_diff(lp, ld, np), d_m = max_diff(lm, ld, np);
        const double d_dec = max_diff(lp + np, ld + np, (size_t)V);
        printf("prompt: |dense-prompt - dense| %.3e, |loki - dense| %.3e (max|logit| %.3e); decode step: "
               "|dense-prompt - dense| %.3e\n", d_dp, d_m, scale, d_dec);
        CHECKF(d_dp <= tol, "the dense prompt over the rotated split cache differs from dense by %.3e (> %.3e)", d_dp,
               tol);
        CHECKF(d_m > 20 * tol, "loki's own prompt is within %.3e of dense: the check would not see a method", d_m);
        CHECKF(d_dec > 20 * tol, "the decode step after a dense prompt is within %.3e of dense: it did not select",
               d_dec);
    }
    free(ld), free(lm), free(lp);

    /* refused: h2o and eviction (they accumulate every row's weights), and
     * perplexity's prefill mode (it evaluates the method on the prompt) */
    loki_attn_params bad = loki_attn_default_params();
    bad.method = LOKI_ATTN_H2O, bad.kf = 0.25f, bad.dense_prompt = true;
    CHECKF(loki_attn_validate(&bad, m, &err) == LOKI_ERR_ARG && strstr(err.msg, "--dense-prompt"),
           "h2o + dense_prompt: %s", err.msg);
    bad = dp, bad.evict_kf = 0.5f;
    CHECKF(loki_attn_validate(&bad, m, &err) == LOKI_ERR_ARG && strstr(err.msg, "--evict-kf"),
           "evict + dense_prompt: %s", err.msg);
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = NP + 8, cp.n_threads = 2;
    loki_context *ctx = NULL;
    CHECK_OK(loki_context_init(m, &cp, &ctx, &err));
    if (ctx) CHECK_OK(loki_context_set_attn(ctx, &dp, &err));
    if (ctx) {
        lk_ppl_opts o = {.window = NP, .mode = LK_PPL_PREFILL};
        lk_ppl_result r;
        CHECKF(lk_eval_perplexity(ctx, toks, NP, &o, &r, &err) == LOKI_ERR_ARG && strstr(err.msg, "--dense-prompt"),
               "perplexity prefill + dense_prompt: %s", err.msg);
        o.mode = LK_PPL_DECODE;
        CHECK_OK(lk_eval_perplexity(ctx, toks, NP, &o, &r, &err));
        loki_context_free(ctx);
    }
    loki_pca_free(pca);
    loki_model_close(m);
    return test_finish();
}
