/*
 * test_chat_template.c - chat template detection and rendering (src/chat/)
 * against strings Python's jinja2 rendered from the real template texts
 * (tests/data/chat/expected.json, written by tests/chat_template_ref.py; the
 * CLI test cli_chat.sh checks the fixture still regenerates identically).
 * Every case of the fixture must render byte for byte, and every case where
 * jinja2 raised (a system turn for Gemma 1, roles that do not alternate) must
 * fail here too. Needs no model.
 */
#include "test.h"

#include "chat/template.h"

#include <cjson/cJSON.h>

#define CHAT_DIR LOKI_SOURCE_DIR "/tests/data/chat"

/* Read CHAT_DIR/<name> as a NUL-terminated string (NULL if unreadable). */
static char *read_data(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CHAT_DIR, name);
    size_t n = 0;
    uint8_t *d = test_read_all(path, &n);
    if (d) d[n] = 0;
    return (char *)d;
}

/* Messages of conversation `conv` from the fixture into m (cap entries). */
static int load_conv(const cJSON *convs, const char *conv, lk_chat_msg *m, int cap) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(convs, conv), *it;
    int n = 0;
    cJSON_ArrayForEach(it, arr) {
        if (n == cap) break;
        m[n].role = cJSON_GetObjectItemCaseSensitive(it, "role")->valuestring;
        m[n].content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        n++;
    }
    return n;
}

static void test_fixture(void) {
    char *json = read_data("expected.json");
    CHECKF(json != NULL, "cannot read %s/expected.json", CHAT_DIR);
    if (!json) return;
    cJSON *doc = cJSON_Parse(json);
    CHECK(doc != NULL);
    const cJSON *tpls = cJSON_GetObjectItemCaseSensitive(doc, "templates");
    const cJSON *convs = cJSON_GetObjectItemCaseSensitive(doc, "conversations");
    const cJSON *c;
    int n_cases = 0, n_errors = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const char *tname = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
        const char *conv = cJSON_GetObjectItemCaseSensitive(c, "conversation")->valuestring;
        bool gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "output");
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(tpls, tname);
        char *text = read_data(cJSON_GetObjectItemCaseSensitive(tp, "file")->valuestring);
        CHECKF(text != NULL, "template %s unreadable", tname);
        lk_chat_template t;
        loki_error err = {0};
        loki_status st = lk_chat_template_init(&t, text, cJSON_GetObjectItemCaseSensitive(tp, "bos")->valuestring,
                                               cJSON_GetObjectItemCaseSensitive(tp, "eos")->valuestring,
                                               tname, &err);
        CHECKF(st == LOKI_OK, "%s: %s", tname, err.msg);
        lk_chat_msg m[16];
        int n = load_conv(convs, conv, m, 16);
        char *out = NULL;
        if (st == LOKI_OK) st = lk_chat_render(&t, m, n, gen, &out, &err);
        if (cJSON_IsString(want)) {
            CHECKF(st == LOKI_OK, "%s/%s gen=%d: %s", tname, conv, gen, err.msg);
            CHECKF(out && strcmp(out, want->valuestring) == 0, "%s/%s gen=%d:\n got  [%s]\n want [%s]", tname,
                   conv, gen, out ? out : "(null)", want->valuestring);
        } else {
            CHECKF(st == LOKI_ERR_ARG && out == NULL, "%s/%s: jinja2 raised '%s', loki gave status %d", tname,
                   conv, cJSON_GetObjectItemCaseSensitive(c, "error")->valuestring, (int)st);
            CHECKF(strstr(err.msg, "chat:") != NULL, "error message: %s", err.msg);
            n_errors++;
        }
        free(out);
        lk_chat_template_free(&t);
        free(text);
        n_cases++;
    }
    CHECKF(n_cases >= 60, "only %d fixture cases", n_cases);
    CHECKF(n_errors >= 4, "only %d error cases", n_errors);
    cJSON_Delete(doc);
    free(json);
}

static void test_detection(void) {
    lk_chat_template t;
    loki_error err = {0};
    /* families and their end-of-turn markers */
    struct { const char *file, *family, *eot; } fam[] = {
        {"smollm2.jinja", "chatml", "<|im_end|>"}, {"llama2.jinja", "llama2", "</s>"},
        {"llama3.jinja", "llama3", "<|eot_id|>"},   {"gemma3.jinja", "gemma", "<end_of_turn>"},
    };
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        char *text = read_data(fam[i].file);
        CHECK_OK(lk_chat_template_init(&t, text, "<s>", "</s>", fam[i].file, &err));
        CHECKF(strcmp(lk_chat_family_name(t.family), fam[i].family) == 0, "%s: %s", fam[i].file,
               lk_chat_family_name(t.family));
        CHECKF(strcmp(lk_chat_end_of_turn(&t), fam[i].eot) == 0, "%s: %s", fam[i].file, lk_chat_end_of_turn(&t));
        lk_chat_template_free(&t);
        free(text);
    }
    /* SmolLM2's default system prompt is read from the template text */
    char *text = read_data("smollm2.jinja");
    CHECK_OK(lk_chat_template_init(&t, text, NULL, NULL, "smollm2", &err));
    CHECKF(t.default_system && strcmp(t.default_system, "You are a helpful AI assistant named SmolLM, "
                                      "trained by Hugging Face") == 0, "%s", t.default_system);
    lk_chat_template_free(&t);
    free(text);
    /* ... and an escaped one (Qwen2.5 style: \n escapes, the default in an else branch) */
    const char *qwen = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]"
                       "['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, "
                       "created by Alibaba Cloud.\\tIt\\'s ok.<|im_end|>\\n' }}{%- endif %}";
    CHECK_OK(lk_chat_template_init(&t, qwen, NULL, NULL, "qwen", &err));
    CHECKF(t.default_system && strcmp(t.default_system, "You are Qwen, created by Alibaba Cloud.\tIt's ok.") == 0,
           "%s", t.default_system ? t.default_system : "(none)");
    lk_chat_template_free(&t);
    /* a plain ChatML template has none */
    text = read_data("chatml.jinja");
    CHECK_OK(lk_chat_template_init(&t, text, NULL, NULL, "chatml", &err));
    CHECK(t.default_system == NULL);
    lk_chat_template_free(&t);
    free(text);

    /* unknown families and empty templates are clear errors */
    loki_status st = lk_chat_template_init(&t, "{{ 'User: ' + messages[0]['content'] }}", NULL, NULL, "x.jinja", &err);
    CHECK(st == LOKI_ERR_UNSUPPORTED);
    CHECKF(strstr(err.msg, "x.jinja") && strstr(err.msg, "unrecognised") && strstr(err.msg, "ChatML"), "%s", err.msg);
    st = lk_chat_template_init(&t, "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
                               NULL, NULL, "mistral", &err);
    CHECK(st == LOKI_ERR_UNSUPPORTED);
    CHECKF(strstr(err.msg, "Mistral") != NULL, "%s", err.msg);
    CHECK(lk_chat_template_init(&t, "", NULL, NULL, "empty", &err) == LOKI_ERR_ARG);
    CHECK(lk_chat_template_init(&t, NULL, NULL, NULL, "null", &err) == LOKI_ERR_ARG);

    /* rendering needs at least one message, each with role and content */
    text = read_data("llama3.jinja");
    CHECK_OK(lk_chat_template_init(&t, text, "<|begin_of_text|>", "<|eot_id|>", "llama3", &err));
    char *out = NULL;
    CHECK(lk_chat_render(&t, NULL, 0, true, &out, &err) == LOKI_ERR_ARG && out == NULL);
    lk_chat_msg bad = {"user", NULL};
    CHECK(lk_chat_render(&t, &bad, 1, true, &out, &err) == LOKI_ERR_ARG && out == NULL);
    /* trim: whitespace-only content renders as empty */
    lk_chat_msg ws = {"user", " \t\n\xe3\x80\x80"};
    CHECK_OK(lk_chat_render(&t, &ws, 1, false, &out, &err));
    CHECKF(out && strcmp(out, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>") == 0, "%s", out);
    free(out);
    lk_chat_template_free(&t);
    free(text);
}

int main(void) {
    test_fixture();
    test_detection();
    return test_finish();
}
