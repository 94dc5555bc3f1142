/*
 * lk_cuda_calib.h - the key statistics of `loki calibrate --device cuda`,
 * accumulated on the GPU (src/cuda/calib.cu), so that the keys of a
 * calibration never leave the device; the totals come to the host once, at
 * the end (lk_cuda_calib_read, then lk_calib_import of calib/pca.h).
 *
 * The statistics are those of src/calib/calib.c, with the same meaning and
 * layout: per (basis, layer, KV head) the first key seen s (the shift), the
 * count n, Σ(k - s) and the upper triangle of Σ(k - s)(k - s)ᵀ. Shifting by
 * a key of the data keeps the covariance free of the cancellation of
 * Σkkᵀ/n - μμᵀ when |μ| is large next to the spread (calib.c's header).
 *
 * Sums: plain float64 throughout, as on the CPU. Each key component is
 * widened to double and the shift subtracted in double (the CPU's own
 * expression, so k - s is the same number on both), and every product and
 * sum is a double FMA / add. float64 needs no compensation: a sum over N
 * keys has a relative error of order N·2^-53 (about 1e-10 for 10^6 keys),
 * far below the float32 keys' own precision, and the H200 runs FP64 at
 * half its FP32 rate, so a compensated float32 scheme would save nothing
 * worth its complexity. GPU and CPU totals differ only in the order of the
 * sums (tests/test_cuda_calib.c states the bound).
 *
 * Shapes: B = LK_PCA_N_BASIS (2: pre and post RoPE), L = n_layer,
 * Hkv = n_head_kv, D = head_dim. Keys k (n, Hkv, D) f32 on the device, as
 * the forward pass holds them. Adds are enqueued on the context's stream
 * and return at once (no host synchronisation; kernel faults surface at
 * the next synchronising call, e.g. lk_cuda_calib_read or lk_cuda_sync);
 * the counts are kept on the host, which knows each add's n without seeing
 * any key. A NaN or Inf key sets a per-(basis, layer) device flag that
 * read reports (the CPU's `nonfinite`: lk_calib_finish then fails).
 * Built without CUDA, every function that can fail returns
 * LOKI_ERR_UNSUPPORTED (src/cuda/stub_calib.c).
 */
#ifndef LK_CUDA_CALIB_H
#define LK_CUDA_CALIB_H

#include "loki.h"
#include "cuda/lk_cuda.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_cuda_calib lk_cuda_calib;

/* An empty accumulator for (2, L, Hkv) heads of D dims on cu's device
 * (borrowed: must outlive the accumulator): 16·L·Hkv·D·(D + 2) bytes of
 * device memory (268 MiB for L = Hkv = 32, D = 128). L >= 1, 1 <= Hkv <=
 * 65535, D a multiple of 8 in [8, 256] (LOKI_ERR_ARG otherwise). */
loki_status lk_cuda_calib_init(lk_cuda *cu, lk_cuda_calib **out, int32_t n_layer, int32_t n_head_kv,
                               int32_t head_dim, loki_error *err);
void lk_cuda_calib_free(lk_cuda_calib *acc);

/* Enqueue the accumulation of n keys k (n, Hkv, D) f32 (device) of `layer`
 * into basis b (0 pre RoPE, 1 post): the first add of a (basis, layer)
 * takes each head's row 0 as its shift. k must stay unchanged until the
 * work is done (stream order: any later kernel on the context's stream may
 * overwrite it). Any n >= 1 (n = 0 does nothing); LOKI_ERR_ARG for a bad
 * basis, layer or n < 0. */
loki_status lk_cuda_calib_add(lk_cuda_calib *acc, int basis, int layer, const float *k, int32_t n,
                              loki_error *err);

/* Keys added to (basis, layer) since init or the last reset (host count). */
int64_t lk_cuda_calib_count(const lk_cuda_calib *acc, int basis, int layer);

/* Wait for the adds enqueued so far and download the totals of (basis,
 * layer) into host buffers: *count, shift (Hkv, D), sum (Hkv, D) = Σ(k -
 * shift), sumsq (Hkv, D, D) row-major with the upper triangle (i <= j) =
 * Σ(k - shift)(k - shift)ᵀ and the strict lower triangle 0 (calib.c's
 * layout), *nonfinite = a NaN or Inf key was added. With no keys: count 0
 * and all zeros. A kernel fault of an earlier add surfaces here. */
loki_status lk_cuda_calib_read(lk_cuda_calib *acc, int basis, int layer, int64_t *count, double *shift, double *sum,
                               double *sumsq, bool *nonfinite, loki_error *err);

/* Forget every total (enqueued: adds after it start afresh with a new shift). */
loki_status lk_cuda_calib_reset(lk_cuda_calib *acc, loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
