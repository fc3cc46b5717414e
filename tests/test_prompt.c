/*
 * tests/test_prompt.c - suite 'generation', test 'prompt': the RAG prompt
 * builder (exact layout, greedy selection, truncation, the budget as a
 * property over random inputs with three token counters, one of them
 * non-monotonic), the weak-evidence rule, and the citation checker on a
 * SQuAD v1.1 dev paragraph (Super_Bowl_50, paragraphs 0 and 1, copied from
 * ../shared/data/squad-v1.1-dev/docs.jsonl).
 */
#include "generation/generation.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/testutil.h"

static const char para0[] =
    "Super Bowl 50 was an American football game to determine the champion of the National "
    "Football League (NFL) for the 2015 season. The American Football Conference (AFC) champion "
    "Denver Broncos defeated the National Football Conference (NFC) champion Carolina Panthers "
    "24\xe2\x80\x93"
    "10 to earn their third Super Bowl title. The game was played on February 7, 2016, at "
    "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California. As this was the "
    "50th Super Bowl, the league emphasized the \"golden anniversary\" with various gold-themed "
    "initiatives, as well as temporarily suspending the tradition of naming each Super Bowl game "
    "with Roman numerals (under which the game would have been known as \"Super Bowl L\"), so "
    "that the logo could prominently feature the Arabic numerals 50.";

static const char para1[] =
    "The Panthers finished the regular season with a 15\xe2\x80\x93"
    "1 record, and quarterback Cam Newton was named the NFL Most Valuable Player (MVP). They "
    "defeated the Arizona Cardinals 49\xe2\x80\x93"
    "15 in the NFC Championship Game and advanced to their second Super Bowl appearance since the "
    "franchise was founded in 1995. The Broncos finished the regular season with a 12\xe2\x80\x93"
    "4 record, and denied the New England Patriots a chance to defend their title from Super Bowl "
    "XLIX by defeating them 20\xe2\x80\x93"
    "18 in the AFC Championship Game. They joined the Patriots, Dallas Cowboys, and Pittsburgh "
    "Steelers as one of four teams that have made eight appearances in the Super Bowl.";

/* ---- token counters ---- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whitespace-separated words: additive across a whitespace boundary. */
static size_t count_words(void *ctx, const char *s, size_t n)
{
    size_t words = 0;

    (void)ctx;
    for (size_t i = 0; i < n; i++)
        words += !is_ws(s[i]) && (i == 0 || is_ws(s[i - 1]));
    return words;
}

/* BPE-like: ceil(bytes / 4) plus one per whitespace run; not additive. */
static size_t count_bpe(void *ctx, const char *s, size_t n)
{
    size_t runs = 0;

    (void)ctx;
    for (size_t i = 0; i < n; i++)
        runs += is_ws(s[i]) && (i == 0 || !is_ws(s[i - 1]));
    return (n + 3) / 4 + runs;
}

/* Pathological: deterministic, but jumps up and down as the text grows. */
static size_t count_odd(void *ctx, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    (void)ctx;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return n / 5 + (size_t)(h % 61);
}

static size_t words(const char *s)
{
    return count_words(NULL, s, strlen(s));
}

static struct gen_prompt_opts opts_words(size_t budget)
{
    struct gen_prompt_opts o = { .budget = budget, .tok = { count_words, NULL } };

    return o;
}

static struct gen_source source(const char *text, const char *path, const char *heading)
{
    struct gen_source s = { .text = text, .len = strlen(text), .path = path, .heading = heading };

    return s;
}

/* Tokens of the prompt without sources for question q and the default system text. */
static size_t base_words(const char *q)
{
    return words(GEN_PROMPT_SYSTEM_DEFAULT) + words("Question:") + words(q);
}

/* ---- prompt builder ---- */

START_TEST(test_prompt_layout)
{
    struct gen_source src[3] = {
        source("Alpha beta.\n", "docs/a.md", "Intro > Setup"),
        source("  Gamma delta epsilon.  ", "docs/b.pdf", NULL),
        source("Zeta.", NULL, "Notes"),
    };
    struct gen_prompt_opts o = opts_words(1000);
    struct gen_prompt p;
    struct rag_err err = { 0 };

    src[0].page_first = src[0].page_last = 3;
    src[1].page_first = 4;
    src[1].page_last = 5;
    ck_assert_int_eq(gen_prompt_build(&p, " Who is alpha? ", src, 3, &o, &err), 0);
    ck_assert_str_eq(p.system, GEN_PROMPT_SYSTEM_DEFAULT);
    ck_assert_str_eq(p.user, "Sources:\n\n"
                             "[1] docs/a.md > Intro > Setup (p. 3)\nAlpha beta.\n\n"
                             "[2] docs/b.pdf (pp. 4-5)\nGamma delta epsilon.\n\n"
                             "[3] Notes\nZeta.\n\n"
                             "Question: Who is alpha?");
    ck_assert_uint_eq(p.n_tokens, words(p.system) + words(p.user));
    ck_assert_uint_eq(p.n_source, 3);
    ck_assert_uint_eq(p.index[2], 2);
    ck_assert(!p.truncated);
    ck_assert_uint_eq(p.source[1].len, strlen("Gamma delta epsilon."));
    ck_assert(!memcmp(p.source[1].text, "Gamma", 5));
    ck_assert(strstr(GEN_PROMPT_SYSTEM_DEFAULT, GEN_NOT_FOUND) != NULL);
    gen_prompt_release(&p);
    gen_prompt_release(&p); /* released twice: no-op */
}
END_TEST

START_TEST(test_prompt_custom_system_no_sources)
{
    struct gen_prompt_opts o = opts_words(100);
    struct gen_source empty = source(" \n ", "x", NULL);
    struct gen_prompt p;
    struct rag_err err = { 0 };

    o.system = "Be terse.";
    ck_assert_int_eq(gen_prompt_build(&p, "what?", &empty, 1, &o, &err), 0);
    ck_assert_str_eq(p.system, "Be terse.");
    ck_assert_str_eq(p.user, "Question: what?");
    ck_assert_uint_eq(p.n_source, 0);
    ck_assert_uint_eq(p.n_tokens, 4);
    gen_prompt_release(&p);
}
END_TEST

START_TEST(test_prompt_skips_what_does_not_fit)
{
    static char huge[4000];
    struct gen_source src[3];
    struct gen_prompt p;
    struct rag_err err = { 0 };
    size_t need;

    for (size_t i = 0; i + 2 < sizeof(huge); i += 2)
        memcpy(huge + i, "w ", 2);
    src[0] = source("one two three", "a", NULL);
    src[1] = source(huge, "b", NULL);
    src[2] = source("four five", "c", NULL);
    /* Exactly enough for sources 0 and 2: "[1] a" + 3 words, "[2] c" + 2 words, "Sources:". */
    need = base_words("q?") + 1 + (2 + 3) + (2 + 2);
    struct gen_prompt_opts o = opts_words(need);
    ck_assert_int_eq(gen_prompt_build(&p, "q?", src, 3, &o, &err), 0);
    ck_assert_uint_eq(p.n_source, 2);
    ck_assert_uint_eq(p.index[0], 0);
    ck_assert_uint_eq(p.index[1], 2);
    ck_assert_uint_eq(p.n_tokens, need);
    ck_assert(strstr(p.user, "[2] c\nfour five\n\n") != NULL);
    gen_prompt_release(&p);
    o.budget = need - 1; /* one token short: source 2 no longer fits */
    ck_assert_int_eq(gen_prompt_build(&p, "q?", src, 3, &o, &err), 0);
    ck_assert_uint_eq(p.n_source, 1);
    ck_assert_uint_eq(p.n_tokens, need - 4);
    gen_prompt_release(&p);
}
END_TEST

/* A huge first source is cut at the last sentence end that fits. */
START_TEST(test_prompt_truncates_first_at_sentence)
{
    struct buf text = BUF_INIT;
    struct gen_source src[2];
    struct gen_prompt p;
    struct rag_err err = { 0 };
    size_t budget = base_words("Who won?") + 1 + 3 + 150, end, next;

    for (int i = 0; i < 6; i++)
        buf_appendf(&text, "%s ", para0);
    src[0] = source(text.data, "sb.txt", NULL);
    src[1] = source("small", "s", NULL);
    struct gen_prompt_opts o = opts_words(budget);
    ck_assert_int_eq(gen_prompt_build(&p, "Who won?", src, 2, &o, &err), 0);
    ck_assert_uint_eq(p.n_source, 1);
    ck_assert(p.truncated);
    ck_assert_ptr_eq(p.source[0].text, text.data);
    end = p.source[0].len;
    ck_assert_uint_lt(end, strlen(text.data));
    ck_assert_int_eq(text.data[end - 1], '.');
    ck_assert_int_eq(text.data[end], ' ');
    ck_assert_uint_ge(count_words(NULL, text.data, end), GEN_PROMPT_MIN_TRUNCATED);
    ck_assert_uint_le(p.n_tokens, budget);
    ck_assert_uint_eq(p.n_tokens, words(p.system) + words(p.user));
    /* The next sentence would not have fitted: it is the longest sentence cut. */
    next = (size_t)(strstr(text.data + end + 1, ". ") + 1 - text.data);
    ck_assert_uint_gt(p.n_tokens + count_words(NULL, text.data + end, next - end), budget);
    gen_prompt_release(&p);
    buf_release(&text);
}
END_TEST

/* One endless sentence is cut at a word boundary. */
START_TEST(test_prompt_truncates_at_word)
{
    struct buf text = BUF_INIT;
    struct gen_source src;
    struct gen_prompt p;
    struct rag_err err = { 0 };
    size_t budget = base_words("q") + 1 + 2 + 100;

    for (int i = 0; i < 500; i++)
        buf_appendf(&text, "word%d ", i);
    src = source(text.data, "w", NULL);
    struct gen_prompt_opts o = opts_words(budget);
    ck_assert_int_eq(gen_prompt_build(&p, "q", &src, 1, &o, &err), 0);
    ck_assert(p.truncated);
    ck_assert_uint_eq(count_words(NULL, p.source[0].text, p.source[0].len), 100);
    ck_assert_int_eq(text.data[p.source[0].len], ' ');
    ck_assert_uint_eq(p.n_tokens, budget);
    gen_prompt_release(&p);
    buf_release(&text);
}
END_TEST

/* Fewer than GEN_PROMPT_MIN_TRUNCATED tokens of the first source fit: skip it. */
START_TEST(test_prompt_min_truncated)
{
    struct gen_source src[2] = { source(para1, "p1", NULL), source(para0, "p0", NULL) };
    struct gen_prompt p;
    struct rag_err err = { 0 };
    size_t budget = base_words("q") + 1 + 2 + 40;

    src[1].len = 60; /* "Super Bowl 50 was an American football game to determine the" */
    struct gen_prompt_opts o = opts_words(budget);
    ck_assert_int_eq(gen_prompt_build(&p, "q", src, 2, &o, &err), 0);
    ck_assert_uint_eq(p.n_source, 1);
    ck_assert_uint_eq(p.index[0], 1);
    ck_assert(!p.truncated);
    ck_assert(strstr(p.user, "[1] p0\nSuper Bowl 50") != NULL);
    gen_prompt_release(&p);
}
END_TEST

START_TEST(test_prompt_question_too_long)
{
    struct gen_source src = source(para0, "p", NULL);
    struct gen_prompt_opts o = opts_words(20);
    struct gen_prompt p;
    struct rag_err err = { 0 };
    char want[128];

    ck_assert_int_eq(gen_prompt_build(&p, para1, &src, 1, &o, &err), RAG_EINVAL);
    snprintf(want, sizeof(want), "question too long for the context window (%zu tokens, budget 20)",
             base_words(para1));
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(p.user);
    ck_assert_uint_eq(p.n_source, 0);
    gen_prompt_release(&p);
    ck_assert_int_eq(gen_prompt_build(&p, " \n\t", &src, 1, &o, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "empty question");
}
END_TEST

/* ---- property: random sources and budgets, three counters ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void random_text(uint64_t *rng, size_t n_words, struct buf *out)
{
    static const char *const word[] = {
        "the",
        "Broncos",
        "defeated",
        "Panthers",
        "24\xe2\x80\x93"
        "10",
        "in",
        "Levi's",
        "game",
        "(NFL)",
        "season.",
        "title,",
        "Super",
        "Bowl",
        "50",
        "gold",
        "\"L\"",
        "numerals",
        "end.\n",
        "why?",
        "caf\xc3\xa9",
    };
    size_t n = sizeof(word) / sizeof(word[0]);

    buf_reset(out);
    buf_append(out, "", 0);
    for (size_t i = 0; i < n_words; i++)
        buf_appendf(out, "%s%s", i ? " " : "", word[rng_next(rng) % n]);
}

/* Check one built prompt against its inputs. */
static void check_prompt(const struct gen_prompt *p, const struct gen_source *src, size_t n_src,
                         const struct gen_prompt_opts *o, const char *q)
{
    size_t n = o->tok.count(NULL, p->system, strlen(p->system)) +
               o->tok.count(NULL, p->user, strlen(p->user));
    const char *at = p->user;
    char head[32];

    ck_assert_uint_eq(p->n_tokens, n);
    ck_assert_uint_le(n, o->budget);
    ck_assert(!p->truncated || p->n_source == 1);
    for (size_t k = 0; k < p->n_source; k++) {
        const struct gen_source *s = &p->source[k], *in = &src[p->index[k]];

        ck_assert(k == 0 || p->index[k] > p->index[k - 1]);
        ck_assert_uint_lt(p->index[k], n_src);
        struct gen_source t = *in;

        while (t.len && is_ws(t.text[0])) {
            t.text++;
            t.len--;
        }
        while (t.len && is_ws(t.text[t.len - 1]))
            t.len--;
        ck_assert_ptr_eq(s->text, t.text);
        ck_assert(p->truncated ? s->len < t.len : s->len == t.len);
        snprintf(head, sizeof(head), "[%zu] ", k + 1);
        at = strstr(at, head);
        ck_assert_ptr_nonnull(at);
        at = strchr(at, '\n') + 1;
        ck_assert(!memcmp(at, s->text, s->len));
    }
    if (p->truncated)
        ck_assert_uint_ge(o->tok.count(NULL, p->source[0].text, p->source[0].len),
                          GEN_PROMPT_MIN_TRUNCATED);
    ck_assert(strstr(p->user, "Question: ") != NULL);
    ck_assert_str_eq(strstr(p->user, "Question: ") + 10, q);
}

struct stats {
    size_t ok, too_long, truncated, sources;
};

static void random_round(uint64_t *rng, struct gen_token_counter tok, struct buf *text,
                         struct stats *st)
{
    struct gen_source src[12];
    struct buf q = BUF_INIT;
    size_t n_src = rng_next(rng) % 13;
    struct gen_prompt_opts o = { .budget = 10 + rng_next(rng) % 1500, .tok = tok };
    struct gen_prompt p;
    struct rag_err err = { 0 };
    int rc;

    for (size_t i = 0; i < n_src; i++) {
        size_t r = rng_next(rng) % 10;
        size_t n = r == 0 ? 0 : r < 3 ? 600 + rng_next(rng) % 1500 : rng_next(rng) % 150;

        random_text(rng, n, &text[i]);
        src[i] = source(text[i].data, i % 2 ? "doc.md" : "dir/x.pdf", i % 3 ? "A > B" : NULL);
        src[i].page_first = (unsigned)(i % 4);
        src[i].page_last = (unsigned)(i % 4 + i % 2);
    }
    random_text(rng, 1 + rng_next(rng) % (rng_next(rng) % 8 ? 20 : 400), &q);
    while (q.len && q.data[q.len - 1] == '\n')
        q.data[--q.len] = '\0'; /* the builder trims the question */
    rc = gen_prompt_build(&p, q.data, src, n_src, &o, &err);
    if (rc == 0) {
        check_prompt(&p, src, n_src, &o, q.data);
        st->ok++;
        st->truncated += p.truncated;
        st->sources += p.n_source;
    } else {
        ck_assert_int_eq(rc, RAG_EINVAL);
        ck_assert(!strncmp(err.msg, "question too long for the context window (", 42));
        buf_reset(&text[0]);
        buf_appendf(&text[0], "Question: %s", q.data);
        ck_assert_uint_gt(
            tok.count(NULL, GEN_PROMPT_SYSTEM_DEFAULT, strlen(GEN_PROMPT_SYSTEM_DEFAULT)) +
                tok.count(NULL, text[0].data, text[0].len),
            o.budget);
        st->too_long++;
    }
    gen_prompt_release(&p);
    buf_release(&q);
}

START_TEST(test_prompt_budget_property)
{
    struct gen_token_counter tok[3] = { { count_words, NULL },
                                        { count_bpe, NULL },
                                        { count_odd, NULL } };
    struct buf text[12];
    uint64_t rng = 0x9e3779b97f4a7c15ull;

    memset(text, 0, sizeof(text));
    for (size_t t = 0; t < 3; t++) {
        struct stats st = { 0 };

        for (int round = 0; round < 300; round++)
            random_round(&rng, tok[t], text, &st);
        /* Every outcome is exercised. */
        ck_assert_uint_gt(st.ok, 150);
        ck_assert_uint_gt(st.too_long, 5);
        ck_assert_uint_gt(st.truncated, 10);
        ck_assert_uint_gt(st.sources, st.ok);
    }
    for (size_t i = 0; i < 12; i++)
        buf_release(&text[i]);
}
END_TEST

/* ---- weak evidence ---- */

START_TEST(test_evidence_weak)
{
    const double low[] = { 0.1, 0.25, -0.3 };
    const double good[] = { 0.1, 0.55, NAN };
    const double odd[] = { NAN, INFINITY };
    const double edge[] = { GEN_WEAK_EVIDENCE_DEFAULT };

    ck_assert(gen_evidence_weak(NULL, 0, GEN_WEAK_EVIDENCE_DEFAULT));
    ck_assert(gen_evidence_weak(low, 3, GEN_WEAK_EVIDENCE_DEFAULT));
    ck_assert(!gen_evidence_weak(good, 3, GEN_WEAK_EVIDENCE_DEFAULT));
    ck_assert(gen_evidence_weak(good, 3, 0.6));
    ck_assert(gen_evidence_weak(odd, 2, GEN_WEAK_EVIDENCE_DEFAULT));
    ck_assert(!gen_evidence_weak(edge, 1, GEN_WEAK_EVIDENCE_DEFAULT));
}
END_TEST

/* ---- citations ---- */

static size_t off(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);

    ck_assert_msg(p != NULL, "'%s' not in '%s'", needle, hay);
    return (size_t)(p - hay);
}

static void check(const char *answer, size_t n_src, struct gen_cite_report *r)
{
    struct gen_source src[3] = { source(para0, "a", NULL), source(para1, "b", NULL),
                                 source("Short third source.", "c", NULL) };

    ck_assert_uint_le(n_src, 3);
    gen_cite_check(answer, strlen(answer), src, n_src, r);
}

START_TEST(test_cite_forms)
{
    const char *a = "Denver won [1]. It was close [2, 3] and [1][2]; see [1-3] and [2\xe2\x80\x93"
                    "3] or [ 3 ;1 ].";
    const size_t want_n[] = { 1, 2, 3, 1, 2, 1, 2, 3, 2, 3, 3, 1 };
    const char *want_at[] = { "[1]",   "[2, 3]", "[2, 3]", "[1][2]",         "[2];",
                              "[1-3]", "[1-3]",  "[1-3]",  "[2\xe2\x80\x93", "[2\xe2\x80\x93",
                              "[ 3",   "[ 3" };
    struct gen_cite_report r;

    check(a, 3, &r);
    ck_assert_uint_eq(r.cites.n, 12);
    for (size_t i = 0; i < r.cites.n; i++) {
        ck_assert_uint_eq(r.cites.item[i].number, want_n[i]);
        ck_assert_uint_eq(r.cites.item[i].offset, off(a, want_at[i]));
        ck_assert(r.cites.item[i].valid);
    }
    ck_assert_uint_eq(r.problems.n, 0);
    ck_assert_uint_eq(r.n_cited, 3);
    ck_assert(r.cited[0] && r.cited[1] && r.cited[2]);
    ck_assert(!r.abstained);
    gen_cite_report_release(&r);
}
END_TEST

START_TEST(test_cite_invalid)
{
    const char *a = "Yes [4], no [0], maybe [2]. Range [3-1] and [1-500].";
    struct gen_cite_report r;

    check(a, 3, &r);
    ck_assert_uint_eq(r.cites.n, 3);
    ck_assert(!r.cites.item[0].valid);
    ck_assert(!r.cites.item[1].valid);
    ck_assert(r.cites.item[2].valid);
    ck_assert_uint_eq(r.n_cited, 1);
    ck_assert(r.cited[1] && !r.cited[0] && !r.cited[2]);
    ck_assert_uint_eq(r.problems.n, 4);
    ck_assert_int_eq(r.problems.item[0].kind, GEN_CITE_NO_SOURCE);
    ck_assert_uint_eq(r.problems.item[0].offset, off(a, "[4]"));
    ck_assert_uint_eq(r.problems.item[0].number, 4);
    ck_assert_str_eq(r.problems.item[0].msg, "no such source [4]");
    ck_assert_str_eq(r.problems.item[1].msg, "no such source [0]");
    ck_assert_int_eq(r.problems.item[2].kind, GEN_CITE_BAD_RANGE);
    ck_assert_str_eq(r.problems.item[2].msg, "invalid citation range [3-1]");
    ck_assert_uint_eq(r.problems.item[3].offset, off(a, "[1-500]"));
    gen_cite_report_release(&r);
    check("Nothing to cite [1].", 0, &r);
    ck_assert_uint_eq(r.problems.n, 1);
    ck_assert_uint_eq(r.n_cited, 0);
    gen_cite_report_release(&r);
}
END_TEST

START_TEST(test_cite_not_citations)
{
    const char *a = "A [x] box, `a[1]` and ``b[2] ` c[3]``, a fence\n```\nv[2] = 0;\n```\n"
                    "a [link](http://x/[1]) and [1](http://y), [1.5], [ ], [a1], [1 2], [1234567] "
                    "and [2";
    struct gen_cite_report r;

    check(a, 3, &r);
    ck_assert_uint_eq(r.cites.n, 0);
    ck_assert_uint_eq(r.problems.n, 0);
    gen_cite_report_release(&r);
    /* An unclosed backtick is a literal: the citation after it counts. */
    check("x ` y [2]", 3, &r);
    ck_assert_uint_eq(r.cites.n, 1);
    ck_assert_uint_eq(r.cites.item[0].offset, 6);
    gen_cite_report_release(&r);
    /* Parentheses with blanks after a citation are not a link target. */
    check("Denver [1](in 2016) won.", 3, &r);
    ck_assert_uint_eq(r.cites.n, 1);
    ck_assert_uint_eq(r.cites.item[0].offset, 7);
    gen_cite_report_release(&r);
}
END_TEST

/* Run the checker and return the number of problems; the first one's message in msg. */
static size_t quote_problems(const char *a, size_t n_src, char *msg, size_t *ret_offset)
{
    struct gen_cite_report r;
    size_t n;

    check(a, n_src, &r);
    n = r.problems.n;
    msg[0] = '\0';
    if (n) {
        snprintf(msg, 96, "%s", r.problems.item[0].msg);
        *ret_offset = r.problems.item[0].offset;
        ck_assert_int_eq(r.problems.item[0].kind,
                         strncmp(msg, "quote", 5) ? GEN_CITE_NO_SOURCE : GEN_CITE_QUOTE_NOT_FOUND);
    }
    gen_cite_report_release(&r);
    return n;
}

START_TEST(test_cite_quotes)
{
    char msg[96];
    size_t at = 0;
    const char *bad = "The game was \"played on February 8, 2016, at Levi's Stadium\" [1].";

    /* Curly apostrophe, case, en dash written as a hyphen, curly quotes, trailing comma. */
    ck_assert_uint_eq(quote_problems("It was \"played on February 7, 2016, at Levi\xe2\x80\x99s "
                                     "Stadium\" [1].",
                                     3, msg, &at),
                      0);
    ck_assert_uint_eq(quote_problems("\xe2\x80\x9c"
                                     "DEFEATED the National Football Conference "
                                     "(NFC)  champion Carolina Panthers 24-10\xe2\x80\x9d [1]",
                                     3, msg, &at),
                      0);
    ck_assert_uint_eq(
        quote_problems("\"the champion of the National Football League,\"[1]", 3, msg, &at), 0);
    ck_assert_uint_eq(quote_problems(bad, 3, msg, &at), 1);
    ck_assert_str_eq(msg, "quote not found in [1]");
    ck_assert_uint_eq(at, off(bad, "\""));
    /* Cited to the wrong source, then to both. */
    ck_assert_uint_eq(quote_problems("\"to earn their third Super Bowl title\" [2].", 3, msg, &at),
                      1);
    ck_assert_str_eq(msg, "quote not found in [2]");
    ck_assert_uint_eq(
        quote_problems("\"to earn their third Super Bowl title\" [2, 1].", 3, msg, &at), 0);
    ck_assert_uint_eq(
        quote_problems("\"they joined the Patriots and the Jets\" [2][3].", 3, msg, &at), 1);
    ck_assert_str_eq(msg, "quote not found in [2, 3]");
}
END_TEST

START_TEST(test_cite_quote_attachment)
{
    char msg[96];
    size_t at = 0;

    /* The previous citation in the paragraph. */
    ck_assert_uint_eq(quote_problems("According to [2], \"finished the regular season with a "
                                     "15\xe2\x80\x93"
                                     "1 record\".",
                                     3, msg, &at),
                      0);
    ck_assert_uint_eq(quote_problems("According to [2], \"finished the regular season with a "
                                     "16-0 record\".",
                                     3, msg, &at),
                      1);
    ck_assert_str_eq(msg, "quote not found in [2]");
    /* The next citation wins over the previous one. */
    ck_assert_uint_eq(
        quote_problems("See [2]. The game \"was played on February 7\" [1].", 3, msg, &at), 0);
    /* Next citation in another sentence, nothing before: not attached. */
    ck_assert_uint_eq(
        quote_problems("He said \"this is in no source at all\". Denver won [1].", 3, msg, &at), 0);
    /* Previous citation in another paragraph: not attached. */
    ck_assert_uint_eq(
        quote_problems("Denver won [1].\n\nHe said \"this is in no source at all\".", 3, msg, &at),
        0);
    /* Too short to check; cited only to a missing source (that is the only problem). */
    ck_assert_uint_eq(quote_problems("the \"golden jubilee\" theme [1]", 3, msg, &at), 0);
    ck_assert_uint_eq(quote_problems("\"this is in no source at all\" [7]", 3, msg, &at), 1);
    ck_assert_str_eq(msg, "no such source [7]");
}
END_TEST

START_TEST(test_cite_quote_ellipsis)
{
    char msg[96];
    size_t at = 0;

    ck_assert_uint_eq(
        quote_problems("\"The game was played ... at Santa Clara, California\" [1]", 3, msg, &at),
        0);
    ck_assert_uint_eq(
        quote_problems("\"The game was played\xe2\x80\xa6 Santa Clara\" [1]", 3, msg, &at), 0);
    ck_assert_uint_eq(
        quote_problems("\"at Santa Clara, California ... The game was played\" [1]", 3, msg, &at),
        1);
}
END_TEST

START_TEST(test_abstention)
{
    const char *yes[] = {
        "Not found in the indexed documents.",
        "NOT FOUND IN THE INDEXED DOCUMENTS",
        "I don\xe2\x80\x99t know.",
        "I do not know the answer.",
        "The sources do not contain this information.",
        "There is no information about the halftime show.",
        "The provided sources don't mention it.",
    };
    const char *no[] = {
        "Denver Broncos won Super Bowl 50 [1].",
        "",
        "The game was played in Santa Clara [1]; the score is known.",
    };
    struct gen_cite_report r;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert_msg(gen_is_abstention(yes[i], strlen(yes[i])), "'%s'", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(!gen_is_abstention(no[i], strlen(no[i])), "'%s'", no[i]);
    check("Not found in the indexed documents.", 3, &r);
    ck_assert(r.abstained);
    ck_assert_uint_eq(r.cites.n, 0);
    gen_cite_report_release(&r);
}
END_TEST

static Suite *prompt_suite(void)
{
    Suite *s = suite_create("prompt");
    TCase *tc = tcase_create("prompt");
    TCase *tp = tcase_create("property");
    TCase *tcite = tcase_create("cite");

    tcase_add_test(tc, test_prompt_layout);
    tcase_add_test(tc, test_prompt_custom_system_no_sources);
    tcase_add_test(tc, test_prompt_skips_what_does_not_fit);
    tcase_add_test(tc, test_prompt_truncates_first_at_sentence);
    tcase_add_test(tc, test_prompt_truncates_at_word);
    tcase_add_test(tc, test_prompt_min_truncated);
    tcase_add_test(tc, test_prompt_question_too_long);
    tcase_add_test(tc, test_evidence_weak);
    tcase_add_test(tp, test_prompt_budget_property);
    tcase_set_timeout(tp, 120);
    tcase_add_test(tcite, test_cite_forms);
    tcase_add_test(tcite, test_cite_invalid);
    tcase_add_test(tcite, test_cite_not_citations);
    tcase_add_test(tcite, test_cite_quotes);
    tcase_add_test(tcite, test_cite_quote_attachment);
    tcase_add_test(tcite, test_cite_quote_ellipsis);
    tcase_add_test(tcite, test_abstention);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tp);
    suite_add_tcase(s, tcite);
    return s;
}

TEST_MAIN(prompt_suite)
