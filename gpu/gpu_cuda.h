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

#include "gpu/gpu.h"

#define CEIL_DIV(a, b) (((a) + (b)-1) / (b))

/* Device floats for the per-block partial sums of one reduction. */
#define GPU_SCRATCH_FLOATS 1024

struct gpu {
    int device;
    void *stream;         /* cudaStream_t, non-blocking; every copy and kernel runs on it */
    float *scratch;       /* (GPU_SCRATCH_FLOATS) device memory owned by the context */
    struct gpu_info info; /* properties read at open; mem_free is refreshed by gpu_info() */
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

/* ---- gpu/vec.cu: vector kernels (shapes are documented in gpu.h) ---- */

int gpu_cuda_axpy(struct gpu *g, size_t n, float a, const float *x, float *y, struct rag_err *err);
int gpu_cuda_l2_normalize_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t dim,
                               struct rag_err *err);
int gpu_cuda_dot(struct gpu *g, size_t n, const float *x, const float *y, float *out,
                 struct rag_err *err);

#ifdef __cplusplus
}
#endif

#endif
