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
#include <strings.h>

#include "chunking/reader.h"

#define SNIFF_BYTES 8192

struct ext_format {
    const char *ext;
    enum chunk_format format;
};

/* Extensions we read; anything else is CHUNK_FORMAT_UNKNOWN and skipped by ingest. */
static const struct ext_format ext_formats[] = {
    { "md", CHUNK_FORMAT_MARKDOWN },    { "markdown", CHUNK_FORMAT_MARKDOWN },
    { "mdown", CHUNK_FORMAT_MARKDOWN }, { "mkd", CHUNK_FORMAT_MARKDOWN },
    { "mkdn", CHUNK_FORMAT_MARKDOWN },  { "html", CHUNK_FORMAT_HTML },
    { "htm", CHUNK_FORMAT_HTML },       { "xhtml", CHUNK_FORMAT_HTML },
    { "pdf", CHUNK_FORMAT_PDF },
    /* prose and markup read as plain text */
    { "txt", CHUNK_FORMAT_TEXT }, { "text", CHUNK_FORMAT_TEXT }, { "log", CHUNK_FORMAT_TEXT },
    { "rst", CHUNK_FORMAT_TEXT }, { "adoc", CHUNK_FORMAT_TEXT }, { "org", CHUNK_FORMAT_TEXT },
    { "tex", CHUNK_FORMAT_TEXT }, { "bib", CHUNK_FORMAT_TEXT }, { "csv", CHUNK_FORMAT_TEXT },
    { "tsv", CHUNK_FORMAT_TEXT }, { "json", CHUNK_FORMAT_TEXT }, { "yaml", CHUNK_FORMAT_TEXT },
    { "yml", CHUNK_FORMAT_TEXT }, { "toml", CHUNK_FORMAT_TEXT }, { "ini", CHUNK_FORMAT_TEXT },
    { "cfg", CHUNK_FORMAT_TEXT }, { "conf", CHUNK_FORMAT_TEXT }, { "xml", CHUNK_FORMAT_TEXT },
    { "srt", CHUNK_FORMAT_TEXT }, { "diff", CHUNK_FORMAT_TEXT }, { "patch", CHUNK_FORMAT_TEXT },
    /* source code */
    { "c", CHUNK_FORMAT_TEXT }, { "h", CHUNK_FORMAT_TEXT }, { "cc", CHUNK_FORMAT_TEXT },
    { "cpp", CHUNK_FORMAT_TEXT }, { "cxx", CHUNK_FORMAT_TEXT }, { "hpp", CHUNK_FORMAT_TEXT },
    { "hh", CHUNK_FORMAT_TEXT }, { "cu", CHUNK_FORMAT_TEXT }, { "cuh", CHUNK_FORMAT_TEXT },
    { "py", CHUNK_FORMAT_TEXT }, { "js", CHUNK_FORMAT_TEXT }, { "mjs", CHUNK_FORMAT_TEXT },
    { "ts", CHUNK_FORMAT_TEXT }, { "tsx", CHUNK_FORMAT_TEXT }, { "jsx", CHUNK_FORMAT_TEXT },
    { "go", CHUNK_FORMAT_TEXT }, { "rs", CHUNK_FORMAT_TEXT }, { "java", CHUNK_FORMAT_TEXT },
    { "kt", CHUNK_FORMAT_TEXT }, { "scala", CHUNK_FORMAT_TEXT }, { "rb", CHUNK_FORMAT_TEXT },
    { "php", CHUNK_FORMAT_TEXT }, { "pl", CHUNK_FORMAT_TEXT }, { "pm", CHUNK_FORMAT_TEXT },
    { "lua", CHUNK_FORMAT_TEXT }, { "r", CHUNK_FORMAT_TEXT }, { "swift", CHUNK_FORMAT_TEXT },
    { "cs", CHUNK_FORMAT_TEXT }, { "sh", CHUNK_FORMAT_TEXT }, { "bash", CHUNK_FORMAT_TEXT },
    { "zsh", CHUNK_FORMAT_TEXT }, { "sql", CHUNK_FORMAT_TEXT }, { "el", CHUNK_FORMAT_TEXT },
    { "hs", CHUNK_FORMAT_TEXT }, { "ml", CHUNK_FORMAT_TEXT }, { "ex", CHUNK_FORMAT_TEXT },
    { "erl", CHUNK_FORMAT_TEXT }, { "css", CHUNK_FORMAT_TEXT }, { "cmake", CHUNK_FORMAT_TEXT },
    { "mk", CHUNK_FORMAT_TEXT }, { "proto", CHUNK_FORMAT_TEXT }, { "vim", CHUNK_FORMAT_TEXT },
};

/* Extensionless files that are text by convention. */
static const char *const text_names[] = {
    "README", "LICENSE", "COPYING", "CHANGELOG", "NEWS", "INSTALL", "AUTHORS", "CONTRIBUTING",
    "TODO", "Makefile", "Dockerfile",
};

enum chunk_format chunk_format_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    const char *dot;
    size_t i;

    base = base ? base + 1 : path;
    dot = strrchr(base, '.');
    if (!dot || dot == base) {
        for (i = 0; i < sizeof(text_names) / sizeof(text_names[0]); i++) {
            if (!strcmp(base, text_names[i]))
                return CHUNK_FORMAT_TEXT;
        }
        return CHUNK_FORMAT_UNKNOWN;
    }
    for (i = 0; i < sizeof(ext_formats) / sizeof(ext_formats[0]); i++) {
        if (!strcasecmp(dot + 1, ext_formats[i].ext))
            return ext_formats[i].format;
    }
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

bool chunk_is_blank(const char *text, size_t start, size_t end)
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

void chunk_doc_title_from_headings(struct chunk_doc *doc)
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
    while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t' ||
                           text[end - 1] == '\r' || text[end - 1] == '\f' ||
                           text[end - 1] == '\v'))
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
        if (chunk_is_blank(text, pos, eol)) {
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

/* Text and Markdown: the input itself, repaired, without a byte order mark. */
static void read_source(struct chunk_doc *doc, const char *data, size_t len)
{
    struct buf b = BUF_INIT;

    if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) {
        data += 3;
        len -= 3;
    }
    b.data = xmalloc(len + 1);
    b.cap = len + 1;
    doc->n_repaired = chunk_utf8_append(&b, data, len);
    buf_append(&b, "", 0);
    doc->text = buf_detach(&b, &doc->len);
    if (doc->format == CHUNK_FORMAT_MARKDOWN)
        chunk_read_markdown(doc);
    else
        chunk_text_paragraphs(doc, 0, doc->len); /* source code too: blank lines split it */
}

int chunk_doc_parse(struct chunk_doc *doc, const char *data, size_t len, enum chunk_format fmt,
                    const char *name, struct rag_err *err)
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
        read_source(doc, data, len);
    if (rc) {
        chunk_doc_release(doc);
        return rc;
    }
    chunk_doc_title_from_headings(doc);
    return 0;
}

int chunk_doc_read(struct chunk_doc *doc, const char *path, size_t max_bytes,
                   struct rag_err *err)
{
    struct buf b = BUF_INIT;
    enum chunk_format fmt = chunk_format_from_path(path);
    int rc;

    memset(doc, 0, sizeof(*doc));
    if (fmt == CHUNK_FORMAT_UNKNOWN)
        return rag_errf(err, RAG_EINVAL, "'%s': unknown document format", path);
    rc = file_read(path, max_bytes, &b, err);
    if (!rc)
        rc = chunk_doc_parse(doc, b.data, b.len, fmt, path, err);
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
