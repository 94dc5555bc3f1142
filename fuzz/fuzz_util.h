/*
 * fuzz_util.h - helpers shared by the libFuzzer harnesses (fuzz/fuzz_*.c).
 *
 * Most library readers take a path and memory-map it. The harnesses never
 * write files: fuzz_memfd() puts the input in an anonymous memory file
 * (memfd_create) and returns a "/proc/self/fd/N" path that open()/mmap()
 * accept like any file, so the exact production code path is fuzzed.
 */
#ifndef LK_FUZZ_UTIL_H
#define LK_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Copy data[0..size) into a fresh memory file; write its path into path[cap].
 * Returns the descriptor (close it when done) or aborts: a harness that
 * cannot create memory files cannot fuzz anything. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("loki-fuzz", MFD_CLOEXEC);
    if (fd < 0) { perror("memfd_create"); abort(); }
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) { perror("write memfd"); abort(); }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* NUL-terminated malloc'ed copy of data[0..size) (aborts on OOM). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
