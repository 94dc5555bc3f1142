/*
 * test_attn.c - every attention method of src/attn against a plain double
 * precision reference written here (unsplit keys, full sorts, sequential H2O
 * simulation), in decode steps and prompt blocks, on random keys whose
 * variance decays along a random orthogonal basis (so low-rank selection
 * differs from exact top-k). Also: lk_topk against sorting, kf = 1 equals
 * dense, Jaccard of the oracle is 1.
 *
 * Rows whose selection is decided by two scores closer than 1e-6 + 1e-5|x| (float vs
 * double could pick either) are counted as ambiguous and not compared; for
 * stateful H2O the rest of that head's sequence is skipped. At most 2% may be.
 */
#include "test.h"

#include <float.h>

#include "attn/attn.h"
#include "attn/attn_impl.h"
#include "calib/pca.h"
#include "cpu/cpu.h"

enum { L = 2, H = 4, HKV = 2, D = 16, G = H / HKV, NCTX = 160 };

typedef struct fixture {
    float k[NCTX][HKV][D], v[NCTX][HKV][D], q[NCTX][H][D]; /* raw (unrotated) */
    loki_pca *pca;
    lk_cpu *cpu;
} fixture;

/* ------------------------------------------------------- reference */

typedef struct ref_state {
    double acc[H][NCTX];
    uint8_t ev[H][NCTX];
    bool dead[H]; /* an ambiguous H2O choice: stop comparing this unit */
} ref_state;

/* y = C x for the (D, D) rows-are-axes matrix of (layer, kv head), or copy. */
static void ref_rotate(const fixture *f, const loki_attn_params *p, int layer, int kh, const float *x, double *y) {
    bool rot = p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_PCAATTN;
    const float *C = lk_pca_components(f->pca, p->basis, layer, kh);
    for (int j = 0; j < D; j++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += rot ? (double)C[j * D + i] * x[i] : (i == j ? x[i] : 0.0);
        y[j] = s;
    }
}

static int ref_d(const fixture *f, const loki_attn_params *p, int layer, int kh) {
    if (p->method != LOKI_ATTN_LOKI && p->method != LOKI_ATTN_PCAATTN) return D;
    if (p->dvar > 0) return lk_pca_rank(f->pca, p->basis, layer, kh, p->dvar);
    if (p->d > 0) return p->d;
    int d = (int)lrintf(p->df * D);
    return d < 1 ? 1 : d;
}

static const double *g_sort_key; /* test-only: qsort has no context argument */
static int by_key_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    double x = g_sort_key[i], y = g_sort_key[j];
    return x > y ? -1 : x < y ? 1 : (i - j);
}

/* Choose the top `kk` of cand (n) by key into sel; returns whether the choice
 * is ambiguous (the kk-th and kk+1-th keys within 1e-4). */
static double g_amb_rel = 1e-5; /* relative gap below which a selection is ambiguous */

static bool ref_top(const double *key, const int *cand, int n, int kk, int *sel) {
    int tmp[NCTX];
    memcpy(tmp, cand, sizeof(int) * (size_t)n);
    g_sort_key = key;
    qsort(tmp, (size_t)n, sizeof(int), by_key_desc);
    memcpy(sel, tmp, sizeof(int) * (size_t)(kk < n ? kk : n));
    /* exact ties (e.g. tokens H2O never attended) break by index on both sides */
    double gap = kk > 0 && kk < n ? key[tmp[kk - 1]] - key[tmp[kk]] : 1.0;
    return gap != 0.0 && gap < 1e-6 + g_amb_rel * fabs(key[tmp[kk - 1]]);
}

/* Forced (sinks, recent) then top of the rest; mirrors the documented policy. */
static int ref_select(const loki_attn_params *p, const double *key, const uint8_t *ev, int S, int k, int recent,
                      int *sel, bool *amb) {
    uint8_t forced[NCTX] = {0};
    int n = 0, rest[NCTX], nr = 0;
    for (int s = 0; s < S && s < p->sinks && n < k; s++)
        if (!ev[s]) sel[n++] = s, forced[s] = 1;
    for (int s = S - 1; s >= S - recent && s >= 0 && n < k; s--)
        if (!ev[s] && !forced[s]) sel[n++] = s, forced[s] = 1;
    for (int s = 0; s < S; s++)
        if (!ev[s] && !forced[s]) rest[nr++] = s;
    int kk = k - n < nr ? k - n : nr;
    *amb |= ref_top(key, rest, nr, kk, sel + n);
    return n + kk;
}

/* One row of one unit (g heads from h0) seeing S keys; out[i] (D). */
/* The keys and values as the cache holds them (rotated, rounded to the
 * cache type), or NULL: the reference rotates the raw keys in double. */
static float (*g_kst)[HKV][D], (*g_vst)[HKV][D];

static void ref_row(const fixture *f, const loki_attn_params *p, ref_state *rs, int layer, int h0, int g, int S,
                    double out[][D], bool *amb) {
    const int kh = h0 / G, d = ref_d(f, p, layer, kh);
    const double scale = 1.0 / sqrt((double)D);
    static double K[NCTX][D], Q[G][D], approx[G][NCTX], exact[G][NCTX], sum[NCTX];
    for (int s = 0; s < S; s++) {
        if (g_kst)
            for (int j = 0; j < D; j++) K[s][j] = g_kst[s][kh][j];
        else
            ref_rotate(f, p, layer, kh, f->k[s][kh], K[s]);
    }
    const float(*V)[HKV][D] = g_vst ? (const float(*)[HKV][D])g_vst : (const float(*)[HKV][D])f->v;
    for (int i = 0; i < g; i++) {
        ref_rotate(f, p, layer, kh, f->q[S - 1][h0 + i], Q[i]);
        for (int s = 0; s < S; s++) {
            double lo = 0, hi = 0;
            for (int j = 0; j < d; j++) lo += Q[i][j] * K[s][j];
            for (int j = d; j < D; j++) hi += Q[i][j] * K[s][j];
            approx[i][s] = lo * scale;
            exact[i][s] = (lo + hi) * scale;
        }
    }
    uint8_t *ev = rs->ev[h0];
    double *acc = rs->acc[h0];
    int C = 0, cand[NCTX], sel[NCTX], n;
    for (int s = 0; s < S; s++)
        if (!ev[s]) cand[C++] = s;
    if (p->method == LOKI_ATTN_PCAATTN) {
        for (int i = 0; i < g; i++) {
            double m = -1e300, z = 0;
            for (int j = 0; j < C; j++) m = fmax(m, approx[i][cand[j]]);
            for (int j = 0; j < D; j++) out[i][j] = 0;
            for (int j = 0; j < C; j++) z += exp(approx[i][cand[j]] - m);
            for (int j = 0; j < C; j++)
                for (int t = 0; t < D; t++) out[i][t] += exp(approx[i][cand[j]] - m) / z * V[cand[j]][kh][t];
        }
        return;
    }
    long kk = p->k_fixed > 0 ? p->k_fixed : (long)floor((double)p->kf * (1 + 1e-7) * S);
    if (kk < 1) kk = 1;
    if (kk < p->k_min) kk = p->k_min;
    if (kk > S) kk = S;
    int k = (int)kk;
    bool all = p->method == LOKI_ATTN_DENSE || (p->dense_below > 0 && S < p->dense_below) || k >= C;
    if (all) {
        n = C;
        memcpy(sel, cand, sizeof(int) * (size_t)C);
    } else {
        const double *key = approx[0];
        if (p->method == LOKI_ATTN_H2O) key = acc;
        else if (g > 1) {
            double mx[G];
            for (int i = 0; i < g; i++) {
                mx[i] = -1e300;
                for (int s = 0; s < S; s++) mx[i] = fmax(mx[i], approx[i][s]);
            }
            for (int s = 0; s < S; s++) {
                sum[s] = p->gqa_max ? -1e300 : 0;
                for (int i = 0; i < g; i++)
                    sum[s] = p->gqa_max ? fmax(sum[s], approx[i][s] - mx[i]) : sum[s] + approx[i][s];
            }
            key = sum;
        }
        int recent = p->method == LOKI_ATTN_H2O ? (p->recent > k / 2 ? p->recent : k / 2) : p->recent;
        n = ref_select(p, key, ev, S, k, recent, sel, amb);
    }
    for (int i = 0; i < g; i++) {
        double m = -1e300, z = 0, w[NCTX];
        for (int j = 0; j < n; j++) m = fmax(m, exact[i][sel[j]]);
        for (int j = 0; j < n; j++) z += (w[j] = exp(exact[i][sel[j]] - m));
        for (int t = 0; t < D; t++) out[i][t] = 0;
        for (int j = 0; j < n; j++) {
            w[j] /= z;
            for (int t = 0; t < D; t++) out[i][t] += w[j] * V[sel[j]][kh][t];
            if (p->method == LOKI_ATTN_H2O || p->evict_kf > 0) acc[sel[j]] += w[j];
        }
    }
    if (p->method == LOKI_ATTN_H2O && !all) {
        uint8_t keep[NCTX] = {0};
        for (int j = 0; j < n; j++) keep[sel[j]] = 1;
        for (int j = 0; j < C; j++)
            if (!keep[cand[j]]) ev[cand[j]] = 1;
    } else if (p->evict_kf > 0) {
        long B = (long)floor((double)p->evict_kf * (1 + 1e-7) * S);
        if (B < 1) B = 1;
        if (C > B) {
            int keep_sel[NCTX];
            uint8_t keep[NCTX] = {0};
            int nk = ref_select(p, acc, ev, S, (int)B, (int)B / 2, keep_sel, amb);
            for (int j = 0; j < nk; j++) keep[keep_sel[j]] = 1;
            for (int j = 0; j < C; j++)
                if (!keep[cand[j]]) ev[cand[j]] = 1;
        }
    }
}

/* ------------------------------------------------------------ runs */

/* Run the kernel over S positions (decode: one row at a time; else one
 * prompt of S rows) and compare every (row, head) with the reference. */
/* Round rows x (S, HKV, D) through the cache type as the cache stores them
 * (keys split at d of (layer, head)). */
static void round_rows(loki_kv_type t, const lk_kv_cache *kv, int layer, bool keys, float (*x)[HKV][D],
                       float (*y)[HKV][D], int S) {
    uint8_t buf[4 * D + 64];
    for (int s = 0; s < S; s++)
        for (int h = 0; h < HKV; h++) {
            int d = keys ? lk_kv_d(kv, layer, h) : D;
            lk_row_encode(t, buf, x[s][h], d);
            lk_row_decode(t, buf, y[s][h], d);
            if (d < D) {
                lk_row_encode(t, buf, x[s][h] + d, D - d);
                lk_row_decode(t, buf, y[s][h] + d, D - d);
            }
        }
}

static const char *tname(loki_kv_type t) { return loki_kv_type_name(t); }

/* Tolerance of the kernels against the reference on the same stored
 * (rounded) keys and values: float vs double arithmetic, and for bf16 keys
 * the query rounded to two bf16 parts (hi + lo, ~16 bits) by vdpbf16ps. */
static bool g_small_blk; /* prompt blocks of 1-2 rows: the scratch budget of long contexts */
static bool g_portable;  /* check_method_t's caches take the portable kernels */

static double type_tol(loki_kv_type t) { return t == LOKI_KV_BF16 ? 2e-5 : 1e-5; }

static void check_method_t(fixture *f, const char *name, loki_attn_params p, bool decode, int S, loki_kv_type tk,
                           loki_kv_type tv) {
    lk_hparams hp = {.n_layer = L, .n_head = H, .n_head_kv = HKV, .head_dim = D};
    lk_kv_cache kv;
    loki_error err = {0};
    CHECK(lk_kv_init(&kv, L, HKV, D, NCTX, tk, tv, &err) == LOKI_OK);
    if (!kv.k) return;
    kv.portable = g_portable;
    memset(kv.k, 0xff, (size_t)L * HKV * kv.k_head); /* poison: NaN in every float type */
    memset(kv.v, 0xff, (size_t)L * HKV * kv.v_head);
    lk_attn *a = NULL;
    p.pca = f->pca;
    CHECKF(lk_attn_init(&a, &hp, &p, NCTX, NCTX, 2, &kv, &err) == LOKI_OK, "%s: %s", name, err.msg);
    if (!a) {
        lk_kv_free(&kv);
        return;
    }
    if (g_small_blk) a->blk_floats = 2 * NCTX; /* what a 128 x n_ctx block over budget does at any size */
    static float qr[NCTX][H][D], kr[NCTX][HKV][D], out[NCTX][H][D];
    static ref_state rs;
    memset(&rs, 0, sizeof rs);
    memcpy(qr, f->q, sizeof qr);
    memcpy(kr, f->k, sizeof kr);
    const int layer = 1;
    lk_attn_rotate(a, layer, &qr[0][0][0], S, H);
    lk_attn_rotate(a, layer, &kr[0][0][0], S, HKV);
    static float kst[NCTX][HKV][D], vst[NCTX][HKV][D];
    round_rows(kv.tk, &kv, layer, true, kr, kst, S);
    round_rows(kv.tv, &kv, layer, false, f->v, vst, S);
    const bool stored = kv.tk != LOKI_KV_F32 || kv.tv != LOKI_KV_F32;
    g_kst = stored ? kst : NULL, g_vst = stored ? vst : NULL;
    g_amb_rel = kv.tk == LOKI_KV_BF16 ? 2e-5 : 1e-5;
    for (size_t i = 0; i < sizeof out / sizeof(float); i++) (&out[0][0][0])[i] = NAN;
    if (decode) {
        for (int s = 0; s < S; s++) {
            lk_kv_store(&kv, layer, s, &kr[s][0][0], &f->v[s][0][0], 1);
            lk_attn_run(a, lk_cpu_pool(f->cpu), &kv, layer, &qr[s][0][0], &out[s][0][0], 1, s);
        }
    } else {
        lk_kv_store(&kv, layer, 0, &kr[0][0][0], &f->v[0][0][0], S);
        lk_attn_run(a, lk_cpu_pool(f->cpu), &kv, layer, &qr[0][0][0], &out[0][0][0], S, 0);
    }
    int g = p.gqa_shared && p.method != LOKI_ATTN_DENSE ? G : 1, compared = 0, skipped = 0;
    double max_err = 0, max_ref = 0;
    for (int s = 0; s < S; s++)
        for (int h0 = 0; h0 < H; h0 += g) {
            double ref[G][D];
            bool amb = false;
            if (rs.dead[h0]) {
                skipped += g;
                continue;
            }
            ref_row(f, &p, &rs, layer, h0, g, s + 1, ref, &amb);
            if (amb) {
                skipped += g;
                if (p.method == LOKI_ATTN_H2O || p.evict_kf > 0) rs.dead[h0] = true;
                continue;
            }
            for (int i = 0; i < g; i++, compared++)
                for (int t = 0; t < D; t++) {
                    max_err = fmax(max_err, fabs(out[s][h0 + i][t] - ref[i][t]));
                    max_ref = fmax(max_ref, fabs(ref[i][t]));
                    if (isnan(out[s][h0 + i][t])) max_err = INFINITY;
                }
        }
    const double tol = type_tol(kv.tk);
    CHECKF(max_err <= tol * fmax(max_ref, 1.0), "%s (%s, K %s V %s, %s): max error %.3g (max |ref| %.3g)", name,
           decode ? "decode" : "prompt", tname(kv.tk), tname(kv.tv), kv.portable ? "portable" : "simd", max_err,
           max_ref);
    CHECKF(skipped * 50 <= compared + skipped, "%s (K %s): %d of %d rows ambiguous", name, tname(kv.tk), skipped,
           compared + skipped);
    if (getenv("TEST_ATTN_VERBOSE"))
        printf("%-40s %-6s K %-4s V %-4s %-8s max error %.3g\n", name, decode ? "decode" : "prompt", tname(kv.tk),
               tname(kv.tv), kv.portable ? "portable" : "simd", max_err / fmax(max_ref, 1.0));
    g_kst = g_vst = NULL;
    g_amb_rel = 1e-5;
    lk_attn_free(a);
    lk_kv_free(&kv);
}

static void check_method(fixture *f, const char *name, loki_attn_params p, bool decode, int S) {
    check_method_t(f, name, p, decode, S, LOKI_KV_F32, LOKI_KV_F32);
}

/* Output of the kernel for every row (decode steps) into out. */
static lk_kv_cache g_rows_kv; /* run_rows' cache: lives as long as the lk_attn kept */

static void run_rows_t(fixture *f, loki_attn_params p, int S, float out[][H][D], lk_attn **keep, loki_kv_type t) {
    lk_hparams hp = {.n_layer = L, .n_head = H, .n_head_kv = HKV, .head_dim = D};
    lk_kv_free(&g_rows_kv);
    lk_kv_cache *kvp = &g_rows_kv, kv_dummy;
    (void)kv_dummy;
    lk_attn *a = NULL;
    loki_error err = {0};
    CHECK(lk_kv_init(kvp, L, HKV, D, NCTX, t, t, &err) == LOKI_OK);
#define kv (*kvp)
    p.pca = f->pca;
    CHECK(lk_attn_init(&a, &hp, &p, NCTX, NCTX, 2, &kv, &err) == LOKI_OK);
    if (!a) return;
    if (keep) lk_attn_set_jaccard(a, true);
    static float qr[NCTX][H][D], kr[NCTX][HKV][D];
    memcpy(qr, f->q, sizeof qr);
    memcpy(kr, f->k, sizeof kr);
    lk_attn_rotate(a, 0, &qr[0][0][0], S, H);
    lk_attn_rotate(a, 0, &kr[0][0][0], S, HKV);
    for (int s = 0; s < S; s++) {
        lk_kv_store(&kv, 0, s, &kr[s][0][0], &f->v[s][0][0], 1);
        lk_attn_run(a, lk_cpu_pool(f->cpu), &kv, 0, &qr[s][0][0], &out[s][0][0], 1, s);
    }
    if (keep) *keep = a;
    else lk_attn_free(a);
#undef kv
}

static void run_rows(fixture *f, loki_attn_params p, int S, float out[][H][D], lk_attn **keep) {
    run_rows_t(f, p, S, out, keep, LOKI_KV_F32);
}

static double rel_diff(float a[][H][D], float b[][H][D], int S) {
    double e = 0, m = 0;
    for (int s = 0; s < S; s++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < D; t++) {
                e = fmax(e, fabs(a[s][h][t] - b[s][h][t]));
                m = fmax(m, fabs(b[s][h][t]));
            }
    return e / m;
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
    g_portable = false;
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

typedef struct attn_case {
    const char *name;
    loki_attn_params p;
} attn_case;

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

int main(void) {
    static fixture f;
    loki_error err = {0};
    CHECK(lk_cpu_init(&f.cpu, 2, NCTX, 4096, &err) == LOKI_OK);
    CHECK(lk_pca_init(&f.pca, L, HKV, D, &err) == LOKI_OK);
    uint64_t seed = 12345;
    /* random orthogonal axes (Gram-Schmidt) with decaying variances; keys
     * drawn along them, queries and values plain random */
    for (int b = 0; b < 2; b++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < HKV; h++) {
                float *C = (float *)lk_pca_components(f.pca, b, l, h);
                float *e = (float *)lk_pca_eigenvalues(f.pca, b, l, h);
                test_fill_random(C, D * D, -1, 1, &seed);
                for (int j = 0; j < D; j++) {
                    for (int i = 0; i < j; i++) {
                        double dp = 0;
                        for (int t = 0; t < D; t++) dp += C[j * D + t] * C[i * D + t];
                        for (int t = 0; t < D; t++) C[j * D + t] -= (float)dp * C[i * D + t];
                    }
                    double nrm = 0;
                    for (int t = 0; t < D; t++) nrm += C[j * D + t] * C[j * D + t];
                    for (int t = 0; t < D; t++) C[j * D + t] /= (float)sqrt(nrm);
                    e[j] = (float)(4.0 * exp(-0.4 * j * (1 + h + l)));
                }
            }
    test_fill_random(&f.q[0][0][0], sizeof f.q / sizeof(float), -2, 2, &seed);
    test_fill_random(&f.v[0][0][0], sizeof f.v / sizeof(float), -1, 1, &seed);
    for (int s = 0; s < NCTX; s++)
        for (int h = 0; h < HKV; h++) {
            float z[D];
            test_fill_random(z, D, -1.7f, 1.7f, &seed);
            const float *C = lk_pca_components(f.pca, LOKI_BASIS_POST, 1, h);
            const float *e = lk_pca_eigenvalues(f.pca, LOKI_BASIS_POST, 1, h);
            for (int t = 0; t < D; t++) {
                double x = 0;
                for (int j = 0; j < D; j++) x += C[j * D + t] * z[j] * sqrt(e[j]);
                f.k[s][h][t] = (float)x;
            }
        }
    test_topk();
    test_kernels();

    const int S = 150; /* prompt blocks of 128 rows: two of them */
    loki_attn_params base = loki_attn_default_params();
    attn_case cases[24];
    int nc = 0;
    loki_attn_params p = base;
    cases[nc++] = (attn_case){"dense", p};
    p.gqa_shared = true; /* dense ignores sharing */
    cases[nc++] = (attn_case){"dense gqa-shared", p};
    p = base, p.method = LOKI_ATTN_EXACT_TOPK, p.kf = 0.25f;
    cases[nc++] = (attn_case){"exact-topk kf=.25", p};
    p = base, p.method = LOKI_ATTN_LOKI, p.kf = 0.25f, p.df = 0.25f;
    cases[nc++] = (attn_case){"loki kf=.25 df=.25", p};
    p.basis = LOKI_BASIS_PRE;
    cases[nc++] = (attn_case){"loki pre basis", p};
    p = base, p.method = LOKI_ATTN_LOKI, p.kf = 0.5f, p.dvar = 0.8f;
    cases[nc++] = (attn_case){"loki dvar=.8", p};
    p = base, p.method = LOKI_ATTN_PCAATTN, p.df = 0.5f;
    cases[nc++] = (attn_case){"pcaattn df=.5", p};
    p = base, p.method = LOKI_ATTN_H2O, p.kf = 0.25f;
    cases[nc++] = (attn_case){"h2o kf=.25", p};
    p = base, p.method = LOKI_ATTN_LOKI, p.kf = 0.2f, p.d = 3, p.sinks = 2, p.recent = 3, p.k_min = 6,
    p.dense_below = 10;
    cases[nc++] = (attn_case){"loki sinks/recent/k-min/dense-below", p};
    p = base, p.method = LOKI_ATTN_LOKI, p.kf = 0.25f, p.gqa_shared = true;
    cases[nc++] = (attn_case){"loki gqa-shared", p};
    p.gqa_max = true;
    cases[nc++] = (attn_case){"loki gqa-shared max", p};
    p = base, p.method = LOKI_ATTN_LOKI, p.kf = 0.25f, p.evict_kf = 0.5f;
    cases[nc++] = (attn_case){"loki over h2o eviction", p};
    p = base, p.method = LOKI_ATTN_EXACT_TOPK, p.k_fixed = 16;
    cases[nc++] = (attn_case){"exact-topk k_fixed=16", p};
    for (int i = 0; i < nc; i++) {
        check_method(&f, cases[i].name, cases[i].p, true, S);
        check_method(&f, cases[i].name, cases[i].p, false, S);
    }
    /* every case on every cache type (keys and values of one type, and a
     * mixed pair), SIMD kernels and the portable ones, against the
     * reference on the same stored (rounded) numbers */
    const loki_kv_type types[][2] = {{LOKI_KV_F16, LOKI_KV_F16}, {LOKI_KV_BF16, LOKI_KV_BF16},
                                     {LOKI_KV_Q8_0, LOKI_KV_Q8_0}, {LOKI_KV_BF16, LOKI_KV_Q8_0},
                                     {LOKI_KV_F32, LOKI_KV_F32}};
    for (int simd = 1; simd >= 0; simd--) {
        g_portable = !simd;
        for (int ti = 0; ti < 5; ti++) {
            if (simd && ti == 4) continue; /* f32 SIMD: above */
            for (int i = 0; i < nc; i++) {
                check_method_t(&f, cases[i].name, cases[i].p, true, S, types[ti][0], types[ti][1]);
                check_method_t(&f, cases[i].name, cases[i].p, false, S, types[ti][0], types[ti][1]);
            }
        }
    }
    g_portable = false;
    g_small_blk = true;
    for (int i = 0; i < nc; i++) {
        check_method_t(&f, cases[i].name, cases[i].p, false, S, LOKI_KV_F32, LOKI_KV_F32);
        check_method_t(&f, cases[i].name, cases[i].p, false, S, LOKI_KV_F16, LOKI_KV_F16);
    }
    g_small_blk = false;
    test_typed_kernels();
    test_dense_decode_long();

    /* kf = 1 gives dense attention (loki through the rotated split cache) */
    static float dense[NCTX][H][D], other[NCTX][H][D];
    run_rows(&f, base, S, dense, NULL);
    p = base, p.method = LOKI_ATTN_LOKI, p.kf = 1.0f, p.df = 0.25f;
    run_rows(&f, p, S, other, NULL);
    CHECKF(rel_diff(other, dense, S) <= 1e-5, "loki kf=1 vs dense: %.3g", rel_diff(other, dense, S));
    p.method = LOKI_ATTN_EXACT_TOPK;
    run_rows(&f, p, S, other, NULL);
    CHECKF(rel_diff(other, dense, S) <= 1e-5, "exact-topk kf=1 vs dense: %.3g", rel_diff(other, dense, S));
    /* per type: kf = 1 is dense (exact-topk: the same stored keys, to float
     * rounding; loki: its keys are rounded in the rotated basis, so to the
     * type's storage error); the type's dense output is within its storage
     * error of the f32 dense output */
    const loki_kv_type tt[] = {LOKI_KV_F16, LOKI_KV_BF16, LOKI_KV_Q8_0};
    const double store_tol[] = {2e-3, 1.5e-2, 1.5e-2}; /* relative to max |out| */
    for (int ti = 0; ti < 3; ti++) {
        static float dense_t[NCTX][H][D];
        run_rows_t(&f, base, S, dense_t, NULL, tt[ti]);
        double e = rel_diff(dense_t, dense, S);
        CHECKF(e <= store_tol[ti], "dense %s vs f32: %.3g", loki_kv_type_name(tt[ti]), e);
        if (getenv("TEST_ATTN_VERBOSE")) printf("dense %s vs dense f32: %.3g\n", loki_kv_type_name(tt[ti]), e);
        p = base, p.method = LOKI_ATTN_EXACT_TOPK, p.kf = 1.0f;
        run_rows_t(&f, p, S, other, NULL, tt[ti]);
        e = rel_diff(other, dense_t, S);
        CHECKF(e <= 1e-5, "exact-topk kf=1 vs dense, %s: %.3g", loki_kv_type_name(tt[ti]), e);
        p.method = LOKI_ATTN_LOKI, p.df = 0.25f;
        run_rows_t(&f, p, S, other, NULL, tt[ti]);
        e = rel_diff(other, dense_t, S);
        CHECKF(e <= store_tol[ti], "loki kf=1 vs dense, %s: %.3g", loki_kv_type_name(tt[ti]), e);
        if (getenv("TEST_ATTN_VERBOSE")) printf("loki kf=1 vs dense %s: %.3g\n", loki_kv_type_name(tt[ti]), e);
    }
    /* the oracle's Jaccard with itself is 1; loki at df=0.25 is lower */
    lk_attn *a = NULL;
    lk_attn_stats st;
    p = base, p.method = LOKI_ATTN_EXACT_TOPK, p.kf = 0.25f;
    run_rows(&f, p, S, other, &a);
    lk_attn_get_stats(a, 0, &st);
    CHECK(st.jaccard_rows > 0 && fabs(st.jaccard_sum / st.jaccard_rows - 1.0) < 1e-12);
    lk_attn_free(a);
    p.method = LOKI_ATTN_LOKI, p.df = 0.125f;
    run_rows(&f, p, S, other, &a);
    lk_attn_get_stats(a, 0, &st);
    double jl = st.jaccard_sum / (double)st.jaccard_rows;
    CHECKF(jl > 0.1 && jl < 0.999, "loki df=.125 Jaccard %.3f", jl);
    CHECKF(st.bytes_read < 0.8 * st.bytes_dense, "loki bytes %.0f of dense %.0f", st.bytes_read, st.bytes_dense);
    lk_attn_free(a);
    loki_pca_free(f.pca);
    lk_cpu_free(f.cpu);
    return test_finish();
}
