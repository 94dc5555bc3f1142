/*
 * args.h - table-driven option parsing shared by the subcommands. Each
 * subcommand declares its options once; the same table drives parsing,
 * validation messages and --help.
 */
#ifndef LK_CLI_ARGS_H
#define LK_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cli_opt_kind {
    CLI_STR,   /* const char ** */
    CLI_INT,   /* int32_t * */
    CLI_FLOAT, /* float * */
    CLI_U64,   /* uint64_t * */
    CLI_FLAG,  /* bool * (no value) */
} cli_opt_kind;

typedef struct cli_opt {
    const char *short_name; /* "-m" or NULL */
    const char *long_name;  /* "--model" */
    cli_opt_kind kind;
    void *dst;
    const char *metavar;    /* "FILE" */
    const char *help;
} cli_opt;

typedef struct cli_spec {
    const char *name;       /* "run" */
    const char *usage;      /* "loki run -m MODEL -p PROMPT [options]" */
    const char *about;      /* one paragraph */
    const cli_opt *opts;
    int n_opts;
    int max_positional;     /* positional arguments accepted */
} cli_spec;

/* Parse argv (argv[0] = subcommand name). Returns 0 on success, 1 when --help
 * was printed (exit 0), 2 on a usage error (message printed to stderr). */
int cli_parse(const cli_spec *spec, int argc, char **argv, const char **positional, int *n_positional);
void cli_print_help(const cli_spec *spec, FILE *f);

#endif
