/*
 * attend.cu - exact decode attention over a list of cached tokens (all of
 * them for dense and pcaattn, the selection for the sparse methods), split
 * over the list (flash-decoding) with a reduction pass.
 *
 * Block = 4 warps serving nh query heads of one KV head (all G of a group for
 * dense and shared selections, so each K/V tile is read once per group) for
 * one split of one sequence. Tiles of 64 tokens (one page) of keys and
 * values are gathered into shared memory with cp.async, 16-byte chunks,
 * three stages deep (two for D = 256), reassembling each key's k_lo and k_hi
 * parts into one row. Each warp owns 16 tokens of a tile: lanes split a
 * key row into 8-component chunks (D/8 lanes per token), reduce the dot by
 * shuffles, keep a running max and sum (online softmax) and accumulate
 * p * V for their chunk's components; warps merge at the end and the block
 * writes an unnormalised partial (out, max, sum) per head.
 */
#include "cuda/kernels.cuh"

#include <math.h>

#define ATT_TILE LK_GPU_PAGE
#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)

/* STAGES: cp.async pipeline depth. Measured on the H200 (docs/RESULTS.md):
 * dense MHA streams best 3 deep (2 blocks per SM, 98% of the read bandwidth
 * at B = 16, S = 32k); gathers and GQA groups do better 2 deep (3 blocks per
 * SM: more warps to hide their longer compute and gather latency). */
template <int D, int STAGES_> struct att_cfg {
    static constexpr int STAGES = STAGES_;
    static constexpr int LPT = D / 8;                  /* lanes per key row */
    static constexpr int TPI = 32 / LPT;               /* tokens per warp iteration */
    static constexpr int WT = ATT_TILE / ATT_WARPS;    /* tokens per warp per tile */
    static constexpr int ITERS = WT / TPI;
    static constexpr int CPT = 2 * D / 8;              /* 16-byte chunks per token: K then V */
    static constexpr int STAGE_ELEMS = ATT_TILE * 2 * D;
    static constexpr size_t SMEM = (size_t)STAGES * STAGE_ELEMS * 2;
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <int D, int NH, int STAGES>
__global__ void __launch_bounds__(ATT_THREADS) attend_kernel(const lk_attend_args a) {
    using C = att_cfg<D, STAGES>;
    extern __shared__ __align__(16) uint16_t sm[];
    const int split = blockIdx.x, b = blockIdx.z, groups = a.G / a.nh;
    const int kvh = blockIdx.y / groups, h0 = kvh * a.G + (blockIdx.y % groups) * a.nh;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int S = a.kv.seq_len[b], d = a.kv.dsplit[a.kv.layer * a.kv.Hkv + kvh];
    const int sel_row = a.sel_rows == a.H ? h0 : kvh;

    /* the token list: positions 0..S-1, or the selection */
    const int32_t *list = NULL; /* physical slots of the selection */
    int n = S;
    if (a.idx) {
        const int ns = a.n_sel[b * a.sel_rows + sel_row];
        if (ns >= 0) n = ns, list = a.slots + ((size_t)b * a.sel_rows + sel_row) * a.n_ctx;
    }
    const int tiles = (n + ATT_TILE - 1) / ATT_TILE;
    const int t_begin = split * a.tiles_per_split, t_end = min(tiles, t_begin + a.tiles_per_split);
    const int32_t *bt = a.kv.block_table + (size_t)b * a.kv.mpps;

    /* this lane's chunk of the query of each head, pre-scaled */
    const int c = lane % C::LPT, grp = lane / C::LPT;
    const bool kuse = !a.lowrank || c * 8 < d; /* pcaattn reads only the first d components */
    float qr[NH][8], m[NH], l[NH], acc[NH][8];
#pragma unroll
    for (int h = 0; h < NH; h++) {
        const float *qh = a.q + ((size_t)b * a.H + h0 + h) * D + c * 8;
#pragma unroll
        for (int e = 0; e < 8; e++) qr[h][e] = kuse ? qh[e] * a.scale : 0.0f, acc[h][e] = 0.0f;
        m[h] = -INFINITY, l[h] = 0.0f;
    }

    /* loader: each thread moves a fixed chunk column (cc) of every
     * (THREADS/CPT)th token of a tile; the column fixes the region of the
     * segment (k_lo, k_hi or v) and its row stride, so a token's source is
     * segment(page) + roff + slot * rstride. Dense tiles are whole pages:
     * one block-table lookup per tile. */
    const int cc = threadIdx.x % C::CPT, ch = cc < D / 8 ? cc : cc - D / 8;
    const bool isk = cc < D / 8, skip = a.lowrank && isk && ch * 8 >= d;
    const int rstride = !isk ? D : ch * 8 < d ? d : D - d;
    const int roff = !isk ? ATT_TILE * D + ch * 8 : ch * 8 < d ? ch * 8 : ATT_TILE * d + ch * 8 - d;
    const uint16_t *head0 = a.kv.pool + lk_seg_offset(a.kv.layer, 0, kvh, a.kv.n_pages, a.kv.Hkv, D) + roff;
    const size_t page_stride = (size_t)a.kv.Hkv * lk_seg_elems(D);
    auto load = [&](int tile, int stage) {
        uint16_t *dst0 = sm + stage * C::STAGE_ELEMS + (isk ? 0 : ATT_TILE * D) + ch * 8;
        if (skip) return;
        if (!list) {
            const uint16_t *src0 = head0 + (size_t)bt[tile] * page_stride;
            const int valid = n - tile * ATT_TILE;
#pragma unroll 8
            for (int tok = threadIdx.x / C::CPT; tok < ATT_TILE; tok += ATT_THREADS / C::CPT)
                cp_async16(dst0 + tok * D, tok < valid ? src0 + tok * rstride : head0, tok < valid ? 16 : 0);
            return;
        }
#pragma unroll 4
        for (int tok = threadIdx.x / C::CPT; tok < ATT_TILE; tok += ATT_THREADS / C::CPT) {
            const int j = tile * ATT_TILE + tok;
            const uint16_t *src = head0;
            int bytes = 0;
            if (j < n) {
                const int slot = list[j]; /* one load, no block-table lookup on the way */
                src = head0 + (size_t)(slot / ATT_TILE) * page_stride + (slot % ATT_TILE) * rstride;
                bytes = 16;
            }
            cp_async16(dst0 + tok * D, src, bytes); /* bytes 0: zero fill (no NaN from stale values) */
        }
    };

#pragma unroll
    for (int s = 0; s < C::STAGES - 1; s++) {
        if (t_begin + s < t_end) load(t_begin + s, s);
        cp_async_commit();
    }
    for (int t = t_begin; t < t_end; t++) {
        const int it = t - t_begin;
        if (t + C::STAGES - 1 < t_end) load(t + C::STAGES - 1, (it + C::STAGES - 1) % C::STAGES);
        cp_async_commit();
        cp_async_wait<C::STAGES - 1>();
        __syncthreads();
        const uint16_t *Ks = sm + (it % C::STAGES) * C::STAGE_ELEMS, *Vs = Ks + ATT_TILE * D;
        const int valid = min(ATT_TILE, n - t * ATT_TILE);

        float s[NH][C::ITERS]; /* scores of this lane's tokens */
#pragma unroll
        for (int i = 0; i < C::ITERS; i++) {
            const int tok = warp * C::WT + i * C::TPI + grp;
            float k8[8];
            lk_unpack8(*(const uint4 *)(Ks + tok * D + c * 8), k8);
#pragma unroll
            for (int h = 0; h < NH; h++) {
                float part = 0.0f;
                if (kuse) {
#pragma unroll
                    for (int e = 0; e < 8; e++) part = fmaf(qr[h][e], k8[e], part);
                }
#pragma unroll
                for (int off = C::LPT / 2; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
                s[h][i] = tok < valid ? part : -INFINITY;
                if (a.raw && c == 0 && tok < valid) a.raw[((size_t)b * a.H + h0 + h) * a.n_ctx + t * ATT_TILE + tok] = part;
            }
        }
        /* online softmax: the warp's max over its 16 tokens, rescale */
#pragma unroll
        for (int h = 0; h < NH; h++) {
            float mx = s[h][0];
#pragma unroll
            for (int i = 1; i < C::ITERS; i++) mx = fmaxf(mx, s[h][i]);
#pragma unroll
            for (int off = 16; off >= C::LPT; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float mn = fmaxf(m[h], mx);
            if (mn == -INFINITY) {
#pragma unroll
                for (int i = 0; i < C::ITERS; i++) s[h][i] = 0.0f;
                continue;
            }
            const float corr = __expf(m[h] - mn); /* 0 when m was -inf */
            float sum = 0.0f;
#pragma unroll
            for (int i = 0; i < C::ITERS; i++) s[h][i] = __expf(s[h][i] - mn), sum += s[h][i];
            l[h] = l[h] * corr + sum;
            m[h] = mn;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[h][e] *= corr;
        }
        /* p . V for this lane's chunk of components */
#pragma unroll
        for (int i = 0; i < C::ITERS; i++) {
            const int tok = warp * C::WT + i * C::TPI + grp;
            float v8[8];
            lk_unpack8(*(const uint4 *)(Vs + tok * D + c * 8), v8);
#pragma unroll
            for (int h = 0; h < NH; h++)
#pragma unroll
                for (int e = 0; e < 8; e++) acc[h][e] = fmaf(s[h][i], v8[e], acc[h][e]);
        }
        __syncthreads(); /* the stage is refilled next iteration */
    }
    cp_async_wait<0>();

    /* merge the token groups of a warp (same max), then the warps */
#pragma unroll
    for (int h = 0; h < NH; h++)
#pragma unroll
        for (int off = 16; off >= C::LPT; off >>= 1) {
            l[h] += __shfl_xor_sync(0xffffffffu, l[h], off);
#pragma unroll
            for (int e = 0; e < 8; e++) acc[h][e] += __shfl_xor_sync(0xffffffffu, acc[h][e], off);
        }
    __syncthreads();
    float *red = (float *)sm;                       /* (WARPS, NH, D) */
    float *redm = red + ATT_WARPS * NH * D;         /* (WARPS, NH) */
    float *redl = redm + ATT_WARPS * NH;            /* (WARPS, NH) */
    if (grp == 0)
#pragma unroll
        for (int h = 0; h < NH; h++)
#pragma unroll
            for (int e = 0; e < 8; e++) red[(warp * NH + h) * D + c * 8 + e] = acc[h][e];
    if (lane == 0)
#pragma unroll
        for (int h = 0; h < NH; h++) redm[warp * NH + h] = m[h], redl[warp * NH + h] = l[h];
    __syncthreads();
    for (int o = threadIdx.x; o < NH * D; o += ATT_THREADS) {
        const int h = o / D, j = o % D;
        float M = -INFINITY, L = 0.0f, O = 0.0f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, redm[w * NH + h]);
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) {
            const float mw = redm[w * NH + h];
            if (mw == -INFINITY) continue;
            const float f = __expf(mw - M);
            L += redl[w * NH + h] * f;
            O += red[(w * NH + h) * D + j] * f;
        }
        const size_t pi = ((size_t)b * a.H + h0 + h) * a.n_split + split;
        a.part[pi * D + j] = O;
        if (j == 0) a.part_ml[pi * 2] = M, a.part_ml[pi * 2 + 1] = L;
    }
}

template <int D, int NH, int STAGES>
static cudaError_t launch_dns(const lk_attend_args *a, int B, int Hkv, cudaStream_t s) {
    using C = att_cfg<D, STAGES>;
    size_t smem = C::SMEM;
    size_t red = (size_t)(ATT_WARPS * NH * D + 2 * ATT_WARPS * NH) * 4;
    if (red > smem) smem = red;
    cudaError_t e =
        cudaFuncSetAttribute(attend_kernel<D, NH, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    dim3 grid(a->n_split, Hkv * (a->G / a->nh), B);
    attend_kernel<D, NH, STAGES><<<grid, ATT_THREADS, smem, s>>>(*a);
    return cudaGetLastError();
}

template <int D, int NH> static cudaError_t launch_dn(const lk_attend_args *a, int B, int Hkv, cudaStream_t s) {
    if (NH == 1 && D <= 128 && !a->idx) return launch_dns<D, NH, 3>(a, B, Hkv, s);
    return launch_dns<D, NH, 2>(a, B, Hkv, s);
}

template <int D> static cudaError_t launch_d(const lk_attend_args *a, int B, int Hkv, cudaStream_t s) {
    switch (a->nh) {
    case 1: return launch_dn<D, 1>(a, B, Hkv, s);
    case 2: return launch_dn<D, 2>(a, B, Hkv, s);
    case 3: return launch_dn<D, 3>(a, B, Hkv, s);
    case 4: return launch_dn<D, 4>(a, B, Hkv, s);
    case 6: return launch_dn<D, 6>(a, B, Hkv, s);
    case 8: return launch_dn<D, 8>(a, B, Hkv, s);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t lk_launch_attend(const lk_attend_args *a, int B, int Hkv, cudaStream_t s) {
    switch (a->kv.D) {
    case 64: return launch_d<64>(a, B, Hkv, s);
    case 128: return launch_d<128>(a, B, Hkv, s);
    case 256: return launch_d<256>(a, B, Hkv, s);
    default: return cudaErrorInvalidValue;
    }
}

/* One block per (b, h): merge the splits' partials by their maxima. */
__global__ void reduce_kernel(const float *__restrict__ part, const float *__restrict__ part_ml, int n_split, int D,
                              float *__restrict__ out, float *__restrict__ ml) {
    const size_t row = blockIdx.x;
    const float *pm = part_ml + row * n_split * 2;
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < n_split; s++) M = fmaxf(M, pm[2 * s]);
    for (int s = 0; s < n_split; s++)
        if (pm[2 * s] != -INFINITY) L += pm[2 * s + 1] * expf(pm[2 * s] - M);
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float O = 0.0f;
        for (int s = 0; s < n_split; s++)
            if (pm[2 * s] != -INFINITY) O += part[(row * n_split + s) * D + j] * expf(pm[2 * s] - M);
        out[row * D + j] = O / L;
    }
    if (ml && threadIdx.x == 0) ml[row * 2] = M, ml[row * 2 + 1] = L;
}

cudaError_t lk_launch_reduce(const float *part, const float *part_ml, int n_split, int B, int H, int D, float *out,
                             float *ml, cudaStream_t s) {
    reduce_kernel<<<B * H, D < 128 ? D : 128, 0, s>>>(part, part_ml, n_split, D, out, ml);
    return cudaGetLastError();
}
