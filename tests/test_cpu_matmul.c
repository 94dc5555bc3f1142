/*
 * test_cpu_matmul.c - lk_cpu_matmul for every dtype, both paths (n <=
 * LK_MV_MAX_N matrix-vector, larger n GEMM) and every kernel level (AUTO = AVX-512 when
 * compiled in, or the AVX2 matrix-vector kernels + portable GEMM in AVX2
 * builds; SCALAR = portable C + dequantized-tile sgemm, BLAS_GEMM),
 * against a double-precision reference computed from lk_row_to_f32-
 * dequantized weights. Fresh random inputs per case; y poisoned with NaN.
 *
 * Tolerances (S = sum_j |w_j x_j| of the output element):
 *  - f32/f16/bf16 weights, and every dtype on the GEMM path (activations
 *    stay f32; weights are exactly their dequantized values): only f32
 *    accumulation error, |err| <= 3e-5 * S. Justification: each output is
 *    a sum of `in` products accumulated in at most in/4 + 16 sequential f32
 *    adds per partial sum (scalar: 4 partials; SIMD: 16 lanes, or 2 x 8
 *    for AVX2, + reduction;
 *    sgemm: similar), and in <= 1056 here, so the classical bound
 *    (adds) * 2^-24 * S <= 280 * 6e-8 * S = 1.7e-5 * S.
 *  - q8_0 .. q6_k (lk_mv_has_qdot) with n <= LK_MV_MAX_N, and on the GEMM
 *    path where lk_cpu_gemm_qdot (the AVX-512 or AVX2 integer GEMM;
 *    activations quantized to int8 blocks, like llama.cpp):
 *    |x_j - d_b q_j| <= d_b / 2 with d_b = amax_b / 127, so
 *    |err| <= sum_b (amax_b / 254) * sum_{j in b} |w_j| + 3e-5 * S,
 *    computed per output element (times 1.001 for d_b's own rounding).
 *  - q2_k and q3_k at every level, and the other quantized types on the
 *    GEMM paths that keep f32 x (SCALAR, BLAS_GEMM): W's blocks are
 *    dequantized (a row or tile at a time) and multiply f32 x, so the
 *    result is the dequantized f32 product up to f32 summation order: the
 *    same 3e-5 * S bound. Cases whose `in`
 *    is not a multiple of the dtype's block (32, or 256 for K-quants) are
 *    skipped for that dtype; the 256-multiple cases cover them.
 */
#include "cpu/cpu.h"
#include "cpu/cpu_internal.h" /* LK_MV_MAX_N */
#include "test.h"

static const lk_dtype k_dtypes[] = {LK_DTYPE_F32,  LK_DTYPE_F16,  LK_DTYPE_BF16, LK_DTYPE_Q8_0,
                                    LK_DTYPE_Q4_0, LK_DTYPE_Q4_1, LK_DTYPE_Q5_0, LK_DTYPE_Q5_1,
                                    LK_DTYPE_Q2_K, LK_DTYPE_Q3_K, LK_DTYPE_Q4_K, LK_DTYPE_Q5_K,
                                    LK_DTYPE_Q6_K};

typedef struct mm_case {
    int in, out;
} mm_case;

/* in multiples of 32 (q8_0; multiples of 256 for the K-quants: 256, 512,
 * 1024, 1792); out odd, prime, below/above 32 and 4*threads */
static const mm_case k_cases[] = {
    {32, 1}, {32, 5}, {64, 31}, {96, 33}, {160, 67}, {384, 384}, {384, 97}, {1024, 129}, {1056, 37},
    {256, 3}, {512, 65}, {1792, 37},
};
static const int k_rows[] = {1, 2, 3, 5, 8, 9, 16, 17, 40}; /* both sides of LK_MV_MAX_N */

/* Returns the number of mismatching elements of y (n, out). */
static int check_case(lk_cpu *cpu, lk_dtype dt, int in, int out, int n, uint64_t *seed,
                      const char *level) {
    float *wf = malloc(sizeof(float) * in * out);      /* (out, in) source values */
    void *wq = malloc(lk_dtype_row_bytes(dt, in) * out);
    float *wd = malloc(sizeof(float) * in * out);      /* (out, in) dequantized */
    float *x = malloc(sizeof(float) * in * n);         /* (n, in) */
    float *y = malloc(sizeof(float) * out * n);        /* (n, out) */
    test_fill_random(wf, (size_t)in * out, -1.0f, 1.0f, seed);
    test_fill_random(x, (size_t)in * n, -2.0f, 2.0f, seed);
    /* a few large activations, like real residual streams */
    for (int i = 0; i < n; i++) x[(size_t)i * in + (i * 37) % in] *= 30.0f;
    size_t rb = lk_dtype_row_bytes(dt, in);
    for (int r = 0; r < out; r++) {
        lk_row_from_f32(dt, wf + (size_t)r * in, (char *)wq + r * rb, in);
        lk_row_to_f32(dt, (char *)wq + r * rb, wd + (size_t)r * in, in);
    }
    for (size_t i = 0; i < (size_t)out * n; i++) y[i] = NAN;
    lk_tensor w = {.name = "w", .dtype = dt, .n_dims = 2, .ne = {in, out, 1, 1}, .data = wq,
                   .nbytes = rb * out};
    lk_cpu_matmul(cpu, y, x, &w, n);

    int bad = 0;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * in;
        for (int r = 0; r < out; r++) {
            const float *wr = wd + (size_t)r * in;
            double ref = 0, S = 0, qerr = 0;
            for (int j = 0; j < in; j++) {
                ref += (double)wr[j] * xi[j];
                S += fabs((double)wr[j] * xi[j]);
            }
            if (lk_mv_has_qdot(dt) && (n <= LK_MV_MAX_N || lk_cpu_gemm_qdot(cpu, dt))) {
                for (int b = 0; b < in / 32; b++) {
                    double amax = 0, sw = 0;
                    for (int j = 32 * b; j < 32 * b + 32; j++) {
                        amax = fmax(amax, fabs(xi[j]));
                        sw += fabs(wr[j]);
                    }
                    qerr += amax / 254.0 * sw;
                }
            }
            double tol = 3e-5 * S + 1.001 * qerr + 1e-30;
            double got = y[(size_t)i * out + r];
            if (!(fabs(got - ref) <= tol)) {
                if (bad < 3)
                    fprintf(stderr, "  %s %s in %d out %d n %d [%d,%d]: got %.9g want %.9g tol %.3g\n",
                            level, lk_dtype_name(dt), in, out, n, i, r, got, ref, tol);
                bad++;
            }
        }
    }
    free(wf);
    free(wq);
    free(wd);
    free(x);
    free(y);
    return bad;
}

/* The SIMD float matrix-vector kernel called directly on rows [3, 10) of 11
 * (an odd start, the 4-row loop and a 3-row tail), `in` around the vector
 * widths, against lk_mv_float_scalar (same 3e-5 * S bound as above: both
 * sum the same exact products in f32); rows outside the range untouched. */
static void check_mv_float_direct(uint64_t *seed) {
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
    const int ins[] = {1, 7, 8, 9, 16, 17, 31, 32, 33, 301};
    const int out = 11, r0 = 3, r1 = 10;
    for (int d = 0; d < 3; d++) {
        const lk_dtype dt = k_dtypes[d];
        int bad = 0;
        for (size_t k = 0; k < LK_ARRAY_LEN(ins); k++) {
            const int in = ins[k];
            const size_t rb = lk_dtype_row_bytes(dt, in);
            float *wf = malloc(sizeof(float) * in * out), *wd = malloc(sizeof(float) * in);
            float *x = malloc(sizeof(float) * in), *tmp = malloc(sizeof(float) * in);
            char *wq = malloc(rb * out);
            float ys[11], yv[11];
            test_fill_random(wf, (size_t)in * out, -1.0f, 1.0f, seed);
            test_fill_random(x, (size_t)in, -2.0f, 2.0f, seed);
            for (int r = 0; r < out; r++) lk_row_from_f32(dt, wf + (size_t)r * in, wq + r * rb, in);
            for (int r = 0; r < out; r++) ys[r] = yv[r] = NAN;
            lk_mv_float_scalar(dt, ys, wq, x, in, r0, r1, tmp);
#if defined(LK_CPU_X86_512)
            lk_mv_float_x86(dt, yv, wq, x, in, r0, r1);
#else
            lk_mv_float_avx2(dt, yv, wq, x, in, r0, r1);
#endif
            for (int r = 0; r < out; r++) {
                if (r < r0 || r >= r1) {
                    bad += !isnan(yv[r]);
                    continue;
                }
                lk_row_to_f32(dt, wq + r * rb, wd, in);
                double S = 0;
                for (int j = 0; j < in; j++) S += fabs((double)wd[j] * x[j]);
                if (!(fabs((double)yv[r] - ys[r]) <= 3e-5 * S + 1e-30)) {
                    if (bad < 3)
                        fprintf(stderr, "  direct %s in %d row %d: simd %.9g scalar %.9g\n", lk_dtype_name(dt), in,
                                r, yv[r], ys[r]);
                    bad++;
                }
            }
            free(wf);
            free(wd);
            free(x);
            free(tmp);
            free(wq);
        }
        CHECKF(bad == 0, "direct SIMD float matvec %s: %d bad rows", lk_dtype_name(dt), bad);
    }
#else
    (void)seed;
#endif
}

static void run_level(int nth, lk_cpu_kernels level, const char *name) {
    lk_cpu *cpu = NULL;
    loki_error err = {0};
    CHECK_OK(lk_cpu_init(&cpu, nth, 64, 2048, &err));
    CHECK(LK_MV_MAX_N >= 9 && LK_MV_MAX_N < 17);
    if (!cpu) return;
    lk_cpu_set_kernels(cpu, level);
    uint64_t seed = 0x1234567ull + (uint64_t)nth * 77 + (uint64_t)level;
    for (size_t d = 0; d < LK_ARRAY_LEN(k_dtypes); d++) {
        int bad = 0, cases = 0;
        for (size_t c = 0; c < LK_ARRAY_LEN(k_cases); c++)
            for (size_t r = 0; r < LK_ARRAY_LEN(k_rows); r++) {
                if (k_cases[c].in % lk_dtype_block_elems(k_dtypes[d])) continue;
                bad += check_case(cpu, k_dtypes[d], k_cases[c].in, k_cases[c].out, k_rows[r], &seed, name);
                cases++;
            }
        CHECKF(bad == 0, "%s nth %d %s: %d bad elements over %d cases", name, nth,
               lk_dtype_name(k_dtypes[d]), bad, cases);
    }
    /* float dtypes with `in` not a multiple of 16 (masked tails) */
    for (int d = 0; d < 3; d++) {
        int bad = 0;
        for (int n = 1; n <= 9; n += 4) {
            bad += check_case(cpu, k_dtypes[d], 7, 13, n, &seed, name);
            bad += check_case(cpu, k_dtypes[d], 37, 40, n, &seed, name);
            bad += check_case(cpu, k_dtypes[d], 301, 70, n, &seed, name);
        }
        CHECKF(bad == 0, "%s nth %d %s odd in: %d bad", name, nth, lk_dtype_name(k_dtypes[d]), bad);
    }
    lk_cpu_free(cpu);
}

int main(void) {
    uint64_t seed = 0xabcdefull;
    check_mv_float_direct(&seed);
    for (int nth = 1; nth <= 3; nth++) {
        run_level(nth, LK_CPU_KERNELS_AUTO, "auto");
        run_level(nth, LK_CPU_KERNELS_SCALAR, "scalar");
        run_level(nth, LK_CPU_KERNELS_BLAS_GEMM, "blas_gemm");
    }
    lk_cpu *cpu = NULL;
    loki_error err = {0};
    /* the portable GEMM's tile scratch when max_dim > 4096 and in = 4096
     * (256 rows of 4096: more than tile_rows(max_dim) * max_dim; this
     * overflowed the per-thread scratch before, which ASan reports) */
    CHECK_OK(lk_cpu_init(&cpu, 1, 17, 16400, &err));
    if (cpu) {
        lk_cpu_set_kernels(cpu, LK_CPU_KERNELS_SCALAR);
        CHECK(check_case(cpu, LK_DTYPE_BF16, 4096, 300, 17, &seed, "scalar, max_dim 16400") == 0);
        lk_cpu_free(cpu), cpu = NULL;
    }
    CHECK(lk_cpu_init(&cpu, 2, 0, 100, &err) == LOKI_ERR_ARG);
    CHECK(cpu == NULL);
    return test_finish();
}
