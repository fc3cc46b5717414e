/*
 * retrieval/fusion.c - reciprocal rank fusion and a weighted score mix.
 *
 * RRF (Cormack, Clarke and Buettcher, SIGIR 2009): score(d) = sum over the
 * lists that hold d of 1 / (k + rank), rank counted from 1, k = 60 by
 * default. The weighted mix min-max normalises each list's scores to
 * [0, 1] and sums weight * normalised score; an id absent from a list gets
 * nothing from it. Entries are merged by sorting (id, list) pairs, so the
 * cost is O(N log N) for N entries in all lists.
 */
#include "retrieval/retrieval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    int64_t id;
    size_t list, rank; /* rank from 1 */
    double score;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    if (x->list != y->list)
        return x->list < y->list ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static size_t best_rank(const struct retr_fused *f)
{
    size_t best = SIZE_MAX;

    for (size_t i = 0; i < RETR_FUSE_MAX_LISTS; i++)
        if (f->rank[i] && f->rank[i] < best)
            best = f->rank[i];
    return best;
}

static int cmp_fused(const void *a, const void *b)
{
    const struct retr_fused *x = a, *y = b;
    size_t rx = best_rank(x), ry = best_rank(y);

    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int check_opts(size_t n_lists, const struct retr_fuse_opts *o, struct rag_err *err)
{
    if (n_lists > RETR_FUSE_MAX_LISTS)
        return rag_errf(err, RAG_EINVAL, "fusion: %zu lists, at most %d", n_lists,
                        RETR_FUSE_MAX_LISTS);
    if (!isfinite(o->k) || o->k < 0)
        return rag_errf(err, RAG_EINVAL, "fusion: bad rrf constant %g", o->k);
    for (size_t i = 0; i < n_lists; i++)
        if (!isfinite(o->weight[i]) || o->weight[i] < 0)
            return rag_errf(err, RAG_EINVAL, "fusion: bad weight %g for list %zu", o->weight[i], i);
    return 0;
}

/* Min and max score of a list (0 and 0 when empty). */
static void score_range(const struct retr_list *l, double *lo, double *hi)
{
    *lo = l->n ? l->item[0].score : 0;
    *hi = *lo;
    for (size_t i = 1; i < l->n; i++) {
        *lo = l->item[i].score < *lo ? l->item[i].score : *lo;
        *hi = l->item[i].score > *hi ? l->item[i].score : *hi;
    }
}

static double contribution(const struct retr_fuse_opts *o, const double *lo, const double *hi,
                           const struct entry *e)
{
    size_t l = e->list;

    if (o->method == RETR_FUSE_RRF)
        return 1.0 / ((o->k ? o->k : RETR_RRF_K) + (double)e->rank);
    return o->weight[l] * (hi[l] > lo[l] ? (e->score - lo[l]) / (hi[l] - lo[l]) : 1.0);
}

/* Collect every entry of every list, tagged with its list and rank. */
static struct entry *collect(const struct retr_list *lists, size_t n_lists, size_t *ret_n)
{
    size_t n = 0, k = 0;
    struct entry *e;

    for (size_t l = 0; l < n_lists; l++)
        n += lists[l].n;
    e = xmalloc_array(n ? n : 1, sizeof(*e));
    for (size_t l = 0; l < n_lists; l++)
        for (size_t i = 0; i < lists[l].n; i++)
            e[k++] = (struct entry){ lists[l].item[i].id, l, i + 1, lists[l].item[i].score };
    qsort(e, n, sizeof(*e), cmp_entry);
    *ret_n = n;
    return e;
}

int retr_fuse(const struct retr_list *lists, size_t n_lists, const struct retr_fuse_opts *opts,
              struct retr_fused *out, size_t *ret_n, struct rag_err *err)
{
    double lo[RETR_FUSE_MAX_LISTS], hi[RETR_FUSE_MAX_LISTS];
    struct retr_fused *f = NULL;
    struct entry *e;
    size_t n, m = 0;
    int rc = check_opts(n_lists, opts, err);

    if (rc)
        return rc;
    for (size_t l = 0; l < n_lists; l++)
        score_range(&lists[l], &lo[l], &hi[l]);
    e = collect(lists, n_lists, &n);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || e[i].id != e[i - 1].id) {
            f = &out[m++];
            memset(f, 0, sizeof(*f));
            f->id = e[i].id;
        } else if (e[i].list == e[i - 1].list) {
            continue; /* a repeat inside one list: its first position counts */
        }
        f->rank[e[i].list] = e[i].rank;
        f->source_score[e[i].list] = e[i].score;
        f->score += contribution(opts, lo, hi, &e[i]);
    }
    free(e);
    qsort(out, m, sizeof(*out), cmp_fused);
    *ret_n = m;
    return 0;
}
