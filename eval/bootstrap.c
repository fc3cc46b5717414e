/*
 * eval/bootstrap.c - per-metric accumulation over questions and percentile
 * bootstrap confidence intervals, plus the PCG32 generator they use.
 *
 * Every metric is resampled with a generator seeded with the same seed, so
 * metrics with the same number of samples are resampled with the same
 * question indices (a paired bootstrap), and results are reproducible.
 */
#include "eval/internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pcg32_seed(struct pcg32 *r, uint64_t seed)
{
    r->state = 0;
    r->inc = (seed << 1) | 1u;
    pcg32_next(r);
    r->state += seed;
    pcg32_next(r);
}

uint32_t pcg32_next(struct pcg32 *r)
{
    uint64_t old = r->state;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);

    r->state = old * 6364136223846793005ull + r->inc;
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

uint32_t pcg32_below(struct pcg32 *r, uint32_t bound)
{
    /* Rejection of the low (2^32 mod bound) values keeps the draw unbiased. */
    uint32_t threshold = (uint32_t)(-bound) % bound;

    for (;;) {
        uint32_t x = pcg32_next(r);
        if (x >= threshold)
            return x % bound;
    }
}

struct metric {
    char *name;
    double *v;
    size_t n, cap;
};

struct eval_acc {
    struct metric *item;
    size_t n, cap;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* numpy.percentile's default (linear) on sorted a[0..n), q in [0, 1]. */
static double percentile(const double *a, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    double frac = pos - (double)i;

    if (i + 1 >= n)
        return a[n - 1];
    return a[i] + (a[i + 1] - a[i]) * frac;
}

void eval_bootstrap_ci(const double *v, size_t n, size_t resamples, uint64_t seed, double *ret_lo,
                       double *ret_hi)
{
    struct pcg32 rng;
    double *mean;

    *ret_lo = *ret_hi = 0;
    if (!n || !resamples)
        return;
    assert(n <= UINT32_MAX);
    mean = xmalloc_array(resamples, sizeof(*mean));
    pcg32_seed(&rng, seed);
    for (size_t b = 0; b < resamples; b++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += v[pcg32_below(&rng, (uint32_t)n)];
        mean[b] = sum / (double)n;
    }
    qsort(mean, resamples, sizeof(*mean), cmp_double);
    *ret_lo = percentile(mean, resamples, 0.025);
    *ret_hi = percentile(mean, resamples, 0.975);
    free(mean);
}

struct eval_acc *eval_acc_new(void)
{
    return xcalloc(1, sizeof(struct eval_acc));
}

void eval_acc_free(struct eval_acc *acc)
{
    if (!acc)
        return;
    for (size_t i = 0; i < acc->n; i++) {
        free(acc->item[i].name);
        free(acc->item[i].v);
    }
    free(acc->item);
    free(acc);
}

static struct metric *metric_get(struct eval_acc *acc, const char *name)
{
    struct metric *m;

    for (size_t i = 0; i < acc->n; i++) {
        if (strcmp(acc->item[i].name, name) == 0)
            return &acc->item[i];
    }
    VEC_RESERVE(acc, acc->n + 1);
    m = &acc->item[acc->n++];
    memset(m, 0, sizeof(*m));
    m->name = xstrdup(name);
    return m;
}

void eval_acc_add(struct eval_acc *acc, const char *metric, double value)
{
    struct metric *m = metric_get(acc, metric);

    m->v = grow_array(m->v, &m->cap, m->n + 1, sizeof(*m->v));
    m->v[m->n++] = value;
}

/* Add value under "<name>@k" ("<name>" when k is 0). */
static void add_at(struct eval_acc *acc, const char *name, size_t k, double value)
{
    char key[64];

    if (k)
        snprintf(key, sizeof(key), "%s@%zu", name, k);
    else
        snprintf(key, sizeof(key), "%s", name);
    eval_acc_add(acc, key, value);
}

void eval_acc_add_docs(struct eval_acc *acc, const struct eval_doc_scores *s, size_t k)
{
    add_at(acc, "ndcg", k, s->ndcg);
    add_at(acc, "recall", k, s->recall);
    add_at(acc, "mrr", k, s->mrr);
    add_at(acc, "hit", k, s->hit);
    add_at(acc, "map", k, s->map);
}

void eval_acc_add_chunks(struct eval_acc *acc, const struct eval_chunk_scores *s, size_t k)
{
    add_at(acc, "chunk_hit", k, s->hit);
    add_at(acc, "chunk_recall", k, s->recall);
    add_at(acc, "chunk_mrr", k, s->mrr);
    if (s->has_answers)
        add_at(acc, "answer_hit", k, s->answer_hit);
    add_at(acc, "evidence_recall", k, s->ev_recall);
    add_at(acc, "evidence_precision", k, s->ev_precision);
    add_at(acc, "evidence_iou", k, s->ev_iou);
}

void eval_acc_add_answer(struct eval_acc *acc, const struct eval_answer_scores *s)
{
    if (s->scored) {
        eval_acc_add(acc, "em", s->em);
        eval_acc_add(acc, "f1", s->f1);
    }
    if (s->is_impossible)
        eval_acc_add(acc, "abstention_acc", s->abstained);
    else
        eval_acc_add(acc, "false_abstention", s->abstained);
}

size_t eval_acc_count(const struct eval_acc *acc)
{
    return acc->n;
}

static void stat_of(const struct metric *m, struct eval_stat *ret)
{
    double sum = 0;

    for (size_t i = 0; i < m->n; i++)
        sum += m->v[i];
    ret->name = m->name;
    ret->n = m->n;
    ret->mean = m->n ? sum / (double)m->n : 0;
    eval_bootstrap_ci(m->v, m->n, EVAL_BOOTSTRAP_RESAMPLES, EVAL_BOOTSTRAP_SEED, &ret->ci_lo,
                      &ret->ci_hi);
}

void eval_acc_stat(const struct eval_acc *acc, size_t i, struct eval_stat *ret)
{
    assert(i < acc->n);
    stat_of(&acc->item[i], ret);
}

int eval_acc_find(const struct eval_acc *acc, const char *metric, struct eval_stat *ret,
                  struct rag_err *err)
{
    for (size_t i = 0; i < acc->n; i++) {
        if (strcmp(acc->item[i].name, metric) == 0) {
            stat_of(&acc->item[i], ret);
            return 0;
        }
    }
    return rag_errf(err, RAG_ENOTFOUND, "no samples for metric '%s'", metric);
}
