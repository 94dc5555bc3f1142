/*
 * gguf.h - GGUF v2/v3 reader (memory-mapped, zero-copy) and writer.
 *
 * Layout (little endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv × (string key, u32 type, value), n_tensors × (string name, u32 n_dims,
 * u64 ne[n_dims], u32 dtype, u64 offset), padding to `general.alignment`
 * (default 32), then tensor data; offsets are relative to the data start.
 * Strings are (u64 length, bytes) without a terminator.
 */
#ifndef LK_GGUF_H
#define LK_GGUF_H

#include "core/common.h"
#include "core/tensor.h"

typedef enum lk_gguf_type {
    LK_GGUF_UINT8 = 0, LK_GGUF_INT8 = 1, LK_GGUF_UINT16 = 2, LK_GGUF_INT16 = 3,
    LK_GGUF_UINT32 = 4, LK_GGUF_INT32 = 5, LK_GGUF_FLOAT32 = 6, LK_GGUF_BOOL = 7,
    LK_GGUF_STRING = 8, LK_GGUF_ARRAY = 9, LK_GGUF_UINT64 = 10, LK_GGUF_INT64 = 11,
    LK_GGUF_FLOAT64 = 12,
} lk_gguf_type;

/* A string inside the mapping: NOT NUL-terminated. */
typedef struct lk_gguf_str {
    const char *ptr;
    uint64_t len;
} lk_gguf_str;

typedef struct lk_gguf_kv {
    char *key;               /* NUL-terminated copy */
    lk_gguf_type type;
    /* scalar value (type != ARRAY): numeric types widened, strings in .str */
    union {
        uint64_t u64;
        int64_t i64;
        double f64;
        bool b;
        lk_gguf_str str;
    } v;
    /* arrays (type == ARRAY) */
    lk_gguf_type arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;  /* first element in the mapping (non-string arrays) */
    lk_gguf_str *arr_str;     /* owned index of the strings (string arrays) */
} lk_gguf_kv;

typedef struct lk_gguf {
    char *path;
    lk_mapped_file map;
    uint32_t version;
    uint64_t n_kv;
    lk_gguf_kv *kv;          /* (n_kv) */
    uint64_t n_tensors;
    lk_tensor *tensors;      /* (n_tensors); names are owned NUL-terminated copies */
    size_t alignment;
    size_t data_offset;      /* start of tensor data in the file */
} lk_gguf;

/* Open and validate a GGUF file: every offset and size is checked against the
 * file size, tensor dtypes must be ones loki knows (F32, F16, BF16, Q8_0). */
loki_status lk_gguf_open(const char *path, lk_gguf *g, loki_error *err);
void lk_gguf_close(lk_gguf *g);

const lk_gguf_kv *lk_gguf_find(const lk_gguf *g, const char *key);
const lk_tensor *lk_gguf_find_tensor(const lk_gguf *g, const char *name);

/* Typed getters: return true and set *out if `key` exists with a compatible
 * type (any integer type for the integer getters, float32/64 for floats). */
bool lk_gguf_get_i64(const lk_gguf *g, const char *key, int64_t *out);
bool lk_gguf_get_f32(const lk_gguf *g, const char *key, float *out);
bool lk_gguf_get_bool(const lk_gguf *g, const char *key, bool *out);
bool lk_gguf_get_str(const lk_gguf *g, const char *key, lk_gguf_str *out);
/* Copy a string value into buf (NUL-terminated, truncated to cap-1). */
bool lk_gguf_get_cstr(const lk_gguf *g, const char *key, char *buf, size_t cap);

/* Array element access; kv must be an array of the matching element type
 * (numeric getters convert from any numeric element type). */
int64_t lk_gguf_arr_i64(const lk_gguf_kv *kv, uint64_t i);
double lk_gguf_arr_f64(const lk_gguf_kv *kv, uint64_t i);

/* Size in bytes of one scalar of a non-string, non-array type (0 otherwise). */
size_t lk_gguf_type_size(lk_gguf_type t);
const char *lk_gguf_type_name(lk_gguf_type t);

/* ---------------------------------------------------------------- writer */

typedef struct lk_gguf_writer lk_gguf_writer;

loki_status lk_gguf_writer_init(lk_gguf_writer **out, loki_error *err);
void lk_gguf_writer_free(lk_gguf_writer *w);
/* Metadata setters copy their arguments. */
loki_status lk_gguf_writer_add_u32(lk_gguf_writer *w, const char *key, uint32_t v);
loki_status lk_gguf_writer_add_i32(lk_gguf_writer *w, const char *key, int32_t v);
loki_status lk_gguf_writer_add_u64(lk_gguf_writer *w, const char *key, uint64_t v);
loki_status lk_gguf_writer_add_f32(lk_gguf_writer *w, const char *key, float v);
loki_status lk_gguf_writer_add_bool(lk_gguf_writer *w, const char *key, bool v);
loki_status lk_gguf_writer_add_str(lk_gguf_writer *w, const char *key, const char *v);
/* Array of n elements of scalar type t (not STRING/ARRAY) read from data. */
loki_status lk_gguf_writer_add_arr(lk_gguf_writer *w, const char *key, lk_gguf_type t,
                                   const void *data, uint64_t n);
loki_status lk_gguf_writer_add_arr_str(lk_gguf_writer *w, const char *key,
                                       const char *const *strs, uint64_t n);
/* Copy any kv of an opened file (used to re-type a model's tensors). */
loki_status lk_gguf_writer_copy_kv(lk_gguf_writer *w, const lk_gguf_kv *kv);
/* Add a tensor; `data` (lk_dtype_row_bytes(dtype, ne[0]) * rows bytes) is copied. */
loki_status lk_gguf_writer_add_tensor(lk_gguf_writer *w, const char *name, lk_dtype dtype,
                                      int n_dims, const int64_t *ne, const void *data);
/* Writes fail with LOKI_ERR_INTERRUPTED (and leave no file) once *stop is
 * set, e.g. by a SIGINT handler; NULL (the default) never stops. */
void lk_gguf_writer_set_stop(lk_gguf_writer *w, lk_stop_flag *stop);
/* Write the file atomically (lk_file_atomic_*: no partial file on failure
 * or stop). Version 3, alignment 32. */
loki_status lk_gguf_writer_write(lk_gguf_writer *w, const char *path, loki_error *err);

/* Streaming form, for files too large to build in memory (`loki convert`):
 * a deferred tensor has its shape now and its bytes only when the file is
 * written, produced by the `fill` callback of lk_gguf_writer_write_stream. */
loki_status lk_gguf_writer_add_tensor_deferred(lk_gguf_writer *w, const char *name, lk_dtype dtype,
                                               int n_dims, const int64_t *ne);
/* Fill dst (nbytes) with the data of the tensor added index-th (counting all
 * tensors from 0); an error aborts the write. */
typedef loki_status (*lk_gguf_fill_fn)(void *ctx, uint64_t index, void *dst, size_t nbytes,
                                       loki_error *err);
/* Write the file through "<path>.tmp<pid>" renamed to path at the end (no
 * partial file on failure or stop); deferred tensors are filled one at a time, so
 * memory holds one tensor, never the whole file. */
loki_status lk_gguf_writer_write_stream(lk_gguf_writer *w, const char *path, lk_gguf_fill_fn fill,
                                        void *ctx, loki_error *err);

#endif /* LK_GGUF_H */
