/*
 * attn.h - attention over the KV cache on the CPU: dense, and the sparse
 * methods that score, select, then attend (docs/ATTENTION.md).
 *
 *   score : approximate scores of every cached token for a query row
 *           (loki/pcaattn: first d PCA components; exact-topk: exact;
 *            h2o: attention accumulated so far)
 *   select: top-k of those scores by partial selection (plus forced sinks,
 *           recent tokens), k = max(1, floor(kf*S)) of the S cached tokens
 *   attend: exact scores (all D components) of the selected tokens, softmax
 *           over them only, weighted sum of their values
 *
 * Keys are stored split (kv.h): per (layer, KV head) the first d components
 * of all tokens are contiguous (k_lo, (n_ctx, d)), then the rest (k_hi,
 * (n_ctx, D-d)). Methods without a PCA use d = D (the plain layout).
 * L = n_layer, H = n_head, Hkv = n_head_kv, D = head_dim.
 */
#ifndef LK_ATTN_H
#define LK_ATTN_H

#include "core/common.h"
#include "cpu/cpu.h"
#include "model/model.h"
#include "attn/budget.h"

/* Most query heads per KV head that --gqa-shared supports. */
#define LK_ATTN_MAX_GROUP 16

/* KV cache of n_ctx positions, allocated once. */
typedef struct lk_kv_cache {
    int32_t n_layer, n_head_kv, head_dim, n_ctx;
    int32_t *d;  /* (L, Hkv) split point of each head's keys */
    float *k;    /* (L, Hkv, n_ctx*D): k_lo (n_ctx, d) then k_hi (n_ctx, D-d), post-RoPE
                    (rotated into the PCA basis for loki/pcaattn) */
    float *v;    /* (L, Hkv, n_ctx, D) values, never rotated */
} lk_kv_cache;

static inline int32_t lk_kv_d(const lk_kv_cache *c, int layer, int h) {
    return c->d[layer * c->n_head_kv + h];
}
/* (n_ctx, d): the first d components of every position's key */
static inline float *lk_kv_klo(const lk_kv_cache *c, int layer, int h) {
    return c->k + ((size_t)layer * c->n_head_kv + h) * (size_t)c->n_ctx * c->head_dim;
}
/* (n_ctx, D-d): the remaining components */
static inline float *lk_kv_khi(const lk_kv_cache *c, int layer, int h) {
    return lk_kv_klo(c, layer, h) + (size_t)c->n_ctx * lk_kv_d(c, layer, h);
}
/* (n_ctx, D) */
static inline float *lk_kv_v(const lk_kv_cache *c, int layer, int h) {
    return c->v + ((size_t)layer * c->n_head_kv + h) * (size_t)c->n_ctx * c->head_dim;
}

/* Store n rows k, v (n, Hkv, D) at positions pos0 .. pos0+n-1 of a layer. */
void lk_kv_store(lk_kv_cache *c, int layer, int32_t pos0, const float *k, const float *v, int32_t n);

/* Statistics a context gathers while attending (reset by lk_attn_reset). */
typedef struct lk_attn_stats {
    double jaccard_sum;     /* Σ Jaccard(selected, exact top-k) over counted rows */
    int64_t jaccard_rows;   /* query-head rows with more than k causal keys */
    double bytes_read;      /* key/value bytes read (f32) by the method */
    double bytes_dense;     /* bytes dense attention would read for the same rows */
} lk_attn_stats;

typedef struct lk_attn lk_attn;

/* True for the methods that rotate keys into a PCA basis (loki, pcaattn). */
bool lk_attn_uses_pca(const loki_attn_params *p);

/* Reduced dimension d of (layer, KV head) for a low-rank method: --dvar's
 * rank, --d, or round(df*D) clamped to [1, D]. */
int32_t lk_attn_split_dim(const loki_attn_params *p, int32_t D, int layer, int h);

/* Create the attention state of a context: per-head split dims, the PCA
 * rotation (loki/pcaattn), H2O accumulators, per-thread scratch for rows of
 * up to n_ctx keys and prompt blocks of up to n_batch rows. p must have
 * passed loki_attn_validate. kv->d is filled with the split dims on success
 * only (on failure the cache and its layout are untouched). */
loki_status lk_attn_init(lk_attn **out, const lk_hparams *hp, const loki_attn_params *p, int32_t n_ctx,
                         int32_t n_batch, int n_threads, lk_kv_cache *kv, loki_error *err);
void lk_attn_free(lk_attn *a);

/* Forget per-sequence state (H2O accumulators and evictions, statistics). */
void lk_attn_reset(lk_attn *a);

/* Every query row selects k tokens (the paper's prefill-mask evaluation);
 * 0 returns to k = max(1, floor(kf*S)). */
void lk_attn_set_k_fixed(lk_attn *a, int32_t k);

/* Gather Jaccard statistics (costs exact scores of every key); off by default. */
void lk_attn_set_jaccard(lk_attn *a, bool on);

/* Statistics of one layer (layer < 0: summed over layers) since the reset. */
void lk_attn_get_stats(const lk_attn *a, int layer, lk_attn_stats *out);

/* Rotate rows x (n, n_heads, D) in place into the PCA basis of a layer (head
 * h uses KV head h / (n_heads / Hkv)); no-op for methods without a PCA and
 * for sliding-window (local) layers, which always attend densely.
 * Applied to the keys before they enter the cache and to the queries. */
void lk_attn_rotate(lk_attn *a, int layer, float *x, int32_t n, int n_heads);

/* Attention of n query rows q (n, H, D) (already rotated) at positions
 * pos0 .. pos0+n-1 over the cache of a layer (keys of those positions
 * already stored); out (n, H, D). Scores are scaled by hp->attn_scale (else
 * 1/sqrt(D)). A sliding-window layer of the model (lk_layer_is_local) attends
 * densely to the last swa_window positions whatever the method; the method
 * applies to the global layers. Work is spread over the pool. */
void lk_attn_run(lk_attn *a, lk_pool *pool, const lk_kv_cache *kv, int layer, const float *q, float *out,
                 int32_t n, int32_t pos0);

/* ------------------------------------------------------ building blocks */

/* Indices of the k largest x[cand[i]] (i < n; cand NULL: x[0..n)) written to
 * idx (k, in the order of cand: ascending positions for an ascending cand), by partial selection in O(n): for large n a sampled
 * lower bound of the threshold first discards most values; work holds 2n
 * floats. Ties at the threshold are broken by lower index. k <= n. */
void lk_topk(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work);

/* out[m*ldo + s] = scale · Q[m]·K[s] for s < S, m < M: K (S, d) rows, Q (M, d)
 * with row stride ldq. Reads every key once however many query rows. */
void lk_scores(const float *K, int32_t S, int d, const float *Q, int ldq, int M, float scale, float *out,
               int32_t ldo);

/* out[m] (D, row stride ldo) = Σ_j w[m][j] · V[pos[j]] for m < M (pos NULL:
 * V[j]); w (M, n) with row stride ldw; V rows of D floats, each read once
 * per 2 query rows. */
void lk_weighted_rows(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                      const float *V, int D);

/* y (n) += w · x (n), vectorised. */
void lk_axpy(float *y, float w, const float *x, int n);

/* Σ a[i]·b[i] over n floats, vectorised. */
float lk_dot(const float *a, const float *b, int n);

#endif
