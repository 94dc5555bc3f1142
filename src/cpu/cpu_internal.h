/*
 * cpu_internal.h - shared between the files of the CPU backend (cpu.c,
 * matmul.c, matmul_x86.c, ops.c); not part of the contract in cpu.h.
 */
#ifndef LK_CPU_INTERNAL_H
#define LK_CPU_INTERNAL_H

#include "cpu/cpu.h"
#include <stdint.h>
#include <string.h>

/* The SIMD kernels need AVX-512 F/BW/VL/VNNI and F16C (Zen 4+, Ice Lake+).
 * Without them, a target with AVX2 + FMA + F16C (Haswell+, Zen 1-3) gets
 * the AVX2 matrix-vector kernels, activation quantizer and integer prompt
 * GEMM (LK_CPU_X86_256: matmul_avx2.c, quant_avx2.c, gemm_q8_avx2.c; its f32
 * GEMM and ops stay portable); anything else takes the portable scalar
 * paths. Exactly one of the two is defined, and only when the compiler
 * targets it (-march=native by default). */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)
#define LK_CPU_X86_512 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LK_CPU_X86_256 1
#endif

/* GEMM blocking of the AVX-512 kernel: W is packed in panels of LK_GEMM_NR
 * output columns x LK_GEMM_KC inputs (32 KiB of f32: stays in L1 while the
 * micro-kernel sweeps all rows of x over it); the micro-kernel computes an
 * LK_GEMM_MR x LK_GEMM_NR tile of y in 2*MR zmm accumulators. KC is a
 * multiple of 32 so q8_0 blocks never straddle a panel. */
#ifndef LK_GEMM_KC
#define LK_GEMM_KC 256
#endif
#if LK_GEMM_KC % 32
#error "LK_GEMM_KC must be a multiple of 32"
#endif
#define LK_GEMM_NR 32
#ifndef LK_GEMM_MR
#define LK_GEMM_MR 8
#endif
/* Up to this many rows of x, lk_cpu_matmul runs the matrix-vector kernels
 * row by row over L1-sized chunks of W instead of the GEMM, whose packing
 * pass over W costs as much as ~20 matrix-vector products (dev/cpu). */
#ifndef LK_MV_MAX_N
#define LK_MV_MAX_N 16
#endif
/* Integer prompt GEMMs (gemm_q8_x86.c, gemm_q8_avx2.c): panels of LK_QG_NR
 * = 16 output columns x LK_QG_KC inputs (a multiple of 256: whole k-quant
 * super-blocks), tiles of at most LK_QG_MR rows of x (each file states its
 * tiles and why). AVX-512: 16 columns = one zmm of int32 lanes, KC 512 (8
 * KiB of codes), 8 rows (2 zmm per row: an int32 and an f32 accumulator);
 * AVX2: 16 columns = two ymm, KC 1024 (16 KiB of codes; on Zen 3 4-8%
 * faster than 512 for q4_0 and q5_0 at n = 512 on the SmolLM2 and Gemma 3
 * FFN shapes: fewer passes over y), up to 5 rows. Per-thread
 * scratch of either: LK_QG_SCRATCH_FLOATS floats (codes and the unpacked
 * columns, (LK_QG_KC, LK_QG_NR) bytes each, plus s and m, (LK_QG_KC/16,
 * LK_QG_NR) f32 each at most). */
#define LK_QG_NR 16
#if defined(LK_CPU_X86_512)
#ifndef LK_QG_KC
#define LK_QG_KC 512
#endif
#ifndef LK_QG_MR
#define LK_QG_MR 8
#endif
#else
#ifndef LK_QG_KC
#define LK_QG_KC 1024
#endif
#define LK_QG_MR 5
#endif
#if LK_QG_KC % 256
#error "LK_QG_KC must be a multiple of 256"
#endif
#define LK_QG_SCRATCH_FLOATS (LK_QG_NR * LK_QG_KC / 2 + LK_QG_NR * LK_QG_KC / 8)
/* Rows of W converted to f32 per tile on the portable (OpenBLAS) GEMM path:
 * as many as fit LK_BLAS_TILE_FLOATS (a multiple of 16, 16..256). Each
 * sgemm call repacks all n rows of x, so short tiles spent a third of the
 * time packing: 32-row tiles ran the fixture's bf16 prefill matmuls at
 * 75-95 GFLOP/s on 2 Zen 3 cores, 256-row tiles at 118-144 (dev/cpu). */
#ifndef LK_BLAS_TILE_FLOATS
#define LK_BLAS_TILE_FLOATS ((size_t)1 << 20)
#endif
static inline int64_t lk_blas_tile_rows(int64_t in) {
    int64_t r = (int64_t)(LK_BLAS_TILE_FLOATS / (size_t)in) & ~(int64_t)15;
    return r < 16 ? 16 : r > 256 ? 256 : r;
}

/* Quantized activations for the integer-dot matrix-vector kernels (q8_0 and
 * every type of core/quant.h with a dot kernel, see lk_mv_has_qdot): one
 * row of x split in blocks of 32, each q = round(x / d) with d = amax/127
 * kept in float32 (ggml keeps it in fp16; f32 is free here and slightly
 * more accurate). x~ = d q is the dequantized activation; the kernels
 * compute W~ . x~ (W~ the dequantized weights) up to f32 rounding. */
typedef struct lk_q8_act {
    int8_t *q;   /* (in) 64-byte aligned */
    float *d;    /* (in/32) block scales */
    int32_t *c;  /* (in/32) -16 * sum(q of block): VNNI offset correction, see matmul_x86.c */
    float *s32;  /* (in/32) d * sum(q of block) = sum of x~ over the block (min/offset terms) */
    float *s16;  /* (in/16) d * sum(q of the 16-group) = sum of x~ over each half block */
} lk_q8_act;

struct lk_cpu {
    lk_pool *pool;
    int nth;
    int max_rows;
    int64_t max_dim;
    lk_cpu_kernels kernels;
    lk_q8_act xq;          /* quantized x, up to max_rows rows (lk_cpu_xq_row) */
    float *wbuf;           /* (max_dim) a norm/bias weight converted to f32 */
    float *freq;           /* (max_dim/2 + 1) RoPE inverse frequencies, for freq_key */
    struct {               /* the hparams freq was computed from (valid = 0: none) */
        int valid, scaling, orig_ctx, rope_dim;
        float theta, factor, low, high;
        const float *factors;
    } freq_key;
    float *thr;            /* (nth, thr_floats) per-thread scratch, 64-byte aligned slices */
    size_t thr_floats;
};

/* Row i of quantized activations stored as consecutive rows of `in` values
 * from base (the layout of lk_cpu.xq, also used by the GEMM and its tests):
 * q rows are 64-byte aligned (the kernels load 64 bytes of q at a time),
 * d/c/s32 rows padded to 16 floats, s16 rows to 16 floats. */
static inline int64_t lk_q8_row_q_bytes(int64_t in) { return (in + 63) & ~(int64_t)63; }
static inline int64_t lk_q8_row_blocks(int64_t in) { return (in / 32 + 15) & ~(int64_t)15; }
static inline int64_t lk_q8_row_groups(int64_t in) { return (2 * (in / 32) + 15) & ~(int64_t)15; }
static inline lk_q8_act lk_q8_act_row(const lk_q8_act *base, int64_t i, int64_t in) {
    const int64_t qs = lk_q8_row_q_bytes(in), nb16 = lk_q8_row_blocks(in), ng16 = lk_q8_row_groups(in);
    lk_q8_act a = {base->q + i * qs, base->d + i * nb16, base->c + i * nb16, base->s32 + i * nb16,
                   base->s16 + i * ng16};
    return a;
}

/* Row i of the quantized x of a matrix with `in` columns (up to max_rows rows). */
static inline lk_q8_act lk_cpu_xq_row(const lk_cpu *c, int i, int64_t in) { return lk_q8_act_row(&c->xq, i, in); }

static inline float *lk_cpu_thr_scratch(lk_cpu *c, int ith) { return c->thr + (size_t)ith * c->thr_floats; }

/* Split [0, n) into nth near-equal ranges aligned to `align`; thread ith gets
 * [*b, *e) (possibly empty). */
static inline void lk_split(int64_t n, int64_t align, int ith, int nth, int64_t *b, int64_t *e) {
    int64_t chunks = (n + align - 1) / align;
    int64_t c0 = chunks * ith / nth, c1 = chunks * (ith + 1) / nth;
    *b = LK_MIN(c0 * align, n);
    *e = LK_MIN(c1 * align, n);
}

/* Quantize x (in) into a (in % 32 == 0): per block of 32, d = amax / 127 and
 * codes round(x / d) (half to even) clamped to [-127, 127] -- never -128, which
 * the AVX2 q8_0 kernels rely on (lk_mv_q8_avx2, lk_gemm_q8_avx2). Scalar and
 * SIMD give identical results. */
void lk_q8_quantize_scalar(const float *x, lk_q8_act *a, int64_t in);

/* Legacy quant types (q4_0, q4_1, q5_0, q5_1; 32 weights a block): byte
 * offsets of qh and qs inside a block (d at 0, m at 2), shared by the SIMD
 * kernels of quant_x86.c and quant_avx2.c. */
typedef struct leg_layout {
    int has_m, five, qh, qs;
    size_t bytes;
} leg_layout;

static inline leg_layout leg_of(lk_dtype t) {
    leg_layout L;
    L.has_m = t == LK_DTYPE_Q4_1 || t == LK_DTYPE_Q5_1;
    L.five = t == LK_DTYPE_Q5_0 || t == LK_DTYPE_Q5_1;
    L.qh = L.has_m ? 4 : 2;
    L.qs = L.qh + (L.five ? 4 : 0);
    L.bytes = (size_t)L.qs + 16;
    return L;
}

/* Does dtype t have integer-dot matrix-vector kernels (x quantized to
 * lk_q8_act first)? q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k. The
 * other types (f32/f16/bf16, q2_k, q3_k) keep f32 activations. */
int lk_mv_has_qdot(lk_dtype t);

/* Does lk_cpu_matmul quantize x for its GEMM path (n > LK_MV_MAX_N) on
 * weights of type t? Yes for the integer GEMMs (AVX-512 or AVX2 builds,
 * AUTO kernels, lk_mv_has_qdot types); the portable GEMM (SCALAR,
 * BLAS_GEMM, builds without either) keeps f32 x. */
static inline int lk_cpu_gemm_qdot(const lk_cpu *c, lk_dtype t) {
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
    return c->kernels == LK_CPU_KERNELS_AUTO && lk_mv_has_qdot(t);
#else
    (void)c;
    (void)t;
    return 0;
#endif
}

/* y[r] = W~[r] . x~ for rows r0..r1 of W (dtype t with lk_mv_has_qdot, rows
 * of lk_dtype_row_bytes(t, in) bytes) and quantized x (in): the portable
 * integer-dot kernels (quant_dot.c), the reference of the SIMD ones. */
void lk_mv_qdot_scalar(lk_dtype t, float *y, const void *w, const lk_q8_act *x, int64_t in,
                       int64_t r0, int64_t r1);

/* Matrix-vector kernels: y[r] = dot(W row r, x) for r in [r0, r1).
 * w: (out, in) rows of row_bytes; x: (in); y: (out). */
void lk_mv_float_scalar(lk_dtype dt, float *y, const void *w, const float *x, int64_t in,
                        int64_t r0, int64_t r1, float *tmp /* (in) */);

#if defined(LK_CPU_X86_512)
void lk_q8_quantize_x86(const float *x, lk_q8_act *a, int64_t in);
void lk_mv_float_x86(lk_dtype dt, float *y, const void *w, const float *x, int64_t in,
                     int64_t r0, int64_t r1);
void lk_mv_q8_x86(float *y, const void *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1);
/* y[r] = W[r] . x for rows r0..r1 of a q4_0 or q4_1 W and f32 x (in). */
void lk_mv_q4_x86(lk_dtype dt, float *y, const void *w, const float *x, int64_t in, int64_t r0, int64_t r1);
/* Same contract as lk_mv_qdot_scalar, AVX-512 VNNI (quant_x86.c). */
void lk_mv_qdot_x86(lk_dtype t, float *y, const void *w, const lk_q8_act *x, int64_t in,
                    int64_t r0, int64_t r1);
/* Dequantize one block of type t (q8_0 or a type of core/quant.h with a dot
 * kernel) into dst (lk_dtype_block_elems(t) floats): bit-identical to
 * lk_row_to_f32 (same operations, no FMA contraction). */
void lk_dequant_block_x86(lk_dtype t, const void *blk, float *dst);
/* GEMM share of thread ith: y (n, out) = x (n, in) . Wᵀ for this thread's
 * panels of LK_GEMM_NR output columns. scratch: 2*LK_GEMM_KC*LK_GEMM_NR floats,
 * 64-byte aligned. */
void lk_gemm_x86(float *y, const float *x, const lk_tensor *w, int n, int ith, int nth,
                 float *scratch);
/* dst (16, ldd) = transpose of src (16 rows of stride lds, 16 columns) of
 * 32-bit elements; src and dst 64-byte aligned. */
void lk_transpose16_x86(const float *src, int64_t lds, float *dst, int64_t ldd);
/* Integer GEMM share of thread ith: y (n, out) = W~ . x~ for this thread's
 * panels of LK_QG_NR output columns; w of a type with lk_mv_has_qdot, x its
 * n rows quantized (lk_q8_act_row layout from x, `in` = w->ne[0]).
 * scratch: LK_QG_SCRATCH_FLOATS floats, 64-byte aligned. */
void lk_gemm_q8_x86(float *y, const lk_q8_act *x, const lk_tensor *w, int n, int ith, int nth,
                    float *scratch);
/* silu(g) * u over n floats, vectorized exp. */
void lk_swiglu_x86(float *g, const float *u, int64_t n);
#endif

#if defined(LK_CPU_X86_256)
/* AVX2 + FMA + F16C kernels (matmul_avx2.c, quant_avx2.c), each with the
 * contract of its portable / AVX-512 counterpart:
 *   lk_q8_quantize_avx2 == lk_q8_quantize_scalar, bit for bit;
 *   lk_mv_float_avx2:   contract of lk_mv_float_x86 (f32/f16/bf16 W, any in);
 *   lk_mv_q8_avx2:      q8_0 rows r0..r1 times quantized x (as lk_mv_qdot_scalar),
 *                       x's codes in [-127, 127];
 *   lk_mv_qdot_avx2:    contract of lk_mv_qdot_scalar, every lk_mv_has_qdot type;
 *   lk_gemm_q8_avx2:    contract of lk_gemm_q8_x86 (gemm_q8_avx2.c), its x's
 *                       codes in [-127, 127] (what the quantizers write). */
void lk_q8_quantize_avx2(const float *x, lk_q8_act *a, int64_t in);
void lk_mv_float_avx2(lk_dtype dt, float *y, const void *w, const float *x, int64_t in,
                      int64_t r0, int64_t r1);
void lk_mv_q8_avx2(float *y, const void *w, const lk_q8_act *x, int64_t in, int64_t r0, int64_t r1);
void lk_mv_qdot_avx2(lk_dtype t, float *y, const void *w, const lk_q8_act *x, int64_t in,
                     int64_t r0, int64_t r1);
void lk_gemm_q8_avx2(float *y, const lk_q8_act *x, const lk_tensor *w, int n, int ith, int nth,
                     float *scratch);
#endif

/* Unaligned little-endian loads of quant block fields (fp16 scales, packed
 * high bits), by memcpy so no alignment is assumed. */
static inline uint16_t lk_ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t lk_ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#endif /* LK_CPU_INTERNAL_H */
