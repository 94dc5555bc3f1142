/*
 * matmul_x86.c - AVX-512 kernels of the CPU backend (compiled only when the
 * target has AVX-512 F/BW/VL/VNNI + F16C; matmul.c holds the portable
 * fallbacks and the dispatch). Measured choices are in dev/cpu/README.md.
 *
 * Matrix-vector (decode, n == 1): each kernel reads W in its file dtype and
 * computes 4 rows at a time, so one load of x feeds 4 independent FMA
 * chains (hides FMA latency, halves x traffic).
 *   f32:  plain FMA;
 *   f16:  vcvtph2ps (exact widening) then FMA;
 *   bf16: zero-extend + shift left 16 (exact widening) then FMA - exact
 *         products with the f32 x, at the same speed as vdpbf16ps on a
 *         bf16-rounded x once memory-bound, without x's rounding error;
 *   q8_0: x is quantized once per call to int8 blocks (lk_q8_act) and each
 *         block dot is an int8 dot on vpdpbusd, two blocks per zmm, with a
 *         software prefetch (see lk_mv_q8_x86);
 *   q4_0 .. q6_k: integer dot products on quantized x, in quant_x86.c
 *         (lk_mv_q4_x86 here, nibbles widened to f32 against f32 x, is
 *         kept only as the measured alternative: 4-6x slower, built with
 *         -DLK_MV_Q4_F32, see dev/cpu/README.md).
 * GEMM (prefill, n > 1): W is converted (dequantized for f16/bf16/q8_0, and
 * the types of core/quant.h via lk_dequant_block_x86) into
 * packed panels of 32 output columns x KC inputs; an 8x32 register-tiled
 * micro-kernel (16 zmm accumulators) sweeps all rows of x over each panel.
 * Dequantizing costs one pass over W per call, i.e. 1/n of the FMAs.
 */
#include "cpu/cpu_internal.h"

#include "core/quant.h"

#if defined(LK_CPU_X86_512)

#include <immintrin.h>
#include <string.h>

#include "cpu/simd512.h"

#define LK_AI static inline __attribute__((always_inline))

/* Software prefetch distance (bytes ahead in each W row) of the q8_0
 * matrix-vector kernel; 0 disables. Its int8 work per byte is high enough
 * that the out-of-order window covers too little of a DRAM-resident row:
 * 512 B ahead took 7B-shape decode from ~30 to ~36 GB/s (dev/cpu). */
#ifndef LK_MV_PF
#define LK_MV_PF 512
#endif
/* Same for the f32/f16/bf16 kernels (0 = off). */
#ifndef LK_MVF_PF
#define LK_MVF_PF 0
#endif
#ifndef LK_MV_PF_HINT
#define LK_MV_PF_HINT _MM_HINT_T0
#endif

/* ------------------------------------------------------------ helpers */

LK_AI float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 consecutive elements k.. of a row of dtype dt (f32/f16/bf16) as f32;
 * lanes outside mask read as 0 (and touch no memory). */
LK_AI __m512 load16(lk_dtype dt, const void *row, int64_t k, __mmask16 m) {
    if (dt == LK_DTYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (dt == LK_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16 */
}
LK_AI __m512 load16_full(lk_dtype dt, const void *row, int64_t k) {
    if (dt == LK_DTYPE_F32) return _mm512_loadu_ps((const float *)row + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + k));
    if (dt == LK_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* ------------------------------------------------ q8_0 activations */

/* Same arithmetic as lk_q8_quantize_scalar: d = amax/127 (f32), q =
 * round-half-even(x * (1/d)) (vcvtps2dq under the default MXCSR). */
void lk_q8_quantize_x86(const float *x, lk_q8_act *a, int64_t in) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t b = 0; b < in / 32; b++) {
        __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        __m512 am = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        float amax = _mm512_reduce_max_ps(am);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        /* clamped to [-127, 127] like the scalar quantizer (never -128) */
        const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
        __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
        __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
        i0 = _mm512_min_epi32(_mm512_max_epi32(i0, lo), hi);
        i1 = _mm512_min_epi32(_mm512_max_epi32(i1, lo), hi);
        _mm_store_si128((__m128i *)(a->q + 32 * b), _mm512_cvtsepi32_epi8(i0));
        _mm_store_si128((__m128i *)(a->q + 32 * b + 16), _mm512_cvtsepi32_epi8(i1));
        const int32_t s0 = _mm512_reduce_add_epi32(i0), s1 = _mm512_reduce_add_epi32(i1);
        a->d[b] = d;
        a->c[b] = -16 * (s0 + s1);
        a->s32[b] = d * (float)(s0 + s1);
        a->s16[2 * b] = d * (float)s0;
        a->s16[2 * b + 1] = d * (float)s1;
    }
}

/* ------------------------------------------------ matrix-vector */

LK_AI void mv_float(lk_dtype dt, float *y, const void *w, const float *x, int64_t in,
                    int64_t r0, int64_t r1) {
    const size_t rb = lk_dtype_row_bytes(dt, in);
    const int64_t inv = in & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (in & 15)) - 1);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const char *w0 = (const char *)w + (size_t)r * rb;
        const char *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < inv; k += 16) {
#if LK_MVF_PF > 0
            const size_t pb = (size_t)k * (dt == LK_DTYPE_F32 ? 4 : 2) + LK_MVF_PF;
            _mm_prefetch(w0 + pb, _MM_HINT_T0);
            _mm_prefetch(w1 + pb, _MM_HINT_T0);
            _mm_prefetch(w2 + pb, _MM_HINT_T0);
            _mm_prefetch(w3 + pb, _MM_HINT_T0);
#endif
            __m512 xv = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(load16_full(dt, w0, k), xv, a0);
            a1 = _mm512_fmadd_ps(load16_full(dt, w1, k), xv, a1);
            a2 = _mm512_fmadd_ps(load16_full(dt, w2, k), xv, a2);
            a3 = _mm512_fmadd_ps(load16_full(dt, w3, k), xv, a3);
        }
        if (tail) {
            __m512 xv = _mm512_maskz_loadu_ps(tail, x + inv);
            a0 = _mm512_fmadd_ps(load16(dt, w0, inv, tail), xv, a0);
            a1 = _mm512_fmadd_ps(load16(dt, w1, inv, tail), xv, a1);
            a2 = _mm512_fmadd_ps(load16(dt, w2, inv, tail), xv, a2);
            a3 = _mm512_fmadd_ps(load16(dt, w3, inv, tail), xv, a3);
        }
        y[r] = _mm512_reduce_add_ps(a0);
        y[r + 1] = _mm512_reduce_add_ps(a1);
        y[r + 2] = _mm512_reduce_add_ps(a2);
        y[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < r1; r++) {
        const char *w0 = (const char *)w + (size_t)r * rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t k = 0;
        for (; k + 32 <= inv; k += 32) {
            a0 = _mm512_fmadd_ps(load16_full(dt, w0, k), _mm512_loadu_ps(x + k), a0);
            a1 = _mm512_fmadd_ps(load16_full(dt, w0, k + 16), _mm512_loadu_ps(x + k + 16), a1);
        }
        for (; k < inv; k += 16)
            a0 = _mm512_fmadd_ps(load16_full(dt, w0, k), _mm512_loadu_ps(x + k), a0);
        if (tail)
            a1 = _mm512_fmadd_ps(load16(dt, w0, inv, tail), _mm512_maskz_loadu_ps(tail, x + inv), a1);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

void lk_mv_float_x86(lk_dtype dt, float *y, const void *w, const float *x, int64_t in,
                     int64_t r0, int64_t r1) {
    switch (dt) {
    case LK_DTYPE_F32: mv_float(LK_DTYPE_F32, y, w, x, in, r0, r1); break;
    case LK_DTYPE_F16: mv_float(LK_DTYPE_F16, y, w, x, in, r0, r1); break;
    case LK_DTYPE_BF16: mv_float(LK_DTYPE_BF16, y, w, x, in, r0, r1); break;
    default: break;
    }
}

/* q4_0 / q4_1 row · f32 x, one block of 32 weights at a time: the 16 bytes of
 * nibbles widen to two vectors of 16 floats (low nibbles are elements 0..15,
 * high nibbles 16..31, the GGUF order), so x stays f32 and the products are
 * those of the dequantized weights:
 *   q4_0: sum d (q - 8) x  = d * sum (q - 8) x
 *   q4_1: sum (d q + m) x  = d * sum q x + m * sum x
 * (the portable path dequantizes a whole row first; this one never leaves
 * registers). */
void lk_mv_q4_x86(lk_dtype dt, float *y, const void *w, const float *x, int64_t in, int64_t r0, int64_t r1) {
    const int64_t nb = in / 32;
    const __m128i lo4 = _mm_set1_epi8(0x0f);
    const __m512 eight = _mm512_set1_ps(8.0f);
    const int q41 = dt == LK_DTYPE_Q4_1;
    const size_t bs = q41 ? sizeof(lk_block_q4_1) : sizeof(lk_block_q4_0);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * nb * bs; /* (nb) blocks */
        __m512 acc = _mm512_setzero_ps(), accm = _mm512_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++) {
            const uint8_t *blk = row + (size_t)ib * bs;
            uint16_t dh, mh = 0;
            memcpy(&dh, blk, 2);
            if (q41) memcpy(&mh, blk + 2, 2);
            const __m128i qs = _mm_loadu_si128((const __m128i *)(blk + (q41 ? 4 : 2)));
            __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(qs, lo4)));
            __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qs, 4), lo4)));
            const __m512 x0 = _mm512_loadu_ps(x + 32 * ib), x1 = _mm512_loadu_ps(x + 32 * ib + 16);
            if (!q41) f0 = _mm512_sub_ps(f0, eight), f1 = _mm512_sub_ps(f1, eight);
            const __m512 t = _mm512_fmadd_ps(f1, x1, _mm512_mul_ps(f0, x0));
            acc = _mm512_fmadd_ps(_mm512_set1_ps(lk_f16_to_f32(dh)), t, acc);
            if (q41) accm = _mm512_fmadd_ps(_mm512_set1_ps(lk_f16_to_f32(mh)), _mm512_add_ps(x0, x1), accm);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc, accm));
    }
}

/* q8_0 row · quantized x. vpdpbusd multiplies unsigned bytes by signed
 * bytes, but both operands are signed here. Instead of llama.cpp's sign
 * transfer (|w| times sign(w)*x: two extra ops per block) we offset W:
 * w ^ 0x80 = w + 128 read as unsigned, so
 *     sum (w+128)*x = sum w*x + 128*sum x.
 * The correction -128*sum(x) of each x block is precomputed at quantization
 * and spread over the 8 dword lanes (-16*sum each, lk_q8_act.c) as the
 * accumulator's initial value, so the 8 lanes of vpdpbusd sum to exactly
 * sum w*x. Lanes stay far below 2^24, so the int->float conversion is exact;
 * the float FMA then applies d_w * d_x per block. */
void lk_mv_q8_x86(float *y, const void *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1) {
    const int64_t nb = in / 32;
    const __m256i off = _mm256_set1_epi8((char)0x80);
    const __m512i off2 = _mm512_set1_epi8((char)0x80);
    /* lanes 0-7 take block ib's scale, lanes 8-15 block ib+1's */
    const __m512i pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const lk_block_q8_0 *wb = w;
    int64_t r = r0;
    /* Two blocks per zmm: the qs of blocks ib and ib+1 (not contiguous:
     * 34-byte blocks) in the low/high halves, against 64 contiguous x
     * bytes; both fp16 scales converted at once and spread to their 8
     * lanes with one permute. */
#define LK_Q8_ROW2(i)                                                                          \
    do {                                                                                       \
        __m512i wv = _mm512_inserti64x4(                                                       \
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b##i[ib].qs)),          \
            _mm256_loadu_si256((const __m256i *)b##i[ib + 1].qs), 1);                          \
        __m512i s = _mm512_dpbusd_epi32(init, _mm512_xor_si512(wv, off2), xv);                 \
        uint32_t dd = (uint32_t)b##i[ib].d | (uint32_t)b##i[ib + 1].d << 16;                   \
        __m512 dw = _mm512_permutexvar_ps(                                                     \
            pair_idx, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd))));       \
        a##i = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, xd), a##i);           \
    } while (0)
#define LK_Q8_ROW(i)                                                                          \
    do {                                                                                      \
        __m256i wv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)b##i[ib].qs), off); \
        __m256i s = _mm256_dpbusd_epi32(init, wv, xv);                                        \
        __m256 sc = _mm256_set1_ps(_cvtsh_ss(b##i[ib].d) * xd);                              \
        t##i = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, t##i);                             \
    } while (0)
#define LK_Q8_PAIR_X()                                                                         \
    const __m512i xv = _mm512_load_si512((const void *)(x->q + 32 * ib));                      \
    const __m512i init = _mm512_inserti64x4(_mm512_set1_epi32(x->c[ib]),                       \
                                            _mm256_set1_epi32(x->c[ib + 1]), 1);               \
    const __m512 xd = _mm512_castpd_ps(_mm512_insertf64x4(                                     \
        _mm512_castps_pd(_mm512_set1_ps(x->d[ib])),                                            \
        _mm256_castps_pd(_mm256_set1_ps(x->d[ib + 1])), 1))
#define LK_Q8_ONE_X()                                                                          \
    const __m256i xv = _mm256_load_si256((const __m256i *)(x->q + 32 * ib));                   \
    const __m256i init = _mm256_set1_epi32(x->c[ib]);                                          \
    const float xd = x->d[ib]
    for (; r + 4 <= r1; r += 4) {
        const lk_block_q8_0 *b0 = wb + r * nb, *b1 = b0 + nb, *b2 = b1 + nb, *b3 = b2 + nb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
        int64_t ib = 0;
        for (; ib + 2 <= nb; ib += 2) {
#if LK_MV_PF > 0
            _mm_prefetch((const char *)(b0 + ib) + LK_MV_PF, LK_MV_PF_HINT);
            _mm_prefetch((const char *)(b1 + ib) + LK_MV_PF, LK_MV_PF_HINT);
            _mm_prefetch((const char *)(b2 + ib) + LK_MV_PF, LK_MV_PF_HINT);
            _mm_prefetch((const char *)(b3 + ib) + LK_MV_PF, LK_MV_PF_HINT);
#endif
            LK_Q8_PAIR_X();
            LK_Q8_ROW2(0);
            LK_Q8_ROW2(1);
            LK_Q8_ROW2(2);
            LK_Q8_ROW2(3);
        }
        if (ib < nb) {
            LK_Q8_ONE_X();
            LK_Q8_ROW(0);
            LK_Q8_ROW(1);
            LK_Q8_ROW(2);
            LK_Q8_ROW(3);
        }
        y[r] = _mm512_reduce_add_ps(a0) + hsum256(t0);
        y[r + 1] = _mm512_reduce_add_ps(a1) + hsum256(t1);
        y[r + 2] = _mm512_reduce_add_ps(a2) + hsum256(t2);
        y[r + 3] = _mm512_reduce_add_ps(a3) + hsum256(t3);
    }
    for (; r < r1; r++) {
        const lk_block_q8_0 *b0 = wb + r * nb;
        __m512 a0 = _mm512_setzero_ps();
        __m256 t0 = _mm256_setzero_ps();
        int64_t ib = 0;
        for (; ib + 2 <= nb; ib += 2) {
            LK_Q8_PAIR_X();
            LK_Q8_ROW2(0);
        }
        if (ib < nb) {
            LK_Q8_ONE_X();
            LK_Q8_ROW(0);
        }
        y[r] = _mm512_reduce_add_ps(a0) + hsum256(t0);
    }
#undef LK_Q8_ROW
#undef LK_Q8_ROW2
#undef LK_Q8_PAIR_X
#undef LK_Q8_ONE_X
}

/* ------------------------------------------------------------ GEMM */

/* dst (16, ldd) = transpose of src (16 rows of stride lds, 16 columns):
 * the standard 4-stage unpack/shuffle network (64 shuffles per 256 floats,
 * vs one scalar store per element). */
LK_AI void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_load_ps(src + i * lds);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        _mm512_store_ps(dst + j * ldd, _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88));
        _mm512_store_ps(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd));
    }
}

void lk_transpose16_x86(const float *src, int64_t lds, float *dst, int64_t ldd) {
    transpose16(src, lds, dst, ldd);
}

/* Pack columns [j0, j0+nj) x inputs [k0, k0+kc) of W as f32 into
 * pack (KC, NR): pack[k*NR + j] = W[j0+j][k0+k]; columns nj..NR-1 are 0 so
 * the micro-kernel never needs a column tail. Rows are first converted
 * (dequantized) into tmp (NR, KC), zero-padded to a multiple of 16 inputs,
 * then transposed 16x16 at a time. */
static void pack_panel(const lk_tensor *w, int64_t j0, int nj, int64_t k0, int64_t kc,
                       float *pack, float *tmp) {
    const lk_dtype dt = w->dtype;
    const int64_t in = w->ne[0], kc16 = (kc + 15) & ~(int64_t)15;
    const size_t rb = lk_dtype_row_bytes(dt, in);
    for (int j = 0; j < nj; j++) {
        const char *row = (const char *)w->data + (size_t)(j0 + j) * rb;
        float *t = tmp + (size_t)j * LK_GEMM_KC; /* (kc16) */
        if (dt == LK_DTYPE_Q8_0) {
            const lk_block_q8_0 *b = (const lk_block_q8_0 *)row + k0 / 32;
            for (int64_t ib = 0; ib < kc / 32; ib++) {
                __m512 d = _mm512_set1_ps(_cvtsh_ss(b[ib].d));
                __m128i q0 = _mm_loadu_si128((const __m128i *)b[ib].qs);
                __m128i q1 = _mm_loadu_si128((const __m128i *)(b[ib].qs + 16));
                _mm512_store_ps(t + 32 * ib, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0))));
                _mm512_store_ps(t + 32 * ib + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1))));
            }
        } else if (lk_mv_has_qdot(dt) && k0 % lk_dtype_block_elems(dt) == 0 &&
                   kc % lk_dtype_block_elems(dt) == 0) {
            /* whole blocks: SIMD dequantization straight into the row */
            const int be = lk_dtype_block_elems(dt);
            const size_t bb = lk_dtype_block_bytes(dt);
            for (int64_t k = 0; k < kc; k += be)
                lk_dequant_block_x86(dt, row + (size_t)((k0 + k) / be) * bb, t + k);
            for (int64_t k = kc; k < kc16; k++) t[k] = 0.0f;
        } else if (lk_quant_is_kind(dt)) {
            /* Q4_0 .. Q6_K: dequantize the blocks that overlap [k0, k0 + kc)
             * one at a time (k0 need not be block-aligned when KC < 256) */
            const int be = lk_dtype_block_elems(dt);
            const size_t bb = lk_dtype_block_bytes(dt);
            float blk[LK_QK_K]; /* (be) one dequantized block */
            for (int64_t k = k0; k < k0 + kc;) {
                const int64_t ib = k / be, off = k - ib * be, nk = LK_MIN(be - off, k0 + kc - k);
                lk_quant_row_to_f32(dt, row + (size_t)ib * bb, blk, be);
                memcpy(t + (k - k0), blk + off, sizeof(float) * (size_t)nk);
                k += nk;
            }
            for (int64_t k = kc; k < kc16; k++) t[k] = 0.0f;
        } else {
            int64_t k = 0;
            for (; k + 16 <= kc; k += 16) _mm512_store_ps(t + k, load16_full(dt, row, k0 + k));
            if (k < kc) _mm512_store_ps(t + k, load16(dt, row, k0 + k, (__mmask16)((1u << (kc - k)) - 1)));
        }
    }
    for (int j = nj; j < LK_GEMM_NR; j++) memset(tmp + (size_t)j * LK_GEMM_KC, 0, sizeof(float) * kc16);
    for (int64_t k = 0; k < kc16; k += 16) {
        transpose16(tmp + k, LK_GEMM_KC, pack + k * LK_GEMM_NR, LK_GEMM_NR);
        transpose16(tmp + 16 * LK_GEMM_KC + k, LK_GEMM_KC, pack + k * LK_GEMM_NR + 16, LK_GEMM_NR);
    }
}

/* y (mr, NR) (+)= x (mr, kc; row stride ldx) . pack (kc, NR); only columns
 * in masks m0 (0..15) / m1 (16..31) are stored. mr is a compile-time
 * constant in each inlined copy, so the accumulators live in registers. */
LK_AI void ukernel(int mr, int64_t kc, const float *x, int64_t ldx, const float *pack, float *y,
                   int64_t ldy, __mmask16 m0, __mmask16 m1, int accumulate) {
    __m512 c0[LK_GEMM_MR], c1[LK_GEMM_MR];
#pragma GCC unroll 16
    for (int i = 0; i < LK_GEMM_MR; i++) {
        if (i < mr) c0[i] = c1[i] = _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(pack + k * LK_GEMM_NR);
        const __m512 b1 = _mm512_load_ps(pack + k * LK_GEMM_NR + 16);
#pragma GCC unroll 16
        for (int i = 0; i < LK_GEMM_MR; i++) {
            if (i < mr) {
                const __m512 a = _mm512_set1_ps(x[i * ldx + k]);
                c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < LK_GEMM_MR; i++) {
        if (i < mr) {
            float *yi = y + i * ldy;
            if (accumulate) {
                c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, yi));
                c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, yi + 16));
            }
            _mm512_mask_storeu_ps(yi, m0, c0[i]);
            _mm512_mask_storeu_ps(yi + 16, m1, c1[i]);
        }
    }
}

static void ukernel_any(int mr, int64_t kc, const float *x, int64_t ldx, const float *pack,
                        float *y, int64_t ldy, __mmask16 m0, __mmask16 m1, int acc) {
    switch (mr) {
#define LK_UK(M) case M: ukernel(M, kc, x, ldx, pack, y, ldy, m0, m1, acc); break;
    LK_UK(1) LK_UK(2) LK_UK(3) LK_UK(4) LK_UK(5) LK_UK(6) LK_UK(7) LK_UK(8)
#if LK_GEMM_MR > 8
    LK_UK(9) LK_UK(10) LK_UK(11) LK_UK(12)
#endif
#if LK_GEMM_MR > 12
    LK_UK(13) LK_UK(14)
#endif
#undef LK_UK
    default: break;
    }
}

void lk_gemm_x86(float *y, const float *x, const lk_tensor *w, int n, int ith, int nth,
                 float *scratch) {
    const int64_t in = w->ne[0], out = w->ne[1];
    const int64_t npanel = (out + LK_GEMM_NR - 1) / LK_GEMM_NR;
    int64_t p0, p1;
    lk_split(npanel, 1, ith, nth, &p0, &p1);
    float *pack = scratch;                          /* (KC, NR), 64-byte aligned */
    float *tmp = scratch + LK_GEMM_KC * LK_GEMM_NR; /* (NR, KC) converted rows */
    for (int64_t p = p0; p < p1; p++) {
        const int64_t j0 = p * LK_GEMM_NR;
        const int nj = (int)LK_MIN((int64_t)LK_GEMM_NR, out - j0);
        const __mmask16 m0 = (__mmask16)(nj >= 16 ? 0xFFFF : (1u << nj) - 1);
        const __mmask16 m1 = (__mmask16)(nj >= 32 ? 0xFFFF : nj > 16 ? (1u << (nj - 16)) - 1 : 0);
        for (int64_t k0 = 0; k0 < in; k0 += LK_GEMM_KC) {
            const int64_t kc = LK_MIN((int64_t)LK_GEMM_KC, in - k0);
            pack_panel(w, j0, nj, k0, kc, pack, tmp);
            int i = 0;
            for (; i + LK_GEMM_MR <= n; i += LK_GEMM_MR)
                ukernel(LK_GEMM_MR, kc, x + (size_t)i * in + k0, in, pack, y + (size_t)i * out + j0,
                        out, m0, m1, k0 > 0);
            if (i < n)
                ukernel_any(n - i, kc, x + (size_t)i * in + k0, in, pack, y + (size_t)i * out + j0,
                            out, m0, m1, k0 > 0);
        }
    }
}

/* ------------------------------------------------------------ swiglu */

/* exp(x) for x in [-104, 89] (clamped outside): 2^n * p(r), r = x - n ln2 in
 * [-ln2/2, ln2/2], p the degree-7 Taylor polynomial (truncation < 6e-9
 * relative); max error ~2 ulp. scalef does the 2^n without overflow checks. */
LK_AI __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n;
    const __m512 p = lk_exp512_poly(x, &n);
    return _mm512_scalef_ps(p, n);
}

void lk_swiglu_x86(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(s, uv));
    }
}

#endif /* LK_CPU_X86_512 */
