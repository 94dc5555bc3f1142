#include "cli/cli.h"
#include <stdio.h>
int cli_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "loki bench: not built yet\n"); return 2; }
