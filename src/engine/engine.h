/*
 * engine.h - the inference context: KV cache, activation buffers and the
 * forward pass. One loki_context per sequence; nothing here is global.
 */
#ifndef LK_ENGINE_H
#define LK_ENGINE_H

#include "core/common.h"
#include "cpu/cpu.h"
#include "model/model.h"

/* KV cache, allocated once for n_ctx positions. Head-major so that one KV
 * head's keys for all positions are contiguous (attention scans them). */
typedef struct lk_kv_cache {
    int32_t n_layer, n_head_kv, head_dim, n_ctx;
    float *k;  /* (n_layer, n_head_kv, n_ctx, head_dim) keys after RoPE */
    float *v;  /* (n_layer, n_head_kv, n_ctx, head_dim) values */
} lk_kv_cache;

/* Keys of (layer, kv head): (n_ctx, head_dim). */
static inline float *lk_kv_k(const lk_kv_cache *c, int layer, int h) {
    return c->k + ((size_t)layer * c->n_head_kv + h) * (size_t)c->n_ctx * c->head_dim;
}
static inline float *lk_kv_v(const lk_kv_cache *c, int layer, int h) {
    return c->v + ((size_t)layer * c->n_head_kv + h) * (size_t)c->n_ctx * c->head_dim;
}

struct loki_context {
    loki_model *model;
    lk_hparams hp;
    int32_t n_ctx, n_batch, n_threads;
    lk_cpu *cpu;
    lk_kv_cache kv;
    int32_t pos;           /* tokens in the cache */
    /* activations for up to n_batch rows */
    float *x;              /* (n_batch, n_embd) residual stream */
    float *xb;             /* (n_batch, n_embd) normed input / block output */
    float *q;              /* (n_batch, n_head * head_dim) */
    float *k;              /* (n_batch, n_head_kv * head_dim) */
    float *v;              /* (n_batch, n_head_kv * head_dim) */
    float *att;            /* (n_batch, n_head * head_dim) attention output */
    float *hb;             /* (n_batch, n_ff) gate, then silu(gate) * up */
    float *hb2;            /* (n_batch, n_ff) up */
    int32_t *positions;    /* (n_batch) */
    float *att_scratch;    /* attention scores, see attention.c for its size */
    size_t att_scratch_n;
    struct lk_calib *calib; /* not NULL: keys are accumulated for `loki calibrate` */
    loki_attn_params attn_params; /* attention method (loki_context_set_attn) */
    float *logits;         /* (logits_cap, n_vocab) */
    int32_t logits_cap;    /* rows allocated */
    int32_t n_logits;      /* rows of the last eval */
};

/* Run the model on n <= n_batch tokens at positions ctx->pos ..; writes the
 * logits of the last `n_out` rows (1 or n) to out (n_out, n_vocab). */
loki_status lk_forward(loki_context *ctx, const int32_t *tokens, int32_t n, float *out,
                       int32_t n_out, loki_error *err);

/* Dense causal attention for n query rows at positions pos0 .. pos0+n-1 over
 * the cache of one layer (keys/values for positions < pos0+n already stored).
 * q (n, n_head, head_dim), out (n, n_head, head_dim). */
void lk_attention_dense(loki_context *ctx, int layer, const float *q, float *out, int32_t n,
                        int32_t pos0);
/* Floats of scratch lk_attention_dense needs for a context. */
size_t lk_attention_scratch_size(int32_t n_ctx, int32_t n_batch, int n_threads);

#endif
