/*
 * template.c - chat template family detection and rendering (template.h says
 * why detection rather than a Jinja interpreter, and what each family writes).
 */
#include "chat/template.h"
#include "core/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ strings */

/* Byte length of the Python-whitespace character at s[0..n) (str.isspace():
 * ASCII \t\n\v\f\r, \x1c-\x1f and space; U+0085, U+00A0, U+1680,
 * U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), 0 if none. */
static size_t ws_len(const unsigned char *s, size_t n) {
    if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))) return 1;
    if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (n >= 3 && s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 &&
        (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
        return 3;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;
    if (n >= 3 && s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;
    return 0;
}

/* Append s stripped of leading and trailing whitespace (Python str.strip()). */
static void sb_strip(lk_strbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), lo = 0, hi = n, k;
    while (lo < n && (k = ws_len(u + lo, n - lo))) lo += k;
    /* from the right: find the last non-whitespace character by walking forward */
    size_t i = lo, end = lo;
    while (i < n) {
        if ((k = ws_len(u + i, n - i))) {
            i += k;
        } else {
            i += (size_t)lk_utf8_len(u[i]);
            end = i < n ? i : n;
        }
    }
    hi = end;
    lk_strbuf_put(b, s + lo, hi > lo ? hi - lo : 0);
}

/* ------------------------------------------------------------ detection */

/* The default system prompt of a ChatML template: the rest of the string
 * literal that starts with '<|im_start|>system' + newline (a raw newline or
 * the escape \n) when that literal goes on to <|im_end|> without closing, as
 * in SmolLM2's `{{ '<|im_start|>system\nYou are ...<|im_end|>\n' }}` or
 * Qwen2.5's `else` branch. Jinja escapes \n \t \r \\ \' \" are decoded.
 * Returns LOKI_OK with *out = NULL when the template has none. */
#define CHATML_SYSTEM_HEAD "<|im_start|>system"

static loki_status chatml_default_system(const char *text, char **out, loki_error *err) {
    const char *head = CHATML_SYSTEM_HEAD;
    *out = NULL;
    for (const char *p = strstr(text, head); p; p = strstr(p + 1, head)) {
        if (p == text || (p[-1] != '\'' && p[-1] != '"')) continue;
        char quote = p[-1];
        const char *s = p + sizeof CHATML_SYSTEM_HEAD - 1;
        if (s[0] == '\n') s += 1;
        else if (s[0] == '\\' && s[1] == 'n') s += 2;
        else continue;
        const char *end = strstr(s, "<|im_end|>");
        if (!end) continue;
        const char *q = s;
        while (q < end && *q != quote) q += *q == '\\' && q[1] ? 2 : 1;
        if (q < end) continue; /* the literal closes first: '<|im_start|>system\n' + content */
        lk_strbuf b = {0};
        for (q = s; q < end; q++) {
            char c = *q;
            if (c == '\\' && q + 1 < end) {
                char e = *++q;
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                if (e != 'n' && e != 't' && e != 'r' && e != '\\' && e != '\'' && e != '"') lk_strbuf_put(&b, "\\", 1);
            }
            lk_strbuf_put(&b, &c, 1);
        }
        if (b.oom || !b.p) {
            free(b.p);
            if (b.oom) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory reading a chat template");
            b.p = calloc(1, 1); /* an empty default prompt */
            if (!b.p) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory reading a chat template");
        }
        *out = b.p;
        return LOKI_OK;
    }
    return LOKI_OK;
}

const char *lk_chat_family_name(lk_chat_family f) {
    switch (f) {
    case LK_CHAT_CHATML: return "chatml";
    case LK_CHAT_LLAMA2: return "llama2";
    case LK_CHAT_LLAMA3: return "llama3";
    case LK_CHAT_GEMMA: return "gemma";
    }
    return "?";
}

loki_status lk_chat_template_init(lk_chat_template *t, const char *text, const char *bos,
                                  const char *eos, const char *what, loki_error *err) {
    memset(t, 0, sizeof *t);
    if (!text || !text[0])
        return lk_fail(err, LOKI_ERR_ARG, "%s: the chat template is empty", what);
    lk_chat_template tmp = {0};
    loki_status st;
    /* Order as llama.cpp's detector: the most specific markers first. */
    if (strstr(text, "<|im_start|>")) {
        tmp.family = LK_CHAT_CHATML;
    } else if (strstr(text, "<|start_header_id|>") && strstr(text, "<|end_header_id|>")) {
        tmp.family = LK_CHAT_LLAMA3;
    } else if (strstr(text, "<start_of_turn>")) {
        tmp.family = LK_CHAT_GEMMA;
    } else if (strstr(text, "[INST]") && strstr(text, "<<SYS>>")) {
        tmp.family = LK_CHAT_LLAMA2;
    } else if (strstr(text, "[INST]")) {
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: an [INST] chat template without <<SYS>> (Mistral "
                       "style) is not supported; supported families: ChatML (<|im_start|>), Llama-2 "
                       "([INST] <<SYS>>), Llama-3 (<|start_header_id|>), Gemma (<start_of_turn>)", what);
    } else {
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: unrecognised chat template (supported families: "
                       "ChatML (<|im_start|>), Llama-2 ([INST] <<SYS>>), Llama-3 (<|start_header_id|>), "
                       "Gemma (<start_of_turn>)); give one with --chat-template-file", what);
    }
    tmp.emits_bos = strstr(text, "bos_token") != NULL;
    tmp.system_allowed = tmp.family != LK_CHAT_GEMMA || strstr(text, "first_user_prefix") != NULL;
    tmp.bos = strdup(bos ? bos : "");
    tmp.eos = strdup(eos ? eos : "");
    if (!tmp.bos || !tmp.eos) {
        st = lk_fail(err, LOKI_ERR_NOMEM, "out of memory reading a chat template");
        goto fail;
    }
    if (tmp.family == LK_CHAT_CHATML && (st = chatml_default_system(text, &tmp.default_system, err)))
        goto fail;
    *t = tmp;
    return LOKI_OK;
fail:
    lk_chat_template_free(&tmp);
    return st;
}

void lk_chat_template_free(lk_chat_template *t) {
    if (!t) return;
    free(t->bos);
    free(t->eos);
    free(t->default_system);
    memset(t, 0, sizeof *t);
}

const char *lk_chat_end_of_turn(const lk_chat_template *t) {
    switch (t->family) {
    case LK_CHAT_CHATML: return "<|im_end|>";
    case LK_CHAT_LLAMA3: return "<|eot_id|>";
    case LK_CHAT_GEMMA: return "<end_of_turn>";
    case LK_CHAT_LLAMA2: return t->eos;
    }
    return "";
}

/* ------------------------------------------------------------ rendering */

/* The alternation check of the Llama-2 and Gemma templates over the
 * messages after a leading system turn: message i (from 0) must be a user
 * turn exactly when i is even. */
static loki_status check_alternation(const lk_chat_msg *m, int n, int first, loki_error *err) {
    for (int i = first; i < n; i++) {
        bool user = strcmp(m[i].role, "user") == 0, even = (i - first) % 2 == 0;
        if (user != even)
            return lk_fail(err, LOKI_ERR_ARG, "chat: conversation roles must alternate "
                           "user/assistant/user/assistant/... (message %d is '%s')", i + 1, m[i].role);
    }
    return LOKI_OK;
}

static void render_chatml(const lk_chat_template *t, const lk_chat_msg *m, int n, bool gen, lk_strbuf *b) {
    if (t->default_system && strcmp(m[0].role, "system") != 0) {
        lk_strbuf_puts(b, "<|im_start|>system\n");
        lk_strbuf_puts(b, t->default_system);
        lk_strbuf_puts(b, "<|im_end|>\n");
    }
    for (int i = 0; i < n; i++) {
        lk_strbuf_puts(b, "<|im_start|>");
        lk_strbuf_puts(b, m[i].role);
        lk_strbuf_puts(b, "\n");
        lk_strbuf_puts(b, m[i].content);
        lk_strbuf_puts(b, "<|im_end|>\n");
    }
    if (gen) lk_strbuf_puts(b, "<|im_start|>assistant\n");
}

static void render_llama3(const lk_chat_template *t, const lk_chat_msg *m, int n, bool gen, lk_strbuf *b) {
    for (int i = 0; i < n; i++) {
        if (i == 0 && t->emits_bos) lk_strbuf_puts(b, t->bos);
        lk_strbuf_puts(b, "<|start_header_id|>");
        lk_strbuf_puts(b, m[i].role);
        lk_strbuf_puts(b, "<|end_header_id|>\n\n");
        sb_strip(b, m[i].content);
        lk_strbuf_puts(b, "<|eot_id|>");
    }
    if (gen) lk_strbuf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static loki_status render_llama2(const lk_chat_template *t, const lk_chat_msg *m, int n, lk_strbuf *b,
                                 loki_error *err) {
    int first = strcmp(m[0].role, "system") == 0 ? 1 : 0;
    loki_status st = check_alternation(m, n, first, err);
    if (st) return st;
    for (int i = first; i < n; i++) {
        lk_strbuf c = {0};
        if (i == first && first) {
            lk_strbuf_puts(&c, "<<SYS>>\n");
            lk_strbuf_puts(&c, m[0].content);
            lk_strbuf_puts(&c, "\n<</SYS>>\n\n");
        }
        lk_strbuf_puts(&c, m[i].content);
        if (c.oom) {
            free(c.p);
            b->oom = true;
            return LOKI_OK;
        }
        if (strcmp(m[i].role, "user") == 0) {
            if (t->emits_bos) lk_strbuf_puts(b, t->bos);
            lk_strbuf_puts(b, "[INST] ");
            sb_strip(b, c.p ? c.p : "");
            lk_strbuf_puts(b, " [/INST]");
        } else if (strcmp(m[i].role, "assistant") == 0) {
            lk_strbuf_puts(b, " ");
            sb_strip(b, c.p ? c.p : "");
            lk_strbuf_puts(b, " ");
            lk_strbuf_puts(b, t->eos);
        }
        free(c.p);
    }
    return LOKI_OK;
}

static loki_status render_gemma(const lk_chat_template *t, const lk_chat_msg *m, int n, bool gen, lk_strbuf *b,
                                loki_error *err) {
    int first = strcmp(m[0].role, "system") == 0 ? 1 : 0;
    if (first && !t->system_allowed)
        return lk_fail(err, LOKI_ERR_ARG, "chat: this Gemma chat template does not support a system "
                       "message (System role not supported)");
    loki_status st = check_alternation(m, n, first, err);
    if (st) return st;
    if (t->emits_bos) lk_strbuf_puts(b, t->bos);
    for (int i = first; i < n; i++) {
        lk_strbuf_puts(b, "<start_of_turn>");
        lk_strbuf_puts(b, strcmp(m[i].role, "assistant") == 0 ? "model" : m[i].role);
        lk_strbuf_puts(b, "\n");
        if (i == first && first) {
            lk_strbuf_puts(b, m[0].content);
            lk_strbuf_puts(b, "\n\n");
        }
        sb_strip(b, m[i].content);
        lk_strbuf_puts(b, "<end_of_turn>\n");
    }
    if (gen) lk_strbuf_puts(b, "<start_of_turn>model\n");
    return LOKI_OK;
}

loki_status lk_chat_render(const lk_chat_template *t, const lk_chat_msg *m, int n,
                           bool add_generation_prompt, char **out, loki_error *err) {
    if (n < 1) return lk_fail(err, LOKI_ERR_ARG, "chat: no messages to render");
    for (int i = 0; i < n; i++)
        if (!m[i].role || !m[i].content)
            return lk_fail(err, LOKI_ERR_ARG, "chat: message %d has no role or content", i + 1);
    lk_strbuf b = {0};
    loki_status st = LOKI_OK;
    switch (t->family) {
    case LK_CHAT_CHATML: render_chatml(t, m, n, add_generation_prompt, &b); break;
    case LK_CHAT_LLAMA3: render_llama3(t, m, n, add_generation_prompt, &b); break;
    case LK_CHAT_LLAMA2: st = render_llama2(t, m, n, &b, err); break;
    case LK_CHAT_GEMMA: st = render_gemma(t, m, n, add_generation_prompt, &b, err); break;
    }
    if (!st && b.oom) st = lk_fail(err, LOKI_ERR_NOMEM, "chat: out of memory rendering the conversation");
    if (!st && !b.p && !(b.p = calloc(1, 1)))
        st = lk_fail(err, LOKI_ERR_NOMEM, "chat: out of memory rendering the conversation");
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return LOKI_OK;
}
