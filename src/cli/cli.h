/* cli.h - subcommands of the `loki` tool and their shared option parsing. */
#ifndef LK_CLI_H
#define LK_CLI_H

#include "loki.h"

/* Each subcommand gets argv[0] = its own name; returns the process exit code. */
int cli_run(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_bench(int argc, char **argv);

#endif
