/*
 * generation/bpe.c - pre-tokenizer patterns and the BPE merge loop.
 *
 * Text without special tokens is cut into pieces by the model family's
 * pattern (PCRE2, UTF + UCP, JIT when available, compiled once per
 * tokenizer); every match and every gap between matches is a piece, as in
 * Hugging Face's Split(behavior=Isolated). Each piece's bytes start as one
 * symbol per byte and are merged lowest rank first, leftmost on ties, with a
 * binary heap over a linked list of symbols, exactly like Hugging Face's
 * Word::merge_all (a queued merge is stale when the pair now at its position
 * merges to a different token). Recent pieces are cached.
 *
 * The patterns are Hugging Face's, with two adjustments so that PCRE2 10.42
 * (Unicode 14) classifies characters as Oniguruma and Rust do inside
 * tokenizers 0.23: \s is spelled as Oniguruma's set (PCRE2 adds U+180E), and
 * \p{L} / \p{N} / numeric gain the code points assigned in Unicode 15-17.
 * These sets were measured over all code points with tokenizers 0.23.3
 * (scripts/golden/make_tokenizer_golden.py --classes prints them).
 */
#include "generation/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* Oniguruma's \s: HT..CR, space, NEL and the Z categories. */
#define WS "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\p{Z}"
/* \p{L}: letters, with those assigned after Unicode 14. */
#define L                                                                               \
 "\\p{L}\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}\\x{105c0}-\\x{105f3}" \
 "\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}\\x{10ec2}-\\x{10ec4}"                      \
 "\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138b}\\x{1138e}"                       \
 "\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}\\x{113d3}\\x{11bc0}-\\x{11be0}"             \
 "\\x{11f02}\\x{11f04}-\\x{11f10}\\x{11f12}-\\x{11f33}\\x{1342f}"                       \
 "\\x{13441}-\\x{13446}\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}"                      \
 "\\x{16d40}-\\x{16d6c}\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}"             \
 "\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}\\x{1e5f0}"            \
 "\\x{2b739}\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}"
/* \p{N}: numbers, with those assigned after Unicode 14. */
#define N_NEW                                                      \
 "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}" \
 "\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}" \
 "\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}" \
 "\\x{1e5f1}-\\x{1e5fa}"
#define N "\\p{N}" N_NEW
/* Rust's char::is_numeric (the Digits pre-tokenizer): \p{N} plus two newer ranges. */
#define NUMERIC N "\\x{11de0}-\\x{11de9}\\x{16ff4}-\\x{16ff6}"

/* GPT-2 (ByteLevel use_regex): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char re_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?[" L "]+| ?[" N "]+| ?[^" WS L N "]+"
                              "|[" WS "]+(?![^" WS "])|[" WS "]+";
/*
 * Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static const char re_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n" L N "]?[" L "]+|[" N
                                "]{1,3}| ?[^" WS L N "]+[\\r\\n]*|[" WS "]*[\\r\\n]+"
                                "|[" WS "]+(?![^" WS "])|[" WS "]+";
/* Qwen2: as Llama 3 with single digits. */
static const char re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n" L N "]?[" L "]+|[" N
                               "]| ?[^" WS L N "]+[\\r\\n]*|[" WS "]*[\\r\\n]+"
                               "|[" WS "]+(?![^" WS "])|[" WS "]+";
static const char re_numeric[] = "[" NUMERIC "]";

#define CACHE_SLOTS   (1u << 15)
#define CACHE_MAX     (1u << 14) /* entries before the cache is cleared */
#define CACHE_MAX_KEY 48         /* longer pieces are not cached */
#define CACHE_MAX_IDS (1u << 18)
#define BPE_MAX_PIECE (1u << 30) /* a longer piece is merged in slices of this size */

static int compile(struct gen_tokenizer *t, const char *pattern, void **ret, struct rag_err *err)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);

    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return rag_errf(err, RAG_EFORMAT, "tokenizer '%s': pre-tokenizer pattern at %zu: %s",
                        t->name, (size_t)off, (const char *)msg);
    }
    if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE))
        t->jit = false;
    *ret = re;
    return 0;
}

int gen_tok_pre_init(struct gen_tokenizer *t, struct rag_err *err)
{
    const char *pattern = t->pre == GEN_TOK_PRE_LLAMA3 ? re_llama3 :
                          t->pre == GEN_TOK_PRE_QWEN2  ? re_qwen2 :
                                                         re_gpt2;
    int rc;

    t->jit = true;
    rc = compile(t, pattern, &t->re_split, err);
    if (!rc && t->pre == GEN_TOK_PRE_SMOLLM)
        rc = compile(t, re_numeric, &t->re_digit, err);
    if (rc)
        return rc;
    t->match = pcre2_match_data_create(1, NULL);
    if (!t->match)
        abort(); /* out of memory is fatal */
    return 0;
}

void gen_tok_pre_release(struct gen_tokenizer *t)
{
    pcre2_code_free(t->re_split);
    pcre2_code_free(t->re_digit);
    pcre2_match_data_free(t->match);
    free(t->cache.slot);
    buf_release(&t->cache.key_pool);
    free(t->cache.ids.item);
    t->re_split = t->re_digit = t->match = NULL;
    t->cache.slot = NULL;
}

/* ---- BPE ---- */

static inline void push_id(struct gen_tokens *out, int32_t id)
{
    VEC_RESERVE(out, out->n + 1);
    out->item[out->n++] = id;
}

static const struct tok_merge_slot *merge_find(const struct gen_tokenizer *t, int32_t left,
                                               int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->merge_mask;

    for (;; i = (i + 1) & t->merge_mask) {
        if (t->merge_ht[i].key == key)
            return &t->merge_ht[i];
        if (t->merge_ht[i].key == UINT64_MAX)
            return NULL;
    }
}

static inline bool heap_less(const struct tok_heap_item *a, const struct tok_heap_item *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

/* Queue the merge of the symbol at pos with its right neighbour, if there is one. */
static void heap_push(struct gen_tokenizer *t, int32_t pos)
{
    const struct tok_sym *l = &t->sym.item[pos];
    const struct tok_merge_slot *m = merge_find(t, l->id, t->sym.item[l->next].id);
    struct tok_heap_item *h;
    size_t i;

    if (!m)
        return;
    VEC_RESERVE(&t->heap, t->heap.n + 1);
    h = t->heap.item;
    i = t->heap.n++;
    h[i] = (struct tok_heap_item){ .rank = m->rank, .pos = (uint32_t)pos, .result = m->result };
    while (i > 0 && heap_less(&h[i], &h[(i - 1) / 2])) {
        struct tok_heap_item tmp = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

static struct tok_heap_item heap_pop(struct gen_tokenizer *t)
{
    struct tok_heap_item *h = t->heap.item, top = h[0];
    size_t n = --t->heap.n, i = 0;

    h[0] = h[n];
    for (;;) {
        size_t c = 2 * i + 1;
        struct tok_heap_item tmp;

        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &h[i]))
            break;
        tmp = h[i];
        h[i] = h[c];
        h[c] = tmp;
        i = c;
    }
    return top;
}

/* One symbol per byte the vocabulary has a token for; returns the symbol count. */
static size_t init_symbols(struct gen_tokenizer *t, const char *s, size_t n)
{
    struct tok_sym *sym;
    int32_t last = -1;

    VEC_RESERVE(&t->sym, n);
    sym = t->sym.item;
    t->sym.n = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[(uint8_t)s[i]];
        int32_t k = (int32_t)t->sym.n;

        if (id < 0)
            continue; /* no token for this byte: dropped, as without an unknown token */
        sym[k] = (struct tok_sym){ .id = id, .prev = last, .next = -1 };
        if (last >= 0)
            sym[last].next = k;
        last = k;
        t->sym.n++;
    }
    return t->sym.n;
}

static void bpe(struct gen_tokenizer *t, const char *s, size_t n, struct gen_tokens *out)
{
    struct tok_sym *sym;

    for (; n > BPE_MAX_PIECE; s += BPE_MAX_PIECE, n -= BPE_MAX_PIECE)
        bpe(t, s, BPE_MAX_PIECE, out); /* symbol indices are int32 */
    if (!init_symbols(t, s, n))
        return;
    sym = t->sym.item;
    t->heap.n = 0;
    for (int32_t i = 0; i + 1 < (int32_t)t->sym.n; i++)
        heap_push(t, i);
    while (t->heap.n) {
        struct tok_heap_item top = heap_pop(t);
        struct tok_sym *l = &sym[top.pos], *r;
        const struct tok_merge_slot *m;

        if (l->dead || l->next < 0)
            continue;
        r = &sym[l->next];
        m = merge_find(t, l->id, r->id);
        if (!m || m->result != top.result)
            continue; /* stale: the pair here changed since it was queued */
        l->id = top.result;
        r->dead = true;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = (int32_t)top.pos;
        if (l->prev >= 0)
            heap_push(t, l->prev);
        if (l->next >= 0)
            heap_push(t, (int32_t)top.pos);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        push_id(out, sym[i].id);
}

/* ---- cache of piece bytes -> ids ---- */

static uint32_t hash_piece(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static struct tok_cache_slot *cache_slot(struct tok_cache *c, const char *s, size_t n, uint32_t h)
{
    for (size_t i = h & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        struct tok_cache_slot *e = &c->slot[i];

        if (!e->key_len)
            return e;
        if (e->hash == h && e->key_len == n && !memcmp(c->key_pool.data + e->key_off, s, n))
            return e;
    }
}

static void cache_put(struct tok_cache *c, const char *s, size_t n, uint32_t h, const int32_t *ids,
                      size_t n_ids)
{
    struct tok_cache_slot *e;

    if (!c->slot)
        c->slot = xcalloc(CACHE_SLOTS, sizeof(*c->slot));
    if (c->n_used >= CACHE_MAX || c->ids.n + n_ids > CACHE_MAX_IDS) {
        memset(c->slot, 0, CACHE_SLOTS * sizeof(*c->slot));
        c->n_used = 0;
        buf_reset(&c->key_pool);
        c->ids.n = 0;
    }
    e = cache_slot(c, s, n, h);
    *e = (struct tok_cache_slot){ .hash = h,
                                  .key_off = (uint32_t)c->key_pool.len,
                                  .key_len = (uint32_t)n,
                                  .ids_off = (uint32_t)c->ids.n,
                                  .n_ids = (uint32_t)n_ids };
    buf_append(&c->key_pool, s, n);
    if (n_ids) { /* pieces of dropped bytes have no ids */
        VEC_RESERVE(&c->ids, c->ids.n + n_ids);
        memcpy(c->ids.item + c->ids.n, ids, n_ids * sizeof(*ids));
        c->ids.n += n_ids;
    }
    c->n_used++;
}

static void encode_piece(struct gen_tokenizer *t, const char *s, size_t n, struct gen_tokens *out)
{
    struct tok_cache *c = &t->cache;
    size_t first = out->n;
    uint32_t h;
    int32_t id;

    if (n == 1) {
        if (t->byte_id[(uint8_t)s[0]] >= 0)
            push_id(out, t->byte_id[(uint8_t)s[0]]);
        return;
    }
    if (t->ignore_merges && (id = gen_tok_lookup(t, s, n)) >= 0) {
        push_id(out, id);
        return;
    }
    if (n > CACHE_MAX_KEY) {
        bpe(t, s, n, out);
        return;
    }
    h = hash_piece(s, n);
    if (c->slot) {
        const struct tok_cache_slot *e = cache_slot(c, s, n, h);
        if (e->key_len && !e->n_ids)
            return;
        if (e->key_len) {
            VEC_RESERVE(out, out->n + e->n_ids);
            memcpy(out->item + out->n, c->ids.item + e->ids_off, e->n_ids * sizeof(int32_t));
            out->n += e->n_ids;
            return;
        }
    }
    bpe(t, s, n, out);
    cache_put(c, s, n, h, out->item + first, out->n - first);
}

/* ---- pre-tokenizer ---- */

/* Next match of re in s[0..n) at or after pos: its span in ov, false when none. */
static bool next_match(const struct gen_tokenizer *t, void *re, const char *s, size_t n, size_t pos,
                       size_t ov[2])
{
    pcre2_match_data *md = t->match;
    int rc;
    PCRE2_SIZE *v;

    if (t->jit)
        rc = pcre2_jit_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
    else
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
    if (rc < 0)
        return false; /* no match; or, without JIT, a resource limit: the rest is one piece */
    v = pcre2_get_ovector_pointer(md);
    ov[0] = v[0];
    ov[1] = v[1] > v[0] ? v[1] : v[0] + 1; /* no pattern matches empty; never loop */
    return true;
}

/* Every match of the split pattern, and every gap between them, is a piece. */
static void split_pieces(struct gen_tokenizer *t, const char *s, size_t n, struct gen_tokens *out)
{
    size_t pos = 0, ov[2];

    while (pos < n) {
        if (!next_match(t, t->re_split, s, n, pos, ov)) {
            encode_piece(t, s + pos, n - pos, out);
            return;
        }
        if (ov[0] > pos)
            encode_piece(t, s + pos, ov[0] - pos, out);
        encode_piece(t, s + ov[0], ov[1] - ov[0], out);
        pos = ov[1];
    }
}

void gen_tok_encode_text(struct gen_tokenizer *t, const char *text, size_t len,
                         struct gen_tokens *out)
{
    size_t pos = 0, ov[2];

    if (!t->re_digit) {
        split_pieces(t, text, len, out);
        return;
    }
    /* smollm: each numeric character alone, the pattern on the text between */
    while (pos < len) {
        if (!next_match(t, t->re_digit, text, len, pos, ov)) {
            split_pieces(t, text + pos, len - pos, out);
            return;
        }
        if (ov[0] > pos)
            split_pieces(t, text + pos, ov[0] - pos, out);
        encode_piece(t, text + ov[0], ov[1] - ov[0], out);
        pos = ov[1];
    }
}
