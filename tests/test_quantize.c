/*
 * test_quantize.c - the searched-scale quantizers of core/quantize.c (used by
 * `loki convert`), without any model: on rows of Gaussian-like, heavy-tailed
 * (one outlier per 64) and all-positive values, each of Q4_0, Q5_0, Q4_K and
 * Q6_K dequantized by loki (core/quant.c)
 *  - has a relative RMS error below the type's bound (Gaussian-like and
 *    positive rows: Q4_0 8.5%, Q5_0 4.3%, Q4_K 7.7%, Q6_K 1.8%; with
 *    outliers: 17%, 9.5%, 10.5%, 3.2%; about 10% above what was measured) and
 *  - at most that of core/quant.c's round-to-nearest quantizer on the same
 *    rows (the search only keeps what lowers the error);
 * Q8_0 equals lk_row_from_f32 byte for byte (ggml's rounding); an all-zero
 * row dequantizes to zeros and a constant row to within the bound.
 */
#include "test.h"

#include "core/quant.h"
#include "core/quantize.h"

#define N 4096
#define N_KINDS 3

static const char *const k_kinds[N_KINDS] = {"gaussian", "outliers", "positive"};

/* Row of kind k: sums of uniforms (about Gaussian, sd 0.02), with a x10
 * outlier every 64 values, or shifted to be all positive. */
static void make_row(int k, float *x, uint64_t *seed) {
    float u[4];
    for (int i = 0; i < N; i++) {
        test_fill_random(u, 4, -0.035f, 0.035f, seed);
        x[i] = u[0] + u[1] + u[2] + u[3];
        if (k == 1 && i % 64 == 7) x[i] *= 10.0f;
        if (k == 2) x[i] = fabsf(x[i]) + 0.01f;
    }
}

/* Relative RMS error of dequantized type-t blocks q against x (N values). */
static double rel_rms(lk_dtype t, const void *q, const float *x) {
    float y[N];
    lk_row_to_f32(t, q, y, N);
    double se = 0, ss = 0;
    for (int i = 0; i < N; i++) {
        se += (double)(y[i] - x[i]) * (y[i] - x[i]);
        ss += (double)x[i] * x[i];
    }
    return sqrt(se / ss);
}

int main(void) {
    const lk_dtype types[] = {LK_DTYPE_Q4_0, LK_DTYPE_Q5_0, LK_DTYPE_Q4_K, LK_DTYPE_Q6_K};
    const double bound[][N_KINDS] = {{0.085, 0.17, 0.085}, {0.043, 0.095, 0.043}, {0.077, 0.105, 0.077},
                                      {0.018, 0.032, 0.018}};
    uint64_t seed = 0x5EEDull;
    float x[N];
    uint8_t a[N * 2], b[N * 2];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const lk_dtype t = types[ti];
        for (int k = 0; k < N_KINDS; k++) {
            make_row(k, x, &seed);
            lk_quantize_row(t, x, a, N);
            lk_quant_row_from_f32(t, x, b, N);
            double e_search = rel_rms(t, a, x), e_rtn = rel_rms(t, b, x);
            printf("%s %-8s: relative RMS error %.4f searched, %.4f round-to-nearest\n", lk_dtype_name(t), k_kinds[k],
                   e_search, e_rtn);
            CHECKF(e_search <= bound[ti][k], "%s %s: %.4f > %.4f", lk_dtype_name(t), k_kinds[k], e_search,
                   bound[ti][k]);
            CHECKF(e_search <= e_rtn, "%s %s: searched %.4f worse than round-to-nearest %.4f", lk_dtype_name(t),
                   k_kinds[k], e_search, e_rtn);
        }
        /* zeros stay zeros; a constant row is kept within the bound */
        memset(x, 0, sizeof x);
        lk_quantize_row(t, x, a, N);
        float y[N];
        lk_row_to_f32(t, a, y, N);
        int nonzero = 0;
        for (int i = 0; i < N; i++) nonzero += y[i] != 0.0f;
        CHECKF(nonzero == 0, "%s: %d of the zeros dequantize non-zero", lk_dtype_name(t), nonzero);
        for (int i = 0; i < N; i++) x[i] = -0.25f;
        lk_quantize_row(t, x, a, N);
        CHECKF(rel_rms(t, a, x) <= bound[ti][0], "%s: constant row error %.4f", lk_dtype_name(t), rel_rms(t, a, x));
    }
    /* Q8_0 is ggml's rounding, exactly */
    make_row(0, x, &seed);
    lk_quantize_row(LK_DTYPE_Q8_0, x, a, N);
    lk_row_from_f32(LK_DTYPE_Q8_0, x, b, N);
    CHECK(memcmp(a, b, lk_dtype_row_bytes(LK_DTYPE_Q8_0, N)) == 0);
    return test_finish();
}
