/* main.c - `loki` command-line entry point: dispatches to subcommands. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"run", cli_run, "generate text from a prompt"},
    {"tokenize", cli_tokenize, "print the token ids of a text"},
    {"perplexity", cli_perplexity, "perplexity of a text file"},
    {"bench", cli_bench, "benchmarks (decode, attention)"},
    {"eval", cli_eval, "retrieval evaluations: passkey, repeated span"},
    {"calibrate", cli_calibrate, "PCA of a model's keys over a text (writes a PCA file)"},
    {"analyze", cli_analyze, "Rank@v per layer and KV head of a PCA file (text, csv, json, svg)"},
    {"convert", cli_convert, "Hugging Face directory -> GGUF (f32 .. q6_k) that llama.cpp loads"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: loki <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`loki <command> --help` documents each command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "loki: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
