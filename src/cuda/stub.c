/*
 * stub.c - the CUDA backend's interface in a build without CUDA (nvcc was
 * not found, or -DLOKI_CUDA=OFF): every call that could do GPU work fails
 * with LOKI_ERR_UNSUPPORTED and says why, so `--device cuda` gives a clear
 * error instead of a link failure or a crash.
 */
#include "cuda/lk_cuda.h"
#include "core/common.h"

#include <string.h>

#define NO_CUDA "this loki was built without the CUDA backend (nvcc not found at build time; rebuild with -DLOKI_CUDA=ON)"

bool lk_cuda_built(void) { return false; }
bool lk_cuda_usable(void) { return false; }

loki_status lk_cuda_init(lk_cuda **out, int device, loki_error *err) {
    (void)device;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_cuda_free(lk_cuda *cu) { (void)cu; }
const char *lk_cuda_describe(const lk_cuda *cu) { (void)cu; return "no CUDA"; }
int lk_cuda_sm_count(const lk_cuda *cu) { (void)cu; return 0; }

loki_status lk_cuda_alloc(lk_cuda *cu, void **p, size_t bytes, const char *what, loki_error *err) {
    (void)cu, (void)bytes, (void)what;
    *p = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_cuda_dealloc(lk_cuda *cu, void *p) { (void)cu, (void)p; }
loki_status lk_cuda_upload(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    (void)cu, (void)dst, (void)src, (void)bytes;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_cuda_download(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    (void)cu, (void)dst, (void)src, (void)bytes;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_cuda_host_alloc(lk_cuda *cu, void **p, size_t bytes, const char *what, loki_error *err) {
    (void)cu, (void)bytes, (void)what;
    *p = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_cuda_host_free(lk_cuda *cu, void *p) { (void)cu, (void)p; }
loki_status lk_cuda_upload_async(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    return lk_cuda_upload(cu, dst, src, bytes, err);
}
loki_status lk_cuda_download_async(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    return lk_cuda_download(cu, dst, src, bytes, err);
}
loki_status lk_cuda_sync(lk_cuda *cu, loki_error *err) {
    (void)cu;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}

loki_status lk_cuda_spin(lk_cuda *cu, int us, loki_error *err) {
    (void)cu, (void)us;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}

loki_status lk_gpu_kv_init(lk_cuda *cu, lk_gpu_kv **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                           const int32_t *d, int32_t n_pages, int32_t max_seqs, int32_t max_pages_per_seq,
                           loki_error *err) {
    (void)cu, (void)n_layer, (void)n_head_kv, (void)head_dim, (void)d, (void)n_pages, (void)max_seqs,
        (void)max_pages_per_seq;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_gpu_kv_free(lk_gpu_kv *kv) { (void)kv; }
loki_status lk_gpu_kv_reserve(lk_gpu_kv *kv, int32_t seq, int32_t n_tokens, loki_error *err) {
    (void)kv, (void)seq, (void)n_tokens;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_gpu_kv_release(lk_gpu_kv *kv, int32_t seq) { (void)kv, (void)seq; }
loki_status lk_gpu_kv_set_len_host(lk_gpu_kv *kv, int32_t seq, int32_t len, loki_error *err) {
    (void)kv, (void)seq, (void)len;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_gpu_attn_set_bucketed(lk_gpu_attn *a, bool on) { (void)a, (void)on; }
uint64_t lk_gpu_attn_step_key(const lk_gpu_attn *a, int32_t seq0, int32_t B) { (void)a, (void)seq0, (void)B; return 0; }
loki_status lk_gpu_attn_decode_seqs(lk_gpu_attn *a, int layer, int32_t seq0, int32_t B, const float *q, float *out,
                                    loki_error *err) {
    (void)a, (void)layer, (void)seq0, (void)B, (void)q, (void)out;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_kv_set_len(lk_gpu_kv *kv, int32_t seq, int32_t len, loki_error *err) {
    (void)kv, (void)seq, (void)len;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_gpu_kv_slots(const lk_gpu_kv *kv, int32_t seq, int32_t pos0, int32_t n, int32_t *slots) {
    (void)kv, (void)seq, (void)pos0, (void)n, (void)slots;
}
loki_status lk_gpu_kv_store(lk_gpu_kv *kv, int layer, int32_t n, const float *k, const float *v,
                            const int32_t *slots, const float *rot, loki_error *err) {
    (void)kv, (void)layer, (void)n, (void)k, (void)v, (void)slots, (void)rot;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_kv_rope_store(lk_gpu_kv *kv, int layer, int32_t n, int n_head, const float *q, float *q_out,
                                 const float *k, const float *v, const int32_t *slots, const int32_t *pos,
                                 const float *inv_freq, int rope_dim, int neox, const float *rot, float q_scale,
                                 loki_error *err) {
    (void)kv, (void)layer, (void)n, (void)n_head, (void)q, (void)q_out, (void)k, (void)v, (void)slots, (void)pos;
    (void)inv_freq, (void)rope_dim, (void)neox, (void)rot, (void)q_scale;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
bool lk_gpu_kv_rope_store_fits(int n_head, int n_head_kv, int head_dim, int rope_dim, bool rot) {
    (void)n_head, (void)n_head_kv, (void)head_dim, (void)rope_dim, (void)rot;
    return false;
}
loki_status lk_gpu_kv_read(lk_gpu_kv *kv, int layer, int32_t seq, int kh, int32_t pos0, int32_t n, float *k,
                           float *v, loki_error *err) {
    (void)kv, (void)layer, (void)seq, (void)kh, (void)pos0, (void)n, (void)k, (void)v;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}

loki_status lk_gpu_attn_init(lk_gpu_attn **out, lk_gpu_kv *kv, int32_t n_head, int32_t max_batch,
                             const loki_attn_params *p, loki_error *err) {
    (void)kv, (void)n_head, (void)max_batch, (void)p;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_gpu_attn_free(lk_gpu_attn *a) { (void)a; }
loki_status lk_gpu_attn_reset(lk_gpu_attn *a, loki_error *err) {
    (void)a;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_attn_reset_seq(lk_gpu_attn *a, int32_t seq, loki_error *err) {
    (void)a, (void)seq;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_attn_decode(lk_gpu_attn *a, int layer, int32_t B, const float *q, float *out, loki_error *err) {
    (void)a, (void)layer, (void)B, (void)q, (void)out;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_attn_prompt(lk_gpu_attn *a, int layer, int32_t seq, int32_t pos0, int32_t n, const float *q,
                               float *out, loki_error *err) {
    (void)a, (void)layer, (void)seq, (void)pos0, (void)n, (void)q, (void)out;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_gpu_attn_set_k_fixed(lk_gpu_attn *a, int32_t k) { (void)a, (void)k; }
void lk_gpu_attn_set_timing(lk_gpu_attn *a, bool on) { (void)a, (void)on; }
void lk_gpu_attn_set_splits(lk_gpu_attn *a, int n_split) { (void)a, (void)n_split; }
void lk_gpu_attn_set_pdl(lk_gpu_attn *a, bool on) { (void)a, (void)on; }
void lk_gpu_attn_set_fused(lk_gpu_attn *a, loki_cuda_fused mode) { (void)a, (void)mode; }
void lk_gpu_attn_set_fused_blocks(lk_gpu_attn *a, int blocks) { (void)a, (void)blocks; }
int lk_gpu_attn_splits(const lk_gpu_attn *a) { (void)a; return 0; }
loki_status lk_gpu_attn_fused_phases(lk_gpu_attn *a, lk_fused_phases *ph, loki_error *err) {
    (void)a;
    memset(ph, 0, sizeof *ph);
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_attn_stage_ms(lk_gpu_attn *a, float ms[3], loki_error *err) {
    (void)a, (void)ms;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_attn_selection(lk_gpu_attn *a, int32_t b, int32_t h, int32_t *pos, int32_t *n,
                                  loki_error *err) {
    (void)a, (void)b, (void)h, (void)pos, (void)n;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}

loki_status lk_cuda_capture_begin(lk_cuda *cu, loki_error *err) {
    (void)cu;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_cuda_capture_end(lk_cuda *cu, lk_cuda_graph **g, loki_error *err) {
    (void)cu;
    *g = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_cuda_graph_run(lk_cuda *cu, lk_cuda_graph *g, int times, float *ms, loki_error *err) {
    (void)cu, (void)g, (void)times, (void)ms;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_cuda_graph_free(lk_cuda_graph *g) { (void)g; }
loki_status lk_cuda_capture_end_update(lk_cuda *cu, lk_cuda_graph **g, loki_error *err) {
    (void)cu;
    *g = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_cuda_capture_abort(lk_cuda *cu) { (void)cu; }
loki_status lk_cuda_graph_launch(lk_cuda *cu, lk_cuda_graph *g, loki_error *err) {
    (void)cu, (void)g;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_cuda_read_bw(lk_cuda *cu, size_t bytes, int reps, double *gbs, loki_error *err) {
    (void)cu, (void)bytes, (void)reps, (void)gbs;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_gpu_kv_fill_synthetic(lk_gpu_kv *kv, int layer, int32_t seq, int32_t n, const float *sigma,
                                     uint64_t seed, loki_error *err) {
    (void)kv, (void)layer, (void)seq, (void)n, (void)sigma, (void)seed;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}

loki_status lk_cuda_timeline_init(lk_cuda *cu, int cap, lk_cuda_timeline **out, loki_error *err) {
    (void)cu, (void)cap;
    *out = NULL;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
void lk_cuda_timeline_free(lk_cuda_timeline *t) { (void)t; }
loki_status lk_cuda_timeline_mark(lk_cuda_timeline *t, int tag, loki_error *err) {
    (void)t, (void)tag;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
loki_status lk_cuda_timeline_sum(lk_cuda_timeline *t, double *ms, int n_tags, loki_error *err) {
    (void)t, (void)ms, (void)n_tags;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, NO_CUDA);
}
