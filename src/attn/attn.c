/*
 * attn.c - setup of the attention state: split dims per head, the PCA
 * rotation, H2O accumulators, scratch; the KV store and the rotation itself.
 * The kernels are in run.c.
 */
#include "attn/attn_impl.h"
#include "calib/pca.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *aligned_f32(size_t n, loki_error *err) { return lk_alloc_aligned(n * sizeof(float), err); }

int32_t lk_attn_split_dim(const loki_attn_params *p, int32_t D, int layer, int h) {
    if (p->dvar > 0.0f) return lk_pca_rank(p->pca, (int)p->basis, layer, h, p->dvar);
    if (p->d > 0) return p->d;
    int32_t d = (int32_t)lrintf(p->df * (float)D);
    return LK_MAX(1, LK_MIN(d, D));
}

bool lk_attn_uses_pca(const loki_attn_params *p) {
    return p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_PCAATTN;
}

loki_status lk_attn_init(lk_attn **out, const lk_hparams *hp, const loki_attn_params *p, int32_t n_ctx,
                         int32_t n_batch, int n_threads, lk_kv_cache *kv, loki_error *err) {
    lk_attn *a = lk_calloc(1, sizeof *a, err);
    if (!a) return LOKI_ERR_NOMEM;
    a->p = *p;
    a->p.gqa_shared = p->gqa_shared || p->gqa_max; /* --gqa-max implies a shared selection */
    a->L = hp->n_layer;
    a->H = hp->n_head;
    a->Hkv = hp->n_head_kv;
    a->D = hp->head_dim;
    a->group = hp->n_head / hp->n_head_kv;
    a->n_ctx = n_ctx;
    a->n_batch = n_batch;
    a->n_threads = n_threads;
    a->scale = hp->attn_scale > 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)a->D);
    a->swa_window = hp->swa_window;
    a->swa_pattern = hp->swa_pattern;
    const size_t LH = (size_t)a->L * a->H, LHkv = (size_t)a->L * a->Hkv, D = (size_t)a->D;
    if (lk_attn_uses_pca(p)) {
        if (!(a->rot = aligned_f32(LHkv * D * D, err)) || !(a->rot_tmp = aligned_f32((size_t)n_batch * D, err)))
            goto nomem;
        memcpy(a->rot, p->pca->components[p->basis], sizeof(float) * LHkv * D * D);
    }
    if (p->method == LOKI_ATTN_H2O || p->evict_kf > 0.0f) {
        if (!(a->acc = aligned_f32(LH * (size_t)n_ctx, err)) ||
            !(a->evicted = lk_alloc_aligned(LH * (size_t)n_ctx, err)))
            goto nomem;
    }
    /* score blocks: a decode step stacks a KV head's G query heads over S
     * keys (dense: twice, the low and high parts); a sparse prompt block
     * holds rows x keys per head sharing a selection, at least one row
     * (g_sel x n_ctx), at most LK_ATT_ROW_BLOCK rows, within
     * LK_ATT_BLK_BUDGET beyond that; a dense prompt block (rows, key chunk) */
    size_t g_sel = a->p.gqa_shared ? (size_t)a->group : 1, N = (size_t)n_ctx;
    size_t blk = LK_MAX(2 * (size_t)a->group * N, g_sel * N);
    if (n_batch > 1) {
        blk = LK_MAX(blk, (size_t)LK_ATT_ROW_BLOCK * LK_ATT_KEY_CHUNK);
        blk = LK_MAX(blk, LK_MIN(g_sel * (size_t)LK_MIN(n_batch, LK_ATT_ROW_BLOCK) * N, (size_t)LK_ATT_BLK_BUDGET));
    }
    a->blk_floats = (int64_t)blk;
    if (!(a->th = lk_calloc((size_t)n_threads, sizeof *a->th, err))) goto nomem;
    for (int i = 0; i < n_threads; i++) {
        lk_attn_thread *t = &a->th[i];
        if (!(t->blk = aligned_f32(blk, err)) || !(t->sum = aligned_f32(N, err)) ||
            !(t->kbuf = aligned_f32((size_t)LK_ATT_KEY_CHUNK * D, err)) ||
            !(t->vbuf = aligned_f32((size_t)LK_ATT_KEY_CHUNK * D, err)) ||
            !(t->mrow = aligned_f32(LK_ATT_ROW_BLOCK, err)) || !(t->lrow = aligned_f32(LK_ATT_ROW_BLOCK, err)) ||
            !(t->work = aligned_f32(2 * N, err)) || !(t->ex = aligned_f32(g_sel * N, err)) ||
            !(t->exall = aligned_f32(N, err)) || !(t->sel = lk_alloc_aligned(N * 4, err)) ||
            !(t->cand = lk_alloc_aligned(N * 4, err)) || !(t->rest = lk_alloc_aligned(N * 4, err)) ||
            !(t->top = lk_alloc_aligned(N * 4, err)) || !(t->mark = lk_alloc_aligned(N, err)) ||
            !(t->stats = lk_calloc((size_t)a->L, sizeof *t->stats, err)))
            goto nomem;
    }
    /* only now, when nothing can fail, the cache layout changes */
    for (int l = 0; l < a->L; l++)
        for (int h = 0; h < a->Hkv; h++)
            kv->d[l * a->Hkv + h] = lk_attn_uses_pca(p) && !lk_attn_window(a, l) ? lk_attn_split_dim(p, a->D, l, h)
                                                                                 : a->D;
    *out = a;
    return LOKI_OK;
nomem:
    lk_attn_free(a);
    return lk_fail_prefix(err, "attention state for %d tokens", n_ctx);
}

void lk_attn_free(lk_attn *a) {
    if (!a) return;
    for (int i = 0; a->th && i < a->n_threads; i++) {
        lk_attn_thread *t = &a->th[i];
        lk_free_aligned(t->blk);
        lk_free_aligned(t->kbuf);
        lk_free_aligned(t->vbuf);
        lk_free_aligned(t->mrow);
        lk_free_aligned(t->lrow);
        lk_free_aligned(t->sum);
        lk_free_aligned(t->work);
        lk_free_aligned(t->ex);
        lk_free_aligned(t->exall);
        lk_free_aligned(t->sel);
        lk_free_aligned(t->cand);
        lk_free_aligned(t->rest);
        lk_free_aligned(t->top);
        lk_free_aligned(t->mark);
        free(t->stats);
    }
    free(a->th);
    lk_free_aligned(a->rot);
    lk_free_aligned(a->rot_tmp);
    lk_free_aligned(a->acc);
    lk_free_aligned(a->evicted);
    free(a);
}

void lk_attn_reset(lk_attn *a) {
    size_t n = (size_t)a->L * a->H * a->n_ctx;
    if (a->acc) memset(a->acc, 0, n * sizeof(float));
    if (a->evicted) memset(a->evicted, 0, n);
    for (int i = 0; i < a->n_threads; i++) memset(a->th[i].stats, 0, sizeof(lk_attn_stats) * (size_t)a->L);
}

void lk_attn_set_k_fixed(lk_attn *a, int32_t k) { a->p.k_fixed = k; }

void lk_attn_set_jaccard(lk_attn *a, bool on) { a->jaccard = on; }

void lk_attn_get_stats(const lk_attn *a, int layer, lk_attn_stats *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < a->n_threads; i++)
        for (int l = 0; l < a->L; l++) {
            if (layer >= 0 && l != layer) continue;
            const lk_attn_stats *s = &a->th[i].stats[l];
            out->jaccard_sum += s->jaccard_sum;
            out->jaccard_rows += s->jaccard_rows;
            out->bytes_read += s->bytes_read;
            out->bytes_dense += s->bytes_dense;
        }
}

void lk_attn_rotate(lk_attn *a, int layer, float *x, int32_t n, int n_heads) {
    if (!a->rot || lk_attn_window(a, layer)) return; /* local layers: dense, unrotated */
    const int D = a->D, group = n_heads / a->Hkv;
    for (int h = 0; h < n_heads; h++) {
        const float *C = a->rot + ((size_t)layer * a->Hkv + h / group) * (size_t)D * D; /* (D, D) */
        float *xh = x + (size_t)h * D;                                                   /* (n, D) stride n_heads*D */
        /* tmp (n, D) = X_h (n, D) · Cᵀ : tmp[i][j] = C[j]·x_i */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, D, D, 1.0f, xh, n_heads * D, C, D, 0.0f,
                    a->rot_tmp, D);
        for (int32_t i = 0; i < n; i++)
            memcpy(xh + (size_t)i * n_heads * D, a->rot_tmp + (size_t)i * D, sizeof(float) * (size_t)D);
    }
}

const float *lk_attn_rotation(const lk_attn *a) { return a->rot; }
