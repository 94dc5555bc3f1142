/* random.h - random-weight models of a named shape, for benchmarks
 * (`bench decode --random-weights`, `convert --random-weights`). */
#ifndef LK_MODEL_RANDOM_H
#define LK_MODEL_RANDOM_H

#include "model/model.h"

/* Hyper-parameters of "llama2-7b" or "llama3-8b"; any other name is
 * LOKI_ERR_ARG with a message naming the shapes. */
loki_status lk_hparams_preset(const char *name, lk_hparams *hp, loki_error *err);

/* Hyper-parameters of a shape as `--random-weights SHAPE` names it: a preset
 * name (lk_hparams_preset) or the path of a Hugging Face config.json (any
 * name containing ".json"; read by lk_hf_config_load). */
loki_status lk_hparams_from_shape(const char *shape, lk_hparams *hp, loki_error *err);

/* LOKI_OK when a random model of shape hp can be built in dtype dt: every
 * dimension positive, and the matrix widths (n_embd, n_head*head_dim,
 * n_head_kv*head_dim, n_ff) multiples of max(32, the dtype's block);
 * else LOKI_ERR_ARG with a message. */
loki_status lk_random_check_shape(const lk_hparams *hp, lk_dtype dt, loki_error *err);

/* The random values of the weights: 2^18 uniform values in (-0.02, 0.02)
 * from an xorshift generator seeded by `seed`, stored in dtype dt (bytes),
 * and k, the number of copies made so far. */
typedef struct lk_random_pool {
    lk_dtype dt;
    uint8_t *bytes;   /* the values in dt: whole blocks */
    size_t nbytes;    /* bytes of `bytes` */
    size_t blk;       /* bytes of one block of dt */
    size_t k;         /* copies so far: where the next one starts */
} lk_random_pool;

/* Make the pool of dtype dt for `seed` (k = 0). LOKI_ERR_NOMEM / ARG. */
loki_status lk_random_pool_init(lk_random_pool *p, lk_dtype dt, uint64_t seed, loki_error *err);

/* Release the pool's memory (a zeroed pool is fine). */
void lk_random_pool_free(lk_random_pool *p);

/* Fill the next tensor, nbytes (whole blocks of the pool's dtype), with the
 * pool's bytes copied cyclically, each copy starting at a rotating block
 * offset of the pool; advances p->k. The values of a tensor depend on every
 * fill before it: lk_model_init_random fills tok_embd, output, then per
 * layer wq, wk, wv, wo, w_gate, w_up, w_down, and whoever wants the same
 * weights (the GGUF of `convert --random-weights`) fills in the same order. */
void lk_random_pool_fill(lk_random_pool *p, void *dst, size_t nbytes);

/* Fill a zeroed model with random weights of shape hp in dtype dt (norms f32,
 * all ones; matrices from lk_random_pool of `seed`, in the order above). The
 * weights live in one owned arena released by lk_model_free. */
loki_status lk_model_init_random(loki_model *m, const lk_hparams *hp, lk_dtype dt, uint64_t seed,
                                 loki_error *err);

#endif
