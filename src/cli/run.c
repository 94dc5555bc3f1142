/*
 * run.c - `loki run`: generate text from a prompt. The prompt is echoed, the
 * generated text streams to stdout token by token, statistics go to stderr.
 */
#include "cli/args.h"
#include "cli/attn_args.h"
#include "cli/chat.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/common.h"
#include "sample/sampler.h"

typedef struct run_opts {
    const char *model, *prompt, *file, *tokenizer;
    const char *system, *chat_template_file;
    bool chat;
    int32_t n_predict, n_ctx, n_threads, n_batch;
    loki_sampler_params sp;
    bool ignore_eos, no_bos;
    cli_attn_args attn;
} run_opts;

/* Generate up to o->n_predict tokens after the prompt; returns exit code.
 * The context samples (loki_eval_sample: on the GPU only the chosen token
 * comes back each step), with EOS as its stop token unless --ignore-eos. */
static int generate(const run_opts *o, loki_model *m, loki_context *ctx, const int32_t *prompt, int32_t n_prompt) {
    loki_error err = {0};
    double t0 = lk_time_s();
    int32_t tok = -1;
    loki_status st = loki_context_sampler_accept(ctx, prompt, n_prompt, &err);
    if (!st) /* -n 0: nothing to sample */
        st = o->n_predict > 0 ? loki_eval_sample(ctx, prompt, n_prompt, &tok, &err)
                              : loki_eval(ctx, prompt, n_prompt, false, &err);
    if (st != LOKI_OK) {
        fprintf(stderr, "\nloki run: %s\n", err.msg);
        return 1;
    }
    double t_prompt = lk_time_s() - t0;
    loki_model_info info;
    loki_model_get_info(m, &info);
    int32_t prev = prompt[n_prompt - 1], n_gen = 0;
    char piece[256];
    double t1 = lk_time_s();
    while (n_gen < o->n_predict) {
        if (!o->ignore_eos && tok == info.eos_id) break;
        int32_t len = loki_token_to_piece(m, prev, tok, false, piece, (int32_t)sizeof piece);
        if (len > 0) fwrite(piece, 1, (size_t)LK_MIN(len, (int32_t)sizeof piece), stdout);
        fflush(stdout);
        n_gen++;
        prev = tok;
        if (n_gen == o->n_predict) break;
        if (loki_context_pos(ctx) >= loki_context_n_ctx(ctx)) {
            fprintf(stderr, "\nloki run: context full (%d tokens), stopping\n", loki_context_n_ctx(ctx));
            break;
        }
        if (loki_eval_sample(ctx, &prev, 1, &tok, &err) != LOKI_OK) {
            fprintf(stderr, "\nloki run: %s\n", err.msg);
            return 1;
        }
    }
    double t_gen = lk_time_s() - t1;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "loki run: prompt %d tokens in %.3f s (%.1f tokens/s), generated %d tokens in %.3f s (%.1f tokens/s)\n",
            n_prompt, t_prompt, n_prompt / (t_prompt > 0 ? t_prompt : 1e-9), n_gen, t_gen,
            n_gen / (t_gen > 0 ? t_gen : 1e-9));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "loki run: KV cache %.1f MiB, peak RSS %.1f MiB\n", loki_context_kv_bytes(ctx) / 1048576.0,
            ru.ru_maxrss / 1024.0);
    return 0;
}

int cli_run(int argc, char **argv) {
    run_opts o = {.n_predict = 256, .sp = loki_sampler_default_params()};
    o.sp.seed = (uint64_t)time(NULL);
    cli_attn_args_init(&o.attn);
    const cli_opt base[] = {
        {"-m", "--model", CLI_STR, &o.model, "MODEL", "GGUF file, Hugging Face directory or llama2.c .bin"},
        {"-p", "--prompt", CLI_STR, &o.prompt, "TEXT", "prompt text"},
        {"-f", "--file", CLI_STR, &o.file, "FILE", "read the prompt from FILE"},
        {"-n", "--n-predict", CLI_INT, &o.n_predict, "N", "tokens to generate (default 256)"},
        {"-c", "--ctx-size", CLI_INT, &o.n_ctx, "N", "context length (default: prompt + -n tokens; with --chat the model's, at most 8192)"},
        {"-t", "--threads", CLI_INT, &o.n_threads, "N", "compute threads (default: all CPUs)"},
        {"-b", "--batch-size", CLI_INT, &o.n_batch, "N", "prompt tokens per forward pass (default 512)"},
        {NULL, "--temp", CLI_FLOAT, &o.sp.temp, "T", "temperature; 0 = greedy (default 0.8)"},
        {NULL, "--top-k", CLI_INT, &o.sp.top_k, "K", "keep the K most likely tokens; 0 = off (default 40)"},
        {NULL, "--top-p", CLI_FLOAT, &o.sp.top_p, "P", "nucleus sampling; 1 = off (default 0.95)"},
        {NULL, "--min-p", CLI_FLOAT, &o.sp.min_p, "P", "drop tokens below P x the top probability (default 0.05)"},
        {NULL, "--repeat-penalty", CLI_FLOAT, &o.sp.repeat_penalty, "F", "penalise recent tokens; 1 = off (default 1)"},
        {NULL, "--repeat-last-n", CLI_INT, &o.sp.repeat_last_n, "N", "window of the repeat penalty (default 64)"},
        {NULL, "--seed", CLI_U64, &o.sp.seed, "S", "random seed (default: time)"},
        {NULL, "--tokenizer", CLI_STR, &o.tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"},
        {NULL, "--ignore-eos", CLI_FLAG, &o.ignore_eos, "", "keep generating after end-of-sequence"},
        {NULL, "--no-bos", CLI_FLAG, &o.no_bos, "", "do not add BOS even if the model adds it"},
        {"-cnv", "--chat", CLI_FLAG, &o.chat, "", "chat in the model's own chat template: -p/-f is one user "
         "message, else one message per stdin line"},
        {"-sys", "--system", CLI_STR, &o.system, "TEXT", "--chat: system message"},
        {NULL, "--chat-template-file", CLI_STR, &o.chat_template_file, "FILE",
         "--chat: Jinja chat template to use instead of the model's"},
    };
    enum { N_BASE = sizeof base / sizeof base[0] };
    cli_opt opts[N_BASE + CLI_ATTN_N_OPTS];
    memcpy(opts, base, sizeof base);
    int n_opts = N_BASE + cli_attn_opts(&o.attn, opts + N_BASE);
    const cli_spec spec = {"run", "loki run -m MODEL -p PROMPT [options]",
                           "Generate text. The prompt is echoed and the continuation streams to stdout;\n"
                           "timings go to stderr. Sampling order: repeat penalty, top-k, temperature,\n"
                           "top-p, min-p. With --chat only the replies go to stdout; the template's family\n"
                           "(ChatML, Llama-2, Llama-3, Gemma) is recognised from its text.",
                           opts, n_opts, 0};
    int rc = cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (o.chat ? (o.prompt && o.file) : !o.prompt == !o.file) {
        fprintf(stderr, o.chat ? "loki run: give at most one of -p PROMPT or -f FILE with --chat\n"
                               : "loki run: give exactly one of -p PROMPT or -f FILE (or --chat)\n");
        return 2;
    }
    if (!o.chat && (o.system || o.chat_template_file)) {
        fprintf(stderr, "loki run: %s needs --chat\n", o.system ? "--system" : "--chat-template-file");
        return 2;
    }
    if (o.n_predict < 0) {
        fprintf(stderr, "loki run: -n must be >= 0, got %d\n", o.n_predict);
        return 2;
    }
    loki_kv_type tk, tv;
    loki_device dev;
    if (cli_cache_types("run", o.attn.ctk, o.attn.ctv, &tk, &tv) || cli_device("run", o.attn.device, &dev)) return 2;
    char *text = NULL;
    if (o.file && !(text = cli_read_text("run", o.file, NULL))) return 1;
    const char *prompt = text ? text : o.prompt;
    loki_model *m = NULL;
    loki_context *ctx = NULL;
    loki_pca *pca = NULL;
    int32_t *ids = NULL, n = 0;
    loki_error err = {0};
    rc = 1;
    if (lk_sampler_params_check(&o.sp, &err) != LOKI_OK) {
        fprintf(stderr, "loki run: %s\n", err.msg);
        rc = 2;
        goto done;
    }
    if (!(m = cli_open_model("run", o.model, o.tokenizer))) goto done;
    loki_model_info info;
    loki_model_get_info(m, &info);
    loki_attn_params ap;
    if ((rc = cli_attn_params("run", &o.attn, NULL, m, &ap, &pca))) goto done;
    rc = 1;
    if (!o.chat) {
        if (!(ids = cli_tokenize_text("run", m, prompt, !o.no_bos, &n))) goto done;
        if (n == 0) {
            fprintf(stderr, "loki run: the prompt is empty and the model adds no BOS token\n");
            goto done;
        }
    }
    /* the KV cache is allocated up front: without -c, what this run needs
     * (prompt + -n tokens), never more than the model's trained length */
    int32_t n_ctx = o.n_ctx;
    if (n_ctx == 0 && !o.chat) n_ctx = (int32_t)LK_MIN((int64_t)n + o.n_predict, (int64_t)LK_MAX(info.n_ctx_train, n));
    if (!(ctx = cli_make_context("run", m, n_ctx, o.n_batch, o.n_threads, tk, tv, dev, &ap, &rc))) goto done;
    fprintf(stderr, "loki run: KV cache %d tokens, K %s, V %s: %.1f MiB\n", loki_context_n_ctx(ctx),
            loki_kv_type_name(tk), loki_kv_type_name(tv), loki_context_kv_bytes(ctx) / 1048576.0);
    if (loki_context_sampler_init(ctx, &o.sp, &err) != LOKI_OK ||
        (!o.chat && !o.ignore_eos && info.eos_id >= 0 && loki_context_sampler_set_stop(ctx, &info.eos_id, 1, &err))) {
        fprintf(stderr, "loki run: %s\n", err.msg);
        goto done;
    }
    if (o.chat) {
        cli_chat_opts co = {prompt, o.system, o.chat_template_file, o.n_predict, o.ignore_eos};
        rc = cli_chat(&co, m, ctx);
        goto done;
    }
    rc = 1;
    if (n > loki_context_n_ctx(ctx)) {
        fprintf(stderr, "loki run: the prompt is %d tokens, longer than the context of %d (raise -c)\n", n,
                loki_context_n_ctx(ctx));
        goto done;
    }
    fputs(prompt, stdout);
    rc = generate(&o, m, ctx, ids, n);
done:
    free(ids);
    free(text);
    loki_context_free(ctx);
    loki_pca_free(pca);
    loki_model_close(m);
    return rc;
}
