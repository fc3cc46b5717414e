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

#endif
