/*
 * test_cpu_ops.c - rmsnorm, rope (NORM/NEOX, partial rope_dim, linear and
 * llama3 scaling), swiglu, add_bias, get_row against double-precision
 * references, on both kernel levels (AUTO and SCALAR) and on small (inline)
 * and large (pool-threaded) inputs.
 */
#include "cpu/cpu.h"
#include "test.h"

static const lk_dtype k_dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16, LK_DTYPE_Q8_0};

static lk_tensor make_vec(lk_dtype dt, const float *src, int dim, void *buf) {
    lk_row_from_f32(dt, src, buf, dim);
    lk_tensor t = {.name = "v", .dtype = dt, .n_dims = 1, .ne = {dim, 1, 1, 1}, .data = buf,
                   .nbytes = lk_dtype_row_bytes(dt, dim)};
    return t;
}

/* ------------------------------------------------------------ rmsnorm */
/* tol: 1e-5 relative - f32 sum of squares over <= 1024 elements and one
 * rsqrt, each well under 1e-6 relative. */
static void test_rmsnorm(lk_cpu *c, uint64_t *seed) {
    const int dims[] = {384, 100, 1024};
    const int rows[] = {1, 3, 200};
    for (size_t d = 0; d < LK_ARRAY_LEN(k_dtypes); d++)
        for (int di = 0; di < 3; di++)
            for (int ri = 0; ri < 3; ri++) {
                int dim = dims[di], n = rows[ri];
                if (k_dtypes[d] == LK_DTYPE_Q8_0 && dim % 32) continue;
                float *wf = malloc(sizeof(float) * dim), *wd = malloc(sizeof(float) * dim);
                void *wb = malloc(4 * (size_t)dim);
                float *x = malloc(sizeof(float) * dim * n), *y = malloc(sizeof(float) * dim * n);
                test_fill_random(wf, dim, 0.5f, 1.5f, seed);
                test_fill_random(x, (size_t)dim * n, -3.0f, 3.0f, seed);
                lk_tensor w = make_vec(k_dtypes[d], wf, dim, wb);
                lk_row_to_f32(k_dtypes[d], wb, wd, dim);
                for (int inplace = 0; inplace < 2; inplace++) {
                    float *xin = malloc(sizeof(float) * dim * n);
                    memcpy(xin, x, sizeof(float) * dim * n);
                    float *out = inplace ? xin : y;
                    if (!inplace)
                        for (int i = 0; i < dim * n; i++) y[i] = NAN;
                    lk_cpu_rmsnorm(c, out, xin, &w, n, dim, 1e-5f);
                    int bad = 0;
                    for (int r = 0; r < n; r++) {
                        double ss = 0;
                        for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
                        double sc = 1.0 / sqrt(ss / dim + 1e-5);
                        for (int i = 0; i < dim; i++) {
                            double ref = wd[i] * x[r * dim + i] * sc;
                            if (!(fabs(out[r * dim + i] - ref) <= 1e-5 * fabs(ref) + 1e-7)) bad++;
                        }
                    }
                    CHECKF(bad == 0, "rmsnorm %s dim %d n %d inplace %d: %d bad",
                           lk_dtype_name(k_dtypes[d]), dim, n, inplace, bad);
                    free(xin);
                }
                free(wf); free(wd); free(wb); free(x); free(y);
            }
}

/* --------------------------------------------------------------- rope */
static lk_hparams rope_hp(lk_rope_style style, int head_dim, int rope_dim, float theta) {
    lk_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.head_dim = head_dim;
    hp.rope_dim = rope_dim;
    hp.rope_theta = theta;
    hp.rope_style = style;
    hp.rope_scaling = LK_ROPE_SCALING_NONE;
    hp.rope_factor = 1.0f;
    return hp;
}

/* Direct double-precision RoPE: inv = theta^(-2i/rope_dim), angle = pos*inv.
 * Tolerance: the float32 (HF) angle differs by <= ~2 ulp of pos*inv, so
 * |err| <= (3e-7 * pos * inv + 2e-6) * (|a| + |b|). */
static int rope_check(const float *x0, const float *x, int n, int nh, const int32_t *pos,
                      const lk_hparams *hp, double pos_scale) {
    int bad = 0, half = hp->rope_dim / 2;
    for (int r = 0; r < n; r++)
        for (int h = 0; h < nh; h++) {
            const float *a0 = x0 + ((size_t)r * nh + h) * hp->head_dim;
            const float *a1 = x + ((size_t)r * nh + h) * hp->head_dim;
            for (int i = 0; i < half; i++) {
                int ia = hp->rope_style == LK_ROPE_NEOX ? i : 2 * i;
                int ib = hp->rope_style == LK_ROPE_NEOX ? i + half : 2 * i + 1;
                double inv = pow(hp->rope_theta, -2.0 * i / hp->rope_dim);
                double ang = pos[r] * pos_scale * inv;
                double ra = a0[ia] * cos(ang) - a0[ib] * sin(ang);
                double rb = a0[ib] * cos(ang) + a0[ia] * sin(ang);
                double tol = (3e-7 * pos[r] * inv + 2e-6) * (fabs(a0[ia]) + fabs(a0[ib]));
                if (!(fabs(a1[ia] - ra) <= tol) || !(fabs(a1[ib] - rb) <= tol)) bad++;
            }
            for (int i = hp->rope_dim; i < hp->head_dim; i++)
                if (a1[i] != a0[i]) bad++; /* untouched, bit for bit */
        }
    return bad;
}

static void test_rope(lk_cpu *c, uint64_t *seed) {
    const int n_list[] = {1, 5, 300};
    for (int style = 0; style < 2; style++)
        for (int ni = 0; ni < 3; ni++)
            for (int partial = 0; partial < 2; partial++) {
                int n = n_list[ni], nh = 3, hd = 64;
                lk_hparams hp = rope_hp((lk_rope_style)style, hd, partial ? 32 : 64, 10000.0f);
                float *x0 = malloc(sizeof(float) * n * nh * hd), *x = malloc(sizeof(float) * n * nh * hd);
                int32_t *pos = malloc(sizeof(int32_t) * n);
                test_fill_random(x0, (size_t)n * nh * hd, -2.0f, 2.0f, seed);
                for (int r = 0; r < n; r++) pos[r] = n == 1 ? 4000 : (r * 13) % 4096;
                memcpy(x, x0, sizeof(float) * n * nh * hd);
                lk_cpu_rope(c, x, n, nh, pos, &hp);
                CHECKF(rope_check(x0, x, n, nh, pos, &hp, 1.0) == 0, "rope style %d n %d partial %d",
                       style, n, partial);
                /* linear scaling: inv_freq / factor == positions / factor */
                hp.rope_scaling = LK_ROPE_SCALING_LINEAR;
                hp.rope_factor = 4.0f;
                memcpy(x, x0, sizeof(float) * n * nh * hd);
                lk_cpu_rope(c, x, n, nh, pos, &hp);
                CHECKF(rope_check(x0, x, n, nh, pos, &hp, 0.25) == 0, "rope linear style %d n %d", style, n);
                free(x0); free(x); free(pos);
            }

    /* NEOX on HF-ordered q equals NORM on llama.cpp-permuted q (per head:
     * new[2i] = old[i], new[2i+1] = old[i + hd/2]), through a matmul with
     * permuted weight rows, as the GGUF converter does. */
    {
        const int nh = 3, hd = 64, in = 96, out = nh * hd;
        float *w = malloc(sizeof(float) * out * in), *wp = malloc(sizeof(float) * out * in);
        float *x = malloc(sizeof(float) * in);
        float *qh = malloc(sizeof(float) * out), *qg = malloc(sizeof(float) * out);
        test_fill_random(w, (size_t)out * in, -1, 1, seed);
        test_fill_random(x, in, -1, 1, seed);
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++) {
                memcpy(wp + (size_t)(h * hd + 2 * i) * in, w + (size_t)(h * hd + i) * in, sizeof(float) * in);
                memcpy(wp + (size_t)(h * hd + 2 * i + 1) * in, w + (size_t)(h * hd + i + hd / 2) * in,
                       sizeof(float) * in);
            }
        lk_tensor tw = {.dtype = LK_DTYPE_F32, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w};
        lk_tensor tp = tw;
        tp.data = wp;
        lk_cpu_matmul(c, qh, x, &tw, 1);
        lk_cpu_matmul(c, qg, x, &tp, 1);
        int32_t pos = 777;
        lk_hparams hn = rope_hp(LK_ROPE_NEOX, hd, hd, 10000.0f), hm = rope_hp(LK_ROPE_NORM, hd, hd, 10000.0f);
        lk_cpu_rope(c, qh, 1, nh, &pos, &hn);
        lk_cpu_rope(c, qg, 1, nh, &pos, &hm);
        double maxd = 0;
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++) {
                maxd = fmax(maxd, fabs(qg[h * hd + 2 * i] - qh[h * hd + i]));
                maxd = fmax(maxd, fabs(qg[h * hd + 2 * i + 1] - qh[h * hd + i + hd / 2]));
            }
        /* the same float ops on the same values; only the matmul's summation
         * order may differ between a row's two positions */
        CHECKF(maxd <= 1e-5, "NEOX(hf) vs NORM(permuted): max diff %g", maxd);
        free(w); free(wp); free(x); free(qh); free(qg);
    }

    /* Llama 3.1 scaling (theta 5e5, factor 8, low 1, high 4, orig ctx 8192,
     * d 128). Expected inv_freq computed by hand (double) from
     * _compute_llama3_parameters: i=0,28 high-frequency (kept), i=30,33
     * medium (smoothed: ratios 0.64374, 0.27143), i=40,63 low (/8). */
    {
        static const struct { int i; double inv; } k_l3[] = {
            {0, 1.0}, {28, 0.003211445994752591}, {30, 0.0013718935677611381},
            {33, 0.00031269375038406517}, {40, 3.428102195952591e-05}, {63, 3.068925988914511e-07},
        };
        lk_hparams hp = rope_hp(LK_ROPE_NEOX, 128, 128, 500000.0f);
        hp.rope_scaling = LK_ROPE_SCALING_LLAMA3;
        hp.rope_factor = 8.0f;
        hp.rope_low_freq_factor = 1.0f;
        hp.rope_high_freq_factor = 4.0f;
        hp.rope_orig_ctx = 8192;
        for (int pi = 0; pi < 2; pi++) {
            int32_t pos = pi ? 1000 : 1;
            float v[128];
            for (int i = 0; i < 64; i++) { v[i] = 1.0f; v[i + 64] = 0.0f; } /* (a,b) = (1,0) */
            lk_cpu_rope(c, v, 1, 1, &pos, &hp);
            for (size_t k = 0; k < LK_ARRAY_LEN(k_l3); k++) {
                int i = k_l3[k].i;
                double ang = pos * k_l3[k].inv;
                if (pos == 1) { /* the angle itself: relative 2e-6 */
                    double got = atan2(v[i + 64], v[i]);
                    CHECKF(fabs(got - ang) <= 2e-6 * ang, "llama3 i %d: angle %.9g want %.9g", i, got, ang);
                } else {        /* pos*inv in f32: abs 2e-4 */
                    CHECKF(fabs(v[i] - cos(ang)) <= 2e-4 && fabs(v[i + 64] - sin(ang)) <= 2e-4,
                           "llama3 i %d pos %d: (%g, %g) want (%g, %g)", i, pos, v[i], v[i + 64],
                           cos(ang), sin(ang));
                }
            }
        }
    }
}

/* ------------------------------------------------------------- swiglu */
/* tol: 4e-6 relative to |silu(g) u| - vector exp ~2 ulp, one division, one
 * multiply (scalar path: libm expf, tighter). */
static void test_swiglu(lk_cpu *c, uint64_t *seed) {
    const int shapes[][2] = {{1, 1000}, {3, 37}, {100, 1024}};
    for (int s = 0; s < 3; s++) {
        int n = shapes[s][0], f = shapes[s][1];
        size_t tot = (size_t)n * f;
        float *g = malloc(sizeof(float) * tot), *u = malloc(sizeof(float) * tot), *g0 = malloc(sizeof(float) * tot);
        test_fill_random(g, tot, -20, 20, seed);
        test_fill_random(u, tot, -2, 2, seed);
        g[0] = -100.0f;
        g[1] = 100.0f;
        g[2] = 0.0f;
        g[3] = -87.5f;
        memcpy(g0, g, sizeof(float) * tot);
        lk_cpu_swiglu(c, g, u, n, f);
        int bad = 0;
        for (size_t i = 0; i < tot; i++) {
            double ref = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
            if (!(fabs(g[i] - ref) <= 4e-6 * fabs(ref) + 1e-37)) {
                if (bad < 3) fprintf(stderr, "  swiglu g %g u %g: got %g want %g\n", g0[i], u[i], g[i], ref);
                bad++;
            }
        }
        CHECKF(bad == 0, "swiglu n %d n_ff %d: %d bad", n, f, bad);
        free(g); free(u); free(g0);
    }
}

/* ------------------------------------------------- add_bias, get_row */
static void test_bias_row(uint64_t *seed) {
    for (size_t d = 0; d < LK_ARRAY_LEN(k_dtypes); d++) {
        const int dims[] = {96, 300, 544};
        for (int di = 0; di < 3; di++) {
            int dim = dims[di], n = 3;
            if (k_dtypes[d] == LK_DTYPE_Q8_0 && dim % 32) continue;
            float *bf = malloc(sizeof(float) * dim), *bd = malloc(sizeof(float) * dim);
            void *bb = malloc(4 * (size_t)dim * 4);
            float *x = malloc(sizeof(float) * dim * n), *x0 = malloc(sizeof(float) * dim * n);
            test_fill_random(bf, dim, -1, 1, seed);
            test_fill_random(x0, (size_t)dim * n, -1, 1, seed);
            memcpy(x, x0, sizeof(float) * dim * n);
            lk_tensor b = make_vec(k_dtypes[d], bf, dim, bb);
            lk_row_to_f32(k_dtypes[d], bb, bd, dim);
            lk_cpu_add_bias(x, &b, n, dim);
            int bad = 0;
            for (int i = 0; i < dim * n; i++)
                if (x[i] != x0[i] + bd[i % dim]) bad++;
            CHECKF(bad == 0, "add_bias %s dim %d: %d bad", lk_dtype_name(k_dtypes[d]), dim, bad);

            /* get_row: a 4-row table, row 2 */
            float *tf = malloc(sizeof(float) * dim * 4), *got = malloc(sizeof(float) * dim);
            test_fill_random(tf, (size_t)dim * 4, -1, 1, seed);
            size_t rb = lk_dtype_row_bytes(k_dtypes[d], dim);
            for (int r = 0; r < 4; r++) lk_row_from_f32(k_dtypes[d], tf + r * dim, (char *)bb + r * rb, dim);
            lk_tensor t = {.dtype = k_dtypes[d], .n_dims = 2, .ne = {dim, 4, 1, 1}, .data = bb};
            lk_cpu_get_row(got, &t, 2);
            lk_row_to_f32(k_dtypes[d], (char *)bb + 2 * rb, bd, dim);
            CHECK(memcmp(got, bd, sizeof(float) * dim) == 0);
            free(bf); free(bd); free(bb); free(x); free(x0); free(tf); free(got);
        }
    }
}

int main(void) {
    uint64_t seed = 99;
    for (int nth = 1; nth <= 2; nth++)
        for (int lv = 0; lv < 2; lv++) {
            lk_cpu *c = NULL;
            loki_error err = {0};
            CHECK_OK(lk_cpu_init(&c, nth, 512, 4096, &err));
            if (!c) continue;
            lk_cpu_set_kernels(c, lv ? LK_CPU_KERNELS_SCALAR : LK_CPU_KERNELS_AUTO);
            test_rmsnorm(c, &seed);
            test_rope(c, &seed);
            test_swiglu(c, &seed);
            lk_cpu_free(c);
        }
    test_bias_row(&seed);
    return test_finish();
}
