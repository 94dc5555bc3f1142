/* fuzz_safetensors.c - the safetensors header reader (lk_st_open_files: header
 * length, JSON header, dtypes, data_offsets), then every tensor by name. */
#include "format/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    const char *paths[1] = {path};
    loki_error err;
    lk_st_set *s = NULL;
    if (lk_st_open_files(paths, 1, &s, &err) == LOKI_OK) {
        volatile unsigned sink = 0;
        for (int64_t i = 0; i < s->n_entries; i++) {
            lk_tensor t;
            if (lk_st_get(s, s->entries[i].t.name, true, &t, &err) == LOKI_OK && t.data && t.nbytes)
                sink += ((const uint8_t *)t.data)[t.nbytes - 1];
        }
        (void)sink;
        lk_st_free(s);
    }
    close(fd);
    return 0;
}
