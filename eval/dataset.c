/*
 * eval/dataset.c - eval_dataset_load: layout detection, the QA JSON Lines
 * loader (docs.jsonl + questions.jsonl, SQuAD or Chroma form per line), the
 * question limit / seeded sample, and id lookups. beir.c loads the BEIR
 * layout. Strings and per-question arrays live in the dataset's arena; the
 * doc and question arrays are heap vectors, fixed once loading ends, so
 * pointers into them (question->doc) stay valid.
 *
 * Every byte offset in a file is checked against its document, and a gold
 * string given with an offset must equal the bytes there.
 */
#include "eval/internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *dataset_path(struct eval_dataset *ds, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = arena_alloc(&ds->arena, n);

    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int dataset_add_doc_id(struct eval_dataset *ds, const struct jsonl *j, size_t i,
                       struct rag_err *err)
{
    if (idmap_put(&ds->index->docs, ds->doc[i].id, i) != IDMAP_NONE)
        return jsonl_errf(j, err, RAG_EFORMAT, "duplicate document id '%s'", ds->doc[i].id);
    return 0;
}

/* Read one [start, end] pair of a span array and check it against the text length. */
static int span_at(const struct jsonl *j, const cJSON *arr, const char *key, size_t i, size_t len,
                   struct eval_span *ret, struct rag_err *err)
{
    const cJSON *pair = cJSON_GetArrayItem(arr, (int)i);
    size_t s, e;

    if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 ||
        !json_to_size(cJSON_GetArrayItem(pair, 0), &s) ||
        !json_to_size(cJSON_GetArrayItem(pair, 1), &e))
        return jsonl_errf(j, err, RAG_EFORMAT, "%s[%zu] is not a pair of offsets", key, i);
    if (s > e || e > len)
        return jsonl_errf(j, err, RAG_EFORMAT, "%s[%zu] [%zu, %zu) is outside the text (%zu bytes)",
                          key, i, s, e, len);
    ret->start = s;
    ret->end = e;
    return 0;
}

static int qa_doc(struct eval_dataset *ds, const struct jsonl *j, const cJSON *o,
                  struct eval_doc *d, struct rag_err *err)
{
    const char *id = NULL, *title = "", *text = NULL;
    const cJSON *spans;
    int rc;

    if ((rc = json_field_string(j, o, "doc_id", true, &id, err)) ||
        (rc = json_field_string(j, o, "title", false, &title, err)) ||
        (rc = json_field_string(j, o, "text", true, &text, err)) ||
        (rc = json_field_array(j, o, "paragraph_spans_bytes", false, &spans, err)))
        return rc;
    d->id = arena_strdup(&ds->arena, id);
    d->title = arena_strdup(&ds->arena, title);
    d->len = strlen(text);
    d->text = arena_strndup(&ds->arena, text, d->len);
    d->n_paragraphs = spans ? (size_t)cJSON_GetArraySize(spans) : 0;
    d->paragraph = arena_calloc(&ds->arena, d->n_paragraphs, sizeof(*d->paragraph));
    for (size_t i = 0; i < d->n_paragraphs; i++) {
        rc = span_at(j, spans, "paragraph_spans_bytes", i, d->len, &d->paragraph[i], err);
        if (rc)
            return rc;
    }
    return 0;
}

static int qa_docs(struct eval_dataset *ds, const char *path, struct rag_err *err)
{
    struct jsonl j;
    size_t cap = 0;
    cJSON *o;
    int rc;

    rc = jsonl_open(&j, path, err);
    while (!rc && (rc = jsonl_next(&j, &o, err)) == 1) {
        ds->doc = grow_array(ds->doc, &cap, ds->n_docs + 1, sizeof(*ds->doc));
        memset(&ds->doc[ds->n_docs], 0, sizeof(*ds->doc));
        rc = qa_doc(ds, &j, o, &ds->doc[ds->n_docs], err);
        if (!rc)
            rc = dataset_add_doc_id(ds, &j, ds->n_docs++, err);
        cJSON_Delete(o);
    }
    jsonl_close(&j);
    return rc;
}

/* The gold text must be the bytes at [start, end) of the document. */
static bool text_at(const struct eval_doc *d, size_t start, const char *text, size_t len)
{
    return start <= d->len && len <= d->len - start && memcmp(d->text + start, text, len) == 0;
}

static int chroma_refs(struct eval_dataset *ds, const struct jsonl *j, const cJSON *refs,
                       struct eval_question *q, struct rag_err *err)
{
    const struct eval_doc *d = q->doc;
    size_t i = 0;
    const cJSON *r;
    int rc;

    q->n_evidence = (size_t)cJSON_GetArraySize(refs);
    q->evidence = arena_calloc(&ds->arena, q->n_evidence, sizeof(*q->evidence));
    for (r = refs ? refs->child : NULL; r; r = r->next) {
        struct eval_span *sp = &q->evidence[i];
        const char *text = NULL;

        if (!cJSON_IsObject(r))
            return jsonl_errf(j, err, RAG_EFORMAT, "references[%zu] is not an object", i);
        if ((rc = json_field_size(j, r, "start_byte", true, &sp->start, err)) ||
            (rc = json_field_size(j, r, "end_byte", true, &sp->end, err)) ||
            (rc = json_field_string(j, r, "text", false, &text, err)))
            return rc;
        if (sp->start > sp->end || sp->end > d->len)
            return jsonl_errf(j, err, RAG_EFORMAT,
                              "references[%zu] [%zu, %zu) is outside doc '%s' (%zu bytes)", i,
                              sp->start, sp->end, d->id, d->len);
        if (text && (strlen(text) != sp->end - sp->start ||
                     !text_at(d, sp->start, text, sp->end - sp->start)))
            return jsonl_errf(j, err, RAG_EFORMAT,
                              "references[%zu] text differs from bytes [%zu, %zu) of doc '%s'", i,
                              sp->start, sp->end, d->id);
        i++;
    }
    return 0;
}

/* Offsets and exact flags of answer i, when the file gives them. */
static int squad_answer_span(const struct jsonl *j, const cJSON *starts, const cJSON *exact,
                             size_t i, const struct eval_doc *d, struct eval_answer *a,
                             struct rag_err *err)
{
    size_t len = strlen(a->text);

    a->exact = true;
    if (exact) {
        const cJSON *e = cJSON_GetArrayItem(exact, (int)i);
        if (!cJSON_IsBool(e))
            return jsonl_errf(j, err, RAG_EFORMAT, "answer_start_exact[%zu] is not a boolean", i);
        a->exact = cJSON_IsTrue(e);
    }
    if (!starts)
        return 0;
    if (!json_to_size(cJSON_GetArrayItem(starts, (int)i), &a->span.start))
        return jsonl_errf(j, err, RAG_EFORMAT, "answer_byte_starts[%zu] is not an offset", i);
    if (!text_at(d, a->span.start, a->text, len))
        return jsonl_errf(j, err, RAG_EFORMAT,
                          "answers[%zu] is not at byte %zu of doc '%s' (%zu bytes)", i,
                          a->span.start, d->id, d->len);
    a->span.end = a->span.start + len;
    a->has_span = true;
    return 0;
}

static int squad_answers(struct eval_dataset *ds, const struct jsonl *j, const cJSON *o,
                         const cJSON *answers, struct eval_question *q, struct rag_err *err)
{
    const cJSON *starts, *exact;
    int rc;

    if ((rc = json_field_array(j, o, "answer_byte_starts", false, &starts, err)) ||
        (rc = json_field_array(j, o, "answer_start_exact", false, &exact, err)))
        return rc;
    q->n_answers = (size_t)cJSON_GetArraySize(answers);
    if ((starts && (size_t)cJSON_GetArraySize(starts) != q->n_answers) ||
        (exact && (size_t)cJSON_GetArraySize(exact) != q->n_answers))
        return jsonl_errf(j, err, RAG_EFORMAT, "answer arrays differ in length");
    q->answer = arena_calloc(&ds->arena, q->n_answers, sizeof(*q->answer));
    for (size_t i = 0; i < q->n_answers; i++) {
        const cJSON *a = cJSON_GetArrayItem(answers, (int)i);
        if (!cJSON_IsString(a))
            return jsonl_errf(j, err, RAG_EFORMAT, "answers[%zu] is not a string", i);
        q->answer[i].text = arena_strdup(&ds->arena, a->valuestring);
        rc = squad_answer_span(j, starts, exact, i, q->doc, &q->answer[i], err);
        if (rc)
            return rc;
    }
    return 0;
}

/* SQuAD form: answers, optional gold paragraph (the evidence) and is_impossible. */
static int squad_question(struct eval_dataset *ds, const struct jsonl *j, const cJSON *o,
                          const cJSON *answers, struct eval_question *q, struct rag_err *err)
{
    const struct eval_doc *d = q->doc;
    size_t para = IDMAP_NONE;
    int rc;

    if ((rc = json_field_size(j, o, "paragraph_index", false, &para, err)) ||
        (rc = json_field_bool(j, o, "is_impossible", false, &q->is_impossible, err)))
        return rc;
    if (para != IDMAP_NONE) {
        if (para >= d->n_paragraphs)
            return jsonl_errf(j, err, RAG_EFORMAT,
                              "paragraph_index %zu is out of range (doc '%s' has %zu paragraphs)",
                              para, d->id, d->n_paragraphs);
        q->evidence = arena_alloc(&ds->arena, sizeof(*q->evidence));
        q->evidence[0] = d->paragraph[para];
        q->n_evidence = 1;
    }
    return squad_answers(ds, j, o, answers, q, err);
}

static int qa_question(struct eval_dataset *ds, const struct jsonl *j, const cJSON *o,
                       struct eval_question *q, struct rag_err *err)
{
    const char *id = NULL, *text = NULL, *doc_id = NULL;
    const cJSON *refs, *answers;
    int rc;

    if ((rc = json_field_string(j, o, "id", true, &id, err)) ||
        (rc = json_field_string(j, o, "question", true, &text, err)) ||
        (rc = json_field_string(j, o, "doc_id", true, &doc_id, err)) ||
        (rc = json_field_array(j, o, "references", false, &refs, err)) ||
        (rc = json_field_array(j, o, "answers", false, &answers, err)))
        return rc;
    q->id = arena_strdup(&ds->arena, id);
    q->text = arena_strdup(&ds->arena, text);
    q->doc = eval_dataset_find_doc(ds, doc_id);
    if (!q->doc)
        return jsonl_errf(j, err, RAG_EFORMAT, "unknown doc_id '%s'", doc_id);
    if (refs)
        return chroma_refs(ds, j, refs, q, err);
    if (answers)
        return squad_question(ds, j, o, answers, q, err);
    return jsonl_errf(j, err, RAG_EFORMAT, "missing field 'answers' or 'references'");
}

static int qa_questions(struct eval_dataset *ds, const char *path, struct rag_err *err)
{
    struct jsonl j;
    size_t cap = 0;
    cJSON *o;
    int rc;

    rc = jsonl_open(&j, path, err);
    while (!rc && (rc = jsonl_next(&j, &o, err)) == 1) {
        struct eval_question *q;

        ds->question = grow_array(ds->question, &cap, ds->n_questions + 1, sizeof(*q));
        q = &ds->question[ds->n_questions];
        memset(q, 0, sizeof(*q));
        rc = qa_question(ds, &j, o, q, err);
        if (!rc && idmap_put(&ds->index->questions, q->id, ds->n_questions) != IDMAP_NONE)
            rc = jsonl_errf(&j, err, RAG_EFORMAT, "duplicate question id '%s'", q->id);
        ds->n_questions += !rc;
        cJSON_Delete(o);
    }
    jsonl_close(&j);
    return rc;
}

int qa_load(struct eval_dataset *ds, const char *dir, struct rag_err *err)
{
    int rc = qa_docs(ds, dataset_path(ds, dir, "docs.jsonl"), err);

    if (!rc)
        rc = qa_questions(ds, dataset_path(ds, dir, "questions.jsonl"), err);
    return rc;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

/* Keep max questions: the first ones, or a seeded sample in file order. */
static void limit_questions(struct eval_dataset *ds, size_t max, uint64_t seed)
{
    size_t n = ds->n_questions, *pick;
    struct pcg32 rng;

    if (!max || max >= n)
        return;
    ds->n_questions = max;
    if (!seed)
        return;
    pick = xmalloc_array(n, sizeof(*pick));
    for (size_t i = 0; i < n; i++)
        pick[i] = i;
    pcg32_seed(&rng, seed);
    for (size_t i = 0; i < max; i++) { /* partial Fisher-Yates */
        size_t r = i + pcg32_below(&rng, (uint32_t)(n - i));
        size_t t = pick[i];
        pick[i] = pick[r];
        pick[r] = t;
    }
    qsort(pick, max, sizeof(*pick), cmp_size);
    for (size_t i = 0; i < max; i++)
        ds->question[i] = ds->question[pick[i]];
    free(pick);
}

static void finish(struct eval_dataset *ds, const struct eval_load_opts *o)
{
    ds->n_questions_total = ds->n_questions;
    limit_questions(ds, o->max_questions, o->sample_seed);
    idmap_release(&ds->index->questions);
    for (size_t i = 0; i < ds->n_questions; i++) {
        const struct eval_question *q = &ds->question[i];
        idmap_put(&ds->index->questions, q->id, i);
        ds->n_qrels += q->n_qrels;
        ds->n_evidence += q->n_evidence;
        ds->n_answers += q->n_answers;
    }
    for (size_t i = 0; i < ds->n_docs; i++)
        ds->n_paragraphs += ds->doc[i].n_paragraphs;
}

static bool has_files(const char *dir, const char *a, const char *b)
{
    char p[4096], q[4096];

    snprintf(p, sizeof(p), "%s/%s", dir, a);
    snprintf(q, sizeof(q), "%s/%s", dir, b);
    return file_exists(p) && file_exists(q);
}

int eval_dataset_load(struct eval_dataset **ret, const char *dir, const struct eval_load_opts *opts,
                      struct rag_err *err)
{
    static const struct eval_load_opts defaults = { .split = "test" };
    const struct eval_load_opts *o = opts ? opts : &defaults;
    struct eval_dataset *ds = xcalloc(1, sizeof(*ds));
    int rc;

    arena_init(&ds->arena, 1 << 20);
    ds->index = xcalloc(1, sizeof(*ds->index));
    if (has_files(dir, "corpus.jsonl", "queries.jsonl")) {
        ds->layout = EVAL_LAYOUT_BEIR;
        rc = beir_load(ds, dir, o->split ? o->split : "test", err);
    } else if (has_files(dir, "docs.jsonl", "questions.jsonl")) {
        ds->layout = EVAL_LAYOUT_QA;
        rc = qa_load(ds, dir, err);
    } else {
        rc = rag_errf(err, RAG_ENOTFOUND,
                      "'%s': not a dataset (needs corpus.jsonl + queries.jsonl or "
                      "docs.jsonl + questions.jsonl)",
                      dir);
    }
    if (rc) {
        eval_dataset_free(ds);
        return rc;
    }
    finish(ds, o);
    *ret = ds;
    return 0;
}

void eval_dataset_free(struct eval_dataset *ds)
{
    if (!ds)
        return;
    if (ds->index) {
        idmap_release(&ds->index->docs);
        idmap_release(&ds->index->questions);
        free(ds->index);
    }
    free(ds->doc);
    free(ds->question);
    arena_release(&ds->arena);
    free(ds);
}

const struct eval_doc *eval_dataset_find_doc(const struct eval_dataset *ds, const char *id)
{
    size_t i = idmap_get(&ds->index->docs, id);

    return i == IDMAP_NONE ? NULL : &ds->doc[i];
}

const struct eval_question *eval_dataset_find_question(const struct eval_dataset *ds,
                                                       const char *id)
{
    size_t i = idmap_get(&ds->index->questions, id);

    return i == IDMAP_NONE ? NULL : &ds->question[i];
}
