/*
 * select.cu - the select stage: per selection row, the exact top-k of the
 * row's keys under the budget policy (attn/budget.h), without sorting.
 *
 * Every position gets a 32-bit key ordered like the selection wants it:
 * forced tokens above every score (sinks highest, then the recent window
 * newest first), scores by their orderable float bits, NaN below every
 * number, evicted tokens (H2O) at 0. A radix select finds the k-th largest
 * key in at most three histogram passes (11, 11 and 10 bits; it stops once
 * the boundary bucket is taken whole), then an ordered compaction writes
 * the positions above the threshold and the first of the ties, so the output
 * is ascending and ties go to the lower position, as on the CPU.
 *
 * A row is split into chunks of LK_SEL_CHUNK positions, one block each, so
 * a batch of one sequence still fills the GPU: per pass a histogram kernel
 * (block histogram in shared memory, added to the row's in global memory)
 * and a one-warp digit kernel per row; then a count kernel and a write
 * kernel that offsets each chunk by the counts of the chunks before it.
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

/* grid (rows_per_seq, B), one warp: the digit where the count from the top
 * reaches `need`; updates the row's state and clears its histogram. */
__global__ void sel_digit_kernel(const lk_select_args a, int pass) {
    const sel_row r = make_row(a, blockIdx.y, blockIdx.x);
    lk_sel_state *stp = &a.state[r.id];
    lk_sel_state st = *stp;
    uint32_t *hist = a.hist + r.id * SEL_BINS;
    const int lane = threadIdx.x, nb = 1 << pass_bits(pass), per = nb / 32, lo = lane * per;
    if (pass == 0) { /* the budget decides first: all tokens, all candidates, or a top-k */
        st.P = 0, st.sh = 32, st.need = r.k, st.mode = 0;
        const int32_t C = r.ev ? st.C : r.S;
        if (lk_attn_all(&a.p, r.S, C, r.k)) st.mode = r.ev ? 3 : 2, st.sh = 0, st.need = 0;
    }
    if (st.mode == 0) {
        uint32_t local = 0;
        for (int i = 0; i < per; i++) local += hist[lo + i];
        uint32_t suf = local; /* sum over lanes >= this one */
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            const uint32_t t = __shfl_down_sync(0xffffffffu, suf, off);
            if (lane + off < 32) suf += t;
        }
        uint32_t next = __shfl_down_sync(0xffffffffu, suf, 1);
        if (lane == 31) next = 0;
        int32_t digit = -1, above = 0, in = 0;
        if (suf >= (uint32_t)st.need && next < (uint32_t)st.need) {
            uint32_t acc = next;
            for (int i = lo + per - 1; i >= lo; i--) {
                if (acc + hist[i] >= (uint32_t)st.need) {
                    digit = i, above = (int32_t)acc, in = (int32_t)hist[i];
                    break;
                }
                acc += hist[i];
            }
        }
        const unsigned who = __ballot_sync(0xffffffffu, digit >= 0);
        const int src = who ? __ffs(who) - 1 : 0;
        digit = __shfl_sync(0xffffffffu, digit, src);
        above = __shfl_sync(0xffffffffu, above, src);
        in = __shfl_sync(0xffffffffu, in, src);
        st.P = (pass == 0 ? 0u : st.P << pass_bits(pass)) | (uint32_t)digit;
        st.sh = pass_shift(pass);
        st.need -= above;
        if (in == st.need || pass == 2) st.mode = 1; /* the bucket is taken whole, or fully resolved */
    }
    __syncwarp();
    for (int i = lane; i < nb; i += 32) hist[i] = 0; /* zero for the next pass and step */
    if (lane == 0) *stp = st;
}

/* Selected-or-tied flags of one thread's 4 positions: gt (above the
 * threshold) and eq (equal to it), packed as counts gt | eq << 16. */
__device__ __forceinline__ uint32_t flags(const lk_select_args &a, const sel_row &r, const lk_sel_state &st, int32_t s0,
                                          uint32_t gt[SEL_VEC], uint32_t eq[SEL_VEC]) {
    uint32_t key[SEL_VEC], cnt = 0;
    bool valid[SEL_VEC] = {false, false, false, false};
    if (s0 < r.S) row_keys(a, r, s0, key, valid);
#pragma unroll
    for (int i = 0; i < SEL_VEC; i++) {
        const uint32_t k = st.sh >= 32 ? 0u : key[i] >> st.sh;
        gt[i] = valid[i] && k > st.P, eq[i] = valid[i] && k == st.P;
        cnt += gt[i] | eq[i] << 16;
    }
    return cnt;
}

/* grid (chunks, rows_per_seq, B): gt and eq counts of each chunk. */
__global__ void __launch_bounds__(SEL_THREADS) sel_count_kernel(const lk_select_args a) {
    typedef cub::BlockReduce<uint32_t, SEL_THREADS> red_t;
    __shared__ typename red_t::TempStorage tmp;
    const sel_row r = make_row(a, blockIdx.z, blockIdx.y);
    const lk_sel_state st = a.state[r.id];
    const int32_t c0 = blockIdx.x * LK_SEL_CHUNK;
    if (c0 >= r.S || st.mode == 2) return;
    uint32_t gt_n = 0, eq_n = 0;
    for (int32_t base = c0; base < min(c0 + LK_SEL_CHUNK, r.S); base += SEL_THREADS * SEL_VEC) {
        uint32_t gt[SEL_VEC], eq[SEL_VEC];
        const uint32_t c = flags(a, r, st, base + threadIdx.x * SEL_VEC, gt, eq);
        gt_n += c & 0xffff, eq_n += c >> 16;
    }
    const uint32_t g = red_t(tmp).Sum(gt_n);
    __syncthreads();
    const uint32_t e = red_t(tmp).Sum(eq_n);
    if (threadIdx.x == 0) {
        int32_t *cnt = a.counts + (r.id * LK_SEL_MAX_CHUNKS + blockIdx.x) * 2;
        cnt[0] = (int32_t)g, cnt[1] = (int32_t)e;
    }
}

/* grid (chunks, rows_per_seq, B): ordered compaction of a chunk, offset by
 * the counts of the chunks before it; chunk 0 writes the row's count. */
__global__ void __launch_bounds__(SEL_THREADS) sel_write_kernel(const lk_select_args a) {
    typedef cub::BlockScan<uint32_t, SEL_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    const sel_row r = make_row(a, blockIdx.z, blockIdx.y);
    const lk_sel_state st = a.state[r.id];
    const int32_t c0 = blockIdx.x * LK_SEL_CHUNK;
    if (c0 >= r.S) return;
    if (st.mode == 2) {
        if (blockIdx.x == 0 && threadIdx.x == 0) a.n_sel[r.id] = -1;
        return;
    }
    const int32_t *cnt = a.counts + r.id * LK_SEL_MAX_CHUNKS * 2;
    const int n_chunks = (r.S + LK_SEL_CHUNK - 1) / LK_SEL_CHUNK;
    int32_t run_gt = 0, run_eq = 0, tot_gt = 0, tot_eq = 0;
    for (int c = 0; c < n_chunks; c++) {
        if (c < (int)blockIdx.x) run_gt += cnt[2 * c], run_eq += cnt[2 * c + 1];
        tot_gt += cnt[2 * c], tot_eq += cnt[2 * c + 1];
    }
    const int32_t need = st.need;
    if (blockIdx.x == 0 && threadIdx.x == 0) a.n_sel[r.id] = tot_gt + min(tot_eq, need);
    int32_t *out = a.idx + r.id * a.n_ctx, *slot = a.slots + r.id * a.n_ctx;
    const int32_t *bt = a.block_table + (size_t)blockIdx.z * a.mpps;
    for (int32_t base = c0; base < min(c0 + LK_SEL_CHUNK, r.S); base += SEL_THREADS * SEL_VEC) {
        const int32_t s0 = base + threadIdx.x * SEL_VEC;
        uint32_t gt[SEL_VEC], eq[SEL_VEC], ex, tot;
        const uint32_t c = flags(a, r, st, s0, gt, eq);
        scan_t(tmp).ExclusiveSum(c, ex, tot);
        int32_t gb = run_gt + (int32_t)(ex & 0xffff), eb = run_eq + (int32_t)(ex >> 16);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) {
            if (gt[i] || (eq[i] && eb < need)) { /* the position, and where the attend stage finds it */
                const int32_t o = gb + min(eb, need), pos = s0 + i;
                out[o] = pos;
                slot[o] = bt[pos / LK_GPU_PAGE] * LK_GPU_PAGE + pos % LK_GPU_PAGE;
            }
            gb += gt[i], eb += eq[i];
        }
        run_gt += (int32_t)(tot & 0xffff), run_eq += (int32_t)(tot >> 16);
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
        sel_digit_kernel<<<rows, 32, 0, s>>>(*a, pass);
        e = cudaGetLastError();
    }
    if (e != cudaSuccess) return e;
    sel_count_kernel<<<grid, SEL_THREADS, 0, s>>>(*a);
    sel_write_kernel<<<grid, SEL_THREADS, 0, s>>>(*a);
    return cudaGetLastError();
}
