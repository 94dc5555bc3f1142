/*
 * convert.h - Hugging Face directory -> GGUF file that llama.cpp loads
 * (`loki convert`), with the weights in one of f32, f16, bf16, q8_0, q4_0,
 * q4_k, q6_k.
 *
 * What is written, following llama.cpp's convert_hf_to_gguf.py (llama arch):
 *  - metadata: general.architecture/name/file_type/quantization_version,
 *    <arch>.context_length, embedding_length, block_count, feed_forward_length,
 *    attention.head_count(_kv), attention.key_length/value_length,
 *    attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count,
 *    vocab_size; linear RoPE scaling as rope.scaling.type/factor, Llama-3
 *    scaling as the F32 tensor rope_freqs.weight (llama.cpp's form);
 *  - tokenizer: tokenizer.ggml.model "gpt2" (byte-level BPE), .pre (the
 *    pre-tokenizer name llama.cpp knows: llama-bpe, gpt-2), .tokens,
 *    .token_type, .merges, bos/eos/unknown/padding ids, add_bos_token,
 *    add_eos_token, and tokenizer.chat_template when the directory has one;
 *    vocabulary holes become "[PAD<id>]" UNUSED tokens as llama.cpp writes them;
 *  - tensors under llama.cpp's names (token_embd, blk.N.attn_q, ..., output_norm,
 *    output; no output when the embeddings are tied), q and k rows of llama
 *    permuted from HF's rotate-half order into interleaved RoPE pairs (within
 *    each head, row i*hd/2 + j -> 2j + i for half i, pair j); qwen2 keeps HF's
 *    order as llama.cpp does.
 * Tensor types: vectors (norms, biases) stay F32. Matrices take the chosen
 * type, except, as llama-quantize does: the output matrix (token_embd when
 * tied) is q6_k for q4_0/q4_k; a row length that is not a multiple of the
 * block falls back to q5_0 (q4_k) / q8_0 (q6_k), then to f16 when not a
 * multiple of 32. Quantization: core/quantize.h (searched scales; Q8_0 as gguf-py).
 * The output is written through a temporary file renamed at the end; nothing
 * is left behind on failure. One tensor is held in memory at a time.
 */
#ifndef LK_CONVERT_H
#define LK_CONVERT_H

#include "core/common.h"
#include "core/tensor.h"
#include "format/gguf.h"
#include "model/model.h"

/* Parse a --type name (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k; lower case);
 * false when it is not one of these. */
bool lk_convert_type_parse(const char *name, lk_dtype *out);

/* Convert the Hugging Face directory `dir` to the GGUF file `out_path`,
 * quantizing on n_threads threads (<= 0: every CPU; at most 256).
 * Unsupported architectures, tokenizers and RoPE layouts are
 * LOKI_ERR_UNSUPPORTED with a message naming them. The file is written
 * atomically; once *stop is set (stop may be NULL) the conversion ends
 * after the current tensor with LOKI_ERR_INTERRUPTED and no file. */
loki_status lk_convert_hf_to_gguf(const char *dir, const char *out_path, lk_dtype type, int n_threads,
                                  lk_stop_flag *stop, loki_error *err);

/* Write general.* and <arch>.* (the hyperparameters listed above, linear
 * RoPE scaling keys, general.file_type of `type`, quantization_version for
 * the quantized types) for the model of shape hp named `name`. An allocation
 * that fails is reported by the writer's write call. */
void lk_convert_write_hparams(lk_gguf_writer *w, const lk_hparams *hp, const char *name, lk_dtype type);

/* Llama-3 RoPE scaling as llama.cpp writes it (rope_freqs.weight):
 * hp->rope_dim/2 divisors of the frequencies into out, 1 for short
 * wavelengths, rope_factor for long ones, a smooth blend between. */
void lk_convert_llama3_factors(const lk_hparams *hp, float *out);

/* `loki convert --random-weights SHAPE`: write the GGUF `out_path` of the
 * random-weight model of `shape` (lk_hparams_from_shape: llama2-7b,
 * llama3-8b or a config.json path; llama architecture only) in dtype
 * `type` (the --type list above) with the weights lk_model_init_random
 * makes for `seed`, byte for byte: every matrix, output and token_embd
 * included, in `type` (no q6_k output as for HF conversions), norms f32
 * ones. llama.cpp's tensor names and metadata as above; q/k rows are not
 * permuted (random weights have no RoPE layout to keep). The tokenizer is
 * a placeholder SentencePiece ("llama") vocabulary of n_vocab tokens that
 * llama.cpp loads: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>,
 * then "tok<id>" (so n_vocab >= 259). Keys loki.random_weights.shape,
 * .seed (u64) and .type mark the file: `loki bench decode -m` gives it the
 * identity PCA bases that --random-weights uses. Tensors are produced one at
 * a time while writing (memory: the largest tensor); the file is written
 * through a temporary file, removed on error or once *stop is set
 * (LOKI_ERR_INTERRUPTED). Bad shapes, types or sizes are LOKI_ERR_ARG and
 * other architectures LOKI_ERR_UNSUPPORTED, with a message. */
loki_status lk_convert_random_to_gguf(const char *shape, const char *out_path, lk_dtype type, uint64_t seed,
                                      lk_stop_flag *stop, loki_error *err);

#endif /* LK_CONVERT_H */
