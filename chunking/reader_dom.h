/*
 * chunking/reader_dom.h - internal to chunking/: the libxml2 side of the HTML
 * reader (reader_dom.c), used by the renderer in reader_html.c.
 */
#ifndef CHUNKING_READER_DOM_H
#define CHUNKING_READER_DOM_H

#include <libxml/tree.h>

#include "chunking/reader.h"

enum chunk_tag {
    CHUNK_TAG_INLINE, /* also unknown elements without block content */
    CHUNK_TAG_DROP,
    CHUNK_TAG_TITLE,
    CHUNK_TAG_HEADER, /* dropped outside article, main and section */
    CHUNK_TAG_BLOCK,
    CHUNK_TAG_HEADING,
    CHUNK_TAG_LIST,
    CHUNK_TAG_DL,
    CHUNK_TAG_ITEM, /* li, dt, dd */
    CHUNK_TAG_PRE,
    CHUNK_TAG_TABLE,
    CHUNK_TAG_BR,
    CHUNK_TAG_HR,
};

/*
 * Parse HTML data into *ret (free with xmlFreeDoc). libxml2 prints nothing and
 * builds no nodes for scripts, styles, inline SVG and comments. *ret is NULL
 * for blank input. Returns 0, RAG_EINVAL past 2 GiB, RAG_EFORMAT when libxml2
 * gives up (with its message).
 */
int chunk_html_parse(xmlDoc **ret, const char *data, size_t len, const char *name,
                     struct rag_err *err);

/* The tag functions work once chunk_html_parse has run (it builds the tag table). */
enum chunk_tag chunk_tag_of(const xmlNode *n); /* CHUNK_TAG_INLINE for unknown tags */
bool chunk_tag_is_element(const xmlNode *n);
bool chunk_tag_is_text(const xmlNode *n); /* text or CDATA with content */
/* Furniture, comments and other non-content nodes. */
bool chunk_tag_dropped(const xmlNode *n);
/* Block content below n: then an inline or unknown element acts as a container. */
bool chunk_tag_has_block(const xmlNode *n);
/* A table holding tables, headings, lists or pre, which rows cannot show. */
bool chunk_tag_is_layout(const xmlNode *n);

#endif
