/* eval.h - quality evaluations over a loaded model (perplexity). */
#ifndef LK_EVAL_H
#define LK_EVAL_H

#include "core/common.h"

typedef struct lk_ppl_result {
    double ppl;         /* exp(mean NLL) */
    double ppl_stderr;  /* ppl * standard error of the mean NLL (delta method) */
    double nll_mean;
    int64_t tokens;     /* scored tokens */
    int64_t windows;
} lk_ppl_result;

/* Called after each window with (windows done, windows total). */
typedef void (*lk_progress_fn)(void *ud, int64_t done, int64_t total);

/* Perplexity of ids (n tokens, BOS already at the start of the text if the
 * model uses one) in non-overlapping windows of `window` tokens; the last
 * window may be shorter. Each window is one forward pass from an empty cache;
 * every token after the first of a window is scored. max_windows > 0 stops
 * early. ctx must have n_ctx >= window and n_batch >= window. */
loki_status lk_eval_perplexity(loki_context *ctx, const int32_t *ids, int64_t n, int32_t window,
                               int64_t max_windows, lk_progress_fn progress, void *ud,
                               lk_ppl_result *out, loki_error *err);

/* Normalise line ends in place as Python's text mode reads files
 * ("\r\n" and lone "\r" become "\n"); returns the new length. */
size_t lk_text_universal_newlines(char *s, size_t len);

#endif
