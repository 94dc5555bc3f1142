/* test_sampler.c - sampling: greedy, top-k, top-p, min-p, temperature,
 * repetition penalty and seeding, checked on hand-made distributions. */
#include "test.h"

#include "loki.h"
#include "sample/sampler.h"

#define V 6

static loki_sampler *mk(float temp, int top_k, float top_p, float min_p, float rep, uint64_t seed) {
    loki_sampler_params p = loki_sampler_default_params();
    p.temp = temp; p.top_k = top_k; p.top_p = top_p; p.min_p = min_p; p.repeat_penalty = rep;
    p.repeat_last_n = 4; p.seed = seed;
    loki_sampler *s = NULL;
    loki_error err = {0};
    CHECK(loki_sampler_init(&p, V, &s, &err) == LOKI_OK);
    return s;
}

/* Counts of each id over n draws. */
static void histogram(loki_sampler *s, const float *logits, int n, int *counts) {
    memset(counts, 0, sizeof(int) * V);
    for (int i = 0; i < n; i++) counts[loki_sampler_sample(s, logits)]++;
}

static int by_order(const void *a, const void *b) {
    const lk_cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

/* lk_sampler_top_k and lk_sampler_sort against a qsort of the same
 * candidates: the same first k (or all n) (logit, id) pairs in the same
 * order, for logits with many ties
 * (values in steps of 1/4 from few levels), signed zeros and infinities,
 * ascending and descending runs (the heap's worst cases), k from 1 to n. */
static void check_top_k(void) {
    uint64_t seed = 12345;
    int bad = 0, runs = 0;
    for (int trial = 0; trial < 400; trial++) {
        const int32_t n = 1 + (int32_t)(test_rand32(&seed) % (trial < 200 ? 64 : 5000));
        const int levels = 1 + (int)(test_rand32(&seed) % 40), shape = trial % 4;
        lk_cand *c = test_xmalloc(sizeof(lk_cand) * (size_t)n), *ref = test_xmalloc(sizeof(lk_cand) * (size_t)n);
        for (int32_t i = 0; i < n; i++) {
            float v = (float)(test_rand32(&seed) % (uint32_t)levels) * 0.25f - 3.0f;
            if (shape == 1) v = (float)i;           /* ascending: every candidate enters the heap */
            if (shape == 2) v = (float)(n - i);     /* descending */
            if (shape == 3 && i % 7 == 0) v = i % 2 ? -0.0f : 0.0f;
            if (shape == 3 && i % 11 == 0) v = i % 2 ? INFINITY : -INFINITY;
            c[i] = ref[i] = (lk_cand){v, i};
        }
        qsort(ref, (size_t)n, sizeof(lk_cand), by_order);
        const int32_t ks[3] = {1, 1 + (int32_t)(test_rand32(&seed) % (uint32_t)n), n};
        for (int j = 0; j < 3; j++) {
            lk_cand *w = test_xmalloc(sizeof(lk_cand) * (size_t)n);
            memcpy(w, c, sizeof(lk_cand) * (size_t)n);
            lk_sampler_top_k(w, n, ks[j]);
            for (int32_t i = 0; i < ks[j]; i++)
                if (w[i].id != ref[i].id || memcmp(&w[i].logit, &ref[i].logit, sizeof(float))) {
                    if (!bad++) CHECKF(0, "top-%d of %d (shape %d): position %d is id %d, the sort's %d", ks[j], n,
                                       shape, i, w[i].id, ref[i].id);
                    break;
                }
            runs++;
            free(w);
        }
        /* and the whole list by the radix sort */
        lk_cand *w = test_xmalloc(sizeof(lk_cand) * (size_t)n), *tmp = test_xmalloc(sizeof(lk_cand) * (size_t)n);
        memcpy(w, c, sizeof(lk_cand) * (size_t)n);
        lk_sampler_sort(w, tmp, n);
        for (int32_t i = 0; i < n; i++)
            if (w[i].id != ref[i].id) {
                if (!bad++) CHECKF(0, "sort of %d (shape %d): position %d is id %d, qsort's %d", n, shape, i, w[i].id,
                                   ref[i].id);
                break;
            }
        runs++;
        free(w), free(tmp);
        free(c), free(ref);
    }
    CHECKF(bad == 0, "%d of %d top-k selections and sorts differ from the full qsort", bad, runs);
}

int main(void) {
    check_top_k();
    /* probabilities ∝ exp(logit): 0.5, 0.25, 0.125, 0.0625, ... */
    const float lg[V] = {0.0f, -0.6931472f, -1.3862944f, -2.0794415f, -2.7725887f, -3.4657359f};
    int c[V];
    loki_sampler *s = mk(0.0f, 0, 1.0f, 0.0f, 1.0f, 1);
    CHECK_EQ_INT(loki_sampler_sample(s, lg), 0);
    loki_sampler_free(s);

    /* plain sampling at T=1 follows the distribution (20000 draws, 4 sigma) */
    s = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 7);
    histogram(s, lg, 20000, c);
    double total = 0;
    for (int i = 0; i < V; i++) total += exp(lg[i]);
    for (int i = 0; i < V; i++) {
        double p = exp(lg[i]) / total, sd = sqrt(20000 * p * (1 - p));
        CHECKF(fabs(c[i] - 20000 * p) < 4 * sd + 1, "id %d: %d draws, expected %.0f", i, c[i], 20000 * p);
    }
    loki_sampler_free(s);

    s = mk(1.0f, 2, 1.0f, 0.0f, 1.0f, 3); /* top-k 2: only ids 0 and 1 */
    histogram(s, lg, 3000, c);
    CHECK(c[0] + c[1] == 3000 && c[1] > 700 && c[1] < 1300);
    loki_sampler_free(s);

    s = mk(1.0f, 0, 0.7f, 0.0f, 1.0f, 3); /* top-p .7: 0.5+0.25 reaches it, ids 0,1 */
    histogram(s, lg, 3000, c);
    CHECK(c[0] + c[1] == 3000 && c[1] > 0);
    loki_sampler_free(s);

    s = mk(1.0f, 0, 1.0f, 0.2f, 1.0f, 3); /* min-p .2: p >= 0.1 -> ids 0,1,2 */
    histogram(s, lg, 3000, c);
    CHECK(c[0] + c[1] + c[2] == 3000 && c[2] > 0);
    loki_sampler_free(s);

    s = mk(0.05f, 0, 1.0f, 0.0f, 1.0f, 3); /* low temperature concentrates on the argmax */
    histogram(s, lg, 1000, c);
    CHECK(c[0] == 1000);
    loki_sampler_free(s);

    /* same seed, same sequence; different seed, different sequence */
    loki_sampler *a = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 99), *b = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 99),
                 *d = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 100);
    int same = 1, diff = 0;
    for (int i = 0; i < 200; i++) {
        int x = loki_sampler_sample(a, lg), y = loki_sampler_sample(b, lg), z = loki_sampler_sample(d, lg);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same && diff > 0);
    loki_sampler_free(a); loki_sampler_free(b); loki_sampler_free(d);

    /* repetition penalty: a strong penalty on id 0 makes greedy pick id 1 */
    const float lg2[V] = {2.0f, 1.5f, 0.0f, -1.0f, -1.0f, -1.0f};
    s = mk(0.0f, 0, 1.0f, 0.0f, 2.0f, 1);
    CHECK_EQ_INT(loki_sampler_sample(s, lg2), 0);
    loki_sampler_accept(s, 0);
    CHECK_EQ_INT(loki_sampler_sample(s, lg2), 1); /* 2.0/2 = 1.0 < 1.5 */
    for (int i = 0; i < 4; i++) loki_sampler_accept(s, 5); /* window of 4 forgets id 0 */
    CHECK_EQ_INT(loki_sampler_sample(s, lg2), 0);
    loki_sampler_free(s);

    /* invalid parameters are refused with a message naming the option */
    loki_sampler_params p = loki_sampler_default_params();
    loki_error err = {0};
    p.top_p = 0.0f;
    CHECK(loki_sampler_init(&p, V, &s, &err) == LOKI_ERR_ARG && strstr(err.msg, "top-p"));
    p = loki_sampler_default_params();
    p.min_p = 1.5f;
    CHECK(loki_sampler_init(&p, V, &s, &err) == LOKI_ERR_ARG && strstr(err.msg, "min-p"));
    return test_finish();
}
