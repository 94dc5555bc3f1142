/*
 * cpu.c - lk_cpu: the pool plus every scratch buffer the CPU kernels use,
 * allocated once here so no kernel allocates per call.
 */
#include "cpu/cpu_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

loki_status lk_cpu_init(lk_cpu **out, int n_threads, int max_rows, int64_t max_dim,
                        loki_error *err) {
    if (n_threads < 1 || max_rows < 1 || max_dim < 1 || max_dim > ((int64_t)1 << 30))
        return lk_fail(err, LOKI_ERR_ARG, "cpu backend: bad sizes (threads %d, rows %d, dim %lld)",
                       n_threads, max_rows, (long long)max_dim);
    lk_cpu *c = lk_calloc(1, sizeof *c, err);
    if (!c) return LOKI_ERR_NOMEM;
    c->nth = n_threads;
    c->max_rows = max_rows;
    c->max_dim = max_dim;
    c->kernels = LK_CPU_KERNELS_AUTO;
    loki_status st = lk_pool_init(&c->pool, n_threads, err);
    if (st != LOKI_OK) {
        free(c);
        return st;
    }
    /* Per-thread scratch: the largest of a packed GEMM panel (f32 or integer), a tile of W
     * rows for the portable sgemm path, one converted row (scalar
     * matrix-vector) and a RoPE cos/sin table (max_dim floats). */
    size_t thr = (size_t)2 * LK_GEMM_KC * LK_GEMM_NR;
    /* the portable GEMM's f32 tile, lk_blas_tile_rows(in) * in floats, at
     * its largest over in <= max_dim: 256 * in up to in = 4096 (LK_BLAS_TILE_FLOATS),
     * then LK_BLAS_TILE_FLOATS, then 16 * in past 65536 (tile_rows(max_dim) *
     * max_dim alone is smaller for max_dim > 4096: a 7B model's in = 4096
     * tiles overflowed it) */
    const size_t tile = LK_MIN((size_t)256 * (size_t)max_dim,
                               LK_MAX((size_t)LK_BLAS_TILE_FLOATS, (size_t)16 * (size_t)max_dim));
    thr = LK_MAX(thr, tile);
    thr = LK_MAX(thr, (size_t)max_dim);
    thr = LK_MAX(thr, (size_t)LK_QG_SCRATCH_FLOATS); /* integer GEMM panel (gemm_q8_x86.c / _avx2.c) */
    c->thr_floats = round16(thr);
    /* quantized activations, row layout of lk_q8_act_row: max_rows rows
     * (the integer GEMM quantizes every row of x) */
    size_t nb = (size_t)lk_q8_row_blocks(max_dim) * (size_t)max_rows;
    size_t ng = (size_t)lk_q8_row_groups(max_dim) * (size_t)max_rows;
    c->xq.q = lk_alloc_aligned((size_t)lk_q8_row_q_bytes(max_dim) * (size_t)max_rows, err);
    c->xq.d = lk_alloc_aligned(nb * sizeof(float), err);
    c->xq.c = lk_alloc_aligned(nb * sizeof(int32_t), err);
    c->xq.s32 = lk_alloc_aligned(nb * sizeof(float), err);
    c->xq.s16 = lk_alloc_aligned((ng + 16) * sizeof(float), err);
    c->wbuf = lk_alloc_aligned(round16((size_t)max_dim) * sizeof(float), err);
    c->freq = lk_alloc_aligned(round16((size_t)max_dim / 2 + 1) * sizeof(float), err);
    c->thr = lk_alloc_aligned(c->thr_floats * (size_t)n_threads * sizeof(float), err);
    if (!c->xq.q || !c->xq.d || !c->xq.c || !c->xq.s32 || !c->xq.s16 || !c->wbuf || !c->freq || !c->thr) {
        lk_cpu_free(c);
        return LOKI_ERR_NOMEM;
    }
    /* Our pool is the only parallelism: OpenBLAS (portable GEMM path) runs
     * single-threaded inside each pool thread, so no second set of worker
     * threads spins on the same cores (process-wide setting). */
    openblas_set_num_threads(1);
    *out = c;
    return LOKI_OK;
}

void lk_cpu_free(lk_cpu *c) {
    if (!c) return;
    lk_pool_free(c->pool);
    lk_free_aligned(c->xq.q);
    lk_free_aligned(c->xq.d);
    lk_free_aligned(c->xq.c);
    lk_free_aligned(c->xq.s32);
    lk_free_aligned(c->xq.s16);
    lk_free_aligned(c->wbuf);
    lk_free_aligned(c->freq);
    lk_free_aligned(c->thr);
    free(c);
}

lk_pool *lk_cpu_pool(lk_cpu *c) { return c->pool; }

void lk_cpu_set_kernels(lk_cpu *c, lk_cpu_kernels k) { c->kernels = k; }
