/*
 * gpu/gpu_cuda.h - internal to gpu/: the context struct and the extern "C"
 * functions that the .cu files export to gpu.c.
 *
 * gpu.c checks every argument (shapes against buffer sizes, alignment) and
 * then calls these with plain device pointers; they do no validation beyond
 * what CUDA itself reports. Each returns 0 or RAG_EGPU with the message of
 * cudaGetErrorString() and the operation it belongs to, and never exits.
 * Launchers compute the grid, launch on the context's stream and check
 * cudaGetLastError(); kernel faults surface at the next gpu_cuda_sync() or
 * copy. Plain C so that gpu.c can include it; no CUDA type appears here.
 * A .cu file includes <cuda_runtime.h> and its other system headers before
 * this one, so that base/banned.h's macros come after the C++ headers.
 */
#ifndef GPU_GPU_CUDA_H
#define GPU_GPU_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu/gpu.h"

#define CEIL_DIV(a, b) (((a) + (b)-1) / (b))

/* Device floats for the per-block partial sums of one reduction. */
#define GPU_SCRATCH_FLOATS 1024

struct gpu {
    int device;
    void *stream;         /* cudaStream_t, non-blocking; every copy and kernel runs on it */
    float *scratch;       /* (GPU_SCRATCH_FLOATS) device memory owned by the context */
    void *gemm;           /* gemm.cu's state: cuBLASLt handle, workspace, plan cache */
    bool capturing;       /* between gpu_capture_begin() and gpu_capture_end() */
    struct gpu_info info; /* properties read at open; mem_free is refreshed by gpu_info() */
};

/* Arguments of gpu_cuda_rope_kv(), checked by gpu/launch.c. */
struct gpu_cuda_rope {
    const float *qkv;
    float *q_out;
    const int32_t *pos, *slots;
    const float *inv_freq;
    void *k_cache, *v_cache;
    enum gpu_dtype kv_type;
    enum gpu_rope_type rope_type;
    size_t n_tokens, n_heads, n_kv_heads, head_dim, n_blocks;
};

/* Arguments of the attention launchers, checked by gpu/launch.c. */
struct gpu_cuda_attn {
    const float *q;
    void *k_cache, *v_cache;      /* written only by gpu_attn_decode_rope() */
    const float *qkv, *inv_freq;  /* gpu_attn_decode_rope() only, else NULL */
    enum gpu_rope_type rope_type; /* gpu_attn_decode_rope() only */
    enum gpu_dtype kv_type;
    const int32_t *block_tables; /* decode: (n_seqs, max_blocks); prefill: one table */
    const int32_t *lens;         /* decode only */
    void *out;
    enum gpu_dtype out_type;
    float *work;               /* decode only */
    size_t n_seqs, max_blocks; /* decode only */
    size_t split, n_splits;    /* decode only: tokens per split, splits per sequence */
    size_t n_tokens, pos0;     /* prefill only */
    size_t n_heads, n_kv_heads, head_dim, n_blocks;
    float scale;
};

/* Arguments of gpu_cuda_gemv(), checked by gpu/launch.c. */
enum gpu_cuda_gemv_input { GPU_CUDA_GEMV_A, GPU_CUDA_GEMV_RMSNORM };

struct gpu_cuda_gemv {
    enum gpu_cuda_gemv_input input;
    const void *src;   /* a (m, k) ab_type; x (m, k) fp32 */
    const float *norm; /* RMSNorm gain (k) */
    float eps;
    const void *w, *bias;
    enum gpu_dtype ab_type, c_type;
    void *c;
    size_t m, n, k;
    float beta;
    bool glu; /* w has 2 n rows, c = silu(a . w[j]) * (a . w[n + j]) (no bias, beta 0) */
};

/* ---- gpu/device.cu: runtime, memory, copies ---- */

/*
 * RAG_EGPU with "<fmt ...>: <cudaGetErrorString(cuda_error)>"; also clears
 * CUDA's last-error state so the next launch check does not see it again.
 */
int gpu_cuda_errf(struct rag_err *err, int cuda_error, const char *fmt, ...) RAG_PRINTF(3, 4);

/* Number of devices; RAG_EGPU with the CUDA reason when it cannot be read. */
int gpu_cuda_count(int *ret_n, struct rag_err *err);
/* Select device, read g->info, create the stream and scratch. */
int gpu_cuda_init(struct gpu *g, int device, struct rag_err *err);
/* Destroy what gpu_cuda_init() made; copes with a half-built context. */
void gpu_cuda_release(struct gpu *g);
int gpu_cuda_mem_info(struct gpu *g, size_t *ret_free, size_t *ret_total, struct rag_err *err);
int gpu_cuda_alloc(struct gpu *g, size_t bytes, void **ret, struct rag_err *err);
void gpu_cuda_free(struct gpu *g, void *p);
/* Ordered after the stream's work; returns when the copy is done. */
int gpu_cuda_copy(struct gpu *g, void *dst, const void *src, size_t bytes, bool to_device,
                  struct rag_err *err);
int gpu_cuda_sync(struct gpu *g, struct rag_err *err);
int gpu_cuda_copy_device(struct gpu *g, void *dst, const void *src, size_t bytes,
                         struct rag_err *err);

/* ---- gpu/graph.cu: stream capture, one empty kernel ---- */

int gpu_cuda_noop(struct gpu *g, struct rag_err *err);
int gpu_cuda_capture_begin(struct gpu *g, struct rag_err *err);
int gpu_cuda_capture_end(struct gpu *g, struct gpu_graph **ret, struct rag_err *err);
int gpu_cuda_graph_launch(struct gpu *g, const struct gpu_graph *graph, struct rag_err *err);
void gpu_cuda_graph_free(struct gpu *g, struct gpu_graph *graph);
size_t gpu_cuda_graph_kernels(const struct gpu_graph *graph);

/* ---- gpu/vec.cu: vector kernels (shapes are documented in gpu.h) ---- */

int gpu_cuda_axpy(struct gpu *g, size_t n, float a, const float *x, float *y, struct rag_err *err);
int gpu_cuda_l2_normalize_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t dim,
                               struct rag_err *err);
int gpu_cuda_dot(struct gpu *g, size_t n, const float *x, const float *y, float *out,
                 struct rag_err *err);

/* ---- model kernels (shapes are documented in gpu.h, checked in launch.c) ---- */

/* gpu/gemm.cu: cuBLASLt handle and workspace, made at gpu_open(). */
int gpu_cuda_gemm_init(struct gpu *g, struct rag_err *err);
void gpu_cuda_gemm_release(struct gpu *g);
int gpu_cuda_gemm(struct gpu *g, const void *a, const void *w, enum gpu_dtype ab_type,
                  const void *bias, void *c, enum gpu_dtype c_type, size_t m, size_t n, size_t k,
                  float beta, struct rag_err *err);
/* gpu/gemv.cu: m <= GPU_GEMV_M_MAX rows on tensor cores. */
int gpu_cuda_gemv(struct gpu *g, const struct gpu_cuda_gemv *a, struct rag_err *err);
int gpu_cuda_convert(struct gpu *g, const void *src, enum gpu_dtype src_type, void *dst,
                     enum gpu_dtype dst_type, size_t n, struct rag_err *err);
int gpu_cuda_rmsnorm(struct gpu *g, float *x, const float *r, const float *w, void *out,
                     enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                     struct rag_err *err);
int gpu_cuda_swiglu(struct gpu *g, const void *gu, enum gpu_dtype gu_type, void *out,
                    enum gpu_dtype out_type, size_t n_rows, size_t ff, struct rag_err *err);
int gpu_cuda_softmax_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t n,
                          float scale, struct rag_err *err);
int gpu_cuda_argmax_rows(struct gpu *g, const float *x, int32_t *ids, size_t n_rows, size_t n,
                         struct rag_err *err);
int gpu_cuda_embed_rows(struct gpu *g, const void *table, enum gpu_dtype table_type, size_t n_vocab,
                        size_t dim, const int32_t *ids, size_t n_ids, float scale, float *out,
                        struct rag_err *err);
int gpu_cuda_rope_kv(struct gpu *g, const struct gpu_cuda_rope *a, struct rag_err *err);
int gpu_cuda_attn_decode(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err);
int gpu_cuda_attn_prefill(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err);

/* ---- gpu/encoder.cu: BERT encoder kernels (checked in gpu/encoder.c) ---- */

int gpu_cuda_bert_embed(struct gpu *g, const struct gpu_bert_embeddings *emb, const int32_t *ids,
                        size_t n_seqs, size_t seq_len, float *h, void *out, enum gpu_dtype out_type,
                        struct rag_err *err);
int gpu_cuda_layernorm(struct gpu *g, float *h, const void *t, enum gpu_dtype t_type,
                       const float *gamma, const float *beta, void *out, enum gpu_dtype out_type,
                       size_t n_rows, size_t dim, float eps, struct rag_err *err);
int gpu_cuda_bias_gelu(struct gpu *g, void *x, enum gpu_dtype type, const float *bias,
                       size_t n_rows, size_t n, struct rag_err *err);
int gpu_cuda_attn_encoder(struct gpu *g, const void *qkv, const int32_t *lens, size_t n_seqs,
                          size_t seq_len, size_t n_heads, size_t head_dim, float scale, void *out,
                          struct rag_err *err);
int gpu_cuda_bert_pool(struct gpu *g, const float *h, const int32_t *lens, size_t n_seqs,
                       size_t seq_len, size_t dim, enum gpu_pooling pooling, float *out,
                       struct rag_err *err);

#ifdef __cplusplus
}
#endif

/*
 * Argument checks shared by launch.c and encoder.c, each RAG_EINVAL with a
 * message naming the function op and the buffer or shape: n elements of size
 * bytes fit b, which is aligned to align; *ret = a * b * c without overflow;
 * the first a_bytes of a and b_bytes of b do not share memory (NULL passes).
 */
int gpu_check_buf(const char *op, const char *name, const struct gpu_buf *b, size_t n, size_t size,
                  size_t align, struct rag_err *err);
int gpu_check_product(const char *op, const char *what, size_t a, size_t b, size_t c, size_t *ret,
                      struct rag_err *err);
int gpu_check_no_overlap(const char *op, const char *na, const struct gpu_buf *a, size_t a_bytes,
                         const char *nb, const struct gpu_buf *b, size_t b_bytes,
                         struct rag_err *err);

#endif
