/*
 * chunking/structure.c - chunkers over the document's structure: structure
 * (blocks packed up to max_tokens), paragraph (one block per chunk) and page
 * (one page per chunk).
 *
 * The structure chunker first turns blocks into items: a block that fits is
 * one item; an oversized paragraph or list is cut by the recursive splitter;
 * an oversized table becomes its header row plus one item per row, and a row
 * that starts a chunk repeats the header row; a code block is never cut
 * unless it exceeds hard_max, and a code block over max_tokens is a chunk of
 * its own. Items are then packed greedily. Headings (and a table's header
 * row) are glued to what follows: a chunk never ends with one when a body
 * follows, and a heading may take its body past max_tokens up to hard_max.
 */
#include "chunking/split.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum item_kind {
    ITEM_BODY,
    ITEM_HEAD, /* a heading or a table header row: glued to the next item */
    ITEM_BIG,  /* over max_tokens and never cut: a chunk of its own */
};

struct item {
    size_t start, end;
    size_t hdr_start, hdr_end; /* header row repeated when this item starts a chunk */
    enum item_kind kind;
};

struct items {
    struct item *item;
    size_t n, cap;
};

static void add_item(struct items *l, size_t start, size_t end, enum item_kind kind)
{
    VEC_RESERVE(l, l->n + 1);
    l->item[l->n++] = (struct item){ start, end, start, start, kind };
}

/* Recursive pieces of text[a, b) at size tokens as items of one kind. */
static void add_pieces(const struct split_ctx *c, struct items *l, size_t a, size_t b, size_t size,
                       enum item_kind kind)
{
    struct span_list pieces = { 0 };

    recursive_split(c, &c->tm, a, b, size, 0, &pieces);
    for (size_t i = 0; i < pieces.n; i++)
        add_item(l, pieces.item[i].start, pieces.item[i].end, kind);
    span_list_release(&pieces);
}

/* An oversized table: the header row, then rows (lines) that repeat it. */
static void add_table(const struct split_ctx *c, struct items *l, const struct chunk_block *b)
{
    const struct tokmap *m = &c->tm;
    const char *t = c->doc->text;
    size_t p = b->header_end, hdr_tok = 0;

    if (b->header_end > b->start) {
        add_item(l, b->start, b->header_end, ITEM_HEAD);
        hdr_tok = tokmap_count(m, b->start, b->header_end) - m->base;
    }
    while (p < b->end) {
        const char *nl;
        size_t e, n;

        while (p < b->end && split_is_space(t[p]))
            p++;
        if (p >= b->end)
            break;
        nl = memchr(t + p, '\n', b->end - p);
        e = nl ? (size_t)(nl - t) : b->end;
        n = tokmap_count(m, p, e);

        if (n + hdr_tok > c->opts->hard_max) {
            add_pieces(c, l, p, e, c->opts->hard_max, ITEM_BIG);
        } else {
            add_item(l, p, e, n + hdr_tok > c->opts->max_tokens ? ITEM_BIG : ITEM_BODY);
            l->item[l->n - 1].hdr_start = b->start;
            l->item[l->n - 1].hdr_end = b->header_end;
        }
        p = e;
    }
}

static void add_block(const struct split_ctx *c, struct items *l, const struct chunk_block *b)
{
    size_t n = tokmap_count(&c->tm, b->start, b->end), max = c->opts->max_tokens;
    size_t hard = c->opts->hard_max;

    if (b->kind == CHUNK_BLOCK_HEADING)
        add_item(l, b->start, b->end, n > max ? ITEM_BIG : ITEM_HEAD);
    else if (n <= max)
        add_item(l, b->start, b->end, ITEM_BODY);
    else if (b->kind == CHUNK_BLOCK_CODE)
        add_pieces(c, l, b->start, b->end, hard, ITEM_BIG);
    else if (b->kind == CHUNK_BLOCK_TABLE)
        add_table(c, l, b);
    else
        add_pieces(c, l, b->start, b->end, max, ITEM_BODY);
}

/* The chunk being packed. */
struct pack {
    struct span cur;
    bool open;
    size_t head; /* start of the trailing run of glued items, or SIZE_MAX */
    bool body;   /* cur has a body item before that run */
};

static void emit(struct span_list *out, size_t start, size_t end, size_t hdr_start, size_t hdr_end)
{
    if (end <= start)
        return;
    span_push(out, start, end);
    out->item[out->n - 1].hdr_start = hdr_start;
    out->item[out->n - 1].hdr_end = hdr_end;
}

static void pack_close(struct pack *k, struct span_list *out)
{
    if (k->open)
        emit(out, k->cur.start, k->cur.end, k->cur.hdr_start, k->cur.hdr_end);
    k->open = false;
}

/* Add it to the open chunk (or open one with it). */
static void pack_add(struct pack *k, const struct item *it)
{
    if (!k->open) {
        k->cur = (struct span){ it->start, it->end, it->hdr_start, it->hdr_end, 0 };
        k->open = true;
        k->head = SIZE_MAX;
        k->body = false;
    }
    k->cur.end = it->end;
    if (it->kind == ITEM_HEAD) {
        if (k->head == SIZE_MAX)
            k->head = it->start;
    } else {
        k->head = SIZE_MAX;
        k->body = true;
    }
}

static size_t span_tokens_to(const struct split_ctx *c, const struct span *cur, size_t end)
{
    struct span s = *cur;

    s.end = end;
    return split_span_tokens(c, &s);
}

/* Emit what precedes the trailing glued run; the run stays open. */
static void pack_cut_before_head(struct pack *k, struct span_list *out)
{
    if (k->head == SIZE_MAX || k->head == k->cur.start)
        return;
    emit(out, k->cur.start, k->head, k->cur.hdr_start, k->cur.hdr_end);
    k->cur.start = k->cur.hdr_start = k->cur.hdr_end = k->head;
    k->body = false;
}

/* An item over max_tokens: a chunk of its own, with the glued run before it if that fits. */
static void pack_big(const struct split_ctx *c, struct pack *k, const struct item *it,
                     struct span_list *out)
{
    if (k->open && k->head != SIZE_MAX) {
        pack_cut_before_head(k, out);
        if (span_tokens_to(c, &k->cur, it->end) <= c->opts->hard_max) {
            pack_add(k, it);
            pack_close(k, out);
            return;
        }
    }
    pack_close(k, out);
    emit(out, it->start, it->end, it->hdr_start, it->hdr_end);
}

static void pack_item(const struct split_ctx *c, struct pack *k, const struct item *it,
                      struct span_list *out)
{
    if (it->kind == ITEM_BIG) {
        pack_big(c, k, it, out);
        return;
    }
    if (!k->open || span_tokens_to(c, &k->cur, it->end) <= c->opts->max_tokens) {
        pack_add(k, it);
        return;
    }
    if (k->head != SIZE_MAX) { /* keep the heading with its body, up to hard_max */
        pack_cut_before_head(k, out);
        if (span_tokens_to(c, &k->cur, it->end) <= c->opts->hard_max) {
            pack_add(k, it);
            return;
        }
    }
    pack_close(k, out);
    pack_add(k, it);
}

void structure_spans(const struct split_ctx *c, struct span_list *out)
{
    struct items items = { 0 };
    struct pack k = { .open = false };

    for (size_t i = 0; i < c->n_blocks; i++)
        add_block(c, &items, &c->block[i]);
    for (size_t i = 0; i < items.n; i++)
        pack_item(c, &k, &items.item[i], out);
    pack_close(&k, out);
    free(items.item);
}

/* One block per chunk; headings are glued to the block after them. */
void paragraph_spans(const struct split_ctx *c, struct span_list *out)
{
    size_t start = SIZE_MAX;

    for (size_t i = 0; i < c->n_blocks; i++) {
        const struct chunk_block *b = &c->block[i];

        if (start == SIZE_MAX)
            start = b->start;
        if (b->kind == CHUNK_BLOCK_HEADING && i + 1 < c->n_blocks)
            continue;
        span_push(out, start, b->end);
        start = SIZE_MAX;
    }
}

/* One chunk per page; the whole text when the document has no pages. */
void page_spans(const struct split_ctx *c, struct span_list *out)
{
    const struct chunk_doc *d = c->doc;

    if (!d->pages.n) {
        span_push(out, 0, d->len);
        return;
    }
    for (size_t i = 0; i < d->pages.n; i++)
        span_push(out, d->pages.item[i].start, d->pages.item[i].end);
}
