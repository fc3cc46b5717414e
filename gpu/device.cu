/*
 * gpu/device.cu - the CUDA runtime side of a context: device query, the
 * stream, device memory and copies. Every function selects the context's
 * device first, so contexts on different devices can be used from one
 * thread in turn. Errors become RAG_EGPU with cudaGetErrorString(); nothing
 * here exits (unlike llm.c's cudaCheck).
 *
 * Properties are read with cudaDeviceGetAttribute() rather than from
 * cudaDeviceProp, whose clock fields were removed in CUDA 13; an attribute
 * the driver does not report reads as 0.
 */
#include <cuda_runtime.h>

#include <stdio.h>

#include "gpu/gpu_cuda.h"

static cudaStream_t stream_of(const struct gpu *g)
{
    return (cudaStream_t)g->stream;
}

int gpu_cuda_errf(struct rag_err *err, int cuda_error, const char *fmt, ...)
{
    char what[192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    (void)cudaGetLastError();
    return rag_errf(err, RAG_EGPU, "%s: %s", what, cudaGetErrorString((cudaError_t)cuda_error));
}

int gpu_cuda_count(int *ret_n, struct rag_err *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);

    *ret_n = 0;
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "cudaGetDeviceCount");
    *ret_n = n;
    return 0;
}

static int attribute(enum cudaDeviceAttr attr, int device)
{
    int v = 0;

    if (cudaDeviceGetAttribute(&v, attr, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return v;
}

static int read_info(struct gpu_info *info, int device, struct rag_err *err)
{
    struct cudaDeviceProp p;
    cudaError_t e;

    e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: properties", device);
    snprintf(info->name, sizeof(info->name), "%s", p.name);
    info->device = device;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->n_sm = p.multiProcessorCount;
    info->mem_total = p.totalGlobalMem;
    info->l2_bytes = (size_t)attribute(cudaDevAttrL2CacheSize, device);
    info->mem_bus_bits = attribute(cudaDevAttrGlobalMemoryBusWidth, device);
    info->mem_clock_khz = attribute(cudaDevAttrMemoryClockRate, device);
    if (cudaDriverGetVersion(&info->driver_version) != cudaSuccess)
        info->driver_version = 0;
    if (cudaRuntimeGetVersion(&info->runtime_version) != cudaSuccess)
        info->runtime_version = 0;
    (void)cudaGetLastError();
    return 0;
}

int gpu_cuda_init(struct gpu *g, int device, struct rag_err *err)
{
    cudaStream_t s;
    cudaError_t e;
    void *p;
    int rc;

    g->device = device;
    e = cudaSetDevice(device);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d", device);
    rc = read_info(&g->info, device, err);
    if (rc)
        return rc;
    e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: create stream", device);
    g->stream = s;
    e = cudaMalloc(&p, GPU_SCRATCH_FLOATS * sizeof(float));
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: scratch memory", device);
    g->scratch = (float *)p;
    return 0;
}

void gpu_cuda_release(struct gpu *g)
{
    if (cudaSetDevice(g->device) != cudaSuccess)
        return;
    if (g->stream)
        (void)cudaStreamSynchronize(stream_of(g));
    if (g->scratch)
        (void)cudaFree(g->scratch);
    if (g->stream)
        (void)cudaStreamDestroy(stream_of(g));
    (void)cudaGetLastError();
    g->scratch = NULL;
    g->stream = NULL;
}

int gpu_cuda_mem_info(struct gpu *g, size_t *ret_free, size_t *ret_total, struct rag_err *err)
{
    cudaError_t e = cudaSetDevice(g->device);

    if (e == cudaSuccess)
        e = cudaMemGetInfo(ret_free, ret_total);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: memory info", g->device);
    return 0;
}

int gpu_cuda_alloc(struct gpu *g, size_t bytes, void **ret, struct rag_err *err)
{
    cudaError_t e = cudaSetDevice(g->device);
    void *p = NULL;

    if (e == cudaSuccess)
        e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu alloc %zu bytes", bytes);
    *ret = p;
    return 0;
}

void gpu_cuda_free(struct gpu *g, void *p)
{
    if (cudaSetDevice(g->device) == cudaSuccess)
        (void)cudaFree(p);
    (void)cudaGetLastError();
}

int gpu_cuda_copy(struct gpu *g, void *dst, const void *src, size_t bytes, bool to_device,
                  struct rag_err *err)
{
    enum cudaMemcpyKind kind = to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    cudaError_t e = cudaSetDevice(g->device);

    if (e == cudaSuccess)
        e = cudaMemcpyAsync(dst, src, bytes, kind, stream_of(g));
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(stream_of(g));
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu %s %zu bytes", to_device ? "upload" : "download", bytes);
    return 0;
}

int gpu_cuda_sync(struct gpu *g, struct rag_err *err)
{
    cudaError_t e = cudaSetDevice(g->device);

    if (e == cudaSuccess)
        e = cudaStreamSynchronize(stream_of(g));
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu sync");
    return 0;
}

int gpu_cuda_copy_device(struct gpu *g, void *dst, const void *src, size_t bytes,
                         struct rag_err *err)
{
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(g));

    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu copy %zu bytes on the device", bytes);
    return 0;
}
