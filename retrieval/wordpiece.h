/*
 * retrieval/wordpiece.h - BERT tokenizer: basic tokenization plus WordPiece
 * over a vocab.txt file (internal to retrieval/).
 *
 * Matches the Hugging Face fast BertTokenizer (BertNormalizer,
 * BertPreTokenizer, WordPiece with "##" continuations, at most 100
 * characters per word): control, format and private-use characters are
 * dropped, whitespace separates words, CJK ideographs and
 * punctuation are words of their own, and with lowercasing on, text is
 * NFD-decomposed, stripped of non-spacing marks and lowercased.
 */
#ifndef RETRIEVAL_WORDPIECE_H
#define RETRIEVAL_WORDPIECE_H

#include "base/base.h"
#include "retrieval/retrieval.h"

struct retr_wp_slot;

struct retr_wp {
    char *text;         /* vocab.txt contents; entries point into it */
    size_t n_vocab;     /* ids are 0..n_vocab-1, the line numbers */
    const char **token; /* (n_vocab) NUL-terminated token strings */
    struct retr_wp_slot *slot;
    size_t mask;      /* slots - 1, a power of two minus one */
    size_t max_piece; /* longest entry in bytes, without "##" */
    int32_t cls, sep, pad, unk;
    int32_t special[5]; /* ids of the special tokens matched literally in text */
    size_t n_special;
    bool lowercase; /* also strips accents, as BertNormalizer does by default */
};

/*
 * Load vocab_path (one token per line; the line number is the id). The
 * special tokens [CLS], [SEP], [PAD] and [UNK] must be present:
 * RAG_EFORMAT naming the file otherwise, RAG_EIO when it cannot be read.
 * Release with retr_wp_release (also after a failure).
 */
int retr_wp_load(struct retr_wp *wp, const char *vocab_path, bool lowercase, struct rag_err *err);
void retr_wp_release(struct retr_wp *wp);

/* Id of token (exact string, "##x" for continuations), or -1. */
int32_t retr_wp_id(const struct retr_wp *wp, const char *token);

/*
 * Word pieces of text[0..len), without [CLS]/[SEP]. Writes the first cap
 * ids to ids and, when spans is not NULL, their byte ranges in text to
 * spans; returns the total number of pieces (which may exceed cap). Invalid
 * UTF-8 bytes count as U+FFFD and are dropped. Thread-safe: no state is
 * written.
 */
size_t retr_wp_encode(const struct retr_wp *wp, const char *text, size_t len, int32_t *ids,
                      struct retr_span *spans, size_t cap);

#endif
