/*
 * gpu/cuda_util.cuh - internal to the .cu files of gpu/: launch helpers
 * (device selection, launch check), warp reductions and element loads and
 * stores for the three element types of enum gpu_dtype. Everything here is
 * static inline, so each .cu file compiles its own copy and no symbol leaks.
 *
 * The CUDA headers come first, then gpu_cuda.h, whose base/banned.h macros
 * must follow the C++ headers (see gpu_cuda.h).
 */
#ifndef GPU_CUDA_UTIL_CUH
#define GPU_CUDA_UTIL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "gpu/gpu_cuda.h"

#define WARP      32
#define FULL_MASK 0xffffffffu

static inline cudaStream_t stream_of(const struct gpu *g)
{
    return (cudaStream_t)g->stream;
}

/*
 * Make g's device current before a launch. cudaSetDevice() is called only
 * when another device is current, so a launch inside a stream capture makes
 * no call but the launch itself.
 */
static inline int use_device(const struct gpu *g, const char *what, struct rag_err *err)
{
    int cur = -1;
    cudaError_t e = cudaGetDevice(&cur);

    if (e == cudaSuccess && cur != g->device)
        e = cudaSetDevice(g->device);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: launch '%s'", g->device, what);
    return 0;
}

/* Report a failed launch (bad configuration, no kernel image for this device). */
static inline int launched(const struct gpu *g, const char *what, struct rag_err *err)
{
    cudaError_t e = cudaGetLastError();

    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: launch '%s'", g->device, what);
    return 0;
}

/*
 * Programmatic dependent launch (sm_90 and later). A kernel started with
 * launch_pdl() may begin while the kernel before it on the stream is still
 * running, as soon as that one calls pdl_trigger() (or ends). Until its own
 * pdl_wait() returns, which is when the kernel before has finished and its
 * writes are visible, it may only read what no earlier kernel writes (model
 * weights): so every kernel started this way calls pdl_wait() before any
 * other global memory access. Within a CUDA graph this hides the launch of
 * each small decode kernel, and the first weight loads of a GEMV, behind the
 * kernel before it. On older devices both are no-ops and launch_pdl() is a
 * plain launch.
 */
static __device__ inline void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ inline void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* kernel<<<grid, block, smem, g's stream>>>(args...) as a programmatic dependent launch. */
template <typename... P, typename... A>
static inline void launch_pdl(const struct gpu *g, void (*kernel)(P...), dim3 grid, dim3 block,
                              size_t smem, A... args)
{
    cudaLaunchAttribute attr = {};
    cudaLaunchConfig_t cfg = {};

    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = g->info.cc_major >= 9;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream_of(g);
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    (void)cudaLaunchKernelEx(&cfg, kernel, (P)args...); /* launched() reads the error */
}

static __device__ inline float warp_sum(float v)
{
    for (int offset = WARP / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

static __device__ inline float warp_max(float v)
{
    for (int offset = WARP / 2; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

/*
 * Reduce over the block with op (sum or max); every thread gets the result.
 * blockDim.x is a multiple of 32 and at most 1024; red holds 32 floats of
 * shared memory and may be reused once the call has returned.
 */
static __device__ inline float block_reduce(float v, float *red, bool is_max)
{
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    unsigned n_warps = blockDim.x / WARP;

    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    v = lane < n_warps ? red[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? warp_max(v) : warp_sum(v);
}

static __device__ inline size_t thread_index(void)
{
    return (size_t)blockIdx.x * blockDim.x + threadIdx.x;
}

static __device__ inline size_t thread_count(void)
{
    return (size_t)gridDim.x * blockDim.x;
}

/* ---- element access: T is float, __nv_bfloat16 or __half ---- */

static __device__ inline float to_float(float v)
{
    return v;
}

static __device__ inline float to_float(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

static __device__ inline float to_float(__half v)
{
    return __half2float(v);
}

static __device__ inline void store(float *p, float v)
{
    *p = v;
}

static __device__ inline void store(__nv_bfloat16 *p, float v)
{
    *p = __float2bfloat16_rn(v);
}

static __device__ inline void store(__half *p, float v)
{
    *p = __float2half_rn(v);
}

/*
 * Activation stores of the model kernels (gpu.h): as store(), except that a
 * finite value past fp16's range becomes +-65504 instead of an infinity,
 * which a later product with 0 would turn into NaN. Infinities and NaN pass
 * through unchanged.
 */
static __device__ inline void store_act(float *p, float v)
{
    *p = v;
}

static __device__ inline void store_act(__nv_bfloat16 *p, float v)
{
    *p = __float2bfloat16_rn(v);
}

static __device__ inline void store_act(__half *p, float v)
{
    *p = __float2half_rn(isfinite(v) ? fminf(fmaxf(v, -65504.0f), 65504.0f) : v);
}

/*
 * Host-side dispatch on an element type: f(type_tag<T>()) with T the C++
 * type of t, so a launcher writes
 *   with_type(t, [&](auto tag) { using T = typename decltype(tag)::type; ... });
 * Unknown values (launch.c rejects them) take the fp32 branch.
 */
template <typename T> struct type_tag {
    using type = T;
};

template <typename F> static inline void with_type(enum gpu_dtype t, F &&f)
{
    if (t == GPU_BF16)
        f(type_tag<__nv_bfloat16>());
    else if (t == GPU_F16)
        f(type_tag<__half>());
    else
        f(type_tag<float>());
}

#endif
