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
    loki_device device;    /* CPU or CUDA (AUTO resolved at init) */
    char device_note[256]; /* why AUTO fell back to the CPU, or "" */
    bool no_graphs;        /* loki_context_params.no_cuda_graphs */
    loki_cuda_fused fused; /* loki_context_params.cuda_fused */
    int32_t wpf_mib;       /* loki_context_params.cuda_weight_prefetch_mib */
    lk_backend *be;        /* runs the forward pass (engine/backend.h); owns nothing above */
    int32_t n_seq;         /* sequences held (loki_context_params.n_seq) */
    int32_t seq;           /* the current sequence (loki_eval's) */
    int32_t *seq_pos;      /* (n_seq) tokens in each sequence's cache */
    /* activations for up to n_batch rows, in the backend's memory */
    float *x;              /* (n_batch, n_embd) residual stream */
    float *xb;             /* (n_batch, n_embd) normed input / block output */
    float *q;              /* (n_batch, n_head * head_dim) */
    float *k;              /* (n_batch, n_head_kv * head_dim) */
    float *v;              /* (n_batch, n_head_kv * head_dim) */
    float *att;            /* (n_batch, n_head * head_dim) attention output */
    float *hb;             /* (n_batch, n_ff) gate, then silu(gate) * up */
    float *hb2;            /* (n_batch, n_ff) up */
    int32_t *positions;    /* (n_batch) host: each row's position */
    int32_t *row_seq;      /* (n_batch) host: each row's sequence */
    lk_attn *attn;         /* attention method state (attn/attn.h) */
    struct lk_calib *calib; /* not NULL: keys are accumulated for `loki calibrate` */
    loki_attn_params attn_params; /* attention method (loki_context_set_attn) */
    /* sampling in the context (engine/sampling.c; loki_context_sampler_init) */
    bool has_smp;          /* samplers were set up */
    loki_sampler_params smp_params;
    loki_sampler **smp;    /* (n_seq) the CPU's samplers (CPU device; the GPU's live in its backend) */
    int32_t smp_stop[LOKI_SAMPLER_MAX_STOP], n_smp_stop;
    float *logits;         /* (logits_cap, n_vocab) */
    int32_t logits_cap;    /* rows allocated */
    int32_t n_logits;      /* rows of the last eval */
};

/* Run the model on n <= n_batch rows and write the logits of the last
 * `n_out` rows (1 or n) to out (n_out, n_vocab). batch false: the rows are
 * tokens of the current sequence at its next positions; true: row i is the
 * next token of sequence i (a decode batch of sequences 0..n-1). sampled not
 * NULL: instead of the logits, sampled (n_out) = the tokens the rows'
 * sequences' samplers choose from them (lk_sampling_finish; out is then
 * scratch, written on the CPU only). */
loki_status lk_forward(loki_context *ctx, const int32_t *tokens, int32_t n, bool batch, float *out,
                       int32_t n_out, int32_t *sampled, loki_error *err);

/* The end of a sampling pass (engine/sampling.c): logits (n_out, V) in the
 * backend's memory are sampled by the samplers of sequences seq0.. into
 * tokens (n_out, host), each recorded unless a stop token: on the GPU by its
 * device sampler (only the tokens come back), on the CPU from host (n_out,
 * V), where the logits are read back to. Waits for the pass; returns its
 * first error. */
loki_status lk_sampling_finish(loki_context *ctx, const float *logits, float *host, int32_t n_out, int32_t seq0,
                               int32_t *tokens, loki_error *err);

/* Restart the context's samplers (if any) with their parameters and stop
 * tokens, every sequence fresh: after loki_context_set_attn made a new
 * backend. */
loki_status lk_sampling_restart(loki_context *ctx, loki_error *err);

/* Free the CPU's samplers (loki_context_free). */
void lk_sampling_free(loki_context *ctx);

/* Bring the key statistics the backend gathered while ctx->calib was set
 * into ctx->calib (lk_be_calib_flush: the GPU accumulates on the device; on
 * the CPU there is nothing to do). Call it before reading ctx->calib
 * (lk_calib_finish) or setting it to NULL, and before the context is freed
 * or its backend replaced (loki_context_set_attn does it itself); with
 * ctx->calib NULL it does nothing. Waits for the GPU's work; a fault of an
 * earlier pass surfaces here. */
loki_status lk_context_calib_flush(loki_context *ctx, loki_error *err);

/* Every query row of the following passes selects k tokens (0: the
 * method's budget again): the paper's prefill-mask evaluation. Sets it on
 * the CPU's lk_attn and on the GPU backend's attention alike. */
void lk_context_set_k_fixed(loki_context *ctx, int32_t k);

#endif
