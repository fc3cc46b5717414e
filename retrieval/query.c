/*
 * retrieval/query.c - one query against a store: BM25 through the store's
 * full-text index, dense search through the vector index, or both fused
 * (reciprocal rank fusion by default, or a weighted mix of normalised
 * scores). Each list contributes `depth` candidates before fusion. A single
 * mode keeps that list's own scores.
 */
#include "retrieval/retrieval.h"

#include "store/store.h"

const char *retr_mode_name(enum retr_mode m)
{
    static const char *const names[] = { "hybrid", "dense", "bm25" };

    return names[m];
}

int retr_mode_from_name(const char *name, enum retr_mode *ret, struct rag_err *err)
{
    enum retr_mode m;

    for (m = RETR_MODE_HYBRID; m <= RETR_MODE_BM25; m++) {
        if (!strcmp(name, retr_mode_name(m))) {
            *ret = m;
            return 0;
        }
    }
    return rag_errf(err, RAG_EINVAL, "unknown mode '%s' (hybrid, dense or bm25)", name);
}

static int bm25_list(const struct retr_searcher *s, const char *query, size_t depth,
                     struct retr_ranked *out, size_t *n, struct rag_err *err)
{
    struct store_hit_list l;
    size_t i;
    int rc;

    store_hit_list_init(&l);
    rc = store_search_bm25(s->store, query, depth, &l, err);
    for (i = 0; !rc && i < l.n; i++)
        out[i] = (struct retr_ranked){ l.item[i].chunk_id, l.item[i].score };
    *n = rc ? 0 : l.n;
    store_hit_list_release(&l);
    return rc;
}

static int dense_list(const struct retr_searcher *s, const char *query, size_t depth,
                      struct retr_ranked *out, size_t *n, struct retr_query_stats *st,
                      struct rag_err *err)
{
    double t0 = time_now();
    size_t dim = retr_embedder_info(s->embedder)->dim, i;
    float *q = xmalloc_array(dim + depth, sizeof(float));
    int64_t *ids = xmalloc_array(depth, sizeof(*ids));
    int rc;

    *n = 0;
    rc = retr_embed(s->embedder, &query, NULL, 1, RETR_EMBED_QUERY | RETR_EMBED_TRUNCATE, q, err);
    st->embed_s = time_now() - t0;
    if (!rc)
        rc = retr_index_search(s->index, q, 1, depth, ids, q + dim, err);
    for (i = 0; !rc && i < depth && ids[i] >= 0; i++)
        out[(*n)++] = (struct retr_ranked){ ids[i], q[dim + i] };
    st->dense_s = time_now() - t0 - st->embed_s;
    free(q);
    free(ids);
    return rc;
}

int retr_query(const struct retr_searcher *s, const char *query, const struct retr_query_opts *o,
               struct retr_fused *out, size_t *ret_n, struct rag_err *err)
{
    size_t depth = o->depth > o->k ? o->depth : o->k, n[2] = { 0, 0 }, n_lists = 0, n_out;
    struct retr_ranked *ranked = xmalloc_array(2 * depth, sizeof(*ranked));
    struct retr_fused *all = xmalloc_array(2 * depth, sizeof(*all));
    struct retr_query_stats st = { 0 };
    struct retr_list lists[2];
    double t0 = time_now();
    int rc = 0;

    if (o->mode != RETR_MODE_DENSE)
        rc = bm25_list(s, query, depth, ranked, &n[0], err);
    st.bm25_s = time_now() - t0;
    if (!rc && o->mode != RETR_MODE_BM25)
        rc = s->embedder && s->index ?
                 dense_list(s, query, depth, ranked + depth, &n[1], &st, err) :
                 rag_errf(err, RAG_EINVAL, "%s search needs vectors: the store has none",
                          retr_mode_name(o->mode));
    if (o->mode != RETR_MODE_DENSE)
        lists[n_lists++] = (struct retr_list){ ranked, n[0] };
    if (o->mode != RETR_MODE_BM25)
        lists[n_lists++] = (struct retr_list){ ranked + depth, n[1] };
    if (!rc)
        rc = retr_fuse(lists, n_lists, &o->fuse, all, &n_out, err);
    if (!rc) {
        *ret_n = n_out < o->k ? n_out : o->k;
        memcpy(out, all, *ret_n * sizeof(*out));
    }
    if (o->stats)
        *o->stats = st;
    /* One list: its own scores (BM25 or cosine) say more than a fused rank. */
    for (size_t i = 0; !rc && n_lists == 1 && i < *ret_n; i++)
        out[i].score = out[i].source_score[0];
    free(ranked);
    free(all);
    return rc;
}
