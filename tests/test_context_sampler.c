/*
 * test_context_sampler.c - sampling in the context (loki_eval_sample,
 * loki_decode_batch_sample; engine/sampling.c) against the plain loop a
 * caller writes with loki_eval and a loki_sampler over the downloaded logits.
 * Run as `test_context_sampler` on the CPU, and as `test_context_sampler
 * cuda` (CTest: test_cuda_context_sampler, label gpu; skips without a GPU),
 * where the samplers run on the device and only the tokens come back.
 *
 * Model: random f32 weights of the small Llama shape (tests/harness.c) with a
 * vocabulary of 3001 tokens, so that on the GPU every path of the device
 * sampler runs: greedy, top-k (top_k <= 2048 kept) and the full sort (top_k
 * 0). Two contexts of the same device and settings compute bit-identical
 * logits (dense attention: no kernel appends in a varying order), so the
 * tokens must be equal step for step, for every parameter set:
 *  - one sequence: the prompt recorded and evaluated, then 48 steps each
 *    feeding the sampled token, generation going on past the stop tokens
 *    (which must not enter the history: the repetition penalty shows it);
 *  - GPU: three sequences with their own seeds and prompts, each prompt
 *    sampled on its own row (sequence 1 and 2: the sampler's rows 1 and 2),
 *    then 32 batched steps;
 *  - contract: no sampler, bad stop tokens and tokens, no logits kept after
 *    a sampling call, loki_context_set_attn restarting the samplers.
 */
#include "test.h"

#include "engine/engine.h"
#include "model/random.h"

#define NV 3001
#define STEPS 48
#define BSTEPS 32
#define NSEQ 3

typedef struct pset {
    const char *name;
    loki_sampler_params p;
    int n_stop; /* stop tokens: the first n_stop tokens the reference samples */
} pset;

static loki_device g_dev;

static loki_context *mk_ctx(loki_model *m, int32_t n_seq, loki_error *err) {
    return test_context(m, g_dev, 160, n_seq, true, LOKI_KV_DEFAULT, err);
}

static bool in(const int32_t *set, int n, int32_t t) {
    for (int i = 0; i < n; i++)
        if (set[i] == t) return true;
    return false;
}

/* The caller's loop: loki_eval, loki_sampler over the logits, accept unless
 * a stop token. With stop NULL, the first *n_stop distinct sampled tokens
 * become the stop set (written to stop_out) from then on. out: STEPS tokens. */
static bool ref_run(loki_model *m, const loki_sampler_params *p, const int32_t *prompt, int np, int32_t *stop,
                    int *n_stop, int32_t *out) {
    loki_error err = {0};
    loki_context *c = mk_ctx(m, 1, &err);
    loki_sampler *s = NULL;
    bool ok = c && !loki_sampler_init(p, NV, &s, &err) && !loki_eval(c, prompt, np, false, &err);
    for (int i = 0; ok && i < np; i++) loki_sampler_accept(s, prompt[i]);
    int have = 0;
    for (int t = 0; ok && t < STEPS; t++) {
        out[t] = loki_sampler_sample(s, loki_get_logits(c, NULL));
        if (have < *n_stop && !in(stop, have, out[t])) stop[have++] = out[t];
        else if (!in(stop, have, out[t])) loki_sampler_accept(s, out[t]);
        ok = !loki_eval(c, &out[t], 1, false, &err);
    }
    CHECKF(ok, "reference run: %s", err.msg);
    *n_stop = have;
    loki_sampler_free(s);
    loki_context_free(c);
    return ok;
}

/* One sequence with the context's sampler: the same STEPS tokens? The stop
 * set is the one the reference collected; it is installed once the
 * reference's collection ended, i.e. here from the start, and the reference
 * recorded none of them either (a token joins the set when first sampled,
 * and is not recorded then). */
static void check_one(loki_model *m, const pset *ps, const int32_t *prompt, int np) {
    int32_t ref[STEPS], got[STEPS], stop[LOKI_SAMPLER_MAX_STOP];
    int n_stop = ps->n_stop;
    if (!ref_run(m, &ps->p, prompt, np, stop, &n_stop, ref)) return;
    loki_error err = {0};
    loki_context *c = mk_ctx(m, 1, &err);
    loki_status st = c ? loki_context_sampler_init(c, &ps->p, &err) : LOKI_ERR_ARG;
    if (!st) st = loki_context_sampler_set_stop(c, stop, n_stop, &err);
    if (!st) st = loki_context_sampler_accept(c, prompt, np, &err);
    int32_t tok = -1;
    if (!st) st = loki_eval_sample(c, prompt, np, &tok, &err);
    int t = 0, first_diff = -1, hits = 0;
    for (; !st && t < STEPS; t++) {
        got[t] = tok;
        if (got[t] != ref[t] && first_diff < 0) first_diff = t;
        hits += in(stop, n_stop, tok);
        st = loki_eval_sample(c, &got[t], 1, &tok, &err);
    }
    CHECKF(st == LOKI_OK, "%s: step %d: %s", ps->name, t, err.msg);
    CHECKF(first_diff < 0, "%s: step %d: the context sampled %d, the caller's loop %d", ps->name, first_diff,
           got[first_diff < 0 ? 0 : first_diff], ref[first_diff < 0 ? 0 : first_diff]);
    if (ps->n_stop) CHECKF(n_stop == ps->n_stop && hits > n_stop, "%s: %d stop tokens, sampled %d times", ps->name,
                           n_stop, hits);
    printf("%s: %d steps equal (%d stop tokens, sampled %d times)\n", ps->name, STEPS, n_stop, hits);
    loki_context_free(c);
}

/* GPU: NSEQ sequences, own seeds and prompts, then batched steps. */
static void check_batch(loki_model *m, const pset *ps) {
    loki_error err = {0};
    loki_context *r = mk_ctx(m, NSEQ, &err), *c = r ? mk_ctx(m, NSEQ, &err) : NULL;
    loki_sampler *s[NSEQ] = {0};
    int32_t cur_r[NSEQ], cur_c[NSEQ];
    loki_status st = c ? loki_context_sampler_init(c, &ps->p, &err) : LOKI_ERR_ARG;
    for (int q = 0; q < NSEQ && !st; q++) {
        int32_t prompt[40];
        const int np = 5 + 13 * q;
        for (int i = 0; i < np; i++) prompt[i] = (i * 131 + 7 + 977 * q) % NV;
        loki_sampler_params p = ps->p;
        p.seed = ps->p.seed + 1000u * (uint64_t)q;
        if ((st = loki_sampler_init(&p, NV, &s[q], &err)) || (st = loki_context_set_seq(r, q, &err)) ||
            (st = loki_eval(r, prompt, np, false, &err)) || (st = loki_context_set_seq(c, q, &err)) ||
            (st = loki_context_sampler_reset(c, p.seed, &err)) ||
            (st = loki_context_sampler_accept(c, prompt, np, &err)) ||
            (st = loki_eval_sample(c, prompt, np, &cur_c[q], &err)))
            break;
        for (int i = 0; i < np; i++) loki_sampler_accept(s[q], prompt[i]);
        cur_r[q] = loki_sampler_sample(s[q], loki_get_logits(r, NULL));
        loki_sampler_accept(s[q], cur_r[q]);
        CHECKF(cur_r[q] == cur_c[q], "%s: sequence %d's prompt: context %d, loop %d", ps->name, q, cur_c[q], cur_r[q]);
    }
    int t = 0, diff = 0;
    for (; !st && t < BSTEPS; t++) {
        int32_t nr[NSEQ], nc[NSEQ];
        if ((st = loki_decode_batch(r, cur_r, NSEQ, &err)) || (st = loki_decode_batch_sample(c, cur_c, NSEQ, nc, &err)))
            break;
        const float *lg = loki_get_logits(r, NULL);
        for (int q = 0; q < NSEQ; q++) {
            nr[q] = loki_sampler_sample(s[q], lg + (size_t)q * NV);
            loki_sampler_accept(s[q], nr[q]);
            diff += nr[q] != nc[q];
            cur_r[q] = nr[q], cur_c[q] = nc[q];
        }
    }
    CHECKF(st == LOKI_OK, "%s: batch step %d: %s", ps->name, t, err.msg);
    CHECKF(diff == 0, "%s: %d batched tokens differ from the caller's loop", ps->name, diff);
    printf("%s: %d sequences x %d batched steps equal\n", ps->name, NSEQ, BSTEPS);
    for (int q = 0; q < NSEQ; q++) loki_sampler_free(s[q]);
    loki_context_free(r);
    loki_context_free(c);
}

static void check_contract(loki_model *m, const int32_t *prompt, int np) {
    loki_error err = {0};
    loki_context *c = mk_ctx(m, 1, &err);
    CHECKF(c != NULL, "context: %s", err.msg);
    if (!c) return;
    int32_t tok = -1, bad[LOKI_SAMPLER_MAX_STOP + 1] = {0};
    CHECK(loki_eval_sample(c, prompt, np, &tok, &err) == LOKI_ERR_ARG);
    CHECKF(strstr(err.msg, "no sampler") != NULL, "%s", err.msg);
    CHECK(loki_decode_batch_sample(c, prompt, 1, &tok, &err) == LOKI_ERR_ARG);
    CHECK_EQ_INT(loki_context_pos(c), 0);
    CHECK(loki_context_sampler_accept(c, prompt, 1, &err) == LOKI_ERR_ARG);
    loki_sampler_params p = loki_sampler_default_params();
    p.top_p = 0.0f;
    CHECK(loki_context_sampler_init(c, &p, &err) == LOKI_ERR_ARG);
    CHECKF(strstr(err.msg, "top-p") != NULL || strstr(err.msg, "top_p") != NULL, "%s", err.msg);
    CHECK(loki_eval_sample(c, prompt, np, &tok, &err) == LOKI_ERR_ARG); /* a failed init leaves none */
    p = loki_sampler_default_params();
    p.temp = 1.0f, p.seed = 5;
    CHECK_OK(loki_context_sampler_init(c, &p, &err));
    CHECK(loki_context_sampler_set_stop(c, bad, LOKI_SAMPLER_MAX_STOP + 1, &err) == LOKI_ERR_ARG);
    bad[0] = NV;
    CHECK(loki_context_sampler_set_stop(c, bad, 1, &err) == LOKI_ERR_ARG);
    CHECKF(strstr(err.msg, "outside the vocabulary") != NULL, "%s", err.msg);
    bad[0] = -1;
    CHECK(loki_context_sampler_accept(c, bad, 1, &err) == LOKI_ERR_ARG);
    CHECK(loki_eval_sample(c, prompt, np, NULL, &err) == LOKI_ERR_ARG);
    CHECK_EQ_INT(loki_context_pos(c), 0);
    /* sampled: no logits kept; evaluated: one row */
    int32_t first = -1, again = -1, rows = -1;
    CHECK_OK(loki_eval_sample(c, prompt, np, &first, &err));
    loki_get_logits(c, &rows);
    CHECK_EQ_INT(rows, 0);
    CHECK_EQ_INT(loki_context_pos(c), np);
    CHECK_OK(loki_eval(c, &first, 1, false, &err));
    loki_get_logits(c, &rows);
    CHECK_EQ_INT(rows, 1);
    /* set_attn empties the cache and restarts the sampler: the same first token */
    loki_attn_params dense = loki_attn_default_params();
    CHECK_OK(loki_context_set_attn(c, &dense, &err));
    CHECK_OK(loki_eval_sample(c, prompt, np, &again, &err));
    CHECK_EQ_INT(again, first);
    /* the reset of the sequence's sampler does the same */
    loki_context_reset(c);
    CHECK_OK(loki_context_sampler_reset(c, 5, &err));
    CHECK_OK(loki_eval_sample(c, prompt, np, &again, &err));
    CHECK_EQ_INT(again, first);
    loki_context_free(c);
}

int main(int argc, char **argv) {
    g_dev = argc > 1 && !strcmp(argv[1], "cuda") ? LOKI_DEVICE_CUDA : LOKI_DEVICE_CPU;
    if (g_dev == LOKI_DEVICE_CUDA && !loki_cuda_available()) {
        printf("SKIP: no usable GPU (or loki built without CUDA)\n");
        return 77;
    }
    lk_hparams hp;
    test_small_llama(&hp, 2, 4, 2, 512, 256);
    hp.n_vocab = NV;
    loki_error err = {0};
    loki_model *m = calloc(1, sizeof(*m));
    if (!m) test_need(LOKI_ERR_NOMEM, &err, "model struct");
    test_need(lk_model_init_random(m, &hp, LK_DTYPE_F32, 23, &err), &err, "random model");
    int32_t prompt[37];
    const int np = 37;
    for (int i = 0; i < np; i++) prompt[i] = (i * 211 + 3) % NV;

    const loki_sampler_params d = loki_sampler_default_params();
    pset sets[8];
    int n = 0;
    sets[n] = (pset){"greedy", d, 0}, sets[n].p.temp = 0.0f, n++;
    sets[n] = (pset){"greedy, penalty 1.3, 2 stop tokens", d, 2};
    sets[n].p.temp = 0.0f, sets[n].p.repeat_penalty = 1.3f, sets[n].p.repeat_last_n = 16, n++;
    sets[n] = (pset){"defaults (top-k 40, top-p .95, min-p .05, T .8)", d, 0}, sets[n].p.seed = 7, n++;
    sets[n] = (pset){"T 60, top-k 3, penalty 1.5, 2 stop tokens", d, 2};
    sets[n].p.temp = 60.0f, sets[n].p.top_k = 3, sets[n].p.top_p = 1.0f, sets[n].p.min_p = 0.0f;
    sets[n].p.repeat_penalty = 1.5f, sets[n].p.repeat_last_n = 64, sets[n].p.seed = 11, n++;
    sets[n] = (pset){"T 40, top-k 0 (full sort), top-p .9", d, 0};
    sets[n].p.temp = 40.0f, sets[n].p.top_k = 0, sets[n].p.top_p = 0.9f, sets[n].p.min_p = 0.0f, sets[n].p.seed = 3, n++;
    sets[n] = (pset){"T 40, top-k 2500 (full sort), min-p .5, penalty .8", d, 0};
    sets[n].p.temp = 40.0f, sets[n].p.top_k = 2500, sets[n].p.min_p = 0.5f, sets[n].p.repeat_penalty = 0.8f;
    sets[n].p.seed = 99, n++;
    for (int i = 0; i < n; i++) check_one(m, &sets[i], prompt, np);
    if (g_dev == LOKI_DEVICE_CUDA)
        for (int i = 0; i < n; i++) check_batch(m, &sets[i]);
    check_contract(m, prompt, np);
    loki_model_close(m);
    return test_finish();
}
