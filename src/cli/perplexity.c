/*
 * perplexity.c - `loki perplexity`: perplexity of a text file in
 * non-overlapping windows (dense attention; sparse methods follow in issue 3).
 * The file is read with universal newlines, as Python's text mode does, so
 * figures compare with references computed that way.
 */
#include "cli/args.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "eval/eval.h"

/* Progress bar on stderr: [#####.....] done/total */
static void progress_bar(void *ud, int64_t done, int64_t total) {
    double t0 = *(double *)ud, el = lk_time_s() - t0;
    int width = 30, filled = (int)(width * done / (total ? total : 1));
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld windows, %.0f s, ETA %.0f s ", filled,
            "##############################", width - filled, "", (long long)done, (long long)total, el,
            done ? el * (double)(total - done) / (double)done : 0.0);
    if (done == total) fputc('\n', stderr);
}

int cli_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *tokenizer = NULL;
    int32_t window = 4096, n_threads = 0, chunks = 0;
    bool json = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, "MODEL", "GGUF file, Hugging Face directory or llama2.c .bin"},
        {"-f", "--file", CLI_STR, &file, "FILE", "text to evaluate"},
        {"-c", "--ctx-size", CLI_INT, &window, "N", "window length in tokens (default 4096)"},
        {NULL, "--chunks", CLI_INT, &chunks, "N", "evaluate only the first N windows (default: all)"},
        {"-t", "--threads", CLI_INT, &n_threads, "N", "compute threads (default: all CPUs)"},
        {NULL, "--tokenizer", CLI_STR, &tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"},
        {NULL, "--json", CLI_FLAG, &json, "", "print {\"ppl\", \"ppl_stderr\", \"tokens\"} as JSON"},
    };
    const cli_spec spec = {"perplexity", "loki perplexity -m MODEL -f TEXT [options]",
                           "Perplexity of TEXT in non-overlapping windows of -c tokens: BOS only at the\n"
                           "start of the text, each window one forward pass from an empty cache, every\n"
                           "token after the first of a window scored. Progress goes to stderr.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    int rc = cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!file) {
        fprintf(stderr, "loki perplexity: no text given (-f FILE)\n");
        return 2;
    }
    if (window < 2 || chunks < 0 || n_threads < 0) {
        fprintf(stderr, "loki perplexity: -c must be >= 2, --chunks and -t >= 0\n");
        return 2;
    }
    size_t len = 0;
    char *text = cli_read_text("perplexity", file, &len);
    if (!text) return 1;
    len = lk_text_universal_newlines(text, len);
    loki_model *m = NULL;
    loki_context *ctx = NULL;
    int32_t *ids = NULL, n = 0;
    loki_error err = {0};
    rc = 1;
    if (!(m = cli_open_model("perplexity", model, tokenizer))) goto done;
    if (!(ids = cli_tokenize_text("perplexity", m, text, true, &n))) goto done;
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = window;
    cp.n_batch = window;
    cp.n_threads = n_threads;
    if (loki_context_init(m, &cp, &ctx, &err) != LOKI_OK) {
        fprintf(stderr, "loki perplexity: %s\n", err.msg);
        goto done;
    }
    double t0 = lk_time_s();
    lk_ppl_result r;
    if (lk_eval_perplexity(ctx, ids, n, window, chunks, progress_bar, &t0, &r, &err) != LOKI_OK) {
        fprintf(stderr, "\nloki perplexity: %s\n", err.msg);
        goto done;
    }
    if (json)
        printf("{\"ppl\": %.6f, \"ppl_stderr\": %.6f, \"tokens\": %lld}\n", r.ppl, r.ppl_stderr,
               (long long)r.tokens);
    else
        printf("PPL = %.4f +/- %.4f over %lld tokens in %lld windows of %d (%.1f s)\n", r.ppl, r.ppl_stderr,
               (long long)r.tokens, (long long)r.windows, window, lk_time_s() - t0);
    rc = 0;
done:
    free(ids);
    free(text);
    loki_context_free(ctx);
    loki_model_close(m);
    return rc;
}
