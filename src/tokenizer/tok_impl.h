/*
 * tok_impl.h - private tables of the tokenizer (struct lk_vocab_impl) and the
 * internal functions shared by the tokenizer's source files. Not for use
 * outside src/tokenizer/.
 */
#ifndef LK_TOK_IMPL_H
#define LK_TOK_IMPL_H

#include "tokenizer/hash.h"
#include "tokenizer/vocab.h"

/* Per-token flags (beside the GGUF token type). */
enum {
    LK_TOKF_LSTRIP = 1, /* special token eats whitespace on its left */
    LK_TOKF_RSTRIP = 2, /* ... and on its right (HF added_tokens, phi-3) */
};

/* How the text of one pre-token word becomes symbols and merges. */
typedef enum lk_merge_mode {
    LK_MERGE_SCORE = 0, /* SPM: merge the pair whose joined piece scores highest */
    LK_MERGE_RANK = 1,  /* BPE: merge the pair with the lowest merge rank */
} lk_merge_mode;

#define LK_MAX_REGEX 8

struct lk_vocab_impl {
    /* token texts: one arena, token i is text[off[i] .. off[i]+len[i]) */
    char *text;
    size_t text_size, text_cap;
    uint32_t *off, *len;
    float *score;
    uint8_t *ttype; /* lk_tok_attr */
    uint8_t *flags; /* LK_TOKF_* */
    lk_strmap tok_map; /* text -> id (first id wins on duplicates) */

    /* merges (LK_MERGE_RANK): key (left id << 32 | right id),
     * value (rank << 32 | result id) */
    lk_u64map merges;
    int64_t n_merges;

    /* token of each raw byte: byte-level BPE: the byte's GPT-2 character;
     * SPM / byte fallback: "<0xHH>"; -1 if the vocabulary lacks it */
    int32_t byte_tok[256];
    /* GPT-2 bytes_to_unicode: byte -> code point, and back (cp < 512) */
    uint16_t byte_cp[256];
    int16_t cp_byte[512];

    /* special/added tokens split out before the model, longest first */
    int32_t *special;
    int32_t n_special;

    /* pre-tokenizer: regexes applied in sequence (BPE only) */
    void *re[LK_MAX_REGEX]; /* pcre2_code_8 * */
    int n_re;

    lk_merge_mode mode;
    bool byte_encode;     /* BPE: map bytes through GPT-2 bytes_to_unicode */
    bool ignore_merges;   /* BPE: a word that is a whole token skips merging */
    bool bpe_prefix_space;/* HF ByteLevel add_prefix_space */
    bool escape_spaces;   /* SPM: ' ' -> U+2581 (false for llama2c) */
    bool llama2c;         /* unknown code points fall back to bytes at once */
};

/* ---- vocab.c: building */
/* Allocate v->impl and the per-token arrays for n tokens (texts empty);
 * `input` (the tokenizer file) names the input in error messages. */
loki_status lk__vocab_alloc(lk_vocab *v, int32_t n, const char *input, loki_error *err);
/* Set token id's text (copied), score and type. */
loki_status lk__vocab_set(lk_vocab *v, int32_t id, const char *s, size_t len, float score,
                          int type, loki_error *err);
/* After all tokens are set: build the text map, byte tokens and the special
 * token list. `what` names the source for error messages. */
loki_status lk__vocab_finish(lk_vocab *v, const char *what, loki_error *err);
/* Add merge "left right" with the given rank (parts looked up as tokens;
 * merges whose parts or result are not tokens can never apply and are
 * skipped). */
loki_status lk__vocab_add_merge(lk_vocab *v, const char *l, size_t ll, const char *r,
                                size_t rl, int64_t rank, loki_error *err);
/* Token text (not NUL-terminated). */
static inline const char *lk__tok_text(const lk_vocab *v, int32_t id, uint32_t *len) {
    *len = v->impl->len[id];
    return v->impl->text + v->impl->off[id];
}

/* ---- unicode.c */
/* Fill byte_cp / cp_byte with GPT-2's bytes_to_unicode. */
void lk__bytes_to_unicode(lk_vocab_impl *im);
/* Encode code point cp as UTF-8 into out (4 bytes room); returns length. */
int lk__utf8_encode(uint32_t cp, char *out);
/* Decode the UTF-8 sequence at s (n bytes left, valid); sets *len. */
uint32_t lk__utf8_decode(const char *s, size_t n, int *len);

/* ---- pretok.c */
/* Compile the regex list for a GGUF pre-tokenizer name; sets ignore_merges
 * and *add_bos_default as llama.cpp does. Unknown name: LOKI_ERR_UNSUPPORTED. */
loki_status lk__pretok_from_name(lk_vocab *v, const char *pre, bool *add_bos_default,
                                 loki_error *err);
/* Append one regex (PCRE2 syntax, UTF + UCP) to the sequence. */
loki_status lk__pretok_add(lk_vocab *v, const char *pattern, loki_error *err);
void lk__pretok_free(lk_vocab_impl *im);

/* Growable list of (offset, length) pieces. */
typedef struct lk_spans {
    size_t *off, *len;
    size_t n, cap;
} lk_spans;
loki_status lk__spans_push(lk_spans *s, size_t off, size_t len, loki_error *err);
void lk__spans_free(lk_spans *s);
/* Split text[0..len) into words with the vocab's regex sequence (matches and
 * the gaps between them both become words, as llama.cpp does); appends to out. */
loki_status lk__pretok_split(const lk_vocab *v, const char *text, size_t len, lk_spans *out,
                             loki_error *err);

/* Growable token list. */
typedef struct lk_ids {
    int32_t *p;
    size_t n, cap;
} lk_ids;
loki_status lk__ids_push(lk_ids *a, int32_t id, loki_error *err);

/* ---- bpe.c / spm.c: tokenize one raw text fragment (no specials), append */
loki_status lk__bpe_fragment(const lk_vocab *v, const char *text, size_t len, lk_ids *out,
                             loki_error *err);
loki_status lk__spm_fragment(const lk_vocab *v, const char *text, size_t len, bool prefix_space,
                             lk_ids *out, loki_error *err);
/* HF SentencePiece-style BPE (LK_MERGE_RANK on raw UTF-8 with U+2581 for
 * spaces): merges by rank over the whole escaped fragment, unknown characters
 * fall back to <0xHH> byte tokens. Called by lk__spm_fragment. */
loki_status lk__bpe_rank_spm(const lk_vocab *v, const char *text, size_t len, lk_ids *out,
                             loki_error *err);

#endif /* LK_TOK_IMPL_H */
