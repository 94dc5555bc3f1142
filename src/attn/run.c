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
#include "attn/kv_simd.h"

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
    size_t ld_approx;                       /* approx[i] = approx[0] + i · ld_approx */
    const float *q[LK_ATTN_MAX_GROUP];      /* per head: (D) rotated query */
    float *out[LK_ATTN_MAX_GROUP];          /* per head: (D) output */
} unit_row;

/* Prefetch row s of r (rows of selected keys/values are gathered). */
static inline void prefetch_row(const lk_rows *r, int32_t s) {
    const uint8_t *p = lk_row(r, s);
    for (size_t o = 0; o < r->stride; o += 64) __builtin_prefetch(p + o);
}

/* The key rows (lo, hi) and value rows of (layer, KV head). */
typedef struct head_rows {
    lk_rows lo, hi, v;
} head_rows;

static head_rows head_rows_of(const lk_kv_cache *kv, int layer, int kh) {
    const int D = kv->head_dim, d = lk_kv_d(kv, layer, kh);
    head_rows h = {{lk_kv_klo(kv, layer, kh), lk_kv_klo_stride(kv, layer, kh), d, kv->tk, kv->portable},
                   {lk_kv_khi(kv, layer, kh), lk_kv_khi_stride(kv, layer, kh), D - d, kv->tk, kv->portable},
                   {lk_kv_v(kv, layer, kh), lk_kv_v_stride(kv), D, kv->tv, kv->portable}};
    return h;
}

/* Rows s0 .. s0+n-1 of r as floats (n, r->n): the rows themselves for f32,
 * else widened into buf. */
static const float *rows_f32(const lk_rows *r, int32_t s0, int32_t n, float *buf) {
    if (r->t == LOKI_KV_F32) return (const float *)lk_row(r, s0);
    for (int32_t i = 0; i < n; i++) lk_row_widen(r->t, r->portable, lk_row(r, s0 + i), buf + (size_t)i * r->n, r->n);
    return buf;
}

#ifndef LK_PREFETCH_AHEAD /* dev/cpu variant knob: -DLK_PREFETCH_AHEAD=32 */
#define LK_PREFETCH_AHEAD 16 /* selected rows */
#endif

/* Exact score of key s for query q: the low-rank part is already in approx. */
static inline float exact_score(const lk_attn *a, const float *approx, const float *q, const head_rows *hr,
                                int32_t s) {
    const int d = hr->lo.n;
    float lo = approx ? approx[s] : lk_dot_row(&hr->lo, s, q) * a->scale;
    return hr->hi.n ? lo + lk_dot_row(&hr->hi, s, q + d) * a->scale : lo;
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
 * out (D) receives the output; ex (n) the softmax weights where `weights`
 * (H2O's accumulators need them; otherwise their n exps are skipped: at
 * kf .125, 64k that is 8192 expf per head and step). */
static void attend_one_pass(const lk_attn *a, const unit_row *u, const head_rows *hr, const int32_t *sel,
                            int32_t n, float *ex, bool weights) {
    const int D = a->D;
    float *out = u->out[0], m = -FLT_MAX, l = 0.0f;
    memset(out, 0, sizeof(float) * (size_t)D);
    for (int32_t j = 0; j < n; j++) {
        if (j + LK_PREFETCH_AHEAD < n) {
            int32_t sp = sel[j + LK_PREFETCH_AHEAD];
            if (hr->hi.n) prefetch_row(&hr->hi, sp);
            prefetch_row(&hr->v, sp);
            if (!u->approx[0]) prefetch_row(&hr->lo, sp);
        }
        float sc = exact_score(a, u->approx[0], u->q[0], hr, sel[j]);
        ex[j] = sc;
        if (sc > m) { /* a new maximum: rescale what has been summed */
            float c = expf(m - sc);
            for (int i = 0; i < D; i++) out[i] *= c;
            l *= c;
            m = sc;
        }
        float w = expf(sc - m);
        l += w;
        lk_axpy_row(out, w, &hr->v, sel[j]);
    }
    const float inv = 1.0f / l;
    for (int i = 0; i < D; i++) out[i] *= inv;
    for (int32_t j = 0; j < n && weights; j++) ex[j] = expf(ex[j] - m) * inv;
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
static double jaccard_of(const lk_attn *a, lk_attn_thread *t, const unit_row *u, int i, const head_rows *hr,
                         int32_t n, int32_t k) {
    for (int32_t s = 0; s < u->S; s++) t->exall[s] = exact_score(a, u->approx[i], u->q[i], hr, s);
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
    const int D = a->D;
    const int32_t S = u->S;
    const head_rows hrs = head_rows_of(kv, u->layer, u->kh), *hr = &hrs;
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
            lk_weighted_rows_t(u->out[i], D, t->ex, C, 1, cand, C, &hr->v);
        }
        if (u->count_bytes) st->bytes_read += (double)u->g * C * hr->v.stride;
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
    float *ex = t->ex; /* (g, n) */
    /* without accumulators (H2O's) nobody needs the weights: the blocked
     * gather kernel (AVX-512), all g heads at once; q and out rows of a
     * unit are adjacent (stride D) */
    const int d = hr->lo.n;
    if (!acc && u->approx[0] && n > 0 &&
        lk_gather_attend(&hr->hi, &hr->v, t->sel, n, u->approx[0], (int)u->ld_approx, u->q[0] + d, D, u->g, a->scale,
                         u->out[0], D)) {
        for (int i = 0; i < u->g && a->jaccard && !all; i++) {
            st->jaccard_sum += jaccard_of(a, t, u, i, hr, n, k);
            st->jaccard_rows++;
        }
    } else if (u->g == 1) {
        attend_one_pass(a, u, hr, t->sel, n, ex, acc != NULL);
        if (a->jaccard && !all) {
            st->jaccard_sum += jaccard_of(a, t, u, 0, hr, n, k);
            st->jaccard_rows++;
        }
        if (acc)
            for (int32_t j = 0; j < n; j++) acc[t->sel[j]] += ex[j];
    } else {
        for (int32_t j = 0; j < n; j++) {
            if (j + LK_PREFETCH_AHEAD < n) {
                int32_t sp = t->sel[j + LK_PREFETCH_AHEAD];
                if (hr->hi.n) prefetch_row(&hr->hi, sp);
                prefetch_row(&hr->v, sp);
                if (!u->approx[0]) prefetch_row(&hr->lo, sp);
            }
            for (int i = 0; i < u->g; i++)
                ex[(size_t)i * n + j] = exact_score(a, u->approx[i], u->q[i], hr, t->sel[j]);
        }
        for (int i = 0; i < u->g; i++) {
            if (a->jaccard && !all) {
                st->jaccard_sum += jaccard_of(a, t, u, i, hr, n, k);
                st->jaccard_rows++;
            }
            softmax_inplace(ex + (size_t)i * n, n);
            if (acc)
                for (int32_t j = 0; j < n; j++) acc[t->sel[j]] += ex[(size_t)i * n + j];
        }
        /* the g heads of a unit are adjacent: out rows with stride D */
        lk_weighted_rows_t(u->out[0], D, ex, n, u->g, t->sel, n, &hr->v);
    }
    /* bytes of the selected rows: the rest of the key (all of it for h2o,
     * whose scores read no keys) and the value; once per selection */
    if (u->count_bytes) {
        double key_rest = p->method == LOKI_ATTN_H2O ? (double)(hr->lo.stride + hr->hi.stride) : (double)hr->hi.stride;
        st->bytes_read += (double)n * (key_rest + (double)hr->v.stride);
    }
    if (ev) evict(a, t, acc, ev, cand, C, S, n, all);
}

/* ------------------------------------------------------------- dense */

/* x[i] = exp(x[i] - m) for i < n; returns Σ x[i] (vectorised where the
 * build has AVX2 + FMA: the softmax's exps cost as much as reading the keys
 * otherwise, one expf per key and query row). */
static float exp_shift(float *x, int32_t n, float m) {
#if defined(LK_EXP_AVX2)
    return lk_exp_shift_avx2(x, n, m);
#else
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) s += x[i] = expf(x[i] - m);
    return s;
#endif
}

/* Keys per block of the dense decode: the (rows, block) scores stay in L1
 * (4 rows x 256 x 4 B = 4 KiB) and the block's keys and values (64 KiB each
 * at D = 128, f16) in L2 between the score and the weighted-sum passes. */
#ifndef LK_DENSE_BLOCK
#define LK_DENSE_BLOCK 256
#endif
enum { DENSE_TMP = 4096, /* floats of (rows, D) partial outputs on the stack */
       DENSE_ROWS = 64 };  /* query rows per call with their running max and sum on the stack */

/* Dense attention of a decode step: `rows` query rows (stride ldq; the query
 * heads of a KV head) over the keys of (layer, kv head) into out (stride
 * ldo), all n_keys of them, or the last `window` (a sliding-window layer).
 * Keys and values are streamed once for all rows, in blocks of
 * LK_DENSE_BLOCK with an online softmax (flash decoding): per block the
 * scores (rows, block), their exps relative to the running maximum, and a
 * weighted sum of the block's values added to out after rescaling it.
 * S: scratch of at least (rows, 2 * LK_DENSE_BLOCK) floats (the caller's is
 * (rows, 2 * n_ctx); with n_keys < LK_DENSE_BLOCK only (rows, 2 * n_keys)
 * is used). */
static void dense_decode(const lk_attn *a, const lk_kv_cache *kv, int layer, int kh, const float *q, int ldq,
                         float *out, int ldo, int32_t rows, int32_t n_keys, int32_t window, float *S) {
    const int D = a->D;
    const int32_t k0 = window > 0 ? LK_MAX(0, n_keys - window) : 0, nk = n_keys - k0;
    head_rows hr = head_rows_of(kv, layer, kh);
    hr.lo.p = lk_row(&hr.lo, k0), hr.hi.p = lk_row(&hr.hi, k0), hr.v.p = lk_row(&hr.v, k0);
    const int d = hr.lo.n;
    float tmp[DENSE_TMP], mx[DENSE_ROWS], l[DENSE_ROWS];
    if (rows > DENSE_ROWS) { /* more query heads per KV head than any model here: a row at a time */
        for (int32_t r = 0; r < rows; r++)
            dense_decode(a, kv, layer, kh, q + (size_t)r * ldq, ldq, out + (size_t)r * ldo, ldo, 1, n_keys, window, S);
        return;
    }
    /* partial outputs (rows, D) that do not fit tmp: all keys in one block
     * (the scratch holds (rows, 2 * n_keys)), nothing to merge */
    const int32_t B = (size_t)rows * D > DENSE_TMP ? nk : LK_MIN(nk, LK_DENSE_BLOCK);
    for (int32_t r = 0; r < rows; r++) mx[r] = -FLT_MAX, l[r] = 0.0f;
    /* the fused block kernel (AVX-512): whole keys (no split), exps under
     * the value loads, out accumulated in place */
    if (d == D) {
        lk_rows lo = hr.lo, v = hr.v;
        for (int32_t r = 0; r < rows; r++) memset(out + (size_t)r * ldo, 0, sizeof(float) * (size_t)D);
        bool ok = true;
        for (int32_t b0 = 0; b0 < nk && ok; b0 += B) {
            lo.p = lk_row(&hr.lo, b0), v.p = lk_row(&hr.v, b0);
            ok = lk_dense_block(&lo, &v, LK_MIN(B, nk - b0), q, ldq, rows, a->scale, S, mx, l, out, ldo);
        }
        if (ok) {
            for (int32_t r = 0; r < rows; r++) {
                const float inv = 1.0f / l[r];
                for (int i = 0; i < D; i++) out[(size_t)r * ldo + i] *= inv;
            }
            return;
        }
        for (int32_t r = 0; r < rows; r++) mx[r] = -FLT_MAX, l[r] = 0.0f;
    }
    for (int32_t b0 = 0; b0 < nk; b0 += B) {
        const int32_t nb = LK_MIN(B, nk - b0);
        lk_rows lo = hr.lo, hi = hr.hi, v = hr.v;
        lo.p = lk_row(&hr.lo, b0), hi.p = lk_row(&hr.hi, b0), v.p = lk_row(&hr.v, b0);
        lk_scores_rows(&lo, nb, q, ldq, rows, a->scale, S, nb);
        if (d < D) {
            float *h = S + (size_t)rows * nb;
            lk_scores_rows(&hi, nb, q + d, ldq, rows, a->scale, h, nb);
            for (size_t i = 0; i < (size_t)rows * nb; i++) S[i] += h[i];
        }
        for (int32_t r = 0; r < rows; r++) {
            float *x = S + (size_t)r * nb, m = lk_max(x, nb, mx[r]);
            const float c = b0 ? expf(mx[r] - m) : 0.0f; /* rescales what has been summed */
            l[r] = l[r] * c + exp_shift(x, nb, m);
            mx[r] = m;
            if (b0) {
                float *o = out + (size_t)r * ldo;
                for (int i = 0; i < D; i++) o[i] *= c;
            }
        }
        lk_weighted_rows_t(b0 ? tmp : out, b0 ? D : ldo, S, nb, rows, NULL, nb, &v);
        if (b0)
            for (int32_t r = 0; r < rows; r++)
                for (int i = 0; i < D; i++) out[(size_t)r * ldo + i] += tmp[(size_t)r * D + i];
    }
    for (int32_t r = 0; r < rows; r++) {
        const float inv = 1.0f / l[r];
        for (int i = 0; i < D; i++) out[(size_t)r * ldo + i] *= inv;
    }
}

/* Dense attention of a prompt block of `rows` query rows (rows <=
 * LK_ATT_ROW_BLOCK): row r sees keys up to first_visible + r (exclusive;
 * causal), with window > 0 only the last `window` of those. Keys are taken in
 * chunks of LK_ATT_KEY_CHUNK (widened to f32 for the 16-bit and q8_0 types)
 * with an online softmax (flash attention), so the scratch is (rows, chunk)
 * whatever the context length. */
static void dense_prefill(const lk_attn *a, lk_attn_thread *t, const lk_kv_cache *kv, int layer, int kh,
                          const float *q, int ldq, float *out, int ldo, int32_t rows, int32_t first_visible,
                          int32_t window) {
    const int D = a->D;
    const head_rows hr = head_rows_of(kv, layer, kh);
    const int d = hr.lo.n;
    const int32_t k0 = window > 0 ? LK_MAX(0, first_visible - window) : 0, k1 = first_visible + rows - 1;
    float *mx = t->mrow, *l = t->lrow, *S = t->blk;
    for (int32_t r = 0; r < rows; r++) {
        mx[r] = -INFINITY, l[r] = 0.0f;
        memset(out + (size_t)r * ldo, 0, sizeof(float) * (size_t)D);
    }
    for (int32_t c0 = k0; c0 < k1; c0 += LK_ATT_KEY_CHUNK) {
        const int32_t kc = LK_MIN(LK_ATT_KEY_CHUNK, k1 - c0);
        /* S (rows, kc) = scale · Q_lo · K_loᵀ (+ scale · Q_hi · K_hiᵀ) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kc, d, a->scale, q, ldq,
                    rows_f32(&hr.lo, c0, kc, t->kbuf), d, 0.0f, S, kc);
        if (d < D)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kc, D - d, a->scale, q + d, ldq,
                        rows_f32(&hr.hi, c0, kc, t->kbuf), D - d, 1.0f, S, kc);
        for (int32_t r = 0; r < rows; r++) {
            const int32_t last = first_visible + r; /* keys [lo, hi) of this row, relative to c0 */
            const int32_t lo = LK_MAX(window > 0 ? LK_MAX(0, last - window) : 0, c0) - c0;
            const int32_t hi = LK_MIN(last, c0 + kc) - c0;
            float *row = S + (size_t)r * kc;
            if (hi <= lo) {
                memset(row, 0, sizeof(float) * (size_t)kc);
                continue;
            }
            float m = -FLT_MAX, sum = 0.0f;
            for (int32_t j = lo; j < hi; j++) m = row[j] > m ? row[j] : m;
            if (m > mx[r]) { /* a new maximum: rescale what has been summed */
                const float c = expf(mx[r] - m);
                float *o = out + (size_t)r * ldo;
                for (int i = 0; i < D; i++) o[i] *= c;
                l[r] *= c;
                mx[r] = m;
            }
            memset(row, 0, sizeof(float) * (size_t)lo);
            for (int32_t j = lo; j < hi; j++) sum += row[j] = expf(row[j] - mx[r]);
            memset(row + hi, 0, sizeof(float) * (size_t)(kc - hi));
            l[r] += sum;
        }
        /* out (rows, D) += S (rows, kc) · V (kc, D) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, kc, 1.0f, S, kc,
                    rows_f32(&hr.v, c0, kc, t->vbuf), D, 1.0f, out, ldo);
    }
    for (int32_t r = 0; r < rows; r++) {
        const float inv = 1.0f / l[r];
        for (int i = 0; i < D; i++) out[(size_t)r * ldo + i] *= inv;
    }
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
    const double row_bytes = (double)lk_kv_row_bytes(r->kv->tk, D) + (double)lk_kv_v_stride(r->kv);
    for (int kh = ith; kh < a->Hkv; kh += nth) {
        const float *q = r->q + (size_t)kh * G * D; /* (G, D) */
        float *out = r->out + (size_t)kh * G * D;   /* (G, D) */
        lk_attn_stats *st = &t->stats[r->layer];
        st->bytes_dense += S_vis * row_bytes;
        if (r->dense) {
            dense_decode(a, r->kv, r->layer, kh, q, D, out, D, G, S, r->window, t->blk);
            st->bytes_read += S_vis * row_bytes;
            continue;
        }
        if (a->p.method != LOKI_ATTN_H2O) { /* blk (G, S) = scale · Q_lo · K_loᵀ */
            const head_rows hr = head_rows_of(r->kv, r->layer, kh);
            lk_scores_rows(&hr.lo, S, q, D, G, a->scale, t->blk, S);
            st->bytes_read += (double)S * hr.lo.stride;
        }
        int g = a->p.gqa_shared ? G : 1; /* (dense has returned above) */
        for (int i0 = 0; i0 < G; i0 += g) {
            unit_row u = {.layer = r->layer, .kh = kh, .g = g, .h0 = kh * G + i0, .S = S, .count_bytes = true,
                          .ld_approx = (size_t)S};
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
        const int h0 = it * g, kh = h0 / G;
        const head_rows hr = head_rows_of(r->kv, r->layer, kh);
        const int d = hr.lo.n;
        for (int32_t r0 = 0, rows; r0 < r->n; r0 += rows) {
            rows = LK_MIN(LK_ATT_ROW_BLOCK, r->n - r0);
            const float *qb = r->q + (size_t)r0 * ld;
            float *ob = r->out + (size_t)r0 * ld;
            if (r->dense) {
                dense_prefill(a, t, r->kv, r->layer, kh, qb + (size_t)h0 * D, ld, ob + (size_t)h0 * D, ld, rows,
                              r->pos0 + r0 + 1, r->window);
                continue;
            }
            /* the block's score rows (g, rows, nk) must fit the scratch
             * (lk_attn_blk_floats): fewer rows per block at long contexts */
            rows = (int32_t)LK_MIN((int64_t)rows, LK_MAX((int64_t)1, a->blk_floats / ((int64_t)g * (r->pos0 + r0 + rows))));
            const int32_t nk = r->pos0 + r0 + rows; /* keys the block's last row sees */
            /* blk_i (rows, nk) = scale · Q_lo (head h0+i) · K_loᵀ, in key chunks widened to f32 */
            if (a->p.method != LOKI_ATTN_H2O) {
                const int32_t chunk = hr.lo.t == LOKI_KV_F32 ? nk : LK_ATT_KEY_CHUNK;
                for (int32_t c0 = 0; c0 < nk; c0 += chunk) {
                    const int32_t kc = LK_MIN(chunk, nk - c0);
                    const float *K = rows_f32(&hr.lo, c0, kc, t->kbuf);
                    for (int i = 0; i < g; i++)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kc, d, a->scale,
                                    qb + (size_t)(h0 + i) * D, ld, K, d, 0.0f, t->blk + (size_t)i * rows * nk + c0, nk);
                }
            }
            for (int32_t rr = 0; rr < rows; rr++) {
                unit_row u = {.layer = r->layer, .kh = kh, .g = g, .h0 = h0, .S = r->pos0 + r0 + rr + 1,
                              .ld_approx = (size_t)rows * nk};
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
    /* dense: the method, a sliding-window layer, or a prompt block under --dense-prompt */
    const bool dense = window > 0 || a->p.method == LOKI_ATTN_DENSE || (a->p.dense_prompt && n > 1);
    run_task r = {a, kv, layer, q, out, n, pos0, window, dense};
    lk_pool_run(pool, n == 1 ? decode_worker : prefill_worker, &r);
}
