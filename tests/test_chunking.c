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

static size_t line_start(const struct chunk_doc *d, size_t p)
{
    while (p > 0 && d->text[p - 1] != '\n')
        p--;
    return p;
}

/*
 * The heading path by definition: a section runs from the line of its title
 * to the line of the next heading of the same or a higher level.
 */
static void expected_path(const struct chunk_doc *d, const struct chunk *c, struct buf *b)
{
    const struct chunk_heading *h = d->headings.item;

    buf_reset(b);
    for (size_t k = 0; k < d->headings.n; k++) {
        size_t end = d->len;

        for (size_t j = k + 1; j < d->headings.n; j++) {
            if (h[j].level <= h[k].level) {
                end = line_start(d, h[j].start);
                break;
            }
        }
        if (line_start(d, h[k].start) > c->start || c->start >= end)
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

/* ---- names, options and bad input ---- */

START_TEST(test_names)
{
    struct rag_err err;
    enum chunker_kind k;

    for (size_t i = 0; i < N_KINDS; i++) {
        ck_assert_int_eq(chunker_from_name(chunker_name(all_kinds[i]), &k, &err), 0);
        ck_assert_int_eq(k, all_kinds[i]);
    }
    ck_assert_str_eq(chunker_name(CHUNKER_RECURSIVE), "recursive");
    ck_assert_int_eq(chunker_from_name("x", &k, &err), RAG_EINVAL);
    ck_assert_int_eq(err.code, RAG_EINVAL);
    ck_assert_str_eq(err.msg, "unknown chunker 'x'");
    ck_assert_int_eq(chunker_from_name("", &k, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "unknown chunker ''");
}
END_TEST

static void expect_opts_error(struct chunker_opts o, const char *msg)
{
    struct chunk_list l = { 0 };
    struct chunk_doc d;
    struct rag_err err;
    struct arena a;
    enum chunker_kind k = CHUNKER_FIXED;

    arena_init(&a, 0);
    doc_text(&d, "Some text to chunk.");
    ck_assert_int_eq(chunk_split(&d, &o, &a, &l, &k, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_int_eq(k, CHUNKER_FIXED); /* ret_kind untouched on failure */
    chunk_doc_release(&d);
    arena_release(&a);
}

START_TEST(test_bad_opts)
{
    struct chunker_opts o = opts_of(CHUNKER_RECURSIVE, 256, 32, 512, 0);

    o.hard_max = 100;
    expect_opts_error(o, "chunker options: hard_max 100 is below max_tokens 256");
    o = opts_of(CHUNKER_RECURSIVE, 256, 300, 512, 0);
    expect_opts_error(o, "chunker options: min_tokens 300 is above max_tokens 256");
    o = opts_of(CHUNKER_FIXED, 256, 32, 512, 256);
    expect_opts_error(o, "chunker options: overlap 256 must be below max_tokens 256");
    o = opts_of(CHUNKER_FIXED, 0, 0, 512, 0);
    expect_opts_error(o, "chunker options: max_tokens must be at least 1");
    o = opts_of(CHUNKER_FIXED, 256, 32, 512, 0);
    o.tok.count = NULL;
    expect_opts_error(o, "chunker options: no token counter");
    o = opts_of((enum chunker_kind)42, 256, 32, 512, 0);
    expect_opts_error(o, "unknown chunker kind 42");
}
END_TEST

START_TEST(test_bad_doc)
{
    struct chunker_opts o = CHUNKER_OPTS_DEFAULT;
    struct chunk_list l = { 0 };
    struct chunk_doc d;
    struct rag_err err;
    struct arena a;

    arena_init(&a, 0);
    doc_text(&d, "caf\xc3 au lait");
    ck_assert_int_eq(chunk_split(&d, &o, &a, &l, NULL, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "document text is not valid UTF-8 at byte 3");
    chunk_doc_release(&d);

    doc_text(&d, "short text");
    doc_add_block(&d, 0, 40);
    ck_assert_int_eq(chunk_split(&d, &o, &a, &l, NULL, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "document block 0 [0, 40) is out of range or order");
    chunk_doc_release(&d);

    doc_text(&d, "caf\xc3\xa9 au lait");
    doc_add_block(&d, 0, 4);
    ck_assert_int_eq(chunk_split(&d, &o, &a, &l, NULL, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "document block 0 [0, 4) cuts a UTF-8 character");
    ck_assert_uint_eq(l.n, 0);
    chunk_doc_release(&d);
    arena_release(&a);
}
END_TEST

START_TEST(test_empty_and_blank)
{
    static const char *const texts[] = { "", " \n\t\r\n  \n\n  " };

    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < N_KINDS; i++) {
            struct chunker_opts o = opts_of(all_kinds[i], 64, 8, 128, 0);
            struct chunk_list l = { 0 };
            struct chunk_doc d;
            struct arena a;

            arena_init(&a, 0);
            doc_text(&d, texts[t]);
            split_ok(&d, &o, &a, &l);
            ck_assert_uint_eq(l.n, 0);
            chunk_doc_release(&d);
            chunk_list_release(&l);
            arena_release(&a);
        }
    }
    chunk_list_release(NULL);
}
END_TEST

/* ---- the approximate counter ---- */

START_TEST(test_count_known)
{
    static const struct {
        const char *text;
        size_t n;
    } cases[] = {
        { "", 0 },
        { "   \n\t ", 0 },
        { "Hello, world!", 4 },
        { "don't", 3 },
        { "internationalization", 8 }, /* 20 letters: 20 - 12 */
        { "parliament", 2 },           /* 10 letters */
        { "chunking", 1 },
        { "2017", 1 },
        { "1234567", 4 }, /* 7 digits: 7 - 3 */
        { "covid19", 2 },
        { "caf\xc3\xa9 cr\xc3\xa8me", 2 },
        { "\xe4\xb8\xad\xe6\x96\x87", 2 }, /* two CJK characters */
        { "I\xe2\x80\x99"
          "d",
          3 },                                     /* I'd with a curly apostrophe */
        { "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 2 }, /* two emoji */
        { "a - b", 3 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(chunk_count_approx(NULL, cases[i].text, strlen(cases[i].text)) == cases[i].n,
                      "'%s': %zu, want %zu", cases[i].text,
                      chunk_count_approx(NULL, cases[i].text, strlen(cases[i].text)), cases[i].n);
}
END_TEST

/* The counter's rules, one character at a time (the header comment of tokens.c). */
static size_t reference_count(const unsigned char *p, size_t n)
{
    size_t total = 0, run = 0;
    int kind = 0, lead = 0; /* kind: 0 none, 1 letters, 2 digits */

    for (size_t i = 0; i <= n; i++) {
        unsigned c = i < n ? p[i] : ' ';
        int k = isalpha((int)c) && c < 0x80 ? 1 : c >= '0' && c <= '9' ? 2 : 0;

        if (c >= 0x80 && c <= 0xbf) {
            if (lead != 2)
                continue;
            k = 1;
        } else {
            lead = c >= 0xc2 && c <= 0xdf ? 2 : 1;
            k = lead == 2 ? 1 : k;
        }
        if (k && k == kind) {
            run++;
            continue;
        }
        if (kind == 1)
            total += run <= 8 ? 1 : run <= 14 ? 2 : run - 12;
        else if (kind == 2)
            total += run <= 4 ? 1 : run - 3;
        kind = k;
        run = k ? 1 : 0;
        total += !k && !isspace((int)c) && i < n;
    }
    return total;
}

START_TEST(test_count_reference)
{
    static const char *const atoms[] = {
        "a",
        "Z",
        "7",
        " ",
        "\n",
        ".",
        ",",
        "'",
        "\xc3\xa9",
        "\xe4\xb8\xad",
        "\xe2\x80\x94",
        "\xf0\x9f\x98\x80",
        "\t",
    };
    unsigned seed = 12345;

    for (int iter = 0; iter < 3000; iter++) {
        char text[600];
        size_t len = 0, want = (size_t)(iter % 300);

        while (len < want) {
            const char *a;

            seed = seed * 1103515245u + 12345u;
            a = atoms[(seed >> 16) % (sizeof(atoms) / sizeof(atoms[0]))];
            if ((seed >> 8) % 4 == 0)
                a = atoms[(seed >> 20) % 3]; /* long runs of letters and digits */
            memcpy(text + len, a, strlen(a));
            len += strlen(a);
        }
        ck_assert_uint_eq(chunk_count_approx(NULL, text, len),
                          reference_count((const unsigned char *)text, len));
    }
}
END_TEST

START_TEST(test_count_additive)
{
    struct chunk_doc d;
    size_t sum = 0, p = 0;

    doc_load(&d, "tests/data/chunking/valkyria.md");
    /* whole = sum of the parts when cut at word starts */
    while (p < d.len) {
        size_t q = p + 700 < d.len ? p + 700 : d.len;

        while (q < d.len &&
               !(isspace((unsigned char)d.text[q - 1]) && !isspace((unsigned char)d.text[q])))
            q++;
        sum += chunk_count_approx(NULL, d.text + p, q - p);
        p = q;
    }
    ck_assert_uint_eq(sum, chunk_count_approx(NULL, d.text, d.len));
    chunk_doc_release(&d);
}
END_TEST

/* ---- invariants on real documents, every chunker ---- */

static void check_all_kinds(const struct chunk_doc *d, size_t max, size_t min, size_t hard,
                            size_t overlap)
{
    for (size_t i = 0; i < N_KINDS; i++) {
        bool ov = all_kinds[i] == CHUNKER_FIXED || all_kinds[i] == CHUNKER_RECURSIVE;
        struct chunker_opts o = opts_of(all_kinds[i], max, min, hard, ov ? overlap : 0);
        struct chunk_list l = { 0 };
        struct arena a;

        arena_init(&a, 0);
        split_ok(d, &o, &a, &l);
        ck_assert_uint_gt(l.n, 0);
        chunk_list_release(&l);
        arena_release(&a);
    }
}

START_TEST(test_real_corpora)
{
    static const char *const names[] = { "chatlogs", "finance", "pubmed", "state_of_the_union",
                                         "wikitexts" };
    char rel[256], path[4096];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct rag_err err;
        struct chunk_doc d;

        snprintf(rel, sizeof(rel), "chroma-chunking-eval/corpora/%s.md", names[i]);
        ck_assert_msg(test_data_path(rel, path, sizeof(path)), "missing %s", rel);
        ck_assert_msg(chunk_doc_read(&d, path, 0, &err) == 0, "%s", err.msg);
        check_all_kinds(&d, 256, 32, 512, 0);
        check_all_kinds(&d, 100, 10, 150, 20);
        chunk_doc_release(&d);
    }
}
END_TEST

START_TEST(test_real_test_data)
{
    static const char *const names[] = { "sotu.txt", "valkyria.md", "style.md" };
    char rel[256];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct chunk_doc d;

        snprintf(rel, sizeof(rel), "tests/data/chunking/%s", names[i]);
        doc_load(&d, rel);
        check_all_kinds(&d, 256, 32, 512, 0);
        check_all_kinds(&d, 40, 4, 60, 10);
        check_all_kinds(&d, 12, 0, 12, 3);
        chunk_doc_release(&d);
    }
}
END_TEST

/* ---- structure ---- */

static const struct chunk *chunk_at(const struct chunk_list *l, size_t p)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->item[i].start <= p && p < l->item[i].end)
            return &l->item[i];
    }
    return NULL;
}

/* No chunk starts strictly inside text[a, b). */
static void assert_not_cut(const struct chunk_list *l, size_t a, size_t b)
{
    for (size_t i = 0; i < l->n; i++)
        ck_assert_msg(l->item[i].start <= a || l->item[i].start >= b,
                      "chunk starts at %zu inside [%zu, %zu)", l->item[i].start, a, b);
}

START_TEST(test_heading_glued)
{
    struct buf md = BUF_INIT;
    struct chunker_opts o = opts_of(CHUNKER_STRUCTURE, 64, 0, 128, 0);
    struct chunk_list l = { 0 };
    struct chunk_doc d;
    struct arena a;

    for (int i = 0; i < 58; i++)
        buf_appends(&md, "word ");
    buf_appends(&md, "\n\n## Next part\n\n");
    for (int i = 0; i < 30; i++)
        buf_appends(&md, "body ");
    arena_init(&a, 0);
    doc_parse(&d, buf_cstr(&md), CHUNK_FORMAT_MARKDOWN);
    split_ok(&d, &o, &a, &l);
    /* 58 words + the heading would fit in 64, but the heading goes with its body */
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(l.item[1].start, pos_of(&d, "## Next"));
    ck_assert_str_eq(l.item[1].heading_path, "");
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);

    /* on a real document: every heading shares a chunk with the block after it */
    o = opts_of(CHUNKER_STRUCTURE, 64, 0, 128, 0);
    arena_init(&a, 0);
    doc_load(&d, "tests/data/chunking/valkyria.md");
    split_ok(&d, &o, &a, &l);
    for (size_t i = 0; i + 1 < d.blocks.n; i++) {
        const struct chunk *c = chunk_at(&l, d.blocks.item[i].start);

        if (d.blocks.item[i].kind != CHUNK_BLOCK_HEADING)
            continue;
        ck_assert_ptr_nonnull(c);
        ck_assert_msg(c->end > d.blocks.item[i + 1].start, "heading at %zu left alone",
                      d.blocks.item[i].start);
    }
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);
    buf_release(&md);
}
END_TEST

/* A Markdown document: a paragraph, a fenced code block of n_lines lines, a paragraph. */
static void code_doc(struct chunk_doc *d, int n_lines)
{
    struct buf md = BUF_INIT;

    buf_appends(&md, "Some words before the code block.\n\n```c\n");
    for (int i = 0; i < n_lines; i++)
        buf_appendf(&md, "    total += value[%d] * weight;\n", i);
    buf_appends(&md, "```\n\nSome words after the code block, to close.\n");
    doc_parse(d, buf_cstr(&md), CHUNK_FORMAT_MARKDOWN);
    buf_release(&md);
}

static const struct chunk_block *block_of_kind(const struct chunk_doc *d, enum chunk_block_kind k)
{
    for (size_t i = 0; i < d->blocks.n; i++) {
        if (d->blocks.item[i].kind == k)
            return &d->blocks.item[i];
    }
    ck_abort_msg("no block of kind %d", (int)k);
    return NULL;
}

START_TEST(test_code_never_cut)
{
    struct chunker_opts o = opts_of(CHUNKER_STRUCTURE, 64, 0, 512, 0);
    struct chunk_list l = { 0 };
    const struct chunk_block *b;
    struct chunk_doc d;
    struct arena a;

    arena_init(&a, 0);
    code_doc(&d, 20); /* about 220 tokens: over max_tokens, under hard_max */
    b = block_of_kind(&d, CHUNK_BLOCK_CODE);
    split_ok(&d, &o, &a, &l);
    assert_not_cut(&l, b->start, b->end);
    ck_assert_uint_eq(l.n, 3); /* the code block is a chunk of its own */
    ck_assert_uint_eq(l.item[1].start, b->start);
    ck_assert_uint_gt(l.item[1].n_tokens, 64);
    chunk_list_release(&l);
    chunk_doc_release(&d);

    /* over hard_max: cut, and only then */
    o.hard_max = 128;
    code_doc(&d, 20);
    b = block_of_kind(&d, CHUNK_BLOCK_CODE);
    split_ok(&d, &o, &a, &l);
    ck_assert_uint_ge(l.n, 4);
    ck_assert_ptr_nonnull(chunk_at(&l, b->start + (b->end - b->start) / 2));
    chunk_list_release(&l);
    chunk_doc_release(&d);
    arena_release(&a);
}
END_TEST

START_TEST(test_table_header_repeated)
{
    struct chunker_opts o = opts_of(CHUNKER_STRUCTURE, 64, 0, 128, 0);
    const char *hdr = "| name | value |\n|---|---|";
    struct chunk_list l = { 0 };
    const struct chunk_block *b;
    struct buf md = BUF_INIT;
    size_t n_cont = 0;
    struct chunk_doc d;
    struct arena a;

    buf_appends(&md, "The table below lists the items.\n\n");
    buf_appends(&md, hdr);
    for (int i = 0; i < 40; i++)
        buf_appendf(&md, "\n| item %d | %d |", i, i * 7);
    buf_appends(&md, "\n\nThat was the table.\n");
    arena_init(&a, 0);
    doc_parse(&d, buf_cstr(&md), CHUNK_FORMAT_MARKDOWN);
    b = block_of_kind(&d, CHUNK_BLOCK_TABLE);
    ck_assert_uint_eq(b->header_end - b->start, strlen(hdr));
    split_ok(&d, &o, &a, &l);
    for (size_t i = 0; i < l.n; i++) {
        const struct chunk *c = &l.item[i];

        if (c->start <= b->start || c->start >= b->end)
            continue;
        /* a continuation starts on a row and repeats the header row */
        ck_assert_int_eq(d.text[c->start - 1], '\n');
        ck_assert_int_eq(d.text[c->start], '|');
        ck_assert_uint_eq(c->len, strlen(hdr) + 1 + (c->end - c->start));
        ck_assert_mem_eq(c->text, hdr, strlen(hdr));
        n_cont++;
    }
    ck_assert_uint_ge(n_cont, 3);
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);
    buf_release(&md);
}
END_TEST

START_TEST(test_paragraph_kind)
{
    struct chunker_opts o = opts_of(CHUNKER_PARAGRAPH, 64, 0, 128, 0);
    static const char md[] = "# Guide\n\nIntro words here.\n\n## Install\n\nInstall words.\n\n"
                             "### Linux\n\nLinux words.\n\n## Use\n\nUse words.\n";
    static const char *const want[][2] = {
        { "# Guide", "" },
        { "## Install", "Guide" },
        { "### Linux", "Guide > Install" },
        { "## Use", "Guide" },
    };
    struct chunk_list l = { 0 };
    struct chunk_doc d;
    struct arena a;

    arena_init(&a, 0);
    doc_parse(&d, md, CHUNK_FORMAT_MARKDOWN);
    split_ok(&d, &o, &a, &l);
    ck_assert_uint_eq(l.n, 4);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(l.item[i].start, pos_of(&d, want[i][0]));
        ck_assert_str_eq(l.item[i].heading_path, want[i][1]);
    }
    chunk_list_release(&l);
    /* min_tokens merges the small paragraphs forward */
    o.min_tokens = 8;
    split_ok(&d, &o, &a, &l);
    ck_assert_uint_lt(l.n, 4);
    chunk_list_release(&l);
    /* a chunk starting inside a section, after its title, gets the whole path */
    o = opts_of(CHUNKER_FIXED, 3, 0, 3, 0);
    split_ok(&d, &o, &a, &l);
    for (size_t i = 0, n_inside = 0; i <= l.n; i++) {
        if (i == l.n) {
            ck_assert_uint_gt(n_inside, 0);
            break;
        }
        if (l.item[i].start > pos_of(&d, "Linux words") && l.item[i].start < pos_of(&d, "## Use")) {
            ck_assert_str_eq(l.item[i].heading_path, "Guide > Install > Linux");
            n_inside++;
        }
    }
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);
}
END_TEST

/* ---- the recursive splitter's separators ---- */

struct sep_case {
    const char *text;
    size_t max;
    const char *starts[6]; /* the chunks start with these, in order */
};

static void check_sep_case(const struct sep_case *sc)
{
    struct chunker_opts o = opts_of(CHUNKER_RECURSIVE, sc->max, 0, sc->max, 0);
    struct chunk_list l = { 0 };
    struct arena a;
    size_t n = 0;

    while (n < 6 && sc->starts[n])
        n++;
    arena_init(&a, 0);
    split_text(sc->text, &o, &a, &l);
    ck_assert_msg(l.n == n, "'%s': %zu chunks, want %zu", sc->text, l.n, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(!strncmp(l.item[i].text, sc->starts[i], strlen(sc->starts[i])),
                      "chunk %zu is '%s', want '%s...'", i, l.item[i].text, sc->starts[i]);
    chunk_list_release(&l);
    arena_release(&a);
}

START_TEST(test_separators)
{
    static const struct sep_case cases[] = {
        { "Intro text here.\n# One\nalpha beta gamma.\n# Two\ndelta epsilon zeta.",
          6,
          { "Intro", "# One", "# Two" } },
        { "Steps to follow now:\n1. open the box\n2. take it out\n\t3) close the box\n"
          "(iv) check the box",
          6,
          { "Steps", "1. open", "2. take", "3) close", "(iv) check" } },
        { "Things to pack now:\n- first item here\n\xe2\x80\xa2 second item here\n"
          "\xe2\x80\x93 third item here\n* fourth item here",
          5,
          { "Things", "- first", "\xe2\x80\xa2 second", "\xe2\x80\x93 third", "* fourth" } },
        { "First paragraph is here.\n\nSecond paragraph is here.\n\n\nThird one is here.",
          6,
          { "First", "Second", "Third" } },
        { "First line is here.\nSecond line is here.\nThird line is here.",
          5,
          { "First", "Second", "Third" } },
        { "First sentence is here. Second sentence is here! Third sentence is here?",
          6,
          { "First", ". Second", "! Third" } },
        { "first clause is here, second clause is here, third clause here",
          5,
          { "first", ", second", ", third" } },
        { "extraordinary remarkable unbelievable fantastical",
          2,
          { "extraordinary", "remarkable", "unbelievable", "fantastical" } },
    };
    struct buf text = BUF_INIT;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_sep_case(&cases[i]);
    /* heading levels 2..6: each level is its own separator */
    for (int level = 2; level <= 6; level++) {
        struct sep_case sc = { NULL, (size_t)level + 5, { "Intro", "", "" } };
        char mark[8], one[16], two[16];

        memset(mark, '#', (size_t)level);
        mark[level] = '\0';
        buf_reset(&text);
        buf_appendf(&text,
                    "Intro text here.\n%s One\nalpha beta gamma.\n%s Two\ndelta epsilon zeta.",
                    mark, mark);
        snprintf(one, sizeof(one), "%s One\n", mark);
        snprintf(two, sizeof(two), "%s Two\n", mark);
        sc.text = buf_cstr(&text);
        sc.starts[1] = one;
        sc.starts[2] = two;
        check_sep_case(&sc);
    }
    buf_release(&text);
}
END_TEST

START_TEST(test_character_fallback)
{
    struct chunker_opts o = opts_of(CHUNKER_RECURSIVE, 8, 0, 8, 0);
    struct chunk_list l = { 0 };
    char text[101];
    struct arena a;

    memset(text, 'a', 100);
    text[100] = '\0';
    arena_init(&a, 0);
    /* 100 letters cost 88 tokens; 20 letters cost 8 */
    split_text(text, &o, &a, &l);
    ck_assert_uint_eq(l.n, 5);
    for (size_t i = 0; i < l.n; i++) {
        ck_assert_uint_eq(l.item[i].len, 20);
        ck_assert_uint_eq(l.item[i].n_tokens, 8);
    }
    chunk_list_release(&l);
    /* every chunker copes with one oversized word */
    for (size_t i = 0; i < N_KINDS; i++) {
        o = opts_of(all_kinds[i], 8, 2, 10, 0);
        split_text(text, &o, &a, &l);
        ck_assert_uint_ge(l.n, 5); /* at most 22 letters (10 tokens) per chunk */
        chunk_list_release(&l);
    }
    arena_release(&a);
}
END_TEST

START_TEST(test_cjk_and_emoji)
{
    static const char *const atoms[] = { "\xe6\x88\xa6\xe5\xa0\xb4", "\xf0\x9f\x98\x80",
                                         "\xe3\x80\x82", "\xc3\xa9t\xc3\xa9" };
    struct buf text = BUF_INIT;

    for (int i = 0; i < 400; i++)
        buf_appends(&text, atoms[(i * 7) % 4]);
    for (size_t k = 0; k < N_KINDS; k++) {
        struct chunker_opts o = opts_of(all_kinds[k], 16, 2, 20, 0);
        struct chunk_list l = { 0 };
        struct arena a;

        arena_init(&a, 0);
        split_text(buf_cstr(&text), &o, &a, &l); /* boundaries on characters: checked */
        ck_assert_uint_gt(l.n, 10);
        chunk_list_release(&l);
        arena_release(&a);
    }
    buf_release(&text);
}
END_TEST

/* ---- overlap ---- */

static void check_overlap(enum chunker_kind k)
{
    struct chunker_opts o = opts_of(k, 64, 0, 128, 16);
    struct chunk_list l = { 0 };
    size_t n_overlapping = 0;
    struct chunk_doc d;
    struct arena a;

    arena_init(&a, 0);
    doc_load(&d, "tests/data/chunking/sotu.txt");
    split_ok(&d, &o, &a, &l);
    for (size_t i = 1; i < l.n; i++) {
        const struct chunk *p = &l.item[i - 1], *c = &l.item[i];
        size_t shared;

        ck_assert_uint_le(c->n_tokens, 64);
        if (c->start >= p->end)
            continue;
        shared = chunk_count_approx(NULL, d.text + c->start, p->end - c->start);
        ck_assert_uint_le(shared, 16);
        ck_assert_uint_gt(shared, 0);
        n_overlapping++;
    }
    ck_assert_uint_ge(n_overlapping, l.n / 2);
    chunk_list_release(&l);
    /* without overlap, chunks do not overlap */
    o.overlap = 0;
    split_ok(&d, &o, &a, &l);
    for (size_t i = 1; i < l.n; i++)
        ck_assert_uint_ge(l.item[i].start, l.item[i - 1].end);
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);
}

START_TEST(test_overlap)
{
    check_overlap(CHUNKER_FIXED);
    check_overlap(CHUNKER_RECURSIVE);
}
END_TEST

START_TEST(test_fixed_windows)
{
    struct chunker_opts o = opts_of(CHUNKER_FIXED, 50, 0, 100, 0);
    struct chunk_list l = { 0 };
    struct chunk_doc d;
    struct arena a;

    arena_init(&a, 0);
    doc_load(&d, "tests/data/chunking/sotu.txt");
    split_ok(&d, &o, &a, &l);
    for (size_t i = 0; i < l.n; i++) {
        ck_assert_uint_le(l.item[i].n_tokens, 50);
        if (i + 1 < l.n) /* full windows, cut between words */
            ck_assert_uint_ge(l.item[i].n_tokens, 40);
        ck_assert(l.item[i].end == d.len || isspace((unsigned char)d.text[l.item[i].end]));
    }
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);
}
END_TEST

/* ---- sentences ---- */

START_TEST(test_sentences)
{
    /*
     * With max 11 every sentence is a chunk of its own; a false boundary after
     * an abbreviation or an initial would let "Hello..." take the words
     * before it, and a missed boundary would merge two sentences.
     */
    static const char *const sentences[] = {
        "Hello there my friend.",    "We met Dr. Who there.",
        "Hello there my friend.",    "We then saw Mr. Jones.",
        "Hello there my friend.",    "In the U.S. Army.",
        "Hello there my friend.",    "We like e.g. Paris.",
        "Hello there my friend.",    "Ask J. Doe about it now.",
        "Hello there my friend.",    "\xe2\x80\x9cYes,\xe2\x80\x9d he said to me.",
        "new paragraph starts here",
    };
    struct chunker_opts o = opts_of(CHUNKER_SENTENCE, 11, 0, 40, 0);
    size_t n = sizeof(sentences) / sizeof(sentences[0]), p = 0;
    struct chunk_list l = { 0 };
    struct buf text = BUF_INIT;
    struct chunk_doc d;
    struct arena a;

    for (size_t i = 0; i < n; i++)
        buf_appendf(&text, "%s%s", sentences[i], i + 2 < n ? " " : i + 2 == n ? "\n\n" : "");
    arena_init(&a, 0);
    doc_text(&d, buf_cstr(&text));
    split_ok(&d, &o, &a, &l);
    ck_assert_uint_eq(l.n, n);
    for (size_t i = 0; i < n; i++) {
        p = (size_t)(strstr(d.text + p, sentences[i]) - d.text);
        ck_assert_uint_eq(l.item[i].start, p);
        ck_assert_uint_eq(l.item[i].end, p + strlen(sentences[i]));
        p++;
    }
    chunk_list_release(&l);
    arena_release(&a);
    chunk_doc_release(&d);
    buf_release(&text);
}
END_TEST

/* ---- pages ---- */

START_TEST(test_pages)
{
    struct chunker_opts o = opts_of(CHUNKER_PAGE, 64, 8, 128, 0);
    struct chunk_list l = { 0 };
    struct buf text = BUF_INIT;
    size_t bounds[4];
    struct chunk_doc d;
    struct arena a;

    bounds[0] = 0;
    buf_appends(&text, "Title page\n");
    bounds[1] = text.len;
    for (int i = 0; i < 40; i++)
        buf_appends(&text, "second ");
    bounds[2] = text.len;
    for (int i = 0; i < 300; i++)
        buf_appendf(&text, "third%s", i % 20 == 19 ? ".\n" : " ");
    bounds[3] = text.len;
    arena_init(&a, 0);
    doc_text(&d, buf_cstr(&text));
    for (int i = 0; i < 3; i++)
        doc_add_page(&d, bounds[i], bounds[i + 1]);
    split_ok(&d, &o, &a, &l);
    /* the 2-token title page merges into page 2; page 3 (315 tokens) is split */
    ck_assert_uint_ge(l.n, 4);
    ck_assert_uint_eq(l.item[0].start, 0);
    ck_assert_int_eq(l.item[0].page_start, 1);
    ck_assert_int_eq(l.item[0].page_end, 2);
    ck_assert_uint_eq(l.item[0].end, bounds[2] - 1);
    for (size_t i = 1; i < l.n; i++) {
        ck_assert_int_eq(l.item[i].page_start, 3);
        ck_assert_int_eq(l.item[i].page_end, 3);
    }
    chunk_list_release(&l);
    /* every chunker fills in page ranges */
    for (size_t k = 0; k < N_KINDS; k++) {
        o = opts_of(all_kinds[k], 30, 4, 60, 0);
        split_ok(&d, &o, &a, &l);
        chunk_list_release(&l);
    }
    arena_release(&a);
    chunk_doc_release(&d);
    buf_release(&text);
}
END_TEST

/* ---- hard_max with counters that do not add up ---- */

/* Two special tokens per call, like [CLS] and [SEP]. */
static size_t count_specials(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    return chunk_count_approx(NULL, text, len) + 2;
}

/* Long texts cost more than their parts: one extra token per 40 bytes. */
static size_t count_superadditive(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    return chunk_count_approx(NULL, text, len) + len / 40;
}

static size_t count_huge(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    (void)text;
    return len ? 1000 : 0;
}

START_TEST(test_odd_counters)
{
    size_t (*const counters[])(void *, const char *, size_t) = { count_specials,
                                                                 count_superadditive };
    struct chunk_doc d;

    doc_load(&d, "tests/data/chunking/valkyria.md");
    for (size_t c = 0; c < 2; c++) {
        for (size_t k = 0; k < N_KINDS; k++) {
            struct chunker_opts o = opts_of(all_kinds[k], 100, 10, 100, 0);
            struct chunk_list l = { 0 };
            size_t sum = 0;
            struct arena a;

            o.tok.count = counters[c];
            arena_init(&a, 0);
            split_ok(&d, &o, &a, &l); /* n_tokens exact and <= hard_max */
            for (size_t i = 0; i < l.n; i++)
                sum += l.item[i].n_tokens;
            ck_assert_uint_ge(sum / l.n, 40); /* not cut into crumbs */
            chunk_list_release(&l);
            arena_release(&a);
        }
    }
    chunk_doc_release(&d);
}
END_TEST

START_TEST(test_char_over_hard_max)
{
    struct chunker_opts o = opts_of(CHUNKER_RECURSIVE, 64, 8, 128, 0);
    struct chunk_list l = { 0 };
    struct chunk_doc d;
    struct rag_err err;
    struct arena a;

    o.tok.count = count_huge;
    arena_init(&a, 0);
    doc_text(&d, "\xc3\xa9t\xc3\xa9 word");
    ck_assert_int_eq(chunk_split(&d, &o, &a, &l, NULL, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "the character at byte 0 alone is 1000 tokens, over hard_max 128");
    ck_assert_uint_eq(l.n, 0);
    chunk_doc_release(&d);
    arena_release(&a);
}
END_TEST

/* ---- scores and the adaptive choice ---- */

START_TEST(test_scores)
{
    struct chunker_opts o = opts_of(CHUNKER_RECURSIVE, 64, 32, 128, 0);
    struct chunk c[3] = { { 0 } };
    struct chunk_scores sc;
    struct buf text = BUF_INIT;
    size_t start[4], end[4];
    struct chunk_doc d;
    struct rag_err err;

    for (int b = 0; b < 4; b++) {
        start[b] = text.len;
        for (int i = 0; i < 40; i++)
            buf_appendf(&text, "b%d ", b);
        end[b] = text.len - 1;
        buf_appends(&text, "\n\n");
    }
    doc_text(&d, buf_cstr(&text));
    for (int b = 0; b < 4; b++)
        doc_add_block(&d, start[b], end[b]);
    /* blocks 0-1, 2 and half of 3, the rest of 3: one block of four is cut */
    c[0] = (struct chunk){ .start = 0, .end = end[1], .n_tokens = 80 };
    c[1] = (struct chunk){ .start = start[2], .end = start[3] + 60, .n_tokens = 60 };
    c[2] = (struct chunk){ .start = start[3] + 60, .end = end[3], .n_tokens = 10 };
    ck_assert_int_eq(chunk_score(&d, &o, c, 3, &sc, &err), 0);
    ck_assert_double_eq_tol(sc.sc, 2.0 / 3.0, 1e-12); /* 10 < min_tokens 32 */
    ck_assert_double_eq_tol(sc.bi, 3.0 / 4.0, 1e-12);
    ck_assert(isnan(sc.icc) && isnan(sc.dcc) && isnan(sc.rc));
    ck_assert_double_eq_tol(sc.total, (2.0 / 3.0 + 3.0 / 4.0) / 2, 1e-12);
    /* a cut within 5 bytes of a block bound does not count */
    c[2].start = c[1].end = start[3] + 4;
    ck_assert_int_eq(chunk_score(&d, &o, c, 3, &sc, &err), 0);
    ck_assert_double_eq_tol(sc.bi, 1.0, 1e-12);
    ck_assert_int_eq(chunk_score(&d, &o, c, 1, &sc, &err), 0);
    ck_assert_double_eq_tol(sc.bi, 1.0, 1e-12);
    ck_assert_double_eq_tol(sc.sc, 1.0, 1e-12);
    ck_assert_int_eq(chunk_score(&d, &o, c, 0, &sc, &err), 0);
    ck_assert(isnan(sc.sc) && isnan(sc.bi) && isnan(sc.total));
    o.hard_max = 1;
    ck_assert_int_eq(chunk_score(&d, &o, c, 3, &sc, &err), RAG_EINVAL);
    chunk_doc_release(&d);
    buf_release(&text);
}
END_TEST

static double score_of(const struct chunk_doc *d, enum chunker_kind k, struct arena *a)
{
    struct chunker_opts o = opts_of(k, 128, 16, 256, 0);
    struct chunk_list l = { 0 };
    struct chunk_scores sc;
    struct rag_err err;

    split_ok(d, &o, a, &l);
    ck_assert_int_eq(chunk_score(d, &o, l.item, l.n, &sc, &err), 0);
    chunk_list_release(&l);
    return sc.total;
}

START_TEST(test_auto_picks_best)
{
    static const char *const names[] = { "sotu.txt", "valkyria.md", "style.md" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct chunk_doc d;
        struct arena a;
        char rel[256];
        double best;

        snprintf(rel, sizeof(rel), "tests/data/chunking/%s", names[i]);
        doc_load(&d, rel);
        arena_init(&a, 0);
        best = score_of(&d, CHUNKER_AUTO, &a);
        ck_assert_double_ge(best, score_of(&d, CHUNKER_RECURSIVE, &a));
        ck_assert_double_ge(best, score_of(&d, CHUNKER_STRUCTURE, &a));
        ck_assert_double_ge(best, score_of(&d, CHUNKER_PAGE, &a));
        arena_release(&a);
        chunk_doc_release(&d);
    }
}
END_TEST

/* ---- golden chunk boundaries ---- */

/* One line per chunk: kind, span, tokens, pages, heading path, start of the text. */
static void golden_lines(const struct chunk_doc *d, enum chunker_kind k, struct buf *out)
{
    struct chunker_opts o = opts_of(k, 128, 16, 256, 0);
    struct chunk_list l = { 0 };
    enum chunker_kind got;
    struct arena a;

    arena_init(&a, 0);
    got = split_ok(d, &o, &a, &l);
    buf_appendf(out, "## %s -> %s: %zu chunks\n", chunker_name(k), chunker_name(got), l.n);
    for (size_t i = 0; i < l.n; i++) {
        const struct chunk *c = &l.item[i];

        buf_appendf(out, "%zu %zu %zu p%d-%d [%s] ", c->start, c->end, c->n_tokens, c->page_start,
                    c->page_end, c->heading_path);
        for (size_t j = 0; j < c->len && j < 40; j++)
            buf_appendc(out, isspace((unsigned char)c->text[j]) ? ' ' : c->text[j]);
        buf_appendc(out, '\n');
    }
    chunk_list_release(&l);
    arena_release(&a);
}

START_TEST(test_golden)
{
    static const char *const names[] = { "sotu.txt", "valkyria.md", "style.md" };
    const char *update = getenv("RAG_UPDATE_GOLDEN");

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct buf got = BUF_INIT, want = BUF_INIT;
        char rel[256], path[4096];
        struct chunk_doc d;
        struct rag_err err;

        snprintf(rel, sizeof(rel), "tests/data/chunking/%s", names[i]);
        doc_load(&d, rel);
        for (size_t k = 0; k < N_KINDS; k++)
            golden_lines(&d, all_kinds[k], &got);
        snprintf(rel, sizeof(rel), "tests/golden/chunking/%s.golden", names[i]);
        test_source_path(rel, path, sizeof(path));
        if (update && !strcmp(update, "1")) {
            ck_assert_msg(file_write_atomic(path, got.data, got.len, &err) == 0, "%s", err.msg);
        } else {
            ck_assert_msg(file_read(path, 0, &want, &err) == 0, "%s", err.msg);
            ck_assert_str_eq(buf_cstr(&got), buf_cstr(&want));
        }
        buf_release(&got);
        buf_release(&want);
        chunk_doc_release(&d);
    }
}
END_TEST

static Suite *chunking_suite(void)
{
    Suite *s = suite_create("chunking");
    TCase *api = tcase_create("api"), *count = tcase_create("count");
    TCase *real = tcase_create("real"), *shape = tcase_create("shape");
    TCase *score = tcase_create("score"), *golden = tcase_create("golden");

    tcase_add_test(api, test_names);
    tcase_add_test(api, test_bad_opts);
    tcase_add_test(api, test_bad_doc);
    tcase_add_test(api, test_empty_and_blank);
    tcase_add_test(api, test_char_over_hard_max);
    tcase_add_test(count, test_count_known);
    tcase_add_test(count, test_count_reference);
    tcase_add_test(count, test_count_additive);
    tcase_add_test(real, test_real_corpora);
    tcase_add_test(real, test_real_test_data);
    tcase_add_test(real, test_odd_counters);
    tcase_set_timeout(real, 300);
    tcase_add_test(shape, test_heading_glued);
    tcase_add_test(shape, test_code_never_cut);
    tcase_add_test(shape, test_table_header_repeated);
    tcase_add_test(shape, test_paragraph_kind);
    tcase_add_test(shape, test_separators);
    tcase_add_test(shape, test_character_fallback);
    tcase_add_test(shape, test_cjk_and_emoji);
    tcase_add_test(shape, test_overlap);
    tcase_add_test(shape, test_fixed_windows);
    tcase_add_test(shape, test_sentences);
    tcase_add_test(shape, test_pages);
    tcase_set_timeout(shape, 60);
    tcase_add_test(score, test_scores);
    tcase_add_test(score, test_auto_picks_best);
    tcase_set_timeout(score, 60);
    tcase_add_test(golden, test_golden);
    tcase_set_timeout(golden, 60);
    suite_add_tcase(s, api);
    suite_add_tcase(s, count);
    suite_add_tcase(s, real);
    suite_add_tcase(s, shape);
    suite_add_tcase(s, score);
    suite_add_tcase(s, golden);
    return s;
}

TEST_MAIN(chunking_suite)
