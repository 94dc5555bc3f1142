/*
 * test_attn.c - every attention method of src/attn against a plain double
 * precision reference written here (unsplit keys, full sorts, sequential H2O
 * simulation), in decode steps and prompt blocks, on random keys whose
 * variance decays along a random orthogonal basis (so low-rank selection
 * differs from exact top-k). Also: kf = 1 equals dense, Jaccard of the
 * oracle is 1. (The kernels one by one: test_attn_kernels.c.)
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

typedef struct attn_case {
    const char *name;
    loki_attn_params p;
} attn_case;

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
