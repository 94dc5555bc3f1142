/*
 * perplexity.c - perplexity over non-overlapping windows, the convention of
 * ../shared/models/fixture-15m/reference/dense-perplexity.json: BOS only at
 * the start of the text, each window evaluated from an empty cache, every
 * token after the first of a window scored by the logits of its predecessor.
 */
#include "eval/eval.h"

#include "engine/engine.h"

#include <math.h>
#include <string.h>

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

/* log Σ exp(row) over the vocabulary, in double. */
static double log_sum_exp(const float *row, int32_t V) {
    float m = row[0];
    for (int32_t j = 1; j < V; j++) m = row[j] > m ? row[j] : m;
    double s = 0.0;
    for (int32_t j = 0; j < V; j++) s += exp((double)row[j] - m);
    return log(s) + m;
}

static int32_t argmax(const float *row, int32_t V) {
    int32_t best = 0;
    for (int32_t j = 1; j < V; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

/* KL(p_ref || p) of two logit rows. */
static double kl_of(const float *ref, const float *row, int32_t V) {
    double lr = log_sum_exp(ref, V), l = log_sum_exp(row, V), kl = 0.0;
    for (int32_t j = 0; j < V; j++) {
        double lpr = (double)ref[j] - lr;
        kl += exp(lpr) * (lpr - ((double)row[j] - l));
    }
    return kl > 0.0 ? kl : 0.0;
}

/* Running sums over scored tokens. */
typedef struct ppl_acc {
    double sum, sum2, kl;
    int64_t count, top1;
} ppl_acc;

/* Score one row: logits (V) predicting `target`; ref (V) or NULL. */
static void score_row(ppl_acc *a, const float *logits, const float *ref, int32_t V, int32_t target) {
    double nll = log_sum_exp(logits, V) - (double)logits[target];
    a->sum += nll;
    a->sum2 += nll * nll;
    a->count++;
    if (ref) {
        a->kl += kl_of(ref, logits, V);
        a->top1 += argmax(ref, V) == argmax(logits, V);
    }
}

/* One window through ctx (and ref): prefill = one pass with all logits,
 * decode = one token at a time. */
static loki_status eval_window(const lk_ppl_opts *o, loki_context *ctx, const int32_t *ids, int32_t len,
                               ppl_acc *acc, loki_error *err) {
    const int32_t V = ctx->hp.n_vocab;
    loki_context *ref = o->ref;
    loki_context_reset(ctx);
    if (ref) loki_context_reset(ref);
    if (o->mode == LK_PPL_PREFILL) {
        lk_context_set_k_fixed(ctx, (int32_t)LK_MAX((int64_t)1, lk_attn_fraction(ctx->attn_params.kf, len)));
        loki_status st = loki_eval(ctx, ids, len, true, err);
        if (!st && ref) st = loki_eval(ref, ids, len, true, err);
        if (st) return st;
        const float *lg = loki_get_logits(ctx, NULL), *rl = ref ? loki_get_logits(ref, NULL) : NULL;
        for (int32_t i = 0; i + 1 < len; i++)
            score_row(acc, lg + (size_t)i * V, rl ? rl + (size_t)i * V : NULL, V, ids[i + 1]);
        return LOKI_OK;
    }
    lk_context_set_k_fixed(ctx, ctx->attn_params.k_fixed);
    for (int32_t i = 0; i + 1 < len; i++) {
        loki_status st = loki_eval(ctx, ids + i, 1, false, err);
        if (!st && ref) st = loki_eval(ref, ids + i, 1, false, err);
        if (st) return st;
        score_row(acc, loki_get_logits(ctx, NULL), ref ? loki_get_logits(ref, NULL) : NULL, V, ids[i + 1]);
    }
    return LOKI_OK;
}

loki_status lk_eval_perplexity(loki_context *ctx, const int32_t *ids, int64_t n, const lk_ppl_opts *o,
                               lk_ppl_result *out, loki_error *err) {
    const int32_t window = o->window, L = ctx->hp.n_layer;
    if (window < 2) return lk_fail(err, LOKI_ERR_ARG, "perplexity: window must be >= 2, got %d", window);
    if (window > loki_context_n_ctx(ctx) || (o->ref && window > loki_context_n_ctx(o->ref)))
        return lk_fail(err, LOKI_ERR_ARG, "perplexity: window %d exceeds the context (%d)", window,
                       loki_context_n_ctx(ctx));
    if (n < 2) return lk_fail(err, LOKI_ERR_ARG, "perplexity: the text has fewer than 2 tokens");
    if (o->mode == LK_PPL_PREFILL && ctx->attn_params.dense_prompt && ctx->attn_params.method != LOKI_ATTN_DENSE)
        return lk_fail(err, LOKI_ERR_ARG, "perplexity: --dense-prompt with --mode prefill would score dense attention "
                                          "(prefill mode applies the method to the prompt); use --mode decode or drop it");
    if (o->jaccard && L > LK_PPL_MAX_LAYERS)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "perplexity: --jaccard supports up to %d layers", LK_PPL_MAX_LAYERS);
    int64_t total = (n + window - 1) / window;
    if (n - (total - 1) * window < 2) total--; /* a 1-token tail scores nothing */
    if (o->max_windows > 0 && o->max_windows < total) total = o->max_windows;
    memset(out, 0, sizeof *out);
    ppl_acc acc = {0};
    double jac_sum[LK_PPL_MAX_LAYERS] = {0}, bytes = 0.0, bytes_dense = 0.0;
    int64_t jac_rows[LK_PPL_MAX_LAYERS] = {0};
    lk_attn_set_jaccard(ctx->attn, o->jaccard);
    loki_status st = LOKI_OK;
    for (int64_t w = 0; w < total; w++) {
        int64_t start = w * window;
        int32_t len = (int32_t)LK_MIN((int64_t)window, n - start);
        if ((st = eval_window(o, ctx, ids + start, len, &acc, err))) {
            st = lk_fail_prefix(err, "perplexity window %lld", (long long)w);
            goto done;
        }
        /* statistics are per sequence: collect them before the next reset */
        lk_attn_stats s;
        lk_attn_get_stats(ctx->attn, -1, &s);
        bytes += s.bytes_read;
        bytes_dense += s.bytes_dense;
        for (int l = 0; o->jaccard && l < L; l++) {
            lk_attn_get_stats(ctx->attn, l, &s);
            jac_sum[l] += s.jaccard_sum;
            jac_rows[l] += s.jaccard_rows;
        }
        if (o->progress) o->progress(o->ud, w + 1, total);
    }
    double mean = acc.sum / (double)acc.count;
    double var = acc.count > 1 ? (acc.sum2 - acc.sum * mean) / (double)(acc.count - 1) : 0.0;
    out->nll_mean = mean;
    out->ppl = exp(mean);
    out->ppl_stderr = out->ppl * sqrt(var > 0 ? var / (double)acc.count : 0.0);
    out->tokens = acc.count;
    out->windows = total;
    out->kl = o->ref ? acc.kl / (double)acc.count : 0.0;
    out->top1 = o->ref ? (double)acc.top1 / (double)acc.count : 0.0;
    double js = 0.0;
    for (int l = 0; l < L && o->jaccard; l++) {
        out->jaccard_layer[l] = jac_rows[l] ? jac_sum[l] / (double)jac_rows[l] : 0.0;
        js += jac_sum[l];
        out->jaccard_rows += jac_rows[l];
    }
    out->jaccard = out->jaccard_rows ? js / (double)out->jaccard_rows : 0.0;
    out->bytes_frac = bytes_dense > 0.0 ? bytes / bytes_dense : 0.0;
done: /* the context's own settings again */
    lk_attn_set_jaccard(ctx->attn, false);
    lk_context_set_k_fixed(ctx, ctx->attn_params.k_fixed);
    return st;
}
