/* sampler.h - what the CPU sampler (sampler.c) shares with the GPU's
 * (src/cuda/sample.cu): the checks of loki_sampler_params. */
#ifndef LK_SAMPLE_SAMPLER_H
#define LK_SAMPLE_SAMPLER_H

#include "loki.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A candidate token: its (penalised) logit and id. The sampler's order is
 * logit descending, ties to the lower id: a total order when no logit is
 * NaN, so every correct sort or selection gives the same list. */
typedef struct lk_cand {
    float logit;
    int32_t id;
} lk_cand;

/* Move the k first candidates of c (n) in that order to c[0 .. k), sorted
 * (1 <= k <= n; the rest of c is left in some order). O(n log k) with a
 * heap of k: the list a full sort gives, at a fraction of its cost when k is
 * small (top-k 40 of 262,144 logits). With NaN logits the list is some
 * order of some candidates, as with a sort. */
void lk_sampler_top_k(lk_cand *c, int32_t n, int32_t k);

/* Sort all n candidates of c into that order with a radix sort of 64-bit
 * keys (the logit's orderable bits, -0 as +0, above the inverted id), using
 * tmp (n) as scratch: the list qsort with the order's comparator gives when
 * no logit is NaN (NaN sorts below -inf here), in O(n) passes instead of
 * O(n log n) comparator calls. A logit -0 comes back as +0 (they tie in the
 * order, and no later step of the sampler tells them apart). */
void lk_sampler_sort(lk_cand *c, lk_cand *tmp, int32_t n);

/* LOKI_ERR_ARG naming the option (--top-p, --min-p, --repeat-penalty,
 * --repeat-last-n) when params are out of range, else LOKI_OK. */
loki_status lk_sampler_params_check(const loki_sampler_params *params, loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
