/*
 * chunking/reader.c - the reader half of chunking.h: format detection by file
 * name, binary sniffing, UTF-8 repair, dispatch to the per-format readers
 * (reader_md.c, reader_html.c, reader_pdf.c), and the plain text reader.
 *
 * Plain text and source code get one PARAGRAPH block per run of non-blank
 * lines: one pass with memchr over the line breaks and no allocation besides
 * the block array. Code gets no special treatment; blank lines already
 * separate its functions and declarations.
 *
 * Text and Markdown are kept as they are in the file (minus a UTF-8 byte order
 * mark), so every span points into the original text. Invalid UTF-8 bytes and
 * NUL bytes past the sniffed prefix become U+FFFD, counted in n_repaired.
 * Binary data is refused, except for PDF, which is binary by nature.
 */
#include "chunking/chunking.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "chunking/reader.h"

#define SNIFF_BYTES 8192

/*
 * Extensions we read, each surrounded by spaces; anything else is
 * CHUNK_FORMAT_UNKNOWN and skipped by ingest. Prose markup such as reST,
 * AsciiDoc and LaTeX, data and configuration files, and source code are read
 * as plain text.
 */
static const char markdown_exts[] = " md markdown mdown mkd mkdn ";
static const char html_exts[] = " html htm xhtml ";
static const char text_exts[] =
    " txt text log rst adoc org tex bib csv tsv json yaml yml toml ini cfg conf xml srt diff"
    " patch c h cc cpp cxx hpp hh cu cuh py js mjs ts tsx jsx go rs java kt scala rb php pl pm"
    " lua r swift cs sh bash zsh sql el hs ml ex erl css cmake mk proto vim ";
/* Extensionless files that are text by convention. */
static const char text_names[] =
    " README LICENSE COPYING CHANGELOG NEWS INSTALL AUTHORS CONTRIBUTING TODO Makefile"
    " Dockerfile ";

/* Is word (at most 30 bytes) one of the space-separated words in list? */
static bool in_list(const char *list, const char *word, bool fold_case)
{
    char key[34];
    size_t n = strlen(word), i;

    if (n == 0 || n > 30)
        return false;
    key[0] = ' ';
    for (i = 0; i < n; i++)
        key[i + 1] = fold_case && word[i] >= 'A' && word[i] <= 'Z' ? word[i] + 32 : word[i];
    key[n + 1] = ' ';
    key[n + 2] = '\0';
    return strstr(list, key) != NULL;
}

enum chunk_format chunk_format_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    const char *dot;

    base = base ? base + 1 : path;
    dot = strrchr(base, '.');
    if (!dot || dot == base)
        return in_list(text_names, base, false) ? CHUNK_FORMAT_TEXT : CHUNK_FORMAT_UNKNOWN;
    if (in_list(markdown_exts, dot + 1, true))
        return CHUNK_FORMAT_MARKDOWN;
    if (in_list(html_exts, dot + 1, true))
        return CHUNK_FORMAT_HTML;
    if (in_list(" pdf ", dot + 1, true))
        return CHUNK_FORMAT_PDF;
    if (in_list(text_exts, dot + 1, true))
        return CHUNK_FORMAT_TEXT;
    return CHUNK_FORMAT_UNKNOWN;
}

const char *chunk_format_name(enum chunk_format f)
{
    switch (f) {
    case CHUNK_FORMAT_TEXT:
        return "text";
    case CHUNK_FORMAT_MARKDOWN:
        return "markdown";
    case CHUNK_FORMAT_HTML:
        return "html";
    case CHUNK_FORMAT_PDF:
        return "pdf";
    case CHUNK_FORMAT_UNKNOWN:
        break;
    }
    return "unknown";
}

/*
 * Git's rule (a NUL in the first 8000 bytes) plus a share of control bytes:
 * more than one in ten of the sniffed bytes, not counting tab, line breaks,
 * form feed, vertical tab and ESC (colour codes in logs).
 */
bool chunk_is_binary(const char *data, size_t len)
{
    size_t n = len < SNIFF_BYTES ? len : SNIFF_BYTES, i, ctrl = 0;
    unsigned char c;

    if (memchr(data, 0, n))
        return true;
    for (i = 0; i < n; i++) {
        c = (unsigned char)data[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' &&
             c != 0x1b) ||
            c == 0x7f)
            ctrl++;
    }
    return ctrl * 10 > n;
}

size_t chunk_utf8_append(struct buf *out, const char *s, size_t n)
{
    const char *nul;
    size_t bad = 0, seg;

    if (utf8_valid_prefix(s, n) == n && !memchr(s, 0, n)) {
        buf_append(out, s, n);
        return 0;
    }
    while (n) {
        nul = memchr(s, 0, n);
        seg = nul ? (size_t)(nul - s) : n;
        bad += utf8_repair(s, seg, out);
        s += seg;
        n -= seg;
        if (nul) {
            buf_append(out, "\xef\xbf\xbd", 3);
            bad++;
            s++;
            n--;
        }
    }
    return bad;
}

/* True when text[start, end) holds only spaces, tabs, CR, FF and VT. */
static bool line_blank(const char *text, size_t start, size_t end)
{
    size_t i;

    for (i = start; i < end; i++) {
        char c = text[i];

        if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v')
            return false;
    }
    return true;
}

void chunk_doc_add_block(struct chunk_doc *doc, enum chunk_block_kind kind, size_t start,
                         size_t end, size_t header_end, int level)
{
    struct chunk_block *b;

    assert(start < end && header_end >= start && header_end <= end);
    assert(!doc->blocks.n || doc->blocks.item[doc->blocks.n - 1].end <= start);
    VEC_RESERVE(&doc->blocks, doc->blocks.n + 1);
    b = &doc->blocks.item[doc->blocks.n++];
    b->start = start;
    b->end = end;
    b->header_end = header_end;
    b->kind = kind;
    b->level = level;
}

void chunk_doc_add_heading(struct chunk_doc *doc, size_t start, size_t end, int level)
{
    struct chunk_heading *h;

    assert(start <= end && level >= 1 && level <= 6);
    VEC_RESERVE(&doc->headings, doc->headings.n + 1);
    h = &doc->headings.item[doc->headings.n++];
    h->start = start;
    h->end = end;
    h->level = level;
}

/* Set doc->title to the first level-1 heading when it is still NULL. */
static void title_from_headings(struct chunk_doc *doc)
{
    size_t i;

    for (i = 0; i < doc->headings.n && !doc->title; i++) {
        const struct chunk_heading *h = &doc->headings.item[i];

        if (h->level == 1 && h->end > h->start)
            doc->title = xstrndup(doc->text + h->start, h->end - h->start);
    }
}

/* End of the line starting at pos (the '\n' or to). */
static size_t line_end(const char *text, size_t pos, size_t to)
{
    const char *nl = memchr(text + pos, '\n', to - pos);

    return nl ? (size_t)(nl - text) : to;
}

/* Drop trailing blanks (and a CR) from text[start, end). */
static size_t rtrim(const char *text, size_t start, size_t end)
{
    while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r' ||
                           text[end - 1] == '\f' || text[end - 1] == '\v'))
        end--;
    return end;
}

void chunk_text_paragraphs(struct chunk_doc *doc, size_t from, size_t to)
{
    const char *text = doc->text;
    size_t pos = from, eol, start = 0, last = 0;
    bool open = false;

    while (pos < to) {
        eol = line_end(text, pos, to);
        if (line_blank(text, pos, eol)) {
            if (open)
                chunk_doc_add_block(doc, CHUNK_BLOCK_PARAGRAPH, start, last, start, 0);
            open = false;
        } else {
            if (!open)
                start = pos;
            open = true;
            last = rtrim(text, pos, eol);
        }
        pos = eol + 1;
    }
    if (open)
        chunk_doc_add_block(doc, CHUNK_BLOCK_PARAGRAPH, start, last, start, 0);
}

/*
 * Text and Markdown: the input itself, repaired, without a byte order mark.
 * When owned holds data that needs no change, its buffer becomes the text.
 */
static void read_source(struct chunk_doc *doc, const char *data, size_t len, struct buf *owned)
{
    struct buf b = BUF_INIT;

    if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) {
        data += 3;
        len -= 3;
    }
    if (owned && owned->data == data && utf8_valid_prefix(data, len) == len &&
        !memchr(data, 0, len)) {
        doc->text = buf_detach(owned, &doc->len);
    } else {
        b.data = xmalloc(len + 1);
        b.cap = len + 1;
        doc->n_repaired = chunk_utf8_append(&b, data, len);
        buf_append(&b, "", 0);
        doc->text = buf_detach(&b, &doc->len);
    }
    if (doc->format == CHUNK_FORMAT_MARKDOWN)
        chunk_read_markdown(doc);
    else
        chunk_text_paragraphs(doc, 0, doc->len); /* source code too: blank lines split it */
}

/* chunk_doc_parse, where owned (or NULL) is a buffer holding data that may be taken. */
static int parse(struct chunk_doc *doc, const char *data, size_t len, enum chunk_format fmt,
                 const char *name, struct buf *owned, struct rag_err *err)
{
    int rc = 0;

    memset(doc, 0, sizeof(*doc));
    doc->format = fmt;
    if (fmt == CHUNK_FORMAT_UNKNOWN)
        return rag_errf(err, RAG_EINVAL, "'%s': unknown document format", name);
    if (fmt != CHUNK_FORMAT_PDF && chunk_is_binary(data, len))
        return rag_errf(err, RAG_EINVAL, "'%s': binary file", name);
    if (len == 0) {
        doc->text = xstrdup("");
        return 0;
    }
    if (fmt == CHUNK_FORMAT_HTML)
        rc = chunk_read_html(doc, data, len, name, err);
    else if (fmt == CHUNK_FORMAT_PDF)
        rc = chunk_read_pdf(doc, data, len, name, err);
    else
        read_source(doc, data, len, owned);
    if (rc) {
        chunk_doc_release(doc);
        return rc;
    }
    title_from_headings(doc);
    return 0;
}

int chunk_doc_parse(struct chunk_doc *doc, const char *data, size_t len, enum chunk_format fmt,
                    const char *name, struct rag_err *err)
{
    return parse(doc, data, len, fmt, name, NULL, err);
}

/* file_read checks the size with fstat before reading anything. */
int chunk_doc_read(struct chunk_doc *doc, const char *path, size_t max_bytes, struct rag_err *err)
{
    struct buf b = BUF_INIT;
    enum chunk_format fmt = chunk_format_from_path(path);
    int rc;

    memset(doc, 0, sizeof(*doc));
    if (fmt == CHUNK_FORMAT_UNKNOWN)
        return rag_errf(err, RAG_EINVAL, "'%s': unknown document format", path);
    rc = file_read(path, max_bytes, &b, err);
    if (!rc)
        rc = parse(doc, b.data, b.len, fmt, path, &b, err);
    buf_release(&b);
    return rc;
}

void chunk_doc_release(struct chunk_doc *doc)
{
    if (!doc)
        return;
    free(doc->text);
    free(doc->title);
    free(doc->blocks.item);
    free(doc->headings.item);
    free(doc->pages.item);
    memset(doc, 0, sizeof(*doc));
}
