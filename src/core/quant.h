/*
 * quant.h - block layouts of the llama.cpp (ggml) weight quantizations beyond
 * Q8_0, and their row conversions to and from float32.
 *
 * Every block is a fixed number of bytes holding a fixed number of weights
 * of one row; a row of n weights is n / elems consecutive blocks. All
 * multi-byte fields are little-endian; "fp16" is an IEEE half. The structs
 * have no padding (checked by static asserts in quant.c), so a row in a GGUF
 * mapping can be read as an array of them (blocks are only 2-byte aligned).
 *
 * Element numbering inside a block: element e is the e-th weight of the
 * block's span of the row. "nibble" packing: byte b of a 4-bit array holds
 * two elements, its low 4 bits and its high 4 bits, and which elements is
 * stated per type. Layouts checked against gguf-py (tests/quant_ref.py).
 *
 * Legacy types (32 weights per block):
 *   Q4_0 (18 B): d fp16 | qs[16].  q_e = 4-bit; e < 16: low nibble of qs[e],
 *                e >= 16: high nibble of qs[e-16].  w_e = d * (q_e - 8).
 *   Q4_1 (20 B): d fp16 | m fp16 | qs[16].  q_e as Q4_0.  w_e = d * q_e + m.
 *   Q5_0 (22 B): d fp16 | qh[4] | qs[16].  low 4 bits as Q4_0; bit 4 of q_e is
 *                bit e of the little-endian u32 qh.  w_e = d * (q_e - 16).
 *   Q5_1 (24 B): d fp16 | m fp16 | qh[4] | qs[16].  q_e as Q5_0.
 *                w_e = d * q_e + m.
 *
 * K-quants (256 weights per super-block, split in sub-blocks with their own
 * small integer scale, itself multiplied by the super-block's fp16 d):
 *   Q2_K (84 B): scales[16] | qs[64] | d fp16 | dmin fp16.  16 sub-blocks of
 *                16 (sub-block s = e / 16): sc_s = scales[s] & 15, m_s =
 *                scales[s] >> 4.  q_e (2 bits): e = 128h + 32j + l (h 0..1,
 *                j 0..3, l 0..31) -> (qs[32h + l] >> 2j) & 3.
 *                w_e = d * sc_s * q_e - dmin * m_s.
 *   Q3_K (110 B): hmask[32] | qs[64] | scales[12] | d fp16.  16 sub-blocks of
 *                16; sc_s 6-bit, stored with an offset of 32 (signed -32..31):
 *                low 4 bits = s < 8 ? scales[s] & 15 : scales[s-8] >> 4,
 *                high 2 bits = (scales[8 + s%4] >> 2*(s/4)) & 3.  q_e: low 2
 *                bits as Q2_K's; bit (e / 32) of hmask[e % 32] set means q_e
 *                = low bits, clear means q_e = low bits - 4 (range -4..3).
 *                w_e = d * (sc_s - 32) * q_e.
 *   Q4_K (144 B): d fp16 | dmin fp16 | scales[12] | qs[128].  8 sub-blocks of
 *                32 (s = e / 32) with a 6-bit scale sc_s and 6-bit min m_s:
 *                s < 4: sc = scales[s] & 63, m = scales[s+4] & 63;
 *                s >= 4: sc = (scales[s+4] & 15) | (scales[s-4] >> 6) << 4,
 *                        m  = (scales[s+4] >> 4) | (scales[s] >> 6) << 4.
 *                q_e (4 bits): e = 64c + 32k + l (c 0..3, k 0..1, l 0..31)
 *                -> (qs[32c + l] >> 4k) & 15.  w_e = d * sc_s * q_e - dmin * m_s.
 *   Q5_K (176 B): d fp16 | dmin fp16 | scales[12] | qh[32] | qs[128].  As
 *                Q4_K plus bit 4 of q_e = bit (e / 32) of qh[e % 32].
 *   Q6_K (210 B): ql[128] | qh[64] | scales[16] int8 | d fp16.  16 sub-blocks
 *                of 16 with signed 8-bit scales.  q_e (6 bits): e = 128h + 32j
 *                + l (h 0..1, j 0..3, l 0..31): low 4 bits = nibble (j >= 2 ?
 *                high : low) of ql[64h + 32(j & 1) + l], high 2 bits =
 *                (qh[32h + l] >> 2j) & 3.  w_e = d * scales[s] * (q_e - 32).
 */
#ifndef LK_QUANT_H
#define LK_QUANT_H

#include "core/tensor.h"

#define LK_QK4 32  /* weights per block of the legacy types */
#define LK_QK_K 256 /* weights per K-quant super-block */

typedef struct lk_block_q4_0 { uint16_t d; uint8_t qs[16]; } lk_block_q4_0;
typedef struct lk_block_q4_1 { uint16_t d, m; uint8_t qs[16]; } lk_block_q4_1;
typedef struct lk_block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } lk_block_q5_0;
typedef struct lk_block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } lk_block_q5_1;
typedef struct lk_block_q2_k { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } lk_block_q2_k;
typedef struct lk_block_q3_k {
    uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d;
} lk_block_q3_k;
typedef struct lk_block_q4_k { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } lk_block_q4_k;
typedef struct lk_block_q5_k {
    uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128];
} lk_block_q5_k;
typedef struct lk_block_q6_k { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } lk_block_q6_k;

/* Is t one of the types of this file (Q4_0 .. Q6_K, not Q8_0)? */
int lk_quant_is_kind(lk_dtype t);

/* Decode sub-block s (0..7) of a Q4_K/Q5_K 12-byte scales array into its
 * 6-bit scale *sc and min *m. */
void lk_quant_k_scale_min(const uint8_t *scales, int s, uint8_t *sc, uint8_t *m);

/* Dequantize n weights (n a multiple of the block size) of one row of type t
 * (one of this file's types) from src (n / elems blocks) into dst (n). */
void lk_quant_row_to_f32(lk_dtype t, const void *src, float *dst, int64_t n);

/* Quantize n floats (n a multiple of the block size, finite values) into
 * n / elems blocks of type t at dst. Round to nearest with per-block scales
 * chosen from the block's range; the error bounds are stated in quant.c and
 * checked by tests/test_quant.c. */
void lk_quant_row_from_f32(lk_dtype t, const float *src, void *dst, int64_t n);

#endif /* LK_QUANT_H */
