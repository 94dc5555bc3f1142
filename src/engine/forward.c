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
 *
 * Every step is an op of the context's backend (engine/backend.h: the CPU's
 * or the GPU's); the activations live in the backend's memory, and only the
 * logits come back to the host, at the end (or, when the context samples,
 * only the chosen tokens: engine/sampling.c).
 */
#include "engine/engine.h"

loki_status lk_forward(loki_context *ctx, const int32_t *tokens, int32_t n, bool batch, float *out,
                       int32_t n_out, int32_t *sampled, loki_error *err) {
    const loki_model *m = ctx->model;
    const lk_hparams *hp = &ctx->hp;
    const int E = hp->n_embd, D = hp->head_dim, H = hp->n_head, Hkv = hp->n_head_kv;
    lk_backend *be = ctx->be;
    if (!be) /* a failed loki_context_set_attn on the GPU leaves no backend */
        return lk_fail(err, LOKI_ERR_ARG, "forward: the context has no backend (its last set_attn failed)");
    if (n <= 0 || n > ctx->n_batch || n_out < 1 || n_out > n || (batch && n > ctx->n_seq))
        return lk_fail(err, LOKI_ERR_ARG, "forward: bad batch (n=%d, n_out=%d)", n, n_out);
    for (int32_t i = 0; i < n; i++) { /* each row's sequence and position */
        ctx->row_seq[i] = batch ? i : ctx->seq;
        ctx->positions[i] = batch ? ctx->seq_pos[i] : ctx->seq_pos[ctx->seq] + i;
        if (ctx->positions[i] >= ctx->n_ctx)
            return lk_fail(err, LOKI_ERR_RANGE, "forward: position %d of sequence %d exceeds the context of %d",
                           ctx->positions[i], ctx->row_seq[i], ctx->n_ctx);
    }
    const int32_t pos0 = ctx->positions[0];
    float *logits = be->ops->out_buffer(be, out, (size_t)n_out * hp->n_vocab, err); /* (n_out, V) */
    if (!logits) return LOKI_ERR_NOMEM;
    loki_status st = be->ops->begin(be, tokens, ctx->positions, ctx->row_seq, n, err);
    if (st) return st;

    lk_be_embed(be, ctx->x, &m->tok_embd, n, hp->embd_scale);   /* (n, E) */
    for (int l = 0; l < hp->n_layer; l++) {
        const lk_layer *L = &m->layers[l];
        /* attention block */
        lk_be_rmsnorm(be, ctx->xb, ctx->x, &L->attn_norm, n, E, hp->rms_eps);
        float *const qkv[3] = {ctx->q, ctx->k, ctx->v};  /* (n, H*D), (n, Hkv*D), (n, Hkv*D) */
        const lk_tensor *const wqkv[3] = {&L->wq, &L->wk, &L->wv};
        lk_be_matmul_multi(be, 3, qkv, ctx->xb, wqkv, n); /* one op: a backend may read them as one */
        if (L->bq.data) lk_be_add_bias(be, ctx->q, &L->bq, n, H * D);
        if (L->bk.data) lk_be_add_bias(be, ctx->k, &L->bk, n, Hkv * D);
        if (L->bv.data) lk_be_add_bias(be, ctx->v, &L->bv, n, Hkv * D);
        /* QK-norm: every head's (D) vector normalised on its own */
        if (L->attn_q_norm.data) lk_be_rmsnorm(be, ctx->q, ctx->q, &L->attn_q_norm, n * H, D, hp->rms_eps);
        if (L->attn_k_norm.data) lk_be_rmsnorm(be, ctx->k, ctx->k, &L->attn_k_norm, n * Hkv, D, hp->rms_eps);
        if (ctx->calib) lk_be_calib_keys(be, LOKI_BASIS_PRE, l, ctx->k, n);
        /* rope(q, k) (local layers: their own base; calibrating: k after it
         * into the statistics), rotate q, k into the PCA basis (loki,
         * pcaattn), store k, v, attend */
        lk_be_rope_attention(be, l, ctx->q, ctx->k, ctx->v, ctx->att, n, H, Hkv, pos0, ctx->calib != NULL);
        /* x (n, E) += att · Woᵀ (Gemma: the product RMS-normalised first) */
        lk_be_matmul_res(be, ctx->x, ctx->xb, ctx->att, &L->wo, L->attn_post_norm.data ? &L->attn_post_norm : NULL, n,
                         hp->rms_eps);
        /* feed-forward block (SwiGLU / GeGLU) */
        lk_be_rmsnorm(be, ctx->xb, ctx->x, &L->ffn_norm, n, E, hp->rms_eps);
        lk_be_matmul_glu(be, ctx->hb, ctx->hb2, ctx->xb, &L->w_gate, &L->w_up, n, hp->ffn_act); /* (n, F) */
        /* x (n, E) += hb · W_downᵀ (Gemma: normalised first) */
        lk_be_matmul_res(be, ctx->x, ctx->xb, ctx->hb, &L->w_down, L->ffn_post_norm.data ? &L->ffn_post_norm : NULL, n,
                         hp->rms_eps);
    }
    /* only the rows whose logits are wanted go through the output head */
    const float *xl = ctx->x + (size_t)(n - n_out) * E;
    lk_be_rmsnorm(be, ctx->xb, xl, &m->out_norm, n_out, E, hp->rms_eps);
    lk_be_matmul(be, logits, ctx->xb, &m->output, n_out);    /* (n_out, V) */
    if (hp->final_softcap > 0.0f) lk_be_softcap(be, logits, hp->final_softcap, (size_t)n_out * hp->n_vocab);
    /* the logits come back to the host, or only the tokens sampled from them */
    st = sampled ? lk_sampling_finish(ctx, logits, out, n_out, ctx->row_seq[n - n_out], sampled, err)
                 : be->ops->sync_read(be, out, logits, (size_t)n_out * hp->n_vocab, err);
    if (st) return st;
    for (int32_t i = 0; i < n; i++) ctx->seq_pos[ctx->row_seq[i]]++;
    return LOKI_OK;
}
