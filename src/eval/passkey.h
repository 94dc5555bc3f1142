/*
 * passkey.h - retrieval evaluations for the attention methods (docs/EVAL.md):
 *
 *   passkey: a random 5-digit key stated in one sentence is hidden at a depth
 *            of book text; the prompt ends "The pass key is" and greedy
 *            decoding must produce the key.
 *   repeat:  a span of book tokens is repeated at the end of a window of the
 *            book; teacher-forced next-token accuracy over the repeat (needs
 *            induction only, no instruction following).
 *
 * Everything goes through the public API (loki_tokenize, loki_eval,
 * loki_get_logits, loki_context_reset); the attention method is whatever the
 * caller set on the context with loki_context_set_attn. Nothing here prints
 * or holds state: randomness comes from an lk_rng the caller passes in.
 */
#ifndef LK_EVAL_PASSKEY_H
#define LK_EVAL_PASSKEY_H

#include "core/common.h"

/* Prompts shorter than this are refused (the fixed text takes ~50 tokens). */
#define LK_RETRIEVAL_MIN_LENGTH 128
/* Default number of greedily generated tokens after a passkey prompt. */
#define LK_PASSKEY_GEN_DEFAULT 8
/* Room for the generated text kept per trial (bytes, incl. NUL). */
#define LK_PASSKEY_OUTPUT_CAP 96

/* splitmix64 generator; the whole state lives in the caller's struct. */
typedef struct lk_rng {
    uint64_t state;
} lk_rng;

/* Generator for one trial, derived from (seed, a, b, c) so that a trial's
 * draws depend only on its own coordinates (length, depth, trial index), not
 * on which other lengths/depths/methods a run includes. */
lk_rng lk_rng_derive(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
/* Next 64 random bits. */
uint64_t lk_rng_next(lk_rng *r);
/* Uniform integer in [0, n) (n >= 1; returns 0 for n <= 1). */
uint64_t lk_rng_below(lk_rng *r, uint64_t n);

/* The book text both evaluations draw from, tokenized once. */
typedef struct lk_haystack {
    const loki_model *model; /* borrowed */
    const char *text;        /* borrowed, universal newlines, valid UTF-8 */
    size_t len;              /* bytes of text */
    int32_t *ids;            /* (n_ids) tokens of the whole text, no BOS; owned */
    int32_t n_ids;
    int32_t bos;             /* BOS id the model prepends, -1 if it adds none */
    int32_t eos;             /* EOS id (-1 if none): greedy decoding stops there */
    double bytes_per_token;  /* len / n_ids */
} lk_haystack;

/* Tokenize `text` (len bytes, newlines already normalised by the caller with
 * lk_text_universal_newlines; must stay alive while h is used). `name` (the
 * file) prefixes error messages. Fails with LOKI_ERR_ARG if the text is
 * empty, has no words or is not valid UTF-8. On success free with
 * lk_haystack_free. */
loki_status lk_haystack_init(const loki_model *model, const char *name, const char *text, size_t len,
                             lk_haystack *h, loki_error *err);
void lk_haystack_free(lk_haystack *h);

/* ---------------------------------------------------------------- passkey */

/* Fixed parts of the passkey prompt (the key sentence is printf'd with the
 * key twice). The prompt text is
 *   INTRO + haystack[s, p) + KEY + haystack[p, e) + QUESTION
 * with single spaces added where a part would otherwise touch a word. */
#define LK_PASSKEY_INTRO \
    "There is an important piece of information hidden inside a lot of irrelevant text. " \
    "Find it and memorize it. I will quiz you about it.\n\n"
#define LK_PASSKEY_KEY_FMT "The pass key is %05d. Remember it. %05d is the pass key."
#define LK_PASSKEY_QUESTION "\n\nWhat is the pass key? The pass key is"

typedef struct lk_passkey_prompt {
    char *text;          /* prompt text, NUL-terminated; owned */
    size_t text_len;
    size_t key_off;      /* byte offset of the key sentence in text */
    int32_t *ids;        /* (n_tokens) BOS (if the model adds one) + tokens of text; owned */
    int32_t n_tokens;    /* actual prompt length: the requested length within a few tokens */
    int32_t key;         /* 10000..99999 */
    int32_t key_pos;     /* token index of the first token of the key sentence (+-1) */
    int32_t hay_tokens;  /* tokens the haystack text adds to the prompt */
    double depth;        /* actual depth: haystack tokens before the key / hay_tokens, in [0, 1] */
    size_t hay_begin;    /* the haystack span used: text bytes [hay_begin, hay_end) of h */
    size_t hay_end;
} lk_passkey_prompt;

/* Build a passkey prompt of `length` tokens (>= LK_RETRIEVAL_MIN_LENGTH)
 * with the key at `depth` in [0, 1] (fraction of the haystack tokens before
 * the key; the key goes to the nearest sentence start, else word start). The
 * haystack span starts at a random sentence of the book; the key and the
 * offset are drawn from rng. LOKI_ERR_RANGE if the book is too short for the
 * length. On success free with lk_passkey_prompt_free. */
loki_status lk_passkey_build(const lk_haystack *h, int32_t length, double depth, lk_rng *rng,
                             lk_passkey_prompt *out, loki_error *err);
void lk_passkey_prompt_free(lk_passkey_prompt *p);

/* The first maximal run of exactly 5 ASCII digits in text[0, len) as a
 * number, or -1 if there is none: " 12345." gives 12345; "1234", "123456"
 * give -1; "7 and 12345" gives 12345. If `final` is not NULL it is set to
 * whether more text could not change the answer (a 5-digit run followed by a
 * non-digit was found). */
int32_t lk_passkey_parse(const char *text, size_t len, bool *final);

typedef struct lk_passkey_trial {
    int32_t key;         /* the hidden key */
    int32_t answer;      /* lk_passkey_parse of the output, -1 if none */
    bool correct;        /* answer == key */
    int32_t n_prompt;    /* actual prompt length in tokens */
    int32_t n_gen;       /* tokens generated */
    double depth;        /* actual depth of the key */
    char output[LK_PASSKEY_OUTPUT_CAP]; /* generated text (truncated), NUL-terminated */
} lk_passkey_trial;

/* One passkey trial on ctx (any attention method; its cache is reset first):
 * build the prompt (lk_passkey_build), evaluate it in one loki_eval, then
 * decode greedily up to max_gen tokens (one loki_eval each; stops at EOS or
 * once the answer is final). ctx needs n_ctx >= length + max_gen + 8. */
loki_status lk_passkey_run(loki_context *ctx, const lk_haystack *h, int32_t length, double depth,
                           int32_t max_gen, lk_rng *rng, lk_passkey_trial *out, loki_error *err);

/* ----------------------------------------------------------------- repeat */

typedef struct lk_repeat_seq {
    int32_t *ids;        /* (n) BOS? + window of the book + the span again; owned */
    int32_t n;           /* == the requested length */
    int32_t span;
    int32_t span_start;  /* index in ids of the span's first occurrence */
    int32_t rep_start;   /* index in ids of the repeat (n - span) */
    int32_t book_offset; /* token offset of the window in h->ids */
} lk_repeat_seq;

/* Build a repeat sequence of exactly `length` tokens: BOS (if the model adds
 * one), a window of length - span (- 1) consecutive book tokens from a random
 * offset, then the `span` tokens that start at `depth` of the window (0: its
 * first tokens, 1: its last ones) repeated. span >= 2 and 2*span < length.
 * LOKI_ERR_RANGE if the book is too short. Free with lk_repeat_seq_free. */
loki_status lk_repeat_build(const lk_haystack *h, int32_t length, double depth, int32_t span, lk_rng *rng,
                            lk_repeat_seq *out, loki_error *err);
void lk_repeat_seq_free(lk_repeat_seq *s);

typedef struct lk_repeat_trial {
    int32_t correct;     /* predictions where argmax == the actual next token */
    int32_t total;       /* span - 1: the repeated tokens after the first */
    int32_t first_correct; /* the same span-1 predictions at the span's first
                              occurrence (no copy possible): the baseline */
    int32_t n_tokens;    /* sequence length */
    int32_t book_offset;
    int32_t span_start;
} lk_repeat_trial;

/* One repeat trial on ctx (cache reset first), teacher-forced: the sequence
 * is evaluated in chunks with all logits only for the span's first
 * occurrence and for the repeat (span rows each); counts argmax == next
 * token over both. ctx needs n_ctx >= length. */
loki_status lk_repeat_run(loki_context *ctx, const lk_haystack *h, int32_t length, double depth, int32_t span,
                          lk_rng *rng, lk_repeat_trial *out, loki_error *err);

#endif
