/*
 * retrieval/sync.c - keep the FAISS file consistent with the store.
 *
 * The store's vectors table is the source of truth; the index file is
 * derived. The store's meta keys "index.model_id" and "index.factory"
 * record what the file was built from, and are written only after the file
 * has been renamed into place, so a crash in between shows up as a
 * mismatch next time and the file is rebuilt.
 */
#include "retrieval/retrieval.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"

#define SYNC_BATCH 4096

struct rebuild {
    struct retr_index *x;
    size_t dim, n;
    int64_t *ids; /* (cap) */
    float *vecs;  /* (cap, dim) */
    size_t cap;
    bool gather; /* untrained index: collect everything, train, then add */
    struct rag_err *err;
};

static int flush(struct rebuild *r)
{
    int rc = retr_index_add(r->x, r->ids, r->vecs, r->n, r->err);

    r->n = 0;
    return rc;
}

static int take(void *ctx, int64_t chunk_id, const float *vec, size_t dim)
{
    struct rebuild *r = ctx;

    if (dim != r->dim)
        return rag_errf(r->err, RAG_EFORMAT, "vector of chunk %" PRId64 " has %zu values, want %zu",
                        chunk_id, dim, r->dim);
    if (r->gather && r->n == r->cap) {
        r->cap *= 2;
        r->ids = xrealloc(r->ids, r->cap * sizeof(*r->ids));
        r->vecs = xrealloc(r->vecs, r->cap * dim * sizeof(*r->vecs));
    }
    r->ids[r->n] = chunk_id;
    memcpy(r->vecs + r->n * dim, vec, dim * sizeof(*vec));
    r->n++;
    return !r->gather && r->n == r->cap ? flush(r) : 0;
}

static int rebuild(struct retr_index **ret, struct store *s, int64_t model_id, size_t dim,
                   const char *factory, struct rag_err *err)
{
    struct rebuild r = { .dim = dim, .cap = SYNC_BATCH, .err = err };
    int rc = retr_index_new(&r.x, dim, factory, err);

    if (rc)
        return rc;
    r.ids = xmalloc_array(r.cap, sizeof(*r.ids));
    r.vecs = xmalloc_array(r.cap * dim, sizeof(*r.vecs));
    r.gather = retr_index_needs_training(r.x);
    rc = store_each_vector(s, model_id, take, &r, err);
    if (!rc)
        rc = flush(&r);
    free(r.ids);
    free(r.vecs);
    if (rc) {
        retr_index_close(r.x);
        return rc;
    }
    *ret = r.x;
    return 0;
}

/* Why the index at path cannot be used as it is, or "" when it can. */
static int check(struct retr_index **x, const char *path, struct store *s, int64_t model_id,
                 size_t dim, const char *factory, char *why, size_t why_len, struct rag_err *err)
{
    struct buf meta_model = BUF_INIT, meta_factory = BUF_INIT;
    struct rag_err ignored;
    char want[32];
    size_t n;
    int rc = store_count_vectors(s, model_id, &n, err);

    why[0] = '\0';
    snprintf(want, sizeof(want), "%" PRId64, model_id);
    if (rc)
        return rc;
    if (retr_index_open(x, path, &ignored))
        snprintf(why, why_len, "%.150s", ignored.msg);
    else if (retr_index_dim(*x) != dim)
        snprintf(why, why_len, "index has dimension %zu, model has %zu", retr_index_dim(*x), dim);
    else if (store_meta_get(s, "index.model_id", &meta_model, &ignored) ||
             strcmp(buf_cstr(&meta_model), want))
        snprintf(why, why_len, "index was built for another model");
    else if (store_meta_get(s, "index.factory", &meta_factory, &ignored) ||
             strcmp(buf_cstr(&meta_factory), factory))
        snprintf(why, why_len, "index was built as '%s', want '%s'", buf_cstr(&meta_factory),
                 factory);
    else if (retr_index_count(*x) != n)
        snprintf(why, why_len, "index has %zu vectors, store has %zu", retr_index_count(*x), n);
    buf_release(&meta_model);
    buf_release(&meta_factory);
    return 0;
}

static int record(struct store *s, int64_t model_id, const char *factory, struct rag_err *err)
{
    char id[32];
    int rc;

    snprintf(id, sizeof(id), "%" PRId64, model_id);
    rc = store_meta_set(s, "index.model_id", id, err);
    return rc ? rc : store_meta_set(s, "index.factory", factory, err);
}

int retr_index_sync(struct retr_index **ret, const char *path, struct store *s, int64_t model_id,
                    size_t dim, const char *factory, struct retr_sync_report *rep,
                    struct rag_err *err)
{
    struct retr_index *x = NULL;
    struct retr_sync_report r = { 0 };
    int rc;

    factory = factory ? factory : RETR_INDEX_FACTORY_DEFAULT;
    rc = check(&x, path, s, model_id, dim, factory, r.reason, sizeof(r.reason), err);
    if (!rc && r.reason[0]) {
        retr_index_close(x);
        x = NULL;
        r.rebuilt = true;
        rc = rebuild(&x, s, model_id, dim, factory, err);
        rc = rc ? rc : retr_index_save(x, path, err);
        rc = rc ? rc : record(s, model_id, factory, err);
    }
    if (rc) {
        retr_index_close(x);
        return rc;
    }
    r.n = retr_index_count(x);
    if (rep)
        *rep = r;
    *ret = x;
    return 0;
}
