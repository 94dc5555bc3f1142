/*
 * gguf.c - GGUF v2/v3 reader: parses the header of a memory-mapped file into
 * lk_gguf (metadata and tensor views pointing into the mapping). Every read is
 * bounds-checked against the file size so a truncated or corrupt file gives a
 * clear error instead of a crash. The writer lives in gguf_write.c.
 */
#include "format/gguf.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_ELEMENTS ((uint64_t)1 << 42) /* elements in one tensor (4 Ti) */
#define GGUF_DEFAULT_ALIGNMENT 32
/* The smallest possible records: a metadata entry is a key length (8), a
 * type (4) and at least a 1-byte value; a tensor info a name length (8),
 * n_dims (4), one dimension (8), a type (4) and an offset (8). Declared
 * counts are checked against the bytes that can back them before anything
 * is allocated from them. */
#define GGUF_MIN_KV_BYTES 13
#define GGUF_MIN_TENSOR_BYTES 32

/* Cursor over the mapping; every take checks bounds. */
typedef struct gguf_reader {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *path;
    loki_error *err;
} gguf_reader;

static loki_status rd_need(gguf_reader *r, uint64_t n, const char *what) {
    if (n > r->size || r->pos > r->size - n)
        return lk_fail(r->err, LOKI_ERR_FORMAT,
                       "%s: truncated GGUF file: %s at offset %zu needs %llu bytes, file has %zu",
                       r->path, what, r->pos, (unsigned long long)n, r->size);
    return LOKI_OK;
}

static loki_status rd_bytes(gguf_reader *r, void *dst, size_t n, const char *what) {
    loki_status st = rd_need(r, n, what);
    if (st) return st;
    memcpy(dst, r->base + r->pos, n);
    r->pos += n;
    return LOKI_OK;
}

static loki_status rd_u32(gguf_reader *r, uint32_t *v, const char *what) {
    return rd_bytes(r, v, 4, what);
}

static loki_status rd_u64(gguf_reader *r, uint64_t *v, const char *what) {
    return rd_bytes(r, v, 8, what);
}

static loki_status rd_str(gguf_reader *r, lk_gguf_str *s, const char *what) {
    uint64_t n;
    loki_status st = rd_u64(r, &n, what);
    if (st) return st;
    if ((st = rd_need(r, n, what))) return st;
    s->ptr = (const char *)r->base + r->pos;
    s->len = n;
    r->pos += n;
    return LOKI_OK;
}

size_t lk_gguf_type_size(lk_gguf_type t) {
    switch (t) {
    case LK_GGUF_UINT8: case LK_GGUF_INT8: case LK_GGUF_BOOL: return 1;
    case LK_GGUF_UINT16: case LK_GGUF_INT16: return 2;
    case LK_GGUF_UINT32: case LK_GGUF_INT32: case LK_GGUF_FLOAT32: return 4;
    case LK_GGUF_UINT64: case LK_GGUF_INT64: case LK_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *const gguf_type_names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                              "bool", "string", "array", "u64", "i64", "f64"};

const char *lk_gguf_type_name(lk_gguf_type t) {
    return (unsigned)t < LK_ARRAY_LEN(gguf_type_names) ? gguf_type_names[t] : "?";
}

/* Widen a scalar stored at p (type t, numeric or bool) into kv->v. */
static void scalar_load(lk_gguf_type t, const uint8_t *p, lk_gguf_kv *kv) {
    switch (t) {
    case LK_GGUF_UINT8: kv->v.u64 = p[0]; break;
    case LK_GGUF_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case LK_GGUF_BOOL: kv->v.b = p[0] != 0; break;
    case LK_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u64 = x; break; }
    case LK_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i64 = x; break; }
    case LK_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u64 = x; break; }
    case LK_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i64 = x; break; }
    case LK_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f64 = x; break; }
    case LK_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u64 = x; break; }
    case LK_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); kv->v.i64 = x; break; }
    case LK_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); kv->v.f64 = x; break; }
    default: break;
    }
}

static loki_status read_kv(gguf_reader *r, lk_gguf_kv *kv) {
    lk_gguf_str key;
    loki_status st = rd_str(r, &key, "metadata key");
    if (st) return st;
    if (!(kv->key = lk_calloc_for(key.len + 1, 1, r->path, "a metadata key", r->err))) return LOKI_ERR_NOMEM;
    memcpy(kv->key, key.ptr, key.len);
    uint32_t type;
    if ((st = rd_u32(r, &type, "metadata type"))) return st;
    if (type > LK_GGUF_FLOAT64)
        return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: metadata '%s' has unknown type %u",
                       r->path, kv->key, type);
    kv->type = (lk_gguf_type)type;
    if (kv->type == LK_GGUF_STRING) return rd_str(r, &kv->v.str, kv->key);
    if (kv->type != LK_GGUF_ARRAY) {
        size_t sz = lk_gguf_type_size(kv->type);
        if ((st = rd_need(r, sz, kv->key))) return st;
        scalar_load(kv->type, r->base + r->pos, kv);
        r->pos += sz;
        return LOKI_OK;
    }
    uint32_t at;
    if ((st = rd_u32(r, &at, kv->key)) || (st = rd_u64(r, &kv->arr_n, kv->key))) return st;
    if (at > LK_GGUF_FLOAT64 || at == LK_GGUF_ARRAY)
        return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: metadata array '%s' has unsupported element type %u",
                       r->path, kv->key, at);
    kv->arr_type = (lk_gguf_type)at;
    if (kv->arr_type != LK_GGUF_STRING) {
        size_t sz = lk_gguf_type_size(kv->arr_type);
        if (kv->arr_n > r->size / sz) return rd_need(r, r->size + 1, kv->key);
        if ((st = rd_need(r, kv->arr_n * sz, kv->key))) return st;
        kv->arr_data = r->base + r->pos;
        r->pos += kv->arr_n * sz;
        return LOKI_OK;
    }
    /* each string takes at least 8 bytes: reject absurd counts before allocating */
    if (kv->arr_n > (r->size - r->pos) / 8) /* (arr_n * 8 may wrap: report, never pass rd_need a product) */
        return lk_fail(r->err, LOKI_ERR_FORMAT,
                       "%s: truncated GGUF file: string array '%s' at offset %zu declares %llu strings, "
                       "the %zu bytes left hold at most %zu", r->path, kv->key, r->pos,
                       (unsigned long long)kv->arr_n, r->size - r->pos, (r->size - r->pos) / 8);
    kv->arr_str = lk_calloc_for(kv->arr_n, sizeof(lk_gguf_str), r->path, "the index of a string array", r->err);
    if (!kv->arr_str) return LOKI_ERR_NOMEM;
    for (uint64_t i = 0; i < kv->arr_n; i++)
        if ((st = rd_str(r, &kv->arr_str[i], kv->key))) return st;
    return LOKI_OK;
}

static loki_status read_tensor_info(gguf_reader *r, lk_tensor *t, uint64_t *offset) {
    lk_gguf_str name;
    loki_status st = rd_str(r, &name, "tensor name");
    if (st) return st;
    char *nm = lk_calloc_for(name.len + 1, 1, r->path, "a tensor name", r->err);
    if (!nm) return LOKI_ERR_NOMEM;
    memcpy(nm, name.ptr, name.len);
    t->name = nm;
    uint32_t n_dims, dtype;
    if ((st = rd_u32(r, &n_dims, nm))) return st;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..4 allowed)",
                       r->path, nm, n_dims);
    t->n_dims = (int)n_dims;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    /* the element count is checked while the dimensions are read: a product
     * of four dimensions of up to 2^40 each would overflow int64 */
    uint64_t count = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        uint64_t ne;
        if ((st = rd_u64(r, &ne, nm))) return st;
        if (ne == 0 || ne > ((uint64_t)1 << 40))
            return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: tensor '%s' has invalid dimension %llu",
                           r->path, nm, (unsigned long long)ne);
        t->ne[i] = (int64_t)ne;
        if (count > GGUF_MAX_ELEMENTS / ne)
            return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: tensor '%s' has more than 2^42 elements",
                           r->path, nm);
        count *= ne;
    }
    if ((st = rd_u32(r, &dtype, nm)) || (st = rd_u64(r, offset, nm))) return st;
    if (!lk_dtype_valid((int)dtype))
        return lk_fail(r->err, LOKI_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has type %u (%s), which loki does not read (it reads f32, f16, "
                       "bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k)",
                       r->path, nm, dtype, dtype < 256 && strcmp(lk_dtype_name((lk_dtype)dtype), "?")
                       ? lk_dtype_name((lk_dtype)dtype) : "a type id unknown to this loki");
    t->dtype = (lk_dtype)dtype;
    if (t->ne[0] % lk_dtype_block_elems(t->dtype) != 0)
        return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: tensor '%s': row length %lld is not a multiple of the %s block",
                       r->path, nm, (long long)t->ne[0], lk_dtype_name(t->dtype));
    int64_t n = lk_tensor_nelements(t);
    if (n <= 0 || n > (int64_t)GGUF_MAX_ELEMENTS)
        return lk_fail(r->err, LOKI_ERR_FORMAT, "%s: tensor '%s' has an invalid element count", r->path, nm);
    t->nbytes = lk_dtype_row_bytes(t->dtype, t->ne[0]) * (size_t)(n / t->ne[0]);
    return LOKI_OK;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* No two metadata keys (tensors false) or tensor names (tensors true) of g
 * are equal: a reader would silently take the first, a writer the other. */
static loki_status check_unique(const lk_gguf *g, bool tensors, loki_error *err) {
    uint64_t n = tensors ? g->n_tensors : g->n_kv;
    const char *what = tensors ? "tensor name" : "metadata key";
    if (n < 2) return LOKI_OK;
    const char **names = lk_calloc_for(n, sizeof(char *), g->path, tensors ? "the tensor name index" :
                                       "the metadata key index", err);
    if (!names) return LOKI_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) names[i] = tensors ? g->tensors[i].name : g->kv[i].key;
    qsort(names, n, sizeof(char *), cmp_names); /* O(n log n): a hostile file may declare millions */
    loki_status st = LOKI_OK;
    for (uint64_t i = 1; i < n && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: duplicate %s '%s'", g->path, what, names[i]);
    free(names);
    return st;
}

loki_status lk_gguf_open(const char *path, lk_gguf *g, loki_error *err) {
    memset(g, 0, sizeof(*g));
    uint64_t *offsets = NULL;
    loki_status st = lk_file_map(path, &g->map, err);
    if (st) return st;
    if (!(g->path = lk_strdup(path, err))) { st = LOKI_ERR_NOMEM; goto fail; }
    gguf_reader r = {g->map.data, g->map.size, 0, path, err};
    char magic[4];
    if ((st = rd_bytes(&r, magic, 4, "magic"))) goto fail;
    if (memcmp(magic, "GGUF", 4) != 0) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: not a GGUF file (bad magic)", path);
        goto fail;
    }
    if ((st = rd_u32(&r, &g->version, "version"))) goto fail;
    if (g->version != 2 && g->version != 3) {
        st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: GGUF version %u not supported (2 and 3 are)", path, g->version);
        goto fail;
    }
    if ((st = rd_u64(&r, &g->n_tensors, "tensor count")) || (st = rd_u64(&r, &g->n_kv, "metadata count")))
        goto fail;
    /* every kv and tensor info needs GGUF_MIN_*_BYTES of the rest of the file */
    size_t rest = g->map.size - r.pos;
    if (g->n_kv > rest / GGUF_MIN_KV_BYTES || g->n_tensors > rest / GGUF_MIN_TENSOR_BYTES ||
        g->n_kv * GGUF_MIN_KV_BYTES > rest - g->n_tensors * GGUF_MIN_TENSOR_BYTES) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: truncated GGUF file or implausible counts (%llu metadata, "
                     "%llu tensors): the %zu bytes after the header hold at most %zu metadata entries or %zu "
                     "tensor infos", path,
                     (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, rest, rest / GGUF_MIN_KV_BYTES,
                     rest / GGUF_MIN_TENSOR_BYTES);
        goto fail;
    }
    g->kv = lk_calloc_for(g->n_kv, sizeof(lk_gguf_kv), path, "the metadata table", err);
    g->tensors = lk_calloc_for(g->n_tensors, sizeof(lk_tensor), path, "the tensor table", err);
    offsets = lk_calloc_for(g->n_tensors, sizeof(uint64_t), path, "the tensor offsets", err);
    if (!g->kv || !g->tensors || !offsets) { st = LOKI_ERR_NOMEM; goto fail; }
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((st = read_kv(&r, &g->kv[i]))) goto fail;
    if ((st = check_unique(g, false, err))) goto fail;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const lk_gguf_kv *al = lk_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != LK_GGUF_UINT32 || al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1))) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: general.alignment must be a power-of-two u32", path);
            goto fail;
        }
        g->alignment = (size_t)al->v.u64;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = read_tensor_info(&r, &g->tensors[i], &offsets[i]))) goto fail;
    if ((st = check_unique(g, true, err))) goto fail;
    g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        lk_tensor *t = &g->tensors[i];
        uint64_t start = g->data_offset + offsets[i];
        if (offsets[i] % g->alignment != 0) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' offset %llu is not aligned to %zu",
                         path, t->name, (unsigned long long)offsets[i], g->alignment);
            goto fail;
        }
        if (offsets[i] > g->map.size || start > g->map.size || t->nbytes > g->map.size - start) {
            st = lk_fail(err, LOKI_ERR_FORMAT,
                         "%s: tensor '%s' data out of bounds (offset %llu + %zu bytes > file size %zu)",
                         path, t->name, (unsigned long long)start, t->nbytes, g->map.size);
            goto fail;
        }
        t->data = g->map.data + start;
    }
    free(offsets);
    return LOKI_OK;
fail:
    free(offsets);
    lk_gguf_close(g);
    return st;
}

void lk_gguf_close(lk_gguf *g) {
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].arr_str);
        }
        free(g->kv);
    }
    if (g->tensors) {
        for (uint64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
        free(g->tensors);
    }
    lk_file_unmap(&g->map);
    free(g->path);
    memset(g, 0, sizeof(*g));
}

const lk_gguf_kv *lk_gguf_find(const lk_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const lk_tensor *lk_gguf_find_tensor(const lk_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static bool type_is_signed(lk_gguf_type t) {
    return t == LK_GGUF_INT8 || t == LK_GGUF_INT16 || t == LK_GGUF_INT32 || t == LK_GGUF_INT64;
}

static bool type_is_int(lk_gguf_type t) {
    return type_is_signed(t) || t == LK_GGUF_UINT8 || t == LK_GGUF_UINT16 || t == LK_GGUF_UINT32 ||
           t == LK_GGUF_UINT64;
}

bool lk_gguf_get_i64(const lk_gguf *g, const char *key, int64_t *out) {
    const lk_gguf_kv *kv = lk_gguf_find(g, key);
    if (!kv || !type_is_int(kv->type)) return false;
    *out = type_is_signed(kv->type) ? kv->v.i64 : (int64_t)kv->v.u64;
    return true;
}

bool lk_gguf_get_f32(const lk_gguf *g, const char *key, float *out) {
    const lk_gguf_kv *kv = lk_gguf_find(g, key);
    if (!kv || (kv->type != LK_GGUF_FLOAT32 && kv->type != LK_GGUF_FLOAT64)) return false;
    *out = (float)kv->v.f64;
    return true;
}

bool lk_gguf_get_bool(const lk_gguf *g, const char *key, bool *out) {
    const lk_gguf_kv *kv = lk_gguf_find(g, key);
    if (!kv || kv->type != LK_GGUF_BOOL) return false;
    *out = kv->v.b;
    return true;
}

bool lk_gguf_get_str(const lk_gguf *g, const char *key, lk_gguf_str *out) {
    const lk_gguf_kv *kv = lk_gguf_find(g, key);
    if (!kv || kv->type != LK_GGUF_STRING) return false;
    *out = kv->v.str;
    return true;
}

bool lk_gguf_get_cstr(const lk_gguf *g, const char *key, char *buf, size_t cap) {
    lk_gguf_str s;
    if (cap == 0 || !lk_gguf_get_str(g, key, &s)) return false;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = '\0';
    return true;
}

int64_t lk_gguf_arr_i64(const lk_gguf_kv *kv, uint64_t i) {
    lk_gguf_kv tmp = {0};
    size_t sz = lk_gguf_type_size(kv->arr_type);
    if (kv->type != LK_GGUF_ARRAY || !kv->arr_data || i >= kv->arr_n) return 0;
    scalar_load(kv->arr_type, kv->arr_data + i * sz, &tmp);
    if (kv->arr_type == LK_GGUF_FLOAT32 || kv->arr_type == LK_GGUF_FLOAT64) {
        /* a float element read as an integer: truncated, saturated at the
         * int64 range and NaN as 0 (a cast out of range is undefined) */
        const double x = tmp.v.f64;
        if (!(x == x)) return 0;
        if (x >= 9223372036854775807.0) return INT64_MAX;
        if (x <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)x;
    }
    if (kv->arr_type == LK_GGUF_BOOL) return tmp.v.b;
    return type_is_signed(kv->arr_type) ? tmp.v.i64 : (int64_t)tmp.v.u64;
}

double lk_gguf_arr_f64(const lk_gguf_kv *kv, uint64_t i) {
    if (kv->type == LK_GGUF_ARRAY && (kv->arr_type == LK_GGUF_FLOAT32 || kv->arr_type == LK_GGUF_FLOAT64) &&
        kv->arr_data && i < kv->arr_n) {
        lk_gguf_kv tmp = {0};
        scalar_load(kv->arr_type, kv->arr_data + i * lk_gguf_type_size(kv->arr_type), &tmp);
        return tmp.v.f64;
    }
    return (double)lk_gguf_arr_i64(kv, i);
}
