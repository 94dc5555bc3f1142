/*
 * loki_fused.cu - Loki's whole decode step in one kernel: score -> select
 * -> attend -> merge, each selection row of the batch (sequence and query
 * head, or sequence and KV head for a shared selection) in one
 * thread-block cluster.
 *
 * Why: with few rows (one sequence, 32 heads) the separate stages leave the
 * GPU idle between them: the select kernel is a chain of latency-bound
 * passes over scores that went to memory and come back, the attend kernel
 * has too few tiles per block to hide its start, and the reduce is a launch
 * of its own (ncu, H200, B = 1, 32k: score 22, select 21, attend 24, reduce
 * 4 us a layer). Here block c of a row's cluster scores its slice of the
 * row into shared memory, the cluster finds the k-th largest key with the
 * same radix select as select.cu (sel_digit.cuh; histograms added into the
 * root block's through distributed shared memory), each block attends over the selected
 * tokens of its own slice, and each block merges a share of the outputs from
 * the C partials. The scores
 * never leave the SM; the selection is still written (slots, n_sel) for
 * lk_gpu_attn_selection.
 *
 * Semantics are select.cu's and attend.cu's: the budget policy of
 * attn/budget.h (sinks above every score, the recent window newest first,
 * NaN below every number), exact ties to the lower position; the exact
 * score of a selected token is the score stage's scale * q[:d] . k[:d] plus
 * scale * q[d:] . k[d:] from k_hi, softmax over the selection only.
 *
 * Layout: grid (C * H, B), clusters of C blocks along x; block c of row h
 * takes the page-aligned slice [c L, (c + 1) L) of sequence b. Threads: FT.
 *
 * Grouped query heads (G > 1, LOKI_CUDA_FUSED_PER_HEAD): row h reads KV
 * head h / G, so each of a group's G rows scores the group's keys itself
 * (the score stage reads them once for the G heads); the G clusters of a
 * group are adjacent in the grid and run side by side, so the later reads
 * should come from L2. Shared selections (SH, LOKI_CUDA_FUSED_ALL): the row
 * is a KV head, its summed query selects and each of its G heads attends.
 * Neither is measured yet, hence not the default (attn.cu).
 */
#include "cuda/sel_digit.cuh"

#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>
#include <math.h>

namespace cg = cooperative_groups;

#define FT 256              /* threads per block */
/* Most positions of one slice: 72 pages, so one sequence of up to 36864
 * tokens with 32 heads takes clusters of 8 (one wave). Slices of 8192
 * (65536 tokens in clusters of 8) ran slower than the separate stages
 * (B = 1: 135.2 against 111.7 us, H200, 2026-12-04); at most 32 a thread
 * (the select's bit masks). */
#define F_SLMAX 4608
#define F_MAXC LK_FUSED_MAXC /* most blocks per cluster (Hopper's non-portable limit) */
/* dev/cuda knobs for shared rows, not measured yet: selected tokens in
 * flight per row group in the attend (a row group takes one head of G, so a
 * block covers 16 / G times fewer tokens per trip than a per-head row: 4
 * for G = 4 against 64), and the blocks per SM the registers are bounded
 * for (8 tokens need more than the 64 registers of 4 blocks). */
#ifndef LK_FUSED_SHU
#define LK_FUSED_SHU 4
#endif
/* dev/cuda knob, not measured yet: the attend balanced over the cluster
 * (block c attends the c-th C-th of the row's selected tokens, gathered
 * from the other blocks' slices, not its own slice's; falls back to the
 * slices when a share does not fit the dead select histogram; ptxas: 8-24
 * bytes of spills in every instance, which its measurement includes) */
#ifndef LK_FUSED_BAL
#define LK_FUSED_BAL 0
#endif
/* dev/cuda knob, not measured yet: the select's positions owned warp-strided
 * (lane l of warp w takes w * 32 per + 32 i + l) instead of per-thread
 * contiguous runs. Contiguous runs read sc with a stride of per floats
 * across the lanes: per = 16 (32k in clusters of 8) puts the warp's 32
 * loads on two banks, a 16-way conflict in each of the four sweeps. The
 * ascending offsets and tie ranks then come from per-i ballots. */
#ifndef LK_FUSED_WS
#define LK_FUSED_WS 0
#endif
#ifndef LK_FUSED_SHMINB
#define LK_FUSED_SHMINB 4
#endif

/* Shared memory of a block; the root's hist and st are the cluster's.
 * The slice's scores sc (L floats) and selected offsets lst (L) follow in
 * dynamic shared memory (fused_smem_bytes), so short slices leave room for
 * more blocks per SM. SH: a shared selection, whose row attends for up to
 * 16 query heads (the block's partial per head). */
template <int D, bool SH> struct fused_smem {
    static constexpr int NG = FT / (D / 8), HB = SH ? 16 : 1; /* row groups; heads of a row, at most */
    union {
        uint32_t hist[LK_SEL_BINS];     /* select passes */
        struct {                        /* after the select (hist is dead by then) */
            float o[NG][D];             /* the row groups' (m, l, o) */
            float m[NG], l[NG];
            float bo[HB][D], bm[HB], bl[HB]; /* this block's partial per head, read by every block */
            float w[HB][F_MAXC], wl[HB][F_MAXC], lr[HB]; /* the merge: block j's weight per head, sums */
        } mg;
    } u;
    int32_t bt[F_SLMAX / LK_GPU_PAGE];  /* the slice's block-table entries */
    lk_sel_state st;
    int32_t nloc;                       /* selected in this slice */
#if LK_FUSED_BAL
    int32_t pre[F_MAXC + 1];            /* the cluster's selections before each block */
#endif
    int32_t tcount;                     /* exactly tied keys in this slice (partial ties) */
    typename cub::BlockScan<uint32_t, FT>::TempStorage scan;
};

/* Sum of the int32 at field in the cluster's blocks 0 .. n-1 (n <= 32),
 * in every lane of the calling warp (all lanes call): one
 * distributed-shared-memory load per lane, all in flight together, where a
 * loop over the blocks waits hundreds of cycles per block. */
__device__ __forceinline__ int32_t fused_sum_blocks(const cg::cluster_group &cl, int32_t *field, int n) {
    const int lane = threadIdx.x % 32;
    const int32_t v = lane < n ? *cl.map_shared_rank(field, lane) : 0;
    return __reduce_add_sync(0xffffffffu, v);
}

/* Phase timing (a.stamps set): thread 0 writes the time at the start (p = 0)
 * and at the end of each phase (1 score, 2 select, 3 attend, 4 merge). */
__device__ __forceinline__ void fused_stamp(const lk_fused_args &a, int p) {
    if (!a.stamps || threadIdx.x != 0) return;
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    unsigned long long *s = a.stamps + (((size_t)blockIdx.y * gridDim.x + blockIdx.x) * LK_FUSED_NPH + p) * 2;
    s[0] = t, s[1] = (unsigned long long)clock64();
}

template <int D, bool SH> static size_t fused_smem_bytes(int L) {
    return (sizeof(fused_smem<D, SH>) + 15) / 16 * 16 + (size_t)L * (sizeof(float) + sizeof(uint16_t));
}

struct lk_fused_row {
    int32_t S, k, sinks, recent, lo, hi;
};

/* lpt lanes per key for the first d components (a power of two >= d / 8).
 * SH: the row is a KV head's shared selection (the group's summed query
 * selects; each of its G query heads attends), else the query head's own. */
template <int D, int LPT, bool SH>
__global__ void __launch_bounds__(FT, SH ? LK_FUSED_SHMINB : 4) loki_fused_kernel(const lk_fused_args a, int C, int L) {
    extern __shared__ __align__(16) unsigned char fsm_raw[];
    fused_smem<D, SH> &sm = *(fused_smem<D, SH> *)fsm_raw;
    float *sc = (float *)(fsm_raw + (sizeof(fused_smem<D, SH>) + 15) / 16 * 16); /* (L) scale * q[:d] . k[:d] */
    uint16_t *lst = (uint16_t *)(sc + L);                                  /* (L) selected offsets, ascending */
    const int per = (L + FT - 1) / FT;                                     /* positions a thread selects */
    cg::cluster_group cl = cg::this_cluster();
    const int c = (int)cl.block_rank(), tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    /* row h of sequence b: query head h (its KV head h / G), or (SH) KV head h */
    const int h = blockIdx.x / C, b = blockIdx.y, kvh = SH ? h : h / a.G;
    lk_pdl_wait();
    lk_pdl_release();
    fused_stamp(a, 0);
    fused_smem<D, SH> *root = cl.map_shared_rank(&sm, 0);
    lk_fused_row r;
    r.S = a.kv.seq_len[b];
    r.k = lk_attn_budget(&a.p, r.S);
    r.sinks = min(a.p.sinks, r.S);
    r.recent = min(lk_attn_recent(&a.p, r.k), r.S);
    r.lo = min(c * L, r.S), r.hi = min(r.lo + L, r.S);
    const bool all = lk_attn_all(&a.p, r.S, r.S, r.k);
    const int d = a.kv.dsplit[a.kv.layer * a.kv.Hkv + kvh];
    const size_t row = (size_t)b * (SH ? a.kv.Hkv : a.H) + h; /* of slots and n_sel */
    const int np = (r.hi - r.lo + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    for (int i = tid; i < np; i += FT) sm.bt[i] = a.kv.block_table[(size_t)b * a.kv.mpps + r.lo / LK_GPU_PAGE + i];
    for (int i = tid; i < LK_SEL_BINS; i += FT) sm.u.hist[i] = 0;
    if (tid == 0) {
        sm.st.P = 0, sm.st.sh = 32, sm.st.need = r.k, sm.st.mode = all ? 3 : 0, sm.st.C = r.S;
        sm.nloc = 0, sm.tcount = 0;
    }
    __syncthreads();
    const uint16_t *seg0 = a.kv.pool + lk_seg_offset(a.kv.layer, 0, kvh, a.kv.n_pages, a.kv.Hkv, D);
    const size_t pstride = (size_t)a.kv.Hkv * lk_seg_elems(D);

    /* ---- score: lanes c8 of a key hold q[c8*8 .. +8) of the first d, scaled */
    {
        constexpr int TPI = 32 / LPT, U = 8; /* keys per warp load; loads in flight per lane */
        const int c8 = lane % LPT, grp = lane / LPT;
        const bool act = c8 * 8 < d;
        /* SH: the group's queries added first, as the score stage's summed row */
        float qr[8];
        const float *qh = a.q + ((size_t)b * a.H + (SH ? kvh * a.G : h)) * D + c8 * 8;
#pragma unroll
        for (int e = 0; e < 8; e++) qr[e] = 0.0f;
        for (int g = 0; act && g < (SH ? a.G : 1); g++)
#pragma unroll
            for (int e = 0; e < 8; e++) qr[e] += qh[(size_t)g * D + e];
#pragma unroll
        for (int e = 0; e < 8; e++) qr[e] *= a.scale;
        const int n = r.hi - r.lo, per_it = (FT / 32) * TPI * U; /* keys per block iteration */
        for (int base = 0; base < n; base += per_it) {
            uint4 kc[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int t = base + (u * (FT / 32) + warp) * TPI + grp;
                const int pos = r.lo + t;
                kc[u] = act && t < n ? __ldg((const uint4 *)(seg0 + (size_t)sm.bt[t / LK_GPU_PAGE] * pstride +
                                                            (size_t)(pos % LK_GPU_PAGE) * d + c8 * 8))
                                     : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int t = base + (u * (FT / 32) + warp) * TPI + grp;
                float k8[8], part = 0.0f;
                lk_unpack8(kc[u], k8);
#pragma unroll
                for (int e = 0; e < 8; e++) part = fmaf(qr[e], k8[e], part);
#pragma unroll
                for (int off = LPT / 2; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
                if (c8 == 0 && t < n) sc[t] = part;
            }
        }
    }
    /* a cluster barrier, not only the block's: every block of the cluster has
     * started and zeroed its histogram before any block adds into the root's
     * (distributed shared memory may only be touched once its block runs) */
    cl.sync();
    fused_stamp(a, 1);

    /* ---- select: thread tid owns the slice's positions [tid*per, +per)
     * (LK_FUSED_WS: warp-strided); fpos(i) is its i-th, ascending in i */
#if LK_FUSED_WS
    const int t0 = warp * 32 * per + lane, tstep = 32;
    const uint32_t lane_lt = (1u << lane) - 1u;
#else
    const int t0 = tid * per, tstep = 1;
#endif
    auto fpos = [&](int i) { return t0 + tstep * i; };
    lk_sel_state st = sm.st;
    /* unrolled: each pass's digit width and shift are constants (the
     * compiler did so by itself before sel_digit.cuh; rolled, the step took
     * 2.7 us more at 32k, B = 1, H200 2026-12-05) */
#pragma unroll
    for (int pass = 0; pass < 3 && st.mode == 0; pass++) {
        const int shift = lk_sel_shift(pass), nb = 1 << lk_sel_bits(pass);
        for (int i = 0; i < per; i++) {
            const int t = fpos(i);
            if (r.lo + t >= r.hi) break;
            const uint32_t key = lk_sel_key(r.lo + t, r.S, r.sinks, r.recent, sc[t]);
            if (pass == 0 || (key >> st.sh) == st.P) atomicAdd(&sm.u.hist[(key >> shift) & (nb - 1)], 1u);
        }
        if (c != 0) { /* add the slice's histogram into the root's */
            __syncthreads();
            for (int i = tid; i < nb; i += FT) {
                const uint32_t v = sm.u.hist[i];
                if (v) atomicAdd(&root->u.hist[i], v), sm.u.hist[i] = 0;
            }
        }
        cl.sync();
        if (c == 0) lk_sel_digit<FT>(sm.u.hist, &sm.st, sm.scan, pass);
        cl.sync();
        st = root->st;
    }
    /* the slice's selected offsets, ascending: above the threshold, or
     * equal to it (all of those, or the first `need` of the row by position) */
    const bool take_eq = st.mode == 3 || (st.mode == 1 && st.need == st.C);
    uint32_t ntake = 0, neq = 0, ex;
    uint32_t take = 0, eqm = 0; /* bit i: position fpos(i) */
    for (int i = 0; i < per; i++) {
        const int t = fpos(i);
        if (r.lo + t >= r.hi) break;
        const uint32_t k = st.mode == 3 ? 0u : lk_sel_key(r.lo + t, r.S, r.sinks, r.recent, sc[t]) >> st.sh;
        const bool up = st.mode == 3 || k > st.P, eq = st.mode != 3 && k == st.P;
        if (up || (eq && take_eq)) take |= 1u << i, ntake++;
        else if (eq) eqm |= 1u << i, neq++;
    }
    if (!take_eq) { /* partial ties: the row's first `need` tied keys by position */
        uint32_t tot;
        cub::BlockScan<uint32_t, FT>(sm.scan).ExclusiveSum(neq, ex, tot);
        if (tid == 0) sm.tcount = (int32_t)tot;
        cl.sync();
#if LK_FUSED_WS /* the warp's earlier ties come first: ex of its lane 0, then the ballots of i */
        int32_t rank = fused_sum_blocks(cl, &sm.tcount, c) + __shfl_sync(0xffffffffu, (int32_t)ex, 0);
        for (int i = 0; i < per; i++) {
            const uint32_t bi = __ballot_sync(0xffffffffu, eqm >> i & 1);
            if ((eqm >> i & 1) && rank + __popc(bi & lane_lt) < st.need) take |= 1u << i, ntake++;
            rank += __popc(bi);
        }
#else
        int32_t rank = fused_sum_blocks(cl, &sm.tcount, c) + (int32_t)ex;
        for (int i = 0; i < per; i++)
            if (eqm >> i & 1) {
                if (rank < st.need) take |= 1u << i, ntake++;
                rank++;
            }
#endif
        __syncthreads(); /* sm.scan is reused */
    }
    {
        uint32_t tot;
        cub::BlockScan<uint32_t, FT>(sm.scan).ExclusiveSum(ntake, ex, tot);
#if LK_FUSED_WS
        for (int i = 0, o = __shfl_sync(0xffffffffu, (int)ex, 0); i < per; i++) {
            const uint32_t bi = __ballot_sync(0xffffffffu, take >> i & 1);
            if (take >> i & 1) lst[o + __popc(bi & lane_lt)] = (uint16_t)fpos(i);
            o += __popc(bi);
        }
#else
        for (int i = 0, o = (int)ex; i < per; i++)
            if (take >> i & 1) lst[o++] = (uint16_t)fpos(i);
#endif
        if (tid == 0) sm.nloc = (int32_t)tot;
    }
    cl.sync(); /* every slice's count is known; the root's hist is no longer read */
    fused_stamp(a, 2);
    const int nloc = sm.nloc;
#if LK_FUSED_BAL
    if (warp == 0) { /* the selections before each block: lane j loads block j's count, a shuffle scan */
        int32_t x = lane < C ? *cl.map_shared_rank(&sm.nloc, lane) : 0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int32_t y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        if (lane < C) sm.pre[lane + 1] = x;
        if (lane == 0) sm.pre[0] = 0;
    }
    __syncthreads();
#endif
    {   /* the selection's entries (physical slot, score) for lk_gpu_attn_selection */
#if LK_FUSED_BAL
        const int32_t off = sm.pre[c];
#else
        const int32_t off = fused_sum_blocks(cl, &sm.nloc, c);
#endif
        int2 *ent = a.slots + row * a.n_ctx + off;
        for (int j = tid; j < nloc; j += FT) {
            const int t = lst[j];
            ent[j] = make_int2(sm.bt[t / LK_GPU_PAGE] * LK_GPU_PAGE + (r.lo + t) % LK_GPU_PAGE,
                               __float_as_int(sc[t]));
        }
        if (c == 0 && tid == 0) a.n_sel[row] = st.mode == 3 ? -1 : r.k;
    }

    /* ---- attend: LPR lanes per token (8 dims each), NG row groups a block;
     * SH: row group gi takes head gi % G of the tokens gi / G, gi / G + NT, ...
     * (the G groups of a token read the same rows: one DRAM read, L1 for
     * the rest), else every group the row's head */
    constexpr int LPR = D / 8, NG = FT / LPR, U = SH ? LK_FUSED_SHU : 4;
    const int gi = tid / LPR, li = tid % LPR, dim0 = li * 8;
    const int GH = SH ? a.G : 1, hg = gi % GH, NT = NG / GH, tg = gi / GH; /* heads; this group's head, token lane */
    /* this lane's key dims: MHA only those past d, from k_hi (the rest is
     * the score in sc); SH all of them (sc holds the summed row's score) */
    const bool hi_part = dim0 >= d, kload = SH || hi_part;
    float qh8[8], o[8], m = -INFINITY, l = 0.0f;
    {
        const float *qh = a.q + ((size_t)b * a.H + (SH ? kvh * a.G + hg : h)) * D + dim0;
#pragma unroll
        for (int e = 0; e < 8; e++) qh8[e] = kload ? qh[e] * a.scale : 0.0f, o[e] = 0.0f;
    }
    /* a page's segment: k_lo (P, d), k_hi (P, D - d), v (P, D). MHA lanes
     * below d load no key, so their offsets are k_hi's like the others':
     * the row width then depends on SH alone, which spared the MHA
     * instances 8 bytes of spills that the per-lane choice cost (ptxas,
     * sm_90a, nvcc 13.0) */
    const size_t k_off = SH && !hi_part ? (size_t)dim0 : (size_t)LK_GPU_PAGE * d + (hi_part ? dim0 - d : 0);
    const size_t v_off = (size_t)LK_GPU_PAGE * D + dim0;
    const int k_row = SH && !hi_part ? d : D - d;
    /* the tokens this block attends: its slice's nloc (lst), or (bal) its
     * share of the cluster's, gathered as (physical slot, first-d score)
     * into the select histogram's space (dead by now) */
    int32_t *bslot = (int32_t *)&sm.u;
    constexpr int BCAP = (int)(sizeof(sm.u) / 8);
    float *bsc = (float *)(bslot + BCAP);
    int natt = nloc;
    bool bal = false;
#if LK_FUSED_BAL
    {
        const int32_t ntot = sm.pre[C];
        bal = C > 1 && (ntot + C - 1) / C <= BCAP;
        if (bal) {
            const int32_t g0 = (int32_t)((int64_t)c * ntot / C);
            natt = (int32_t)((int64_t)(c + 1) * ntot / C) - g0;
            for (int i = tid; i < natt; i += FT) {
                const int32_t g = g0 + i;
                int o = 0;
                while (o + 1 < C && sm.pre[o + 1] <= g) o++;
                const int t = *cl.map_shared_rank(lst + (g - sm.pre[o]), o); /* block o's slice offset */
                bslot[i] = *cl.map_shared_rank(&sm.bt[t / LK_GPU_PAGE], o) * LK_GPU_PAGE + t % LK_GPU_PAGE;
                bsc[i] = *cl.map_shared_rank(sc + t, o);
            }
            __syncthreads();
        }
    }
#endif
    const float *scs = bal ? bsc : sc; /* first-d scores by tt */
    for (int jb = 0; jb < natt; jb += NT * U) { /* the same trips for every lane (shuffles) */
        uint4 kc[U], vc[U];
        int tt[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = jb + u * NT + tg;
            /* tt: the token's index into the scores (the slice's offset, or bal the list's) */
#if LK_FUSED_BAL
            tt[u] = j >= natt ? -1 : bal ? j : lst[j];
            int page = 0, off = 0; /* physical page and row in it (slices are whole pages) */
            if (tt[u] >= 0) {
                if (bal) page = bslot[j] / LK_GPU_PAGE, off = bslot[j] % LK_GPU_PAGE;
                else page = sm.bt[tt[u] / LK_GPU_PAGE], off = tt[u] % LK_GPU_PAGE;
            }
            const uint16_t *sp = seg0 + (size_t)page * pstride;
#else /* the same without the list (with it ptxas spills 8-24 bytes in every instance) */
            tt[u] = j < natt ? lst[j] : -1;
            const uint16_t *sp = seg0 + (size_t)(tt[u] >= 0 ? sm.bt[tt[u] / LK_GPU_PAGE] : 0) * pstride;
            const int off = (r.lo + max(tt[u], 0)) % LK_GPU_PAGE;
#endif
            kc[u] = tt[u] >= 0 && kload ? __ldg((const uint4 *)(sp + k_off + (size_t)off * k_row))
                                        : make_uint4(0, 0, 0, 0);
            vc[u] = tt[u] >= 0 ? __ldg((const uint4 *)(sp + v_off + (size_t)off * D)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float k8[8], v8[8], part = 0.0f;
            lk_unpack8(kc[u], k8);
#pragma unroll
            for (int e = 0; e < 8; e++) part = fmaf(qh8[e], k8[e], part);
#pragma unroll
            for (int off = LPR / 2; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
            if (tt[u] < 0) continue; /* the row group's lanes agree */
            const float s = (SH ? 0.0f : scs[tt[u]]) + part, mn = fmaxf(m, s);
            if (mn == -INFINITY) continue; /* no finite score yet (overflow): weight 0, as attend_tile's */
            const float corr = __expf(m - mn), p = __expf(s - mn);
            lk_unpack8(vc[u], v8);
            l = l * corr + p;
#pragma unroll
            for (int e = 0; e < 8; e++) o[e] = fmaf(o[e], corr, p * v8[e]);
            m = mn;
        }
    }
    /* the block's partial per head from its row groups (those of head hh:
     * hh, hh + G, ...) */
    if (bal) __syncthreads(); /* the gathered list shares the space */
#pragma unroll
    for (int e = 0; e < 8; e++) sm.u.mg.o[gi][dim0 + e] = o[e];
    if (li == 0) sm.u.mg.m[gi] = m, sm.u.mg.l[gi] = l;
    __syncthreads();
    fused_stamp(a, 3);
    for (int j = tid; j < GH * D; j += FT) {
        const int hh = j / D, jd = j % D;
        float M = -INFINITY, O = 0.0f, Lb = 0.0f;
        for (int g = hh; g < NG; g += GH) M = fmaxf(M, sm.u.mg.m[g]);
        for (int g = hh; g < NG; g += GH) {
            const float w = sm.u.mg.m[g] == -INFINITY ? 0.0f : __expf(sm.u.mg.m[g] - M);
            O = fmaf(sm.u.mg.o[g][jd], w, O), Lb = fmaf(sm.u.mg.l[g], w, Lb);
        }
        sm.u.mg.bo[hh][jd] = O;
        if (jd == 0) sm.u.mg.bm[hh] = M, sm.u.mg.bl[hh] = Lb;
    }
    cl.sync();
    /* every block merges its share of the row's GH * D outputs (E of them)
     * from the C partials: each (head, block) pair's (m, l) and each
     * (output, block) pair's o is one remote load, all in flight together;
     * the sums run in block order (j = 0 .. C-1) as a sequential merge's */
    {
        const int E = GH * D / C, e0 = c * E; /* D / C outputs a head, C a power of two up to D */
        float *bo_c = &sm.u.mg.o[0][0];       /* (E, C) this block's outputs from each block (its own o is done) */
        for (int i = tid; i < GH * C; i += FT) {
            const int hh = i / C, j = i % C;
            const fused_smem<D, SH> *o2 = cl.map_shared_rank(&sm, j);
            sm.u.mg.w[hh][j] = o2->u.mg.bm[hh], sm.u.mg.wl[hh][j] = o2->u.mg.bl[hh];
        }
        for (int i = tid; i < E * C; i += FT) {
            const int e = e0 + i / C, j = i % C;
            bo_c[i] = cl.map_shared_rank(&sm, j)->u.mg.bo[e / D][e % D];
        }
        __syncthreads();
        for (int hh = tid; hh < GH; hh += FT) { /* block j's weight exp(m_j - M), -1: none (m_j = -inf) */
            float Mr = -INFINITY, Lr = 0.0f;
            for (int j = 0; j < C; j++) Mr = fmaxf(Mr, sm.u.mg.w[hh][j]);
            for (int j = 0; j < C; j++) {
                const float bm = sm.u.mg.w[hh][j], wj = bm == -INFINITY ? -1.0f : __expf(bm - Mr);
                Lr += wj < 0.0f ? 0.0f : sm.u.mg.wl[hh][j] * wj;
                sm.u.mg.w[hh][j] = wj;
            }
            sm.u.mg.lr[hh] = Lr;
        }
        __syncthreads();
        for (int i = tid; i < E; i += FT) {
            const int e = e0 + i, hh = e / D;
            float O = 0.0f;
            for (int j = 0; j < C; j++) {
                const float wj = sm.u.mg.w[hh][j];
                if (wj >= 0.0f) O = fmaf(bo_c[i * C + j], wj, O);
            }
            a.out[((size_t)b * a.H + (SH ? kvh * a.G + hh : h)) * D + e % D] = O / sm.u.mg.lr[hh];
        }
    }
    cl.sync(); /* every block has read the others' partials */
    fused_stamp(a, 4);
}

bool lk_fused_eligible(int D, int dmax, int G, bool shared, int32_t max_len) {
    const int NG = FT / (D / 8); /* a shared row's G heads split the row groups */
    return (D == 64 || D == 128) && dmax >= 8 && dmax <= D && max_len <= F_MAXC * F_SLMAX &&
           (!shared || (G >= 1 && G <= 16 && NG % G == 0));
}

typedef void (*fused_kern)(const lk_fused_args, int, int);

/* Clusters of C blocks of kern that can be resident at once (they must fit
 * in one GPC: with 16-block clusters an H200 holds 28 of them, not 132 * 4
 * / 16 = 33), 0 on error. */
static int fused_max_clusters(fused_kern kern, int C, size_t smem) {
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeClusterDimension;
    at.val.clusterDim.x = (unsigned)C, at.val.clusterDim.y = 1, at.val.clusterDim.z = 1;
    cfg.gridDim = dim3(C, 1, 1), cfg.blockDim = dim3(FT), cfg.dynamicSmemBytes = smem, cfg.attrs = &at, cfg.numAttrs = 1;
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, kern, &cfg) == cudaSuccess) return n;
    (void)cudaGetLastError(); /* not left for the next launch check to report */
    return 0;
}

/* Blocks per row C (a power of two up to 16) and slice L (whole pages) for
 * rows rows of up to max_len tokens into *C, *L (C = 0: the separate
 * stages): the most blocks per row whose clusters are all resident at once
 * (one wave: a cluster that waits for a second wave doubles the step; B = 1
 * at 33k tokens with 32 heads takes 8, since 32 clusters of 16 are more
 * than the 28 an H200 holds) and whose last block has tokens, else, for
 * batches of at least four waves, slices of at most 4096 tokens; otherwise
 * the stages. Measured on the H200 for MHA (2026-12-04, docs/GPU.md
 * "Session 18"); grouped and shared rows use the same rule, unmeasured. */
template <int D, bool SH>
static void fused_shape(fused_kern kern, int64_t rows, int32_t max_len, int force_c, int *C, int *L) {
    auto slice = [&](int c) { return ((max_len + c - 1) / c + LK_GPU_PAGE - 1) / LK_GPU_PAGE * LK_GPU_PAGE; };
    int Cmin = 1, c = 0;
    while ((int64_t)Cmin * F_SLMAX < max_len) Cmin *= 2;
    if (force_c > 0) { /* for measurements: the next power of two the rows allow, if such clusters fit at all */
        c = Cmin;
        while (c < force_c && c < F_MAXC) c *= 2;
        if (fused_max_clusters(kern, c, fused_smem_bytes<D, SH>(slice(c))) <= 0) c = 0;
        *C = c, *L = c ? slice(c) : 0;
        return;
    }
    for (int c2 = F_MAXC; c2 >= Cmin && !c; c2 /= 2)
        if ((c2 == Cmin || ((max_len + c2 - 1) / c2 >= LK_GPU_PAGE && (int64_t)(c2 - 1) * slice(c2) < max_len)) &&
            rows <= fused_max_clusters(kern, c2, fused_smem_bytes<D, SH>(slice(c2))))
            c = c2;
    if (!c) {
        int c2 = Cmin;
        while (c2 < F_MAXC && slice(c2) > 4096) c2 *= 2;
        const int64_t resident = (int64_t)fused_max_clusters(kern, c2, fused_smem_bytes<D, SH>(slice(c2)));
        if (rows >= 4 * resident && resident > 0) c = c2;
    }
    *C = c, *L = c ? slice(c) : 0;
}

/* The launch of one kernel instance (bit: its bit in plan->attr_set). */
template <int D, int LPT, bool SH>
static cudaError_t launch_fused(const lk_fused_args *a, int B, int32_t max_len, lk_fused_plan *plan, uint32_t bit,
                                cudaStream_t s, bool *taken) {
    fused_kern kern = loki_fused_kernel<D, LPT, SH>;
    if (!(plan->attr_set & bit)) {
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)fused_smem_bytes<D, SH>(F_SLMAX));
        if (e == cudaSuccess) e = cudaFuncSetAttribute(kern, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
        if (e != cudaSuccess) return e;
        plan->attr_set |= bit;
    }
    const int R = SH ? a->kv.Hkv : a->H; /* rows per sequence */
    if (plan->B != B || plan->D != D || plan->max_len != max_len) { /* lk_fused_plan: what the key leaves out */
        fused_shape<D, SH>(kern, (int64_t)B * R, max_len, plan->force_c, &plan->C, &plan->L);
        plan->B = B, plan->D = D, plan->max_len = max_len;
    }
    *taken = plan->C > 0;
    if (!*taken) return cudaSuccess;
    const int C = plan->C;
    return lk_launch_kernel(kern, dim3(C * R, B, 1), dim3(FT), fused_smem_bytes<D, SH>(plan->L), s, false, C, *a,
                            C, plan->L);
}

template <bool SH>
static cudaError_t launch_fused_lpt(const lk_fused_args *a, int B, int32_t max_len, int lpt, lk_fused_plan *plan,
                                    cudaStream_t s, bool *taken) {
    const uint32_t sh = SH ? 9 : 0; /* attribute bits: 9 instances each */
    switch (a->kv.D * 64 + lpt) {
#define LK_FUSED_CASE(D, LPT, BIT) \
    case D * 64 + LPT: return launch_fused<D, LPT, SH>(a, B, max_len, plan, 1u << (BIT + sh), s, taken);
        LK_FUSED_CASE(64, 1, 0) LK_FUSED_CASE(64, 2, 1) LK_FUSED_CASE(64, 4, 2) LK_FUSED_CASE(64, 8, 3)
        LK_FUSED_CASE(128, 1, 4) LK_FUSED_CASE(128, 2, 5) LK_FUSED_CASE(128, 4, 6) LK_FUSED_CASE(128, 8, 7)
        LK_FUSED_CASE(128, 16, 8)
#undef LK_FUSED_CASE
    default: return cudaSuccess;
    }
}

cudaError_t lk_launch_loki_fused(const lk_fused_args *a, int B, int32_t max_len, int dmax, lk_fused_plan *plan,
                                 cudaStream_t s, bool *taken) {
    *taken = false;
    if (!lk_fused_eligible(a->kv.D, dmax, a->G, a->shared, max_len)) return cudaSuccess;
    int lpt = 1;
    while (lpt * 8 < dmax) lpt <<= 1;
    return a->shared ? launch_fused_lpt<true>(a, B, max_len, lpt, plan, s, taken)
                     : launch_fused_lpt<false>(a, B, max_len, lpt, plan, s, taken);
}
