/* fuzz_tokenizer_config.c - tokenizer_config.json on its own: the chat
 * template it carries (lk_chat_template_from_config, the in-memory core of
 * lk_chat_template_of_model for Hugging Face directories), recognised and
 * rendered for one exchange, and its token overrides (add_bos_token,
 * bos/eos/unk/pad names) applied to a fixed small BPE tokenizer.json
 * (lk_vocab_from_hf_json), which then tokenizes a fixed text.
 * Input: the tokenizer_config.json text. */
#include "chat/template.h"
#include "fuzz_util.h"
#include "tokenizer/vocab.h"

static const char tokenizer_json[] =
    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"<|endoftext|>\":4,\"<s>\":5,"
    "\"</s>\":6},\"merges\":[\"a b\"]},\"added_tokens\":[{\"id\":4,\"content\":\"<|endoftext|>\",\"special\":true},"
    "{\"id\":5,\"content\":\"<s>\",\"special\":true},{\"id\":6,\"content\":\"</s>\",\"special\":true}],"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *cfg = (const char *)data;
    loki_error err;
    char *tpl = NULL;
    if (lk_chat_template_from_config(cfg, size, "fuzz/tokenizer_config.json", &tpl, &err) == LOKI_OK && tpl) {
        lk_chat_template t;
        if (lk_chat_template_init(&t, tpl, "<s>", "</s>", "fuzz/tokenizer_config.json", &err) == LOKI_OK) {
            const lk_chat_msg m[2] = {{"user", "Hi"}, {"assistant", "Hello"}};
            char *out = NULL;
            if (lk_chat_render(&t, m, 2, true, &out, &err) == LOKI_OK) free(out);
            lk_chat_template_free(&t);
        }
    }
    free(tpl);
    lk_vocab v;
    memset(&v, 0, sizeof v);
    if (lk_vocab_from_hf_json(&v, tokenizer_json, sizeof tokenizer_json - 1, cfg, size, "fuzz/tokenizer.json",
                              &err) == LOKI_OK) {
        static const char text[] = "ab a<s>b</s> <|endoftext|>";
        int32_t ids[64], n = 0;
        if (lk_tokenize(&v, text, sizeof text - 1, true, true, ids, 64, &n, &err) == LOKI_OK) {
            char buf[256];
            lk_detokenize(&v, ids, n, true, buf, sizeof buf);
        }
        lk_vocab_free(&v);
    }
    return 0;
}
