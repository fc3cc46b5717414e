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
 * The token map cuts the text once at word starts into segments of 32 to 128
 * bytes and counts each segment once. A span count is then two binary
 * searches, a prefix-sum difference and at most two counts of partial
 * segments, so chunkers can ask for counts freely.
 */
#include "chunking/split.h"

#include <stdlib.h>
#include <string.h>

#define SEG_MIN 32
#define SEG_MAX 128

/*
 * The counter works on 64-byte blocks turned into bit masks (SSE2 when the
 * compiler has it, and for texts under 16 bytes, a byte loop otherwise); the
 * bytes missing from the last partial block count as spaces.
 * Tokens are the set bits of the union of disjoint masks: punctuation,
 * symbols and 3-/4-byte characters (one bit per character), the first byte
 * of each run of letters or of digits, and the bytes where a run's cost
 * grows: a run of n letter bytes costs 1 token up to 8, 2 up to 14, then
 * n - 12; a run of n digits costs 1 up to 4, then n - 3. A 2-byte character
 * counts as a letter (accented Latin, Greek, Cyrillic); the continuation
 * bytes of a 3- or 4-byte character belong to it.
 */
struct block_masks {
    uint64_t letter, digit, space, cont, lead34, lead4;
};

/* Masks carried from the previous block. */
struct count_state {
    uint64_t l, l2, l4, l8, d, d2, d4, lead34, lead4;
};

/* Masks of p[0..n), n <= 64; the bytes past n count as spaces. */
static void masks_scalar(const unsigned char *p, size_t n, struct block_masks *m)
{
    memset(m, 0, sizeof(*m));
    m->space = n < 64 ? ~(uint64_t)0 << n : 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        uint64_t bit = (uint64_t)1 << i;

        if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= 0xc2 && c <= 0xdf))
            m->letter |= bit;
        else if (c >= '0' && c <= '9')
            m->digit |= bit;
        else if (c == ' ' || (c >= '\t' && c <= '\r'))
            m->space |= bit;
        else if (c >= 0x80 && c <= 0xbf)
            m->cont |= bit;
        m->lead34 |= c >= 0xe0 && c <= 0xf4 ? bit : 0;
        m->lead4 |= c >= 0xf0 && c <= 0xf4 ? bit : 0;
    }
}

#if defined(__SSE2__)
# include <emmintrin.h>

/* Bits of the bytes x with lo <= x < lo + n (unsigned). */
static inline uint64_t in_range(__m128i x, unsigned char lo, unsigned char n)
{
    __m128i y = _mm_xor_si128(_mm_sub_epi8(x, _mm_set1_epi8((char)lo)), _mm_set1_epi8((char)0x80));

    return (uint64_t)_mm_movemask_epi8(_mm_cmplt_epi8(y, _mm_set1_epi8((char)(n ^ 0x80))));
}

static void masks_sse2(const unsigned char *p, struct block_masks *m)
{
    memset(m, 0, sizeof(*m));
    for (int i = 0; i < 4; i++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        __m128i lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
        uint64_t space = in_range(x, '\t', 5) |
                         (uint64_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')));

        m->letter |= (in_range(lower, 'a', 26) | in_range(x, 0xc2, 30)) << (16 * i);
        m->digit |= in_range(x, '0', 10) << (16 * i);
        m->space |= space << (16 * i);
        m->cont |= in_range(x, 0x80, 64) << (16 * i);
        m->lead34 |= in_range(x, 0xe0, 21) << (16 * i);
        m->lead4 |= in_range(x, 0xf0, 5) << (16 * i);
    }
}

/* The last n < 64 bytes: short ones byte by byte, others padded with spaces. */
static void last_block_masks(const unsigned char *p, size_t n, struct block_masks *m)
{
    unsigned char block[64];

    if (n < 16) {
        masks_scalar(p, n, m);
        return;
    }
    memset(block, ' ', sizeof(block));
    memcpy(block, p, n);
    masks_sse2(block, m);
}
#else
static void masks_sse2(const unsigned char *p, struct block_masks *m)
{
    masks_scalar(p, 64, m);
}

static void last_block_masks(const unsigned char *p, size_t n, struct block_masks *m)
{
    masks_scalar(p, n, m);
}
#endif

/* m shifted left by k (1..63) bits, with the previous block's bits coming in. */
static inline uint64_t shl(uint64_t m, uint64_t prev, int k)
{
    return m << k | prev >> (64 - k);
}

static size_t count_block(const struct block_masks *m, struct count_state *st)
{
    uint64_t cont_single = m->cont & (shl(m->lead34, st->lead34, 1) |
                                      shl(m->lead34, st->lead34, 2) | shl(m->lead4, st->lead4, 3));
    uint64_t single = ~(m->letter | m->digit | m->space | m->cont);
    uint64_t l = m->letter | (m->cont & ~cont_single), d = m->digit;
    uint64_t l2 = l & shl(l, st->l, 1), l4 = l2 & shl(l2, st->l2, 2), l8 = l4 & shl(l4, st->l4, 4);
    uint64_t l9 = l8 & shl(l, st->l, 8), l10 = l8 & shl(l2, st->l2, 8);
    uint64_t l15 = l8 & shl(l8, st->l8, 7);
    uint64_t d2 = d & shl(d, st->d, 1), d4 = d2 & shl(d2, st->d2, 2), d5 = d4 & shl(d, st->d, 4);
    uint64_t tokens = single | (l & ~shl(l, st->l, 1)) | (l9 & ~l10) | l15 |
                      (d & ~shl(d, st->d, 1)) | d5; /* disjoint masks */

    *st = (struct count_state){ l, l2, l4, l8, d, d2, d4, m->lead34, m->lead4 };
    return (size_t)__builtin_popcountll(tokens);
}

size_t chunk_count_approx(void *ctx, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    struct count_state st = { 0 };
    struct block_masks m;
    size_t total = 0, i = 0;

    (void)ctx;
    for (; i + 64 <= len; i += 64) {
        masks_sse2(p + i, &m);
        total += count_block(&m, &st);
    }
    if (i < len) {
        last_block_masks(p + i, len - i, &m);
        total += count_block(&m, &st);
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
    return fit_fine(m, m->seg[j].pos, m->seg[j].pos, hi, b, head + m->seg[j].cum - m->seg[i].cum,
                    budget, at_words);
}

void span_push(struct span_list *l, size_t start, size_t end)
{
    VEC_RESERVE(l, l->n + 1);
    l->item[l->n++] =
        (struct span){ .start = start, .end = end, .hdr_start = start, .hdr_end = start };
}

void span_list_release(struct span_list *l)
{
    free(l->item);
    l->item = NULL;
    l->n = l->cap = 0;
}
