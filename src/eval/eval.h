/* eval.h - quality evaluations over a loaded model (perplexity). */
#ifndef LK_EVAL_H
#define LK_EVAL_H

#include "core/common.h"

typedef enum lk_ppl_mode {
    LK_PPL_PREFILL = 0, /* one forward pass per window, every row selects k = floor(kf*len) */
    LK_PPL_DECODE = 1,  /* token by token through the KV cache, k = floor(kf*S) */
} lk_ppl_mode;

/* Called after each window with (windows done, windows total). */
typedef void (*lk_progress_fn)(void *ud, int64_t done, int64_t total);

typedef struct lk_ppl_opts {
    int32_t window;          /* tokens per window (>= 2) */
    int64_t max_windows;     /* > 0: stop after this many */
    lk_ppl_mode mode;
    loki_context *ref;       /* not NULL: a dense context run alongside for KL / top-1 */
    bool jaccard;            /* gather the Jaccard similarity per layer */
    lk_progress_fn progress; /* may be NULL */
    void *ud;
} lk_ppl_opts;

#define LK_PPL_MAX_LAYERS 256

typedef struct lk_ppl_result {
    double ppl;         /* exp(mean NLL) */
    double ppl_stderr;  /* ppl * standard error of the mean NLL (delta method) */
    double nll_mean;
    int64_t tokens;     /* scored tokens */
    int64_t windows;
    double kl;          /* with ref: mean KL(dense || method) in nats per scored token */
    double top1;        /* with ref: fraction of scored tokens whose argmax agrees */
    double jaccard;     /* with jaccard: mean over rows and layers */
    double jaccard_layer[LK_PPL_MAX_LAYERS]; /* with jaccard: mean per layer */
    int64_t jaccard_rows;
    double bytes_frac;  /* decode: KV bytes read / what dense attention reads */
} lk_ppl_result;

/* Perplexity of ids (n tokens, BOS already at the start of the text if the
 * model uses one) in non-overlapping windows of o->window tokens; the last
 * window may be shorter. Each window starts from an empty cache; every token
 * after the first of a window is scored. ctx (and o->ref) must have
 * n_ctx >= window and, in prefill mode, n_batch >= window. ctx's attention
 * method is used as set; prefill mode fixes its k per window for the run
 * (the context's own k_fixed is restored after), and Jaccard statistics are
 * gathered only during the call. */
loki_status lk_eval_perplexity(loki_context *ctx, const int32_t *ids, int64_t n, const lk_ppl_opts *o,
                               lk_ppl_result *out, loki_error *err);

/* Normalise line ends in place as Python's text mode reads files
 * ("\r\n" and lone "\r" become "\n"); returns the new length. */
size_t lk_text_universal_newlines(char *s, size_t len);

#endif
