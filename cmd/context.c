/*
 * cmd/context.c - what a command opens: the store and, when vectors are
 * wanted, the embedder (from the model cache) and the vector index checked
 * against the store (rebuilt from the stored vectors when they disagree).
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <unistd.h>

#include "retrieval/retrieval.h"

/* The model row of the embedder in this store. */
static int model_row(struct rag_ctx *c, struct rag_err *err)
{
    const struct retr_embedder_info *info = retr_embedder_info(c->embedder);
    struct store_model m = {
        .role = "embed", .name = info->name, .sha256 = info->fingerprint, .dim = info->dim
    };

    return store_model_id(c->store, &m, &c->model_id, err);
}

/* --index, else what the store was built with, else the default. */
static void factory_of(struct rag_ctx *c, const char *want, struct buf *out)
{
    struct rag_err none;

    if (want)
        buf_appends(out, want);
    else if (store_meta_get(c->store, "index.factory", out, &none))
        buf_appends(out, RETR_INDEX_FACTORY_DEFAULT);
}

static int open_index(struct rag_ctx *c, const struct globals *g, const char *factory, bool rebuild,
                      struct rag_err *err)
{
    struct retr_sync_report rep;
    struct buf f = BUF_INIT;
    size_t n = 0;
    int rc = 0;

    factory_of(c, factory, &f);
    buf_appendf(&c->index_path, "%s/vectors.faiss", g->store_dir);
    if (rebuild && unlink(c->index_path.data) && errno != ENOENT)
        rc = rag_errno(err, "remove '%s'", c->index_path.data);
    rc = rc ? rc : store_count_vectors(c->store, c->model_id, &n, err);
    rc = rc ? rc :
              retr_index_sync(&c->index, c->index_path.data, c->store, c->model_id,
                              retr_embedder_info(c->embedder)->dim, f.data, &rep, err);
    if (!rc && rep.rebuilt && n > 0 && !rebuild)
        cmd_warn("rebuilt the vector index '%s' (%s)", c->index_path.data, rep.reason);
    buf_release(&f);
    return rc;
}

/*
 * The embedder, from --embedder or the model cache. Counting alone needs no
 * weights (no 90 MB read, no thread pool), and when the model is missing the
 * approximate counter stands in; vectors need the whole model.
 */
static int open_embedder(struct rag_ctx *c, const struct globals *g, bool vectors,
                         struct rag_err *err)
{
    struct retr_embedder_opts eo = { .tokenizer_only = !vectors,
                                     .device = (enum retr_device)g->device };
    struct buf dir = BUF_INIT;
    int rc;

    if (g->embedder_dir)
        buf_appends(&dir, g->embedder_dir);
    else
        buf_appendf(&dir, "%s/%s", g->models_dir, CMD_EMBEDDER_DEFAULT);
    rc = retr_embedder_open(&c->embedder, dir.data, &eo, err);
    if (rc && !vectors) {
        RAG_DEBUG("no embedder for token counts: %s", err->msg);
        rc = 0;
    } else if (rc == RAG_EIO || rc == RAG_EFORMAT) {
        rag_err_prefix(err, "embedder (run scripts/setup, or pass --no-embed)");
    }
    buf_release(&dir);
    return rc;
}

int ctx_open(struct rag_ctx *c, const struct globals *g, const struct ctx_opts *o,
             struct rag_err *err)
{
    struct globals gg = *g;
    int rc;

    memset(c, 0, sizeof(*c));
    if (o->store_dir)
        gg.store_dir = o->store_dir;
    rc = store_open(&c->store, gg.store_dir, err);
    if (!rc && (o->vectors || o->tokenizer))
        rc = open_embedder(c, &gg, o->vectors, err);
    if (!rc && o->vectors)
        rc = model_row(c, err);
    if (!rc && o->vectors)
        rc = open_index(c, &gg, o->factory, o->rebuild, err);
    return rc;
}

int ctx_save_index(struct rag_ctx *c, struct rag_err *err)
{
    int rc = pipeline_flush(c, err);

    if (rc)
        return rc;
    if (!c->index || !c->index_dirty)
        return 0;
    c->index_dirty = false;
    return retr_index_save(c->index, c->index_path.data, err);
}

void ctx_close(struct rag_ctx *c)
{
    pipeline_queue_release(&c->queue);
    retr_index_close(c->index);
    retr_embedder_close(c->embedder);
    store_close(c->store);
    buf_release(&c->index_path);
    memset(c, 0, sizeof(*c));
}

void ctx_chunker_opts(const struct rag_ctx *c, struct chunker_opts *o)
{
    size_t hard;

    if (!c->embedder)
        return;
    hard = retr_embedder_info(c->embedder)->max_tokens;
    o->tok = (struct chunk_tokenizer){ retr_count_tokens, c->embedder };
    o->hard_max = hard;
    if (o->max_tokens > hard)
        o->max_tokens = hard;
}

int ctx_rank(struct rag_ctx *x, const char *query, const struct retr_query_opts *q,
             struct retr_fused *f, struct store_hit_list *hits, struct rag_err *err)
{
    struct retr_searcher rs = { x->store, x->embedder, x->index };
    int64_t *ids = xcalloc(q->k + 1, sizeof(*ids));
    double *scores = xcalloc(q->k + 1, sizeof(*scores));
    size_t n = 0, i;
    int rc = retr_query(&rs, query, q, f, &n, err);

    for (i = 0; !rc && i < n; i++) {
        ids[i] = f[i].id;
        scores[i] = f[i].score;
    }
    rc = rc ? rc : store_hits_for_ids(x->store, ids, scores, n, hits, err);
    free(ids);
    free(scores);
    return rc;
}

int cmd_query_opt(const char *name, const char *arg, struct retr_query_opts *q, struct rag_err *err)
{
    double alpha;

    if (!strcmp(name, "mode"))
        return retr_mode_from_name(arg, &q->mode, err);
    if (!strcmp(name, "depth") && !parse_size(arg, 1, 100000, &q->depth))
        return 0;
    if (!strcmp(name, "alpha") && !parse_double(arg, 0, 1, &alpha)) {
        q->fuse.method = RETR_FUSE_WEIGHTED;
        q->fuse.weight[0] = 1 - alpha;
        q->fuse.weight[1] = alpha;
        return 0;
    }
    return rag_errf(err, RAG_EINVAL, "invalid --%s '%s'", name, arg);
}
