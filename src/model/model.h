/*
 * model.h - the architecture-neutral model description every loader fills
 * and every backend reads. Weights are lk_tensor views into memory-mapped
 * files, in their file dtype; nothing is copied whole on load.
 */
#ifndef LK_MODEL_H
#define LK_MODEL_H

#include "core/common.h"
#include "core/tensor.h"
#include "tokenizer/vocab.h"

/* Which dimension pairs RoPE rotates inside a head of size head_dim:
 *  NORM: interleaved pairs (2i, 2i+1) - Meta/llama2.c/GGUF (llama.cpp permutes
 *        HF q/k weights into this order when converting to GGUF);
 *  NEOX: rotate-half pairs (i, i + rope_dim/2) - Hugging Face transformers. */
typedef enum lk_rope_style {
    LK_ROPE_NORM = 0,
    LK_ROPE_NEOX = 1,
} lk_rope_style;

typedef enum lk_rope_scaling {
    LK_ROPE_SCALING_NONE = 0,
    LK_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
    LK_ROPE_SCALING_LLAMA3 = 2, /* frequency-dependent scaling of Llama 3.1 */
} lk_rope_scaling;

/* Activation of the gated feed-forward: act(x·Wgᵀ) * (x·Wuᵀ). */
typedef enum lk_ffn_act {
    LK_ACT_SILU = 0,      /* SwiGLU (Llama family) */
    LK_ACT_GELU_TANH = 1, /* GeGLU with tanh-approximated GELU (Gemma, "gelu_pytorch_tanh") */
} lk_ffn_act;

typedef struct lk_hparams {
    char arch[32];         /* "llama", "qwen2", "gemma3", ... */
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;      /* usually n_embd / n_head */
    int32_t n_ff;
    float rms_eps;
    float rope_theta;
    int32_t rope_dim;      /* rotated dims per head (<= head_dim) */
    lk_rope_style rope_style;
    lk_rope_scaling rope_scaling;
    float rope_factor;            /* linear / llama3 */
    float rope_low_freq_factor;   /* llama3 */
    float rope_high_freq_factor;  /* llama3 */
    int32_t rope_orig_ctx;        /* llama3: original_max_position_embeddings */
    /* (rope_dim/2) per-frequency divisors from a GGUF `rope_freqs.weight`
     * (llama.cpp's form of Llama-3 scaling), or NULL; points into the model. */
    const float *rope_freq_factors;
    /* Gemma-style options. Every one is 0 for the Llama family, so a zeroed
     * lk_hparams keeps the plain Llama block. */
    lk_ffn_act ffn_act;
    float embd_scale;      /* token embeddings are multiplied by this (Gemma: sqrt(n_embd)); 0 = 1 */
    float attn_scale;      /* attention score scale (Gemma: query_pre_attn_scalar^-1/2); 0 = 1/sqrt(head_dim) */
    float final_softcap;   /* logits = c * tanh(logits / c) (Gemma 2 style); 0 = none */
    /* Sliding-window (local) layers: layer il is local unless
     * (il + 1) % swa_pattern == 0 (Gemma 3: 5 local, then 1 global). A local
     * layer's query at position p sees keys p - swa_window < j <= p, and uses
     * RoPE base rope_theta_swa without scaling (rope_freq_factors / rope_scaling
     * belong to the global layers). swa_window == 0: every layer is global. */
    int32_t swa_window;
    int32_t swa_pattern;   /* >= 1 when swa_window > 0 */
    float rope_theta_swa;
} lk_hparams;

/* Is layer il a sliding-window (local) layer? */
static inline bool lk_layer_is_local(const lk_hparams *hp, int il) {
    return hp->swa_window > 0 && (il + 1) % hp->swa_pattern != 0;
}

/* The RoPE settings of layer il: hp itself for a global layer; for a local
 * one a copy with theta = rope_theta_swa and no scaling, written to *tmp. */
static inline const lk_hparams *lk_layer_rope(const lk_hparams *hp, int il, lk_hparams *tmp) {
    if (!lk_layer_is_local(hp, il)) return hp;
    *tmp = *hp;
    tmp->rope_theta = hp->rope_theta_swa;
    tmp->rope_scaling = LK_ROPE_SCALING_NONE;
    tmp->rope_factor = 1.0f;
    tmp->rope_freq_factors = NULL;
    return tmp;
}

/* One transformer block. Shapes as (rows=out, cols=in); see tensor.h.
 * Norm weights are multiplied as they are: a checkpoint whose RMSNorm is
 * x * (1 + w) (Gemma, Hugging Face) is loaded with 1 + w already added
 * (llama.cpp's converter stores Gemma's norms that way too). */
typedef struct lk_layer {
    lk_tensor attn_norm;   /* (n_embd) */
    lk_tensor wq;          /* (n_head*head_dim, n_embd) */
    lk_tensor wk;          /* (n_head_kv*head_dim, n_embd) */
    lk_tensor wv;          /* (n_head_kv*head_dim, n_embd) */
    lk_tensor wo;          /* (n_embd, n_head*head_dim) */
    lk_tensor bq, bk, bv;  /* optional biases (Qwen2); data == NULL when absent */
    /* Optional (data == NULL when absent), Gemma 3: */
    lk_tensor attn_q_norm; /* (head_dim) RMSNorm of each query head before RoPE (QK-norm) */
    lk_tensor attn_k_norm; /* (head_dim) same for each key head */
    lk_tensor attn_post_norm; /* (n_embd) RMSNorm of the attention output before the residual add */
    lk_tensor ffn_post_norm;  /* (n_embd) RMSNorm of the feed-forward output before the residual add */
    lk_tensor ffn_norm;    /* (n_embd) */
    lk_tensor w_gate;      /* (n_ff, n_embd) */
    lk_tensor w_up;        /* (n_ff, n_embd) */
    lk_tensor w_down;      /* (n_embd, n_ff) */
} lk_layer;

#define LK_MAX_FILES 64
/* Tensors every layer must have (attention norm, q, k, v, output; FFN norm,
 * gate, up, down): a declared layer count above n_tensors / this is refused
 * before the layer table is allocated. */
#define LK_LAYER_MIN_TENSORS 9

struct loki_model {
    lk_hparams hp;
    char format[16];        /* "gguf", "hf", "llama2c" */
    lk_tensor tok_embd;     /* (n_vocab, n_embd) */
    lk_tensor out_norm;     /* (n_embd) */
    lk_tensor output;       /* (n_vocab, n_embd); equals tok_embd when tied */
    lk_layer *layers;       /* (n_layer) */
    /* GGUF llama3 RoPE: per-frequency divisors (rope_dim/2) F32 that
     * llama.cpp's converter stores as `rope_freqs.weight` instead of the
     * scaling hparams: inv_freq[i] = theta^(-2i/rope_dim) / rope_freqs[i].
     * data == NULL when absent (hp.rope_scaling then describes any scaling). */
    lk_tensor rope_freqs;
    char *path;             /* the file or directory loaded (owned), for messages */
    lk_vocab vocab;
    /* Backing storage, released by lk_model_free. */
    lk_mapped_file files[LK_MAX_FILES];
    int n_files;
    void *owned[8];         /* loader-owned buffers (names, parsed headers) */
    int n_owned;
    struct lk_gguf *gguf;   /* kept open when loaded from GGUF (owns tensor names) */
    struct lk_st_set *st;   /* kept open when loaded from safetensors */
};

/* Loaders: each fills `m` (zero-initialised by the caller) or fails with a
 * message naming the file and the problem. On failure the caller calls
 * lk_model_free(m), which must be safe on a partly filled model. */
loki_status lk_model_load_gguf(loki_model *m, const char *path, loki_error *err);
loki_status lk_model_load_hf(loki_model *m, const char *dir, loki_error *err);
loki_status lk_model_load_llama2c(loki_model *m, const char *path, const char *tok_path,
                                  loki_error *err);

/* Check every tensor is present with the shape hp implies and a supported
 * dtype, and hparams are consistent. Called by loki_model_open after loading. */
loki_status lk_model_validate(const loki_model *m, loki_error *err);

void lk_model_free(loki_model *m);

#endif /* LK_MODEL_H */
