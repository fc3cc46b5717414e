/*
 * gpu/vec.cu - fp32 vector kernels: axpy, row L2 normalisation, dot product.
 *
 * axpy: y[i] = fmaf(a, x[i], y[i]) for i < n; x, y are (n).
 *   Grid-stride loop, 256 threads a block, at most n_sm * 16 blocks. When x
 *   and y are both 16-byte aligned the body moves float4s and a scalar loop
 *   does the last n % 4 elements; otherwise it is all scalar.
 *
 * l2_normalize_rows: y[r][j] = x[r][j] / max(sqrt(sum_j x[r][j]^2), 1e-12)
 *   for x, y of shape (n_rows, dim), row-major; y may equal x.
 *   One warp per row (8 rows per 256-thread block, grid-stride over rows):
 *   each lane sums the squares of columns lane, lane + 32, ..., the warp
 *   adds them with __shfl_xor_sync, then each lane scales its own columns.
 *   A lane reads x[r][j] before it writes y[r][j] and nobody else touches
 *   that element, which makes the in-place case safe. Embedding widths
 *   (384, 768) give each lane 12-24 elements.
 *
 * dot: out[0] = sum_i x[i] * y[i] for i < n.
 *   Two kernels, no atomics, so the order of additions depends only on n:
 *   dot_partial runs G = min(ceil(n / 2048), GPU_SCRATCH_FLOATS) blocks of
 *   256 threads; each thread accumulates a grid-stride sum with fmaf, each
 *   block reduces by warp shuffles and writes g->scratch[block]; then one
 *   block of 1024 threads (dot_final) adds the G partials and writes out.
 *
 * Versions: these are the first (v1) kernels, bandwidth-bound by design;
 * faster variants will be timed under bench/gpu/ against these.
 */
#include "gpu/cuda_util.cuh"

#define VEC_THREADS 256

static unsigned grid_for(const struct gpu *g, size_t work, unsigned per_block)
{
    size_t blocks = CEIL_DIV(work, (size_t)per_block);
    size_t cap = (size_t)(g->info.n_sm > 0 ? g->info.n_sm : 1) * 16;

    if (blocks > cap)
        blocks = cap;
    return blocks ? (unsigned)blocks : 1;
}

static __global__ void axpy_scalar(size_t n, float a, const float *__restrict__ x,
                                   float *__restrict__ y)
{
    for (size_t i = thread_index(); i < n; i += thread_count())
        y[i] = fmaf(a, x[i], y[i]);
}

static __global__ void axpy_vec4(size_t n, float a, const float4 *__restrict__ x4,
                                 float4 *__restrict__ y4)
{
    size_t n4 = n / 4;

    for (size_t i = thread_index(); i < n4; i += thread_count()) {
        float4 xv = x4[i];
        float4 yv = y4[i];

        yv.x = fmaf(a, xv.x, yv.x);
        yv.y = fmaf(a, xv.y, yv.y);
        yv.z = fmaf(a, xv.z, yv.z);
        yv.w = fmaf(a, xv.w, yv.w);
        y4[i] = yv;
    }
    for (size_t i = 4 * n4 + thread_index(); i < n; i += thread_count()) {
        const float *x = (const float *)x4;
        float *y = (float *)y4;

        y[i] = fmaf(a, x[i], y[i]);
    }
}

int gpu_cuda_axpy(struct gpu *g, size_t n, float a, const float *x, float *y, struct rag_err *err)
{
    bool vec4 = (uintptr_t)x % 16 == 0 && (uintptr_t)y % 16 == 0;
    unsigned grid;

    if (n == 0)
        return 0;
    if (use_device(g, "axpy", err))
        return RAG_EGPU;
    if (vec4) {
        grid = grid_for(g, CEIL_DIV(n, (size_t)4), VEC_THREADS);
        axpy_vec4<<<grid, VEC_THREADS, 0, stream_of(g)>>>(n, a, (const float4 *)x, (float4 *)y);
    } else {
        grid = grid_for(g, n, VEC_THREADS);
        axpy_scalar<<<grid, VEC_THREADS, 0, stream_of(g)>>>(n, a, x, y);
    }
    return launched(g, "axpy", err);
}

static __global__ void l2_rows(const float *x, float *y, size_t n_rows, size_t dim)
{
    size_t warps_per_block = blockDim.x / WARP;
    size_t n_warps = (size_t)gridDim.x * warps_per_block;
    unsigned lane = threadIdx.x % WARP;

    for (size_t r = blockIdx.x * warps_per_block + threadIdx.x / WARP; r < n_rows; r += n_warps) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        float ss = 0.0f;

        for (size_t j = lane; j < dim; j += WARP)
            ss = fmaf(xr[j], xr[j], ss);
        ss = warp_sum(ss);
        float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f);
        for (size_t j = lane; j < dim; j += WARP)
            yr[j] = xr[j] * inv;
    }
}

int gpu_cuda_l2_normalize_rows(struct gpu *g, const float *x, float *y, size_t n_rows, size_t dim,
                               struct rag_err *err)
{
    unsigned grid;

    if (n_rows == 0 || dim == 0)
        return 0;
    if (use_device(g, "l2_normalize_rows", err))
        return RAG_EGPU;
    grid = grid_for(g, n_rows, VEC_THREADS / WARP);
    l2_rows<<<grid, VEC_THREADS, 0, stream_of(g)>>>(x, y, n_rows, dim);
    return launched(g, "l2_normalize_rows", err);
}

/* Sum over the block; the result is valid in thread 0. blockDim.x is a multiple of 32. */
static __device__ float block_sum(float v)
{
    __shared__ float warp_sums[WARP];
    unsigned lane = threadIdx.x % WARP;
    unsigned warp = threadIdx.x / WARP;

    v = warp_sum(v);
    if (lane == 0)
        warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < blockDim.x / WARP ? warp_sums[lane] : 0.0f;
        v = warp_sum(v);
    }
    return v;
}

static __global__ void dot_partial(size_t n, const float *__restrict__ x,
                                   const float *__restrict__ y, float *partial)
{
    float s = 0.0f;

    for (size_t i = thread_index(); i < n; i += thread_count())
        s = fmaf(x[i], y[i], s);
    s = block_sum(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

static __global__ void dot_final(unsigned n_partial, const float *partial, float *out)
{
    float s = 0.0f;

    for (unsigned i = threadIdx.x; i < n_partial; i += blockDim.x)
        s += partial[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        out[0] = s;
}

int gpu_cuda_dot(struct gpu *g, size_t n, const float *x, const float *y, float *out,
                 struct rag_err *err)
{
    size_t blocks = CEIL_DIV(n, (size_t)VEC_THREADS * 8);
    int rc;

    if (blocks > GPU_SCRATCH_FLOATS)
        blocks = GPU_SCRATCH_FLOATS;
    if (blocks == 0)
        blocks = 1;
    if (use_device(g, "dot", err))
        return RAG_EGPU;
    dot_partial<<<(unsigned)blocks, VEC_THREADS, 0, stream_of(g)>>>(n, x, y, g->scratch);
    rc = launched(g, "dot", err);
    if (rc)
        return rc;
    dot_final<<<1, GPU_SCRATCH_FLOATS, 0, stream_of(g)>>>((unsigned)blocks, g->scratch, out);
    return launched(g, "dot", err);
}
