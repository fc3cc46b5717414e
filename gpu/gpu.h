/*
 * gpu/gpu.h - the CUDA device: a context with one stream, device memory and
 * the kernels the engine needs. Plain C: no CUDA type or header appears here.
 *
 * A build without CUDA still provides every function: gpu_open() then fails
 * with RAG_ENOSYS and gpu_count() returns 0, so callers fall back to the CPU
 * path without knowing how the program was built.
 *
 * Memory rule: device memory is allocated once per lifetime (model weights,
 * activations plus KV cache, an embedding batch) with gpu_buf_alloc() and
 * carved into named buffers with gpu_buf_carve(), like the host-side tensors
 * (STYLE.md 8). Nothing is allocated inside a token or batch loop. Buffers
 * are owned by whoever allocated them and freed with gpu_buf_free() before
 * gpu_close(); kernels never allocate or free.
 *
 * Ordering: all copies and kernels of one context run in order on its
 * stream. Kernel launches are asynchronous; gpu_upload(), gpu_download() and
 * gpu_sync() wait for the stream, and that is where a failed kernel is
 * reported (RAG_EGPU with the CUDA message). After such a failure the CUDA
 * context is unusable: close it. A context is used by one thread at a time.
 *
 * Kernel arguments are checked before launch: a buffer smaller than its
 * shape, a size product that overflows or a pointer not aligned to 4 bytes
 * gives RAG_EINVAL naming the buffer. Float data is fp32, rows are
 * contiguous (row-major).
 */
#ifndef GPU_GPU_H
#define GPU_GPU_H

#include <stddef.h>

#include "base/base.h"

/* Every buffer from gpu_buf_alloc() and gpu_buf_carve() starts at this alignment. */
#define GPU_ALIGN 256

struct gpu; /* opaque: device index, stream, reduction scratch */

/*
 * Device memory. ptr is a device address (never dereference it on the host);
 * bytes is the usable size. { NULL, 0 } is the empty buffer.
 */
struct gpu_buf {
    void *ptr;
    size_t bytes;
};

struct gpu_info {
    char name[256];         /* e.g. "NVIDIA H200" */
    int device;             /* index passed to gpu_open() */
    int cc_major, cc_minor; /* compute capability, 9.0 for H100/H200 */
    int n_sm;               /* streaming multiprocessors */
    size_t mem_total;       /* bytes */
    size_t mem_free;        /* bytes, read when gpu_info() is called */
    size_t l2_bytes;        /* 0 when unknown */
    int mem_bus_bits;       /* memory bus width in bits, 0 when unknown */
    int mem_clock_khz;      /* peak memory clock, 0 when unknown */
    int driver_version;     /* CUDA version the driver supports, 13000 = 13.0 */
    int runtime_version;    /* CUDA runtime linked in, 13000 = 13.0 */
};

/* Number of usable CUDA devices; 0 without CUDA, without a driver or on error. */
int gpu_count(void);

/*
 * Open device number device (0-based) and create its stream. Errors:
 * RAG_ENOSYS "gpu: built without CUDA"; RAG_EGPU "gpu: no CUDA device (...)"
 * when there is no device or driver; RAG_EINVAL for a negative or too large
 * index; RAG_EGPU for CUDA failures. Close with gpu_close().
 */
int gpu_open(struct gpu **ret, int device, struct rag_err *err);
void gpu_close(struct gpu *g); /* NULL is a no-op; buffers must be freed first */

/* Device properties, with mem_free read now. */
int gpu_info(struct gpu *g, struct gpu_info *ret, struct rag_err *err);

/*
 * One device allocation of bytes (see the memory rule above). bytes == 0
 * gives the empty buffer. RAG_EGPU when the device is out of memory.
 */
int gpu_buf_alloc(struct gpu *g, size_t bytes, struct gpu_buf *ret, struct rag_err *err);
/* Free b (NULL or empty is a no-op) and set it to { NULL, 0 }. */
void gpu_buf_free(struct gpu *g, struct gpu_buf *b);

/*
 * Take bytes from pool at *offset rounded up to GPU_ALIGN, and advance
 * *offset past them. ret borrows pool's memory: it is valid while pool is
 * and is never freed itself. RAG_EINVAL when pool has no room left. A pool
 * for buffers of sizes b1..bn needs sum(gpu_align(bi)) bytes.
 */
int gpu_buf_carve(const struct gpu_buf *pool, size_t *offset, size_t bytes, struct gpu_buf *ret,
                  struct rag_err *err);

/* bytes rounded up to GPU_ALIGN; SIZE_MAX when that overflows. */
static inline size_t gpu_align(size_t bytes)
{
    if (bytes > (size_t)-1 - (GPU_ALIGN - 1))
        return (size_t)-1;
    return (bytes + GPU_ALIGN - 1) / GPU_ALIGN * GPU_ALIGN;
}

/*
 * Copy bytes between host memory and the start of a device buffer, after
 * the work already queued on the stream, and wait for the copy. RAG_EINVAL
 * when bytes exceeds the buffer; RAG_EGPU for a copy or earlier kernel error.
 */
int gpu_upload(struct gpu *g, struct gpu_buf *dst, const void *src, size_t bytes,
               struct rag_err *err);
int gpu_download(struct gpu *g, void *dst, const struct gpu_buf *src, size_t bytes,
                 struct rag_err *err);

/* Wait for the stream; RAG_EGPU with the CUDA message when a kernel failed. */
int gpu_sync(struct gpu *g, struct rag_err *err);

/* Copy bytes between two device buffers, asynchronously, on the stream. */
int gpu_copy(struct gpu *g, struct gpu_buf *dst, const struct gpu_buf *src, size_t bytes,
             struct rag_err *err);

/* Launch one empty kernel: the launch-overhead floor, for benchmarks. */
int gpu_noop(struct gpu *g, struct rag_err *err);

/*
 * CUDA graphs (gpu/graph.cu). Between gpu_capture_begin() and
 * gpu_capture_end() the kernel functions below are recorded instead of run;
 * the graph then replays them with gpu_graph_launch() at the cost of one
 * launch. Kernels read their arguments when they run, so values kept in
 * device memory (positions, lengths, block tables) may change between
 * replays; host-side arguments (pointers, shapes) are frozen at capture.
 * gpu_upload(), gpu_download(), gpu_sync() and gpu_buf_alloc() are refused
 * with RAG_EINVAL while capturing. A capture in which a launch failed gives
 * RAG_EGPU at gpu_capture_end(). Run a sequence once eagerly before
 * capturing it, so that each gpu_gemm() shape has its cuBLASLt plan (host
 * work that should stay out of the capture). Free graphs with
 * gpu_graph_free() before gpu_close().
 */
struct gpu_graph; /* opaque: an instantiated cudaGraphExec */

int gpu_capture_begin(struct gpu *g, struct rag_err *err);
int gpu_capture_end(struct gpu *g, struct gpu_graph **ret, struct rag_err *err);
int gpu_graph_launch(struct gpu *g, const struct gpu_graph *graph, struct rag_err *err);
void gpu_graph_free(struct gpu *g, struct gpu_graph *graph); /* NULL is a no-op */
size_t gpu_graph_kernels(const struct gpu_graph *graph);     /* kernel launches it holds */

/* ---- vector kernels (gpu/vec.cu), asynchronous, fp32 ---- */

/* y[i] = a * x[i] + y[i] for i < n. x and y are (n); they must not overlap. */
int gpu_axpy(struct gpu *g, size_t n, float a, const struct gpu_buf *x, struct gpu_buf *y,
             struct rag_err *err);

/*
 * y[r] = x[r] / max(||x[r]||_2, 1e-12) for each row r of x (n_rows, dim),
 * as torch.nn.functional.normalize does; a zero row stays zero. y is
 * (n_rows, dim) and may be the same buffer as x (in place).
 */
int gpu_l2_normalize_rows(struct gpu *g, const struct gpu_buf *x, struct gpu_buf *y, size_t n_rows,
                          size_t dim, struct rag_err *err);

/*
 * out[0] = sum_i x[i] * y[i] for i < n (0 when n == 0), summed in a fixed
 * order so equal inputs give bitwise equal results. out holds one float and
 * stays on the device, so later kernels can read it without a copy.
 */
int gpu_dot(struct gpu *g, size_t n, const struct gpu_buf *x, const struct gpu_buf *y,
            struct gpu_buf *out, struct rag_err *err);

/*
 * ---- model kernels, asynchronous ----
 *
 * Element types. bf16 and fp16 values are stored as 16-bit words (the upper
 * half of an fp32 for bf16; IEEE binary16 for fp16); conversions round to
 * nearest even. Model kernels that write fp16 activations or cache entries
 * (gpu_rmsnorm, gpu_swiglu, gpu_rope_kv, gpu_attn_decode) store a finite
 * value past fp16's range as +-65504, not as an infinity; gpu_convert()
 * keeps IEEE overflow to infinity. int32 arrays (token ids, positions,
 * slots, lengths, block tables) are plain int32_t.
 */
enum gpu_dtype { GPU_F32, GPU_BF16, GPU_F16 };

/* Bytes of one element: 4 or 2. */
size_t gpu_dtype_size(enum gpu_dtype type);

/* dst[i] = src[i] converted, for i < n (gpu/convert.cu); any pair of types. */
int gpu_convert(struct gpu *g, const struct gpu_buf *src, enum gpu_dtype src_type,
                struct gpu_buf *dst, enum gpu_dtype dst_type, size_t n, struct rag_err *err);

/*
 * Linear layer through cuBLASLt (gpu/gemm.cu), row-major:
 *   c[i][j] = sum_l a[i][l] * w[j][l] + bias[j] + beta * c[i][j]
 * that is C = A * W^T + bias + beta * C, for a (m, k) and w (n, k) both in
 * ab_type (GPU_BF16 or GPU_F16), c (m, n) in c_type (GPU_F32 or ab_type).
 * w is stored as (out, in) rows, like a PyTorch Linear weight or a GGUF
 * matrix (ne0 = in). bias is NULL or (n) of c_type. Products are
 * accumulated in fp32. beta = 1 adds the old c (a residual connection);
 * with beta = 0 c is only written. The first call for a shape and pair of
 * types asks cuBLASLt for an algorithm and caches it in the context with
 * its descriptors (the workspace is allocated once, at gpu_open()), so
 * calls in a token loop allocate nothing and can be captured in a graph.
 * fp16 has 11 significant bits to bf16's 8 but a range of +-65504: fp16
 * suits weights and activations that stay in that range.
 */
int gpu_gemm(struct gpu *g, const struct gpu_buf *a, const struct gpu_buf *w,
             enum gpu_dtype ab_type, const struct gpu_buf *bias, struct gpu_buf *c,
             enum gpu_dtype c_type, size_t m, size_t n, size_t k, float beta, struct rag_err *err);

/*
 * RMSNorm with an optional residual add (gpu/rmsnorm.cu), per row of dim:
 *   when r != NULL: x[i] += r[i]  (x is the residual stream, written back)
 *   out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]
 * x (n_rows, dim) and w (dim) fp32, r NULL or (n_rows, dim) fp32, out
 * (n_rows, dim) in out_type (any enum gpu_dtype: bf16 or fp16 feeds gpu_gemm()).
 */
int gpu_rmsnorm(struct gpu *g, struct gpu_buf *x, const struct gpu_buf *r, const struct gpu_buf *w,
                struct gpu_buf *out, enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                struct rag_err *err);

/*
 * out[i][j] = silu(gu[i][j]) * gu[i][ff + j], silu(x) = x / (1 + e^-x)
 * (gpu/swiglu.cu). gu (n_rows, 2 * ff) holds each row's gate then up, as
 * one GEMM with the gate and up weights stacked gives it; gu_type and
 * out_type are any enum gpu_dtype; out is (n_rows, ff).
 */
int gpu_swiglu(struct gpu *g, const struct gpu_buf *gu, enum gpu_dtype gu_type, struct gpu_buf *out,
               enum gpu_dtype out_type, size_t n_rows, size_t ff, struct rag_err *err);

/* y[i] = softmax(scale * x[i]) per row of n fp32 (gpu/softmax.cu); y may equal x. */
int gpu_softmax_rows(struct gpu *g, const struct gpu_buf *x, struct gpu_buf *y, size_t n_rows,
                     size_t n, float scale, struct rag_err *err);

/*
 * ids[i] = the lowest index of the largest value of row i (n fp32); NaN is
 * never chosen and a row with nothing above -inf gives 0. ids is int32
 * (n_rows), n <= INT32_MAX.
 */
int gpu_argmax_rows(struct gpu *g, const struct gpu_buf *x, struct gpu_buf *ids, size_t n_rows,
                    size_t n, struct rag_err *err);

/*
 * out[t][j] = scale * table[ids[t]][j] (gpu/embed.cu): table (n_vocab, dim)
 * in table_type, ids int32 (n_ids) in device memory, out (n_ids, dim) fp32.
 * An id outside [0, n_vocab) cannot be reported from the device: its row is
 * written as NaN, which shows in every later result.
 */
int gpu_embed_rows(struct gpu *g, const struct gpu_buf *table, enum gpu_dtype table_type,
                   size_t n_vocab, size_t dim, const struct gpu_buf *ids, size_t n_ids, float scale,
                   struct gpu_buf *out, struct rag_err *err);

/*
 * ---- paged KV cache and attention ----
 *
 * A layer's cache is n_blocks physical blocks of GPU_KV_BLOCK tokens, for K
 * and for V, each block laid out (n_kv_heads, GPU_KV_BLOCK, head_dim). Token
 * p of a sequence lives in physical block table[p / GPU_KV_BLOCK] at offset
 * p % GPU_KV_BLOCK; its slot is block * GPU_KV_BLOCK + offset. Block tables
 * and lengths are device memory, so one captured graph serves every step.
 * Indices that only the device sees (a slot or block outside the cache, a
 * length outside the table) cannot be returned as errors: the results they
 * touch are written as NaN instead. head_dim is 64 or 128 (32 for encoders).
 */
#define GPU_KV_BLOCK 16

struct gpu_kv_cache {
    struct gpu_buf k, v; /* each (n_blocks, n_kv_heads, GPU_KV_BLOCK, head_dim) */
    enum gpu_dtype type; /* GPU_F32, GPU_BF16 or GPU_F16 */
    size_t n_blocks, n_kv_heads, head_dim;
};

/* A batch of sequences, one row of the block table each. */
struct gpu_seqs {
    struct gpu_buf block_tables; /* int32 (n_seqs, max_blocks): physical block ids */
    struct gpu_buf lens;         /* int32 (n_seqs): tokens in the cache, 0..max_blocks*16 */
    size_t n_seqs, max_blocks;
};

enum gpu_rope_type {
    GPU_ROPE_NORM, /* rotate adjacent pairs (x[2i], x[2i+1]): GGUF llama */
    GPU_ROPE_NEOX, /* rotate halves (x[i], x[i + head_dim/2]): HF llama, qwen2, gemma */
};

/*
 * RoPE on Q and K, and K and V written into the cache (gpu/rope_kv.cu).
 * qkv (n_tokens, (n_heads + 2 * n_kv_heads) * head_dim) fp32 holds each
 * token's Q heads, then K heads, then V heads (one stacked QKV GEMM). Token t
 * at position pos[t] turns pair i by the angle pos[t] * inv_freq[i], with
 * inv_freq (head_dim / 2) fp32, usually base^(-2i / head_dim) computed by
 * the caller (so scaled variants need no new kernel). Rotated Q goes to
 * q_out (n_tokens, n_heads, head_dim) fp32; rotated K and plain V go to
 * cache slot slots[t]. pos and slots are int32 (n_tokens); a negative slot
 * writes nothing (padding); a slot past the cache or a negative position
 * turns the token's q_out row into NaN.
 */
int gpu_rope_kv(struct gpu *g, const struct gpu_buf *qkv, size_t n_tokens, size_t n_heads,
                enum gpu_rope_type type, const struct gpu_buf *inv_freq, const struct gpu_buf *pos,
                const struct gpu_buf *slots, struct gpu_buf *q_out, struct gpu_kv_cache *kv,
                struct rag_err *err);

/*
 * Decode attention, one query token per sequence (gpu/attn_decode.cu):
 *   out[s][h] = sum_t softmax_t(scale * q[s][h] . K[s][t]) V[s][t]
 * over the lens[s] cached tokens of sequence s, reading K and V of kv head
 * h / (n_heads / n_kv_heads) (grouped-query attention). q (n_seqs, n_heads,
 * head_dim) fp32, out the same shape in out_type (any enum gpu_dtype). The
 * tokens are split over thread blocks (flash-decoding) whose partial
 * maxima, sums and outputs go to work, which must hold
 * gpu_attn_decode_workspace() bytes; the split depends only on the shapes
 * and max_blocks, so one capture fits any lens. A length of 0 gives zeros.
 */
size_t gpu_attn_decode_workspace(const struct gpu *g, size_t n_heads, const struct gpu_kv_cache *kv,
                                 const struct gpu_seqs *seqs);
int gpu_attn_decode(struct gpu *g, const struct gpu_buf *q, size_t n_heads,
                    const struct gpu_kv_cache *kv, const struct gpu_seqs *seqs, float scale,
                    struct gpu_buf *work, struct gpu_buf *out, enum gpu_dtype out_type,
                    struct rag_err *err);

/*
 * The decode step's RoPE, cache write and attention in one call (one
 * kernel, or two when the cache is split): sequence s's new token is at
 * position p = lens[s] - 1, its row s of qkv (n_seqs, (n_heads + 2
 * n_kv_heads) head_dim) fp32 as gpu_rope_kv() takes it. Q and K are
 * rotated to p as gpu_rope_kv() does, K and V written at offset p % 16 of
 * block table[s][p / 16], and the query attends over tokens 0..p as in
 * gpu_attn_decode(). The same as gpu_rope_kv() with pos p and that slot,
 * then gpu_attn_decode(), up to the order of a few fp32 operations.
 */
int gpu_attn_decode_rope(struct gpu *g, const struct gpu_buf *qkv, size_t n_heads,
                         enum gpu_rope_type type, const struct gpu_buf *inv_freq,
                         struct gpu_kv_cache *kv, const struct gpu_seqs *seqs, float scale,
                         struct gpu_buf *work, struct gpu_buf *out, enum gpu_dtype out_type,
                         struct rag_err *err);

/*
 * Causal prefill attention for n_tokens new tokens of one sequence, at
 * positions pos0 .. pos0 + n_tokens - 1, already written to the cache with
 * gpu_rope_kv() after pos0 earlier tokens (gpu/attn_prefill.cu). Query t
 * attends to cached tokens 0 .. pos0 + t. Tiles of keys are streamed with an
 * online softmax, so no score matrix is stored. block_table int32 holds at
 * least ceil((pos0 + n_tokens) / GPU_KV_BLOCK) physical block ids; q and
 * out as for gpu_attn_decode() with n_tokens rows. bf16 and fp16 caches of
 * head_dim 64 or 128 run on tensor cores: q * scale * log2(e) and the
 * softmax weights are rounded to the cache type before their products
 * (fp32 sums), so results are within about 2^-9 (bf16) or 2^-11 (fp16) of
 * sum_t p_t |V_t|; fp32 caches and head_dim 32 are computed in fp32.
 */
int gpu_attn_prefill(struct gpu *g, const struct gpu_buf *q, size_t n_tokens, size_t n_heads,
                     size_t pos0, const struct gpu_kv_cache *kv, const struct gpu_buf *block_table,
                     float scale, struct gpu_buf *out, enum gpu_dtype out_type,
                     struct rag_err *err);

/*
 * ---- BERT encoder kernels (gpu/encoder.cu), asynchronous ----
 *
 * A batch is n_seqs sequences padded to seq_len tokens: row s * seq_len + t
 * of every (n_seqs * seq_len, ...) buffer is token t of sequence s, and
 * lens, int32 (n_seqs) in device memory, holds each sequence's real length
 * in 1..seq_len. A length outside that range cannot be reported from the
 * device: the rows it governs are written as NaN. Row widths (dim) are at
 * most GPU_ENC_DIM_MAX. LN(x) = (x - mean) / sqrt(var + eps) * gamma + beta
 * over a row, with mean and variance computed in fp32 in two passes.
 */
#define GPU_ENC_DIM_MAX 1024

struct gpu_bert_embeddings {
    struct gpu_buf tok;         /* (n_vocab, dim) fp32 */
    struct gpu_buf pos;         /* (n_pos, dim) fp32 */
    struct gpu_buf type;        /* (dim) fp32: token type 0, added to every token */
    struct gpu_buf gamma, beta; /* (dim) fp32: the embeddings' LayerNorm */
    size_t n_vocab, n_pos, dim;
    float eps;
};

/*
 * h[r] = LN(tok[ids[r]] + pos[r % seq_len] + type) for the n_seqs * seq_len
 * rows, h fp32, and out[r] = h[r] in out_type (GPU_F32 or GPU_BF16). ids is
 * int32; seq_len <= n_pos. An id outside [0, n_vocab) gives a NaN row.
 */
int gpu_bert_embed(struct gpu *g, const struct gpu_bert_embeddings *emb, const struct gpu_buf *ids,
                   size_t n_seqs, size_t seq_len, struct gpu_buf *h, struct gpu_buf *out,
                   enum gpu_dtype out_type, struct rag_err *err);

/*
 * The post-LN residual step per row of h (n_rows, dim) fp32: h = LN(h + t),
 * written back, and out = h in out_type (GPU_F32 or GPU_BF16). t is NULL
 * (no add) or (n_rows, dim) in t_type (GPU_F32 or GPU_BF16); gamma and
 * beta (dim) fp32. No two buffers may overlap.
 */
int gpu_layernorm(struct gpu *g, struct gpu_buf *h, const struct gpu_buf *t, enum gpu_dtype t_type,
                  const struct gpu_buf *gamma, const struct gpu_buf *beta, struct gpu_buf *out,
                  enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                  struct rag_err *err);

/*
 * x[i][j] = gelu(x[i][j] + bias[j]) in place, with GELU in its erf form
 * 0.5 x (1 + erf(x / sqrt(2))) as BERT uses it. x (n_rows, n) in type
 * (GPU_F32 or GPU_BF16), bias (n) fp32.
 */
int gpu_bias_gelu(struct gpu *g, struct gpu_buf *x, enum gpu_dtype type, const struct gpu_buf *bias,
                  size_t n_rows, size_t n, struct rag_err *err);

/*
 * Bidirectional attention over the padded batch, for t < lens[s] and head h:
 *   out[s, t][h] = sum_{u < lens[s]} softmax_u(scale * q[s, t][h] . k[s, u][h]) v[s, u][h]
 * qkv bf16 (n_seqs * seq_len, 3 * n_heads * head_dim), 16-byte aligned,
 * holds each row's Q heads, then K heads, then V heads (one QKV GEMM); out
 * bf16 (n_seqs * seq_len, n_heads * head_dim). Padding rows (t >= lens[s])
 * are written as zeros. head_dim is 32 or 64; n_seqs and n_heads at most
 * 65535. Tensor cores: products in bf16 (the probabilities rounded to bf16
 * for P V), accumulation and softmax in fp32.
 */
int gpu_attn_encoder(struct gpu *g, const struct gpu_buf *qkv, const struct gpu_buf *lens,
                     size_t n_seqs, size_t seq_len, size_t n_heads, size_t head_dim, float scale,
                     struct gpu_buf *out, struct rag_err *err);

enum gpu_pooling {
    GPU_POOL_MEAN, /* mean of the sequence's lens[s] rows */
    GPU_POOL_CLS,  /* the sequence's first row */
};

/*
 * out[s] = p / max(||p||_2, 1e-12) with p the pooled rows of sequence s of
 * h (n_seqs * seq_len, dim) fp32; out (n_seqs, dim) fp32.
 */
int gpu_bert_pool(struct gpu *g, const struct gpu_buf *h, const struct gpu_buf *lens, size_t n_seqs,
                  size_t seq_len, size_t dim, enum gpu_pooling pooling, struct gpu_buf *out,
                  struct rag_err *err);

/*
 * ---- decode-step linear layers (gpu/gemv.cu), asynchronous ----
 *
 * gpu_gemv() computes what gpu_gemm() does, with the same arguments and
 * types, for m <= GPU_GEMV_M_MAX rows (the tokens of a decode batch):
 *   c[i][j] = sum_l a[i][l] * w[j][l] + bias[j] + beta * c[i][j]
 * It streams w once on tensor cores, or for one row on CUDA cores with a
 * warp's first weights loaded before the previous kernel ends (fp32 accumulation,
 * sums in a fixed order, so equal inputs give bitwise equal results), one
 * kernel, no plan: this is the kernel of a decode step, where w is most of
 * the bytes read. Additional requirements: k is a multiple of 8, and the
 * input rows (a or x), norm and w start 16-byte aligned (c and bias
 * need only their element's alignment). With beta == 0 c is only written.
 * m == 0 or n == 0 does nothing. m > GPU_GEMV_M_MAX is refused: use
 * gpu_gemm() there.
 *
 * Two variants fold in the decode step's norm and activation kernels:
 *   gpu_gemv_rmsnorm(): a[i] = rmsnorm(x[i]) * norm, rounded to ab_type, as
 *     gpu_rmsnorm(x, NULL, norm, ..., ab_type) writes it; x (m, k) fp32 (not
 *     written), norm (k) fp32, eps finite and >= 0. The result equals the
 *     two-kernel sequence up to the order of the sums and of the sum of
 *     squares. For one row (m == 1) a[0] is not rounded: the sums take
 *     x * norm in fp32 and are scaled by 1/rms at the end (closer to the
 *     exact product).
 *   gpu_gemv_rmsnorm_swiglu(): below.
 */
#define GPU_GEMV_M_MAX 32

int gpu_gemv(struct gpu *g, const struct gpu_buf *a, const struct gpu_buf *w,
             enum gpu_dtype ab_type, const struct gpu_buf *bias, struct gpu_buf *c,
             enum gpu_dtype c_type, size_t m, size_t n, size_t k, float beta, struct rag_err *err);
int gpu_gemv_rmsnorm(struct gpu *g, const struct gpu_buf *x, const struct gpu_buf *norm, float eps,
                     const struct gpu_buf *w, enum gpu_dtype ab_type, const struct gpu_buf *bias,
                     struct gpu_buf *c, enum gpu_dtype c_type, size_t m, size_t n, size_t k,
                     float beta, struct rag_err *err);
/*
 * gpu_gemv_rmsnorm_swiglu(): the gate/up projection with SwiGLU on its
 * output, for a decode step that then needs no SwiGLU in its down GEMV:
 *   h[i][j] = silu(a[i] . w[j]) * (a[i] . w[n + j]),  j < n
 * with a[i] made from x as gpu_gemv_rmsnorm() does and w (2 n, k) the
 * stacked gate and up rows, rounded to h_type (bf16/fp16 saturating as
 * gpu_swiglu() writes it, or fp32). The same as gpu_gemv_rmsnorm() into
 * fp32 then gpu_swiglu(), up to the order of the sums. No bias, no beta.
 */
int gpu_gemv_rmsnorm_swiglu(struct gpu *g, const struct gpu_buf *x, const struct gpu_buf *norm,
                            float eps, const struct gpu_buf *w, enum gpu_dtype ab_type,
                            struct gpu_buf *h, enum gpu_dtype h_type, size_t m, size_t n, size_t k,
                            struct rag_err *err);

#endif
