/*
 * gemv_mma.cu - products of 9..16 rows of x with f16 or bf16 weights (a
 * decode batch of up to 16 sequences) on the tensor cores, reading W once:
 * y (n, out) = x (n, in) . W^T, W (out, in) in place, x already rounded to
 * W's 16-bit type (matmul.cu converts it, as for its cuBLAS path: with f16
 * W an activation beyond +-65504 becomes inf there, as in llama.cpp's cuBLAS
 * path, while n <= 8 rows keep x in f32).
 *
 * Why: for a batch of 16 the step reads the weights once, like a single
 * decode step, but a skinny cuBLAS GEMM streamed the 13.5 GB of a 7B model at
 * about 2.7 TB/s (session 14: 4.95 ms of a 12.8 ms Llama-2-7B step at B = 16),
 * against ~3.7 TB/s for the one-row kernels. With 16 rows the arithmetic
 * (2 * 16 flops per weight) is too much for the f32 FMA units at full
 * bandwidth, so it goes to mma.sync.m16n8k16: W rows are the MMA's 16 rows,
 * the batch its 8-column tiles.
 *
 * Shape: a block of 8 warps takes 16 output rows; warp w takes the k-steps
 * of 32 numbered w, w + 8, ... (split K; the 8 partial 16 x 16 tiles summed
 * in shared memory in warp order, so the result does not depend on timing).
 * Lane (g = lane / 4, t = lane % 4) loads 16 bytes (8 values) of W rows g
 * and g + 8 and of x rows g and g + 8 at k = 32 s + 8 t: the MMA's k index
 * is permuted the same way on both sides (its logical columns 2t, 2t + 1,
 * 2t + 8, 2t + 9 of the first k16 are physical 8t + 0..3, of the second
 * 8t + 4..7), which a dot product does not see, so no shuffle or shared
 * staging is needed. LK_MMA_U k-steps are loaded before the first is used.
 */
#include "cuda/common.cuh"

/* Warps a block, splitting K (dev/cuda knob: 4 gives 128-thread blocks, 5
 * resident an SM by registers instead of 2, so the 384 blocks of a 7B
 * model's q|k|v product with 8 KV heads are one wave of the H200's slots
 * instead of 1.5; each warp then sums twice the k-steps, another order) */
#ifndef LK_MMA_WARPS
#define LK_MMA_WARPS 8
#endif
/* Row tiles of 16 per block (RT) and k-steps of 32 in flight per warp (U):
 * W bytes in flight per warp are RT * U KB either way; with RT = 2 each
 * block reads x once for 32 output rows instead of 16, halving the x bytes
 * that come from L2 per W byte (x is as large as the block's W at RT = 1).
 * The per-output summation order is the same for every (RT, U): warp w
 * accumulates k-steps w, w + 8, w + 16, ... in that order. */
#ifndef LK_MMA_RT
#define LK_MMA_RT 1
#endif
/* LK_MMA_PIPE=1 (dev/cuda knob, not measured yet): the k-steps of the next
 * group are loaded before the current group's MMAs, in two register buffers
 * used in turn, so a warp's loads stay in flight while it computes (the
 * default loop issues a group's loads only after the MMAs of the one
 * before). Same summation order, so the same bits. */
#ifndef LK_MMA_PIPE
#define LK_MMA_PIPE 0
#endif
#ifndef LK_MMA_U /* k-steps of a group (dev/cuda knob; with LK_MMA_PIPE two groups are in flight) */
#define LK_MMA_U (LK_MMA_RT == 1 ? 4 : 2)
#endif
#define LK_MMA_ROWS (16 * LK_MMA_RT)

template <bool BF>
__device__ __forceinline__ void mma_16816(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1) {
    if (BF)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* grid (ceil(out / LK_MMA_ROWS)), LK_MMA_WARPS warps. w (out, in), x (n, in)
 * 16-bit; in a multiple of 32; 8 < n <= 16. Rows past out or n are loaded
 * from the last row (clamped) and not stored. The first pf_blocks blocks
 * ask L2 for their W rows before waiting on the kernel before (lk_l2_prefetch). */
template <bool BF>
__global__ void __launch_bounds__(LK_MMA_WARPS * 32)
    mv_mma16(lk_mm_seg y, const uint16_t *__restrict__ w, const uint16_t *__restrict__ x, int64_t in, int64_t out,
             int n, unsigned pf_blocks) {
    constexpr int RT = LK_MMA_RT, U = LK_MMA_U;
    __shared__ float red[LK_MMA_WARPS][LK_MMA_ROWS][17]; /* (warp, W row, batch row), padded */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t r0 = (int64_t)blockIdx.x * LK_MMA_ROWS;
    const uint4 *wa[RT], *wb[RT]; /* tile i: W rows r0 + 16 i + g and + 8 */
#pragma unroll
    for (int i = 0; i < RT; i++) {
        wa[i] = (const uint4 *)(w + min(r0 + 16 * i + g, out - 1) * in) + t;
        wb[i] = (const uint4 *)(w + min(r0 + 16 * i + g + 8, out - 1) * in) + t;
    }
    const uint4 *xa = (const uint4 *)(x + (int64_t)min(g, n - 1) * in) + t;
    const uint4 *xb = (const uint4 *)(x + (int64_t)min(g + 8, n - 1) * in) + t;
    lk_mm_prefetch_rows(w, (size_t)in * 2, r0, min(r0 + LK_MMA_ROWS, out), pf_blocks); /* W: never written */
    lk_pdl_wait(); /* launched with programmatic dependent launch: x comes from the kernel before */
    lk_pdl_release();
    float c0[RT][4], c1[RT][4]; /* per tile: batch rows 0..7, 8..15 */
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) c0[i][e] = c1[i][e] = 0.0f;
    const int64_t steps = in / 32, group = (int64_t)LK_MMA_WARPS * U; /* k-steps of a warp's group: s0 + 8u */
    /* one group of U k-steps from s0: W's tiles and x's rows into registers */
    struct kbuf {
        uint4 va[RT][U], vb[RT][U], ua[U], ub[U];
    };
    auto load = [&](kbuf &k, int64_t s0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t s = s0 + (int64_t)LK_MMA_WARPS * u;
            if (s < steps) {
#pragma unroll
                for (int i = 0; i < RT; i++) k.va[i][u] = __ldcs(wa[i] + 4 * s), k.vb[i][u] = __ldcs(wb[i] + 4 * s);
                k.ua[u] = xa[4 * s], k.ub[u] = xb[4 * s]; /* x: from L1/L2, every block */
            }
        }
    };
    auto mma = [&](const kbuf &k, int64_t s0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (s0 + (int64_t)LK_MMA_WARPS * u >= steps) break;
#pragma unroll
            for (int i = 0; i < RT; i++) {
                mma_16816<BF>(c0[i], k.va[i][u].x, k.vb[i][u].x, k.va[i][u].y, k.vb[i][u].y, k.ua[u].x, k.ua[u].y);
                mma_16816<BF>(c0[i], k.va[i][u].z, k.vb[i][u].z, k.va[i][u].w, k.vb[i][u].w, k.ua[u].z, k.ua[u].w);
                mma_16816<BF>(c1[i], k.va[i][u].x, k.vb[i][u].x, k.va[i][u].y, k.vb[i][u].y, k.ub[u].x, k.ub[u].y);
                mma_16816<BF>(c1[i], k.va[i][u].z, k.vb[i][u].z, k.va[i][u].w, k.vb[i][u].w, k.ub[u].z, k.ub[u].w);
            }
        }
    };
#if LK_MMA_PIPE
    kbuf ka, kb; /* used in turn: the next group loads while this one computes */
    if (warp < steps) load(ka, warp);
    for (int64_t s0 = warp; s0 < steps;) {
        if (s0 + group < steps) load(kb, s0 + group);
        mma(ka, s0);
        if ((s0 += group) >= steps) break;
        if (s0 + group < steps) load(ka, s0 + group);
        mma(kb, s0);
        s0 += group;
    }
#else
    for (int64_t s0 = warp; s0 < steps; s0 += group) {
        kbuf k;
        load(k, s0);
        mma(k, s0);
    }
#endif
    /* C fragment: c[0], c[1] = (W row g, batch 2t, 2t + 1), c[2], c[3] = (row g + 8, same) */
#pragma unroll
    for (int i = 0; i < RT; i++) {
        float(*rd)[17] = red[warp] + 16 * i;
        rd[g][2 * t] = c0[i][0], rd[g][2 * t + 1] = c0[i][1];
        rd[g + 8][2 * t] = c0[i][2], rd[g + 8][2 * t + 1] = c0[i][3];
        rd[g][8 + 2 * t] = c1[i][0], rd[g][9 + 2 * t] = c1[i][1];
        rd[g + 8][8 + 2 * t] = c1[i][2], rd[g + 8][9 + 2 * t] = c1[i][3];
    }
    __syncthreads();
    for (int o = threadIdx.x; o < LK_MMA_ROWS * 16; o += LK_MMA_WARPS * 32) { /* one (row, batch) each */
        const int row = o >> 4, b = o & 15;
        if (r0 + row < out && b < n) {
            float v = 0.0f;
#pragma unroll
            for (int k = 0; k < LK_MMA_WARPS; k++) v += red[k][row][b];
            lk_mm_seg_store(y, b, r0 + row, v);
        }
    }
}

cudaError_t lk_mm_gemv_mma(bool bf16, int n, const lk_mm_seg &y, const uint16_t *w, const uint16_t *x, int64_t in,
                           int64_t out, size_t pf, cudaStream_t s) {
    const unsigned blocks = (unsigned)((out + LK_MMA_ROWS - 1) / LK_MMA_ROWS);
    const unsigned pfb = lk_mm_pf_blocks(pf, (size_t)LK_MMA_ROWS * in * 2, blocks);
    if (bf16) return lk_launch_kernel(mv_mma16<true>, blocks, LK_MMA_WARPS * 32, 0, s, true, 0, y, w, x, in, out, n, pfb);
    return lk_launch_kernel(mv_mma16<false>, blocks, LK_MMA_WARPS * 32, 0, s, true, 0, y, w, x, in, out, n, pfb);
}
