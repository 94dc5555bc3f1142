/*
 * sample_model.c - a sequential C model of the GPU sampler's algorithm
 * (src/cuda/sample.cu, sample_kernels.cuh): orderable keys, the radix select
 * with the warp's digit search (lanes as a loop), the tie rule, the sort,
 * and the finish's arithmetic from key-recovered logits with lk_expf,
 * checked against loki_sampler_sample on the kinds of logits the GPU test
 * uses (and V = 1 .. 262144). It runs without a GPU: it checks the design
 * (which candidates, in which order, which float and double operations), not
 * the CUDA code, which tests/test_cuda_sample.c checks on a GPU.
 *
 *   cmake --build build --target loki
 *   cc -O2 -std=c11 -march=native -Iinclude -Isrc dev/cuda/sample_model.c build/libloki.a -lm -o /tmp/sample_model
 *   /tmp/sample_model [steps]      # prints "0 of N differ" and exits 0 when the model agrees
 */
#include "cuda/sample_expf.h"
#include "loki.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>

typedef unsigned long long u64;
static uint32_t okey(float v) { uint32_t b; memcpy(&b, &v, 4); if (v != v) return 0; if ((b << 1) == 0) b = 0; return (b & 0x80000000u) ? ~b : (b | 0x80000000u); }
static float okey_val(uint32_t u) { uint32_t b = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u; float f; memcpy(&f, &b, 4); return f; }
static u64 ckey(uint32_t u, int32_t i, int idbits) { uint32_t mask = (uint32_t)((1ull << idbits) - 1); return ((u64)u << idbits) | (u64)(mask - (uint32_t)i); }
static uint32_t ckey_u(u64 k, int idbits) { return (uint32_t)(k >> idbits); }
static int32_t ckey_id(u64 k, int idbits) { uint32_t mask = (uint32_t)((1ull << idbits) - 1); return (int32_t)(mask - (uint32_t)(k & mask)); }

typedef struct { uint32_t prefix, krem, eq; } rsel;
static rsel rsel_state(const uint32_t *h, int passes, uint32_t keep) {
    rsel s = {0, keep, 0};
    for (int p = 0; p < passes; p++) {
        uint32_t tot[32], suf[32];
        for (int l = 0; l < 32; l++) { tot[l] = 0; for (int j = 0; j < 8; j++) tot[l] += h[p*256 + l*8 + j]; }
        for (int l = 31; l >= 0; l--) suf[l] = tot[l] + (l < 31 ? suf[l+1] : 0);
        int src = -1; uint32_t digit = 0, krem = 1, eq = 0;
        for (int l = 0; l < 32; l++) {
            uint32_t above = suf[l] - tot[l];
            if (above < s.krem && s.krem <= suf[l]) {
                if (src >= 0) { fprintf(stderr, "two lanes!\n"); exit(2); }
                src = l; uint32_t acc = above;
                for (int j = 7; j >= 0; j--) { uint32_t b = h[p*256+l*8+j]; if (acc + b >= s.krem) { digit = l*8+j; krem = s.krem - acc; eq = b; break; } acc += b; }
            }
        }
        if (src < 0) { fprintf(stderr, "no lane!\n"); exit(2); }
        s.krem = krem; s.eq = eq; s.prefix |= digit << (24 - 8*p);
    }
    return s;
}
static int cmp_desc(const void *a, const void *b) { u64 x = *(const u64*)a, y = *(const u64*)b; return x < y ? 1 : x > y ? -1 : 0; }

typedef struct { loki_sampler_params p; int32_t V; uint64_t rng; int32_t *hist, len, pos; } model;

static float cval(const u64 *keys, int32_t i, int idbits, float maxl, float temp, int q, double sum) {
    float l = okey_val(ckey_u(keys[i], idbits));
    float p = lk_expf((l - maxl) / temp);
    return q ? (float)((double)p / sum) : p;
}
static int32_t chain(const u64 *keys, int idbits, float maxl, float temp, int q, double sum, int32_t n, bool check, double lim, bool strict, double *out) {
    double s = 0;
    for (int32_t i = 0; i < n; i++) { s = s + (double)cval(keys, i, idbits, maxl, temp, q, sum); if (check && (strict ? s > lim : s >= lim)) { *out = s; return i; } }
    *out = s; return n;
}

static int32_t model_sample(model *m, const float *logits) {
    int32_t V = m->V, W = m->p.repeat_last_n;
    float *src = malloc(sizeof(float) * V); memcpy(src, logits, sizeof(float) * V);
    if (m->p.repeat_penalty != 1.0f && W > 0)
        for (int i = 0; i < m->len; i++) { int32_t t = m->hist[i]; if (t < 0 || t >= V) continue; float v = logits[t]; src[t] = v > 0 ? v / m->p.repeat_penalty : v * m->p.repeat_penalty; }
    int idbits = 0; while ((1ull << idbits) < (u64)V) idbits++;
    int32_t tok;
    if (m->p.temp <= 0) {
        u64 best = 0;
        for (int32_t i = 0; i < V; i++) { uint32_t u = (i == 0 && src[i] != src[i]) ? 0xffffffffu : okey(src[i]); u64 k = ((u64)u << 32) | (0xffffffffu - (uint32_t)i); if (k > best) best = k; }
        tok = (int32_t)(0xffffffffu - (uint32_t)best);
        free(src);
        goto emit;
    }
    int32_t keep = m->p.top_k > 0 && m->p.top_k < V ? m->p.top_k : V;
    u64 *keys = malloc(sizeof(u64) * V); int32_t n = 0;
    if (keep <= 2048) {
        uint32_t h[1024] = {0};
        for (int p = 0; p < 4; p++) {
            rsel s = rsel_state(h, p, keep);
            for (int32_t i = 0; i < V; i++) { uint32_t u = okey(src[i]); if (p == 0 || (u >> (32 - 8*p)) == (s.prefix >> (32 - 8*p))) h[p*256 + ((u >> (24 - 8*p)) & 255)]++; }
        }
        rsel s = rsel_state(h, 4, keep);
        bool take_eq = s.eq == s.krem;
        for (int32_t i = V - 1; i >= 0; i--) { uint32_t u = okey(src[i]); if (u > s.prefix || (u == s.prefix && take_eq)) keys[n++] = ckey(u, i, idbits); }
        if (!take_eq) { uint32_t got = 0; for (int32_t i = 0; i < V && got < s.krem; i++) if (okey(src[i]) == s.prefix) keys[n++] = ckey(s.prefix, i, idbits), got++; }
        if (n != keep) { fprintf(stderr, "n %d keep %d\n", n, keep); exit(2); }
        qsort(keys, n, 8, cmp_desc);
    } else {
        for (int32_t i = 0; i < V; i++) keys[i] = ckey(okey(src[i]), i, idbits);
        qsort(keys, V, 8, cmp_desc);
    }
    float maxl = okey_val(ckey_u(keys[0], idbits)), temp = m->p.temp;
    double sum, s;
    chain(keys, idbits, maxl, temp, 0, 0, keep, false, 0, false, &sum);
    int32_t k = keep;
    if (m->p.top_p < 1.0f) { int32_t j = chain(keys, idbits, maxl, temp, 1, sum, k, true, (double)m->p.top_p, false, &s); if (j < k) k = j + 1; }
    if (m->p.min_p > 0.0f) { float th = cval(keys, 0, idbits, maxl, temp, 1, sum) * m->p.min_p; int32_t f = k; for (int32_t i = 1; i < k; i++) if (!(cval(keys, i, idbits, maxl, temp, 1, sum) >= th)) { f = i; break; } k = f; }
    double total; chain(keys, idbits, maxl, temp, 1, sum, k, false, 0, false, &total);
    uint64_t x = m->rng; x ^= x >> 12; x ^= x << 25; x ^= x >> 27; m->rng = x;
    double u = (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0), rr = u * total;
    int32_t j = chain(keys, idbits, maxl, temp, 1, sum, k, true, rr, true, &s);
    tok = ckey_id(keys[j < k ? j : k - 1], idbits);
    free(keys); free(src);
emit:
    return tok;
}
static void model_accept(model *m, int32_t t) { int W = m->p.repeat_last_n; if (W <= 0) return; m->hist[m->pos] = t; m->pos = (m->pos + 1) % W; if (m->len < W) m->len++; }

static uint64_t g = 88172645463325252ull;
static uint64_t r64(void) { g ^= g << 13; g ^= g >> 7; g ^= g << 17; return g; }
static float ru(void) { return (float)((r64() >> 40) * (1.0 / 16777216.0)); }
static void gen(float *x, int32_t V, int kind) {
    switch (kind) {
    case 0: for (int i = 0; i < V; i++) x[i] = -8 + 16 * ru(); break;
    case 1: for (int i = 0; i < V; i++) x[i] = floorf((-8 + 16 * ru()) * 4) / 4; break;
    case 2: for (int i = 0; i < V; i++) x[i] = -INFINITY; for (int j = 0; j < 30; j++) x[r64() % V] = -4 + 8 * ru(); break;
    case 3: for (int i = 0; i < V; i++) x[i] = -4 + 8 * ru(); x[r64() % V] = 12; break;
    case 4: { const float v[6] = {0.0f, -0.0f, 0.5f, -0.5f, 1.0f, -1.0f}; for (int i = 0; i < V; i++) x[i] = v[r64() % 6]; break; }
    case 5: for (int i = 0; i < V; i++) x[i] = -INFINITY; break;
    case 6: for (int i = 0; i < V; i++) x[i] = -8 + 16 * ru(); x[r64() % V] = INFINITY; break;
    case 7: for (int i = 0; i < V; i++) x[i] = (float)(r64() % 5) - 2.0f; break; /* 5 values */
    default: for (int i = 0; i < V; i++) x[i] = -30 + 40 * ru() * ru(); break;
    }
}
int main(int argc, char **argv) {
    int32_t Vs[] = {1, 2, 7, 1000, 4097, 32000, 262144};
    struct { float temp; int k; float tp, mp, rp; int ln; } ps[] = {
        {0, 40, .95f, .05f, 1, 64}, {0, 40, .95f, .05f, 1.3f, 64}, {.8f, 40, .95f, .05f, 1, 64}, {1.5f, 0, .9f, 0, 1, 64},
        {.8f, 1, .95f, .05f, 1, 64}, {1, 0, 1, .1f, 1, 64}, {.8f, 40, .95f, .05f, 1.3f, 64}, {1.2f, 300, .99f, 0, .7f, 16},
        {2, 2048, 1, 0, 1, 0}, {1, 3000, .5f, .02f, 1, 8}, {1, 0, 1, 0, 1, 64}, {0.3f, 2, 0.3f, 0.5f, 1.1f, 3}};
    int steps = argc > 1 ? atoi(argv[1]) : 30;
    long bad = 0, total = 0;
    for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
        int32_t V = Vs[vi];
        int st = V >= 262144 ? steps / 5 + 1 : steps;
        loki_sampler_params p = loki_sampler_default_params();
        p.temp = ps[pi].temp; p.top_k = ps[pi].k; p.top_p = ps[pi].tp; p.min_p = ps[pi].mp; p.repeat_penalty = ps[pi].rp; p.repeat_last_n = ps[pi].ln; p.seed = r64();
        loki_sampler *cs; loki_error err = {0}; if (loki_sampler_init(&p, V, &cs, &err)) { printf("init %s\n", err.msg); return 1; }
        model m = {p, V, p.seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull, malloc(sizeof(int32_t) * (p.repeat_last_n + 1)), 0, 0};
        if (!m.rng) m.rng = 1;
        for (int i = 0; i < 70; i++) { int32_t t = (int32_t)(r64() % (V < 50 ? V : 50)); loki_sampler_accept(cs, t); model_accept(&m, t); }
        float *x = malloc(sizeof(float) * V);
        long b = 0;
        for (int s = 0; s < st; s++) {
            gen(x, V, (int)((s + pi) % 9));
            int32_t a = loki_sampler_sample(cs, x), c = model_sample(&m, x);
            total++;
            if (a != c) { if (b++ < 3) printf("V %d set %zu step %d kind %d: cpu %d model %d\n", V, pi, s, (int)((s + pi) % 9), a, c); }
            loki_sampler_accept(cs, a); model_accept(&m, a);
        }
        bad += b;
        free(x); free(m.hist); loki_sampler_free(cs);
    }
    printf("%ld of %ld differ\n", bad, total);
    return bad != 0;
}
