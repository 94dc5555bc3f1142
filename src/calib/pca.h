/*
 * pca.h - PCA bases of a model's keys: calibration statistics, the
 * eigendecomposition, and the PCA file (GGUF) `loki calibrate` writes and
 * the loki / pcaattn attention methods read. Layout of the file: docs/PCA.md.
 *
 * L = n_layer, Hkv = n_head_kv, D = head_dim; basis b is LOKI_BASIS_PRE (keys
 * before RoPE) or LOKI_BASIS_POST (after RoPE).
 */
#ifndef LK_PCA_H
#define LK_PCA_H

#include "core/common.h"
#include "model/model.h"

#define LK_PCA_N_BASIS 2
#define LK_FINGERPRINT_HEX 65 /* 64 hex digits of SHA-256 + NUL */

struct loki_pca {
    int32_t n_layer, n_head_kv, head_dim;
    /* Per basis: components (L, Hkv, D, D), ROW j of a head's (D, D) block is
     * the unit eigenvector with the j-th largest eigenvalue, so the rotated
     * key is k' = C·k (k'[j] = C[j]·k) and q'·k' = q·k. */
    float *components[LK_PCA_N_BASIS];
    float *eigenvalues[LK_PCA_N_BASIS]; /* (L, Hkv, D), descending, >= 0 */
    float *mean[LK_PCA_N_BASIS];        /* (L, Hkv, D) mean key */
    char fingerprint[LK_FINGERPRINT_HEX]; /* lk_model_fingerprint of the calibrated model */
    char model_name[256];                 /* model path's last component, informational */
    char calib_file[256];                 /* calibration text's file name */
    char calib_sha256[LK_FINGERPRINT_HEX];
    int64_t calib_tokens;                 /* keys accumulated per (layer, head, basis) */
    int32_t calib_window;
    /* The model's sliding-window layers (lk_hparams.swa_window/swa_pattern;
     * window 0: none). Every layer is calibrated, but the sparse methods use
     * the PCA of the global layers only: local layers attend densely. */
    int32_t swa_window, swa_pattern;
};

/* Does Loki use this layer's PCA (a global layer, or a model without
 * sliding-window layers)? */
static inline bool lk_pca_layer_used(const loki_pca *p, int layer) {
    return p->swa_window <= 0 || (layer + 1) % p->swa_pattern == 0;
}

/* The (D, D) components of (basis, layer, kv head); row j = j-th axis. */
static inline const float *lk_pca_components(const loki_pca *p, int basis, int layer, int h) {
    return p->components[basis] + ((size_t)layer * p->n_head_kv + h) * (size_t)p->head_dim * p->head_dim;
}
/* The (D) descending eigenvalues of (basis, layer, kv head). */
static inline const float *lk_pca_eigenvalues(const loki_pca *p, int basis, int layer, int h) {
    return p->eigenvalues[basis] + ((size_t)layer * p->n_head_kv + h) * (size_t)p->head_dim;
}

/* Allocate a zeroed PCA of the given shape (both bases). */
loki_status lk_pca_init(loki_pca **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                        loki_error *err);

/* Smallest d in 1..D whose cumulative explained variance (sum of the first d
 * eigenvalues over their total) reaches `fraction` (0, 1]; D if the total is 0. */
int32_t lk_pca_rank(const loki_pca *p, int basis, int layer, int h, double fraction);

/* Write the PCA file atomically (no partial file on failure, or once *stop
 * is set: LOKI_ERR_INTERRUPTED; stop may be NULL). */
loki_status lk_pca_save(const loki_pca *p, const char *path, lk_stop_flag *stop, loki_error *err);

/* SHA-256 (hex) identifying a model's key subspace: its shape hyper-parameters
 * and the raw bytes of every layer's key projection (wk, bk), attn_norm and,
 * when the model has one, the key norm (attn_k_norm).
 * Different files of the same weights in the same layout and dtype agree; a
 * GGUF whose q/k rows llama.cpp permuted does not agree with its HF source,
 * which is right, because its key dimensions are in another order. */
loki_status lk_model_fingerprint(const loki_model *m, char hex[LK_FINGERPRINT_HEX], loki_error *err);

/* SHA-256 (hex) of a byte buffer. */
void lk_sha256_hex(const void *data, size_t len, char hex[LK_FINGERPRINT_HEX]);

/* ------------------------------------------------------- calibration */

/* float64 key statistics per (basis, layer, kv head): count, Σk, Σkkᵀ. */
typedef struct lk_calib lk_calib;

loki_status lk_calib_init(lk_calib **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                          loki_error *err);
void lk_calib_free(lk_calib *c);

/* Accumulate n keys k (n, Hkv, D) of `layer` into basis b. Called by the
 * forward pass (engine/forward.c) before and after RoPE when ctx->calib is set. */
void lk_calib_add_keys(lk_calib *c, int basis, int layer, const float *k, int32_t n);

/* Merge statistics accumulated elsewhere (the GPU: lk_cuda_calib_read of
 * cuda/lk_cuda_calib.h) over `count` keys of `layer` into basis b. They
 * have this file's meaning: shift (Hkv, D) the shift s_b they were taken
 * about, sum (Hkv, D) = Σ(k - s_b), sumsq (Hkv, D, D) row-major whose upper
 * triangle (i <= j) = Σ(k - s_b)(k - s_b)ᵀ (the lower one is not read).
 * One call per (basis, layer), since the count is per layer (every KV head
 * of a layer sees the same rows).
 *  - Into a (basis, layer) that has no keys yet it is a copy, bit for bit:
 *    the result is what lk_calib_add_keys of the same keys would give, up to
 *    the order of the sums.
 *  - Otherwise the totals are re-expressed about c's own shift s (d = s_b - s:
 *    Σ(k-s) = Σ(k-s_b) + n_b·d, Σ(k-s)(k-s)ᵀ = Σ(k-s_b)(k-s_b)ᵀ + Σ(k-s_b)dᵀ
 *    + dΣ(k-s_b)ᵀ + n_b·ddᵀ; d is a difference of two keys of the data, so no
 *    cancellation) and added.
 * count 0 changes nothing. nonfinite (a NaN/Inf key was among them), or a
 * non-finite imported sum, marks c as lk_calib_add_keys does (lk_calib_finish
 * then fails). LOKI_ERR_ARG for a bad basis or layer or count < 0, with c
 * unchanged. */
loki_status lk_calib_import(lk_calib *c, int basis, int layer, int64_t count, const double *shift, const double *sum,
                            const double *sumsq, bool nonfinite, loki_error *err);

/* The statistics of (basis, layer) as lk_calib_import takes them: *count,
 * shift (Hkv, D), sum (Hkv, D), sumsq (Hkv, D, D) with the upper triangle
 * set and the strict lower one 0 (all zeros before any key). LOKI_ERR_ARG
 * for a bad basis or layer. For tests and for moving statistics around. */
loki_status lk_calib_export(const lk_calib *c, int basis, int layer, int64_t *count, double *shift, double *sum,
                            double *sumsq, loki_error *err);

/* Keys accumulated per (basis, layer, head) so far. */
int64_t lk_calib_count(const lk_calib *c);

/* Covariance Σkkᵀ/n - μμᵀ and its eigendecomposition (LAPACKE_dsyevd) for
 * every (basis, layer, head) into p (shape must match), components ordered
 * by descending eigenvalue, each eigenvector's sign fixed so that its
 * largest-magnitude entry is positive. Fails if fewer than 2 keys were seen. */
loki_status lk_calib_finish(const lk_calib *c, loki_pca *p, loki_error *err);

#endif
