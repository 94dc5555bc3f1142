/*
 * rmsnorm.cuh - the RMSNorm of one row on the GPU, as the norm kernels of
 * ops.cu compute it and as a matrix-vector product's last block does it
 * after writing that row (gemv_quant.cu, lk_cuda_matmul_add_norm): one
 * definition of the order of the sum of squares, so both give the same bits.
 *
 * A row of dim floats is normalised by lk_rms_threads(dim) threads (a warp
 * up to 1024 elements, else 128..1024 threads, about 8 elements each).
 * Thread t of them sums the squares of elements t, t + lanes, ... (float4
 * chunks when vec), a warp adds its 32 threads' sums by a butterfly, and
 * the warps' sums are added by a butterfly over 32 lanes. Any block can
 * play those threads in turns (lk_rms_sumsq), so the result does not
 * depend on the block size that runs it.
 */
#ifndef LK_CUDA_RMSNORM_CUH
#define LK_CUDA_RMSNORM_CUH

#include "cuda/common.cuh"

/* Threads that normalise one row of dim elements. */
__host__ __device__ __forceinline__ int lk_rms_threads(int dim) {
    if (dim <= 1024) return 32;
    int th = 128;
    while (th < 1024 && th * 8 < dim) th *= 2;
    return th;
}

__device__ __forceinline__ float lk_rms_warp_sum(float s) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

/* A float of global memory; CG: through L2 only (rows other blocks wrote
 * during the same kernel). */
template <bool CG> __device__ __forceinline__ float4 lk_rms_ld4(const float *p) {
    if constexpr (CG) return __ldcg((const float4 *)p);
    else return *(const float4 *)p;
}
template <bool CG> __device__ __forceinline__ float lk_rms_ld(const float *p) {
    if constexpr (CG) return __ldcg(p);
    else return *p;
}

/* Partial sum of squares of row x (dim) by thread `lane` of `lanes`:
 * elements lane*4 + k*lanes*4 .. as float4 (vec), else lane + k*lanes. fmaf
 * rounds once per term where the CPU's scalar path rounds x*x and the sum
 * separately: a little more accurate, never further from the exact sum. */
template <bool CG>
__device__ __forceinline__ float lk_rms_row_sumsq(const float *x, int dim, int lane, int lanes, int vec) {
    float s = 0.0f;
    if (vec) {
        for (int i = lane; i < dim / 4; i += lanes) {
            const float4 v = lk_rms_ld4<CG>(x + 4 * i);
            s = fmaf(v.x, v.x, s), s = fmaf(v.y, v.y, s), s = fmaf(v.z, v.z, s), s = fmaf(v.w, v.w, s);
        }
    } else {
        for (int i = lane; i < dim; i += lanes) {
            const float v = lk_rms_ld<CG>(x + i);
            s = fmaf(v, v, s);
        }
    }
    return s;
}

/* y = w * (x * scale) over the row, thread lane of lanes (any split: each
 * element is one product of its own). y may be x: each element is read and
 * written by the same thread, after every thread's reads of the sum (the
 * caller synchronises in between). */
template <bool CG>
__device__ __forceinline__ void lk_rms_row_scale(float *y, const float *x, const float *w, int dim, float scale,
                                                 int lane, int lanes, int vec) {
    if (vec) {
        const float4 *w4 = (const float4 *)w;
        float4 *y4 = (float4 *)y;
        for (int i = lane; i < dim / 4; i += lanes) {
            const float4 v = lk_rms_ld4<CG>(x + 4 * i), g = w4[i];
            y4[i] = make_float4(__fmul_rn(g.x, __fmul_rn(v.x, scale)), __fmul_rn(g.y, __fmul_rn(v.y, scale)),
                                __fmul_rn(g.z, __fmul_rn(v.z, scale)), __fmul_rn(g.w, __fmul_rn(v.w, scale)));
        }
    } else {
        for (int i = lane; i < dim; i += lanes) y[i] = __fmul_rn(w[i], __fmul_rn(lk_rms_ld<CG>(x + i), scale));
    }
}

/* The CPU's 1.0f / sqrtf(ss / (float)dim + eps), IEEE division and sqrt. */
__device__ __forceinline__ float lk_rms_scale(float ss, int dim, float eps) {
    return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)dim), eps)));
}

/* The sum of squares of x (dim) as vth threads (a multiple of 32, <= 1024)
 * make it (the header's order), computed by all threads of the calling
 * block (blockDim.x a multiple of 32). part: 32 floats of shared memory.
 * Returns the sum on every thread; synchronises the block. For vth = 32
 * this is one warp's butterfly (the second one adds zeros, exactly). */
template <bool CG> __device__ float lk_rms_sumsq(const float *x, int dim, int vth, int vec, float *part) {
    const int tid = threadIdx.x;
    for (int t = tid; t - (tid & 31) < vth; t += blockDim.x) { /* whole warps: vth is a multiple of 32 */
        const float s = lk_rms_warp_sum(lk_rms_row_sumsq<CG>(x, dim, t, vth, vec));
        if ((t & 31) == 0) part[t / 32] = s;
    }
    __syncthreads();
    if (tid < 32) {
        const float s = lk_rms_warp_sum(tid < vth / 32 ? part[tid] : 0.0f);
        if (tid == 0) part[0] = s;
    }
    __syncthreads();
    return part[0];
}

#endif
