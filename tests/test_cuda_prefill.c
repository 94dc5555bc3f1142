/*
 * test_cuda_prefill.c - GPU prompt attention (lk_gpu_attn_prefill,
 * src/cuda/prefill.cu) against attention computed here in double.
 *
 * A case builds a paged cache of 2 layers (layer 1 attended; layer 0 holds
 * values of -50, so reading the wrong layer fails), with 3 sequences grown
 * page by page in turns (after a reserve/release that reverses the free
 * list), so the attended sequence's pages are scrambled and interleaved
 * with the others'. The whole pool is first poisoned with bf16 NaN: the
 * unwritten slots of the last page must not leak into the output. Keys and
 * values of positions 0 .. pos0+n-1 are random (keys, values in [-1, 1));
 * 5 "future" positions after them are stored too, with large keys and
 * values of 50, so attending past the causal limit fails. The output
 * buffer holds n + 1 rows, all NaN first; the extra row must stay untouched.
 *
 * Reference: per (token, head) row, exact attention in double over the
 * keys and values read back from the cache (lk_gpu_kv_read: the GPU's own
 * bf16 numbers) with q rounded to bf16, as the kernel feeds the tensor
 * cores. What remains is the kernel's rounding of the softmax weights P to
 * bf16 for the P.V product (relative error <= 2^-9 per weight, so the
 * weighted average moves by at most 2^-9 max|v| ~ 2e-3 max|v|) plus f32
 * accumulation and ex2.approx (~1e-6 relative). Tolerance:
 *     |out - ref| <= 4e-3 * max|v| + 1e-5
 * (twice the worst case of the bf16 weights; typical errors are ~10x less
 * because the roundings are independent). The largest error seen is printed.
 *
 * Cases: D in {64, 128, 256} x (H, Hkv) in {(4,4), (8,2), (32,8)} x plain or
 * split layout (d = 32 or 16 alternating over heads, 8/24 on layer 0) x
 * pos0 in {0, 37, 200} x n in {1, 5, 64, 130, 700}, the window rotating
 * through {0, 48, 512}; for n > 160 the rows checked in double are the
 * first and last 80 tokens and every 5th (all rows are checked for NaN).
 * Then an 8192-token Llama-2-7B shaped layer (32 heads, D = 128; and with
 * 8 KV heads) timed over graph replays, spot-checked; then bad arguments.
 * Exit 77 (skipped) without the CUDA backend or a usable GPU.
 */
#include "test.h"

#include "cuda/lk_cuda.h"
#include "cuda/lk_cuda_prefill.h"

enum { P = LK_GPU_PAGE, NSEQ = 3, NL = 2, LAYER = 1, TARGET = 1, EXTRA = 5 };

#define TOL_V 4e-3
#define TOL_ABS 1e-5


/* Zeroed host memory; the test cannot go on without it. */
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) fprintf(stderr, "out of host memory (%zu x %zu)\n", n, size), exit(1);
    return p;
}

typedef struct pcase {
    int D, H, Hkv, pos0, n, window;
    bool split;
    float scale; /* scale of the scores */
} pcase;

/* Exact attention in double of query qrow (D, already bf16-rounded) at
 * position p over keys/values k, v (S, D) of one KV head: keys j <= p and,
 * window > 0, j > p - window. ref (D); *vmax: max |v| over those keys. */
static void ref_row(const float *qrow, const float *k, const float *v, int D, int32_t p, int32_t window, double scale,
                    double *ref, double *w, double *vmax) {
    const int32_t lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
    double m = -INFINITY, sum = 0;
    for (int32_t j = lo; j <= p; j++) {
        double s = 0;
        for (int t = 0; t < D; t++) s += (double)qrow[t] * k[(size_t)j * D + t];
        w[j - lo] = s * scale;
        if (w[j - lo] > m) m = w[j - lo];
    }
    for (int t = 0; t < D; t++) ref[t] = 0;
    *vmax = 0;
    for (int32_t j = lo; j <= p; j++) {
        const double e = exp(w[j - lo] - m);
        sum += e;
        for (int t = 0; t < D; t++) {
            ref[t] += e * v[(size_t)j * D + t];
            if (fabs(v[(size_t)j * D + t]) > *vmax) *vmax = fabs(v[(size_t)j * D + t]);
        }
    }
    for (int t = 0; t < D; t++) ref[t] /= sum;
}

/* lk_gpu_attn_decode_window reads the row's position on the device: for
 * query row q_dev (H, D) at position p (and at p - 3, while the host's
 * position says p: it is for the checks only), its output equals the
 * one-row lk_gpu_attn_prefill at that position bit for bit (the same kernel
 * and values), outputs NaN-poisoned first. Returns non-zero with *err set
 * when a CUDA call failed (mismatches are CHECKF failures). */
static int check_decode_window(lk_cuda *cu, lk_gpu_kv *kv, const pcase *c, const float *q_dev, int32_t p,
                               const char *name, loki_error *err) {
    const size_t bytes = (size_t)c->H * c->D * 4;
    void *pos_dev = NULL, *o1 = NULL, *o2 = NULL;
    float *h1 = xcalloc(bytes, 1), *h2 = xcalloc(bytes, 1);
    int rc = 1;
    for (int k = 0; k < 2; k++) {
        const int32_t pk = k == 0 || p < 3 ? p : p - 3;
        memset(h1, 0xff, bytes);
        if ((!pos_dev && (lk_cuda_alloc(cu, &pos_dev, 4, "test", err) || lk_cuda_alloc(cu, &o1, bytes, "test", err) ||
                          lk_cuda_alloc(cu, &o2, bytes, "test", err))) ||
            lk_cuda_upload(cu, pos_dev, &pk, 4, err) || lk_cuda_upload(cu, o1, h1, bytes, err) ||
            lk_cuda_upload(cu, o2, h1, bytes, err) ||
            lk_gpu_attn_decode_window(kv, LAYER, TARGET, p, pos_dev, c->H, q_dev, o1, c->scale, c->window, err) ||
            lk_gpu_attn_prefill(kv, LAYER, TARGET, pk, 1, c->H, q_dev, o2, c->scale, c->window, err) ||
            lk_cuda_sync(cu, err) || lk_cuda_download(cu, h1, o1, bytes, err) || lk_cuda_download(cu, h2, o2, bytes, err))
            goto out;
        int finite = 1;
        for (size_t i = 0; i < bytes / 4; i++) finite &= isfinite(h1[i]) != 0;
        CHECKF(finite && memcmp(h1, h2, bytes) == 0, "%s: decode_window at position %d (host %d) differs from the "
               "one-row prefill (or is not finite)", name, pk, p);
    }
    loki_error e2;
    CHECK(lk_gpu_attn_decode_window(kv, LAYER, TARGET, p, NULL, c->H, q_dev, o1, c->scale, c->window, &e2) ==
          LOKI_ERR_ARG);
    rc = 0;
out:
    lk_cuda_dealloc(cu, pos_dev), lk_cuda_dealloc(cu, o1), lk_cuda_dealloc(cu, o2);
    free(h1), free(h2);
    return rc;
}

/* One case (see the top). Returns the largest |out - ref| / tolerance
 * through *ratio; failures are reported through CHECKF. */
static void run_case(lk_cuda *cu, const pcase *c, uint64_t *rng, double *ratio) {
    const int D = c->D, H = c->H, Hkv = c->Hkv, G = H / Hkv;
    const int32_t pos0 = c->pos0, n = c->n, S = pos0 + n + EXTRA, need = (S + P - 1) / P;
    const int32_t n_pages = 5 * need + 8, mpps = 3 * need + 8; /* the others grow <= 2 pages a turn */
    char name[160];
    snprintf(name, sizeof name, "D=%d H=%d Hkv=%d pos0=%d n=%d window=%d %s", D, H, Hkv, pos0, n, c->window,
             c->split ? "split" : "plain");
    loki_error err = {0};
    lk_gpu_kv *kv = NULL;
    int32_t dsplit[NL * 64];
    for (int l = 0; l < NL; l++)
        for (int h = 0; h < Hkv; h++) dsplit[l * Hkv + h] = l == LAYER ? (h % 2 ? 16 : 32) : (h % 2 ? 8 : 24);
    const size_t row = (size_t)Hkv * D;
    float *k = xcalloc((size_t)S * row, 4), *v = xcalloc((size_t)S * row, 4), *k0 = xcalloc((size_t)S * row, 4);
    float *v0 = xcalloc((size_t)S * row, 4), *q = xcalloc((size_t)(n + 1) * H * D, 4);
    float *out = xcalloc((size_t)(n + 1) * H * D, 4), *kr = xcalloc((size_t)Hkv * S * D, 4);
    float *vr = xcalloc((size_t)Hkv * S * D, 4), *qb = xcalloc((size_t)D, 4);
    double *ref = xcalloc((size_t)D, 8), *w = xcalloc((size_t)S, 8);
    int32_t *slots = xcalloc((size_t)S, 4);
    uint16_t *poison = NULL;
    void *k_dev = NULL, *v_dev = NULL, *slots_dev = NULL, *q_dev = NULL, *out_dev = NULL;
    size_t pool_bytes = 0;
    int bad = 0, nanrows = 0;
    double worst = 0, worst_err = 0;

    if (lk_gpu_kv_init(cu, &kv, NL, Hkv, D, c->split ? dsplit : NULL, n_pages, NSEQ, mpps, &err)) goto fail;
    /* scramble the free list, then grow the sequences page by page in turns */
    if (lk_gpu_kv_reserve(kv, 0, 3 * P, &err)) goto fail;
    lk_gpu_kv_release(kv, 0);
    {
        int32_t have[NSEQ] = {0};
        while (have[TARGET] < need)
            for (int s = 0; s < NSEQ; s++) {
                have[s] += s == TARGET ? 1 : 1 + (int32_t)(*rng % 2);
                *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
                if (s == TARGET && have[s] > need) have[s] = need;
                if (lk_gpu_kv_reserve(kv, s, have[s] * P, &err)) goto fail;
            }
    }
    pool_bytes = (size_t)NL * n_pages * Hkv * P * 2 * D * 2;
    poison = xcalloc(pool_bytes, 1);
    memset(poison, 0xff, pool_bytes); /* bf16 NaN everywhere */
    if (lk_cuda_upload(cu, kv->pool, poison, pool_bytes, &err)) goto fail;

    test_fill_random(k, (size_t)S * row, -1, 1, rng);
    test_fill_random(v, (size_t)S * row, -1, 1, rng);
    test_fill_random(k0, (size_t)S * row, -1, 1, rng);
    for (size_t i = 0; i < (size_t)S * row; i++) v0[i] = -50.0f;
    for (size_t i = (size_t)(pos0 + n) * row; i < (size_t)S * row; i++) k[i] *= 6.0f, v[i] = 50.0f; /* the future */
    test_fill_random(q, (size_t)n * H * D, -3, 3, rng);
    lk_gpu_kv_slots(kv, TARGET, 0, S, slots);
    if (lk_cuda_alloc(cu, &k_dev, (size_t)S * row * 4, "test", &err) ||
        lk_cuda_alloc(cu, &v_dev, (size_t)S * row * 4, "test", &err) ||
        lk_cuda_alloc(cu, &slots_dev, (size_t)S * 4, "test", &err) ||
        lk_cuda_alloc(cu, &q_dev, (size_t)(n + 1) * H * D * 4, "test", &err) ||
        lk_cuda_alloc(cu, &out_dev, (size_t)(n + 1) * H * D * 4, "test", &err) ||
        lk_cuda_upload(cu, slots_dev, slots, (size_t)S * 4, &err) ||
        lk_cuda_upload(cu, k_dev, k0, (size_t)S * row * 4, &err) ||
        lk_cuda_upload(cu, v_dev, v0, (size_t)S * row * 4, &err) ||
        lk_gpu_kv_store(kv, 0, S, k_dev, v_dev, slots_dev, NULL, &err) || lk_cuda_sync(cu, &err) ||
        lk_cuda_upload(cu, k_dev, k, (size_t)S * row * 4, &err) ||
        lk_cuda_upload(cu, v_dev, v, (size_t)S * row * 4, &err) ||
        lk_gpu_kv_store(kv, LAYER, S, k_dev, v_dev, slots_dev, NULL, &err) || lk_gpu_kv_set_len(kv, TARGET, S, &err) ||
        lk_cuda_upload(cu, q_dev, q, (size_t)n * H * D * 4, &err))
        goto fail;
    memset(out, 0xff, (size_t)(n + 1) * H * D * 4); /* NaN */
    if (lk_cuda_upload(cu, out_dev, out, (size_t)(n + 1) * H * D * 4, &err)) goto fail;
    for (int kh = 0; kh < Hkv; kh++)
        if (lk_gpu_kv_read(kv, LAYER, TARGET, kh, 0, S, kr + (size_t)kh * S * D, vr + (size_t)kh * S * D, &err))
            goto fail;

    if (lk_gpu_attn_prefill(kv, LAYER, TARGET, pos0, n, H, q_dev, out_dev, c->scale, c->window, &err) ||
        lk_cuda_sync(cu, &err) || lk_cuda_download(cu, out, out_dev, (size_t)(n + 1) * H * D * 4, &err))
        goto fail;

    {
        const uint32_t *tail = (const uint32_t *)(out + (size_t)n * H * D);
        int touched = 0;
        for (int i = 0; i < H * D; i++) touched += tail[i] != 0xffffffffu;
        CHECKF(touched == 0, "%s: %d values written past the n output rows", name, touched);
    }
    for (int32_t i = 0; i < n; i++) {
        const bool check = n <= 160 || i < 80 || i >= n - 80 || i % 5 == 0;
        for (int h = 0; h < H; h++) {
            const float *o = out + ((size_t)i * H + h) * D;
            bool finite = true;
            for (int t = 0; t < D; t++) finite &= isfinite(o[t]) != 0;
            if (!finite) {
                if (nanrows++ < 4) CHECKF(false, "%s: row (token %d, head %d) not finite", name, i, h);
                continue;
            }
            if (!check) continue;
            const int kh = h / G;
            for (int t = 0; t < D; t++) qb[t] = test_bf16_round(q[((size_t)i * H + h) * D + t]);
            double vmax;
            ref_row(qb, kr + (size_t)kh * S * D, vr + (size_t)kh * S * D, D, pos0 + i, c->window, c->scale, ref, w,
                    &vmax);
            const double tol = TOL_V * vmax + TOL_ABS;
            double e = 0;
            int te = 0;
            for (int t = 0; t < D; t++)
                if (fabs(o[t] - ref[t]) > e) e = fabs(o[t] - ref[t]), te = t;
            if (e / tol > worst) worst = e / tol, worst_err = e;
            if (e > tol && bad++ < 4)
                CHECKF(false, "%s: token %d head %d component %d: %.6f, want %.6f (error %.3g > %.3g)", name, i, h,
                       te, o[te], ref[te], e, tol);
        }
    }
    CHECKF(bad == 0 && nanrows == 0, "%s: %d rows off, %d not finite (largest error %.3g, %.2f x tolerance)", name,
           bad, nanrows, worst_err, worst);
    if (worst > *ratio) *ratio = worst;
    if (n >= 1 && check_decode_window(cu, kv, c, (const float *)q_dev + (size_t)(n - 1) * H * D, pos0 + n - 1, name,
                                      &err))
        goto fail;
    goto done;
fail:
    CHECKF(false, "%s: %s", name, err.msg);
done:
    lk_cuda_dealloc(cu, k_dev), lk_cuda_dealloc(cu, v_dev), lk_cuda_dealloc(cu, slots_dev);
    lk_cuda_dealloc(cu, q_dev), lk_cuda_dealloc(cu, out_dev);
    lk_gpu_kv_free(kv);
    free(k), free(v), free(k0), free(v0), free(q), free(out), free(kr), free(vr), free(qb), free(ref), free(w);
    free(slots), free(poison);
}

/* An n-token prompt at position 0 of one layer of Llama-2-7B's shape (H =
 * 32, D = 128, Hkv KV heads), synthetic cache: the kernel timed over 20
 * graph replays (printed with its TFLOP/s, causal flops 2 H D n^2), and a
 * few rows checked in double. */
static void bench_case(lk_cuda *cu, int32_t n, int Hkv, uint64_t *rng) {
    const int H = 32, D = 128, G = H / Hkv;
    loki_error err = {0};
    lk_gpu_kv *kv = NULL;
    lk_cuda_graph *gr = NULL;
    void *q_dev = NULL, *out_dev = NULL;
    const size_t qn = (size_t)n * H * D;
    float *q = xcalloc(qn, 4), *out = xcalloc(qn, 4), *kr = xcalloc((size_t)n * D, 4), *vr = xcalloc((size_t)n * D, 4);
    float sigma[128], qb[128], ms = 0;
    double ref[128], *w = xcalloc((size_t)n, 8), vmax;
    const int32_t rows[] = {0, 63, 64, 1000, n / 2, n - 65, n - 1};
    const int heads[] = {0, G - 1, H - 1};
    const float scale = 1.0f / sqrtf((float)D);
    for (int j = 0; j < D; j++) sigma[j] = 1.0f;
    test_fill_random(q, qn, -2, 2, rng);
    if (lk_gpu_kv_init(cu, &kv, 1, Hkv, D, NULL, (n + P - 1) / P, 1, (n + P - 1) / P, &err) ||
        lk_gpu_kv_reserve(kv, 0, n, &err) || lk_gpu_kv_fill_synthetic(kv, 0, 0, n, sigma, 7, &err) ||
        lk_gpu_kv_set_len(kv, 0, n, &err) || lk_cuda_alloc(cu, &q_dev, qn * 4, "bench", &err) ||
        lk_cuda_alloc(cu, &out_dev, qn * 4, "bench", &err) || lk_cuda_upload(cu, q_dev, q, qn * 4, &err) ||
        lk_gpu_attn_prefill(kv, 0, 0, 0, n, H, q_dev, out_dev, scale, 0, &err) || lk_cuda_sync(cu, &err) ||
        lk_cuda_capture_begin(cu, &err) ||
        lk_gpu_attn_prefill(kv, 0, 0, 0, n, H, q_dev, out_dev, scale, 0, &err) ||
        lk_cuda_capture_end(cu, &gr, &err) || lk_cuda_graph_run(cu, gr, 20, &ms, &err) ||
        lk_cuda_download(cu, out, out_dev, qn * 4, &err))
        goto fail;
    {
        const double t = ms / 20, fl = 2.0 * H * D * (double)n * n;
        printf("bench: prefill n=%d H=%d Hkv=%d D=%d: %.3f ms per layer, %.0f TFLOP/s (causal)\n", n, H, Hkv, D, t,
               fl / (t * 1e-3) / 1e12);
    }
    for (int hi = 0; hi < 3; hi++) {
        const int h = heads[hi];
        if (lk_gpu_kv_read(kv, 0, 0, h / G, 0, n, kr, vr, &err)) goto fail;
        for (int ri = 0; ri < 7; ri++) {
            const int32_t i = rows[ri];
            for (int t = 0; t < D; t++) qb[t] = test_bf16_round(q[((size_t)i * H + h) * D + t]);
            ref_row(qb, kr, vr, D, i, 0, scale, ref, w, &vmax);
            double e = 0;
            for (int t = 0; t < D; t++) {
                const float o = out[((size_t)i * H + h) * D + t];
                e = fmax(e, isfinite(o) ? fabs(o - ref[t]) : INFINITY);
            }
            CHECKF(e <= TOL_V * vmax + TOL_ABS, "bench n=%d Hkv=%d: token %d head %d error %.3g", n, Hkv, i, h, e);
        }
    }
    goto done;
fail:
    CHECKF(false, "bench n=%d Hkv=%d: %s", n, Hkv, err.msg);
done:
    lk_cuda_graph_free(gr);
    lk_cuda_dealloc(cu, q_dev), lk_cuda_dealloc(cu, out_dev);
    lk_gpu_kv_free(kv);
    free(q), free(out), free(kr), free(vr), free(w);
}

/* expr must fail with LOKI_ERR_ARG and a message (printed). */
#define REFUSED(expr)                                                                                             \
    do {                                                                                                          \
        loki_error e_ = {0};                                                                                      \
        loki_status s_ = (expr);                                                                                  \
        CHECKF(s_ == LOKI_ERR_ARG && e_.msg[0], "%s: status %d, message '%s'", #expr, (int)s_, e_.msg);           \
        if (s_ == LOKI_ERR_ARG) printf("refused as expected: %s\n", e_.msg);                                       \
    } while (0)

/* Bad arguments are refused with LOKI_ERR_ARG and a message, nothing launched. */
static void bad_args(lk_cuda *cu) {
    loki_error err = {0};
    lk_gpu_kv *kv = NULL, *kv96 = NULL;
    void *buf = NULL;
    if (lk_gpu_kv_init(cu, &kv, 1, 4, 64, NULL, 4, 2, 4, &err) || lk_gpu_kv_reserve(kv, 0, 100, &err) ||
        lk_gpu_kv_init(cu, &kv96, 1, 2, 96, NULL, 2, 1, 2, &err) || lk_gpu_kv_reserve(kv96, 0, 64, &err) ||
        lk_cuda_alloc(cu, &buf, (size_t)64 * 8 * 256 * 4, "test", &err)) {
        CHECKF(false, "bad-argument setup: %s", err.msg);
        goto done;
    }
    float *b = buf;
    REFUSED(lk_gpu_attn_prefill(NULL, 0, 0, 0, 1, 4, b, b, 0.125f, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 6, b, b, 0.125f, 0, &e_));  /* 6 heads over 4 KV heads */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 0, b, b, 0.125f, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 1, 0, 0, 4, 8, b, b, 0.125f, 0, &e_));  /* layer */
    REFUSED(lk_gpu_attn_prefill(kv, -1, 0, 0, 4, 8, b, b, 0.125f, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 2, 0, 4, 8, b, b, 0.125f, 0, &e_));  /* sequence */
    REFUSED(lk_gpu_attn_prefill(kv, 0, -1, 0, 4, 8, b, b, 0.125f, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, -1, 8, b, b, 0.125f, 0, &e_)); /* n */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, -1, 4, 8, b, b, 0.125f, 0, &e_)); /* pos0 */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 100, 29, 8, b, b, 0.125f, 0, &e_)); /* 129 > 2 pages */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 1, 0, 1, 8, b, b, 0.125f, 0, &e_));  /* no pages */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, b, b, 0.0f, 0, &e_));    /* scale */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, b, b, NAN, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, b, b, INFINITY, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, b, b, 0.125f, -1, &e_)); /* window */
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, NULL, b, 0.125f, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, b, NULL, 0.125f, 0, &e_));
    REFUSED(lk_gpu_attn_prefill(kv, 0, 0, 0, 4, 8, b + 1, b, 0.125f, 0, &e_)); /* misaligned */
    REFUSED(lk_gpu_attn_prefill(kv96, 0, 0, 0, 4, 2, b, b, 0.125f, 0, &e_)); /* D = 96 */
    {
        loki_error e = {0};
        CHECKF(lk_gpu_attn_prefill(kv, 0, 0, 100, 0, 8, b, b, 0.125f, 0, &e) == LOKI_OK, "n = 0: %s", e.msg);
        const loki_status s1 = lk_gpu_attn_prefill(kv, 0, 0, 100, 28, 8, b, b + 28 * 8 * 64, 0.125f, 0, &e);
        CHECKF(s1 == LOKI_OK && lk_cuda_sync(cu, &e) == LOKI_OK, "128 reserved tokens: %s", e.msg);
    }
done:
    lk_cuda_dealloc(cu, buf);
    lk_gpu_kv_free(kv);
    lk_gpu_kv_free(kv96);
}

int main(void) {
    lk_cuda *cu = NULL;
    loki_error err = {0};
    if (lk_cuda_init(&cu, 0, &err)) {
        fprintf(stderr, "SKIP: no usable GPU for the prefill attention test: %s\n", err.msg);
        return 77;
    }
    printf("%s\n", lk_cuda_describe(cu));
    uint64_t rng = 20261204;
    const char *env = getenv("LOKI_TEST_SEED");
    if (env) rng = strtoull(env, NULL, 10) * 2654435761ull + 1;
    const int Ds[3] = {64, 128, 256}, HH[3][2] = {{4, 4}, {8, 2}, {32, 8}}, pos0s[3] = {0, 37, 200};
    const int ns[5] = {1, 5, 64, 130, 700}, windows[3] = {0, 48, 512};
    int cases = 0;
    double ratio = 0;
    for (int di = 0; di < 3; di++)
        for (int hi = 0; hi < 3; hi++)
            for (int split = 0; split < 2; split++)
                for (int pi = 0; pi < 3; pi++)
                    for (int ni = 0; ni < 5; ni++) {
                        const int cfg = (di * 3 + hi) * 2 + split;
                        pcase c = {Ds[di], HH[hi][0], HH[hi][1], pos0s[pi], ns[ni], windows[(pi * 5 + ni + cfg) % 3],
                                   split != 0, 0};
                        c.scale = (float)((ni % 2 ? 1.0 : 0.6) / sqrt((double)c.D));
                        run_case(cu, &c, &rng, &ratio);
                        cases++;
                    }
    printf("%d cases: largest error %.3f x the tolerance (4e-3 max|v| + 1e-5)\n", cases, ratio);
    bad_args(cu);
    bench_case(cu, 8192, 32, &rng);
    bench_case(cu, 8192, 8, &rng);
    lk_cuda_free(cu);
    return test_finish();
}
