/*
 * cmd/search.c - `rag search QUERY`: rank chunks by BM25 (FTS5) and print
 * them with their document, heading path, page, byte span, score and a
 * snippet, or as one JSON document (schema rag.search/1).
 */
#include "cmd/cmd.h"

#include <getopt.h>

#include <cjson/cJSON.h>

static const char search_usage[] =
    "usage: rag search [options] QUERY...\n"
    "\n"
    "Rank the store's chunks for QUERY (the words of all arguments).\n"
    "\n"
    "Options:\n"
    "  -k, --top-k N    results to show (default 10)\n"
    "      --mode MODE  bm25 (full-text ranking)\n"
    "  -j, --json       one JSON document on stdout (schema rag.search/1)\n"
    "  -h, --help       show this help\n";

struct search_opts {
    size_t k;
    bool json;
};

static void print_hit(size_t rank, const struct store_hit *h)
{
    printf("%zu. [%.3f] %s", rank, h->score, h->doc_path);
    if (h->heading_path[0])
        printf(" > %s", h->heading_path);
    if (h->page_start)
        printf(h->page_end > h->page_start ? " (pages %d-%d)" : " (page %d)", h->page_start,
               h->page_end);
    printf(" [bytes %zu-%zu]\n   %s\n", h->byte_start, h->byte_end, h->snippet);
}

static void print_json(const char *query, const struct store_hit_list *l)
{
    cJSON *j = cJSON_CreateObject(), *arr;
    size_t i;
    char *s;

    cJSON_AddStringToObject(j, "schema", "rag.search/1");
    cJSON_AddStringToObject(j, "query", query);
    cJSON_AddStringToObject(j, "mode", "bm25");
    arr = cJSON_AddArrayToObject(j, "results");
    for (i = 0; i < l->n; i++) {
        const struct store_hit *h = &l->item[i];
        cJSON *r = cJSON_CreateObject();

        cJSON_AddNumberToObject(r, "rank", (double)(i + 1));
        cJSON_AddNumberToObject(r, "score", h->score);
        cJSON_AddNumberToObject(r, "chunk_id", (double)h->chunk_id);
        cJSON_AddStringToObject(r, "doc_path", h->doc_path);
        cJSON_AddStringToObject(r, "heading_path", h->heading_path);
        cJSON_AddNumberToObject(r, "page_start", h->page_start);
        cJSON_AddNumberToObject(r, "page_end", h->page_end);
        cJSON_AddNumberToObject(r, "byte_start", (double)h->byte_start);
        cJSON_AddNumberToObject(r, "byte_end", (double)h->byte_end);
        cJSON_AddStringToObject(r, "snippet", h->snippet);
        cJSON_AddItemToArray(arr, r);
    }
    s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(j);
}

static int parse_opts(int argc, char **argv, struct search_opts *o)
{
    static const struct option longopts[] = {
        { "top-k", required_argument, NULL, 'k' }, { "mode", required_argument, NULL, 'm' },
        { "json", no_argument, NULL, 'j' },        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "k:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (parse_size(optarg, 1, 10000, &o->k))
                return cmd_usage_error(search_usage, "search: invalid --top-k '%s'", optarg);
            break;
        case 'm':
            if (strcmp(optarg, "bm25"))
                return cmd_usage_error(search_usage, "search: unknown --mode '%s'", optarg);
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            return -1;
        default:
            return cmd_usage_error(search_usage, "search: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cmd_usage_error(search_usage, "search: no QUERY given");
    return 0;
}

int cmd_search(int argc, char **argv, const struct globals *g)
{
    struct search_opts o = { .k = 10 };
    struct store_hit_list hits;
    struct rag_err err = { 0 };
    struct buf query = BUF_INIT;
    struct store *s = NULL;
    size_t i;
    int rc;

    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? cmd_usage(search_usage) : rc;
    for (i = (size_t)optind; i < (size_t)argc; i++)
        buf_appendf(&query, "%s%s", i > (size_t)optind ? " " : "", argv[i]);
    store_hit_list_init(&hits);
    rc = cmd_store_open(g, &s, &err);
    if (!rc)
        rc = store_search_bm25(s, query.data, o.k, &hits, &err);
    if (!rc)
        rc = store_hit_snippets(s, query.data, &hits, 0, &err);
    if (!rc && o.json)
        print_json(query.data, &hits);
    for (i = 0; !rc && !o.json && i < hits.n; i++)
        print_hit(i + 1, &hits.item[i]);
    if (!rc && !o.json && !hits.n)
        fprintf(stderr, "rag: no results for '%s'\n", query.data);
    store_hit_list_release(&hits);
    store_close(s);
    buf_release(&query);
    return rc ? cmd_fail(&err) : CMD_OK;
}
