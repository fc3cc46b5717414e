/*
 * chunking/tokens.c - token counting for the chunkers: the approximate
 * counter chunk_count_approx and the token map of split.h.
 *
 * chunk_count_approx mimics bert-base-uncased WordPiece (the embedder's
 * tokenizer): every punctuation or symbol character is one token, every CJK
 * or emoji character one token, and a run of letters (or of digits) costs a
 * whole number of tokens by its length. The length tables were fitted to
 * real WordPiece counts on the chroma-chunking-eval corpora (see
 * tests/golden/chunking/calibrate_approx.py); whole numbers per run keep the
 * counter exactly additive across whitespace, which the token map relies on.
 *
 * The token map cuts the text once at word starts into segments of 64 to 256
 * bytes and counts each segment once. A span count is then two binary
 * searches, a prefix-sum difference and at most two counts of partial
 * segments, so chunkers can ask for counts freely.
 */
#include "chunking/split.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SEG_MIN 64
#define SEG_MAX 256

enum byte_class {
    BC_SPACE,  /* ASCII whitespace: no token */
    BC_ALPHA,  /* ASCII letter or the lead byte of a 2-byte (Latin, Greek...) letter */
    BC_DIGIT,  /* ASCII digit */
    BC_SINGLE, /* one token per character: punctuation, symbols, CJK, emoji */
    BC_CONT,   /* UTF-8 continuation byte: part of the previous character */
};

static int byte_class_of(unsigned c)
{
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return BC_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return BC_ALPHA;
    if (c >= '0' && c <= '9')
        return BC_DIGIT;
    if (c >= 0x80 && c <= 0xbf)
        return BC_CONT;
    if (c >= 0xc2 && c <= 0xdf)
        return BC_ALPHA;
    return BC_SINGLE; /* ASCII punctuation, controls, 3- and 4-byte characters */
}

/*
 * The counter is a state machine over bytes. States: 0 outside a run, 1..16
 * in a run of 1..15 letters (16: 16 or more), 17..22 in a run of 1..4 digits
 * (21: an odd number >= 5, 22: an even number >= 6). A run of n letters costs
 * 1 token up to 8 letters, 2 up to 14, then n - 12; a run of n digits costs 1
 * up to 4 digits, then (n + 1) / 2. Each table entry is next_state << 2 | the
 * tokens the byte adds.
 */
enum { ST_OUT = 0, ST_ALPHA1 = 1, ST_ALPHA_MAX = 16, ST_DIGIT1 = 17, ST_DIGIT_ODD = 21,
       ST_DIGIT_EVEN = 22, N_STATES = 23 };

static unsigned char approx_table[N_STATES][256];
static pthread_once_t approx_once = PTHREAD_ONCE_INIT;

static unsigned alpha_step(unsigned s, unsigned *add)
{
    unsigned n = s >= ST_ALPHA1 && s <= ST_ALPHA_MAX ? s - ST_ALPHA1 + 2 : 1; /* new length */

    *add = n == 1 || n == 9 || n >= 15;
    return n > 16 ? ST_ALPHA_MAX : ST_ALPHA1 + n - 1;
}

static unsigned digit_step(unsigned s, unsigned *add)
{
    if (s < ST_DIGIT1) {
        *add = 1;
        return ST_DIGIT1;
    }
    if (s < ST_DIGIT1 + 3) { /* 2..4 digits */
        *add = 0;
        return s + 1;
    }
    *add = s == ST_DIGIT1 + 3 ? 2 : s == ST_DIGIT_EVEN;
    return s == ST_DIGIT_ODD ? ST_DIGIT_EVEN : ST_DIGIT_ODD;
}

static void approx_build(void)
{
    for (unsigned s = 0; s < N_STATES; s++) {
        for (unsigned c = 0; c < 256; c++) {
            unsigned next = ST_OUT, add = 0;

            switch (byte_class_of(c)) {
            case BC_ALPHA:
                next = alpha_step(s, &add);
                break;
            case BC_DIGIT:
                next = digit_step(s, &add);
                break;
            case BC_SINGLE:
                add = 1;
                break;
            case BC_CONT:
                next = s;
                break;
            default:
                break;
            }
            approx_table[s][c] = (unsigned char)(next << 2 | add);
        }
    }
}

size_t chunk_count_approx(void *ctx, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t total = 0;
    unsigned s = ST_OUT;

    (void)ctx;
    pthread_once(&approx_once, approx_build);
    for (size_t i = 0; i < len; i++) {
        unsigned t = approx_table[s][p[i]];

        total += t & 3;
        s = t >> 2;
    }
    return total;
}

size_t split_next_char(const char *text, size_t len, size_t p)
{
    p++;
    while (p < len && ((unsigned char)text[p] & 0xc0) == 0x80)
        p++;
    return p;
}

/* The end of the segment starting at p: a word start at least SEG_MIN bytes on. */
static size_t seg_end(const char *text, size_t len, size_t p)
{
    size_t lim = p + SEG_MAX, i = p + SEG_MIN;

    if (i >= len)
        return len;
    for (; i < len && i < lim; i++) {
        if (split_is_space(text[i - 1]) && !split_is_space(text[i]))
            return i;
    }
    if (i >= len)
        return len;
    while (((unsigned char)text[i] & 0xc0) == 0x80) /* a forced cut, on a character */
        i--;
    return i;
}

static size_t raw_count(const struct tokmap *m, size_t a, size_t b)
{
    size_t n;

    if (a >= b)
        return 0;
    n = m->tok.count(m->tok.ctx, m->text + a, b - a);
    return n > m->base ? n - m->base : 0;
}

void tokmap_init(struct tokmap *m, const char *text, size_t len, const struct chunk_tokenizer *tok)
{
    size_t p = 0, cum = 0;

    memset(m, 0, sizeof(*m));
    m->text = text;
    m->len = len;
    m->tok = *tok;
    m->base = tok->count(tok->ctx, "", 0);
    /* every segment but the last has at least SEG_MIN bytes */
    m->seg = xmalloc_array(len / SEG_MIN + 2, sizeof(*m->seg));
    m->seg[0] = (struct tokmap_seg){ 0, 0 };
    while (p < len) {
        size_t q = seg_end(text, len, p);

        cum += raw_count(m, p, q);
        m->n++;
        m->seg[m->n] = (struct tokmap_seg){ q, cum };
        p = q;
    }
}

void tokmap_init_exact(struct tokmap *m, const char *text, size_t len,
                       const struct chunk_tokenizer *tok)
{
    memset(m, 0, sizeof(*m));
    m->text = text;
    m->len = len;
    m->tok = *tok;
    m->base = tok->count(tok->ctx, "", 0);
    m->exact = true;
}

void tokmap_release(struct tokmap *m)
{
    free(m->seg);
    m->seg = NULL;
    m->n = 0;
}

/* The first boundary index i with seg[i].pos >= p. */
static size_t seg_lower(const struct tokmap *m, size_t p)
{
    size_t lo = 0, hi = m->n + 1;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (m->seg[mid].pos < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t tokmap_count(const struct tokmap *m, size_t a, size_t b)
{
    size_t i, j;

    if (m->exact)
        return m->tok.count(m->tok.ctx, m->text + a, b - a);
    if (a >= b)
        return m->base;
    i = seg_lower(m, a);
    j = seg_lower(m, b);
    if (j > m->n || m->seg[j].pos > b)
        j--; /* the last boundary <= b */
    if (i > j)
        return m->base + raw_count(m, a, b);
    return m->base + raw_count(m, a, m->seg[i].pos) + m->seg[j].cum - m->seg[i].cum +
           raw_count(m, m->seg[j].pos, b);
}

static bool is_cut(const struct tokmap *m, size_t e, size_t b, bool at_words)
{
    if (e == b)
        return true;
    if (((unsigned char)m->text[e] & 0xc0) == 0x80)
        return false;
    return !at_words || (split_is_space(m->text[e - 1]) && !split_is_space(m->text[e]));
}

/*
 * Fine search inside one segment: the largest cut e in (lo, hi] with
 * prefix + raw(from, e) <= budget, or lo. The region is at most SEG_MAX bytes.
 */
static size_t fit_fine(const struct tokmap *m, size_t from, size_t lo, size_t hi, size_t b,
                       size_t prefix, size_t budget, bool at_words)
{
    size_t cand[SEG_MAX + 1], n = 0, l = 0, r;

    for (size_t e = lo + 1; e <= hi && n <= SEG_MAX; e++) {
        if (is_cut(m, e, b, at_words))
            cand[n++] = e;
    }
    r = n; /* answer index: the last cand[k] that fits, k < r */
    while (l < r) {
        size_t mid = l + (r - l) / 2;

        if (prefix + raw_count(m, from, cand[mid]) <= budget)
            l = mid + 1;
        else
            r = mid;
    }
    return l ? cand[l - 1] : lo;
}

/* Exact maps: binary search over character boundaries with real counts. */
static size_t fit_exact(const struct tokmap *m, size_t a, size_t b, size_t budget)
{
    size_t lo = a, hi = b; /* lo fits (or is a); nothing past hi fits */

    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;

        while (mid > lo && mid < b && ((unsigned char)m->text[mid] & 0xc0) == 0x80)
            mid--;
        if (mid == lo) {
            mid = split_next_char(m->text, b, lo);
            if (mid > hi)
                break;
        }
        if (tokmap_count(m, a, mid) <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

size_t tokmap_fit(const struct tokmap *m, size_t a, size_t b, size_t budget, bool at_words)
{
    size_t i, j, lo, hi, head;

    if (tokmap_count(m, a, b) <= budget)
        return b;
    if (m->exact)
        return fit_exact(m, a, b, budget);
    i = seg_lower(m, a);
    head = m->base + raw_count(m, a, m->seg[i].pos);
    if (m->seg[i].pos >= b || head > budget)
        return fit_fine(m, a, a, m->seg[i].pos < b ? m->seg[i].pos : b, b, m->base, budget,
                        at_words);
    /* the last boundary j >= i, seg[j].pos < b, whose prefix fits */
    lo = i;
    hi = seg_lower(m, b) - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;

        if (head + m->seg[mid].cum - m->seg[i].cum <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    j = lo;
    hi = j < m->n && m->seg[j + 1].pos < b ? m->seg[j + 1].pos : b;
    return fit_fine(m, m->seg[j].pos, m->seg[j].pos, hi, b,
                    head + m->seg[j].cum - m->seg[i].cum, budget, at_words);
}

void span_push(struct span_list *l, size_t start, size_t end)
{
    VEC_RESERVE(l, l->n + 1);
    l->item[l->n++] = (struct span){ .start = start, .end = end, .hdr_start = start,
                                     .hdr_end = start };
}

void span_list_release(struct span_list *l)
{
    free(l->item);
    l->item = NULL;
    l->n = l->cap = 0;
}
