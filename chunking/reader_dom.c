/*
 * chunking/reader_dom.c - the libxml2 side of the HTML reader: parsing with a
 * SAX filter in front of the tree builder, tag kinds, and the rules that
 * decide which elements are page furniture (dropped), containers of blocks,
 * or layout tables.
 *
 * Furniture: script, style, nav, footer, aside, form and the like, a header
 * outside article/main/section, elements that are hidden (hidden attribute,
 * aria-hidden, display:none) or have role="navigation", and elements whose
 * class is a navigation word such as "menu" or "sidebar".
 */
#include "chunking/reader_dom.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>

/* Tags of each kind, space-separated; other tags are CHUNK_TAG_INLINE. */
static const char *const kind_tags[] = {
    [CHUNK_TAG_DROP] =
        "script style noscript nav footer aside form template iframe svg math canvas"
        " button select input textarea object embed audio video map meta link base dialog",
    [CHUNK_TAG_TITLE] = "title",
    [CHUNK_TAG_HEADER] = "header",
    [CHUNK_TAG_BLOCK] =
        "html head body p div section article main blockquote figure figcaption address"
        " center details summary fieldset legend hgroup caption tr td th thead tbody"
        " tfoot frameset noframes",
    [CHUNK_TAG_HEADING] = "h1 h2 h3 h4 h5 h6",
    [CHUNK_TAG_LIST] = "ul ol menu dir",
    [CHUNK_TAG_DL] = "dl",
    [CHUNK_TAG_ITEM] = "li dt dd",
    [CHUNK_TAG_PRE] = "pre xmp listing plaintext",
    [CHUNK_TAG_TABLE] = "table",
    [CHUNK_TAG_BR] = "br",
    [CHUNK_TAG_HR] = "hr",
};

/* class tokens that mark navigation furniture */
static const char *const nav_classes[] = {
    "nav",     "navbar",  "navigation", "menu",        "mainmenu",
    "submenu", "sidebar", "breadcrumb", "breadcrumbs", "skip-link",
};

/*
 * Tag name to kind through an open-addressing hash table built once: this
 * lookup runs several times per element and was the walker's main cost.
 */
#define TAG_SLOTS 256 /* power of two, well above the number of tags */

struct tag_slot {
    const char *name; /* into kind_tags, not NUL-terminated */
    size_t len;
    enum chunk_tag kind;
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
            tag_table[h] = (struct tag_slot){ p, n, (enum chunk_tag)k };
        }
    }
}

enum chunk_tag chunk_tag_of(const xmlNode *n)
{
    const char *name = (const char *)n->name;
    size_t len = strlen(name);
    unsigned h;

    for (h = tag_hash(name, len); tag_table[h].name; h = (h + 1) & (TAG_SLOTS - 1)) {
        if (tag_table[h].len == len && !memcmp(name, tag_table[h].name, len))
            return tag_table[h].kind;
    }
    return CHUNK_TAG_INLINE;
}

bool chunk_tag_is_element(const xmlNode *n)
{
    return n->type == XML_ELEMENT_NODE;
}

bool chunk_tag_is_text(const xmlNode *n)
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
    for (n = n->parent; n && chunk_tag_is_element(n); n = n->parent) {
        if (!strcmp((const char *)n->name, "article") || !strcmp((const char *)n->name, "main") ||
            !strcmp((const char *)n->name, "section"))
            return true;
    }
    return false;
}

bool chunk_tag_dropped(const xmlNode *n)
{
    enum chunk_tag k;

    if (!chunk_tag_is_element(n))
        return !chunk_tag_is_text(n); /* comments, processing instructions, DTD */
    k = chunk_tag_of(n);
    return k == CHUNK_TAG_DROP || (k == CHUNK_TAG_HEADER && !in_content(n)) || attr_says_drop(n);
}

/* Block content below n: then an inline or unknown element acts as a container. */
bool chunk_tag_has_block(const xmlNode *n)
{
    const xmlNode *c;
    enum chunk_tag k;

    for (c = n->children; c; c = c->next) {
        if (!chunk_tag_is_element(c) || chunk_tag_dropped(c))
            continue;
        k = chunk_tag_of(c);
        if (k != CHUNK_TAG_INLINE && k != CHUNK_TAG_BR)
            return true;
        if (chunk_tag_has_block(c))
            return true;
    }
    return false;
}

/* A layout table holds blocks that a "| a | b |" row cannot show. */
bool chunk_tag_is_layout(const xmlNode *n)
{
    const xmlNode *c;
    enum chunk_tag k;

    for (c = n->children; c; c = c->next) {
        if (!chunk_tag_is_element(c) || chunk_tag_dropped(c))
            continue;
        k = chunk_tag_of(c);
        if (k == CHUNK_TAG_TABLE || k == CHUNK_TAG_HEADING || k == CHUNK_TAG_LIST ||
            k == CHUNK_TAG_DL || k == CHUNK_TAG_PRE)
            return true;
        if (chunk_tag_is_layout(c))
            return true;
    }
    return false;
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
        if (!s[i] || !strchr(" \t\r\n\f", s[i]))
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

int chunk_html_parse(xmlDoc **ret, const char *data, size_t len, const char *name,
                     struct rag_err *err)
{
    if (len > INT_MAX)
        return rag_errf(err, RAG_EINVAL, "'%s': too large for the html parser", name);
    pthread_once(&xml_once, xml_init);
    xmlSetGenericErrorFunc(NULL, xml_silent); /* per thread in libxml2 */
    xmlResetLastError();
    *ret = parse_filtered(data, len);
    if (!*ret && !all_blank(data, len))
        return xml_error(name, err);
    return 0;
}
