/*
 * quant_dot.c - portable integer-dot matrix-vector kernels: a row of a
 * quantized W (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k; layouts in
 * core/quant.h) times activations quantized to 8-bit blocks of 32
 * (lk_q8_act). The reference for the AVX-512 kernels of quant_x86.c, and
 * what a build without AVX-512 runs.
 *
 * Every kernel computes W~ . x~ (W~ the dequantized row, x~_j = d_b q_j the
 * dequantized activations) as integer dot products over the weights' small
 * integers and the activations' int8 values, combined in float32 with the
 * scales. The forms (b a block of 32 of x, s a weight sub-block, u the
 * stored unsigned weight code, Q = q of x, S_g = sum of x~ over group g):
 *   q8_0: sum_b d_w d_b sum(w Q)
 *   q4_0: sum_b d_w d_b sum((u - 8) Q)          (q5_0: u - 16)
 *   q4_1: sum_b d_w d_b sum(u Q) + m S_b        (q5_1 the same)
 *   q4_k: sum_s (d sc_s) d_b sum(u Q) - (dmin m_s) S_b   (sub-blocks of 32 = b;
 *         q5_k the same with 5-bit u)
 *   q6_k: sum_s (d sc_s) d_b sum(u Q) - 32 (d sc_s) S_s  (sub-blocks of 16:
 *         two per b, S_s over the 16-group)
 * The integer sums are exact; the float part differs from the SIMD kernels
 * only in summation order. The q6_k/k-quant offsets taken in float cost at
 * most a few ulps of the offset term (tests/test_quant_dot.c bounds it).
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#include <string.h>

int lk_mv_has_qdot(lk_dtype t) {
    switch (t) {
    case LK_DTYPE_Q8_0: case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0:
    case LK_DTYPE_Q5_1: case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: case LK_DTYPE_Q6_K: return 1;
    default: return 0;
    }
}

/* sum_{e<32} u_e Q_e of a legacy block: u_e = low/high nibble of qs
 * (e < 16: low nibble of qs[e]) plus 16 * bit e of qh (qh NULL: 4-bit). */
static int32_t dot_legacy(const uint8_t *qs, const uint8_t *qh, const int8_t *Q) {
    uint32_t h = 0;
    if (qh) memcpy(&h, qh, 4);
    int32_t s = 0;
    for (int e = 0; e < 16; e++) {
        int u0 = (qs[e] & 15) | ((h >> e) & 1) << 4, u1 = (qs[e] >> 4) | ((h >> (e + 16)) & 1) << 4;
        s += u0 * Q[e] + u1 * Q[e + 16];
    }
    return s;
}

static int32_t sum_q32(const int8_t *Q) {
    int32_t s = 0;
    for (int e = 0; e < 32; e++) s += Q[e];
    return s;
}

static float row_legacy(lk_dtype t, const uint8_t *row, const lk_q8_act *x, int64_t nb) {
    const int has_m = t == LK_DTYPE_Q4_1 || t == LK_DTYPE_Q5_1;
    const int five = t == LK_DTYPE_Q5_0 || t == LK_DTYPE_Q5_1;
    const size_t bs = lk_dtype_block_bytes(t);
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *blk = row + (size_t)ib * bs;
        uint16_t dh, mh = 0;
        memcpy(&dh, blk, 2);
        if (has_m) memcpy(&mh, blk + 2, 2);
        const uint8_t *qh = five ? blk + (has_m ? 4 : 2) : NULL;
        const uint8_t *qs = blk + (has_m ? 4 : 2) + (five ? 4 : 0);
        const int8_t *Q = x->q + 32 * ib;
        int32_t s = dot_legacy(qs, qh, Q);
        if (!has_m) s -= (five ? 16 : 8) * sum_q32(Q);
        acc += (float)s * (lk_f16_to_f32(dh) * x->d[ib]);
        if (has_m) acc += lk_f16_to_f32(mh) * x->s32[ib];
    }
    return acc;
}

static float row_q8_0(const lk_block_q8_0 *b, const lk_q8_act *x, int64_t nb) {
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += (int32_t)b[ib].qs[j] * (int32_t)x->q[32 * ib + j];
        acc += (float)s * (lk_f16_to_f32(b[ib].d) * x->d[ib]);
    }
    return acc;
}

/* q4_k (qh NULL) or q5_k super-blocks; qs/qh/scales/d/dmin of each block. */
static float row_q45_k(lk_dtype t, const uint8_t *row, const lk_q8_act *x, int64_t nsb) {
    const size_t bs = lk_dtype_block_bytes(t);
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nsb; ib++) {
        const uint8_t *blk = row + (size_t)ib * bs;
        const uint8_t *qh = NULL, *qs;
        uint16_t dh, dmh;
        const uint8_t *scales;
        if (t == LK_DTYPE_Q4_K) {
            const lk_block_q4_k *b = (const lk_block_q4_k *)blk;
            dh = b->d, dmh = b->dmin, scales = b->scales, qs = b->qs;
        } else {
            const lk_block_q5_k *b = (const lk_block_q5_k *)blk;
            dh = b->d, dmh = b->dmin, scales = b->scales, qs = b->qs, qh = b->qh;
        }
        const float d = lk_f16_to_f32(dh), dmin = lk_f16_to_f32(dmh);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            lk_quant_k_scale_min(scales, s, &sc, &m);
            const int8_t *Q = x->q + 256 * ib + 32 * s;
            /* element e = 32 s + l: nibble (s & 1) of qs[32 (s / 2) + l], bit s of qh[l] */
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
                int u = (qs[32 * (s >> 1) + l] >> (4 * (s & 1))) & 15;
                if (qh) u |= ((qh[l] >> s) & 1) << 4;
                dot += u * Q[l];
            }
            const int64_t b32 = 8 * ib + s;
            acc += (d * (float)sc) * x->d[b32] * (float)dot - (dmin * (float)m) * x->s32[b32];
        }
    }
    return acc;
}

static float row_q6_k(const lk_block_q6_k *b, const lk_q8_act *x, int64_t nsb) {
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nsb; ib++) {
        const float d = lk_f16_to_f32(b[ib].d);
        for (int s = 0; s < 16; s++) {
            int32_t dot = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) {
                const int h = e >> 7, j = (e >> 5) & 3, l = e & 31;
                const uint8_t lo = b[ib].ql[64 * h + 32 * (j & 1) + l];
                const int u = (j >= 2 ? lo >> 4 : lo & 15) | ((b[ib].qh[32 * h + l] >> (2 * j)) & 3) << 4;
                dot += u * x->q[256 * ib + e];
            }
            const float ds = d * (float)b[ib].scales[s];
            acc += ds * x->d[8 * ib + s / 2] * (float)dot - 32.0f * ds * x->s16[16 * ib + s];
        }
    }
    return acc;
}

void lk_mv_qdot_scalar(lk_dtype t, float *y, const void *w, const lk_q8_act *x, int64_t in,
                       int64_t r0, int64_t r1) {
    const size_t rb = lk_dtype_row_bytes(t, in);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
        switch (t) {
        case LK_DTYPE_Q8_0: y[r] = row_q8_0((const lk_block_q8_0 *)row, x, in / 32); break;
        case LK_DTYPE_Q4_0: case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_0: case LK_DTYPE_Q5_1:
            y[r] = row_legacy(t, row, x, in / 32);
            break;
        case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: y[r] = row_q45_k(t, row, x, in / 256); break;
        case LK_DTYPE_Q6_K: y[r] = row_q6_k((const lk_block_q6_k *)row, x, in / 256); break;
        default: break;
        }
    }
}
