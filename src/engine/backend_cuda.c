/*
 * backend_cuda.c - the CUDA backend of the forward pass (engine/backend.h):
 * weights uploaded once in their file dtypes (quantized types stay
 * quantized: the matrix-vector kernels read their blocks), activations and
 * the paged bf16 KV cache in GPU memory, every op a kernel on the context's
 * one stream; only the logits come back, at the end of a pass.
 *
 * Attention: n = 1 on a global layer runs the decode kernels of lk_cuda.h
 * (the method of the context: dense, or loki etc. on the split cache); a
 * prompt (n > 1) runs the causal flash attention of lk_cuda_prefill.h when
 * the method is dense or dense_prompt is set; with any other method the prompt's rows go through
 * the decode stages as batches of rows over the one sequence
 * (lk_gpu_attn_prompt), each row selecting what a decode step at its length
 * selects (with k_fixed: the paper's prefill-mask evaluation), as the CPU's
 * prompt blocks do. Sliding-window layers always run the flash attention
 * inside their window (dense, as on the CPU).
 *
 * Sequences: the cache holds n_seq sequences. A pass is one sequence's
 * tokens, or a decode batch (row i = the next token of sequence seq0 + i),
 * whose attention is one lk_gpu_attn_decode_seqs over the batch.
 *
 * Graphs: a decode pass (one token per sequence), not calibrating, is
 * captured as a CUDA graph the second time a step with the same key comes
 * (lk_gpu_attn_step_key: the batch and the buckets of its lengths; the
 * attention runs bucketed, so equal keys launch identical kernels; the
 * sliding-window layers' attention reads each row's position on the device,
 * lk_gpu_attn_decode_window, so one launch serves every position), and
 * replayed while the key holds:
 * then the ops only return, and sync_read launches the graph. A new key
 * re-captures and updates the executable graph in place. The pass's inputs
 * (tokens, positions, cache slots, sequence lengths) go up in two copies
 * from page-locked staging that the graph's copy nodes read when it runs,
 * so a step has no host synchronisation before the logits come back.
 *
 * Errors: the first failing op's status and message are kept (sticky) and
 * returned by sync_read at the end of the pass; later ops do nothing.
 */
#include "engine/backend.h"

#include "attn/attn.h"
#include "calib/pca.h"
#include "cpu/cpu.h"
#include "cuda/lk_cuda.h"
#include "cuda/lk_cuda_calib.h"
#include "cuda/lk_cuda_mm.h"
#include "cuda/lk_cuda_ops.h"
#include "cuda/lk_cuda_prefill.h"
#include "cuda/lk_cuda_rotate.h"
#include "cuda/lk_cuda_sample.h"
#include "engine/cuda_weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct be_cuda {
    lk_backend base;
    const loki_model *m;
    lk_cuda *cu;
    lk_cuda_mm *mm;
    lk_gpu_kv *kv;
    lk_gpu_attn *attn;              /* decode attention of the global layers */
    loki_attn_method method;        /* its method (prompts of any other than dense run through it) */
    int32_t k_fixed;                /* its k_fixed now (lk_backend_cuda_set_k_fixed) */
    bool dense_prompt;              /* prompts attend densely (flash attention over the split cache) */
    float *rot;                     /* (L, Hkv, D, D) PCA rotations, or NULL (no PCA method) */
    lk_calib *const *calib;         /* the context's collector (NULL when not calibrating) */
    lk_cuda_weights *w;             /* the model's tensors in GPU memory (engine/cuda_weights.h) */
    int32_t *h_in;                  /* (3, n_batch) tokens | positions | cache slots, page-locked */
    int32_t *d_in;                  /* its device copy, one upload per pass */
    int32_t *d_tokens, *d_pos, *d_slots; /* (n_batch) views of d_in */
    int32_t *h_len;                 /* (n_seq) page-locked copy of the cache's lengths, uploaded to kv->seq_len */
    bool graphs;                    /* decode steps are captured and replayed */
    enum { RUN_EAGER, RUN_CAPTURE, RUN_REPLAY } mode; /* of this pass */
    int64_t n_replays;              /* passes that replayed a captured graph (lk_backend_cuda_replays) */
    lk_cuda_graph *graph;           /* the last captured decode step, or NULL */
    uint64_t graph_key, last_key;   /* its step key, and the key of the last decode pass */
    int32_t graph_seq0, last_seq0;  /* their first sequences */
    float *inv_freq[2];             /* (rope_dim/2) global / local layers' RoPE, device */
    bool fuse_rope;                 /* decode steps run RoPE, rotation and store as one kernel */
    float *q_rot;                   /* (max(n_seq, 1), H, D) its q out (the attention's input) */
    float *logits;                  /* device (logits_cap) */
    size_t logits_cap;
    lk_cuda_calib *calib_acc;       /* key statistics on the device (the first calib_keys creates it) */
    lk_cuda_sampler *smp;           /* sync_sample's sampler, a row per sequence (lk_backend_cuda_sampler_init) */
    int32_t *d_sampled;             /* (n_seq) its tokens, device */
    int32_t n_batch, n_seq;
    int32_t seq0, pos0, n, batch;   /* this pass: first sequence and position, rows, and for a decode
                                       batch its size (rows = sequences seq0..), else 0 */
    lk_cuda_timeline *prof;         /* not NULL: eager passes mark the end of every op (profiling) */
    double prof_ms[LK_PROF_N];      /* summed per category over the profiled passes */
    loki_status st;                 /* first failure of the pass */
    loki_error err;
} be_cuda;

static be_cuda *cu_of(lk_backend *be) { return (be_cuda *)be; }

/* Record the first failure (the op's status and message). */
static void keep(be_cuda *b, loki_status st, const loki_error *e) {
    if (st && !b->st) {
        b->st = st;
        b->err = *e;
    }
}

/* The device copy of a model tensor (NULL when it was not uploaded). */
static void *dev_of(const be_cuda *b, const lk_tensor *t) { return lk_cuda_weights_find(b->w, t); }

/* ------------------------------------------------------------ ops */

static float *cu_alloc(lk_backend *be, size_t floats, const char *what, loki_error *err) {
    void *p = NULL;
    return lk_cuda_alloc(cu_of(be)->cu, &p, floats * sizeof(float), what, err) ? NULL : p;
}

static void cu_free(lk_backend *be, float *p) {
    if (p) lk_cuda_dealloc(cu_of(be)->cu, p);
}

/* True when the ops of this pass have nothing to do: an op failed, or the
 * pass replays a captured graph. */
static bool skip(const be_cuda *b) { return b->st || b->mode == RUN_REPLAY; }

/* Profiling: mark the end of an op of category tag (the time since the last
 * mark is the op's: its kernels, and any wait for the host between them). */
static void tick(be_cuda *b, int tag) {
    loki_error e;
    if (b->prof && b->mode == RUN_EAGER && !b->st) keep(b, lk_cuda_timeline_mark(b->prof, tag, &e), &e);
}

/* Reserve the pages of this pass's rows and set the host lengths; slots (n). */
static loki_status place_rows(be_cuda *b, const int32_t *pos, const int32_t *seq, int n, int32_t *slots,
                              loki_error *err) {
    loki_status st;
    if (!b->batch) {
        if ((st = lk_gpu_kv_reserve(b->kv, b->seq0, pos[0] + n, err)) ||
            (st = lk_gpu_kv_set_len_host(b->kv, b->seq0, pos[0] + n, err)))
            return st;
        lk_gpu_kv_slots(b->kv, b->seq0, pos[0], n, slots);
        return LOKI_OK;
    }
    for (int i = 0; i < n; i++) {
        if ((st = lk_gpu_kv_reserve(b->kv, seq[i], pos[i] + 1, err)) ||
            (st = lk_gpu_kv_set_len_host(b->kv, seq[i], pos[i] + 1, err)))
            return st;
        lk_gpu_kv_slots(b->kv, seq[i], pos[i], 1, slots + i);
    }
    return LOKI_OK;
}

static loki_status cu_begin(lk_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n,
                            loki_error *err) {
    be_cuda *b = cu_of(be);
    const int32_t nb = b->n_batch;
    loki_status st;
    b->st = LOKI_OK;
    b->n = n, b->seq0 = seq[0], b->pos0 = pos[0], b->batch = 0, b->mode = RUN_EAGER;
    if (n > 1 && seq[n - 1] != seq[0]) { /* a decode batch: consecutive sequences, one token each */
        for (int i = 0; i < n; i++)
            if (seq[i] != seq[0] + i)
                return lk_fail(err, LOKI_ERR_ARG, "GPU decode batch: row %d is sequence %d, expected %d", i, seq[i],
                               seq[0] + i);
        b->batch = n;
    }
    if (b->seq0 < 0 || b->seq0 + (b->batch ? n : 1) > b->n_seq)
        return lk_fail(err, LOKI_ERR_ARG, "GPU backend: sequence %d outside the context's %d", seq[0], b->n_seq);
    if ((st = place_rows(b, pos, seq, n, b->h_in + 2 * nb, err))) return st;
    memcpy(b->h_in, tokens, (size_t)n * sizeof(int32_t));
    memcpy(b->h_in + nb, pos, (size_t)n * sizeof(int32_t));
    memcpy(b->h_len, b->kv->len_host, (size_t)b->n_seq * sizeof(int32_t));
    if (b->graphs && (b->batch || n == 1) && !*b->calib) {
        const uint64_t key = lk_gpu_attn_step_key(b->attn, b->seq0, b->batch ? n : 1);
        if (b->graph && key == b->graph_key && b->seq0 == b->graph_seq0)
            b->mode = RUN_REPLAY, b->n_replays++; /* the graph holds the uploads below */
        else if (key == b->last_key && b->seq0 == b->last_seq0)
            b->mode = RUN_CAPTURE;
        b->last_key = key, b->last_seq0 = b->seq0;
    }
    if (b->mode == RUN_REPLAY) return LOKI_OK;
    if (b->mode == RUN_CAPTURE && (st = lk_cuda_capture_begin(b->cu, err))) return st;
    if ((st = lk_cuda_upload_async(b->cu, b->d_in, b->h_in, (size_t)3 * nb * sizeof(int32_t), err)) ||
        (st = lk_cuda_upload_async(b->cu, b->kv->seq_len, b->h_len, (size_t)b->n_seq * sizeof(int32_t), err))) {
        if (b->mode == RUN_CAPTURE) lk_cuda_capture_abort(b->cu);
        b->mode = RUN_EAGER;
        return st;
    }
    tick(b, LK_PROF_OTHER); /* the start of the pass's timeline */
    return LOKI_OK;
}

static void cu_release_seq(lk_backend *be, int32_t seq) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (seq < 0 || seq >= b->n_seq) return;
    lk_gpu_kv_release(b->kv, seq);
    /* H2O's accumulators and evictions of the sequence start again (as
     * lk_attn_reset does on the CPU). An enqueue can only fail on a broken
     * context, whose next pass fails as well, so the status is not kept
     * (cu_begin clears it anyway). */
    (void)lk_gpu_attn_reset_seq(b->attn, seq, &e);
}


static void cu_embed(lk_backend *be, float *x, const lk_tensor *t, int n, float scale) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (skip(b)) return;
    keep(b, lk_cuda_get_rows(b->cu, x, t->dtype, dev_of(b, t), t->ne[1], t->ne[0], b->d_tokens, n, &e), &e);
    if (!b->st && scale > 0.0f) keep(b, lk_cuda_scale(b->cu, x, scale, (int64_t)n * t->ne[0], &e), &e);
    tick(b, LK_PROF_OTHER);
}

static void cu_rmsnorm(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n, int dim, float eps) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b)) keep(b, lk_cuda_rmsnorm(b->cu, y, x, dev_of(b, w), n, dim, eps, &e), &e);
    tick(b, LK_PROF_OTHER);
}

static void cu_matmul(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b)) keep(b, lk_cuda_matmul(b->mm, y, x, w->dtype, dev_of(b, w), w->ne[0], w->ne[1], n, &e), &e);
    tick(b, LK_PROF_WEIGHTS);
}

static void cu_matmul_add(lk_backend *be, float *y, const float *x, const lk_tensor *w, int n) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b)) keep(b, lk_cuda_matmul_add(b->mm, y, x, w->dtype, dev_of(b, w), w->ne[0], w->ne[1], n, &e), &e);
    tick(b, LK_PROF_WEIGHTS);
}

/* The parts lie back to back on the device (upload_fused) with one dtype
 * and width: one product reads them all. */
static bool fused(const be_cuda *b, int k, const lk_tensor *const *w) {
    const char *d0 = dev_of(b, w[0]);
    size_t off = 0;
    for (int j = 0; j < k; j++) {
        if (!d0 || w[j]->dtype != w[0]->dtype || w[j]->ne[0] != w[0]->ne[0] || (const char *)dev_of(b, w[j]) != d0 + off)
            return false;
        off += w[j]->nbytes;
    }
    return true;
}

static void cu_matmul_multi(lk_backend *be, int k, float *const *y, const float *x, const lk_tensor *const *w, int n) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (skip(b)) return;
    if (!fused(b, k, w)) {
        for (int j = 0; j < k; j++) cu_matmul(be, y[j], x, w[j], n);
        return;
    }
    int64_t out[3];
    for (int j = 0; j < k; j++) out[j] = w[j]->ne[1];
    keep(b, lk_cuda_matmul_multi(b->mm, k, y, out, x, w[0]->dtype, dev_of(b, w[0]), w[0]->ne[0], n, &e), &e);
    tick(b, LK_PROF_WEIGHTS);
}

static void cu_add_bias(lk_backend *be, float *x, const lk_tensor *bias, int n, int dim) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b)) keep(b, lk_cuda_add_bias(b->cu, x, dev_of(b, bias), n, dim, &e), &e);
    tick(b, LK_PROF_OTHER);
}

static void cu_rope(lk_backend *be, float *x, int n, int n_heads, int layer) {
    be_cuda *b = cu_of(be);
    const lk_hparams *hp = &b->m->hp;
    loki_error e;
    if (skip(b)) return;
    const float *f = b->inv_freq[lk_layer_is_local(hp, layer) ? 1 : 0];
    keep(b, lk_cuda_rope(b->cu, x, n, n_heads, hp->head_dim, b->d_pos, f, hp->rope_dim, hp->rope_style == LK_ROPE_NEOX,
                         &e), &e);
    tick(b, LK_PROF_OTHER);
}

static void cu_glu(lk_backend *be, float *gate, const float *up, int n, int n_ff, lk_ffn_act act) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b))
        keep(b, lk_cuda_glu(b->cu, gate, up, (int64_t)n * n_ff, act == LK_ACT_GELU_TANH ? 1 : 0, &e), &e);
    tick(b, LK_PROF_OTHER);
}

/* One decode row with float weights: both products and the GLU in one
 * kernel (lk_cuda_matmul_glu); anything else goes the unfused way. */
static bool cu_matmul_glu(lk_backend *be, float *gate, const float *x, const lk_tensor *wg, const lk_tensor *wu, int n,
                          lk_ffn_act act) {
    be_cuda *b = cu_of(be);
    if (wg->dtype != wu->dtype || wg->ne[0] != wu->ne[0] || wg->ne[1] != wu->ne[1] ||
        !lk_cuda_matmul_glu_fits(wg->dtype, n, wg->ne[0], x))
        return false;
    loki_error e;
    if (skip(b)) return true;
    keep(b, lk_cuda_matmul_glu(b->mm, gate, x, wg->dtype, dev_of(b, wg), dev_of(b, wu), wg->ne[0], wg->ne[1], n,
                               act == LK_ACT_GELU_TANH ? 1 : 0, &e),
         &e);
    tick(b, LK_PROF_WEIGHTS);
    return true;
}

static void cu_add(lk_backend *be, float *x, const float *y, size_t count) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b)) keep(b, lk_cuda_add(b->cu, x, y, (int64_t)count, &e), &e);
    tick(b, LK_PROF_OTHER);
}

static void cu_softcap(lk_backend *be, float *x, float c, size_t count) {
    be_cuda *b = cu_of(be);
    loki_error e;
    if (!skip(b)) keep(b, lk_cuda_softcap(b->cu, x, c, (int64_t)count, &e), &e);
    tick(b, LK_PROF_OTHER);
}

/* Calibration on the GPU backend: the keys stay on the device; their float64
 * statistics accumulate there (lk_cuda_calib, created at the first call)
 * and reach the context's collector at cu_calib_flush. */
static void cu_calib_keys(lk_backend *be, int basis, int layer, const float *k, int n) {
    be_cuda *b = cu_of(be);
    const lk_hparams *hp = &b->m->hp;
    loki_error e;
    if (b->st || !*b->calib) return;
    if (!b->calib_acc)
        keep(b, lk_cuda_calib_init(b->cu, &b->calib_acc, hp->n_layer, hp->n_head_kv, hp->head_dim, &e), &e);
    if (!b->st) keep(b, lk_cuda_calib_add(b->calib_acc, basis, layer, k, n, &e), &e);
}

/* Download the device's totals one (basis, layer) at a time, merge them into
 * the collector (lk_calib_import) and empty the device's. */
static loki_status cu_calib_flush(lk_backend *be, loki_error *err) {
    be_cuda *b = cu_of(be);
    const lk_hparams *hp = &b->m->hp;
    lk_calib *c = *b->calib;
    if (!b->calib_acc || !c) return LOKI_OK;
    const size_t HD = (size_t)hp->n_head_kv * hp->head_dim;
    double *buf = malloc(sizeof(double) * HD * (2 + (size_t)hp->head_dim)); /* shift, sum (Hkv, D); sumsq (Hkv, D, D) */
    if (!buf) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory (calibration totals)");
    loki_status st = LOKI_OK;
    for (int basis = 0; basis < LK_PCA_N_BASIS && !st; basis++)
        for (int l = 0; l < hp->n_layer && !st; l++) {
            int64_t count = 0;
            bool nonfinite = false;
            if (!(st = lk_cuda_calib_read(b->calib_acc, basis, l, &count, buf, buf + HD, buf + 2 * HD, &nonfinite, err)))
                st = lk_calib_import(c, basis, l, count, buf, buf + HD, buf + 2 * HD, nonfinite, err);
        }
    if (!st) st = lk_cuda_calib_reset(b->calib_acc, err);
    free(buf);
    return st;
}

/* The softmax scale of the model's attention (its own, or 1/sqrt(D)), and
 * the factor folded into q for the decode kernels, which scale by
 * 1/sqrt(D) themselves. */
static float attn_scale(const lk_hparams *hp) {
    return hp->attn_scale > 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)hp->head_dim);
}
static float q_fold(const lk_hparams *hp) { return attn_scale(hp) * sqrtf((float)hp->head_dim); }

static void cu_attention(lk_backend *be, int layer, float *q, float *k, const float *v, float *out, int n,
                         int32_t pos0) {
    be_cuda *b = cu_of(be);
    const lk_hparams *hp = &b->m->hp;
    const int D = hp->head_dim, H = hp->n_head, Hkv = hp->n_head_kv;
    const bool local = lk_layer_is_local(hp, layer);
    const float *rot = local || !b->rot ? NULL : b->rot + (size_t)layer * Hkv * D * D;
    const float scale = attn_scale(hp), fold = q_fold(hp);
    loki_error e;
    if (skip(b)) return;
    if (rot) keep(b, lk_cuda_rotate_heads(b->cu, q, n, H, Hkv, D, rot, &e), &e);
    /* the store indexes the (L, Hkv, D, D) rotations by layer itself */
    if (!skip(b)) keep(b, lk_gpu_kv_store(b->kv, layer, n, k, v, b->d_slots, rot ? b->rot : NULL, &e), &e);
    if (skip(b)) return;
    const int32_t window = local ? hp->swa_window : 0;
    if ((n == 1 || b->batch) && !local) { /* decode: one row per sequence, seq0 .. */
        /* the decode kernels scale by 1/sqrt(D): fold a model's own scale into q */
        if (fold != 1.0f) keep(b, lk_cuda_scale(b->cu, q, fold, (int64_t)n * H * D, &e), &e);
        if (!skip(b)) keep(b, lk_gpu_attn_decode_seqs(b->attn, layer, b->seq0, n, q, out, &e), &e);
    } else if (n == 1 || b->batch) { /* a sliding-window layer in a decode step: each row over its own
                                          sequence, at the position the kernel reads (captured steps replay it) */
        const int32_t *pos = b->h_in + b->n_batch;
        for (int i = 0; i < n && !skip(b); i++)
            keep(b, lk_gpu_attn_decode_window(b->kv, layer, b->seq0 + i, pos[i], b->d_pos + i, H,
                                              q + (size_t)i * H * D, out + (size_t)i * H * D, scale, window, &e),
                 &e);
    } else if (b->method != LOKI_ATTN_DENSE && !b->dense_prompt && !local) {
        /* a prompt with a selecting method: every row selects as the CPU's
         * prompt blocks do (a decode step at its causal length, k_fixed) */
        if (fold != 1.0f) keep(b, lk_cuda_scale(b->cu, q, fold, (int64_t)n * H * D, &e), &e);
        if (!skip(b)) keep(b, lk_gpu_attn_prompt(b->attn, layer, b->seq0, pos0, n, q, out, &e), &e);
    } else {
        keep(b, lk_gpu_attn_prefill(b->kv, layer, b->seq0, pos0, n, H, q, out, scale, window, &e), &e);
    }
    tick(b, LK_PROF_ATTENTION);
}

/* A decode step on a global layer (one row, or a batch of sequences): RoPE
 * on q and k, the rotation into the PCA basis, the query scale and the store
 * as one kernel (lk_gpu_kv_rope_store; q goes to q_rot, out of place), then
 * the decode attention. Anything else: false (rope, rope, attention). */
static bool cu_rope_attention(lk_backend *be, int layer, float *q, float *k, const float *v, float *out, int n,
                              int32_t pos0) {
    be_cuda *b = cu_of(be);
    const lk_hparams *hp = &b->m->hp;
    (void)pos0;
    if (!b->fuse_rope || lk_layer_is_local(hp, layer) || !(n == 1 || b->batch)) return false;
    loki_error e;
    if (skip(b)) return true;
    /* the decode kernels scale by 1/sqrt(D): fold a model's own scale into q */
    keep(b, lk_gpu_kv_rope_store(b->kv, layer, n, hp->n_head, q, b->q_rot, k, v, b->d_slots, b->d_pos, b->inv_freq[0],
                                 hp->rope_dim, hp->rope_style == LK_ROPE_NEOX, b->rot, q_fold(hp), &e),
         &e);
    if (!skip(b)) keep(b, lk_gpu_attn_decode_seqs(b->attn, layer, b->seq0, n, b->q_rot, out, &e), &e);
    tick(b, LK_PROF_ATTENTION);
    return true;
}

static float *cu_out_buffer(lk_backend *be, float *host, size_t floats, loki_error *err) {
    be_cuda *b = cu_of(be);
    (void)host;
    if (floats > b->logits_cap) {
        void *p = NULL;
        if (lk_cuda_alloc(b->cu, &p, floats * sizeof(float), "logits", err)) return NULL;
        if (b->logits) lk_cuda_dealloc(b->cu, b->logits);
        b->logits = p;
        b->logits_cap = floats;
        lk_cuda_graph_free(b->graph); /* it writes the old buffer */
        b->graph = NULL;
    }
    return b->logits;
}

/* End this pass's capture (when capturing): the graph replaces or updates
 * the last one. A capture that fails turns graphs off for the backend (the
 * step fails: its ops were recorded, not run; the next runs eagerly). */
static void finish_capture(be_cuda *b) {
    loki_error e;
    if (b->st) {
        lk_cuda_capture_abort(b->cu);
        return;
    }
    loki_status st = lk_cuda_capture_end_update(b->cu, &b->graph, &e);
    if (st) {
        b->graphs = false;
        keep(b, st, &e);
        lk_fail_prefix(&b->err, "capturing a decode step as a CUDA graph (graphs are now off for this context)");
        return;
    }
    b->graph_key = b->last_key, b->graph_seq0 = b->last_seq0;
}

/* The pass's work is enqueued: end its capture, or launch the graph it replays. */
static void run_pass(be_cuda *b) {
    loki_error e;
    if (b->mode == RUN_CAPTURE) finish_capture(b);
    if (b->mode != RUN_EAGER && !b->st) keep(b, lk_cuda_graph_launch(b->cu, b->graph, &e), &e);
}

/* The end of a pass whose result copy returned st: the pass's first error
 * if any, else the stream's (kernel faults surface in the sync), then the
 * profile's sums. */
static loki_status end_pass(be_cuda *b, loki_status st, loki_error *err) {
    if (b->st) *err = b->err;
    if (!st) st = lk_cuda_sync(b->cu, err);
    if (!st && b->prof) st = lk_cuda_timeline_sum(b->prof, b->prof_ms, LK_PROF_N, err);
    return st;
}

static loki_status cu_sync_read(lk_backend *be, float *dst, const float *src, size_t floats, loki_error *err) {
    be_cuda *b = cu_of(be);
    run_pass(b);
    return end_pass(b, b->st ? b->st : lk_cuda_download(b->cu, dst, src, floats * sizeof(float), err), err);
}

/* The sampler's kernels run after the pass (outside its graph: a few small
 * launches), then only the n tokens come back. */
static loki_status cu_sync_sample(lk_backend *be, int32_t *tokens, const float *src, int n, int32_t seq0,
                                  loki_error *err) {
    be_cuda *b = cu_of(be);
    loki_error e;
    run_pass(b);
    if (!b->st && !b->smp)
        keep(b, lk_fail(&e, LOKI_ERR_ARG, "GPU backend: sampling without a sampler (lk_backend_cuda_sampler_init)"),
             &e);
    if (!b->st) keep(b, lk_cuda_sample(b->smp, src, seq0, n, b->d_sampled, &e), &e);
    return end_pass(b, b->st ? b->st : lk_cuda_download(b->cu, tokens, b->d_sampled, (size_t)n * sizeof(int32_t), err),
                    err);
}

static void cu_destroy(lk_backend *be) {
    be_cuda *b = cu_of(be);
    if (!b->cu) {
        free(b);
        return;
    }
    lk_cuda_weights_free(b->w);
    lk_cuda_graph_free(b->graph);
    lk_cuda_timeline_free(b->prof);
    lk_cuda_dealloc(b->cu, b->d_in);
    lk_cuda_host_free(b->cu, b->h_in);
    lk_cuda_host_free(b->cu, b->h_len);
    float *f32[] = {b->rot, b->inv_freq[0], b->inv_freq[1], b->logits, b->q_rot};
    for (int i = 0; i < 5; i++)
        if (f32[i]) lk_cuda_dealloc(b->cu, f32[i]);
    lk_gpu_attn_free(b->attn);
    lk_gpu_kv_free(b->kv);
    lk_cuda_mm_free(b->mm);
    lk_cuda_calib_free(b->calib_acc);
    lk_cuda_sampler_free(b->smp);
    lk_cuda_dealloc(b->cu, b->d_sampled);
    lk_cuda_free(b->cu);
    free(b);
}

static const lk_backend_ops k_cuda_ops = {
    .name = "cuda",
    .alloc = cu_alloc,
    .free = cu_free,
    .begin = cu_begin,
    .release_seq = cu_release_seq,
    .embed = cu_embed,
    .rmsnorm = cu_rmsnorm,
    .matmul = cu_matmul,
    .matmul_add = cu_matmul_add,
    .matmul_multi = cu_matmul_multi,
    .add_bias = cu_add_bias,
    .rope = cu_rope,
    .glu = cu_glu,
    .matmul_glu = cu_matmul_glu,
    .add = cu_add,
    .softcap = cu_softcap,
    .calib_keys = cu_calib_keys,
    .calib_flush = cu_calib_flush,
    .attention = cu_attention,
    .rope_attention = cu_rope_attention,
    .out_buffer = cu_out_buffer,
    .sync_read = cu_sync_read,
    .sync_sample = cu_sync_sample,
    .destroy = cu_destroy,
};

/* Forget the captured decode step: the next step is captured anew. */
static void drop_graph(be_cuda *b) {
    lk_cuda_graph_free(b->graph);
    b->graph = NULL;
    b->graph_key = b->last_key = UINT64_MAX;
}

void lk_backend_cuda_set_graphs(lk_backend *be, bool on) {
    if (!be || be->ops != &k_cuda_ops) return;
    be_cuda *b = cu_of(be);
    b->graphs = on;
    drop_graph(b);
}

void lk_backend_cuda_set_fused(lk_backend *be, loki_cuda_fused mode) {
    if (!be || be->ops != &k_cuda_ops) return;
    be_cuda *b = cu_of(be);
    lk_gpu_attn_set_fused(b->attn, mode);
    drop_graph(b); /* a captured step holds the kernels of the old choice */
}

void lk_backend_cuda_set_weight_prefetch(lk_backend *be, size_t bytes) {
    if (!be || be->ops != &k_cuda_ops) return;
    be_cuda *b = cu_of(be);
    lk_cuda_mm_set_prefetch(b->mm, bytes);
    drop_graph(b); /* a captured step holds the old value in its kernels' arguments */
}

void lk_backend_cuda_set_k_fixed(lk_backend *be, int32_t k) {
    if (!be || be->ops != &k_cuda_ops) return;
    be_cuda *b = cu_of(be);
    if (k == b->k_fixed) return;
    b->k_fixed = k;
    lk_gpu_attn_set_k_fixed(b->attn, k);
    drop_graph(b); /* a captured step holds the old budget in its kernels' arguments */
}

/* The backend's sampler in *s, or a failure: not the CUDA backend
 * (LOKI_ERR_UNSUPPORTED), or no sampler yet (LOKI_ERR_ARG). */
static loki_status sampler_of(lk_backend *be, const char *what, lk_cuda_sampler **s, loki_error *err) {
    *s = NULL;
    if (!be || be->ops != &k_cuda_ops) return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s needs the CUDA backend", what);
    if (!(*s = cu_of(be)->smp)) return lk_fail(err, LOKI_ERR_ARG, "%s: the GPU backend has no sampler yet", what);
    return LOKI_OK;
}

loki_status lk_backend_cuda_sampler_init(lk_backend *be, const loki_sampler_params *params, loki_error *err) {
    if (!be || be->ops != &k_cuda_ops)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "the device sampler needs the CUDA backend");
    be_cuda *b = cu_of(be);
    lk_cuda_sampler *s = NULL;
    loki_status st = lk_cuda_sampler_init(b->cu, params, b->m->hp.n_vocab, b->n_seq, &s, err);
    if (!st && !b->d_sampled)
        st = lk_cuda_alloc(b->cu, (void **)&b->d_sampled, (size_t)b->n_seq * sizeof(int32_t), "sampled tokens", err);
    if (st) {
        lk_cuda_sampler_free(s);
        return st;
    }
    lk_cuda_sampler_free(b->smp); /* lk_cuda_sampler_init waited for the stream: nothing uses it now */
    b->smp = s;
    return LOKI_OK;
}

loki_status lk_backend_cuda_sampler_reset(lk_backend *be, int32_t seq, uint64_t seed, loki_error *err) {
    lk_cuda_sampler *s;
    loki_status st = sampler_of(be, "resetting the device sampler", &s, err);
    return st ? st : lk_cuda_sampler_reset(s, seq, seed, err);
}

loki_status lk_backend_cuda_sampler_accept(lk_backend *be, int32_t seq, const int32_t *tokens, int32_t n,
                                           loki_error *err) {
    lk_cuda_sampler *s;
    loki_status st = sampler_of(be, "recording tokens in the device sampler", &s, err);
    return st ? st : lk_cuda_sampler_accept(s, seq, tokens, n, err);
}

loki_status lk_backend_cuda_sampler_set_stop(lk_backend *be, const int32_t *stop, int32_t n, loki_error *err) {
    lk_cuda_sampler *s;
    loki_status st = sampler_of(be, "the device sampler's stop tokens", &s, err);
    return st ? st : lk_cuda_sampler_set_stop(s, stop, n, err);
}

loki_status lk_backend_cuda_profile(lk_backend *be, bool on, loki_error *err) {
    if (!be || be->ops != &k_cuda_ops) return lk_fail(err, LOKI_ERR_ARG, "profiling needs the CUDA backend");
    be_cuda *b = cu_of(be);
    lk_cuda_timeline_free(b->prof);
    b->prof = NULL;
    memset(b->prof_ms, 0, sizeof b->prof_ms);
    /* an op per mark: about 20 per layer, plus the output head */
    return on ? lk_cuda_timeline_init(b->cu, 32 * b->m->hp.n_layer + 64, &b->prof, err) : LOKI_OK;
}

int64_t lk_backend_cuda_replays(const lk_backend *be) {
    return be && be->ops == &k_cuda_ops ? ((const be_cuda *)be)->n_replays : 0;
}

void lk_backend_cuda_profile_ms(const lk_backend *be, double ms[LK_PROF_N]) {
    for (int i = 0; i < LK_PROF_N; i++) ms[i] = be && be->ops == &k_cuda_ops ? ((const be_cuda *)be)->prof_ms[i] : 0.0;
}

/* ------------------------------------------------------------ setup */

/* RoPE tables of the global and the local layers (the CPU's own table). */
static loki_status upload_rope(be_cuda *b, loki_error *err) {
    const lk_hparams *hp = &b->m->hp;
    const size_t half = (size_t)hp->rope_dim / 2;
    float *tmp = malloc((half + 1) * sizeof(float));
    if (!tmp) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory (RoPE table)");
    loki_status st = LOKI_OK;
    for (int local = 0; local < 2 && !st; local++) {
        lk_hparams tmp_hp;
        const lk_hparams *r = hp;
        if (local) { /* the settings of a sliding-window layer, if the model has any */
            int il = 0;
            while (il < hp->n_layer && !lk_layer_is_local(hp, il)) il++;
            r = lk_layer_rope(hp, il < hp->n_layer ? il : 0, &tmp_hp);
        }
        lk_rope_inv_freq(r, tmp);
        void *dev = NULL;
        if (!(st = lk_cuda_alloc(b->cu, &dev, (half + 1) * sizeof(float), "RoPE table", err))) {
            b->inv_freq[local] = dev;
            st = lk_cuda_upload(b->cu, dev, tmp, half * sizeof(float), err);
        }
    }
    free(tmp);
    return st;
}

loki_status lk_backend_cuda_init(lk_backend **out, const loki_model *m, const loki_attn_params *p, const float *pca_rot,
                                 int32_t n_ctx, int32_t n_seq, int32_t n_batch, lk_calib *const *calib,
                                 loki_error *err) {
    const lk_hparams *hp = &m->hp;
    be_cuda *b = lk_calloc(1, sizeof *b, err);
    if (!b) return LOKI_ERR_NOMEM;
    b->base.ops = &k_cuda_ops;
    b->m = m;
    b->calib = calib;
    b->n_batch = n_batch;
    b->n_seq = n_seq;
    b->graphs = true;
    b->graph_key = b->last_key = UINT64_MAX;
    const int D = hp->head_dim, L = hp->n_layer, Hkv = hp->n_head_kv;
    const int64_t max_dim = LK_MAX(LK_MAX(hp->n_embd, (int64_t)hp->n_head * D), LK_MAX(hp->n_ff, hp->n_vocab));
    const int32_t pages = (n_ctx + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    int32_t *d = malloc((size_t)L * Hkv * sizeof(int32_t));
    loki_status st = d ? LOKI_OK : lk_fail(err, LOKI_ERR_NOMEM, "out of memory");
    if (st) goto fail;
    if ((st = lk_cuda_init(&b->cu, 0, err))) goto fail;
    if ((st = lk_cuda_mm_init(b->cu, &b->mm, n_batch, max_dim, max_dim, err))) goto fail;
    if ((st = lk_cuda_weights_upload(b->cu, m, &b->w, err)) || (st = upload_rope(b, err))) goto fail;
    lk_gpu_split_dims(p, L, Hkv, D, d);
    for (int l = 0; l < L; l++) /* local layers attend densely: the plain layout */
        if (lk_layer_is_local(hp, l))
            for (int h = 0; h < Hkv; h++) d[l * Hkv + h] = D;
    if ((st = lk_gpu_kv_init(b->cu, &b->kv, L, Hkv, D, d, pages * n_seq, n_seq, pages, err))) goto fail;
    if ((st = lk_gpu_attn_init(&b->attn, b->kv, hp->n_head, n_seq, p, err))) goto fail;
    b->method = p->method, b->k_fixed = p->k_fixed, b->dense_prompt = p->dense_prompt;
    lk_gpu_attn_set_bucketed(b->attn, true); /* graph replays need the launch shapes of the step key */
    if (pca_rot) {
        const size_t bytes = (size_t)L * Hkv * D * D * sizeof(float);
        void *dev = NULL;
        if ((st = lk_cuda_alloc(b->cu, &dev, bytes, "PCA rotations", err))) goto fail;
        b->rot = dev;
        if ((st = lk_cuda_upload(b->cu, b->rot, pca_rot, bytes, err))) goto fail;
    }
    void *hin = NULL, *din = NULL, *hlen = NULL;
    if ((st = lk_cuda_host_alloc(b->cu, &hin, (size_t)3 * n_batch * sizeof(int32_t), "pass inputs", err)) ||
        (st = lk_cuda_host_alloc(b->cu, &hlen, (size_t)n_seq * sizeof(int32_t), "sequence lengths", err)) ||
        (st = lk_cuda_alloc(b->cu, &din, (size_t)3 * n_batch * sizeof(int32_t), "pass inputs", err))) {
        lk_cuda_host_free(b->cu, hin), lk_cuda_host_free(b->cu, hlen), lk_cuda_dealloc(b->cu, din);
        goto fail;
    }
    b->h_in = hin, b->h_len = hlen, b->d_in = din;
    b->fuse_rope = lk_gpu_kv_rope_store_fits(hp->n_head, Hkv, D, hp->rope_dim, b->rot != NULL);
    if (b->fuse_rope) {
        void *qr = NULL;
        if ((st = lk_cuda_alloc(b->cu, &qr, (size_t)LK_MAX(n_seq, 1) * hp->n_head * D * sizeof(float), "rotated q",
                                err)))
            goto fail;
        b->q_rot = qr;
    }
    b->d_tokens = b->d_in, b->d_pos = b->d_in + n_batch, b->d_slots = b->d_in + 2 * n_batch;
    free(d);
    *out = &b->base;
    return LOKI_OK;
fail:
    free(d);
    cu_destroy(&b->base);
    return st;
}
