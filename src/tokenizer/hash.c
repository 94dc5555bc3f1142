/*
 * hash.c - open-addressing (linear probing) hash tables for the tokenizers.
 * Capacity is kept a power of two and at least twice the key count, so probe
 * sequences stay short and a lookup always terminates at an empty slot.
 */
#include "tokenizer/hash.h"

#include <stdlib.h>
#include <string.h>

uint32_t lk_hash_bytes(const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64-bit offset basis */
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* splitmix64 finalizer: spreads the (left id, right id) pairs, whose low bits
 * alone would collide heavily. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Smallest power of two >= 2 * n (and >= 16). */
static size_t table_cap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    return cap;
}

/* ------------------------------------------------------------ lk_strmap */

loki_status lk_strmap_init(lk_strmap *m, size_t n_hint, loki_error *err) {
    memset(m, 0, sizeof *m);
    m->cap = table_cap(n_hint);
    m->slots = lk_calloc(m->cap, sizeof *m->slots, err);
    return m->slots ? LOKI_OK : LOKI_ERR_NOMEM;
}

void lk_strmap_free(lk_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Slot holding key, or the empty slot where it would go. */
static size_t strmap_find(const lk_strmap *m, const char *key, size_t len, uint32_t h) {
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    for (;;) {
        const lk_strmap_entry *e = &m->slots[i];
        if (!e->key) return i;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

/* Double the table, re-inserting every key (hashes are kept, not recomputed). */
static loki_status strmap_grow(lk_strmap *m, loki_error *err) {
    size_t ncap = m->cap * 2;
    lk_strmap_entry *ns = lk_calloc(ncap, sizeof *ns, err);
    if (!ns) return LOKI_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        lk_strmap_entry *e = &m->slots[i];
        if (!e->key) continue;
        size_t j = e->hash & (ncap - 1);
        while (ns[j].key) j = (j + 1) & (ncap - 1);
        ns[j] = *e;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return LOKI_OK;
}

loki_status lk_strmap_put(lk_strmap *m, const char *key, size_t len, int32_t val,
                          bool *existed, loki_error *err) {
    if (len > UINT32_MAX) return lk_fail(err, LOKI_ERR_ARG, "hash key of %zu bytes is too long", len);
    if (2 * (m->n + 1) > m->cap) {
        loki_status st = strmap_grow(m, err);
        if (st) return st;
    }
    uint32_t h = lk_hash_bytes(key, len);
    size_t i = strmap_find(m, key, len, h);
    if (m->slots[i].key) {
        if (existed) *existed = true;
        return LOKI_OK;
    }
    /* An empty key still needs a non-NULL pointer to mark the slot used. */
    m->slots[i].key = key ? key : "";
    m->slots[i].len = (uint32_t)len;
    m->slots[i].hash = h;
    m->slots[i].val = val;
    m->n++;
    if (existed) *existed = false;
    return LOKI_OK;
}

int32_t lk_strmap_get(const lk_strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    uint32_t h = lk_hash_bytes(key, len);
    size_t i = strmap_find(m, key, len, h);
    return m->slots[i].key ? m->slots[i].val : -1;
}

/* ------------------------------------------------------------ lk_u64map */

loki_status lk_u64map_init(lk_u64map *m, size_t n_hint, loki_error *err) {
    memset(m, 0, sizeof *m);
    m->cap = table_cap(n_hint);
    m->keys = lk_malloc(m->cap * sizeof *m->keys, err);
    m->vals = lk_malloc(m->cap * sizeof *m->vals, err);
    m->used = lk_calloc(m->cap, 1, err);
    if (!m->keys || !m->vals || !m->used) {
        lk_u64map_free(m);
        return LOKI_ERR_NOMEM;
    }
    return LOKI_OK;
}

void lk_u64map_free(lk_u64map *m) {
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

/* Slot holding key, or the empty slot where it would go. */
static size_t u64map_find(const lk_u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)mix64(key) & mask;
    while (m->used[i] && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

/* Double the table, re-inserting every key. */
static loki_status u64map_grow(lk_u64map *m, loki_error *err) {
    lk_u64map n;
    loki_status st = lk_u64map_init(&n, m->cap, err); /* table_cap doubles */
    if (st) return st;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i]) continue;
        size_t j = u64map_find(&n, m->keys[i]);
        n.used[j] = 1;
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
        n.n++;
    }
    lk_u64map_free(m);
    *m = n;
    return LOKI_OK;
}

loki_status lk_u64map_put(lk_u64map *m, uint64_t key, uint64_t val, bool *existed,
                          loki_error *err) {
    if (2 * (m->n + 1) > m->cap) {
        loki_status st = u64map_grow(m, err);
        if (st) return st;
    }
    size_t i = u64map_find(m, key);
    if (m->used[i]) {
        if (existed) *existed = true;
        return LOKI_OK;
    }
    m->used[i] = 1;
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    if (existed) *existed = false;
    return LOKI_OK;
}

bool lk_u64map_get(const lk_u64map *m, uint64_t key, uint64_t *val) {
    if (!m->used) return false;
    size_t i = u64map_find(m, key);
    if (!m->used[i]) return false;
    *val = m->vals[i];
    return true;
}
