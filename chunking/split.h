/*
 * chunking/split.h - internal interface of the chunkers (not part of the
 * public API; only the files of chunking/ include it).
 *
 * A chunker turns a document into a list of spans (byte ranges of the text,
 * plus an optional table header row to repeat), post-processing regularises
 * them, and post_finish turns them into struct chunk. Token counts go through
 * a token map: the text is cut once into segments at word starts, each
 * counted once, so the count of any span is a prefix-sum lookup plus two
 * counts of partial segments. That is exact for counters that are additive
 * across whitespace (WordPiece, chunk_count_approx); the final chunks are
 * always counted exactly and re-split if they exceed hard_max.
 */
#ifndef CHUNKING_SPLIT_H
#define CHUNKING_SPLIT_H

#include "chunking/chunking.h"

static inline bool split_is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* ---- token map (tokens.c) ---- */

struct tokmap_seg {
    size_t pos; /* segment boundary: byte offset in text */
    size_t cum; /* tokens of text[0, pos), without the counter's constant */
};

struct tokmap {
    const char *text;
    size_t len;
    struct chunk_tokenizer tok;
    size_t base;            /* count of the empty string (special tokens a counter adds) */
    struct tokmap_seg *seg; /* n + 1 boundaries, seg[0].pos == 0, seg[n].pos == len */
    size_t n;
    bool exact; /* no segments: every query calls the counter */
};

/* Cut text[0..len) into segments and count each once. text is borrowed. */
void tokmap_init(struct tokmap *m, const char *text, size_t len, const struct chunk_tokenizer *tok);
/* A map that counts every query exactly (used to enforce hard_max). */
void tokmap_init_exact(struct tokmap *m, const char *text, size_t len,
                       const struct chunk_tokenizer *tok);
void tokmap_release(struct tokmap *m);
/* Tokens of text[a, b), a <= b, including the counter's constant. */
size_t tokmap_count(const struct tokmap *m, size_t a, size_t b);
/*
 * The largest e in (a, b] with tokmap_count(a, e) <= budget, on a character
 * boundary; with at_words, e must also be b or the start of a word (after
 * whitespace). Returns a when nothing fits.
 */
size_t tokmap_fit(const struct tokmap *m, size_t a, size_t b, size_t budget, bool at_words);
/* The offset of the character after the one at p (p < len). */
size_t split_next_char(const char *text, size_t len, size_t p);

/* ---- spans ---- */

struct span {
    size_t start, end;
    size_t hdr_start, hdr_end; /* table header row to prepend; empty when equal */
    size_t n_tokens;           /* estimate, filled by post-processing */
};

struct span_list {
    struct span *item;
    size_t n, cap;
};

void span_push(struct span_list *l, size_t start, size_t end);
void span_list_release(struct span_list *l);

/* ---- one chunk_split call ---- */

struct split_ctx {
    const struct chunk_doc *doc;
    const struct chunker_opts *opts;
    struct tokmap tm;
    void *match; /* pcre2_match_data *, created by recursive_begin */
    /* structural blocks: the doc's, or blank-line paragraphs when it has none */
    const struct chunk_block *block;
    size_t n_blocks;
    struct chunk_block *own_blocks;
};

/*
 * Check opts and doc, derive blocks when the doc has none, build the token map
 * and the separator matcher. RAG_EINVAL for bad options or a malformed doc.
 */
int split_ctx_init(struct split_ctx *c, const struct chunk_doc *doc,
                   const struct chunker_opts *opts, struct rag_err *err);
void split_ctx_release(struct split_ctx *c);
/* Tokens of a span, its header row included. */
size_t split_span_tokens(const struct split_ctx *c, const struct span *s);
/* The raw spans of chunker k (not CHUNKER_AUTO) with target size tokens. */
void split_raw(const struct split_ctx *c, enum chunker_kind k, size_t size, struct span_list *out);

/* ---- recursive splitter (recursive.c) ---- */

/* Compile the separators once per process and create match data. */
int recursive_begin(struct split_ctx *c, struct rag_err *err);
void recursive_end(struct split_ctx *c);
/*
 * Split-then-merge text[a, b) into spans of at most size tokens with overlap
 * tokens repeated (ALGORITHMS.md 1.3), appended to out. Counts go through m.
 */
void recursive_split(const struct split_ctx *c, const struct tokmap *m, size_t a, size_t b,
                     size_t size, size_t overlap, struct span_list *out);

/* ---- the chunkers (raw spans, before post-processing) ---- */

void fixed_spans(const struct split_ctx *c, struct span_list *out);
void sentence_spans(const struct split_ctx *c, struct span_list *out);
void page_spans(const struct split_ctx *c, struct span_list *out);
void structure_spans(const struct split_ctx *c, struct span_list *out);
void paragraph_spans(const struct split_ctx *c, struct span_list *out);

/* ---- post-processing (postproc.c) ---- */

struct post_params {
    size_t split_above; /* re-split spans over this many tokens ... */
    size_t split_size;  /* ... with the recursive splitter at this size */
    size_t merge_max;   /* merge spans under min_tokens while the result fits this */
};

/* The post-processing parameters for a chunker whose target size is size. */
struct post_params post_params_for(const struct chunker_opts *o, enum chunker_kind k, size_t size);
/* Gap repair and trimming, split oversized, merge undersized (ALGORITHMS.md 1.5). */
void post_regularise(const struct split_ctx *c, struct span_list *spans,
                     const struct post_params *pp);
/*
 * Count every span exactly, re-split any over hard_max, and append the chunks
 * (text, pages, heading path) to out. RAG_EINVAL when one character alone is
 * over hard_max.
 */
int post_finish(const struct split_ctx *c, struct span_list *spans, struct arena *arena,
                struct chunk_list *out, struct rag_err *err);

/* ---- adaptive choice (adaptive.c) ---- */

/* Score spans (sorted by start) with the metrics that need no model. */
void adaptive_score(const struct split_ctx *c, const struct span *s, size_t n,
                    struct chunk_scores *ret);
/* Run the candidates, score them, leave the winner's regularised spans in out. */
enum chunker_kind adaptive_spans(const struct split_ctx *c, struct span_list *out);

#endif
