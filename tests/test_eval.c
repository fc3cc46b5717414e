/*
 * tests/test_eval.c - suite 'eval': metrics against golden files produced by
 * independent implementations (tests/golden/eval/gen_golden.py: pytrec_eval,
 * a set-of-bytes Chroma reference, the SQuAD v1.1 definitions, numpy), the
 * SQuAD scorer against the official numbers of the reference predictions,
 * the loaders on the three shared datasets, and malformed inputs.
 */
#include "eval/eval.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/testutil.h"

#define TOL 1e-9

/* ---- golden helpers ---- */

static cJSON *golden_next(FILE *f, char **line, size_t *cap)
{
    ssize_t n = getline(line, cap, f);

    if (n <= 0)
        return NULL;
    return cJSON_ParseWithLength(*line, (size_t)n);
}

static FILE *golden_open(const char *name)
{
    char rel[256], path[4096];
    FILE *f;

    snprintf(rel, sizeof(rel), "tests/golden/eval/%s", name);
    f = fopen(test_source_path(rel, path, sizeof(path)), "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    return f;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    ck_assert_msg(cJSON_IsNumber(v), "golden field '%s' missing", key);
    return v->valuedouble;
}

static void span_of(const cJSON *pair, struct eval_span *s)
{
    s->start = (size_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
    s->end = (size_t)cJSON_GetArrayItem(pair, 1)->valuedouble;
}

/* Build q (allocations in a) from a golden "docs" case. */
static void golden_docs_question(const cJSON *c, struct arena *a, struct eval_question *q)
{
    const cJSON *qrels = cJSON_GetObjectItem(c, "qrels"), *g;
    size_t i = 0;

    memset(q, 0, sizeof(*q));
    q->n_qrels = (size_t)cJSON_GetArraySize(qrels);
    q->qrel = arena_calloc(a, q->n_qrels, sizeof(*q->qrel));
    for (g = qrels ? qrels->child : NULL; g; g = g->next) {
        q->qrel[i].doc_id = g->string;
        q->qrel[i++].grade = (int)g->valuedouble;
    }
}

static struct eval_hit *golden_ranking(const cJSON *c, struct arena *a, size_t *n)
{
    const cJSON *r = cJSON_GetObjectItem(c, "ranking"), *d;
    struct eval_hit *h;
    size_t i = 0;

    *n = (size_t)cJSON_GetArraySize(r);
    h = arena_calloc(a, *n + 1, sizeof(*h));
    for (d = r ? r->child : NULL; d; d = d->next)
        h[i++].doc_id = d->valuestring;
    return h;
}

static void check_docs_case(const cJSON *c)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const cJSON *x = cJSON_GetObjectItem(c, "expect");
    struct arena a;
    struct eval_question q;
    struct eval_doc_scores s;
    struct eval_hit *hits;
    size_t n, k = (size_t)num(c, "k");

    arena_init(&a, 0);
    golden_docs_question(c, &a, &q);
    hits = golden_ranking(c, &a, &n);
    eval_score_docs(&q, hits, n, k, &s);
    ck_assert_msg(fabs(s.ndcg - num(x, "ndcg")) < TOL, "%s ndcg %.12f", name, s.ndcg);
    ck_assert_msg(fabs(s.recall - num(x, "recall")) < TOL, "%s recall %.12f", name, s.recall);
    ck_assert_msg(fabs(s.mrr - num(x, "mrr")) < TOL, "%s mrr %.12f", name, s.mrr);
    ck_assert_msg(fabs(s.hit - num(x, "hit")) < TOL, "%s hit", name);
    ck_assert_msg(fabs(s.map - num(x, "map")) < TOL, "%s map %.12f", name, s.map);
    ck_assert(fabs(eval_ndcg_at_k(&q, hits, n, k) - s.ndcg) < TOL);
    ck_assert(fabs(eval_recall_at_k(&q, hits, n, k) - s.recall) < TOL);
    ck_assert(fabs(eval_mrr_at_k(&q, hits, n, k) - s.mrr) < TOL);
    arena_release(&a);
}

static void golden_answers(const cJSON *c, struct arena *a, struct eval_question *q)
{
    const cJSON *arr = cJSON_GetObjectItem(c, "answers"), *o;
    size_t i = 0;

    q->n_answers = (size_t)cJSON_GetArraySize(arr);
    q->answer = arena_calloc(a, q->n_answers + 1, sizeof(*q->answer));
    for (o = arr ? arr->child : NULL; o; o = o->next) {
        struct eval_answer *an = &q->answer[i++];
        an->text = cJSON_GetObjectItem(o, "text")->valuestring;
        an->exact = cJSON_IsTrue(cJSON_GetObjectItem(o, "exact"));
        an->has_span = true;
        span_of(cJSON_GetObjectItem(o, "span"), &an->span);
    }
}

/* Build q and its document "A" from a golden "chunks" case. */
static void golden_chunk_question(const cJSON *c, struct arena *a, struct eval_doc *d,
                                  struct eval_question *q)
{
    const cJSON *ev = cJSON_GetObjectItem(c, "evidence"), *e;
    size_t i = 0;

    memset(d, 0, sizeof(*d));
    memset(q, 0, sizeof(*q));
    d->id = "A";
    d->text = cJSON_GetObjectItem(c, "text")->valuestring;
    d->len = strlen(d->text);
    q->doc = d;
    q->n_evidence = (size_t)cJSON_GetArraySize(ev);
    q->evidence = arena_calloc(a, q->n_evidence + 1, sizeof(*q->evidence));
    for (e = ev ? ev->child : NULL; e; e = e->next)
        span_of(e, &q->evidence[i++]);
    golden_answers(c, a, q);
}

static void check_chunks_case(const cJSON *c)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const cJSON *x = cJSON_GetObjectItem(c, "expect"), *h;
    const cJSON *arr = cJSON_GetObjectItem(c, "hits");
    struct arena a;
    struct eval_doc d;
    struct eval_question q;
    struct eval_chunk_scores s;
    struct eval_hit *hits;
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;

    arena_init(&a, 0);
    golden_chunk_question(c, &a, &d, &q);
    hits = arena_calloc(&a, n + 1, sizeof(*hits));
    for (h = arr ? arr->child : NULL; h; h = h->next) {
        hits[i].doc_id = cJSON_GetArrayItem(h, 0)->valuestring;
        hits[i].start = (size_t)cJSON_GetArrayItem(h, 1)->valuedouble;
        hits[i++].end = (size_t)cJSON_GetArrayItem(h, 2)->valuedouble;
    }
    eval_score_chunks(&q, hits, n, (size_t)num(c, "k"), &s);
    ck_assert_msg(fabs(s.hit - num(x, "hit")) < TOL, "%s hit", name);
    ck_assert_msg(fabs(s.mrr - num(x, "mrr")) < TOL, "%s mrr", name);
    ck_assert_msg(fabs(s.recall - num(x, "recall")) < TOL, "%s recall", name);
    ck_assert_msg(fabs(s.answer_hit - num(x, "answer_hit")) < TOL, "%s answer_hit", name);
    ck_assert_msg(fabs(s.ev_recall - num(x, "ev_recall")) < TOL, "%s ev_recall", name);
    ck_assert_msg(fabs(s.ev_precision - num(x, "ev_precision")) < TOL, "%s ev_precision", name);
    ck_assert_msg(fabs(s.ev_iou - num(x, "ev_iou")) < TOL, "%s ev_iou", name);
    ck_assert_msg(fabs(eval_precision_omega(&q, hits, n) - num(x, "omega")) < TOL, "%s omega",
                  name);
    arena_release(&a);
}

START_TEST(test_golden_metrics)
{
    FILE *f = golden_open("metrics.jsonl");
    char *line = NULL;
    size_t cap = 0, n_docs = 0, n_chunks = 0;
    cJSON *c;

    while ((c = golden_next(f, &line, &cap))) {
        const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
        if (strcmp(kind, "docs") == 0) {
            check_docs_case(c);
            n_docs++;
        } else {
            check_chunks_case(c);
            n_chunks++;
        }
        cJSON_Delete(c);
    }
    free(line);
    fclose(f);
    ck_assert_uint_eq(n_docs, 300);
    ck_assert_uint_eq(n_chunks, 200);
}
END_TEST

/* ---- hand-checked document metrics and edge cases ---- */

static struct eval_qrel hand_qrels[] = { { .doc_id = "d1", .grade = 1 },
                                         { .doc_id = "d2", .grade = 2 },
                                         { .doc_id = "d3", .grade = 0 } };

START_TEST(test_docs_hand)
{
    struct eval_question q = { .qrel = hand_qrels, .n_qrels = 3 };
    struct eval_hit run[] = { { "d1", 0, 0 }, { "d3", 0, 0 }, { "d9", 0, 0 }, { "d2", 0, 0 } };
    struct eval_doc_scores s;
    double idcg = 2 + 1 / log2(3);

    /* DCG = 1/log2(2) + 2/log2(5); pytrec_eval ndcg_cut_10 = 0.7074887171046738 */
    eval_score_docs(&q, run, 4, 10, &s);
    ck_assert_double_eq_tol(s.ndcg, (1 + 2 / log2(5)) / idcg, TOL);
    ck_assert_double_eq_tol(s.ndcg, 0.7074887171046738, TOL);
    ck_assert_double_eq_tol(s.recall, 1.0, TOL);
    ck_assert_double_eq_tol(s.mrr, 1.0, TOL);
    ck_assert_double_eq_tol(s.map, (1.0 / 1 + 2.0 / 4) / 2, TOL);
    /* k = 2: only d1 counts, ideal DCG cut at 2 as well */
    eval_score_docs(&q, run, 4, 2, &s);
    ck_assert_double_eq_tol(s.ndcg, 1 / idcg, TOL);
    ck_assert_double_eq_tol(s.recall, 0.5, TOL);
    ck_assert_double_eq_tol(s.hit, 1.0, TOL);
    /* k = 0 means the whole ranking */
    ck_assert_double_eq_tol(eval_ndcg_at_k(&q, run, 4, 0), eval_ndcg_at_k(&q, run, 4, 10), TOL);
}
END_TEST

START_TEST(test_docs_edges)
{
    struct eval_qrel none[] = { { .doc_id = "d1", .grade = 0 } };
    struct eval_question q0 = { .qrel = none, .n_qrels = 1 };
    struct eval_question q = { .qrel = hand_qrels, .n_qrels = 3 };
    struct eval_hit run[] = { { "d1", 0, 0 }, { "d9", 0, 0 } };
    /* chunks: d9, d2, d9, d2, d1 -> documents d9, d2, d1 (first occurrence) */
    struct eval_hit dup[] = {
        { "d9", 0, 5 }, { "d2", 0, 5 }, { "d9", 5, 9 }, { "d2", 9, 20 }, { "d1", 0, 3 }
    };
    struct eval_doc_scores s;

    eval_score_docs(&q0, run, 2, 10, &s); /* no relevant document */
    ck_assert(s.ndcg == 0 && s.recall == 0 && s.mrr == 0 && s.hit == 0 && s.map == 0);
    eval_score_docs(&q, run, 0, 10, &s); /* nothing retrieved */
    ck_assert(s.ndcg == 0 && s.recall == 0 && s.mrr == 0 && s.hit == 0);
    eval_score_docs(&q, run, 2, 100, &s); /* k larger than the list */
    ck_assert_double_eq_tol(s.recall, 0.5, TOL);
    ck_assert_double_eq_tol(s.ndcg, 1 / (2 + 1 / log2(3)), TOL);
    eval_score_docs(&q, dup, 5, 2, &s); /* k counts distinct documents */
    ck_assert_double_eq_tol(s.mrr, 0.5, TOL);
    ck_assert_double_eq_tol(s.recall, 0.5, TOL);
    ck_assert_double_eq_tol(s.ndcg, (2 / log2(3)) / (2 + 1 / log2(3)), TOL);
    eval_score_docs(&q, dup, 5, 3, &s);
    ck_assert_double_eq_tol(s.recall, 1.0, TOL);
    ck_assert_double_eq_tol(s.map, (1.0 / 2 + 2.0 / 3) / 2, TOL);
}
END_TEST

/* ---- chunk metrics by hand ---- */

START_TEST(test_chunks_hand)
{
    struct eval_doc d = { .id = "A", .text = "", .len = 1000 };
    struct eval_span para = { 100, 200 };
    struct eval_question q = { .doc = &d, .evidence = &para, .n_evidence = 1 };
    struct eval_hit hits[] = {
        { "B", 100, 200 }, { "A", 0, 50 }, { "A", 150, 300 }, { "A", 120, 160 }
    };
    struct eval_chunk_scores s;

    eval_score_chunks(&q, hits, 4, 3, &s);
    ck_assert_double_eq_tol(s.hit, 1, TOL);
    ck_assert_double_eq_tol(s.mrr, 1.0 / 3, TOL);
    ck_assert_double_eq_tol(s.recall, 1, TOL);
    ck_assert(!s.has_answers);
    /* covered 50 of 100 evidence bytes; retrieved 100 + 50 + 150 (other doc counts) */
    ck_assert_double_eq_tol(s.ev_recall, 0.5, TOL);
    ck_assert_double_eq_tol(s.ev_precision, 50.0 / 300, TOL);
    ck_assert_double_eq_tol(s.ev_iou, 50.0 / (300 + 100 - 50), TOL);
    /* with the 4th chunk: covered [120, 200) = 80; overlapping chunks are summed */
    eval_score_chunks(&q, hits, 4, 0, &s);
    ck_assert_double_eq_tol(s.ev_recall, 0.8, TOL);
    ck_assert_double_eq_tol(s.ev_precision, 80.0 / 340, TOL);
    eval_score_chunks(&q, hits, 4, 2, &s);
    ck_assert(s.hit == 0 && s.mrr == 0 && s.recall == 0 && s.ev_recall == 0);
    ck_assert_double_eq_tol(s.ev_iou, 0, TOL);
    /* omega: chunks touching [100, 200): [150, 300) and [120, 160) -> 80 / 200 */
    ck_assert_double_eq_tol(eval_precision_omega(&q, hits, 4), 80.0 / 200, TOL);
    eval_score_chunks(&q, hits, 0, 5, &s); /* nothing retrieved */
    ck_assert(s.hit == 0 && s.ev_precision == 0 && s.ev_iou == 0);
}
END_TEST

START_TEST(test_chunks_answer)
{
    static const char text[] = "aaaa Denver Broncos bbbb Denver Broncos cccc";
    struct eval_doc d = { .id = "A", .text = text, .len = sizeof(text) - 1 };
    struct eval_span para = { 20, 44 };
    struct eval_answer ans = { .text = "Denver Broncos", .span = { 25, 39 }, .has_span = true };
    struct eval_question q = {
        .doc = &d, .evidence = &para, .n_evidence = 1, .answer = &ans, .n_answers = 1
    };
    struct eval_hit in_para[] = { { "A", 22, 40 } }, first[] = { { "A", 0, 20 } };
    struct eval_chunk_scores s;

    ans.exact = true;
    eval_score_chunks(&q, in_para, 1, 5, &s);
    ck_assert(s.has_answers && s.answer_hit == 1 && s.hit == 1);
    eval_score_chunks(&q, first, 1, 5, &s); /* the answer string, but outside the paragraph */
    ck_assert(s.answer_hit == 0 && s.hit == 0);
    ans.exact = false; /* guessed offset: the string inside the paragraph suffices */
    ans.span.start = 5;
    ans.span.end = 19;
    eval_score_chunks(&q, in_para, 1, 5, &s);
    ck_assert(s.answer_hit == 1);
    eval_score_chunks(&q, first, 1, 5, &s);
    ck_assert(s.answer_hit == 0);
}
END_TEST

/* ---- answers ---- */

START_TEST(test_golden_answers)
{
    FILE *f = golden_open("answers.jsonl");
    char *line = NULL;
    size_t cap = 0, n = 0;
    cJSON *c;

    while ((c = golden_next(f, &line, &cap))) {
        const char *pred = cJSON_GetObjectItem(c, "pred")->valuestring;
        const cJSON *golds = cJSON_GetObjectItem(c, "gold"), *g;
        struct buf b = BUF_INIT;
        double em = 0, f1 = 0;

        eval_normalize_answer(pred, strlen(pred), &b);
        ck_assert_str_eq(buf_cstr(&b), cJSON_GetObjectItem(c, "norm")->valuestring);
        for (g = golds ? golds->child : NULL; g; g = g->next) {
            em = fmax(em, eval_exact_match(pred, g->valuestring));
            f1 = fmax(f1, eval_token_f1(pred, g->valuestring));
        }
        ck_assert_msg(em == num(c, "em"), "em of '%s'", pred);
        ck_assert_msg(fabs(f1 - num(c, "f1")) < TOL, "f1 of '%s': %f", pred, f1);
        buf_release(&b);
        cJSON_Delete(c);
        n++;
    }
    free(line);
    fclose(f);
    ck_assert_uint_ge(n, 20);
}
END_TEST

static void squad_score(const struct eval_dataset *ds, const char *file, double *em, double *f1)
{
    char rel[256], path[4096];
    struct eval_predictions *p;
    struct eval_acc *acc = eval_acc_new();
    struct eval_stat st;
    struct rag_err err = { 0 };

    snprintf(rel, sizeof(rel), "squad-v1.1-dev/reference-predictions/%s", file);
    ck_assert_ptr_nonnull(test_data_path(rel, path, sizeof(path)));
    ck_assert_msg(eval_predictions_load(&p, path, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < ds->n_questions; i++) {
        struct eval_answer_scores s;
        const char *a = eval_predictions_get(p, ds->question[i].id);
        /* the official script scores a missing prediction 0 */
        eval_score_answer(&ds->question[i], a ? a : "", false, &s);
        eval_acc_add_answer(acc, &s);
    }
    ck_assert_int_eq(eval_acc_find(acc, "em", &st, &err), 0);
    ck_assert_uint_eq(st.n, 10570);
    ck_assert(st.ci_lo < st.mean && st.mean < st.ci_hi);
    *em = 100 * st.mean;
    ck_assert_int_eq(eval_acc_find(acc, "f1", &st, &err), 0);
    *f1 = 100 * st.mean;
    eval_acc_free(acc);
    eval_predictions_free(p);
}

static double golden_squad(const char *file, const char *key)
{
    FILE *f = golden_open("squad_reference.json");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    cJSON *root;
    double v;

    fclose(f);
    buf[n] = '\0';
    root = cJSON_Parse(buf);
    v = num(cJSON_GetObjectItem(root, file), key);
    cJSON_Delete(root);
    return v;
}

START_TEST(test_squad_reference_predictions)
{
    static const char *const files[] = { "bert-large-ensemble-google.json",
                                         "logistic-regression-baseline-stanford.json" };
    static const double readme[][2] = { { 86.21, 92.20 }, { 40.14, 50.98 } };
    struct eval_dataset *ds;
    struct rag_err err = { 0 };
    char path[4096];

    ck_assert_ptr_nonnull(test_data_path("squad-v1.1-dev", path, sizeof(path)));
    ck_assert_msg(eval_dataset_load(&ds, path, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        double em, f1;
        squad_score(ds, files[i], &em, &f1);
        ck_assert_double_eq_tol(round(em * 100) / 100, readme[i][0], 1e-9);
        ck_assert_double_eq_tol(round(f1 * 100) / 100, readme[i][1], 1e-9);
        ck_assert_double_eq_tol(em, golden_squad(files[i], "em"), TOL);
        ck_assert_double_eq_tol(f1, golden_squad(files[i], "f1"), TOL);
    }
    eval_dataset_free(ds);
}
END_TEST

START_TEST(test_score_answer_abstention)
{
    struct eval_answer a = { .text = "Denver Broncos" };
    struct eval_question q = { .answer = &a, .n_answers = 1 };
    struct eval_question imp = { .is_impossible = true };
    struct eval_question none = { 0 };
    struct eval_answer_scores s;
    struct eval_acc *acc = eval_acc_new();
    struct eval_stat st;

    eval_score_answer(&q, "the denver broncos.", false, &s);
    ck_assert(s.scored && s.em == 1 && s.f1 == 1);
    eval_score_answer(&q, "Denver Broncos", true, &s); /* abstained on an answerable question */
    ck_assert(s.scored && s.em == 0 && s.f1 == 0 && s.abstained);
    eval_acc_add_answer(acc, &s);
    eval_score_answer(&imp, NULL, true, &s);
    ck_assert(s.scored && s.em == 1 && s.is_impossible);
    eval_acc_add_answer(acc, &s);
    eval_score_answer(&imp, "Denver", false, &s);
    ck_assert(s.scored && s.em == 0 && s.f1 == 0);
    eval_acc_add_answer(acc, &s);
    eval_score_answer(&none, "x", false, &s);
    ck_assert(!s.scored);
    ck_assert_int_eq(eval_acc_find(acc, "abstention_acc", &st, NULL), 0);
    ck_assert_uint_eq(st.n, 2);
    ck_assert_double_eq_tol(st.mean, 0.5, TOL);
    ck_assert_int_eq(eval_acc_find(acc, "false_abstention", &st, NULL), 0);
    ck_assert(st.n == 1 && st.mean == 1);
    eval_acc_free(acc);
}
END_TEST

/* ---- bootstrap and accumulator ---- */

START_TEST(test_golden_bootstrap)
{
    FILE *f = golden_open("bootstrap.jsonl");
    char *line = NULL;
    size_t cap = 0, n_cases = 0;
    cJSON *c;

    while ((c = golden_next(f, &line, &cap))) {
        const cJSON *vals = cJSON_GetObjectItem(c, "values"), *v;
        size_t n = 0;
        double *x = xmalloc_array((size_t)cJSON_GetArraySize(vals), sizeof(*x));
        double lo, hi;

        for (v = vals ? vals->child : NULL; v; v = v->next)
            x[n++] = v->valuedouble;
        eval_bootstrap_ci(x, n, (size_t)num(c, "resamples"), (uint64_t)num(c, "seed"), &lo, &hi);
        ck_assert_double_eq_tol(lo, num(c, "lo"), TOL);
        ck_assert_double_eq_tol(hi, num(c, "hi"), TOL);
        free(x);
        cJSON_Delete(c);
        n_cases++;
    }
    free(line);
    fclose(f);
    ck_assert_uint_eq(n_cases, 10);
}
END_TEST

START_TEST(test_acc)
{
    struct eval_acc *acc = eval_acc_new();
    struct eval_doc_scores d = { .ndcg = 0.5, .recall = 1, .mrr = 0.25, .hit = 1, .map = 0.2 };
    struct eval_chunk_scores c = { .hit = 1 };
    struct eval_stat st;
    struct rag_err err = { 0 };

    eval_acc_add_docs(acc, &d, 10);
    d.ndcg = 1;
    eval_acc_add_docs(acc, &d, 10);
    eval_acc_add_chunks(acc, &c, 5);
    ck_assert_uint_eq(eval_acc_count(acc), 5 + 6); /* no answer_hit without answers */
    eval_acc_stat(acc, 0, &st);
    ck_assert_str_eq(st.name, "ndcg@10");
    ck_assert(st.n == 2 && st.mean == 0.75 && st.ci_lo >= 0.5 && st.ci_hi <= 1);
    eval_acc_stat(acc, 1, &st); /* constant samples: zero-width interval */
    ck_assert(st.mean == 1 && st.ci_lo == 1 && st.ci_hi == 1);
    ck_assert_int_eq(eval_acc_find(acc, "chunk_hit@5", &st, &err), 0);
    ck_assert_int_eq(eval_acc_find(acc, "em", &st, &err), RAG_ENOTFOUND);
    ck_assert_str_eq(err.msg, "no samples for metric 'em'");
    eval_acc_free(acc);
    eval_acc_free(NULL);
}
END_TEST

/* ---- loaders on the shared datasets ---- */

static struct eval_dataset *load_shared(const char *name, const struct eval_load_opts *o)
{
    struct eval_dataset *ds = NULL;
    struct rag_err err = { 0 };
    char path[4096];
    double t0 = time_now();

    ck_assert_ptr_nonnull(test_data_path(name, path, sizeof(path)));
    ck_assert_msg(eval_dataset_load(&ds, path, o, &err) == 0, "%s", err.msg);
    /* "well under a second" normally; the bound only catches pathologies (sanitizers, valgrind) */
    ck_assert_msg(time_now() - t0 < 10, "loading %s took %.2f s", name, time_now() - t0);
    return ds;
}

START_TEST(test_load_squad)
{
    struct eval_dataset *ds = load_shared("squad-v1.1-dev", NULL);
    const struct eval_question *q = &ds->question[0];

    ck_assert_int_eq(ds->layout, EVAL_LAYOUT_QA);
    ck_assert_uint_eq(ds->n_docs, 48);
    ck_assert_uint_eq(ds->n_questions, 10570);
    ck_assert_uint_eq(ds->n_paragraphs, 2067);
    ck_assert_uint_eq(ds->n_answers, 34726);
    ck_assert_uint_eq(ds->n_evidence, 10570);
    ck_assert_str_eq(q->id, "56be4db0acb8001400a502ec");
    ck_assert_str_eq(q->doc->id, "Super_Bowl_50");
    ck_assert(q->n_answers == 3 && q->answer[0].has_span && q->answer[0].exact);
    ck_assert_str_eq(q->answer[0].text, "Denver Broncos");
    ck_assert_uint_eq(q->answer[0].span.start, 177);
    ck_assert(q->n_evidence == 1 && q->evidence[0].start == 0 && q->evidence[0].end == 777);
    ck_assert_int_eq(memcmp(q->doc->text + 177, "Denver Broncos", 14), 0);
    ck_assert_ptr_eq(eval_dataset_find_question(ds, q->id), q);
    ck_assert_ptr_eq(eval_dataset_find_doc(ds, "Super_Bowl_50"), q->doc);
    ck_assert_ptr_null(eval_dataset_find_doc(ds, "nope"));
    ck_assert(!q->is_impossible && q->n_qrels == 0);
    eval_dataset_free(ds);
}
END_TEST

START_TEST(test_load_scifact)
{
    struct eval_load_opts o = { .split = "train" };
    struct eval_dataset *ds = load_shared("scifact-beir", NULL);
    size_t judged = 0;

    ck_assert_int_eq(ds->layout, EVAL_LAYOUT_BEIR);
    ck_assert_uint_eq(ds->n_docs, 5183);
    ck_assert_uint_eq(ds->n_questions, 300);
    ck_assert_uint_eq(ds->n_qrels, 339);
    ck_assert_uint_eq(ds->n_qrels_missing_doc, 0);
    ck_assert_str_eq(ds->doc[0].id, "4983");
    ck_assert_str_eq(ds->question[0].id, "1");
    ck_assert_str_eq(ds->question[0].qrel[0].doc_id, "31715818");
    ck_assert_ptr_nonnull(ds->question[0].qrel[0].doc);
    ck_assert_int_eq(ds->question[0].qrel[0].grade, 1);
    for (size_t i = 0; i < ds->n_questions; i++)
        judged += ds->question[i].n_qrels > 0 && !ds->question[i].doc;
    ck_assert_uint_eq(judged, 300);
    eval_dataset_free(ds);
    ds = load_shared("scifact-beir", &o);
    ck_assert_uint_eq(ds->n_questions, 809);
    ck_assert_uint_eq(ds->n_qrels, 919);
    eval_dataset_free(ds);
}
END_TEST

START_TEST(test_load_chroma)
{
    struct eval_dataset *ds = load_shared("chroma-chunking-eval", NULL);
    const struct eval_question *q = &ds->question[0];
    static const char ref[] = "My administration announced we\xe2\x80\x99re cutting credit card";

    ck_assert_uint_eq(ds->n_docs, 5);
    ck_assert_uint_eq(ds->n_questions, 472);
    ck_assert_uint_eq(ds->n_evidence, 790);
    ck_assert_uint_eq(ds->n_answers, 0);
    ck_assert_str_eq(q->id, "q0000");
    ck_assert_str_eq(q->doc->id, "state_of_the_union");
    ck_assert(q->n_evidence == 2 && q->evidence[0].start == 27874 && q->evidence[0].end == 27955);
    ck_assert_int_eq(memcmp(q->doc->text + 27874, ref, sizeof(ref) - 1), 0);
    eval_dataset_free(ds);
}
END_TEST

START_TEST(test_load_limits)
{
    struct eval_load_opts first = { .max_questions = 25 };
    struct eval_load_opts s1 = { .max_questions = 25, .sample_seed = 7 };
    struct eval_load_opts s2 = { .max_questions = 25, .sample_seed = 8 };
    struct eval_dataset *all = load_shared("chroma-chunking-eval", NULL);
    struct eval_dataset *a = load_shared("chroma-chunking-eval", &first);
    struct eval_dataset *b = load_shared("chroma-chunking-eval", &s1);
    struct eval_dataset *c = load_shared("chroma-chunking-eval", &s1);
    struct eval_dataset *d = load_shared("chroma-chunking-eval", &s2);
    size_t same = 0, prev = 0;

    ck_assert(a->n_questions == 25 && a->n_questions_total == 472);
    ck_assert_str_eq(a->question[24].id, all->question[24].id);
    ck_assert_uint_eq(b->n_questions, 25);
    for (size_t i = 0; i < 25; i++) {
        const struct eval_question *q = eval_dataset_find_question(all, b->question[i].id);
        size_t at = (size_t)(q - all->question);
        ck_assert_str_eq(b->question[i].id, c->question[i].id); /* deterministic */
        ck_assert(i == 0 || at > prev);                         /* file order kept */
        ck_assert_ptr_eq(eval_dataset_find_question(b, b->question[i].id), &b->question[i]);
        prev = at;
        same += strcmp(b->question[i].id, d->question[i].id) == 0;
    }
    ck_assert_uint_lt(same, 25); /* another seed, another sample */
    ck_assert_uint_ne(prev, 24); /* not simply the first 25 */
    eval_dataset_free(all);
    eval_dataset_free(a);
    eval_dataset_free(b);
    eval_dataset_free(c);
    eval_dataset_free(d);
}
END_TEST

/* ---- malformed inputs ---- */

static char scratch[4096];

static void scratch_setup(void)
{
    snprintf(scratch, sizeof(scratch), "%s", test_tmpdir());
}

static void scratch_teardown(void)
{
    test_rmtree(scratch);
}

static void put(const char *name, const char *text)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    test_write_file(path, text, strlen(text));
}

/* Load the scratch dataset, expect code and the message "<msg with %s = scratch dir>". */
static void expect_fail(int code, const char *fmt)
{
    struct eval_dataset *ds = NULL;
    struct rag_err err = { 0 };
    char want[8192];

    ck_assert_int_eq(eval_dataset_load(&ds, scratch, NULL, &err), code);
    ck_assert_ptr_null(ds);
    snprintf(want, sizeof(want), fmt, scratch);
    ck_assert_str_eq(err.msg, want);
}

#define DOCS \
 "{\"doc_id\": \"d1\", \"text\": \"hello world\", \"paragraph_spans_bytes\": [[0, 5]]}\n"
#define Q1 "{\"id\": \"q1\", \"question\": \"hi?\", \"doc_id\": \"d1\", \"answers\": [\"world\"]}\n"

START_TEST(test_bad_json_line)
{
    put("docs.jsonl", DOCS);
    put("questions.jsonl", Q1 "{\"id\": x}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 2: invalid JSON at byte 77");
    put("questions.jsonl", Q1 "\n  \n{\"id\": \"q2\"} junk\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 4: trailing characters at byte 86");
    put("questions.jsonl", "[1, 2]\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: not a JSON object");
}
END_TEST

START_TEST(test_missing_field)
{
    put("docs.jsonl", "{\"doc_id\": \"d1\"}\n");
    put("questions.jsonl", Q1);
    expect_fail(RAG_EFORMAT, "'%s/docs.jsonl' line 1: missing field 'text'");
    put("docs.jsonl", "{\"doc_id\": 5, \"text\": \"x\"}\n");
    expect_fail(RAG_EFORMAT, "'%s/docs.jsonl' line 1: field 'doc_id' is not a string");
    put("docs.jsonl", DOCS DOCS);
    expect_fail(RAG_EFORMAT, "'%s/docs.jsonl' line 2: duplicate document id 'd1'");
    put("docs.jsonl", DOCS);
    put("questions.jsonl", "{\"id\": \"q1\", \"question\": \"hi?\", \"doc_id\": \"d1\"}\n");
    expect_fail(RAG_EFORMAT,
                "'%s/questions.jsonl' line 1: missing field 'answers' or 'references'");
    put("questions.jsonl",
        "{\"id\": \"q1\", \"question\": \"hi?\", \"doc_id\": \"d9\", \"answers\": []}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: unknown doc_id 'd9'");
    put("questions.jsonl", Q1 Q1);
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 2: duplicate question id 'q1'");
}
END_TEST

START_TEST(test_bad_offsets)
{
    put("docs.jsonl",
        "{\"doc_id\": \"d1\", \"text\": \"hello\", \"paragraph_spans_bytes\": [[0, 9]]}\n");
    put("questions.jsonl", Q1);
    expect_fail(
        RAG_EFORMAT,
        "'%s/docs.jsonl' line 1: paragraph_spans_bytes[0] [0, 9) is outside the text (5 bytes)");
    put("docs.jsonl", DOCS);
    put("questions.jsonl",
        "{\"id\": \"q\", \"question\": \"?\", \"doc_id\": \"d1\", \"references\": "
        "[{\"start_byte\": 6, \"end_byte\": 99}]}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: references[0] [6, 99) is outside "
                             "doc 'd1' (11 bytes)");
    put("questions.jsonl",
        "{\"id\": \"q\", \"question\": \"?\", \"doc_id\": \"d1\", \"references\": "
        "[{\"start_byte\": 6, \"end_byte\": 11, \"text\": \"World\"}]}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: references[0] text differs from "
                             "bytes [6, 11) of doc 'd1'");
    put("questions.jsonl", "{\"id\": \"q\", \"question\": \"?\", \"doc_id\": \"d1\", "
                           "\"answers\": [\"world\"], \"answer_byte_starts\": [9]}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: answers[0] is not at byte 9 of doc "
                             "'d1' (11 bytes)");
    put("questions.jsonl", "{\"id\": \"q\", \"question\": \"?\", \"doc_id\": \"d1\", "
                           "\"answers\": [\"world\"], \"paragraph_index\": 1}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: paragraph_index 1 is out of range "
                             "(doc 'd1' has 1 paragraphs)");
    put("questions.jsonl", "{\"id\": \"q\", \"question\": \"?\", \"doc_id\": \"d1\", "
                           "\"answers\": [\"world\"], \"answer_byte_starts\": [-6]}\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl' line 1: answer_byte_starts[0] is not an offset");
}
END_TEST

START_TEST(test_empty_and_missing)
{
    put("docs.jsonl", DOCS);
    put("questions.jsonl", "\n\n");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl': no records (empty file)");
    expect_fail(RAG_EFORMAT, "'%s/questions.jsonl': no records (empty file)");
    test_rmtree(scratch);
    ck_assert_int_eq(mkdir(scratch, 0755), 0);
    expect_fail(RAG_ENOTFOUND, "'%s': not a dataset (needs corpus.jsonl + queries.jsonl or "
                               "docs.jsonl + questions.jsonl)");
}
END_TEST

#define CORPUS  "{\"_id\": \"c1\", \"title\": \"T\", \"text\": \"abc\"}\n"
#define QUERIES "{\"_id\": \"1\", \"text\": \"q one\"}\n{\"_id\": \"2\", \"text\": \"q two\"}\n"

START_TEST(test_beir_bad)
{
    char qrels[4200];
    struct eval_dataset *ds;

    put("corpus.jsonl", CORPUS);
    put("queries.jsonl", QUERIES);
    expect_fail(RAG_ENOTFOUND, "no qrels for split 'test': '%s/qrels/test.tsv' does not exist");
    snprintf(qrels, sizeof(qrels), "%s/qrels", scratch);
    ck_assert_int_eq(mkdir(qrels, 0755), 0);
    put("qrels/test.tsv", "query-id\tcorpus-id\tscore\n2\tc1\n");
    expect_fail(RAG_EFORMAT, "'%s/qrels/test.tsv' line 2: expected 3 tab-separated fields");
    put("qrels/test.tsv", "query-id\tcorpus-id\tscore\n2\tc1\thigh\n");
    expect_fail(RAG_EFORMAT, "'%s/qrels/test.tsv' line 2: score 'high' is not an integer");
    put("qrels/test.tsv", "query-id\tcorpus-id\tscore\n7\tc1\t1\n");
    expect_fail(RAG_EFORMAT, "'%s/qrels/test.tsv' line 2: query-id '7' is not in queries.jsonl");
    put("qrels/test.tsv", "query-id\tcorpus-id\tscore\n2\tc1\t1\r\n2\tc1\t2\n");
    expect_fail(RAG_EFORMAT, "'%s/qrels/test.tsv' line 3: duplicate judgment 2 c1");
    put("qrels/test.tsv", "query-id\tcorpus-id\tscore\n");
    expect_fail(RAG_EFORMAT, "'%s/qrels/test.tsv': no judgments");
    put("queries.jsonl", "{\"_id\": \"1\"}\n");
    expect_fail(RAG_EFORMAT, "'%s/queries.jsonl' line 1: missing field 'text'");
    /* a judgment on a document missing from the corpus is kept and counted */
    put("queries.jsonl", QUERIES);
    put("qrels/test.tsv", "query-id\tcorpus-id\tscore\n2\tc1\t1\r\n2\tgone\t1\n");
    ck_assert_int_eq(eval_dataset_load(&ds, scratch, NULL, NULL), 0);
    ck_assert(ds->n_questions == 1 && ds->n_qrels == 2 && ds->n_qrels_missing_doc == 1);
    ck_assert_str_eq(ds->question[0].id, "2");
    ck_assert_ptr_null(ds->question[0].qrel[1].doc);
    eval_dataset_free(ds);
}
END_TEST

START_TEST(test_predictions_bad)
{
    struct eval_predictions *p = NULL;
    struct rag_err err = { 0 };
    char path[4200], want[8400];

    snprintf(path, sizeof(path), "%s/pred.json", scratch);
    put("pred.json", "{\"a\": \"x\", \"b\": 3}");
    ck_assert_int_eq(eval_predictions_load(&p, path, &err), RAG_EFORMAT);
    snprintf(want, sizeof(want), "'%s': answer for 'b' is not a string", path);
    ck_assert_str_eq(err.msg, want);
    put("pred.json", "{\"a\": \"x\",\n \"b\" \"y\"}");
    ck_assert_int_eq(eval_predictions_load(&p, path, &err), RAG_EFORMAT);
    snprintf(want, sizeof(want), "'%s': invalid JSON at byte 16", path);
    ck_assert_str_eq(err.msg, want);
    put("pred.json", "[\"x\"]");
    ck_assert_int_eq(eval_predictions_load(&p, path, &err), RAG_EFORMAT);
    put("pred.json", "{\"a\": \"x\", \"b\": \"\"}");
    ck_assert_int_eq(eval_predictions_load(&p, path, &err), 0);
    ck_assert_uint_eq(eval_predictions_count(p), 2);
    ck_assert_str_eq(eval_predictions_get(p, "a"), "x");
    ck_assert_ptr_null(eval_predictions_get(p, "c"));
    eval_predictions_free(p);
    snprintf(path, sizeof(path), "%s/none.json", scratch);
    ck_assert_int_eq(eval_predictions_load(&p, path, &err), RAG_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "none.json"));
}
END_TEST

static TCase *eval_data_tcase(void)
{
    TCase *t = tcase_create("datasets");

    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_load_squad);
    tcase_add_test(t, test_load_scifact);
    tcase_add_test(t, test_load_chroma);
    tcase_add_test(t, test_load_limits);
    tcase_add_checked_fixture(t, scratch_setup, scratch_teardown);
    tcase_add_test(t, test_bad_json_line);
    tcase_add_test(t, test_missing_field);
    tcase_add_test(t, test_bad_offsets);
    tcase_add_test(t, test_empty_and_missing);
    tcase_add_test(t, test_beir_bad);
    tcase_add_test(t, test_predictions_bad);
    return t;
}

/* Citation marks go; other brackets, and the text around them, stay. */
START_TEST(test_strip_citations)
{
    static const char *const cases[][2] = {
        { "Denver Broncos [1]", "Denver Broncos " },
        { "in 1066 [2, 3].", "in 1066 ." },
        { "[1][2]Paris", "Paris" },
        { "pages [1-3] and [4]", "pages  and " },
        { "an array a[i] and [x]", "an array a[i] and [x]" },
        { "empty [] and [ ] stay", "empty [] and [ ] stay" },
        { "unclosed [12", "unclosed [12" },
        { "", "" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf out = BUF_INIT;

        eval_strip_citations(cases[i][0], &out);
        ck_assert_str_eq(buf_cstr(&out), cases[i][1]);
        buf_release(&out);
    }
}
END_TEST

Suite *eval_suite(void);

Suite *eval_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *m = tcase_create("metrics"), *a = tcase_create("answers");
    TCase *b = tcase_create("bootstrap");

    tcase_add_test(m, test_golden_metrics);
    tcase_add_test(m, test_docs_hand);
    tcase_add_test(m, test_docs_edges);
    tcase_add_test(m, test_chunks_hand);
    tcase_add_test(m, test_chunks_answer);
    tcase_set_timeout(a, 120);
    tcase_add_test(a, test_golden_answers);
    tcase_add_test(a, test_squad_reference_predictions);
    tcase_add_test(a, test_score_answer_abstention);
    tcase_add_test(a, test_strip_citations);
    tcase_set_timeout(b, 60);
    tcase_add_test(b, test_golden_bootstrap);
    tcase_add_test(b, test_acc);
    suite_add_tcase(s, m);
    suite_add_tcase(s, a);
    suite_add_tcase(s, b);
    suite_add_tcase(s, eval_data_tcase());
    return s;
}

TEST_MAIN(eval_suite)
