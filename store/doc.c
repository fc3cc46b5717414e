/*
 * store/doc.c - documents and their chunks: put (replace), remove, lookups,
 * prefix listing, chunker scores and intents.
 *
 * Replacing a document deletes its row and lets the foreign-key cascades
 * remove its chunks, vectors, scores, intents and KV-cache entries; the chunk
 * delete trigger removes the full-text rows. Everything a put does happens in
 * one transaction (or a savepoint inside the caller's), so a crash leaves
 * either the old or the new version.
 *
 * Prefix listing compares byte strings as ranges on the unique path index:
 * "/a/b" matches path = '/a/b' or '/a/b/' <= path < '/a/b0' ('0' follows
 * '/'), so LIKE wildcards and "/a/bc" cannot match.
 */
#include "store/internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t to_i64(size_t v)
{
    return v > (size_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int bind_doc(sqlite3_stmt *st, const struct store_doc *d, size_t n, size_t text_bytes)
{
    int rc = store_bind_text(st, 1, d->path, strlen(d->path));

    rc |= store_bind_text(st, 2, d->sha256 ? d->sha256 : "", d->sha256 ? strlen(d->sha256) : 0);
    rc |= sqlite3_bind_int64(st, 3, d->size);
    rc |= sqlite3_bind_int64(st, 4, d->mtime);
    rc |= store_bind_text(st, 5, d->format ? d->format : "", d->format ? strlen(d->format) : 0);
    rc |= store_bind_text(st, 6, d->title, d->title ? strlen(d->title) : 0);
    rc |= store_bind_text(st, 7, d->chunker ? d->chunker : "", d->chunker ? strlen(d->chunker) : 0);
    rc |= sqlite3_bind_int64(st, 8, to_i64(n));
    rc |= sqlite3_bind_int64(st, 9, to_i64(text_bytes));
    rc |= sqlite3_bind_int64(st, 10, (int64_t)time(NULL));
    return rc;
}

static int bind_chunk(sqlite3_stmt *st, int64_t doc_id, const struct store_chunk *c)
{
    const char *h = c->heading_path ? c->heading_path : "";
    int rc = sqlite3_bind_int64(st, 1, doc_id);

    rc |= sqlite3_bind_int64(st, 2, to_i64(c->ord));
    rc |= sqlite3_bind_int64(st, 3, to_i64(c->byte_start));
    rc |= sqlite3_bind_int64(st, 4, to_i64(c->byte_end));
    rc |= sqlite3_bind_int(st, 5, c->page_start);
    rc |= sqlite3_bind_int(st, 6, c->page_end);
    rc |= store_bind_text(st, 7, h, strlen(h));
    rc |= sqlite3_bind_int64(st, 8, to_i64(c->n_tokens));
    rc |= store_bind_text(st, 9, c->text ? c->text : "", c->text ? c->len : 0);
    return rc;
}

/* Insert chunks[0..n) of doc_id, writing their ids back. */
static int insert_chunks(struct store *s, int64_t doc_id, struct store_chunk *chunks, size_t n,
                         struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_CHUNK_INSERT, err);

    if (!st)
        return RAG_EDB;
    for (size_t i = 0; i < n; i++) {
        if (bind_chunk(st, doc_id, &chunks[i]) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
            int rc = rag_errf(err, RAG_EDB, "store '%s': insert chunk %zu: %s", s->db_path, i,
                              sqlite3_errmsg(s->db));
            store_stmt_done(st);
            return rc;
        }
        chunks[i].id = sqlite3_last_insert_rowid(s->db);
        chunks[i].doc_id = doc_id;
        sqlite3_reset(st);
    }
    store_stmt_done(st);
    return 0;
}

static int put_doc_rows(struct store *s, const struct store_doc *meta, struct store_chunk *chunks,
                        size_t n, int64_t *ret_id, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_DOC_DELETE, err);
    size_t text_bytes = 0;
    int rc;

    if (!st)
        return RAG_EDB;
    store_bind_text(st, 1, meta->path, strlen(meta->path));
    rc = store_step_done(s, st, "remove old version", err);
    if (rc)
        return rc;
    st = store_stmt(s, ST_DOC_INSERT, err);
    if (!st)
        return RAG_EDB;
    for (size_t i = 0; i < n; i++)
        text_bytes += chunks[i].len;
    if (bind_doc(st, meta, n, text_bytes) != SQLITE_OK)
        rc = store_db_err(s, err, "bind document");
    else
        rc = store_step_done(s, st, "insert document", err);
    store_stmt_done(st);
    if (rc)
        return rc;
    *ret_id = sqlite3_last_insert_rowid(s->db);
    return insert_chunks(s, *ret_id, chunks, n, err);
}

int store_put_doc(struct store *s, const struct store_doc *meta, struct store_chunk *chunks,
                  size_t n, int64_t *ret_id, struct rag_err *err)
{
    int64_t id = 0;
    bool owned;
    int rc;

    assert(meta && meta->path && (chunks || n == 0));
    rc = store_tx_begin(s, &owned, err);
    if (rc)
        return rc;
    rc = put_doc_rows(s, meta, chunks, n, &id, err);
    rc = store_tx_end(s, owned, rc, err);
    if (rc) {
        rag_err_prefix(err, "document '%s'", meta->path);
        return rc;
    }
    if (ret_id)
        *ret_id = id;
    return 0;
}

int store_remove_doc(struct store *s, const char *path, struct rag_err *err)
{
    sqlite3_stmt *st;
    bool owned;
    int rc;

    rc = store_tx_begin(s, &owned, err);
    if (rc)
        return rc;
    st = store_stmt(s, ST_DOC_DELETE, err);
    rc = st ? 0 : RAG_EDB;
    if (!rc) {
        store_bind_text(st, 1, path, strlen(path));
        rc = store_step_done(s, st, "remove document", err);
    }
    if (!rc && sqlite3_changes(s->db) == 0)
        rc = rag_errf(err, RAG_ENOTFOUND, "store '%s': no document '%s'", s->db_path, path);
    return store_tx_end(s, owned, rc, err);
}

/* ---- lookups ---- */

static void read_doc(sqlite3_stmt *st, struct arena *arena, struct store_doc *d)
{
    d->id = sqlite3_column_int64(st, 0);
    d->path = store_col_str(st, 1, arena);
    d->sha256 = store_col_str(st, 2, arena);
    d->size = sqlite3_column_int64(st, 3);
    d->mtime = sqlite3_column_int64(st, 4);
    d->format = store_col_str(st, 5, arena);
    d->title = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : store_col_str(st, 6, arena);
    d->chunker = store_col_str(st, 7, arena);
    d->n_chunks = (size_t)sqlite3_column_int64(st, 8);
    d->text_bytes = (size_t)sqlite3_column_int64(st, 9);
    d->ingested_at = sqlite3_column_int64(st, 10);
}

/* Step st (bound) for one document row; the caller words the RAG_ENOTFOUND message. */
static int one_doc(struct store *s, sqlite3_stmt *st, struct arena *arena, struct store_doc *ret,
                   struct rag_err *err)
{
    int rc = 0;

    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        read_doc(st, arena, ret);
        break;
    case SQLITE_DONE:
        rc = RAG_ENOTFOUND;
        break;
    default:
        rc = store_db_err(s, err, "read document");
    }
    store_stmt_done(st);
    return rc;
}

int store_find_doc(struct store *s, const char *path, struct arena *arena, struct store_doc *ret,
                   struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_DOC_BY_PATH, err);
    int rc;

    if (!st)
        return RAG_EDB;
    store_bind_text(st, 1, path, strlen(path));
    rc = one_doc(s, st, arena, ret, err);
    if (rc == RAG_ENOTFOUND)
        rag_errf(err, rc, "store '%s': no document '%s'", s->db_path, path);
    return rc;
}

int store_get_doc(struct store *s, int64_t id, struct arena *arena, struct store_doc *ret,
                  struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_DOC_BY_ID, err);
    int rc;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, id);
    rc = one_doc(s, st, arena, ret, err);
    if (rc == RAG_ENOTFOUND)
        rag_errf(err, rc, "store '%s': no document with id %lld", s->db_path, (long long)id);
    return rc;
}

void store_doc_list_init(struct store_doc_list *l)
{
    memset(l, 0, sizeof(*l));
    arena_init(&l->arena, 0);
}

void store_doc_list_release(struct store_doc_list *l)
{
    if (!l)
        return;
    free(l->item);
    arena_release(&l->arena);
    store_doc_list_init(l);
}

/* Bind the prefix as path = ?1 OR ?2 <= path < ?3 (see the file comment). */
static void bind_prefix(sqlite3_stmt *st, const char *prefix, struct buf *lo, struct buf *hi)
{
    size_t n = strlen(prefix);

    while (n > 0 && prefix[n - 1] == '/')
        n--;
    buf_append(lo, prefix, n);
    buf_appendc(lo, '/');
    buf_append(hi, prefix, n);
    buf_appendc(hi, '/' + 1);
    store_bind_text(st, 1, prefix, n);
    store_bind_text(st, 2, lo->data, lo->len);
    store_bind_text(st, 3, hi->data, hi->len);
}

int store_list_docs(struct store *s, const char *prefix, struct store_doc_list *out,
                    struct rag_err *err)
{
    bool all = !prefix || !*prefix;
    sqlite3_stmt *st = store_stmt(s, all ? ST_DOC_LIST_ALL : ST_DOC_LIST_PREFIX, err);
    struct buf lo = BUF_INIT, hi = BUF_INIT;
    int rc;

    if (!st)
        return RAG_EDB;
    if (!all)
        bind_prefix(st, prefix, &lo, &hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        VEC_RESERVE(out, out->n + 1);
        read_doc(st, &out->arena, &out->item[out->n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : store_db_err(s, err, "list documents");
    store_stmt_done(st);
    buf_release(&lo);
    buf_release(&hi);
    return rc;
}

/* ---- chunks ---- */

static int one_chunk(struct store *s, sqlite3_stmt *st, struct arena *arena, struct store_chunk *c,
                     struct rag_err *err)
{
    int rc = 0;

    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        c->id = sqlite3_column_int64(st, 0);
        c->doc_id = sqlite3_column_int64(st, 1);
        c->ord = (size_t)sqlite3_column_int64(st, 2);
        c->byte_start = (size_t)sqlite3_column_int64(st, 3);
        c->byte_end = (size_t)sqlite3_column_int64(st, 4);
        c->page_start = sqlite3_column_int(st, 5);
        c->page_end = sqlite3_column_int(st, 6);
        c->heading_path = store_col_str(st, 7, arena);
        c->n_tokens = (size_t)sqlite3_column_int64(st, 8);
        c->text = store_col_str(st, 9, arena);
        c->len = (size_t)sqlite3_column_bytes(st, 9);
        break;
    case SQLITE_DONE:
        rc = RAG_ENOTFOUND;
        break;
    default:
        rc = store_db_err(s, err, "read chunk");
    }
    store_stmt_done(st);
    return rc;
}

int store_get_chunk(struct store *s, int64_t id, struct arena *arena, struct store_chunk *ret,
                    struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_CHUNK_BY_ID, err);
    int rc;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, id);
    rc = one_chunk(s, st, arena, ret, err);
    if (rc == RAG_ENOTFOUND)
        rag_errf(err, rc, "store '%s': no chunk with id %lld", s->db_path, (long long)id);
    return rc;
}

int store_get_chunk_at(struct store *s, int64_t doc_id, size_t ord, struct arena *arena,
                       struct store_chunk *ret, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_CHUNK_AT, err);
    int rc;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_int64(st, 2, to_i64(ord));
    rc = one_chunk(s, st, arena, ret, err);
    if (rc == RAG_ENOTFOUND)
        rag_errf(err, rc, "store '%s': document %lld has no chunk %zu", s->db_path,
                 (long long)doc_id, ord);
    return rc;
}

void store_ids_release(struct store_ids *ids)
{
    if (!ids)
        return;
    free(ids->item);
    memset(ids, 0, sizeof(*ids));
}

int store_doc_chunk_ids(struct store *s, int64_t doc_id, struct store_ids *out, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_CHUNK_IDS, err);
    int rc;

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, doc_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        VEC_RESERVE(out, out->n + 1);
        out->item[out->n++] = sqlite3_column_int64(st, 0);
    }
    rc = rc == SQLITE_DONE ? 0 : store_db_err(s, err, "list chunk ids");
    store_stmt_done(st);
    return rc;
}

/* ---- chunker scores and intents ---- */

/* Delete the rows of doc_id with the statement del (bound to ?1) inside the caller's tx. */
static int delete_of_doc(struct store *s, enum store_stmt del, int64_t doc_id, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, del, err);

    if (!st)
        return RAG_EDB;
    sqlite3_bind_int64(st, 1, doc_id);
    return store_step_done(s, st, "delete old rows", err);
}

static int insert_scores(struct store *s, int64_t doc_id, const struct store_chunker_score *sc,
                         size_t n, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_SCORES_INSERT, err);
    int rc = st ? 0 : RAG_EDB;

    for (size_t i = 0; i < n && !rc; i++) {
        const double v[6] = { sc[i].sc, sc[i].bi, sc[i].icc, sc[i].dcc, sc[i].rc, sc[i].total };

        sqlite3_bind_int64(st, 1, doc_id);
        store_bind_text(st, 2, sc[i].chunker, strlen(sc[i].chunker));
        for (int j = 0; j < 6; j++)
            sqlite3_bind_double(st, 3 + j, v[j]);
        rc = store_step_done(s, st, "insert chunker score", err);
    }
    return rc;
}

int store_put_chunker_scores(struct store *s, int64_t doc_id,
                             const struct store_chunker_score *scores, size_t n,
                             struct rag_err *err)
{
    bool owned;
    int rc = store_tx_begin(s, &owned, err);

    if (rc)
        return rc;
    rc = delete_of_doc(s, ST_SCORES_DELETE, doc_id, err);
    if (!rc)
        rc = insert_scores(s, doc_id, scores, n, err);
    return store_tx_end(s, owned, rc, err);
}

int store_put_intents(struct store *s, int64_t doc_id, const char *const *texts, size_t n,
                      struct rag_err *err)
{
    sqlite3_stmt *st;
    bool owned;
    int rc = store_tx_begin(s, &owned, err);

    if (rc)
        return rc;
    rc = delete_of_doc(s, ST_INTENTS_DELETE, doc_id, err);
    st = rc ? NULL : store_stmt(s, ST_INTENTS_INSERT, err);
    if (!rc && !st)
        rc = RAG_EDB;
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_bind_int64(st, 1, doc_id);
        store_bind_text(st, 2, texts[i], strlen(texts[i]));
        rc = store_step_done(s, st, "insert intent", err);
    }
    return store_tx_end(s, owned, rc, err);
}
