/*
 * export.h - a loaded vocabulary as the arrays a GGUF writer needs
 * (tokenizer.ggml.tokens / token_type / scores / merges), for `loki convert`.
 */
#ifndef LK_TOK_EXPORT_H
#define LK_TOK_EXPORT_H

#include "tokenizer/vocab.h"

typedef struct lk_vocab_export {
    int32_t n_tokens;
    const char **text;  /* (n_tokens) NUL-terminated token texts (into the vocabulary) */
    int32_t *type;      /* (n_tokens) lk_tok_attr (GGUF token_type) */
    float *score;       /* (n_tokens) */
    char **merges;      /* (n_merges) "left right", in rank order (owned) */
    int64_t n_merges;
} lk_vocab_export;

/* Fill *out from v (which must outlive it). Merges are rebuilt from the
 * merge table in rank order; merges whose parts or result are not tokens
 * were dropped at load (they can never apply) and are not written. A token
 * text holding a NUL byte is LOKI_ERR_UNSUPPORTED. */
loki_status lk_vocab_export_init(const lk_vocab *v, lk_vocab_export *out, loki_error *err);
void lk_vocab_export_free(lk_vocab_export *e);

#endif /* LK_TOK_EXPORT_H */
