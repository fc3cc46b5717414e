/*
 * store/vector.c - models, embedding vectors and the chunk KV-cache
 * catalogue.
 *
 * A vector is a BLOB of dim float32 values in host byte order (the store is
 * not meant to move between machines of different endianness; the FAISS
 * file is derived from these rows and can always be rebuilt). Column blobs
 * carry no alignment guarantee, so they are copied into aligned memory before
 * being handed out as float *.
 */
#include "store/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t str_len(const char *p)
{
    return p ? strlen(p) : 0;
}

/* ---- models ---- */

static int find_model(struct store *s, const struct store_model *m, int64_t *ret_id,
                      int64_t *ret_dim, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_MODEL_FIND, err);
    int rc;

    if (!st)
        return RAG_EDB;
    store_bind_text(st, 1, m->role, strlen(m->role));
    store_bind_text(st, 2, m->name, strlen(m->name));
    store_bind_text(st, 3, m->sha256 ? m->sha256 : "", str_len(m->sha256));
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(st, 0);
        *ret_dim = sqlite3_column_int64(st, 1);
    }
    rc = rc == SQLITE_ROW  ? 0 :
         rc == SQLITE_DONE ? RAG_ENOTFOUND :
                             store_db_err(s, err, "read model");
    store_stmt_done(st);
    return rc;
}

static int insert_model(struct store *s, const struct store_model *m, int64_t *ret_id,
                        struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_MODEL_INSERT, err);
    int rc;

    if (!st)
        return RAG_EDB;
    store_bind_text(st, 1, m->role, strlen(m->role));
    store_bind_text(st, 2, m->name, strlen(m->name));
    store_bind_text(st, 3, m->sha256 ? m->sha256 : "", str_len(m->sha256));
    sqlite3_bind_int64(st, 4, (int64_t)m->dim);
    rc = store_step_done(s, st, "insert model", err);
    if (!rc)
        *ret_id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_model_id(struct store *s, const struct store_model *m, int64_t *ret_id,
                   struct rag_err *err)
{
    int64_t id = 0, dim = 0;
    bool owned;
    int rc = store_tx_begin(s, &owned, err);

    if (rc)
        return rc;
    rc = find_model(s, m, &id, &dim, err);
    if (rc == RAG_ENOTFOUND)
        rc = insert_model(s, m, &id, err);
    else if (!rc && dim != (int64_t)m->dim)
        rc = rag_errf(err, RAG_EINVAL, "store '%s': model '%s' has dim %lld, not %zu", s->db_path,
                      m->name, (long long)dim, m->dim);
    rc = store_tx_end(s, owned, rc, err);
    if (!rc)
        *ret_id = id;
    return rc;
}

int store_get_model(struct store *s, int64_t id, struct arena *arena, struct store_model *ret,
                    struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_MODEL_BY_ID, err);
    int rc = 0;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, id);
    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        ret->id = sqlite3_column_int64(st, 0);
        ret->role = store_col_str(st, 1, arena);
        ret->name = store_col_str(st, 2, arena);
        ret->sha256 = store_col_str(st, 3, arena);
        ret->dim = (size_t)sqlite3_column_int64(st, 4);
        break;
    case SQLITE_DONE:
        rc = rag_errf(err, RAG_ENOTFOUND, "store '%s': no model with id %lld", s->db_path,
                      (long long)id);
        break;
    default:
        rc = store_db_err(s, err, "read model");
    }
    store_stmt_done(st);
    return rc;
}

/* ---- vectors ---- */

static int check_dim(struct store *s, int64_t model_id, size_t dim, struct rag_err *err)
{
    struct store_model m;
    struct arena a;
    int rc;

    arena_init(&a, 512);
    rc = store_get_model(s, model_id, &a, &m, err);
    if (!rc && m.dim != dim)
        rc = rag_errf(err, RAG_EINVAL, "store '%s': model '%s' has dim %zu, vectors have %zu",
                      s->db_path, m.name, m.dim, dim);
    arena_release(&a);
    return rc;
}

static int insert_vectors(struct store *s, int64_t model_id, const int64_t *chunk_ids,
                          const float *vecs, size_t n, size_t dim, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_VEC_PUT, err);

    if (!st)
        return RAG_EDB;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, chunk_ids[i]);
        sqlite3_bind_int64(st, 2, model_id);
        sqlite3_bind_blob64(st, 3, vecs + i * dim, dim * sizeof(float), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            int rc = rag_errf(err, RAG_EDB, "store '%s': vector of chunk %lld: %s", s->db_path,
                              (long long)chunk_ids[i], sqlite3_errmsg(s->db));
            store_stmt_done(st);
            return rc;
        }
        sqlite3_reset(st);
    }
    store_stmt_done(st);
    return 0;
}

int store_put_vectors(struct store *s, int64_t model_id, const int64_t *chunk_ids,
                      const float *vecs, size_t n, size_t dim, struct rag_err *err)
{
    bool owned;
    int rc;

    if (dim == 0 || dim > (1u << 20))
        return rag_errf(err, RAG_EINVAL, "store '%s': invalid vector dim %zu", s->db_path, dim);
    rc = store_tx_begin(s, &owned, err);
    if (rc)
        return rc;
    rc = check_dim(s, model_id, dim, err);
    if (!rc)
        rc = insert_vectors(s, model_id, chunk_ids, vecs, n, dim, err);
    return store_tx_end(s, owned, rc, err);
}

int store_get_vector(struct store *s, int64_t model_id, int64_t chunk_id, float *out, size_t dim,
                     struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_VEC_GET, err);
    int rc = 0;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, chunk_id);
    sqlite3_bind_int64(st, 2, model_id);
    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        if ((size_t)sqlite3_column_bytes(st, 0) != dim * sizeof(float))
            rc = rag_errf(err, RAG_EFORMAT,
                          "store '%s': vector of chunk %lld has %d bytes, "
                          "not %zu",
                          s->db_path, (long long)chunk_id, sqlite3_column_bytes(st, 0),
                          dim * sizeof(float));
        else
            memcpy(out, sqlite3_column_blob(st, 0), dim * sizeof(float));
        break;
    case SQLITE_DONE:
        rc = rag_errf(err, RAG_ENOTFOUND, "store '%s': no vector for chunk %lld", s->db_path,
                      (long long)chunk_id);
        break;
    default:
        rc = store_db_err(s, err, "read vector");
    }
    store_stmt_done(st);
    return rc;
}

/* Hand each row of the running ST_VEC_EACH statement to fn through the aligned buffer vec. */
static int walk_vectors(struct store *s, sqlite3_stmt *st, float **vec, size_t *dim,
                        store_vector_fn *fn, void *ctx, struct rag_err *err)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t bytes = (size_t)sqlite3_column_bytes(st, 1);

        if (bytes == 0 || bytes % sizeof(float) || (*dim && bytes != *dim * sizeof(float)))
            return rag_errf(err, RAG_EFORMAT, "store '%s': vector of chunk %lld has %zu bytes",
                            s->db_path, (long long)sqlite3_column_int64(st, 0), bytes);
        if (!*vec)
            *vec = xmalloc(bytes);
        *dim = bytes / sizeof(float);
        memcpy(*vec, sqlite3_column_blob(st, 1), bytes);
        rc = fn(ctx, sqlite3_column_int64(st, 0), *vec, *dim);
        if (rc)
            return rc;
    }
    return rc == SQLITE_DONE ? 0 : store_db_err(s, err, "read vectors");
}

int store_each_vector(struct store *s, int64_t model_id, store_vector_fn *fn, void *ctx,
                      struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_VEC_EACH, err);
    float *vec = NULL;
    size_t dim = 0;
    int rc;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, model_id);
    rc = walk_vectors(s, st, &vec, &dim, fn, ctx, err);
    store_stmt_done(st);
    free(vec);
    return rc;
}

int store_count_vectors(struct store *s, int64_t model_id, size_t *ret_n, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_VEC_COUNT, err);
    int rc = 0;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, model_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        *ret_n = (size_t)sqlite3_column_int64(st, 0);
    else
        rc = store_db_err(s, err, "count vectors");
    store_stmt_done(st);
    return rc;
}

/* ---- KV-cache catalogue ---- */

static void bind_kv_key(sqlite3_stmt *st, const struct store_kv *kv)
{
    sqlite3_bind_int64(st, 1, kv->chunk_id);
    sqlite3_bind_int64(st, 2, kv->model_id);
    store_bind_text(st, 3, kv->variant ? kv->variant : "", str_len(kv->variant));
}

static double now_epoch(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int store_kv_put(struct store *s, const struct store_kv *kv, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_KV_PUT, err);

    if (!st)
        return RAG_EDB;
    bind_kv_key(st, kv);
    store_bind_text(st, 4, kv->path, strlen(kv->path));
    sqlite3_bind_int64(st, 5, (int64_t)kv->n_tokens);
    sqlite3_bind_int64(st, 6, (int64_t)kv->bytes);
    sqlite3_bind_int64(st, 7, kv->hits);
    sqlite3_bind_double(st, 8, kv->last_used > 0 ? kv->last_used : now_epoch());
    sqlite3_bind_double(st, 9, kv->cci);
    return store_step_done(s, st, "write KV-cache entry", err);
}

static int read_kv(struct store *s, struct store_kv *kv, struct arena *arena, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_KV_GET, err);
    int rc = 0;

    if (!st)
        return RAG_EDB;
    bind_kv_key(st, kv);
    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        kv->path = store_col_str(st, 0, arena);
        kv->n_tokens = (size_t)sqlite3_column_int64(st, 1);
        kv->bytes = (uint64_t)sqlite3_column_int64(st, 2);
        kv->hits = sqlite3_column_int64(st, 3);
        kv->last_used = sqlite3_column_double(st, 4);
        kv->cci = sqlite3_column_double(st, 5);
        break;
    case SQLITE_DONE:
        rc = rag_errf(err, RAG_ENOTFOUND, "store '%s': no KV cache for chunk %lld", s->db_path,
                      (long long)kv->chunk_id);
        break;
    default:
        rc = store_db_err(s, err, "read KV-cache entry");
    }
    store_stmt_done(st);
    return rc;
}

int store_kv_use(struct store *s, struct store_kv *kv, struct arena *arena, struct rag_err *err)
{
    double now = now_epoch();
    sqlite3_stmt *st;
    int rc = read_kv(s, kv, arena, err);

    if (rc)
        return rc;
    st = store_stmt(s, ST_KV_HIT, err);
    if (!st)
        return RAG_EDB;
    bind_kv_key(st, kv);
    sqlite3_bind_double(st, 4, now);
    rc = store_step_done(s, st, "update KV-cache entry", err);
    if (!rc) {
        kv->hits++;
        kv->last_used = now;
    }
    return rc;
}

int store_kv_remove(struct store *s, const struct store_kv *kv, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_KV_DELETE, err);
    int rc;

    if (!st)
        return RAG_EDB;
    bind_kv_key(st, kv);
    rc = store_step_done(s, st, "remove KV-cache entry", err);
    if (!rc && sqlite3_changes(s->db) == 0)
        rc = rag_errf(err, RAG_ENOTFOUND, "store '%s': no KV cache for chunk %lld", s->db_path,
                      (long long)kv->chunk_id);
    return rc;
}

int store_kv_bytes(struct store *s, uint64_t *ret, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_KV_BYTES, err);
    int rc = 0;

    if (!st)
        return RAG_EDB;
    if (sqlite3_step(st) == SQLITE_ROW)
        *ret = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = store_db_err(s, err, "sum KV-cache bytes");
    store_stmt_done(st);
    return rc;
}
