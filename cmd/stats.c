/*
 * cmd/stats.c - `rag stats` (what the store holds) and `rag rm PATH...`
 * (remove documents, or every document below a folder).
 */
#include "cmd/cmd.h"

#include <getopt.h>

#include <cjson/cJSON.h>

static const char stats_usage[] =
    "usage: rag stats [--json]\n"
    "\n"
    "Show the store's location, document, chunk and vector counts, text size,\n"
    "database size and documents per format.\n";

static const char rm_usage[] =
    "usage: rag rm [--dry-run] PATH...\n"
    "\n"
    "Remove the documents at PATH, or every document below the folder PATH, from\n"
    "the store (the files themselves are not touched).\n";

/* Parse a command that takes only --json/--dry-run and -h; returns -1 for help. */
static int parse_flags(int argc, char **argv, const char *usage, const char *name, bool *flag,
                       const char *flag_name)
{
    const struct option longopts[] = {
        { flag_name, no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h')
            return -1;
        if (c != 'f')
            return cmd_option_error(usage, name, c, argv);
        *flag = true;
    }
    return 0;
}

static void print_stats_json(const struct store *s, const struct store_stats *st)
{
    cJSON *j = cJSON_CreateObject(), *f;
    size_t i;
    char *out;

    cJSON_AddStringToObject(j, "schema", "rag.stats/1");
    cJSON_AddStringToObject(j, "db_path", store_db_path(s));
    cJSON_AddNumberToObject(j, "documents", (double)st->n_docs);
    cJSON_AddNumberToObject(j, "chunks", (double)st->n_chunks);
    cJSON_AddNumberToObject(j, "vectors", (double)st->n_vectors);
    cJSON_AddNumberToObject(j, "text_bytes", (double)st->text_bytes);
    cJSON_AddNumberToObject(j, "db_bytes", (double)st->db_bytes);
    f = cJSON_AddObjectToObject(j, "formats");
    for (i = 0; i < st->n_formats; i++)
        cJSON_AddNumberToObject(f, st->formats[i].format, (double)st->formats[i].n_docs);
    out = cJSON_PrintUnformatted(j);
    printf("%s\n", out);
    cJSON_free(out);
    cJSON_Delete(j);
}

static void print_stats(const struct store *s, const struct store_stats *st)
{
    size_t i;

    printf("store:     %s\n", store_db_path(s));
    printf("documents: %zu\n", st->n_docs);
    printf("chunks:    %zu\n", st->n_chunks);
    printf("vectors:   %zu\n", st->n_vectors);
    printf("text:      %.1f MB\n", (double)st->text_bytes / 1e6);
    printf("database:  %.1f MB\n", (double)st->db_bytes / 1e6);
    for (i = 0; i < st->n_formats; i++)
        printf("%s%s %zu", i ? ", " : "formats:   ", st->formats[i].format, st->formats[i].n_docs);
    if (st->n_formats)
        printf("\n");
}

int cmd_stats(int argc, char **argv, const struct globals *g)
{
    struct store_stats st;
    struct rag_err err = { 0 };
    struct store *s = NULL;
    bool json = false;
    int rc;

    rc = parse_flags(argc, argv, stats_usage, "stats", &json, "json");
    if (rc)
        return rc < 0 ? cmd_usage(stats_usage) : rc;
    if (optind < argc)
        return cmd_usage_error(stats_usage, "stats: unexpected argument '%s'", argv[optind]);
    rc = cmd_store_open(g, &s, &err);
    if (!rc)
        rc = store_stats(s, &st, &err);
    if (!rc)
        (json ? print_stats_json : print_stats)(s, &st);
    store_close(s);
    return rc ? cmd_fail(&err) : CMD_OK;
}

/* Remove every stored document at or below path; returns how many. */
static int rm_path(struct rag_ctx *x, const char *path, bool dry_run, size_t *n,
                   struct rag_err *err)
{
    struct store_doc_list docs;
    size_t i;
    int rc;

    store_doc_list_init(&docs);
    rc = store_list_docs(x->store, path, &docs, err);
    for (i = 0; !rc && i < docs.n; i++) {
        if (!dry_run)
            rc = pipeline_remove(x, docs.item[i].path, err);
        if (!rc)
            printf("%s%s\n", dry_run ? "would remove " : "removed ", docs.item[i].path);
    }
    *n += docs.n;
    store_doc_list_release(&docs);
    return rc;
}

int cmd_rm(int argc, char **argv, const struct globals *g)
{
    struct rag_err err = { 0 };
    struct rag_ctx x = { 0 };
    struct ctx_opts co = { 0 };
    struct buf index = BUF_INIT;
    bool dry_run = false;
    size_t n;
    char *abs;
    int rc, i;

    rc = parse_flags(argc, argv, rm_usage, "rm", &dry_run, "dry-run");
    if (rc)
        return rc < 0 ? cmd_usage(rm_usage) : rc;
    if (optind >= argc)
        return cmd_usage_error(rm_usage, "rm: no PATH given");
    /* With a vector index, keep it in step (it needs the embedder's identity). */
    buf_appendf(&index, "%s/vectors.faiss", g->store_dir);
    co.vectors = file_exists(index.data);
    buf_release(&index);
    rc = ctx_open(&x, g, &co, &err);
    for (i = optind; !rc && i < argc; i++) {
        /* The store keeps absolute paths; a file that is gone keeps its given spelling. */
        abs = realpath(argv[i], NULL);
        n = 0;
        rc = rm_path(&x, abs ? abs : argv[i], dry_run, &n, &err);
        if (!rc && !n)
            rc = rag_errf(&err, RAG_ENOTFOUND, "rm: no document at or below '%s'", argv[i]);
        free(abs);
    }
    rc = rc ? rc : ctx_save_index(&x, &err);
    ctx_close(&x);
    return rc ? cmd_fail(&err) : CMD_OK;
}
