/* fuzz_gguf.c - the GGUF reader (header, metadata, tensor table: lk_gguf_open
 * and its accessors), then the readers on top of it: the vocabulary
 * (lk_vocab_from_gguf) and the PCA file (loki_pca_load without a model). */
#include "calib/pca.h"
#include "format/gguf.h"
#include "fuzz_util.h"
#include "tokenizer/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    loki_error err;
    lk_gguf g;
    if (lk_gguf_open(path, &g, &err) == LOKI_OK) {
        volatile double sink = 0;
        for (uint64_t i = 0; i < g.n_kv; i++) {
            const lk_gguf_kv *kv = &g.kv[i];
            if (kv->type != LK_GGUF_ARRAY) continue;
            uint64_t n = kv->arr_n < 64 ? kv->arr_n : 64;
            for (uint64_t j = 0; j < n; j++) {
                if (kv->arr_type == LK_GGUF_STRING) sink += kv->arr_str[j].len ? (uint8_t)kv->arr_str[j].ptr[0] : 0;
                else if (kv->arr_type != LK_GGUF_ARRAY) sink += lk_gguf_arr_f64(kv, j);
            }
        }
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const lk_tensor *t = &g.tensors[i];
            if (t->nbytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
            lk_gguf_find_tensor(&g, t->name);
        }
        (void)sink;
        char buf[256];
        lk_gguf_get_cstr(&g, "general.architecture", buf, sizeof buf);
        lk_vocab v;
        memset(&v, 0, sizeof v);
        if (lk_vocab_from_gguf(&v, &g, &err) == LOKI_OK) lk_vocab_free(&v);
        lk_gguf_close(&g);
        loki_pca *p = NULL;
        if (loki_pca_load(path, NULL, &p, &err) == LOKI_OK) loki_pca_free(p);
    }
    close(fd);
    return 0;
}
