/*
 * lk_cuda_sample.h - next-token sampling on the GPU (src/cuda/sample.cu): the
 * CPU sampler's decisions (src/sample/sampler.c: repetition penalty,
 * temperature, top-k, top-p, min-p, a draw from a seeded xorshift64*) made
 * on the device, so that a decode step downloads the chosen token ids (4
 * bytes per sequence) instead of the logits.
 *
 * Same token as the CPU: for the same logits, parameters and seed (and the
 * same accepted tokens), lk_cuda_sample gives the token loki_sampler_sample
 * gives, step after step, and keeps the same history and generator state
 * (docs/GPU.md, "Sampling on the GPU", says where that could fail: NaN
 * logits with temp > 0, and a host libm whose expf is not glibc's).
 *
 * A sampler serves up to max_rows sequences decoding together: row b of a
 * call is sequence b of the batch, with its own xorshift state and
 * repetition history on the device. All rows share the parameters.
 *
 * Pointers named *_dev are device pointers; every call is ordered on the
 * context's stream. Built without CUDA, every function that can fail returns
 * LOKI_ERR_UNSUPPORTED (src/cuda/stub_sample.c).
 */
#ifndef LK_CUDA_SAMPLE_H
#define LK_CUDA_SAMPLE_H

#include "loki.h"
#include "cuda/lk_cuda.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* temp > 0 with at most this many candidates kept by top-k (min(top_k, V),
 * or V when top-k is off) takes the fast path: radix select of the top
 * candidates, then one block sorts and finishes them. Beyond it (top_k <= 0
 * on a large vocabulary, or a large top_k), the whole row is sorted with
 * CUB's radix sort and the softmax runs over every kept candidate: exact,
 * but slower (docs/GPU.md). */
#define LK_CUDA_SAMPLE_TOPK_MAX 2048

/* Stop tokens a sampler can hold (lk_cuda_sampler_set_stop). */
#define LK_CUDA_SAMPLER_MAX_STOP 8

typedef struct lk_cuda_sampler lk_cuda_sampler;

/* A sampler for up to max_rows (1 .. 65535) rows of n_vocab (1 .. 2^30)
 * logits with params, validated as loki_sampler_init validates them (same
 * messages). Every row starts as a fresh CPU sampler: generator seeded with
 * params->seed, empty history, no stop tokens. Allocates all device memory
 * the calls need (the full-sort path: 16 bytes per logit per row for the
 * keys; the full path requires max_rows * n_vocab < 2^31). cu is borrowed
 * and must outlive the sampler. Synchronises the stream once. */
loki_status lk_cuda_sampler_init(lk_cuda *cu, const loki_sampler_params *params, int32_t n_vocab, int32_t max_rows,
                                 lk_cuda_sampler **out, loki_error *err);
void lk_cuda_sampler_free(lk_cuda_sampler *s);

/* Which path lk_cuda_sample takes for these parameters: "greedy", "top-k" or
 * "full sort". For logs and tests. */
const char *lk_cuda_sampler_path(const lk_cuda_sampler *s);

/* Row `row` becomes a fresh sampler seeded with `seed` (as loki_sampler_init
 * with params.seed = seed): generator state set, history emptied. Stream
 * ordered, asynchronous (one tiny kernel; capturable). */
loki_status lk_cuda_sampler_reset(lk_cuda_sampler *s, int32_t row, uint64_t seed, loki_error *err);

/* Record tokens (host, n >= 0; NULL when n == 0) in row's history, as n calls
 * of loki_sampler_accept (prompt tokens, or text fed outside the decode
 * loop). Uploads at most repeat_last_n of them (the ring keeps no more)
 * through a staging buffer: the host array may be reused on return.
 * Stream ordered, asynchronous; not for graph capture (pageable upload). */
loki_status lk_cuda_sampler_accept(lk_cuda_sampler *s, int32_t row, const int32_t *tokens, int32_t n,
                                   loki_error *err);

/* Tokens that end a sequence (end of text / turn; n_stop 0 .. 8, all rows):
 * when one is sampled it is returned but not appended to the history,
 * mirroring the CLI, which stops before loki_sampler_accept on them. Leave
 * the set empty (the default) when the loop goes on past them (--ignore-eos).
 * Stream ordered, asynchronous. */
loki_status lk_cuda_sampler_set_stop(lk_cuda_sampler *s, const int32_t *stop, int32_t n_stop, loki_error *err);

/* The main call: tokens_dev (rows) int32 = the sample of each row of
 * logits_dev (rows, n_vocab) f32, row r with sampler row row0 + r (row0 >= 0,
 * row0 + rows <= max_rows; rows 0 does nothing: a single sequence s of a
 * context samples with row0 = s, a decode batch of sequences 0.. with
 * row0 = 0); each sampled token is appended to its row's history (unless a
 * stop token) and temp > 0 advances the row's generator once, as
 * loki_sampler_sample followed by loki_sampler_accept. logits_dev is not
 * modified. Asynchronous: no host synchronisation, no allocation, launch
 * shapes fixed for fixed rows, so a decode step that calls it can be
 * captured in a CUDA graph; kernel faults surface at the next lk_cuda_sync.
 * Rows with a NaN logit and temp > 0 get some token, not necessarily the
 * CPU's (its qsort has no defined order with NaN). */
loki_status lk_cuda_sample(lk_cuda_sampler *s, const float *logits_dev, int32_t row0, int32_t rows,
                           int32_t *tokens_dev, loki_error *err);

/* Read back row's state (synchronises the stream): generator state *rng,
 * history ring hist (host, repeat_last_n entries; NULL to skip) of which
 * entries 0 .. *hist_len-1 are valid, next write position *hist_pos; each
 * out pointer may be NULL. The layout is the CPU sampler's. For tests. */
loki_status lk_cuda_sampler_state(lk_cuda_sampler *s, int32_t row, uint64_t *rng, int32_t *hist, int32_t *hist_len,
                                  int32_t *hist_pos, loki_error *err);

/* y_dev (n) = expf(x_dev (n)) computed by the device's copy of glibc's expf
 * (src/cuda/sample_expf.h), the one the sampler uses. Asynchronous. For
 * tests: the host's expf must agree for the sampler to match the CPU's. */
loki_status lk_cuda_sample_expf(lk_cuda *cu, float *y_dev, const float *x_dev, int64_t n, loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
