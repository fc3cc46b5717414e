/*
 * base/file.c - whole-file reads with a size cap, atomic writes (temp file,
 * fsync, rename), mkdir -p, and the monotonic clock.
 */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int file_read(const char *path, size_t max, struct buf *out, struct rag_err *err)
{
    struct stat st;
    char chunk[65536];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return rag_errno(err, "open '%s'", path);
    if (fstat(fd, &st) == 0 && max && (uint64_t)st.st_size > max) {
        close(fd);
        return rag_errf(err, RAG_EINVAL, "'%s': file too large (%lld bytes, limit %zu)", path,
                        (long long)st.st_size, max);
    }
    if (S_ISREG(st.st_mode))
        out->data = grow_array(out->data, &out->cap, out->len + (size_t)st.st_size + 1, 1);
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rag_errno(err, "read '%s'", path);
            close(fd);
            return RAG_EIO;
        }
        if (max && out->len + (size_t)n > max) {
            close(fd);
            return rag_errf(err, RAG_EINVAL, "'%s': file too large (limit %zu bytes)", path, max);
        }
        buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    if (!out->data)
        buf_append(out, "", 0);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n) {
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int file_write_atomic(const char *path, const void *p, size_t n, struct rag_err *err)
{
    struct buf tmp = BUF_INIT;
    int fd, rc = 0;

    buf_appendf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = rag_errno(err, "create '%s'", tmp.data);
        goto out;
    }
    if (write_all(fd, p, n) || fsync(fd)) {
        rc = rag_errno(err, "write '%s'", tmp.data);
        close(fd);
        unlink(tmp.data);
        goto out;
    }
    close(fd);
    if (rename(tmp.data, path)) {
        rc = rag_errno(err, "rename '%s'", path);
        unlink(tmp.data);
    }
out:
    buf_release(&tmp);
    return rc;
}

int file_mkdirs(const char *path, struct rag_err *err)
{
    char *p = xstrdup(path), *s;
    int rc = 0;

    for (s = p + 1;; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) && errno != EEXIST) {
            rc = rag_errno(err, "create directory '%s'", p);
            break;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

double time_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
