/*
 * chunking/sentence.c - whole sentences packed up to max_tokens.
 *
 * A sentence ends at '.', '!' or '?' (with any closing quotes or brackets
 * after it) followed by whitespace and then an uppercase letter, a digit or
 * an opening quote or bracket; not after a common abbreviation ("e.g.",
 * "Mr.", "U.S.") or a single capital initial ("J. Smith"). A blank line, and
 * the CJK full stops U+3002, U+FF01 and U+FF1F, also end one. A sentence over
 * max_tokens is left whole here; post-processing splits it.
 */
#include "chunking/split.h"

#include <string.h>
#include <strings.h>

#include <utf8proc.h>

/* Lowercase, without the final period; matched against the word before '.'. */
static const char *const abbrevs[] = {
    "mr",   "mrs", "ms",  "dr",  "prof", "sr",   "jr",  "st",  "vs",  "e.g",    "i.e",
    "u.s",  "u.k", "a.m", "p.m", "fig",  "figs", "no",  "nos", "al",  "approx", "dept",
    "est",  "gen", "gov", "lt",  "col",  "capt", "sgt", "rev", "inc", "ltd",    "co",
    "corp", "jan", "feb", "mar", "apr",  "jun",  "jul", "aug", "sep", "sept",   "oct",
    "nov",  "dec", "vol", "p",   "pp",   "ed",   "eq",  "cf",  "ca",  "resp",
};

static bool is_abbrev(const char *t, size_t word_start, size_t dot)
{
    size_t n = dot - word_start;

    if (n == 1 && t[word_start] >= 'A' && t[word_start] <= 'Z')
        return true; /* an initial */
    for (size_t i = 0; i < sizeof(abbrevs) / sizeof(abbrevs[0]); i++) {
        if (strlen(abbrevs[i]) == n && !strncasecmp(abbrevs[i], t + word_start, n))
            return true;
    }
    return false;
}

static bool is_closer(unsigned char ch)
{
    return ch == '"' || ch == '\'' || ch == ')' || ch == ']';
}

/* Does a sentence start at t[p]? Uppercase, digit, or an opening quote/bracket. */
static bool starts_sentence(const char *t, size_t len, size_t p)
{
    uint32_t cp;
    size_t n;

    if (p >= len)
        return false;
    if ((t[p] >= 'A' && t[p] <= 'Z') || (t[p] >= '0' && t[p] <= '9') || t[p] == '"' ||
        t[p] == '\'' || t[p] == '(' || t[p] == '[')
        return true;
    if ((unsigned char)t[p] < 0x80)
        return false;
    n = utf8_decode(t + p, len - p, &cp);
    if (!n)
        return false;
    if (cp == 0x201c || cp == 0x2018 || cp == 0xab) /* opening quotes */
        return true;
    return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LU ||
           utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LT;
}

/* After the terminal punctuation at t[p]: skip more of it and closers (’ and ” too). */
static size_t after_terminal(const char *t, size_t len, size_t p)
{
    while (p < len) {
        if (t[p] == '.' || t[p] == '!' || t[p] == '?' || is_closer((unsigned char)t[p]))
            p++;
        else if (p + 3 <= len && !memcmp(t + p, "\xe2\x80", 2) &&
                 ((unsigned char)t[p + 2] == 0x99 || (unsigned char)t[p + 2] == 0x9d))
            p += 3;
        else
            break;
    }
    return p;
}

/* The start of the word ending at t[dot - 1]. */
static size_t word_before(const char *t, size_t lo, size_t dot)
{
    size_t w = dot;

    while (w > lo && !split_is_space(t[w - 1]) && t[w - 1] != '(' && t[w - 1] != '"')
        w--;
    return w;
}

/*
 * The end of the sentence that the character at t[p] may close, or 0 when it
 * does not. ws is the first non-blank after it.
 */
static size_t sentence_end_at(const char *t, size_t len, size_t lo, size_t p)
{
    size_t e, ws;

    if (t[p] == '\n') {
        for (ws = p + 1; ws < len && (t[ws] == ' ' || t[ws] == '\t' || t[ws] == '\r'); ws++)
            ;
        return ws < len && t[ws] == '\n' ? p : 0;
    }
    if ((unsigned char)t[p] >= 0x80) { /* 。！？ end a sentence by themselves */
        if (p + 3 <= len &&
            (!memcmp(t + p, "\xe3\x80\x82", 3) || !memcmp(t + p, "\xef\xbc\x81", 3) ||
             !memcmp(t + p, "\xef\xbc\x9f", 3)))
            return p + 3;
        return 0;
    }
    e = after_terminal(t, len, p);
    if (e >= len || !split_is_space(t[e]))
        return 0;
    for (ws = e; ws < len && split_is_space(t[ws]); ws++)
        ;
    if (!starts_sentence(t, len, ws))
        return 0;
    if (t[p] == '.' && (p == 0 || t[p - 1] != '.') && is_abbrev(t, word_before(t, lo, p), p))
        return 0;
    return e;
}

/* Sentence boundaries: the start of every sentence but the first. */
static void find_boundaries(const char *t, size_t len, struct span_list *bounds)
{
    static const char stops[] = ".!?\n\xe3\xef";
    size_t p = 0;

    while (p < len) {
        size_t n = strcspn(t + p, stops), e;

        p += n;
        if (p >= len)
            break;
        e = sentence_end_at(t, len, 0, p);
        if (!e) {
            p = t[p] == '.' || t[p] == '!' || t[p] == '?' ? after_terminal(t, len, p) : p + 1;
            continue;
        }
        while (e < len && split_is_space(t[e]))
            e++;
        if (e < len)
            span_push(bounds, e, e);
        p = e;
    }
}

void sentence_spans(const struct split_ctx *c, struct span_list *out)
{
    struct span_list bounds = { 0 };
    const struct tokmap *m = &c->tm;
    size_t len = c->doc->len, cs = 0, prev = 0;

    find_boundaries(c->doc->text, len, &bounds);
    for (size_t i = 0; i <= bounds.n; i++) {
        size_t q = i < bounds.n ? bounds.item[i].start : len;

        if (prev > cs && tokmap_count(m, cs, q) > c->opts->max_tokens) {
            span_push(out, cs, prev);
            cs = prev;
        }
        prev = q;
    }
    if (cs < len)
        span_push(out, cs, len);
    span_list_release(&bounds);
}
