/*
 * attn.cu - decode attention on the GPU for every method: the state (scratch
 * for scores, selections, split partials, H2O accumulators) and the step
 * that runs score -> select -> attend -> reduce on the context's stream.
 * The policy (budget, forced tokens, sharing) is attn/budget.h's, the same
 * as the CPU path; this file only chooses kernels and launch shapes.
 */
#include "cuda/kernels.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "attn/attn.h"
}

struct lk_gpu_attn {
    lk_cuda *cu;
    lk_gpu_kv *kv;
    loki_attn_params p;
    int H, Hkv, G, D, max_batch, n_ctx, sel_rows;
    int rows_max;         /* batch rows the scratch holds: max_batch, or more for the prompt rows of
                             lk_gpu_attn_prompt (up to LK_GPU_PROMPT_ROWS, by LK_GPU_PROMPT_BYTES) */
    float scale;
    bool shared;          /* one selection per KV head */
    /* scratch of a step, by batch row (rows_max of them) */
    float *scores;        /* (rows_max, H, n_ctx) approximate scores (summed rows use b*Hkv + kvh) */
    uint32_t *rowmax;     /* (rows_max, H) per-head maxima (gqa_max) */
    int32_t *idx;         /* (rows_max, sel_rows, n_ctx) selected positions */
    int2 *slots;          /* (rows_max, sel_rows, n_ctx) their physical slots and scores (per-query-head
                             loki and exact-topk: the attend stage skips the key components a score
                             covers) */
    bool lsc;             /* the attend stage reuses the entries' scores */
    int32_t *n_sel;       /* (rows_max, sel_rows) */
    float *part, *part_ml;/* (rows_max, H, LK_GPU_MAX_SPLIT, D) and (..., 2) */
    float *ml;            /* (rows_max, H, 2) final max and sum */
    float *raw;           /* (rows_max, H, n_ctx) exact scores by list entry (H2O) */
    int32_t *row_len;     /* (row_len_cap) causal lengths of prompt rows (lk_gpu_attn_prompt) */
    int32_t row_len_cap;
    int32_t row_pos0, row_n; /* the rows row_len holds now (the layers of a pass reuse them) */
    float *acc;           /* (L, max_batch, H, n_ctx) accumulated attention (H2O) */
    uint8_t *evicted;     /* (L, max_batch, H, n_ctx) (H2O) */
    int att_occ;          /* attend blocks resident per SM (the launch is the same every step) */
    int n_split_force;    /* > 0: splits per row forced (lk_gpu_attn_set_splits) */
    int n_split_last;     /* splits of the last step (0: it ran as the fused kernel) */
    bool pdl;             /* programmatic dependent launch between the step's kernels (lk_gpu_attn_set_pdl) */
    bool bucketed;        /* launch shapes from length buckets (lk_gpu_attn_set_bucketed) */
    loki_cuda_fused fused;/* which Loki steps take the fused kernel (lk_gpu_attn_set_fused; never DEFAULT) */
    lk_fused_plan plan;   /* the fused kernel's last launch choice (the same shape comes back every step) */
    bool timing;
    cudaEvent_t ev[4];
    /* the fused kernel's phase stamps while timing (lk_gpu_attn_fused_phases):
     * (stamp_cap blocks, LK_FUSED_NPH, 2), allocated at the first timed fused
     * step; stamp_blocks: the blocks of the last step (0: it did not fuse) */
    unsigned long long *stamps;
    int64_t stamp_cap, stamp_blocks;
};

/* dev/cuda variant knob: the loki_cuda_fused that LOKI_CUDA_FUSED_DEFAULT
 * means in this build (LOKI_CUDA_FUSED_MHA; _OFF builds a loki whose Loki
 * steps take the separate stages). `bench decode --fused` and `bench
 * attention --fused` choose per run. */
#ifndef LK_FUSED_DEFAULT
#define LK_FUSED_DEFAULT LOKI_CUDA_FUSED_MHA
#endif
/* session 18's knob took 0 / 1: a name now (1 would be LOKI_CUDA_FUSED_OFF) */
static_assert(LK_FUSED_DEFAULT >= LOKI_CUDA_FUSED_OFF && LK_FUSED_DEFAULT <= LOKI_CUDA_FUSED_ALL,
              "LK_FUSED_DEFAULT: a loki_cuda_fused name other than LOKI_CUDA_FUSED_DEFAULT");

static bool sparse_method(loki_attn_method m) {
    return m == LOKI_ATTN_LOKI || m == LOKI_ATTN_EXACT_TOPK || m == LOKI_ATTN_H2O;
}

extern "C" loki_status lk_gpu_attn_init(lk_gpu_attn **out, lk_gpu_kv *kv, int32_t n_head, int32_t max_batch,
                                        const loki_attn_params *p, loki_error *err) {
    *out = NULL;
    loki_status st = LOKI_OK;
    const int Hkv = kv->n_head_kv, D = kv->head_dim;
    lk_gpu_attn *a = NULL;
    int32_t *want = NULL;
    size_t rows = 0, n_ctx = 0, LHc = 0;
    if (p->method < LOKI_ATTN_DENSE || p->method > LOKI_ATTN_H2O)
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: unknown method %d", (int)p->method);
    if (p->evict_kf > 0.0f)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "GPU attention: --evict-kf is not supported on the GPU (use the CPU)");
    if (n_head < 1 || n_head % Hkv || n_head / Hkv > LK_ATTN_MAX_GROUP)
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: %d query heads over %d KV heads (at most %d per KV head)",
                       n_head, Hkv, LK_ATTN_MAX_GROUP);
    if (D != 64 && D != 128 && D != 256)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "GPU attention: head_dim %d (the kernels take 64, 128 or 256)", D);
    if (max_batch < 1 || max_batch > kv->max_seqs)
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: batch %d outside 1..%d (the cache's sequences)", max_batch,
                       kv->max_seqs);
    /* the cache must be laid out for this method */
    if (!(want = (int32_t *)lk_calloc((size_t)kv->n_layer * Hkv, 4, err))) return LOKI_ERR_NOMEM;
    lk_gpu_split_dims(p, kv->n_layer, Hkv, D, want);
    for (int i = 0; i < kv->n_layer * Hkv; i++)
        if (want[i] != kv->d_host[i]) {
            st = lk_fail(err, LOKI_ERR_ARG, "GPU attention: the cache splits head %d at d = %d, the method needs %d", i,
                         kv->d_host[i], want[i]);
            free(want);
            return st;
        }
    free(want);
    if (!(a = (lk_gpu_attn *)lk_calloc(1, sizeof *a, err))) return LOKI_ERR_NOMEM;
    a->cu = kv->cu, a->kv = kv, a->p = *p;
    a->pdl = a->cu->prop.major >= 9;
    lk_gpu_attn_set_fused(a, LOKI_CUDA_FUSED_DEFAULT);
    a->p.pca = NULL; /* the kernels never read it */
    a->shared = (p->gqa_shared || p->gqa_max) && p->method != LOKI_ATTN_DENSE && p->method != LOKI_ATTN_PCAATTN;
    a->p.gqa_shared = a->shared;
    a->H = n_head, a->Hkv = Hkv, a->G = n_head / Hkv, a->D = D, a->max_batch = max_batch;
    a->n_ctx = kv->max_pages_per_seq * LK_GPU_PAGE;
    a->sel_rows = a->shared ? Hkv : n_head;
    a->scale = 1.0f / sqrtf((float)D);
    /* prompt rows of a method other than dense go through the decode stages in
     * batches (H2O: one row at a time, its accumulators are per sequence) */
    if (p->method == LOKI_ATTN_DENSE || p->method == LOKI_ATTN_H2O) {
        a->rows_max = max_batch;
    } else { /* as many rows as LK_GPU_PROMPT_BYTES of scratch hold (fewer launches per prompt) */
        const size_t per_row = (size_t)a->n_ctx * (4 * (size_t)n_head + 12 * (size_t)a->sel_rows) +
                               (size_t)n_head * LK_GPU_MAX_SPLIT * (D + 2) * 4;
        const int32_t fit = (int32_t)LK_MIN((size_t)LK_GPU_PROMPT_ROWS, LK_GPU_PROMPT_BYTES / per_row);
        a->rows_max = LK_MAX(max_batch, LK_MAX(fit, 1));
    }
    rows = (size_t)a->rows_max * n_head, n_ctx = (size_t)a->n_ctx;
    LHc = (size_t)kv->n_layer * max_batch * n_head * n_ctx;
    if ((st = lk_cuda_alloc(a->cu, (void **)&a->part, rows * LK_GPU_MAX_SPLIT * D * 4, "attention partials", err)) ||
        (st = lk_cuda_alloc(a->cu, (void **)&a->part_ml, rows * LK_GPU_MAX_SPLIT * 2 * 4, "attention partials", err)) ||
        (st = lk_cuda_alloc(a->cu, (void **)&a->ml, rows * 2 * 4, "attention partials", err)))
        goto fail;
    if (sparse_method(p->method)) {
        const size_t sr = (size_t)a->rows_max * a->sel_rows;
        if ((st = lk_cuda_alloc(a->cu, (void **)&a->idx, sr * n_ctx * 4, "selections", err)) ||
            (st = lk_cuda_alloc(a->cu, (void **)&a->slots, sr * n_ctx * 8, "selections", err)) ||
            (st = lk_cuda_alloc(a->cu, (void **)&a->n_sel, sr * 4, "selections", err)))
            goto fail;
    }
    a->lsc = (p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_EXACT_TOPK) && !a->shared;
    if ((p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_EXACT_TOPK) &&
        (st = lk_cuda_alloc(a->cu, (void **)&a->scores, rows * n_ctx * 4, "approximate scores", err)))
        goto fail;
    if (a->shared && p->gqa_max && (st = lk_cuda_alloc(a->cu, (void **)&a->rowmax, rows * 4, "score maxima", err)))
        goto fail;
    if (p->method == LOKI_ATTN_H2O) {
        if ((st = lk_cuda_alloc(a->cu, (void **)&a->raw, rows * n_ctx * 4, "H2O scores", err)) ||
            (st = lk_cuda_alloc(a->cu, (void **)&a->acc, LHc * 4, "H2O accumulators", err)) ||
            (st = lk_cuda_alloc(a->cu, (void **)&a->evicted, LHc, "H2O evictions", err)) ||
            (st = lk_gpu_attn_reset(a, err)))
            goto fail;
    }
    for (int i = 0; i < 4; i++) LK_CUDA_TRY(cudaEventCreate(&a->ev[i]));
    *out = a;
    return LOKI_OK;
fail:
    lk_gpu_attn_free(a);
    return st;
}

extern "C" void lk_gpu_attn_free(lk_gpu_attn *a) {
    if (!a) return;
    void *bufs[] = {a->scores, a->rowmax, a->idx,     a->slots,   a->n_sel,   a->part,  a->part_ml,
                    a->ml,     a->raw,    a->acc,     a->evicted, a->row_len, a->stamps};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lk_cuda_dealloc(a->cu, bufs[i]);
    for (int i = 0; i < 4; i++)
        if (a->ev[i]) cudaEventDestroy(a->ev[i]);
    free(a);
}

extern "C" loki_status lk_gpu_attn_reset(lk_gpu_attn *a, loki_error *err) {
    loki_status st = LOKI_OK;
    const size_t n = (size_t)a->kv->n_layer * a->max_batch * a->H * a->n_ctx;
    if (a->acc) LK_CUDA_TRY(cudaMemsetAsync(a->acc, 0, n * 4, a->cu->stream));
    if (a->evicted) LK_CUDA_TRY(cudaMemsetAsync(a->evicted, 0, n, a->cu->stream));
    LK_CUDA_TRY(cudaStreamSynchronize(a->cu->stream));
fail:
    return st;
}

extern "C" loki_status lk_gpu_attn_reset_seq(lk_gpu_attn *a, int32_t seq, loki_error *err) {
    loki_status st = LOKI_OK;
    const size_t n = (size_t)a->H * a->n_ctx; /* one (layer, sequence) slab */
    if (seq < 0 || seq >= a->max_batch)
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: sequence %d out of range", seq);
    for (int l = 0; a->acc && l < a->kv->n_layer; l++) {
        const size_t off = ((size_t)l * a->max_batch + seq) * n;
        LK_CUDA_TRY(cudaMemsetAsync(a->acc + off, 0, n * 4, a->cu->stream));
        LK_CUDA_TRY(cudaMemsetAsync(a->evicted + off, 0, n, a->cu->stream));
    }
fail:
    return st;
}

extern "C" void lk_gpu_attn_set_timing(lk_gpu_attn *a, bool on) { a->timing = on; }

extern "C" loki_status lk_gpu_attn_stage_ms(lk_gpu_attn *a, float ms[3], loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaEventSynchronize(a->ev[3]));
    for (int i = 0; i < 3; i++) LK_CUDA_TRY(cudaEventElapsedTime(&ms[i], a->ev[i], a->ev[i + 1]));
fail:
    return st;
}

extern "C" loki_status lk_gpu_attn_fused_phases(lk_gpu_attn *a, lk_fused_phases *ph, loki_error *err) {
    loki_status st = LOKI_OK;
    const int64_t nb = a->stamp_blocks, NP = LK_FUSED_NPH;
    unsigned long long *h = NULL;
    memset(ph, 0, sizeof *ph);
    if (nb <= 0)
        return lk_fail(err, LOKI_ERR_ARG, "fused phases: the last decode step did not run the fused kernel with "
                                          "timing on (lk_gpu_attn_set_timing)");
    if (!(h = (unsigned long long *)lk_calloc((size_t)(nb * NP * 2), sizeof *h, err))) return LOKI_ERR_NOMEM;
    LK_CUDA_TRY(cudaStreamSynchronize(a->cu->stream));
    LK_CUDA_TRY(cudaMemcpy(h, a->stamps, (size_t)(nb * NP * 2) * sizeof *h, cudaMemcpyDeviceToHost));
    {
        unsigned long long t0 = ~0ull, t1 = 0;
        for (int64_t b = 0; b < nb; b++) {
            const unsigned long long *s = h + b * NP * 2; /* (phase, {ns, clock}) */
            for (int p = 0; p < NP; p++)
                if (!s[2 * p] || (p > 0 && (s[2 * p] < s[2 * p - 2] || s[2 * p + 1] < s[2 * p - 1]))) {
                    st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "fused phases: block %lld of %lld: stamp %d %s",
                                 (long long)b, (long long)nb, p, s[2 * p] ? "before the one before it" : "not written");
                    goto fail;
                }
            for (int p = 0; p + 1 < NP; p++) {
                ph->us[p] += (double)(s[2 * p + 2] - s[2 * p]) / 1e3 / (double)nb;
                ph->kcycles[p] += (double)(s[2 * p + 3] - s[2 * p + 1]) / 1e3 / (double)nb;
                ph->max_us[p] = LK_MAX(ph->max_us[p], (double)(s[2 * p + 2] - s[2 * p]) / 1e3);
            }
            t0 = LK_MIN(t0, s[0]), t1 = LK_MAX(t1, s[2 * NP - 2]);
        }
        ph->span_us = (double)(t1 - t0) / 1e3;
        ph->blocks = nb;
    }
fail:
    free(h);
    return st;
}

/* Tokens the attend stage of sequence b visits at most (sizes the splits). */
static int32_t list_len(const lk_gpu_attn *a, int32_t S) {
    if (!sparse_method(a->p.method) || a->p.method == LOKI_ATTN_H2O) return S;
    const int32_t k = lk_attn_budget(&a->p, S);
    return lk_attn_all(&a->p, S, S, k) ? S : k;
}

/* The bucket of a length: n rounded up to a multiple of max(P, 2^floor(log2 n) / 8),
 * so at most 1/8 (or one page) above n, and about 8 buckets per doubling. */
static int32_t len_bucket(int32_t n) {
    if (n <= 0) return 0;
    int32_t g = LK_GPU_PAGE;
    while ((int64_t)g * 16 <= n) g *= 2;
    return (int32_t)LK_MIN(((int64_t)n + g - 1) / g * g, (int64_t)INT32_MAX / 2);
}

/* Longest sequence and longest attend list of sequences seq0..seq0+B-1 at the host lengths. */
static void step_lengths(const lk_gpu_attn *a, int32_t seq0, int32_t B, int32_t *S_max, int32_t *n_max) {
    *S_max = *n_max = 0;
    for (int b = seq0; b < seq0 + B; b++) {
        *S_max = LK_MAX(*S_max, a->kv->len_host[b]);
        *n_max = LK_MAX(*n_max, list_len(a, a->kv->len_host[b]));
    }
}

extern "C" void lk_gpu_attn_set_bucketed(lk_gpu_attn *a, bool on) { a->bucketed = on; }

extern "C" uint64_t lk_gpu_attn_step_key(const lk_gpu_attn *a, int32_t seq0, int32_t B) {
    int32_t S_max, n_max;
    if (seq0 < 0 || B < 1 || seq0 + B > a->max_batch) return 0;
    step_lengths(a, seq0, B, &S_max, &n_max);
    return (uint64_t)B << 48 | (uint64_t)(len_bucket(S_max) / LK_GPU_PAGE) << 24 |
           (uint64_t)(len_bucket(n_max) / LK_GPU_PAGE);
}

/* Fixed cost of one split, in tiles of the wave model below: the pipeline's
 * first loads, the Q fragments, the partial's write and its share of the
 * reduce. */
#define SPLIT_OVH 2

/* Splits per row for an attend over `tiles` tiles in each of `units` blocks'
 * worth of rows (B * KV heads * head groups); `list`: a gathered selection.
 *  - Few units (< 64: a batch of one): the split is what fills the GPU, and
 *    a last wave that runs a few blocks costs as much as a full one, so take
 *    the n minimising a wave model, waves(units * n) * (tiles / n +
 *    SPLIT_OVH), fewest splits on ties. Measured on the H200 (2026-12-02,
 *    docs/RESULTS.md), dense B = 1 at 16k-128k: the model's choice was the
 *    fastest of 2-64 splits for 32 heads (8 splits: 0.77 -> 0.96 x SDPA at
 *    32k) and for 8 KV heads (32 splits).
 *  - More units: a batch, bandwidth-bound without splitting. The wave model
 *    chose 2 splits for dense B = 16 with 8 KV heads (556 us at 32k) where
 *    more waves of shorter splits ran faster (8-12 splits: 506-525 us), so
 *    the earlier rules stay: a gathered list over at most one wave of units
 *    takes one wave of the longest splits (GQA-shared attend at 32k 114 ->
 *    92 us); otherwise about 4 blocks per SM, or, with 32 units up to one
 *    per SM and splits that stay long (>= 16 tiles), 4 whole waves of
 *    resident blocks (0.82 -> 0.95 x SDPA for dense B = 16, 8 KV heads; it
 *    lost where 2 splits of B = 16 with 32 heads became 3).
 * A count forced by lk_gpu_attn_set_splits wins (clamped to 1..tiles). */
static int split_count(const lk_gpu_attn *a, int tiles, int units, bool list) {
    const int sms = lk_cuda_sm_count(a->cu), occ = LK_MAX(a->att_occ, 1), slots = sms * occ;
    const int most = LK_MAX(LK_MIN(tiles, LK_GPU_MAX_SPLIT), 1);
    if (a->n_split_force > 0) return LK_MIN(a->n_split_force, most);
    if (units < 64) {
        int best = 1;
        long best_cost = -1;
        for (int n = 1; n <= most; n++) {
            const int tps = (tiles + n - 1) / n;
            if ((tiles + tps - 1) / tps != n) continue; /* the same tiles per split as a smaller n */
            const long waves = ((long)units * n + slots - 1) / slots, cost = waves * (tps + SPLIT_OVH);
            if (best_cost < 0 || cost < best_cost) best = n, best_cost = cost;
        }
        return best;
    }
    if (list && units <= slots) return LK_MAX(LK_MIN(slots / units, most), 1);
    int n_split = LK_MIN((4 * sms + units - 1) / units, most);
    const int n_wave = LK_MIN(4 * slots / units, most);
    if (units >= 32 && units <= sms && n_wave > n_split && tiles / LK_MAX(n_wave, 1) >= 16) n_split = n_wave;
    return LK_MAX(n_split, 1);
}

extern "C" void lk_gpu_attn_set_splits(lk_gpu_attn *a, int n_split) { a->n_split_force = LK_MAX(n_split, 0); }
extern "C" void lk_gpu_attn_set_fused(lk_gpu_attn *a, loki_cuda_fused mode) {
    a->fused = mode == LOKI_CUDA_FUSED_DEFAULT ? (loki_cuda_fused)LK_FUSED_DEFAULT : mode;
}

extern "C" void lk_gpu_attn_set_fused_blocks(lk_gpu_attn *a, int blocks) {
    a->plan.force_c = LK_MAX(blocks, 0);
    a->plan.B = 0; /* the next launch chooses again */
}
extern "C" void lk_gpu_attn_set_pdl(lk_gpu_attn *a, bool on) { a->pdl = on && a->cu->prop.major >= 9; }
extern "C" int lk_gpu_attn_splits(const lk_gpu_attn *a) { return a->n_split_last; }

extern "C" loki_status lk_gpu_attn_decode(lk_gpu_attn *a, int layer, int32_t B, const float *q, float *out,
                                          loki_error *err) {
    return lk_gpu_attn_decode_seqs(a, layer, 0, B, q, out, err);
}

/* One step of score -> select -> attend -> reduce for B batch rows of the
 * view: row b attends over view.seq_len[b] tokens through block-table row
 * b * view.mpps (mpps = 0: every row reads one sequence's table, the
 * prompt rows of lk_gpu_attn_prompt). S_max / n_max: the longest row and
 * attend list (launch shapes); lay_off: H2O's accumulator rows of the
 * view's first sequence. q, out (B, H, D). */
static loki_status attn_run(lk_gpu_attn *a, const lk_kv_view &view, int32_t B, int32_t S_max, int32_t n_max,
                            size_t lay_off, const float *q, float *out, loki_error *err) {
    loki_status st = LOKI_OK;
    lk_gpu_kv *kv = a->kv;
    cudaStream_t s = a->cu->stream;
    const loki_attn_method m = a->p.method;
    const int layer = view.layer;
    const bool scored = m == LOKI_ATTN_LOKI || m == LOKI_ATTN_EXACT_TOPK;
    const bool sum_rows = a->shared && !a->p.gqa_max;
    lk_attend_args at;
    int dmax = 8; /* the layer's widest split dim (the score and fused kernels' lanes per key) */
    for (int h = 0; h < a->Hkv; h++) dmax = LK_MAX(dmax, kv->d_host[layer * a->Hkv + h]);
    /* the fused kernel's selections: per-head with one query head per KV
     * head (MHA), with grouped heads too (PER_HEAD), and the summed shared
     * selection too (ALL) */
    const bool fuse = a->fused == LOKI_CUDA_FUSED_ALL
                          ? !a->shared || !a->p.gqa_max
                          : !a->shared && (a->fused == LOKI_CUDA_FUSED_PER_HEAD ||
                                           (a->fused == LOKI_CUDA_FUSED_MHA && a->G == 1));
    /* timing a step the fused kernel may take: zeroed stamps for the most
     * blocks a launch of B rows can have (before the first event, so the
     * memset is not timed) */
    const int64_t most = (int64_t)LK_FUSED_MAXC * (a->shared ? a->Hkv : a->H) * B;
    a->stamp_blocks = 0;
    if (a->timing && m == LOKI_ATTN_LOKI && fuse) {
        if (a->stamp_cap < most) {
            lk_cuda_dealloc(a->cu, a->stamps);
            a->stamps = NULL, a->stamp_cap = 0;
            if ((st = lk_cuda_alloc(a->cu, (void **)&a->stamps, (size_t)most * LK_FUSED_NPH * 2 * 8,
                                    "fused phase stamps", err)))
                return st;
            a->stamp_cap = most;
        }
        LK_CUDA_TRY(cudaMemsetAsync(a->stamps, 0, (size_t)most * LK_FUSED_NPH * 2 * 8, s));
    }
    if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[0], s));

    /* Loki: the whole step in one kernel when it fits the GPU (loki_fused.cu;
     * timed as the attend stage) */
    if (m == LOKI_ATTN_LOKI && fuse) {
        const lk_fused_args f = {view,     a->p,  q,   a->H,      a->G, a->scale, a->n_ctx, a->slots,
                                 a->n_sel, out,   a->shared, a->timing ? a->stamps : NULL};
        bool taken = false;
        if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[1], s));
        if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[2], s));
        LK_CUDA_TRY(lk_launch_loki_fused(&f, B, S_max, dmax, &a->plan, s, &taken));
        if (taken) {
            if (a->timing) a->stamp_blocks = (int64_t)a->plan.C * (a->shared ? a->Hkv : a->H) * B;
            if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[3], s));
            a->n_split_last = 0; /* no splits: the fused kernel */
            return st;
        }
        if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[0], s)); /* the stages below, timed as usual */
    }

    /* score: approximate (loki) or exact (exact-topk) scores of every token */
    if (scored) {
        lk_score_args sc = {view, q, a->H, a->G, m == LOKI_ATTN_EXACT_TOPK, dmax, sum_rows, a->scale, a->scores,
                            a->n_ctx, a->rowmax};
        if (a->rowmax) LK_CUDA_TRY(cudaMemsetAsync(a->rowmax, 0, (size_t)B * a->H * 4, s));
        LK_CUDA_TRY(lk_launch_score(&sc, B, S_max, s, a->pdl));
    }
    if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[1], s));

    /* select: the budget policy over the scores (or H2O's accumulators) */
    if (sparse_method(m)) {
        lk_select_args se;
        memset(&se, 0, sizeof se);
        se.p = a->p;
        se.seq_len = view.seq_len;
        se.rows_per_seq = a->sel_rows, se.n_ctx = a->n_ctx, se.H = a->H;
        /* positions only for H2O's update; the attend gathers by slot */
        se.idx = m == LOKI_ATTN_H2O ? a->idx : NULL, se.n_sel = a->n_sel, se.slots = a->slots;
        se.block_table = view.block_table, se.mpps = view.mpps;
        if (m == LOKI_ATTN_H2O) { /* a unit's accumulator row is its first head's */
            se.scores = a->acc + lay_off, se.evicted = a->evicted + lay_off;
            se.srow_b = a->H, se.srow_r = a->shared ? a->G : 1;
        } else if (sum_rows) {
            se.scores = a->scores, se.srow_b = a->Hkv, se.srow_r = 1;
        } else if (a->shared) { /* combine the group's per-head rows */
            se.scores = a->scores, se.srow_b = a->H, se.srow_r = a->G;
            se.combine_g = a->G, se.combine_max = a->p.gqa_max, se.rowmax = a->rowmax;
        } else {
            se.scores = a->scores, se.srow_b = a->H, se.srow_r = 1;
        }
        LK_CUDA_TRY(lk_launch_select(&se, B, S_max, lk_cuda_sm_count(a->cu), s, a->pdl));
    }
    if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[2], s));

    /* attend: exact softmax over the list, split, then merged */
    memset(&at, 0, sizeof at);
    at.kv = view, at.q = q, at.H = a->H, at.G = a->G;
    at.nh = sparse_method(m) && !a->shared ? 1 : lk_pick_nh(a->G);
    at.idx = sparse_method(m) ? a->idx : NULL, at.n_sel = a->n_sel, at.slots = a->slots, at.lsc = a->lsc;
    at.sel_rows = a->sel_rows, at.n_ctx = a->n_ctx;
    at.lowrank = m == LOKI_ATTN_PCAATTN;
    at.scale = a->scale;
    at.part = a->part, at.part_ml = a->part_ml;
    at.raw = m == LOKI_ATTN_H2O ? a->raw : NULL;
    {
        if (!a->att_occ) LK_CUDA_TRY(lk_attend_occupancy(&at, &a->att_occ));
        const int tiles = (n_max + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
        const int n_split = split_count(a, tiles, B * a->Hkv * (a->G / at.nh), sparse_method(m));
        at.tiles_per_split = (tiles + n_split - 1) / n_split;
        at.n_split = LK_MAX((tiles + at.tiles_per_split - 1) / at.tiles_per_split, 1);
        a->n_split_last = at.n_split;
    }
    LK_CUDA_TRY(lk_launch_attend(&at, B, a->Hkv, s, a->pdl));
    LK_CUDA_TRY(lk_launch_reduce(a->part, a->part_ml, at.n_split, B, a->H, a->D, out, a->ml, s, a->pdl));
    if (m == LOKI_ATTN_H2O) {
        lk_h2o_args h = {view.seq_len, a->idx, a->n_sel, a->sel_rows, a->n_ctx, a->H, a->shared ? a->G : 1,
                         a->raw, a->ml, a->acc + lay_off, a->evicted + lay_off};
        LK_CUDA_TRY(lk_launch_h2o_update(&h, B, s, a->pdl));
    }
    if (a->timing) LK_CUDA_TRY(cudaEventRecord(a->ev[3], s));
fail:
    return st;
}

extern "C" loki_status lk_gpu_attn_decode_seqs(lk_gpu_attn *a, int layer, int32_t seq0, int32_t B, const float *q,
                                               float *out, loki_error *err) {
    lk_gpu_kv *kv = a->kv;
    int32_t S_max = 0, n_max = 0;
    if (layer < 0 || layer >= kv->n_layer || B < 1 || seq0 < 0 || seq0 + B > a->max_batch)
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: layer %d or sequences %d..%d out of range", layer, seq0,
                       seq0 + B - 1);
    for (int b = seq0; b < seq0 + B; b++)
        if (kv->len_host[b] < 1)
            return lk_fail(err, LOKI_ERR_ARG, "GPU attention: sequence %d has no cached tokens", b);
    step_lengths(a, seq0, B, &S_max, &n_max);
    if (a->bucketed) { /* shapes from the buckets: the kernels read the true lengths */
        S_max = LK_MIN(len_bucket(S_max), a->n_ctx);
        n_max = LK_MIN(len_bucket(n_max), a->n_ctx);
    }
    /* the view starts at sequence seq0: its batch row b is sequence seq0 + b */
    const lk_kv_view view = {kv->pool,          kv->block_table + (size_t)seq0 * kv->max_pages_per_seq,
                             kv->seq_len + seq0, kv->d_dev,
                             kv->n_pages,        kv->max_pages_per_seq,
                             kv->n_head_kv,      kv->head_dim,
                             layer};
    /* H2O's per-sequence state: rows of sequences seq0.. */
    const size_t lay_off = ((size_t)layer * a->max_batch + seq0) * a->H * a->n_ctx;
    return attn_run(a, view, B, S_max, n_max, lay_off, q, out, err);
}

extern "C" void lk_gpu_attn_set_k_fixed(lk_gpu_attn *a, int32_t k) { a->p.k_fixed = LK_MAX(k, 0); }

extern "C" loki_status lk_gpu_attn_prompt(lk_gpu_attn *a, int layer, int32_t seq, int32_t pos0, int32_t n,
                                          const float *q, float *out, loki_error *err) {
    loki_status st = LOKI_OK;
    lk_gpu_kv *kv = a->kv;
    if (layer < 0 || layer >= kv->n_layer || seq < 0 || seq >= a->max_batch || pos0 < 0 || n < 1 ||
        (int64_t)pos0 + n > kv->len_host[seq])
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: prompt rows %d..%d of sequence %d (%d cached), layer %d",
                       pos0, pos0 + n - 1, seq, seq >= 0 && seq < a->max_batch ? kv->len_host[seq] : 0, layer);
    if (n > a->row_len_cap) {
        lk_cuda_dealloc(a->cu, a->row_len);
        a->row_len = NULL, a->row_len_cap = 0, a->row_n = 0;
        if ((st = lk_cuda_alloc(a->cu, (void **)&a->row_len, (size_t)n * 4, "prompt row lengths", err))) return st;
        a->row_len_cap = n;
    }
    int32_t *len = (int32_t *)lk_calloc((size_t)n, sizeof *len, err);
    if (!len) return LOKI_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) len[i] = pos0 + i + 1;
    if (a->row_pos0 != pos0 || a->row_n != n) { /* the causal lengths, once per pass */
        st = lk_cuda_upload(a->cu, a->row_len, len, (size_t)n * 4, err);
        a->row_pos0 = pos0, a->row_n = st ? 0 : n;
    }
    const int32_t rows = a->p.method == LOKI_ATTN_H2O ? 1 : a->rows_max;
    const size_t lay_off = ((size_t)layer * a->max_batch + seq) * a->H * a->n_ctx;
    const size_t row = (size_t)a->H * a->D;
    for (int32_t i0 = 0; !st && i0 < n; i0 += rows) {
        const int32_t B = LK_MIN(rows, n - i0);
        int32_t n_max = 0;
        for (int32_t i = i0; i < i0 + B; i++) n_max = LK_MAX(n_max, list_len(a, len[i]));
        /* every row reads the sequence's block table (stride 0), its own length */
        const lk_kv_view view = {kv->pool,     kv->block_table + (size_t)seq * kv->max_pages_per_seq,
                                 a->row_len + i0, kv->d_dev,
                                 kv->n_pages,  0,
                                 kv->n_head_kv, kv->head_dim,
                                 layer};
        st = attn_run(a, view, B, len[i0 + B - 1], n_max, lay_off, q + (size_t)i0 * row, out + (size_t)i0 * row, err);
    }
    free(len);
    return st;
}

static int cmp_i32(const void *x, const void *y) {
    const int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

extern "C" loki_status lk_gpu_attn_selection(lk_gpu_attn *a, int32_t b, int32_t h, int32_t *pos, int32_t *n,
                                             loki_error *err) {
    loki_status st = LOKI_OK;
    int32_t ns = -1;
    if (b < 0 || b >= a->max_batch || h < 0 || h >= a->H)
        return lk_fail(err, LOKI_ERR_ARG, "GPU attention: selection (%d, %d) out of range", b, h);
    const int32_t S = a->kv->len_host[b], row = a->shared ? h / a->G : h;
    if (a->idx && (st = lk_cuda_download(a->cu, &ns, a->n_sel + (size_t)b * a->sel_rows + row, 4, err))) return st;
    if (ns < 0) {
        for (int32_t i = 0; i < S; i++) pos[i] = i;
        *n = S;
        return LOKI_OK;
    }
    *n = ns;
    if (a->p.method == LOKI_ATTN_H2O) {
        if ((st = lk_cuda_download(a->cu, pos, a->idx + ((size_t)b * a->sel_rows + row) * a->n_ctx, (size_t)ns * 4,
                                   err)))
            return st;
    } else { /* only slots were written: positions through the inverse of the sequence's block table */
        const lk_gpu_kv *kv = a->kv;
        const int32_t *bt = kv->bt_host + (size_t)b * kv->max_pages_per_seq;
        int32_t *inv = (int32_t *)lk_calloc((size_t)kv->n_pages, sizeof *inv, err);
        int2 *ent = (int2 *)lk_calloc((size_t)ns, sizeof *ent, err);
        if (!inv || !ent) {
            free(inv), free(ent);
            return LOKI_ERR_NOMEM;
        }
        for (int32_t l = 0; l < (S + LK_GPU_PAGE - 1) / LK_GPU_PAGE; l++) inv[bt[l]] = l;
        st = lk_cuda_download(a->cu, ent, a->slots + ((size_t)b * a->sel_rows + row) * a->n_ctx, (size_t)ns * 8, err);
        for (int32_t i = 0; !st && i < ns; i++)
            pos[i] = inv[ent[i].x / LK_GPU_PAGE] * LK_GPU_PAGE + ent[i].x % LK_GPU_PAGE;
        free(inv), free(ent);
        if (st) return st;
    }
    qsort(pos, (size_t)ns, sizeof *pos, cmp_i32); /* the select kernels append in no particular order */
    return LOKI_OK;
}
