/*
 * lk_cuda_rotate.h - rotation of query/key rows into a per-(layer, KV head)
 * PCA basis on the GPU: the forward pass's twin of lk_attn_rotate.
 */
#ifndef LK_CUDA_ROTATE_H
#define LK_CUDA_ROTATE_H

#include "cuda/lk_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x (n, n_heads, D) f32 on the device, in place: head h of row i becomes
 * C_g x_ih with g = h / (n_heads / n_kv), C = rot + g*D*D (D, D) f32 row-major,
 * rows the PCA axes (lk_gpu_kv_store's convention). D <= 256; n_heads a
 * multiple of n_kv. Asynchronous on the context's stream. */
loki_status lk_cuda_rotate_heads(lk_cuda *cu, float *x, int n, int n_heads, int n_kv, int D, const float *rot,
                                 loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
