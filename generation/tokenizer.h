/*
 * generation/tokenizer.h - internals shared by tokenizer.c (vocabulary,
 * special tokens, decoding), bpe.c (pre-tokenizer and merges) and chat.c
 * (chat templates). Internal to generation/; tests may include it.
 *
 * Every token is kept as its raw bytes: a normal token's byte-level spelling
 * (GPT-2's byte-to-unicode alphabet, space = U+0120 'Ġ') mapped back to bytes,
 * a control or user-defined token's text as written when it uses characters
 * outside that alphabet, and the byte of a <0xNN> byte-fallback token. Merges
 * are pairs of token ids, so BPE runs on ids and never builds strings.
 */
#ifndef GENERATION_TOKENIZER_H
#define GENERATION_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "generation/generation.h"

/* One merge: the pair (left, right) becomes result at priority rank. */
struct tok_merge_slot {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t result;
};

/* BPE working state for one pre-token: a doubly linked list over symbol slots. */
struct tok_sym {
    int32_t id;
    int32_t prev, next; /* slot indices, -1 at the ends */
    bool dead;          /* merged into its left neighbour */
};

struct tok_heap_item {
    uint32_t rank;
    uint32_t pos;   /* slot of the left symbol */
    int32_t result; /* id the merge produces; stale entries are detected with it */
};

/* Cache of pre-token bytes -> ids, cleared when full. */
struct tok_cache_slot {
    uint32_t hash;
    uint32_t key_off, key_len; /* into key_pool; key_len 0 = empty slot */
    uint32_t ids_off, n_ids;   /* into ids */
};

struct tok_cache {
    struct tok_cache_slot *slot; /* TOK_CACHE_SLOTS entries */
    size_t n_used;
    struct buf key_pool;
    struct {
        int32_t *item;
        size_t n, cap;
    } ids;
};

struct gen_tokenizer {
    char *name; /* for messages: the file path */
    size_t n_vocab;
    char *text;        /* raw bytes of every token, back to back */
    uint32_t *off;     /* (n_vocab + 1) offsets into text */
    uint8_t *type;     /* (n_vocab) enum gen_tok_type */
    int32_t *vocab_ht; /* open addressing over raw bytes -> id, -1 = empty */
    size_t vocab_mask;
    int32_t byte_id[256]; /* token of each single byte, -1 when the vocabulary lacks it */
    struct tok_merge_slot *merge_ht;
    size_t merge_mask;
    size_t n_merges;

    enum gen_tok_pre pre;
    bool ignore_merges; /* llama3: a pre-token found whole in the vocabulary is one token */
    void *re_split;     /* pcre2_code *: the pre-tokenizer pattern */
    void *re_digit;     /* pcre2_code *: one numeric character (smollm) or NULL */
    void *match;        /* pcre2_match_data * */
    bool jit;           /* both patterns JIT-compiled */

    int32_t *special; /* ids matched as whole tokens in the text, longest text first */
    size_t n_special;
    uint8_t special_first[256]; /* 1 when some special token starts with that byte */

    int32_t bos_id, eos_id;
    bool add_bos;

    /* chat template (chat.c) */
    enum gen_chat_format chat;
    char *chat_system; /* the template's default system prompt, or NULL */
    bool llama31;      /* Llama 3.1 template: a system turn with the knowledge cutoff */
    int32_t stop_ids[8];
    size_t n_stop_ids;
    const char *stop_strings[4];
    size_t n_stop_strings;

    /* scratch, reused between calls (the reason a tokenizer is not thread-safe) */
    struct {
        struct tok_sym *item;
        size_t n, cap;
    } sym;
    struct {
        struct tok_heap_item *item;
        size_t n, cap;
    } heap;
    struct tok_cache cache;
    struct gen_tokens count; /* ids of the last gen_count_tokens call */
};

/* Raw bytes of token id (id must be valid). */
static inline const char *tok_text(const struct gen_tokenizer *t, int32_t id, size_t *ret_len)
{
    *ret_len = t->off[id + 1] - t->off[id];
    return t->text + t->off[id];
}

/* Id of the token whose raw bytes are s[0..n), or -1. */
int32_t gen_tok_lookup(const struct gen_tokenizer *t, const char *s, size_t n);

/*
 * The tokenizer keys of g as plain arrays pointing into g's mapping (valid
 * while g is open); the pointer arrays are allocated: release them with
 * gen_tok_vocab_release. Errors as gen_tokenizer_load.
 */
int gen_tok_vocab_load(struct gen_tok_vocab *v, const struct gguf *g, struct rag_err *err);
void gen_tok_vocab_release(struct gen_tok_vocab *v);

/*
 * Encode text[0..len) as gen_tokenize without BOS, except that no special
 * token is matched inside the n_plain spans text[plain[2k] .. plain[2k + 1])
 * (sorted, disjoint): their text is always plain.
 */
void gen_tok_encode_spans(struct gen_tokenizer *t, const char *text, size_t len, unsigned flags,
                          const size_t *plain, size_t n_plain, struct gen_tokens *out);

/* bpe.c: compile the patterns for t->pre (pcre2 errors are RAG_EFORMAT). */
int gen_tok_pre_init(struct gen_tokenizer *t, struct rag_err *err);
void gen_tok_pre_release(struct gen_tokenizer *t);
/* bpe.c: pre-tokenize and BPE-encode text[0..len), which holds no special token. */
void gen_tok_encode_text(struct gen_tokenizer *t, const char *text, size_t len,
                         struct gen_tokens *out);

/* chat.c: detect the chat format and stop tokens; tmpl may be NULL. */
void gen_tok_chat_init(struct gen_tokenizer *t, const char *tmpl, size_t tmpl_len);

#endif
