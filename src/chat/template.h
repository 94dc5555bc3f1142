/*
 * template.h - chat prompts from a model's own chat template.
 *
 * A model ships its conversation format as a Jinja template (GGUF
 * `tokenizer.chat_template`, Hugging Face `tokenizer_config.json`'s
 * `chat_template` or `chat_template.jinja`). loki does not run Jinja: like
 * llama.cpp's llm_chat_detect_template, it recognises the template's family
 * from the markers in its text and renders conversations in that family's
 * format, taking the parts that vary between models of a family from the
 * template text itself (the default system prompt of a ChatML template, whether
 * the template emits bos_token, whether a Gemma template accepts a system
 * turn). Why not a Jinja interpreter: the families loki runs use a handful of
 * fixed layouts, while even the Jinja subset their templates use (loops,
 * slices, filters, tests, namespaces, raise_exception) would be a ~1500-line
 * interpreter of code that arrives inside untrusted model files; a template
 * outside the known families is a clear error instead of a silently wrong
 * prompt. tests/chat_template_ref.py renders the real template texts with
 * Python's jinja2 (as transformers' apply_chat_template does) and
 * tests/test_chat_template.c checks this module gives the same strings.
 *
 * Families (rendering of messages m[0..n) with add_generation_prompt g):
 *   CHATML  "<|im_start|>" role "\n" content "<|im_end|>\n" per message
 *           (content verbatim); a default system turn first when the template
 *           carries one and m[0] is not a system message; g: "<|im_start|>assistant\n".
 *   LLAMA2  system folded into the first user turn as "<<SYS>>\n" s
 *           "\n<</SYS>>\n\n"; user: bos "[INST] " strip(c) " [/INST]";
 *           assistant: " " strip(c) " " eos; roles must alternate user/assistant;
 *           g adds nothing (the template ignores it).
 *   LLAMA3  bos (first message only, when the template emits bos_token) then
 *           "<|start_header_id|>" role "<|end_header_id|>\n\n" trim(c) "<|eot_id|>";
 *           g: "<|start_header_id|>assistant<|end_header_id|>\n\n".
 *   GEMMA   bos (when emitted), then per message "<start_of_turn>" role "\n"
 *           trim(c) "<end_of_turn>\n" with role assistant -> "model"; a system
 *           message becomes the prefix s "\n\n" of the first user turn (Gemma 3)
 *           or is an error (Gemma 1/2: "System role not supported"); roles must
 *           alternate; g: "<start_of_turn>model\n".
 * strip/trim remove leading and trailing whitespace as Python's str.strip()
 * does (Unicode White_Space included).
 */
#ifndef LK_CHAT_TEMPLATE_H
#define LK_CHAT_TEMPLATE_H

#include "core/common.h"

typedef enum lk_chat_family {
    LK_CHAT_CHATML = 0,
    LK_CHAT_LLAMA2 = 1,
    LK_CHAT_LLAMA3 = 2,
    LK_CHAT_GEMMA = 3,
} lk_chat_family;

typedef struct lk_chat_template {
    lk_chat_family family;
    char *bos, *eos;         /* texts of the model's BOS/EOS tokens (owned, "" if none) */
    char *default_system;    /* CHATML: system turn used when m[0] is not one; NULL if none */
    bool emits_bos;          /* LLAMA2/LLAMA3/GEMMA: the template writes bos_token */
    bool system_allowed;     /* GEMMA: false when the template refuses a system turn */
} lk_chat_template;

typedef struct lk_chat_msg {
    const char *role;        /* "system", "user", "assistant" */
    const char *content;     /* UTF-8 */
} lk_chat_msg;

/* Recognise the family of template `text` and fill *t. bos/eos: the texts of
 * the model's BOS and EOS tokens (NULL = none). `what` names the template's
 * origin in messages (a file path, "MODEL: tokenizer.chat_template").
 * Unknown families are LOKI_ERR_UNSUPPORTED with a message naming the
 * supported ones. On failure *t is left zeroed (safe to free). */
loki_status lk_chat_template_init(lk_chat_template *t, const char *text, const char *bos,
                                  const char *eos, const char *what, loki_error *err);
void lk_chat_template_free(lk_chat_template *t);

/* Family name ("chatml", "llama2", "llama3", "gemma"). */
const char *lk_chat_family_name(lk_chat_family f);

/* Render messages m[0..n) (n >= 1) into a freshly malloc'ed NUL-terminated
 * *out. Errors (LOKI_ERR_ARG) are those the template itself would raise:
 * roles that do not alternate (LLAMA2, GEMMA), a system turn where the
 * template refuses one. */
loki_status lk_chat_render(const lk_chat_template *t, const lk_chat_msg *m, int n,
                           bool add_generation_prompt, char **out, loki_error *err);

/* The text that ends an assistant turn ("<|im_end|>", "<|eot_id|>",
 * "<end_of_turn>", or the EOS text for LLAMA2): generation stops there. */
const char *lk_chat_end_of_turn(const lk_chat_template *t);

/* The chat template stored with a model, or *out = NULL when it has none:
 * GGUF `tokenizer.chat_template`; for a Hugging Face directory
 * `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template`
 * (a string, or a list of {name, template} from which "default" is taken).
 * *out is malloc'ed. */
struct loki_model;
loki_status lk_chat_template_of_model(const struct loki_model *m, char **out, loki_error *err);
/* The chat_template of tokenizer_config.json text data[0..size) (read from
 * `path`, for messages) as above: *out malloc'ed, or NULL when it has none;
 * LOKI_ERR_FORMAT when the text is not a JSON object. */
loki_status lk_chat_template_from_config(const char *data, size_t size, const char *path, char **out,
                                         loki_error *err);

#endif /* LK_CHAT_TEMPLATE_H */
