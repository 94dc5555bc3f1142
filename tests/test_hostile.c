/* test_hostile.c - resource limits on hostile sizes (issue 10, item 4): small
 * hand-made files that declare huge counts, lengths, dimensions, ids or
 * layer counts, or duplicate names, must be refused with a clear error
 * before anything is allocated from the declared numbers (no crash, no
 * multi-gigabyte allocation: under ASan such an allocation fails the test). */
#include "test.h"

#include "format/gguf.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "tokenizer/vocab.h"

#include <sys/stat.h>
#include <unistd.h>

/* A little-endian byte buffer for hand-made GGUF files. */
typedef struct bytes {
    uint8_t d[4096];
    size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
    if (b->n + n > sizeof b->d) abort(); /* test bug */
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
/* GGUF v3 header: magic, version, tensor count, metadata count. */
static void put_header(bytes *b, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void put_kv_u32(bytes *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, LK_GGUF_UINT32);
    put_u32(b, v);
}
/* A 1-D f32 tensor info of ne elements at data offset off. */
static void put_tensor(bytes *b, const char *name, uint64_t ne, uint64_t off) {
    put_str(b, name);
    put_u32(b, 1);
    put_u64(b, ne);
    put_u32(b, LK_DTYPE_F32);
    put_u64(b, off);
}

/* lk_gguf_open on b must fail with a message containing needle. */
static void expect_gguf_error(const char *dir, const char *what, bytes *b, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, what);
    for (size_t pad = b->n; pad % 32; pad++) put(b, "", 1); /* align the (empty) data area */
    test_write_all(path, b->d, b->n);
    lk_gguf g;
    loki_error err = {0};
    loki_status st = lk_gguf_open(path, &g, &err);
    CHECKF(st != LOKI_OK && strstr(err.msg, needle) && strstr(err.msg, path), "%s: status %d, message '%s' (want '%s')",
           what, (int)st, err.msg, needle);
    if (st == LOKI_OK) lk_gguf_close(&g);
}

static void test_gguf(const char *dir) {
    bytes b = {0};
    put_header(&b, (uint64_t)1 << 40, 1); /* 2^40 tensors in a 64-byte file */
    put_kv_u32(&b, "a", 1);
    expect_gguf_error(dir, "tensors-2e40", &b, "implausible counts");

    b.n = 0; /* 300 metadata entries fit the old bound (size / 8), not 13 bytes each */
    put_header(&b, 0, 300);
    put_kv_u32(&b, "a", 1);
    while (b.n < 2400) put(&b, "", 1);
    expect_gguf_error(dir, "kv-count", &b, "implausible counts");

    b.n = 0; /* a key string of 2^62 bytes */
    put_header(&b, 0, 1);
    put_u64(&b, (uint64_t)1 << 62);
    put(&b, "abcdefgh", 8);
    expect_gguf_error(dir, "string-2e62", &b, "truncated");

    b.n = 0; /* a string value of 2^62 bytes */
    put_header(&b, 0, 1);
    put_str(&b, "general.name");
    put_u32(&b, LK_GGUF_STRING);
    put_u64(&b, (uint64_t)1 << 62);
    expect_gguf_error(dir, "value-2e62", &b, "truncated");

    b.n = 0; /* a vocabulary of 10^12 tokens */
    put_header(&b, 0, 1);
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, LK_GGUF_ARRAY);
    put_u32(&b, LK_GGUF_STRING);
    put_u64(&b, 1000000000000ull);
    put_str(&b, "a");
    expect_gguf_error(dir, "vocab-1e12", &b, "declares 1000000000000 strings");

    b.n = 0; /* a u32 array of 2^61 elements (2^63 bytes) */
    put_header(&b, 0, 1);
    put_str(&b, "a");
    put_u32(&b, LK_GGUF_ARRAY);
    put_u32(&b, LK_GGUF_UINT32);
    put_u64(&b, (uint64_t)1 << 61);
    expect_gguf_error(dir, "array-2e61", &b, "truncated");

    b.n = 0; /* dimensions whose product passes 2^64: 4 x 2^40 */
    put_header(&b, 1, 0);
    put_str(&b, "t");
    put_u32(&b, 4);
    for (int i = 0; i < 4; i++) put_u64(&b, (uint64_t)1 << 40);
    put_u32(&b, LK_DTYPE_F32);
    put_u64(&b, 0);
    expect_gguf_error(dir, "dims-2e160", &b, "more than 2^42 elements");

    b.n = 0; /* the same metadata key twice */
    put_header(&b, 0, 2);
    put_kv_u32(&b, "llama.block_count", 1);
    put_kv_u32(&b, "llama.block_count", 1000000);
    expect_gguf_error(dir, "dup-key", &b, "duplicate metadata key 'llama.block_count'");

    b.n = 0; /* the same tensor name twice */
    put_header(&b, 2, 0);
    put_tensor(&b, "blk.0.attn_q.weight", 8, 0);
    put_tensor(&b, "blk.0.attn_q.weight", 8, 32);
    for (size_t pad = b.n; pad % 32; pad++) put(&b, "", 1);
    for (int i = 0; i < 64; i++) put(&b, "\0", 1);
    expect_gguf_error(dir, "dup-tensor", &b, "duplicate tensor name 'blk.0.attn_q.weight'");
}

/* A llama GGUF model whose block_count (2^31 - 1) its 4 tensors cannot back:
 * refused before the layer table (2^31 entries) is allocated. */
static void test_gguf_block_count(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/block-count.gguf", dir);
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, NULL));
    lk_gguf_writer_add_str(w, "general.architecture", "llama");
    lk_gguf_writer_add_u32(w, "llama.context_length", 64);
    lk_gguf_writer_add_u32(w, "llama.embedding_length", 8);
    lk_gguf_writer_add_u32(w, "llama.block_count", INT32_MAX);
    lk_gguf_writer_add_u32(w, "llama.feed_forward_length", 16);
    lk_gguf_writer_add_u32(w, "llama.attention.head_count", 2);
    lk_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    const char *toks[] = {"a", "b", "c", "d"};
    lk_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    lk_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    float emb[32] = {0};
    int64_t ne_emb[2] = {8, 4}, ne_norm[1] = {8};
    CHECK_OK(lk_gguf_writer_add_tensor(w, "token_embd.weight", LK_DTYPE_F32, 2, ne_emb, emb));
    CHECK_OK(lk_gguf_writer_add_tensor(w, "output_norm.weight", LK_DTYPE_F32, 1, ne_norm, emb));
    CHECK_OK(lk_gguf_writer_write(w, path, NULL));
    lk_gguf_writer_free(w);
    loki_model *m = NULL;
    loki_error err = {0};
    loki_status st = loki_model_open(path, NULL, &m, &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "block_count 2147483647 needs at least"), "status %d: %s",
           (int)st, err.msg);
    loki_model_close(m);
}

/* tokenizer.json: one token with id 2e9 must not size the per-token arrays
 * (2e9 x 14 bytes); Sequences nested 20 deep are refused. */
static void test_tokenizer_json(void) {
    static const char big_id[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2000000000}, \"merges\": []}}";
    lk_vocab v;
    loki_error err = {0};
    loki_status st = lk_vocab_from_hf_json(&v, big_id, sizeof big_id - 1, NULL, 0, "big-id/tokenizer.json", &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "big-id/tokenizer.json: token id 2000000000 is beyond"),
           "status %d: %s", (int)st, err.msg);
    if (st == LOKI_OK) lk_vocab_free(&v);

    char deep[4096];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                                "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
                                "[{\"type\": \"ByteLevel\"}, ");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"type\": \"Sequence\", \"pretokenizers\": [");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"type\": \"ByteLevel\"}");
    for (int i = 0; i < 20; i++) n += (size_t)snprintf(deep + n, sizeof deep - n, "]}");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "]}}");
    memset(&err, 0, sizeof err);
    st = lk_vocab_from_hf_json(&v, deep, n, NULL, 0, "deep/tokenizer.json", &err);
    CHECKF(st != LOKI_OK && strstr(err.msg, "nested deeper than"), "status %d: %s", (int)st, err.msg);
    if (st == LOKI_OK) lk_vocab_free(&v);
}

/* A llama2.c tok*.bin of 12 bytes for the 4M-token vocabulary a checkpoint
 * declares: refused before the per-token arrays (4M x 14 bytes). */
static void test_llama2c_tok(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/tok.bin", dir);
    const int32_t d[3] = {8, 0, 0}; /* max_token_length 8, one token: score 0, length 0 */
    test_write_all(path, d, sizeof d);
    lk_vocab v;
    loki_error err = {0};
    loki_status st = lk_vocab_from_llama2c(&v, path, 4 << 20, &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "4194304 tokens need at least"), "status %d: %s", (int)st,
           err.msg);
    if (st == LOKI_OK) lk_vocab_free(&v);
}

/* safetensors: one tensor name twice in a header; an index naming 1025
 * shard files (each would be opened and mapped). */
static void test_safetensors(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/dup.safetensors", dir);
    static const char hdr[] = "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                              "\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}";
    uint8_t f[8 + sizeof hdr + 8] = {0};
    uint64_t hlen = sizeof hdr - 1;
    memcpy(f, &hlen, 8);
    memcpy(f + 8, hdr, hlen);
    test_write_all(path, f, 8 + hlen + 8);
    const char *paths[1] = {path};
    lk_st_set *s = NULL;
    loki_error err = {0};
    loki_status st = lk_st_open_files(paths, 1, &s, &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "tensor 'w' appears twice"), "status %d: %s", (int)st, err.msg);
    lk_st_free(s);

    size_t cap = 64 * 1100, n = 0;
    char *ix = malloc(cap);
    if (!ix) abort();
    n += (size_t)snprintf(ix + n, cap - n, "{\"weight_map\": {");
    for (int i = 0; i <= LK_ST_MAX_SHARDS; i++)
        n += (size_t)snprintf(ix + n, cap - n, "%s\"t%d\": \"s%d.safetensors\"", i ? ", " : "", i, i);
    n += (size_t)snprintf(ix + n, cap - n, "}}");
    lk_st_index x;
    st = lk_st_index_parse(ix, n, "many/model.safetensors.index.json", &x, &err);
    CHECKF(st == LOKI_ERR_UNSUPPORTED && strstr(err.msg, "more than 1024 shard files"), "status %d: %s", (int)st,
           err.msg);
    if (st == LOKI_OK) lk_st_index_free(&x);
    free(ix);
}

/* JSON nested 200000 deep: cJSON's nesting limit (1000) refuses it, without
 * a stack overflow. */
static void test_json_depth(void) {
    size_t depth = 200000;
    char *s = malloc(2 * depth + 1);
    if (!s) abort();
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = 0;
    lk_hf_config cfg;
    loki_error err = {0};
    loki_status st = lk_hf_config_parse(s, 2 * depth, "deep/config.json", &cfg, &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "deep/config.json"), "status %d: %s", (int)st, err.msg);
    lk_vocab v;
    st = lk_vocab_from_hf_json(&v, s, 2 * depth, NULL, 0, "deep/tokenizer.json", &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "deep/tokenizer.json"), "status %d: %s", (int)st, err.msg);
    free(s);
}

/* A Hugging Face directory whose config.json says num_hidden_layers =
 * 2^31 - 1 next to a 2-tensor checkpoint. */
static void test_hf_layers(const char *dir) {
    char d[512], path[600];
    snprintf(d, sizeof d, "%s/hf-layers", dir);
    mkdir(d, 0755);
    snprintf(path, sizeof path, "%s/config.json", d);
    static const char cfg[] = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
                              "\"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 2147483647, "
                              "\"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"vocab_size\": 4, "
                              "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": true}";
    test_write_all(path, cfg, sizeof cfg - 1);
    static const char hdr[] = "{\"model.embed_tokens.weight\": {\"dtype\": \"F32\", \"shape\": [4, 8], "
                              "\"data_offsets\": [0, 128]}, \"model.norm.weight\": {\"dtype\": \"F32\", "
                              "\"shape\": [8], \"data_offsets\": [128, 160]}}";
    uint8_t st_file[8 + sizeof hdr + 160] = {0};
    uint64_t hlen = sizeof hdr - 1;
    memcpy(st_file, &hlen, 8);
    memcpy(st_file + 8, hdr, hlen);
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    test_write_all(path, st_file, 8 + hlen + 160);
    loki_model *m = NULL;
    loki_error err = {0};
    loki_status st = loki_model_open(d, NULL, &m, &err);
    CHECKF(st == LOKI_ERR_FORMAT && strstr(err.msg, "num_hidden_layers = 2147483647, which needs"),
           "status %d: %s", (int)st, err.msg);
    loki_model_close(m);
}

int main(void) {
    char dir[] = "/tmp/loki-hostile-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_gguf(dir);
    test_gguf_block_count(dir);
    test_tokenizer_json();
    test_json_depth();
    test_llama2c_tok(dir);
    test_safetensors(dir);
    test_hf_layers(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish();
}
