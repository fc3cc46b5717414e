/*
 * chunking/reader_text.c - plain text and source code: one PARAGRAPH block per
 * run of non-blank lines. Source code gets no special treatment: blank lines
 * already separate functions and declarations well enough for the chunkers.
 *
 * One pass with memchr over the line breaks and no allocation besides the
 * block array, so this runs at memory speed.
 */
#include "chunking/reader.h"

#include <string.h>

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

void chunk_read_text(struct chunk_doc *doc)
{
    chunk_text_paragraphs(doc, 0, doc->len);
}
