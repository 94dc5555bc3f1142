/*
 * attention.c - dense causal attention on the CPU over the KV cache.
 *
 * Decode (one query row) parallelises over query heads: each thread scans the
 * keys of the head's KV head (GQA: query head h reads KV head h / group),
 * softmaxes, then accumulates values. Prompt processing (many rows) instead
 * forms score blocks with SGEMM per head, Q_blk (r, D) · Kᵀ (D, S), masks,
 * softmaxes, and multiplies by V (S, D), so it runs at BLAS speed.
 */
#include "engine/engine.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define ATT_ROW_BLOCK 128  /* query rows per SGEMM block in prompt processing */

size_t lk_attention_scratch_size(int32_t n_ctx, int32_t n_batch, int n_threads) {
    size_t dec = (size_t)n_threads * (size_t)n_ctx;
    size_t pre = (size_t)n_threads * (size_t)LK_MIN(n_batch, ATT_ROW_BLOCK) * (size_t)n_ctx;
    return LK_MAX(dec, pre);
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Softmax over x[0..n) in place; returns nothing, x sums to 1. */
static void softmax_inplace(float *x, int n) {
    float m = -FLT_MAX;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

typedef struct decode_task {
    loki_context *ctx;
    int layer;
    const float *q;  /* (n_head, D) */
    float *out;      /* (n_head, D) */
    int32_t n_keys;  /* positions 0 .. n_keys-1 are attended */
} decode_task;

static void decode_worker(void *arg, int ith, int nth) {
    decode_task *t = arg;
    const lk_hparams *hp = &t->ctx->hp;
    int D = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)D);
    float *sc = t->ctx->att_scratch + (size_t)ith * t->ctx->n_ctx; /* (n_keys) */
    for (int h = ith; h < hp->n_head; h += nth) {
        const float *qh = t->q + (size_t)h * D;
        const float *K = lk_kv_k(&t->ctx->kv, t->layer, h / group); /* (n_ctx, D) */
        const float *V = lk_kv_v(&t->ctx->kv, t->layer, h / group); /* (n_ctx, D) */
        for (int32_t s = 0; s < t->n_keys; s++) sc[s] = dot(qh, K + (size_t)s * D, D) * scale;
        softmax_inplace(sc, t->n_keys);
        float *o = t->out + (size_t)h * D;
        memset(o, 0, sizeof(float) * (size_t)D);
        for (int32_t s = 0; s < t->n_keys; s++) {
            const float *vs = V + (size_t)s * D;
            float p = sc[s];
            for (int d = 0; d < D; d++) o[d] += p * vs[d];
        }
    }
}

/* Many rows: heads are spread over the pool's threads; each thread runs its
 * heads' blocks of query rows through single-threaded SGEMM (lk_cpu_init sets
 * OpenBLAS to one thread, so concurrent calls run in the calling threads). */
typedef struct prefill_task {
    loki_context *ctx;
    int layer;
    const float *q;  /* (n, n_head, D) */
    float *out;      /* (n, n_head, D) */
    int32_t n, pos0;
} prefill_task;

static void prefill_worker(void *arg, int ith, int nth) {
    prefill_task *t = arg;
    loki_context *ctx = t->ctx;
    const lk_hparams *hp = &ctx->hp;
    int D = hp->head_dim, H = hp->n_head, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)D);
    /* this thread's slice: (min(n_batch, ATT_ROW_BLOCK), n_keys) */
    float *S = ctx->att_scratch + (size_t)ith * LK_MIN(ctx->n_batch, ATT_ROW_BLOCK) * ctx->n_ctx;
    for (int h = ith; h < H; h += nth) {
        const float *K = lk_kv_k(&ctx->kv, t->layer, h / group);
        const float *V = lk_kv_v(&ctx->kv, t->layer, h / group);
        for (int32_t r0 = 0; r0 < t->n; r0 += ATT_ROW_BLOCK) {
            int32_t rows = LK_MIN(ATT_ROW_BLOCK, t->n - r0);
            int32_t n_keys = t->pos0 + r0 + rows; /* keys the last row of the block sees */
            /* S (rows, n_keys) = scale * Q_blk (rows, D; stride H*D) · K (n_keys, D)ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_keys, D, scale,
                        t->q + (size_t)r0 * H * D + (size_t)h * D, H * D, K, D, 0.0f, S, n_keys);
            for (int32_t r = 0; r < rows; r++) {
                int32_t visible = t->pos0 + r0 + r + 1; /* causal: keys 0 .. pos */
                float *row = S + (size_t)r * n_keys;
                softmax_inplace(row, visible);
                memset(row + visible, 0, sizeof(float) * (size_t)(n_keys - visible));
            }
            /* out_blk (rows, D; stride H*D) = S (rows, n_keys) · V (n_keys, D) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, n_keys, 1.0f, S,
                        n_keys, V, D, 0.0f, t->out + (size_t)r0 * H * D + (size_t)h * D, H * D);
        }
    }
}

void lk_attention_dense(loki_context *ctx, int layer, const float *q, float *out, int32_t n,
                        int32_t pos0) {
    if (n == 1) {
        decode_task t = {ctx, layer, q, out, pos0 + 1};
        lk_pool_run(lk_cpu_pool(ctx->cpu), decode_worker, &t);
        return;
    }
    prefill_task t = {ctx, layer, q, out, n, pos0};
    lk_pool_run(lk_cpu_pool(ctx->cpu), prefill_worker, &t);
}
