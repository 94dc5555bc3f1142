/* attn_impl.h - state shared by attn.c (setup) and run.c (the kernels). */
#ifndef LK_ATTN_IMPL_H
#define LK_ATTN_IMPL_H

#include "attn/attn.h"

#define LK_ATT_ROW_BLOCK 128 /* query rows per score block in prompt processing */
#define LK_ATT_KEY_CHUNK 256 /* keys per chunk of a dense prompt block (and of widened key rows) */
/* Floats of a thread's score block scratch beyond what one row needs: a
 * sparse method's prompt block of g heads x rows x keys takes fewer rows
 * when its keys are many (4 MiB). */
#define LK_ATT_BLK_BUDGET (1 << 20)

/* Per-thread scratch; every array holds n_ctx entries unless noted. */
typedef struct lk_attn_thread {
    float *blk;           /* score blocks: lk_attn.blk_floats */
    float *kbuf, *vbuf;   /* (LK_ATT_KEY_CHUNK, D) key / value rows widened to f32 */
    float *mrow, *lrow;   /* (LK_ATT_ROW_BLOCK) running max / sum of a dense prompt block */
    float *sum;           /* summed scores of a shared (GQA) selection */
    float *work;          /* (2 n_ctx) selection workspace */
    float *ex;            /* (g, n_ctx) exact scores / weights of the selected tokens per head */
    float *exall;         /* exact scores of every key (Jaccard) */
    int32_t *sel;         /* selected positions */
    int32_t *cand;        /* positions not evicted */
    int32_t *rest;        /* candidates not forced */
    int32_t *top;         /* exact top-k (Jaccard) */
    uint8_t *mark;        /* membership flags, all zero between uses */
    lk_attn_stats *stats; /* (L) */
} lk_attn_thread;

struct lk_attn {
    loki_attn_params p;
    int32_t L, H, Hkv, D, group, n_ctx, n_batch, n_threads;
    int64_t blk_floats;   /* floats of each thread's blk */
    float scale;          /* score scale: hp->attn_scale, else 1/sqrt(D) (exact and approximate scores) */
    int32_t swa_window, swa_pattern; /* sliding-window layers (model.h); window 0: none */
    float *rot;           /* (L, Hkv, D, D) PCA axes as rows, or NULL (no rotation) */
    float *rot_tmp;       /* (n_batch, D) */
    float *acc;           /* (L, H, n_ctx) attention accumulated per token (H2O), or NULL */
    uint8_t *evicted;     /* (L, H, n_ctx) evicted for good (H2O), or NULL */
    bool jaccard;
    lk_attn_thread *th;   /* (n_threads) */
};

/* Window of a sliding-window (local) layer, 0 for a global one. Local
 * layers always attend densely inside their window: the sparse methods and
 * the PCA rotation apply to the global layers only (docs/ATTENTION.md). */
static inline int32_t lk_attn_window(const lk_attn *a, int layer) {
    return a->swa_window > 0 && (layer + 1) % a->swa_pattern != 0 ? a->swa_window : 0;
}

#endif
