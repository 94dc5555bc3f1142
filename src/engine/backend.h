/*
 * backend.h - the seam between the forward pass and the hardware: the
 * operations forward.c runs, which the CPU backend (backend_cpu.c) and the
 * CUDA backend (backend_cuda.c) implement. forward.c stays the one readable
 * description of the model; a backend only says how each op runs.
 *
 * Memory: every float * below (activations, logits rows) lives where the
 * backend computes - host memory for the CPU, device memory for CUDA - and
 * is allocated through the backend (lk_be_alloc). Weights are passed as the
 * model's lk_tensor views; a backend that keeps its own copies (the GPU)
 * finds them from the view. Shapes: n = rows (tokens) of the batch,
 * E = n_embd, H/Hkv = query/KV heads, D = head_dim, F = n_ff, V = n_vocab.
 *
 * Errors: the ops are asynchronous on a GPU, so they do not return a
 * status. A backend records the first failure of any op (sticky, as CUDA's
 * own errors are) and reports it at lk_be_sync / lk_be_status; after a
 * failure the remaining ops of the pass do nothing.
 */
#ifndef LK_ENGINE_BACKEND_H
#define LK_ENGINE_BACKEND_H

#include "core/common.h"
#include "core/tensor.h"
#include "model/model.h"

typedef struct lk_backend lk_backend;

typedef struct lk_backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* Buffers of `floats` floats in the backend's memory (NULL on failure,
     * with err set); free accepts NULL. */
    float *(*alloc)(lk_backend *be, size_t floats, const char *what, loki_error *err);
    void (*free)(lk_backend *be, float *p);
    /* Start a pass over n rows (host arrays, n): row i is token tokens[i]
     * of sequence seq[i] at position pos[i]. A pass is either one
     * sequence's tokens at consecutive positions (a prompt, or one decode
     * step), or a decode batch: row i the next token of sequence i, for
     * sequences 0..n-1 (backends with one sequence reject it). */
    loki_status (*begin)(lk_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n,
                         loki_error *err);
    /* Forget the cached tokens of sequence seq (its positions restart at 0). */
    void (*release_seq)(lk_backend *be, int32_t seq);
    /* x (n, E) = rows of table for this pass's tokens, times scale (0: 1). */
    void (*embed)(lk_backend *be, float *x, const lk_tensor *table, int n, float scale);
    /* y (n, dim) = x / rms(x) * w; y may equal x. */
    void (*rmsnorm)(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n, int dim, float eps);
    /* y (n, out) = x (n, in) · Wᵀ. */
    void (*matmul)(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n);
    /* y (n, out) += x (n, in) · Wᵀ (the residual stream's add fused into
     * the product); NULL: lk_be_matmul_res runs matmul and add. */
    void (*matmul_add)(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n);
    /* y[j] (n, out_j) = x (n, in) · W_jᵀ for j < k (k <= 3, same in): one
     * input through several matrices (q/k/v, gate/up), which a backend may
     * read as one. */
    void (*matmul_multi)(lk_backend *be, int k, float *const *y, const float *x, const lk_tensor *const *w, int n);
    /* x (n, dim) += b. */
    void (*add_bias)(lk_backend *be, float *x, const lk_tensor *b, int n, int dim);
    /* RoPE in place on x (n, n_heads, D) at this pass's positions, with layer l's settings. */
    void (*rope)(lk_backend *be, float *x, int n, int n_heads, int layer);
    /* gate (n, F) = act(gate) * up. */
    void (*glu)(lk_backend *be, float *gate, const float *up, int n, int n_ff, lk_ffn_act act);
    /* gate (n, F) = act(x · W_gᵀ) * (x · W_uᵀ): matmul_multi of the two and
     * glu, fused where the backend can (the GPU's one-row decode products
     * with float weights). Returns false when it did nothing and the caller
     * runs the two ops. NULL: never fused. */
    bool (*matmul_glu)(lk_backend *be, float *gate, const float *x, const lk_tensor *wg, const lk_tensor *wu, int n,
                       lk_ffn_act act);
    /* x (count) += y. */
    void (*add)(lk_backend *be, float *x, const float *y, size_t count);
    /* x (count) = c * tanh(x / c). */
    void (*softcap)(lk_backend *be, float *x, float c, size_t count);
    /* Keys of layer l (n, Hkv, D) into the calibration statistics (basis:
     * LOKI_BASIS_PRE before RoPE, POST after); only called while calibrating. */
    void (*calib_keys)(lk_backend *be, int basis, int layer, const float *k, int n);
    /* Make the statistics calib_keys gathered visible in the context's
     * collector (*calib) and forget them here: a backend may accumulate
     * elsewhere (the GPU, on the device) and bring its totals over only
     * now; the CPU adds to the collector directly (nothing to do). Waits
     * for the ops before it. Call it before the collector is read
     * (lk_calib_finish) or unset, and before the backend is destroyed;
     * without a collector it does nothing. On failure the collector may hold
     * part of the totals (discard it). */
    loki_status (*calib_flush)(lk_backend *be, loki_error *err);
    /* The attention of layer l for this pass: rotate q (n, H, D) and k
     * (n, Hkv, D) into the PCA basis when the method uses one, store k and v
     * at the rows' positions of their sequences' caches (pos0: the first
     * row's), then out (n, H, D) = attention of each query over the cached
     * tokens of its sequence up to its own position. */
    void (*attention)(lk_backend *be, int layer, float *q, float *k, const float *v, float *out, int n,
                      int32_t pos0);
    /* RoPE on q and k, then the attention: what rope (q), rope (k) and
     * attention do, fused where the backend can (the GPU's decode steps:
     * one kernel from the products to the cache). Returns false when it did
     * nothing and the caller runs the three ops; q and k may be left
     * unchanged (not roped) when it returns true. NULL: never fused. Not
     * called while calibrating (the roped keys go to calib_keys between). */
    bool (*rope_attention)(lk_backend *be, int layer, float *q, float *k, const float *v, float *out, int n,
                           int32_t pos0);
    /* Where the pass writes `floats` floats that end up in host memory at
     * `host` (the logits): host itself on the CPU, a device buffer (grown
     * as needed) on a GPU. NULL on failure, with err set. */
    float *(*out_buffer)(lk_backend *be, float *host, size_t floats, loki_error *err);
    /* Copy `floats` floats of src (backend memory) to host dst and wait for
     * every op before; returns the pass's first error, if any. */
    loki_status (*sync_read)(lk_backend *be, float *dst, const float *src, size_t floats, loki_error *err);
    /* What sync_read does, but instead of the logits: tokens (host, n) =
     * the device sampler's choice for each of n rows of src (backend memory,
     * (n, V)), row r with the sampler row of sequence seq0 + r (set up by
     * lk_backend_cuda_sampler_init), each recorded in its history unless a
     * stop token. NULL: the backend has no sampler of its own (the CPU: its
     * logits are in host memory, and the engine samples them there). */
    loki_status (*sync_sample)(lk_backend *be, int32_t *tokens, const float *src, int n, int32_t seq0,
                               loki_error *err);
    void (*destroy)(lk_backend *be);
} lk_backend_ops;

struct lk_backend {
    const lk_backend_ops *ops;
};

/* The CPU backend over a context's CPU state (borrowed: the context owns and
 * frees them): compute pool/scratch, KV cache, attention method (read through
 * the pointer each call, since loki_context_set_attn replaces it) and the
 * calibration collector (NULL when not calibrating, read each call too). */
struct lk_cpu;
struct lk_kv_cache;
struct lk_attn;
struct lk_calib;
loki_status lk_backend_cpu_init(lk_backend **out, const loki_model *m, struct lk_cpu *cpu,
                                struct lk_kv_cache *kv, struct lk_attn *const *attn,
                                struct lk_calib *const *calib, loki_error *err);

/* The CUDA backend (backend_cuda.c): opens GPU 0, uploads the model's
 * weights, builds the paged cache of n_seq sequences of up to n_ctx tokens
 * for the method p (split layout and decode kernels of lk_cuda.h; pca_rot
 * (L, Hkv, D, D) from lk_attn_rotation, NULL without a PCA method) and
 * scratch for n_batch rows. Decode steps are captured as CUDA graphs and
 * replayed (backend_cuda.c says when). Without a GPU or a CUDA build:
 * LOKI_ERR_UNSUPPORTED naming the cause. */
loki_status lk_backend_cuda_init(lk_backend **out, const loki_model *m, const loki_attn_params *p,
                                 const float *pca_rot, int32_t n_ctx, int32_t n_seq, int32_t n_batch,
                                 struct lk_calib *const *calib, loki_error *err);

/* Profiling of the CUDA backend's eager passes (not graph replays): each
 * op's time from the end of the op before it to its own end, summed by
 * category since profiling was turned on (CUDA events on the stream). */
enum { LK_PROF_WEIGHTS, LK_PROF_ATTENTION, LK_PROF_OTHER, LK_PROF_N };
loki_status lk_backend_cuda_profile(lk_backend *be, bool on, loki_error *err);
void lk_backend_cuda_profile_ms(const lk_backend *be, double ms[LK_PROF_N]);

/* Capture and replay decode steps as CUDA graphs (on by default); off:
 * every kernel is launched (for measurements). No-op on other backends. */
void lk_backend_cuda_set_graphs(lk_backend *be, bool on);
/* Passes so far that replayed a captured graph (for tests; 0 on other backends). */
int64_t lk_backend_cuda_replays(const lk_backend *be);
/* Which Loki decode steps run as one fused kernel (loki_cuda_fused;
 * lk_gpu_attn_set_fused). No-op on other backends. */
void lk_backend_cuda_set_fused(lk_backend *be, loki_cuda_fused mode);
/* Bytes of weights each decode product prefetches into L2 before the kernel
 * before it ends (lk_cuda_mm_set_prefetch; 0 none). No-op on other backends. */
void lk_backend_cuda_set_weight_prefetch(lk_backend *be, size_t bytes);
/* The GPU attention's k_fixed (loki_attn_params): every row selects k
 * tokens, 0 = the method's budget; perplexity --mode prefill sets it per
 * window as it does on the CPU's lk_attn. No-op on other backends. */
void lk_backend_cuda_set_k_fixed(lk_backend *be, int32_t k);

/* The device sampler of sync_sample (cuda/lk_cuda_sample.h): one row per
 * sequence of the context, with params (validated as loki_sampler_init
 * does), every row fresh (seeded with params->seed, empty history, no stop
 * tokens); called again it replaces the old one. Reset, accept and set_stop
 * act as lk_cuda_sampler_reset/accept/set_stop on sequence seq's row (stream
 * ordered, before the next pass). Other backends: LOKI_ERR_UNSUPPORTED. */
loki_status lk_backend_cuda_sampler_init(lk_backend *be, const loki_sampler_params *params, loki_error *err);
loki_status lk_backend_cuda_sampler_reset(lk_backend *be, int32_t seq, uint64_t seed, loki_error *err);
loki_status lk_backend_cuda_sampler_accept(lk_backend *be, int32_t seq, const int32_t *tokens, int32_t n,
                                           loki_error *err);
loki_status lk_backend_cuda_sampler_set_stop(lk_backend *be, const int32_t *stop, int32_t n, loki_error *err);

/* Thin wrappers, so forward.c reads as the model. */
static inline void lk_be_embed(lk_backend *be, float *x, const lk_tensor *t, int n, float scale) {
    be->ops->embed(be, x, t, n, scale);
}
static inline void lk_be_rmsnorm(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n, int dim,
                                 float eps) {
    be->ops->rmsnorm(be, y, x, w, n, dim, eps);
}
static inline void lk_be_matmul(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n) {
    be->ops->matmul(be, y, x, w, n);
}
/* The residual branch of a block: res (n, out) += x · Wᵀ, normalised first
 * by post (RMSNorm, Gemma's post-norms) when post is not NULL; tmp (n, out)
 * is scratch for the backends that do not fuse the add (the CPU). */
static inline void lk_be_matmul_res(lk_backend *be, float *res, float *tmp, const float *x, const lk_tensor *w,
                                    const lk_tensor *post, int n, float eps) {
    const int out = (int)w->ne[1];
    if (!post && be->ops->matmul_add) {
        be->ops->matmul_add(be, res, x, w, n);
        return;
    }
    be->ops->matmul(be, tmp, x, w, n);
    if (post) be->ops->rmsnorm(be, tmp, tmp, post, n, out, eps);
    be->ops->add(be, res, tmp, (size_t)n * out);
}
static inline void lk_be_matmul_multi(lk_backend *be, int k, float *const *y, const float *x,
                                      const lk_tensor *const *w, int n) {
    be->ops->matmul_multi(be, k, y, x, w, n);
}
static inline void lk_be_add_bias(lk_backend *be, float *x, const lk_tensor *b, int n, int dim) {
    be->ops->add_bias(be, x, b, n, dim);
}
static inline void lk_be_rope(lk_backend *be, float *x, int n, int n_heads, int layer) {
    be->ops->rope(be, x, n, n_heads, layer);
}
static inline void lk_be_glu(lk_backend *be, float *gate, const float *up, int n, int n_ff, lk_ffn_act act) {
    be->ops->glu(be, gate, up, n, n_ff, act);
}
/* The feed-forward's gated product: gate (n, F) = act(x · W_gateᵀ) *
 * (x · W_upᵀ); up (n, F) is scratch for the backends that do not fuse it. */
static inline void lk_be_matmul_glu(lk_backend *be, float *gate, float *up, const float *x, const lk_tensor *wg,
                                    const lk_tensor *wu, int n, lk_ffn_act act) {
    if (be->ops->matmul_glu && be->ops->matmul_glu(be, gate, x, wg, wu, n, act)) return;
    float *const gu[2] = {gate, up};
    const lk_tensor *const w[2] = {wg, wu};
    be->ops->matmul_multi(be, 2, gu, x, w, n);
    be->ops->glu(be, gate, up, n, (int)wg->ne[1], act);
}
static inline void lk_be_add(lk_backend *be, float *x, const float *y, size_t count) { be->ops->add(be, x, y, count); }
static inline void lk_be_softcap(lk_backend *be, float *x, float c, size_t count) {
    be->ops->softcap(be, x, c, count);
}
static inline void lk_be_calib_keys(lk_backend *be, int basis, int layer, const float *k, int n) {
    be->ops->calib_keys(be, basis, layer, k, n);
}
static inline loki_status lk_be_calib_flush(lk_backend *be, loki_error *err) {
    return be->ops->calib_flush(be, err);
}
static inline void lk_be_attention(lk_backend *be, int layer, float *q, float *k, const float *v, float *out, int n,
                                   int32_t pos0) {
    be->ops->attention(be, layer, q, k, v, out, n, pos0);
}
/* RoPE on q (n, H, D) and k (n, Hkv, D) with layer l's settings, then the
 * attention of the pass (lk_be_attention); q and k are scratch afterwards.
 * calib: the roped keys go to the calibration statistics between the two
 * (never fused then). */
static inline void lk_be_rope_attention(lk_backend *be, int layer, float *q, float *k, const float *v, float *out,
                                        int n, int H, int Hkv, int32_t pos0, bool calib) {
    if (!calib && be->ops->rope_attention && be->ops->rope_attention(be, layer, q, k, v, out, n, pos0)) return;
    be->ops->rope(be, q, n, H, layer);
    be->ops->rope(be, k, n, Hkv, layer);
    if (calib) be->ops->calib_keys(be, LOKI_BASIS_POST, layer, k, n);
    be->ops->attention(be, layer, q, k, v, out, n, pos0);
}
static inline void lk_backend_free(lk_backend *be) {
    if (be) be->ops->destroy(be);
}

#endif
