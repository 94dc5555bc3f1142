/*
 * stub_prefill.c - prompt attention (lk_cuda_prefill.h) in a build without
 * CUDA: a clear LOKI_ERR_UNSUPPORTED instead of a link failure.
 */
#include "cuda/lk_cuda_prefill.h"
#include "core/common.h"

/* Always LOKI_ERR_UNSUPPORTED: this build has no CUDA backend. */
loki_status lk_gpu_attn_prefill(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos0, int32_t n, int32_t n_head,
                                const float *q, float *out, float scale, int32_t window, loki_error *err) {
    (void)kv, (void)layer, (void)seq, (void)pos0, (void)n, (void)n_head, (void)q, (void)out, (void)scale,
        (void)window;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                   "GPU prompt attention: this loki was built without the CUDA backend (nvcc not found at build "
                   "time; rebuild with -DLOKI_CUDA=ON)");
}

/* Always LOKI_ERR_UNSUPPORTED: this build has no CUDA backend. */
loki_status lk_gpu_attn_decode_window(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos, const int32_t *pos_dev,
                                      int32_t n_head, const float *q, float *out, float scale, int32_t window,
                                      loki_error *err) {
    (void)pos_dev;
    return lk_gpu_attn_prefill(kv, layer, seq, pos, 1, n_head, q, out, scale, window, err);
}
