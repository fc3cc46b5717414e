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
 * Launch: one block of 256 threads per row. Each thread walks the row with
 * stride 256 (coalesced), adds r, writes x back and accumulates x^2 with
 * fmaf; a block reduction (warp shuffles, then one warp over the warp sums)
 * gives the sum; then each thread scales the elements it wrote itself, so
 * re-reading x needs no barrier. Bandwidth-bound: 3 (or 5 with r) floats
 * per element. Version 1; a vectorised variant belongs in bench/gpu/.
 */
#include "gpu/cuda_util.cuh"

#define RMS_THREADS 256

template <typename O>
static __global__ void rmsnorm_kernel(float *__restrict__ x, const float *__restrict__ r,
                                      const float *__restrict__ w, O *__restrict__ out, size_t dim,
                                      float eps)
{
    __shared__ float red[WARP];
    float *xr = x + blockIdx.x * dim;
    O *orow = out + blockIdx.x * dim;
    float ss = 0.0f;

    for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
        float v = xr[j];

        if (r) {
            v += r[blockIdx.x * dim + j];
            xr[j] = v;
        }
        ss = fmaf(v, v, ss);
    }
    ss = block_reduce(ss, red, false);
    float inv = rsqrtf(ss / (float)dim + eps);
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
        rmsnorm_kernel<O>
            <<<(unsigned)n_rows, RMS_THREADS, 0, stream_of(g)>>>(x, r, w, (O *)out, dim, eps);
    });
    return launched(g, "rmsnorm", err);
}
