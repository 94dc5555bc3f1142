/*
 * tensor.h - dtypes and a non-owning view of a weight tensor.
 *
 * Dimensions follow GGUF/ggml order: ne[0] is the innermost (contiguous)
 * dimension. A weight matrix W used as y = W x is stored (out, in) row-major,
 * i.e. ne[0] = in, ne[1] = out, each of the `out` rows holding `in` values.
 * Safetensors (HF) and llama2.c store the same layout.
 */
#ifndef LK_TENSOR_H
#define LK_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* Values equal ggml's type ids so GGUF files map directly. The block
 * layouts of Q4_0 .. Q6_K are in core/quant.h. */
typedef enum lk_dtype {
    LK_DTYPE_F32 = 0,
    LK_DTYPE_F16 = 1,
    LK_DTYPE_Q4_0 = 2,
    LK_DTYPE_Q4_1 = 3,
    LK_DTYPE_Q5_0 = 6,
    LK_DTYPE_Q5_1 = 7,
    LK_DTYPE_Q8_0 = 8,
    LK_DTYPE_Q2_K = 10,
    LK_DTYPE_Q3_K = 11,
    LK_DTYPE_Q4_K = 12,
    LK_DTYPE_Q5_K = 13,
    LK_DTYPE_Q6_K = 14,
    LK_DTYPE_BF16 = 30,
} lk_dtype;

#define LK_QK8_0 32
/* Q8_0 block: 32 int8 values sharing one fp16 scale; value = d * qs[i]. */
typedef struct lk_block_q8_0 {
    uint16_t d;            /* fp16 scale */
    int8_t qs[LK_QK8_0];
} lk_block_q8_0;           /* 34 bytes, no padding */

typedef struct lk_tensor {
    const char *name;      /* points into the file's metadata or a loader-owned string */
    lk_dtype dtype;
    int n_dims;
    int64_t ne[4];         /* ne[0] innermost; unused dims are 1 */
    const void *data;      /* memory-mapped, not owned; NULL = absent tensor */
    size_t nbytes;
} lk_tensor;

/* Known dtype? (the ones above) */
int lk_dtype_valid(int dtype);
/* Lower-case name ("q4_k"); for any ggml type id, also ones loki does not
 * support ("iq2_xxs"), "?" for ids ggml does not define. */
const char *lk_dtype_name(lk_dtype t);
/* Block-quantized (Q4_0 .. Q6_K and Q8_0), i.e. not f32/f16/bf16? */
int lk_dtype_is_quant(lk_dtype t);
/* Elements per block (1 for float types, 32 for Q4_0..Q8_0, 256 for the
 * K-quants) and bytes per block; 0 for an invalid dtype. */
int lk_dtype_block_elems(lk_dtype t);
size_t lk_dtype_block_bytes(lk_dtype t);
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t lk_dtype_row_bytes(lk_dtype t, int64_t n);

int64_t lk_tensor_nelements(const lk_tensor *t);

/* Scalar conversions (round-to-nearest-even for the f32 -> half forms). */
float lk_f16_to_f32(uint16_t h);
uint16_t lk_f32_to_f16(float f);
float lk_bf16_to_f32(uint16_t h);
uint16_t lk_f32_to_bf16(float f);

/* Convert n elements of a row in dtype t to float32 (n multiple of block size). */
void lk_row_to_f32(lk_dtype t, const void *src, float *dst, int64_t n);
/* Convert n float32 values to dtype t (n multiple of block size; Q8_0
 * quantized like ggml: d = amax/127; the other quantized types round to
 * nearest with the error bounds stated in quant.c). */
void lk_row_from_f32(lk_dtype t, const float *src, void *dst, int64_t n);

#endif /* LK_TENSOR_H */
