/*
 * cmd/eval.c - `rag eval DATASET`: options, the command's flow and its
 * report. The dataset (eval/) is ingested into a scratch store and its
 * questions searched and scored (eval_search.c), then answered and scored
 * when it has gold answers (eval_answer.c).
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <getopt.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eval/eval.h"
#include "retrieval/retrieval.h"

static const char eval_usage[] =
    "usage: rag eval [options] DATASET\n"
    "\n"
    "Score retrieval on a dataset folder: the BEIR layout (corpus.jsonl,\n"
    "queries.jsonl, qrels/SPLIT.tsv) or the QA layout (docs.jsonl,\n"
    "questions.jsonl). The documents are ingested into a scratch store that is\n"
    "removed afterwards (see --keep-store).\n"
    "\n"
    "Options:\n"
    "      --retrieval-only     score retrieval only; otherwise questions with gold\n"
    "                           answers are also answered and scored (EM, F1)\n"
    "  -m, --model PATH         GGUF generator for answers (see rag ask)\n"
    "      --ctx N              generator context window (default 2048)\n"
    "      --answer-k N         chunks offered to the prompt (default 8)\n"
    "      --mode MODE          hybrid (default), dense or bm25 (no embedding model)\n"
    "      --alpha A            hybrid: weighted score mix instead of rank fusion\n"
    "      --depth N            candidates per list before fusion (default 50)\n"
    "  -k, --top-k N            cut-off for recall/hit/evidence metrics (default 5);\n"
    "                           nDCG and MRR are also reported at 10\n"
    "      --split NAME         BEIR qrels split (default test)\n"
    "      --max-questions N    evaluate the first N questions only\n"
    "      --sample N           evaluate a seeded random sample of N questions\n"
    "  -c, --chunker NAME       chunker for the documents (default auto)\n"
    "      --max-tokens N       target chunk size in tokens (default 256)\n"
    "      --keep-store DIR     build the scratch store in DIR and keep it\n"
    "  -j, --json               one JSON document on stdout (schema rag.eval/1)\n"
    "  -h, --help               show this help\n";

struct eval_cmd_opts {
    struct ask_opts ask;
    bool retrieval_only;
    struct eval_load_opts load;
    struct pipeline_opts pipe;
    struct retr_query_opts q;
    size_t k;
    const char *keep_store;
    bool json;
};

static int answer_all(struct eval_run *e, const struct eval_cmd_opts *o, const struct globals *g,
                      const char *store_dir, struct rag_err *err)
{
    struct ask_opts ao = o->ask;
    struct globals gg = *g;

    gg.store_dir = store_dir;
    ao.mode = o->q.mode;
    return eval_answer_questions(e->ds, e->acc, &ao, &gg, err);
}

static void print_table(const struct eval_run *e, const char *dataset,
                        const struct eval_cmd_opts *o)
{
    struct eval_stat st;
    size_t i;

    printf("dataset %s: %zu documents, %zu chunks (%s, %zu tokens), %zu questions\n", dataset,
           e->ds->n_docs, e->n_chunks, chunker_name(e->chunk.kind), e->chunk.max_tokens,
           e->ds->n_questions);
    printf("ingest %.2f s (%.1f MB/s), search %.2f s (%.1f ms/question), mode %s\n\n", e->ingest_s,
           e->ingest_s > 0 ? (double)e->bytes / 1e6 / e->ingest_s : 0.0, e->search_s,
           e->ds->n_questions ? 1e3 * e->search_s / (double)e->ds->n_questions : 0.0,
           retr_mode_name(o->q.mode));
    printf("%-22s %8s   %-17s %6s\n", "metric", "mean", "95% CI", "n");
    for (i = 0; i < eval_acc_count(e->acc); i++) {
        eval_acc_stat(e->acc, i, &st);
        printf("%-22s %8.4f   [%.4f, %.4f] %6zu\n", st.name, st.mean, st.ci_lo, st.ci_hi, st.n);
    }
}

static void print_json(const struct eval_run *e, const char *dataset, const struct eval_cmd_opts *o)
{
    cJSON *j = cJSON_CreateObject(), *m;
    struct eval_stat st;
    size_t i;
    char *s;

    cJSON_AddStringToObject(j, "schema", "rag.eval/1");
    cJSON_AddStringToObject(j, "dataset", dataset);
    cJSON_AddStringToObject(j, "layout", e->ds->layout == EVAL_LAYOUT_BEIR ? "beir" : "qa");
    cJSON_AddStringToObject(j, "mode", retr_mode_name(o->q.mode));
    cJSON_AddStringToObject(j, "chunker", chunker_name(e->chunk.kind));
    cJSON_AddNumberToObject(j, "max_tokens", (double)e->chunk.max_tokens);
    cJSON_AddNumberToObject(j, "k", (double)o->k);
    cJSON_AddNumberToObject(j, "documents", (double)e->ds->n_docs);
    cJSON_AddNumberToObject(j, "chunks", (double)e->n_chunks);
    cJSON_AddNumberToObject(j, "questions", (double)e->ds->n_questions);
    cJSON_AddNumberToObject(j, "ingest_seconds", e->ingest_s);
    cJSON_AddNumberToObject(j, "ingest_mb_per_s",
                            e->ingest_s > 0 ? (double)e->bytes / 1e6 / e->ingest_s : 0.0);
    cJSON_AddNumberToObject(j, "search_seconds", e->search_s);
    m = cJSON_AddObjectToObject(j, "metrics");
    for (i = 0; i < eval_acc_count(e->acc); i++) {
        cJSON *x = cJSON_CreateObject();

        eval_acc_stat(e->acc, i, &st);
        cJSON_AddNumberToObject(x, "mean", st.mean);
        cJSON_AddNumberToObject(x, "ci_lo", st.ci_lo);
        cJSON_AddNumberToObject(x, "ci_hi", st.ci_hi);
        cJSON_AddNumberToObject(x, "n", (double)st.n);
        cJSON_AddItemToObject(m, st.name, x);
    }
    s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(j);
}

enum {
    OPT_SPLIT = 256,
    OPT_MAXQ,
    OPT_SAMPLE,
    OPT_KEEP,
    OPT_RETRIEVAL,
    OPT_MAXTOK,
    OPT_MODE,
    OPT_ALPHA,
    OPT_DEPTH,
    OPT_CTX,
    OPT_ANSWER_K
};

static int parse_opts(int argc, char **argv, struct eval_cmd_opts *o)
{
    static const struct option longopts[] = {
        { "top-k", required_argument, NULL, 'k' },
        { "split", required_argument, NULL, OPT_SPLIT },
        { "max-questions", required_argument, NULL, OPT_MAXQ },
        { "sample", required_argument, NULL, OPT_SAMPLE },
        { "chunker", required_argument, NULL, 'c' },
        { "max-tokens", required_argument, NULL, OPT_MAXTOK },
        { "keep-store", required_argument, NULL, OPT_KEEP },
        { "retrieval-only", no_argument, NULL, OPT_RETRIEVAL },
        { "mode", required_argument, NULL, OPT_MODE },
        { "alpha", required_argument, NULL, OPT_ALPHA },
        { "depth", required_argument, NULL, OPT_DEPTH },
        { "model", required_argument, NULL, 'm' },
        { "ctx", required_argument, NULL, OPT_CTX },
        { "answer-k", required_argument, NULL, OPT_ANSWER_K },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rag_err err = { 0 };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:c:m:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (parse_size(optarg, 1, 1000, &o->k))
                return cmd_usage_error(eval_usage, "eval: invalid --top-k '%s'", optarg);
            break;
        case OPT_SPLIT:
            o->load.split = optarg;
            break;
        case OPT_SAMPLE:
            o->load.sample_seed = EVAL_BOOTSTRAP_SEED;
            /* fall through */
        case OPT_MAXQ:
            if (parse_size(optarg, 1, SIZE_MAX, &o->load.max_questions))
                return cmd_usage_error(eval_usage, "eval: invalid question count '%s'", optarg);
            break;
        case 'c':
            if (chunker_from_name(optarg, &o->pipe.chunk.kind, &err))
                return cmd_usage_error(eval_usage, "eval: %s", err.msg);
            break;
        case OPT_MAXTOK:
            if (parse_size(optarg, 16, 8192, &o->pipe.chunk.max_tokens))
                return cmd_usage_error(eval_usage, "eval: invalid --max-tokens '%s'", optarg);
            break;
        case OPT_KEEP:
            o->keep_store = optarg;
            break;
        case OPT_RETRIEVAL:
            o->retrieval_only = true;
            break;
        case 'm':
            o->ask.model = optarg;
            break;
        case OPT_CTX:
            if (parse_size(optarg, 256, 1 << 20, &o->ask.n_ctx))
                return cmd_usage_error(eval_usage, "eval: invalid --ctx '%s'", optarg);
            break;
        case OPT_ANSWER_K:
            if (parse_size(optarg, 1, 100, &o->ask.k))
                return cmd_usage_error(eval_usage, "eval: invalid --answer-k '%s'", optarg);
            break;
        case OPT_MODE:
        case OPT_ALPHA:
        case OPT_DEPTH:
            if (cmd_query_opt(c == OPT_MODE  ? "mode" :
                              c == OPT_ALPHA ? "alpha" :
                                               "depth",
                              optarg, &o->q, &err))
                return cmd_usage_error(eval_usage, "eval: %s", err.msg);
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            return -1;
        default:
            return cmd_option_error(eval_usage, "eval", c, argv);
        }
    }
    if (optind + 1 != argc)
        return cmd_usage_error(eval_usage, "eval: expected exactly one DATASET folder");
    return 0;
}

static int run(struct eval_run *e, const char *dataset, const struct eval_cmd_opts *o,
               const struct globals *g, const char *store_dir, struct rag_err *err)
{
    struct ctx_opts co = { .store_dir = store_dir,
                           .vectors = o->q.mode != RETR_MODE_BM25,
                           .tokenizer = true };
    struct pipeline_opts po = o->pipe;
    int rc = eval_dataset_load(&e->ds, dataset, &o->load, err);

    if (!rc)
        rc = ctx_open(&e->x, g, &co, err);
    ctx_chunker_opts(&e->x, &po.chunk);
    e->chunk = po.chunk;
    if (!rc)
        rc = eval_ingest_docs(e, &po, g, err);
    if (!rc)
        rc = eval_search_questions(e, &o->q, o->k, g, err);
    if (!rc && !o->retrieval_only && e->ds->n_answers) {
        ctx_close(&e->x); /* the asker opens the scratch store with the generator */
        rc = answer_all(e, o, g, store_dir, err);
    }
    if (!rc)
        (o->json ? print_json : print_table)(e, dataset, o);
    return rc;
}

int cmd_eval(int argc, char **argv, const struct globals *g)
{
    struct eval_cmd_opts o = { .k = 5,
                               .q = RETR_QUERY_OPTS_DEFAULT,
                               .ask = ASK_OPTS_DEFAULT,
                               .pipe = { .chunk = CHUNKER_OPTS_DEFAULT } };
    struct eval_run e = { 0 };
    struct rag_err err = { 0 };
    struct buf dir = BUF_INIT;
    const char *tmp = getenv("TMPDIR");
    int rc;

    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? cmd_usage(eval_usage) : rc;
    if (o.keep_store) {
        buf_appends(&dir, o.keep_store);
    } else {
        buf_appendf(&dir, "%s/rag-eval.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir.data))
            return cmd_failf("cannot create a scratch store in '%s': %s", dir.data,
                             strerror(errno));
    }
    e.acc = eval_acc_new();
    rc = run(&e, argv[optind], &o, g, dir.data, &err);
    ctx_close(&e.x);
    if (!o.keep_store)
        cmd_remove_tree(dir.data);
    eval_acc_free(e.acc);
    eval_dataset_free(e.ds);
    buf_release(&dir);
    return rc ? cmd_fail(&err) : CMD_OK;
}
