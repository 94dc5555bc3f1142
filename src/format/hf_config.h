/*
 * hf_config.h - Hugging Face config.json -> lk_hparams.
 *
 * Supported model types: llama, mistral (both reported as arch "llama": the
 * same network; llama.cpp converts Mistral to "llama" too) and qwen2 (q/k/v
 * biases) and gemma3_text / Gemma3ForCausalLM (arch "gemma3": GeGLU, QK-norm,
 * pre/post norms, sliding-window layers; absent keys take Gemma3TextConfig's
 * defaults). RoPE settings are read from either the older top-level form
 *   "rope_theta": 500000, "rope_scaling": {"type"|"rope_type": ..., "factor": ...}
 * or the newer (transformers >= 5) form
 *   "rope_parameters": {"rope_theta": ..., "rope_type": ..., "factor": ...}.
 * Scaling types default/null, linear and llama3 are supported; yarn, dynamic,
 * longrope, ... fail with LOKI_ERR_UNSUPPORTED. HF checkpoints use the
 * rotate-half RoPE layout (LK_ROPE_NEOX).
 */
#ifndef LK_HF_CONFIG_H
#define LK_HF_CONFIG_H

#include "model/model.h"

typedef struct lk_hf_config {
    lk_hparams hp;
    bool tie_word_embeddings;  /* lm_head shares model.embed_tokens */
} lk_hf_config;

/* Parse `len` bytes of config JSON; `path` names the file in messages.
 * Missing required keys (hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, vocab_size) and mistyped values are LOKI_ERR_FORMAT. */
loki_status lk_hf_config_parse(const char *text, size_t len, const char *path, lk_hf_config *out,
                               loki_error *err);

/* Read and parse the file `path` (usually <dir>/config.json). */
loki_status lk_hf_config_load(const char *path, lk_hf_config *out, loki_error *err);

#endif /* LK_HF_CONFIG_H */
