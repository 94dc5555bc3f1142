/* fuzz_chat.c - the chat-template recogniser and renderer (src/chat/:
 * lk_chat_template_init, lk_chat_render, lk_chat_end_of_turn).
 * Input: NUL-separated fields: template text, BOS text, EOS text, then
 * (role, content) pairs, at most 16 messages; add_generation_prompt is set
 * when the number of fields is even. */
#include "chat/template.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_strndup(data, size);
    const char *f[3 + 32];
    int nf = 0;
    for (size_t i = 0; i <= size && nf < 3 + 32;) {
        f[nf++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    lk_chat_template t;
    loki_error err;
    if (lk_chat_template_init(&t, f[0], nf > 1 ? f[1] : NULL, nf > 2 ? f[2] : NULL, "fuzz.jinja", &err) == LOKI_OK) {
        lk_chat_msg m[16];
        int n = 0;
        for (int i = 3; i + 1 < nf && n < 16; i += 2) m[n++] = (lk_chat_msg){f[i], f[i + 1]};
        if (n == 0) m[n++] = (lk_chat_msg){"user", "Hi"};
        char *out = NULL;
        if (lk_chat_render(&t, m, n, nf % 2 == 0, &out, &err) == LOKI_OK) free(out);
        (void)lk_chat_end_of_turn(&t);
        (void)lk_chat_family_name(t.family);
        lk_chat_template_free(&t);
    }
    free(buf);
    return 0;
}
