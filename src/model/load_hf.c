/*
 * load_hf.c - Hugging Face directory loader: config.json + safetensors
 * (single file or sharded with model.safetensors.index.json) + tokenizer.json.
 * Weights stay in the mapped files in their stored dtype (F32/F16/BF16).
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
    for (int il = 0; il < m->hp.n_layer; il++) {
        lk_layer *L = &m->layers[il];
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

    if ((st = lk_vocab_from_hf(&m->vocab, dir, err))) return st;
    return LOKI_OK;
}
