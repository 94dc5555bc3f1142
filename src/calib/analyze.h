/*
 * analyze.h - Rank@v statistics of a PCA (Loki, Singhania et al. 2024,
 * Figure 1) and their JSON and SVG renderings for `loki analyze`.
 *
 * Rank@v of (basis, layer, KV head) = lk_pca_rank(p, b, l, h, v/100): the
 * fewest principal axes that explain v% of that head's key variance.
 * For each basis: the per-layer mean over KV heads, and the mean and the
 * POPULATION standard deviation (divide by L, numpy's default ddof=0) of
 * those L layer means, i.e. the spread across layers the paper's Figure 1
 * shows for each model.
 */
#ifndef LK_CALIB_ANALYZE_H
#define LK_CALIB_ANALYZE_H

#include "calib/pca.h"

typedef struct lk_rank_stats {
    double variance;        /* v, percent in (0, 100] */
    int32_t n_layer, n_head_kv, head_dim;
    int32_t *rank;          /* (B, L, Hkv) Rank@v, 1..D */
    double *layer_mean;     /* (B, L) mean over the KV heads of a layer */
    double mean[LK_PCA_N_BASIS]; /* mean of layer_mean over layers */
    double std[LK_PCA_N_BASIS];  /* population std of layer_mean over layers */
    /* The layers Loki uses (lk_pca_layer_used: the global ones of a model
     * with sliding-window layers, else all) and the same mean and std over
     * those layers only. */
    uint8_t *used;               /* (L) 1 = Loki uses the layer's PCA */
    int32_t n_used;
    double used_mean[LK_PCA_N_BASIS];
    double used_std[LK_PCA_N_BASIS];
} lk_rank_stats;

/* Rank of (basis, layer, head) inside stats. */
static inline int32_t lk_rank_at(const lk_rank_stats *s, int b, int l, int h) {
    return s->rank[((size_t)b * s->n_layer + l) * s->n_head_kv + h];
}

/* Fill *out (freed with lk_rank_stats_free) for variance v in (0, 100]
 * percent; LOKI_ERR_ARG naming --variance otherwise. */
loki_status lk_rank_stats_compute(const loki_pca *p, double variance, lk_rank_stats *out, loki_error *err);
void lk_rank_stats_free(lk_rank_stats *s);

/* The JSON document
 *   {"variance": v, "loki_layers": [layers Loki uses],
 *    "pre": {"rank": [[per head] per layer], "layer_mean": [L], "mean": m, "std": s,
 *            "loki_mean": m over loki_layers, "loki_std": s over loki_layers},
 *    "post": {...}}
 * as a malloc'ed, NUL-terminated string (pretty-printed if `pretty`). */
loki_status lk_rank_stats_json(const lk_rank_stats *s, bool pretty, char **out, loki_error *err);

/* A self-contained SVG document (malloc'ed string): a line chart of the
 * per-layer mean Rank@v before and after RoPE (axes, ticks, legend), and a
 * layer x KV-head heatmap per basis with a colour scale from 1 to D.
 * `title` (may be NULL) is shown on top, XML-escaped. */
loki_status lk_rank_stats_svg(const lk_rank_stats *s, const char *title, char **out, size_t *len,
                              loki_error *err);

#endif
