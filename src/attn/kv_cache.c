/*
 * kv_cache.c - the KV cache in its element types (f32, f16, bf16, q8_0;
 * attn.h describes the layout): type names and the default type,
 * allocation, and rows encoded, decoded and stored. The kernels that read
 * the typed rows are in kv.c.
 */
#include "attn/attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tensor.h"

/* ---------------------------------------------------------- types */

const char *loki_kv_type_name(loki_kv_type t) {
    switch (t == LOKI_KV_DEFAULT ? loki_kv_type_default() : t) {
    case LOKI_KV_F32: return "f32";
    case LOKI_KV_F16: return "f16";
    case LOKI_KV_BF16: return "bf16";
    case LOKI_KV_Q8_0: return "q8_0";
    default: return "?";
    }
}

int loki_kv_type_parse(const char *name) {
    static const char *names[] = {"f32", "f16", "bf16", "q8_0"};
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, names[i])) return LOKI_KV_F32 + i;
    return -1;
}

/* The default is the 16-bit type whose attention kernels measured fastest
 * here (docs/ATTENTION.md, "KV cache types"): f16 on CPUs with F16C (its
 * widening is one vcvtph2ps per 16 values), else bf16 (a shift, fast in any
 * C). */
loki_kv_type loki_kv_type_default(void) {
#if defined(__F16C__)
    return LOKI_KV_F16;
#else
    return LOKI_KV_BF16;
#endif
}

static loki_kv_type resolve(loki_kv_type t) { return t == LOKI_KV_DEFAULT ? loki_kv_type_default() : t; }

/* Bytes of a (layer, head) key region: the largest of any split d. */
static size_t k_head_bytes(loki_kv_type t, int D, int32_t n_ctx) {
    size_t row = lk_kv_row_bytes(t, D);
    if (t == LOKI_KV_Q8_0) row += 2; /* a split adds at most one more block scale */
    return row * (size_t)n_ctx;
}

double lk_kv_bytes_for(int32_t L, int32_t Hkv, int32_t D, int32_t n_ctx, loki_kv_type tk, loki_kv_type tv) {
    return (double)L * Hkv * ((double)k_head_bytes(resolve(tk), D, n_ctx) +
                              (double)lk_kv_row_bytes(resolve(tv), D) * n_ctx);
}

loki_status lk_kv_init(lk_kv_cache *c, int32_t L, int32_t Hkv, int32_t D, int32_t n_ctx, loki_kv_type tk,
                       loki_kv_type tv, loki_error *err) {
    memset(c, 0, sizeof *c);
    if ((unsigned)tk > LOKI_KV_Q8_0)
        return lk_fail(err, LOKI_ERR_ARG, "type_k (-ctk/--cache-type-k) must be one of " LOKI_KV_TYPE_NAMES ", got %d",
                       (int)tk);
    if ((unsigned)tv > LOKI_KV_Q8_0)
        return lk_fail(err, LOKI_ERR_ARG, "type_v (-ctv/--cache-type-v) must be one of " LOKI_KV_TYPE_NAMES ", got %d",
                       (int)tv);
    c->n_layer = L, c->n_head_kv = Hkv, c->head_dim = D, c->n_ctx = n_ctx;
    c->tk = resolve(tk), c->tv = resolve(tv);
    c->k_head = k_head_bytes(c->tk, D, n_ctx);
    c->v_head = lk_kv_row_bytes(c->tv, D) * (size_t)n_ctx;
    const double kb = (double)L * Hkv * c->k_head, vb = (double)L * Hkv * c->v_head;
    /* Linux overcommits: an allocation larger than the machine's memory
     * succeeds and fails later, page by page; refuse it here instead */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    double phys = pages > 0 && psz > 0 ? (double)pages * psz : 0;
    bool too_big = kb + vb > 0.9 * 18446744073709551615.0 || (phys > 0 && kb + vb > phys);
    if (!too_big) {
        c->d = lk_calloc((size_t)L * Hkv, sizeof(int32_t), err);
        c->k = c->d ? lk_alloc_aligned((size_t)kb, err) : NULL;
        c->v = c->k ? lk_alloc_aligned((size_t)vb, err) : NULL;
    }
    if (!c->v) {
        lk_kv_free(c);
        return lk_fail(err, LOKI_ERR_NOMEM,
                       "cannot allocate the KV cache: %d tokens x %d layers x %d KV heads x %d dims, "
                       "K %s %.2f GiB + V %s %.2f GiB = %.2f GiB%s%.2f GiB of memory (lower -c/--ctx-size, or "
                       "a smaller -ctk/-ctv type)",
                       n_ctx, L, Hkv, D, loki_kv_type_name(c->tk), kb / 1073741824.0, loki_kv_type_name(c->tv),
                       vb / 1073741824.0, (kb + vb) / 1073741824.0, too_big ? ", more than the machine's " : "; ",
                       phys / 1073741824.0);
    }
    for (int32_t i = 0; i < L * Hkv; i++) c->d[i] = D;
    return LOKI_OK;
}

void lk_kv_free(lk_kv_cache *c) {
    lk_free_aligned(c->k);
    lk_free_aligned(c->v);
    free(c->d);
    c->k = c->v = NULL;
    c->d = NULL;
}

/* --------------------------------------------------- rows, portable */

void lk_row_encode(loki_kv_type t, void *dst, const float *x, int n) {
    switch (t) {
    case LOKI_KV_F16: {
        uint16_t *h = dst;
        for (int i = 0; i < n; i++) h[i] = lk_f32_to_f16(x[i]);
        return;
    }
    case LOKI_KV_BF16: {
        uint16_t *h = dst;
        for (int i = 0; i < n; i++) h[i] = lk_f32_to_bf16(x[i]);
        return;
    }
    case LOKI_KV_Q8_0: {
        const int nb = (n + 31) / 32;
        uint8_t *sc = dst;
        int8_t *qs = (int8_t *)dst + 2 * nb;
        for (int b = 0; b < nb; b++) {
            const int i0 = 32 * b, i1 = LK_MIN(n, i0 + 32);
            float amax = 0.0f;
            for (int i = i0; i < i1; i++) amax = fmaxf(amax, fabsf(x[i]));
            uint16_t h = lk_f32_to_f16(amax / 127.0f);
            float d = lk_f16_to_f32(h), id = d > 0.0f ? 1.0f / d : 0.0f;
            memcpy(sc + 2 * b, &h, 2);
            for (int i = i0; i < i1; i++) {
                float q = nearbyintf(x[i] * id);
                qs[i] = (int8_t)(q > 127.0f ? 127 : q < -127.0f ? -127 : q);
            }
        }
        return;
    }
    default: memcpy(dst, x, sizeof(float) * (size_t)n); return;
    }
}

void lk_row_decode(loki_kv_type t, const void *src, float *y, int n) {
    switch (t) {
    case LOKI_KV_F16: {
        const uint16_t *h = src;
        for (int i = 0; i < n; i++) y[i] = lk_f16_to_f32(h[i]);
        return;
    }
    case LOKI_KV_BF16: {
        const uint16_t *h = src;
        for (int i = 0; i < n; i++) {
            uint32_t u = (uint32_t)h[i] << 16;
            memcpy(&y[i], &u, 4);
        }
        return;
    }
    case LOKI_KV_Q8_0: {
        const int nb = (n + 31) / 32;
        const uint8_t *sc = src;
        const int8_t *qs = (const int8_t *)src + 2 * nb;
        for (int b = 0; b < nb; b++) {
            uint16_t h;
            memcpy(&h, sc + 2 * b, 2);
            const float d = lk_f16_to_f32(h);
            for (int i = 32 * b; i < LK_MIN(n, 32 * b + 32); i++) y[i] = d * (float)qs[i];
        }
        return;
    }
    default: memcpy(y, src, sizeof(float) * (size_t)n); return;
    }
}

void lk_kv_store(lk_kv_cache *c, int layer, int32_t pos0, const float *k, const float *v, int32_t n) {
    const int Hkv = c->n_head_kv, D = c->head_dim;
    for (int h = 0; h < Hkv; h++) {
        const int d = lk_kv_d(c, layer, h);
        const size_t slo = lk_kv_klo_stride(c, layer, h), shi = lk_kv_khi_stride(c, layer, h), sv = lk_kv_v_stride(c);
        uint8_t *Klo = lk_kv_klo(c, layer, h), *Khi = lk_kv_khi(c, layer, h), *V = lk_kv_v(c, layer, h);
        for (int32_t i = 0; i < n; i++) {
            const float *ki = k + ((size_t)i * Hkv + h) * D;
            size_t pos = (size_t)(pos0 + i);
            lk_row_encode(c->tk, Klo + pos * slo, ki, d);
            if (D > d) lk_row_encode(c->tk, Khi + pos * shi, ki + d, D - d);
            lk_row_encode(c->tv, V + pos * sv, v + ((size_t)i * Hkv + h) * D, D);
        }
    }
}
