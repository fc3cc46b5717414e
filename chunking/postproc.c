/*
 * chunking/postproc.c - the post-processing every chunker shares
 * (ALGORITHMS.md 1.5) and the making of struct chunk.
 *
 * post_regularise: (1) gap repair: chunks are trimmed of surrounding
 * whitespace and any non-blank text between two chunks is prepended to the
 * second (trailing text is appended to the last), so every non-blank byte is
 * covered; (2) chunks over split_above tokens are re-split by the recursive
 * splitter; (3) chunks under min_tokens are merged into the next chunk when
 * the result fits merge_max, else into the previous one, until nothing
 * changes.
 *
 * post_finish counts every chunk exactly with the caller's counter. A chunk
 * over hard_max (possible only when the counter does not add up across
 * words) is re-split with exact counts, so no chunk ever exceeds hard_max.
 * Then come the page range and the heading path: the headings whose section
 * (from the line of the title to the line of the next heading of the same or
 * a higher level) contains the chunk start and whose title is not inside the
 * chunk, outermost first.
 */
#include "chunking/split.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct post_params post_params_for(const struct chunker_opts *o, enum chunker_kind k, size_t size)
{
    struct post_params pp = { o->hard_max, o->hard_max, size + size / 16 };

    if (k == CHUNKER_SENTENCE || k == CHUNKER_PARAGRAPH)
        pp.split_above = pp.split_size = size;
    if (k == CHUNKER_PAGE)
        pp.merge_max = o->hard_max;
    if (pp.merge_max > o->hard_max)
        pp.merge_max = o->hard_max;
    return pp;
}

static bool blank(const char *t, size_t a, size_t b)
{
    while (a < b && split_is_space(t[a]))
        a++;
    return a >= b;
}

/* Trim s and append it to out unless it is blank. */
static void push_trimmed(const struct split_ctx *c, struct span_list *out, struct span s)
{
    const char *t = c->doc->text;

    while (s.start < s.end && split_is_space(t[s.start]))
        s.start++;
    while (s.end > s.start && split_is_space(t[s.end - 1]))
        s.end--;
    if (s.start == s.end)
        return;
    s.n_tokens = split_span_tokens(c, &s);
    VEC_RESERVE(out, out->n + 1);
    out->item[out->n++] = s;
}

/* Step 1: trim, drop blank spans, give uncovered text to the next chunk. */
static void repair_gaps(const struct split_ctx *c, struct span_list *spans)
{
    const char *t = c->doc->text;
    size_t len = c->doc->len, covered = 0, n = spans->n;
    struct span_list out = { 0 };

    for (size_t i = 0; i < n; i++) {
        struct span s = spans->item[i];

        if (s.start > covered && !blank(t, covered, s.start))
            s.start = covered;
        if (s.end <= covered)
            continue; /* nothing new */
        push_trimmed(c, &out, s);
        covered = s.end;
    }
    if (!blank(t, covered, len)) {
        if (out.n) {
            struct span last = out.item[--out.n];

            last.end = len;
            push_trimmed(c, &out, last);
        } else {
            struct span all = { 0, len, 0, 0, 0 };

            push_trimmed(c, &out, all);
        }
    }
    span_list_release(spans);
    *spans = out;
}

/* Step 2: re-split the spans over split_above tokens. */
static void split_oversized(const struct split_ctx *c, struct span_list *spans,
                            const struct post_params *pp)
{
    struct span_list out = { 0 }, pieces = { 0 };

    for (size_t i = 0; i < spans->n; i++) {
        struct span s = spans->item[i];

        if (s.n_tokens <= pp->split_above) {
            VEC_RESERVE(&out, out.n + 1);
            out.item[out.n++] = s;
            continue;
        }
        pieces.n = 0;
        recursive_split(c, &c->tm, s.start, s.end, pp->split_size, 0, &pieces);
        for (size_t k = 0; k < pieces.n; k++)
            push_trimmed(c, &out, pieces.item[k]);
    }
    span_list_release(&pieces);
    span_list_release(spans);
    *spans = out;
}

/* Tokens of a and b merged into one span that keeps a's header row. */
static size_t merged_tokens(const struct split_ctx *c, const struct span *a, const struct span *b)
{
    struct span m = *a;

    m.end = a->end > b->end ? a->end : b->end;
    return split_span_tokens(c, &m);
}

/* One pass of step 3; returns whether anything merged. */
static bool merge_pass(const struct split_ctx *c, struct span_list *spans, size_t max)
{
    size_t min = c->opts->min_tokens, k = 0, n = spans->n;
    struct span *s = spans->item;
    bool changed = false;

    for (size_t i = 0; i < n; i++) {
        size_t t;

        if (s[i].n_tokens < min && i + 1 < n && (t = merged_tokens(c, &s[i], &s[i + 1])) <= max) {
            s[i + 1].start = s[i].start;
            s[i + 1].hdr_start = s[i].hdr_start;
            s[i + 1].hdr_end = s[i].hdr_end;
            s[i + 1].n_tokens = t;
            changed = true;
            continue;
        }
        if (s[i].n_tokens < min && k && (t = merged_tokens(c, &s[k - 1], &s[i])) <= max) {
            s[k - 1].end = s[k - 1].end > s[i].end ? s[k - 1].end : s[i].end;
            s[k - 1].n_tokens = t;
            changed = true;
            continue;
        }
        s[k++] = s[i];
    }
    spans->n = k;
    return changed;
}

void post_regularise(const struct split_ctx *c, struct span_list *spans,
                     const struct post_params *pp)
{
    repair_gaps(c, spans);
    split_oversized(c, spans, pp);
    while (c->opts->min_tokens && merge_pass(c, spans, pp->merge_max))
        ;
}

/* The chunk text: the span, after the header row for a table continuation. */
static struct chunk make_chunk(const struct split_ctx *c, const struct span *s, struct arena *arena)
{
    const char *t = c->doc->text;
    size_t hlen = s->hdr_end - s->hdr_start, len = s->end - s->start;
    bool nl = hlen && t[s->hdr_end - 1] != '\n';
    struct chunk ch = { .start = s->start, .end = s->end, .heading_path = "" };
    char *p = arena_alloc(arena, hlen + nl + len + 1);

    memcpy(p, t + s->hdr_start, hlen);
    if (nl)
        p[hlen] = '\n';
    memcpy(p + hlen + nl, t + s->start, len);
    p[hlen + nl + len] = '\0';
    ch.text = p;
    ch.len = hlen + nl + len;
    ch.n_tokens = c->opts->tok.count(c->opts->tok.ctx, ch.text, ch.len);
    return ch;
}

static void push_chunk(struct chunk_list *out, const struct chunk *ch)
{
    VEC_RESERVE(out, out->n + 1);
    out->item[out->n++] = *ch;
}

/* A chunk over hard_max by exact count: re-split it with exact counts. */
static int resplit_exact(const struct split_ctx *c, const struct span *s, struct arena *arena,
                         struct chunk_list *out, struct rag_err *err)
{
    struct span_list pieces = { 0 };
    struct tokmap exact;
    int rc = 0;

    tokmap_init_exact(&exact, c->doc->text, c->doc->len, &c->opts->tok);
    recursive_split(c, &exact, s->start, s->end, c->opts->hard_max, 0, &pieces);
    for (size_t i = 0; !rc && i < pieces.n; i++) {
        struct span p = pieces.item[i];
        struct chunk ch;

        while (p.start < p.end && split_is_space(c->doc->text[p.start]))
            p.start++;
        while (p.end > p.start && split_is_space(c->doc->text[p.end - 1]))
            p.end--;
        if (p.start == p.end)
            continue;
        p.hdr_start = p.hdr_end = p.start;
        ch = make_chunk(c, &p, arena);
        if (ch.n_tokens > c->opts->hard_max)
            rc = rag_errf(err, RAG_EINVAL,
                          "the character at byte %zu alone is %zu tokens, over hard_max %zu",
                          p.start, ch.n_tokens, c->opts->hard_max);
        else
            push_chunk(out, &ch);
    }
    span_list_release(&pieces);
    tokmap_release(&exact);
    return rc;
}

static int cmp_chunk(const void *a, const void *b)
{
    const struct chunk *x = a, *y = b;

    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The number of the last page starting at or before p (the first page if none). */
static int page_at(const struct chunk_doc *d, size_t p)
{
    size_t lo = 0, hi = d->pages.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (d->pages.item[mid].start <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d->pages.item[lo ? lo - 1 : 0].number;
}

static void set_pages(const struct chunk_doc *d, struct chunk *ch)
{
    if (!d->pages.n)
        return;
    ch->page_start = page_at(d, ch->start);
    ch->page_end = page_at(d, ch->end > ch->start ? ch->end - 1 : ch->start);
}

/* Walks the headings along chunks sorted by start. */
struct path_walk {
    size_t next;     /* the next heading to reach */
    size_t stack[6]; /* enclosing headings, levels strictly increasing */
    int depth;
    struct buf b;
    const char *prev;
};

/* Append a title with its whitespace collapsed. */
static void append_title(struct buf *b, const char *t, size_t s, size_t e)
{
    bool gap = false;
    size_t len0 = b->len;

    for (size_t p = s; p < e; p++) {
        if (split_is_space(t[p])) {
            gap = b->len > len0;
            continue;
        }
        if (gap)
            buf_appendc(b, ' ');
        gap = false;
        buf_appendc(b, t[p]);
    }
}

/* A heading's section starts with the line of its title ("## " included). */
static size_t line_start(const char *t, size_t p)
{
    while (p > 0 && t[p - 1] != '\n')
        p--;
    return p;
}

static const char *heading_path(const struct chunk_doc *d, struct path_walk *w,
                                const struct chunk *ch, struct arena *arena)
{
    const struct chunk_heading *h = d->headings.item;

    while (w->next < d->headings.n && line_start(d->text, h[w->next].start) <= ch->start) {
        while (w->depth && h[w->stack[w->depth - 1]].level >= h[w->next].level)
            w->depth--;
        w->stack[w->depth++] = w->next++;
    }
    buf_reset(&w->b);
    for (int i = 0; i < w->depth; i++) {
        const struct chunk_heading *x = &h[w->stack[i]];

        if (x->start >= ch->start && x->end <= ch->end)
            continue; /* the title is in the chunk itself */
        if (w->b.len)
            buf_appends(&w->b, " > ");
        append_title(&w->b, d->text, x->start, x->end);
    }
    if (!w->b.len)
        return "";
    if (!w->prev || strcmp(w->prev, buf_cstr(&w->b)))
        w->prev = arena_strndup(arena, w->b.data, w->b.len);
    return w->prev;
}

int post_finish(const struct split_ctx *c, struct span_list *spans, struct arena *arena,
                struct chunk_list *out, struct rag_err *err)
{
    size_t n0 = out->n, hard = c->opts->hard_max;
    struct path_walk w = { .b = BUF_INIT };
    bool resplit = false;
    int rc = 0;

    for (size_t i = 0; !rc && i < spans->n; i++) {
        struct span s = spans->item[i];
        struct chunk ch = make_chunk(c, &s, arena);

        if (ch.n_tokens > hard && s.hdr_end > s.hdr_start) {
            s.hdr_start = s.hdr_end = s.start; /* no room for the header row */
            ch = make_chunk(c, &s, arena);
        }
        if (ch.n_tokens > hard) {
            rc = resplit_exact(c, &s, arena, out, err);
            resplit = true;
            continue;
        }
        push_chunk(out, &ch);
    }
    if (rc) {
        out->n = n0;
        return rc;
    }
    if (resplit) /* pieces of a chunk may pass the start of an overlapping next one */
        qsort(out->item + n0, out->n - n0, sizeof(*out->item), cmp_chunk);
    for (size_t i = n0; i < out->n; i++) {
        set_pages(c->doc, &out->item[i]);
        out->item[i].heading_path = heading_path(c->doc, &w, &out->item[i], arena);
    }
    buf_release(&w.b);
    return 0;
}
