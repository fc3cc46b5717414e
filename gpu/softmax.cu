/*
 * gpu/softmax.cu - row softmax and row argmax over logits.
 *
 * softmax: y[i][j] = exp(s x[i][j] - m_i) / sum_l exp(s x[i][l] - m_i),
 *   m_i = max_l s x[i][l], for x, y (n_rows, n) fp32; y may be x.
 *   One block of 512 threads per row, three passes over the row (max, sum
 *   of exponentials, write), each a strided loop plus a block reduction.
 *   A thread writes only elements it read itself, so in place is safe.
 *
 * argmax: ids[i] = lowest j with x[i][j] maximal, int32. One block of 1,024
 *   threads per row; each thread keeps (value, index) of its strided
 *   elements with a strict '>' (so its lowest index wins ties and NaN never
 *   wins), reading ARGMAX_UNROLL of them per step with the loads issued
 *   together (a 49k-wide row is 6 steps; one load at a time made the
 *   kernel 39 us of a 135M decode step), then the block combines pairs
 *   preferring the larger value and, on equal values, the lower index.
 *   Rows with nothing above -inf give 0.
 *   This is greedy decoding for a batch of sequences: one launch, one
 *   small download.
 *
 * Vocabularies are 30k-262k wide: a row is 120 kB-1 MB, read 2-3 times
 * (the second and third reads mostly hit L2).
 */
#include "gpu/cuda_util.cuh"

#include <limits.h>

#define SOFTMAX_THREADS 512
#define ARGMAX_THREADS  1024
#define ARGMAX_UNROLL   8

static __global__ void softmax_kernel(const float *x, float *y, size_t n, float scale)
{
    __shared__ float red[WARP];
    const float *xr = x + blockIdx.x * n;
    float *yr = y + blockIdx.x * n;
    float m = -INFINITY, sum = 0.0f;

    for (size_t j = threadIdx.x; j < n; j += blockDim.x)
        m = fmaxf(m, scale * xr[j]);
    m = block_reduce(m, red, true);
    for (size_t j = threadIdx.x; j < n; j += blockDim.x)
        sum += expf(scale * xr[j] - m);
    sum = block_reduce(sum, red, false);
    float inv = 1.0f / sum;
    for (size_t j = threadIdx.x; j < n; j += blockDim.x)
        yr[j] = expf(scale * xr[j] - m) * inv;
}

int gpu_cuda_softmax_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t n,
                          float scale, struct rag_err *err)
{
    if (n_rows == 0 || n == 0)
        return 0;
    if (use_device(g, "softmax_rows", err))
        return RAG_EGPU;
    softmax_kernel<<<(unsigned)n_rows, SOFTMAX_THREADS, 0, stream_of(g)>>>(x, y, n, scale);
    return launched(g, "softmax_rows", err);
}

/* (v, i) replaced by (ov, oi) when ov is larger, or equal with a lower index. */
static __device__ inline void better(float *v, int *i, float ov, int oi)
{
    if (ov > *v || (ov == *v && oi < *i)) {
        *v = ov;
        *i = oi;
    }
}

static __global__ void argmax_kernel(const float *x, int32_t *ids, size_t n)
{
    __shared__ float red_v[WARP];
    __shared__ int red_i[WARP];
    const float *xr = x + blockIdx.x * n;
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    float v = -INFINITY;
    int i = INT_MAX;

    pdl_wait();
    pdl_trigger();
    for (size_t j0 = threadIdx.x; j0 < n; j0 += ARGMAX_UNROLL * ARGMAX_THREADS) {
        float xv[ARGMAX_UNROLL];

#pragma unroll
        for (int u = 0; u < ARGMAX_UNROLL; u++) {
            size_t j = j0 + (size_t)u * ARGMAX_THREADS;
            xv[u] = j < n ? xr[j] : -INFINITY;
        }
#pragma unroll
        for (int u = 0; u < ARGMAX_UNROLL; u++)
            if (xv[u] > v) {
                v = xv[u];
                i = (int)(j0 + (size_t)u * ARGMAX_THREADS);
            }
    }
    for (int off = WARP / 2; off > 0; off /= 2)
        better(&v, &i, __shfl_xor_sync(FULL_MASK, v, off), __shfl_xor_sync(FULL_MASK, i, off));
    if (lane == 0) {
        red_v[warp] = v;
        red_i[warp] = i;
    }
    __syncthreads();
    if (warp != 0)
        return;
    v = lane < blockDim.x / WARP ? red_v[lane] : -INFINITY;
    i = lane < blockDim.x / WARP ? red_i[lane] : INT_MAX;
    for (int off = WARP / 2; off > 0; off /= 2)
        better(&v, &i, __shfl_xor_sync(FULL_MASK, v, off), __shfl_xor_sync(FULL_MASK, i, off));
    if (lane == 0)
        ids[blockIdx.x] = i == INT_MAX ? 0 : i;
}

int gpu_cuda_argmax_rows(struct gpu *g, const float *x, int32_t *ids, size_t n_rows, size_t n,
                         struct rag_err *err)
{
    if (n_rows == 0)
        return 0;
    if (use_device(g, "argmax_rows", err))
        return RAG_EGPU;
    launch_pdl(g, argmax_kernel, dim3((unsigned)n_rows), dim3(ARGMAX_THREADS), 0, x, ids, n);
    return launched(g, "argmax_rows", err);
}
