/*
 * cmd/ask.c - `rag ask QUESTION`: retrieve, build a numbered-source prompt
 * within the context window (counted with the generator's own tokenizer),
 * stream the answer, check its citations and print the sources; --json
 * prints a trace instead. Without QUESTION on a terminal it starts the
 * interactive session (chat.c). The answering itself is in answer.c.
 */
#include "cmd/cmd.h"

#include <getopt.h>
#include <unistd.h>

#include "generation/generation.h"
#include "retrieval/retrieval.h"

static const char ask_usage[] =
    "usage: rag ask [options] [QUESTION...]\n"
    "\n"
    "Answer QUESTION from the indexed documents with a local language model,\n"
    "streaming the answer, then listing the numbered sources it may cite.\n"
    "Without QUESTION on a terminal: an interactive session (/sources, /quit).\n"
    "\n"
    "Options:\n"
    "  -k, --top-k N        candidate chunks offered to the prompt (default 8)\n"
    "      --mode MODE      retrieval: hybrid (default), dense or bm25\n"
    "  -m, --model PATH     GGUF model (default $RAG_MODELS/" CMD_GENERATOR_DEFAULT ")\n"
    "      --ctx N          context window in tokens (default 2048)\n"
    "      --max-tokens N   answer length limit in tokens (default 256)\n"
    "      --temperature T  0 (default) is greedy decoding\n"
    "      --seed N         sampling seed (default 0)\n"
    "      --repeat-penalty P  penalty on the last 64 tokens (default 1.1; 1 = off)\n"
    "      --min-score S    answer \"not found\" when the best dense score is\n"
    "                       below S (default 0.30; 0 turns the check off)\n"
    "      --threads N      CPU threads (default: all)\n"
    "  -j, --json           print a JSON trace instead (schema rag.ask/1)\n"
    "  -h, --help           show this help\n";

enum {
    OPT_MODE = 256,
    OPT_CTX,
    OPT_MAXTOK,
    OPT_TEMP,
    OPT_SEED,
    OPT_MINSCORE,
    OPT_THREADS,
    OPT_REPEAT
};

static int parse_number_opt(int c, const char *arg, struct ask_opts *o)
{
    size_t z;
    double d;

    switch (c) {
    case 'k':
        return parse_size(arg, 1, 100, &o->k);
    case OPT_CTX:
        return parse_size(arg, 256, 1 << 20, &o->n_ctx);
    case OPT_MAXTOK:
        return parse_size(arg, 1, 1 << 16, &o->max_tokens);
    case OPT_TEMP:
        if (parse_double(arg, 0, 10, &d))
            return RAG_EINVAL;
        o->sampler.temperature = (float)d;
        return 0;
    case OPT_SEED:
        if (parse_size(arg, 0, SIZE_MAX, &z))
            return RAG_EINVAL;
        o->sampler.seed = z;
        return 0;
    case OPT_MINSCORE:
        return parse_double(arg, -1, 1, &o->min_score);
    case OPT_REPEAT:
        if (parse_double(arg, 0.5, 3, &d))
            return RAG_EINVAL;
        o->sampler.repeat_penalty = (float)d;
        return 0;
    case OPT_THREADS:
        return parse_size(arg, 1, 1024, &o->n_threads);
    }
    return RAG_EINVAL;
}

static int parse_opts(int argc, char **argv, struct ask_opts *o)
{
    static const struct option longopts[] = {
        { "top-k", required_argument, NULL, 'k' },
        { "mode", required_argument, NULL, OPT_MODE },
        { "model", required_argument, NULL, 'm' },
        { "ctx", required_argument, NULL, OPT_CTX },
        { "max-tokens", required_argument, NULL, OPT_MAXTOK },
        { "temperature", required_argument, NULL, OPT_TEMP },
        { "seed", required_argument, NULL, OPT_SEED },
        { "min-score", required_argument, NULL, OPT_MINSCORE },
        { "threads", required_argument, NULL, OPT_THREADS },
        { "repeat-penalty", required_argument, NULL, OPT_REPEAT },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rag_err err = { 0 };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:m:jh", longopts, NULL)) != -1) {
        if (c == 'h')
            return -1;
        if (c == 'j')
            o->json = true;
        else if (c == 'm')
            o->model = optarg;
        else if (c == OPT_MODE && retr_mode_from_name(optarg, &o->mode, &err))
            return cmd_usage_error(ask_usage, "ask: %s", err.msg);
        else if (c == '?' || c == ':')
            return cmd_option_error(ask_usage, "ask", c, argv);
        else if (c != OPT_MODE && parse_number_opt(c, optarg, o))
            return cmd_usage_error(ask_usage, "ask: invalid value '%s' for '%s'", optarg,
                                   argv[optind - 1]);
    }
    if (o->max_tokens + 64 > o->n_ctx)
        return cmd_usage_error(ask_usage, "ask: --max-tokens %zu leaves no room in --ctx %zu",
                               o->max_tokens, o->n_ctx);
    return 0;
}

/* Stream answer text to stdout as it comes. */
static int stream_out(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return ferror(stdout) ? -1 : 0;
}

static void print_sources(const struct ask_result *r)
{
    size_t i;

    printf("\n");
    for (i = 0; i < r->n_problems; i++)
        printf("%s  %s\n", i ? "" : "\ncitation check:\n", r->problem[i]);
    if (!r->n_sources) {
        printf("\n(no chunk matched: is the store empty? see rag stats, rag ingest PATH)\n");
        return;
    }
    printf("\n%s:\n", r->weak ? "closest sources" : "sources");
    for (i = 0; i < r->n_sources; i++) {
        const struct ask_source *s = &r->source[i];

        if (!s->in_prompt && !r->weak)
            continue;
        printf("[%zu]%s %s", i + 1, s->cited ? "*" : " ", s->path);
        if (s->heading[0])
            printf(" > %s", s->heading);
        if (s->page_start)
            printf(s->page_end > s->page_start ? " (pages %d-%d)" : " (page %d)", s->page_start,
                   s->page_end);
        printf(" [bytes %zu-%zu]\n", s->byte_start, s->byte_end);
    }
}

int cmd_ask(int argc, char **argv, const struct globals *g)
{
    struct ask_opts o = ASK_OPTS_DEFAULT;
    struct ask_result r;
    struct rag_err err = { 0 };
    struct buf q = BUF_INIT;
    struct asker *a = NULL;
    int rc, i;

    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? cmd_usage(ask_usage) : rc;
    for (i = optind; i < argc; i++)
        buf_appendf(&q, "%s%s", i > optind ? " " : "", argv[i]);
    if (!q.len && !isatty(STDIN_FILENO))
        return cmd_usage_error(ask_usage, "ask: no QUESTION given");
    rc = asker_open(&a, g, &o, &err);
    if (!rc && !q.len)
        rc = chat_session(a, g, &err);
    else if (!rc) {
        ask_result_init(&r);
        rc = asker_ask(a, q.data, NULL, o.json ? NULL : stream_out, NULL, &r, &err);
        if (!rc && o.json)
            ask_print_json(&r);
        else if (!rc)
            print_sources(&r);
        ask_result_release(&r);
    }
    asker_close(a);
    buf_release(&q);
    return rc ? cmd_fail(&err) : CMD_OK;
}
