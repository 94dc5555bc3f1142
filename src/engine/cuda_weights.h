/*
 * cuda_weights.h - a model's weights in GPU memory for the CUDA backend
 * (backend_cuda.c): uploaded once per context in their file dtypes
 * (quantized types stay quantized; the matrix-vector kernels read their
 * blocks), norm weights and biases as f32, and found again by the host
 * tensor's data pointer, so forward.c passes the model's own lk_tensor
 * views and the backend swaps in the device copy.
 */
#ifndef LK_ENGINE_CUDA_WEIGHTS_H
#define LK_ENGINE_CUDA_WEIGHTS_H

#include "cuda/lk_cuda.h"
#include "model/model.h"

typedef struct lk_cuda_weights lk_cuda_weights;

/* Upload every tensor of m that the forward pass reads: tied tensors share
 * one copy; q/k/v and gate/up back to back in one allocation when they
 * share dtype and width (one kernel reads them: lk_cuda_matmul_multi). A
 * matrix dtype without GPU kernels is LOKI_ERR_UNSUPPORTED naming the
 * tensor; a model that does not fit fails in lk_cuda_alloc with the
 * tensor's name, its size and the free memory. On failure *out is NULL and
 * nothing stays allocated. cu is borrowed and must outlive the result. */
loki_status lk_cuda_weights_upload(lk_cuda *cu, const loki_model *m, lk_cuda_weights **out, loki_error *err);

/* The device copy of t (NULL when it was not uploaded, e.g. an absent bias). */
void *lk_cuda_weights_find(const lk_cuda_weights *w, const lk_tensor *t);

void lk_cuda_weights_free(lk_cuda_weights *w); /* NULL is fine */

#endif
