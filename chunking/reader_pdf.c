/*
 * chunking/reader_pdf.c - PDF through poppler-glib. Each page's text comes
 * from poppler_page_get_text (reading order, lines ended by '\n'); pages are
 * joined with a blank line and recorded as page spans numbered from 1, so a
 * block never crosses a page break. Blocks are blank-line paragraphs within a
 * page. The title comes from the document information dictionary.
 *
 * poppler reports syntax problems through GLib's log under the "Poppler"
 * domain; a library must not print, so those messages go to RAG_DEBUG.
 */
#include "chunking/reader.h"

#include <pthread.h>
#include <string.h>

#include <poppler.h>

static void log_to_debug(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                         gpointer data)
{
    (void)level;
    (void)data;
    RAG_DEBUG("%s: %s", domain ? domain : "glib", msg);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void quiet_poppler(void)
{
    g_log_set_handler("Poppler", (GLogLevelFlags)(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL),
                      log_to_debug, NULL);
}

/* The message of a GError on one line, into err. */
static int pdf_error(const char *name, GError *gerr, struct rag_err *err)
{
    const char *msg = gerr && gerr->message ? gerr->message : "cannot open the document";
    int rc = rag_errf(err, RAG_EFORMAT, "'%s': %.*s", name, (int)strcspn(msg, "\r\n"), msg);

    g_clear_error(&gerr);
    return rc;
}

/* Trailing blanks and line breaks off out, back to no further than from. */
static void rtrim_to(struct buf *out, size_t from)
{
    while (out->len > from && strchr(" \t\r\n\f\v", out->data[out->len - 1]))
        out->len--;
    if (out->data)
        out->data[out->len] = '\0';
}

static void add_page(struct chunk_doc *doc, struct buf *out, PopplerPage *page, int number)
{
    char *text = page ? poppler_page_get_text(page) : NULL;
    struct chunk_page *p;
    size_t start;

    if (out->len && text && *text)
        buf_append(out, "\n\n", 2);
    start = out->len;
    if (text)
        doc->n_repaired += chunk_utf8_append(out, text, strlen(text));
    rtrim_to(out, start);
    g_free(text);
    VEC_RESERVE(&doc->pages, doc->pages.n + 1);
    p = &doc->pages.item[doc->pages.n++];
    p->start = start;
    p->end = out->len;
    p->number = number;
}

static void set_title(struct chunk_doc *doc, PopplerDocument *pd)
{
    char *title = poppler_document_get_title(pd);
    size_t s = 0, e;

    if (title) {
        e = strlen(title);
        while (e > 0 && strchr(" \t\r\n", title[e - 1]))
            e--;
        while (s < e && strchr(" \t\r\n", title[s]))
            s++;
        if (e > s && utf8_valid_prefix(title + s, e - s) == e - s)
            doc->title = xstrndup(title + s, e - s);
    }
    g_free(title);
}

int chunk_read_pdf(struct chunk_doc *doc, const char *data, size_t len, const char *name,
                   struct rag_err *err)
{
    struct buf out = BUF_INIT;
    GError *gerr = NULL;
    GBytes *bytes;
    PopplerDocument *pd;
    PopplerPage *page;
    int i, n;
    size_t k;

    pthread_once(&log_once, quiet_poppler);
    bytes = g_bytes_new_static(data, len);
    pd = poppler_document_new_from_bytes(bytes, NULL, &gerr);
    if (!pd) {
        g_bytes_unref(bytes);
        return pdf_error(name, gerr, err);
    }
    set_title(doc, pd);
    n = poppler_document_get_n_pages(pd);
    for (i = 0; i < n; i++) {
        page = poppler_document_get_page(pd, i);
        add_page(doc, &out, page, i + 1);
        if (page)
            g_object_unref(page);
    }
    g_object_unref(pd);
    g_bytes_unref(bytes);
    doc->text = buf_detach(&out, &doc->len);
    for (k = 0; k < doc->pages.n; k++)
        chunk_text_paragraphs(doc, doc->pages.item[k].start, doc->pages.item[k].end);
    return 0;
}
