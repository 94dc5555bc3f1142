/* fuzz_hf_config.c - config.json / generation_config.json parsing
 * (lk_hf_config_parse, the in-memory core of lk_hf_config_load). */
#include "format/hf_config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_hf_config cfg;
    loki_error err;
    memset(&cfg, 0, sizeof cfg);
    lk_hf_config_parse((const char *)data, size, "fuzz/config.json", &cfg, &err);
    return 0;
}
