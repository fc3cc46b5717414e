/*
 * cmd/pipeline.c - documents through the ingest pipeline: read, hash,
 * compare with the store, parse, chunk, then queue. The queue is embedded
 * in one batch (small documents would otherwise each make a tiny, slow
 * batch) and each document stored in its own savepoint. Shared by
 * `rag ingest` and `rag eval`; callers flush before they commit.
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

/* The queued chunks' texts embedded into a new (n_chunks, dim) array the caller frees. */
static int embed_queue(struct rag_ctx *c, float **ret, struct rag_err *err)
{
    struct pipeline_queue *q = &c->queue;
    size_t dim = retr_embedder_info(c->embedder)->dim, i, k, n = 0;
    const char **texts = xcalloc(q->n_chunks + 1, sizeof(*texts));
    size_t *lens = xcalloc(q->n_chunks + 1, sizeof(*lens));
    float *v = xmalloc_array(q->n_chunks * dim + 1, sizeof(*v));
    int rc;

    for (i = 0; i < q->n; i++)
        for (k = 0; k < q->item[i].n; k++, n++) {
            texts[n] = q->item[i].chunk[k].text;
            lens[n] = q->item[i].chunk[k].len;
        }
    rc = retr_embed(c->embedder, texts, lens, n, 0, v, err);
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

/* Store a document's chunks, with their vectors when there are some. */
static int put(struct rag_ctx *c, struct pending *d, const float *vecs, struct rag_err *err)
{
    struct store_ids gone = { 0 };
    int64_t *ids = xcalloc(d->n + 1, sizeof(*ids));
    size_t i, dim;
    int rc = c->index ? old_ids(c, d->meta.path, &gone, err) : 0;

    rc = rc ? rc : store_put_doc(c->store, &d->meta, d->chunk, d->n, NULL, err);
    for (i = 0; i < d->n; i++)
        ids[i] = d->chunk[i].id;
    if (!rc && c->index && gone.n) {
        rc = retr_index_remove(c->index, gone.item, gone.n, NULL, err);
        c->index_dirty = true;
    }
    if (!rc && vecs && d->n) {
        dim = retr_embedder_info(c->embedder)->dim;
        rc = store_put_vectors(c->store, c->model_id, ids, vecs, d->n, dim, err);
        rc = rc ? rc : retr_index_add(c->index, ids, vecs, d->n, err);
        c->index_dirty = true;
    }
    free(ids);
    store_ids_release(&gone);
    return rc;
}

static void pending_release(struct pending *d)
{
    free(d->chunk);
    arena_release(&d->arena);
}

void pipeline_queue_release(struct pipeline_queue *q)
{
    size_t i;

    for (i = 0; i < q->n; i++)
        pending_release(&q->item[i]);
    free(q->item);
    memset(q, 0, sizeof(*q));
}

int pipeline_flush(struct rag_ctx *c, struct rag_err *err)
{
    struct pipeline_queue *q = &c->queue;
    size_t dim = c->index ? retr_embedder_info(c->embedder)->dim : 0, i, off = 0;
    float *vecs = NULL;
    int rc = 0;

    if (c->index && q->n_chunks)
        rc = embed_queue(c, &vecs, err);
    for (i = 0; !rc && i < q->n; i++) {
        rc = put(c, &q->item[i], vecs ? vecs + off * dim : NULL, err);
        off += q->item[i].n;
    }
    free(vecs);
    for (i = 0; i < q->n; i++)
        pending_release(&q->item[i]);
    q->n = q->n_chunks = 0;
    return rc;
}

int pipeline_remove(struct rag_ctx *c, const char *path, struct rag_err *err)
{
    struct store_ids gone = { 0 };
    int rc = pipeline_flush(c, err);

    rc = rc ? rc : (c->index ? old_ids(c, path, &gone, err) : 0);
    rc = rc ? rc : store_remove_doc(c->store, path, err);
    if (!rc && gone.n) {
        rc = retr_index_remove(c->index, gone.item, gone.n, NULL, err);
        c->index_dirty = true;
    }
    store_ids_release(&gone);
    return rc;
}

/* A document's chunks as store rows; strings stay in the chunks' arena. */
static struct store_chunk *to_rows(const struct chunk_list *l)
{
    struct store_chunk *sc = xcalloc(l->n + 1, sizeof(*sc));
    size_t i;

    for (i = 0; i < l->n; i++) {
        const struct chunk *k = &l->item[i];

        sc[i] = (struct store_chunk){ .ord = i,
                                      .byte_start = k->start,
                                      .byte_end = k->end,
                                      .page_start = k->page_start,
                                      .page_end = k->page_end,
                                      .heading_path = k->heading_path,
                                      .n_tokens = k->n_tokens,
                                      .text = k->text,
                                      .len = k->len };
    }
    return sc;
}

/* Copy meta's strings into the pending document's arena. */
static void keep_meta(struct pending *d, const struct store_doc *meta)
{
    d->meta = *meta;
    d->meta.path = arena_strdup(&d->arena, meta->path);
    d->meta.sha256 = arena_strdup(&d->arena, meta->sha256);
    d->meta.title = meta->title ? arena_strdup(&d->arena, meta->title) : NULL;
}

/*
 * Chunk a parsed document and queue it; the queue is embedded in one batch
 * and stored once it holds PIPELINE_BATCH chunks (PIPELINE_BATCH_GPU when
 * the embedder runs on the GPU; at once without vectors).
 */
static int queue_doc(struct rag_ctx *c, const struct chunk_doc *doc, struct store_doc *meta,
                     const struct pipeline_opts *o, struct pipeline_result *r, struct rag_err *err)
{
    struct pipeline_queue *q = &c->queue;
    struct chunk_list list = { 0 };
    enum chunker_kind kind;
    struct pending d;
    size_t batch;
    int rc;

    arena_init(&d.arena, 0);
    rc = chunk_split(doc, &o->chunk, &d.arena, &list, &kind, err);
    if (rc) {
        chunk_list_release(&list);
        arena_release(&d.arena);
        return rc;
    }
    meta->chunker = chunker_name(kind);
    meta->format = chunk_format_name(doc->format);
    if (!meta->title)
        meta->title = doc->title;
    keep_meta(&d, meta);
    d.chunk = to_rows(&list);
    d.n = list.n;
    chunk_list_release(&list);
    VEC_RESERVE(q, q->n + 1);
    q->item[q->n++] = d;
    q->n_chunks += d.n;
    r->n_chunks = d.n;
    r->chunker = meta->chunker;
    if (!c->index)
        return pipeline_flush(c, err);
    batch = retr_embedder_on_gpu(c->embedder) ? PIPELINE_BATCH_GPU : PIPELINE_BATCH;
    return q->n_chunks >= batch ? pipeline_flush(c, err) : 0;
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
    rc = queue_doc(s, &doc, meta, o, r, err);
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

int pipeline_file(struct rag_ctx *c, const char *path, const struct pipeline_opts *o, bool dry_run,
                  struct pipeline_result *r, struct rag_err *err)
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
    struct store_doc meta = { .path = path, .title = title && *title ? title : NULL }, old;
    struct arena arena;
    char sha[65];
    int rc;

    memset(r, 0, sizeof(*r));
    sha256_hex(text, len, sha);
    meta.sha256 = sha;
    meta.size = (int64_t)len;
    arena_init(&arena, 1024);
    rc = store_find_doc(s->store, path, &arena, &old, err);
    r->status = rc == RAG_ENOTFOUND ? PIPE_ADDED : PIPE_CHANGED;
    if (!rc && is_current(&old, sha, o)) {
        r->status = PIPE_UNCHANGED;
        r->n_chunks = old.n_chunks;
    }
    arena_release(&arena);
    if (rc && rc != RAG_ENOTFOUND)
        return rc;
    return r->status == PIPE_UNCHANGED ? 0 : parse_and_store(s, text, len, fmt, &meta, o, r, err);
}
