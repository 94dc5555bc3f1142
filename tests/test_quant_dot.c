/*
 * test_quant_dot.c - the quantized matrix-vector kernels on random blocks:
 * every type with an integer-dot kernel (q8_0, q4_0, q4_1, q5_0, q5_1,
 * q4_k, q5_k, q6_k), the portable kernel (quant_dot.c) and, when built,
 * the AVX-512 one (quant_x86.c) or the AVX2 one (quant_avx2.c, q8_0 in
 * matmul_avx2.c), against a double-precision reference.
 * Also the integer prompt GEMM (gemm_q8_x86.c, or gemm_q8_avx2.c in AVX2
 * builds) and the weight unpacking both share (gemm_q8_pack.h, both q8_0
 * forms), the activation quantization (SIMD == scalar, bit for bit, codes
 * in [-127, 127]) and the
 * SIMD block dequantization used by the GEMM (== lk_row_to_f32, bit for bit).
 *
 * Blocks are random bytes (every code, every scale/min bit pattern, negative
 * q6_k scales) with random finite fp16 scales of either sign, so the layouts
 * are exercised beyond what a quantizer writes.
 *
 * Reference: both kernels compute W~ . x~ with W~ = lk_row_to_f32(W) (checked
 * against gguf-py by test_quant) and x~_j = d_b q_j the dequantized
 * activations; the reference is that sum in double. Tolerance per output:
 * the kernels split each weight as w = a_j u_j - o_j (scale times integer
 * code, minus an offset: q4_0 o = 8 d, q5_0 16 d, q4_1/q5_1 -m, q4_k/q5_k
 * dmin m_s, q6_k 32 d sc_s), sum the integer part exactly and round in f32
 * the per-block products a d_b sum(u Q) and o S (at most 3 roundings each)
 * and their sum (at most in/16 + 16 sequential adds per lane plus the
 * reduction). With M = sum_j (|a_j u_j| + |o_j|) |x~_j| <= sum_j (|w~_j| +
 * 2|o_j|) |x~_j|, every error is below (in/16 + 20) 2^-24 M, i.e. < 1e-5 M
 * for in <= 2304 (the largest row here): tolerance 1e-5 M (the offset term, not |w~ x~|, sets the
 * scale because a_j u_j and o_j may nearly cancel in random blocks).
 */
#include "core/quant.h"
#include "cpu/cpu_internal.h"
#include "test.h"
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
#include "cpu/gemm_q8_pack.h"
#endif

static const lk_dtype k_types[] = {LK_DTYPE_Q8_0, LK_DTYPE_Q4_0, LK_DTYPE_Q4_1, LK_DTYPE_Q5_0,
                                   LK_DTYPE_Q5_1, LK_DTYPE_Q4_K, LK_DTYPE_Q5_K, LK_DTYPE_Q6_K};

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float urand(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((rnd(s) >> 40) * (1.0 / (1 << 24)));
}

/* Byte offsets of the fp16 fields of a block of type t (-1: none). */
static void f16_fields(lk_dtype t, int off[2]) {
    off[0] = off[1] = -1;
    switch (t) {
    case LK_DTYPE_Q8_0: case LK_DTYPE_Q4_0: case LK_DTYPE_Q5_0: off[0] = 0; break;
    case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_1: case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K:
        off[0] = 0, off[1] = 2;
        break;
    case LK_DTYPE_Q6_K: off[0] = 208; break;
    default: break;
    }
}

/* Random blocks for n weights of type t: random bytes, fp16 fields set to
 * finite values in (-0.05, 0.05). */
static void random_blocks(lk_dtype t, uint8_t *dst, int64_t n, uint64_t *s) {
    const size_t bb = lk_dtype_block_bytes(t), nb = (size_t)(n / lk_dtype_block_elems(t));
    int off[2];
    f16_fields(t, off);
    for (size_t i = 0; i < nb * bb; i++) dst[i] = (uint8_t)rnd(s);
    for (size_t b = 0; b < nb; b++)
        for (int f = 0; f < 2; f++) {
            if (off[f] < 0) continue;
            uint16_t h = lk_f32_to_f16(urand(s, -0.05f, 0.05f));
            memcpy(dst + b * bb + off[f], &h, 2);
        }
}

/* |o_j| of each weight of a row (see the header), from dequantizing copies of
 * the blocks with fields zeroed: the parts the kernels sum separately. */
static void offsets_abs(lk_dtype t, const uint8_t *row, int64_t n, float *o) {
    const size_t bb = lk_dtype_block_bytes(t), nb = (size_t)(n / lk_dtype_block_elems(t));
    uint8_t *tmp = malloc(nb * bb);
    memcpy(tmp, row, nb * bb);
    for (size_t b = 0; b < nb; b++) {
        uint8_t *p = tmp + b * bb;
        switch (t) {
        case LK_DTYPE_Q4_1: case LK_DTYPE_Q5_1: memset(p, 0, 2); break;  /* d = 0: w = m */
        case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: memset(p, 0, 2); break;  /* d = 0: w = -dmin m */
        case LK_DTYPE_Q6_K: memset(p, 0, 192); break;                    /* codes 0: w = -32 d sc */
        default: break;
        }
    }
    lk_row_to_f32(t, tmp, o, n);
    for (int64_t j = 0; j < n; j++) {
        if (t == LK_DTYPE_Q8_0) o[j] = 0.0f;
        else if (t == LK_DTYPE_Q4_0 || t == LK_DTYPE_Q5_0) {
            uint16_t h;
            memcpy(&h, row + (size_t)(j / 32) * bb, 2);
            o[j] = (t == LK_DTYPE_Q4_0 ? 8.0f : 16.0f) * fabsf(lk_f16_to_f32(h));
        } else o[j] = fabsf(o[j]);
    }
    free(tmp);
}

/* Room for one row of quantized activations of n values. */
typedef struct act_buf {
    lk_q8_act a;
} act_buf;

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) & ~(size_t)63); }

static void act_alloc(act_buf *b, int64_t n) {
    b->a.q = alloc64((size_t)n);
    b->a.d = alloc64(sizeof(float) * (size_t)(n / 32 + 16));
    b->a.c = alloc64(sizeof(int32_t) * (size_t)(n / 32 + 16));
    b->a.s32 = alloc64(sizeof(float) * (size_t)(n / 32 + 16));
    b->a.s16 = alloc64(sizeof(float) * (size_t)(n / 16 + 16));
}

static void act_free(act_buf *b) {
    free(b->a.q);
    free(b->a.d);
    free(b->a.c);
    free(b->a.s32);
    free(b->a.s16);
}

static void random_x(float *x, int64_t n, uint64_t *s) {
    for (int64_t j = 0; j < n; j++) x[j] = urand(s, -2.0f, 2.0f);
    for (int64_t j = 0; j < n; j += 97) x[j] *= 40.0f; /* outliers, like residual streams */
    if (n >= 64)
        for (int j = 32; j < 64; j++) x[j] = 0.0f; /* an all-zero block: d = 0 */
}

/* Kernels of type t on `out` random rows of n weights, rows [r0, out). */
static void check_type(lk_dtype t, int64_t n, int out, int r0, uint64_t *s) {
    const size_t rb = lk_dtype_row_bytes(t, n);
    uint8_t *w = malloc(rb * (size_t)out);
    float *x = malloc(sizeof(float) * (size_t)n), *wd = malloc(sizeof(float) * (size_t)n);
    float *o = malloc(sizeof(float) * (size_t)n);
    float *ys = malloc(sizeof(float) * (size_t)out), *yv = malloc(sizeof(float) * (size_t)out);
    act_buf xa;
    act_alloc(&xa, n);
    random_blocks(t, w, n * out, s);
    random_x(x, n, s);
    lk_q8_quantize_scalar(x, &xa.a, n);
    for (int r = 0; r < out; r++) ys[r] = yv[r] = NAN;
    lk_mv_qdot_scalar(t, ys, w, &xa.a, n, r0, out);
#if defined(LK_CPU_X86_512)
    lk_mv_qdot_x86(t, yv, w, &xa.a, n, r0, out);
#elif defined(LK_CPU_X86_256)
    lk_mv_qdot_avx2(t, yv, w, &xa.a, n, r0, out);
#endif
    int bad = 0;
    for (int r = 0; r < out; r++) {
        if (r < r0) {
            bad += !isnan(ys[r]) || !isnan(yv[r]); /* rows outside [r0, out) untouched */
            continue;
        }
        lk_row_to_f32(t, w + (size_t)r * rb, wd, n);
        offsets_abs(t, w + (size_t)r * rb, n, o);
        double ref = 0, M = 0;
        for (int64_t j = 0; j < n; j++) {
            const double xt = (double)xa.a.d[j / 32] * xa.a.q[j];
            ref += (double)wd[j] * xt;
            M += ((double)fabsf(wd[j]) + 2.0 * o[j]) * fabs(xt);
        }
        const double tol = 1e-5 * M + 1e-30;
        int ok = fabs(ys[r] - ref) <= tol;
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
        ok = ok && fabs(yv[r] - ref) <= tol;
#endif
        if (!ok && bad < 3)
            fprintf(stderr, "  %s n %lld row %d: scalar %.9g simd %.9g ref %.9g tol %.3g\n", lk_dtype_name(t),
                    (long long)n, r, ys[r], yv[r], ref, tol);
        bad += !ok;
    }
    CHECKF(bad == 0, "%s n %lld out %d r0 %d: %d bad rows", lk_dtype_name(t), (long long)n, out, r0, bad);
    act_free(&xa);
    free(w);
    free(x);
    free(wd);
    free(o);
    free(ys);
    free(yv);
}

/* The integer prompt GEMM (gemm_q8_x86.c; gemm_q8_avx2.c in AVX2 builds)
 * on `nx` rows of quantized x and `out` random rows of W (in inputs), split
 * over nth simulated threads (each share run in turn with its own scratch),
 * against the double W~ . x~ per output. Its split w = s u + m takes q8_0's
 * codes as q + 128 on AVX-512 (offset 128 d) and as q, no offset, on AVX2;
 * the other types' offsets are those of offsets_abs. Each output is a
 * single f32 lane accumulating 2 FMAs per group of G (32, or 16 for q6_k)
 * plus the product s d_x and one add per LK_QG_KC chunk, so for in <= 1024
 * the error is below (2 in / 16 + 8) 2^-24 M < 1e-5 M. */
static void check_gemm(lk_dtype t, int64_t in, int out, int nx, int nth, uint64_t *s) {
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
    const size_t rb = lk_dtype_row_bytes(t, in);
    uint8_t *w = malloc(rb * (size_t)out);
    float *x = malloc(sizeof(float) * (size_t)in), *wd = malloc(sizeof(float) * (size_t)in);
    float *o = malloc(sizeof(float) * (size_t)in), *y = malloc(sizeof(float) * (size_t)out * nx);
    float *scratch = alloc64(sizeof(float) * LK_QG_SCRATCH_FLOATS);
    lk_q8_act xa = {alloc64((size_t)lk_q8_row_q_bytes(in) * nx), alloc64(sizeof(float) * lk_q8_row_blocks(in) * nx),
                    alloc64(sizeof(int32_t) * lk_q8_row_blocks(in) * nx),
                    alloc64(sizeof(float) * lk_q8_row_blocks(in) * nx),
                    alloc64(sizeof(float) * lk_q8_row_groups(in) * nx)};
    random_blocks(t, w, in * out, s);
    for (int i = 0; i < nx; i++) {
        lk_q8_act a = lk_q8_act_row(&xa, i, in);
        random_x(x, in, s);
        lk_q8_quantize_scalar(x, &a, in);
    }
    for (size_t i = 0; i < (size_t)out * nx; i++) y[i] = NAN;
    lk_tensor wt = {.name = "w", .dtype = t, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w, .nbytes = rb * out};
    for (int ith = 0; ith < nth; ith++) {
#if defined(LK_CPU_X86_512)
        lk_gemm_q8_x86(y, &xa, &wt, nx, ith, nth, scratch);
#else
        lk_gemm_q8_avx2(y, &xa, &wt, nx, ith, nth, scratch);
#endif
    }
    int bad = 0;
    for (int r = 0; r < out; r++) {
        lk_row_to_f32(t, w + (size_t)r * rb, wd, in);
        offsets_abs(t, w + (size_t)r * rb, in, o);
        if (t == LK_DTYPE_Q8_0 && LK_QG_NR == 16) /* the AVX-512 kernel's u = q + 128 */
            for (int64_t j = 0; j < in; j++) {
                uint16_t h;
                memcpy(&h, w + (size_t)r * rb + (size_t)(j / 32) * sizeof(lk_block_q8_0), 2);
                o[j] = 128.0f * fabsf(lk_f16_to_f32(h));
            }
        for (int i = 0; i < nx; i++) {
            const lk_q8_act a = lk_q8_act_row(&xa, i, in);
            double ref = 0, M = 0;
            for (int64_t j = 0; j < in; j++) {
                const double xt = (double)a.d[j / 32] * a.q[j];
                ref += (double)wd[j] * xt;
                M += ((double)fabsf(wd[j]) + 2.0 * o[j]) * fabs(xt);
            }
            const double got = y[(size_t)i * out + r];
            if (!(fabs(got - ref) <= 1e-5 * M + 1e-30)) {
                if (bad < 3)
                    fprintf(stderr, "  gemm %s in %lld out %d nx %d [%d,%d]: got %.9g ref %.9g tol %.3g\n",
                            lk_dtype_name(t), (long long)in, out, nx, i, r, got, ref, 1e-5 * M);
                bad++;
            }
        }
    }
    CHECKF(bad == 0, "gemm %s in %lld out %d nx %d nth %d: %d bad outputs", lk_dtype_name(t), (long long)in, out,
           nx, nth, bad);
    free(xa.q);
    free(xa.d);
    free(xa.c);
    free(xa.s32);
    free(xa.s16);
    free(scratch);
    free(w);
    free(x);
    free(wd);
    free(o);
    free(y);
#else
    (void)t;
    (void)in;
    (void)out;
    (void)nx;
    (void)nth;
    (void)s;
#endif
}

/* lk_q8_quantize_x86 / _avx2 == lk_q8_quantize_scalar, and the sums are those of q. */
static void check_quantize(uint64_t *s, float scale) {
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * n);
    act_buf a, b;
    act_alloc(&a, n);
    act_alloc(&b, n);
    random_x(x, n, s);
    x[5] = 127.5f; /* rounding ties and the block maximum */
    for (int64_t j = 0; j < n; j++) x[j] *= scale;
    /* block 3: amax 127 (d = 1 at scale 1) and values k + 1/2: every q a tie */
    for (int j = 96; j < 128; j++) x[j] = ((float)(j - 112) + 0.5f) * scale;
    x[96] = -127.0f * scale;
    lk_q8_quantize_scalar(x, &a.a, n);
    int bad = 0;
    for (int64_t g = 0; g < n / 16; g++) {
        int32_t sum = 0;
        for (int j = 0; j < 16; j++) sum += a.a.q[16 * g + j];
        bad += a.a.s16[g] != a.a.d[g / 2] * (float)sum;
    }
    for (int64_t blk = 0; blk < n / 32; blk++) {
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += a.a.q[32 * blk + j];
        bad += a.a.c[blk] != -16 * sum || a.a.s32[blk] != a.a.d[blk] * (float)sum;
    }
    CHECKF(bad == 0, "quantize: %d bad sums", bad);
    /* never -128: the AVX2 GEMM's q8_0 products rely on |q| <= 127 */
    int low = 0;
    for (int64_t j = 0; j < n; j++) low += a.a.q[j] < -127;
    CHECKF(low == 0, "quantize: %d codes below -127", low);
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
#if defined(LK_CPU_X86_512)
    lk_q8_quantize_x86(x, &b.a, n);
#else
    lk_q8_quantize_avx2(x, &b.a, n);
#endif
    CHECK(memcmp(a.a.q, b.a.q, (size_t)n) == 0);
    CHECK(memcmp(a.a.d, b.a.d, sizeof(float) * (size_t)(n / 32)) == 0);
    CHECK(memcmp(a.a.c, b.a.c, sizeof(int32_t) * (size_t)(n / 32)) == 0);
    CHECK(memcmp(a.a.s32, b.a.s32, sizeof(float) * (size_t)(n / 32)) == 0);
    CHECK(memcmp(a.a.s16, b.a.s16, sizeof(float) * (size_t)(n / 16)) == 0);
#endif
    act_free(&a);
    act_free(&b);
    free(x);
}

/* The integer GEMMs' weight unpacking (gemm_q8_pack.h) in both q8_0 modes
 * (AVX-512: u = q + 128; AVX2: q signed), whichever kernel this build runs:
 * s u + m equals lk_row_to_f32's weight for every column and input of a
 * panel with nj = 11 columns (5 zero columns) and one or two chunks of
 * inputs, up to f32 rounding of s u + m and of the dequantizer (each at
 * most 2 roundings: 1e-6 of |s u| + |m|, and 1e-30 for zero scales). */
static void check_unpack(lk_dtype t, uint64_t *s) {
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
    const int64_t in = LK_QG_KC + 256; /* a full chunk and a short one */
    const int out = 13, j0 = 2, nj = 11;
    const size_t rb = lk_dtype_row_bytes(t, in);
    const int G = lk_qg_group(t);
    uint8_t *w = malloc(rb * out), *tmp = alloc64((size_t)LK_QG_NR * LK_QG_KC);
    float *wd = malloc(sizeof(float) * (size_t)in * out);
    float *ps = alloc64(sizeof(float) * LK_QG_NR * LK_QG_KC / 16), *pm = alloc64(sizeof(float) * LK_QG_NR * LK_QG_KC / 16);
    random_blocks(t, w, in * out, s);
    for (int r = 0; r < out; r++) lk_row_to_f32(t, w + (size_t)r * rb, wd + (size_t)r * in, in);
    lk_tensor wt = {.name = "w", .dtype = t, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w, .nbytes = rb * out};
    int bad = 0;
    for (int mode = LK_QG_Q8_U8; mode <= LK_QG_Q8_S8; mode++)
        for (int64_t k0 = 0; k0 < in; k0 += LK_QG_KC) {
            const int64_t kc = LK_MIN((int64_t)LK_QG_KC, in - k0);
            lk_qg_unpack(&wt, mode, j0, nj, k0, kc, tmp, ps, pm);
            for (int j = 0; j < LK_QG_NR; j++)
                for (int64_t k = 0; k < kc; k++) {
                    const uint8_t b = tmp[(size_t)j * LK_QG_KC + k];
                    const double u = t == LK_DTYPE_Q8_0 && mode == LK_QG_Q8_S8 ? (double)(int8_t)b : (double)b;
                    const double sj = ps[k / G * LK_QG_NR + j], mj = pm[k / G * LK_QG_NR + j];
                    const double want = j < nj ? wd[(size_t)(j0 + j) * in + k0 + k] : 0.0;
                    const double tol = 1e-6 * (fabs(sj * u) + fabs(mj)) + 1e-30;
                    bad += !(fabs(sj * u + mj - want) <= tol) || (j >= nj && b != 0);
                }
        }
    CHECKF(bad == 0, "%s: %d unpacked weights differ from the dequantized ones", lk_dtype_name(t), bad);
    free(w);
    free(tmp);
    free(wd);
    free(ps);
    free(pm);
#else
    (void)t;
    (void)s;
#endif
}

/* lk_dequant_block_x86 == lk_row_to_f32 bit for bit on random blocks. */
static void check_dequant(lk_dtype t, uint64_t *s) {
#if defined(LK_CPU_X86_512)
    const int be = lk_dtype_block_elems(t), nblk = 64;
    const size_t bb = lk_dtype_block_bytes(t);
    uint8_t *w = malloc(bb * nblk);
    float *a = malloc(sizeof(float) * be * nblk), *b = malloc(sizeof(float) * be * nblk);
    random_blocks(t, w, (int64_t)be * nblk, s);
    lk_row_to_f32(t, w, a, (int64_t)be * nblk);
    for (int i = 0; i < nblk; i++) lk_dequant_block_x86(t, w + bb * i, b + (size_t)be * i);
    CHECKF(memcmp(a, b, sizeof(float) * be * nblk) == 0, "%s: SIMD dequantization differs", lk_dtype_name(t));
    free(w);
    free(a);
    free(b);
#else
    (void)t;
    (void)s;
#endif
}

int main(void) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    /* magnitudes of activations and far from them (scales stay normal floats) */
    check_quantize(&s, 1.0f);
    check_quantize(&s, 3e-18f);
    check_quantize(&s, 7e17f);
    for (size_t i = 0; i < LK_ARRAY_LEN(k_types); i++) {
        const lk_dtype t = k_types[i];
        CHECK(lk_mv_has_qdot(t));
        check_dequant(t, &s);
        check_unpack(t, &s);
        /* block counts 1..9 and 64+3 (every group/pair/single tail of the
         * legacy kernels, 1..9 super-blocks for k-quants); 1, 2, 5 and 7
         * rows from r0 0 or 1 (the 2-row loop and its 1-row tail; the
         * 4-row loop of q8_0's AVX2 kernel and its 1-3 row tail), and rows
         * 3..9 of 10 (an odd start) */
        const int be = lk_dtype_block_elems(t);
        const int nbs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 67};
        for (size_t k = 0; k < LK_ARRAY_LEN(nbs); k++) {
            if ((int64_t)nbs[k] * be > 4096) continue;
            check_type(t, (int64_t)nbs[k] * be, 7, 0, &s);
            check_type(t, (int64_t)nbs[k] * be, 6, 1, &s);
            check_type(t, (int64_t)nbs[k] * be, 1, 0, &s);
            check_type(t, (int64_t)nbs[k] * be, 10, 3, &s);
        }
        /* GEMM: one and several LK_QG_KC chunks (with a short last one),
         * column counts below / at / above the panel (16 columns on AVX-512,
         * 8 on AVX2), row counts around the micro-kernel's LK_QG_MR (AVX2:
         * tiles of 6 rows for 4-bit codes, 5 for q8_0, 4 otherwise, tails of
         * 4, 2, 1), 1 and 3 threads */
        const int64_t ins[] = {t == LK_DTYPE_Q8_0 || be == 32 ? 96 : 256, 768, 1024};
        const int outs[] = {5, LK_QG_NR, 2 * LK_QG_NR + 13};
        const int nxs[] = {1, LK_QG_MR - 1, LK_QG_MR, 2 * LK_QG_MR + 2, 2 * LK_QG_MR + 3};
        for (size_t a = 0; a < LK_ARRAY_LEN(ins); a++)
            for (size_t b = 0; b < LK_ARRAY_LEN(outs); b++)
                check_gemm(t, ins[a], outs[b], nxs[(a + b) % 5], 1 + 2 * (int)((a + b) & 1), &s);
    }
    CHECK(!lk_mv_has_qdot(LK_DTYPE_F32) && !lk_mv_has_qdot(LK_DTYPE_Q2_K) && !lk_mv_has_qdot(LK_DTYPE_Q3_K));
#if defined(LK_CPU_X86_256)
    fprintf(stderr, "test_quant_dot: AVX2 build: AVX2 kernels, integer GEMM and quantizer checked, no AVX-512 dequantization\n");
#elif !defined(LK_CPU_X86_512)
    fprintf(stderr, "test_quant_dot: no SIMD kernels in this build; portable kernels only\n");
#endif
    return test_finish();
}
