/* TEMPORARY (worktree only): removed when src/calib/pca.c lands. */
#include "calib/pca.h"

#include <stdlib.h>

loki_status lk_pca_init(loki_pca **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim, loki_error *err) {
    loki_pca *p = lk_calloc(1, sizeof *p, err);
    if (!p) return LOKI_ERR_NOMEM;
    p->n_layer = n_layer; p->n_head_kv = n_head_kv; p->head_dim = head_dim;
    size_t n = (size_t)n_layer * n_head_kv * head_dim;
    for (int b = 0; b < 2; b++) {
        p->components[b] = calloc(n * head_dim, sizeof(float));
        p->eigenvalues[b] = calloc(n, sizeof(float));
        p->mean[b] = calloc(n, sizeof(float));
    }
    *out = p;
    return LOKI_OK;
}
int32_t lk_pca_rank(const loki_pca *p, int basis, int layer, int h, double fraction) {
    const float *e = lk_pca_eigenvalues(p, basis, layer, h);
    double tot = 0, c = 0;
    for (int i = 0; i < p->head_dim; i++) tot += e[i];
    if (tot <= 0) return p->head_dim;
    for (int i = 0; i < p->head_dim; i++) { c += e[i]; if (c >= fraction * tot - 1e-12 * tot) return i + 1; }
    return p->head_dim;
}
