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
#include "cuda/kernels.cuh"

#include <cub/block/block_reduce.cuh>
#include <math.h>

#define ATT_TILE LK_GPU_PAGE
#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_WT (ATT_TILE / ATT_WARPS) /* tokens per warp per tile: two 8-token n-tiles */

/* STAGES: cp.async pipeline depth. Measured on the H200 (docs/RESULTS.md):
 * dense MHA streams best 3 deep (2 blocks per SM); gathers and GQA groups
 * did better 2 deep (3 blocks per SM). */
template <int D, int STAGES_, bool LSC = false> struct att_cfg {
    static constexpr int STAGES = STAGES_;
    static constexpr int CPT = 2 * D / 8;              /* 16-byte chunks per token: K then V */
    /* a stage: K (64, D), V (64, D) bf16, then (LSC) the tile's 64 (slot, score) entries */
    static constexpr int STAGE_ELEMS = ATT_TILE * 2 * D + (LSC ? 4 * ATT_TILE : 0);
    static constexpr size_t SMEM = (size_t)STAGES * STAGE_ELEMS * 2;
    static constexpr int TSTEP = ATT_THREADS / CPT;    /* tokens apart of one thread's chunks */
    static constexpr int NT = ATT_TILE / TSTEP;        /* chunks per thread per tile */
    static constexpr int GS = CPT < 32 ? CPT : 32;     /* lanes that share a first token */
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
/* c (16x8 f32) += a (16x16 bf16, rows 8..15 zero: a1 = a3 = 0) . b (16x8 bf16) */
__device__ __forceinline__ void mma16816(float c[2], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
    float z0 = 0.0f, z1 = 0.0f; /* rows 8..15: zero in, discarded */
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(z0), "+f"(z1)
                 : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
/* c (16x8 f32: c0 c1 rows g, c2 c3 rows g + 8) += a (16x16 bf16, all four
 * registers) . b (16x8 bf16) */
__device__ __forceinline__ void mma16816f(float c[2], float c8[2], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c8[0]), "+f"(c8[1])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* Two floats as bf16x2 (x in the low half), and the remainders below them. */
__device__ __forceinline__ uint32_t bf2(float x, float y) {
    __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *(uint32_t *)&v;
}
__device__ __forceinline__ void split2(float x, float y, uint32_t &hi, uint32_t &lo) {
    const __nv_bfloat16 hx = __float2bfloat16_rn(x), hy = __float2bfloat16_rn(y);
    hi = bf2(__bfloat162float(hx), __bfloat162float(hy));
    lo = bf2(x - __bfloat162float(hx), y - __bfloat162float(hy));
}
/* Element offset of chunk ch of token row tok in a swizzled tile. */
template <int D> __device__ __forceinline__ int swz(int tok, int ch) { return tok * D + ((ch ^ (tok & 7)) << 3); }

/* One warp's 16 tokens (tw0 ..) of a tile for NH <= 4 query heads,
 * transposed products (see the top): lane = 4 g + c holds head c % NH's
 * scores of tokens tw0 + g and tw0 + g + 8 in c0 + c1 and c2 + c3 of the S^T
 * accumulators, and its O^T rows (dims) 16 jj + g and + 8 in o[2 jj] and
 * o[2 jj + 1], columns 2c (hi) and 2c + 1 (lo). Updates the lane's head's
 * running max m and the lane's share of its sum l (its two tokens); lsc:
 * the tile's (slot, first-d score) entries (NH = 1); raw: the tile's exact
 * scores of the block's first head (H2O), heads n_ctx apart. */
template <int D, int NH>
__device__ __forceinline__ void tile_t(const uint16_t *Ks, const uint16_t *Vs, int lane, int tw0, int valid,
                                       int k_first, int k_end, const uint32_t (&qb)[D / 16][2], float &m, float &l,
                                       float (&o)[D / 8][2], const int2 *lsc, float *raw, int n_ctx) {
    const int g = lane / 4, c = lane % 4, mi = lane >> 3;
    /* two accumulator chains (even and odd k-steps) halve the dependent run */
    float sa[2] = {0.0f, 0.0f}, sa8[2] = {0.0f, 0.0f}, sb[2] = {0.0f, 0.0f}, sb8[2] = {0.0f, 0.0f};
    if (lsc) sa[0] = __int_as_float(lsc[tw0 + g].y), sa8[0] = __int_as_float(lsc[tw0 + g + 8].y);
    {
        /* A = K (tokens x components): matrices (tokens 0-7 | 8-15) x (components 0-7 | 8-15) */
        const int ktok = tw0 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
        for (int k = 0; k < D / 16; k++) {
            if (k < k_first || k >= k_end) continue;
            uint32_t ka[4];
            ldsm_x4(ka, Ks + swz<D>(ktok, 2 * k + (mi >> 1)));
            if (k & 1) mma16816f(sb, sb8, ka, qb[k][0], qb[k][1]);
            else mma16816f(sa, sa8, ka, qb[k][0], qb[k][1]);
        }
    }
    float s0 = sa[0] + sa[1] + sb[0] + sb[1], s1 = sa8[0] + sa8[1] + sb8[0] + sb8[1];
    float *rh = raw && c < NH ? raw + (size_t)c * n_ctx : NULL;
    if (tw0 + g >= valid) s0 = -INFINITY;
    else if (rh) rh[tw0 + g] = s0;
    if (tw0 + g + 8 >= valid) s1 = -INFINITY;
    else if (rh) rh[tw0 + g + 8] = s1;
    float mx = fmaxf(s0, s1);
#pragma unroll
    for (int off = 4; off < 32; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float mn = fmaxf(m, mx);
    float p0 = 0.0f, p1 = 0.0f;
    if (mn != -INFINITY) {
        p0 = __expf(s0 - mn), p1 = __expf(s1 - mn);
        if (mn > m) { /* rescale only when the max moved (most tiles of a long list keep it) */
            const float corr = __expf(m - mn); /* 0 when m was -inf */
            l *= corr, m = mn;
#pragma unroll
            for (int j = 0; j < D / 8; j++) o[j][0] *= corr, o[j][1] *= corr;
        }
        l += p0 + p1;
    }
    /* B = P^T (tokens x 8): column g is head hh = (g / 2) % NH, hi for g
     * even, lo for odd; lane 4g + c needs that head's tokens 2c, 2c + 1,
     * 2c + 8, 2c + 9, held by lanes 8c + hh and 8c + 4 + hh */
    const int hh = (g >> 1) % NH;
    const float x0 = __shfl_sync(0xffffffffu, p0, 8 * c + hh), x1 = __shfl_sync(0xffffffffu, p0, 8 * c + 4 + hh);
    const float x2 = __shfl_sync(0xffffffffu, p1, 8 * c + hh), x3 = __shfl_sync(0xffffffffu, p1, 8 * c + 4 + hh);
    uint32_t h0, l0, h1, l1;
    split2(x0, x1, h0, l0);
    split2(x2, x3, h1, l1);
    const uint32_t pb0 = g & 1 ? l0 : h0, pb1 = g & 1 ? l1 : h1;
    {
        /* A = V^T (components x tokens) by transposed loads: matrices
         * (components 0-7 | 8-15) x (tokens 0-7 | 8-15) */
        const int vtok = tw0 + (mi >> 1) * 8 + (lane & 7);
#pragma unroll
        for (int jj = 0; jj < D / 16; jj++) {
            uint32_t va[4];
            ldsm_x4_t(va, Vs + swz<D>(vtok, 2 * jj + (mi & 1)));
            mma16816f(o[2 * jj], o[2 * jj + 1], va, pb0, pb1);
        }
    }
}

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

    /* Q fragments (A operand, rows = heads): this lane's head hq = lane/4 and
     * components 16k + 2(lane%4) + {0, 1, 8, 9}, pre-scaled, hi and lo.
     * NH <= 4: the B operand of S^T, column lane/4 = 2 head + (0: hi, 1:
     * lo), the same components (columns past the heads repeat them). */
    const int hq = lane / 4, q4 = lane % 4;
    constexpr bool TR = NH <= 4; /* transposed products */
    constexpr int KQ = TR ? 1 : D / 16, KB = TR ? D / 16 : 1;
    uint32_t qh[KQ][2], ql[KQ][2], qb[KB][2];
    {
        const int qhead = TR ? (hq >> 1) % NH : hq < NH ? hq : 0;
        const float *qp = a.q + ((size_t)b * a.H + h0 + qhead) * D;
#pragma unroll
        for (int k = 0; k < D / 16; k++)
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int j = 16 * k + 8 * u + 2 * q4;
                float x = 0.0f, y = 0.0f;
                if (TR || hq < NH) {
                    if (a.lowrank ? j < d : !lsc || j >= d) x = qp[j] * a.scale;
                    if (a.lowrank ? j + 1 < d : !lsc || j + 1 >= d) y = qp[j + 1] * a.scale;
                }
                uint32_t hi, lo;
                split2(x, y, hi, lo);
                if constexpr (TR) qb[k][u] = hq & 1 ? lo : hi;
                else qh[k][u] = hi, ql[k][u] = lo;
            }
    }
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
            float ls[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}; /* this lane's tokens' first-d scores */
            if (LSC && lsc) {
                const int2 *Ls = (const int2 *)(Ks + 2 * ATT_TILE * D);
    #pragma unroll
                for (int nt = 0; nt < 2; nt++)
    #pragma unroll
                    for (int e = 0; e < 2; e++) ls[nt][e] = __int_as_float(Ls[tw0 + 8 * nt + 2 * q4 + e].y);
            }

            /* S (heads x 16 tokens) = Q K^T (+ the first-d scores): n-tile 0 =
             * tokens tw0..+7, 1 = +8..+15 */
            float s[2][2] = {{ls[0][0], ls[0][1]}, {ls[1][0], ls[1][1]}};
            {
                const int mi = lane >> 3, ktok = tw0 + (mi >> 1) * 8 + (lane & 7);
    #pragma unroll
                for (int k = 0; k < D / 16; k++) {
                    uint32_t kb[4];
                    ldsm_x4(kb, Ks + swz<D>(ktok, 2 * k + (mi & 1)));
                    mma16816(s[0], qh[k][0], qh[k][1], kb[0], kb[1]);
                    mma16816(s[0], ql[k][0], ql[k][1], kb[0], kb[1]);
                    mma16816(s[1], qh[k][0], qh[k][1], kb[2], kb[3]);
                    mma16816(s[1], ql[k][0], ql[k][1], kb[2], kb[3]);
                }
            }
            /* this lane holds S[hq][token tw0 + 8 nt + 2 q4 + e] */
            float mx = -INFINITY;
    #pragma unroll
            for (int nt = 0; nt < 2; nt++)
    #pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int tok = tw0 + 8 * nt + 2 * q4 + e;
                    if (tok >= valid) s[nt][e] = -INFINITY;
                    else if (a.raw && hq < NH)
                        a.raw[((size_t)b * a.H + h0 + hq) * a.n_ctx + t * ATT_TILE + tok] = s[nt][e];
                    mx = fmaxf(mx, s[nt][e]);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mn = fmaxf(m, mx);
            uint32_t ph[2], pl[2]; /* P as the A operand: rows = heads, k = the 16 tokens */
            if (mn == -INFINITY) {
                ph[0] = ph[1] = pl[0] = pl[1] = 0u;
            } else {
                const float corr = __expf(m - mn); /* 0 when m was -inf */
                float p[2][2];
    #pragma unroll
                for (int nt = 0; nt < 2; nt++)
    #pragma unroll
                    for (int e = 0; e < 2; e++) p[nt][e] = __expf(s[nt][e] - mn);
                l = l * corr + p[0][0] + p[0][1] + p[1][0] + p[1][1];
                m = mn;
    #pragma unroll
                for (int j = 0; j < D / 8; j++) o[j][0] *= corr, o[j][1] *= corr;
                split2(p[0][0], p[0][1], ph[0], pl[0]);
                split2(p[1][0], p[1][1], ph[1], pl[1]);
            }
            /* O (heads x D) += P V: V fragments by transposed loads, two
             * 8-column tiles per load */
            {
                const int mi = lane >> 3, vtok = tw0 + (mi & 1) * 8 + (lane & 7);
    #pragma unroll
                for (int jj = 0; jj < D / 16; jj++) {
                    uint32_t vb[4];
                    ldsm_x4_t(vb, Vs + swz<D>(vtok, 2 * jj + (mi >> 1)));
                    mma16816(o[2 * jj], ph[0], ph[1], vb[0], vb[1]);
                    mma16816(o[2 * jj], pl[0], pl[1], vb[0], vb[1]);
                    mma16816(o[2 * jj + 1], ph[0], ph[1], vb[2], vb[3]);
                    mma16816(o[2 * jj + 1], pl[0], pl[1], vb[2], vb[3]);
                }
            }
        }
        __syncthreads(); /* the stage is refilled next iteration */
    }
    cp_async_wait<0>();

    /* merge: the 4 lanes of a head share its max; sum their partial sums,
     * then merge the warps through shared memory (transposed: lane 4g + c
     * has head c % NH's max and its tokens' sum, so the sum runs over g) */
    __syncthreads();
    float *red = (float *)sm;                       /* (WARPS, NH, D) */
    float *redm = red + ATT_WARPS * NH * D;         /* (WARPS, NH) */
    float *redl = redm + ATT_WARPS * NH;            /* (WARPS, NH) */
    if constexpr (TR) {
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
        if (q4 < NH) {
            float *r = red + (warp * NH + q4) * D;
#pragma unroll
            for (int jj = 0; jj < D / 16; jj++) /* O^T rows 16 jj + hq and + 8: columns 2 q4 (hi) + 2 q4 + 1 (lo) */
                r[16 * jj + hq] = o[2 * jj][0] + o[2 * jj][1], r[16 * jj + hq + 8] = o[2 * jj + 1][0] + o[2 * jj + 1][1];
            if (hq == 0) redm[warp * NH + q4] = m, redl[warp * NH + q4] = l;
        }
    } else {
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        if (hq < NH) {
#pragma unroll
            for (int j = 0; j < D / 8; j++)
                red[(warp * NH + hq) * D + 8 * j + 2 * q4] = o[j][0],
                                              red[(warp * NH + hq) * D + 8 * j + 2 * q4 + 1] = o[j][1];
            if (q4 == 0) redm[warp * NH + hq] = m, redl[warp * NH + hq] = l;
        }
    }
    __syncthreads();
    for (int oi = threadIdx.x; oi < NH * D; oi += ATT_THREADS) {
        const int h = oi / D, j = oi % D;
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

/* Launch one instance, or (occ not NULL) only report how many of its
 * blocks fit on an SM. */
template <int D, int NH, int STAGES, bool LSC = false>
static cudaError_t launch_dns(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl, int *occ) {
    using C = att_cfg<D, STAGES, LSC>;
    size_t smem = C::SMEM;
    size_t red = (size_t)(ATT_WARPS * NH * D + 2 * ATT_WARPS * NH) * 4;
    if (red > smem) smem = red;
    cudaError_t e =
        cudaFuncSetAttribute(attend_kernel<D, NH, STAGES, LSC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    if (occ)
        return cudaOccupancyMaxActiveBlocksPerMultiprocessor(occ, attend_kernel<D, NH, STAGES, LSC>, ATT_THREADS, smem);
    dim3 grid(a->n_split, Hkv * (a->G / a->nh), B);
    return lk_launch_kernel(attend_kernel<D, NH, STAGES, LSC>, grid, dim3(ATT_THREADS), smem, s, pdl, 0, *a);
}

template <int D, int NH>
static cudaError_t launch_dn(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl, int *occ) {
#ifdef LK_ATT_ALL3 /* dev/cuda variant: 3 stages everywhere */
    if constexpr (D <= 128) return launch_dns<D, NH, 3>(a, B, Hkv, s, pdl, occ);
#endif
#ifndef LK_ATT_DENSE2 /* dev/cuda variant: dense MHA 2 stages deep (3 blocks per SM) */
    if constexpr (D <= 128 && NH == 1)
        if (!a->idx) return launch_dns<D, NH, 3>(a, B, Hkv, s, pdl, occ);
#endif
    if constexpr (NH == 1)
        if (a->idx && a->lsc && !a->lowrank) return launch_dns<D, NH, 2, true>(a, B, Hkv, s, pdl, occ);
    return launch_dns<D, NH, 2>(a, B, Hkv, s, pdl, occ);
}

template <int D> static cudaError_t launch_d(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl, int *occ) {
    switch (a->nh) {
    case 1: return launch_dn<D, 1>(a, B, Hkv, s, pdl, occ);
    case 2: return launch_dn<D, 2>(a, B, Hkv, s, pdl, occ);
    case 3: return launch_dn<D, 3>(a, B, Hkv, s, pdl, occ);
    case 4: return launch_dn<D, 4>(a, B, Hkv, s, pdl, occ);
    case 6: return launch_dn<D, 6>(a, B, Hkv, s, pdl, occ);
    case 8: return launch_dn<D, 8>(a, B, Hkv, s, pdl, occ);
    default: return cudaErrorInvalidValue;
    }
}

static cudaError_t launch_any(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl, int *occ) {
    switch (a->kv.D) {
    case 64: return launch_d<64>(a, B, Hkv, s, pdl, occ);
    case 128: return launch_d<128>(a, B, Hkv, s, pdl, occ);
    case 256: return launch_d<256>(a, B, Hkv, s, pdl, occ);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t lk_launch_attend(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl) {
    return launch_any(a, B, Hkv, s, pdl, NULL);
}

cudaError_t lk_attend_occupancy(const lk_attend_args *a, int *blocks_per_sm) {
    *blocks_per_sm = 0;
    return launch_any(a, 0, 0, NULL, false, blocks_per_sm);
}

/* One block per (b, h): merge the splits' partials by their maxima. Thread
 * s < n_split takes split s's weight exp(m_s - M); warp w sums the splits
 * w, w + 8, ... in float4 columns; the warps' sums meet in shared memory.
 * (A thread per column looping over every split left B = 1 rows with 50+
 * splits latency-bound: 10 µs.) */
#define RED_THREADS 256
struct red_max {
    __device__ float operator()(float x, float y) const { return fmaxf(x, y); }
};
__global__ void __launch_bounds__(RED_THREADS) reduce_kernel(const float *__restrict__ part,
                                                           const float *__restrict__ part_ml, int n_split, int D,
                                                           float *__restrict__ out, float *__restrict__ ml) {
    typedef cub::BlockReduce<float, RED_THREADS> red_t;
    __shared__ typename red_t::TempStorage tmp;
    __shared__ float wts[LK_GPU_MAX_SPLIT], sum[RED_THREADS / 32][256], sML[2];
    lk_pdl_wait();
    lk_pdl_release();
    const size_t row = blockIdx.x;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const float *pm = part_ml + row * n_split * 2;
    const float m = tid < n_split ? pm[2 * tid] : -INFINITY;
    const float M = red_t(tmp).Reduce(m, red_max());
    if (tid == 0) sML[0] = M;
    __syncthreads();
    const float w = m == -INFINITY ? 0.0f : __expf(m - sML[0]);
    if (tid < LK_GPU_MAX_SPLIT) wts[tid] = w;
    const float L = red_t(tmp).Sum(tid < n_split ? w * pm[2 * tid + 1] : 0.0f);
    if (tid == 0) sML[1] = L;
    __syncthreads();
    for (int c0 = lane * 4; c0 < D; c0 += 128) {
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int sp = warp; sp < n_split; sp += RED_THREADS / 32) {
            const float ws = wts[sp];
            if (ws == 0.0f) continue;
            const float4 v = *(const float4 *)(part + (row * n_split + sp) * D + c0);
            acc.x += ws * v.x, acc.y += ws * v.y, acc.z += ws * v.z, acc.w += ws * v.w;
        }
        sum[warp][c0] = acc.x, sum[warp][c0 + 1] = acc.y, sum[warp][c0 + 2] = acc.z, sum[warp][c0 + 3] = acc.w;
    }
    __syncthreads();
    for (int j = tid; j < D; j += RED_THREADS) {
        float O = 0.0f;
#pragma unroll
        for (int w8 = 0; w8 < RED_THREADS / 32; w8++) O += sum[w8][j];
        out[row * D + j] = O / sML[1];
    }
    if (ml && tid == 0) ml[row * 2] = sML[0], ml[row * 2 + 1] = sML[1];
}

cudaError_t lk_launch_reduce(const float *part, const float *part_ml, int n_split, int B, int H, int D, float *out,
                             float *ml, cudaStream_t s, bool pdl) {
    if (n_split > LK_GPU_MAX_SPLIT || n_split > RED_THREADS || D > 256 || D % 4) return cudaErrorInvalidValue;
    return lk_launch_kernel(reduce_kernel, dim3(B * H), dim3(RED_THREADS), 0, s, pdl, 0, part, part_ml, n_split, D,
                            out, ml);
}
