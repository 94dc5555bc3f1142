/*
 * stub_calib.c - the GPU calibration accumulator of cuda/lk_cuda_calib.h in
 * a build without CUDA (nvcc not found, or -DLOKI_CUDA=OFF): every call that
 * could do GPU work fails with LOKI_ERR_UNSUPPORTED and says why (no
 * accumulator can exist, since lk_cuda_init never succeeds in such a build).
 */
#include "cuda/lk_cuda_calib.h"
#include "core/common.h"

#define NO_CUDA_CALIB "%s: this loki was built without the CUDA backend (nvcc not found at build time; rebuild with -DLOKI_CUDA=ON)"

loki_status lk_cuda_calib_init(lk_cuda *cu, lk_cuda_calib **out, int32_t n_layer, int32_t n_head_kv,
                               int32_t head_dim, loki_error *err) {
    (void)cu, (void)n_layer, (void)n_head_kv, (void)head_dim;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_CALIB, "lk_cuda_calib_init");
}

void lk_cuda_calib_free(lk_cuda_calib *acc) { (void)acc; }

loki_status lk_cuda_calib_add(lk_cuda_calib *acc, int basis, int layer, const float *k, int32_t n,
                              loki_error *err) {
    (void)acc, (void)basis, (void)layer, (void)k, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_CALIB, "lk_cuda_calib_add");
}

int64_t lk_cuda_calib_count(const lk_cuda_calib *acc, int basis, int layer) {
    (void)acc, (void)basis, (void)layer;
    return 0;
}

loki_status lk_cuda_calib_read(lk_cuda_calib *acc, int basis, int layer, int64_t *count, double *shift, double *sum,
                               double *sumsq, bool *nonfinite, loki_error *err) {
    (void)acc, (void)basis, (void)layer, (void)shift, (void)sum, (void)sumsq;
    *count = 0;
    *nonfinite = false;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_CALIB, "lk_cuda_calib_read");
}

loki_status lk_cuda_calib_reset(lk_cuda_calib *acc, loki_error *err) {
    (void)acc;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_CALIB, "lk_cuda_calib_reset");
}
