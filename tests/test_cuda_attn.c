/*
 * test_cuda_attn.c - every GPU decode-attention kernel (src/cuda, interface
 * cuda/lk_cuda.h) against the CPU reference (src/attn) on fresh random data.
 *
 * A case fills a paged bf16 GPU cache (ragged sequences, pages out of order)
 * through lk_gpu_kv_store, reads it back (checks the rotation and the bf16
 * rounding), puts the SAME read-back numbers into one CPU lk_kv_cache per
 * sequence, then runs one decode step per layer on both sides (H2O: several
 * steps, one new token per sequence each). Per (sequence, query head) row:
 *   selection: the GPU's set against a reference built here in double from
 *     the approximate scores and the budget policy (attn/budget.h, forced
 *     tokens as run.c's select_tokens); they may differ only by ties: tokens
 *     scored within 1e-4*max|score| + 1e-6 of the k-th score;
 *   output: equal sets -> the CPU's lk_attn_run output; sets that differ by
 *     ties (or whose k-th score is within float noise of the next, where the
 *     CPU's own float selection could go either way) -> attention in double
 *     over the GPU's own selection.
 * Queries, raw keys and values are bf16-exact, so a kernel that rounds q to
 * bf16 sees the same numbers as the CPU. A few "needle" keys (first and last
 * token, both sides of the first page boundary, the middle) score far above
 * the rest, so a kernel that drops such a token fails the output check.
 * Steps that run as the fused Loki kernel run again timed
 * (lk_gpu_attn_set_timing): the same output bits, and every block's phase
 * stamps written and in order (lk_gpu_attn_fused_phases); the compared
 * steps run untimed, as the engine runs them.
 * Exit 77 (skipped) without the CUDA backend or a usable GPU.
 * LOKI_TEST_SEED=N changes every case's seed (printed with the case).
 */
#include "test.h"

#include "attn/attn.h"
#include "attn/budget.h"
#include "calib/pca.h"
#include "cpu/cpu.h"
#include "cuda/lk_cuda.h"
#include "cuda_attn_cases.h"

#include <stdarg.h>

enum { P = LK_GPU_PAGE, MAXB = LK_TEST_ATTN_MAXB, MAXL = 2, NSHOW = 6 };

static lk_cuda *g_cu;
static lk_cpu *g_cpu;
static uint64_t g_seed = 20261202;


/* Everything a case builds. Row (pos, kh) of a (cap, Hkv, D) buffer is at (pos*Hkv + kh)*D. */
typedef struct world {
    spec s;
    loki_attn_params p;
    int G, steps;
    int32_t cap[MAXB], len[MAXB], maxcap, tot; /* tokens: capacity, current; max, sum of caps */
    bool pcam, shared;                         /* PCA method; one selection per KV head */
    loki_pca *pca;
    int32_t *dsplit;                           /* (L, Hkv) */
    lk_gpu_kv *kv, *kv2;                       /* the cache; vs_dense: a plain one, same (rotated) keys */
    lk_gpu_attn *ga, *gad;                     /* the method on kv; dense on kv2 */
    void *rot_dev, *k_dev, *v_dev, *slots_dev, *q_dev, *out_dev;
    float *kraw[MAXL][MAXB], *vraw[MAXL][MAXB]; /* (cap, Hkv, D) raw keys/values */
    float *krb[MAXL][MAXB], *vrb[MAXL][MAXB];   /* (cap, Hkv, D) read back from the GPU */
    lk_kv_cache ckv[MAXB];
    lk_attn *ca[MAXB];
    float *q;                                  /* (L, B, H, D) queries of the step */
    float *out, *outc, *outd;                  /* (B, H, D) GPU, CPU, GPU dense */
    double *acc;                               /* (L, B, H, maxcap) the test's H2O accumulators */
    uint8_t *ev;                               /* (L, B, H, maxcap) its evictions */
    bool *synced;                              /* (L, B, H) CPU H2O state still the GPU's */
    double *x, *tmp, *wts;                     /* (maxcap) scratch, one allocation at x */
    uint8_t *in, *gin;                         /* (maxcap) reference set (2 = forced), GPU set; at in */
    int32_t *rest, *pos, *pos0, *slots;        /* (maxcap) at rest; slots (tot) */
    float *kbuf, *vbuf;                        /* (tot, Hkv, D) rows to store */
    uint64_t rng;
} world;

/* Rows of a case: how each was checked, failures (the first NSHOW printed). */
typedef struct tally {
    int cpu, dbl, all, ties, xties, bad; /* xties: rows with an exact tie not broken to the lower position */
    int steps, fused;                    /* layer steps; of them, run as the fused kernel (no splits) */
    double err, tol; /* largest output error and its tolerance */
} tally;

/* Print the reason and exit 77 (CTest: skipped). */
static void skip(const char *why, const char *detail) {
    fprintf(stderr, "SKIP: %s%s\n", why, detail);
    exit(77);
}

/* Zeroed host memory; the test cannot go on without it. */
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) fprintf(stderr, "out of host memory (%zu x %zu)\n", n, size), exit(1);
    return p;
}

/* A failure: counted in t (a row; only the first NSHOW of a case are
 * printed) or, with t NULL, a failed setup step, always printed. Returns false. */
static bool fail(tally *t, const char *fmt, ...) {
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (!t || t->bad++ < NSHOW) test_check(false, t ? "row" : "setup", __FILE__, __LINE__, m);
    return false;
}


/* n bf16-exact uniform values in [lo, hi). */
static void fill_bf16(float *x, size_t n, float lo, float hi, uint64_t *rng) {
    test_fill_random(x, n, lo, hi, rng);
    for (size_t i = 0; i < n; i++) x[i] = test_bf16_round(x[i]);
}

/* Both bases of the PCA: a random orthogonal (D, D) per (layer, KV head),
 * rows = axes (Gram-Schmidt in double), eigenvalues descending. */
static void random_pca(loki_pca *pca, uint64_t *rng) {
    const int D = pca->head_dim;
    double *c = xcalloc((size_t)D * D, sizeof *c);
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < pca->n_layer; l++)
            for (int h = 0; h < pca->n_head_kv; h++) {
                float *C = (float *)lk_pca_components(pca, b, l, h), *e = (float *)lk_pca_eigenvalues(pca, b, l, h);
                test_fill_random(C, (size_t)D * D, -1, 1, rng);
                for (int j = 0; j < D; j++) {
                    double *cj = c + (size_t)j * D, nrm = 0;
                    for (int t = 0; t < D; t++) cj[t] = C[j * D + t];
                    for (int pass = 0; pass < 2; pass++) /* twice: orthogonal to double precision */
                        for (int i = 0; i < j; i++) {
                            double dp = 0;
                            for (int t = 0; t < D; t++) dp += cj[t] * c[(size_t)i * D + t];
                            for (int t = 0; t < D; t++) cj[t] -= dp * c[(size_t)i * D + t];
                        }
                    for (int t = 0; t < D; t++) nrm += cj[t] * cj[t];
                    for (int t = 0; t < D; t++) C[j * D + t] = (float)(cj[t] /= sqrt(nrm));
                    e[j] = (float)(4.0 * exp(-4.0 * j / D));
                }
            }
    free(c);
}

/* Rotation matrix (D, D) of (layer, kh) as the GPU and CPU use it, or NULL. */
static const float *rot_of(const world *w, int layer, int kh) {
    return w->pcam ? lk_pca_components(w->pca, w->p.basis, layer, kh) : NULL;
}

/* Raw keys and values of positions pos0..pos0+n-1 of (layer, seq b), bf16-exact:
 * values uniform in [-1, 1); keys uniform in the rotated basis with scale
 * 1.5 exp(-2j/D) along axis j (PCA methods: the first d components carry
 * most of the score), mapped back by C^T; needles (pos0 = 0 only) get keys
 * along the sum of the group's queries, mean score 4 + 0.4 i over the group. */
static void draw_kv(world *w, int layer, int b, int32_t pos0, int32_t n) {
    const int Hkv = w->s.Hkv, D = w->s.D, G = w->G, H = w->s.H;
    const int32_t S = pos0 + n, needles[5] = {0, P - 1, P, S / 2, S - 1};
    float kr[256];
    fill_bf16(w->vraw[layer][b] + (size_t)pos0 * Hkv * D, (size_t)n * Hkv * D, -1, 1, &w->rng);
    for (int32_t s = pos0; s < S; s++)
        for (int kh = 0; kh < Hkv; kh++) {
            test_fill_random(kr, (size_t)D, -1, 1, &w->rng);
            for (int j = 0; j < D; j++) kr[j] *= w->pcam ? 1.5f * expf(-2.0f * j / D) : 1.0f;
            for (int j = 0; j < D && w->s.flat; j++) kr[j] = 0.5f * cosf((float)j); /* the same key everywhere */
            for (int i = 0; i < 5 && pos0 == 0; i++) {
                if (needles[i] != s) continue;
                const float *q = w->q + (((size_t)layer * w->s.B + b) * H + (size_t)kh * G) * D; /* (G, D) */
                double u[256] = {0}, nrm = 0;
                for (int g = 0; g < G; g++)
                    for (int j = 0; j < D; j++) u[j] += q[(size_t)g * D + j];
                for (int j = 0; j < D; j++) nrm += u[j] * u[j];
                double beta = (4.0 + 0.4 * i) * G * sqrt((double)D) / (nrm > 0 ? nrm : 1.0);
                for (int j = 0; j < D; j++) kr[j] = (float)(beta * u[j]);
                break;
            }
            float *k = w->kraw[layer][b] + ((size_t)s * Hkv + kh) * D;
            const float *C = rot_of(w, layer, kh);
            for (int i = 0; i < D; i++) {
                double v = C ? 0.0 : kr[i];
                for (int j = 0; C && j < D; j++) v += (double)C[j * D + i] * kr[j]; /* k = C^T k' */
                k[i] = test_bf16_round((float)v);
            }
        }
}

/* Store positions pos0[b]..pos0[b]+cnt[b]-1 of every sequence of a layer,
 * rows k[b], v[b] (cap, Hkv, D), into the GPU cache kv in one
 * lk_gpu_kv_store (rot: device rotation or NULL). False on an error (reported). */
static bool gpu_store(world *w, lk_gpu_kv *kv, int layer, const int32_t *pos0, const int32_t *cnt, float *const *k,
                      float *const *v, const void *rot) {
    const size_t row = (size_t)w->s.Hkv * w->s.D;
    loki_error err = {0};
    int32_t N = 0;
    for (int b = 0; b < w->s.B; b++) {
        memcpy(w->kbuf + N * row, k[b] + pos0[b] * row, sizeof(float) * cnt[b] * row);
        memcpy(w->vbuf + N * row, v[b] + pos0[b] * row, sizeof(float) * cnt[b] * row);
        lk_gpu_kv_slots(kv, b, pos0[b], cnt[b], w->slots + N);
        N += cnt[b];
    }
    if (lk_cuda_upload(g_cu, w->k_dev, w->kbuf, sizeof(float) * N * row, &err) ||
        lk_cuda_upload(g_cu, w->v_dev, w->vbuf, sizeof(float) * N * row, &err) ||
        lk_cuda_upload(g_cu, w->slots_dev, w->slots, sizeof(int32_t) * N, &err) ||
        lk_gpu_kv_store(kv, layer, N, w->k_dev, w->v_dev, w->slots_dev, rot, &err) || lk_cuda_sync(g_cu, &err))
        return fail(NULL, "%s: store of %d rows (layer %d): %s", w->s.name, N, layer, err.msg);
    return true;
}

/* Store new rows of a layer on the GPU (gpu_store of the raw rows), read
 * them back and check them against the rotation in double (keys within bf16
 * rounding: 2^-8 of the row's max |k'|; values exact, being bf16 already),
 * then put the read-back rows into the CPU caches and (vs_dense) the plain
 * GPU cache. False on an error (reported). */
static bool store_rows(world *w, int layer, const int32_t *pos0, const int32_t *cnt) {
    const int Hkv = w->s.Hkv, D = w->s.D;
    const size_t row = (size_t)Hkv * D;
    loki_error err = {0};
    if (!gpu_store(w, w->kv, layer, pos0, cnt, w->kraw[layer], w->vraw[layer], w->rot_dev)) return false;
    double kratio = 0, verr = 0; /* worst key error / its tolerance; value error */
    int nbad = 0, wb = 0, wpos = 0, wkh = 0;
    for (int b = 0; b < w->s.B; b++) {
        float *kr = w->kbuf, *vr = w->vbuf; /* (cnt, D) read back; gpu_store is done with them */
        for (int kh = 0; kh < Hkv; kh++) {
            if (lk_gpu_kv_read(w->kv, layer, b, kh, pos0[b], cnt[b], kr, vr, &err))
                return fail(NULL, "%s: lk_gpu_kv_read layer %d seq %d head %d: %s", w->s.name, layer, b, kh, err.msg);
            const float *C = rot_of(w, layer, kh);
            for (int32_t i = 0; i < cnt[b]; i++) {
                const size_t o = ((size_t)(pos0[b] + i) * Hkv + kh) * D;
                const float *k = w->kraw[layer][b] + o, *kg = kr + (size_t)i * D, *vg = vr + (size_t)i * D;
                double ref[256], mx = 0, e = 0;
                for (int j = 0; j < D; j++) {
                    ref[j] = C ? 0.0 : k[j];
                    for (int t = 0; C && t < D; t++) ref[j] += (double)C[j * D + t] * k[t];
                    mx = fmax(mx, fabs(ref[j]));
                }
                for (int j = 0; j < D; j++) {
                    e = fmax(e, isnan(kg[j]) ? INFINITY : fabs(kg[j] - ref[j]));
                    verr = fmax(verr, isnan(vg[j]) ? INFINITY : fabs(vg[j] - w->vraw[layer][b][o + j]));
                }
                const double r = e / (ldexp(mx, -8) + 1e-6);
                nbad += r > 1.0;
                if (r > kratio) kratio = r, wb = b, wpos = pos0[b] + i, wkh = kh;
                memcpy(w->krb[layer][b] + o, kg, sizeof(float) * D);
                memcpy(w->vrb[layer][b] + o, vg, sizeof(float) * D);
            }
        }
        lk_kv_store(&w->ckv[b], layer, pos0[b], w->krb[layer][b] + pos0[b] * row, w->vrb[layer][b] + pos0[b] * row,
                    cnt[b]);
    }
    CHECKF(verr == 0, "%s: stored values layer %d: error %.3g (bf16-exact input)", w->s.name, layer, verr);
    if (w->kv2 && !gpu_store(w, w->kv2, layer, pos0, cnt, w->krb[layer], w->vrb[layer], NULL)) return false;
    CHECKF(kratio <= 1.0, "%s: %d stored keys of layer %d off by more than bf16 rounding (2^-8 max|k'|); worst "
           "seq %d pos %d head %d at %.3g x the tolerance", w->s.name, nbad, layer, wb, wpos, wkh, kratio);
    return true;
}

/* Build a case: PCA (loki/pcaattn), split dims, the GPU cache with pages
 * reserved so that physical pages are neither in order nor contiguous, the
 * GPU attention state(s), the CPU caches and attention states. False on an
 * error (reported). */
static bool world_build(world *w) {
    spec *s = &w->s;
    loki_error err = {0};
    const int L = s->L, Hkv = s->Hkv, D = s->D, B = s->B;
    w->G = s->H / Hkv;
    w->steps = s->steps > 1 ? s->steps : 1;
    w->p = loki_attn_default_params();
    w->p.method = s->method, w->p.kf = s->kf > 0 ? s->kf : 0.25f, w->p.d = s->d, w->p.k_fixed = s->k_fixed;
    w->p.k_min = s->k_min, w->p.dense_below = s->dense_below, w->p.sinks = s->sinks, w->p.recent = s->recent;
    w->p.gqa_shared = s->gqa_shared, w->p.gqa_max = s->gqa_max;
    w->pcam = lk_attn_uses_pca(&w->p);
    w->shared = (s->gqa_shared || s->gqa_max) && s->method != LOKI_ATTN_DENSE && s->method != LOKI_ATTN_PCAATTN;
    int32_t pages = 0, maxp = 0;
    for (int b = 0; b < B; b++) {
        w->cap[b] = s->S[b] + w->steps - 1, w->len[b] = s->S[b], w->tot += w->cap[b];
        w->maxcap = LK_MAX(w->maxcap, w->cap[b]);
        pages += (w->cap[b] + P - 1) / P, maxp = LK_MAX(maxp, (w->cap[b] + P - 1) / P);
    }
    if (w->pcam) {
        if (lk_pca_init(&w->pca, L, Hkv, D, &err)) return fail(NULL, "%s: %s", s->name, err.msg);
        random_pca(w->pca, &w->rng);
        w->p.pca = w->pca;
    }
    w->dsplit = xcalloc((size_t)L * Hkv, sizeof(int32_t));
    lk_gpu_split_dims(&w->p, L, Hkv, D, w->dsplit);
    for (int i = 0; i < L * Hkv; i++)
        CHECKF(w->dsplit[i] == (w->pcam ? s->d : D), "%s: split dim %d, want %d", s->name, w->dsplit[i],
               w->pcam ? s->d : D);
    const size_t row = (size_t)Hkv * D, nq = (size_t)B * s->H * D;
    if (lk_cuda_alloc(g_cu, &w->k_dev, sizeof(float) * w->tot * row, "test keys", &err) ||
        lk_cuda_alloc(g_cu, &w->v_dev, sizeof(float) * w->tot * row, "test values", &err) ||
        lk_cuda_alloc(g_cu, &w->slots_dev, sizeof(int32_t) * w->tot, "test slots", &err) ||
        lk_cuda_alloc(g_cu, &w->q_dev, sizeof(float) * nq, "test queries", &err) ||
        lk_cuda_alloc(g_cu, &w->out_dev, sizeof(float) * nq, "test output", &err) ||
        (w->pcam && (lk_cuda_alloc(g_cu, &w->rot_dev, sizeof(float) * L * row * D, "test rotation", &err) ||
                     lk_cuda_upload(g_cu, w->rot_dev, w->pca->components[w->p.basis], sizeof(float) * L * row * D,
                                    &err))) ||
        lk_gpu_kv_init(g_cu, &w->kv, L, Hkv, D, w->dsplit, pages + 4, B, maxp + 1, &err))
        return fail(NULL, "%s: GPU setup: %s", s->name, err.msg);
    /* scramble the free stack, then one page per sequence per round, the order reversed every other round */
    if (lk_gpu_kv_reserve(w->kv, B - 1, LK_MIN(3, maxp + 1) * P, &err))
        return fail(NULL, "%s: reserve: %s", s->name, err.msg);
    lk_gpu_kv_release(w->kv, B - 1);
    for (int32_t r = 1; r <= maxp; r++)
        for (int i = 0; i < B; i++) {
            int b = r % 2 ? i : B - 1 - i;
            if (lk_gpu_kv_reserve(w->kv, b, LK_MIN(w->cap[b], r * P), &err))
                return fail(NULL, "%s: reserve seq %d for %d tokens: %s", s->name, b, LK_MIN(w->cap[b], r * P),
                            err.msg);
        }
    for (int b = 0; b < B; b++)
        if (lk_gpu_kv_set_len(w->kv, b, w->len[b], &err))
            return fail(NULL, "%s: set_len seq %d: %s", s->name, b, err.msg);
    /* every slot of every sequence in the pool, none shared */
    uint8_t *used = xcalloc((size_t)(pages + 4) * P, 1);
    int32_t *sl = xcalloc((size_t)w->maxcap, sizeof(int32_t)), bad = 0;
    for (int b = 0; b < B; b++) {
        lk_gpu_kv_slots(w->kv, b, 0, w->cap[b], sl);
        for (int32_t i = 0; i < w->cap[b]; i++)
            if (sl[i] < 0 || sl[i] >= (pages + 4) * P || used[sl[i]]++) bad++;
    }
    CHECKF(bad == 0, "%s: %d slots out of the pool or shared", s->name, bad);
    free(used), free(sl);
    if (lk_gpu_attn_init(&w->ga, w->kv, s->H, B, &w->p, &err))
        return fail(NULL, "%s: lk_gpu_attn_init: %s", s->name, err.msg);
    lk_gpu_attn_set_splits(w->ga, s->splits);
    lk_gpu_attn_set_fused(w->ga, s->fused ? s->fused : LOKI_CUDA_FUSED_MHA);
    lk_gpu_attn_set_fused_blocks(w->ga, s->fused_blocks);
    loki_attn_params pd = loki_attn_default_params();
    for (int b = 0; b < B && s->vs_dense; b++)
        if ((!w->kv2 && lk_gpu_kv_init(g_cu, &w->kv2, L, Hkv, D, NULL, pages + 4, B, maxp + 1, &err)) ||
            lk_gpu_kv_reserve(w->kv2, b, w->cap[b], &err) || lk_gpu_kv_set_len(w->kv2, b, w->len[b], &err) ||
            (b == B - 1 && lk_gpu_attn_init(&w->gad, w->kv2, s->H, B, &pd, &err)))
            return fail(NULL, "%s: plain cache and dense attention: %s", s->name, err.msg);
    /* host side */
    lk_hparams hp = {.n_layer = L, .n_head = s->H, .n_head_kv = Hkv, .head_dim = D};
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < L; l++) {
            w->kraw[l][b] = xcalloc(w->cap[b] * row, sizeof(float)), w->vraw[l][b] = xcalloc(w->cap[b] * row, 4);
            w->krb[l][b] = xcalloc(w->cap[b] * row, sizeof(float)), w->vrb[l][b] = xcalloc(w->cap[b] * row, 4);
        }
        lk_kv_cache *c = &w->ckv[b];
        /* f32: the GPU's read-back numbers are compared as they are */
        if (lk_kv_init(c, L, Hkv, D, w->cap[b], LOKI_KV_F32, LOKI_KV_F32, &err) ||
            lk_attn_init(&w->ca[b], &hp, &w->p, w->cap[b], 1, lk_pool_size(lk_cpu_pool(g_cpu)), c, &err))
            return fail(NULL, "%s: CPU setup: %s", s->name, err.msg);
    }
    const size_t units = (size_t)L * B * s->H;
    w->q = xcalloc(L * nq, sizeof(float));
    w->out = xcalloc(nq, sizeof(float)), w->outc = xcalloc(nq, sizeof(float)), w->outd = xcalloc(nq, sizeof(float));
    w->acc = xcalloc(units * w->maxcap, sizeof(double)), w->ev = xcalloc(units * w->maxcap, 1);
    w->synced = xcalloc(units, sizeof(bool));
    for (size_t i = 0; i < units; i++) w->synced[i] = true;
    w->x = xcalloc(3 * (size_t)w->maxcap, sizeof(double)), w->tmp = w->x + w->maxcap, w->wts = w->tmp + w->maxcap;
    w->in = xcalloc(2 * (size_t)w->maxcap, 1), w->gin = w->in + w->maxcap;
    w->rest = xcalloc(3 * (size_t)w->maxcap, 4), w->pos = w->rest + w->maxcap, w->pos0 = w->pos + w->maxcap;
    w->slots = xcalloc(w->tot, 4);
    w->kbuf = xcalloc(w->tot * row, sizeof(float)), w->vbuf = xcalloc(w->tot * row, sizeof(float));
    return true;
}

/* Free everything world_build made (any part of it). */
static void world_free(world *w) {
    if (w->ga) lk_gpu_attn_free(w->ga);
    if (w->gad) lk_gpu_attn_free(w->gad);
    if (w->kv) lk_gpu_kv_free(w->kv);
    if (w->kv2) lk_gpu_kv_free(w->kv2);
    void *dev[] = {w->rot_dev, w->k_dev, w->v_dev, w->slots_dev, w->q_dev, w->out_dev};
    for (int i = 0; i < 6; i++)
        if (dev[i]) lk_cuda_dealloc(g_cu, dev[i]);
    for (int b = 0; b < w->s.B; b++) {
        for (int l = 0; l < w->s.L; l++)
            free(w->kraw[l][b]), free(w->vraw[l][b]), free(w->krb[l][b]), free(w->vrb[l][b]);
        lk_attn_free(w->ca[b]);
        lk_kv_free(&w->ckv[b]);
    }
    if (w->pca) loki_pca_free(w->pca);
    free(w->dsplit), free(w->q), free(w->out), free(w->outc), free(w->outd), free(w->acc), free(w->ev);
    free(w->synced), free(w->x), free(w->in), free(w->rest), free(w->slots), free(w->kbuf), free(w->vbuf);
}

/* One GPU decode step of a layer into out (B, H, D) host: the device output
 * is filled with NaN first, so any element left unwritten shows. Returns
 * false on an error or an unwritten element (reported). */
static bool gpu_decode(world *w, lk_gpu_attn *ga, int layer, float *out, const char *what) {
    const size_t nq = (size_t)w->s.B * w->s.H * w->s.D;
    loki_error err = {0};
    for (size_t i = 0; i < nq; i++) out[i] = NAN;
    if (lk_cuda_upload(g_cu, w->q_dev, w->q + layer * nq, sizeof(float) * nq, &err) ||
        lk_cuda_upload(g_cu, w->out_dev, out, sizeof(float) * nq, &err) ||
        lk_gpu_attn_decode(ga, layer, w->s.B, w->q_dev, w->out_dev, &err) || lk_cuda_sync(g_cu, &err) ||
        lk_cuda_download(g_cu, out, w->out_dev, sizeof(float) * nq, &err))
        return fail(NULL, "%s: %s decode layer %d: %s", w->s.name, what, layer, err.msg);
    size_t nan = 0, first = 0;
    for (size_t i = nq; i-- > 0;)
        if (isnan(out[i])) nan++, first = i;
    CHECKF(nan == 0, "%s: %s layer %d: %zu of %zu outputs not written (NaN), first at seq %zu head %zu", w->s.name,
           what, layer, nan, nq, first / ((size_t)w->s.H * w->s.D), first / w->s.D % w->s.H);
    return nan == 0;
}

/* Selection scores x (S) of a sharing unit (g heads from h0 of seq b): the
 * approximate scores q.k'/sqrt(D) over the first d components (exact-topk:
 * all D) in double; summed over the heads (gqa_shared) or the largest
 * head-relative score (gqa_max). H2O: the test's accumulators. */
static void sel_scores(world *w, int layer, int b, int h0, int g, int32_t S, double *x) {
    const int D = w->s.D, Hkv = w->s.Hkv, kh = h0 / w->G;
    const int d = w->pcam ? w->dsplit[layer * Hkv + kh] : D;
    if (w->p.method == LOKI_ATTN_H2O) {
        memcpy(x, w->acc + (((size_t)layer * w->s.B + b) * w->s.H + h0) * w->maxcap, sizeof(double) * S);
        return;
    }
    for (int32_t s = 0; s < S; s++) x[s] = g > 1 && w->p.gqa_max ? -INFINITY : 0.0;
    for (int i = 0; i < g; i++) {
        const float *q = w->q + (((size_t)layer * w->s.B + b) * w->s.H + h0 + i) * D;
        double m = -INFINITY, *a = g > 1 ? w->tmp : x;
        for (int32_t s = 0; s < S; s++) {
            const float *k = w->krb[layer][b] + ((size_t)s * Hkv + kh) * D;
            double dot = 0;
            for (int j = 0; j < d; j++) dot += (double)q[j] * k[j];
            a[s] = dot / sqrt((double)D), m = fmax(m, a[s]);
        }
        for (int32_t s = 0; s < S && g > 1; s++) x[s] = w->p.gqa_max ? fmax(x[s], a[s] - m) : x[s] + a[s];
    }
}

/* Descending key (ctx: the keys by position), then ascending position
 * (ties go to the lower position); for qsort_r. */
static int by_key_desc(const void *a, const void *b, void *ctx) {
    const double *key = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return key[i] > key[j] ? -1 : key[i] < key[j] ? 1 : (i > j) - (i < j);
}

/* Reference selection of a row with budget k, as run.c's select_tokens:
 * forced tokens (the first `sinks`, then the last lk_attn_recent, not
 * evicted, at most k), then the top k-nf other candidates by x. in (S): 2
 * forced, 1 chosen, 0 not. *thr: the lowest chosen score (INFINITY when the
 * forced tokens fill k); *gap: its margin over the best unchosen one. */
static void ref_select(world *w, const double *x, const uint8_t *ev, int32_t S, int32_t k, double *thr, double *gap) {
    const loki_attn_params *p = &w->p;
    int32_t nf = 0, nr = 0, recent = lk_attn_recent(p, k);
    uint8_t *in = w->in;
    memset(in, 0, (size_t)S);
    for (int32_t s = 0; s < S && s < p->sinks && nf < k; s++)
        if (!ev || !ev[s]) in[s] = 2, nf++;
    for (int32_t s = S - 1; s >= S - recent && s >= 0 && nf < k; s--)
        if (!in[s] && (!ev || !ev[s])) in[s] = 2, nf++;
    for (int32_t s = 0; s < S; s++)
        if (!in[s] && (!ev || !ev[s])) w->rest[nr++] = s;
    const int32_t kk = LK_MIN(k - nf, nr);
    qsort_r(w->rest, (size_t)nr, sizeof(int32_t), by_key_desc, (void *)x);
    for (int32_t j = 0; j < kk; j++) in[w->rest[j]] = 1;
    *thr = kk > 0 ? x[w->rest[kk - 1]] : INFINITY;
    *gap = kk > 0 && kk < nr ? x[w->rest[kk - 1]] - x[w->rest[kk]] : INFINITY;
}

/* Attention in double of query q (D) over positions pos (n) of (layer, seq b,
 * KV head kh): softmax of q.k'/sqrt(D) (all D components), weights into wts (n), output into out (D). */
static void attend_double(world *w, int layer, int b, int kh, const float *q, const int32_t *pos, int32_t n,
                          double *wts, double *out) {
    const int D = w->s.D, Hkv = w->s.Hkv;
    double m = -INFINITY, z = 0;
    for (int32_t j = 0; j < n; j++) {
        const float *k = w->krb[layer][b] + ((size_t)pos[j] * Hkv + kh) * D;
        double dot = 0;
        for (int t = 0; t < D; t++) dot += (double)q[t] * k[t];
        wts[j] = dot / sqrt((double)D), m = fmax(m, wts[j]);
    }
    for (int32_t j = 0; j < n; j++) z += (wts[j] = exp(wts[j] - m));
    for (int t = 0; t < D; t++) out[t] = 0;
    for (int32_t j = 0; j < n; j++) {
        const float *v = w->vrb[layer][b] + ((size_t)pos[j] * Hkv + kh) * D;
        wts[j] /= z;
        for (int t = 0; t < D; t++) out[t] += wts[j] * v[t];
    }
}

/* Check one sharing unit (g query heads from h0, sequence b) after a decode
 * step: each head's GPU selection against the reference, its output against
 * the CPU (or, see the top, double over the GPU's selection); H2O: then
 * advance the test's accumulators and evictions along the GPU's selection.
 * Output tolerance 2e-3 * max(1, max|ref|): both sides read identical bf16
 * keys/values and bf16-exact queries, so what differs is f32 rounding (sum
 * order over up to 4097 terms, ~1e-6 relative each, exp implementations of
 * a few ulp) and at most a bf16 rounding of the softmax weights (2^-9
 * relative, if the kernel multiplies P.V on tensor cores), which largely
 * averages out; a dropped needle moves the output by ~1e-2 or more. */
static void check_unit(world *w, int layer, int b, int h0, int g, tally *t) {
    const loki_attn_params *p = &w->p;
    const int D = w->s.D, H = w->s.H, kh = h0 / w->G;
    const int32_t S = w->len[b];
    const size_t unit = ((size_t)layer * w->s.B + b) * H + h0;
    uint8_t *ev = p->method == LOKI_ATTN_H2O ? w->ev + unit * w->maxcap : NULL;
    loki_error err = {0};
    int32_t C = 0;
    for (int32_t s = 0; s < S; s++) C += !ev || !ev[s];
    const int32_t k = lk_attn_budget(p, S);
    const bool all = p->method == LOKI_ATTN_DENSE || p->method == LOKI_ATTN_PCAATTN || lk_attn_all(p, S, C, k);
    double thr = INFINITY, gap = INFINITY, mx = 0;
    if (all)
        for (int32_t s = 0; s < S; s++) w->in[s] = !ev || !ev[s];
    else {
        sel_scores(w, layer, b, h0, g, S, w->x);
        ref_select(w, w->x, ev, S, k, &thr, &gap);
        for (int32_t s = 0; s < S; s++) mx = fmax(mx, fabs(w->x[s]));
    }
    const double tol_sel = 1e-4 * mx + 1e-6, near = 1e-5 * mx + 1e-6;
    bool synced_after = w->synced[unit];
    int32_t n0 = 0;
    for (int i = 0; i < g; i++) {
        const int h = h0 + i;
        int32_t n = -1;
        if (lk_gpu_attn_selection(w->ga, b, h, w->pos, &n, &err)) {
            fail(t, "%s: layer %d seq %d head %d: lk_gpu_attn_selection: %s", w->s.name, layer, b, h, err.msg);
            continue;
        }
        bool ok = n >= 0 && n <= S;
        for (int32_t j = 0; ok && j < n; j++)
            ok = w->pos[j] >= 0 && w->pos[j] < S && (j == 0 || w->pos[j] > w->pos[j - 1]);
        if (!ok) {
            fail(t, "%s: layer %d seq %d (S=%d) head %d: selection of %d not ascending positions in [0, S)",
                 w->s.name, layer, b, S, h, n);
            continue;
        }
        if (i == 0) memcpy(w->pos0, w->pos, sizeof(int32_t) * (size_t)n), n0 = n;
        else if (n != n0 || memcmp(w->pos, w->pos0, sizeof(int32_t) * (size_t)n))
            fail(t, "%s: layer %d seq %d head %d: shared selection differs from head %d's", w->s.name, layer, b,
                 h, h0);
        int32_t diff = 0, hard = 0, nref = 0, xtie = 0;
        double worst = 0;
        for (int32_t j = 0; j < n; j++) w->gin[w->pos[j]] = 1;
        for (int32_t s = 0; s < S; s++) {
            nref += w->in[s] != 0;
            if ((w->in[s] != 0) == (w->gin[s] != 0)) continue;
            diff++;
            if (all || w->in[s] == 2 || (ev && ev[s])) hard++;
            else worst = fmax(worst, fabs(w->x[s] - thr)), xtie += w->x[s] == thr;
        }
        for (int32_t j = 0; j < n; j++) w->gin[w->pos[j]] = 0;
        if (hard || worst > tol_sel)
            fail(t, "%s: layer %d seq %d (S=%d, k=%d%s) head %d: selection of %d vs reference %d: %d tokens differ, "
                 "%d of them forced/evicted/in an attend-all row, |score - k-th| up to %.3g > tie tolerance %.3g",
                 w->s.name, layer, b, S, k, all ? ", all" : "", h, n, nref, diff, hard, worst, tol_sel);
        t->ties += diff > 0 && !hard && worst <= tol_sel, t->xties += xtie > 0;
        /* output */
        const bool near_tie = gap > 0 && gap <= near; /* exact ties go to the lower position on both sides */
        const bool use_cpu = p->method == LOKI_ATTN_PCAATTN || (diff == 0 && !near_tie && w->synced[unit]);
        const float *q = w->q + (((size_t)layer * w->s.B + b) * H + h) * D, *o = w->out + ((size_t)b * H + h) * D;
        double ref[256], e = 0, m = 0;
        if (use_cpu)
            for (int j = 0; j < D; j++) ref[j] = w->outc[((size_t)b * H + h) * D + j];
        else
            attend_double(w, layer, b, kh, q, w->pos, n, w->wts, ref);
        for (int j = 0; j < D; j++) e = fmax(e, fabs(o[j] - ref[j])), m = fmax(m, fabs(ref[j]));
        const double tol = 2e-3 * fmax(1.0, m);
        if (e / tol >= t->err / (t->tol > 0 ? t->tol : 1)) t->err = e, t->tol = tol;
        if (!(e <= tol))
            fail(t, "%s: layer %d seq %d (S=%d) head %d: output error %.3g > %.3g (max |ref| %.3g) vs %s",
                 w->s.name, layer, b, S, h, e, tol, m, use_cpu ? "CPU lk_attn_run" : "double over GPU selection");
        use_cpu ? t->cpu++ : t->dbl++;
        t->all += all;
        synced_after &= use_cpu;
    }
    if (p->method != LOKI_ATTN_H2O) return;
    /* H2O: accumulate the weights of the GPU's selection (head h0's), evict the other candidates */
    double *acc = w->acc + unit * w->maxcap, o[256];
    for (int i = 0; i < g; i++) {
        const float *q = w->q + (((size_t)layer * w->s.B + b) * H + h0 + i) * D;
        attend_double(w, layer, b, kh, q, w->pos0, n0, w->wts, o);
        for (int32_t j = 0; j < n0; j++) acc[w->pos0[j]] += w->wts[j];
    }
    if (!all) {
        for (int32_t j = 0; j < n0; j++) w->gin[w->pos0[j]] = 1;
        for (int32_t s = 0; s < S; s++) ev[s] |= !w->gin[s];
        for (int32_t j = 0; j < n0; j++) w->gin[w->pos0[j]] = 0;
    }
    w->synced[unit] = synced_after;
}

/* One decode step of a layer on both sides, every row compared. */
static void step_layer(world *w, int layer, tally *t) {
    const int B = w->s.B, H = w->s.H, D = w->s.D;
    const size_t nq = (size_t)B * H * D;
    if (!gpu_decode(w, w->ga, layer, w->out, loki_attn_method_name(w->p.method))) {
        t->bad++;
        return;
    }
    t->steps++, t->fused += lk_gpu_attn_splits(w->ga) == 0;
    if (lk_gpu_attn_splits(w->ga) == 0) { /* the fused step again, timed: the same bits, and every block
                                            stamped its phases in order */
        float *again = malloc(sizeof(float) * nq);
        lk_gpu_attn_set_timing(w->ga, true);
        if (again && gpu_decode(w, w->ga, layer, again, "loki, timed")) {
            lk_fused_phases ph;
            loki_error err = {0};
            const loki_status st = lk_gpu_attn_fused_phases(w->ga, &ph, &err);
            bool mean_le_max = true; /* a phase's mean over blocks is at most its longest block */
            for (int p = 0; p < 4; p++) mean_le_max = mean_le_max && ph.us[p] <= ph.max_us[p] * (1 + 1e-9);
            CHECKF(st == LOKI_OK && ph.blocks > 0 && ph.span_us > 0 && mean_le_max, "%s: layer %d: fused phases: %s",
                   w->s.name, layer, st ? err.msg : "no blocks, no span or a mean above its max");
            CHECKF(memcmp(again, w->out, sizeof(float) * nq) == 0, "%s: layer %d: the timed fused step changed the "
                   "output", w->s.name, layer);
        }
        lk_gpu_attn_set_timing(w->ga, false);
        free(again);
    }
    for (int b = 0; b < B; b++)
        lk_attn_run(w->ca[b], lk_cpu_pool(g_cpu), &w->ckv[b], layer, w->q + (layer * nq) + (size_t)b * H * D,
                    w->outc + (size_t)b * H * D, 1, w->len[b] - 1);
    if (w->gad && gpu_decode(w, w->gad, layer, w->outd, "dense")) { /* kf = 1 is dense attention (same numbers) */
        double e = 0, m = 0;
        for (size_t i = 0; i < nq; i++) e = fmax(e, fabs(w->out[i] - w->outd[i])), m = fmax(m, fabs(w->outd[i]));
        CHECKF(e <= 1e-4 * m, "%s: layer %d: GPU kf=1 vs GPU dense: max error %.3g, max |dense| %.3g", w->s.name,
               layer, e, m);
    }
    const int g = w->shared ? w->G : 1;
    for (int b = 0; b < B; b++)
        for (int h0 = 0; h0 < H; h0 += g) check_unit(w, layer, b, h0, g, t);
}

/* Run one case: build, fill, decode step(s), compare, free. */
static void run_case(int ci, const spec *s) {
    world w = {.s = *s, .rng = g_seed + 7919u * (uint64_t)(ci + 1)};
    tally t = {0};
    printf("case %2d %-34s seed %llu: L=%d H=%d Hkv=%d D=%d S={%d,%d,%d} ", ci, s->name, (unsigned long long)w.rng,
           s->L, s->H, s->Hkv, s->D, s->S[0], s->S[1], s->S[2]);
    fflush(stdout);
    if (!world_build(&w)) goto done;
    const size_t nq = (size_t)s->B * s->H * s->D;
    loki_error err = {0};
    for (int step = 0; step < w.steps; step++) {
        int32_t pos0[MAXB] = {0}, cnt[MAXB];
        fill_bf16(w.q, (size_t)s->L * nq, -3, 3, &w.rng); /* queries first: needle keys follow them */
        for (int b = 0; b < s->B; b++) {
            if (step > 0) pos0[b] = w.len[b]++;
            cnt[b] = step > 0 ? 1 : w.len[b];
            if (step > 0 && (lk_gpu_kv_set_len(w.kv, b, w.len[b], &err) ||
                             (w.kv2 && lk_gpu_kv_set_len(w.kv2, b, w.len[b], &err)))) {
                fail(NULL, "%s: set_len seq %d to %d: %s", s->name, b, w.len[b], err.msg);
                goto done;
            }
        }
        for (int l = 0; l < s->L; l++) {
            for (int b = 0; b < s->B; b++) draw_kv(&w, l, b, pos0[b], cnt[b]);
            if (!store_rows(&w, l, pos0, cnt)) goto done;
        }
        for (int l = 0; l < s->L; l++) step_layer(&w, l, &t);
    }
    printf("rows vs CPU %d, vs double %d, attend-all %d, tie-differing sets %d (exact ties not to the lower "
           "position %d); worst output error %.3g (tol %.3g); fused steps %d of %d\n", t.cpu, t.dbl, t.all, t.ties,
           t.xties, t.err, t.tol, t.fused, t.steps);
    /* the fused kernel takes Loki's selections as the mode says: per-head ones
     * of one query head per KV head (MHA), of grouped heads (PER_HEAD), the
     * summed shared one too (ALL; groups that divide the attend's row groups) */
    const loki_cuda_fused fm = s->fused ? s->fused : LOKI_CUDA_FUSED_MHA;
    const bool shared_ok = fm == LOKI_CUDA_FUSED_ALL && !s->gqa_max && 16 % w.G == 0;
    const bool may_fuse = s->method == LOKI_ATTN_LOKI && fm != LOKI_CUDA_FUSED_OFF &&
                          (w.shared ? shared_ok : w.G == 1 || fm >= LOKI_CUDA_FUSED_PER_HEAD);
    CHECKF(may_fuse || t.fused == 0, "%s: %d of %d steps ran as the fused kernel, which must not take them", s->name,
           t.fused, t.steps);
    /* (every such case fits one wave of clusters on an H200; a GPU with far
     * fewer SMs, e.g. a MIG slice, could leave the 33000-token ones to the stages) */
    CHECKF(!(may_fuse && fm >= LOKI_CUDA_FUSED_PER_HEAD) || t.fused > 0,
           "%s: no step ran as the fused kernel (%d steps)", s->name, t.steps);
    if (s->flat)
        CHECKF(t.xties == 0, "%s: %d rows broke exact ties away from the lower positions", s->name, t.xties);
    if (s->method == LOKI_ATTN_H2O) {
        int diverged = 0;
        for (size_t i = 0; i < (size_t)s->L * s->B * s->H; i++) diverged += !w.synced[i];
        printf("    h2o: %d units whose CPU state may have gone another way at a near tie (compared in double "
               "since)\n", diverged);
    }
    CHECKF(t.bad == 0 && t.cpu + t.dbl > 0, "%s: %d failures (the first %d shown above), %d rows checked", s->name,
           t.bad, NSHOW, t.cpu + t.dbl);
done:
    if (t.cpu + t.dbl == 0) printf("\n");
    world_free(&w);
}

/* A cache far larger than the GPU (512 GiB) must fail with NOMEM and a message giving the size. */
static void test_nomem(void) {
    loki_error err = {0};
    lk_gpu_kv *kv = NULL; /* stays NULL on failure (loki.h: outputs untouched) */
    loki_status st = lk_gpu_kv_init(g_cu, &kv, 2, 8, 128, NULL, 1 << 20, 1, 16, &err);
    printf("512 GiB cache: status %d: %s\n", (int)st, err.msg);
    CHECKF(st == LOKI_ERR_NOMEM, "lk_gpu_kv_init of 512 GiB: status %d, want LOKI_ERR_NOMEM", (int)st);
    CHECKF(strstr(err.msg, "GiB") || strstr(err.msg, "GB") || strstr(err.msg, "MiB") || strstr(err.msg, "bytes"),
           "the message gives no size: \"%s\"", err.msg);
    CHECK(kv == NULL);
    if (kv) lk_gpu_kv_free(kv);
}

/* evict_kf is not supported on the GPU: lk_gpu_attn_init says so (on a loki cache). */
static void test_evict_unsupported(void) {
    world w = {.s = {"evict_kf", 1, 4, 2, 64, 1, {64}, .method = LOKI_ATTN_LOKI, .d = 16}, .rng = g_seed + 1};
    if (world_build(&w)) {
        lk_gpu_attn *ga = NULL;
        loki_attn_params p = w.p;
        loki_error err = {0};
        p.evict_kf = 0.5f;
        loki_status st = lk_gpu_attn_init(&ga, w.kv, w.s.H, 1, &p, &err);
        printf("evict_kf on the GPU: status %d: %s\n", (int)st, err.msg);
        CHECKF(st == LOKI_ERR_UNSUPPORTED && ga == NULL, "lk_gpu_attn_init with evict_kf: status %d", (int)st);
        if (ga) lk_gpu_attn_free(ga);
    }
    world_free(&w);
}

int main(void) {
    if (!lk_cuda_built()) skip("this loki was built without the CUDA backend (LOKI_CUDA=OFF or no nvcc)", "");
    loki_error err = {0};
    if (lk_cuda_init(&g_cu, 0, &err) != LOKI_OK) skip("no usable GPU: ", err.msg);
    printf("GPU: %s\n", lk_cuda_describe(g_cu));
    if (getenv("LOKI_TEST_SEED")) g_seed = strtoull(getenv("LOKI_TEST_SEED"), NULL, 10);
    if (lk_cpu_init(&g_cpu, LK_MIN(lk_n_cpus(), 8), 1, 16 * 128, &err)) {
        CHECKF(false, "lk_cpu_init: %s", err.msg);
        lk_cuda_free(g_cu);
        return test_finish();
    }
    test_nomem(); /* first: the cases after it show that the failure left the context usable */
    for (int i = 0; i < lk_test_attn_n_cases; i++) run_case(i, &lk_test_attn_cases[i]);
    test_evict_unsupported();
    lk_cpu_free(g_cpu);
    lk_cuda_free(g_cu);
    return test_finish();
}
