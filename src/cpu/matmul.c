/*
 * matmul.c - lk_cpu_matmul dispatch, its threading, and the portable scalar
 * kernels (the SIMD ones are in matmul_x86.c, quant_x86.c, gemm_q8_x86.c,
 * AVX-512, and matmul_avx2.c, quant_avx2.c, gemm_q8_avx2.c, AVX2).
 *
 * Paths (see dev/cpu/README.md for the measurements behind them):
 *   n <= LK_MV_MAX_N (decode, short batches): matrix-vector; the rows of
 *           W are split across the pool in multiples of 4 (the SIMD kernels
 *           do 2 or 4 rows at a time); for n > 1 each thread walks its rows in
 *           L1-sized chunks, running every row of x over a chunk. For q8_0,
 *           q4_0, q4_1, q5_0, q5_1, q4_k, q5_k and q6_k (lk_mv_has_qdot) x is
 *           first quantized to int8 blocks of 32 once (thread 0, before the
 *           dispatch) and every thread uses integer dot products on the
 *           blocks as stored (quant_x86.c with AVX-512 VNNI, quant_avx2.c
 *           with AVX2, quant_dot.c portable). f32/f16/bf16, q2_k and q3_k keep f32 x (q2_k/q3_k:
 *           each row dequantized into the thread's scratch row, portable).
 *   larger n: GEMM. AVX-512 and AVX2 builds (AUTO kernels): for the
 *           lk_mv_has_qdot types the integer GEMM (gemm_q8_x86.c, vpdpbusd
 *           tiles on panels of 16 output columns; gemm_q8_avx2.c,
 *           vpmaddubsw tiles on panels of 8): every row of x quantized once
 *           (split across the pool, the same quantizer as above), W's codes
 *           unpacked per panel (gemm_q8_pack.h). AVX-512 builds: for
 *           f32/f16/bf16, q2_k and q3_k the packed f32 micro-kernel
 *           (panels of 32 output columns split across the pool; W converted
 *           or dequantized block by block into the panel). Otherwise (those
 *           dtypes on AVX2, SCALAR and BLAS_GEMM kernels, other builds) the
 *           portable path dequantizes lk_blas_tile_rows(in) rows of
 *           W at a time into per-thread scratch and calls cblas_sgemm on
 *           each tile (OpenBLAS set to 1 thread: our pool is the only
 *           parallelism, so no second set of spinning threads competes for
 *           the cores); it keeps x in f32.
 * No copy of W beyond a panel, a tile or a row ever exists.
 *
 * Accuracy with quantized activations (n <= LK_MV_MAX_N at every level;
 * the integer GEMM):
 * x_j is replaced by x~_j = d_b * q_j with |x_j - x~_j| <= d_b/2 =
 * amax_b/254, and the kernels compute W~ . x~ (W~ the dequantized weights)
 * up to f32 rounding, so |y - W~ . x| <= sum_b (amax_b / 254) * sum_{j in b}
 * |w~_j| (plus f32 rounding) - about 0.4% of sum |w~_j||x_j| in the worst
 * case, typically ~0.1% relative RMS (tests/test_cpu_matmul.c checks this
 * bound per output, tests/test_quant_dot.c the W~ . x~ part per kernel).
 * This is llama.cpp's scheme for its legacy types (x scale fp16 there, f32
 * here); for the k-quants llama.cpp uses one x scale per 256 (q8_K), we keep
 * blocks of 32 (smaller error, same data for every type). The integer GEMMs
 * (n > LK_MV_MAX_N, AVX-512 and AVX2) have the same bound; the f32 GEMMs
 * (other dtypes, and the portable/BLAS levels) keep f32 activations: only
 * W's own quantization error remains.
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ scalar */

void lk_q8_quantize_scalar(const float *x, lk_q8_act *a, int64_t in) {
    for (int64_t b = 0; b < in / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t sum[2] = {0, 0};
        for (int j = 0; j < 32; j++) {
            int32_t q = (int32_t)nearbyintf(xb[j] * id); /* half to even, like vcvtps2dq */
            q = q > 127 ? 127 : q < -127 ? -127 : q; /* never -128: see lk_mv_q8_avx2 */
            a->q[32 * b + j] = (int8_t)q;
            sum[j >> 4] += q;
        }
        a->d[b] = d;
        a->c[b] = -16 * (sum[0] + sum[1]);
        a->s32[b] = d * (float)(sum[0] + sum[1]);
        a->s16[2 * b] = d * (float)sum[0];
        a->s16[2 * b + 1] = d * (float)sum[1];
    }
}

void lk_mv_float_scalar(lk_dtype dt, float *y, const void *w, const float *x, int64_t in,
                        int64_t r0, int64_t r1, float *tmp) {
    const size_t rb = lk_dtype_row_bytes(dt, in);
    for (int64_t r = r0; r < r1; r++) {
        const char *row = (const char *)w + (size_t)r * rb;
        const float *wr = (const float *)row;
        if (dt != LK_DTYPE_F32) {
            lk_row_to_f32(dt, row, tmp, in);
            wr = tmp;
        }
        /* 4 partial sums: independent chains (and closer to the SIMD order) */
        float s[4] = {0, 0, 0, 0};
        int64_t k = 0;
        for (; k + 4 <= in; k += 4)
            for (int j = 0; j < 4; j++) s[j] += wr[k + j] * x[k + j];
        for (; k < in; k++) s[0] += wr[k] * x[k];
        y[r] = (s[0] + s[1]) + (s[2] + s[3]);
    }
}

/* Quantize one row x (in) into xq: the build's SIMD quantizer when simd,
 * else the portable one (bit-identical results either way). */
static void quantize_row(int simd, const float *x, lk_q8_act *xq, int64_t in) {
#if defined(LK_CPU_X86_512)
    if (simd) {
        lk_q8_quantize_x86(x, xq, in);
        return;
    }
#elif defined(LK_CPU_X86_256)
    if (simd) {
        lk_q8_quantize_avx2(x, xq, in);
        return;
    }
#endif
    (void)simd;
    lk_q8_quantize_scalar(x, xq, in);
}

/* ------------------------------------------------------------ tasks */

typedef struct mm_task {
    lk_cpu *c;
    float *y;          /* (n, out) */
    const float *x;    /* (n, in) */
    const lk_tensor *w;
    int n;
    int simd;          /* use the SIMD kernels */
    int qdot;          /* matrix-vector on quantized x (lk_mv_has_qdot) */
} mm_task;

/* Rows of W per chunk: ~16 KiB, so a chunk stays in L1 while every row of
 * x passes over it (n > 1); a multiple of 4 for the 4-row kernels. */
static int64_t mv_chunk_rows(size_t row_bytes) {
    int64_t r = (int64_t)(16384 / row_bytes);
    return r < 4 ? 4 : r & ~(int64_t)3;
}

static void mv_task(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    const lk_tensor *w = t->w;
    const int64_t in = w->ne[0], out = w->ne[1];
    int64_t r0, r1;
    lk_split(out, 4, ith, nth, &r0, &r1);
    const int64_t step = t->n == 1 ? r1 - r0 : mv_chunk_rows(lk_dtype_row_bytes(w->dtype, in));
    for (int64_t c0 = r0; c0 < r1; c0 += step) {
        const int64_t c1 = LK_MIN(c0 + step, r1);
        for (int i = 0; i < t->n; i++) {
            float *y = t->y + (size_t)i * out;       /* (out) row i of y */
            const float *x = t->x + (size_t)i * in;  /* (in) row i of x */
            const lk_q8_act xq = lk_cpu_xq_row(t->c, i, in);
#if defined(LK_CPU_X86_512) && defined(LK_MV_Q4_F32)
            /* measurement knob (dev/cpu): the f32-activation q4_0/q4_1 kernel */
            if (t->simd && (w->dtype == LK_DTYPE_Q4_0 || w->dtype == LK_DTYPE_Q4_1)) {
                lk_mv_q4_x86(w->dtype, y, w->data, x, in, c0, c1);
                continue;
            }
#endif
            if (t->qdot) {
#if defined(LK_CPU_X86_512)
                if (t->simd) lk_mv_qdot_x86(w->dtype, y, w->data, &xq, in, c0, c1);
                else
#elif defined(LK_CPU_X86_256)
                if (t->simd) lk_mv_qdot_avx2(w->dtype, y, w->data, &xq, in, c0, c1);
                else
#endif
                    lk_mv_qdot_scalar(w->dtype, y, w->data, &xq, in, c0, c1);
                continue;
            }
#if defined(LK_CPU_X86_512)
            if (t->simd && !lk_quant_is_kind(w->dtype)) { /* f32/f16/bf16; q2_k, q3_k: portable below */
                lk_mv_float_x86(w->dtype, y, w->data, x, in, c0, c1);
                continue;
            }
#elif defined(LK_CPU_X86_256)
            if (t->simd && !lk_quant_is_kind(w->dtype)) { /* the same split as above */
                lk_mv_float_avx2(w->dtype, y, w->data, x, in, c0, c1);
                continue;
            }
#endif
            lk_mv_float_scalar(w->dtype, y, w->data, x, in, c0, c1, lk_cpu_thr_scratch(t->c, ith));
        }
    }
}

/* Portable GEMM share of thread ith: its rows of W (16-row aligned split) in
 * tiles of lk_blas_tile_rows(in) rows, each converted to f32 (unless W is f32)
 * then one sgemm per tile. */
static void gemm_blas_task(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    const lk_tensor *w = t->w;
    const int64_t in = w->ne[0], out = w->ne[1], tr = lk_blas_tile_rows(in);
    const size_t rb = lk_dtype_row_bytes(w->dtype, in);
    int64_t r0, r1;
    lk_split(out, 16, ith, nth, &r0, &r1);
    float *tile = lk_cpu_thr_scratch(t->c, ith); /* (tr, in) */
    for (int64_t j0 = r0; j0 < r1; j0 += tr) {
        const int64_t nj = LK_MIN(tr, r1 - j0);
        const float *wt = tile;
        if (w->dtype == LK_DTYPE_F32) {
            wt = (const float *)w->data + j0 * in;
        } else {
            for (int64_t j = 0; j < nj; j++)
                lk_row_to_f32(w->dtype, (const char *)w->data + (size_t)(j0 + j) * rb, tile + j * in, in);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->n, (int)nj, (int)in, 1.0f, t->x,
                    (int)in, wt, (int)in, 0.0f, t->y + j0, (int)out);
    }
}

#if defined(LK_CPU_X86_512)
static void gemm_x86_task(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    lk_gemm_x86(t->y, t->x, t->w, t->n, ith, nth, lk_cpu_thr_scratch(t->c, ith));
}
#endif

#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
/* Quantize this thread's share of the n rows of x into c->xq. */
static void quantize_rows_task(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    const int64_t in = t->w->ne[0];
    int64_t i0, i1;
    lk_split(t->n, 1, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        lk_q8_act xq = lk_cpu_xq_row(t->c, (int)i, in);
        quantize_row(t->simd, t->x + (size_t)i * in, &xq, in);
    }
}

/* Integer GEMM share of thread ith (gemm_q8_x86.c or gemm_q8_avx2.c). */
static void gemm_q8_task(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    float *scratch = lk_cpu_thr_scratch(t->c, ith);
#if defined(LK_CPU_X86_512)
    lk_gemm_q8_x86(t->y, &t->c->xq, t->w, t->n, ith, nth, scratch);
#else
    lk_gemm_q8_avx2(t->y, &t->c->xq, t->w, t->n, ith, nth, scratch);
#endif
}
#endif

/* Preconditions (programming errors: asserted in debug builds only): w is
 * (out, in) of a supported dtype with in <= max_dim (and in a multiple of the
 * dtype's block); 1 <= n <= max_rows; y does not alias x. */
void lk_cpu_matmul(lk_cpu *c, float *y, const float *x, const lk_tensor *w, int n) {
    const int64_t in = w->ne[0];
    assert(in >= 1 && in <= c->max_dim && n >= 1 && n <= c->max_rows);
    assert(lk_dtype_valid((int)w->dtype) && in % lk_dtype_block_elems(w->dtype) == 0);
    mm_task t = {.c = c, .y = y, .x = x, .w = w, .n = n, .simd = 0};
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
    t.simd = c->kernels != LK_CPU_KERNELS_SCALAR;
#endif
    if (n <= LK_MV_MAX_N) {
        t.qdot = lk_mv_has_qdot(w->dtype);
        for (int i = 0; t.qdot && i < n; i++) {
            lk_q8_act xq = lk_cpu_xq_row(c, i, in);
            quantize_row(t.simd, x + (size_t)i * in, &xq, in);
        }
        lk_pool_run(c->pool, mv_task, &t);
        return;
    }
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
    if (lk_cpu_gemm_qdot(c, w->dtype)) {
        lk_pool_run(c->pool, quantize_rows_task, &t);
        lk_pool_run(c->pool, gemm_q8_task, &t);
        return;
    }
#endif
#if defined(LK_CPU_X86_512)
    if (c->kernels == LK_CPU_KERNELS_AUTO) {
        lk_pool_run(c->pool, gemm_x86_task, &t);
        return;
    }
#endif
    lk_pool_run(c->pool, gemm_blas_task, &t);
}
