/*
 * split.c - host-side policy of the CUDA backend that needs no GPU: the
 * split dims of the paged cache (built with or without CUDA).
 */
#include "cuda/lk_cuda.h"
#include "attn/attn.h"

void lk_gpu_split_dims(const loki_attn_params *p, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                       int32_t *d) {
    for (int l = 0; l < n_layer; l++)
        for (int h = 0; h < n_head_kv; h++) {
            int32_t x = lk_attn_uses_pca(p) ? lk_attn_split_dim(p, head_dim, l, h) : head_dim;
            x = (x + 7) / 8 * 8; /* 16-byte rows: the kernels move 8 bf16 at a time */
            d[l * n_head_kv + h] = x > head_dim ? head_dim : x;
        }
}
