/*
 * common.cuh - what every CUDA source of the backend shares: the context
 * struct, the error macro that turns a CUDA error into a loki_status with
 * file and line (the library never exits), bf16 helpers and the page
 * addressing of the paged KV cache (lk_cuda.h describes the layout).
 */
#ifndef LK_CUDA_COMMON_CUH
#define LK_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "core/common.h"
#include "cuda/lk_cuda.h"
}

struct lk_cuda {
    int device;
    cudaStream_t stream;
    cudaDeviceProp prop;
    char desc[160];
};

/* Record a CUDA error in err: "<what> failed at file:line: <cuda message>". */
extern "C" loki_status lk_cuda_fail(loki_error *err, cudaError_t e, const char *what, const char *file, int line);

/* In a function with `loki_status st` and a `fail:` label: any CUDA error
 * sets st and err (with the call's text, file and line) and jumps to fail. */
#define LK_CUDA_TRY(call)                                                          \
    do {                                                                           \
        cudaError_t lk_e_ = (call);                                                \
        if (lk_e_ != cudaSuccess) {                                                \
            st = lk_cuda_fail(err, lk_e_, #call, __FILE__, __LINE__);              \
            goto fail;                                                             \
        }                                                                          \
    } while (0)

/* After a kernel launch: launch errors (bad configuration) surface here. */
#define LK_CUDA_LAUNCHED() LK_CUDA_TRY(cudaGetLastError())

/* Programmatic dependent launch (Hopper): a kernel launched with
 * lk_launch_kernel(..., pdl = true) may be scheduled while the kernel before
 * it on the stream still runs, so its launch and block placement overlap
 * that kernel's tail instead of following it. Such a kernel calls
 * lk_pdl_wait() before its first global memory access (it returns once the
 * previous kernel has completed and its writes are visible), then
 * lk_pdl_release() to let the next kernel be scheduled. Without the launch
 * attribute (or before sm_90) both are no-ops. */
__device__ __forceinline__ void lk_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void lk_pdl_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Asks L2 for bytes [a, b) of global memory: cp.async.bulk.prefetch (sm_90),
 * a hint that neither waits nor faults, issued by one thread. Both ends are
 * rounded down to 16 bytes (the instruction's unit), so a must not be within
 * 15 bytes of the start of its allocation unless it is 16-byte aligned; the
 * caller keeps [a, b) inside one allocation.
 *
 * Why: the weights of a product are never written during a decode step, so a
 * matrix-vector kernel launched with programmatic dependent launch may ask
 * for its first rows before lk_pdl_wait(): HBM streams them into L2 while the
 * kernel before still finishes, instead of idling through that kernel's tail
 * and this one's start (lk_cuda_mm_set_prefetch). */
__device__ __forceinline__ void lk_l2_prefetch(const void *a, const void *b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const uintptr_t e = (uintptr_t)b & ~(uintptr_t)15;
    for (uintptr_t s = (uintptr_t)a & ~(uintptr_t)15; s < e;) {
        const uint32_t n = e - s < 32768 ? (uint32_t)(e - s) : 32768u; /* pieces of <= 32 KiB */
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(s), "r"(n) : "memory");
        s += n;
    }
#else
    (void)a, (void)b;
#endif
}

/* kern<<<grid, block, smem, s>>>(args...), with programmatic dependent
 * launch when pdl is set and thread-block clusters of `cluster` blocks along
 * x when cluster > 0 (the kernel must then be launchable with clusters). */
template <typename... KArgs, typename... Args>
static inline cudaError_t lk_launch_kernel(void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                           cudaStream_t s, bool pdl, int cluster, Args &&...args) {
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[2];
    unsigned n = 0;
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
    if (pdl) {
        at[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 0) {
        at[n].id = cudaLaunchAttributeClusterDimension;
        at[n].val.clusterDim.x = (unsigned)cluster, at[n].val.clusterDim.y = 1, at[n++].val.clusterDim.z = 1;
    }
    cfg.attrs = at, cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, kern, static_cast<Args &&>(args)...);
}

/* bf16 <-> f32: the cache stores bf16 bits as uint16_t (C sees no bf16 type). */
__device__ __forceinline__ float lk_bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float lk_bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ uint16_t lk_dev_f32_to_bf16(float x) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

/* Eight bf16 (one 16-byte chunk) to f32. */
__device__ __forceinline__ void lk_unpack8(const uint4 &c, float *x) {
    x[0] = lk_bf16_lo(c.x), x[1] = lk_bf16_hi(c.x), x[2] = lk_bf16_lo(c.y), x[3] = lk_bf16_hi(c.y);
    x[4] = lk_bf16_lo(c.z), x[5] = lk_bf16_hi(c.z), x[6] = lk_bf16_lo(c.w), x[7] = lk_bf16_hi(c.w);
}

/* The feed-forward's gate times up, as the CPU writes it (no contraction):
 * gelu 0 (SwiGLU) g / (1 + expf(-g)) * u; gelu 1 (GeGLU, lk_cpu_geglu)
 * 0.5f * g * (1.0f + tanhf(k0 * (g + k1 * g * g * g))) * u. One definition
 * for the GLU op (ops.cu) and the fused gate|up product (gemv_quant.cu), so
 * the two give the same bits. */
__device__ __forceinline__ float lk_dev_glu(bool gelu, float g, float u) {
    if (!gelu) return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    const float inner = __fadd_rn(g, __fmul_rn(__fmul_rn(__fmul_rn(k1, g), g), g));
    const float t = tanhf(__fmul_rn(k0, inner));
    return __fmul_rn(__fmul_rn(__fmul_rn(0.5f, g), __fadd_rn(1.0f, t)), u);
}

/* Elements of one (layer, page, KV head) segment: k_lo | k_hi | v. */
__host__ __device__ __forceinline__ size_t lk_seg_elems(int D) { return (size_t)LK_GPU_PAGE * 2 * D; }

/* Start of the (layer, page, kh) segment in the pool (L, n_pages, Hkv, P*2*D). */
__host__ __device__ __forceinline__ size_t lk_seg_offset(int layer, int32_t page, int kh, int32_t n_pages, int Hkv,
                                                         int D) {
    return (((size_t)layer * n_pages + page) * Hkv + kh) * lk_seg_elems(D);
}

/* Where the cache of one layer lives, as the kernels see it. */
/* Where a matrix-vector product writes output row r (gemv_quant.cu): rows
 * [0, end[0]) go to y[0] (row stride end[0]), [end[0], end[1]) to y[1]
 * (stride end[1] - end[0]), [end[1], end[2]) to y[2]; end[2] = out. One
 * output is y[0] with end[0] = end[1] = end[2] = out. Lets one kernel read
 * several matrices stored back to back (q/k/v, gate/up) into their own
 * buffers. acc: add v to the output (y += x · Wᵀ, one rounding, as a
 * separate add of the product would round) instead of storing it. */
struct lk_mm_seg {
    float *y[3];
    int64_t end[3];
    bool acc;
};
__device__ __forceinline__ void lk_mm_seg_store(const lk_mm_seg &g, int i, int64_t row, float v) {
    const int k = row < g.end[0] ? 0 : row < g.end[1] ? 1 : 2;
    const int64_t base = k ? g.end[k - 1] : 0;
    float *p = g.y[k] + (int64_t)i * (g.end[k] - base) + row - base;
    *p = g.acc ? __fadd_rn(*p, v) : v;
}

/* Before lk_pdl_wait() in a matrix-vector kernel: when the block is one of
 * the first pf_blocks, its thread 0 asks L2 for the block's rows [r0, r1) of
 * W (rb bytes each, W's start 16-byte aligned; lk_l2_prefetch). */
__device__ __forceinline__ void lk_mm_prefetch_rows(const void *w, size_t rb, int64_t r0, int64_t r1,
                                                    unsigned pf_blocks) {
    if (blockIdx.x < pf_blocks && threadIdx.x == 0 && r0 < r1)
        lk_l2_prefetch((const uint8_t *)w + (size_t)r0 * rb, (const uint8_t *)w + (size_t)r1 * rb);
}
/* How many of a product's first blocks prefetch their rows: as many as the
 * budget pf (bytes a product, lk_cuda_mm_set_prefetch) covers at bb bytes of
 * W a block, at most the grid; 0 when pf is 0. */
static inline unsigned lk_mm_pf_blocks(size_t pf, size_t bb, unsigned grid) {
    const size_t b = bb ? pf / bb : 0;
    return b < grid ? (unsigned)b : grid;
}

struct lk_kv_view {
    const uint16_t *pool;        /* bf16 (L, n_pages, Hkv, P*2*D) */
    const int32_t *block_table;  /* (max_seqs, mpps) */
    const int32_t *seq_len;      /* (max_seqs) */
    const int32_t *dsplit;       /* (L, Hkv) */
    int32_t n_pages, mpps, Hkv, D, layer;
};

#endif
