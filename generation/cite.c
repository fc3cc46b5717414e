/*
 * generation/cite.c - check the citations of a generated answer, and spot
 * abstentions.
 *
 * One pass over the answer collects citation groups ("[1]", "[2, 3]",
 * "[1-3]") and quoted spans, skipping code spans in backticks (fences
 * included: a run of n backticks closes at the next run of exactly n). Then
 * each long enough quote is attached to a group and searched for in the
 * group's sources. Text is compared after normalise(), which folds ASCII
 * case, curly quotes, dashes and whitespace runs, so a model that retypes
 * "Levi's" with a curly apostrophe is not flagged.
 */
#include "generation/generation.h"

#define MAX_DIGITS 6  /* "[2024]" is a citation, "[1234567]" is not */
#define MAX_ITEMS  16 /* numbers or ranges in one bracket */
#define MAX_RANGE  64

struct range {
    size_t lo, hi;
};

/* Bytes [start, end) of one "[...]"; its citations are cites.item[first .. first + n). */
struct group {
    size_t start, end, first, n;
};

/* Bytes [start, end) of a quoted span with its marks; the content is text[0..len). */
struct quote {
    size_t start, end;
    const char *text;
    size_t len;
};

struct scan {
    struct {
        struct group *item;
        size_t n, cap;
    } groups;
    struct {
        struct quote *item;
        size_t n, cap;
    } quotes;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Map one code point to its comparison form: 0 = copy as is, ' ' = whitespace. */
static const char *fold(uint32_t cp)
{
    if (cp == 0xa0 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x202f || cp == 0x3000)
        return " ";
    if (cp == 0x2018 || cp == 0x2019 || cp == 0x201a || cp == 0x2032)
        return "'";
    if (cp == 0x201c || cp == 0x201d || cp == 0x201e || cp == 0x2033)
        return "\"";
    if ((cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212)
        return "-";
    if (cp == 0x2026)
        return "...";
    return NULL;
}

/* Append the comparison form of s[0..n) to out: see the file comment. */
static void normalise(const char *s, size_t n, struct buf *out)
{
    bool space = false;

    buf_append(out, "", 0);
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t w = utf8_decode(s + i, n - i, &cp);
        const char *f = w ? fold(cp) : NULL;

        w = w ? w : 1;
        if ((w == 1 && is_space(s[i])) || (f && *f == ' ')) {
            space = true;
        } else {
            if (space && out->len)
                buf_appendc(out, ' ');
            space = false;
            if (f)
                buf_appends(out, f);
            else if (w == 1 && s[i] >= 'A' && s[i] <= 'Z')
                buf_appendc(out, (char)(s[i] - 'A' + 'a'));
            else
                buf_append(out, s + i, w);
        }
        i += w;
    }
}

/* a[i] is '`': the end of the code span it opens, or of the backtick run if unclosed. */
static size_t code_span_end(const char *a, size_t len, size_t i)
{
    size_t r = 0, j, k;

    while (i + r < len && a[i + r] == '`')
        r++;
    for (j = i + r; j < len; j += k ? k : 1) {
        for (k = 0; j + k < len && a[j + k] == '`'; k++)
            ;
        if (k == r)
            return j + k;
    }
    return i + r;
}

static bool parse_number(const char *a, size_t len, size_t *i, size_t *ret)
{
    size_t v = 0, n = 0;

    for (; *i < len && a[*i] >= '0' && a[*i] <= '9'; (*i)++, n++)
        v = v * 10 + (size_t)(a[*i] - '0');
    *ret = v;
    return n > 0 && n <= MAX_DIGITS;
}

static void skip_blanks(const char *a, size_t len, size_t *i)
{
    while (*i < len && a[*i] == ' ')
        (*i)++;
}

/* Length of a hyphen, en dash or em dash at a[i], or 0. */
static size_t dash_len(const char *a, size_t len, size_t i)
{
    if (i < len && a[i] == '-')
        return 1;
    if (i + 2 < len && !memcmp(a + i, "\xe2\x80", 2) && (a[i + 2] == '\x93' || a[i + 2] == '\x94'))
        return 3;
    return 0;
}

/* a[i] is the '(' after "]": the end of a link target "(url)" (no blanks), or 0. */
static size_t link_end(const char *a, size_t len, size_t i)
{
    for (size_t j = i + 1; j < len && !is_space(a[j]); j++) {
        if (a[j] == ')')
            return j + 1;
    }
    return 0;
}

/* a[i] is '[': parse "[1]", "[2, 3]", "[1-3]"; returns the end after ']', or 0. */
static size_t parse_bracket(const char *a, size_t len, size_t i, struct range *r, size_t *ret_n)
{
    size_t n = 0, w;

    for (i++;; i++) {
        skip_blanks(a, len, &i);
        if (n == MAX_ITEMS || !parse_number(a, len, &i, &r[n].lo))
            return 0;
        r[n].hi = r[n].lo;
        skip_blanks(a, len, &i);
        w = dash_len(a, len, i);
        if (w) {
            i += w;
            skip_blanks(a, len, &i);
            if (!parse_number(a, len, &i, &r[n].hi))
                return 0;
            skip_blanks(a, len, &i);
        }
        n++;
        if (i >= len || (a[i] != ',' && a[i] != ';'))
            break;
    }
    if (i >= len || a[i] != ']' || (i + 1 < len && a[i + 1] == '(' && link_end(a, len, i + 1)))
        return 0; /* not closed, or a Markdown link "[1](url)" */
    *ret_n = n;
    return i + 1;
}

static void add_problem(struct gen_cite_report *r, enum gen_cite_kind kind, size_t offset,
                        size_t number, const char *msg)
{
    struct gen_cite_problem *p;

    VEC_RESERVE(&r->problems, r->problems.n + 1);
    p = &r->problems.item[r->problems.n++];
    p->kind = kind;
    p->offset = offset;
    p->number = number;
    snprintf(p->msg, sizeof(p->msg), "%s", msg);
}

static void add_citation(struct gen_cite_report *r, size_t number, size_t offset)
{
    struct gen_citation *c;
    char msg[64];

    VEC_RESERVE(&r->cites, r->cites.n + 1);
    c = &r->cites.item[r->cites.n++];
    c->number = number;
    c->offset = offset;
    c->valid = number >= 1 && number <= r->n_src;
    if (!c->valid) {
        snprintf(msg, sizeof(msg), "no such source [%zu]", number);
        add_problem(r, GEN_CITE_NO_SOURCE, offset, number, msg);
    } else if (!r->cited[number - 1]) {
        r->cited[number - 1] = true;
        r->n_cited++;
    }
}

static void add_group(struct gen_cite_report *r, struct scan *s, size_t start, size_t end,
                      const struct range *range, size_t n)
{
    struct group g = { .start = start, .end = end, .first = r->cites.n };
    char msg[64];

    for (size_t i = 0; i < n; i++) {
        if (range[i].hi < range[i].lo || range[i].hi - range[i].lo >= MAX_RANGE) {
            snprintf(msg, sizeof(msg), "invalid citation range [%zu-%zu]", range[i].lo,
                     range[i].hi);
            add_problem(r, GEN_CITE_BAD_RANGE, start, range[i].lo, msg);
            continue;
        }
        for (size_t k = range[i].lo; k <= range[i].hi; k++)
            add_citation(r, k, start);
    }
    g.n = r->cites.n - g.first;
    VEC_RESERVE(&s->groups, s->groups.n + 1);
    s->groups.item[s->groups.n++] = g;
}

/* Record a quotation that opens at a[i] and closes in its paragraph; returns its end or 0. */
static size_t quote_at(const char *a, size_t len, size_t i, struct scan *s)
{
    const char *close = "\"";
    size_t w = 1, cw = 1;

    if (a[i] != '"') {
        if (i + 2 >= len || memcmp(a + i, "\xe2\x80\x9c", 3))
            return 0;
        close = "\xe2\x80\x9d";
        w = cw = 3;
    }
    for (size_t j = i + w; j + cw <= len; j++) {
        if (a[j] == '\n' && j + 1 < len && a[j + 1] == '\n')
            return 0;
        if (memcmp(a + j, close, cw))
            continue;
        VEC_RESERVE(&s->quotes, s->quotes.n + 1);
        s->quotes.item[s->quotes.n++] = (struct quote){ i, j + cw, a + i + w, j - i - w };
        return j + cw;
    }
    return 0;
}

static void scan(const char *a, size_t len, struct gen_cite_report *r, struct scan *s)
{
    struct range range[MAX_ITEMS];
    size_t i = 0, end, n;

    while (i < len) {
        if (a[i] == '`') {
            i = code_span_end(a, len, i);
            continue;
        }
        end = a[i] == '(' && i > 0 && a[i - 1] == ']' ? link_end(a, len, i) : 0;
        if (end) {
            i = end;
            continue;
        }
        end = a[i] == '[' ? parse_bracket(a, len, i, range, &n) : 0;
        if (end)
            add_group(r, s, i, end, range, n);
        else
            end = quote_at(a, len, i, s);
        i = end ? end : i + 1;
    }
}

/* True when a[from..to) ends no sentence and no line before reaching to. */
static bool same_sentence(const char *a, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        size_t k = j + 1;

        if (a[j] != '\n' &&
            !((a[j] == '.' || a[j] == '!' || a[j] == '?') && k < to && is_space(a[k])))
            continue;
        while (k < to && is_space(a[k]))
            k++;
        if (k < to)
            return false;
    }
    return true;
}

static bool has_blank_line(const char *a, size_t from, size_t to)
{
    for (size_t j = from; j + 1 < to; j++) {
        if (a[j] == '\n' && a[j + 1] == '\n')
            return true;
    }
    return false;
}

/* Only blanks in a[from..to): "[1][2]" and "[1] [2]" cite together. */
static bool adjacent(const char *a, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        if (a[j] != ' ')
            return false;
    }
    return true;
}

/*
 * The citations cites.item[*ret_first .. *ret_end) a quote belongs to: the
 * next group(s) in its sentence, else the previous one(s) in its paragraph.
 * False when there is none.
 */
static bool attach(const char *a, const struct scan *s, const struct quote *q, size_t *ret_first,
                   size_t *ret_end)
{
    const struct group *g = s->groups.item;
    size_t n = s->groups.n, i = 0, j;

    while (i < n && g[i].start < q->end)
        i++;
    if (i < n && same_sentence(a, q->end, g[i].start)) {
        for (j = i; j + 1 < n && adjacent(a, g[j].end, g[j + 1].start); j++)
            ;
    } else {
        if (i == 0 || has_blank_line(a, g[i - 1].end, q->start))
            return false;
        j = --i;
        while (i > 0 && adjacent(a, g[i - 1].end, g[i].start))
            i--;
    }
    *ret_first = g[i].first;
    *ret_end = g[j].first + g[j].n;
    return true;
}

static bool is_edge(char c)
{
    return c == ' ' || c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' ||
           c == '"' || c == '\'';
}

/* Words in a normalised text: single spaces separate them. */
static size_t n_words(const struct buf *b)
{
    size_t n = b->len > 0;

    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == ' ';
    return n;
}

/* Whether the parts of nq (normalised, split at "...") occur in order in hay. */
static bool parts_in_order(const struct buf *nq, const struct buf *hay)
{
    const char *p = nq->data, *end = nq->data + nq->len, *at = hay->data;

    while (p < end) {
        const char *e = memmem(p, (size_t)(end - p), "...", 3);
        const char *q = e ? e : end;
        const char *hit;

        while (p < q && is_edge(*p))
            p++;
        while (q > p && is_edge(q[-1]))
            q--;
        if (q > p) {
            hit = memmem(at, (size_t)(hay->data + hay->len - at), p, (size_t)(q - p));
            if (!hit)
                return false;
            at = hit + (q - p);
        }
        p = e ? e + 3 : end;
    }
    return true;
}

/* Check one quote; adds a problem when none of its group's valid sources contains it. */
static void check_quote(const char *a, const struct scan *s, const struct quote *q,
                        const struct gen_source *src, struct gen_cite_report *r)
{
    struct buf nq = BUF_INIT, hay = BUF_INIT, msg = BUF_INIT;
    bool found = false;
    size_t first = 0, begin, end;

    normalise(q->text, q->len, &nq);
    if (n_words(&nq) < GEN_CITE_QUOTE_MIN_WORDS || !attach(a, s, q, &begin, &end))
        goto out;
    for (size_t i = begin; i < end && !found; i++) {
        const struct gen_citation *c = &r->cites.item[i];

        if (!c->valid)
            continue;
        buf_reset(&hay);
        normalise(src[c->number - 1].text, src[c->number - 1].len, &hay);
        found = parts_in_order(&nq, &hay);
        buf_appendf(&msg, "%s%zu", msg.len ? ", " : "", c->number);
        first = first ? first : c->number;
    }
    if (!found && first) {
        buf_reset(&hay);
        buf_appendf(&hay, "quote not found in [%s]", msg.data);
        add_problem(r, GEN_CITE_QUOTE_NOT_FOUND, q->start, first, hay.data);
    }
out:
    buf_release(&nq);
    buf_release(&hay);
    buf_release(&msg);
}

void gen_cite_check(const char *answer, size_t len, const struct gen_source *src, size_t n_src,
                    struct gen_cite_report *out)
{
    struct scan s = { 0 };

    memset(out, 0, sizeof(*out));
    out->n_src = n_src;
    out->cited = xcalloc(n_src + 1, sizeof(*out->cited));
    scan(answer, len, out, &s);
    for (size_t i = 0; i < s.quotes.n; i++)
        check_quote(answer, &s, &s.quotes.item[i], src, out);
    out->abstained = gen_is_abstention(answer, len);
    free(s.groups.item);
    free(s.quotes.item);
}

void gen_cite_report_release(struct gen_cite_report *r)
{
    if (!r)
        return;
    free(r->cites.item);
    free(r->problems.item);
    free(r->cited);
    memset(r, 0, sizeof(*r));
}

/* Matched in the normalised answer (lower case, straight apostrophes). */
static const char *const abstain_phrase[] = {
    "not found in the",       "i don't know",           "i do not know",
    "no information",         "sources do not contain", "sources don't contain",
    "sources do not mention", "sources don't mention",  "sources do not provide",
    "sources don't provide",  "not mentioned in the",   "not provided in the",
    "cannot be answered",     "unable to answer",       "cannot answer",
};

bool gen_is_abstention(const char *answer, size_t len)
{
    struct buf b = BUF_INIT;
    bool found = false;

    normalise(answer, len, &b);
    for (size_t i = 0; i < sizeof(abstain_phrase) / sizeof(abstain_phrase[0]) && !found; i++)
        found = strstr(b.data, abstain_phrase[i]) != NULL;
    buf_release(&b);
    return found;
}
