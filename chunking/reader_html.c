/*
 * chunking/reader_html.c - HTML through libxml2's forgiving HTML parser,
 * rendered to readable, Markdown-like text:
 *
 *   - headings become "# Title" lines (HEADING blocks, and doc->headings);
 *   - paragraphs and other block containers become PARAGRAPH blocks, with
 *     whitespace collapsed and <br> kept as a line break;
 *   - ul/ol/dl become one LIST block of "- item", "1. item", "term" /
 *     ": definition" lines, nested lists indented by two spaces a level;
 *   - pre (and xmp, listing) is kept verbatim as a CODE block;
 *   - a data table becomes a TABLE block of "| a | b |" rows, with a "| --- |"
 *     delimiter after a header row (thead, or all th cells). A table whose
 *     cells hold tables, headings, lists or pre is a layout table: its cells
 *     are rendered as ordinary blocks instead, which also takes care of
 *     nested tables.
 *
 * Page furniture is dropped (reader_dom.c says what counts). libxml2 decodes
 * entities and converts the declared (or guessed) charset to UTF-8; text
 * fragments are still checked and repaired.
 */
#include "chunking/reader_dom.h"

#include <stdio.h>
#include <string.h>

enum mode {
    MODE_PARA, /* <br> is a line break */
    MODE_LINE, /* one line: <br> is a space (headings, list items) */
    MODE_CELL, /* one line, and '|' is escaped */
};

struct html {
    struct chunk_doc *doc;
    struct buf out;  /* the document text */
    struct buf para; /* inline text being collected */
    struct buf tmp;  /* repaired copy of an invalid text node */
    bool space;      /* a collapsed space is pending in para */
};

static bool ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Valid UTF-8 for s[0..n): s itself, or a repaired copy in h->tmp. */
static const char *checked(struct html *h, const char *s, size_t *n)
{
    if (utf8_valid_prefix(s, *n) == *n)
        return s;
    buf_reset(&h->tmp);
    h->doc->n_repaired += chunk_utf8_append(&h->tmp, s, *n);
    *n = h->tmp.len;
    return h->tmp.data;
}

static void pending_space(struct html *h)
{
    char last;

    if (!h->space)
        return;
    h->space = false;
    if (!h->para.len)
        return;
    last = h->para.data[h->para.len - 1];
    if (last != ' ' && last != '\n')
        buf_appendc(&h->para, ' ');
}

/* Append text with runs of blanks (and no-break spaces) collapsed to one space. */
static void inline_text(struct html *h, const char *s, size_t n, enum mode mode)
{
    size_t i = 0, j;

    s = checked(h, s, &n);
    while (i < n) {
        if (ws((unsigned char)s[i])) {
            h->space = true;
            i++;
        } else if ((unsigned char)s[i] == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xa0) {
            h->space = true;
            i += 2;
        } else {
            for (j = i; j < n && !ws((unsigned char)s[j]) && (unsigned char)s[j] != 0xc2 &&
                        (mode != MODE_CELL || s[j] != '|');
                 j++)
                ;
            pending_space(h);
            if (j == i) { /* a '|' in a cell, or a 0xc2 lead byte that is not U+00A0 */
                buf_append(&h->para, s[i] == '|' ? "\\|" : s + i, s[i] == '|' ? 2 : 1);
                j = i + 1;
            } else {
                buf_append(&h->para, s + i, j - i);
            }
            i = j;
        }
    }
}

static void line_break(struct html *h, enum mode mode)
{
    if (mode != MODE_PARA) {
        h->space = true;
        return;
    }
    h->space = false;
    while (h->para.len && h->para.data[h->para.len - 1] == ' ')
        h->para.len--;
    if (h->para.len && h->para.data[h->para.len - 1] != '\n')
        buf_appendc(&h->para, '\n');
}

/* The inline text of n (itself a text node or an element) into h->para. */
static void collect(struct html *h, const xmlNode *n, enum mode mode)
{
    const xmlNode *c;
    enum chunk_tag k;

    if (chunk_tag_is_text(n)) {
        inline_text(h, (const char *)n->content, strlen((const char *)n->content), mode);
        return;
    }
    if (chunk_tag_dropped(n))
        return;
    k = chunk_tag_of(n);
    if (k == CHUNK_TAG_BR) {
        line_break(h, mode);
        return;
    }
    if (k == CHUNK_TAG_TITLE)
        return;
    if (k != CHUNK_TAG_INLINE)
        h->space = true;
    for (c = n->children; c; c = c->next)
        collect(h, c, mode);
    if (k != CHUNK_TAG_INLINE)
        h->space = true;
}

/* Text exactly as written, for pre. */
static void collect_raw(struct html *h, const xmlNode *n)
{
    const xmlNode *c;
    size_t len;
    const char *s;

    if (chunk_tag_is_text(n)) {
        len = strlen((const char *)n->content);
        s = checked(h, (const char *)n->content, &len);
        buf_append(&h->para, s, len);
        return;
    }
    if (chunk_tag_dropped(n))
        return;
    if (chunk_tag_of(n) == CHUNK_TAG_BR)
        buf_appendc(&h->para, '\n');
    for (c = n->children; c; c = c->next)
        collect_raw(h, c);
}

/* Start a block in the output: a blank line after the previous one. */
static size_t begin_block(struct html *h)
{
    if (h->out.len)
        buf_append(&h->out, "\n\n", 2);
    return h->out.len;
}

/*
 * Trim h->para: blanks and line breaks at both ends, or for code only whole
 * blank lines at the start (indentation stays) and blanks at the end. False
 * when nothing is left.
 */
static bool para_trim(struct html *h, bool code)
{
    size_t s = 0, e = h->para.len, i;
    const char *p = h->para.data;

    while (e > 0 && ws((unsigned char)p[e - 1]))
        e--;
    for (i = 0; i < e && ws((unsigned char)p[i]); i++) {
        if (!code || p[i] == '\n')
            s = i + 1;
    }
    if (s)
        memmove(h->para.data, h->para.data + s, e - s);
    h->para.len = e - s;
    h->space = false;
    if (h->para.data)
        h->para.data[h->para.len] = '\0';
    return h->para.len > 0;
}

static void flush_para(struct html *h, enum chunk_block_kind kind)
{
    size_t start;

    if (para_trim(h, kind == CHUNK_BLOCK_CODE)) {
        start = begin_block(h);
        buf_append(&h->out, h->para.data, h->para.len);
        chunk_doc_add_block(h->doc, kind, start, h->out.len, start, 0);
    }
    buf_reset(&h->para);
}

static void walk(struct html *h, const xmlNode *parent);

static void emit_heading(struct html *h, const xmlNode *n)
{
    int level = n->name[1] - '0';
    size_t start, title;

    collect(h, n, MODE_LINE);
    if (para_trim(h, false)) {
        start = begin_block(h);
        buf_append(&h->out, "######", (size_t)level);
        buf_appendc(&h->out, ' ');
        title = h->out.len;
        buf_append(&h->out, h->para.data, h->para.len);
        chunk_doc_add_block(h->doc, CHUNK_BLOCK_HEADING, start, h->out.len, start, level);
        chunk_doc_add_heading(h->doc, title, h->out.len, level);
    }
    buf_reset(&h->para);
}

static void emit_title(struct html *h, const xmlNode *n)
{
    const xmlNode *c;

    for (c = n->children; c; c = c->next)
        collect(h, c, MODE_LINE);
    if (para_trim(h, false) && !h->doc->title)
        h->doc->title = xstrndup(h->para.data, h->para.len);
    buf_reset(&h->para);
}

static void emit_pre(struct html *h, const xmlNode *n)
{
    collect_raw(h, n);
    flush_para(h, CHUNK_BLOCK_CODE);
}

/* One line of a list: indent, marker, the collected item text. */
static void item_line(struct html *h, struct buf *lines, int depth, const char *marker)
{
    int i;

    if (para_trim(h, false)) {
        if (lines->len)
            buf_appendc(lines, '\n');
        for (i = 0; i < depth; i++)
            buf_append(lines, "  ", 2);
        buf_appends(lines, marker);
        buf_append(lines, h->para.data, h->para.len);
    }
    buf_reset(&h->para);
}

static void list_lines(struct html *h, const xmlNode *list, int depth, struct buf *lines);

/* An li, dt or dd: its text, then its nested lists one level deeper. */
static void list_item(struct html *h, const xmlNode *n, int depth, const char *marker,
                      struct buf *lines)
{
    const xmlNode *c;
    enum chunk_tag k;

    for (c = n->children; c; c = c->next) {
        k = chunk_tag_is_element(c) && !chunk_tag_dropped(c) ? chunk_tag_of(c) : CHUNK_TAG_INLINE;
        if (k == CHUNK_TAG_LIST || k == CHUNK_TAG_DL) {
            item_line(h, lines, depth, marker);
            list_lines(h, c, depth + 1, lines);
            marker = "  ";
        } else {
            collect(h, c, MODE_LINE);
        }
    }
    item_line(h, lines, depth, marker);
}

static bool holds_items(const xmlNode *n)
{
    const xmlNode *c;

    for (c = n->children; c; c = c->next) {
        if (chunk_tag_is_element(c) && chunk_tag_of(c) == CHUNK_TAG_ITEM)
            return true;
    }
    return false;
}

static void list_lines(struct html *h, const xmlNode *list, int depth, struct buf *lines)
{
    bool ordered = !strcmp((const char *)list->name, "ol");
    xmlChar *start = xmlGetProp(list, (const xmlChar *)"start");
    long num = 1;
    const xmlNode *c;
    char marker[32];

    if (start && parse_int((const char *)start, -1000000, 1000000, &num))
        num = 1;
    xmlFree(start);
    for (c = list->children; c; c = c->next) {
        if (!chunk_tag_is_element(c) || chunk_tag_dropped(c))
            continue;
        if (chunk_tag_of(c) == CHUNK_TAG_LIST || chunk_tag_of(c) == CHUNK_TAG_DL) {
            list_lines(h, c, depth + 1, lines);
            continue;
        }
        if (chunk_tag_of(c) != CHUNK_TAG_ITEM && holds_items(c)) {
            list_lines(h, c, depth, lines); /* a div grouping dt/dd pairs */
            continue;
        }
        if (ordered)
            snprintf(marker, sizeof(marker), "%ld. ", num++);
        else
            snprintf(marker, sizeof(marker), "%s",
                     !strcmp((const char *)c->name, "dt") ? "" :
                     !strcmp((const char *)c->name, "dd") ? ": " :
                                                            "- ");
        list_item(h, c, depth, marker, lines);
    }
}

static void emit_list(struct html *h, const xmlNode *n)
{
    struct buf lines = BUF_INIT;
    size_t start;

    list_lines(h, n, 0, &lines);
    if (lines.len) {
        start = begin_block(h);
        buf_append(&h->out, lines.data, lines.len);
        chunk_doc_add_block(h->doc, CHUNK_BLOCK_LIST, start, h->out.len, start, 0);
    }
    buf_release(&lines);
}

/* Append "| a | b |" for the cells of tr to rows; returns the cell count. */
static size_t table_row(struct html *h, const xmlNode *tr, struct buf *rows, bool *all_th)
{
    const xmlNode *c;
    size_t n = 0, mark = rows->len;
    bool any = false;

    *all_th = true;
    if (rows->len)
        buf_appendc(rows, '\n');
    buf_appendc(rows, '|');
    for (c = tr->children; c; c = c->next) {
        if (!chunk_tag_is_element(c) || chunk_tag_dropped(c) ||
            (strcmp((const char *)c->name, "td") && strcmp((const char *)c->name, "th")))
            continue;
        *all_th = *all_th && c->name[1] == 'h';
        collect(h, c, MODE_CELL);
        any = para_trim(h, false) || any;
        buf_appendc(rows, ' ');
        buf_append(rows, h->para.data ? h->para.data : "", h->para.len);
        buf_append(rows, " |", 2);
        buf_reset(&h->para);
        n++;
    }
    if (!any) {
        rows->len = mark;
        if (rows->data)
            rows->data[mark] = '\0';
        return 0;
    }
    return n;
}

struct table {
    struct buf rows;
    size_t header_len; /* bytes of header and delimiter rows, 0 for none */
    bool first_done;
};

static void table_rows(struct html *h, const xmlNode *parent, bool thead, struct table *t)
{
    const xmlNode *c;
    size_t n, i;
    bool all_th;

    for (c = parent->children; c; c = c->next) {
        if (!chunk_tag_is_element(c) || chunk_tag_dropped(c))
            continue;
        if (!strcmp((const char *)c->name, "thead") || !strcmp((const char *)c->name, "tbody") ||
            !strcmp((const char *)c->name, "tfoot")) {
            table_rows(h, c, !strcmp((const char *)c->name, "thead"), t);
            continue;
        }
        if (strcmp((const char *)c->name, "tr"))
            continue;
        n = table_row(h, c, &t->rows, &all_th);
        if (!n || t->first_done)
            continue;
        t->first_done = true;
        if (thead || all_th) {
            buf_append(&t->rows, "\n|", 2);
            for (i = 0; i < n; i++)
                buf_append(&t->rows, " --- |", 6);
            t->header_len = t->rows.len;
        }
    }
}

static void emit_caption(struct html *h, const xmlNode *table)
{
    const xmlNode *c;

    for (c = table->children; c; c = c->next) {
        if (chunk_tag_is_element(c) && !strcmp((const char *)c->name, "caption") &&
            !chunk_tag_dropped(c)) {
            collect(h, c, MODE_PARA);
            flush_para(h, CHUNK_BLOCK_PARAGRAPH);
        }
    }
}

static void emit_table(struct html *h, const xmlNode *n)
{
    struct table t = { .rows = BUF_INIT };
    size_t start;

    if (chunk_tag_is_layout(n)) {
        walk(h, n);
        return;
    }
    emit_caption(h, n);
    table_rows(h, n, false, &t);
    if (t.rows.len) {
        start = begin_block(h);
        buf_append(&h->out, t.rows.data, t.rows.len);
        chunk_doc_add_block(h->doc, CHUNK_BLOCK_TABLE, start, h->out.len, start + t.header_len, 0);
    }
    buf_release(&t.rows);
}

static void emit_block(struct html *h, const xmlNode *n)
{
    switch (chunk_tag_of(n)) {
    case CHUNK_TAG_TITLE:
        emit_title(h, n);
        break;
    case CHUNK_TAG_HEADING:
        emit_heading(h, n);
        break;
    case CHUNK_TAG_LIST:
    case CHUNK_TAG_DL:
        emit_list(h, n);
        break;
    case CHUNK_TAG_PRE:
        emit_pre(h, n);
        break;
    case CHUNK_TAG_TABLE:
        emit_table(h, n);
        break;
    case CHUNK_TAG_HR:
        break;
    default:
        walk(h, n);
        break;
    }
}

/*
 * Inline children gather into one paragraph; any block child ends it. An
 * inline or unknown element that holds blocks is walked like a container.
 */
static void walk(struct html *h, const xmlNode *parent)
{
    const xmlNode *c;
    enum chunk_tag k;

    for (c = parent->children; c; c = c->next) {
        if (chunk_tag_dropped(c))
            continue;
        k = chunk_tag_is_element(c) ? chunk_tag_of(c) : CHUNK_TAG_INLINE;
        if (k == CHUNK_TAG_BR ||
            (k == CHUNK_TAG_INLINE && (!chunk_tag_is_element(c) || !chunk_tag_has_block(c)))) {
            collect(h, c, MODE_PARA);
            continue;
        }
        flush_para(h, CHUNK_BLOCK_PARAGRAPH);
        emit_block(h, c);
    }
    flush_para(h, CHUNK_BLOCK_PARAGRAPH);
}

int chunk_read_html(struct chunk_doc *doc, const char *data, size_t len, const char *name,
                    struct rag_err *err)
{
    struct html h = { .doc = doc, .out = BUF_INIT, .para = BUF_INIT, .tmp = BUF_INIT };
    xmlDoc *x = NULL;
    const xmlNode *root;
    int rc = chunk_html_parse(&x, data, len, name, err);

    if (rc)
        return rc;
    root = x ? xmlDocGetRootElement(x) : NULL;
    if (root) {
        flush_para(&h, CHUNK_BLOCK_PARAGRAPH);
        emit_block(&h, root);
        flush_para(&h, CHUNK_BLOCK_PARAGRAPH);
    }
    xmlFreeDoc(x);
    doc->text = buf_detach(&h.out, &doc->len);
    buf_release(&h.para);
    buf_release(&h.tmp);
    return 0;
}
