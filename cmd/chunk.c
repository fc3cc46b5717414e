/*
 * cmd/chunk.c - `rag chunk FILE`: show how a file is read and cut into
 * chunks by one chunker, or a summary line per chunker with --chunker all.
 */
#include "cmd/cmd.h"

#include <getopt.h>

#include <cjson/cJSON.h>

static const char chunk_usage[] =
    "usage: rag chunk [options] FILE\n"
    "\n"
    "Read FILE and show its chunks: ordinal, byte span, pages, tokens, heading\n"
    "path and the first line of text.\n"
    "\n"
    "Options:\n"
    "  -c, --chunker NAME   auto (default), fixed, sentence, recursive, page,\n"
    "                       structure, paragraph, or all (one summary line each)\n"
    "      --max-tokens N   target chunk size in tokens (default 256)\n"
    "  -j, --json           one JSON document on stdout (schema rag.chunk/1)\n"
    "  -h, --help           show this help\n";

struct chunk_cmd_opts {
    struct chunker_opts chunk;
    bool all, json;
};

static void print_chunk(size_t i, const struct chunk *c)
{
    size_t n = 0;

    while (n < c->len && n < 72 && c->text[n] != '\n')
        n++;
    printf("%4zu  %8zu-%-8zu", i, c->start, c->end);
    if (c->page_start)
        printf(" p%d-%d", c->page_start, c->page_end);
    printf(" %4zu tok  %s%s%.*s\n", c->n_tokens, c->heading_path, c->heading_path[0] ? " | " : "",
           (int)n, c->text);
}

static cJSON *chunk_json(const struct chunk *c)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddNumberToObject(j, "byte_start", (double)c->start);
    cJSON_AddNumberToObject(j, "byte_end", (double)c->end);
    cJSON_AddNumberToObject(j, "page_start", c->page_start);
    cJSON_AddNumberToObject(j, "page_end", c->page_end);
    cJSON_AddNumberToObject(j, "tokens", (double)c->n_tokens);
    cJSON_AddStringToObject(j, "heading_path", c->heading_path);
    cJSON_AddStringToObject(j, "text", c->text);
    return j;
}

/* Cut doc with one chunker and print the chunks (or a summary line). */
static int show(const struct chunk_doc *doc, const struct chunk_cmd_opts *o, cJSON *json_arr,
                struct rag_err *err)
{
    struct chunk_list l = { 0 };
    enum chunker_kind used;
    struct arena arena;
    size_t i, tokens = 0;
    int rc;

    arena_init(&arena, 0);
    rc = chunk_split(doc, &o->chunk, &arena, &l, &used, err);
    for (i = 0; !rc && i < l.n; i++)
        tokens += l.item[i].n_tokens;
    if (!rc && json_arr) {
        cJSON *j = cJSON_CreateObject(), *arr;

        cJSON_AddStringToObject(j, "chunker", chunker_name(used));
        arr = cJSON_AddArrayToObject(j, "chunks");
        for (i = 0; i < l.n; i++)
            cJSON_AddItemToArray(arr, chunk_json(&l.item[i]));
        cJSON_AddItemToArray(json_arr, j);
    } else if (!rc && o->all) {
        printf("%-10s %5zu chunks, %7.1f tokens on average\n", chunker_name(used), l.n,
               l.n ? (double)tokens / (double)l.n : 0.0);
    } else if (!rc) {
        printf("# %s: %zu chunks (%s)\n", chunker_name(used), l.n, chunk_format_name(doc->format));
        for (i = 0; i < l.n; i++)
            print_chunk(i, &l.item[i]);
    }
    chunk_list_release(&l);
    arena_release(&arena);
    return rc;
}

static int parse_opts(int argc, char **argv, struct chunk_cmd_opts *o)
{
    static const struct option longopts[] = {
        { "chunker", required_argument, NULL, 'c' },
        { "max-tokens", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rag_err err = { 0 };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:jh", longopts, NULL)) != -1) {
        if (c == 'c' && !strcmp(optarg, "all"))
            o->all = true;
        else if (c == 'c' && chunker_from_name(optarg, &o->chunk.kind, &err))
            return cmd_usage_error(chunk_usage, "chunk: %s", err.msg);
        else if (c == 't' && parse_size(optarg, 16, 8192, &o->chunk.max_tokens))
            return cmd_usage_error(chunk_usage, "chunk: invalid --max-tokens '%s'", optarg);
        else if (c == 'j')
            o->json = true;
        else if (c == 'h')
            return -1;
        else if (c != 'c' && c != 't')
            return cmd_option_error(chunk_usage, "chunk", c, argv);
    }
    if (optind + 1 != argc)
        return cmd_usage_error(chunk_usage, "chunk: expected exactly one FILE");
    return 0;
}

int cmd_chunk(int argc, char **argv, const struct globals *g)
{
    struct chunk_cmd_opts o = { .chunk = CHUNKER_OPTS_DEFAULT };
    struct rag_err err = { 0 };
    struct chunk_doc doc;
    cJSON *json = NULL, *arr = NULL;
    int rc, k;

    (void)g;
    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? cmd_usage(chunk_usage) : rc;
    rc = chunk_doc_read(&doc, argv[optind], 256u << 20, &err);
    if (rc)
        return cmd_fail(&err);
    if (o.json) {
        json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "schema", "rag.chunk/1");
        cJSON_AddStringToObject(json, "path", argv[optind]);
        cJSON_AddStringToObject(json, "format", chunk_format_name(doc.format));
        arr = cJSON_AddArrayToObject(json, "chunkings");
    }
    for (k = o.all ? 0 : (int)o.chunk.kind; !rc && k <= (int)(o.all ? CHUNKER_AUTO : o.chunk.kind);
         k++) {
        o.chunk.kind = (enum chunker_kind)k;
        rc = show(&doc, &o, arr, &err);
    }
    if (!rc && json) {
        char *s = cJSON_PrintUnformatted(json);

        printf("%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(json);
    chunk_doc_release(&doc);
    return rc ? cmd_fail(&err) : CMD_OK;
}
