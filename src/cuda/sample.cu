/*
 * sample.cu - next-token sampling on the GPU (interface and contracts:
 * cuda/lk_cuda_sample.h), the decisions of the CPU sampler
 * (src/sample/sampler.c) made on the device, bit for bit. This file: the
 * sampler object and the launches; the kernels: sample_kernels.cuh.
 *
 * How it stays exact. The CPU penalises, sorts the candidates (logit
 * descending, ties to the lower id: a total order without NaN, so any
 * correct sort gives the same list), then works on the sorted list with
 * sequential loops: expf((logit - max) / temp) in float, a double sum in
 * sorted order, probabilities rounded back to float, running double sums for
 * top-p, the total and the draw. Here the candidates are found and ordered
 * exactly (integer keys: the orderable float bits above the id), and every
 * float and double operation of the CPU is repeated with round-to-nearest
 * intrinsics that nvcc never fuses, in the CPU's order: each running sum is
 * added by one thread, one element after the other. expf is glibc's,
 * operation for operation (sample_expf.h). Sign of zero never matters (-0
 * and +0 tie on the CPU, and x - (+-0) and expf(+-0) agree), so keys map -0
 * to +0 and the logit is recovered from its key.
 *
 * One lk_cuda_sample, rows R, vocabulary V, chunks of SMP_CHUNK logits per
 * block for the V-wide kernels:
 *   penalty (repeat_penalty != 1, repeat_last_n > 0): the logits copied to
 *     `work` (device-to-device), then one block per row writes each history
 *     token's penalised logit (from the original, so repeated tokens write
 *     the same value: penalised once, as the CPU).
 *   greedy (temp <= 0): argmax_part (chunks, R) -> argmax_final (R), largest
 *     key (value, then lower id); index 0 wins when its logit is NaN (the
 *     CPU's scan starts there and nothing compares greater than NaN).
 *   top-k (temp > 0, keep = kept candidates <= LK_CUDA_SAMPLE_TOPK_MAX):
 *     radix select of the keep-th largest 32-bit key in 4 passes of 8 bits
 *     (histograms in global memory, every block re-derives the digits so far
 *     with one warp), gather (keys above the threshold, and the tied ones
 *     when all are taken; warp-aggregated appends), ties (when tied keys are
 *     taken in part: the lowest ids, by block scans in index order), finish
 *     (one block per row: CUB BlockRadixSort of the keep keys, then smp_finish).
 *   full sort (keep larger): 64-bit keys (value << idbits | ~id) sorted per
 *     row by CUB (DeviceRadixSort for one row, DeviceSegmentedRadixSort for
 *     several; temp storage from init), then smp_finish over the keep first.
 * smp_finish: each pass over the candidates recomputes the values a tile at
 * a time into shared memory (all threads), one thread adds them in order;
 * the min-p cut is a parallel first-index search. The full path's running
 * sums over up to V candidates are that one thread's dependent double adds:
 * the slow part of that path (docs/GPU.md).
 */
#include "cuda/sample_kernels.cuh"

#include "sample/sampler.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <math.h>

#define SMP_FULL_MAX_ROWS 65535 /* grid.y */

enum smp_path { SMP_GREEDY, SMP_TOPK, SMP_FULL };

struct lk_cuda_sampler {
    lk_cuda *cu;                      /* borrowed */
    loki_sampler_params p;
    int32_t V, max_rows, W, keep, n_chunks, idbits;
    int path;
    bool penalty;
    smp_row *st;
    int32_t *hist, *stage;            /* (max_rows, W), (W) accept's upload */
    smp_stop *stop;
    float *work;                      /* (max_rows, V) when penalty */
    unsigned long long *part;
    uint32_t *rhist, *n_cand, *eqcnt;
    unsigned long long *cand;
    unsigned long long *keys_a, *keys_b; /* full: (max_rows, V) each, CUB's double buffer */
    int *offsets;                     /* full: (max_rows + 1) row starts */
    void *sort_tmp;
    size_t sort_tmp_bytes;
};

/* ------------------------------------------------------------- host */

/* The CPU's initial state for seed (sampler.c: loki_sampler_init). */
static unsigned long long seed_state(uint64_t seed) {
    const unsigned long long x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    return x ? x : 1;
}

/* Device memory for the sampler, zeroed; NULL-safe free in sampler_free. */
static loki_status salloc(lk_cuda_sampler *s, void **p, size_t bytes, const char *what, loki_error *err) {
    loki_status st = lk_cuda_alloc(s->cu, p, bytes, what, err);
    if (st) return st;
    LK_CUDA_TRY(cudaMemsetAsync(*p, 0, bytes, s->cu->stream));
    return LOKI_OK;
fail:
    return st;
}

/* The kernels' arguments for a call of rows starting at sampler row row0
 * (src, tokens set by the caller): the per-row state is offset by row0, the
 * scratch (part, rhist, ...) is the call's rows 0.. as always. */
static smp_args make_args(const lk_cuda_sampler *s, int32_t row0) {
    smp_args a = {};
    a.st = s->st + row0, a.hist = s->hist + (size_t)row0 * s->W, a.stop = s->stop;
    a.temp = s->p.temp, a.top_p = s->p.top_p, a.min_p = s->p.min_p;
    a.V = s->V, a.W = s->W, a.keep = s->keep, a.n_chunks = s->n_chunks, a.idbits = s->idbits;
    a.part = s->part, a.rhist = s->rhist, a.n_cand = s->n_cand, a.eqcnt = s->eqcnt, a.cand = s->cand;
    return a;
}

/* CUB's temp storage for sorting rows rows: *bytes (no work is done). */
static cudaError_t sort_bytes(lk_cuda_sampler *s, int32_t rows, size_t *bytes) {
    cub::DoubleBuffer<unsigned long long> db(s->keys_a, s->keys_b);
    const int end_bit = 32 + s->idbits;
    *bytes = 0;
    if (rows == 1) return cub::DeviceRadixSort::SortKeysDescending(NULL, *bytes, db, s->V, 0, end_bit, s->cu->stream);
    return cub::DeviceSegmentedRadixSort::SortKeysDescending(NULL, *bytes, db, rows * s->V, rows, s->offsets,
                                                             s->offsets + 1, 0, end_bit, s->cu->stream);
}

extern "C" loki_status lk_cuda_sampler_init(lk_cuda *cu, const loki_sampler_params *params, int32_t n_vocab,
                                            int32_t max_rows, lk_cuda_sampler **out, loki_error *err) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > (1 << 30))
        return lk_fail(err, LOKI_ERR_ARG, "GPU sampler: n_vocab %d must be in [1, 2^30]", n_vocab);
    if (max_rows < 1 || max_rows > SMP_FULL_MAX_ROWS)
        return lk_fail(err, LOKI_ERR_ARG, "GPU sampler: max_rows %d must be in [1, %d]", max_rows, SMP_FULL_MAX_ROWS);
    loki_status vst = lk_sampler_params_check(params, err); /* the CPU sampler's own checks */
    if (vst) return vst;
    lk_cuda_sampler *s = (lk_cuda_sampler *)lk_calloc(1, sizeof *s, err);
    if (!s) return LOKI_ERR_NOMEM;
    loki_status st = LOKI_OK;
    const size_t R = (size_t)max_rows, V = (size_t)n_vocab;
    s->cu = cu, s->p = *params, s->V = n_vocab, s->max_rows = max_rows, s->W = params->repeat_last_n;
    s->keep = params->top_k > 0 && params->top_k < n_vocab ? params->top_k : n_vocab;
    s->n_chunks = (int32_t)((V + SMP_CHUNK - 1) / SMP_CHUNK);
    while ((1ull << s->idbits) < V) s->idbits++;
    s->path = params->temp <= 0.0f ? SMP_GREEDY : s->keep <= LK_CUDA_SAMPLE_TOPK_MAX ? SMP_TOPK : SMP_FULL;
    s->penalty = params->repeat_penalty != 1.0f && s->W > 0;
    if (s->path == SMP_FULL && R * V > (size_t)INT32_MAX) {
        st = lk_fail(err, LOKI_ERR_ARG, "GPU sampler: the full-sort path (top_k %d over %d tokens) sorts at most "
                     "2^31 logits at once; %d rows are too many", params->top_k, n_vocab, max_rows);
        goto fail;
    }
    if ((st = salloc(s, (void **)&s->st, R * sizeof(smp_row), "sampler state", err))) goto fail;
    if ((st = salloc(s, (void **)&s->hist, R * (size_t)LK_MAX(s->W, 1) * 4, "sampler history", err))) goto fail;
    if ((st = salloc(s, (void **)&s->stage, (size_t)LK_MAX(s->W, 1) * 4, "sampler staging", err))) goto fail;
    if ((st = salloc(s, (void **)&s->stop, sizeof(smp_stop), "sampler stop tokens", err))) goto fail;
    if (s->penalty && (st = salloc(s, (void **)&s->work, R * V * 4, "sampler penalised logits", err))) goto fail;
    if (s->path == SMP_GREEDY &&
        (st = salloc(s, (void **)&s->part, R * (size_t)s->n_chunks * 8, "sampler argmax", err)))
        goto fail;
    if (s->path == SMP_TOPK) {
        if ((st = salloc(s, (void **)&s->rhist, R * 1024 * 4, "sampler histograms", err))) goto fail;
        if ((st = salloc(s, (void **)&s->n_cand, R * 4, "sampler counts", err))) goto fail;
        if ((st = salloc(s, (void **)&s->eqcnt, R * (size_t)s->n_chunks * 4, "sampler tie counts", err))) goto fail;
        if ((st = salloc(s, (void **)&s->cand, R * (size_t)s->keep * 8, "sampler candidates", err))) goto fail;
    }
    if (s->path == SMP_FULL) {
        if ((st = salloc(s, (void **)&s->keys_a, R * V * 8, "sampler sort keys", err))) goto fail;
        if ((st = salloc(s, (void **)&s->keys_b, R * V * 8, "sampler sort keys", err))) goto fail;
        if ((st = salloc(s, (void **)&s->offsets, (R + 1) * sizeof(int), "sampler row offsets", err))) goto fail;
        int *off = (int *)lk_malloc((R + 1) * sizeof(int), err);
        if (!off) {
            st = LOKI_ERR_NOMEM;
            goto fail;
        }
        for (size_t i = 0; i <= R; i++) off[i] = (int)(i * V);
        st = lk_cuda_upload(cu, s->offsets, off, (R + 1) * sizeof(int), err);
        free(off);
        if (st) goto fail;
        size_t b = 0;
        LK_CUDA_TRY(sort_bytes(s, 1, &b));
        s->sort_tmp_bytes = b;
        if (max_rows > 1) {
            LK_CUDA_TRY(sort_bytes(s, max_rows, &b));
            s->sort_tmp_bytes = LK_MAX(s->sort_tmp_bytes, b);
        }
        if ((st = salloc(s, &s->sort_tmp, s->sort_tmp_bytes, "sampler sort scratch", err))) goto fail;
    }
    reset_kernel<<<(max_rows + 255) / 256, 256, 0, cu->stream>>>(s->st, 0, max_rows, seed_state(params->seed));
    LK_CUDA_LAUNCHED();
    if ((st = lk_cuda_sync(cu, err))) goto fail;
    *out = s;
    return LOKI_OK;
fail:
    lk_cuda_sampler_free(s);
    return st;
}

extern "C" void lk_cuda_sampler_free(lk_cuda_sampler *s) {
    if (!s) return;
    void *bufs[] = {s->st, s->hist, s->stage, s->stop, s->work, s->part, s->rhist, s->n_cand, s->eqcnt,
                    s->cand, s->keys_a, s->keys_b, s->offsets, s->sort_tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lk_cuda_dealloc(s->cu, bufs[i]);
    free(s);
}

extern "C" const char *lk_cuda_sampler_path(const lk_cuda_sampler *s) {
    return s->path == SMP_GREEDY ? "greedy" : s->path == SMP_TOPK ? "top-k" : "full sort";
}

/* LOKI_ERR_ARG unless 0 <= row < max_rows. */
static loki_status check_row(const lk_cuda_sampler *s, int32_t row, const char *fn, loki_error *err) {
    if (row < 0 || row >= s->max_rows)
        return lk_fail(err, LOKI_ERR_ARG, "%s: row %d is not in [0, %d)", fn, row, s->max_rows);
    return LOKI_OK;
}

extern "C" loki_status lk_cuda_sampler_reset(lk_cuda_sampler *s, int32_t row, uint64_t seed, loki_error *err) {
    loki_status st = check_row(s, row, "lk_cuda_sampler_reset", err);
    if (st) return st;
    reset_kernel<<<1, 1, 0, s->cu->stream>>>(s->st, row, 1, seed_state(seed));
    LK_CUDA_LAUNCHED();
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_sampler_accept(lk_cuda_sampler *s, int32_t row, const int32_t *tokens, int32_t n,
                                              loki_error *err) {
    loki_status st = check_row(s, row, "lk_cuda_sampler_accept", err);
    if (st) return st;
    if (n < 0 || (n > 0 && !tokens))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_sampler_accept: %d tokens at %p", n, (const void *)tokens);
    if (n == 0 || s->W == 0) return LOKI_OK; /* loki_sampler_accept keeps nothing without a window */
    {
        const int32_t m = LK_MIN(n, s->W);
        /* pageable source: returns once the data is staged, the copy is stream ordered */
        LK_CUDA_TRY(cudaMemcpyAsync(s->stage, tokens + (n - m), (size_t)m * 4, cudaMemcpyHostToDevice, s->cu->stream));
        accept_kernel<<<1, 256, 0, s->cu->stream>>>(s->st, s->hist, s->W, row, s->stage, m, n);
        LK_CUDA_LAUNCHED();
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_sampler_set_stop(lk_cuda_sampler *s, const int32_t *stop, int32_t n_stop,
                                                loki_error *err) {
    loki_status st = LOKI_OK;
    if (n_stop < 0 || n_stop > LK_CUDA_SAMPLER_MAX_STOP || (n_stop > 0 && !stop))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_sampler_set_stop: %d stop tokens (at most %d)", n_stop,
                       LK_CUDA_SAMPLER_MAX_STOP);
    {
        smp_stop v = {};
        v.n = n_stop;
        for (int32_t i = 0; i < n_stop; i++) v.tok[i] = stop[i];
        set_stop_kernel<<<1, 1, 0, s->cu->stream>>>(s->stop, v);
        LK_CUDA_LAUNCHED();
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_sample(lk_cuda_sampler *s, const float *logits, int32_t row0, int32_t rows,
                                      int32_t *tokens, loki_error *err) {
    loki_status st = LOKI_OK;
    if (row0 < 0 || rows < 0 || (int64_t)row0 + rows > s->max_rows)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_sample: rows %d..%d (the sampler has %d)", row0, row0 + rows - 1,
                       s->max_rows);
    if (rows == 0) return LOKI_OK;
    if (!logits || !tokens) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_sample: %s is NULL", logits ? "tokens" : "logits");
    {
        cudaStream_t str = s->cu->stream;
        const size_t R = (size_t)rows, V = (size_t)s->V;
        const dim3 wide((unsigned)s->n_chunks, (unsigned)rows);
        smp_args a = make_args(s, row0);
        a.src = logits, a.tokens = tokens;
        if (s->penalty) {
            LK_CUDA_TRY(cudaMemcpyAsync(s->work, logits, R * V * 4, cudaMemcpyDeviceToDevice, str));
            penalty_kernel<<<rows, SMP_THREADS, 0, str>>>(s->work, logits, a, s->p.repeat_penalty);
            LK_CUDA_LAUNCHED();
            a.src = s->work;
        }
        if (s->path == SMP_GREEDY) {
            argmax_part_kernel<<<wide, SMP_THREADS, 0, str>>>(a);
            LK_CUDA_LAUNCHED();
            argmax_final_kernel<<<rows, 32, 0, str>>>(a);
            LK_CUDA_LAUNCHED();
        } else if (s->path == SMP_TOPK) {
            LK_CUDA_TRY(cudaMemsetAsync(s->rhist, 0, R * 1024 * 4, str));
            LK_CUDA_TRY(cudaMemsetAsync(s->n_cand, 0, R * 4, str));
            for (int p = 0; p < 4; p++) {
                rsel_hist_kernel<<<wide, SMP_THREADS, 0, str>>>(a, p);
                LK_CUDA_LAUNCHED();
            }
            gather_kernel<<<wide, SMP_THREADS, 0, str>>>(a);
            LK_CUDA_LAUNCHED();
            ties_kernel<<<wide, SMP_THREADS, 0, str>>>(a);
            LK_CUDA_LAUNCHED();
            if (s->keep <= 256) topk_finish_kernel<256, 1><<<rows, 256, 0, str>>>(a);
            else topk_finish_kernel<512, 4><<<rows, 512, 0, str>>>(a);
            LK_CUDA_LAUNCHED();
        } else {
            full_keys_kernel<<<wide, SMP_THREADS, 0, str>>>(a, s->keys_a);
            LK_CUDA_LAUNCHED();
            size_t need = 0;
            LK_CUDA_TRY(sort_bytes(s, rows, &need));
            if (need > s->sort_tmp_bytes)
                return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_sample: the sort of %d rows needs %zu bytes of scratch, "
                               "init sized %zu", rows, need, s->sort_tmp_bytes);
            cub::DoubleBuffer<unsigned long long> db(s->keys_a, s->keys_b);
            const int end_bit = 32 + s->idbits;
            if (rows == 1)
                LK_CUDA_TRY(cub::DeviceRadixSort::SortKeysDescending(s->sort_tmp, need, db, s->V, 0, end_bit, str));
            else
                LK_CUDA_TRY(cub::DeviceSegmentedRadixSort::SortKeysDescending(
                    s->sort_tmp, need, db, rows * s->V, rows, s->offsets, s->offsets + 1, 0, end_bit, str));
            a.sorted = db.Current();
            full_finish_kernel<<<rows, SMP_FULL_THREADS, 0, str>>>(a);
            LK_CUDA_LAUNCHED();
        }
    }
    return LOKI_OK;
fail:
    return st;
}

extern "C" loki_status lk_cuda_sampler_state(lk_cuda_sampler *s, int32_t row, uint64_t *rng, int32_t *hist,
                                             int32_t *hist_len, int32_t *hist_pos, loki_error *err) {
    loki_status st = check_row(s, row, "lk_cuda_sampler_state", err);
    if (st) return st;
    smp_row r;
    if ((st = lk_cuda_download(s->cu, &r, s->st + row, sizeof r, err))) return st;
    if (hist && s->W > 0 &&
        (st = lk_cuda_download(s->cu, hist, s->hist + (size_t)row * s->W, (size_t)s->W * 4, err)))
        return st;
    if (rng) *rng = r.rng;
    if (hist_len) *hist_len = r.hist_len;
    if (hist_pos) *hist_pos = r.hist_pos;
    return LOKI_OK;
}

extern "C" loki_status lk_cuda_sample_expf(lk_cuda *cu, float *y, const float *x, int64_t n, loki_error *err) {
    loki_status st = LOKI_OK;
    if (n < 0) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_sample_expf: n = %lld", (long long)n);
    if (n == 0) return LOKI_OK;
    {
        const int64_t want = (n + 255) / 256, cap = (int64_t)cu->prop.multiProcessorCount * 16;
        expf_kernel<<<(unsigned)(want < cap ? want : cap), 256, 0, cu->stream>>>(y, x, n);
        LK_CUDA_LAUNCHED();
    }
    return LOKI_OK;
fail:
    return st;
}
