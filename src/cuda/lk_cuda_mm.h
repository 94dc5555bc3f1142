/*
 * lk_cuda_mm.h - matrix products y = x · Wᵀ on the GPU for every weight dtype
 * loki reads (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k,
 * q5_k, q6_k), W on the device in its GGUF layout (exactly the file's bytes).
 *
 * Two paths, chosen by the number of rows n of x:
 *   n <= LK_CUDA_MV_MAX_N (decode): matrix-vector kernels that read W's
 *     blocks as stored (src/cuda/gemv_quant.cu). For q8_0, q4_0, q4_1, q5_0,
 *     q5_1, q4_k, q5_k and q6_k, x is first quantized per row into int8
 *     blocks of 32 exactly as the CPU's lk_q8_quantize_scalar does, and each
 *     block's dot product is an exact integer (__dp4a) scaled in f32: the
 *     same terms as the CPU's lk_mv_qdot_scalar, so the two differ only by
 *     f32 summation order. f32/f16/bf16, q2_k and q3_k keep f32 x against
 *     the weights converted / dequantized to f32 as the CPU does.
 *   n > LK_CUDA_MV_MAX_N (prompt): W dequantized to a bf16 scratch in tiles
 *     of rows (bf16 W is used in place), x rounded to bf16, one cuBLAS GEMM
 *     per tile with f32 accumulation; f16 W is used in place with x rounded
 *     to f16 (one GEMM; x must stay within f16's +-65504, as in llama.cpp's
 *     cuBLAS path; its error bound is the bf16 one's with 2^-11 for 2^-8).
 *     Accuracy (bf16): each product w_j x_j carries
 *     the bf16 rounding of both factors, |error| <= (2^-8 + 2^-18) |w_j x_j|,
 *     plus f32 accumulation: |y - W~·x| <= ~2^-8 · sum_j |w~_j x_j| (W~ the
 *     dequantized weights; the rounding errors are random, the typical error
 *     is far below the bound).
 * Nothing exits or prints; errors are loki_status with a message in err.
 */
#ifndef LK_CUDA_MM_H
#define LK_CUDA_MM_H

#include "loki.h"
#include "core/tensor.h"
#include "cuda/lk_cuda.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Up to this many rows of x, lk_cuda_matmul runs the matrix-vector kernels. */
#define LK_CUDA_MV_MAX_N 8

typedef struct lk_cuda_mm lk_cuda_mm;

/* Scratch for products with up to max_n rows of x, in <= max_in, out <=
 * max_out (the GEMM's dequantized weight tile, up to 64 M bf16 elements; the
 * quantized activations; the cuBLAS handle and workspace). cu is borrowed and
 * must outlive *out. Errors name the sizes. */
loki_status lk_cuda_mm_init(lk_cuda *cu, lk_cuda_mm **out, int max_n, int64_t max_in, int64_t max_out,
                            loki_error *err);
void lk_cuda_mm_free(lk_cuda_mm *mm);

/* Bytes of W each one-row matrix-vector product (n = 1: every float and
 * quantized kernel, and the fused gate|up product) asks L2 for before it
 * waits on the kernel before it (programmatic dependent launch; the
 * 9..16-row tensor-core products did too until session 22, which lost 0.8%
 * of a 16-sequence step in session 20): its first blocks, as many as
 * `bytes` covers, prefetch their rows (cp.async.bulk.prefetch.L2), so HBM
 * streams weights during that kernel's tail. A hint: the results are the
 * same bits for any value; 0 (lk_cuda_mm_init's) asks for nothing. Takes
 * effect at the next launch (a captured graph keeps the value it saw). */
void lk_cuda_mm_set_prefetch(lk_cuda_mm *mm, size_t bytes);

/* True for the dtypes lk_cuda_matmul accepts: f32, f16, bf16, q8_0, q4_0,
 * q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k. */
bool lk_cuda_mm_supports(lk_dtype t);

/* y (n, out) = x (n, in) · Wᵀ on the context's stream (asynchronous; errors
 * of the kernels surface at lk_cuda_sync). W (out, in) is on the device in
 * its GGUF dtype and layout, exactly the bytes of the file (row r =
 * lk_dtype_row_bytes(dt, in) bytes at r * that), its start 16-byte aligned.
 * x (n, in) and y (n, out) f32 on the device, row-major, not overlapping.
 * in a multiple of the dtype's block (32 or 256 elements; 1 for float
 * types), 1 <= n <= max_n, in <= max_in, 1 <= out <= max_out; anything else
 * is LOKI_ERR_ARG naming the problem. */
loki_status lk_cuda_matmul(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w, int64_t in,
                           int64_t out, int n, loki_error *err);

/* y (n, out) += x (n, in) · Wᵀ: lk_cuda_matmul's product added to y in the
 * same kernel (decode) or GEMM (prompt, beta = 1), one f32 rounding per
 * element, as lk_cuda_matmul into a scratch and lk_cuda_add would give.
 * Arguments as lk_cuda_matmul's. */
loki_status lk_cuda_matmul_add(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w, int64_t in,
                               int64_t out, int n, loki_error *err);

/* Several products of one x: y[j] (n, out[j]) = x · W_jᵀ for j < k (1..3),
 * where the W_j (dtype dt, in columns each) lie back to back on the device
 * from w: W_0's out[0] rows, then W_1's, ... (q/k/v, gate/up). For decode
 * (n <= LK_CUDA_MV_MAX_N) one kernel reads them all as one matrix and
 * writes each part's rows to its own y[j]; prompts run one product per part.
 * Results equal k calls of lk_cuda_matmul; arguments checked as there. */
loki_status lk_cuda_matmul_multi(lk_cuda_mm *mm, int k, float *const *y, const int64_t *out, const float *x,
                                 lk_dtype dt, const void *w, int64_t in, int n, loki_error *err);

/* The gated feed-forward product of one decode row, in one kernel:
 * y (1, out) = act(x · W_gᵀ) * (x · W_uᵀ), act 0 = silu, 1 = gelu_tanh (as
 * lk_cuda_glu). W_g and W_u (out, in) of dtype dt, each on the device as
 * lk_cuda_matmul takes W. A warp makes output j from row j of both
 * matrices, so the result equals lk_cuda_matmul of each then lk_cuda_glu
 * bit for bit, without the GLU's launch. Only where lk_cuda_matmul_glu_fits
 * (n = 1, f32/f16/bf16 W, in a multiple of 16 bytes of W, x 16-byte
 * aligned); elsewhere LOKI_ERR_UNSUPPORTED (run the separate ops). Other
 * arguments checked as lk_cuda_matmul's. */
bool lk_cuda_matmul_glu_fits(lk_dtype dt, int n, int64_t in, const float *x);
loki_status lk_cuda_matmul_glu(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *wg, const void *wu,
                               int64_t in, int64_t out, int n, int act, loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
