/*
 * bench_attn_cuda.h - `loki bench attention --device cuda` (bench_attn_cuda.c)
 * and the list parser it shares with the CPU path (bench_attn.c).
 */
#ifndef LK_CLI_BENCH_ATTN_CUDA_H
#define LK_CLI_BENCH_ATTN_CUDA_H

#include "loki.h"

#include <stdint.h>

/* Most entries of a comma-separated list option (--S, --B, ...). */
#define BATTN_MAX_LIST 16

/* Parse "a,b,c" of positive integers (each <= 2^24) into out (cap); returns
 * the count, or -1 for anything else (empty item, junk, too many). */
int battn_parse_int_list(const char *s, int32_t *out, int cap);

/* Uniform in [-1, 1) from a counter (splitmix64): the synthetic data. */
float battn_hash_uniform(uint64_t x);

/* Identity PCA axes with eigenvalue j = exp(-j/decay) in every basis, layer
 * and head of a zeroed pca: the synthetic keys are drawn in the PCA basis. */
void battn_identity_pca(loki_pca *pca, float decay);

/* The GPU benchmark. `loki bench attention` hands argv over unchanged (argv[0]
 * = "attention") when it finds `--device cuda`; this parses its own option
 * table (which accepts --device too). Returns the exit code: 0 ok, 1 runtime
 * error (no GPU, a failing call), 2 usage error. */
int cli_bench_attention_cuda(int argc, char **argv);

#endif
