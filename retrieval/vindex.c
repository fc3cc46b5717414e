/*
 * retrieval/vindex.c - thin wrapper over the FAISS C API.
 *
 * struct retr_vindex is never defined: a pointer to it is a FaissIndex
 * pointer, converted only here, so no FAISS header (with its bare OK and
 * FAISS_EXCEPT enum constants) leaks out of this file. faiss_get_last_error()
 * is valid only until the next FAISS call, so it is copied at once.
 */
#include "retrieval/vindex.h"

#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

static FaissIndex *fx(struct retr_vindex *x)
{
    return (FaissIndex *)x;
}

static const FaissIndex *cfx(const struct retr_vindex *x)
{
    return (const FaissIndex *)x;
}

/* FAISS messages read "Error in <function> at <file>:<line>: <what>"; keep <what>. */
static const char *what_of(const char *msg)
{
    const char *at = msg ? strstr(msg, " at ") : NULL;
    const char *colon = at ? strstr(at, ": ") : NULL;

    if (!msg || !*msg)
        return "unknown error";
    return colon ? colon + 2 : msg;
}

static int faiss_fail(struct rag_err *err, const char *what, const char *subject)
{
    char line[200];

    snprintf(line, sizeof(line), "%s", what_of(faiss_get_last_error()));
    line[strcspn(line, "\n")] = '\0'; /* one line */
    return rag_errf(err, RAG_EINDEX, "%s '%s': %s", what, subject, line);
}

int retr_vindex_new(struct retr_vindex **ret, size_t dim, const char *factory, struct rag_err *err)
{
    FaissIndex *inner = NULL;
    FaissIndexIDMap2 *map = NULL;

    if (!dim || dim > 65536)
        return rag_errf(err, RAG_EINVAL, "index: bad dimension %zu", dim);
    if (faiss_index_factory(&inner, (int)dim, factory, METRIC_INNER_PRODUCT))
        return faiss_fail(err, "create index", factory);
    if (!strncmp(factory, "IDMap", 5)) {
        *ret = (struct retr_vindex *)inner;
        return 0;
    }
    if (faiss_IndexIDMap2_new(&map, inner)) {
        faiss_Index_free(inner);
        return faiss_fail(err, "create index", factory);
    }
    faiss_IndexIDMap2_set_own_fields(map, 1);
    *ret = (struct retr_vindex *)map;
    return 0;
}

int retr_vindex_read(struct retr_vindex **ret, FILE *f, const char *path, struct rag_err *err)
{
    FaissIndex *x = NULL;

    if (faiss_read_index(f, 0, &x))
        return faiss_fail(err, "read index", path);
    *ret = (struct retr_vindex *)x;
    return 0;
}

int retr_vindex_write(const struct retr_vindex *x, FILE *f, const char *path, struct rag_err *err)
{
    if (faiss_write_index(cfx(x), f))
        return faiss_fail(err, "write index", path);
    return 0;
}

void retr_vindex_free(struct retr_vindex *x)
{
    if (x)
        faiss_Index_free(fx(x));
}

size_t retr_vindex_dim(const struct retr_vindex *x)
{
    return (size_t)faiss_Index_d(cfx(x));
}

size_t retr_vindex_ntotal(const struct retr_vindex *x)
{
    return (size_t)faiss_Index_ntotal(cfx(x));
}

bool retr_vindex_is_trained(const struct retr_vindex *x)
{
    return faiss_Index_is_trained(cfx(x)) != 0;
}

int retr_vindex_train(struct retr_vindex *x, const float *vecs, size_t n, struct rag_err *err)
{
    if (faiss_Index_train(fx(x), (idx_t)n, vecs))
        return faiss_fail(err, "train index", "vectors");
    return 0;
}

int retr_vindex_add(struct retr_vindex *x, const int64_t *ids, const float *vecs, size_t n,
                    struct rag_err *err)
{
    if (faiss_Index_add_with_ids(fx(x), (idx_t)n, vecs, (const idx_t *)ids))
        return faiss_fail(err, "add to index", "vectors");
    return 0;
}

int retr_vindex_remove(struct retr_vindex *x, const int64_t *ids, size_t n, size_t *ret_removed,
                       struct rag_err *err)
{
    FaissIDSelectorBatch *sel = NULL;
    size_t removed = 0;
    int rc = 0;

    if (faiss_IDSelectorBatch_new(&sel, n, (const idx_t *)ids))
        return faiss_fail(err, "remove from index", "ids");
    if (faiss_Index_remove_ids(fx(x), (const FaissIDSelector *)sel, &removed))
        rc = faiss_fail(err, "remove from index", "ids");
    faiss_IDSelector_free((FaissIDSelector *)sel);
    if (!rc && ret_removed)
        *ret_removed = removed;
    return rc;
}

int retr_vindex_search(const struct retr_vindex *x, const float *q, size_t n_q, size_t k,
                       float *dist, int64_t *labels, struct rag_err *err)
{
    if (faiss_Index_search(cfx(x), (idx_t)n_q, q, (idx_t)k, dist, (idx_t *)labels))
        return faiss_fail(err, "search index", "queries");
    return 0;
}

int retr_vindex_set_param(struct retr_vindex *x, const char *name, double value,
                          struct rag_err *err)
{
    FaissParameterSpace *ps = NULL;
    int rc = 0;

    if (faiss_ParameterSpace_new(&ps))
        return faiss_fail(err, "set index parameter", name);
    if (faiss_ParameterSpace_set_index_parameter(ps, fx(x), name, value))
        rc = faiss_fail(err, "set index parameter", name);
    faiss_ParameterSpace_free(ps);
    return rc;
}
