/*
 * stub_mm.c - the GPU matrix products (cuda/lk_cuda_mm.h) in a build without
 * CUDA: every call that could do GPU work fails with LOKI_ERR_UNSUPPORTED
 * and says why; lk_cuda_mm_supports says no dtype is supported.
 */
#include "cuda/lk_cuda_mm.h"
#include "core/common.h"

#define NO_CUDA_MM "this loki was built without the CUDA backend, so it has no GPU matrix products (nvcc not found at build time; rebuild with -DLOKI_CUDA=ON)"

loki_status lk_cuda_mm_init(lk_cuda *cu, lk_cuda_mm **out, int max_n, int64_t max_in, int64_t max_out,
                            loki_error *err) {
    (void)cu, (void)max_n, (void)max_in, (void)max_out;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_MM);
}

void lk_cuda_mm_free(lk_cuda_mm *mm) { (void)mm; }

void lk_cuda_mm_set_prefetch(lk_cuda_mm *mm, size_t bytes) { (void)mm, (void)bytes; }

bool lk_cuda_mm_supports(lk_dtype t) {
    (void)t;
    return false;
}

loki_status lk_cuda_matmul(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w, int64_t in,
                           int64_t out, int n, loki_error *err) {
    (void)mm, (void)y, (void)x, (void)dt, (void)w, (void)in, (void)out, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_MM);
}
loki_status lk_cuda_matmul_add(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w, int64_t in,
                               int64_t out, int n, loki_error *err) {
    (void)mm, (void)y, (void)x, (void)dt, (void)w, (void)in, (void)out, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_MM);
}
loki_status lk_cuda_matmul_multi(lk_cuda_mm *mm, int k, float *const *y, const int64_t *out, const float *x,
                                 lk_dtype dt, const void *w, int64_t in, int n, loki_error *err) {
    (void)mm, (void)k, (void)y, (void)out, (void)x, (void)dt, (void)w, (void)in, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_MM);
}
bool lk_cuda_matmul_glu_fits(lk_dtype dt, int n, int64_t in, const float *x) {
    (void)dt, (void)n, (void)in, (void)x;
    return false;
}
loki_status lk_cuda_matmul_glu(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *wg, const void *wu,
                               int64_t in, int64_t out, int n, int act, loki_error *err) {
    (void)mm, (void)y, (void)x, (void)dt, (void)wg, (void)wu, (void)in, (void)out, (void)n, (void)act;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_MM);
}
