/*
 * test_load_gguf.c - GGUF loader: the llama.cpp-converted fixture (Q8_0),
 * the tiny-random Llama-2 file (F16), and corrupt variants made at run time
 * (truncated copies, patched bytes, rewrites with the GGUF writer).
 */
#include "test.h"

#include "format/gguf.h"
#include "model/model.h"

/* ------------------------------------------------------------ helpers */


/* Open `path` expecting failure with `want` (0: any non-OK status) and a
 * message holding the path and `keyword` (NULL: only the path). */
static void expect_fail(const char *path, loki_status want, const char *keyword) {
    loki_model *m = NULL;
    loki_error err = {0};
    loki_status st = loki_model_open(path, NULL, &m, &err);
    if (want) CHECKF(st == want, "%s: status %d, want %d: %.400s", path, (int)st, (int)want, err.msg);
    else CHECKF(st != LOKI_OK, "%s: opened although corrupt", path);
    CHECKF(strstr(err.msg, path) != NULL, "names the file: %.400s", err.msg);
    if (keyword) CHECKF(strstr(err.msg, keyword) != NULL, "has '%s': %.400s", keyword, err.msg);
    CHECK(m == NULL);
}

/* Edits applied while copying a GGUF with the writer. */
typedef struct edit {
    const char *arch;          /* new general.architecture */
    const char *drop_key;
    const char *drop_tensor;
    const char *grow_tensor;   /* one more row (ne[1] + 1) */
    const char *str_key, *str_val;
    const char *f32_key;
    float f32_val;
    const char *u32_key;
    uint32_t u32_val;
    int rope_freqs;            /* > 0: add rope_freqs.weight with this many F32 values */
} edit;

static bool rewrite(const char *src, const char *dst, const edit *e) {
    lk_gguf g;
    loki_error err = {0};
    lk_gguf_writer *w = NULL;
    if (lk_gguf_open(src, &g, &err) || lk_gguf_writer_init(&w, &err)) {
        fprintf(stderr, "rewrite: %s\n", err.msg);
        return false;
    }
    bool ok = true;
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const lk_gguf_kv *kv = &g.kv[i];
        if (e->drop_key && strcmp(kv->key, e->drop_key) == 0) continue;
        if (e->arch && strcmp(kv->key, "general.architecture") == 0)
            ok &= lk_gguf_writer_add_str(w, kv->key, e->arch) == LOKI_OK;
        else
            ok &= lk_gguf_writer_copy_kv(w, kv) == LOKI_OK;
    }
    if (e->str_key) ok &= lk_gguf_writer_add_str(w, e->str_key, e->str_val) == LOKI_OK;
    if (e->f32_key) ok &= lk_gguf_writer_add_f32(w, e->f32_key, e->f32_val) == LOKI_OK;
    if (e->u32_key) ok &= lk_gguf_writer_add_u32(w, e->u32_key, e->u32_val) == LOKI_OK;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const lk_tensor *t = &g.tensors[i];
        if (e->drop_tensor && strcmp(t->name, e->drop_tensor) == 0) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (e->grow_tensor && strcmp(t->name, e->grow_tensor) == 0) {
            ne[1] += 1;
            size_t nb = t->nbytes + lk_dtype_row_bytes(t->dtype, ne[0]);
            uint8_t *d = calloc(1, nb);
            memcpy(d, t->data, t->nbytes);
            ok &= lk_gguf_writer_add_tensor(w, t->name, t->dtype, t->n_dims < 2 ? 2 : t->n_dims,
                                            ne, d) == LOKI_OK;
            free(d);
        } else {
            ok &= lk_gguf_writer_add_tensor(w, t->name, t->dtype, t->n_dims, ne, t->data) == LOKI_OK;
        }
    }
    if (e->rope_freqs > 0) {
        float f[64];
        for (int i = 0; i < 64; i++) f[i] = 1.0f + (float)i;
        int64_t ne[1] = {e->rope_freqs};
        ok &= lk_gguf_writer_add_tensor(w, "rope_freqs.weight", LK_DTYPE_F32, 1, ne, f) == LOKI_OK;
    }
    if (ok && lk_gguf_writer_write(w, dst, &err) != LOKI_OK) {
        fprintf(stderr, "rewrite: %s\n", err.msg);
        ok = false;
    }
    lk_gguf_writer_free(w);
    lk_gguf_close(&g);
    return ok;
}

/* ------------------------------------------------------------- tests */

static void test_fixture_q8(void) {
    char *path = test_shared_path("models/fixture-15m-gguf/fixture-15m-q8_0.gguf");
    if (!test_file_exists(path)) { free(path); return; }
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(path, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (m) {
        const lk_hparams *hp = &m->hp;
        CHECK(strcmp(hp->arch, "llama") == 0 && strcmp(m->format, "gguf") == 0);
        CHECK_EQ_INT(hp->n_layer, 8);
        CHECK_EQ_INT(hp->n_embd, 384);
        CHECK_EQ_INT(hp->n_head, 6);
        CHECK_EQ_INT(hp->n_head_kv, 2);
        CHECK_EQ_INT(hp->head_dim, 64);
        CHECK_EQ_INT(hp->rope_dim, 64);
        CHECK_EQ_INT(hp->n_ff, 1024);
        CHECK_EQ_INT(hp->n_vocab, 8192);
        CHECK_EQ_INT(hp->n_ctx_train, 4096);
        CHECK(hp->rope_theta == 10000.0f); /* no freq_base key: default */
        CHECK_NEAR(hp->rms_eps, 1e-5, 1e-12);
        CHECK_EQ_INT(hp->rope_style, LK_ROPE_NORM);
        CHECK_EQ_INT(hp->rope_scaling, LK_ROPE_SCALING_NONE);
        CHECK(m->rope_freqs.data == NULL);
        CHECK(m->output.data == m->tok_embd.data); /* no output.weight: tied */
        CHECK_EQ_INT(m->tok_embd.dtype, LK_DTYPE_Q8_0);
        CHECK_EQ_INT(m->layers[3].wq.dtype, LK_DTYPE_Q8_0);
        CHECK_EQ_INT(m->layers[3].w_down.ne[0], 1024);
        CHECK_EQ_INT(m->layers[3].w_down.ne[1], 384);
        CHECK_EQ_INT(m->layers[3].attn_norm.dtype, LK_DTYPE_F32);
        CHECK_EQ_INT(m->out_norm.dtype, LK_DTYPE_F32);
        CHECK(m->gguf != NULL);
        loki_model_info info;
        loki_model_get_info(m, &info);
        int64_t np = 8192LL * 384 + 384 + 8LL * (2 * 384 + 2 * 384 * 384 + 2 * 128 * 384 +
                                                   3 * 1024 * 384);
        CHECK_EQ_INT(info.n_params, np);
        CHECK(info.weight_bytes > np && info.weight_bytes < 2 * np); /* ~1.06 bytes/param */
        CHECK_EQ_INT(info.bos_id, 0);
        loki_model_close(m);
    }
    free(path);
}

static void test_tiny_random(const char *src) {
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(src, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (!m) return;
    const lk_hparams *hp = &m->hp;
    CHECK_EQ_INT(hp->n_embd, 8);
    CHECK_EQ_INT(hp->n_layer, 1);
    CHECK_EQ_INT(hp->n_head, 2);
    CHECK_EQ_INT(hp->n_head_kv, 2);
    CHECK_EQ_INT(hp->head_dim, 4);
    CHECK_EQ_INT(hp->rope_dim, 4);
    CHECK_EQ_INT(hp->n_ff, 32);
    CHECK_EQ_INT(hp->n_ctx_train, 4096);
    CHECK_EQ_INT(hp->n_vocab, 32000);
    CHECK_EQ_INT(m->layers[0].wq.dtype, LK_DTYPE_F16);
    CHECK_EQ_INT(m->tok_embd.dtype, LK_DTYPE_F16);
    CHECK(m->output.data != m->tok_embd.data);
    CHECK_EQ_INT(m->output.ne[1], 32000);
    loki_model_info info;
    loki_model_get_info(m, &info);
    CHECK_EQ_INT(info.n_params, 2 * 32000 * 8 + 8 + 4 * 64 + 3 * 256 + 2 * 8);
    CHECK_EQ_INT(info.weight_bytes, 2 * (2 * 32000 * 8 + 4 * 64 + 3 * 256) + 4 * 3 * 8);
    loki_model_close(m);
}

static void test_rewrites(const char *src, const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/copy.gguf", dir);
    edit none = {0};
    CHECK(rewrite(src, p, &none));
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(p, NULL, &m, &err) == LOKI_OK, "unmodified rewrite: %.400s", err.msg);
    loki_model_close(m);

    snprintf(p, sizeof p, "%s/arch.gguf", dir);
    edit e1 = {.arch = "gptx"};
    CHECK(rewrite(src, p, &e1));
    expect_fail(p, LOKI_ERR_UNSUPPORTED, "unknown architecture 'gptx'");

    snprintf(p, sizeof p, "%s/missing.gguf", dir);
    edit e2 = {.drop_tensor = "blk.0.ffn_up.weight"};
    CHECK(rewrite(src, p, &e2));
    expect_fail(p, LOKI_ERR_FORMAT, "missing tensor 'blk.0.ffn_up.weight'");

    snprintf(p, sizeof p, "%s/shape.gguf", dir);
    edit e3 = {.grow_tensor = "blk.0.attn_q.weight"};
    CHECK(rewrite(src, p, &e3));
    expect_fail(p, LOKI_ERR_FORMAT, "inconsistent shape");
    loki_error e3err = {0};
    CHECK(loki_model_open(p, NULL, &m, &e3err) != LOKI_OK);
    CHECKF(strstr(e3err.msg, "blk.0.attn_q.weight") != NULL, "%.400s", e3err.msg);

    snprintf(p, sizeof p, "%s/nokey.gguf", dir);
    edit e4 = {.drop_key = "llama.embedding_length"};
    CHECK(rewrite(src, p, &e4));
    expect_fail(p, LOKI_ERR_FORMAT, "missing key 'llama.embedding_length'");

    snprintf(p, sizeof p, "%s/yarn.gguf", dir);
    edit e5 = {.str_key = "llama.rope.scaling.type", .str_val = "yarn"};
    CHECK(rewrite(src, p, &e5));
    expect_fail(p, LOKI_ERR_UNSUPPORTED, "'yarn'");

    snprintf(p, sizeof p, "%s/linear.gguf", dir);
    edit e6 = {.str_key = "llama.rope.scaling.type", .str_val = "linear",
               .f32_key = "llama.rope.scaling.factor", .f32_val = 4.0f};
    CHECK(rewrite(src, p, &e6));
    m = NULL;
    CHECKF(loki_model_open(p, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (m) {
        CHECK_EQ_INT(m->hp.rope_scaling, LK_ROPE_SCALING_LINEAR);
        CHECK(m->hp.rope_factor == 4.0f);
        loki_model_close(m);
    }

    snprintf(p, sizeof p, "%s/freqs.gguf", dir);
    edit e7 = {.rope_freqs = 2, .f32_key = "llama.rope.freq_base", .f32_val = 500000.0f};
    CHECK(rewrite(src, p, &e7));
    m = NULL;
    CHECKF(loki_model_open(p, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (m) {
        CHECK(m->rope_freqs.data != NULL);
        CHECK_EQ_INT(m->rope_freqs.ne[0], 2);
        CHECK(m->hp.rope_theta == 500000.0f);
        float f1;
        memcpy(&f1, (const uint8_t *)m->rope_freqs.data + 4, 4);
        CHECK(f1 == 2.0f);
        loki_model_close(m);
    }
    snprintf(p, sizeof p, "%s/badfreqs.gguf", dir);
    edit e8 = {.rope_freqs = 3};
    CHECK(rewrite(src, p, &e8));
    expect_fail(p, LOKI_ERR_FORMAT, "rope_freqs.weight");

    snprintf(p, sizeof p, "%s/eps.gguf", dir);
    edit e9 = {.drop_key = "llama.attention.layer_norm_rms_epsilon"};
    CHECK(rewrite(src, p, &e9));
    expect_fail(p, LOKI_ERR_FORMAT, "layer_norm_rms_epsilon");

    snprintf(p, sizeof p, "%s/moe.gguf", dir);
    edit e10 = {.u32_key = "llama.expert_count", .u32_val = 8};
    CHECK(rewrite(src, p, &e10));
    expect_fail(p, LOKI_ERR_UNSUPPORTED, "mixture-of-experts");

    snprintf(p, sizeof p, "%s/kvheads.gguf", dir);
    edit e11 = {.drop_key = "llama.attention.head_count_kv", .u32_key = "llama.attention.head_count_kv",
                .u32_val = 3};
    CHECK(rewrite(src, p, &e11));
    expect_fail(p, LOKI_ERR_FORMAT, "n_head_kv");
}

/* Byte-level corruption of a copy: truncation, magic, tensor offset. */
static void test_corrupt_bytes(const char *src, const char *dir) {
    size_t n = 0;
    uint8_t *d = test_read_all(src, &n);
    CHECK(d != NULL && n > 1000000);
    if (!d) return;
    char p[600];
    size_t cuts[] = {0, 3, 4, 8, 20, 24, 100, 5000, 200000, 724000, 724400, 900000, n - 1};
    for (size_t i = 0; i < LK_ARRAY_LEN(cuts); i++) {
        snprintf(p, sizeof p, "%s/trunc-%zu.gguf", dir, cuts[i]);
        test_write_all(p, d, cuts[i]);
        expect_fail(p, 0, NULL);
    }
    /* truncated inside the tensor data: the reader's bounds check */
    snprintf(p, sizeof p, "%s/trunc-data.gguf", dir);
    test_write_all(p, d, n - 1);
    expect_fail(p, LOKI_ERR_FORMAT, "out of bounds");

    uint8_t *c = malloc(n);
    memcpy(c, d, n);
    c[3] = 'X';
    snprintf(p, sizeof p, "%s/magic.gguf", dir);
    test_write_all(p, c, n);
    expect_fail(p, LOKI_ERR_FORMAT, "not a GGUF file");

    /* tensor info of output.weight: u64 len, name, u32 n_dims, ne, u32 type, u64 offset */
    memcpy(c, d, n);
    const char *name = "output.weight";
    size_t nl = strlen(name), at = 0;
    for (size_t i = 8; i + nl < n && i < 800000; i++) {
        uint64_t len;
        memcpy(&len, c + i - 8, 8);
        if (len == nl && memcmp(c + i, name, nl) == 0) { at = i; break; }
    }
    CHECK(at != 0);
    if (at) {
        uint32_t nd;
        memcpy(&nd, c + at + nl, 4);
        size_t off_pos = at + nl + 4 + 8 * nd + 4;
        uint64_t big = (uint64_t)1 << 30;
        memcpy(c + off_pos, &big, 8);
        snprintf(p, sizeof p, "%s/offset.gguf", dir);
        test_write_all(p, c, n);
        expect_fail(p, LOKI_ERR_FORMAT, "out of bounds");
    }
    free(c);
    free(d);
}

int main(void) {
    char dir[] = "/tmp/loki-gguf-XXXXXX";
    if (!mkdtemp(dir)) test_skip("cannot create a temp dir");
    test_fixture_q8();
    char *src = test_shared_path("models/tiny-random/llama-2-tiny-random.gguf");
    if (test_file_exists(src)) {
        test_tiny_random(src);
        test_rewrites(src, dir);
        test_corrupt_bytes(src, dir);
    } else {
        printf("tiny-random GGUF absent: skipping\n");
    }
    free(src);
    char path[600];
    snprintf(path, sizeof path, "%s/absent.gguf", dir);
    expect_fail(path, LOKI_ERR_IO, "cannot open");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return test_finish();
}
