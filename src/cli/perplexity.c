/*
 * perplexity.c - `loki perplexity`: perplexity of a text file in
 * non-overlapping windows with any attention method, in prefill or decode mode.
 * The file is read with universal newlines, as Python's text mode does, so
 * figures compare with references computed that way.
 */
#include "cli/args.h"
#include "cli/attn_args.h"
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

/* Print the result as text or one JSON object. */
static void print_result(const lk_ppl_result *r, const lk_ppl_opts *o, const char *desc, int n_layer, bool json,
                         double secs) {
    bool dec = o->mode == LK_PPL_DECODE;
    if (json) {
        printf("{\"ppl\": %.6f, \"ppl_stderr\": %.6f, \"tokens\": %lld", r->ppl, r->ppl_stderr,
               (long long)r->tokens);
        if (o->ref) printf(", \"kl\": %.6g, \"top1\": %.6f", r->kl, r->top1);
        if (o->jaccard) {
            printf(", \"jaccard\": %.6f, \"jaccard_layer\": [", r->jaccard);
            for (int l = 0; l < n_layer; l++) printf("%s%.6f", l ? ", " : "", r->jaccard_layer[l]);
            printf("]");
        }
        if (dec) printf(", \"bytes_frac\": %.6f", r->bytes_frac);
        printf(", \"attn\": \"%s\", \"mode\": \"%s\", \"window\": %d, \"windows\": %lld, \"seconds\": %.1f}\n",
               desc, dec ? "decode" : "prefill", o->window, (long long)r->windows, secs);
        return;
    }
    printf("PPL = %.4f +/- %.4f over %lld tokens in %lld windows of %d (%s, %s mode, %.1f s)\n", r->ppl,
           r->ppl_stderr, (long long)r->tokens, (long long)r->windows, o->window, desc, dec ? "decode" : "prefill",
           secs);
    if (o->ref) printf("vs dense: mean KL %.6g nats/token, top-1 agreement %.4f\n", r->kl, r->top1);
    if (o->jaccard) {
        printf("Jaccard with the exact top-k: %.4f (per layer:", r->jaccard);
        for (int l = 0; l < n_layer; l++) printf(" %.3f", r->jaccard_layer[l]);
        printf(")\n");
    }
    if (dec) printf("KV bytes read: %.4f of dense attention's\n", r->bytes_frac);
}

int cli_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *tokenizer = NULL, *mode = "prefill", *compare = NULL;
    int32_t window = 4096, n_threads = 0, chunks = 0;
    bool json = false, jaccard = false;
    cli_attn_args attn;
    cli_attn_args_init(&attn);
    const cli_opt base[] = {
        {"-m", "--model", CLI_STR, &model, "MODEL", "GGUF file, Hugging Face directory or llama2.c .bin"},
        {"-f", "--file", CLI_STR, &file, "FILE", "text to evaluate"},
        {"-c", "--ctx-size", CLI_INT, &window, "N", "window length in tokens (default 4096)"},
        {NULL, "--chunks", CLI_INT, &chunks, "N", "evaluate only the first N windows (default: all)"},
        {NULL, "--mode", CLI_STR, &mode, "M", "prefill (one pass per window, paper) or decode (token by token)"},
        {NULL, "--compare", CLI_STR, &compare, "dense", "also run dense attention: mean KL and top-1 agreement"},
        {NULL, "--jaccard", CLI_FLAG, &jaccard, "", "mean Jaccard of the selected set with the exact top-k"},
        {"-t", "--threads", CLI_INT, &n_threads, "N", "compute threads (default: all CPUs)"},
        {NULL, "--tokenizer", CLI_STR, &tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"},
        {NULL, "--json", CLI_FLAG, &json, "", "print one JSON object {\"ppl\", \"ppl_stderr\", \"tokens\", ...}"},
    };
    enum { N_BASE = sizeof base / sizeof base[0] };
    cli_opt opts[N_BASE + CLI_ATTN_N_OPTS];
    memcpy(opts, base, sizeof base);
    int n_opts = N_BASE + cli_attn_opts(&attn, opts + N_BASE);
    const cli_spec spec = {"perplexity", "loki perplexity -m MODEL -f TEXT [options]",
                           "Perplexity of TEXT in non-overlapping windows of -c tokens: BOS only at the\n"
                           "start of the text, each window from an empty cache, every token after the\n"
                           "first of a window scored. --mode prefill applies the attention method to every\n"
                           "row of one forward pass with k = floor(kf * window) (the paper's evaluation);\n"
                           "--mode decode feeds tokens one at a time, k = floor(kf * S) of the S cached.\n"
                           "Progress goes to stderr.",
                           opts, n_opts, 0};
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
    lk_ppl_opts po = {.window = window, .max_windows = chunks, .jaccard = jaccard, .progress = progress_bar};
    if (!strcmp(mode, "decode")) {
        po.mode = LK_PPL_DECODE;
    } else if (strcmp(mode, "prefill")) {
        fprintf(stderr, "loki perplexity: --mode must be prefill or decode, got '%s'\n", mode);
        return 2;
    }
    if (compare && strcmp(compare, "dense")) {
        fprintf(stderr, "loki perplexity: --compare supports only 'dense', got '%s'\n", compare);
        return 2;
    }
    size_t len = 0;
    char *text = cli_read_text("perplexity", file, &len);
    if (!text) return 1;
    len = lk_text_universal_newlines(text, len);
    loki_model *m = NULL;
    loki_context *ctx = NULL, *ref = NULL;
    loki_pca *pca = NULL;
    int32_t *ids = NULL, n = 0;
    loki_error err = {0};
    loki_attn_params ap;
    rc = 1;
    if (!(m = cli_open_model("perplexity", model, tokenizer))) goto done;
    if ((rc = cli_attn_params("perplexity", &attn, NULL, m, &ap, &pca))) goto done;
    rc = 1;
    if (jaccard && ap.method != LOKI_ATTN_LOKI && ap.method != LOKI_ATTN_EXACT_TOPK && ap.method != LOKI_ATTN_H2O) {
        fprintf(stderr, "loki perplexity: --jaccard needs a selecting method (--attn loki, exact-topk or h2o)\n");
        rc = 2;
        goto done;
    }
    if (!(ids = cli_tokenize_text("perplexity", m, text, true, &n))) goto done;
    loki_kv_type tk, tv;
    loki_device dev;
    if ((rc = cli_cache_types("perplexity", attn.ctk, attn.ctv, &tk, &tv)) ||
        (rc = cli_device("perplexity", attn.device, &dev)))
        goto done;
    rc = 1;
    if (!(ctx = cli_make_context("perplexity", m, window, window, n_threads, tk, tv, dev, &ap, &rc))) goto done;
    /* the dense reference of --compare keeps the same cache types and device */
    if (compare && !(ref = cli_make_context("perplexity", m, window, window, n_threads, tk, tv, dev, NULL, &rc)))
        goto done;
    rc = 1;
    po.ref = ref;
    double t0 = lk_time_s();
    po.ud = &t0;
    lk_ppl_result r;
    if (lk_eval_perplexity(ctx, ids, n, &po, &r, &err) != LOKI_OK) {
        fprintf(stderr, "\nloki perplexity: %s\n", err.msg);
        goto done;
    }
    char desc[256];
    cli_attn_describe(&ap, desc, sizeof desc);
    loki_model_info info;
    loki_model_get_info(m, &info);
    print_result(&r, &po, desc, info.n_layer, json, lk_time_s() - t0);
    rc = 0;
done:
    free(ids);
    free(text);
    loki_context_free(ref);
    loki_context_free(ctx);
    loki_pca_free(pca);
    loki_model_close(m);
    return rc;
}
