/*
 * quantize.h - model-quality quantization of weight rows for `loki convert`.
 *
 * core/quant.c's lk_quant_row_from_f32 rounds to nearest with scales taken
 * from each block's range: simple, with proven error bounds, used by tests.
 * Here each group's scale (and min) is instead searched: 19 candidate
 * scales around the range-based one (the largest value mapped within 0.9
 * of a level of either end), each followed by a least-squares refit of the
 * scale (and min) for the integer levels it chose, keeping the candidate of
 * smallest squared error; K-quant sub-block scales are then coded against
 * the super-block's fp16 scale and the levels recomputed with the coded
 * values. On the fixture's weights (largest relative RMS error of any
 * tensor, tests/test_convert.c prints them) this gives Q4_K 7.3% instead of
 * 8.1%, Q6_K 1.7% instead of 2.0%, Q4_0 8.8% instead of 9.3%, Q5_0 4.4%
 * instead of 4.7%; it costs ~20x the time of rounding to nearest, which
 * `loki convert` spreads over threads. (weighting the fit by |x|, as
 * llama.cpp does, measured no better here.)
 * The block layouts are core/quant.h's; the results dequantize bit for bit
 * the same in gguf-py (tests/test_convert.c).
 */
#ifndef LK_QUANTIZE_H
#define LK_QUANTIZE_H

#include "core/tensor.h"

/* Quantize n finite floats (n a multiple of t's block) into n / elems blocks
 * of type t at dst. Q4_0, Q5_0, Q4_K and Q6_K use the searched scales above;
 * Q8_0 is ggml's / gguf-py's (d = amax / 127, so files match llama.cpp's
 * converter byte for byte); every other type goes to lk_row_from_f32. */
void lk_quantize_row(lk_dtype t, const float *src, void *dst, int64_t n);

#endif /* LK_QUANTIZE_H */
