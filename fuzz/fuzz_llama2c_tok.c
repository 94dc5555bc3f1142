/* fuzz_llama2c_tok.c - the llama2.c tokenizer reader (lk_vocab_from_llama2c,
 * tok512.bin / tokenizer.bin). The first 2 input bytes choose the vocabulary
 * size the checkpoint would declare (little-endian, 1..65536); the rest is the
 * tokenizer file. A loaded vocabulary is then exercised on a short text. */
#include "fuzz_util.h"
#include "tokenizer/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int32_t n_vocab = (int32_t)(data[0] | (data[1] << 8)) + 1;
    char path[64];
    int fd = fuzz_memfd(data + 2, size - 2, path, sizeof path);
    loki_error err;
    lk_vocab v;
    memset(&v, 0, sizeof v);
    if (lk_vocab_from_llama2c(&v, path, n_vocab, &err) == LOKI_OK) {
        int32_t ids[64], n = 0;
        static const char text[] = "Once upon a time, <s> \xe2\x96\x81 \xff\x00 x";
        lk_tokenize(&v, text, sizeof text - 1, true, true, ids, 64, &n, &err);
        char buf[256];
        lk_detokenize(&v, ids, n, true, buf, sizeof buf);
        lk_vocab_free(&v);
    }
    close(fd);
    return 0;
}
