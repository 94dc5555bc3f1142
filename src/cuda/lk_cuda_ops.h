/*
 * lk_cuda_ops.h - the elementwise and small ops of a transformer block on the
 * GPU (src/cuda/ops.cu): rmsnorm, RoPE, the gated activations, residual and
 * bias adds, scaling, soft-capping, embedding rows and argmax. Each has its
 * CPU twin (src/cpu/ops.c, core/tensor.h's lk_row_to_f32, the forward pass's
 * inline loops) and is tested against it (tests/test_cuda_ops.c).
 *
 * All pointers are device pointers. Every call only enqueues work on the
 * context's stream and returns: kernel faults surface at the next
 * lk_cuda_sync. Bad sizes are LOKI_ERR_ARG with a message naming the op and
 * the value, checked before anything is launched; launch failures are
 * reported with the CUDA call, file and line. n = 0 rows (or elements) is
 * valid and launches nothing. Built without CUDA, every function returns
 * LOKI_ERR_UNSUPPORTED (src/cuda/stub_ops.c).
 */
#ifndef LK_CUDA_OPS_H
#define LK_CUDA_OPS_H

#include "loki.h"
#include "core/tensor.h"
#include "cuda/lk_cuda.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y (n, dim) = x / sqrt(mean(x^2) + eps) * w; x, y (n, dim) f32, w (dim) f32.
 * y may equal x. Also used with n*heads rows of head_dim for QK-norm.
 * n >= 0, dim >= 1. The sum of squares is accumulated in f32 in another
 * order than the CPU's (see ops.cu), so results differ by a few ulps. */
loki_status lk_cuda_rmsnorm(lk_cuda *cu, float *y, const float *x, const float *w, int64_t n, int dim, float eps,
                            loki_error *err);

/* In-place RoPE of x (n, n_heads, head_dim) f32 at positions pos (n) int32:
 * pair p < rope_dim/2 rotated by the angle (float)pos * inv_freq[p], with
 * inv_freq (rope_dim/2) f32 from lk_rope_inv_freq (cpu/cpu.h); neox != 0:
 * pairs (p, p + rope_dim/2), else (2p, 2p+1); dims >= rope_dim untouched.
 * rope_dim even, 2 <= rope_dim <= head_dim; n, n_heads >= 0. */
loki_status lk_cuda_rope(lk_cuda *cu, float *x, int n, int n_heads, int head_dim, const int32_t *pos,
                         const float *inv_freq, int rope_dim, int neox, loki_error *err);

/* gate (n) = act(gate) * up, f32: act 0 = silu (g / (1 + exp(-g))), 1 =
 * gelu with the tanh approximation (as lk_cpu_geglu). */
loki_status lk_cuda_glu(lk_cuda *cu, float *gate, const float *up, int64_t n, int act, loki_error *err);

/* x (n) += y (n), f32. */
loki_status lk_cuda_add(lk_cuda *cu, float *x, const float *y, int64_t n, loki_error *err);

/* x (n, dim) += b (dim), f32. */
loki_status lk_cuda_add_bias(lk_cuda *cu, float *x, const float *b, int n, int dim, loki_error *err);

/* x (n) *= s, f32. */
loki_status lk_cuda_scale(lk_cuda *cu, float *x, float s, int64_t n, loki_error *err);

/* x (n) = c * tanh(x / c), f32; c > 0 and finite. */
loki_status lk_cuda_softcap(lk_cuda *cu, float *x, float c, int64_t n, loki_error *err);

/* out (n, dim) f32 = rows rows[i] (n, int32) of table (n_rows, dim) in dtype
 * dt with GGUF's row layout (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
 * q2_k, q3_k, q4_k, q5_k, q6_k; dim a multiple of dt's block), each value
 * bit-identical to lk_row_to_f32. A row index outside [0, n_rows) writes a
 * row of zeros (the caller validates tokens on the host). table must be at
 * least 2-byte aligned (4-byte for f32), as cudaMalloc'd memory is. */
loki_status lk_cuda_get_rows(lk_cuda *cu, float *out, lk_dtype dt, const void *table, int64_t n_rows, int64_t dim,
                             const int32_t *rows, int n, loki_error *err);

/* idx (n) int32 = the argmax of each row of x (n, dim) f32: the largest
 * value, ties to the lowest index; NaN never wins (+inf and -inf compare as
 * usual); a row with only NaN gives 0. dim in [1, 2^31). */
loki_status lk_cuda_argmax(lk_cuda *cu, int32_t *idx, const float *x, int n, int64_t dim, loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
