/*
 * retrieval/index.c - the public vector index: a FAISS index whose ids are
 * chunk ids, saved atomically.
 *
 * Saving writes <path>.tmp, flushes and fsyncs it, renames it over path and
 * fsyncs the directory, so a reader sees either the old or the new file.
 * Searches map FAISS's "no result" (label -1) to id -1 with score 0.
 */
#include "retrieval/retrieval.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retrieval/vindex.h"

struct retr_index {
    struct retr_vindex *v;
};

int retr_index_new(struct retr_index **ret, size_t dim, const char *factory, struct rag_err *err)
{
    struct retr_vindex *v;
    int rc = retr_vindex_new(&v, dim, factory ? factory : RETR_INDEX_FACTORY_DEFAULT, err);

    if (rc)
        return rc;
    *ret = xcalloc(1, sizeof(**ret));
    (*ret)->v = v;
    return 0;
}

int retr_index_open(struct retr_index **ret, const char *path, struct rag_err *err)
{
    struct retr_vindex *v;
    struct stat st;
    int rc;

    if (stat(path, &st) < 0) {
        if (errno == ENOENT)
            return rag_errf(err, RAG_ENOTFOUND, "index '%s': no such file", path);
        return rag_errno(err, "index '%s'", path);
    }
    rc = retr_vindex_read(&v, path, err);
    if (rc)
        return rc;
    *ret = xcalloc(1, sizeof(**ret));
    (*ret)->v = v;
    return 0;
}

void retr_index_close(struct retr_index *x)
{
    if (!x)
        return;
    retr_vindex_free(x->v);
    free(x);
}

size_t retr_index_count(const struct retr_index *x)
{
    return retr_vindex_ntotal(x->v);
}

size_t retr_index_dim(const struct retr_index *x)
{
    return retr_vindex_dim(x->v);
}

bool retr_index_needs_training(const struct retr_index *x)
{
    return !retr_vindex_is_trained(x->v);
}

int retr_index_add(struct retr_index *x, const int64_t *ids, const float *vecs, size_t n,
                   struct rag_err *err)
{
    int rc = 0;

    if (!n)
        return 0;
    if (!retr_vindex_is_trained(x->v))
        rc = retr_vindex_train(x->v, vecs, n, err);
    return rc ? rc : retr_vindex_add(x->v, ids, vecs, n, err);
}

int retr_index_remove(struct retr_index *x, const int64_t *ids, size_t n, size_t *ret_removed,
                      struct rag_err *err)
{
    if (!n) {
        if (ret_removed)
            *ret_removed = 0;
        return 0;
    }
    return retr_vindex_remove(x->v, ids, n, ret_removed, err);
}

int retr_index_search(const struct retr_index *x, const float *queries, size_t n_q, size_t k,
                      int64_t *ids, float *scores, struct rag_err *err)
{
    int rc;

    if (!n_q || !k)
        return 0;
    rc = retr_vindex_search(x->v, queries, n_q, k, scores, ids, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_q * k; i++)
        if (ids[i] < 0) {
            ids[i] = -1;
            scores[i] = 0;
        }
    return 0;
}

int retr_index_set_param(struct retr_index *x, const char *name, double value, struct rag_err *err)
{
    return retr_vindex_set_param(x->v, name, value, err);
}

/* fsync the directory holding path, so the rename is durable. */
static int sync_dir(const char *path, struct rag_err *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0 || fsync(fd) < 0)
        rc = rag_errno(err, "sync directory '%s'", dir);
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int retr_index_save(const struct retr_index *x, const char *path, struct rag_err *err)
{
    struct buf tmp = BUF_INIT;
    FILE *f;
    int rc;

    buf_appendf(&tmp, "%s.tmp", path);
    f = fopen(buf_cstr(&tmp), "wb");
    if (!f) {
        rc = rag_errno(err, "create '%s'", buf_cstr(&tmp));
        buf_release(&tmp);
        return rc;
    }
    rc = retr_vindex_write(x->v, f, path, err);
    if (!rc && (fflush(f) != 0 || fsync(fileno(f)) < 0))
        rc = rag_errno(err, "write '%s'", buf_cstr(&tmp));
    if (fclose(f) != 0 && !rc)
        rc = rag_errno(err, "close '%s'", buf_cstr(&tmp));
    if (!rc && rename(buf_cstr(&tmp), path) < 0)
        rc = rag_errno(err, "rename '%s' to '%s'", buf_cstr(&tmp), path);
    if (rc)
        unlink(buf_cstr(&tmp));
    else
        rc = sync_dir(path, err);
    buf_release(&tmp);
    return rc;
}
