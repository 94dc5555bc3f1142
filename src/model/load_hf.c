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
#include <string.h>

/* Fetch "model.layers.<il>.<suffix>" into *t. */
static loki_status hf_layer_tensor(const lk_st_set *s, int il, const char *suffix, bool optional,
                                   lk_tensor *t, loki_error *err) {
    char name[160];
    snprintf(name, sizeof(name), "model.layers.%d.%s", il, suffix);
    return lk_st_get(s, name, optional, t, err);
}

/* Reject tensors the network would need but loki's llama/qwen2 graph has no
 * slot for (o_proj / MLP biases), instead of silently ignoring them. */
static loki_status hf_reject_extra(const lk_st_set *s, int il, loki_error *err) {
    const char *const extra[] = {
        "self_attn.o_proj.bias", "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias",
    };
    for (size_t k = 0; k < LK_ARRAY_LEN(extra); k++) {
        char name[160];
        snprintf(name, sizeof(name), "model.layers.%d.%s", il, extra[k]);
        const lk_st_entry *e = lk_st_find(s, name);
        if (e)
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' is not supported "
                           "(attention output / MLP biases)", lk_st_path(s, e->file), name);
    }
    return LOKI_OK;
}

/* Gemma's RMSNorm multiplies by (1 + w) in float32 (Gemma3RMSNorm); loki's
 * multiplies by the stored weight, as in the GGUF files llama.cpp writes
 * for Gemma, where the converter has added the 1. Do the same here: *t
 * (want elements, any float dtype) becomes an f32 copy of 1 + w at *cursor,
 * which advances. */
static loki_status hf_fold_norm(lk_tensor *t, int64_t want, float **cursor, const char *dir,
                                loki_error *err) {
    if (lk_tensor_nelements(t) != want || t->n_dims != 1)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' has inconsistent shape: %lld elements "
                       "(%d dims) but the hparams imply a vector of %lld", dir, t->name,
                       (long long)lk_tensor_nelements(t), t->n_dims, (long long)want);
    if (lk_dtype_is_quant(t->dtype))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; norm vectors must be f32, "
                       "f16 or bf16", dir, t->name, lk_dtype_name(t->dtype));
    float *w = *cursor;
    lk_row_to_f32(t->dtype, t->data, w, want);
    for (int64_t i = 0; i < want; i++) w[i] = 1.0f + w[i];
    t->dtype = LK_DTYPE_F32;
    t->data = w;
    t->nbytes = (size_t)want * sizeof(float);
    *cursor = w + want;
    return LOKI_OK;
}

/* Gemma 3 layer tensors (transformers' Gemma3DecoderLayer names; note that
 * its post_attention_layernorm is the norm of the attention OUTPUT, and
 * pre_feedforward_layernorm the one Llama calls post_attention_layernorm). */
static loki_status hf_gemma3_layer(const lk_st_set *s, int il, lk_layer *L, loki_error *err) {
    loki_status st;
    if ((st = hf_layer_tensor(s, il, "input_layernorm.weight", false, &L->attn_norm, err)) ||
        (st = hf_layer_tensor(s, il, "self_attn.q_proj.weight", false, &L->wq, err)) ||
        (st = hf_layer_tensor(s, il, "self_attn.k_proj.weight", false, &L->wk, err)) ||
        (st = hf_layer_tensor(s, il, "self_attn.v_proj.weight", false, &L->wv, err)) ||
        (st = hf_layer_tensor(s, il, "self_attn.o_proj.weight", false, &L->wo, err)) ||
        (st = hf_layer_tensor(s, il, "self_attn.q_norm.weight", false, &L->attn_q_norm, err)) ||
        (st = hf_layer_tensor(s, il, "self_attn.k_norm.weight", false, &L->attn_k_norm, err)) ||
        (st = hf_layer_tensor(s, il, "post_attention_layernorm.weight", false, &L->attn_post_norm,
                              err)) ||
        (st = hf_layer_tensor(s, il, "pre_feedforward_layernorm.weight", false, &L->ffn_norm,
                              err)) ||
        (st = hf_layer_tensor(s, il, "post_feedforward_layernorm.weight", false, &L->ffn_post_norm,
                              err)) ||
        (st = hf_layer_tensor(s, il, "mlp.gate_proj.weight", false, &L->w_gate, err)) ||
        (st = hf_layer_tensor(s, il, "mlp.up_proj.weight", false, &L->w_up, err)) ||
        (st = hf_layer_tensor(s, il, "mlp.down_proj.weight", false, &L->w_down, err)))
        return st;
    const char *const extra[] = {"self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                 "self_attn.v_proj.bias"};
    for (size_t k = 0; k < LK_ARRAY_LEN(extra); k++) {
        char name[160];
        snprintf(name, sizeof(name), "model.layers.%d.%s", il, extra[k]);
        const lk_st_entry *e = lk_st_find(s, name);
        if (e)
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' is not supported "
                           "(Gemma 3 has no attention biases)", lk_st_path(s, e->file), name);
    }
    return hf_reject_extra(s, il, err);
}

/* Every RMSNorm weight of a Gemma 3 model replaced by 1 + w in one owned
 * f32 buffer: (n_layer * (4 n_embd + 2 head_dim) + n_embd) floats. */
static loki_status hf_gemma3_fold(loki_model *m, const char *dir, loki_error *err) {
    const lk_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, D = hp->head_dim;
    if (m->n_owned >= (int)LK_ARRAY_LEN(m->owned))
        return lk_fail(err, LOKI_ERR_NOMEM, "%s: too many loader buffers", dir);
    float *buf = lk_malloc(sizeof(float) * (size_t)(hp->n_layer * (4 * E + 2 * D) + E), err);
    if (!buf) return LOKI_ERR_NOMEM;
    m->owned[m->n_owned++] = buf;
    loki_status st = hf_fold_norm(&m->out_norm, E, &buf, dir, err);
    for (int il = 0; !st && il < hp->n_layer; il++) {
        lk_layer *L = &m->layers[il];
        if ((st = hf_fold_norm(&L->attn_norm, E, &buf, dir, err)) ||
            (st = hf_fold_norm(&L->attn_q_norm, D, &buf, dir, err)) ||
            (st = hf_fold_norm(&L->attn_k_norm, D, &buf, dir, err)) ||
            (st = hf_fold_norm(&L->attn_post_norm, E, &buf, dir, err)) ||
            (st = hf_fold_norm(&L->ffn_norm, E, &buf, dir, err)) ||
            (st = hf_fold_norm(&L->ffn_post_norm, E, &buf, dir, err)))
            break;
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

    m->layers = lk_calloc((size_t)m->hp.n_layer, sizeof(lk_layer), err);
    if (!m->layers) return LOKI_ERR_NOMEM;
    const bool gemma = !strcmp(m->hp.arch, "gemma3");
    for (int il = 0; il < m->hp.n_layer; il++) {
        lk_layer *L = &m->layers[il];
        if (gemma) {
            if ((st = hf_gemma3_layer(s, il, L, err))) return st;
            continue;
        }
        if ((st = hf_layer_tensor(s, il, "input_layernorm.weight", false, &L->attn_norm, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.q_proj.weight", false, &L->wq, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.k_proj.weight", false, &L->wk, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.v_proj.weight", false, &L->wv, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.o_proj.weight", false, &L->wo, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.q_proj.bias", true, &L->bq, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.k_proj.bias", true, &L->bk, err)) ||
            (st = hf_layer_tensor(s, il, "self_attn.v_proj.bias", true, &L->bv, err)) ||
            (st = hf_layer_tensor(s, il, "post_attention_layernorm.weight", false, &L->ffn_norm,
                                  err)) ||
            (st = hf_layer_tensor(s, il, "mlp.gate_proj.weight", false, &L->w_gate, err)) ||
            (st = hf_layer_tensor(s, il, "mlp.up_proj.weight", false, &L->w_up, err)) ||
            (st = hf_layer_tensor(s, il, "mlp.down_proj.weight", false, &L->w_down, err)) ||
            (st = hf_reject_extra(s, il, err)))
            return st;
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
