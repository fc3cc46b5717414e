/*
 * generation/tokenizer.c - byte-level BPE vocabulary: building it from plain
 * arrays or a GGUF file, splitting out special tokens, and decoding ids back
 * to bytes (whole or streamed).
 *
 * Tokens are stored as raw bytes (see tokenizer.h). The vocabulary key of a
 * token follows transformers' GGUF converter: its spelling mapped back
 * through GPT-2's byte-to-unicode table when every character is in that
 * alphabet, its UTF-8 text otherwise. Control and user-defined tokens are
 * matched in the text leftmost-longest, like the Hugging Face added-token
 * splitter; a control token spelled outside the byte alphabet is never
 * matched (transformers skips it as a llama.cpp mislabel).
 */
#include "generation/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "generation/gguf.h"

#define N_ALPHABET 324 /* byte-to-unicode code points are all below this */

/* GPT-2 bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 + n. */
static void byte_alphabet(uint32_t byte_cp[256], int16_t cp_byte[N_ALPHABET])
{
    uint32_t extra = 0;

    for (int i = 0; i < N_ALPHABET; i++)
        cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        byte_cp[b] = printable ? (uint32_t)b : 256 + extra++;
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

/*
 * Map a byte-level spelling s[0..n) back to bytes in out. Returns false (out
 * unchanged) when a character is outside the alphabet or s is not UTF-8.
 */
static bool unmap_spelling(const int16_t cp_byte[N_ALPHABET], const char *s, size_t n,
                           struct buf *out)
{
    size_t start = out->len, i = 0;
    uint32_t cp;

    while (i < n) {
        size_t k = utf8_decode(s + i, n - i, &cp);
        if (!k || cp >= N_ALPHABET || cp_byte[cp] < 0) {
            out->len = start;
            if (out->data)
                out->data[start] = '\0';
            return false;
        }
        buf_appendc(out, (char)cp_byte[cp]);
        i += k;
    }
    return true;
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static size_t table_size(size_t n)
{
    size_t size = 16;

    while (size < 2 * n)
        size *= 2;
    return size;
}

int32_t gen_tok_lookup(const struct gen_tokenizer *t, const char *s, size_t n)
{
    size_t i = hash_bytes(s, n) & t->vocab_mask;

    for (;; i = (i + 1) & t->vocab_mask) {
        int32_t id = t->vocab_ht[i];
        size_t len;
        const char *p;

        if (id < 0)
            return -1;
        p = tok_text(t, id, &len);
        if (len == n && !memcmp(p, s, n))
            return id;
    }
}

/* Insert id under its text; a later id with the same text replaces the earlier one. */
static void vocab_insert(struct gen_tokenizer *t, int32_t id)
{
    size_t n;
    const char *s = tok_text(t, id, &n);
    size_t i = hash_bytes(s, n) & t->vocab_mask;

    for (;; i = (i + 1) & t->vocab_mask) {
        int32_t old = t->vocab_ht[i];
        size_t len;
        const char *p;

        if (old < 0)
            break;
        p = tok_text(t, old, &len);
        if (len == n && !memcmp(p, s, n))
            break;
    }
    t->vocab_ht[i] = id;
}

/* The byte of a "<0xNN>" spelling, or -1. */
static int byte_token_value(const char *s, size_t n)
{
    int v = 0;

    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return -1;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/*
 * Append token i's bytes to text and set its type; returns whether it is
 * matched whole in the text, and in *ret_key whether its stored bytes are its
 * vocabulary key.
 */
static bool store_token(struct gen_tokenizer *t, const int16_t cp_byte[N_ALPHABET],
                        const struct gen_tok_vocab *v, size_t i, struct buf *text, bool *ret_key)
{
    const char *s = v->token[i];
    size_t n = v->token_len[i], start = text->len;
    int type = v->token_type ? v->token_type[i] : GEN_TOK_NORMAL;
    int byte = type == GEN_TOK_BYTE ? byte_token_value(s, n) : -1;
    bool in_alphabet;

    t->type[i] = (uint8_t)(type >= GEN_TOK_NORMAL && type <= GEN_TOK_BYTE ? type : 0);
    *ret_key = byte < 0;
    if (byte >= 0) {
        buf_appendc(text, (char)byte);
        return false;
    }
    in_alphabet = unmap_spelling(cp_byte, s, n, text);
    if (type != GEN_TOK_CONTROL && type != GEN_TOK_USER_DEFINED) {
        if (!in_alphabet)
            buf_append(text, s, n);
        return false;
    }
    /*
     * Kept as written, which is also its key unless the spelling maps to other
     * bytes ("Ġ" -> " "); only tokens spelled in the byte alphabet are matched.
     */
    if (in_alphabet)
        *ret_key = text->len - start == n && !memcmp(text->data + start, s, n);
    text->len = start;
    buf_append(text, s, n);
    return in_alphabet && n > 0;
}

/* Fill t->text/off/type; mark the tokens matched whole and those stored as their key. */
static void store_tokens(struct gen_tokenizer *t, const struct gen_tok_vocab *v, bool *is_special,
                         bool *is_key)
{
    int16_t cp_byte[N_ALPHABET];
    uint32_t byte_cp[256];
    struct buf text = BUF_INIT;

    byte_alphabet(byte_cp, cp_byte);
    t->off = xmalloc_array(v->n_tokens + 1, sizeof(*t->off));
    t->type = xmalloc_array(v->n_tokens, sizeof(*t->type));
    for (size_t i = 0; i < v->n_tokens; i++) {
        t->off[i] = (uint32_t)text.len;
        is_special[i] = store_token(t, cp_byte, v, i, &text, &is_key[i]);
    }
    t->off[v->n_tokens] = (uint32_t)text.len;
    t->text = text.data ? buf_detach(&text, NULL) : xcalloc(1, 1);
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const struct gen_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->off[x + 1] - t->off[x], ly = t->off[y + 1] - t->off[y];

    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void build_lookup(struct gen_tokenizer *t, const bool *is_special, const bool *is_key)
{
    t->vocab_mask = table_size(t->n_vocab) - 1;
    t->vocab_ht = xmalloc_array(t->vocab_mask + 1, sizeof(*t->vocab_ht));
    memset(t->vocab_ht, 0xff, (t->vocab_mask + 1) * sizeof(*t->vocab_ht));
    t->special = xmalloc_array(t->n_vocab, sizeof(*t->special));
    for (size_t i = 0; i < t->n_vocab; i++) {
        if (is_key[i])
            vocab_insert(t, (int32_t)i);
        if (is_special[i]) {
            t->special[t->n_special++] = (int32_t)i;
            t->special_first[(uint8_t)t->text[t->off[i]]] = 1;
        }
    }
    qsort_r(t->special, t->n_special, sizeof(*t->special), cmp_special, t);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = gen_tok_lookup(t, &c, 1);
    }
}

/* Split "left right" and resolve both halves and their concatenation to ids. */
static bool parse_merge(struct gen_tokenizer *t, const int16_t cp_byte[N_ALPHABET], const char *s,
                        size_t n, struct buf *tmp, int32_t ids[3])
{
    const char *sp = memchr(s, ' ', n);
    size_t left_len;

    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1))
        return false;
    buf_reset(tmp);
    if (!unmap_spelling(cp_byte, s, (size_t)(sp - s), tmp))
        return false;
    left_len = tmp->len;
    if (!unmap_spelling(cp_byte, sp + 1, n - (size_t)(sp - s) - 1, tmp))
        return false;
    ids[0] = gen_tok_lookup(t, tmp->data, left_len);
    ids[1] = gen_tok_lookup(t, tmp->data + left_len, tmp->len - left_len);
    ids[2] = gen_tok_lookup(t, tmp->data, tmp->len);
    return ids[0] >= 0 && ids[1] >= 0 && ids[2] >= 0;
}

static void merge_insert(struct gen_tokenizer *t, const int32_t ids[3], uint32_t rank)
{
    uint64_t key = (uint64_t)(uint32_t)ids[0] << 32 | (uint32_t)ids[1];
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->merge_mask;

    while (t->merge_ht[i].key != UINT64_MAX && t->merge_ht[i].key != key)
        i = (i + 1) & t->merge_mask;
    if (t->merge_ht[i].key == UINT64_MAX)
        t->n_merges++;
    /* a repeated pair keeps the later rank, as Hugging Face's merge map does */
    t->merge_ht[i] = (struct tok_merge_slot){ .key = key, .rank = rank, .result = ids[2] };
}

static void build_merges(struct gen_tokenizer *t, const struct gen_tok_vocab *v)
{
    int16_t cp_byte[N_ALPHABET];
    uint32_t byte_cp[256];
    struct buf tmp = BUF_INIT;
    size_t skipped = 0;
    int32_t ids[3];

    byte_alphabet(byte_cp, cp_byte);
    t->merge_mask = table_size(v->n_merges) - 1;
    t->merge_ht = xmalloc_array(t->merge_mask + 1, sizeof(*t->merge_ht));
    for (size_t i = 0; i <= t->merge_mask; i++)
        t->merge_ht[i].key = UINT64_MAX;
    for (size_t i = 0; i < v->n_merges; i++) {
        if (parse_merge(t, cp_byte, v->merge[i], v->merge_len[i], &tmp, ids))
            merge_insert(t, ids, (uint32_t)i);
        else
            skipped++;
    }
    if (skipped)
        RAG_DEBUG("tokenizer '%s': skipped %zu merges naming absent tokens", t->name, skipped);
    buf_release(&tmp);
}

static enum gen_tok_pre pre_from_name(const char *name, bool *ret_ignore_merges)
{
    static const char *const smollm[] = { "smollm", "starcoder", "refact", "command-r",
                                          "codeshell" };
    static const char *const llama3[] = { "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral" };
    static const char *const qwen2[] = { "qwen2", "deepseek-r1-qwen", "megrez" };

    *ret_ignore_merges = false;
    for (size_t i = 0; i < sizeof(smollm) / sizeof(*smollm); i++)
        if (!strcmp(name, smollm[i]))
            return GEN_TOK_PRE_SMOLLM;
    for (size_t i = 0; i < sizeof(llama3) / sizeof(*llama3); i++)
        if (!strcmp(name, llama3[i])) {
            *ret_ignore_merges = true;
            return GEN_TOK_PRE_LLAMA3;
        }
    for (size_t i = 0; i < sizeof(qwen2) / sizeof(*qwen2); i++)
        if (!strcmp(name, qwen2[i]))
            return GEN_TOK_PRE_QWEN2;
    if (strcmp(name, "gpt2") && strcmp(name, "default"))
        RAG_DEBUG("tokenizer: unknown pre-tokenizer '%s', using the gpt2 pattern", name);
    return GEN_TOK_PRE_GPT2;
}

static int check_vocab(const struct gen_tok_vocab *v, const char *name, struct rag_err *err)
{
    size_t bytes = 0;

    if (!v->n_tokens || v->n_tokens > INT32_MAX)
        return rag_errf(err, RAG_EFORMAT, "'%s': tokenizer has %zu tokens", name, v->n_tokens);
    for (size_t i = 0; i < v->n_tokens; i++)
        bytes += v->token_len[i];
    if (bytes > UINT32_MAX / 2)
        return rag_errf(err, RAG_EFORMAT, "'%s': tokenizer text of %zu bytes", name, bytes);
    if (v->bos_id >= (int64_t)v->n_tokens || v->eos_id >= (int64_t)v->n_tokens)
        return rag_errf(err, RAG_EFORMAT,
                        "'%s': bos/eos token id (%d/%d) out of range (%zu tokens)", name,
                        (int)v->bos_id, (int)v->eos_id, v->n_tokens);
    return 0;
}

int gen_tokenizer_new(struct gen_tokenizer **ret, const struct gen_tok_vocab *v,
                      struct rag_err *err)
{
    const char *name = v->name ? v->name : "tokenizer";
    struct gen_tokenizer *t;
    bool *flags;
    int rc = check_vocab(v, name, err);

    if (rc)
        return rc;
    t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->n_vocab = v->n_tokens;
    flags = xcalloc(2 * v->n_tokens, sizeof(*flags));
    store_tokens(t, v, flags, flags + v->n_tokens);
    build_lookup(t, flags, flags + v->n_tokens);
    free(flags);
    build_merges(t, v);
    t->pre = pre_from_name(v->pre ? v->pre : "gpt2", &t->ignore_merges);
    t->bos_id = v->bos_id < 0 ? -1 : v->bos_id;
    t->eos_id = v->eos_id < 0 ? -1 : v->eos_id;
    t->add_bos = v->add_bos;
    rc = gen_tok_pre_init(t, err);
    if (rc) {
        gen_tokenizer_free(t);
        return rc;
    }
    gen_tok_chat_init(t, v->chat_template, v->chat_template ? strlen(v->chat_template) : 0);
    *ret = t;
    return 0;
}

void gen_tokenizer_free(struct gen_tokenizer *t)
{
    if (!t)
        return;
    gen_tok_pre_release(t);
    free(t->name);
    free(t->text);
    free(t->off);
    free(t->type);
    free(t->vocab_ht);
    free(t->merge_ht);
    free(t->special);
    free(t->chat_system);
    free(t->sym.item);
    free(t->heap.item);
    gen_tokens_release(&t->count);
    free(t);
}

size_t gen_tok_n_vocab(const struct gen_tokenizer *t)
{
    return t->n_vocab;
}

enum gen_tok_pre gen_tok_pre(const struct gen_tokenizer *t)
{
    return t->pre;
}

int32_t gen_tok_bos(const struct gen_tokenizer *t)
{
    return t->bos_id;
}

int32_t gen_tok_eos(const struct gen_tokenizer *t)
{
    return t->eos_id;
}

int gen_tok_type(const struct gen_tokenizer *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->n_vocab ? t->type[id] : 0;
}

int32_t gen_tok_find(const struct gen_tokenizer *t, const char *s)
{
    return gen_tok_lookup(t, s, strlen(s));
}

void gen_tokens_release(struct gen_tokens *v)
{
    free(v->item);
    v->item = NULL;
    v->n = v->cap = 0;
}

/* ---- encoding: special tokens first, then the pre-tokenizer and BPE (bpe.c) ---- */

/* The longest special token starting at s[0..n), or -1; its length in *ret_len. */
static int32_t match_special(const struct gen_tokenizer *t, const char *s, size_t n, unsigned flags,
                             size_t *ret_len)
{
    for (size_t i = 0; i < t->n_special; i++) {
        int32_t id = t->special[i];
        size_t len;
        const char *p = tok_text(t, id, &len);

        if (len > n || p[0] != s[0] || memcmp(p, s, len))
            continue;
        if (t->type[id] == GEN_TOK_CONTROL && !(flags & GEN_TOKENIZE_SPECIAL))
            continue;
        *ret_len = len;
        return id;
    }
    return -1;
}

void gen_tok_encode_spans(struct gen_tokenizer *t, const char *text, size_t len, unsigned flags,
                          const size_t *plain, size_t n_plain, struct gen_tokens *out)
{
    size_t start = 0, i = 0, k = 0, n = 0;
    int32_t id;

    while (i < len && t->n_special) {
        if (k < n_plain && i >= plain[2 * k]) {
            i = i > plain[2 * k + 1] ? i : plain[2 * k + 1];
            k++;
            continue;
        }
        id = t->special_first[(uint8_t)text[i]] ? match_special(t, text + i, len - i, flags, &n) :
                                                  -1;
        if (id < 0 || (k < n_plain && i + n > plain[2 * k])) {
            i++;
            continue;
        }
        gen_tok_encode_text(t, text + start, i - start, out);
        VEC_RESERVE(out, out->n + 1);
        out->item[out->n++] = id;
        i += n;
        start = i;
    }
    gen_tok_encode_text(t, text + start, len - start, out);
}

void gen_tokenize(struct gen_tokenizer *t, const char *text, size_t len, unsigned flags,
                  struct gen_tokens *out)
{
    if ((flags & GEN_TOKENIZE_ADD_BOS) && t->add_bos && t->bos_id >= 0) {
        VEC_RESERVE(out, out->n + 1);
        out->item[out->n++] = t->bos_id;
    }
    gen_tok_encode_spans(t, text, len, flags, NULL, 0, out);
}

size_t gen_count_tokens(void *tokenizer, const char *text, size_t len)
{
    struct gen_tokenizer *t = tokenizer;

    t->count.n = 0;
    gen_tokenize(t, text, len, 0, &t->count);
    return t->count.n;
}

/* ---- decoding ---- */

const char *gen_token_bytes(const struct gen_tokenizer *t, int32_t id, size_t *ret_len)
{
    if (id < 0 || (size_t)id >= t->n_vocab)
        return NULL;
    return tok_text(t, id, ret_len);
}

/* Bytes id renders as under flags (control tokens only with GEN_DETOK_SPECIAL). */
static const char *render(const struct gen_tokenizer *t, int32_t id, unsigned flags, size_t *n)
{
    if (id < 0 || (size_t)id >= t->n_vocab)
        return NULL;
    if ((t->type[id] == GEN_TOK_CONTROL || t->type[id] == GEN_TOK_UNKNOWN) &&
        !(flags & GEN_DETOK_SPECIAL))
        return NULL;
    return tok_text(t, id, n);
}

void gen_detokenize(const struct gen_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                    struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = render(t, ids[i], flags, &len);

        if (p)
            buf_append(out, p, len);
    }
}

void gen_detok_init(struct gen_detok *d, const struct gen_tokenizer *t, unsigned flags)
{
    *d = (struct gen_detok){ .tok = t, .flags = flags };
}

/* Length of the sequence a lead byte starts (0: not a lead byte). */
static size_t lead_len(uint8_t b)
{
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef)
        return 3;
    if (b >= 0xf0 && b <= 0xf4)
        return 4;
    return 0;
}

/* Whether b may follow held[0..n) (Unicode table 3-7: no overlongs, surrogates, > U+10FFFF). */
static bool continues(const char *held, size_t n, uint8_t b)
{
    uint8_t lead = (uint8_t)held[0], lo = 0x80, hi = 0xbf;

    if (n == 1 && lead == 0xe0)
        lo = 0xa0;
    else if (n == 1 && lead == 0xed)
        hi = 0x9f;
    else if (n == 1 && lead == 0xf0)
        lo = 0x90;
    else if (n == 1 && lead == 0xf4)
        hi = 0x8f;
    return b >= lo && b <= hi;
}

static void detok_byte(struct gen_detok *d, uint8_t b, struct buf *out)
{
    static const char replacement[] = "\xef\xbf\xbd";

    if (d->n_held && !continues(d->held, d->n_held, b)) {
        buf_append(out, replacement, 3); /* one U+FFFD for the cut-off character */
        d->n_held = 0;
    }
    if (d->n_held) {
        d->held[d->n_held++] = (char)b;
        if (d->n_held == lead_len((uint8_t)d->held[0])) {
            buf_append(out, d->held, d->n_held);
            d->n_held = 0;
        }
    } else if (b < 0x80) {
        buf_appendc(out, (char)b);
    } else if (lead_len(b)) {
        d->held[d->n_held++] = (char)b;
    } else {
        buf_append(out, replacement, 3);
    }
}

size_t gen_detok_push(struct gen_detok *d, int32_t id, struct buf *out)
{
    size_t before = out->len, n;
    const char *p = render(d->tok, id, d->flags, &n);

    for (size_t i = 0; p && i < n; i++)
        detok_byte(d, (uint8_t)p[i], out);
    return out->len - before;
}

size_t gen_detok_flush(struct gen_detok *d, struct buf *out)
{
    if (!d->n_held)
        return 0;
    d->n_held = 0;
    buf_append(out, "\xef\xbf\xbd", 3);
    return 3;
}

/* ---- loading from a GGUF file ---- */

static int load_strings(const struct gguf *g, const char *key, const char ***ret_s,
                        size_t **ret_len, size_t *ret_n, struct rag_err *err)
{
    enum gguf_value_type type;
    uint64_t n;
    int64_t idx = gguf_find_key(g, key);
    int rc = gguf_get_arr(g, key, &type, &n, NULL);

    if (rc == RAG_ENOTFOUND)
        return rag_errf(err, RAG_EFORMAT, "'%s': no tokenizer ('%s' missing)", gguf_path(g), key);
    if (rc || type != GGUF_VALUE_STRING)
        return rag_errf(err, RAG_EFORMAT, "'%s': '%s' is not a string array", gguf_path(g), key);
    *ret_s = xmalloc_array(n ? n : 1, sizeof(**ret_s));
    *ret_len = xmalloc_array(n ? n : 1, sizeof(**ret_len));
    for (uint64_t i = 0; i < n; i++)
        (*ret_s)[i] = gguf_arr_str(g, idx, i, &(*ret_len)[i]);
    *ret_n = n;
    return 0;
}

static int load_types(const struct gguf *g, size_t n_tokens, int32_t **ret, struct rag_err *err)
{
    const char *key = "tokenizer.ggml.token_type";
    enum gguf_value_type type;
    uint64_t n;
    const char *p;
    int rc = gguf_get_arr(g, key, &type, &n, NULL);

    *ret = NULL;
    if (rc == RAG_ENOTFOUND)
        return 0;
    if (rc || (type != GGUF_VALUE_INT32 && type != GGUF_VALUE_UINT32) || n != n_tokens)
        return rag_errf(err, RAG_EFORMAT, "'%s': '%s' is not an int32 array of %zu entries",
                        gguf_path(g), key, n_tokens);
    p = gguf_arr_data(g, gguf_find_key(g, key));
    *ret = xmalloc_array(n_tokens, sizeof(**ret));
    for (size_t i = 0; i < n_tokens; i++)
        memcpy(&(*ret)[i], p + 4 * i, 4);
    return 0;
}

/* Optional scalar keys: absent is fine, a wrong type is an error. */
static int load_scalars(const struct gguf *g, struct gen_tok_vocab *v, struct rag_err *err)
{
    uint32_t id;
    int rc;

    v->bos_id = v->eos_id = -1;
    rc = gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id, err);
    if (!rc)
        v->bos_id = (int32_t)(id > INT32_MAX ? INT32_MAX : id);
    else if (rc != RAG_ENOTFOUND)
        return rc;
    rc = gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id, err);
    if (!rc)
        v->eos_id = (int32_t)(id > INT32_MAX ? INT32_MAX : id);
    else if (rc != RAG_ENOTFOUND)
        return rc;
    rc = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err);
    if (rc && rc != RAG_ENOTFOUND)
        return rc;
    rc = gguf_get_str(g, "tokenizer.ggml.pre", &v->pre, NULL, err);
    if (rc && rc != RAG_ENOTFOUND)
        return rc;
    rc = gguf_get_str(g, "tokenizer.chat_template", &v->chat_template, NULL, err);
    return rc == RAG_ENOTFOUND ? 0 : rc;
}

static int check_model(const struct gguf *g, struct rag_err *err)
{
    const char *model;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, NULL);

    if (rc == RAG_ENOTFOUND)
        return rag_errf(err, RAG_EFORMAT, "'%s': no tokenizer ('tokenizer.ggml.model' missing)",
                        gguf_path(g));
    if (rc)
        return rag_errf(err, RAG_EFORMAT, "'%s': 'tokenizer.ggml.model' is not a string",
                        gguf_path(g));
    if (strcmp(model, "gpt2"))
        return rag_errf(err, RAG_EFORMAT,
                        "'%s': unsupported tokenizer model '%s' (only gpt2 byte-level BPE)",
                        gguf_path(g), model);
    return 0;
}

int gen_tok_vocab_load(struct gen_tok_vocab *v, const struct gguf *g, struct rag_err *err)
{
    const char **tok = NULL, **merge = NULL;
    size_t *tok_len = NULL, *merge_len = NULL;
    int32_t *types = NULL;
    int rc = check_model(g, err);

    *v = (struct gen_tok_vocab){ .name = gguf_path(g) };
    if (!rc)
        rc = load_strings(g, "tokenizer.ggml.tokens", &tok, &tok_len, &v->n_tokens, err);
    if (!rc)
        rc = load_strings(g, "tokenizer.ggml.merges", &merge, &merge_len, &v->n_merges, err);
    if (!rc)
        rc = load_types(g, v->n_tokens, &types, err);
    if (!rc)
        rc = load_scalars(g, v, err);
    v->token = tok;
    v->token_len = tok_len;
    v->token_type = types;
    v->merge = merge;
    v->merge_len = merge_len;
    if (rc)
        gen_tok_vocab_release(v);
    return rc;
}

void gen_tok_vocab_release(struct gen_tok_vocab *v)
{
    free((void *)v->token);
    free((void *)v->token_len);
    free((void *)v->token_type);
    free((void *)v->merge);
    free((void *)v->merge_len);
    *v = (struct gen_tok_vocab){ 0 };
}

int gen_tokenizer_load(struct gen_tokenizer **ret, const struct gguf *g, struct rag_err *err)
{
    struct gen_tok_vocab v;
    int rc = gen_tok_vocab_load(&v, g, err);

    if (rc)
        return rc;
    rc = gen_tokenizer_new(ret, &v, err);
    gen_tok_vocab_release(&v);
    return rc;
}

int gen_tokenizer_open(struct gen_tokenizer **ret, const char *path, struct rag_err *err)
{
    struct gguf *g;
    int rc = gguf_open(&g, path, err);

    if (rc)
        return rc;
    rc = gen_tokenizer_load(ret, g, err);
    gguf_close(g);
    return rc;
}
