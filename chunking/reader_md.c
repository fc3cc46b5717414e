/*
 * chunking/reader_md.c - Markdown: the text is the source itself, and the
 * blocks follow CommonMark's block structure closely enough for chunking:
 * ATX and setext headings, paragraphs, lists (a run of items, loose or tight,
 * with nested and continuation lines, is one LIST block), fenced and indented
 * code (one CODE block), GFM pipe tables (one TABLE block whose header is the
 * header and delimiter rows), block quotes and thematic breaks (paragraphs),
 * and YAML front matter (a CODE block). Inline markup is left alone.
 *
 * Lines are indexed once (start, first non-blank byte, end, indent), then a
 * single forward pass with one line of lookahead classifies them.
 */
#include "chunking/reader.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct md_line {
    size_t start;  /* first byte of the line */
    size_t first;  /* first non-blank byte, == end for a blank line */
    size_t end;    /* end of content, without trailing blanks and the break */
    size_t indent; /* columns before first, tabs to multiples of 4 */
};

struct md {
    struct chunk_doc *doc;
    const char *text;
    struct md_line *line;
    size_t n, cap;
};

static void index_lines(struct md *m)
{
    const char *t = m->text, *nl;
    size_t pos = 0, len = m->doc->len, eol;
    struct md_line *l;

    while (pos < len) {
        nl = memchr(t + pos, '\n', len - pos);
        eol = nl ? (size_t)(nl - t) : len;
        m->line = grow_array(m->line, &m->cap, m->n + 1, sizeof(*m->line));
        l = &m->line[m->n++];
        l->start = pos;
        l->indent = 0;
        for (l->first = pos; l->first < eol && (t[l->first] == ' ' || t[l->first] == '\t');
             l->first++)
            l->indent = t[l->first] == '\t' ? (l->indent + 4) & ~(size_t)3 : l->indent + 1;
        l->end = eol;
        while (l->end > l->first && strchr(" \t\r\f\v", t[l->end - 1]))
            l->end--;
        if (l->end == l->first && l->first < eol)
            l->first = l->end = eol; /* only blanks: call it blank */
        pos = eol + 1;
    }
}

static bool blank(const struct md *m, size_t i)
{
    return m->line[i].first == m->line[i].end;
}

static char first_char(const struct md *m, size_t i)
{
    return blank(m, i) ? '\0' : m->text[m->line[i].first];
}

/* ATX heading: up to 3 spaces, 1-6 '#', then a blank or the end of the line. */
static int atx_level(const struct md *m, size_t i)
{
    const struct md_line *l = &m->line[i];
    size_t p = l->first;
    int level = 0;

    if (l->indent > 3)
        return 0;
    while (p < l->end && m->text[p] == '#' && level < 7) {
        p++;
        level++;
    }
    if (level < 1 || level > 6)
        return 0;
    if (p < l->end && m->text[p] != ' ' && m->text[p] != '\t')
        return 0;
    return level;
}

/* The title of an ATX heading, without the optional closing '#'s. */
static void atx_title(const struct md *m, size_t i, int level, size_t *ret_start, size_t *ret_end)
{
    const char *t = m->text;
    size_t s = m->line[i].first + (size_t)level, e = m->line[i].end, h;

    while (s < e && (t[s] == ' ' || t[s] == '\t'))
        s++;
    h = e;
    while (h > s && t[h - 1] == '#')
        h--;
    if (h == s || t[h - 1] == ' ' || t[h - 1] == '\t')
        e = h;
    while (e > s && (t[e - 1] == ' ' || t[e - 1] == '\t'))
        e--;
    *ret_start = s;
    *ret_end = e;
}

/* Opening fence: returns its length (>= 3) and sets *ch, or 0. */
static size_t fence_open(const struct md *m, size_t i, char *ch)
{
    const struct md_line *l = &m->line[i];
    const char *t = m->text;
    size_t p = l->first;
    char c = first_char(m, i);

    if (l->indent > 3 || (c != '`' && c != '~'))
        return 0;
    while (p < l->end && t[p] == c)
        p++;
    if (p - l->first < 3)
        return 0;
    if (c == '`' && memchr(t + p, '`', l->end - p))
        return 0;
    *ch = c;
    return p - l->first;
}

static bool fence_close(const struct md *m, size_t i, char ch, size_t len)
{
    const struct md_line *l = &m->line[i];
    size_t p = l->first;

    if (l->indent > 3 || first_char(m, i) != ch)
        return false;
    while (p < l->end && m->text[p] == ch)
        p++;
    return p - l->first >= len && p == l->end;
}

/* A line of one of c in "-*_" at least three times, blanks allowed between. */
static bool thematic_break(const struct md *m, size_t i)
{
    const struct md_line *l = &m->line[i];
    char c = first_char(m, i);
    size_t p, n = 0;

    if (l->indent > 3 || (c != '-' && c != '*' && c != '_'))
        return false;
    for (p = l->first; p < l->end; p++) {
        if (m->text[p] == c)
            n++;
        else if (m->text[p] != ' ' && m->text[p] != '\t')
            return false;
    }
    return n >= 3;
}

/* Setext underline: '=' or '-' only (trailing blanks already trimmed). */
static int setext_level(const struct md *m, size_t i)
{
    const struct md_line *l = &m->line[i];
    char c = first_char(m, i);
    size_t p;

    if (l->indent > 3 || (c != '=' && c != '-'))
        return 0;
    for (p = l->first; p < l->end; p++) {
        if (m->text[p] != c)
            return 0;
    }
    return c == '=' ? 1 : 2;
}

/*
 * List item marker at any indent: "-", "+", "*" or 1-9 digits and "." or ")",
 * then a blank or the end of the line. Returns 1 for a bullet, 2 for an
 * ordered item starting at 1 (these two may interrupt a paragraph), 3 for
 * another ordered item, 0 for none.
 */
static int list_marker(const struct md *m, size_t i)
{
    const struct md_line *l = &m->line[i];
    const char *t = m->text;
    size_t p = l->first;
    char c = first_char(m, i);

    if (c == '-' || c == '+' || c == '*') {
        p++;
        return p == l->end || t[p] == ' ' || t[p] == '\t' ? 1 : 0;
    }
    while (p < l->end && p - l->first < 10 && t[p] >= '0' && t[p] <= '9')
        p++;
    if (p == l->first || p - l->first > 9 || p == l->end || (t[p] != '.' && t[p] != ')'))
        return 0;
    p++;
    if (p != l->end && t[p] != ' ' && t[p] != '\t')
        return 0;
    return p - l->first == 2 && t[l->first] == '1' ? 2 : 3;
}

/* GFM delimiter row: only '|', ':', '-' and blanks, with a '|' and a '-'. */
static bool delimiter_row(const struct md *m, size_t i)
{
    const struct md_line *l = &m->line[i];
    bool pipe = false, dash = false;
    size_t p;

    if (l->indent > 3 || blank(m, i))
        return false;
    for (p = l->first; p < l->end; p++) {
        char c = m->text[p];

        if (c == '|')
            pipe = true;
        else if (c == '-')
            dash = true;
        else if (c != ':' && c != ' ' && c != '\t')
            return false;
    }
    return pipe && dash;
}

static bool table_start(const struct md *m, size_t i)
{
    const struct md_line *l = &m->line[i];

    /* the delimiter test first: it fails on the first byte of most lines */
    return i + 1 < m->n && delimiter_row(m, i + 1) && l->indent <= 3 && !blank(m, i) &&
           memchr(m->text + l->first, '|', l->end - l->first);
}

/*
 * CommonMark HTML blocks that may hold blank lines (kinds 1, 2, 3 and 5): a
 * comment, processing instruction, CDATA or a script, pre, style or textarea
 * element. Returns the text that ends it, or NULL.
 */
static const char *html_block_end(const struct md *m, size_t i)
{
    static const char *const open[][2] = {
        { "<!--", "-->" },
        { "<?", "?>" },
        { "<![CDATA[", "]]>" },
        { "<script", "</script>" },
        { "<pre", "</pre>" },
        { "<style", "</style>" },
        { "<textarea", "</textarea>" },
    };
    const struct md_line *l = &m->line[i];
    size_t k, n;
    char c;

    if (l->indent > 3 || first_char(m, i) != '<')
        return NULL;
    for (k = 0; k < sizeof(open) / sizeof(open[0]); k++) {
        n = strlen(open[k][0]);
        if (l->end - l->first < n || strncasecmp(m->text + l->first, open[k][0], n))
            continue;
        c = l->first + n < l->end ? m->text[l->first + n] : ' ';
        if (k < 3 || c == ' ' || c == '\t' || c == '>')
            return open[k][1];
    }
    return NULL;
}

static bool tag_char(char c)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '1' && c <= '6');
}

/*
 * CommonMark HTML block kind 6: a line opening or closing a block-level tag.
 * It runs to the next blank line.
 */
static bool html_block6(const struct md *m, size_t i)
{
    static const char tags[] =
        " address article aside blockquote body caption center col colgroup dd details dialog"
        " dir div dl dt fieldset figcaption figure footer form frame frameset h1 h2 h3 h4 h5 h6"
        " head header hr html iframe legend li link main menu nav noframes ol optgroup option p"
        " param section source summary table tbody td tfoot th thead title tr track ul ";
    const struct md_line *l = &m->line[i];
    size_t p = l->first + 1, q, k;
    char key[16];

    if (l->indent > 3 || first_char(m, i) != '<')
        return false;
    if (p < l->end && m->text[p] == '/')
        p++;
    for (q = p; q < l->end && tag_char(m->text[q]); q++)
        ;
    if (q < l->end && m->text[q] != ' ' && m->text[q] != '\t' && m->text[q] != '>' &&
        (m->text[q] != '/' || q + 1 >= l->end || m->text[q + 1] != '>'))
        return false;
    if (q == p || q - p > sizeof(key) - 3)
        return false;
    key[0] = ' ';
    for (k = 0; k < q - p; k++)
        key[k + 1] = (char)(m->text[p + k] | 0x20); /* letters to lower case, digits stay */
    key[k + 1] = ' ';
    key[k + 2] = '\0';
    return strstr(tags, key) != NULL;
}

/* Lines that end a paragraph, a quote or a table instead of joining it. */
static bool starts_block(const struct md *m, size_t i)
{
    char c = first_char(m, i), ch;

    if (m->line[i].indent > 3)
        return false;
    switch (c) {
    case '#':
        return atx_level(m, i) > 0;
    case '`':
    case '~':
        return fence_open(m, i, &ch) > 0;
    case '>':
        return true;
    case '<':
        return html_block_end(m, i) != NULL || html_block6(m, i);
    case '-':
    case '*':
    case '_':
    case '+':
        return thematic_break(m, i) || list_marker(m, i) == 1 || table_start(m, i);
    case '1':
        return list_marker(m, i) == 2 || table_start(m, i);
    default:
        return table_start(m, i);
    }
}

static void add(struct md *m, enum chunk_block_kind kind, size_t from, size_t to, int level)
{
    chunk_doc_add_block(m->doc, kind, m->line[from].first, m->line[to].end, m->line[from].first,
                        level);
}

static size_t parse_atx(struct md *m, size_t i, int level)
{
    size_t s, e;

    atx_title(m, i, level, &s, &e);
    add(m, CHUNK_BLOCK_HEADING, i, i, level);
    chunk_doc_add_heading(m->doc, s, e, level);
    return i + 1;
}

/* A fenced code block runs to its closing fence or to the end of the text. */
static size_t parse_fence(struct md *m, size_t i)
{
    char ch = 0;
    size_t len = fence_open(m, i, &ch), j, last = i;

    for (j = i + 1; j < m->n; j++) {
        if (!blank(m, j))
            last = j;
        if (fence_close(m, j, ch, len))
            break;
    }
    add(m, CHUNK_BLOCK_CODE, i, last, 0);
    return j < m->n ? j + 1 : m->n;
}

/* Indented code keeps its indentation: the block starts at the line start. */
static size_t parse_indented(struct md *m, size_t i)
{
    size_t j, last = i;

    for (j = i + 1; j < m->n; j++) {
        if (blank(m, j))
            continue;
        if (m->line[j].indent < 4)
            break;
        last = j;
    }
    chunk_doc_add_block(m->doc, CHUNK_BLOCK_CODE, m->line[i].start, m->line[last].end,
                        m->line[i].start, 0);
    return last + 1;
}

/* Header and delimiter rows, then rows up to a blank line or another block. */
static size_t parse_table(struct md *m, size_t i)
{
    size_t j = i + 2;

    while (j < m->n && !blank(m, j) && !starts_block(m, j))
        j++;
    chunk_doc_add_block(m->doc, CHUNK_BLOCK_TABLE, m->line[i].first, m->line[j - 1].end,
                        m->line[i + 1].end, 0);
    return j;
}

static bool list_continues(const struct md *m, size_t j, bool after_blank)
{
    if (m->line[j].indent >= 2)
        return true;
    if (thematic_break(m, j))
        return false;
    if (list_marker(m, j))
        return true;
    return !after_blank && !starts_block(m, j);
}

/* Items, their continuation lines and blank lines between them: one block. */
static size_t parse_list(struct md *m, size_t i)
{
    size_t j = i + 1, last = i, k;
    bool after_blank = false;

    while (j < m->n) {
        if (blank(m, j)) {
            for (k = j + 1; k < m->n && blank(m, k); k++)
                ;
            if (k == m->n)
                break;
            after_blank = true;
            j = k;
            continue;
        }
        if (!list_continues(m, j, after_blank))
            break;
        last = j++;
        after_blank = false;
    }
    add(m, CHUNK_BLOCK_LIST, i, last, 0);
    return last + 1;
}

static size_t parse_quote(struct md *m, size_t i)
{
    size_t j = i + 1;

    while (j < m->n && !blank(m, j) && (first_char(m, j) == '>' || !starts_block(m, j)))
        j++;
    add(m, CHUNK_BLOCK_PARAGRAPH, i, j - 1, 0);
    return j;
}

/* A paragraph, or a setext heading when an underline ends it. */
static size_t parse_paragraph(struct md *m, size_t i)
{
    size_t j;
    int level;

    for (j = i + 1; j < m->n && !blank(m, j); j++) {
        level = setext_level(m, j);
        if (level) {
            add(m, CHUNK_BLOCK_HEADING, i, j, level);
            chunk_doc_add_heading(m->doc, m->line[i].first, m->line[j - 1].end, level);
            return j + 1;
        }
        if (starts_block(m, j))
            break;
    }
    add(m, CHUNK_BLOCK_PARAGRAPH, i, j - 1, 0);
    return j;
}

/* An HTML block of kinds 1-5 runs to the line holding its end marker. */
static size_t parse_html_block(struct md *m, size_t i, const char *end)
{
    size_t j, from, n = strlen(end), last = i;

    for (j = i; j < m->n; j++) {
        const struct md_line *l = &m->line[j];

        from = j == i ? l->first + 2 : l->first; /* past "<!" or "<?" */
        if (!blank(m, j))
            last = j;
        if (l->end > from && memmem(m->text + from, l->end - from, end, n))
            break;
    }
    add(m, CHUNK_BLOCK_PARAGRAPH, i, j < m->n ? j : last, 0);
    return j < m->n ? j + 1 : m->n;
}

static bool line_is(const struct md *m, size_t i, const char *s)
{
    const struct md_line *l = &m->line[i];
    size_t n = strlen(s);

    return l->indent == 0 && l->end - l->first == n && !memcmp(m->text + l->first, s, n);
}

/* YAML front matter: "---" on the first line up to "---" or "...". */
static size_t parse_front_matter(struct md *m)
{
    size_t j;

    if (m->n < 2 || !line_is(m, 0, "---"))
        return 0;
    for (j = 1; j < m->n; j++) {
        if (line_is(m, j, "---") || line_is(m, j, "...")) {
            add(m, CHUNK_BLOCK_CODE, 0, j, 0);
            return j + 1;
        }
    }
    return 0;
}

static size_t parse_block(struct md *m, size_t i)
{
    const char *html;
    char ch;
    int level;
    size_t j;

    if (m->line[i].indent >= 4)
        return parse_indented(m, i);
    level = atx_level(m, i);
    if (level)
        return parse_atx(m, i, level);
    if (fence_open(m, i, &ch))
        return parse_fence(m, i);
    if (table_start(m, i))
        return parse_table(m, i);
    if (thematic_break(m, i)) {
        add(m, CHUNK_BLOCK_PARAGRAPH, i, i, 0);
        return i + 1;
    }
    if (list_marker(m, i))
        return parse_list(m, i);
    if (first_char(m, i) == '>')
        return parse_quote(m, i);
    html = html_block_end(m, i);
    if (html)
        return parse_html_block(m, i, html);
    if (html_block6(m, i)) {
        for (j = i + 1; j < m->n && !blank(m, j); j++)
            ;
        add(m, CHUNK_BLOCK_PARAGRAPH, i, j - 1, 0);
        return j;
    }
    return parse_paragraph(m, i);
}

void chunk_read_markdown(struct chunk_doc *doc)
{
    struct md m = { .doc = doc, .text = doc->text };
    size_t i;

    index_lines(&m);
    i = parse_front_matter(&m);
    while (i < m.n) {
        if (blank(&m, i))
            i++;
        else
            i = parse_block(&m, i);
    }
    free(m.line);
}
