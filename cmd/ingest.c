/*
 * cmd/ingest.c - `rag ingest PATH...`: walk the paths, bring every
 * supported file's copy in the store up to date (skipping unchanged ones by
 * SHA-256), and remove documents whose files vanished from a walked folder.
 * Files are collected first so the progress bar knows the total.
 */
#include "cmd/cmd.h"

#include <getopt.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

static const char ingest_usage[] =
    "usage: rag ingest [options] PATH...\n"
    "\n"
    "Add files and folders to the store. Folders are walked recursively (hidden\n"
    "entries skipped, symlink loops detected); .txt, .md, .html and .pdf files and\n"
    "plain-text source code are read. Unchanged files (same SHA-256) are skipped,\n"
    "changed files replaced, and files gone from an ingested folder removed.\n"
    "\n"
    "Options:\n"
    "  -n, --dry-run        list what would be added, changed or removed\n"
    "  -c, --chunker NAME   auto (default), fixed, sentence, recursive, page,\n"
    "                       structure or paragraph\n"
    "      --max-tokens N   target chunk size in tokens (default 256)\n"
    "      --max-size MB    skip files larger than this (default 64)\n"
    "  -f, --force          re-read files even when unchanged\n"
    "      --no-embed       store text only (BM25 search); no embedding model needed\n"
    "      --index FACTORY  FAISS index for a new store (default Flat; e.g. HNSW32,Flat)\n"
    "  -j, --json           one JSON object per file on stdout (JSON Lines)\n"
    "  -h, --help           show this help\n";

/* Bytes of input per transaction: a crash loses at most one batch, never consistency. */
#define BATCH_BYTES (16u << 20)

struct ingest_opts {
    struct pipeline_opts pipe;
    struct ctx_opts ctx;
    bool dry_run, json;
};

struct file_entry {
    char *path;
    uint64_t size;
};

struct file_set {
    struct file_entry *item;
    size_t n, cap;
    uint64_t bytes;
    size_t n_problems;
};

struct counts {
    size_t n[PIPE_SKIPPED + 1];
    size_t chunks;
    uint64_t bytes;
};

static int collect(void *ctx, const char *path)
{
    struct file_set *set = ctx;
    struct stat st;

    if (chunk_format_from_path(path) == CHUNK_FORMAT_UNKNOWN)
        return 0;
    VEC_RESERVE(set, set->n + 1);
    set->item[set->n].path = xstrdup(path);
    set->item[set->n].size = stat(path, &st) ? 0 : (uint64_t)st.st_size;
    set->bytes += set->item[set->n++].size;
    return 0;
}

static void walk_problem(void *ctx, const char *path, const char *what)
{
    struct file_set *set = ctx;

    set->n_problems++;
    cmd_warn("skipped '%s': %s", path, what);
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct file_entry *)a)->path, ((const struct file_entry *)b)->path);
}

static void emit(const struct ingest_opts *o, const char *path, const struct pipeline_result *r)
{
    cJSON *j;
    char *s;

    if (r->status == PIPE_SKIPPED)
        cmd_warn("skipped %s", r->err.msg);
    else if (r->n_repaired)
        cmd_warn("'%s': replaced %zu invalid UTF-8 bytes", path, r->n_repaired);
    if (!o->json)
        return;
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", path);
    cJSON_AddStringToObject(j, "status", pipeline_status_name(r->status));
    cJSON_AddNumberToObject(j, "chunks", (double)r->n_chunks);
    cJSON_AddNumberToObject(j, "bytes", (double)r->bytes);
    if (r->chunker)
        cJSON_AddStringToObject(j, "chunker", r->chunker);
    if (r->n_repaired)
        cJSON_AddNumberToObject(j, "repaired_bytes", (double)r->n_repaired);
    if (r->status == PIPE_SKIPPED) {
        cJSON *e = cJSON_AddObjectToObject(j, "error");
        cJSON_AddStringToObject(e, "code", rag_code_name(r->err.code));
        cJSON_AddStringToObject(e, "message", r->err.msg);
    }
    s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    fflush(stdout);
    cJSON_free(s);
    cJSON_Delete(j);
}

static void count(struct counts *c, const struct pipeline_result *r)
{
    c->n[r->status]++;
    if (r->status != PIPE_SKIPPED && r->status != PIPE_REMOVED)
        c->chunks += r->n_chunks;
    if (r->status == PIPE_ADDED || r->status == PIPE_CHANGED)
        c->bytes += r->bytes;
}

static int process_files(struct rag_ctx *x, const struct file_set *set, const struct ingest_opts *o,
                         const struct globals *g, struct counts *c, struct rag_err *err)
{
    struct pipeline_result r;
    struct progress p;
    uint64_t bytes = 0, committed = 0;
    size_t i;
    int rc;

    progress_start(&p, o->dry_run ? "checking" : "ingesting", "files", set->n,
                   cmd_show_progress(g));
    rc = store_begin(x->store, err);
    for (i = 0; i < set->n && !rc; i++) {
        rc = pipeline_file(x, set->item[i].path, &o->pipe, o->dry_run, &r, err);
        if (rc)
            break;
        count(c, &r);
        emit(o, set->item[i].path, &r);
        bytes += set->item[i].size;
        p.chunks = c->chunks;
        progress_update(&p, i + 1, bytes);
        /* Full-text indexing is cheaper in batches; each batch is atomic. */
        if (bytes - committed >= BATCH_BYTES) {
            committed = bytes;
            rc = pipeline_flush(x, err);
            rc = rc ? rc : store_commit(x->store, err);
            rc = rc ? rc : ctx_save_index(x, err);
            rc = rc ? rc : store_begin(x->store, err);
        }
    }
    rc = rc ? rc : pipeline_flush(x, err);
    rc = rc ? rc : store_commit(x->store, err);
    if (rc)
        store_rollback(x->store);
    progress_end(&p);
    return rc;
}

static bool in_set(const struct file_set *set, const char *path)
{
    struct file_entry key = { (char *)path, 0 };

    return bsearch(&key, set->item, set->n, sizeof(key), by_path) != NULL;
}

/* Remove documents stored under a walked folder whose files are gone. */
static int remove_vanished(struct rag_ctx *x, const char *root, const struct file_set *set,
                           const struct ingest_opts *o, struct counts *c, struct rag_err *err)
{
    struct store_doc_list docs;
    struct pipeline_result r = { .status = PIPE_REMOVED };
    size_t i;
    int rc;

    store_doc_list_init(&docs);
    rc = store_list_docs(x->store, root, &docs, err);
    for (i = 0; !rc && i < docs.n; i++) {
        if (in_set(set, docs.item[i].path))
            continue;
        if (!o->dry_run)
            rc = pipeline_remove(x, docs.item[i].path, err);
        r.n_chunks = docs.item[i].n_chunks;
        count(c, &r);
        emit(o, docs.item[i].path, &r);
    }
    store_doc_list_release(&docs);
    return rc;
}

static void summary(const struct ingest_opts *o, const struct counts *c, size_t n_problems,
                    double secs)
{
    if (o->json)
        return;
    printf("%s%zu added, %zu changed, %zu removed, %zu unchanged, %zu skipped; %zu chunks; "
           "%.2f MB in %.2f s (%.2f MB/s)\n",
           o->dry_run ? "dry run: " : "", c->n[PIPE_ADDED], c->n[PIPE_CHANGED], c->n[PIPE_REMOVED],
           c->n[PIPE_UNCHANGED], c->n[PIPE_SKIPPED] + n_problems, c->chunks, (double)c->bytes / 1e6,
           secs, secs > 0 ? (double)c->bytes / 1e6 / secs : 0.0);
}

static int parse_opts(int argc, char **argv, struct ingest_opts *o)
{
    static const struct option longopts[] = {
        { "dry-run", no_argument, NULL, 'n' },
        { "chunker", required_argument, NULL, 'c' },
        { "max-tokens", required_argument, NULL, 't' },
        { "max-size", required_argument, NULL, 's' },
        { "force", no_argument, NULL, 'f' },
        { "json", no_argument, NULL, 'j' },
        { "no-embed", no_argument, NULL, 'E' },
        { "index", required_argument, NULL, 'I' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rag_err err = { 0 };
    size_t mb;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":nc:fjh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->dry_run = true;
            break;
        case 'c':
            if (chunker_from_name(optarg, &o->pipe.chunk.kind, &err))
                return cmd_usage_error(ingest_usage, "ingest: %s", err.msg);
            break;
        case 't':
            if (parse_size(optarg, 16, 8192, &o->pipe.chunk.max_tokens))
                return cmd_usage_error(ingest_usage, "ingest: invalid --max-tokens '%s'", optarg);
            break;
        case 's':
            if (parse_size(optarg, 1, 1 << 20, &mb))
                return cmd_usage_error(ingest_usage, "ingest: invalid --max-size '%s'", optarg);
            o->pipe.max_file_bytes = mb << 20;
            break;
        case 'f':
            o->pipe.force = true;
            break;
        case 'E':
            o->ctx.vectors = false;
            break;
        case 'I':
            o->ctx.factory = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            return cmd_usage(ingest_usage) - 1;
        default:
            return cmd_option_error(ingest_usage, "ingest", c, argv);
        }
    }
    if (optind >= argc)
        return cmd_usage_error(ingest_usage, "ingest: no PATH given");
    return 0;
}

/* Canonical absolute paths of the roots; a missing root is an error. */
static int resolve_roots(int argc, char **argv, char ***ret, struct rag_err *err)
{
    char **roots = xcalloc((size_t)argc, sizeof(*roots));
    int i;

    for (i = 0; i < argc; i++) {
        roots[i] = realpath(argv[i], NULL);
        if (!roots[i]) {
            rag_errno(err, "'%s'", argv[i]);
            while (i--)
                free(roots[i]);
            free(roots);
            return RAG_EIO;
        }
    }
    *ret = roots;
    return 0;
}

static int run(struct rag_ctx *x, char **roots, int n, const struct ingest_opts *o,
               const struct globals *g, struct rag_err *err)
{
    struct file_set set = { 0 };
    struct file_walk w = { collect, walk_problem, &set };
    struct counts c = { 0 };
    double t0 = time_now();
    struct stat st;
    int i, rc;
    size_t k;

    rc = file_walk((const char *const *)roots, (size_t)n, &w, err);
    if (!rc) {
        qsort(set.item, set.n, sizeof(*set.item), by_path);
        rc = process_files(x, &set, o, g, &c, err);
    }
    for (i = 0; !rc && i < n; i++)
        if (stat(roots[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = remove_vanished(x, roots[i], &set, o, &c, err);
    if (!rc)
        rc = ctx_save_index(x, err);
    if (!rc)
        summary(o, &c, set.n_problems, time_now() - t0);
    for (k = 0; k < set.n; k++)
        free(set.item[k].path);
    free(set.item);
    return rc;
}

int cmd_ingest(int argc, char **argv, const struct globals *g)
{
    struct ingest_opts o = { .pipe = { .chunk = CHUNKER_OPTS_DEFAULT, .max_file_bytes = 64 << 20 },
                             .ctx = { .vectors = true, .tokenizer = true } };
    struct rag_err err = { 0 };
    struct rag_ctx x = { 0 };
    char **roots = NULL;
    int rc, i, n;

    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? CMD_OK : rc;
    n = argc - optind;
    rc = resolve_roots(n, argv + optind, &roots, &err);
    if (!rc)
        rc = ctx_open(&x, g, &o.ctx, &err);
    ctx_chunker_opts(&x, &o.pipe.chunk);
    if (!rc)
        rc = run(&x, roots, n, &o, g, &err);
    ctx_close(&x);
    for (i = 0; roots && i < n; i++)
        free(roots[i]);
    free(roots);
    return rc ? cmd_fail(&err) : CMD_OK;
}
