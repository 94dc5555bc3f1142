/* fuzz_tokenizer_json.c - tokenizer.json + tokenizer_config.json parsing
 * (lk_vocab_from_hf_json, the in-memory core of lk_vocab_from_hf). Input:
 * tokenizer.json text, optionally followed by a NUL and the
 * tokenizer_config.json text. A loaded vocabulary then tokenizes and
 * detokenizes a short fixed text. */
#include "fuzz_util.h"
#include "tokenizer/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t tsize = nul ? (size_t)(nul - data) : size;
    const char *cfg = nul ? (const char *)nul + 1 : NULL;
    size_t csize = nul ? size - tsize - 1 : 0;
    lk_vocab v;
    loki_error err;
    memset(&v, 0, sizeof v);
    if (lk_vocab_from_hf_json(&v, (const char *)data, tsize, cfg, csize, "fuzz/tokenizer.json", &err) == LOKI_OK) {
        static const char text[] = "Hello world! <|endoftext|> caf\xc3\xa9 123 <s>";
        int32_t ids[128], n = 0;
        if (lk_tokenize(&v, text, sizeof text - 1, true, true, ids, 128, &n, &err) == LOKI_OK) {
            char buf[512];
            lk_detokenize(&v, ids, n, true, buf, sizeof buf);
        }
        lk_vocab_free(&v);
    }
    return 0;
}
