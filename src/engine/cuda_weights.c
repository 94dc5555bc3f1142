/*
 * cuda_weights.c - the model's weights in GPU memory (cuda_weights.h): a
 * table of (host data pointer, device copy), sorted by the host pointer and
 * searched with bsearch on every op.
 */
#include "engine/cuda_weights.h"

#include "core/tensor.h"
#include "cuda/lk_cuda_mm.h"

#include <stdlib.h>

/* One uploaded weight: the host view's data pointer (the key) and its copy. */
typedef struct dev_weight {
    const void *host;  /* lk_tensor.data */
    void *dev;         /* the file's bytes, or f32 for vectors (norms, biases) */
    bool owned;        /* dev is an allocation (not a part of a fused one) */
} dev_weight;

struct lk_cuda_weights {
    lk_cuda *cu;       /* borrowed */
    dev_weight *w;     /* (n) sorted by host */
    int n;
};

static int cmp_weight(const void *a, const void *b) {
    const char *x = ((const dev_weight *)a)->host, *y = ((const dev_weight *)b)->host;
    return x < y ? -1 : x > y;
}

void *lk_cuda_weights_find(const lk_cuda_weights *w, const lk_tensor *t) {
    dev_weight key = {.host = t->data}, *f = bsearch(&key, w->w, (size_t)w->n, sizeof key, cmp_weight);
    return f ? f->dev : NULL;
}

void lk_cuda_weights_free(lk_cuda_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++)
        if (w->w[i].owned) lk_cuda_dealloc(w->cu, w->w[i].dev);
    free(w->w);
    free(w);
}

/* Upload one tensor (once: tied tensors share a copy). Vectors (norm
 * weights, biases) go up as f32, matrices as the file's bytes. */
static loki_status upload_tensor(lk_cuda_weights *w, const lk_tensor *t, bool as_f32, loki_error *err) {
    if (!t->data || lk_cuda_weights_find(w, t)) return LOKI_OK;
    if (!as_f32 && !lk_cuda_mm_supports(t->dtype))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: dtype %s has no GPU kernels", t->name, lk_dtype_name(t->dtype));
    void *dev = NULL;
    loki_status st;
    if (as_f32) {
        const int64_t n = lk_tensor_nelements(t);
        float *tmp = lk_alloc_aligned((size_t)n * sizeof(float), err);
        if (!tmp) return LOKI_ERR_NOMEM;
        lk_row_to_f32(t->dtype, t->data, tmp, n);
        st = lk_cuda_alloc(w->cu, &dev, (size_t)n * sizeof(float), t->name, err);
        if (!st) st = lk_cuda_upload(w->cu, dev, tmp, (size_t)n * sizeof(float), err);
        lk_free_aligned(tmp);
    } else {
        st = lk_cuda_alloc(w->cu, &dev, t->nbytes, t->name, err);
        if (!st) st = lk_cuda_upload(w->cu, dev, t->data, t->nbytes, err);
    }
    if (st) {
        if (dev) lk_cuda_dealloc(w->cu, dev);
        return st;
    }
    w->w[w->n++] = (dev_weight){t->data, dev, true};
    qsort(w->w, (size_t)w->n, sizeof *w->w, cmp_weight);
    return LOKI_OK;
}

/* Upload matrices that one input goes through (q/k/v, gate/up) back to back
 * in one allocation, so a decode step reads them with one kernel
 * (lk_cuda_matmul_multi). When they differ in dtype or width, or a part
 * would break the 16-byte alignment of the next, each is uploaded on its own. */
static loki_status upload_fused(lk_cuda_weights *w, int k, const lk_tensor *const *t, loki_error *err) {
    size_t total = 0;
    bool ok = t[0]->data && lk_cuda_mm_supports(t[0]->dtype) && !lk_cuda_weights_find(w, t[0]);
    for (int j = 0; ok && j < k; j++) {
        ok = t[j]->data && t[j]->dtype == t[0]->dtype && t[j]->ne[0] == t[0]->ne[0] && t[j]->nbytes % 16 == 0 &&
             !lk_cuda_weights_find(w, t[j]);
        for (int i = 0; ok && i < j; i++) ok = t[i]->data != t[j]->data;
        total += t[j]->nbytes;
    }
    if (!ok) {
        for (int j = 0; j < k; j++) {
            loki_status st = upload_tensor(w, t[j], false, err);
            if (st) return st;
        }
        return LOKI_OK;
    }
    void *dev = NULL;
    loki_status st = lk_cuda_alloc(w->cu, &dev, total, t[0]->name, err);
    size_t off = 0;
    for (int j = 0; !st && j < k; off += t[j]->nbytes, j++)
        st = lk_cuda_upload(w->cu, (char *)dev + off, t[j]->data, t[j]->nbytes, err);
    if (st) {
        lk_cuda_dealloc(w->cu, dev);
        return st;
    }
    off = 0;
    for (int j = 0; j < k; off += t[j]->nbytes, j++) w->w[w->n++] = (dev_weight){t[j]->data, (char *)dev + off, j == 0};
    qsort(w->w, (size_t)w->n, sizeof *w->w, cmp_weight);
    return LOKI_OK;
}

static loki_status upload_all(lk_cuda_weights *w, const loki_model *m, loki_error *err) {
    loki_status st;
    if ((st = upload_tensor(w, &m->tok_embd, false, err)) || (st = upload_tensor(w, &m->output, false, err)) ||
        (st = upload_tensor(w, &m->out_norm, true, err)))
        return st;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const lk_layer *L = &m->layers[l];
        const lk_tensor *const qkv[3] = {&L->wq, &L->wk, &L->wv}, *const gu[2] = {&L->w_gate, &L->w_up};
        if ((st = upload_fused(w, 3, qkv, err)) || (st = upload_fused(w, 2, gu, err))) return st;
        const lk_tensor *mats[] = {&L->wo, &L->w_down};
        const lk_tensor *vecs[] = {&L->attn_norm, &L->ffn_norm, &L->bq, &L->bk, &L->bv, &L->attn_q_norm,
                                   &L->attn_k_norm, &L->attn_post_norm, &L->ffn_post_norm};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
            if ((st = upload_tensor(w, mats[i], false, err))) return st;
        for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++)
            if ((st = upload_tensor(w, vecs[i], true, err))) return st;
    }
    return LOKI_OK;
}

loki_status lk_cuda_weights_upload(lk_cuda *cu, const loki_model *m, lk_cuda_weights **out, loki_error *err) {
    *out = NULL;
    const int per_layer = (int)(sizeof(lk_layer) / sizeof(lk_tensor));
    lk_cuda_weights *w = lk_calloc(1, sizeof *w, err);
    if (!w) return LOKI_ERR_NOMEM;
    w->cu = cu;
    if (!(w->w = lk_calloc((size_t)m->hp.n_layer * per_layer + 4, sizeof *w->w, err))) {
        free(w);
        return LOKI_ERR_NOMEM;
    }
    loki_status st = upload_all(w, m, err);
    if (st) {
        lk_cuda_weights_free(w);
        return st;
    }
    *out = w;
    return LOKI_OK;
}
