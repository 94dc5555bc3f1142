/* random.h - random-weight models of a named shape, for benchmarks. */
#ifndef LK_MODEL_RANDOM_H
#define LK_MODEL_RANDOM_H

#include "model/model.h"

/* Hyper-parameters of "llama2-7b" or "llama3-8b". */
loki_status lk_hparams_preset(const char *name, lk_hparams *hp, loki_error *err);

/* Fill a zeroed model with random weights of shape hp in dtype dt (norms f32).
 * The weights live in one owned arena released by lk_model_free. */
loki_status lk_model_init_random(loki_model *m, const lk_hparams *hp, lk_dtype dt, uint64_t seed,
                                 loki_error *err);

#endif
