/*
 * attend_stream.cu - the attend stage as one wave of persistent blocks that
 * stream tiles across work items ("stream-K" decomposition).
 *
 * The split-KV kernel (attend.cu) gives each block one split of one unit (a
 * unit: the nh query heads of one KV head of one sequence) and pays, per
 * block, a chain of dependent loads before its first tile arrives (the
 * selection's length, its slots, then the keys) plus a partial wave at the
 * end. For short lists (the paper's setting: 12 tiles a row) that fixed
 * cost is about half a split's time. Here the units' tiles are laid end to
 * end (unit u = b * U + j, sequence-major) and cut into one equal range per
 * resident block; a block's cp.async pipeline runs through its range
 * without draining, fetching the next unit's slots and first tiles while it
 * finishes the current one. At a unit's end the block merges its warps and
 *  - writes the normalised output directly when it holds the whole unit;
 *  - otherwise writes an unnormalised partial (out, max, sum), which a
 *    reduce pass merges (one block per row, as attend.cu's).
 *
 * The tile math (tile_t / tile_n), the Q fragments and the warps' merge are
 * attend.cu's (attend_tile.cuh). Layouts and shapes: kernels.cuh.
 */
#include "cuda/attend_tile.cuh"

/* A unit of the stream: sequence b, unit j of it, its T tiles at
 * positions base .. base + T - 1. */
struct st_unit {
    int b, j, T, base;
};

/* The unit holding position p (0 <= p < W). */
__device__ __forceinline__ st_unit st_find(const lk_attend_args &a, int p) {
    int b = 0;
    while (b + 1 < a.B && a.U * a.cum[b + 1] <= p) b++;
    st_unit u;
    u.b = b, u.T = max(a.cum[b + 1] - a.cum[b], 1);
    u.j = (p - a.U * a.cum[b]) / u.T;
    u.base = a.U * a.cum[b] + u.j * u.T;
    return u;
}

__device__ __forceinline__ void st_next(const lk_attend_args &a, st_unit &u) {
    u.base += u.T;
    if (++u.j == a.U) {
        u.j = 0, u.b++;
        u.T = u.b < a.B ? max(a.cum[u.b + 1] - a.cum[u.b], 1) : 1;
    }
}

/* First position of block i's range, and the block whose range holds p. */
__device__ __forceinline__ int st_start(const lk_attend_args &a, int i) {
    return (int)((long long)i * a.W / a.n_blocks);
}
__device__ __forceinline__ int st_block(const lk_attend_args &a, int p) {
    return (int)(((long long)(p + 1) * a.n_blocks - 1) / a.W);
}

/* Where a unit's tokens come from, as one loader thread sees them (attend.cu
 * explains the chunk columns): the list (a selection's entries) or the
 * block table, its length n, and the thread's column base and row stride
 * for the head's split d. */
struct st_src {
    const int2 *list;
    const int32_t *bt;
    const uint16_t *head0;
    int n, rstride, h0, d;
    bool skip, lsc;
};

template <int D, bool LSC>
__device__ __forceinline__ st_src st_source(const lk_attend_args &a, const st_unit &u, int cc) {
    const int groups = a.G / a.nh, kvh = u.j / groups;
    st_src s;
    s.h0 = kvh * a.G + (u.j % groups) * a.nh;
    s.d = a.kv.dsplit[a.kv.layer * a.kv.Hkv + kvh];
    s.n = a.kv.seq_len[u.b];
    s.list = NULL;
    if (a.idx) {
        const int sel_row = a.sel_rows == a.H ? s.h0 : kvh;
        const int ns = a.n_sel[u.b * a.sel_rows + sel_row];
        if (ns >= 0) s.n = ns, s.list = a.slots + ((size_t)u.b * a.sel_rows + sel_row) * a.n_ctx;
    }
    s.lsc = LSC && s.list && a.lsc && !a.lowrank;
    s.bt = a.kv.block_table + (size_t)u.b * a.kv.mpps;
    const int d = s.d, ch = cc < D / 8 ? cc : cc - D / 8;
    const bool isk = cc < D / 8;
    s.skip = isk && (a.lowrank ? ch * 8 >= d : s.lsc && ch * 8 < d);
    s.rstride = !isk ? D : ch * 8 < d ? d : D - d;
    const int roff = !isk ? ATT_TILE * D + ch * 8 : ch * 8 < d ? ch * 8 : ATT_TILE * d + ch * 8 - d;
    s.head0 = a.kv.pool + lk_seg_offset(a.kv.layer, 0, kvh, a.kv.n_pages, a.kv.Hkv, D) + roff;
    return s;
}

template <int D, int NH, int STAGES, bool LSC>
__global__ void __launch_bounds__(ATT_THREADS, NH <= 4 && STAGES == 2 ? 3 : 1)
    attend_stream_kernel(const __grid_constant__ lk_attend_args a) {
    using C = att_cfg<D, STAGES, LSC>;
    constexpr bool TR = NH <= 4;
    constexpr int KQ = TR ? 1 : D / 16, KB = TR ? D / 16 : 1;
    extern __shared__ __align__(16) uint16_t sm[];
    float *red = (float *)(sm + STAGES * C::STAGE_ELEMS); /* the warps' merge: not a stage (loads in flight) */
    lk_pdl_wait();
    lk_pdl_release();
    const int g0 = st_start(a, blockIdx.x), g1 = st_start(a, blockIdx.x + 1);
    if (g0 >= g1) return;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, tw0 = warp * ATT_WT;
    const int cc = threadIdx.x % C::CPT, ch = cc < D / 8 ? cc : cc - D / 8, tok0 = threadIdx.x / C::CPT;
    const bool isk = cc < D / 8;
    const size_t page_stride = (size_t)a.kv.Hkv * lk_seg_elems(D);
    const int gi = lane % C::GS, gbase = lane - gi;

    /* the fetch cursor: the next position whose slots are read (one tile
     * ahead of its copies), its unit and that unit's source */
    int pf = g0;
    st_unit fu = st_find(a, g0);
    st_src fs = st_source<D, LSC>(a, fu, cc);
    struct item {
        int slot, t; /* this lane's slot (or the tile's page) and the tile in its unit */
        st_src src;
    };
    auto fetch = [&]() -> item {
        item it;
        it.t = pf - fu.base, it.src = fs, it.slot = 0;
        if (pf < g1) {
            if (!fs.list) {
                it.slot = fs.bt[it.t];
            } else {
                const int myj = it.t * ATT_TILE + tok0 + gi * C::TSTEP;
                it.slot = gi < C::NT && myj < fs.n ? fs.list[myj].x : 0;
            }
            if (++pf < g1 && pf == fu.base + fu.T) st_next(a, fu), fs = st_source<D, LSC>(a, fu, cc);
        }
        return it;
    };
    auto load = [&](const item &it, int stage) {
        const st_src &s = it.src;
        uint16_t *dst = sm + stage * C::STAGE_ELEMS + (isk ? 0 : ATT_TILE * D);
        const int valid = s.n - it.t * ATT_TILE;
        if (LSC && s.lsc && threadIdx.x < ATT_TILE / 2) { /* the tile's entries (and scores) ride with its keys */
            const int j = it.t * ATT_TILE + 2 * threadIdx.x;
            cp_async16(sm + stage * C::STAGE_ELEMS + 2 * ATT_TILE * D + 8 * threadIdx.x, s.list + j, j < s.n ? 16 : 0);
        }
        if (!s.list) {
            const uint16_t *src0 = s.head0 + (size_t)it.slot * page_stride;
#pragma unroll
            for (int i = 0; i < C::NT; i++) {
                const int tok = tok0 + i * C::TSTEP;
                const bool ok = tok < valid && !s.skip;
                cp_async16(dst + swz<D>(tok, ch), ok ? src0 + tok * s.rstride : s.head0, ok ? 16 : 0);
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < C::NT; i++) {
            const int tok = tok0 + i * C::TSTEP, slot = __shfl_sync(0xffffffffu, it.slot, gbase + i);
            const bool ok = tok < valid && !s.skip;
            const uint16_t *src = s.head0 + (size_t)(slot / ATT_TILE) * page_stride + (slot % ATT_TILE) * s.rstride;
            cp_async16(dst + swz<D>(tok, ch), ok ? src : s.head0, ok ? 16 : 0);
        }
    };

#pragma unroll
    for (int s = 0; s < C::STAGES - 1; s++) {
        if (g0 + s < g1) load(fetch(), s);
        cp_async_commit();
    }
    item ahead = fetch(); /* position p + STAGES - 1 */

    /* the compute cursor: the unit of position p and its running state */
    st_unit cu = st_find(a, g0);
    st_src cs;
    int p_first = g0; /* this block's first position in the unit */
    uint32_t qh[KQ][2], ql[KQ][2], qb[KB][2];
    int k_first = 0, k_end = D / 16;
    float m = -INFINITY, l = 0.0f, o[D / 8][2];
    for (int p = g0; p < g1; p++) {
        const int it = p - g0;
        if (p + C::STAGES - 1 < g1) load(ahead, (it + C::STAGES - 1) % C::STAGES);
        cp_async_commit();
        ahead = fetch(); /* in flight during this tile's wait and products */
        if (p == g0 || p == cu.base) { /* a unit starts: its Q, an empty state */
            cs = st_source<D, LSC>(a, cu, cc);
            p_first = p;
            attend_q<D, NH>(a.q + ((size_t)cu.b * a.H + cs.h0) * D, a.scale, cs.d, a.lowrank, cs.lsc, lane, qh, ql,
                            qb);
            k_first = TR && cs.lsc ? cs.d / 16 : 0, k_end = TR && a.lowrank ? (cs.d + 15) / 16 : D / 16;
            m = -INFINITY, l = 0.0f;
#pragma unroll
            for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = 0.0f;
        }
        cp_async_wait<C::STAGES - 1>();
        __syncthreads();
        const uint16_t *Ks = sm + (it % C::STAGES) * C::STAGE_ELEMS, *Vs = Ks + ATT_TILE * D;
        const int t = p - cu.base, valid = min(ATT_TILE, cs.n - t * ATT_TILE);
        const int2 *lsc = LSC && cs.lsc ? (const int2 *)(Ks + 2 * ATT_TILE * D) : NULL;
        if constexpr (TR) tile_t<D, NH>(Ks, Vs, lane, tw0, valid, k_first, k_end, qb, m, l, o, lsc, NULL, 0);
        else tile_n<D, NH>(Ks, Vs, lane, tw0, valid, qh, ql, m, l, o, lsc, NULL, 0);
        __syncthreads(); /* the stage is refilled next iteration */
        if (p + 1 < g1 && p + 1 < cu.base + cu.T) continue;

        /* the unit's last tile in this block: merge the warps */
        const bool whole = p_first == cu.base && p + 1 == cu.base + cu.T;
        const int first_blk = st_block(a, cu.base), seg = blockIdx.x - first_blk;
        const size_t row0 = (size_t)cu.b * a.H + cs.h0;
        attend_merge<D, NH>(red, warp, lane, m, l, o, [&](int h, int j, float M, float L, float O) {
            if (whole) {
                a.out[(row0 + h) * D + j] = O / L;
            } else {
                const size_t pi = (row0 + h) * LK_GPU_MAX_SPLIT + seg;
                a.part[pi * D + j] = O;
                if (j == 0) a.part_ml[pi * 2] = M, a.part_ml[pi * 2 + 1] = L;
            }
        });
        __syncthreads(); /* red is reused at the next unit's end */
        if (p + 1 < g1) st_next(a, cu);
    }
    cp_async_wait<0>();
}

/* One block per (b, h) row: merge the partials of a row whose unit met
 * several blocks' ranges (a row held whole by one block has its output). */
__global__ void __launch_bounds__(RED_THREADS) reduce_stream_kernel(const __grid_constant__ lk_attend_args a) {
    lk_pdl_wait();
    lk_pdl_release();
    const int row = blockIdx.x, b = row / a.H, h = row % a.H, groups = a.G / a.nh;
    const int T = max(a.cum[b + 1] - a.cum[b], 1), j = (h / a.G) * groups + (h % a.G) / a.nh;
    const int base = a.U * a.cum[b] + j * T, first = st_block(a, base), n_seg = st_block(a, base + T - 1) - first + 1;
    if (n_seg < 2) return;
    attend_reduce_row(a.part + (size_t)row * LK_GPU_MAX_SPLIT * a.kv.D, a.part_ml + (size_t)row * LK_GPU_MAX_SPLIT * 2,
                      n_seg, a.kv.D, a.out + (size_t)row * a.kv.D, NULL);
}

/* Launch the kernel for a's configuration, or (occ not NULL) only report
 * how many of its blocks fit on an SM. */
template <int D, int NH, int STAGES, bool LSC>
static cudaError_t launch_stream(const lk_attend_args *a, cudaStream_t s, bool pdl, int *occ) {
    using C = att_cfg<D, STAGES, LSC>;
    const size_t smem = C::SMEM + attend_red_bytes<D, NH>();
    cudaError_t e = cudaFuncSetAttribute(attend_stream_kernel<D, NH, STAGES, LSC>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    if (occ)
        return cudaOccupancyMaxActiveBlocksPerMultiprocessor(occ, attend_stream_kernel<D, NH, STAGES, LSC>,
                                                             ATT_THREADS, smem);
    return lk_launch_kernel(attend_stream_kernel<D, NH, STAGES, LSC>, dim3(a->n_blocks), dim3(ATT_THREADS), smem, s,
                            pdl, 0, *a);
}

static cudaError_t stream_any(const lk_attend_args *a, cudaStream_t s, bool pdl, int *occ) {
    if (a->raw) return cudaErrorInvalidValue; /* H2O's exact scores: the split kernel */
    return attend_dispatch(a, [&](auto k) {
        using K = decltype(k);
        return launch_stream<K::D, K::NH, K::STAGES, K::LSC>(a, s, pdl, occ);
    });
}

cudaError_t lk_launch_attend_stream(const lk_attend_args *a, cudaStream_t s, bool pdl) {
    if (a->B < 1 || a->B > LK_STREAM_MAX_B || a->W < 1 || a->n_blocks < 1) return cudaErrorInvalidValue;
    cudaError_t e = stream_any(a, s, pdl, NULL);
    if (e != cudaSuccess) return e;
    return lk_launch_kernel(reduce_stream_kernel, dim3(a->B * a->H), dim3(RED_THREADS), 0, s, pdl, 0, *a);
}

cudaError_t lk_attend_stream_occupancy(const lk_attend_args *a, int *blocks_per_sm) {
    *blocks_per_sm = 0;
    return stream_any(a, NULL, false, blocks_per_sm);
}
