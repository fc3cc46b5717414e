/*
 * cmd/search.c - `rag search QUERY`: rank chunks by BM25 (FTS5) and print
 * them with their document, heading path, page, byte span, score and a
 * snippet, or as one JSON document (schema rag.search/1).
 */
#include "cmd/cmd.h"

#include <getopt.h>

#include <cjson/cJSON.h>

#include "retrieval/retrieval.h"

static const char search_usage[] =
    "usage: rag search [options] QUERY...\n"
    "\n"
    "Rank the store's chunks for QUERY (the words of all arguments).\n"
    "\n"
    "Options:\n"
    "  -k, --top-k N       results to show (default 10)\n"
    "      --mode MODE     hybrid (default: BM25 and dense fused by reciprocal rank),\n"
    "                      dense (embedding similarity) or bm25 (full-text ranking)\n"
    "      --alpha A       hybrid: weighted mix A*dense + (1-A)*bm25 of min-max\n"
    "                      normalised scores instead of reciprocal rank fusion\n"
    "      --depth N       candidates per list before fusion (default 50)\n"
    "  -j, --json          one JSON document on stdout (schema rag.search/1)\n"
    "  -h, --help          show this help\n";

struct search_opts {
    struct retr_query_opts q;
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

/* Rank and score in each list that fed the result (null when absent). */
static void add_sources(cJSON *r, const struct search_opts *o, const struct retr_fused *f)
{
    static const char *const names[2][2] = { { "bm25_rank", "bm25_score" },
                                             { "dense_rank", "dense_score" } };
    size_t i;
    int which;

    for (i = 0; i < (o->q.mode == RETR_MODE_HYBRID ? 2u : 1u); i++) {
        which = o->q.mode == RETR_MODE_DENSE ? 1 : (int)i;
        if (f->rank[i]) {
            cJSON_AddNumberToObject(r, names[which][0], (double)f->rank[i]);
            cJSON_AddNumberToObject(r, names[which][1], f->source_score[i]);
        } else {
            cJSON_AddNullToObject(r, names[which][0]);
            cJSON_AddNullToObject(r, names[which][1]);
        }
    }
}

static void print_json(const char *query, const struct search_opts *o,
                       const struct store_hit_list *l, const struct retr_fused *f)
{
    cJSON *j = cJSON_CreateObject(), *arr;
    size_t i;
    char *s;

    cJSON_AddStringToObject(j, "schema", "rag.search/1");
    cJSON_AddStringToObject(j, "query", query);
    cJSON_AddStringToObject(j, "mode", retr_mode_name(o->q.mode));
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
        add_sources(r, o, &f[i]);
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
        { "top-k", required_argument, NULL, 'k' },
        { "mode", required_argument, NULL, 'm' },
        { "alpha", required_argument, NULL, 'a' },
        { "depth", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rag_err err = { 0 };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (parse_size(optarg, 1, 10000, &o->q.k))
                return cmd_usage_error(search_usage, "search: invalid --top-k '%s'", optarg);
            break;
        case 'm':
        case 'a':
        case 'd':
            if (cmd_query_opt(c == 'm' ? "mode" :
                              c == 'a' ? "alpha" :
                                         "depth",
                              optarg, &o->q, &err))
                return cmd_usage_error(search_usage, "search: %s", err.msg);
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            return -1;
        default:
            return cmd_option_error(search_usage, "search", c, argv);
        }
    }
    if (optind >= argc)
        return cmd_usage_error(search_usage, "search: no QUERY given");
    return 0;
}

int cmd_search(int argc, char **argv, const struct globals *g)
{
    struct search_opts o = { .q = RETR_QUERY_OPTS_DEFAULT };
    struct store_hit_list hits;
    struct rag_err err = { 0 };
    struct buf query = BUF_INIT;
    struct rag_ctx x = { 0 };
    struct ctx_opts co = { 0 };
    struct retr_fused *f;
    size_t i;
    int rc;

    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? cmd_usage(search_usage) : rc;
    for (i = (size_t)optind; i < (size_t)argc; i++)
        buf_appendf(&query, "%s%s", i > (size_t)optind ? " " : "", argv[i]);
    store_hit_list_init(&hits);
    f = xcalloc(o.q.k, sizeof(*f));
    co.vectors = o.q.mode != RETR_MODE_BM25;
    rc = ctx_open(&x, g, &co, &err);
    rc = rc ? rc : ctx_rank(&x, query.data, &o.q, f, &hits, &err);
    rc = rc ? rc : store_hit_snippets(x.store, query.data, &hits, 0, &err);
    if (!rc && o.json)
        print_json(query.data, &o, &hits, f);
    for (i = 0; !rc && !o.json && i < hits.n; i++)
        print_hit(i + 1, &hits.item[i]);
    if (!rc && !o.json && !hits.n)
        fprintf(stderr, "rag: no results for '%s'\n", query.data);
    store_hit_list_release(&hits);
    ctx_close(&x);
    free(f);
    buf_release(&query);
    return rc ? cmd_fail(&err) : CMD_OK;
}
