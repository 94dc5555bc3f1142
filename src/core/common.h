/*
 * common.h - internal helpers shared by every module: error reporting,
 * checked allocation, small utilities. Nothing here holds state.
 */
#ifndef LK_COMMON_H
#define LK_COMMON_H

#include "loki.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LK_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define LK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LK_PRINTF(f, a)
#endif

/* Record an error in `err` (may be NULL) and return `st`, so call sites read
 *   return lk_fail(err, LOKI_ERR_FORMAT, "%s: bad magic", path);            */
loki_status lk_fail(loki_error *err, loki_status st, const char *fmt, ...) LK_PRINTF(3, 4);

/* Prefix an existing error message: "<prefix>: <old message>". Returns err->status. */
loki_status lk_fail_prefix(loki_error *err, const char *fmt, ...) LK_PRINTF(2, 3);

/* Allocation that reports failure through err (returns NULL on failure). */
void *lk_malloc(size_t n, loki_error *err);
void *lk_calloc(size_t count, size_t size, loki_error *err);
/* Aligned (64-byte) allocation, zeroed; free with lk_free_aligned. */
void *lk_alloc_aligned(size_t n, loki_error *err);
/* lk_calloc for sizes an input file declares: on failure the message names
 * the input and what was being allocated, "INPUT: out of memory allocating
 * WHAT (COUNT x SIZE bytes)". */
void *lk_calloc_for(size_t count, size_t size, const char *input, const char *what, loki_error *err);
void lk_free_aligned(void *p);

char *lk_strdup(const char *s, loki_error *err);
char *lk_strndup(const char *s, size_t n, loki_error *err);

/* Read a whole file into a NUL-terminated heap buffer. */
loki_status lk_read_file(const char *path, char **data, size_t *size, loki_error *err);

/* True if `len` bytes at s are valid UTF-8 (no overlongs, no surrogates). */
bool lk_utf8_valid(const char *s, size_t len);
/* Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes). */
int lk_utf8_len(unsigned char c);

/* A read-only memory mapping of a whole file. */
typedef struct lk_mapped_file {
    const uint8_t *data;
    size_t size;
} lk_mapped_file;

/* Map `path` read-only (an empty file maps to data == NULL, size 0). */
loki_status lk_file_map(const char *path, lk_mapped_file *out, loki_error *err);
void lk_file_unmap(lk_mapped_file *m);

/* A stop request: a flag that something asynchronous (a signal handler)
 * sets to non-zero (the signal number) to make long work and file writes
 * stop with LOKI_ERR_INTERRUPTED. NULL means "never stop". */
typedef const volatile sig_atomic_t lk_stop_flag;

/* An output file written atomically. lk_file_atomic_open creates a
 * temporary file beside `path` ("<path>.tmp<pid>", same folder so the
 * rename cannot cross file systems); lk_file_atomic_write appends to it
 * (failing with LOKI_ERR_INTERRUPTED once *stop is set);
 * lk_file_atomic_commit flushes, fsyncs and renames it to `path`;
 * lk_file_atomic_abort removes it. Commit and abort release the struct
 * (and may be called again on a released one), and a failed commit
 * removes the temporary file too: `path` is either untouched or complete. */
typedef struct lk_atomic_file {
    int fd;           /* -1 when closed */
    char *path;       /* final name */
    char *tmp;        /* temporary name beside it */
    lk_stop_flag *stop;
} lk_atomic_file;

loki_status lk_file_atomic_open(lk_atomic_file *af, const char *path, lk_stop_flag *stop, loki_error *err);
loki_status lk_file_atomic_write(lk_atomic_file *af, const void *data, size_t n, loki_error *err);
loki_status lk_file_atomic_commit(lk_atomic_file *af, loki_error *err);
void lk_file_atomic_abort(lk_atomic_file *af);

/* LOKI_ERR_INTERRUPTED naming `what` if *stop is set (stop may be NULL). */
loki_status lk_check_stop(lk_stop_flag *stop, const char *what, loki_error *err);

/* Write `n` bytes to `path` atomically (the calls above), so a failure or a
 * stop request never leaves a partial file behind. */
loki_status lk_write_file_atomic(const char *path, const void *data, size_t n, lk_stop_flag *stop,
                                 loki_error *err);

/* Seconds from a monotonic clock. */
double lk_time_s(void);

/* Number of online CPUs (>= 1). */
int lk_n_cpus(void);

#endif /* LK_COMMON_H */
