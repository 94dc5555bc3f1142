/* test_gguf.c - GGUF reader/writer: round trip of every metadata type and
 * tensor dtype, real files from ../shared, and corrupt-file errors. */
#include "test.h"

#include "format/gguf.h"

#include <unistd.h>

static void write_sample(const char *path) {
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, NULL));
    lk_gguf_writer_add_u32(w, "a.u32", 7);
    lk_gguf_writer_add_i32(w, "a.i32", -5);
    lk_gguf_writer_add_u64(w, "a.u64", 1ull << 40);
    lk_gguf_writer_add_f32(w, "a.f32", 0.25f);
    lk_gguf_writer_add_bool(w, "a.bool", true);
    lk_gguf_writer_add_str(w, "a.str", "hello");
    int16_t i16[3] = {-1, 2, -3};
    lk_gguf_writer_add_arr(w, "a.arr_i16", LK_GGUF_INT16, i16, 3);
    double f64[2] = {1.5, -2.5};
    lk_gguf_writer_add_arr(w, "a.arr_f64", LK_GGUF_FLOAT64, f64, 2);
    const char *strs[] = {"x", "", "zz"};
    lk_gguf_writer_add_arr_str(w, "a.arr_str", strs, 3);
    float src[64];
    for (int i = 0; i < 64; i++) src[i] = (float)i / 8.0f - 4.0f;
    lk_dtype types[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16, LK_DTYPE_Q8_0};
    const char *names[] = {"t.f32", "t.f16", "t.bf16", "t.q8_0"};
    for (int k = 0; k < 4; k++) {
        uint8_t buf[64 * 4];
        lk_row_from_f32(types[k], src, buf, 64);
        int64_t ne[2] = {32, 2};
        CHECK_OK(lk_gguf_writer_add_tensor(w, names[k], types[k], 2, ne, buf));
    }
    CHECK_OK(lk_gguf_writer_write(w, path, NULL));
    lk_gguf_writer_free(w);
}

static void test_round_trip(const char *path) {
    write_sample(path);
    lk_gguf g;
    loki_error err = {0};
    loki_status st = lk_gguf_open(path, &g, &err);
    CHECKF(st == LOKI_OK, "%s", err.msg);
    if (st) return;
    int64_t i;
    float f;
    bool b;
    char s[16];
    CHECK(lk_gguf_get_i64(&g, "a.u32", &i) && i == 7);
    CHECK(lk_gguf_get_i64(&g, "a.i32", &i) && i == -5);
    CHECK(lk_gguf_get_i64(&g, "a.u64", &i) && i == (1ll << 40));
    CHECK(lk_gguf_get_f32(&g, "a.f32", &f) && f == 0.25f);
    CHECK(lk_gguf_get_bool(&g, "a.bool", &b) && b);
    CHECK(lk_gguf_get_cstr(&g, "a.str", s, sizeof s) && strcmp(s, "hello") == 0);
    CHECK(!lk_gguf_get_i64(&g, "a.str", &i));
    CHECK(!lk_gguf_get_i64(&g, "missing", &i));
    const lk_gguf_kv *kv = lk_gguf_find(&g, "a.arr_i16");
    CHECK(kv && kv->arr_n == 3 && lk_gguf_arr_i64(kv, 2) == -3);
    kv = lk_gguf_find(&g, "a.arr_f64");
    CHECK(kv && lk_gguf_arr_f64(kv, 1) == -2.5);
    kv = lk_gguf_find(&g, "a.arr_str");
    CHECK(kv && kv->arr_n == 3 && kv->arr_str[1].len == 0 && kv->arr_str[2].len == 2 &&
          memcmp(kv->arr_str[2].ptr, "zz", 2) == 0);
    const char *names[] = {"t.f32", "t.f16", "t.bf16", "t.q8_0"};
    double tol[] = {0, 1e-3, 2e-2, 4.0 / 127};
    for (int k = 0; k < 4; k++) {
        const lk_tensor *t = lk_gguf_find_tensor(&g, names[k]);
        CHECK(t && t->ne[0] == 32 && t->ne[1] == 2 && ((uintptr_t)t->data % 32) == 0);
        if (!t) continue;
        float out[64];
        lk_row_to_f32(t->dtype, t->data, out, 64);
        double md = 0;
        for (int j = 0; j < 64; j++) md = fmax(md, fabs(out[j] - ((float)j / 8.0f - 4.0f)));
        CHECKF(md <= tol[k], "%s max err %g", names[k], md);
    }
    lk_gguf_close(&g);
}

/* Copy the first n bytes of src to dst, optionally overwriting bytes at off. */
static void write_variant(const char *src, const char *dst, size_t n, size_t off, const void *patch, size_t plen) {
    FILE *f = fopen(src, "rb");
    uint8_t *buf = malloc(n);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (patch) memcpy(buf + off, patch, plen);
    f = fopen(dst, "wb");
    fwrite(buf, 1, got, f);
    fclose(f);
    free(buf);
}

static void expect_error(const char *path, const char *needle) {
    lk_gguf g;
    loki_error err = {0};
    loki_status st = lk_gguf_open(path, &g, &err);
    CHECKF(st != LOKI_OK && strstr(err.msg, path) && strstr(err.msg, needle),
           "status %d msg '%s' (want '%s')", st, err.msg, needle);
    if (st == LOKI_OK) lk_gguf_close(&g);
}

static void test_corrupt(const char *good, const char *tmp) {
    FILE *f = fopen(good, "rb");
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fclose(f);
    write_variant(good, tmp, size, 0, "GGUX", 4);
    expect_error(tmp, "magic");
    /* truncations at many points: header, metadata, tensor infos, data */
    size_t cuts[] = {0, 3, 10, 30, 60, 150, 400, size / 2, size - 64};
    for (size_t i = 0; i < LK_ARRAY_LEN(cuts); i++) {
        write_variant(good, tmp, cuts[i], 0, NULL, 0);
        lk_gguf g;
        loki_error err = {0};
        loki_status st = lk_gguf_open(tmp, &g, &err);
        CHECKF(st != LOKI_OK && strstr(err.msg, tmp), "cut %zu: status %d '%s'", cuts[i], st, err.msg);
        if (st == LOKI_OK) lk_gguf_close(&g);
    }
    uint32_t v9 = 9;
    write_variant(good, tmp, size, 4, &v9, 4);
    expect_error(tmp, "version");
    uint64_t huge = 1ull << 50;
    write_variant(good, tmp, size, 16, &huge, 8);
    expect_error(tmp, "implausible");
}

int main(void) {
    char path[] = "/tmp/loki_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    test_round_trip(path);
    char bad[] = "/tmp/loki_test_gguf_bad_XXXXXX";
    fd = mkstemp(bad);
    close(fd);
    test_corrupt(path, bad);

    char *tiny = test_shared_path("models/tiny-random/llama-2-tiny-random.gguf");
    if (test_file_exists(tiny)) {
        lk_gguf g;
        loki_error err = {0};
        CHECKF(lk_gguf_open(tiny, &g, &err) == LOKI_OK, "%s", err.msg);
        int64_t v = 0;
        char arch[32] = "";
        CHECK(lk_gguf_get_cstr(&g, "general.architecture", arch, sizeof arch) && !strcmp(arch, "llama"));
        CHECK(lk_gguf_get_i64(&g, "llama.embedding_length", &v) && v == 8);
        CHECK(lk_gguf_get_i64(&g, "llama.block_count", &v) && v == 1);
        CHECK(lk_gguf_get_i64(&g, "llama.context_length", &v) && v == 4096);
        const lk_gguf_kv *toks = lk_gguf_find(&g, "tokenizer.ggml.tokens");
        CHECK(toks && toks->arr_type == LK_GGUF_STRING && toks->arr_n == 32000);
        lk_gguf_close(&g);
        test_corrupt(tiny, bad);
    } else {
        printf("note: %s absent, real-file checks skipped\n", tiny);
    }
    free(tiny);
    unlink(path);
    unlink(bad);
    return test_finish();
}
