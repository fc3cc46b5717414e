/*
 * gpu/gpu.c - the public gpu.h API: argument checks, then the CUDA side in
 * the .cu files of gpu/ through gpu/gpu_cuda.h.
 *
 * This is the only file in the project that tests RAG_HAVE_CUDA. A build
 * without CUDA defines the gpu_cuda_* functions below to report
 * RAG_ENOSYS ("built without CUDA", STYLE.md 12); gpu_open() then never
 * succeeds and the rest of the API is unreachable, yet every caller links and
 * runs the same code either way.
 *
 * All checks that do not need the device (sizes, overflow, alignment, pool
 * room) are made here, once, so the .cu launchers receive valid shapes; the
 * model kernels' checks are in gpu/launch.c. Graph capture state lives in
 * the context, so calls that would break a capture (copies, syncs,
 * allocations) are refused here before CUDA sees them.
 */
#include "gpu/gpu.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "gpu/gpu_cuda.h"

#if !RAG_HAVE_CUDA
static int no_cuda(struct rag_err *err)
{
    return rag_errf(err, RAG_ENOSYS, "gpu: built without CUDA");
}

int gpu_cuda_count(int *ret_n, struct rag_err *err)
{
    *ret_n = 0;
    return no_cuda(err);
}

int gpu_cuda_init(struct gpu *g, int device, struct rag_err *err)
{
    (void)g;
    (void)device;
    return no_cuda(err);
}

void gpu_cuda_release(struct gpu *g)
{
    (void)g;
}

int gpu_cuda_mem_info(struct gpu *g, size_t *ret_free, size_t *ret_total, struct rag_err *err)
{
    (void)g;
    (void)ret_free;
    (void)ret_total;
    return no_cuda(err);
}

int gpu_cuda_alloc(struct gpu *g, size_t bytes, void **ret, struct rag_err *err)
{
    (void)g;
    (void)bytes;
    (void)ret;
    return no_cuda(err);
}

void gpu_cuda_free(struct gpu *g, void *p)
{
    (void)g;
    (void)p;
}

int gpu_cuda_copy(struct gpu *g, void *dst, const void *src, size_t bytes, bool to_device,
                  struct rag_err *err)
{
    (void)g;
    (void)dst;
    (void)src;
    (void)bytes;
    (void)to_device;
    return no_cuda(err);
}

int gpu_cuda_sync(struct gpu *g, struct rag_err *err)
{
    (void)g;
    return no_cuda(err);
}

int gpu_cuda_axpy(struct gpu *g, size_t n, float a, const float *x, float *y, struct rag_err *err)
{
    (void)g;
    (void)n;
    (void)a;
    (void)x;
    (void)y;
    return no_cuda(err);
}

int gpu_cuda_l2_normalize_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t dim,
                               struct rag_err *err)
{
    (void)g;
    (void)x;
    (void)y;
    (void)n_rows;
    (void)dim;
    return no_cuda(err);
}

int gpu_cuda_dot(struct gpu *g, size_t n, const float *x, const float *y, float *out,
                 struct rag_err *err)
{
    (void)g;
    (void)n;
    (void)x;
    (void)y;
    (void)out;
    return no_cuda(err);
}

/* The rest are unreachable without a context; only their names must link. */
# pragma GCC diagnostic push
# pragma GCC diagnostic ignored "-Wunused-parameter"
int gpu_cuda_copy_device(struct gpu *g, void *dst, const void *src, size_t bytes,
                         struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_noop(struct gpu *g, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_capture_begin(struct gpu *g, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_capture_end(struct gpu *g, struct gpu_graph **ret, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_graph_launch(struct gpu *g, const struct gpu_graph *graph, struct rag_err *err)
{
    return no_cuda(err);
}

void gpu_cuda_graph_free(struct gpu *g, struct gpu_graph *graph)
{
}

size_t gpu_cuda_graph_kernels(const struct gpu_graph *graph)
{
    return 0;
}

int gpu_cuda_gemm_init(struct gpu *g, struct rag_err *err)
{
    return no_cuda(err);
}

void gpu_cuda_gemm_release(struct gpu *g)
{
}

int gpu_cuda_gemm(struct gpu *g, const void *a, const void *w, enum gpu_dtype ab_type,
                  const void *bias, void *c, enum gpu_dtype c_type, size_t m, size_t n, size_t k,
                  float beta, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_convert(struct gpu *g, const void *src, enum gpu_dtype src_type, void *dst,
                     enum gpu_dtype dst_type, size_t n, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_rmsnorm(struct gpu *g, float *x, const float *r, const float *w, void *out,
                     enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                     struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_swiglu(struct gpu *g, const void *gu, enum gpu_dtype gu_type, void *out,
                    enum gpu_dtype out_type, size_t n_rows, size_t ff, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_gemv(struct gpu *g, const struct gpu_cuda_gemv *a, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_softmax_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t n,
                          float scale, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_argmax_rows(struct gpu *g, const float *x, int32_t *ids, size_t n_rows, size_t n,
                         struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_embed_rows(struct gpu *g, const void *table, enum gpu_dtype table_type, size_t n_vocab,
                        size_t dim, const int32_t *ids, size_t n_ids, float scale, float *out,
                        struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_rope_kv(struct gpu *g, const struct gpu_cuda_rope *a, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_attn_decode(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_attn_prefill(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_bert_embed(struct gpu *g, const struct gpu_bert_embeddings *emb, const int32_t *ids,
                        size_t n_seqs, size_t seq_len, float *h, void *out, enum gpu_dtype out_type,
                        struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_layernorm(struct gpu *g, float *h, const void *t, enum gpu_dtype t_type,
                       const float *gamma, const float *beta, void *out, enum gpu_dtype out_type,
                       size_t n_rows, size_t dim, float eps, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_bias_gelu(struct gpu *g, void *x, enum gpu_dtype type, const float *bias,
                       size_t n_rows, size_t n, struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_attn_encoder(struct gpu *g, const void *qkv, const int32_t *lens, size_t n_seqs,
                          size_t seq_len, size_t n_heads, size_t head_dim, float scale, void *out,
                          struct rag_err *err)
{
    return no_cuda(err);
}

int gpu_cuda_bert_pool(struct gpu *g, const float *h, const int32_t *lens, size_t n_seqs,
                       size_t seq_len, size_t dim, enum gpu_pooling pooling, float *out,
                       struct rag_err *err)
{
    return no_cuda(err);
}
# pragma GCC diagnostic pop
#endif

int gpu_count(void)
{
    int n;

    if (gpu_cuda_count(&n, NULL))
        return 0;
    return n;
}

int gpu_open(struct gpu **ret, int device, struct rag_err *err)
{
    struct rag_err why = { 0 };
    struct gpu *g;
    int n, rc;

    if (device < 0)
        return rag_errf(err, RAG_EINVAL, "gpu: device index %d is negative", device);
    rc = gpu_cuda_count(&n, &why);
    if (rc == RAG_ENOSYS)
        return rag_errf(err, rc, "%s", why.msg);
    if (rc || n == 0)
        return rag_errf(err, RAG_EGPU, "gpu: no CUDA device (%s)",
                        rc ? why.msg : "the driver reports none");
    if (device >= n)
        return rag_errf(err, RAG_EINVAL, "gpu: device index %d out of range (%d device%s)", device,
                        n, n == 1 ? "" : "s");
    g = xcalloc(1, sizeof(*g));
    rc = gpu_cuda_init(g, device, err);
    if (!rc)
        rc = gpu_cuda_gemm_init(g, err);
    if (rc) {
        gpu_close(g);
        return rc;
    }
    RAG_DEBUG("gpu: device %d '%s', compute %d.%d, %d SMs, %zu MiB", device, g->info.name,
              g->info.cc_major, g->info.cc_minor, g->info.n_sm, g->info.mem_total >> 20);
    *ret = g;
    return 0;
}

void gpu_close(struct gpu *g)
{
    if (!g)
        return;
    gpu_cuda_gemm_release(g);
    gpu_cuda_release(g);
    free(g);
}

int gpu_info(struct gpu *g, struct gpu_info *ret, struct rag_err *err)
{
    size_t free_bytes = 0, total = 0;
    int rc;

    assert(g);
    rc = gpu_cuda_mem_info(g, &free_bytes, &total, err);
    if (rc)
        return rc;
    g->info.mem_free = free_bytes;
    *ret = g->info;
    return 0;
}

static int not_while_capturing(const char *op, struct rag_err *err)
{
    return rag_errf(err, RAG_EINVAL, "%s: not allowed while a graph is being captured", op);
}

int gpu_buf_alloc(struct gpu *g, size_t bytes, struct gpu_buf *ret, struct rag_err *err)
{
    void *p = NULL;
    int rc;

    assert(g);
    if (g->capturing)
        return not_while_capturing("gpu_buf_alloc", err);
    if (bytes == 0) {
        *ret = (struct gpu_buf){ 0 };
        return 0;
    }
    rc = gpu_cuda_alloc(g, bytes, &p, err);
    if (rc)
        return rc;
    *ret = (struct gpu_buf){ .ptr = p, .bytes = bytes };
    return 0;
}

void gpu_buf_free(struct gpu *g, struct gpu_buf *b)
{
    if (!b || !b->ptr)
        return;
    assert(g);
    gpu_cuda_free(g, b->ptr);
    *b = (struct gpu_buf){ 0 };
}

int gpu_buf_carve(const struct gpu_buf *pool, size_t *offset, size_t bytes, struct gpu_buf *ret,
                  struct rag_err *err)
{
    size_t start = gpu_align(*offset);

    if (start > pool->bytes || bytes > pool->bytes - start)
        return rag_errf(err, RAG_EINVAL, "gpu pool: no room for %zu bytes at offset %zu of %zu",
                        bytes, start, pool->bytes);
    *ret = (struct gpu_buf){ .ptr = (char *)pool->ptr + start, .bytes = bytes };
    *offset = start + bytes;
    return 0;
}

/* Copy checks: the buffer holds bytes, and a non-empty copy has both ends. */
static int check_copy(const char *op, const struct gpu_buf *b, const void *host, size_t bytes,
                      struct rag_err *err)
{
    if (bytes > b->bytes)
        return rag_errf(err, RAG_EINVAL, "%s: %zu bytes do not fit the %zu-byte buffer", op, bytes,
                        b->bytes);
    if (bytes && (!b->ptr || !host))
        return rag_errf(err, RAG_EINVAL, "%s: %zu bytes with a NULL pointer", op, bytes);
    return 0;
}

int gpu_upload(struct gpu *g, struct gpu_buf *dst, const void *src, size_t bytes,
               struct rag_err *err)
{
    int rc;

    assert(g);
    if (g->capturing)
        return not_while_capturing("gpu_upload", err);
    rc = check_copy("gpu_upload", dst, src, bytes, err);
    if (rc || bytes == 0)
        return rc;
    return gpu_cuda_copy(g, dst->ptr, src, bytes, true, err);
}

int gpu_download(struct gpu *g, void *dst, const struct gpu_buf *src, size_t bytes,
                 struct rag_err *err)
{
    int rc;

    assert(g);
    if (g->capturing)
        return not_while_capturing("gpu_download", err);
    rc = check_copy("gpu_download", src, dst, bytes, err);
    if (rc || bytes == 0)
        return rc;
    return gpu_cuda_copy(g, dst, src->ptr, bytes, false, err);
}

int gpu_sync(struct gpu *g, struct rag_err *err)
{
    assert(g);
    if (g->capturing)
        return not_while_capturing("gpu_sync", err);
    return gpu_cuda_sync(g, err);
}

int gpu_copy(struct gpu *g, struct gpu_buf *dst, const struct gpu_buf *src, size_t bytes,
             struct rag_err *err)
{
    uintptr_t d, s;

    assert(g);
    if (bytes > dst->bytes || bytes > src->bytes)
        return rag_errf(err, RAG_EINVAL, "gpu_copy: %zu bytes do not fit the %zu-byte %s buffer",
                        bytes, bytes > dst->bytes ? dst->bytes : src->bytes,
                        bytes > dst->bytes ? "target" : "source");
    if (bytes == 0)
        return 0;
    if (!dst->ptr || !src->ptr)
        return rag_errf(err, RAG_EINVAL, "gpu_copy: %zu bytes with a NULL pointer", bytes);
    d = (uintptr_t)dst->ptr;
    s = (uintptr_t)src->ptr;
    if (d < s + bytes && s < d + bytes)
        return rag_errf(err, RAG_EINVAL, "gpu_copy: source and target overlap");
    return gpu_cuda_copy_device(g, dst->ptr, src->ptr, bytes, err);
}

int gpu_noop(struct gpu *g, struct rag_err *err)
{
    assert(g);
    return gpu_cuda_noop(g, err);
}

int gpu_capture_begin(struct gpu *g, struct rag_err *err)
{
    int rc;

    assert(g);
    if (g->capturing)
        return rag_errf(err, RAG_EINVAL, "gpu_capture_begin: a capture is already running");
    rc = gpu_cuda_capture_begin(g, err);
    if (!rc)
        g->capturing = true;
    return rc;
}

int gpu_capture_end(struct gpu *g, struct gpu_graph **ret, struct rag_err *err)
{
    assert(g);
    if (!g->capturing)
        return rag_errf(err, RAG_EINVAL, "gpu_capture_end: no capture is running");
    g->capturing = false;
    return gpu_cuda_capture_end(g, ret, err);
}

int gpu_graph_launch(struct gpu *g, const struct gpu_graph *graph, struct rag_err *err)
{
    assert(g && graph);
    if (g->capturing)
        return not_while_capturing("gpu_graph_launch", err);
    return gpu_cuda_graph_launch(g, graph, err);
}

void gpu_graph_free(struct gpu *g, struct gpu_graph *graph)
{
    if (!graph)
        return;
    assert(g);
    gpu_cuda_graph_free(g, graph);
}

size_t gpu_graph_kernels(const struct gpu_graph *graph)
{
    assert(graph);
    return gpu_cuda_graph_kernels(graph);
}

/* The n floats of buffer name fit b, which is 4-byte aligned. */
static int check_floats(const char *op, const char *name, const struct gpu_buf *b, size_t n,
                        struct rag_err *err)
{
    if (n > SIZE_MAX / sizeof(float))
        return rag_errf(err, RAG_EINVAL, "%s: %zu floats overflow size_t", op, n);
    if (n * sizeof(float) > b->bytes)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' has %zu bytes, needs %zu", op, name,
                        b->bytes, n * sizeof(float));
    if (n && !b->ptr)
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' is NULL", op, name);
    if ((uintptr_t)b->ptr % sizeof(float))
        return rag_errf(err, RAG_EINVAL, "%s: buffer '%s' is not 4-byte aligned", op, name);
    return 0;
}

/* Whether the first bytes of a and b share memory. */
static bool overlap(const struct gpu_buf *a, const struct gpu_buf *b, size_t bytes)
{
    uintptr_t pa = (uintptr_t)a->ptr, pb = (uintptr_t)b->ptr;

    return bytes && pa < pb + bytes && pb < pa + bytes;
}

int gpu_axpy(struct gpu *g, size_t n, float a, const struct gpu_buf *x, struct gpu_buf *y,
             struct rag_err *err)
{
    int rc;

    assert(g);
    rc = check_floats("gpu_axpy", "x", x, n, err);
    if (!rc)
        rc = check_floats("gpu_axpy", "y", y, n, err);
    if (rc)
        return rc;
    if (overlap(x, y, n * sizeof(float)))
        return rag_errf(err, RAG_EINVAL, "gpu_axpy: buffers 'x' and 'y' overlap");
    return gpu_cuda_axpy(g, n, a, x->ptr, y->ptr, err);
}

int gpu_l2_normalize_rows(struct gpu *g, const struct gpu_buf *x, struct gpu_buf *y, size_t n_rows,
                          size_t dim, struct rag_err *err)
{
    int rc;

    assert(g);
    if (dim && n_rows > SIZE_MAX / dim)
        return rag_errf(err, RAG_EINVAL, "gpu_l2_normalize_rows: %zu rows of %zu overflow size_t",
                        n_rows, dim);
    rc = check_floats("gpu_l2_normalize_rows", "x", x, n_rows * dim, err);
    if (!rc)
        rc = check_floats("gpu_l2_normalize_rows", "y", y, n_rows * dim, err);
    if (rc)
        return rc;
    if (x->ptr != y->ptr && overlap(x, y, n_rows * dim * sizeof(float)))
        return rag_errf(err, RAG_EINVAL,
                        "gpu_l2_normalize_rows: buffers 'x' and 'y' overlap without being equal");
    return gpu_cuda_l2_normalize_rows(g, x->ptr, y->ptr, n_rows, dim, err);
}

int gpu_dot(struct gpu *g, size_t n, const struct gpu_buf *x, const struct gpu_buf *y,
            struct gpu_buf *out, struct rag_err *err)
{
    int rc;

    assert(g);
    rc = check_floats("gpu_dot", "x", x, n, err);
    if (!rc)
        rc = check_floats("gpu_dot", "y", y, n, err);
    if (!rc)
        rc = check_floats("gpu_dot", "out", out, 1, err);
    if (rc)
        return rc;
    return gpu_cuda_dot(g, n, x->ptr, y->ptr, out->ptr, err);
}
