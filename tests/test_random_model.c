/*
 * test_random_model.c - the random-weight models of `bench decode
 * --random-weights` (src/model/random.c) in every weight type: every block of
 * every matrix dequantizes to finite values of the generator's range, the
 * block scales are the pool's (not bytes of neighbouring blocks), the same
 * seed gives the same weights, and a forward pass gives finite logits.
 *
 * Why: the arena pads each tensor to 64 bytes, which is not a multiple of a
 * quantized block (34 bytes for q8_0, 144 for q4_k). Weights once copied as
 * one stream across that padding put quant bytes in the f16 scales and made
 * NaN/Inf weights, so every q8_0 / q4_k benchmark ran on garbage.
 */
#include "test.h"

#include "core/tensor.h"
#include "model/model.h"
#include "model/random.h"

/* Dequantize every row of t; return the largest |w| (INFINITY if any value
 * is not finite). */
static float tensor_absmax(const lk_tensor *t) {
    const int64_t cols = t->ne[0], rows = t->ne[1];
    const size_t rb = lk_dtype_row_bytes(t->dtype, cols);
    float *row = test_xmalloc(sizeof(float) * (size_t)cols);
    float mx = 0.0f;
    for (int64_t r = 0; r < rows && isfinite(mx); r++) {
        lk_row_to_f32(t->dtype, (const uint8_t *)t->data + (size_t)r * rb, row, cols);
        for (int64_t c = 0; c < cols; c++) {
            if (!isfinite(row[c])) {
                mx = INFINITY;
                break;
            }
            mx = fmaxf(mx, fabsf(row[c]));
        }
    }
    free(row);
    return mx;
}

static void test_type(lk_dtype dt) {
    lk_hparams hp;
    test_small_llama(&hp, 3, 8, 4, 768, 64); /* matrix widths multiples of 256 (the K-quant block) */
    loki_error err = {0};
    loki_model *m = calloc(1, sizeof(*m)), *m2 = calloc(1, sizeof(*m2));
    if (!m || !m2) test_need(LOKI_ERR_NOMEM, &err, "model structs");
    test_need(lk_model_init_random(m, &hp, dt, 7, &err), &err, "random model");
    test_need(lk_model_init_random(m2, &hp, dt, 7, &err), &err, "random model (again)");
    const char *name = lk_dtype_name(dt);
    /* the generator draws |w| < 0.02; a block's rounding stays well inside 0.03
     * for every type (the K-quants round scales to 6 bits: up to ~1/64 of
     * the block's range above it) */
    const float bound = 0.03f;
    float worst = 0.0f;
    int n = 0, same = 0;
    const lk_tensor *ts[2 + 7 * 3], *ts2[2 + 7 * 3];
    ts[n] = &m->tok_embd, ts2[n++] = &m2->tok_embd;
    ts[n] = &m->output, ts2[n++] = &m2->output;
    for (int l = 0; l < hp.n_layer; l++) {
        const lk_layer *a = &m->layers[l], *b = &m2->layers[l];
        const lk_tensor *la[] = {&a->wq, &a->wk, &a->wv, &a->wo, &a->w_gate, &a->w_up, &a->w_down};
        const lk_tensor *lb[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (int i = 0; i < 7; i++) ts[n] = la[i], ts2[n++] = lb[i];
    }
    for (int i = 0; i < n; i++) {
        float mx = tensor_absmax(ts[i]);
        CHECKF(isfinite(mx) && mx < bound, "%s: %s (%d of %d): max |w| = %g (bound %g)", name, ts[i]->name, i, n,
               mx, bound);
        CHECKF(mx > 0.005f, "%s: %s: max |w| = %g: weights missing", name, ts[i]->name, mx);
        worst = fmaxf(worst, mx);
        same += ts[i]->nbytes == ts2[i]->nbytes && !memcmp(ts[i]->data, ts2[i]->data, ts[i]->nbytes);
    }
    CHECKF(same == n, "%s: the same seed gives the same weights (%d of %d tensors)", name, same, n);

    /* a forward pass on the CPU: finite logits of a plausible size */
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    loki_context *ctx = NULL;
    test_need(loki_context_init(m, &cp, &ctx, &err), &err, "context");
    int32_t toks[8] = {1, 17, 42, 300, 5, 0, 123, 250};
    CHECK_OK(loki_eval(ctx, toks, 8, true, &e_));
    int32_t rows = 0;
    const float *lg = loki_get_logits(ctx, &rows);
    int finite = 0;
    for (int64_t i = 0; i < (int64_t)rows * hp.n_vocab; i++) finite += isfinite(lg[i]) != 0;
    CHECKF(rows == 8 && finite == rows * hp.n_vocab, "%s: %d of %d logits finite", name, finite,
           rows * hp.n_vocab);
    printf("%-5s max|w| %.4f, %d tensors, logits finite %d/%d\n", name, worst, n, finite, rows * hp.n_vocab);
    loki_context_free(ctx);
    loki_model_close(m);
    loki_model_close(m2);
}

int main(void) {
    int n = 0;
    for (int t = 0; t < 64; t++) {
        if (!lk_dtype_valid(t)) continue;
        test_type((lk_dtype)t);
        n++;
    }
    CHECKF(n >= 13, "%d weight types (f32, f16, bf16, 5 legacy quants, 5 K-quants)", n);
    return test_finish();
}
