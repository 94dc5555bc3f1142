/*
 * safetensors.h - memory-mapped, zero-copy reader for Hugging Face
 * safetensors checkpoints, single-file or sharded.
 *
 * File layout (little endian): u64 header length N, N bytes of JSON
 *   { "<name>": {"dtype": "BF16", "shape": [out, in], "data_offsets": [b, e]},
 *     ..., "__metadata__": {...} }
 * then the data; [b, e) are byte offsets relative to the data start (8 + N).
 * Shapes are outermost-first, so they are reversed into lk_tensor's ne[]
 * (ne[0] innermost): shape [out, in] -> ne[0] = in, ne[1] = out.
 *
 * Sharded checkpoints carry model.safetensors.index.json whose "weight_map"
 * maps every tensor name to the shard file (relative to the directory).
 */
#ifndef LK_SAFETENSORS_H
#define LK_SAFETENSORS_H

#include "core/common.h"
#include "core/tensor.h"

/* One tensor entry of a set. `t.name` is owned by the set. bad_dtype is the
 * file's dtype string when it is a valid safetensors dtype loki cannot use
 * (I64, F64, ...): such tensors are bounds-checked on open but only rejected
 * when looked up, so unused buffers in a checkpoint do not fail the load. */
typedef struct lk_st_entry {
    lk_tensor t;
    int file;            /* index into lk_st_set.paths / maps */
    char bad_dtype[16];  /* "" when t.dtype is usable */
} lk_st_entry;

struct lk_st_set {
    int n_files;
    char **paths;            /* (n_files) owned */
    lk_mapped_file *maps;    /* (n_files) */
    int64_t n_entries;
    lk_st_entry *entries;    /* (n_entries) sorted by name for bsearch */
};
typedef struct lk_st_set lk_st_set;

/* Open `n` safetensors files as one set: every header is parsed and checked
 * (header length vs file size, dtype known, data_offsets inside the data
 * area and end - begin == numel * dtype size). A name present in two files
 * is an error. On success *out owns the mappings; free with lk_st_free. */
loki_status lk_st_open_files(const char *const *paths, int n, lk_st_set **out, loki_error *err);

/* Open a Hugging Face directory: `dir`/model.safetensors.index.json if it
 * exists (every shard named in its weight_map is opened and every mapped
 * tensor must be found in the shard the index names), else
 * `dir`/model.safetensors. */
loki_status lk_st_open_dir(const char *dir, lk_st_set **out, loki_error *err);

void lk_st_free(lk_st_set *s);

/* The shards of a sharded checkpoint are at most this many files. */
#define LK_ST_MAX_SHARDS 1024

/* A parsed model.safetensors.index.json (the core of lk_st_open_dir for
 * sharded checkpoints, in memory so it can be fuzzed): the weight_map and
 * the distinct shard file names it lists, in first-seen order. */
typedef struct lk_st_index {
    struct cJSON *root;      /* the parsed JSON; owns the strings below */
    const struct cJSON *wm;  /* its "weight_map" object */
    const char **shards;     /* (n_shards) shard names as the index writes them */
    int n_shards;
} lk_st_index;

/* Parse index text[0..len) (read from `path`, for messages): a non-empty
 * weight_map of tensor name -> shard file name (no "..", at most
 * LK_ST_MAX_SHARDS distinct files). Free with lk_st_index_free. */
loki_status lk_st_index_parse(const char *text, size_t len, const char *path, lk_st_index *ix, loki_error *err);
/* Every tensor of the weight map is in the file of s the index names; s
 * holds ix's shards in ix's order (file k of s is ix->shards[k]). */
loki_status lk_st_index_check(const lk_st_index *ix, const lk_st_set *s, const char *path, loki_error *err);
void lk_st_index_free(lk_st_index *ix);

/* Entry for `name`, or NULL if the set has no such tensor. */
const lk_st_entry *lk_st_find(const lk_st_set *s, const char *name);

/* Tensor `name` as a view into the mapping. Fails with LOKI_ERR_FORMAT
 * "missing tensor" when absent (unless `optional`, in which case *out is
 * zeroed and LOKI_OK returned) and LOKI_ERR_UNSUPPORTED when its dtype is
 * not F32/F16/BF16. Messages name the file and the tensor. */
loki_status lk_st_get(const lk_st_set *s, const char *name, bool optional, lk_tensor *out,
                      loki_error *err);

/* Path of the file the set describes, for messages ("" when none). */
const char *lk_st_path(const lk_st_set *s, int file);

#endif /* LK_SAFETENSORS_H */
