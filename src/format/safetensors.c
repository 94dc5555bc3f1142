/* safetensors.c - safetensors reader (see safetensors.h). */
#include "format/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The format caps the header at 100 MB; anything larger is corrupt. */
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)
/* Doubles represent integers exactly up to 2^53, the limit for JSON numbers. */
#define ST_MAX_INT 9007199254740992.0

typedef struct st_dtype_info {
    size_t size;     /* bytes per element */
    bool usable;     /* loki can compute with it */
    lk_dtype dtype;  /* valid when usable */
} st_dtype_info;

/* Look up a dtype name of the safetensors spec; false for unknown names. */
static bool st_dtype_lookup(const char *s, st_dtype_info *o) {
    o->usable = false;
    o->dtype = LK_DTYPE_F32;
    if (!strcmp(s, "F32")) { o->size = 4; o->usable = true; }
    else if (!strcmp(s, "F16")) { o->size = 2; o->usable = true; o->dtype = LK_DTYPE_F16; }
    else if (!strcmp(s, "BF16")) { o->size = 2; o->usable = true; o->dtype = LK_DTYPE_BF16; }
    else if (!strcmp(s, "F64") || !strcmp(s, "I64") || !strcmp(s, "U64")) o->size = 8;
    else if (!strcmp(s, "I32") || !strcmp(s, "U32")) o->size = 4;
    else if (!strcmp(s, "I16") || !strcmp(s, "U16")) o->size = 2;
    else if (!strcmp(s, "I8") || !strcmp(s, "U8") || !strcmp(s, "BOOL") ||
             !strcmp(s, "F8_E4M3") || !strcmp(s, "F8_E5M2")) o->size = 1;
    else return false;
    return true;
}

/* A JSON number that is a non-negative integer below 2^53 -> *out. */
static bool st_json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_INT || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

/* Grow s->entries to hold at least `need` entries (capacity in *cap). */
static loki_status st_reserve(lk_st_set *s, int fi, int64_t need, int64_t *cap, loki_error *err) {
    if (need <= *cap) return LOKI_OK;
    int64_t nc = *cap ? *cap * 2 : 256;
    while (nc < need) nc *= 2;
    lk_st_entry *e = realloc(s->entries, (size_t)nc * sizeof(*e));
    if (!e)
        return lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory allocating the tensor table (%lld entries)",
                       s->paths[fi], (long long)nc);
    s->entries = e;
    *cap = nc;
    return LOKI_OK;
}

/* Parse one tensor description `j` named `name` of file `fi` whose data area
 * is `data` (`data_size` bytes) into *e. */
static loki_status st_parse_entry(const lk_st_set *s, int fi, const cJSON *j, const uint8_t *data,
                                  uint64_t data_size, lk_st_entry *e, loki_error *err) {
    const char *path = s->paths[fi], *name = j->string;
    memset(e, 0, sizeof(*e));
    e->file = fi;
    if (!cJSON_IsObject(j))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return lk_fail(err, LOKI_ERR_FORMAT,
                       "%s: tensor '%s': missing or mistyped dtype/shape/data_offsets", path, name);
    st_dtype_info dinfo;
    const st_dtype_info *di = &dinfo;
    if (!st_dtype_lookup(jd->valuestring, &dinfo))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s'", path,
                       name, jd->valuestring);
    int nd = cJSON_GetArraySize(js);
    if (nd > 4)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (max 4)", path,
                       name, nd);
    /* shape is outermost-first; ne[] innermost-first. */
    uint64_t numel = 1;
    for (int k = 0; k < 4; k++) e->t.ne[k] = 1;
    for (int k = 0; k < nd; k++) {
        uint64_t d;
        if (!st_json_uint(cJSON_GetArrayItem(js, k), &d) || d > (uint64_t)INT64_MAX)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s': bad shape entry %d", path, name, k);
        if (d != 0 && numel > UINT64_MAX / d / di->size)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= d;
        e->t.ne[nd - 1 - k] = (int64_t)d;
    }
    e->t.n_dims = nd > 0 ? nd : 1;
    uint64_t b, end;
    if (cJSON_GetArraySize(jo) != 2 || !st_json_uint(cJSON_GetArrayItem(jo, 0), &b) ||
        !st_json_uint(cJSON_GetArrayItem(jo, 1), &end) || end < b)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s': bad data_offsets", path, name);
    if (end > data_size)
        return lk_fail(err, LOKI_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] out of bounds (data is %llu "
                       "bytes; file truncated?)", path, name, (unsigned long long)b,
                       (unsigned long long)end, (unsigned long long)data_size);
    if (end - b != numel * di->size)
        return lk_fail(err, LOKI_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets span %llu bytes but shape and dtype %s "
                       "need %llu", path, name, (unsigned long long)(end - b), jd->valuestring,
                       (unsigned long long)(numel * di->size));
    if (di->usable) {
        e->t.dtype = di->dtype;
    } else {
        e->t.dtype = LK_DTYPE_F32; /* placeholder; lookups reject it via bad_dtype */
        snprintf(e->bad_dtype, sizeof(e->bad_dtype), "%s", jd->valuestring);
    }
    e->t.data = data + b;
    e->t.nbytes = (size_t)(end - b);
    e->t.name = lk_strdup(name, err);
    return e->t.name ? LOKI_OK : LOKI_ERR_NOMEM;
}

/* Map file `fi` of s, parse its header and append its tensors. */
static loki_status st_load_file(lk_st_set *s, int fi, int64_t *cap, loki_error *err) {
    const char *path = s->paths[fi];
    loki_status st = lk_file_map(path, &s->maps[fi], err);
    if (st) return st;
    const lk_mapped_file *mf = &s->maps[fi];
    if (mf->size < 8)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: file too small for a safetensors header "
                       "(%zu bytes)", path, mf->size);
    uint64_t hlen;
    memcpy(&hlen, mf->data, 8); /* little-endian hosts only (x86-64, aarch64) */
    if (hlen > mf->size - 8 || hlen > ST_MAX_HEADER)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: safetensors header length %llu exceeds the "
                       "file size %zu (truncated or not a safetensors file)", path,
                       (unsigned long long)hlen, mf->size);
    const char *hdr = (const char *)mf->data + 8;
    cJSON *root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: safetensors header is not a valid JSON object",
                       path);
    }
    const uint8_t *data = mf->data + 8 + hlen;
    uint64_t data_size = mf->size - 8 - hlen;
    const cJSON *j;
    cJSON_ArrayForEach(j, root) {
        if (!j->string) continue;
        if (strcmp(j->string, "__metadata__") == 0) continue;
        if ((st = st_reserve(s, fi, s->n_entries + 1, cap, err))) goto done;
        if ((st = st_parse_entry(s, fi, j, data, data_size, &s->entries[s->n_entries], err))) {
            free((void *)s->entries[s->n_entries].t.name);
            goto done;
        }
        s->n_entries++;
    }
done:
    cJSON_Delete(root);
    return st;
}

static int st_entry_cmp(const void *a, const void *b) {
    return strcmp(((const lk_st_entry *)a)->t.name, ((const lk_st_entry *)b)->t.name);
}

loki_status lk_st_open_files(const char *const *paths, int n, lk_st_set **out, loki_error *err) {
    if (n <= 0 || !paths || !out) return lk_fail(err, LOKI_ERR_ARG, "safetensors: no files given");
    loki_status st;
    int64_t cap = 0;
    lk_st_set *s = lk_calloc(1, sizeof(*s), err);
    if (!s) return LOKI_ERR_NOMEM;
    s->paths = lk_calloc((size_t)n, sizeof(char *), err);
    s->maps = lk_calloc((size_t)n, sizeof(lk_mapped_file), err);
    if (!s->paths || !s->maps) { st = LOKI_ERR_NOMEM; goto fail; }
    s->n_files = n;
    for (int i = 0; i < n; i++)
        if (!(s->paths[i] = lk_strdup(paths[i], err))) { st = LOKI_ERR_NOMEM; goto fail; }
    for (int i = 0; i < n; i++)
        if ((st = st_load_file(s, i, &cap, err))) goto fail;
    if (s->n_entries > 1) qsort(s->entries, (size_t)s->n_entries, sizeof(lk_st_entry), st_entry_cmp);
    for (int64_t i = 1; i < s->n_entries; i++) {
        const lk_st_entry *a = &s->entries[i - 1], *b = &s->entries[i];
        if (strcmp(a->t.name, b->t.name) == 0) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' appears twice (also in %s)",
                         s->paths[b->file], b->t.name, s->paths[a->file]);
            goto fail;
        }
    }
    *out = s;
    return LOKI_OK;
fail:
    lk_st_free(s);
    return st;
}

void lk_st_free(lk_st_set *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_entries; i++) free((void *)s->entries[i].t.name);
    free(s->entries);
    for (int i = 0; i < s->n_files; i++) {
        if (s->maps) lk_file_unmap(&s->maps[i]);
        if (s->paths) free(s->paths[i]);
    }
    free(s->maps);
    free(s->paths);
    free(s);
}

const lk_st_entry *lk_st_find(const lk_st_set *s, const char *name) {
    if (!s || !name || s->n_entries == 0) return NULL;
    lk_st_entry key;
    memset(&key, 0, sizeof(key));
    key.t.name = name;
    return bsearch(&key, s->entries, (size_t)s->n_entries, sizeof(lk_st_entry), st_entry_cmp);
}

const char *lk_st_path(const lk_st_set *s, int file) {
    if (!s || file < 0 || file >= s->n_files) return "";
    return s->paths[file];
}

loki_status lk_st_get(const lk_st_set *s, const char *name, bool optional, lk_tensor *out,
                      loki_error *err) {
    const lk_st_entry *e = lk_st_find(s, name);
    memset(out, 0, sizeof(*out));
    if (!e) {
        if (optional) return LOKI_OK;
        if (!s || s->n_files == 0)
            return lk_fail(err, LOKI_ERR_FORMAT, "safetensors: missing tensor '%s'", name);
        if (s->n_files == 1)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing tensor '%s'", s->paths[0], name);
        return lk_fail(err, LOKI_ERR_FORMAT, "%s (+%d other shards): missing tensor '%s'",
                       s->paths[0], s->n_files - 1, name);
    }
    if (e->bad_dtype[0])
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported dtype %s "
                       "(F32, F16 and BF16 are supported)", s->paths[e->file], name, e->bad_dtype);
    *out = e->t;
    return LOKI_OK;
}

/* "<dir>/<name>" in a new heap string. */
static char *st_join(const char *dir, const char *name, loki_error *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = lk_malloc(n, err);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

loki_status lk_st_index_parse(const char *text, size_t len, const char *path, lk_st_index *ix, loki_error *err) {
    memset(ix, 0, sizeof *ix);
    loki_status st = LOKI_OK;
    ix->root = cJSON_ParseWithLength(text, len);
    ix->wm = ix->root ? cJSON_GetObjectItemCaseSensitive(ix->root, "weight_map") : NULL;
    if (!ix->root) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: invalid JSON", path);
        goto fail;
    }
    if (!cJSON_IsObject(ix->wm) || !ix->wm->child) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: missing or empty \"weight_map\" object", path);
        goto fail;
    }
    int n_map = cJSON_GetArraySize(ix->wm);
    if (!(ix->shards = lk_calloc_for((size_t)LK_MIN(n_map, LK_ST_MAX_SHARDS), sizeof(char *), path,
                                     "the shard list", err))) {
        st = LOKI_ERR_NOMEM;
        goto fail;
    }
    /* Unique shard names in first-seen order (linear search: at most
     * LK_ST_MAX_SHARDS names, so at most that many compares per entry). */
    const cJSON *j;
    cJSON_ArrayForEach(j, ix->wm) {
        if (!cJSON_IsString(j) || !j->valuestring[0] || strstr(j->valuestring, "..")) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: weight_map entry '%s' is not a shard file name",
                         path, j->string ? j->string : "?");
            goto fail;
        }
        int k = 0;
        while (k < ix->n_shards && strcmp(ix->shards[k], j->valuestring) != 0) k++;
        if (k < ix->n_shards) continue;
        if (ix->n_shards == LK_ST_MAX_SHARDS) {
            st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: weight_map names more than %d shard files", path,
                         LK_ST_MAX_SHARDS);
            goto fail;
        }
        ix->shards[ix->n_shards++] = j->valuestring;
    }
    return LOKI_OK;
fail:
    lk_st_index_free(ix);
    return st;
}

loki_status lk_st_index_check(const lk_st_index *ix, const lk_st_set *s, const char *path, loki_error *err) {
    const cJSON *j;
    cJSON_ArrayForEach(j, ix->wm) {
        const lk_st_entry *e = j->string ? lk_st_find(s, j->string) : NULL;
        if (!e || e->file >= ix->n_shards || strcmp(ix->shards[e->file], j->valuestring) != 0)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' is not in shard %s as the index says",
                           path, j->string ? j->string : "?", j->valuestring);
    }
    return LOKI_OK;
}

void lk_st_index_free(lk_st_index *ix) {
    free(ix->shards);
    cJSON_Delete(ix->root);
    memset(ix, 0, sizeof *ix);
}

/* Open the shards an index file lists and check its weight_map against them. */
static loki_status st_open_index(const char *index_path, const char *dir, lk_st_set **out,
                                 loki_error *err) {
    char *text = NULL;
    size_t len = 0;
    char **files = NULL; /* (n_shards) shard paths */
    lk_st_index ix;
    lk_st_set *s = NULL;
    memset(&ix, 0, sizeof ix);
    loki_status st = lk_read_file(index_path, &text, &len, err);
    if (st) return st;
    if ((st = lk_st_index_parse(text, len, index_path, &ix, err))) goto fail;
    if (!(files = lk_calloc_for((size_t)ix.n_shards, sizeof(char *), index_path, "the shard paths", err))) {
        st = LOKI_ERR_NOMEM;
        goto fail;
    }
    for (int k = 0; k < ix.n_shards; k++)
        if (!(files[k] = st_join(dir, ix.shards[k], err))) { st = LOKI_ERR_NOMEM; goto fail; }
    if ((st = lk_st_open_files((const char *const *)files, ix.n_shards, &s, err)) ||
        (st = lk_st_index_check(&ix, s, index_path, err)))
        goto fail;
    *out = s;
    s = NULL;
fail:
    lk_st_free(s);
    for (int k = 0; files && k < ix.n_shards; k++) free(files[k]);
    free(files);
    lk_st_index_free(&ix);
    free(text);
    return st;
}

loki_status lk_st_open_dir(const char *dir, lk_st_set **out, loki_error *err) {
    loki_status st;
    struct stat sb;
    char *index = st_join(dir, "model.safetensors.index.json", err);
    if (!index) return LOKI_ERR_NOMEM;
    if (stat(index, &sb) == 0) {
        st = st_open_index(index, dir, out, err);
        free(index);
        return st;
    }
    free(index);
    char *single = st_join(dir, "model.safetensors", err);
    if (!single) return LOKI_ERR_NOMEM;
    if (stat(single, &sb) != 0) {
        st = lk_fail(err, LOKI_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json",
                     dir);
    } else {
        const char *p = single;
        st = lk_st_open_files(&p, 1, out, err);
    }
    free(single);
    return st;
}
