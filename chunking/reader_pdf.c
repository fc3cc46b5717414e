/*
 * chunking/reader_pdf.c - PDF through poppler-glib. Each page's text comes
 * from poppler_page_get_text (reading order, lines ended by '\n'); pages are
 * joined with a blank line and recorded as page spans numbered from 1, so a
 * block never crosses a page break. Blocks are blank-line paragraphs within a
 * page: poppler's text has no blank lines, so paragraph breaks are found from
 * the glyph boxes (a larger gap, a new column, a font size change, or a short
 * line ending a sentence). The title comes from the document information
 * dictionary.
 *
 * poppler reports syntax problems through GLib's log under the "Poppler"
 * domain; a library must not print, so those messages go to RAG_DEBUG.
 */
#include "chunking/reader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <poppler.h>

static void log_to_debug(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
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

/* A line of page text: bytes [start, end) and the box around its glyphs. */
struct pdf_line {
    size_t start, end;
    double x1, y1, x2, y2;
    bool empty;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorted in place); 0 for n == 0. */
static double median(double *v, size_t n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/*
 * Split text into lines and box each with the glyph rectangles, which
 * poppler gives one per character of the text, line breaks included.
 */
static size_t page_lines(const char *text, const PopplerRectangle *r, struct pdf_line **ret)
{
    struct pdf_line *lines = NULL, *l;
    size_t n = 0, cap = 0, i = 0, k = 0, len;

    while (text[i]) {
        lines = grow_array(lines, &cap, n + 1, sizeof(*lines));
        l = &lines[n++];
        *l = (struct pdf_line){
            .start = i, .x1 = 1e30, .y1 = 1e30, .x2 = -1e30, .y2 = -1e30, .empty = true
        };
        for (; text[i] && text[i] != '\n'; i += len, k++) {
            len = utf8_decode(text + i, 4, &(uint32_t){ 0 });
            if (text[i] == ' ')
                continue;
            l->empty = false;
            l->x1 = fmin(l->x1, r[k].x1);
            l->y1 = fmin(l->y1, r[k].y1);
            l->x2 = fmax(l->x2, r[k].x2);
            l->y2 = fmax(l->y2, r[k].y2);
        }
        l->end = i;
        if (text[i] == '\n') {
            i++;
            k++;
        }
    }
    *ret = lines;
    return n;
}

struct page_stats {
    double height; /* median line height */
    double gap;    /* median space between a line and the next one below */
    double width;  /* median line width */
};

static void page_stats(const struct pdf_line *l, size_t n, struct page_stats *st)
{
    double *v = xmalloc_array(n + 1, sizeof(*v));
    size_t i, m = 0;

    for (i = 0; i < n; i++) {
        if (!l[i].empty)
            v[m++] = l[i].y2 - l[i].y1;
    }
    st->height = median(v, m);
    for (i = 1, m = 0; i < n; i++) {
        if (!l[i].empty && !l[i - 1].empty && l[i].y1 - l[i - 1].y2 > -0.5 * st->height)
            v[m++] = l[i].y1 - l[i - 1].y2;
    }
    st->gap = median(v, m);
    for (i = 0, m = 0; i < n; i++) {
        if (!l[i].empty)
            v[m++] = l[i].x2 - l[i].x1;
    }
    st->width = median(v, m);
    free(v);
}

/*
 * Does a paragraph end between lines a and b? When b sits higher than a (a
 * new column), when the space between them is clearly more than the usual
 * line spacing, when the font size changes (a heading), or when a is a
 * short line ending a sentence.
 */
static bool para_break(const char *text, const struct pdf_line *a, const struct pdf_line *b,
                       const struct page_stats *st)
{
    double ha = a->y2 - a->y1, hb = b->y2 - b->y1;
    char last = a->end > a->start ? text[a->end - 1] : ' ';

    if (a->empty || b->empty)
        return true;
    if (b->y1 < a->y1 - 0.5 * st->height)
        return true;
    if (b->y1 - a->y2 > st->gap + 0.6 * st->height)
        return true;
    if (fabs(ha - hb) > 0.2 * fmax(ha, hb))
        return true;
    return a->x2 - a->x1 < 0.75 * st->width && strchr(".:!?", last);
}

/* Append a page's text with a blank line at each paragraph break. */
static void page_paragraphs(struct chunk_doc *doc, struct buf *out, const char *text,
                            const PopplerRectangle *r)
{
    struct pdf_line *lines;
    struct page_stats st;
    size_t n = page_lines(text, r, &lines), i;

    page_stats(lines, n, &st);
    for (i = 0; i < n; i++) {
        if (i)
            buf_appends(out, para_break(text, &lines[i - 1], &lines[i], &st) ? "\n\n" : "\n");
        doc->n_repaired +=
            chunk_utf8_append(out, text + lines[i].start, lines[i].end - lines[i].start);
    }
    free(lines);
}

static void add_page(struct chunk_doc *doc, struct buf *out, PopplerPage *page, int number)
{
    char *text = page ? poppler_page_get_text(page) : NULL;
    PopplerRectangle *rects = NULL;
    guint n_rects = 0;
    struct chunk_page *p;
    size_t start, len = text ? strlen(text) : 0;

    if (out->len && len)
        buf_append(out, "\n\n", 2);
    start = out->len;
    if (len && utf8_valid_prefix(text, len) == len &&
        poppler_page_get_text_layout(page, &rects, &n_rects) &&
        n_rects == (guint)g_utf8_strlen(text, -1))
        page_paragraphs(doc, out, text, rects);
    else if (len)
        doc->n_repaired += chunk_utf8_append(out, text, len);
    rtrim_to(out, start);
    g_free(rects);
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
