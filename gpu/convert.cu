/*
 * gpu/convert.cu - element type conversion: dst[i] = (D)src[i], i < n, for
 * every pair of fp32, bf16 and fp16 (gpu.h enum gpu_dtype).
 *
 * Each value goes through fp32, which holds bf16 and fp16 exactly, so the
 * only rounding is the final one, to nearest even (__float2bfloat16_rn,
 * __float2half_rn); NaN stays NaN and values past the target's range become
 * infinities. Same-type pairs are plain copies.
 *
 * Launch: grid-stride loop, 256 threads a block, at most 16 blocks per SM.
 * Bandwidth-bound: n * (sizeof(S) + sizeof(D)) bytes. Used to upload
 * weights once (fp32 or fp16 file data to bf16) and in tests.
 */
#include "gpu/cuda_util.cuh"

#define CONVERT_THREADS 256

template <typename S, typename D>
static __global__ void convert_kernel(const S *__restrict__ src, D *__restrict__ dst, size_t n)
{
    for (size_t i = thread_index(); i < n; i += thread_count())
        store(&dst[i], to_float(src[i]));
}

template <typename S, typename D>
static void launch(const struct gpu *g, const void *src, void *dst, size_t n)
{
    size_t blocks = CEIL_DIV(n, (size_t)CONVERT_THREADS);
    size_t cap = (size_t)(g->info.n_sm > 0 ? g->info.n_sm : 1) * 16;

    if (blocks > cap)
        blocks = cap;
    convert_kernel<S, D>
        <<<(unsigned)blocks, CONVERT_THREADS, 0, stream_of(g)>>>((const S *)src, (D *)dst, n);
}

template <typename S>
static void launch_from(const struct gpu *g, const void *src, void *dst, enum gpu_dtype dst_type,
                        size_t n)
{
    switch (dst_type) {
    case GPU_F32:
        launch<S, float>(g, src, dst, n);
        break;
    case GPU_BF16:
        launch<S, __nv_bfloat16>(g, src, dst, n);
        break;
    case GPU_F16:
        launch<S, __half>(g, src, dst, n);
        break;
    }
}

int gpu_cuda_convert(struct gpu *g, const void *src, enum gpu_dtype src_type, void *dst,
                     enum gpu_dtype dst_type, size_t n, struct rag_err *err)
{
    if (n == 0)
        return 0;
    if (use_device(g, "convert", err))
        return RAG_EGPU;
    switch (src_type) {
    case GPU_F32:
        launch_from<float>(g, src, dst, dst_type, n);
        break;
    case GPU_BF16:
        launch_from<__nv_bfloat16>(g, src, dst, dst_type, n);
        break;
    case GPU_F16:
        launch_from<__half>(g, src, dst, dst_type, n);
        break;
    }
    return launched(g, "convert", err);
}
