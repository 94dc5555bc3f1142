/*
 * test_cuda_matmul.c - the GPU matrix products (cuda/lk_cuda_mm.h) against
 * the CPU's lk_cpu_matmul (1 thread, portable SCALAR kernels) for every
 * weight dtype, on random weights (quantized from random floats for the
 * small shapes, random bytes with sane fp16 scales for the large ones) and
 * random x with outliers; y is poisoned with NaN before each call.
 *
 * Tolerances, per output y[i][r] (S = sum_j |w~_j x_j|, M = sum over blocks
 * b of 32 of max_b |w~| * sum_b |x_j|, w~ the dequantized weights):
 *   n <= 8 (matrix-vector): both sides compute W~.x~ with the same x~ (the
 *     GPU quantizes x exactly as lk_q8_quantize_scalar; f32 x for float
 *     weights, q2_k, q3_k) and exact integer block sums; only the f32
 *     combination of the per-block terms differs (order, FMA). Each block
 *     term is at most ~(|w~| + |offset|)|x| summed over its block (the q4_1
 *     / k-quant min terms can reach the block's max |w~|), so the rounding
 *     error is a few ulps of S + 2M summed over at most in/32 terms in
 *     sequence on the CPU: |gpu - cpu| <= 1e-5 (S + 2M) + 1e-6.
 *   n > 8 (bf16 GEMM; f16 W: f16(x), whose error is smaller and within
 *     the same bound; f16 / bf16 W with n <= 16: the tensor-core kernel of
 *     gemv_mma.cu, the same roundings of x and f32 accumulation in another
 *     order, so the same bound): the GPU computes bf16(W~).bf16(x) with f32
 *     accumulation: each product is off by at most (2^-8 + 2^-18)|w~_j x_j|,
 *     the f32 sum of `in` terms by at most in 2^-24 S; the CPU's portable
 *     path keeps f32 x (n > 16) or quantizes it (n <= 16 for its
 *     integer-dot types: |error| <= sum_b amax_b(|x|)/254 sum_b |w~_j|, the
 *     bound of src/cpu/matmul.c, called Q here). So |gpu - cpu| <= (2^-8 +
 *     2^-18 + in 2^-24) S + Q + 1e-5 M + 1e-6.
 * lk_cuda_matmul_add (y += x.W^T) on random y0: for n <= 8 bit for bit
 * y0 + (lk_cuda_matmul's y) in f32 (the same kernel with the add in its
 * store); for n > 8 (the GEMM with beta = 1, which cuBLAS may run with
 * another algorithm) within the GEMM's tolerance above plus 2^-23 |y0|.
 * lk_cuda_matmul_glu (the fused gate|up product and GLU of one decode row,
 * f32/f16/bf16 W, silu and gelu_tanh) bit for bit against lk_cuda_matmul of
 * each matrix then lk_cuda_glu, its output poisoned first; the shapes it
 * does not take are refused with LOKI_ERR_UNSUPPORTED.
 * The decode products (n <= 8; 9..16 rows with f16 / bf16 W; of these only
 * n = 1 and 9..16 rows prefetch, the others must simply be unaffected) and
 * the fused gate|up product run again with their blocks prefetching W into L2 before
 * they wait on the kernel before (lk_cuda_mm_set_prefetch), W moved to the
 * end of its allocation: the same bits are required (a prefetch is a hint).
 * Also checks that bad arguments are refused with LOKI_ERR_ARG and a message,
 * and prints (not asserted) the time and weight bandwidth of the n = 1
 * product per dtype (median of 20 graph replays of one call per copy of W,
 * enough copies to exceed the L2).
 * Exit 77 (skipped) without the CUDA backend or a usable GPU.
 */
#include "test.h"

#include "core/quant.h"
#include "cpu/cpu.h"
#include "cpu/cpu_internal.h"
#include "cuda/lk_cuda_mm.h"
#include "cuda/lk_cuda_ops.h"

static const lk_dtype DTS[] = {LK_DTYPE_F32,  LK_DTYPE_F16,  LK_DTYPE_BF16, LK_DTYPE_Q8_0, LK_DTYPE_Q4_0,
                               LK_DTYPE_Q4_1, LK_DTYPE_Q5_0, LK_DTYPE_Q5_1, LK_DTYPE_Q2_K, LK_DTYPE_Q3_K,
                               LK_DTYPE_Q4_K, LK_DTYPE_Q5_K, LK_DTYPE_Q6_K};
enum { NDT = sizeof DTS / sizeof DTS[0], MAX_N = 33, NSHOW = 5 };
#define MAX_IN 11008
#define MAX_OUT 16400

static uint64_t rnext(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}
/* uniform in [-1, 1) */
static float urand(uint64_t *s) { return (float)((rnext(s) >> 40) * (1.0 / 8388608.0)) - 1.0f; }

/* Byte offsets of the fp16 scale fields of a block of dt (-1 ends). */
static void scale_fields(lk_dtype dt, int off[3]) {
    off[0] = off[1] = off[2] = -1;
    switch (dt) {
    case LK_DTYPE_Q8_0: case LK_DTYPE_Q4_0: case LK_DTYPE_Q5_0: off[0] = 0; break;
    case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_1: case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: off[0] = 0, off[1] = 2; break;
    case LK_DTYPE_Q2_K: off[0] = 80, off[1] = 82; break;
    case LK_DTYPE_Q3_K: off[0] = 108; break;
    case LK_DTYPE_Q6_K: off[0] = 208; break;
    default: break;
    }
}

/* W (out, in) of dtype dt into w (out rows of lk_dtype_row_bytes): from
 * random floats in [-1, 1) (lk_row_from_f32) when from_f32, else random
 * bytes with fp16 scales in [0.005, 0.02) (second field: +-0.02). */
static void make_w(lk_dtype dt, uint8_t *w, int64_t in, int64_t out, bool from_f32, uint64_t *seed) {
    const size_t rb = lk_dtype_row_bytes(dt, in);
    if (from_f32 || !lk_dtype_is_quant(dt)) {
        float *row = test_xmalloc((size_t)in * sizeof(float));
        for (int64_t r = 0; r < out; r++) {
            for (int64_t j = 0; j < in; j++) row[j] = urand(seed);
            lk_row_from_f32(dt, row, w + (size_t)r * rb, in);
        }
        free(row);
        return;
    }
    for (size_t k = 0; k + 8 <= rb * out; k += 8) {
        uint64_t v = rnext(seed);
        memcpy(w + k, &v, 8);
    }
    int off[3];
    scale_fields(dt, off);
    const size_t bb = lk_dtype_block_bytes(dt), nb = rb * out / bb;
    for (size_t b = 0; b < nb; b++)
        for (int f = 0; f < 3 && off[f] >= 0; f++) {
            const float v = f == 0 ? 0.0125f + 0.0075f * urand(seed) : 0.02f * urand(seed);
            const uint16_t h = lk_f32_to_f16(v);
            memcpy(w + b * bb + off[f], &h, 2);
        }
}

typedef struct env {
    lk_cuda *cu;
    lk_cuda_mm *mm;
    lk_cpu *cpu;
    void *dw, *dx, *dy;  /* device W (largest), x (MAX_N, MAX_IN), y (MAX_N, MAX_OUT) */
    size_t dw_bytes;     /* dw's size */
    float *nan_y;        /* host (MAX_N * MAX_OUT) NaN */
} env;

/* The decode products (n <= 8, and 9..16 rows with f16 / bf16 W) again
 * with the prefetch budget set (lk_cuda_mm_set_prefetch; n = 1 and 9..16
 * rows then have their first blocks prefetch W into L2):
 * all blocks, then about half of W, with W moved to the end of its
 * allocation (the prefetch must stay inside it). A hint only, so the
 * outputs must be yg's bits; y is poisoned first. x is already on the GPU. */
static void prefetch_case(env *E, lk_dtype dt, const uint8_t *w, int64_t in, int64_t out, int n, const float *yg,
                          const char *what) {
    const size_t rb = lk_dtype_row_bytes(dt, in), wb = rb * out;
    const size_t budgets[2] = {(size_t)1 << 40, wb / 2};
    uint8_t *dw_end = (uint8_t *)E->dw + ((E->dw_bytes - wb) & ~(size_t)255);
    float *yp = test_xmalloc(sizeof(float) * n * out);
    loki_error err = {0};
    bool ok = lk_cuda_upload(E->cu, dw_end, w, wb, &err) == LOKI_OK;
    for (int b = 0; ok && b < 2; b++) {
        lk_cuda_mm_set_prefetch(E->mm, budgets[b]);
        ok = lk_cuda_upload(E->cu, E->dy, E->nan_y, sizeof(float) * n * out, &err) == LOKI_OK &&
             lk_cuda_matmul(E->mm, E->dy, E->dx, dt, dw_end, in, out, n, &err) == LOKI_OK &&
             lk_cuda_sync(E->cu, &err) == LOKI_OK &&
             lk_cuda_download(E->cu, yp, E->dy, sizeof(float) * n * out, &err) == LOKI_OK;
        CHECKF(ok, "%s, prefetch %zu bytes: %s", what, budgets[b], err.msg);
        CHECKF(!ok || memcmp(yp, yg, sizeof(float) * n * out) == 0, "%s: prefetch of %zu bytes changed the output",
               what, budgets[b]);
    }
    lk_cuda_mm_set_prefetch(E->mm, 0);
    free(yp);
}

/* One case: W (out, in) of dt, n rows of x; compares every output. */
static void run_case(env *E, lk_dtype dt, int64_t in, int64_t out, int n, bool from_f32, uint64_t seed) {
    const size_t rb = lk_dtype_row_bytes(dt, in);
    uint8_t *w = test_xmalloc(rb * out);
    float *x = test_xmalloc(sizeof(float) * n * in), *yc = test_xmalloc(sizeof(float) * n * out);
    float *yg = test_xmalloc(sizeof(float) * n * out), *wf = test_xmalloc(sizeof(float) * in);
    float *y0 = test_xmalloc(sizeof(float) * n * out), *ya = test_xmalloc(sizeof(float) * n * out);
    double *tolv = test_xmalloc(sizeof(double) * n * out);
    make_w(dt, w, in, out, from_f32, &seed);
    for (int64_t k = 0; k < n * in; k++) {
        x[k] = urand(&seed);
        if ((rnext(&seed) & 63) == 0) x[k] *= 30.0f; /* outliers */
    }
    loki_error err = {0};
    char what[160];
    snprintf(what, sizeof what, "%s in %lld out %lld n %d%s", lk_dtype_name(dt), (long long)in, (long long)out, n,
             from_f32 ? " (quantized floats)" : "");
    bool ok = lk_cuda_upload(E->cu, E->dw, w, rb * out, &err) == LOKI_OK &&
              lk_cuda_upload(E->cu, E->dx, x, sizeof(float) * n * in, &err) == LOKI_OK &&
              lk_cuda_upload(E->cu, E->dy, E->nan_y, sizeof(float) * n * out, &err) == LOKI_OK &&
              lk_cuda_matmul(E->mm, E->dy, E->dx, dt, E->dw, in, out, n, &err) == LOKI_OK &&
              lk_cuda_sync(E->cu, &err) == LOKI_OK &&
              lk_cuda_download(E->cu, yg, E->dy, sizeof(float) * n * out, &err) == LOKI_OK;
    CHECKF(ok, "%s: %s", what, err.msg);
    if (!ok) goto done;
    lk_tensor t = {.name = "w", .dtype = dt, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w, .nbytes = rb * out};
    lk_cpu_matmul(E->cpu, yc, x, &t, n);
    const bool cpu_q = n <= LK_MV_MAX_N && lk_mv_has_qdot(dt);
    int bad = 0;
    double worst = 0;
    for (int64_t r = 0; r < out; r++) {
        lk_row_to_f32(dt, w + (size_t)r * rb, wf, in);
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * in;
            double S = 0, M = 0, Q = 0;
            for (int64_t b = 0; b < in; b += 32) {
                const int64_t e = b + 32 < in ? b + 32 : in;
                double wmax = 0, xmax = 0, sx = 0, sw = 0;
                for (int64_t j = b; j < e; j++) {
                    const double aw = fabs(wf[j]), ax = fabs(xi[j]);
                    S += aw * ax, sx += ax, sw += aw;
                    wmax = aw > wmax ? aw : wmax, xmax = ax > xmax ? ax : xmax;
                }
                M += wmax * sx, Q += xmax / 254.0 * sw;
            }
            const double tol = n <= LK_CUDA_MV_MAX_N
                                   ? 1e-5 * (S + 2 * M) + 1e-6
                                   : (ldexp(1, -8) + ldexp(1, -18) + (double)in * ldexp(1, -24)) * S +
                                         (cpu_q ? Q : 0) + 1e-5 * M + 1e-6;
            tolv[(size_t)i * out + r] = tol;
            const double g = yg[(size_t)i * out + r], c = yc[(size_t)i * out + r], d = fabs(g - c);
            if (!(d <= tol)) {
                if (bad++ < NSHOW)
                    CHECKF(false, "%s: y[%d][%lld] gpu %.9g cpu %.9g |diff| %.3g > tol %.3g (S %.4g)", what, i,
                           (long long)r, g, c, d, tol, S);
            } else if (d / tol > worst) {
                worst = d / tol;
            }
        }
    }
    CHECKF(bad == 0, "%s: %d of %lld outputs out of tolerance", what, bad, (long long)n * out);
    printf("  %-40s ok=%d worst |diff|/tol %.3f\n", what, bad == 0, worst);
    /* y0 + x.W^T in place */
    for (int64_t k = 0; k < n * out; k++) y0[k] = 4.0f * urand(&seed);
    ok = lk_cuda_upload(E->cu, E->dy, y0, sizeof(float) * n * out, &err) == LOKI_OK &&
         lk_cuda_matmul_add(E->mm, E->dy, E->dx, dt, E->dw, in, out, n, &err) == LOKI_OK &&
         lk_cuda_sync(E->cu, &err) == LOKI_OK &&
         lk_cuda_download(E->cu, ya, E->dy, sizeof(float) * n * out, &err) == LOKI_OK;
    CHECKF(ok, "%s matmul_add: %s", what, err.msg);
    if (!ok) goto done;
    bad = 0;
    for (int64_t k = 0; k < n * out; k++) {
        const float want = y0[k] + yg[k];
        const bool same = n <= LK_CUDA_MV_MAX_N ? memcmp(&want, &ya[k], sizeof want) == 0
                                                : fabs((double)ya[k] - want) <= tolv[k] + ldexp(fabs(y0[k]), -23);
        if (!same && bad++ < NSHOW)
            CHECKF(false, "%s matmul_add: y[%lld] %.9g, want y0 %.9g + %.9g = %.9g", what, (long long)k, ya[k], y0[k],
                   yg[k], want);
    }
    CHECKF(bad == 0, "%s matmul_add: %d of %lld outputs differ", what, bad, (long long)n * out);
    /* last: it moves W within E->dw */
    if (n <= LK_CUDA_MV_MAX_N || (n <= 16 && (dt == LK_DTYPE_F16 || dt == LK_DTYPE_BF16)))
        prefetch_case(E, dt, w, in, out, n, yg, what);
done:
    free(w), free(x), free(yc), free(yg), free(wf), free(y0), free(ya), free(tolv);
}

/* The fused gated product of one row: W_g, W_u (out, in) of dt back to back
 * in E->dw; y fused into dy[0..out), the unfused gate and up into dy at
 * 2 * out and 3 * out (16-byte aligned for out % 4 == 0, as the shapes). */
static void glu_case(env *E, lk_dtype dt, int64_t in, int64_t out, int act, uint64_t seed) {
    const size_t rb = lk_dtype_row_bytes(dt, in), wb = (rb * out + 15) & ~(size_t)15;
    uint8_t *w = test_xmalloc(2 * wb);
    float *x = test_xmalloc(sizeof(float) * in), *yf = test_xmalloc(sizeof(float) * out);
    float *yu = test_xmalloc(sizeof(float) * out);
    make_w(dt, w, in, out, false, &seed);
    make_w(dt, w + wb, in, out, false, &seed);
    for (int64_t k = 0; k < in; k++) x[k] = urand(&seed) * ((rnext(&seed) & 63) == 0 ? 30.0f : 1.0f);
    float *dy = E->dy, *dg = dy + 2 * out, *du = dy + 3 * out;
    const char *wg = E->dw, *wu = (const char *)E->dw + wb;
    loki_error err = {0};
    bool ok = lk_cuda_upload(E->cu, E->dw, w, 2 * wb, &err) == LOKI_OK &&
              lk_cuda_upload(E->cu, E->dx, x, sizeof(float) * in, &err) == LOKI_OK &&
              lk_cuda_upload(E->cu, dy, E->nan_y, sizeof(float) * 4 * out, &err) == LOKI_OK &&
              lk_cuda_matmul_glu_fits(dt, 1, in, E->dx) &&
              lk_cuda_matmul_glu(E->mm, dy, E->dx, dt, wg, wu, in, out, 1, act, &err) == LOKI_OK &&
              lk_cuda_matmul(E->mm, dg, E->dx, dt, wg, in, out, 1, &err) == LOKI_OK &&
              lk_cuda_matmul(E->mm, du, E->dx, dt, wu, in, out, 1, &err) == LOKI_OK &&
              lk_cuda_glu(E->cu, dg, du, out, act, &err) == LOKI_OK && lk_cuda_sync(E->cu, &err) == LOKI_OK &&
              lk_cuda_download(E->cu, yf, dy, sizeof(float) * out, &err) == LOKI_OK &&
              lk_cuda_download(E->cu, yu, dg, sizeof(float) * out, &err) == LOKI_OK;
    CHECKF(ok, "glu %s in %lld out %lld act %d: %s", lk_dtype_name(dt), (long long)in, (long long)out, act, err.msg);
    int bad = 0;
    for (int64_t r = 0; ok && r < out; r++)
        if (memcmp(&yf[r], &yu[r], sizeof(float)) || isnan(yf[r])) {
            if (bad++ < NSHOW)
                CHECKF(false, "glu %s in %lld out %lld act %d: y[%lld] fused %.9g, unfused %.9g", lk_dtype_name(dt),
                       (long long)in, (long long)out, act, (long long)r, yf[r], yu[r]);
        }
    CHECKF(bad == 0, "glu %s in %lld out %lld act %d: %d outputs differ", lk_dtype_name(dt), (long long)in,
           (long long)out, act, bad);
    if (ok) printf("  glu %-5s in %5lld out %5lld act %d: fused == unfused, ok=%d\n", lk_dtype_name(dt), (long long)in,
                   (long long)out, act, bad == 0);
    /* again with every block prefetching its rows of both matrices (a hint: the same bits) */
    if (ok) {
        lk_cuda_mm_set_prefetch(E->mm, (size_t)1 << 40);
        ok = lk_cuda_upload(E->cu, dy, E->nan_y, sizeof(float) * out, &err) == LOKI_OK &&
             lk_cuda_matmul_glu(E->mm, dy, E->dx, dt, wg, wu, in, out, 1, act, &err) == LOKI_OK &&
             lk_cuda_sync(E->cu, &err) == LOKI_OK &&
             lk_cuda_download(E->cu, yu, dy, sizeof(float) * out, &err) == LOKI_OK;
        lk_cuda_mm_set_prefetch(E->mm, 0);
        CHECKF(ok, "glu %s with prefetch: %s", lk_dtype_name(dt), err.msg);
        CHECKF(!ok || memcmp(yf, yu, sizeof(float) * out) == 0,
               "glu %s in %lld out %lld act %d: prefetch changed the output", lk_dtype_name(dt), (long long)in,
               (long long)out, act);
    }
    free(w), free(x), free(yf), free(yu);
}

/* What lk_cuda_matmul_glu does not take: a clear status, not a wrong result. */
static void glu_refusals(env *E) {
    loki_error err = {0};
    CHECK(!lk_cuda_matmul_glu_fits(LK_DTYPE_BF16, 2, 4096, E->dx) && !lk_cuda_matmul_glu_fits(LK_DTYPE_Q4_K, 1, 4096, E->dx) &&
          !lk_cuda_matmul_glu_fits(LK_DTYPE_BF16, 1, 4092, E->dx) &&
          !lk_cuda_matmul_glu_fits(LK_DTYPE_BF16, 1, 4096, (const float *)E->dx + 1));
    CHECK(lk_cuda_matmul_glu(E->mm, E->dy, E->dx, LK_DTYPE_BF16, E->dw, E->dw, 4096, 64, 2, 0, &err) ==
              LOKI_ERR_UNSUPPORTED && strstr(err.msg, "lk_cuda_matmul_glu_fits"));
    printf("  refused: %s\n", err.msg);
    CHECK(lk_cuda_matmul_glu(E->mm, E->dy, E->dx, LK_DTYPE_BF16, E->dw, E->dw, 4096, 64, 1, 2, &err) == LOKI_ERR_ARG &&
          strstr(err.msg, "activation"));
    printf("  refused: %s\n", err.msg);
}

/* Bad arguments: LOKI_ERR_ARG with a message containing `word`. */
static void check_args(env *E) {
    loki_error err = {0};
    struct { lk_dtype dt; int64_t in, out; int n, woff; const char *word; } c[] = {
        {(lk_dtype)20, 256, 64, 1, 0, "dtype"},         {LK_DTYPE_Q4_K, 256, 64, 0, 0, "n = 0"},
        {LK_DTYPE_Q4_K, 256, 64, MAX_N + 1, 0, "n = 34"}, {LK_DTYPE_Q4_K, MAX_IN + 256, 64, 1, 0, "in ="},
        {LK_DTYPE_Q4_K, 288, 64, 1, 0, "multiple"},     {LK_DTYPE_Q8_0, 256, 0, 1, 0, "out = 0"},
        {LK_DTYPE_Q8_0, 256, MAX_OUT + 1, 1, 0, "out ="}, {LK_DTYPE_Q8_0, 256, 64, 1, 2, "aligned"},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        err.msg[0] = 0;
        loki_status s = lk_cuda_matmul(E->mm, E->dy, E->dx, c[k].dt, (char *)E->dw + c[k].woff, c[k].in, c[k].out,
                                       c[k].n, &err);
        CHECKF(s == LOKI_ERR_ARG && strstr(err.msg, c[k].word), "bad argument %zu: status %d, message '%s'", k,
               (int)s, err.msg);
        printf("  refused: %s\n", err.msg);
    }
    CHECK(lk_cuda_mm_supports(LK_DTYPE_Q6_K) && lk_cuda_mm_supports(LK_DTYPE_BF16) &&
          !lk_cuda_mm_supports((lk_dtype)20));
    lk_cuda_mm *m2 = NULL;
    CHECK(lk_cuda_mm_init(E->cu, &m2, 0, 256, 64, &err) == LOKI_ERR_ARG && m2 == NULL);
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* n = 1 time and bandwidth of W (out, in) of dt: K copies of W (> 256 MiB in
 * all, beyond the L2) captured in one graph of K products, 20 replays after
 * a warm-up, median. Information only. */
static void bench(env *E, lk_dtype dt, int64_t in, int64_t out) {
    const size_t rb = lk_dtype_row_bytes(dt, in), wb = (rb * out + 255) & ~(size_t)255;
    const int K = (int)((((size_t)256 << 20) + wb - 1) / wb);
    loki_error err = {0};
    uint64_t seed = 99;
    uint8_t *w = test_xmalloc(rb * out);
    make_w(dt, w, in, out, false, &seed);
    void *big = NULL;
    lk_cuda_graph *g = NULL;
    float ms[20];
    bool ok = lk_cuda_alloc(E->cu, &big, wb * K, "bench weights", &err) == LOKI_OK;
    for (int k = 0; ok && k < K; k++) ok = lk_cuda_upload(E->cu, (char *)big + wb * k, w, rb * out, &err) == LOKI_OK;
    ok = ok && lk_cuda_capture_begin(E->cu, &err) == LOKI_OK;
    for (int k = 0; ok && k < K; k++)
        ok = lk_cuda_matmul(E->mm, E->dy, E->dx, dt, (char *)big + wb * k, in, out, 1, &err) == LOKI_OK;
    ok = ok && lk_cuda_capture_end(E->cu, &g, &err) == LOKI_OK;
    ok = ok && lk_cuda_graph_run(E->cu, g, 3, &ms[0], &err) == LOKI_OK;
    for (int r = 0; ok && r < 20; r++) ok = lk_cuda_graph_run(E->cu, g, 1, &ms[r], &err) == LOKI_OK;
    if (ok) {
        qsort(ms, 20, sizeof ms[0], cmp_float);
        const double us = ms[10] * 1e3 / K;
        printf("  bench %-5s out %5lld in %5lld n 1: %8.2f us  %7.1f GB/s (weights %.1f MB)\n", lk_dtype_name(dt),
               (long long)out, (long long)in, us, (double)rb * out / (us * 1e3), (double)rb * out / 1e6);
    } else {
        printf("  bench %s out %lld in %lld failed: %s\n", lk_dtype_name(dt), (long long)out, (long long)in, err.msg);
    }
    lk_cuda_graph_free(g);
    lk_cuda_dealloc(E->cu, big);
    free(w);
}

int main(void) {
    if (!lk_cuda_built()) test_skip("this loki was built without the CUDA backend (LOKI_CUDA=OFF or no nvcc)");
    env E = {0};
    loki_error err = {0};
    if (lk_cuda_init(&E.cu, 0, &err) != LOKI_OK) {
        fprintf(stderr, "SKIP: no usable GPU: %s\n", err.msg);
        return 77;
    }
    printf("GPU: %s\n", lk_cuda_describe(E.cu));
    const size_t wmax = lk_dtype_row_bytes(LK_DTYPE_F32, 4096) * 4096;
    E.dw_bytes = wmax;
    bool ok = lk_cuda_mm_init(E.cu, &E.mm, MAX_N, MAX_IN, MAX_OUT, &err) == LOKI_OK &&
              lk_cpu_init(&E.cpu, 1, MAX_N, MAX_OUT, &err) == LOKI_OK &&
              lk_cuda_alloc(E.cu, &E.dw, wmax, "W", &err) == LOKI_OK &&
              lk_cuda_alloc(E.cu, &E.dx, sizeof(float) * MAX_N * MAX_IN, "x", &err) == LOKI_OK &&
              lk_cuda_alloc(E.cu, &E.dy, sizeof(float) * MAX_N * MAX_OUT, "y", &err) == LOKI_OK;
    CHECKF(ok, "setup: %s", err.msg);
    if (!ok) return test_finish();
    lk_cpu_set_kernels(E.cpu, LK_CPU_KERNELS_SCALAR);
    E.nan_y = test_xmalloc(sizeof(float) * MAX_N * MAX_OUT);
    for (size_t k = 0; k < (size_t)MAX_N * MAX_OUT; k++) E.nan_y[k] = NAN;

    check_args(&E);
    const int ns[] = {1, 2, 5, 8, 9, 16, 33};
    /* out 37: an odd row count (mv_float2's last warp has one row); 9000
     * rows: above MV_PAIR_MAX_OUT (one warp per row for n = 1) */
    struct { int64_t in, out; bool f32; } shapes[] = {{256, 64, true},     {512, 37, true},      {4096, 4096, false},
                                                      {MAX_IN, 160, false}, {1024, 9000, false}};
    uint64_t seed = 20261204;
    if (getenv("LOKI_TEST_SEED")) seed = strtoull(getenv("LOKI_TEST_SEED"), NULL, 10);
    for (int d = 0; d < NDT; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
                run_case(&E, DTS[d], shapes[s].in, shapes[s].out, ns[k], shapes[s].f32, seed + 1000 * d + 10 * s + k);
    /* the GEMM's weight tile holds 64 M elements: 16400 x 4096 takes two tiles */
    run_case(&E, LK_DTYPE_Q4_K, 4096, MAX_OUT, 9, false, seed + 77);

    /* the fused gate|up product: 36 to 1024 rows, 512 to 11008 columns */
    glu_refusals(&E);
    for (int d = 0; d < 3; d++)
        for (int act = 0; act < 2; act++) {
            glu_case(&E, DTS[d], 4096, 1024, act, seed + 500 + 10 * d + act);
            glu_case(&E, DTS[d], 512, 36, act, seed + 600 + 10 * d + act);
            glu_case(&E, DTS[d], MAX_IN, 256, act, seed + 700 + 10 * d + act);
        }

    for (int d = 0; d < NDT; d++) {
        bench(&E, DTS[d], 4096, 4096);
        bench(&E, DTS[d], 4096, 11008);
        bench(&E, DTS[d], 11008, 4096);
    }
    lk_cuda_dealloc(E.cu, E.dw), lk_cuda_dealloc(E.cu, E.dx), lk_cuda_dealloc(E.cu, E.dy);
    lk_cuda_mm_free(E.mm);
    lk_cpu_free(E.cpu);
    lk_cuda_free(E.cu);
    free(E.nan_y);
    return test_finish();
}
