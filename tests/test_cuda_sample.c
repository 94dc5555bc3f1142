/*
 * test_cuda_sample.c - sampling on the GPU (cuda/lk_cuda_sample.h,
 * src/cuda/sample.cu) against the CPU sampler (src/sample/sampler.c): the
 * same token, bit for bit, step after step.
 *
 * First the device's copy of glibc's expf (sample_expf.h) against the host's
 * expf and the host's copy, on ~23M inputs: the sampler's exactness rests on
 * it. Then, for vocabularies of 1000, 32000 and 262144 and parameter sets
 * covering every path (greedy, the top-k path with both block sorts, the
 * full sort; top-p, min-p, repetition penalties above and below 1, stop
 * tokens), several rows with their own seeds and prompts (accepted through
 * lk_cuda_sampler_accept, some longer than the window) sample 50 steps of
 * fresh random logits: uniform, quantised (many ties, at the top-k
 * threshold and across chunks), masked (-inf everywhere but 30 tokens),
 * peaked, signed zeros, all -inf, one +inf. Each step poisons the output
 * tokens, samples on both sides and compares every row's token; the CPU side
 * accepts the token unless it is a stop token, as the CLI. At the end each
 * row's generator state and history ring must equal the CPU's (a mirror of
 * loki_sampler_accept and the xorshift; the CPU sampler is opaque). Some
 * cases run the sampling as a captured CUDA graph, replayed each step.
 * Last, the argument checks and per-call times of graph replays (printed).
 *
 * Exit 77 (skipped) without the CUDA backend or a usable GPU.
 * LOKI_TEST_SEED=N changes the random inputs.
 */
#include "test.h"

#include "cuda/lk_cuda.h"
#include "cuda/lk_cuda_sample.h"
#include "cuda/sample_expf.h"
#include "loki.h"

#define STEPS 50
#define NSHOW 5     /* mismatches printed per case */
#define N_KINDS 7   /* kinds of logit rows (gen_logits) */
#define STOP_TOK 7  /* the stop token of the cases that set one */

static lk_cuda *g_cu;
static uint64_t g_rng = 20260711;

/* ------------------------------------------------------------ helpers */


static void *dev_alloc(size_t bytes) {
    loki_error err = {0};
    void *d = NULL;
    test_need(lk_cuda_alloc(g_cu, &d, bytes, "test buffer", &err), &err, "lk_cuda_alloc");
    return d;
}

static void dev_put(void *d, const void *h, size_t bytes) {
    loki_error err = {0};
    test_need(lk_cuda_upload(g_cu, d, h, bytes, &err), &err, "lk_cuda_upload");
}

static void dev_get(void *h, const void *d, size_t bytes) {
    loki_error err = {0};
    test_need(lk_cuda_download(g_cu, h, d, bytes, &err), &err, "lk_cuda_download");
}

/* Device int32 buffer (n) filled with 0xabababab: not a token. */
static void poison(int32_t *d, int n) {
    int32_t *h = test_xmalloc((size_t)n * 4);
    memset(h, 0xab, (size_t)n * 4);
    dev_put(d, h, (size_t)n * 4);
    free(h);
}

/* An API call's status: OK expected; prints the message otherwise. */
static bool ok_msg(loki_status st, const loki_error *err, const char *what) {
    CHECKF(st == LOKI_OK, "%s: status %d: %s", what, (int)st, err->msg);
    return st == LOKI_OK;
}

static uint64_t rnd64(void) {
    uint64_t s = g_rng;
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return g_rng = s;
}

static float rnd_unit(void) { return (float)((rnd64() >> 40) * (1.0 / 16777216.0)); }

static bool same_float(float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4), memcpy(&y, &b, 4);
    return x == y || (isnan(a) && isnan(b));
}

/* ------------------------------------------------------------ expf */

/* The device's lk_expf against the host's lk_expf (the copy compiled for
 * the GPU) and the host's expf against the host's lk_expf (the libm the CPU
 * sampler calls is the one copied), on every 97th float of [-110, 90] and
 * the special values. */
static void check_expf(void) {
    const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u,
                                 0x00000001u, 0x80000001u, 0x807fffffu, 0xc2cff1b4u, 0xc2cff1b5u, 0xc2ce8ed0u,
                                 0xc2ce8ecfu, 0x42b17217u, 0x42b17218u, 0xc2b00000u, 0x42b00000u};
    const uint32_t neg_hi = 0xc2dc0000u, pos_hi = 0x42b40000u; /* -110, 90 */
    const size_t ns = sizeof specials / sizeof specials[0];
    size_t n = ns + (neg_hi - 0x80000000u) / 97 + 1 + pos_hi / 97 + 1, k = 0;
    float *x = test_xmalloc(n * 4), *y = test_xmalloc(n * 4);
    for (size_t i = 0; i < ns; i++) memcpy(&x[k++], &specials[i], 4);
    for (uint32_t b = 0x80000000u; b <= neg_hi; b += 97) memcpy(&x[k++], &b, 4);
    for (uint32_t b = 0; b <= pos_hi; b += 97) memcpy(&x[k++], &b, 4);
    n = k;
    float *dx = dev_alloc(n * 4), *dy = dev_alloc(n * 4);
    dev_put(dx, x, n * 4);
    memset(y, 0xff, n * 4);
    dev_put(dy, y, n * 4);
    loki_error err = {0};
    CHECKF(lk_cuda_sample_expf(g_cu, dy, dx, (int64_t)n, &err) == LOKI_OK && lk_cuda_sync(g_cu, &err) == LOKI_OK,
           "lk_cuda_sample_expf: %s", err.msg);
    dev_get(y, dy, n * 4);
    size_t bad_dev = 0, bad_host = 0, first_dev = n, first_host = n;
    for (size_t i = 0; i < n; i++) {
        const float port = lk_expf(x[i]), host = expf(x[i]);
        if (!same_float(y[i], port) && bad_dev++ == 0) first_dev = i;
        if (!same_float(host, port) && bad_host++ == 0) first_host = i;
    }
    CHECKF(bad_dev == 0, "device lk_expf differs from the host's copy at %zu of %zu inputs (first: x = %a, device %a, "
           "host copy %a)", bad_dev, n, bad_dev ? x[first_dev] : 0.0, bad_dev ? y[first_dev] : 0.0,
           bad_dev ? lk_expf(x[first_dev]) : 0.0);
    CHECKF(bad_host == 0, "this host's expf is not the glibc FMA expf that sample_expf.h copies: %zu of %zu inputs "
           "differ (first: x = %a, expf %a, copy %a); the CPU sampler can then pick other tokens than the GPU at "
           "rare boundaries (docs/GPU.md)", bad_host, n, bad_host ? x[first_host] : 0.0,
           bad_host ? expf(x[first_host]) : 0.0, bad_host ? lk_expf(x[first_host]) : 0.0);
    printf("  expf: %zu inputs, device vs copy %zu differ, host libm vs copy %zu differ\n", n, bad_dev, bad_host);
    lk_cuda_dealloc(g_cu, dx), lk_cuda_dealloc(g_cu, dy);
    free(x), free(y);
}

/* ------------------------------------------------------------ logits */

/* One row (V) of logits of `kind`: 0 uniform in [-8, 8); 1 the same
 * rounded to 1/4 (64 values: ties everywhere); 2 -inf but for 30 tokens; 3
 * uniform in [-4, 4) with one token at 12 (STOP_TOK every third time); 4
 * each one of +0, -0, +-0.5, +-1; 5 all -inf; 6 uniform with one +inf. */
static void gen_logits(float *x, int32_t V, int kind) {
    switch (kind) {
    case 0: for (int32_t i = 0; i < V; i++) x[i] = -8.0f + 16.0f * rnd_unit(); break;
    case 1: for (int32_t i = 0; i < V; i++) x[i] = floorf((-8.0f + 16.0f * rnd_unit()) * 4.0f) / 4.0f; break;
    case 2:
        for (int32_t i = 0; i < V; i++) x[i] = -INFINITY;
        for (int j = 0; j < 30; j++) x[rnd64() % (uint64_t)V] = -4.0f + 8.0f * rnd_unit();
        break;
    case 3:
        for (int32_t i = 0; i < V; i++) x[i] = -4.0f + 8.0f * rnd_unit();
        x[rnd64() % 3 == 0 ? STOP_TOK : (int32_t)(rnd64() % (uint64_t)V)] = 12.0f;
        break;
    case 4: {
        const float v[6] = {0.0f, -0.0f, 0.5f, -0.5f, 1.0f, -1.0f};
        for (int32_t i = 0; i < V; i++) x[i] = v[rnd64() % 6];
        break;
    }
    case 5: for (int32_t i = 0; i < V; i++) x[i] = -INFINITY; break;
    default:
        for (int32_t i = 0; i < V; i++) x[i] = -8.0f + 16.0f * rnd_unit();
        x[rnd64() % (uint64_t)V] = INFINITY;
        break;
    }
}

/* ------------------------------------------------------------ cases */

typedef struct pset {
    const char *name;
    float temp;
    int32_t top_k;
    float top_p, min_p, rp;
    int32_t last_n;
    bool stop; /* STOP_TOK is a stop token */
} pset;

static const pset k_sets[] = {
    {"greedy", 0.0f, 40, 0.95f, 0.05f, 1.0f, 64, false},
    {"greedy, repeat_penalty 1.3, stop", 0.0f, 40, 0.95f, 0.05f, 1.3f, 64, true},
    {"default", 0.8f, 40, 0.95f, 0.05f, 1.0f, 64, false},
    {"temp 1.5, top_k 0, top_p 0.9", 1.5f, 0, 0.9f, 0.0f, 1.0f, 64, false},
    {"top_k 1", 0.8f, 1, 0.95f, 0.05f, 1.0f, 64, false},
    {"min_p 0.1 only", 1.0f, 0, 1.0f, 0.1f, 1.0f, 64, false},
    {"repeat_penalty 1.3, stop", 0.8f, 40, 0.95f, 0.05f, 1.3f, 64, true},
    {"top_k 300, top_p 0.99, repeat_penalty 0.7 over 16", 1.2f, 300, 0.99f, 0.0f, 0.7f, 16, false},
    {"top_k 2048, temp 2, no history", 2.0f, 2048, 1.0f, 0.0f, 1.0f, 0, false},
    {"top_k 3000, top_p 0.5, min_p 0.02, window 8", 1.0f, 3000, 0.5f, 0.02f, 1.0f, 8, false},
    {"temp 1, nothing cut", 1.0f, 0, 1.0f, 0.0f, 1.0f, 64, false},
};

/* What the CPU sampler's state must be: a mirror of loki_sampler_accept's
 * ring and of its xorshift64* (advanced once per sample at temp > 0). */
typedef struct mirror {
    uint64_t rng;
    int32_t *ring, len, pos, W;
} mirror;

static void mirror_accept(mirror *m, int32_t tok) {
    if (m->W <= 0) return;
    m->ring[m->pos] = tok;
    m->pos = (m->pos + 1) % m->W;
    if (m->len < m->W) m->len++;
}

static void mirror_step(mirror *m) {
    uint64_t x = m->rng;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    m->rng = x;
}

/* One parameter set on V-wide rows: rows CPU samplers and one GPU sampler
 * (max_rows = rows + 1: a call need not use them all), seeds and prompts per
 * row, STEPS steps; graph: the sample call is captured once and replayed. */
static void run_case(const pset *ps, int32_t V, int rows, bool graph) {
    loki_error err = {0};
    loki_sampler_params p = loki_sampler_default_params();
    p.temp = ps->temp, p.top_k = ps->top_k, p.top_p = ps->top_p, p.min_p = ps->min_p;
    p.repeat_penalty = ps->rp, p.repeat_last_n = ps->last_n, p.seed = rnd64();
    lk_cuda_sampler *gs = NULL;
    if (!ok_msg(lk_cuda_sampler_init(g_cu, &p, V, rows + 1, &gs, &err), &err, ps->name)) return;
    char what[160];
    snprintf(what, sizeof what, "V=%d rows=%d %s [%s%s]", V, rows, ps->name, lk_cuda_sampler_path(gs),
             graph ? ", graph" : "");
    loki_sampler **cs = test_xmalloc(sizeof *cs * (size_t)rows);
    mirror *mr = test_xmalloc(sizeof *mr * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        loki_sampler_params pr = p;
        pr.seed = rnd64();
        test_need(loki_sampler_init(&pr, V, &cs[r], &err), &err, "loki_sampler_init");
        test_need(lk_cuda_sampler_reset(gs, r, pr.seed, &err), &err, "lk_cuda_sampler_reset");
        mr[r] = (mirror){pr.seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull, NULL, 0, 0, p.repeat_last_n};
        if (!mr[r].rng) mr[r].rng = 1;
        mr[r].ring = test_xmalloc(sizeof(int32_t) * (size_t)(p.repeat_last_n + 1));
        const int32_t n_prompt = (int32_t)((int[]){0, 5, 100, 64, 63, 200}[r % 6]); /* around the window */
        int32_t *prompt = test_xmalloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
        for (int32_t i = 0; i < n_prompt; i++) { /* some repeated, some out of range (ignored by the penalty) */
            prompt[i] = i % 9 == 8 ? V + 3 : (int32_t)(rnd64() % (uint64_t)(i % 2 || V < 50 ? V : 50));
            loki_sampler_accept(cs[r], prompt[i]);
            mirror_accept(&mr[r], prompt[i]);
        }
        test_need(lk_cuda_sampler_accept(gs, r, prompt, n_prompt, &err), &err, "lk_cuda_sampler_accept");
        free(prompt);
    }
    const int32_t stop = STOP_TOK;
    test_need(lk_cuda_sampler_set_stop(gs, ps->stop ? &stop : NULL, ps->stop ? 1 : 0, &err), &err, "set_stop");
    const size_t RV = (size_t)rows * V;
    float *logits = test_xmalloc(RV * 4), *d_logits = dev_alloc(RV * 4);
    int32_t *d_tok = dev_alloc((size_t)rows * 4), *tok = test_xmalloc((size_t)rows * 4);
    lk_cuda_graph *g = NULL;
    if (graph) {
        test_need(lk_cuda_capture_begin(g_cu, &err), &err, "capture_begin");
        const loki_status st = lk_cuda_sample(gs, d_logits, 0, rows, d_tok, &err);
        lk_cuda_graph *tmp = NULL;
        const loki_status st2 = lk_cuda_capture_end(g_cu, &tmp, &err);
        CHECKF(st == LOKI_OK && st2 == LOKI_OK, "%s: capture: %s", what, err.msg);
        if (st != LOKI_OK || st2 != LOKI_OK) graph = false, lk_cuda_graph_free(tmp);
        g = tmp;
    }
    long bad = 0, n_cmp = 0, n_stop = 0;
    for (int step = 0; step < STEPS; step++) {
        for (int r = 0; r < rows; r++) gen_logits(logits + (size_t)r * V, V, (r + step) % N_KINDS);
        dev_put(d_logits, logits, RV * 4);
        poison(d_tok, rows);
        /* every third step without a graph samples rows 1.. only (row0 = 1: a
         * context's sequence s samples its own row); row 0 must stay untouched */
        const int r0 = !graph && rows > 1 && step % 3 == 2 ? 1 : 0;
        loki_status st;
        if (graph) {
            float ms = 0;
            st = lk_cuda_graph_run(g_cu, g, 1, &ms, &err);
        } else {
            st = lk_cuda_sample(gs, d_logits + (size_t)r0 * V, r0, rows - r0, d_tok + r0, &err);
            if (st == LOKI_OK) st = lk_cuda_sync(g_cu, &err);
        }
        if (!ok_msg(st, &err, what)) break;
        dev_get(tok, d_tok, (size_t)rows * 4);
        if (r0 && tok[0] != (int32_t)0xabababab && bad++ < NSHOW)
            fprintf(stderr, "  %s: step %d: row 0 written (%d) by a call for rows 1..\n", what, step, tok[0]);
        for (int r = r0; r < rows; r++) {
            const int32_t want = loki_sampler_sample(cs[r], logits + (size_t)r * V);
            if (p.temp > 0.0f) mirror_step(&mr[r]);
            if (!(ps->stop && want == STOP_TOK)) loki_sampler_accept(cs[r], want), mirror_accept(&mr[r], want);
            else n_stop++;
            n_cmp++;
            if (tok[r] != want && bad++ < NSHOW)
                fprintf(stderr, "  %s: step %d row %d (logits kind %d): GPU %d, CPU %d\n", what, step, r,
                        (r + step) % N_KINDS, tok[r], want);
        }
    }
    CHECKF(bad == 0, "%s: %ld of %ld tokens differ", what, bad, n_cmp);
    long bad_state = 0;
    int32_t *ring = test_xmalloc(sizeof(int32_t) * (size_t)(p.repeat_last_n + 1));
    for (int r = 0; r < rows; r++) {
        uint64_t rng = 0;
        int32_t len = -1, pos = -1;
        test_need(lk_cuda_sampler_state(gs, r, &rng, ring, &len, &pos, &err), &err, "lk_cuda_sampler_state");
        bool ok = rng == mr[r].rng && len == mr[r].len && pos == mr[r].pos;
        for (int32_t i = 0; ok && i < len; i++) ok = ring[i] == mr[r].ring[i];
        if (!ok && bad_state++ < NSHOW)
            fprintf(stderr, "  %s: row %d state: rng %016llx len %d pos %d, CPU %016llx len %d pos %d\n", what, r,
                    (unsigned long long)rng, len, pos, (unsigned long long)mr[r].rng, mr[r].len, mr[r].pos);
    }
    CHECKF(bad_state == 0, "%s: %ld of %d rows end in another state than the CPU's", what, bad_state, rows);
    printf("  %-78s %s (%ld tokens, %ld stops)\n", what, bad || bad_state ? "FAIL" : "equal", n_cmp, n_stop);
    free(ring);
    lk_cuda_graph_free(g);
    for (int r = 0; r < rows; r++) loki_sampler_free(cs[r]), free(mr[r].ring);
    free(cs), free(mr), free(logits), free(tok);
    lk_cuda_dealloc(g_cu, d_logits), lk_cuda_dealloc(g_cu, d_tok);
    lk_cuda_sampler_free(gs);
}

/* ------------------------------------------------------ argument checks */

static void check_args(void) {
    loki_error err = {0};
    lk_cuda_sampler *s = NULL;
    loki_sampler_params p = loki_sampler_default_params();
    struct {
        const char *what;
        loki_sampler_params p;
        int32_t V, rows;
    } bad[] = {
        {"top_p 0", p, 1000, 1}, {"min_p 2", p, 1000, 1}, {"repeat_penalty 0", p, 1000, 1},
        {"repeat_last_n -1", p, 1000, 1}, {"n_vocab 0", p, 0, 1}, {"max_rows 0", p, 1000, 0},
    };
    bad[0].p.top_p = 0.0f, bad[1].p.min_p = 2.0f, bad[2].p.repeat_penalty = 0.0f, bad[3].p.repeat_last_n = -1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const loki_status st = lk_cuda_sampler_init(g_cu, &bad[i].p, bad[i].V, bad[i].rows, &s, &err);
        CHECKF(st == LOKI_ERR_ARG && s == NULL, "init with %s: status %d", bad[i].what, (int)st);
    }
    if (!ok_msg(lk_cuda_sampler_init(g_cu, &p, 1000, 2, &s, &err), &err, "init")) return;
    int32_t *d_tok = dev_alloc(16);
    float *d_x = dev_alloc(3 * 1000 * 4);
    const int32_t stops[9] = {0};
    CHECK(lk_cuda_sample(s, d_x, 0, 3, d_tok, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sample(s, d_x, 1, 2, d_tok, &err) == LOKI_ERR_ARG); /* rows 1..2 of 2 */
    CHECK(lk_cuda_sample(s, d_x, -1, 1, d_tok, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sample(s, NULL, 0, 1, d_tok, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sample(s, d_x, 0, 0, d_tok, &err) == LOKI_OK);
    CHECK(lk_cuda_sampler_reset(s, 2, 1, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sampler_accept(s, -1, stops, 1, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sampler_accept(s, 0, NULL, 3, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sampler_accept(s, 0, NULL, 0, &err) == LOKI_OK);
    CHECK(lk_cuda_sampler_set_stop(s, stops, 9, &err) == LOKI_ERR_ARG);
    CHECK(lk_cuda_sync(g_cu, &err) == LOKI_OK);
    lk_cuda_dealloc(g_cu, d_tok), lk_cuda_dealloc(g_cu, d_x);
    lk_cuda_sampler_free(s);
}

/* ------------------------------------------------------------ timing */

/* GPU time per lk_cuda_sample (graph replays, 20 after 3 warm-ups) for a
 * parameter set on rows rows of V: printed, not checked. */
static void time_case(const pset *ps, int32_t V, int rows) {
    loki_error err = {0};
    loki_sampler_params p = loki_sampler_default_params();
    p.temp = ps->temp, p.top_k = ps->top_k, p.top_p = ps->top_p, p.min_p = ps->min_p;
    p.repeat_penalty = ps->rp, p.repeat_last_n = ps->last_n;
    lk_cuda_sampler *gs = NULL;
    if (!ok_msg(lk_cuda_sampler_init(g_cu, &p, V, rows, &gs, &err), &err, ps->name)) return;
    const size_t RV = (size_t)rows * V;
    float *logits = test_xmalloc(RV * 4), *d_logits = dev_alloc(RV * 4);
    int32_t *d_tok = dev_alloc((size_t)rows * 4), prompt[64];
    for (int r = 0; r < rows; r++) gen_logits(logits + (size_t)r * V, V, 0);
    for (int i = 0; i < 64; i++) prompt[i] = (int32_t)(rnd64() % (uint64_t)V);
    for (int r = 0; r < rows; r++) test_need(lk_cuda_sampler_accept(gs, r, prompt, 64, &err), &err, "accept");
    dev_put(d_logits, logits, RV * 4);
    lk_cuda_graph *g = NULL;
    float ms = 0;
    test_need(lk_cuda_capture_begin(g_cu, &err), &err, "capture_begin");
    const loki_status st = lk_cuda_sample(gs, d_logits, 0, rows, d_tok, &err);
    test_need(lk_cuda_capture_end(g_cu, &g, &err), &err, "capture_end");
    if (ok_msg(st, &err, "capture") && ok_msg(lk_cuda_graph_run(g_cu, g, 3, &ms, &err), &err, "replay") &&
        ok_msg(lk_cuda_graph_run(g_cu, g, 20, &ms, &err), &err, "replay"))
        printf("  %-44s V=%-6d rows=%-2d %-9s %8.1f us per call\n", ps->name, V, rows, lk_cuda_sampler_path(gs),
               ms * 1000.0 / 20);
    lk_cuda_graph_free(g);
    free(logits);
    lk_cuda_dealloc(g_cu, d_logits), lk_cuda_dealloc(g_cu, d_tok);
    lk_cuda_sampler_free(gs);
}

int main(void) {
    g_cu = test_gpu_open(&g_rng);

    printf("expf\n");
    check_expf();

    printf("GPU tokens against the CPU sampler's, %d steps\n", STEPS);
    const struct {
        int32_t V;
        int rows;
    } vs[] = {{1000, 5}, {32000, 4}, {262144, 2}};
    const size_t n_sets = sizeof k_sets / sizeof k_sets[0];
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++)
        for (size_t i = 0; i < n_sets; i++) run_case(&k_sets[i], vs[v].V, vs[v].rows, false);
    printf("captured in a CUDA graph, replayed each step\n");
    run_case(&k_sets[1], 32000, 3, true);  /* greedy with penalty */
    run_case(&k_sets[6], 262144, 3, true); /* top-k path with penalty */
    run_case(&k_sets[3], 32000, 3, true);  /* full sort, several rows */
    run_case(&k_sets[5], 32000, 1, true);  /* full sort, one row */

    printf("argument checks\n");
    check_args();

    printf("GPU time per call (graph replays; not checked)\n");
    const int tsets[] = {0, 2, 6, 7, 3, 10};
    for (size_t i = 0; i < sizeof tsets / sizeof tsets[0]; i++) {
        time_case(&k_sets[tsets[i]], 262144, 1);
        time_case(&k_sets[tsets[i]], 32000, 1);
    }
    time_case(&k_sets[2], 262144, 16);
    time_case(&k_sets[2], 128256, 64);
    time_case(&k_sets[3], 128256, 8);

    lk_cuda_free(g_cu);
    return test_finish();
}
