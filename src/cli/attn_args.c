/* attn_args.c - shared attention options of the subcommands (see attn_args.h). */
#include "cli/attn_args.h"
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

void cli_attn_args_init(cli_attn_args *a) {
    memset(a, 0, sizeof *a);
    a->method = "dense";
    a->kf = 0.25f;
    a->df = 0.25f;
    a->basis = "post";
}

int cli_attn_opts(cli_attn_args *a, cli_opt *o) {
    const cli_opt opts[CLI_ATTN_N_OPTS] = {
        {NULL, "--attn", CLI_STR, &a->method, "METHOD", "dense|exact-topk|loki|pcaattn|h2o (default dense)"},
        {NULL, "--kf", CLI_FLOAT, &a->kf, "F", "fraction of cached tokens selected, (0,1] (default 0.25)"},
        {NULL, "--df", CLI_FLOAT, &a->df, "F", "fraction of head_dim for approximate scores, (0,1] (default 0.25)"},
        {NULL, "--d", CLI_INT, &a->d, "N", "reduced dimension (overrides --df)"},
        {NULL, "--dvar", CLI_FLOAT, &a->dvar, "V", "d per layer/head = rank at V% explained variance"},
        {NULL, "--pca", CLI_STR, &a->pca, "FILE", "PCA file from `loki calibrate` (loki, pcaattn)"},
        {NULL, "--basis", CLI_STR, &a->basis, "B", "pre|post: PCA of keys before/after RoPE (default post)"},
        {NULL, "--k-min", CLI_INT, &a->k_min, "N", "select at least N tokens (default 0: off)"},
        {NULL, "--dense-below", CLI_INT, &a->dense_below, "S", "dense attention while fewer than S tokens are cached"},
        {NULL, "--dense-prompt", CLI_FLAG, &a->dense_prompt, "", "prompts attend densely; decode steps use the method"},
        {NULL, "--sinks", CLI_INT, &a->sinks, "N", "always attend the first N tokens"},
        {NULL, "--recent", CLI_INT, &a->recent, "N", "always attend the last N tokens"},
        {NULL, "--gqa-shared", CLI_FLAG, &a->gqa_shared, "", "one selection per KV head (summed query-head scores)"},
        {NULL, "--gqa-max", CLI_FLAG, &a->gqa_max, "", "--gqa-shared ranking by each token's best head-relative score"},
        {NULL, "--evict-kf", CLI_FLOAT, &a->evict_kf, "F", "H2O eviction keeping F of the tokens, method selects among them"},
        {NULL, "--pca-any-model", CLI_FLAG, &a->pca_any_model, "", "accept a PCA file calibrated on other weights"},
        {"-ctk", "--cache-type-k", CLI_STR, &a->ctk, "T", CLI_CACHE_TYPE_HELP},
        {"-ctv", "--cache-type-v", CLI_STR, &a->ctv, "T", CLI_CACHE_TYPE_HELP},
        {NULL, "--device", CLI_STR, &a->device, "D", CLI_DEVICE_HELP},
    };
    memcpy(o, opts, sizeof opts);
    return CLI_ATTN_N_OPTS;
}

int cli_attn_params(const char *cmd, const cli_attn_args *a, const char *method, const loki_model *m,
                    loki_attn_params *p, loki_pca **pca_out) {
    loki_error err = {0};
    *pca_out = NULL;
    *p = loki_attn_default_params();
    const char *name = method ? method : a->method;
    int meth = loki_attn_method_parse(name);
    if (meth < 0) {
        fprintf(stderr, "loki %s: unknown --attn '%s' (dense, exact-topk, loki, pcaattn, h2o)\n", cmd, name);
        return 2;
    }
    p->method = (loki_attn_method)meth;
    if (!strcmp(a->basis, "pre")) {
        p->basis = LOKI_BASIS_PRE;
    } else if (!strcmp(a->basis, "post")) {
        p->basis = LOKI_BASIS_POST;
    } else {
        fprintf(stderr, "loki %s: --basis must be pre or post, got '%s'\n", cmd, a->basis);
        return 2;
    }
    if (a->dvar != 0.0f && !(a->dvar > 0.0f && a->dvar <= 100.0f)) {
        fprintf(stderr, "loki %s: --dvar must be a percentage in (0, 100], got %g\n", cmd, a->dvar);
        return 2;
    }
    p->kf = a->kf;
    p->df = a->df;
    p->d = a->d;
    p->dvar = a->dvar / 100.0f;
    p->k_min = a->k_min;
    p->dense_below = a->dense_below;
    p->dense_prompt = a->dense_prompt;
    p->sinks = a->sinks;
    p->recent = a->recent;
    p->gqa_shared = a->gqa_shared || a->gqa_max;
    p->gqa_max = a->gqa_max;
    p->evict_kf = a->evict_kf;
    bool needs_pca = p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_PCAATTN;
    if (a->pca_given) { /* the caller's basis (bench: synthetic for random weights) */
        p->pca = a->pca_given;
        needs_pca = false;
    }
    if (needs_pca && !a->pca) {
        fprintf(stderr, "loki %s: --attn %s needs a PCA file (--pca FILE, made by `loki calibrate`)\n", cmd, name);
        return 2;
    }
    if (needs_pca || (a->pca && a->dvar > 0)) {
        if (loki_pca_load(a->pca, a->pca_any_model ? NULL : m, pca_out, &err) != LOKI_OK) {
            fprintf(stderr, "loki %s: %s\n", cmd, err.msg);
            return 1;
        }
        p->pca = *pca_out;
    }
    if (loki_attn_validate(p, m, &err) != LOKI_OK) {
        fprintf(stderr, "loki %s: %s\n", cmd, err.msg);
        loki_pca_free(*pca_out);
        *pca_out = NULL;
        return 2;
    }
    return 0;
}

void cli_attn_describe(const loki_attn_params *p, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s", loki_attn_method_name(p->method));
    if (p->method != LOKI_ATTN_DENSE && p->method != LOKI_ATTN_PCAATTN)
        n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " kf=%g", p->kf);
    if (p->method == LOKI_ATTN_LOKI || p->method == LOKI_ATTN_PCAATTN) {
        if (p->dvar > 0)
            n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " dvar=%g%%", p->dvar * 100);
        else if (p->d > 0)
            n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " d=%d", p->d);
        else
            n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " df=%g", p->df);
        n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " basis=%s", p->basis == LOKI_BASIS_PRE ? "pre" : "post");
    }
    if (p->k_min) n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " k-min=%d", p->k_min);
    if (p->dense_below) n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " dense-below=%d", p->dense_below);
    if (p->dense_prompt) n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " dense-prompt");
    if (p->sinks) n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " sinks=%d", p->sinks);
    if (p->recent) n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " recent=%d", p->recent);
    if (p->gqa_shared) n += snprintf(buf + n, cap > (size_t)n ? cap - n : 0, p->gqa_max ? " gqa-max" : " gqa-shared");
    if (p->evict_kf > 0) snprintf(buf + n, cap > (size_t)n ? cap - n : 0, " evict-kf=%g", p->evict_kf);
}
