/*
 * test_cuda_rope_store.c - the fused decode kernel lk_gpu_kv_rope_store
 * (src/cuda/kv_rope_store.cu: RoPE on q and k, the rotation into the PCA
 * basis, the query scale, the bf16 store of k and v at the rows' slots) on
 * fresh random inputs with poisoned outputs (q_out NaN, every cache element
 * the bf16 NaN 0xffff), for MHA and GQA groups, both RoPE pair styles,
 * partial rotary dims, head dims 16 / 64 / 80 / 96 / 128 / 256, split dims, rows at
 * scattered slots and positions up to 2^17.
 *
 * Without a rotation the kernel must equal the unfused kernels (lk_cuda_rope
 * on q and k, lk_gpu_kv_store, lk_cuda_scale) bit for bit, q_out and the
 * whole cache pool. With one, against a double reference of the same maths:
 * RoPE's angle is the f32 product pos * inv_freq (as both the CPU and the GPU
 * compute it), then double cos/sin; y = sum_i C[c][i] x'_i; q_out = s * y.
 * Tolerance of an output component: (D + 16) u * s * sum_i |C[c][i]| (|x_i| +
 * |x_partner(i)|) with u = 2^-24 (D products and sums in f32, and RoPE's
 * 2-ulp sincosf and roundings, each bounded by u times the pair's
 * magnitudes); keys in the cache add bf16's rounding, 2^-8 |y| (which the
 * keys reach: the bound is the half ulp itself). Values are
 * bf16(v) exactly; every element not written must still be the poison.
 * q, k and v must be unchanged. Exit 77 without the CUDA backend or a GPU.
 */
#include "test.h"

#include "core/tensor.h"
#include "cpu/cpu.h"
#include "cuda/lk_cuda.h"
#include "cuda/lk_cuda_ops.h"
#include "cuda/lk_cuda_rotate.h"

#include <float.h>

#define U (FLT_EPSILON / 2)
#define NSHOW 5
#define L 2 /* layers of the test cache; the rows go to layer 1 */

typedef struct rs_case {
    int n, H, Hkv, D, rope_dim;
    bool neox, rot;
    float q_scale;
    int d_lo; /* split dim of head 0 (the others: D, D - 8, ...) */
} rs_case;

typedef struct dev_bufs {
    float *q, *k, *v, *q_out, *rot, *inv;
    int32_t *slots, *pos;
} dev_bufs;

static lk_cuda *g_cu;
static uint64_t g_rng = 20261204;

static void *dev_put(const void *h, size_t bytes) {
    loki_error err = {0};
    void *d = NULL;
    test_need(lk_cuda_alloc(g_cu, &d, bytes, "test buffer", &err), &err, "lk_cuda_alloc");
    test_need(lk_cuda_upload(g_cu, d, h, bytes, &err), &err, "lk_cuda_upload");
    return d;
}

static void dev_get(void *h, const void *d, size_t bytes) {
    loki_error err = {0};
    test_need(lk_cuda_download(g_cu, h, d, bytes, &err), &err, "lk_cuda_download");
}

/* A cache of L layers with the case's split dims, its pool poisoned
 * (0xffff), sequence 0 reserved for 3 pages. */
static lk_gpu_kv *make_cache(const rs_case *c, const int32_t *d) {
    loki_error err = {0};
    lk_gpu_kv *kv = NULL;
    test_need(lk_gpu_kv_init(g_cu, &kv, L, c->Hkv, c->D, d, 4, 1, 4, &err), &err, "lk_gpu_kv_init");
    test_need(lk_gpu_kv_reserve(kv, 0, 3 * LK_GPU_PAGE, &err), &err, "lk_gpu_kv_reserve");
    const size_t bytes = (size_t)L * kv->n_pages * c->Hkv * LK_GPU_PAGE * 2 * c->D * 2;
    void *poison = test_xmalloc(bytes);
    memset(poison, 0xff, bytes);
    test_need(lk_cuda_upload(g_cu, kv->pool, poison, bytes, &err), &err, "poison the pool");
    free(poison);
    return kv;
}

static uint16_t *pool_of(const lk_gpu_kv *kv, size_t *elems) {
    *elems = (size_t)L * kv->n_pages * kv->n_head_kv * LK_GPU_PAGE * 2 * kv->head_dim;
    uint16_t *h = test_xmalloc(*elems * 2);
    dev_get(h, kv->pool, *elems * 2);
    return h;
}

/* Double reference of RoPE on one head's vector x (D) at position p. */
static void rope_ref(const float *x, double *y, int D, int rope_dim, bool neox, int32_t p, const float *inv) {
    const int half = rope_dim / 2;
    for (int i = 0; i < D; i++) y[i] = x[i];
    for (int i = 0; i < half; i++) {
        const float ang = (float)p * inv[i];
        const double cs = cos((double)ang), sn = sin((double)ang);
        const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        y[a] = x[a] * cs - (double)x[b] * sn;
        y[b] = x[b] * cs + (double)x[a] * sn;
    }
}

/* Magnitude bound of component i after RoPE: |x_i| + |x_partner| (x_i alone past the rotary dims). */
static double rope_mag(const float *x, int i, int rope_dim, bool neox) {
    const int half = rope_dim / 2;
    if (i >= rope_dim) return fabs(x[i]);
    const int partner = neox ? (i < half ? i + half : i - half) : i ^ 1;
    return fabs(x[i]) + fabs(x[partner]);
}

static void check_case(const rs_case *c) {
    char what[160];
    snprintf(what, sizeof what, "n=%d H=%d/%d D=%d rd=%d %s %s s=%g d0=%d", c->n, c->H, c->Hkv, c->D, c->rope_dim,
             c->neox ? "neox" : "norm", c->rot ? "rotated" : "plain", (double)c->q_scale, c->d_lo);
    const int n = c->n, H = c->H, Hkv = c->Hkv, D = c->D, G = H / Hkv, layer = 1;
    const size_t nq = (size_t)n * H * D, nk = (size_t)n * Hkv * D, nrot = (size_t)L * Hkv * D * D;
    loki_error err = {0};
    int32_t d[L * 64];
    for (int l = 0; l < L; l++)
        for (int h = 0; h < Hkv; h++) d[l * Hkv + h] = h == 0 ? c->d_lo : LK_MAX(8, D - 8 * (h - 1));
    float *q = test_random_floats(nq, -2, 2, &g_rng), *k = test_random_floats(nk, -2, 2, &g_rng);
    float *v = test_random_floats(nk, -2, 2, &g_rng);
    float *rot = test_random_floats(nrot, -0.2f, 0.2f, &g_rng), inv[128];
    lk_hparams hp = {.head_dim = D, .rope_dim = c->rope_dim, .rope_style = c->neox ? LK_ROPE_NEOX : LK_ROPE_NORM,
                     .rope_theta = 10000.0f};
    lk_rope_inv_freq(&hp, inv);
    int32_t slots[64], pos[64];
    for (int i = 0; i < n; i++) { /* distinct slots in the 3 reserved pages, any positions */
        slots[i] = (int32_t)((i * 37 + 5) % (3 * LK_GPU_PAGE));
        pos[i] = (int32_t)(test_rand32(&g_rng) % 131072u);
    }
    lk_gpu_kv *kv = make_cache(c, d), *kv_ref = make_cache(c, d);
    int32_t phys[3 * LK_GPU_PAGE];
    lk_gpu_kv_slots(kv, 0, 0, 3 * LK_GPU_PAGE, phys); /* position -> physical slot of sequence 0 */
    int32_t dslots[64];
    for (int i = 0; i < n; i++) dslots[i] = phys[slots[i]];
    dev_bufs b = {dev_put(q, nq * 4), dev_put(k, nk * 4), dev_put(v, nk * 4), NULL,
                  c->rot ? dev_put(rot, nrot * 4) : NULL, dev_put(inv, sizeof inv), dev_put(dslots, (size_t)n * 4),
                  dev_put(pos, (size_t)n * 4)};
    float *poison = test_xmalloc(nq * 4);
    memset(poison, 0xff, nq * 4);
    b.q_out = dev_put(poison, nq * 4);
    free(poison);

    loki_status st = lk_gpu_kv_rope_store(kv, layer, n, H, b.q, b.q_out, b.k, b.v, b.slots, b.pos, b.inv,
                                          c->rope_dim, c->neox, b.rot, c->q_scale, &err);
    if (!st) st = lk_cuda_sync(g_cu, &err);
    CHECKF(st == LOKI_OK, "%s: status %d: %s", what, (int)st, err.msg);
    float *got_q = test_xmalloc(nq * 4), *back = test_xmalloc(nq * 4);
    dev_get(got_q, b.q_out, nq * 4);
    dev_get(back, b.q, nq * 4);
    CHECKF(memcmp(back, q, nq * 4) == 0, "%s: q changed", what);
    dev_get(back, b.k, nk * 4);
    CHECKF(memcmp(back, k, nk * 4) == 0, "%s: k changed", what);
    size_t ne = 0;
    uint16_t *pool = pool_of(kv, &ne);
    size_t bad = 0;
    if (!c->rot) { /* the unfused kernels on a copy: equal bit for bit */
        float *q2 = dev_put(q, nq * 4), *k2 = dev_put(k, nk * 4);
        test_need(lk_cuda_rope(g_cu, q2, n, H, D, b.pos, b.inv, c->rope_dim, c->neox, &err), &err, "rope q");
        test_need(lk_cuda_rope(g_cu, k2, n, Hkv, D, b.pos, b.inv, c->rope_dim, c->neox, &err), &err, "rope k");
        test_need(lk_gpu_kv_store(kv_ref, layer, n, k2, b.v, b.slots, NULL, &err), &err, "store");
        test_need(lk_cuda_scale(g_cu, q2, c->q_scale, (int64_t)nq, &err), &err, "scale");
        test_need(lk_cuda_sync(g_cu, &err), &err, "sync");
        float *want_q = test_xmalloc(nq * 4);
        dev_get(want_q, q2, nq * 4);
        size_t ne2 = 0;
        uint16_t *pool2 = pool_of(kv_ref, &ne2);
        for (size_t i = 0; i < nq; i++)
            if (memcmp(got_q + i, want_q + i, 4) && bad++ < NSHOW)
                CHECKF(false, "%s: q_out[%zu] %.9g, unfused %.9g", what, i, (double)got_q[i], (double)want_q[i]);
        for (size_t i = 0; i < ne; i++)
            if (pool[i] != pool2[i] && bad++ < NSHOW)
                CHECKF(false, "%s: pool element %zu 0x%04x, unfused 0x%04x", what, i, pool[i], pool2[i]);
        free(want_q), free(pool2);
        lk_cuda_dealloc(g_cu, q2), lk_cuda_dealloc(g_cu, k2);
    } else { /* against the double reference; the pool's expected image built on the host */
        uint16_t *want = test_xmalloc(ne * 2);
        double *tolk = test_xmalloc(ne * sizeof *tolk), *wantk = test_xmalloc(ne * sizeof *wantk);
        memset(want, 0xff, ne * 2);
        for (size_t i = 0; i < ne; i++) tolk[i] = -1; /* -1: compare the bits */
        double x[256], worst_q = 0, worst_k = 0;
        for (int r = 0; r < n; r++)
            for (int g = 0; g < Hkv; g++) {
                const float *C = rot + ((size_t)layer * Hkv + g) * D * D;
                const int32_t slot = dslots[r], page = slot / LK_GPU_PAGE, p = slot % LK_GPU_PAGE;
                const size_t seg = (((size_t)layer * kv->n_pages + page) * Hkv + g) * LK_GPU_PAGE * 2 * D;
                const int dd = d[layer * Hkv + g];
                for (int vh = 0; vh <= G; vh++) {
                    const float *src = vh < G ? q + ((size_t)r * H + g * G + vh) * D : k + ((size_t)r * Hkv + g) * D;
                    rope_ref(src, x, D, c->rope_dim, c->neox, pos[r], inv);
                    for (int cc = 0; cc < D; cc++) {
                        double y = 0, mag = 0;
                        for (int i = 0; i < D; i++)
                            y += C[(size_t)cc * D + i] * x[i],
                                mag += fabs(C[(size_t)cc * D + i]) * rope_mag(src, i, c->rope_dim, c->neox);
                        const double tol = (D + 16) * U * mag;
                        if (vh < G) {
                            const size_t qi = ((size_t)r * H + g * G + vh) * D + cc;
                            const double e = fabs(got_q[qi] - c->q_scale * y), t = fabs(c->q_scale) * tol;
                            if (t > 0 && e / t > worst_q) worst_q = e / t;
                            if (!(e <= t) && bad++ < NSHOW)
                                CHECKF(false, "%s: q_out[%zu] %.9g, want %.9g (tol %.3g)", what, qi,
                                       (double)got_q[qi], c->q_scale * y, t);
                        } else {
                            const size_t lo = (size_t)p * dd + cc;
                            const size_t hi = (size_t)LK_GPU_PAGE * dd + (size_t)p * (D - dd) + cc - dd;
                            const size_t ki = seg + (cc < dd ? lo : hi);
                            /* bf16 rounds the f32 y, |y_f| <= |y| + tol */
                            wantk[ki] = y, tolk[ki] = tol * (1 + ldexp(1, -8)) + ldexp(fabs(y), -8);
                        }
                    }
                }
                for (int cc = 0; cc < D; cc++)
                    want[seg + (size_t)LK_GPU_PAGE * D + (size_t)p * D + cc] =
                        lk_f32_to_bf16(v[((size_t)r * Hkv + g) * D + cc]);
            }
        for (size_t i = 0; i < ne; i++) {
            bool ok;
            if (tolk[i] < 0) {
                ok = pool[i] == want[i];
            } else {
                const double e = fabs(lk_bf16_to_f32(pool[i]) - wantk[i]);
                ok = e <= tolk[i];
                if (tolk[i] > 0 && e / tolk[i] > worst_k) worst_k = e / tolk[i];
            }
            if (!ok && bad++ < NSHOW)
                CHECKF(false, "%s: pool element %zu 0x%04x (%.6g), want %s %.6g", what, i, pool[i],
                       (double)lk_bf16_to_f32(pool[i]), tolk[i] < 0 ? "bits" : "about",
                       tolk[i] < 0 ? (double)lk_bf16_to_f32(want[i]) : wantk[i]);
        }
        printf("  worst error of its tolerance: q %.3f, stored keys %.3f (bf16's half ulp)\n", worst_q, worst_k);
        free(want), free(tolk), free(wantk);
    }
    CHECKF(bad == 0, "%s: %zu elements wrong", what, bad);
    printf("  %-60s %s\n", what, bad ? "FAIL" : "ok");
    free(pool), free(got_q), free(back), free(q), free(k), free(v), free(rot);
    lk_cuda_dealloc(g_cu, b.q), lk_cuda_dealloc(g_cu, b.k), lk_cuda_dealloc(g_cu, b.v);
    lk_cuda_dealloc(g_cu, b.q_out), lk_cuda_dealloc(g_cu, b.rot), lk_cuda_dealloc(g_cu, b.inv);
    lk_cuda_dealloc(g_cu, b.slots), lk_cuda_dealloc(g_cu, b.pos);
    lk_gpu_kv_free(kv), lk_gpu_kv_free(kv_ref);
}

/* Shapes the kernel does not take: a clear error, nothing launched. */
static void check_refused(void) {
    CHECK(!lk_gpu_kv_rope_store_fits(64, 4, 256, 256, true)); /* 17 vectors of 256 + 32 rows of C > 48 KiB */
    CHECK(lk_gpu_kv_rope_store_fits(64, 4, 256, 256, false));
    CHECK(!lk_gpu_kv_rope_store_fits(9, 2, 64, 64, false)); /* 9 heads over 2 KV heads */
    CHECK(!lk_gpu_kv_rope_store_fits(8, 8, 128, 130, false));
    CHECK(!lk_gpu_kv_rope_store_fits(0, 4, 128, 128, false)); /* fewer query heads than KV heads */
    lk_gpu_kv *kv = NULL;
    loki_error err = {0};
    test_need(lk_gpu_kv_init(g_cu, &kv, 1, 4, 256, NULL, 1, 1, 1, &err), &err, "lk_gpu_kv_init");
    loki_status st = lk_gpu_kv_rope_store(kv, 0, 1, 64, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 256, 1,
                                          (const float *)kv->pool, 1.0f, &err);
    CHECKF(st == LOKI_ERR_ARG && strstr(err.msg, "not supported"), "refused shape: status %d: %s", (int)st, err.msg);
    lk_gpu_kv_free(kv);
}

int main(void) {
    g_cu = test_gpu_open(&g_rng);
    const rs_case cs[] = {
        {1, 32, 32, 128, 128, false, false, 1.0f, 32},  {1, 32, 32, 128, 128, false, true, 1.0f, 32},
        {16, 32, 8, 128, 128, true, true, 1.0f, 32},    {16, 32, 8, 128, 128, true, false, 1.0f, 128},
        {3, 9, 3, 64, 64, false, true, 1.0f, 16},       {5, 4, 1, 256, 256, true, true, 0.7071f, 64},
        {5, 4, 1, 256, 256, true, false, 0.7071f, 256}, {2, 8, 8, 128, 64, true, true, 1.0f, 40},
        {7, 12, 4, 64, 32, false, true, 1.25f, 8},      {4, 16, 2, 96, 96, false, true, 1.0f, 24},
        {3, 10, 2, 80, 80, true, true, 1.0f, 48},       {2, 2, 2, 16, 16, false, true, 1.0f, 8},
        {2, 2, 2, 16, 16, false, false, 1.0f, 16},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_case(&cs[i]);
    check_refused();
    lk_cuda_free(g_cu);
    return test_finish();
}
