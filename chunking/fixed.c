/*
 * chunking/fixed.c - fixed-size windows: each chunk holds as many whole words
 * as fit in max_tokens, and the next one starts with the last words worth at
 * most overlap tokens. A single word over max_tokens is cut on a character
 * boundary. Windows are found by binary search on the token map.
 */
#include "chunking/split.h"

/* The first word start at or after p (skipping the rest of a word cut at p), or e. */
static size_t word_start_from(const char *t, size_t p, size_t e)
{
    if (p > 0 && !split_is_space(t[p - 1])) {
        while (p < e && !split_is_space(t[p]))
            p++;
    }
    while (p < e && split_is_space(t[p]))
        p++;
    return p;
}

/* The earliest word start in (s, e) whose tail [start, e) fits in budget tokens, or e. */
static size_t tail_start(const struct tokmap *m, size_t s, size_t e, size_t budget)
{
    size_t lo = s + 1, hi = e; /* the answer position p lies in [lo, hi] */

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (tokmap_count(m, word_start_from(m->text, mid, e), e) <= budget)
            hi = mid;
        else
            lo = mid + 1;
    }
    return word_start_from(m->text, lo, e);
}

void fixed_spans(const struct split_ctx *c, struct span_list *out)
{
    const struct tokmap *m = &c->tm;
    const char *t = c->doc->text;
    size_t len = c->doc->len, max = c->opts->max_tokens, s = word_start_from(t, 0, len);

    while (s < len) {
        size_t e = tokmap_fit(m, s, len, max, true);

        if (e == s)
            e = tokmap_fit(m, s, len, max, false); /* one word over max_tokens */
        if (e == s)
            e = split_next_char(t, len, s);
        span_push(out, s, e);
        if (e >= len)
            break;
        s = c->opts->overlap ? tail_start(m, s, e, c->opts->overlap) : e;
        if (s >= e)
            s = e;
        while (s < len && split_is_space(t[s]))
            s++;
    }
}
