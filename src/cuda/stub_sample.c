/*
 * stub_sample.c - GPU sampling (cuda/lk_cuda_sample.h) in a build without
 * CUDA (nvcc not found, or -DLOKI_CUDA=OFF): every call that could do GPU
 * work fails with LOKI_ERR_UNSUPPORTED and says why (no sampler can exist,
 * since lk_cuda_init never succeeds in such a build).
 */
#include "cuda/lk_cuda_sample.h"
#include "core/common.h"

#define NO_CUDA_SAMPLE "%s: this loki was built without the CUDA backend (nvcc not found at build time; rebuild with -DLOKI_CUDA=ON)"

loki_status lk_cuda_sampler_init(lk_cuda *cu, const loki_sampler_params *params, int32_t n_vocab, int32_t max_rows,
                                 lk_cuda_sampler **out, loki_error *err) {
    (void)cu, (void)params, (void)n_vocab, (void)max_rows;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sampler_init");
}

void lk_cuda_sampler_free(lk_cuda_sampler *s) { (void)s; }

const char *lk_cuda_sampler_path(const lk_cuda_sampler *s) {
    (void)s;
    return "no CUDA";
}

loki_status lk_cuda_sampler_reset(lk_cuda_sampler *s, int32_t row, uint64_t seed, loki_error *err) {
    (void)s, (void)row, (void)seed;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sampler_reset");
}

loki_status lk_cuda_sampler_accept(lk_cuda_sampler *s, int32_t row, const int32_t *tokens, int32_t n,
                                   loki_error *err) {
    (void)s, (void)row, (void)tokens, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sampler_accept");
}

loki_status lk_cuda_sampler_set_stop(lk_cuda_sampler *s, const int32_t *stop, int32_t n_stop, loki_error *err) {
    (void)s, (void)stop, (void)n_stop;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sampler_set_stop");
}

loki_status lk_cuda_sample(lk_cuda_sampler *s, const float *logits_dev, int32_t row0, int32_t rows,
                           int32_t *tokens_dev, loki_error *err) {
    (void)s, (void)logits_dev, (void)row0, (void)rows, (void)tokens_dev;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sample");
}

loki_status lk_cuda_sampler_state(lk_cuda_sampler *s, int32_t row, uint64_t *rng, int32_t *hist, int32_t *hist_len,
                                  int32_t *hist_pos, loki_error *err) {
    (void)s, (void)row, (void)rng, (void)hist, (void)hist_len, (void)hist_pos;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sampler_state");
}

loki_status lk_cuda_sample_expf(lk_cuda *cu, float *y_dev, const float *x_dev, int64_t n, loki_error *err) {
    (void)cu, (void)y_dev, (void)x_dev, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA_SAMPLE, "lk_cuda_sample_expf");
}
