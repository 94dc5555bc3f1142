/*
 * load_gguf.c - GGUF model loader (llama.cpp's tensor and key naming).
 * The lk_gguf stays open in m->gguf: it owns the mapping and tensor names.
 */
#include "format/gguf.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer hparam "<arch>.<suffix>": absent -> def unless required; present
 * -> must be in [1, INT32_MAX]. */
static loki_status gg_int(const lk_gguf *g, const char *arch, const char *suffix, bool required,
                          int32_t def, int32_t *out, loki_error *err) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    int64_t v;
    if (!lk_gguf_get_i64(g, key, &v)) {
        if (lk_gguf_find(g, key))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: key '%s' is not an integer", g->path, key);
        if (required) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing key '%s'", g->path, key);
        *out = def;
        return LOKI_OK;
    }
    if (v < 1 || v > INT32_MAX)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: key '%s' = %lld out of range", g->path, key,
                       (long long)v);
    *out = (int32_t)v;
    return LOKI_OK;
}

/* Float hparam "<arch>.<suffix>" (absent -> def unless required); must be
 * finite and > 0 (every such hparam is an epsilon, base or factor). */
static loki_status gg_float(const lk_gguf *g, const char *arch, const char *suffix, bool required,
                            float def, float *out, loki_error *err) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    float v;
    if (!lk_gguf_get_f32(g, key, &v)) {
        if (lk_gguf_find(g, key))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: key '%s' is not a float", g->path, key);
        if (required) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing key '%s'", g->path, key);
        *out = def;
        return LOKI_OK;
    }
    if (!isfinite(v) || !(v > 0.0f))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: key '%s' = %g must be positive", g->path, key,
                       (double)v);
    *out = v;
    return LOKI_OK;
}

/* RoPE scaling keys. llama3 scaling has no keys: llama.cpp stores it as the
 * rope_freqs.weight tensor (handled by the caller). */
static loki_status gg_rope_scaling(const lk_gguf *g, const char *arch, lk_hparams *hp,
                                   loki_error *err) {
    char key[128], type[32] = "";
    loki_status st;
    snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
    lk_gguf_get_cstr(g, key, type, sizeof(type));
    hp->rope_scaling = LK_ROPE_SCALING_NONE;
    hp->rope_factor = 1.0f;
    if (type[0] == '\0') {
        /* older files: <arch>.rope.scale_linear */
        float f = 1.0f;
        if ((st = gg_float(g, arch, "rope.scale_linear", false, 1.0f, &f, err))) return st;
        if (f != 1.0f) {
            hp->rope_scaling = LK_ROPE_SCALING_LINEAR;
            hp->rope_factor = f;
        }
        return LOKI_OK;
    }
    if (!strcmp(type, "none")) return LOKI_OK;
    if (strcmp(type, "linear") != 0)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: unsupported rope scaling type '%s' "
                       "(supported: none, linear)", g->path, type);
    float f;
    if ((st = gg_float(g, arch, "rope.scaling.factor", true, 1.0f, &f, err))) return st;
    if (f != 1.0f) {
        hp->rope_scaling = LK_ROPE_SCALING_LINEAR;
        hp->rope_factor = f;
    }
    return gg_int(g, arch, "rope.scaling.original_context_length", false, 0, &hp->rope_orig_ctx,
                  err);
}

/* Gemma 3's extra hparams. The files llama.cpp's converter writes carry
 * only `gemma3.attention.sliding_window` (and optionally
 * `gemma3.final_logit_softcapping`); everything else is fixed by llama.cpp
 * (src/llama-model.cpp, LLM_ARCH_GEMMA3) and matches Hugging Face's
 * Gemma3TextConfig defaults:
 *  - sliding-window pattern 6 (5 local layers, then 1 global): llama.cpp
 *    set_swa_pattern(6); HF sliding_window_pattern = 6;
 *  - local RoPE base 10000 without scaling: llama.cpp
 *    rope_freq_base_train_swa = 10000, rope_freq_scale_train_swa = 1; HF
 *    rope_local_base_freq = 10000 (`<arch>.rope.freq_base_swa` is read when
 *    a newer converter writes it);
 *  - attention scale 1/sqrt(head_dim), i.e. query_pre_attn_scalar =
 *    head_dim, except Gemma 3 27B (62 layers), where llama.cpp uses
 *    1/sqrt(n_embd / n_head) (= HF's query_pre_attn_scalar 168);
 *  - embeddings scaled by sqrt(n_embd), GeGLU with tanh GELU;
 *  - norm weights already hold 1 + w (the converter adds the 1), so the
 *    RMSNorms need no change here. */
static loki_status gg_gemma3(const lk_gguf *g, lk_hparams *hp, loki_error *err) {
    loki_status st;
    const char *a = hp->arch;
    hp->ffn_act = LK_ACT_GELU_TANH;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->attn_scale = hp->n_layer == 62 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                                       : 1.0f / sqrtf((float)hp->head_dim);
    float cap = 0.0f;
    if ((st = gg_int(g, a, "attention.sliding_window", false, 0, &hp->swa_window, err)) ||
        (st = gg_float(g, a, "rope.freq_base_swa", false, 10000.0f, &hp->rope_theta_swa, err)) ||
        (st = gg_float(g, a, "final_logit_softcapping", false, 0.0f, &cap, err)))
        return st;
    hp->final_softcap = cap;
    hp->swa_pattern = hp->swa_window > 0 ? 6 : 0;
    char key[128];
    snprintf(key, sizeof(key), "%s.attn_logit_softcapping", a);
    float acap = 0.0f;
    if (lk_gguf_get_f32(g, key, &acap) && acap > 0.0f)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: attention logit soft-capping (%s = %g) is not "
                       "supported", g->path, key, (double)acap);
    return LOKI_OK;
}

/* Read the hparams of a "llama" / "qwen2" / "gemma3" file. */
static loki_status gg_hparams(const lk_gguf *g, lk_hparams *hp, loki_error *err) {
    loki_status st;
    if (!lk_gguf_get_cstr(g, "general.architecture", hp->arch, sizeof(hp->arch)))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing key 'general.architecture'", g->path);
    const char *a = hp->arch;
    if (strcmp(a, "llama") != 0 && strcmp(a, "qwen2") != 0 && strcmp(a, "gemma3") != 0)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                       "%s: unknown architecture '%s' (supported: llama, qwen2, gemma3)", g->path, a);
    char key[128];
    int64_t n_expert = 0;
    snprintf(key, sizeof(key), "%s.expert_count", a);
    if (lk_gguf_get_i64(g, key, &n_expert) && n_expert > 0)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: mixture-of-experts models (%s = %lld) are "
                       "not supported", g->path, key, (long long)n_expert);
    if ((st = gg_int(g, a, "context_length", true, 0, &hp->n_ctx_train, err)) ||
        (st = gg_int(g, a, "embedding_length", true, 0, &hp->n_embd, err)) ||
        (st = gg_int(g, a, "block_count", true, 0, &hp->n_layer, err)) ||
        (st = gg_int(g, a, "feed_forward_length", true, 0, &hp->n_ff, err)) ||
        (st = gg_int(g, a, "attention.head_count", true, 0, &hp->n_head, err)) ||
        (st = gg_int(g, a, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err)) ||
        (st = gg_int(g, a, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim,
                     err)) ||
        (st = gg_float(g, a, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps, err)) ||
        (st = gg_float(g, a, "rope.freq_base", false, 10000.0f, &hp->rope_theta, err)) ||
        (st = gg_int(g, a, "rope.dimension_count", false, hp->head_dim, &hp->rope_dim, err)) ||
        (st = gg_rope_scaling(g, a, hp, err)))
        return st;
    int32_t vlen;
    if ((st = gg_int(g, a, "attention.value_length", false, hp->head_dim, &vlen, err))) return st;
    if (hp->head_dim < 1 || vlen != hp->head_dim)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: head dims key %d / value %d not supported "
                       "(must be equal and positive)", g->path, (int)hp->head_dim, (int)vlen);
    /* llama.cpp's converter permutes llama q/k rows into interleaved pairs
     * (not qwen2's or gemma3's, which keep Hugging Face's rotate-half). */
    hp->rope_style = strcmp(a, "llama") == 0 ? LK_ROPE_NORM : LK_ROPE_NEOX;
    if (!strcmp(a, "gemma3") && (st = gg_gemma3(g, hp, err))) return st;

    /* vocabulary size: the tokenizer's token list, else <arch>.vocab_size,
     * else the embedding's rows */
    const lk_gguf_kv *tok = lk_gguf_find(g, "tokenizer.ggml.tokens");
    const lk_tensor *emb = lk_gguf_find_tensor(g, "token_embd.weight");
    if (tok && tok->type == LK_GGUF_ARRAY && tok->arr_n > 0) {
        if (tok->arr_n > INT32_MAX)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer.ggml.tokens too long", g->path);
        hp->n_vocab = (int32_t)tok->arr_n;
    } else if ((st = gg_int(g, a, "vocab_size", false, 0, &hp->n_vocab, err))) {
        return st;
    } else if (hp->n_vocab == 0 && emb && emb->n_dims >= 2 && emb->ne[1] <= INT32_MAX) {
        hp->n_vocab = (int32_t)emb->ne[1];
    }
    if (hp->n_vocab <= 0)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: cannot determine the vocabulary size", g->path);
    return LOKI_OK;
}

/* Tensor `name` -> *t (zeroed and LOKI_OK when absent and optional). */
static loki_status gg_tensor(const lk_gguf *g, const char *name, bool optional, lk_tensor *t,
                             loki_error *err) {
    const lk_tensor *f = lk_gguf_find_tensor(g, name);
    memset(t, 0, sizeof(*t));
    if (!f) {
        if (optional) return LOKI_OK;
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing tensor '%s'", g->path, name);
    }
    *t = *f;
    return LOKI_OK;
}

/* Fetch "blk.<il>.<suffix>". */
static loki_status gg_layer_tensor(const lk_gguf *g, int il, const char *suffix, bool optional,
                                   lk_tensor *t, loki_error *err) {
    char name[128];
    snprintf(name, sizeof(name), "blk.%d.%s", il, suffix);
    return gg_tensor(g, name, optional, t, err);
}

loki_status lk_model_load_gguf(loki_model *m, const char *path, loki_error *err) {
    loki_status st;
    snprintf(m->format, sizeof(m->format), "gguf");
    if (!(m->path = lk_strdup(path, err))) return LOKI_ERR_NOMEM;
    if (!(m->gguf = lk_calloc(1, sizeof(lk_gguf), err))) return LOKI_ERR_NOMEM;
    if ((st = lk_gguf_open(path, m->gguf, err))) {
        /* lk_gguf_open cleans up after itself; drop the empty struct so
         * lk_model_free does not close it twice */
        free(m->gguf);
        m->gguf = NULL;
        return st;
    }
    const lk_gguf *g = m->gguf;
    if ((st = gg_hparams(g, &m->hp, err))) return st;

    if ((st = gg_tensor(g, "token_embd.weight", false, &m->tok_embd, err)) ||
        (st = gg_tensor(g, "output_norm.weight", false, &m->out_norm, err)) ||
        (st = gg_tensor(g, "output.weight", true, &m->output, err)) ||
        (st = gg_tensor(g, "rope_freqs.weight", true, &m->rope_freqs, err)))
        return st;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */

    /* every layer needs LK_LAYER_MIN_TENSORS tensors: a block_count the
     * tensor table cannot back is refused before the layer table is allocated */
    if ((uint64_t)m->hp.n_layer > g->n_tensors / LK_LAYER_MIN_TENSORS)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: block_count %d needs at least %lld tensors, the file has %llu",
                       path, (int)m->hp.n_layer, (long long)m->hp.n_layer * LK_LAYER_MIN_TENSORS,
                       (unsigned long long)g->n_tensors);
    m->layers = lk_calloc_for((size_t)m->hp.n_layer, sizeof(lk_layer), path, "the layer table", err);
    if (!m->layers) return LOKI_ERR_NOMEM;
    /* Gemma 3 blocks have QK-norm and post-norms; other architectures may
     * carry them too (they are used when present) */
    const bool gemma = !strcmp(m->hp.arch, "gemma3");
    for (int il = 0; il < m->hp.n_layer; il++) {
        lk_layer *L = &m->layers[il];
        if ((st = gg_layer_tensor(g, il, "attn_norm.weight", false, &L->attn_norm, err)) ||
            (st = gg_layer_tensor(g, il, "attn_q.weight", false, &L->wq, err)) ||
            (st = gg_layer_tensor(g, il, "attn_k.weight", false, &L->wk, err)) ||
            (st = gg_layer_tensor(g, il, "attn_v.weight", false, &L->wv, err)) ||
            (st = gg_layer_tensor(g, il, "attn_output.weight", false, &L->wo, err)) ||
            (st = gg_layer_tensor(g, il, "attn_q.bias", true, &L->bq, err)) ||
            (st = gg_layer_tensor(g, il, "attn_k.bias", true, &L->bk, err)) ||
            (st = gg_layer_tensor(g, il, "attn_v.bias", true, &L->bv, err)) ||
            (st = gg_layer_tensor(g, il, "attn_q_norm.weight", !gemma, &L->attn_q_norm, err)) ||
            (st = gg_layer_tensor(g, il, "attn_k_norm.weight", !gemma, &L->attn_k_norm, err)) ||
            (st = gg_layer_tensor(g, il, "post_attention_norm.weight", !gemma, &L->attn_post_norm,
                                  err)) ||
            (st = gg_layer_tensor(g, il, "post_ffw_norm.weight", !gemma, &L->ffn_post_norm, err)) ||
            (st = gg_layer_tensor(g, il, "ffn_norm.weight", false, &L->ffn_norm, err)) ||
            (st = gg_layer_tensor(g, il, "ffn_gate.weight", false, &L->w_gate, err)) ||
            (st = gg_layer_tensor(g, il, "ffn_up.weight", false, &L->w_up, err)) ||
            (st = gg_layer_tensor(g, il, "ffn_down.weight", false, &L->w_down, err)))
            return st;
        lk_tensor bo;
        if ((st = gg_layer_tensor(g, il, "attn_output.bias", true, &bo, err))) return st;
        if (bo.data)
            return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                           "%s: tensor 'blk.%d.attn_output.bias' is not supported", path, il);
    }
    if ((st = lk_vocab_from_gguf(&m->vocab, g, err))) return st;
    return LOKI_OK;
}
