/*
 * cuda_attn_cases.h - the cases of test_cuda_attn.c: one spec per case
 * (shapes, method, options, decode steps), the table in cuda_attn_cases.c.
 */
#ifndef LK_TEST_CUDA_ATTN_CASES_H
#define LK_TEST_CUDA_ATTN_CASES_H

#include "loki.h"

#include <stdbool.h>
#include <stdint.h>

#define LK_TEST_ATTN_MAXB 3 /* most sequences of a case */

/* One case: shapes, the method and its options (0 = off), decode steps. */
typedef struct spec {
    const char *name;
    int L, H, Hkv, D, B;
    int32_t S[LK_TEST_ATTN_MAXB];       /* initial lengths of the B sequences */
    loki_attn_method method;
    float kf;              /* 0: 0.25 */
    int32_t d, k_fixed, k_min, dense_below, sinks, recent;
    bool gqa_shared, gqa_max;
    bool vs_dense;         /* kf = 1: GPU dense on the same keys must agree (1e-4 relative) */
    bool flat;             /* every key but the needles equal: exact ties everywhere, which
                              must go to the lower positions as on the CPU */
    int steps;             /* 0/1: one step; more: each further step appends a token (H2O) */
    int splits;            /* > 0: the attend stage's splits per row forced (lk_gpu_attn_set_splits) */
    loki_cuda_fused fused; /* which Loki steps may run as the fused kernel (lk_gpu_attn_set_fused;
                              0: LOKI_CUDA_FUSED_MHA): OFF, none; PER_HEAD / ALL: at least one must */
    int fused_blocks;      /* > 0: the fused kernel's blocks per row forced (lk_gpu_attn_set_fused_blocks) */
} spec;

extern const spec lk_test_attn_cases[];
extern const int lk_test_attn_n_cases;

#endif
