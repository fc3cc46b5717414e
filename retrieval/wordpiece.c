/*
 * retrieval/wordpiece.c - BERT basic tokenizer and WordPiece.
 *
 * One pass over the code points: each is dropped, ends a word, or (after
 * NFD, mark stripping and lowercasing) is appended to the current word or
 * becomes a word of its own (punctuation, CJK ideographs). A finished word
 * is cut greedily into the longest vocabulary entries, "##"-prefixed after
 * the first. The vocabulary is an open-addressing hash keyed by (is
 * continuation, bytes without "##"), so lookups never build strings, and
 * the word buffer lives on the stack: nothing is allocated per call.
 * Unicode properties come from libutf8proc; ASCII takes a fast path.
 * As in the reference, the special tokens ([CLS], [SEP], [PAD], [UNK],
 * [MASK]) written literally in the text are matched first, exactly and
 * case-sensitively, and become those tokens.
 *
 * Differences from the reference that remain: it drops Cc, Cf and Co (not
 * unassigned code points), and its punctuation table predates Unicode 14,
 * so the few punctuation characters added since are split here and not
 * there.
 */
#include "retrieval/wordpiece.h"

#include <string.h>
#include <utf8proc.h>

#define WP_MAX_WORD   100 /* longer words become [UNK] (max_input_chars_per_word) */
#define WP_MAX_DECOMP 8

struct retr_wp_slot {
    const char *s; /* NULL when empty */
    uint32_t len;
    int32_t id;
    bool cont;
};

/* Current word: normalized code points as UTF-8, with their source spans. */
struct word {
    char bytes[WP_MAX_WORD * 4];
    uint16_t cb[WP_MAX_WORD + 1]; /* byte offset of char i in bytes */
    size_t src_start[WP_MAX_WORD], src_end[WP_MAX_WORD];
    size_t n_chars;     /* may exceed WP_MAX_WORD: then only counted */
    size_t first, last; /* source span of the whole word */
};

struct enc {
    const struct retr_wp *wp;
    int32_t *ids;
    struct retr_span *spans;
    size_t cap, n;
    struct word w;
};

static uint32_t hash(bool cont, const char *p, size_t n)
{
    uint32_t h = cont ? 0x9e3779b9u : 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

static int32_t lookup(const struct retr_wp *wp, bool cont, const char *p, size_t n)
{
    for (size_t i = hash(cont, p, n) & wp->mask;; i = (i + 1) & wp->mask) {
        const struct retr_wp_slot *s = &wp->slot[i];

        if (!s->s)
            return -1;
        if (s->cont == cont && s->len == n && !memcmp(s->s, p, n))
            return s->id;
    }
}

static void insert(struct retr_wp *wp, const char *tok, int32_t id)
{
    bool cont = tok[0] == '#' && tok[1] == '#' && tok[2];
    const char *p = cont ? tok + 2 : tok;
    size_t n = strlen(p), i;

    for (i = hash(cont, p, n) & wp->mask; wp->slot[i].s; i = (i + 1) & wp->mask)
        if (wp->slot[i].cont == cont && wp->slot[i].len == n && !memcmp(wp->slot[i].s, p, n))
            break;
    wp->slot[i] = (struct retr_wp_slot){ .s = p, .len = (uint32_t)n, .id = id, .cont = cont };
    if (n > wp->max_piece)
        wp->max_piece = n;
}

/* Split the file into NUL-terminated lines (trailing whitespace trimmed). */
static void split_lines(struct retr_wp *wp, size_t len)
{
    size_t n = 0;
    char *p = wp->text, *end = wp->text + len;

    for (char *q = p; q < end; q++)
        n += *q == '\n';
    n += len && end[-1] != '\n';
    wp->token = xmalloc_array(n ? n : 1, sizeof(*wp->token));
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;

        *e = '\0';
        for (char *t = e; t > p && strchr(" \t\r\f\v", t[-1]); t--)
            t[-1] = '\0';
        wp->token[wp->n_vocab++] = p;
        p = e + 1;
    }
}

static int special(const struct retr_wp *wp, const char *path, const char *name, int32_t *ret,
                   struct rag_err *err)
{
    *ret = retr_wp_id(wp, name);
    if (*ret < 0)
        return rag_errf(err, RAG_EFORMAT, "'%s': no %s token", path, name);
    return 0;
}

int retr_wp_load(struct retr_wp *wp, const char *vocab_path, bool lowercase, struct rag_err *err)
{
    static const char *specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
    struct buf b = BUF_INIT;
    size_t slots = 16, len = 0;
    int rc;

    memset(wp, 0, sizeof(*wp));
    wp->lowercase = lowercase;
    rc = file_read(vocab_path, 64u << 20, &b, err);
    if (rc) {
        buf_release(&b);
        return rc;
    }
    wp->text = buf_detach(&b, &len);
    split_lines(wp, wp->text ? len : 0);
    if (wp->n_vocab > INT32_MAX / 4)
        return rag_errf(err, RAG_EFORMAT, "'%s': too many tokens", vocab_path);
    while (slots < 2 * wp->n_vocab)
        slots *= 2;
    wp->slot = xcalloc(slots, sizeof(*wp->slot));
    wp->mask = slots - 1;
    for (size_t i = 0; i < wp->n_vocab; i++)
        if (wp->token[i][0])
            insert(wp, wp->token[i], (int32_t)i);
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        int32_t id = retr_wp_id(wp, specials[i]);

        if (id >= 0)
            wp->special[wp->n_special++] = id;
    }
    rc = special(wp, vocab_path, "[CLS]", &wp->cls, err);
    if (!rc)
        rc = special(wp, vocab_path, "[SEP]", &wp->sep, err);
    if (!rc)
        rc = special(wp, vocab_path, "[PAD]", &wp->pad, err);
    if (!rc)
        rc = special(wp, vocab_path, "[UNK]", &wp->unk, err);
    return rc;
}

void retr_wp_release(struct retr_wp *wp)
{
    if (!wp)
        return;
    free(wp->text);
    free(wp->token);
    free(wp->slot);
    memset(wp, 0, sizeof(*wp));
}

int32_t retr_wp_id(const struct retr_wp *wp, const char *token)
{
    bool cont = token[0] == '#' && token[1] == '#' && token[2];
    const char *p = cont ? token + 2 : token;

    return lookup(wp, cont, p, strlen(p));
}

/* ---- character classes (as the Hugging Face BertNormalizer / BertPreTokenizer) ---- */

static bool is_control(uint32_t c)
{
    utf8proc_category_t cat;

    if (c == '\t' || c == '\n' || c == '\r')
        return false;
    if (c < 0x80)
        return c < 0x20 || c == 0x7f;
    cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS;
}

/* White_Space; the control characters among them were dropped before. */
static bool is_space(uint32_t c)
{
    if (c < 0x80)
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
    return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool is_punct(uint32_t c)
{
    utf8proc_category_t cat;

    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static bool is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Normalize one code point into out; returns how many (0 when all stripped). */
static size_t normalize(const struct retr_wp *wp, uint32_t c, uint32_t out[WP_MAX_DECOMP])
{
    utf8proc_int32_t d[WP_MAX_DECOMP];
    utf8proc_ssize_t nd;
    int bound = 0;
    size_t n = 0;

    if (!wp->lowercase || c < 0x80) {
        out[0] = wp->lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c;
        return 1;
    }
    nd = utf8proc_decompose_char((utf8proc_int32_t)c, d, WP_MAX_DECOMP, UTF8PROC_DECOMPOSE, &bound);
    if (nd <= 0 || nd > WP_MAX_DECOMP) {
        d[0] = (utf8proc_int32_t)c;
        nd = 1;
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++)
        if (utf8proc_category(d[i]) != UTF8PROC_CATEGORY_MN)
            out[n++] = (uint32_t)utf8proc_tolower(d[i]);
    return n;
}

/* ---- WordPiece ---- */

static void emit(struct enc *e, int32_t id, size_t start, size_t end)
{
    if (e->n < e->cap) {
        e->ids[e->n] = id;
        if (e->spans)
            e->spans[e->n] = (struct retr_span){ start, end };
    }
    e->n++;
}

/* Longest entry matching w from char start; returns its end char, or start. */
static size_t longest(const struct enc *e, size_t start, int32_t *ret_id)
{
    const struct word *w = &e->w;

    for (size_t end = w->n_chars; end > start; end--) {
        size_t n = (size_t)(w->cb[end] - w->cb[start]);

        if (n > e->wp->max_piece)
            continue;
        *ret_id = lookup(e->wp, start > 0, w->bytes + w->cb[start], n);
        if (*ret_id >= 0)
            return end;
    }
    return start;
}

static void flush(struct enc *e)
{
    struct word *w = &e->w;
    size_t n0 = e->n, start = 0;
    int32_t id;

    if (!w->n_chars)
        return;
    while (w->n_chars <= WP_MAX_WORD && start < w->n_chars) {
        size_t end = longest(e, start, &id);

        if (end == start)
            break;
        emit(e, id, w->src_start[start], w->src_end[end - 1]);
        start = end;
    }
    if (w->n_chars > WP_MAX_WORD || start < w->n_chars) {
        e->n = n0;
        emit(e, e->wp->unk, w->first, w->last);
    }
    w->n_chars = 0;
}

static void add_char(struct enc *e, uint32_t c, size_t start, size_t end)
{
    struct word *w = &e->w;
    size_t i = w->n_chars++;

    if (i == 0) {
        w->first = start;
        w->cb[0] = 0;
    }
    w->last = end;
    if (i >= WP_MAX_WORD)
        return;
    w->cb[i + 1] = (uint16_t)(w->cb[i] + utf8_encode(c, w->bytes + w->cb[i]));
    w->src_start[i] = start;
    w->src_end[i] = end;
}

/* Length of the special token ("[CLS]", ...) at text[0..len), or 0. */
static size_t special_at(const struct retr_wp *wp, const char *text, size_t len, int32_t *ret_id)
{
    for (size_t i = 0; i < wp->n_special; i++) {
        const char *s = wp->token[wp->special[i]];
        size_t n = strlen(s);

        if (n <= len && !memcmp(text, s, n)) {
            *ret_id = wp->special[i];
            return n;
        }
    }
    return 0;
}

static void code_point(struct enc *e, uint32_t c, size_t start, size_t end)
{
    uint32_t d[WP_MAX_DECOMP];
    size_t n;
    bool cjk;

    if (c == 0 || c == 0xFFFD || is_control(c))
        return;
    if (is_space(c)) {
        flush(e);
        return;
    }
    cjk = is_cjk(c);
    if (cjk)
        flush(e);
    n = normalize(e->wp, c, d);
    for (size_t i = 0; i < n; i++) {
        bool alone = is_punct(d[i]);

        if (alone)
            flush(e);
        add_char(e, d[i], start, end);
        if (alone)
            flush(e);
    }
    if (cjk)
        flush(e);
}

size_t retr_wp_encode(const struct retr_wp *wp, const char *text, size_t len, int32_t *ids,
                      struct retr_span *spans, size_t cap)
{
    struct enc e = { .wp = wp, .ids = ids, .spans = spans, .cap = ids ? cap : 0 };
    size_t i = 0;

    while (i < len) {
        uint32_t c;
        int32_t id;
        size_t n = text[i] == '[' ? special_at(wp, text + i, len - i, &id) : 0;

        if (n) {
            flush(&e);
            emit(&e, id, i, i + n);
            i += n;
            continue;
        }
        n = utf8_decode(text + i, len - i, &c);
        if (!n) {
            n = 1;
            c = 0xFFFD;
        }
        code_point(&e, c, i, i + n);
        i += n;
    }
    flush(&e);
    return e.n;
}
