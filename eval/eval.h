/*
 * eval/eval.h - evaluation datasets and metrics for `rag eval`.
 *
 * This folder never runs the pipeline: it loads a dataset into a uniform
 * in-memory model, and scores (gold, predicted) pairs that cmd/eval.c feeds
 * it. Three parts:
 *   - datasets: the BEIR layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)
 *     and the QA JSONL layout (docs.jsonl, questions.jsonl in SQuAD or Chroma
 *     form), see eval_dataset_load();
 *   - metrics: document retrieval (nDCG, recall, MRR, hit, MAP at k, as in
 *     pytrec_eval / BEIR), chunk retrieval on QA sets, Chroma evidence
 *     recall / precision / IoU, SQuAD exact match and token F1;
 *   - aggregation: means with bootstrap 95% confidence intervals.
 * All values are fractions in [0, 1] (multiply by 100 for SQuAD-style output).
 */
#ifndef EVAL_EVAL_H
#define EVAL_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* ---- dataset model ---- */

struct eval_span {
    size_t start, end; /* UTF-8 byte range [start, end) in a document's text */
};

struct eval_doc {
    const char *id;
    const char *title;           /* "" when the file has none */
    const char *text;            /* NUL-terminated */
    size_t len;                  /* bytes in text */
    struct eval_span *paragraph; /* gold paragraphs (SQuAD); n_paragraphs may be 0 */
    size_t n_paragraphs;
};

/* A BEIR judgment: grade > 0 means relevant; the grade is the nDCG gain. */
struct eval_qrel {
    const char *doc_id;
    const struct eval_doc *doc; /* NULL when doc_id is not in the corpus */
    int grade;
};

/* A gold answer string; span is set when the file gives its byte offset. */
struct eval_answer {
    const char *text;
    struct eval_span span;
    bool has_span;
    bool exact; /* false: the offset was guessed among several occurrences */
};

/*
 * One question. BEIR queries have qrels and no doc; QA questions have a doc,
 * evidence spans in it (SQuAD: the gold paragraph; Chroma: the references)
 * and, for SQuAD, answers.
 */
struct eval_question {
    const char *id;
    const char *text;
    const struct eval_doc *doc; /* NULL for BEIR */
    struct eval_qrel *qrel;
    size_t n_qrels;
    struct eval_span *evidence; /* in doc, file order */
    size_t n_evidence;
    struct eval_answer *answer;
    size_t n_answers;
    bool is_impossible;
};

enum eval_layout { EVAL_LAYOUT_BEIR, EVAL_LAYOUT_QA };

struct eval_dataset_index; /* internal id lookup tables */

/*
 * A loaded dataset. Every pointer inside lives until eval_dataset_free().
 * n_qrels, n_evidence, n_answers and n_paragraphs are totals over the loaded
 * questions / documents; n_questions_total counts questions before any limit.
 */
struct eval_dataset {
    enum eval_layout layout;
    struct eval_doc *doc;
    size_t n_docs;
    struct eval_question *question;
    size_t n_questions;
    size_t n_questions_total;
    size_t n_qrels, n_evidence, n_answers, n_paragraphs;
    size_t n_qrels_missing_doc; /* BEIR judgments naming a doc absent from the corpus */
    struct arena arena;
    struct eval_dataset_index *index;
};

/* Zero-initialised options are the defaults. */
struct eval_load_opts {
    const char *split;    /* BEIR qrels split; NULL means "test" */
    size_t max_questions; /* 0 = all */
    uint64_t sample_seed; /* 0: the first max_questions; else a seeded sample, file order kept */
};

/*
 * Load the dataset in folder dir into *ret (free with eval_dataset_free).
 * The layout is detected: corpus.jsonl + queries.jsonl is BEIR (only queries
 * judged in qrels/<split>.tsv are kept), docs.jsonl + questions.jsonl is the
 * QA layout (each questions line in SQuAD or Chroma form). opts may be NULL.
 * Errors: RAG_EIO (unreadable file), RAG_ENOTFOUND (no such layout or split),
 * RAG_EFORMAT (malformed file: the message names the file and line, and the
 * byte offset for bad JSON).
 */
int eval_dataset_load(struct eval_dataset **ret, const char *dir, const struct eval_load_opts *opts,
                      struct rag_err *err);
void eval_dataset_free(struct eval_dataset *ds); /* NULL is a no-op */

/* Lookups by id; NULL when absent. Borrowed while ds lives. */
const struct eval_doc *eval_dataset_find_doc(const struct eval_dataset *ds, const char *id);
const struct eval_question *eval_dataset_find_question(const struct eval_dataset *ds,
                                                       const char *id);

/* ---- retrieval metrics ---- */

/*
 * A retrieved item, best first: a document (start = end = 0) or a chunk of
 * one (its byte range in the document text). doc_id is required (non-NULL);
 * strings are borrowed.
 */
struct eval_hit {
    const char *doc_id;
    size_t start, end;
};

/*
 * Document-level scores at cut-off k (k = 0: the whole ranking), against the
 * question's qrels, as pytrec_eval / BEIR define them: nDCG with linear gains
 * (the grade; <= 0 gains 0) and log2(rank + 1) discount, ideal DCG from the
 * best k grades of all the query's qrels; recall = relevant in top k / all relevant; MRR = 1 / rank of the first
 * relevant; hit = at least one relevant; MAP = sum of precision at each
 * relevant rank / all relevant.
 * Max-pooling: hits are reduced to the ranking of distinct documents by first
 * occurrence (a document ranks where its best chunk does) before the cut-off,
 * so k counts documents. With no relevant qrel every score is 0.
 */
struct eval_doc_scores {
    double ndcg, recall, mrr, hit, map;
};
void eval_score_docs(const struct eval_question *q, const struct eval_hit *hits, size_t n, size_t k,
                     struct eval_doc_scores *ret);
double eval_ndcg_at_k(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                      size_t k);
double eval_recall_at_k(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                        size_t k);
double eval_mrr_at_k(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                     size_t k);

/*
 * Chunk-level scores for QA questions over the first k hits (k = 0: all).
 * A chunk is relevant when it lies in the question's document and overlaps an
 * evidence span by at least one byte or contains an answer span (README
 * "Loader note"). hit, mrr: first relevant chunk; recall: fraction of evidence
 * spans overlapped by some chunk (1 when hit and there is no evidence span).
 * answer_hit: some chunk contains a gold answer (an exact span, or for guessed
 * offsets the answer string inside the gold evidence span); valid only when
 * has_answers.
 * Evidence metrics follow Chroma's base_evaluation.py: covered = bytes of the
 * union of evidence spans covered by the union of same-document chunks;
 * retrieved = the sum of the lengths of all k chunks, other documents
 * included, overlaps counted twice; recall = covered / evidence,
 * precision = covered / retrieved, iou = covered / (retrieved + evidence -
 * covered). Units are bytes (Chroma counts characters).
 */
struct eval_chunk_scores {
    double hit, recall, mrr;
    double answer_hit;
    bool has_answers;
    double ev_recall, ev_precision, ev_iou;
};
void eval_score_chunks(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                       size_t k, struct eval_chunk_scores *ret);

/*
 * Chroma's precision_omega: IoU of the evidence with the union of all chunks
 * of the document that touch it (closed ranges, as base_evaluation.py), given
 * every chunk of the corpus (chunks of other documents are ignored).
 */
double eval_precision_omega(const struct eval_question *q, const struct eval_hit *chunks, size_t n);

/* ---- answers (SQuAD v1.1 official evaluation) ---- */

/*
 * Append the SQuAD normal form of s[0..len) to out: lower case, ASCII
 * punctuation removed, whole-word a/an/the removed, whitespace collapsed.
 */
void eval_normalize_answer(const char *s, size_t len, struct buf *out);
double eval_exact_match(const char *pred, const char *gold); /* 0 or 1 */
double eval_token_f1(const char *pred, const char *gold);

/*
 * Score a prediction against q's answers (max over them). pred may be NULL
 * when abstained. Unanswerable questions score em = f1 = 1 exactly when the
 * caller abstained; an abstention on an answerable question scores 0.
 * scored is false (and em = f1 = 0) for a question without gold answers that
 * is not unanswerable.
 */
struct eval_answer_scores {
    double em, f1;
    bool scored;
    bool abstained, is_impossible;
};
void eval_score_answer(const struct eval_question *q, const char *pred, bool abstained,
                       struct eval_answer_scores *ret);
/*
 * Append answer without its citation marks ("[1]", "[2, 3]", "[1-3]"), which
 * are no part of an answer span; other brackets stay. out is NUL-terminated.
 */
void eval_strip_citations(const char *answer, struct buf *out);

/* A SQuAD prediction file: one JSON object {"question id": "answer", ...}. */
struct eval_predictions;
int eval_predictions_load(struct eval_predictions **ret, const char *path, struct rag_err *err);
const char *eval_predictions_get(const struct eval_predictions *p, const char *id);
size_t eval_predictions_count(const struct eval_predictions *p);
void eval_predictions_free(struct eval_predictions *p); /* NULL is a no-op */

/* ---- aggregation ---- */

#define EVAL_BOOTSTRAP_RESAMPLES 1000
#define EVAL_BOOTSTRAP_SEED      20240229u

/*
 * Percentile bootstrap: the 2.5 and 97.5 percentiles (linear interpolation,
 * as numpy) of the means of `resamples` resamples of v[0..n) drawn with
 * replacement by a PCG32 generator seeded with seed. n = 0 gives 0, 0.
 */
void eval_bootstrap_ci(const double *v, size_t n, size_t resamples, uint64_t seed, double *ret_lo,
                       double *ret_hi);

/*
 * Accumulator of per-question samples, one list per metric name, kept in the
 * order the metrics were first added. Names are copied. The helpers name
 * metrics "<metric>@k" ("<metric>" when k is 0):
 *   eval_acc_add_docs:   ndcg, recall, mrr, hit, map
 *   eval_acc_add_chunks: chunk_hit, chunk_recall, chunk_mrr, answer_hit (only
 *                        when has_answers), evidence_recall,
 *                        evidence_precision, evidence_iou
 *   eval_acc_add_answer: em and f1 (when scored), abstention_acc (unanswerable
 *                        questions: 1 if abstained), false_abstention
 *                        (answerable questions: 1 if abstained); no @k
 * Free with eval_acc_free (NULL is a no-op).
 */
struct eval_acc;
struct eval_acc *eval_acc_new(void);
void eval_acc_free(struct eval_acc *acc);
void eval_acc_add(struct eval_acc *acc, const char *metric, double value);
void eval_acc_add_docs(struct eval_acc *acc, const struct eval_doc_scores *s, size_t k);
void eval_acc_add_chunks(struct eval_acc *acc, const struct eval_chunk_scores *s, size_t k);
void eval_acc_add_answer(struct eval_acc *acc, const struct eval_answer_scores *s);

struct eval_stat {
    const char *name; /* borrowed while acc lives */
    size_t n;         /* samples */
    double mean, ci_lo, ci_hi;
};
/* Number of metrics; statistics of metric i (< eval_acc_count) with the default bootstrap. */
size_t eval_acc_count(const struct eval_acc *acc);
void eval_acc_stat(const struct eval_acc *acc, size_t i, struct eval_stat *ret);
/* Statistics of the named metric; RAG_ENOTFOUND when it has no samples. */
int eval_acc_find(const struct eval_acc *acc, const char *metric, struct eval_stat *ret,
                  struct rag_err *err);

#endif
