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

loki_status lk_write_file_atomic(const char *path, const void *data, size_t n, loki_error *err) {
    size_t plen = strlen(path);
    char *tmp = lk_malloc(plen + 16, err);
    if (!tmp) return LOKI_ERR_NOMEM;
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    loki_status st = LOKI_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = lk_fail(err, LOKI_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    int ok = fwrite(data, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        st = lk_fail(err, LOKI_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        remove(tmp);
    }
done:
    free(tmp);
    return st;
}
