/*
 * chunking/chunker.c - the chunker half of chunking.h: names, option and
 * document checks, the per-call context and chunk_split's dispatch.
 *
 * Every chunker produces raw spans; the same post-processing (postproc.c)
 * then repairs gaps, splits oversized and merges undersized spans, and
 * post_finish counts each chunk exactly, enforces hard_max and fills in pages
 * and heading paths. Documents without structural blocks get blank-line
 * paragraphs as blocks, so structure, paragraph and the block-integrity
 * metric work on plain text too.
 */
#include "chunking/chunking.h"

#include <stdlib.h>
#include <string.h>

#include "chunking/split.h"

static const char *const kind_names[] = {
    [CHUNKER_FIXED] = "fixed", [CHUNKER_SENTENCE] = "sentence",   [CHUNKER_RECURSIVE] = "recursive",
    [CHUNKER_PAGE] = "page",   [CHUNKER_STRUCTURE] = "structure", [CHUNKER_PARAGRAPH] = "paragraph",
    [CHUNKER_AUTO] = "auto",
};
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *chunker_name(enum chunker_kind k)
{
    return (size_t)k < N_KINDS ? kind_names[k] : "unknown";
}

int chunker_from_name(const char *name, enum chunker_kind *ret, struct rag_err *err)
{
    for (size_t i = 0; i < N_KINDS; i++) {
        if (!strcmp(name, kind_names[i])) {
            *ret = (enum chunker_kind)i;
            return 0;
        }
    }
    return rag_errf(err, RAG_EINVAL, "unknown chunker '%s'", name);
}

void chunk_list_release(struct chunk_list *l)
{
    if (!l)
        return;
    free(l->item);
    l->item = NULL;
    l->n = l->cap = 0;
}

static int check_opts(const struct chunker_opts *o, struct rag_err *err)
{
    if ((size_t)o->kind >= N_KINDS)
        return rag_errf(err, RAG_EINVAL, "unknown chunker kind %d", (int)o->kind);
    if (!o->tok.count)
        return rag_errf(err, RAG_EINVAL, "chunker options: no token counter");
    if (!o->max_tokens)
        return rag_errf(err, RAG_EINVAL, "chunker options: max_tokens must be at least 1");
    if (o->hard_max < o->max_tokens)
        return rag_errf(err, RAG_EINVAL, "chunker options: hard_max %zu is below max_tokens %zu",
                        o->hard_max, o->max_tokens);
    if (o->min_tokens > o->max_tokens)
        return rag_errf(err, RAG_EINVAL, "chunker options: min_tokens %zu is above max_tokens %zu",
                        o->min_tokens, o->max_tokens);
    if (o->overlap >= o->max_tokens)
        return rag_errf(err, RAG_EINVAL,
                        "chunker options: overlap %zu must be below max_tokens %zu", o->overlap,
                        o->max_tokens);
    return 0;
}

static bool on_char(const struct chunk_doc *d, size_t p)
{
    return p >= d->len || ((unsigned char)d->text[p] & 0xc0) != 0x80;
}

/* Spans of one kind of part: in range, on characters, starts in order. */
static int check_span(const struct chunk_doc *d, const char *what, size_t i, size_t start,
                      size_t end, size_t prev_start, struct rag_err *err)
{
    if (start > end || end > d->len || start < prev_start)
        return rag_errf(err, RAG_EINVAL, "document %s %zu [%zu, %zu) is out of range or order",
                        what, i, start, end);
    if (!on_char(d, start) || !on_char(d, end))
        return rag_errf(err, RAG_EINVAL, "document %s %zu [%zu, %zu) cuts a UTF-8 character", what,
                        i, start, end);
    return 0;
}

static int check_doc(const struct chunk_doc *d, struct rag_err *err)
{
    size_t bad = utf8_valid_prefix(d->text, d->len), prev = 0;
    int rc = 0;

    if (bad < d->len)
        return rag_errf(err, RAG_EINVAL, "document text is not valid UTF-8 at byte %zu", bad);
    for (size_t i = 0; !rc && i < d->blocks.n; i++) {
        const struct chunk_block *b = &d->blocks.item[i];

        rc = check_span(d, "block", i, b->start, b->end, prev, err);
        if (!rc && (b->header_end < b->start || b->header_end > b->end))
            rc = rag_errf(err, RAG_EINVAL, "document block %zu has a bad header row", i);
        prev = b->end;
    }
    for (size_t i = 0; !rc && i < d->headings.n; i++) {
        const struct chunk_heading *h = &d->headings.item[i];

        rc = check_span(d, "heading", i, h->start, h->end, i ? d->headings.item[i - 1].start : 0,
                        err);
        if (!rc && (h->level < 1 || h->level > 6))
            rc = rag_errf(err, RAG_EINVAL, "document heading %zu has level %d", i, h->level);
    }
    for (size_t i = 0; !rc && i < d->pages.n; i++)
        rc = check_span(d, "page", i, d->pages.item[i].start, d->pages.item[i].end,
                        i ? d->pages.item[i - 1].start : 0, err);
    return rc;
}

/* The end of the blank line(s) starting at the newline t[p], or p when none. */
static size_t blank_run_end(const char *t, size_t len, size_t p)
{
    size_t q = p + 1, end = p;

    while (q < len && (t[q] == ' ' || t[q] == '\t' || t[q] == '\r' || t[q] == '\n')) {
        if (t[q] == '\n')
            end = q + 1;
        q++;
    }
    return end;
}

/* The end of the paragraph starting at s: the newline before a blank line, or len. */
static size_t para_end(const char *t, size_t len, size_t s)
{
    const char *nl;

    for (size_t p = s; (nl = memchr(t + p, '\n', len - p)); p = (size_t)(nl - t) + 1) {
        size_t q = (size_t)(nl - t);

        if (blank_run_end(t, len, q) > q)
            return q;
    }
    return len;
}

/* Blank-line paragraphs as blocks, for documents that come without blocks. */
static void derive_paragraphs(struct split_ctx *c)
{
    const char *t = c->doc->text;
    size_t len = c->doc->len, p = 0, n = 0, cap = 0;

    while (p < len) {
        size_t s = p, e;

        while (s < len && split_is_space(t[s]))
            s++;
        if (s >= len)
            break;
        e = para_end(t, len, s);
        p = e;
        while (e > s && split_is_space(t[e - 1]))
            e--;
        c->own_blocks = grow_array(c->own_blocks, &cap, n + 1, sizeof(*c->own_blocks));
        c->own_blocks[n++] = (struct chunk_block){ .start = s, .end = e, .header_end = s };
    }
    c->block = c->own_blocks;
    c->n_blocks = n;
}

int split_ctx_init(struct split_ctx *c, const struct chunk_doc *doc,
                   const struct chunker_opts *opts, struct rag_err *err)
{
    int rc;

    memset(c, 0, sizeof(*c));
    rc = check_opts(opts, err);
    if (!rc)
        rc = check_doc(doc, err);
    if (rc)
        return rc;
    c->doc = doc;
    c->opts = opts;
    rc = recursive_begin(c, err);
    if (rc)
        return rc;
    tokmap_init(&c->tm, doc->text, doc->len, &opts->tok);
    c->block = doc->blocks.item;
    c->n_blocks = doc->blocks.n;
    if (!doc->blocks.n)
        derive_paragraphs(c);
    return 0;
}

void split_ctx_release(struct split_ctx *c)
{
    recursive_end(c);
    tokmap_release(&c->tm);
    free(c->own_blocks);
    c->own_blocks = NULL;
}

size_t split_span_tokens(const struct split_ctx *c, const struct span *s)
{
    size_t n = tokmap_count(&c->tm, s->start, s->end);

    if (s->hdr_end > s->hdr_start)
        n += tokmap_count(&c->tm, s->hdr_start, s->hdr_end) - c->tm.base;
    return n;
}

void split_raw(const struct split_ctx *c, enum chunker_kind k, size_t size, struct span_list *out)
{
    switch (k) {
    case CHUNKER_FIXED:
        fixed_spans(c, out);
        break;
    case CHUNKER_SENTENCE:
        sentence_spans(c, out);
        break;
    case CHUNKER_RECURSIVE:
        recursive_split(c, &c->tm, 0, c->doc->len, size, c->opts->overlap, out);
        break;
    case CHUNKER_PAGE:
        page_spans(c, out);
        break;
    case CHUNKER_STRUCTURE:
        structure_spans(c, out);
        break;
    case CHUNKER_PARAGRAPH:
        paragraph_spans(c, out);
        break;
    case CHUNKER_AUTO:
        break;
    }
}

int chunk_split(const struct chunk_doc *doc, const struct chunker_opts *opts, struct arena *arena,
                struct chunk_list *out, enum chunker_kind *ret_kind, struct rag_err *err)
{
    struct span_list spans = { 0 };
    enum chunker_kind kind = opts->kind;
    struct split_ctx c;
    int rc = split_ctx_init(&c, doc, opts, err);

    if (rc)
        goto out;
    if (kind == CHUNKER_AUTO) {
        kind = adaptive_spans(&c, &spans);
    } else {
        struct post_params pp = post_params_for(opts, kind, opts->max_tokens);

        split_raw(&c, kind, opts->max_tokens, &spans);
        post_regularise(&c, &spans, &pp);
    }
    rc = post_finish(&c, &spans, arena, out, err);
    if (!rc && ret_kind)
        *ret_kind = kind;
out:
    span_list_release(&spans);
    split_ctx_release(&c);
    return rc;
}

int chunk_score(const struct chunk_doc *doc, const struct chunker_opts *opts,
                const struct chunk *chunks, size_t n, struct chunk_scores *ret, struct rag_err *err)
{
    struct span_list spans = { 0 };
    struct split_ctx c;
    int rc = split_ctx_init(&c, doc, opts, err);

    if (!rc) {
        for (size_t i = 0; i < n; i++) {
            span_push(&spans, chunks[i].start, chunks[i].end);
            spans.item[i].n_tokens = chunks[i].n_tokens;
        }
        adaptive_score(&c, spans.item, spans.n, ret);
    }
    span_list_release(&spans);
    split_ctx_release(&c);
    return rc;
}
