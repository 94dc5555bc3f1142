/*
 * analyze.c - `loki analyze`: Rank@v of every layer and KV head of a PCA
 * file, before and after RoPE, as a table, CSV or JSON, and optionally an
 * SVG figure (per-layer line chart + heatmaps). Statistics: calib/analyze.h.
 */
#include "cli/args.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include "calib/analyze.h"
#include "calib/pca.h"
#include "core/common.h"

static const char *const analyze_basis[LK_PCA_N_BASIS] = {"pre", "post"};

/* Readable table: one line per layer with the per-head ranks of each basis. */
static void print_text(const loki_pca *p, const char *path, const lk_rank_stats *s) {
    const int L = s->n_layer, H = s->n_head_kv;
    printf("%s: PCA of %s on %lld tokens of %s (window %d)\n", path, p->model_name, (long long)p->calib_tokens,
           p->calib_file, p->calib_window);
    printf("Rank@%g: principal axes explaining %g%% of the key variance, of head_dim %d\n", s->variance,
           s->variance, s->head_dim);
    printf("layer  mean pre  mean post  pre per KV head | post per KV head\n");
    for (int l = 0; l < L; l++) {
        printf("%5d  %8.2f  %9.2f  ", l, s->layer_mean[l], s->layer_mean[(size_t)L + l]);
        for (int b = 0; b < LK_PCA_N_BASIS; b++) {
            if (b) printf(" |");
            for (int h = 0; h < H; h++) printf(" %d", lk_rank_at(s, b, l, h));
        }
        printf("%s\n", s->used[l] ? "" : "   (local: dense, Loki unused)");
    }
    printf(" mean  %8.2f  %9.2f\n", s->mean[LOKI_BASIS_PRE], s->mean[LOKI_BASIS_POST]);
    printf("  std  %8.2f  %9.2f  (population std of the layer means across layers)\n", s->std[LOKI_BASIS_PRE],
           s->std[LOKI_BASIS_POST]);
    if (s->n_used < L) {
        printf("Loki uses %d of %d layers:", s->n_used, L);
        for (int l = 0; l < L; l++)
            if (s->used[l]) printf(" %d", l);
        printf(" (the global ones); the other %d are sliding-window layers (window %d) that attend densely\n",
               L - s->n_used, p->swa_window);
        printf(" mean  %8.2f  %9.2f  over the layers Loki uses\n", s->used_mean[LOKI_BASIS_PRE],
               s->used_mean[LOKI_BASIS_POST]);
        printf("  std  %8.2f  %9.2f  over the layers Loki uses\n", s->used_std[LOKI_BASIS_PRE],
               s->used_std[LOKI_BASIS_POST]);
    }
}

/* CSV: one row per (basis, layer, head); loki = 1 when Loki uses the layer. */
static void print_csv(const lk_rank_stats *s) {
    printf("basis,layer,head,variance,rank,loki\n");
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int l = 0; l < s->n_layer; l++)
            for (int h = 0; h < s->n_head_kv; h++)
                printf("%s,%d,%d,%g,%d,%d\n", analyze_basis[b], l, h, s->variance, lk_rank_at(s, b, l, h),
                       (int)s->used[l]);
}

int cli_analyze(int argc, char **argv) {
    const char *format = "text", *svg = NULL, *pos[1] = {NULL};
    float variance = 90.0f;
    int npos = 0;
    const cli_opt opts[] = {
        {NULL, "--variance", CLI_FLOAT, &variance, "PCT", "explained variance in percent, (0, 100] (default 90)"},
        {NULL, "--format", CLI_STR, &format, "FMT", "text, csv or json (default text)"},
        {NULL, "--svg", CLI_STR, &svg, "OUT.svg", "also write a figure: per-layer Rank line chart and heatmaps"},
    };
    const cli_spec spec = {"analyze", "loki analyze PCA.gguf [--variance 90] [--format text|csv|json] [--svg OUT.svg]",
                           "Rank@v of a PCA file from `loki calibrate`: for every layer and KV head, the fewest\n"
                           "principal axes that explain v% of the key variance, before and after RoPE; the mean\n"
                           "over heads per layer, and the mean and (population) standard deviation of those\n"
                           "layer means across layers (Loki, Figure 1).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 1};
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (npos != 1) {
        fprintf(stderr, "loki analyze: no PCA file given (usage: %s)\n", spec.usage);
        return 2;
    }
    if (!(variance > 0.0f && variance <= 100.0f)) {
        fprintf(stderr, "loki analyze: --variance must be a percentage in (0, 100], got %g\n", variance);
        return 2;
    }
    int fmt = !strcmp(format, "text") ? 0 : !strcmp(format, "csv") ? 1 : !strcmp(format, "json") ? 2 : -1;
    if (fmt < 0) {
        fprintf(stderr, "loki analyze: --format must be text, csv or json, got '%s'\n", format);
        return 2;
    }
    loki_pca *p = NULL;
    lk_rank_stats s = {0};
    char *json = NULL, *doc = NULL;
    size_t doc_len = 0;
    loki_error err = {0};
    rc = 1;
    if (loki_pca_load(pos[0], NULL, &p, &err) || lk_rank_stats_compute(p, variance, &s, &err)) {
        fprintf(stderr, "loki analyze: %s\n", err.msg);
        goto done;
    }
    if (svg) {
        char title[600];
        snprintf(title, sizeof title, "%s, %lld tokens of %s", p->model_name, (long long)p->calib_tokens,
                 p->calib_file);
        lk_stop_flag *stop = cli_interrupt_install();
        if (lk_rank_stats_svg(&s, title, &doc, &doc_len, &err) || lk_write_file_atomic(svg, doc, doc_len, stop, &err)) {
            if (err.status == LOKI_ERR_INTERRUPTED) rc = cli_interrupt_exit("analyze", stop);
            else fprintf(stderr, "loki analyze: --svg: %s\n", err.msg);
            goto done;
        }
    }
    if (fmt == 2) {
        if (lk_rank_stats_json(&s, false, &json, &err)) {
            fprintf(stderr, "loki analyze: %s\n", err.msg);
            goto done;
        }
        printf("%s\n", json);
    } else if (fmt == 1) {
        print_csv(&s);
    } else {
        print_text(p, pos[0], &s);
    }
    if (svg) fprintf(stderr, "loki analyze: wrote %s\n", svg);
    rc = 0;
done:
    free(json);
    free(doc);
    lk_rank_stats_free(&s);
    loki_pca_free(p);
    return rc;
}
