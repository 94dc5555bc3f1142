/* hf_config.c - config.json parsing (see hf_config.h). */
#include "format/hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer key of `obj`: absent or null -> *out = def (LOKI_OK) unless
 * `required`; present -> must be an integer in [1, INT32_MAX]. */
static loki_status cfg_int(const cJSON *obj, const char *key, bool required, int32_t def,
                           int32_t *out, const char *path, loki_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing key '%s'", path, key);
        *out = def;
        return LOKI_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : -1.0;
    if (!(d >= 1.0 && d <= 2147483647.0) || floor(d) != d)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: key '%s' must be a positive integer", path, key);
    *out = (int32_t)d;
    return LOKI_OK;
}

/* Float key of `obj` (absent or null -> def unless required); must be finite
 * and > 0, as every float hparam here is a scale, epsilon or base. */
static loki_status cfg_float(const cJSON *obj, const char *key, bool required, float def,
                             float *out, const char *path, loki_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing key '%s'", path, key);
        *out = def;
        return LOKI_OK;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || !(j->valuedouble > 0.0))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: key '%s' must be a positive number", path, key);
    *out = (float)j->valuedouble;
    return LOKI_OK;
}

/* Architecture from model_type, else architectures[0]. Writes hp->arch. */
static loki_status cfg_arch(const cJSON *root, const char *path, lk_hparams *hp, loki_error *err) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *type = NULL;
    if (cJSON_IsString(mt)) {
        type = mt->valuestring;
        if (!strcmp(type, "llama") || !strcmp(type, "mistral")) type = "llama";
        else if (!strcmp(type, "qwen2")) type = "qwen2";
        else if (!strcmp(type, "gemma3_text")) type = "gemma3";
        else if (!strcmp(type, "gemma3"))
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: model type 'gemma3' is the multimodal Gemma 3 "
                           "(Gemma3ForConditionalGeneration); only the text model 'gemma3_text' "
                           "(Gemma3ForCausalLM) is supported", path);
        else goto unsupported;
    } else if (cJSON_IsArray(ar) && cJSON_IsString(cJSON_GetArrayItem(ar, 0))) {
        type = cJSON_GetArrayItem(ar, 0)->valuestring;
        if (!strcmp(type, "LlamaForCausalLM") || !strcmp(type, "MistralForCausalLM")) type = "llama";
        else if (!strcmp(type, "Qwen2ForCausalLM")) type = "qwen2";
        else if (!strcmp(type, "Gemma3ForCausalLM")) type = "gemma3";
        else goto unsupported;
    } else {
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing key 'model_type' (and 'architectures')",
                       path);
    }
    snprintf(hp->arch, sizeof(hp->arch), "%s", type);
    return LOKI_OK;
unsupported:
    return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                   "%s: unsupported model type '%s' (supported: llama, mistral, qwen2, gemma3_text)",
                   path, type);
}

/* RoPE: theta, scaling and partial rotation from rope_parameters (new form)
 * or top-level rope_theta / rope_scaling / partial_rotary_factor (old form).
 * hp->head_dim must be set. */
static loki_status cfg_rope(const cJSON *root, const char *path, lk_hparams *hp, loki_error *err) {
    loki_status st;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: 'rope_parameters' must be an object", path);
    if (cJSON_IsObject(rp) && rp->child && cJSON_IsObject(rp->child)) {
        /* per layer type (transformers >= 5): Gemma 3's global layers use
         * "full_attention"; cfg_gemma3 reads "sliding_attention" */
        const cJSON *full = !strcmp(hp->arch, "gemma3")
                                ? cJSON_GetObjectItemCaseSensitive(rp, "full_attention") : NULL;
        if (!cJSON_IsObject(full))
            return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                           "%s: per-layer-type 'rope_parameters' ('%s') are not supported", path,
                           rp->child->string);
        rp = full;
    }
    if (!cJSON_IsObject(rp)) rp = NULL;
    const cJSON *sc = rp ? rp : cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (sc && !cJSON_IsNull(sc) && !cJSON_IsObject(sc))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: 'rope_scaling' must be an object or null", path);
    if (!cJSON_IsObject(sc)) sc = NULL;

    /* theta: rope_parameters.rope_theta wins, then top-level; default 10000
     * (Gemma3TextConfig: 1e6). */
    const cJSON *tsrc = rp && cJSON_GetObjectItemCaseSensitive(rp, "rope_theta") ? rp : root;
    float theta_def = !strcmp(hp->arch, "gemma3") ? 1000000.0f : 10000.0f;
    if ((st = cfg_float(tsrc, "rope_theta", false, theta_def, &hp->rope_theta, path, err)))
        return st;

    hp->rope_scaling = LK_ROPE_SCALING_NONE;
    hp->rope_factor = 1.0f;
    const char *type = NULL;
    if (sc) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "rope_type");
        if (!t || cJSON_IsNull(t)) t = cJSON_GetObjectItemCaseSensitive(sc, "type");
        if (t && !cJSON_IsNull(t) && !cJSON_IsString(t))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: rope type must be a string", path);
        type = cJSON_IsString(t) ? t->valuestring : NULL;
    }
    if (!type || !strcmp(type, "default")) {
        /* plain RoPE */
    } else if (!strcmp(type, "linear")) {
        hp->rope_scaling = LK_ROPE_SCALING_LINEAR;
        if ((st = cfg_float(sc, "factor", true, 1.0f, &hp->rope_factor, path, err))) return st;
    } else if (!strcmp(type, "llama3")) {
        hp->rope_scaling = LK_ROPE_SCALING_LLAMA3;
        if ((st = cfg_float(sc, "factor", true, 1.0f, &hp->rope_factor, path, err)) ||
            (st = cfg_float(sc, "low_freq_factor", true, 1.0f, &hp->rope_low_freq_factor, path,
                            err)) ||
            (st = cfg_float(sc, "high_freq_factor", true, 1.0f, &hp->rope_high_freq_factor, path,
                            err)) ||
            (st = cfg_int(sc, "original_max_position_embeddings", true, 0, &hp->rope_orig_ctx, path,
                          err)))
            return st;
        if (!(hp->rope_high_freq_factor > hp->rope_low_freq_factor))
            return lk_fail(err, LOKI_ERR_FORMAT,
                           "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor", path);
    } else {
        return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                       "%s: unsupported rope scaling type '%s' (supported: default, linear, llama3)",
                       path, type);
    }

    /* partial rotation (e.g. rope_dim = head_dim / 2 at factor 0.5) */
    const cJSON *psrc = rp && cJSON_GetObjectItemCaseSensitive(rp, "partial_rotary_factor") ? rp
                                                                                            : root;
    float prf;
    if ((st = cfg_float(psrc, "partial_rotary_factor", false, 1.0f, &prf, path, err))) return st;
    double rd = (double)prf * hp->head_dim;
    if (prf > 1.0f || floor(rd) != rd || ((int32_t)rd) % 2 != 0 || rd < 2)
        return lk_fail(err, LOKI_ERR_FORMAT,
                       "%s: partial_rotary_factor %g with head_dim %d does not give an even "
                       "number of rotated dims", path, (double)prf, (int)hp->head_dim);
    hp->rope_dim = (int32_t)rd;
    return LOKI_OK;
}

/* Layer pattern of Gemma 3 from "layer_types" (every entry
 * "sliding_attention" or "full_attention"), which must be periodic with
 * the global layers at (il + 1) % pattern == 0, as loki represents it; else
 * from "sliding_window_pattern" (older configs), default 6. */
static loki_status cfg_swa_pattern(const cJSON *root, const char *path, lk_hparams *hp,
                                   loki_error *err) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (!lt || cJSON_IsNull(lt)) {
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(root, "sliding_window_pattern");
        return cfg_int(root, pk ? "sliding_window_pattern" : "_sliding_window_pattern", false, 6,
                       &hp->swa_pattern, path, err);
    }
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != hp->n_layer)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: 'layer_types' must be an array of "
                       "num_hidden_layers = %d strings", path, (int)hp->n_layer);
    int32_t first_full = -1;
    for (int il = 0; il < hp->n_layer; il++) {
        const cJSON *e = cJSON_GetArrayItem(lt, il);
        bool full = cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention");
        if (!full && !(cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention")))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: layer_types[%d] must be \"sliding_attention\" "
                           "or \"full_attention\"", path, il);
        if (full && first_full < 0) first_full = il;
    }
    /* no global layer at all: a period longer than the model */
    hp->swa_pattern = first_full < 0 ? hp->n_layer + 1 : first_full + 1;
    for (int il = 0; il < hp->n_layer; il++) {
        bool full = !strcmp(cJSON_GetArrayItem(lt, il)->valuestring, "full_attention");
        if (full != ((il + 1) % hp->swa_pattern == 0))
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: layer_types: layer %d is %s, which breaks "
                           "the period of %d layers set by the first global layer (only periodic "
                           "patterns are supported)", path, il, full ? "global" : "local",
                           (int)hp->swa_pattern);
    }
    return LOKI_OK;
}

/* Gemma 3 (gemma3_text) settings beyond the Llama keys; absent keys take
 * the defaults of transformers' Gemma3TextConfig. head_dim must be set. */
static loki_status cfg_gemma3(const cJSON *root, const char *path, lk_hparams *hp,
                              loki_error *err) {
    loki_status st;
    float qpas;
    if ((st = cfg_float(root, "query_pre_attn_scalar", false, 256.0f, &qpas, path, err)) ||
        (st = cfg_int(root, "sliding_window", false, 4096, &hp->swa_window, path, err)) ||
        (st = cfg_swa_pattern(root, path, hp, err)) ||
        (st = cfg_float(root, "final_logit_softcapping", false, 0.0f, &hp->final_softcap, path, err)))
        return st;
    /* HF: scaling = query_pre_attn_scalar ** -0.5 and embed_scale =
     * hidden_size ** 0.5 in Python doubles, used as float32 (our activation
     * dtype; HF casts embed_scale to the weights' dtype, so a bf16 run of
     * HF rounds it to bf16). */
    hp->attn_scale = (float)(1.0 / sqrt((double)qpas));
    hp->embd_scale = (float)sqrt((double)hp->n_embd);
    hp->ffn_act = LK_ACT_GELU_TANH;
    /* local RoPE base: rope_parameters.sliding_attention (transformers >= 5)
     * or rope_local_base_freq; local layers never take the rope scaling */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *sl = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention")
                                         : NULL;
    if (cJSON_IsObject(sl)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(sl, "rope_type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "default") != 0)
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: rope_type '%s' of the sliding-window "
                           "layers is not supported (only default)", path, t->valuestring);
        if ((st = cfg_float(sl, "rope_theta", false, 10000.0f, &hp->rope_theta_swa, path, err)))
            return st;
    } else if ((st = cfg_float(root, "rope_local_base_freq", false, 10000.0f, &hp->rope_theta_swa,
                               path, err))) {
        return st;
    }
    const char *bad[] = {"attn_logit_softcapping", "use_bidirectional_attention"};
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, bad[i]);
        if (j && !cJSON_IsNull(j) && !cJSON_IsFalse(j))
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: '%s' is not supported", path, bad[i]);
    }
    return LOKI_OK;
}

loki_status lk_hf_config_parse(const char *text, size_t len, const char *path, lk_hf_config *out,
                               loki_error *err) {
    loki_status st;
    lk_hf_config c;
    memset(&c, 0, sizeof(c));
    lk_hparams *hp = &c.hp;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: invalid JSON%s (near byte %zu)", path,
                     root ? ": top level is not an object" : "",
                     root || !end || end < text ? (size_t)0 : (size_t)(end - text));
        goto done;
    }
    if ((st = cfg_arch(root, path, hp, err))) goto done;
    const bool gemma = !strcmp(hp->arch, "gemma3");
    /* Gemma names its activation hidden_activation (gelu_pytorch_tanh) */
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, gemma ? "hidden_activation"
                                                                    : "hidden_act");
    if (gemma && (!act || cJSON_IsNull(act))) act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    const char *want_act = gemma ? "gelu_pytorch_tanh" : "silu";
    if (cJSON_IsString(act) && strcmp(act->valuestring, want_act) != 0) {
        st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: unsupported %s '%s' for %s (only %s)", path,
                     act->string, act->valuestring, hp->arch, want_act);
        goto done;
    }
    if ((st = cfg_int(root, "hidden_size", true, 0, &hp->n_embd, path, err)) ||
        (st = cfg_int(root, "intermediate_size", true, 0, &hp->n_ff, path, err)) ||
        (st = cfg_int(root, "num_hidden_layers", true, 0, &hp->n_layer, path, err)) ||
        (st = cfg_int(root, "num_attention_heads", true, 0, &hp->n_head, path, err)) ||
        (st = cfg_int(root, "vocab_size", true, 0, &hp->n_vocab, path, err)) ||
        (st = cfg_int(root, "num_key_value_heads", false, hp->n_head, &hp->n_head_kv, path, err)) ||
        (st = cfg_int(root, "head_dim", false, gemma ? 256 : hp->n_embd / hp->n_head, &hp->head_dim,
                      path, err)) ||
        (st = cfg_int(root, "max_position_embeddings", false, gemma ? 131072 : 2048, &hp->n_ctx_train,
                      path, err)) ||
        (st = cfg_float(root, "rms_norm_eps", false, 1e-6f, &hp->rms_eps, path, err)))
        goto done;
    if (hp->head_dim < 1) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: hidden_size %d < num_attention_heads %d", path,
                     (int)hp->n_embd, (int)hp->n_head);
        goto done;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie) && !cJSON_IsNull(tie)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: 'tie_word_embeddings' must be a boolean", path);
        goto done;
    }
    /* transformers default: false for LlamaConfig / Qwen2Config, true for Gemma3TextConfig */
    c.tie_word_embeddings = tie && cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : gemma;
    if ((st = cfg_rope(root, path, hp, err))) goto done;
    if (gemma && (st = cfg_gemma3(root, path, hp, err))) goto done;
    hp->rope_style = LK_ROPE_NEOX;
    *out = c;
done:
    cJSON_Delete(root);
    return st;
}

loki_status lk_hf_config_load(const char *path, lk_hf_config *out, loki_error *err) {
    char *text = NULL;
    size_t len = 0;
    loki_status st = lk_read_file(path, &text, &len, err);
    if (st) return st;
    st = lk_hf_config_parse(text, len, path, out, err);
    free(text);
    return st;
}
