/* fuzz_tokenize.c - tokenization of arbitrary bytes and detokenization of
 * arbitrary id sequences with every tokenizer kind: the vocabularies are
 * loaded once from LOKI_FUZZ_SHARED (default ../shared): every
 * tokenizers/ggml-vocab-*.gguf (SentencePiece llama-spm and phi-3; byte-level
 * BPE with the gpt-2, falcon, mpt, starcoder, refact, deepseek-coder ...
 * pre-tokenizers), the fixture's tokenizer.json and stories260K's tok512.bin.
 *
 * Input: byte 0 picks the vocabulary, byte 1 the mode (bit 0: detokenize,
 * bit 1: parse_special / special, bit 2: add_bos); the rest is the text, or
 * for detokenization little-endian int32 ids (any value, also out of range). */
#include <dirent.h>

#include "format/gguf.h"
#include "fuzz_util.h"
#include "tokenizer/vocab.h"

#define MAX_VOCABS 32
static lk_vocab vocabs[MAX_VOCABS];
static int n_vocabs;

static void add_gguf(const char *path) {
    lk_gguf g;
    loki_error err;
    if (n_vocabs == MAX_VOCABS || lk_gguf_open(path, &g, &err)) return;
    if (lk_vocab_from_gguf(&vocabs[n_vocabs], &g, &err) == LOKI_OK) n_vocabs++;
    else fprintf(stderr, "fuzz_tokenize: %s\n", err.msg);
    lk_gguf_close(&g);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *shared = getenv("LOKI_FUZZ_SHARED");
    if (!shared) shared = "../shared";
    char path[4096];
    loki_error err;
    snprintf(path, sizeof path, "%s/tokenizers", shared);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char names[MAX_VOCABS][256];
        int n = 0;
        while ((e = readdir(d)) && n < MAX_VOCABS) {
            size_t l = strlen(e->d_name);
            if (l > 5 && l < 256 && !strcmp(e->d_name + l - 5, ".gguf")) snprintf(names[n++], 256, "%s", e->d_name);
        }
        closedir(d);
        qsort(names, (size_t)n, 256, (int (*)(const void *, const void *))strcmp);
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/tokenizers/%s", shared, names[i]);
            add_gguf(path);
        }
    }
    snprintf(path, sizeof path, "%s/models/fixture-15m", shared);
    if (n_vocabs < MAX_VOCABS && lk_vocab_from_hf(&vocabs[n_vocabs], path, &err) == LOKI_OK) n_vocabs++;
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", shared);
    if (n_vocabs < MAX_VOCABS && lk_vocab_from_llama2c(&vocabs[n_vocabs], path, 512, &err) == LOKI_OK) n_vocabs++;
    fprintf(stderr, "fuzz_tokenize: %d vocabularies from %s\n", n_vocabs, shared);
    if (!n_vocabs) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const lk_vocab *v = &vocabs[data[0] % n_vocabs];
    int mode = data[1];
    data += 2, size -= 2;
    bool special = mode & 2;
    loki_error err;
    if (mode & 1) {
        int32_t n = (int32_t)(size / 4);
        int32_t *ids = malloc((size_t)n * 4 + 4);
        if (!ids) abort();
        memcpy(ids, data, (size_t)n * 4);
        int64_t need = lk_detokenize(v, ids, n, special, NULL, 0);
        if (need > 0 && need < (1 << 24)) {
            char *buf = malloc((size_t)need + 1);
            if (!buf) abort();
            lk_detokenize(v, ids, n, special, buf, need + 1);
            free(buf);
        }
        char piece[64];
        for (int32_t i = 0; i < n && i < 16; i++) lk_token_to_piece(v, i ? ids[i - 1] : -1, ids[i], special, piece, sizeof piece);
        free(ids);
    } else {
        int32_t cap = (int32_t)size + 8;
        int32_t *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) abort();
        int32_t n = 0;
        if (lk_tokenize(v, (const char *)data, size, mode & 4, special, ids, cap, &n, &err) == LOKI_OK) {
            for (int32_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= v->n_tokens) abort(); /* ids must be in the vocabulary */
        }
        free(ids);
    }
    return 0;
}
