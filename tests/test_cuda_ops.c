/*
 * test_cuda_ops.c - the GPU's elementwise and small ops (cuda/lk_cuda_ops.h,
 * src/cuda/ops.cu) against their CPU twins on fresh random inputs: rmsnorm,
 * rope, swiglu and geglu through lk_cpu_* (one thread, portable SCALAR
 * kernels: the reference does not depend on the host's SIMD), add, scale,
 * add_bias and softcap against the loops of the CPU backend
 * (engine/backend_cpu.c), get_rows against lk_row_to_f32, argmax against a
 * plain loop. Every output buffer is poisoned with NaN (argmax: a garbage
 * index) before the call, so an element the kernel skips fails the check.
 *
 * Tolerances (u = 2^-24, the unit roundoff of f32; each op's bound derived
 * where it is checked):
 *   exact (bit-identical): add, scale, add_bias, get_rows (every dtype),
 *     argmax (index), RoPE's untouched dims (>= rope_dim);
 *   libm-bound (CUDA's expf / tanhf / sincosf are within 2 ulp, glibc's
 *     within 1; every other rounding is the CPU's own, see ops.cu):
 *     silu 8u relative, gelu 6u relative + 5u * 0.5|x||up|, softcap 8u
 *     relative, rope 8u (|a| + |b|) of the rotated pair;
 *   order-bound: rmsnorm sums squares in another order than the CPU: the
 *     bound is the worst case of both summations (see check_rmsnorm), and
 *     the GPU alone is also held to its own tighter bound against double.
 * Exit 77 (skipped) without the CUDA backend or a usable GPU.
 * LOKI_TEST_SEED=N changes the random inputs.
 */
#include "test.h"

#include "core/quant.h"
#include "cpu/cpu.h"
#include "cuda/lk_cuda.h"
#include "cuda/lk_cuda_ops.h"

#include <float.h>
#include <stddef.h>

#define U (FLT_EPSILON / 2) /* 2^-24 */
#define NSHOW 5             /* failures printed per check */

static lk_cuda *g_cu;
static lk_cpu *g_cpu;
static uint64_t g_rng = 20261203;

/* ------------------------------------------------------------ helpers */


/* Device buffer of `bytes`, holding host data h (or NaN bytes 0xff when h is NULL). */
static void *dev_put(const void *h, size_t bytes) {
    loki_error err = {0};
    void *d = NULL;
    test_need(lk_cuda_alloc(g_cu, &d, bytes, "test buffer", &err), &err, "lk_cuda_alloc");
    void *tmp = NULL;
    if (!h) tmp = test_xmalloc(bytes), memset(tmp, 0xff, bytes); /* all-ones f32 = NaN, int32 = -1 */
    test_need(lk_cuda_upload(g_cu, d, h ? h : tmp, bytes, &err), &err, "lk_cuda_upload");
    free(tmp);
    return d;
}

static void dev_get(void *h, const void *d, size_t bytes) {
    loki_error err = {0};
    test_need(lk_cuda_download(g_cu, h, d, bytes, &err), &err, "lk_cuda_download");
}

static void dev_free(void *d) { lk_cuda_dealloc(g_cu, d); }

/* An op's status: OK expected; prints the message otherwise. */
static bool op_ok(loki_status st, const loki_error *err, const char *what) {
    CHECKF(st == LOKI_OK, "%s: status %d: %s", what, (int)st, err->msg);
    return st == LOKI_OK;
}

/* got vs want with per-element tolerance tol[i] (NULL: bit-exact). NaN
 * wants a NaN; a NaN where a number is wanted (the poison) fails. Prints the
 * first NSHOW failures and the worst error relative to its tolerance. */
static void compare(const char *what, const float *got, const float *want, const double *tol, size_t n) {
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok;
        if (!tol) {
            ok = memcmp(got + i, want + i, sizeof(float)) == 0;
        } else if (isnan(want[i]) || isnan(got[i])) {
            ok = isnan(want[i]) && isnan(got[i]);
        } else {
            const double e = fabs((double)got[i] - want[i]);
            ok = e <= tol[i];
            if (tol[i] > 0 && e / tol[i] > worst) worst = e / tol[i];
        }
        if (!ok && bad++ < NSHOW)
            CHECKF(false, "%s: element %zu: got %.9g, want %.9g (tol %.3g)", what, i, (double)got[i],
                   (double)want[i], tol ? tol[i] : 0.0);
    }
    CHECKF(bad == 0, "%s: %zu of %zu elements differ", what, bad, n);
    if (tol) printf("  %-44s ok %s (worst error %.2f of its tolerance)\n", what, bad ? "FAIL" : "", worst);
    else printf("  %-44s %s\n", what, bad ? "FAIL" : "exact");
}

/* ------------------------------------------------------------ rmsnorm */

/* rows (n, dim) x, weight w; in_place: y = x on the GPU; off: the device
 * pointers start `off` floats into their buffers (off = 1: unaligned, the
 * scalar path). */
static void check_rmsnorm(int n, int dim, bool in_place, int off) {
    char what[96];
    snprintf(what, sizeof what, "rmsnorm n=%d dim=%d%s%s", n, dim, in_place ? " in place" : "",
             off ? " unaligned" : "");
    const size_t N = (size_t)n * dim;
    float *x = test_random_floats(N + off, -2, 2, &g_rng);
    float *w = test_random_floats((size_t)dim + off, 0.5f, 1.5f, &g_rng);
    float *want = test_xmalloc(N * sizeof *want), *got = test_xmalloc(N * sizeof *got), *ref = test_xmalloc(N * sizeof *ref);
    double *tol = test_xmalloc(N * sizeof *tol), *tol2 = test_xmalloc(N * sizeof *tol2);
    float *dx = dev_put(x, (N + off) * 4), *dw = dev_put(w, ((size_t)dim + off) * 4);
    float *dy = in_place ? dx : dev_put(NULL, (N + off) * 4);
    const float eps = 1e-6f;
    loki_error err = {0};
    if (!op_ok(lk_cuda_rmsnorm(g_cu, dy + off, dx + off, dw + off, n, dim, eps, &err), &err, what) ||
        !op_ok(lk_cuda_sync(g_cu, &err), &err, what))
        goto done;
    dev_get(got, dy + off, N * 4);
    lk_tensor wt = {.name = "w", .dtype = LK_DTYPE_F32, .n_dims = 1, .ne = {dim, 1, 1, 1}, .data = w + off,
                    .nbytes = (size_t)dim * 4};
    lk_cpu_rmsnorm(g_cpu, want, x + off, &wt, n, dim, eps);
    /* The scale's relative error is half the sum of squares' plus 3u (divide,
     * add eps, sqrt, reciprocal), y two more roundings. Sums of positive
     * terms: the CPU's scalar path rounds x*x and adds dim/4 terms per lane
     * then 2 levels (<= (dim/4 + 3) u), the GPU's fmaf lanes at most dim/32 terms then 10
     * shuffle levels (<= (dim/32 + 10) u). Against the CPU: both bounds
     * (worst cases; the errors seen are far smaller, printed as a fraction);
     * against a double reference: the GPU's own, plus the reference's
     * rounding to f32. */
    const double gpu_ss = (dim / 32.0 + 10) * U, cpu_ss = (dim / 4.0 + 3) * U;
    for (int r = 0; r < n; r++) {
        const float *xr = x + off + (size_t)r * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        const double sc = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) {
            const size_t k = (size_t)r * dim + i;
            tol[k] = ((gpu_ss + cpu_ss) / 2 + 10 * U) * fabs(want[k]) + 1e-30;
            ref[k] = (float)((double)w[off + i] * xr[i] * sc);
            tol2[k] = (gpu_ss / 2 + 7 * U) * fabs(ref[k]) + 1e-30;
        }
    }
    compare(what, got, want, tol, N);
    snprintf(what + strlen(what), sizeof what - strlen(what), " vs double");
    compare(what, got, ref, tol2, N);
done:
    if (!in_place) dev_free(dy);
    dev_free(dx), dev_free(dw);
    free(x), free(w), free(want), free(got), free(ref), free(tol), free(tol2);
}

/* --------------------------------------------------------------- rope */

typedef struct rope_case {
    int n, n_heads, head_dim, rope_dim;
    lk_rope_style style;
    lk_rope_scaling scaling;
    float theta;
    bool freq_factors; /* rope_freq_factors (GGUF llama3 form) */
} rope_case;

static void check_rope(const rope_case *c) {
    char what[128];
    const char *sn[] = {"none", "linear", "llama3"};
    snprintf(what, sizeof what, "rope %s n=%d H=%d D=%d rd=%d %s%s", c->style == LK_ROPE_NEOX ? "neox" : "norm",
             c->n, c->n_heads, c->head_dim, c->rope_dim, sn[c->scaling], c->freq_factors ? "+factors" : "");
    const int half = c->rope_dim / 2;
    const size_t N = (size_t)c->n * c->n_heads * c->head_dim;
    lk_hparams hp = {.head_dim = c->head_dim, .rope_dim = c->rope_dim, .rope_style = c->style,
                     .rope_scaling = c->scaling, .rope_theta = c->theta, .rope_factor = 8.0f,
                     .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f, .rope_orig_ctx = 8192};
    if (c->scaling == LK_ROPE_SCALING_LINEAR) hp.rope_factor = 4.0f;
    float *ff = test_random_floats((size_t)half, 1.0f, 8.0f, &g_rng);
    if (c->freq_factors) hp.rope_freq_factors = ff;
    float *x = test_random_floats(N, -3, 3, &g_rng), *want = test_xmalloc(N * 4), *got = test_xmalloc(N * 4);
    float *inv = test_xmalloc((size_t)half * 4);
    double *tol = test_xmalloc(N * sizeof *tol);
    int32_t *pos = test_xmalloc((size_t)c->n * sizeof *pos);
    for (int i = 0; i < c->n; i++) pos[i] = (int32_t)(test_rand32(&g_rng) % 100001u);
    const int32_t fixed[] = {0, 1, 100000, 8191, 65535};
    for (int i = 0; i < c->n && i < 5; i++) pos[i] = fixed[i];
    lk_rope_inv_freq(&hp, inv);
    float *dx = dev_put(x, N * 4), *dinv = dev_put(inv, (size_t)half * 4);
    int32_t *dpos = dev_put(pos, (size_t)c->n * 4);
    loki_error err = {0};
    if (!op_ok(lk_cuda_rope(g_cu, dx, c->n, c->n_heads, c->head_dim, dpos, dinv, c->rope_dim,
                            c->style == LK_ROPE_NEOX, &err), &err, what) ||
        !op_ok(lk_cuda_sync(g_cu, &err), &err, what))
        goto done;
    dev_get(got, dx, N * 4);
    memcpy(want, x, N * 4);
    lk_cpu_rope(g_cpu, want, c->n, c->n_heads, pos, &hp);
    /* Rotated element of pair (a, b): the angle is the same f32 product on
     * both sides; cos/sin differ by <= 3u absolute (2 + 1 ulp of values <= 1),
     * each product rounding and the final one <= u (|a| + |b|) per side:
     * <= 7u (|a| + |b|); 8u allowed. Dims >= rope_dim must be untouched. */
    for (size_t row = 0; row < (size_t)c->n * c->n_heads; row++)
        for (int k = 0; k < c->head_dim; k++) {
            const float *v = x + row * c->head_dim;
            double t = 0;
            if (k < c->rope_dim) {
                const int p = c->style == LK_ROPE_NEOX ? k % half : k / 2;
                const int ia = c->style == LK_ROPE_NEOX ? p : 2 * p, ib = c->style == LK_ROPE_NEOX ? p + half : 2 * p + 1;
                t = 8 * U * (fabs(v[ia]) + fabs(v[ib])) + 1e-30;
            }
            tol[row * c->head_dim + k] = t;
        }
    compare(what, got, want, tol, N);
    size_t same = 0, tail = 0;
    for (size_t row = 0; row < (size_t)c->n * c->n_heads; row++)
        for (int k = c->rope_dim; k < c->head_dim; k++, tail++)
            same += memcmp(got + row * c->head_dim + k, x + row * c->head_dim + k, 4) == 0;
    CHECKF(same == tail, "%s: %zu of %zu dims beyond rope_dim changed", what, tail - same, tail);
done:
    dev_free(dx), dev_free(dinv), dev_free(dpos);
    free(ff), free(x), free(want), free(got), free(inv), free(tol), free(pos);
}

/* ------------------------------------------- glu, softcap, add, scale */

/* A few values at the ends of the activations' ranges, written over x. */
static void put_specials(float *x, size_t n) {
    const float sp[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 100.0f, -100.0f, 88.0f, -88.0f, 89.0f, -89.0f, 1e-3f,
                        -5.0f, 9.0f, -9.0f, 2000.0f, -2000.0f};
    for (size_t i = 0; i < n && i < sizeof sp / sizeof sp[0]; i++) x[i * 7 % n] = sp[i];
}

static void check_glu(int64_t n, int act, int off) {
    char what[96];
    snprintf(what, sizeof what, "%s n=%lld%s", act ? "geglu" : "swiglu", (long long)n, off ? " unaligned" : "");
    float *g = test_random_floats((size_t)n + off, -12, 12, &g_rng);
    float *u = test_random_floats((size_t)n + off, -2, 2, &g_rng);
    put_specials(g + off, (size_t)n);
    float *want = test_xmalloc((size_t)n * 4), *got = test_xmalloc((size_t)n * 4);
    double *tol = test_xmalloc((size_t)n * sizeof *tol);
    float *dg = dev_put(g, ((size_t)n + off) * 4), *du = dev_put(u, ((size_t)n + off) * 4);
    loki_error err = {0};
    if (!op_ok(lk_cuda_glu(g_cu, dg + off, du + off, n, act, &err), &err, what) ||
        !op_ok(lk_cuda_sync(g_cu, &err), &err, what))
        goto done;
    dev_get(got, dg + off, (size_t)n * 4);
    memcpy(want, g + off, (size_t)n * 4);
    if (act) lk_cpu_geglu(g_cpu, want, u + off, 1, (int)n);
    else lk_cpu_swiglu(g_cpu, want, u + off, 1, (int)n);
    for (int64_t i = 0; i < n; i++) {
        /* silu: expf differs by <= 3 ulp, so 1 + e, the quotient and the
         * product by <= 3u + 3 roundings: 8u relative. gelu: tanhf differs by
         * <= 3u absolute (|t| <= 1), which 1 + t does not shrink near t = -1:
         * 5u * 0.5|x||up| absolute, plus 6u relative for the roundings. The
         * absolute 1e-36 covers results below FLT_MIN (subnormals). */
        const double a = fabs(want[i]);
        tol[i] = act ? 6 * U * a + 5 * U * 0.5 * fabs(g[off + i]) * fabs(u[off + i]) + 1e-36 : 8 * U * a + 1e-36;
    }
    compare(what, got, want, tol, (size_t)n);
done:
    dev_free(dg), dev_free(du);
    free(g), free(u), free(want), free(got), free(tol);
}

/* op 0: add, 1: scale, 2: softcap; CPU: the CPU backend's loops. */
static void check_pointwise(int op, int64_t n, float s, int off) {
    char what[96];
    const char *name[] = {"add", "scale", "softcap"};
    snprintf(what, sizeof what, "%s n=%lld s=%g%s", name[op], (long long)n, (double)s, off ? " unaligned" : "");
    float *x = test_random_floats((size_t)n + off, op == 2 ? -200.0f : -10.0f, op == 2 ? 200.0f : 10.0f, &g_rng);
    float *y = test_random_floats((size_t)n + off, -10, 10, &g_rng);
    put_specials(x + off, (size_t)n);
    float *want = test_xmalloc((size_t)n * 4), *got = test_xmalloc((size_t)n * 4);
    double *tol = op == 2 ? test_xmalloc((size_t)n * sizeof *tol) : NULL;
    float *dx = dev_put(x, ((size_t)n + off) * 4), *dy = dev_put(y, ((size_t)n + off) * 4);
    loki_error err = {0};
    loki_status st = op == 0   ? lk_cuda_add(g_cu, dx + off, dy + off, n, &err)
                     : op == 1 ? lk_cuda_scale(g_cu, dx + off, s, n, &err)
                               : lk_cuda_softcap(g_cu, dx + off, s, n, &err);
    if (!op_ok(st, &err, what) || !op_ok(lk_cuda_sync(g_cu, &err), &err, what)) goto done;
    dev_get(got, dx + off, (size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        const float v = x[off + i];
        want[i] = op == 0 ? v + y[off + i] : op == 1 ? v * s : s * tanhf(v / s);
        /* softcap: the quotient is the same; tanhf differs by <= 3 ulp (3u
         * relative), times c one rounding each: 8u relative */
        if (tol) tol[i] = 8 * U * fabs(want[i]) + 1e-36;
    }
    compare(what, got, want, tol, (size_t)n);
done:
    dev_free(dx), dev_free(dy);
    free(x), free(y), free(want), free(got), free(tol);
}

static void check_add_bias(int n, int dim, int off) {
    char what[96];
    snprintf(what, sizeof what, "add_bias n=%d dim=%d%s", n, dim, off ? " unaligned" : "");
    const size_t N = (size_t)n * dim;
    float *x = test_random_floats(N + off, -10, 10, &g_rng), *b = test_random_floats((size_t)dim + off, -1, 1, &g_rng);
    float *want = test_xmalloc(N * 4), *got = test_xmalloc(N * 4);
    float *dx = dev_put(x, (N + off) * 4), *db = dev_put(b, ((size_t)dim + off) * 4);
    loki_error err = {0};
    if (!op_ok(lk_cuda_add_bias(g_cu, dx + off, db + off, n, dim, &err), &err, what) ||
        !op_ok(lk_cuda_sync(g_cu, &err), &err, what))
        goto done;
    dev_get(got, dx + off, N * 4);
    memcpy(want, x + off, N * 4);
    lk_tensor bt = {.name = "b", .dtype = LK_DTYPE_F32, .n_dims = 1, .ne = {dim, 1, 1, 1}, .data = b + off,
                    .nbytes = (size_t)dim * 4};
    lk_cpu_add_bias(want, &bt, n, dim);
    compare(what, got, want, NULL, N);
done:
    dev_free(dx), dev_free(db);
    free(x), free(b), free(want), free(got);
}

/* ----------------------------------------------------------- get_rows */

/* Byte offsets of the fp16 scale fields of a block of dt (-1 ends). */
static void f16_fields(lk_dtype dt, int off[3]) {
    off[0] = off[1] = off[2] = -1;
    switch (dt) {
    case LK_DTYPE_Q8_0: off[0] = offsetof(lk_block_q8_0, d); break;
    case LK_DTYPE_Q4_0: off[0] = offsetof(lk_block_q4_0, d); break;
    case LK_DTYPE_Q4_1: off[0] = offsetof(lk_block_q4_1, d), off[1] = offsetof(lk_block_q4_1, m); break;
    case LK_DTYPE_Q5_0: off[0] = offsetof(lk_block_q5_0, d); break;
    case LK_DTYPE_Q5_1: off[0] = offsetof(lk_block_q5_1, d), off[1] = offsetof(lk_block_q5_1, m); break;
    case LK_DTYPE_Q2_K: off[0] = offsetof(lk_block_q2_k, d), off[1] = offsetof(lk_block_q2_k, dmin); break;
    case LK_DTYPE_Q3_K: off[0] = offsetof(lk_block_q3_k, d); break;
    case LK_DTYPE_Q4_K: off[0] = offsetof(lk_block_q4_k, d), off[1] = offsetof(lk_block_q4_k, dmin); break;
    case LK_DTYPE_Q5_K: off[0] = offsetof(lk_block_q5_k, d), off[1] = offsetof(lk_block_q5_k, dmin); break;
    case LK_DTYPE_Q6_K: off[0] = offsetof(lk_block_q6_k, d); break;
    default: break;
    }
}

/* A table of random bytes (every bit pattern of the float types, NaN
 * included; quantized blocks with finite fp16 scales, subnormals included:
 * a NaN scale's payload is not kept by GPU arithmetic), n rows gathered
 * (indices in range, both ends, and out of range), exact against
 * lk_row_to_f32 (zeros for the rows out of range). */
static void check_get_rows(lk_dtype dt, int64_t n_rows, int64_t dim, int n) {
    char what[96];
    snprintf(what, sizeof what, "get_rows %s %lld x %lld, %d rows", lk_dtype_name(dt), (long long)n_rows,
             (long long)dim, n);
    const size_t rb = lk_dtype_row_bytes(dt, dim), bb = lk_dtype_block_bytes(dt);
    const size_t tb = rb * (size_t)n_rows;
    uint8_t *tab = test_xmalloc(tb);
    for (size_t i = 0; i < tb; i++) tab[i] = (uint8_t)test_rand32(&g_rng);
    int fo[3];
    f16_fields(dt, fo);
    for (size_t b0 = 0; b0 + bb <= tb && fo[0] >= 0; b0 += bb)
        for (int f = 0; f < 3 && fo[f] >= 0; f++)
            if (((tab[b0 + fo[f] + 1] >> 2) & 31) == 31) tab[b0 + fo[f] + 1] &= 0xbf; /* exponent 31 -> 15 */
    int32_t *rows = test_xmalloc((size_t)n * sizeof *rows);
    for (int i = 0; i < n; i++) rows[i] = (int32_t)(test_rand32(&g_rng) % (uint32_t)n_rows);
    const int32_t edge[] = {0, (int32_t)n_rows - 1, -1, (int32_t)n_rows, INT32_MIN, INT32_MAX};
    for (int i = 0; i < n && i < 6; i++) rows[(i * 5 + 1) % n] = edge[i];
    const size_t N = (size_t)n * dim;
    float *want = test_xmalloc(N * 4), *got = test_xmalloc(N * 4);
    for (int i = 0; i < n; i++) {
        if (rows[i] >= 0 && rows[i] < n_rows) lk_row_to_f32(dt, tab + (size_t)rows[i] * rb, want + (size_t)i * dim, dim);
        else memset(want + (size_t)i * dim, 0, (size_t)dim * 4);
    }
    void *dtab = dev_put(tab, tb);
    int32_t *drows = dev_put(rows, (size_t)n * 4);
    float *dout = dev_put(NULL, N * 4);
    loki_error err = {0};
    if (!op_ok(lk_cuda_get_rows(g_cu, dout, dt, dtab, n_rows, dim, drows, n, &err), &err, what) ||
        !op_ok(lk_cuda_sync(g_cu, &err), &err, what))
        goto done;
    dev_get(got, dout, N * 4);
    compare(what, got, want, NULL, N);
done:
    dev_free(dtab), dev_free(drows), dev_free(dout);
    free(tab), free(rows), free(want), free(got);
}

/* ------------------------------------------------------------- argmax */

/* The reference: the first largest number; NaN never wins; only NaN: 0. */
static int32_t ref_argmax(const float *x, int64_t dim) {
    int32_t best = -1;
    for (int64_t i = 0; i < dim; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = (int32_t)i;
    return best < 0 ? 0 : best;
}

/* n rows of dim with planted structure by row r % 8: 0 random; 1 the max
 * tied at several places far apart; 2 NaNs (at 0, at the max's place + 1,
 * scattered) around a max; 3 only NaN; 4 +inf twice; 5 only -inf; 6 the max
 * in the last element; 7 all equal. off = 1: x unaligned (scalar path). */
static void check_argmax(int n, int64_t dim, int off) {
    char what[96];
    snprintf(what, sizeof what, "argmax n=%d dim=%lld%s", n, (long long)dim, off ? " unaligned" : "");
    const size_t N = (size_t)n * dim;
    float *x = test_random_floats(N + off, -5, 5, &g_rng);
    for (int r = 0; r < n; r++) {
        float *row = x + off + (size_t)r * dim;
        const int64_t a = (int64_t)(test_rand32(&g_rng) % (uint32_t)dim);
        const int64_t b = (int64_t)(test_rand32(&g_rng) % (uint32_t)dim);
        switch (r % 8) {
        case 1: row[a] = row[b] = row[dim - 1] = row[dim / 2] = 7.5f; break;
        case 2:
            row[0] = NAN, row[a] = 6.0f;
            if (a + 1 < dim) row[a + 1] = NAN;
            for (int64_t i = 3; i < dim; i += 97) row[i] = NAN;
            if (a >= 3 && (a - 3) % 97 == 0) row[a] = 6.0f;
            break;
        case 3: for (int64_t i = 0; i < dim; i++) row[i] = NAN; break;
        case 4: row[b] = row[a] = INFINITY; break;
        case 5: for (int64_t i = 0; i < dim; i++) row[i] = -INFINITY; break;
        case 6: row[dim - 1] = 9.0f; break;
        case 7: for (int64_t i = 0; i < dim; i++) row[i] = -1.25f; break;
        default: break;
        }
    }
    int32_t *want = test_xmalloc((size_t)n * 4), *got = test_xmalloc((size_t)n * 4), *poison = test_xmalloc((size_t)n * 4);
    for (int r = 0; r < n; r++) want[r] = ref_argmax(x + off + (size_t)r * dim, dim), poison[r] = 0x5eadbeef;
    float *dx = dev_put(x, (N + off) * 4);
    int32_t *didx = dev_put(poison, (size_t)n * 4);
    loki_error err = {0};
    size_t bad = 0;
    if (!op_ok(lk_cuda_argmax(g_cu, didx, dx + off, n, dim, &err), &err, what) ||
        !op_ok(lk_cuda_sync(g_cu, &err), &err, what))
        goto done;
    dev_get(got, didx, (size_t)n * 4);
    for (int r = 0; r < n; r++)
        if (got[r] != want[r] && bad++ < NSHOW)
            CHECKF(false, "%s: row %d (kind %d): got %d, want %d", what, r, r % 8, got[r], want[r]);
    CHECKF(bad == 0, "%s: %zu of %d rows wrong", what, bad, n);
    printf("  %-44s %s\n", what, bad ? "FAIL" : "exact");
done:
    dev_free(dx), dev_free(didx);
    free(x), free(want), free(got), free(poison);
}

/* ------------------------------------------------------- bad arguments */

/* st must be LOKI_ERR_ARG with a message naming the op. */
static void expect_arg(loki_status st, const loki_error *err, const char *op, const char *what) {
    CHECKF(st == LOKI_ERR_ARG && strstr(err->msg, op), "%s: %s: status %d, message \"%s\"", op, what, (int)st,
           err->msg);
}

static void check_bad_args(void) {
    float *d = dev_put(NULL, 4096 * 4);
    int32_t *di = dev_put(NULL, 64 * 4);
    loki_error e = {0};
#define BAD(call, op, what) (memset(&e, 0, sizeof e), expect_arg((call), &e, op, what))
    BAD(lk_cuda_rmsnorm(g_cu, d, d, d, -1, 64, 1e-6f, &e), "lk_cuda_rmsnorm", "n < 0");
    BAD(lk_cuda_rmsnorm(g_cu, d, d, d, 1, 0, 1e-6f, &e), "lk_cuda_rmsnorm", "dim 0");
    BAD(lk_cuda_rmsnorm(g_cu, d, d, d, 1, 64, -1.0f, &e), "lk_cuda_rmsnorm", "eps < 0");
    BAD(lk_cuda_rmsnorm(g_cu, d, NULL, d, 1, 64, 1e-6f, &e), "lk_cuda_rmsnorm", "x NULL");
    BAD(lk_cuda_rope(g_cu, d, 1, 1, 64, di, d, 63, 0, &e), "lk_cuda_rope", "odd rope_dim");
    BAD(lk_cuda_rope(g_cu, d, 1, 1, 64, di, d, 128, 0, &e), "lk_cuda_rope", "rope_dim > head_dim");
    BAD(lk_cuda_rope(g_cu, d, 1, 1, 64, di, d, 0, 0, &e), "lk_cuda_rope", "rope_dim 0");
    BAD(lk_cuda_rope(g_cu, d, -1, 1, 64, di, d, 64, 0, &e), "lk_cuda_rope", "n < 0");
    BAD(lk_cuda_rope(g_cu, d, 1, 1, 64, NULL, d, 64, 0, &e), "lk_cuda_rope", "pos NULL");
    BAD(lk_cuda_glu(g_cu, d, d, 16, 2, &e), "lk_cuda_glu", "act 2");
    BAD(lk_cuda_glu(g_cu, d, d, -16, 0, &e), "lk_cuda_glu", "n < 0");
    BAD(lk_cuda_add(g_cu, d, NULL, 16, &e), "lk_cuda_add", "y NULL");
    BAD(lk_cuda_add(g_cu, d, d, -1, &e), "lk_cuda_add", "n < 0");
    BAD(lk_cuda_add_bias(g_cu, d, d, 2, 0, &e), "lk_cuda_add_bias", "dim 0");
    BAD(lk_cuda_scale(g_cu, d, 2.0f, -5, &e), "lk_cuda_scale", "n < 0");
    BAD(lk_cuda_softcap(g_cu, d, 0.0f, 16, &e), "lk_cuda_softcap", "cap 0");
    BAD(lk_cuda_softcap(g_cu, d, NAN, 16, &e), "lk_cuda_softcap", "cap NaN");
    BAD(lk_cuda_get_rows(g_cu, d, LK_DTYPE_Q4_K, d, 4, 128, di, 1, &e), "lk_cuda_get_rows", "dim % 256");
    BAD(lk_cuda_get_rows(g_cu, d, LK_DTYPE_Q8_0, d, 4, 48, di, 1, &e), "lk_cuda_get_rows", "dim % 32");
    BAD(lk_cuda_get_rows(g_cu, d, (lk_dtype)4, d, 4, 64, di, 1, &e), "lk_cuda_get_rows", "dtype 4");
    BAD(lk_cuda_get_rows(g_cu, d, LK_DTYPE_F32, d, -1, 64, di, 1, &e), "lk_cuda_get_rows", "n_rows < 0");
    BAD(lk_cuda_get_rows(g_cu, d, LK_DTYPE_F32, NULL, 4, 64, di, 1, &e), "lk_cuda_get_rows", "table NULL");
    BAD(lk_cuda_get_rows(g_cu, d, LK_DTYPE_F16, (char *)d + 1, 4, 64, di, 1, &e), "lk_cuda_get_rows", "odd table");
    BAD(lk_cuda_argmax(g_cu, di, d, 1, 0, &e), "lk_cuda_argmax", "dim 0");
    BAD(lk_cuda_argmax(g_cu, di, d, 1, (int64_t)1 << 31, &e), "lk_cuda_argmax", "dim 2^31");
    BAD(lk_cuda_argmax(g_cu, di, d, -1, 16, &e), "lk_cuda_argmax", "n < 0");
#undef BAD
    /* nothing to do is fine, even with NULL buffers */
    CHECK_OK(lk_cuda_rmsnorm(g_cu, NULL, NULL, NULL, 0, 64, 1e-6f, &e_));
    CHECK_OK(lk_cuda_add(g_cu, NULL, NULL, 0, &e_));
    CHECK_OK(lk_cuda_argmax(g_cu, NULL, NULL, 0, 16, &e_));
    CHECK_OK(lk_cuda_get_rows(g_cu, NULL, LK_DTYPE_Q6_K, NULL, 0, 256, NULL, 0, &e_));
    CHECK_OK(lk_cuda_sync(g_cu, &e_)); /* and the refusals left the stream usable */
    printf("  bad arguments refused (e.g. \"%s\")\n", e.msg);
    dev_free(d), dev_free(di);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    g_cu = test_gpu_open(&g_rng);
    loki_error err = {0};
    test_need(lk_cpu_init(&g_cpu, 1, 64, 8192, &err), &err, "lk_cpu_init");
    lk_cpu_set_kernels(g_cpu, LK_CPU_KERNELS_SCALAR);

    printf("rmsnorm\n");
    const int rn[][2] = {{1, 64}, {37, 8192}, {5, 4095}, {3, 576}, {7, 1025}, {2, 2048}, {1, 8191}, {16, 128},
                         {37 * 8, 256}, {9, 640}, {4, 3}, {1, 16384}};
    for (size_t i = 0; i < sizeof rn / sizeof rn[0]; i++) check_rmsnorm(rn[i][0], rn[i][1], false, 0);
    check_rmsnorm(11, 2048, true, 0);
    check_rmsnorm(13, 1536, false, 1);
    check_rmsnorm(6, 64, true, 1);

    printf("rope\n");
    const rope_case rc[] = {
        {7, 4, 64, 64, LK_ROPE_NORM, LK_ROPE_SCALING_NONE, 10000.0f, false},
        {37, 9, 64, 32, LK_ROPE_NEOX, LK_ROPE_SCALING_NONE, 10000.0f, false},
        {13, 32, 128, 128, LK_ROPE_NEOX, LK_ROPE_SCALING_LLAMA3, 500000.0f, false},
        {5, 8, 128, 128, LK_ROPE_NORM, LK_ROPE_SCALING_LLAMA3, 500000.0f, false},
        {11, 8, 128, 64, LK_ROPE_NORM, LK_ROPE_SCALING_LINEAR, 10000.0f, false},
        {3, 4, 256, 256, LK_ROPE_NEOX, LK_ROPE_SCALING_NONE, 1000000.0f, false},
        {1, 1, 256, 128, LK_ROPE_NEOX, LK_ROPE_SCALING_LINEAR, 10000.0f, false},
        {29, 2, 256, 200, LK_ROPE_NORM, LK_ROPE_SCALING_NONE, 10000.0f, false},
        {17, 6, 128, 96, LK_ROPE_NEOX, LK_ROPE_SCALING_NONE, 500000.0f, true},
        {2, 3, 66, 66, LK_ROPE_NORM, LK_ROPE_SCALING_NONE, 10000.0f, false},
    };
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) check_rope(&rc[i]);

    printf("glu\n");
    const int64_t gn[] = {1, 64, 4095, 8192, 37 * 1536, 37 * 8192 + 3};
    for (size_t i = 0; i < sizeof gn / sizeof gn[0]; i++) check_glu(gn[i], 0, 0), check_glu(gn[i], 1, 0);
    check_glu(6001, 0, 1), check_glu(6001, 1, 3);

    printf("add, scale, softcap, add_bias\n");
    const int64_t pn[] = {1, 3, 576, 4097, 37 * 8192};
    for (size_t i = 0; i < sizeof pn / sizeof pn[0]; i++) {
        check_pointwise(0, pn[i], 0.0f, 0);
        check_pointwise(1, pn[i], pn[i] % 2 ? 25.2982f : 0.125f, 0);
        check_pointwise(2, pn[i], pn[i] % 2 ? 30.0f : 50.0f, 0);
    }
    check_pointwise(0, 999, 0.0f, 1), check_pointwise(1, 999, -3.0f, 2), check_pointwise(2, 999, 30.0f, 3);
    const int bn[][2] = {{1, 64}, {37, 896}, {5, 4095}, {3, 8192}, {1, 1}, {16, 130}};
    for (size_t i = 0; i < sizeof bn / sizeof bn[0]; i++) check_add_bias(bn[i][0], bn[i][1], 0);
    check_add_bias(7, 512, 1);

    printf("get_rows\n");
    const struct { lk_dtype dt; int64_t dim; } gr[] = {
        {LK_DTYPE_F32, 577}, {LK_DTYPE_F32, 4096}, {LK_DTYPE_F16, 64}, {LK_DTYPE_F16, 2049}, {LK_DTYPE_BF16, 8192},
        {LK_DTYPE_BF16, 333}, {LK_DTYPE_Q8_0, 576}, {LK_DTYPE_Q8_0, 8192}, {LK_DTYPE_Q4_0, 2080},
        {LK_DTYPE_Q4_1, 576}, {LK_DTYPE_Q5_0, 640}, {LK_DTYPE_Q5_1, 96}, {LK_DTYPE_Q2_K, 2048},
        {LK_DTYPE_Q3_K, 768}, {LK_DTYPE_Q4_K, 8192}, {LK_DTYPE_Q4_K, 256}, {LK_DTYPE_Q5_K, 1536},
        {LK_DTYPE_Q6_K, 768}, {LK_DTYPE_Q6_K, 4096}, /* k-quant rows are whole 256-blocks */
    };
    for (size_t i = 0; i < sizeof gr / sizeof gr[0]; i++)
        check_get_rows(gr[i].dt, 50 + (int64_t)i, gr[i].dim, 1 + (int)(i * 7 % 37));
    check_get_rows(LK_DTYPE_Q4_K, 3, 256, 37);

    printf("argmax\n");
    const struct { int n; int64_t dim; } am[] = {
        {8, 1}, {8, 5}, {16, 64}, {8, 1000}, {8, 4096}, {37, 32000}, {8, 151936}, {16, 262144}, {8, 262147},
        {1, 262144}, {3, 49152},
    };
    for (size_t i = 0; i < sizeof am / sizeof am[0]; i++) check_argmax(am[i].n, am[i].dim, 0);
    check_argmax(8, 262144, 1);
    check_argmax(9, 4099, 2);

    printf("bad arguments\n");
    check_bad_args();

    lk_cpu_free(g_cpu);
    lk_cuda_free(g_cu);
    return test_finish();
}
