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
 * Page furniture is dropped: script, style, nav, footer, aside, form and the
 * like, a header outside article/main/section, elements that are hidden or
 * have role="navigation", and elements whose class is a navigation word such
 * as "menu" or "sidebar". libxml2 decodes entities and converts the declared
 * (or guessed) charset to UTF-8; fragments are still checked and repaired.
 */
#include "chunking/reader.h"

#include <limits.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

enum kind {
    K_INLINE, /* also unknown elements without block content */
    K_DROP,
    K_TITLE,
    K_HEADER, /* dropped outside article, main and section */
    K_BLOCK,
    K_HEADING,
    K_LIST,
    K_DL,
    K_ITEM, /* li, dt, dd */
    K_PRE,
    K_TABLE,
    K_BR,
    K_HR,
};

/* Tags of each kind, space-separated; other tags are K_INLINE. */
static const char *const kind_tags[] = {
    [K_DROP] = "script style noscript nav footer aside form template iframe svg math canvas"
               " button select input textarea object embed audio video map meta link base dialog",
    [K_TITLE] = "title",
    [K_HEADER] = "header",
    [K_BLOCK] = "html head body p div section article main blockquote figure figcaption address"
                " center details summary fieldset legend hgroup caption tr td th thead tbody"
                " tfoot frameset noframes",
    [K_HEADING] = "h1 h2 h3 h4 h5 h6",
    [K_LIST] = "ul ol menu dir",
    [K_DL] = "dl",
    [K_ITEM] = "li dt dd",
    [K_PRE] = "pre xmp listing plaintext",
    [K_TABLE] = "table",
    [K_BR] = "br",
    [K_HR] = "hr",
};

/* class tokens that mark navigation furniture */
static const char *const nav_classes[] = {
    "nav",     "navbar",  "navigation", "menu",        "mainmenu",
    "submenu", "sidebar", "breadcrumb", "breadcrumbs", "skip-link",
};

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

/*
 * Tag name to kind through an open-addressing hash table built once: this
 * lookup runs several times per element and was the walker's main cost.
 */
#define TAG_SLOTS 256 /* power of two, well above the number of tags */

struct tag_slot {
    const char *name; /* into kind_tags, not NUL-terminated */
    size_t len;
    enum kind kind;
};

static struct tag_slot tag_table[TAG_SLOTS];

static unsigned tag_hash(const char *s, size_t n)
{
    unsigned h = 2166136261u;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h & (TAG_SLOTS - 1);
}

static void tag_table_init(void)
{
    const char *p;
    size_t k, n;
    unsigned h;

    for (k = 0; k < sizeof(kind_tags) / sizeof(kind_tags[0]); k++) {
        for (p = kind_tags[k]; p && *p; p += n + strspn(p + n, " ")) {
            n = strcspn(p, " ");
            for (h = tag_hash(p, n); tag_table[h].name; h = (h + 1) & (TAG_SLOTS - 1))
                ;
            tag_table[h] = (struct tag_slot){ p, n, (enum kind)k };
        }
    }
}

static enum kind tag_kind(const xmlNode *n)
{
    const char *name = (const char *)n->name;
    size_t len = strlen(name);
    unsigned h;

    for (h = tag_hash(name, len); tag_table[h].name; h = (h + 1) & (TAG_SLOTS - 1)) {
        if (tag_table[h].len == len && !memcmp(name, tag_table[h].name, len))
            return tag_table[h].kind;
    }
    return K_INLINE;
}

static bool is_element(const xmlNode *n)
{
    return n->type == XML_ELEMENT_NODE;
}

static bool is_text(const xmlNode *n)
{
    return (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content;
}

/* Does the whitespace-separated list s hold one of words (case-insensitive)? */
static bool has_token(const char *s, const char *const *words, size_t n_words)
{
    size_t len, i;

    while (*s) {
        s += strspn(s, " \t\r\n\f");
        len = strcspn(s, " \t\r\n\f");
        for (i = 0; len && i < n_words; i++) {
            if (strlen(words[i]) == len && !strncasecmp(s, words[i], len))
                return true;
        }
        s += len;
    }
    return false;
}

/* "display:none" in a style attribute, blanks ignored. */
static bool display_none(const char *s)
{
    static const char want[] = "display:none";
    size_t k = 0;

    for (; *s; s++) {
        if (*s == ' ' || *s == '\t')
            continue;
        k = (*s | 0x20) == want[k] ? k + 1 : ((*s | 0x20) == 'd');
        if (!want[k])
            return true;
    }
    return false;
}

static bool attr_says_drop(const xmlNode *n)
{
    static const char *const nav_role[] = { "navigation" };
    const xmlAttr *a;
    const char *v;
    bool drop = false;

    for (a = n->properties; a && !drop; a = a->next) {
        if (!a->children || !a->children->content) {
            drop = !strcasecmp((const char *)a->name, "hidden");
            continue;
        }
        v = (const char *)a->children->content;
        if (!strcasecmp((const char *)a->name, "hidden"))
            drop = true;
        else if (!strcasecmp((const char *)a->name, "role"))
            drop = has_token(v, nav_role, 1);
        else if (!strcasecmp((const char *)a->name, "aria-hidden"))
            drop = !strcasecmp(v, "true");
        else if (!strcasecmp((const char *)a->name, "class"))
            drop = has_token(v, nav_classes, sizeof(nav_classes) / sizeof(nav_classes[0]));
        else if (!strcasecmp((const char *)a->name, "style"))
            drop = display_none(v);
    }
    return drop;
}

static bool in_content(const xmlNode *n)
{
    for (n = n->parent; n && is_element(n); n = n->parent) {
        if (!strcmp((const char *)n->name, "article") || !strcmp((const char *)n->name, "main") ||
            !strcmp((const char *)n->name, "section"))
            return true;
    }
    return false;
}

static bool dropped(const xmlNode *n)
{
    enum kind k;

    if (!is_element(n))
        return !is_text(n); /* comments, processing instructions, DTD */
    k = tag_kind(n);
    return k == K_DROP || (k == K_HEADER && !in_content(n)) || attr_says_drop(n);
}

/* Block content below n: then an inline or unknown element acts as a container. */
static bool has_block(const xmlNode *n)
{
    const xmlNode *c;
    enum kind k;

    for (c = n->children; c; c = c->next) {
        if (!is_element(c) || dropped(c))
            continue;
        k = tag_kind(c);
        if (k != K_INLINE && k != K_BR)
            return true;
        if (has_block(c))
            return true;
    }
    return false;
}

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
    enum kind k;

    if (is_text(n)) {
        inline_text(h, (const char *)n->content, strlen((const char *)n->content), mode);
        return;
    }
    if (dropped(n))
        return;
    k = tag_kind(n);
    if (k == K_BR) {
        line_break(h, mode);
        return;
    }
    if (k == K_TITLE)
        return;
    if (k != K_INLINE)
        h->space = true;
    for (c = n->children; c; c = c->next)
        collect(h, c, mode);
    if (k != K_INLINE)
        h->space = true;
}

/* Text exactly as written, for pre. */
static void collect_raw(struct html *h, const xmlNode *n)
{
    const xmlNode *c;
    size_t len;
    const char *s;

    if (is_text(n)) {
        len = strlen((const char *)n->content);
        s = checked(h, (const char *)n->content, &len);
        buf_append(&h->para, s, len);
        return;
    }
    if (dropped(n))
        return;
    if (tag_kind(n) == K_BR)
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
    enum kind k;

    for (c = n->children; c; c = c->next) {
        k = is_element(c) && !dropped(c) ? tag_kind(c) : K_INLINE;
        if (k == K_LIST || k == K_DL) {
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
        if (is_element(c) && tag_kind(c) == K_ITEM)
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
        if (!is_element(c) || dropped(c))
            continue;
        if (tag_kind(c) == K_LIST || tag_kind(c) == K_DL) {
            list_lines(h, c, depth + 1, lines);
            continue;
        }
        if (tag_kind(c) != K_ITEM && holds_items(c)) {
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

/* A layout table holds blocks that a "| a | b |" row cannot show. */
static bool is_layout(const xmlNode *n)
{
    const xmlNode *c;
    enum kind k;

    for (c = n->children; c; c = c->next) {
        if (!is_element(c) || dropped(c))
            continue;
        k = tag_kind(c);
        if (k == K_TABLE || k == K_HEADING || k == K_LIST || k == K_DL || k == K_PRE)
            return true;
        if (is_layout(c))
            return true;
    }
    return false;
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
        if (!is_element(c) || dropped(c) ||
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
        if (!is_element(c) || dropped(c))
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
        if (is_element(c) && !strcmp((const char *)c->name, "caption") && !dropped(c)) {
            collect(h, c, MODE_PARA);
            flush_para(h, CHUNK_BLOCK_PARAGRAPH);
        }
    }
}

static void emit_table(struct html *h, const xmlNode *n)
{
    struct table t = { .rows = BUF_INIT };
    size_t start;

    if (is_layout(n)) {
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
    switch (tag_kind(n)) {
    case K_TITLE:
        emit_title(h, n);
        break;
    case K_HEADING:
        emit_heading(h, n);
        break;
    case K_LIST:
    case K_DL:
        emit_list(h, n);
        break;
    case K_PRE:
        emit_pre(h, n);
        break;
    case K_TABLE:
        emit_table(h, n);
        break;
    case K_HR:
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
    enum kind k;

    for (c = parent->children; c; c = c->next) {
        if (dropped(c))
            continue;
        k = is_element(c) ? tag_kind(c) : K_INLINE;
        if (k == K_BR || (k == K_INLINE && (!is_element(c) || !has_block(c)))) {
            collect(h, c, MODE_PARA);
            continue;
        }
        flush_para(h, CHUNK_BLOCK_PARAGRAPH);
        emit_block(h, c);
    }
    flush_para(h, CHUNK_BLOCK_PARAGRAPH);
}

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* libxml2's encoders print through the generic handler even with NOERROR. */
static void xml_silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void xml_init(void)
{
    xmlInitParser();
    tag_table_init();
}

static bool all_blank(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!ws((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* libxml2's last error message without its line break, or a default. */
static int xml_error(const char *name, struct rag_err *err)
{
    const xmlError *e = xmlGetLastError();
    const char *msg = e && e->message ? e->message : "not an HTML document";

    return rag_errf(err, RAG_EFORMAT, "'%s': %.*s", name, (int)strcspn(msg, "\r\n"), msg);
}

/*
 * SAX filter in front of libxml2's tree builder: subtrees that are always
 * dropped (scripts, styles, inline SVG and the like, 40% of the bytes of
 * the SQLite documentation) and comments never become nodes. The parser still
 * tokenizes them, but building and freeing their nodes was half the time.
 */
struct sax_filter {
    xmlSAXHandler tree; /* libxml2's default HTML handlers */
    int depth;          /* > 0 inside a skipped subtree */
};

static bool skipped_tag(const xmlChar *name)
{
    static const char *const skip[] = { "script", "style", "svg", "math", "template", "noscript" };
    size_t i;

    for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++) {
        if (!strcmp((const char *)name, skip[i]))
            return true;
    }
    return false;
}

static struct sax_filter *filter_of(void *ctx)
{
    return ((htmlParserCtxtPtr)ctx)->_private;
}

static void sax_start(void *ctx, const xmlChar *name, const xmlChar **atts)
{
    struct sax_filter *f = filter_of(ctx);

    if (f->depth || skipped_tag(name))
        f->depth++;
    else
        f->tree.startElement(ctx, name, atts);
}

static void sax_end(void *ctx, const xmlChar *name)
{
    struct sax_filter *f = filter_of(ctx);

    if (f->depth)
        f->depth--;
    else
        f->tree.endElement(ctx, name);
}

static void sax_text(void *ctx, const xmlChar *ch, int len)
{
    struct sax_filter *f = filter_of(ctx);

    if (!f->depth)
        f->tree.characters(ctx, ch, len);
}

static void sax_cdata(void *ctx, const xmlChar *ch, int len)
{
    struct sax_filter *f = filter_of(ctx);

    if (!f->depth)
        f->tree.cdataBlock(ctx, ch, len);
}

static htmlDocPtr parse_filtered(const char *data, size_t len)
{
    struct sax_filter f = { .depth = 0 };
    htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
    htmlDocPtr x;

    if (!ctxt)
        return NULL;
    xmlSAX2InitHtmlDefaultSAXHandler(&f.tree);
    ctxt->_private = &f;
    ctxt->sax->startElement = sax_start;
    ctxt->sax->endElement = sax_end;
    ctxt->sax->characters = sax_text;
    ctxt->sax->ignorableWhitespace = sax_text;
    ctxt->sax->cdataBlock = sax_cdata;
    ctxt->sax->comment = NULL;
    ctxt->sax->processingInstruction = NULL;
    x = htmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL,
                           HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                               HTML_PARSE_NONET | HTML_PARSE_COMPACT);
    htmlFreeParserCtxt(ctxt);
    return x;
}

int chunk_read_html(struct chunk_doc *doc, const char *data, size_t len, const char *name,
                    struct rag_err *err)
{
    struct html h = { .doc = doc, .out = BUF_INIT, .para = BUF_INIT, .tmp = BUF_INIT };
    htmlDocPtr x;
    const xmlNode *root;
    int rc;

    if (len > INT_MAX)
        return rag_errf(err, RAG_EINVAL, "'%s': too large for the html parser", name);
    pthread_once(&xml_once, xml_init);
    xmlSetGenericErrorFunc(NULL, xml_silent); /* per thread in libxml2 */
    xmlResetLastError();
    x = parse_filtered(data, len);
    root = x ? xmlDocGetRootElement(x) : NULL;
    if (!x && !all_blank(data, len)) {
        rc = xml_error(name, err);
        xmlFreeDoc(x);
        return rc;
    }
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
