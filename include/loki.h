/*
 * loki.h - public C API of the loki inference engine.
 *
 * Contract for every function returning loki_status:
 *   - LOKI_OK on success; on failure a non-zero status, and if `err` is not
 *     NULL, err->msg holds a human-readable message naming the file/argument
 *     and the problem. Output pointers are left untouched on failure.
 *   - The library never prints to stdout and never calls exit().
 *   - No global state: every call works on the handles passed to it.
 */
#ifndef LOKI_H
#define LOKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum loki_status {
    LOKI_OK = 0,
    LOKI_ERR_IO,          /* file missing, unreadable, short read */
    LOKI_ERR_FORMAT,      /* malformed file contents */
    LOKI_ERR_UNSUPPORTED, /* valid but not supported (architecture, dtype) */
    LOKI_ERR_ARG,         /* bad argument from the caller */
    LOKI_ERR_NOMEM,       /* allocation failed */
    LOKI_ERR_RANGE,       /* value out of range (context full, buffer small) */
    LOKI_ERR_INTERRUPTED, /* stopped on request (SIGINT/SIGTERM): nothing was written */
} loki_status;

/* Caller-owned error sink; filled on failure. */
typedef struct loki_error {
    loki_status status;
    char msg[1024];
} loki_error;

/* Name of a status code ("ok", "io error", ...). */
const char *loki_status_str(loki_status s);

/* ---------------------------------------------------------------- model */

typedef struct loki_model loki_model;

typedef struct loki_model_params {
    /* Tokenizer file for formats that keep it apart (llama2.c tok*.bin);
     * NULL: look beside the model (tokenizer.bin / tok*.bin) if needed. */
    const char *tokenizer_path;
} loki_model_params;

typedef struct loki_model_info {
    const char *arch;      /* "llama", "qwen2", ... */
    const char *format;    /* "gguf", "hf", "llama2c" */
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int64_t n_params;
    int64_t weight_bytes;  /* bytes of all weight tensors as stored */
    int32_t bos_id;        /* -1 if none */
    int32_t eos_id;        /* -1 if none */
} loki_model_info;

/* Open a model: a GGUF file, a Hugging Face directory, or a llama2.c .bin.
 * Weights are memory-mapped and used in their file dtype. */
loki_status loki_model_open(const char *path, const loki_model_params *params,
                            loki_model **out, loki_error *err);
void loki_model_close(loki_model *model);
void loki_model_get_info(const loki_model *model, loki_model_info *info);

/* ------------------------------------------------------------ tokenizer */

/* Tokenize `len` bytes of UTF-8 `text` (invalid UTF-8 is an error).
 * add_bos: prepend BOS if the model's files say the model adds it.
 * parse_special: match special/added tokens written in the text.
 * Writes up to `cap` ids to `ids`; *n_out receives the number of ids the
 * text needs. If that exceeds cap, returns LOKI_ERR_RANGE (ids partly written). */
loki_status loki_tokenize(const loki_model *model, const char *text, size_t len,
                          bool add_bos, bool parse_special, int32_t *ids,
                          int32_t cap, int32_t *n_out, loki_error *err);

/* Bytes of one token as text (byte-level / byte-fallback decoded). `prev` is
 * the previous token id (or -1); a SentencePiece leading space is dropped
 * after BOS as llama.cpp and llama2.c do. Control tokens give "" unless
 * `special` is true. Returns the number of bytes the piece needs (may exceed
 * cap, in which case buf holds a truncated piece), or -1 for an invalid id. */
int32_t loki_token_to_piece(const loki_model *model, int32_t prev, int32_t id,
                            bool special, char *buf, int32_t cap);

/* Detokenize ids into buf (NUL-terminated if room); returns bytes needed
 * (excluding NUL) or -1 for an invalid id. Special tokens are skipped unless
 * `special`. The inverse of loki_tokenize(add_bos=true) for lossless vocabularies. */
int64_t loki_detokenize(const loki_model *model, const int32_t *ids, int32_t n,
                        bool special, char *buf, int64_t cap);

/* ------------------------------------------------------------- context */

typedef struct loki_context loki_context;

/* Element type of the CPU KV cache (docs/ATTENTION.md, "KV cache types").
 * LOKI_KV_DEFAULT (0, what a zeroed struct holds) is the fastest 16-bit type
 * on this build's CPU, loki_kv_type_default(). q8_0: blocks of 32 values
 * along each stored row sharing an fp16 scale (a short last block when the
 * row length is not a multiple of 32). */
typedef enum loki_kv_type {
    LOKI_KV_DEFAULT = 0,
    LOKI_KV_F32,
    LOKI_KV_F16,
    LOKI_KV_BF16,
    LOKI_KV_Q8_0,
} loki_kv_type;

#define LOKI_KV_TYPE_NAMES "f32, f16, bf16, q8_0"
const char *loki_kv_type_name(loki_kv_type t); /* "f32" ..; DEFAULT resolves */
/* Parse "f32", "f16", "bf16", "q8_0"; -1 if unknown. */
int loki_kv_type_parse(const char *name);
loki_kv_type loki_kv_type_default(void); /* never LOKI_KV_DEFAULT */

/* Largest context loki_context_init allocates when n_ctx = 0: the model's
 * trained length, capped here (a 128k-token model would otherwise allocate
 * tens of GB of KV cache up front); pass n_ctx explicitly for more. */
#define LOKI_DEFAULT_MAX_CTX 8192

/* Where a context runs its forward pass. CUDA keeps the weights, the
 * activations and the KV cache on GPU 0 (docs/GPU.md). */
typedef enum loki_device {
    LOKI_DEVICE_CPU = 0,
    LOKI_DEVICE_CUDA = 1,
    LOKI_DEVICE_AUTO = 2, /* CUDA when a GPU is present and runs the model, else the CPU */
} loki_device;

/* Which Loki decode steps on the GPU run score, select, attend and merge as
 * one kernel (loki_fused.cu, docs/GPU.md) instead of the separate stages,
 * when its clusters fit the GPU well (else the stages run). */
typedef enum loki_cuda_fused {
    LOKI_CUDA_FUSED_DEFAULT = 0,  /* the build's choice (LOKI_CUDA_FUSED_MHA) */
    LOKI_CUDA_FUSED_OFF = 1,      /* always the separate stages */
    LOKI_CUDA_FUSED_MHA = 2,      /* one query head per KV head (measured faster on an H200) */
    LOKI_CUDA_FUSED_PER_HEAD = 3, /* every per-head selection, grouped-query models too */
    LOKI_CUDA_FUSED_ALL = 4,      /* per-head and the summed --gqa-shared selection (not --gqa-max) */
} loki_cuda_fused;

typedef struct loki_context_params {
    int32_t n_ctx;     /* KV cache length in tokens; 0 = the model's trained length capped at
                          LOKI_DEFAULT_MAX_CTX */
    int32_t n_threads; /* compute threads; 0 = number of online CPUs */
    int32_t n_batch;   /* max tokens per forward pass in prompt processing */
    loki_kv_type type_k, type_v; /* KV cache element types (LOKI_KV_DEFAULT: loki_kv_type_default()) */
    loki_device device; /* LOKI_DEVICE_CPU (the default here), LOKI_DEVICE_CUDA, or LOKI_DEVICE_AUTO
                           (what the CLI uses: loki_context_device tells what was chosen) */
    int32_t n_seq;      /* sequences the context holds, each of up to n_ctx tokens (0 = 1); more
                           than one needs LOKI_DEVICE_CUDA (loki_context_set_seq, loki_decode_batch) */
    bool no_cuda_graphs;/* CUDA: launch every kernel of a decode step instead of replaying
                           captured graphs (for measurements) */
    loki_cuda_fused cuda_fused; /* CUDA: which Loki decode steps run as one fused kernel
                           (for measurements; 0 = the default) */
    int32_t cuda_weight_prefetch_mib; /* CUDA: MiB of weights each one-row decode product asks L2 for
                           before the kernel before it has ended (lk_cuda_mm_set_prefetch;
                           0..LOKI_MAX_WEIGHT_PREFETCH_MIB, 0 = none, the default) */
} loki_context_params;

/* Largest loki_context_params.cuda_weight_prefetch_mib (an H200's L2 holds 60 MB). */
#define LOKI_MAX_WEIGHT_PREFETCH_MIB 64

/* True when this build has the CUDA backend and a usable GPU (compute
 * capability 9.0 or newer) is present. */
bool loki_cuda_available(void);

loki_context_params loki_context_default_params(void);

loki_status loki_context_init(loki_model *model, const loki_context_params *params,
                              loki_context **out, loki_error *err);
void loki_context_free(loki_context *ctx);

/* Evaluate `n` tokens appended at the current position (batched internally
 * by n_batch). If all_logits, logits for every one of the n tokens are kept
 * (n, n_vocab); otherwise only for the last token. Fails with LOKI_ERR_RANGE
 * (nothing evaluated) if the tokens do not fit in the context. */
loki_status loki_eval(loki_context *ctx, const int32_t *tokens, int32_t n,
                      bool all_logits, loki_error *err);

/* Logits of the last loki_eval: (n_rows, n_vocab) row-major float32, where
 * n_rows is n if all_logits else 1. Valid until the next call on ctx. */
const float *loki_get_logits(const loki_context *ctx, int32_t *n_rows);

/* Sequences: a context holds n_seq of them (loki_context_params). loki_eval,
 * loki_context_pos and loki_context_reset act on the current one (0 at
 * init); set_seq changes it (LOKI_ERR_ARG outside 0..n_seq-1). */
loki_status loki_context_set_seq(loki_context *ctx, int32_t seq, loki_error *err);
int32_t loki_context_seq(const loki_context *ctx);

/* One decode step of sequences 0..n-1 together (n <= n_seq and n_batch):
 * tokens[s] is appended to sequence s, and the logits of the n rows (n,
 * n_vocab) are what loki_get_logits returns, row s for sequence s. Each
 * sequence gives what it would give decoded alone (on the GPU: one batched
 * step over the paged cache). LOKI_ERR_RANGE (nothing evaluated) when a
 * sequence is full. */
loki_status loki_decode_batch(loki_context *ctx, const int32_t *tokens, int32_t n, loki_error *err);

/* The device the context runs on (never LOKI_DEVICE_AUTO). When AUTO fell
 * back to the CPU although a GPU is present, *why (may be NULL) is the
 * GPU backend's error, else NULL; valid while ctx lives. */
loki_device loki_context_device(const loki_context *ctx, const char **why);

int32_t loki_context_pos(const loki_context *ctx);   /* tokens in the cache */
int32_t loki_context_n_ctx(const loki_context *ctx);
/* Bytes of the context's KV cache (keys + values, all layers, n_ctx tokens). */
int64_t loki_context_kv_bytes(const loki_context *ctx);
void loki_context_reset(loki_context *ctx);          /* empty the current sequence's KV cache */

/* ----------------------------------------------------------- attention */

/* How each query row attends over the KV cache (docs/ATTENTION.md).
 * Every method scores, selects, then attends; dense selects everything. */
typedef enum loki_attn_method {
    LOKI_ATTN_DENSE = 0,      /* exact softmax attention over all cached tokens */
    LOKI_ATTN_EXACT_TOPK = 1, /* oracle: top-k of the exact scores */
    LOKI_ATTN_LOKI = 2,       /* top-k of low-rank PCA scores, exact attention on them */
    LOKI_ATTN_PCAATTN = 3,    /* softmax over the low-rank scores of all tokens */
    LOKI_ATTN_H2O = 4,        /* heavy hitters (accumulated attention) + recent window */
} loki_attn_method;

typedef enum loki_pca_basis {
    LOKI_BASIS_PRE = 0,  /* PCA of keys before RoPE */
    LOKI_BASIS_POST = 1, /* PCA of keys after RoPE */
} loki_pca_basis;

/* PCA bases of a model's keys, written by `loki calibrate` (docs/PCA.md). */
typedef struct loki_pca loki_pca;

/* Load a PCA file. If model is not NULL the file must have been calibrated
 * on that model (same weights fingerprint and shape), else LOKI_ERR_ARG with
 * a message naming the file. */
loki_status loki_pca_load(const char *path, const loki_model *model, loki_pca **out,
                          loki_error *err);
void loki_pca_free(loki_pca *pca);

typedef struct loki_attn_params {
    loki_attn_method method;
    float kf;             /* selected fraction of the S cached tokens, (0, 1]: k = max(1, floor(kf*S)) */
    float df;             /* low-rank fraction of head_dim, (0, 1]: d = max(1, round(df*D)) */
    int32_t d;            /* > 0: reduced dimension (overrides df), <= head_dim */
    float dvar;           /* > 0: d per layer and KV head = Rank at this explained-variance
                             fraction (0, 1] of the PCA (overrides d and df) */
    const loki_pca *pca;  /* required by loki and pcaattn; borrowed, must outlive the context */
    loki_pca_basis basis;
    /* beyond the paper (0 / false = off) */
    int32_t k_min;        /* k = max(k_min, floor(kf*S)) */
    int32_t dense_below;  /* dense attention while S < dense_below */
    int32_t sinks;        /* the first `sinks` tokens are always attended */
    int32_t recent;       /* the last `recent` tokens are always attended */
    bool gqa_shared;      /* one selection per KV head from its query heads' summed scores */
    bool gqa_max;         /* with gqa_shared: rank by the largest head-relative score instead */
    float evict_kf;       /* > 0: H2O eviction keeps evict_kf*S tokens; the method selects among them */
    int32_t k_fixed;      /* > 0: every query row selects k_fixed tokens (the paper's
                             prefill-mask evaluation); rows with fewer keys attend all */
    bool dense_prompt;    /* prompt blocks (several rows of one sequence) attend densely
                             (exact, over the same cache layout); decode steps use the
                             method. Not with h2o, --evict-kf or k_fixed */
} loki_attn_params;

loki_attn_params loki_attn_default_params(void); /* dense */
const char *loki_attn_method_name(loki_attn_method m);
/* Parse "dense", "exact-topk", "loki", "pcaattn", "h2o"; -1 if unknown. */
int loki_attn_method_parse(const char *name);

/* Check params against a model (ranges, PCA shape); message names the option. */
loki_status loki_attn_validate(const loki_attn_params *p, const loki_model *model, loki_error *err);

/* Switch the attention method of a context. Empties the KV cache (keys are
 * stored rotated for loki/pcaattn, so the cache must be refilled). */
loki_status loki_context_set_attn(loki_context *ctx, const loki_attn_params *p, loki_error *err);

/* ------------------------------------------------------------- sampler */

typedef struct loki_sampler loki_sampler;

typedef struct loki_sampler_params {
    float temp;           /* <= 0: greedy (argmax) */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;/* window of recent tokens penalised */
    uint64_t seed;
} loki_sampler_params;

loki_sampler_params loki_sampler_default_params(void);
loki_status loki_sampler_init(const loki_sampler_params *params, int32_t n_vocab,
                              loki_sampler **out, loki_error *err);
void loki_sampler_free(loki_sampler *s);
/* Choose the next token from logits (n_vocab); does not modify logits. */
int32_t loki_sampler_sample(loki_sampler *s, const float *logits);
/* Record a token (prompt or generated) in the repetition-penalty history. */
void loki_sampler_accept(loki_sampler *s, int32_t token);

/* ------------------------------------------------ sampling in the context */

/* A context can choose each next token itself, where its logits are: on the
 * GPU the logits stay in GPU memory and only the chosen tokens come back (4
 * bytes a sequence). Every sequence of the context has its own sampler state
 * (generator and repetition history); all share the parameters. The choice
 * is loki_sampler's for the same parameters, seed, recorded tokens and
 * logits (on the CPU the same code; on the GPU the same decisions, bit for
 * bit: docs/GPU.md "Sampling on the GPU" says where that could fail). */

/* Most stop tokens a context's sampler holds (loki_context_sampler_set_stop). */
#define LOKI_SAMPLER_MAX_STOP 8

/* Give the context samplers with params (checked as loki_sampler_init
 * checks them): every sequence's starts fresh, seeded with params->seed,
 * with an empty history and no stop tokens. Called again, it replaces them;
 * on failure the context has none. loki_context_set_attn restarts them the same way (it empties every
 * sequence; should that restart fail, the new method is in place and the context has no sampler);
 * loki_context_reset leaves them as they are. */
loki_status loki_context_sampler_init(loki_context *ctx, const loki_sampler_params *params, loki_error *err);

/* The current sequence's sampler starts fresh, seeded with seed. */
loki_status loki_context_sampler_reset(loki_context *ctx, uint64_t seed, loki_error *err);

/* Record n tokens in the current sequence's history, as n calls of
 * loki_sampler_accept (the prompt, or text fed outside the decode loop;
 * sampled tokens are recorded by the sampling calls themselves). */
loki_status loki_context_sampler_accept(loki_context *ctx, const int32_t *tokens, int32_t n, loki_error *err);

/* Tokens that end generation (end of text, end of turn; 0..LOKI_SAMPLER_MAX_STOP,
 * all sequences): when one is sampled it is returned but not recorded in the
 * history, as a loop does that stops before loki_sampler_accept on it. */
loki_status loki_context_sampler_set_stop(loki_context *ctx, const int32_t *stop, int32_t n, loki_error *err);

/* loki_eval of n tokens (of the current sequence), then *next = the token
 * its sampler chooses from the logits of the last one, recorded in its
 * history unless a stop token. The logits are not kept: loki_get_logits
 * gives 0 rows until the next loki_eval or loki_decode_batch. LOKI_ERR_ARG
 * (nothing evaluated) without loki_context_sampler_init. */
loki_status loki_eval_sample(loki_context *ctx, const int32_t *tokens, int32_t n, int32_t *next, loki_error *err);

/* loki_decode_batch, then next[s] (n) = the token sequence s's sampler
 * chooses from row s of the logits (recorded as in loki_eval_sample; the
 * logits are not kept either). */
loki_status loki_decode_batch_sample(loki_context *ctx, const int32_t *tokens, int32_t n, int32_t *next,
                                     loki_error *err);

#ifdef __cplusplus
}
#endif
#endif /* LOKI_H */
