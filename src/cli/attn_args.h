/*
 * attn_args.h - the attention options every subcommand that runs the model
 * shares (--attn, --kf, --df, --d, --dvar, --pca, --basis and the options
 * beyond the paper). A command appends cli_attn_opts() to its option table,
 * then turns the parsed values into loki_attn_params with cli_attn_params().
 */
#ifndef LK_CLI_ATTN_ARGS_H
#define LK_CLI_ATTN_ARGS_H

#include "cli/args.h"
#include "loki.h"

#define CLI_ATTN_N_OPTS 19

typedef struct cli_attn_args {
    const char *method;   /* --attn */
    float kf, df;         /* --kf, --df */
    int32_t d;            /* --d */
    float dvar;           /* --dvar (percent) */
    const char *pca;      /* --pca */
    const char *basis;    /* --basis pre|post */
    int32_t k_min, dense_below, sinks, recent;
    bool gqa_shared, gqa_max;
    bool dense_prompt;    /* --dense-prompt */
    float evict_kf;
    bool pca_any_model;   /* --pca-any-model: skip the model fingerprint check */
    const char *ctk, *ctv; /* -ctk/--cache-type-k, -ctv/--cache-type-v (NULL: default) */
    const char *device;   /* --device auto|cpu|cuda (NULL: auto) */
    const loki_pca *pca_given; /* not NULL: the basis to use instead of loading --pca (set by the caller) */
} cli_attn_args;

/* Defaults: dense, kf 0.25, df 0.25, basis post. */
void cli_attn_args_init(cli_attn_args *a);

/* Write the attention options into opts (room for CLI_ATTN_N_OPTS entries);
 * returns how many were written. */
int cli_attn_opts(cli_attn_args *a, cli_opt *opts);

/* Build params from the parsed options, loading --pca (checked against the
 * model) into *pca_out (caller frees with loki_pca_free; NULL if none). The
 * method name may be overridden with `method` (NULL: a->method). Returns 0,
 * or the exit code (2 usage error, 1 runtime error) after printing
 * "loki CMD: message". */
int cli_attn_params(const char *cmd, const cli_attn_args *a, const char *method, const loki_model *m,
                    loki_attn_params *p, loki_pca **pca_out);

/* One line describing params, e.g. "loki kf=0.25 df=0.25 basis=post". */
void cli_attn_describe(const loki_attn_params *p, char *buf, size_t cap);

#endif
