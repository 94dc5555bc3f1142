/*
 * topk.c - lk_topk: the k largest of n scores, the select stage of the
 * sparse methods on the CPU (loki, exact-topk, h2o's eviction, Jaccard).
 *
 * A threshold select in two passes over the n scores:
 *  0. a strided sample of TOPK_SAMPLE scores brackets the k-th largest:
 *     [lo, hi] = the edges of the sample histogram's bins that hold the
 *     ranks TOPK_SIGMAS binomial standard deviations either side of its
 *     expected rank (sample_bracket);
 *  1. one pass counts the scores above hi and compacts the keys inside
 *     [lo, hi] (a few % of n) into a buffer;
 *  2. a radix select over that buffer only gives the exact k-th largest key
 *     T and how many of the keys equal to T are taken (ties go to the lower
 *     index, so the first `ties` in index order);
 *  3. one pass writes every index whose key is above T, and the first
 *     `ties` equal to T, in index (candidate) order.
 * A bracket that misses (the k-th largest outside [lo, hi]: a sample that
 * misrepresents the row) is widened to the side where it lies and pass 1
 * repeated; the second try cannot miss. Rows shorter than
 * TOPK_SAMPLE_MIN_N skip the sample (the bracket is every key).
 *
 * Why not a radix select over all n (the version before this file): the
 * top 11 bits of a float are its sign, exponent and 2 mantissa bits, so the
 * scores of one row fall into a few dozen first digits; the histogram's
 * increments then queue on the same counters and the boundary digit holds
 * 10-20% of n for the next passes (~285 µs at n = 65536, k = 8192 on the
 * AVX-512 Xeon of dev/cpu/README.md, against ~50 µs here).
 *
 * Keys: the float's bits made orderable as unsigned integers (topk_key):
 * -0 = +0, NaN as -FLT_MAX (ranked below every number but still a valid
 * pick, so k indices are always written). AVX-512 passes where the build
 * targets it (vpcompressd for both compactions), AVX2 ones (a permute built
 * with BMI2's pext) where it has AVX2 only, portable C otherwise
 * (lk_topk_portable): the same picks in the same order.
 */
#include "attn/attn.h"

#include <float.h>
#include <math.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* Scores sampled to bracket the threshold, the row length from which
 * sampling pays (below it the select runs on all keys: 4.5 µs at n = 3000
 * on the Xeon), and the bins of the sample's histogram. 2048 samples
 * narrow the bracket (4400 keys inside instead of 6400 at n = 64k) but
 * cost more than that saves (dev/cpu/README.md). */
#ifndef TOPK_SAMPLE
#define TOPK_SAMPLE 1024
#endif
#define TOPK_SAMPLE_MIN_N (4 * TOPK_SAMPLE)
#define TOPK_BINS 1024
/* Half-width of the bracket in standard deviations of the sample rank: the
 * k-th largest of n falls outside it with probability ~6e-5 for a random
 * row (a miss costs one more pass 1). Wider brackets put more keys in the
 * buffer of step 2. */
#ifndef TOPK_SIGMAS
#define TOPK_SIGMAS 4.0
#endif

static inline uint32_t topk_key(float v) {
    float f = (v == v ? v : -FLT_MAX) + 0.0f; /* + 0: -0 becomes +0 */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u); /* negative: all bits flipped; else the sign bit */
}

#if defined(__AVX512F__)
/* 16 keys as topk_key */
static inline __m512i key16(__m512 v) {
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_set1_ps(-FLT_MAX), v);
    const __m512i u = _mm512_castps_si512(_mm512_add_ps(v, _mm512_setzero_ps()));
    return _mm512_xor_si512(u, _mm512_or_si512(_mm512_srai_epi32(u, 31), _mm512_set1_epi32(INT32_MIN)));
}

/* Lanes m of v appended at dst + o, where dst holds cap entries: a full
 * store of the compressed vector while 16 lanes fit (faster than the masked
 * compress-store to memory), else only the selected lanes. */
static inline int32_t append16(int32_t *dst, int32_t o, int32_t cap, __mmask16 m, __m512i v) {
    if (o + 16 <= cap)
        _mm512_storeu_si512(dst + o, _mm512_maskz_compress_epi32(m, v));
    else
        _mm512_mask_compressstoreu_epi32(dst + o, m, v);
    return o + __builtin_popcount(m);
}

#endif

/* The r-th largest (1-based, 1 <= r <= m) of keys[0..m), all in [lo, hi],
 * by radix select over (key - lo): digits from the top bit of hi - lo, each
 * pass a histogram, then the keys of the chosen digit compacted in place
 * (keys is overwritten). *above: how many keys are larger than the result. */
static uint32_t select_rank(uint32_t *keys, int32_t m, int32_t r, uint32_t lo, uint32_t hi, int32_t *above, int simd) {
    (void)simd; /* the vector compaction is AVX-512 only */
    uint32_t hist[1 << 11];
    const int b = m > 8192 ? 11 : 8; /* small buffers: fewer bins to clear and scan */
    int sh = hi > lo ? 32 - __builtin_clz(hi - lo) : 0; /* bits of (key - base) still unresolved */
    uint32_t base = lo;
    int32_t gt = 0;
    while (sh > 0 && m > 1) {
        const int db = sh < b ? sh : b;
        sh -= db;
        memset(hist, 0, sizeof(uint32_t) << db);
        for (int32_t j = 0; j < m; j++) hist[(keys[j] - base) >> sh]++;
        uint32_t d = (1u << db) - 1;
        for (; (int32_t)hist[d] < r; d--) r -= (int32_t)hist[d], gt += (int32_t)hist[d]; /* Σ hist = m >= r */
        int32_t o = 0, j = 0;
#if defined(__AVX512F__)
        for (; simd && j + 16 <= m; j += 16) { /* o <= j: the 16-lane store ends before keys[j + 16] */
            const __m512i kk = _mm512_loadu_si512(keys + j);
            const __m512i dg = _mm512_srl_epi32(_mm512_sub_epi32(kk, _mm512_set1_epi32((int)base)), _mm_cvtsi32_si128(sh));
            o = append16((int32_t *)keys, o, m, _mm512_cmpeq_epi32_mask(dg, _mm512_set1_epi32((int)d)), kk);
        }
#endif
        for (; j < m; j++) { /* o <= j: in place */
            const uint32_t kk = keys[j];
            keys[o] = kk;
            o += ((kk - base) >> sh) == d;
        }
        m = o, base += d << sh;
    }
    *above = gt;
    return m == 1 ? keys[0] : base; /* one key left (r = 1), or every bit resolved */
}

/* Pass 1, portable: *above = #keys > hi; keys in [lo, hi] appended to buf
 * (in index order); with a candidate list every key also into key[]. */
static void pass1_portable(const float *x, const int32_t *cand, int32_t n, uint32_t lo, uint32_t hi, uint32_t *key,
                           uint32_t *buf, int32_t *above, int32_t *nm) {
    int32_t a = 0, m = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint32_t kk = topk_key(x[cand ? cand[i] : i]);
        if (cand) key[i] = kk;
        a += kk > hi;
        buf[m] = kk; /* m <= i < n: within buf */
        m += (kk >= lo) & (kk <= hi);
    }
    *above = a, *nm = m;
}

/* Pass 3, portable: the indices (candidates) with key > t and the first
 * `ties` with key == t, in order, into idx (k of them). */
static void pass3_portable(const float *x, const int32_t *cand, int32_t n, const uint32_t *key, uint32_t t,
                           int32_t ties, int32_t k, int32_t *idx) {
    int32_t o = 0;
    for (int32_t i = 0; i < n && o < k; i++) {
        const uint32_t kk = cand ? key[i] : topk_key(x[i]);
        const int eq = kk == t;
        idx[o] = cand ? cand[i] : i; /* o < k */
        o += (kk > t) | (eq & (ties > 0));
        ties -= eq;
    }
}

#if defined(__AVX512F__)
static void pass1_avx512(const float *x, const int32_t *cand, int32_t n, uint32_t lo, uint32_t hi, uint32_t *key,
                         uint32_t *buf, int32_t *above, int32_t *nm) {
    const __m512i vlo = _mm512_set1_epi32((int)lo), vhi = _mm512_set1_epi32((int)hi);
    int32_t a = 0, m = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = cand ? _mm512_i32gather_ps(_mm512_loadu_si512(cand + i), x, 4) : _mm512_loadu_ps(x + i);
        const __m512i kk = key16(v);
        if (cand) _mm512_storeu_si512(key + i, kk);
        a += __builtin_popcount(_mm512_cmpgt_epu32_mask(kk, vhi));
        m = append16((int32_t *)buf, m, n, _mm512_mask_cmple_epu32_mask(_mm512_cmpge_epu32_mask(kk, vlo), kk, vhi), kk);
    }
    int32_t a2, m2; /* the tail */
    pass1_portable(x + (cand ? 0 : i), cand ? cand + i : NULL, n - i, lo, hi, key + i, buf + m, &a2, &m2);
    *above = a + a2, *nm = m + m2;
}

static void pass3_avx512(const float *x, const int32_t *cand, int32_t n, const uint32_t *key, uint32_t t,
                         int32_t ties, int32_t k, int32_t *idx) {
    const __m512i vt = _mm512_set1_epi32((int)t), step = _mm512_set1_epi32(16);
    __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int32_t o = 0, i = 0;
    for (; i + 16 <= n && o < k; i += 16, pos = _mm512_add_epi32(pos, step)) {
        const __m512i kk = cand ? _mm512_loadu_si512(key + i) : key16(_mm512_loadu_ps(x + i));
        __mmask16 take = _mm512_cmpgt_epu32_mask(kk, vt);
        unsigned eq = _mm512_cmpeq_epu32_mask(kk, vt);
        if (eq) { /* the boundary key: the first `ties` of its copies, by index */
            while (__builtin_popcount(eq) > (ties > 0 ? ties : 0)) eq &= ~(1u << (31 - __builtin_clz(eq)));
            ties -= __builtin_popcount(eq);
            take |= (__mmask16)eq;
        }
        o = append16(idx, o, k, take, cand ? _mm512_loadu_si512(cand + i) : pos);
    }
    if (o < k) { /* the tail: indices i.., the keys as pass3_portable rebuilds them */
        int32_t *tail = idx + o;
        pass3_portable(x + (cand ? 0 : i), cand ? cand + i : NULL, n - i, key + i, t, ties, k - o, tail);
        if (!cand)
            for (int32_t j = 0; j < k - o; j++) tail[j] += i;
    }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
/* AVX2 (no unsigned compares, no compress): keys compared as signed after
 * flipping their top bits; the lanes that move (a few % in pass 1, k/n in
 * pass 3) written one by one from the compare's bit mask. */
static inline __m256i key8(__m256 v) {
    v = _mm256_add_ps(_mm256_blendv_ps(_mm256_set1_ps(-FLT_MAX), v, _mm256_cmp_ps(v, v, _CMP_ORD_Q)), _mm256_setzero_ps());
    const __m256i u = _mm256_castps_si256(v);
    return _mm256_xor_si256(u, _mm256_or_si256(_mm256_srai_epi32(u, 31), _mm256_set1_epi32(INT32_MIN)));
}

static inline unsigned mask8(__m256i m) { return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(m)); }

/* Lanes m of v appended at dst + o (dst holds cap entries), as append16:
 * with BMI2 one permute (the lane numbers of the set bits gathered by
 * pext) and a full store while 8 lanes fit; else lane by lane (a branch
 * per lane, which the compare masks' varying counts mispredict). */
static inline int32_t append8(int32_t *dst, int32_t o, int32_t cap, unsigned m, __m256i v) {
#if defined(__BMI2__)
    if (o + 8 <= cap) {
        const uint64_t bytes = _pdep_u64(m, 0x0101010101010101ull) * 0xff; /* bit l -> byte l all ones */
        const __m256i perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)_pext_u64(0x0706050403020100ull, bytes)));
        _mm256_storeu_si256((__m256i *)(dst + o), _mm256_permutevar8x32_epi32(v, perm));
        return o + __builtin_popcount(m);
    }
#endif
    int32_t lane[8];
    _mm256_storeu_si256((__m256i *)lane, v);
    for (; m; m &= m - 1) dst[o++] = lane[__builtin_ctz(m)];
    return o;
}

static void pass1_avx2(const float *x, const int32_t *cand, int32_t n, uint32_t lo, uint32_t hi, uint32_t *key,
                       uint32_t *buf, int32_t *above, int32_t *nm) {
    const __m256i sign = _mm256_set1_epi32(INT32_MIN), vlo = _mm256_set1_epi32((int)lo);
    const __m256i shi = _mm256_set1_epi32((int)(hi ^ 0x80000000u)), sspan = _mm256_set1_epi32((int)((hi - lo) ^ 0x80000000u));
    int32_t a = 0, m = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = cand ? _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(cand + i)), 4)
                              : _mm256_loadu_ps(x + i);
        const __m256i kk = key8(v);
        if (cand) _mm256_storeu_si256((__m256i *)(key + i), kk);
        a += __builtin_popcount(mask8(_mm256_cmpgt_epi32(_mm256_xor_si256(kk, sign), shi)));
        /* inside [lo, hi]: kk - lo <= hi - lo, unsigned */
        unsigned mm = 0xffu & ~mask8(_mm256_cmpgt_epi32(_mm256_xor_si256(_mm256_sub_epi32(kk, vlo), sign), sspan));
        m = append8((int32_t *)buf, m, n, mm, kk);
    }
    int32_t a2, m2; /* the tail */
    pass1_portable(x + (cand ? 0 : i), cand ? cand + i : NULL, n - i, lo, hi, key + i, buf + m, &a2, &m2);
    *above = a + a2, *nm = m + m2;
}

static void pass3_avx2(const float *x, const int32_t *cand, int32_t n, const uint32_t *key, uint32_t t, int32_t ties,
                       int32_t k, int32_t *idx) {
    const __m256i sign = _mm256_set1_epi32(INT32_MIN), vt = _mm256_set1_epi32((int)t);
    const __m256i st = _mm256_set1_epi32((int)(t ^ 0x80000000u));
    const __m256i step = _mm256_set1_epi32(8);
    __m256i pos = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int32_t o = 0, i = 0;
    for (; i + 8 <= n && o < k; i += 8, pos = _mm256_add_epi32(pos, step)) {
        const __m256i kk = cand ? _mm256_loadu_si256((const __m256i *)(key + i)) : key8(_mm256_loadu_ps(x + i));
        unsigned take = mask8(_mm256_cmpgt_epi32(_mm256_xor_si256(kk, sign), st)), eq = mask8(_mm256_cmpeq_epi32(kk, vt));
        if (eq) { /* as pass3_avx512 */
            while (__builtin_popcount(eq) > (ties > 0 ? ties : 0)) eq &= ~(1u << (31 - __builtin_clz(eq)));
            ties -= __builtin_popcount(eq);
            take |= eq;
        }
        o = append8(idx, o, k, take, cand ? _mm256_loadu_si256((const __m256i *)(cand + i)) : pos);
    }
    if (o < k) {
        int32_t *tail = idx + o;
        pass3_portable(x + (cand ? 0 : i), cand ? cand + i : NULL, n - i, key + i, t, ties, k - o, tail);
        if (!cand)
            for (int32_t j = 0; j < k - o; j++) tail[j] += i;
    }
}
#endif

/* The bracket [*lo, *hi] of step 0 (keys): TOPK_SAMPLE scores, one from
 * the middle of each of as many equal strides, binned linearly between the
 * sample's finite minimum and maximum (TOPK_BINS bins: scores spread over
 * their range, unlike the top bits of their keys); the bracket is the
 * outer edges of the bins holding the sample ranks r -+ TOPK_SIGMAS
 * standard deviations, r = k/n of the sample (rank 1 = the largest). The
 * bins cost at most a bin's width of extra keys per side; a NaN or an
 * infinity counts in the lowest or highest bin. */
static void sample_bracket(const float *x, const int32_t *cand, int32_t n, int32_t k, uint32_t *lo, uint32_t *hi) {
    enum { NS = TOPK_SAMPLE, NB = TOPK_BINS };
    float v[NS], mn = FLT_MAX, mx = -FLT_MAX;
    for (int32_t s = 0; s < NS; s++) {
        const int32_t i = (int32_t)(((int64_t)2 * s + 1) * n / (2 * NS));
        v[s] = x[cand ? cand[i] : i];
        if (isfinite(v[s])) mn = v[s] < mn ? v[s] : mn, mx = v[s] > mx ? v[s] : mx; /* not fminf: a libm call */
    }
    if (!(mx > mn)) return; /* no spread (or nothing finite): the bracket stays every key */
    uint32_t hist[NB] = {0};
    const float w = (mx - mn) / NB, scale = 1.0f / w;
    for (int32_t s = 0; s < NS; s++) {
        float f = (v[s] - mn) * scale;
        f = f > 0.0f ? f : 0.0f; /* NaN and -inf to the lowest bin, +inf and rounding to the highest */
        hist[(int)(f < (float)(NB - 1) ? f : (float)(NB - 1))]++;
    }
    const double p = (double)k / n, r = p * NS, d = TOPK_SIGMAS * sqrt(r * (1.0 - p)) + 2.0;
    const int32_t rh = (int32_t)(r - d), rl = (int32_t)(r + d) + 1; /* ranks from the top, 1-based */
    int32_t cum = 0, b = NB - 1;
    for (; b > 0 && cum + (int32_t)hist[b] < rh; b--) cum += (int32_t)hist[b];
    if (rh >= 1 && b < NB - 1) *hi = topk_key(mn + (float)(b + 1) * w); /* the top bin: no upper edge */
    for (; b > 0 && cum + (int32_t)hist[b] < rl; b--) cum += (int32_t)hist[b];
    if (rl <= NS && b > 0) *lo = topk_key(mn + (float)b * w);
    if (*lo > *hi) *lo = *hi; /* rounding of the edges */
}

static void topk_run(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work, int simd) {
    (void)simd; /* builds without AVX2 have the portable passes only */
    if (k <= 0) return;
    if (k >= n) {
        for (int32_t i = 0; i < n; i++) idx[i] = cand ? cand[i] : i;
        return;
    }
    uint32_t *key = (uint32_t *)work;     /* (n) with a candidate list: the keys in candidate order */
    uint32_t *buf = (uint32_t *)work + n; /* (n) the sample, then the keys inside the bracket */
    uint32_t lo = 0, hi = UINT32_MAX;
    if (n >= TOPK_SAMPLE_MIN_N) sample_bracket(x, cand, n, k, &lo, &hi);
    int32_t above, nm;
    for (;;) {
#if defined(__AVX512F__)
        if (simd)
            pass1_avx512(x, cand, n, lo, hi, key, buf, &above, &nm);
        else
#elif defined(__AVX2__)
        if (simd)
            pass1_avx2(x, cand, n, lo, hi, key, buf, &above, &nm);
        else
#endif
            pass1_portable(x, cand, n, lo, hi, key, buf, &above, &nm);
        if (above >= k) /* the k-th largest is above hi (so hi < UINT32_MAX) */
            lo = hi + 1, hi = UINT32_MAX;
        else if (above + nm < k) /* below lo (so lo > 0) */
            hi = lo - 1, lo = 0;
        else
            break;
    }
    int32_t gt;
    const int32_t need = k - above; /* 1 <= need <= nm */
    const uint32_t t = select_rank(buf, nm, need, lo, hi, &gt, simd);
#if defined(__AVX512F__)
    if (simd)
        pass3_avx512(x, cand, n, key, t, need - gt, k, idx);
    else
#elif defined(__AVX2__)
    if (simd)
        pass3_avx2(x, cand, n, key, t, need - gt, k, idx);
    else
#endif
        pass3_portable(x, cand, n, key, t, need - gt, k, idx);
}

void lk_topk(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work) {
    topk_run(x, cand, n, k, idx, work, 1);
}

void lk_topk_portable(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work) {
    topk_run(x, cand, n, k, idx, work, 0);
}
