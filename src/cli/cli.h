/* cli.h - subcommands of the `loki` tool and helpers they share. */
#ifndef LK_CLI_H
#define LK_CLI_H

#include "loki.h"
#include "core/common.h"

#include <stdio.h>

/* Each subcommand gets argv[0] = its own name; returns the process exit code
 * (0 ok, 1 runtime error, 2 usage error). */
int cli_run(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_calibrate(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_analyze(int argc, char **argv);
int cli_convert(int argc, char **argv);

/* Open a model, printing "loki CMD: <message>" on failure. */
loki_model *cli_open_model(const char *cmd, const char *path, const char *tokenizer);

/* Tokenize text into a freshly malloc'ed array; prints the error on failure. */
int32_t *cli_tokenize_text(const char *cmd, const loki_model *m, const char *text, bool add_bos,
                           int32_t *n_out);

/* A context of n_ctx tokens (0: the model's), n_batch, n_threads (0:
 * defaults), KV cache types tk/tv, with attention `attn` (NULL: dense);
 * prints the error and sets *rc (2 for a bad argument, else 1) on failure. */
loki_context *cli_make_context(const char *cmd, loki_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads,
                               loki_kv_type tk, loki_kv_type tv, loki_device dev, const loki_attn_params *attn,
                               int *rc);
/* As cli_make_context from filled params (cp->device LOKI_DEVICE_AUTO may
 * become CPU: when the GPU cannot run the model or the method, with a note). */
loki_context *cli_context_init(const char *cmd, loki_model *m, loki_context_params *cp, const loki_attn_params *attn,
                               int *rc);
/* Parse --device auto|cpu|cuda (NULL: auto, the GPU when one is present and
 * runs the model); prints "loki CMD: ..." and returns 2 when bad. */
int cli_device(const char *cmd, const char *s, loki_device *dev);
#define CLI_DEVICE_HELP "auto|cpu|cuda: where the model runs (default auto: the GPU when one is present)"

/* Parse --fused default|off|mha|per-head|all (also 0..3 for off .. all;
 * NULL: default): which Loki steps run as the GPU's fused kernel
 * (loki_cuda_fused); prints "loki CMD: ..." and returns 2 when bad. */
int cli_fused(const char *cmd, const char *s, loki_cuda_fused *mode);
/* The name of a loki_cuda_fused as --fused spells it. */
const char *cli_fused_name(loki_cuda_fused mode);
#define CLI_FUSED_HELP                                                                                             \
    "CUDA Loki steps as one kernel: mha (one query head per KV head), per-head (grouped heads too), all (and "   \
    "--gqa-shared), off (the separate stages) or default (this build's: mha); 0..3 = off .. all"


/* Help of -ctk/--cache-type-k and -ctv/--cache-type-v. */
#define CLI_CACHE_TYPE_HELP "KV cache type: f32, f16, bf16, q8_0 (default f16 where the CPU has F16C, else bf16)"

/* Parse -ctk / -ctv values (NULL: the default); prints "loki CMD: ..." naming
 * the option and the allowed values and returns 2 on a bad value, else 0. */
int cli_cache_types(const char *cmd, const char *ctk, const char *ctv, loki_kv_type *tk, loki_kv_type *tv);

/* `loki bench attention` (bench_attn.c); argv[0] = "attention". */
int cli_bench_attention(int argc, char **argv);

/* Mean and sample standard deviation of x (n). */
void cli_mean_std(const double *x, int n, double *mean, double *sd);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
void cli_utc_date(char *buf, size_t cap);

/* Read a whole text file (NUL-terminated); prints the error on failure. */
char *cli_read_text(const char *cmd, const char *path, size_t *len);

/* interrupt.c: catch SIGINT and SIGTERM for a command that writes a file;
 * returns the flag the handler sets (the signal number) for the long loops
 * and the atomic writers to poll. */
lk_stop_flag *cli_interrupt_install(void);
/* Print "interrupted" for `cmd` and return the exit code 128 + signal. */
int cli_interrupt_exit(const char *cmd, lk_stop_flag *stop);

#endif
