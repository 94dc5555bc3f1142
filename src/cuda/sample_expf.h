/*
 * sample_expf.h - glibc's expf (2.27 and later), operation for operation, for
 * the host and the GPU, so that the GPU sampler computes the CPU sampler's
 * probabilities bit for bit (src/cuda/sample.cu, docs/GPU.md "Sampling on
 * the GPU").
 *
 * The algorithm is glibc's sysdeps/ieee754/flt-32/e_expf.c (from Arm's
 * optimized-routines): exp(x) = 2^(k/32) * 2^(r/32) with a 32-entry table
 * and a cubic, all in double, rounded to float once. It is copied as the
 * x86-64 glibc runs it on CPUs with FMA and AVX2 (the __expf_fma variant
 * that the expf ifunc picks there; disassembled from Debian's glibc 2.36):
 * GCC contracted every product feeding an add, including both uses of
 * z = InvLn2N * x, so kd and r come from fused multiply-adds too. The
 * plain-SSE2 variant (CPUs without FMA), glibc before 2.27, other libms,
 * and aarch64's glibc (round-to-int instead of the shift trick) may differ
 * in the last bit for some inputs; tests/test_cuda_sample.c checks the
 * host's expf against this copy before it compares samplers.
 *
 * Usable from C (host only) and CUDA (host and device). On the device every
 * operation is an explicit round-to-nearest intrinsic, so nvcc cannot fuse
 * or reorder anything.
 */
#ifndef LK_SAMPLE_EXPF_H
#define LK_SAMPLE_EXPF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* tab[i] = bits(2^(i/32)) - (i << 47), __exp2f_data.tab */
#define LK_EXPF_TAB_INIT                                                                       \
    {0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull, \
     0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull, \
     0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull, \
     0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull, \
     0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull, \
     0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull, \
     0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull, \
     0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull}

static const uint64_t lk_expf_tab_host[32] = LK_EXPF_TAB_INIT;

#if defined(__CUDACC__)
static __device__ const uint64_t lk_expf_tab_dev[32] = LK_EXPF_TAB_INIT;
#define LK_EXPF_FN static __host__ __device__ __forceinline__
#else
#define LK_EXPF_FN static inline
#endif

#if defined(__CUDA_ARCH__)
#define LK_EXPF_TAB(i) lk_expf_tab_dev[i]
#define LK_DFMA(a, b, c) __fma_rn(a, b, c)
#define LK_DMUL(a, b) __dmul_rn(a, b)
#define LK_DSUB(a, b) __dsub_rn(a, b)
#define LK_D2F(a) __double2float_rn(a)
#define LK_F2D(a) ((double)(a))
#else
#define LK_EXPF_TAB(i) lk_expf_tab_host[i]
#define LK_DFMA(a, b, c) fma(a, b, c)
#define LK_DMUL(a, b) ((a) * (b))
#define LK_DSUB(a, b) ((a) - (b))
#define LK_D2F(a) ((float)(a))
#define LK_F2D(a) ((double)(a))
#endif

LK_EXPF_FN uint32_t lk_expf_f2u(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
#endif
}

LK_EXPF_FN uint64_t lk_expf_d2u(double x) {
#if defined(__CUDA_ARCH__)
    return (uint64_t)__double_as_longlong(x);
#else
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
#endif
}

LK_EXPF_FN double lk_expf_u2d(uint64_t u) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double((long long)u);
#else
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
#endif
}

/* expf(x) exactly as x86-64 glibc >= 2.27 computes it on an FMA CPU, for
 * every float x (NaN -> NaN, +inf -> +inf, -inf -> 0, overflow -> +inf,
 * underflow -> 0, or the smallest subnormal just above the underflow
 * threshold, as glibc's __math_may_uflowf gives). */
LK_EXPF_FN float lk_expf(float x) {
    const double inv_ln2_n = 0x1.71547652b82fep+5;    /* 32 / ln 2 */
    const double shift = 0x1.8p+52;                    /* round-to-int by addition */
    const double c0 = 0x1.c6af84b912394p-20, c1 = 0x1.ebfce50fac4f3p-13, c2 = 0x1.62e42ff0c52d6p-6;
    const uint32_t ux = lk_expf_f2u(x), abstop = (ux >> 20) & 0x7ff;
    if (abstop >= 0x42a) { /* |x| >= 88 or x is NaN */
        if (ux == 0xff800000u) return 0.0f;             /* -inf */
        if (abstop >= 0x7f8) return x + x;              /* +inf or NaN */
        if (x > 0x1.62e42ep6f) return (float)INFINITY;  /* overflow */
        if (x < -0x1.9fe368p6f) return 0.0f;            /* underflow */
        if (x < -0x1.9d1d9ep6f) return 0x1p-149f;       /* may underflow: 0x1.4p-75f squared */
    }
    const double xd = LK_F2D(x);
    const double kd_s = LK_DFMA(inv_ln2_n, xd, shift); /* k + shift, k = round(x * 32 / ln 2) */
    const uint64_t ki = lk_expf_d2u(kd_s);
    const double kd = LK_DSUB(kd_s, shift);
    const double r = LK_DFMA(inv_ln2_n, xd, -kd); /* x * 32 / ln 2 - k, one rounding */
    const uint64_t t = LK_EXPF_TAB(ki % 32) + (ki << 47);
    const double s = lk_expf_u2d(t);
    const double z = LK_DFMA(r, c0, c1);
    const double r2 = LK_DMUL(r, r);
    double y = LK_DFMA(r, c2, 1.0);
    y = LK_DFMA(z, r2, y);
    y = LK_DMUL(y, s);
    return LK_D2F(y);
}

#endif
