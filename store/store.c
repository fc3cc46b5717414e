/*
 * store/store.c - opening and closing a store, the statement cache,
 * transactions, metadata and statistics.
 *
 * A store is a directory with rag.db. Before SQLite touches an existing
 * rag.db its 100-byte header is checked by hand, so a file that is not a
 * database, or one cut short, is reported and left exactly as it was (SQLite
 * would only notice a truncation when a missing page is read). The
 * connection runs with foreign keys on, WAL, synchronous=NORMAL (durable at
 * checkpoints, never corrupt) and a 5 s busy timeout so that a reader and a
 * writer in two processes simply wait for each other.
 *
 * No ANALYZE or PRAGMA optimize: every query is driven by an index, and a
 * statistics update by one process changes the schema under the others (with
 * SQLite 3.40 a connection that had waited in BEGIN IMMEDIATE then failed
 * to prepare with "no such table").
 */
#include "store/internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

#define DOC_COLS                                                                 \
 "id, path, sha256, size, mtime, format, title, chunker, n_chunks, text_bytes, " \
 "ingested_at"
#define CHUNK_COLS                                                             \
 "id, doc_id, ord, byte_start, byte_end, page_start, page_end, heading_path, " \
 "n_tokens, text"

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT store_op",
    [ST_RELEASE] = "RELEASE store_op",
    [ST_ROLLBACK_TO] = "ROLLBACK TO store_op",
    [ST_DOC_DELETE] = "DELETE FROM documents WHERE path = ?1",
    [ST_DOC_INSERT] = "INSERT INTO documents(path, sha256, size, mtime, format, title, chunker, "
                      "n_chunks, text_bytes, ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                      "?9, ?10)",
    [ST_DOC_BY_PATH] = "SELECT " DOC_COLS " FROM documents WHERE path = ?1",
    [ST_DOC_BY_ID] = "SELECT " DOC_COLS " FROM documents WHERE id = ?1",
    [ST_DOC_LIST_ALL] = "SELECT " DOC_COLS " FROM documents ORDER BY path",
    [ST_DOC_LIST_PREFIX] = "SELECT " DOC_COLS " FROM documents WHERE path = ?1 OR "
                           "(path >= ?2 AND path < ?3) ORDER BY path",
    [ST_CHUNK_INSERT] = "INSERT INTO chunks(doc_id, ord, byte_start, byte_end, page_start, "
                        "page_end, heading_path, n_tokens, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                        "?7, ?8, ?9)",
    [ST_CHUNK_BY_ID] = "SELECT " CHUNK_COLS " FROM chunks WHERE id = ?1",
    [ST_CHUNK_AT] = "SELECT " CHUNK_COLS " FROM chunks WHERE doc_id = ?1 AND ord = ?2",
    [ST_CHUNK_IDS] = "SELECT id FROM chunks WHERE doc_id = ?1 ORDER BY ord",
    [ST_SCORES_DELETE] = "DELETE FROM chunker_scores WHERE doc_id = ?1",
    [ST_SCORES_INSERT] = "INSERT OR REPLACE INTO chunker_scores(doc_id, chunker, sc, bi, icc, "
                         "dcc, rc, total) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_INTENTS_DELETE] = "DELETE FROM intents WHERE doc_id = ?1",
    [ST_INTENTS_INSERT] = "INSERT INTO intents(doc_id, text) VALUES (?1, ?2)",
    [ST_FTS_SEARCH] = "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                      "ORDER BY rank LIMIT ?2",
    [ST_FTS_SNIPPET] = "SELECT snippet(chunks_fts, 0, '', '', '...', 32) FROM chunks_fts "
                       "WHERE chunks_fts MATCH ?1 AND rowid = ?2",
    [ST_HIT_INFO] = "SELECT c.doc_id, d.path, c.heading_path, c.page_start, c.page_end, c.ord, "
                    "c.byte_start, c.byte_end FROM chunks c JOIN documents d ON d.id = c.doc_id "
                    "WHERE c.id = ?1",
    [ST_MODEL_FIND] = "SELECT id, dim FROM models WHERE role = ?1 AND name = ?2 AND sha256 = ?3",
    [ST_MODEL_INSERT] = "INSERT INTO models(role, name, sha256, dim) VALUES (?1, ?2, ?3, ?4)",
    [ST_MODEL_BY_ID] = "SELECT id, role, name, sha256, dim FROM models WHERE id = ?1",
    [ST_VEC_PUT] = "INSERT OR REPLACE INTO vectors(chunk_id, model_id, vec) VALUES (?1, ?2, ?3)",
    [ST_VEC_GET] = "SELECT vec FROM vectors WHERE chunk_id = ?1 AND model_id = ?2",
    [ST_VEC_EACH] = "SELECT chunk_id, vec FROM vectors WHERE model_id = ?1 ORDER BY chunk_id",
    [ST_VEC_COUNT] = "SELECT count(*) FROM vectors WHERE model_id = ?1",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_STATS] = "SELECT count(*), coalesce(sum(n_chunks), 0), coalesce(sum(text_bytes), 0), "
                 "(SELECT count(*) FROM vectors) FROM documents",
    [ST_FORMATS] = "SELECT format, count(*) FROM documents GROUP BY format "
                   "ORDER BY count(*) DESC, format LIMIT 8",
    [ST_KV_PUT] = "INSERT OR REPLACE INTO kv_cache(chunk_id, model_id, variant, path, n_tokens, "
                  "bytes, hits, last_used, cci) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_KV_GET] = "SELECT path, n_tokens, bytes, hits, last_used, cci FROM kv_cache "
                  "WHERE chunk_id = ?1 AND model_id = ?2 AND variant = ?3",
    [ST_KV_HIT] = "UPDATE kv_cache SET hits = hits + 1, last_used = ?4 "
                  "WHERE chunk_id = ?1 AND model_id = ?2 AND variant = ?3",
    [ST_KV_DELETE] = "DELETE FROM kv_cache WHERE chunk_id = ?1 AND model_id = ?2 AND variant = ?3",
    [ST_KV_BYTES] = "SELECT coalesce(sum(bytes), 0) FROM kv_cache",
};

/* ---- helpers shared by the store's files ---- */

int store_db_err(struct store *s, struct rag_err *err, const char *what)
{
    return rag_errf(err, RAG_EDB, "store '%s': %s: %s", s->db_path, what, sqlite3_errmsg(s->db));
}

sqlite3_stmt *store_stmt(struct store *s, enum store_stmt id, struct rag_err *err)
{
    assert(id >= 0 && id < ST__COUNT && stmt_sql[id]);
    if (!s->stmt[id] && sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                           &s->stmt[id], NULL) != SQLITE_OK) {
        store_db_err(s, err, "prepare statement");
        s->stmt[id] = NULL;
    }
    return s->stmt[id];
}

void store_stmt_done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int store_step_done(struct store *s, sqlite3_stmt *st, const char *what, struct rag_err *err)
{
    int rc = 0;

    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_err(s, err, what);
    store_stmt_done(st);
    return rc;
}

static int run(struct store *s, enum store_stmt id, const char *what, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, id, err);

    return st ? store_step_done(s, st, what, err) : RAG_EDB;
}

const char *store_col_str(sqlite3_stmt *st, int col, struct arena *arena)
{
    const char *p = (const char *)sqlite3_column_text(st, col);

    return arena_strndup(arena, p ? p : "", p ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

int store_bind_text(sqlite3_stmt *st, int col, const char *s, size_t len)
{
    if (!s)
        return sqlite3_bind_null(st, col);
    return sqlite3_bind_text64(st, col, s, len, SQLITE_STATIC, SQLITE_UTF8);
}

/* ---- transactions ---- */

int store_tx_begin(struct store *s, bool *owned, struct rag_err *err)
{
    *owned = sqlite3_get_autocommit(s->db) != 0;
    return run(s, *owned ? ST_BEGIN : ST_SAVEPOINT, "begin transaction", err);
}

int store_tx_end(struct store *s, bool owned, int rc, struct rag_err *err)
{
    if (!rc) {
        rc = run(s, owned ? ST_COMMIT : ST_RELEASE, "commit", err);
        if (!rc)
            return 0;
    }
    if (owned) {
        if (!sqlite3_get_autocommit(s->db))
            run(s, ST_ROLLBACK, "rollback", NULL);
    } else {
        run(s, ST_ROLLBACK_TO, "rollback", NULL);
        run(s, ST_RELEASE, "rollback", NULL);
    }
    return rc;
}

int store_begin(struct store *s, struct rag_err *err)
{
    if (!sqlite3_get_autocommit(s->db))
        return rag_errf(err, RAG_EINVAL, "store '%s': a transaction is already open", s->db_path);
    return run(s, ST_BEGIN, "begin transaction", err);
}

int store_commit(struct store *s, struct rag_err *err)
{
    int rc = run(s, ST_COMMIT, "commit", err);

    if (rc)
        store_rollback(s);
    return rc;
}

void store_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        run(s, ST_ROLLBACK, "rollback", NULL);
}

/* ---- open and close ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static off_t file_size_or_0(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

/*
 * Check an existing rag.db's header (https://sqlite.org/fileformat.html
 * 1.3): the magic string, and, when the in-header page count is valid and no
 * WAL holds newer pages, that the file is as long as the header says.
 */
static int check_header(struct store *s, struct rag_err *err)
{
    static const char magic[16] = "SQLite format 3";
    unsigned char h[100];
    char wal[4096];
    off_t size = file_size_or_0(s->db_path);
    ssize_t n;
    int fd;

    if (size == 0)
        return 0; /* absent or empty: a new database */
    fd = open(s->db_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rag_errno(err, "store '%s'", s->db_path);
    n = read(fd, h, sizeof(h));
    close(fd);
    if (n < 0)
        return rag_errno(err, "store '%s'", s->db_path);
    if (memcmp(h, magic, n < 16 ? (size_t)n : 16) != 0)
        return rag_errf(err, RAG_EDB, "store '%s': file is not a database", s->db_path);
    if (n < (ssize_t)sizeof(h))
        return rag_errf(err, RAG_EDB, "store '%s': database file is truncated (%lld bytes)",
                        s->db_path, (long long)size);
    snprintf(wal, sizeof(wal), "%s-wal", s->db_path);
    uint32_t page = (uint32_t)h[16] << 8 | h[17];
    uint64_t want = (uint64_t)(page == 1 ? 65536 : page) * be32(h + 28);
    if (be32(h + 92) == be32(h + 24) && file_size_or_0(wal) == 0 && (uint64_t)size < want)
        return rag_errf(err, RAG_EDB, "store '%s': database file is truncated (%lld of %llu bytes)",
                        s->db_path, (long long)size, (unsigned long long)want);
    return 0;
}

static int open_db(struct store *s, struct rag_err *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(s->db_path, &s->db, flags, NULL);

    if (rc == SQLITE_CANTOPEN) {
        errno = sqlite3_system_errno(s->db);
        return errno ? rag_errno(err, "store '%s'", s->db_path) :
                       rag_errf(err, RAG_EIO, "store '%s': cannot open", s->db_path);
    }
    if (rc != SQLITE_OK)
        return store_db_err(s, err, "open");
    if (sqlite3_db_readonly(s->db, "main") == 1)
        return rag_errf(err, RAG_EIO, "store '%s': read-only", s->db_path);
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    return 0;
}

static int set_pragmas(struct store *s, struct rag_err *err)
{
    static const char *const pragmas[] = {
        "PRAGMA foreign_keys = ON",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA cache_size = -32768",         /* 32 MiB: FTS5 segment merges stay in memory */
        "SELECT count(*) FROM sqlite_master", /* read the schema now: damage shows at open */
    };

    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
        if (sqlite3_exec(s->db, pragmas[i], NULL, NULL, NULL) != SQLITE_OK)
            return rag_errf(err, RAG_EDB, "store '%s': %s", s->db_path, sqlite3_errmsg(s->db));
    }
    return 0;
}

int store_open(struct store **ret, const char *dir, struct rag_err *err)
{
    struct store *s = xcalloc(1, sizeof(*s));
    struct buf path = BUF_INIT;
    int rc;

    s->dir = xstrdup(dir);
    buf_appendf(&path, "%s/rag.db", dir);
    s->db_path = buf_detach(&path, NULL);
    rc = *dir ? file_mkdirs(dir, err) : rag_errf(err, RAG_EINVAL, "store '': empty path");
    if (!rc)
        rc = check_header(s, err);
    if (!rc)
        rc = open_db(s, err);
    if (!rc)
        rc = set_pragmas(s, err);
    if (!rc)
        rc = store_migrate(s, err);
    if (!rc)
        rc = store_tokenizer_open(s, err);
    if (rc) {
        store_close(s);
        return rc;
    }
    *ret = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    store_tokenizer_close(s);
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close_v2(s->db);
    free(s->dir);
    free(s->db_path);
    free(s);
}

const char *store_db_path(const struct store *s)
{
    return s->db_path;
}

int store_schema_version(struct store *s)
{
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- metadata ---- */

int store_meta_get(struct store *s, const char *key, struct buf *out, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_META_GET, err);
    int rc = 0;

    if (!st)
        return RAG_EDB;
    store_bind_text(st, 1, key, strlen(key));
    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        buf_append(out, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        buf_append(out, "", 0);
        break;
    case SQLITE_DONE:
        rc = rag_errf(err, RAG_ENOTFOUND, "store '%s': no meta key '%s'", s->db_path, key);
        break;
    default:
        rc = store_db_err(s, err, "read meta");
    }
    store_stmt_done(st);
    return rc;
}

int store_meta_set(struct store *s, const char *key, const char *value, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_META_SET, err);

    if (!st)
        return RAG_EDB;
    store_bind_text(st, 1, key, strlen(key));
    store_bind_text(st, 2, value, strlen(value));
    return store_step_done(s, st, "write meta", err);
}

/* ---- statistics ---- */

static int read_formats(struct store *s, struct store_stats *ret, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_FORMATS, err);
    int rc;

    if (!st)
        return RAG_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && ret->n_formats < STORE_STATS_FORMATS) {
        const char *f = (const char *)sqlite3_column_text(st, 0);

        snprintf(ret->formats[ret->n_formats].format, sizeof(ret->formats[0].format), "%s",
                 f ? f : "");
        ret->formats[ret->n_formats++].n_docs = (size_t)sqlite3_column_int64(st, 1);
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_db_err(s, err, "read statistics");
    store_stmt_done(st);
    return rc;
}

int store_stats(struct store *s, struct store_stats *ret, struct rag_err *err)
{
    sqlite3_stmt *st = store_stmt(s, ST_STATS, err);
    struct store_stats r = { 0 };
    char wal[4096];
    int rc = 0;

    if (!st)
        return RAG_EDB;
    if (sqlite3_step(st) == SQLITE_ROW) {
        r.n_docs = (size_t)sqlite3_column_int64(st, 0);
        r.n_chunks = (size_t)sqlite3_column_int64(st, 1);
        r.text_bytes = (uint64_t)sqlite3_column_int64(st, 2);
        r.n_vectors = (size_t)sqlite3_column_int64(st, 3);
    } else {
        rc = store_db_err(s, err, "read statistics");
    }
    store_stmt_done(st);
    if (!rc)
        rc = read_formats(s, &r, err);
    if (rc)
        return rc;
    snprintf(wal, sizeof(wal), "%s-wal", s->db_path);
    r.db_bytes = (uint64_t)file_size_or_0(s->db_path) + (uint64_t)file_size_or_0(wal);
    *ret = r;
    return 0;
}

/* ---- consistency check ---- */

static int count_rows(struct store *s, const char *sql, size_t *ret, struct rag_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        rc = store_db_err(s, err, "check");
    else
        *ret = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int store_check(struct store *s, struct store_check *ret, struct rag_err *err)
{
    struct store_check c = { 0 };
    int rc = count_rows(s, "SELECT count(*) FROM documents", &c.n_docs, err);

    if (!rc)
        rc = count_rows(s, "SELECT coalesce(sum(n_chunks), 0) FROM documents", &c.n_chunks_declared,
                        err);
    if (!rc)
        rc = count_rows(s, "SELECT count(*) FROM chunks", &c.n_chunks, err);
    if (!rc)
        rc = count_rows(s, "SELECT count(*) FROM chunks_fts_docsize", &c.n_fts_rows, err);
    if (!rc)
        rc = count_rows(s, "SELECT count(*) FROM vectors", &c.n_vectors, err);
    if (!rc && sqlite3_exec(s->db,
                            "INSERT INTO chunks_fts(chunks_fts, rank) "
                            "VALUES ('integrity-check', 1)",
                            NULL, NULL, NULL) != SQLITE_OK)
        rc = store_db_err(s, err, "full-text index out of sync");
    if (!rc && (c.n_chunks != c.n_fts_rows || c.n_chunks != c.n_chunks_declared))
        rc = rag_errf(err, RAG_EDB,
                      "store '%s': %zu chunks, %zu declared, %zu in the full-text "
                      "index",
                      s->db_path, c.n_chunks, c.n_chunks_declared, c.n_fts_rows);
    *ret = c;
    return rc;
}
