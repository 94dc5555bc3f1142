/*
 * calib.c - key statistics for `loki calibrate` and their eigendecomposition.
 *
 * Per (basis, layer, KV head) we keep, in float64, the number of keys n, the
 * first key seen s (a shift), Σ(k - s) and the upper triangle of
 * Σ(k - s)(k - s)ᵀ. Shifting by a sample key keeps the covariance
 *   cov = Σ(k-s)(k-s)ᵀ/n - (μ-s)(μ-s)ᵀ,  μ = s + Σ(k-s)/n
 * free of the cancellation that Σkkᵀ/n - μμᵀ suffers when |μ| is large
 * next to the spread; algebraically the two are the same.
 * Rows are converted to float64 in blocks of CALIB_BLOCK and accumulated
 * with one cblas_dsyrk per block (OpenBLAS).
 * The GPU keeps the same statistics on the device (cuda/lk_cuda_calib.h);
 * lk_calib_import merges its totals here at the end of a calibration.
 */
#include "calib/pca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#define CALIB_BLOCK 256 /* rows converted to float64 per dsyrk */

struct lk_calib {
    int32_t n_layer, n_head_kv, head_dim;
    int64_t *count;   /* (B, L) keys seen; every KV head of a layer sees the same rows */
    double *shift;    /* (B, L, Hkv, D) first key seen */
    double *sum;      /* (B, L, Hkv, D) Σ(k - shift) */
    double *sumsq;    /* (B, L, Hkv, D, D) upper triangle of Σ(k - shift)(k - shift)ᵀ, row-major */
    double *block;    /* (CALIB_BLOCK, D) scratch: float64 copy of shifted rows */
    bool nonfinite;   /* a NaN or Inf key was seen (finish fails) */
};

loki_status lk_calib_init(lk_calib **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                          loki_error *err) {
    if (n_layer < 1 || n_head_kv < 1 || head_dim < 1 || n_layer > 65536 || n_head_kv > 65536 || head_dim > 65536)
        return lk_fail(err, LOKI_ERR_ARG, "calibration: shape %d layers x %d KV heads x %d dims is out of range",
                       n_layer, n_head_kv, head_dim);
    if ((double)LK_PCA_N_BASIS * n_layer * n_head_kv * head_dim * head_dim * sizeof(double) > (double)(SIZE_MAX / 4))
        return lk_fail(err, LOKI_ERR_ARG, "calibration: shape %d layers x %d KV heads x %d dims is too large",
                       n_layer, n_head_kv, head_dim);
    lk_calib *c = lk_calloc(1, sizeof(*c), err);
    if (!c) return LOKI_ERR_NOMEM;
    c->n_layer = n_layer;
    c->n_head_kv = n_head_kv;
    c->head_dim = head_dim;
    size_t heads = (size_t)LK_PCA_N_BASIS * n_layer * n_head_kv, D = (size_t)head_dim;
    c->count = lk_calloc((size_t)LK_PCA_N_BASIS * n_layer, sizeof(int64_t), err);
    c->shift = lk_calloc(heads * D, sizeof(double), err);
    c->sum = lk_calloc(heads * D, sizeof(double), err);
    c->sumsq = lk_calloc(heads * D * D, sizeof(double), err);
    c->block = lk_calloc((size_t)CALIB_BLOCK * D, sizeof(double), err);
    if (!c->count || !c->shift || !c->sum || !c->sumsq || !c->block) {
        lk_calib_free(c);
        return lk_fail_prefix(err, "calibration statistics for %d x %d x %d", n_layer, n_head_kv, head_dim);
    }
    *out = c;
    return LOKI_OK;
}

void lk_calib_free(lk_calib *c) {
    if (!c) return;
    free(c->count);
    free(c->shift);
    free(c->sum);
    free(c->sumsq);
    free(c->block);
    free(c);
}

void lk_calib_add_keys(lk_calib *c, int basis, int layer, const float *k, int32_t n) {
    const int Hkv = c->n_head_kv, D = c->head_dim;
    if (basis < 0 || basis >= LK_PCA_N_BASIS || layer < 0 || layer >= c->n_layer || n <= 0) return;
    int64_t *count = &c->count[(size_t)basis * c->n_layer + layer];
    for (int h = 0; h < Hkv; h++) {
        size_t head = ((size_t)basis * c->n_layer + layer) * Hkv + h;
        double *shift = c->shift + head * D, *sum = c->sum + head * D;   /* (D) */
        double *S = c->sumsq + head * (size_t)D * D;                      /* (D, D) */
        if (*count == 0)
            for (int j = 0; j < D; j++) shift[j] = k[(size_t)h * D + j];
        for (int32_t i0 = 0; i0 < n; i0 += CALIB_BLOCK) {
            int32_t rows = LK_MIN(CALIB_BLOCK, n - i0);
            for (int32_t i = 0; i < rows; i++) {
                const float *kr = k + ((size_t)(i0 + i) * Hkv + h) * D;  /* row of (n, Hkv, D) */
                double *br = c->block + (size_t)i * D;
                for (int j = 0; j < D; j++) {
                    br[j] = (double)kr[j] - shift[j];
                    sum[j] += br[j];
                }
            }
            /* S += blockᵀ·block: block is (rows, D) row-major */
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, rows, 1.0, c->block, D, 1.0, S, D);
        }
        for (int j = 0; j < D; j++)
            if (!isfinite(sum[j])) c->nonfinite = true;
    }
    *count += n;
}

loki_status lk_calib_import(lk_calib *c, int basis, int layer, int64_t count, const double *shift, const double *sum,
                            const double *sumsq, bool nonfinite, loki_error *err) {
    const int Hkv = c->n_head_kv, D = c->head_dim;
    if (basis < 0 || basis >= LK_PCA_N_BASIS || layer < 0 || layer >= c->n_layer || count < 0)
        return lk_fail(err, LOKI_ERR_ARG,
                       "calibration: import of %lld keys into basis %d, layer %d (of %d) is out of range",
                       (long long)count, basis, layer, c->n_layer);
    if (nonfinite) c->nonfinite = true;
    if (count == 0) return LOKI_OK;
    int64_t *n = &c->count[(size_t)basis * c->n_layer + layer];
    const double nb = (double)count;
    for (int h = 0; h < Hkv; h++) {
        size_t head = ((size_t)basis * c->n_layer + layer) * Hkv + h;
        double *s = c->shift + head * D, *t = c->sum + head * D;            /* (D) */
        double *S = c->sumsq + head * (size_t)D * D;                         /* (D, D) upper */
        const double *sb = shift + (size_t)h * D, *tb = sum + (size_t)h * D; /* (D) */
        const double *Sb = sumsq + (size_t)h * D * D;                        /* (D, D) upper */
        if (*n == 0) {
            memcpy(s, sb, sizeof(double) * (size_t)D);
            memcpy(t, tb, sizeof(double) * (size_t)D);
            for (int i = 0; i < D; i++)
                memcpy(S + (size_t)i * D + i, Sb + (size_t)i * D + i, sizeof(double) * (size_t)(D - i));
        } else {
            double *d = c->block; /* (D) s_b - s; scratch, as in add_keys */
            for (int j = 0; j < D; j++) d[j] = sb[j] - s[j];
            for (int i = 0; i < D; i++)
                for (int j = i; j < D; j++)
                    S[(size_t)i * D + j] += Sb[(size_t)i * D + j] + (tb[i] * d[j] + d[i] * tb[j]) + nb * d[i] * d[j];
            for (int j = 0; j < D; j++) t[j] += tb[j] + nb * d[j];
        }
        for (int j = 0; j < D; j++)
            if (!isfinite(t[j])) c->nonfinite = true;
    }
    *n += count;
    return LOKI_OK;
}

loki_status lk_calib_export(const lk_calib *c, int basis, int layer, int64_t *count, double *shift, double *sum,
                            double *sumsq, loki_error *err) {
    const size_t Hkv = (size_t)c->n_head_kv, D = (size_t)c->head_dim;
    if (basis < 0 || basis >= LK_PCA_N_BASIS || layer < 0 || layer >= c->n_layer)
        return lk_fail(err, LOKI_ERR_ARG, "calibration: export of basis %d, layer %d (of %d) is out of range", basis,
                       layer, c->n_layer);
    const size_t head0 = ((size_t)basis * c->n_layer + layer) * Hkv;
    *count = c->count[(size_t)basis * c->n_layer + layer];
    memcpy(shift, c->shift + head0 * D, sizeof(double) * Hkv * D);
    memcpy(sum, c->sum + head0 * D, sizeof(double) * Hkv * D);
    memcpy(sumsq, c->sumsq + head0 * D * D, sizeof(double) * Hkv * D * D); /* the lower triangle is never written */
    return LOKI_OK;
}

int64_t lk_calib_count(const lk_calib *c) {
    int64_t n = c->count[0];
    for (int i = 1; i < LK_PCA_N_BASIS * c->n_layer; i++) n = LK_MIN(n, c->count[i]);
    return n;
}

/* Covariance of one head into A (D, D) (full, symmetric) and its mean into mu. */
static void head_covariance(const lk_calib *c, size_t head, int64_t n, double *A, double *mu) {
    const int D = c->head_dim;
    const double *shift = c->shift + head * D, *sum = c->sum + head * D;
    const double *S = c->sumsq + head * (size_t)D * D;
    double inv = 1.0 / (double)n;
    for (int i = 0; i < D; i++) mu[i] = sum[i] * inv;  /* μ - s for now */
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++) {
            double v = S[(size_t)i * D + j] * inv - mu[i] * mu[j];
            A[(size_t)i * D + j] = v;
            A[(size_t)j * D + i] = v;
        }
    for (int i = 0; i < D; i++) mu[i] += shift[i];
}

loki_status lk_calib_finish(const lk_calib *c, loki_pca *p, loki_error *err) {
    const int L = c->n_layer, Hkv = c->n_head_kv, D = c->head_dim;
    if (p->n_layer != L || p->n_head_kv != Hkv || p->head_dim != D)
        return lk_fail(err, LOKI_ERR_ARG, "calibration: PCA shape %d x %d x %d differs from the statistics' %d x %d x %d",
                       p->n_layer, p->n_head_kv, p->head_dim, L, Hkv, D);
    if (c->nonfinite)
        return lk_fail(err, LOKI_ERR_RANGE, "calibration: the model produced non-finite (NaN/Inf) keys");
    for (int i = 0; i < LK_PCA_N_BASIS * L; i++)
        if (c->count[i] < 2)
            return lk_fail(err, LOKI_ERR_RANGE, "calibration: %lld keys seen for layer %d (%s RoPE); at least 2 are needed",
                           (long long)c->count[i], i % L, i / L == LOKI_BASIS_PRE ? "pre" : "post");
    double *A = lk_malloc(sizeof(double) * (size_t)D * D, err);  /* (D, D) covariance, then eigenvectors */
    double *w = lk_malloc(sizeof(double) * (size_t)D * 2, err);  /* (D) eigenvalues, (D) mean */
    loki_status st = LOKI_OK;
    if (!A || !w) {
        st = lk_fail_prefix(err, "calibration");
        goto done;
    }
    double *mu = w + D;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < Hkv; h++) {
                size_t head = ((size_t)b * L + l) * Hkv + h;
                head_covariance(c, head, c->count[(size_t)b * L + l], A, mu);
                /* ascending eigenvalues; column j of A (row-major) = eigenvector j */
                lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', D, A, D, w);
                if (info != 0) {
                    st = lk_fail(err, LOKI_ERR_RANGE, "calibration: eigendecomposition of layer %d head %d (%s RoPE) "
                                 "failed (LAPACKE_dsyevd info %d)", l, h, b == LOKI_BASIS_PRE ? "pre" : "post", (int)info);
                    goto done;
                }
                size_t off = ((size_t)l * Hkv + h);
                float *C = p->components[b] + off * (size_t)D * D;  /* (D, D), row r = r-th axis */
                float *ev = p->eigenvalues[b] + off * D, *mean = p->mean[b] + off * D;
                for (int r = 0; r < D; r++) {
                    int col = D - 1 - r;  /* descending order */
                    ev[r] = (float)(w[col] > 0.0 ? w[col] : 0.0);
                    /* sign: the largest-magnitude entry (first of ties) positive */
                    int imax = 0;
                    for (int i = 1; i < D; i++)
                        if (fabs(A[(size_t)i * D + col]) > fabs(A[(size_t)imax * D + col])) imax = i;
                    double sign = A[(size_t)imax * D + col] < 0.0 ? -1.0 : 1.0;
                    for (int i = 0; i < D; i++) C[(size_t)r * D + i] = (float)(sign * A[(size_t)i * D + col]);
                }
                for (int i = 0; i < D; i++) mean[i] = (float)mu[i];
            }
done:
    free(A);
    free(w);
    return st;
}
