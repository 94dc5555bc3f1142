/* params.c - attention method parameters: defaults, names, validation. */
#include "calib/pca.h"
#include "attn/attn.h"
#include "engine/engine.h"

#include <string.h>

static const char *const method_names[] = {"dense", "exact-topk", "loki", "pcaattn", "h2o"};

loki_attn_params loki_attn_default_params(void) {
    loki_attn_params p;
    memset(&p, 0, sizeof p);
    p.method = LOKI_ATTN_DENSE;
    p.kf = 0.25f;
    p.df = 0.25f;
    p.basis = LOKI_BASIS_POST;
    return p;
}

const char *loki_attn_method_name(loki_attn_method m) {
    return (unsigned)m < sizeof method_names / sizeof method_names[0] ? method_names[m] : "?";
}

int loki_attn_method_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof method_names / sizeof method_names[0]); i++)
        if (name && !strcmp(name, method_names[i])) return i;
    return -1;
}

loki_status loki_attn_validate(const loki_attn_params *p, const loki_model *m, loki_error *err) {
    const lk_hparams *hp = &m->hp;
    if ((unsigned)p->method > LOKI_ATTN_H2O) return lk_fail(err, LOKI_ERR_ARG, "--attn: unknown method %d", (int)p->method);
    bool sparse = p->method != LOKI_ATTN_DENSE;
    bool lowrank = p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_PCAATTN;
    if (sparse && !(p->kf > 0.0f && p->kf <= 1.0f))
        return lk_fail(err, LOKI_ERR_ARG, "--kf must be in (0, 1], got %g", p->kf);
    if (lowrank && p->d == 0 && p->dvar <= 0.0f && !(p->df > 0.0f && p->df <= 1.0f))
        return lk_fail(err, LOKI_ERR_ARG, "--df must be in (0, 1], got %g", p->df);
    if (p->d < 0 || p->d > hp->head_dim)
        return lk_fail(err, LOKI_ERR_ARG, "--d must be in 1..%d (the head dimension), got %d", hp->head_dim, p->d);
    if (p->dvar < 0.0f || p->dvar > 1.0f)
        return lk_fail(err, LOKI_ERR_ARG, "--dvar must be in (0, 100] percent, got %g%%", p->dvar * 100);
    if (p->k_min < 0 || p->dense_below < 0 || p->sinks < 0 || p->recent < 0 || p->k_fixed < 0)
        return lk_fail(err, LOKI_ERR_ARG, "--k-min, --dense-below, --sinks and --recent must be >= 0");
    if (p->evict_kf < 0.0f || p->evict_kf > 1.0f)
        return lk_fail(err, LOKI_ERR_ARG, "--evict-kf must be in (0, 1] (0 = off), got %g", p->evict_kf);
    if (p->evict_kf > 0.0f && p->method != LOKI_ATTN_LOKI && p->method != LOKI_ATTN_EXACT_TOPK)
        return lk_fail(err, LOKI_ERR_ARG, "--evict-kf works with --attn loki or exact-topk (h2o evicts by itself), not %s",
                       loki_attn_method_name(p->method));
    if (p->evict_kf > 0.0f && p->evict_kf < p->kf)
        return lk_fail(err, LOKI_ERR_ARG, "--evict-kf (%g) must be >= --kf (%g): the method selects among the kept tokens",
                       p->evict_kf, p->kf);
    if (p->dense_prompt && (p->method == LOKI_ATTN_H2O || p->evict_kf > 0.0f || p->k_fixed > 0))
        return lk_fail(err, LOKI_ERR_ARG,
                       "--dense-prompt does not combine with %s: it needs the attention weights of every row",
                       p->k_fixed > 0 ? "the prefill-mask evaluation (perplexity --mode prefill)"
                       : p->method == LOKI_ATTN_H2O ? "--attn h2o" : "--evict-kf");
    if (lowrank && !p->pca)
        return lk_fail(err, LOKI_ERR_ARG, "--attn %s needs a PCA file (--pca)", loki_attn_method_name(p->method));
    if (p->dvar > 0.0f && !p->pca) return lk_fail(err, LOKI_ERR_ARG, "--dvar needs a PCA file (--pca)");
    if (p->pca && (p->pca->n_layer != hp->n_layer || p->pca->n_head_kv != hp->n_head_kv ||
                   p->pca->head_dim != hp->head_dim))
        return lk_fail(err, LOKI_ERR_ARG,
                       "--pca: the file holds %d layers x %d KV heads x %d dims, the model has %d x %d x %d",
                       p->pca->n_layer, p->pca->n_head_kv, p->pca->head_dim, hp->n_layer, hp->n_head_kv,
                       hp->head_dim);
    if (p->gqa_shared && hp->n_head / hp->n_head_kv > LK_ATTN_MAX_GROUP)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "--gqa-shared supports up to %d query heads per KV head, the model has %d",
                       LK_ATTN_MAX_GROUP, hp->n_head / hp->n_head_kv);
    if ((unsigned)p->basis > LOKI_BASIS_POST) return lk_fail(err, LOKI_ERR_ARG, "--basis must be pre or post");
    return LOKI_OK;
}
