/*
 * test_attn_kernels.c - the building blocks of src/attn one by one (split
 * from test_attn.c, which tests the methods end to end): lk_scores and
 * lk_weighted_rows against plain loops, the typed-row kernels SIMD against
 * portable and both against double loops, lk_topk against sorting, the
 * dense decode step over long contexts, and lk_gather_attend (Loki's
 * attend over gathered rows) against a double-precision softmax.
 */
#include "test.h"

#include <float.h>

#include "attn/attn.h"
#include "attn/attn_impl.h"
#include "cpu/cpu.h"

static const char *tname(loki_kv_type t) { return loki_kv_type_name(t); }

static const double *g_sort_key; /* test-only: qsort has no context argument */
static int by_key_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    double x = g_sort_key[i], y = g_sort_key[j];
    return x > y ? -1 : x < y ? 1 : (i - j);
}

/* lk_scores and lk_weighted_rows against plain loops: every vector width,
 * tails of S and D, several query rows. */
static void test_kernels(void) {
    uint64_t seed = 99;
    static float K[53 * 160], Q[3 * 160], out[3 * 53], W[3 * 53], O[3 * 160];
    const int dims[] = {4, 16, 20, 32, 48, 64, 128, 160};
    for (int di = 0; di < 8; di++) {
        int d = dims[di], S = 53;
        test_fill_random(K, (size_t)S * d, -1, 1, &seed);
        test_fill_random(Q, (size_t)3 * d, -1, 1, &seed);
        test_fill_random(W, (size_t)3 * S, 0, 1, &seed);
        for (int M = 1; M <= 3; M++) {
            lk_scores(K, S, d, Q, d, M, 0.5f, out, S);
            double e = 0;
            for (int m = 0; m < M; m++)
                for (int t = 0; t < S; t++) {
                    double r = 0;
                    for (int j = 0; j < d; j++) r += (double)Q[m * d + j] * K[t * d + j];
                    e = fmax(e, fabs(out[m * S + t] - 0.5 * r));
                }
            CHECKF(e < 1e-5, "lk_scores d=%d M=%d: error %.3g", d, M, e);
            int32_t pos[53];
            for (int t = 0; t < S; t++) pos[t] = (t * 7) % S;
            lk_weighted_rows(O, d, W, S, M, pos, S, K, d);
            e = 0;
            for (int m = 0; m < M; m++)
                for (int j = 0; j < d; j++) {
                    double r = 0;
                    for (int t = 0; t < S; t++) r += (double)W[m * S + t] * K[pos[t] * d + j];
                    e = fmax(e, fabs(O[m * d + j] - r));
                }
            CHECKF(e < 1e-4, "lk_weighted_rows D=%d M=%d: error %.3g", d, M, e);
        }
    }
    /* lk_max: every length around its 32-value steps, NaNs skipped as the scalar loop skips them */
    float xm[100];
    for (int n = 0; n <= 100; n++) {
        uint64_t sd = 99 + (uint64_t)n;
        test_fill_random(xm, 100, -5, 5, &sd);
        if (n > 40) xm[n / 3] = NAN, xm[n - 1] = NAN;
        float r = -FLT_MAX;
        for (int i = 0; i < n; i++) r = xm[i] > r ? xm[i] : r;
        CHECKF(lk_max(xm, n, -FLT_MAX) == r, "lk_max n=%d: %g vs %g", n, lk_max(xm, n, -FLT_MAX), r);
        CHECKF(lk_max(xm, n, 7.0f) == 7.0f, "lk_max n=%d with a larger start", n);
    }
}

/* The typed-row kernels, SIMD against portable and both against double
 * loops over the decoded rows: every type, row lengths with tails, strided
 * rows, 1 .. 8 query rows (GQA groups: the AVX2 kernels tile them by 4, 2,
 * 1), S = 203 rows (several of the kernels' row blocks, an odd tail). */
enum { TK_S = 203, TK_M = 8 };
static void test_typed_kernels(void) {
    uint64_t seed = 4242;
    static float K[TK_S * 200], Q[TK_M * 200], out0[TK_M * TK_S], out1[TK_M * TK_S], W[TK_M * TK_S],
        O0[TK_M * 200], O1[TK_M * 200], dec[TK_S * 200];
    static uint8_t rows[TK_S * 1000];
    const int dims[] = {3, 16, 24, 32, 40, 64, 100, 128, 200};
    const loki_kv_type ts[] = {LOKI_KV_F32, LOKI_KV_F16, LOKI_KV_BF16, LOKI_KV_Q8_0};
    for (int ti = 0; ti < 4; ti++)
        for (int di = 0; di < 9; di++) {
            const int n = dims[di], S = TK_S;
            /* strides off the SIMD widths (no 16- or 64-byte alignment assumed), but
             * aligned to the element loads of the portable paths (f32 rows 4 bytes,
             * fp16/bf16 values and q8_0 scales 2), as the cache lays rows out */
            const size_t al = ts[ti] == LOKI_KV_F32 ? 4 : 2;
            const size_t stride = (lk_kv_row_bytes(ts[ti], n) + 6 + al - 1) / al * al;
            test_fill_random(K, (size_t)S * n, -1, 1, &seed);
            test_fill_random(Q, (size_t)TK_M * n, -2, 2, &seed);
            test_fill_random(W, (size_t)TK_M * S, 0, 1, &seed);
            for (int s = 0; s < S; s++) {
                lk_row_encode(ts[ti], rows + s * stride, K + s * n, n);
                lk_row_decode(ts[ti], rows + s * stride, dec + s * n, n);
            }
            lk_rows R = {rows, stride, n, ts[ti], false}, Rp = {rows, stride, n, ts[ti], true};
            int32_t pos[TK_S];
            for (int t = 0; t < S; t++) pos[t] = (t * 7) % S;
            for (int M = 1; M <= TK_M; M++) {
                lk_scores_rows(&R, S, Q, n, M, 0.5f, out0, S);
                lk_weighted_rows_t(O0, n, W, S, M, pos, S, &R);
                lk_scores_rows(&Rp, S, Q, n, M, 0.5f, out1, S);
                lk_weighted_rows_t(O1, n, W, S, M, pos, S, &Rp);
                double es = 0, ew = 0, eq = 0;
                for (int m = 0; m < M; m++)
                    for (int t = 0; t < S; t++) {
                        double r = 0, a = 0;
                        for (int j = 0; j < n; j++) r += (double)Q[m * n + j] * dec[t * n + j], a += fabs(Q[m * n + j] * dec[t * n + j]);
                        es = fmax(es, fabs(out0[m * S + t] - 0.5 * r) / (0.5 * a + 1e-30));
                        eq = fmax(eq, fabs(out0[m * S + t] - out1[m * S + t]) / (0.5 * a + 1e-30));
                        es = fmax(es, fabs(out1[m * S + t] - 0.5 * r) / (0.5 * a + 1e-30));
                    }
                for (int m = 0; m < M; m++)
                    for (int j = 0; j < n; j++) {
                        double r = 0;
                        for (int t = 0; t < S; t++) r += (double)W[m * S + t] * dec[pos[t] * n + j];
                        ew = fmax(ew, fmax(fabs(O0[m * n + j] - r), fabs(O1[m * n + j] - r)) / fmax(1.0, fabs(r)));
                    }
                /* contiguous rows (pos NULL: the dense decode's blocks), an odd count */
                lk_weighted_rows_t(O0, n, W, S, M, NULL, S - 2, &R);
                lk_weighted_rows_t(O1, n, W, S, M, NULL, S - 2, &Rp);
                for (int m = 0; m < M; m++)
                    for (int j = 0; j < n; j++) {
                        double r = 0;
                        for (int t = 0; t < S - 2; t++) r += (double)W[m * S + t] * dec[t * n + j];
                        ew = fmax(ew, fmax(fabs(O0[m * n + j] - r), fabs(O1[m * n + j] - r)) / fmax(1.0, fabs(r)));
                    }
                /* bf16 SIMD scores round the query to hi + lo bf16 parts */
                const double tol_s = ts[ti] == LOKI_KV_BF16 ? 2e-5 : 1e-6;
                CHECKF(es < tol_s, "scores %s n=%d M=%d: relative error %.3g", loki_kv_type_name(ts[ti]), n, M, es);
                CHECKF(eq < tol_s, "scores %s n=%d M=%d: SIMD vs portable %.3g", loki_kv_type_name(ts[ti]), n, M, eq);
                CHECKF(ew < 1e-4, "weighted rows %s n=%d M=%d: error %.3g", loki_kv_type_name(ts[ti]), n, M, ew);
            }
            /* dot / axpy of one row, and widening */
            float y0[200] = {0}, y1[200] = {0}, wd[200];
            double ed = 0;
            for (int s = 0; s < S; s++) {
                float d0 = lk_dot_row(&R, s, Q);
                lk_axpy_row(y0, 0.25f, &R, s);
                lk_row_widen(ts[ti], false, lk_row(&R, s), wd, n);
                float d1 = lk_dot_row(&Rp, s, Q);
                lk_axpy_row(y1, 0.25f, &Rp, s);
                ed = fmax(ed, fabs(d0 - d1));
                for (int j = 0; j < n; j++) ed = fmax(ed, fabs(wd[j] - dec[s * n + j]));
            }
            for (int j = 0; j < n; j++) ed = fmax(ed, fabs(y0[j] - y1[j]));
            CHECKF(ed < 1e-4, "dot/axpy/widen %s n=%d: SIMD vs portable %.3g", loki_kv_type_name(ts[ti]), n, ed);
        }
    /* storage error of one row per type (relative to max |x|): f16 2^-11,
     * bf16 2^-8, q8_0 half a step of max|block|/127 (+ the fp16 scale) */
    float x[100], y[100];
    uint8_t buf[512];
    test_fill_random(x, 100, -3, 3, &seed);
    const double rt[] = {0, 4.9e-4 * 3, 3.9e-3 * 3, 3 * (0.5 / 127 + 1e-3)};
    for (int ti = 0; ti < 4; ti++) {
        lk_row_encode(ts[ti], buf, x, 100);
        lk_row_decode(ts[ti], buf, y, 100);
        double e = 0;
        for (int j = 0; j < 100; j++) e = fmax(e, fabs(x[j] - y[j]));
        CHECKF(e <= rt[ti], "row %s: storage error %.3g", loki_kv_type_name(ts[ti]), e);
    }
}

static void test_topk(void) {
    uint64_t seed = 7;
    float x[500], work[1000];
    int32_t idx[500], cand[300];
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + trial * 2 % 499, k = 1 + (trial * 37) % n;
        test_fill_random(x, (size_t)n, -1, 1, &seed);
        if (trial % 3 == 0)
            for (int i = 0; i < n; i++) x[i] = (float)((i * 7) % 5); /* many ties */
        lk_topk(x, NULL, n, k, idx, work);
        {
            int32_t pidx[500];
            lk_topk_portable(x, NULL, n, k, pidx, work);
            CHECKF(memcmp(idx, pidx, sizeof(int32_t) * (size_t)k) == 0, "topk n=%d k=%d: SIMD and portable differ", n, k);
        }
        double key[500];
        int all[500], ref[500];
        for (int i = 0; i < n; i++) key[i] = x[i], all[i] = i;
        g_sort_key = key;
        memcpy(ref, all, sizeof(int) * (size_t)n);
        qsort(ref, (size_t)n, sizeof(int), by_key_desc);
        uint8_t in[500] = {0};
        for (int i = 0; i < k; i++) in[idx[i]]++;
        int bad = 0;
        for (int i = 0; i < k; i++) bad += in[ref[i]] != 1; /* ties: lower index first */
        CHECKF(bad == 0, "topk n=%d k=%d: %d differ", n, k, bad);
    }
    /* candidate lists */
    test_fill_random(x, 500, -1, 1, &seed);
    for (int i = 0; i < 300; i++) cand[i] = i * 499 / 299;
    lk_topk(x, cand, 300, 10, idx, work);
    float thr = 1e9;
    for (int i = 0; i < 10; i++) thr = fminf(thr, x[idx[i]]);
    int above = 0;
    for (int i = 0; i < 300; i++) above += x[cand[i]] > thr;
    CHECK_EQ_INT(above, 9);
    /* NaN scores rank last: k real positions are written, no NaN chosen */
    for (int i = 0; i < 10; i++) x[i] = (float)i;
    x[2] = x[5] = x[9] = NAN;
    for (int i = 0; i < 10; i++) idx[i] = -1;
    lk_topk(x, NULL, 10, 7, idx, work);
    int nan_or_unset = 0;
    for (int i = 0; i < 7; i++) nan_or_unset += idx[i] < 0 || idx[i] > 9 || isnan(x[idx[i]]);
    CHECK_EQ_INT(nan_or_unset, 0);
    /* -0 equals +0: a tie, broken by the lower index */
    {
        const float z[6] = {0.0f, -0.0f, 0.0f, -0.0f, -1.0f, 1.0f};
        int32_t zi[3] = {-1, -1, -1};
        float zw[12];
        lk_topk(z, NULL, 6, 3, zi, zw);
        CHECKF(zi[0] == 0 && zi[1] == 1 && zi[2] == 5, "topk with signed zeros: %d %d %d (want 0 1 5)", zi[0], zi[1],
               zi[2]);
    }
    /* large n: same answer as sorting */
    enum { BIG = 40000 };
    float *bx = malloc(sizeof(float) * BIG), *bw = malloc(sizeof(float) * 2 * BIG);
    int32_t *bi = malloc(sizeof(int32_t) * BIG), *bc = malloc(sizeof(int32_t) * BIG), *bp = malloc(sizeof(int32_t) * BIG);
    double *bk = malloc(sizeof(double) * BIG);
    int *order = malloc(sizeof(int) * BIG);
    uint8_t *in = calloc(BIG, 1);
    for (int trial = 0; trial < 6; trial++) {
        int n = trial % 2 ? BIG : 30011, k = trial < 2 ? 37 : trial < 4 ? n / 8 : n / 4;
        test_fill_random(bx, BIG, -1, 1, &seed);
        if (trial == 5)
            for (int i = 0; i < BIG; i++) bx[i] = (float)(i % 97); /* heavy ties */
        const int32_t *cp = NULL;
        if (trial % 3 == 2) { /* a candidate list spread over all positions */
            for (int i = 0; i < n; i++) bc[i] = (int32_t)((int64_t)i * BIG / n);
            cp = bc;
        }
        lk_topk(bx, cp, n, k, bi, bw);
        for (int i = 0; i < n; i++) order[i] = cp ? cp[i] : i, bk[order[i]] = bx[order[i]];
        g_sort_key = bk;
        qsort(order, (size_t)n, sizeof(int), by_key_desc);
        for (int i = 0; i < k; i++) in[bi[i]]++;
        int bad = 0, unordered = 0;
        for (int i = 0; i < k; i++) bad += in[order[i]] != 1;
        for (int i = 1; i < k; i++) unordered += bi[i] <= bi[i - 1]; /* in candidate order */
        CHECKF(unordered == 0, "topk large n=%d k=%d: %d picks out of candidate order", n, k, unordered);
        /* the vector path (where the build has one) against the portable one: the same picks in order */
        lk_topk_portable(bx, cp, n, k, bp, bw);
        CHECKF(memcmp(bi, bp, sizeof(int32_t) * (size_t)k) == 0, "topk large n=%d k=%d cand=%d: SIMD and portable "
               "picks differ", n, k, cp != NULL);
        for (int i = 0; i < k; i++) in[bi[i]] = 0;
        CHECKF(bad == 0, "topk large n=%d k=%d cand=%d: %d differ", n, k, cp != NULL, bad);
    }
    free(bx), free(bw), free(bi), free(bc), free(bp), free(bk), free(order), free(in);
}

/* The dense decode of one row over a long context (more keys than one of
 * dense_decode's blocks, an odd count), for GQA groups of 1, 2, 3, 4 and 8
 * query heads per KV head, head dims with and without a tail of 8, keys
 * split at d < D (a sliding-window layer of a Loki model keeps the split
 * layout), every cache type, SIMD and portable, against a double-precision
 * softmax over the stored (rounded) rows. */
static void test_dense_decode_long(void) {
    enum { DL_S = 601, DL_HKV = 2, DL_GMAX = 8, DL_DMAX = 128 };
    static float k[DL_S][DL_HKV][DL_DMAX], v[DL_S][DL_HKV][DL_DMAX], kd[DL_S][DL_HKV][DL_DMAX],
        vd[DL_S][DL_HKV][DL_DMAX], q[DL_HKV * DL_GMAX * DL_DMAX], out[DL_HKV * DL_GMAX * DL_DMAX];
    static uint8_t buf[4 * DL_DMAX + 64];
    const int groups[] = {1, 2, 3, 4, 8};
    const int dims[][2] = {{128, 128}, {128, 32}, {40, 13}}; /* D, d */
    const loki_kv_type ts[] = {LOKI_KV_F32, LOKI_KV_F16, LOKI_KV_BF16, LOKI_KV_Q8_0};
    uint64_t seed = 777;
    lk_pool *pool = NULL;
    loki_error err = {0};
    CHECK(lk_pool_init(&pool, 2, &err) == LOKI_OK);
    if (!pool) return;
    for (int di = 0; di < 3; di++)
        for (int gi = 0; gi < 5; gi++)
            for (int ti = 0; ti < 4; ti++)
                for (int portable = 0; portable < 2; portable++) {
                    const int Dh = dims[di][0], dsp = dims[di][1], g = groups[gi], Hq = DL_HKV * g;
                    lk_hparams hp = {.n_layer = 1, .n_head = Hq, .n_head_kv = DL_HKV, .head_dim = Dh};
                    loki_attn_params p = loki_attn_default_params();
                    lk_kv_cache kv;
                    lk_attn *a = NULL;
                    CHECK(lk_kv_init(&kv, 1, DL_HKV, Dh, DL_S, ts[ti], ts[ti], &err) == LOKI_OK);
                    if (!kv.k) continue;
                    kv.portable = portable;
                    CHECKF(lk_attn_init(&a, &hp, &p, DL_S, 1, 2, &kv, &err) == LOKI_OK, "dense long: %s", err.msg);
                    if (!a) {
                        lk_kv_free(&kv);
                        continue;
                    }
                    for (int h = 0; h < DL_HKV; h++) kv.d[h] = dsp;
                    for (int s = 0; s < DL_S; s++) {
                        float kr[DL_HKV * DL_DMAX], vr[DL_HKV * DL_DMAX];
                        test_fill_random(kr, (size_t)DL_HKV * Dh, -1, 1, &seed);
                        test_fill_random(vr, (size_t)DL_HKV * Dh, -1, 1, &seed);
                        lk_kv_store(&kv, 0, s, kr, vr, 1);
                        for (int h = 0; h < DL_HKV; h++) { /* the values the cache holds */
                            memcpy(k[s][h], kr + h * Dh, sizeof(float) * Dh);
                            lk_row_encode(kv.tk, buf, k[s][h], dsp);
                            lk_row_decode(kv.tk, buf, kd[s][h], dsp);
                            if (dsp < Dh) {
                                lk_row_encode(kv.tk, buf, k[s][h] + dsp, Dh - dsp);
                                lk_row_decode(kv.tk, buf, kd[s][h] + dsp, Dh - dsp);
                            }
                            memcpy(v[s][h], vr + h * Dh, sizeof(float) * Dh);
                            lk_row_encode(kv.tv, buf, v[s][h], Dh);
                            lk_row_decode(kv.tv, buf, vd[s][h], Dh);
                        }
                    }
                    test_fill_random(q, (size_t)Hq * Dh, -3, 3, &seed);
                    lk_attn_run(a, pool, &kv, 0, q, out, 1, DL_S - 1);
                    double err_max = 0;
                    for (int h = 0; h < Hq; h++) {
                        const int kh = h / g;
                        static double sc[DL_S];
                        double m = -1e300, l = 0;
                        for (int s = 0; s < DL_S; s++) {
                            double x = 0;
                            for (int t = 0; t < Dh; t++) x += (double)q[h * Dh + t] * kd[s][kh][t];
                            sc[s] = x / sqrt((double)Dh);
                            m = fmax(m, sc[s]);
                        }
                        for (int s = 0; s < DL_S; s++) l += sc[s] = exp(sc[s] - m);
                        for (int t = 0; t < Dh; t++) {
                            double r = 0;
                            for (int s = 0; s < DL_S; s++) r += sc[s] / l * vd[s][kh][t];
                            err_max = fmax(err_max, fabs(out[h * Dh + t] - r));
                            if (isnan(out[h * Dh + t])) err_max = INFINITY;
                        }
                    }
                    CHECKF(err_max < 1e-5, "dense decode S=%d G=%d D=%d d=%d %s %s: max error %.3g", DL_S, g, Dh, dsp,
                           tname(kv.tk), portable ? "portable" : "simd", err_max);
                    lk_attn_free(a);
                    lk_kv_free(&kv);
                }
    lk_pool_free(pool);
}

/* lk_gather_attend against a double-precision softmax over the stored
 * (rounded) rows: every type, key rests of 96 / 13 / 0 values (the split
 * at D = 128, d = 32; an odd tail; d = D), value rows of 128 and 40, 1 .. 5
 * and 8 query rows (score tiles of 4, 2, 1), n = 1 .. 200 selected rows
 * out of 601 (tails of the 4-row tiles and of the 64-row blocks). Builds
 * without the kernel (no AVX-512) must return false, as must portable rows
 * and mixed types. */
static void test_gather_attend(void) {
    enum { GS = 601, GM = 8, GD = 128 };
    static uint8_t kb[GS * GD * 4], vb[GS * GD * 4];
    static float lo[GM * GS], q[GM * GD], out[GM * GD], kd[GD], vd[GD];
    static double sc[GM][GS], ref[GM][GD];
    static int32_t pos[GS];
    uint64_t seed = 777;
    const loki_kv_type ts[] = {LOKI_KV_F32, LOKI_KV_F16, LOKI_KV_BF16, LOKI_KV_Q8_0};
    const int nhs[] = {96, 13, 0}, dvs[] = {128, 40}, Ms[] = {1, 2, 3, 4, 5, 8}, ns[] = {1, 3, 4, 63, 64, 65, 200};
    for (int ti = 0; ti < 4; ti++)
        for (int hi = 0; hi < 3; hi++)
            for (int di = 0; di < 2; di++) {
                const int nh = nhs[hi], DV = dvs[di];
                const size_t ks = nh ? lk_kv_row_bytes(ts[ti], nh) : 0, vs = lk_kv_row_bytes(ts[ti], DV);
                for (int s = 0; s < GS; s++) {
                    float x[GD];
                    test_fill_random(x, GD, -1, 1, &seed);
                    if (nh) lk_row_encode(ts[ti], kb + s * ks, x, nh);
                    test_fill_random(x, GD, -1, 1, &seed);
                    lk_row_encode(ts[ti], vb + s * vs, x, DV);
                }
                const lk_rows K = {kb, ks, nh, ts[ti], false}, V = {vb, vs, DV, ts[ti], false};
                test_fill_random(lo, (size_t)GM * GS, -3, 3, &seed);
                test_fill_random(q, (size_t)GM * GD, -1, 1, &seed);
                for (int mi = 0; mi < 6; mi++)
                    for (int ni = 0; ni < 7; ni++) {
                        const int M = Ms[mi], n = ns[ni];
                        for (int j = 0, s = 0; j < n; j++) { /* ascending, gaps of 1 .. 3 */
                            s += 1 + (int)(test_rand32(&seed) % 3);
                            pos[j] = s;
                        }
                        const float scale = 0.3f;
                        if (!lk_gather_attend(&K, &V, pos, n, lo, GS, q, GD, M, scale, out, GD)) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
                            CHECKF(0, "gather %s: no kernel on an AVX-512 build", loki_kv_type_name(ts[ti]));
#endif
                            continue;
                        }
                        double err = 0;
                        for (int m = 0; m < M; m++) {
                            double mx = -DBL_MAX, l = 0;
                            for (int j = 0; j < n; j++) {
                                double x = lo[(size_t)m * GS + pos[j]];
                                if (nh) {
                                    lk_row_decode(ts[ti], kb + pos[j] * ks, kd, nh);
                                    double dp = 0;
                                    for (int c = 0; c < nh; c++) dp += (double)kd[c] * q[(size_t)m * GD + c];
                                    x += scale * dp;
                                }
                                sc[m][j] = x, mx = fmax(mx, x);
                            }
                            for (int c = 0; c < DV; c++) ref[m][c] = 0;
                            for (int j = 0; j < n; j++) {
                                const double w = exp(sc[m][j] - mx);
                                l += w;
                                lk_row_decode(ts[ti], vb + pos[j] * vs, vd, DV);
                                for (int c = 0; c < DV; c++) ref[m][c] += w * vd[c];
                            }
                            for (int c = 0; c < DV; c++) err = fmax(err, fabs(out[(size_t)m * GD + c] - ref[m][c] / l));
                        }
                        CHECKF(err < 1e-5, "gather %s nh=%d D=%d M=%d n=%d: max error %.3g", loki_kv_type_name(ts[ti]),
                               nh, DV, M, n, err);
                    }
                /* portable rows and mixed types: no kernel, nothing written */
                lk_rows Kp = K, Vm = V;
                Kp.portable = true, Vm.t = ts[ti] == LOKI_KV_F16 ? LOKI_KV_BF16 : LOKI_KV_F16;
                CHECK(!lk_gather_attend(&Kp, &V, pos, 4, lo, GS, q, GD, 1, 0.3f, out, GD));
                CHECK(!nh || !lk_gather_attend(&K, &Vm, pos, 4, lo, GS, q, GD, 1, 0.3f, out, GD));
            }
}

int main(void) {
    test_topk();
    test_kernels();
    test_typed_kernels();
    test_dense_decode_long();
    test_gather_attend();
    return test_finish();
}
