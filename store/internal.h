/*
 * store/internal.h - what the store's .c files share: the connection struct,
 * the table of cached statements and small helpers around them. Internal to
 * store/.
 */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* Cached statements; their SQL is in store.c (stmt_sql), in this order. */
enum store_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_DOC_DELETE,
    ST_DOC_INSERT,
    ST_DOC_BY_PATH,
    ST_DOC_BY_ID,
    ST_DOC_LIST_ALL,
    ST_DOC_LIST_PREFIX,
    ST_CHUNK_INSERT,
    ST_CHUNK_BY_ID,
    ST_CHUNK_AT,
    ST_CHUNK_IDS,
    ST_SCORES_DELETE,
    ST_SCORES_INSERT,
    ST_INTENTS_DELETE,
    ST_INTENTS_INSERT,
    ST_FTS_SEARCH,
    ST_FTS_SNIPPET,
    ST_HIT_INFO,
    ST_MODEL_FIND,
    ST_MODEL_INSERT,
    ST_MODEL_BY_ID,
    ST_VEC_PUT,
    ST_VEC_GET,
    ST_VEC_EACH,
    ST_VEC_COUNT,
    ST_META_GET,
    ST_META_SET,
    ST_STATS,
    ST_FORMATS,
    ST_KV_PUT,
    ST_KV_GET,
    ST_KV_HIT,
    ST_KV_DELETE,
    ST_KV_BYTES,
    ST__COUNT
};

struct store {
    sqlite3 *db;
    char *dir;
    char *db_path;
    sqlite3_stmt *stmt[ST__COUNT]; /* prepared on first use, finalized by store_close */
    /* FTS5's unicode61 tokenizer, used to split user queries into words */
    fts5_tokenizer tok_api;
    Fts5Tokenizer *tok;
};

/* The cached statement id, prepared on first use; NULL with err set on failure. */
sqlite3_stmt *store_stmt(struct store *s, enum store_stmt id, struct rag_err *err);
/* Reset st and clear its bindings (NULL is a no-op). */
void store_stmt_done(sqlite3_stmt *st);
/* RAG_EDB "store '<db>': <what>: <sqlite message>"; returns RAG_EDB. */
int store_db_err(struct store *s, struct rag_err *err, const char *what);
/* Run the cached statement id to completion (bindings already set), then reset it. */
int store_step_done(struct store *s, sqlite3_stmt *st, const char *what, struct rag_err *err);

/*
 * Open a transaction for one write operation: BEGIN IMMEDIATE when none is
 * active (*owned = true), a savepoint otherwise. store_tx_end commits (rc ==
 * 0) or rolls back, and returns rc or the commit error.
 */
int store_tx_begin(struct store *s, bool *owned, struct rag_err *err);
int store_tx_end(struct store *s, bool owned, int rc, struct rag_err *err);

/* Copy a text column into arena ("" for NULL). */
const char *store_col_str(sqlite3_stmt *st, int col, struct arena *arena);
/* Bind s[0..len) (NULL binds SQL NULL); the memory must outlive the step. */
int store_bind_text(sqlite3_stmt *st, int col, const char *s, size_t len);

/* schema.c: bring the schema to the newest version. */
int store_migrate(struct store *s, struct rag_err *err);
int store_schema_latest(void);

/* search.c: set up and free the query tokenizer. */
int store_tokenizer_open(struct store *s, struct rag_err *err);
void store_tokenizer_close(struct store *s);

#endif
