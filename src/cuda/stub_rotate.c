/* stub_rotate.c - lk_cuda_rotate.h in a build without CUDA. */
#include "cuda/lk_cuda_rotate.h"
#include "core/common.h"

loki_status lk_cuda_rotate_heads(lk_cuda *cu, float *x, int n, int n_heads, int n_kv, int D, const float *rot,
                                 loki_error *err) {
    (void)cu, (void)x, (void)n, (void)n_heads, (void)n_kv, (void)D, (void)rot;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "this loki was built without the CUDA backend (nvcc not found at build time; rebuild with -DLOKI_CUDA=ON)");
}
