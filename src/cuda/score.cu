/*
 * score.cu - Loki's score stage: q'[:d] . k'[:d] for every cached token,
 * streaming only the low part (k_lo) of each page; exact-topk uses the same
 * kernel over all D components of the plain layout (d = D).
 *
 * One warp per page (64 tokens), four pages per block. Lanes split a key's
 * low part into 16-byte chunks (the next power of two >= d/8 lanes per
 * token, so a warp covers 32/LPT tokens per load); eight loads are issued
 * before the first is used, then the chunk dots are reduced by shuffles. Each
 * key is read once for all NH query heads of its KV head.
 */
#include "cuda/kernels.cuh"

#include <math.h>

#define SC_WARPS 4

template <int NH, int LPT> __global__ void __launch_bounds__(SC_WARPS * 32) score_kernel(const lk_score_args a) {
    const int b = blockIdx.z, groups = a.G / NH;
    const int kvh = blockIdx.y / groups, hq0 = kvh * a.G + (blockIdx.y % groups) * NH;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int S = a.kv.seq_len[b], lp = blockIdx.x * SC_WARPS + warp;
    if (lp * LK_GPU_PAGE >= S) return;
    const int D = a.kv.D, d = a.kv.dsplit[a.kv.layer * a.kv.Hkv + kvh];
    const int dsc = a.full ? D : d, nch = dsc / 8; /* full: the plain layout, d == D */
    constexpr int lpt = LPT, tpi = 32 / LPT; /* lanes per key: the power of two >= d/8 */
    const int c = lane % lpt, grp = lane / lpt;
    const bool active = c < nch;

    float qr[NH][8], mx[NH];
#pragma unroll
    for (int h = 0; h < NH; h++) {
        const float *qh = a.q + ((size_t)b * a.H + hq0 + h) * D + c * 8;
#pragma unroll
        for (int e = 0; e < 8; e++) qr[h][e] = active ? qh[e] * a.scale : 0.0f;
        mx[h] = -INFINITY;
    }
    const int32_t page = a.kv.block_table[(size_t)b * a.kv.mpps + lp];
    const uint16_t *klo = a.kv.pool + lk_seg_offset(a.kv.layer, page, kvh, a.kv.n_pages, a.kv.Hkv, D); /* (P, d) */
    const int valid = min(LK_GPU_PAGE, S - lp * LK_GPU_PAGE);
#pragma unroll 1
    for (int t0 = 0; t0 < valid; t0 += 8 * tpi) {
        uint4 kc[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int tok = t0 + u * tpi + grp;
            kc[u] = active && tok < valid ? __ldg((const uint4 *)(klo + (size_t)tok * d + c * 8)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int tok = t0 + u * tpi + grp, pos = lp * LK_GPU_PAGE + tok;
            float k8[8], tot = 0.0f;
            lk_unpack8(kc[u], k8);
#pragma unroll
            for (int h = 0; h < NH; h++) {
                float part = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) part = fmaf(qr[h][e], k8[e], part);
#pragma unroll
                for (int off = lpt / 2; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
                if (tok < valid) {
                    mx[h] = fmaxf(mx[h], part);
                    if (c == 0 && !a.sum_rows) a.out[((size_t)b * a.H + hq0 + h) * a.n_ctx + pos] = part;
                }
                tot += part;
            }
            if (a.sum_rows && c == 0 && tok < valid) a.out[((size_t)b * a.kv.Hkv + kvh) * a.n_ctx + pos] = tot;
        }
    }
    if (a.rowmax) {
#pragma unroll
        for (int h = 0; h < NH; h++) {
            float v = mx[h];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
            if (lane == 0) atomicMax(&a.rowmax[(size_t)b * a.H + hq0 + h], lk_float_key(v));
        }
    }
}

cudaError_t lk_launch_score(const lk_score_args *a, int B, int32_t max_len, cudaStream_t s) {
    /* a summed (shared) row needs every head of the group in one block */
    const int nh = lk_pick_nh(a->G);
    if (a->sum_rows && nh != a->G) return cudaErrorInvalidValue;
    const int pages = (max_len + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    if (pages == 0) return cudaSuccess;
    dim3 grid((pages + SC_WARPS - 1) / SC_WARPS, a->kv.Hkv * (a->G / nh), B);
    /* lanes per key from the widest split dim of the cache's heads */
    int lpt = 1;
    while (lpt * 8 < (a->full ? a->kv.D : a->dmax)) lpt <<= 1;
    switch (nh * 64 + lpt) {
#define LK_SCORE_CASE(NH, LPT)                                                                                         \
    case NH * 64 + LPT: score_kernel<NH, LPT><<<grid, SC_WARPS * 32, 0, s>>>(*a); break;
#define LK_SCORE_NH(NH) LK_SCORE_CASE(NH, 1) LK_SCORE_CASE(NH, 2) LK_SCORE_CASE(NH, 4) LK_SCORE_CASE(NH, 8) \
    LK_SCORE_CASE(NH, 16) LK_SCORE_CASE(NH, 32)
        LK_SCORE_NH(1) LK_SCORE_NH(2) LK_SCORE_NH(3) LK_SCORE_NH(4) LK_SCORE_NH(6) LK_SCORE_NH(8)
#undef LK_SCORE_NH
#undef LK_SCORE_CASE
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
