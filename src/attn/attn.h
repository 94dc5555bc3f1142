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

/* KV cache of n_ctx positions, allocated once, in one of the element types
 * of loki_kv_type (keys and values may differ). Every type keeps the split
 * layout: a stored row is one token's k_lo (d values), k_hi (D-d) or v (D).
 *   f32, f16, bf16: the values, 4 or 2 bytes each;
 *   q8_0: a row of n values is ceil(n/32) fp16 scales followed by n int8
 *         codes; block b (values 32b .. min(32b+32, n)) is scale_b · code,
 *         scale_b = max|x|/127 of the block. A row whose length is not a
 *         multiple of 32 (d = 24 of D = 128, say) ends in a short block of
 *         its own, not padded: k_lo and k_hi then hold
 *         2·(ceil(d/32) + ceil((D-d)/32)) + D bytes per token, at most 2
 *         bytes more than an unsplit row.
 * A (layer, KV head) region is sized for the largest split, so changing the
 * method (and d) never reallocates. */
typedef struct lk_kv_cache {
    int32_t n_layer, n_head_kv, head_dim, n_ctx;
    loki_kv_type tk, tv; /* resolved types, never LOKI_KV_DEFAULT */
    int32_t *d;          /* (L, Hkv) split point of each head's keys */
    size_t k_head, v_head; /* bytes of one (layer, head) region of k / v */
    uint8_t *k; /* (L, Hkv) regions: k_lo (n_ctx rows of d) then k_hi (n_ctx rows of D-d), post-RoPE
                   (rotated into the PCA basis for loki/pcaattn) */
    uint8_t *v; /* (L, Hkv) regions: (n_ctx rows of D) values, never rotated */
    bool portable; /* kernels take the portable C paths instead of the SIMD ones (tests, benchmarks) */
} lk_kv_cache;

/* Bytes of one stored row of n values of type t. */
static inline size_t lk_kv_row_bytes(loki_kv_type t, int n) {
    switch (t) {
    case LOKI_KV_F16:
    case LOKI_KV_BF16: return 2 * (size_t)n;
    case LOKI_KV_Q8_0: return 2 * (size_t)((n + 31) / 32) + (size_t)n;
    default: return 4 * (size_t)n;
    }
}

/* Set up the cache's shape and allocate it (types LOKI_KV_DEFAULT resolve).
 * On failure the message names the sizes. d starts at D (no split). */
loki_status lk_kv_init(lk_kv_cache *c, int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t n_ctx,
                       loki_kv_type tk, loki_kv_type tv, loki_error *err);
void lk_kv_free(lk_kv_cache *c);
/* Bytes lk_kv_init allocates for this shape (keys + values). */
double lk_kv_bytes_for(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t n_ctx, loki_kv_type tk,
                       loki_kv_type tv);

static inline int32_t lk_kv_d(const lk_kv_cache *c, int layer, int h) {
    return c->d[layer * c->n_head_kv + h];
}
/* (n_ctx rows of d): the first d components of every position's key */
static inline uint8_t *lk_kv_klo(const lk_kv_cache *c, int layer, int h) {
    return c->k + ((size_t)layer * c->n_head_kv + h) * c->k_head;
}
static inline size_t lk_kv_klo_stride(const lk_kv_cache *c, int layer, int h) {
    return lk_kv_row_bytes(c->tk, lk_kv_d(c, layer, h));
}
/* (n_ctx rows of D-d): the remaining components */
static inline uint8_t *lk_kv_khi(const lk_kv_cache *c, int layer, int h) {
    return lk_kv_klo(c, layer, h) + (size_t)c->n_ctx * lk_kv_klo_stride(c, layer, h);
}
static inline size_t lk_kv_khi_stride(const lk_kv_cache *c, int layer, int h) {
    return lk_kv_row_bytes(c->tk, c->head_dim - lk_kv_d(c, layer, h));
}
/* (n_ctx rows of D) */
static inline uint8_t *lk_kv_v(const lk_kv_cache *c, int layer, int h) {
    return c->v + ((size_t)layer * c->n_head_kv + h) * c->v_head;
}
static inline size_t lk_kv_v_stride(const lk_kv_cache *c) { return lk_kv_row_bytes(c->tv, c->head_dim); }

/* Store n rows k, v (n, Hkv, D) at positions pos0 .. pos0+n-1 of a layer
 * (converted / quantized to the cache's types). */
void lk_kv_store(lk_kv_cache *c, int layer, int32_t pos0, const float *k, const float *v, int32_t n);

/* ------------------------------------------------- typed rows (kv.c) */

/* Rows of a stored matrix: row s at p + s·stride, n values of type t each. */
typedef struct lk_rows {
    const uint8_t *p;
    size_t stride;
    int n;
    loki_kv_type t;
    bool portable; /* the portable C path instead of the SIMD one (lk_kv_cache.portable) */
} lk_rows;

static inline const uint8_t *lk_row(const lk_rows *r, int32_t s) { return r->p + (size_t)s * r->stride; }

/* Encode n floats x as one row of type t at dst / decode one row into y. */
void lk_row_encode(loki_kv_type t, void *dst, const float *x, int n);
void lk_row_decode(loki_kv_type t, const void *src, float *y, int n);
/* lk_row_decode by the SIMD path where there is one, unless portable.
 * The kernels below use the SIMD paths (AVX-512 / AVX-512 BF16 / F16C,
 * where the build targets them) unless their rows say portable, which
 * forces the portable C beside them (tests compare the two). */
void lk_row_widen(loki_kv_type t, bool portable, const void *src, float *y, int n);

/* Statistics a context gathers while attending (reset by lk_attn_reset). */
typedef struct lk_attn_stats {
    double jaccard_sum;     /* Σ Jaccard(selected, exact top-k) over counted rows */
    int64_t jaccard_rows;   /* query-head rows with more than k causal keys */
    double bytes_read;      /* key/value bytes read by the method (in the cache types) */
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

/* The PCA rotations (L, Hkv, D, D) f32, rows the PCA axes, of a method that
 * rotates (loki, pcaattn); NULL otherwise. Owned by a. */
const float *lk_attn_rotation(const lk_attn *a);

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
 * idx (k, in the order of cand: ascending positions for an ascending cand),
 * by a sampled threshold select in O(n) (topk.c); work holds 2n floats.
 * Ties at the threshold go to the lower index; NaN ranks below every
 * number; -0 equals +0. k <= n. */
void lk_topk(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work);
/* lk_topk without SIMD (the same picks in the same order): the reference
 * the tests compare the vector paths with. */
void lk_topk_portable(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work);

/* out[m*ldo + s] = scale · Q[m]·K[s] for s < S, m < M: K (S, d) rows, Q (M, d)
 * with row stride ldq. Reads every key once however many query rows. */
void lk_scores(const float *K, int32_t S, int d, const float *Q, int ldq, int M, float scale, float *out,
               int32_t ldo);
/* The same over typed rows K (rows 0 .. S-1, K->n = d). */
void lk_scores_rows(const lk_rows *K, int32_t S, const float *Q, int ldq, int M, float scale, float *out,
                    int32_t ldo);

/* out[m] (D, row stride ldo) = Σ_j w[m][j] · V[pos[j]] for m < M (pos NULL:
 * V[j]); w (M, n) with row stride ldw; V rows of D floats, each read once
 * per 2 query rows. */
void lk_weighted_rows(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                      const float *V, int D);
/* The same over typed value rows V (V->n = D). */
void lk_weighted_rows_t(float *out, int ldo, const float *w, int ldw, int M, const int32_t *pos, int32_t n,
                        const lk_rows *V);
/* One block of nb keys of a dense decode step with an online softmax, fused
 * (AVX-512 builds, rows not portable, K and V of one type, M <= 64;
 * returns false otherwise and does
 * nothing): S (M, nb) = scale · Q · K[0..nb)ᵀ; per row r the running maximum
 * mx[r] is raised to the block's, out row r (stride ldo) and l[r] rescaled;
 * then per 16 value rows the exps of their scores relative to mx (added to
 * l) and out += exps · V rows, so the exps run under the value loads.
 * Start with mx = -FLT_MAX, l = 0, out = 0; divide by l at the end. */
bool lk_dense_block(const lk_rows *K, const lk_rows *V, int32_t nb, const float *Q, int ldq, int M, float scale,
                    float *S, float *mx, float *l, float *out, int ldo);

/* Exact attention of M query rows (M <= 64) over the n >= 1 selected rows
 * pos[0..n) of a split cache (AVX-512 builds, rows not portable, Khi and V
 * of one type; returns false otherwise and does nothing): the score of
 * row j for query m is lo[m·ldlo + pos[j]] (its scaled low-rank part) +
 * scale · Q[m]·Khi[pos[j]] (Q (M, Khi->n), row stride ldq: the query's
 * rest; Khi->n may be 0), out[m] (V->n, row stride ldo) = softmax of the
 * scores · V[pos]. One pass over the rows in blocks, online softmax; pos in
 * ascending order reads the cache forwards. */
bool lk_gather_attend(const lk_rows *Khi, const lk_rows *V, const int32_t *pos, int32_t n, const float *lo, int ldlo,
                      const float *Q, int ldq, int M, float scale, float *out, int ldo);

/* q · row (n = r->n values of row s). */
float lk_dot_row(const lk_rows *r, int32_t s, const float *q);
/* y (n) += w · row s. */
void lk_axpy_row(float *y, float w, const lk_rows *r, int32_t s);

/* y (n) += w · x (n), vectorised. */
void lk_axpy(float *y, float w, const float *x, int n);

/* Σ a[i]·b[i] over n floats, vectorised. */
float lk_dot(const float *a, const float *b, int n);

/* The largest of m and x[0..n) (NaNs in x are skipped, as by the loop
 * `m = x[i] > m ? x[i] : m`), vectorised. */
float lk_max(const float *x, int32_t n, float m);

#endif
