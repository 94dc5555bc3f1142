/*
 * analyze.c - Rank@v statistics of a PCA and their JSON / SVG renderings
 * (see analyze.h). The SVG is written by hand: a line chart and two heatmaps
 * with a shared colour scale, no scripts, fonts or external references.
 */
#include "calib/analyze.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const basis_key[LK_PCA_N_BASIS] = {"pre", "post"};
static const char *const basis_label[LK_PCA_N_BASIS] = {"pre-RoPE", "post-RoPE"};
static const char *const basis_colour[LK_PCA_N_BASIS] = {"#1f77b4", "#d62728"};
/* viridis at 0, 1/4, 1/2, 3/4, 1 */
static const unsigned char viridis[5][3] = {
    {0x44, 0x01, 0x54}, {0x3b, 0x52, 0x8b}, {0x21, 0x91, 0x8c}, {0x5e, 0xc9, 0x62}, {0xfd, 0xe7, 0x25}};

static const double tick_mult[] = {1, 2, 4, 5, 8, 10}; /* nice tick steps per decade */

/* ---------------------------------------------------------------- stats */

loki_status lk_rank_stats_compute(const loki_pca *p, double variance, lk_rank_stats *out, loki_error *err) {
    if (!(variance > 0.0 && variance <= 100.0))
        return lk_fail(err, LOKI_ERR_ARG, "--variance must be a percentage in (0, 100], got %g", variance);
    const int L = p->n_layer, H = p->n_head_kv;
    lk_rank_stats s = {.variance = variance, .n_layer = L, .n_head_kv = H, .head_dim = p->head_dim};
    s.rank = lk_malloc(sizeof(int32_t) * LK_PCA_N_BASIS * (size_t)L * H, err);       /* (B, L, Hkv) */
    s.layer_mean = lk_malloc(sizeof(double) * LK_PCA_N_BASIS * (size_t)L, err);      /* (B, L) */
    s.used = lk_malloc((size_t)L, err);                                              /* (L) */
    if (!s.rank || !s.layer_mean || !s.used) {
        lk_rank_stats_free(&s);
        return lk_fail_prefix(err, "Rank@%g statistics", variance);
    }
    for (int b = 0; b < LK_PCA_N_BASIS; b++) {
        double sum = 0.0, sq = 0.0;
        for (int l = 0; l < L; l++) {
            double m = 0.0;
            for (int h = 0; h < H; h++) {
                int32_t r = lk_pca_rank(p, b, l, h, variance / 100.0);
                s.rank[((size_t)b * L + l) * H + h] = r;
                m += r;
            }
            m /= H;
            s.layer_mean[(size_t)b * L + l] = m;
            sum += m;
        }
        s.mean[b] = sum / L;
        for (int l = 0; l < L; l++) {
            double d = s.layer_mean[(size_t)b * L + l] - s.mean[b];
            sq += d * d;
        }
        s.std[b] = sqrt(sq / L);
    }
    for (int l = 0; l < L; l++) s.n_used += (s.used[l] = lk_pca_layer_used(p, l));
    for (int b = 0; b < LK_PCA_N_BASIS; b++) {
        double sum = 0.0, sq = 0.0;
        for (int l = 0; l < L; l++) sum += s.used[l] ? s.layer_mean[(size_t)b * L + l] : 0.0;
        s.used_mean[b] = s.n_used ? sum / s.n_used : 0.0;
        for (int l = 0; l < L; l++) {
            double d = s.layer_mean[(size_t)b * L + l] - s.used_mean[b];
            sq += s.used[l] ? d * d : 0.0;
        }
        s.used_std[b] = s.n_used ? sqrt(sq / s.n_used) : 0.0;
    }
    *out = s;
    return LOKI_OK;
}

void lk_rank_stats_free(lk_rank_stats *s) {
    if (!s) return;
    free(s->rank);
    free(s->layer_mean);
    free(s->used);
    s->rank = NULL;
    s->layer_mean = NULL;
    s->used = NULL;
}

/* ----------------------------------------------------------------- JSON */

loki_status lk_rank_stats_json(const lk_rank_stats *s, bool pretty, char **out, loki_error *err) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddNumberToObject(root, "variance", s->variance);
    cJSON *used = ok ? cJSON_AddArrayToObject(root, "loki_layers") : NULL;
    ok = used != NULL;
    for (int l = 0; ok && l < s->n_layer; l++) {
        cJSON *v = s->used[l] ? cJSON_CreateNumber(l) : NULL;
        ok = !s->used[l] || (v && cJSON_AddItemToArray(used, v));
    }
    for (int b = 0; ok && b < LK_PCA_N_BASIS; b++) {
        cJSON *o = cJSON_AddObjectToObject(root, basis_key[b]);
        cJSON *ranks = o ? cJSON_AddArrayToObject(o, "rank") : NULL;
        ok = ranks != NULL;
        for (int l = 0; ok && l < s->n_layer; l++) {
            cJSON *row = cJSON_CreateArray();
            ok = row && cJSON_AddItemToArray(ranks, row);
            for (int h = 0; ok && h < s->n_head_kv; h++) {
                cJSON *v = cJSON_CreateNumber(lk_rank_at(s, b, l, h));
                ok = v && cJSON_AddItemToArray(row, v);
            }
        }
        cJSON *lm = ok ? cJSON_AddArrayToObject(o, "layer_mean") : NULL;
        ok = lm != NULL;
        for (int l = 0; ok && l < s->n_layer; l++) {
            cJSON *v = cJSON_CreateNumber(s->layer_mean[(size_t)b * s->n_layer + l]);
            ok = v && cJSON_AddItemToArray(lm, v);
        }
        ok = ok && cJSON_AddNumberToObject(o, "mean", s->mean[b]) && cJSON_AddNumberToObject(o, "std", s->std[b]) &&
             cJSON_AddNumberToObject(o, "loki_mean", s->used_mean[b]) &&
             cJSON_AddNumberToObject(o, "loki_std", s->used_std[b]);
    }
    char *text = ok ? (pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root)) : NULL;
    cJSON_Delete(root);
    if (!text) return lk_fail(err, LOKI_ERR_NOMEM, "Rank@%g JSON: out of memory", s->variance);
    *out = text;
    return LOKI_OK;
}

/* ------------------------------------------------------------------ SVG */

typedef struct sbuf {
    char *d;
    size_t len, cap;
    bool oom;
} sbuf;

/* Append printf-formatted text; on allocation failure sets oom and stops. */
static void sb_printf(sbuf *b, const char *fmt, ...) LK_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->d ? b->d + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = true; return; }
        if ((size_t)n < room) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap - b->len <= (size_t)n) cap *= 2;
        char *d = realloc(b->d, cap);
        if (!d) { b->oom = true; return; }
        b->d = d;
        b->cap = cap;
    }
}

/* Append s with &, <, >, " escaped for XML text and attributes. */
static void sb_escaped(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

/* Colour of t in [0, 1] on the viridis scale, as "#rrggbb" into buf (8 bytes). */
static void colour_of(double t, char buf[8]) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x = t * 4.0;
    int i = x >= 4.0 ? 3 : (int)x;
    double f = x - i;
    int c[3];
    for (int k = 0; k < 3; k++) c[k] = (int)lround(viridis[i][k] + f * (viridis[i + 1][k] - viridis[i][k]));
    snprintf(buf, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* A "nice" tick step (1, 2, 4, 5, 8 x 10^k) giving at most max_ticks ticks over range. */
static double tick_step(double range, int max_ticks) {
    double base = pow(10.0, floor(log10(range > 0 ? range : 1)) - 1);
    for (;;) {
        for (size_t i = 0; i < LK_ARRAY_LEN(tick_mult); i++)
            if (range / (tick_mult[i] * base) <= max_ticks) return tick_mult[i] * base;
        base *= 10;
    }
}

/* Index step for labelling n categories with at most max labels. */
static int label_step(int n, int max) { return n <= max ? 1 : (n + max - 1) / max; }

/* Chart geometry */
#define SVG_W 960
#define CH_LEFT 80
#define CH_TOP 70
#define CH_W 820
#define CH_H 260
#define HM_TOP (CH_TOP + CH_H + 110)
#define HM_W 340
#define HM_GAP 90

/* Line chart of the per-layer mean Rank (y 0..D) of both bases, with the
 * overall means dashed, axes, ticks and a legend; the top band of the figure. */
static void svg_line_chart(sbuf *b, const lk_rank_stats *s) {
    const int L = s->n_layer, D = s->head_dim;
    const double ys = tick_step(D, 8);
    sb_printf(b, "<g font-size=\"12\">\n");
    /* y grid and ticks */
    for (double v = 0; v <= D + 1e-9; v += ys) {
        double y = CH_TOP + CH_H - v / D * CH_H;
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", CH_LEFT, y,
                  CH_LEFT + CH_W, y);
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#000\"/>\n", CH_LEFT - 5, y, CH_LEFT, y);
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", CH_LEFT - 8, y + 4, v);
    }
    /* x ticks: one per layer (thinned for deep models) */
    const int xs = label_step(L, 32);
    for (int l = 0; l < L; l++) {
        double x = CH_LEFT + (l + 0.5) * CH_W / L;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\"/>\n", x, CH_TOP + CH_H, x,
                  CH_TOP + CH_H + 5);
        if (l % xs == 0)
            sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x, CH_TOP + CH_H + 19, l);
    }
    /* axes and labels */
    sb_printf(b, "<path d=\"M%d %d V%d H%d\" fill=\"none\" stroke=\"#000\"/>\n", CH_LEFT, CH_TOP, CH_TOP + CH_H,
              CH_LEFT + CH_W);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">layer</text>\n",
              CH_LEFT + CH_W / 2, CH_TOP + CH_H + 40);
    sb_printf(b, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">"
                 "Rank@%g (of %d dims), mean over KV heads</text>\n", CH_LEFT - 50, CH_TOP + CH_H / 2, s->variance, D);
    /* series: mean line (dashed), polyline and markers */
    for (int bi = 0; bi < LK_PCA_N_BASIS; bi++) {
        const char *col = basis_colour[bi];
        double ym = CH_TOP + CH_H - s->mean[bi] / D * CH_H;
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"4 4\" "
                     "stroke-opacity=\"0.6\"/>\n", CH_LEFT, ym, CH_LEFT + CH_W, ym, col);
        sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int l = 0; l < L; l++)
            sb_printf(b, "%s%.1f,%.1f", l ? " " : "", CH_LEFT + (l + 0.5) * CH_W / L,
                      CH_TOP + CH_H - s->layer_mean[(size_t)bi * L + l] / D * CH_H);
        sb_printf(b, "\"/>\n");
        for (int l = 0; l < L; l++)
            sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>layer %d, %s: %.2f</title>"
                         "</circle>\n", CH_LEFT + (l + 0.5) * CH_W / L,
                      CH_TOP + CH_H - s->layer_mean[(size_t)bi * L + l] / D * CH_H, col, l, basis_label[bi],
                      s->layer_mean[(size_t)bi * L + l]);
    }
    /* legend (top right, inside the plot) */
    int lx = CH_LEFT + CH_W - 368, ly = CH_TOP + 8;
    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"360\" height=\"48\" fill=\"#fff\" fill-opacity=\"0.9\" "
                 "stroke=\"#999\"/>\n", lx, ly);
    for (int bi = 0; bi < LK_PCA_N_BASIS; bi++) {
        int y = ly + 16 + 20 * bi;
        sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", lx + 8, y,
                  lx + 36, y, basis_colour[bi]);
        sb_printf(b, "<text x=\"%d\" y=\"%d\">%s keys: mean %.2f \u00b1 %.2f (std over layers)</text>\n", lx + 42,
                  y + 4, basis_label[bi], s->mean[bi], s->std[bi]);
    }
    sb_printf(b, "</g>\n");
}

/* Heatmap of basis bi at x0: rows = layers, columns = KV heads. */
static void svg_heatmap(sbuf *b, const lk_rank_stats *s, int bi, int x0, int cell_h) {
    const int L = s->n_layer, H = s->n_head_kv, D = s->head_dim;
    const double cw = (double)HM_W / H;
    const bool numbers = cw >= 22 && cell_h >= 13;
    char col[8];
    sb_printf(b, "<g font-size=\"11\" shape-rendering=\"crispEdges\">\n<text x=\"%d\" y=\"%d\" "
                 "text-anchor=\"middle\" font-size=\"14\">"
                 "%s keys: Rank@%g per layer and KV head</text>\n", x0 + HM_W / 2, HM_TOP - 28, basis_label[bi],
              s->variance);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            int r = lk_rank_at(s, bi, l, h);
            double t = D > 1 ? (double)(r - 1) / (D - 1) : 1.0;
            colour_of(t, col);
            double x = x0 + h * cw, y = HM_TOP + l * cell_h;
            sb_printf(b, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>layer %d, "
                         "head %d: Rank@%g = %d</title></rect>\n", x, (int)y, cw, cell_h, col, l, h, s->variance, r);
            if (numbers)
                sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\">%d</text>\n",
                          x + cw / 2, y + cell_h / 2.0 + 4, t < 0.6 ? "#fff" : "#000", r);
        }
    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#000\"/>\n", x0, HM_TOP,
              HM_W, L * cell_h);
    const int ls = label_step(L, 24), hs = label_step(H, 16);
    for (int l = 0; l < L; l += ls)
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", x0 - 5,
                  HM_TOP + l * cell_h + cell_h / 2.0 + 4, l);
    for (int h = 0; h < H; h += hs)
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x0 + (h + 0.5) * cw,
                  HM_TOP + L * cell_h + 15, h);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">KV head</text>\n", x0 + HM_W / 2,
              HM_TOP + L * cell_h + 32);
    sb_printf(b, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">layer"
                 "</text>\n</g>\n", x0 - 30, HM_TOP + L * cell_h / 2);
}

/* Vertical colour bar for ranks 1..D at x0, height hh. */
static void svg_colour_bar(sbuf *b, const lk_rank_stats *s, int x0, int hh) {
    const int D = s->head_dim;
    char col[8];
    sb_printf(b, "<defs><linearGradient id=\"rankscale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int i = 0; i <= 8; i++) {
        colour_of(i / 8.0, col);
        sb_printf(b, "<stop offset=\"%g\" stop-color=\"%s\"/>", i / 8.0, col);
    }
    sb_printf(b, "</linearGradient></defs>\n<g font-size=\"11\">\n");
    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"url(#rankscale)\" stroke=\"#000\"/>\n",
              x0, HM_TOP, hh);
    double step = tick_step(D - 1 > 0 ? D - 1 : 1, 6);
    for (double v = 0; v <= D - 1 + 1e-9; v += step) {
        double r = v < 1 ? 1 : v; /* ticks at 1, then multiples of step */
        double y = HM_TOP + hh - (D > 1 ? (r - 1) / (D - 1) : 1.0) * hh;
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#000\"/>\n", x0 + 16, y, x0 + 20, y);
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\">%g</text>\n", x0 + 23, y + 4, r);
    }
    if (D > 1 && fmod(D - 1, step) > 0.4 * step) /* D itself, unless a tick is close */
        sb_printf(b, "<text x=\"%d\" y=\"%d\">%d</text>\n", x0 + 23, HM_TOP + 4, D);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">Rank</text>\n</g>\n", x0 + 8,
              HM_TOP - 8);
}

loki_status lk_rank_stats_svg(const lk_rank_stats *s, const char *title, char **out, size_t *len,
                              loki_error *err) {
    const int L = s->n_layer;
    int cell_h = 360 / L;
    cell_h = cell_h > 24 ? 24 : cell_h < 6 ? 6 : cell_h;
    const int height = HM_TOP + L * cell_h + 50;
    sbuf b = {0};
    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n", SVG_W, height, SVG_W, height);
    sb_printf(&b, "<title>Rank@%g of keys before and after RoPE", s->variance);
    if (title) {
        sb_printf(&b, ": ");
        sb_escaped(&b, title);
    }
    sb_printf(&b, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
    sb_printf(&b, "<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-size=\"17\">Rank@%g of keys per layer "
                  "(%d layers, %d KV heads, head_dim %d)</text>\n", SVG_W / 2, s->variance, L, s->n_head_kv,
              s->head_dim);
    if (title) {
        sb_printf(&b, "<text x=\"%d\" y=\"50\" text-anchor=\"middle\" font-size=\"12\" fill=\"#555\">", SVG_W / 2);
        sb_escaped(&b, title);
        sb_printf(&b, "</text>\n");
    }
    svg_line_chart(&b, s);
    for (int bi = 0; bi < LK_PCA_N_BASIS; bi++) svg_heatmap(&b, s, bi, CH_LEFT + bi * (HM_W + HM_GAP), cell_h);
    svg_colour_bar(&b, s, CH_LEFT + 2 * HM_W + HM_GAP + 40, L * cell_h);
    sb_printf(&b, "</svg>\n");
    if (b.oom) {
        free(b.d);
        return lk_fail(err, LOKI_ERR_NOMEM, "Rank@%g SVG: out of memory", s->variance);
    }
    *out = b.d;
    *len = b.len;
    return LOKI_OK;
}
