/*
 * perplexity.c - perplexity over non-overlapping windows, the convention of
 * ../shared/models/fixture-15m/reference/dense-perplexity.json: BOS only at
 * the start of the text, each window evaluated from an empty cache, every
 * token after the first of a window scored by the logits of its predecessor.
 */
#include "eval/eval.h"

#include "engine/engine.h"

#include <math.h>

size_t lk_text_universal_newlines(char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            s[o++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n') i++;
        } else {
            s[o++] = s[i];
        }
    }
    if (o < len) s[o] = '\0';
    return o;
}

/* -log softmax(row)[target], in double for the sum over the vocabulary. */
static double nll_of(const float *row, int32_t V, int32_t target) {
    float m = row[0];
    for (int32_t j = 1; j < V; j++) m = row[j] > m ? row[j] : m;
    double s = 0.0;
    for (int32_t j = 0; j < V; j++) s += exp((double)row[j] - m);
    return log(s) + m - (double)row[target];
}

loki_status lk_eval_perplexity(loki_context *ctx, const int32_t *ids, int64_t n, int32_t window,
                               int64_t max_windows, lk_progress_fn progress, void *ud,
                               lk_ppl_result *out, loki_error *err) {
    if (window < 2) return lk_fail(err, LOKI_ERR_ARG, "perplexity: window must be >= 2, got %d", window);
    if (window > loki_context_n_ctx(ctx))
        return lk_fail(err, LOKI_ERR_ARG, "perplexity: window %d exceeds the context (%d)", window,
                       loki_context_n_ctx(ctx));
    if (n < 2) return lk_fail(err, LOKI_ERR_ARG, "perplexity: the text has fewer than 2 tokens");
    int64_t total = (n + window - 1) / window;
    if (max_windows > 0 && max_windows < total) total = max_windows;
    double sum = 0.0, sum2 = 0.0;
    int64_t count = 0;
    for (int64_t w = 0; w < total; w++) {
        int64_t start = w * window;
        int32_t len = (int32_t)LK_MIN((int64_t)window, n - start);
        if (len < 2) break; /* a 1-token tail scores nothing */
        loki_context_reset(ctx);
        loki_status st = loki_eval(ctx, ids + start, len, true, err);
        if (st) return lk_fail_prefix(err, "perplexity window %lld", (long long)w);
        const float *logits = loki_get_logits(ctx, NULL);
        int32_t V = ctx->hp.n_vocab;
        for (int32_t i = 0; i + 1 < len; i++) {
            double nll = nll_of(logits + (size_t)i * V, V, ids[start + i + 1]);
            sum += nll;
            sum2 += nll * nll;
            count++;
        }
        if (progress) progress(ud, w + 1, total);
    }
    double mean = sum / (double)count;
    double var = count > 1 ? (sum2 - sum * mean) / (double)(count - 1) : 0.0;
    out->nll_mean = mean;
    out->ppl = exp(mean);
    out->ppl_stderr = out->ppl * sqrt(var > 0 ? var / (double)count : 0.0);
    out->tokens = count;
    out->windows = total;
    return LOKI_OK;
}
