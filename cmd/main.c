/*
 * cmd/main.c - entry point: global options, subcommand dispatch (git's
 * commands[] table), the stdout check at exit, and `rag help`.
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "config.h"

struct command {
    const char *name;
    cmd_fn *run;
    const char *summary; /* one line for `rag help` */
};

static const struct command commands[] = {
    { "ingest", cmd_ingest, "add files and folders to the store (incremental)" },
    { "ask", cmd_ask, "answer a question from the indexed documents, with sources" },
    { "search", cmd_search, "rank chunks for a query" },
    { "chunk", cmd_chunk, "show how a file is cut into chunks" },
    { "eval", cmd_eval, "score retrieval on a dataset" },
    { "stats", cmd_stats, "show what the store holds" },
    { "rm", cmd_rm, "remove documents from the store" },
    { "models", cmd_models, "list, verify and fetch models" },
    { "reindex", cmd_reindex, "embed missing chunks and rebuild the vector index" },
    { "help", cmd_help, "show help for a command" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char main_usage[] =
    "usage: rag [--store DIR] [--device auto|cpu|gpu] [-v | -q] [--progress | --no-progress]\n"
    "           COMMAND [ARGS]\n"
    "       rag --version | --help\n"
    "\n"
    "Global options:\n"
    "  --store DIR    the store directory (default $RAG_STORE, else\n"
    "                 $XDG_DATA_HOME/rag/default)\n"
    "  --embedder DIR a sentence-transformers model folder (default\n"
    "                 $RAG_MODELS/all-minilm-l6-v2)\n"
    "  --device DEV   where the embedder and the generator run: auto (the GPU\n"
    "                 when there is one, default), cpu or gpu (an error without one)\n"
    "  -v, -q         more or less chatter on stderr (-vv: debug)\n"
    "  --progress     draw progress even when stderr is not a terminal\n"
    "  --no-progress  never draw progress\n"
    "\n"
    "Environment: RAG_STORE (store directory), RAG_MODELS (model cache, default\n"
    "$XDG_CACHE_HOME/rag/models), RAG_DEVICE (like --device).\n"
    "Exit status: 0 success, 1 runtime error, 2 usage error.\n";

static void print_commands(FILE *f)
{
    size_t i;

    fputs("\nCommands:\n", f);
    for (i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\nRun 'rag help COMMAND' or 'rag COMMAND --help' for a command's options.\n", f);
}

static const struct command *find_command(const char *name)
{
    size_t i;

    for (i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

int cmd_help(int argc, char **argv, const struct globals *g)
{
    const struct command *c;
    char *args[] = { NULL, "--help", NULL };

    if (argc < 2) {
        fputs(main_usage, stdout);
        print_commands(stdout);
        return CMD_OK;
    }
    c = find_command(argv[1]);
    if (!c || c->run == cmd_help)
        return cmd_usage_error(main_usage, "help: unknown command '%s'", argv[1]);
    args[0] = argv[1];
    return c->run(2, args, g);
}

/* XDG default: $<var>/rag/<leaf> or $HOME/<fallback>/rag/<leaf>. */
static const char *xdg_path(const char *env, const char *var, const char *fallback,
                            const char *leaf, struct buf *out)
{
    const char *v = getenv(env), *home;

    if (v && *v)
        return v;
    v = getenv(var);
    home = getenv("HOME");
    if (v && *v)
        buf_appendf(out, "%s/rag/%s", v, leaf);
    else
        buf_appendf(out, "%s/%s/rag/%s", home && *home ? home : ".", fallback, leaf);
    return out->data;
}

/* git run_builtin: a failed write to stdout is an error, a closed pipe is not. */
static int check_stdout(int status)
{
    struct stat st;

    if (fstat(fileno(stdout), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        return status;
    if (fflush(stdout) || ferror(stdout) || fclose(stdout)) {
        if (errno == EPIPE)
            return status;
        fprintf(stderr, "rag: error: write failure on standard output: %s\n", strerror(errno));
        return CMD_FAIL;
    }
    return status;
}

enum { OPT_STORE = 256, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_VERSION, OPT_EMBEDDER, OPT_DEVICE };

/* auto, cpu or gpu from the option or variable from; NULL and "" mean auto. */
static int parse_device(const char *from, const char *s, enum cmd_device *ret)
{
    static const char *const names[] = { "auto", "cpu", "gpu" };

    if (!s || !*s) {
        *ret = CMD_DEVICE_AUTO;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(s, names[i])) {
            *ret = (enum cmd_device)i;
            return 0;
        }
    fprintf(stderr, "rag: %s: unknown device '%s' (auto, cpu or gpu)\n", from, s);
    return -3;
}

static int parse_globals(int argc, char **argv, struct globals *g, int *verbosity)
{
    static const struct option longopts[] = {
        { "store", required_argument, NULL, OPT_STORE },
        { "db", required_argument, NULL, OPT_STORE },
        { "embedder", required_argument, NULL, OPT_EMBEDDER },
        { "device", required_argument, NULL, OPT_DEVICE },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
        { "verbose", no_argument, NULL, 'v' },
        { "quiet", no_argument, NULL, 'q' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:vqh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_STORE:
            g->store_dir = optarg;
            break;
        case OPT_EMBEDDER:
            g->embedder_dir = optarg;
            break;
        case OPT_DEVICE:
            if (parse_device("--device", optarg, &g->device))
                return -3; /* already reported */
            break;
        case OPT_PROGRESS:
            g->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            g->progress = 0;
            break;
        case 'v':
            (*verbosity)++;
            break;
        case 'q':
            (*verbosity)--;
            break;
        case OPT_VERSION:
            printf("rag %s\n", RAG_VERSION);
            return -1;
        case 'h':
            cmd_help(1, argv, g);
            return -1;
        case ':':
            fprintf(stderr, "rag: option '%s' needs a value\n", argv[optind - 1]);
            return -3;
        default:
            return -2;
        }
    }
    return 0;
}

static void set_verbosity(int v)
{
    if (v < 0)
        rag_log_set_level(RAG_LOG_ERROR);
    else if (v == 0)
        rag_log_set_level(RAG_LOG_INFO);
    else
        rag_log_set_level(v == 1 ? RAG_LOG_INFO : RAG_LOG_DEBUG);
}

static void *cjson_malloc(size_t n)
{
    return xmalloc(n);
}

int main(int argc, char **argv)
{
    struct globals g = { .progress = -1 };
    struct buf store = BUF_INIT, models = BUF_INIT;
    const struct command *c;
    cJSON_Hooks hooks = { cjson_malloc, free };
    int verbosity = 0, rc;

    signal(SIGPIPE, SIG_IGN);
    cJSON_InitHooks(&hooks);
    rc = parse_device("RAG_DEVICE", getenv("RAG_DEVICE"), &g.device);
    rc = rc ? rc : parse_globals(argc, argv, &g, &verbosity);
    if (rc == -1)
        return check_stdout(CMD_OK);
    if (rc == -3) /* already reported */
        return CMD_USAGE;
    if (rc == -2 || optind >= argc) {
        if (rc == -2)
            fprintf(stderr, "rag: unknown option '%s'\n\n", argv[optind - 1]);
        fputs(main_usage, stderr);
        print_commands(stderr);
        return CMD_USAGE;
    }
    set_verbosity(verbosity);
    if (!g.store_dir)
        g.store_dir = xdg_path("RAG_STORE", "XDG_DATA_HOME", ".local/share", "default", &store);
    g.models_dir = xdg_path("RAG_MODELS", "XDG_CACHE_HOME", ".cache", "models", &models);
    c = find_command(argv[optind]);
    if (c) {
        rc = c->run(argc - optind, argv + optind, &g);
    } else {
        fprintf(stderr, "rag: unknown command '%s'\n", argv[optind]);
        print_commands(stderr);
        rc = CMD_USAGE;
    }
    buf_release(&store);
    buf_release(&models);
    return check_stdout(rc);
}
