/*
 * cmd/pipeline.c - one document through the ingest pipeline: read, hash,
 * compare with the store, parse, chunk, store (one transaction per
 * document, inside store_put_doc). Shared by `rag ingest` and `rag eval`.
 */
#include "cmd/cmd.h"

#include <sys/stat.h>

const char *pipeline_status_name(enum pipeline_status s)
{
    static const char *const names[] = { "added", "changed", "unchanged", "removed", "skipped" };

    return names[s];
}

static void skip(struct pipeline_result *r, const struct rag_err *why)
{
    r->status = PIPE_SKIPPED;
    r->err = *why;
}

/* Chunk a parsed document and store it under meta. */
static int store_chunks(struct store *s, const struct chunk_doc *doc, struct store_doc *meta,
                        const struct pipeline_opts *o, struct pipeline_result *r,
                        struct rag_err *err)
{
    struct chunk_list list = { 0 };
    struct store_chunk *sc = NULL;
    enum chunker_kind kind;
    struct arena arena;
    size_t i;
    int rc;

    arena_init(&arena, 0);
    rc = chunk_split(doc, &o->chunk, &arena, &list, &kind, err);
    if (rc)
        goto out;
    sc = xcalloc(list.n ? list.n : 1, sizeof(*sc));
    for (i = 0; i < list.n; i++) {
        const struct chunk *c = &list.item[i];

        sc[i] = (struct store_chunk){ .ord = i, .byte_start = c->start, .byte_end = c->end,
                                      .page_start = c->page_start, .page_end = c->page_end,
                                      .heading_path = c->heading_path, .n_tokens = c->n_tokens,
                                      .text = c->text, .len = c->len };
    }
    meta->chunker = chunker_name(kind);
    meta->format = chunk_format_name(doc->format);
    if (!meta->title)
        meta->title = doc->title;
    rc = store_put_doc(s, meta, sc, list.n, NULL, err);
    r->n_chunks = list.n;
    r->chunker = meta->chunker;
out:
    free(sc);
    chunk_list_release(&list);
    arena_release(&arena);
    return rc;
}

/* Parse data and store it; unreadable content is a skip, not an error. */
static int parse_and_store(struct store *s, const char *data, size_t len, enum chunk_format fmt,
                           struct store_doc *meta, const struct pipeline_opts *o,
                           struct pipeline_result *r, struct rag_err *err)
{
    struct chunk_doc doc;
    struct rag_err why = { 0 };
    int rc;

    rc = chunk_doc_parse(&doc, data, len, fmt, meta->path, &why);
    if (rc) {
        skip(r, &why);
        return 0;
    }
    r->n_repaired = doc.n_repaired;
    r->bytes = len;
    rc = store_chunks(s, &doc, meta, o, r, err);
    chunk_doc_release(&doc);
    return rc;
}

/* Whether the stored copy is current: same content, same chunker. */
static bool is_current(const struct store_doc *old, const char *sha, const struct pipeline_opts *o)
{
    if (o->force || strcmp(old->sha256, sha))
        return false;
    return o->chunk.kind == CHUNKER_AUTO || !strcmp(old->chunker, chunker_name(o->chunk.kind));
}

int pipeline_file(struct store *s, const char *path, const struct pipeline_opts *o,
                  bool dry_run, struct pipeline_result *r, struct rag_err *err)
{
    struct store_doc meta = { .path = path }, old;
    struct buf data = BUF_INIT;
    struct rag_err why = { 0 };
    struct arena arena;
    struct stat st;
    char sha[65];
    bool exists;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    arena_init(&arena, 4096);
    if (stat(path, &st)) {
        rag_errno(&why, "'%s'", path);
        skip(r, &why);
        goto out;
    }
    if (file_read(path, o->max_file_bytes, &data, &why)) {
        skip(r, &why);
        goto out;
    }
    sha256_hex(data.data, data.len, sha);
    rc = store_find_doc(s, path, &arena, &old, err);
    if (rc && rc != RAG_ENOTFOUND)
        goto out;
    exists = rc == 0;
    rc = 0;
    r->status = exists ? PIPE_CHANGED : PIPE_ADDED;
    if (exists && is_current(&old, sha, o)) {
        r->status = PIPE_UNCHANGED;
        r->n_chunks = old.n_chunks;
        r->chunker = NULL;
        goto out;
    }
    r->bytes = data.len;
    if (dry_run)
        goto out;
    meta.sha256 = sha;
    meta.size = (int64_t)data.len;
    meta.mtime = (int64_t)st.st_mtime;
    rc = parse_and_store(s, data.data, data.len, chunk_format_from_path(path), &meta, o, r, err);
out:
    buf_release(&data);
    arena_release(&arena);
    return rc;
}

int pipeline_text(struct store *s, const char *path, const char *title, const char *text,
                  size_t len, enum chunk_format fmt, const struct pipeline_opts *o,
                  struct pipeline_result *r, struct rag_err *err)
{
    struct store_doc meta = { .path = path, .title = title && *title ? title : NULL };
    char sha[65];

    memset(r, 0, sizeof(*r));
    sha256_hex(text, len, sha);
    meta.sha256 = sha;
    meta.size = (int64_t)len;
    r->status = PIPE_ADDED;
    return parse_and_store(s, text, len, fmt, &meta, o, r, err);
}
