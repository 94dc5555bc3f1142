/* test_pca.c - key calibration and PCA files: recovery of a known covariance
 * from synthetic Gaussian keys, rotation invariance, the save/load round trip,
 * Rank@v, fingerprints (model mismatch refused), export/import of the
 * statistics (the GPU's path), the forward-pass hook, and
 * corrupt PCA files (clear errors naming the file, no crash). */
#include "test.h"

#include "calib/analyze.h"
#include "calib/pca.h"
#include "engine/engine.h"
#include "format/gguf.h"
#include "model/random.h"

#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static double uniform(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return ((*s >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double gaussian(uint64_t *s) {
    double u = uniform(s), v = uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Random orthogonal (D, D) matrix Q (rows orthonormal) by Gram-Schmidt. */
static void random_orthogonal(double *Q, int D, uint64_t *s) {
    for (int i = 0; i < D; i++) {
        double *r = Q + (size_t)i * D;
        for (;;) {
            for (int j = 0; j < D; j++) r[j] = gaussian(s);
            for (int k = 0; k < i; k++) {
                double d = 0;
                for (int j = 0; j < D; j++) d += r[j] * Q[(size_t)k * D + j];
                for (int j = 0; j < D; j++) r[j] -= d * Q[(size_t)k * D + j];
            }
            double n = 0;
            for (int j = 0; j < D; j++) n += r[j] * r[j];
            if (n > 1e-6) {
                for (int j = 0; j < D; j++) r[j] /= sqrt(n);
                break;
            }
        }
    }
}

/* Ground truth of one (basis, layer, head): axes Q (D, D), eigenvalues, mean. */
typedef struct truth {
    double Q[16 * 16], lambda[16], mu[16];
} truth;

enum { TL = 2, TH = 2, TD = 8 }; /* synthetic shape */

static truth *truth_at(truth *t, int b, int l, int h) { return &t[((size_t)b * TL + l) * TH + h]; }

static void make_truth(truth *t, uint64_t *s) {
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < TL; l++)
            for (int h = 0; h < TH; h++) {
                truth *x = truth_at(t, b, l, h);
                random_orthogonal(x->Q, TD, s);
                double scale = 1.0 + 0.5 * (b + 2 * l + 4 * h); /* every head differs */
                for (int j = 0; j < TD; j++) {
                    x->lambda[j] = scale * 8.0 * pow(0.5, j);  /* well separated: ratio 2 */
                    x->mu[j] = 3.0 + 4.0 * (uniform(s) - 0.5); /* far from 0 next to the spread */
                }
            }
}

/* n keys (n, TH, TD) of (b, l): k = μ + Σ_j sqrt(λ_j) z_j Q_j. */
static void sample_keys(const truth *t, int b, int l, float *k, int n, uint64_t *s) {
    for (int i = 0; i < n; i++)
        for (int h = 0; h < TH; h++) {
            const truth *x = &t[((size_t)b * TL + l) * TH + h];
            double z[TD], key[TD];
            for (int j = 0; j < TD; j++) z[j] = gaussian(s) * sqrt(x->lambda[j]);
            for (int d = 0; d < TD; d++) {
                key[d] = x->mu[d];
                for (int j = 0; j < TD; j++) key[d] += z[j] * x->Q[(size_t)j * TD + d];
            }
            for (int d = 0; d < TD; d++) k[((size_t)i * TH + h) * TD + d] = (float)key[d];
        }
}

static void fill_meta(loki_pca *p, const char *tag) {
    lk_sha256_hex(tag, strlen(tag), p->fingerprint);
    lk_sha256_hex("text", 4, p->calib_sha256);
    snprintf(p->model_name, sizeof p->model_name, "model-%s", tag);
    snprintf(p->calib_file, sizeof p->calib_file, "calib.txt");
    p->calib_window = 4096;
}

/* ------------------------------------------------- recovery, invariance */

static loki_pca *test_recovery(void) {
    uint64_t s = 0x1234567ull;
    truth *t = calloc(LK_PCA_N_BASIS * TL * TH, sizeof(truth));
    make_truth(t, &s);
    lk_calib *c = NULL;
    loki_pca *p = NULL;
    CHECK_OK(lk_calib_init(&c, TL, TH, TD, &e_));
    CHECK_OK(lk_pca_init(&p, TL, TH, TD, &e_));
    /* too few keys: finish refuses */
    loki_error err = {0};
    CHECK(lk_calib_finish(c, p, &err) == LOKI_ERR_RANGE && strstr(err.msg, "at least 2"));
    const int sizes[] = {1, 7, 1000, 4093, 300, 20000};
    const int64_t total = 400000;
    float *k = malloc(sizeof(float) * 20000 * TH * TD);
    int64_t done = 0;
    for (int call = 0; done < total; call++) {
        int n = (int)LK_MIN((int64_t)sizes[call % 6], total - done);
        for (int b = 0; b < LK_PCA_N_BASIS; b++)
            for (int l = 0; l < TL; l++) {
                sample_keys(t, b, l, k, n, &s);
                lk_calib_add_keys(c, b, l, k, n);
            }
        done += n;
    }
    CHECK_EQ_INT(lk_calib_count(c), total);
    loki_status st = lk_calib_finish(c, p, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    double worst_ev = 0, worst_dot = 1, worst_mu = 0;
    int bad_sign = 0;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < TL; l++)
            for (int h = 0; h < TH; h++) {
                const truth *x = truth_at(t, b, l, h);
                const float *ev = lk_pca_eigenvalues(p, b, l, h), *C = lk_pca_components(p, b, l, h);
                const float *mu = p->mean[b] + ((size_t)l * TH + h) * TD;
                for (int j = 0; j < TD; j++) {
                    worst_ev = fmax(worst_ev, fabs(ev[j] - x->lambda[j]) / x->lambda[j]);
                    double d = 0;
                    int imax = 0;
                    for (int i = 0; i < TD; i++) {
                        d += C[j * TD + i] * x->Q[j * TD + i];
                        if (fabs(C[j * TD + i]) > fabs(C[j * TD + imax])) imax = i;
                    }
                    worst_dot = fmin(worst_dot, fabs(d));
                    bad_sign += C[j * TD + imax] < 0;
                    worst_mu = fmax(worst_mu, fabs(mu[j] - x->mu[j]));
                    if (j) CHECK(ev[j] <= ev[j - 1]);
                }
            }
    CHECKF(worst_ev < 0.01, "worst relative eigenvalue error %g", worst_ev);
    CHECKF(worst_dot > 0.999, "worst |dot| with the true axis %g", worst_dot);
    CHECKF(worst_mu < 0.03, "worst mean error %g", worst_mu);
    CHECK_EQ_INT(bad_sign, 0);
    printf("recovery over %lld keys: eigenvalues within %.3f%%, axes |dot| >= %.6f, mean within %.4f\n",
           (long long)total, 100 * worst_ev, worst_dot, worst_mu);
    free(k);
    free(t);
    lk_calib_free(c);
    return p;
}

/* q·k == (Cq)·(Ck) for the computed bases (C orthonormal), in float as the engine rotates. */
static void test_rotation_invariance(const loki_pca *p) {
    uint64_t s = 99;
    double worst = 0, worst_orth = 0;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < TL; l++)
            for (int h = 0; h < TH; h++) {
                const float *C = lk_pca_components(p, b, l, h);
                for (int i = 0; i < TD; i++)
                    for (int j = 0; j < TD; j++) {
                        double d = 0;
                        for (int x = 0; x < TD; x++) d += (double)C[i * TD + x] * C[j * TD + x];
                        worst_orth = fmax(worst_orth, fabs(d - (i == j)));
                    }
                for (int trial = 0; trial < 50; trial++) {
                    float q[TD], k[TD], cq[TD], ck[TD];
                    for (int i = 0; i < TD; i++) {
                        k[i] = (float)gaussian(&s);
                        q[i] = k[i] + 0.5f * (float)gaussian(&s);
                    }
                    for (int r = 0; r < TD; r++) {
                        float a = 0, c = 0;
                        for (int i = 0; i < TD; i++) {
                            a += C[r * TD + i] * q[i];
                            c += C[r * TD + i] * k[i];
                        }
                        cq[r] = a;
                        ck[r] = c;
                    }
                    double d0 = 0, d1 = 0;
                    for (int i = 0; i < TD; i++) {
                        d0 += (double)q[i] * k[i];
                        d1 += (double)cq[i] * ck[i];
                    }
                    worst = fmax(worst, fabs(d1 - d0) / fabs(d0));
                }
            }
    CHECKF(worst_orth < 1e-6, "C·Cᵀ deviates from I by %g", worst_orth);
    CHECKF(worst < 1e-5, "worst relative q·k change %g", worst);
}

/* ----------------------------------------------------- save/load, rank */

static void test_round_trip(loki_pca *p, const char *path) {
    fill_meta(p, "a");
    p->calib_tokens = 400000;
    loki_error err = {0};
    loki_status st = lk_pca_save(p, path, NULL, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    loki_pca *q = NULL;
    st = loki_pca_load(path, NULL, &q, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    if (st) return;
    size_t nc = (size_t)TL * TH * TD * TD, nv = (size_t)TL * TH * TD;
    CHECK(q->n_layer == TL && q->n_head_kv == TH && q->head_dim == TD);
    for (int b = 0; b < LK_PCA_N_BASIS; b++) {
        CHECK(memcmp(q->components[b], p->components[b], nc * sizeof(float)) == 0);
        CHECK(memcmp(q->eigenvalues[b], p->eigenvalues[b], nv * sizeof(float)) == 0);
        CHECK(memcmp(q->mean[b], p->mean[b], nv * sizeof(float)) == 0);
    }
    CHECK(!strcmp(q->fingerprint, p->fingerprint) && !strcmp(q->calib_sha256, p->calib_sha256));
    CHECK(!strcmp(q->model_name, "model-a") && !strcmp(q->calib_file, "calib.txt"));
    CHECK(q->calib_tokens == 400000 && q->calib_window == 4096);
    loki_pca_free(q);
    /* nothing is written without metadata, or into a missing directory */
    loki_pca *z = NULL;
    CHECK_OK(lk_pca_init(&z, 1, 1, 4, &e_));
    CHECK(lk_pca_save(z, path, NULL, &err) == LOKI_ERR_ARG && strstr(err.msg, "fingerprint"));
    fill_meta(z, "z");
    CHECK(lk_pca_save(z, "/nonexistent-dir/x.pca.gguf", NULL, &err) != LOKI_OK && strstr(err.msg, "/nonexistent-dir/x.pca.gguf"));
    CHECK(!test_file_exists("/nonexistent-dir/x.pca.gguf"));
    loki_pca_free(z);
}

static void test_rank(void) {
    loki_pca *p = NULL;
    CHECK_OK(lk_pca_init(&p, 2, 2, 4, &e_));
    float *ev = p->eigenvalues[0];
    const float a[4] = {4, 3, 2, 1}, b[4] = {1, 0, 0, 0}, c[4] = {0, 0, 0, 0}, d[4] = {1, 1, 1, 1};
    memcpy(ev, a, sizeof a);
    memcpy(ev + 4, b, sizeof b);
    memcpy(ev + 8, c, sizeof c);
    memcpy(ev + 12, d, sizeof d);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 0.4), 1);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 0.41), 2);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 0.7), 2);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 0.71), 3);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 0.9), 3);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 0.91), 4);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 0, 1.0), 4);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 0, 1, 1.0), 1);   /* all variance in one axis */
    CHECK_EQ_INT(lk_pca_rank(p, 0, 1, 0, 0.5), 4);   /* no variance: D */
    CHECK_EQ_INT(lk_pca_rank(p, 0, 1, 1, 0.5), 2);
    CHECK_EQ_INT(lk_pca_rank(p, 0, 1, 1, 0.75), 3);
    /* Rank@90 statistics: layer means and their population std across layers */
    lk_rank_stats s;
    loki_error err = {0};
    CHECK(lk_rank_stats_compute(p, 0.0, &s, &err) == LOKI_ERR_ARG && strstr(err.msg, "--variance"));
    CHECK(lk_rank_stats_compute(p, 100.5, &s, &err) == LOKI_ERR_ARG);
    CHECK_OK(lk_rank_stats_compute(p, 90.0, &s, &e_));
    /* pre: layer 0 ranks {3, 1} -> 2, layer 1 ranks {4, 4} -> 4: mean 3, std 1 */
    CHECK_EQ_INT(lk_rank_at(&s, 0, 0, 0), 3);
    CHECK_NEAR(s.layer_mean[0], 2.0, 1e-12);
    CHECK_NEAR(s.layer_mean[1], 4.0, 1e-12);
    CHECK_NEAR(s.mean[0], 3.0, 1e-12);
    CHECK_NEAR(s.std[0], 1.0, 1e-12);
    CHECK_NEAR(s.mean[1], 4.0, 1e-12); /* post: all zero eigenvalues -> D */
    char *json = NULL, *svg = NULL;
    size_t svg_len = 0;
    CHECK_OK(lk_rank_stats_json(&s, false, &json, &e_));
    CHECK(json && strstr(json, "\"variance\":90") && strstr(json, "\"rank\":[[3,1],[4,4]]") &&
          strstr(json, "\"std\":1"));
    CHECK_OK(lk_rank_stats_svg(&s, "a <model> & \"text\"", &svg, &svg_len, &e_));
    CHECK(svg && !strncmp(svg, "<?xml", 5) && strstr(svg, "<svg") && strstr(svg, "</svg>\n") &&
          strstr(svg, "a &lt;model&gt; &amp; &quot;text&quot;") && !strstr(svg, "<model>"));
    CHECK(svg && strlen(svg) == svg_len);
    free(json);
    free(svg);
    lk_rank_stats_free(&s);
    loki_pca_free(p);
}

static void test_sha256(void) {
    char hex[LK_FINGERPRINT_HEX];
    lk_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    lk_sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

/* ------------------------------------------ models: hook, fingerprints */

static loki_model *random_model(uint64_t seed) {
    lk_hparams hp;
    memset(&hp, 0, sizeof hp);
    strcpy(hp.arch, "llama");
    hp.n_vocab = 64;
    hp.n_ctx_train = 128;
    hp.n_embd = 64;
    hp.n_layer = 2;
    hp.n_head = 2;
    hp.n_head_kv = 1;
    hp.head_dim = 32;
    hp.n_ff = 64;
    hp.rms_eps = 1e-5f;
    hp.rope_theta = 10000.0f;
    hp.rope_dim = 32;
    hp.rope_style = LK_ROPE_NEOX;
    loki_model *m = calloc(1, sizeof(*m));
    CHECK_OK(lk_model_init_random(m, &hp, LK_DTYPE_F32, seed, &e_));
    return m;
}

/* ------------------------------------------------- export / import */

/* lk_calib_export / lk_calib_import (the GPU's totals come in through
 * import, cuda/lk_cuda_calib.h): keys split in two parts accumulated by two
 * collectors, exported, imported into a third (a copy into the empty
 * collector, then a merge about the first part's shift), against one
 * collector that saw all keys. Keys 1000 + offset ± spread (spreads 0.01
 * .. 10): the merge's re-centring must not lose the small spreads. Bound:
 * 1e-11·sqrt(S_ii·S_jj) per sum of products, 1e-11·sqrt(N·S_jj) per sum:
 * both sides' sums are within N·2^-53 ≈ 6e-14 of that scale (Cauchy-Schwarz
 * bounds Σ|x_i·x_j|), and the merge adds a few roundings of terms of at most
 * ~n_b·|d_i·d_j| with d a difference of two keys (a few times the scale).
 * With these keys (floats near 1000, multiples of 2^-14) every product is a
 * multiple of 2^-28 and every partial sum stays below 2^25, so all sums are
 * exact in float64 and the merge agrees exactly (printed: 0 of the bound);
 * the bound covers data where that does not hold. */
static void test_import(void) {
    enum { L = 2, H = 3, D = 16, NA = 300, NB = 200, N = NA + NB };
    uint64_t s = 77;
    float *k = malloc(sizeof(float) * N * H * D); /* (N, H, D) */
    double off[H * D], spread[H * D];
    for (int i = 0; i < H * D; i++) off[i] = 1000.0 + 40.0 * uniform(&s), spread[i] = 0.01 * pow(1000.0, uniform(&s));
    for (int r = 0; r < N; r++) {
        double f = gaussian(&s); /* shared by the row: correlated components */
        for (int i = 0; i < H * D; i++)
            k[(size_t)r * H * D + i] = (float)(off[i] + spread[i] * (gaussian(&s) + 0.5 * f));
    }
    lk_calib *all = NULL, *ca = NULL, *cb = NULL, *m = NULL, *bad = NULL;
    CHECK_OK(lk_calib_init(&all, L, H, D, &e_));
    CHECK_OK(lk_calib_init(&ca, L, H, D, &e_));
    CHECK_OK(lk_calib_init(&cb, L, H, D, &e_));
    CHECK_OK(lk_calib_init(&m, L, H, D, &e_));
    CHECK_OK(lk_calib_init(&bad, L, H, D, &e_));
    double *buf = malloc(sizeof(double) * 4 * H * D * (2 + D)); /* 4 x (shift, sum, sumsq) */
    double *sh[4], *sm[4], *sq[4];
    int64_t n[4];
    for (int i = 0; i < 4; i++)
        sh[i] = buf + (size_t)i * H * D * (2 + D), sm[i] = sh[i] + H * D, sq[i] = sm[i] + H * D;
    if (!k || !buf || !all || !ca || !cb || !m || !bad) return;
    lk_calib_add_keys(all, 1, 1, k, 123);
    lk_calib_add_keys(all, 1, 1, k + (size_t)123 * H * D, N - 123);
    lk_calib_add_keys(ca, 1, 1, k, NA);
    lk_calib_add_keys(cb, 1, 1, k + (size_t)NA * H * D, NB);
    /* 0: part a, 1: part b, 2: merged, 3: all */
    CHECK_OK(lk_calib_export(ca, 1, 1, &n[0], sh[0], sm[0], sq[0], &e_));
    CHECK_OK(lk_calib_export(cb, 1, 1, &n[1], sh[1], sm[1], sq[1], &e_));
    CHECK_OK(lk_calib_import(m, 1, 1, n[0], sh[0], sm[0], sq[0], false, &e_));
    CHECK_OK(lk_calib_export(m, 1, 1, &n[2], sh[2], sm[2], sq[2], &e_));
    size_t bytes = sizeof(double) * H * D * (2 + D);
    CHECK(n[2] == NA && memcmp(sh[2], sh[0], bytes) == 0); /* into an empty slot: a copy, bit for bit */
    CHECK_OK(lk_calib_import(m, 1, 1, n[1], sh[1], sm[1], sq[1], false, &e_));
    CHECK_OK(lk_calib_import(m, 0, 1, 0, sh[1], sm[1], sq[1], false, &e_)); /* count 0: nothing */
    CHECK_OK(lk_calib_export(m, 1, 1, &n[2], sh[2], sm[2], sq[2], &e_));
    CHECK_OK(lk_calib_export(all, 1, 1, &n[3], sh[3], sm[3], sq[3], &e_));
    CHECK_EQ_INT(n[2], N);
    CHECK_EQ_INT(n[3], N);
    CHECK(memcmp(sh[2], sh[3], sizeof(double) * H * D) == 0);
    int fails = 0, lower = 0;
    double worst = 0;
    for (int h = 0; h < H; h++) {
        const double *S = sq[3] + (size_t)h * D * D, *G = sq[2] + (size_t)h * D * D;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                if (j < i) {
                    lower += G[i * D + j] != 0.0 || S[i * D + j] != 0.0;
                    continue;
                }
                double tol = 1e-11 * sqrt(S[i * D + i] * S[j * D + j]), d = fabs(G[i * D + j] - S[i * D + j]);
                fails += !(d <= tol);
                worst = fmax(worst, d / tol);
            }
        for (int j = 0; j < D; j++) {
            double tol = 1e-11 * sqrt(N * S[j * D + j]), d = fabs(sm[2][h * D + j] - sm[3][h * D + j]);
            fails += !(d <= tol);
            worst = fmax(worst, d / tol);
        }
    }
    CHECKF(fails == 0 && lower == 0, "merged statistics: %d outside the bound, %d lower entries", fails, lower);
    printf("import: merged totals within %.3g of their bound\n", worst);
    int64_t c0 = -1;
    CHECK_OK(lk_calib_export(m, 0, 1, &c0, sh[0], sm[0], sq[0], &e_));
    CHECK_EQ_INT(c0, 0);
    /* a non-finite import marks the collector: finish refuses it */
    CHECK_OK(lk_calib_import(bad, 0, 0, n[3], sh[3], sm[3], sq[3], true, &e_));
    loki_pca *p = NULL;
    CHECK_OK(lk_pca_init(&p, L, H, D, &e_));
    loki_error err = {0};
    loki_status st = p ? lk_calib_finish(bad, p, &err) : LOKI_ERR_NOMEM;
    CHECKF(st == LOKI_ERR_RANGE && strstr(err.msg, "non-finite"), "status %d '%s'", st, err.msg);
    CHECK(lk_calib_import(m, 2, 0, 1, sh[0], sm[0], sq[0], false, &err) == LOKI_ERR_ARG);
    CHECK(lk_calib_import(m, 0, L, 1, sh[0], sm[0], sq[0], false, &err) == LOKI_ERR_ARG);
    CHECK(lk_calib_import(m, 0, 0, -1, sh[0], sm[0], sq[0], false, &err) == LOKI_ERR_ARG);
    CHECK(lk_calib_export(m, -1, 0, &c0, sh[0], sm[0], sq[0], &err) == LOKI_ERR_ARG);
    loki_pca_free(p);
    lk_calib_free(all), lk_calib_free(ca), lk_calib_free(cb), lk_calib_free(m), lk_calib_free(bad);
    free(buf);
    free(k);
}

/* Keys of the forward pass reach the statistics: calibrate a random model on
 * 2 windows, check counts, and that the PCA loads against that model only. */
static void test_forward_hook(const char *path) {
    loki_model *m = random_model(1), *m_same = random_model(1), *m_other = random_model(2);
    char f1[LK_FINGERPRINT_HEX], f2[LK_FINGERPRINT_HEX], f3[LK_FINGERPRINT_HEX];
    CHECK_OK(lk_model_fingerprint(m, f1, &e_));
    CHECK_OK(lk_model_fingerprint(m_same, f2, &e_));
    CHECK_OK(lk_model_fingerprint(m_other, f3, &e_));
    CHECK(strlen(f1) == 64 && !strcmp(f1, f2) && strcmp(f1, f3));
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = 40;
    cp.n_batch = 16; /* several forward calls per window */
    cp.n_threads = 1;
    loki_context *ctx = NULL;
    lk_calib *c = NULL;
    loki_pca *p = NULL;
    loki_error err = {0};
    CHECK_OK(loki_context_init(m, &cp, &ctx, &e_));
    CHECK_OK(lk_calib_init(&c, 2, 1, 32, &e_));
    CHECK_OK(lk_pca_init(&p, 2, 1, 32, &e_));
    if (!ctx || !c || !p) return;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 7 + 3) % 64;
    ctx->calib = c;
    for (int w = 0; w < 2; w++) {
        loki_context_reset(ctx);
        CHECK_OK(loki_eval(ctx, ids, 40 - 3 * w, false, &e_));
    }
    ctx->calib = NULL;
    CHECK_OK(loki_eval(ctx, ids, 1, false, &e_)); /* not accumulated */
    CHECK_EQ_INT(lk_calib_count(c), 77);
    loki_status st = lk_calib_finish(c, p, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    /* keys after RoPE differ from before: the bases differ */
    CHECK(memcmp(p->components[0], p->components[1], sizeof(float) * 32 * 32) != 0);
    fill_meta(p, "x");
    memcpy(p->fingerprint, f1, sizeof f1);
    CHECK_OK(lk_pca_save(p, path, NULL, &e_));
    loki_pca *q = NULL;
    st = loki_pca_load(path, m_same, &q, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    loki_pca_free(q);
    q = NULL;
    st = loki_pca_load(path, m_other, &q, &err);
    CHECKF(st == LOKI_ERR_ARG && strstr(err.msg, path) && strstr(err.msg, "another model") &&
           strstr(err.msg, "--pca-any-model") && !q, "status %d '%s'", st, err.msg);
    loki_context_free(ctx);
    lk_calib_free(c);
    loki_pca_free(p);
    loki_model_close(m);
    loki_model_close(m_same);
    loki_model_close(m_other);
}

/* A PCA of fixture-15m's shape is refused by stories260K (shape) and by the
 * fixture's Q8_0 GGUF (same shape, other weights); the HF fixture, opened
 * twice, has one fingerprint. Skipped when ../shared is absent. */
static void test_real_models(const char *path) {
    char *hf = test_shared_path("models/fixture-15m"), *q8 = test_shared_path("models/fixture-15m-gguf/fixture-15m-q8_0.gguf");
    char *st260 = test_shared_path("models/stories260K/stories260K.bin");
    if (!test_file_exists(hf) || !test_file_exists(q8) || !test_file_exists(st260)) {
        printf("note: shared models absent, real-model fingerprint checks skipped\n");
        free(hf); free(q8); free(st260);
        return;
    }
    loki_model *a = NULL, *a2 = NULL, *b = NULL, *s = NULL;
    loki_pca *p = NULL, *q = NULL;
    loki_error err = {0};
    CHECK_OK(loki_model_open(hf, NULL, &a, &e_));
    CHECK_OK(loki_model_open(hf, NULL, &a2, &e_));
    CHECK_OK(loki_model_open(q8, NULL, &b, &e_));
    CHECK_OK(loki_model_open(st260, NULL, &s, &e_));
    if (!a || !a2 || !b || !s) goto done;
    CHECK_OK(lk_pca_init(&p, a->hp.n_layer, a->hp.n_head_kv, a->hp.head_dim, &e_));
    fill_meta(p, "fixture");
    for (int bi = 0; bi < LK_PCA_N_BASIS; bi++)  /* identity axes pass the loader's checks */
        for (int h = 0; h < p->n_layer * p->n_head_kv; h++)
            for (int j = 0; j < p->head_dim; j++)
                p->components[bi][((size_t)h * p->head_dim + j) * p->head_dim + j] = 1.0f;
    char fa[LK_FINGERPRINT_HEX], fb[LK_FINGERPRINT_HEX];
    CHECK_OK(lk_model_fingerprint(a, p->fingerprint, &e_));
    CHECK_OK(lk_model_fingerprint(a2, fa, &e_));
    CHECK_OK(lk_model_fingerprint(b, fb, &e_));
    CHECK(!strcmp(fa, p->fingerprint) && strcmp(fa, fb));
    snprintf(p->model_name, sizeof p->model_name, "fixture-15m");
    CHECK_OK(lk_pca_save(p, path, NULL, &e_));
    loki_status st = loki_pca_load(path, a2, &q, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    loki_pca_free(q);
    q = NULL;
    st = loki_pca_load(path, b, &q, &err);
    CHECKF(st == LOKI_ERR_ARG && strstr(err.msg, path) && strstr(err.msg, "another model (fixture-15m"),
           "status %d '%s'", st, err.msg);
    st = loki_pca_load(path, s, &q, &err);
    CHECKF(st == LOKI_ERR_ARG && strstr(err.msg, path) && strstr(err.msg, "layers"), "status %d '%s'", st, err.msg);
    st = loki_pca_load(path, NULL, &q, &err); /* --pca-any-model */
    CHECKF(st == LOKI_OK, "%s", err.msg);
done:
    loki_pca_free(p);
    loki_pca_free(q);
    loki_model_close(a);
    loki_model_close(a2);
    loki_model_close(b);
    loki_model_close(s);
    free(hf); free(q8); free(st260);
}

/* ----------------------------------------------------- corrupt files */

enum corrupt {
    C_NONE, C_MISSING_TENSOR, C_WRONG_SHAPE, C_F16, C_NAN, C_NO_KEY, C_LAYOUT, C_VERSION, C_ZERO_LAYERS,
    C_BAD_FINGERPRINT, C_ASCENDING, C_NOT_UNIT, C_WRONG_TYPE, C_HUGE,
};

/* A PCA file like lk_pca_save writes, with one defect. */
static void write_variant(const loki_pca *p, const char *path, enum corrupt what) {
    const int64_t L = p->n_layer, H = p->n_head_kv, D = p->head_dim;
    size_t nc = (size_t)(L * H * D * D), nv = (size_t)(L * H * D);
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, &e_));
    if (what != C_NO_KEY && what != C_VERSION) lk_gguf_writer_add_u32(w, "loki.pca.version", 1);
    if (what == C_VERSION) lk_gguf_writer_add_u32(w, "loki.pca.version", 2);
    lk_gguf_writer_add_u32(w, "loki.pca.n_layer", what == C_ZERO_LAYERS ? 0 : what == C_HUGE ? 60000 : (uint32_t)L);
    if (what == C_WRONG_TYPE) lk_gguf_writer_add_str(w, "loki.pca.n_head_kv", "two");
    else lk_gguf_writer_add_u32(w, "loki.pca.n_head_kv", what == C_HUGE ? 60000 : (uint32_t)H);
    lk_gguf_writer_add_u32(w, "loki.pca.head_dim", what == C_HUGE ? 60000 : (uint32_t)D);
    lk_gguf_writer_add_str(w, "loki.pca.components_layout", what == C_LAYOUT ? "columns" : "rows");
    lk_gguf_writer_add_str(w, "loki.pca.model.fingerprint", what == C_BAD_FINGERPRINT ? "abc" : p->fingerprint);
    lk_gguf_writer_add_str(w, "loki.pca.model.name", p->model_name);
    lk_gguf_writer_add_str(w, "loki.pca.calib.file", p->calib_file);
    lk_gguf_writer_add_str(w, "loki.pca.calib.sha256", p->calib_sha256);
    lk_gguf_writer_add_u64(w, "loki.pca.calib.tokens", 10);
    lk_gguf_writer_add_u32(w, "loki.pca.calib.window", 16);
    float *buf = malloc(sizeof(float) * nc);
    const char *bn[2] = {"pre", "post"};
    for (int b = 0; b < 2; b++) {
        char name[64];
        int64_t ne_c[4] = {D, D, H, L}, ne_v[3] = {D, H, L}, ne_bad[2] = {D * H, L};
        snprintf(name, sizeof name, "pca.%s.components", bn[b]);
        memcpy(buf, p->components[b], nc * sizeof(float));
        if (what == C_NOT_UNIT && b == 1) buf[3] = 2.0f;
        if (what == C_F16 && b == 1) {
            uint16_t *h = malloc(2 * nc);
            lk_row_from_f32(LK_DTYPE_F16, buf, h, (int64_t)nc);
            lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F16, 4, ne_c, h);
            free(h);
        } else {
            lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 4, ne_c, buf);
        }
        snprintf(name, sizeof name, "pca.%s.eigenvalues", bn[b]);
        memcpy(buf, p->eigenvalues[b], nv * sizeof(float));
        if (what == C_ASCENDING && b == 0) { buf[0] = 0.0f; buf[1] = 1.0f; }
        if (what == C_WRONG_SHAPE && b == 0) lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 2, ne_bad, buf);
        else lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 3, ne_v, buf);
        snprintf(name, sizeof name, "pca.%s.mean", bn[b]);
        memcpy(buf, p->mean[b], nv * sizeof(float));
        if (what == C_NAN && b == 1) buf[nv - 1] = NAN;
        if (!(what == C_MISSING_TENSOR && b == 1)) lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 3, ne_v, buf);
    }
    CHECK_OK(lk_gguf_writer_write(w, path, &e_));
    lk_gguf_writer_free(w);
    free(buf);
}

static void expect_load_error(const char *path, const char *needle, const char *what) {
    loki_pca *q = NULL;
    loki_error err = {0};
    loki_status st = loki_pca_load(path, NULL, &q, &err);
    CHECKF(st != LOKI_OK && !q && strstr(err.msg, path) && strstr(err.msg, needle),
           "%s: status %d msg '%s' (want '%s')", what, st, err.msg, needle);
    loki_pca_free(q);
}

static void test_corrupt(const loki_pca *p, const char *good, const char *tmp) {
    write_variant(p, tmp, C_NONE);
    loki_pca *q = NULL;
    CHECK_OK(loki_pca_load(tmp, NULL, &q, &e_)); /* the variant writer itself is right */
    loki_pca_free(q);
    test_write_all(tmp, "hello, not a GGUF file at all\n", 30);
    expect_load_error(tmp, "GGUF", "text file");
    test_write_all(tmp, "", 0);
    expect_load_error(tmp, "", "empty file");
    expect_load_error("/nonexistent/pca.gguf", "cannot open", "missing file");
    size_t n = 0;
    uint8_t *bytes = test_read_all(good, &n);
    size_t cuts[] = {3, 40, 300, n / 2, n - 8};
    for (size_t i = 0; i < LK_ARRAY_LEN(cuts); i++) {
        test_write_all(tmp, bytes, cuts[i]);
        char what[32];
        snprintf(what, sizeof what, "cut at %zu", cuts[i]);
        expect_load_error(tmp, "", what);
    }
    free(bytes);
    /* a GGUF that is not a PCA file */
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, &e_));
    lk_gguf_writer_add_str(w, "general.architecture", "llama");
    CHECK_OK(lk_gguf_writer_write(w, tmp, &e_));
    lk_gguf_writer_free(w);
    expect_load_error(tmp, "not a loki PCA file", "model GGUF");
    const struct { enum corrupt c; const char *needle; } cases[] = {
        {C_MISSING_TENSOR, "missing tensor 'pca.post.mean'"},
        {C_WRONG_SHAPE, "'pca.pre.eigenvalues' has shape"},
        {C_F16, "must be F32"},
        {C_NAN, "non-finite"},
        {C_NO_KEY, "not a loki PCA file"},
        {C_LAYOUT, "columns"},
        {C_VERSION, "version 2"},
        {C_ZERO_LAYERS, "loki.pca.n_layer"},
        {C_BAD_FINGERPRINT, "loki.pca.model.fingerprint"},
        {C_ASCENDING, "descending"},
        {C_NOT_UNIT, "length"},
        {C_WRONG_TYPE, "must be an integer"},
        {C_HUGE, "shape"},
    };
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        write_variant(p, tmp, cases[i].c);
        char what[32];
        snprintf(what, sizeof what, "case %d", (int)cases[i].c);
        expect_load_error(tmp, cases[i].needle, what);
    }
    remove(tmp);
}

int main(void) {
    char good[64], tmp[64];
    snprintf(good, sizeof good, "/tmp/test_pca_%d.gguf", (int)getpid());
    snprintf(tmp, sizeof tmp, "/tmp/test_pca_%d_bad.gguf", (int)getpid());
    test_sha256();
    test_rank();
    loki_pca *p = test_recovery();
    test_rotation_invariance(p);
    test_round_trip(p, good);
    test_corrupt(p, good, tmp);
    test_import();
    test_forward_hook(tmp);
    test_real_models(tmp);
    loki_pca_free(p);
    remove(good);
    remove(tmp);
    return test_finish();
}
