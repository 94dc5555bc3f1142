/*
 * h2o.cu - H2O's bookkeeping after a decode step (docs/ATTENTION.md, "H2O
 * policy"): every selected token's accumulator grows by the softmax weight
 * it received (summed over the unit's heads), then the candidates that
 * were not selected are evicted for good. One block per selection unit.
 */
#include "cuda/kernels.cuh"

#include <math.h>

__global__ void h2o_update_kernel(const lk_h2o_args a) {
    lk_pdl_wait();
    lk_pdl_release();
    const int b = blockIdx.y, u = blockIdx.x;
    const int h0 = a.sel_rows == a.H ? u : u * a.g;
    const int32_t S = a.seq_len[b], ns = a.n_sel[(size_t)b * a.sel_rows + u], n = ns < 0 ? S : ns;
    const int32_t *list = a.idx + ((size_t)b * a.sel_rows + u) * a.n_ctx;
    float *acc = a.acc + ((size_t)b * a.H + h0) * a.n_ctx;
    uint8_t *ev = a.evicted + ((size_t)b * a.H + h0) * a.n_ctx;
    for (int32_t j = threadIdx.x; j < n; j += blockDim.x) {
        const int32_t pos = ns < 0 ? j : list[j];
        float w = 0.0f;
        for (int i = 0; i < a.g; i++) {
            const size_t hr = (size_t)b * a.H + h0 + i;
            w += expf(a.raw[hr * a.n_ctx + j] - a.ml[hr * 2]) / a.ml[hr * 2 + 1];
        }
        acc[pos] += w;
    }
    if (ns < 0) return; /* every token attended: nothing to evict */
    /* candidates not selected: mark 2, unmark the selected, 2 -> evicted */
    for (int32_t s = threadIdx.x; s < S; s += blockDim.x)
        if (!ev[s]) ev[s] = 2;
    __syncthreads();
    for (int32_t j = threadIdx.x; j < n; j += blockDim.x) ev[list[j]] = 0;
    __syncthreads();
    for (int32_t s = threadIdx.x; s < S; s += blockDim.x)
        if (ev[s] == 2) ev[s] = 1;
}

cudaError_t lk_launch_h2o_update(const lk_h2o_args *a, int B, cudaStream_t s, bool pdl) {
    return lk_launch_kernel(h2o_update_kernel, dim3(a->sel_rows, B), dim3(256), 0, s, pdl, 0, *a);
}
