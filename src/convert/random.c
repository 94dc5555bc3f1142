/*
 * random.c - `loki convert --random-weights SHAPE`: the random-weight model
 * of `bench decode --random-weights` as a GGUF file that llama.cpp and loki
 * load (what is written and why: convert.h, lk_convert_random_to_gguf).
 *
 * The weights are those of lk_model_init_random (src/model/random.c) for the
 * same seed and dtype: one lk_random_pool filled into the matrices in the
 * model's order (token_embd, output, then per layer q, k, v, o, gate, up,
 * down), so the GGUF's tensors are declared in that order and produced while
 * the writer streams them, one at a time.
 */
#include "convert/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "model/random.h"

/* The placeholder vocabulary's first tokens: <unk>, <s>, </s>, 256 bytes. */
#define RANDOM_VOCAB_FIXED 259

/* llama.cpp's token types (llama_token_type). */
enum { TOKTYPE_NORMAL = 1, TOKTYPE_UNKNOWN = 2, TOKTYPE_CONTROL = 3, TOKTYPE_BYTE = 6 };

/* What one output tensor holds. */
typedef enum { RJOB_MATRIX, RJOB_NORM, RJOB_ROPE_FREQS } rjob_kind;

/* The writer's fill callback state: the tensors' kinds in file order, the
 * pool, and the index the next fill must have (the pool's values depend on
 * the order of the fills). */
typedef struct rconv_ctx {
    const lk_hparams *hp;
    rjob_kind *kinds;
    uint64_t n_jobs, next;
    lk_random_pool pool;
} rconv_ctx;

/* lk_gguf_fill_fn: produce tensor `index` into dst (nbytes). Tensors must
 * come in file order (LOKI_ERR_ARG otherwise). */
static loki_status rconv_fill(void *vctx, uint64_t index, void *dst, size_t nbytes, loki_error *err) {
    rconv_ctx *c = vctx;
    if (index != c->next || index >= c->n_jobs)
        return lk_fail(err, LOKI_ERR_ARG, "random weights: tensor %llu asked for out of order (expected %llu)",
                       (unsigned long long)index, (unsigned long long)c->next);
    c->next++;
    switch (c->kinds[index]) {
    case RJOB_MATRIX: lk_random_pool_fill(&c->pool, dst, nbytes); break;
    case RJOB_NORM:
        for (size_t i = 0; i < nbytes / sizeof(float); i++) ((float *)dst)[i] = 1.0f;
        break;
    case RJOB_ROPE_FREQS: lk_convert_llama3_factors(c->hp, dst); break;
    }
    return LOKI_OK;
}

/* Declare tensor `name` of `rows` x `cols` (rows 1: a vector) in dtype dt
 * with its kind in c->kinds[c->n_jobs] (capacity checked by the caller). */
static loki_status rconv_add(lk_gguf_writer *w, rconv_ctx *c, const char *name, rjob_kind kind, lk_dtype dt,
                             int64_t rows, int64_t cols, loki_error *err) {
    const int64_t ne[2] = {cols, rows};
    loki_status st = lk_gguf_writer_add_tensor_deferred(w, name, dt, rows > 1 ? 2 : 1, ne);
    if (st) return lk_fail(err, st, "tensor '%s': cannot add (%s)", name, loki_status_str(st));
    c->kinds[c->n_jobs++] = kind;
    return LOKI_OK;
}

/* Declare every tensor under its llama.cpp name, in lk_model_init_random's
 * fill order for the matrices. c->kinds holds 3 + 9 * n_layer entries. */
static loki_status rconv_add_tensors(lk_gguf_writer *w, rconv_ctx *c, lk_dtype dt, loki_error *err) {
    const lk_hparams *hp = c->hp;
    const int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim,
                  KD = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    loki_status st;
    if ((st = rconv_add(w, c, "token_embd.weight", RJOB_MATRIX, dt, V, E, err)) ||
        (st = rconv_add(w, c, "output.weight", RJOB_MATRIX, dt, V, E, err)) ||
        (st = rconv_add(w, c, "output_norm.weight", RJOB_NORM, LK_DTYPE_F32, 1, E, err)))
        return st;
    if (hp->rope_scaling == LK_ROPE_SCALING_LLAMA3 &&
        (st = rconv_add(w, c, "rope_freqs.weight", RJOB_ROPE_FREQS, LK_DTYPE_F32, 1, hp->rope_dim / 2, err)))
        return st;
    for (int il = 0; il < hp->n_layer; il++) {
        const struct { const char *name; rjob_kind kind; lk_dtype dt; int64_t rows, cols; } ts[] = {
            {"attn_norm.weight", RJOB_NORM, LK_DTYPE_F32, 1, E},
            {"ffn_norm.weight", RJOB_NORM, LK_DTYPE_F32, 1, E},
            {"attn_q.weight", RJOB_MATRIX, dt, QD, E},
            {"attn_k.weight", RJOB_MATRIX, dt, KD, E},
            {"attn_v.weight", RJOB_MATRIX, dt, KD, E},
            {"attn_output.weight", RJOB_MATRIX, dt, E, QD},
            {"ffn_gate.weight", RJOB_MATRIX, dt, F, E},
            {"ffn_up.weight", RJOB_MATRIX, dt, F, E},
            {"ffn_down.weight", RJOB_MATRIX, dt, E, F},
        };
        for (size_t k = 0; k < LK_ARRAY_LEN(ts); k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", il, ts[k].name);
            if ((st = rconv_add(w, c, name, ts[k].kind, ts[k].dt, ts[k].rows, ts[k].cols, err))) return st;
        }
    }
    return LOKI_OK;
}

/* tokenizer.ggml.*: the placeholder SentencePiece vocabulary of n tokens
 * (convert.h); n >= RANDOM_VOCAB_FIXED. */
static loki_status rconv_write_vocab(lk_gguf_writer *w, int32_t n, loki_error *err) {
    loki_status st = LOKI_OK;
    char **texts = lk_calloc((size_t)n, sizeof *texts, err);
    float *scores = lk_calloc((size_t)n, sizeof *scores, err);
    int32_t *types = lk_calloc((size_t)n, sizeof *types, err);
    if (!texts || !scores || !types) {
        st = LOKI_ERR_NOMEM;
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!(texts[i] = lk_malloc(24, err))) {
            st = LOKI_ERR_NOMEM;
            goto done;
        }
        if (i < 3) {
            snprintf(texts[i], 24, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            types[i] = i == 0 ? TOKTYPE_UNKNOWN : TOKTYPE_CONTROL;
        } else if (i < RANDOM_VOCAB_FIXED) {
            snprintf(texts[i], 24, "<0x%02X>", (unsigned)(i - 3));
            types[i] = TOKTYPE_BYTE;
        } else {
            snprintf(texts[i], 24, "tok%d", (int)i);
            types[i] = TOKTYPE_NORMAL;
            scores[i] = -(float)(i - RANDOM_VOCAB_FIXED);
        }
    }
    lk_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    lk_gguf_writer_add_str(w, "tokenizer.ggml.pre", "default");
    lk_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, (uint64_t)n);
    lk_gguf_writer_add_arr(w, "tokenizer.ggml.scores", LK_GGUF_FLOAT32, scores, (uint64_t)n);
    lk_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LK_GGUF_INT32, types, (uint64_t)n);
    lk_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    lk_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
    lk_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    lk_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    lk_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false);
done:
    if (texts)
        for (int32_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(scores);
    free(types);
    return st;
}

/* The shape's name for general.name: a preset name, or a config.json's
 * parent folder and file name without ".json" ("random <name>"). */
static void rconv_name(const char *shape, char *out, size_t cap) {
    const char *b = strrchr(shape, '/');
    b = b ? b + 1 : shape;
    size_t n = strlen(b);
    if (n > 5 && strcmp(b + n - 5, ".json") == 0) n -= 5;
    snprintf(out, cap, "random %.*s", (int)n, b);
}

loki_status lk_convert_random_to_gguf(const char *shape, const char *out_path, lk_dtype type, uint64_t seed,
                                      lk_stop_flag *stop, loki_error *err) {
    lk_hparams hp;
    lk_gguf_writer *w = NULL;
    rconv_ctx c = {0};
    loki_status st;
    if (!shape || !out_path) return lk_fail(err, LOKI_ERR_ARG, "convert: a shape and an output path are required");
    lk_dtype dummy;
    if (!lk_convert_type_parse(lk_dtype_name(type), &dummy))
        return lk_fail(err, LOKI_ERR_ARG, "convert --random-weights: type %s is not one of f32, f16, bf16, q8_0, "
                       "q4_0, q4_k, q6_k", lk_dtype_name(type));
    if ((st = lk_hparams_from_shape(shape, &hp, err))) return lk_fail_prefix(err, "--random-weights %s", shape);
    if (strcmp(hp.arch, "llama") != 0)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "--random-weights %s: architecture '%s': only llama shapes "
                       "convert (llama2-7b, llama3-8b, a llama/mistral config.json)", shape, hp.arch);
    if (hp.rope_dim != hp.head_dim)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "--random-weights %s: partial rotary (%d of %d dims) is not "
                       "supported for llama", shape, (int)hp.rope_dim, (int)hp.head_dim);
    if ((st = lk_random_check_shape(&hp, type, err))) return lk_fail_prefix(err, "--random-weights %s", shape);
    if (hp.n_vocab < RANDOM_VOCAB_FIXED)
        return lk_fail(err, LOKI_ERR_ARG, "--random-weights %s: vocab_size %d is below %d (the placeholder "
                       "vocabulary's <unk>, <s>, </s> and 256 byte tokens)", shape, (int)hp.n_vocab,
                       RANDOM_VOCAB_FIXED);
    c.hp = &hp;
    if (!(c.kinds = lk_calloc(4 + 9 * (size_t)hp.n_layer, sizeof *c.kinds, err))) return LOKI_ERR_NOMEM;
    if ((st = lk_gguf_writer_init(&w, err))) goto done;
    lk_gguf_writer_set_stop(w, stop);
    char name[256];
    rconv_name(shape, name, sizeof name);
    lk_convert_write_hparams(w, &hp, name, type);
    lk_gguf_writer_add_str(w, "loki.random_weights.shape", shape);
    lk_gguf_writer_add_u64(w, "loki.random_weights.seed", seed);
    lk_gguf_writer_add_str(w, "loki.random_weights.type", lk_dtype_name(type));
    if ((st = rconv_write_vocab(w, hp.n_vocab, err)) || (st = rconv_add_tensors(w, &c, type, err))) goto done;
    if ((st = lk_random_pool_init(&c.pool, type, seed, err))) goto done;
    st = lk_gguf_writer_write_stream(w, out_path, rconv_fill, &c, err);
done:
    lk_random_pool_free(&c.pool);
    free(c.kinds);
    lk_gguf_writer_free(w);
    return st;
}
