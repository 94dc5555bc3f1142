/*
 * forward.c - the forward pass, top to bottom: the Llama family, and Gemma 3
 * through the optional fields of the model (model.h) - the steps marked
 * [gemma] run only when the model has them.
 *
 *   x = embed(tokens) (* embd_scale [gemma])            (n, E)
 *   for each layer:
 *     xb = rmsnorm(x) ; q,k,v = xb·Wqᵀ,Wkᵀ,Wvᵀ (+bias)
 *     q,k = rmsnorm per head (QK-norm) [gemma] ; rope(q,k) (local layers: their own base)
 *     q,k = rotate(q,k) (PCA basis, loki only, global layers) ; cache[pos..] = k,v
 *     att = attention(q, cache) (dense or sparse, attn/; local layers: dense in their window)
 *     xb = att·Woᵀ ; xb = rmsnorm(xb) [gemma] ; x += xb
 *     xb = rmsnorm(x) ; hb = act(xb·Wgᵀ) * xb·Wuᵀ (SwiGLU, or GeGLU [gemma])
 *     xb = hb·Wdᵀ ; xb = rmsnorm(xb) [gemma] ; x += xb
 *   logits = rmsnorm(x)·Woutᵀ (soft-capped when final_softcap)   (rows, V)
 * E = n_embd, H/Hkv = query/KV heads, D = head_dim, F = n_ff, V = n_vocab.
 */
#include "engine/engine.h"

#include "calib/pca.h"

#include <math.h>
#include <string.h>

static void add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* x (n) *= s (Gemma's embedding scale). */
static void scale_inplace(float *x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* x = c * tanh(x / c) (Gemma's final logit soft-capping). */
static void softcap_inplace(float *x, float c, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = c * tanhf(x[i] / c);
}

loki_status lk_forward(loki_context *ctx, const int32_t *tokens, int32_t n, float *out,
                       int32_t n_out, loki_error *err) {
    const loki_model *m = ctx->model;
    const lk_hparams *hp = &ctx->hp;
    const int E = hp->n_embd, D = hp->head_dim, H = hp->n_head, Hkv = hp->n_head_kv, F = hp->n_ff;
    const int32_t pos0 = ctx->pos;
    lk_cpu *cpu = ctx->cpu;
    if (n <= 0 || n > ctx->n_batch || n_out < 1 || n_out > n)
        return lk_fail(err, LOKI_ERR_ARG, "forward: bad batch (n=%d, n_out=%d)", n, n_out);
    if (pos0 + n > ctx->n_ctx)
        return lk_fail(err, LOKI_ERR_RANGE, "forward: %d tokens at position %d exceed the context of %d",
                       n, pos0, ctx->n_ctx);

    for (int32_t i = 0; i < n; i++) {
        lk_cpu_get_row(ctx->x + (size_t)i * E, &m->tok_embd, tokens[i]);
        ctx->positions[i] = pos0 + i;
    }
    if (hp->embd_scale > 0.0f) scale_inplace(ctx->x, hp->embd_scale, (size_t)n * E);
    for (int l = 0; l < hp->n_layer; l++) {
        const lk_layer *L = &m->layers[l];
        lk_hparams local_rope;
        const lk_hparams *rope = lk_layer_rope(hp, l, &local_rope); /* local layers: own base */
        /* attention block */
        lk_cpu_rmsnorm(cpu, ctx->xb, ctx->x, &L->attn_norm, n, E, hp->rms_eps);
        lk_cpu_matmul(cpu, ctx->q, ctx->xb, &L->wq, n);   /* (n, H*D) */
        lk_cpu_matmul(cpu, ctx->k, ctx->xb, &L->wk, n);   /* (n, Hkv*D) */
        lk_cpu_matmul(cpu, ctx->v, ctx->xb, &L->wv, n);   /* (n, Hkv*D) */
        if (L->bq.data) lk_cpu_add_bias(ctx->q, &L->bq, n, H * D);
        if (L->bk.data) lk_cpu_add_bias(ctx->k, &L->bk, n, Hkv * D);
        if (L->bv.data) lk_cpu_add_bias(ctx->v, &L->bv, n, Hkv * D);
        /* QK-norm: every head's (D) vector normalised on its own */
        if (L->attn_q_norm.data) lk_cpu_rmsnorm(cpu, ctx->q, ctx->q, &L->attn_q_norm, n * H, D, hp->rms_eps);
        if (L->attn_k_norm.data) lk_cpu_rmsnorm(cpu, ctx->k, ctx->k, &L->attn_k_norm, n * Hkv, D, hp->rms_eps);
        if (ctx->calib) lk_calib_add_keys(ctx->calib, LOKI_BASIS_PRE, l, ctx->k, n);
        lk_cpu_rope(cpu, ctx->q, n, H, ctx->positions, rope);
        lk_cpu_rope(cpu, ctx->k, n, Hkv, ctx->positions, rope);
        if (ctx->calib) lk_calib_add_keys(ctx->calib, LOKI_BASIS_POST, l, ctx->k, n);
        lk_attn_rotate(ctx->attn, l, ctx->q, n, H);   /* into the PCA basis (loki, pcaattn) */
        lk_attn_rotate(ctx->attn, l, ctx->k, n, Hkv);
        lk_kv_store(&ctx->kv, l, pos0, ctx->k, ctx->v, n);
        lk_attn_run(ctx->attn, lk_cpu_pool(cpu), &ctx->kv, l, ctx->q, ctx->att, n, pos0); /* (n, H*D) */
        lk_cpu_matmul(cpu, ctx->xb, ctx->att, &L->wo, n);      /* (n, E) */
        if (L->attn_post_norm.data) lk_cpu_rmsnorm(cpu, ctx->xb, ctx->xb, &L->attn_post_norm, n, E, hp->rms_eps);
        add_inplace(ctx->x, ctx->xb, (size_t)n * E);
        /* feed-forward block (SwiGLU / GeGLU) */
        lk_cpu_rmsnorm(cpu, ctx->xb, ctx->x, &L->ffn_norm, n, E, hp->rms_eps);
        lk_cpu_matmul(cpu, ctx->hb, ctx->xb, &L->w_gate, n);   /* (n, F) */
        lk_cpu_matmul(cpu, ctx->hb2, ctx->xb, &L->w_up, n);    /* (n, F) */
        if (hp->ffn_act == LK_ACT_GELU_TANH) lk_cpu_geglu(cpu, ctx->hb, ctx->hb2, n, F);
        else lk_cpu_swiglu(cpu, ctx->hb, ctx->hb2, n, F);
        lk_cpu_matmul(cpu, ctx->xb, ctx->hb, &L->w_down, n);   /* (n, E) */
        if (L->ffn_post_norm.data) lk_cpu_rmsnorm(cpu, ctx->xb, ctx->xb, &L->ffn_post_norm, n, E, hp->rms_eps);
        add_inplace(ctx->x, ctx->xb, (size_t)n * E);
    }
    /* only the rows whose logits are wanted go through the output head */
    const float *xl = ctx->x + (size_t)(n - n_out) * E;
    lk_cpu_rmsnorm(cpu, ctx->xb, xl, &m->out_norm, n_out, E, hp->rms_eps);
    lk_cpu_matmul(cpu, out, ctx->xb, &m->output, n_out);       /* (n_out, V) */
    if (hp->final_softcap > 0.0f) softcap_inplace(out, hp->final_softcap, (size_t)n_out * hp->n_vocab);
    ctx->pos += n;
    return LOKI_OK;
}
