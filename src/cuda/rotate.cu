/*
 * rotate.cu - rows of q (or k) into the PCA basis of their KV head:
 * y = C x per head, tiles of rows through lk_rot_tile (rotate_tile.cuh:
 * coalesced rows of C, each read once per tile of tokens).
 */
#include "cuda/rotate_tile.cuh"

extern "C" {
#include "cuda/lk_cuda_rotate.h"
}

/* grid (ceil(n / LK_ROT_T), n_heads), LK_ROT_WARPS warps, shared
 * LK_ROT_T * D floats: x (n, n_heads, D) in place, rot (n_kv, D, D). In
 * place, so one block owns all D components of its rows (a block writing
 * components another block has yet to stage would race). */
__global__ void __launch_bounds__(LK_ROT_WARPS * 32) lk_rotate_kernel(float *x, int n, int n_heads, int group, int D,
                                                                      const float *__restrict__ rot) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    extern __shared__ float xs[]; /* (LK_ROT_T, D) */
    const int r0 = blockIdx.x * LK_ROT_T, h = blockIdx.y, rows = min(LK_ROT_T, n - r0);
    const size_t ld = (size_t)n_heads * D;
    float *xh = x + (size_t)r0 * ld + (size_t)h * D; /* row r0, head h */
    lk_rot_stage(xs, xh, ld, rows, D);
    const float *C = rot + (size_t)(h / group) * D * D;
    for (int jb = (threadIdx.x >> 5) * LK_ROT_OPW; jb < D; jb += LK_ROT_WARPS * LK_ROT_OPW)
        lk_rot_tile(C, xs, rows, D, jb, [&](int t, int j, float y) { xh[(size_t)t * ld + j] = y; });
}

extern "C" loki_status lk_cuda_rotate_heads(lk_cuda *cu, float *x, int n, int n_heads, int n_kv, int D,
                                            const float *rot, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 1 || n_kv < 1 || n_heads % n_kv != 0 || D < 1 || D > 256)
        return lk_fail(err, LOKI_ERR_ARG, "rotate: bad shape (n %d, heads %d, kv heads %d, D %d)", n, n_heads,
                       n_kv, D);
    const dim3 grid((unsigned)((n + LK_ROT_T - 1) / LK_ROT_T), (unsigned)n_heads);
    (void)lk_launch_kernel(lk_rotate_kernel, grid, LK_ROT_WARPS * 32, LK_ROT_T * D * sizeof(float), cu->stream, true,
                           0, x, n, n_heads, n_heads / n_kv, D, rot);
    LK_CUDA_LAUNCHED();
    return LOKI_OK;
fail:
    return st;
}
