/*
 * context.c - loki_context: allocation of the KV cache and activation buffers
 * (once, at init), batching of loki_eval into forward passes, logits access.
 */
#include "engine/engine.h"

#include "cuda/lk_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N_BATCH 512

loki_context_params loki_context_default_params(void) {
    loki_context_params p = {.n_ctx = 0, .n_threads = 0, .n_batch = DEFAULT_N_BATCH, .type_k = LOKI_KV_DEFAULT,
                             .type_v = LOKI_KV_DEFAULT};
    return p;
}

static float *alloc_f32(size_t n, loki_error *err) { return lk_alloc_aligned(n * sizeof(float), err); }

/* Free the activation buffers and the backend that owns them. */
static void drop_backend(loki_context *c) {
    if (!c->be) return;
    float **bufs[] = {&c->x, &c->xb, &c->q, &c->k, &c->v, &c->att, &c->hb, &c->hb2};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        c->be->ops->free(c->be, *bufs[i]);
        *bufs[i] = NULL;
    }
    lk_backend_free(c->be);
    c->be = NULL;
}

/* Create the context's backend for its device and current attention method
 * (the GPU's cache layout follows the method) and the activation buffers in
 * its memory, for n_batch rows. */
static loki_status make_backend(loki_context *c, loki_error *err) {
    const lk_hparams *hp = &c->hp;
    const size_t B = (size_t)c->n_batch, E = (size_t)hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim,
                 KD = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    loki_status st = c->device == LOKI_DEVICE_CUDA
                         ? lk_backend_cuda_init(&c->be, c->model, &c->attn_params, lk_attn_rotation(c->attn), c->n_ctx,
                                                c->n_seq, c->n_batch, &c->calib, err)
                         : lk_backend_cpu_init(&c->be, c->model, c->cpu, &c->kv, &c->attn, &c->calib, err);
    if (st) return st;
    if (c->device == LOKI_DEVICE_CUDA && c->no_graphs) lk_backend_cuda_set_graphs(c->be, false);
    if (c->device == LOKI_DEVICE_CUDA) {
        lk_backend_cuda_set_fused(c->be, c->fused);
        lk_backend_cuda_set_weight_prefetch(c->be, (size_t)c->wpf_mib << 20);
    }
    lk_backend *be = c->be;
    struct {
        float **p;
        size_t n;
        const char *what;
    } bufs[] = {{&c->x, B * E, "x"},     {&c->xb, B * E, "xb"},    {&c->q, B * QD, "q"},
                {&c->k, B * KD, "k"},    {&c->v, B * KD, "v"},     {&c->att, B * QD, "att"},
                {&c->hb, B * F, "hb"},   {&c->hb2, B * F, "hb2"}};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i].p = be->ops->alloc(be, bufs[i].n, bufs[i].what, err))) {
            drop_backend(c);
            return lk_fail_prefix(err, "activations of a context of %d tokens", c->n_ctx);
        }
    return LOKI_OK;
}

bool loki_cuda_available(void) { return lk_cuda_usable(); }

/* The CPU-side state for the context's device: the KV cache and attention
 * method of n_ctx tokens on the CPU; on the GPU (which has its own cache)
 * one token's worth, kept for the method's PCA rotations. */
static loki_status make_cpu_state(loki_context *c, const loki_context_params *params, loki_error *err) {
    const lk_hparams *hp = &c->hp;
    const bool gpu = c->device == LOKI_DEVICE_CUDA;
    const int32_t n_ctx = gpu ? 1 : c->n_ctx, B = gpu ? 1 : c->n_batch;
    const int64_t max_dim = LK_MAX(LK_MAX(hp->n_embd, (int64_t)hp->n_head * hp->head_dim), LK_MAX(hp->n_ff, hp->n_vocab));
    loki_status st;
    if ((st = lk_cpu_init(&c->cpu, c->n_threads, B, max_dim, err))) return st;
    if ((st = lk_kv_init(&c->kv, hp->n_layer, hp->n_head_kv, hp->head_dim, n_ctx, params->type_k, params->type_v, err)))
        return st;
    return lk_attn_init(&c->attn, hp, &c->attn_params, n_ctx, B, c->n_threads, &c->kv, err);
}

static void free_cpu_state(loki_context *c) {
    lk_attn_free(c->attn);
    c->attn = NULL;
    lk_kv_free(&c->kv);
    lk_cpu_free(c->cpu);
    c->cpu = NULL;
}

loki_status loki_context_init(loki_model *model, const loki_context_params *params,
                              loki_context **out, loki_error *err) {
    const lk_hparams *hp = &model->hp;
    if (params->n_ctx < 0) return lk_fail(err, LOKI_ERR_ARG, "-c/--ctx-size must be >= 0, got %d", params->n_ctx);
    if (params->n_threads < 0)
        return lk_fail(err, LOKI_ERR_ARG, "-t/--threads must be >= 0, got %d", params->n_threads);
    if (params->n_batch < 0) return lk_fail(err, LOKI_ERR_ARG, "-b/--batch-size must be >= 0, got %d", params->n_batch);
    if (params->n_seq < 0 || params->n_seq > 4096)
        return lk_fail(err, LOKI_ERR_ARG, "n_seq (sequences) must be in 0..4096, got %d", params->n_seq);
    if ((unsigned)params->device > LOKI_DEVICE_AUTO)
        return lk_fail(err, LOKI_ERR_ARG, "--device: unknown device %d", (int)params->device);
    if ((unsigned)params->cuda_fused > LOKI_CUDA_FUSED_ALL)
        return lk_fail(err, LOKI_ERR_ARG, "cuda_fused (--fused): unknown mode %d (a loki_cuda_fused)",
                       (int)params->cuda_fused);
    if (params->cuda_weight_prefetch_mib < 0 || params->cuda_weight_prefetch_mib > LOKI_MAX_WEIGHT_PREFETCH_MIB)
        return lk_fail(err, LOKI_ERR_ARG, "cuda_weight_prefetch_mib (--weight-prefetch): %d MiB, outside 0..%d",
                       (int)params->cuda_weight_prefetch_mib, LOKI_MAX_WEIGHT_PREFETCH_MIB);
    loki_context *c = lk_calloc(1, sizeof(*c), err);
    if (!c) return LOKI_ERR_NOMEM;
    c->model = model;
    c->hp = *hp;
    /* n_ctx 0: the trained length, at most LOKI_DEFAULT_MAX_CTX (the cache
     * is allocated up front; loki_context_n_ctx tells what was chosen) */
    c->n_ctx = params->n_ctx > 0 ? params->n_ctx : LK_MIN(hp->n_ctx_train, LOKI_DEFAULT_MAX_CTX);
    if (c->n_ctx <= 0) c->n_ctx = 2048;
    c->n_threads = params->n_threads > 0 ? params->n_threads : lk_n_cpus();
    c->n_batch = params->n_batch > 0 ? params->n_batch : DEFAULT_N_BATCH;
    if (c->n_batch > c->n_ctx) c->n_batch = c->n_ctx;
    c->n_seq = params->n_seq > 0 ? params->n_seq : 1;
    c->no_graphs = params->no_cuda_graphs;
    c->fused = params->cuda_fused;
    c->wpf_mib = params->cuda_weight_prefetch_mib;
    c->attn_params = loki_attn_default_params();
    loki_status st;
    if (!(c->seq_pos = lk_calloc((size_t)c->n_seq, sizeof(int32_t), err))) {
        st = LOKI_ERR_NOMEM;
        goto fail;
    }
    c->device = params->device == LOKI_DEVICE_AUTO ? (lk_cuda_usable() ? LOKI_DEVICE_CUDA : LOKI_DEVICE_CPU)
                                                   : params->device;
    if (c->device == LOKI_DEVICE_CUDA) { /* AUTO falls back to the CPU when the GPU cannot run the model */
        st = make_cpu_state(c, params, err);
        if (!st) st = make_backend(c, err);
        if (st && params->device == LOKI_DEVICE_AUTO && st != LOKI_ERR_ARG) {
            snprintf(c->device_note, sizeof c->device_note, "%.255s", err ? err->msg : "the CUDA backend failed");
            free_cpu_state(c);
            c->device = LOKI_DEVICE_CPU;
        } else if (st) {
            goto fail;
        }
    }
    if (c->device == LOKI_DEVICE_CPU) {
        if (c->n_seq > 1) {
            st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%d sequences in one context need the CUDA backend (--device cuda)",
                         c->n_seq);
            goto fail;
        }
        if ((st = make_cpu_state(c, params, err)) || (st = make_backend(c, err))) goto fail;
    }
    c->logits_cap = 1;
    if (!(c->positions = lk_calloc((size_t)c->n_batch, sizeof(int32_t), err)) ||
        !(c->row_seq = lk_calloc((size_t)c->n_batch, sizeof(int32_t), err)) ||
        !(c->logits = alloc_f32((size_t)hp->n_vocab, err))) {
        st = lk_fail_prefix(err, "context of %d tokens", c->n_ctx);
        goto fail;
    }
    *out = c;
    return LOKI_OK;
fail:
    loki_context_free(c);
    return st;
}

void loki_context_free(loki_context *c) {
    if (!c) return;
    drop_backend(c);
    free_cpu_state(c);
    lk_sampling_free(c);
    free(c->positions);
    free(c->row_seq);
    free(c->seq_pos);
    lk_free_aligned(c->logits);
    free(c);
}

/* Grow the logits rows to `rows` (contents not kept). */
static loki_status reserve_logits(loki_context *ctx, int32_t rows, loki_error *err) {
    if (rows <= ctx->logits_cap) return LOKI_OK;
    float *l = alloc_f32((size_t)rows * ctx->hp.n_vocab, err);
    if (!l) return LOKI_ERR_NOMEM;
    lk_free_aligned(ctx->logits);
    ctx->logits = l;
    ctx->logits_cap = rows;
    return LOKI_OK;
}

/* loki_eval, and with sampled not NULL loki_eval_sample: the last chunk's
 * pass samples *sampled from its last row instead of keeping the logits. */
static loki_status eval_rows(loki_context *ctx, const int32_t *tokens, int32_t n, bool all_logits, int32_t *sampled,
                             loki_error *err) {
    const int32_t V = ctx->hp.n_vocab;
    if (n <= 0) return lk_fail(err, LOKI_ERR_ARG, "eval: no tokens given");
    const int32_t pos = ctx->seq_pos[ctx->seq];
    if (pos + (int64_t)n > ctx->n_ctx)
        return lk_fail(err, LOKI_ERR_RANGE,
                       "%d tokens do not fit in the context: %d of %d positions used (raise -c)",
                       n, pos, ctx->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lk_fail(err, LOKI_ERR_ARG, "token id %d at index %d is outside the vocabulary (0..%d)",
                           tokens[i], i, V - 1);
    int32_t rows = all_logits ? n : 1;
    loki_status rs = reserve_logits(ctx, rows, err);
    if (rs) return rs;
    ctx->n_logits = 0;
    for (int32_t i = 0; i < n; i += ctx->n_batch) {
        int32_t nb = LK_MIN(ctx->n_batch, n - i);
        int32_t *smp = i + nb == n ? sampled : NULL; /* the last chunk's last row */
        /* without all_logits every chunk writes row 0; the last chunk's stays */
        loki_status st = all_logits ? lk_forward(ctx, tokens + i, nb, false, ctx->logits + (size_t)i * V, nb, NULL, err)
                                    : lk_forward(ctx, tokens + i, nb, false, ctx->logits, 1, smp, err);
        if (st) return st;
    }
    ctx->n_logits = sampled ? 0 : rows;
    return LOKI_OK;
}

loki_status loki_eval(loki_context *ctx, const int32_t *tokens, int32_t n, bool all_logits, loki_error *err) {
    return eval_rows(ctx, tokens, n, all_logits, NULL, err);
}

loki_status loki_eval_sample(loki_context *ctx, const int32_t *tokens, int32_t n, int32_t *next, loki_error *err) {
    if (!ctx->has_smp) return lk_fail(err, LOKI_ERR_ARG, "eval_sample: the context has no sampler (loki_context_sampler_init)");
    if (!next) return lk_fail(err, LOKI_ERR_ARG, "eval_sample: no place for the sampled token (next is NULL)");
    return eval_rows(ctx, tokens, n, false, next, err);
}

const float *loki_get_logits(const loki_context *ctx, int32_t *n_rows) {
    if (n_rows) *n_rows = ctx->n_logits;
    return ctx->logits;
}

/* loki_decode_batch, and with sampled not NULL loki_decode_batch_sample. */
static loki_status decode_rows(loki_context *ctx, const int32_t *tokens, int32_t n, int32_t *sampled,
                               loki_error *err) {
    const int32_t V = ctx->hp.n_vocab;
    if (n < 1 || n > ctx->n_seq || n > ctx->n_batch)
        return lk_fail(err, LOKI_ERR_ARG, "decode batch: %d sequences, the context holds %d (batch size %d)", n,
                       ctx->n_seq, ctx->n_batch);
    for (int32_t s = 0; s < n; s++) {
        if (tokens[s] < 0 || tokens[s] >= V)
            return lk_fail(err, LOKI_ERR_ARG, "token id %d of sequence %d is outside the vocabulary (0..%d)", tokens[s],
                           s, V - 1);
        if (ctx->seq_pos[s] >= ctx->n_ctx)
            return lk_fail(err, LOKI_ERR_RANGE, "sequence %d is full: %d of %d positions used (raise -c)", s,
                           ctx->seq_pos[s], ctx->n_ctx);
    }
    loki_status st = reserve_logits(ctx, n, err);
    if (!st) st = lk_forward(ctx, tokens, n, true, ctx->logits, n, sampled, err);
    ctx->n_logits = st || sampled ? 0 : n;
    return st;
}

loki_status loki_decode_batch(loki_context *ctx, const int32_t *tokens, int32_t n, loki_error *err) {
    return decode_rows(ctx, tokens, n, NULL, err);
}

loki_status loki_decode_batch_sample(loki_context *ctx, const int32_t *tokens, int32_t n, int32_t *next,
                                     loki_error *err) {
    if (!ctx->has_smp)
        return lk_fail(err, LOKI_ERR_ARG, "decode_batch_sample: the context has no sampler (loki_context_sampler_init)");
    if (!next) return lk_fail(err, LOKI_ERR_ARG, "decode_batch_sample: no place for the sampled tokens (next is NULL)");
    return decode_rows(ctx, tokens, n, next, err);
}

loki_status loki_context_set_seq(loki_context *ctx, int32_t seq, loki_error *err) {
    if (seq < 0 || seq >= ctx->n_seq)
        return lk_fail(err, LOKI_ERR_ARG, "sequence %d outside the context's 0..%d", seq, ctx->n_seq - 1);
    ctx->seq = seq;
    return LOKI_OK;
}

int32_t loki_context_seq(const loki_context *ctx) { return ctx->seq; }

loki_device loki_context_device(const loki_context *ctx, const char **why) {
    if (why) *why = ctx->device_note[0] ? ctx->device_note : NULL;
    return ctx->device;
}

int32_t loki_context_pos(const loki_context *ctx) { return ctx->seq_pos[ctx->seq]; }
int32_t loki_context_n_ctx(const loki_context *ctx) { return ctx->n_ctx; }
int64_t loki_context_kv_bytes(const loki_context *ctx) {
    const lk_kv_cache *kv = &ctx->kv;
    if (ctx->device == LOKI_DEVICE_CUDA) /* the GPU's paged bf16 cache: keys and values of every sequence */
        return (int64_t)ctx->hp.n_layer * ctx->hp.n_head_kv * ctx->hp.head_dim * 2 * 2 *
               ((int64_t)(ctx->n_ctx + LK_GPU_PAGE - 1) / LK_GPU_PAGE * LK_GPU_PAGE) * ctx->n_seq;
    return (int64_t)kv->n_layer * kv->n_head_kv * (int64_t)(kv->k_head + kv->v_head);
}
void loki_context_reset(loki_context *ctx) {
    ctx->seq_pos[ctx->seq] = 0;
    ctx->n_logits = 0;
    lk_attn_reset(ctx->attn);
    if (ctx->be) ctx->be->ops->release_seq(ctx->be, ctx->seq);
}

loki_status loki_context_set_attn(loki_context *ctx, const loki_attn_params *p, loki_error *err) {
    loki_status st = loki_attn_validate(p, ctx->model, err);
    if (st) return st;
    if ((st = lk_context_calib_flush(ctx, err))) return st; /* the GPU's backend, and its statistics, are replaced */
    lk_attn *a = NULL;
    const bool gpu = ctx->device == LOKI_DEVICE_CUDA; /* its CPU state is one token's (make_cpu_state) */
    /* on failure the old method stays in place, cache layout untouched */
    if ((st = lk_attn_init(&a, &ctx->hp, p, gpu ? 1 : ctx->n_ctx, gpu ? 1 : ctx->n_batch, ctx->n_threads, &ctx->kv,
                           err)))
        return st;
    lk_attn_free(ctx->attn);
    ctx->attn = a;
    ctx->attn_params = *p;
    for (int32_t s = 0; s < ctx->n_seq; s++) { /* every sequence's keys were stored for the old method */
        ctx->seq_pos[s] = 0;
        if (ctx->be) ctx->be->ops->release_seq(ctx->be, s);
    }
    ctx->n_logits = 0;
    lk_attn_reset(ctx->attn);
    if (ctx->device == LOKI_DEVICE_CUDA) { /* the GPU cache's layout follows the method */
        drop_backend(ctx);
        if ((st = make_backend(ctx, err))) return st;
    }
    return lk_sampling_restart(ctx, err); /* every sequence was emptied: its sampler starts again */
}

void lk_context_set_k_fixed(loki_context *ctx, int32_t k) {
    lk_attn_set_k_fixed(ctx->attn, k);
    lk_backend_cuda_set_k_fixed(ctx->be, k);
}

loki_status lk_context_calib_flush(loki_context *ctx, loki_error *err) {
    return ctx->calib && ctx->be ? lk_be_calib_flush(ctx->be, err) : LOKI_OK;
}
