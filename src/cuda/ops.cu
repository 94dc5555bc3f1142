/*
 * ops.cu - the elementwise and small ops of a transformer block on the GPU
 * (interface and contracts: cuda/lk_cuda_ops.h). Each mirrors its CPU twin
 * expression by expression: products and sums that the CPU (ISO C11, no FMA
 * contraction) rounds one at a time are written with the __f*_rn intrinsics,
 * which nvcc never fuses, so the only differences left are those of libm
 * (expf, tanhf, sinf/cosf: CUDA's are within 2 ulp, glibc's within 1) and,
 * for rmsnorm, the order of the sum of squares. tests/test_cuda_ops.c gives
 * each op's tolerance and why.
 *
 * Kernels are memory-bound and simple: elementwise ops and add_bias stream
 * float4 when every pointer is 16-byte aligned (scalar otherwise), grid-
 * stride over a few waves of blocks; rmsnorm reduces one row per warp (rows
 * up to 1024) or per block, with warp shuffles; RoPE takes one token per
 * block (sin/cos once per pair, reused over the heads); get_rows decodes one
 * element per thread; argmax splits long rows over many blocks that merge
 * their winners with a compare-and-swap on the output index.
 */
#include "cuda/common.cuh"

extern "C" {
#include "cuda/lk_cuda_ops.h"
#include "core/quant.h"
}

#include <math.h>
#include <stdint.h>

/* Threads of the elementwise blocks. */
#define OPS_THREADS 256

/* ------------------------------------------------------------ helpers */

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Blocks for a grid-stride loop over `items` with OPS_THREADS threads each:
 * enough to cover the items, at most 16 per SM (several waves of full SMs). */
static unsigned grid_for(const lk_cuda *cu, int64_t items) {
    const int64_t need = (items + OPS_THREADS - 1) / OPS_THREADS;
    const int64_t cap = (int64_t)cu->prop.multiProcessorCount * 16;
    return (unsigned)(need < 1 ? 1 : need < cap ? need : cap);
}

/* ------------------------------------------------- elementwise kernels */

enum ew_op { EW_ADD, EW_SCALE, EW_SOFTCAP, EW_SILU, EW_GELU };

/* One element: a = x (or the gate), b = y (or up; unused by SCALE and
 * SOFTCAP), s = the scalar (scale, cap). Written as the CPU writes it. */
template <int OP> __device__ __forceinline__ float ew1(float a, float b, float s) {
    if (OP == EW_ADD) return __fadd_rn(a, b);
    if (OP == EW_SCALE) return __fmul_rn(a, s);
    if (OP == EW_SOFTCAP) return __fmul_rn(s, tanhf(__fdiv_rn(a, s))); /* c * tanhf(x / c) */
    return lk_dev_glu(OP == EW_GELU, a, b); /* EW_SILU, EW_GELU */
}

/* x (n) = op(x, y, s) elementwise; y (n) or NULL when OP does not read it.
 * vec: x and y 16-byte aligned, the body in float4 and the tail scalar. */
template <int OP> __global__ void ew_kernel(float *x, const float *y, float s, int64_t n, int vec) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    const bool use_y = OP == EW_ADD || OP == EW_SILU || OP == EW_GELU;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    int64_t done = 0;
    if (vec) {
        const int64_t n4 = n / 4;
        float4 *x4 = (float4 *)x;
        const float4 *y4 = (const float4 *)y;
        for (int64_t i = tid; i < n4; i += stride) {
            float4 a = x4[i];
            const float4 b = use_y ? y4[i] : a;
            a.x = ew1<OP>(a.x, b.x, s), a.y = ew1<OP>(a.y, b.y, s);
            a.z = ew1<OP>(a.z, b.z, s), a.w = ew1<OP>(a.w, b.w, s);
            x4[i] = a;
        }
        done = n4 * 4;
    }
    for (int64_t i = done + tid; i < n; i += stride) x[i] = ew1<OP>(x[i], use_y ? y[i] : 0.0f, s);
}

/* Launch ew_kernel<OP> over n elements (n > 0). */
template <int OP> static cudaError_t launch_ew(lk_cuda *cu, float *x, const float *y, float s, int64_t n) {
    const int vec = aligned16(x) && (!y || aligned16(y));
    (void)(lk_launch_kernel(ew_kernel<OP>, grid_for(cu, vec ? (n + 3) / 4 : n), OPS_THREADS, 0, cu->stream, true, 0, x, y, s, n, vec));
    return cudaGetLastError();
}

/* x (total = rows * dim) += b (dim) broadcast over rows; vec: dim % 4 == 0
 * and both pointers 16-byte aligned. */
__global__ void add_bias_kernel(float *x, const float *b, int64_t total, int dim, int vec) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    if (vec) {
        const int d4 = dim / 4;
        float4 *x4 = (float4 *)x;
        const float4 *b4 = (const float4 *)b;
        for (int64_t i = tid; i < total / 4; i += stride) {
            float4 a = x4[i];
            const float4 c = b4[i % d4];
            a.x = __fadd_rn(a.x, c.x), a.y = __fadd_rn(a.y, c.y), a.z = __fadd_rn(a.z, c.z), a.w = __fadd_rn(a.w, c.w);
            x4[i] = a;
        }
        return;
    }
    for (int64_t i = tid; i < total; i += stride) x[i] = __fadd_rn(x[i], b[i % dim]);
}

/* ------------------------------------------------------------ rmsnorm */

/* Partial sum of squares of row x (dim) by one lane of `lanes` threads:
 * elements lane*4 + k*lanes*4 .. as float4 (vec), else lane + k*lanes. fmaf
 * rounds once per term where the CPU's scalar path rounds x*x and the sum
 * separately: a little more accurate, never further from the exact sum. */
__device__ __forceinline__ float row_sumsq(const float *x, int dim, int lane, int lanes, int vec) {
    float s = 0.0f;
    if (vec) {
        const float4 *x4 = (const float4 *)x;
        for (int i = lane; i < dim / 4; i += lanes) {
            const float4 v = x4[i];
            s = fmaf(v.x, v.x, s), s = fmaf(v.y, v.y, s), s = fmaf(v.z, v.z, s), s = fmaf(v.w, v.w, s);
        }
    } else {
        for (int i = lane; i < dim; i += lanes) s = fmaf(x[i], x[i], s);
    }
    return s;
}

__device__ __forceinline__ float warp_sum(float s) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

/* y = w * (x * scale) over the row, lane of lanes as row_sumsq. y may be x:
 * each element is read and written by the same thread, after every thread's
 * reads of the first pass (the reduction in between synchronises). */
__device__ __forceinline__ void row_scale(float *y, const float *x, const float *w, int dim, float scale, int lane,
                                          int lanes, int vec) {
    if (vec) {
        const float4 *x4 = (const float4 *)x, *w4 = (const float4 *)w;
        float4 *y4 = (float4 *)y;
        for (int i = lane; i < dim / 4; i += lanes) {
            const float4 v = x4[i], g = w4[i];
            y4[i] = make_float4(__fmul_rn(g.x, __fmul_rn(v.x, scale)), __fmul_rn(g.y, __fmul_rn(v.y, scale)),
                                __fmul_rn(g.z, __fmul_rn(v.z, scale)), __fmul_rn(g.w, __fmul_rn(v.w, scale)));
        }
    } else {
        for (int i = lane; i < dim; i += lanes) y[i] = __fmul_rn(w[i], __fmul_rn(x[i], scale));
    }
}

/* The CPU's 1.0f / sqrtf(ss / (float)dim + eps), IEEE division and sqrt. */
__device__ __forceinline__ float rms_scale(float ss, int dim, float eps) {
    return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)dim), eps)));
}

/* One warp per row, blockDim.x = 32 * rows per block: x, y (n, dim), w (dim). */
__global__ void rmsnorm_warp_kernel(float *y, const float *x, const float *w, int64_t n, int dim, float eps,
                                    int vec) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= n) return; /* whole warps leave together */
    const float *xr = x + r * dim;
    const float ss = warp_sum(row_sumsq(xr, dim, lane, 32, vec));
    row_scale(y + r * dim, xr, w, dim, rms_scale(ss, dim, eps), lane, 32, vec);
}

/* One block per row (blockDim.x a multiple of 32, at most 1024). */
__global__ void rmsnorm_block_kernel(float *y, const float *x, const float *w, int dim, float eps, int vec) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    __shared__ float part[32];
    const int64_t r = blockIdx.x;
    const int t = threadIdx.x, nw = blockDim.x / 32;
    const float *xr = x + r * dim;
    float s = warp_sum(row_sumsq(xr, dim, t, blockDim.x, vec));
    if ((t & 31) == 0) part[t / 32] = s;
    __syncthreads();
    if (t < 32) {
        s = warp_sum(t < nw ? part[t] : 0.0f);
        if (t == 0) part[0] = s;
    }
    __syncthreads();
    row_scale(y + r * dim, xr, w, dim, rms_scale(part[0], dim, eps), t, blockDim.x, vec);
}

/* --------------------------------------------------------------- rope */

/* Blocks (token, group of blockDim.y heads): x (n, n_heads, head_dim), pos
 * (n), inv_freq (half). threadIdx.x walks the pairs (its sin/cos computed
 * once per block), threadIdx.y and blockIdx.y the heads: a decode step's
 * one token spreads over n_heads / blockDim.y blocks, so each thread makes
 * one dependent load-store round instead of one per head (measured on the
 * H200: one block per token took 6 us per call at 32 heads, a step's
 * longest small kernel). Pair p is (p, p + half) for neox, else (2p, 2p + 1). As the CPU:
 * angle = (float)pos * inv_freq[p]; a' = a cos - b sin, b' = b cos + a sin. */
__global__ void rope_kernel(float *x, int n_heads, int head_dim, const int32_t *pos, const float *inv_freq,
                            int half, int neox) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    const int64_t r = blockIdx.x;
    const float p = (float)pos[r];
    const int step = neox ? 1 : 2, off = neox ? half : 1;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float sn, cs;
        sincosf(__fmul_rn(p, inv_freq[i]), &sn, &cs);
        for (int h = blockIdx.y * blockDim.y + threadIdx.y; h < n_heads; h += gridDim.y * blockDim.y) {
            float *va = x + (r * n_heads + h) * head_dim + (int64_t)i * step, *vb = va + off;
            const float a = *va, b = *vb;
            *va = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
            *vb = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
        }
    }
}

/* ----------------------------------------------------------- get_rows */

/* Little-endian u16 at byte offset o of a 2-byte aligned block field. */
__device__ __forceinline__ uint16_t ld16(const uint8_t *p) { return *(const uint16_t *)p; }

/* lk_f16_to_f32, bit for bit (subnormals as man * 2^-24, NaN payloads kept). */
__device__ __forceinline__ float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0) {
        const float v = __fmul_rn((float)man, 5.9604644775390625e-08f);
        return sign ? -v : v;
    }
    if (exp == 31) return __uint_as_float(sign | 0x7F800000u | (man << 13));
    return __uint_as_float(sign | ((exp + 112) << 23) | (man << 13));
}

/* 4-bit value e (0..31) of a legacy block's qs[16]; bit e of its qh[4]. */
__device__ __forceinline__ int nib32(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4; }
__device__ __forceinline__ int qh_bit(const uint8_t *qh, int e) { return (qh[e >> 3] >> (e & 7)) & 1; }
/* 2-bit value of element e (0..255) of a 64-byte array (Q2_K/Q3_K qs, Q6_K qh). */
__device__ __forceinline__ int crumb256(const uint8_t *q, int e) {
    return (q[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}
/* 4-bit value of element e of a Q4_K/Q5_K 128-byte qs. */
__device__ __forceinline__ int nib256(const uint8_t *qs, int e) {
    return (qs[32 * (e >> 6) + (e & 31)] >> (4 * ((e >> 5) & 1))) & 15;
}
/* lk_quant_k_scale_min: 6-bit scale and min of Q4_K/Q5_K sub-block s (0..7). */
__device__ __forceinline__ void k_scale_min(const uint8_t *sc, int s, int *d, int *m) {
    if (s < 4) *d = sc[s] & 63, *m = sc[s + 4] & 63;
    else *d = (sc[s + 4] & 15) | (sc[s - 4] >> 6) << 4, *m = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
}

/* Element j of a row (its bytes at `row`) of dtype DT, exactly as
 * core/quant.c and core/tensor.c compute it (byte offsets from the block
 * structs of quant.h and tensor.h). */
template <int DT> __device__ __forceinline__ float deq_elem(const uint8_t *row, int64_t j) {
    if (DT == LK_DTYPE_F32) return ((const float *)row)[j];
    if (DT == LK_DTYPE_F16) return f16_to_f32(((const uint16_t *)row)[j]);
    if (DT == LK_DTYPE_BF16) return __uint_as_float((uint32_t)((const uint16_t *)row)[j] << 16);
    if (DT == LK_DTYPE_Q8_0) { /* d | qs[32], 34 B */
        const uint8_t *b = row + (j / 32) * 34;
        return __fmul_rn(f16_to_f32(ld16(b)), (float)(int8_t)b[2 + j % 32]);
    }
    if (DT == LK_DTYPE_Q4_0) { /* d | qs[16], 18 B */
        const uint8_t *b = row + (j / 32) * 18;
        return __fmul_rn(f16_to_f32(ld16(b)), (float)(nib32(b + 2, (int)(j % 32)) - 8));
    }
    if (DT == LK_DTYPE_Q4_1) { /* d | m | qs[16], 20 B */
        const uint8_t *b = row + (j / 32) * 20;
        return __fadd_rn(__fmul_rn(f16_to_f32(ld16(b)), (float)nib32(b + 4, (int)(j % 32))), f16_to_f32(ld16(b + 2)));
    }
    if (DT == LK_DTYPE_Q5_0) { /* d | qh[4] | qs[16], 22 B */
        const uint8_t *b = row + (j / 32) * 22;
        const int e = (int)(j % 32);
        return __fmul_rn(f16_to_f32(ld16(b)), (float)((nib32(b + 6, e) | qh_bit(b + 2, e) << 4) - 16));
    }
    if (DT == LK_DTYPE_Q5_1) { /* d | m | qh[4] | qs[16], 24 B */
        const uint8_t *b = row + (j / 32) * 24;
        const int e = (int)(j % 32);
        return __fadd_rn(__fmul_rn(f16_to_f32(ld16(b)), (float)(nib32(b + 8, e) | qh_bit(b + 4, e) << 4)),
                         f16_to_f32(ld16(b + 2)));
    }
    const int e = (int)(j % 256);
    if (DT == LK_DTYPE_Q2_K) { /* scales[16] | qs[64] | d | dmin, 84 B */
        const uint8_t *b = row + (j / 256) * 84;
        const int sc = b[e / 16];
        const float ds = __fmul_rn(f16_to_f32(ld16(b + 80)), (float)(sc & 15));
        const float dm = __fmul_rn(f16_to_f32(ld16(b + 82)), (float)(sc >> 4));
        return __fsub_rn(__fmul_rn(ds, (float)crumb256(b + 16, e)), dm);
    }
    if (DT == LK_DTYPE_Q3_K) { /* hmask[32] | qs[64] | scales[12] | d, 110 B */
        const uint8_t *b = row + (j / 256) * 110, *scales = b + 96;
        const int s = e / 16;
        const int code = (s < 8 ? scales[s] & 15 : scales[s - 8] >> 4) | ((scales[8 + s % 4] >> (2 * (s / 4))) & 3) << 4;
        const float ds = __fmul_rn(f16_to_f32(ld16(b + 108)), (float)(code - 32));
        const int q = crumb256(b + 32, e) - (((b[e & 31] >> (e >> 5)) & 1) ? 0 : 4);
        return __fmul_rn(ds, (float)q);
    }
    if (DT == LK_DTYPE_Q4_K || DT == LK_DTYPE_Q5_K) { /* d | dmin | scales[12] | (qh[32]) | qs[128], 144/176 B */
        const bool q5 = DT == LK_DTYPE_Q5_K;
        const uint8_t *b = row + (j / 256) * (q5 ? 176 : 144);
        int sc, m;
        k_scale_min(b + 4, e / 32, &sc, &m);
        const float ds = __fmul_rn(f16_to_f32(ld16(b)), (float)sc), dm = __fmul_rn(f16_to_f32(ld16(b + 2)), (float)m);
        int q = nib256(b + (q5 ? 48 : 16), e);
        if (q5) q |= ((b[16 + (e & 31)] >> (e >> 5)) & 1) << 4;
        return __fsub_rn(__fmul_rn(ds, (float)q), dm);
    }
    /* Q6_K: ql[128] | qh[64] | scales[16] int8 | d, 210 B */
    const uint8_t *b = row + (j / 256) * 210;
    const int h = e >> 7, jj = (e >> 5) & 3, l = e & 31;
    const uint8_t lo = b[64 * h + 32 * (jj & 1) + l];
    const int q = ((jj >= 2 ? lo >> 4 : lo & 15) | crumb256(b + 128, e) << 4) - 32;
    return __fmul_rn(__fmul_rn(f16_to_f32(ld16(b + 208)), (float)(int8_t)b[192 + e / 16]), (float)q);
}

/* out (n, dim) = rows rows[i] of table (n_rows rows of row_bytes), one
 * element per thread (grid-stride); rows outside [0, n_rows) give zeros. */
template <int DT>
__global__ void get_rows_kernel(float *out, const uint8_t *table, int64_t n_rows, size_t row_bytes, int64_t dim,
                                const int32_t *rows, int64_t total) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / dim, j = i - r * dim;
        const int32_t k = rows[r];
        out[i] = k >= 0 && k < n_rows ? deq_elem<DT>(table + (size_t)k * row_bytes, j) : 0.0f;
    }
}

/* ------------------------------------------------------------- argmax */

/* A candidate: value and index; i = INT32_MAX is "none". */
struct amx {
    float v;
    int32_t i;
};

/* Total order of candidates: any beats none; a number beats NaN; the larger
 * number wins; equal numbers (and two NaN) go to the lower index. */
__device__ __forceinline__ bool amx_better(amx a, amx b) {
    if (a.i == INT32_MAX) return false;
    if (b.i == INT32_MAX) return true;
    const bool an = isnan(a.v), bn = isnan(b.v);
    if (an != bn) return bn;
    if (!an && a.v != b.v) return a.v > b.v;
    return a.i < b.i;
}

__device__ __forceinline__ amx amx_warp(amx c) {
    for (int o = 16; o > 0; o >>= 1) {
        amx d = {__shfl_xor_sync(0xffffffffu, c.v, o), __shfl_xor_sync(0xffffffffu, c.i, o)};
        if (amx_better(d, c)) c = d;
    }
    return c;
}

/* Grid (chunks, n): block (c, r) finds the best of x[r] (dim) over
 * [c * chunk, min((c + 1) * chunk, dim)) (chunk a multiple of 4). With one
 * chunk per row it writes idx[r]; otherwise idx (n) starts at -1 and the
 * blocks of a row merge their winners into idx[r] by compare-and-swap,
 * reading the current winner's value back from x: the result is the best
 * candidate of the row under amx_better whatever the order of the blocks.
 * vec: x 16-byte aligned and dim % 4 == 0. */
__global__ void argmax_kernel(int32_t *idx, const float *x, int64_t dim, int64_t chunk, int vec) {
    __shared__ amx part[32];
    const int64_t r = blockIdx.y, b0 = (int64_t)blockIdx.x * chunk, b1 = b0 + chunk < dim ? b0 + chunk : dim;
    const float *xr = x + r * dim;
    amx c = {0.0f, INT32_MAX};
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        for (int64_t i = b0 / 4 + threadIdx.x; i < b1 / 4; i += blockDim.x) { /* ascending per thread */
            const float4 v = x4[i];
            const float e[4] = {v.x, v.y, v.z, v.w};
            for (int k = 0; k < 4; k++) {
                const amx d = {e[k], (int32_t)(4 * i + k)};
                if (amx_better(d, c)) c = d;
            }
        }
    } else {
        for (int64_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
            const amx d = {xr[i], (int32_t)i};
            if (amx_better(d, c)) c = d;
        }
    }
    c = amx_warp(c);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = c;
    __syncthreads();
    if (threadIdx.x >= 32) return;
    c = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : amx{0.0f, INT32_MAX};
    c = amx_warp(c);
    if (threadIdx.x != 0 || c.i == INT32_MAX) return;
    if (gridDim.x == 1) {
        idx[r] = c.i;
        return;
    }
    int32_t cur = atomicCAS(&idx[r], -1, c.i);
    while (cur != -1) { /* someone's winner is there: replace it only by a better one */
        const amx w = {xr[cur], cur};
        if (!amx_better(c, w)) break;
        const int32_t prev = atomicCAS(&idx[r], cur, c.i);
        if (prev == cur) break;
        cur = prev;
    }
}

/* ------------------------------------------------------------- the API */

/* LOKI_ERR_ARG "<op>: <what> is NULL" for a NULL pointer among the first n
 * of ptrs (used only when there is work). */
static loki_status need_ptrs(const char *op, const void *const *ptrs, const char *const *names, int n,
                             loki_error *err) {
    for (int i = 0; i < n; i++)
        if (!ptrs[i]) return lk_fail(err, LOKI_ERR_ARG, "%s: %s is NULL", op, names[i]);
    return LOKI_OK;
}
#define NEED(op, ...)                                                                            \
    do {                                                                                         \
        const void *const ps_[] = {__VA_ARGS__};                                                 \
        const char *const ns_[] = {LK_OPS_NAMES_##op};                                           \
        if ((st = need_ptrs(#op, ps_, ns_, (int)(sizeof ps_ / sizeof ps_[0]), err))) return st;  \
    } while (0)
#define LK_OPS_NAMES_lk_cuda_rmsnorm "y", "x", "w"
#define LK_OPS_NAMES_lk_cuda_rope "x", "pos", "inv_freq"
#define LK_OPS_NAMES_lk_cuda_glu "gate", "up"
#define LK_OPS_NAMES_lk_cuda_add "x", "y"
#define LK_OPS_NAMES_lk_cuda_add_bias "x", "b"
#define LK_OPS_NAMES_lk_cuda_scale "x"
#define LK_OPS_NAMES_lk_cuda_softcap "x"
#define LK_OPS_NAMES_lk_cuda_get_rows "out", "rows"
#define LK_OPS_NAMES_lk_cuda_argmax "idx", "x"

extern "C" loki_status lk_cuda_rmsnorm(lk_cuda *cu, float *y, const float *x, const float *w, int64_t n, int dim,
                                       float eps, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0 || n > INT32_MAX || dim < 1)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_rmsnorm: bad shape (%lld rows, dim %d)", (long long)n, dim);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_rmsnorm: eps %g must be finite and >= 0", (double)eps);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_rmsnorm, y, x, w);
    {
        const int vec = dim % 4 == 0 && aligned16(y) && aligned16(x) && aligned16(w);
        if (dim <= 1024) { /* a warp per row, 8 rows per block */
            (void)(lk_launch_kernel(rmsnorm_warp_kernel, (unsigned)((n + 7) / 8), 256, 0, cu->stream, true, 0, y, x, w, n, dim, eps, vec));
        } else { /* a block per row: about 8 elements per thread, 128..1024 threads */
            int th = 128;
            while (th < 1024 && th * 8 < dim) th *= 2;
            (void)(lk_launch_kernel(rmsnorm_block_kernel, (unsigned)n, th, 0, cu->stream, true, 0, y, x, w, dim, eps, vec));
        }
        LK_CUDA_LAUNCHED();
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_rope(lk_cuda *cu, float *x, int n, int n_heads, int head_dim, const int32_t *pos,
                                    const float *inv_freq, int rope_dim, int neox, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0 || n_heads < 0 || head_dim < 1)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_rope: bad shape (%d tokens, %d heads, head_dim %d)", n, n_heads,
                       head_dim);
    if (rope_dim < 2 || rope_dim % 2 || rope_dim > head_dim)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_rope: rope_dim %d must be even and in [2, head_dim = %d]",
                       rope_dim, head_dim);
    if (n == 0 || n_heads == 0) return LOKI_OK;
    NEED(lk_cuda_rope, x, pos, inv_freq);
    {
        const int half = rope_dim / 2;
        const int bx = half >= 128 ? 128 : (half + 31) / 32 * 32;
        const int by = 256 / bx < n_heads ? 256 / bx : n_heads;
        const unsigned gy = (unsigned)((n_heads + by - 1) / by);
        (void)(lk_launch_kernel(rope_kernel, dim3((unsigned)n, gy), dim3(bx, by), 0, cu->stream, true, 0, x, n_heads, head_dim, pos, inv_freq, half, neox));
        LK_CUDA_LAUNCHED();
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_glu(lk_cuda *cu, float *gate, const float *up, int64_t n, int act, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_glu: bad size %lld", (long long)n);
    if (act != 0 && act != 1)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_glu: unknown activation %d (0 = silu, 1 = gelu_tanh)", act);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_glu, gate, up);
    LK_CUDA_TRY(act == 0 ? launch_ew<EW_SILU>(cu, gate, up, 0.0f, n) : launch_ew<EW_GELU>(cu, gate, up, 0.0f, n));
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_add(lk_cuda *cu, float *x, const float *y, int64_t n, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_add: bad size %lld", (long long)n);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_add, x, y);
    LK_CUDA_TRY(launch_ew<EW_ADD>(cu, x, y, 0.0f, n));
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_add_bias(lk_cuda *cu, float *x, const float *b, int n, int dim, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0 || dim < 1)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_add_bias: bad shape (%d rows, dim %d)", n, dim);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_add_bias, x, b);
    {
        const int64_t total = (int64_t)n * dim;
        const int vec = dim % 4 == 0 && aligned16(x) && aligned16(b);
        (void)(lk_launch_kernel(add_bias_kernel, grid_for(cu, vec ? total / 4 : total), OPS_THREADS, 0, cu->stream, true, 0, x, b, total, dim, vec));
        LK_CUDA_LAUNCHED();
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_scale(lk_cuda *cu, float *x, float s, int64_t n, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_scale: bad size %lld", (long long)n);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_scale, x);
    LK_CUDA_TRY(launch_ew<EW_SCALE>(cu, x, NULL, s, n));
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_softcap(lk_cuda *cu, float *x, float c, int64_t n, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_softcap: bad size %lld", (long long)n);
    if (!(c > 0.0f) || !isfinite(c))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_softcap: cap %g must be finite and > 0", (double)c);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_softcap, x);
    LK_CUDA_TRY(launch_ew<EW_SOFTCAP>(cu, x, NULL, c, n));
    return LOKI_OK;
fail:
    return st;
}

/* Launch get_rows_kernel<DT>. */
template <int DT>
static cudaError_t launch_get_rows(lk_cuda *cu, float *out, const void *table, int64_t n_rows, size_t rb, int64_t dim,
                                   const int32_t *rows, int64_t total) {
    (void)(lk_launch_kernel(get_rows_kernel<DT>, grid_for(cu, total), OPS_THREADS, 0, cu->stream, true, 0, out, (const uint8_t *)table, n_rows, rb,
                                                                              dim, rows, total));
    return cudaGetLastError();
}

extern "C" loki_status lk_cuda_get_rows(lk_cuda *cu, float *out, lk_dtype dt, const void *table, int64_t n_rows,
                                        int64_t dim, const int32_t *rows, int n, loki_error *err) {
    loki_status st = LOKI_OK;
    if (!lk_dtype_valid((int)dt))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_get_rows: unsupported dtype %s (%d)", lk_dtype_name(dt), (int)dt);
    const int be = lk_dtype_block_elems(dt);
    if (n < 0 || n_rows < 0 || dim < 1 || dim % be)
        return lk_fail(err, LOKI_ERR_ARG,
                       "lk_cuda_get_rows: bad shape (%d rows of a %lld x %lld %s table; dim must be a multiple of %d)",
                       n, (long long)n_rows, (long long)dim, lk_dtype_name(dt), be);
    if (n_rows > 0 && !table) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_get_rows: table is NULL");
    if (table && ((uintptr_t)table & (dt == LK_DTYPE_F32 ? 3u : 1u)))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_get_rows: table %p is not %d-byte aligned", table,
                       dt == LK_DTYPE_F32 ? 4 : 2);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_get_rows, out, rows);
    {
        const size_t rb = lk_dtype_row_bytes(dt, dim);
        const int64_t total = (int64_t)n * dim;
        cudaError_t e = cudaSuccess;
        switch (dt) {
#define GR(T) case T: e = launch_get_rows<T>(cu, out, table, n_rows, rb, dim, rows, total); break
            GR(LK_DTYPE_F32); GR(LK_DTYPE_F16); GR(LK_DTYPE_BF16); GR(LK_DTYPE_Q8_0);
            GR(LK_DTYPE_Q4_0); GR(LK_DTYPE_Q4_1); GR(LK_DTYPE_Q5_0); GR(LK_DTYPE_Q5_1);
            GR(LK_DTYPE_Q2_K); GR(LK_DTYPE_Q3_K); GR(LK_DTYPE_Q4_K); GR(LK_DTYPE_Q5_K); GR(LK_DTYPE_Q6_K);
#undef GR
        default: break; /* every valid dtype is listed */
        }
        LK_CUDA_TRY(e);
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_argmax(lk_cuda *cu, int32_t *idx, const float *x, int n, int64_t dim,
                                      loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0 || dim < 1 || dim > INT32_MAX)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_argmax: bad shape (%d rows, dim %lld; dim must be in [1, 2^31))", n,
                       (long long)dim);
    if (n == 0) return LOKI_OK;
    NEED(lk_cuda_argmax, idx, x);
    {
        /* chunks of at least 2048 elements (8 per thread), enough blocks
         * for about 4 per SM over all rows, at most 65535 per row: a 262144
         * wide row alone takes 128 blocks, about one per SM of an H200 */
        const int64_t want = ((int64_t)cu->prop.multiProcessorCount * 4 + n - 1) / n;
        int64_t chunks = (dim + 2047) / 2048;
        if (chunks > want) chunks = want;
        if (chunks > 65535) chunks = 65535;
        if (chunks < 1) chunks = 1;
        int64_t chunk = (dim + chunks - 1) / chunks;
        chunk = (chunk + 3) / 4 * 4;
        chunks = (dim + chunk - 1) / chunk;
        const int vec = dim % 4 == 0 && aligned16(x);
        if (chunks > 1) LK_CUDA_TRY(cudaMemsetAsync(idx, 0xff, (size_t)n * sizeof *idx, cu->stream));
        for (int r0 = 0; r0 < n; r0 += 65535) { /* grid.y is limited to 65535 rows */
            const int nr = n - r0 < 65535 ? n - r0 : 65535;
            argmax_kernel<<<dim3((unsigned)chunks, (unsigned)nr), 256, 0, cu->stream>>>(idx + r0, x + (int64_t)r0 * dim,
                                                                                       dim, chunk, vec);
            LK_CUDA_LAUNCHED();
        }
    }
    return LOKI_OK;
fail:
    return st;
}
