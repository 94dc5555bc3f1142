/*
 * sampling.c - the context's own samplers (loki.h, "sampling in the
 * context"): one per sequence, run where the logits are. On the CPU they
 * are loki_samplers over the host logits; on the GPU the backend's device
 * sampler (cuda/lk_cuda_sample.h, a row per sequence) chooses from the
 * logits in GPU memory and only the tokens come back (backend.h:
 * sync_sample). Both record a sampled token in its sequence's history
 * unless it is a stop token, so a loop that stops at one (the CLI) keeps the
 * same history on either device.
 */
#include "engine/engine.h"

#include "sample/sampler.h"

#include <stdlib.h>

_Static_assert(LOKI_SAMPLER_MAX_STOP <= 8, "the GPU sampler holds 8 stop tokens (LK_CUDA_SAMPLER_MAX_STOP)");

static bool on_gpu(const loki_context *ctx) { return ctx->device == LOKI_DEVICE_CUDA; }

/* LOKI_ERR_ARG naming `what` unless the context has samplers. */
static loki_status need_sampler(const loki_context *ctx, const char *what, loki_error *err) {
    if (!ctx->be) return lk_fail(err, LOKI_ERR_ARG, "%s: the context has no backend (its last set_attn failed)", what);
    return ctx->has_smp ? LOKI_OK
                        : lk_fail(err, LOKI_ERR_ARG, "%s: the context has no sampler (loki_context_sampler_init)", what);
}

/* LOKI_ERR_ARG unless every token is in the vocabulary (a recorded token
 * indexes the logits when the repetition penalty is applied). */
static loki_status check_tokens(const loki_context *ctx, const int32_t *t, int32_t n, const char *what,
                                loki_error *err) {
    if (n < 0 || (n > 0 && !t)) return lk_fail(err, LOKI_ERR_ARG, "%s: %d tokens at %p", what, n, (const void *)t);
    for (int32_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= ctx->hp.n_vocab)
            return lk_fail(err, LOKI_ERR_ARG, "%s: token id %d at index %d is outside the vocabulary (0..%d)", what,
                           t[i], i, ctx->hp.n_vocab - 1);
    return LOKI_OK;
}

/* The CPU's sampler of sequence seq, fresh with seed. */
static loki_status cpu_fresh(loki_context *ctx, int32_t seq, uint64_t seed, loki_error *err) {
    loki_sampler_params p = ctx->smp_params;
    p.seed = seed;
    loki_sampler *s = NULL;
    loki_status st = loki_sampler_init(&p, ctx->hp.n_vocab, &s, err);
    if (st) return st;
    loki_sampler_free(ctx->smp[seq]);
    ctx->smp[seq] = s;
    return LOKI_OK;
}

void lk_sampling_free(loki_context *ctx) {
    if (ctx->smp)
        for (int32_t s = 0; s < ctx->n_seq; s++) loki_sampler_free(ctx->smp[s]);
    free(ctx->smp);
    ctx->smp = NULL;
}

/* Every sequence's sampler fresh with ctx->smp_params, and the stop tokens
 * set again (the GPU's sampler is a new one). */
static loki_status start_all(loki_context *ctx, loki_error *err) {
    if (on_gpu(ctx)) {
        loki_status st = lk_backend_cuda_sampler_init(ctx->be, &ctx->smp_params, err);
        return st ? st : lk_backend_cuda_sampler_set_stop(ctx->be, ctx->smp_stop, ctx->n_smp_stop, err);
    }
    if (!ctx->smp && !(ctx->smp = lk_calloc((size_t)ctx->n_seq, sizeof *ctx->smp, err))) return LOKI_ERR_NOMEM;
    for (int32_t s = 0; s < ctx->n_seq; s++) {
        loki_status st = cpu_fresh(ctx, s, ctx->smp_params.seed, err);
        if (st) return st;
    }
    return LOKI_OK;
}

loki_status loki_context_sampler_init(loki_context *ctx, const loki_sampler_params *params, loki_error *err) {
    if (!params) return lk_fail(err, LOKI_ERR_ARG, "sampler: no parameters given");
    loki_status st = lk_sampler_params_check(params, err);
    if (st) return st;
    if (!ctx->be) return lk_fail(err, LOKI_ERR_ARG, "sampler: the context has no backend (its last set_attn failed)");
    ctx->smp_params = *params;
    ctx->n_smp_stop = 0;
    st = start_all(ctx, err);
    ctx->has_smp = st == LOKI_OK; /* on failure the context has no sampler (a half-made set is not used) */
    return st;
}

loki_status lk_sampling_restart(loki_context *ctx, loki_error *err) {
    if (!ctx->has_smp) return LOKI_OK;
    loki_status st = start_all(ctx, err);
    if (st) ctx->has_smp = false; /* a half-made set is not used */
    return st;
}

loki_status loki_context_sampler_reset(loki_context *ctx, uint64_t seed, loki_error *err) {
    loki_status st = need_sampler(ctx, "sampler reset", err);
    if (st) return st;
    return on_gpu(ctx) ? lk_backend_cuda_sampler_reset(ctx->be, ctx->seq, seed, err) : cpu_fresh(ctx, ctx->seq, seed, err);
}

loki_status loki_context_sampler_accept(loki_context *ctx, const int32_t *tokens, int32_t n, loki_error *err) {
    loki_status st = need_sampler(ctx, "sampler accept", err);
    if (st || (st = check_tokens(ctx, tokens, n, "sampler accept", err))) return st;
    if (on_gpu(ctx)) return lk_backend_cuda_sampler_accept(ctx->be, ctx->seq, tokens, n, err);
    for (int32_t i = 0; i < n; i++) loki_sampler_accept(ctx->smp[ctx->seq], tokens[i]);
    return LOKI_OK;
}

loki_status loki_context_sampler_set_stop(loki_context *ctx, const int32_t *stop, int32_t n, loki_error *err) {
    loki_status st = need_sampler(ctx, "sampler stop tokens", err);
    if (st) return st;
    if (n > LOKI_SAMPLER_MAX_STOP)
        return lk_fail(err, LOKI_ERR_ARG, "sampler stop tokens: %d given, at most %d", n, LOKI_SAMPLER_MAX_STOP);
    if ((st = check_tokens(ctx, stop, n, "sampler stop tokens", err))) return st;
    if (on_gpu(ctx) && (st = lk_backend_cuda_sampler_set_stop(ctx->be, stop, n, err))) return st;
    for (int32_t i = 0; i < n; i++) ctx->smp_stop[i] = stop[i];
    ctx->n_smp_stop = n;
    return LOKI_OK;
}

static bool is_stop(const loki_context *ctx, int32_t tok) {
    for (int32_t i = 0; i < ctx->n_smp_stop; i++)
        if (ctx->smp_stop[i] == tok) return true;
    return false;
}

loki_status lk_sampling_finish(loki_context *ctx, const float *logits, float *host, int32_t n_out, int32_t seq0,
                               int32_t *tokens, loki_error *err) {
    lk_backend *be = ctx->be;
    const size_t V = (size_t)ctx->hp.n_vocab;
    if (be->ops->sync_sample) return be->ops->sync_sample(be, tokens, logits, n_out, seq0, err);
    loki_status st = be->ops->sync_read(be, host, logits, (size_t)n_out * V, err);
    if (st) return st;
    for (int32_t r = 0; r < n_out; r++) { /* loki_sampler_sample, then accept unless a stop token */
        loki_sampler *s = ctx->smp[seq0 + r];
        tokens[r] = loki_sampler_sample(s, host + (size_t)r * V);
        if (!is_stop(ctx, tokens[r])) loki_sampler_accept(s, tokens[r]);
    }
    return LOKI_OK;
}
