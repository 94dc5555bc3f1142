/*
 * bench.c - microbenchmarks for the CPU backend's kernels (dev/cpu only).
 *
 *   ./bench bw                 streaming-read DRAM bandwidth, 1 and 2 threads
 *   ./bench mm [shape [dtype [n]]]  each matmul variant on fixture and 7B shapes
 *   ./bench model              a whole fixture-15m token's matmuls (decode
 *                              n=1 and prefill n=512), per dtype
 *   ./bench pool               empty-dispatch latency
 *
 * Variants: auto (AVX-512 kernels), blas (SIMD matvec + dequantized-tile
 * OpenBLAS sgemm for n>1), scalar (portable C + tile sgemm). Weights are
 * random; for n=1 on matrices that fit in L3 we rotate over enough copies
 * (>= 96 MiB in all) when --cold is meaningful (7B shapes), so the numbers
 * are DRAM-bound like a real 7B decode.
 */
#include "cpu/cpu.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name;
    int in, out;
    int big; /* a 7B shape: weights must come from DRAM */
} shape;

static const shape k_shapes[] = {
    {"l2 2048x256", 2048, 256, 0},       {"fix.wq 384x384", 384, 384, 0},     {"fix.wk 384x128", 384, 128, 0},
    {"fix.up 384x1024", 384, 1024, 0},   {"fix.down 1024x384", 1024, 384, 0},
    {"fix.out 384x8192", 384, 8192, 0},  {"7b.wq 4096x4096", 4096, 4096, 1},
    {"7b.up 4096x11008", 4096, 11008, 1}, {"7b.down 11008x4096", 11008, 4096, 1},
    {"smol.out 576x49152", 576, 49152, 1}, {"gemma.out 640x262144", 640, 262144, 1},
};
static const lk_dtype k_dt[] = {LK_DTYPE_F32,  LK_DTYPE_F16,  LK_DTYPE_BF16, LK_DTYPE_Q8_0, LK_DTYPE_Q4_0,
                                LK_DTYPE_Q4_1, LK_DTYPE_Q5_0, LK_DTYPE_Q4_K, LK_DTYPE_Q5_K, LK_DTYPE_Q6_K};
#define K_NDT (sizeof k_dt / sizeof *k_dt)

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}
static void fill(float *x, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((rng(s) >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}

/* Make `copies` copies of a random (out, in) matrix in dtype dt. */
static void *make_w(lk_dtype dt, int in, int out, int copies, uint64_t *s) {
    size_t rb = lk_dtype_row_bytes(dt, in), mb = rb * (size_t)out;
    char *w = aligned_alloc(64, (mb * copies + 63) & ~(size_t)63);
    float *row = malloc(sizeof(float) * in);
    for (int r = 0; r < out; r++) {
        fill(row, in, s);
        lk_row_from_f32(dt, row, w + r * rb, in);
    }
    for (int c = 1; c < copies; c++) memcpy(w + c * mb, w, mb);
    free(row);
    return w;
}

/* ----------------------------------------------------------- bandwidth */
typedef struct bw_task {
    const float *buf;
    size_t n;
    int streams4;
    double sum[64];
} bw_task;

/* Plain sequential read of this thread's share (one stream), or of four
 * sub-ranges interleaved (four streams, like a 4-row matrix-vector kernel). */
static void bw_fn(void *arg, int ith, int nth) {
    bw_task *t = arg;
    size_t b = t->n * ith / nth & ~(size_t)255, e = t->n * (ith + 1) / nth & ~(size_t)255;
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    if (!t->streams4) {
        for (size_t i = b; i < e; i += 64) {
            a0 = _mm512_add_ps(a0, _mm512_load_ps(t->buf + i));
            a1 = _mm512_add_ps(a1, _mm512_load_ps(t->buf + i + 16));
            a2 = _mm512_add_ps(a2, _mm512_load_ps(t->buf + i + 32));
            a3 = _mm512_add_ps(a3, _mm512_load_ps(t->buf + i + 48));
        }
    } else {
        size_t q = (e - b) / 4;
        const float *p0 = t->buf + b, *p1 = p0 + q, *p2 = p1 + q, *p3 = p2 + q;
        for (size_t i = 0; i < q; i += 16) {
            a0 = _mm512_add_ps(a0, _mm512_load_ps(p0 + i));
            a1 = _mm512_add_ps(a1, _mm512_load_ps(p1 + i));
            a2 = _mm512_add_ps(a2, _mm512_load_ps(p2 + i));
            a3 = _mm512_add_ps(a3, _mm512_load_ps(p3 + i));
        }
    }
    t->sum[ith] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#else /* AVX (2) machines: the same reads, 32 bytes per load */
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    if (!t->streams4) {
        for (size_t i = b; i < e; i += 32) {
            a0 = _mm256_add_ps(a0, _mm256_load_ps(t->buf + i));
            a1 = _mm256_add_ps(a1, _mm256_load_ps(t->buf + i + 8));
            a2 = _mm256_add_ps(a2, _mm256_load_ps(t->buf + i + 16));
            a3 = _mm256_add_ps(a3, _mm256_load_ps(t->buf + i + 24));
        }
    } else {
        size_t q = (e - b) / 4;
        const float *p0 = t->buf + b, *p1 = p0 + q, *p2 = p1 + q, *p3 = p2 + q;
        for (size_t i = 0; i < q; i += 8) {
            a0 = _mm256_add_ps(a0, _mm256_load_ps(p0 + i));
            a1 = _mm256_add_ps(a1, _mm256_load_ps(p1 + i));
            a2 = _mm256_add_ps(a2, _mm256_load_ps(p2 + i));
            a3 = _mm256_add_ps(a3, _mm256_load_ps(p3 + i));
        }
    }
    float v[8];
    _mm256_storeu_ps(v, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    t->sum[ith] = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
#endif
}

static void bench_bw(void) {
    size_t n = (size_t)1 << 28; /* 1 GiB of floats */
    float *buf = aligned_alloc(64, n * 4);
    for (size_t i = 0; i < n; i++) buf[i] = 1.0f;
    for (int nth = 1; nth <= 2; nth++)
    for (int s4 = 0; s4 < 2; s4++) {
        lk_pool *p;
        lk_pool_init(&p, nth, NULL);
        bw_task t = {.buf = buf, .n = n, .streams4 = s4};
        lk_pool_run(p, bw_fn, &t);
        double best = 1e9;
        for (int it = 0; it < 5; it++) {
            double t0 = lk_time_s();
            lk_pool_run(p, bw_fn, &t);
            double dt = lk_time_s() - t0;
            if (dt < best) best = dt;
        }
        printf("stream read 1 GiB, %d thread(s), %d stream(s) each: %.1f GB/s (best of 5)\n", nth,
               s4 ? 4 : 1, n * 4 / best * 1e-9);
        lk_pool_free(p);
    }
    free(buf);
}

/* ------------------------------------------------------------- matmul */
/* Seconds per call: the best of ~10 ms batches over min_s seconds (the
 * machine is shared: the best batch filters out time descheduled). */
static double time_mm(lk_cpu *c, float *y, const float *x, lk_tensor *w, int n, int copies,
                      size_t mbytes, double min_s) {
    const char *base = w->data;
    lk_cpu_matmul(c, y, x, w, n); /* warm-up */
    int it = 0, per = 1;
    double best = 1e30, t_all = lk_time_s(), dt;
    do {
        double t0 = lk_time_s();
        for (int k = 0; k < per; k++, it++) {
            w->data = base + (size_t)(it % copies) * mbytes;
            lk_cpu_matmul(c, y, x, w, n);
        }
        dt = lk_time_s() - t0;
        if (dt / per < best) best = dt / per;
        if (dt < 0.01) per *= 2;
    } while (lk_time_s() - t_all < min_s || it < 3);
    w->data = base;
    return best;
}

static void bench_mm(const char *filter, const char *dfilter, int nfilter) {
    uint64_t s = 42;
    static const char *lvl_name[] = {"auto", "scalar", "blas"};
    printf("%-20s %-5s %4s %3s %-6s %10s %9s %9s\n", "shape", "dtype", "n", "thr", "kernel", "us/call",
           "GFLOP/s", "GB/s(W)");
    for (size_t si = 0; si < sizeof k_shapes / sizeof *k_shapes; si++) {
        const shape *sh = &k_shapes[si];
        if (filter && !strstr(sh->name, filter)) continue;
        for (size_t di = 0; di < K_NDT; di++) {
            lk_dtype dt = k_dt[di];
            if (dfilter && strcmp(dfilter, lk_dtype_name(dt))) continue;
            size_t mb = lk_dtype_row_bytes(dt, sh->in) * (size_t)sh->out;
            int copies = sh->big ? (int)((96u << 20) / mb + 1) : 1;
            void *wd = make_w(dt, sh->in, sh->out, copies, &s);
            lk_tensor w = {.name = "w", .dtype = dt, .n_dims = 2, .ne = {sh->in, sh->out, 1, 1},
                           .data = wd, .nbytes = mb};
            float *x = aligned_alloc(64, sizeof(float) * 512 * (size_t)sh->in);
            float *y = aligned_alloc(64, sizeof(float) * 512 * (size_t)sh->out);
            fill(x, 512 * (size_t)sh->in, &s);
            for (int n = nfilter ? nfilter : 1; n <= 512; n += nfilter ? 512 : 511)
                for (int nth = 1; nth <= 2; nth++)
                    for (int lv = 0; lv < 3; lv++) {
                        if (lv == 1 && (sh->big && n > 1)) continue; /* scalar GEMM = blas GEMM */
                        if (lv == 2 && n == 1) continue;             /* same matvec as auto */
                        lk_cpu *c;
                        lk_cpu_init(&c, nth, 512, 11008, NULL);
                        lk_cpu_set_kernels(c, (lk_cpu_kernels)lv);
                        double t = time_mm(c, y, x, &w, n, copies, mb, sh->big ? 0.5 : 0.3);
                        double fl = 2.0 * n * sh->in * (double)sh->out;
                        printf("%-20s %-5s %4d %3d %-6s %10.1f %9.1f %9.1f\n", sh->name,
                               lk_dtype_name(dt), n, nth, lvl_name[lv], t * 1e6, fl / t * 1e-9,
                               mb / t * 1e-9);
                        fflush(stdout);
                        lk_cpu_free(c);
                    }
            free(wd);
            free(x);
            free(y);
        }
    }
}

/* A fixture-15m token's matmuls (8 layers + output), each weight distinct. */
static void bench_model(void) {
    uint64_t s = 7;
    const int L = 8, E = 384, F = 1024, KV = 128, V = 8192;
    for (size_t di = 0; di < 4; di++) {
        lk_dtype dt = k_dt[di];
        int nmat = L * 7 + 1;
        lk_tensor *ws = calloc(nmat, sizeof *ws);
        size_t total = 0;
        for (int i = 0; i < nmat; i++) {
            int k = i % 7, in = E, out = E;
            if (i == nmat - 1) out = V;
            else if (k == 1 || k == 2) out = KV;
            else if (k == 4 || k == 5) out = F;
            else if (k == 6) in = F;
            ws[i] = (lk_tensor){.name = "w", .dtype = dt, .n_dims = 2, .ne = {in, out, 1, 1},
                                .data = make_w(dt, in, out, 1, &s)};
            total += lk_dtype_row_bytes(dt, in) * (size_t)out;
        }
        float *x = aligned_alloc(64, sizeof(float) * 512 * F), *y = aligned_alloc(64, sizeof(float) * 512 * V);
        fill(x, 512 * (size_t)F, &s);
        for (int nth = 1; nth <= 2; nth++)
            for (int n = 1; n <= 512; n += 511) {
                lk_cpu *c;
                lk_cpu_init(&c, nth, 512, V, NULL);
                int it = 0;
                double t0 = lk_time_s(), dt_s;
                do {
                    for (int i = 0; i < nmat; i++) lk_cpu_matmul(c, y, x, &ws[i], n);
                    it++;
                    dt_s = lk_time_s() - t0;
                } while (dt_s < 1.0);
                double per = dt_s / it;
                printf("fixture-15m matmuls %-5s (%.1f MB) n=%3d thr=%d: %8.1f us/step  %8.0f tok/s (matmul only)\n",
                       lk_dtype_name(dt), total / 1e6, n, nth, per * 1e6, n / per);
                lk_cpu_free(c);
            }
        for (int i = 0; i < nmat; i++) free((void *)ws[i].data);
        free(ws);
        free(x);
        free(y);
    }
}

static void noop(void *a, int i, int n) { (void)a; (void)i; (void)n; }

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "mm";
    if (!strcmp(what, "bw")) bench_bw();
    else if (!strcmp(what, "mm")) bench_mm(argc > 2 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL, argc > 4 ? atoi(argv[4]) : 0);
    else if (!strcmp(what, "model")) bench_model();
    else if (!strcmp(what, "pool")) {
        lk_pool *p;
        lk_pool_init(&p, 2, NULL);
        for (int r = 0; r < 3; r++) {
            double t0 = lk_time_s();
            for (int i = 0; i < 1000000; i++) lk_pool_run(p, noop, NULL);
            printf("empty dispatch, 2 threads: %.3f us\n", (lk_time_s() - t0));
        }
        lk_pool_free(p);
    } else {
        fprintf(stderr, "usage: %s bw|mm [filter]|model|pool\n", argv[0]);
        return 2;
    }
    return 0;
}
