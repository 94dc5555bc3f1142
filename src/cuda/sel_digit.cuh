/*
 * sel_digit.cuh - what the select stage (select.cu) and the fused Loki step
 * (loki_fused.cu) share of the radix select: the key of a position under
 * the budget policy, the digits of the three passes and the root block's
 * search for the pass's digit in the (cluster's) histogram.
 */
#ifndef LK_SEL_DIGIT_CUH
#define LK_SEL_DIGIT_CUH

#include "cuda/kernels.cuh"

#include <cub/block/block_scan.cuh>

#define LK_SEL_BINS 4096 /* bins of the first digit (12 bits); the other two have 10 */

/* Shift and width of the digit of pass 0, 1, 2: bits 31..20, 19..10, 9..0. */
__device__ __forceinline__ int lk_sel_shift(int pass) { return pass == 0 ? 20 : pass == 1 ? 10 : 0; }
__device__ __forceinline__ int lk_sel_bits(int pass) { return pass == 0 ? 12 : 10; }

/* The key of position s (score x) of a row of S tokens, budget policy of
 * attn/budget.h: the first `sinks` above every score, then the last
 * `recent` above every score and newest highest, then scores by
 * lk_float_key (NaN lowest). Evicted tokens (key 0) are the caller's. */
__device__ __forceinline__ uint32_t lk_sel_key(int32_t s, int32_t S, int32_t sinks, int32_t recent, float x) {
    return s < sinks ? 0xffffffffu : s >= S - recent ? 0xff800001u + (uint32_t)(s - (S - recent)) : lk_float_key(x);
}

/* Root block only, all T threads: the digit of this pass at which the
 * count of keys from the top reaches st->need, from hist (the pass's
 * 1 << lk_sel_bits(pass) bins, the cluster's sums); updates *st (prefix P,
 * shift, need within the bucket, C = the bucket's keys, mode 1 once the
 * bucket is taken whole or the last digit is known) and clears hist for
 * the next pass. Each thread takes adjacent bins, thread 0 the top ones; a
 * block scan from the top finds the boundary. Returns true in the thread
 * that set mode 1 (the row's threshold is final), false elsewhere. */
template <int T>
__device__ bool lk_sel_digit(uint32_t *hist, lk_sel_state *st_out,
                             typename cub::BlockScan<uint32_t, T>::TempStorage &scan, int pass) {
    constexpr int PER = LK_SEL_BINS / T; /* first-digit bins per thread */
    const int nb = 1 << lk_sel_bits(pass), per = nb / T, tid = threadIdx.x;
    lk_sel_state st = *st_out;
    uint32_t h[PER], local = 0, before;
    const int lo = nb - (tid + 1) * per;
    bool final = false;
#pragma unroll
    for (int i = 0; i < PER; i++) h[i] = 0;
#pragma unroll
    for (int i = 0; i < PER; i++)
        if (i < per) h[i] = hist[lo + i], local += h[i];
    cub::BlockScan<uint32_t, T>(scan).ExclusiveSum(local, before);
    const uint32_t need = (uint32_t)st.need;
    __syncthreads(); /* every thread has read *st_out before the finder writes it */
    if (before < need && before + local >= need) {
        uint32_t acc = before;
#pragma unroll
        for (int i = PER - 1; i >= 0; i--) { /* from this thread's top bin down */
            if (i >= per || acc >= need) continue;
            if (acc + h[i] >= need) {
                st.P = (pass == 0 ? 0u : st.P << lk_sel_bits(pass)) | (uint32_t)(lo + i);
                st.sh = lk_sel_shift(pass);
                st.need -= (int32_t)acc;
                st.C = (int32_t)h[i]; /* keys equal to the prefix (the ties once resolved) */
                if (st.C == st.need || pass == 2) st.mode = 1, final = true; /* taken whole, or resolved */
                *st_out = st;
            }
            acc += h[i];
        }
    }
    /* the bins were read before the scan's barriers: no barrier needed here */
    for (int i = tid; i < nb; i += T) hist[i] = 0;
    return final;
}

#endif
