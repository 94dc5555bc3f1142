/* common.c - helpers shared by the subcommands: model opening, tokenizing,
 * reading text files, with errors printed as "loki CMD: message". */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "core/common.h"

loki_model *cli_open_model(const char *cmd, const char *path, const char *tokenizer) {
    if (!path) {
        fprintf(stderr, "loki %s: no model given (-m MODEL: a GGUF file, a Hugging Face directory or a llama2.c .bin)\n", cmd);
        return NULL;
    }
    loki_model_params mp = {.tokenizer_path = tokenizer};
    loki_model *m = NULL;
    loki_error err = {0};
    if (loki_model_open(path, &mp, &m, &err) != LOKI_OK) {
        fprintf(stderr, "loki %s: %s\n", cmd, err.msg);
        return NULL;
    }
    return m;
}

int32_t *cli_tokenize_text(const char *cmd, const loki_model *m, const char *text, bool add_bos,
                           int32_t *n_out) {
    size_t len = strlen(text);
    int32_t cap = (int32_t)LK_MIN(len + 16, (size_t)INT32_MAX / 8);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    loki_error err = {0};
    int32_t n = 0;
    if (!ids) {
        fprintf(stderr, "loki %s: out of memory\n", cmd);
        return NULL;
    }
    loki_status st = loki_tokenize(m, text, len, add_bos, true, ids, cap, &n, &err);
    if (st == LOKI_ERR_RANGE && n > cap) {
        int32_t *bigger = realloc(ids, sizeof(int32_t) * (size_t)n);
        if (!bigger) { free(ids); fprintf(stderr, "loki %s: out of memory\n", cmd); return NULL; }
        ids = bigger;
        st = loki_tokenize(m, text, len, add_bos, true, ids, n, &n, &err);
    }
    if (st != LOKI_OK) {
        fprintf(stderr, "loki %s: %s\n", cmd, err.msg);
        free(ids);
        return NULL;
    }
    *n_out = n;
    return ids;
}

char *cli_read_text(const char *cmd, const char *path, size_t *len) {
    char *data = NULL;
    size_t n = 0;
    loki_error err = {0};
    if (lk_read_file(path, &data, &n, &err) != LOKI_OK) {
        fprintf(stderr, "loki %s: %s\n", cmd, err.msg);
        return NULL;
    }
    if (len) *len = n;
    return data;
}

int cli_device(const char *cmd, const char *s, loki_device *dev) {
    *dev = LOKI_DEVICE_AUTO;
    if (!s || !strcmp(s, "auto")) return 0;
    if (!strcmp(s, "cpu") || !strcmp(s, "cuda")) {
        *dev = !strcmp(s, "cpu") ? LOKI_DEVICE_CPU : LOKI_DEVICE_CUDA;
        return 0;
    }
    fprintf(stderr, "loki %s: --device must be auto, cpu or cuda, got '%s'\n", cmd, s);
    return 2;
}

/* --fused's values by loki_cuda_fused, each with its number (none for default) */
static const char *const fused_names[5][2] = {
    {"default", "default"}, {"off", "0"}, {"mha", "1"}, {"per-head", "2"}, {"all", "3"}};

int cli_fused(const char *cmd, const char *s, loki_cuda_fused *mode) {
    *mode = LOKI_CUDA_FUSED_DEFAULT;
    if (!s) return 0;
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, fused_names[i][0]) || !strcmp(s, fused_names[i][1])) {
            *mode = (loki_cuda_fused)i;
            return 0;
        }
    fprintf(stderr, "loki %s: --fused must be default, off, mha, per-head or all (or 0..3), got '%s'\n", cmd, s);
    return 2;
}

const char *cli_fused_name(loki_cuda_fused mode) {
    return (int)mode >= 0 && (int)mode < 5 ? fused_names[mode][0] : "default";
}

/* Context and attention method; LOKI_ERR_UNSUPPORTED from the GPU under
 * --device auto falls back to the CPU with a note. */
loki_context *cli_context_init(const char *cmd, loki_model *m, loki_context_params *cp, const loki_attn_params *attn,
                               int *rc) {
    loki_context *ctx = NULL;
    loki_error err = {0};
    loki_status st = loki_context_init(m, cp, &ctx, &err);
    if (!st && attn) st = loki_context_set_attn(ctx, attn, &err);
    if (st == LOKI_ERR_UNSUPPORTED && cp->device == LOKI_DEVICE_AUTO && ctx &&
        loki_context_device(ctx, NULL) == LOKI_DEVICE_CUDA) {
        fprintf(stderr, "loki %s: the GPU cannot run this: %s; running on the CPU\n", cmd, err.msg);
        loki_context_free(ctx);
        ctx = NULL;
        cp->device = LOKI_DEVICE_CPU;
        st = loki_context_init(m, cp, &ctx, &err);
        if (!st && attn) st = loki_context_set_attn(ctx, attn, &err);
    }
    if (st) {
        fprintf(stderr, "loki %s: %s\n", cmd, err.msg);
        *rc = err.status == LOKI_ERR_ARG ? 2 : 1;
        loki_context_free(ctx);
        return NULL;
    }
    const char *why = NULL;
    if (loki_context_device(ctx, &why) == LOKI_DEVICE_CPU && why)
        fprintf(stderr, "loki %s: the GPU cannot run this model: %s; running on the CPU\n", cmd, why);
    return ctx;
}

loki_context *cli_make_context(const char *cmd, loki_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads,
                               loki_kv_type tk, loki_kv_type tv, loki_device dev, const loki_attn_params *attn,
                               int *rc) {
    loki_context_params cp = loki_context_default_params();
    cp.device = dev;
    cp.n_ctx = n_ctx;
    cp.type_k = tk;
    cp.type_v = tv;
    cp.n_batch = n_batch;
    cp.n_threads = n_threads;
    return cli_context_init(cmd, m, &cp, attn, rc);
}

static int parse_cache_type(const char *cmd, const char *opt, const char *s, loki_kv_type *t) {
    *t = LOKI_KV_DEFAULT;
    if (!s) return 0;
    int v = loki_kv_type_parse(s);
    if (v < 0) {
        fprintf(stderr, "loki %s: %s must be one of " LOKI_KV_TYPE_NAMES " (default %s), got '%s'\n", cmd, opt,
                loki_kv_type_name(LOKI_KV_DEFAULT), s);
        return 2;
    }
    *t = (loki_kv_type)v;
    return 0;
}

int cli_cache_types(const char *cmd, const char *ctk, const char *ctv, loki_kv_type *tk, loki_kv_type *tv) {
    if (parse_cache_type(cmd, "-ctk/--cache-type-k", ctk, tk)) return 2;
    return parse_cache_type(cmd, "-ctv/--cache-type-v", ctv, tv);
}

void cli_mean_std(const double *x, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0.0;
}

void cli_utc_date(char *buf, size_t cap) {
    time_t now = time(NULL);
    struct tm tmv;
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
}
