/*
 * eval/metrics.c - retrieval metrics from (gold, ranked hits) pairs.
 *
 * Document level follows trec_eval as wrapped by pytrec_eval (and so BEIR):
 * a judgment is relevant when its grade is > 0, the nDCG gain is the grade
 * (negative grades count 0), the discount log2(rank + 1), and the ideal DCG
 * takes the best k grades of all the query's judgments. Hits are first reduced
 * to distinct documents by first occurrence (max-pooling of chunk scores).
 *
 * Chunk level works on byte ranges. Evidence metrics reproduce Chroma's
 * base_evaluation.py: the covered bytes are the intersection of two unions,
 * while the retrieved bytes are a plain sum over the top k chunks, other
 * documents and overlaps included.
 */
#include "eval/internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Gain (grade > 0) of doc_id in q's judgments, 0 when not relevant. */
static int gain_of(const struct eval_question *q, const char *doc_id)
{
    for (size_t i = 0; i < q->n_qrels; i++) {
        if (strcmp(q->qrel[i].doc_id, doc_id) == 0)
            return q->qrel[i].grade > 0 ? q->qrel[i].grade : 0;
    }
    return 0;
}

/*
 * Gains of the first k distinct documents of hits, in rank order, into a new
 * array (caller frees); *ret_n is its length.
 */
static int *ranked_gains(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                         size_t k, size_t *ret_n)
{
    size_t limit = k && k < n ? k : n, m = 0;
    const char **seen = xmalloc_array(limit + 1, sizeof(*seen));
    int *gain = xmalloc_array(limit + 1, sizeof(*gain));

    for (size_t i = 0; i < n && m < limit; i++) {
        size_t j = 0;

        assert(hits[i].doc_id);
        while (j < m && strcmp(seen[j], hits[i].doc_id) != 0)
            j++;
        if (j < m)
            continue;
        seen[m] = hits[i].doc_id;
        gain[m++] = gain_of(q, hits[i].doc_id);
    }
    free(seen);
    *ret_n = m;
    return gain;
}

static size_t n_relevant(const struct eval_question *q)
{
    size_t r = 0;

    for (size_t i = 0; i < q->n_qrels; i++)
        r += q->qrel[i].grade > 0;
    return r;
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;

    return x > y ? -1 : x < y;
}

static double ideal_dcg(const struct eval_question *q, size_t k)
{
    int *g = xmalloc_array(q->n_qrels + 1, sizeof(*g));
    size_t limit;
    double dcg = 0;

    for (size_t i = 0; i < q->n_qrels; i++)
        g[i] = q->qrel[i].grade > 0 ? q->qrel[i].grade : 0;
    qsort(g, q->n_qrels, sizeof(*g), cmp_int_desc);
    limit = k && k < q->n_qrels ? k : q->n_qrels;
    for (size_t i = 0; i < limit; i++)
        dcg += g[i] / log2((double)i + 2);
    free(g);
    return dcg;
}

void eval_score_docs(const struct eval_question *q, const struct eval_hit *hits, size_t n, size_t k,
                     struct eval_doc_scores *ret)
{
    size_t m, found = 0, rel = n_relevant(q);
    int *gain = ranked_gains(q, hits, n, k, &m);
    double dcg = 0, idcg = ideal_dcg(q, k), ap = 0;

    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < m; i++) {
        dcg += gain[i] / log2((double)i + 2);
        if (gain[i] <= 0)
            continue;
        if (!found)
            ret->mrr = 1.0 / (double)(i + 1);
        found++;
        ap += (double)found / (double)(i + 1);
    }
    free(gain);
    if (!rel)
        return;
    ret->ndcg = idcg > 0 ? dcg / idcg : 0;
    ret->recall = (double)found / (double)rel;
    ret->hit = found > 0;
    ret->map = ap / (double)rel;
}

double eval_ndcg_at_k(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                      size_t k)
{
    struct eval_doc_scores s;

    eval_score_docs(q, hits, n, k, &s);
    return s.ndcg;
}

double eval_recall_at_k(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                        size_t k)
{
    struct eval_doc_scores s;

    eval_score_docs(q, hits, n, k, &s);
    return s.recall;
}

double eval_mrr_at_k(const struct eval_question *q, const struct eval_hit *hits, size_t n, size_t k)
{
    struct eval_doc_scores s;

    eval_score_docs(q, hits, n, k, &s);
    return s.mrr;
}

/* ---- byte ranges ---- */

static int cmp_span(const void *a, const void *b)
{
    const struct eval_span *x = a, *y = b;

    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sort s[0..n) and merge overlapping or touching ranges in place; returns the new count. */
static size_t span_union(struct eval_span *s, size_t n)
{
    size_t m = 0;

    qsort(s, n, sizeof(*s), cmp_span);
    for (size_t i = 0; i < n; i++) {
        if (s[i].end <= s[i].start)
            continue;
        if (m && s[i].start <= s[m - 1].end) {
            if (s[i].end > s[m - 1].end)
                s[m - 1].end = s[i].end;
        } else {
            s[m++] = s[i];
        }
    }
    return m;
}

static size_t span_measure(const struct eval_span *s, size_t n)
{
    size_t total = 0;

    for (size_t i = 0; i < n; i++)
        total += s[i].end - s[i].start;
    return total;
}

/* Bytes in the intersection of two unions (each sorted and disjoint). */
static size_t span_overlap(const struct eval_span *a, size_t na, const struct eval_span *b,
                           size_t nb)
{
    size_t i = 0, j = 0, total = 0;

    while (i < na && j < nb) {
        size_t lo = a[i].start > b[j].start ? a[i].start : b[j].start;
        size_t hi = a[i].end < b[j].end ? a[i].end : b[j].end;

        if (lo < hi)
            total += hi - lo;
        if (a[i].end < b[j].end)
            i++;
        else
            j++;
    }
    return total;
}

static bool overlaps(struct eval_span a, struct eval_span b)
{
    return (a.start > b.start ? a.start : b.start) < (a.end < b.end ? a.end : b.end);
}

static bool same_doc(const struct eval_question *q, const struct eval_hit *h)
{
    return q->doc && h->doc_id && strcmp(h->doc_id, q->doc->id) == 0;
}

static struct eval_span hit_span(const struct eval_hit *h)
{
    struct eval_span s = { h->start, h->end > h->start ? h->end : h->start };

    return s;
}

/* The answer's text lies inside chunk c, within an evidence span when there is one. */
static bool contains_answer(const struct eval_question *q, struct eval_span c,
                            const struct eval_answer *a)
{
    size_t alen = strlen(a->text);

    if (a->has_span && a->exact)
        return c.start <= a->span.start && a->span.end <= c.end;
    if (!alen || c.end > q->doc->len)
        return false;
    for (size_t i = 0; i < (q->n_evidence ? q->n_evidence : 1); i++) {
        struct eval_span r = c;
        if (q->n_evidence) {
            r.start = c.start > q->evidence[i].start ? c.start : q->evidence[i].start;
            r.end = c.end < q->evidence[i].end ? c.end : q->evidence[i].end;
        }
        if (r.end > r.start && memmem(q->doc->text + r.start, r.end - r.start, a->text, alen))
            return true;
    }
    return false;
}

static bool chunk_relevant(const struct eval_question *q, struct eval_span c)
{
    for (size_t i = 0; i < q->n_evidence; i++) {
        if (overlaps(c, q->evidence[i]))
            return true;
    }
    for (size_t i = 0; i < q->n_answers; i++) {
        const struct eval_answer *a = &q->answer[i];
        if (a->has_span && c.start <= a->span.start && a->span.end <= c.end)
            return true;
    }
    return false;
}

/* hit, mrr, recall and answer_hit over the top m chunks. */
static void chunk_ranks(const struct eval_question *q, const struct eval_hit *hits, size_t m,
                        struct eval_chunk_scores *ret)
{
    size_t covered = 0;

    for (size_t i = 0; i < m; i++) {
        struct eval_span c = hit_span(&hits[i]);

        if (!same_doc(q, &hits[i]))
            continue;
        if (!ret->hit && chunk_relevant(q, c)) {
            ret->hit = 1;
            ret->mrr = 1.0 / (double)(i + 1);
        }
        for (size_t a = 0; a < q->n_answers && !ret->answer_hit; a++)
            ret->answer_hit = contains_answer(q, c, &q->answer[a]);
    }
    for (size_t e = 0; e < q->n_evidence; e++) {
        for (size_t i = 0; i < m; i++) {
            if (same_doc(q, &hits[i]) && overlaps(hit_span(&hits[i]), q->evidence[e])) {
                covered++;
                break;
            }
        }
    }
    ret->recall = q->n_evidence ? (double)covered / (double)q->n_evidence : ret->hit;
}

/* Chroma evidence recall, precision and IoU over the top m chunks. */
static void chunk_evidence(const struct eval_question *q, const struct eval_hit *hits, size_t m,
                           struct eval_chunk_scores *ret)
{
    struct eval_span *ev = xmalloc_array(q->n_evidence + 1, sizeof(*ev));
    struct eval_span *got = xmalloc_array(m + 1, sizeof(*got));
    size_t ne, ng = 0, retrieved = 0, evidence, covered;

    memcpy(ev, q->evidence, q->n_evidence * sizeof(*ev));
    ne = span_union(ev, q->n_evidence);
    for (size_t i = 0; i < m; i++) {
        struct eval_span c = hit_span(&hits[i]);
        retrieved += c.end - c.start;
        if (same_doc(q, &hits[i]))
            got[ng++] = c;
    }
    ng = span_union(got, ng);
    evidence = span_measure(ev, ne);
    covered = span_overlap(ev, ne, got, ng);
    ret->ev_recall = evidence ? (double)covered / (double)evidence : 0;
    ret->ev_precision = retrieved ? (double)covered / (double)retrieved : 0;
    ret->ev_iou = retrieved + evidence > covered ?
                      (double)covered / (double)(retrieved + evidence - covered) :
                      0;
    free(ev);
    free(got);
}

void eval_score_chunks(const struct eval_question *q, const struct eval_hit *hits, size_t n,
                       size_t k, struct eval_chunk_scores *ret)
{
    size_t m = k && k < n ? k : n;

    memset(ret, 0, sizeof(*ret));
    ret->has_answers = q->n_answers > 0;
    chunk_ranks(q, hits, m, ret);
    chunk_evidence(q, hits, m, ret);
}

double eval_precision_omega(const struct eval_question *q, const struct eval_hit *chunks, size_t n)
{
    struct eval_span *u = xmalloc_array(n + q->n_evidence + 1, sizeof(*u));
    struct eval_span *ev = xmalloc_array(q->n_evidence + 1, sizeof(*ev));
    size_t nu = 0, ne, covered, all;

    for (size_t i = 0; i < n; i++) {
        struct eval_span c = hit_span(&chunks[i]);
        if (!same_doc(q, &chunks[i]))
            continue;
        for (size_t e = 0; e < q->n_evidence; e++) {
            struct eval_span r = q->evidence[e];
            if ((c.start > r.start ? c.start : r.start) <= (c.end < r.end ? c.end : r.end)) {
                u[nu++] = c; /* closed ranges: touching counts, as in base_evaluation.py */
                break;
            }
        }
    }
    memcpy(ev, q->evidence, q->n_evidence * sizeof(*ev));
    ne = span_union(ev, q->n_evidence);
    nu = span_union(u, nu);
    covered = span_overlap(ev, ne, u, nu);
    memcpy(u + nu, ev, ne * sizeof(*ev));
    all = span_measure(u, span_union(u, nu + ne));
    free(u);
    free(ev);
    return all ? (double)covered / (double)all : 0;
}
