/*
 * gpu/rmsnorm.cu - RMSNorm with an optional residual add, per row:
 *   x[i] += r[i]                       (when r is given; x is written back)
 *   out[i] = x[i] * rsqrt(sum_j x[j]^2 / dim + eps) * w[i]
 * x, r (n_rows, dim) fp32, w (dim) fp32, out (n_rows, dim) fp32, bf16 or
 * fp16 (an fp16 value past 65504 is stored as +-65504, cuda_util.cuh).
 *
 * This is llama's pre-norm step: with r the output of the previous block,
 * one kernel does "residual += block output; normed = rmsnorm(residual)"
 * and can emit bf16 or fp16 for the next GEMM directly (llama.cpp fuses the same
 * RMS_NORM + MUL + ADD).
 *
 * Launch: one block per row of dim / 4 threads (rounded up to a warp, at
 * most 1,024), so a row of up to 4,096 is read in one round of loads: the
 * first version walked it with 256 threads one load at a time, 13 us for a
 * 4,096-wide row. Each thread adds r, writes x back and accumulates x^2
 * with fmaf; a block reduction (warp shuffles, then one warp over the warp
 * sums) gives the sum; then each thread scales the elements it wrote
 * itself: from its registers when the row took one step (dim <= 4,096),
 * else re-read from x, which needs no barrier.
 */
#include "gpu/cuda_util.cuh"

#define RMS_THREADS 1024
#define RMS_UNROLL  4

/*
 * x, with r added when given and written back, times 1/rms times w into
 * out. Each thread takes elements threadIdx.x + u * blockDim.x of each step
 * of RMS_UNROLL * blockDim.x, loading them together (a 4,096-wide row is one
 * step), keeps them in registers for the second pass.
 */
template <typename O>
static __global__ void rmsnorm_kernel(float *__restrict__ x, const float *__restrict__ r,
                                      const float *__restrict__ w, O *__restrict__ out, size_t dim,
                                      float eps)
{
    __shared__ float red[WARP];
    float *xr = x + blockIdx.x * dim;
    O *orow = out + blockIdx.x * dim;
    float ss = 0.0f, v[RMS_UNROLL];

    pdl_wait();
    pdl_trigger();
    for (size_t j0 = threadIdx.x; j0 < dim; j0 += RMS_UNROLL * blockDim.x) {
#pragma unroll
        for (int u = 0; u < RMS_UNROLL; u++) {
            size_t j = j0 + u * blockDim.x;
            v[u] = j < dim ? xr[j] + (r ? r[blockIdx.x * dim + j] : 0.0f) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < RMS_UNROLL; u++) {
            size_t j = j0 + u * blockDim.x;
            if (r && j < dim)
                xr[j] = v[u];
            ss = fmaf(v[u], v[u], ss);
        }
    }
    ss = block_reduce(ss, red, false);
    float inv = rsqrtf(ss / (float)dim + eps);
    if (dim <= RMS_UNROLL * blockDim.x) { /* one step: the row is still in v */
#pragma unroll
        for (int u = 0; u < RMS_UNROLL; u++) {
            size_t j = threadIdx.x + u * blockDim.x;
            if (j < dim)
                store_act(&orow[j], v[u] * inv * w[j]);
        }
        return;
    }
    for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
        store_act(&orow[j], xr[j] * inv * w[j]);
}

int gpu_cuda_rmsnorm(struct gpu *g, float *x, const float *r, const float *w, void *out,
                     enum gpu_dtype out_type, size_t n_rows, size_t dim, float eps,
                     struct rag_err *err)
{
    if (n_rows == 0 || dim == 0)
        return 0;
    if (use_device(g, "rmsnorm", err))
        return RAG_EGPU;
    with_type(out_type, [&](auto tag) {
        using O = typename decltype(tag)::type;
        size_t threads = CEIL_DIV(dim, (size_t)RMS_UNROLL * WARP) * WARP;

        launch_pdl(g, rmsnorm_kernel<O>, dim3((unsigned)n_rows),
                   dim3((unsigned)(threads < RMS_THREADS ? threads : RMS_THREADS)), 0, x, r, w,
                   (O *)out, dim, eps);
    });
    return launched(g, "rmsnorm", err);
}
