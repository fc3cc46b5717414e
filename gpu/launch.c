/*
 * gpu/launch.c - the model kernels of gpu.h: argument checks, then the
 * launchers of the .cu files through gpu/gpu_cuda.h.
 *
 * Everything the host can know is checked here, once: element types,
 * shapes against buffer sizes (with overflow checks), alignment to the
 * element size, overlaps that would race, and the grid limits of CUDA
 * (65535 in y and z). Each failure is RAG_EINVAL with a message naming the
 * function and the buffer or shape. What only the device sees (token ids,
 * slots, lengths, block ids) is handled in the kernels by writing NaN
 * (gpu.h). Without CUDA these functions are never reached: gpu_open()
 * fails, and every one of them needs a context.
 */
#include "gpu/gpu.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "gpu/gpu_cuda.h"

#define GRID_YZ_MAX   65535u
#define DEC_BLOCKS_SM 4   /* decode attention blocks per SM aimed at (attn_decode.cu) */
#define DEC_SPLIT_MIN 256 /* tokens of a decode split at least */
#define GROUP_MAX     32  /* query heads per kv head */

size_t gpu_dtype_size(enum gpu_dtype type)
{
    return type == GPU_F32 ? 4 : 2;
}

static const char *type_name(enum gpu_dtype t)
{
    return t == GPU_F32 ? "f32" : t == GPU_BF16 ? "bf16" : t == GPU_F16 ? "f16" : "unknown";
}

int gpu_check_buf(const char *op, const char *name, const struct gpu_buf *b, size_t n, size_t size,
                  size_t align, struct rag_err *err)
{
    if (!b)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' is missing", op, name);
    if (n > SIZE_MAX / size)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s': %zu elements overflow size_t", op, name,
                        n);
    if (n * size > b->bytes)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' has %zu bytes, needs %zu", op, name,
                        b->bytes, n * size);
    if (n && !b->ptr)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' is NULL", op, name);
    if ((uintptr_t)b->ptr % align)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' is not %zu-byte aligned", op, name,
                        align);
    return 0;
}

/* n elements of size bytes fit b, which is aligned to size. */
static int check_buf(const char *op, const char *name, const struct gpu_buf *b, size_t n,
                     size_t size, struct rag_err *err)
{
    return gpu_check_buf(op, name, b, n, size, size, err);
}

int gpu_check_product(const char *op, const char *what, size_t a, size_t b, size_t c, size_t *ret,
                      struct rag_err *err)
{
    if ((b && a > SIZE_MAX / b) || (c && a * b > SIZE_MAX / c))
        return rag_errf(err, RAG_EINVAL, "%s: %s overflows size_t", op, what);
    *ret = a * b * c;
    return 0;
}

/* type is one of enum gpu_dtype (every model kernel takes all three). */
static int check_type(const char *op, const char *name, enum gpu_dtype type, struct rag_err *err)
{
    if (type != GPU_F32 && type != GPU_BF16 && type != GPU_F16)
        return rag_errf(err, RAG_EINVAL, "%s: unknown type %d of '%s'", op, (int)type, name);
    return 0;
}

/* a and w of gpu_gemm() are both ab_type, bf16 or fp16; c is fp32 or ab_type. */
static int check_gemm_types(const char *op, enum gpu_dtype ab_type, enum gpu_dtype c_type,
                            struct rag_err *err)
{
    if (ab_type != GPU_BF16 && ab_type != GPU_F16)
        return rag_errf(err, RAG_EINVAL, "%s: 'a' and 'w' must be bf16 or f16, not %s", op,
                        type_name(ab_type));
    if (c_type != GPU_F32 && c_type != ab_type)
        return rag_errf(err, RAG_EINVAL, "%s: 'c' must be f32 or %s (the type of 'a'), not %s", op,
                        type_name(ab_type), type_name(c_type));
    return 0;
}

static int check_count(const char *op, const char *what, size_t n, size_t max, struct rag_err *err)
{
    if (n > max)
        return rag_errf(err, RAG_EINVAL, "%s: %s %zu exceeds %zu", op, what, n, max);
    return 0;
}

/* Whether the first a_bytes of a and b_bytes of b share memory. */
static bool overlap(const struct gpu_buf *a, size_t a_bytes, const struct gpu_buf *b,
                    size_t b_bytes)
{
    uintptr_t pa = (uintptr_t)a->ptr, pb = (uintptr_t)b->ptr;

    return a_bytes && b_bytes && pa < pb + b_bytes && pb < pa + a_bytes;
}

int gpu_check_no_overlap(const char *op, const char *na, const struct gpu_buf *a, size_t a_bytes,
                         const char *nb, const struct gpu_buf *b, size_t b_bytes,
                         struct rag_err *err)
{
    if (a && b && overlap(a, a_bytes, b, b_bytes))
        return rag_errf(err, RAG_EINVAL, "%s: buffers '%s' and '%s' overlap", op, na, nb);
    return 0;
}

int gpu_convert(struct gpu *g, const struct gpu_buf *src, enum gpu_dtype src_type,
                struct gpu_buf *dst, enum gpu_dtype dst_type, size_t n, struct rag_err *err)
{
    const char *op = "gpu_convert";
    int rc = 0;

    assert(g);
    if (src_type != GPU_F32 && src_type != GPU_BF16 && src_type != GPU_F16)
        return rag_errf(err, RAG_EINVAL, "%s: unknown source type %d", op, (int)src_type);
    if (dst_type != GPU_F32 && dst_type != GPU_BF16 && dst_type != GPU_F16)
        return rag_errf(err, RAG_EINVAL, "%s: unknown target type %d", op, (int)dst_type);
    rc = check_buf(op, "src", src, n, gpu_dtype_size(src_type), err);
    if (!rc)
        rc = check_buf(op, "dst", dst, n, gpu_dtype_size(dst_type), err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "src", src, n * gpu_dtype_size(src_type), "dst", dst,
                                  n * gpu_dtype_size(dst_type), err);
    if (rc)
        return rc;
    return gpu_cuda_convert(g, src->ptr, src_type, dst->ptr, dst_type, n, err);
}

int gpu_gemm(struct gpu *g, const struct gpu_buf *a, const struct gpu_buf *w,
             enum gpu_dtype ab_type, const struct gpu_buf *bias, struct gpu_buf *c,
             enum gpu_dtype c_type, size_t m, size_t n, size_t k, float beta, struct rag_err *err)
{
    const char *op = "gpu_gemm";
    size_t mk = 0, nk = 0, mn = 0, cs = gpu_dtype_size(c_type);
    int rc;

    assert(g);
    if (k == 0)
        return rag_errf(err, RAG_EINVAL, "%s: k is 0", op);
    rc = check_gemm_types(op, ab_type, c_type, err);
    if (!rc)
        rc = gpu_check_product(op, "m * k", m, k, 1, &mk, err);
    if (!rc)
        rc = gpu_check_product(op, "n * k", n, k, 1, &nk, err);
    if (!rc)
        rc = gpu_check_product(op, "m * n", m, n, 1, &mn, err);
    if (!rc)
        rc = check_buf(op, "a", a, mk, 2, err);
    if (!rc)
        rc = check_buf(op, "w", w, nk, 2, err);
    if (!rc)
        rc = check_buf(op, "c", c, mn, cs, err);
    if (!rc && bias)
        rc = check_buf(op, "bias", bias, n, cs, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "c", c, mn * cs, "a", a, mk * 2, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "c", c, mn * cs, "w", w, nk * 2, err);
    if (rc || m == 0 || n == 0)
        return rc;
    if (!isfinite(beta))
        return rag_errf(err, RAG_EINVAL, "%s: beta is not finite", op);
    return gpu_cuda_gemm(g, a->ptr, w->ptr, ab_type, bias ? bias->ptr : NULL, c->ptr, c_type, m, n,
                         k, beta, err);
}

/* check_buf(), and b starts 16-byte aligned (the vector loads of gemv.cu). */
static int check_vec_buf(const char *op, const char *name, const struct gpu_buf *b, size_t n,
                         size_t size, struct rag_err *err)
{
    int rc = check_buf(op, name, b, n, size, err);

    if (!rc && (uintptr_t)b->ptr % 16)
        rc = rag_errf(err, RAG_EINVAL, "%s: buffer '%s' is not 16-byte aligned", op, name);
    return rc;
}

/* What the gpu_gemv() family shares: shape, types, w, bias and c. */
static int check_gemv(const char *op, const struct gpu_cuda_gemv *p, const struct gpu_buf *w,
                      const struct gpu_buf *bias, const struct gpu_buf *c, struct rag_err *err)
{
    size_t nk = 0, mn = 0, cs = gpu_dtype_size(p->c_type);
    int rc;

    if (p->m > GPU_GEMV_M_MAX)
        return rag_errf(err, RAG_EINVAL, "%s: m %zu exceeds %d", op, p->m, GPU_GEMV_M_MAX);
    if (p->k == 0 || p->k % 8)
        return rag_errf(err, RAG_EINVAL, "%s: k %zu is not a positive multiple of 8", op, p->k);
    rc = check_gemm_types(op, p->ab_type, p->c_type, err);
    if (!rc)
        rc = check_count(op, "n", p->n, INT32_MAX / 2, err);
    if (!rc)
        rc = check_count(op, "k", p->k, INT32_MAX / 2, err);
    if (!rc)
        rc = gpu_check_product(op, "rows of w * k", p->glu ? 2 * p->n : p->n, p->k, 1, &nk, err);
    if (!rc)
        rc = gpu_check_product(op, "m * n", p->m, p->n, 1, &mn, err);
    if (!rc)
        rc = check_vec_buf(op, "w", w, nk, 2, err);
    if (!rc)
        rc = check_buf(op, "c", c, mn, cs, err);
    if (!rc && bias)
        rc = check_buf(op, "bias", bias, p->n, cs, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "c", c, mn * cs, "w", w, nk * 2, err);
    if (!rc && !isfinite(p->beta))
        rc = rag_errf(err, RAG_EINVAL, "%s: beta is not finite", op);
    return rc;
}

/* The input rows src (m k elements of src_size bytes): aligned and apart from c; then launch. */
static int launch_gemv(struct gpu *g, const char *op, struct gpu_cuda_gemv *p, const char *src_name,
                       const struct gpu_buf *src, size_t src_size, const struct gpu_buf *w,
                       const struct gpu_buf *bias, struct gpu_buf *c, struct rag_err *err)
{
    size_t n_src = 0, mn = p->m * p->n, cs = gpu_dtype_size(p->c_type);
    int rc = check_gemv(op, p, w, bias, c, err);

    if (!rc)
        rc = gpu_check_product(op, "m * k", p->m, p->k, 1, &n_src, err);
    if (!rc)
        rc = check_vec_buf(op, src_name, src, n_src, src_size, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "c", c, mn * cs, src_name, src, n_src * src_size, err);
    if (rc)
        return rc;
    p->src = src->ptr;
    p->w = w->ptr;
    p->bias = bias ? bias->ptr : NULL;
    p->c = c->ptr;
    return gpu_cuda_gemv(g, p, err);
}

int gpu_gemv(struct gpu *g, const struct gpu_buf *a, const struct gpu_buf *w,
             enum gpu_dtype ab_type, const struct gpu_buf *bias, struct gpu_buf *c,
             enum gpu_dtype c_type, size_t m, size_t n, size_t k, float beta, struct rag_err *err)
{
    struct gpu_cuda_gemv p = {
        .input = GPU_CUDA_GEMV_A,
        .ab_type = ab_type,
        .c_type = c_type,
        .m = m,
        .n = n,
        .k = k,
        .beta = beta,
    };

    assert(g);
    return launch_gemv(g, "gpu_gemv", &p, "a", a, 2, w, bias, c, err);
}

/* gpu_gemv_rmsnorm() and gpu_gemv_rmsnorm_swiglu(): eps and norm checked, then launch. */
static int rmsnorm_gemv(struct gpu *g, const char *op, struct gpu_cuda_gemv *p,
                        const struct gpu_buf *x, const struct gpu_buf *norm,
                        const struct gpu_buf *w, const struct gpu_buf *bias, struct gpu_buf *c,
                        struct rag_err *err)
{
    int rc;

    if (!(p->eps >= 0 && isfinite(p->eps)))
        return rag_errf(err, RAG_EINVAL, "%s: eps %g is not a finite value >= 0", op, p->eps);
    rc = check_gemv(op, p, w, bias, c, err);
    if (!rc)
        rc = check_vec_buf(op, "norm", norm, p->k, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "c", c, p->m * p->n * gpu_dtype_size(p->c_type), "norm", norm,
                                  p->k * 4, err);
    if (rc)
        return rc;
    p->norm = norm->ptr;
    return launch_gemv(g, op, p, "x", x, 4, w, bias, c, err);
}

int gpu_gemv_rmsnorm(struct gpu *g, const struct gpu_buf *x, const struct gpu_buf *norm, float eps,
                     const struct gpu_buf *w, enum gpu_dtype ab_type, const struct gpu_buf *bias,
                     struct gpu_buf *c, enum gpu_dtype c_type, size_t m, size_t n, size_t k,
                     float beta, struct rag_err *err)
{
    struct gpu_cuda_gemv p = {
        .input = GPU_CUDA_GEMV_RMSNORM,
        .eps = eps,
        .ab_type = ab_type,
        .c_type = c_type,
        .m = m,
        .n = n,
        .k = k,
        .beta = beta,
    };

    assert(g);
    return rmsnorm_gemv(g, "gpu_gemv_rmsnorm", &p, x, norm, w, bias, c, err);
}

int gpu_gemv_rmsnorm_swiglu(struct gpu *g, const struct gpu_buf *x, const struct gpu_buf *norm,
                            float eps, const struct gpu_buf *w, enum gpu_dtype ab_type,
                            struct gpu_buf *h, enum gpu_dtype h_type, size_t m, size_t n, size_t k,
                            struct rag_err *err)
{
    const char *op = "gpu_gemv_rmsnorm_swiglu";
    struct gpu_cuda_gemv p = {
        .input = GPU_CUDA_GEMV_RMSNORM,
        .glu = true,
        .eps = eps,
        .ab_type = ab_type,
        .c_type = h_type,
        .m = m,
        .n = n,
        .k = k,
    };

    assert(g);
    return rmsnorm_gemv(g, op, &p, x, norm, w, NULL, h, err);
}

int gpu_rmsnorm(struct gpu *g, struct gpu_buf *x, const struct gpu_buf *r, const struct gpu_buf *w,
                struct gpu_buf *out, enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                struct rag_err *err)
{
    const char *op = "gpu_rmsnorm";
    size_t n = 0, os = gpu_dtype_size(out_type);
    int rc;

    assert(g);
    rc = check_type(op, "out", out_type, err);
    if (!rc)
        rc = check_count(op, "n_rows", n_rows, INT32_MAX, err);
    if (!rc)
        rc = gpu_check_product(op, "n_rows * dim", n_rows, dim, 1, &n, err);
    if (!rc)
        rc = check_buf(op, "x", x, n, 4, err);
    if (!rc && r)
        rc = check_buf(op, "r", r, n, 4, err);
    if (!rc)
        rc = check_buf(op, "w", w, dim, 4, err);
    if (!rc)
        rc = check_buf(op, "out", out, n, os, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "x", x, n * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "r", r, n * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * os, "w", w, dim * 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "x", x, n * 4, "r", r, n * 4, err);
    if (!rc && !(eps >= 0 && isfinite(eps)))
        rc = rag_errf(err, RAG_EINVAL, "%s: eps %g is not a finite value >= 0", op, eps);
    if (rc)
        return rc;
    return gpu_cuda_rmsnorm(g, x->ptr, r ? r->ptr : NULL, w->ptr, out->ptr, out_type, n_rows, dim,
                            eps, err);
}

int gpu_swiglu(struct gpu *g, const struct gpu_buf *gu, enum gpu_dtype gu_type, struct gpu_buf *out,
               enum gpu_dtype out_type, size_t n_rows, size_t ff, struct rag_err *err)
{
    const char *op = "gpu_swiglu";
    size_t n_in = 0, n_out;
    int rc;

    assert(g);
    rc = check_type(op, "gu", gu_type, err);
    if (!rc)
        rc = check_type(op, "out", out_type, err);
    if (!rc)
        rc = gpu_check_product(op, "n_rows * 2 * ff", n_rows, 2, ff, &n_in, err);
    if (!rc)
        rc = check_buf(op, "gu", gu, n_in, gpu_dtype_size(gu_type), err);
    n_out = n_in / 2;
    if (!rc)
        rc = check_buf(op, "out", out, n_out, gpu_dtype_size(out_type), err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * gpu_dtype_size(out_type), "gu", gu,
                                  n_in * gpu_dtype_size(gu_type), err);
    if (rc)
        return rc;
    return gpu_cuda_swiglu(g, gu->ptr, gu_type, out->ptr, out_type, n_rows, ff, err);
}

int gpu_softmax_rows(struct gpu *g, const struct gpu_buf *x, struct gpu_buf *y, size_t n_rows,
                     size_t n, float scale, struct rag_err *err)
{
    const char *op = "gpu_softmax_rows";
    size_t total = 0;
    int rc;

    assert(g);
    rc = check_count(op, "n_rows", n_rows, INT32_MAX, err);
    if (!rc)
        rc = gpu_check_product(op, "n_rows * n", n_rows, n, 1, &total, err);
    if (!rc)
        rc = check_buf(op, "x", x, total, 4, err);
    if (!rc)
        rc = check_buf(op, "y", y, total, 4, err);
    if (!rc && x->ptr != y->ptr)
        rc = gpu_check_no_overlap(op, "x", x, total * 4, "y", y, total * 4, err);
    if (!rc && !isfinite(scale))
        rc = rag_errf(err, RAG_EINVAL, "%s: scale is not finite", op);
    if (rc)
        return rc;
    return gpu_cuda_softmax_rows(g, x->ptr, y->ptr, n_rows, n, scale, err);
}

int gpu_argmax_rows(struct gpu *g, const struct gpu_buf *x, struct gpu_buf *ids, size_t n_rows,
                    size_t n, struct rag_err *err)
{
    const char *op = "gpu_argmax_rows";
    size_t total = 0;
    int rc;

    assert(g);
    rc = check_count(op, "n_rows", n_rows, INT32_MAX, err);
    if (!rc)
        rc = check_count(op, "n", n, INT32_MAX, err);
    if (!rc)
        rc = gpu_check_product(op, "n_rows * n", n_rows, n, 1, &total, err);
    if (!rc)
        rc = check_buf(op, "x", x, total, 4, err);
    if (!rc)
        rc = check_buf(op, "ids", ids, n_rows, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "ids", ids, n_rows * 4, "x", x, total * 4, err);
    if (rc)
        return rc;
    return gpu_cuda_argmax_rows(g, x->ptr, ids->ptr, n_rows, n, err);
}

int gpu_embed_rows(struct gpu *g, const struct gpu_buf *table, enum gpu_dtype table_type,
                   size_t n_vocab, size_t dim, const struct gpu_buf *ids, size_t n_ids, float scale,
                   struct gpu_buf *out, struct rag_err *err)
{
    const char *op = "gpu_embed_rows";
    size_t n_table = 0, n_out = 0;
    int rc = 0;

    assert(g);
    if (table_type != GPU_F32 && table_type != GPU_BF16 && table_type != GPU_F16)
        return rag_errf(err, RAG_EINVAL, "%s: unknown table type %d", op, (int)table_type);
    rc = check_count(op, "n_ids", n_ids, INT32_MAX, err);
    if (!rc)
        rc = gpu_check_product(op, "n_vocab * dim", n_vocab, dim, 1, &n_table, err);
    if (!rc)
        rc = gpu_check_product(op, "n_ids * dim", n_ids, dim, 1, &n_out, err);
    if (!rc)
        rc = check_buf(op, "table", table, n_table, gpu_dtype_size(table_type), err);
    if (!rc)
        rc = check_buf(op, "ids", ids, n_ids, 4, err);
    if (!rc)
        rc = check_buf(op, "out", out, n_out, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * 4, "table", table,
                                  n_table * gpu_dtype_size(table_type), err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n_out * 4, "ids", ids, n_ids * 4, err);
    if (rc)
        return rc;
    return gpu_cuda_embed_rows(g, table->ptr, table_type, n_vocab, dim, ids->ptr, n_ids, scale,
                               out->ptr, err);
}

/* The cache's shape and buffers, and the head counts that use it. */
static int check_kv(const char *op, const struct gpu_kv_cache *kv, size_t n_heads,
                    struct rag_err *err)
{
    size_t n = 0;
    int rc;

    if (kv->head_dim != 32 && kv->head_dim != 64 && kv->head_dim != 128)
        return rag_errf(err, RAG_EINVAL, "%s: head_dim %zu is not 32, 64 or 128", op, kv->head_dim);
    if (kv->n_kv_heads == 0 || n_heads == 0 || n_heads % kv->n_kv_heads)
        return rag_errf(err, RAG_EINVAL, "%s: %zu heads do not share %zu kv heads evenly", op,
                        n_heads, kv->n_kv_heads);
    if (n_heads / kv->n_kv_heads > GROUP_MAX)
        return rag_errf(err, RAG_EINVAL, "%s: %zu query heads per kv head exceed %d", op,
                        n_heads / kv->n_kv_heads, GROUP_MAX);
    rc = check_count(op, "n_heads", n_heads, GRID_YZ_MAX, err);
    if (!rc)
        rc = check_type(op, "kv", kv->type, err);
    if (!rc)
        rc = check_count(op, "n_blocks", kv->n_blocks, INT32_MAX / GPU_KV_BLOCK, err);
    if (!rc)
        rc = gpu_check_product(op, "the cache size", kv->n_blocks * GPU_KV_BLOCK, kv->n_kv_heads,
                               kv->head_dim, &n, err);
    if (!rc)
        rc = check_buf(op, "k", &kv->k, n, gpu_dtype_size(kv->type), err);
    if (!rc)
        rc = check_buf(op, "v", &kv->v, n, gpu_dtype_size(kv->type), err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "k", &kv->k, n * gpu_dtype_size(kv->type), "v", &kv->v,
                                  n * gpu_dtype_size(kv->type), err);
    if (!rc && ((uintptr_t)kv->k.ptr % 16 || (uintptr_t)kv->v.ptr % 16))
        rc = rag_errf(err, RAG_EINVAL, "%s: cache buffers 'k' and 'v' must be 16-byte aligned", op);
    return rc;
}

/* q_out (n_tokens, n_heads, head_dim) and qkv, with their sizes in floats. */
static int check_rope_rows(const char *op, const struct gpu_buf *qkv, const struct gpu_buf *q_out,
                           size_t n_tokens, size_t n_heads, const struct gpu_kv_cache *kv,
                           struct rag_err *err)
{
    size_t n_qkv = 0, n_q = 0;
    int rc;

    rc = gpu_check_product(op, "qkv size", n_tokens, n_heads + 2 * kv->n_kv_heads, kv->head_dim,
                           &n_qkv, err);
    if (!rc)
        rc = gpu_check_product(op, "q_out size", n_tokens, n_heads, kv->head_dim, &n_q, err);
    if (!rc)
        rc = check_buf(op, "qkv", qkv, n_qkv, 4, err);
    if (!rc)
        rc = check_buf(op, "q_out", q_out, n_q, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "q_out", q_out, n_q * 4, "qkv", qkv, n_qkv * 4, err);
    return rc;
}

int gpu_rope_kv(struct gpu *g, const struct gpu_buf *qkv, size_t n_tokens, size_t n_heads,
                enum gpu_rope_type type, const struct gpu_buf *inv_freq, const struct gpu_buf *pos,
                const struct gpu_buf *slots, struct gpu_buf *q_out, struct gpu_kv_cache *kv,
                struct rag_err *err)
{
    const char *op = "gpu_rope_kv";
    int rc;

    assert(g);
    if (type != GPU_ROPE_NORM && type != GPU_ROPE_NEOX)
        return rag_errf(err, RAG_EINVAL, "%s: unknown rope type %d", op, (int)type);
    rc = check_kv(op, kv, n_heads, err);
    if (!rc)
        rc = check_count(op, "n_tokens", n_tokens, INT32_MAX, err);
    if (!rc)
        rc = check_rope_rows(op, qkv, q_out, n_tokens, n_heads, kv, err);
    if (!rc)
        rc = check_buf(op, "inv_freq", inv_freq, kv->head_dim / 2, 4, err);
    if (!rc)
        rc = check_buf(op, "pos", pos, n_tokens, 4, err);
    if (!rc)
        rc = check_buf(op, "slots", slots, n_tokens, 4, err);
    if (rc)
        return rc;
    struct gpu_cuda_rope a = {
        .qkv = qkv->ptr,
        .q_out = q_out->ptr,
        .pos = pos->ptr,
        .slots = slots->ptr,
        .inv_freq = inv_freq->ptr,
        .k_cache = kv->k.ptr,
        .v_cache = kv->v.ptr,
        .kv_type = kv->type,
        .rope_type = type,
        .n_tokens = n_tokens,
        .n_heads = n_heads,
        .n_kv_heads = kv->n_kv_heads,
        .head_dim = kv->head_dim,
        .n_blocks = kv->n_blocks,
    };
    return gpu_cuda_rope_kv(g, &a, err);
}

/* Tokens per decode split (attn_decode.cu explains the choice). */
static size_t decode_split(const struct gpu *g, size_t n_kv_heads, size_t n_seqs, size_t max_blocks)
{
    size_t target = DEC_BLOCKS_SM * (size_t)(g->info.n_sm > 0 ? g->info.n_sm : 1);
    size_t split = CEIL_DIV(max_blocks * GPU_KV_BLOCK * n_kv_heads * n_seqs, target);
    size_t least =
        max_blocks * GPU_KV_BLOCK < DEC_SPLIT_MIN ? max_blocks * GPU_KV_BLOCK : DEC_SPLIT_MIN;

    split = CEIL_DIV(split, (size_t)GPU_KV_BLOCK) * GPU_KV_BLOCK;
    return split > least ? split : least;
}

size_t gpu_attn_decode_workspace(const struct gpu *g, size_t n_heads, const struct gpu_kv_cache *kv,
                                 const struct gpu_seqs *seqs)
{
    size_t split, n_splits, floats = 0;

    assert(g);
    if (!kv->n_kv_heads || !n_heads || n_heads % kv->n_kv_heads || !seqs->max_blocks ||
        n_heads / kv->n_kv_heads > GROUP_MAX || seqs->max_blocks > INT32_MAX / GPU_KV_BLOCK ||
        seqs->n_seqs > GRID_YZ_MAX || n_heads > GRID_YZ_MAX)
        return 0;
    split = decode_split(g, kv->n_kv_heads, seqs->n_seqs, seqs->max_blocks);
    n_splits = CEIL_DIV(seqs->max_blocks * GPU_KV_BLOCK, split);
    if (gpu_check_product("", "", seqs->n_seqs * n_heads, n_splits, kv->head_dim + 2, &floats,
                          NULL) ||
        floats > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return floats * sizeof(float);
}

/* The batch's tables and lengths, and q and out of n_rows query tokens. */
static int check_queries(const char *op, const struct gpu_buf *q, const struct gpu_buf *out,
                         enum gpu_dtype out_type, size_t n_rows, size_t n_heads, size_t head_dim,
                         struct rag_err *err)
{
    size_t n = 0;
    int rc;

    rc = check_type(op, "out", out_type, err);
    if (!rc)
        rc = gpu_check_product(op, "q size", n_rows, n_heads, head_dim, &n, err);
    if (!rc)
        rc = check_buf(op, "q", q, n, 4, err);
    if (!rc)
        rc = check_buf(op, "out", out, n, gpu_dtype_size(out_type), err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out, n * gpu_dtype_size(out_type), "q", q, n * 4, err);
    return rc;
}

static int check_seqs(const char *op, const struct gpu_seqs *seqs, struct rag_err *err)
{
    size_t n = 0;
    int rc;

    if (seqs->max_blocks == 0)
        return rag_errf(err, RAG_EINVAL, "%s: max_blocks is 0", op);
    rc = check_count(op, "n_seqs", seqs->n_seqs, GRID_YZ_MAX, err);
    if (!rc)
        rc = check_count(op, "max_blocks", seqs->max_blocks, INT32_MAX / GPU_KV_BLOCK, err);
    if (!rc)
        rc = gpu_check_product(op, "block table size", seqs->n_seqs, seqs->max_blocks, 1, &n, err);
    if (!rc)
        rc = check_buf(op, "block_tables", &seqs->block_tables, n, 4, err);
    if (!rc)
        rc = check_buf(op, "lens", &seqs->lens, seqs->n_seqs, 4, err);
    return rc;
}

/*
 * What gpu_attn_decode() and gpu_attn_decode_rope() share: the cache, the
 * batch, out, work and scale checked, the rest of a filled in.
 */
static int decode_args(struct gpu *g, const char *op, size_t n_heads, const struct gpu_kv_cache *kv,
                       const struct gpu_seqs *seqs, float scale, struct gpu_buf *work,
                       struct gpu_buf *out, enum gpu_dtype out_type, struct gpu_cuda_attn *a,
                       struct rag_err *err)
{
    size_t n = 0, ws;
    int rc;

    rc = check_kv(op, kv, n_heads, err);
    if (!rc)
        rc = check_seqs(op, seqs, err);
    if (!rc)
        rc = check_type(op, "out", out_type, err);
    if (!rc)
        rc = gpu_check_product(op, "out size", seqs->n_seqs, n_heads, kv->head_dim, &n, err);
    if (!rc)
        rc = check_buf(op, "out", out, n, gpu_dtype_size(out_type), err);
    ws = gpu_attn_decode_workspace(g, n_heads, kv, seqs);
    if (!rc)
        rc = check_buf(op, "work", work, ws / 4, 4, err);
    if (!rc && !isfinite(scale))
        rc = rag_errf(err, RAG_EINVAL, "%s: scale is not finite", op);
    if (rc)
        return rc;
    *a = (struct gpu_cuda_attn){
        .k_cache = kv->k.ptr,
        .v_cache = kv->v.ptr,
        .kv_type = kv->type,
        .block_tables = seqs->block_tables.ptr,
        .lens = seqs->lens.ptr,
        .out = out->ptr,
        .out_type = out_type,
        .work = work->ptr,
        .n_seqs = seqs->n_seqs,
        .max_blocks = seqs->max_blocks,
        .n_heads = n_heads,
        .n_kv_heads = kv->n_kv_heads,
        .head_dim = kv->head_dim,
        .n_blocks = kv->n_blocks,
        .scale = scale,
    };
    a->split = decode_split(g, kv->n_kv_heads, seqs->n_seqs, seqs->max_blocks);
    a->n_splits = CEIL_DIV(seqs->max_blocks * GPU_KV_BLOCK, a->split);
    return 0;
}

int gpu_attn_decode(struct gpu *g, const struct gpu_buf *q, size_t n_heads,
                    const struct gpu_kv_cache *kv, const struct gpu_seqs *seqs, float scale,
                    struct gpu_buf *work, struct gpu_buf *out, enum gpu_dtype out_type,
                    struct rag_err *err)
{
    const char *op = "gpu_attn_decode";
    struct gpu_cuda_attn a;
    int rc;

    assert(g);
    rc = decode_args(g, op, n_heads, kv, seqs, scale, work, out, out_type, &a, err);
    if (!rc)
        rc = check_queries(op, q, out, out_type, seqs->n_seqs, n_heads, kv->head_dim, err);
    if (rc)
        return rc;
    a.q = q->ptr;
    return gpu_cuda_attn_decode(g, &a, err);
}

int gpu_attn_decode_rope(struct gpu *g, const struct gpu_buf *qkv, size_t n_heads,
                         enum gpu_rope_type type, const struct gpu_buf *inv_freq,
                         struct gpu_kv_cache *kv, const struct gpu_seqs *seqs, float scale,
                         struct gpu_buf *work, struct gpu_buf *out, enum gpu_dtype out_type,
                         struct rag_err *err)
{
    const char *op = "gpu_attn_decode_rope";
    struct gpu_cuda_attn a;
    size_t n = 0;
    int rc;

    assert(g);
    if (type != GPU_ROPE_NORM && type != GPU_ROPE_NEOX)
        return rag_errf(err, RAG_EINVAL, "%s: unknown rope type %d", op, (int)type);
    rc = decode_args(g, op, n_heads, kv, seqs, scale, work, out, out_type, &a, err);
    if (!rc)
        rc = gpu_check_product(op, "qkv size", seqs->n_seqs, n_heads + 2 * kv->n_kv_heads,
                               kv->head_dim, &n, err);
    if (!rc)
        rc = check_buf(op, "qkv", qkv, n, 4, err);
    if (!rc)
        rc = check_buf(op, "inv_freq", inv_freq, kv->head_dim / 2, 4, err);
    if (!rc)
        rc = gpu_check_no_overlap(op, "out", out,
                                  a.n_seqs * n_heads * kv->head_dim * gpu_dtype_size(out_type),
                                  "qkv", qkv, n * 4, err);
    if (rc)
        return rc;
    a.qkv = qkv->ptr;
    a.inv_freq = inv_freq->ptr;
    a.rope_type = type;
    return gpu_cuda_attn_decode(g, &a, err);
}

int gpu_attn_prefill(struct gpu *g, const struct gpu_buf *q, size_t n_tokens, size_t n_heads,
                     size_t pos0, const struct gpu_kv_cache *kv, const struct gpu_buf *block_table,
                     float scale, struct gpu_buf *out, enum gpu_dtype out_type, struct rag_err *err)
{
    const char *op = "gpu_attn_prefill";
    int rc;

    assert(g);
    rc = check_kv(op, kv, n_heads, err);
    if (!rc)
        rc = check_count(op, "pos0", pos0, INT32_MAX, err);
    if (!rc && n_tokens > INT32_MAX - pos0)
        rc = rag_errf(err, RAG_EINVAL, "%s: pos0 %zu + n_tokens %zu exceed %d", op, pos0, n_tokens,
                      INT32_MAX);
    if (!rc)
        rc = check_queries(op, q, out, out_type, n_tokens, n_heads, kv->head_dim, err);
    if (!rc)
        rc = check_buf(op, "block_table", block_table,
                       CEIL_DIV(pos0 + n_tokens, (size_t)GPU_KV_BLOCK), 4, err);
    if (!rc && !isfinite(scale))
        rc = rag_errf(err, RAG_EINVAL, "%s: scale is not finite", op);
    if (rc)
        return rc;
    struct gpu_cuda_attn a = {
        .q = q->ptr,
        .k_cache = kv->k.ptr,
        .v_cache = kv->v.ptr,
        .kv_type = kv->type,
        .block_tables = block_table->ptr,
        .out = out->ptr,
        .out_type = out_type,
        .n_tokens = n_tokens,
        .pos0 = pos0,
        .n_heads = n_heads,
        .n_kv_heads = kv->n_kv_heads,
        .head_dim = kv->head_dim,
        .n_blocks = kv->n_blocks,
        .scale = scale,
    };
    return gpu_cuda_attn_prefill(g, &a, err);
}
