/*
 * backend_cpu.c - the CPU backend of the forward pass: each op of
 * backend.h is a call into src/cpu/ (thread pool, SIMD kernels) or
 * src/attn/ (KV cache, attention methods). Buffers are host memory; there
 * is nothing asynchronous, so no op can leave an error behind.
 */
#include "engine/backend.h"

#include "attn/attn.h"
#include "calib/pca.h"
#include "cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct be_cpu {
    lk_backend base;
    const loki_model *m;
    lk_cpu *cpu;
    lk_kv_cache *kv;
    lk_attn *const *attn;        /* the context's current method */
    lk_calib *const *calib;      /* the context's collector, or *calib == NULL */
    const int32_t *tokens, *pos; /* this pass's (n), host, owned by the caller */
} be_cpu;

static be_cpu *cpu_of(lk_backend *be) { return (be_cpu *)be; }

static float *cpu_alloc(lk_backend *be, size_t floats, const char *what, loki_error *err) {
    (void)be;
    float *p = lk_alloc_aligned(floats * sizeof(float), err);
    if (!p) lk_fail_prefix(err, "%s", what);
    return p;
}

static void cpu_free(lk_backend *be, float *p) {
    (void)be;
    lk_free_aligned(p);
}

static loki_status cpu_begin(lk_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n,
                             loki_error *err) {
    for (int i = 0; i < n; i++) /* the CPU context holds one sequence (loki_context_init refuses more) */
        if (seq[i] != 0) return lk_fail(err, LOKI_ERR_UNSUPPORTED, "the CPU backend holds one sequence");
    cpu_of(be)->tokens = tokens;
    cpu_of(be)->pos = pos;
    return LOKI_OK;
}

/* The cache is rewritten from position 0 by the next pass: nothing to free. */
static void cpu_release_seq(lk_backend *be, int32_t seq) { (void)be, (void)seq; }

static void cpu_embed(lk_backend *be, float *x, const lk_tensor *table, int n, float scale) {
    const be_cpu *b = cpu_of(be);
    const int64_t E = table->ne[0];
    for (int i = 0; i < n; i++) lk_cpu_get_row(x + (size_t)i * E, table, b->tokens[i]);
    if (scale > 0.0f)
        for (size_t i = 0; i < (size_t)n * E; i++) x[i] *= scale;
}

static void cpu_rmsnorm(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n, int dim, float eps) {
    lk_cpu_rmsnorm(cpu_of(be)->cpu, y, x, w, n, dim, eps);
}

static void cpu_matmul(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n) {
    lk_cpu_matmul(cpu_of(be)->cpu, y, x, w, n);
}

static void cpu_matmul_multi(lk_backend *be, int k, float *const *y, const float *x, const lk_tensor *const *w,
                             int n) {
    for (int j = 0; j < k; j++) cpu_matmul(be, y[j], x, w[j], n);
}

static void cpu_add_bias(lk_backend *be, float *x, const lk_tensor *b, int n, int dim) {
    (void)be;
    lk_cpu_add_bias(x, b, n, dim);
}

static void cpu_rope(lk_backend *be, float *x, int n, int n_heads, int layer) {
    const be_cpu *b = cpu_of(be);
    lk_hparams local;
    lk_cpu_rope(b->cpu, x, n, n_heads, b->pos, lk_layer_rope(&b->m->hp, layer, &local));
}

static void cpu_glu(lk_backend *be, float *gate, const float *up, int n, int n_ff, lk_ffn_act act) {
    if (act == LK_ACT_GELU_TANH) lk_cpu_geglu(cpu_of(be)->cpu, gate, up, n, n_ff);
    else lk_cpu_swiglu(cpu_of(be)->cpu, gate, up, n, n_ff);
}

static void cpu_add(lk_backend *be, float *x, const float *y, size_t count) {
    (void)be;
    for (size_t i = 0; i < count; i++) x[i] += y[i];
}

static void cpu_softcap(lk_backend *be, float *x, float c, size_t count) {
    (void)be;
    for (size_t i = 0; i < count; i++) x[i] = c * tanhf(x[i] / c);
}

static void cpu_calib_keys(lk_backend *be, int basis, int layer, const float *k, int n) {
    lk_calib *c = *cpu_of(be)->calib;
    if (c) lk_calib_add_keys(c, basis, layer, k, n);
}

/* The keys went into the collector as they came: nothing is pending. */
static loki_status cpu_calib_flush(lk_backend *be, loki_error *err) {
    (void)be, (void)err;
    return LOKI_OK;
}

static void cpu_attention(lk_backend *be, int layer, float *q, float *k, const float *v, float *out, int n,
                          int32_t pos0) {
    const be_cpu *b = cpu_of(be);
    const lk_hparams *hp = &b->m->hp;
    lk_attn *a = *b->attn;
    lk_attn_rotate(a, layer, q, n, hp->n_head); /* into the PCA basis (loki, pcaattn) */
    lk_attn_rotate(a, layer, k, n, hp->n_head_kv);
    lk_kv_store(b->kv, layer, pos0, k, v, n);
    lk_attn_run(a, lk_cpu_pool(b->cpu), b->kv, layer, q, out, n, pos0);
}

static float *cpu_out_buffer(lk_backend *be, float *host, size_t floats, loki_error *err) {
    (void)be, (void)floats, (void)err;
    return host;
}

static loki_status cpu_sync_read(lk_backend *be, float *dst, const float *src, size_t floats, loki_error *err) {
    (void)be, (void)err;
    if (dst != src) memcpy(dst, src, floats * sizeof(float));
    return LOKI_OK;
}

static void cpu_destroy(lk_backend *be) { free(be); }

static const lk_backend_ops k_cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .begin = cpu_begin,
    .release_seq = cpu_release_seq,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .matmul_add = NULL, /* lk_be_matmul_res: matmul, then add */
    .matmul_multi = cpu_matmul_multi,
    .add_bias = cpu_add_bias,
    .rope = cpu_rope,
    .glu = cpu_glu,
    .add = cpu_add,
    .softcap = cpu_softcap,
    .calib_keys = cpu_calib_keys,
    .calib_flush = cpu_calib_flush,
    .attention = cpu_attention,
    .rope_attention = NULL, /* lk_be_rope_attention: rope, rope, attention */
    .out_buffer = cpu_out_buffer,
    .sync_read = cpu_sync_read,
    .destroy = cpu_destroy,
};

loki_status lk_backend_cpu_init(lk_backend **out, const loki_model *m, lk_cpu *cpu, lk_kv_cache *kv,
                                lk_attn *const *attn, lk_calib *const *calib, loki_error *err) {
    be_cpu *b = lk_calloc(1, sizeof *b, err);
    if (!b) return LOKI_ERR_NOMEM;
    b->base.ops = &k_cpu_ops;
    b->m = m;
    b->cpu = cpu;
    b->kv = kv;
    b->attn = attn;
    b->calib = calib;
    *out = &b->base;
    return LOKI_OK;
}
