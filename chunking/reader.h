/*
 * chunking/reader.h - internal to chunking/: what the document readers share.
 *
 * chunk_doc_parse (reader.c) checks for binary data, then hands the input to
 * one reader per format. The text and Markdown readers work on doc->text,
 * which reader.c has already filled with the repaired input; the HTML and PDF
 * readers build doc->text themselves and repair each fragment they append.
 * Every reader leaves blocks in order, non-overlapping, and covering every
 * non-blank byte of doc->text.
 */
#ifndef CHUNKING_READER_H
#define CHUNKING_READER_H

#include "chunking/chunking.h"

/* Append a block; for a table, header_end is the end of the header rows. */
void chunk_doc_add_block(struct chunk_doc *doc, enum chunk_block_kind kind, size_t start,
                         size_t end, size_t header_end, int level);
void chunk_doc_add_heading(struct chunk_doc *doc, size_t start, size_t end, int level);

/*
 * Append s[0..n) to out as valid UTF-8 without NUL bytes: each invalid byte
 * and each NUL becomes U+FFFD. Returns the number of replacements.
 */
size_t chunk_utf8_append(struct buf *out, const char *s, size_t n);

/*
 * Add a PARAGRAPH block for each run of non-blank lines in
 * doc->text[from, to). A block runs from the start of its first line to the
 * end of its last line, without trailing blanks and the line break.
 */
void chunk_text_paragraphs(struct chunk_doc *doc, size_t from, size_t to);

/* The readers. doc->format is set; doc->text is set for Markdown. */
void chunk_read_markdown(struct chunk_doc *doc);
int chunk_read_html(struct chunk_doc *doc, const char *data, size_t len, const char *name,
                    struct rag_err *err);
int chunk_read_pdf(struct chunk_doc *doc, const char *data, size_t len, const char *name,
                   struct rag_err *err);

#endif
