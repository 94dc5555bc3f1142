/*
 * load_hf.c - Hugging Face directory loader: config.json + safetensors
 * (single file or sharded with model.safetensors.index.json) + tokenizer.json.
 * Weights stay in the mapped files in their stored dtype (F32/F16/BF16),
 * except Gemma's RMSNorm vectors, held as f32 copies of 1 + w (see
 * hf_fold_norm).
 */
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

/* Fetch "model.layers.<il>.<suffix>" into *t. */
static loki_status hf_layer_tensor(const lk_st_set *s, int il, const char *suffix, bool optional,
                                   lk_tensor *t, loki_error *err) {
    char name[160];
    snprintf(name, sizeof(name), "model.layers.%d.%s", il, suffix);
    return lk_st_get(s, name, optional, t, err);
}

/* One per-layer tensor of an architecture: "model.layers.<il>.<suffix>"
 * goes to the lk_tensor at byte offset `off` of lk_layer. */
typedef struct hf_layer_slot {
    const char *suffix;
    size_t off;
    bool optional;
} hf_layer_slot;

#define HF_SLOT(suffix, field, optional) {suffix, offsetof(lk_layer, field), optional}

/* Llama / Qwen2 (LlamaDecoderLayer names; q/k/v biases are Qwen2's). */
static const hf_layer_slot hf_llama_slots[] = {
    HF_SLOT("input_layernorm.weight", attn_norm, false),
    HF_SLOT("self_attn.q_proj.weight", wq, false),
    HF_SLOT("self_attn.k_proj.weight", wk, false),
    HF_SLOT("self_attn.v_proj.weight", wv, false),
    HF_SLOT("self_attn.o_proj.weight", wo, false),
    HF_SLOT("self_attn.q_proj.bias", bq, true),
    HF_SLOT("self_attn.k_proj.bias", bk, true),
    HF_SLOT("self_attn.v_proj.bias", bv, true),
    HF_SLOT("post_attention_layernorm.weight", ffn_norm, false),
    HF_SLOT("mlp.gate_proj.weight", w_gate, false),
    HF_SLOT("mlp.up_proj.weight", w_up, false),
    HF_SLOT("mlp.down_proj.weight", w_down, false),
};
/* Gemma 3 (Gemma3DecoderLayer names: its post_attention_layernorm is the
 * norm of the attention OUTPUT, and pre_feedforward_layernorm the one Llama
 * calls post_attention_layernorm). */
static const hf_layer_slot hf_gemma3_slots[] = {
    HF_SLOT("input_layernorm.weight", attn_norm, false),
    HF_SLOT("self_attn.q_proj.weight", wq, false),
    HF_SLOT("self_attn.k_proj.weight", wk, false),
    HF_SLOT("self_attn.v_proj.weight", wv, false),
    HF_SLOT("self_attn.o_proj.weight", wo, false),
    HF_SLOT("self_attn.q_norm.weight", attn_q_norm, false),
    HF_SLOT("self_attn.k_norm.weight", attn_k_norm, false),
    HF_SLOT("post_attention_layernorm.weight", attn_post_norm, false),
    HF_SLOT("pre_feedforward_layernorm.weight", ffn_norm, false),
    HF_SLOT("post_feedforward_layernorm.weight", ffn_post_norm, false),
    HF_SLOT("mlp.gate_proj.weight", w_gate, false),
    HF_SLOT("mlp.up_proj.weight", w_up, false),
    HF_SLOT("mlp.down_proj.weight", w_down, false),
};
#undef HF_SLOT

/* Tensors the network would need but loki's graph has no slot for: refused
 * instead of silently ignored. Gemma 3 has no attention biases either. */
static const char *const hf_llama_refused[] = {
    "self_attn.o_proj.bias", "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias", NULL,
};
static const char *const hf_gemma3_refused[] = {
    "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias", "self_attn.o_proj.bias",
    "mlp.gate_proj.bias",    "mlp.up_proj.bias",      "mlp.down_proj.bias",    NULL,
};

/* Layer il's tensors of an architecture's table into *L; an error names a
 * missing tensor or a refused one that is present. */
static loki_status hf_load_layer(const lk_st_set *s, int il, const hf_layer_slot *slots, size_t n_slots,
                                 const char *const *refused, const char *arch, lk_layer *L, loki_error *err) {
    loki_status st;
    for (size_t k = 0; k < n_slots; k++)
        if ((st = hf_layer_tensor(s, il, slots[k].suffix, slots[k].optional,
                                  (lk_tensor *)((char *)L + slots[k].off), err)))
            return st;
    for (size_t k = 0; refused[k]; k++) {
        char name[160];
        snprintf(name, sizeof(name), "model.layers.%d.%s", il, refused[k]);
        const lk_st_entry *e = lk_st_find(s, name);
        if (e)
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' is not supported by loki's %s graph",
                           lk_st_path(s, e->file), name, arch);
    }
    return LOKI_OK;
}

/* Gemma's RMSNorm multiplies by (1 + w) in float32 (Gemma3RMSNorm); loki's
 * multiplies by the stored weight, as in the GGUF files llama.cpp writes
 * for Gemma, where the converter has added the 1. Do the same here: *t
 * (want elements, any float dtype) becomes an f32 copy of 1 + w at *cursor,
 * which advances. With cursor NULL only the shape and dtype are checked. */
static loki_status hf_fold_norm(lk_tensor *t, int64_t want, float **cursor, const char *dir,
                                loki_error *err) {
    if (lk_tensor_nelements(t) != want || t->n_dims != 1)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' has inconsistent shape: %lld elements "
                       "(%d dims) but the hparams imply a vector of %lld", dir, t->name,
                       (long long)lk_tensor_nelements(t), t->n_dims, (long long)want);
    if (lk_dtype_is_quant(t->dtype))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; norm vectors must be f32, "
                       "f16 or bf16", dir, t->name, lk_dtype_name(t->dtype));
    if (!cursor) return LOKI_OK;
    float *w = *cursor;
    lk_row_to_f32(t->dtype, t->data, w, want);
    for (int64_t i = 0; i < want; i++) w[i] = 1.0f + w[i];
    t->dtype = LK_DTYPE_F32;
    t->data = w;
    t->nbytes = (size_t)want * sizeof(float);
    *cursor = w + want;
    return LOKI_OK;
}

/* Every RMSNorm weight of a Gemma 3 model replaced by 1 + w in one owned
 * f32 buffer: (n_layer * (4 n_embd + 2 head_dim) + n_embd) floats. */
static loki_status hf_gemma3_fold(loki_model *m, const char *dir, loki_error *err) {
    const lk_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, D = hp->head_dim;
    if (m->n_owned >= (int)LK_ARRAY_LEN(m->owned))
        return lk_fail(err, LOKI_ERR_NOMEM, "%s: too many loader buffers", dir);
    /* pass 0 checks every norm's shape (so the buffer's size, taken from
     * config.json, is backed by the checkpoint), pass 1 folds */
    loki_status st = LOKI_OK;
    float *buf = NULL;
    for (int pass = 0; pass < 2 && !st; pass++) {
        if (pass == 1) {
            buf = lk_calloc_for((size_t)(hp->n_layer * (4 * E + 2 * D) + E), sizeof(float), dir,
                                "the folded Gemma 3 norm weights", err);
            if (!buf) return LOKI_ERR_NOMEM;
            m->owned[m->n_owned++] = buf;
        }
        float **cur = pass ? &buf : NULL;
        st = hf_fold_norm(&m->out_norm, E, cur, dir, err);
        for (int il = 0; !st && il < hp->n_layer; il++) {
            lk_layer *L = &m->layers[il];
            if ((st = hf_fold_norm(&L->attn_norm, E, cur, dir, err)) ||
                (st = hf_fold_norm(&L->attn_q_norm, D, cur, dir, err)) ||
                (st = hf_fold_norm(&L->attn_k_norm, D, cur, dir, err)) ||
                (st = hf_fold_norm(&L->attn_post_norm, E, cur, dir, err)) ||
                (st = hf_fold_norm(&L->ffn_norm, E, cur, dir, err)) ||
                (st = hf_fold_norm(&L->ffn_post_norm, E, cur, dir, err)))
                break;
        }
    }
    return st;
}

loki_status lk_model_load_hf(loki_model *m, const char *dir, loki_error *err) {
    loki_status st;
    char *cfg_path = NULL;
    lk_hf_config cfg;
    snprintf(m->format, sizeof(m->format), "hf");
    if (!(m->path = lk_strdup(dir, err))) return LOKI_ERR_NOMEM;
    size_t n = strlen(dir) + sizeof("/config.json");
    if (!(cfg_path = lk_malloc(n, err))) return LOKI_ERR_NOMEM;
    snprintf(cfg_path, n, "%s/config.json", dir);
    st = lk_hf_config_load(cfg_path, &cfg, err);
    free(cfg_path);
    if (st) return st;
    m->hp = cfg.hp;

    if ((st = lk_st_open_dir(dir, &m->st, err))) return st;
    const lk_st_set *s = m->st;
    if ((st = lk_st_get(s, "model.embed_tokens.weight", false, &m->tok_embd, err)) ||
        (st = lk_st_get(s, "model.norm.weight", false, &m->out_norm, err)))
        return st;
    if (cfg.tie_word_embeddings) {
        /* transformers ties lm_head to the embedding even if a copy is saved */
        m->output = m->tok_embd;
    } else if ((st = lk_st_get(s, "lm_head.weight", false, &m->output, err))) {
        return lk_fail_prefix(err, "%s: config.json says tie_word_embeddings is false", dir);
    }

    /* a num_hidden_layers the checkpoint cannot back is refused before the
     * layer table is allocated */
    if (m->hp.n_layer > s->n_entries / LK_LAYER_MIN_TENSORS)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: config.json says num_hidden_layers = %d, which needs at least %lld "
                       "tensors; the checkpoint has %lld", dir, (int)m->hp.n_layer,
                       (long long)m->hp.n_layer * LK_LAYER_MIN_TENSORS, (long long)s->n_entries);
    m->layers = lk_calloc_for((size_t)m->hp.n_layer, sizeof(lk_layer), dir, "the layer table", err);
    if (!m->layers) return LOKI_ERR_NOMEM;
    const bool gemma = !strcmp(m->hp.arch, "gemma3");
    for (int il = 0; il < m->hp.n_layer; il++) {
        lk_layer *L = &m->layers[il];
        const loki_status st1 = gemma ? hf_load_layer(s, il, hf_gemma3_slots, LK_ARRAY_LEN(hf_gemma3_slots),
                                                      hf_gemma3_refused, "gemma3", L, err)
                                      : hf_load_layer(s, il, hf_llama_slots, LK_ARRAY_LEN(hf_llama_slots),
                                                      hf_llama_refused, m->hp.arch, L, err);
        if (st1) return st1;
    }
    /* A layer beyond num_hidden_layers means config and weights disagree. */
    char extra[64];
    snprintf(extra, sizeof(extra), "model.layers.%d.input_layernorm.weight", (int)m->hp.n_layer);
    if (lk_st_find(s, extra))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: checkpoint has tensor '%s' but config.json "
                       "says num_hidden_layers = %d", dir, extra, (int)m->hp.n_layer);
    if (gemma && (st = hf_gemma3_fold(m, dir, err))) return st;

    if ((st = lk_vocab_from_hf(&m->vocab, dir, err))) return st;
    return LOKI_OK;
}
