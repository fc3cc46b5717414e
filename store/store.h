/*
 * store/store.h - the SQLite store: documents, chunks, full-text index,
 * vectors, models, metadata and the chunk KV-cache catalogue.
 *
 * A store is a directory holding rag.db (SQLite in WAL mode, foreign keys on,
 * schema versioned by PRAGMA user_version). Chunk ids are the FAISS ids: they
 * are never reused, even after a document is removed. Every write of a
 * document is one transaction; store_begin/store_commit group several.
 *
 * Strings returned by lookups are copied into a caller-owned arena and live
 * as long as it; returned lists own their memory and are freed with their
 * _release function. Input pointers are borrowed for the call only. Every
 * function returns 0 or a negative RAG_E* code; messages name the store file
 * or the document path. A handle is used by one thread at a time; several
 * handles (processes) may share a store, waiting up to 5 s for a lock.
 */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include "base/base.h"

struct store; /* opaque: the connection and its cached statements */

/*
 * Open (creating it and the directory when missing) the store in dir and
 * bring its schema up to date. A file that is not a database, or is
 * truncated, is left untouched: RAG_EDB, "store '<dir>/rag.db': <why>". An
 * unusable directory gives RAG_EIO. Close with store_close.
 */
int store_open(struct store **ret, const char *dir, struct rag_err *err);
void store_close(struct store *s);                /* NULL is a no-op */
const char *store_db_path(const struct store *s); /* "<dir>/rag.db", valid until close */
int store_schema_version(struct store *s);        /* PRAGMA user_version */

/*
 * Group writes in one transaction (BEGIN IMMEDIATE ... COMMIT). Functions
 * that write open their own transaction when none is active, or a savepoint
 * inside one (a failed store_put_doc then undoes only itself). Full-text
 * indexing dominates ingest cost and a commit flushes it, so bulk ingest
 * should commit every few MB of text rather than every document.
 * store_rollback is safe when no transaction is open.
 */
int store_begin(struct store *s, struct rag_err *err);
int store_commit(struct store *s, struct rag_err *err);
void store_rollback(struct store *s);

/* ---- documents and chunks ---- */

struct store_doc {
    int64_t id;
    const char *path;   /* unique key */
    const char *sha256; /* hex digest of the file contents */
    const char *format; /* "text", "markdown", "html", "pdf", ... */
    const char *title;  /* may be NULL */
    const char *chunker;
    int64_t size, mtime; /* bytes; seconds since the epoch */
    int64_t ingested_at; /* seconds since the epoch, set by store_put_doc */
    size_t n_chunks;
    size_t text_bytes; /* sum of the chunk text lengths, set by store_put_doc */
};

/* A chunk; text[0..len) is UTF-8 and need not be NUL-terminated on input. */
struct store_chunk {
    int64_t id, doc_id;
    size_t ord; /* 0-based position in the document */
    size_t byte_start, byte_end;
    int page_start, page_end; /* 0 when the format has no pages */
    const char *heading_path; /* "A > B > C", may be NULL */
    size_t n_tokens;
    const char *text;
    size_t len;
};

struct store_doc_list {
    struct store_doc *item;
    size_t n, cap;
    struct arena arena; /* the strings */
};
void store_doc_list_init(struct store_doc_list *l);
void store_doc_list_release(struct store_doc_list *l);

struct store_ids {
    int64_t *item;
    size_t n, cap;
};
void store_ids_release(struct store_ids *ids);

/*
 * In one transaction, remove any document with meta->path (its chunks, their
 * full-text rows, vectors and KV-cache entries go with it) and insert meta
 * with chunks[0..n). meta->id, n_chunks, text_bytes and ingested_at are
 * ignored. On success the new ids are written to *ret_id (may be NULL) and to
 * chunks[i].id and chunks[i].doc_id; on failure nothing changed.
 */
int store_put_doc(struct store *s, const struct store_doc *meta, struct store_chunk *chunks,
                  size_t n, int64_t *ret_id, struct rag_err *err);
/* Remove the document at path; RAG_ENOTFOUND when there is none. */
int store_remove_doc(struct store *s, const char *path, struct rag_err *err);

/* Look a document up by path or id; strings go to arena. RAG_ENOTFOUND. */
int store_find_doc(struct store *s, const char *path, struct arena *arena, struct store_doc *ret,
                   struct rag_err *err);
int store_get_doc(struct store *s, int64_t id, struct arena *arena, struct store_doc *ret,
                  struct rag_err *err);

/*
 * Append to out the documents whose path is prefix or lies below the
 * directory prefix ("/a/b" lists "/a/b" and "/a/b/x", not "/a/bc"), sorted by
 * path. NULL or "" lists every document. A trailing '/' is ignored.
 */
int store_list_docs(struct store *s, const char *prefix, struct store_doc_list *out,
                    struct rag_err *err);

/* Chunk by id, or by (doc_id, ord); heading_path and text go to arena. */
int store_get_chunk(struct store *s, int64_t id, struct arena *arena, struct store_chunk *ret,
                    struct rag_err *err);
int store_get_chunk_at(struct store *s, int64_t doc_id, size_t ord, struct arena *arena,
                       struct store_chunk *ret, struct rag_err *err);
/* Append the chunk ids of a document to out, in chunk order. */
int store_doc_chunk_ids(struct store *s, int64_t doc_id, struct store_ids *out,
                        struct rag_err *err);

/* Why a document got its chunker: the five metrics and the total. */
struct store_chunker_score {
    const char *chunker;
    double sc, bi, icc, dcc, rc, total;
};
/* Replace the scores (or the IDC intents) stored for a document. */
int store_put_chunker_scores(struct store *s, int64_t doc_id,
                             const struct store_chunker_score *scores, size_t n,
                             struct rag_err *err);
int store_put_intents(struct store *s, int64_t doc_id, const char *const *texts, size_t n,
                      struct rag_err *err);

/* ---- full-text search ---- */

struct store_hit {
    int64_t chunk_id, doc_id;
    const char *doc_path;
    const char *heading_path; /* "" when none */
    const char *snippet;      /* "" until store_hit_snippets fills it */
    int page_start, page_end;
    size_t ord, byte_start, byte_end;
    double score; /* -bm25(chunks_fts): positive, higher is better */
};

struct store_hit_list {
    struct store_hit *item;
    size_t n, cap;
    struct arena arena; /* the strings */
};
void store_hit_list_init(struct store_hit_list *l);
void store_hit_list_release(struct store_hit_list *l);

/*
 * BM25 over chunk text (FTS5, tokenizer "porter unicode61 remove_diacritics
 * 2"). query is free text: it is split into words, common English stop words
 * are dropped (unless nothing else is left) and the remaining words are
 * quoted and OR'ed, so any input is safe and a document matching any word is
 * ranked. Appends up to k hits to out, best first. A query without words
 * gives 0 hits and returns 0.
 */
int store_search_bm25(struct store *s, const char *query, size_t k, struct store_hit_list *out,
                      struct rag_err *err);
/*
 * Append hits for chunk ids[0..n) with the given scores, in that order (for
 * rankings made outside the store, e.g. dense or fused). RAG_EDB when an id
 * has no chunk; out is then unchanged.
 */
int store_hits_for_ids(struct store *s, const int64_t *ids, const double *scores, size_t n,
                       struct store_hit_list *out, struct rag_err *err);
/*
 * Fill the snippet of hits l->item[from..n) for query: about 32 tokens around
 * the matches, no markup, white space collapsed. Separate from the search
 * because each snippet costs a full-text lookup and rankers need none.
 */
int store_hit_snippets(struct store *s, const char *query, struct store_hit_list *l, size_t from,
                       struct rag_err *err);
/* The FTS5 expression built from query (appended to out); for tests and traces. */
void store_fts_query(struct store *s, const char *query, struct buf *out);

/* ---- models and vectors ---- */

struct store_model {
    int64_t id;
    const char *role; /* "embed", "generate" */
    const char *name;
    const char *sha256;
    size_t dim; /* embedding size; 0 for generators */
};

/*
 * Id of the model row with this (role, name, sha256), inserted when absent.
 * RAG_EINVAL when it exists with another dim.
 */
int store_model_id(struct store *s, const struct store_model *m, int64_t *ret_id,
                   struct rag_err *err);
/* Model row by id; strings go to arena. RAG_ENOTFOUND. */
int store_get_model(struct store *s, int64_t id, struct arena *arena, struct store_model *ret,
                    struct rag_err *err);

/*
 * Store vecs[i * dim .. (i + 1) * dim) for chunk_ids[i], i < n, in one
 * transaction, replacing earlier vectors of that model. RAG_EINVAL when dim
 * differs from the model's, RAG_EDB when a chunk id does not exist.
 */
int store_put_vectors(struct store *s, int64_t model_id, const int64_t *chunk_ids,
                      const float *vecs, size_t n, size_t dim, struct rag_err *err);
/* Copy one vector into out[0..dim); RAG_ENOTFOUND, RAG_EFORMAT on a size mismatch. */
int store_get_vector(struct store *s, int64_t model_id, int64_t chunk_id, float *out, size_t dim,
                     struct rag_err *err);

/*
 * Call fn for every vector of the model in chunk id order. vec is valid
 * during the call only. A non-zero return from fn stops the walk and is
 * returned. fn must not write to the store.
 */
typedef int store_vector_fn(void *ctx, int64_t chunk_id, const float *vec, size_t dim);
int store_each_vector(struct store *s, int64_t model_id, store_vector_fn *fn, void *ctx,
                      struct rag_err *err);
int store_count_vectors(struct store *s, int64_t model_id, size_t *ret_n, struct rag_err *err);

/* ---- metadata ---- */

/* Append the value of key to out; RAG_ENOTFOUND when unset. */
int store_meta_get(struct store *s, const char *key, struct buf *out, struct rag_err *err);
int store_meta_set(struct store *s, const char *key, const char *value, struct rag_err *err);

/* ---- statistics ---- */

#define STORE_STATS_FORMATS 8

struct store_stats {
    size_t n_docs, n_chunks, n_vectors;
    uint64_t text_bytes; /* sum of chunk text lengths */
    uint64_t db_bytes;   /* rag.db plus its WAL file */
    struct {
        char format[16];
        size_t n_docs;
    } formats[STORE_STATS_FORMATS]; /* most frequent first */
    size_t n_formats;
};
int store_stats(struct store *s, struct store_stats *ret, struct rag_err *err);

/* Row counts taken table by table, for consistency checks. */
struct store_check {
    size_t n_docs, n_chunks, n_fts_rows, n_vectors;
    size_t n_chunks_declared; /* sum of documents.n_chunks */
};
/*
 * Count the rows of each table and verify the full-text index against the
 * chunk text (O(store size)). RAG_EDB when the index is out of sync or a
 * count disagrees; *ret is filled in either case.
 */
int store_check(struct store *s, struct store_check *ret, struct rag_err *err);

/* ---- chunk KV-cache catalogue ---- */

struct store_kv {
    int64_t chunk_id, model_id;
    const char *variant; /* prefix policy, e.g. "sys1" */
    const char *path;    /* cache file, relative to the store's kv/ */
    size_t n_tokens;
    uint64_t bytes;
    int64_t hits;
    double last_used; /* seconds since the epoch */
    double cci;       /* cache-context impact from Cache-Craft */
};

/* Insert or replace the entry for (chunk_id, model_id, variant). */
int store_kv_put(struct store *s, const struct store_kv *kv, struct rag_err *err);
/*
 * Look up the entry keyed by kv->chunk_id, model_id and variant, count a hit,
 * set last_used to now and fill the other fields (strings go to arena).
 * RAG_ENOTFOUND when there is none.
 */
int store_kv_use(struct store *s, struct store_kv *kv, struct arena *arena, struct rag_err *err);
/* Remove the entry with the key of kv; RAG_ENOTFOUND when there is none. */
int store_kv_remove(struct store *s, const struct store_kv *kv, struct rag_err *err);
/* Total bytes of the catalogue entries. */
int store_kv_bytes(struct store *s, uint64_t *ret, struct rag_err *err);

#endif
