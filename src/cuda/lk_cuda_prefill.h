/*
 * lk_cuda_prefill.h - prompt (prefill) attention on the GPU: causal
 * attention of a run of new tokens of one sequence over the paged bf16 KV
 * cache (layout in lk_cuda.h), a tiled flash attention on the tensor cores
 * (src/cuda/prefill.cu). Built without CUDA it answers LOKI_ERR_UNSUPPORTED
 * (src/cuda/stub_prefill.c).
 *
 * Shapes: n = new tokens, H = n_head query heads, Hkv = kv->n_head_kv,
 * G = H / Hkv, D = kv->head_dim, P = LK_GPU_PAGE.
 */
#ifndef LK_CUDA_PREFILL_H
#define LK_CUDA_PREFILL_H

#include "cuda/lk_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Causal attention of n new tokens of sequence `seq` at positions
 * pos0 .. pos0+n-1, whose keys and values are already in the cache
 * (lk_gpu_kv_store; every position < pos0 + n stored), for one layer:
 *   q   (n, H, D) f32 on the device, in the basis of the stored keys
 *       (rotated when the cache holds rotated keys: q.k is unchanged);
 *   out (n, H, D) f32 on the device.
 * Query i attends keys j with j <= pos0 + i, and j > pos0 + i - window when
 * window > 0 (sliding-window layers). Scores are scale * q.k (scale > 0),
 * softmax in f32 with a running max (no (n, S) buffer), values accumulated
 * in f32. q is rounded to bf16 once (the tensor cores' input; the keys are
 * bf16 already) and the softmax weights are rounded to bf16 for the P.V
 * product: outputs agree with exact attention on the bf16-rounded q to
 * about 2^-9 max|v|. GQA: query head h reads KV head h / G. Split layouts
 * (d < D: k_lo | k_hi) are reassembled into whole keys.
 * Asynchronous on the context's stream (kernel errors surface at the next
 * lk_cuda_sync). n = 0 does nothing. Errors (nothing launched):
 * LOKI_ERR_ARG with a message for a bad layer or sequence, n < 0, pos0 < 0,
 * H not a positive multiple of Hkv, D not 64, 128 or 256, positions beyond
 * the sequence's reserved pages, scale not a positive finite number,
 * window < 0, NULL q or out. */
loki_status lk_gpu_attn_prefill(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos0, int32_t n, int32_t n_head,
                                const float *q, float *out, float scale, int32_t window, loki_error *err);

/* One decode row (n = 1) of sequence seq as lk_gpu_attn_prefill computes it,
 * with its position read on the device from *pos_dev when the kernel runs
 * (an int32 in device memory, written before it on the stream): the launch
 * is the same for every position, so a decode step that calls it can be
 * captured in a CUDA graph and replayed as the sequence grows (the sliding-
 * window layers of a captured step). pos is the position at the call, used
 * only for the checks; at every run *pos_dev must be a position whose keys
 * are stored, inside the sequence's reserved pages. Same errors as
 * lk_gpu_attn_prefill, and LOKI_ERR_ARG for a NULL pos_dev. */
loki_status lk_gpu_attn_decode_window(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos, const int32_t *pos_dev,
                                      int32_t n_head, const float *q, float *out, float scale, int32_t window,
                                      loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
