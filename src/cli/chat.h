/*
 * chat.h - `loki run --chat`: conversations in the model's own chat template
 * (src/chat/template.h), one-shot (-p / -f) or turn by turn from stdin.
 */
#ifndef LK_CLI_CHAT_H
#define LK_CLI_CHAT_H

#include "loki.h"

typedef struct cli_chat_opts {
    const char *prompt;        /* the one user message, or NULL: one message per stdin line */
    const char *system;        /* system message, or NULL (the template's default, if any) */
    const char *template_file; /* template text to use instead of the model's, or NULL */
    int32_t n_predict;         /* most tokens per reply */
    bool ignore_eos;           /* do not stop at EOS / end of turn */
} cli_chat_opts;

/* Run the conversation on an empty context whose sampler is set up
 * (loki_context_sampler_init; this sets its stop tokens); replies stream to
 * stdout, timings and errors go to stderr ("loki run: ..."). Returns the exit
 * code: 0, 1 (runtime error, no template, template not recognised), 2 (bad
 * input). */
int cli_chat(const cli_chat_opts *o, loki_model *m, loki_context *ctx);

#endif /* LK_CLI_CHAT_H */
