/*
 * chunking/chunking.h - read documents into text plus structure, and cut
 * them into retrieval chunks.
 *
 * Readers turn a file (plain text or source code, Markdown, HTML, PDF) into a
 * struct chunk_doc: valid UTF-8 text, structural blocks (the split points),
 * headings with levels and spans, and page spans. Chunkers cut a chunk_doc
 * into chunks that each keep their byte span in the document text, the page
 * range and the heading path. Sizes are in tokens, counted by a tokenizer the
 * caller passes in (struct chunk_tokenizer), so this folder depends on
 * neither generation/ nor retrieval/.
 */
#ifndef CHUNKING_CHUNKING_H
#define CHUNKING_CHUNKING_H

#include "base/base.h"

/* ---- documents ---- */

enum chunk_format {
    CHUNK_FORMAT_UNKNOWN,
    CHUNK_FORMAT_TEXT, /* plain text and source code */
    CHUNK_FORMAT_MARKDOWN,
    CHUNK_FORMAT_HTML,
    CHUNK_FORMAT_PDF,
};

enum chunk_block_kind {
    CHUNK_BLOCK_PARAGRAPH,
    CHUNK_BLOCK_HEADING,
    CHUNK_BLOCK_LIST,
    CHUNK_BLOCK_CODE,  /* never cut inside by the structure chunker */
    CHUNK_BLOCK_TABLE, /* one row per line; rows are never cut */
};

/*
 * A structural block: text[start, end) of the document. Blocks are in order,
 * do not overlap and need not cover whitespace between them. For a table,
 * [start, header_end) is the header row (header_end == start when there is
 * none); a table cut across chunks repeats it.
 */
struct chunk_block {
    size_t start, end;
    size_t header_end;
    enum chunk_block_kind kind;
    int level; /* heading level 1..6, 0 for other kinds */
};

/* A heading: its title is text[start, end); level 1..6. */
struct chunk_heading {
    size_t start, end;
    int level;
};

/* Page number (1-based) covering text[start, end). */
struct chunk_page {
    size_t start, end;
    int number;
};

/*
 * A document read into memory. text is valid UTF-8, NUL-terminated, owned by
 * the doc. Released with chunk_doc_release.
 */
struct chunk_doc {
    char *text;
    size_t len;
    enum chunk_format format;
    char *title; /* first level-1 heading, <title>, PDF title, or NULL */
    struct {
        struct chunk_block *item;
        size_t n, cap;
    } blocks;
    struct {
        struct chunk_heading *item;
        size_t n, cap;
    } headings;
    struct {
        struct chunk_page *item;
        size_t n, cap;
    } pages;           /* empty for formats without pages */
    size_t n_repaired; /* invalid UTF-8 bytes replaced by U+FFFD */
};

/* Format from the file name extension; CHUNK_FORMAT_UNKNOWN when not ours. */
enum chunk_format chunk_format_from_path(const char *path);
const char *chunk_format_name(enum chunk_format f); /* "text", "markdown", ... */
/* True when data looks binary (NUL bytes or mostly control bytes). */
bool chunk_is_binary(const char *data, size_t len);

/*
 * Parse data[0..len) of format fmt into doc (which is initialised here).
 * name is used in messages only. Returns 0; RAG_EINVAL for binary data;
 * RAG_EFORMAT for an unreadable HTML or PDF file.
 */
int chunk_doc_parse(struct chunk_doc *doc, const char *data, size_t len, enum chunk_format fmt,
                    const char *name, struct rag_err *err);
/* Read and parse the file at path, refusing files over max_bytes (0 = none). */
int chunk_doc_read(struct chunk_doc *doc, const char *path, size_t max_bytes, struct rag_err *err);
void chunk_doc_release(struct chunk_doc *doc);

/* ---- chunks ---- */

/*
 * Token counter passed in by the caller. count() returns the number of tokens
 * in text[0..len); ctx is passed through and stays owned by the caller.
 */
struct chunk_tokenizer {
    size_t (*count)(void *ctx, const char *text, size_t len);
    void *ctx;
};

/*
 * An approximate counter for use until a real tokenizer is wired in: about
 * one token per word piece of letters or digits and one per punctuation
 * character (close to WordPiece counts on English prose).
 */
size_t chunk_count_approx(void *ctx, const char *text, size_t len);
#define CHUNK_TOKENIZER_APPROX \
 {                             \
  chunk_count_approx, NULL     \
 }

/*
 * A chunk of a document: text[start, end) of the doc, except that a table
 * cut across chunks has its header row prepended to text. Strings live in
 * the arena passed to chunk_split.
 */
struct chunk {
    const char *text; /* NUL-terminated */
    size_t len;
    size_t start, end;        /* byte span in chunk_doc.text */
    int page_start, page_end; /* 0 when the doc has no pages */
    const char *heading_path; /* enclosing headings, " > " joined; "" if none */
    size_t n_tokens;
};

struct chunk_list {
    struct chunk *item;
    size_t n, cap;
};
void chunk_list_release(struct chunk_list *l);

enum chunker_kind {
    CHUNKER_FIXED,     /* max_tokens windows with overlap tokens repeated */
    CHUNKER_SENTENCE,  /* whole sentences packed up to max_tokens */
    CHUNKER_RECURSIVE, /* split-then-merge over 14 separators (ALGORITHMS.md 1.3) */
    CHUNKER_PAGE,      /* one chunk per page, then post-processed */
    CHUNKER_STRUCTURE, /* blocks packed up to max_tokens; headings stay with bodies */
    CHUNKER_PARAGRAPH, /* one block per chunk, then post-processed */
    CHUNKER_AUTO,      /* chosen per document */
};

struct chunker_opts {
    enum chunker_kind kind;
    size_t max_tokens; /* target size */
    size_t overlap;    /* tokens repeated between neighbours (fixed, recursive) */
    size_t min_tokens; /* post-processing merges chunks smaller than this */
    size_t hard_max;   /* no chunk exceeds this many tokens, ever */
    struct chunk_tokenizer tok;
};
#define CHUNKER_OPTS_DEFAULT                                                                \
 {                                                                                          \
  .kind = CHUNKER_AUTO, .max_tokens = 256, .overlap = 0, .min_tokens = 32, .hard_max = 512, \
  .tok = CHUNK_TOKENIZER_APPROX                                                             \
 }

/* "fixed", "sentence", ... and back; returns RAG_EINVAL for an unknown name. */
const char *chunker_name(enum chunker_kind k);
int chunker_from_name(const char *name, enum chunker_kind *ret, struct rag_err *err);

/*
 * Cut doc into chunks appended to out, in document order. Chunk strings are
 * allocated from arena. The chunks cover every non-blank part of the text.
 * CHUNKER_AUTO resolves to one concrete kind, written to *ret_kind when it is
 * not NULL. Returns 0 or RAG_EINVAL for bad options.
 */
int chunk_split(const struct chunk_doc *doc, const struct chunker_opts *opts, struct arena *arena,
                struct chunk_list *out, enum chunker_kind *ret_kind, struct rag_err *err);

/*
 * Intrinsic quality of a chunking (ALGORITHMS.md 1.6), each in [0, 1] or NAN
 * when undefined: sc (size compliance: share of chunks within [min_tokens,
 * hard_max]) and bi (block integrity: share of structural blocks no chunk
 * start cuts, tolerance 5 bytes). icc, dcc and rc need models and are NAN
 * here. total is the mean of the defined metrics (1.7), NAN when none is.
 */
struct chunk_scores {
    double sc, bi, icc, dcc, rc;
    double total;
};

/*
 * Score chunks[0..n) of doc, as chunk_split made them with opts (the sizes
 * use opts->tok). Returns 0 or RAG_EINVAL for bad options.
 */
int chunk_score(const struct chunk_doc *doc, const struct chunker_opts *opts,
                const struct chunk *chunks, size_t n, struct chunk_scores *ret,
                struct rag_err *err);

#endif
