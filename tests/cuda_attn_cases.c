/*
 * cuda_attn_cases.c - test_cuda_attn's case table (cuda_attn_cases.h):
 * dense, exact-topk, pcaattn, Loki (per head, grouped, shared, max, budget
 * options, long rows, flat ties, forced splits and fused-kernel modes) and
 * H2O, each on ragged sequences.
 */
#include "cuda_attn_cases.h"

#define DN .method = LOKI_ATTN_DENSE
#define TK .method = LOKI_ATTN_EXACT_TOPK
#define LK .method = LOKI_ATTN_LOKI
#define OF LOKI_CUDA_FUSED_OFF
#define PH LOKI_CUDA_FUSED_PER_HEAD
#define AL LOKI_CUDA_FUSED_ALL
const spec lk_test_attn_cases[] = {
    {"dense MHA", 2, 4, 4, 128, 3, {1, 63, 4097}, DN},
    {"dense GQA 4", 1, 8, 2, 64, 3, {64, 65, 1000}, DN},
    {"dense GQA 8", 2, 16, 2, 128, 3, {4097, 1000, 65}, DN},
    {"loki per head, group 1", 2, 4, 4, 128, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 32},
    {"loki per head, group 4", 1, 8, 2, 64, 3, {4097, 200, 63}, LK, .kf = 0.125f, .d = 16},
    {"loki per head, group 8", 1, 16, 2, 128, 3, {1000, 4097, 64}, LK, .kf = 0.25f, .d = 16},
    {"loki gqa-shared, group 4", 2, 8, 2, 128, 3, {1000, 4097, 130}, LK, .kf = 0.25f, .d = 32, .gqa_shared = 1},
    {"loki gqa-shared, group 8", 1, 16, 2, 64, 3, {4097, 1000, 65}, LK, .kf = 0.125f, .d = 16, .gqa_shared = 1},
    {"loki gqa-max, group 4", 1, 8, 2, 128, 3, {4097, 777, 64}, LK, .kf = 0.125f, .d = 32, .gqa_shared = 1,
     .gqa_max = 1},
    {"loki gqa-max alone, group 8", 1, 8, 1, 64, 3, {1000, 4097, 63}, LK, .kf = 0.25f, .d = 16, .gqa_max = 1},
    {"loki group 1, gqa-shared (no-op)", 1, 4, 4, 64, 3, {300, 64, 65}, LK, .kf = 0.25f, .d = 16, .gqa_shared = 1},
    {"loki k=1 (k_fixed)", 1, 8, 2, 128, 3, {1, 65, 4097}, LK, .d = 32, .k_fixed = 1},
    {"loki k=1 gqa-shared", 1, 8, 2, 64, 3, {2, 1000, 4097}, LK, .d = 16, .k_fixed = 1, .gqa_shared = 1},
    {"exact-topk k=1 (kf 1e-4)", 1, 8, 2, 128, 3, {1, 64, 4097}, TK, .kf = 1e-4f},
    {"loki kf=1 (= dense)", 2, 8, 2, 128, 3, {1, 1000, 4097}, LK, .kf = 1.0f, .d = 16, .vs_dense = 1},
    {"loki dense-below 1000", 1, 8, 2, 128, 3, {999, 1000, 4097}, LK, .kf = 0.125f, .d = 32, .dense_below = 1000},
    {"loki k-min 300", 1, 8, 2, 64, 3, {1000, 2000, 4097}, LK, .kf = 0.125f, .d = 16, .k_min = 300},
    {"loki sinks 4 recent 64", 1, 8, 2, 128, 3, {100, 1000, 4097}, LK, .kf = 0.125f, .d = 32, .sinks = 4,
     .recent = 64},
    {"loki sinks/recent gqa-shared", 1, 8, 2, 64, 3, {70, 1000, 4097}, LK, .kf = 0.125f, .d = 16, .sinks = 4,
     .recent = 64, .gqa_shared = 1},
    {"exact-topk group 4", 1, 8, 2, 128, 3, {1000, 65, 4097}, TK, .kf = 0.125f},
    {"exact-topk gqa-shared", 1, 8, 2, 64, 3, {4097, 63, 1000}, TK, .kf = 0.25f, .gqa_shared = 1},
    {"pcaattn", 2, 8, 2, 128, 3, {1, 1000, 4097}, .method = LOKI_ATTN_PCAATTN, .d = 32},
    /* one head per block (the transposed products): d not a multiple of
     * 16, so a k-step is half inside the skipped part */
    {"pcaattn MHA, d = 40", 1, 4, 4, 128, 3, {1, 1000, 4097}, .method = LOKI_ATTN_PCAATTN, .d = 40},
    {"loki per head, d = 24", 1, 4, 4, 64, 3, {4097, 1000, 65}, LK, .kf = 0.125f, .d = 24},
    /* forced split counts: one split, uneven splits, more splits than a
     * short row has tiles (clamped) */
    {"dense MHA, 1 split", 1, 4, 4, 128, 3, {1, 640, 4097}, DN, .splits = 1},
    {"dense GQA 4, 7 splits", 1, 8, 2, 128, 3, {4097, 65, 1000}, DN, .splits = 7},
    {"loki per head, 3 splits", 1, 4, 4, 128, 3, {4097, 1000, 65}, LK, .kf = 0.25f, .d = 32, .splits = 3},
    {"loki gqa-shared, 256 splits", 1, 8, 2, 64, 3, {4097, 1000, 65}, LK, .kf = 0.25f, .d = 16, .gqa_shared = 1,
     .splits = 256},
    /* long rows: the select stage splits a row over a cluster of blocks (2
     * and 4 here); flat keys put nearly the whole row into the first
     * digit's bucket, more than a block keeps, so the passes re-read the
     * slices, and exact ties are split over the cluster */
    {"loki long rows (clusters of 2)", 1, 4, 4, 128, 3, {20000, 9000, 8192}, LK, .kf = 0.125f, .d = 32},
    {"loki long rows, sinks/recent, gqa-shared", 1, 8, 2, 64, 3, {33000, 8200, 16384}, LK, .kf = 0.25f, .d = 16,
     .sinks = 4, .recent = 64, .gqa_shared = 1},
    /* more rows of short sequences than one wave of 512-thread select
     * blocks holds (> 2 per SM on a 132-SM H200): the 256-thread select */
    {"loki many rows (256-thread select)", 1, 96, 96, 64, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 16},
    {"loki gqa-max, many rows (256-thread select)", 1, 192, 96, 64, 3, {1000, 300, 2000}, LK, .kf = 0.25f,
     .d = 16, .gqa_max = 1, .sinks = 2, .recent = 16},
    {"loki flat keys, long rows (ties)", 1, 2, 1, 64, 2, {20000, 3000}, LK, .kf = 0.125f, .d = 16, .flat = 1},
    /* few long rows (select clusters) over several layers and steps */
    {"loki MHA long rows, 2 layers, 3 steps", 2, 4, 4, 128, 3, {20000, 9000, 8192}, LK, .kf = 0.125f, .d = 32,
     .steps = 3},
    {"loki gqa-shared long rows, 3 steps", 2, 8, 2, 64, 2, {12000, 8191}, LK, .kf = 0.25f, .d = 16,
     .gqa_shared = 1, .sinks = 4, .recent = 64, .steps = 3},
    {"loki flat keys, MHA long rows (ties)", 1, 2, 2, 64, 2, {20000, 3000}, LK, .kf = 0.125f, .d = 16, .flat = 1,
     .steps = 2},
    /* Loki with one query head per KV head runs the fused kernel
     * (loki_fused.cu) unless .fused = OF: the MHA cases above are fused;
     * these run the separate stages on the same shapes, and the budget
     * options through the fused kernel (slices of up to 4608 tokens:
     * 70000 tokens take clusters of 16) */
    {"loki per head, group 1, stages", 2, 4, 4, 128, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 32, .fused = OF},
    {"loki long rows, stages", 1, 4, 4, 128, 3, {20000, 9000, 8192}, LK, .kf = 0.125f, .d = 32, .fused = OF},
    {"loki flat keys, MHA, stages (ties)", 1, 2, 2, 64, 2, {20000, 3000}, LK, .kf = 0.125f, .d = 16, .flat = 1,
     .fused = OF},
    {"loki many rows, stages", 1, 96, 96, 64, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 16, .fused = OF},
    {"loki MHA sinks 4 recent 64", 1, 4, 4, 128, 3, {100, 1000, 4097}, LK, .kf = 0.125f, .d = 32, .sinks = 4,
     .recent = 64},
    {"loki MHA k=1", 1, 4, 4, 64, 3, {1, 65, 4097}, LK, .d = 16, .k_fixed = 1},
    {"loki MHA k-min 300", 1, 4, 4, 64, 3, {1000, 2000, 4097}, LK, .kf = 0.125f, .d = 16, .k_min = 300},
    {"loki MHA dense-below 1000", 1, 4, 4, 128, 3, {999, 1000, 4097}, LK, .kf = 0.125f, .d = 32,
     .dense_below = 1000},
    {"loki MHA kf=1 (= dense)", 1, 4, 4, 128, 3, {1, 1000, 4097}, LK, .kf = 1.0f, .d = 16, .vs_dense = 1},
    {"loki MHA d = 64 of 64", 1, 4, 4, 64, 3, {3000, 65, 4097}, LK, .kf = 0.125f, .d = 64},
    {"loki MHA d = 40", 1, 4, 4, 128, 3, {3000, 65, 4097}, LK, .kf = 0.125f, .d = 40},
    {"loki MHA 70000 tokens (clusters of 16)", 1, 2, 2, 128, 2, {70000, 4097}, LK, .kf = 0.125f, .d = 32},
    {"loki MHA 65536 tokens, flat (ties)", 1, 2, 2, 64, 1, {65536}, LK, .kf = 0.125f, .d = 16, .flat = 1},
    /* grouped query heads, each with its own selection, through the
     * fused kernel (LOKI_CUDA_FUSED_PER_HEAD: row h reads KV head h / G) */
    {"loki per head, group 4, fused", 2, 8, 2, 64, 3, {4097, 200, 63}, LK, .kf = 0.125f, .d = 16,
     .fused = PH, .steps = 2},
    {"loki per head, group 8, fused", 1, 16, 2, 128, 3, {1000, 4097, 64}, LK, .kf = 0.25f, .d = 40,
     .fused = PH},
    {"loki per head, group 4, fused long rows", 1, 8, 2, 128, 2, {33000, 9000}, LK, .kf = 0.125f, .d = 32,
     .fused = PH, .sinks = 4, .recent = 64},
    {"loki per head, group 2, fused flat (ties)", 1, 4, 2, 64, 2, {20000, 3000}, LK, .kf = 0.125f, .d = 16,
     .flat = 1, .fused = PH},
    {"loki gqa-shared, per-head fusion on (stages)", 1, 8, 2, 64, 3, {4097, 1000, 65}, LK, .kf = 0.25f,
     .d = 16, .gqa_shared = 1, .fused = PH},
    /* the summed shared selection through the fused kernel (ALL): the
     * group's summed query selects, each head attends */
    {"loki gqa-shared group 4, fused", 2, 8, 2, 128, 3, {1000, 4097, 130}, LK, .kf = 0.25f, .d = 32,
     .gqa_shared = 1, .fused = AL, .steps = 2},
    {"loki gqa-shared group 8, fused", 1, 16, 2, 64, 3, {4097, 1000, 65}, LK, .kf = 0.125f, .d = 16,
     .gqa_shared = 1, .fused = AL},
    {"loki gqa-shared group 2, fused, sinks/recent", 1, 8, 4, 64, 3, {70, 1000, 4097}, LK, .kf = 0.125f,
     .d = 16, .sinks = 4, .recent = 64, .gqa_shared = 1, .fused = AL},
    {"loki gqa-shared group 4, fused long rows", 1, 8, 2, 128, 2, {33000, 8200}, LK, .kf = 0.125f, .d = 40,
     .gqa_shared = 1, .fused = AL},
    {"loki gqa-shared group 16, fused k=1", 1, 16, 1, 128, 3, {2, 1000, 4097}, LK, .d = 32, .k_fixed = 1,
     .gqa_shared = 1, .fused = AL},
    {"loki gqa-shared flat keys, fused (ties)", 1, 8, 2, 64, 2, {20000, 3000}, LK, .kf = 0.125f, .d = 16,
     .flat = 1, .gqa_shared = 1, .fused = AL},
    {"loki gqa-max, fusion on (stages)", 1, 8, 2, 128, 3, {4097, 777, 64}, LK, .kf = 0.125f, .d = 32,
     .gqa_shared = 1, .gqa_max = 1, .fused = AL},
    {"loki gqa-shared group 3, fusion on (stages)", 1, 6, 2, 64, 3, {4097, 777, 64}, LK, .kf = 0.125f, .d = 16,
     .gqa_shared = 1, .fused = AL},
    {"loki MHA, fusion all", 1, 4, 4, 128, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 32, .fused = AL},
    /* clusters of 16 forced on short rows: slices of one page, most
     * blocks of the 65-token row empty; and on many rows (more than
     * one wave of clusters) */
    {"loki MHA, 16 blocks forced (empty slices)", 1, 4, 4, 128, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 32,
     .fused_blocks = 16, .fused = AL},
    {"loki gqa-shared, 16 blocks forced (empty slices)", 1, 8, 2, 64, 3, {1000, 65, 4097}, LK, .kf = 0.125f,
     .d = 16, .gqa_shared = 1, .fused_blocks = 16, .fused = AL},
    {"loki many rows, 8 blocks forced (waves)", 1, 96, 96, 64, 3, {1000, 65, 4097}, LK, .kf = 0.25f, .d = 16,
     .fused_blocks = 8, .fused = AL},
    {"exact-topk flat keys (ties)", 1, 4, 2, 64, 2, {9000, 700}, TK, .kf = 0.25f, .flat = 1},
    {"h2o group 4, 8 steps", 2, 8, 2, 64, 3, {1, 63, 300}, .method = LOKI_ATTN_H2O, .kf = 0.25f, .steps = 8},
    {"h2o gqa-shared recent 16, 8 steps", 1, 8, 2, 128, 3, {64, 65, 500}, .method = LOKI_ATTN_H2O, .kf = 0.125f,
     .recent = 16, .gqa_shared = 1, .steps = 8},
};

const int lk_test_attn_n_cases = (int)(sizeof lk_test_attn_cases / sizeof lk_test_attn_cases[0]);
