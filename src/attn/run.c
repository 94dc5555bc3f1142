/*
 * run.c - the attention kernels: score blocks by SGEMM, then per query row
 * select and attend (attn.h describes the methods).
 *
 * Work items spread over the pool: a decode step (one row) takes one KV head
 * per item and stacks its query heads into one score SGEMM, so the keys of a
 * KV head are read once; prompt processing takes one query head per item (a
 * KV head with --gqa-shared) and walks its rows in order in blocks of
 * LK_ATT_ROW_BLOCK, which keeps H2O's accumulators in causal order.
 */
#include "attn/attn_impl.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* Softmax over x[0..n) in place. */
static void softmax_inplace(float *x, int32_t n) {
    float m = -FLT_MAX;
    for (int32_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (int32_t i = 0; i < n; i++) x[i] *= inv;
}

/* Everything one sharing unit (g query heads h0.. of KV head kh with one
 * selection) needs for one query row that sees S keys. */
typedef struct unit_row {
    int layer, kh, g, h0;
    int32_t S;
    bool count_bytes;   /* decode steps count bytes read (prompt blocks do not) */
    const float *approx[LK_ATTN_MAX_GROUP]; /* per head: (S) scaled low-rank (or exact) scores, NULL for h2o */
    const float *q[LK_ATTN_MAX_GROUP];      /* per head: (D) rotated query */
    float *out[LK_ATTN_MAX_GROUP];          /* per head: (D) output */
} unit_row;

/* Prefetch the `bytes` of a row (rows of selected keys/values are gathered). */
static inline void prefetch_row(const float *p, int bytes) {
    for (int o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o);
}

#define LK_PREFETCH_AHEAD 16 /* selected rows */

/* Exact score of key s for query q: the low-rank part is already in approx. */
static inline float exact_score(const lk_attn *a, const float *approx, const float *q, const float *Klo,
                                const float *Khi, int d, int32_t s) {
    const int Dh = a->D - d;
    float lo = approx ? approx[s] : lk_dot(q, Klo + (size_t)s * d, d) * a->scale;
    return Dh ? lo + lk_dot(q + d, Khi + (size_t)s * Dh, Dh) * a->scale : lo;
}

/* GQA-shared selection scores (S) of a unit's g heads: the sum of the
 * scores, or (gqa_max) the largest score relative to its head's maximum, so
 * a token that matters to any one head ranks high. */
static const float *shared_scores(const unit_row *u, float *x, bool gqa_max) {
    for (int32_t s = 0; s < u->S; s++) x[s] = gqa_max ? -FLT_MAX : 0.0f;
    for (int i = 0; i < u->g; i++) {
        const float *ai = u->approx[i];
        if (!gqa_max) {
            for (int32_t s = 0; s < u->S; s++) x[s] += ai[s];
            continue;
        }
        float m = -FLT_MAX;
        for (int32_t s = 0; s < u->S; s++) m = ai[s] > m ? ai[s] : m;
        for (int32_t s = 0; s < u->S; s++) x[s] = ai[s] - m > x[s] ? ai[s] - m : x[s];
    }
    return x;
}

/* One query head over its n selected rows in a single pass with an online
 * softmax (as flash-decoding does): each row's key rest and value are used
 * while both are in cache, instead of a second gather of the values.
 * ex (n) receives the softmax weights; out (D) the output. */
static void attend_one_pass(const lk_attn *a, const unit_row *u, const float *Klo, const float *Khi,
                            const float *V, int d, const int32_t *sel, int32_t n, float *ex) {
    const int D = a->D, Dh = D - d;
    float *out = u->out[0], m = -FLT_MAX, l = 0.0f;
    memset(out, 0, sizeof(float) * (size_t)D);
    for (int32_t j = 0; j < n; j++) {
        if (j + LK_PREFETCH_AHEAD < n) {
            int32_t sp = sel[j + LK_PREFETCH_AHEAD];
            if (Dh) prefetch_row(Khi + (size_t)sp * Dh, Dh * 4);
            prefetch_row(V + (size_t)sp * D, D * 4);
            if (!u->approx[0]) prefetch_row(Klo + (size_t)sp * d, d * 4);
        }
        float sc = exact_score(a, u->approx[0], u->q[0], Klo, Khi, d, sel[j]);
        ex[j] = sc;
        if (sc > m) { /* a new maximum: rescale what has been summed */
            float c = expf(m - sc);
            for (int i = 0; i < D; i++) out[i] *= c;
            l *= c;
            m = sc;
        }
        float w = expf(sc - m);
        l += w;
        lk_axpy(out, w, V + (size_t)sel[j] * D, D);
    }
    const float inv = 1.0f / l;
    for (int i = 0; i < D; i++) out[i] *= inv;
    for (int32_t j = 0; j < n; j++) ex[j] = expf(ex[j] - m) * inv;
}

/* Select positions into t->sel; returns how many. x: selection scores by
 * position; cand (C) the candidates (NULL: 0..S-1). Forced tokens (sinks,
 * recent) come first, then the top (k - forced) of the rest. */
static int32_t select_tokens(const lk_attn *a, lk_attn_thread *t, const float *x, const int32_t *cand,
                             int32_t C, int32_t S, int32_t k, int32_t recent, const uint8_t *ev) {
    const int32_t sinks = LK_MIN(a->p.sinks, S);
    int32_t nf = 0;
    for (int32_t s = 0; s < sinks && nf < k; s++)
        if (!ev || !ev[s]) t->sel[nf++] = s, t->mark[s] = 1;
    for (int32_t s = S - 1; s >= LK_MAX(S - recent, 0) && nf < k; s--)
        if (!t->mark[s] && (!ev || !ev[s])) t->sel[nf++] = s, t->mark[s] = 1;
    if (nf == 0) { /* nothing forced: select over the candidates directly */
        int32_t kk = LK_MIN(k, C);
        lk_topk(x, cand, C, kk, t->sel, t->work);
        return kk;
    }
    int32_t nrest = 0;
    for (int32_t i = 0; i < C; i++) {
        int32_t s = cand ? cand[i] : i;
        if (!t->mark[s]) t->rest[nrest++] = s;
    }
    for (int32_t j = 0; j < nf; j++) t->mark[t->sel[j]] = 0;
    int32_t kk = LK_MIN(k - nf, nrest);
    lk_topk(x, t->rest, nrest, kk, t->sel + nf, t->work);
    return nf + kk;
}

/* Jaccard similarity of sel (n) with the exact top-k of all S keys. */
static double jaccard_of(const lk_attn *a, lk_attn_thread *t, const unit_row *u, int i, const float *Klo,
                         const float *Khi, int d, int32_t n, int32_t k) {
    for (int32_t s = 0; s < u->S; s++) t->exall[s] = exact_score(a, u->approx[i], u->q[i], Klo, Khi, d, s);
    lk_topk(t->exall, NULL, u->S, k, t->top, t->work);
    for (int32_t j = 0; j < k; j++) t->mark[t->top[j]] = 1;
    int32_t inter = 0;
    for (int32_t j = 0; j < n; j++) inter += t->mark[t->sel[j]];
    for (int32_t j = 0; j < k; j++) t->mark[t->top[j]] = 0;
    return (double)inter / (double)(k + n - inter);
}

/* H2O eviction after a row: keep `keep` candidates (all selected ones for
 * h2o itself; else the most recent half and the heaviest half by acc). */
static void evict(const lk_attn *a, lk_attn_thread *t, float *acc, uint8_t *ev, const int32_t *cand, int32_t C,
                  int32_t S, int32_t nsel, bool all) {
    if (a->p.method == LOKI_ATTN_H2O) {
        if (all) return;
        for (int32_t j = 0; j < nsel; j++) t->mark[t->sel[j]] = 1;
        for (int32_t i = 0; i < C; i++)
            if (!t->mark[cand[i]]) ev[cand[i]] = 1;
        for (int32_t j = 0; j < nsel; j++) t->mark[t->sel[j]] = 0;
        return;
    }
    int32_t B = (int32_t)LK_MAX((int64_t)1, lk_attn_fraction(a->p.evict_kf, S));
    if (C <= B) return;
    /* reuse sel: it is no longer needed for this row */
    int32_t n = select_tokens(a, t, acc, cand, C, S, B, B / 2, ev);
    for (int32_t j = 0; j < n; j++) t->mark[t->sel[j]] = 1;
    for (int32_t i = 0; i < C; i++)
        if (!t->mark[cand[i]]) ev[cand[i]] = 1;
    for (int32_t j = 0; j < n; j++) t->mark[t->sel[j]] = 0;
}

/* One query row of one sharing unit: candidates → select → exact attend. */
static void attend_unit(lk_attn *a, lk_attn_thread *t, const lk_kv_cache *kv, const unit_row *u) {
    const loki_attn_params *p = &a->p;
    const int D = a->D, d = lk_kv_d(kv, u->layer, u->kh);
    const int32_t S = u->S;
    const float *Klo = lk_kv_klo(kv, u->layer, u->kh), *Khi = lk_kv_khi(kv, u->layer, u->kh);
    const float *V = lk_kv_v(kv, u->layer, u->kh);
    const size_t unit_off = ((size_t)u->layer * a->H + u->h0) * (size_t)a->n_ctx;
    float *acc = a->acc ? a->acc + unit_off : NULL;
    uint8_t *ev = a->evicted ? a->evicted + unit_off : NULL;
    lk_attn_stats *st = &t->stats[u->layer];

    /* candidates: the positions not evicted */
    int32_t C = S;
    const int32_t *cand = NULL;
    if (ev) {
        C = 0;
        for (int32_t s = 0; s < S; s++)
            if (!ev[s]) t->cand[C++] = s;
        cand = t->cand;
    }
    if (p->method == LOKI_ATTN_PCAATTN) { /* softmax over the low-rank scores of all candidates */
        for (int i = 0; i < u->g; i++) {
            for (int32_t j = 0; j < C; j++) t->ex[j] = u->approx[i][cand ? cand[j] : j];
            softmax_inplace(t->ex, C);
            lk_weighted_rows(u->out[i], D, t->ex, C, 1, cand, C, V, D);
        }
        if (u->count_bytes) st->bytes_read += 4.0 * u->g * C * D;
        return;
    }
    const int32_t k = lk_attn_budget(p, S);
    const bool all = lk_attn_all(p, S, C, k);
    int32_t n;
    if (all) {
        n = C;
        for (int32_t j = 0; j < C; j++) t->sel[j] = cand ? cand[j] : j;
    } else {
        const float *x = acc;
        if (p->method != LOKI_ATTN_H2O) {
            x = u->approx[0];
            if (u->g > 1) x = shared_scores(u, t->sum, a->p.gqa_max);
        }
        int32_t recent = lk_attn_recent(p, k);
        n = select_tokens(a, t, x, cand, C, S, k, recent, ev);
        if (p->sinks || recent) { /* forced tokens first: ascending positions for the gathers */
            for (int32_t j = 0; j < n; j++) t->mark[t->sel[j]] = 1;
            n = 0;
            for (int32_t s = 0; s < S; s++)
                if (t->mark[s]) t->mark[s] = 0, t->sel[n++] = s;
        }
    }
    /* exact scores of the selected rows for all g heads in one pass over the
     * rows, then one weighted sum (M = g) over their values: a shared
     * selection's rows are gathered once for the group */
    const int Dh = D - d;
    float *ex = t->ex; /* (g, n) */
    if (u->g == 1) {
        attend_one_pass(a, u, Klo, Khi, V, d, t->sel, n, ex);
        if (a->jaccard && !all) {
            st->jaccard_sum += jaccard_of(a, t, u, 0, Klo, Khi, d, n, k);
            st->jaccard_rows++;
        }
        if (acc)
            for (int32_t j = 0; j < n; j++) acc[t->sel[j]] += ex[j];
    }
    for (int32_t j = 0; j < n && u->g > 1; j++) {
        if (j + LK_PREFETCH_AHEAD < n) {
            int32_t sp = t->sel[j + LK_PREFETCH_AHEAD];
            if (Dh) prefetch_row(Khi + (size_t)sp * Dh, Dh * 4);
            prefetch_row(V + (size_t)sp * D, D * 4);
            if (!u->approx[0]) prefetch_row(Klo + (size_t)sp * d, d * 4);
        }
        for (int i = 0; i < u->g; i++)
            ex[(size_t)i * n + j] = exact_score(a, u->approx[i], u->q[i], Klo, Khi, d, t->sel[j]);
    }
    for (int i = 0; i < u->g && u->g > 1; i++) {
        if (a->jaccard && !all) {
            st->jaccard_sum += jaccard_of(a, t, u, i, Klo, Khi, d, n, k);
            st->jaccard_rows++;
        }
        softmax_inplace(ex + (size_t)i * n, n);
        if (acc)
            for (int32_t j = 0; j < n; j++) acc[t->sel[j]] += ex[(size_t)i * n + j];
    }
    /* the g heads of a unit are adjacent: out rows with stride D */
    if (u->g > 1) lk_weighted_rows(u->out[0], D, ex, n, u->g, t->sel, n, V, D);
    /* bytes of the selected rows: the rest of the key (all of it for h2o,
     * whose scores read no keys) and the value; once per selection */
    if (u->count_bytes) {
        int key_rest = p->method == LOKI_ATTN_H2O ? D : D - d;
        st->bytes_read += 4.0 * (double)n * (key_rest + D);
    }
    if (ev) evict(a, t, acc, ev, cand, C, S, n, all);
}

/* ------------------------------------------------------------- dense */

/* Dense attention of `rows` query rows (stride ldq) over keys of (layer, kv
 * head) into out (stride ldo). Row r sees keys up to `last` = first_visible +
 * r (exclusive; causal), or all n_keys when first_visible < 0 (a decode
 * step); with window > 0 (a sliding-window layer) only the last `window`
 * of those, keys last - window .. last - 1. S: scratch of at least
 * (rows, 2 * n_keys) floats. */
static void dense_block(const lk_attn *a, const lk_kv_cache *kv, int layer, int kh, const float *q, int ldq,
                        float *out, int ldo, int32_t rows, int32_t n_keys, int32_t first_visible,
                        int32_t window, float *S) {
    const int D = a->D, d = lk_kv_d(kv, layer, kh);
    /* k0: the first key any row sees; nk keys from there on */
    const int32_t k0 = window > 0 ? LK_MAX(0, (first_visible < 0 ? n_keys : first_visible) - window) : 0;
    const int32_t nk = n_keys - k0;
    const float *Klo = lk_kv_klo(kv, layer, kh) + (size_t)k0 * d;
    const float *Khi = lk_kv_khi(kv, layer, kh) + (size_t)k0 * (D - d);
    const float *V = lk_kv_v(kv, layer, kh) + (size_t)k0 * D;
    if (first_visible < 0) { /* a decode step: a few rows, keys and values streamed once */
        lk_scores(Klo, nk, d, q, ldq, rows, a->scale, S, nk);
        if (d < D) {
            float *hi = S + (size_t)rows * nk;
            lk_scores(Khi, nk, D - d, q + d, ldq, rows, a->scale, hi, nk);
            for (size_t i = 0; i < (size_t)rows * nk; i++) S[i] += hi[i];
        }
        for (int32_t r = 0; r < rows; r++) softmax_inplace(S + (size_t)r * nk, nk);
        lk_weighted_rows(out, ldo, S, nk, rows, NULL, nk, V, D);
        return;
    }
    /* S (rows, nk) = scale · Q_lo · K_loᵀ (+ scale · Q_hi · K_hiᵀ) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, d, a->scale, q, ldq, Klo, d, 0.0f, S, nk);
    if (d < D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, D - d, a->scale, q + d, ldq, Khi, D - d,
                    1.0f, S, nk);
    for (int32_t r = 0; r < rows; r++) {
        const int32_t last = first_visible + r; /* keys [lo, hi) of this row, relative to k0 */
        const int32_t lo = window > 0 ? LK_MAX(0, last - window) - k0 : 0, hi = last - k0;
        float *row = S + (size_t)r * nk;
        memset(row, 0, sizeof(float) * (size_t)lo);
        softmax_inplace(row + lo, hi - lo);
        memset(row + hi, 0, sizeof(float) * (size_t)(nk - hi));
    }
    /* out (rows, D) = S (rows, nk) · V (nk, D) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, nk, 1.0f, S, nk, V, D, 0.0f, out, ldo);
}

/* ----------------------------------------------------------- workers */

typedef struct run_task {
    lk_attn *a;
    const lk_kv_cache *kv;
    int layer;
    const float *q; /* (n, H, D) */
    float *out;     /* (n, H, D) */
    int32_t n, pos0;
    int32_t window; /* > 0: a sliding-window layer, dense attention inside it */
    bool dense;     /* dense attention (the method, or a sliding-window layer) */
} run_task;

/* One row: item = KV head; its query heads (contiguous in q) are stacked. */
static void decode_worker(void *arg, int ith, int nth) {
    run_task *r = arg;
    lk_attn *a = r->a;
    lk_attn_thread *t = &a->th[ith];
    const int D = a->D, G = a->group;
    const int32_t S = r->pos0 + 1;
    const int32_t S_vis = r->window > 0 ? LK_MIN(S, r->window) : S; /* keys dense attention reads */
    for (int kh = ith; kh < a->Hkv; kh += nth) {
        const float *q = r->q + (size_t)kh * G * D; /* (G, D) */
        float *out = r->out + (size_t)kh * G * D;   /* (G, D) */
        lk_attn_stats *st = &t->stats[r->layer];
        st->bytes_dense += 4.0 * S_vis * 2 * D;
        if (r->dense) {
            dense_block(a, r->kv, r->layer, kh, q, D, out, D, G, S, -1, r->window, t->blk);
            st->bytes_read += 4.0 * S_vis * 2 * D;
            continue;
        }
        const int d = lk_kv_d(r->kv, r->layer, kh);
        if (a->p.method != LOKI_ATTN_H2O) { /* blk (G, S) = scale · Q_lo · K_loᵀ */
            lk_scores(lk_kv_klo(r->kv, r->layer, kh), S, d, q, D, G, a->scale, t->blk, S);
            st->bytes_read += 4.0 * S * d;
        }
        int g = a->p.gqa_shared ? G : 1; /* (dense has returned above) */
        for (int i0 = 0; i0 < G; i0 += g) {
            unit_row u = {.layer = r->layer, .kh = kh, .g = g, .h0 = kh * G + i0, .S = S, .count_bytes = true};
            for (int i = 0; i < g; i++) {
                u.approx[i] = a->p.method == LOKI_ATTN_H2O ? NULL : t->blk + (size_t)(i0 + i) * S;
                u.q[i] = q + (size_t)(i0 + i) * D;
                u.out[i] = out + (size_t)(i0 + i) * D;
            }
            attend_unit(a, t, r->kv, &u);
        }
    }
}

/* Many rows: item = query head (a KV head's group with --gqa-shared). */
static void prefill_worker(void *arg, int ith, int nth) {
    run_task *r = arg;
    lk_attn *a = r->a;
    lk_attn_thread *t = &a->th[ith];
    const int D = a->D, H = a->H, G = a->group, ld = H * D;
    const int g = a->p.gqa_shared && !r->dense ? G : 1, n_items = H / g;
    for (int it = ith; it < n_items; it += nth) {
        const int h0 = it * g, kh = h0 / G, d = lk_kv_d(r->kv, r->layer, kh);
        for (int32_t r0 = 0; r0 < r->n; r0 += LK_ATT_ROW_BLOCK) {
            const int32_t rows = LK_MIN(LK_ATT_ROW_BLOCK, r->n - r0);
            const int32_t nk = r->pos0 + r0 + rows; /* keys the block's last row sees */
            const float *qb = r->q + (size_t)r0 * ld;
            float *ob = r->out + (size_t)r0 * ld;
            if (r->dense) {
                dense_block(a, r->kv, r->layer, kh, qb + (size_t)h0 * D, ld, ob + (size_t)h0 * D, ld, rows, nk,
                            r->pos0 + r0 + 1, r->window, t->blk);
                continue;
            }
            /* blk_i (rows, nk) = scale · Q_lo (head h0+i) · K_loᵀ */
            if (a->p.method != LOKI_ATTN_H2O)
                for (int i = 0; i < g; i++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, d, a->scale,
                                qb + (size_t)(h0 + i) * D, ld, lk_kv_klo(r->kv, r->layer, kh), d, 0.0f,
                                t->blk + (size_t)i * rows * nk, nk);
            for (int32_t rr = 0; rr < rows; rr++) {
                unit_row u = {.layer = r->layer, .kh = kh, .g = g, .h0 = h0, .S = r->pos0 + r0 + rr + 1};
                for (int i = 0; i < g; i++) {
                    u.approx[i] = a->p.method == LOKI_ATTN_H2O ? NULL
                                                                : t->blk + ((size_t)i * rows + rr) * nk;
                    u.q[i] = qb + (size_t)rr * ld + (size_t)(h0 + i) * D;
                    u.out[i] = ob + (size_t)rr * ld + (size_t)(h0 + i) * D;
                }
                attend_unit(a, t, r->kv, &u);
            }
        }
    }
}

void lk_attn_run(lk_attn *a, lk_pool *pool, const lk_kv_cache *kv, int layer, const float *q, float *out,
                 int32_t n, int32_t pos0) {
    const int32_t window = lk_attn_window(a, layer);
    run_task r = {a, kv, layer, q, out, n, pos0, window, window > 0 || a->p.method == LOKI_ATTN_DENSE};
    lk_pool_run(pool, n == 1 ? decode_worker : prefill_worker, &r);
}
