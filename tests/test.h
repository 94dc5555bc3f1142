/*
 * test.h - minimal test harness. Each test_*.c has a main() that runs checks
 * with CHECK*, and ends with `return test_finish();`, which prints
 * "N passed, M failed" and returns 0/1. test_skip("why") exits with 77, which
 * CTest reports as skipped.
 */
#ifndef LK_TEST_H
#define LK_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loki.h"

typedef struct test_state {
    int passed;
    int failed;
} test_state;

extern test_state g_test; /* test executables only; the library has no globals */

#define CHECK(cond) test_check((cond), #cond, __FILE__, __LINE__, "")
#define CHECKF(cond, ...) do { char m_[2048]; snprintf(m_, sizeof m_, __VA_ARGS__); \
        test_check((cond), #cond, __FILE__, __LINE__, m_); } while (0)
#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
        CHECKF(a_ == b_, "%s = %lld, %s = %lld", #a, a_, #b, b_); } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); \
        CHECKF(fabs(a_ - b_) <= (tol), "%s = %.9g, %s = %.9g, tol %.3g", #a, a_, #b, b_, (double)(tol)); } while (0)
#define CHECK_OK(expr) do { loki_error e_ = {0}; (void)e_; loki_status s_ = (expr); \
        CHECKF(s_ == LOKI_OK, "status %d", (int)s_); } while (0)

void test_check(bool ok, const char *expr, const char *file, int line, const char *msg);
int test_finish(void);
void test_skip(const char *why);

/* Path under ../shared ("models/fixture-15m"); NULL-safe helper that returns
 * a static-lifetime heap string. test_shared_or_skip() skips when absent. */
char *test_shared_path(const char *rel);
char *test_shared_or_skip(const char *rel);
bool test_file_exists(const char *path);
/* x rounded to the nearest bf16 (ties to even), as a float. */
float test_bf16_round(float x);
/* Whole file into a heap buffer (16 spare bytes; NULL if unreadable), and back. */
uint8_t *test_read_all(const char *path, size_t *n);
void test_write_all(const char *path, const void *d, size_t n);
/* Run a shell command, capture stdout into a heap string; *status = exit code. */
char *test_run_capture(const char *cmd, int *status);
/* Fill with uniform random floats in [lo, hi) from a xorshift seed. */
void test_fill_random(float *x, size_t n, float lo, float hi, uint64_t *seed);
/* A new heap array (test_xmalloc) of n such floats; the next uint32 of the stream. */
float *test_random_floats(size_t n, float lo, float hi, uint64_t *seed);
uint32_t test_rand32(uint64_t *seed);
/* malloc that ends the test (exit 1, message on stderr) when the host is out
 * of memory: infrastructure, not a check. */
void *test_xmalloc(size_t bytes);
/* End the test (exit 1) when a set-up step (allocation, copy) failed. */
void test_need(loki_status st, const loki_error *err, const char *what);
/* max|a - b| / max|b| over n values (logit rows: a relative difference). */
double test_rel_maxdiff(const float *a, const float *b, int n);
/* Index of the largest of x (n), the first on ties. */
int test_argmax(const float *x, int n);
/* The GPU of a `gpu` test: exits 77 (skipped, saying why) when loki was
 * built without the CUDA backend or no GPU is usable; otherwise *seed
 * becomes LOKI_TEST_SEED | 1 when that is set, and the GPU and the seed are
 * printed. Free with lk_cuda_free. */
struct lk_cuda *test_gpu_open(uint64_t *seed);
/* A small Llama shape for random models (model/random.h): n_embd 256,
 * head_dim = rope_dim 64 (neox), n_vocab 301 (so the embedding's byte size
 * is a multiple of 64 in no quantized type: the tensors after it start at
 * padded offsets), rms_eps 1e-5, theta 1e4; the rest as given. */
/* A context of m on dev for n_ctx tokens (n_batch 64, 2 threads), n_seq
 * sequences, CUDA graphs on or off, KV cache type kv (the CPU's); NULL with
 * *err set on failure. */
loki_context *test_context(loki_model *m, loki_device dev, int32_t n_ctx, int32_t n_seq, bool graphs, loki_kv_type kv,
                           loki_error *err);
struct lk_hparams;
void test_small_llama(struct lk_hparams *hp, int n_layer, int n_head, int n_head_kv, int n_ff, int n_ctx_train);

#endif
