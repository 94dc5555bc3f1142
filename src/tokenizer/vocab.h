/*
 * vocab.h - tokenizer vocabulary and the tokenize/detokenize entry points.
 *
 * Two algorithms cover the Llama family:
 *  LK_VOCAB_SPM: SentencePiece-style BPE - merge the adjacent pair whose merged
 *                piece has the highest score; byte fallback <0xHH>; spaces as
 *                U+2581 (llama2.c's tok*.bin stores plain spaces instead).
 *  LK_VOCAB_BPE: byte-level BPE (GPT-2 byte-to-unicode map) with ranked merges,
 *                after a pre-tokenizer regex split (PCRE2) chosen by `pre`.
 * Vocabularies come from GGUF metadata (tokenizer.ggml.*), a Hugging Face
 * tokenizer.json (+ tokenizer_config.json), or a llama2.c tokenizer .bin.
 */
#ifndef LK_VOCAB_H
#define LK_VOCAB_H

#include "core/common.h"

struct lk_gguf;

typedef enum lk_vocab_type {
    LK_VOCAB_NONE = 0,
    LK_VOCAB_SPM = 1,
    LK_VOCAB_BPE = 2,
} lk_vocab_type;

/* Token attributes; values equal GGUF's tokenizer.ggml.token_type. */
typedef enum lk_tok_attr {
    LK_TOK_NORMAL = 1,
    LK_TOK_UNKNOWN = 2,
    LK_TOK_CONTROL = 3,
    LK_TOK_USER_DEFINED = 4,
    LK_TOK_UNUSED = 5,
    LK_TOK_BYTE = 6,
} lk_tok_attr;

typedef struct lk_vocab_impl lk_vocab_impl; /* tokenizer-private tables */

typedef struct lk_vocab {
    lk_vocab_type type;
    int32_t n_tokens;
    char pre[64];          /* pre-tokenizer name (GGUF tokenizer.ggml.pre terms) */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix; /* SPM: prepend a space to the text */
    lk_vocab_impl *impl;   /* owned */
} lk_vocab;

loki_status lk_vocab_from_gguf(lk_vocab *v, const struct lk_gguf *g, loki_error *err);
/* dir holds tokenizer.json and optionally tokenizer_config.json. */
loki_status lk_vocab_from_hf(lk_vocab *v, const char *dir, loki_error *err);
/* The same from memory: data[0..size) is the text of tokenizer.json, config
 * that of tokenizer_config.json (NULL: none); `path` names tokenizer.json in
 * messages. lk_vocab_from_hf reads the two files and calls this (the fuzz
 * harness fuzz/fuzz_tokenizer_json.c calls it directly). */
loki_status lk_vocab_from_hf_json(lk_vocab *v, const char *data, size_t size, const char *config,
                                  size_t config_size, const char *path, loki_error *err);
/* llama2.c tokenizer (tok512.bin, tokenizer.bin): n_vocab from the checkpoint. */
loki_status lk_vocab_from_llama2c(lk_vocab *v, const char *path, int32_t n_vocab, loki_error *err);
void lk_vocab_free(lk_vocab *v);

/* Same contracts as loki_tokenize / loki_token_to_piece / loki_detokenize. */
loki_status lk_tokenize(const lk_vocab *v, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *ids, int32_t cap, int32_t *n_out,
                        loki_error *err);
int32_t lk_token_to_piece(const lk_vocab *v, int32_t prev, int32_t id, bool special,
                          char *buf, int32_t cap);
int64_t lk_detokenize(const lk_vocab *v, const int32_t *ids, int32_t n, bool special,
                      char *buf, int64_t cap);

#endif /* LK_VOCAB_H */
