/*
 * cmd/eval_search.c - the retrieval half of `rag eval`: ingest a dataset's
 * documents into the scratch store, search every question and score the
 * rankings (eval/). Documents are stored under the path "eval:<doc id>", so
 * a hit maps back to its dataset document by stripping that prefix.
 */
#include "cmd/cmd.h"

#include "eval/eval.h"

#define EVAL_DOC_PREFIX "eval:"

/*
 * A kept store is reused when it was chunked the same way: its documents are
 * then skipped when unchanged. Otherwise every document is chunked again.
 */
static int reuse_check(struct eval_run *e, struct pipeline_opts *po, struct rag_err *err)
{
    struct buf want = BUF_INIT, have = BUF_INIT;
    struct rag_err none;
    int rc;

    buf_appendf(&want, "%s/%zu/%zu/%s", chunker_name(po->chunk.kind), po->chunk.max_tokens,
                po->chunk.hard_max, e->x.index ? "vectors" : "text");
    po->force =
        store_meta_get(e->x.store, "eval.chunking", &have, &none) || strcmp(have.data, want.data);
    rc = store_meta_set(e->x.store, "eval.chunking", want.data, err);
    buf_release(&want);
    buf_release(&have);
    return rc;
}

/* The searchable text of d: BEIR ranks documents, so their title is part of it. */
static void doc_text(const struct eval_dataset *ds, const struct eval_doc *d, struct buf *out)
{
    buf_reset(out);
    if (ds->layout == EVAL_LAYOUT_BEIR && d->title[0])
        buf_appendf(out, "%s\n\n", d->title);
    buf_append(out, d->text, d->len);
}

int eval_ingest_docs(struct eval_run *e, const struct pipeline_opts *pipe, const struct globals *g,
                     struct rag_err *err)
{
    struct pipeline_opts po = *pipe;
    struct pipeline_result r;
    struct buf path = BUF_INIT, text = BUF_INIT;
    struct progress p;
    double t0 = time_now();
    size_t i;
    int rc;

    progress_start(&p, "ingesting", "docs", e->ds->n_docs, cmd_show_progress(g));
    rc = reuse_check(e, &po, err);
    rc = rc ? rc : store_begin(e->x.store, err);
    for (i = 0; !rc && i < e->ds->n_docs; i++) {
        const struct eval_doc *d = &e->ds->doc[i];

        buf_reset(&path);
        buf_appendf(&path, EVAL_DOC_PREFIX "%s", d->id);
        doc_text(e->ds, d, &text);
        rc = pipeline_text(&e->x, path.data, d->title, text.data, text.len, CHUNK_FORMAT_TEXT, &po,
                           &r, err);
        e->n_chunks += r.n_chunks;
        e->bytes += text.len;
        p.chunks = e->n_chunks;
        progress_update(&p, i + 1, e->bytes);
    }
    rc = rc ? rc : pipeline_flush(&e->x, err);
    rc = rc ? rc : store_commit(e->x.store, err);
    rc = rc ? rc : ctx_save_index(&e->x, err);
    if (rc)
        store_rollback(e->x.store);
    progress_end(&p);
    e->ingest_s = time_now() - t0;
    buf_release(&path);
    buf_release(&text);
    return rc;
}

/* Score one question's ranking at cut-off k and at 10. */
static void score(struct eval_run *e, const struct eval_question *q, const struct eval_hit *hits,
                  size_t n, size_t k)
{
    size_t cuts[2] = { k, 10 }, i;

    for (i = 0; i < (k == 10 ? 1u : 2u); i++) {
        if (e->ds->layout == EVAL_LAYOUT_BEIR) {
            struct eval_doc_scores s;

            eval_score_docs(q, hits, n, cuts[i], &s);
            eval_acc_add_docs(e->acc, &s, cuts[i]);
        } else {
            struct eval_chunk_scores s;

            eval_score_chunks(q, hits, n, cuts[i], &s);
            eval_acc_add_chunks(e->acc, &s, cuts[i]);
        }
    }
}

/* Rank the chunks for q into hits (doc ids borrowed from l's arena). */
static int rank(struct eval_run *e, const struct eval_question *q, struct retr_query_opts *qo,
                struct retr_fused *f, struct store_hit_list *l, struct eval_hit *hits,
                struct rag_err *err)
{
    int rc = ctx_rank(&e->x, q->text, qo, f, l, err);

    for (size_t j = 0; !rc && j < l->n; j++)
        hits[j] = (struct eval_hit){ l->item[j].doc_path + strlen(EVAL_DOC_PREFIX),
                                     l->item[j].byte_start, l->item[j].byte_end };
    return rc;
}

int eval_search_questions(struct eval_run *e, const struct retr_query_opts *q, size_t k,
                          const struct globals *g, struct rag_err *err)
{
    /* Documents are ranked by their best chunk, so fetch more chunks than k. */
    struct retr_query_opts qo = *q;
    struct eval_hit *hits;
    struct retr_fused *f;
    struct store_hit_list l;
    struct progress p;
    double t0 = time_now();
    size_t i;
    int rc = 0;

    qo.k = e->ds->layout == EVAL_LAYOUT_BEIR ? 100 : (k > 10 ? k : 10);
    hits = xcalloc(qo.k, sizeof(*hits));
    f = xcalloc(qo.k, sizeof(*f));
    progress_start(&p, "searching", "questions", e->ds->n_questions, cmd_show_progress(g));
    for (i = 0; !rc && i < e->ds->n_questions; i++) {
        store_hit_list_init(&l);
        rc = rank(e, &e->ds->question[i], &qo, f, &l, hits, err);
        if (!rc)
            score(e, &e->ds->question[i], hits, l.n, k);
        store_hit_list_release(&l);
        progress_update(&p, i + 1, 0);
    }
    progress_end(&p);
    e->search_s = time_now() - t0;
    free(hits);
    free(f);
    return rc;
}
