/*
 * pca.c - the PCA of a model's keys as an object (loki_pca), its GGUF file
 * (save/load with full validation, layout in docs/PCA.md), Rank@v, and the
 * SHA-256 fingerprints that tie a PCA file to the model it was calibrated on.
 *
 * L = n_layer, Hkv = n_head_kv, D = head_dim. In memory every per-basis array
 * is row-major with the layer outermost: components (L, Hkv, D, D),
 * eigenvalues and mean (L, Hkv, D). GGUF lists dimensions innermost first,
 * so the same bytes are tensors of ne = [D, D, Hkv, L] and [D, Hkv, L].
 */
#include "calib/pca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "format/gguf.h"

#define PCA_VERSION 1
#define PCA_MAX_DIM 65536 /* bound on L, Hkv and D read from a file (no overflow below) */

static const char *const basis_names[LK_PCA_N_BASIS] = {"pre", "post"};
static const char hex_digits[] = "0123456789abcdef";
static const char fingerprint_tag[] = "loki-model-fingerprint-v1"; /* versions the hashed layout */

/* ------------------------------------------------------------ object */

loki_status lk_pca_init(loki_pca **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                        loki_error *err) {
    if (n_layer < 1 || n_head_kv < 1 || head_dim < 1 || n_layer > PCA_MAX_DIM || n_head_kv > PCA_MAX_DIM ||
        head_dim > PCA_MAX_DIM)
        return lk_fail(err, LOKI_ERR_ARG, "PCA shape %d layers x %d KV heads x %d dims is out of range",
                       n_layer, n_head_kv, head_dim);
    if ((double)n_layer * n_head_kv * head_dim * head_dim * sizeof(float) > (double)(SIZE_MAX / 4))
        return lk_fail(err, LOKI_ERR_ARG, "PCA shape %d layers x %d KV heads x %d dims is too large", n_layer,
                       n_head_kv, head_dim);
    loki_pca *p = lk_calloc(1, sizeof(*p), err);
    if (!p) return LOKI_ERR_NOMEM;
    p->n_layer = n_layer;
    p->n_head_kv = n_head_kv;
    p->head_dim = head_dim;
    size_t heads = (size_t)n_layer * (size_t)n_head_kv, D = (size_t)head_dim;
    for (int b = 0; b < LK_PCA_N_BASIS; b++) {
        p->components[b] = lk_calloc(heads * D * D, sizeof(float), err);  /* (L, Hkv, D, D) */
        p->eigenvalues[b] = lk_calloc(heads * D, sizeof(float), err);     /* (L, Hkv, D) */
        p->mean[b] = lk_calloc(heads * D, sizeof(float), err);            /* (L, Hkv, D) */
        if (!p->components[b] || !p->eigenvalues[b] || !p->mean[b]) {
            loki_pca_free(p);
            return lk_fail_prefix(err, "PCA of %d x %d x %d", n_layer, n_head_kv, head_dim);
        }
    }
    *out = p;
    return LOKI_OK;
}

void loki_pca_free(loki_pca *pca) {
    if (!pca) return;
    for (int b = 0; b < LK_PCA_N_BASIS; b++) {
        free(pca->components[b]);
        free(pca->eigenvalues[b]);
        free(pca->mean[b]);
    }
    free(pca);
}

int32_t lk_pca_rank(const loki_pca *p, int basis, int layer, int h, double fraction) {
    const float *ev = lk_pca_eigenvalues(p, basis, layer, h);
    const int32_t D = p->head_dim;
    double total = 0.0;
    for (int32_t j = 0; j < D; j++) total += ev[j] > 0.0f ? ev[j] : 0.0;
    if (!(total > 0.0)) return D;
    /* a relative allowance of 1e-12 so that e.g. 0.7 of {4,3,2,1} is 2, not 3,
     * whatever the rounding of fraction * total */
    double target = fraction * total * (1.0 - 1e-12), cum = 0.0;
    for (int32_t j = 0; j < D; j++) {
        cum += ev[j] > 0.0f ? ev[j] : 0.0;
        if (cum >= target) return j + 1;
    }
    return D;
}

/* -------------------------------------------------------------- SHA-256 */

/* The first n (<= 32) digest bytes md as lowercase hex into hex (NUL-terminated). */
static void to_hex(const unsigned char *md, unsigned n, char hex[LK_FINGERPRINT_HEX]) {
    for (unsigned i = 0; i < n && i < 32; i++) {
        hex[2 * i] = hex_digits[md[i] >> 4];
        hex[2 * i + 1] = hex_digits[md[i] & 15];
    }
    hex[n < 32 ? 2 * n : 64] = '\0';
}

void lk_sha256_hex(const void *data, size_t len, char hex[LK_FINGERPRINT_HEX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    /* EVP_Digest only fails when libcrypto cannot allocate: then hex is "" */
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1) n = 0;
    to_hex(md, n, hex);
}

/* Feed one little-endian int64 (the canonical width of every number hashed). */
static bool hash_i64(EVP_MD_CTX *c, int64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    return EVP_DigestUpdate(c, b, 8) == 1;
}

/* Feed a tensor: a presence flag, then dtype, ne[0..3] and raw bytes. */
static bool hash_tensor(EVP_MD_CTX *c, const lk_tensor *t) {
    if (!t->data) return hash_i64(c, 0);
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t bytes = lk_dtype_row_bytes(t->dtype, t->ne[0]) * (size_t)rows;
    bool ok = hash_i64(c, 1) && hash_i64(c, (int64_t)t->dtype);
    for (int i = 0; i < 4; i++) ok = ok && hash_i64(c, t->ne[i]);
    return ok && hash_i64(c, (int64_t)bytes) && EVP_DigestUpdate(c, t->data, bytes) == 1;
}

loki_status lk_model_fingerprint(const loki_model *m, char hex[LK_FINGERPRINT_HEX], loki_error *err) {
    const lk_hparams *hp = &m->hp;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return lk_fail(err, LOKI_ERR_NOMEM, "model fingerprint: out of memory");
    char arch[sizeof hp->arch] = {0};
    memcpy(arch, hp->arch, strnlen(hp->arch, sizeof arch - 1));  /* zero-padded, fixed width */
    bool ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(c, fingerprint_tag, sizeof fingerprint_tag) == 1 &&
              EVP_DigestUpdate(c, arch, sizeof arch) == 1;
    const int64_t shape[] = {hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim,
                             hp->n_embd,  hp->n_vocab, (int64_t)hp->rope_style};
    for (size_t i = 0; ok && i < LK_ARRAY_LEN(shape); i++) ok = hash_i64(c, shape[i]);
    for (int32_t l = 0; ok && l < hp->n_layer; l++) {
        const lk_layer *L = &m->layers[l];
        ok = hash_tensor(c, &L->wk) && hash_tensor(c, &L->bk) && hash_tensor(c, &L->attn_norm);
        /* QK-norm (Gemma 3) shapes the keys too; hashed only when present so
         * the fingerprints of models without it stay what they were */
        if (ok && L->attn_k_norm.data) ok = hash_tensor(c, &L->attn_k_norm);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    ok = ok && EVP_DigestFinal_ex(c, md, &n) == 1 && n == 32;
    EVP_MD_CTX_free(c);
    if (!ok) return lk_fail(err, LOKI_ERR_NOMEM, "model fingerprint: SHA-256 failed");
    to_hex(md, n, hex);
    return LOKI_OK;
}

/* ------------------------------------------------------------------ save */

/* Exactly 64 lowercase hex digits (a SHA-256 as lk_sha256_hex writes it)? */
static bool is_sha_hex(const char *s) {
    if (strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

loki_status lk_pca_save(const loki_pca *p, const char *path, lk_stop_flag *stop, loki_error *err) {
    const int64_t L = p->n_layer, H = p->n_head_kv, D = p->head_dim;
    if (!is_sha_hex(p->fingerprint) || !is_sha_hex(p->calib_sha256))
        return lk_fail(err, LOKI_ERR_ARG, "%s: the PCA needs its model fingerprint and calibration SHA-256 "
                       "(64 hex digits each) before it is saved", path);
    lk_gguf_writer *w = NULL;
    loki_status st = lk_gguf_writer_init(&w, err);
    if (st) return lk_fail_prefix(err, "%s", path);
    lk_gguf_writer_set_stop(w, stop);
    bool ok = !lk_gguf_writer_add_u32(w, "loki.pca.version", PCA_VERSION) &&
              !lk_gguf_writer_add_u32(w, "loki.pca.n_layer", (uint32_t)L) &&
              !lk_gguf_writer_add_u32(w, "loki.pca.n_head_kv", (uint32_t)H) &&
              !lk_gguf_writer_add_u32(w, "loki.pca.head_dim", (uint32_t)D) &&
              !lk_gguf_writer_add_str(w, "loki.pca.components_layout", "rows") &&
              !lk_gguf_writer_add_str(w, "loki.pca.model.fingerprint", p->fingerprint) &&
              !lk_gguf_writer_add_str(w, "loki.pca.model.name", p->model_name) &&
              !lk_gguf_writer_add_str(w, "loki.pca.calib.file", p->calib_file) &&
              !lk_gguf_writer_add_str(w, "loki.pca.calib.sha256", p->calib_sha256) &&
              !lk_gguf_writer_add_u64(w, "loki.pca.calib.tokens", (uint64_t)LK_MAX(p->calib_tokens, 0)) &&
              !lk_gguf_writer_add_u32(w, "loki.pca.calib.window", (uint32_t)LK_MAX(p->calib_window, 0));
    if (ok && p->swa_window > 0) /* only for models with sliding-window layers: older readers ignore them */
        ok = !lk_gguf_writer_add_u32(w, "loki.pca.swa_window", (uint32_t)p->swa_window) &&
             !lk_gguf_writer_add_u32(w, "loki.pca.swa_pattern", (uint32_t)LK_MAX(p->swa_pattern, 1));
    const int64_t ne_c[4] = {D, D, H, L}, ne_v[3] = {D, H, L};
    char name[64];
    for (int b = 0; ok && b < LK_PCA_N_BASIS; b++) {
        snprintf(name, sizeof name, "pca.%s.components", basis_names[b]);
        ok = !lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 4, ne_c, p->components[b]);
        snprintf(name, sizeof name, "pca.%s.eigenvalues", basis_names[b]);
        ok = ok && !lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 3, ne_v, p->eigenvalues[b]);
        snprintf(name, sizeof name, "pca.%s.mean", basis_names[b]);
        ok = ok && !lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 3, ne_v, p->mean[b]);
    }
    st = ok ? lk_gguf_writer_write(w, path, err)
            : lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory while building the PCA file", path);
    lk_gguf_writer_free(w);
    return st;
}

/* ------------------------------------------------------------------ load */

/* Integer metadata `key` into *v, required to lie in [lo, hi]. */
static loki_status get_int(const lk_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *v,
                           loki_error *err) {
    const lk_gguf_kv *kv = lk_gguf_find(g, key);
    if (!kv) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing metadata key '%s'", g->path, key);
    if (!lk_gguf_get_i64(g, key, v))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: metadata '%s' must be an integer, not %s", g->path, key,
                       lk_gguf_type_name(kv->type));
    if (kv->type == LK_GGUF_UINT64 && *v < 0) *v = INT64_MAX; /* huge u64 */
    if (*v < lo || *v > hi)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range %lld..%lld", g->path, key,
                       (long long)*v, (long long)lo, (long long)hi);
    return LOKI_OK;
}

/* String metadata `key` into buf (cap bytes incl. NUL); longer strings are an error. */
static loki_status get_str(const lk_gguf *g, const char *key, char *buf, size_t cap, loki_error *err) {
    const lk_gguf_kv *kv = lk_gguf_find(g, key);
    lk_gguf_str s;
    if (!kv) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing metadata key '%s'", g->path, key);
    if (!lk_gguf_get_str(g, key, &s))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: metadata '%s' must be a string, not %s", g->path, key,
                       lk_gguf_type_name(kv->type));
    if (s.len >= cap)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: metadata '%s' is %llu bytes long (at most %zu)", g->path, key,
                       (unsigned long long)s.len, cap - 1);
    if (memchr(s.ptr, '\0', s.len))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: metadata '%s' contains a NUL byte", g->path, key);
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return LOKI_OK;
}

/* A SHA-256 metadata value: exactly 64 lowercase hex digits. */
static loki_status get_sha(const lk_gguf *g, const char *key, char hex[LK_FINGERPRINT_HEX], loki_error *err) {
    loki_status st = get_str(g, key, hex, LK_FINGERPRINT_HEX, err);
    if (st) return st;
    if (!is_sha_hex(hex))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: metadata '%s' must be 64 lowercase hex digits (SHA-256), got '%s'",
                       g->path, key, hex);
    return LOKI_OK;
}

/* Check that tensor `name` exists, is F32 and has ne = want[0..n-1] (the
 * rest 1); then, if dst is not NULL, copy it there and check that every
 * value is finite. */
static loki_status get_tensor(const lk_gguf *g, const char *name, int n, const int64_t *want, float *dst,
                              loki_error *err) {
    const lk_tensor *t = lk_gguf_find_tensor(g, name);
    if (!t) return lk_fail(err, LOKI_ERR_FORMAT, "%s: missing tensor '%s'", g->path, name);
    if (t->dtype != LK_DTYPE_F32)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' is %s, PCA tensors must be F32", g->path, name,
                       lk_dtype_name(t->dtype));
    bool same = true;
    for (int i = 0; i < 4; i++) same = same && t->ne[i] == (i < n ? want[i] : 1);
    if (!same) {
        char have[128], need[128];
        int a = 0, b = 0;
        for (int i = 0; i < 4; i++) {
            if (i < t->n_dims) a += snprintf(have + a, sizeof have - (size_t)a, "%s%lld", i ? ", " : "", (long long)t->ne[i]);
            if (i < n) b += snprintf(need + b, sizeof need - (size_t)b, "%s%lld", i ? ", " : "", (long long)want[i]);
        }
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' has shape ne=[%s], the metadata implies [%s]",
                       g->path, name, have, need);
    }
    if (!dst) return LOKI_OK;
    size_t count = (size_t)lk_tensor_nelements(t);
    memcpy(dst, t->data, count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        if (!isfinite(dst[i]))
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value (%g) at element %zu",
                           g->path, name, (double)dst[i], i);
    return LOKI_OK;
}

/* Eigenvalues non-negative and descending, component rows of unit length. */
static loki_status check_basis(const loki_pca *p, const char *path, int b, loki_error *err) {
    const int32_t D = p->head_dim;
    for (int32_t l = 0; l < p->n_layer; l++)
        for (int32_t h = 0; h < p->n_head_kv; h++) {
            const float *ev = lk_pca_eigenvalues(p, b, l, h), *C = lk_pca_components(p, b, l, h);
            for (int32_t j = 0; j < D; j++) {
                if (ev[j] < 0.0f || (j > 0 && ev[j] > ev[j - 1]))
                    return lk_fail(err, LOKI_ERR_FORMAT,
                                   "%s: pca.%s.eigenvalues of layer %d head %d must be non-negative and descending, "
                                   "value %d is %g after %g", path, basis_names[b], l, h, j, (double)ev[j],
                                   j ? (double)ev[j - 1] : INFINITY);
                double nn = 0.0;
                for (int32_t i = 0; i < D; i++) nn += (double)C[(size_t)j * D + i] * C[(size_t)j * D + i];
                if (fabs(sqrt(nn) - 1.0) > 1e-3)
                    return lk_fail(err, LOKI_ERR_FORMAT,
                                   "%s: pca.%s.components of layer %d head %d: row %d has length %g, not 1",
                                   path, basis_names[b], l, h, j, sqrt(nn));
            }
        }
    return LOKI_OK;
}

/* Tensor names: pca.{pre,post}.{components,eigenvalues,mean} */
static const char *const tensor_kinds[3] = {"components", "eigenvalues", "mean"};

/* Check (dst == NULL) or copy (dst != NULL) the six tensors of g, each with
 * the shape the metadata implies: components [D, D, Hkv, L], the others
 * [D, Hkv, L]. dst[3 * b + kind] receives basis b's tensor `kind`. */
static loki_status get_tensors(const lk_gguf *g, int64_t L, int64_t H, int64_t D, float *const *dst,
                               loki_error *err) {
    const int64_t ne_c[4] = {D, D, H, L}, ne_v[3] = {D, H, L};
    char name[64];
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "pca.%s.%s", basis_names[b], tensor_kinds[k]);
            loki_status st = get_tensor(g, name, k == 0 ? 4 : 3, k == 0 ? ne_c : ne_v, dst ? dst[3 * b + k] : NULL, err);
            if (st) return st;
        }
    return LOKI_OK;
}

/* Everything in the opened file g into a fresh *out. */
static loki_status load_from(const lk_gguf *g, loki_pca **out, loki_error *err) {
    const char *path = g->path;
    int64_t version, L, H, D, tokens, window;
    char layout[16];
    loki_pca *p = NULL;
    if (!lk_gguf_find(g, "loki.pca.version"))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: not a loki PCA file (no 'loki.pca.version'; make one with `loki calibrate`)",
                       path);
    loki_status st = get_int(g, "loki.pca.version", 0, INT64_MAX, &version, err);
    if (st) return st;
    if (version != PCA_VERSION)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: PCA file version %lld is not supported (this loki reads %d)",
                       path, (long long)version, PCA_VERSION);
    if ((st = get_int(g, "loki.pca.n_layer", 1, PCA_MAX_DIM, &L, err)) ||
        (st = get_int(g, "loki.pca.n_head_kv", 1, PCA_MAX_DIM, &H, err)) ||
        (st = get_int(g, "loki.pca.head_dim", 1, PCA_MAX_DIM, &D, err)) ||
        (st = get_int(g, "loki.pca.calib.tokens", 0, INT64_MAX, &tokens, err)) ||
        (st = get_int(g, "loki.pca.calib.window", 0, INT32_MAX, &window, err)) ||
        (st = get_str(g, "loki.pca.components_layout", layout, sizeof layout, err)))
        return st;
    if (strcmp(layout, "rows"))
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: loki.pca.components_layout is '%s', only 'rows' is supported",
                       path, layout);
    /* shapes first: the file then holds every byte allocated below */
    if ((st = get_tensors(g, L, H, D, NULL, err))) return st;
    if ((st = lk_pca_init(&p, (int32_t)L, (int32_t)H, (int32_t)D, err))) return lk_fail_prefix(err, "%s", path);
    p->calib_tokens = tokens;
    p->calib_window = (int32_t)window;
    if (lk_gguf_find(g, "loki.pca.swa_window")) { /* optional: sliding-window layers */
        int64_t sw, sp;
        if ((st = get_int(g, "loki.pca.swa_window", 1, INT32_MAX, &sw, err)) ||
            (st = get_int(g, "loki.pca.swa_pattern", 1, PCA_MAX_DIM + 1, &sp, err)))
            goto fail;
        p->swa_window = (int32_t)sw;
        p->swa_pattern = (int32_t)sp;
    }
    float *const dst[3 * LK_PCA_N_BASIS] = {p->components[0], p->eigenvalues[0], p->mean[0],
                                            p->components[1], p->eigenvalues[1], p->mean[1]};
    if ((st = get_sha(g, "loki.pca.model.fingerprint", p->fingerprint, err)) ||
        (st = get_sha(g, "loki.pca.calib.sha256", p->calib_sha256, err)) ||
        (st = get_str(g, "loki.pca.model.name", p->model_name, sizeof p->model_name, err)) ||
        (st = get_str(g, "loki.pca.calib.file", p->calib_file, sizeof p->calib_file, err)) ||
        (st = get_tensors(g, L, H, D, dst, err)))
        goto fail;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        if ((st = check_basis(p, path, b, err))) goto fail;
    *out = p;
    return LOKI_OK;
fail:
    loki_pca_free(p);
    return st;
}

/* The model's name for messages: the last component of its path. */
static const char *model_basename(const loki_model *m, char *buf, size_t cap) {
    const char *path = m->path ? m->path : "?";
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), path + s);
    return buf;
}

/* The PCA p (read from path) belongs to model m: same shape and fingerprint. */
static loki_status check_model(const loki_pca *p, const char *path, const loki_model *m, loki_error *err) {
    const lk_hparams *hp = &m->hp;
    char name[256];
    if (p->n_layer != hp->n_layer || p->n_head_kv != hp->n_head_kv || p->head_dim != hp->head_dim)
        return lk_fail(err, LOKI_ERR_ARG,
                       "%s: PCA file holds %d layers x %d KV heads x %d dims (calibrated on %s), the model %s has "
                       "%d x %d x %d", path, p->n_layer, p->n_head_kv, p->head_dim, p->model_name,
                       model_basename(m, name, sizeof name), hp->n_layer, hp->n_head_kv, hp->head_dim);
    char fp[LK_FINGERPRINT_HEX];
    loki_status st = lk_model_fingerprint(m, fp, err);
    if (st) return lk_fail_prefix(err, "%s", path);
    if (strcmp(fp, p->fingerprint))
        return lk_fail(err, LOKI_ERR_ARG,
                       "%s: PCA file was calibrated on another model (%s, fingerprint %.8s\u2026; this model's is "
                       "%.8s\u2026); use --pca-any-model to use it anyway", path, p->model_name, p->fingerprint, fp);
    return LOKI_OK;
}

loki_status loki_pca_load(const char *path, const loki_model *model, loki_pca **out, loki_error *err) {
    lk_gguf g;
    loki_pca *p = NULL;
    loki_status st = lk_gguf_open(path, &g, err); /* messages name the file */
    if (st) return st;
    st = load_from(&g, &p, err);
    lk_gguf_close(&g);
    if (st) return st;
    if (model && (st = check_model(p, path, model, err))) {
        loki_pca_free(p);
        return st;
    }
    *out = p;
    return LOKI_OK;
}
