/*
 * select.cu - the select stage: per selection row, the exact top-k of the
 * row's keys under the budget policy (attn/budget.h), without sorting.
 *
 * One block per row. Every position gets a 32-bit key ordered like the
 * selection wants it: forced tokens above every score (sinks highest, then
 * the recent window newest first), scores by their orderable float bits,
 * NaN below every number, evicted tokens (H2O) at 0. A radix select finds
 * the k-th largest key in at most three histogram passes (11, 11 and 10
 * bits; it stops early once the boundary bucket is taken whole), then one
 * ordered compaction writes the positions above the threshold and the
 * first of the ties, so the output is ascending and ties go to the lower
 * position, as on the CPU (src/attn/run.c).
 */
#include "cuda/kernels.cuh"

#include <cub/block/block_scan.cuh>
#include <math.h>

#define SEL_THREADS 1024
#define SEL_VEC 4 /* positions per thread and load: float4 */
#define SEL_BINS 2048

struct sel_row {
    const float *row;       /* (n_ctx) scores, or the first of combine_g rows */
    const uint8_t *ev;      /* (n_ctx) or NULL */
    const uint32_t *rmax;   /* (combine_g) orderable maxima */
    int32_t S, sinks, recent;
};

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

/* Ordered compaction of the positions whose key passes: (key >> sh) > P, or
 * == P among the first `need` such positions. Returns the count. Each thread
 * takes 4 consecutive positions; a block scan of the per-thread counts
 * (gt in the low, eq in the high 16 bits) keeps the output ascending. */
__device__ int32_t compact(const lk_select_args &a, const sel_row &r, int sh, uint32_t P, int32_t need, int32_t *out,
                           int32_t *slot, const int32_t *bt) {
    typedef cub::BlockScan<uint32_t, SEL_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    int32_t run_gt = 0, run_eq = 0;
    for (int32_t base = 0; base < r.S; base += SEL_THREADS * SEL_VEC) {
        const int32_t s0 = base + threadIdx.x * SEL_VEC;
        uint32_t key[SEL_VEC], gt[SEL_VEC], eq[SEL_VEC], cnt = 0;
        bool valid[SEL_VEC] = {false, false, false, false};
        if (s0 < r.S) row_keys(a, r, s0, key, valid);
#pragma unroll
        for (int i = 0; i < SEL_VEC; i++) {
            const uint32_t k = key[i] >> sh;
            gt[i] = valid[i] && k > P, eq[i] = valid[i] && k == P;
            cnt += gt[i] | eq[i] << 16;
        }
        uint32_t ex, tot;
        scan_t(tmp).ExclusiveSum(cnt, ex, tot);
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
    return run_gt + min(run_eq, need);
}

__global__ void __launch_bounds__(SEL_THREADS) select_kernel(const lk_select_args a) {
    __shared__ uint32_t hist[SEL_BINS];
    __shared__ int32_t sh_C, sh_digit, sh_above, sh_in;
    const int b = blockIdx.y, rr = blockIdx.x, tid = threadIdx.x;
    const size_t row_id = (size_t)b * a.rows_per_seq + rr;
    sel_row r;
    r.S = a.seq_len[b];
    const size_t srow = (size_t)b * a.srow_b + (size_t)rr * a.srow_r;
    r.row = a.scores + srow * a.n_ctx;
    r.ev = a.evicted ? a.evicted + srow * a.n_ctx : NULL;
    r.rmax = a.rowmax ? a.rowmax + (size_t)b * a.H + (size_t)rr * a.combine_g : NULL;
    int32_t *out = a.idx + row_id * a.n_ctx, *slot = a.slots + row_id * a.n_ctx;
    const int32_t *bt = a.block_table + (size_t)b * a.mpps;
    const int32_t k = lk_attn_budget(&a.p, r.S);

    /* candidates: the tokens not evicted */
    int32_t C = r.S;
    if (r.ev) {
        if (tid == 0) sh_C = 0;
        __syncthreads();
        int32_t mine = 0;
        for (int32_t s = tid; s < r.S; s += SEL_THREADS) mine += !r.ev[s]; /* once per step: scalar is fine */
        atomicAdd(&sh_C, mine);
        __syncthreads();
        C = sh_C;
    }
    r.sinks = 0, r.recent = 0;
    if (lk_attn_all(&a.p, r.S, C, k)) {
        if (!r.ev) {
            if (tid == 0) a.n_sel[row_id] = -1;
            return;
        }
        const int32_t n = compact(a, r, 0, 0u, 0, out, slot, bt); /* every key > 0: the candidates */
        if (tid == 0) a.n_sel[row_id] = n;
        return;
    }
    r.sinks = min(a.p.sinks, r.S);
    r.recent = min(lk_attn_recent(&a.p, k), r.S);

    /* radix select of the k-th largest key: digits of 11, 11, 10 bits */
    const int shifts[3] = {21, 10, 0}, widths[3] = {11, 11, 10};
    uint32_t P = 0;
    int sh = 32;
    int32_t need = k;
    for (int pass = 0; pass < 3; pass++) {
        const int shift = shifts[pass], nb = 1 << widths[pass];
        for (int i = tid; i < nb; i += SEL_THREADS) hist[i] = 0;
        __syncthreads();
        /* scores of one row cluster in few buckets: lanes hitting the same
         * bin add once (match_any), not 32 times in a row */
#pragma unroll 4
        for (int32_t base = 0; base < r.S; base += SEL_THREADS * SEL_VEC) { /* uniform trip count */
            const int32_t s0 = base + tid * SEL_VEC;
            uint32_t key[SEL_VEC];
            bool valid[SEL_VEC] = {false, false, false, false};
            if (s0 < r.S) row_keys(a, r, s0, key, valid);
#pragma unroll
            for (int i = 0; i < SEL_VEC; i++) {
                const bool in = valid[i] && (pass == 0 || (key[i] >> sh) == P);
                const uint32_t bin = in ? (key[i] >> shift) & (nb - 1) : 0xffffffffu;
                const uint32_t peers = __match_any_sync(0xffffffffu, bin);
                if (in && (__ffs(peers) - 1) == (int)(tid & 31)) atomicAdd(&hist[bin], (uint32_t)__popc(peers));
            }
        }
        __syncthreads();
        if (tid < 32) { /* warp 0: the digit where the count from the top reaches need */
            const int per = nb / 32, lo = tid * per;
            uint32_t local = 0;
            for (int i = 0; i < per; i++) local += hist[lo + i];
            uint32_t suf = local; /* sum over lanes >= this one */
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                const uint32_t t = __shfl_down_sync(0xffffffffu, suf, off);
                if (tid + off < 32) suf += t;
            }
            uint32_t next = __shfl_down_sync(0xffffffffu, suf, 1);
            if (tid == 31) next = 0;
            if (suf >= (uint32_t)need && next < (uint32_t)need) {
                uint32_t above = next;
                for (int i = lo + per - 1; i >= lo; i--) {
                    if (above + hist[i] >= (uint32_t)need) {
                        sh_digit = i, sh_above = (int32_t)above, sh_in = (int32_t)hist[i];
                        break;
                    }
                    above += hist[i];
                }
            }
        }
        __syncthreads();
        P = (pass == 0 ? 0u : P << widths[pass]) | (uint32_t)sh_digit;
        sh = shift;
        need -= sh_above;
        const bool whole = sh_in == need;
        __syncthreads(); /* hist and sh_* are rewritten next pass */
        if (whole) break;
    }
    const int32_t n = compact(a, r, sh, P, need, out, slot, bt);
    if (tid == 0) a.n_sel[row_id] = n;
}

cudaError_t lk_launch_select(const lk_select_args *a, int B, cudaStream_t s) {
    select_kernel<<<dim3(a->rows_per_seq, B), SEL_THREADS, 0, s>>>(*a);
    return cudaGetLastError();
}
