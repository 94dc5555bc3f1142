#include "cli/cli.h"
#include <stdio.h>
int cli_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "loki run: not built yet\n"); return 2; }
