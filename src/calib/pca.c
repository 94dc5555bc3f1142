/* pca.c - PLACEHOLDER until the PCA file module lands (replaced wholesale). */
#include "calib/pca.h"

#include <stdlib.h>

loki_status loki_pca_load(const char *path, const loki_model *model, loki_pca **out, loki_error *err) {
    (void)model;
    (void)out;
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: PCA files are not supported yet", path);
}

void loki_pca_free(loki_pca *pca) {
    if (!pca) return;
    for (int b = 0; b < 2; b++) { free(pca->components[b]); free(pca->eigenvalues[b]); free(pca->mean[b]); }
    free(pca);
}
