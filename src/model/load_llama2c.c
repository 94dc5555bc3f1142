/*
 * load_llama2c.c - llama2.c checkpoint loader: every weight is an F32 view
 * straight into the mapped file (no copy). Tokenizer from a separate file.
 */
#include "format/llama2c.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define L2C_NAME_LEN 32  /* "blk.1023.ffn_down.weight" fits */
#define L2C_NAMES_PER_LAYER 9

/* F32 view of an (rows, cols) array at byte offset `off`; ne[0] = cols. */
static lk_tensor l2c_view(const lk_mapped_file *f, uint64_t off, int64_t rows, int64_t cols,
                          const char *name) {
    lk_tensor t;
    memset(&t, 0, sizeof(t));
    t.name = name;
    t.dtype = LK_DTYPE_F32;
    t.n_dims = rows > 1 ? 2 : 1;
    t.ne[0] = cols;
    t.ne[1] = rows;
    t.ne[2] = t.ne[3] = 1;
    t.data = f->data + off;
    t.nbytes = (size_t)(rows * cols) * sizeof(float);
    return t;
}

/* The tokenizer to use: tok_path, else tokenizer.bin or tok<n_vocab>.bin
 * beside the checkpoint (llama2.c's conventions). Returns a heap string. */
static loki_status l2c_tok_path(const char *path, const char *tok_path, int32_t n_vocab,
                                char **out, loki_error *err) {
    if (tok_path) return (*out = lk_strdup(tok_path, err)) ? LOKI_OK : LOKI_ERR_NOMEM;
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    size_t cap = dlen + 64;
    char *p = lk_malloc(cap, err);
    if (!p) return LOKI_ERR_NOMEM;
    struct stat sb;
    snprintf(p, cap, "%.*stokenizer.bin", (int)dlen, path);
    if (stat(p, &sb) == 0) { *out = p; return LOKI_OK; }
    snprintf(p, cap, "%.*stok%d.bin", (int)dlen, path, (int)n_vocab);
    if (stat(p, &sb) == 0) { *out = p; return LOKI_OK; }
    free(p);
    return lk_fail(err, LOKI_ERR_IO, "%s: no tokenizer given and neither tokenizer.bin nor "
                   "tok%d.bin found beside it", path, (int)n_vocab);
}

loki_status lk_model_load_llama2c(loki_model *m, const char *path, const char *tok_path,
                                  loki_error *err) {
    loki_status st;
    lk_l2c_config c;
    snprintf(m->format, sizeof(m->format), "llama2c");
    if (!(m->path = lk_strdup(path, err))) return LOKI_ERR_NOMEM;
    if ((st = lk_file_map(path, &m->files[0], err))) return st;
    m->n_files = 1;
    const lk_mapped_file *f = &m->files[0];
    if ((st = lk_l2c_parse(f, path, &c, err))) return st;

    lk_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof(hp->arch), "llama");
    hp->n_vocab = c.n_vocab;
    hp->n_ctx_train = c.seq_len;
    hp->n_embd = c.dim;
    hp->n_layer = c.n_layers;
    hp->n_head = c.n_heads;
    hp->n_head_kv = c.n_kv_heads;
    hp->head_dim = c.head_size;
    hp->n_ff = c.hidden_dim;
    hp->rms_eps = 1e-5f;        /* hard-coded in run.c */
    hp->rope_theta = 10000.0f;  /* hard-coded in run.c */
    hp->rope_dim = c.head_size;
    hp->rope_style = LK_ROPE_NORM;
    hp->rope_scaling = LK_ROPE_SCALING_NONE;
    hp->rope_factor = 1.0f;

    /* tensor names: 9 per layer, GGUF-style so messages read alike */
    char *names = lk_calloc_for((size_t)c.n_layers * L2C_NAMES_PER_LAYER, L2C_NAME_LEN, path, "the tensor names", err);
    if (!names) return LOKI_ERR_NOMEM;
    m->owned[m->n_owned++] = names;
    m->layers = lk_calloc_for((size_t)c.n_layers, sizeof(lk_layer), path, "the layer table", err);
    if (!m->layers) return LOKI_ERR_NOMEM;

    int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim;
    m->tok_embd = l2c_view(f, c.off_embd, c.n_vocab, d, "token_embedding_table");
    m->out_norm = l2c_view(f, c.off_rms_final, 1, d, "rms_final_weight");
    m->output = c.shared_classifier ? m->tok_embd : l2c_view(f, c.off_wcls, c.n_vocab, d, "wcls");
    for (int il = 0; il < c.n_layers; il++) {
        lk_layer *L = &m->layers[il];
        uint64_t l = (uint64_t)il;
        char *nm = names + (size_t)il * L2C_NAMES_PER_LAYER * L2C_NAME_LEN;
        const char *sfx[L2C_NAMES_PER_LAYER] = {"attn_norm", "attn_q", "attn_k", "attn_v",
                                                "attn_output", "ffn_norm", "ffn_gate", "ffn_down",
                                                "ffn_up"};
        for (int k = 0; k < L2C_NAMES_PER_LAYER; k++)
            snprintf(nm + k * L2C_NAME_LEN, L2C_NAME_LEN, "blk.%d.%s.weight", il, sfx[k]);
        L->attn_norm = l2c_view(f, c.off_rms_att + 4 * l * (uint64_t)d, 1, d, nm);
        L->wq = l2c_view(f, c.off_wq + 4 * l * (uint64_t)(d * d), d, d, nm + 1 * L2C_NAME_LEN);
        L->wk = l2c_view(f, c.off_wk + 4 * l * (uint64_t)(kv * d), kv, d, nm + 2 * L2C_NAME_LEN);
        L->wv = l2c_view(f, c.off_wv + 4 * l * (uint64_t)(kv * d), kv, d, nm + 3 * L2C_NAME_LEN);
        L->wo = l2c_view(f, c.off_wo + 4 * l * (uint64_t)(d * d), d, d, nm + 4 * L2C_NAME_LEN);
        L->ffn_norm = l2c_view(f, c.off_rms_ffn + 4 * l * (uint64_t)d, 1, d, nm + 5 * L2C_NAME_LEN);
        /* w1 = gate (hidden, dim), w2 = down (dim, hidden), w3 = up (hidden, dim) */
        L->w_gate = l2c_view(f, c.off_w1 + 4 * l * (uint64_t)(h * d), h, d, nm + 6 * L2C_NAME_LEN);
        L->w_down = l2c_view(f, c.off_w2 + 4 * l * (uint64_t)(d * h), d, h, nm + 7 * L2C_NAME_LEN);
        L->w_up = l2c_view(f, c.off_w3 + 4 * l * (uint64_t)(h * d), h, d, nm + 8 * L2C_NAME_LEN);
    }

    char *tp = NULL;
    if ((st = l2c_tok_path(path, tok_path, c.n_vocab, &tp, err))) return st;
    st = lk_vocab_from_llama2c(&m->vocab, tp, c.n_vocab, err);
    free(tp);
    return st;
}
