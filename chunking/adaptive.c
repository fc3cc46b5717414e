/*
 * chunking/adaptive.c - CHUNKER_AUTO: run several chunkers on a document,
 * post-process each the same way, score each with the intrinsic metrics of
 * ALGORITHMS.md 1.6 and keep the best (1.7).
 *
 * The candidates follow the paper's pool: recursive at max_tokens, recursive
 * at about twice that (capped at hard_max), page when the document has pages,
 * and structure. Only the metrics that need no model are computed here: SC
 * (size compliance, bounds [min_tokens, hard_max]) and BI (block integrity,
 * tolerance 5 bytes). The total is the mean over the defined metrics, so
 * ICC, DCC and RC plug into struct chunk_scores and the mean when an embedder
 * and a coreference model are wired in. Ties keep the earlier candidate.
 */
#include "chunking/split.h"

#include <math.h>
#include <stdlib.h>

#define BI_TOLERANCE 5

struct bounds {
    size_t *item;
    size_t n, cap;
};

static void push_bound(struct bounds *b, size_t p)
{
    if (b->n && b->item[b->n - 1] >= p)
        return;
    VEC_RESERVE(b, b->n + 1);
    b->item[b->n++] = p;
}

/*
 * Gold block bounds (1.1): 0, the start of every block but the first, and the
 * text length; no bound after a heading, nor between two paragraphs that are
 * both under min_tokens.
 */
static void gold_bounds(const struct split_ctx *c, struct bounds *b)
{
    const struct chunk_block *bl = c->block;
    size_t min = c->opts->min_tokens;

    push_bound(b, 0);
    for (size_t i = 1; i < c->n_blocks; i++) {
        if (bl[i - 1].kind == CHUNK_BLOCK_HEADING)
            continue;
        if (bl[i - 1].kind == CHUNK_BLOCK_PARAGRAPH && bl[i].kind == CHUNK_BLOCK_PARAGRAPH &&
            tokmap_count(&c->tm, bl[i - 1].start, bl[i - 1].end) < min &&
            tokmap_count(&c->tm, bl[i].start, bl[i].end) < min)
            continue;
        push_bound(b, bl[i].start);
    }
    push_bound(b, c->doc->len);
}

/* BI: the share of gold blocks that no chunk start (but the first) cuts. */
static double block_integrity(const struct split_ctx *c, const struct span *s, size_t n)
{
    struct bounds b = { 0 };
    size_t k = 1, unbroken = 0, n_blocks;

    if (!n)
        return NAN;
    if (n == 1)
        return 1.0;
    gold_bounds(c, &b);
    n_blocks = b.n - 1;
    for (size_t j = 0; j < n_blocks; j++) {
        size_t lo = b.item[j], hi = b.item[j + 1];

        while (k < n && s[k].start <= lo + BI_TOLERANCE)
            k++;
        unbroken += !(k < n && s[k].start < hi && hi - s[k].start > BI_TOLERANCE);
    }
    free(b.item);
    return n_blocks ? (double)unbroken / (double)n_blocks : NAN;
}

/* SC: the share of chunks whose size is within [min_tokens, hard_max]. */
static double size_compliance(const struct split_ctx *c, const struct span *s, size_t n)
{
    size_t bad = 0;

    if (!n)
        return NAN;
    for (size_t i = 0; i < n; i++)
        bad += s[i].n_tokens < c->opts->min_tokens || s[i].n_tokens > c->opts->hard_max;
    return 1.0 - (double)bad / (double)n;
}

/* The mean of the defined metrics, equal weights (1.7); NAN when none is defined. */
static double mean_score(const struct chunk_scores *r)
{
    const double v[] = { r->sc, r->bi, r->icc, r->dcc, r->rc };
    double sum = 0;
    int n = 0;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        if (!isnan(v[i])) {
            sum += v[i];
            n++;
        }
    }
    return n ? sum / n : NAN;
}

void adaptive_score(const struct split_ctx *c, const struct span *s, size_t n,
                    struct chunk_scores *ret)
{
    ret->sc = size_compliance(c, s, n);
    ret->bi = block_integrity(c, s, n);
    ret->icc = ret->dcc = ret->rc = NAN;
    ret->total = mean_score(ret);
}

struct candidate {
    enum chunker_kind kind;
    size_t size;
};

static size_t candidates(const struct split_ctx *c, struct candidate *cand)
{
    const struct chunker_opts *o = c->opts;
    size_t n = 0, big = 2 * o->max_tokens < o->hard_max ? 2 * o->max_tokens : o->hard_max;

    cand[n++] = (struct candidate){ CHUNKER_RECURSIVE, o->max_tokens };
    if (big > o->max_tokens)
        cand[n++] = (struct candidate){ CHUNKER_RECURSIVE, big };
    if (c->doc->pages.n)
        cand[n++] = (struct candidate){ CHUNKER_PAGE, o->hard_max };
    cand[n++] = (struct candidate){ CHUNKER_STRUCTURE, o->max_tokens };
    return n;
}

enum chunker_kind adaptive_spans(const struct split_ctx *c, struct span_list *out)
{
    struct candidate cand[4];
    size_t n = candidates(c, cand), best = 0;
    double best_total = NAN;

    for (size_t i = 0; i < n; i++) {
        struct post_params pp = post_params_for(c->opts, cand[i].kind, cand[i].size);
        struct span_list spans = { 0 };
        struct chunk_scores sc;

        split_raw(c, cand[i].kind, cand[i].size, &spans);
        post_regularise(c, &spans, &pp);
        adaptive_score(c, spans.item, spans.n, &sc);
        RAG_DEBUG("chunking: auto candidate %s/%zu: %zu chunks, sc %.3f bi %.3f total %.3f",
                  chunker_name(cand[i].kind), cand[i].size, spans.n, sc.sc, sc.bi, sc.total);
        if (i == 0 || sc.total > best_total || (isnan(best_total) && !isnan(sc.total))) {
            span_list_release(out);
            *out = spans;
            best = i;
            best_total = sc.total;
        } else {
            span_list_release(&spans);
        }
    }
    return cand[best].kind;
}
