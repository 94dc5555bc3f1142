/*
 * hash.h - open-addressing hash tables used by the tokenizers.
 *
 * lk_strmap: byte string -> int32. Keys are NOT copied: they point into
 *            memory the caller keeps alive for the map's lifetime (the
 *            vocabulary's text arena), which keeps the table small.
 * lk_u64map: uint64 -> uint64 (BPE merge pairs (left id, right id) -> rank
 *            and result id).
 * Both use linear probing at load factor <= 1/2 and never shrink; neither
 * supports deletion (vocabularies are built once and then only read).
 */
#ifndef LK_TOK_HASH_H
#define LK_TOK_HASH_H

#include "core/common.h"

typedef struct lk_strmap_entry {
    const char *key; /* NULL: empty slot */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} lk_strmap_entry;

typedef struct lk_strmap {
    lk_strmap_entry *slots;
    size_t cap; /* power of two */
    size_t n;
} lk_strmap;

/* FNV-1a over n bytes (64-bit, folded to 32). */
uint32_t lk_hash_bytes(const void *p, size_t n);

/* Prepare an empty map sized for about n_hint keys. */
loki_status lk_strmap_init(lk_strmap *m, size_t n_hint, loki_error *err);
void lk_strmap_free(lk_strmap *m);
/* Insert key -> val. If the key is present, keeps the old value and sets
 * *existed (may be NULL) to true; else inserts and sets it to false. */
loki_status lk_strmap_put(lk_strmap *m, const char *key, size_t len, int32_t val,
                          bool *existed, loki_error *err);
/* Value for key, or -1 when absent. */
int32_t lk_strmap_get(const lk_strmap *m, const char *key, size_t len);

typedef struct lk_u64map {
    uint64_t *keys;
    uint64_t *vals;
    uint8_t *used;
    size_t cap; /* power of two */
    size_t n;
} lk_u64map;

loki_status lk_u64map_init(lk_u64map *m, size_t n_hint, loki_error *err);
void lk_u64map_free(lk_u64map *m);
/* Insert key -> val unless the key is present (first insertion wins, like
 * std::unordered_map::emplace); *existed as for lk_strmap_put. */
loki_status lk_u64map_put(lk_u64map *m, uint64_t key, uint64_t val, bool *existed,
                          loki_error *err);
/* True and *val set if key is present. */
bool lk_u64map_get(const lk_u64map *m, uint64_t key, uint64_t *val);

#endif /* LK_TOK_HASH_H */
