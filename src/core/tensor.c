/* tensor.c - dtype table and scalar/row conversions (see tensor.h). */
#include "core/tensor.h"

#include "core/quant.h"

#include <math.h>
#include <string.h>

/* Per ggml type id: name, elements per block, bytes per block (0 bytes:
 * a type loki does not read; its name is kept for error messages). */
typedef struct dtype_info {
    const char *name;
    int elems;
    size_t bytes;
} dtype_info;

static const dtype_info k_dtypes[] = {
    [LK_DTYPE_F32] = {"f32", 1, 4},
    [LK_DTYPE_F16] = {"f16", 1, 2},
    [LK_DTYPE_Q4_0] = {"q4_0", LK_QK4, sizeof(lk_block_q4_0)},
    [LK_DTYPE_Q4_1] = {"q4_1", LK_QK4, sizeof(lk_block_q4_1)},
    [4] = {"q4_2 (removed from ggml)", 0, 0},
    [5] = {"q4_3 (removed from ggml)", 0, 0},
    [LK_DTYPE_Q5_0] = {"q5_0", LK_QK4, sizeof(lk_block_q5_0)},
    [LK_DTYPE_Q5_1] = {"q5_1", LK_QK4, sizeof(lk_block_q5_1)},
    [LK_DTYPE_Q8_0] = {"q8_0", LK_QK8_0, sizeof(lk_block_q8_0)},
    [9] = {"q8_1", 0, 0},
    [LK_DTYPE_Q2_K] = {"q2_k", LK_QK_K, sizeof(lk_block_q2_k)},
    [LK_DTYPE_Q3_K] = {"q3_k", LK_QK_K, sizeof(lk_block_q3_k)},
    [LK_DTYPE_Q4_K] = {"q4_k", LK_QK_K, sizeof(lk_block_q4_k)},
    [LK_DTYPE_Q5_K] = {"q5_k", LK_QK_K, sizeof(lk_block_q5_k)},
    [LK_DTYPE_Q6_K] = {"q6_k", LK_QK_K, sizeof(lk_block_q6_k)},
    [15] = {"q8_k", 0, 0},
    [16] = {"iq2_xxs", 0, 0},
    [17] = {"iq2_xs", 0, 0},
    [18] = {"iq3_xxs", 0, 0},
    [19] = {"iq1_s", 0, 0},
    [20] = {"iq4_nl", 0, 0},
    [21] = {"iq3_s", 0, 0},
    [22] = {"iq2_s", 0, 0},
    [23] = {"iq4_xs", 0, 0},
    [24] = {"i8", 0, 0},
    [25] = {"i16", 0, 0},
    [26] = {"i32", 0, 0},
    [27] = {"i64", 0, 0},
    [28] = {"f64", 0, 0},
    [29] = {"iq1_m", 0, 0},
    [LK_DTYPE_BF16] = {"bf16", 1, 2},
    [31] = {"q4_0_4_4 (removed from ggml)", 0, 0},
    [32] = {"q4_0_4_8 (removed from ggml)", 0, 0},
    [33] = {"q4_0_8_8 (removed from ggml)", 0, 0},
    [34] = {"tq1_0", 0, 0},
    [35] = {"tq2_0", 0, 0},
    [36] = {"iq4_nl_4_4 (removed from ggml)", 0, 0},
    [37] = {"iq4_nl_4_8 (removed from ggml)", 0, 0},
    [38] = {"iq4_nl_8_8 (removed from ggml)", 0, 0},
    [39] = {"mxfp4", 0, 0},
    [40] = {"nvfp4", 0, 0},
    [41] = {"q1_0", 0, 0},
};

static const dtype_info *info_of(int t) {
    return t >= 0 && (size_t)t < sizeof k_dtypes / sizeof k_dtypes[0] ? &k_dtypes[t] : NULL;
}

int lk_dtype_valid(int t) {
    const dtype_info *d = info_of(t);
    return d && d->bytes > 0;
}

const char *lk_dtype_name(lk_dtype t) {
    const dtype_info *d = info_of((int)t);
    return d && d->name ? d->name : "?";
}

int lk_dtype_is_quant(lk_dtype t) { return t == LK_DTYPE_Q8_0 || lk_quant_is_kind(t); }

int lk_dtype_block_elems(lk_dtype t) {
    const dtype_info *d = info_of((int)t);
    return d && d->bytes ? d->elems : 0;
}

size_t lk_dtype_block_bytes(lk_dtype t) {
    const dtype_info *d = info_of((int)t);
    return d ? d->bytes : 0;
}

size_t lk_dtype_row_bytes(lk_dtype t, int64_t n) {
    const int be = lk_dtype_block_elems(t);
    return be ? (size_t)(n / be) * lk_dtype_block_bytes(t) : 0;
}

int64_t lk_tensor_nelements(const lk_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return n;
}

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float lk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7F800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t lk_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7E00;
    if (a >= 65520.0f) return sign | 0x7C00; /* rounds to inf */
    if (a < 6.103515625e-05f) {
        /* subnormal half: round(a / 2^-24) with ties to even (nearbyintf) */
        return sign | (uint16_t)nearbyintf(a * 16777216.0f);
    }
    uint32_t ax = f32_bits(a);
    uint32_t exp = (ax >> 23) - 112, man = ax & 0x7FFFFF;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float lk_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t lk_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void lk_row_to_f32(lk_dtype t, const void *src, float *dst, int64_t n) {
    switch (t) {
    case LK_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LK_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lk_f16_to_f32(s[i]);
        break;
    }
    case LK_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lk_bf16_to_f32(s[i]);
        break;
    }
    case LK_DTYPE_Q8_0: {
        const lk_block_q8_0 *b = src;
        for (int64_t i = 0; i < n / LK_QK8_0; i++) {
            float d = lk_f16_to_f32(b[i].d);
            for (int j = 0; j < LK_QK8_0; j++) dst[i * LK_QK8_0 + j] = d * (float)b[i].qs[j];
        }
        break;
    }
    default: lk_quant_row_to_f32(t, src, dst, n); break;
    }
}

void lk_row_from_f32(lk_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case LK_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LK_DTYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lk_f32_to_f16(src[i]);
        break;
    }
    case LK_DTYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lk_f32_to_bf16(src[i]);
        break;
    }
    case LK_DTYPE_Q8_0: {
        lk_block_q8_0 *b = dst;
        for (int64_t i = 0; i < n / LK_QK8_0; i++) {
            const float *x = src + i * LK_QK8_0;
            float amax = 0.0f;
            for (int j = 0; j < LK_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = lk_f32_to_f16(d);
            for (int j = 0; j < LK_QK8_0; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
        }
        break;
    }
    default: lk_quant_row_from_f32(t, src, dst, n); break;
    }
}
