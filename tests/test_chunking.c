/*
 * tests/test_chunking.c - the chunkers: invariants on real documents for
 * every chunker (assert_sane_chunk_list), golden chunk boundaries, and
 * targeted behaviour: headings glued to bodies, code blocks and table rows
 * never cut, table header rows repeated, the 14 separators, overlap, Unicode
 * boundaries, hard_max with odd counters, scores and the adaptive choice.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunking/chunking.h"
#include "tests/testutil.h"

static const enum chunker_kind all_kinds[] = {
    CHUNKER_FIXED,     CHUNKER_SENTENCE,  CHUNKER_RECURSIVE, CHUNKER_PAGE,
    CHUNKER_STRUCTURE, CHUNKER_PARAGRAPH, CHUNKER_AUTO,
};
#define N_KINDS (sizeof(all_kinds) / sizeof(all_kinds[0]))

/* ---- documents ---- */

static void doc_text(struct chunk_doc *d, const char *text)
{
    memset(d, 0, sizeof(*d));
    d->text = xstrdup(text);
    d->len = strlen(text);
    d->format = CHUNK_FORMAT_TEXT;
}

static void doc_parse(struct chunk_doc *d, const char *text, enum chunk_format f)
{
    struct rag_err err;

    ck_assert_msg(chunk_doc_parse(d, text, strlen(text), f, "test", &err) == 0, "%s", err.msg);
}

static void doc_load(struct chunk_doc *d, const char *rel)
{
    struct rag_err err;
    char path[4096];

    test_source_path(rel, path, sizeof(path));
    ck_assert_msg(chunk_doc_read(d, path, 0, &err) == 0, "%s", err.msg);
}

static void doc_add_page(struct chunk_doc *d, size_t start, size_t end)
{
    VEC_RESERVE(&d->pages, d->pages.n + 1);
    d->pages.item[d->pages.n] = (struct chunk_page){ start, end, (int)d->pages.n + 1 };
    d->pages.n++;
}

static void doc_add_block(struct chunk_doc *d, size_t start, size_t end)
{
    VEC_RESERVE(&d->blocks, d->blocks.n + 1);
    d->blocks.item[d->blocks.n++] =
        (struct chunk_block){ .start = start, .end = end, .header_end = start };
}

static struct chunker_opts opts_of(enum chunker_kind k, size_t max, size_t min, size_t hard,
                                   size_t overlap)
{
    struct chunker_opts o = CHUNKER_OPTS_DEFAULT;

    o.kind = k;
    o.max_tokens = max;
    o.min_tokens = min;
    o.hard_max = hard;
    o.overlap = overlap;
    return o;
}

/* Offset of the first occurrence of s in the doc text. */
static size_t pos_of(const struct chunk_doc *d, const char *s)
{
    const char *p = strstr(d->text, s);

    ck_assert_msg(p != NULL, "'%s' not in the text", s);
    return (size_t)(p - d->text);
}

/* ---- invariants ---- */

static bool on_char(const struct chunk_doc *d, size_t p)
{
    return p >= d->len || ((unsigned char)d->text[p] & 0xc0) != 0x80;
}

/* Append s[0..n) trimmed, with each whitespace run as one space. */
static void append_collapsed(struct buf *b, const char *s, size_t n)
{
    bool pending = false, any = false;

    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i])) {
            pending = any;
            continue;
        }
        if (pending)
            buf_appendc(b, ' ');
        buf_appendc(b, s[i]);
        pending = false;
        any = true;
    }
}

/* The heading path by definition: sections run to the next heading of level <= own. */
static void expected_path(const struct chunk_doc *d, const struct chunk *c, struct buf *b)
{
    const struct chunk_heading *h = d->headings.item;

    buf_reset(b);
    for (size_t k = 0; k < d->headings.n; k++) {
        size_t end = d->len;

        for (size_t j = k + 1; j < d->headings.n; j++) {
            if (h[j].level <= h[k].level) {
                end = h[j].start;
                break;
            }
        }
        if (h[k].start > c->start || c->start >= end)
            continue;
        if (h[k].start >= c->start && h[k].end <= c->end)
            continue;
        if (b->len)
            buf_appends(b, " > ");
        append_collapsed(b, d->text + h[k].start, h[k].end - h[k].start);
    }
}

static int page_containing(const struct chunk_doc *d, size_t p)
{
    for (size_t i = 0; i < d->pages.n; i++) {
        if (d->pages.item[i].start <= p && p < d->pages.item[i].end)
            return d->pages.item[i].number;
    }
    return -1;
}

/* A table continuation: text is a table's header row, a newline, then the span. */
static void assert_table_prefix(const struct chunk_doc *d, const struct chunk *c)
{
    size_t slice = c->end - c->start;

    ck_assert_uint_gt(c->len, slice);
    ck_assert_mem_eq(c->text + c->len - slice, d->text + c->start, slice);
    for (size_t i = 0; i < d->blocks.n; i++) {
        const struct chunk_block *b = &d->blocks.item[i];
        size_t hl = b->header_end - b->start;

        if (b->kind != CHUNK_BLOCK_TABLE || c->start < b->header_end || c->start >= b->end)
            continue;
        ck_assert_uint_eq(c->len - slice, hl + 1);
        ck_assert_mem_eq(c->text, d->text + b->start, hl);
        ck_assert_int_eq(c->text[hl], '\n');
        return;
    }
    ck_abort_msg("chunk %zu has a prefix but starts in no table", c->start);
}

static void assert_sane_chunk(const struct chunk_doc *d, const struct chunker_opts *o,
                              const struct chunk *c, struct buf *path)
{
    ck_assert_uint_lt(c->start, c->end);
    ck_assert_uint_le(c->end, d->len);
    ck_assert_msg(on_char(d, c->start) && on_char(d, c->end), "chunk [%zu, %zu) cuts a character",
                  c->start, c->end);
    ck_assert(!isspace((unsigned char)d->text[c->start]));
    ck_assert(!isspace((unsigned char)d->text[c->end - 1]));
    ck_assert_int_eq(c->text[c->len], '\0');
    if (c->len == c->end - c->start)
        ck_assert_mem_eq(c->text, d->text + c->start, c->len);
    else
        assert_table_prefix(d, c);
    ck_assert_uint_eq(c->n_tokens, o->tok.count(o->tok.ctx, c->text, c->len));
    ck_assert_msg(c->n_tokens <= o->hard_max, "chunk [%zu, %zu) has %zu tokens, hard_max %zu",
                  c->start, c->end, c->n_tokens, o->hard_max);
    if (!d->pages.n) {
        ck_assert_int_eq(c->page_start, 0);
        ck_assert_int_eq(c->page_end, 0);
    } else if (page_containing(d, c->start) > 0 && page_containing(d, c->end - 1) > 0) {
        ck_assert_int_eq(c->page_start, page_containing(d, c->start));
        ck_assert_int_eq(c->page_end, page_containing(d, c->end - 1));
    }
    expected_path(d, c, path);
    ck_assert_str_eq(c->heading_path, buf_cstr(path));
}

/* Order, coverage of every non-blank byte, and each chunk's own invariants. */
static void assert_sane_chunk_list(const struct chunk_doc *d, const struct chunker_opts *o,
                                   const struct chunk_list *l)
{
    struct buf path = BUF_INIT;
    size_t covered = 0;

    for (size_t i = 0; i < l->n; i++) {
        const struct chunk *c = &l->item[i];

        if (i)
            ck_assert_uint_gt(c->start, l->item[i - 1].start);
        for (size_t p = covered; p < c->start; p++)
            ck_assert_msg(isspace((unsigned char)d->text[p]), "byte %zu is in no chunk", p);
        if (c->end > covered)
            covered = c->end;
        assert_sane_chunk(d, o, c, &path);
    }
    for (size_t p = covered; p < d->len; p++)
        ck_assert_msg(isspace((unsigned char)d->text[p]), "byte %zu is in no chunk", p);
    buf_release(&path);
}

/* chunk_split that must succeed; returns the kind it resolved to. */
static enum chunker_kind split_ok(const struct chunk_doc *d, const struct chunker_opts *o,
                                  struct arena *a, struct chunk_list *l)
{
    enum chunker_kind got = CHUNKER_AUTO;
    struct rag_err err;

    ck_assert_msg(chunk_split(d, o, a, l, &got, &err) == 0, "%s: %s", chunker_name(o->kind),
                  err.msg);
    ck_assert_int_ne(got, CHUNKER_AUTO);
    if (o->kind != CHUNKER_AUTO)
        ck_assert_int_eq(got, o->kind);
    assert_sane_chunk_list(d, o, l);
    return got;
}

/* The chunks of text by kind and sizes, checked; the caller releases l and a. */
static void split_text(const char *text, const struct chunker_opts *o, struct arena *a,
                       struct chunk_list *l)
{
    struct chunk_doc d;

    doc_text(&d, text);
    split_ok(&d, o, a, l);
    chunk_doc_release(&d);
}
