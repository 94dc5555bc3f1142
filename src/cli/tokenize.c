/* tokenize.c - `loki tokenize`: print the token ids of a text. */
#include "cli/args.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL, *tokenizer = NULL;
    bool pieces = false, no_bos = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, "MODEL", "GGUF file, Hugging Face directory or llama2.c .bin"},
        {"-p", "--prompt", CLI_STR, &prompt, "TEXT", "text to tokenize"},
        {"-f", "--file", CLI_STR, &file, "FILE", "read the text from FILE instead"},
        {NULL, "--tokenizer", CLI_STR, &tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"},
        {NULL, "--pieces", CLI_FLAG, &pieces, "", "print one 'id -> piece' per line"},
        {NULL, "--no-bos", CLI_FLAG, &no_bos, "", "do not add BOS even if the model adds it"},
    };
    const cli_spec spec = {"tokenize", "loki tokenize -m MODEL -p TEXT [options]",
                           "Print the token ids of TEXT space-separated on one line (BOS included when\n"
                           "the model adds it). Special tokens written in the text are recognised.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    int rc = cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!prompt == !file) {
        fprintf(stderr, "loki tokenize: give exactly one of -p TEXT or -f FILE\n");
        return 2;
    }
    char *text = NULL;
    if (file && !(text = cli_read_text("tokenize", file, NULL))) return 1;
    loki_model *m = cli_open_model("tokenize", model, tokenizer);
    if (!m) { free(text); return 1; }
    int32_t n = 0;
    int32_t *ids = cli_tokenize_text("tokenize", m, text ? text : prompt, !no_bos, &n);
    if (!ids) { free(text); loki_model_close(m); return 1; }
    char piece[512];
    for (int32_t i = 0; i < n; i++) {
        if (pieces) {
            int32_t len = loki_token_to_piece(m, -1, ids[i], true, piece, (int32_t)sizeof piece);
            if (len > (int32_t)sizeof piece) len = (int32_t)sizeof piece;
            printf("%6d -> '%.*s'\n", ids[i], len, piece);
        } else {
            printf(i ? " %d" : "%d", ids[i]);
        }
    }
    if (!pieces) printf("\n");
    free(ids);
    free(text);
    loki_model_close(m);
    return 0;
}
