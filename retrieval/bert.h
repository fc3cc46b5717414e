/*
 * retrieval/bert.h - BERT encoder weights and the CPU forward pass
 * (internal to retrieval/).
 *
 * Weights come from config.json and model.safetensors of a Hugging Face
 * BERT checkpoint (names with or without a "bert." prefix). They are copied
 * once into one allocation carved into the pointers below (F16/BF16
 * converted to F32, Q/K/V fused into one matrix). Activations for up to
 * max_tokens packed tokens are one allocation planned at init; the forward
 * pass allocates nothing.
 */
#ifndef RETRIEVAL_BERT_H
#define RETRIEVAL_BERT_H

#include "base/base.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* Runtime dispatch (STYLE: hosts differ): AVX-512, AVX2+FMA or baseline clones. */
# define RETR_SIMD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
# define RETR_SIMD
#endif

struct retr_bert_config {
    size_t dim, n_layers, n_heads, ffn; /* hidden size, layers, heads, intermediate size */
    size_t vocab, n_pos, n_types;       /* embedding table rows */
    float ln_eps;
};

struct retr_bert_layer {
    float *wqkv;          /* (3 * dim, dim): query, key, value rows */
    float *bqkv;          /* (3 * dim) */
    float *wo, *bo;       /* (dim, dim), (dim) */
    float *ln1_g, *ln1_b; /* (dim) */
    float *w1, *b1;       /* (ffn, dim), (ffn) */
    float *w2, *b2;       /* (dim, ffn), (dim) */
    float *ln2_g, *ln2_b; /* (dim) */
};

struct retr_bert {
    struct retr_bert_config c;
    float *weights;                /* the one allocation */
    float *tok_emb;                /* (vocab, dim) */
    float *pos_emb;                /* (n_pos, dim) */
    float *type_emb;               /* (n_types, dim) */
    float *emb_ln_g, *emb_ln_b;    /* (dim) */
    struct retr_bert_layer *layer; /* (n_layers) */
};

/*
 * Read <dir>/config.json and, with weights, <dir>/model.safetensors. RAG_EIO or
 * RAG_EFORMAT with a message naming the file (and the tensor or key).
 * Release with retr_bert_release (also after a failure).
 */
int retr_bert_load(struct retr_bert *m, const char *dir, bool weights, struct rag_err *err);
void retr_bert_release(struct retr_bert *m);
/* Free the host weights (once they live on the GPU), keeping m->c. */
void retr_bert_release_weights(struct retr_bert *m);

struct retr_bert_run {
    size_t max_tokens, max_seq, n_threads;
    float *mem;       /* the one allocation */
    float *h;         /* (max_tokens, dim): hidden states, the output */
    float *qkv;       /* (max_tokens, 3 * dim) */
    float *ctx, *tmp; /* (max_tokens, dim) */
    float *ffn;       /* (max_tokens, ffn) */
    float *scores;    /* (n_threads, max_seq * max_seq) attention scratch */
};

/* Plan buffers for batches of at most max_tokens tokens, sequences of at most max_seq. */
void retr_bert_run_init(struct retr_bert_run *r, const struct retr_bert *m, size_t max_tokens,
                        size_t max_seq, size_t n_threads);
void retr_bert_run_release(struct retr_bert_run *r);

/*
 * Encode n_seq packed sequences: sequence s is ids[start[s] .. start[s+1]),
 * start[n_seq] <= max_tokens, each at most max_seq long, ids < vocab. Each
 * sequence attends only to itself, which is what a padded batch with an
 * attention mask computes. The last hidden states are left in r->h.
 */
void retr_bert_forward(const struct retr_bert *m, struct retr_bert_run *r, const int32_t *ids,
                       const size_t *start, size_t n_seq);

/*
 * ---- the forward pass on the GPU (forward_gpu.c) ----
 *
 * Weights are uploaded once (bf16 matrices, fp32 embeddings, biases and
 * norms) and activations are planned once for pass_tokens padded tokens.
 * A launch takes n_seq sequences padded to seq_len tokens (row s * seq_len
 * + t is token t of sequence s), runs them through the model in passes of
 * at most pass_tokens tokens, pools and L2-normalises each sequence on the
 * device, and returns without waiting; retr_bert_gpu_collect() waits and
 * copies the vectors out. A shape seen twice in a row is captured as a CUDA
 * graph and replayed from then on. After an RAG_EGPU failure the handle
 * must be closed.
 */
struct retr_bert_gpu; /* opaque: device context, weights, activations, graphs */

struct retr_bert_gpu_opts {
    size_t batch_tokens; /* most padded tokens (n_seq * seq_len) per launch */
    size_t pass_tokens;  /* padded tokens per pass through the layers, >= max_seq */
    size_t max_seq;      /* longest sequence */
    bool cls;            /* CLS pooling, else mean pooling */
};

/* 0 when the GPU kernels support m's shape, else RAG_EINVAL saying why. */
int retr_bert_gpu_check(const struct retr_bert_config *c, struct rag_err *err);
/*
 * Open GPU 0 and upload m's weights. Errors: gpu_open()'s (RAG_ENOSYS,
 * RAG_EGPU), then retr_bert_gpu_check()'s, then RAG_EGPU for CUDA failures.
 */
int retr_bert_gpu_open(struct retr_bert_gpu **ret, const struct retr_bert *m,
                       const struct retr_bert_gpu_opts *o, struct rag_err *err);
void retr_bert_gpu_close(struct retr_bert_gpu *r); /* NULL is a no-op */
/* Device bytes held: weights plus activations. */
size_t retr_bert_gpu_bytes(const struct retr_bert_gpu *r);

/*
 * Queue the forward pass of ids (n_seq * seq_len, padding ids < vocab) with
 * lens (n_seq) real lengths in 2..seq_len; n_seq * seq_len <= batch_tokens,
 * seq_len <= max_seq. The host arrays may be reused when this returns.
 */
int retr_bert_gpu_launch(struct retr_bert_gpu *r, const int32_t *ids, const int32_t *lens,
                         size_t n_seq, size_t seq_len, struct rag_err *err);
/* Wait for the last launch; its (n_seq, dim) unit vectors go to out. */
int retr_bert_gpu_collect(struct retr_bert_gpu *r, float *out, struct rag_err *err);

#endif
