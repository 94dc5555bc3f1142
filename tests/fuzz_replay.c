/*
 * fuzz_replay.c - regression driver for inputs the fuzz harnesses found
 * (the files in tests/data/fuzz/<harness>/): linked with fuzz/<harness>.c instead of
 * libFuzzer, it feeds each file given on the command line through the same
 * entry point (LLVMFuzzerTestOneInput, after LLVMFuzzerInitialize when the
 * harness has one). Each input must be refused cleanly: a crash, a sanitizer
 * report (the ASan/UBSan build of scripts/test.sh) or an abort from the
 * harness's own checks fails the test. Exit 0 when every file was replayed,
 * 1 when one could not be read.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Read all of `path` into a malloc'ed buffer (*n bytes); NULL on failure. */
static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *d = malloc(cap);
    size_t r;
    while (d && (r = fread(d + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nd = realloc(d, cap *= 2);
            if (!nd) { free(d); d = NULL; }
            else d = nd;
        }
    }
    fclose(f);
    *n = len;
    return d;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        size_t n = 0;
        uint8_t *d = read_all(argv[i], &n);
        if (!d) {
            fprintf(stderr, "fuzz_replay: cannot read %s\n", argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput(d, n);
        free(d);
        printf("replayed %s (%zu bytes)\n", argv[i], n);
    }
    return 0;
}
