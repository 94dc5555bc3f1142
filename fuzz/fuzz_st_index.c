/* fuzz_st_index.c - the sharded-safetensors index reader
 * (model.safetensors.index.json: lk_st_index_parse, the in-memory core of
 * lk_st_open_dir). Input: the index text. When it names exactly one shard,
 * its weight_map is also checked (lk_st_index_check) against a fixed
 * one-shard set holding the tensors "a", "b" and "model.embed_tokens.weight",
 * opened from an anonymous memory file. */
#include "format/safetensors.h"
#include "fuzz_util.h"

static const char shard_header[] =
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
    "\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[12,20]}}";

/* The fixed shard: header length, header, 20 data bytes. */
static size_t make_shard(uint8_t *buf, size_t cap) {
    uint64_t n = sizeof shard_header - 1;
    if (8 + n + 20 > cap) abort();
    memcpy(buf, &n, 8);
    memcpy(buf + 8, shard_header, n);
    memset(buf + 8 + n, 0, 20);
    return 8 + n + 20;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_st_index ix;
    loki_error err;
    if (lk_st_index_parse((const char *)data, size, "fuzz/model.safetensors.index.json", &ix, &err) != LOKI_OK)
        return 0;
    if (ix.n_shards == 1) {
        uint8_t shard[512];
        char path[64];
        int fd = fuzz_memfd(shard, make_shard(shard, sizeof shard), path, sizeof path);
        const char *paths[1] = {path};
        lk_st_set *s = NULL;
        if (lk_st_open_files(paths, 1, &s, &err) != LOKI_OK) abort(); /* the fixed shard is valid */
        (void)lk_st_index_check(&ix, s, "fuzz/model.safetensors.index.json", &err);
        lk_st_free(s);
        close(fd);
    }
    lk_st_index_free(&ix);
    return 0;
}
