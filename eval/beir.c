/*
 * eval/beir.c - the BEIR layout: corpus.jsonl {_id, title, text},
 * queries.jsonl {_id, text} and qrels/<split>.tsv ("query-id corpus-id score"
 * header, tab separated). As in BEIR, only queries judged in the split are
 * evaluated; they keep their queries.jsonl order. A judgment naming a
 * document absent from the corpus still counts as relevant (it can never be
 * retrieved) and is counted in n_qrels_missing_doc.
 */
#include "eval/internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct judgment {
    size_t query; /* index into the query list */
    size_t line_no;
    struct eval_qrel qrel;
};

struct judgments {
    struct judgment *item;
    size_t n, cap;
};

static int corpus_doc(struct eval_dataset *ds, const struct jsonl *j, const cJSON *o,
                      struct eval_doc *d, struct rag_err *err)
{
    const char *id = NULL, *title = "", *text = NULL;
    int rc;

    if ((rc = json_field_string(j, o, "_id", true, &id, err)) ||
        (rc = json_field_string(j, o, "title", false, &title, err)) ||
        (rc = json_field_string(j, o, "text", true, &text, err)))
        return rc;
    memset(d, 0, sizeof(*d));
    d->id = arena_strdup(&ds->arena, id);
    d->title = arena_strdup(&ds->arena, title);
    d->len = strlen(text);
    d->text = arena_strndup(&ds->arena, text, d->len);
    return 0;
}

static int corpus(struct eval_dataset *ds, const char *path, struct rag_err *err)
{
    struct jsonl j;
    size_t cap = 0;
    cJSON *o;
    int rc;

    rc = jsonl_open(&j, path, err);
    while (!rc && (rc = jsonl_next(&j, &o, err)) == 1) {
        ds->doc = grow_array(ds->doc, &cap, ds->n_docs + 1, sizeof(*ds->doc));
        rc = corpus_doc(ds, &j, o, &ds->doc[ds->n_docs], err);
        if (!rc)
            rc = dataset_add_doc_id(ds, &j, ds->n_docs++, err);
        cJSON_Delete(o);
    }
    jsonl_close(&j);
    return rc;
}

/* All queries go to ds->question for now; the ones without judgments are dropped later. */
static int queries(struct eval_dataset *ds, const char *path, struct rag_err *err)
{
    struct jsonl j;
    size_t cap = 0;
    cJSON *o;
    int rc;

    rc = jsonl_open(&j, path, err);
    while (!rc && (rc = jsonl_next(&j, &o, err)) == 1) {
        const char *id = NULL, *text = NULL;
        struct eval_question *q;

        rc = json_field_string(&j, o, "_id", true, &id, err);
        if (!rc)
            rc = json_field_string(&j, o, "text", true, &text, err);
        if (!rc) {
            ds->question = grow_array(ds->question, &cap, ds->n_questions + 1, sizeof(*q));
            q = &ds->question[ds->n_questions];
            memset(q, 0, sizeof(*q));
            q->id = arena_strdup(&ds->arena, id);
            q->text = arena_strdup(&ds->arena, text);
            if (idmap_put(&ds->index->questions, q->id, ds->n_questions++) != IDMAP_NONE)
                rc = jsonl_errf(&j, err, RAG_EFORMAT, "duplicate query id '%s'", id);
        }
        cJSON_Delete(o);
    }
    jsonl_close(&j);
    return rc;
}

/* Split a qrels line into exactly three tab-separated fields (NUL-terminated in place). */
static bool split3(char *line, char **f)
{
    size_t n = 0;
    char *p = line, *tab;

    while (n < 3) {
        f[n++] = p;
        tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n == 3 && !strchr(f[2], '\t') && *f[0] && *f[1];
}

static int qrel_line(struct eval_dataset *ds, const struct jsonl *j, char *line,
                     struct judgments *out, struct rag_err *err)
{
    char *f[3];
    long score;
    struct judgment *jd;
    size_t q;

    if (!split3(line, f))
        return jsonl_errf(j, err, RAG_EFORMAT, "expected 3 tab-separated fields");
    if (parse_int(f[2], -1000000, 1000000, &score))
        return jsonl_errf(j, err, RAG_EFORMAT, "score '%s' is not an integer", f[2]);
    q = idmap_get(&ds->index->questions, f[0]);
    if (q == IDMAP_NONE)
        return jsonl_errf(j, err, RAG_EFORMAT, "query-id '%s' is not in queries.jsonl", f[0]);
    VEC_RESERVE(out, out->n + 1);
    jd = &out->item[out->n++];
    jd->query = q;
    jd->line_no = j->line_no;
    jd->qrel.doc_id = arena_strdup(&ds->arena, f[1]);
    jd->qrel.doc = eval_dataset_find_doc(ds, f[1]);
    jd->qrel.grade = (int)score;
    ds->n_qrels_missing_doc += !jd->qrel.doc;
    return 0;
}

static int qrels(struct eval_dataset *ds, const char *path, struct judgments *out,
                 struct rag_err *err)
{
    struct jsonl j;
    const char *line;
    size_t len;
    int rc = jsonl_open(&j, path, err);

    while (!rc && jsonl_next_line(&j, &line, &len)) {
        char *copy = xstrndup(line, len);

        if (len && copy[len - 1] == '\r')
            copy[len - 1] = '\0';
        if (!(j.n_records++ == 0 && strncmp(copy, "query-id\t", 9) == 0))
            rc = qrel_line(ds, &j, copy, out, err);
        free(copy);
    }
    if (!rc && !out->n)
        rc = rag_errf(err, RAG_EFORMAT, "'%s': no judgments", path);
    jsonl_close(&j);
    return rc;
}

static int cmp_judgment(const void *a, const void *b)
{
    const struct judgment *x = a, *y = b;

    if (x->query != y->query)
        return x->query < y->query ? -1 : 1;
    return x->line_no < y->line_no ? -1 : x->line_no > y->line_no;
}

/* Attach the judgments to their queries and keep the judged queries, in order. */
static int attach(struct eval_dataset *ds, const char *path, struct judgments *js,
                  struct rag_err *err)
{
    size_t n = 0, i = 0;

    qsort(js->item, js->n, sizeof(*js->item), cmp_judgment);
    for (size_t qi = 0; qi < ds->n_questions; qi++) {
        struct eval_question q = ds->question[qi];
        size_t first = i;

        while (i < js->n && js->item[i].query == qi)
            i++;
        if (i == first)
            continue;
        q.n_qrels = i - first;
        q.qrel = arena_calloc(&ds->arena, q.n_qrels, sizeof(*q.qrel));
        for (size_t a = 0; a < q.n_qrels; a++) {
            q.qrel[a] = js->item[first + a].qrel;
            for (size_t b = 0; b < a; b++) {
                if (strcmp(q.qrel[a].doc_id, q.qrel[b].doc_id) == 0)
                    return rag_errf(err, RAG_EFORMAT, "'%s' line %zu: duplicate judgment %s %s",
                                    path, js->item[first + a].line_no, q.id, q.qrel[a].doc_id);
            }
        }
        ds->question[n++] = q;
    }
    ds->n_questions = n;
    return 0;
}

int beir_load(struct eval_dataset *ds, const char *dir, const char *split, struct rag_err *err)
{
    struct judgments js = { 0 };
    size_t n = strlen(dir) + strlen(split) + sizeof("/qrels/.tsv");
    char *path = arena_alloc(&ds->arena, n);
    int rc;

    snprintf(path, n, "%s/qrels/%s.tsv", dir, split);
    rc = corpus(ds, dataset_path(ds, dir, "corpus.jsonl"), err);
    if (!rc)
        rc = queries(ds, dataset_path(ds, dir, "queries.jsonl"), err);
    if (!rc && !file_exists(path))
        rc = rag_errf(err, RAG_ENOTFOUND, "no qrels for split '%s': '%s' does not exist", split,
                      path);
    if (!rc)
        rc = qrels(ds, path, &js, err);
    if (!rc)
        rc = attach(ds, path, &js, err);
    free(js.item);
    return rc;
}
