/*
 * quantize.c - searched-scale quantization of Q4_0, Q5_0, Q4_K and Q6_K rows
 * (see quantize.h; block layouts in quant.h).
 */
#include "core/quantize.h"
#include "core/quant.h"

#include <math.h>
#include <string.h>

#define N_SEARCH 9 /* candidate scales each side of the range-based one, 0.1 level apart */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int roundi(float v) { return (int)nearbyintf(v); }

/* Symmetric group x (n <= 32) ~ d * q with integer q in [qmin, qmax]
 * (qmin < 0 < qmax): the value of largest magnitude is mapped near qmin
 * or qmax (each +- N_SEARCH tenths of a level), q rounded, then d refitted by
 * least squares (d = sum x q / sum q^2); returns the d of the smallest
 * squared error (0 for an all-zero group). */
static float fit_sym(const float *x, int n, int qmin, int qmax) {
    float amax = 0.0f, m = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            m = x[i];
        }
    if (amax == 0.0f) return 0.0f;
    float best_d = m / (float)qmin;
    double best_err = INFINITY;
    int q[32];
    for (int side = 0; side < 2; side++) {
        for (int k = -N_SEARCH; k <= N_SEARCH; k++) {
            const float level = (float)(side == 0 ? qmin : qmax) + 0.1f * (float)k;
            if (fabsf(level) < 0.5f) continue;
            const float id = level / m;
            double sxq = 0.0, sqq = 0.0;
            for (int i = 0; i < n; i++) {
                q[i] = clampi(roundi(x[i] * id), qmin, qmax);
                sxq += (double)x[i] * q[i];
                sqq += (double)q[i] * q[i];
            }
            if (sqq <= 0.0) continue;
            const float d = (float)(sxq / sqq);
            double err = 0.0;
            for (int i = 0; i < n; i++) {
                const double e = x[i] - (double)d * q[i];
                err += e * e;
            }
            if (err < best_err) {
                best_err = err;
                best_d = d;
            }
        }
    }
    return best_d;
}

/* Group x (n <= 32) ~ d * q - m with q in [0, nmax], d > 0, m >= 0: for
 * candidate inverse scales (nmax + k/10) / (max - min(0, lo)), q rounded,
 * then (d, -m) refitted by least squares (m clamped at 0 and d refitted
 * alone when the fit wants a positive offset); keeps the smallest squared
 * error. */
static void fit_min(const float *x, int n, int nmax, float *d_out, float *m_out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    if (lo > 0.0f) lo = 0.0f;
    *d_out = hi > lo ? (hi - lo) / (float)nmax : 0.0f;
    *m_out = -lo;
    if (!(hi > lo)) return;
    double best_err = INFINITY;
    int q[32];
    for (int k = -N_SEARCH; k <= N_SEARCH; k++) {
        const float iscale = ((float)nmax + 0.1f * (float)k) / (hi - lo);
        double sw = n, sq = 0, sqq = 0, sx = 0, sxq = 0;
        for (int i = 0; i < n; i++) {
            q[i] = clampi(roundi(iscale * (x[i] - lo)), 0, nmax);
            sq += q[i];
            sqq += (double)q[i] * q[i];
            sx += x[i];
            sxq += (double)x[i] * q[i];
        }
        const double det = sw * sqq - sq * sq;
        if (!(det > 0.0)) continue;
        double d = (sw * sxq - sq * sx) / det, b = (sqq * sx - sq * sxq) / det;
        if (b > 0.0) {
            b = 0.0;
            d = sxq / sqq;
        }
        if (!(d > 0.0)) continue;
        double err = 0.0;
        for (int i = 0; i < n; i++) {
            const double e = d * q[i] + b - x[i];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            *d_out = (float)d;
            *m_out = (float)-b;
        }
    }
}

/* Q4_0 (nbits 4) / Q5_0 (nbits 5) block of 32: searched d rounded to fp16,
 * then q = round(x / d) + 2^(nbits-1) clamped; writes d, the low nibbles
 * (qs) and for Q5_0 bit 4 of each q into qh (u32 little-endian, bit e). */
static void enc_legacy(const float *x, int nbits, uint16_t *dh, uint8_t *qs, uint8_t *qh) {
    const int half = 1 << (nbits - 1);
    *dh = lk_f32_to_f16(fit_sym(x, 32, -half, half - 1));
    const float d = lk_f16_to_f32(*dh), id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[32];
    for (int e = 0; e < 32; e++) q[e] = (uint8_t)(clampi(roundi(x[e] * id), -half, half - 1) + half);
    for (int e = 0; e < 16; e++) qs[e] = (uint8_t)((q[e] & 15) | (q[e + 16] & 15) << 4);
    if (qh) {
        memset(qh, 0, 4);
        for (int e = 0; e < 32; e++) qh[e >> 3] |= (uint8_t)(((q[e] >> 4) & 1) << (e & 7));
    }
}

/* Q4_K super-block of 256: 8 sub-blocks of 32 fitted with a min, their
 * scales and mins coded in 6 bits against fp16 d = max scale / 63 and
 * dmin = max min / 63, then q recomputed with the coded values. */
static void enc_q4_k(const float *x, lk_block_q4_k *b) {
    float sd[8], sm[8], dmax = 0.0f, mmax = 0.0f;
    for (int s = 0; s < 8; s++) {
        fit_min(x + 32 * s, 32, 15, &sd[s], &sm[s]);
        dmax = fmaxf(dmax, sd[s]);
        mmax = fmaxf(mmax, sm[s]);
    }
    b->d = lk_f32_to_f16(dmax / 63.0f);
    b->dmin = lk_f32_to_f16(mmax / 63.0f);
    const float d = lk_f16_to_f32(b->d), dmin = lk_f16_to_f32(b->dmin);
    uint8_t sc[8], mc[8];
    memset(b->scales, 0, sizeof b->scales);
    memset(b->qs, 0, sizeof b->qs);
    for (int s = 0; s < 8; s++) {
        sc[s] = (uint8_t)(d > 0.0f ? clampi(roundi(sd[s] / d), 0, 63) : 0);
        mc[s] = (uint8_t)(dmin > 0.0f ? clampi(roundi(sm[s] / dmin), 0, 63) : 0);
        if (s < 4) {
            b->scales[s] = sc[s];
            b->scales[s + 4] = mc[s];
        } else {
            b->scales[s + 4] = (uint8_t)((sc[s] & 15) | (mc[s] & 15) << 4);
            b->scales[s - 4] |= (uint8_t)((sc[s] >> 4) << 6);
            b->scales[s] |= (uint8_t)((mc[s] >> 4) << 6);
        }
        const float ds = d * (float)sc[s], dm = dmin * (float)mc[s], id = ds > 0.0f ? 1.0f / ds : 0.0f;
        for (int e = 32 * s; e < 32 * (s + 1); e++) {
            /* e = 64c + 32k + l -> nibble k of qs[32c + l] */
            const int q = clampi(roundi((x[e] + dm) * id), 0, 15);
            b->qs[32 * (e >> 6) + (e & 31)] |= (uint8_t)(q << (4 * ((e >> 5) & 1)));
        }
    }
}

/* Q6_K super-block of 256: 16 symmetric sub-blocks of 16 with levels
 * -32..31, their scales coded as int8 against fp16 d = max |scale| / 127,
 * then q recomputed with the coded scales. */
static void enc_q6_k(const float *x, lk_block_q6_k *b) {
    float ss[16], amax = 0.0f;
    for (int s = 0; s < 16; s++) {
        ss[s] = fit_sym(x + 16 * s, 16, -32, 31);
        amax = fmaxf(amax, fabsf(ss[s]));
    }
    b->d = lk_f32_to_f16(amax / 127.0f);
    const float d = lk_f16_to_f32(b->d);
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int s = 0; s < 16; s++) {
        const int code = d > 0.0f ? clampi(roundi(ss[s] / d), -128, 127) : 0;
        b->scales[s] = (int8_t)code;
        const float ds = d * (float)code, id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int e = 16 * s; e < 16 * (s + 1); e++) {
            const int u = clampi(roundi(x[e] * id), -32, 31) + 32;
            /* e = 128h + 32j + l: low nibble into ql, high 2 bits into qh */
            const int h = e >> 7, j = (e >> 5) & 3, l = e & 31;
            b->ql[64 * h + 32 * (j & 1) + l] |= (uint8_t)((u & 15) << (j >= 2 ? 4 : 0));
            b->qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * j));
        }
    }
}

void lk_quantize_row(lk_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case LK_DTYPE_Q4_0:
        for (int64_t i = 0; i < n / LK_QK4; i++) {
            lk_block_q4_0 *b = (lk_block_q4_0 *)dst + i;
            enc_legacy(src + i * LK_QK4, 4, &b->d, b->qs, NULL);
        }
        break;
    case LK_DTYPE_Q5_0:
        for (int64_t i = 0; i < n / LK_QK4; i++) {
            lk_block_q5_0 *b = (lk_block_q5_0 *)dst + i;
            enc_legacy(src + i * LK_QK4, 5, &b->d, b->qs, b->qh);
        }
        break;
    case LK_DTYPE_Q4_K:
        for (int64_t i = 0; i < n / LK_QK_K; i++) enc_q4_k(src + i * LK_QK_K, (lk_block_q4_k *)dst + i);
        break;
    case LK_DTYPE_Q6_K:
        for (int64_t i = 0; i < n / LK_QK_K; i++) enc_q6_k(src + i * LK_QK_K, (lk_block_q6_k *)dst + i);
        break;
    default: lk_row_from_f32(t, src, dst, n); break;
    }
}
