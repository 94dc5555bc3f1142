/*
 * select.cu - the select stage: per selection row, the exact top-k of the
 * row's keys under the budget policy (attn/budget.h), without sorting.
 *
 * Every position gets a 32-bit key ordered like the selection wants it:
 * forced tokens above every score (sinks highest, then the recent window
 * newest first), scores by their orderable float bits, NaN below every
 * number, evicted tokens (H2O) at 0. A radix select finds the k-th largest
 * key in at most three histogram passes (12, 10 and 10 bits; it stops once
 * the boundary bucket is taken whole), then an append writes the positions
 * above the threshold (in no particular order) and, when exactly tied keys
 * are taken only in part, the first of the tied ones by position, so ties go
 * to the lower position, as on the CPU.
 *
 * One kernel does it all: a row belongs to one thread-block cluster
 * (Hopper; 1 to 16 blocks, each a slice of the row). Each block counts its
 * slice into a shared-memory histogram and adds it into the cluster root's
 * through distributed shared memory; the root finds the digit and the
 * others read the decision back from it. So a step costs one launch, no
 * global histograms, and the re-reads of a slice come from L2. Clusters
 * spread the short rows of a batch of one over the GPU; a large batch uses
 * clusters of one block.
 */
#include "cuda/sel_digit.cuh"

#include <cooperative_groups.h>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <math.h>

namespace cg = cooperative_groups;

/* Threads per block T: 512, or 256 for rows of at most 8192 tokens when a
 * batch has more of them than one wave of 512-thread blocks holds
 * (lk_launch_select); blocks resident per SM by the register budget: 1024 / T. */
#define SEL_THREADS 512
#define SEL_VEC 4 /* positions per thread and load: float4 */
#define SEL_BINS LK_SEL_BINS
#define SEL_CAP 4096  /* keys of the first digit's boundary bucket a block keeps in shared memory */
#define SEL_MAX_CLUSTER 16
#define SEL_BT_MAX 8192 /* block-table entries a block copies to shared memory (32 KB) */

struct sel_row {
    const float *row;       /* (n_ctx) scores, or the first of combine_g rows */
    const uint8_t *ev;      /* (n_ctx) or NULL */
    const uint32_t *rmax;   /* (combine_g) orderable maxima */
    int32_t S, k, sinks, recent;
    size_t id;              /* b * rows_per_seq + r */
};

__device__ __forceinline__ sel_row make_row(const lk_select_args &a, int b, int rr) {
    sel_row r;
    const size_t srow = (size_t)b * a.srow_b + (size_t)rr * a.srow_r;
    r.id = (size_t)b * a.rows_per_seq + rr;
    r.S = a.seq_len[b];
    r.row = a.scores + srow * a.n_ctx;
    r.ev = a.evicted ? a.evicted + srow * a.n_ctx : NULL;
    r.rmax = a.rowmax ? a.rowmax + (size_t)b * a.H + (size_t)rr * a.combine_g : NULL;
    r.k = lk_attn_budget(&a.p, r.S);
    r.sinks = min(a.p.sinks, r.S);
    r.recent = min(lk_attn_recent(&a.p, r.k), r.S);
    return r;
}

/* Scores of positions s0 .. s0+3 (s0 a multiple of 4; rows are n_ctx long,
 * a multiple of 64, so the vector loads stay inside the row): the row's, or
 * the combination of the group's rows. */
template <bool SIMPLE>
__device__ __forceinline__ float4 row_vals(const lk_select_args &a, const sel_row &r, int32_t s0) {
    if constexpr (SIMPLE) return *(const float4 *)(r.row + s0); /* no unreachable combine loop (nvcc #128-D) */
    if (a.combine_g <= 0) return *(const float4 *)(r.row + s0);
    float x[SEL_VEC];
#pragma unroll
    for (int i = 0; i < SEL_VEC; i++) x[i] = a.combine_max ? -INFINITY : 0.0f;
    for (int g = 0; g < a.combine_g; g++) {
        const float4 v = *(const float4 *)(r.row + (size_t)g * a.n_ctx + s0);
        const float y[SEL_VEC] = {v.x, v.y, v.z, v.w};
        const float mg = a.combine_max ? lk_key_float(r.rmax[g]) : 0.0f;
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) x[i] = a.combine_max ? fmaxf(x[i], y[i] - mg) : x[i] + y[i];
    }
    return make_float4(x[0], x[1], x[2], x[3]);
}

/* Keys of positions s0 .. s0+3 from their scores v; positions at or past S
 * get valid = 0. */
template <bool SIMPLE>
__device__ __forceinline__ void vals_keys(const sel_row &r, int32_t s0, float4 v, uint32_t key[SEL_VEC],
                                          bool valid[SEL_VEC]) {
    const float x[SEL_VEC] = {v.x, v.y, v.z, v.w};
    const uchar4 e = !SIMPLE && r.ev ? *(const uchar4 *)(r.ev + s0) : make_uchar4(0, 0, 0, 0);
    const uint8_t ev[SEL_VEC] = {e.x, e.y, e.z, e.w};
#pragma unroll
    for (int i = 0; i < SEL_VEC; i++) {
        const int32_t s = s0 + i;
        valid[i] = s < r.S;
        key[i] = ev[i] ? 0u : lk_sel_key(s, r.S, r.sinks, r.recent, x[i]);
    }
}

template <bool SIMPLE>
__device__ __forceinline__ void row_keys(const lk_select_args &a, const sel_row &r, int32_t s0, uint32_t key[SEL_VEC],
                                         bool valid[SEL_VEC]) {
    vals_keys<SIMPLE>(r, s0, row_vals<SIMPLE>(a, r, s0), key, valid);
}

/* A slice's scores in order, each thread's next float4 loaded one step
 * ahead of its use, so the load's latency overlaps the work on the current
 * one (the scans below are otherwise latency-bound: ncu, 2026-12-02). Two
 * or four steps ahead (session 17's SEL_PF knob) measured no faster on the
 * H200 (session 18: select 22.6 / 22.6 / 23.3 us at B = 1, 100.5 / 100.7 /
 * 103.8 at B = 16, 32k), so one it is. */
template <bool SIMPLE> struct row_stream {
    float4 buf; /* the values of the next s0 */
    __device__ __forceinline__ void start(const lk_select_args &a, const sel_row &r, int32_t s0, int32_t step,
                                          int32_t hi) {
        (void)step;
        buf = s0 < hi ? row_vals<SIMPLE>(a, r, s0) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    /* keys of s0 (< hi or all invalid), and the load of s0 + step */
    __device__ __forceinline__ void next(const lk_select_args &a, const sel_row &r, int32_t s0, int32_t step,
                                         int32_t hi, uint32_t key[SEL_VEC], bool valid[SEL_VEC]) {
        const float4 cur = buf;
        if (s0 + step < hi) buf = row_vals<SIMPLE>(a, r, s0 + step);
        if (s0 < hi) vals_keys<SIMPLE>(r, s0, cur, key, valid);
        else
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++) key[i] = 0u, valid[i] = false;
    }
};

/* A block's shared memory; the cluster root's histogram, state, append
 * counter and tie counts are the cluster's. The boundary bucket's keys
 * (key, position) follow in dynamic shared memory. */
template <int T> struct sel_smem {
    uint32_t hist[SEL_BINS];
    lk_sel_state st;
    int32_t fill;                   /* root: the row's append counter */
    int32_t cand;                   /* root: candidates (tokens not evicted) */
    int32_t nkeep;                  /* this block's kept keys (> SEL_CAP: some were not kept) */
    int32_t tcount[SEL_MAX_CLUSTER];/* root: tied keys in each block's slice */
    typename cub::BlockScan<uint32_t, T>::TempStorage scan;
};

/* Each lane takes n consecutive entries of *counter (one atomic per warp;
 * the counter may live in another block's shared memory); returns the
 * lane's first. All lanes of the warp call it. */
__device__ __forceinline__ int32_t warp_reserve(int32_t *counter, uint32_t n) {
    const int lane = threadIdx.x % 32;
    uint32_t incl = n;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const uint32_t t = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += t;
    }
    const uint32_t tot = __shfl_sync(0xffffffffu, incl, 31);
    int32_t start = 0;
    if (lane == 31 && tot) start = atomicAdd(counter, (int32_t)tot);
    return __shfl_sync(0xffffffffu, start, 31) + (int32_t)(incl - n);
}

/* Two reservations at once (n1, n2 < 65536 per warp: at most 4 each per
 * lane here), one scan of the packed counts: *o1 from c1, *o2 from c2. */
__device__ __forceinline__ void warp_reserve2(int32_t *c1, uint32_t n1, int32_t *c2, uint32_t n2, int32_t *o1,
                                              int32_t *o2) {
    const int lane = threadIdx.x % 32;
    const uint32_t n = n1 | n2 << 16;
    uint32_t incl = n;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const uint32_t t = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += t;
    }
    const uint32_t tot = __shfl_sync(0xffffffffu, incl, 31), ex = incl - n;
    int32_t s1 = 0, s2 = 0;
    if (lane == 31) {
        if (tot & 0xffffu) s1 = atomicAdd(c1, (int32_t)(tot & 0xffffu));
        if (tot >> 16) s2 = atomicAdd(c2, (int32_t)(tot >> 16));
    }
    *o1 = __shfl_sync(0xffffffffu, s1, 31) + (int32_t)(ex & 0xffffu);
    *o2 = __shfl_sync(0xffffffffu, s2, 31) + (int32_t)(ex >> 16);
}

/* Entry o of the row's list: (idx) position pos; its physical slot and its
 * score, the key's float or, for a forced token (whose key is not its
 * score), the row's value read back (an L2 hit: the block scanned it). */
/* bt: the sequence's block table from page p0 on (this block's slice; a
 * shared-memory copy where it fits). */
struct sel_bt {
    const int32_t *bt;
    int32_t p0;
};
__device__ __forceinline__ void put(const lk_select_args &a, const sel_row &r, sel_bt bt, int32_t o, int32_t pos,
                                    uint32_t key) {
    if (a.idx) a.idx[r.id * a.n_ctx + o] = pos;
    const float sc = key >= 0xff800001u ? r.row[pos] : lk_key_float(key);
    a.slots[r.id * a.n_ctx + o] =
        make_int2(bt.bt[pos / LK_GPU_PAGE - bt.p0] * LK_GPU_PAGE + pos % LK_GPU_PAGE, __float_as_int(sc));
}

/* This block's histogram of the pass's digit over the keys that match the
 * prefix so far: the slice's, or the kept keys when keep is not NULL.
 * Returns the thread's count of candidates (keys > 0; pass 0, slice). */
template <bool SIMPLE, int T>
__device__ int32_t hist_pass(sel_smem<T> &sm, const uint2 *keep, const lk_select_args &a, const sel_row &r, int32_t lo,
                             int32_t hi, int pass, const lk_sel_state &st) {
    const int shift = lk_sel_shift(pass), nb = 1 << lk_sel_bits(pass);
    int32_t mine = 0;
    if (keep) {
        for (int i = threadIdx.x; i < min(sm.nkeep, SEL_CAP); i += T) {
            const uint32_t key = keep[i].x;
            if ((key >> st.sh) == st.P) atomicAdd(&sm.hist[(key >> shift) & (nb - 1)], 1u);
        }
        return 0;
    }
    row_stream<SIMPLE> rs;
    rs.start(a, r, lo + threadIdx.x * SEL_VEC, T * SEL_VEC, hi);
    for (int32_t s0 = lo + threadIdx.x * SEL_VEC; s0 < hi; s0 += T * SEL_VEC) {
        uint32_t key[SEL_VEC];
        bool valid[SEL_VEC];
        rs.next(a, r, s0, T * SEL_VEC, hi, key, valid);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++)
            if (valid[i]) {
                mine += key[i] != 0u;
                if (pass == 0 || (key[i] >> st.sh) == st.P) atomicAdd(&sm.hist[(key[i] >> shift) & (nb - 1)], 1u);
            }
    }
    return mine;
}

/* Root only: the pass's digit (lk_sel_digit); the row's count once its
 * threshold is final. */
template <int T>
__device__ void sel_digit(sel_smem<T> &sm, int pass, const sel_row &r, const lk_select_args &a) {
    if (lk_sel_digit<T>(sm.hist, &sm.st, sm.scan, pass)) a.n_sel[r.id] = r.k;
}

/* After the first digit left its bucket P0 undecided: append the slice's
 * positions above the bucket (they are in whatever the threshold) and keep
 * the bucket's keys, up to SEL_CAP, for the next passes. */
template <bool SIMPLE, int T>
__device__ void keep_bucket(sel_smem<T> &sm, sel_smem<T> *root, uint2 *keep, const lk_select_args &a, const sel_row &r,
                            sel_bt bt, int32_t lo, int32_t hi, uint32_t P0) {
    row_stream<SIMPLE> rs;
    rs.start(a, r, lo + threadIdx.x * SEL_VEC, T * SEL_VEC, hi);
    for (int32_t base = lo; base < hi; base += T * SEL_VEC) {
        const int32_t s0 = base + threadIdx.x * SEL_VEC;
        uint32_t key[SEL_VEC], up = 0, in = 0, nup = 0, nin = 0;
        bool valid[SEL_VEC];
        rs.next(a, r, s0, T * SEL_VEC, hi, key, valid);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) {
            const uint32_t d = key[i] >> 20;
            const bool u = valid[i] && d > P0, k = valid[i] && d == P0;
            up |= (uint32_t)u << i, nup += u, in |= (uint32_t)k << i, nin += k;
        }
        int32_t o, q;
        warp_reserve2(&root->fill, nup, &sm.nkeep, nin, &o, &q);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) {
            if (up >> i & 1) put(a, r, bt, o++, s0 + i, key[i]);
            if (in >> i & 1) {
                if (q < SEL_CAP) keep[q] = make_uint2(key[i], (uint32_t)(s0 + i));
                q++;
            }
        }
    }
}

/* grid (C * rows_per_seq, B), clusters of C blocks: block c of a cluster
 * takes positions [c*L, (c+1)*L) of row blockIdx.x / C. SIMPLE: one score
 * row per selection row and no evictions (fewer registers). */
template <bool SIMPLE, int T>
__global__ void __launch_bounds__(T, 1024 / T) sel_kernel(const lk_select_args a, int C, int bt_cap) {
    __shared__ sel_smem<T> sm;
    extern __shared__ uint2 keep_buf[];
    lk_pdl_wait();
    lk_pdl_release(); /* (SEL_CAP) kept keys and positions, then (bt_cap) block-table entries */
    cg::cluster_group cl = cg::this_cluster();
    /* a cluster of one block needs only the block barrier */
    auto csync = [&]() {
        if (C == 1) __syncthreads();
        else cl.sync();
    };
    const int c = (int)cl.block_rank(), tid = threadIdx.x, lane = tid % 32;
    const sel_row r = make_row(a, blockIdx.y, blockIdx.x / C);
    if (!r.ev && lk_attn_all(&a.p, r.S, r.S, r.k)) { /* attends to all, decided without the keys */
        if (c == 0 && tid == 0) a.n_sel[r.id] = -1;
        return; /* the whole cluster, before any access to the root */
    }
    sel_smem<T> *root = cl.map_shared_rank(&sm, 0);
    const int32_t L = ((r.S + C - 1) / C + SEL_VEC - 1) / SEL_VEC * SEL_VEC;
    const int32_t lo = min(c * L, r.S), hi = min(lo + L, r.S);
    /* the slice's block-table entries (every put reads one), copied to
     * shared memory when they fit (bt_cap) */
    sel_bt bt = {a.block_table + (size_t)blockIdx.y * a.mpps + lo / LK_GPU_PAGE, lo / LK_GPU_PAGE};
    const int32_t np = hi > lo ? (hi - 1) / LK_GPU_PAGE - lo / LK_GPU_PAGE + 1 : 0;
    if (np <= bt_cap) {
        int32_t *sbt = (int32_t *)(keep_buf + SEL_CAP);
        for (int i = tid; i < np; i += T) sbt[i] = bt.bt[i];
        bt.bt = sbt; /* read after the barrier below */
    }
    for (int i = tid; i < SEL_BINS; i += T) sm.hist[i] = 0;
    if (tid == 0) {
        sm.st.P = 0, sm.st.sh = 32, sm.st.need = r.k, sm.st.mode = 0, sm.st.C = 0;
        sm.fill = 0, sm.cand = 0, sm.nkeep = 0;
    }
    csync();
    lk_sel_state st = sm.st;
    const uint2 *keep = NULL; /* the kept bucket, once there is one and it fits */
    bool kept = false;
    uint32_t P0 = 0;
    for (int pass = 0; pass < 3; pass++) {
        int32_t mine = hist_pass<SIMPLE, T>(sm, keep, a, r, lo, hi, pass, st);
        if (!SIMPLE && pass == 0 && r.ev) {
            mine = __reduce_add_sync(0xffffffffu, mine);
            if (lane == 0 && mine) atomicAdd(&root->cand, mine);
        }
        if (c != 0) { /* add the slice's histogram into the root's */
            __syncthreads();
            for (int i = tid; i < (1 << lk_sel_bits(pass)); i += T) {
                const uint32_t v = sm.hist[i];
                if (v) atomicAdd(&root->hist[i], v), sm.hist[i] = 0;
            }
        }
        csync();
        if (c == 0) {
            if (pass == 0 && tid == 0) { /* the budget decides first: all candidates, or a top-k */
                const int32_t Cn = r.ev ? sm.cand : r.S;
                sm.st.C = Cn;
                if (lk_attn_all(&a.p, r.S, Cn, r.k)) {
                    sm.st.mode = 3, sm.st.sh = 0, sm.st.need = 0;
                    a.n_sel[r.id] = Cn;
                }
            }
            __syncthreads();
            if (sm.st.mode == 0) sel_digit<T>(sm, pass, r, a);
        }
        csync();
        st = root->st;
        if (st.mode != 0) break;
        if (pass == 0) { /* the rest happens inside the first digit's bucket */
            P0 = st.P, kept = true;
            keep_bucket<SIMPLE, T>(sm, root, keep_buf, a, r, bt, lo, hi, P0);
            __syncthreads();
            if (sm.nkeep <= SEL_CAP) keep = keep_buf;
        }
    }
    /* append the positions above the threshold (and the tied bucket when it
     * is taken whole; mode 3: every key > 0); after keep_bucket only those
     * inside the first digit's bucket are left */
    const bool take_eq = st.mode == 1 && st.need == st.C;
    if (keep) {
        for (int base = 0; base < sm.nkeep; base += T) {
            const int i = base + tid;
            const uint2 e = i < sm.nkeep ? keep[i] : make_uint2(0u, 0u);
            const uint32_t k = e.x >> st.sh;
            const bool t = i < sm.nkeep && (k > st.P || (take_eq && k == st.P));
            const int32_t o = warp_reserve(&root->fill, t);
            if (t) put(a, r, bt, o, (int32_t)e.y, e.x);
        }
    } else {
        for (int32_t base = lo; base < hi; base += T * SEL_VEC) {
            const int32_t s0 = base + tid * SEL_VEC;
            uint32_t key[SEL_VEC] = {0, 0, 0, 0}, take = 0, n = 0;
            bool valid[SEL_VEC] = {false, false, false, false};
            if (s0 < hi) row_keys<SIMPLE>(a, r, s0, key, valid);
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++) {
                const uint32_t k = key[i] >> st.sh;
                const bool t = valid[i] && (!kept || key[i] >> 20 == P0) && (k > st.P || (take_eq && k == st.P));
                take |= (uint32_t)t << i, n += t;
            }
            int32_t o = warp_reserve(&root->fill, n);
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++)
                if (take >> i & 1) put(a, r, bt, o++, s0 + i, key[i]);
        }
    }
    if (st.mode == 1 && st.need != st.C) {
        /* exactly tied keys taken in part (rare): the first `need` of them by
         * position go after the k - need above the threshold */
        uint32_t eqn = 0, ex, tot;
        for (int32_t s0 = lo + tid * SEL_VEC; s0 < hi; s0 += T * SEL_VEC) {
            uint32_t key[SEL_VEC];
            bool valid[SEL_VEC];
            row_keys<SIMPLE>(a, r, s0, key, valid);
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++) eqn += valid[i] && (key[i] >> st.sh) == st.P;
        }
        __syncthreads(); /* sm.scan is reused */
        cub::BlockScan<uint32_t, T>(sm.scan).ExclusiveSum(eqn, ex, tot);
        if (tid == 0) root->tcount[c] = (int32_t)tot;
        csync();
        int32_t run = 0;
        for (int j = 0; j < c; j++) run += root->tcount[j];
        const int32_t o0 = r.k - st.need;
        for (int32_t base = lo; base < hi && run < st.need; base += T * SEL_VEC) {
            const int32_t s0 = base + tid * SEL_VEC;
            uint32_t key[SEL_VEC] = {0, 0, 0, 0}, eq = 0, n = 0;
            bool valid[SEL_VEC] = {false, false, false, false};
            if (s0 < hi) row_keys<SIMPLE>(a, r, s0, key, valid);
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++) {
                const bool e = valid[i] && (key[i] >> st.sh) == st.P;
                eq |= (uint32_t)e << i, n += e;
            }
            __syncthreads(); /* sm.scan is reused */
            cub::BlockScan<uint32_t, T>(sm.scan).ExclusiveSum(n, ex, tot);
            int32_t rank = run + (int32_t)ex;
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++)
                if (eq >> i & 1) {
                    if (rank < st.need) put(a, r, bt, o0 + rank, s0 + i, key[i]);
                    rank++;
                }
            run += (int32_t)tot;
        }
    }
    csync(); /* the root's shared memory stays until every block is done with it */
}

/* Blocks per row: the most (up to 16, each at least 4096 positions) that
 * keep one block per SM, or two per SM when each block still has at least
 * 16384 positions. Measured on the H200 (2026-12-03, docs/RESULTS.md item
 * 26), B = 1, 32 rows: at 32k, 4 blocks a row (one per SM) 22.2 us against
 * 26.6 for 8 (two per SM); at 128k, 8 a row (two per SM) 52.8 us against
 * 55.7 for 4. */
#ifndef LK_SEL_CLUSTER_CAP /* dev/cuda variant knob: -DLK_SEL_CLUSTER_CAP=1 (no clusters) */
#define LK_SEL_CLUSTER_CAP SEL_MAX_CLUSTER
#endif
static int sel_cluster_size(int rows, int32_t max_len, int sms) {
    int C = 1;
    for (;;) {
        const int C2 = 2 * C, per = max_len / C2;
        const bool fits = rows * C2 <= sms || (rows * C2 <= (1024 / SEL_THREADS) * sms && per >= 16384);
        if (C2 > LK_SEL_CLUSTER_CAP || per < 4096 || !fits) return C;
        C = C2;
    }
}

cudaError_t lk_launch_select(const lk_select_args *a, int B, int32_t max_len, int sms, cudaStream_t s,
                             bool pdl) {
    if (max_len < 1) return cudaSuccess;
    const int C = sel_cluster_size(B * a->rows_per_seq, max_len, sms);
    /* a slice's block-table entries in shared memory up to SEL_BT_MAX (slices
     * of 512k positions); longer ones read the global table */
    const int32_t L = ((max_len + C - 1) / C + SEL_VEC - 1) / SEL_VEC * SEL_VEC;
    int bt_cap = L / LK_GPU_PAGE + 2;
    if (bt_cap > SEL_BT_MAX) bt_cap = 0;
    const size_t dyn = SEL_CAP * sizeof(uint2) + (size_t)bt_cap * sizeof(int32_t);
    const bool simple = a->combine_g <= 0 && !a->evicted;
    /* short rows, more of them than one wave of 512-thread blocks holds:
     * 256-thread blocks, twice as many resident (the paper's setting, 512
     * rows of 3k: select 25.0 -> 21.6 us; 512 rows of 32k ran slower, 100 ->
     * 104 us; h200, 2026-12-03) */
    const int rows = B * a->rows_per_seq;
    const bool small = C == 1 && rows > (1024 / SEL_THREADS) * sms && max_len <= 8192;
    void (*kern)(const lk_select_args, int, int) = small ? (simple ? sel_kernel<true, 256> : sel_kernel<false, 256>)
                                                         : (simple ? sel_kernel<true, SEL_THREADS> : sel_kernel<false, SEL_THREADS>);
    cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn);
    if (e == cudaSuccess && C > 8) /* clusters above 8 blocks are Hopper's non-portable sizes */
        e = cudaFuncSetAttribute(kern, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    if (e != cudaSuccess) return e;
    /* programmatic dependent launch measured slower with clusters (B = 1:
     * 30.6 -> 32.3 us at 16k with 8 KV heads, 2026-12-03); kept for C = 1 */
    return lk_launch_kernel(kern, dim3(C * rows / B, B, 1), dim3(small ? 256 : SEL_THREADS), dyn, s, pdl && C == 1, C,
                            *a, C, bt_cap);
}
