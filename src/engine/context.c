/*
 * context.c - loki_context: allocation of the KV cache and activation buffers
 * (once, at init), batching of loki_eval into forward passes, logits access.
 */
#include "engine/engine.h"

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
                                                c->n_batch, &c->calib, err)
                         : lk_backend_cpu_init(&c->be, c->model, c->cpu, &c->kv, &c->attn, &c->calib, err);
    if (st) return st;
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

loki_status loki_context_init(loki_model *model, const loki_context_params *params,
                              loki_context **out, loki_error *err) {
    const lk_hparams *hp = &model->hp;
    if (params->n_ctx < 0) return lk_fail(err, LOKI_ERR_ARG, "-c/--ctx-size must be >= 0, got %d", params->n_ctx);
    if (params->n_threads < 0)
        return lk_fail(err, LOKI_ERR_ARG, "-t/--threads must be >= 0, got %d", params->n_threads);
    if (params->n_batch < 0) return lk_fail(err, LOKI_ERR_ARG, "-b/--batch-size must be >= 0, got %d", params->n_batch);
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
    int32_t B = c->n_batch, E = hp->n_embd, QD = hp->n_head * hp->head_dim, F = hp->n_ff;
    int64_t max_dim = LK_MAX(LK_MAX(E, QD), LK_MAX(F, hp->n_vocab));
    loki_status st = lk_cpu_init(&c->cpu, c->n_threads, B, max_dim, err);
    if (st) goto fail;
    if ((st = lk_kv_init(&c->kv, hp->n_layer, hp->n_head_kv, hp->head_dim, c->n_ctx, params->type_k,
                         params->type_v, err)))
        goto fail;
    c->attn_params = loki_attn_default_params();
    if ((st = lk_attn_init(&c->attn, hp, &c->attn_params, c->n_ctx, B, c->n_threads, &c->kv, err))) goto fail;
    c->device = params->device;
    if ((st = make_backend(c, err))) goto fail;
    c->logits_cap = 1;
    if (!(c->positions = lk_calloc((size_t)B, sizeof(int32_t), err)) ||
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
    lk_cpu_free(c->cpu);
    lk_kv_free(&c->kv);
    free(c->positions);
    lk_attn_free(c->attn);
    lk_free_aligned(c->logits);
    free(c);
}

loki_status loki_eval(loki_context *ctx, const int32_t *tokens, int32_t n, bool all_logits,
                      loki_error *err) {
    const int32_t V = ctx->hp.n_vocab;
    if (n <= 0) return lk_fail(err, LOKI_ERR_ARG, "eval: no tokens given");
    if (ctx->pos + (int64_t)n > ctx->n_ctx)
        return lk_fail(err, LOKI_ERR_RANGE,
                       "%d tokens do not fit in the context: %d of %d positions used (raise -c)",
                       n, ctx->pos, ctx->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lk_fail(err, LOKI_ERR_ARG, "token id %d at index %d is outside the vocabulary (0..%d)",
                           tokens[i], i, V - 1);
    int32_t rows = all_logits ? n : 1;
    if (rows > ctx->logits_cap) {
        float *l = alloc_f32((size_t)rows * V, err);
        if (!l) return LOKI_ERR_NOMEM;
        lk_free_aligned(ctx->logits);
        ctx->logits = l;
        ctx->logits_cap = rows;
    }
    for (int32_t i = 0; i < n; i += ctx->n_batch) {
        int32_t nb = LK_MIN(ctx->n_batch, n - i);
        /* without all_logits every chunk writes row 0; the last chunk's stays */
        loki_status st = all_logits ? lk_forward(ctx, tokens + i, nb, ctx->logits + (size_t)i * V, nb, err)
                                    : lk_forward(ctx, tokens + i, nb, ctx->logits, 1, err);
        if (st) return st;
    }
    ctx->n_logits = rows;
    return LOKI_OK;
}

const float *loki_get_logits(const loki_context *ctx, int32_t *n_rows) {
    if (n_rows) *n_rows = ctx->n_logits;
    return ctx->logits;
}

int32_t loki_context_pos(const loki_context *ctx) { return ctx->pos; }
int32_t loki_context_n_ctx(const loki_context *ctx) { return ctx->n_ctx; }
int64_t loki_context_kv_bytes(const loki_context *ctx) {
    const lk_kv_cache *kv = &ctx->kv;
    return (int64_t)kv->n_layer * kv->n_head_kv * (int64_t)(kv->k_head + kv->v_head);
}
void loki_context_reset(loki_context *ctx) {
    ctx->pos = 0;
    ctx->n_logits = 0;
    lk_attn_reset(ctx->attn);
}

loki_status loki_context_set_attn(loki_context *ctx, const loki_attn_params *p, loki_error *err) {
    loki_status st = loki_attn_validate(p, ctx->model, err);
    if (st) return st;
    if ((st = lk_context_calib_flush(ctx, err))) return st; /* the GPU's backend, and its statistics, are replaced */
    lk_attn *a = NULL;
    /* on failure the old method stays in place, cache layout untouched */
    if ((st = lk_attn_init(&a, &ctx->hp, p, ctx->n_ctx, ctx->n_batch, ctx->n_threads, &ctx->kv, err))) return st;
    lk_attn_free(ctx->attn);
    ctx->attn = a;
    ctx->attn_params = *p;
    loki_context_reset(ctx);
    if (ctx->device == LOKI_DEVICE_CUDA) { /* the GPU cache's layout follows the method */
        drop_backend(ctx);
        if ((st = make_backend(ctx, err))) return st;
    }
    return LOKI_OK;
}

loki_status lk_context_calib_flush(loki_context *ctx, loki_error *err) {
    return ctx->calib && ctx->be ? lk_be_calib_flush(ctx->be, err) : LOKI_OK;
}
