/*
 * cmd/pipeline.c - one document through the ingest pipeline: read, hash,
 * compare with the store, parse, chunk, store (one transaction per
 * document, inside store_put_doc). Shared by `rag ingest` and `rag eval`.
 */
#include "cmd/cmd.h"

#include <sys/stat.h>

#include "retrieval/retrieval.h"

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

/* Embed the chunks' texts into a new (n, dim) array the caller frees. */
static int embed_chunks(struct rag_ctx *c, const struct chunk_list *l, float **ret,
                        struct rag_err *err)
{
    size_t dim = retr_embedder_info(c->embedder)->dim, i;
    const char **texts = xcalloc(l->n ? l->n : 1, sizeof(*texts));
    size_t *lens = xcalloc(l->n ? l->n : 1, sizeof(*lens));
    float *v = xmalloc_array(l->n ? l->n * dim : 1, sizeof(*v));
    int rc;

    for (i = 0; i < l->n; i++) {
        texts[i] = l->item[i].text;
        lens[i] = l->item[i].len;
    }
    rc = retr_embed(c->embedder, texts, lens, l->n, 0, v, err);
    free(texts);
    free(lens);
    if (rc)
        free(v);
    else
        *ret = v;
    return rc;
}

/* The chunk ids stored for path (none when it is not stored). */
static int old_ids(struct rag_ctx *c, const char *path, struct store_ids *ids, struct rag_err *err)
{
    struct store_doc d;
    struct arena a;
    int rc;

    arena_init(&a, 1024);
    rc = store_find_doc(c->store, path, &a, &d, err);
    if (!rc)
        rc = store_doc_chunk_ids(c->store, d.id, ids, err);
    arena_release(&a);
    return rc == RAG_ENOTFOUND ? 0 : rc;
}

/* Store chunks[0..n) under meta, with their vectors when there is an embedder. */
static int put(struct rag_ctx *c, const struct store_doc *meta, struct store_chunk *sc, size_t n,
               const float *vecs, struct rag_err *err)
{
    struct store_ids gone = { 0 };
    int64_t *ids = xcalloc(n ? n : 1, sizeof(*ids));
    size_t i, dim;
    int rc = c->index ? old_ids(c, meta->path, &gone, err) : 0;

    rc = rc ? rc : store_put_doc(c->store, meta, sc, n, NULL, err);
    for (i = 0; i < n; i++)
        ids[i] = sc[i].id;
    if (!rc && c->index && gone.n) {
        rc = retr_index_remove(c->index, gone.item, gone.n, NULL, err);
        c->index_dirty = true;
    }
    if (!rc && vecs && n) {
        dim = retr_embedder_info(c->embedder)->dim;
        rc = store_put_vectors(c->store, c->model_id, ids, vecs, n, dim, err);
        rc = rc ? rc : retr_index_add(c->index, ids, vecs, n, err);
        c->index_dirty = true;
    }
    free(ids);
    store_ids_release(&gone);
    return rc;
}

int pipeline_remove(struct rag_ctx *c, const char *path, struct rag_err *err)
{
    struct store_ids gone = { 0 };
    int rc = c->index ? old_ids(c, path, &gone, err) : 0;

    rc = rc ? rc : store_remove_doc(c->store, path, err);
    if (!rc && gone.n) {
        rc = retr_index_remove(c->index, gone.item, gone.n, NULL, err);
        c->index_dirty = true;
    }
    store_ids_release(&gone);
    return rc;
}

/* Chunk a parsed document, embed the chunks and store them under meta. */
static int store_chunks(struct rag_ctx *c, const struct chunk_doc *doc, struct store_doc *meta,
                        const struct pipeline_opts *o, struct pipeline_result *r,
                        struct rag_err *err)
{
    struct chunk_list list = { 0 };
    struct store_chunk *sc = NULL;
    float *vecs = NULL;
    enum chunker_kind kind;
    struct arena arena;
    size_t i;
    int rc;

    arena_init(&arena, 0);
    rc = chunk_split(doc, &o->chunk, &arena, &list, &kind, err);
    if (!rc && c->embedder)
        rc = embed_chunks(c, &list, &vecs, err);
    if (rc)
        goto out;
    sc = xcalloc(list.n ? list.n : 1, sizeof(*sc));
    for (i = 0; i < list.n; i++) {
        const struct chunk *k = &list.item[i];

        sc[i] = (struct store_chunk){ .ord = i, .byte_start = k->start, .byte_end = k->end,
                                      .page_start = k->page_start, .page_end = k->page_end,
                                      .heading_path = k->heading_path, .n_tokens = k->n_tokens,
                                      .text = k->text, .len = k->len };
    }
    meta->chunker = chunker_name(kind);
    meta->format = chunk_format_name(doc->format);
    if (!meta->title)
        meta->title = doc->title;
    rc = put(c, meta, sc, list.n, vecs, err);
    r->n_chunks = list.n;
    r->chunker = meta->chunker;
out:
    free(vecs);
    free(sc);
    chunk_list_release(&list);
    arena_release(&arena);
    return rc;
}

/* Parse data and store it; unreadable content is a skip, not an error. */
static int parse_and_store(struct rag_ctx *s, const char *data, size_t len, enum chunk_format fmt,
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

int pipeline_file(struct rag_ctx *c, const char *path, const struct pipeline_opts *o,
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
    rc = store_find_doc(c->store, path, &arena, &old, err);
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
    rc = parse_and_store(c, data.data, data.len, chunk_format_from_path(path), &meta, o, r, err);
out:
    buf_release(&data);
    arena_release(&arena);
    return rc;
}

int pipeline_text(struct rag_ctx *s, const char *path, const char *title, const char *text,
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
