/* fuzz_llama2c.c - the llama2.c checkpoint header reader (lk_l2c_plausible,
 * lk_l2c_parse over the input as the mapped file). */
#include "format/llama2c.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_mapped_file f = {size ? data : NULL, size};
    lk_l2c_config cfg;
    loki_error err;
    if (size >= LK_L2C_HEADER_BYTES) (void)lk_l2c_plausible(data, size);
    if (lk_l2c_parse(&f, "fuzz.bin", &cfg, &err) == LOKI_OK) {
        /* every offset the parser reports must lie inside the file */
        if (cfg.off_wcls > size || cfg.off_rms_final > size || cfg.file_size != size) abort();
    }
    return 0;
}
