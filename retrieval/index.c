/*
 * retrieval/index.c - the public vector index: a FAISS index whose ids are
 * chunk ids, saved atomically.
 *
 * File format (little-endian), so that a truncated or damaged file is
 * caught before FAISS parses it (FAISS 1.7.3 leaks, or worse, on bad input):
 *  1. 8 bytes "RAGFAISS";
 *  2. u32 version (1), u32 zero;
 *  3. u64 payload length: the file size minus this 32-byte header;
 *  4. u64 checksum of the payload (FNV-1a over 64-bit words, see checksum());
 *  5. the payload, written by faiss_write_index.
 * Saving writes <path>.tmp, fsyncs it, renames it over path and fsyncs the
 * directory, so a reader sees either the old or the new file. Searches map
 * FAISS's "no result" (label -1) to id -1 with score 0.
 */
#include "retrieval/retrieval.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retrieval/vindex.h"

#define HEADER_LEN 32

struct retr_index {
    struct retr_vindex *v;
};

static uint64_t checksum(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull, w;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void put_header(unsigned char *h, uint64_t len, uint64_t sum)
{
    uint32_t version = 1, zero = 0;

    memcpy(h, "RAGFAISS", 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &zero, 4);
    memcpy(h + 16, &len, 8);
    memcpy(h + 24, &sum, 8);
}

/* Checksum of the payload of the open file fd of size bytes. */
static int payload_sum(int fd, size_t size, const char *path, uint64_t *ret, struct rag_err *err)
{
    void *map;

    if (size == HEADER_LEN) {
        *ret = checksum(NULL, 0);
        return 0;
    }
    map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return rag_errno(err, "mmap '%s'", path);
    *ret = checksum((const unsigned char *)map + HEADER_LEN, size - HEADER_LEN);
    munmap(map, size);
    return 0;
}

/* Check the header and checksum of the open file f (size bytes); leaves f after the header. */
static int check_file(FILE *f, size_t size, const char *path, struct rag_err *err)
{
    unsigned char h[HEADER_LEN], want[HEADER_LEN];
    uint64_t len, sum;
    int rc;

    if (size < HEADER_LEN || fread(h, 1, HEADER_LEN, f) != HEADER_LEN || memcmp(h, "RAGFAISS", 8))
        return rag_errf(err, RAG_EINDEX, "read index '%s': not a rag index file", path);
    memcpy(&len, h + 16, 8);
    if (len != size - HEADER_LEN)
        return rag_errf(
            err, RAG_EINDEX,
            "read index '%s': truncated or extended (%zu payload bytes, header says %llu)", path,
            size - HEADER_LEN, (unsigned long long)len);
    rc = payload_sum(fileno(f), size, path, &sum, err);
    if (rc)
        return rc;
    put_header(want, len, sum);
    if (memcmp(h, want, HEADER_LEN))
        return rag_errf(err, RAG_EINDEX, "read index '%s': checksum mismatch (corrupt file)", path);
    return 0;
}

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
    struct retr_vindex *v = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    int rc;

    if (!f && errno == ENOENT)
        return rag_errf(err, RAG_ENOTFOUND, "index '%s': no such file", path);
    if (!f)
        return rag_errno(err, "index '%s'", path);
    rc = fstat(fileno(f), &st) < 0 ? rag_errno(err, "index '%s'", path) : 0;
    rc = rc ? rc : check_file(f, (size_t)st.st_size, path, err);
    rc = rc ? rc : retr_vindex_read(&v, f, path, err);
    fclose(f);
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

/* Write the header and payload of x to the open stream f, then fsync. */
static int write_file(const struct retr_index *x, FILE *f, const char *tmp, const char *path,
                      struct rag_err *err)
{
    unsigned char h[HEADER_LEN] = { 0 };
    uint64_t sum;
    long end = 0;
    int rc = fwrite(h, 1, HEADER_LEN, f) == HEADER_LEN ? 0 : rag_errno(err, "write '%s'", tmp);

    rc = rc ? rc : retr_vindex_write(x->v, f, path, err);
    if (!rc && (fflush(f) != 0 || (end = ftell(f)) < 0))
        rc = rag_errno(err, "write '%s'", tmp);
    rc = rc ? rc : payload_sum(fileno(f), (size_t)end, tmp, &sum, err);
    if (!rc) {
        put_header(h, (uint64_t)end - HEADER_LEN, sum);
        if (pwrite(fileno(f), h, HEADER_LEN, 0) != HEADER_LEN || fsync(fileno(f)) < 0)
            rc = rag_errno(err, "write '%s'", tmp);
    }
    return rc;
}

int retr_index_save(const struct retr_index *x, const char *path, struct rag_err *err)
{
    struct buf tmp = BUF_INIT;
    FILE *f;
    int rc;

    buf_appendf(&tmp, "%s.tmp", path);
    f = fopen(buf_cstr(&tmp), "w+b");
    if (!f) {
        rc = rag_errno(err, "create '%s'", buf_cstr(&tmp));
        buf_release(&tmp);
        return rc;
    }
    rc = write_file(x, f, buf_cstr(&tmp), path, err);
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
