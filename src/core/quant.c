/*
 * quant.c - dequantization and quantization of the ggml block types Q4_0,
 * Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (layouts in quant.h).
 *
 * Dequantization computes each weight in float32 in the order the layouts
 * state, scale products first: w = (d * sc) * q - (dmin * m). Compiled as
 * ISO C11 (no FMA contraction), this gives the same float32 as gguf-py's
 * numpy dequantization (tests/test_quant.c compares them).
 *
 * Quantization is plain round-to-nearest (no search over scales as
 * llama.cpp's quantizers do), with these per-element error bounds for finite
 * inputs (amax = max |x| of the block, lo/hi = its min/max; for K-quants
 * _s = of the sub-block, R/A = over the super-block, see each function):
 *   Q4_0: |err| <= 1.01 amax / 8   (d = -m/8 with m the signed value of
 *         largest magnitude: elements of m's sign are within d/2; the other
 *         side reaches +8 d, clamped to 7 d, so up to d);
 *   Q5_0: |err| <= 1.01 amax / 16  (the same with -m/16 and 4-bit + 1);
 *   Q4_1: |err| <= 1.01 (hi - lo) / 30 + 2^-10 (|lo| + |hi|)  (d = range /
 *         15 and the min m = lo, both rounded to fp16);
 *   Q5_1: |err| <= 1.01 (hi - lo) / 62 + 2^-10 (|lo| + |hi|);
 *   K-quants with a min (Q2_K nmax 3 / smax 15, Q4_K 15 / 63, Q5_K 31 / 63):
 *         see quant_k_min;
 *   K-quants symmetric (Q3_K qmax 3 / smax 31, Q6_K 31 / 127): see quant_k_sym.
 * Inputs must keep |x| below ~1e6 so the fp16 scales stay finite.
 */
#include "core/quant.h"

#include <math.h>
#include <string.h>

_Static_assert(sizeof(lk_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(lk_block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(lk_block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(lk_block_q5_1) == 24, "q5_1 block is 24 bytes");
_Static_assert(sizeof(lk_block_q2_k) == 84, "q2_k block is 84 bytes");
_Static_assert(sizeof(lk_block_q3_k) == 110, "q3_k block is 110 bytes");
_Static_assert(sizeof(lk_block_q4_k) == 144, "q4_k block is 144 bytes");
_Static_assert(sizeof(lk_block_q5_k) == 176, "q5_k block is 176 bytes");
_Static_assert(sizeof(lk_block_q6_k) == 210, "q6_k block is 210 bytes");

int lk_quant_is_kind(lk_dtype t) {
    switch (t) {
    case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1:
    case LK_DTYPE_Q2_K: case LK_DTYPE_Q3_K: case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K:
    case LK_DTYPE_Q6_K: return 1;
    default: return 0;
    }
}

/* ------------------------------------------------------------ decoding */

/* 4-bit value e (0..31) of a legacy block's qs[16]. */
static inline int nib32(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4; }

/* Bit e (0..31) of a little-endian u32 stored as 4 bytes. */
static inline int qh_bit(const uint8_t *qh, int e) { return (qh[e >> 3] >> (e & 7)) & 1; }

void lk_quant_k_scale_min(const uint8_t *scales, int s, uint8_t *sc, uint8_t *m) {
    if (s < 4) {
        *sc = scales[s] & 63;
        *m = scales[s + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4);
        *m = (uint8_t)((scales[s + 4] >> 4) | (scales[s] >> 6) << 4);
    }
}

/* 6-bit code (0..63) of Q3_K sub-block s (0..15); the scale is code - 32. */
static inline int q3k_scale_code(const uint8_t *scales, int s) {
    int lo = s < 8 ? scales[s] & 15 : scales[s - 8] >> 4;
    int hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
    return lo | hi << 4;
}

/* 2-bit value of element e (0..255) of a 64-byte array (Q2_K/Q3_K qs, Q6_K qh). */
static inline int crumb256(const uint8_t *qs, int e) {
    int h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    return (qs[32 * h + l] >> (2 * j)) & 3;
}

/* 4-bit value of element e (0..255) of a Q4_K/Q5_K 128-byte qs. */
static inline int nib256(const uint8_t *qs, int e) {
    int c = e >> 6, k = (e >> 5) & 1, l = e & 31;
    return (qs[32 * c + l] >> (4 * k)) & 15;
}

static void deq_q4_0(const lk_block_q4_0 *b, float *y) {
    const float d = lk_f16_to_f32(b->d);
    for (int e = 0; e < 32; e++) y[e] = d * (float)(nib32(b->qs, e) - 8);
}

static void deq_q4_1(const lk_block_q4_1 *b, float *y) {
    const float d = lk_f16_to_f32(b->d), m = lk_f16_to_f32(b->m);
    for (int e = 0; e < 32; e++) y[e] = d * (float)nib32(b->qs, e) + m;
}

static void deq_q5_0(const lk_block_q5_0 *b, float *y) {
    const float d = lk_f16_to_f32(b->d);
    for (int e = 0; e < 32; e++) y[e] = d * (float)((nib32(b->qs, e) | qh_bit(b->qh, e) << 4) - 16);
}

static void deq_q5_1(const lk_block_q5_1 *b, float *y) {
    const float d = lk_f16_to_f32(b->d), m = lk_f16_to_f32(b->m);
    for (int e = 0; e < 32; e++) y[e] = d * (float)(nib32(b->qs, e) | qh_bit(b->qh, e) << 4) + m;
}

static void deq_q2_k(const lk_block_q2_k *b, float *y) {
    const float d = lk_f16_to_f32(b->d), dmin = lk_f16_to_f32(b->dmin);
    for (int s = 0; s < 16; s++) {
        const float ds = d * (float)(b->scales[s] & 15), dm = dmin * (float)(b->scales[s] >> 4);
        for (int e = 16 * s; e < 16 * s + 16; e++) y[e] = ds * (float)crumb256(b->qs, e) - dm;
    }
}

static void deq_q3_k(const lk_block_q3_k *b, float *y) {
    const float d = lk_f16_to_f32(b->d);
    for (int s = 0; s < 16; s++) {
        const float ds = d * (float)(q3k_scale_code(b->scales, s) - 32);
        for (int e = 16 * s; e < 16 * s + 16; e++) {
            int q = crumb256(b->qs, e) - (((b->hmask[e & 31] >> (e >> 5)) & 1) ? 0 : 4);
            y[e] = ds * (float)q;
        }
    }
}

static void deq_q4_k(const lk_block_q4_k *b, float *y) {
    const float d = lk_f16_to_f32(b->d), dmin = lk_f16_to_f32(b->dmin);
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        lk_quant_k_scale_min(b->scales, s, &sc, &m);
        const float ds = d * (float)sc, dm = dmin * (float)m;
        for (int e = 32 * s; e < 32 * s + 32; e++) y[e] = ds * (float)nib256(b->qs, e) - dm;
    }
}

static void deq_q5_k(const lk_block_q5_k *b, float *y) {
    const float d = lk_f16_to_f32(b->d), dmin = lk_f16_to_f32(b->dmin);
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        lk_quant_k_scale_min(b->scales, s, &sc, &m);
        const float ds = d * (float)sc, dm = dmin * (float)m;
        for (int e = 32 * s; e < 32 * s + 32; e++) {
            int q = nib256(b->qs, e) | ((b->qh[e & 31] >> (e >> 5)) & 1) << 4;
            y[e] = ds * (float)q - dm;
        }
    }
}

/* Low 4 bits of Q6_K element e: see quant.h. */
static inline int q6k_low(const uint8_t *ql, int e) {
    int h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    uint8_t byte = ql[64 * h + 32 * (j & 1) + l];
    return j >= 2 ? byte >> 4 : byte & 15;
}

static void deq_q6_k(const lk_block_q6_k *b, float *y) {
    const float d = lk_f16_to_f32(b->d);
    for (int s = 0; s < 16; s++) {
        const float ds = d * (float)b->scales[s];
        for (int e = 16 * s; e < 16 * s + 16; e++) {
            int q = (q6k_low(b->ql, e) | crumb256(b->qh, e) << 4) - 32;
            y[e] = ds * (float)q;
        }
    }
}

void lk_quant_row_to_f32(lk_dtype t, const void *src, float *dst, int64_t n) {
    const int be = lk_dtype_block_elems(t);
    for (int64_t i = 0; i < n / be; i++) {
        float *y = dst + i * be;
        switch (t) {
        case LK_DTYPE_Q4_0: deq_q4_0((const lk_block_q4_0 *)src + i, y); break;
        case LK_DTYPE_Q4_1: deq_q4_1((const lk_block_q4_1 *)src + i, y); break;
        case LK_DTYPE_Q5_0: deq_q5_0((const lk_block_q5_0 *)src + i, y); break;
        case LK_DTYPE_Q5_1: deq_q5_1((const lk_block_q5_1 *)src + i, y); break;
        case LK_DTYPE_Q2_K: deq_q2_k((const lk_block_q2_k *)src + i, y); break;
        case LK_DTYPE_Q3_K: deq_q3_k((const lk_block_q3_k *)src + i, y); break;
        case LK_DTYPE_Q4_K: deq_q4_k((const lk_block_q4_k *)src + i, y); break;
        case LK_DTYPE_Q5_K: deq_q5_k((const lk_block_q5_k *)src + i, y); break;
        case LK_DTYPE_Q6_K: deq_q6_k((const lk_block_q6_k *)src + i, y); break;
        default: return;
        }
    }
}

/* ------------------------------------------------------------ encoding */

/* fp16 bits of the smallest half >= v (v >= 0 finite, below 65504). */
static uint16_t f16_up(float v) {
    uint16_t h = lk_f32_to_f16(v);
    if (lk_f16_to_f32(h) < v) h++;
    return h;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Legacy symmetric block (Q4_0 nbits 4, Q5_0 nbits 5): d = -m / 2^(nbits-1)
 * with m the signed value of largest magnitude; q = round(x / d) + 2^(nbits-1)
 * clamped to [0, 2^nbits - 1]. Writes q (32) and returns the fp16 d. */
static uint16_t quant_legacy_sym(const float *x, int nbits, uint8_t *q) {
    float amax = 0.0f, m = 0.0f;
    for (int e = 0; e < 32; e++)
        if (fabsf(x[e]) > amax) { amax = fabsf(x[e]); m = x[e]; }
    const int half = 1 << (nbits - 1);
    const uint16_t dh = lk_f32_to_f16(m / (float)-half);
    const float d = lk_f16_to_f32(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int e = 0; e < 32; e++) q[e] = (uint8_t)clampi((int)nearbyintf(x[e] * id) + half, 0, 2 * half - 1);
    return dh;
}

/* Legacy block with a min (Q4_1 nbits 4, Q5_1 nbits 5): m = min, d = (max -
 * min) / (2^nbits - 1), both fp16; q = round((x - m) / d) clamped. */
static void quant_legacy_min(const float *x, int nbits, uint8_t *q, uint16_t *dh, uint16_t *mh) {
    float lo = x[0], hi = x[0];
    for (int e = 1; e < 32; e++) { lo = fminf(lo, x[e]); hi = fmaxf(hi, x[e]); }
    const int qmax = (1 << nbits) - 1;
    *dh = lk_f32_to_f16((hi - lo) / (float)qmax);
    *mh = lk_f32_to_f16(lo);
    const float d = lk_f16_to_f32(*dh), mn = lk_f16_to_f32(*mh), id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int e = 0; e < 32; e++) q[e] = (uint8_t)clampi((int)nearbyintf((x[e] - mn) * id), 0, qmax);
}

/* K-quant super-block of 256 with a per-sub-block min: nsub sub-blocks of
 * 256/nsub, q in [0, nmax], scale and min codes in [0, smax].
 *   lo_s = min(0, min x_s), hi_s = max x_s, A = max_s(-lo_s);
 *   dmin = A / smax rounded up to fp16, m_s = round(-lo_s / dmin);
 *   need_s = max(hi_s + dmin m_s, 0) / nmax, d = max_s need_s / smax rounded
 *   up to fp16, sc_s = ceil(need_s / d) (so nmax d sc_s covers hi_s);
 *   q = round((x + dmin m_s) / (d sc_s)) clamped to [0, nmax].
 * Error per element of sub-block s (a = dmin <= 1.001 A / smax, R = max_s
 * (hi_s - lo_s)): rounding costs d sc_s / 2 <= (need_s + d) / 2, the min's
 * rounding at most a / 2 at the bottom, so
 *   |err| <= (hi_s - lo_s + a/2) / (2 nmax) + (R + a/2) / (2 nmax smax) + a/2
 * (times 1.001 for the fp16 roundings up). */
static void quant_k_min(const float *x, int nsub, int nmax, int smax, uint8_t *q, uint8_t *sc,
                        uint8_t *mc, uint16_t *dh, uint16_t *dminh) {
    const int len = LK_QK_K / nsub;
    float lo[16], hi[16], need[16], A = 0.0f, N = 0.0f;
    for (int s = 0; s < nsub; s++) {
        lo[s] = 0.0f;
        hi[s] = x[s * len];
        for (int e = s * len; e < (s + 1) * len; e++) { lo[s] = fminf(lo[s], x[e]); hi[s] = fmaxf(hi[s], x[e]); }
        A = fmaxf(A, -lo[s]);
    }
    *dminh = f16_up(A / (float)smax);
    const float dmin = lk_f16_to_f32(*dminh);
    for (int s = 0; s < nsub; s++) {
        mc[s] = (uint8_t)(dmin > 0.0f ? clampi((int)nearbyintf(-lo[s] / dmin), 0, smax) : 0);
        need[s] = fmaxf(hi[s] + dmin * (float)mc[s], 0.0f) / (float)nmax;
        N = fmaxf(N, need[s]);
    }
    *dh = f16_up(N / (float)smax);
    const float d = lk_f16_to_f32(*dh);
    for (int s = 0; s < nsub; s++) {
        sc[s] = (uint8_t)(d > 0.0f ? clampi((int)ceilf(need[s] / d), 0, smax) : 0);
        const float ds = d * (float)sc[s], dm = dmin * (float)mc[s], id = ds > 0.0f ? 1.0f / ds : 0.0f;
        for (int e = s * len; e < (s + 1) * len; e++)
            q[e] = (uint8_t)clampi((int)nearbyintf((x[e] + dm) * id), 0, nmax);
    }
}

/* Symmetric K-quant super-block: nsub sub-blocks, q in [-qmax, qmax], scale
 * codes in [0, smax]: need_s = amax_s / qmax, d = max_s need_s / smax rounded
 * up to fp16, sc_s = ceil(need_s / d), q = round(x / (d sc_s)) (never
 * clamped). |err| <= d sc_s / 2 <= 1.001 (amax_s / (2 qmax) + amax / (2 qmax
 * smax)), amax over the super-block. */
static void quant_k_sym(const float *x, int nsub, int qmax, int smax, int8_t *q, uint8_t *sc, uint16_t *dh) {
    const int len = LK_QK_K / nsub;
    float need[16], N = 0.0f;
    for (int s = 0; s < nsub; s++) {
        float amax = 0.0f;
        for (int e = s * len; e < (s + 1) * len; e++) amax = fmaxf(amax, fabsf(x[e]));
        need[s] = amax / (float)qmax;
        N = fmaxf(N, need[s]);
    }
    *dh = f16_up(N / (float)smax);
    const float d = lk_f16_to_f32(*dh);
    for (int s = 0; s < nsub; s++) {
        sc[s] = (uint8_t)(d > 0.0f ? clampi((int)ceilf(need[s] / d), 0, smax) : 0);
        const float ds = d * (float)sc[s], id = ds > 0.0f ? 1.0f / ds : 0.0f;
        for (int e = s * len; e < (s + 1) * len; e++)
            q[e] = (int8_t)clampi((int)nearbyintf(x[e] * id), -qmax, qmax);
    }
}

/* Pack 32 4-bit values into a legacy qs[16] (low nibbles: 0..15). */
static void pack_nib32(const uint8_t *q, uint8_t *qs) {
    for (int e = 0; e < 16; e++) qs[e] = (uint8_t)((q[e] & 15) | (q[e + 16] & 15) << 4);
}

/* Bit 4 of 32 values into a little-endian u32 as 4 bytes. */
static void pack_qh32(const uint8_t *q, uint8_t *qh) {
    memset(qh, 0, 4);
    for (int e = 0; e < 32; e++) qh[e >> 3] |= (uint8_t)(((q[e] >> 4) & 1) << (e & 7));
}

/* 2-bit values of 256 elements into a 64-byte array (crumb256's layout). */
static void pack_crumb256(const uint8_t *q, uint8_t *qs) {
    memset(qs, 0, 64);
    for (int e = 0; e < 256; e++) qs[32 * (e >> 7) + (e & 31)] |= (uint8_t)((q[e] & 3) << (2 * ((e >> 5) & 3)));
}

/* 4-bit values of 256 elements into a 128-byte qs (nib256's layout). */
static void pack_nib256(const uint8_t *q, uint8_t *qs) {
    memset(qs, 0, 128);
    for (int e = 0; e < 256; e++) qs[32 * (e >> 6) + (e & 31)] |= (uint8_t)((q[e] & 15) << (4 * ((e >> 5) & 1)));
}

/* Bit `bit` of 256 values into a 32-byte mask: bit (e / 32) of mask[e % 32]. */
static void pack_bits256(const uint8_t *q, int bit, uint8_t *mask) {
    memset(mask, 0, 32);
    for (int e = 0; e < 256; e++) mask[e & 31] |= (uint8_t)(((q[e] >> bit) & 1) << (e >> 5));
}

/* 8 6-bit scales and mins into the Q4_K/Q5_K 12-byte array. */
static void pack_k_scales(const uint8_t *sc, const uint8_t *m, uint8_t *scales) {
    for (int s = 0; s < 4; s++) {
        scales[s] = (uint8_t)((sc[s] & 63) | (sc[s + 4] >> 4) << 6);
        scales[s + 4] = (uint8_t)((m[s] & 63) | (m[s + 4] >> 4) << 6);
        scales[s + 8] = (uint8_t)((sc[s + 4] & 15) | (m[s + 4] & 15) << 4);
    }
}

static void enc_q2_k(const float *x, lk_block_q2_k *b) {
    uint8_t q[256], sc[16], m[16];
    quant_k_min(x, 16, 3, 15, q, sc, m, &b->d, &b->dmin);
    for (int s = 0; s < 16; s++) b->scales[s] = (uint8_t)(sc[s] | m[s] << 4);
    pack_crumb256(q, b->qs);
}

static void enc_q3_k(const float *x, lk_block_q3_k *b) {
    int8_t q[256];
    uint8_t u[256], sc[16];
    quant_k_sym(x, 16, 3, 31, q, sc, &b->d);
    /* stored q = low 2 bits + (hmask ? 0 : -4): q >= 0 -> bit set, q < 0 -> q + 4 clear */
    for (int e = 0; e < 256; e++) u[e] = (uint8_t)(q[e] >= 0 ? q[e] | 4 : q[e] + 4);
    pack_crumb256(u, b->qs);
    pack_bits256(u, 2, b->hmask);
    memset(b->scales, 0, 12);
    for (int s = 0; s < 16; s++) {
        int code = sc[s] + 32;
        b->scales[s % 8] |= (uint8_t)((code & 15) << (s < 8 ? 0 : 4));
        b->scales[8 + s % 4] |= (uint8_t)((code >> 4) << (2 * (s / 4)));
    }
}

static void enc_q45_k(const float *x, int nbits, uint16_t *dh, uint16_t *dminh, uint8_t *scales,
                      uint8_t *qh, uint8_t *qs) {
    uint8_t q[256], sc[8], m[8];
    quant_k_min(x, 8, (1 << nbits) - 1, 63, q, sc, m, dh, dminh);
    pack_k_scales(sc, m, scales);
    pack_nib256(q, qs);
    if (qh) pack_bits256(q, 4, qh);
}

static void enc_q6_k(const float *x, lk_block_q6_k *b) {
    int8_t q[256];
    uint8_t sc[16], u[256], hi[256];
    quant_k_sym(x, 16, 31, 127, q, sc, &b->d);
    for (int s = 0; s < 16; s++) b->scales[s] = (int8_t)sc[s];
    memset(b->ql, 0, sizeof b->ql);
    for (int e = 0; e < 256; e++) {
        u[e] = (uint8_t)(q[e] + 32);
        hi[e] = u[e] >> 4;
        int h = e >> 7, j = (e >> 5) & 3, l = e & 31;
        b->ql[64 * h + 32 * (j & 1) + l] |= (uint8_t)((u[e] & 15) << (j >= 2 ? 4 : 0));
    }
    pack_crumb256(hi, b->qh);
}

void lk_quant_row_from_f32(lk_dtype t, const float *src, void *dst, int64_t n) {
    const int be = lk_dtype_block_elems(t);
    uint8_t q[32];
    for (int64_t i = 0; i < n / be; i++) {
        const float *x = src + i * be;
        switch (t) {
        case LK_DTYPE_Q4_0: {
            lk_block_q4_0 *b = (lk_block_q4_0 *)dst + i;
            b->d = quant_legacy_sym(x, 4, q);
            pack_nib32(q, b->qs);
            break;
        }
        case LK_DTYPE_Q4_1: {
            lk_block_q4_1 *b = (lk_block_q4_1 *)dst + i;
            quant_legacy_min(x, 4, q, &b->d, &b->m);
            pack_nib32(q, b->qs);
            break;
        }
        case LK_DTYPE_Q5_0: {
            lk_block_q5_0 *b = (lk_block_q5_0 *)dst + i;
            b->d = quant_legacy_sym(x, 5, q);
            pack_nib32(q, b->qs);
            pack_qh32(q, b->qh);
            break;
        }
        case LK_DTYPE_Q5_1: {
            lk_block_q5_1 *b = (lk_block_q5_1 *)dst + i;
            quant_legacy_min(x, 5, q, &b->d, &b->m);
            pack_nib32(q, b->qs);
            pack_qh32(q, b->qh);
            break;
        }
        case LK_DTYPE_Q2_K: enc_q2_k(x, (lk_block_q2_k *)dst + i); break;
        case LK_DTYPE_Q3_K: enc_q3_k(x, (lk_block_q3_k *)dst + i); break;
        case LK_DTYPE_Q4_K: {
            lk_block_q4_k *b = (lk_block_q4_k *)dst + i;
            enc_q45_k(x, 4, &b->d, &b->dmin, b->scales, NULL, b->qs);
            break;
        }
        case LK_DTYPE_Q5_K: {
            lk_block_q5_k *b = (lk_block_q5_k *)dst + i;
            enc_q45_k(x, 5, &b->d, &b->dmin, b->scales, b->qh, b->qs);
            break;
        }
        case LK_DTYPE_Q6_K: enc_q6_k(x, (lk_block_q6_k *)dst + i); break;
        default: return;
        }
    }
}
