/*
 * gguf_write.c - GGUF v3 writer. Metadata is serialised into a byte buffer as
 * it is added; tensors are copied and laid out at 32-byte alignment when the
 * file is written. Used by tests (re-typed model copies) and by calibration
 * (PCA files).
 */
#include "format/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_WRITE_ALIGNMENT 32

typedef struct byte_buf {
    uint8_t *data;
    size_t len, cap;
} byte_buf;

typedef struct wtensor {
    char *name;
    lk_dtype dtype;
    int n_dims;
    int64_t ne[4];
    void *data;            /* NULL: deferred (filled at write time) */
    size_t nbytes;
} wtensor;

struct lk_gguf_writer {
    byte_buf kv;      /* serialised metadata entries */
    uint64_t n_kv;
    wtensor *tensors;
    uint64_t n_tensors, cap_tensors;
    bool oom;         /* an add failed: write reports it */
    lk_stop_flag *stop; /* a stop request aborts the write (NULL: none) */
};

static bool buf_put(byte_buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) return false;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static bool buf_u32(byte_buf *b, uint32_t v) { return buf_put(b, &v, 4); }
static bool buf_u64(byte_buf *b, uint64_t v) { return buf_put(b, &v, 8); }
static bool buf_str(byte_buf *b, const char *s, size_t n) { return buf_u64(b, n) && buf_put(b, s, n); }

loki_status lk_gguf_writer_init(lk_gguf_writer **out, loki_error *err) {
    lk_gguf_writer *w = lk_calloc(1, sizeof(*w), err);
    if (!w) return LOKI_ERR_NOMEM;
    *out = w;
    return LOKI_OK;
}

void lk_gguf_writer_free(lk_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    free(w->kv.data);
    free(w);
}

/* Append key and type tag; the caller appends the value. */
static bool kv_head(lk_gguf_writer *w, const char *key, lk_gguf_type t) {
    w->n_kv++;
    return buf_str(&w->kv, key, strlen(key)) && buf_u32(&w->kv, (uint32_t)t);
}

static loki_status kv_done(lk_gguf_writer *w, bool ok) {
    if (!ok) w->oom = true;
    return ok ? LOKI_OK : LOKI_ERR_NOMEM;
}

loki_status lk_gguf_writer_add_u32(lk_gguf_writer *w, const char *key, uint32_t v) {
    return kv_done(w, kv_head(w, key, LK_GGUF_UINT32) && buf_u32(&w->kv, v));
}

loki_status lk_gguf_writer_add_i32(lk_gguf_writer *w, const char *key, int32_t v) {
    return kv_done(w, kv_head(w, key, LK_GGUF_INT32) && buf_put(&w->kv, &v, 4));
}

loki_status lk_gguf_writer_add_u64(lk_gguf_writer *w, const char *key, uint64_t v) {
    return kv_done(w, kv_head(w, key, LK_GGUF_UINT64) && buf_u64(&w->kv, v));
}

loki_status lk_gguf_writer_add_f32(lk_gguf_writer *w, const char *key, float v) {
    return kv_done(w, kv_head(w, key, LK_GGUF_FLOAT32) && buf_put(&w->kv, &v, 4));
}

loki_status lk_gguf_writer_add_bool(lk_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return kv_done(w, kv_head(w, key, LK_GGUF_BOOL) && buf_put(&w->kv, &b, 1));
}

loki_status lk_gguf_writer_add_str(lk_gguf_writer *w, const char *key, const char *v) {
    return kv_done(w, kv_head(w, key, LK_GGUF_STRING) && buf_str(&w->kv, v, strlen(v)));
}

loki_status lk_gguf_writer_add_arr(lk_gguf_writer *w, const char *key, lk_gguf_type t,
                                   const void *data, uint64_t n) {
    size_t sz = lk_gguf_type_size(t);
    if (sz == 0) return LOKI_ERR_ARG;
    return kv_done(w, kv_head(w, key, LK_GGUF_ARRAY) && buf_u32(&w->kv, (uint32_t)t) &&
                          buf_u64(&w->kv, n) && buf_put(&w->kv, data, sz * n));
}

loki_status lk_gguf_writer_add_arr_str(lk_gguf_writer *w, const char *key,
                                       const char *const *strs, uint64_t n) {
    bool ok = kv_head(w, key, LK_GGUF_ARRAY) && buf_u32(&w->kv, LK_GGUF_STRING) && buf_u64(&w->kv, n);
    for (uint64_t i = 0; ok && i < n; i++) ok = buf_str(&w->kv, strs[i], strlen(strs[i]));
    return kv_done(w, ok);
}

loki_status lk_gguf_writer_copy_kv(lk_gguf_writer *w, const lk_gguf_kv *kv) {
    bool ok = kv_head(w, kv->key, kv->type);
    if (kv->type == LK_GGUF_STRING) {
        ok = ok && buf_str(&w->kv, kv->v.str.ptr, kv->v.str.len);
    } else if (kv->type == LK_GGUF_ARRAY) {
        ok = ok && buf_u32(&w->kv, kv->arr_type) && buf_u64(&w->kv, kv->arr_n);
        if (kv->arr_type == LK_GGUF_STRING)
            for (uint64_t i = 0; ok && i < kv->arr_n; i++)
                ok = buf_str(&w->kv, kv->arr_str[i].ptr, kv->arr_str[i].len);
        else
            ok = ok && buf_put(&w->kv, kv->arr_data, kv->arr_n * lk_gguf_type_size(kv->arr_type));
    } else {
        /* re-narrow the widened scalar */
        uint8_t raw[8] = {0};
        size_t sz = lk_gguf_type_size(kv->type);
        if (kv->type == LK_GGUF_FLOAT32) { float f = (float)kv->v.f64; memcpy(raw, &f, 4); }
        else if (kv->type == LK_GGUF_FLOAT64) memcpy(raw, &kv->v.f64, 8);
        else if (kv->type == LK_GGUF_BOOL) raw[0] = kv->v.b;
        else memcpy(raw, &kv->v.u64, sz); /* little endian: low bytes first */
        ok = ok && buf_put(&w->kv, raw, sz);
    }
    return kv_done(w, ok);
}

/* Append a tensor entry with its shape; data NULL (deferred) or a copy of `data`. */
static loki_status add_entry(lk_gguf_writer *w, const char *name, lk_dtype dtype, int n_dims,
                             const int64_t *ne, const void *data) {
    if (n_dims < 1 || n_dims > 4 || !lk_dtype_valid(dtype)) return LOKI_ERR_ARG;
    if (w->n_tensors == w->cap_tensors) {
        uint64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        wtensor *t = realloc(w->tensors, cap * sizeof(*t));
        if (!t) return kv_done(w, false);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->dtype = dtype;
    t->n_dims = n_dims;
    int64_t rows = 1;
    for (int i = 0; i < 4; i++) t->ne[i] = i < n_dims ? ne[i] : 1;
    for (int i = 1; i < n_dims; i++) rows *= ne[i];
    t->nbytes = lk_dtype_row_bytes(dtype, ne[0]) * (size_t)rows;
    t->name = strdup(name);
    if (data) t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->name || (data && !t->data)) {
        free(t->name);
        free(t->data);
        return kv_done(w, false);
    }
    if (data) memcpy(t->data, data, t->nbytes);
    w->n_tensors++;
    return LOKI_OK;
}

loki_status lk_gguf_writer_add_tensor(lk_gguf_writer *w, const char *name, lk_dtype dtype,
                                      int n_dims, const int64_t *ne, const void *data) {
    if (!data) return LOKI_ERR_ARG;
    return add_entry(w, name, dtype, n_dims, ne, data);
}

loki_status lk_gguf_writer_add_tensor_deferred(lk_gguf_writer *w, const char *name, lk_dtype dtype,
                                               int n_dims, const int64_t *ne) {
    return add_entry(w, name, dtype, n_dims, ne, NULL);
}

static const uint8_t gguf_zeros[GGUF_WRITE_ALIGNMENT];

static size_t align_up(size_t x) {
    return (x + GGUF_WRITE_ALIGNMENT - 1) / GGUF_WRITE_ALIGNMENT * GGUF_WRITE_ALIGNMENT;
}

/* Serialise the header, metadata and tensor infos (padded to the data
 * start) into *b. False when out of memory. */
static bool build_header(const lk_gguf_writer *w, byte_buf *b) {
    bool ok = buf_put(b, "GGUF", 4) && buf_u32(b, 3) && buf_u64(b, w->n_tensors) &&
              buf_u64(b, w->n_kv) && buf_put(b, w->kv.data, w->kv.len);
    size_t off = 0;
    for (uint64_t i = 0; ok && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        ok = buf_str(b, t->name, strlen(t->name)) && buf_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; ok && d < t->n_dims; d++) ok = buf_u64(b, (uint64_t)t->ne[d]);
        ok = ok && buf_u32(b, (uint32_t)t->dtype) && buf_u64(b, off);
        off = align_up(off + t->nbytes);
    }
    return ok && buf_put(b, gguf_zeros, align_up(b->len) - b->len);
}

void lk_gguf_writer_set_stop(lk_gguf_writer *w, lk_stop_flag *stop) { w->stop = stop; }

loki_status lk_gguf_writer_write(lk_gguf_writer *w, const char *path, loki_error *err) {
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (!w->tensors[i].data)
            return lk_fail(err, LOKI_ERR_ARG, "%s: tensor '%s' is deferred: use lk_gguf_writer_write_stream",
                           path, w->tensors[i].name);
    return lk_gguf_writer_write_stream(w, path, NULL, NULL, err);
}

loki_status lk_gguf_writer_write_stream(lk_gguf_writer *w, const char *path, lk_gguf_fill_fn fill,
                                        void *ctx, loki_error *err) {
    if (w->oom) return lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory while building GGUF", path);
    byte_buf b = {0};
    void *buf = NULL;
    lk_atomic_file af;
    if (!build_header(w, &b)) {
        free(b.data);
        return lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory while writing GGUF", path);
    }
    loki_status st = lk_file_atomic_open(&af, path, w->stop, err);
    if (st) goto done;
    st = lk_file_atomic_write(&af, b.data, b.len, err);
    for (uint64_t i = 0; !st && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        const void *data = t->data;
        if (!data) {
            void *nb = realloc(buf, t->nbytes ? t->nbytes : 1);
            if (!nb) {
                st = lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory for tensor '%s'", path, t->name);
                break;
            }
            buf = nb;
            if (!fill) st = lk_fail(err, LOKI_ERR_ARG, "%s: no fill callback for tensor '%s'", path, t->name);
            else st = fill(ctx, i, buf, t->nbytes, err);
            data = buf;
        }
        if (!st) st = lk_file_atomic_write(&af, data, t->nbytes, err);
        if (!st) st = lk_file_atomic_write(&af, gguf_zeros, align_up(t->nbytes) - t->nbytes, err);
    }
    if (st) lk_file_atomic_abort(&af);
    else st = lk_file_atomic_commit(&af, err);
done:
    free(buf);
    free(b.data);
    return st;
}
