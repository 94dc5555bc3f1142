/* common.c - error reporting, allocation and small utilities (see common.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *loki_status_str(loki_status s) {
    switch (s) {
    case LOKI_OK: return "ok";
    case LOKI_ERR_IO: return "i/o error";
    case LOKI_ERR_FORMAT: return "format error";
    case LOKI_ERR_UNSUPPORTED: return "unsupported";
    case LOKI_ERR_ARG: return "invalid argument";
    case LOKI_ERR_NOMEM: return "out of memory";
    case LOKI_ERR_RANGE: return "out of range";
    case LOKI_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

loki_status lk_fail(loki_error *err, loki_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

loki_status lk_fail_prefix(loki_error *err, const char *fmt, ...) {
    if (!err) return LOKI_ERR_ARG;
    char prefix[512], old[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* "<prefix>: <old>", truncated to the buffer (written in two steps so the
     * compiler sees the truncation is intended) */
    size_t cap = sizeof(err->msg), n = strlen(prefix);
    if (n > cap - 3) n = cap - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = cap - n - 3, ol = strnlen(old, sizeof(old) - 1);
    if (ol > rest) ol = rest;
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = '\0';
    return err->status;
}

void *lk_malloc(size_t n, loki_error *err) {
    void *p = malloc(n ? n : 1);
    if (!p) lk_fail(err, LOKI_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *lk_calloc(size_t count, size_t size, loki_error *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) lk_fail(err, LOKI_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *lk_calloc_for(size_t count, size_t size, const char *input, const char *what, loki_error *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory allocating %s (%zu x %zu bytes)", input ? input : "?",
                what, count, size);
    return p;
}

void *lk_alloc_aligned(size_t n, loki_error *err) {
    /* Large buffers (the KV cache, score blocks) are 2 MiB aligned and asked
     * to be backed by transparent huge pages: attention gathers rows spread
     * over tens of MiB, and 4 KiB pages would cost a TLB miss per row. */
    const size_t huge = (size_t)2 << 20;
    size_t align = n >= 2 * huge ? huge : 64;
    size_t sz = (n + align - 1) & ~(align - 1);
    void *p = NULL;
    if (posix_memalign(&p, align, sz ? sz : 64) != 0) {
        lk_fail(err, LOKI_ERR_NOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == huge) (void)madvise(p, sz, MADV_HUGEPAGE); /* a hint: failure is harmless */
#endif
    memset(p, 0, sz ? sz : 64);
    return p;
}

void lk_free_aligned(void *p) { free(p); }

char *lk_strndup(const char *s, size_t n, loki_error *err) {
    char *d = lk_malloc(n + 1, err);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *lk_strdup(const char *s, loki_error *err) { return lk_strndup(s, strlen(s), err); }

loki_status lk_read_file(const char *path, char **data, size_t *size, loki_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lk_fail(err, LOKI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    loki_status st = LOKI_OK;
    if (fseek(f, 0, SEEK_END) != 0) goto io_fail;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto io_fail;
    buf = lk_malloc((size_t)n + 1, err);
    if (!buf) { st = LOKI_ERR_NOMEM; goto done; }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) goto io_fail;
    buf[n] = '\0';
    *data = buf;
    *size = (size_t)n;
    buf = NULL;
    goto done;
io_fail:
    st = lk_fail(err, LOKI_ERR_IO, "%s: read failed: %s", path, strerror(errno));
done:
    free(buf);
    fclose(f);
    return st;
}

int lk_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

bool lk_utf8_valid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        int n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
        else return false;
        if (i + (size_t)n > len) return false;
        for (int j = 1; j < n; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;
        i += (size_t)n;
    }
    return true;
}

double lk_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int lk_n_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
