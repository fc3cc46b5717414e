/*
 * gpu/encoder.c - the BERT encoder kernels of gpu.h: argument checks, then
 * the launchers of gpu/encoder.cu through gpu/gpu_cuda.h.
 *
 * As in gpu/launch.c, everything the host can know is checked here, once:
 * element types, shapes against buffer sizes (with overflow checks),
 * alignment, overlaps that would race, and CUDA's grid limits (65535 in y
 * and z). Each failure is RAG_EINVAL with a message naming the function and
 * the buffer or shape. Token ids and lengths are device data: the kernels
 * write NaN where they are invalid (gpu.h). The buffer, size and
 * overlap checks are launch.c's (gpu/gpu_cuda.h).
 */
#include "gpu/gpu.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "gpu/gpu_cuda.h"

#define GRID_YZ_MAX 65535u

static int check_type(const char *op, const char *name, enum gpu_dtype type, struct rag_err *err)
{
    if (type != GPU_F32 && type != GPU_BF16)
        return rag_errf(err, RAG_EINVAL, "%s: '%s' must be f32 or bf16", op, name);
    return 0;
}

static int check_dim(const char *op, size_t dim, struct rag_err *err)
{
    if (dim == 0 || dim > GPU_ENC_DIM_MAX)
        return rag_errf(err, RAG_EINVAL, "%s: dim %zu is not in 1..%d", op, dim, GPU_ENC_DIM_MAX);
    return 0;
}

static int check_eps(const char *op, float eps, struct rag_err *err)
{
    if (!(eps >= 0 && isfinite(eps)))
        return rag_errf(err, RAG_EINVAL, "%s: eps %g is not a finite value >= 0", op, eps);
    return 0;
}

/* The embedding tables of e. */
static int check_tables(const char *op, const struct gpu_bert_embeddings *e, struct rag_err *err)
{
    size_t n_tok = 0, n_pos = 0;
    int rc = check_dim(op, e->dim, err);

    if (!rc && e->n_vocab > INT32_MAX)
        rc = rag_errf(err, RAG_EINVAL, "%s: n_vocab %zu exceeds %d", op, e->n_vocab, INT32_MAX);
    if (!rc)
        rc = gpu_check_product(op, "n_vocab * dim", e->n_vocab, e->dim, 1, &n_tok, err);
    if (!rc)
        rc = gpu_check_product(op, "n_pos * dim", e->n_pos, e->dim, 1, &n_pos, err);
    if (!rc)
        rc = gpu_check_buf(op, "tok", &e->tok, n_tok, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "pos", &e->pos, n_pos, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "type", &e->type, e->dim, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "gamma", &e->gamma, e->dim, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "beta", &e->beta, e->dim, 4, 4, err);
    if (!rc)
        rc = check_eps(op, e->eps, err);
    return rc;
}

int gpu_bert_embed(struct gpu *g, const struct gpu_bert_embeddings *emb, const struct gpu_buf *ids,
                   size_t n_seqs, size_t seq_len, struct gpu_buf *h, struct gpu_buf *out,
                   enum gpu_dtype out_type, struct rag_err *err)
{
    const char *op = "gpu_bert_embed";
    size_t n = 0, os = gpu_dtype_size(out_type);
    int rc;

    assert(g && emb);
    rc = check_tables(op, emb, err);
    if (!rc && seq_len > emb->n_pos)
        rc =
            rag_errf(err, RAG_EINVAL, "%s: seq_len %zu exceeds n_pos %zu", op, seq_len, emb->n_pos);
    if (!rc)
        rc = check_type(op, "out", out_type, err);
    if (!rc && n_seqs && seq_len > INT32_MAX / n_seqs)
        rc = rag_errf(err, RAG_EINVAL, "%s: n_seqs * seq_len exceeds %d", op, INT32_MAX);
    if (!rc)
        rc = gpu_check_product(op, "n_seqs * seq_len * dim", n_seqs, seq_len, emb->dim, &n, err);
    if (!rc)
        rc = gpu_check_buf(op, "ids", ids, n / emb->dim, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "h", h, n, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "out", out, n, os, os, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "h", h, n * 4, "out", out, n * os, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "h", h, n * 4, "ids", ids, n / emb->dim * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "ids", ids, n / emb->dim * 4, err);
    if (rc)
        return rc;
    return gpu_cuda_bert_embed(g, emb, ids->ptr, n_seqs, seq_len, h->ptr, out->ptr, out_type, err);
}

/* The buffers of gpu_layernorm: n = n_rows * dim elements each. */
static int check_norm_bufs(const char *op, struct gpu_buf *h, const struct gpu_buf *t,
                           enum gpu_dtype t_type, const struct gpu_buf *gamma,
                           const struct gpu_buf *beta, struct gpu_buf *out, enum gpu_dtype out_type,
                           size_t n, size_t dim, struct rag_err *err)
{
    size_t ts = gpu_dtype_size(t_type), os = gpu_dtype_size(out_type);
    int rc = gpu_check_buf(op, "h", h, n, 4, 4, err);

    if (!rc && t)
        rc = gpu_check_buf(op, "t", t, n, ts, ts, err);
    if (!rc)
        rc = gpu_check_buf(op, "gamma", gamma, dim, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "beta", beta, dim, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "out", out, n, os, os, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "h", h, n * 4, "out", out, n * os, err);
    if (!rc && t)
        rc = gpu_check_no_overlap(op, "h", h, n * 4, "t", t, n * ts, err);
    if (!rc && t)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "t", t, n * ts, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "h", h, n * 4, "gamma", gamma, dim * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "h", h, n * 4, "beta", beta, dim * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "gamma", gamma, dim * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "beta", beta, dim * 4, err);
    return rc;
}

int gpu_layernorm(struct gpu *g, struct gpu_buf *h, const struct gpu_buf *t, enum gpu_dtype t_type,
                  const struct gpu_buf *gamma, const struct gpu_buf *beta, struct gpu_buf *out,
                  enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                  struct rag_err *err)
{
    const char *op = "gpu_layernorm";
    size_t n = 0;
    int rc;

    assert(g);
    rc = check_dim(op, dim, err);
    if (!rc && n_rows > INT32_MAX)
        rc = rag_errf(err, RAG_EINVAL, "%s: n_rows %zu exceeds %d", op, n_rows, INT32_MAX);
    if (!rc && t)
        rc = check_type(op, "t", t_type, err);
    if (!rc)
        rc = check_type(op, "out", out_type, err);
    if (!rc)
        rc = gpu_check_product(op, "n_rows * dim", n_rows, dim, 1, &n, err);
    if (!rc)
        rc = check_norm_bufs(op, h, t, t_type, gamma, beta, out, out_type, n, dim, err);
    if (!rc)
        rc = check_eps(op, eps, err);
    if (rc)
        return rc;
    return gpu_cuda_layernorm(g, h->ptr, t ? t->ptr : NULL, t_type, gamma->ptr, beta->ptr, out->ptr,
                              out_type, n_rows, dim, eps, err);
}

int gpu_bias_gelu(struct gpu *g, struct gpu_buf *x, enum gpu_dtype type, const struct gpu_buf *bias,
                  size_t n_rows, size_t n, struct rag_err *err)
{
    const char *op = "gpu_bias_gelu";
    size_t total = 0, size = gpu_dtype_size(type);
    int rc;

    assert(g);
    rc = check_type(op, "x", type, err);
    if (!rc)
        rc = gpu_check_product(op, "n_rows * n", n_rows, n, 1, &total, err);
    if (!rc)
        rc = gpu_check_buf(op, "x", x, total, size, size, err);
    if (!rc)
        rc = gpu_check_buf(op, "bias", bias, n, 4, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "x", x, total * size, "bias", bias, n * 4, err);
    if (rc)
        return rc;
    return gpu_cuda_bias_gelu(g, x->ptr, type, bias->ptr, n_rows, n, err);
}

/* Shape limits of gpu_attn_encoder. */
static int check_attn_shape(const char *op, size_t n_seqs, size_t seq_len, size_t n_heads,
                            size_t head_dim, float scale, struct rag_err *err)
{
    if (head_dim != 32 && head_dim != 64)
        return rag_errf(err, RAG_EINVAL, "%s: head_dim %zu is not 32 or 64", op, head_dim);
    if (n_heads == 0 || n_heads > GRID_YZ_MAX)
        return rag_errf(err, RAG_EINVAL, "%s: n_heads %zu is not in 1..%u", op, n_heads,
                        GRID_YZ_MAX);
    if (n_seqs > GRID_YZ_MAX)
        return rag_errf(err, RAG_EINVAL, "%s: n_seqs %zu exceeds %u", op, n_seqs, GRID_YZ_MAX);
    if (seq_len > INT32_MAX)
        return rag_errf(err, RAG_EINVAL, "%s: seq_len %zu exceeds %d", op, seq_len, INT32_MAX);
    if (!isfinite(scale))
        return rag_errf(err, RAG_EINVAL, "%s: scale is not finite", op);
    return 0;
}

int gpu_attn_encoder(struct gpu *g, const struct gpu_buf *qkv, const struct gpu_buf *lens,
                     size_t n_seqs, size_t seq_len, size_t n_heads, size_t head_dim, float scale,
                     struct gpu_buf *out, struct rag_err *err)
{
    const char *op = "gpu_attn_encoder";
    size_t n_out = 0;
    int rc;

    assert(g);
    rc = check_attn_shape(op, n_seqs, seq_len, n_heads, head_dim, scale, err);
    if (!rc)
        rc = gpu_check_product(op, "out size", n_seqs * seq_len, n_heads, head_dim, &n_out, err);
    if (!rc && n_out > SIZE_MAX / 3)
        rc = rag_errf(err, RAG_EINVAL, "%s: qkv size overflows size_t", op);
    if (!rc)
        rc = gpu_check_buf(op, "qkv", qkv, 3 * n_out, 2, 16, err);
    if (!rc)
        rc = gpu_check_buf(op, "lens", lens, n_seqs, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "out", out, n_out, 2, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * 2, "qkv", qkv, 3 * n_out * 2, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * 2, "lens", lens, n_seqs * 4, err);
    if (rc)
        return rc;
    return gpu_cuda_attn_encoder(g, qkv->ptr, lens->ptr, n_seqs, seq_len, n_heads, head_dim, scale,
                                 out->ptr, err);
}

int gpu_bert_pool(struct gpu *g, const struct gpu_buf *h, const struct gpu_buf *lens, size_t n_seqs,
                  size_t seq_len, size_t dim, enum gpu_pooling pooling, struct gpu_buf *out,
                  struct rag_err *err)
{
    const char *op = "gpu_bert_pool";
    size_t n_h = 0, n_out = 0;
    int rc = 0;

    assert(g);
    if (pooling != GPU_POOL_MEAN && pooling != GPU_POOL_CLS)
        return rag_errf(err, RAG_EINVAL, "%s: unknown pooling %d", op, (int)pooling);
    if (n_seqs > INT32_MAX)
        rc = rag_errf(err, RAG_EINVAL, "%s: n_seqs %zu exceeds %d", op, n_seqs, INT32_MAX);
    if (!rc)
        rc = gpu_check_product(op, "n_seqs * seq_len * dim", n_seqs, seq_len, dim, &n_h, err);
    if (!rc)
        rc = gpu_check_product(op, "n_seqs * dim", n_seqs, dim, 1, &n_out, err);
    if (!rc)
        rc = gpu_check_buf(op, "h", h, n_h, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "lens", lens, n_seqs, 4, 4, err);
    if (!rc)
        rc = gpu_check_buf(op, "out", out, n_out, 4, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * 4, "h", h, n_h * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * 4, "lens", lens, n_seqs * 4, err);
    if (rc)
        return rc;
    return gpu_cuda_bert_pool(g, h->ptr, lens->ptr, n_seqs, seq_len, dim, pooling, out->ptr, err);
}
