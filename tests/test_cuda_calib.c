/*
 * test_cuda_calib.c - key statistics of a calibration accumulated on the GPU
 * (cuda/lk_cuda_calib.h, src/cuda/calib.cu) against the CPU's
 * (lk_calib_add_keys, calib/pca.h), and `calibrate --device cuda`'s path end
 * to end (backend op calib_flush, lk_calib_import).
 *
 * (a) Totals. Random keys (n, Hkv, D) with a large common offset (1000 ±
 *     50 per component), per-component scales from 1e-3 to 30 and a factor
 *     shared by the components of a row (so the off-diagonal sums are not
 *     ~0); several adds of different n into (basis 1, layer 2), the first
 *     add's keys also into (basis 0, layer 0) (crosstalk), (basis 0, layer
 *     1) left empty; D = 8..256 (multiples of 8 that are and are not
 *     multiples of the kernel's 32-wide tiles), Hkv 1..64, n 1..2048 per add.
 *     Read back into host buffers poisoned with NaN before every read and
 *     compared with lk_calib_export of the CPU's statistics over the same
 *     floats (u = 2^-53, N = keys of the slot, γ_N = N·u / (1 - N·u)):
 *       count and shift: equal (the shift is the first key, widened);
 *       Σ(k-s)(k-s)ᵀ_ij: |gpu - cpu| <= 2γ_N·sqrt(S_ii·S_jj). Both are
 *         float64 sums of the same N products x_i·x_j (x = (double)k - s is
 *         the same expression on both, and exact here: k and s are floats of
 *         about the same size), in different orders (GPU: per thread over
 *         each add's rows, one total per add; CPU: dsyrk blocks of 256 rows);
 *         each is within γ_N·Σ|x_i·x_j| of the exact sum in any order, and
 *         Σ|x_i·x_j| <= sqrt(S_ii·S_jj) (Cauchy-Schwarz);
 *       Σ(k-s)_j: |gpu - cpu| <= 2γ_N·sqrt(N·S_jj), likewise;
 *       the strict lower triangle: 0 on both.
 *     Import of the GPU's totals into an empty collector is a bit-exact copy.
 *     Merge cases read the slot in two parts (lk_cuda_calib_reset between)
 *     and import both into one collector (the second import re-centres on
 *     the first shift: pca.h's formula): the bound is 2γ_N·(sqrt(S_ii S_jj)
 *     + the same for each part about its own shift) + 4u·(|S_a| + |S_b| +
 *     |T_b,i·d_j| + |d_i·T_b,j| + n_b·|d_i·d_j|) for the merge's own
 *     roundings (d = s_b - s_a; the sums' bound: the same with T).
 * (b) End to end, when ../shared/models/fixture-15m exists: 3 windows of 128
 *     tokens (WikiText-2, or fixed ids without it), 48 tokens per eval, through
 *     a CUDA context and a CPU context (bf16 cache, the GPU's), each with its
 *     method set again after window 1 (loki_context_set_attn flushes: on the
 *     GPU the last window goes through a new backend and is merged into the
 *     collector), then lk_context_calib_flush as `loki calibrate` does. The
 *     keys themselves differ by the GPU forward's own errors (its prompt path
 *     rounds GEMM inputs to bf16: ~2^-9 relative per product, through 8
 *     layers; test_cuda_forward measures 0.3-0.4% of the logits' range), so:
 *       ε = ||C_gpu - C_cpu||_F / λ_0(C_cpu) <= 1e-2 per (basis, layer, head),
 *         C the covariance from each collector's totals (lk_calib_export).
 *         An estimate, not yet measured on a GPU: a CPU proxy of the main
 *         error source (this test's e2e run on two CPU contexts, one with
 *         every matmul input of n > 8 rows rounded to bf16 as the GPU's
 *         prompt GEMMs do) gives ε = 1.6e-3 at worst and 4.4e-4 on the
 *         explained variances; the GPU's flash attention also rounds q and
 *         the probabilities to bf16, so a few times that is expected;
 *       eigenvalues (lk_calib_finish): |λ_i,gpu - λ_i,cpu| <= ε·λ_0 + 2^-22·λ_0
 *         (Weyl's inequality with the measured ε; float storage);
 *       eigenvectors i < 8, up to sign: sin θ_i <= min(1, 2ε·λ_0 / gap_i) +
 *         1e-5 (Davis-Kahan as Yu, Wang and Samworth state it; gap_i = the
 *         distance of λ_i to its neighbours; 1e-5: float storage);
 *       explained variance λ_i / Σλ of the top 4 components: relative 1e-2
 *         (follows from Weyl for components with λ_i >= λ_0 / 4 when ε is
 *         below ~2e-3; with a larger ε the printed ε says why it fails);
 *       equal counts; both PCA files the same size and loadable.
 * (c) A NaN key (and an Inf first key) sets the flag of its (basis, layer)
 *     only; imported, lk_calib_finish fails (LOKI_ERR_RANGE) as the CPU's
 *     does on the same keys; after a reset the flags are clear.
 * (d) Bad arguments are refused (LOKI_ERR_ARG) before anything runs.
 * Exit 77 (skipped) without the CUDA backend or a usable GPU.
 * LOKI_TEST_SEED=N changes the random keys.
 */
#include "test.h"

#include "calib/pca.h"
#include "cuda/lk_cuda.h"
#include "cuda/lk_cuda_calib.h"
#include "engine/engine.h"

#include <float.h>
#include <unistd.h>

#define U64 (DBL_EPSILON / 2) /* 2^-53 */
#define E2E_TOL 1e-2          /* (b): ε and the explained variances */

static lk_cuda *g_cu;
static uint64_t g_rng = 20261204;

/* ------------------------------------------------------------ helpers */


static double uniform(void) { /* [0, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

/* Keys (N, Hkv, D): 1000 ± 50 per (head, component), plus scale·(v + f/2)
 * with v uniform in [-1, 1) per element, f per row, scale 1e-3 .. 30. */
static void make_keys(float *k, int N, int Hkv, int D) {
    const size_t HD = (size_t)Hkv * D;
    double *off = test_xmalloc(sizeof(double) * HD), *scale = test_xmalloc(sizeof(double) * HD);
    for (size_t i = 0; i < HD; i++) off[i] = 1000.0 + 100.0 * (uniform() - 0.5), scale[i] = 1e-3 * pow(3e4, uniform());
    for (int r = 0; r < N; r++) {
        const double f = 2.0 * uniform() - 1.0;
        for (size_t i = 0; i < HD; i++)
            k[(size_t)r * HD + i] = (float)(off[i] + scale[i] * (2.0 * uniform() - 1.0 + 0.5 * f));
    }
    free(off);
    free(scale);
}

/* One (basis, layer)'s totals on the host, as lk_cuda_calib_read and
 * lk_calib_export give them. */
typedef struct totals {
    int64_t n;
    double *shift, *sum; /* (Hkv, D) */
    double *sumsq;       /* (Hkv, D, D) */
    bool nonfinite;
    size_t hd, d;        /* Hkv·D, D */
} totals;

/* NaN (all bits set) everywhere, so that an element a read skips fails. */
static void totals_poison(totals *t) {
    t->n = -1, t->nonfinite = true;
    memset(t->shift, 0xff, sizeof(double) * t->hd), memset(t->sum, 0xff, sizeof(double) * t->hd);
    memset(t->sumsq, 0xff, sizeof(double) * t->hd * t->d);
}

static totals totals_new(int Hkv, int D) {
    const size_t HD = (size_t)Hkv * D;
    totals t = {.hd = HD, .d = (size_t)D};
    t.shift = test_xmalloc(sizeof(double) * HD), t.sum = test_xmalloc(sizeof(double) * HD);
    t.sumsq = test_xmalloc(sizeof(double) * HD * D);
    totals_poison(&t);
    return t;
}

static void totals_free(totals *t) { free(t->shift), free(t->sum), free(t->sumsq); }

/* Read a slot into t, poisoned first. */
static void gpu_read(lk_cuda_calib *acc, int basis, int layer, totals *t) {
    loki_error err = {0};
    totals_poison(t);
    test_need(lk_cuda_calib_read(acc, basis, layer, &t->n, t->shift, t->sum, t->sumsq, &t->nonfinite, &err), &err,
         "lk_cuda_calib_read");
}

static void cpu_export(const lk_calib *c, int basis, int layer, totals *t) {
    loki_error err = {0};
    totals_poison(t);
    test_need(lk_calib_export(c, basis, layer, &t->n, t->shift, t->sum, t->sumsq, &err), &err, "lk_calib_export");
    t->nonfinite = false;
}

/* got against ref (a slot of N keys) within the bounds of the header; pa and
 * pb: the two parts got was merged from (NULL: got is one accumulation). */
static void compare_totals(const char *what, const totals *got, const totals *ref, const totals *pa,
                           const totals *pb, int Hkv, int D) {
    const double N = (double)ref->n, gam = N * U64 / (1.0 - N * U64);
    CHECKF(got->n == ref->n && !got->nonfinite, "%s: count %lld vs %lld, nonfinite %d", what, (long long)got->n,
           (long long)ref->n, (int)got->nonfinite);
    CHECKF(memcmp(got->shift, ref->shift, sizeof(double) * Hkv * D) == 0, "%s: shifts differ", what);
    int bad = 0, lower = 0;
    double worst = 0; /* largest |d| / bound */
    for (int h = 0; h < Hkv; h++) {
        const size_t hd = (size_t)h * D, hdd = hd * D;
        const double *S = ref->sumsq + hdd, *G = got->sumsq + hdd;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                const size_t o = (size_t)i * D + j;
                if (j < i) {
                    lower += G[o] != 0.0 || S[o] != 0.0;
                    continue;
                }
                double tol = sqrt(S[(size_t)i * D + i] * S[(size_t)j * D + j]);
                if (pa) {
                    const double *Sa = pa->sumsq + hdd, *Sb = pb->sumsq + hdd, *Tb = pb->sum + hd;
                    const double di = pb->shift[hd + i] - pa->shift[hd + i], dj = pb->shift[hd + j] - pa->shift[hd + j];
                    tol += sqrt(Sa[(size_t)i * D + i] * Sa[(size_t)j * D + j]) +
                           sqrt(Sb[(size_t)i * D + i] * Sb[(size_t)j * D + j]);
                    tol = 2 * gam * tol + 4 * U64 * (fabs(Sa[o]) + fabs(Sb[o]) + fabs(Tb[i] * dj) + fabs(di * Tb[j]) +
                                                     (double)pb->n * fabs(di * dj));
                } else {
                    tol *= 2 * gam;
                }
                const double d = fabs(G[o] - S[o]);
                if (!(d <= tol) && bad++ < 4)
                    printf("  %s: head %d sumsq[%d][%d] = %.17g, CPU %.17g, tol %.3g\n", what, h, i, j, G[o], S[o], tol);
                if (tol > 0) worst = fmax(worst, d / tol);
            }
        for (int j = 0; j < D; j++) {
            double tol = sqrt(N * S[(size_t)j * D + j]);
            if (pa) {
                const double *Sa = pa->sumsq + hdd, *Sb = pb->sumsq + hdd;
                const double dj = pb->shift[hd + j] - pa->shift[hd + j];
                tol += sqrt((double)pa->n * Sa[(size_t)j * D + j]) + sqrt((double)pb->n * Sb[(size_t)j * D + j]);
                tol = 2 * gam * tol + 4 * U64 * (fabs(pa->sum[hd + j]) + fabs(pb->sum[hd + j]) + (double)pb->n * fabs(dj));
            } else {
                tol *= 2 * gam;
            }
            const double d = fabs(got->sum[hd + j] - ref->sum[hd + j]);
            if (!(d <= tol) && bad++ < 4)
                printf("  %s: head %d sum[%d] = %.17g, CPU %.17g, tol %.3g\n", what, h, j, got->sum[hd + j],
                       ref->sum[hd + j], tol);
            if (tol > 0) worst = fmax(worst, d / tol);
        }
    }
    CHECKF(bad == 0, "%s: %d sums outside their bound", what, bad);
    CHECKF(lower == 0, "%s: %d strict-lower entries not 0", what, lower);
    printf("  %-44s worst |gpu - cpu| / bound %.3g\n", what, worst);
}

/* ------------------------------------------------------- (a) totals */

typedef struct cal_case {
    int Hkv, D;
    int n[6];  /* rows of each add, 0-terminated */
    int split; /* > 0: read and reset before add `split` (a merge case) */
} cal_case;

static void check_case(const cal_case *cc) {
    const int Hkv = cc->Hkv, D = cc->D, L = 3;
    int n_adds = 0, N = 0, nmax = 1;
    while (n_adds < 6 && cc->n[n_adds] > 0) N += cc->n[n_adds], nmax = LK_MAX(nmax, cc->n[n_adds]), n_adds++;
    const size_t HD = (size_t)Hkv * D;
    char what[128];
    float *keys = test_xmalloc(sizeof(float) * (size_t)N * HD); /* (N, Hkv, D) */
    make_keys(keys, N, Hkv, D);
    loki_error err = {0};
    lk_calib *cpu = NULL, *imp = NULL;
    lk_cuda_calib *acc = NULL;
    void *dk = NULL; /* (nmax, Hkv, D) device */
    test_need(lk_calib_init(&cpu, L, Hkv, D, &err), &err, "lk_calib_init");
    test_need(lk_calib_init(&imp, L, Hkv, D, &err), &err, "lk_calib_init");
    test_need(lk_cuda_calib_init(g_cu, &acc, L, Hkv, D, &err), &err, "lk_cuda_calib_init");
    test_need(lk_cuda_alloc(g_cu, &dk, sizeof(float) * (size_t)nmax * HD, "test keys", &err), &err, "lk_cuda_alloc");
    totals part[2][2] = {{totals_new(Hkv, D), totals_new(Hkv, D)}, {totals_new(Hkv, D), totals_new(Hkv, D)}};
    totals ref = totals_new(Hkv, D), got = totals_new(Hkv, D);
    const int slot[2][2] = {{1, 2}, {0, 0}}; /* (basis, layer): the adds, the first add's crosstalk copy */
    size_t row = 0;
    for (int a = 0; a < n_adds; a++) {
        if (a > 0 && a == cc->split) { /* first part: read, import, start afresh */
            for (int s = 0; s < 2; s++) {
                gpu_read(acc, slot[s][0], slot[s][1], &part[0][s]);
                CHECK_OK(lk_calib_import(imp, slot[s][0], slot[s][1], part[0][s].n, part[0][s].shift, part[0][s].sum,
                                         part[0][s].sumsq, part[0][s].nonfinite, &err));
            }
            test_need(lk_cuda_calib_reset(acc, &err), &err, "lk_cuda_calib_reset");
            CHECK_EQ_INT(lk_cuda_calib_count(acc, 1, 2), 0);
        }
        const float *k = keys + row * HD;
        test_need(lk_cuda_upload(g_cu, dk, k, sizeof(float) * (size_t)cc->n[a] * HD, &err), &err, "lk_cuda_upload");
        CHECK_OK(lk_cuda_calib_add(acc, 1, 2, dk, cc->n[a], &err));
        lk_calib_add_keys(cpu, 1, 2, k, cc->n[a]);
        if (a == 0) {
            CHECK_OK(lk_cuda_calib_add(acc, 0, 0, dk, cc->n[a], &err));
            lk_calib_add_keys(cpu, 0, 0, k, cc->n[a]);
        }
        row += (size_t)cc->n[a];
    }
    for (int s = 0; s < 2; s++) {
        const int b = slot[s][0], l = slot[s][1];
        snprintf(what, sizeof what, "Hkv %d D %d n %d (%d adds%s) slot %d/%d", Hkv, D, N, n_adds,
                 cc->split ? ", merged" : "", b, l);
        totals *direct = cc->split ? &part[1][s] : &got;
        gpu_read(acc, b, l, direct);
        cpu_export(cpu, b, l, &ref);
        CHECK_OK(lk_calib_import(imp, b, l, direct->n, direct->shift, direct->sum, direct->sumsq, direct->nonfinite,
                                 &err));
        if (!cc->split) {
            compare_totals(what, &got, &ref, NULL, NULL, Hkv, D);
            /* into an empty collector the import is a copy, bit for bit */
            totals back = totals_new(Hkv, D);
            cpu_export(imp, b, l, &back);
            CHECKF(back.n == got.n && !memcmp(back.shift, got.shift, sizeof(double) * HD) &&
                       !memcmp(back.sum, got.sum, sizeof(double) * HD) &&
                       !memcmp(back.sumsq, got.sumsq, sizeof(double) * HD * D),
                   "%s: import into an empty collector is not a copy", what);
            totals_free(&back);
        } else {
            cpu_export(imp, b, l, &got);
            if (part[1][s].n == 0) compare_totals(what, &got, &ref, NULL, NULL, Hkv, D); /* crosstalk slot: part a only */
            else compare_totals(what, &got, &ref, &part[0][s], &part[1][s], Hkv, D);
        }
    }
    /* the slot nobody added to: count 0 and zeros (no stale device memory) */
    totals empty = totals_new(Hkv, D);
    gpu_read(acc, 0, 1, &empty);
    bool zero = empty.n == 0 && !empty.nonfinite;
    for (size_t i = 0; i < HD * D; i++)
        zero = zero && empty.sumsq[i] == 0.0 && (i >= HD || (empty.sum[i] == 0.0 && empty.shift[i] == 0.0));
    CHECKF(zero, "Hkv %d D %d: the empty slot does not read as count 0 and zeros", Hkv, D);
    totals_free(&empty);
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 2; s++) totals_free(&part[p][s]);
    totals_free(&ref), totals_free(&got);
    lk_cuda_dealloc(g_cu, dk);
    lk_cuda_calib_free(acc);
    lk_calib_free(cpu), lk_calib_free(imp);
    free(keys);
}

/* --------------------------------------------------- (c) non-finite */

/* Import every (basis, layer) of acc into a fresh collector; returns it. */
static lk_calib *import_all(lk_cuda_calib *acc, int L, int Hkv, int D, bool *flags) {
    loki_error err = {0};
    lk_calib *c = NULL;
    test_need(lk_calib_init(&c, L, Hkv, D, &err), &err, "lk_calib_init");
    totals t = totals_new(Hkv, D);
    for (int b = 0; b < 2; b++)
        for (int l = 0; l < L; l++) {
            gpu_read(acc, b, l, &t);
            flags[b * L + l] = t.nonfinite;
            CHECK_OK(lk_calib_import(c, b, l, t.n, t.shift, t.sum, t.sumsq, t.nonfinite, &err));
        }
    totals_free(&t);
    return c;
}

static void check_nonfinite(void) {
    enum { L = 2, HKV = 2, D = 64, N = 10 };
    const size_t HD = (size_t)HKV * D;
    float *clean = test_xmalloc(sizeof(float) * N * HD), *nan_k = test_xmalloc(sizeof(float) * N * HD),
          *inf_k = test_xmalloc(sizeof(float) * N * HD);
    make_keys(clean, N, HKV, D);
    memcpy(nan_k, clean, sizeof(float) * N * HD);
    memcpy(inf_k, clean, sizeof(float) * N * HD);
    nan_k[5 * HD + 1 * D + 17] = NAN;     /* row 5, head 1, component 17 */
    inf_k[0 * HD + 0 * D + 63] = INFINITY; /* the first key: the shift itself */
    loki_error err = {0};
    lk_cuda_calib *acc = NULL;
    lk_calib *cpu = NULL;
    void *d[3] = {NULL, NULL, NULL};
    const float *h[3] = {clean, nan_k, inf_k};
    test_need(lk_cuda_calib_init(g_cu, &acc, L, HKV, D, &err), &err, "lk_cuda_calib_init");
    test_need(lk_calib_init(&cpu, L, HKV, D, &err), &err, "lk_calib_init");
    for (int i = 0; i < 3; i++) {
        test_need(lk_cuda_alloc(g_cu, &d[i], sizeof(float) * N * HD, "test keys", &err), &err, "lk_cuda_alloc");
        test_need(lk_cuda_upload(g_cu, d[i], h[i], sizeof(float) * N * HD, &err), &err, "lk_cuda_upload");
    }
    /* (0,0) clean twice, (1,0) clean, (0,1) an Inf first key, (1,1) clean then a NaN */
    const int plan[][3] = {{0, 0, 0}, {0, 0, 0}, {1, 0, 0}, {0, 1, 2}, {0, 1, 0}, {1, 1, 0}, {1, 1, 1}};
    for (size_t p = 0; p < sizeof plan / sizeof *plan; p++) {
        CHECK_OK(lk_cuda_calib_add(acc, plan[p][0], plan[p][1], d[plan[p][2]], N, &err));
        lk_calib_add_keys(cpu, plan[p][0], plan[p][1], h[plan[p][2]], N);
    }
    bool flags[2 * L];
    lk_calib *gpu = import_all(acc, L, HKV, D, flags);
    /* flags index b * L + l: (0,0) (0,1) (1,0) (1,1) */
    CHECKF(!flags[0] && flags[1] && !flags[2] && flags[3], "non-finite flags (0,0) %d (0,1) %d (1,0) %d (1,1) %d",
           flags[0], flags[1], flags[2], flags[3]);
    loki_pca *p = NULL;
    test_need(lk_pca_init(&p, L, HKV, D, &err), &err, "lk_pca_init");
    loki_error eg = {0}, ec = {0};
    loki_status sg = lk_calib_finish(gpu, p, &eg), sc = lk_calib_finish(cpu, p, &ec);
    CHECKF(sg == LOKI_ERR_RANGE && sc == LOKI_ERR_RANGE && strstr(eg.msg, "non-finite") && !strcmp(eg.msg, ec.msg),
           "finish with a NaN key: GPU %d '%.300s', CPU %d '%.300s'", sg, eg.msg, sc, ec.msg);
    printf("  NaN / Inf keys: finish refused on both (\"%s\")\n", eg.msg);
    lk_calib_free(gpu);
    /* after a reset the flags are clear and the same slots finish */
    test_need(lk_cuda_calib_reset(acc, &err), &err, "lk_cuda_calib_reset");
    for (int b = 0; b < 2; b++)
        for (int l = 0; l < L; l++) CHECK_OK(lk_cuda_calib_add(acc, b, l, d[0], N, &err));
    gpu = import_all(acc, L, HKV, D, flags);
    CHECKF(!flags[0] && !flags[1] && !flags[2] && !flags[3], "flags after a reset: %d %d %d %d", flags[0], flags[1],
           flags[2], flags[3]);
    sg = lk_calib_finish(gpu, p, &eg);
    CHECKF(sg == LOKI_OK, "finish after a reset: %s", eg.msg);
    loki_pca_free(p);
    lk_calib_free(gpu), lk_calib_free(cpu);
    for (int i = 0; i < 3; i++) lk_cuda_dealloc(g_cu, d[i]);
    lk_cuda_calib_free(acc);
    free(clean), free(nan_k), free(inf_k);
}

/* ------------------------------------------------ (d) bad arguments */

static void check_args(void) {
    loki_error err = {0};
    lk_cuda_calib *acc = NULL;
    const int bad[][3] = {{0, 2, 64}, {2, 0, 64}, {2, 2, 12}, {2, 2, 264}, {2, 2, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        loki_status st = lk_cuda_calib_init(g_cu, &acc, bad[i][0], bad[i][1], bad[i][2], &err);
        CHECKF(st == LOKI_ERR_ARG && !acc, "init %d x %d x %d: status %d", bad[i][0], bad[i][1], bad[i][2], st);
    }
    test_need(lk_cuda_calib_init(g_cu, &acc, 2, 1, 8, &err), &err, "lk_cuda_calib_init");
    void *dk = NULL;
    test_need(lk_cuda_alloc(g_cu, &dk, sizeof(float) * 8, "test keys", &err), &err, "lk_cuda_alloc");
    CHECK(lk_cuda_calib_add(acc, 2, 0, dk, 1, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_calib_add(acc, -1, 0, dk, 1, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_calib_add(acc, 0, 2, dk, 1, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_calib_add(acc, 0, 0, dk, -1, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_calib_add(acc, 0, 0, dk, 0, &err) == LOKI_OK && lk_cuda_calib_count(acc, 0, 0) == 0);
    int64_t n = 0;
    double x[64];
    bool nf = false;
    CHECK(lk_cuda_calib_read(acc, 0, 5, &n, x, x, x, &nf, &err) == LOKI_ERR_ARG);
    lk_calib *c = NULL;
    test_need(lk_calib_init(&c, 2, 1, 8, &err), &err, "lk_calib_init");
    CHECK(lk_calib_import(c, 0, 0, -1, x, x, x, false, &err) == LOKI_ERR_ARG);
    CHECK(lk_calib_import(c, 2, 0, 1, x, x, x, false, &err) == LOKI_ERR_ARG);
    printf("  bad arguments refused (e.g. \"%s\")\n", err.msg);
    lk_calib_free(c);
    lk_cuda_dealloc(g_cu, dk);
    lk_cuda_calib_free(acc);
}

/* ------------------------------------------------ (b) end to end */

/* Calibrate `windows` windows of `win` tokens of ids through ctx into c,
 * `batch` tokens per eval (several adds per window), setting the method
 * again after window 1 (on the GPU: a new backend, whose predecessor's
 * statistics set_attn flushes first), then flush as `loki calibrate` does. */
static bool calibrate_ctx(loki_context *ctx, lk_calib *c, const int32_t *ids, int windows, int win, int batch) {
    loki_error err = {0};
    loki_status st = LOKI_OK;
    ctx->calib = c;
    for (int w = 0; w < windows && !st; w++) {
        loki_context_reset(ctx);
        for (int done = 0; done < win && !st; done += batch)
            st = loki_eval(ctx, ids + (size_t)w * win + done, LK_MIN(batch, win - done), false, &err);
        if (!st && w == 1) {
            const loki_attn_params dense = loki_attn_default_params();
            st = loki_context_set_attn(ctx, &dense, &err);
        }
    }
    if (!st) st = lk_context_calib_flush(ctx, &err);
    ctx->calib = NULL;
    CHECKF(st == LOKI_OK, "%s calibration: %s", ctx->device == LOKI_DEVICE_CUDA ? "GPU" : "CPU", err.msg);
    return st == LOKI_OK;
}

/* Covariance C (D, D) of head h from totals (calib.c's expression). */
static void covariance(const totals *t, int h, int D, double *C) {
    const double inv = 1.0 / (double)t->n, *T = t->sum + (size_t)h * D, *S = t->sumsq + (size_t)h * D * D;
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++)
            C[(size_t)i * D + j] = C[(size_t)j * D + i] = S[(size_t)i * D + j] * inv - (T[i] * inv) * (T[j] * inv);
}

/* sin of the angle between unit vectors a and b (D, float): |a - (a·b)b| (up to sign). */
static double sin_angle(const float *a, const float *b, int D) {
    double dot = 0, r = 0;
    for (int i = 0; i < D; i++) dot += (double)a[i] * b[i];
    for (int i = 0; i < D; i++) r += ((double)a[i] - dot * b[i]) * ((double)a[i] - dot * b[i]);
    return sqrt(r);
}

/* Write p (with fixed metadata) to path; returns the file's size (-1: failed). */
static long save_size(loki_pca *p, const loki_model *m, const char *path) {
    loki_error err = {0};
    lk_sha256_hex("text", 4, p->calib_sha256);
    snprintf(p->calib_file, sizeof p->calib_file, "calib.txt");
    snprintf(p->model_name, sizeof p->model_name, "fixture-15m");
    if (lk_model_fingerprint(m, p->fingerprint, &err) || lk_pca_save(p, path, NULL, &err)) {
        CHECKF(0, "%s: %s", path, err.msg);
        return -1;
    }
    size_t n = 0;
    uint8_t *d = test_read_all(path, &n);
    const long size = d ? (long)n : -1;
    free(d);
    loki_pca *q = NULL;
    loki_status st = loki_pca_load(path, m, &q, &err);
    CHECKF(st == LOKI_OK, "%s does not load: %s", path, err.msg);
    loki_pca_free(q);
    return size;
}

static void check_end_to_end(void) {
    enum { WIN = 128, WINDOWS = 3, BATCH = 48, TOP_VEC = 8, TOP_EV = 4 };
    char *cfg = test_shared_path("models/fixture-15m/config.json");
    const bool have = cfg && test_file_exists(cfg);
    free(cfg);
    if (!have) {
        printf("  SKIP end to end: ../shared/models/fixture-15m absent\n");
        return;
    }
    char *dir = test_shared_path("models/fixture-15m"), *tpath = test_shared_path("data/wikitext2-test.raw");
    loki_error err = {0};
    loki_model *m = NULL;
    CHECK_OK(loki_model_open(dir, NULL, &m, &err));
    free(dir);
    if (!m) {
        free(tpath);
        return;
    }
    const lk_hparams *hp = &m->hp;
    const int L = hp->n_layer, Hkv = hp->n_head_kv, D = hp->head_dim;
    int32_t ids[4096];
    int32_t n = 0;
    size_t len = 0;
    uint8_t *text = test_read_all(tpath, &len);
    free(tpath);
    if (!text || loki_tokenize(m, (const char *)text, len < 6000 ? len : 6000, true, false, ids, 4096, &n, &err) ||
        n < WIN * WINDOWS) {
        printf("  WikiText-2 absent or short: fixed token ids\n");
        for (int i = 0; i < WIN * WINDOWS; i++) ids[i] = (int32_t)((i * 7919 + 13) % hp->n_vocab);
    }
    free(text);
    loki_context *ctx[2] = {NULL, NULL}; /* GPU, CPU */
    lk_calib *cal[2] = {NULL, NULL};
    loki_pca *pca[2] = {NULL, NULL};
    for (int g = 0; g < 2; g++) {
        loki_context_params cp = loki_context_default_params();
        cp.n_ctx = WIN, cp.n_batch = BATCH, cp.n_threads = 2;
        cp.type_k = cp.type_v = LOKI_KV_BF16; /* the GPU cache's element type */
        cp.device = g == 0 ? LOKI_DEVICE_CUDA : LOKI_DEVICE_CPU;
        test_need(loki_context_init(m, &cp, &ctx[g], &err), &err, "loki_context_init");
        test_need(lk_calib_init(&cal[g], L, Hkv, D, &err), &err, "lk_calib_init");
        test_need(lk_pca_init(&pca[g], L, Hkv, D, &err), &err, "lk_pca_init");
    }
    bool ok = calibrate_ctx(ctx[0], cal[0], ids, WINDOWS, WIN, BATCH) &&
              calibrate_ctx(ctx[1], cal[1], ids, WINDOWS, WIN, BATCH);
    if (ok) {
        CHECKF(lk_calib_count(cal[0]) == WIN * WINDOWS && lk_calib_count(cal[1]) == WIN * WINDOWS,
               "counts GPU %lld CPU %lld, expected %d", (long long)lk_calib_count(cal[0]),
               (long long)lk_calib_count(cal[1]), WIN * WINDOWS);
        loki_error e0 = {0}, e1 = {0};
        CHECKF(lk_calib_finish(cal[0], pca[0], &e0) == LOKI_OK && lk_calib_finish(cal[1], pca[1], &e1) == LOKI_OK,
               "finish: GPU '%.300s', CPU '%.300s'", e0.msg, e1.msg);
    }
    totals t[2] = {totals_new(Hkv, D), totals_new(Hkv, D)};
    double *C[2] = {test_xmalloc(sizeof(double) * D * D), test_xmalloc(sizeof(double) * D * D)};
    for (int b = 0; ok && b < LK_PCA_N_BASIS; b++) {
        /* worst: ε; |Δλ| and sin θ as fractions of their bounds; explained variance */
        double w_eps = 0, w_ev = 0, w_sin = 0, w_ratio = 0;
        int bad = 0;
        for (int l = 0; l < L; l++) {
            cpu_export(cal[0], b, l, &t[0]);
            cpu_export(cal[1], b, l, &t[1]);
            for (int h = 0; h < Hkv; h++) {
                covariance(&t[0], h, D, C[0]);
                covariance(&t[1], h, D, C[1]);
                const float *evg = lk_pca_eigenvalues(pca[0], b, l, h), *evc = lk_pca_eigenvalues(pca[1], b, l, h);
                const double l0 = evc[0];
                double fro = 0, tg = 0, tc = 0;
                for (int i = 0; i < D * D; i++) fro += (C[0][i] - C[1][i]) * (C[0][i] - C[1][i]);
                for (int i = 0; i < D; i++) tg += evg[i], tc += evc[i];
                const double eps = sqrt(fro) / l0;
                w_eps = fmax(w_eps, eps);
                bad += !(eps <= E2E_TOL);
                for (int i = 0; i < D; i++) { /* Weyl */
                    const double d = fabs((double)evg[i] - evc[i]), tol = eps * l0 + 0x1p-22 * l0;
                    bad += !(d <= tol);
                    w_ev = fmax(w_ev, d / tol);
                }
                for (int i = 0; i < TOP_EV; i++) { /* explained variance */
                    const double rg = evg[i] / tg, rc = evc[i] / tc, r = fabs(rg - rc) / rc;
                    bad += !(r <= E2E_TOL);
                    w_ratio = fmax(w_ratio, r);
                }
                const float *Vg = lk_pca_components(pca[0], b, l, h), *Vc = lk_pca_components(pca[1], b, l, h);
                for (int i = 0; i < TOP_VEC && i < D; i++) { /* Davis-Kahan */
                    double gap = i + 1 < D ? (double)evc[i] - evc[i + 1] : INFINITY;
                    if (i > 0) gap = fmin(gap, (double)evc[i - 1] - evc[i]);
                    const double s = sin_angle(Vg + (size_t)i * D, Vc + (size_t)i * D, D);
                    const double tol = (gap > 0 ? fmin(1.0, 2.0 * eps * l0 / gap) : 1.0) + 1e-5;
                    bad += !(s <= tol);
                    w_sin = fmax(w_sin, s / tol);
                }
            }
        }
        CHECKF(bad == 0, "%s RoPE: %d eigen checks failed (worst ε %.3g, eigenvalue %.3g, sin θ %.3g of bound, "
               "explained variance %.3g)", b == LOKI_BASIS_PRE ? "pre" : "post", bad, w_eps, w_ev, w_sin, w_ratio);
        printf("  %s RoPE, %d layers x %d heads: worst ε = ||ΔC||_F/λ0 %.3g (tol %g); |Δλ| %.3g of Weyl's bound; "
               "sin θ (top %d) %.3g of Davis-Kahan's; explained variance (top %d) rel %.3g (tol %g)\n",
               b == LOKI_BASIS_PRE ? "pre" : "post", L, Hkv, w_eps, E2E_TOL, w_ev, TOP_VEC, w_sin, TOP_EV, w_ratio,
               E2E_TOL);
    }
    if (ok) {
        char pg[] = "/tmp/loki-test-cuda-calib-gpu-XXXXXX", pc[] = "/tmp/loki-test-cuda-calib-cpu-XXXXXX";
        const int fg = mkstemp(pg), fc = mkstemp(pc);
        if (fg >= 0) close(fg);
        if (fc >= 0) close(fc);
        long sg = save_size(pca[0], m, pg), sc = save_size(pca[1], m, pc);
        CHECKF(sg > 0 && sg == sc, "PCA files: GPU %ld bytes, CPU %ld", sg, sc);
        printf("  PCA files: %ld bytes each\n", sg);
        unlink(pg), unlink(pc);
    }
    free(C[0]), free(C[1]);
    totals_free(&t[0]), totals_free(&t[1]);
    for (int g = 0; g < 2; g++) {
        loki_pca_free(pca[g]);
        lk_calib_free(cal[g]);
        loki_context_free(ctx[g]);
    }
    loki_model_close(m);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    g_cu = test_gpu_open(&g_rng);

    printf("(a) totals against lk_calib_add_keys\n");
    const cal_case cases[] = {
        {1, 8, {1, 1, 3}, 0},         {2, 64, {512, 37, 1, 300}, 0}, {8, 128, {512, 512, 100}, 0},
        {3, 40, {33, 65, 7}, 0},      {4, 256, {200, 513}, 0},       {64, 128, {64, 129}, 0},
        {64, 256, {31}, 0},           {5, 200, {1000, 1}, 0},        {2, 64, {2048}, 0},
        {8, 128, {100, 200, 300, 50}, 2}, {2, 256, {1, 77}, 1},      {16, 64, {7, 500, 9}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i]);
    printf("(c) non-finite keys\n");
    check_nonfinite();
    printf("(d) bad arguments\n");
    check_args();
    printf("(b) end to end through the forward pass\n");
    check_end_to_end();
    lk_cuda_free(g_cu);
    return test_finish();
}
