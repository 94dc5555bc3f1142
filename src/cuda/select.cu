/*
 * select.cu - the select stage: per selection row, the exact top-k of the
 * row's keys under the budget policy (attn/budget.h), without sorting.
 *
 * Every position gets a 32-bit key ordered like the selection wants it:
 * forced tokens above every score (sinks highest, then the recent window
 * newest first), scores by their orderable float bits, NaN below every
 * number, evicted tokens (H2O) at 0. A radix select finds the k-th largest
 * key in at most three histogram passes (11, 11 and 10 bits; it stops once
 * the boundary bucket is taken whole), then an append writes the positions
 * above the threshold (in no particular order) and a tie pass the first of
 * the tied ones by position, so ties go to the lower position, as on the CPU.
 *
 * A row is split into chunks of LK_SEL_CHUNK positions, one block each, so
 * a batch of one sequence still fills the GPU: per pass a histogram kernel
 * (block histogram in shared memory, added to the row's in global memory)
 * and a block-scan digit kernel per row; then an append kernel per chunk
 * (one atomic per warp on the row's counter) and a tie kernel per row that
 * returns at once unless exactly tied keys are taken only in part.
 */
#include "cuda/kernels.cuh"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <math.h>

#define SEL_THREADS 256
#define SEL_VEC 4 /* positions per thread and load: float4 */
#define SEL_BINS 2048

size_t lk_select_state_bytes(void) { return sizeof(lk_sel_state); }

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

/* Keys of positions s0 .. s0+3 (s0 a multiple of 4; rows are n_ctx long, a
 * multiple of 64, so the vector loads stay inside the row); positions at or
 * past S get valid = 0. */
__device__ __forceinline__ void row_keys(const lk_select_args &a, const sel_row &r, int32_t s0, uint32_t key[SEL_VEC],
                                         bool valid[SEL_VEC]) {
    float x[SEL_VEC];
    if (a.combine_g <= 0) {
        const float4 v = *(const float4 *)(r.row + s0);
        x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
    } else {
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) x[i] = a.combine_max ? -INFINITY : 0.0f;
        for (int g = 0; g < a.combine_g; g++) {
            const float4 v = *(const float4 *)(r.row + (size_t)g * a.n_ctx + s0);
            const float y[SEL_VEC] = {v.x, v.y, v.z, v.w};
            const float mg = a.combine_max ? lk_key_float(r.rmax[g]) : 0.0f;
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++) x[i] = a.combine_max ? fmaxf(x[i], y[i] - mg) : x[i] + y[i];
        }
    }
    const uchar4 e = r.ev ? *(const uchar4 *)(r.ev + s0) : make_uchar4(0, 0, 0, 0);
    const uint8_t ev[SEL_VEC] = {e.x, e.y, e.z, e.w};
#pragma unroll
    for (int i = 0; i < SEL_VEC; i++) {
        const int32_t s = s0 + i;
        valid[i] = s < r.S;
        key[i] = ev[i] ? 0u
                 : s < r.sinks ? 0xffffffffu
                 : s >= r.S - r.recent ? 0xff800001u + (uint32_t)(s - (r.S - r.recent))
                 : lk_float_key(x[i]);
    }
}

/* Digit widths and shifts of the three passes. */
__device__ __forceinline__ int pass_shift(int pass) { return pass == 0 ? 21 : pass == 1 ? 10 : 0; }
__device__ __forceinline__ int pass_bits(int pass) { return pass == 2 ? 10 : 11; }

/* grid (chunks, rows_per_seq, B): the block histogram of this pass's digit
 * over the chunk's keys that match the prefix so far, added to the row's.
 * Pass 0 also counts the candidates (H2O). */
__global__ void __launch_bounds__(SEL_THREADS) sel_hist_kernel(const lk_select_args a, int pass) {
    __shared__ uint32_t hist[SEL_BINS];
    __shared__ int32_t cand;
    const sel_row r = make_row(a, blockIdx.z, blockIdx.y);
    const lk_sel_state st = a.state[r.id];
    const int32_t c0 = blockIdx.x * LK_SEL_CHUNK;
    if (c0 >= r.S || (pass > 0 && st.mode != 0)) return;
    if (pass == 0 && !r.ev && lk_attn_all(&a.p, r.S, r.S, r.k)) return; /* attends to all: no histogram */
    const int shift = pass_shift(pass), nb = 1 << pass_bits(pass);
    for (int i = threadIdx.x; i < nb; i += SEL_THREADS) hist[i] = 0;
    if (threadIdx.x == 0) cand = 0;
    __syncthreads();
    int32_t mine = 0;
#pragma unroll 4
    for (int32_t s0 = c0 + threadIdx.x * SEL_VEC; s0 < min(c0 + LK_SEL_CHUNK, r.S); s0 += SEL_THREADS * SEL_VEC) {
        uint32_t key[SEL_VEC];
        bool valid[SEL_VEC];
        row_keys(a, r, s0, key, valid);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++)
            if (valid[i]) {
                mine += key[i] != 0u;
                if (pass == 0 || (key[i] >> st.sh) == st.P) atomicAdd(&hist[(key[i] >> shift) & (nb - 1)], 1u);
            }
    }
    if (pass == 0 && r.ev) atomicAdd(&cand, mine);
    __syncthreads();
    uint32_t *g = a.hist + r.id * SEL_BINS;
    for (int i = threadIdx.x; i < nb; i += SEL_THREADS)
        if (hist[i]) atomicAdd(&g[i], hist[i]);
    if (pass == 0 && r.ev && threadIdx.x == 0) atomicAdd(&a.state[r.id].C, cand);
}

/* grid (rows_per_seq, B), SEL_THREADS threads: the digit where the count
 * from the top reaches `need`; updates the row's state and clears its
 * histogram. Each thread takes adjacent bins (16-byte loads); a block scan
 * from the top finds the thread whose bins hold the boundary. At the last
 * pass (or once decided) it writes the row's count: k, C or -1. */
__global__ void __launch_bounds__(SEL_THREADS) sel_digit_kernel(const lk_select_args a, int pass) {
    typedef cub::BlockScan<uint32_t, SEL_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    __shared__ lk_sel_state sst;
    const sel_row r = make_row(a, blockIdx.y, blockIdx.x);
    const int nb = 1 << pass_bits(pass), per = nb / SEL_THREADS, tid = threadIdx.x;
    uint4 *hist = (uint4 *)(a.hist + r.id * SEL_BINS);
    if (tid == 0) {
        lk_sel_state st = a.state[r.id];
        if (pass == 0) { /* the budget decides first: all tokens, all candidates, or a top-k */
            const int32_t C = r.ev ? st.C : r.S;
            st.P = 0, st.sh = 32, st.need = r.k, st.mode = 0;
            if (lk_attn_all(&a.p, r.S, C, r.k)) st.mode = r.ev ? 3 : 2, st.sh = 0, st.need = 0, st.C = C;
        }
        sst = st;
    }
    __syncthreads();
    lk_sel_state st = sst;
    if (st.mode == 0) {
        /* thread t holds the bins [nb - (t+1) per, nb - t per): thread 0 the top ones */
        uint32_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0}, local = 0, before;
        const int lo = nb - (tid + 1) * per;
#pragma unroll
        for (int v = 0; v < 2; v++)
            if (4 * v < per) {
                const uint4 x = hist[lo / 4 + v];
                h[4 * v] = x.x, h[4 * v + 1] = x.y, h[4 * v + 2] = x.z, h[4 * v + 3] = x.w;
            }
#pragma unroll
        for (int i = 0; i < 8; i++) local += h[i];
        scan_t(tmp).ExclusiveSum(local, before); /* keys in the bins above this thread's */
        const uint32_t need = (uint32_t)st.need;
        if (before < need && before + local >= need) {
            uint32_t acc = before;
#pragma unroll
            for (int i = 7; i >= 0; i--) { /* from this thread's top bin down */
                if (i >= per || acc >= need) continue;
                if (acc + h[i] >= need) {
                    st.P = (pass == 0 ? 0u : st.P << pass_bits(pass)) | (uint32_t)(lo + i);
                    st.sh = pass_shift(pass);
                    st.need -= (int32_t)acc;
                    st.C = (int32_t)h[i]; /* keys equal to the prefix (the ties once resolved) */
                    if (st.C == st.need || pass == 2) st.mode = 1; /* taken whole, or fully resolved */
                    sst = st;
                }
                acc += h[i];
            }
        }
    }
    __syncthreads();
    for (int v = tid; v < nb / 4; v += SEL_THREADS) hist[v] = make_uint4(0, 0, 0, 0); /* for the next pass and step */
    if (tid == 0) {
        a.state[r.id] = sst;
        if (pass == 2 || sst.mode != 0) /* the count is known: k, all candidates, or all tokens */
            a.n_sel[r.id] = sst.mode == 2 ? -1 : sst.mode == 3 ? sst.C : r.k;
    }
}

/* grid (chunks, rows_per_seq, B): append the chunk's positions above the
 * threshold (and those equal to it when the tied bucket is taken whole) to
 * the row's list, one atomic per warp; the list is in no particular order
 * (the attend stage does not need one). Ties taken in part are left to
 * sel_ties_kernel. */
__global__ void __launch_bounds__(SEL_THREADS) sel_append_kernel(const lk_select_args a) {
    const sel_row r = make_row(a, blockIdx.z, blockIdx.y);
    const lk_sel_state st = a.state[r.id];
    const int32_t c0 = blockIdx.x * LK_SEL_CHUNK;
    if (c0 >= r.S || st.mode == 2 || st.mode == 0) return;
    /* mode 3 (all candidates: sh 0, P 0) takes every key > 0, never the evicted (0) */
    const bool take_eq = st.mode == 1 && st.need == st.C;
    int32_t *out = a.idx + r.id * a.n_ctx, *slot = a.slots + r.id * a.n_ctx;
    int32_t *fill = a.counts + r.id * LK_SEL_MAX_CHUNKS * 2; /* the row's append counter */
    const int32_t *bt = a.block_table + (size_t)blockIdx.z * a.mpps;
    const int lane = threadIdx.x % 32;
    for (int32_t base = c0; base < min(c0 + LK_SEL_CHUNK, r.S); base += SEL_THREADS * SEL_VEC) {
        const int32_t s0 = base + threadIdx.x * SEL_VEC;
        uint32_t key[SEL_VEC], take = 0, n = 0;
        bool valid[SEL_VEC] = {false, false, false, false};
        if (s0 < r.S) row_keys(a, r, s0, key, valid);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) {
            const uint32_t k = key[i] >> st.sh;
            const bool t = valid[i] && (k > st.P || (take_eq && k == st.P));
            take |= (uint32_t)t << i, n += t;
        }
        uint32_t incl = n; /* warp prefix of the counts */
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            const uint32_t t = __shfl_up_sync(0xffffffffu, incl, off);
            if (lane >= off) incl += t;
        }
        const uint32_t tot = __shfl_sync(0xffffffffu, incl, 31);
        int32_t start = 0;
        if (lane == 31 && tot) start = atomicAdd(fill, (int32_t)tot);
        int32_t o = __shfl_sync(0xffffffffu, start, 31) + (int32_t)(incl - n);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++)
            if (take >> i & 1) {
                const int32_t pos = s0 + i;
                out[o] = pos;
                slot[o] = bt[pos / LK_GPU_PAGE] * LK_GPU_PAGE + pos % LK_GPU_PAGE;
                o++;
            }
    }
}

/* grid (rows_per_seq, B): rows whose threshold ties are taken only in part
 * (exactly equal 32-bit keys: rare) add the first `need` tied positions in
 * position order after the k - need above the threshold, as the CPU breaks
 * ties; every other row returns at once. */
__global__ void __launch_bounds__(SEL_THREADS) sel_ties_kernel(const lk_select_args a) {
    typedef cub::BlockScan<uint32_t, SEL_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    const sel_row r = make_row(a, blockIdx.y, blockIdx.x);
    const lk_sel_state st = a.state[r.id];
    if (st.mode != 1 || st.need == st.C) return;
    int32_t *out = a.idx + r.id * a.n_ctx, *slot = a.slots + r.id * a.n_ctx;
    const int32_t *bt = a.block_table + (size_t)blockIdx.y * a.mpps;
    const int32_t o0 = r.k - st.need;
    int32_t run = 0;
    for (int32_t base = 0; base < r.S && run < st.need; base += SEL_THREADS * SEL_VEC) {
        const int32_t s0 = base + threadIdx.x * SEL_VEC;
        uint32_t key[SEL_VEC], eq = 0, n = 0, ex, tot;
        bool valid[SEL_VEC] = {false, false, false, false};
        if (s0 < r.S) row_keys(a, r, s0, key, valid);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) {
            const bool e = valid[i] && (key[i] >> st.sh) == st.P;
            eq |= (uint32_t)e << i, n += e;
        }
        scan_t(tmp).ExclusiveSum(n, ex, tot);
        int32_t rank = run + (int32_t)ex;
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++)
            if (eq >> i & 1) {
                if (rank < st.need) {
                    const int32_t pos = s0 + i;
                    out[o0 + rank] = pos;
                    slot[o0 + rank] = bt[pos / LK_GPU_PAGE] * LK_GPU_PAGE + pos % LK_GPU_PAGE;
                }
                rank++;
            }
        run += (int32_t)tot;
        __syncthreads(); /* tmp is reused */
    }
}

cudaError_t lk_launch_select(const lk_select_args *a, int B, int32_t max_len, cudaStream_t s) {
    const int chunks = (max_len + LK_SEL_CHUNK - 1) / LK_SEL_CHUNK;
    if (chunks > LK_SEL_MAX_CHUNKS) return cudaErrorInvalidValue;
    const dim3 grid(chunks, a->rows_per_seq, B), rows(a->rows_per_seq, B);
    cudaError_t e = cudaMemsetAsync(a->state, 0, (size_t)B * a->rows_per_seq * sizeof(lk_sel_state), s);
    for (int pass = 0; pass < 3 && e == cudaSuccess; pass++) {
        sel_hist_kernel<<<grid, SEL_THREADS, 0, s>>>(*a, pass);
        sel_digit_kernel<<<rows, SEL_THREADS, 0, s>>>(*a, pass);
        e = cudaGetLastError();
    }
    if (e != cudaSuccess) return e;
    e = cudaMemsetAsync(a->counts, 0, (size_t)B * a->rows_per_seq * LK_SEL_MAX_CHUNKS * 8, s);
    if (e != cudaSuccess) return e;
    sel_append_kernel<<<grid, SEL_THREADS, 0, s>>>(*a);
    sel_ties_kernel<<<rows, SEL_THREADS, 0, s>>>(*a);
    return cudaGetLastError();
}
