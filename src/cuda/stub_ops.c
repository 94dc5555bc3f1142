/*
 * stub_ops.c - the GPU ops of cuda/lk_cuda_ops.h in a build without CUDA
 * (nvcc not found, or -DLOKI_CUDA=OFF): every call fails with
 * LOKI_ERR_UNSUPPORTED and says why (no GPU work can be enqueued, since
 * lk_cuda_init never succeeds in such a build).
 */
#include "cuda/lk_cuda_ops.h"
#include "core/common.h"

#define NO_CUDA_OPS "%s: this loki was built without the CUDA backend (nvcc not found at build time; rebuild with -DLOKI_CUDA=ON)"

loki_status lk_cuda_rmsnorm(lk_cuda *cu, float *y, const float *x, const float *w, int64_t n, int dim, float eps,
                            loki_error *err) {
    (void)cu, (void)y, (void)x, (void)w, (void)n, (void)dim, (void)eps;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_rmsnorm");
}

loki_status lk_cuda_rope(lk_cuda *cu, float *x, int n, int n_heads, int head_dim, const int32_t *pos,
                         const float *inv_freq, int rope_dim, int neox, loki_error *err) {
    (void)cu, (void)x, (void)n, (void)n_heads, (void)head_dim, (void)pos, (void)inv_freq, (void)rope_dim, (void)neox;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_rope");
}

loki_status lk_cuda_glu(lk_cuda *cu, float *gate, const float *up, int64_t n, int act, loki_error *err) {
    (void)cu, (void)gate, (void)up, (void)n, (void)act;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_glu");
}

loki_status lk_cuda_add(lk_cuda *cu, float *x, const float *y, int64_t n, loki_error *err) {
    (void)cu, (void)x, (void)y, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_add");
}

loki_status lk_cuda_add_bias(lk_cuda *cu, float *x, const float *b, int n, int dim, loki_error *err) {
    (void)cu, (void)x, (void)b, (void)n, (void)dim;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_add_bias");
}

loki_status lk_cuda_scale(lk_cuda *cu, float *x, float s, int64_t n, loki_error *err) {
    (void)cu, (void)x, (void)s, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_scale");
}

loki_status lk_cuda_softcap(lk_cuda *cu, float *x, float c, int64_t n, loki_error *err) {
    (void)cu, (void)x, (void)c, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_softcap");
}

loki_status lk_cuda_get_rows(lk_cuda *cu, float *out, lk_dtype dt, const void *table, int64_t n_rows, int64_t dim,
                             const int32_t *rows, int n, loki_error *err) {
    (void)cu, (void)out, (void)dt, (void)table, (void)n_rows, (void)dim, (void)rows, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_get_rows");
}

loki_status lk_cuda_argmax(lk_cuda *cu, int32_t *idx, const float *x, int n, int64_t dim, loki_error *err) {
    (void)cu, (void)idx, (void)x, (void)n, (void)dim;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_OPS, "lk_cuda_argmax");
}
