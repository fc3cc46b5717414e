/*
 * generation/prompt.c - assemble the RAG prompt under a token budget, and
 * the weak-evidence rule.
 *
 * The system message holds the instructions; the user message holds the
 * numbered sources, then the question (sources first, so the question stays
 * next to the answer and a prefix of chunks can be reused). Token counts are
 * not additive at text boundaries, so every candidate user message is
 * counted whole with the caller's counter: the count returned is the count
 * of the exact texts returned, and it never exceeds the budget.
 */
#include "generation/generation.h"

#include <assert.h>
#include <math.h>

struct builder {
    const struct gen_prompt_opts *opts;
    const char *question;
    size_t question_len;
    size_t n_system;  /* tokens of the system message */
    struct buf body;  /* accepted source blocks */
    struct buf block; /* the source block being tried */
    struct buf user;  /* the candidate user message */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static size_t count(const struct builder *b, const char *s, size_t n)
{
    return b->opts->tok.count(b->opts->tok.ctx, s, n);
}

/* s with leading and trailing whitespace removed. */
static struct gen_source trimmed(const struct gen_source *s)
{
    struct gen_source t = *s;

    while (t.len && is_space(t.text[0])) {
        t.text++;
        t.len--;
    }
    while (t.len && is_space(t.text[t.len - 1]))
        t.len--;
    return t;
}

/* Append s with line breaks turned into spaces, so a header stays one line. */
static void append_line(struct buf *b, const char *s)
{
    for (; *s; s++)
        buf_appendc(b, *s == '\n' || *s == '\r' ? ' ' : *s);
}

/* "[n] path > heading (p. 3)\n" then text[0..len) and a blank line. */
static void append_block(struct buf *b, size_t number, const struct gen_source *s, size_t len)
{
    bool has_path = s->path && *s->path;

    buf_appendf(b, "[%zu]", number);
    if (has_path) {
        buf_appendc(b, ' ');
        append_line(b, s->path);
    }
    if (s->heading && *s->heading) {
        buf_appends(b, has_path ? " > " : " ");
        append_line(b, s->heading);
    }
    if (s->page_first && s->page_last > s->page_first)
        buf_appendf(b, " (pp. %u-%u)", s->page_first, s->page_last);
    else if (s->page_first)
        buf_appendf(b, " (p. %u)", s->page_first);
    buf_appendc(b, '\n');
    buf_append(b, s->text, len);
    buf_appends(b, "\n\n");
}

/*
 * Build the user message from the accepted blocks plus extra[0..n) (a block
 * being tried, or nothing) and return the tokens of both messages.
 */
static size_t candidate(struct builder *b, const char *extra, size_t n)
{
    buf_reset(&b->user);
    if (b->body.len || n)
        buf_appends(&b->user, "Sources:\n\n");
    buf_append(&b->user, b->body.data, b->body.len);
    buf_append(&b->user, extra, n);
    buf_appends(&b->user, "Question: ");
    buf_append(&b->user, b->question, b->question_len);
    return b->n_system + count(b, b->user.data, b->user.len);
}

/* Tokens of the prompt with s[0..len) as source [number]; b->block holds its block. */
static size_t with_block(struct builder *b, size_t number, const struct gen_source *s, size_t len)
{
    buf_reset(&b->block);
    append_block(&b->block, number, s, len);
    return candidate(b, b->block.data, b->block.len);
}

static bool fits(struct builder *b, size_t number, const struct gen_source *s, size_t len)
{
    return with_block(b, number, s, len) <= b->opts->budget;
}

/* End of the last sentence in text[0..n) (text[n] exists), or 0. */
static size_t sentence_cut(const char *text, size_t n)
{
    for (size_t p = n; p > 1; p--) {
        char c = text[p - 1];

        if (text[p] == '\n')
            return p;
        if ((c == '"' || c == '\'' || c == ')') && p > 2)
            c = text[p - 2];
        if ((c == '.' || c == '!' || c == '?') && is_space(text[p]))
            return p;
    }
    return 0;
}

/* End of the last whole word in text[0..n) (text[n] exists), or 0. */
static size_t word_cut(const char *text, size_t n)
{
    size_t p = n;

    while (p > 0 && !is_space(text[p]))
        p--;
    while (p > 0 && is_space(text[p - 1]))
        p--;
    return p;
}

/*
 * Longest prefix of s, cut at a sentence (or else word) boundary, with which
 * the prompt fits and that has at least GEN_PROMPT_MIN_TRUNCATED tokens;
 * 0 when there is none. The search assumes counts grow with the prefix; the
 * final check does not, so an odd counter only makes the cut shorter or 0.
 */
static size_t truncated_len(struct builder *b, size_t number, const struct gen_source *s)
{
    size_t lo = 0, hi = s->len - 1, cut;

    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;

        if (fits(b, number, s, mid))
            lo = mid;
        else
            hi = mid - 1;
    }
    cut = sentence_cut(s->text, lo);
    if (cut < lo / 2)
        cut = word_cut(s->text, lo);
    if (!cut || count(b, s->text, cut) < GEN_PROMPT_MIN_TRUNCATED || !fits(b, number, s, cut))
        return 0;
    return cut;
}

/* Add src (input position index) to the prompt if it fits; see gen_prompt_build. */
static void try_source(struct builder *b, struct gen_prompt *p, const struct gen_source *src,
                       size_t index, size_t *total)
{
    struct gen_source s = trimmed(src);
    size_t number = p->n_source + 1, n;

    if (!s.len)
        return;
    n = with_block(b, number, &s, s.len);
    if (n > b->opts->budget) {
        if (p->n_source)
            return;
        s.len = truncated_len(b, number, &s);
        if (!s.len)
            return;
        n = with_block(b, number, &s, s.len); /* rebuild the block that fitted */
        p->truncated = true;
    }
    *total = n;
    buf_append(&b->body, b->block.data, b->block.len);
    p->source[p->n_source] = s;
    p->index[p->n_source] = index;
    p->n_source++;
}

int gen_prompt_build(struct gen_prompt *p, const char *question, const struct gen_source *src,
                     size_t n_src, const struct gen_prompt_opts *opts, struct rag_err *err)
{
    struct builder b = { .opts = opts, .body = BUF_INIT, .block = BUF_INIT, .user = BUF_INIT };
    struct gen_source q = { .text = question, .len = strlen(question) };
    const char *system = opts->system ? opts->system : GEN_PROMPT_SYSTEM_DEFAULT;
    size_t total;
    int rc = 0;

    assert(opts->tok.count);
    memset(p, 0, sizeof(*p));
    q = trimmed(&q);
    if (!q.len)
        return rag_errf(err, RAG_EINVAL, "empty question");
    b.question = q.text;
    b.question_len = q.len;
    b.n_system = count(&b, system, strlen(system));
    total = candidate(&b, NULL, 0);
    if (total > opts->budget) {
        rc = rag_errf(err, RAG_EINVAL,
                      "question too long for the context window (%zu tokens, budget %zu)", total,
                      opts->budget);
        goto out;
    }
    p->source = xmalloc_array(n_src + 1, sizeof(*p->source));
    p->index = xmalloc_array(n_src + 1, sizeof(*p->index));
    for (size_t i = 0; i < n_src && !p->truncated; i++)
        try_source(&b, p, &src[i], i, &total);
    candidate(&b, NULL, 0);
    p->user = buf_detach(&b.user, NULL);
    p->system = xstrdup(system);
    p->n_tokens = total;
out:
    buf_release(&b.body);
    buf_release(&b.block);
    buf_release(&b.user);
    return rc;
}

void gen_prompt_release(struct gen_prompt *p)
{
    if (!p)
        return;
    free(p->system);
    free(p->user);
    free(p->source);
    free(p->index);
    memset(p, 0, sizeof(*p));
}

bool gen_evidence_weak(const double *score, size_t n, double threshold)
{
    bool any = false;
    double best = 0;

    for (size_t i = 0; i < n; i++) {
        if (!isfinite(score[i]))
            continue;
        if (!any || score[i] > best)
            best = score[i];
        any = true;
    }
    return !any || best < threshold;
}
