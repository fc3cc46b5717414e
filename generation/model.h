/*
 * generation/model.h - the model struct shared by model.c (loading) and
 * forward_cpu.c (evaluation); internal to generation/.
 *
 * Weights point into the GGUF mapping (struct quant_mat). Small vectors
 * (norm gains, biases), the RoPE table, the KV cache and every activation
 * buffer are carved from one allocation made at open.
 */
#ifndef GENERATION_MODEL_H
#define GENERATION_MODEL_H

#include "generation/generation.h"
#include "generation/gguf.h"
#include "generation/quant.h"

/* Tokens evaluated per matrix-matrix batch, and query rows per attention tile. */
#define MODEL_UBATCH   512
#define MODEL_ATT_ROWS 64

struct model_layer {
    struct quant_mat wq, wk, wv;   /* (q_dim | kv_dim, dim) */
    struct quant_mat wo;           /* (dim, q_dim) */
    struct quant_mat w_gate, w_up; /* (ffn_dim, dim) */
    struct quant_mat w_down;       /* (dim, ffn_dim) */
    float *attn_norm, *ffn_norm;   /* (dim) */
    float *bq, *bk, *bv;           /* (q_dim), (kv_dim), (kv_dim); qwen2 only, else NULL */
    float *k_cache, *v_cache;      /* (n_ctx, kv_dim) */
};

struct model_act {
    float *x, *xn;              /* (ub, dim) */
    float *q, *att;             /* (ub, q_dim) */
    float *k, *v;               /* (ub, kv_dim) */
    float *gate, *up;           /* (ub, ffn_dim) */
    float *out;                 /* (ub, dim) */
    float *scores;              /* (n_threads, MODEL_ATT_ROWS, n_ctx) */
    float *tmp;                 /* (n_threads, QUANT_TILE_ROWS, max(dim, q_dim, ffn_dim)) */
    float *rope_cos, *rope_sin; /* (n_ctx, n_rot / 2) */
    float *xsum;                /* (max(dim, q_dim, ffn_dim) / 32) block sums of a matvec input */
};

struct gen_model {
    struct gguf *gguf;
    struct gen_model_info info;
    size_t q_dim, kv_dim, n_rot, ub;
    bool rope_neox;
    struct model_layer *layer; /* (n_layers) */
    struct quant_mat tok_embd; /* (n_vocab, dim) */
    struct quant_mat output;   /* (n_vocab, dim); tok_embd when tied */
    float *output_norm;        /* (dim) */
    struct model_act act;
    float *mem; /* the one allocation */
    enum quant_isa isa;
    size_t kv_len;
    int nt; /* threads of the running gen_eval step */
    /*
     * Decode thread count: every DECODE_PROBE-th token runs with the other
     * choice (1 or n_threads) and the faster average wins. On a busy machine
     * one thread beats two that keep waiting for each other at barriers.
     */
    struct {
        int cur;
        unsigned step;
        double avg[2]; /* seconds per token: [0] one thread, [1] n_threads; 0 = unknown */
    } tune;
};

/* forward_cpu.c: evaluate tokens at pos (arguments already checked). */
void model_forward(struct gen_model *m, const int32_t *tokens, size_t n, size_t pos, float *logits);

#endif
