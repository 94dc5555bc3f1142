/* test_sampler.c - sampling: greedy, top-k, top-p, min-p, temperature,
 * repetition penalty and seeding, checked on hand-made distributions. */
#include "test.h"

#include "loki.h"

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

int main(void) {
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
