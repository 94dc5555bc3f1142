/*
 * convert.c - `loki convert HF_DIR -o OUT.gguf --type T`: a Hugging Face
 * directory to a GGUF file llama.cpp loads; `loki convert --random-weights
 * SHAPE -o OUT.gguf --type T [--seed N]`: the random-weight model of `bench
 * decode --random-weights` as such a file (src/convert/convert.h).
 */
#include "cli/args.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "core/common.h"

int cli_convert(int argc, char **argv) {
    const char *out = NULL, *type_name = "f16", *random = NULL;
    int32_t n_threads = 0;
    uint64_t seed = 1234; /* bench decode --random-weights' seed */
    const cli_opt opts[] = {
        {"-o", "--output", CLI_STR, &out, "OUT.gguf", "output file (written through a temporary file)"},
        {NULL, "--type", CLI_STR, &type_name, "T", "weights: f32, f16 (default), bf16, q8_0, q4_0, q4_k, q6_k"},
        {"-t", "--threads", CLI_INT, &n_threads, "N", "quantization threads (default: all CPUs)"},
        {NULL, "--random-weights", CLI_STR, &random, "SHAPE",
         "instead of HF_DIR: random weights of llama2-7b, llama3-8b or a config.json's shape"},
        {NULL, "--seed", CLI_U64, &seed, "N", "seed of --random-weights (default 1234, bench decode's)"},
    };
    const cli_spec spec = {"convert", "loki convert (HF_DIR | --random-weights SHAPE) -o OUT.gguf [--type T]",
                           "Convert a Hugging Face model directory (config.json, *.safetensors,\n"
                           "tokenizer.json) into a GGUF file that llama.cpp loads: llama.cpp's tensor\n"
                           "names and metadata, q/k rows permuted for interleaved RoPE, the tokenizer and\n"
                           "the chat template. Norms stay f32; for q4_0/q4_k the output matrix is q6_k;\n"
                           "rows that the type's blocks do not divide fall back to q5_0/q8_0/f16.\n"
                           "--random-weights SHAPE writes the weights of `bench decode --random-weights SHAPE\n"
                           "--dtype T` (same seed: same bytes; every matrix in T) with a placeholder\n"
                           "SentencePiece vocabulary, tensor by tensor (memory: the largest tensor).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 1};
    const char *pos[1] = {NULL};
    int npos = 0;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (random && npos != 0) {
        fprintf(stderr, "loki convert: give either a Hugging Face directory or --random-weights SHAPE, not both\n");
        return 2;
    }
    if (!random && npos != 1) {
        fprintf(stderr, "loki convert: give the Hugging Face directory to convert (see loki convert --help)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "loki convert: no output file (-o OUT.gguf)\n");
        return 2;
    }
    if (n_threads < 0) {
        fprintf(stderr, "loki convert: -t must be >= 0, got %d\n", n_threads);
        return 2;
    }
    lk_dtype type;
    if (!lk_convert_type_parse(type_name, &type)) {
        fprintf(stderr, "loki convert: unknown --type '%s' (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)\n", type_name);
        return 2;
    }
    loki_error err = {0};
    double t0 = lk_time_s();
    lk_stop_flag *stop = cli_interrupt_install();
    loki_status st = random ? lk_convert_random_to_gguf(random, out, type, seed, stop, &err)
                            : lk_convert_hf_to_gguf(pos[0], out, type, n_threads, stop, &err);
    if (st != LOKI_OK) {
        if (err.status == LOKI_ERR_INTERRUPTED) return cli_interrupt_exit("convert", stop);
        fprintf(stderr, "loki convert: %s\n", err.msg);
        return err.status == LOKI_ERR_ARG ? 2 : 1;
    }
    fprintf(stderr, "loki convert: wrote %s (%s) in %.1f s\n", out, type_name, lk_time_s() - t0);
    return 0;
}
