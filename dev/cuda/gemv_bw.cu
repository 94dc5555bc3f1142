/*
 * gemv_bw.cu - how close to the H200's read bandwidth can the decode
 * matrix-vector product of bf16 weights get? (dev/cuda playground; not part
 * of the library)
 *
 * One decode step of the Llama-2-7B shape reads 32 layers of
 *   qkv (12288, 4096), o (4096, 4096), gate|up (22016, 4096), down (4096, 11008)
 * bf16 weights (12.9 GB; the output matrix is left out) with x (in) f32.
 * src/cuda/gemv_quant.cu's mv_float runs one warp per row, 4 warps a block,
 * a block per 4 rows, and waits for the previous kernel (programmatic
 * dependent launch) before its first load. ncu on the H200 (session 13):
 * 2.2 TB/s (o) .. 3.2 TB/s (gate|up) of weights, against 4.5 TB/s read.
 * Variants, all with the same per-row summation order as mv_float (lane l
 * sums 16-byte vectors l, l + 32, ... in order, then a butterfly warp sum),
 * so every variant's y is bit-identical to "cur":
 *   cur      mv_float as shipped (U = 4 vectors in flight per lane)
 *   pf       cur + the warp's first 4 vectors prefetched into L2 before the
 *            dependent-launch wait (weights do not depend on the kernel
 *            before; only x does)
 *   u8       cur with U = 8
 *   persist  grid of (SMs x 8) blocks, each warp walks rows with a stride,
 *            loading its next row's first vectors while it sums the last
 *   persist_pf  persist + the L2 prefetch of the first rows before the wait
 * and "read": the same bytes streamed with no arithmetic (the ceiling).
 * Every kernel is launched with programmatic dependent launch, as the
 * engine does. Times: a whole step (the 128 products of the 32 layers, each
 * on its own weights, so L2 never holds them) by cudaEvents, median of 7;
 * per shape: the 32 products of that shape back to back.
 *
 *   nvcc -O3 -std=c++17 -arch=sm_90a -o gemv_bw dev/cuda/gemv_bw.cu && ./gemv_bw
 */
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ck.cuh"

constexpr int L = 32, NSHAPE = 4, WARPS = 4;
constexpr int64_t OUTS[NSHAPE] = {12288, 4096, 22016, 4096}, INS[NSHAPE] = {4096, 4096, 4096, 11008};
const char *const SNAME[NSHAPE] = {"qkv 12288x4096", "o 4096x4096", "gate|up 22016x4096", "down 4096x11008"};

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_release() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ float bf_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/* acc += the 8 weights of c times x[8v .. 8v + 8) */
__device__ __forceinline__ float fma8(const uint4 c, const float *__restrict__ x, int64_t v, float acc) {
    const float4 a = __ldg((const float4 *)(x + 8 * v)), b = __ldg((const float4 *)(x + 8 * v) + 1);
    acc = fmaf(bf_lo(c.x), a.x, acc), acc = fmaf(bf_hi(c.x), a.y, acc);
    acc = fmaf(bf_lo(c.y), a.z, acc), acc = fmaf(bf_hi(c.y), a.w, acc);
    acc = fmaf(bf_lo(c.z), b.x, acc), acc = fmaf(bf_hi(c.z), b.y, acc);
    acc = fmaf(bf_lo(c.w), b.z, acc), acc = fmaf(bf_hi(c.w), b.w, acc);
    return acc;
}

/* One row of W (nv 16-byte vectors) dotted with x by a warp, U vectors in
 * flight per lane: mv_float's loop and order. */
template <int U> __device__ __forceinline__ float row_dot(const uint4 *__restrict__ wr, const float *__restrict__ x,
                                                           int64_t nv, int lane) {
    float acc = 0.0f;
    for (int64_t v0 = lane; v0 < nv; v0 += 32 * U) {
        uint4 c[U];
#pragma unroll
        for (int k = 0; k < U; k++) c[k] = v0 + 32 * k < nv ? __ldcs(wr + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int k = 0; k < U; k++) {
            if (v0 + 32 * k >= nv) break;
            acc = fma8(c[k], x, v0 + 32 * k, acc);
        }
    }
    return acc;
}

/* cur / pf / u8: one warp per row, a block per WARPS rows. */
template <int U, bool PF>
__global__ void __launch_bounds__(WARPS * 32) k_rows(const uint4 *__restrict__ w, const float *__restrict__ x,
                                                     float *__restrict__ y, int64_t in, int64_t out) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * WARPS + warp, nv = in / 8;
    if (PF && row < out)
        for (int k = 0; k < 4 && lane + 32 * k < nv; k++) prefetch_l2(w + row * nv + lane + 32 * k);
    pdl_wait();
    pdl_release();
    if (row >= out) return;
    const float s = warp_sum(row_dot<U>(w + row * nv, x, nv, lane));
    if (lane == 0) y[row] = s;
}

/* persist / persist_pf: gridDim.x * WARPS warps walk the rows with a stride. */
template <int U, bool PF>
__global__ void __launch_bounds__(WARPS * 32) k_persist(const uint4 *__restrict__ w, const float *__restrict__ x,
                                                        float *__restrict__ y, int64_t in, int64_t out) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t nw = (int64_t)gridDim.x * WARPS, nv = in / 8;
    const int64_t r0 = (int64_t)blockIdx.x * WARPS + warp;
    if (PF)
        for (int64_t row = r0; row < out && row < r0 + 2 * nw; row += nw)
            for (int k = 0; k < 4 && lane + 32 * k < nv; k++) prefetch_l2(w + row * nv + lane + 32 * k);
    pdl_wait();
    pdl_release();
    for (int64_t row = r0; row < out; row += nw) {
        if (row + nw < out) /* the next row's head into L2 while this one is summed */
            for (int k = 0; k < 2 && lane + 32 * k < nv; k++) prefetch_l2(w + (row + nw) * nv + lane + 32 * k);
        const float s = warp_sum(row_dot<U>(w + row * nv, x, nv, lane));
        if (lane == 0) y[row] = s;
    }
}

/* rows2: a warp sums two rows at once (x loaded once for both), a block per
 * 2 * WARPS rows; each row's order is still mv_float's. */
__global__ void __launch_bounds__(WARPS * 32) k_rows2(const uint4 *__restrict__ w, const float *__restrict__ x,
                                                      float *__restrict__ y, int64_t in, int64_t out) {
    pdl_wait();
    pdl_release();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t r0 = ((int64_t)blockIdx.x * WARPS + warp) * 2, nv = in / 8;
    if (r0 >= out) return;
    const bool two = r0 + 1 < out;
    const uint4 *w0 = w + r0 * nv, *w1 = w + (two ? r0 + 1 : r0) * nv;
    float a0 = 0.0f, a1 = 0.0f;
    for (int64_t v0 = lane; v0 < nv; v0 += 32 * 4) {
        uint4 c0[4], c1[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const bool in_row = v0 + 32 * k < nv;
            c0[k] = in_row ? __ldcs(w0 + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
            c1[k] = in_row ? __ldcs(w1 + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int64_t v = v0 + 32 * k;
            if (v >= nv) break;
            const float4 a = __ldg((const float4 *)(x + 8 * v)), b = __ldg((const float4 *)(x + 8 * v) + 1);
            const float xs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
            const uint32_t u0[4] = {c0[k].x, c0[k].y, c0[k].z, c0[k].w}, u1[4] = {c1[k].x, c1[k].y, c1[k].z, c1[k].w};
#pragma unroll
            for (int q = 0; q < 4; q++) {
                a0 = fmaf(bf_lo(u0[q]), xs[2 * q], a0), a0 = fmaf(bf_hi(u0[q]), xs[2 * q + 1], a0);
                a1 = fmaf(bf_lo(u1[q]), xs[2 * q], a1), a1 = fmaf(bf_hi(u1[q]), xs[2 * q + 1], a1);
            }
        }
    }
    a0 = warp_sum(a0), a1 = warp_sum(a1);
    if (lane == 0) {
        y[r0] = a0;
        if (two) y[r0 + 1] = a1;
    }
}

/* persist_smx: persist_pf with x staged in shared memory once per block. */
__global__ void __launch_bounds__(WARPS * 32) k_persist_smx(const uint4 *__restrict__ w, const float *__restrict__ x,
                                                            float *__restrict__ y, int64_t in, int64_t out) {
    extern __shared__ float4 xs4[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t nw = (int64_t)gridDim.x * WARPS, nv = in / 8;
    const int64_t r0 = (int64_t)blockIdx.x * WARPS + warp;
    for (int64_t row = r0; row < out && row < r0 + 2 * nw; row += nw)
        for (int k = 0; k < 4 && lane + 32 * k < nv; k++) prefetch_l2(w + row * nv + lane + 32 * k);
    pdl_wait();
    pdl_release();
    for (int i = threadIdx.x; i < in / 4; i += blockDim.x) xs4[i] = __ldg((const float4 *)x + i);
    __syncthreads();
    const float *xsm = (const float *)xs4;
    for (int64_t row = r0; row < out; row += nw) {
        if (row + nw < out)
            for (int k = 0; k < 2 && lane + 32 * k < nv; k++) prefetch_l2(w + (row + nw) * nv + lane + 32 * k);
        const uint4 *wr = w + row * nv;
        float acc = 0.0f;
        for (int64_t v0 = lane; v0 < nv; v0 += 32 * 4) {
            uint4 c[4];
#pragma unroll
            for (int k = 0; k < 4; k++) c[k] = v0 + 32 * k < nv ? __ldcs(wr + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int64_t v = v0 + 32 * k;
                if (v >= nv) break;
                const float4 a = ((const float4 *)xsm)[2 * v], b = ((const float4 *)xsm)[2 * v + 1];
                acc = fmaf(bf_lo(c[k].x), a.x, acc), acc = fmaf(bf_hi(c[k].x), a.y, acc);
                acc = fmaf(bf_lo(c[k].y), a.z, acc), acc = fmaf(bf_hi(c[k].y), a.w, acc);
                acc = fmaf(bf_lo(c[k].z), b.x, acc), acc = fmaf(bf_hi(c[k].z), b.y, acc);
                acc = fmaf(bf_lo(c[k].w), b.z, acc), acc = fmaf(bf_hi(c[k].w), b.w, acc);
            }
        }
        acc = warp_sum(acc);
        if (lane == 0) y[row] = acc;
    }
}

/* read: the bytes of W, XORed (the ceiling), same grid as cur. */
__global__ void __launch_bounds__(WARPS * 32) k_read(const uint4 *__restrict__ w, const float *__restrict__ x,
                                                     float *__restrict__ y, int64_t in, int64_t out) {
    (void)x;
    pdl_wait();
    pdl_release();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * WARPS + warp, nv = in / 8;
    if (row >= out) return;
    uint32_t a = 0;
    for (int64_t v0 = lane; v0 < nv; v0 += 128) {
        uint4 c[4];
#pragma unroll
        for (int k = 0; k < 4; k++) c[k] = v0 + 32 * k < nv ? __ldcs(w + row * nv + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int k = 0; k < 4; k++) a ^= c[k].x ^ c[k].y ^ c[k].z ^ c[k].w;
    }
    a = __reduce_xor_sync(0xffffffffu, a);
    if (lane == 0) y[row] = __uint_as_float(a & 0x3fffffffu);
}

__global__ void k_fill(uint16_t *w, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
        const float f = ((float)(h & 0xffff) / 65536.0f - 0.5f) * 0.05f;
        w[i] = (uint16_t)(__float_as_uint(f) >> 16);
    }
}

typedef void (*kern_t)(const uint4 *, const float *, float *, int64_t, int64_t);
struct variant {
    const char *name;
    kern_t k;
    int persist;   /* 0: a block per WARPS rows; 1: persistent; 2: persistent, x in shared memory */
    int rows_per_warp;
    int bps; /* persistent: blocks per SM */
};

static void launch(const variant &v, int sms, const uint4 *w, const float *x, float *y, int64_t in, int64_t out,
                   cudaStream_t s) {
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at.val.programmaticStreamSerializationAllowed = 1;
    const int64_t nb = (out + (int64_t)WARPS * v.rows_per_warp - 1) / ((int64_t)WARPS * v.rows_per_warp);
    cfg.gridDim = dim3((unsigned)(v.persist ? std::min<int64_t>(nb, (int64_t)sms * v.bps) : nb));
    cfg.blockDim = dim3(WARPS * 32), cfg.stream = s, cfg.attrs = &at, cfg.numAttrs = 1;
    cfg.dynamicSmemBytes = v.persist == 2 ? (size_t)in * 4 : 0;
    CK(cudaLaunchKernelEx(&cfg, v.k, w, x, y, in, out));
}

int main() {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    CK(cudaFuncSetAttribute(k_persist_smx, cudaFuncAttributeMaxDynamicSharedMemorySize, 11008 * 4));
    size_t per_layer = 0;
    for (int i = 0; i < NSHAPE; i++) per_layer += (size_t)OUTS[i] * INS[i];
    const size_t total = per_layer * L; /* bf16 elements */
    printf("%s, %d SMs; %d layers: %.2f GB of bf16 weights per step\n", prop.name, sms, L, total * 2 / 1e9);
    uint16_t *w;
    float *x, *y, *yref;
    CK(cudaMalloc(&w, total * 2));
    CK(cudaMalloc(&x, 11008 * 4));
    CK(cudaMalloc(&y, 22016 * 4));
    CK(cudaMalloc(&yref, 22016 * 4));
    k_fill<<<4096, 256>>>(w, total, 12345u);
    {
        std::vector<float> hx(11008);
        uint32_t r = 7;
        for (auto &v : hx) r = r * 1664525u + 1013904223u, v = (float)(r >> 8) / 16777216.0f - 0.5f;
        CK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
    }
    CK(cudaDeviceSynchronize());
    /* offsets of (layer, shape) */
    std::vector<size_t> off(L * NSHAPE);
    size_t o = 0;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < NSHAPE; i++) off[l * NSHAPE + i] = o, o += (size_t)OUTS[i] * INS[i];
    const variant vs[] = {
        {"read", k_read, 0, 1},           {"cur", k_rows<4, false>, 0, 1},
        {"pf", k_rows<4, true>, 0, 1},     {"u8", k_rows<8, false>, 0, 1},
        {"rows2", k_rows2, 0, 2},          {"persist", k_persist<4, false>, 1, 1, 8},
        {"persist_pf", k_persist<4, true>, 1, 1, 8}, {"persist_pf16", k_persist<4, true>, 1, 1, 16},
        {"persist_pf4", k_persist<4, true>, 1, 1, 4}, {"persist_u8", k_persist<8, true>, 1, 1, 8},
        {"persist_smx", k_persist_smx, 2, 1, 4}, {"persist_smx8", k_persist_smx, 2, 1, 8},
    };
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    /* correctness: every variant's y of layer 0's matrices against cur's (bit
     * for bit: same order) and cur's against a double reference on the host */
    for (int i = 0; i < NSHAPE; i++) {
        const uint4 *wm = (const uint4 *)(w + off[i]);
        launch(vs[1], sms, wm, x, yref, INS[i], OUTS[i], s);
        CK(cudaStreamSynchronize(s));
        std::vector<uint16_t> hw((size_t)OUTS[i] * INS[i]);
        std::vector<float> hx(INS[i]), hy(OUTS[i]);
        CK(cudaMemcpy(hw.data(), w + off[i], hw.size() * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hx.data(), x, hx.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hy.data(), yref, hy.size() * 4, cudaMemcpyDeviceToHost));
        double worst = 0;
        for (int64_t r = 0; r < OUTS[i]; r++) {
            double d = 0, m = 0;
            for (int64_t c = 0; c < INS[i]; c++) {
                uint32_t u = (uint32_t)hw[(size_t)r * INS[i] + c] << 16;
                float f;
                memcpy(&f, &u, 4);
                d += (double)f * hx[c], m += fabs((double)f * hx[c]);
            }
            worst = std::max(worst, fabs(d - hy[r]) / m);
        }
        printf("%-20s cur vs double: max |d| / sum|w x| = %.2e %s\n", SNAME[i], worst, worst < 1e-5 ? "ok" : "FAIL");
        for (size_t v = 2; v < sizeof vs / sizeof vs[0]; v++) {
            CK(cudaMemset(y, 0xff, OUTS[i] * 4)); /* poisoned */
            launch(vs[v], sms, wm, x, y, INS[i], OUTS[i], s);
            CK(cudaStreamSynchronize(s));
            std::vector<float> hv(OUTS[i]);
            CK(cudaMemcpy(hv.data(), y, hv.size() * 4, cudaMemcpyDeviceToHost));
            if (memcmp(hv.data(), hy.data(), hv.size() * 4)) printf("  %s differs from cur: FAIL\n", vs[v].name);
        }
    }
    /* timing */
    printf("\n%-12s %10s %8s", "variant", "step us", "TB/s");
    for (int i = 0; i < NSHAPE; i++) printf(" | %-18s", SNAME[i]);
    printf("\n");
    for (const variant &v : vs) {
        float t[NSHAPE + 1][7];
        for (int rep = 0; rep < 7; rep++) {
            for (int i = -1; i < NSHAPE; i++) {
                CK(cudaEventRecord(e0, s));
                for (int l = 0; l < L; l++)
                    for (int j = 0; j < NSHAPE; j++)
                        if (i < 0 || i == j)
                            launch(v, sms, (const uint4 *)(w + off[l * NSHAPE + j]), x, y, INS[j], OUTS[j], s);
                CK(cudaEventRecord(e1, s));
                CK(cudaEventSynchronize(e1));
                CK(cudaEventElapsedTime(&t[i + 1][rep], e0, e1));
            }
        }
        printf("%-12s", v.name);
        for (int i = 0; i <= NSHAPE; i++) {
            std::sort(t[i], t[i] + 7);
            const double bytes = i == 0 ? (double)total * 2 : (double)OUTS[i - 1] * INS[i - 1] * 2 * L;
            const double us = t[i][3] * 1e3;
            if (i == 0) printf(" %10.1f %8.2f", us, bytes / us / 1e6);
            else printf(" | %7.1f us %5.2f TB/s", us / L, bytes / us / 1e6);
        }
        printf("\n");
    }
    return 0;
}
