/* fuzz_model.c - whole-model loading from one file (loki_model_open: format
 * sniffing, then the GGUF loader with its hyperparameters, tensor shapes and
 * vocabulary, or the llama2.c checkpoint loader with stories260K's
 * tok512.bin from LOKI_FUZZ_SHARED as its tokenizer), then the model's chat
 * template (lk_chat_template_of_model). Weights are mapped, never copied. */
#include "chat/template.h"
#include "fuzz_util.h"
#include "loki.h"

static char tok_path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *shared = getenv("LOKI_FUZZ_SHARED");
    snprintf(tok_path, sizeof tok_path, "%s/models/stories260K/tok512.bin", shared ? shared : "../shared");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    loki_model_params params = {tok_path};
    loki_model *m = NULL;
    loki_error err;
    if (loki_model_open(path, &params, &m, &err) == LOKI_OK) {
        loki_model_info info;
        loki_model_get_info(m, &info);
        char *tmpl = NULL;
        if (lk_chat_template_of_model(m, &tmpl, &err) == LOKI_OK) free(tmpl);
        loki_model_close(m);
    }
    close(fd);
    return 0;
}
