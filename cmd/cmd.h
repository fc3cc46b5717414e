/*
 * cmd/cmd.h - the rag tool: one file per command, shared option plumbing,
 * the ingest pipeline and JSON output. This is the only folder that prints
 * or exits; libraries return codes and messages that end up here.
 */
#ifndef CMD_CMD_H
#define CMD_CMD_H

#include "base/base.h"
#include "chunking/chunking.h"
#include "generation/generation.h"
#include "retrieval/retrieval.h"
#include "store/store.h"

/* Global options, parsed by main() before the subcommand. */
/* The order of enum gen_device and enum retr_device, so a value converts to either. */
enum cmd_device { CMD_DEVICE_AUTO, CMD_DEVICE_CPU, CMD_DEVICE_GPU };

struct globals {
    const char *store_dir;    /* --store, $RAG_STORE, or $XDG_DATA_HOME/rag/default */
    const char *models_dir;   /* $RAG_MODELS or $XDG_CACHE_HOME/rag/models */
    const char *embedder_dir; /* --embedder, or NULL: models_dir/CMD_EMBEDDER_DEFAULT */
    int progress;             /* -1 auto (stderr is a tty), 0 never, 1 always */
    enum cmd_device device;   /* --device or $RAG_DEVICE: where the models run */
};

#define CMD_EMBEDDER_DEFAULT  "all-minilm-l6-v2"
#define CMD_GENERATOR_DEFAULT "smollm2-135m-instruct-q4_1.gguf"

/* pipeline.c: a document chunked and waiting for its vectors and its store write. */
struct pending {
    struct store_doc meta;     /* strings in arena */
    struct store_chunk *chunk; /* (n), texts in arena */
    size_t n;
    struct arena arena;
};

struct pipeline_queue {
    struct pending *item;
    size_t n, cap;
    size_t n_chunks;
};
/* Chunks embedded together: enough to keep the CPU's threads busy, or the GPU. */
#define PIPELINE_BATCH     64
#define PIPELINE_BATCH_GPU 1024

/*
 * context.c: what a command works on. The embedder and the vector index are
 * opened only when vectors are wanted; the index is checked against the
 * store and rebuilt from its vectors when they disagree (with a warning).
 */
struct rag_ctx {
    struct store *store;
    struct retr_embedder *embedder; /* NULL without vectors (and no tokenizer wanted) */
    struct retr_index *index;       /* NULL without vectors */
    int64_t model_id;               /* the embedder's row in the store */
    struct buf index_path;
    bool index_dirty;            /* changed since opened: save before closing */
    struct pipeline_queue queue; /* documents chunked but not yet stored */
};

struct ctx_opts {
    const char *store_dir; /* NULL: the global store */
    bool vectors;          /* open the embedder and the index */
    bool tokenizer;        /* open the embedder, if there is one, to count chunk tokens */
    const char *factory;   /* FAISS factory for a new index; NULL: the store's or "Flat" */
    bool rebuild;          /* build the index anew from the stored vectors */
};

int ctx_open(struct rag_ctx *c, const struct globals *g, const struct ctx_opts *o,
             struct rag_err *err);
/* Write the index if it changed (temporary file, fsync, rename). */
int ctx_save_index(struct rag_ctx *c, struct rag_err *err);
void ctx_close(struct rag_ctx *c);
/*
 * Rank query in the context's store: the fused results go to f (room for
 * q->k) and their chunks' documents, spans and headings are appended to hits,
 * in the same order.
 */
int ctx_rank(struct rag_ctx *x, const char *query, const struct retr_query_opts *q,
             struct retr_fused *f, struct store_hit_list *hits, struct rag_err *err);
/* Parse the retrieval option --NAME (mode, depth or alpha) into q. */
int cmd_query_opt(const char *name, const char *arg, struct retr_query_opts *q,
                  struct rag_err *err);
/* Count chunk sizes with the embedder's tokenizer and cap them at its input limit. */
void ctx_chunker_opts(const struct rag_ctx *c, struct chunker_opts *o);

typedef int cmd_fn(int argc, char **argv, const struct globals *g);

cmd_fn cmd_ingest, cmd_search, cmd_chunk, cmd_stats, cmd_rm, cmd_eval, cmd_help, cmd_reindex,
    cmd_ask, cmd_models;

/* Exit statuses (STYLE.md 6). */
enum { CMD_OK = 0, CMD_FAIL = 1, CMD_USAGE = 2 };

/* ---- cli.c: messages, usage and options ---- */

/* "rag: error: <msg>" on stderr; returns CMD_FAIL. */
int cmd_fail(const struct rag_err *err);
int cmd_failf(const char *fmt, ...) RAG_PRINTF(1, 2);
/* "rag: warning: ..." on stderr. */
void cmd_warn(const char *fmt, ...) RAG_PRINTF(1, 2);
/* Usage text to stdout; returns CMD_OK (for --help). */
int cmd_usage(const char *usage);
/* "rag NAME: <msg>" and the usage on stderr; returns CMD_USAGE. */
int cmd_usage_error(const char *usage, const char *fmt, ...) RAG_PRINTF(2, 3);
/*
 * The usage error of command cmd for what getopt_long() returned in c about
 * argv[optind - 1]: ':' (optstring starting with ':') for an option without
 * its value, anything else for an unknown option.
 */
int cmd_option_error(const char *usage, const char *cmd, int c, char *const *argv);
/* Whether to draw progress on stderr. */
bool cmd_show_progress(const struct globals *g);
/* Remove a directory tree (best effort), e.g. a scratch store. */
void cmd_remove_tree(const char *path);
/* Open the store of g (messages name it). */
int cmd_store_open(const struct globals *g, struct store **ret, struct rag_err *err);

/* A one-line progress bar on stderr: label, done/total units, bytes, rate, ETA. */
struct progress {
    const char *label;
    const char *unit; /* "files", "chunks", ... */
    bool enabled;
    double start, last_draw;
    size_t done, total;
    uint64_t bytes;
    size_t chunks; /* chunks made so far (drawn with their rate when non-zero) */
};
void progress_start(struct progress *p, const char *label, const char *unit, size_t total,
                    bool enabled);
void progress_update(struct progress *p, size_t done, uint64_t bytes);
void progress_end(struct progress *p);

/* ---- pipeline.c: read, chunk and store one document ---- */

struct pipeline_opts {
    struct chunker_opts chunk;
    size_t max_file_bytes; /* larger files are skipped */
    bool force;            /* re-read files even when their SHA-256 is unchanged */
};

/* What happened to one file; strings borrowed from the pipeline's arena. */
enum pipeline_status {
    PIPE_ADDED,
    PIPE_CHANGED,
    PIPE_UNCHANGED,
    PIPE_REMOVED,
    PIPE_SKIPPED, /* binary, too large, unreadable: err says why */
};
const char *pipeline_status_name(enum pipeline_status s);

struct pipeline_result {
    enum pipeline_status status;
    size_t n_chunks;
    uint64_t bytes;      /* bytes of text read */
    size_t n_repaired;   /* invalid UTF-8 bytes replaced */
    const char *chunker; /* the chunker used (static string) */
    struct rag_err err;  /* for PIPE_SKIPPED */
};

/*
 * Bring the store's copy of the file at path (absolute) up to date: skip it
 * when its SHA-256 is unchanged, else read, chunk and store it. With dry_run
 * only the status is computed. Skipped files are not errors (ret->err tells
 * why); a store failure is returned.
 */
int pipeline_file(struct rag_ctx *c, const char *path, const struct pipeline_opts *o, bool dry_run,
                  struct pipeline_result *ret, struct rag_err *err);
/*
 * Store an in-memory document (datasets): text of format fmt under the key
 * path, replacing an earlier version unless it is current (same text, same
 * chunker, no force).
 */
int pipeline_text(struct rag_ctx *c, const char *path, const char *title, const char *text,
                  size_t len, enum chunk_format fmt, const struct pipeline_opts *o,
                  struct pipeline_result *ret, struct rag_err *err);

/* Embed and store the queued documents (each in its own savepoint). */
int pipeline_flush(struct rag_ctx *c, struct rag_err *err);
void pipeline_queue_release(struct pipeline_queue *q);
/* Remove the document at path from the store and its vectors from the index. */
int pipeline_remove(struct rag_ctx *c, const char *path, struct rag_err *err);

/* ---- answer.c: retrieve, prompt, generate, check citations ---- */

struct ask_opts {
    size_t k; /* candidate chunks offered to the prompt */
    enum retr_mode mode;
    const char *model; /* GGUF path; NULL: models_dir/CMD_GENERATOR_DEFAULT */
    size_t n_ctx, max_tokens, n_threads;
    size_t n_seqs; /* answers generated at once by asker_ask_batch (0 = 1) */
    struct gen_sampler_opts sampler;
    double min_score;   /* weak-evidence threshold on the best dense score; 0: off */
    const char *system; /* instructions; NULL: GEN_PROMPT_SYSTEM_DEFAULT */
    bool json;
};
/* Greedy with a mild repetition penalty: small models otherwise loop on a sentence. */
#define ASK_SAMPLER_DEFAULT                                                                 \
 {                                                                                          \
  .temperature = 0.0f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.1f, \
  .repeat_last_n = 64                                                                       \
 }
#define ASK_OPTS_DEFAULT                                                 \
 {                                                                       \
  .k = 8, .mode = RETR_MODE_HYBRID, .n_ctx = 2048, .max_tokens = 256,    \
  .sampler = ASK_SAMPLER_DEFAULT, .min_score = GEN_WEAK_EVIDENCE_DEFAULT \
 }

/* A retrieved chunk as offered to the prompt; strings in the result's arena. */
struct ask_source {
    int64_t chunk_id;
    const char *path, *heading, *text;
    size_t len, byte_start, byte_end;
    int page_start, page_end;
    double score;                 /* fused (or single-list) score */
    size_t bm25_rank, dense_rank; /* 1-based, 0 when absent from that list */
    double dense_score;           /* cosine similarity, when dense_rank */
    bool in_prompt, cited;
};

struct ask_result {
    struct arena arena;
    const char *question;
    struct ask_source *source; /* candidates, best first; prompt order for [n] */
    size_t n_sources;
    struct buf answer;
    const char **problem; /* citation problems, one line each */
    size_t n_problems;
    bool weak, abstained;
    bool embed_gpu, gen_gpu; /* where the embedder and the generator ran */
    size_t budget, prompt_tokens, reused_tokens, gen_tokens;
    double search_s, prefill_s, decode_s, ttft_s, total_s;
    struct retr_query_stats retrieval; /* search_s split into BM25, query embedding, dense */
    enum gen_stop stopped;
};
void ask_result_init(struct ask_result *r);
void ask_result_release(struct ask_result *r);

struct asker; /* the store, embedder, index, model, tokenizer and sampler of a session */

int asker_open(struct asker **ret, const struct globals *g, const struct ask_opts *o,
               struct rag_err *err);
void asker_close(struct asker *a);
/*
 * Answer question. retrieval_query (NULL: the question) is what is
 * searched, e.g. a follow-up rewritten with the conversation. on_text
 * streams the answer (may be NULL). interrupt stops generation when set.
 */
int asker_ask(struct asker *a, const char *question, const char *retrieval_query,
              int (*on_text)(void *ctx, const char *text, size_t len), void *ctx,
              struct ask_result *r, struct rag_err *err);
/*
 * Answer questions[0..n) together (n <= ask_opts.n_seqs, or 1): each is
 * retrieved and prompted, then all answers are generated as one batch
 * (gen_generate_batch), the throughput mode of `rag eval` on a GPU. Their
 * ttft_s and total_s count from the start of the batch.
 */
/* Questions asker_ask_batch() takes at once: 1 unless the model runs on a GPU. */
size_t asker_batch(const struct asker *a);
int asker_ask_batch(struct asker *a, const char *const *questions, size_t n, struct ask_result *r,
                    struct rag_err *err);
void asker_set_interrupt(struct asker *a, const volatile int *flag);

/* ---- eval_search.c, eval_answer.c: the halves of `rag eval` ---- */

struct eval_dataset;
struct eval_acc;

/* One run of `rag eval`: the dataset, its scratch store and the scores so far. */
struct eval_run {
    struct eval_dataset *ds;
    struct chunker_opts chunk; /* as used: sizes capped by the embedder */
    struct rag_ctx x;
    struct eval_acc *acc;
    size_t n_chunks;
    uint64_t bytes;
    double ingest_s, search_s;
};

/*
 * Store the documents of e->ds in e->x (chunked as pipe says, unchanged
 * ones of a kept store skipped), counting chunks, bytes and ingest_s.
 */
int eval_ingest_docs(struct eval_run *e, const struct pipeline_opts *pipe, const struct globals *g,
                     struct rag_err *err);
/* Rank every question of e->ds with q and add its scores at cut-off k and at 10 to e->acc. */
int eval_search_questions(struct eval_run *e, const struct retr_query_opts *q, size_t k,
                          const struct globals *g, struct rag_err *err);
/*
 * Answer and score every question of ds (a QA set) with o's retrieval and
 * generation options, in g's store.
 */
int eval_answer_questions(const struct eval_dataset *ds, struct eval_acc *acc,
                          const struct ask_opts *o, const struct globals *g, struct rag_err *err);

/* ask_json.c: the rag.ask/1 trace of a result on stdout. */
void ask_print_json(const struct ask_result *r);
/* chat.c: the interactive session. */
int chat_session(struct asker *a, const struct globals *g, struct rag_err *err);

#endif
