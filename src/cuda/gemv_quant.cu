/*
 * gemv_quant.cu - the decode (n <= LK_CUDA_MV_MAX_N) matrix-vector kernels of
 * lk_cuda_matmul for every weight dtype, and the dequantization of W to bf16
 * for its GEMM path (lk_cuda_mm.h states the contract; matmul.cu calls these).
 *
 * Block decoders (one struct per dtype, layouts in core/quant.h): a "unit"
 * is 32 consecutive weights of a row (a legacy block, or sub-block pair /
 * 32-element span of a K-quant super-block), the span of one 32-block of
 * quantized x. For the integer-dot types, load() unpacks a unit's codes into
 * 8 words of 4 bytes (element order, each byte a code in -128..63) plus its
 * scales, and dot() returns the unit's f32 contribution from the exact
 * integer __dp4a sums, in the terms of the CPU's lk_mv_qdot_scalar
 * (src/cpu/quant_dot.c). deqf() gives the 32 weights as f32, as the CPU's
 * lk_row_to_f32 computes them (q2_k/q3_k with the same roundings, no FMA
 * contraction; the other types only feed the bf16 GEMM tile).
 *
 * Quantized-weight kernel (mv_quant): one warp per row of W, 4 warps a
 * block. A warp streams its row through two shared-memory stages of CB
 * blocks with cp.async (16-byte copies, coalesced: 512 contiguous bytes per
 * warp instruction; blocks are only 2-byte aligned in the file, so a stage
 * starts at the 16-byte boundary below the chunk and the decoders read the
 * stage with 4-byte loads and funnel shifts), decodes while the next chunk
 * is in flight, lane l taking units l, l+32, ... of the chunk; quantized x
 * (or f32 x for q2_k/q3_k) is read through L1 (every warp reads the same
 * rows). Per-lane partial sums are reduced with warp shuffles.
 * Float weights (mv_float): one warp per row, each lane loads 4 x 16 bytes of
 * the row per step straight from global memory (streaming, evict-first), x
 * as float4 through L1, f32 FMA. One row of x and at most MV_PAIR_MAX_OUT
 * output rows (a matrix too small to fill the GPU with one warp per row):
 * mv_float2, a warp per two rows, twice the bytes in flight per warp and x
 * loaded once for both (each row summed in mv_float's order, so the two
 * kernels give the same bits). dev/cuda/gemv_bw.cu measured it on the
 * H200's Llama-2-7B shapes: o (4096 x 4096) 12.6 -> 11.1 us, down
 * (4096 x 11008) 30.3 -> 25.4 us; qkv (12288 rows) 26.2 -> 28.6 us (slower,
 * hence the bound). mv_glu: the feed-forward's gate and up products of one
 * row of x with the GLU applied in the same kernel (a warp per output row
 * reads that row of both matrices, mv_float2's loop), which saves the GLU
 * op's launch in every layer of a decode step.
 */
#include "cuda/common.cuh"

#include <cuda_fp16.h>

extern "C" {
#include "core/quant.h"
}

namespace {

/* ------------------------------------------------------------ loads */

/* N little-endian 32-bit words starting at p (2-byte aligned; generic:
 * shared or global memory), from aligned 4-byte loads and funnel shifts.
 * Reads no byte outside [p - 2, p + 4N + 2) and, when p is 4-aligned,
 * none outside [p, p + 4N). */
template <int N> __device__ __forceinline__ void ldwords(const uint8_t *p, uint32_t *w) {
    const uintptr_t a = (uintptr_t)p;
    const uint32_t *q = (const uint32_t *)(a & ~(uintptr_t)3);
    if (a & 3) {
        uint32_t prev = q[0];
#pragma unroll
        for (int k = 0; k < N; k++) {
            const uint32_t nx = q[k + 1];
            w[k] = __funnelshift_r(prev, nx, 16);
            prev = nx;
        }
    } else {
#pragma unroll
        for (int k = 0; k < N; k++) w[k] = q[k];
    }
}

/* fp16 at p (2-byte aligned) as f32. */
__device__ __forceinline__ float ldf16(const uint8_t *p) {
    return __half2float(__ushort_as_half(*(const unsigned short *)p));
}

/* Byte l (0..31) of 8 words. */
__device__ __forceinline__ uint32_t byte_of(const uint32_t *w, int l) { return (w[l >> 2] >> (8 * (l & 3))) & 0xffu; }

/* Bits 0..3 of n to bit 4 of the four bytes of a word. */
__device__ __forceinline__ uint32_t spread4(uint32_t n) { return ((n * 0x00204081u) & 0x01010101u) << 4; }

/* ------------------------------------------------------------ decoders */

/* Every decoder: BE elements and BB bytes per block, UPB units per block,
 * CB blocks per shared-memory stage (a multiple of 32 units), QX: integer
 * dot on quantized x (else f32 x against deqf). */

struct dq_q8_0 {
    static constexpr int BE = 32, BB = 34, UPB = 1, CB = 64;
    static constexpr bool QX = true;
    struct P { float d; };
    __device__ static void load(const uint8_t *b, int, uint32_t *v, P &p) {
        p.d = ldf16(b);
        ldwords<8>(b + 2, v);
    }
    /* sum(w Q) d_w d_x */
    __device__ static float dot(const uint32_t *v, const P &p, const uint32_t *X, float4 m) {
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = __dp4a((int)v[k], (int)X[k], s);
        return (float)s * (p.d * m.x);
    }
    __device__ static void deqf(const uint8_t *b, int s, float *w) {
        uint32_t v[8];
        P p;
        load(b, s, v, p);
#pragma unroll
        for (int e = 0; e < 32; e++) w[e] = p.d * (float)(int8_t)byte_of(v, e);
    }
};

/* q4_0 (M = F = false), q4_1 (M), q5_0 (F), q5_1 (M, F). */
template <bool M, bool F> struct dq_legacy {
    static constexpr int BE = 32, BB = 18 + (M ? 2 : 0) + (F ? 4 : 0), UPB = 1, CB = 64;
    static constexpr bool QX = true;
    struct P { float d, m; };
    /* v: unsigned codes u (4 or 5 bits) */
    __device__ static void load(const uint8_t *b, int, uint32_t *v, P &p) {
        p.d = ldf16(b);
        p.m = M ? ldf16(b + 2) : 0.0f;
        uint32_t q[4];
        ldwords<4>(b + (M ? 4 : 2) + (F ? 4 : 0), q);
#pragma unroll
        for (int k = 0; k < 4; k++) v[k] = q[k] & 0x0f0f0f0fu, v[k + 4] = (q[k] >> 4) & 0x0f0f0f0fu;
        if (F) {
            uint32_t h;
            ldwords<1>(b + (M ? 4 : 2), &h);
#pragma unroll
            for (int k = 0; k < 4; k++) v[k] |= spread4((h >> (4 * k)) & 15u), v[k + 4] |= spread4((h >> (16 + 4 * k)) & 15u);
        }
    }
    /* q4_0/q5_0: (sum(u Q) - 8|16 sum Q) d_w d_x; q4_1/q5_1: sum(u Q) d_w d_x + m S_b */
    __device__ static float dot(const uint32_t *v, const P &p, const uint32_t *X, float4 m) {
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = __dp4a((int)v[k], (int)X[k], s);
        const int isum = __float_as_int(m.w);
        if (!M) return (float)(s - (F ? 16 : 8) * isum) * (p.d * m.x);
        return (float)s * (p.d * m.x) + p.m * (m.x * (float)isum);
    }
    __device__ static void deqf(const uint8_t *b, int s, float *w) {
        uint32_t v[8];
        P p;
        load(b, s, v, p);
#pragma unroll
        for (int e = 0; e < 32; e++) {
            const int u = (int)byte_of(v, e);
            w[e] = M ? p.d * (float)u + p.m : p.d * (float)(u - (F ? 16 : 8));
        }
    }
};

/* q4_k (F = false) and q5_k: unit s = sub-block s (32 weights). */
template <bool F> struct dq_q45_k {
    static constexpr int BE = 256, BB = F ? 176 : 144, UPB = 8, CB = 8;
    static constexpr bool QX = true;
    struct P { float ds, dm; };
    __device__ static void load(const uint8_t *b, int s, uint32_t *v, P &p) {
        uint32_t sw[3]; /* the 12 scale bytes; byte k = (sw[k / 4] >> 8 (k % 4)) & 255 */
        ldwords<3>(b + 4, sw);
        const int bsh = 8 * (s & 3);
        const int b0 = (sw[0] >> bsh) & 255, b1 = (sw[1] >> bsh) & 255, b2 = (sw[2] >> bsh) & 255;
        /* s < 4: sc = bytes[s] & 63, m = bytes[s+4] & 63; else sc = (bytes[s+4] & 15) | (bytes[s-4] >> 6) << 4,
           m = (bytes[s+4] >> 4) | (bytes[s] >> 6) << 4, with bytes[s-4] = b0, bytes[s] = b1, bytes[s+4] = b2 */
        const int scv = s < 4 ? b0 & 63 : (b2 & 15) | (b0 >> 6) << 4;
        const int mv = s < 4 ? b1 & 63 : (b2 >> 4) | (b1 >> 6) << 4;
        p.ds = ldf16(b) * (float)scv;
        p.dm = ldf16(b + 2) * (float)mv;
        uint32_t q[8];
        ldwords<8>(b + (F ? 48 : 16) + 32 * (s >> 1), q);
        const int sh = 4 * (s & 1);
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = (q[k] >> sh) & 0x0f0f0f0fu;
        if (F) {
            uint32_t h[8];
            ldwords<8>(b + 16, h);
#pragma unroll
            for (int k = 0; k < 8; k++) v[k] |= ((h[k] >> s) & 0x01010101u) << 4;
        }
    }
    /* (d sc) d_x sum(u Q) - (dmin m) S_b */
    __device__ static float dot(const uint32_t *v, const P &p, const uint32_t *X, float4 m) {
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = __dp4a((int)v[k], (int)X[k], s);
        return p.ds * m.x * (float)s - p.dm * (m.x * (float)__float_as_int(m.w));
    }
    __device__ static void deqf(const uint8_t *b, int s, float *w) {
        uint32_t v[8];
        P p;
        load(b, s, v, p);
#pragma unroll
        for (int e = 0; e < 32; e++) w[e] = p.ds * (float)byte_of(v, e) - p.dm;
    }
};

/* q6_k: unit s = elements 32s..32s+31 = sub-blocks 2s and 2s+1. */
struct dq_q6_k {
    static constexpr int BE = 256, BB = 210, UPB = 8, CB = 8;
    static constexpr bool QX = true;
    struct P { float ds0, ds1; };
    __device__ static void load(const uint8_t *b, int s, uint32_t *v, P &p) {
        const int h = s >> 2, j = s & 3;
        uint32_t L[8], H[8];
        ldwords<8>(b + 64 * h + 32 * (j & 1), L);
        ldwords<8>(b + 128 + 32 * h, H);
#pragma unroll
        for (int k = 0; k < 8; k++)
            v[k] = ((L[k] >> (4 * (j >> 1))) & 0x0f0f0f0fu) | ((H[k] >> (2 * j)) & 0x03030303u) << 4;
        const float d = ldf16(b + 208);
        p.ds0 = d * (float)(int8_t)b[192 + 2 * s];
        p.ds1 = d * (float)(int8_t)b[193 + 2 * s];
    }
    /* per 16-group g: (d sc_g) d_x sum(u Q) - 32 (d sc_g) S_g */
    __device__ static float dot(const uint32_t *v, const P &p, const uint32_t *X, float4 m) {
        int s0 = 0, s1 = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) s0 = __dp4a((int)v[k], (int)X[k], s0), s1 = __dp4a((int)v[k + 4], (int)X[k + 4], s1);
        return (p.ds0 * m.x * (float)s0 - 32.0f * p.ds0 * m.y) + (p.ds1 * m.x * (float)s1 - 32.0f * p.ds1 * m.z);
    }
    __device__ static void deqf(const uint8_t *b, int s, float *w) {
        uint32_t v[8];
        P p;
        load(b, s, v, p);
#pragma unroll
        for (int e = 0; e < 32; e++) w[e] = (e < 16 ? p.ds0 : p.ds1) * (float)((int)byte_of(v, e) - 32);
    }
};

/* q2_k: f32 x (the CPU has no integer-dot path for it); w = (d sc) q - dmin m. */
struct dq_q2_k {
    static constexpr int BE = 256, BB = 84, UPB = 8, CB = 8;
    static constexpr bool QX = false;
    __device__ static void deqf(const uint8_t *b, int s, float *w) {
        const int h = s >> 2, j = s & 3;
        uint32_t q[8];
        ldwords<8>(b + 16 + 32 * h, q);
        const float d = ldf16(b + 80), dmin = ldf16(b + 82);
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int sc = b[2 * s + half];
            const float ds = __fmul_rn(d, (float)(sc & 15)), dm = __fmul_rn(dmin, (float)(sc >> 4));
#pragma unroll
            for (int l = 16 * half; l < 16 * half + 16; l++)
                w[l] = __fsub_rn(__fmul_rn(ds, (float)((byte_of(q, l) >> (2 * j)) & 3)), dm);
        }
    }
};

/* q3_k: f32 x; w = d (sc - 32) q with q = low 2 bits - (hmask bit clear ? 4 : 0). */
struct dq_q3_k {
    static constexpr int BE = 256, BB = 110, UPB = 8, CB = 8;
    static constexpr bool QX = false;
    __device__ static void deqf(const uint8_t *b, int s, float *w) {
        const int h = s >> 2, j = s & 3;
        uint32_t q[8], hm[8];
        ldwords<8>(b, hm);
        ldwords<8>(b + 32 + 32 * h, q);
        const uint8_t *sc = b + 96;
        const float d = ldf16(b + 108);
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int sb = 2 * s + half;
            const int lo = sb < 8 ? sc[sb] & 15 : sc[sb - 8] >> 4, hi = (sc[8 + (sb & 3)] >> (2 * (sb >> 2))) & 3;
            const float ds = __fmul_rn(d, (float)((lo | hi << 4) - 32));
#pragma unroll
            for (int l = 16 * half; l < 16 * half + 16; l++) {
                const int qv = (int)((byte_of(q, l) >> (2 * j)) & 3) - (((byte_of(hm, l) >> s) & 1) ? 0 : 4);
                w[l] = __fmul_rn(ds, (float)qv);
            }
        }
    }
};

/* ------------------------------------------------------------ helpers */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ void cp_async16(void *smem, const void *g) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(g) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

constexpr int MV_WARPS = 4; /* rows (warps) per block of the matrix-vector kernels */
/* Up to this many output rows a float matrix-vector product of one row of x
 * runs mv_float2 (two rows a warp): one warp per row leaves the H200's 132
 * SMs x 64 warp slots partly empty below about 8k rows. */
constexpr int64_t MV_PAIR_MAX_OUT = 8192;

/* Bytes of one shared-memory stage of decoder T: a chunk plus the up to 15
 * bytes below it to the 16-byte boundary, rounded up to 16. */
template <class T> __host__ __device__ constexpr int stage_bytes() { return (T::CB * T::BB + 15 + 15) / 16 * 16; }

/* Copy bytes [gs, ge) of W (gs, ge even) into stage st by the warp's lanes:
 * 16-byte segments from the boundary a <= gs below gs (>= W's start, which
 * is 16-byte aligned) by cp.async; a segment reaching past wend (W's end) is
 * copied byte by byte up to wend. Returns gs - a, the chunk's offset in st.
 * Commits one cp.async group per lane. */
__device__ __forceinline__ int stage_load(uint8_t *st, const uint8_t *gs, const uint8_t *ge, const uint8_t *wend,
                                          int lane) {
    const uint8_t *a = (const uint8_t *)((uintptr_t)gs & ~(uintptr_t)15);
    const int nseg = (int)((ge - a + 15) >> 4);
    for (int g = lane; g < nseg; g += 32) {
        const uint8_t *src = a + 16 * g;
        if (src + 16 <= wend) {
            cp_async16(st + 16 * g, src);
        } else {
            for (int k = 0; k < 16 && src + k < wend; k++) st[16 * g + k] = src[k];
        }
    }
    cp_async_commit();
    return (int)(gs - a);
}

/* y (n, out) = x · Wᵀ for a quantized W of decoder T, NR = n rows of x.
 * w: (out, rb bytes) rows, 16-byte aligned start, wend its end; x as xq (n,
 * in) int8 codes and xm (n, in/32) {d, S16 lo, S16 hi, sum Q as int bits}
 * when T::QX, else xf (n, in) f32. Block: MV_WARPS warps, one row each;
 * dynamic shared memory MV_WARPS * 2 * stage_bytes<T>(). */
template <class T, int NR>
__global__ void __launch_bounds__(MV_WARPS * 32) mv_quant(const lk_mm_seg y, const uint8_t *__restrict__ w,
                                                          size_t rb, const uint8_t *wend, const int8_t *__restrict__ xq,
                                                          const float4 *__restrict__ xm, const float *__restrict__ xf,
                                                          int64_t in, int64_t out, unsigned pf_blocks) {
    if constexpr (NR == 1) /* W is not written by the kernel before (batches: no prefetch, as many registers as before) */
        lk_mm_prefetch_rows(w, rb, (int64_t)blockIdx.x * MV_WARPS,
                            min((int64_t)blockIdx.x * MV_WARPS + MV_WARPS, out), pf_blocks);
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    extern __shared__ uint4 mv_smem[];
    constexpr int SB = stage_bytes<T>(), CHB = T::CB * T::BB;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * MV_WARPS + warp;
    if (row >= out) return; /* whole warps leave; no block-wide barrier follows */
    uint8_t *stage = (uint8_t *)mv_smem + warp * 2 * SB;
    const uint8_t *rp = w + row * rb, *re = rp + rb;
    const int64_t nblk = in / T::BE, nch = (nblk + T::CB - 1) / T::CB, nb32 = in / 32;
    float acc[NR];
#pragma unroll
    for (int i = 0; i < NR; i++) acc[i] = 0.0f;

    int off_next = stage_load(stage, rp, rp + CHB < re ? rp + CHB : re, wend, lane);
    for (int64_t c = 0; c < nch; c++) {
        const int off = off_next;
        uint8_t *cur = stage + (c & 1) * SB;
        if (c + 1 < nch) {
            const uint8_t *gs = rp + (c + 1) * CHB;
            off_next = stage_load(stage + ((c + 1) & 1) * SB, gs, gs + CHB < re ? gs + CHB : re, wend, lane);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncwarp();
        const int64_t b0 = c * T::CB;
        const int units = (int)((nblk - b0 < T::CB ? nblk - b0 : T::CB) * T::UPB);
        for (int u = lane; u < units; u += 32) {
            const uint8_t *blk = cur + off + (u / T::UPB) * T::BB;
            const int s = u % T::UPB;
            const int64_t ub = b0 * T::UPB + u; /* 32-block of x */
            if constexpr (T::QX) {
                uint32_t v[8];
                typename T::P p;
                T::load(blk, s, v, p);
#pragma unroll
                for (int i = 0; i < NR; i++) {
                    const uint4 *xp = (const uint4 *)(xq + i * in + 32 * ub);
                    const uint4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                    const uint32_t X[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                    acc[i] += T::dot(v, p, X, __ldg(xm + i * nb32 + ub));
                }
            } else {
                float wv[32];
                T::deqf(blk, s, wv);
#pragma unroll
                for (int i = 0; i < NR; i++) {
                    const float4 *xp = (const float4 *)(xf + i * in + 32 * ub);
                    float a = 0.0f;
#pragma unroll
                    for (int k = 0; k < 8; k++) {
                        const float4 xv = __ldg(xp + k);
                        a = fmaf(wv[4 * k], xv.x, a), a = fmaf(wv[4 * k + 1], xv.y, a);
                        a = fmaf(wv[4 * k + 2], xv.z, a), a = fmaf(wv[4 * k + 3], xv.w, a);
                    }
                    acc[i] += a;
                }
            }
        }
        __syncwarp(); /* the stage is refilled by the next iteration's load */
    }
#pragma unroll
    for (int i = 0; i < NR; i++) {
        const float s = warp_sum(acc[i]);
        if (lane == 0) lk_mm_seg_store(y, i, row, s);
    }
}

/* Float weights: 16 bytes of W as f32 (EPV = 4 or 8 values). */
template <int DT> __device__ __forceinline__ void unpack16(const uint4 &c, float *f) {
    if constexpr (DT == LK_DTYPE_F32) {
        f[0] = __uint_as_float(c.x), f[1] = __uint_as_float(c.y), f[2] = __uint_as_float(c.z), f[3] = __uint_as_float(c.w);
    } else if constexpr (DT == LK_DTYPE_BF16) {
        lk_unpack8(c, f);
    } else {
        const uint32_t u[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 t = __half22float2(*(const __half2 *)&u[k]);
            f[2 * k] = t.x, f[2 * k + 1] = t.y;
        }
    }
}

template <int DT> __device__ __forceinline__ float ld_float_w(const uint8_t *row, int64_t e) {
    if constexpr (DT == LK_DTYPE_F32) return ((const float *)row)[e];
    else if constexpr (DT == LK_DTYPE_BF16) return __uint_as_float((uint32_t)((const uint16_t *)row)[e] << 16);
    else return __half2float(((const __half *)row)[e]);
}

/* y (n, out) = x · Wᵀ, W f32/f16/bf16 (out, in) rows of rb bytes; x (n, in)
 * f32. vec: in a multiple of the 16-byte vector and x 16-byte aligned (16-byte
 * loads), else element by element. One warp per row. */
template <int DT, int NR>
__global__ void __launch_bounds__(MV_WARPS * 32) mv_float(const lk_mm_seg y, const uint8_t *__restrict__ w,
                                                          size_t rb, const float *__restrict__ x, int64_t in,
                                                          int64_t out, bool vec, unsigned pf_blocks) {
    if constexpr (NR == 1) /* W is not written by the kernel before (batches: no prefetch, as many registers as before) */
        lk_mm_prefetch_rows(w, rb, (int64_t)blockIdx.x * MV_WARPS,
                            min((int64_t)blockIdx.x * MV_WARPS + MV_WARPS, out), pf_blocks);
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    constexpr int EPV = DT == LK_DTYPE_F32 ? 4 : 8, U = 4;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * MV_WARPS + warp;
    if (row >= out) return;
    const uint8_t *rp = w + row * rb;
    float acc[NR];
#pragma unroll
    for (int i = 0; i < NR; i++) acc[i] = 0.0f;
    if (vec) {
        const uint4 *wr = (const uint4 *)rp;
        const int64_t nv = in / EPV;
        for (int64_t v0 = lane; v0 < nv; v0 += 32 * U) {
            uint4 c[U];
#pragma unroll
            for (int k = 0; k < U; k++) c[k] = v0 + 32 * k < nv ? __ldcs(wr + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int k = 0; k < U; k++) {
                const int64_t v = v0 + 32 * k;
                if (v >= nv) break;
                float f[EPV];
                unpack16<DT>(c[k], f);
#pragma unroll
                for (int i = 0; i < NR; i++) {
                    const float4 *xp = (const float4 *)(x + i * in + v * EPV);
#pragma unroll
                    for (int q = 0; q < EPV / 4; q++) {
                        const float4 xv = __ldg(xp + q);
                        acc[i] = fmaf(f[4 * q], xv.x, acc[i]), acc[i] = fmaf(f[4 * q + 1], xv.y, acc[i]);
                        acc[i] = fmaf(f[4 * q + 2], xv.z, acc[i]), acc[i] = fmaf(f[4 * q + 3], xv.w, acc[i]);
                    }
                }
            }
        }
    } else {
        for (int64_t e = lane; e < in; e += 32) {
            const float f = ld_float_w<DT>(rp, e);
#pragma unroll
            for (int i = 0; i < NR; i++) acc[i] = fmaf(f, __ldg(x + i * in + e), acc[i]);
        }
    }
#pragma unroll
    for (int i = 0; i < NR; i++) {
        const float s = warp_sum(acc[i]);
        if (lane == 0) lk_mm_seg_store(y, i, row, s);
    }
}

/* One warp's dot products of two rows of W (w0, w1: nv 16-byte vectors
 * each) with one row of x (float4 loads through L1), each row summed in
 * mv_float's order, so each result equals mv_float's for that row bit for
 * bit: (x · w0, x · w1), whole on every lane. */
template <int DT>
__device__ __forceinline__ float2 pair_dot(const uint4 *w0, const uint4 *w1, const float *__restrict__ x, int64_t nv,
                                           int lane) {
    constexpr int EPV = DT == LK_DTYPE_F32 ? 4 : 8, U = 4;
    float a0 = 0.0f, a1 = 0.0f;
    for (int64_t v0 = lane; v0 < nv; v0 += 32 * U) {
        uint4 c0[U], c1[U];
#pragma unroll
        for (int k = 0; k < U; k++) {
            const bool in_row = v0 + 32 * k < nv;
            c0[k] = in_row ? __ldcs(w0 + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
            c1[k] = in_row ? __ldcs(w1 + v0 + 32 * k) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < U; k++) {
            const int64_t v = v0 + 32 * k;
            if (v >= nv) break;
            float f0[EPV], f1[EPV];
            unpack16<DT>(c0[k], f0);
            unpack16<DT>(c1[k], f1);
            const float4 *xp = (const float4 *)(x + v * EPV);
#pragma unroll
            for (int q = 0; q < EPV / 4; q++) {
                const float4 xv = __ldg(xp + q);
                a0 = fmaf(f0[4 * q], xv.x, a0), a0 = fmaf(f0[4 * q + 1], xv.y, a0);
                a0 = fmaf(f0[4 * q + 2], xv.z, a0), a0 = fmaf(f0[4 * q + 3], xv.w, a0);
                a1 = fmaf(f1[4 * q], xv.x, a1), a1 = fmaf(f1[4 * q + 1], xv.y, a1);
                a1 = fmaf(f1[4 * q + 2], xv.z, a1), a1 = fmaf(f1[4 * q + 3], xv.w, a1);
            }
        }
    }
    return make_float2(warp_sum(a0), warp_sum(a1));
}

/* mv_float for n = 1 with a warp per rows 2w, 2w + 1 (vec loads only). */
template <int DT>
__global__ void __launch_bounds__(MV_WARPS * 32) mv_float2(const lk_mm_seg y, const uint8_t *__restrict__ w,
                                                           size_t rb, const float *__restrict__ x, int64_t in,
                                                           int64_t out, unsigned pf_blocks) {
    const int64_t b0 = (int64_t)blockIdx.x * 2 * MV_WARPS; /* the block's first row */
    lk_mm_prefetch_rows(w, rb, b0, min(b0 + 2 * MV_WARPS, out), pf_blocks); /* W: not written by the kernel before */
    lk_pdl_wait();
    lk_pdl_release();
    constexpr int EPV = DT == LK_DTYPE_F32 ? 4 : 8;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t r0 = ((int64_t)blockIdx.x * MV_WARPS + warp) * 2;
    if (r0 >= out) return;
    const bool two = r0 + 1 < out;
    const float2 a = pair_dot<DT>((const uint4 *)(w + r0 * rb), (const uint4 *)(w + (two ? r0 + 1 : r0) * rb), x,
                                  in / EPV, lane);
    if (lane == 0) {
        lk_mm_seg_store(y, 0, r0, a.x);
        if (two) lk_mm_seg_store(y, 0, r0 + 1, a.y);
    }
}

/* The gated feed-forward product of one row of x: y (out) = act(x · Wgᵀ) *
 * (x · Wuᵀ), a warp per output row j reading row j of Wg and of Wu (vec
 * loads only), act = lk_dev_glu(gelu, ...): the bits of mv_float on both
 * matrices and the GLU op after it, in one kernel. */
template <int DT>
__global__ void __launch_bounds__(MV_WARPS * 32) mv_glu(float *__restrict__ y, const uint8_t *__restrict__ wg,
                                                        const uint8_t *__restrict__ wu, size_t rb,
                                                        const float *__restrict__ x, int64_t in, int64_t out,
                                                        bool gelu, unsigned pf_blocks) {
    const int64_t b0 = (int64_t)blockIdx.x * MV_WARPS, b1 = min(b0 + MV_WARPS, out); /* the block's rows */
    lk_mm_prefetch_rows(wg, rb, b0, b1, pf_blocks); /* W_g, W_u: not written by the kernel before */
    lk_mm_prefetch_rows(wu, rb, b0, b1, pf_blocks);
    lk_pdl_wait();
    lk_pdl_release();
    constexpr int EPV = DT == LK_DTYPE_F32 ? 4 : 8;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * MV_WARPS + warp;
    if (r >= out) return;
    const float2 a = pair_dot<DT>((const uint4 *)(wg + r * rb), (const uint4 *)(wu + r * rb), x, in / EPV, lane);
    if (lane == 0) y[r] = lk_dev_glu(gelu, a.x, a.y);
}

/* dst (rows, in) bf16 = W's rows dequantized (decoder T), one thread per unit. */
template <class T>
__global__ void __launch_bounds__(256) deq_bf16(uint16_t *__restrict__ dst, const uint8_t *__restrict__ w, size_t rb,
                                                int64_t in, int64_t rows) {
    const int64_t upr = in / 32, tot = rows * upr;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < tot; t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = t / upr, u = t % upr;
        float f[32];
        T::deqf(w + r * rb + (u / T::UPB) * T::BB, (int)(u % T::UPB), f);
        uint32_t p[16];
#pragma unroll
        for (int k = 0; k < 16; k++)
            p[k] = (uint32_t)lk_dev_f32_to_bf16(f[2 * k]) | (uint32_t)lk_dev_f32_to_bf16(f[2 * k + 1]) << 16;
        uint4 *o = (uint4 *)(dst + r * in + 32 * u);
#pragma unroll
        for (int k = 0; k < 4; k++) o[k] = make_uint4(p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3]);
    }
}

/* dst (count) bf16 = src (count) of float dtype DT, rounded to nearest even. */
template <int DT>
__global__ void __launch_bounds__(256) float_to_bf16(uint16_t *__restrict__ dst, const void *__restrict__ src,
                                                     int64_t count) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < count; t += (int64_t)gridDim.x * blockDim.x)
        dst[t] = lk_dev_f32_to_bf16(ld_float_w<DT>((const uint8_t *)src, t));
}

/* ------------------------------------------------------------ launchers */

template <class T, int NR>
cudaError_t launch_quant(const lk_mm_seg &y, const uint8_t *w, int64_t in, int64_t out, const int8_t *xq, const float4 *xm,
                         const float *xf, size_t pf, cudaStream_t s) {
    const size_t rb = (size_t)(in / T::BE) * T::BB, smem = (size_t)MV_WARPS * 2 * stage_bytes<T>();
    const unsigned grid = (unsigned)((out + MV_WARPS - 1) / MV_WARPS), pfb = lk_mm_pf_blocks(pf, MV_WARPS * rb, grid);
    (void)lk_launch_kernel(mv_quant<T, NR>, grid, MV_WARPS * 32, smem, s, true, 0, y, w, rb, w + rb * out, xq, xm, xf, in,
                           out, pfb);
    return cudaGetLastError();
}

template <int DT, int NR>
cudaError_t launch_float(const lk_mm_seg &y, const uint8_t *w, int64_t in, int64_t out, const float *x, size_t pf,
                         cudaStream_t s) {
    const int es = DT == LK_DTYPE_F32 ? 4 : 2, epv = 16 / es;
    const size_t rb = (size_t)in * es;
    const bool vec = in % epv == 0 && ((uintptr_t)x & 15) == 0;
    if (NR == 1 && vec && out <= MV_PAIR_MAX_OUT) {
        const unsigned grid2 = (unsigned)((out + 2 * MV_WARPS - 1) / (2 * MV_WARPS));
        (void)lk_launch_kernel(mv_float2<DT>, grid2, MV_WARPS * 32, 0, s, true, 0, y, w, rb, x, in, out,
                               lk_mm_pf_blocks(pf, 2 * MV_WARPS * rb, grid2));
        return cudaGetLastError();
    }
    const unsigned grid = (unsigned)((out + MV_WARPS - 1) / MV_WARPS);
    (void)lk_launch_kernel(mv_float<DT, NR>, grid, MV_WARPS * 32, 0, s, true, 0, y, w, rb, x, in, out, vec,
                           lk_mm_pf_blocks(pf, MV_WARPS * rb, grid));
    return cudaGetLastError();
}

template <class T>
cudaError_t gemv_q(int n, const lk_mm_seg &y, const uint8_t *w, int64_t in, int64_t out, const int8_t *xq, const float4 *xm,
                   const float *xf, size_t pf, cudaStream_t s) {
    switch (n) {
    case 1: return launch_quant<T, 1>(y, w, in, out, xq, xm, xf, pf, s);
    case 2: return launch_quant<T, 2>(y, w, in, out, xq, xm, xf, pf, s);
    case 3: return launch_quant<T, 3>(y, w, in, out, xq, xm, xf, pf, s);
    case 4: return launch_quant<T, 4>(y, w, in, out, xq, xm, xf, pf, s);
    case 5: return launch_quant<T, 5>(y, w, in, out, xq, xm, xf, pf, s);
    case 6: return launch_quant<T, 6>(y, w, in, out, xq, xm, xf, pf, s);
    case 7: return launch_quant<T, 7>(y, w, in, out, xq, xm, xf, pf, s);
    default: return launch_quant<T, 8>(y, w, in, out, xq, xm, xf, pf, s);
    }
}

template <int DT>
cudaError_t gemv_f(int n, const lk_mm_seg &y, const uint8_t *w, int64_t in, int64_t out, const float *x, size_t pf,
                   cudaStream_t s) {
    switch (n) {
    case 1: return launch_float<DT, 1>(y, w, in, out, x, pf, s);
    case 2: return launch_float<DT, 2>(y, w, in, out, x, pf, s);
    case 3: return launch_float<DT, 3>(y, w, in, out, x, pf, s);
    case 4: return launch_float<DT, 4>(y, w, in, out, x, pf, s);
    case 5: return launch_float<DT, 5>(y, w, in, out, x, pf, s);
    case 6: return launch_float<DT, 6>(y, w, in, out, x, pf, s);
    case 7: return launch_float<DT, 7>(y, w, in, out, x, pf, s);
    default: return launch_float<DT, 8>(y, w, in, out, x, pf, s);
    }
}

template <class T> cudaError_t deq_launch(uint16_t *dst, const uint8_t *w, int64_t in, int64_t rows, cudaStream_t s) {
    const int64_t units = rows * (in / 32);
    const unsigned grid = (unsigned)((units + 255) / 256 < 65536 ? (units + 255) / 256 : 65536);
    deq_bf16<T><<<grid, 256, 0, s>>>(dst, w, (size_t)(in / T::BE) * T::BB, in, rows);
    return cudaGetLastError();
}

} // namespace

/* Declared in matmul.cu. y (n, out) = x · Wᵀ for n <= LK_CUDA_MV_MAX_N, row
 * r of the output written where y (lk_mm_seg) says:
 * quantized x (xq, xm; see mv_quant) for the integer-dot types, xf for the
 * others; the first blocks prefetch about pf bytes of W (lk_mm_pf_blocks).
 * Launch errors returned; arguments checked by the caller. */
cudaError_t lk_mm_gemv(lk_dtype dt, int n, const lk_mm_seg &y, const void *wv, int64_t in, int64_t out,
                       const float *xf, const int8_t *xq, const float4 *xm, size_t pf, cudaStream_t s) {
    const uint8_t *w = (const uint8_t *)wv;
    switch (dt) {
    case LK_DTYPE_F32: return gemv_f<LK_DTYPE_F32>(n, y, w, in, out, xf, pf, s);
    case LK_DTYPE_F16: return gemv_f<LK_DTYPE_F16>(n, y, w, in, out, xf, pf, s);
    case LK_DTYPE_BF16: return gemv_f<LK_DTYPE_BF16>(n, y, w, in, out, xf, pf, s);
    case LK_DTYPE_Q8_0: return gemv_q<dq_q8_0>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q4_0: return gemv_q<dq_legacy<false, false>>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q4_1: return gemv_q<dq_legacy<true, false>>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q5_0: return gemv_q<dq_legacy<false, true>>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q5_1: return gemv_q<dq_legacy<true, true>>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q2_K: return gemv_q<dq_q2_k>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q3_K: return gemv_q<dq_q3_k>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q4_K: return gemv_q<dq_q45_k<false>>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q5_K: return gemv_q<dq_q45_k<true>>(n, y, w, in, out, xq, xm, xf, pf, s);
    case LK_DTYPE_Q6_K: return gemv_q<dq_q6_k>(n, y, w, in, out, xq, xm, xf, pf, s);
    default: return cudaErrorInvalidValue;
    }
}

/* Declared in matmul.cu. y (out) = act(x · Wgᵀ) * (x · Wuᵀ) for one row of
 * x, W f32/f16/bf16 with in a multiple of the 16-byte vector and x 16-byte
 * aligned (the caller checks: lk_cuda_matmul_glu_fits). */
cudaError_t lk_mm_gemv_glu(lk_dtype dt, float *y, const void *wg, const void *wu, int64_t in, int64_t out,
                           const float *x, bool gelu, size_t pf, cudaStream_t s) {
    const unsigned grid = (unsigned)((out + MV_WARPS - 1) / MV_WARPS);
    const uint8_t *g = (const uint8_t *)wg, *u = (const uint8_t *)wu;
    const size_t rb = (size_t)lk_dtype_row_bytes(dt, in);
    const unsigned pfb = lk_mm_pf_blocks(pf, 2 * MV_WARPS * rb, grid); /* a block: MV_WARPS rows of both */
    switch (dt) {
    case LK_DTYPE_F32:
        return lk_launch_kernel(mv_glu<LK_DTYPE_F32>, grid, MV_WARPS * 32, 0, s, true, 0, y, g, u, rb, x, in, out, gelu, pfb);
    case LK_DTYPE_F16:
        return lk_launch_kernel(mv_glu<LK_DTYPE_F16>, grid, MV_WARPS * 32, 0, s, true, 0, y, g, u, rb, x, in, out, gelu, pfb);
    case LK_DTYPE_BF16:
        return lk_launch_kernel(mv_glu<LK_DTYPE_BF16>, grid, MV_WARPS * 32, 0, s, true, 0, y, g, u, rb, x, in, out, gelu, pfb);
    default: return cudaErrorInvalidValue;
    }
}

/* Declared in matmul.cu. dst (rows, in) bf16 = rows of W (dtype dt, any but
 * bf16) converted / dequantized; W's rows as stored, 16-byte aligned dst. */
cudaError_t lk_mm_to_bf16_rows(lk_dtype dt, uint16_t *dst, const void *wv, int64_t in, int64_t rows, cudaStream_t s) {
    const uint8_t *w = (const uint8_t *)wv;
    if (dt == LK_DTYPE_F32 || dt == LK_DTYPE_F16) {
        const int64_t cnt = rows * in;
        const unsigned grid = (unsigned)((cnt + 255) / 256 < 65536 ? (cnt + 255) / 256 : 65536);
        if (dt == LK_DTYPE_F32) float_to_bf16<LK_DTYPE_F32><<<grid, 256, 0, s>>>(dst, w, cnt);
        else float_to_bf16<LK_DTYPE_F16><<<grid, 256, 0, s>>>(dst, w, cnt);
        return cudaGetLastError();
    }
    switch (dt) {
    case LK_DTYPE_Q8_0: return deq_launch<dq_q8_0>(dst, w, in, rows, s);
    case LK_DTYPE_Q4_0: return deq_launch<dq_legacy<false, false>>(dst, w, in, rows, s);
    case LK_DTYPE_Q4_1: return deq_launch<dq_legacy<true, false>>(dst, w, in, rows, s);
    case LK_DTYPE_Q5_0: return deq_launch<dq_legacy<false, true>>(dst, w, in, rows, s);
    case LK_DTYPE_Q5_1: return deq_launch<dq_legacy<true, true>>(dst, w, in, rows, s);
    case LK_DTYPE_Q2_K: return deq_launch<dq_q2_k>(dst, w, in, rows, s);
    case LK_DTYPE_Q3_K: return deq_launch<dq_q3_k>(dst, w, in, rows, s);
    case LK_DTYPE_Q4_K: return deq_launch<dq_q45_k<false>>(dst, w, in, rows, s);
    case LK_DTYPE_Q5_K: return deq_launch<dq_q45_k<true>>(dst, w, in, rows, s);
    case LK_DTYPE_Q6_K: return deq_launch<dq_q6_k>(dst, w, in, rows, s);
    default: return cudaErrorInvalidValue;
    }
}
