/*
 * eval.c - `loki eval passkey` and `loki eval repeat`: retrieval accuracy per
 * attention method, prompt length and depth (docs/EVAL.md). The table (or
 * with --json one JSON object) goes to stdout, progress and timings to
 * stderr; stdout depends only on the options, so equal seeds give equal output.
 */
#include "cli/args.h"
#include "cli/attn_args.h"
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "eval/eval.h"
#include "eval/passkey.h"

#define EVAL_MAX_LIST 64 /* items in --lengths, --depths, --attn */

typedef enum eval_kind { EVAL_PASSKEY, EVAL_REPEAT } eval_kind;

typedef struct eval_opts {
    const char *model, *haystack, *tokenizer, *lengths_s, *depths_s;
    int32_t trials, n_threads, span, gen;
    uint64_t seed;
    bool json;
    cli_attn_args attn;
} eval_opts;

/* The parsed lists and what a run produced. */
typedef struct eval_plan {
    eval_kind kind;
    const char *cmd; /* "eval passkey" */
    int32_t lengths[EVAL_MAX_LIST];
    double depths[EVAL_MAX_LIST];
    char *names_buf; /* --attn copy cut at the commas */
    const char *names[EVAL_MAX_LIST];
    loki_attn_params params[EVAL_MAX_LIST];
    loki_pca *pcas[EVAL_MAX_LIST];
    int n_lengths, n_depths, n_methods;
    /* (n_methods, n_lengths, n_depths, trials) results, one array per kind */
    lk_passkey_trial *pk;
    lk_repeat_trial *rp;
} eval_plan;

/* Index of one trial in the result arrays. */
static size_t trial_index(const eval_plan *pl, int32_t trials, int mi, int li, int di, int t) {
    return (((size_t)mi * pl->n_lengths + li) * pl->n_depths + di) * (size_t)trials + t;
}

/* Split s at commas into at most EVAL_MAX_LIST trimmed, non-empty items
 * (pointers into buf, a copy the caller frees). Returns the count, or -1
 * with the problem in why. */
static int split_list(const char *s, char **buf, const char **items, const char **why) {
    *buf = NULL;
    if (!s || !*s) return *why = "the list is empty", -1;
    if (!(*buf = strdup(s))) return *why = "out of memory", -1;
    int n = 0;
    for (char *p = *buf;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        while (*p == ' ') p++;
        size_t l = strlen(p);
        while (l > 0 && p[l - 1] == ' ') p[--l] = '\0';
        if (!*p) return *why = "an item is empty (expected comma-separated values like 1024,2048)", -1;
        if (n == EVAL_MAX_LIST) return *why = "more than 64 items", -1;
        items[n++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

/* Parse the --lengths, --depths and --attn lists into pl; prints the error
 * naming the option. Returns 0 or exit code 2. */
static int parse_lists(const eval_opts *o, eval_plan *pl) {
    const char *items[EVAL_MAX_LIST], *why = NULL;
    char *buf = NULL;
    int n = split_list(o->lengths_s, &buf, items, &why);
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        long v = strtol(items[i], &end, 10);
        if (errno || *end || v < LK_RETRIEVAL_MIN_LENGTH || v > INT32_MAX / 2) {
            fprintf(stderr, "loki %s: --lengths: '%s' is not a length in tokens >= %d\n", pl->cmd, items[i],
                    LK_RETRIEVAL_MIN_LENGTH);
            free(buf);
            return 2;
        }
        pl->lengths[i] = (int32_t)v;
    }
    free(buf);
    if (n < 0) {
        fprintf(stderr, "loki %s: --lengths '%s': %s\n", pl->cmd, o->lengths_s ? o->lengths_s : "", why);
        return 2;
    }
    pl->n_lengths = n;
    n = split_list(o->depths_s, &buf, items, &why);
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        double v = strtod(items[i], &end);
        if (errno || *end || !(v >= 0.0 && v <= 1.0)) {
            fprintf(stderr, "loki %s: --depths: '%s' is not a depth in [0, 1]\n", pl->cmd, items[i]);
            free(buf);
            return 2;
        }
        pl->depths[i] = v;
    }
    free(buf);
    if (n < 0) {
        fprintf(stderr, "loki %s: --depths '%s': %s\n", pl->cmd, o->depths_s ? o->depths_s : "", why);
        return 2;
    }
    pl->n_depths = n;
    n = split_list(o->attn.method, &pl->names_buf, pl->names, &why);
    if (n < 0) {
        fprintf(stderr, "loki %s: --attn '%s': %s\n", pl->cmd, o->attn.method ? o->attn.method : "", why);
        return 2;
    }
    for (int i = 0; i < n; i++)
        if (loki_attn_method_parse(pl->names[i]) < 0) {
            fprintf(stderr, "loki %s: --attn: unknown method '%s' (dense, exact-topk, loki, pcaattn, h2o)\n",
                    pl->cmd, pl->names[i]);
            return 2;
        }
    pl->n_methods = n;
    return 0;
}

/* Check the plain numeric options; prints the error. Returns 0 or 2. */
static int check_opts(const eval_opts *o, const eval_plan *pl) {
    const char *c = pl->cmd;
    if (!o->model) return fprintf(stderr, "loki %s: no model given (-m MODEL)\n", c), 2;
    if (!o->haystack) return fprintf(stderr, "loki %s: no haystack given (--haystack FILE: a long text)\n", c), 2;
    if (o->trials < 1) return fprintf(stderr, "loki %s: --trials must be >= 1, got %d\n", c, o->trials), 2;
    if (o->n_threads < 0) return fprintf(stderr, "loki %s: -t must be >= 0, got %d\n", c, o->n_threads), 2;
    if (pl->kind == EVAL_PASSKEY && (o->gen < 1 || o->gen > 64))
        return fprintf(stderr, "loki %s: --gen must be in 1..64, got %d\n", c, o->gen), 2;
    if (pl->kind == EVAL_REPEAT) {
        for (int i = 0; i < pl->n_lengths; i++)
            if (o->span < 2 || 2 * o->span + 1 > pl->lengths[i])
                return fprintf(stderr, "loki %s: --span must be in 2..%d for --lengths %d, got %d\n", c,
                               (pl->lengths[i] - 1) / 2, pl->lengths[i], o->span), 2;
    }
    return 0;
}

/* ------------------------------------------------------------ output */

/* The largest of --lengths. */
static int32_t max_length(const eval_plan *pl) {
    int32_t m = 0;
    for (int i = 0; i < pl->n_lengths; i++) m = LK_MAX(m, pl->lengths[i]);
    return m;
}

/* Correct and total counts of one cell (mi, li, di); di < 0: all depths,
 * li < 0: all lengths. For passkey, trials; for repeat, predictions, and in
 * *first the correct ones at the span's first occurrence (NULL: not wanted). */
static void cell_counts(const eval_plan *pl, int32_t trials, int mi, int li, int di, int64_t *correct,
                        int64_t *total, int64_t *first) {
    int64_t f = 0;
    *correct = *total = 0;
    for (int l = 0; l < pl->n_lengths; l++) {
        if (li >= 0 && l != li) continue;
        for (int d = 0; d < pl->n_depths; d++) {
            if (di >= 0 && d != di) continue;
            for (int t = 0; t < trials; t++) {
                size_t k = trial_index(pl, trials, mi, l, d, t);
                if (pl->kind == EVAL_PASSKEY) {
                    *correct += pl->pk[k].correct;
                    *total += 1;
                } else {
                    *correct += pl->rp[k].correct;
                    *total += pl->rp[k].total;
                    f += pl->rp[k].first_correct;
                }
            }
        }
    }
    if (first) *first = f;
}

/* a / b, 0 when b is 0. */
static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

/* The total column(s) of a table row and the line end. */
static void print_total(bool passkey, int64_t c, int64_t t, int64_t first) {
    char cell[64];
    snprintf(cell, sizeof cell, "%lld/%lld (%.1f%%)", (long long)c, (long long)t, 100.0 * ratio(c, t));
    if (passkey) printf("  %s\n", cell);
    else printf("  %-18s  %.1f%%\n", cell, 100.0 * ratio(first, t));
}

/* Readable table on stdout: one row per method and length, a column per depth. */
static void print_table(const eval_opts *o, const eval_plan *pl) {
    bool pk = pl->kind == EVAL_PASSKEY;
    if (pk)
        printf("passkey retrieval: %d trials per cell (correct/trials), seed %llu, haystack %s\n", o->trials,
               (unsigned long long)o->seed, o->haystack);
    else
        printf("repeated span: next-token accuracy over the repeat, %d predictions per trial (span %d), %d trials per "
               "cell, seed %llu, haystack %s; first occurrence: the same predictions where the span first appears\n",
               o->span - 1, o->span, o->trials, (unsigned long long)o->seed, o->haystack);
    int wm = 6;
    for (int mi = 0; mi < pl->n_methods; mi++) {
        char desc[256];
        cli_attn_describe(&pl->params[mi], desc, sizeof desc);
        printf("attention: %s\n", desc);
        wm = LK_MAX(wm, (int)strlen(pl->names[mi]));
    }
    char head[32];
    int wc[EVAL_MAX_LIST];
    printf("%-*s  %7s", wm, "method", "length");
    if (pk) printf("  %-11s", "tokens");
    for (int d = 0; d < pl->n_depths; d++) {
        snprintf(head, sizeof head, "depth %g", pl->depths[d]);
        wc[d] = LK_MAX((int)strlen(head), 9);
        printf("  %*s", wc[d], head);
    }
    if (pk) printf("  total\n");
    else printf("  %-18s  first occurrence\n", "total");
    int64_t c, t, f;
    for (int mi = 0; mi < pl->n_methods; mi++) {
        for (int li = 0; li < pl->n_lengths; li++) {
            printf("%-*s  %7d", wm, pl->names[mi], pl->lengths[li]);
            if (pk) { /* actual prompt lengths */
                int32_t lo = INT32_MAX, hi = 0;
                for (int d = 0; d < pl->n_depths; d++)
                    for (int k = 0; k < o->trials; k++) {
                        int32_t n = pl->pk[trial_index(pl, o->trials, mi, li, d, k)].n_prompt;
                        lo = LK_MIN(lo, n);
                        hi = LK_MAX(hi, n);
                    }
                char range[32];
                if (lo == hi) snprintf(range, sizeof range, "%d", lo);
                else snprintf(range, sizeof range, "%d-%d", lo, hi);
                printf("  %-11s", range);
            }
            for (int d = 0; d < pl->n_depths; d++) {
                cell_counts(pl, o->trials, mi, li, d, &c, &t, NULL);
                char cell[48];
                if (pk) snprintf(cell, sizeof cell, "%lld/%lld", (long long)c, (long long)t);
                else snprintf(cell, sizeof cell, "%.1f%%", 100.0 * ratio(c, t));
                printf("  %*s", wc[d], cell);
            }
            cell_counts(pl, o->trials, mi, li, -1, &c, &t, &f);
            print_total(pk, c, t, f);
        }
        cell_counts(pl, o->trials, mi, -1, -1, &c, &t, &f);
        printf("%-*s  %7s", wm, pl->names[mi], "all");
        if (pk) printf("  %-11s", "");
        for (int d = 0; d < pl->n_depths; d++) printf("  %*s", wc[d], "");
        print_total(pk, c, t, f);
    }
}

/* Add {"correct", "total", "accuracy"} of a cell to obj. */
static void add_counts(cJSON *obj, const eval_plan *pl, int32_t trials, int mi, int li, int di) {
    int64_t c, t, f;
    cell_counts(pl, trials, mi, li, di, &c, &t, &f);
    cJSON_AddNumberToObject(obj, "correct", (double)c);
    cJSON_AddNumberToObject(obj, "total", (double)t);
    cJSON_AddNumberToObject(obj, "accuracy", ratio(c, t));
    if (pl->kind == EVAL_REPEAT) {
        cJSON_AddNumberToObject(obj, "first_correct", (double)f);
        cJSON_AddNumberToObject(obj, "first_accuracy", ratio(f, t));
    }
}

/* One trial as a JSON object. */
static cJSON *trial_json(const eval_plan *pl, size_t k) {
    cJSON *j = cJSON_CreateObject();
    if (pl->kind == EVAL_PASSKEY) {
        const lk_passkey_trial *r = &pl->pk[k];
        cJSON_AddNumberToObject(j, "key", r->key);
        cJSON_AddNumberToObject(j, "answer", r->answer);
        cJSON_AddBoolToObject(j, "correct", r->correct);
        cJSON_AddNumberToObject(j, "prompt_tokens", r->n_prompt);
        cJSON_AddNumberToObject(j, "depth_actual", round(r->depth * 1e4) / 1e4);
        cJSON_AddStringToObject(j, "output", r->output);
    } else {
        const lk_repeat_trial *r = &pl->rp[k];
        cJSON_AddNumberToObject(j, "correct", r->correct);
        cJSON_AddNumberToObject(j, "total", r->total);
        cJSON_AddNumberToObject(j, "first_correct", r->first_correct);
        cJSON_AddNumberToObject(j, "tokens", r->n_tokens);
        cJSON_AddNumberToObject(j, "book_offset", r->book_offset);
        cJSON_AddNumberToObject(j, "span_start", r->span_start);
    }
    return j;
}

/* The whole result as one JSON object on stdout. Returns 0 or 1 (no memory). */
static int print_json(const eval_opts *o, const eval_plan *pl) {
    bool pk = pl->kind == EVAL_PASSKEY;
    cJSON *root = cJSON_CreateObject();
    if (!root) return 1;
    cJSON_AddStringToObject(root, "eval", pk ? "passkey" : "repeat");
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON_AddStringToObject(root, "haystack", o->haystack);
    char seed[32]; /* exact for seeds beyond 2^53 */
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddRawToObject(root, "seed", seed);
    cJSON_AddNumberToObject(root, "trials", o->trials);
    if (pk) cJSON_AddNumberToObject(root, "gen_tokens", o->gen);
    else cJSON_AddNumberToObject(root, "span", o->span);
    cJSON *ls = cJSON_AddArrayToObject(root, "lengths"), *ds = cJSON_AddArrayToObject(root, "depths");
    for (int i = 0; i < pl->n_lengths; i++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(pl->lengths[i]));
    for (int i = 0; i < pl->n_depths; i++) cJSON_AddItemToArray(ds, cJSON_CreateNumber(pl->depths[i]));
    cJSON *ms = cJSON_AddArrayToObject(root, "methods");
    for (int mi = 0; mi < pl->n_methods; mi++) {
        cJSON *m = cJSON_CreateObject();
        char desc[256];
        cli_attn_describe(&pl->params[mi], desc, sizeof desc);
        cJSON_AddStringToObject(m, "method", pl->names[mi]);
        cJSON_AddStringToObject(m, "attn", desc);
        add_counts(m, pl, o->trials, mi, -1, -1);
        cJSON *lj = cJSON_AddArrayToObject(m, "lengths");
        for (int li = 0; li < pl->n_lengths; li++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddNumberToObject(l, "length", pl->lengths[li]);
            add_counts(l, pl, o->trials, mi, li, -1);
            cJSON *dj = cJSON_AddArrayToObject(l, "depths");
            for (int di = 0; di < pl->n_depths; di++) {
                cJSON *d = cJSON_CreateObject();
                cJSON_AddNumberToObject(d, "depth", pl->depths[di]);
                add_counts(d, pl, o->trials, mi, li, di);
                cJSON *tj = cJSON_AddArrayToObject(d, "trials");
                for (int t = 0; t < o->trials; t++)
                    cJSON_AddItemToArray(tj, trial_json(pl, trial_index(pl, o->trials, mi, li, di, t)));
                cJSON_AddItemToArray(dj, d);
            }
            cJSON_AddItemToArray(lj, l);
        }
        cJSON_AddItemToArray(ms, m);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return fprintf(stderr, "loki %s: out of memory printing JSON\n", pl->cmd), 1;
    printf("%s\n", s);
    free(s);
    return 0;
}

/* ---------------------------------------------------------------- run */

/* Run every method x length x depth x trial on ctx; progress on stderr.
 * Returns 0 or 1 (runtime error, printed). */
static int run_all(const eval_opts *o, eval_plan *pl, loki_context *ctx, const lk_haystack *h) {
    loki_error err = {0};
    double t_all = lk_time_s();
    bool tty = isatty(fileno(stderr));
    for (int mi = 0; mi < pl->n_methods; mi++) {
        if (loki_context_set_attn(ctx, &pl->params[mi], &err) != LOKI_OK) {
            fprintf(stderr, "loki %s: %s\n", pl->cmd, err.msg);
            return 1;
        }
        for (int li = 0; li < pl->n_lengths; li++)
            for (int di = 0; di < pl->n_depths; di++) {
                double t0 = lk_time_s();
                int64_t c = 0, tot = 0;
                for (int t = 0; t < o->trials; t++) {
                    /* the same prompts for every method */
                    lk_rng rng = lk_rng_derive(o->seed, (uint64_t)pl->lengths[li],
                                               (uint64_t)llround(pl->depths[di] * 1e6), (uint64_t)t);
                    size_t k = trial_index(pl, o->trials, mi, li, di, t);
                    loki_status st;
                    if (pl->kind == EVAL_PASSKEY) {
                        st = lk_passkey_run(ctx, h, pl->lengths[li], pl->depths[di], o->gen, &rng, &pl->pk[k], &err);
                        c += pl->pk[k].correct;
                        tot++;
                    } else {
                        st = lk_repeat_run(ctx, h, pl->lengths[li], pl->depths[di], o->span, &rng, &pl->rp[k], &err);
                        c += pl->rp[k].correct;
                        tot += pl->rp[k].total;
                    }
                    if (st) {
                        fprintf(stderr, "%sloki %s: %s\n", tty ? "\n" : "", pl->cmd, err.msg);
                        return 1;
                    }
                    if (tty)
                        fprintf(stderr, "\r%s length %d depth %g: trial %d/%d ", pl->names[mi], pl->lengths[li],
                                pl->depths[di], t + 1, o->trials);
                }
                fprintf(stderr, "%s%s length %d depth %g: %lld/%lld correct (%.1f s)\n", tty ? "\r" : "", pl->names[mi],
                        pl->lengths[li], pl->depths[di], (long long)c, (long long)tot, lk_time_s() - t0);
            }
    }
    fprintf(stderr, "loki %s: done in %.1f s\n", pl->cmd, lk_time_s() - t_all);
    return 0;
}

/* Everything after option parsing: load, check against the model, run,
 * print. Returns the exit code. */
static int eval_main(eval_opts *o, eval_plan *pl) {
    loki_model *m = NULL;
    loki_context *ctx = NULL;
    lk_haystack h = {0};
    loki_error err = {0};
    size_t len = 0;
    int rc = 1;
    char *text = cli_read_text(pl->cmd, o->haystack, &len);
    if (!text) return 1;
    len = lk_text_universal_newlines(text, len);
    if (len == 0) {
        fprintf(stderr, "loki %s: --haystack %s: the file is empty\n", pl->cmd, o->haystack);
        goto done;
    }
    if (!(m = cli_open_model(pl->cmd, o->model, o->tokenizer))) goto done;
    loki_model_info info;
    loki_model_get_info(m, &info);
    int32_t lmax = max_length(pl);
    if (info.n_ctx_train > 0 && lmax > info.n_ctx_train) {
        fprintf(stderr, "loki %s: --lengths %d exceeds the model's context of %d tokens\n", pl->cmd, lmax,
                info.n_ctx_train);
        rc = 2;
        goto done;
    }
    for (int i = 0; i < pl->n_methods; i++) {
        int r = cli_attn_params(pl->cmd, &o->attn, pl->names[i], m, &pl->params[i], &pl->pcas[i]);
        if (r) {
            rc = r;
            goto done;
        }
    }
    if (lk_haystack_init(m, o->haystack, text, len, &h, &err) != LOKI_OK) {
        fprintf(stderr, "loki %s: --haystack %s\n", pl->cmd, err.msg);
        goto done;
    }
    if (h.n_ids < lmax) {
        fprintf(stderr, "loki %s: --haystack %s has %d tokens, too few for --lengths %d\n", pl->cmd, o->haystack,
                h.n_ids, lmax);
        goto done;
    }
    fprintf(stderr, "loki %s: haystack %s: %zu bytes, %d tokens\n", pl->cmd, o->haystack, len, h.n_ids);
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = pl->kind == EVAL_PASSKEY ? lmax + o->gen + 16 : lmax;
    cp.n_threads = o->n_threads;
    if ((rc = cli_cache_types(pl->cmd, o->attn.ctk, o->attn.ctv, &cp.type_k, &cp.type_v)) ||
        (rc = cli_device(pl->cmd, o->attn.device, &cp.device)))
        goto done;
    if (!(ctx = cli_context_init(pl->cmd, m, &cp, NULL, &rc))) goto done;
    rc = 1;
    size_t n = (size_t)pl->n_methods * pl->n_lengths * pl->n_depths * (size_t)o->trials;
    if (pl->kind == EVAL_PASSKEY ? !(pl->pk = calloc(n, sizeof *pl->pk)) : !(pl->rp = calloc(n, sizeof *pl->rp))) {
        fprintf(stderr, "loki %s: out of memory (%zu trials)\n", pl->cmd, n);
        goto done;
    }
    if ((rc = run_all(o, pl, ctx, &h))) goto done;
    if (o->json) rc = print_json(o, pl);
    else print_table(o, pl);
done:
    lk_haystack_free(&h);
    loki_context_free(ctx);
    loki_model_close(m);
    free(text);
    return rc;
}

/* `loki eval` without an evaluation name: the two evaluations. */
static void eval_usage(FILE *f) {
    fprintf(f, "usage: loki eval passkey|repeat -m MODEL --haystack FILE [options]\n\n"
               "  passkey   retrieval of a 5-digit pass key hidden at a depth of book text\n"
               "  repeat    next-token accuracy over a span of the text repeated at the end\n\n"
               "`loki eval passkey --help` and `loki eval repeat --help` list the options.\n");
}

int cli_eval(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        eval_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    eval_plan pl;
    memset(&pl, 0, sizeof pl);
    if (!strcmp(argv[1], "passkey")) {
        pl.kind = EVAL_PASSKEY;
        pl.cmd = "eval passkey";
    } else if (!strcmp(argv[1], "repeat")) {
        pl.kind = EVAL_REPEAT;
        pl.cmd = "eval repeat";
    } else {
        fprintf(stderr, "loki eval: unknown evaluation '%s' (passkey or repeat)\n", argv[1]);
        eval_usage(stderr);
        return 2;
    }
    eval_opts o = {.lengths_s = "1024,2048", .depths_s = "0,0.25,0.5,0.75,1", .trials = 5, .seed = 1,
                   .span = 48, .gen = LK_PASSKEY_GEN_DEFAULT};
    cli_attn_args_init(&o.attn);
    cli_opt opts[16 + CLI_ATTN_N_OPTS];
    int n = 0;
    opts[n++] = (cli_opt){"-m", "--model", CLI_STR, &o.model, "MODEL", "GGUF file, Hugging Face directory or llama2.c .bin"};
    opts[n++] = (cli_opt){NULL, "--haystack", CLI_STR, &o.haystack, "FILE", "long text the prompts are cut from (a book)"};
    opts[n++] = (cli_opt){NULL, "--lengths", CLI_STR, &o.lengths_s, "L,..",
                          pl.kind == EVAL_PASSKEY ? "prompt lengths in tokens (default 1024,2048)"
                                                  : "sequence lengths in tokens, repeat included (default 1024,2048)"};
    opts[n++] = (cli_opt){NULL, "--depths", CLI_STR, &o.depths_s, "D,..",
                          pl.kind == EVAL_PASSKEY ? "key depths in [0,1] (default 0,0.25,0.5,0.75,1)"
                                                  : "span depths in [0,1] of the window (default 0,0.25,0.5,0.75,1)"};
    opts[n++] = (cli_opt){NULL, "--trials", CLI_INT, &o.trials, "N", "trials per length and depth (default 5)"};
    opts[n++] = (cli_opt){NULL, "--seed", CLI_U64, &o.seed, "S", "random seed of keys and offsets (default 1)"};
    if (pl.kind == EVAL_PASSKEY)
        opts[n++] = (cli_opt){NULL, "--gen", CLI_INT, &o.gen, "N", "greedy tokens generated after the prompt (default 8)"};
    else
        opts[n++] = (cli_opt){NULL, "--span", CLI_INT, &o.span, "N", "tokens of the repeated span (default 48)"};
    opts[n++] = (cli_opt){"-t", "--threads", CLI_INT, &o.n_threads, "N", "compute threads (default: all CPUs)"};
    opts[n++] = (cli_opt){NULL, "--tokenizer", CLI_STR, &o.tokenizer, "FILE", "tokenizer file (llama2.c tok*.bin)"};
    opts[n++] = (cli_opt){NULL, "--json", CLI_FLAG, &o.json, "", "print one JSON object instead of the table"};
    n += cli_attn_opts(&o.attn, opts + n);
    const cli_spec spec = {
        pl.cmd,
        pl.kind == EVAL_PASSKEY ? "loki eval passkey -m MODEL --haystack FILE [options]"
                                : "loki eval repeat -m MODEL --haystack FILE [options]",
        pl.kind == EVAL_PASSKEY
            ? "Pass key retrieval: a random 5-digit key stated in one sentence is hidden at\n"
              "each depth of book text from a random offset; the prompt of the given length\n"
              "ends \"The pass key is\" and greedy decoding must produce the key. --attn takes\n"
              "a comma-separated list of methods (e.g. dense,exact-topk,loki); every method\n"
              "sees the same prompts. See docs/EVAL.md."
            : "Repeated span: `--span` tokens at each depth of a window of book text are\n"
              "repeated at the end (total = the length); the score is teacher-forced\n"
              "next-token accuracy (argmax) over the repeat after its first token. --attn\n"
              "takes a comma-separated list of methods. See docs/EVAL.md.",
        opts, n, 0};
    int rc = cli_parse(&spec, argc - 1, argv + 1, NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!(rc = parse_lists(&o, &pl)) && !(rc = check_opts(&o, &pl))) rc = eval_main(&o, &pl);
    for (int i = 0; i < pl.n_methods; i++) loki_pca_free(pl.pcas[i]);
    free(pl.names_buf);
    free(pl.pk);
    free(pl.rp);
    return rc;
}
