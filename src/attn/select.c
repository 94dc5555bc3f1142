/*
 * select.c - the building blocks of sparse attention: top-k by partial
 * selection and a vectorised dot product.
 */
#include "attn/attn.h"

#include <string.h>

/* Eight lanes of floats: GCC/Clang vector extensions, so the compiler emits
 * AVX/NEON without intrinsics or -ffast-math. */
typedef float lk_v8 __attribute__((vector_size(32), aligned(4)));

float lk_dot(const float *a, const float *b, int n) {
    lk_v8 acc0 = {0}, acc1 = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        lk_v8 a0, b0, a1, b1;
        memcpy(&a0, a + i, sizeof a0);
        memcpy(&b0, b + i, sizeof b0);
        memcpy(&a1, a + i + 8, sizeof a1);
        memcpy(&b1, b + i + 8, sizeof b1);
        acc0 += a0 * b0;
        acc1 += a1 * b1;
    }
    acc0 += acc1;
    float s = 0.0f;
    for (int j = 0; j < 8; j++) s += acc0[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline void swapf(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

/* Rearrange w[0..n) so that w[r] holds the element of rank r in descending
 * order (Hoare partition around a median of three, iterating into the side
 * that holds r). */
static void select_rank_desc(float *w, int32_t n, int32_t r) {
    int32_t lo = 0, hi = n - 1;
    while (hi > lo) {
        int32_t mid = lo + (hi - lo) / 2;
        /* median of three to w[mid] */
        if (w[mid] > w[lo]) swapf(&w[mid], &w[lo]);
        if (w[hi] > w[lo]) swapf(&w[hi], &w[lo]);
        if (w[hi] > w[mid]) swapf(&w[hi], &w[mid]);
        float pivot = w[mid];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (w[i] > pivot) i++;
            while (w[j] < pivot) j--;
            if (i <= j) {
                swapf(&w[i], &w[j]);
                i++;
                j--;
            }
        }
        /* now w[lo..j] >= pivot >= w[i..hi], and w[j+1..i-1] == pivot */
        if (r <= j)
            hi = j;
        else if (r >= i)
            lo = i;
        else
            return;
    }
}

void lk_topk(const float *x, const int32_t *cand, int32_t n, int32_t k, int32_t *idx, float *work) {
    if (k <= 0) return;
    if (k >= n) {
        for (int32_t i = 0; i < n; i++) idx[i] = cand ? cand[i] : i;
        return;
    }
    if (cand)
        for (int32_t i = 0; i < n; i++) work[i] = x[cand[i]];
    else
        memcpy(work, x, sizeof(float) * (size_t)n);
    select_rank_desc(work, n, k - 1);
    float t = work[k - 1]; /* the k-th largest value */
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t s = cand ? cand[i] : i;
        if (x[s] > t) idx[m++] = s;
    }
    for (int32_t i = 0; i < n && m < k; i++) {
        int32_t s = cand ? cand[i] : i;
        if (x[s] == t) idx[m++] = s;
    }
}
