/*
 * engine.h - the inference context: KV cache, activation buffers and the
 * forward pass. One loki_context per sequence; nothing here is global.
 */
#ifndef LK_ENGINE_H
#define LK_ENGINE_H

#include "attn/attn.h"
#include "core/common.h"
#include "cpu/cpu.h"
#include "engine/backend.h"
#include "model/model.h"

struct loki_context {
    loki_model *model;
    lk_hparams hp;
    int32_t n_ctx, n_batch, n_threads;
    lk_cpu *cpu;
    lk_kv_cache kv;
    loki_device device;
    lk_backend *be;        /* runs the forward pass (engine/backend.h); owns nothing above */
    int32_t pos;           /* tokens in the cache */
    /* activations for up to n_batch rows, in the backend's memory */
    float *x;              /* (n_batch, n_embd) residual stream */
    float *xb;             /* (n_batch, n_embd) normed input / block output */
    float *q;              /* (n_batch, n_head * head_dim) */
    float *k;              /* (n_batch, n_head_kv * head_dim) */
    float *v;              /* (n_batch, n_head_kv * head_dim) */
    float *att;            /* (n_batch, n_head * head_dim) attention output */
    float *hb;             /* (n_batch, n_ff) gate, then silu(gate) * up */
    float *hb2;            /* (n_batch, n_ff) up */
    int32_t *positions;    /* (n_batch) host */
    lk_attn *attn;         /* attention method state (attn/attn.h) */
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

/* Bring the key statistics the backend gathered while ctx->calib was set
 * into ctx->calib (lk_be_calib_flush: the GPU accumulates on the device; on
 * the CPU there is nothing to do). Call it before reading ctx->calib
 * (lk_calib_finish) or setting it to NULL, and before the context is freed
 * or its backend replaced (loki_context_set_attn does it itself); with
 * ctx->calib NULL it does nothing. Waits for the GPU's work; a fault of an
 * earlier pass surfaces here. */
loki_status lk_context_calib_flush(loki_context *ctx, loki_error *err);

#endif
