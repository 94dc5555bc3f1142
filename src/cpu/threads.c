/*
 * threads.c - lk_pool: persistent worker threads with a low-latency
 * dispatch barrier (see cpu.h for the API).
 *
 * Why this shape: decoding a small model runs ~60 parallel regions per token
 * at >1000 tokens/s, so one region's start+finish must cost a few
 * microseconds. A mutex/condvar round trip costs 10-50 us (two syscalls and
 * a context switch each way), so:
 *   - start: the caller publishes (fn, arg) and bumps a generation counter;
 *     idle workers spin on that counter (with a pause hint) and see the bump
 *     within ~100 ns;
 *   - finish: every worker increments a done counter; the caller spins on it.
 * Spinning forever would burn a core while the program does something else
 * (tokenizing, sampling, waiting for input), so a waiter spins for a bounded
 * time (LK_POOL_SPIN_NS) and then sleeps on a futex (Linux) or a condvar
 * (elsewhere). A waker only makes the wake-up syscall when someone actually
 * sleeps (a sleeper count, checked with sequentially consistent ordering so
 * a sleeper can never miss the wake-up: Dekker-style handshake in which
 * futex_wait re-checks the counter atomically in the kernel).
 *
 * Memory ordering: fn/arg are written before the seq_cst generation bump and
 * read after observing it; each worker's task effects happen before its
 * seq_cst done-increment, which the caller observes before returning.
 */
#include "cpu/cpu.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LK_POOL_FUTEX 1
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LK_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define LK_PAUSE() __asm__ __volatile__("yield")
#else
#define LK_PAUSE() ((void)0)
#endif

/* How long a waiter spins before sleeping. Long enough to bridge the gap
 * between consecutive regions of a decode step (the caller runs a little
 * serial code between them), short enough not to matter when idle. */
#define LK_POOL_SPIN_NS 200000.0

/* Cache-line separated hot fields: the generation (written by the caller,
 * read by all workers) and the done counter (written by all workers, read by
 * the caller) must not false-share. */
struct lk_pool {
    _Alignas(64) atomic_uint gen;      /* bumped once per dispatch */
    atomic_int gen_sleepers;           /* workers asleep on gen */
    atomic_int stop;                   /* set once by lk_pool_free */
    lk_task_fn fn;                     /* current task, published by the gen bump */
    void *arg;
    _Alignas(64) atomic_uint done;     /* workers finished with the current gen */
    atomic_int done_sleeper;           /* 1 while the caller sleeps on done */
    _Alignas(64) int n;                /* threads including the caller */
    int oversubscribed;                /* n > online CPUs: yield while spinning */
    pthread_t *threads;                /* (n - 1) workers */
    struct lk_worker *workers;         /* (n - 1) */
#if !defined(LK_POOL_FUTEX)
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

typedef struct lk_worker {
    lk_pool *pool;
    int ith;
} lk_worker;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Sleep while *addr == expected (may return spuriously; callers re-check). */
static void wait_on(lk_pool *p, atomic_uint *addr, unsigned expected) {
#if defined(LK_POOL_FUTEX)
    (void)p;
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    pthread_mutex_lock(&p->mu);
    if (atomic_load(addr) == expected) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
#endif
}

/* Wake every thread sleeping on addr. */
static void wake_all(lk_pool *p, atomic_uint *addr) {
#if defined(LK_POOL_FUTEX)
    (void)p;
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#else
    (void)addr;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
#endif
}

/* Wait until *addr != old: spin LK_POOL_SPIN_NS, then sleep, registering in
 * *sleepers so the writer knows to wake us. Returns the new value. */
static unsigned wait_change(lk_pool *p, atomic_uint *addr, unsigned old, atomic_int *sleepers) {
    unsigned v;
    double t0 = 0.0;
    for (unsigned i = 0;; i++) {
        v = atomic_load_explicit(addr, memory_order_acquire);
        if (v != old) return v;
        LK_PAUSE();
        if ((i & 255) == 255) { /* read the clock rarely: it costs ~20 ns */
            if (p->oversubscribed) sched_yield(); /* let the thread we wait for run */
            double t = now_ns();
            if (t0 == 0.0) t0 = t;
            else if (t - t0 > LK_POOL_SPIN_NS) break;
        }
    }
    for (;;) {
        atomic_fetch_add(sleepers, 1); /* seq_cst: pairs with the writer's load */
        v = atomic_load(addr);
        if (v == old) wait_on(p, addr, old);
        atomic_fetch_sub(sleepers, 1);
        v = atomic_load_explicit(addr, memory_order_acquire);
        if (v != old) return v;
    }
}

static void *worker_main(void *varg) {
    lk_worker *w = varg;
    lk_pool *p = w->pool;
    unsigned gen = 0;
    for (;;) {
        gen = wait_change(p, &p->gen, gen, &p->gen_sleepers);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->arg, w->ith, p->n);
        unsigned d = atomic_fetch_add(&p->done, 1) + 1; /* seq_cst */
        if (d == (unsigned)(p->n - 1) && atomic_load(&p->done_sleeper)) wake_all(p, &p->done);
    }
    return NULL;
}

loki_status lk_pool_init(lk_pool **out, int n_threads, loki_error *err) {
    if (n_threads < 1 || n_threads > 1024)
        return lk_fail(err, LOKI_ERR_ARG, "thread pool: bad thread count %d", n_threads);
    lk_pool *p = lk_alloc_aligned(sizeof *p, err);
    if (!p) return err ? err->status : LOKI_ERR_NOMEM;
    atomic_init(&p->gen, 0);
    atomic_init(&p->gen_sleepers, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->done_sleeper, 0);
    p->n = n_threads;
    p->oversubscribed = n_threads > lk_n_cpus();
    p->fn = NULL;
    p->arg = NULL;
#if !defined(LK_POOL_FUTEX)
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
#endif
    int nw = n_threads - 1;
    p->threads = nw ? lk_calloc((size_t)nw, sizeof *p->threads, err) : NULL;
    p->workers = nw ? lk_calloc((size_t)nw, sizeof *p->workers, err) : NULL;
    if (nw && (!p->threads || !p->workers)) {
        free(p->threads);
        free(p->workers);
        lk_free_aligned(p);
        return err ? err->status : LOKI_ERR_NOMEM;
    }
    for (int i = 0; i < nw; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            p->n = i + 1; /* lk_pool_free joins the i workers already started */
            lk_pool_free(p);
            return lk_fail(err, LOKI_ERR_NOMEM, "thread pool: cannot create thread %d of %d",
                           i + 1, n_threads);
        }
    }
    *out = p;
    return LOKI_OK;
}

void lk_pool_free(lk_pool *p) {
    if (!p) return;
    int nw = p->n - 1;
    if (nw > 0) {
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->gen, 1);
        wake_all(p, &p->gen);
        for (int i = 0; i < nw; i++) pthread_join(p->threads[i], NULL);
    }
#if !defined(LK_POOL_FUTEX)
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
#endif
    free(p->threads);
    free(p->workers);
    lk_free_aligned(p);
}

int lk_pool_size(const lk_pool *p) { return p->n; }

/* Not reentrant: fn must not call lk_pool_run on the same pool, and only one
 * thread may dispatch on a pool at a time. */
void lk_pool_run(lk_pool *p, lk_task_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed); /* ordered by the bump below */
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/arg (and the done reset) */
    if (atomic_load(&p->gen_sleepers) > 0) wake_all(p, &p->gen);
    fn(arg, 0, p->n);
    unsigned want = (unsigned)(p->n - 1);
    unsigned d = atomic_load_explicit(&p->done, memory_order_acquire);
    if (d == want) return;
    /* Caller-side wait: spin, then sleep on done (workers wake us). */
    double t0 = 0.0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == want) return;
        LK_PAUSE();
        if ((i & 255) == 255) {
            if (p->oversubscribed) sched_yield();
            double t = now_ns();
            if (t0 == 0.0) t0 = t;
            else if (t - t0 > LK_POOL_SPIN_NS) break;
        }
    }
    for (;;) {
        atomic_store(&p->done_sleeper, 1); /* seq_cst: pairs with the worker's increment */
        d = atomic_load(&p->done);
        if (d != want) wait_on(p, &p->done, d);
        atomic_store(&p->done_sleeper, 0);
        if (atomic_load_explicit(&p->done, memory_order_acquire) == want) return;
    }
}
