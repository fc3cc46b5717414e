/*
 * generation/model.h - the model struct shared by model.c (loading),
 * forward_cpu.c (CPU evaluation) and forward_gpu.c / weights_gpu.c (the
 * CUDA backend); internal to generation/.
 *
 * Weights point into the GGUF mapping (struct quant_mat). Small vectors
 * (norm gains, biases), the RoPE table, the KV caches and every activation
 * buffer are carved from one allocation made at open. On the GPU only the
 * small vectors are kept on the host; struct model_gpu holds the rest in
 * one device allocation.
 */
#ifndef GENERATION_MODEL_H
#define GENERATION_MODEL_H

#include "generation/generation.h"
#include "generation/gguf.h"
#include "generation/quant.h"
#include "gpu/gpu.h"

/* Tokens evaluated per matrix-matrix batch, and query rows per attention tile. */
#define MODEL_UBATCH   512
#define MODEL_ATT_ROWS 64

/* GPU: tokens per prefill chunk at most, and the default n_ctx cap (CPU: 4096). */
#define MODEL_GPU_UBATCH 2048
#define MODEL_GPU_N_CTX  8192
#define MODEL_GPU_BUCKET 16 /* KV blocks of the smallest decode length bucket */

struct model_layer {
    struct quant_mat wq, wk, wv;   /* (q_dim | kv_dim, dim) */
    struct quant_mat wo;           /* (dim, q_dim) */
    struct quant_mat w_gate, w_up; /* (ffn_dim, dim) */
    struct quant_mat w_down;       /* (dim, ffn_dim) */
    float *attn_norm, *ffn_norm;   /* (dim) */
    float *bq, *bk, *bv;           /* (q_dim), (kv_dim), (kv_dim); qwen2 only, else NULL */
    float *k_cache, *v_cache;      /* (n_ctx, kv_dim): the evaluated sequence's part of k_seqs */
    float *k_seqs, *v_seqs;        /* (n_seqs, n_ctx, kv_dim) */
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
    size_t n_seqs;         /* sequences with their own KV cache */
    size_t *seq_len;       /* (n_seqs) tokens in each sequence's cache */
    float *logits_tmp;     /* (n_vocab) CPU gen_decode_batch scratch */
    struct model_gpu *gpu; /* the CUDA backend, NULL on the CPU */
    int nt;                /* threads of the running gen_eval step */
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

/* ---- the CUDA backend (forward_gpu.c, weights_gpu.c) ---- */

/* "dt" below is the model's compute type, struct model_gpu's dtype: fp16 or bf16. */
struct model_gpu_layer {
    struct gpu_buf w_qkv;               /* dt (q_dim + 2 kv_dim, dim): Wq, Wk, Wv rows */
    struct gpu_buf b_qkv;               /* f32 (q_dim + 2 kv_dim); qwen2 only, else empty */
    struct gpu_buf w_o;                 /* dt (dim, q_dim) */
    struct gpu_buf w_gu;                /* dt (2 ffn_dim, dim): gate rows, then up rows */
    struct gpu_buf w_down;              /* dt (dim, ffn_dim) */
    struct gpu_buf attn_norm, ffn_norm; /* f32 (dim) */
    struct gpu_kv_cache kv;             /* dt, n_seqs * seq_blocks blocks */
};

/*
 * Device state. Sequence s owns KV blocks [s * seq_blocks, (s + 1) * seq_blocks),
 * so its block table row is fixed and its token p lives in slot
 * s * seq_blocks * GPU_KV_BLOCK + p. Every per-step value is uploaded into
 * pre or dec before the step, so a decode step of n sequences is one graph
 * replayed unchanged. The decode batch's table rows hold only as many
 * blocks as a length bucket (MODEL_GPU_BUCKET << b blocks, capped at
 * seq_blocks) that fits the longest sequence: the attention kernel splits
 * the keys by the table's width, so short sequences in a long context are
 * not split into mostly empty pieces. One graph per (bucket, n).
 */
struct model_gpu {
    struct gpu *g;
    enum gpu_dtype dtype;          /* weights, GEMM inputs, KV cache: model_gpu_dtype() */
    struct gpu_buf pool;           /* the one device allocation; everything below is carved */
    struct model_gpu_layer *layer; /* (n_layers) */
    struct gpu_buf tok_embd;       /* dt (n_vocab, dim) */
    struct gpu_buf output;         /* dt (n_vocab, dim); tok_embd when tied */
    struct gpu_buf output_norm;    /* f32 (dim) */
    struct gpu_buf inv_freq;       /* f32 (head_dim / 2); 0 past n_rot / 2 */
    size_t ub;                     /* tokens per prefill chunk at most */
    size_t rows;                   /* activation rows: max(ub, n_seqs) */
    size_t seq_blocks;             /* KV blocks per sequence: ceil(n_ctx / GPU_KV_BLOCK) */
    size_t qkv_dim;                /* q_dim + 2 kv_dim */
    struct gpu_buf x;              /* f32 (rows, dim): the residual stream */
    struct gpu_buf xb;             /* dt (rows, dim): normalised GEMM input */
    struct gpu_buf qkv;            /* f32 (rows, qkv_dim) */
    struct gpu_buf q;              /* f32 (rows, q_dim): rotated queries */
    struct gpu_buf att;            /* dt (rows, q_dim) */
    struct gpu_buf gu;             /* f32 (rows, 2 ffn_dim) */
    struct gpu_buf h;              /* dt (rows, ffn_dim) */
    struct gpu_buf logits;         /* f32 (n_seqs, n_vocab) */
    struct gpu_buf next;           /* int32 (n_seqs): argmax of each logits row */
    struct gpu_buf work;           /* decode attention partials, the largest batch's size */
    struct gpu_buf tables;         /* int32 (n_seqs, seq_blocks): every sequence's row */
    struct gpu_buf dec_tables;     /* int32 (n_seqs, bucket width): the decode batch's rows */
    struct gpu_buf pre;            /* int32 (3, ub): a chunk's token ids, positions, slots */
    struct gpu_buf dec;            /* int32 (4, n_seqs): a step's ids, positions, slots, lens */
    int32_t *pre_host, *dec_host;  /* host copies of pre and dec */
    int32_t *table_host;           /* (n_seqs, seq_blocks) host scratch for the tables */
    size_t *dec_seqs;              /* (n_seqs) the sequences dec_tables holds, in order */
    size_t n_dec_seqs, dec_bucket; /* and their count and bucket */
    size_t n_buckets;
    struct gpu_graph **graph; /* (n_buckets, n_seqs + 1): a step of n sequences in bucket b */
    size_t step_kernels;      /* kernels launched by the last decode step */
};

/* bytes of b from byte offset off on (within b). */
static inline struct gpu_buf model_gpu_view(const struct gpu_buf *b, size_t off, size_t bytes)
{
    struct gpu_buf v = { (char *)b->ptr + off, bytes };

    return v;
}

/*
 * Whether the GPU kernels support m's shapes (head_dim 64 or 128, at most 32
 * query heads per kv head, NEOX RoPE over the whole head). RAG_EFORMAT naming
 * the file otherwise.
 */
int model_gpu_supported(const struct gen_model *m, struct rag_err *err);
/* Open the device, allocate and upload the weights (m is loaded, m->gpu NULL). */
int model_gpu_open(struct gen_model *m, struct rag_err *err);
void model_gpu_close(struct gen_model *m); /* m->gpu NULL is a no-op */
/*
 * weights_gpu.c: the compute type of m on the GPU: GPU_BF16 when a matrix
 * is stored as BF16 (fp16 may not hold its range), else GPU_F16 (11
 * significant bits to bf16's 8, for quantized, F16 and F32 weights).
 */
enum gpu_dtype model_gpu_dtype(const struct gen_model *m);
/* Upload every weight of m into the carved buffers of m->gpu, as m->gpu->dtype. */
int model_gpu_upload(struct gen_model *m, struct rag_err *err);
/*
 * Evaluate tokens[0..n) of sequence seq at positions pos.. (prefill in
 * chunks of ub; arguments checked by the caller) and set its length.
 */
int model_gpu_prefill(struct gen_model *m, size_t seq, const int32_t *tokens, size_t n, size_t pos,
                      float *logits, struct rag_err *err);
/* One decode step of n distinct sequences (checked by the caller), lengths advanced. */
int model_gpu_decode(struct gen_model *m, const size_t *seqs, const int32_t *tokens, size_t n,
                     float *logits, int32_t *next, struct rag_err *err);

#endif
