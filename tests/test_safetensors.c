/*
 * test_safetensors.c - safetensors reader: tiny files written at run time
 * (valid, sharded and corrupt) and the real fixture-15m checkpoint.
 */
#include "test.h"

#include "format/safetensors.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixtures */

typedef struct st_spec {
    const char *name;
    const char *dtype;   /* safetensors dtype string */
    int nd;
    int64_t shape[4];    /* outermost first, as in the file */
    const void *data;
    size_t nbytes;
} st_spec;

/* Write raw bytes: u64 `hlen` (the real header length unless overridden by
 * hlen_override != 0), header text, data. */
static void write_raw(const char *path, const char *hdr, const void *data, size_t n,
                      uint64_t hlen_override) {
    FILE *f = fopen(path, "wb");
    uint64_t hl = hlen_override ? hlen_override : strlen(hdr);
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, strlen(hdr), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Write a well-formed safetensors file holding `n` tensors. */
static void write_st(const char *path, const st_spec *t, int n) {
    char *hdr = malloc(65536);
    size_t len = 0, off = 0;
    len += (size_t)snprintf(hdr + len, 65536 - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(hdr + len, 65536 - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                t[i].name, t[i].dtype);
        for (int k = 0; k < t[i].nd; k++)
            len += (size_t)snprintf(hdr + len, 65536 - len, "%s%lld", k ? "," : "",
                                    (long long)t[i].shape[k]);
        len += (size_t)snprintf(hdr + len, 65536 - len, "],\"data_offsets\":[%zu,%zu]}", off,
                                off + t[i].nbytes);
        off += t[i].nbytes;
    }
    len += (size_t)snprintf(hdr + len, 65536 - len, "}");
    while (len % 8) hdr[len++] = ' ';
    hdr[len] = '\0';
    uint8_t *data = malloc(off + 1);
    off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(data + off, t[i].data, t[i].nbytes);
        off += t[i].nbytes;
    }
    write_raw(path, hdr, data, off, 0);
    free(data);
    free(hdr);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Open `path` expecting failure with status `want` and a message naming
 * `path` and containing `keyword`. */
static void expect_fail(const char *path, loki_status want, const char *keyword) {
    loki_error err = {0};
    lk_st_set *s = NULL;
    const char *p = path;
    loki_status st = lk_st_open_files(&p, 1, &s, &err);
    CHECKF(st == want, "%s: status %d, want %d (%.300s)", path, (int)st, (int)want, err.msg);
    CHECKF(strstr(err.msg, path) != NULL, "message names the file: %.400s", err.msg);
    CHECKF(strstr(err.msg, keyword) != NULL, "message has '%s': %.400s", keyword, err.msg);
    CHECK(s == NULL);
}

static void test_basic(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/basic.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[4] = {0x3f80, 0x4000, 0xbf80, 0x0000};   /* bf16 1, 2, -1, 0 */
    uint16_t h[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600};
    int64_t ids[2] = {7, 9};
    st_spec t[] = {
        {"a.weight", "F32", 2, {2, 3}, a, sizeof a},
        {"b", "BF16", 1, {4}, b, sizeof b},
        {"h.weight", "F16", 2, {3, 2}, h, sizeof h},
        {"position_ids", "I64", 1, {2}, ids, sizeof ids},
    };
    write_st(path, t, 4);
    lk_st_set *s = NULL;
    loki_error err = {0};
    const char *p = path;
    CHECK_OK(lk_st_open_files(&p, 1, &s, &err));
    if (!s) return;
    CHECK_EQ_INT(s->n_entries, 4);
    lk_tensor x;
    CHECK_OK(lk_st_get(s, "a.weight", false, &x, &err));
    CHECK_EQ_INT(x.dtype, LK_DTYPE_F32);
    CHECK_EQ_INT(x.n_dims, 2);
    CHECK_EQ_INT(x.ne[0], 3); /* shape [2, 3] reversed */
    CHECK_EQ_INT(x.ne[1], 2);
    CHECK_EQ_INT(x.nbytes, 24);
    float v[6];
    memcpy(v, x.data, sizeof v);
    CHECK(v[0] == 1.0f && v[5] == 6.0f);
    CHECK_OK(lk_st_get(s, "b", false, &x, &err));
    CHECK_EQ_INT(x.dtype, LK_DTYPE_BF16);
    CHECK_EQ_INT(x.ne[0], 4);
    uint16_t bv;
    memcpy(&bv, (const uint8_t *)x.data + 4, 2);
    CHECK(lk_bf16_to_f32(bv) == -1.0f);
    CHECK_OK(lk_st_get(s, "h.weight", false, &x, &err));
    CHECK_EQ_INT(x.dtype, LK_DTYPE_F16);
    CHECK_EQ_INT(x.ne[0], 2);
    CHECK_EQ_INT(x.ne[1], 3);
    /* unusable dtype: only rejected on lookup, naming tensor and dtype */
    loki_status st = lk_st_get(s, "position_ids", false, &x, &err);
    CHECK_EQ_INT(st, LOKI_ERR_UNSUPPORTED);
    CHECKF(strstr(err.msg, "position_ids") && strstr(err.msg, "I64") && strstr(err.msg, path),
           "%.400s", err.msg);
    st = lk_st_get(s, "nope.weight", false, &x, &err);
    CHECK_EQ_INT(st, LOKI_ERR_FORMAT);
    CHECKF(strstr(err.msg, "missing tensor") && strstr(err.msg, "nope.weight"), "%.400s", err.msg);
    CHECK_OK(lk_st_get(s, "nope.weight", true, &x, &err));
    CHECK(x.data == NULL);
    lk_st_free(s);
}

static void test_corrupt(const char *dir) {
    char path[512];
    float d[4] = {0};
    snprintf(path, sizeof path, "%s/hlen.safetensors", dir);
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d,
              sizeof d, 1u << 20);
    expect_fail(path, LOKI_ERR_FORMAT, "header length");

    snprintf(path, sizeof path, "%s/dtype.safetensors", dir);
    write_raw(path, "{\"x.weight\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,16]}}", d,
              sizeof d, 0);
    expect_fail(path, LOKI_ERR_UNSUPPORTED, "'Q4'");

    snprintf(path, sizeof path, "%s/oob.safetensors", dir);
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", d,
              sizeof d, 0);
    expect_fail(path, LOKI_ERR_FORMAT, "out of bounds");

    snprintf(path, sizeof path, "%s/span.safetensors", dir);
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d,
              sizeof d, 0);
    expect_fail(path, LOKI_ERR_FORMAT, "need");

    snprintf(path, sizeof path, "%s/json.safetensors", dir);
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],", d, sizeof d, 0);
    expect_fail(path, LOKI_ERR_FORMAT, "JSON");

    snprintf(path, sizeof path, "%s/shape.safetensors", dir);
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d,
              sizeof d, 0);
    expect_fail(path, LOKI_ERR_FORMAT, "shape");

    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    write_text(path, "abc");
    expect_fail(path, LOKI_ERR_FORMAT, "too small");

    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    expect_fail(path, LOKI_ERR_IO, "cannot open");
}

static void test_sharded(const char *dir) {
    char sub[512], path[600];
    snprintf(sub, sizeof sub, "%s/sharded", dir);
    mkdir(sub, 0755);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    st_spec s1[] = {{"a", "F32", 2, {2, 2}, a, sizeof a}};
    st_spec s2[] = {{"b", "F32", 1, {2}, b, sizeof b}};
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", sub);
    write_st(path, s1, 1);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", sub);
    write_st(path, s2, 1);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sub);
    write_text(path, "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
                     "\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00002-of-00002.safetensors\"}}");
    lk_st_set *s = NULL;
    loki_error err = {0};
    CHECK_OK(lk_st_open_dir(sub, &s, &err));
    if (s) {
        CHECK_EQ_INT(s->n_files, 2);
        lk_tensor x;
        CHECK_OK(lk_st_get(s, "b", false, &x, &err));
        float v;
        memcpy(&v, (const uint8_t *)x.data + 4, 4);
        CHECK(v == 6.0f);
        CHECK_OK(lk_st_get(s, "a", false, &x, &err));
        CHECK_EQ_INT(x.ne[0], 2);
        lk_st_free(s);
    }
    /* index naming the wrong shard */
    write_text(path, "{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\","
                     "\"b\":\"model-00002-of-00002.safetensors\"}}");
    s = NULL;
    loki_status st = lk_st_open_dir(sub, &s, &err);
    CHECK(st == LOKI_ERR_FORMAT && s == NULL);
    CHECKF(strstr(err.msg, "index.json") && strstr(err.msg, "'a'"), "%.400s", err.msg);
    /* index naming a shard that does not exist */
    write_text(path, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00003-of-00002.safetensors\"}}");
    st = lk_st_open_dir(sub, &s, &err);
    CHECK(st == LOKI_ERR_IO && s == NULL);
    CHECKF(strstr(err.msg, "model-00003-of-00002.safetensors"), "%.400s", err.msg);
    /* the same name in two shards */
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", sub);
    snprintf(p2, sizeof p2, "%s/dup.safetensors", sub);
    write_st(p2, s1, 1);
    const char *ps[2] = {p1, p2};
    st = lk_st_open_files(ps, 2, &s, &err);
    CHECK(st == LOKI_ERR_FORMAT && s == NULL);
    CHECKF(strstr(err.msg, "twice"), "%.400s", err.msg);
    /* invalid index JSON */
    write_text(path, "{\"weight_map\": [");
    st = lk_st_open_dir(sub, &s, &err);
    CHECK(st == LOKI_ERR_FORMAT && s == NULL);
    CHECKF(strstr(err.msg, path) && strstr(err.msg, "JSON"), "%.400s", err.msg);
}

/* The real checkpoint: values through the reader equal values found by
 * parsing the header text independently. */
static void test_fixture(void) {
    char *dir = test_shared_path("models/fixture-15m");
    char file[600];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    if (!test_file_exists(file)) {
        printf("fixture-15m absent: skipping the real-checkpoint checks\n");
        free(dir);
        return;
    }
    lk_st_set *s = NULL;
    loki_error err = {0};
    CHECK_OK(lk_st_open_dir(dir, &s, &err));
    FILE *f = fopen(file, "rb");
    uint64_t hlen;
    CHECK(fread(&hlen, 8, 1, f) == 1);
    char *hdr = calloc(1, hlen + 1);
    CHECK(fread(hdr, 1, hlen, f) == hlen);
    const char *names[] = {"model.norm.weight", "model.layers.3.self_attn.k_proj.weight"};
    for (int i = 0; s && i < 2; i++) {
        char key[128];
        snprintf(key, sizeof key, "\"%s\"", names[i]);
        const char *e = strstr(hdr, key);
        CHECK(e != NULL);
        if (!e) continue;
        unsigned long long b = 0, en = 0;
        const char *o = strstr(e, "data_offsets");
        CHECK(o && sscanf(o, "data_offsets\":[%llu,%llu]", &b, &en) == 2);
        uint16_t want[8], got[8];
        fseek(f, (long)(8 + hlen + b), SEEK_SET);
        CHECK(fread(want, 2, 8, f) == 8);
        lk_tensor t;
        CHECK_OK(lk_st_get(s, names[i], false, &t, &err));
        CHECK_EQ_INT(t.dtype, LK_DTYPE_BF16);
        CHECK_EQ_INT(t.nbytes, en - b);
        memcpy(got, t.data, sizeof got);
        CHECK(memcmp(got, want, sizeof got) == 0);
        if (i == 1) {
            CHECK_EQ_INT(t.ne[0], 384);
            CHECK_EQ_INT(t.ne[1], 128);
        }
    }
    CHECK_EQ_INT(s ? s->n_entries : 0, 74);
    free(hdr);
    fclose(f);
    lk_st_free(s);
    free(dir);
}

int main(void) {
    char dir[] = "/tmp/loki-st-XXXXXX";
    if (!mkdtemp(dir)) test_skip("cannot create a temp dir");
    test_basic(dir);
    test_corrupt(dir);
    test_sharded(dir);
    test_fixture();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return test_finish();
}
