/*
 * rotate.cu - rows of q (or k) into the PCA basis of their KV head:
 * y = C x per head, one block per (row, head), x staged in shared memory,
 * one thread per output component reading a row of C (coalesced across
 * the block's threads only for D = 32k; C is small and stays in L2).
 */
#include "cuda/common.cuh"

extern "C" {
#include "cuda/lk_cuda_rotate.h"
}

/* grid (n * n_heads), block D: x (n, n_heads, D), rot (n_kv, D, D). */
__global__ void lk_rotate_kernel(float *x, int n_heads, int group, int D, const float *rot) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    __shared__ float xs[256];
    const int row = blockIdx.x, h = row % n_heads, j = threadIdx.x;
    float *xr = x + (size_t)row * D; /* (D) this head's vector */
    xs[j] = xr[j];
    __syncthreads();
    const float *C = rot + (size_t)(h / group) * D * D + (size_t)j * D; /* row j of C_g */
    float acc = 0.0f;
    for (int i = 0; i < D; i++) acc = fmaf(C[i], xs[i], acc);
    xr[j] = acc;
}

extern "C" loki_status lk_cuda_rotate_heads(lk_cuda *cu, float *x, int n, int n_heads, int n_kv, int D,
                                            const float *rot, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 1 || n_kv < 1 || n_heads % n_kv != 0 || D < 1 || D > 256)
        return lk_fail(err, LOKI_ERR_ARG, "rotate: bad shape (n %d, heads %d, kv heads %d, D %d)", n, n_heads,
                       n_kv, D);
    (void)lk_launch_kernel(lk_rotate_kernel, n * n_heads, D, 0, cu->stream, true, 0, x, n_heads, n_heads / n_kv, D, rot);
    LK_CUDA_LAUNCHED();
    return LOKI_OK;
fail:
    return st;
}
