/*
 * chat.c - `loki run --chat` (see chat.h).
 *
 * Each turn renders the whole conversation with the template and feeds the
 * model only what the KV cache does not hold yet: the cache holds the text
 * `fed` (the last rendered prompt plus the reply generated after it), and
 * when the new rendering starts with `fed` only the rest is tokenized and
 * evaluated. When it does not (templates that trim or strip the reply, as
 * Llama-3 and Gemma do) the cache is emptied and the whole conversation
 * evaluated again, so the model always sees exactly the template's text.
 * BOS is never added by the tokenizer here: the template writes it when the
 * model wants it (transformers' apply_chat_template does the same).
 */
#include "cli/chat.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/template.h"
#include "core/common.h"
#include "core/strbuf.h"

/* The conversation so far: messages with owned contents. */
typedef struct convo {
    lk_chat_msg *msgs;
    int n, cap;
} convo;

/* Append a message: role is a string literal (kept), content is copied;
 * false when out of memory (the conversation is unchanged). */
static bool convo_add(convo *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        lk_chat_msg *m = realloc(c->msgs, (size_t)cap * sizeof *m);
        if (!m) return false;
        c->msgs = m;
        c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return false;
    c->msgs[c->n].role = role; /* string literals */
    c->msgs[c->n].content = copy;
    c->n++;
    return true;
}

/* Free the contents and the array. */
static void convo_free(convo *c) {
    for (int i = 0; i < c->n; i++) free((char *)c->msgs[i].content);
    free(c->msgs);
}

/* Text of token `id` with special tokens written out (for the cache
 * bookkeeping), into a malloc'ed string; NULL when none / out of memory. */
static char *token_text(const loki_model *m, int32_t id) {
    if (id < 0) return strdup("");
    char buf[256];
    int32_t n = loki_token_to_piece(m, -1, id, true, buf, (int32_t)sizeof buf);
    if (n < 0 || n >= (int32_t)sizeof buf) return strdup("");
    buf[n] = '\0';
    return strdup(buf);
}

/* The id of `text` when it is exactly one token (special tokens parsed), else -1. */
static int32_t single_token(const loki_model *m, const char *text) {
    int32_t ids[4], n = 0;
    if (!text[0] || loki_tokenize(m, text, strlen(text), false, true, ids, 4, &n, NULL) != LOKI_OK || n != 1)
        return -1;
    return ids[0];
}

/* Load the template (the model's or --chat-template-file) into *t; prints
 * the error and returns the exit code on failure. */
static int chat_template_load(const cli_chat_opts *o, loki_model *m, lk_chat_template *t) {
    loki_model_info info;
    loki_model_get_info(m, &info);
    loki_error err = {0};
    char *text = NULL, what[512];
    int rc = 1;
    if (o->template_file) {
        if (!(text = cli_read_text("run", o->template_file, NULL))) return 1;
        snprintf(what, sizeof what, "%s", o->template_file);
    } else {
        if (lk_chat_template_of_model(m, &text, &err) != LOKI_OK) {
            fprintf(stderr, "loki run: %s\n", err.msg);
            return 1;
        }
        if (!text) {
            fprintf(stderr, "loki run: --chat: the model has no chat template (no tokenizer.chat_template in a "
                            "GGUF, no chat_template in tokenizer_config.json or chat_template.jinja); give one "
                            "with --chat-template-file FILE, or run without --chat\n");
            return 1;
        }
        snprintf(what, sizeof what, "the model's tokenizer.chat_template");
    }
    char *bos = token_text(m, info.bos_id), *eos = token_text(m, info.eos_id);
    if (!bos || !eos) {
        fprintf(stderr, "loki run: out of memory\n");
    } else if (lk_chat_template_init(t, text, bos, eos, what, &err) != LOKI_OK) {
        fprintf(stderr, "loki run: %s\n", err.msg);
    } else {
        rc = 0;
    }
    free(bos);
    free(eos);
    free(text);
    return rc;
}

/* Evaluate `text` (special tokens parsed, no BOS added) at the end of the
 * cache and record its tokens in the sampler; *next: the first token of the
 * reply, sampled from the last one's logits (not sampled with -n 0).
 * *last: the last token of the text; *n_fed: its tokens (0: nothing done). */
static int feed(const cli_chat_opts *o, loki_model *m, loki_context *ctx, const char *text, int32_t *last,
                int32_t *next, int32_t *n_fed) {
    int32_t n = 0;
    int32_t *ids = cli_tokenize_text("run", m, text, false, &n);
    if (!ids) return 1;
    loki_error err = {0};
    int rc = 0;
    *n_fed = 0;
    if (n > 0 && loki_context_pos(ctx) + n > loki_context_n_ctx(ctx)) {
        fprintf(stderr, "loki run: the conversation needs %d tokens, more than the context of %d (raise -c)\n",
                loki_context_pos(ctx) + n, loki_context_n_ctx(ctx));
        rc = 1;
    } else if (n > 0 && (loki_context_sampler_accept(ctx, ids, n, &err) ||
                         (o->n_predict > 0 ? loki_eval_sample(ctx, ids, n, next, &err)
                                           : loki_eval(ctx, ids, n, false, &err)))) {
        fprintf(stderr, "loki run: %s\n", err.msg);
        rc = 1;
    } else if (n > 0) {
        *last = ids[n - 1];
        *n_fed = n;
    }
    free(ids);
    return rc;
}

/* Stream the reply that starts with tok (sampled after the fed prompt)
 * until EOS / end of turn / n_predict / a full context; collect its text
 * (special tokens written out) in *reply. Every kept token is evaluated, so
 * the cache holds the reply; the context samples the next one with it
 * (its stop tokens: EOS and end of turn, unless --ignore-eos), except after
 * the n_predict-th. *full: the context filled up. */
static int reply(const cli_chat_opts *o, loki_model *m, loki_context *ctx, int32_t prev, int32_t tok, int32_t eos,
                 int32_t eot, lk_strbuf *out, bool *full) {
    loki_error err = {0};
    char piece[256];
    int32_t n_gen = 0;
    double t0 = lk_time_s();
    *full = false;
    while (n_gen < o->n_predict) {
        if (!o->ignore_eos && (tok == eos || tok == eot)) break;
        int32_t len = loki_token_to_piece(m, prev, tok, false, piece, (int32_t)sizeof piece);
        if (len > 0) fwrite(piece, 1, (size_t)LK_MIN(len, (int32_t)sizeof piece), stdout);
        fflush(stdout);
        len = loki_token_to_piece(m, prev, tok, true, piece, (int32_t)sizeof piece);
        if (len > 0 && !lk_strbuf_put(out, piece, (size_t)LK_MIN(len, (int32_t)sizeof piece))) {
            fprintf(stderr, "\nloki run: out of memory\n");
            return 1;
        }
        prev = tok;
        if (loki_context_pos(ctx) >= loki_context_n_ctx(ctx)) {
            *full = true;
            break;
        }
        if ((n_gen + 1 < o->n_predict ? loki_eval_sample(ctx, &prev, 1, &tok, &err)
                                      : loki_eval(ctx, &prev, 1, false, &err)) != LOKI_OK) {
            fprintf(stderr, "\nloki run: %s\n", err.msg);
            return 1;
        }
        n_gen++;
    }
    double dt = lk_time_s() - t0;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "loki run: reply of %d tokens in %.3f s (%.1f tokens/s), %d of %d context tokens used\n", n_gen,
            dt, n_gen / (dt > 0 ? dt : 1e-9), loki_context_pos(ctx), loki_context_n_ctx(ctx));
    return 0;
}

/* One user turn: add the message, feed what the cache lacks, generate the
 * reply and add it. *stop: the conversation cannot go on (context full). */
static int turn(const cli_chat_opts *o, loki_model *m, loki_context *ctx,
                const lk_chat_template *t, convo *c, lk_strbuf *fed, int32_t eos, int32_t eot, const char *user,
                bool *stop) {
    loki_error err = {0};
    char *prompt = NULL;
    lk_strbuf out = {0};
    int rc = 1;
    if (!convo_add(c, "user", user)) goto oom;
    if (lk_chat_render(t, c->msgs, c->n, true, &prompt, &err) != LOKI_OK) {
        fprintf(stderr, "loki run: %s\n", err.msg);
        rc = 2;
        goto done;
    }
    const char *delta = prompt;
    if (fed->n > 0 && strncmp(prompt, fed->p, fed->n) == 0) {
        delta = prompt + fed->n;
    } else {
        loki_context_reset(ctx); /* the template rewrote the past: evaluate it all again */
        fed->n = 0;
    }
    int32_t last = -1, next = -1, n_fed = 0;
    double t0 = lk_time_s();
    if (feed(o, m, ctx, delta, &last, &next, &n_fed)) goto done;
    double dt = lk_time_s() - t0;
    fprintf(stderr, "loki run: prompt %d tokens in %.3f s (%.1f tokens/s)\n", n_fed, dt,
            n_fed / (dt > 0 ? dt : 1e-9));
    fed->n = 0;
    if (!lk_strbuf_put(fed, prompt, strlen(prompt))) goto oom;
    if (loki_context_pos(ctx) == 0 || n_fed == 0) {
        fprintf(stderr, loki_context_pos(ctx) == 0 ? "loki run: the chat template rendered an empty prompt\n"
                                                   : "loki run: the chat template added no text for the message\n");
        goto done;
    }
    if ((rc = reply(o, m, ctx, last, next, eos, eot, &out, stop))) goto done;
    if ((out.n && !lk_strbuf_put(fed, out.p, out.n)) || !convo_add(c, "assistant", out.p ? out.p : "")) goto oom;
    if (*stop)
        fprintf(stderr, "loki run: context full (%d tokens), ending the conversation (raise -c)\n",
                loki_context_n_ctx(ctx));
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "loki run: out of memory\n");
    rc = 1;
done:
    free(out.p);
    free(prompt);
    return rc;
}

int cli_chat(const cli_chat_opts *o, loki_model *m, loki_context *ctx) {
    lk_chat_template t;
    int rc = chat_template_load(o, m, &t);
    if (rc) return rc;
    loki_model_info info;
    loki_model_get_info(m, &info);
    int32_t eot = single_token(m, lk_chat_end_of_turn(&t));
    fprintf(stderr, "loki run: chat template family %s, turns end at %s%s\n", lk_chat_family_name(t.family),
            lk_chat_end_of_turn(&t), eot < 0 ? " (not a single token: stopping at EOS only)" : "");
    /* the sampler does not record the tokens a reply stops at */
    int32_t stops[2], n_stops = 0;
    if (!o->ignore_eos && info.eos_id >= 0) stops[n_stops++] = info.eos_id;
    if (!o->ignore_eos && eot >= 0 && eot != info.eos_id) stops[n_stops++] = eot;
    loki_error err = {0};
    if (loki_context_sampler_set_stop(ctx, stops, n_stops, &err) != LOKI_OK) {
        fprintf(stderr, "loki run: %s\n", err.msg);
        lk_chat_template_free(&t);
        return 1;
    }
    convo c = {0};
    lk_strbuf fed = {0};
    char *line = NULL;
    size_t line_cap = 0;
    bool stop = false;
    loki_context_reset(ctx);
    if (o->system && !convo_add(&c, "system", o->system)) {
        fprintf(stderr, "loki run: out of memory\n");
        rc = 1;
        goto done;
    }
    if (o->prompt) {
        rc = turn(o, m, ctx, &t, &c, &fed, info.eos_id, eot, o->prompt, &stop);
        goto done;
    }
    bool tty = isatty(STDIN_FILENO);
    while (!stop) {
        if (tty) fputs("> ", stderr);
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break; /* end of input */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if ((rc = turn(o, m, ctx, &t, &c, &fed, info.eos_id, eot, line, &stop))) break;
    }
done:
    free(line);
    free(fed.p);
    convo_free(&c);
    lk_chat_template_free(&t);
    return rc;
}
