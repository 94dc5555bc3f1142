/*
 * random.c - a model of a given shape with random weights, for benchmarks
 * that must run without downloading a real checkpoint. Only speed is
 * meaningful: the weights are small uniform noise (|w| < 0.02) so activations
 * stay finite; there is no tokenizer.
 */
#include "model/model.h"
#include "model/random.h"

#include "format/hf_config.h"

#include <stdlib.h>
#include <string.h>

#define POOL_VALUES (1 << 18) /* distinct random values cycled through the weights */

loki_status lk_hparams_preset(const char *name, lk_hparams *hp, loki_error *err) {
    memset(hp, 0, sizeof(*hp));
    strcpy(hp->arch, "llama");
    hp->rms_eps = 1e-5f;
    hp->rope_style = LK_ROPE_NEOX;
    hp->n_embd = 4096;
    hp->n_layer = 32;
    hp->n_head = 32;
    hp->head_dim = 128;
    hp->rope_dim = 128;
    if (!strcmp(name, "llama2-7b")) {
        hp->n_head_kv = 32;
        hp->n_ff = 11008;
        hp->n_vocab = 32000;
        hp->n_ctx_train = 4096;
        hp->rope_theta = 10000.0f;
    } else if (!strcmp(name, "llama3-8b")) {
        hp->n_head_kv = 8;
        hp->n_ff = 14336;
        hp->n_vocab = 128256;
        hp->n_ctx_train = 8192;
        hp->rope_theta = 500000.0f;
    } else {
        return lk_fail(err, LOKI_ERR_ARG, "unknown model shape '%s' (llama2-7b, llama3-8b or a config.json path)", name);
    }
    return LOKI_OK;
}

/* Bytes of a (rows, cols) matrix in dtype t. */
static size_t mat_bytes(lk_dtype t, int64_t rows, int64_t cols) { return lk_dtype_row_bytes(t, cols) * (size_t)rows; }

/* Point t at the next `bytes` of the arena; 64-byte aligned. */
static void carve(lk_tensor *t, const char *name, lk_dtype dt, int64_t rows, int64_t cols, uint8_t *arena,
                  size_t *off) {
    t->name = name;
    t->dtype = dt;
    t->n_dims = rows > 1 ? 2 : 1;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = t->ne[3] = 1;
    t->nbytes = mat_bytes(dt, rows, cols);
    t->data = arena + *off;
    *off += (t->nbytes + 63) & ~(size_t)63;
}

loki_status lk_random_pool_init(lk_random_pool *p, lk_dtype dt, uint64_t seed, loki_error *err) {
    memset(p, 0, sizeof(*p));
    if (!lk_dtype_valid((int)dt)) return lk_fail(err, LOKI_ERR_ARG, "random weights: invalid dtype %d", (int)dt);
    float *vals = lk_malloc(sizeof(float) * POOL_VALUES, err);
    p->nbytes = lk_dtype_row_bytes(dt, POOL_VALUES);
    p->bytes = vals ? lk_malloc(p->nbytes, err) : NULL;
    if (!p->bytes) {
        free(vals);
        return LOKI_ERR_NOMEM;
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < POOL_VALUES; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        vals[i] = ((float)(s >> 40) / 16777216.0f - 0.5f) * 0.04f;
    }
    lk_row_from_f32(dt, vals, p->bytes, POOL_VALUES);
    free(vals);
    p->dt = dt;
    p->blk = lk_dtype_block_bytes(dt);
    return LOKI_OK;
}

void lk_random_pool_free(lk_random_pool *p) {
    free(p->bytes);
    memset(p, 0, sizeof(*p));
}

void lk_random_pool_fill(lk_random_pool *p, void *dst, size_t nbytes) {
    uint8_t *d = dst;
    for (size_t o = 0; o < nbytes; p->k++) {
        size_t start = (p->k * 7919 % 61) * p->blk;
        size_t n = LK_MIN(p->nbytes - start, nbytes - o);
        memcpy(d + o, p->bytes + start, n);
        o += n;
    }
}

loki_status lk_random_check_shape(const lk_hparams *hp, lk_dtype dt, loki_error *err) {
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim, KD = (int64_t)hp->n_head_kv * hp->head_dim;
    if (!lk_dtype_valid((int)dt)) return lk_fail(err, LOKI_ERR_ARG, "random model: invalid dtype %d", (int)dt);
    const int64_t mult = LK_MAX(32, lk_dtype_block_elems(dt)); /* 256 for the K-quants */
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_vocab <= 0 || QD <= 0 || KD <= 0 || hp->n_ff <= 0)
        return lk_fail(err, LOKI_ERR_ARG, "random model: every dimension must be positive");
    if (hp->n_embd % mult || QD % mult || KD % mult || hp->n_ff % mult)
        return lk_fail(err, LOKI_ERR_ARG, "random model: dimensions must be multiples of %lld for %s",
                       (long long)mult, lk_dtype_name(dt));
    return LOKI_OK;
}

loki_status lk_hparams_from_shape(const char *shape, lk_hparams *hp, loki_error *err) {
    if (!shape || !shape[0]) return lk_fail(err, LOKI_ERR_ARG, "no model shape (llama2-7b, llama3-8b or a config.json path)");
    if (!strstr(shape, ".json")) return lk_hparams_preset(shape, hp, err);
    lk_hf_config cfg;
    loki_status st = lk_hf_config_load(shape, &cfg, err);
    if (!st) *hp = cfg.hp;
    return st;
}

loki_status lk_model_init_random(loki_model *m, const lk_hparams *hp, lk_dtype dt, uint64_t seed,
                                 loki_error *err) {
    const int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim,
                  KD = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    loki_status st = lk_random_check_shape(hp, dt, err);
    if (st) return st;
    m->hp = *hp;
    strcpy(m->format, "random");
    m->vocab.bos_id = m->vocab.eos_id = m->vocab.unk_id = m->vocab.pad_id = -1;
    /* Gemma 3 (a gemma3_text config.json): QK-norm and post-norm vectors too */
    const bool gemma = !strcmp(hp->arch, "gemma3");
    const int64_t Dh = hp->head_dim;
    size_t per_layer = (gemma ? 4 : 2) * ((E * 4 + 63) & ~(size_t)63) +
                       (gemma ? 2 * ((Dh * 4 + 63) & ~(size_t)63) : 0) + 3 * 64 + mat_bytes(dt, QD, E) + 2 * mat_bytes(dt, KD, E) + mat_bytes(dt, E, QD) +
                       3 * mat_bytes(dt, F, E) + 7 * 64;
    size_t total = (size_t)hp->n_layer * per_layer + 2 * (mat_bytes(dt, V, E) + 64) + E * 4 + 64;
    uint8_t *arena = lk_alloc_aligned(total, err);
    if (!arena) return lk_fail_prefix(err, "random model of %.1f GB", (double)total / 1e9);
    m->owned[m->n_owned++] = arena;
    m->layers = lk_calloc((size_t)hp->n_layer, sizeof(lk_layer), err);
    if (!m->layers) return LOKI_ERR_NOMEM;
    size_t off = 0;
    carve(&m->tok_embd, "token_embd.weight", dt, V, E, arena, &off);
    carve(&m->output, "output.weight", dt, V, E, arena, &off);
    carve(&m->out_norm, "output_norm.weight", LK_DTYPE_F32, 1, E, arena, &off);
    for (int l = 0; l < hp->n_layer; l++) {
        lk_layer *L = &m->layers[l];
        carve(&L->attn_norm, "attn_norm.weight", LK_DTYPE_F32, 1, E, arena, &off);
        carve(&L->ffn_norm, "ffn_norm.weight", LK_DTYPE_F32, 1, E, arena, &off);
        if (gemma) {
            carve(&L->attn_post_norm, "post_attention_norm.weight", LK_DTYPE_F32, 1, E, arena, &off);
            carve(&L->ffn_post_norm, "post_ffw_norm.weight", LK_DTYPE_F32, 1, E, arena, &off);
            carve(&L->attn_q_norm, "attn_q_norm.weight", LK_DTYPE_F32, 1, Dh, arena, &off);
            carve(&L->attn_k_norm, "attn_k_norm.weight", LK_DTYPE_F32, 1, Dh, arena, &off);
        }
        carve(&L->wq, "attn_q.weight", dt, QD, E, arena, &off);
        carve(&L->wk, "attn_k.weight", dt, KD, E, arena, &off);
        carve(&L->wv, "attn_v.weight", dt, KD, E, arena, &off);
        carve(&L->wo, "attn_output.weight", dt, E, QD, arena, &off);
        carve(&L->w_gate, "ffn_gate.weight", dt, F, E, arena, &off);
        carve(&L->w_up, "ffn_up.weight", dt, F, E, arena, &off);
        carve(&L->w_down, "ffn_down.weight", dt, E, F, arena, &off);
    }
    /* A pool of random values in the target dtype, copied cyclically into each
     * tensor at a rotating offset: generating 7e9 fresh values would take
     * longer than the benchmark itself. The copy is per tensor so that every
     * tensor starts at a block boundary of the pool: the arena pads tensors to
     * 64 bytes, which is not a multiple of a quantized block (34 bytes for
     * q8_0, 144 for q4_k), and a stream copied across the padding would put
     * quant bytes where the f16 block scales belong (NaN/Inf weights). */
    lk_random_pool pool;
    if ((st = lk_random_pool_init(&pool, dt, seed, err))) return st;
    /* the order of the fills is part of the values (lk_random_pool_fill) */
    lk_tensor *firsts[] = {&m->tok_embd, &m->output};
    for (size_t i = 0; i < LK_ARRAY_LEN(firsts); i++)
        lk_random_pool_fill(&pool, (uint8_t *)(uintptr_t)firsts[i]->data, firsts[i]->nbytes);
    for (int l = 0; l < hp->n_layer; l++) {
        lk_layer *L = &m->layers[l];
        lk_tensor *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < LK_ARRAY_LEN(mats); i++)
            lk_random_pool_fill(&pool, (uint8_t *)(uintptr_t)mats[i]->data, mats[i]->nbytes);
    }
    lk_random_pool_free(&pool);
    /* norm weights of 1 (f32) */
    float *norms[] = {(float *)m->out_norm.data};
    for (int64_t i = 0; i < E; i++) norms[0][i] = 1.0f;
    for (int l = 0; l < hp->n_layer; l++) {
        lk_layer *L = &m->layers[l];
        lk_tensor *nt[] = {&L->attn_norm, &L->ffn_norm, &L->attn_post_norm, &L->ffn_post_norm, &L->attn_q_norm,
                           &L->attn_k_norm};
        for (size_t t = 0; t < LK_ARRAY_LEN(nt); t++)
            for (int64_t i = 0; nt[t]->data && i < nt[t]->ne[0]; i++) ((float *)nt[t]->data)[i] = 1.0f;
    }
    return LOKI_OK;
}
