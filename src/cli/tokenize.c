#include "cli/cli.h"
#include <stdio.h>
int cli_tokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "loki tokenize: not built yet\n"); return 2; }
