/*
 * chunking/recursive.c - the split-then-merge recursive splitter of
 * ALGORITHMS.md 1.3, with its 14 separators.
 *
 * Pass 1 splits a span that is over the size at every match of the first
 * separator that matches, keeping each separator at the start of the piece
 * after it; a piece under 10 characters is prepended to the next one, and
 * pieces still over the size go down to the next separators, the last one
 * being a character-level binary search. Pass 2 packs the pieces forward into
 * chunks of at most size tokens ("to_chunk_size"), each chunk starting with up
 * to overlap tokens taken from the end of the previous one.
 *
 * The 13 regular separators are PCRE2 patterns compiled once per process
 * (PCRE2_UTF | PCRE2_UCP, JIT when available). The line-start patterns
 * (headings, numbered and bullet items) are tried anchored at line starts we
 * find ourselves: "(?<=\n)\s*..." searched unanchored is quadratic in a run
 * of blank lines, while every line start of one whitespace run gives the same
 * answer, so we try only the first.
 */
#include "chunking/split.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#define N_SEPS          13 /* regular separators; the 14th is the character level */
#define N_LINE_SEPS     8  /* the first ones only match at line starts */
#define MIN_PIECE_CHARS 10

static const char *const sep_pattern[N_SEPS] = {
    "(?<=\\n)#{1}\\s",
    "(?<=\\n)#{2}\\s",
    "(?<=\\n)#{3}\\s",
    "(?<=\\n)#{4}\\s",
    "(?<=\\n)#{5}\\s",
    "(?<=\\n)#{6}\\s",
    "(?<=\\n)\\s*\\(?[A-Za-z0-9]{1,4}[.)]\\s+",
    "(?<=\\n)\\s*[-*·•●▪◦‣▸▹○◯‒–—]\\s+",
    "\\n{2,}",
    "\\n",
    "[.!?]\\s+",
    ",\\s+",
    "\\s+",
};

static pcre2_code *sep_code[N_SEPS];
static char sep_error[256];
static pthread_once_t sep_once = PTHREAD_ONCE_INIT;

static void sep_compile(void)
{
    for (int i = 0; i < N_SEPS; i++) {
        PCRE2_UCHAR msg[160];
        PCRE2_SIZE off;
        int ec;

        sep_code[i] = pcre2_compile((PCRE2_SPTR)sep_pattern[i], PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
        if (!sep_code[i]) {
            pcre2_get_error_message(ec, msg, sizeof(msg));
            snprintf(sep_error, sizeof(sep_error), "compile separator '%s' at offset %zu: %s",
                     sep_pattern[i], (size_t)off, (const char *)msg);
            return;
        }
        /* JIT is an optimisation: without it pcre2_match interprets */
        pcre2_jit_compile(sep_code[i], PCRE2_JIT_COMPLETE);
    }
}

int recursive_begin(struct split_ctx *c, struct rag_err *err)
{
    pthread_once(&sep_once, sep_compile);
    if (sep_error[0])
        return rag_errf(err, RAG_EINVAL, "%s", sep_error);
    c->match = pcre2_match_data_create(1, NULL);
    return 0;
}

void recursive_end(struct split_ctx *c)
{
    pcre2_match_data_free(c->match);
    c->match = NULL;
}

struct rsplit {
    const struct split_ctx *c;
    const struct tokmap *m;
    const char *text;
    struct {
        size_t *item;
        size_t n, cap;
    } cuts; /* a stack shared by the recursion levels */
};

static void push_cut(struct rsplit *r, size_t p)
{
    VEC_RESERVE(&r->cuts, r->cuts.n + 1);
    r->cuts.item[r->cuts.n++] = p;
}

/* Match sep anchored at p in text[0, b); the match end, or 0 for none. */
static size_t match_at(const struct rsplit *r, int sep, size_t p, size_t b, uint32_t flags)
{
    pcre2_match_data *md = r->c->match;
    int rc =
        pcre2_match(sep_code[sep], (PCRE2_SPTR)r->text, b, p, flags | PCRE2_NO_UTF_CHECK, md, NULL);

    if (rc < 0) {
        if (rc != PCRE2_ERROR_NOMATCH)
            RAG_DEBUG("chunking: separator %d failed at byte %zu: %d", sep + 1, p, rc);
        return 0;
    }
    return pcre2_get_ovector_pointer(md)[1];
}

static bool is_ascii_alnum(char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z');
}

/* A cheap test of the first character before asking PCRE2 (ws: after the blanks). */
static bool line_may_match(int sep, const char *t, size_t s, size_t ws, size_t b)
{
    if (sep < 6)
        return t[s] == '#';
    if (ws >= b)
        return false;
    if ((unsigned char)t[ws] >= 0x80)
        return true; /* a Unicode space or bullet: let PCRE2 decide */
    if (sep == 6)
        return t[ws] == '(' || is_ascii_alnum(t[ws]);
    return t[ws] == '-' || t[ws] == '*';
}

/*
 * Line-start separators: cut before each line start in (a, b) that matches.
 * For items, only the first line start of a whitespace run is tried (the
 * others give the same answer); a heading must start its own line.
 */
static void find_line_cuts(struct rsplit *r, int sep, size_t a, size_t b)
{
    const char *t = r->text;
    size_t p = a;

    while (p < b) {
        const char *nl = memchr(t + p, '\n', b - p);
        size_t s, ws, e = 0;

        if (!nl)
            break;
        s = (size_t)(nl - t) + 1;
        if (s >= b)
            break;
        for (ws = s; sep >= 6 && ws < b && split_is_space(t[ws]); ws++)
            ;
        if (line_may_match(sep, t, s, ws, b))
            e = match_at(r, sep, s, b, PCRE2_ANCHORED);
        if (e)
            push_cut(r, s);
        p = e > s ? e : (ws > s ? ws : s);
    }
}

/* Cut text[a, b) before every match of sep; returns the number of cuts pushed. */
static size_t find_cuts(struct rsplit *r, int sep, size_t a, size_t b)
{
    pcre2_match_data *md = r->c->match;
    size_t n0 = r->cuts.n, off = a;

    if (sep < N_LINE_SEPS) {
        find_line_cuts(r, sep, a, b);
        return r->cuts.n - n0;
    }
    while (off < b && match_at(r, sep, off, b, 0)) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

        if (ov[0] > a)
            push_cut(r, ov[0]);
        off = ov[1] > off ? ov[1] : split_next_char(r->text, b, off);
    }
    return r->cuts.n - n0;
}

static bool shorter_than(const char *t, size_t p, size_t q, size_t n_chars)
{
    size_t n = 0;

    if (q - p < n_chars)
        return true;
    if (q - p >= 4 * n_chars)
        return false;
    for (; p < q; p++)
        n += ((unsigned char)t[p] & 0xc0) != 0x80;
    return n < n_chars;
}

static void push_leaf(struct span_list *leaves, size_t a, size_t b, size_t n_tokens)
{
    span_push(leaves, a, b);
    leaves->item[leaves->n - 1].n_tokens = n_tokens;
}

/* Separator 14: binary search the longest prefix that fits, at least 1 character. */
static void split_chars(struct rsplit *r, struct span_list *leaves, size_t a, size_t b, size_t max)
{
    while (a < b) {
        size_t e = tokmap_fit(r->m, a, b, max, false);

        if (e == a)
            e = split_next_char(r->text, b, a);
        push_leaf(leaves, a, e, tokmap_count(r->m, a, e));
        a = e;
    }
}

/* Pass 1: split text[a, b) into leaves of at most max tokens, from separator sep on. */
static void split_rec(struct rsplit *r, struct span_list *leaves, size_t a, size_t b, int sep,
                      size_t max)
{
    size_t n_tokens = tokmap_count(r->m, a, b), base, n = 0, p = a;

    if (n_tokens <= max) {
        push_leaf(leaves, a, b, n_tokens);
        return;
    }
    base = r->cuts.n;
    while (sep < N_SEPS && !(n = find_cuts(r, sep, a, b)))
        sep++;
    if (sep == N_SEPS) {
        split_chars(r, leaves, a, b, max);
        return;
    }
    for (size_t k = 0; k <= n; k++) {
        size_t q = k < n ? r->cuts.item[base + k] : b;

        if (k < n && shorter_than(r->text, p, q, MIN_PIECE_CHARS))
            continue; /* a short piece is prepended to the next one */
        split_rec(r, leaves, p, q, sep + 1, max);
        p = q;
    }
    r->cuts.n = base;
}

/* Tokens of leaves added to a chunk of cur tokens ending before leaf l. */
static size_t grow_tokens(const struct rsplit *r, size_t cs, size_t cur, const struct span *l)
{
    if (r->m->exact) /* counters that may not add up: count the whole chunk */
        return tokmap_count(r->m, cs, l->end);
    return cur + (l->n_tokens > r->m->base ? l->n_tokens - r->m->base : 0);
}

/*
 * Where the overlap carried into the next chunk starts: the earliest leaf
 * start in (cs, end) whose tail fits in overlap tokens, refined inside the
 * first leaf that does not fit when the tail is too short (ALGORITHMS.md 1.3).
 * Returns end when there is no overlap.
 */
static size_t overlap_start(struct rsplit *r, const struct span_list *lv, size_t i, size_t j,
                            size_t cs, size_t overlap)
{
    size_t end = lv->item[j - 1].end, best = end, k = j, acc = 0;
    struct span_list sub = { 0 };

    while (k > i && lv->item[k - 1].start > cs &&
           tokmap_count(r->m, lv->item[k - 1].start, end) <= overlap)
        best = lv->item[--k].start;
    if (best < end)
        acc = tokmap_count(r->m, best, end);
    if (k == i || (k < j && acc * 2 >= overlap) || overlap <= acc)
        return best;
    /* re-split leaf k - 1 with the budget left and take whole parts from its tail */
    split_rec(r, &sub, lv->item[k - 1].start, lv->item[k - 1].end, 0, overlap - acc);
    for (size_t s = sub.n; s-- > 0;) {
        if (sub.item[s].start <= cs || tokmap_count(r->m, sub.item[s].start, end) > overlap)
            break;
        best = sub.item[s].start;
    }
    span_list_release(&sub);
    return best;
}

/* Pass 2: pack leaves forward into chunks of at most size tokens. */
static void merge_leaves(struct rsplit *r, const struct span_list *lv, size_t size, size_t overlap,
                         struct span_list *out)
{
    size_t i = 0, cs = lv->item[0].start, cur = r->m->base;

    while (i < lv->n) {
        size_t j = i, next = cur;

        while (j < lv->n && (next = grow_tokens(r, cs, cur, &lv->item[j])) <= size) {
            cur = next;
            j++;
        }
        if (j == i && cs < lv->item[i].start) { /* the overlap leaves no room: drop it */
            cs = lv->item[i].start;
            cur = r->m->base;
            continue;
        }
        if (j == i)
            j = i + 1; /* a leaf over size: one character over the budget */
        span_push(out, cs, lv->item[j - 1].end);
        if (j < lv->n) {
            cs = overlap ? overlap_start(r, lv, i, j, cs, overlap) : lv->item[j - 1].end;
            if (cs >= lv->item[j - 1].end)
                cs = lv->item[j].start;
            cur = cs < lv->item[j].start ? tokmap_count(r->m, cs, lv->item[j].start) : r->m->base;
        }
        i = j;
    }
}

void recursive_split(const struct split_ctx *c, const struct tokmap *m, size_t a, size_t b,
                     size_t size, size_t overlap, struct span_list *out)
{
    struct rsplit r = { .c = c, .m = m, .text = m->text };
    struct span_list leaves = { 0 };

    if (a >= b)
        return;
    split_rec(&r, &leaves, a, b, 0, size);
    merge_leaves(&r, &leaves, size, overlap, out);
    span_list_release(&leaves);
    free(r.cuts.item);
}
