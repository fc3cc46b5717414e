/*
 * retrieval/retrieval.h - dense retrieval: a BERT sentence embedder with its
 * WordPiece tokenizer, a FAISS vector index keyed by chunk id, and rank
 * fusion of result lists.
 *
 * Embedder: a sentence-transformers model directory (config.json,
 * model.safetensors, vocab.txt, tokenizer_config.json,
 * sentence_bert_config.json, 1_Pooling/config.json and optionally
 * config_sentence_transformers.json) selects everything: shapes, mean or
 * CLS pooling, the input limit, lowercasing and the query prefix. Vectors
 * are L2-normalised, so a dot product is the cosine. No text is ever cut
 * silently: a text over the limit is an error unless the caller passes
 * RETR_EMBED_TRUNCATE.
 *
 * Index: FAISS through its C API, IndexIDMap2 over any factory string
 * (inner product), ids are the store's chunk ids. Files are written through
 * a temporary file, fsync and rename.
 *
 * Handles are used by one thread at a time; retr_count_tokens is the
 * exception (safe from any thread while the embedder is open).
 */
#ifndef RETRIEVAL_RETRIEVAL_H
#define RETRIEVAL_RETRIEVAL_H

#include "base/base.h"

struct store;

/* ---- embedder ---- */

struct retr_embedder; /* opaque: weights, vocabulary, planned buffers */

enum retr_pooling { RETR_POOLING_MEAN, RETR_POOLING_CLS };

struct retr_embedder_info {
    const char *name; /* model directory base name, e.g. "all-minilm-l6-v2" */
    size_t dim, n_layers, n_heads, vocab;
    size_t max_seq;    /* model input limit with [CLS] and [SEP] (256 for MiniLM) */
    size_t max_tokens; /* word pieces per text: max_seq - 2; chunkers stay within it */
    enum retr_pooling pooling;
    bool lowercase;
    const char *query_prefix; /* prepended with RETR_EMBED_QUERY; "" when none */
    char fingerprint[65];     /* 16 hex digits identifying the files (configs, vocab, weights) */
    size_t device_bytes;      /* GPU memory held (weights and activations); 0 on the CPU */
};

/*
 * Where the encoder runs. AUTO: the GPU when the build has CUDA, a device is
 * present and the model's shape is supported there (head size 32 or 64,
 * hidden size at most 1024), else the CPU. GPU: the GPU or an error. The
 * tokenizer, pooling and normalisation are the same on both; the GPU
 * computes in bf16 with fp32 accumulation and fp32 LayerNorm statistics
 * (cosine >= 0.9999 to the CPU's vectors).
 */
enum retr_device { RETR_DEVICE_AUTO, RETR_DEVICE_CPU, RETR_DEVICE_GPU };

struct retr_embedder_opts {
    size_t n_threads;          /* tokenizing threads, and the CPU encoder's; 0: OpenMP's default */
    size_t batch_tokens;       /* tokens per forward batch (memory is planned for it);
                                  0: 4096 on the CPU, 65536 (padded) on the GPU */
    size_t gpu_pass_tokens;    /* GPU: padded tokens per pass through the layers, which sets
                                  the activation memory; 0: 32768 */
    enum retr_device device;   /* 0: RETR_DEVICE_AUTO */
    bool tokenizer_only;       /* no weights: tokenize and count only (retr_embed fails) */
    rag_progress_fn *progress; /* optional: texts done of total, after each batch */
    void *progress_ctx;
};

/*
 * Load the model in model_dir. RAG_EIO when a file cannot be read and
 * RAG_EFORMAT when one is corrupt or unsupported; the message names the
 * file (and the tensor or key). RAG_EINVAL for an unknown device. With
 * RETR_DEVICE_GPU: RAG_ENOSYS (built without CUDA) or RAG_EGPU (no device,
 * or a CUDA failure), "embedder '<name>': device gpu requested: <why>", and
 * RAG_EINVAL when the model's shape is not supported on the GPU. opts may
 * be NULL. Close with retr_embedder_close.
 */
int retr_embedder_open(struct retr_embedder **ret, const char *model_dir,
                       const struct retr_embedder_opts *opts, struct rag_err *err);
void retr_embedder_close(struct retr_embedder *e); /* NULL is a no-op */
/* Whether the encoder runs on the GPU. */
bool retr_embedder_on_gpu(const struct retr_embedder *e);
/* Valid until retr_embedder_close. */
const struct retr_embedder_info *retr_embedder_info(const struct retr_embedder *e);

enum retr_embed_flags {
    RETR_EMBED_QUERY = 1 << 0,    /* prepend the model's query prefix (queries, not passages) */
    RETR_EMBED_TRUNCATE = 1 << 1, /* keep the first max_tokens pieces of longer texts */
};

/*
 * Embed texts[i][0..lens[i]) (lens NULL: NUL-terminated) into out[i * dim ..
 * (i + 1) * dim), L2-normalised. Without RETR_EMBED_TRUNCATE a text with more
 * than max_tokens word pieces fails the call with RAG_EINVAL naming its
 * index and token count, and out is left unspecified. On the GPU, RAG_EGPU
 * when CUDA fails; the embedder must then be closed.
 */
int retr_embed(struct retr_embedder *e, const char *const *texts, const size_t *lens, size_t n,
               unsigned flags, float *out, struct rag_err *err);

/*
 * Word pieces in text[0..len), without [CLS] and [SEP] or a prefix: the
 * count function of struct chunk_tokenizer (ctx is the embedder).
 */
size_t retr_count_tokens(void *embedder, const char *text, size_t len);

struct retr_span {
    size_t start, end; /* byte range in the input text */
};

/*
 * The model input for text as retr_embed builds it: [CLS], the prefix with
 * RETR_EMBED_QUERY, the pieces, [SEP]. Writes the first cap ids (and spans,
 * if not NULL; special tokens and prefix pieces get empty spans at 0) and
 * sets *ret_n to the full length. RAG_EINVAL when the text is over the
 * limit and RETR_EMBED_TRUNCATE is not given.
 */
int retr_tokenize(const struct retr_embedder *e, const char *text, size_t len, unsigned flags,
                  int32_t *ids, struct retr_span *spans, size_t cap, size_t *ret_n,
                  struct rag_err *err);
/* The vocabulary entry of id ("##ing", "[CLS]"), or NULL when out of range. */
const char *retr_token_text(const struct retr_embedder *e, int32_t id);

/* ---- vector index ---- */

struct retr_index; /* opaque: owns the FAISS index */

#define RETR_INDEX_FACTORY_DEFAULT "Flat"

/*
 * New empty inner-product index of dimension dim from a FAISS factory
 * string ("Flat", "HNSW32,Flat", "IVF4096,PQ48", NULL for the default),
 * wrapped in IndexIDMap2 unless the string starts with "IDMap".
 * RAG_EINDEX with FAISS's message.
 */
int retr_index_new(struct retr_index **ret, size_t dim, const char *factory, struct rag_err *err);
/*
 * Read an index file written by retr_index_save (a checksummed header, then
 * FAISS's own format). RAG_ENOTFOUND when path does not exist, RAG_EINDEX
 * ("read index '<path>': ...") when it is truncated, corrupt or not an
 * index; FAISS never sees a file whose size or checksum is wrong.
 */
int retr_index_open(struct retr_index **ret, const char *path, struct rag_err *err);
void retr_index_close(struct retr_index *x); /* NULL is a no-op */

size_t retr_index_count(const struct retr_index *x);
size_t retr_index_dim(const struct retr_index *x);
/* True for an empty IVF or PQ index: its first add trains it on those vectors. */
bool retr_index_needs_training(const struct retr_index *x);

/*
 * Add vecs[i * dim ..] under ids[i], i < n. An index that needs training
 * (IVF, PQ) is trained on these vectors first. RAG_EINDEX on failure.
 */
int retr_index_add(struct retr_index *x, const int64_t *ids, const float *vecs, size_t n,
                   struct rag_err *err);
/* Remove the vectors of ids[0..n); *ret_removed (may be NULL) gets how many existed. */
int retr_index_remove(struct retr_index *x, const int64_t *ids, size_t n, size_t *ret_removed,
                      struct rag_err *err);
/*
 * Top k for each of n_q queries: ids and scores (inner products) of query
 * i at [i * k, (i + 1) * k), best first; missing results have id -1 and
 * score 0.
 */
int retr_index_search(const struct retr_index *x, const float *queries, size_t n_q, size_t k,
                      int64_t *ids, float *scores, struct rag_err *err);
/* Set a search parameter by name ("efSearch", "nprobe"); RAG_EINDEX when unknown. */
int retr_index_set_param(struct retr_index *x, const char *name, double value, struct rag_err *err);
/* Write to path through path.tmp, fsync and rename. RAG_EIO or RAG_EINDEX. */
int retr_index_save(const struct retr_index *x, const char *path, struct rag_err *err);

struct retr_sync_report {
    bool rebuilt;
    char reason[160]; /* why it was rebuilt, e.g. "index has 10 vectors, store has 12" */
    size_t n;         /* vectors in the index afterwards */
};

/*
 * Open the index at path and check it against the store: same dimension,
 * the store's meta keys "index.model_id" and "index.factory" equal model_id
 * and factory (NULL: the default), and as many vectors as the store holds
 * for the model. When any check fails (or the file is missing or
 * corrupt), rebuild it from the store's vectors, save it and update the
 * meta keys. rep (may be NULL) says what happened, for a warning.
 */
int retr_index_sync(struct retr_index **ret, const char *path, struct store *s, int64_t model_id,
                    size_t dim, const char *factory, struct retr_sync_report *rep,
                    struct rag_err *err);

/* ---- rank fusion ---- */

#define RETR_FUSE_MAX_LISTS 4
#define RETR_RRF_K          60.0

struct retr_ranked {
    int64_t id;
    double score; /* higher is better */
};

/* A ranked list, best first; a repeated id counts at its first position. */
struct retr_list {
    const struct retr_ranked *item;
    size_t n;
};

enum retr_fuse_method {
    RETR_FUSE_RRF,      /* sum over lists of 1 / (k + rank), rank from 1 */
    RETR_FUSE_WEIGHTED, /* sum over lists of weight * min-max normalised score */
};

struct retr_fuse_opts {
    enum retr_fuse_method method;
    double k;                           /* RRF constant; 0: RETR_RRF_K */
    double weight[RETR_FUSE_MAX_LISTS]; /* weighted mix, e.g. { alpha, 1 - alpha } */
};

struct retr_fused {
    int64_t id;
    double score;                             /* fused score, higher is better */
    size_t rank[RETR_FUSE_MAX_LISTS];         /* 1-based rank in each list, 0 when absent */
    double source_score[RETR_FUSE_MAX_LISTS]; /* score in each list, 0 when absent */
};

/*
 * Fuse n_lists (<= RETR_FUSE_MAX_LISTS) lists into out, which must hold the
 * sum of their lengths; *ret_n gets the number of distinct ids. out is
 * sorted by fused score, then best rank in any list, then id. In the
 * weighted mix a list whose scores are all equal normalises them to 1.
 * RAG_EINVAL for too many lists or a negative or non-finite parameter.
 */
int retr_fuse(const struct retr_list *lists, size_t n_lists, const struct retr_fuse_opts *opts,
              struct retr_fused *out, size_t *ret_n, struct rag_err *err);

/* ---- queries ---- */

enum retr_mode { RETR_MODE_HYBRID, RETR_MODE_DENSE, RETR_MODE_BM25 };

const char *retr_mode_name(enum retr_mode m); /* "hybrid", "dense", "bm25" */
int retr_mode_from_name(const char *name, enum retr_mode *ret, struct rag_err *err);

/* What a query runs against; all borrowed. embedder and index may be NULL for BM25. */
struct retr_searcher {
    struct store *store;
    struct retr_embedder *embedder;
    const struct retr_index *index;
};

/* Where a query's time went, in seconds. */
struct retr_query_stats {
    double bm25_s, embed_s, dense_s;
};

struct retr_query_opts {
    enum retr_mode mode;
    size_t k;     /* results wanted */
    size_t depth; /* candidates taken from each list before fusion (at least k) */
    struct retr_fuse_opts fuse;
    struct retr_query_stats *stats; /* optional: receives the timings */
};
#define RETR_QUERY_OPTS_DEFAULT                  \
 {                                               \
  .mode = RETR_MODE_HYBRID, .k = 10, .depth = 50 \
 }

/*
 * Rank the store's chunks for query. out must hold k entries; *ret_n gets
 * how many were found. List 0 of each result is BM25 and list 1 dense in
 * hybrid mode; in a single mode list 0 is that mode and score is its score
 * (BM25, or cosine similarity). The dense query is
 * embedded with the model's query prefix and cut to the model's input
 * limit. RAG_EINVAL when dense or hybrid is asked for without vectors.
 */
int retr_query(const struct retr_searcher *s, const char *query, const struct retr_query_opts *o,
               struct retr_fused *out, size_t *ret_n, struct rag_err *err);

#endif
