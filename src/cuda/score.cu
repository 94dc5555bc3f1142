/*
 * score.cu - Loki's score stage: q'[:d] . k'[:d] for every cached token,
 * streaming only the low part (k_lo) of each page; exact-topk uses the same
 * kernel over all D components of the plain layout (d = D).
 *
 * A warp takes one to four pages (64 tokens each), a block four warps.
 * Lanes split a key's low part into 16-byte chunks (the next power of two >=
 * d/8 lanes per token, so a warp covers 32/LPT tokens per load); LD loads
 * are in flight while the previous LD are used, then the chunk dots are
 * reduced by shuffles. Each
 * key is read once for all NH query heads of its KV head. A summed row (the
 * GQA-shared selection) is sum_h q_h . k = (sum_h q_h) . k: the group's
 * queries are added once per thread and every key takes one dot product, so
 * the kernel stays bound by reading k_lo instead of by the G dot products
 * (the sum's rounding differs from summing G scores by float noise only).
 */
#include "cuda/kernels.cuh"

#include <math.h>

#define SC_WARPS 4
/* One head per block with 4-16 lanes per key (the usual Loki rows: MHA or
 * summed, d = 32..128): four 16-byte loads per lane and step, eight steps
 * per warp, registers bounded for 8 blocks (32 warps) per SM. Against eight
 * loads and four steps with no bound (96 registers, 5 blocks per SM) the
 * score stage went 313 -> 268 us at B = 16, 32k, 86 -> 72 at B = 1, 128k on
 * one h200, 273.5 -> 268 and 79 -> 72.6 on another (2026-12-03, RESULTS.md
 * item 30). The wider kernels (several heads per block: per-head selection
 * on GQA; 1-2 or 32 lanes per key) spill at 64 registers, so they keep
 * eight loads, four steps and no bound: MINB 0 leaves ptxas its own choice,
 * as before (an explicit 1 let it take 223 registers instead of 168 for 4
 * heads and 3 blocks per SM became 2: B = 16, 32/8, 32k, per-head
 * selection, score 113 -> 157 us). dev/cuda variant knobs: SC_LD,
 * SC_STEPS, SC_MINB (the narrow kernels). */
#ifndef SC_STEPS
#define SC_STEPS 8
#endif
#ifndef SC_LD
#define SC_LD 4
#endif
#ifndef SC_MINB
#define SC_MINB 8
#endif

/* A kernel's loads per lane and step (LD), the steps to cover one page with
 * LPT lanes per key (SPP), the pages one warp takes (PPW), its blocks per
 * SM bound (MINB). */
template <int NH, int LPT> struct sc_cfg {
    static constexpr bool NARROW = NH == 1 && LPT >= 4 && LPT <= 16;
    static constexpr int LD = NARROW ? SC_LD : 8, STEPS = NARROW ? SC_STEPS : 4, MINB = NARROW ? SC_MINB : 0;
    static constexpr int TPI = 32 / LPT;                       /* keys per load */
    static constexpr int SPP = (LK_GPU_PAGE + LD * TPI - 1) / (LD * TPI);
    static constexpr int PPW = STEPS / SPP > 0 ? STEPS / SPP : 1;
    static constexpr int NSTEP = PPW * SPP;
};

/* Warp w of block x takes pages (x * PPW + j) * SC_WARPS + w, j < PPW (the
 * block's warps read adjacent pages at each step); the next step's chunks
 * are loaded before the current ones are used, and the pages' block-table
 * entries before any of them. */
template <int NH, int LPT, bool SUM>
__global__ void __launch_bounds__(SC_WARPS * 32, (sc_cfg<NH, LPT>::MINB)) score_kernel(const lk_score_args a) {
    using C = sc_cfg<NH, LPT>;
    lk_pdl_wait();
    lk_pdl_release();
    const int b = blockIdx.z, groups = SUM ? 1 : a.G / NH;
    const int kvh = blockIdx.y / groups, hq0 = kvh * a.G + (blockIdx.y % groups) * NH;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int S = a.kv.seq_len[b], lp0 = blockIdx.x * C::PPW * SC_WARPS + warp;
    if (lp0 * LK_GPU_PAGE >= S) return;
    const int D = a.kv.D, d = a.kv.dsplit[a.kv.layer * a.kv.Hkv + kvh];
    const int dsc = a.full ? D : d, nch = dsc / 8; /* full: the plain layout, d == D */
    constexpr int lpt = LPT, tpi = C::TPI; /* lanes per key: the power of two >= d/8 */
    const int c = lane % lpt, grp = lane / lpt;
    const bool active = c < nch;

    const uint16_t *klo[C::PPW]; /* (P, d) of each page, or NULL past the sequence */
    int valid[C::PPW];
#pragma unroll
    for (int j = 0; j < C::PPW; j++) {
        const int lp = lp0 + j * SC_WARPS;
        valid[j] = max(0, min(LK_GPU_PAGE, S - lp * LK_GPU_PAGE));
        const int32_t page = valid[j] ? a.kv.block_table[(size_t)b * a.kv.mpps + lp] : 0;
        klo[j] = a.kv.pool + lk_seg_offset(a.kv.layer, page, kvh, a.kv.n_pages, a.kv.Hkv, D);
    }
    float qr[NH][8], mx[NH];
#pragma unroll
    for (int h = 0; h < NH; h++) {
        const float *qh = a.q + ((size_t)b * a.H + hq0 + h) * D + c * 8;
#pragma unroll
        for (int e = 0; e < 8; e++) qr[h][e] = 0.0f;
        for (int g = 0; active && g < (SUM ? a.G : 1); g++) /* SUM: NH == 1, the group's heads added */
#pragma unroll
            for (int e = 0; e < 8; e++) qr[h][e] += qh[(size_t)g * D + e];
#pragma unroll
        for (int e = 0; e < 8; e++) qr[h][e] *= a.scale;
        mx[h] = -INFINITY;
    }
    auto load = [&](int step, uint4 (&kc)[C::LD]) {
        const int j = step / C::SPP, t0 = (step % C::SPP) * C::LD * tpi;
#pragma unroll
        for (int u = 0; u < C::LD; u++) {
            const int tok = t0 + u * tpi + grp;
            kc[u] = active && tok < valid[j] ? __ldg((const uint4 *)(klo[j] + (size_t)tok * d + c * 8))
                                             : make_uint4(0, 0, 0, 0);
        }
    };
    uint4 cur[C::LD], nxt[C::LD];
    load(0, cur);
#pragma unroll
    for (int step = 0; step < C::NSTEP; step++) {
        if (step + 1 < C::NSTEP) load(step + 1, nxt);
        const int j = step / C::SPP, t0 = (step % C::SPP) * C::LD * tpi, lp = lp0 + j * SC_WARPS;
#pragma unroll
        for (int u = 0; u < C::LD; u++) {
            const int tok = t0 + u * tpi + grp, pos = lp * LK_GPU_PAGE + tok;
            float k8[8];
            lk_unpack8(cur[u], k8);
#pragma unroll
            for (int h = 0; h < NH; h++) {
                float part = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) part = fmaf(qr[h][e], k8[e], part);
#pragma unroll
                for (int off = lpt / 2; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
                if (tok < valid[j]) {
                    mx[h] = fmaxf(mx[h], part);
                    if (c == 0) a.out[((size_t)b * (SUM ? a.kv.Hkv : a.H) + (SUM ? kvh : hq0 + h)) * a.n_ctx + pos] = part;
                }
            }
        }
        if (step + 1 < C::NSTEP)
#pragma unroll
            for (int u = 0; u < C::LD; u++) cur[u] = nxt[u];
    }
    if (a.rowmax && !SUM) {
#pragma unroll
        for (int h = 0; h < NH; h++) {
            float v = mx[h];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
            if (lane == 0) atomicMax(&a.rowmax[(size_t)b * a.H + hq0 + h], lk_float_key(v));
        }
    }
}

/* Blocks of SC_WARPS * PPW pages, one per (NH heads of a KV head, or its
 * summed row) and sequence. */
template <int NH, int LPT, bool SUM>
static cudaError_t launch_score(const lk_score_args *a, int B, int pages, cudaStream_t s, bool pdl) {
    const int ppb = SC_WARPS * sc_cfg<NH, LPT>::PPW; /* pages per block */
    const dim3 grid((pages + ppb - 1) / ppb, a->kv.Hkv * (SUM ? 1 : a->G / NH), B);
    return lk_launch_kernel(score_kernel<NH, LPT, SUM>, grid, dim3(SC_WARPS * 32), 0, s, pdl, 0, *a);
}

cudaError_t lk_launch_score(const lk_score_args *a, int B, int32_t max_len, cudaStream_t s, bool pdl) {
    /* a summed (shared) row: one row per KV head from the group's summed query */
    const int nh = a->sum_rows ? 1 : lk_pick_nh(a->G);
    const int pages = (max_len + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    if (pages == 0) return cudaSuccess;
    /* lanes per key from the widest split dim of the cache's heads */
    int lpt = 1;
    while (lpt * 8 < (a->full ? a->kv.D : a->dmax)) lpt <<= 1;
    switch ((a->sum_rows ? 0 : nh) * 64 + lpt) { /* nh 0: the summed row */
#define LK_SCORE_CASE(NH, LPT)                                                                                         \
    case NH * 64 + LPT: return launch_score<NH ? NH : 1, LPT, NH == 0>(a, B, pages, s, pdl);
#define LK_SCORE_NH(NH) LK_SCORE_CASE(NH, 1) LK_SCORE_CASE(NH, 2) LK_SCORE_CASE(NH, 4) LK_SCORE_CASE(NH, 8) \
    LK_SCORE_CASE(NH, 16) LK_SCORE_CASE(NH, 32)
        LK_SCORE_NH(0) LK_SCORE_NH(1) LK_SCORE_NH(2) LK_SCORE_NH(3) LK_SCORE_NH(4) LK_SCORE_NH(6) LK_SCORE_NH(8)
#undef LK_SCORE_NH
#undef LK_SCORE_CASE
    default: return cudaErrorInvalidValue;
    }
}
