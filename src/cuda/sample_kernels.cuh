/*
 * sample_kernels.cuh - the device side of GPU sampling (src/cuda/sample.cu
 * launches these; the header comment there says what each stage does and
 * why the results are the CPU sampler's bit for bit). Included by sample.cu
 * only.
 */
#ifndef LK_CUDA_SAMPLE_KERNELS_CUH
#define LK_CUDA_SAMPLE_KERNELS_CUH

#include "cuda/common.cuh"

extern "C" {
#include "cuda/lk_cuda_sample.h"
}
#include "cuda/sample_expf.h"

#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>
#include <stdint.h>

#define SMP_THREADS 256                       /* threads of the V-wide kernels */
#define SMP_ITEMS 16                          /* logits per thread there */
#define SMP_CHUNK (SMP_THREADS * SMP_ITEMS)   /* logits per block */
#define SMP_TILE 2048                         /* candidate values per tile of smp_finish */
#define SMP_FULL_THREADS 1024                 /* threads of the full path's finish */

/* A row's state, the CPU sampler's: xorshift64* state (never 0), history
 * ring length and next write position. */
struct smp_row {
    unsigned long long rng;
    int32_t hist_len, hist_pos;
};

/* Stop tokens (lk_cuda_sampler_set_stop). */
struct smp_stop {
    int32_t n;
    int32_t tok[LK_CUDA_SAMPLER_MAX_STOP];
};

/* Everything a kernel of one call needs, by value. */
struct smp_args {
    const float *src;                 /* (R, V) penalised logits: work or the caller's */
    int32_t *tokens;                  /* (R) out */
    smp_row *st;                      /* (max_rows) */
    int32_t *hist;                    /* (max_rows, W) rings */
    const smp_stop *stop;
    float temp, top_p, min_p;
    int32_t V, W, keep, n_chunks, idbits;
    unsigned long long *part;         /* greedy: (R, n_chunks) block winners */
    uint32_t *rhist;                  /* top-k: (R, 4, 256) radix histograms */
    uint32_t *n_cand;                 /* top-k: (R) candidates appended */
    uint32_t *eqcnt;                  /* top-k: (R, n_chunks) keys equal to the threshold */
    unsigned long long *cand;         /* top-k: (R, keep) candidate keys, unsorted */
    const unsigned long long *sorted; /* full: (R, V) keys sorted descending */
};

/* ------------------------------------------------------------- keys */

/* Orderable bits of a logit: larger float -> larger key, -0 as +0, NaN 0
 * (below -inf, 0x007fffff). */
__device__ __forceinline__ uint32_t okey(float v) {
    uint32_t b = __float_as_uint(v);
    if (v != v) return 0u;
    if ((b << 1) == 0) b = 0;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* The float of a key (key 0 gives a NaN). */
__device__ __forceinline__ float okey_val(uint32_t u) {
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

/* Candidate key: orderable value above (2^idbits - 1 - id), so that
 * descending keys are the CPU's order (value descending, lower id first). */
__device__ __forceinline__ unsigned long long ckey(uint32_t u, int32_t i, int idbits) {
    const uint32_t mask = (uint32_t)((1ull << idbits) - 1);
    return ((unsigned long long)u << idbits) | (unsigned long long)(mask - (uint32_t)i);
}
__device__ __forceinline__ uint32_t ckey_u(unsigned long long k, int idbits) { return (uint32_t)(k >> idbits); }
__device__ __forceinline__ int32_t ckey_id(unsigned long long k, int idbits) {
    const uint32_t mask = (uint32_t)((1ull << idbits) - 1);
    return (int32_t)(mask - (uint32_t)(k & mask));
}

/* v[it] = x[i0 + it * SMP_THREADS + tid] for indices below i1 (others 0):
 * all loads issued before any use. */
__device__ __forceinline__ void load_chunk(const float *x, int32_t i0, int32_t i1, float (&v)[SMP_ITEMS]) {
#pragma unroll
    for (int it = 0; it < SMP_ITEMS; it++) {
        const int32_t i = i0 + it * SMP_THREADS + (int32_t)threadIdx.x;
        v[it] = i < i1 ? x[i] : 0.0f;
    }
}

/* Row r's token: tokens[r] = tok, the row's generator state = rng, and tok
 * appended to its history ring unless it is a stop token (the CPU loop's
 * loki_sampler_accept after a sample). One thread. */
__device__ void emit(const smp_args &a, int r, int32_t tok, unsigned long long rng) {
    a.tokens[r] = tok;
    smp_row s = a.st[r];
    s.rng = rng;
    bool stop = false;
    for (int j = 0; j < a.stop->n; j++) stop |= a.stop->tok[j] == tok;
    if (a.W > 0 && !stop) {
        a.hist[(size_t)r * a.W + s.hist_pos] = tok;
        s.hist_pos = (s.hist_pos + 1) % a.W;
        if (s.hist_len < a.W) s.hist_len++;
    }
    a.st[r] = s;
}

/* ---------------------------------------------------------- penalty */

/* Grid (R), SMP_THREADS: work (R, V) holds a copy of logits; for each
 * history token t of row r in [0, V): work[r][t] = logits[r][t] divided by
 * rp when positive, else multiplied (sampler.c's apply_repeat_penalty).
 * Duplicates write the same value, so each distinct token is penalised once. */
__global__ void penalty_kernel(float *work, const float *logits, smp_args a, float rp) {
    const int r = blockIdx.x;
    const int32_t len = a.st[r].hist_len;
    for (int32_t i = threadIdx.x; i < len; i += blockDim.x) {
        const int32_t t = a.hist[(size_t)r * a.W + i];
        if (t < 0 || t >= a.V) continue;
        const float v = logits[(size_t)r * a.V + t];
        work[(size_t)r * a.V + t] = v > 0.0f ? __fdiv_rn(v, rp) : __fmul_rn(v, rp);
    }
}

/* ----------------------------------------------------------- greedy */

/* Greedy key of logit v at index i: value, then lower index; index 0 wins
 * when NaN (the CPU's `>` scan keeps it), any other NaN loses. */
__device__ __forceinline__ unsigned long long greedy_key(float v, int32_t i) {
    const uint32_t u = (i == 0 && v != v) ? 0xffffffffu : okey(v);
    return ((unsigned long long)u << 32) | (unsigned long long)(0xffffffffu - (uint32_t)i);
}

__device__ __forceinline__ unsigned long long warp_max64(unsigned long long k) {
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long t = __shfl_xor_sync(0xffffffffu, k, o);
        k = t > k ? t : k;
    }
    return k;
}

/* Grid (n_chunks, R), SMP_THREADS: part[r][c] = the largest greedy key of
 * chunk c of row r. */
__global__ void __launch_bounds__(SMP_THREADS) argmax_part_kernel(smp_args a) {
    __shared__ unsigned long long wbest[SMP_THREADS / 32];
    const int r = blockIdx.y;
    const int32_t i0 = (int32_t)blockIdx.x * SMP_CHUNK, i1 = min(i0 + SMP_CHUNK, a.V);
    float v[SMP_ITEMS];
    load_chunk(a.src + (size_t)r * a.V, i0, i1, v);
    unsigned long long best = 0;
#pragma unroll
    for (int it = 0; it < SMP_ITEMS; it++) {
        const int32_t i = i0 + it * SMP_THREADS + (int32_t)threadIdx.x;
        const unsigned long long k = i < i1 ? greedy_key(v[it], i) : 0ull;
        best = k > best ? k : best;
    }
    best = warp_max64(best);
    if ((threadIdx.x & 31) == 0) wbest[threadIdx.x / 32] = best;
    __syncthreads();
    if (threadIdx.x >= 32) return;
    best = warp_max64(threadIdx.x < SMP_THREADS / 32 ? wbest[threadIdx.x] : 0ull);
    if (threadIdx.x == 0) a.part[(size_t)r * a.n_chunks + blockIdx.x] = best;
}

/* Grid (R), 32 threads: the row's winner over its chunks, emitted. */
__global__ void argmax_final_kernel(smp_args a) {
    const int r = blockIdx.x;
    unsigned long long best = 0;
    for (int32_t c = threadIdx.x; c < a.n_chunks; c += 32) {
        const unsigned long long k = a.part[(size_t)r * a.n_chunks + c];
        best = k > best ? k : best;
    }
    best = warp_max64(best);
    if (threadIdx.x == 0) emit(a, r, (int32_t)(0xffffffffu - (uint32_t)best), a.st[r].rng);
}

/* ----------------------------------------------------- radix select */

/* The radix select's decisions after `passes` histogram passes of a row
 * (h: its (4, 256) histograms): prefix = the digits found, in place; krem =
 * how many of the keys matching the prefix are still to be taken (>= 1);
 * eq = the keys matching the prefix (after 4 passes: equal to the
 * threshold). Called by one whole warp; every lane gets the result. */
struct rsel {
    uint32_t prefix, krem, eq;
};
__device__ rsel rsel_state(const uint32_t *h, int passes, uint32_t keep) {
    const int lane = threadIdx.x & 31;
    rsel s = {0u, keep, 0u};
    for (int p = 0; p < passes; p++) {
        uint32_t b[8], tot = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) b[j] = h[p * 256 + lane * 8 + j], tot += b[j];
        uint32_t suf = tot; /* keys in this lane's digits and all higher ones */
        for (int o = 1; o < 32; o <<= 1) {
            const uint32_t t = __shfl_down_sync(0xffffffffu, suf, o);
            if (lane + o < 32) suf += t;
        }
        const uint32_t above = suf - tot;
        const bool mine = above < s.krem && s.krem <= suf;
        uint32_t digit = 0, krem = 1, eq = 0;
        if (mine) {
            uint32_t acc = above;
            for (int j = 7; j >= 0; j--) {
                if (acc + b[j] >= s.krem) {
                    digit = (uint32_t)(lane * 8 + j), krem = s.krem - acc, eq = b[j];
                    break;
                }
                acc += b[j];
            }
        }
        const unsigned who = __ballot_sync(0xffffffffu, mine);
        const int src = who ? __ffs(who) - 1 : 0;
        digit = __shfl_sync(0xffffffffu, digit, src);
        s.krem = __shfl_sync(0xffffffffu, krem, src);
        s.eq = __shfl_sync(0xffffffffu, eq, src);
        s.prefix |= digit << (24 - 8 * p);
    }
    return s;
}

/* Grid (n_chunks, R), SMP_THREADS: pass p (0..3) counts byte p (from the
 * top) of the keys of chunk c of row r that match the digits of the passes
 * before, into rhist[r][p] (zeroed before pass 0). */
__global__ void __launch_bounds__(SMP_THREADS) rsel_hist_kernel(smp_args a, int p) {
    __shared__ uint32_t h[256];
    __shared__ uint32_t s_prefix;
    const int r = blockIdx.y, lane = threadIdx.x & 31;
    uint32_t *gh = a.rhist + (size_t)r * 1024;
    for (int d = threadIdx.x; d < 256; d += SMP_THREADS) h[d] = 0;
    if (threadIdx.x < 32) {
        const rsel s = rsel_state(gh, p, (uint32_t)a.keep);
        if (lane == 0) s_prefix = s.prefix;
    }
    __syncthreads();
    const uint32_t prefix = s_prefix;
    const int32_t i0 = (int32_t)blockIdx.x * SMP_CHUNK, i1 = min(i0 + SMP_CHUNK, a.V);
    float v[SMP_ITEMS];
    load_chunk(a.src + (size_t)r * a.V, i0, i1, v);
#pragma unroll
    for (int it = 0; it < SMP_ITEMS; it++) {
        const int32_t i = i0 + it * SMP_THREADS + (int32_t)threadIdx.x;
        const uint32_t u = okey(v[it]);
        uint32_t d = 256; /* none */
        if (i < i1 && (p == 0 || (u >> (32 - 8 * p)) == (prefix >> (32 - 8 * p)))) d = (u >> (24 - 8 * p)) & 255u;
        const unsigned same = __match_any_sync(0xffffffffu, d);
        if (d < 256 && lane == __ffs(same) - 1) atomicAdd(&h[d], (uint32_t)__popc(same));
    }
    __syncthreads();
    for (int d = threadIdx.x; d < 256; d += SMP_THREADS)
        if (h[d]) atomicAdd(&gh[p * 256 + d], h[d]);
}

/* Grid (n_chunks, R), SMP_THREADS, after the 4 passes (threshold T = the
 * keep-th largest key, krem of the keys equal to T to take, eq of them in
 * the row): appends the keys above T of chunk c, and those equal to T when
 * all are taken (eq == krem), to cand[r] at n_cand[r] (zeroed before; no
 * particular order); eqcnt[r][c] = keys equal to T in the chunk. */
__global__ void __launch_bounds__(SMP_THREADS) gather_kernel(smp_args a) {
    __shared__ rsel s_sel;
    __shared__ uint32_t s_eq;
    const int r = blockIdx.y, lane = threadIdx.x & 31;
    if (threadIdx.x < 32) {
        const rsel s = rsel_state(a.rhist + (size_t)r * 1024, 4, (uint32_t)a.keep);
        if (lane == 0) s_sel = s, s_eq = 0;
    }
    __syncthreads();
    const uint32_t T = s_sel.prefix;
    const bool take_eq = s_sel.eq == s_sel.krem;
    const int32_t i0 = (int32_t)blockIdx.x * SMP_CHUNK, i1 = min(i0 + SMP_CHUNK, a.V);
    float v[SMP_ITEMS];
    load_chunk(a.src + (size_t)r * a.V, i0, i1, v);
    unsigned long long *out = a.cand + (size_t)r * a.keep;
    uint32_t n_eq = 0;
#pragma unroll
    for (int it = 0; it < SMP_ITEMS; it++) {
        const int32_t i = i0 + it * SMP_THREADS + (int32_t)threadIdx.x;
        const uint32_t u = okey(v[it]);
        const bool valid = i < i1;
        n_eq += valid && u == T;
        const bool want = valid && (u > T || (u == T && take_eq));
        const unsigned bal = __ballot_sync(0xffffffffu, want);
        const int leader = bal ? __ffs(bal) - 1 : 0;
        uint32_t base = 0;
        if (bal && lane == leader) base = atomicAdd(&a.n_cand[r], (uint32_t)__popc(bal));
        base = __shfl_sync(0xffffffffu, base, leader) + (uint32_t)__popc(bal & ((1u << lane) - 1));
        if (want && base < (uint32_t)a.keep) out[base] = ckey(u, i, a.idbits);
    }
    n_eq = __reduce_add_sync(0xffffffffu, n_eq);
    if (lane == 0 && n_eq) atomicAdd(&s_eq, n_eq);
    __syncthreads();
    if (threadIdx.x == 0) a.eqcnt[(size_t)r * a.n_chunks + blockIdx.x] = s_eq;
}

/* Grid (n_chunks, R), SMP_THREADS; does something only when the keys equal
 * to T are taken in part (eq > krem): the krem of them with the lowest ids
 * go to cand[r][keep - krem ...] (gather wrote the keep - krem keys above T
 * before them). Block c's rank base is the count of tied keys in chunks
 * before it (eqcnt); inside the chunk, block scans in index order. */
__global__ void __launch_bounds__(SMP_THREADS) ties_kernel(smp_args a) {
    typedef cub::BlockScan<uint32_t, SMP_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    __shared__ rsel s_sel;
    __shared__ uint32_t s_base;
    const int r = blockIdx.y, lane = threadIdx.x & 31;
    if (threadIdx.x < 32) {
        const rsel s = rsel_state(a.rhist + (size_t)r * 1024, 4, (uint32_t)a.keep);
        uint32_t before = 0;
        for (uint32_t c = lane; c < blockIdx.x; c += 32) before += a.eqcnt[(size_t)r * a.n_chunks + c];
        before = __reduce_add_sync(0xffffffffu, before);
        if (lane == 0) s_sel = s, s_base = before;
    }
    __syncthreads();
    const uint32_t T = s_sel.prefix, krem = s_sel.krem;
    uint32_t base = s_base;
    if (s_sel.eq == krem || base >= krem) return; /* block-uniform */
    const int32_t i0 = (int32_t)blockIdx.x * SMP_CHUNK, i1 = min(i0 + SMP_CHUNK, a.V);
    const float *x = a.src + (size_t)r * a.V;
    unsigned long long *out = a.cand + (size_t)r * a.keep + (a.keep - krem);
    for (int it = 0; it < SMP_ITEMS; it++) {
        const int32_t i = i0 + it * SMP_THREADS + (int32_t)threadIdx.x;
        const uint32_t flag = i < i1 && okey(x[i]) == T;
        uint32_t rank, total;
        scan_t(tmp).ExclusiveSum(flag, rank, total);
        if (flag && base + rank < krem) out[base + rank] = ckey(T, i, a.idbits);
        base += total;
        __syncthreads(); /* tmp is reused */
        if (base >= krem) break; /* block-uniform */
    }
}

/* ----------------------------------------------------------- finish */

/* Broadcast slots of smp_finish. */
struct fin_sh {
    double s, lim;
    int32_t hit, first;
};

/* The sorted candidates and what their values need. */
struct fin_ctx {
    const unsigned long long *keys; /* (n) sorted descending */
    int idbits;
    float maxl, temp;
    double sum;
};

/* Candidate i's value: q = 0 the CPU's first probs[i], expf((logit - max) /
 * temp); q = 1 after normalisation, (float)(probs[i] / sum). */
__device__ __forceinline__ float cand_val(const fin_ctx &f, int32_t i, int q) {
    const float l = okey_val(ckey_u(f.keys[i], f.idbits));
    const float p = lk_expf(__fdiv_rn(__fsub_rn(l, f.maxl), f.temp));
    return q ? __double2float_rn(__ddiv_rn((double)p, f.sum)) : p;
}

/* One thread: *s += (double)x[i] for i = 0 .. m-1 in order, one rounding per
 * add, stopping at the first i where check and *s >= lim (strict: *s > lim);
 * returns that i, or m. Loads are issued 8 ahead of the adds. */
__device__ __forceinline__ int32_t seq_scan(const float *x, int32_t m, bool check, double lim, bool strict,
                                            double *s_io) {
    double s = *s_io;
    int32_t hit = m;
    for (int32_t i = 0; i < m && hit == m; i += 8) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = i + j < m ? x[i + j] : 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++)
            if (hit == m && i + j < m) {
                s = __dadd_rn(s, (double)v[j]);
                if (check && (strict ? s > lim : s >= lim)) hit = i + j;
            }
    }
    *s_io = s;
    return hit;
}

/* Block-wide (all threads call it): the CPU's running double sum of the
 * values (cand_val q) of candidates 0 .. n-1 in order; returns the first i
 * where check and the running sum s >= lim (strict: s > lim), or n, with
 * *sum = s there (the whole sum for n). Values go a tile at a time into
 * tile (SMP_TILE floats, shared), computed by all threads, added by one. */
__device__ int32_t chain(const fin_ctx &f, int q, int32_t n, bool check, double lim, bool strict, float *tile,
                         fin_sh *sh, double *sum) {
    double s = 0.0;
    int32_t hit = n;
    if (threadIdx.x == 0) sh->s = 0.0;
    for (int32_t t0 = 0; t0 < n; t0 += SMP_TILE) {
        const int32_t m = min(SMP_TILE, n - t0);
        for (int32_t i = threadIdx.x; i < m; i += blockDim.x) tile[i] = cand_val(f, t0 + i, q);
        __syncthreads();
        if (threadIdx.x == 0) {
            const int32_t j = seq_scan(tile, m, check, lim, strict, &s);
            sh->hit = j < m ? t0 + j : n;
            sh->s = s;
        }
        __syncthreads();
        hit = sh->hit;
        if (hit < n) break; /* block-uniform */
    }
    __syncthreads();
    *sum = sh->s;
    __syncthreads(); /* all have read sh before anyone writes it again */
    return hit;
}

/* Block-wide: loki_sampler_sample after its sort, for row r over the n >= 1
 * candidates keys (sorted descending): softmax at temp, top-p, min-p, the
 * xorshift64* draw from what is kept; emits the token and the new state. */
__device__ void smp_finish(const smp_args &a, int r, const unsigned long long *keys, int32_t n, float *tile,
                           fin_sh *sh) {
    fin_ctx f = {keys, a.idbits, okey_val(ckey_u(keys[0], a.idbits)), a.temp, 0.0};
    double s;
    chain(f, 0, n, false, 0.0, false, tile, sh, &s);
    f.sum = s;
    int32_t keep = n;
    if (a.top_p < 1.0f) { /* cum += probs[i]; if (cum >= top_p) keep = i + 1 */
        const int32_t j = chain(f, 1, keep, true, (double)a.top_p, false, tile, sh, &s);
        if (j < keep) keep = j + 1;
    }
    if (a.min_p > 0.0f) { /* keep the prefix with probs[i] >= probs[0] * min_p */
        const float thresh = __fmul_rn(cand_val(f, 0, 1), a.min_p);
        if (threadIdx.x == 0) sh->first = keep;
        __syncthreads();
        int32_t mine = keep; /* this thread's first failure */
        for (int32_t i = 1 + (int32_t)threadIdx.x; i < mine; i += blockDim.x)
            if (!(cand_val(f, i, 1) >= thresh)) mine = i;
        if (mine < keep) atomicMin(&sh->first, mine);
        __syncthreads();
        keep = sh->first;
    }
    double total;
    chain(f, 1, keep, false, 0.0, false, tile, sh, &total);
    unsigned long long x = 0;
    if (threadIdx.x == 0) { /* rng_uniform(s) * total */
        x = a.st[r].rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        const double u = __dmul_rn(__ull2double_rn((x * 0x2545F4914F6CDD1Dull) >> 11), 1.0 / 9007199254740992.0);
        sh->lim = __dmul_rn(u, total);
    }
    __syncthreads();
    const double rr = sh->lim;
    const int32_t j = chain(f, 1, keep, true, rr, true, tile, sh, &s); /* acc += probs[i]; if (r < acc) */
    if (threadIdx.x == 0) emit(a, r, ckey_id(keys[j < keep ? j : keep - 1], a.idbits), x);
}

/* Grid (R), NT threads: sorts the keep (<= NT * ITEMS) candidates of row r
 * (CUB BlockRadixSort, descending, padding keys 0 last) and finishes. */
template <int NT, int ITEMS> __global__ void __launch_bounds__(NT, 1) topk_finish_kernel(smp_args a) {
    typedef cub::BlockRadixSort<unsigned long long, NT, ITEMS> sort_t;
    __shared__ union {
        typename sort_t::TempStorage sort;
        float tile[SMP_TILE];
    } sm;
    __shared__ unsigned long long sk[NT * ITEMS];
    __shared__ fin_sh sh;
    const int r = blockIdx.x;
    unsigned long long k[ITEMS];
#pragma unroll
    for (int j = 0; j < ITEMS; j++) {
        const int32_t i = (int32_t)threadIdx.x * ITEMS + j;
        k[j] = i < a.keep ? a.cand[(size_t)r * a.keep + i] : 0ull;
    }
    sort_t(sm.sort).SortDescending(k, 0, 32 + a.idbits);
#pragma unroll
    for (int j = 0; j < ITEMS; j++) sk[threadIdx.x * ITEMS + j] = k[j];
    __syncthreads(); /* sk complete; sm.sort is free for the tiles */
    smp_finish(a, r, sk, a.keep, sm.tile, &sh);
}

/* Grid (n_chunks, R), SMP_THREADS: keys[r][i] = ckey of logit i of row r. */
__global__ void __launch_bounds__(SMP_THREADS) full_keys_kernel(smp_args a, unsigned long long *keys) {
    const int r = blockIdx.y;
    const int32_t i0 = (int32_t)blockIdx.x * SMP_CHUNK, i1 = min(i0 + SMP_CHUNK, a.V);
    float v[SMP_ITEMS];
    load_chunk(a.src + (size_t)r * a.V, i0, i1, v);
#pragma unroll
    for (int it = 0; it < SMP_ITEMS; it++) {
        const int32_t i = i0 + it * SMP_THREADS + (int32_t)threadIdx.x;
        if (i < i1) keys[(size_t)r * a.V + i] = ckey(okey(v[it]), i, a.idbits);
    }
}

/* Grid (R), SMP_FULL_THREADS: finishes row r over its sorted keys. */
__global__ void __launch_bounds__(SMP_FULL_THREADS, 1) full_finish_kernel(smp_args a) {
    __shared__ float tile[SMP_TILE];
    __shared__ fin_sh sh;
    const int r = blockIdx.x;
    smp_finish(a, r, a.sorted + (size_t)r * a.V, a.keep, tile, &sh);
}

/* ------------------------------------------------------- row state */

/* Grid-stride over rows [0, n): fresh state seeded rng. */
__global__ void reset_kernel(smp_row *st, int32_t row0, int32_t n, unsigned long long rng) {
    for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        st[row0 + i] = smp_row{rng, 0, 0};
}

/* 1 block: n tokens appended to row r's ring as n loki_sampler_accept calls;
 * stage (m = min(n, W)) holds the last m of them, the ones the ring keeps. */
__global__ void accept_kernel(smp_row *st, int32_t *hist, int32_t W, int32_t r, const int32_t *stage, int32_t m,
                              int64_t n) {
    smp_row s = st[r];
    const int32_t pos0 = (int32_t)(((int64_t)s.hist_pos + (n - m)) % W);
    for (int32_t j = threadIdx.x; j < m; j += blockDim.x) hist[(size_t)r * W + (pos0 + j) % W] = stage[j];
    __syncthreads(); /* every thread has read st[r] */
    if (threadIdx.x == 0) {
        s.hist_pos = (int32_t)(((int64_t)pos0 + m) % W);
        s.hist_len = (int32_t)min((int64_t)W, (int64_t)s.hist_len + n);
        st[r] = s;
    }
}

/* 1 thread: *dst = the stop set. */
__global__ void set_stop_kernel(smp_stop *dst, smp_stop v) { *dst = v; }

/* Grid-stride: y = lk_expf(x). */
__global__ void expf_kernel(float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = lk_expf(x[i]);
}

#endif
