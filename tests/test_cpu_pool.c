/* test_cpu_pool.c - lk_pool: every thread index runs exactly once per
 * dispatch, over many dispatches, with and without idle gaps (the gaps let
 * workers fall asleep on the futex, exercising the wake-up path). */
#include "cpu/cpu.h"
#include "test.h"

#include <stdatomic.h>
#include <time.h>

typedef struct pool_probe {
    atomic_int count[16];   /* (16) times each ith ran in this dispatch */
    atomic_int bad_nth;     /* dispatches that saw the wrong nth */
    int want_nth;
} pool_probe;

static void probe_fn(void *arg, int ith, int nth) {
    pool_probe *p = arg;
    if (ith < 0 || ith >= 16) return;
    atomic_fetch_add(&p->count[ith], 1);
    if (nth != p->want_nth) atomic_fetch_add(&p->bad_nth, 1);
}

typedef struct sum_task {
    const int *v;      /* (n) */
    int n;
    long long part[16]; /* (16) per-thread partial sums */
    int nth_seen[16];
} sum_task;

static void sum_fn(void *arg, int ith, int nth) {
    sum_task *t = arg;
    long long s = 0;
    for (int i = ith; i < t->n; i += nth) s += t->v[i];
    t->part[ith] = s;
    t->nth_seen[ith] = nth;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void run_pool(int nth) {
    lk_pool *pool = NULL;
    loki_error err = {0};
    CHECK_OK(lk_pool_init(&pool, nth, &err));
    if (!pool) return;
    CHECK_EQ_INT(lk_pool_size(pool), nth);

    /* many back-to-back dispatches: counts must advance in lockstep */
    pool_probe pr;
    for (int i = 0; i < 16; i++) atomic_init(&pr.count[i], 0);
    atomic_init(&pr.bad_nth, 0);
    pr.want_nth = nth;
    const int iters = nth <= lk_n_cpus() ? 200000 : 20000;
    int mismatch = 0;
    double t0 = lk_time_s();
    for (int it = 1; it <= iters; it++) {
        lk_pool_run(pool, probe_fn, &pr);
        for (int i = 0; i < nth; i++)
            if (atomic_load(&pr.count[i]) != it) mismatch++;
    }
    double dt = lk_time_s() - t0;
    CHECKF(mismatch == 0, "nth %d: %d count mismatches", nth, mismatch);
    CHECK_EQ_INT(atomic_load(&pr.bad_nth), 0);
    for (int i = nth; i < 16; i++) CHECK_EQ_INT(atomic_load(&pr.count[i]), 0);
    printf("pool nth=%d: %.2f us per empty dispatch\n", nth, dt / iters * 1e6);

    /* results are visible to the caller after lk_pool_run; gaps of 1-2 ms
     * put the workers to sleep between dispatches */
    int v[1000];
    long long want = 0;
    for (int i = 0; i < 1000; i++) { v[i] = i * 7 - 300; want += v[i]; }
    int wrong = 0;
    for (int it = 0; it < 60; it++) {
        sum_task t = {.v = v, .n = 1000};
        lk_pool_run(pool, sum_fn, &t);
        long long s = 0;
        for (int i = 0; i < nth; i++) {
            s += t.part[i];
            if (t.nth_seen[i] != nth) wrong++;
        }
        if (s != want) wrong++;
        if (it % 3 == 0) sleep_us(it % 2 ? 300 : 1500);
    }
    CHECKF(wrong == 0, "nth %d: %d wrong sums after idle gaps", nth, wrong);
    lk_pool_free(pool);
}

int main(void) {
    run_pool(1);
    run_pool(2);
    run_pool(3); /* more threads than cores: the sleep path must carry it */
    lk_pool *p = NULL;
    loki_error err = {0};
    CHECK(lk_pool_init(&p, 0, &err) == LOKI_ERR_ARG);
    CHECK(p == NULL);
    lk_pool_free(NULL);
    return test_finish();
}
