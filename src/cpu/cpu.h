/*
 * cpu.h - CPU backend primitives: a thread pool, matrix products that read
 * weights in their file dtype (f32/f16/bf16/q8_0, q4_0..q6_k) with float32 accumulation,
 * and the elementwise ops of a Llama block. Plain C; SIMD where the compiler
 * targets it (-march=native), scalar fallbacks otherwise.
 */
#ifndef LK_CPU_H
#define LK_CPU_H

#include "core/common.h"
#include "core/tensor.h"
#include "model/model.h"

/* ------------------------------------------------------------ threads */
typedef struct lk_pool lk_pool;
/* Work item: called once on every thread, ith in [0, nth). */
typedef void (*lk_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (the calling thread counts as one). */
loki_status lk_pool_init(lk_pool **out, int n_threads, loki_error *err);
void lk_pool_free(lk_pool *p);
int lk_pool_size(const lk_pool *p);
/* Run fn on every thread of the pool and return when all have finished. */
void lk_pool_run(lk_pool *p, lk_task_fn fn, void *arg);

/* ------------------------------------------------------------ backend */
/* Per-context CPU state: the pool and scratch buffers sized once at init.
 * One thread at a time may call into an lk_cpu (the scratch is shared).
 * lk_cpu_init sets OpenBLAS to 1 thread (process-wide): the pool is the
 * only parallelism, so no second set of spinning threads shares the cores. */
typedef struct lk_cpu lk_cpu;

/* max_rows: most rows (tokens) one matmul will see; max_dim: largest in/out
 * dimension of any weight matrix. */
loki_status lk_cpu_init(lk_cpu **out, int n_threads, int max_rows, int64_t max_dim,
                        loki_error *err);
void lk_cpu_free(lk_cpu *c);
lk_pool *lk_cpu_pool(lk_cpu *c);

/* Kernel selection (tests and dev/cpu benchmarks; the default is AUTO):
 *  AUTO:      the fastest kernels this build has (AVX-512 when compiled in;
 *             in AVX2 builds the AVX2 matrix-vector kernels and integer
 *             GEMM for the quantized types, the portable f32 GEMM else);
 *  SCALAR:    portable C everywhere (what a build without AVX2/AVX-512 runs), with
 *             GEMMs as dequantized tiles of W through cblas_sgemm;
 *  BLAS_GEMM: SIMD matrix-vector kernels, but GEMMs through cblas_sgemm. */
typedef enum lk_cpu_kernels {
    LK_CPU_KERNELS_AUTO = 0,
    LK_CPU_KERNELS_SCALAR = 1,
    LK_CPU_KERNELS_BLAS_GEMM = 2,
} lk_cpu_kernels;
void lk_cpu_set_kernels(lk_cpu *c, lk_cpu_kernels k);

/* y (n, out) = x (n, in) · Wᵀ, W an (out, in) matrix (ne[0]=in, ne[1]=out) of
 * any supported dtype. Small n (decode, <= 16 rows) takes matrix-vector
 * kernels; larger n a GEMM. For q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k and
 * q6_k W the matrix-vector path quantizes x to
 * int8 blocks (llama.cpp's scheme, error bound in matmul.c). */
void lk_cpu_matmul(lk_cpu *c, float *y, const float *x, const lk_tensor *w, int n);

/* y (n, dim) = x / rms(x) * weight, weight (dim) of any dtype. y may equal x. */
void lk_cpu_rmsnorm(lk_cpu *c, float *y, const float *x, const lk_tensor *weight,
                    int n, int dim, float eps);

/* In-place RoPE on x (n, n_heads, head_dim) at positions pos[n], following
 * hp's style, rope_dim, theta and scaling. */
void lk_cpu_rope(lk_cpu *c, float *x, int n, int n_heads, const int32_t *pos,
                 const lk_hparams *hp);

/* inv_freq (hp->rope_dim/2): the angle per position of each rotated pair,
 * exactly as lk_cpu_rope uses it (theta, linear / llama3 scaling, then
 * rope_freq_factors): pair i of a token at position p is rotated by
 * (float)p * inv_freq[i]. For backends that rotate elsewhere (the GPU). */
void lk_rope_inv_freq(const lk_hparams *hp, float *inv_freq);

/* gate (n, n_ff) = silu(gate) * up, in place. */
void lk_cpu_swiglu(lk_cpu *c, float *gate, const float *up, int n, int n_ff);

/* gate (n, n_ff) = gelu_tanh(gate) * up, in place (Gemma's GeGLU). */
void lk_cpu_geglu(lk_cpu *c, float *gate, const float *up, int n, int n_ff);

/* x (n, dim) += bias (dim) of any dtype. */
void lk_cpu_add_bias(float *x, const lk_tensor *bias, int n, int dim);

/* Row of an embedding table (any dtype) converted to float32: out (dim). */
void lk_cpu_get_row(float *out, const lk_tensor *table, int64_t row);

#endif /* LK_CPU_H */
