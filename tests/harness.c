/* test_util.c - the harness behind test.h. */
#include "test.h"

#include "cuda/lk_cuda.h"
#include "model/model.h"

#include <sys/stat.h>
#include <sys/wait.h>

test_state g_test;

void test_check(bool ok, const char *expr, const char *file, int line, const char *msg) {
    if (ok) {
        g_test.passed++;
        return;
    }
    g_test.failed++;
    fprintf(stderr, "FAIL %s:%d: %s %s\n", file, line, expr, msg);
}

int test_finish(void) {
    printf("%d passed, %d failed\n", g_test.passed, g_test.failed);
    return g_test.failed == 0 && g_test.passed > 0 ? 0 : 1;
}

void test_skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

char *test_shared_path(const char *rel) {
    size_t n = strlen(LOKI_SHARED_DIR) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", LOKI_SHARED_DIR, rel);
    return p;
}

bool test_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *test_shared_or_skip(const char *rel) {
    char *p = test_shared_path(rel);
    if (!test_file_exists(p)) {
        char why[1024];
        snprintf(why, sizeof why, "%s not found (shared data absent)", p);
        test_skip(why);
    }
    return p;
}

char *test_run_capture(const char *cmd, int *status) {
    FILE *f = popen(cmd, "r");
    if (!f) { *status = -1; return NULL; }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

void test_fill_random(float *x, size_t n, float lo, float hi, uint64_t *seed) {
    for (size_t i = 0; i < n; i++) {
        uint64_t s = *seed;
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        *seed = s;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

float *test_random_floats(size_t n, float lo, float hi, uint64_t *seed) {
    float *x = test_xmalloc(n * sizeof *x);
    test_fill_random(x, n, lo, hi, seed);
    return x;
}

uint32_t test_rand32(uint64_t *seed) {
    uint64_t s = *seed;
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    *seed = s;
    return (uint32_t)(s >> 32);
}

uint8_t *test_read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)sz + 16);
    *n = fread(d, 1, (size_t)sz, f);
    fclose(f);
    return d;
}

void test_write_all(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(d, 1, n, f);
    fclose(f);
}

float test_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

void *test_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fprintf(stderr, "out of host memory (%zu bytes)\n", bytes), exit(1);
    return p;
}

void test_need(loki_status st, const loki_error *err, const char *what) {
    if (st == LOKI_OK) return;
    fprintf(stderr, "FATAL: %s: %s\n", what, err->msg);
    exit(1);
}

double test_rel_maxdiff(const float *a, const float *b, int n) {
    double md = 0, mr = 0;
    for (int j = 0; j < n; j++) {
        md = fmax(md, fabs((double)a[j] - b[j]));
        mr = fmax(mr, fabs((double)b[j]));
    }
    return md / (mr > 0 ? mr : 1);
}

int test_argmax(const float *x, int n) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

struct lk_cuda *test_gpu_open(uint64_t *seed) {
    if (!lk_cuda_built()) {
        fprintf(stderr, "SKIP: this loki was built without the CUDA backend (LOKI_CUDA=OFF or no nvcc)\n");
        exit(77);
    }
    loki_error err = {0};
    lk_cuda *cu = NULL;
    if (lk_cuda_init(&cu, 0, &err) != LOKI_OK) {
        fprintf(stderr, "SKIP: no usable GPU: %s\n", err.msg);
        exit(77);
    }
    if (getenv("LOKI_TEST_SEED")) *seed = strtoull(getenv("LOKI_TEST_SEED"), NULL, 10) | 1;
    printf("GPU: %s, seed %llu\n", lk_cuda_describe(cu), (unsigned long long)*seed);
    return cu;
}

void test_small_llama(struct lk_hparams *hp, int n_layer, int n_head, int n_head_kv, int n_ff, int n_ctx_train) {
    memset(hp, 0, sizeof(*hp));
    strcpy(hp->arch, "llama");
    hp->n_vocab = 301;
    hp->n_ctx_train = n_ctx_train;
    hp->n_embd = 256;
    hp->n_layer = n_layer;
    hp->n_head = n_head;
    hp->n_head_kv = n_head_kv;
    hp->head_dim = 64;
    hp->rope_dim = 64;
    hp->n_ff = n_ff;
    hp->rms_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    hp->rope_style = LK_ROPE_NEOX;
}

loki_context *test_context(loki_model *m, loki_device dev, int32_t n_ctx, int32_t n_seq, bool graphs, loki_kv_type kv,
                           loki_error *err) {
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = n_ctx, cp.n_batch = 64, cp.n_threads = 2, cp.n_seq = n_seq, cp.device = dev;
    cp.no_cuda_graphs = !graphs;
    cp.type_k = cp.type_v = kv;
    loki_context *c = NULL;
    return loki_context_init(m, &cp, &c, err) ? NULL : c;
}
