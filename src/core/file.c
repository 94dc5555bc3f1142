/* file.c - memory-mapped input files and atomic output files (see common.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

loki_status lk_file_map(const char *path, lk_mapped_file *out, loki_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lk_fail(err, LOKI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return lk_fail(err, LOKI_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lk_fail(err, LOKI_ERR_IO, "%s: not a regular file", path);
    }
    out->data = NULL;
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return lk_fail(err, LOKI_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        out->data = p;
    }
    close(fd);
    return LOKI_OK;
}

void lk_file_unmap(lk_mapped_file *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

loki_status lk_check_stop(lk_stop_flag *stop, const char *what, loki_error *err) {
    if (!stop || !*stop) return LOKI_OK;
    return lk_fail(err, LOKI_ERR_INTERRUPTED, "%s: interrupted (signal %d)", what, (int)*stop);
}

loki_status lk_file_atomic_open(lk_atomic_file *af, const char *path, lk_stop_flag *stop, loki_error *err) {
    memset(af, 0, sizeof *af);
    af->fd = -1;
    af->stop = stop;
    size_t cap = strlen(path) + 32;
    if (!(af->path = lk_strdup(path, err)) || !(af->tmp = lk_malloc(cap, err))) {
        lk_file_atomic_abort(af);
        return lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory allocating the output file name", path);
    }
    /* the pid makes the name ours: a file of that name is a leftover of a
     * killed process that had our pid, safe to replace (O_EXCL never
     * follows a symlink planted there) */
    snprintf(af->tmp, cap, "%s.tmp%ld", path, (long)getpid());
    for (int attempt = 0; af->fd < 0 && attempt < 2; attempt++) {
        af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (af->fd < 0 && (errno != EEXIST || unlink(af->tmp) != 0)) break;
    }
    if (af->fd < 0) {
        loki_status st = lk_fail(err, LOKI_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(af->tmp); /* not created: nothing to remove */
        af->tmp = NULL;
        lk_file_atomic_abort(af);
        return st;
    }
    return LOKI_OK;
}

loki_status lk_file_atomic_write(lk_atomic_file *af, const void *data, size_t n, loki_error *err) {
    const char *p = data;
    while (n > 0) {
        loki_status st = lk_check_stop(af->stop, af->path, err);
        if (st) return st;
        size_t chunk = n < ((size_t)1 << 24) ? n : ((size_t)1 << 24); /* 16 MiB between stop checks */
        ssize_t w = write(af->fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return lk_fail(err, LOKI_ERR_IO, "%s: write failed: %s", af->path, w ? strerror(errno) : "no space");
        p += w;
        n -= (size_t)w;
    }
    return LOKI_OK;
}

loki_status lk_file_atomic_commit(lk_atomic_file *af, loki_error *err) {
    loki_status st = lk_check_stop(af->stop, af->path, err);
    if (!st && fsync(af->fd) != 0)
        st = lk_fail(err, LOKI_ERR_IO, "%s: fsync failed: %s", af->path, strerror(errno));
    if (close(af->fd) != 0 && !st) st = lk_fail(err, LOKI_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    af->fd = -1;
    if (!st) st = lk_check_stop(af->stop, af->path, err); /* the last chance before the file appears */
    if (!st && rename(af->tmp, af->path) != 0)
        st = lk_fail(err, LOKI_ERR_IO, "%s: cannot rename %s to it: %s", af->path, af->tmp, strerror(errno));
    if (!st) {
        free(af->tmp); /* renamed: nothing to remove */
        af->tmp = NULL;
    }
    lk_file_atomic_abort(af);
    return st;
}

void lk_file_atomic_abort(lk_atomic_file *af) {
    if (af->fd >= 0) close(af->fd);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    af->fd = -1;
    af->tmp = af->path = NULL;
}

loki_status lk_write_file_atomic(const char *path, const void *data, size_t n, lk_stop_flag *stop,
                                 loki_error *err) {
    lk_atomic_file af;
    loki_status st = lk_file_atomic_open(&af, path, stop, err);
    if (st) return st;
    if ((st = lk_file_atomic_write(&af, data, n, err))) {
        lk_file_atomic_abort(&af);
        return st;
    }
    return lk_file_atomic_commit(&af, err);
}
