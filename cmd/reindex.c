/*
 * cmd/reindex.c - `rag reindex`: embed the chunks that have no vector for
 * the current embedder (all of them with --all), then rebuild the vector
 * index from the store's vectors, optionally as another FAISS index type.
 */
#include "cmd/cmd.h"

#include <getopt.h>

#include "retrieval/retrieval.h"

static const char reindex_usage[] =
    "usage: rag reindex [--all] [--index FACTORY]\n"
    "\n"
    "Embed the chunks that have no vector for the current embedding model (every\n"
    "chunk with --all), then rebuild the vector index from the stored vectors.\n"
    "\n"
    "Options:\n"
    "  -a, --all            re-embed every chunk\n"
    "      --index FACTORY  FAISS index type (e.g. Flat, HNSW32,Flat, IVF4096,PQ48)\n"
    "  -h, --help           show this help\n";

#define REINDEX_BATCH 64

struct batch {
    int64_t id[REINDEX_BATCH];
    const char *text[REINDEX_BATCH];
    size_t len[REINDEX_BATCH];
    size_t n, done, cut;
    struct arena arena;
};

/* Embed and store the batch; texts over the model's limit are cut, and counted. */
static int flush(struct rag_ctx *x, struct batch *b, struct rag_err *err)
{
    size_t dim = retr_embedder_info(x->embedder)->dim,
           max = retr_embedder_info(x->embedder)->max_tokens;
    float *v = xmalloc_array(b->n * dim + 1, sizeof(*v));
    size_t i;
    int rc;

    for (i = 0; i < b->n; i++)
        b->cut += retr_count_tokens(x->embedder, b->text[i], b->len[i]) > max;
    rc = retr_embed(x->embedder, b->text, b->len, b->n, RETR_EMBED_TRUNCATE, v, err);
    rc = rc ? rc : store_put_vectors(x->store, x->model_id, b->id, v, b->n, dim, err);
    b->done += b->n;
    b->n = 0;
    arena_release(&b->arena);
    free(v);
    return rc;
}

/* Queue the chunks of one document that need a vector. */
static int take_doc(struct rag_ctx *x, int64_t doc_id, bool all, struct batch *b,
                    struct rag_err *err)
{
    size_t dim = retr_embedder_info(x->embedder)->dim, i;
    float *tmp = xmalloc_array(dim, sizeof(*tmp));
    struct store_ids ids = { 0 };
    struct store_chunk c;
    int rc = store_doc_chunk_ids(x->store, doc_id, &ids, err);

    for (i = 0; !rc && i < ids.n; i++) {
        rc = all ? RAG_ENOTFOUND :
                   store_get_vector(x->store, x->model_id, ids.item[i], tmp, dim, err);
        if (rc != RAG_ENOTFOUND)
            continue;
        rc = store_get_chunk(x->store, ids.item[i], &b->arena, &c, err);
        if (!rc) {
            b->id[b->n] = c.id;
            b->text[b->n] = c.text;
            b->len[b->n++] = c.len;
        }
        if (!rc && b->n == REINDEX_BATCH)
            rc = flush(x, b, err);
    }
    free(tmp);
    store_ids_release(&ids);
    return rc;
}

static int embed_missing(struct rag_ctx *x, bool all, const struct globals *g, struct batch *b,
                         struct rag_err *err)
{
    struct store_doc_list docs;
    struct progress p;
    size_t i;
    int rc;

    store_doc_list_init(&docs);
    arena_init(&b->arena, 0);
    rc = store_list_docs(x->store, NULL, &docs, err);
    progress_start(&p, "embedding", "documents", docs.n, cmd_show_progress(g));
    for (i = 0; !rc && i < docs.n; i++) {
        rc = take_doc(x, docs.item[i].id, all, b, err);
        progress_update(&p, i + 1, 0);
    }
    rc = rc ? rc : (b->n ? flush(x, b, err) : 0);
    progress_end(&p);
    arena_release(&b->arena);
    store_doc_list_release(&docs);
    return rc;
}

int cmd_reindex(int argc, char **argv, const struct globals *g)
{
    static const struct option longopts[] = {
        { "all", no_argument, NULL, 'a' },
        { "index", required_argument, NULL, 'I' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ctx_opts co = { .vectors = true };
    struct rag_err err = { 0 };
    struct rag_ctx x = { 0 };
    struct batch *b = xcalloc(1, sizeof(*b));
    bool all = false;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ah", longopts, NULL)) != -1) {
        if (c == 'h') {
            free(b);
            return cmd_usage(reindex_usage);
        }
        if (c == 'a')
            all = true;
        else if (c == 'I')
            co.factory = optarg;
        else {
            free(b);
            return cmd_option_error(reindex_usage, "reindex", c, argv);
        }
    }
    /* First as the store is (no rebuild for a new --index yet), then anew. */
    rc = ctx_open(&x, g, &(struct ctx_opts){ .vectors = true }, &err);
    rc = rc ? rc : embed_missing(&x, all, g, b, &err);
    /* The vectors changed under the index: reopen, building it anew. */
    ctx_close(&x);
    co.rebuild = true;
    rc = rc ? rc : ctx_open(&x, g, &co, &err);
    if (!rc)
        printf("embedded %zu chunks%s; index rebuilt with %zu vectors\n", b->done,
               all ? "" : " that had no vector", retr_index_count(x.index));
    if (!rc && b->cut)
        cmd_warn("%zu chunks were longer than the model's input and were cut for embedding; "
                 "re-ingest with --force to re-chunk them",
                 b->cut);
    ctx_close(&x);
    free(b);
    return rc ? cmd_fail(&err) : CMD_OK;
}
