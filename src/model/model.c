/*
 * model.c - loki_model_open dispatch (GGUF file / HF directory / llama2.c
 * checkpoint), validation of what a loader produced, model info, cleanup,
 * and the public tokenizer wrappers.
 */
#include "format/gguf.h"
#include "format/llama2c.h"
#include "format/safetensors.h"
#include "model/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ validation */

/* Check one tensor against the (rows, cols) shape the hparams imply; rows
 * == 0 means a vector of `cols`. Vectors (norms, biases) must be a float
 * dtype; matrices may also be block-quantized (cols a multiple of the block). `what` names the
 * slot when the tensor has no name (absent tensors). */
static loki_status check_tensor(const loki_model *m, const lk_tensor *t, const char *what,
                                int64_t rows, int64_t cols, loki_error *err) {
    const char *path = m->path ? m->path : "model";
    const char *name = t->name ? t->name : what;
    if (!t->data) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (!lk_dtype_valid((int)t->dtype))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported dtype %d", path,
                       name, (int)t->dtype);
    if (rows == 0 && lk_dtype_is_quant(t->dtype))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; norm and bias vectors "
                       "must be f32, f16 or bf16", path, name, lk_dtype_name(t->dtype));
    int64_t want_rows = rows == 0 ? 1 : rows;
    if (t->n_dims < 1 || t->n_dims > 4 || t->ne[0] != cols || t->ne[1] != want_rows ||
        t->ne[2] != 1 || t->ne[3] != 1)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' has inconsistent shape: ne = [%lld, "
                       "%lld, %lld, %lld] but the hparams imply (rows %lld, cols %lld)", path, name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], (long long)want_rows, (long long)cols);
    if (cols % lk_dtype_block_elems(t->dtype) != 0)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s': row length %lld is not a multiple "
                       "of the %s block size %d", path, name, (long long)cols,
                       lk_dtype_name(t->dtype), lk_dtype_block_elems(t->dtype));
    size_t need = lk_dtype_row_bytes(t->dtype, cols) * (size_t)want_rows;
    if (t->nbytes != need)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' holds %zu bytes, its shape and dtype "
                       "need %zu", path, name, t->nbytes, need);
    return LOKI_OK;
}

/* Hyperparameters alone: positive sizes, head grouping, RoPE settings. */
static loki_status check_hparams(const loki_model *m, loki_error *err) {
    const lk_hparams *hp = &m->hp;
    const char *path = m->path ? m->path : "model";
    if (hp->n_vocab <= 0 || hp->n_ctx_train <= 0 || hp->n_embd <= 0 || hp->n_layer <= 0 ||
        hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->head_dim <= 0 || hp->n_ff <= 0)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: non-positive hparam (vocab %d, ctx %d, embd %d, "
                       "layers %d, heads %d/%d, head_dim %d, ff %d)", path, (int)hp->n_vocab,
                       (int)hp->n_ctx_train, (int)hp->n_embd, (int)hp->n_layer, (int)hp->n_head,
                       (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_ff);
    if (hp->n_head % hp->n_head_kv != 0)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: n_head %d is not a multiple of n_head_kv %d",
                       path, (int)hp->n_head, (int)hp->n_head_kv);
    if (hp->head_dim % 2 != 0)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: head_dim %d is odd (RoPE rotates pairs)", path,
                       (int)hp->head_dim);
    if (hp->rope_dim <= 0 || hp->rope_dim % 2 != 0 || hp->rope_dim > hp->head_dim)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: rope_dim %d must be even and in (0, head_dim "
                       "%d]", path, (int)hp->rope_dim, (int)hp->head_dim);
    if (!isfinite(hp->rms_eps) || !(hp->rms_eps > 0.0f) || !isfinite(hp->rope_theta) ||
        !(hp->rope_theta > 0.0f))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: rms_eps %g and rope_theta %g must be positive",
                       path, (double)hp->rms_eps, (double)hp->rope_theta);
    if (hp->rope_style != LK_ROPE_NORM && hp->rope_style != LK_ROPE_NEOX)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: unknown rope style %d", path, (int)hp->rope_style);
    if (hp->ffn_act != LK_ACT_SILU && hp->ffn_act != LK_ACT_GELU_TANH)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: unknown feed-forward activation %d", path,
                       (int)hp->ffn_act);
    if (!(hp->embd_scale >= 0.0f) || !isfinite(hp->embd_scale) || !(hp->attn_scale >= 0.0f) ||
        !isfinite(hp->attn_scale) || !(hp->final_softcap >= 0.0f) || !isfinite(hp->final_softcap))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: embedding scale %g, attention scale %g and logit "
                       "soft-cap %g must be finite and >= 0", path, (double)hp->embd_scale,
                       (double)hp->attn_scale, (double)hp->final_softcap);
    if (hp->swa_window < 0 || (hp->swa_window > 0 && (hp->swa_pattern < 1 ||
                                                      !(hp->rope_theta_swa > 0.0f) ||
                                                      !isfinite(hp->rope_theta_swa))))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: sliding window %d needs a layer pattern >= 1 (got "
                       "%d) and a positive local RoPE base (got %g)", path, (int)hp->swa_window,
                       (int)hp->swa_pattern, (double)hp->rope_theta_swa);
    switch (hp->rope_scaling) {
    case LK_ROPE_SCALING_NONE: break;
    case LK_ROPE_SCALING_LINEAR:
        if (!(hp->rope_factor > 0.0f) || !isfinite(hp->rope_factor))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: rope scaling factor %g must be positive",
                           path, (double)hp->rope_factor);
        break;
    case LK_ROPE_SCALING_LLAMA3:
        if (!(hp->rope_factor > 0.0f) || !(hp->rope_low_freq_factor > 0.0f) ||
            !(hp->rope_high_freq_factor > hp->rope_low_freq_factor) || hp->rope_orig_ctx <= 0)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: inconsistent llama3 rope scaling (factor %g, "
                           "low %g, high %g, original ctx %d)", path, (double)hp->rope_factor,
                           (double)hp->rope_low_freq_factor, (double)hp->rope_high_freq_factor,
                           (int)hp->rope_orig_ctx);
        break;
    default:
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: unknown rope scaling %d", path,
                       (int)hp->rope_scaling);
    }
    return LOKI_OK;
}

loki_status lk_model_validate(const loki_model *m, loki_error *err) {
    loki_status st;
    if (!m) return lk_fail(err, LOKI_ERR_ARG, "lk_model_validate: model is NULL");
    const lk_hparams *hp = &m->hp;
    const char *path = m->path ? m->path : "model";
    if ((st = check_hparams(m, err))) return st;
    if (!m->layers) return lk_fail(err, LOKI_ERR_FORMAT, "%s: no layers loaded", path);
    int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff;
    int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    if ((st = check_tensor(m, &m->tok_embd, "token embedding", V, E, err)) ||
        (st = check_tensor(m, &m->out_norm, "output norm", 0, E, err)) ||
        (st = check_tensor(m, &m->output, "output", V, E, err)))
        return st;
    if (m->rope_freqs.data) {
        const lk_tensor *t = &m->rope_freqs;
        if (t->dtype != LK_DTYPE_F32 || lk_tensor_nelements(t) != hp->rope_dim / 2 ||
            t->nbytes != (size_t)(hp->rope_dim / 2) * sizeof(float))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' must be f32 with rope_dim/2 = %d "
                           "elements", path, t->name ? t->name : "rope_freqs", (int)hp->rope_dim / 2);
    }
    for (int il = 0; il < hp->n_layer; il++) {
        const lk_layer *L = &m->layers[il];
        if ((st = check_tensor(m, &L->attn_norm, "attn_norm", 0, E, err)) ||
            (st = check_tensor(m, &L->wq, "wq", Q, E, err)) ||
            (st = check_tensor(m, &L->wk, "wk", KV, E, err)) ||
            (st = check_tensor(m, &L->wv, "wv", KV, E, err)) ||
            (st = check_tensor(m, &L->wo, "wo", E, Q, err)) ||
            (L->bq.data && (st = check_tensor(m, &L->bq, "bq", 0, Q, err))) ||
            (L->bk.data && (st = check_tensor(m, &L->bk, "bk", 0, KV, err))) ||
            (L->bv.data && (st = check_tensor(m, &L->bv, "bv", 0, KV, err))) ||
            (L->attn_q_norm.data && (st = check_tensor(m, &L->attn_q_norm, "attn_q_norm", 0,
                                                       hp->head_dim, err))) ||
            (L->attn_k_norm.data && (st = check_tensor(m, &L->attn_k_norm, "attn_k_norm", 0,
                                                       hp->head_dim, err))) ||
            (L->attn_post_norm.data && (st = check_tensor(m, &L->attn_post_norm, "attn_post_norm",
                                                          0, E, err))) ||
            (L->ffn_post_norm.data && (st = check_tensor(m, &L->ffn_post_norm, "ffn_post_norm", 0,
                                                         E, err))) ||
            (st = check_tensor(m, &L->ffn_norm, "ffn_norm", 0, E, err)) ||
            (st = check_tensor(m, &L->w_gate, "w_gate", F, E, err)) ||
            (st = check_tensor(m, &L->w_up, "w_up", F, E, err)) ||
            (st = check_tensor(m, &L->w_down, "w_down", E, F, err)))
            return lk_fail_prefix(err, "layer %d", il);
    }
    if (m->vocab.n_tokens > hp->n_vocab)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer has %d tokens but the embedding only "
                       "%d rows", path, (int)m->vocab.n_tokens, (int)hp->n_vocab);
    return LOKI_OK;
}

/* --------------------------------------------------------------- cleanup */

void lk_model_free(loki_model *m) {
    if (!m) return;
    lk_vocab_free(&m->vocab);
    free(m->layers);
    for (int i = 0; i < m->n_owned && i < (int)LK_ARRAY_LEN(m->owned); i++) free(m->owned[i]);
    for (int i = 0; i < m->n_files && i < LK_MAX_FILES; i++) lk_file_unmap(&m->files[i]);
    if (m->gguf) {
        lk_gguf_close(m->gguf);
        free(m->gguf);
    }
    lk_st_free(m->st);
    free(m->path);
    memset(m, 0, sizeof(*m));
}

void loki_model_close(loki_model *model) {
    if (!model) return;
    lk_model_free(model);
    free(model);
}

/* ---------------------------------------------------------------- open */

/* Which loader a path needs: 'd' HF directory, 'g' GGUF, 'l' llama2.c. */
static loki_status sniff_format(const char *path, char *kind, loki_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lk_fail(err, LOKI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) { *kind = 'd'; return LOKI_OK; }
    FILE *f = fopen(path, "rb");
    if (!f) return lk_fail(err, LOKI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[LK_L2C_HEADER_BYTES];
    size_t n = fread(head, 1, sizeof(head), f);
    fclose(f);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) { *kind = 'g'; return LOKI_OK; }
    if (n >= 8 && memcmp(head, "24ka", 4) == 0) {
        int32_t version;
        memcpy(&version, head + 4, 4);
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: llama2.c export version %d is not "
                       "supported (only the legacy version-0 checkpoint)", path, (int)version);
    }
    if (lk_l2c_plausible(head, n)) { *kind = 'l'; return LOKI_OK; }
    return lk_fail(err, LOKI_ERR_FORMAT,
                   "%s: not a GGUF file, HF directory or llama2.c checkpoint", path);
}

loki_status loki_model_open(const char *path, const loki_model_params *params, loki_model **out,
                            loki_error *err) {
    if (!path || !out) return lk_fail(err, LOKI_ERR_ARG, "loki_model_open: path and out are required");
    char kind = 0;
    loki_status st = sniff_format(path, &kind, err);
    if (st) return st;
    loki_model *m = lk_calloc(1, sizeof(*m), err);
    if (!m) return LOKI_ERR_NOMEM;
    switch (kind) {
    case 'd': st = lk_model_load_hf(m, path, err); break;
    case 'g': st = lk_model_load_gguf(m, path, err); break;
    default:
        st = lk_model_load_llama2c(m, path, params ? params->tokenizer_path : NULL, err);
        break;
    }
    if (!st) st = lk_model_validate(m, err);
    if (!st && m->rope_freqs.data) m->hp.rope_freq_factors = m->rope_freqs.data; /* validated: f32 */
    if (st) {
        loki_model_close(m);
        return st;
    }
    *out = m;
    return LOKI_OK;
}

/* ---------------------------------------------------------------- info */

/* Add a tensor's elements and bytes to the totals (absent tensors add 0). */
static void info_add(const lk_tensor *t, int64_t *n_params, int64_t *bytes) {
    if (!t->data) return;
    *n_params += lk_tensor_nelements(t);
    *bytes += (int64_t)t->nbytes;
}

void loki_model_get_info(const loki_model *model, loki_model_info *info) {
    if (!info) return;
    memset(info, 0, sizeof(*info));
    info->bos_id = info->eos_id = -1;
    if (!model) return;
    const lk_hparams *hp = &model->hp;
    info->arch = hp->arch;
    info->format = model->format;
    info->n_vocab = hp->n_vocab;
    info->n_ctx_train = hp->n_ctx_train;
    info->n_embd = hp->n_embd;
    info->n_layer = hp->n_layer;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->head_dim = hp->head_dim;
    info->n_ff = hp->n_ff;
    info->bos_id = model->vocab.n_tokens > 0 ? model->vocab.bos_id : -1;
    info->eos_id = model->vocab.n_tokens > 0 ? model->vocab.eos_id : -1;
    int64_t np = 0, nb = 0;
    info_add(&model->tok_embd, &np, &nb);
    info_add(&model->out_norm, &np, &nb);
    if (model->output.data != model->tok_embd.data) info_add(&model->output, &np, &nb); /* untied */
    for (int il = 0; model->layers && il < hp->n_layer; il++) {
        const lk_layer *L = &model->layers[il];
        const lk_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                                 &L->bv, &L->attn_q_norm, &L->attn_k_norm, &L->attn_post_norm,
                                 &L->ffn_post_norm, &L->ffn_norm, &L->w_gate, &L->w_up,
                                 &L->w_down};
        for (size_t k = 0; k < LK_ARRAY_LEN(ts); k++) info_add(ts[k], &np, &nb);
    }
    info->n_params = np;
    info->weight_bytes = nb;
}

/* ------------------------------------------------------------ tokenizer */

loki_status loki_tokenize(const loki_model *model, const char *text, size_t len, bool add_bos,
                          bool parse_special, int32_t *ids, int32_t cap, int32_t *n_out,
                          loki_error *err) {
    if (!model || (!text && len > 0) || !n_out || (cap > 0 && !ids) || cap < 0)
        return lk_fail(err, LOKI_ERR_ARG, "loki_tokenize: invalid arguments");
    return lk_tokenize(&model->vocab, text, len, add_bos, parse_special, ids, cap, n_out, err);
}

int32_t loki_token_to_piece(const loki_model *model, int32_t prev, int32_t id, bool special,
                            char *buf, int32_t cap) {
    if (!model || (cap > 0 && !buf)) return -1;
    return lk_token_to_piece(&model->vocab, prev, id, special, buf, cap);
}

int64_t loki_detokenize(const loki_model *model, const int32_t *ids, int32_t n, bool special,
                        char *buf, int64_t cap) {
    if (!model || (n > 0 && !ids) || n < 0 || (cap > 0 && !buf)) return -1;
    return lk_detokenize(&model->vocab, ids, n, special, buf, cap);
}
