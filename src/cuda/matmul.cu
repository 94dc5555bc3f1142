/*
 * matmul.cu - lk_cuda_matmul (contract in cuda/lk_cuda_mm.h): argument
 * checks, the scratch, the activation quantizer of the decode path and the
 * bf16 GEMM path through cuBLAS. The decode kernels and the dequantization
 * of W are in gemv_quant.cu.
 *
 * Decode (n <= LK_CUDA_MV_MAX_N), integer-dot dtypes: quantize_x writes each
 * row of x as int8 codes (n, in) and per 32-block {d, d*S16_lo, d*S16_hi,
 * sum of codes (int bits)} (n, in/32) with exactly the arithmetic of the
 * CPU's lk_q8_quantize_scalar (d = amax/127 in f32, id = d != 0 ? 1/d : 0,
 * q = round-half-even(x*id) clamped to [-127, 127]; IEEE division, no
 * contraction), so the GPU and the CPU see the same x~.
 *
 * Prompt (n > LK_CUDA_MV_MAX_N): f16 W is multiplied in place with x
 * rounded to f16 (one cublasGemmEx, f16 inputs, f32 compute and output: as
 * llama.cpp's cuBLAS path; x beyond +-65504 would overflow); every other
 * dtype: x -> bf16 (n, in) scratch; W -> bf16 in tiles of up to
 * tile_elems / in rows (bf16 W in place); per tile one cublasGemmEx (bf16
 * inputs, f32 compute and output):
 *   y[:, r0:r0+m] (n x m, ld out) = x_bf (n x in) · W_bf[r0:r0+m]ᵀ.
 * In cuBLAS's column-major terms C (m x n, ldc = out) = Aᵀ B with A = the
 * tile (in x m, lda = in) and B = x_bf (in x n, ldb = in).
 */
#include "cuda/common.cuh"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <stdlib.h>

extern "C" {
#include "cuda/lk_cuda_mm.h"
}

/* gemv_quant.cu */
cudaError_t lk_mm_gemv(lk_dtype dt, int n, const lk_mm_seg &y, const void *w, int64_t in, int64_t out,
                       const float *xf, const int8_t *xq, const float4 *xm, size_t pf, cudaStream_t s);
cudaError_t lk_mm_to_bf16_rows(lk_dtype dt, uint16_t *dst, const void *w, int64_t in, int64_t rows, cudaStream_t s);
cudaError_t lk_mm_gemv_glu(lk_dtype dt, float *y, const void *wg, const void *wu, int64_t in, int64_t out,
                           const float *x, bool gelu, size_t pf, cudaStream_t s);
/* gemv_mma.cu */
cudaError_t lk_mm_gemv_mma(bool bf16, int n, const lk_mm_seg &y, const uint16_t *w, const uint16_t *x, int64_t in,
                           int64_t out, size_t pf, cudaStream_t s);
/* Most rows of x for the tensor-core matrix-vector kernel (f16 / bf16 W). */
#define LK_MM_MMA_MAX_N 16

/* Most elements of the GEMM's bf16 weight tile (128 MiB). */
#define LK_MM_TILE_MAX ((int64_t)64 << 20)
/* cuBLAS workspace (given explicitly so that graph capture works). */
#define LK_MM_BLAS_WS ((size_t)32 << 20)

struct lk_cuda_mm {
    lk_cuda *cu;             /* borrowed */
    int max_n;
    int64_t max_in, max_out;
    int8_t *xq;              /* (min(max_n, MV_MAX_N), max_in) quantized x */
    float4 *xm;              /* (min(max_n, MV_MAX_N), max_in/32) block scales and sums */
    uint16_t *xb;            /* bf16 (max_n, max_in) x of the GEMM; NULL when max_n <= MV_MAX_N */
    uint16_t *wt;            /* bf16 (tile_elems) weight tile of the GEMM; NULL likewise */
    int64_t tile_elems;
    cublasHandle_t blas;     /* NULL when max_n <= MV_MAX_N */
    void *ws;                /* (LK_MM_BLAS_WS) cuBLAS workspace */
    size_t pf;               /* bytes of W a decode product prefetches (lk_cuda_mm_set_prefetch) */
};

/* A cuBLAS failure as LOKI_ERR_UNSUPPORTED naming the call. */
static loki_status blas_fail(loki_error *err, cublasStatus_t s, const char *what) {
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "cuBLAS: %s failed: %s", what, cublasGetStatusString(s));
}

extern "C" void lk_cuda_mm_set_prefetch(lk_cuda_mm *mm, size_t bytes) {
    if (mm) mm->pf = bytes;
}

extern "C" bool lk_cuda_mm_supports(lk_dtype t) {
    switch (t) {
    case LK_DTYPE_F32: case LK_DTYPE_F16: case LK_DTYPE_BF16: case LK_DTYPE_Q8_0: case LK_DTYPE_Q4_0:
    case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1: case LK_DTYPE_Q2_K: case LK_DTYPE_Q3_K:
    case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: case LK_DTYPE_Q6_K: return true;
    default: return false;
    }
}

/* Integer-dot decode types (the CPU's lk_mv_has_qdot set). */
static bool has_qdot(lk_dtype t) {
    switch (t) {
    case LK_DTYPE_Q8_0: case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1:
    case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: case LK_DTYPE_Q6_K: return true;
    default: return false;
    }
}

extern "C" void lk_cuda_mm_free(lk_cuda_mm *mm) {
    if (!mm) return;
    if (mm->blas) cublasDestroy(mm->blas);
    lk_cuda_dealloc(mm->cu, mm->ws);
    lk_cuda_dealloc(mm->cu, mm->wt);
    lk_cuda_dealloc(mm->cu, mm->xb);
    lk_cuda_dealloc(mm->cu, mm->xm);
    lk_cuda_dealloc(mm->cu, mm->xq);
    free(mm);
}

extern "C" loki_status lk_cuda_mm_init(lk_cuda *cu, lk_cuda_mm **out, int max_n, int64_t max_in, int64_t max_out,
                                       loki_error *err) {
    *out = NULL;
    if (!cu) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_mm_init: no CUDA context");
    if (max_n < 1 || max_in < 32 || max_out < 1 || max_in > ((int64_t)1 << 30) || max_out > ((int64_t)1 << 30))
        return lk_fail(err, LOKI_ERR_ARG,
                       "lk_cuda_mm_init: bad sizes max_n = %d, max_in = %lld, max_out = %lld (need max_n >= 1, "
                       "32 <= max_in <= 2^30, 1 <= max_out <= 2^30)",
                       max_n, (long long)max_in, (long long)max_out);
    lk_cuda_mm *mm = (lk_cuda_mm *)lk_calloc(1, sizeof *mm, err);
    if (!mm) return LOKI_ERR_NOMEM;
    loki_status st = LOKI_OK;
    mm->cu = cu, mm->max_n = max_n, mm->max_in = max_in, mm->max_out = max_out;
    const int nq = max_n < LK_CUDA_MV_MAX_N ? max_n : LK_CUDA_MV_MAX_N;
    const int64_t in32 = (max_in + 31) / 32 * 32;
    if ((st = lk_cuda_alloc(cu, (void **)&mm->xq, (size_t)nq * in32, "quantized activations (lk_cuda_mm)", err)))
        goto fail;
    if ((st = lk_cuda_alloc(cu, (void **)&mm->xm, (size_t)nq * (in32 / 32) * sizeof(float4),
                            "activation block scales (lk_cuda_mm)", err)))
        goto fail;
    if (max_n > LK_CUDA_MV_MAX_N) {
        int64_t te = max_in * max_out;
        if (te > LK_MM_TILE_MAX) te = LK_MM_TILE_MAX;
        if (te < max_in) te = max_in;
        mm->tile_elems = te;
        if ((st = lk_cuda_alloc(cu, (void **)&mm->xb, (size_t)max_n * max_in * 2, "bf16 activations (lk_cuda_mm)",
                                err)))
            goto fail;
        if ((st = lk_cuda_alloc(cu, (void **)&mm->wt, (size_t)te * 2, "bf16 weight tile (lk_cuda_mm)", err)))
            goto fail;
        if ((st = lk_cuda_alloc(cu, &mm->ws, LK_MM_BLAS_WS, "cuBLAS workspace (lk_cuda_mm)", err))) goto fail;
        cublasStatus_t bs = cublasCreate(&mm->blas);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            mm->blas = NULL;
            st = blas_fail(err, bs, "cublasCreate");
            goto fail;
        }
        if ((bs = cublasSetStream(mm->blas, cu->stream)) != CUBLAS_STATUS_SUCCESS ||
            (bs = cublasSetWorkspace(mm->blas, mm->ws, LK_MM_BLAS_WS)) != CUBLAS_STATUS_SUCCESS) {
            st = blas_fail(err, bs, "cublasSetStream/cublasSetWorkspace");
            goto fail;
        }
    }
    *out = mm;
    return LOKI_OK;
fail:
    lk_fail_prefix(err, "lk_cuda_mm_init(max_n = %d, max_in = %lld, max_out = %lld)", max_n, (long long)max_in,
                   (long long)max_out);
    lk_cuda_mm_free(mm);
    return st;
}

/* One warp per 32-block of x (n*in/32 blocks, rows back to back): xq (n, in)
 * codes, xm (n, in/32) {d, d*sum(q lo 16), d*sum(q hi 16), sum(q) as int}. */
__global__ void __launch_bounds__(256) mm_quantize_x(const float *__restrict__ x, int8_t *__restrict__ xq,
                                                     float4 *__restrict__ xm, int64_t nblocks) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    const int64_t b = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (b >= nblocks) return;
    const float v = x[32 * b + lane];
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int q = __float2int_rn(__fmul_rn(v, id));
    q = q > 127 ? 127 : q < -127 ? -127 : q;
    xq[32 * b + lane] = (int8_t)q;
    int s = q; /* sums of the lane's half (16 lanes) */
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const int s1 = __shfl_sync(0xffffffffu, s, 16);
    if (lane == 0) xm[b] = make_float4(d, d * (float)s, d * (float)s1, __int_as_float(s + s1));
}

/* dst (count) bf16 = src (count) f32. */
__global__ void __launch_bounds__(256) mm_x_to_bf16(uint16_t *__restrict__ dst, const float *__restrict__ src,
                                                    int64_t count) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: src comes from the kernel before */
    lk_pdl_release();
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < count; t += (int64_t)gridDim.x * blockDim.x)
        dst[t] = lk_dev_f32_to_bf16(src[t]);
}

/* dst (count) f16 = src (count) f32, round to nearest even. */
__global__ void __launch_bounds__(256) mm_x_to_f16(__half *__restrict__ dst, const float *__restrict__ src,
                                                   int64_t count) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: src comes from the kernel before */
    lk_pdl_release();
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < count; t += (int64_t)gridDim.x * blockDim.x)
        dst[t] = __float2half_rn(src[t]);
}

/* Blocks of a grid-stride kernel over count items (256 threads). */
static unsigned gs_blocks(int64_t count) {
    const int64_t b = (count + 255) / 256;
    return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}

/* mm->xb (count) = x (count) rounded to f16 (f16 true) or bf16, launched
 * with programmatic dependent launch like the products around it (a plain
 * launch would wait for the kernel before to end and make the product
 * after it wait for this one's end). */
static cudaError_t x_to_16(lk_cuda_mm *mm, bool f16, const float *x, int64_t count) {
    if (f16)
        return lk_launch_kernel(mm_x_to_f16, gs_blocks(count), 256, 0, mm->cu->stream, true, 0, (__half *)mm->xb, x,
                                count);
    return lk_launch_kernel(mm_x_to_bf16, gs_blocks(count), 256, 0, mm->cu->stream, true, 0, mm->xb, x, count);
}

/* The checks of lk_cuda_matmul (out: the rows of W, all parts). */
static loki_status check_args(const lk_cuda_mm *mm, const float *y, const float *x, lk_dtype dt, const void *w,
                              int64_t in, int64_t out, int n, loki_error *err) {
    if (!mm) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: no lk_cuda_mm (call lk_cuda_mm_init)");
    if (!lk_cuda_mm_supports(dt))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: weight dtype %s (%d) is not supported on the GPU",
                       lk_dtype_name(dt), (int)dt);
    if (!y || !x || !w) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: NULL %s", !y ? "y" : !x ? "x" : "w");
    if (n < 1 || n > mm->max_n)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: n = %d rows of x, outside 1..%d (max_n of lk_cuda_mm_init)",
                       n, mm->max_n);
    if (in < 1 || in > mm->max_in)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: in = %lld, outside 1..%lld (max_in of lk_cuda_mm_init)",
                       (long long)in, (long long)mm->max_in);
    if (in % lk_dtype_block_elems(dt))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: in = %lld is not a multiple of %s's block of %d",
                       (long long)in, lk_dtype_name(dt), lk_dtype_block_elems(dt));
    if (out < 1 || out > mm->max_out)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: out = %lld, outside 1..%lld (max_out of lk_cuda_mm_init)",
                       (long long)out, (long long)mm->max_out);
    if ((uintptr_t)w & 15)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: W (%p) is not 16-byte aligned", w);
    if (((uintptr_t)x & 3) || ((uintptr_t)y & 3))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul: x or y is not 4-byte aligned");
    return LOKI_OK;
}

/* The matrix-vector path (n <= LK_CUDA_MV_MAX_N) into the outputs of seg. */
static loki_status gemv_seg(lk_cuda_mm *mm, const lk_mm_seg &seg, const float *x, lk_dtype dt, const void *w,
                            int64_t in, int64_t out, int n, loki_error *err) {
    loki_status st = LOKI_OK;
    cudaStream_t s = mm->cu->stream;
    if (has_qdot(dt)) {
        const int64_t nb = (int64_t)n * (in / 32);
        (void)lk_launch_kernel(mm_quantize_x, (unsigned)((nb + 7) / 8), 256, 0, s, true, 0, x, mm->xq, mm->xm, nb);
        LK_CUDA_LAUNCHED();
    }
    LK_CUDA_TRY(lk_mm_gemv(dt, n, seg, w, in, out, x, mm->xq, mm->xm, mm->pf, s));
fail:
    return st;
}

/* A decode batch of 9..16 rows with f16 / bf16 W (and in a multiple of 32):
 * x rounded to W's type (as the GEMM path does), then gemv_mma.cu's kernel,
 * which reads W once for all rows into the outputs of seg. */
static bool mma_path(lk_dtype dt, int n, int64_t in) {
    return (dt == LK_DTYPE_F16 || dt == LK_DTYPE_BF16) && n > LK_CUDA_MV_MAX_N && n <= LK_MM_MMA_MAX_N && in % 32 == 0;
}
static loki_status gemv_mma(lk_cuda_mm *mm, const lk_mm_seg &seg, const float *x, lk_dtype dt, const void *w,
                            int64_t in, int64_t out, int n, loki_error *err) {
    loki_status st = LOKI_OK;
    cudaStream_t s = mm->cu->stream;
    LK_CUDA_TRY(x_to_16(mm, dt == LK_DTYPE_F16, x, (int64_t)n * in));
    /* no prefetch (pf 0): with 16 rows it cost 0.8% of the step (session 20), where one row gained 2% */
    LK_CUDA_TRY(lk_mm_gemv_mma(dt == LK_DTYPE_BF16, n, seg, (const uint16_t *)w, mm->xb, in, out, 0, s));
fail:
    return st;
}

extern "C" loki_status lk_cuda_matmul_multi(lk_cuda_mm *mm, int k, float *const *y, const int64_t *out,
                                            const float *x, lk_dtype dt, const void *w, int64_t in, int n,
                                            loki_error *err) {
    loki_status st;
    if (k < 1 || k > 3) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul_multi: %d parts (1..3)", k);
    lk_mm_seg seg;
    seg.acc = false;
    int64_t total = 0;
    for (int j = 0; j < k; j++) {
        if (out[j] < 1) return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul_multi: part %d has %lld rows", j,
                                       (long long)out[j]);
        if ((st = check_args(mm, y[j], x, dt, w, in, out[j], n, err))) return st;
        seg.y[j] = y[j];
        seg.end[j] = total += out[j];
    }
    for (int j = k; j < 3; j++) seg.y[j] = y[k - 1], seg.end[j] = total;
    if ((st = check_args(mm, y[0], x, dt, w, in, total, n, err))) return st;
    if (n <= LK_CUDA_MV_MAX_N) return gemv_seg(mm, seg, x, dt, w, in, total, n, err);
    if (mma_path(dt, n, in)) return gemv_mma(mm, seg, x, dt, w, in, total, n, err);
    const size_t rb = lk_dtype_row_bytes(dt, in); /* prompts: one GEMM per part */
    for (int j = 0, r0 = 0; j < k; r0 += (int)out[j], j++)
        if ((st = lk_cuda_matmul(mm, y[j], x, dt, (const char *)w + (size_t)r0 * rb, in, out[j], n, err))) return st;
    return LOKI_OK;
}

/* lk_cuda_matmul (acc false) and lk_cuda_matmul_add (acc true: y += ...;
 * the GEMM's beta = 1 adds the f32 product to y with one rounding, as the
 * matrix-vector kernels' lk_mm_seg_store does). */
static loki_status matmul(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w, int64_t in,
                          int64_t out, int n, bool acc, loki_error *err) {
    loki_status st = check_args(mm, y, x, dt, w, in, out, n, err);
    if (st) return st;
    cudaStream_t s = mm->cu->stream;
    if (n <= LK_CUDA_MV_MAX_N) {
        const lk_mm_seg seg = {{y, y, y}, {out, out, out}, acc};
        return gemv_seg(mm, seg, x, dt, w, in, out, n, err);
    }
    if (mma_path(dt, n, in)) {
        const lk_mm_seg seg = {{y, y, y}, {out, out, out}, acc};
        return gemv_mma(mm, seg, x, dt, w, in, out, n, err);
    }
    if (dt == LK_DTYPE_F16) { /* W in place, x as f16 (no per-call conversion of W) */
        LK_CUDA_TRY(x_to_16(mm, true, x, (int64_t)n * in));
        const float one = 1.0f, beta = acc ? 1.0f : 0.0f;
        const cublasStatus_t bs = cublasGemmEx(mm->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)out, n, (int)in, &one, w,
                                               CUDA_R_16F, (int)in, mm->xb, CUDA_R_16F, (int)in, &beta, y, CUDA_R_32F,
                                               (int)out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = blas_fail(err, bs, "cublasGemmEx (f16 x f16 -> f32)");
            goto fail;
        }
        return LOKI_OK;
    }
    {
        LK_CUDA_TRY(x_to_16(mm, false, x, (int64_t)n * in));
        const float one = 1.0f, beta = acc ? 1.0f : 0.0f;
        const size_t rb = lk_dtype_row_bytes(dt, in);
        const int64_t tr = dt == LK_DTYPE_BF16 ? out : mm->tile_elems / in;
        for (int64_t r0 = 0; r0 < out; r0 += tr) {
            const int64_t m = out - r0 < tr ? out - r0 : tr;
            const void *a = (const char *)w + (size_t)r0 * rb;
            if (dt != LK_DTYPE_BF16) {
                LK_CUDA_TRY(lk_mm_to_bf16_rows(dt, mm->wt, a, in, m, s));
                a = mm->wt;
            }
            const cublasStatus_t bs =
                cublasGemmEx(mm->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, n, (int)in, &one, a, CUDA_R_16BF, (int)in,
                             mm->xb, CUDA_R_16BF, (int)in, &beta, y + r0, CUDA_R_32F, (int)out, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT);
            if (bs != CUBLAS_STATUS_SUCCESS) {
                st = blas_fail(err, bs, "cublasGemmEx (bf16 x bf16 -> f32)");
                goto fail;
            }
        }
    }
    return LOKI_OK;
fail:
    lk_fail_prefix(err, "lk_cuda_matmul%s(%s, in = %lld, out = %lld, n = %d)", acc ? "_add" : "", lk_dtype_name(dt),
                   (long long)in, (long long)out, n);
    return st;
}

extern "C" loki_status lk_cuda_matmul(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w,
                                      int64_t in, int64_t out, int n, loki_error *err) {
    return matmul(mm, y, x, dt, w, in, out, n, false, err);
}

extern "C" loki_status lk_cuda_matmul_add(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *w,
                                          int64_t in, int64_t out, int n, loki_error *err) {
    return matmul(mm, y, x, dt, w, in, out, n, true, err);
}

extern "C" bool lk_cuda_matmul_glu_fits(lk_dtype dt, int n, int64_t in, const float *x) {
    const int epv = dt == LK_DTYPE_F32 ? 4 : 8; /* values in 16 bytes */
    return n == 1 && (dt == LK_DTYPE_F32 || dt == LK_DTYPE_F16 || dt == LK_DTYPE_BF16) && in % epv == 0 &&
           ((uintptr_t)x & 15) == 0;
}

extern "C" loki_status lk_cuda_matmul_glu(lk_cuda_mm *mm, float *y, const float *x, lk_dtype dt, const void *wg,
                                          const void *wu, int64_t in, int64_t out, int n, int act, loki_error *err) {
    loki_status st;
    if (act != 0 && act != 1)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_matmul_glu: unknown activation %d (0 = silu, 1 = gelu_tanh)", act);
    if ((st = check_args(mm, y, x, dt, wg, in, out, n, err)) || (st = check_args(mm, y, x, dt, wu, in, out, n, err)))
        return st;
    if (!lk_cuda_matmul_glu_fits(dt, n, in, x))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                       "lk_cuda_matmul_glu: %s W, n = %d, in = %lld: only one row of x, f32/f16/bf16 W, in a multiple of "
                       "16 bytes of W and x 16-byte aligned (lk_cuda_matmul_glu_fits)",
                       lk_dtype_name(dt), n, (long long)in);
    LK_CUDA_TRY(lk_mm_gemv_glu(dt, y, wg, wu, in, out, x, act == 1, mm->pf, mm->cu->stream));
    return LOKI_OK;
fail:
    lk_fail_prefix(err, "lk_cuda_matmul_glu(%s, in = %lld, out = %lld)", lk_dtype_name(dt), (long long)in,
                   (long long)out);
    return st;
}
