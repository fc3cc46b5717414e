/*
 * tests/test_reader.c - the document readers of chunking/: format detection,
 * binary sniffing, UTF-8 repair, and the text, Markdown, HTML and PDF readers
 * on real samples (tests/data/reader/) against golden files
 * (tests/golden/reader/<name>.golden), plus every bad input we know of.
 *
 * Golden format, one record per line:
 *   format <name> / title "<title>" / len <bytes> / repaired <count>
 *   block <i> <kind> <level> <start> <end> <header_end - start> "<snippet>"
 *   heading <i> <level> <start> <end> "<title>"
 *   page <number> <start> <end> "<snippet>"
 * A snippet is the whole text when short, else its first 40 and last 20
 * bytes around "...". RAG_UPDATE_GOLDEN=1 rewrites the files instead of
 * comparing; review the diff before committing.
 *
 * Independent references: Markdown block line ranges from markdown-it-py and
 * PDF page words from pdftotext, both produced by tests/golden/reader/make_refs.py.
 */
#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunking/chunking.h"
#include "tests/testutil.h"

static const char *const kind_names[] = { "paragraph", "heading", "list", "code", "table" };

static char *src(const char *rel)
{
    static char path[4][4096];
    static int k;

    k = (k + 1) % 4;
    return (char *)test_source_path(rel, path[k], sizeof(path[k]));
}

/* Append s[0..n) quoted, with \n \t \r \f \\ \" escaped. */
static void put_escaped(struct buf *b, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        switch (s[i]) {
        case '\n':
            buf_appends(b, "\\n");
            break;
        case '\t':
            buf_appends(b, "\\t");
            break;
        case '\r':
            buf_appends(b, "\\r");
            break;
        case '\f':
            buf_appends(b, "\\f");
            break;
        case '\\':
        case '"':
            buf_appendc(b, '\\');
            buf_appendc(b, s[i]);
            break;
        default:
            buf_appendc(b, s[i]);
        }
    }
}

/* Back up to a UTF-8 sequence start so that snippets stay valid text. */
static size_t char_start(const char *s, size_t i)
{
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

static void put_snippet(struct buf *b, const char *text, size_t start, size_t end)
{
    size_t head, tail;

    buf_appendc(b, '"');
    if (end - start <= 64) {
        put_escaped(b, text + start, end - start);
    } else {
        head = char_start(text, start + 40);
        tail = char_start(text, end - 20);
        put_escaped(b, text + start, head - start);
        buf_appends(b, "\"...\"");
        put_escaped(b, text + tail, end - tail);
    }
    buf_appendc(b, '"');
}

static void dump_doc(const struct chunk_doc *d, struct buf *b)
{
    size_t i;

    buf_appendf(b, "format %s\ntitle ", chunk_format_name(d->format));
    if (d->title) {
        buf_appendc(b, '"');
        put_escaped(b, d->title, strlen(d->title));
        buf_appendc(b, '"');
    } else {
        buf_appends(b, "-");
    }
    buf_appendf(b, "\nlen %zu\nrepaired %zu\n", d->len, d->n_repaired);
    for (i = 0; i < d->blocks.n; i++) {
        const struct chunk_block *k = &d->blocks.item[i];

        buf_appendf(b, "block %zu %s %d %zu %zu %zu ", i, kind_names[k->kind], k->level, k->start,
                    k->end, k->header_end - k->start);
        put_snippet(b, d->text, k->start, k->end);
        buf_appendc(b, '\n');
    }
    for (i = 0; i < d->headings.n; i++) {
        const struct chunk_heading *h = &d->headings.item[i];

        buf_appendf(b, "heading %zu %d %zu %zu ", i, h->level, h->start, h->end);
        put_snippet(b, d->text, h->start, h->end);
        buf_appendc(b, '\n');
    }
    for (i = 0; i < d->pages.n; i++) {
        const struct chunk_page *p = &d->pages.item[i];

        buf_appendf(b, "page %d %zu %zu ", p->number, p->start, p->end);
        put_snippet(b, d->text, p->start, p->end);
        buf_appendc(b, '\n');
    }
}

static bool blank_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * The contract of struct chunk_doc: valid NUL-terminated UTF-8; blocks in
 * order, not overlapping, not ending in blanks, covering every
 * non-blank byte; headings inside HEADING blocks; pages in order.
 */
static void assert_sane_doc(const struct chunk_doc *d)
{
    size_t i, j, covered = 0;

    ck_assert_ptr_nonnull(d->text);
    ck_assert_uint_eq(strlen(d->text), d->len);
    ck_assert_uint_eq(utf8_valid_prefix(d->text, d->len), d->len);
    for (i = 0; i < d->blocks.n; i++) {
        const struct chunk_block *k = &d->blocks.item[i];

        ck_assert_uint_le(covered, k->start);
        ck_assert_uint_lt(k->start, k->end);
        ck_assert_uint_le(k->end, d->len);
        ck_assert(k->header_end >= k->start && k->header_end <= k->end);
        ck_assert(!blank_byte(d->text[k->end - 1]));
        ck_assert(k->kind == CHUNK_BLOCK_HEADING ? k->level >= 1 && k->level <= 6 : !k->level);
        for (j = covered; j < k->start; j++)
            ck_assert_msg(blank_byte(d->text[j]), "byte %zu is in no block", j);
        covered = k->end;
    }
    for (j = covered; j < d->len; j++)
        ck_assert_msg(blank_byte(d->text[j]), "byte %zu is in no block", j);
    for (i = 0; i < d->headings.n; i++) {
        const struct chunk_heading *h = &d->headings.item[i];

        for (j = 0; j < d->blocks.n; j++) {
            const struct chunk_block *k = &d->blocks.item[j];

            if (k->kind == CHUNK_BLOCK_HEADING && k->start <= h->start && h->end <= k->end)
                break;
        }
        ck_assert_msg(j < d->blocks.n, "heading %zu is in no heading block", i);
    }
    for (i = 0; i < d->pages.n; i++) {
        ck_assert_int_eq(d->pages.item[i].number, (int)i + 1);
        ck_assert_uint_le(d->pages.item[i].start, d->pages.item[i].end);
        ck_assert(!i || d->pages.item[i - 1].end <= d->pages.item[i].start);
    }
}

/* Compare the dump of d with tests/golden/reader/<name>.golden, or rewrite it. */
static void check_golden(const struct chunk_doc *d, const char *name)
{
    struct buf got = BUF_INIT, want = BUF_INIT;
    struct rag_err err = { 0 };
    char rel[256];
    const char *update = getenv("RAG_UPDATE_GOLDEN");
    size_t i, line = 1;

    dump_doc(d, &got);
    snprintf(rel, sizeof(rel), "tests/golden/reader/%s.golden", name);
    if (update && !strcmp(update, "1")) {
        ck_assert_msg(!file_write_atomic(src(rel), got.data, got.len, &err), "%s", err.msg);
    } else {
        ck_assert_msg(!file_read(src(rel), 0, &want, &err), "%s", err.msg);
        for (i = 0; i < got.len && i < want.len && got.data[i] == want.data[i]; i++)
            line += got.data[i] == '\n';
        ck_assert_msg(i == got.len && i == want.len, "%s differs from %s at line %zu", name, rel,
                      line);
    }
    buf_release(&got);
    buf_release(&want);
}

static void read_ok(struct chunk_doc *d, const char *rel)
{
    struct rag_err err = { 0 };

    ck_assert_msg(!chunk_doc_read(d, src(rel), 0, &err), "%s", err.msg);
    assert_sane_doc(d);
}

static void parse_ok(struct chunk_doc *d, const char *s, enum chunk_format fmt)
{
    struct rag_err err = { 0 };

    ck_assert_msg(!chunk_doc_parse(d, s, strlen(s), fmt, "t", &err), "%s", err.msg);
    assert_sane_doc(d);
}

static const char *block_text(const struct chunk_doc *d, size_t i, char *out, size_t n)
{
    const struct chunk_block *k = &d->blocks.item[i];

    ck_assert_uint_lt(i, d->blocks.n);
    snprintf(out, n, "%.*s", (int)(k->end - k->start), d->text + k->start);
    return out;
}

/* ---- format detection and sniffing ---- */

START_TEST(test_format_from_path)
{
    ck_assert_int_eq(chunk_format_from_path("a/b/README.md"), CHUNK_FORMAT_MARKDOWN);
    ck_assert_int_eq(chunk_format_from_path("x.MARKDOWN"), CHUNK_FORMAT_MARKDOWN);
    ck_assert_int_eq(chunk_format_from_path("page.HTM"), CHUNK_FORMAT_HTML);
    ck_assert_int_eq(chunk_format_from_path("page.xhtml"), CHUNK_FORMAT_HTML);
    ck_assert_int_eq(chunk_format_from_path("/tmp/paper.pdf"), CHUNK_FORMAT_PDF);
    ck_assert_int_eq(chunk_format_from_path("notes.txt"), CHUNK_FORMAT_TEXT);
    ck_assert_int_eq(chunk_format_from_path("src/main.c"), CHUNK_FORMAT_TEXT);
    ck_assert_int_eq(chunk_format_from_path("lib.rs"), CHUNK_FORMAT_TEXT);
    ck_assert_int_eq(chunk_format_from_path("dir.d/Makefile"), CHUNK_FORMAT_TEXT);
    ck_assert_int_eq(chunk_format_from_path("LICENSE"), CHUNK_FORMAT_TEXT);
    ck_assert_int_eq(chunk_format_from_path("photo.jpg"), CHUNK_FORMAT_UNKNOWN);
    ck_assert_int_eq(chunk_format_from_path("archive.tar.gz"), CHUNK_FORMAT_UNKNOWN);
    ck_assert_int_eq(chunk_format_from_path("dir.md/noext"), CHUNK_FORMAT_UNKNOWN);
    ck_assert_int_eq(chunk_format_from_path(".md"), CHUNK_FORMAT_UNKNOWN);
    ck_assert_int_eq(chunk_format_from_path("trailing."), CHUNK_FORMAT_UNKNOWN);
    ck_assert_str_eq(chunk_format_name(CHUNK_FORMAT_TEXT), "text");
    ck_assert_str_eq(chunk_format_name(CHUNK_FORMAT_MARKDOWN), "markdown");
    ck_assert_str_eq(chunk_format_name(CHUNK_FORMAT_HTML), "html");
    ck_assert_str_eq(chunk_format_name(CHUNK_FORMAT_PDF), "pdf");
    ck_assert_str_eq(chunk_format_name(CHUNK_FORMAT_UNKNOWN), "unknown");
}
END_TEST

START_TEST(test_is_binary)
{
    static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    char big[20000];

    ck_assert(!chunk_is_binary("", 0));
    ck_assert(!chunk_is_binary("hello\tworld\r\n\f", 14));
    ck_assert(!chunk_is_binary("\x1b[31mred\x1b[0m log line\n", 22));
    ck_assert(!chunk_is_binary("caf\xe9 latin-1 text", 17));
    ck_assert(chunk_is_binary(png, sizeof(png) - 1));
    ck_assert(chunk_is_binary("ab\x01\x02\x03\x04", 6));
    /* a NUL past the sniffed 8 KiB does not make a file binary */
    memset(big, 'a', sizeof(big));
    big[10000] = '\0';
    ck_assert(!chunk_is_binary(big, sizeof(big)));
    big[100] = '\0';
    ck_assert(chunk_is_binary(big, sizeof(big)));
}
END_TEST

/* ---- golden files on real samples ---- */

static void golden_file(const char *file, const char *name)
{
    struct chunk_doc d;
    char rel[256];

    snprintf(rel, sizeof(rel), "tests/data/reader/%s", file);
    read_ok(&d, rel);
    check_golden(&d, name);
    chunk_doc_release(&d);
}

START_TEST(test_golden_text)
{
    golden_file("sotu.txt", "sotu.txt");
}
END_TEST

START_TEST(test_golden_markdown)
{
    golden_file("corepack.md", "corepack.md");
    golden_file("edge.md", "edge.md");
}
END_TEST

START_TEST(test_golden_html)
{
    golden_file("uintcseq.html", "uintcseq.html");
    golden_file("edge.html", "edge.html");
}
END_TEST

START_TEST(test_golden_pdf)
{
    golden_file("copyright-release.pdf", "copyright-release.pdf");
}
END_TEST

/* ---- independent references ---- */

static size_t line_of(const char *text, size_t off)
{
    size_t i, n = 0;

    for (i = 0; i < off; i++)
        n += text[i] == '\n';
    return n;
}

/* Our Markdown blocks as "<kind> <first line> <last line>", as markdown-it-py sees them. */
static void check_md_reference(const char *name)
{
    struct chunk_doc d;
    struct buf got = BUF_INIT, want = BUF_INIT;
    struct rag_err err = { 0 };
    char rel[256];
    size_t i;

    snprintf(rel, sizeof(rel), "tests/data/reader/%s", name);
    read_ok(&d, rel);
    for (i = 0; i < d.blocks.n; i++) {
        const struct chunk_block *k = &d.blocks.item[i];

        buf_appendf(&got, "%s %zu %zu\n", kind_names[k->kind], line_of(d.text, k->start),
                    line_of(d.text, k->end - 1));
    }
    snprintf(rel, sizeof(rel), "tests/golden/reader/%s.ref", name);
    ck_assert_msg(!file_read(src(rel), 0, &want, &err), "%s", err.msg);
    ck_assert_str_eq(buf_cstr(&got), buf_cstr(&want));
    buf_release(&got);
    buf_release(&want);
    chunk_doc_release(&d);
}

START_TEST(test_markdown_vs_markdown_it)
{
    check_md_reference("corepack.md");
    check_md_reference("edge.md");
}
END_TEST

/* Words of text[start, end), single-space joined. */
static void words(const char *text, size_t start, size_t end, struct buf *out)
{
    size_t i = start, j;

    while (i < end) {
        while (i < end && blank_byte(text[i]))
            i++;
        for (j = i; j < end && !blank_byte(text[j]); j++)
            ;
        if (j > i) {
            if (out->len)
                buf_appendc(out, ' ');
            buf_append(out, text + i, j - i);
        }
        i = j;
    }
}

/* Page by page, the same words as pdftotext. */
START_TEST(test_pdf_vs_pdftotext)
{
    struct chunk_doc d;
    struct buf want = BUF_INIT, got = BUF_INIT;
    struct rag_err err = { 0 };
    const char *line;
    size_t i;

    read_ok(&d, "tests/data/reader/copyright-release.pdf");
    ck_assert(!file_read(src("tests/golden/reader/copyright-release.pdf.ref"), 0, &want, &err));
    line = want.data;
    for (i = 0; i < d.pages.n; i++) {
        const char *nl = strchr(line, '\n');

        ck_assert_ptr_nonnull(nl);
        buf_reset(&got);
        words(d.text, d.pages.item[i].start, d.pages.item[i].end, &got);
        ck_assert_uint_eq(got.len, (size_t)(nl - line));
        ck_assert(!memcmp(got.data, line, got.len));
        line = nl + 1;
    }
    ck_assert_str_eq(line, "");
    buf_release(&want);
    buf_release(&got);
    chunk_doc_release(&d);
}
END_TEST

/* ---- text ---- */

START_TEST(test_text_paragraphs)
{
    static const char s[] = "\xef\xbb\xbf  \n\nfirst para\nline two  \n\n\n  second\r\n\r\n"
                            "int f(void)\n{\n    return 1;\n}\n \t \nlast";
    struct chunk_doc d;
    char t[128];

    parse_ok(&d, s, CHUNK_FORMAT_TEXT);
    ck_assert_uint_eq(d.len, sizeof(s) - 1 - 3); /* the byte order mark is dropped */
    ck_assert_ptr_null(d.title);
    ck_assert_uint_eq(d.blocks.n, 4);
    ck_assert_str_eq(block_text(&d, 0, t, sizeof(t)), "first para\nline two");
    ck_assert_str_eq(block_text(&d, 1, t, sizeof(t)), "  second");
    ck_assert_str_eq(block_text(&d, 2, t, sizeof(t)), "int f(void)\n{\n    return 1;\n}");
    ck_assert_str_eq(block_text(&d, 3, t, sizeof(t)), "last");
    ck_assert_uint_eq(d.headings.n, 0);
    ck_assert_uint_eq(d.pages.n, 0);
    chunk_doc_release(&d);
    parse_ok(&d, " \n\t\n\r\n", CHUNK_FORMAT_TEXT);
    ck_assert_uint_eq(d.len, 6);
    ck_assert_uint_eq(d.blocks.n, 0);
    chunk_doc_release(&d);
}
END_TEST

/* Prose without Markdown syntax gives the same blocks either way. */
START_TEST(test_text_same_as_markdown_on_prose)
{
    struct chunk_doc t, m;
    struct buf b = BUF_INIT;
    struct rag_err err = { 0 };
    size_t i;

    ck_assert(!file_read(src("tests/data/reader/sotu.txt"), 0, &b, &err));
    ck_assert(!chunk_doc_parse(&t, b.data, b.len, CHUNK_FORMAT_TEXT, "sotu", &err));
    ck_assert(!chunk_doc_parse(&m, b.data, b.len, CHUNK_FORMAT_MARKDOWN, "sotu", &err));
    ck_assert_uint_gt(t.blocks.n, 10);
    ck_assert_uint_eq(t.blocks.n, m.blocks.n);
    for (i = 0; i < t.blocks.n; i++) {
        ck_assert_uint_eq(t.blocks.item[i].start, m.blocks.item[i].start);
        ck_assert_uint_eq(t.blocks.item[i].end, m.blocks.item[i].end);
        ck_assert_int_eq(m.blocks.item[i].kind, CHUNK_BLOCK_PARAGRAPH);
    }
    buf_release(&b);
    chunk_doc_release(&t);
    chunk_doc_release(&m);
}
END_TEST

/* ---- Markdown ---- */

START_TEST(test_markdown_structure)
{
    static const char s[] =
        "Intro\r\n\r\n# Title #\r\n\r\n| a | b |\r\n|---|:-:|\r\n| 1 | 2 |\r\n\r\n"
        "Second\n======\n\n```c\nx\n\n# no\n```\n\n## Sub\n";
    struct chunk_doc d;
    const struct chunk_block *k;
    char t[128];

    parse_ok(&d, s, CHUNK_FORMAT_MARKDOWN);
    ck_assert_str_eq(d.title, "Title");
    ck_assert_uint_eq(d.blocks.n, 6);
    ck_assert_uint_eq(d.headings.n, 3);
    snprintf(t, sizeof(t), "%.*s", (int)(d.headings.item[0].end - d.headings.item[0].start),
             d.text + d.headings.item[0].start);
    ck_assert_str_eq(t, "Title");
    ck_assert_int_eq(d.headings.item[1].level, 1);
    ck_assert_int_eq(d.headings.item[2].level, 2);
    k = &d.blocks.item[2];
    ck_assert_int_eq(k->kind, CHUNK_BLOCK_TABLE);
    snprintf(t, sizeof(t), "%.*s", (int)(k->header_end - k->start), d.text + k->start);
    ck_assert_str_eq(t, "| a | b |\r\n|---|:-:|");
    ck_assert_str_eq(block_text(&d, 3, t, sizeof(t)), "Second\n======");
    ck_assert_int_eq(d.blocks.item[4].kind, CHUNK_BLOCK_CODE);
    ck_assert_str_eq(block_text(&d, 4, t, sizeof(t)), "```c\nx\n\n# no\n```");
    chunk_doc_release(&d);
}
END_TEST

/* ---- HTML ---- */

START_TEST(test_html_furniture_removed)
{
    static const char *const gone[] = {
        "not text",  "color",  "Site logo", "Home",       "About",  "Sidebar", "navigation",
        "Copyright", "Hidden", "Invisible", "JavaScript", "search", "Go",      "comment",
    };
    struct chunk_doc d;
    size_t i;

    read_ok(&d, "tests/data/reader/edge.html");
    for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        ck_assert_msg(!strstr(d.text, gone[i]), "'%s' should be gone", gone[i]);
    ck_assert_str_eq(d.title, "Edge & Cases");
    ck_assert_ptr_nonnull(strstr(d.text, "# The Main Heading\n\n"));
    ck_assert_ptr_nonnull(strstr(d.text, "Entities: <tag> & caf\xc3\xa9 \xe2\x82\xac"
                                         "5 non breaking space."));
    ck_assert_ptr_nonnull(strstr(d.text, "Line one\nline two\nline three"));
    ck_assert_ptr_nonnull(strstr(d.text, "- second\n  3. three\n  4. four"));
    ck_assert_ptr_nonnull(strstr(d.text, "    return 0; /* <ok> */\n}"));
    chunk_doc_release(&d);
}
END_TEST

/* The outer table lays out blocks; the inner one is a data table with a header. */
START_TEST(test_html_nested_tables)
{
    struct chunk_doc d;
    const struct chunk_block *k = NULL;
    size_t i, n_tables = 0;
    char t[128];

    read_ok(&d, "tests/data/reader/edge.html");
    for (i = 0; i < d.blocks.n; i++) {
        if (d.blocks.item[i].kind != CHUNK_BLOCK_TABLE)
            continue;
        n_tables++;
        k = &d.blocks.item[i];
    }
    ck_assert_uint_eq(n_tables, 2);
    snprintf(t, sizeof(t), "%.*s", (int)(k->end - k->start), d.text + k->start);
    ck_assert_str_eq(t, "| Inner | Head |\n| --- | --- |\n| x | y |");
    ck_assert_uint_eq(k->header_end - k->start, strlen("| Inner | Head |\n| --- | --- |"));
    ck_assert_str_eq(block_text(&d, (size_t)(k - d.blocks.item) - 1, t, sizeof(t)), "Outer cell");
    ck_assert_str_eq(block_text(&d, (size_t)(k - d.blocks.item) + 1, t, sizeof(t)), "Right cell");
    chunk_doc_release(&d);
}
END_TEST

static void html_text(const char *html, const char *want_text, const char *want_title)
{
    struct chunk_doc d;

    parse_ok(&d, html, CHUNK_FORMAT_HTML);
    ck_assert_str_eq(d.text, want_text);
    if (want_title)
        ck_assert_str_eq(d.title, want_title);
    else
        ck_assert_ptr_null(d.title);
    ck_assert_uint_eq(d.n_repaired, 0);
    chunk_doc_release(&d);
}

/* libxml2 honours the declared charset; the output is UTF-8. */
START_TEST(test_html_charsets)
{
    html_text("<html><head><meta http-equiv=\"content-type\" content=\"text/html; "
              "charset=ISO-8859-1\"><title>R\xe9sum\xe9</title></head>"
              "<body><p>Caf\xe9 cr\xe8me \xa9 2024</p></body></html>",
              "Caf\xc3\xa9 cr\xc3\xa8me \xc2\xa9 2024", "R\xc3\xa9sum\xc3\xa9");
    html_text("<meta charset=\"windows-1252\"><p>\x80 5 \x93quoted\x94</p>",
              "\xe2\x82\xac 5 \xe2\x80\x9cquoted\xe2\x80\x9d", NULL);
    html_text("<meta charset=\"utf-8\"><h1>\xc3\xa9t\xc3\xa9</h1><p>x</p>",
              "# \xc3\xa9t\xc3\xa9\n\nx", "\xc3\xa9t\xc3\xa9");
}
END_TEST

START_TEST(test_html_small_cases)
{
    /* title falls back to the first h1; empty headings and items vanish */
    html_text("<h2>Two</h2><h1>One <i>x</i></h1><h3> </h3><ul><li></li></ul>", "## Two\n\n# One x",
              "One x");
    html_text("<html><body></body></html>", "", NULL);
    html_text("<p>a</p><hr><p>b</p><ol start=\"9\"><li>nine<li>ten</ol>",
              "a\n\nb\n\n9. nine\n10. ten", NULL);
    html_text("<table><tr><td>no</td><td>header</td></tr><tr><td>1</td><td>2</td></tr></table>",
              "| no | header |\n| 1 | 2 |", NULL);
    html_text("<div>inline <span><div>block in span</div></span> tail</div>",
              "inline\n\nblock in span\n\ntail", NULL);
    html_text("<pre>\n\n  indented\n\tcode  \n\n</pre>", "  indented\n\tcode", NULL);
}
END_TEST

/* ---- PDF ---- */

/*
 * A cairo user font that draws every glyph as a box: no fontconfig (whose
 * configuration loader leaks, which LeakSanitizer and valgrind would report),
 * while cairo still writes a ToUnicode map so that the text can be extracted.
 */
static cairo_status_t box_glyph(cairo_scaled_font_t *font, unsigned long glyph, cairo_t *cr,
                                cairo_text_extents_t *extents)
{
    (void)font;
    extents->x_advance = 0.6;
    if (glyph != ' ') {
        cairo_rectangle(cr, 0.05, -0.7, 0.5, 0.7);
        cairo_fill(cr);
    }
    return CAIRO_STATUS_SUCCESS;
}

static cairo_status_t box_unicode(cairo_scaled_font_t *font, unsigned long cp, unsigned long *glyph)
{
    (void)font;
    *glyph = cp;
    return CAIRO_STATUS_SUCCESS;
}

static void pdf_line(cairo_t *cr, double y, const char *s)
{
    cairo_move_to(cr, 72, y);
    cairo_show_text(cr, s);
}

/*
 * Four pages from cairo's PDF surface: a heading and two paragraphs, one line,
 * nothing, and two lines. Page 1's paragraphs are separated by extra space.
 */
static void make_pdf(const char *path)
{
    cairo_surface_t *s = cairo_pdf_surface_create(path, 595, 842);
    cairo_t *cr = cairo_create(s);
    cairo_font_face_t *face = cairo_user_font_face_create();

    cairo_user_font_face_set_render_glyph_func(face, box_glyph);
    cairo_user_font_face_set_unicode_to_glyph_func(face, box_unicode);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, "Cairo Test Document");
    cairo_set_font_face(cr, face);
    cairo_set_font_size(cr, 20);
    pdf_line(cr, 80, "Alpha heading");
    cairo_set_font_size(cr, 11);
    pdf_line(cr, 120, "The first paragraph starts on this line and");
    pdf_line(cr, 134, "ends on this one.");
    pdf_line(cr, 170, "The second paragraph has one line.");
    cairo_show_page(cr);
    pdf_line(cr, 100, "Bravo page two.");
    cairo_show_page(cr);
    cairo_show_page(cr);
    pdf_line(cr, 100, "Delta page four,");
    pdf_line(cr, 114, "second line.");
    cairo_show_page(cr);
    cairo_destroy(cr);
    cairo_font_face_destroy(face);
    cairo_surface_finish(s);
    ck_assert_int_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    cairo_surface_destroy(s);
}

static const char *page_text(const struct chunk_doc *d, size_t i, char *out, size_t n)
{
    ck_assert_uint_lt(i, d->pages.n);
    snprintf(out, n, "%.*s", (int)(d->pages.item[i].end - d->pages.item[i].start),
             d->text + d->pages.item[i].start);
    return out;
}

START_TEST(test_pdf_generated)
{
    char path[4200], t[256];
    const char *dir = test_tmpdir();
    struct chunk_doc d;
    struct rag_err err = { 0 };

    snprintf(path, sizeof(path), "%s/gen.pdf", dir);
    make_pdf(path);
    ck_assert_msg(!chunk_doc_read(&d, path, 0, &err), "%s", err.msg);
    assert_sane_doc(&d);
    ck_assert_int_eq(d.format, CHUNK_FORMAT_PDF);
    ck_assert_str_eq(d.title, "Cairo Test Document");
    ck_assert_uint_eq(d.pages.n, 4);
    ck_assert_str_eq(page_text(&d, 0, t, sizeof(t)),
                     "Alpha heading\n\nThe first paragraph starts on this line and\n"
                     "ends on this one.\n\nThe second paragraph has one line.");
    ck_assert_str_eq(page_text(&d, 1, t, sizeof(t)), "Bravo page two.");
    ck_assert_str_eq(page_text(&d, 2, t, sizeof(t)), "");
    ck_assert_str_eq(page_text(&d, 3, t, sizeof(t)), "Delta page four,\nsecond line.");
    ck_assert_uint_eq(d.blocks.n, 5);
    ck_assert_str_eq(block_text(&d, 2, t, sizeof(t)), "The second paragraph has one line.");
    ck_assert_uint_eq(d.blocks.item[3].start, d.pages.item[1].start);
    ck_assert_uint_eq(d.blocks.item[4].start, d.pages.item[3].start);
    ck_assert_uint_eq(d.blocks.item[4].end, d.len);
    chunk_doc_release(&d);
    test_rmtree(dir);
}
END_TEST

static void read_fails(const char *path, size_t max, int code, const char *msg)
{
    struct chunk_doc d;
    struct rag_err err = { 0 };

    ck_assert_int_eq(chunk_doc_read(&d, path, max, &err), code);
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_ptr_null(d.text);
    ck_assert_uint_eq(d.blocks.n, 0);
    chunk_doc_release(&d);
}

/* read_fails with the message "'<path>': <what>". */
static void read_fails_on(const char *path, size_t max, int code, const char *what)
{
    struct buf msg = BUF_INIT;

    buf_appendf(&msg, "'%s': %s", path, what);
    read_fails(path, max, code, msg.data);
    buf_release(&msg);
}

START_TEST(test_pdf_bad)
{
    const char *dir = test_tmpdir();
    struct buf pdf = BUF_INIT;
    struct rag_err err = { 0 };
    char path[4200];

    read_fails_on(src("tests/data/reader/encrypted.pdf"), 0, RAG_EFORMAT, "Document is encrypted");
    ck_assert(!file_read(src("tests/data/reader/copyright-release.pdf"), 0, &pdf, &err));
    snprintf(path, sizeof(path), "%s/truncated.pdf", dir);
    test_write_file(path, pdf.data, pdf.len / 2);
    read_fails_on(path, 0, RAG_EFORMAT, "PDF document is damaged");
    snprintf(path, sizeof(path), "%s/corrupt.pdf", dir);
    memset(pdf.data + 9, 'x', pdf.len - 9); /* keep "%PDF-1.2\n", wipe the rest */
    test_write_file(path, pdf.data, pdf.len);
    read_fails_on(path, 0, RAG_EFORMAT, "PDF document is damaged");
    snprintf(path, sizeof(path), "%s/notpdf.pdf", dir);
    test_write_file(path, "hello, world\n", 13);
    read_fails_on(path, 0, RAG_EFORMAT, "PDF document is damaged");
    buf_release(&pdf);
    test_rmtree(dir);
}
END_TEST

/* ---- bad inputs ---- */

START_TEST(test_binary_refused)
{
    static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0";
    const char *dir = test_tmpdir();
    char path[4200];
    struct chunk_doc d;
    struct rag_err err = { 0 };

    snprintf(path, sizeof(path), "%s/image.txt", dir);
    test_write_file(path, png, sizeof(png) - 1);
    read_fails_on(path, 0, RAG_EINVAL, "binary file");
    snprintf(path, sizeof(path), "%s/image.html", dir);
    test_write_file(path, png, sizeof(png) - 1);
    read_fails_on(path, 0, RAG_EINVAL, "binary file");
    ck_assert_int_eq(
        chunk_doc_parse(&d, "a\x01\x02\x03\x04\x05", 6, CHUNK_FORMAT_MARKDOWN, "ctl.md", &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "'ctl.md': binary file");
    chunk_doc_release(&d);
    test_rmtree(dir);
}
END_TEST

START_TEST(test_empty_files)
{
    static const char *const names[] = { "e.txt", "e.md", "e.html", "e.pdf" };
    const char *dir = test_tmpdir();
    char path[4200];
    struct chunk_doc d;
    struct rag_err err = { 0 };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        test_write_file(path, "", 0);
        ck_assert_msg(!chunk_doc_read(&d, path, 0, &err), "%s", err.msg);
        ck_assert_str_eq(d.text, "");
        ck_assert_uint_eq(d.len, 0);
        ck_assert_uint_eq(d.blocks.n + d.headings.n + d.pages.n, 0);
        ck_assert_ptr_null(d.title);
        chunk_doc_release(&d);
    }
    /* blank HTML parses to nothing too */
    parse_ok(&d, " \n\t ", CHUNK_FORMAT_HTML);
    ck_assert_uint_eq(d.len, 0);
    chunk_doc_release(&d);
    test_rmtree(dir);
}
END_TEST

START_TEST(test_invalid_utf8_repaired)
{
    static const char bad[] = "ok \xff\xfe bad \xc3( cut \xe2\x82 end \xed\xa0\x80 \xc3\xa9\n";
    static const char want[] = "ok \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd( cut "
                               "\xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                               " \xc3\xa9\n";
    static char big[9000];
    const char *dir = test_tmpdir();
    char path[4200];
    struct chunk_doc d;
    FILE *f;

    parse_ok(&d, bad, CHUNK_FORMAT_TEXT);
    ck_assert_str_eq(d.text, want);
    ck_assert_uint_eq(d.n_repaired, 8);
    chunk_doc_release(&d);
    parse_ok(&d, bad, CHUNK_FORMAT_MARKDOWN);
    ck_assert_uint_eq(d.n_repaired, 8);
    chunk_doc_release(&d);
    /* the same through a file, behind a byte order mark */
    snprintf(path, sizeof(path), "%s/bad.md", dir);
    test_write_file(path, "\xef\xbb\xbf", 3);
    f = fopen(path, "ab");
    ck_assert_uint_eq(fwrite(bad, 1, sizeof(bad) - 1, f), sizeof(bad) - 1);
    fclose(f);
    ck_assert(!chunk_doc_read(&d, path, 0, NULL));
    ck_assert_str_eq(d.text, want);
    ck_assert_uint_eq(d.n_repaired, 8);
    chunk_doc_release(&d);
    test_rmtree(dir);
    /* a NUL past the sniffed prefix is replaced, not kept in the text */
    memset(big, 'a', sizeof(big) - 1);
    big[8500] = '\0';
    ck_assert(!chunk_doc_parse(&d, big, sizeof(big) - 1, CHUNK_FORMAT_TEXT, "nul", NULL));
    assert_sane_doc(&d);
    ck_assert_uint_eq(d.n_repaired, 1);
    ck_assert_uint_eq(d.len, sizeof(big) - 1 + 2);
    ck_assert(!memcmp(d.text + 8500, "\xef\xbf\xbd", 3));
    chunk_doc_release(&d);
}
END_TEST

START_TEST(test_unreadable_and_missing)
{
    const char *dir = test_tmpdir();
    char path[4200], msg[4400];

    snprintf(path, sizeof(path), "%s/secret.txt", dir);
    test_write_file(path, "hidden\n", 7);
    ck_assert_int_eq(chmod(path, 0), 0);
    if (geteuid() != 0) { /* root reads anything */
        snprintf(msg, sizeof(msg), "open '%s': %s", path, strerror(EACCES));
        read_fails(path, 0, RAG_EIO, msg);
    }
    snprintf(path, sizeof(path), "%s/missing.md", dir);
    snprintf(msg, sizeof(msg), "open '%s': %s", path, strerror(ENOENT));
    read_fails(path, 0, RAG_EIO, msg);
    snprintf(path, sizeof(path), "%s/folder.md", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(msg, sizeof(msg), "read '%s': %s", path, strerror(EISDIR));
    read_fails(path, 0, RAG_EIO, msg);
    snprintf(path, sizeof(path), "%s/photo.jpg", dir);
    read_fails_on(path, 0, RAG_EINVAL, "unknown document format");
    test_rmtree(dir);
}
END_TEST

/* A 200 MB sparse file is refused from its size alone, without reading it. */
START_TEST(test_too_large)
{
    const char *dir = test_tmpdir();
    char path[4200];
    double t0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/huge.txt", dir);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), 200 << 20), 0);
    fclose(f);
    t0 = time_now();
    read_fails_on(path, 10 << 20, RAG_EINVAL, "file too large (209715200 bytes, limit 10485760)");
    ck_assert(time_now() - t0 < 0.5);
    test_rmtree(dir);
}
END_TEST

START_TEST(test_parse_unknown_format)
{
    struct chunk_doc d;
    struct rag_err err = { 0 };

    ck_assert_int_eq(chunk_doc_parse(&d, "x", 1, CHUNK_FORMAT_UNKNOWN, "x.bin", &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "'x.bin': unknown document format");
    chunk_doc_release(&d);
    chunk_doc_release(&d);
    chunk_doc_release(NULL);
}
END_TEST

/* Library code never prints: parse inputs that make libxml2 and poppler complain. */
START_TEST(test_nothing_printed)
{
    static const char html[] = "<meta charset=\"EBCDIC-US\"><p>x</p></b></table><p>&bogus;";
    static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                              "trailer << /Root 1 0 R >>\n%%EOF\n";
    const char *dir = test_tmpdir();
    char path[4200];
    struct chunk_doc d;
    struct stat st;
    int saved = dup(2), fd;

    snprintf(path, sizeof(path), "%s/stderr", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    ck_assert(!chunk_doc_parse(&d, html, sizeof(html) - 1, CHUNK_FORMAT_HTML, "h", NULL));
    chunk_doc_release(&d);
    chunk_doc_parse(&d, pdf, sizeof(pdf) - 1, CHUNK_FORMAT_PDF, "p", NULL);
    chunk_doc_release(&d);
    dup2(saved, 2);
    close(saved);
    close(fd);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, 0);
    test_rmtree(dir);
}
END_TEST

static Suite *reader_suite(void)
{
    Suite *s = suite_create("reader");
    TCase *tc = tcase_create("format");

    tcase_add_test(tc, test_format_from_path);
    tcase_add_test(tc, test_is_binary);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_test(tc, test_golden_text);
    tcase_add_test(tc, test_golden_markdown);
    tcase_add_test(tc, test_golden_html);
    tcase_add_test(tc, test_golden_pdf);
    tcase_add_test(tc, test_markdown_vs_markdown_it);
    tcase_add_test(tc, test_pdf_vs_pdftotext);
    suite_add_tcase(s, tc);
    tc = tcase_create("formats");
    tcase_add_test(tc, test_text_paragraphs);
    tcase_add_test(tc, test_text_same_as_markdown_on_prose);
    tcase_add_test(tc, test_markdown_structure);
    tcase_add_test(tc, test_html_furniture_removed);
    tcase_add_test(tc, test_html_nested_tables);
    tcase_add_test(tc, test_html_charsets);
    tcase_add_test(tc, test_html_small_cases);
    tcase_add_test(tc, test_pdf_generated);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_pdf_bad);
    tcase_add_test(tc, test_binary_refused);
    tcase_add_test(tc, test_empty_files);
    tcase_add_test(tc, test_invalid_utf8_repaired);
    tcase_add_test(tc, test_unreadable_and_missing);
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_parse_unknown_format);
    tcase_add_test(tc, test_nothing_printed);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(reader_suite)
