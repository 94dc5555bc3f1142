/*
 * attend.cu - exact decode attention over a list of cached tokens (all of
 * them for dense and pcaattn, the selection for the sparse methods), split
 * over the list (flash-decoding) with a reduction pass.
 *
 * Block = 4 warps serving nh (<= 8) query heads of one KV head (all G of a
 * group for dense and shared selections, so each K/V tile is read once per
 * group) for one split of one sequence. Tiles of 64 tokens (one page) of keys
 * and values are gathered into shared memory with cp.async, 16-byte chunks,
 * 2-3 stages deep, each key's k_lo and k_hi parts reassembled into one row;
 * rows are XOR-swizzled by 16-byte chunk (chunk ^ token % 8) so the
 * tensor-core fragment loads (ldmatrix) hit distinct banks.
 *
 * Each warp owns 16 tokens of a tile and does both products on the tensor
 * cores (mma.sync m16n8k16, bf16 in, f32 accumulate), FlashAttention-2
 * style: S = Q K^T with the heads as the 16 rows (nh used, the rest zero)
 * and the tokens as columns, an online softmax on the S fragments, then
 * O += P V with P taken straight from the S fragments. Q and P are f32
 * values split into bf16 hi + lo parts (two products each), so the result
 * keeps f32 accuracy (the keys and values are bf16 already). Warps merge at
 * the end; the block writes an unnormalised partial (out, max, sum) per head.
 *
 * Up to four heads per block (NH <= 4: MHA, per-query-head selections,
 * groups of 2-4) would leave 12-15 of the 16 rows empty, so there the
 * products are transposed: S^T (16 tokens x 8) = K (16 tokens x 16) . Q^T
 * and O^T (16 dims x 8) += V^T . P^T, head c in columns 2c (the hi part of
 * Q, of P) and 2c + 1 (the lo part), so one product does both halves of
 * every head and lane 4g + c ends with whole scores (c0 + c1) of head c:
 * a quarter of the tensor-core instructions and half of the Q registers.
 */
#include "cuda/attend_tile.cuh"

#include <math.h>

/* LSC: a.lsc may be set (per-query-head selections, NH = 1: the entries carry the scores); a template
 * flag so the other kernels carry none of its code. */
template <int D, int NH, int STAGES, bool LSC>
__global__ void __launch_bounds__(ATT_THREADS, NH <= 4 && STAGES == 2 ? 3 : 1) attend_kernel(const lk_attend_args a) {
    using C = att_cfg<D, STAGES, LSC>;
    extern __shared__ __align__(16) uint16_t sm[];
    lk_pdl_wait();
    lk_pdl_release();
    const int split = blockIdx.x, b = blockIdx.z, groups = a.G / a.nh;
    const int kvh = blockIdx.y / groups, h0 = kvh * a.G + (blockIdx.y % groups) * a.nh;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int S = a.kv.seq_len[b], d = a.kv.dsplit[a.kv.layer * a.kv.Hkv + kvh];
    const int sel_row = a.sel_rows == a.H ? h0 : kvh;

    /* the token list: positions 0..S-1, or the selection's physical slots */
    const int2 *list = NULL;
    int n = S;
    if (a.idx) {
        const int ns = a.n_sel[b * a.sel_rows + sel_row];
        if (ns >= 0) n = ns, list = a.slots + ((size_t)b * a.sel_rows + sel_row) * a.n_ctx;
    }
    /* the selection's first-d scores are known: read only k_hi (k_lo chunks
     * zero-filled, Q's first d components zero) and add them to S */
    const bool lsc = LSC && list && a.lsc && !a.lowrank;
    const int tiles = (n + ATT_TILE - 1) / ATT_TILE;
    const int t_begin = split * a.tiles_per_split, t_end = min(tiles, t_begin + a.tiles_per_split);
    const int32_t *bt = a.kv.block_table + (size_t)b * a.kv.mpps;

    /* Q fragments (attend_q): the A operand (NH > 4) or the B operand of S^T */
    constexpr bool TR = NH <= 4; /* transposed products */
    constexpr int KQ = TR ? 1 : D / 16, KB = TR ? D / 16 : 1;
    uint32_t qh[KQ][2], ql[KQ][2], qb[KB][2];
    attend_q<D, NH>(a.q + ((size_t)b * a.H + h0) * D, a.scale, d, a.lowrank, lsc, lane, qh, ql, qb);
    /* transposed: the k-steps (16 components) that Q leaves zero are skipped */
    const int k_first = TR && lsc ? d / 16 : 0, k_end = TR && a.lowrank ? (d + 15) / 16 : D / 16;
    float m = -INFINITY, l = 0.0f, o[D / 8][2];
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = 0.0f;

    /* loader: each thread moves a fixed chunk column (cc) of every TSTEP-th
     * token of a tile; the column fixes the region of the segment (k_lo, k_hi
     * or v) and its row stride, so a token's source is
     * segment(page) + roff + slot * rstride. Dense tiles are whole pages (one
     * block-table lookup); a selection's slots for the tile are read with one
     * load per lane and passed around by shuffles. pcaattn's unused key
     * chunks are zero-filled (no read). */
    const int cc = threadIdx.x % C::CPT, ch = cc < D / 8 ? cc : cc - D / 8, tok0 = threadIdx.x / C::CPT;
    const bool isk = cc < D / 8, skip = isk && (a.lowrank ? ch * 8 >= d : lsc && ch * 8 < d);
    const int rstride = !isk ? D : ch * 8 < d ? d : D - d;
    const int roff = !isk ? ATT_TILE * D + ch * 8 : ch * 8 < d ? ch * 8 : ATT_TILE * d + ch * 8 - d;
    const uint16_t *head0 = a.kv.pool + lk_seg_offset(a.kv.layer, 0, kvh, a.kv.n_pages, a.kv.Hkv, D) + roff;
    const size_t page_stride = (size_t)a.kv.Hkv * lk_seg_elems(D);
    /* where a tile's tokens are: for a selection, lane (group base + i)
     * holds the slot of its group's i-th token; for all tokens, every lane
     * the tile's page. Fetched one tile ahead of the copies that use them,
     * so the list or block-table read does not add its latency to every
     * tile. */
    const int gi = lane % C::GS, gbase = lane - gi;
    auto fetch = [&](int tile) -> int {
        if (tile >= t_end) return 0;
        if (!list) return bt[tile];
        const int myj = tile * ATT_TILE + tok0 + gi * C::TSTEP;
        return gi < C::NT && myj < n ? list[myj].x : 0;
    };
    auto load = [&](int tile, int stage, int myslot) {
        uint16_t *dst = sm + stage * C::STAGE_ELEMS + (isk ? 0 : ATT_TILE * D);
        const int valid = n - tile * ATT_TILE;
        if (LSC && lsc && threadIdx.x < ATT_TILE / 2) { /* the tile's entries (and scores) ride with its keys */
            const int j = tile * ATT_TILE + 2 * threadIdx.x; /* rows hold n_ctx >= the list's tiles */
            cp_async16(sm + stage * C::STAGE_ELEMS + 2 * ATT_TILE * D + 8 * threadIdx.x, list + j, j < n ? 16 : 0);
        }
        if (!list) {
            const uint16_t *src0 = head0 + (size_t)myslot * page_stride; /* myslot: the page */
#pragma unroll
            for (int i = 0; i < C::NT; i++) {
                const int tok = tok0 + i * C::TSTEP;
                const bool ok = tok < valid && !skip;
                cp_async16(dst + swz<D>(tok, ch), ok ? src0 + tok * rstride : head0, ok ? 16 : 0);
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < C::NT; i++) {
            const int tok = tok0 + i * C::TSTEP, slot = __shfl_sync(0xffffffffu, myslot, gbase + i);
            const bool ok = tok < valid && !skip;
            const uint16_t *src = head0 + (size_t)(slot / ATT_TILE) * page_stride + (slot % ATT_TILE) * rstride;
            cp_async16(dst + swz<D>(tok, ch), ok ? src : head0, ok ? 16 : 0); /* 0 bytes: zero fill */
        }
    };

    int slots[C::STAGES]; /* the first tiles' slots, all read before any copy waits on them */
#pragma unroll
    for (int s = 0; s < C::STAGES; s++) slots[s] = fetch(t_begin + s);
#pragma unroll
    for (int s = 0; s < C::STAGES - 1; s++) {
        if (t_begin + s < t_end) load(t_begin + s, s, slots[s]);
        cp_async_commit();
    }
    int ahead = slots[C::STAGES - 1]; /* slots of tile t + STAGES - 1 */
    const int tw0 = warp * ATT_WT; /* this warp's first token in a tile */
    for (int t = t_begin; t < t_end; t++) {
        const int it = t - t_begin;
        if (t + C::STAGES - 1 < t_end) load(t + C::STAGES - 1, (it + C::STAGES - 1) % C::STAGES, ahead);
        cp_async_commit();
        ahead = fetch(t + C::STAGES); /* in flight during this tile's wait and products */
        cp_async_wait<C::STAGES - 1>();
        __syncthreads();
        const uint16_t *Ks = sm + (it % C::STAGES) * C::STAGE_ELEMS, *Vs = Ks + ATT_TILE * D;
        const int valid = min(ATT_TILE, n - t * ATT_TILE);
        if constexpr (TR) {
            tile_t<D, NH>(Ks, Vs, lane, tw0, valid, k_first, k_end, qb, m, l, o,
                          LSC && lsc ? (const int2 *)(Ks + 2 * ATT_TILE * D) : NULL,
                          a.raw ? a.raw + ((size_t)b * a.H + h0) * a.n_ctx + t * ATT_TILE : NULL, a.n_ctx);
        } else {
            tile_n<D, NH>(Ks, Vs, lane, tw0, valid, qh, ql, m, l, o,
                          LSC && lsc ? (const int2 *)(Ks + 2 * ATT_TILE * D) : NULL,
                          a.raw ? a.raw + ((size_t)b * a.H + h0) * a.n_ctx + t * ATT_TILE : NULL, a.n_ctx);
        }
        __syncthreads(); /* the stage is refilled next iteration */
    }
    cp_async_wait<0>();

    /* merge the warps; the block writes an unnormalised partial per head */
    __syncthreads();
    attend_merge<D, NH>((float *)sm, warp, lane, m, l, o, [&](int h, int j, float M, float L, float O) {
        const size_t pi = ((size_t)b * a.H + h0 + h) * a.n_split + split;
        a.part[pi * D + j] = O;
        if (j == 0) a.part_ml[pi * 2] = M, a.part_ml[pi * 2 + 1] = L;
    });
}

/* Launch one instance, or (occ not NULL) only report how many of its
 * blocks fit on an SM. */
template <int D, int NH, int STAGES, bool LSC = false>
static cudaError_t launch_dns(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl, int *occ) {
    using C = att_cfg<D, STAGES, LSC>;
    size_t smem = C::SMEM;
    if (attend_red_bytes<D, NH>() > smem) smem = attend_red_bytes<D, NH>();
    cudaError_t e =
        cudaFuncSetAttribute(attend_kernel<D, NH, STAGES, LSC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    if (occ)
        return cudaOccupancyMaxActiveBlocksPerMultiprocessor(occ, attend_kernel<D, NH, STAGES, LSC>, ATT_THREADS, smem);
    dim3 grid(a->n_split, Hkv * (a->G / a->nh), B);
    return lk_launch_kernel(attend_kernel<D, NH, STAGES, LSC>, grid, dim3(ATT_THREADS), smem, s, pdl, 0, *a);
}

static cudaError_t launch_any(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl, int *occ) {
    return attend_dispatch(a, [&](auto k) {
        using K = decltype(k);
        return launch_dns<K::D, K::NH, K::STAGES, K::LSC>(a, B, Hkv, s, pdl, occ);
    });
}

cudaError_t lk_launch_attend(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl) {
    return launch_any(a, B, Hkv, s, pdl, NULL);
}

cudaError_t lk_attend_occupancy(const lk_attend_args *a, int *blocks_per_sm) {
    *blocks_per_sm = 0;
    return launch_any(a, 0, 0, NULL, false, blocks_per_sm);
}

/* One block per (b, h) row: attend_reduce_row over its n_split partials. */
__global__ void __launch_bounds__(RED_THREADS) reduce_kernel(const float *__restrict__ part,
                                                           const float *__restrict__ part_ml, int n_split, int D,
                                                           float *__restrict__ out, float *__restrict__ ml) {
    lk_pdl_wait();
    lk_pdl_release();
    const size_t row = blockIdx.x;
    attend_reduce_row(part + row * n_split * D, part_ml + row * n_split * 2, n_split, D, out + row * D,
                      ml ? ml + row * 2 : NULL);
}

cudaError_t lk_launch_reduce(const float *part, const float *part_ml, int n_split, int B, int H, int D, float *out,
                             float *ml, cudaStream_t s, bool pdl) {
    if (n_split > LK_GPU_MAX_SPLIT || n_split > RED_THREADS || D > 256 || D % 4) return cudaErrorInvalidValue;
    return lk_launch_kernel(reduce_kernel, dim3(B * H), dim3(RED_THREADS), 0, s, pdl, 0, part, part_ml, n_split, D,
                            out, ml);
}
