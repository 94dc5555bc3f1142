/*
 * llama2c.h - Andrej Karpathy's llama2.c checkpoint format ("legacy"
 * version 0, written by export.py --version 0 and the original run.c).
 *
 * Layout (little endian): 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; vocab_size < 0 means the classifier is
 * stored separately) followed by float32 arrays, outermost dim first:
 *   token_embedding (vocab, dim)      rms_att (L, dim)
 *   wq (L, dim, dim)                  wk (L, kv_dim, dim)
 *   wv (L, kv_dim, dim)               wo (L, dim, dim)
 *   rms_ffn (L, dim)                  w1 (L, hidden, dim)   gate
 *   w2 (L, dim, hidden)   down        w3 (L, hidden, dim)   up
 *   rms_final (dim)                   freq_cis_real (seq_len, head_size/2)
 *   freq_cis_imag (seq_len, head_size/2)   [wcls (vocab, dim) if unshared]
 * with kv_dim = dim * n_kv_heads / n_heads and head_size = dim / n_heads.
 */
#ifndef LK_LLAMA2C_H
#define LK_LLAMA2C_H

#include "core/common.h"

#define LK_L2C_HEADER_BYTES 28

typedef struct lk_l2c_config {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int32_t n_vocab;      /* |vocab_size| */
    bool shared_classifier;
    int32_t head_size, kv_dim;
    /* byte offsets of each array in the file (per-layer arrays: layer 0) */
    uint64_t off_embd, off_rms_att, off_wq, off_wk, off_wv, off_wo, off_rms_ffn, off_w1, off_w2,
        off_w3, off_rms_final, off_wcls;
    uint64_t file_size;   /* exact size the header implies */
} lk_l2c_config;

/* True if the first bytes of a file (`n` >= 28 of them) look like a llama2.c
 * header: positive, mutually consistent, not absurdly large dimensions.
 * Used to tell llama2.c checkpoints apart from arbitrary files. */
bool lk_l2c_plausible(const void *head, size_t n);

/* Parse and check the header of a mapped checkpoint and compute the array
 * offsets; the file size must equal what the header implies exactly
 * (shorter: "truncated", longer: "trailing bytes"). `path` is for messages. */
loki_status lk_l2c_parse(const lk_mapped_file *f, const char *path, lk_l2c_config *cfg,
                         loki_error *err);

#endif /* LK_LLAMA2C_H */
