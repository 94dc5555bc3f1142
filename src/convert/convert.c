/*
 * convert.c - `loki convert`: a Hugging Face directory to a llama.cpp GGUF
 * (what is written and why: convert.h).
 */
#include "convert/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "core/quant.h"
#include "core/quantize.h"
#include "cpu/cpu.h"
#include "format/gguf.h"
#include "model/model.h"
#include "tokenizer/export.h"

/* llama.cpp's llama_ftype values for general.file_type. */
enum {
    FTYPE_ALL_F32 = 0, FTYPE_F16 = 1, FTYPE_Q4_0 = 2, FTYPE_Q8_0 = 7, FTYPE_Q4_K_S = 14,
    FTYPE_Q6_K = 18, FTYPE_BF16 = 32,
};

/* The --type names (convert.h). */
static const struct { const char *name; lk_dtype t; } convert_types[] = {
    {"f32", LK_DTYPE_F32},   {"f16", LK_DTYPE_F16},   {"bf16", LK_DTYPE_BF16}, {"q8_0", LK_DTYPE_Q8_0},
    {"q4_0", LK_DTYPE_Q4_0}, {"q4_k", LK_DTYPE_Q4_K}, {"q6_k", LK_DTYPE_Q6_K},
};

bool lk_convert_type_parse(const char *name, lk_dtype *out) {
    const size_t n = LK_ARRAY_LEN(convert_types);
    for (size_t i = 0; i < n; i++)
        if (name && strcmp(name, convert_types[i].name) == 0) {
            *out = convert_types[i].t;
            return true;
        }
    return false;
}

/* general.file_type of a conversion to t (llama.cpp's llama_ftype; q4_k is
 * "mostly Q4_K, small" as its output matrix is q6_k). */
static uint32_t file_type(lk_dtype t) {
    switch (t) {
    case LK_DTYPE_F16: return FTYPE_F16;
    case LK_DTYPE_BF16: return FTYPE_BF16;
    case LK_DTYPE_Q8_0: return FTYPE_Q8_0;
    case LK_DTYPE_Q4_0: return FTYPE_Q4_0;
    case LK_DTYPE_Q4_K: return FTYPE_Q4_K_S;
    case LK_DTYPE_Q6_K: return FTYPE_Q6_K;
    default: return FTYPE_ALL_F32;
    }
}

/* Type of a matrix with rows of `cols` under the requested type (convert.h). */
static lk_dtype matrix_type(lk_dtype want, int64_t cols, bool is_output) {
    lk_dtype t = want;
    if (is_output && (want == LK_DTYPE_Q4_0 || want == LK_DTYPE_Q4_K)) t = LK_DTYPE_Q6_K;
    if (lk_dtype_block_elems(t) == LK_QK_K && cols % LK_QK_K != 0)
        t = t == LK_DTYPE_Q4_K ? LK_DTYPE_Q5_0 : LK_DTYPE_Q8_0;
    if (lk_dtype_block_elems(t) > 1 && cols % lk_dtype_block_elems(t) != 0) t = LK_DTYPE_F16;
    return t;
}

/* One tensor of the output: where its data comes from. */
typedef struct conv_job {
    const lk_tensor *src; /* NULL: rope_freqs (computed) */
    lk_dtype dtype;       /* written type */
    int64_t rows, cols;
    int perm_heads;       /* > 0: permute rows within heads of rows/perm_heads (q/k of llama) */
} conv_job;

typedef struct conv_ctx {
    const loki_model *m;
    conv_job *jobs;
    int n_jobs, cap_jobs;
    lk_pool *pool;        /* rows of a tensor are converted in parallel */
    float *rows;          /* (threads, max_cols) scratch, one row per thread */
    int64_t max_cols;
} conv_ctx;

/* The rows of one tensor, split over the pool's threads. */
typedef struct fill_task {
    const conv_ctx *c;
    const conv_job *j;
    uint8_t *dst;
    size_t src_rb, dst_rb;
    int64_t *bad_row;     /* (threads) first source row with a non-finite value, or -1 */
} fill_task;

/* Row of the source that output row r takes under the q/k permutation:
 * inside a head of hd rows, output row 2j + i comes from HF row i*hd/2 + j. */
static int64_t perm_src_row(int64_t r, int64_t hd) {
    int64_t h = r / hd, k = r % hd, j = k / 2, i = k % 2;
    return h * hd + i * (hd / 2) + j;
}

void lk_convert_llama3_factors(const lk_hparams *hp, float *out) {
    const double lo_wl = hp->rope_orig_ctx / hp->rope_low_freq_factor;
    const double hi_wl = hp->rope_orig_ctx / hp->rope_high_freq_factor;
    for (int i = 0; i < hp->rope_dim / 2; i++) {
        double freq = 1.0 / pow(hp->rope_theta, (2.0 * i) / hp->rope_dim), wl = 2.0 * M_PI / freq;
        if (wl < hi_wl) {
            out[i] = 1.0f;
        } else if (wl > lo_wl) {
            out[i] = hp->rope_factor;
        } else {
            double s = (hp->rope_orig_ctx / wl - hp->rope_low_freq_factor) /
                       (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
            out[i] = (float)(1.0 / ((1.0 - s) / hp->rope_factor + s));
        }
    }
}

/* lk_task_fn: thread ith of nth converts its contiguous share of the rows. */
static void fill_rows(void *arg, int ith, int nth) {
    fill_task *t = arg;
    const conv_job *j = t->j;
    float *row = t->c->rows + (size_t)ith * (size_t)t->c->max_cols;
    int64_t hd = j->perm_heads > 0 ? j->rows / j->perm_heads : 0;
    int64_t r0 = j->rows * ith / nth, r1 = j->rows * (ith + 1) / nth;
    t->bad_row[ith] = -1;
    for (int64_t r = r0; r < r1; r++) {
        int64_t sr = hd ? perm_src_row(r, hd) : r;
        lk_row_to_f32(j->src->dtype, (const uint8_t *)j->src->data + (size_t)sr * t->src_rb, row, j->cols);
        for (int64_t k = 0; k < j->cols; k++)
            if (!isfinite(row[k])) {
                t->bad_row[ith] = sr;
                return;
            }
        lk_quantize_row(j->dtype, row, t->dst + (size_t)r * t->dst_rb, j->cols);
    }
}

/* lk_gguf_fill_fn: convert tensor `index` into dst. */
static loki_status fill(void *vctx, uint64_t index, void *dst, size_t nbytes, loki_error *err) {
    conv_ctx *c = vctx;
    const conv_job *j = &c->jobs[index];
    if (!j->src) {
        lk_convert_llama3_factors(&c->m->hp, dst);
        return LOKI_OK;
    }
    fill_task t = {c, j, dst, lk_dtype_row_bytes(j->src->dtype, j->cols), lk_dtype_row_bytes(j->dtype, j->cols), NULL};
    if (t.dst_rb * (size_t)j->rows != nbytes || t.src_rb * (size_t)j->rows > j->src->nbytes)
        return lk_fail(err, LOKI_ERR_FORMAT, "tensor '%s': size mismatch", j->src->name ? j->src->name : "?");
    int nth = lk_pool_size(c->pool);
    int64_t bad[256];
    t.bad_row = bad;
    lk_pool_run(c->pool, fill_rows, &t);
    for (int i = 0; i < nth; i++)
        if (bad[i] >= 0)
            return lk_fail(err, LOKI_ERR_FORMAT, "tensor '%s': row %lld holds a non-finite value",
                           j->src->name ? j->src->name : "?", (long long)bad[i]);
    return LOKI_OK;
}

/* Declare tensor `name` from src (absent: nothing) with its output type. */
static loki_status add_tensor(lk_gguf_writer *w, conv_ctx *c, const char *name, const lk_tensor *src,
                              lk_dtype want, bool is_output, int perm_heads, loki_error *err) {
    if (src && !src->data) return LOKI_OK;
    if (c->n_jobs == c->cap_jobs) {
        int cap = c->cap_jobs ? 2 * c->cap_jobs : 64;
        conv_job *jobs = realloc(c->jobs, (size_t)cap * sizeof *jobs);
        if (!jobs) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory");
        c->jobs = jobs;
        c->cap_jobs = cap;
    }
    conv_job *j = &c->jobs[c->n_jobs];
    memset(j, 0, sizeof *j);
    j->src = src;
    if (src) {
        j->cols = src->ne[0];
        j->rows = lk_tensor_nelements(src) / j->cols;
        j->dtype = src->n_dims == 1 ? LK_DTYPE_F32 : matrix_type(want, j->cols, is_output);
        j->perm_heads = perm_heads;
    } else {
        j->cols = c->m->hp.rope_dim / 2; /* rope_freqs */
        j->rows = 1;
        j->dtype = LK_DTYPE_F32;
    }
    int64_t ne[2] = {j->cols, j->rows};
    loki_status st = lk_gguf_writer_add_tensor_deferred(w, name, j->dtype, src && src->n_dims == 1 ? 1 : 2, ne);
    if (st) return lk_fail(err, st, "tensor '%s': cannot add (%s)", name, loki_status_str(st));
    c->n_jobs++;
    return LOKI_OK;
}

void lk_convert_write_hparams(lk_gguf_writer *w, const lk_hparams *hp, const char *name, lk_dtype type) {
    char key[128];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s.%s", hp->arch, suffix), key)
    lk_gguf_writer_add_str(w, "general.architecture", hp->arch);
    lk_gguf_writer_add_str(w, "general.type", "model");
    lk_gguf_writer_add_str(w, "general.name", name);
    lk_gguf_writer_add_u32(w, ARCH_KEY("context_length"), (uint32_t)hp->n_ctx_train);
    lk_gguf_writer_add_u32(w, ARCH_KEY("embedding_length"), (uint32_t)hp->n_embd);
    lk_gguf_writer_add_u32(w, ARCH_KEY("block_count"), (uint32_t)hp->n_layer);
    lk_gguf_writer_add_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)hp->n_ff);
    lk_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)hp->n_head);
    lk_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv);
    lk_gguf_writer_add_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), hp->rms_eps);
    lk_gguf_writer_add_u32(w, ARCH_KEY("attention.key_length"), (uint32_t)hp->head_dim);
    lk_gguf_writer_add_u32(w, ARCH_KEY("attention.value_length"), (uint32_t)hp->head_dim);
    lk_gguf_writer_add_f32(w, ARCH_KEY("rope.freq_base"), hp->rope_theta);
    lk_gguf_writer_add_u32(w, ARCH_KEY("rope.dimension_count"), (uint32_t)hp->rope_dim);
    lk_gguf_writer_add_u32(w, ARCH_KEY("vocab_size"), (uint32_t)hp->n_vocab);
    if (hp->rope_scaling == LK_ROPE_SCALING_LINEAR) {
        lk_gguf_writer_add_str(w, ARCH_KEY("rope.scaling.type"), "linear");
        lk_gguf_writer_add_f32(w, ARCH_KEY("rope.scaling.factor"), hp->rope_factor);
        if (hp->rope_orig_ctx > 0)
            lk_gguf_writer_add_u32(w, ARCH_KEY("rope.scaling.original_context_length"), (uint32_t)hp->rope_orig_ctx);
    }
#undef ARCH_KEY
    lk_gguf_writer_add_u32(w, "general.file_type", file_type(type));
    if (lk_dtype_is_quant(type)) lk_gguf_writer_add_u32(w, "general.quantization_version", 2);
}

/* tokenizer.ggml.* and tokenizer.chat_template (convert.h). */
static loki_status write_tokenizer(lk_gguf_writer *w, const loki_model *m, loki_error *err) {
    const lk_vocab *v = &m->vocab;
    lk_vocab_export e = {0};
    char **pads = NULL, *tpl = NULL;
    const char **texts = NULL;
    loki_status st;
    if (v->type != LK_VOCAB_BPE)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: only byte-level BPE tokenizers convert so far; a "
                       "SentencePiece-style tokenizer.json needs the scores of its tokenizer.model", m->path);
    if (strcmp(v->pre, "llama-bpe") != 0 && strcmp(v->pre, "gpt-2") != 0)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tokenizer.json's pre-tokenizer is not one llama.cpp "
                       "names (recognised: the Llama-3 regex 'llama-bpe', GPT-2's 'gpt-2')", m->path);
    if ((st = lk_vocab_export_init(v, &e, err))) return lk_fail_prefix(err, "%s", m->path);
    texts = lk_calloc((size_t)e.n_tokens, sizeof *texts, err);
    pads = lk_calloc((size_t)e.n_tokens, sizeof *pads, err);
    if (!texts || !pads) {
        st = LOKI_ERR_NOMEM;
        goto done;
    }
    for (int32_t i = 0; i < e.n_tokens; i++) {
        texts[i] = e.text[i];
        if (e.text[i][0] == '\0') { /* a hole in the ids: llama.cpp's "[PAD<id>]" */
            if (!(pads[i] = lk_malloc(32, err))) {
                st = LOKI_ERR_NOMEM;
                goto done;
            }
            snprintf(pads[i], 32, "[PAD%d]", (int)i);
            texts[i] = pads[i];
            e.type[i] = LK_TOK_UNUSED;
        }
    }
    lk_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    lk_gguf_writer_add_str(w, "tokenizer.ggml.pre", v->pre);
    lk_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", texts, (uint64_t)e.n_tokens);
    lk_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LK_GGUF_INT32, e.type, (uint64_t)e.n_tokens);
    lk_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)e.merges, (uint64_t)e.n_merges);
    if (v->bos_id >= 0) lk_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
    if (v->eos_id >= 0) lk_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
    if (v->unk_id >= 0) lk_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id);
    if (v->pad_id >= 0) lk_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad_id);
    lk_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    lk_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    if ((st = lk_chat_template_of_model(m, &tpl, err))) goto done;
    if (tpl) lk_gguf_writer_add_str(w, "tokenizer.chat_template", tpl);
done:
    if (pads)
        for (int32_t i = 0; i < e.n_tokens; i++) free(pads[i]);
    free(pads);
    free(texts);
    free(tpl);
    lk_vocab_export_free(&e);
    return st;
}

/* Declare every tensor under its llama.cpp name. */
static loki_status add_tensors(lk_gguf_writer *w, conv_ctx *c, lk_dtype type, loki_error *err) {
    const loki_model *m = c->m;
    const lk_hparams *hp = &m->hp;
    bool tied = m->output.data == m->tok_embd.data;
    bool permute = strcmp(hp->arch, "llama") == 0;
    loki_status st;
    if ((st = add_tensor(w, c, "token_embd.weight", &m->tok_embd, type, tied, 0, err))) return st;
    if (hp->rope_scaling == LK_ROPE_SCALING_LLAMA3 &&
        (st = add_tensor(w, c, "rope_freqs.weight", NULL, LK_DTYPE_F32, false, 0, err)))
        return st;
    for (int il = 0; il < hp->n_layer; il++) {
        const lk_layer *L = &m->layers[il];
        const struct { const char *name; const lk_tensor *t; int perm; } ts[] = {
            {"attn_norm.weight", &L->attn_norm, 0},
            {"attn_q.weight", &L->wq, permute ? hp->n_head : 0},
            {"attn_k.weight", &L->wk, permute ? hp->n_head_kv : 0},
            {"attn_v.weight", &L->wv, 0},
            {"attn_output.weight", &L->wo, 0},
            {"attn_q.bias", &L->bq, permute ? hp->n_head : 0},
            {"attn_k.bias", &L->bk, permute ? hp->n_head_kv : 0},
            {"attn_v.bias", &L->bv, 0},
            {"ffn_norm.weight", &L->ffn_norm, 0},
            {"ffn_gate.weight", &L->w_gate, 0},
            {"ffn_up.weight", &L->w_up, 0},
            {"ffn_down.weight", &L->w_down, 0},
        };
        for (size_t k = 0; k < LK_ARRAY_LEN(ts); k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", il, ts[k].name);
            /* a bias is a vector: permute its elements as rows of one column */
            if ((st = add_tensor(w, c, name, ts[k].t, type, false, ts[k].perm, err))) return st;
            if (ts[k].t->data && ts[k].t->n_dims == 1 && ts[k].perm) {
                conv_job *j = &c->jobs[c->n_jobs - 1];
                j->rows = j->cols;
                j->cols = 1;
            }
        }
    }
    if ((st = add_tensor(w, c, "output_norm.weight", &m->out_norm, type, false, 0, err))) return st;
    if (!tied && (st = add_tensor(w, c, "output.weight", &m->output, type, true, 0, err))) return st;
    return LOKI_OK;
}

/* The directory's last path component (for general.name). */
static void base_name(const char *dir, char *out, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(out, cap, "%.*s", (int)(n - s), dir + s);
}

loki_status lk_convert_hf_to_gguf(const char *dir, const char *out_path, lk_dtype type, int n_threads,
                                  lk_stop_flag *stop, loki_error *err) {
    loki_model *m = NULL;
    lk_gguf_writer *w = NULL;
    conv_ctx c = {0};
    loki_status st;
    if (!dir || !out_path) return lk_fail(err, LOKI_ERR_ARG, "convert: a directory and an output path are required");
    if ((st = loki_model_open(dir, NULL, &m, err))) return st;
    if (strcmp(m->format, "hf") != 0) {
        st = lk_fail(err, LOKI_ERR_ARG, "%s: not a Hugging Face directory (convert reads config.json, "
                     "*.safetensors and tokenizer.json)", dir);
        goto done;
    }
    const lk_hparams *hp = &m->hp;
    if (strcmp(hp->arch, "llama") == 0 && hp->rope_dim != hp->head_dim) {
        st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: partial rotary (%d of %d dims) is not supported for "
                     "llama", dir, (int)hp->rope_dim, (int)hp->head_dim);
        goto done;
    }
    if ((st = lk_gguf_writer_init(&w, err))) goto done;
    lk_gguf_writer_set_stop(w, stop);
    char name[256];
    base_name(dir, name, sizeof name);
    lk_convert_write_hparams(w, &m->hp, name, type);
    c.m = m;
    if ((st = write_tokenizer(w, m, err)) || (st = add_tensors(w, &c, type, err))) goto done;
    c.max_cols = 1;
    for (int i = 0; i < c.n_jobs; i++) c.max_cols = LK_MAX(c.max_cols, c.jobs[i].cols);
    n_threads = LK_MIN(n_threads > 0 ? n_threads : lk_n_cpus(), 256);
    if ((st = lk_pool_init(&c.pool, n_threads, err))) goto done;
    if (!(c.rows = lk_malloc((size_t)n_threads * (size_t)c.max_cols * sizeof(float), err))) {
        st = LOKI_ERR_NOMEM;
        goto done;
    }
    st = lk_gguf_writer_write_stream(w, out_path, fill, &c, err);
done:
    lk_pool_free(c.pool);
    free(c.rows);
    free(c.jobs);
    lk_gguf_writer_free(w);
    loki_model_close(m);
    return st;
}
