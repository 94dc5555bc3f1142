/*
 * backend_cuda.c - the CUDA backend of the forward pass (interim: the GPU
 * kernels of the whole model are being built; issue 9).
 */
#include "engine/backend.h"

loki_status lk_backend_cuda_init(lk_backend **out, const loki_model *m, const loki_attn_params *p, const float *pca_rot,
                                 int32_t n_ctx, int32_t n_batch, struct lk_calib *const *calib, loki_error *err) {
    (void)m, (void)p, (void)pca_rot, (void)n_ctx, (void)n_batch, (void)calib;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "--device cuda: the GPU forward pass is not in this build yet");
}
