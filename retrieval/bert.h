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

#endif
