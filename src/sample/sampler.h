/* sampler.h - what the CPU sampler (sampler.c) shares with the GPU's
 * (src/cuda/sample.cu): the checks of loki_sampler_params. */
#ifndef LK_SAMPLE_SAMPLER_H
#define LK_SAMPLE_SAMPLER_H

#include "loki.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LOKI_ERR_ARG naming the option (--top-p, --min-p, --repeat-penalty,
 * --repeat-last-n) when params are out of range, else LOKI_OK. */
loki_status lk_sampler_params_check(const loki_sampler_params *params, loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
