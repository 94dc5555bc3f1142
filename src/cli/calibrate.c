/*
 * calibrate.c - `loki calibrate`: PCA of a model's keys (before and after
 * RoPE) over a calibration text, written as a PCA file (docs/PCA.md) for
 * the loki / pcaattn attention methods.
 *
 * The text is read with universal newlines (like `loki perplexity`), BOS
 * prepended once, and cut into non-overlapping windows of -c tokens; each
 * window is one evaluation from an empty cache with key accumulation on
 * (ctx->calib), so every key is computed at the position it would have in a
 * -c context. The file is written atomically: no partial output on failure.
 */
#include "cli/args.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib/analyze.h"
#include "calib/pca.h"
#include "core/common.h"
#include "engine/engine.h"
#include "eval/eval.h"

#define CALIB_MAX_BATCH 1024 /* tokens per forward pass; keys do not depend on it */

/* Progress bar on stderr: [#####.....] done/total */
static void progress_bar(double t0, int64_t done, int64_t total) {
    double el = lk_time_s() - t0;
    int width = 30, filled = (int)(width * done / (total ? total : 1));
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld windows, %.0f s, ETA %.0f s ", filled,
            "##############################", width - filled, "", (long long)done, (long long)total, el,
            done ? el * (double)(total - done) / (double)done : 0.0);
    if (done == total) fputc('\n', stderr);
}

/* Last component of a path (trailing slashes ignored) into buf. */
static void path_basename(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), path + s);
}

/* Can `path` be created? Its directory must exist and be writable and the
 * path must not be a directory. Prints the problem; returns false if not. */
static bool output_ok(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "loki calibrate: -o %s: is a directory (give a file name, e.g. %s/model.pca.gguf)\n", path,
                path);
        return false;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        fprintf(stderr, "loki calibrate: out of memory\n");
        return false;
    }
    bool ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK) == 0;
    if (!ok)
        fprintf(stderr, "loki calibrate: -o %s: directory '%s' %s\n", path, dir,
                stat(dir, &st) != 0 ? "does not exist" : !S_ISDIR(st.st_mode) ? "is not a directory" : "is not writable");
    free(dir);
    return ok;
}

/* Evaluate every window with key accumulation on, `batch` tokens per call
 * (appended at the current position, so the keys are those of one call per
 * window) with the stop flag polled between calls; prints errors other than
 * a stop. Returns LOKI_OK, LOKI_ERR_INTERRUPTED or the failing status. */
static loki_status run_windows(loki_context *ctx, lk_calib *c, const int32_t *ids, int32_t n, int32_t window,
                               int32_t batch, int64_t n_windows, lk_stop_flag *stop) {
    loki_error err = {0};
    double t0 = lk_time_s();
    ctx->calib = c;
    loki_status st = LOKI_OK;
    for (int64_t w = 0; w < n_windows && !st; w++) {
        int64_t off = w * window;
        int32_t len = (int32_t)LK_MIN((int64_t)window, n - off);
        loki_context_reset(ctx);
        for (int32_t done = 0; done < len && !st; done += batch) {
            if ((st = lk_check_stop(stop, "calibrate", &err))) break;
            if ((st = loki_eval(ctx, ids + off + done, LK_MIN(batch, len - done), false, &err)))
                fprintf(stderr, "\nloki calibrate: window %lld: %s\n", (long long)w, err.msg);
        }
        if (!st) progress_bar(t0, w + 1, n_windows);
    }
    /* the GPU's statistics are on the device until now */
    loki_status fs = lk_context_calib_flush(ctx, &err);
    if (fs && !st) {
        fprintf(stderr, "\nloki calibrate: %s\n", err.msg);
        st = fs;
    }
    ctx->calib = NULL;
    return st;
}

int cli_calibrate(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *tokenizer = NULL, *output = NULL, *device = NULL;
    int32_t window = 4096, n_threads = 0, chunks = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, "MODEL", "GGUF file, Hugging Face directory or llama2.c .bin"},
        {"-f", "--file", CLI_STR, &file, "FILE", "calibration text"},
        {"-o", "--output", CLI_STR, &output, "PCA.gguf", "PCA file to write (atomically)"},
        {"-c", "--ctx-size", CLI_INT, &window, "N", "window length in tokens (default 4096)"},
        {NULL, "--chunks", CLI_INT, &chunks, "N", "use only the first N windows (default: all)"},
        {"-t", "--threads", CLI_INT, &n_threads, "N", "compute threads (default: all CPUs)"},
        {NULL, "--tokenizer", CLI_STR, &tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"},
        {NULL, "--device", CLI_STR, &device, "D", CLI_DEVICE_HELP},
    };
    const cli_spec spec = {"calibrate", "loki calibrate -m MODEL -f TEXT -o PCA.gguf [options]",
                           "PCA of the model's keys before and after RoPE, per layer and KV head, over TEXT\n"
                           "in non-overlapping windows of -c tokens (BOS at the start of the text, each window\n"
                           "from an empty cache). Writes the PCA file that --attn loki/pcaattn read (docs/PCA.md)\n"
                           "and prints the mean Rank@90; `loki analyze` shows the rest. Progress goes to stderr.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    int rc = cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    const char *missing = !model ? "no model given (-m MODEL)" : !file ? "no calibration text given (-f FILE)"
                          : !output ? "no output file given (-o PCA.gguf)" : NULL;
    if (missing) {
        fprintf(stderr, "loki calibrate: %s\n", missing);
        return 2;
    }
    if (window < 2 || chunks < 0 || n_threads < 0) {
        fprintf(stderr, "loki calibrate: -c must be >= 2, --chunks and -t >= 0 (got -c %d, --chunks %d, -t %d)\n",
                window, chunks, n_threads);
        return 2;
    }
    loki_device dev;
    if (cli_device("calibrate", device, &dev)) return 2;
    if (!output_ok(output)) return 1;
    lk_stop_flag *stop = cli_interrupt_install();

    loki_model *m = NULL;
    loki_context *ctx = NULL;
    lk_calib *calib = NULL;
    loki_pca *pca = NULL;
    lk_rank_stats stats = {0};
    int32_t *ids = NULL, n = 0;
    loki_error err = {0};
    size_t len = 0;
    rc = 1;
    char *text = cli_read_text("calibrate", file, &len);
    if (!text) goto done;
    char text_sha[LK_FINGERPRINT_HEX];
    lk_sha256_hex(text, len, text_sha);  /* of the raw bytes, before newline normalisation */
    text[lk_text_universal_newlines(text, len)] = '\0';
    if (!(m = cli_open_model("calibrate", model, tokenizer))) goto done;
    if (!(ids = cli_tokenize_text("calibrate", m, text, true, &n))) goto done;
    if (n < 2) {
        fprintf(stderr, "loki calibrate: %s: the text gives %d token(s), at least 2 are needed\n", file, n);
        goto done;
    }
    int64_t n_windows = ((int64_t)n + window - 1) / window;
    if (chunks > 0 && chunks < n_windows) n_windows = chunks;
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = window;
    cp.n_batch = LK_MIN(window, CALIB_MAX_BATCH);
    cp.type_k = cp.type_v = LOKI_KV_F32; /* calibration keeps the float cache: PCA files reproduce */
    cp.n_threads = n_threads;
    cp.device = dev; /* the GPU's cache is bf16 whatever type_k says */
    const lk_hparams *hp = &m->hp;
    double t0 = lk_time_s();
    if (!(ctx = cli_context_init("calibrate", m, &cp, NULL, &rc))) goto done;
    rc = 1;
    if (lk_calib_init(&calib, hp->n_layer, hp->n_head_kv, hp->head_dim, &err) ||
        lk_pca_init(&pca, hp->n_layer, hp->n_head_kv, hp->head_dim, &err)) {
        fprintf(stderr, "loki calibrate: %s\n", err.msg);
        goto done;
    }
    loki_status st = run_windows(ctx, calib, ids, n, window, cp.n_batch, n_windows, stop);
    if (st == LOKI_ERR_INTERRUPTED) rc = cli_interrupt_exit("calibrate", stop);
    if (st) goto done;
    if (lk_calib_finish(calib, pca, &err) || lk_model_fingerprint(m, pca->fingerprint, &err)) {
        fprintf(stderr, "loki calibrate: %s\n", err.msg);
        goto done;
    }
    path_basename(model, pca->model_name, sizeof pca->model_name);
    path_basename(file, pca->calib_file, sizeof pca->calib_file);
    memcpy(pca->calib_sha256, text_sha, sizeof text_sha);
    pca->calib_tokens = lk_calib_count(calib);
    pca->calib_window = window;
    pca->swa_window = hp->swa_window;
    pca->swa_pattern = hp->swa_pattern;
    if ((st = lk_pca_save(pca, output, stop, &err)) == LOKI_ERR_INTERRUPTED) {
        rc = cli_interrupt_exit("calibrate", stop);
        goto done;
    }
    if (st || lk_rank_stats_compute(pca, 90.0, &stats, &err)) {
        fprintf(stderr, "loki calibrate: %s\n", err.msg);
        goto done;
    }
    printf("calibrated %s on %lld tokens of %s (%lld windows of %d, %.1f s)\n", pca->model_name,
           (long long)pca->calib_tokens, pca->calib_file, (long long)n_windows, window, lk_time_s() - t0);
    printf("mean Rank@90 over %d layers x %d KV heads (head_dim %d): pre-RoPE %.2f +/- %.2f, post-RoPE %.2f +/- %.2f\n",
           hp->n_layer, hp->n_head_kv, hp->head_dim, stats.mean[LOKI_BASIS_PRE], stats.std[LOKI_BASIS_PRE],
           stats.mean[LOKI_BASIS_POST], stats.std[LOKI_BASIS_POST]);
    if (stats.n_used < hp->n_layer) {
        printf("Loki uses the PCA of %d of %d layers:", stats.n_used, hp->n_layer);
        for (int l = 0; l < hp->n_layer; l++)
            if (stats.used[l]) printf(" %d", l);
        printf(" (global; mean Rank@90 pre-RoPE %.2f, post-RoPE %.2f); the other %d are sliding-window layers "
               "(window %d) that attend densely, calibrated for `loki analyze` only\n",
               stats.used_mean[LOKI_BASIS_PRE], stats.used_mean[LOKI_BASIS_POST], hp->n_layer - stats.n_used,
               hp->swa_window);
    }
    printf("wrote %s\n", output);
    rc = 0;
done:
    lk_rank_stats_free(&stats);
    loki_pca_free(pca);
    lk_calib_free(calib);
    free(ids);
    free(text);
    loki_context_free(ctx);
    loki_model_close(m);
    return rc;
}
