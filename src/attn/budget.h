/*
 * budget.h - the budget policy of the sparse methods, in one place for the
 * CPU path (src/attn) and the GPU path (src/cuda): how many of the S cached
 * tokens a query row selects, when it attends to all of them, and how many
 * recent tokens are forced in (docs/ATTENTION.md, "Beyond the paper").
 *
 * Plain C that nvcc also compiles for the device (LK_HD), so the kernels
 * evaluate the policy per sequence of a ragged batch exactly as the CPU does.
 */
#ifndef LK_ATTN_BUDGET_H
#define LK_ATTN_BUDGET_H

#include "loki.h"

#include <stdint.h>

#ifdef __CUDACC__
#define LK_HD static inline __host__ __device__
#else
#define LK_HD static inline
#endif

/* ⌊f·S⌋ for a fraction given as a float: f is widened by one part in 10^7
 * so that decimal fractions not exact in binary (0.7f = 0.69999998) give
 * the intended count (⌊0.7·10⌋ = 7). */
LK_HD int64_t lk_attn_fraction(float f, int64_t S) { return (int64_t)((double)f * (1.0 + 1e-7) * (double)S); }

/* Tokens selected out of S cached: k = max(1, ⌊kf·S⌋) (or k_fixed), at
 * least k_min, at most S. */
LK_HD int32_t lk_attn_budget(const loki_attn_params *p, int32_t S) {
    int64_t k = p->k_fixed > 0 ? p->k_fixed : lk_attn_fraction(p->kf, S);
    if (k < 1) k = 1;
    if (k < p->k_min) k = p->k_min;
    return (int32_t)(k < S ? k : S);
}

/* True when a row with S cached tokens, C of them candidates (not evicted),
 * and budget k attends to every candidate: below the dense threshold S0 or
 * when the budget covers them all. */
LK_HD int lk_attn_all(const loki_attn_params *p, int32_t S, int32_t C, int32_t k) {
    return (p->dense_below > 0 && S < p->dense_below) || k >= C;
}

/* Recent tokens forced into a selection of k: --recent, and for H2O at
 * least half the budget (its recent window). */
LK_HD int32_t lk_attn_recent(const loki_attn_params *p, int32_t k) {
    if (p->method == LOKI_ATTN_H2O) return p->recent > k / 2 ? p->recent : k / 2;
    return p->recent;
}

#endif
