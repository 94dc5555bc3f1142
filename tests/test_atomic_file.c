/* test_atomic_file.c - lk_file_atomic_* and the writers built on them
 * (issue 10, item 5): a committed file appears whole, an aborted, failed or
 * stopped one leaves neither the file nor its temporary, and an existing
 * file is replaced only by a complete new one. */
#include "test.h"

#include "core/common.h"
#include "format/gguf.h"

#include <dirent.h>
#include <unistd.h>

/* Number of entries of dir other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_commit_abort(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    lk_atomic_file af;
    loki_error err = {0};
    CHECK_OK(lk_file_atomic_open(&af, path, NULL, &err));
    CHECK_OK(lk_file_atomic_write(&af, "hello ", 6, &err));
    CHECK(!test_file_exists(path)); /* nothing at the final name before commit */
    CHECK_EQ_INT(count_entries(dir), 1);
    CHECK_OK(lk_file_atomic_write(&af, "world", 5, &err));
    CHECK_OK(lk_file_atomic_commit(&af, &err));
    size_t n = 0;
    uint8_t *d = test_read_all(path, &n);
    CHECK(d && n == 11 && memcmp(d, "hello world", 11) == 0);
    free(d);
    CHECK_EQ_INT(count_entries(dir), 1);

    /* an aborted rewrite leaves the old file as it was and no temporary */
    CHECK_OK(lk_file_atomic_open(&af, path, NULL, &err));
    CHECK_OK(lk_file_atomic_write(&af, "partial", 7, &err));
    lk_file_atomic_abort(&af);
    lk_file_atomic_abort(&af); /* again: a no-op */
    d = test_read_all(path, &n);
    CHECK(d && n == 11 && memcmp(d, "hello world", 11) == 0);
    free(d);
    CHECK_EQ_INT(count_entries(dir), 1);
    unlink(path);
}

static void test_stop(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/stopped.bin", dir);
    volatile sig_atomic_t flag = 0;
    lk_atomic_file af;
    loki_error err = {0};
    CHECK_OK(lk_file_atomic_open(&af, path, &flag, &err));
    CHECK_OK(lk_file_atomic_write(&af, "abc", 3, &err));
    flag = SIGINT; /* as the CLI's handler does */
    loki_status st = lk_file_atomic_write(&af, "def", 3, &err);
    CHECKF(st == LOKI_ERR_INTERRUPTED && strstr(err.msg, path), "status %d: %s", (int)st, err.msg);
    lk_file_atomic_abort(&af);
    CHECK_EQ_INT(count_entries(dir), 0);

    /* a stop set between the last write and the commit: no file either */
    flag = 0;
    CHECK_OK(lk_file_atomic_open(&af, path, &flag, &err));
    CHECK_OK(lk_file_atomic_write(&af, "abc", 3, &err));
    flag = SIGTERM;
    CHECK(lk_file_atomic_commit(&af, &err) == LOKI_ERR_INTERRUPTED);
    CHECK_EQ_INT(count_entries(dir), 0);

    /* the GGUF writer with a stop request: LOKI_ERR_INTERRUPTED, no file */
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, NULL));
    float x[64] = {0};
    int64_t ne[1] = {64};
    lk_gguf_writer_add_u32(w, "a", 1);
    CHECK_OK(lk_gguf_writer_add_tensor(w, "t", LK_DTYPE_F32, 1, ne, x));
    lk_gguf_writer_set_stop(w, &flag);
    st = lk_gguf_writer_write(w, path, &err);
    CHECKF(st == LOKI_ERR_INTERRUPTED, "status %d: %s", (int)st, err.msg);
    CHECK_EQ_INT(count_entries(dir), 0);
    flag = 0;
    CHECK_OK(lk_gguf_writer_write(w, path, &err));
    lk_gguf_writer_free(w);
    CHECK(test_file_exists(path));
    CHECK_EQ_INT(count_entries(dir), 1);
    unlink(path);
}

static void test_failures(const char *dir) {
    char path[512];
    loki_error err = {0};
    lk_atomic_file af;
    snprintf(path, sizeof path, "%s/missing/out.bin", dir);
    loki_status st = lk_file_atomic_open(&af, path, NULL, &err);
    CHECKF(st == LOKI_ERR_IO && strstr(err.msg, path) && strstr(err.msg, "cannot create"), "%d: %s", (int)st, err.msg);
    CHECK(lk_write_file_atomic(path, "x", 1, NULL, &err) == LOKI_ERR_IO);
    CHECK_EQ_INT(count_entries(dir), 0);
    /* a stale temporary of our pid (a killed earlier process) is replaced */
    snprintf(path, sizeof path, "%s/out.bin.tmp%ld", dir, (long)getpid());
    test_write_all(path, "stale", 5);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    CHECK_OK(lk_write_file_atomic(path, "new", 3, NULL, &err));
    CHECK_EQ_INT(count_entries(dir), 1);
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/loki-atomic-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_commit_abort(dir);
    test_stop(dir);
    test_failures(dir);
    rmdir(dir);
    return test_finish();
}
